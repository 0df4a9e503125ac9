"""VideoWriter: exact size and frame count, explicit crf/gop, shape checks, ffmpeg failures surface."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from nersemble_zarr.raw import ffmpeg_exe, iter_frames, probe_video
from nersemble_zarr.raw.video_writer import VideoWriteError, VideoWriter


def smooth_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Moving smooth fields, mostly luminance with a gentle colour tint (photo-like for x264 at crf 14)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    frames = []
    for t in range(n):
        lum = 127 + 90 * np.sin(2 * np.pi * (1.5 * xx + yy) + phases[3] + 0.3 * t)
        chans = [lum + 20 * np.sin(2 * np.pi * (0.5 * xx + 0.7 * yy * c) + phases[c] + 0.2 * t) for c in range(3)]
        frames.append(np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8))
    return frames


def keyframe_count(path) -> int:
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-skip_frame", "nokey", "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-f", "null", "-progress", "pipe:1", "-nostats", "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return int(re.findall(r"^frame=(\d+)", out, flags=re.M)[-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_writes_exact_size_and_frame_count_without_macroblock_padding(tmp_path):
    # 138 x 202: neither is a multiple of 16, which imageio-ffmpeg would pad by default
    frames = smooth_frames(13, 202, 138)
    path = tmp_path / "v.mp4"
    with VideoWriter(path, width=138, height=202, fps=24.3, gop=5) as w:
        for f in frames:
            w.write(f)
    assert w.n_written == 13
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height, info.codec, info.pix_fmt) == (13, 138, 202, "h264", "yuv420p")
    assert info.fps == pytest.approx(24.3)
    decoded = list(iter_frames(path))
    assert len(decoded) == 13
    assert min(psnr(a, b) for a, b in zip(frames, decoded)) >= 35


def test_gop_sets_the_keyframe_interval(tmp_path):
    frames = smooth_frames(20, 64, 64)
    for gop, expected in ((4, 5), (None, 1)):
        path = tmp_path / f"g{gop}.mp4"
        with VideoWriter(path, 64, 64, 73, gop=gop) as w:
            for f in frames:
                w.write(f)
        assert keyframe_count(path) == expected


def test_same_frames_give_the_same_bytes(tmp_path):
    frames = smooth_frames(6, 48, 64)
    outputs = []
    for name in ("a.mp4", "b.mp4"):
        with VideoWriter(tmp_path / name, 64, 48, 73, gop=3) as w:
            for f in frames:
                w.write(f)
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "frame, expected",
    [
        (np.zeros((64, 48, 3), np.uint8), r"expected shape \(48, 64, 3\).*found \(64, 48, 3\)"),
        (np.zeros((48, 64), np.uint8), r"expected shape \(48, 64, 3\).*found \(48, 64\)"),
        (np.zeros((48, 64, 3), np.float32), r"expected dtype uint8, found float32"),
    ],
)
def test_rejects_a_wrong_frame_naming_expected_and_found(tmp_path, frame, expected):
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=expected) as err:
        with VideoWriter(path, 64, 48, 73) as w:
            w.write(np.zeros((48, 64, 3), np.uint8))
            w.write(frame)
    assert str(path) in str(err.value) and "frame 1" in str(err.value)


def test_odd_size_for_yuv420p_is_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="even width and height, got 63x48"):
        VideoWriter(tmp_path / "odd.mp4", 63, 48, 73)


def test_closing_without_frames_raises(tmp_path):
    with pytest.raises(VideoWriteError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", 64, 48, 73):
            pass


def test_ffmpeg_failure_raises_instead_of_leaving_a_silent_bad_file(tmp_path):
    path = tmp_path / "fail.mp4"
    with pytest.raises(VideoWriteError, match=re.escape(str(path))):
        with VideoWriter(path, 64, 48, 73, codec="no_such_encoder") as w:
            for f in smooth_frames(200, 48, 64):
                w.write(f)


def test_an_exception_inside_the_block_stops_ffmpeg_and_propagates(tmp_path):
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "x.mp4", 64, 48, 73) as w:
            w.write(np.zeros((48, 64, 3), np.uint8))
            raise KeyError("boom")
    assert w._proc is None or w._proc.poll() is not None

"""Video reader: exact counts, frames equal the source and the official decode, clear errors for bad files."""

from __future__ import annotations

import os
import shutil

import imageio_ffmpeg
import numpy as np
import pytest

from nersemble_zarr.raw import FrameIndexError, RawFormatError, iter_frames, probe_video, read_frame
from nersemble_zarr.raw.video_writer import VideoWriter
from test_video_writer import psnr, smooth_frames

N, H, W = 17, 90, 66


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 17-frame 66x90 mp4 with a keyframe every 6 frames, and the frames it was made from."""
    frames = smooth_frames(N, H, W, seed=3)
    path = tmp_path_factory.mktemp("video") / "cam_222200037.mp4"
    with VideoWriter(path, W, H, 73, gop=6) as w:
        for f in frames:
            w.write(f)
    return path, frames


def official_decode(path) -> list[np.ndarray]:
    """imageio-ffmpeg's rgb24 decode: the reference the official loaders' frames come from."""
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3).copy() for b in gen]


def test_probe_reports_exact_count_size_fps_codec(video):
    path, _ = video
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height, info.fps) == (N, W, H, 73.0)
    assert (info.codec, info.pix_fmt, info.path) == ("h264", "yuv420p", str(path))
    assert info.frame_shape == (H, W, 3)


def test_iter_frames_matches_source_within_codec_tolerance(video):
    path, source = video
    frames = list(iter_frames(path))
    assert len(frames) == N
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    assert min(psnr(a, b) for a, b in zip(source, frames)) >= 35


def test_iter_frames_is_bit_identical_to_the_official_rgb24_decode(video):
    path, _ = video
    ours, ref = list(iter_frames(path)), official_decode(path)
    assert len(ours) == len(ref) == N
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)


def test_alpha_is_the_first_channel_as_the_official_loader_takes_it(video):
    path, _ = video
    ref = official_decode(path)
    alphas = list(iter_frames(path, alpha=True))
    assert len(alphas) == N
    for a, r in zip(alphas, ref):
        assert a.shape == (H, W) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, r[..., 0])


@pytest.mark.parametrize("index", [0, N // 2, N - 1])
def test_read_frame_equals_the_streamed_frame(video, index):
    path, _ = video
    streamed = list(iter_frames(path))
    np.testing.assert_array_equal(read_frame(path, index), streamed[index])
    np.testing.assert_array_equal(read_frame(path, index, alpha=True), streamed[index][..., 0])


def test_read_frame_out_of_range_names_file_and_count(video):
    path, _ = video
    with pytest.raises(IndexError, match=rf"{path}.*frame index {N}.*has {N} frames"):
        read_frame(path, N)
    with pytest.raises(FrameIndexError):
        read_frame(path, -1)


def test_stopping_early_releases_the_decoder(video):
    path, _ = video
    gen = iter_frames(path)
    first = next(gen)
    assert first.shape == (H, W, 3)
    gen.close()  # kills ffmpeg, raises nothing


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "cam_222200037.mp4"
    with pytest.raises(RawFormatError, match=rf"{missing}: video file not found"):
        probe_video(missing)
    with pytest.raises(RawFormatError, match="not found"):
        list(iter_frames(missing))


def test_empty_and_non_video_files_are_named(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(RawFormatError, match=rf"{empty}: video file is empty"):
        probe_video(empty)
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(RawFormatError, match=rf"{text}: expected a readable mp4 video"):
        list(iter_frames(text))


def test_truncated_video_is_named(video, tmp_path):
    path, _ = video
    data = path.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(RawFormatError, match=rf"{truncated}: expected a readable mp4"):
        probe_video(truncated)
    with pytest.raises(RawFormatError, match=str(truncated)):
        read_frame(truncated, 0)


def test_truncated_faststart_video_is_named(video, tmp_path):
    # index at the front: the container opens, the frame data ends early
    import subprocess

    from nersemble_zarr.raw import ffmpeg_exe

    path, _ = video
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-c", "copy", "-movflags", "+faststart", str(faststart)], check=True)
    data = faststart.read_bytes()
    truncated = tmp_path / "truncated_fs.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(RawFormatError, match=rf"{truncated}: .*partial file"):
        list(iter_frames(truncated))


def test_corrupt_frame_data_names_file_and_frame_reached(video, tmp_path):
    path, _ = video
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat")
    moov = data.find(b"moov")
    assert 0 < mdat < moov, "expected the frame data before the index (ffmpeg's default mp4 layout)"
    start = mdat + (moov - mdat) // 2
    data[start : start + 400] = os.urandom(400)  # garbage inside the H.264 stream, container intact
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    assert probe_video(corrupt).n_frames == N  # every packet is still there
    with pytest.raises(RawFormatError, match=rf"{corrupt}: decod.* frame \d+"):
        list(iter_frames(corrupt))


def test_directory_instead_of_file_is_named(tmp_path):
    d = tmp_path / "cam_1.mp4"
    d.mkdir()
    with pytest.raises(RawFormatError, match=rf"{d}: expected a regular video file, found a directory"):
        probe_video(d)
    shutil.rmtree(d)


def test_fifo_and_device_are_refused_by_name_before_ffmpeg_opens_them(tmp_path):
    fifo = tmp_path / "cam_222200037.mp4"
    os.mkfifo(fifo)  # ffmpeg would block opening it
    with pytest.raises(RawFormatError, match=rf"{fifo}: expected a regular video file, found a FIFO"):
        probe_video(fifo)
    with pytest.raises(RawFormatError, match="found a FIFO"):
        list(iter_frames(fifo, alpha=True))
    zero = tmp_path / "cam_222200038.mp4"
    zero.symlink_to("/dev/zero")  # ffmpeg would read it without end
    with pytest.raises(RawFormatError, match=rf"{zero}: expected a regular video file, found a character device \(through a symlink\)"):
        read_frame(zero, 0)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), "
         "1100x1604 [SAR 1:1 DAR 275:401], 581 kb/s, 73 fps, 73 tbr, 18688 tbn (default)", ("h264", "yuv420p", 1100, 1604, 73.0)),
        ("  Stream #0:0: Video: hevc (Main) (hvc1 / 0x31637668), yuv420p10le(tv), 512x512, 24.30 fps, 24.30 tbr, 12k tbn",
         ("hevc", "yuv420p10le", 512, 512, 24.3)),
        ("  Stream #0:1: Video: mpeg4 (Simple Profile), yuv420p, 64x48, 30 tbr, 30 tbn", ("mpeg4", "yuv420p", 64, 48, 30.0)),
    ],
)
def test_stream_line_parsing_handles_nested_commas_and_missing_fps(line, expected):
    from nersemble_zarr.raw.video import _parse_stream_line

    assert _parse_stream_line("x.mp4", "[info] Input #0, mov,mp4, from 'x.mp4':\n[info] " + line) == expected

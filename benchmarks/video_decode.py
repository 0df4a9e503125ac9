"""Decoding the released videos: our reader vs the bare ffmpeg binary, and random single-frame access.

On a full-resolution NVS camera video (1100x1604, rendered by the sample generator, libx264 as
released; by default 100 frames and one keyframe, the layout the official baselines in DESIGN §4
were measured on):

- sequential: ``iter_frames`` (frames as numpy arrays in Python) vs ``ffmpeg`` decoding to rgb24
  into /dev/null (the floor: same decoder, no pipe, no Python), and ffmpeg into a pipe read by
  Python with a naive read() loop (what a simple ffmpeg-subprocess reader pays);
- random access: ``read_frame`` at the first, middle and last frame (open, decode from the start,
  return: the official loader's way and the baseline the Zarr store beats) vs bare ffmpeg doing
  the same single-frame decode into /dev/null.

    .venv/bin/python benchmarks/video_decode.py [--frames 100] [--scale 1] [--gop N] [--repeats 3]

The video is generated once and cached in the system temp folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Harness  # noqa: E402

from nersemble_zarr.core.benchmark import NVS, NVS_BENCHMARK  # noqa: E402
from nersemble_zarr.raw import ffmpeg_exe, iter_frames, probe_video, read_frame  # noqa: E402
from nersemble_zarr.testing.sample import sample_resolution, source_frames  # noqa: E402
from nersemble_zarr.raw.video_writer import VideoWriter  # noqa: E402


def cached_video(frames: int, scale: float, gop: int | None, crf: int) -> Path:
    """A rendered NVS camera video, written once per parameter set (temp name + rename)."""
    height, width = sample_resolution(NVS, scale)
    folder = Path(tempfile.gettempdir()) / "nersemble_zarr_bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"video_decode_{width}x{height}_{frames}f_gop{gop or 'default'}_crf{crf}.mp4"
    if path.is_file():
        return path
    participant = NVS_BENCHMARK.participants[0]
    sequence = NVS_BENCHMARK.sequences[participant][0]
    serial = NVS_BENCHMARK.hold_out_serials[1]  # the frontal camera
    tmp = path.with_suffix(f".{os.getpid()}.part.mp4")
    print(f"rendering {frames} frames {width}x{height} into {path} (once) ...", file=sys.stderr)
    with VideoWriter(tmp, width, height, NVS_BENCHMARK.fps, crf=crf, gop=gop) as w:
        # the sample draws each sequence's length as frames-0..2: ask for 2 more, keep exactly `frames`
        for i, (rgb, _) in enumerate(source_frames(NVS, participant, sequence, serial, frames=frames + 2, scale=scale)):
            if i == frames:
                break
            w.write(rgb)
    os.replace(tmp, path)
    return path


def ffmpeg_cmd(path: Path, index: int | None = None) -> list[str]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0"]
    if index is not None:
        cmd += ["-vf", f"select=eq(n\\,{index})", "-frames:v", "1"]
    return cmd + ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]


def ffmpeg_to_devnull(path: Path, index: int | None = None) -> None:
    subprocess.run(ffmpeg_cmd(path, index), stdout=subprocess.DEVNULL, check=True)


def ffmpeg_to_python(path: Path, frame_bytes: int) -> int:
    proc = subprocess.Popen(ffmpeg_cmd(path), stdout=subprocess.PIPE, bufsize=0)
    n = 0
    while True:
        buf = proc.stdout.read(frame_bytes)
        while buf and len(buf) < frame_bytes:
            more = proc.stdout.read(frame_bytes - len(buf))
            if not more:
                break
            buf += more
        if len(buf) < frame_bytes:
            break
        n += 1
    proc.wait()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames in the test video (default 100)")
    parser.add_argument("--scale", type=float, default=1.0, help="scale of 1100x1604 (default 1: full resolution)")
    parser.add_argument("--gop", type=int, default=None, help="keyframe interval (default: x264's 250, one keyframe)")
    parser.add_argument("--crf", type=int, default=18, help="x264 crf of the test video (default 18)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case; medians are reported")
    args = parser.parse_args()

    path = cached_video(args.frames, args.scale, args.gop, args.crf)
    info = probe_video(path)
    n = info.n_frames
    h = Harness(
        "video_decode",
        description="sequential decode fps of iter_frames vs bare ffmpeg; random single-frame access (read_frame)",
        params={"frames": n, "width": info.width, "height": info.height, "gop": args.gop or "x264 default (250)",
                "crf": args.crf, "file_bytes": path.stat().st_size, "repeats": args.repeats},
    )
    frame_bytes = info.width * info.height * 3
    h.time("ffmpeg -> /dev/null (rgb24)", lambda: ffmpeg_to_devnull(path), group="sequential", items=n, unit="frame",
           baseline=True, repeats=args.repeats)
    h.time("ffmpeg -> pipe, naive read() loop", lambda: ffmpeg_to_python(path, frame_bytes), group="sequential", items=n,
           unit="frame", repeats=args.repeats)

    def consume() -> None:
        count = sum(1 for _ in iter_frames(path))
        assert count == n, (count, n)

    h.time("iter_frames (numpy frames)", consume, group="sequential", items=n, unit="frame", repeats=args.repeats)
    h.time("iter_frames(alpha=True)", lambda: sum(1 for _ in iter_frames(path, alpha=True)), group="sequential", items=n,
           unit="frame", repeats=args.repeats)
    for where, index in (("first", 0), ("middle", n // 2), ("last", n - 1)):
        group = f"random access: {where} frame ({index})"
        h.time(f"ffmpeg -> /dev/null, frame {index}", lambda i=index: ffmpeg_to_devnull(path, i), group=group,
               baseline=True, repeats=args.repeats)
        h.time(f"read_frame(path, {index})", lambda i=index: read_frame(path, i), group=group, repeats=args.repeats)
    h.finish()


if __name__ == "__main__":
    main()

"""Submission writing: time vs a bare ffmpeg encode of the same frames, and peak memory for T vs 2T frames.

For one NVS video (1100x1604, 73 fps) and one mono video (512x512, 24.3 fps):

- time (wall and CPU, user + system of Python and ffmpeg; CPU time is the steadier figure on a
  shared machine): ``SubmissionWriter`` (numpy frames in memory → streamed into libx264 crf 14 → staged mp4 →
  zip, atomic rename) against the baseline, the bare command
  ``ffmpeg -f rawvideo -pix_fmt rgb24 -i frames.raw -c:v libx264 -crf 14 -pix_fmt yuv420p out.mp4``
  on the same frames from a file. Medians of ``--repeats`` runs; goal ratio ≤ 1.15.
- memory: peak RSS of a fresh Python process writing T and 2T frames produced lazily by a dask
  array (as renders are), ours vs the official writer's approach (every frame of the video in a
  Python list, then encoded); goal for ours: RSS(2T) / RSS(T) ≤ 1.1. ffmpeg's own memory (a child
  process, the same for both) is not counted.

    .venv/bin/python benchmarks/submission.py [--frames-nvs 24] [--frames-mono 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Harness  # noqa: E402

from nersemble_zarr.core.benchmark import MONO, NVS, get_benchmark  # noqa: E402
from nersemble_zarr.raw import ffmpeg_exe  # noqa: E402
from nersemble_zarr.submission.writer import SubmissionWriter  # noqa: E402

KEYS = {NVS: (388, "GLASSES", "222200046"), MONO: (393, "FREE", "222200037")}


def render_like(t0: int, n: int, height: int, width: int) -> np.ndarray:
    """``(n, height, width, 3) uint8``: smooth moving shading with mild noise, like a rendered head."""
    rng = np.random.default_rng(t0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        t = t0 + i
        r2 = (xx - 0.35 - 0.01 * t) ** 2 + (yy - 0.5) ** 2
        head = np.exp(-r2 / 0.05)
        for c in range(3):
            field = 255 - 150 * head * (0.8 + 0.2 * np.sin(12 * xx + 7 * yy * (c + 1) + 0.2 * t))
            out[i, ..., c] = np.clip(field + rng.normal(0, 1.5, field.shape), 0, 255)
    return out


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its waited-for children (ffmpeg) so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of every run of each function, the runs interleaved so they share the load."""
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            fn()
            out[name]["wall"].append(time.perf_counter() - t0)
            out[name]["cpu"].append(_cpu_seconds() - c0)
    return out


def bare_ffmpeg(raw: Path, out: Path, width: int, height: int, fps: float) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
         "-r", f"{fps:g}", "-i", str(raw), "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )


def ours(frames: np.ndarray, benchmark: str, target: Path) -> None:
    with SubmissionWriter(target, benchmark) as w:
        w.add_video(*KEYS[benchmark], frames)


_RSS_CHILD = """
import resource, sys
import dask, dask.array as da, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
from submission import render_like, KEYS
from nersemble_zarr.core.benchmark import get_benchmark
benchmark, n, how, target = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
b = get_benchmark(benchmark)
step = 8
blocks = [da.from_delayed(dask.delayed(render_like)(t0, min(step, n - t0), b.height, b.width),
                          (min(step, n - t0), b.height, b.width, 3), np.uint8) for t0 in range(0, n, step)]
frames = da.concatenate(blocks)
if how == "ours":
    from nersemble_zarr.submission.writer import SubmissionWriter
    with SubmissionWriter(target, benchmark) as w:
        w.add_video(*KEYS[benchmark], frames)
else:  # the official writer's approach: the whole video as a list of frames, then encoded
    import imageio_ffmpeg
    video = [f for f in frames.compute()]
    gen = imageio_ffmpeg.write_frames(target, (b.width, b.height), fps=b.fps, quality=None, macro_block_size=1,
                                      output_params=["-crf", "14"])
    gen.send(None)
    for f in video:
        gen.send(f)
    gen.close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss_mb(benchmark: str, n: int, how: str, tmp: Path) -> float:
    target = tmp / f"rss_{how}_{n}.{'zip' if how == 'ours' else 'mp4'}"
    code = _RSS_CHILD.format(root=str(ROOT), here=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code, benchmark, str(n), how, str(target)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames-nvs", type=int, default=24, help="T for the NVS video (memory test uses T and 2T)")
    ap.add_argument("--frames-mono", type=int, default=96, help="T for the mono video")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    args = ap.parse_args()

    h = Harness("submission", description="SubmissionWriter vs bare ffmpeg -crf 14 (time), ours vs official (peak RSS)",
                params={"frames_nvs": args.frames_nvs, "frames_mono": args.frames_mono, "repeats": args.repeats})
    memory: dict[str, dict] = {}
    summary = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for benchmark, n in ((NVS, args.frames_nvs), (MONO, args.frames_mono)):
            b = get_benchmark(benchmark)
            group = f"{benchmark} {b.width}x{b.height}, {n} frames"
            frames = render_like(0, n, b.height, b.width)
            raw = tmp / "frames.raw"
            frames.tofile(raw)
            t = interleaved({
                "bare": lambda: bare_ffmpeg(raw, tmp / "bare.mp4", b.width, b.height, b.fps),
                "ours": lambda: ours(frames, benchmark, tmp / "ours.zip"),
            }, args.repeats)
            raw.unlink()
            del frames
            cpu_ratio = statistics.median(t["ours"]["cpu"]) / statistics.median(t["bare"]["cpu"])
            h.add("bare ffmpeg -crf 14 (raw file -> mp4)", t["bare"]["wall"], group=group, items=n, unit="frame",
                  baseline=True, cpu_s=t["bare"]["cpu"])
            h.add("SubmissionWriter (numpy -> staged mp4 -> zip)", t["ours"]["wall"], group=group, items=n,
                  unit="frame", cpu_s=t["ours"]["cpu"], cpu_ratio=cpu_ratio)
            rss = {how: {"T": peak_rss_mb(benchmark, n, how, tmp), "2T": peak_rss_mb(benchmark, 2 * n, how, tmp)}
                   for how in ("ours", "official")}
            for v in rss.values():
                v["growth_2T_over_T"] = v["2T"] / v["T"]
            memory[benchmark] = {"frames_T": n, **rss}
            summary.append((group, cpu_ratio, rss))
    h.params["peak_rss_mb"] = memory
    h.finish()
    print(f"\n{'video':<36} {'cpu ratio':>9}   {'RSS T / 2T MB (ours)':>20} {'growth':>6}   "
          f"{'RSS T / 2T MB (official)':>24} {'growth':>6}")
    for group, cpu_ratio, rss in summary:
        o, f = rss["ours"], rss["official"]
        print(f"{group:<36} {cpu_ratio:>9.2f}   {o['T']:>10.0f} / {o['2T']:>7.0f} {o['growth_2T_over_T']:>6.2f}   "
              f"{f['T']:>14.0f} / {f['2T']:>7.0f} {f['growth_2T_over_T']:>6.2f}")


if __name__ == "__main__":
    main()

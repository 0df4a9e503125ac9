"""``evaluate`` on one full-resolution NVS video: time against bare ffmpeg decoding, and peak memory for T vs 2T.

A one-camera NVS store of photo-like 1100x1604 frames (benchmarks/_media.py: H.264 encode/decode as released,
converted losslessly) and a prediction video of the same camera (other texture seed: a realistic error) packed
in a submission-layout zip. Measured in the same run:

- time: bare ``ffmpeg`` decoding the prediction video to rgb24 into /dev/null (the floor: no Python at all),
  vs ``evaluate`` of the zip against the store (decode by streaming + ground truth read from the store +
  metrics) for PSNR, and for PSNR+SSIM, on one thread;
- memory: peak RSS (``ru_maxrss``) and peak traced Python/numpy allocation (``tracemalloc``) of a child process
  that evaluates a T-frame and a 2T-frame video (PSNR+SSIM).

    .venv/bin/python benchmarks/evaluate.py [--frames 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import build_nvs_raw, write_head_videos  # noqa: E402
from harness import Harness  # noqa: E402

from nersemble_zarr.core.benchmark import submission_video_path  # noqa: E402
from nersemble_zarr.raw import ffmpeg_exe  # noqa: E402


def prepare(folder: Path, frames: int) -> tuple[Path, Path, Path]:
    """``(store, prediction zip, prediction mp4)`` for ``frames`` frames, built once per frame count."""
    folder = folder / f"evaluate_{frames}f"
    store, zip_path, pred_mp4 = folder / "store.zarr", folder / "predictions.zip", folder / "pred" / "cam.mp4"
    if (folder / "done").is_file():
        return store, zip_path, pred_mp4
    shutil.rmtree(folder, ignore_errors=True)
    from nersemble_zarr.pipelines.convert import convert_benchmark

    print(f"building a {frames}-frame full-resolution store and prediction in {folder} (once) ...", file=sys.stderr)
    rgb, alpha = write_head_videos(folder / "gt", frames)
    p, s, serials, _ = build_nvs_raw(folder / "raw", rgb, alpha, 1, frames)
    convert_benchmark(folder / "raw", store, progress=False)  # the other cameras' videos are absent: only ours converts
    write_head_videos(folder / "pred", frames, seed=1)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.write(pred_mp4, submission_video_path(p, s, serials[0]))
    (folder / "done").write_text("ok\n")
    return store, zip_path, pred_mp4


def run_evaluate(zip_path: Path, store: Path, metrics: list[str]) -> dict:
    import warnings

    from nersemble_zarr.evaluate.run import evaluate

    warnings.filterwarnings("ignore", message=".*not completely converted.*")  # the store holds one camera on purpose
    return evaluate(str(zip_path), store, metrics=metrics, split="all", threads=1).to_dict()


def child_memory(zip_path: Path, store: Path) -> None:
    """In a child process: evaluate PSNR+SSIM and print peak RSS and peak traced allocation (bytes) as JSON."""
    import resource
    import tracemalloc

    import nersemble_zarr.evaluate.run  # noqa: F401  (imports before the measurement starts)

    tracemalloc.start()
    result = run_evaluate(zip_path, store, ["psnr", "ssim"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rss_bytes": rss, "peak_traced_bytes": peak, "n_frames": result["videos"][0]["n_frames"]}))


def measure_memory(zip_path: Path, store: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child-memory", str(zip_path), str(store)],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="T: frames of the timed video (memory: T and 2T)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case; medians are reported")
    parser.add_argument("--child-memory", nargs=2, metavar=("ZIP", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(Path(args.child_memory[0]), Path(args.child_memory[1]))
        return

    work = Path(tempfile.gettempdir()) / "nersemble_zarr_bench"
    store, zip_path, pred_mp4 = prepare(work, args.frames)
    store2, zip2, _ = prepare(work, 2 * args.frames)
    n = args.frames
    h = Harness("evaluate", description="evaluate PSNR/SSIM of one full-resolution NVS video vs bare ffmpeg decode; "
                "peak memory for T vs 2T frames",
                params={"frames": n, "width": 1100, "height": 1604, "repeats": args.repeats, "threads": 1})
    group = f"one 1100x1604 video, {n} frames"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(pred_mp4), "-map", "0:v:0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    h.time("ffmpeg -> /dev/null (rgb24)", lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True),
           group=group, items=n, unit="frame", baseline=True, repeats=args.repeats)
    h.time("evaluate zip: psnr", lambda: run_evaluate(zip_path, store, ["psnr"]), group=group, items=n, unit="frame",
           repeats=args.repeats)
    h.time("evaluate zip: psnr+ssim", lambda: run_evaluate(zip_path, store, ["psnr", "ssim"]), group=group, items=n,
           unit="frame", repeats=args.repeats)
    mem_t, mem_2t = measure_memory(zip_path, store), measure_memory(zip2, store2)
    h.add(f"peak memory, {n} frames", [0.0], group="memory (psnr+ssim, child process)", note="see extra",
          peak_rss_bytes=mem_t["peak_rss_bytes"], peak_traced_bytes=mem_t["peak_traced_bytes"])
    h.add(f"peak memory, {2 * n} frames", [0.0], group="memory (psnr+ssim, child process)", note="see extra",
          peak_rss_bytes=mem_2t["peak_rss_bytes"], peak_traced_bytes=mem_2t["peak_traced_bytes"],
          rss_ratio_2t_vs_t=round(mem_2t["peak_rss_bytes"] / mem_t["peak_rss_bytes"], 3),
          traced_ratio_2t_vs_t=round(mem_2t["peak_traced_bytes"] / mem_t["peak_traced_bytes"], 3))
    print(f"peak RSS {mem_t['peak_rss_bytes'] / 2**20:.0f} MiB ({n} frames) vs {mem_2t['peak_rss_bytes'] / 2**20:.0f} MiB "
          f"({2 * n} frames): {mem_2t['peak_rss_bytes'] / mem_t['peak_rss_bytes']:.3f}x; traced peak "
          f"{mem_t['peak_traced_bytes'] / 2**20:.1f} vs {mem_2t['peak_traced_bytes'] / 2**20:.1f} MiB: "
          f"{mem_2t['peak_traced_bytes'] / mem_t['peak_traced_bytes']:.3f}x")
    h.finish()


if __name__ == "__main__":
    main()

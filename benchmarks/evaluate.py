"""``evaluate`` on one full-resolution NVS video: time against bare ffmpeg decoding, and peak memory for T vs 2T.

A one-camera NVS store of photo-like 1100x1604 frames (benchmarks/_media.py: H.264 encode/decode as released,
converted losslessly) and a prediction video of the same camera (other texture seed: a realistic error) packed
in a submission-layout zip. Measured in the same run:

- time: bare ``ffmpeg`` decoding the prediction video to rgb24 into /dev/null (the floor: no Python at all),
  vs ``evaluate`` of the zip against the store (decode by streaming + ground truth read from the store +
  metrics) for PSNR, and for PSNR+SSIM (one job; SSIM on the job's share of the cores less one for the
  decode, and forced on 2 threads), and PSNR+SSIM with the previous SSIM implementation (the before figure);
- the per-frame stages on their own (frames already decoded/read into memory): the prediction decode as
  ``evaluate`` streams it, the ground-truth read, PSNR, SSIM (ours on 1 and 2 threads; the previous
  implementation, scipy ``correlate1d`` over whole-frame moment maps; torchmetrics' own SSIM on one torch
  thread when torch is installed), and the arithmetic floor of SSIM (multiply-adds per frame) in ``extra``;
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

import numpy as np

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


def ssim_previous(pred: np.ndarray, gt: np.ndarray) -> float:
    """The implementation before the banded one (reference for the before/after figure): scipy ``correlate1d``
    (mirror = torch's reflect) over the 5 whole-frame float32 moment maps per channel."""
    from scipy.ndimage import correlate1d

    from nersemble_zarr.evaluate.metrics import SSIM_K1, SSIM_K2, gaussian_window

    g, c1, c2, total = gaussian_window(), SSIM_K1 ** 2, SSIM_K2 ** 2, 0.0
    for c in range(3):
        x, y = pred[:, :, c] / np.float32(255), gt[:, :, c] / np.float32(255)
        m = correlate1d(correlate1d(np.stack([x, y, x * x, y * y, x * y]), g, axis=-1, mode="mirror"), g, axis=-2,
                        mode="mirror")
        mx, my = m[0], m[1]
        sx, sy, sxy = np.maximum(m[2] - mx * mx, 0), np.maximum(m[3] - my * my, 0), m[4] - mx * my
        total += float((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sx + sy + c2))).mean(
            dtype=np.float64))
    return total / 3


def prediction_key(zip_path: Path) -> tuple[str, tuple[int, str, str]]:
    """``(benchmark, (participant, sequence, serial))`` of the zip's one video."""
    from nersemble_zarr.core.benchmark import BENCHMARKS
    from nersemble_zarr.evaluate.sources import as_predictions

    (key,) = as_predictions(str(zip_path), None).keys()
    return next(name for name, b in BENCHMARKS.items() if key[0] in b.participants), key


def decode_prediction(zip_path: Path) -> list[np.ndarray]:
    """Every prediction frame as ``evaluate`` streams it from the zip (ffmpeg pipe → numpy)."""
    from nersemble_zarr.evaluate.sources import as_predictions

    source = as_predictions(str(zip_path), None)
    with source.open(prediction_key(zip_path)[1]) as video:
        return list(video.frames)


def read_ground_truth(zip_path: Path, store: Path) -> list[np.ndarray]:
    """Every ground-truth frame of the video's camera, read from the store as ``evaluate`` reads it."""
    import warnings

    from nersemble_zarr.core import schema
    from nersemble_zarr.read.resolver import open_root, resolve_sequence

    name, (p, s, serial) = prediction_key(zip_path)
    root = open_root(store)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not completely converted.*")
        res = resolve_sequence(root, name, p, s, cameras=[serial], level=1)
    images, cam = res.frames(root, schema.IMAGES), res.camera_positions[0]
    return [np.asarray(images[cam, t]) for t in range(len(res.timesteps))]


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


def stages(h: Harness, zip_path: Path, store: Path, n: int, repeats: int) -> None:
    """The per-frame stages of ``evaluate`` on their own, and SSIM implementations on the same in-memory frames."""
    from nersemble_zarr.evaluate import metrics as M

    group = f"stages, {n} frames in memory (ms/frame = 1000 / rate)"
    h.time("decode prediction (ffmpeg pipe -> numpy, as evaluate streams it)", lambda: decode_prediction(zip_path),
           group=group, items=n, unit="frame", repeats=repeats, baseline=True)
    h.time("ground-truth read (store, integrity guard)", lambda: read_ground_truth(zip_path, store), group=group,
           items=n, unit="frame", repeats=repeats)
    pred, gt = decode_prediction(zip_path), read_ground_truth(zip_path, store)
    pairs = list(zip(pred, gt))
    h.time("psnr", lambda: [M.psnr(x, y) for x, y in pairs], group=group, items=n, unit="frame", repeats=repeats)
    hh, ww = gt[0].shape[:2]
    per_pixel = 3 * 4 * 2 * M.SSIM_KERNEL  # 3 channels x 4 moment maps x (vertical + horizontal) 11 taps
    banded = 3 * 4 * ((M.SSIM_BAND_ROWS + 10) + (M.SSIM_TILE_COLS + 10))  # the band/tile matrix products
    case = h.time("ssim (banded BLAS, 1 thread)", lambda: [M.ssim(x, y) for x, y in pairs], group=group, items=n,
                  unit="frame", repeats=repeats)
    case.extra.update(separable_mac_per_frame=per_pixel * hh * ww, banded_mac_per_frame=banded * hh * ww,
                      gmac_per_s=round(banded * hh * ww * n / case.median_s / 1e9, 1))
    h.time("ssim (banded BLAS, 2 threads)", lambda: [M.ssim(x, y, threads=2) for x, y in pairs], group=group,
           items=n, unit="frame", repeats=repeats)
    h.time("ssim, previous implementation (scipy correlate1d, whole frame)", lambda: [ssim_previous(x, y)
           for x, y in pairs], group=group, items=n, unit="frame", repeats=repeats)
    diff = max(abs(M.ssim(x, y) - ssim_previous(x, y)) for x, y in pairs[:3])
    print(f"ssim banded vs previous: max |difference| {diff:.2e} over 3 frames")
    try:
        import torch
        from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    except ImportError:
        print("torch/torchmetrics not installed: no torchmetrics reference row")
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def tm_all() -> list[float]:
            with torch.no_grad():
                return [float(tm_ssim(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255,
                                      torch.from_numpy(y).permute(2, 0, 1)[None].float() / 255, data_range=1.0))
                        for x, y in pairs[:few]]

        few = min(n, 5)  # ~2 s a frame
        values = tm_all()
        diff = max(abs(M.ssim(x, y) - v) for (x, y), v in zip(pairs, values))
        case = h.time(f"ssim, torchmetrics (1 torch thread, first {few} frames)", tm_all, group=group, items=few,
                      unit="frame", repeats=1)
        case.extra.update(max_abs_difference_to_ours=diff)
    finally:
        torch.set_num_threads(previous)


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
    # the memory children first: a child's ru_maxrss starts at this process's RSS when it forks (Linux)
    from nersemble_zarr.evaluate import metrics as M

    ours = M.ssim
    M.ssim = lambda x, y, threads=1: ours(x, y, threads=2)  # type: ignore[assignment]
    try:
        h.time("evaluate zip: psnr+ssim, SSIM forced on 2 threads", lambda: run_evaluate(zip_path, store, ["psnr", "ssim"]),
               group=group, items=n, unit="frame", repeats=args.repeats)
    finally:
        M.ssim = ours
    M.ssim = lambda x, y, threads=1: ssim_previous(x, y)  # type: ignore[assignment]  # the before figure
    try:
        h.time("evaluate zip: psnr+ssim, previous SSIM (scipy, whole frame)",
               lambda: run_evaluate(zip_path, store, ["psnr", "ssim"]), group=group, items=n, unit="frame",
               repeats=args.repeats)
    finally:
        M.ssim = ours
    mem_t, mem_2t = measure_memory(zip_path, store), measure_memory(zip2, store2)
    stages(h, zip_path, store, n, args.repeats)
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

"""Full-scale projection: store size and conversion hours per tier for the whole NVS and mono benchmarks.

Measured here: a full-resolution NVS raw folder (``--cameras`` cameras × ``--frames`` frames of photo-like synthetic
heads through a real H.264 encode/decode, benchmarks/_media.py) is converted once per tier configuration with
``convert_benchmark`` (threads: :func:`default_threads` units at once on this machine's cores). From each run:
bytes per stored image and alpha frame, and the conversion cost per video frame in core-seconds
(``wall × cores / frames``). Ratios against the ``lossless`` tier of the same run.

Projected (the model, stated in the JSON):

- NVS: 3,516 frames × 13 cameras = 45,708 image frames + 45,708 alpha frames, 1604×1100, in 65 × 2 videos of ~703
  frames (5 sequences × 13 cameras). Mono: ``--mono-frames`` frames per train sequence (an ASSUMPTION: the
  benchmark facts do not hold mono frame counts; default 250 ≈ 10 s at 24.3 fps) × 18 train sequences × 5
  participants, one camera, 512×512; size and cost scaled by pixels from the full-resolution measurement.
- Size = frames × measured bytes per frame (+ point clouds, tracking and calibration, which no tier changes, left out).
- Hours on 2 cores = frames × core-seconds per frame / 2. Hours on a 16-worker cluster (one core each) =
  max(frames × cost / 16, the last wave: ceil(videos / 16) × one video's cost) — a video is one task and does not
  split — plus the driver's serial part (planning: probing every video header; measured per video here), and it
  assumes the shared storage absorbs the aggregate write rate (reported as MB/s).

    .venv/bin/python benchmarks/projection.py [--frames 8] [--cameras 13] [--mono-frames 250]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import build_nvs_raw, write_head_videos  # noqa: E402
from harness import Harness  # noqa: E402

from nersemble_zarr.core import benchmark as bm  # noqa: E402
try:
    from nersemble_zarr.jobs.runner import default_threads  # noqa: E402
except ImportError:  # older layout
    from nersemble_zarr.pipelines.convert import default_threads  # noqa: E402
from nersemble_zarr.pipelines.convert import ConvertOptions, convert_benchmark, plan_conversion  # noqa: E402

NVS_FRAMES_PER_ASSET = 3516 * 13
NVS_VIDEOS = 5 * 13  # per asset
NVS_MP4_BYTES = 3.34e9  # images + alpha mp4 of the NVS download without point clouds (issue 14)
MONO_TRAIN_SEQUENCES = 18 * 5
WORKERS = 16

#: label -> (tier, levels, full)
CONFIGS = {
    "lossless": ("lossless", (), True),
    "compact": ("compact", (), True),
    "jpeg q95": ("jpeg", (), True),
    "lossless, level 1/2 only": ("lossless", (2,), False),
    "compact, level 1/2 only": ("compact", (2,), False),
    "jpeg q95, level 1/2 only": ("jpeg", (2,), False),
}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def frame_bytes(store: Path, seq: str, name: str) -> int:
    """Bytes of ``images``/``alpha`` of the sequence group, at full resolution and in its levels."""
    group = store / seq
    return du(group / name) + sum(du(level / name) for level in group.glob("level_*"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--cameras", type=int, default=13)
    ap.add_argument("--mono-frames", type=int, default=250, help="ASSUMED frames per mono train sequence")
    ap.add_argument("--repeats", type=int, default=3, help="conversions per configuration, round-robin (median taken)")
    args = ap.parse_args()
    cores = min(os.cpu_count() or 1, default_threads())
    h = Harness("projection", description=__doc__.split("\n\n")[0], params={
        "frames": args.frames, "cameras": args.cameras, "height": 1604, "width": 1100, "cores_used": cores,
        "nvs_frames_per_asset": NVS_FRAMES_PER_ASSET, "nvs_videos_per_asset": NVS_VIDEOS,
        "mono_frames_per_train_sequence_assumed": args.mono_frames, "mono_train_sequences": MONO_TRAIN_SEQUENCES,
        "workers": WORKERS, "repeats": args.repeats,
    })
    workdir = Path(tempfile.mkdtemp(prefix="bench-projection-"))
    rows = []
    try:
        rgb, alpha = write_head_videos(workdir / "video", args.frames)
        raw = workdir / "raw"
        p, s, _, videos = build_nvs_raw(raw, rgb, alpha, args.cameras, args.frames)
        seq = f"nvs/{bm.participant_dir(p)}/{s}"
        n_frames = 2 * args.cameras * args.frames  # images + alpha
        walls: dict[str, list[float]] = {label: [] for label in CONFIGS}
        plans: dict[str, tuple[float, int]] = {}
        sizes: dict[str, tuple[int, int, int]] = {}
        for _ in range(args.repeats):  # round-robin: a load change on the shared machine hits every configuration
            for label, (tier, levels, full) in CONFIGS.items():
                store = workdir / f"{label.replace(' ', '_').replace(',', '').replace('/', '')}.zarr"
                shutil.rmtree(store, ignore_errors=True)
                options = ConvertOptions(benchmarks="nvs", image_codec=tier, levels=levels, full=full)
                t0 = time.perf_counter()
                plan = plan_conversion(raw, store, options, sample_frames=True)
                plans[label] = (time.perf_counter() - t0, plan.estimated_bytes)
                t0 = time.perf_counter()
                report = convert_benchmark(raw, store, benchmarks="nvs", image_codec=tier, levels=levels, full=full,
                                           progress=False, force=True)
                walls[label].append(time.perf_counter() - t0)
                assert report.ok, report.summary()
                sizes[label] = (frame_bytes(store, seq, "images"), frame_bytes(store, seq, "alpha"), du(store))
                shutil.rmtree(store, ignore_errors=True)
        for label in CONFIGS:
            wall = statistics.median(walls[label])
            plan_s, estimate = plans[label]
            images_bytes, alpha_bytes, store_bytes = sizes[label]
            img = images_bytes / (args.cameras * args.frames)
            alp = alpha_bytes / (args.cameras * args.frames)
            core_s = wall * cores / n_frames
            video_s = core_s * NVS_FRAMES_PER_ASSET / NVS_VIDEOS  # one ~703-frame video on one core
            nvs_frames = 2 * NVS_FRAMES_PER_ASSET
            nvs_bytes = NVS_FRAMES_PER_ASSET * (img + alp)
            hours_2 = nvs_frames * core_s / 2 / 3600
            driver_s = plan_s / len(videos) * 2 * NVS_VIDEOS  # header probes (+ sampling) of every video, serial
            hours_16 = (max(nvs_frames * core_s / WORKERS, math.ceil(2 * NVS_VIDEOS / WORKERS) * video_s) + driver_s) / 3600
            mono_scale = (512 * 512) / (1604 * 1100)
            mono_frames = args.mono_frames * MONO_TRAIN_SEQUENCES
            mono_bytes = mono_frames * (img + alp) * mono_scale
            mono_video_s = core_s * mono_scale * args.mono_frames
            mono_hours_2 = 2 * mono_frames * core_s * mono_scale / 2 / 3600
            mono_hours_16 = max(2 * mono_frames * core_s * mono_scale / WORKERS,
                                math.ceil(2 * MONO_TRAIN_SEQUENCES / WORKERS) * mono_video_s) / 3600
            projection = {
                "image_bytes_per_frame": img, "alpha_bytes_per_frame": alp, "core_s_per_frame": core_s,
                "plan_s": plan_s, "estimate_bytes": estimate, "real_bytes": store_bytes,
                "estimate_ratio": estimate / store_bytes,
                "nvs_store_gb": nvs_bytes / 1e9, "nvs_vs_mp4": nvs_bytes / NVS_MP4_BYTES,
                "nvs_hours_2_cores": hours_2, "nvs_hours_16_workers": hours_16,
                "nvs_16_workers_write_mb_s": nvs_bytes / (hours_16 * 3600) / 1e6,
                "mono_store_gb": mono_bytes / 1e9, "mono_hours_2_cores": mono_hours_2, "mono_hours_16_workers": mono_hours_16,
            }
            h.add(label, walls[label], group="convert", items=n_frames, unit="frame", baseline=label == "lossless", **projection)
            rows.append((label, projection))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    h.params["model"] = (
        "core_s_per_frame = wall x cores_used / video frames converted (images + alpha); NVS 2 cores: frames x cost / 2; "
        "16 workers: max(frames x cost / 16, ceil(130 videos / 16) x one 703-frame video's cost) + the driver's planning "
        "(per-video header probe, serial); mono: per-frame cost and size scaled by pixels (512x512 vs 1604x1100); "
        "point clouds, tracking, calibration not included"
    )
    h.finish()
    base = dict(rows)["lossless"]
    print(f"{'config':<26}{'img MB/fr':>10}{'NVS GB':>8}{'vs lossless':>12}{'vs mp4':>8}{'2 cores h':>10}{'16 wk h':>9}"
          f"{'mono GB':>9}{'mono 2c h':>10}{'est/real':>9}")
    for label, r in rows:
        print(f"{label:<26}{r['image_bytes_per_frame'] / 1e6:>10.3f}{r['nvs_store_gb']:>8.1f}"
              f"{base['nvs_store_gb'] / r['nvs_store_gb']:>11.2f}x{r['nvs_vs_mp4']:>7.1f}x{r['nvs_hours_2_cores']:>10.2f}"
              f"{r['nvs_hours_16_workers']:>9.2f}{r['mono_store_gb']:>9.1f}{r['mono_hours_2_cores']:>10.2f}{r['estimate_ratio']:>9.2f}")


if __name__ == "__main__":
    main()

"""Reading the store at full NVS resolution (1604×1100): random frames, whole-sequence scans, DataLoader.

All ratios are against baselines measured in the same run on the same videos:
  * one random (camera, timestep) frame through each API — xarray ``Dataset.isel().values``, the
    data manager's ``load_image``, the torch ``FrameDataset`` item (frame + alpha), zarr directly —
    vs the official way: open the mp4 and decode up to the frame (``raw.video.read_frame``); goal >= 25x;
  * scanning the whole sequence (all cameras × frames) with dask vs sequential mp4 decode of the
    same videos with ``iter_frames``; goal >= 1.5x on 2 cores;
  * DataLoader (2 workers, shuffled, batch 8) samples/s at full and ½ resolution, and the
    downscale throughput that wrote the ½ level.

    .venv/bin/python benchmarks/read.py [--cameras 4] [--frames 60] [--reads 12] [--baseline-reads 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import write_head_videos  # noqa: E402

from nersemble_zarr import benchmark as bm  # noqa: E402
from nersemble_zarr.raw import CameraParams, iter_frames, read_frame, write_camera_params, write_metadata  # noqa: E402

warnings.filterwarnings("ignore", message="Consolidated metadata")
# only the first --cameras train cameras get videos: the rest are left out of the store on purpose
warnings.filterwarnings("ignore", message=".*are not completely converted and are left out")


def build_raw(root: Path, rgb: Path, alpha: Path, n_cameras: int, n_frames: int) -> tuple[int, str, list[str]]:
    """An NVS raw folder whose first ``n_cameras`` train cameras of participant 388 hold the test videos."""
    b = bm.NVS_BENCHMARK
    p = b.participants[0]
    s = b.sequences[p][0]
    bench = root / bm.NVS
    bench.mkdir(parents=True)
    write_metadata(bench / bm.metadata_path(), {
        "sequences": {str(q): {"sequence_name": b.sequences[q][0], "timesteps": list(range(n_frames))} for q in b.participants}
    })
    calib = bench / bm.calibration_path(p)
    calib.parent.mkdir(parents=True)
    k = np.array([[2000.0, 0, 550], [0, 2000.0, 802], [0, 0, 1]])
    write_camera_params(calib, CameraParams({x: np.eye(4) for x in bm.SERIALS}, {x: k for x in bm.SERIALS}))
    serials = list(b.train_serials[:n_cameras])
    for serial in serials:
        for kind, src in (("images", rgb), ("alpha_maps", alpha)):
            dst = bench / bm.video_path(p, s, serial, kind)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
    return p, s, serials


def per_call(fn, calls: list, repeats: int = 1) -> float:
    """Median seconds of ``fn(*args)`` over ``calls`` (each repeated ``repeats`` times)."""
    times = []
    for args in calls * repeats:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4, help="train cameras in the sequence (max 13)")
    ap.add_argument("--frames", type=int, default=60, help="frames per video")
    ap.add_argument("--reads", type=int, default=12, help="random frame reads per store API")
    ap.add_argument("--baseline-reads", type=int, default=5, help="random frame reads with the mp4 baseline (slow)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    import dask
    import torch
    import zarr
    from torch.utils.data import DataLoader

    from nersemble_zarr import NVSDataManager, open_sequence
    from nersemble_zarr.convert import convert_benchmark
    from nersemble_zarr.downscale import downscale_store
    from nersemble_zarr.torch_dataset import FrameDataset

    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    res: dict = {"cameras": args.cameras, "frames": args.frames, "height": 1604, "width": 1100, "cores": os.cpu_count()}
    try:
        rgb, alpha = write_head_videos(work / "src", args.frames)
        p, s, serials = build_raw(work / "raw", rgb, alpha, args.cameras, args.frames)
        store = work / "store.zarr"
        convert_benchmark(work / "raw", store, benchmarks=bm.NVS, progress=False)
        rng = np.random.default_rng(0)
        picks = [(int(rng.integers(len(serials))), int(rng.integers(args.frames))) for _ in range(args.reads)]
        videos = {x: str(work / "raw" / bm.NVS / bm.video_path(p, s, x)) for x in serials}

        # --- random frame reads --------------------------------------------------------------
        base_picks = [(videos[serials[c]], t) for c, t in picks[: args.baseline_reads]]
        t_base = per_call(read_frame, base_picks)
        ds = open_sequence(store, bm.NVS, p, s)
        t_xr = per_call(lambda c, t: ds.images.isel(camera=c, timestep=t).values, picks)
        dm = NVSDataManager(store, p)
        t_dm = per_call(lambda c, t: dm.load_image(s, serials[c], t, as_uint8=True), picks)
        t_dm_float = per_call(lambda c, t: dm.load_image(s, serials[c], t), picks)
        tds = FrameDataset(store, bm.NVS)
        n_t = args.frames
        t_torch = per_call(lambda c, t: tds[c * n_t + t], picks)
        arr = zarr.open_group(str(store), mode="r")[f"nvs/{p:03d}/{s}/images"]
        t_zarr = per_call(lambda c, t: arr[c, t], picks)
        # a cold open included: what a one-off script pays
        t_cold = per_call(lambda c, t: NVSDataManager(store, p).load_image(s, serials[c], t, as_uint8=True), picks[:4])
        res["random_read_ms"] = {
            "mp4 open+decode (read_frame)": t_base * 1e3,
            "xarray Dataset.isel().values": t_xr * 1e3,
            "data manager load_image(as_uint8)": t_dm * 1e3,
            "data manager load_image (float64)": t_dm_float * 1e3,
            "torch FrameDataset item (+alpha)": t_torch * 1e3,
            "zarr array[c, t]": t_zarr * 1e3,
            "data manager, fresh open each read": t_cold * 1e3,
        }
        res["random_read_speedup_vs_mp4"] = {k: t_base / (v / 1e3) for k, v in res["random_read_ms"].items()}

        # --- whole-sequence scan ---------------------------------------------------------------
        t0 = time.perf_counter()
        for x in serials:
            for _ in iter_frames(videos[x]):
                pass
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            maxima = open_sequence(store, bm.NVS, p, s).images.max(dim=("height", "width", "rgb")).compute()
        t_dask = time.perf_counter() - t0
        assert maxima.shape == (len(serials), args.frames)
        n_frames = len(serials) * args.frames
        res["scan"] = {
            "frames": n_frames,
            "mp4 sequential decode fps": n_frames / t_decode,
            "dask threads fps": n_frames / t_dask,
            "speedup": t_decode / t_dask,
        }

        # --- downscale and DataLoader ------------------------------------------------------------
        report = downscale_store(store, [2], progress=False)
        res["downscale_level2_fps"] = report.frames / report.seconds
        res["dataloader_samples_per_s"] = {}
        for level in (1, 2):
            ds_level = FrameDataset(store, bm.NVS, level=level)
            loader = DataLoader(ds_level, batch_size=8, shuffle=True, num_workers=2,
                                generator=torch.Generator().manual_seed(0), persistent_workers=False)
            t0 = time.perf_counter()
            n = sum(batch["image"].shape[0] for batch in loader)
            res["dataloader_samples_per_s"][f"level {level}"] = n / (time.perf_counter() - t0)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nreading a {args.cameras}-camera x {args.frames}-frame NVS sequence at 1604x1100 ({res['cores']} cores)\n")
    print(f"{'random frame read':42s} {'ms':>9s} {'vs mp4':>9s}")
    for name, ms in res["random_read_ms"].items():
        print(f"{name:42s} {ms:9.2f} {res['random_read_speedup_vs_mp4'][name]:8.1f}x")
    sc = res["scan"]
    print(f"\nscan {sc['frames']} frames: mp4 decode {sc['mp4 sequential decode fps']:.1f} fps, dask "
          f"{sc['dask threads fps']:.1f} fps -> {sc['speedup']:.2f}x")
    print(f"downscale to level 2: {res['downscale_level2_fps']:.1f} frames/s")
    for name, v in res["dataloader_samples_per_s"].items():
        print(f"DataLoader (2 workers, batch 8, shuffled) {name}: {v:.1f} samples/s")
    out = Path(__file__).resolve().parent / "results" / "read.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

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
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import build_nvs_raw, write_head_videos  # noqa: E402
from harness import Harness  # noqa: E402

from nersemble_zarr.core import benchmark as bm  # noqa: E402
from nersemble_zarr.raw import iter_frames, read_frame  # noqa: E402

warnings.filterwarnings("ignore", message="Consolidated metadata")
# only the first --cameras train cameras get videos: the rest are left out of the store on purpose
warnings.filterwarnings("ignore", message=".*are not completely converted and are left out")


def per_call(fn, calls: list) -> list[float]:
    """Seconds of each ``fn(*args)`` over ``calls``."""
    times = []
    for args in calls:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4, help="train cameras in the sequence (max 13)")
    ap.add_argument("--frames", type=int, default=60, help="frames per video")
    ap.add_argument("--reads", type=int, default=30, help="random frame reads per store API")
    ap.add_argument("--baseline-reads", type=int, default=5, help="random frame reads with the mp4 baseline (slow)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    import dask
    import torch
    import zarr
    from torch.utils.data import DataLoader

    from nersemble_zarr import NVSDataManager, open_sequence
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.pipelines.downscale import downscale_store
    from nersemble_zarr.read.torch_dataset import FrameDataset

    h = Harness("read", description=__doc__.split("\n")[0], params={
        "cameras": args.cameras, "frames": args.frames, "height": 1604, "width": 1100, "reads": args.reads,
        "baseline_reads": args.baseline_reads,
    })
    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    try:
        rgb, alpha = write_head_videos(work / "src", args.frames)
        p, s, serials, _ = build_nvs_raw(work / "raw", rgb, alpha, args.cameras, args.frames)
        store = work / "store.zarr"
        convert_benchmark(work / "raw", store, benchmarks=bm.NVS, progress=False)
        rng = np.random.default_rng(0)
        picks = [(int(rng.integers(len(serials))), int(rng.integers(args.frames))) for _ in range(args.reads)]
        videos = {x: str(work / "raw" / bm.NVS / bm.video_path(p, s, x)) for x in serials}

        # --- random frame reads: one (camera, timestep) at a time, in a random order ------------
        group = "random frame read"
        base_picks = [(videos[serials[c]], t) for c, t in picks[: args.baseline_reads]]
        h.add("mp4 open + decode to the frame (read_frame)", per_call(read_frame, base_picks), group=group,
              items=1, unit="frame", baseline=True)
        ds = open_sequence(store, bm.NVS, p, s)
        h.add("xarray Dataset.isel().values", per_call(lambda c, t: ds.images.isel(camera=c, timestep=t).values, picks),
              group=group, items=1, unit="frame")
        dm = NVSDataManager(store, p)
        h.add("data manager load_image(as_uint8=True)",
              per_call(lambda c, t: dm.load_image(s, serials[c], t, as_uint8=True), picks), group=group, items=1, unit="frame")
        h.add("data manager load_image (float64 / 255.)",
              per_call(lambda c, t: dm.load_image(s, serials[c], t), picks), group=group, items=1, unit="frame")
        tds = FrameDataset(store, bm.NVS)
        h.add("torch FrameDataset item (frame + alpha)", per_call(lambda c, t: tds[c * args.frames + t], picks),
              group=group, items=1, unit="frame")
        arr = zarr.open_group(str(store), mode="r")[f"nvs/{p:03d}/{s}/images"]
        h.add("zarr array[c, t]", per_call(lambda c, t: arr[c, t], picks), group=group, items=1, unit="frame")
        h.add("data manager incl. a fresh open per read",
              per_call(lambda c, t: NVSDataManager(store, p).load_image(s, serials[c], t, as_uint8=True), picks[:4]),
              group=group, items=1, unit="frame")

        # --- scanning the whole sequence --------------------------------------------------------
        n_frames = len(serials) * args.frames

        def decode_all() -> None:
            for x in serials:
                for _ in iter_frames(videos[x]):
                    pass

        def dask_scan() -> None:
            with dask.config.set(scheduler="threads"):
                maxima = open_sequence(store, bm.NVS, p, s).images.max(dim=("height", "width", "rgb")).compute()
            assert maxima.shape == (len(serials), args.frames)

        h.time("sequential mp4 decode (iter_frames)", decode_all, group="scan all cameras x frames", repeats=1,
               items=n_frames, unit="frame", baseline=True)
        h.time("dask threads over the store", dask_scan, group="scan all cameras x frames", repeats=2,
               items=n_frames, unit="frame")

        # --- downscale and DataLoader -------------------------------------------------------------
        report = downscale_store(store, [2], progress=False)
        h.add("downscale --factor 2 (dask threads)", [report.seconds], group="downscale", items=report.frames,
              unit="frame")
        for level in (1, 2):
            ds_level = FrameDataset(store, bm.NVS, level=level)

            def epoch(ds_level=ds_level) -> None:
                loader = DataLoader(ds_level, batch_size=8, shuffle=True, num_workers=2,
                                    generator=torch.Generator().manual_seed(0))
                assert sum(batch["image"].shape[0] for batch in loader) == len(ds_level)

            h.time(f"DataLoader 2 workers, batch 8, shuffled, level {level}", epoch, group="DataLoader",
                   repeats=1, items=len(ds_level), unit="sample", baseline=level == 1)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    h.finish()


if __name__ == "__main__":
    main()

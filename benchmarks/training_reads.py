"""Training reads per storage tier (#14.6): samples/s of ``FrameDataset`` through
``torch.utils.data.DataLoader(num_workers=2)`` at full resolution and at ½ (``level_2`` from ``downscale``),
against decoding the mp4 on the fly in the same run.

Data: a full-resolution (1100×1604) NVS sample (``generate_sample(scale=1)``), converted once per image tier
that ``convert --image-codec`` offers (``schema.IMAGE_CODEC_KINDS``), then ``downscale_store(factors=[2])``.
Each item is one frame and its alpha map, uint8 (``FrameDataset``'s default dtype).

Baseline ("mp4, decoded on the fly"): a Dataset whose item opens the camera's image and alpha mp4s and decodes
that frame with :func:`nersemble_zarr.raw.video.read_frame` (as the official ``load_image`` does: from the start
of the video, so the cost grows with the timestep; the sample's videos are short, real ones hold ~270 frames
per camera and sequence, so the baseline here is optimistic); at ½ it also area-averages the decoded frames.

Every source reads the same random list of ``(camera, timestep)`` items (seeded), in the same order, with
``batch_size`` 4; a repeat times one pass over them (workers started per pass, as each epoch does), and the
sources are interleaved repeat by repeat. ``uptime`` before and after is saved.

    .venv/bin/python benchmarks/training_reads.py [--frames 12] [--samples 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Subset  # noqa: E402

from nersemble_zarr.core import schema  # noqa: E402
from nersemble_zarr.imaging import area_average  # noqa: E402
from nersemble_zarr.raw.video import read_frame  # noqa: E402
from nersemble_zarr.read.torch_dataset import FrameDataset  # noqa: E402

PID = 388


class Mp4FrameDataset(Dataset):
    """Items ``(serial, timestep)`` decoded from the raw mp4s on the fly: ``image (H, W, 3)``, ``alpha (H, W, 1)``
    uint8; ``level`` 2 area-averages the decoded frames (what a user without a stored level does)."""

    def __init__(self, sequence_dir: Path, items: list[tuple[str, int]], level: int = 1) -> None:
        self.sequence_dir, self.items, self.level = sequence_dir, items, level

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        serial, t = self.items[i]
        image = read_frame(self.sequence_dir / "images" / f"cam_{serial}.mp4", t)
        alpha = read_frame(self.sequence_dir / "alpha_maps" / f"cam_{serial}.mp4", t, alpha=True)[..., None]
        if self.level > 1:
            image = area_average(image, self.level, axes=(0, 1))
            alpha = area_average(alpha, self.level, axes=(0, 1))
        return {"image": torch.from_numpy(image), "alpha": torch.from_numpy(alpha), "serial": serial, "timestep": t}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _epoch(ds: Dataset, batch_size: int, workers: int) -> int:
    n = 0
    for batch in DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False):
        n += len(batch["image"])
    return n


def _available_tiers() -> list[str]:
    return list(getattr(schema, "IMAGE_CODEC_KINDS", ("lossless", "jpeg")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiers", default=None, help="comma list (default: every --image-codec tier there is)")
    args = ap.parse_args()
    from harness import Harness

    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.pipelines.downscale import downscale_store
    from nersemble_zarr.testing.sample import generate_sample

    tiers = args.tiers.split(",") if args.tiers else _available_tiers()
    h = Harness("training_reads", description="samples/s (one frame + alpha, uint8) of FrameDataset through "
                f"DataLoader(num_workers={args.workers}) per storage tier at full resolution and ½ (level_2), vs "
                "decoding the mp4 on the fly (read_frame), same items, interleaved",
                params={"frames": args.frames, "samples": args.samples, "repeats": args.repeats,
                        "batch_size": args.batch_size, "num_workers": args.workers, "tiers": tiers,
                        "uptime_before": _uptime()})
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        raw = generate_sample(tmp / "raw", benchmarks="nvs", participants=[PID], frames=args.frames, scale=1.0,
                              pointclouds="first")
        print(f"  sample: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        seq_dir = sorted((raw / "nvs" / f"{PID:03d}" / "sequences").iterdir())[0]
        stores, store_info = {}, {}
        for tier in tiers:
            store = tmp / f"{tier}.zarr"
            t0 = time.perf_counter()
            report = convert_benchmark(raw, store, benchmarks="nvs", participants=[PID], image_codec=tier, progress=False)
            assert report.ok, report.summary()
            convert_s = time.perf_counter() - t0
            downscale_store(store, [2], progress=False)
            images = store / "nvs" / f"{PID:03d}" / seq_dir.name / schema.IMAGES
            store_info[tier] = {"convert_s": round(convert_s, 1),
                                "images_bytes": sum(f.stat().st_size for f in images.rglob("*") if f.is_file())}
            stores[tier] = store
            print(f"  converted {tier}: {convert_s:.0f} s", file=sys.stderr)
        # the same random items for every source: positions in FrameDataset's (sequence, camera, timestep) order
        probe = FrameDataset(stores[tiers[0]], "nvs", participants=[PID], with_alpha=False)
        rng = np.random.default_rng(0)
        positions = rng.choice(len(probe), size=min(args.samples, len(probe)), replace=False).tolist()
        items = [(probe[i]["serial"], int(probe[i]["timestep"])) for i in positions]
        sources: dict[tuple[str, int], Dataset] = {}
        for level in (1, 2):
            sources[("mp4, decoded on the fly", level)] = Mp4FrameDataset(seq_dir, items, level)
            for tier in tiers:
                ds = FrameDataset(stores[tier], "nvs", participants=[PID], level=level)
                got = ds[positions[0]]
                assert (got["serial"], int(got["timestep"])) == items[0]
                sources[(f"FrameDataset, {tier}", level)] = Subset(ds, positions)
        # lossless tiers return the official decode bit for bit (checked on one item)
        ref = sources[("mp4, decoded on the fly", 1)][0]
        for tier in tiers:
            got = sources[(f"FrameDataset, {tier}", 1)][0]
            if schema.ImageCodec(tier).to_attrs().get("lossless"):
                assert np.array_equal(np.asarray(got["image"]), ref["image"].numpy()), tier
        secs: dict[tuple[str, int], list[float]] = {k: [] for k in sources}
        for _ in range(args.repeats):
            for key, ds in sources.items():
                t0 = time.perf_counter()
                n = _epoch(ds, args.batch_size, args.workers)
                secs[key].append(time.perf_counter() - t0)
                assert n == len(items)
        for (name, level), s in secs.items():
            h.add(name, s, group=f"level {level} ({'full' if level == 1 else '½'} resolution)", items=len(items),
                  unit="sample", baseline=name.startswith("mp4"),
                  **({"images_bytes_full_res": store_info[name.split(', ')[1]]["images_bytes"]} if name.startswith("FrameDataset") else {}))
        h.params["stores"] = store_info
        h.params["samples_per_s"] = {f"{name} @ level {level}": round(len(items) / statistics.median(s), 2)
                                     for (name, level), s in secs.items()}
    h.params["uptime_after"] = _uptime()
    h.finish()


if __name__ == "__main__":
    main()

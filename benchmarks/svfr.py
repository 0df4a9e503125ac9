"""SVFR images: reading from the store (SVFRDataManager.load_image) against the official PNG decode, and size.

Generates an SVFR sample (512x512 rgb.png, the textured head over a plain background), converts it (lossless and
compact tiers), then times, in the same run:

- ``official PNG decode``: ``np.asarray(PIL.Image.open(rgb.png))``, what the official ``SVFRDataManager.load_image``
  does (baseline);
- ``store lossless``: ``SVFRDataManager(store, pid).load_image(key)`` from the default store (blosc-lz4, crc32c);
- ``store compact``: the same from a ``--tier compact`` store (JPEG-XL lossless).

Also records bytes on disk of the PNGs and of each store's image objects. The sample's pictures are synthetic (flat
background, one textured ellipsoid): real SVFR crops hold more detail, so sizes here are indicative only.

Run: ``.venv/bin/python benchmarks/svfr.py [--images N]`` (N images per participant of 17 and 60; default 20).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Harness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="SVFR images per participant (17 and 60)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from PIL import Image

    from nersemble_zarr import SVFRDataManager
    from nersemble_zarr.core.benchmark import SVFR
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.testing.sample import generate_sample

    pids = (17, 60)
    with tempfile.TemporaryDirectory() as tmp:
        raw = generate_sample(Path(tmp) / "raw", benchmarks=(SVFR,), participants=pids, svfr_images=args.images)
        pngs = sorted((raw / SVFR).rglob("rgb.png"))
        stores = {}
        for tier in ("lossless", "compact"):
            stores[tier] = Path(tmp) / f"{tier}.zarr"
            report = convert_benchmark(raw, stores[tier], image_codec=tier, progress=False)
            assert report.ok, report.summary()
        managers = {tier: [SVFRDataManager(s, p) for p in pids] for tier, s in stores.items()}
        keys = {tier: [(dm, k) for dm in dms for k in dm.list_image_keys()] for tier, dms in managers.items()}
        n = len(pngs)
        # the store gives the official decode, bit for bit
        for (dm, k), png in zip(keys["lossless"], pngs, strict=True):
            assert np.array_equal(dm.load_image(k), np.asarray(Image.open(png)))

        def size(root: Path) -> int:
            return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and "/images/c/" in f.as_posix())

        h = Harness("svfr", description=__doc__.splitlines()[0], params={
            "images": n, "png_bytes": sum(p.stat().st_size for p in pngs),
            "store_image_bytes": {tier: size(s) for tier, s in stores.items()},
        })
        h.time("official PNG decode (PIL)", lambda: [np.asarray(Image.open(p)) for p in pngs], group="load_image",
               repeats=args.repeats, warmup=1, items=n, unit="image", baseline=True)
        for tier in ("lossless", "compact"):
            h.time(f"store {tier} (SVFRDataManager.load_image)",
                   lambda tier=tier: [dm.load_image(k) for dm, k in keys[tier]], group="load_image",
                   repeats=args.repeats, warmup=1, items=n, unit="image")
        h.finish()


if __name__ == "__main__":
    main()

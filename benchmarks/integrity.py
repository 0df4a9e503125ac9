"""Cost of the integrity guard and the crc32c checksums on one full-resolution (1604×1100) frame read.

One converted NVS store (this release: every inner chunk ends its codec chain with crc32c) and a copy whose
``images``/``alpha`` are rewritten with the previous chain (blosc-lz4 / zstd-1 without crc32c), same frames,
same shards. Random (camera, timestep) single-frame reads, interleaved case by case so load drift hits
every case alike; ratios are within this run:

  * ``previous``: zarr directly on the unguarded store, previous codec chain (the reader before this change);
  * ``guarded + crc32c``: :class:`nersemble_zarr.storage.integrity.GuardedArray` on the guarded store, new chain
    (what the data managers and FrameDataset do per frame); goal: time ratio <= 1.05;
  * ``crc32c only`` / ``guard only``: the two parts separately;
  * the full public paths on the new store: ``NVSDataManager.load_image(as_uint8=True)`` and
    ``open_sequence(...).images.isel(...).values``.

    .venv/bin/python benchmarks/integrity.py [--cameras 2] [--frames 16] [--reads 60]
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

warnings.filterwarnings("ignore", message="Consolidated metadata")
warnings.filterwarnings("ignore", message=".*are not completely converted and are left out")


def rewrite_without_crc32c(store: Path, array_path: str) -> None:
    """Rewrite ``array_path`` of ``store`` with the same data, shards and attrs but the codec chain before crc32c."""
    import zarr

    old = zarr.open_array(store / array_path, mode="r")
    data, attrs = old[...], dict(old.attrs)
    sc = old.metadata.codecs[0]  # sharding codec: (bytes, compressor, crc32c) inside
    inner = [c for c in sc.codecs[1:] if type(c).__name__ != "Crc32cCodec"]
    new = zarr.create_array(
        store / array_path, shape=old.shape, dtype=old.dtype, chunks=sc.chunk_shape, shards=old.shards,
        fill_value=old.fill_value, dimension_names=old.metadata.dimension_names, compressors=inner,
        attributes=attrs, overwrite=True, config={"write_empty_chunks": True},
    )
    new[...] = data
    assert not any(type(c).__name__ == "Crc32cCodec" for c in new.metadata.codecs[0].codecs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=2, help="train cameras in the sequence")
    ap.add_argument("--frames", type=int, default=16, help="frames per video")
    ap.add_argument("--reads", type=int, default=60, help="random frame reads per case")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    import zarr

    from nersemble_zarr import NVSDataManager, open_sequence
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.storage.integrity import GuardedArray
    from nersemble_zarr.read.store import as_zarr_store

    h = Harness("integrity", description=__doc__.split("\n")[0], params={
        "cameras": args.cameras, "frames": args.frames, "height": 1604, "width": 1100, "reads": args.reads,
    })
    work = Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    try:
        rgb, alpha = write_head_videos(work / "src", args.frames)
        p, s, serials, _ = build_nvs_raw(work / "raw", rgb, alpha, args.cameras, args.frames)
        new = work / "new.zarr"
        convert_benchmark(work / "raw", new, benchmarks=bm.NVS, progress=False)
        prev = work / "previous.zarr"
        shutil.copytree(new, prev)
        seq_path = f"{bm.NVS}/{p:03d}/{s}"
        for name in ("images", "alpha"):
            rewrite_without_crc32c(prev, f"{seq_path}/{name}")
        zarr.consolidate_metadata(prev)

        stored = [str(c) for c in zarr.open_array(new / f"{seq_path}/camera", mode="r")[...]]
        positions = [stored.index(x) for x in serials]
        rng = np.random.default_rng(0)
        picks = [(positions[int(rng.integers(len(positions)))], int(rng.integers(args.frames))) for _ in range(args.reads)]

        plain_prev = zarr.open_array(zarr.storage.LocalStore(prev, read_only=True), path=f"{seq_path}/images", mode="r")
        plain_new = zarr.open_array(zarr.storage.LocalStore(new, read_only=True), path=f"{seq_path}/images", mode="r")
        guarded_new = GuardedArray(zarr.open_array(as_zarr_store(new), path=f"{seq_path}/images", mode="r"))
        guarded_prev = GuardedArray(zarr.open_array(as_zarr_store(prev), path=f"{seq_path}/images", mode="r"))
        dm = NVSDataManager(new, p)
        ds = open_sequence(new, bm.NVS, p, s)
        cam_names = {i: stored[i] for i in positions}
        cases = {
            "previous (zarr, no guard, no crc32c)": lambda c, t: plain_prev[c, t],
            "guarded + crc32c (this release)": lambda c, t: guarded_new[c, t],
            "crc32c only (zarr, no guard)": lambda c, t: plain_new[c, t],
            "guard only (no crc32c)": lambda c, t: guarded_prev[c, t],
            "NVSDataManager.load_image uint8": lambda c, t: dm.load_image(s, cam_names[c], t, as_uint8=True),
            "open_sequence isel().values": lambda c, t: ds.images.isel(camera=ds.camera.values.tolist().index(cam_names[c]), timestep=t).values,
        }
        reference = {pick: plain_prev[pick] for pick in set(picks)}
        for fn in cases.values():  # warm-up, and every path returns the same pixels
            for pick in set(picks):
                assert np.array_equal(np.asarray(fn(*pick)), reference[pick])
        seconds: dict[str, list[float]] = {label: [] for label in cases}
        labels = list(cases)
        for i, (c, t) in enumerate(picks):
            order = labels[i % len(labels):] + labels[: i % len(labels)]  # rotate: no case always runs first
            for label in order:
                t0 = time.perf_counter()
                cases[label](c, t)
                seconds[label].append(time.perf_counter() - t0)
        for label in labels:
            h.add(label, seconds[label], group="one full-resolution frame", items=1, unit="frame",
                  baseline=label.startswith("previous"))
        sizes = {name: sum(f.stat().st_size for f in (root / seq_path / "images" / "c").rglob("*") if f.is_file())
                 for name, root in (("previous", prev), ("crc32c", new))}
        h.params["images_bytes"] = sizes
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    h.finish()


if __name__ == "__main__":
    main()

"""Image storage tiers on full-resolution (1604×1100) H.264-decoded frames: size, write cost, read cost.

Two parts, all ratios against the ``lossless`` tier (blosc-lz4) measured in the same run:

1. The candidates for the compact lossless tier, frame by frame through imagecodecs (one core): PNG level 1,
   WebP lossless, JPEG-XL lossless at efforts 1/2/3, zstd 1/3/9, blosc-lz4 — bytes, encode and decode ms.
2. The tiers as the store writes them (``schema.images_array_kwargs``: one shard of N one-frame chunks, crc32c):
   bytes per frame (full resolution and level ½), write ms per frame (whole shards), read ms of one frame from a
   fresh open (the training/random-access case) with the default decoder threads and with one
   (``NERSEMBLE_ZARR_DECODE_THREADS=1``); lossless tiers are checked bit-exact against the decode.

    .venv/bin/python benchmarks/tiers.py [--frames 8]

Writes ``benchmarks/results/tiers.json`` (harness cases: groups ``write`` / ``read one frame`` /
``read one frame, 1 decoder thread`` / ``read one frame, level 1/2`` / ``encode`` / ``decode``, sizes in each
case's ``extra``). Times are ratios (``time_ratio``: tier / lossless); the machine load is in ``machine``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import write_head_videos  # noqa: E402
from harness import Harness  # noqa: E402

import nersemble_zarr  # noqa: E402,F401
from nersemble_zarr.core import schema  # noqa: E402
from nersemble_zarr.imaging import area_average  # noqa: E402
from nersemble_zarr.pipelines.verify import psnr  # noqa: E402
from nersemble_zarr.raw import iter_frames  # noqa: E402
from nersemble_zarr.storage.codecs import DECODE_THREADS_ENV, decode_threads  # noqa: E402

TIERS = {"lossless": schema.ImageCodec("lossless"), "compact": schema.ImageCodec("compact"), "jpeg q95": schema.ImageCodec("jpeg", 95)}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def candidates() -> dict[str, tuple]:
    """name -> (encode(frame) -> bytes, decode(bytes) -> array), one core each."""
    import imagecodecs as ic

    return {
        "blosc-lz4-5": (lambda f: ic.blosc_encode(f.tobytes(), compressor="lz4", level=5, shuffle=0, typesize=1), ic.blosc_decode),
        "zstd-1": (lambda f: ic.zstd_encode(f.tobytes(), level=1), ic.zstd_decode),
        "zstd-3": (lambda f: ic.zstd_encode(f.tobytes(), level=3), ic.zstd_decode),
        "zstd-9": (lambda f: ic.zstd_encode(f.tobytes(), level=9), ic.zstd_decode),
        "png-1": (lambda f: ic.png_encode(f, level=1), ic.png_decode),
        "webp-lossless": (lambda f: ic.webp_encode(f, lossless=True), ic.webp_decode),
        "jpegxl-lossless-e1": (lambda f: ic.jpegxl_encode(f, lossless=True, effort=1), lambda b: ic.jpegxl_decode(b, numthreads=1)),
        "jpegxl-lossless-e2": (lambda f: ic.jpegxl_encode(f, lossless=True, effort=2), lambda b: ic.jpegxl_decode(b, numthreads=1)),
        "jpegxl-lossless-e3": (lambda f: ic.jpegxl_encode(f, lossless=True, effort=3), lambda b: ic.jpegxl_decode(b, numthreads=1)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    n = args.frames
    h = Harness("tiers", description=__doc__.split("\n\n")[0], params={
        "frames": n, "height": 1604, "width": 1100, "default_decode_threads": decode_threads(),
        "cpu_count": os.cpu_count(),
    })
    workdir = Path(tempfile.mkdtemp(prefix="bench-tiers-"))
    try:
        rgb_path, _ = write_head_videos(workdir / "video", n)
        frames = np.stack(list(iter_frames(rgb_path)))
        h.params["mp4_bytes_per_frame"] = rgb_path.stat().st_size / n

        # 1. candidates, per frame on one core
        mid = frames[n // 2]
        for name, (enc, dec) in candidates().items():
            blob = enc(mid)
            back = np.frombuffer(dec(blob), np.uint8).reshape(mid.shape) if name.startswith(("blosc", "zstd")) else dec(blob)
            exact = bool(np.array_equal(np.asarray(back).reshape(mid.shape), mid))
            base = name == "blosc-lz4-5"
            h.time(name, lambda: enc(mid), group="encode", repeats=3, baseline=base, items=1, unit="frame")
            h.cases[-1].extra.update({"bytes_per_frame": len(blob), "bit_exact": exact})
            h.time(name, lambda: dec(blob), group="decode", repeats=3, baseline=base, items=1, unit="frame")
            h.cases[-1].extra.update({"bytes_per_frame": len(blob), "bit_exact": exact})

        # 2. the tiers as stored
        for label, codec in TIERS.items():
            path = workdir / f"{label.replace(' ', '_')}.zarr"
            kwargs = schema.images_array_kwargs(1, n, *frames.shape[1:3], codec, n)

            def write(path: Path = path, kwargs: dict = kwargs) -> None:
                arr = zarr.create_array(path, overwrite=True, **kwargs).with_config(schema.WRITE_CONFIG)
                arr[0] = frames

            base = label == "lossless"
            h.time(label, write, group="write", repeats=3, baseline=base, items=n, unit="frame")
            size = du(path / "c") / n
            back = zarr.open_array(path, mode="r")[0]
            exact = bool(np.array_equal(back, frames))
            quality = None if exact else round(min(psnr(back[t], frames[t]) for t in range(n)), 2)
            # level 1/2 of the same frames in the same tier (levels-only stores)
            half = area_average(frames, 2, axes=(1, 2))
            hpath = workdir / f"{label.replace(' ', '_')}_half.zarr"
            arr = zarr.create_array(hpath, overwrite=True, **schema.images_array_kwargs(1, n, *half.shape[1:3], codec, n))
            arr[0] = half
            half_size = du(hpath / "c") / n
            extra = {"bytes_per_frame": size, "bytes_per_frame_level_2": half_size, "bit_exact": exact, "min_psnr_db": quality}
            h.cases[-1].extra.update(extra)

            def read_one(path: Path = path) -> None:
                arr = zarr.open_array(path, mode="r")
                for t in (0, n // 2, n - 1):
                    arr[0, t]

            h.time(label, read_one, group="read one frame", repeats=5, baseline=base, items=3, unit="frame",
                   note=f"{decode_threads()} decoder threads (default)")
            h.cases[-1].extra.update(extra)
            old = os.environ.get(DECODE_THREADS_ENV)
            os.environ[DECODE_THREADS_ENV] = "1"
            try:
                h.time(label, read_one, group="read one frame, 1 decoder thread", repeats=5, baseline=base, items=3,
                       unit="frame")
            finally:
                if old is None:
                    os.environ.pop(DECODE_THREADS_ENV, None)
                else:
                    os.environ[DECODE_THREADS_ENV] = old
            h.cases[-1].extra.update(extra)

            def read_half(path: Path = hpath) -> None:
                arr = zarr.open_array(path, mode="r")
                for t in (0, n // 2, n - 1):
                    arr[0, t]

            h.time(label, read_half, group="read one frame, level 1/2", repeats=5, baseline=base, items=3, unit="frame")
            h.cases[-1].extra.update(extra)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    h.finish()
    print(f"{'tier':<10}{'MB/frame':>10}{'½ MB/frame':>12}{'size vs lossless':>18}{'write':>8}{'read':>8}{'read 1 thr':>12}"
          f"{'read ½':>8}")
    by = {(c.group, c.label): c for c in h.cases}
    lossless = by[("write", "lossless")].extra["bytes_per_frame"]
    for label in TIERS:
        e = by[("write", label)].extra
        print(f"{label:<10}{e['bytes_per_frame'] / 1e6:>10.3f}{e['bytes_per_frame_level_2'] / 1e6:>12.3f}"
              f"{lossless / e['bytes_per_frame']:>17.2f}x{by[('write', label)].time_ratio:>7.2f}x"
              f"{by[('read one frame', label)].time_ratio:>7.2f}x{by[('read one frame, 1 decoder thread', label)].time_ratio:>11.2f}x"
              f"{by[('read one frame, level 1/2', label)].time_ratio:>7.2f}x")


if __name__ == "__main__":
    main()

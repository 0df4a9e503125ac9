"""Which codec for frames? Size, write and random-read time per full-resolution (1604×1100) frame.

Frames come from a real H.264 encode/decode of photo-like synthetic heads (benchmarks/_media.py).
Each candidate stores N frames as one shard of one-frame chunks (the store's layout); we report
bytes per frame, encode ms per frame, single-frame read ms (fresh open + one chunk) and PSNR,
with ratios against uncompressed bytes measured in the same run.

    .venv/bin/python benchmarks/codecs.py [--frames 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import write_head_videos  # noqa: E402
from harness import machine_info, median_time  # noqa: E402

import nersemble_zarr  # noqa: E402,F401  registers the JPEG codec
from nersemble_zarr.storage.codecs import JpegCodec  # noqa: E402
from nersemble_zarr.raw import iter_frames  # noqa: E402
from nersemble_zarr.pipelines.verify import psnr  # noqa: E402


def candidates() -> dict[str, dict]:
    from zarr.codecs import BloscCodec, ZstdCodec

    return {
        "raw": {"compressors": None},
        "zstd-(-1)": {"compressors": ZstdCodec(level=-1)},
        "zstd-1": {"compressors": ZstdCodec(level=1)},
        "zstd-3": {"compressors": ZstdCodec(level=3)},
        "zstd-6": {"compressors": ZstdCodec(level=6)},
        "blosc-lz4-5": {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle", typesize=1)},
        "blosc-zstd-3-bitshuffle": {"compressors": BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=1)},
        "jpeg-q95-420": {"serializer": JpegCodec(level=95), "compressors": None},
        "jpeg-q95-444": {"serializer": JpegCodec(level=95, subsampling="444"), "compressors": None},
        "jpeg-q90-420": {"serializer": JpegCodec(level=90), "compressors": None},
    }


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(frames: np.ndarray, name: str, kwargs: dict, workdir: Path) -> dict:
    n = frames.shape[0]
    shape = (1, *frames.shape)
    chunk = (1, 1, *frames.shape[1:])
    path = workdir / f"{name}.zarr"

    def write() -> None:
        arr = zarr.create_array(path, shape=shape, dtype="uint8", chunks=chunk, shards=shape, overwrite=True, **kwargs)
        arr[0] = frames

    write_s = median_time(write, 3)
    size = du(path) / n

    def read_one(t: int) -> np.ndarray:
        return zarr.open_array(path, mode="r")[0, t]

    read_s = float(np.median([median_time(lambda t=t: read_one(t), 3) for t in range(n)]))
    back = zarr.open_array(path, mode="r")[0]
    q = min(psnr(back[t], frames[t]) for t in range(n))
    return {
        "codec": name, "bytes_per_frame": size, "write_ms_per_frame": 1000 * write_s / n,
        "read_ms_per_frame": 1000 * read_s, "min_psnr_db": q, "lossless": bool(np.array_equal(back, frames)),
    }


def measure_shards(frames: np.ndarray, workdir: Path, lengths: tuple[int, ...] = (1, 8, 32, 64)) -> list[dict]:
    """Shard length S (frames of one camera per shard) vs write/read time and objects, lossless codec."""
    from nersemble_zarr.core import schema

    n = max(lengths)
    video = np.concatenate([frames] * (n // len(frames) + 1))[:n]
    rows = []
    for s_len in lengths:
        path = workdir / f"shard{s_len}.zarr"
        kwargs = schema.images_array_kwargs(1, n, *video.shape[1:3], schema.ImageCodec(), s_len)

        def write() -> None:
            arr = zarr.create_array(path, overwrite=True, **kwargs).with_config({"write_empty_chunks": True})
            for t0, t1 in schema.shard_runs(n, s_len):
                arr[0, t0:t1] = video[t0:t1]

        write_s = median_time(write, 2)
        read_s = float(np.median([median_time(lambda t=t: zarr.open_array(path, mode="r")[0, t], 3) for t in (0, n // 2, n - 1)]))
        objects = sum(1 for p in (path / "c").rglob("*") if p.is_file())
        rows.append({"shard_timesteps": s_len, "write_ms_per_frame": 1000 * write_s / n, "read_ms_per_frame": 1000 * read_s,
                     "objects_per_100_frames": objects * 100 / n, "shard_buffer_mb": s_len * video[0].nbytes / 1e6})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-codecs-"))
    try:
        rgb_path, alpha_path = write_head_videos(workdir / "video", args.frames)
        mp4_bytes = rgb_path.stat().st_size / args.frames
        rgb = np.stack(list(iter_frames(rgb_path)))
        alpha = np.stack(list(iter_frames(alpha_path, alpha=True)))
        rows = [measure(rgb, name, kw, workdir) for name, kw in candidates().items()]
        alpha_rows = [
            measure(alpha, name, kw, workdir) for name, kw in candidates().items() if not name.startswith("jpeg")
        ]
        shard_rows = measure_shards(rgb, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw = rows[0]["bytes_per_frame"]
    print(f"images: {args.frames} frames 1604x1100, source mp4 {mp4_bytes / 1e3:.1f} KB/frame")
    print(f"{'codec':<26}{'KB/frame':>10}{'vs raw':>8}{'vs mp4':>8}{'write ms':>10}{'read ms':>9}{'PSNR dB':>9}")
    for r in rows:
        print(
            f"{r['codec']:<26}{r['bytes_per_frame'] / 1e3:>10.1f}{raw / r['bytes_per_frame']:>7.1f}x"
            f"{r['bytes_per_frame'] / mp4_bytes:>7.1f}x{r['write_ms_per_frame']:>10.1f}{r['read_ms_per_frame']:>9.1f}"
            f"{r['min_psnr_db']:>9.1f}"
        )
    print("alpha:")
    araw = alpha_rows[0]["bytes_per_frame"]
    for r in alpha_rows:
        print(
            f"{r['codec']:<26}{r['bytes_per_frame'] / 1e3:>10.1f}{araw / r['bytes_per_frame']:>7.1f}x{'':>8}"
            f"{r['write_ms_per_frame']:>10.1f}{r['read_ms_per_frame']:>9.1f}"
        )
    print("shard length (lossless images, frames of one camera per shard):")
    print(f"{'S':>4}{'write ms':>10}{'read ms':>9}{'objects/100 frames':>20}{'buffer MB':>11}")
    for r in shard_rows:
        print(f"{r['shard_timesteps']:>4}{r['write_ms_per_frame']:>10.1f}{r['read_ms_per_frame']:>9.1f}"
              f"{r['objects_per_100_frames']:>20.1f}{r['shard_buffer_mb']:>11.0f}")
    out = Path(__file__).resolve().parent / "results" / "codecs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "frames": args.frames, "height": 1604, "width": 1100, "mp4_bytes_per_frame": mp4_bytes,
        "images": rows, "alpha": alpha_rows, "shards": shard_rows, "machine": machine_info(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

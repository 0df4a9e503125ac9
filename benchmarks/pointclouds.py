"""Point clouds at real size (#14.4): lossless codecs and chunking for the CSR arrays, one-timestep reads
against the raw ``.pcd`` reader, and conversion memory for N vs 2N frames.

Clouds come from the sample generator at real size (``generate_sample(points=P)``: open3d-layout binary
``.pcd``, ``x y z normal_x normal_y normal_z rgb``). Real NVS clouds have 100k–1M points (1.7–30 MB).

1. Codec options (per size): every option stores ``K`` consecutive clouds in CSR arrays (``points``/``normals``
   float32 ``(N, 3)``, ``colors`` uint8 ``(N, 3)``) in a local zarr store; size on disk, write time, and the
   read of the middle cloud (its rows of the three arrays), interleaved with ``read_pcd`` of that cloud's file
   in the same loop (ratio = option / read_pcd). Delta (on the float bits viewed as int32: float subtraction
   is not lossless) is measured for size only with numcodecs in memory. Quantisation is lossy: not measured.
2. The store as ``convert`` writes it (schema constants) read through the public reader
   ``NVSDataManager.load_pointcloud`` vs ``read_pcd`` of the same file, interleaved.
3. Conversion memory: ``convert`` of a sample with N and with 2N point-cloud frames, each in a fresh
   process; peak RSS (``ru_maxrss``) of each.

    .venv/bin/python benchmarks/pointclouds.py [--sizes 300000,1000000] [--repeats 7]
    # committed: the codec table (results/pointclouds.json), the store + memory sections (results/pointclouds_store.json)
    .venv/bin/python benchmarks/pointclouds.py --skip-store --skip-memory
    .venv/bin/python benchmarks/pointclouds.py --skip-codecs --name pointclouds_store --repeats 15 --memory-frames 8
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
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

import zarr  # noqa: E402
from zarr.codecs import BloscCodec, Crc32cCodec, TransposeCodec, ZstdCodec  # noqa: E402

from nersemble_zarr.core import schema  # noqa: E402
from nersemble_zarr.raw import read_pcd  # noqa: E402

PID = 388


def _blosc(cname: str, level: int, shuffle: str) -> BloscCodec:
    return BloscCodec(cname=cname, clevel=level, shuffle=shuffle)


#: name -> (float compressor, colour compressor, extra array->array filters for floats)
OPTIONS: dict[str, tuple] = {
    "no compression (crc32c only)": (None, None, ()),
    "zstd-3 (first release)": (ZstdCodec(level=3), ZstdCodec(level=3), ()),
    "zstd-1": (ZstdCodec(level=1), ZstdCodec(level=1), ()),
    "blosc-lz4 byte-shuffle": (_blosc("lz4", 5, "shuffle"), _blosc("lz4", 5, "noshuffle"), ()),
    "blosc-zstd-1 byte-shuffle": (_blosc("zstd", 1, "shuffle"), _blosc("zstd", 1, "noshuffle"), ()),
    "blosc-zstd-3 byte-shuffle": (_blosc("zstd", 3, "shuffle"), _blosc("zstd", 3, "noshuffle"), ()),
    "blosc-zstd-1 bit-shuffle": (_blosc("zstd", 1, "bitshuffle"), _blosc("zstd", 1, "noshuffle"), ()),
    "transpose + blosc-zstd-1 byte-shuffle": (_blosc("zstd", 1, "shuffle"), _blosc("zstd", 1, "noshuffle"),
                                              (TransposeCodec(order=(1, 0)),)),
}
#: (points per chunk, points per shard or None)
CHUNKINGS = [(1 << 16, None), (1 << 16, 1 << 20), (1 << 17, 1 << 20), (1 << 18, 1 << 20)]
#: codecs measured with each chunking (the 256Ki-point unsharded chunk is the codec rows above)
CHUNKING_CODECS = ["blosc-lz4 byte-shuffle", "no compression (crc32c only)"]


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _make_sample(out: Path, frames: int, points: int) -> Path:
    from nersemble_zarr.testing.sample import generate_sample

    return generate_sample(out, benchmarks="nvs", participants=[PID], frames=frames, scale=1 / 8, points=points)


def _clouds(raw: Path) -> list[Path]:
    seq = sorted((raw / "nvs" / f"{PID:03d}" / "sequences").iterdir())[0]
    return sorted((seq / "pointclouds").glob("frame_*.pcd"))


def _write_option(path: Path, clouds: list, fcomp, ccomp, filters, chunk: int, shard: int | None) -> None:
    g = zarr.open_group(zarr.storage.LocalStore(path), mode="w")
    for name, dtype, comp in ((schema.POINTS, "float32", fcomp), (schema.NORMALS, "float32", fcomp),
                              (schema.COLORS, "uint8", ccomp)):
        data = np.concatenate([getattr(c, name) for c in clouds])
        arr = g.create_array(name, shape=data.shape, dtype=dtype, chunks=(chunk, 3),
                             shards=(shard, 3) if shard else None,
                             filters=filters if dtype == "float32" else (), compressors=(comp, Crc32cCodec()) if comp is not None else (Crc32cCodec(),),
                             config={"write_empty_chunks": True})
        arr[...] = data


def _open_arrays(path: Path) -> tuple:
    """The three arrays, opened once (as a reader keeps its handles)."""
    g = zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r")
    return tuple(g[n] for n in (schema.POINTS, schema.NORMALS, schema.COLORS))


def _read_rows(arrays: tuple, rows: slice) -> tuple:
    return tuple(a[rows] for a in arrays)


def _delta_sizes(cloud) -> dict[str, int]:
    """Size only (numcodecs in memory): blosc-zstd-1 byte-shuffle with and without a Delta of the float bits as int32."""
    from numcodecs import Blosc, Delta

    blosc = Blosc(cname="zstd", clevel=1, shuffle=Blosc.SHUFFLE)
    out = {"plain": 0, "delta": 0, "delta, column-major": 0}
    for a in (cloud.points, cloud.normals):
        bits = np.ascontiguousarray(a).view("<i4")
        out["plain"] += len(blosc.encode(bits))
        out["delta"] += len(blosc.encode(Delta(dtype="<i4").encode(bits.ravel())))
        out["delta, column-major"] += len(blosc.encode(Delta(dtype="<i4").encode(np.ascontiguousarray(bits.T).ravel())))
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def codec_section(h, tmp: Path, points: int, n_clouds: int, repeats: int) -> dict:
    raw = _make_sample(tmp / f"raw_{points}", n_clouds, points)
    files = _clouds(raw)[:n_clouds]
    clouds = [read_pcd(f) for f in files]
    mid = len(clouds) // 2
    start = sum(len(c) for c in clouds[:mid])
    rows = slice(start, start + len(clouds[mid]))
    pcd_bytes = sum(f.stat().st_size for f in files)
    n_pts = sum(len(c) for c in clouds)
    group = f"{points // 1000}k points"
    variants = [(name, *OPTIONS[name], 1 << 18, None) for name in OPTIONS]
    summary: dict = {"points_per_cloud": [len(c) for c in clouds], "pcd_bytes": pcd_bytes, "options": {}}
    write_s: dict[str, list[float]] = {}
    stores: dict[str, Path] = {}
    for name, fc, cc, filt, chunk, shard in variants:
        p = tmp / f"opt_{points}_{len(stores)}.zarr"
        secs = []
        for _ in range(2):
            t0 = time.perf_counter()
            _write_option(p, clouds, fc, cc, filt, chunk, shard)
            secs.append(time.perf_counter() - t0)
        write_s[name], stores[name] = secs, p
    for chosen, (chunk, shard) in [(c, ch) for c in CHUNKING_CODECS for ch in CHUNKINGS]:
        fc, cc, filt = OPTIONS[chosen][:3]
        name = f"{chosen}, chunk {chunk >> 10}Ki" + (f", shard {shard >> 10}Ki" if shard else "") + " points"
        p = tmp / f"opt_{points}_{len(stores)}.zarr"
        secs = []
        for _ in range(2):
            t0 = time.perf_counter()
            _write_option(p, clouds, fc, cc, filt, chunk, shard)
            secs.append(time.perf_counter() - t0)
        write_s[name], stores[name] = secs, p
    # bit-exact check, then interleaved reads: read_pcd and every option in each round
    ref = clouds[mid]
    handles = {name: _open_arrays(p) for name, p in stores.items()}
    for name in stores:
        pts, nrm, col = _read_rows(handles[name], rows)
        assert np.array_equal(pts.view("<u4"), ref.points.view("<u4")) and np.array_equal(col, ref.colors), name
        assert np.array_equal(nrm.view("<u4"), ref.normals.view("<u4")), name
    reads: dict[str, list[float]] = {name: [] for name in ["read_pcd", *stores]}
    for _ in range(repeats):
        for name in reads:
            gc.collect()
            t0 = time.perf_counter()
            if name == "read_pcd":
                read_pcd(files[mid])
            else:
                _read_rows(handles[name], rows)
            reads[name].append(time.perf_counter() - t0)
    h.add("read_pcd (raw .pcd, binary)", reads["read_pcd"], group=group + ": read one timestep", items=1, unit="cloud",
          baseline=True, bytes=files[mid].stat().st_size)
    raw_bytes = n_pts * (12 + 12 + 3)
    for name, p in stores.items():
        size = _dir_bytes(p)
        h.add(name, reads[name], group=group + ": read one timestep", items=1, unit="cloud",
              stored_bytes=size, ratio_raw_to_stored=round(raw_bytes / size, 3), write_s_median=round(_median(write_s[name]), 4),
              note=f"{raw_bytes / size:.2f}x smaller than raw, write {_median(write_s[name]) * 1e3:.0f} ms/{len(clouds)} clouds")
        summary["options"][name] = {
            "stored_bytes": size, "raw_over_stored": round(raw_bytes / size, 3), "pcd_over_stored": round(pcd_bytes / size, 3),
            "write_s_median": round(_median(write_s[name]), 4), "read_s_median": round(_median(reads[name]), 5),
            "read_over_read_pcd": round(_median(reads[name]) / _median(reads["read_pcd"]), 3),
        }
    summary["delta_sizes_xyz_normals_bytes"] = _delta_sizes(ref)
    summary["read_pcd_s_median"] = round(_median(reads["read_pcd"]), 5)
    return summary


def store_section(h, tmp: Path, points: int, frames: int, repeats: int) -> dict:
    """convert (schema constants) of a sample; NVSDataManager.load_pointcloud vs read_pcd, interleaved."""
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.read.data_manager import NVSDataManager

    raw = tmp / f"raw_{points}"
    if not raw.exists():
        _make_sample(raw, frames, points)
    files = _clouds(raw)
    store = tmp / f"store_{points}.zarr"
    t0 = time.perf_counter()
    report = convert_benchmark(raw, store, benchmarks="nvs", participants=[PID], progress=False)
    convert_s = time.perf_counter() - t0
    assert report.ok, report.summary()
    seq = files[0].parent.parent.name
    mid = len(files) // 2
    t = int(files[mid].stem.split("_")[1])
    dm = NVSDataManager(store, PID)
    pts, col, nrm = dm.load_pointcloud(seq, t)
    ref = read_pcd(files[mid])
    assert np.array_equal(pts, ref.points) and np.array_equal(nrm, ref.normals)
    assert np.array_equal(col, (ref.colors.astype(np.float64) / 255.).astype(np.float32))
    group = f"{points // 1000}k points: public reader"
    reads: dict[str, list[float]] = {"read_pcd": [], "dm": [], "pcd_as_official": []}
    for _ in range(repeats):
        for name in reads:
            gc.collect()
            t0 = time.perf_counter()
            if name == "read_pcd":
                read_pcd(files[mid])
            elif name == "pcd_as_official":  # what the official loader hands back: float colours in [0, 1]
                c = read_pcd(files[mid])
                (c.colors.astype(np.float64) / 255.).astype(np.float32)
            else:
                dm.load_pointcloud(seq, t)
            reads[name].append(time.perf_counter() - t0)
    h.add("read_pcd (raw .pcd, uint8 colours)", reads["read_pcd"], group=group, items=1, unit="cloud", baseline=True)
    h.add("read_pcd + colours / 255 (the data manager's output)", reads["pcd_as_official"], group=group, items=1, unit="cloud")
    h.add("NVSDataManager.load_pointcloud (store as convert writes it)", reads["dm"], group=group, items=1, unit="cloud")
    cloud_group = store / "nvs" / f"{PID:03d}" / seq / schema.POINTCLOUDS
    return {"convert_s": round(convert_s, 2), "frames": len(files), "store_cloud_bytes": _dir_bytes(cloud_group),
            "pcd_bytes": sum(f.stat().st_size for f in files),
            "dm_over_read_pcd": round(_median(reads["dm"]) / _median(reads["read_pcd"]), 3),
            "dm_over_read_pcd_float_colours": round(_median(reads["dm"]) / _median(reads["pcd_as_official"]), 3)}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _memory_child(raw: str, store: str) -> None:
    """Peak RSS growth (sampled every 1 ms) over the RSS after imports, while ``convert`` runs."""
    import threading

    from nersemble_zarr.pipelines.convert import convert_benchmark

    before = _rss_bytes()
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        report = convert_benchmark(raw, store, benchmarks="nvs", participants=[PID], progress=False)
    finally:
        done.set()
        sampler.join()
    assert report.ok, report.summary()
    print(json.dumps({"peak_growth_mib": (max(peak[0], _rss_bytes()) - before) / 2**20, "rss_before_mib": before / 2**20}))


def memory_section(tmp: Path, points: int, frames: int) -> dict:
    out = {}
    for n in (frames, 2 * frames):
        raw = _make_sample(tmp / f"mem_raw_{n}", n, points)
        n_clouds = len(_clouds(raw))
        child = subprocess.run([sys.executable, __file__, "--_child", str(raw), str(tmp / f"mem_{n}.zarr")],
                               capture_output=True, text=True, check=True)
        res = json.loads(child.stdout.strip().splitlines()[-1])
        out[f"{n_clouds} clouds"] = {"clouds": n_clouds, **{k: round(v, 1) for k, v in res.items()},
                                     "pcd_mib": round(sum(f.stat().st_size for f in _clouds(raw)) / 2**20, 1)}
        print(f"  convert {n_clouds} clouds of {points} points: peak RSS growth {res['peak_growth_mib']:.0f} MiB", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300000,1000000")
    ap.add_argument("--clouds", type=int, default=3, help="clouds per codec store (the middle one is read)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--memory-points", type=int, default=300000)
    ap.add_argument("--memory-frames", type=int, default=6)
    ap.add_argument("--skip-codecs", action="store_true")
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--name", default="pointclouds", help="results file name (benchmarks/results/NAME.json)")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        _memory_child(*args._child)
        return
    from harness import Harness

    sizes = [int(s) for s in args.sizes.split(",")]
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    h = Harness(args.name, description="point clouds at real size: lossless codec/chunk options of the CSR arrays "
                "(size, write, one-timestep read vs read_pcd, interleaved); the store as convert writes it through "
                "NVSDataManager.load_pointcloud vs read_pcd; convert peak RSS for N vs 2N frames",
                params={"sizes": sizes, "clouds_per_store": args.clouds, "repeats": args.repeats,
                        "memory_points": args.memory_points, "memory_frames": args.memory_frames,
                        "uptime_before": uptime_before})
    results: dict = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_s:
        tmp = Path(tmp_s)
        for points in sizes:
            if not args.skip_codecs:
                results[f"codecs_{points}"] = codec_section(h, tmp, points, args.clouds, args.repeats)
            if not args.skip_store:
                results[f"store_{points}"] = store_section(h, tmp, points, args.clouds, args.repeats)
        if not args.skip_memory:
            results["convert_memory"] = memory_section(tmp, args.memory_points, args.memory_frames)
    h.params["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    h.params["results"] = results
    h.finish()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

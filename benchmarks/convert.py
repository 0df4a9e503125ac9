"""Convert throughput, store size and random frame reads at full NVS resolution (1604×1100).

All ratios are against baselines measured in the same run:
  * convert frames/s (images + alpha, threads / 1 / 2 dask worker processes) vs pure sequential
    decode of the same videos with ``iter_frames`` (goal >= 0.7x; 2 workers faster than 1);
  * bytes per frame of the lossless and JPEG stores vs raw uint8 and vs the source mp4;
  * one random frame (the middle one) read from the store, fresh open included, vs the official
    way of open + decode-from-start (``read_frame``) on a ~100-frame video (goal >= 25x).

    .venv/bin/python benchmarks/convert.py [--cameras 13] [--frames 40] [--read-frames 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _media import build_nvs_raw, write_head_videos  # noqa: E402
from harness import machine_info, median_time  # noqa: E402

import nersemble_zarr  # noqa: E402,F401
from nersemble_zarr.core import benchmark as bm  # noqa: E402
from nersemble_zarr.core import schema  # noqa: E402
from nersemble_zarr.pipelines.convert import convert_benchmark  # noqa: E402
from nersemble_zarr.raw import iter_frames, read_frame  # noqa: E402


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the ffmpeg decoders)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=13, help="train cameras of the converted sequence (max 13)")
    ap.add_argument("--frames", type=int, default=40, help="frames per video for the throughput runs")
    ap.add_argument("--read-frames", type=int, default=100, help="frames of the video for the random-read test")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    results: dict = {"cameras": args.cameras, "frames": args.frames, "height": 1604, "width": 1100}
    try:
        rgb, alpha = write_head_videos(work / "src", args.frames)
        raw = work / "raw"
        _, _, _, videos = build_nvs_raw(raw, rgb, alpha, args.cameras, args.frames)
        all_frames = len(videos) * args.frames
        # only the train cameras we wrote: the others are missing on purpose and fail fast
        b = bm.NVS_BENCHMARK
        p = b.participants[0]

        def decode_all() -> None:
            for v in videos:
                for _ in iter_frames(v, alpha="alpha_maps" in str(v)):
                    pass

        c0 = cpu_seconds()
        t_decode = median_time(decode_all, 1)
        decode_cpu = (cpu_seconds() - c0) / all_frames
        decode_fps = all_frames / t_decode
        results["decode_fps"] = decode_fps
        results["decode_cpu_ms_per_frame"] = 1000 * decode_cpu
        results["load_average_1min"] = os.getloadavg()[0]

        def run(store: Path, **kw) -> float:
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(str(store) + ".nersemble-zarr.lock", ignore_errors=True)
            t0 = time.perf_counter()
            report = convert_benchmark(raw, store, benchmarks="nvs", participants=[p], progress=False, **kw)
            dt = time.perf_counter() - t0
            if report.frames != all_frames:
                raise SystemExit(f"convert wrote {report.frames} frames, expected {all_frames}:\n{report.summary()}")
            return dt

        from distributed import Client, LocalCluster

        rows = []
        c0 = cpu_seconds()
        dt = run(work / "s.zarr")
        convert_cpu = (cpu_seconds() - c0) / all_frames
        rows.append({"mode": "threads (default)", "seconds": dt, "fps": all_frames / dt, "vs_decode": all_frames / dt / decode_fps})
        results["convert_cpu_ms_per_frame"] = 1000 * convert_cpu
        for n in (1, 2):
            # cluster start-up (seconds, once per convert run) is left out: this compares conversion speed
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=40) as cluster, Client(cluster) as client:
                dt = run(work / "s.zarr", scheduler=client)
            rows.append({"mode": f"{n} dask worker{'s' if n > 1 else ''}", "seconds": dt, "fps": all_frames / dt,
                         "vs_decode": all_frames / dt / decode_fps})
        results["convert"] = rows

        lossless = work / "s.zarr"
        run(lossless)
        jpeg = work / "j.zarr"
        run(jpeg, image_codec="jpeg", jpeg_quality=95)
        seq = schema.sequence_group("nvs", p, b.sequences[p][0])
        n_img = args.cameras * args.frames
        sizes = {
            "raw_uint8": 1604 * 1100 * 3,
            "mp4": rgb.stat().st_size / args.frames,
            "lossless": du(lossless / seq / schema.IMAGES) / n_img,
            "jpeg_q95": du(jpeg / seq / schema.IMAGES) / n_img,
            "alpha_mp4": alpha.stat().st_size / args.frames,
            "alpha_lossless": du(lossless / seq / schema.ALPHA) / n_img,
        }
        results["bytes_per_frame"] = sizes

        # random single-frame read: middle frame of a longer video, the official way vs the store
        rgb_long, _ = write_head_videos(work / "long", args.read_frames, seed=1)
        store_long = work / "long.zarr"
        arr = zarr.create_array(store_long, **schema.images_array_kwargs(1, args.read_frames, 1604, 1100, schema.ImageCodec()))
        runs = schema.shard_runs(args.read_frames, schema.DEFAULT_SHARD_TIMESTEPS)
        frames = list(iter_frames(rgb_long))
        for t0, t1 in runs:
            arr[0, t0:t1] = np.stack(frames[t0:t1])
        mid = args.read_frames // 2
        t_mp4 = median_time(lambda: read_frame(rgb_long, mid), 3)
        t_store = median_time(lambda: zarr.open_array(store_long, mode="r")[0, mid], 5)
        assert np.array_equal(zarr.open_array(store_long, mode="r")[0, mid], read_frame(rgb_long, mid))
        results["random_read"] = {"frame": mid, "mp4_read_frame_ms": 1000 * t_mp4, "store_ms": 1000 * t_store,
                                  "speedup": t_mp4 / t_store}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"convert {args.cameras} cameras x (images + alpha) x {args.frames} frames at 1604x1100")
    print(f"  pure sequential decode: {decode_fps:.1f} frames/s (baseline), {results['decode_cpu_ms_per_frame']:.1f} ms CPU/frame")
    for r in results["convert"]:
        print(f"  {r['mode']:<20} {r['fps']:7.1f} frames/s  {r['vs_decode']:.2f}x decode")
    print(f"  CPU per frame: convert {results['convert_cpu_ms_per_frame']:.1f} ms vs decode "
          f"{results['decode_cpu_ms_per_frame']:.1f} ms -> {results['decode_cpu_ms_per_frame'] / results['convert_cpu_ms_per_frame']:.2f}x "
          f"(the throughput ratio on an otherwise idle, CPU-bound machine); load average {results['load_average_1min']:.1f}")
    one, two = results["convert"][1]["fps"], results["convert"][2]["fps"]
    print(f"  2 workers vs 1: {two / one:.2f}x")
    s = results["bytes_per_frame"]
    print("bytes per frame (images):")
    for k in ("lossless", "jpeg_q95"):
        print(f"  {k:<10} {s[k] / 1e3:8.1f} KB  {s['raw_uint8'] / s[k]:5.1f}x smaller than raw uint8, "
              f"{s[k] / s['mp4']:5.1f}x the mp4 ({s['mp4'] / 1e3:.1f} KB)")
    print(f"  alpha lossless {s['alpha_lossless'] / 1e3:.1f} KB (mp4 {s['alpha_mp4'] / 1e3:.1f} KB)")
    rr = results["random_read"]
    print(f"random read of frame {rr['frame']}: read_frame {rr['mp4_read_frame_ms']:.0f} ms, store {rr['store_ms']:.1f} ms "
          f"-> {rr['speedup']:.0f}x faster")
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["machine"] = machine_info()
    out = Path(__file__).resolve().parent / "results" / "convert.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

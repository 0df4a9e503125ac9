"""Download throughput and resume cost: our downloader vs a naive single-threaded requests loop.

Both fetch the same files from a real HTTP server on 127.0.0.1 (tests/http_server.py). Scenarios:
``loopback`` (no limits: measures our per-file overhead: HEAD, .part, fsync, rename) and ``wan``
(each answer delayed by ``--latency`` and each connection capped at ``--rate`` bytes/s, as a
distant server is). The baseline is the official toolkit's approach: one file after the other,
``requests.get`` streamed straight to the final path. Also reported: bytes fetched again after an
interruption at half of every file (ours resumes with Range; the official tool re-downloads a file
whose size does not match). Ratios are against the baseline measured in the same run.

    .venv/bin/python benchmarks/download.py [--files 16] [--size 400000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from http_server import Fault, FileServer  # noqa: E402

from nersemble_zarr.pipelines.download.engine import Downloader  # noqa: E402


def median_seconds(fn: Callable[[], object], setup: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def naive(url: str, rels: list[str], dest: Path) -> None:
    """The baseline: sequential, streamed to the final path, no resume, no size check."""
    with requests.Session() as s:
        for rel in rels:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with s.get(f"{url}/{rel}", stream=True) as r, open(target, "wb") as f:
                r.raise_for_status()
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)


def ours(url: str, rels: list[str], dest: Path, workers: int) -> None:
    with Downloader(url, dest, workers=workers) as d:
        report = d.fetch(rels)
    assert report.ok and len(report.downloaded) == len(rels), report.failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--size", type=int, default=400_000, help="bytes per file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05, help="wan: seconds before each answer")
    ap.add_argument("--rate", type=float, default=4e6, help="wan: bytes/s per connection")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    rng = random.Random(0)
    files = {f"nvs/388/sequences/GLASSES/images/cam_{i:09d}.mp4": rng.randbytes(args.size) for i in range(args.files)}
    rels = sorted(files)
    total = sum(map(len, files.values()))
    work = Path(tempfile.mkdtemp(prefix="bench_download_"))
    dest = work / "raw"

    def clean() -> None:
        shutil.rmtree(dest, ignore_errors=True)

    rows = []
    try:
        for scenario, latency, rate in (("loopback", 0.0, None), ("wan", args.latency, args.rate)):
            with FileServer(dict(files), prefix="bench", latency=latency, rate=rate) as srv:
                base = median_seconds(lambda: naive(srv.url, rels, dest), clean, args.repeats)
                rows.append({"scenario": scenario, "method": "naive requests loop (baseline)", "seconds": base})
                for w in sorted({1, args.workers}):
                    t = median_seconds(lambda: ours(srv.url, rels, dest, w), clean, args.repeats)
                    rows.append({"scenario": scenario, "method": f"nersemble-zarr download, {w} worker(s)", "seconds": t})
                for r in rows:
                    if r["scenario"] == scenario:
                        r["mb_per_s"] = total / r["seconds"] / 1e6
                        r["speedup_vs_baseline"] = base / r["seconds"]

        # Resume after an interruption at half of every file: bytes fetched again.
        # A real interruption: the server cuts every file's answer at half and the downloader gives up (no
        # retries), leaving each ``.part`` with its recorded version; the rerun against the healthy server is measured.
        cut = {rel: [Fault(cut_after=len(files[rel]) // 2)] for rel in rels}
        clean()
        with FileServer(dict(files), prefix="bench", faults=cut) as srv:
            with Downloader(srv.url, dest, workers=args.workers, retries=0) as d:
                interrupted = d.fetch(rels)
            assert not interrupted.downloaded, "the cut server let a file through"
        with FileServer(dict(files), prefix="bench") as srv:
            srv.reset_counters()
            ours(srv.url, rels, dest, args.workers)
            assert all((dest / rel).read_bytes() == files[rel] for rel in rels)
            resumed = sum(srv.bytes_served.values())
        resume = {"bytes_fetched_again_ours": resumed, "bytes_fetched_again_official": total,
                  "ratio_vs_official": resumed / total}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.files} files x {args.size} B = {total / 1e6:.1f} MB; wan: {args.latency * 1e3:.0f} ms latency, "
          f"{args.rate / 1e6:.1f} MB/s per connection; median of {args.repeats}")
    print(f"{'scenario':<10} {'method':<38} {'seconds':>8} {'MB/s':>8} {'vs baseline':>12}")
    for r in rows:
        print(f"{r['scenario']:<10} {r['method']:<38} {r['seconds']:>8.3f} {r['mb_per_s']:>8.1f} "
              f"{r['speedup_vs_baseline']:>11.2f}x")
    print(f"resume after interruption at 50%: {resume['bytes_fetched_again_ours'] / 1e6:.1f} MB fetched again vs "
          f"{resume['bytes_fetched_again_official'] / 1e6:.1f} MB by re-downloading ({resume['ratio_vs_official']:.2f}x)")
    out = ROOT / "benchmarks" / "results" / "download.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": args.files, "bytes_per_file": args.size, "latency_s": args.latency,
                               "rate_bytes_per_s": args.rate, "repeats": args.repeats, "rows": rows,
                               "resume": resume}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

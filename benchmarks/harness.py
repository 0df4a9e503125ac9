"""A small benchmark harness: time callables, take medians, compare with a baseline, print, save JSON.

Usage from a script in ``benchmarks/``::

    import sys; from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import Harness

    h = Harness("video_decode", description="...", params={"frames": 100})
    h.time("ffmpeg -> /dev/null", run_ffmpeg, group="sequential", items=100, unit="frame", baseline=True)
    h.time("iter_frames", run_ours, group="sequential", items=100, unit="frame")
    h.finish()   # prints the table, writes benchmarks/results/video_decode.json

Each case belongs to a ``group``; within a group the case marked ``baseline=True`` (else the first
one) is the reference, and every case reports ``vs_baseline`` = baseline median / case median
(> 1: faster than the baseline) and ``time_ratio`` = case median / baseline median. Ratios are only
ever computed between cases measured in the same run, on the same machine, so they stay
meaningful on a busy 2-core CI box where absolute times do not.

``items``/``unit`` turn a median into a rate (``frames/s``). ``setup`` runs before each repeat,
untimed. The JSON holds every repeat's seconds, the medians, the ratios, the parameters and
:func:`machine_info`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

__all__ = ["Case", "Harness", "RESULTS_DIR", "machine_info", "median_time"]


def median_time(fn: Callable[[], Any], repeats: int = 3, setup: Callable[[], Any] | None = None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs (``setup()`` untimed before each)."""
    return statistics.median(_times(fn, repeats, 0, setup))


def _times(fn: Callable[[], Any], repeats: int, warmup: int, setup: Callable[[], Any] | None) -> list[float]:
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    out = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def machine_info() -> dict[str, Any]:
    """Where a result was measured: CPU, cores, load, OS, Python, key library versions, git commit."""
    info: dict[str, Any] = {
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    for module in ("numpy", "zarr", "dask", "xarray", "imageio_ffmpeg", "torch"):
        mod = sys.modules.get(module)
        if mod is not None:
            info[f"{module}_version"] = getattr(mod, "__version__", "?")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Case:
    """One timed case. ``seconds``: every repeat; ``median_s`` their median; ``rate``: items per second."""

    label: str
    group: str
    seconds: list[float]
    items: float | None = None
    unit: str = "item"
    baseline: bool = False
    note: str = ""
    median_s: float = 0.0
    rate: float | None = None
    vs_baseline: float | None = None
    time_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.median_s = statistics.median(self.seconds)
        if self.items:
            self.rate = self.items / self.median_s if self.median_s > 0 else float("inf")


class Harness:
    """Collects :class:`Case` results of one benchmark; :meth:`finish` prints and saves them.

    ``name`` names the JSON file (``benchmarks/results/<name>.json``); ``description`` says what is
    measured; ``params`` the knobs of this run (frames, sizes, ...), saved alongside.
    """

    def __init__(self, name: str, *, description: str = "", params: dict[str, Any] | None = None,
                 results_dir: Path | str = RESULTS_DIR) -> None:
        self.name = name
        self.description = description
        self.params = dict(params or {})
        self.results_dir = Path(results_dir)
        self.cases: list[Case] = []

    def time(self, label: str, fn: Callable[[], Any], *, group: str = "", repeats: int = 3, warmup: int = 0,
             items: float | None = None, unit: str = "item", baseline: bool = False,
             setup: Callable[[], Any] | None = None, note: str = "") -> Case:
        """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; record and return the case."""
        case = Case(label, group, _times(fn, repeats, warmup, setup), items, unit, baseline, note)
        self.cases.append(case)
        self._print_progress(case)
        return case

    def add(self, label: str, seconds: list[float], *, group: str = "", items: float | None = None,
            unit: str = "item", baseline: bool = False, note: str = "", **extra: Any) -> Case:
        """Record a case timed elsewhere (``seconds``: one entry per repeat); ``extra`` is saved as is."""
        case = Case(label, group, list(seconds), items, unit, baseline, note, extra=extra)
        self.cases.append(case)
        self._print_progress(case)
        return case

    @staticmethod
    def _print_progress(case: Case) -> None:
        print(f"  measured {case.group + ': ' if case.group else ''}{case.label}: {case.median_s * 1e3:.1f} ms", file=sys.stderr)

    def _compute_ratios(self) -> None:
        groups: dict[str, list[Case]] = {}
        for c in self.cases:
            groups.setdefault(c.group, []).append(c)
        for cases in groups.values():
            base = next((c for c in cases if c.baseline), cases[0])
            base.baseline = True
            for c in cases:
                c.vs_baseline = base.median_s / c.median_s if c.median_s > 0 else None
                c.time_ratio = c.median_s / base.median_s if base.median_s > 0 else None

    def table(self) -> str:
        """The results as a plain-text table (one row per case, grouped)."""
        self._compute_ratios()
        rows = [("group", "case", "median", "rate", "vs baseline")]
        for c in self.cases:
            rate = f"{c.rate:,.1f} {c.unit}/s" if c.rate is not None else ""
            ratio = "baseline" if c.baseline else (f"{c.vs_baseline:.2f}x" if c.vs_baseline is not None else "")
            rows.append((c.group, c.label, _fmt_seconds(c.median_s), rate, ratio))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w) for j, (cell, w) in enumerate(zip(r, widths))))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything saved in the JSON file."""
        self._compute_ratios()
        return {
            "benchmark": self.name,
            "description": self.description,
            "params": self.params,
            "machine": machine_info(),
            "ratio_definitions": {
                "vs_baseline": "baseline median / case median within the group (> 1 means faster)",
                "time_ratio": "case median / baseline median within the group",
            },
            "cases": [asdict(c) for c in self.cases],
        }

    def write(self) -> Path:
        """Write ``<results_dir>/<name>.json`` atomically; returns its path."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def finish(self) -> Path:
        """Print a header and the table to stdout, write the JSON, print where; returns the JSON path."""
        print(f"\n{self.name}: {self.description}")
        if self.params:
            print("params: " + ", ".join(f"{k}={v}" for k, v in self.params.items()))
        print(self.table())
        path = self.write()
        print(f"\nwrote {path}")
        return path


def _fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"

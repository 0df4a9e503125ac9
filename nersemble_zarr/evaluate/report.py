"""What ``evaluate`` reports: per-frame values (an xarray Dataset), per-video means (JSON), a table, a plot.

* Per frame: :meth:`EvaluationReport.per_frame` — dims ``(participant, sequence, camera, timestep)``, one
  float64 variable per metric (``psnr``, ``ssim``, ``lpips``, ``psnr_masked``, …; NaN where a video has no such
  frame). JOD is a per-video value and appears only in the JSON.
* Per video (:meth:`EvaluationReport.to_dict`): a top-level ``videos`` list, one object per video with
  ``participant``, ``sequence``, ``camera``, ``n_frames`` and the mean over its frames of each metric under the
  metric's name; ``mean``: each metric over all scored frames of all videos (as the paper's "total results":
  averaged over all evaluation frames), JOD over videos. ``inf`` (identical frames: PSNR) is written as the
  JSON token ``Infinity`` (Python's ``json`` reads it back).
* :meth:`EvaluationReport.save` writes the JSON and the per-frame Dataset next to it as netCDF
  (``<name>.frames.nc``; ``xarray.open_dataset(path)`` reads it).
* :func:`plot`: per-frame PSNR curves of every video, and the worst frames (lowest PSNR) beside their
  ground truth with an error heat map (matplotlib, Agg backend).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class WorstFrame:
    """The lowest-PSNR frame of a video: ``prediction``/``ground_truth`` thumbnails ``(h, w, 3) uint8``."""

    key: tuple[int, str, str]
    timestep: int
    psnr: float
    prediction: np.ndarray = field(repr=False)
    ground_truth: np.ndarray = field(repr=False)


@dataclass
class VideoResult:
    """One scored video: ``per_frame`` metric name → ``(T,) float64`` over ``timesteps``; ``per_video`` values
    computed over the whole video (JOD); ``worst`` its lowest-PSNR frame."""

    key: tuple[int, str, str]
    timesteps: tuple[int, ...]
    per_frame: dict[str, np.ndarray]
    per_video: dict[str, float]
    worst: WorstFrame | None = None

    def mean(self, name: str) -> float | None:
        """The per-video value of metric ``name``: mean over frames (or the whole-video value)."""
        if name in self.per_video:
            return self.per_video[name]
        values = self.per_frame.get(name)
        if values is None or not len(values):
            return None
        return float(np.mean(values))


def _json_value(v: float | None) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


@dataclass
class EvaluationReport:
    """The result of :func:`~nersemble_zarr.evaluate.run.evaluate` (see the module docstring)."""

    benchmark: str
    split: str
    split_spec: str
    level: int
    every_nth: int
    metrics: tuple[str, ...]
    results: list[VideoResult]
    skipped: list[str] = field(default_factory=list)
    predictions: str = ""

    def overall(self) -> dict[str, float | None]:
        """Each metric over all scored frames of all videos (per-video values such as JOD: mean over videos)."""
        out: dict[str, float | None] = {}
        for name in self.metrics:
            frames = [r.per_frame[name] for r in self.results if name in r.per_frame]
            if frames:
                out[name] = float(np.mean(np.concatenate(frames)))
            else:
                values = [r.per_video[name] for r in self.results if name in r.per_video]
                out[name] = float(np.mean(values)) if values else None
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (see the module docstring)."""
        videos = []
        for r in self.results:
            p, s, c = r.key
            entry: dict[str, Any] = {"participant": p, "sequence": s, "camera": c, "n_frames": len(r.timesteps)}
            entry.update({name: _json_value(r.mean(name)) for name in self.metrics})
            videos.append(entry)
        return {
            "benchmark": self.benchmark, "split": self.split, "split_rule": self.split_spec, "level": self.level,
            "every_nth": self.every_nth, "predictions": self.predictions, "metrics": list(self.metrics),
            "videos": videos, "mean": {k: _json_value(v) for k, v in self.overall().items()},
            "skipped": list(self.skipped),
        }

    def per_frame(self) -> Any:
        """Per-frame values as an ``xarray.Dataset`` (dims participant, sequence, camera, timestep)."""
        import xarray as xr

        participants = sorted({r.key[0] for r in self.results})
        sequences = sorted({r.key[1] for r in self.results})
        cameras = sorted({r.key[2] for r in self.results})
        timesteps = sorted({t for r in self.results for t in r.timesteps})
        shape = (len(participants), len(sequences), len(cameras), len(timesteps))
        t_index = {t: i for i, t in enumerate(timesteps)}
        data: dict[str, Any] = {}
        for name in self.metrics:
            if not any(name in r.per_frame for r in self.results):
                continue
            values = np.full(shape, np.nan)
            for r in self.results:
                if name in r.per_frame:
                    p, s, c = r.key
                    idx = [t_index[t] for t in r.timesteps]
                    values[participants.index(p), sequences.index(s), cameras.index(c), idx] = r.per_frame[name]
            data[name] = (("participant", "sequence", "camera", "timestep"), values)
        return xr.Dataset(
            data,
            coords={"participant": participants, "sequence": sequences, "camera": cameras, "timestep": timesteps},
            attrs={"benchmark": self.benchmark, "split": self.split, "split_rule": self.split_spec, "level": self.level,
                   "every_nth": self.every_nth, "description": "per-frame metrics of nersemble-zarr evaluate; "
                   "psnr in dB (inf: identical frames), ssim and lpips unitless"},
        )

    def table(self) -> str:
        """A text table: one row per video and a mean row, one column per metric."""
        head = ["video", "frames", *self.metrics]
        rows = []
        for r in self.results:
            p, s, c = r.key
            rows.append([f"{p:03d}/{s}/cam_{c}", str(len(r.timesteps)), *[_fmt(n, r.mean(n)) for n in self.metrics]])
        overall = self.overall()
        rows.append(["mean", str(sum(len(r.timesteps) for r in self.results)), *[_fmt(n, overall[n]) for n in self.metrics]])
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
                 for line in [head, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
        title = (f"{self.benchmark}, {self.split} part of split {self.split_spec}, level {self.level}"
                 + (f", every-nth {self.every_nth}" if self.every_nth > 1 else ""))
        return "\n".join([title, *lines])

    def save(self, json_path: str | os.PathLike) -> tuple[Path, Path]:
        """Write the JSON to ``json_path`` and the per-frame Dataset next to it (``<stem>.frames.nc``); each
        written to a temporary name and renamed. Returns both paths."""
        json_path = Path(json_path)
        frames_path = json_path.with_name(json_path.stem + ".frames.nc")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = frames_path.with_name("." + frames_path.name + ".tmp")
        self.per_frame().to_netcdf(tmp, engine="scipy")
        os.replace(tmp, frames_path)
        tmp = json_path.with_name("." + json_path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, json_path)
        return json_path, frames_path


def _fmt(name: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}" if name.startswith("psnr") or name.startswith("jod") else f"{v:.4f}"


def plot(report: EvaluationReport, path: str | os.PathLike, *, worst: int = 3) -> Path:
    """Write a PNG: per-frame PSNR of every video over its timesteps, then the ``worst`` lowest-PSNR frames
    (one per video at most) as prediction | ground truth | per-pixel error (mean absolute difference over
    RGB, 0–255 scale, ``inferno``). Uses matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    frames = sorted((r.worst for r in report.results if r.worst is not None), key=lambda w: w.psnr)[:worst]
    n_rows = 1 + len(frames)
    fig = Figure(figsize=(9, 2.6 + 2.8 * len(frames)), dpi=80, layout="constrained")
    grid = fig.add_gridspec(n_rows, 3, height_ratios=[2.6] + [2.8] * len(frames))
    ax = fig.add_subplot(grid[0, :])
    name = "psnr" if "psnr" in report.metrics else ("psnr_masked" if "psnr_masked" in report.metrics else None)
    for r in report.results:
        if name is not None and name in r.per_frame:
            values = np.asarray(r.per_frame[name], dtype=float)
            ax.plot(r.timesteps, np.where(np.isinf(values), np.nan, values), marker=".", lw=1,
                    label=f"{r.key[0]:03d}/{r.key[1]}/{r.key[2]}")
    ax.set_xlabel("timestep")
    ax.set_ylabel(f"{name or 'psnr'} (dB)")
    ax.set_title(f"{report.benchmark}: per-frame {name or 'PSNR'} ({report.split} part of split {report.split_spec}, level {report.level})", fontsize=9)
    if len(report.results) <= 12:
        ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    for i, w in enumerate(frames, start=1):
        err = np.abs(w.prediction.astype(np.int16) - w.ground_truth.astype(np.int16)).mean(axis=2)
        label = f"{w.key[0]:03d}/{w.key[1]}/{w.key[2]} t={w.timestep}"
        for j, (img, title) in enumerate(((w.prediction, f"prediction {label}"),
                                          (w.ground_truth, f"ground truth (PSNR {w.psnr:.2f} dB)"),
                                          (err, "|error| (mean over RGB)"))):
            a = fig.add_subplot(grid[i, j])
            shown = a.imshow(img, cmap="inferno" if img.ndim == 2 else None, vmin=0 if img.ndim == 2 else None,
                             vmax=max(1.0, float(err.max())) if img.ndim == 2 else None)
            a.set_title(title, fontsize=7)
            a.set_xticks([])
            a.set_yticks([])
            if img.ndim == 2:
                fig.colorbar(shown, ax=a, fraction=0.046)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


__all__ = ["EvaluationReport", "VideoResult", "WorstFrame", "plot"]

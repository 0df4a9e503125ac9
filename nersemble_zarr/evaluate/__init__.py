"""Local evaluation: the NeRSemble benchmark's metrics (PSNR, SSIM, LPIPS, JOD; masked variants) on a
validation split, offline. Entry point: :func:`~nersemble_zarr.evaluate.run.evaluate`; splits live in
:mod:`nersemble_zarr.core.splits`, per-frame metric functions in :mod:`.metrics`, prediction sources in
:mod:`.sources`, outputs (JSON, per-frame Dataset, table, plot) in :mod:`.report`."""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "plot"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from .run import evaluate

        return evaluate
    if name == "plot":
        from .report import plot

        return plot
    raise AttributeError(name)

"""Pictures of a store (matplotlib, headless Agg): a contact sheet of every camera, and the camera rig.

:func:`contact_sheet` lays out one tile per camera with video at one timestep, the alpha map's 50 %
outline drawn on top and the serial/split written in the corner; the PNG is exactly
``rows · tile_height × columns · tile_width`` pixels (``tile_height`` keeps the frames' aspect).
:func:`cameras_plot` draws the rig from above and from the side, hold-out cameras marked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import schema
from ..core.benchmark import check_participant, check_timestep
from ..core.errors import SelectionError
from .resolver import sequences_in
from .store import StoreLike, list_participants, open_calibration, open_root, open_sequence

DPI = 100
_HOLD_OUT_COLOR = "#d62728"
_TRAIN_COLOR = "#1f77b4"
_OUTLINE_COLOR = "#39ff14"


class ShowError(SelectionError):
    """Nothing to show for the selection (a participant or sequence not in the store, no video, unknown
    timestep). The message names it and the valid choices (the CLI exits with status 2)."""


@dataclass(frozen=True)
class SheetInfo:
    """What :func:`contact_sheet` drew: file, pixel size ``(height, width)``, sequence, timestep, cameras."""

    path: Path
    size: tuple[int, int]
    sequence: str
    timestep: int
    cameras: tuple[str, ...]


def _inches(height: int, width: int) -> tuple[float, float]:
    # a hair over the pixel count, so that float rounding in matplotlib's int() never loses a pixel
    return (int(width) + 0.01) / DPI, (int(height) + 0.01) / DPI


def _save(fig: Any, out: str | os.PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _where(store: StoreLike) -> str:
    return os.fspath(store) if isinstance(store, (str, os.PathLike)) else type(store).__name__


def _participant_in_store(store: StoreLike, benchmark: str, participant: int,
                          storage_options: dict[str, Any] | None) -> int:
    """``participant`` as int if the benchmark has it and the store holds it, else :class:`ShowError`."""
    p = check_participant(benchmark, participant)
    held = list_participants(store, benchmark, storage_options=storage_options)
    if p not in held:
        raise ShowError(
            f"{benchmark} participant {p:03d} is not in {_where(store)}: it holds {benchmark} participants "
            f"{', '.join(f'{h:03d}' for h in held) or 'none'}"
        )
    return p


def _video_sequence(store: StoreLike, benchmark: str, participant: int, sequence: str | None,
                    storage_options: dict[str, Any] | None) -> str:
    """``sequence`` (default: the participant's first with video) if the store holds it with video."""
    root = open_root(store, storage_options=storage_options)
    present = sequences_in(root, benchmark, participant)
    with_video = [s for s in present
                  if schema.IMAGES in root[schema.sequence_group(benchmark, participant, s)].array_keys()]
    where = f"{benchmark} participant {participant:03d}"
    if sequence is None:
        if not with_video:
            raise ShowError(f"{where} has no sequence with video in {_where(store)}")
        return with_video[0]
    if sequence not in present:
        raise ShowError(
            f"sequence {sequence!r} of {where} is not in {_where(store)}: sequences with video are "
            f"{', '.join(with_video) or 'none'}"
        )
    if sequence not in with_video:
        raise ShowError(
            f"sequence {sequence!r} of {where} has no video (tracking only): sequences with video are "
            f"{', '.join(with_video) or 'none'}"
        )
    return sequence


def contact_sheet(
    store: StoreLike,
    benchmark: str,
    participant: int,
    out: str | os.PathLike,
    *,
    sequence: str | None = None,
    timestep: int | None = None,
    level: int | None = None,
    tile_width: int = 240,
    columns: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> SheetInfo:
    """Write a PNG contact sheet of every camera with video at one ``timestep`` (default: the middle one).

    ``sequence`` defaults to the participant's first sequence with video; ``level`` reads a stored
    downscaled level (faster for big rigs). Tiles are ``tile_width`` pixels wide; ``columns``
    defaults to a near-square grid. Returns what was drawn, including the PNG's ``(height, width)``.
    A participant, sequence or timestep the store does not hold (or a sequence without video) raises
    :class:`~nersemble_zarr.core.errors.SelectionError` (:class:`ShowError` for what the store lacks) naming it
    and the valid choices, before anything is read or drawn.
    """
    from matplotlib.figure import Figure

    participant = _participant_in_store(store, benchmark, participant, storage_options)
    sequence = _video_sequence(store, benchmark, participant, sequence, storage_options)
    ds = open_sequence(store, benchmark, participant, sequence, level=level, storage_options=storage_options)
    if schema.IMAGES not in ds:
        raise ShowError(f"{benchmark} participant {participant:03d} sequence {sequence!r} has no video (tracking only)")
    timesteps = ds[schema.TIMESTEP].values
    if timestep is None:
        timestep = int(timesteps[len(timesteps) // 2])
    timestep = check_timestep(timestep, timesteps.tolist(), f"{benchmark} participant {participant:03d} sequence {sequence!r}")
    frame = ds[[schema.IMAGES, schema.ALPHA]].sel({schema.TIMESTEP: int(timestep)}).compute()
    images, alphas = frame[schema.IMAGES].values, frame[schema.ALPHA].values
    cameras = [str(c) for c in ds[schema.CAMERA].values]
    splits = [str(s) for s in ds[schema.SPLIT].values]

    n = len(cameras)
    h, w = images.shape[1:3]
    tile_width = int(tile_width)
    tile_height = max(1, round(tile_width * h / w))
    cols = int(columns) if columns else max(1, math.ceil(math.sqrt(n * tile_height / tile_width)))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=_inches(rows * tile_height, cols * tile_width), dpi=DPI, facecolor="black")
    for i, (serial, split) in enumerate(zip(cameras, splits)):
        r, c = divmod(i, cols)
        ax = fig.add_axes((c / cols, 1 - (r + 1) / rows, 1 / cols, 1 / rows))
        ax.imshow(images[i], interpolation="antialiased")
        if alphas[i].min() < 128 <= alphas[i].max():
            ax.contour(alphas[i], levels=[127.5], colors=_OUTLINE_COLOR, linewidths=0.8)
        ax.text(
            0.02, 0.98, f"{serial} ({split})", transform=ax.transAxes, va="top", ha="left", fontsize=7,
            color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0},
        )
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_axis_off()
    fig.text(0.995, 0.005, f"{benchmark} {participant:03d} {sequence} t={timestep}", ha="right", va="bottom",
             fontsize=7, color="white")
    path = _save(fig, out)
    return SheetInfo(path, (rows * tile_height, cols * tile_width), sequence, int(timestep), tuple(cameras))


def rig_geometry(world_2_cam: np.ndarray) -> dict[str, np.ndarray]:
    """Camera centres and axes of a rig from ``world_2_cam (N, 4, 4)`` (OpenCV: x right, y down, z forward).

    Returns ``centres (N, 3)``, ``forward (N, 3)`` (unit viewing directions), ``up`` (3,) the rig's mean
    up direction, ``target`` (3,) the point closest to all optical axes (least squares).
    """
    rot = world_2_cam[:, :3, :3]
    t = world_2_cam[:, :3, 3]
    centres = -np.einsum("nji,nj->ni", rot, t)
    forward = rot[:, 2, :]
    up = -rot[:, 1, :].mean(axis=0)
    up /= np.linalg.norm(up)
    eye = np.eye(3)
    proj = eye[None] - forward[:, :, None] * forward[:, None, :]
    target = np.linalg.lstsq(proj.sum(axis=0), np.einsum("nij,nj->i", proj, centres), rcond=None)[0]
    return {"centres": centres, "forward": forward, "up": up, "target": target}


def cameras_plot(
    store: StoreLike,
    benchmark: str,
    participant: int,
    out: str | os.PathLike,
    *,
    size: tuple[int, int] = (600, 1200),
    storage_options: dict[str, Any] | None = None,
) -> Path:
    """Write a PNG (``size = (height, width)`` pixels) of the rig seen from above and from the side.

    Camera centres with their viewing directions; hold-out cameras (no published video, evaluated)
    are red crosses, train cameras blue dots; ``+`` marks where the optical axes meet (the head).
    """
    from matplotlib.figure import Figure

    participant = _participant_in_store(store, benchmark, participant, storage_options)
    calib = open_calibration(store, benchmark, participant, storage_options=storage_options)
    serials = [str(s) for s in calib[schema.SERIAL].values]
    splits = [str(s) for s in calib[schema.SPLIT].values]
    geo = rig_geometry(calib[schema.WORLD_2_CAM].values)
    up, target = geo["up"], geo["target"]
    fwd_mean = geo["forward"].mean(axis=0)
    depth = fwd_mean - up * (fwd_mean @ up)
    depth /= np.linalg.norm(depth)
    right = np.cross(depth, up)
    rel = geo["centres"] - target
    radius = float(np.linalg.norm(rel, axis=1).max()) or 1.0
    views = (
        ("top view (looking down)", right, depth, "right (m)", "towards the head (m)"),
        ("side view", depth, up, "towards the head (m)", "up (m)"),
    )
    fig = Figure(figsize=_inches(*size), dpi=DPI)
    for k, (title, ex, ey, xlabel, ylabel) in enumerate(views):
        ax = fig.add_subplot(1, 2, k + 1)
        x, y = rel @ ex, rel @ ey
        dx, dy = geo["forward"] @ ex, geo["forward"] @ ey
        for i, serial in enumerate(serials):
            hold = splits[i] == "hold_out"
            color = _HOLD_OUT_COLOR if hold else _TRAIN_COLOR
            ax.plot(x[i], y[i], "X" if hold else "o", color=color, markersize=8 if hold else 5)
            ax.annotate("", xy=(x[i] + 0.15 * radius * dx[i], y[i] + 0.15 * radius * dy[i]), xytext=(x[i], y[i]),
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8})
            ax.annotate(serial[-3:], (x[i], y[i]), textcoords="offset points", xytext=(3, 3), fontsize=6, color=color)
        ax.plot(0, 0, "+", color="black", markersize=12)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    handles = [
        fig.axes[0].plot([], [], "o", color=_TRAIN_COLOR, label="train (published video)")[0],
        fig.axes[0].plot([], [], "X", color=_HOLD_OUT_COLOR, label="hold-out (evaluated)")[0],
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"{benchmark} participant {participant:03d}: {len(serials)} cameras", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.16, wspace=0.25)
    return _save(fig, out)

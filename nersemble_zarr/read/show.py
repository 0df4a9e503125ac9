"""Pictures of a store (matplotlib, headless Agg): a contact sheet of every camera, and the camera rig.

:func:`contact_sheet` lays out one tile per camera with video at one timestep, the alpha map's 50 %
outline drawn on top and the serial/split written in the corner; the PNG is exactly
``rows · tile_height × columns · tile_width`` pixels (``tile_height`` keeps the frames' aspect).
:func:`cameras_plot` draws the rig from above and from the side, hold-out cameras marked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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
    serials = [str(s) for s in calib[schema.CAMERA].values]
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


# ---------------------------------------------------------------------------------------------
# Overlays: projection, a z-buffered mesh rasterizer, z-ordered points, tiles with labels
# ---------------------------------------------------------------------------------------------

#: Colour of the shaded mesh (light blue-grey, 0-255) and its default opacity over the frame.
MESH_COLOR = np.array([150.0, 200.0, 255.0])
MESH_OPACITY = 0.6
#: Narrowest tile (pixels) that gets a label written on it.
LABEL_MIN_WIDTH = 160
#: Candidate pixels rasterized per batch of faces (bounds memory: ~60 bytes per candidate).
_RASTER_BATCH = 1 << 21


def project_points(points: np.ndarray, world_2_cam: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into a camera (OpenCV: x right, y down, z forward; pixel centres at integers).

    ``points (N, 3)`` metres, world; ``world_2_cam (4, 4)``; ``intrinsics (3, 3)`` pixels of the frame drawn on.
    Returns ``uv (N, 2) float64`` pixel coordinates (column, row) and ``depth (N,) float64`` metres along the
    optical axis (<= 0: behind the camera; uv is then meaningless).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    cam = np.einsum("ij,nj->ni", world_2_cam[:3, :3], p) + world_2_cam[:3, 3]
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) > 1e-12, depth, 1e-12)
    pix = np.einsum("ij,nj->ni", intrinsics, cam)
    return pix[:, :2] / safe[:, None], depth


def rasterize_mesh(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int, width: int,
                   *, near: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered rasterization of a triangle mesh: which face is nearest at each pixel centre.

    ``uv (V, 2)`` and ``depth (V,)`` from :func:`project_points`; ``faces (F, 3)`` vertex indices. Faces with a
    vertex nearer than ``near`` metres are skipped. Returns ``face (H, W) int64`` (the visible face, -1 where no
    face covers the pixel centre) and ``inv_depth (H, W) float64`` (1 / metres of the visible surface, 0 where
    none; perspective-correct). Pure numpy, vectorised over batches of faces.
    """
    h, w = int(height), int(width)
    faces = np.asarray(faces, dtype=np.int64)
    face_buf = np.full(h * w, -1, dtype=np.int64)
    zbuf = np.zeros(h * w, dtype=np.float64)
    if faces.size == 0 or h == 0 or w == 0:
        return face_buf.reshape(h, w), zbuf.reshape(h, w)
    tri = uv[faces]  # (F, 3, 2)
    inv_z = 1.0 / np.where(depth > 0, depth, np.inf)[faces]  # (F, 3)
    x0, x1 = np.ceil(tri[..., 0].min(1)), np.floor(tri[..., 0].max(1))
    y0, y1 = np.ceil(tri[..., 1].min(1)), np.floor(tri[..., 1].max(1))
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x1, w - 1), np.minimum(y1, h - 1)
    (ax, ay), (bx, by), (cx, cy) = tri[:, 0].T, tri[:, 1].T, tri[:, 2].T
    area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    ok = (depth[faces].min(1) > near) & (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12)
    idx = np.flatnonzero(ok)
    bw = (x1 - x0 + 1)[idx].astype(np.int64)
    counts = bw * (y1 - y0 + 1)[idx].astype(np.int64)
    ends = np.cumsum(counts)
    start = 0
    while start < len(idx):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + _RASTER_BATCH, side="right"))
        stop = max(stop, start + 1)
        f_local = np.repeat(np.arange(start, stop), counts[start:stop])
        offset = np.arange(len(f_local), dtype=np.int64) - np.repeat(ends[start:stop] - counts[start:stop] - base, counts[start:stop])
        f = idx[f_local]
        px = x0[f] + offset % bw[f_local]
        py = y0[f] + offset // bw[f_local]
        # barycentric weights from edge functions (the triangle's orientation cancels in the division)
        w0 = ((bx[f] - px) * (cy[f] - py) - (cx[f] - px) * (by[f] - py)) / area[f]
        w1 = ((cx[f] - px) * (ay[f] - py) - (ax[f] - px) * (cy[f] - py)) / area[f]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        f, px, py = f[inside], px[inside].astype(np.int64), py[inside].astype(np.int64)
        iz = w0[inside] * inv_z[f, 0] + w1[inside] * inv_z[f, 1] + w2[inside] * inv_z[f, 2]
        pix = py * w + px
        nearer = iz > zbuf[pix]
        f, pix, iz = f[nearer], pix[nearer], iz[nearer]
        np.maximum.at(zbuf, pix, iz)  # the nearest surface per pixel (ufunc.at: repeated pixels all count)
        won = iz == zbuf[pix]
        face_buf[pix[won]] = -1  # a pixel won in this batch: its face is the largest index among exact ties
        np.maximum.at(face_buf, pix[won], f[won])
        start = stop
    return face_buf.reshape(h, w), zbuf.reshape(h, w)


def face_shading(points_cam: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Headlight Lambert shade ``(F,) float64`` in [0.25, 1] of each face seen from the camera (both sides lit).

    ``points_cam (V, 3)`` vertices in camera coordinates (metres); ``faces (F, 3)``.
    """
    tri = points_cam[np.asarray(faces, dtype=np.int64)]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(axis=1)
    cos = np.abs(np.einsum("ij,ij->i", normal, centre))
    cos /= np.maximum(np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1), 1e-30)
    return 0.25 + 0.75 * cos


def draw_mesh(image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, world_2_cam: np.ndarray,
              intrinsics: np.ndarray, *, opacity: float = MESH_OPACITY,
              color: np.ndarray = MESH_COLOR) -> tuple[np.ndarray, np.ndarray]:
    """The mesh shaded and blended over ``image``: returns ``(picture (H, W, 3) uint8, covered (H, W) bool)``.

    ``image (H, W, 3) uint8`` (not modified); ``vertices (V, 3)`` metres, world; ``faces (F, 3)``; camera as in
    :func:`project_points` for frames of ``image``'s size. ``opacity`` 0..1 of the mesh; ``color`` RGB 0-255.
    """
    h, w = image.shape[:2]
    uv, depth = project_points(vertices, world_2_cam, intrinsics)
    face, _ = rasterize_mesh(uv, depth, faces, h, w)
    covered = face >= 0
    cam = np.einsum("ij,nj->ni", world_2_cam[:3, :3], np.asarray(vertices, dtype=np.float64)) + world_2_cam[:3, 3]
    shade = face_shading(cam, faces)
    out = image.astype(np.float32)
    mesh_rgb = shade[face[covered], None] * np.asarray(color, dtype=np.float64)[None]
    out[covered] = (1.0 - opacity) * out[covered] + opacity * mesh_rgb
    return np.clip(np.round(out), 0, 255).astype(np.uint8), covered


def draw_points(image: np.ndarray, points: np.ndarray, colors: np.ndarray, world_2_cam: np.ndarray,
                intrinsics: np.ndarray, *, radius: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points drawn over ``image`` as squares of ``2·radius+1`` pixels, far first so the nearest is on top.

    ``points (N, 3)`` metres, world; ``colors (N, 3)`` uint8 0-255 (or float in [0, 1]); camera as in
    :func:`project_points`. ``radius`` defaults to ``max(1, min(H, W) // 400)``. Points behind the camera or off
    the frame are skipped. Returns ``(picture (H, W, 3) uint8, hit (H, W) bool)``: pixels a point landed on.
    """
    h, w = image.shape[:2]
    r = max(1, min(h, w) // 400) if radius is None else max(0, int(radius))
    colors = np.asarray(colors)
    if colors.dtype != np.uint8:
        colors = np.clip(np.round(colors.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    uv, depth = project_points(points, world_2_cam, intrinsics)
    col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
    keep = (depth > 0) & (col >= -r) & (col < w + r) & (row >= -r) & (row < h + r)
    order = np.flatnonzero(keep)[np.argsort(-depth[keep], kind="stable")]
    col, row, rgb = col[order], row[order], colors[order]
    out = image.copy()
    ys = (row[:, None, None] + np.arange(-r, r + 1)[None, :, None]).repeat(2 * r + 1, axis=2).reshape(len(row), -1)
    xs = (col[:, None, None] + np.arange(-r, r + 1)[None, None, :]).repeat(2 * r + 1, axis=1).reshape(len(row), -1)
    on = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    n = np.broadcast_to(np.arange(len(row))[:, None], ys.shape)[on]  # rank: higher is nearer
    nearest = np.full(h * w, -1, dtype=np.int64)
    np.maximum.at(nearest, ys[on] * w + xs[on], n)
    hit = nearest >= 0
    out.reshape(-1, 3)[hit] = rgb[nearest[hit]]
    return out, hit.reshape(h, w)


# ---------------------------------------------------------------------------------------------
# Cameras of an overlay, their backgrounds, the picture grid
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One camera an overlay is drawn in: ``world_2_cam (4, 4)``, ``intrinsics (3, 3)`` for frames of
    ``(height, width)`` pixels at the level shown; ``position`` its index in the stored frames (``None``: no
    video in this sequence, drawn over black as the official visualizer does)."""

    serial: str
    split: str
    world_2_cam: np.ndarray
    intrinsics: np.ndarray
    height: int
    width: int
    position: int | None

    @property
    def label(self) -> str:
        return f"{self.serial} ({self.split}{'' if self.position is not None else ', no video'})"


@dataclass(frozen=True)
class OverlayInfo:
    """What an overlay wrote: file, pixel size ``(height, width)``, sequence, timesteps (rows), cameras
    (columns), and where the drawn geometry came from (``source``)."""

    path: Path
    size: tuple[int, int]
    sequence: str
    timesteps: tuple[int, ...]
    cameras: tuple[str, ...]
    source: str = ""


def _stored_frame_size(root: Any, benchmark: str, participant: int, sequence: str) -> tuple[int, int] | None:
    """Full-resolution ``(height, width)`` of the sequence's video, else of any video of the participant."""
    present = sequences_in(root, benchmark, participant)
    for name in [sequence] + [s for s in present if s != sequence]:
        group = root[schema.sequence_group(benchmark, participant, name)]
        if schema.IMAGES in group.array_keys():
            shape = group[schema.IMAGES].shape
            return int(shape[2]), int(shape[3])
    return None


def overlay_views(root: Any, res: Any, cameras: Sequence[str] | None) -> list[View]:
    """The cameras to draw in for a resolved sequence ``res`` (resolved with ``resize=True``).

    ``cameras=None``: the cameras with video, then the benchmark's evaluated (hold-out) cameras, as the
    official ``visualize_flame_tracking.py`` shows them. Any calibrated camera may be asked for; one
    without calibration raises :class:`ShowError` naming the calibrated ones.
    """
    from ..core.benchmark import get_benchmark
    from ..imaging import level_shape
    from .resolver import read_calibration

    bench = get_benchmark(res.benchmark)
    calib = read_calibration(root, res.benchmark, res.participant, error=ShowError)
    if cameras is None or len(cameras) == 0:
        wanted = list(dict.fromkeys([*res.cameras, *(s for s in bench.evaluation_serials if s in calib.serials)]))
    else:
        wanted = list(dict.fromkeys(str(c) for c in cameras))
        missing = [c for c in wanted if c not in calib.serials]
        if missing:
            raise ShowError(f"{res.where}: camera {', '.join(missing)} has no calibration in the store: "
                            f"calibrated cameras are {', '.join(calib.serials)}")
    calib = calib.select(wanted, res.where, error=ShowError).at_level(res.level)
    full = _stored_frame_size(root, res.benchmark, res.participant, res.sequence) or (bench.height, bench.width)
    h, w = level_shape(*full, res.level)
    return [
        View(serial, split, calib.world_2_cam[i], calib.intrinsics[i], h, w,
             res.camera_positions[res.cameras.index(serial)] if serial in res.cameras else None)
        for i, (serial, split) in enumerate(zip(calib.serials, calib.split))
    ]


def background(root: Any, res: Any, view: View, timestep: int) -> np.ndarray:
    """The frame ``(H, W, 3) uint8`` of ``view`` at ``timestep`` (a video frame index), or black where the
    camera has no video in the sequence or the timestep has no frame (tracking beyond the video)."""
    from ..imaging import area_average

    if view.position is None or timestep not in res.timesteps:
        return np.zeros((view.height, view.width, 3), dtype=np.uint8)
    frame = res.frames(root, schema.IMAGES)[view.position, res.timesteps.index(timestep)]
    frame = area_average(frame, res.resize, axes=(0, 1)) if res.resize > 1 else np.asarray(frame)
    return np.ascontiguousarray(frame[: view.height, : view.width])


def compose(tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int, footer: str = "",
            *, even: bool = False) -> np.ndarray:
    """Tiles ``(h, w, 3) uint8`` (all one size) laid out row-major in ``columns`` columns, each labelled in
    its corner, ``footer`` in the bottom right: ``(rows·h, columns·w, 3) uint8`` (drawn with matplotlib Agg;
    frames are placed 1:1, never resampled). Tiles narrower than :data:`LABEL_MIN_WIDTH` pixels get no labels
    (they would hide the picture), a grid narrower than twice that no footer. ``even=True`` pads a black
    row/column to even sizes (H.264)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    height, width = rows * h + (rows * h) % 2 * even, columns * w + (columns * w) % 2 * even
    grid = np.zeros((height, width, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    fig = Figure(figsize=_inches(height, width), dpi=DPI, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    fig.figimage(grid, 0, 0, origin="upper")
    size = max(5.0, min(9.0, w / 60))
    box = {"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0}
    for i, label in enumerate(labels if w >= LABEL_MIN_WIDTH else ()):
        r, c = divmod(i, columns)
        fig.text((c * w + 3) / width, 1 - (r * h + 3) / height, label, va="top", ha="left", fontsize=size,
                 color="white", bbox=box)
    if footer and width >= 2 * LABEL_MIN_WIDTH:
        fig.text(1 - 3 / width, 3 / height, footer, ha="right", va="bottom", fontsize=size, color="white", bbox=box)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:height, :width, :3])


def save_png(picture: np.ndarray, out: str | os.PathLike) -> Path:
    """Write ``picture (H, W, 3) uint8`` as a PNG of exactly that size: staged under a temporary name, renamed."""
    import matplotlib.image as mpimg

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        mpimg.imsave(tmp, picture, format="png")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def resolve_for_show(store: StoreLike, benchmark: str, participant: int, sequence: str | None, level: int | None,
                     storage_options: dict[str, Any] | None, *, need: str = "", what: str = "") -> tuple[Any, Any]:
    """``(root, resolved sequence)`` for an overlay: participant and sequence checked against the store
    (``sequence=None``: the participant's first sequence holding ``need``, a group name such as
    ``tracking_v2`` or ``pointclouds``, or with video when ``need`` is empty), any level (area-averaged
    on read when not stored; ``what`` names ``need`` in messages). Errors are :class:`ShowError`."""
    from .resolver import resolve_sequence

    participant = _participant_in_store(store, benchmark, participant, storage_options)
    root = open_root(store, storage_options=storage_options)
    where = f"{benchmark} participant {participant:03d}"
    present = sequences_in(root, benchmark, participant)
    if sequence is None:
        def holds(s: str) -> bool:
            group = root[schema.sequence_group(benchmark, participant, s)]
            return need in group.group_keys() if need else schema.IMAGES in group.array_keys()

        candidates = [s for s in present if holds(s)]
        if not candidates:
            raise ShowError(f"{where} has no sequence with {what or need or 'video'} in {_where(store)}")
        sequence = candidates[0]
    elif sequence not in present:
        raise ShowError(f"sequence {sequence!r} of {where} is not in {_where(store)}: sequences are "
                        f"{', '.join(present) or 'none'}")
    res = resolve_sequence(root, benchmark, participant, sequence, level=level, resize=True, error=ShowError)
    return root, res


def _timesteps_of(timesteps: int | Sequence[int] | None, valid: Sequence[int], where: str, default: str) -> list[int]:
    """Checked timesteps (``None``: the middle of ``valid`` for ``default="middle"``, the first for "first",
    all for "all")."""
    valid = [int(t) for t in valid]
    if timesteps is None:
        if not valid:
            raise ShowError(f"{where} has no timesteps")
        return {"middle": [valid[len(valid) // 2]], "first": [valid[0]], "all": valid}[default]
    asked = [timesteps] if np.ndim(timesteps) == 0 else list(timesteps)
    return [check_timestep(t, valid, where) for t in asked]


def pointcloud_overlay(
    store: StoreLike,
    benchmark: str,
    participant: int,
    out: str | os.PathLike,
    *,
    sequence: str | None = None,
    cameras: Sequence[str] | None = None,
    timestep: int | None = None,
    level: int | None = None,
    radius: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> OverlayInfo:
    """Write a PNG of one timestep's point cloud projected into cameras, over their frames.

    Points are coloured by their stored colours and drawn far to near (the nearest on top) as squares of
    ``2·radius+1`` pixels (default from the frame size, see :func:`draw_points`). ``cameras`` default to the
    first camera with video; a hold-out camera (no video) is drawn over black. ``timestep`` defaults to the
    first with a point cloud; ``level`` draws at 1/level resolution (area-averaged on read when not stored).
    The PNG is one tile per camera, each the frame's size. A sequence without point clouds or a timestep
    without one raises :class:`ShowError` naming the stored ones; nothing is written then.
    """
    root, res = resolve_for_show(store, benchmark, participant, sequence, level, storage_options, need=schema.POINTCLOUDS,
                                 what="point clouds")
    pc = res.open_group(root, schema.POINTCLOUDS, "point clouds", required=True, error=ShowError)
    stamps = [] if res.cloud_timestep is None else [int(t) for t in res.cloud_timestep]
    t = _timesteps_of(timestep, stamps, f"{res.where} (point clouds)", "first")[0]
    rows = res.cloud_rows(t, error=ShowError)
    from ..storage.integrity import read as guarded_read

    points = np.asarray(guarded_read(pc[schema.POINTS], rows), dtype=np.float64)
    colors = np.asarray(guarded_read(pc[schema.COLORS], rows))
    views = overlay_views(root, res, cameras if cameras else list(res.cameras[:1]) or None)
    tiles = [draw_points(background(root, res, v, t), points, colors, v.world_2_cam, v.intrinsics, radius=radius)[0]
             for v in views]
    picture = compose(tiles, [v.label for v in views], len(tiles),
                      f"{benchmark} {res.participant:03d} {res.sequence} t={t}: {len(points)} points")
    path = save_png(picture, out)
    return OverlayInfo(path, picture.shape[:2], res.sequence, (t,), tuple(v.serial for v in views),
                       f"point cloud ({len(points)} points)")

"""The tracked FLAME mesh drawn over the frames, headless: the counterpart of the official
``visualize_flame_tracking.py`` (which opens pyvista windows).

:func:`flame_overlay` writes a PNG: one row per timestep, one column per camera, the mesh shaded and
blended over each frame (z-buffered, see :func:`nersemble_zarr.read.show.draw_mesh`). Cameras without video in
the sequence (the hold-out cameras, and every camera of a tracking-only test sequence) are drawn over
black, as the official script does. :func:`flame_overlay_video` renders the same over time into an mp4,
streaming (one frame in memory). The meshes come from the store when ``nersemble-zarr flame`` wrote them
(``flame_v<N>``), else from the tracking and a FLAME model (``flame_model=`` / ``$FLAME_MODEL_PATH``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import schema
from ..core.benchmark import get_benchmark
from ..core.errors import NersembleZarrError
from ..read.show import (
    MESH_OPACITY,
    OverlayInfo,
    ShowError,
    View,
    background,
    compose,
    draw_mesh,
    overlay_views,
    resolve_for_show,
    save_png,
    _timesteps_of,
)
from ..read.store import StoreLike

__all__ = ["FlameScene", "flame_overlay", "flame_overlay_video"]

#: Timesteps evaluated per FLAME forward when rendering a video from the model.
_VIDEO_BATCH = 16


@dataclass
class FlameScene:
    """A tracked sequence ready to draw: the resolved sequence, the cameras, the tracked timesteps (video
    frame indices) and where the meshes come from. Build with :meth:`open`."""

    root: Any
    res: Any
    views: list[View]
    tracked: tuple[int, ...]
    faces: np.ndarray
    source: str
    _meshes: Any = None  # the stored vertices (DataArray, first dim = tracked timesteps), or None
    _provider: Any = None  # a FlameProvider when evaluating from the model

    @classmethod
    def open(
        cls,
        store: StoreLike,
        benchmark: str,
        participant: int,
        *,
        sequence: str | None = None,
        cameras: Sequence[str] | None = None,
        level: int | None = None,
        flame_model: Any = None,
        tracking_version: int = schema.CURRENT_TRACKING_VERSION,
        storage_options: dict[str, Any] | None = None,
    ) -> "FlameScene":
        """Resolve the sequence (default: the participant's first with tracking ``tracking_version``) and the
        mesh source: an explicit ``flame_model`` (path or :class:`~nersemble_zarr.flame.model.FlameModel`) is
        used as given; otherwise the store's meshes when complete, else the configured model (a
        :class:`~nersemble_zarr.core.errors.ConfigError` saying how to configure one when there is none)."""
        try:
            from .provider import FlameProvider, load_flame_parameters, open_flame_meshes
        except ImportError as e:  # torch is an optional dependency (the Python 3.12 CI job has none)
            raise NersembleZarrError(f"drawing FLAME meshes needs torch, which is not importable here: {e}") from None

        name = schema.tracking_group_name(tracking_version)
        what = f"FLAME tracking v{tracking_version}"
        root, res = resolve_for_show(store, benchmark, participant, sequence, level, storage_options, need=name, what=what)
        group = res.open_group(root, name, what, required=True, error=ShowError)
        params = load_flame_parameters(group)
        tracked = tuple(int(t) for t in params.frames)
        views = overlay_views(root, res, cameras)
        meshes = provider = None
        stored = schema.flame_group_name(tracking_version) in root[res.path].group_keys()
        if flame_model is None and stored:
            try:
                ds = open_flame_meshes(store, res.benchmark, res.participant, res.sequence, tracking_version,
                                       storage_options=storage_options)
            except NersembleZarrError:
                ds = None  # not completely written: evaluate from the model instead
            if ds is not None:
                meshes = ds["vertices"]
                frames = tuple(int(t) for t in meshes[meshes.dims[0]].values)
                if frames != tracked:
                    raise ShowError(f"{res.where}: the stored FLAME meshes v{tracking_version} cover timesteps "
                                    f"{frames[:3]}... but the tracking {tracked[:3]}...: rerun 'nersemble-zarr flame'")
                faces, source = np.asarray(ds["faces"].values, dtype=np.int64), f"store meshes flame_v{tracking_version}"
        if meshes is None:
            provider = FlameProvider(params, flame_model)
            faces = np.asarray(provider.faces, dtype=np.int64)
            source = f"FLAME model {provider.flame_model.file_name or 'in memory'} on tracking v{tracking_version}"
        return cls(root, res, views, tracked, faces, source, meshes, provider)

    @property
    def where(self) -> str:
        return f"{self.res.where} (FLAME tracking)"

    def vertices(self, timesteps: Sequence[int]) -> Iterator[np.ndarray]:
        """World vertices ``(5023, 3) float32`` (metres) of each tracked timestep, in order, evaluated in batches."""
        positions = [self.tracked.index(int(t)) for t in timesteps]
        for start in range(0, len(positions), _VIDEO_BATCH):
            batch = positions[start:start + _VIDEO_BATCH]
            if self._meshes is not None:
                block = np.asarray(self._meshes.isel({self._meshes.dims[0]: batch}).values)
            else:
                block = self._provider.vertices(batch)
            yield from block

    def draw(self, timestep: int, vertices: np.ndarray, opacity: float) -> list[np.ndarray]:
        """One tile per camera: the mesh over the frame at ``timestep`` (black where there is no video)."""
        return [draw_mesh(background(self.root, self.res, v, timestep), vertices, self.faces, v.world_2_cam,
                          v.intrinsics, opacity=opacity)[0] for v in self.views]

    def footer(self, timestep: int | None = None) -> str:
        t = "" if timestep is None else f" t={timestep}"
        return f"{self.res.benchmark} {self.res.participant:03d} {self.res.sequence}{t}: {self.source}"


def flame_overlay(
    store: StoreLike,
    benchmark: str,
    participant: int,
    out: str | os.PathLike,
    *,
    sequence: str | None = None,
    cameras: Sequence[str] | None = None,
    timesteps: int | Sequence[int] | None = None,
    level: int | None = None,
    flame_model: Any = None,
    tracking_version: int = schema.CURRENT_TRACKING_VERSION,
    opacity: float = MESH_OPACITY,
    storage_options: dict[str, Any] | None = None,
) -> OverlayInfo:
    """Write a PNG of the tracked FLAME mesh over the frames: one row per timestep, one column per camera
    (a single camera: its timesteps side by side).

    ``sequence``: default the participant's first sequence with tracking. ``cameras``: default the cameras
    with video, then the benchmark's evaluated cameras (mono: the train camera and the 3 hold-out cameras,
    as the official ``visualize_flame_tracking.py``); any calibrated camera may be named. ``timesteps``:
    tracked timesteps (video frame indices), default the middle one. ``level``: draw at 1/level resolution
    (stored level, else area-averaged on read); each tile is the frame's size at that level. ``flame_model``:
    see :meth:`FlameScene.open`. ``opacity``: of the shaded mesh (0..1). Selection errors
    (:class:`~nersemble_zarr.read.show.ShowError`: no tracking, a timestep not tracked, an unknown camera) and
    a missing FLAME model (:class:`~nersemble_zarr.core.errors.ConfigError`) are raised before anything is drawn.
    """
    scene = FlameScene.open(store, benchmark, participant, sequence=sequence, cameras=cameras, level=level,
                            flame_model=flame_model, tracking_version=tracking_version, storage_options=storage_options)
    chosen = _timesteps_of(timesteps, scene.tracked, scene.where, "middle")
    tiles, labels = [], []
    for t, vertices in zip(chosen, scene.vertices(chosen)):
        tiles += scene.draw(t, vertices, opacity)
        labels += [f"{v.label} t={t}" for v in scene.views]
    # one column per camera; with a single camera the timesteps go side by side
    picture = compose(tiles, labels, len(scene.views) if len(scene.views) > 1 else len(chosen), scene.footer())
    path = save_png(picture, out)
    return OverlayInfo(path, picture.shape[:2], scene.res.sequence, tuple(chosen),
                       tuple(v.serial for v in scene.views), scene.source)


def flame_overlay_video(
    store: StoreLike,
    benchmark: str,
    participant: int,
    out: str | os.PathLike,
    *,
    sequence: str | None = None,
    cameras: Sequence[str] | None = None,
    timesteps: Sequence[int] | None = None,
    level: int | None = None,
    flame_model: Any = None,
    tracking_version: int = schema.CURRENT_TRACKING_VERSION,
    opacity: float = MESH_OPACITY,
    fps: float | None = None,
    crf: int = 18,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> OverlayInfo:
    """Render the FLAME overlay over time into an H.264 mp4: one frame per tracked timestep (``timesteps``
    default all), the cameras side by side (arguments as :func:`flame_overlay`).

    Streams: each frame is drawn, encoded and dropped (memory does not grow with the number of timesteps);
    written under a temporary name and renamed when complete. ``fps`` defaults to the benchmark's frame
    rate; sizes are padded with a black row/column to even numbers (H.264 4:2:0). ``progress`` shows frames
    done, rate and ETA on stderr.
    """
    from ..jobs.progress import FrameProgress
    from ..raw.video_writer import VideoWriter

    scene = FlameScene.open(store, benchmark, participant, sequence=sequence, cameras=cameras, level=level,
                            flame_model=flame_model, tracking_version=tracking_version, storage_options=storage_options)
    chosen = _timesteps_of(timesteps, scene.tracked, scene.where, "all")
    labels = [v.label for v in scene.views]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.mp4")
    rate = float(fps) if fps else get_benchmark(scene.res.benchmark).fps
    h, w = scene.views[0].height, scene.views[0].width * len(scene.views)
    size = (h + h % 2, w + w % 2)  # what compose(..., even=True) returns
    bar = FrameProgress(len(chosen), progress, desc="show video")
    try:
        with VideoWriter(tmp, size[1], size[0], rate, crf=crf) as writer:
            for t, vertices in zip(chosen, scene.vertices(chosen)):
                writer.write(compose(scene.draw(t, vertices, opacity), labels, len(scene.views), scene.footer(t),
                                     even=True))
                bar.update(1)
        os.replace(tmp, out)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    return OverlayInfo(out, size, scene.res.sequence, tuple(chosen), tuple(v.serial for v in scene.views), scene.source)

"""FLAME meshes from tracking: a drop-in ``FlameProvider``, lazy per-sequence vertices, and meshes in the store.

``FlameProvider(tracking, flame_model=...)`` offers the official provider's methods (``get_vertices(t)``,
``get_mesh(t)``, ``get_landmarks(t)``, ``get_model_to_world_transformation(t)``) plus ``vertices()`` which
evaluates every timestep in batches. :func:`flame_vertices` turns a sequence's tracking (store group or
xarray Dataset) into a dask array computed chunk by chunk; :func:`write_flame_to_store` writes the vertices
of every tracked sequence into the store (``<sequence>/flame_v<version>/vertices``) and the faces once per
benchmark (``<benchmark>/flame_faces``), resumable and in parallel.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core import schema
from ..core.schema import faces_array_path, flame_group
from ..core.errors import NersembleZarrError
from ..jobs.progress import FrameProgress
from .model import (
    DEFAULT_CHUNK_SIZE,
    N_EXPRESSION,
    N_FACES,
    N_SHAPE,
    N_VERTICES,
    FlameModel,
    FlameModelError,
    model_to_world_matrices,
)

__all__ = [
    "FlameModel", "FlameModelError", "FlameParameters", "FlameProvider", "FlameStoreSummary",
    "flame_group", "flame_vertices", "load_flame_parameters", "open_flame_meshes", "write_flame_to_store",
]

# store layout of the evaluated meshes (group names in schema.py)
VERTICES = "vertices"
VERTEX_DIMS = (schema.FRAME, "vertex", "xyz")
FACES_DIMS = ("face", "corner")
#: Frames per stored chunk of ``vertices`` (60 KB per frame: 64 frames ≈ 3.9 MB per chunk).
STORE_CHUNK_FRAMES = 64
MODEL_SHA_ATTR = "flame_model_sha256"


class FlameTrackingError(NersembleZarrError):
    """Tracking parameters that cannot drive FLAME (missing variable, wrong shape); names what and where."""


# ---------------------------------------------------------------------------------------------
# Tracking parameters from any of the accepted sources
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlameParameters:
    """One sequence's FLAME parameters as float32 numpy (radians, metres).

    ``shape (300,)``, ``expression (T, 100)``, ``neck``/``jaw (T, 3)`` axis-angle, ``eyes (T, 6)``,
    ``rotation (T, 3)`` XYZ Euler model→world, ``translation (T, 3)``, ``scale`` (float), ``frames (T,) int64``
    (the video frame index of each timestep).
    """

    shape: np.ndarray
    expression: np.ndarray
    neck: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    frames: np.ndarray
    source: str = "<memory>"

    @property
    def n_timesteps(self) -> int:
        return int(self.expression.shape[0])

    def select(self, index: slice | Sequence[int] | np.ndarray) -> "FlameParameters":
        """The parameters of a subset of timesteps (positions, not frame numbers)."""
        pick = lambda a: a[index]  # noqa: E731
        return FlameParameters(
            self.shape, pick(self.expression), pick(self.neck), pick(self.jaw), pick(self.eyes),
            pick(self.rotation), pick(self.translation), self.scale, pick(self.frames), self.source,
        )


_PER_TIMESTEP = {"expression": N_EXPRESSION, "neck": 3, "jaw": 3, "eyes": 6, "rotation": 3, "translation": 3}


def _parameters_from_getter(get: Callable[[str], Any], has: Callable[[str], bool], source: str, frames_default: Any = None) -> FlameParameters:
    missing = [k for k in ("shape", "scale", *_PER_TIMESTEP) if not has(k)]
    if missing:
        raise FlameTrackingError(f"{source}: tracking lacks {', '.join(missing)} (FLAME needs shape, scale, {', '.join(_PER_TIMESTEP)})")
    values = {k: np.asarray(get(k), dtype=np.float32) for k in ("shape", "scale", *_PER_TIMESTEP)}
    shape = values["shape"].reshape(-1)
    if shape.shape != (N_SHAPE,):
        raise FlameTrackingError(f"{source}: 'shape' has {values['shape'].shape}, expected ({N_SHAPE},) or (1, {N_SHAPE})")
    if values["scale"].size != 1:
        raise FlameTrackingError(f"{source}: 'scale' has shape {values['scale'].shape}, expected one value ((1, 1) or ())")
    expression = values["expression"]
    if expression.ndim != 2:
        raise FlameTrackingError(f"{source}: 'expression' has shape {expression.shape}, expected (T, {N_EXPRESSION})")
    t = expression.shape[0]
    for key, width in _PER_TIMESTEP.items():
        if values[key].shape != (t, width):
            raise FlameTrackingError(f"{source}: '{key}' has shape {values[key].shape}, expected ({t}, {width}) (T={t} from 'expression')")
    frames = get("frames") if has("frames") else frames_default
    frames = np.arange(t, dtype=np.int64) if frames is None else np.asarray(frames).astype(np.int64)
    if frames.shape != (t,):
        raise FlameTrackingError(f"{source}: 'frames' has shape {frames.shape}, expected ({t},)")
    return FlameParameters(
        shape=shape, expression=expression, neck=values["neck"], jaw=values["jaw"], eyes=values["eyes"],
        rotation=values["rotation"], translation=values["translation"], scale=float(values["scale"].reshape(())),
        frames=frames, source=source,
    )


def load_flame_parameters(tracking: Any) -> FlameParameters:
    """Normalise any accepted tracking source into :class:`FlameParameters`.

    ``tracking``: a tracking npz path (``flame2023_tracking_v2.npz``), an object with the official fields
    (``nersemble_zarr.raw.FlameTracking``, the official toolkit's ``FlameTracking``), a mapping of arrays (e.g.
    ``np.load`` of the npz), an ``xarray.Dataset`` (a store ``tracking_vN`` group or a sequence from
    ``open_sequence``), a ``zarr.Group`` of a ``tracking_vN`` group, or :class:`FlameParameters` itself.
    """
    if isinstance(tracking, FlameParameters):
        return tracking
    if isinstance(tracking, (str, os.PathLike)):
        from ..raw.tracking import read_tracking

        path = os.fspath(tracking)
        t = read_tracking(path)
        return _parameters_from_getter(lambda k: getattr(t, k), lambda k: True, path)
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        xr = None
    if xr is not None and isinstance(tracking, xr.Dataset):
        ds = tracking
        source = _dataset_source(ds)
        frame_dim = ds["expression"].dims[0] if "expression" in ds else schema.FRAME
        frames = ds[frame_dim].values if frame_dim in ds.coords else None
        return _parameters_from_getter(lambda k: ds[k].values, lambda k: k in ds.data_vars, source, frames)
    import zarr

    if isinstance(tracking, zarr.Group):
        group = tracking
        source = f"store group {group.path or '/'}"
        names = set(group.array_keys())
        from ..storage.integrity import check_arrays, read

        check_arrays(group)  # read through the integrity guard: a missing/corrupt object raises naming it
        frames = read(group[schema.FRAME]) if schema.FRAME in names else None
        return _parameters_from_getter(lambda k: read(group[k]), lambda k: k in names, source, frames)
    if isinstance(tracking, Mapping):
        return _parameters_from_getter(lambda k: tracking[k], lambda k: k in tracking, "tracking mapping")
    if all(hasattr(tracking, k) for k in ("shape", "expression", "rotation", "translation")):
        return _parameters_from_getter(
            lambda k: getattr(tracking, k), lambda k: getattr(tracking, k, None) is not None, type(tracking).__name__
        )
    raise FlameTrackingError(
        f"cannot read FLAME tracking from a {type(tracking).__name__}: pass a tracking npz path, a FlameTracking, "
        "a mapping of arrays, an xarray Dataset or a zarr group of the store's tracking"
    )


def _dataset_source(ds: Any) -> str:
    attrs = ds.attrs
    parts = [str(attrs[k]) for k in ("benchmark", "participant", "sequence") if k in attrs]
    return "sequence " + "/".join(parts) if parts else "tracking dataset"


def _resolve_model(flame_model: Any, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> FlameModel:
    if isinstance(flame_model, FlameModel):
        if (device is not None and torch.device(device) != flame_model.device) or (dtype is not None and dtype != flame_model.dtype):
            return FlameModel(flame_model.arrays, device=device or flame_model.device, dtype=dtype or flame_model.dtype,
                              landmarks=flame_model.landmark_embedding)
        return flame_model
    return FlameModel.load(flame_model, device=device or "cpu", dtype=dtype or torch.float32)


# ---------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------


class FlameProvider:
    """FLAME meshes of one tracked sequence, with the official ``FlameProvider``'s methods and a batched one.

    ``tracking``: anything :func:`load_flame_parameters` accepts. ``flame_model``: a :class:`FlameModel`, a
    model pickle path, or None for ``$FLAME_MODEL_PATH`` / the ``.env``. ``t`` below is the timestep index
    into the tracking arrays (0..T-1), as in the official provider; ``frames[t]`` is its video frame.
    """

    def __init__(
        self,
        tracking: Any,
        flame_model: FlameModel | str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.params = load_flame_parameters(tracking)
        self.flame_model = _resolve_model(flame_model, device, dtype)
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"FlameProvider({self.params.source!r}, T={len(self)}, model={self.flame_model!r}, chunk_size={self.chunk_size})"

    @property
    def faces(self) -> np.ndarray:
        """Triangles ``(9976, 3) int64`` (vertex indices)."""
        return self.flame_model.faces

    @property
    def frames(self) -> np.ndarray:
        """Video frame index of each timestep ``(T,) int64``."""
        return self.params.frames

    def __len__(self) -> int:
        return self.params.n_timesteps

    def has_mesh(self, timestep: int) -> bool:
        return 0 <= timestep < len(self)

    def _index(self, timesteps: int | Sequence[int] | slice | None) -> Any:
        n = len(self)
        if timesteps is None:
            return slice(None)
        if isinstance(timesteps, slice):
            return timesteps
        idx = np.atleast_1d(np.asarray(timesteps, dtype=np.int64))
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise IndexError(f"{self.params.source}: timestep {int(bad[0])} out of range, the tracking has {n} timesteps (0..{n - 1})")
        return idx

    def _evaluate(self, timesteps: Any, landmarks: bool) -> Any:
        p = self.params.select(self._index(timesteps))
        return self.flame_model.forward(
            p.shape, p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation, p.scale,
            chunk_size=self.chunk_size, landmarks=landmarks,
        )

    def vertices(self, timesteps: Sequence[int] | slice | None = None) -> np.ndarray:
        """World-space vertices ``(T, 5023, 3) float32``, metres, of ``timesteps`` (all by default), in batches."""
        return self._evaluate(timesteps, landmarks=False).numpy().astype(np.float32, copy=False)

    def landmarks(self, timesteps: Sequence[int] | slice | None = None) -> np.ndarray:
        """World-space landmarks ``(T, L, 3) float32`` (needs the model's landmark embedding files)."""
        return self._evaluate(timesteps, landmarks=True)[1].numpy().astype(np.float32, copy=False)

    def get_vertices(self, timestep: int) -> np.ndarray:
        """World-space vertices ``(5023, 3) float32``, metres, of one timestep."""
        return self.vertices([timestep])[0]

    def get_landmarks(self, timestep: int) -> np.ndarray:
        """World-space landmarks ``(L, 3) float32`` of one timestep (needs the landmark embedding files)."""
        return self.landmarks([timestep])[0]

    def get_mesh(self, timestep: int) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices (5023, 3) float32, faces (9976, 3) int64)`` of one timestep (the official returns a trimesh)."""
        return self.get_vertices(timestep), self.faces

    def get_model_to_world_transformation(self, timestep: int) -> np.ndarray:
        """``(4, 4) float64``: ``[[scale · R_xyz(rotation[t]), translation[t]], [0, 0, 0, 1]]``."""
        i = self._index([timestep])
        p = self.params
        m = model_to_world_matrices(
            torch.as_tensor(p.rotation[i], dtype=torch.float64), torch.as_tensor(p.translation[i], dtype=torch.float64), p.scale
        )
        return m[0].numpy()

    def apply_model_to_world_transformation(self, points: np.ndarray | torch.Tensor, timestep: int) -> np.ndarray | torch.Tensor:
        """Model-space points ``(..., 3)`` → world space with timestep ``timestep``'s transform.

        A tensor (e.g. the official ``(B, V, 3)``) comes back as a tensor of its dtype and device; anything
        else as float32 numpy.
        """
        m = self.get_model_to_world_transformation(timestep)
        if isinstance(points, torch.Tensor):
            mt = torch.as_tensor(m, dtype=points.dtype, device=points.device)
            return points @ mt[:3, :3].T + mt[:3, 3]
        pts = np.asarray(points, dtype=np.float64)
        return (pts @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Lazy vertices of a store sequence
# ---------------------------------------------------------------------------------------------


class _ModelRef:
    """Hands one FlameModel to every dask task without re-hashing or copying its tensors per task."""

    def __init__(self, model: FlameModel) -> None:
        self.model = model

    def __dask_tokenize__(self) -> Any:
        return ("flame-model", self.model.sha256 or id(self.model), str(self.model.dtype), str(self.model.device))


def _evaluate_block(ref: _ModelRef, p: FlameParameters, chunk_size: int) -> np.ndarray:
    verts = ref.model.forward(
        p.shape, p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation, p.scale, chunk_size=chunk_size
    )
    return verts.numpy().astype(np.float32, copy=False)


def _tracking_source(obj: Any, version: int) -> Any:
    """The tracking inside ``obj``: a sequence DataTree node / zarr group → its ``tracking_v<version>`` child."""
    import zarr

    name = schema.tracking_group_name(version)
    if isinstance(obj, zarr.Group):
        if "expression" in obj.array_keys():
            return obj
        if name in obj.group_keys():
            return obj[name]
        raise FlameTrackingError(f"store group {obj.path or '/'} has no {name}/ (FLAME tracking version {version})")
    import xarray as xr

    if isinstance(obj, xr.DataTree):
        if "expression" in obj.ds:
            return obj.to_dataset()
        if name in obj.children:
            return obj[name].to_dataset()
        raise FlameTrackingError(f"node {obj.path} has no {name} (FLAME tracking version {version})")
    return obj


def flame_vertices(
    dataset_or_group: Any,
    version: int = schema.CURRENT_TRACKING_VERSION,
    *,
    flame_model: FlameModel | str | os.PathLike | None = None,
    frames_per_chunk: int = STORE_CHUNK_FRAMES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Any:
    """World-space FLAME vertices of one sequence as a lazy dask array ``(frame, vertex, xyz)`` float32, metres.

    ``dataset_or_group``: a sequence from ``open_sequence`` (its tracking variables), a store ``tracking_vN``
    Dataset/zarr group, a sequence zarr group or DataTree node (its ``tracking_v<version>`` child), or
    anything :class:`FlameProvider` accepts. Only the (small) tracking parameters are read now; each dask
    chunk of ``frames_per_chunk`` frames runs the batched forward when computed. ``flame_model``: as in
    :class:`FlameProvider`.
    """
    import dask
    import dask.array as da

    params = load_flame_parameters(_tracking_source(dataset_or_group, version))
    model = _resolve_model(flame_model)
    ref = dask.delayed(_ModelRef(model), pure=True)
    n = params.n_timesteps
    blocks = []
    for start in range(0, n, max(1, frames_per_chunk)):
        stop = min(start + frames_per_chunk, n)
        block = dask.delayed(_evaluate_block, pure=True)(ref, params.select(slice(start, stop)), chunk_size)
        blocks.append(da.from_delayed(block, shape=(stop - start, N_VERTICES, 3), dtype=np.float32))
    if not blocks:
        return da.zeros((0, N_VERTICES, 3), dtype=np.float32)
    return da.concatenate(blocks, axis=0)


# ---------------------------------------------------------------------------------------------
# Meshes into the store
# ---------------------------------------------------------------------------------------------


@dataclass
class FlameStoreSummary:
    """What :func:`write_flame_to_store` did: sequence paths written, already complete, without usable tracking."""

    written: list[str] = field(default_factory=list)
    skipped_complete: list[str] = field(default_factory=list)
    skipped_incomplete_tracking: list[str] = field(default_factory=list)
    frames_written: int = 0
    seconds: float = 0.0


def _tracked_sequences(root: Any, version: int) -> list[tuple[str, int, str, Any]]:
    """``(benchmark, participant, sequence, tracking group)`` for every sequence holding ``tracking_v<version>``."""
    from ..core.benchmark import BENCHMARK_NAMES

    name = schema.tracking_group_name(version)
    found = []
    for benchmark in BENCHMARK_NAMES:
        if benchmark not in root.group_keys():
            continue
        bgroup = root[benchmark]
        for pid_name, pgroup in sorted(bgroup.groups()):
            if not pid_name.isdigit():
                continue
            for seq_name, sgroup in sorted(pgroup.groups()):
                if seq_name != schema.CALIBRATION and name in sgroup.group_keys():
                    found.append((benchmark, int(pid_name), seq_name, sgroup[name]))
    return found


def _write_block(
    ref: _ModelRef, p: FlameParameters, array: Any, start: int, chunk_size: int, progress: FrameProgress | None = None,
) -> int:
    """Evaluate one store chunk of frames and write it whole (chunks are disjoint, so tasks never collide)."""
    verts = _evaluate_block(ref, p, chunk_size)
    array[start:start + len(verts)] = verts
    if progress is not None:
        progress.update(len(verts))
    return len(verts)


def _write_on_cluster(
    scheduler: Any, model: FlameModel, jobs: list[tuple[FlameParameters, Any, int]], chunk_size: int, bar: FrameProgress,
) -> None:
    """Run the chunk writes on a dask.distributed cluster (``scheduler``: address or ``Client``); the model is
    sent to each worker once, progress is counted here as chunks finish. Raises the first failed chunk's error."""
    from distributed import Client

    from ..jobs.cluster import as_completed_or_fail

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    futures: list[Any] = []
    try:
        ref = client.scatter(_ModelRef(model), broadcast=True)
        futures = [client.submit(_write_block, ref, p, array, start, chunk_size, pure=False) for p, array, start in jobs]
        for fut in as_completed_or_fail(client, futures):  # raises when the cluster has no worker left
            bar.update(fut.result())
    finally:
        client.cancel(futures)  # after a failure, no chunk keeps writing once this returns
        if client is not scheduler:
            client.close()


def write_flame_to_store(
    store: Any,
    flame_model: FlameModel | str | os.PathLike | None = None,
    *,
    version: int = schema.CURRENT_TRACKING_VERSION,
    workers: int | None = None,
    scheduler: Any = None,
    frames_per_chunk: int = STORE_CHUNK_FRAMES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> FlameStoreSummary:
    """Write world-space vertices of every sequence with ``tracking_v<version>`` (train and test) into ``store``.

    Per sequence: ``<seq>/flame_v<version>/vertices (frame, vertex, xyz) float32`` (metres, world coordinates,
    chunks of ``frames_per_chunk`` frames) and its ``frame`` coordinate (video frame index); per benchmark
    with tracking: ``<benchmark>/flame_faces (face, corner) int32``. Attrs name the model file and its SHA-256.
    A sequence's group is marked ``complete`` last; a rerun skips complete sequences evaluated with the same
    model and rewrites the rest. Chunks are evaluated in parallel on ``workers`` threads (default: CPU count),
    or on an existing dask.distributed cluster given as ``scheduler`` (a ``tcp://`` address or a
    ``distributed.Client``; its workers must reach ``store`` at the same path or URL); metadata is
    consolidated at the end.
    """
    from contextlib import nullcontext

    from ..storage.lock import StoreLock
    from ..storage.location import StoreLocation

    started = time.perf_counter()
    if workers is not None and scheduler is not None:
        raise NersembleZarrError("give either workers (threads here) or scheduler (an existing dask cluster), not both")
    model = _resolve_model(flame_model)
    location = StoreLocation.parse(store, storage_options) if isinstance(store, (str, os.PathLike)) else None
    if location is not None and not location.exists():
        raise NersembleZarrError(f"{location}: no store there (run 'nersemble-zarr convert' first)")
    zstore = location.zarr_store() if location is not None else store
    with StoreLock(location, operation="flame") if location is not None else nullcontext() as lock:
        summary = _write_flame(zstore, model, version, workers, scheduler, frames_per_chunk, chunk_size, progress,
                               str(store), lock.check if lock is not None else (lambda: None))
    summary.seconds = time.perf_counter() - started
    return summary


def _write_flame(
    zstore: Any, model: FlameModel, version: int, workers: int | None, scheduler: Any, frames_per_chunk: int,
    chunk_size: int, progress: bool, where: str, check_lock: Callable[[], None],
) -> FlameStoreSummary:
    """``check_lock`` raises when this writer lost the store lock: called before the markers are written."""
    import dask
    import zarr

    try:
        root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise NersembleZarrError(f"{where}: not a nersemble-zarr store (expected a Zarr v3 group): {e}") from None
    summary = FlameStoreSummary()
    ref = dask.delayed(_ModelRef(model), pure=True)
    model_attrs = {"flame_model": model.file_name, MODEL_SHA_ATTR: model.sha256}

    todo: list[tuple[str, FlameParameters, Any]] = []
    benchmarks_with_tracking = set()
    for benchmark, participant, sequence, tgroup in _tracked_sequences(root, version):
        path = flame_group(benchmark, participant, sequence, version)
        if not tgroup.attrs.get(schema.COMPLETE_ATTR, False):
            summary.skipped_incomplete_tracking.append(path)
            continue
        benchmarks_with_tracking.add(benchmark)
        if path in root:
            existing = root[path]
            if existing.attrs.get(schema.COMPLETE_ATTR, False) and existing.attrs.get(MODEL_SHA_ATTR) == model.sha256:
                summary.skipped_complete.append(path)
                continue
        params = load_flame_parameters(tgroup)
        todo.append((path, params, tgroup))

    for benchmark in sorted(benchmarks_with_tracking):
        _write_faces(root, benchmark, model, model_attrs)

    total = sum(p.n_timesteps for _, p, _ in todo)
    bar = FrameProgress(total, progress, desc="FLAME vertices")
    try:
        jobs: list[tuple[FlameParameters, Any, int]] = []
        groups = []
        for path, params, tgroup in todo:
            group = root.create_group(path, overwrite=True)
            group.update_attributes({
                **model_attrs, "version": version, "source": tgroup.path, schema.COMPLETE_ATTR: False,
                "description": f"FLAME 2023 meshes evaluated from {tgroup.basename} (official NeRSemble convention)",
            })
            n = params.n_timesteps
            frame = group.create_array(schema.FRAME, shape=(n,), dtype="int64", chunks=(max(n, 1),), dimension_names=(schema.FRAME,), **schema.chunk_codecs())
            frame[...] = params.frames
            frame.update_attributes({"description": "video frame index of each tracked timestep"})
            verts = group.create_array(
                VERTICES, shape=(n, N_VERTICES, 3), dtype="float32", chunks=(min(max(n, 1), frames_per_chunk), N_VERTICES, 3),
                dimension_names=VERTEX_DIMS, fill_value=np.nan, **schema.chunk_codecs(),
            )
            verts.update_attributes({
                "units": "metres", "coordinates": "world (scale · R_xyz(rotation) · v + translation, as the official provider)",
                "description": "FLAME vertex positions per tracked frame", **model_attrs,
            })
            for start in range(0, n, frames_per_chunk):
                block = params.select(slice(start, min(start + frames_per_chunk, n)))
                jobs.append((block, verts, start))
            groups.append(group)
            summary.written.append(path)
            summary.frames_written += n
        if groups:  # the consolidated copy must not keep saying "complete" for groups being rewritten
            _consolidate(zstore)
        if jobs and scheduler is not None:
            _write_on_cluster(scheduler, model, jobs, chunk_size, bar)
        elif jobs:
            tasks = [dask.delayed(_write_block, pure=False)(ref, block, verts, start, chunk_size, bar) for block, verts, start in jobs]
            n_workers = workers or os.cpu_count() or 1
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, threads // n_workers))  # workers × intra-op threads ≈ cores, not more
            try:
                dask.compute(*tasks, scheduler="threads", num_workers=n_workers)
            finally:
                torch.set_num_threads(threads)
        if groups:
            check_lock()
        for group in groups:  # completion last, after every chunk of the sequence is on the store
            group.update_attributes({schema.COMPLETE_ATTR: True})
    finally:
        bar.close()
    _consolidate(zstore)
    return summary


def _consolidate(zstore: Any) -> None:
    import zarr

    with warnings.catch_warnings():  # consolidated metadata is part of our store schema (DESIGN §2)
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(zstore)




def open_flame_meshes(
    store: Any,
    benchmark: str,
    participant: int,
    sequence: str,
    version: int = schema.CURRENT_TRACKING_VERSION,
    *,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """The meshes ``nersemble-zarr flame`` wrote for one sequence, as a lazy ``xarray.Dataset``.

    ``vertices (frame, vertex, xyz) float32`` (metres, world coordinates; dask, one chunk per stored chunk),
    coordinate ``frame`` (video frame index) and ``faces (face, corner) int32``. Raises
    :class:`NersembleZarrError` if the sequence's meshes are missing or not completely written.
    """
    import xarray as xr
    import zarr

    from ..storage.integrity import check_arrays, check_root, guard_dataset, read, reading, store_name
    from ..read.store import StoreReadError, as_zarr_store

    zstore = as_zarr_store(store, storage_options=storage_options)
    if not check_root(zstore):  # refuses a corrupt root or one without consolidated metadata
        raise StoreReadError(f"{store_name(zstore)}: not a Zarr v3 store (no zarr.json at its root)")
    path = flame_group(benchmark, participant, sequence, version)
    where = f"{benchmark} participant {participant} sequence {sequence!r}"
    try:  # the group's own attrs, not the consolidated copy, which a killed run leaves stale
        with reading(store_name(zstore), path):
            group = zarr.open_group(zstore, path=path, mode="r", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        group = None
    if group is None or not group.attrs.get(schema.COMPLETE_ATTR, False):
        state = "not completely written" if group is not None else "not in the store"
        raise NersembleZarrError(
            f"{where}: FLAME meshes v{version} ({path}/) are {state}; run 'nersemble-zarr flame STORE --flame-model PATH"
            f"{'' if version == schema.CURRENT_TRACKING_VERSION else f' --tracking-version {version}'}'"
        )
    check_arrays(group)
    with reading(store_name(zstore), path):
        ds = xr.open_dataset(zstore, engine="zarr", group=path, chunks={}, consolidated=False, zarr_format=3)
        ds = guard_dataset(ds, group)  # every chunk read through the integrity guard
        faces = zarr.open_array(zstore, path=faces_array_path(benchmark), mode="r", zarr_format=3)
    ds["faces"] = (FACES_DIMS, read(faces), dict(faces.attrs))
    return ds


def _write_faces(root: Any, benchmark: str, model: FlameModel, model_attrs: dict[str, Any]) -> None:
    path = faces_array_path(benchmark)
    if path in root:
        existing = root[path]
        if existing.attrs.get(schema.COMPLETE_ATTR, False) and existing.attrs.get(MODEL_SHA_ATTR) == model.sha256:
            return
    faces = root.create_array(
        path, shape=(N_FACES, 3), dtype="int32", chunks=(N_FACES, 3), dimension_names=FACES_DIMS, overwrite=True, **schema.chunk_codecs()
    )
    faces[...] = model.faces.astype(np.int32)
    faces.update_attributes({"description": "FLAME triangles: vertex indices into flame_v*/vertices", **model_attrs})
    faces.update_attributes({schema.COMPLETE_ATTR: True})

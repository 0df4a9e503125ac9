"""FLAME meshes from tracking: a drop-in ``FlameProvider``, lazy per-sequence vertices, and the store's meshes.

``FlameProvider(tracking, flame_model=...)`` offers the official provider's methods (``get_vertices(t)``,
``get_mesh(t)`` and ``create_mesh(vertices)`` returning a ``trimesh.Trimesh`` (``process=False``: 5023 vertices,
faces int64), ``get_landmarks(t)``, ``get_model_to_world_transformation(t)`` returning a float32 ``Pose``) plus
``vertices()`` which evaluates every timestep in batches. :func:`flame_vertices` turns a sequence's tracking (store group or
xarray Dataset) into a dask array computed chunk by chunk; :func:`open_flame_meshes` reads the meshes that
:func:`nersemble_zarr.pipelines.flame.write_flame_to_store` wrote (``<sequence>/flame_v<version>/vertices``,
``<benchmark>/flame_faces``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core import schema
from ..core.schema import faces_array_path, flame_group
from ..core.errors import NersembleZarrError
from ..read.camera import pose_from_euler
from .model import (
    DEFAULT_CHUNK_SIZE,
    N_EXPRESSION,
    N_SHAPE,
    N_VERTICES,
    FlameModel,
    FlameModelError,
    model_to_world_matrices,
)

__all__ = [
    "FlameModel", "FlameModelError", "FlameParameters", "FlameProvider",
    "flame_group", "flame_vertices", "load_flame_parameters", "open_flame_meshes",
]

# store layout of the evaluated meshes (group names in schema.py)
VERTICES = "vertices"
VERTEX_DIMS = schema.FLAME_VERTICES_DIMS
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
        frame_dim = ds["expression"].dims[0] if "expression" in ds else schema.TIMESTEP
        frames = ds[frame_dim].values if frame_dim in ds.coords else None
        return _parameters_from_getter(lambda k: ds[k].values, lambda k: k in ds.data_vars, source, frames)
    import zarr

    if isinstance(tracking, zarr.Group):
        group = tracking
        source = f"store group {group.path or '/'}"
        names = set(group.array_keys())
        from ..storage.integrity import check_arrays, read

        check_arrays(group)  # read through the integrity guard: a missing/corrupt object raises naming it
        from ..read.resolver import read_timesteps, stored_name

        frames = read_timesteps(group) if stored_name(names, schema.TIMESTEP) in names else None
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


def resolve_model(flame_model: Any, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> FlameModel:
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
        self.flame_model = resolve_model(flame_model, device, dtype)
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"FlameProvider({self.params.source!r}, T={len(self)}, model={self.flame_model!r}, chunk_size={self.chunk_size})"

    @property
    def faces(self) -> np.ndarray:
        """Triangles ``(9976, 3) int64`` (vertex indices; the dtype of ``get_mesh(t).faces``)."""
        return np.asarray(self.flame_model.faces, dtype=np.int64)

    # The official provider's tensors (float32 torch, as it builds them from the tracking) ------------

    @property
    def shape_params(self) -> torch.Tensor:
        """``(1, 300)`` float32 shape coefficients."""
        return torch.as_tensor(np.asarray(self.params.shape, dtype=np.float32).reshape(1, -1))

    @property
    def expr_params(self) -> torch.Tensor:
        """``(T, 100)`` float32 expression coefficients."""
        return torch.as_tensor(np.asarray(self.params.expression, dtype=np.float32))

    @property
    def pose_params(self) -> torch.Tensor:
        """``(T, 6)`` float32: zeros (the global rotation is applied separately) then ``jaw``."""
        jaw = torch.as_tensor(np.asarray(self.params.jaw, dtype=np.float32))
        return torch.cat([torch.zeros_like(jaw), jaw], dim=-1)

    @property
    def neck_pose(self) -> torch.Tensor:
        """``(T, 3)`` float32 neck rotation (axis-angle)."""
        return torch.as_tensor(np.asarray(self.params.neck, dtype=np.float32))

    @property
    def eyes_pose(self) -> torch.Tensor:
        """``(T, 6)`` float32 eye rotations (axis-angle, left then right)."""
        return torch.as_tensor(np.asarray(self.params.eyes, dtype=np.float32))

    @property
    def rotation(self) -> torch.Tensor:
        """``(T, 3)`` float32 head rotation (Euler XYZ, radians) of the model → world transform."""
        return torch.as_tensor(np.asarray(self.params.rotation, dtype=np.float32))

    @property
    def translation(self) -> torch.Tensor:
        """``(T, 3)`` float32 translation (metres) of the model → world transform."""
        return torch.as_tensor(np.asarray(self.params.translation, dtype=np.float32))

    @property
    def scale(self) -> torch.Tensor:
        """``(1, 1)`` float32 scale of the model → world transform."""
        return torch.tensor([[self.params.scale]], dtype=torch.float32)

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

    def get_mesh(self, timestep: int) -> Any:
        """The world-space mesh of one timestep as the official provider returns it: a ``trimesh.Trimesh`` built with
        ``process=False`` (``vertices (5023, 3)`` float64 as trimesh stores them, from float32; ``faces (9976, 3)``
        int64)."""
        return self.create_mesh(self.get_vertices(timestep))

    def create_mesh(self, vertices: np.ndarray) -> Any:
        """``trimesh.Trimesh(vertices, faces, process=False)``: ``vertices (5023, 3)`` with this model's faces, no
        merging or reordering (vertex ``i`` stays FLAME vertex ``i``)."""
        import trimesh

        return trimesh.Trimesh(vertices, self.faces, process=False)

    def _model_to_world64(self, timestep: int) -> np.ndarray:
        """``(4, 4) float64``: ``[[scale · R_xyz(rotation[t]), translation[t]], [0, 0, 0, 1]]``."""
        i = self._index([timestep])
        p = self.params
        m = model_to_world_matrices(
            torch.as_tensor(p.rotation[i], dtype=torch.float64), torch.as_tensor(p.translation[i], dtype=torch.float64), p.scale
        )
        return m[0].numpy()

    def get_model_to_world_transformation(self, timestep: int) -> Any:
        """The official ``Pose``: ``(4, 4) float32``, ``[[scale · R_XYZ(rotation[t]), translation[t]], [0, 0, 0, 1]]``,
        built as the official provider builds it (``Pose.from_euler(rotation[t], translation[t], 'XYZ')``, then the
        rotation block times ``scale``); pose type WORLD_2_CAM as dreifus's default there. A dreifus ``Pose`` when
        dreifus is installed, :class:`nersemble_zarr.read.camera.Pose` otherwise; ``.numpy()`` gives the array."""
        i = int(self._index([timestep])[0])
        p = self.params
        pose = pose_from_euler(np.asarray(p.rotation[i], dtype=np.float32), np.asarray(p.translation[i], dtype=np.float32))
        pose[:3, :3] *= np.float32(p.scale).item()
        return pose

    def apply_model_to_world_transformation(self, points: np.ndarray | torch.Tensor, timestep: int) -> np.ndarray | torch.Tensor:
        """Model-space points ``(..., 3)`` → world space with timestep ``timestep``'s transform.

        A tensor (e.g. the official ``(B, V, 3)``) comes back as a tensor of its dtype and device; anything
        else as float32 numpy.
        """
        m = self._model_to_world64(timestep)
        if isinstance(points, torch.Tensor):
            mt = torch.as_tensor(m, dtype=points.dtype, device=points.device)
            return points @ mt[:3, :3].T + mt[:3, 3]
        pts = np.asarray(points, dtype=np.float64)
        return (pts @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Lazy vertices of a store sequence
# ---------------------------------------------------------------------------------------------


class ModelRef:
    """Hands one FlameModel to every dask task without re-hashing or copying its tensors per task."""

    def __init__(self, model: FlameModel) -> None:
        self.model = model

    def __dask_tokenize__(self) -> Any:
        return ("flame-model", self.model.sha256 or id(self.model), str(self.model.dtype), str(self.model.device))


def evaluate_block(ref: ModelRef, p: FlameParameters, chunk_size: int) -> np.ndarray:
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
    """World-space FLAME vertices of one sequence as a lazy dask array ``(timestep, vertex, xyz)`` float32, metres.

    ``dataset_or_group``: a sequence from ``open_sequence`` (its tracking variables), a store ``tracking_vN``
    Dataset/zarr group, a sequence zarr group or DataTree node (its ``tracking_v<version>`` child), or
    anything :class:`FlameProvider` accepts. Only the (small) tracking parameters are read now; each dask
    chunk of ``frames_per_chunk`` frames runs the batched forward when computed. ``flame_model``: as in
    :class:`FlameProvider`.
    """
    import dask
    import dask.array as da

    params = load_flame_parameters(_tracking_source(dataset_or_group, version))
    model = resolve_model(flame_model)
    ref = dask.delayed(ModelRef(model), pure=True)
    n = params.n_timesteps
    blocks = []
    for start in range(0, n, max(1, frames_per_chunk)):
        stop = min(start + frames_per_chunk, n)
        block = dask.delayed(evaluate_block, pure=True)(ref, params.select(slice(start, stop)), chunk_size)
        blocks.append(da.from_delayed(block, shape=(stop - start, N_VERTICES, 3), dtype=np.float32))
    if not blocks:
        return da.zeros((0, N_VERTICES, 3), dtype=np.float32)
    return da.concatenate(blocks, axis=0)


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

    ``vertices (timestep, vertex, xyz) float32`` (metres, world coordinates; dask, one chunk per stored chunk),
    coordinate ``timestep`` (video frame index, int64; format-1 stores' ``frame`` is read as it) and
    ``faces (face, corner) int64`` (stores written before faces were int64 hold int32: read as int64). Raises
    :class:`NersembleZarrError` if the sequence's meshes are missing or not completely written.
    """
    import xarray as xr
    import zarr

    from ..storage.integrity import check_arrays, check_root, guard_dataset, read, reading, store_name
    from ..read.store import StoreReadError, as_zarr_store
    from ..read.resolver import current_names
    from ..storage.markers import is_complete

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
    if group is None or not is_complete(group):
        state = "not completely written" if group is not None else "not in the store"
        raise NersembleZarrError(
            f"{where}: FLAME meshes v{version} ({path}/) are {state}; run 'nersemble-zarr flame STORE --flame-model PATH"
            f"{'' if version == schema.CURRENT_TRACKING_VERSION else f' --tracking-version {version}'}'"
        )
    check_arrays(group)
    with reading(store_name(zstore), path):
        ds = xr.open_dataset(zstore, engine="zarr", group=path, chunks={}, consolidated=False, zarr_format=3)
        ds = current_names(guard_dataset(ds, group))  # every chunk read through the integrity guard
        faces = zarr.open_array(zstore, path=faces_array_path(benchmark), mode="r", zarr_format=3)
    ds["faces"] = (FACES_DIMS, np.asarray(read(faces), dtype=np.int64), dict(faces.attrs))
    return ds

"""Open a nersemble-zarr store lazily: the whole tree as ``xarray.DataTree``, one sequence as ``xarray.Dataset``.

Everything returned here is backed by dask and reads metadata only: frames are read when a
selection is computed (``.values``, ``.compute()``, ``.load()``). ``images``/``alpha`` have one
frame per dask chunk, so ``ds.images.sel(camera="222200038", timestep=7).values`` reads exactly
one stored chunk.

``store`` is a local path, an fsspec URL (``s3://bucket/nersemble.zarr``, ``file://...``; pass
``storage_options`` for credentials/endpoints) or a ``zarr`` store object.

Downscaled levels (written by :mod:`nersemble_zarr.pipelines.downscale`) are picked with ``level=2`` or
``scale=0.5``; a missing level raises unless ``resize=True`` asks for an on-the-fly area average.

Completion markers are honoured: cameras whose frames are not completely converted (e.g. videos
not downloaded) are left out with an :class:`IncompleteStoreWarning` naming them; nothing returned
here ever shows unwritten (fill-value) frames as data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import Store

from ..storage import codecs as _codecs  # noqa: F401  (registers the JPEG codec for stores that use it)
from ..core import schema
from ..core.benchmark import get_benchmark, participant_dir
from ..imaging import area_average, level_factor, scale_intrinsics
from ..core.errors import NersembleZarrError, SelectionError
from ..storage.integrity import check_arrays, check_root, guard_dataset, guard_store, reading, store_name
from ..storage.location import StoreLocation

StoreLike = str | os.PathLike | Store


class StoreReadError(NersembleZarrError):
    """The store lacks what was asked for (group, level, camera, timestep) or is incompletely written."""


# ---------------------------------------------------------------------------------------------
# Store handles
# ---------------------------------------------------------------------------------------------


def as_zarr_store(store: StoreLike, *, storage_options: dict[str, Any] | None = None) -> Store:
    """A read-only zarr ``Store`` for a path, an fsspec URL (``"s3://..."``) or a store object, behind the
    integrity guard (:class:`~nersemble_zarr.storage.integrity.GuardedStore`: a missing chunk or shard raises)."""
    if isinstance(store, Store):
        return guard_store(store)
    location = StoreLocation.parse(store, storage_options)
    if location.is_local and not os.path.isdir(location.url):
        raise StoreReadError(
            f"no store at {os.fspath(store)}: expected a Zarr v3 store folder written by 'nersemble-zarr convert'"
        )
    return guard_store(location.zarr_store(read_only=True), os.fspath(store))


def open_root(store: StoreLike, *, storage_options: dict[str, Any] | None = None) -> zarr.Group:
    """The store's root ``zarr.Group`` (read-only, through its consolidated metadata, behind the integrity guard).

    Raises :class:`~nersemble_zarr.core.errors.StoreIntegrityError` when the root ``zarr.json`` is corrupt or
    lacks consolidated metadata, :class:`StoreReadError` when there is no store."""
    zstore = as_zarr_store(store, storage_options=storage_options)
    try:
        if not check_root(zstore):
            raise FileNotFoundError("no zarr.json at its root")
        with reading(store_name(zstore), "zarr.json"):
            return zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=True)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise StoreReadError(f"{_describe(store)} is not a Zarr v3 group: {e}") from None


def _describe(store: StoreLike) -> str:
    return os.fspath(store) if isinstance(store, (str, os.PathLike)) else type(store).__name__


def _open_dataset(node: zarr.Group) -> xr.Dataset:
    """One group as a lazy Dataset, reusing ``node``'s already-parsed (consolidated) metadata: opening
    by path would re-read and re-parse the root's consolidated metadata for every group.

    The integrity guard: every member array's ``zarr.json`` must be there and parse, and every variable
    reads through :class:`~nersemble_zarr.storage.integrity.GuardedArray` (a missing or corrupt object raises an
    error naming it, the camera and the timesteps)."""
    from xarray.backends import ZarrStore

    check_arrays(node)
    with reading(store_name(node.store), node.path or "/"):
        ds = xr.open_dataset(node.store, engine="zarr", store=ZarrStore(node), chunks={})
    return guard_dataset(ds, node)


def _has_group(root: zarr.Group, path: str) -> bool:
    try:
        node = root[path]
    except KeyError:
        return False
    return isinstance(node, zarr.Group)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def open_store(store: StoreLike, *, storage_options: dict[str, Any] | None = None) -> xr.DataTree:
    """The whole store as an ``xarray.DataTree`` of dask-backed, lazy arrays (one frame per dask chunk).

    Nodes follow the store: ``tree["nvs/388/GLASSES"]`` is a sequence (``images (camera, timestep,
    height, width, rgb) uint8``, ``alpha``), ``tree["nvs/388/calibration"]`` the rig,
    ``tree["nvs/388/GLASSES/level_2"]`` a downscaled level. Opening reads metadata and the small
    index coordinates (camera serials, timesteps) only.
    """
    zstore = as_zarr_store(store, storage_options=storage_options)
    try:
        if not check_root(zstore):
            raise FileNotFoundError("no zarr.json at its root")
        with reading(store_name(zstore), "zarr.json"):
            tree = xr.open_datatree(zstore, engine="zarr", chunks={}, zarr_format=3)
            root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=True)
    except FileNotFoundError as e:
        raise StoreReadError(f"{_describe(store)} is not a Zarr v3 store: {e}") from None
    for node in tree.subtree:  # the same guard as open_sequence: errors name object, camera and timesteps
        path = node.path.strip("/")
        group = root[path] if path else root
        if isinstance(group, zarr.Group) and node.has_data:
            check_arrays(group)
            node.dataset = guard_dataset(node.to_dataset(inherit=False), group)
    return tree


def list_participants(store: StoreLike, benchmark: str, *, storage_options: dict[str, Any] | None = None) -> list[int]:
    """Participant ids of ``benchmark`` present in the store, ascending."""
    root = open_root(store, storage_options=storage_options)
    get_benchmark(benchmark)
    if not _has_group(root, schema.benchmark_group(benchmark)):
        return []
    group = root[schema.benchmark_group(benchmark)]
    return sorted(int(name) for name, _ in group.groups() if name.isdigit())


def list_sequences(
    store: StoreLike, benchmark: str, participant: int, *, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Sequences of one participant present in the store, in the benchmark's official order."""
    root = open_root(store, storage_options=storage_options)
    return _sequences_in(root, benchmark, participant)


def _sequences_in(root: zarr.Group, benchmark: str, participant: int) -> list[str]:
    path = schema.participant_group(benchmark, participant)
    if not _has_group(root, path):
        return []
    present = {name for name, _ in root[path].groups() if name != schema.CALIBRATION}
    official = get_benchmark(benchmark).sequences.get(int(participant), ())
    return [s for s in official if s in present] + sorted(present - set(official))


def open_calibration(
    store: StoreLike, benchmark: str, participant: int, *, storage_options: dict[str, Any] | None = None
) -> xr.Dataset:
    """All 16 cameras of a participant's rig, loaded: ``world_2_cam (serial, 4, 4) float64`` (OpenCV,
    metres), ``intrinsics (serial, 3, 3) float64`` (full-resolution pixels), ``split (serial)``."""
    return _calibration(open_root(store, storage_options=storage_options), benchmark, participant)


def _calibration(root: zarr.Group, benchmark: str, participant: int) -> xr.Dataset:
    path = schema.calibration_group(benchmark, participant)
    if not _has_group(root, path):
        raise StoreReadError(
            f"{benchmark} participant {participant_dir(participant)} has no calibration in the store "
            f"(expected group {path}/): convert it first"
        )
    with reading(store_name(root.store), path):
        return _open_dataset(root[path]).load()


def level_of(level: int | None = None, scale: float | None = None) -> int:
    """The integer level factor from ``level=`` (1, 2, 4, …) or ``scale=`` (1, 0.5, 0.25, …); default 1."""
    if level is not None and scale is not None and level_factor(scale) != int(level):
        raise ValueError(f"level={level} and scale={scale} disagree: pass one of them")
    if scale is not None:
        return level_factor(scale)
    if level is None:
        return 1
    if int(level) != level or level < 1:
        raise ValueError(f"level must be a positive integer downscale factor (1, 2, 4, ...), not {level!r}")
    return int(level)


def open_sequence(
    store: StoreLike,
    benchmark: str,
    participant: int,
    sequence: str,
    *,
    level: int | None = None,
    scale: float | None = None,
    resize: bool = False,
    tracking_version: int = schema.CURRENT_TRACKING_VERSION,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """One sequence as a lazy ``xarray.Dataset``.

    Variables (dask-backed; nothing is read until computed):

    - ``images (camera, timestep, height, width, rgb) uint8`` and ``alpha (camera, timestep, height,
      width) uint8``, 0–255, one frame per dask chunk — at full resolution or at the stored level
      ``level=f`` / ``scale=1/f`` (``resize=True`` area-averages on the fly when the level is not stored);
    - ``world_2_cam (camera, w2c_row, w2c_col) float64`` (OpenCV, metres) and ``intrinsics (camera,
      k_row, k_col) float64`` for the returned resolution, ``split (camera)``, aligned on ``camera``;
    - FLAME tracking ``tracking_version`` (mono): ``expression (timestep, expression_coeff)``, ``rotation``,
      ``translation``, ``jaw``, ``neck (timestep, axis)``, ``rotation_matrices (timestep, row, col)``,
      ``eyes (timestep, eye_param)``, ``shape (shape_coeff)``, ``scale ()`` float32. They share the
      ``timestep`` dim when the tracked frames are exactly the video timesteps, and for test sequences
      (tracking only, no video: ``timestep`` = tracked frames, ``camera`` = the evaluated serials);
      otherwise they keep their own ``frame`` dim and coordinate;
    - NVS point clouds (CSR): ``points (point, xyz)``, ``colors (point, rgb)``, ``normals``,
      ``offsets (cloud_offset)``, coordinate ``cloud_timestep``.

    Coordinates ``camera`` (serial strings) and ``timestep`` (video frame index) make
    ``ds.images.sel(camera="222200038", timestep=slice(0, 100))`` work.
    """
    factor = level_of(level, scale)
    root = open_root(store, storage_options=storage_options)
    bench = get_benchmark(benchmark)
    where = f"{benchmark} participant {participant_dir(participant)} sequence {sequence!r}"
    seq_path = schema.sequence_group(benchmark, participant, sequence)
    if not _has_group(root, seq_path):
        present = _sequences_in(root, benchmark, participant)
        raise StoreReadError(
            f"{where} is not in the store (expected group {seq_path}/); present: {', '.join(present) or 'none'}"
        )
    seq_group = root[seq_path]
    has_video = schema.IMAGES in seq_group.array_keys()

    ds = _open_dataset(seq_group) if has_video else xr.Dataset()
    if has_video:
        ds = _complete_cameras(ds, seq_group, where)
        if factor != 1:
            ds = _with_level(ds, seq_group, factor, resize, where)
    ds.attrs = {
        "benchmark": benchmark,
        "participant": int(participant),
        "sequence": sequence,
        "level": factor,
        "scale": 1.0 / factor,
    }

    tracking_group = _complete_group(seq_group, schema.tracking_group_name(tracking_version), f"FLAME tracking v{tracking_version}", where)
    tracking = None if tracking_group is None else _open_dataset(tracking_group)
    if tracking is not None:
        frames = tracking[schema.FRAME].values
        if not has_video:
            tracking = tracking.rename({schema.FRAME: schema.TIMESTEP})
        elif len(frames) == ds.sizes[schema.TIMESTEP] and np.array_equal(frames, ds[schema.TIMESTEP].values):
            tracking = tracking.rename_dims({schema.FRAME: schema.TIMESTEP}).drop_vars(schema.FRAME)
        ds = ds.merge(tracking, combine_attrs="override")
        ds.attrs["tracking_version"] = int(tracking_version)

    clouds_group = _complete_group(seq_group, schema.POINTCLOUDS, "point clouds", where)
    if clouds_group is not None:
        ds = ds.merge(_open_dataset(clouds_group), combine_attrs="override")

    cameras = ds[schema.CAMERA].values.tolist() if schema.CAMERA in ds.coords else list(bench.evaluation_serials)
    calib = _calibration(root, benchmark, participant)
    missing = [c for c in cameras if c not in calib[schema.SERIAL].values]
    if missing:
        raise StoreReadError(f"{where}: cameras {', '.join(missing)} have no calibration in the store")
    cam = calib.sel({schema.SERIAL: cameras}).rename({schema.SERIAL: schema.CAMERA})
    if factor != 1:
        cam[schema.INTRINSICS] = (
            cam[schema.INTRINSICS].dims,
            np.stack([scale_intrinsics(k, factor) for k in cam[schema.INTRINSICS].values]),
            {**cam[schema.INTRINSICS].attrs, "description": f"camera matrix K for level {factor} (scale 1/{factor})"},
        )
    ds = ds.assign({name: cam[name] for name in (schema.WORLD_2_CAM, schema.INTRINSICS, schema.SPLIT)})
    if schema.CAMERA not in ds.coords:
        ds = ds.assign_coords({schema.CAMERA: cam[schema.CAMERA]})
    return ds


class IncompleteStoreWarning(UserWarning):
    """Some cameras of a sequence are not (completely) converted and are left out of what is returned."""


def complete_serials(group: zarr.Group, cameras: Sequence[str]) -> list[str]:
    """Serials among ``cameras`` whose frames are completely written in ``group``'s images and alpha
    (both list them in their ``complete_cameras`` marker), in ``cameras`` order."""
    done = None
    for name in (schema.IMAGES, schema.ALPHA):
        if name in group.array_keys():
            listed = set(group[name].attrs.get(schema.COMPLETE_CAMERAS_ATTR, []))
            done = listed if done is None else done & listed
    return [c for c in cameras if done is not None and c in done]


def _complete_cameras(ds: xr.Dataset, seq_group: zarr.Group, where: str) -> xr.Dataset:
    cameras = [str(c) for c in ds[schema.CAMERA].values]
    complete = complete_serials(seq_group, cameras)
    if not complete:
        raise StoreReadError(
            f"{where}: no camera's frames are completely written (no completion markers); "
            f"rerun 'nersemble-zarr convert' to finish the store"
        )
    if len(complete) < len(cameras):
        missing = [c for c in cameras if c not in complete]
        warnings.warn(
            f"{where}: cameras {', '.join(missing)} are not completely converted and are left out "
            f"(download their videos and rerun 'nersemble-zarr convert')",
            IncompleteStoreWarning,
            stacklevel=3,
        )
        ds = ds.sel({schema.CAMERA: complete})
    return ds


def _with_level(ds: xr.Dataset, seq_group: zarr.Group, factor: int, resize: bool, where: str) -> xr.Dataset:
    name = schema.level_group_name(factor)
    cameras = [str(c) for c in ds[schema.CAMERA].values]
    if name in seq_group.group_keys() and complete_serials(seq_group[name], cameras) == cameras:
        level = _open_dataset(seq_group[name])
        h, w = schema.level_dims(factor)
        level = level.rename({h: "height", w: "width"})
        stored = [str(c) for c in seq_group[schema.CAMERA][:]]
        if cameras != stored:  # incomplete cameras were left out of ds; the level's arrays cover all
            level = level.isel({schema.CAMERA: [stored.index(c) for c in cameras]})
        return ds.drop_vars([schema.IMAGES, schema.ALPHA]).assign(
            images=level[schema.IMAGES], alpha=level[schema.ALPHA]
        )
    if not resize:
        raise StoreReadError(
            f"{where}: level {factor} (scale 1/{factor}) is not stored; run 'nersemble-zarr downscale STORE "
            f"--factor {factor}' or pass resize=True to area-average on the fly"
        )
    return ds.drop_vars([schema.IMAGES, schema.ALPHA]).assign(
        images=_resize_lazy(ds[schema.IMAGES], factor), alpha=_resize_lazy(ds[schema.ALPHA], factor)
    )


def _resize_lazy(arr: xr.DataArray, factor: int) -> xr.DataArray:
    import dask.array as da

    data = arr.data
    h, w = data.shape[2] // factor, data.shape[3] // factor
    chunks = (data.chunks[0], data.chunks[1], (h,), (w,)) + data.chunks[4:]
    data = data.rechunk({2: -1, 3: -1})
    small = da.map_blocks(area_average, data, factor, dtype=data.dtype, chunks=chunks)
    return xr.DataArray(small, dims=arr.dims, coords=arr.coords, attrs={**arr.attrs, "level": factor})


def _complete_group(seq_group: zarr.Group, name: str, what: str, where: str) -> zarr.Group | None:
    """``seq_group[name]`` if it is there and marked complete; an unfinished one is left out with a warning."""
    if name not in seq_group.group_keys():
        return None
    group = seq_group[name]
    if not group.attrs.get(schema.COMPLETE_ATTR, False):
        warnings.warn(
            f"{where}: {what} ({name}/) are not completely converted and are left out "
            f"(rerun 'nersemble-zarr convert' to finish them)",
            IncompleteStoreWarning,
            stacklevel=3,
        )
        return None
    return group


# ---------------------------------------------------------------------------------------------
# Selection helpers
# ---------------------------------------------------------------------------------------------


def check_timestep(value: Any, argument: str = "timestep") -> int:
    """``value`` as a timestep (video frame index): an integer >= 0 (numpy integers too). A float (3.7, even
    3.0), a string ("3"), a bool or a negative number raises :class:`SelectionError` (a ``ValueError``)
    naming ``argument``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SelectionError(f"{argument} must be an integer frame index >= 0, not {value!r} ({type(value).__name__})")
    if value < 0:
        raise SelectionError(f"{argument} must be an integer frame index >= 0, not {value!r}")
    return int(value)


def check_every_nth(value: Any, argument: str = "every_nth_frame") -> int | None:
    """``None`` or a positive integer step; 0, negatives, floats, strings and bools raise :class:`SelectionError`."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SelectionError(f"{argument} must be a positive integer (1 = every frame), not {value!r}")
    return int(value)


def _check_timesteps(timesteps: Any, argument: str = "timesteps") -> Any:
    """Check an int, a slice of ints, or a sequence of ints as timesteps (see :func:`check_timestep`)."""
    if isinstance(timesteps, slice):
        for part, name in ((timesteps.start, "start"), (timesteps.stop, "stop")):
            if part is not None:
                check_timestep(part, f"{argument} {name}")
        if timesteps.step is not None:
            check_every_nth(timesteps.step, f"{argument} step")
        return timesteps
    if isinstance(timesteps, (str, bytes)) or np.ndim(timesteps) == 0:
        return check_timestep(timesteps, argument)
    return [check_timestep(t, argument) for t in (timesteps.tolist() if isinstance(timesteps, np.ndarray) else timesteps)]


def select_frames(
    ds: xr.Dataset,
    cameras: str | Sequence[str] | None = None,
    timesteps: int | slice | Sequence[int] | None = None,
    *,
    every_nth_frame: int | None = None,
    split: str | None = None,
) -> xr.Dataset:
    """Select cameras (serials), timesteps (values, not positions) and/or every n-th frame, lazily.

    ``split="train"``/``"hold_out"`` keeps the cameras of that split. Missing serials/timesteps raise
    :class:`StoreReadError` naming them; a timestep that is no integer >= 0 (3.7, "3", True, -1) or an
    ``every_nth_frame`` that is no positive integer raises :class:`SelectionError` (a ``ValueError``).
    """
    if timesteps is not None:
        timesteps = _check_timesteps(timesteps)
    every_nth_frame = check_every_nth(every_nth_frame)
    if split is not None:
        ds = ds.sel({schema.CAMERA: ds[schema.SPLIT] == split})
    if cameras is not None:
        wanted = [cameras] if isinstance(cameras, str) else list(cameras)
        have = set(ds[schema.CAMERA].values.tolist())
        missing = [c for c in wanted if c not in have]
        if missing:
            raise StoreReadError(f"cameras {', '.join(missing)} are not in this selection: have {', '.join(sorted(have))}")
        ds = ds.sel({schema.CAMERA: cameras})
    if timesteps is not None:
        if not isinstance(timesteps, slice):
            wanted_t = np.atleast_1d(np.asarray(timesteps, dtype=np.int64))
            missing_t = np.setdiff1d(wanted_t, ds[schema.TIMESTEP].values)
            if missing_t.size:
                raise StoreReadError(f"timesteps {missing_t.tolist()} are not in this sequence")
        ds = ds.sel({schema.TIMESTEP: timesteps})
    if every_nth_frame is not None:
        ds = ds.isel({schema.TIMESTEP: slice(None, None, int(every_nth_frame))})
    return ds


def pointcloud(ds: xr.Dataset, timestep: int) -> xr.Dataset:
    """The point cloud of one timestep from a sequence Dataset's CSR variables (lazy, ``point`` dim)."""
    stamps = ds[schema.CLOUD_TIMESTEP].values
    hits = np.flatnonzero(stamps == timestep)
    if hits.size == 0:
        raise StoreReadError(f"no point cloud at timestep {timestep}: stored timesteps {stamps.tolist()}")
    i = int(hits[0])
    offsets = ds[schema.OFFSETS].values
    rows = slice(int(offsets[i]), int(offsets[i + 1]))
    return ds[[v for v in (schema.POINTS, schema.COLORS, schema.NORMALS) if v in ds]].isel({schema.POINT: rows})

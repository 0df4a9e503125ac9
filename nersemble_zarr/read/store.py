"""Open a nersemble-zarr store lazily: the whole tree as ``xarray.DataTree``, one sequence as ``xarray.Dataset``.

Everything returned here is backed by dask and reads metadata only: frames are read when a
selection is computed (``.values``, ``.compute()``, ``.load()``). ``images``/``alpha`` have one
frame per dask chunk, so ``ds.images.sel(camera="222200038", timestep=7).values`` reads exactly
one stored chunk.

``store`` is a local path, an fsspec URL (``s3://bucket/nersemble.zarr``, ``file://...``; pass
``storage_options`` for credentials/endpoints) or a ``zarr`` store object.

Downscaled levels (written by :mod:`nersemble_zarr.pipelines.downscale`) are picked with ``level=2`` or
``scale=0.5``; a missing level raises unless ``resize=True`` asks for an on-the-fly area average.

``open_sequence`` is a facade over the one sequence resolver (:mod:`nersemble_zarr.read.resolver`), which
also serves the data managers and ``FrameDataset``: completion markers are honoured the same way
everywhere. Cameras whose frames are not completely converted (e.g. videos not downloaded) are left
out with an :class:`IncompleteStoreWarning` naming them, and asking for one by name (``cameras=``) is an
error naming it; nothing returned here ever shows unwritten (fill-value) frames as data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ..core import schema
from ..core.benchmark import get_benchmark
from ..imaging import area_average
from ..storage.integrity import check_arrays, check_root, guard_dataset, reading, store_name
from .resolver import (
    IncompleteStoreWarning,
    ResolvedSequence,
    StoreLike,
    StoreReadError,
    as_zarr_store,
    check_every_nth,
    check_timestep,
    check_timesteps,
    complete_serials,
    current_names,
    describe_store,
    has_group,
    level_of,
    open_root,
    calibration_path,
    resolve_sequence,
    sequences_in,
    store_format,
)


def _open_dataset(node: zarr.Group) -> xr.Dataset:
    """One group as a lazy Dataset, reusing ``node``'s already-parsed (consolidated) metadata: opening
    by path would re-read and re-parse the root's consolidated metadata for every group.

    The integrity guard: every member array's ``zarr.json`` must be there and parse, and every variable
    reads through :class:`~nersemble_zarr.storage.integrity.GuardedArray` (a missing or corrupt object raises an
    error naming it, the camera and the timesteps). Format-1 names are mapped to the current ones
    (:func:`~nersemble_zarr.read.resolver.current_names`)."""
    from xarray.backends import ZarrStore

    check_arrays(node)
    with reading(store_name(node.store), node.path or "/"):
        ds = xr.open_dataset(node.store, engine="zarr", store=ZarrStore(node), chunks={})
    return current_names(guard_dataset(ds, node))


def _own_time_dim(ds: xr.Dataset, video_timesteps: Any) -> xr.Dataset:
    """Tracking or FLAME meshes ``ds`` (dim ``timestep``) beside video of ``video_timesteps`` (``None``: no video):
    unchanged when its timesteps are the video's (or there is no video), else with its own dim
    :data:`~nersemble_zarr.core.schema.TRACKED_FRAME` (a Dataset, and a DataTree child, hold one ``timestep`` index)."""
    if video_timesteps is None or schema.TIMESTEP not in ds.dims:
        return ds
    mine = ds[schema.TIMESTEP].values if schema.TIMESTEP in ds.coords else None
    if mine is not None and len(mine) == len(video_timesteps) and np.array_equal(mine, np.asarray(video_timesteps)):
        return ds
    return ds.rename({schema.TIMESTEP: schema.TRACKED_FRAME})


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def open_store(store: StoreLike, *, storage_options: dict[str, Any] | None = None) -> xr.DataTree:
    """The whole store as an ``xarray.DataTree`` of dask-backed, lazy arrays (one frame per dask chunk).

    Nodes follow the store: ``tree["nvs/388/GLASSES"]`` is a sequence (``images (camera, timestep,
    height, width, rgb) uint8``, ``alpha``), ``tree["nvs/388/calibration"]`` the rig,
    ``tree["nvs/388/GLASSES/level_2"]`` a downscaled level. Opening reads metadata and the small
    index coordinates (camera serials, timesteps) only. Stores of format 1 read with the current names
    (calibration ``camera``, tracking and FLAME meshes ``timestep``). Tracking / FLAME meshes whose timesteps
    are not their sequence's video timesteps keep a dim of their own, ``frame`` (a DataTree child aligns with
    its parent's ``timestep``).
    """
    zstore = as_zarr_store(store, storage_options=storage_options)
    try:
        if not check_root(zstore):
            raise FileNotFoundError("no zarr.json at its root")
        with reading(store_name(zstore), "zarr.json"):
            groups = xr.open_groups(zstore, engine="zarr", chunks={}, zarr_format=3)
            root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=True)
    except FileNotFoundError as e:
        raise StoreReadError(f"{describe_store(store)} is not a Zarr v3 store: {e}") from None
    store_format(root)
    nodes: dict[str, xr.Dataset] = {}
    for key, ds in groups.items():  # the same guard and names as open_sequence: errors name object, camera, timesteps
        path = key.strip("/")
        group = root[path] if path else root
        if isinstance(group, zarr.Group) and (ds.data_vars or ds.coords):
            check_arrays(group)
            ds = current_names(guard_dataset(ds, group))
            parent = nodes.get("/" + path.rpartition("/")[0]) if "/" in path else None
            if parent is not None and path.rpartition("/")[2].startswith(("tracking_v", "flame_v")):
                ds = _own_time_dim(ds, parent[schema.TIMESTEP].values if schema.TIMESTEP in parent.coords else None)
        nodes["/" + path if path else "/"] = ds
    return xr.DataTree.from_dict(nodes)


def list_participants(store: StoreLike, benchmark: str, *, storage_options: dict[str, Any] | None = None) -> list[int]:
    """Participant ids of ``benchmark`` present in the store, ascending."""
    root = open_root(store, storage_options=storage_options)
    get_benchmark(benchmark)
    if not has_group(root, schema.benchmark_group(benchmark)):
        return []
    group = root[schema.benchmark_group(benchmark)]
    return sorted(int(name) for name, _ in group.groups() if name.isdigit())


def list_sequences(
    store: StoreLike, benchmark: str, participant: int, *, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Sequences of one participant present in the store, in the benchmark's official order."""
    root = open_root(store, storage_options=storage_options)
    return sequences_in(root, benchmark, participant)


def open_calibration(
    store: StoreLike, benchmark: str, participant: int, *, storage_options: dict[str, Any] | None = None
) -> xr.Dataset:
    """All 16 cameras of a participant's rig, loaded: ``world_2_cam (camera, 4, 4) float64`` (OpenCV,
    metres), ``intrinsics (camera, 3, 3) float64`` (full-resolution pixels), ``split (camera)``; coordinate
    ``camera`` (serial strings; format-1 stores named it ``serial``)."""
    return _calibration(open_root(store, storage_options=storage_options), benchmark, participant)


def _calibration(root: zarr.Group, benchmark: str, participant: int) -> xr.Dataset:
    path = calibration_path(root, benchmark, participant)
    with reading(store_name(root.store), path):
        return _open_dataset(root[path]).load()


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
    cameras: str | Iterable[str] | None = None,
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
      otherwise they keep their own ``frame`` dim and coordinate (int64 timesteps);
    - NVS point clouds (CSR): ``points (point, xyz)``, ``colors (point, rgb)``, ``normals``,
      ``offsets (cloud_offset)``, coordinate ``cloud_timestep``.

    Cameras, level, completeness and calibration are resolved by
    :func:`~nersemble_zarr.read.resolver.resolve_sequence` (the rule every reader shares): ``cameras=None``
    gives every completely converted camera (others are left out with an :class:`IncompleteStoreWarning`);
    ``cameras=[...]`` gives those, and asking for one that is not stored or not completely converted raises
    :class:`StoreReadError` naming it.

    Coordinates ``camera`` (serial strings) and ``timestep`` (video frame index) make
    ``ds.images.sel(camera="222200038", timestep=slice(0, 100))`` work.
    """
    root = open_root(store, storage_options=storage_options)
    res = resolve_sequence(root, benchmark, participant, sequence, cameras=cameras, level=level, scale=scale,
                           resize=resize, stacklevel=3)
    ds = _frames_dataset(root, res) if res.has_video else xr.Dataset()
    ds.attrs = {
        "benchmark": benchmark,
        "participant": int(participant),
        "sequence": sequence,
        "level": res.level,
        "scale": 1.0 / res.level,
    }

    name = schema.tracking_group_name(tracking_version)
    tracking_group = res.open_group(root, name, f"FLAME tracking v{tracking_version}", required=False)
    if tracking_group is not None:
        tracking = _own_time_dim(_open_dataset(tracking_group), res.timesteps if res.has_video else None)
        if schema.TIMESTEP in tracking.coords and res.has_video:  # the video's coordinate (same values) stays
            tracking = tracking.drop_vars(schema.TIMESTEP)
        ds = ds.merge(tracking, combine_attrs="override")
        ds.attrs["tracking_version"] = int(tracking_version)

    clouds_group = res.open_group(root, schema.POINTCLOUDS, "point clouds", required=False)
    if clouds_group is not None:
        ds = ds.merge(_open_dataset(clouds_group), combine_attrs="override")

    # Calibration of the resolved cameras at the resolved level: values from the resolver, attrs from the store.
    calib = res.calibration
    cam = _calibration(root, benchmark, participant).sel({schema.CAMERA: list(calib.serials)})
    intrinsics_attrs = dict(cam[schema.INTRINSICS].attrs)
    if res.level != 1:
        intrinsics_attrs["description"] = f"camera matrix K for level {res.level} (scale 1/{res.level})"
    cam[schema.INTRINSICS] = (cam[schema.INTRINSICS].dims, calib.intrinsics, intrinsics_attrs)
    ds = ds.assign({name: cam[name] for name in (schema.WORLD_2_CAM, schema.INTRINSICS, schema.SPLIT)})
    if schema.CAMERA not in ds.coords:
        ds = ds.assign_coords({schema.CAMERA: cam[schema.CAMERA]})
    return ds


def _frames_dataset(root: zarr.Group, res: ResolvedSequence) -> xr.Dataset:
    """The sequence group as a lazy Dataset with ``images``/``alpha`` of the resolved cameras at the resolved
    level (the stored level group, or full frames area-averaged on the fly when ``res.resize`` > 1)."""
    ds = _open_dataset(root[res.path])
    if list(res.camera_positions) != list(range(len(res.stored_cameras))):
        ds = ds.isel({schema.CAMERA: list(res.camera_positions)})
    if res.frames_path != res.path:  # a stored level: its arrays cover all stored cameras
        level = _open_dataset(root[res.frames_path])
        h, w = schema.level_dims(res.level)
        level = level.rename({h: "height", w: "width"}).isel({schema.CAMERA: list(res.camera_positions)})
        # errors=ignore: a levels-only store (convert --no-full) has no full-resolution arrays to drop
        return ds.drop_vars([schema.IMAGES, schema.ALPHA], errors="ignore").assign(images=level[schema.IMAGES], alpha=level[schema.ALPHA])
    if res.resize > 1:
        return ds.drop_vars([schema.IMAGES, schema.ALPHA]).assign(
            images=_resize_lazy(ds[schema.IMAGES], res.resize), alpha=_resize_lazy(ds[schema.ALPHA], res.resize)
        )
    return ds


def _resize_lazy(arr: xr.DataArray, factor: int) -> xr.DataArray:
    import dask.array as da

    data = arr.data
    h, w = data.shape[2] // factor, data.shape[3] // factor
    chunks = (data.chunks[0], data.chunks[1], (h,), (w,)) + data.chunks[4:]
    data = data.rechunk({2: -1, 3: -1})
    small = da.map_blocks(area_average, data, factor, dtype=data.dtype, chunks=chunks)
    return xr.DataArray(small, dims=arr.dims, coords=arr.coords, attrs={**arr.attrs, "level": factor})


# ---------------------------------------------------------------------------------------------
# Selection helpers
# ---------------------------------------------------------------------------------------------


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
        timesteps = check_timesteps(timesteps)
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


__all__ = [  # complete_serials, level_of, check_timestep, ...: re-exported from the resolver, where they are defined
    "IncompleteStoreWarning",
    "StoreLike",
    "StoreReadError",
    "as_zarr_store",
    "check_every_nth",
    "check_timestep",
    "complete_serials",
    "level_of",
    "list_participants",
    "list_sequences",
    "open_calibration",
    "open_root",
    "open_sequence",
    "open_store",
    "pointcloud",
    "select_frames",
]

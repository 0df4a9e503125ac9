"""Drop-in replacements of the official toolkit's data managers, backed by a nersemble-zarr store.

Code written for ``nersemble_benchmark.data.benchmark_data`` switches by changing one import::

    from nersemble_zarr import NVSDataManager        # was: from nersemble_benchmark... import NVSDataManager
    dm = NVSDataManager("nersemble.zarr", 388)       # was: NVSDataManager(benchmark_folder, 388)
    image = dm.load_image("GLASSES", "222200037", 42)   # (1604, 1100, 3) float64 in [0, 1]

Same method names, argument order and return types/dtypes as the official loader (``image / 255.``
floats, ``(H, W, 1) uint8`` alpha, float32 point clouds with colours in [0, 1]). One frame is one
stored chunk read with zarr directly (no re-decoding of an mp4 from its start), so random access costs
the same at every timestep. Extras over the official API are keyword-only: ``level=``/``scale=``
pick a stored downscaled level (``resize=True`` area-averages on the fly when it is not stored).

Cameras, levels, completeness and calibration come from the one sequence resolver
(:mod:`nersemble_zarr.read.resolver`), as for ``open_sequence`` and ``FrameDataset``: cameras that are not
completely converted are left out of ``list_serials`` with an ``IncompleteStoreWarning``, and loading one
raises :class:`DataManagerError` naming it.

Calibration: ``world_2_cam[serial]`` is a float32 ``Pose`` (``WORLD_2_CAM``, OpenCV) and ``intrinsics[serial]``
a float32 ``Intrinsics``, as the official dreifus objects: real dreifus objects when dreifus is installed, else
:mod:`nersemble_zarr.read.camera`'s compatible classes (``invert()``, ``change_pose_type()``,
``get_look_direction()``, ``.fx``, ``rescale()``, ...). The ``get_*_path`` methods return where the raw file
was when the store was converted (the root attrs' ``source_path``), checked as described there.

Differences, by design: ``load_all_images`` with ``scale`` uses the stored area-averaged level rather than
the official on-the-fly resize; the ``get_*_path`` methods raise :class:`DataManagerError` when the store
records no raw folder, or when the store holds the asset but its raw file is gone (``check=False``: no check).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import zarr

from ..core import schema
from ..core import benchmark as bm
from ..core.benchmark import MONO, NVS, check_participant, participant_dir
from ..imaging import area_average
from ..storage.integrity import GuardedArray, read
from .camera import make_intrinsics, make_pose
from .resolver import (
    ResolvedSequence,
    StoreLike,
    StoreReadError,
    check_every_nth,
    check_timestep,
    describe_store,
    has_group,
    level_of,
    open_root,
    read_calibration,
    read_timesteps,
    resolve_sequence,
    sequences_in,
)


class DataManagerError(StoreReadError, KeyError):
    """A sequence, camera, timestep or asset that the store does not hold (message names it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class _StoreDataManager:
    """Shared implementation; use :class:`NVSDataManager` or :class:`MonoFlameAvatarDataManager`.

    A thin facade over :func:`~nersemble_zarr.read.resolver.resolve_sequence`: each (sequence, level,
    resize) is resolved once (every completely converted camera; see the resolver for the rule) and kept."""

    _benchmark: str = ""

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        self._store_spec = store
        self._storage_options = storage_options
        self._participant_id = check_participant(self._benchmark, participant_id)
        self._root_handle: zarr.Group | None = None
        self._root_pid: int | None = None
        self._resolved: dict[tuple[str, int, bool], ResolvedSequence] = {}
        self._arrays: dict[tuple[str, int, bool, str], GuardedArray] = {}

    def __repr__(self) -> str:
        store = os.fspath(self._store_spec) if isinstance(self._store_spec, (str, os.PathLike)) else self._store_spec
        return f"{type(self).__name__}({store!r}, {self._participant_id})"

    # Handles are opened on first use and reopened in a forked child process.
    def _root(self) -> zarr.Group:
        if self._root_handle is None or self._root_pid != os.getpid():
            self._root_handle = open_root(self._store_spec, storage_options=self._storage_options)
            self._root_pid = os.getpid()
            self._resolved.clear()
            self._arrays.clear()
        return self._root_handle

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_root_handle=None, _root_pid=None, _resolved={}, _arrays={})
        return state

    def _where(self, sequence: str) -> str:
        return f"{self._benchmark} participant {participant_dir(self._participant_id)} sequence {sequence!r}"

    def _resolve(self, sequence: str, level: int = 1, resize: bool = False) -> ResolvedSequence:
        """The sequence resolved at ``level`` (cached; the resolver's rules, :class:`DataManagerError` errors)."""
        root = self._root()
        key = (sequence, level, bool(resize) and level != 1)
        res = self._resolved.get(key)
        if res is None:
            res = resolve_sequence(root, self._benchmark, self._participant_id, sequence, level=level,
                                   resize=resize, error=DataManagerError, stacklevel=4)
            self._resolved[key] = res
        return res

    def _video(self, sequence: str, level: int, resize: bool) -> ResolvedSequence:
        res = self._resolve(sequence, level, resize)
        if not res.has_video:
            raise DataManagerError(f"{self._where(sequence)} has no video in the store (tracking only)")
        return res

    def _frames(self, res: ResolvedSequence, name: str) -> GuardedArray:
        """``images``/``alpha`` of a resolved sequence, through the integrity guard (opened once per process)."""
        key = (res.sequence, res.level, res.resize > 1, name)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = res.frames(self._root(), name)
        return array

    # ------------------------------------------------------------------------------------------
    # Official API
    # ------------------------------------------------------------------------------------------

    def load_camera_calibration(self) -> Any:
        """``CameraParams`` for all 16 cameras, as the official loader builds it: ``world_2_cam[serial]`` a
        ``(4, 4) float32`` ``Pose`` (``pose_type`` WORLD_2_CAM, ``camera_coordinate_convention`` OPEN_CV, metres)
        and ``intrinsics[serial]`` a ``(3, 3) float32`` ``Intrinsics`` (full-resolution pixels); the stored
        float64 values rounded to float32 exactly as dreifus rounds the JSON's. dreifus objects when dreifus is
        installed, :mod:`nersemble_zarr.read.camera`'s otherwise (same methods and semantics). Fresh objects on
        each call (dreifus's ``rescale``/``change_pose_type`` work in place)."""
        from ..raw.calibration import CameraParams

        calib = read_calibration(self._root(), self._benchmark, self._participant_id, error=DataManagerError)
        return CameraParams(
            world_2_cam={s: make_pose(calib.world_2_cam[i]) for i, s in enumerate(calib.serials)},
            intrinsics={s: make_intrinsics(calib.intrinsics[i]) for i, s in enumerate(calib.serials)},
        )

    def list_sequences(self) -> list[str]:
        """Sequences of this participant in the store (video and tracking-only alike), official order."""
        return sequences_in(self._root(), self._benchmark, self._participant_id)

    def list_serials(self, sequence_name: str) -> list[str]:
        """Serials of the cameras with (completely converted) video in a sequence (``[]`` for tracking only)."""
        return list(self._resolve(sequence_name).cameras)

    def get_n_timesteps(self, sequence_name: str) -> int:
        """Number of video frames (for a tracking-only sequence: of tracked frames)."""
        return len(self.list_timesteps(sequence_name))

    def list_timesteps(self, sequence_name: str) -> list[int]:
        """Timesteps (video frame indices) of a sequence; tracking-only sequences: the tracked frames."""
        res = self._resolve(sequence_name)
        if res.has_video:
            return list(res.timesteps)
        for version in (schema.CURRENT_TRACKING_VERSION, 1):
            name = schema.tracking_group_name(version)
            if name in res.groups:
                group = res.open_group(self._root(), name, f"FLAME tracking v{version}", required=True, error=DataManagerError)
                return [int(t) for t in read_timesteps(group)]
        return []

    def has_sequence(self, sequence_name: str) -> bool:
        """True if the store holds the sequence (video or tracking)."""
        return sequence_name in self.list_sequences()

    def has_video(self, sequence_name: str, serial: str) -> bool:
        """True if the store holds completely converted frames of camera ``serial`` in the sequence."""
        if not self.has_sequence(sequence_name):
            return False
        try:
            return str(serial) in self.list_serials(sequence_name)
        except DataManagerError:  # no camera of the sequence is completely converted
            return False

    def load_image(
        self, sequence_name: str, serial: str, timestep: int, as_uint8: bool = False, *,
        level: int | None = None, scale: float | None = None, resize: bool = False,
    ) -> np.ndarray:
        """One RGB frame: ``(H, W, 3) float64`` in [0, 1] (``uint8 / 255.``), or ``uint8`` with ``as_uint8``.

        ``timestep`` is an integer >= 0 (``ValueError`` naming it otherwise)."""
        image = self._frame(schema.IMAGES, sequence_name, serial, timestep, level, scale, resize)
        return image if as_uint8 else image / 255.

    def load_alpha_map(
        self, sequence_name: str, serial: str, timestep: int, *,
        level: int | None = None, scale: float | None = None, resize: bool = False,
    ) -> np.ndarray:
        """One alpha map: ``(H, W, 1) uint8``, 0 = background, 255 = foreground."""
        return self._frame(schema.ALPHA, sequence_name, serial, timestep, level, scale, resize)[..., None]

    def _frame(
        self, array: str, sequence_name: str, serial: str, timestep: int, level: int | None, scale: float | None, resize: bool,
    ) -> np.ndarray:
        """One stored uint8 frame of ``array`` (``images``/``alpha``) at the chosen level (area-averaged on read if asked)."""
        timestep = check_timestep(timestep)
        res = self._video(sequence_name, level_of(level, scale), resize)
        c = res.camera_position(serial, error=DataManagerError)
        t = res.timestep_position(timestep, error=DataManagerError, serial=str(serial))
        frame = self._frames(res, array)[c, t]
        return area_average(frame, res.resize, axes=(0, 1)) if res.resize > 1 else frame

    def _all_frames(
        self, array: str, sequence_name: str, serial: str, every_nth_frame: int | None, level: int | None,
        scale: float | None, resize: bool,
    ) -> np.ndarray:
        """Every ``every_nth_frame``-th stored frame of one camera: ``(T', H, W[, 3]) uint8``."""
        step = check_every_nth(every_nth_frame) or 1
        res = self._video(sequence_name, level_of(level, scale), resize)
        c = res.camera_position(serial, error=DataManagerError)
        block = self._frames(res, array)[c, ::step]
        return area_average(block, res.resize, axes=(1, 2)) if res.resize > 1 else block

    def load_all_images(
        self, sequence_name: str, serial: str, as_uint8: bool = False, every_nth_frame: int | None = None,
        scale: float | None = None, *, level: int | None = None, resize: bool = False,
    ) -> list[np.ndarray]:
        """All frames of one camera (every ``every_nth_frame``-th from the first) as a list of ``(H, W, 3)``
        float64 in [0, 1] (uint8 with ``as_uint8``); ``scale=0.5`` reads the stored ½ level."""
        block = self._all_frames(schema.IMAGES, sequence_name, serial, every_nth_frame, level, scale, resize)
        if not as_uint8:
            return [image / 255. for image in block]
        return list(block)

    # ------------------------------------------------------------------------------------------
    # Paths (official API): where the raw files were when the store was converted
    # ------------------------------------------------------------------------------------------

    def _raw_path(
        self, relative: str, what: str, held: Callable[[], bool], loader: str, check: bool, group: str | None = None,
    ) -> str:
        """``<raw folder>/<benchmark>/<relative>`` with the raw folder recorded by convert (root attrs
        ``source_path``). ``check``: if the store holds the asset (``held()``) its raw file must still be there
        (and, for a group recording ``source_bytes``, have that size); an asset the store does not hold gets
        the path where the official toolkit would look, as it does (nothing may be there)."""
        info = self._root().attrs.get(schema.ROOT_ATTR) or {}
        raw = info.get("source_path") if isinstance(info, dict) else None
        if not raw:
            raise DataManagerError(
                f"{describe_store(self._store_spec)}: the store records no raw folder (converted by a nersemble-zarr "
                f"before 'source_path' was recorded), so there is no source path for {what}; the store's data loads "
                f"with {loader} (convert into a new store to record the folder)"
            )
        path = f"{raw}/{self._benchmark}/{relative}"
        if check and held():
            if not os.path.exists(path):
                raise DataManagerError(
                    f"{what}: the store was converted from {path}, which no longer exists (raw folder moved or "
                    f"deleted); the store holds the data: use {loader} (or check=False for the path alone)"
                )
            expected = self._root()[group].attrs.get("source_bytes") if group is not None else None
            if expected is not None and os.path.getsize(path) != int(expected):
                raise DataManagerError(
                    f"{what}: {path} has changed since the store was converted from it ({os.path.getsize(path)} "
                    f"bytes, converted from {int(expected)} bytes); the store holds the converted data: use {loader}"
                )
        return path

    def _holds(self, probe: Callable[[], Any]) -> bool:
        try:
            probe()
        except DataManagerError:
            return False
        return True

    def get_camera_calibration_path(self, *, check: bool = True) -> str:
        """``<raw>/<benchmark>/<pid>/calibration/camera_params.json`` the calibration was converted from."""
        group = schema.calibration_group(self._benchmark, self._participant_id)
        return self._raw_path(
            bm.calibration_path(self._participant_id), f"{self._benchmark} participant "
            f"{participant_dir(self._participant_id)} calibration", lambda: has_group(self._root(), group),
            "load_camera_calibration()", check, group,
        )

    def get_images_path(self, sequence_name: str, serial: str, *, check: bool = True) -> str:
        """``<raw>/<benchmark>/<pid>/sequences/<seq>/images/cam_<serial>.mp4`` (the RGB video converted)."""
        return self._raw_path(
            bm.video_path(self._participant_id, sequence_name, serial, "images"),
            f"{self._where(sequence_name)} camera {serial} images", lambda: self.has_video(sequence_name, serial),
            "load_image()", check,
        )

    def get_alpha_maps_path(self, sequence_name: str, serial: str, *, check: bool = True) -> str:
        """``<raw>/<benchmark>/<pid>/sequences/<seq>/alpha_maps/cam_<serial>.mp4`` (the alpha video converted)."""
        return self._raw_path(
            bm.video_path(self._participant_id, sequence_name, serial, "alpha_maps"),
            f"{self._where(sequence_name)} camera {serial} alpha maps", lambda: self.has_video(sequence_name, serial),
            "load_alpha_map()", check,
        )

    # Extras beyond the official API ----------------------------------------------------------

    def load_all_alpha_maps(
        self, sequence_name: str, serial: str, every_nth_frame: int | None = None, *,
        level: int | None = None, scale: float | None = None, resize: bool = False,
    ) -> np.ndarray:
        """All alpha maps of one camera: ``(T', H, W, 1) uint8``."""
        return self._all_frames(schema.ALPHA, sequence_name, serial, every_nth_frame, level, scale, resize)[..., None]


_CLOUD_POOL: tuple[int, Any] | None = None


def _cloud_pool() -> Any:
    """Three threads reading a cloud's arrays together; a new pool in a forked child (DataLoader workers)."""
    global _CLOUD_POOL
    if _CLOUD_POOL is None or _CLOUD_POOL[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _CLOUD_POOL = (os.getpid(), ThreadPoolExecutor(3, thread_name_prefix="nersemble-cloud"))
    return _CLOUD_POOL[1]


class NVSDataManager(_StoreDataManager):
    """The multi-view NVS benchmark of one participant, read from a store (official ``NVSDataManager`` API)."""

    _benchmark = NVS

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        super().__init__(store, participant_id, storage_options=storage_options)

    def load_pointcloud(self, sequence_name: str, timestep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(points (N, 3) float32 metres, colors (N, 3) float32 in [0, 1], normals (N, 3) float32)``
        as open3d returns them (colours = uint8 / 255; no normals stored → ``(0, 3)``)."""
        timestep = check_timestep(timestep)
        res = self._resolve(sequence_name)
        rows = res.cloud_rows(timestep, error=DataManagerError)
        key = (res.sequence, 1, False, schema.POINTCLOUDS)
        arrays = self._arrays.get(key)
        if arrays is None:  # opened once per process, as the frames (benchmarks/pointclouds.py: a large share of a read)
            pc = res.open_group(self._root(), schema.POINTCLOUDS, "point clouds", required=True, error=DataManagerError)
            names = [n for n in (schema.POINTS, schema.COLORS, schema.NORMALS) if n in pc.array_keys()]
            arrays = self._arrays[key] = {n: GuardedArray(pc[n]) for n in names}
        # the arrays at once (each read waits on zarr's I/O loop; measured 2-4x faster on a busy machine)
        got = dict(zip(arrays, _cloud_pool().map(lambda a: a[rows], arrays.values())))
        points = np.asarray(got[schema.POINTS], dtype=np.float32)
        # as open3d hands them back (uint8 / 255 in float64, then float32): float32 division gives the same bits
        # for all 256 values (both correctly rounded) and is faster than the float64 round trip or a lookup table
        colors = np.divide(got[schema.COLORS], np.float32(255.), dtype=np.float32)
        if schema.NORMALS in got:
            normals = np.asarray(got[schema.NORMALS], dtype=np.float32)
        else:
            normals = np.zeros((0, 3), dtype=np.float32)
        return points, colors, normals

    def get_pointcloud_path(self, sequence_name: str, timestep: int, *, check: bool = True) -> str:
        """``<raw>/nvs/<pid>/sequences/<seq>/pointclouds/frame_<t:05d>.pcd``. A timestep the store holds no cloud
        of gets the path where the official toolkit looks (usually nothing there: downloads hold timestep 0)."""
        timestep = check_timestep(timestep)
        return self._raw_path(
            bm.pointcloud_path(self._participant_id, sequence_name, timestep),
            f"{self._where(sequence_name)} point cloud at timestep {timestep}",
            lambda: self._holds(lambda: self._resolve(sequence_name).cloud_rows(timestep, error=DataManagerError)),
            "load_pointcloud()", check,
        )


class MonoFlameAvatarDataManager(_StoreDataManager):
    """The monocular FLAME avatar benchmark of one participant (official ``MonoFlameAvatarDataManager`` API)."""

    _benchmark = MONO

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        super().__init__(store, participant_id, storage_options=storage_options)

    def load_flame_tracking(self, sequence_name: str, version: int = schema.CURRENT_TRACKING_VERSION) -> Any:
        """FLAME 2023 tracking as :class:`nersemble_zarr.raw.tracking.FlameTracking` with the official
        shapes: ``shape (1, 300)``, ``expression (T, 100)``, ``rotation``/``translation``/``jaw``/``neck
        (T, 3)``, ``rotation_matrices (T, 3, 3)``, ``eyes (T, 6)``, ``frames (T,)``, ``scale (1, 1)``; float32."""
        from ..raw.tracking import FlameTracking

        name = schema.tracking_group_name(version)
        group = self._resolve(sequence_name).open_group(
            self._root(), name, f"FLAME tracking v{version}", required=True, error=DataManagerError
        )
        values = {key: read(group[key]) for key in schema.TRACKING_VARIABLES}
        values["shape"] = values["shape"].reshape(1, -1)
        values["scale"] = np.asarray(values["scale"]).reshape(1, 1)
        return FlameTracking(frames=read_timesteps(group), **values)

    def get_flame_tracking_path(self, sequence_name: str, version: int = schema.CURRENT_TRACKING_VERSION, *, check: bool = True) -> str:
        """``<raw>/mono_flame_avatar/<pid>/sequences/<seq>/tracking/flame2023_tracking[_v2].npz`` (``version`` 1 or 2)."""
        if version not in bm.TRACKING_FILES:
            raise ValueError(f"tracking version must be one of {sorted(bm.TRACKING_FILES)}, not {version!r}")
        name = schema.tracking_group_name(version)

        def held() -> bool:
            return self._holds(lambda: self._resolve(sequence_name).group(name, "FLAME tracking", required=True, error=DataManagerError))

        group = schema.tracking_group(self._benchmark, self._participant_id, sequence_name, version)
        return self._raw_path(
            bm.tracking_path(self._participant_id, sequence_name, version),
            f"{self._where(sequence_name)} FLAME tracking v{version}", held, "load_flame_tracking()", check, group,
        )


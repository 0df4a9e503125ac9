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

Differences, by design: ``calibration`` values are plain ``(4, 4)``/``(3, 3)`` float64 arrays (the
official dreifus ``Pose``/``Intrinsics`` subclass ndarray with the same values); ``load_all_images``
with ``scale`` uses the stored area-averaged level rather than the official on-the-fly resize.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ..core import schema
from ..core.benchmark import MONO, NVS, check_participant, participant_dir
from ..imaging import area_average
from ..core.errors import NersembleZarrError
from ..storage.integrity import check_arrays, guarded, open_root, read
from .store import StoreLike, StoreReadError, _sequences_in, as_zarr_store, check_every_nth, check_timestep, complete_serials, level_of


class DataManagerError(NersembleZarrError, KeyError):
    """A sequence, camera, timestep or asset that the store does not hold (message names it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class _Frames:
    """Open frame arrays of one sequence at one level, with serial/timestep → index lookups."""

    images: Any
    alpha: Any
    camera_index: dict[str, int]
    timestep_index: dict[int, int]
    timesteps: list[int]
    resize: int = 1  # >1: area-average full-resolution frames by this factor on read


class _StoreDataManager:
    """Shared implementation; use :class:`NVSDataManager` or :class:`MonoFlameAvatarDataManager`."""

    _benchmark: str = ""

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        self._store_spec = store
        self._storage_options = storage_options
        self._participant_id = check_participant(self._benchmark, participant_id)
        self._root_handle: zarr.Group | None = None
        self._root_pid: int | None = None
        self._frames: dict[tuple[str, int, bool], _Frames] = {}

    def __repr__(self) -> str:
        store = os.fspath(self._store_spec) if isinstance(self._store_spec, (str, os.PathLike)) else self._store_spec
        return f"{type(self).__name__}({store!r}, {self._participant_id})"

    # Handles are opened on first use and reopened in a forked child process.
    def _root(self) -> zarr.Group:
        if self._root_handle is None or self._root_pid != os.getpid():
            zstore = as_zarr_store(self._store_spec, storage_options=self._storage_options)
            root = open_root(zstore)  # refuses a corrupt root or one without consolidated metadata
            if root is None:
                raise StoreReadError(f"{zstore}: not a Zarr v3 store (no zarr.json at its root)")
            self._root_handle = root
            self._root_pid = os.getpid()
            self._frames.clear()
        return self._root_handle

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_root_handle=None, _root_pid=None, _frames={})
        return state

    def _where(self, sequence: str) -> str:
        return f"{self._benchmark} participant {participant_dir(self._participant_id)} sequence {sequence!r}"

    def _sequence_group(self, sequence: str) -> zarr.Group:
        path = schema.sequence_group(self._benchmark, self._participant_id, sequence)
        try:
            node = self._root()[path]
        except KeyError:
            raise DataManagerError(
                f"{self._where(sequence)} is not in the store; present: {', '.join(self.list_sequences()) or 'none'}"
            ) from None
        return node

    def _open_frames(self, sequence: str, level: int, resize: bool) -> _Frames:
        key = (sequence, level, resize)
        self._root()
        cached = self._frames.get(key)
        if cached is not None:
            return cached
        seq = self._sequence_group(sequence)
        if schema.IMAGES not in seq.array_keys():
            raise DataManagerError(f"{self._where(sequence)} has no video in the store (tracking only)")
        check_arrays(seq)
        stored = [str(c) for c in read(seq[schema.CAMERA])]
        cameras = complete_serials(seq, stored)  # cameras not completely converted are not offered
        timesteps = [int(t) for t in read(seq[schema.TIMESTEP])]
        source, factor_on_read = seq, 1
        if level != 1:
            name = schema.level_group_name(level)
            if name in seq.group_keys() and complete_serials(seq[name], cameras) == cameras:
                source = seq[name]
                check_arrays(source)
            elif resize:
                factor_on_read = level
            else:
                raise DataManagerError(
                    f"{self._where(sequence)}: level {level} (scale 1/{level}) is not stored; run "
                    f"'nersemble-zarr downscale STORE --factor {level}' or pass resize=True"
                )
        labels = {schema.CAMERA: stored, schema.TIMESTEP: timesteps}
        frames = _Frames(  # read through the integrity guard: a missing/corrupt object raises naming it
            images=guarded(source[schema.IMAGES], labels),
            alpha=guarded(source[schema.ALPHA], labels),
            camera_index={c: stored.index(c) for c in cameras},
            timestep_index={t: i for i, t in enumerate(timesteps)},
            timesteps=timesteps,
            resize=factor_on_read,
        )
        self._frames[key] = frames
        return frames

    def _complete_group(self, seq: zarr.Group, name: str, sequence: str, what: str) -> zarr.Group:
        """``seq[name]``, refusing a group that is absent or not marked complete (a convert did not finish it)."""
        if name not in seq.group_keys():
            raise DataManagerError(f"{self._where(sequence)} has no {what} in the store")
        group = seq[name]
        if not group.attrs.get(schema.COMPLETE_ATTR, False):
            raise DataManagerError(
                f"{self._where(sequence)}: {what} ({name}/) are not completely converted; rerun 'nersemble-zarr convert'"
            )
        check_arrays(group)
        return group

    def _locate(self, frames: _Frames, sequence: str, serial: str, timestep: int) -> tuple[int, int]:
        c = frames.camera_index.get(str(serial))
        if c is None:
            raise DataManagerError(
                f"{self._where(sequence)} has no video of camera {serial}: cameras with video are "
                f"{', '.join(frames.camera_index)}"
            )
        t = frames.timestep_index.get(int(timestep))
        if t is None:
            raise DataManagerError(
                f"{self._where(sequence)} camera {serial} has no timestep {timestep}: timesteps are "
                f"{frames.timesteps[0]}..{frames.timesteps[-1]} ({len(frames.timesteps)} frames)"
            )
        return c, t

    # ------------------------------------------------------------------------------------------
    # Official API
    # ------------------------------------------------------------------------------------------

    def load_camera_calibration(self) -> Any:
        """``CameraParams`` with ``world_2_cam[serial]`` ``(4, 4) float64`` (OpenCV, world → camera, metres)
        and ``intrinsics[serial]`` ``(3, 3) float64`` (full-resolution pixels) for all 16 cameras."""
        from ..raw.calibration import CameraParams

        path = schema.calibration_group(self._benchmark, self._participant_id)
        try:
            calib = self._root()[path]
        except KeyError:
            raise DataManagerError(
                f"{self._benchmark} participant {participant_dir(self._participant_id)} has no calibration "
                f"in the store (expected group {path}/)"
            ) from None
        check_arrays(calib)
        serials = [str(s) for s in read(calib[schema.SERIAL])]
        w2c, k = read(calib[schema.WORLD_2_CAM]), read(calib[schema.INTRINSICS])
        return CameraParams(
            world_2_cam={s: w2c[i] for i, s in enumerate(serials)},
            intrinsics={s: k[i] for i, s in enumerate(serials)},
        )

    def list_sequences(self) -> list[str]:
        """Sequences of this participant in the store (video and tracking-only alike), official order."""
        return _sequences_in(self._root(), self._benchmark, self._participant_id)

    def list_serials(self, sequence_name: str) -> list[str]:
        """Serials of the cameras with (completely converted) video in a sequence (``[]`` for tracking only)."""
        seq = self._sequence_group(sequence_name)
        if schema.CAMERA not in seq.array_keys():
            return []
        return complete_serials(seq, [str(c) for c in read(seq[schema.CAMERA])])

    def get_n_timesteps(self, sequence_name: str) -> int:
        """Number of video frames (for a tracking-only sequence: of tracked frames)."""
        return len(self.list_timesteps(sequence_name))

    def list_timesteps(self, sequence_name: str) -> list[int]:
        """Timesteps (video frame indices) of a sequence; tracking-only sequences: the tracked frames."""
        seq = self._sequence_group(sequence_name)
        if schema.TIMESTEP in seq.array_keys():
            return [int(t) for t in read(seq[schema.TIMESTEP])]
        for version in (schema.CURRENT_TRACKING_VERSION, 1):
            name = schema.tracking_group_name(version)
            if name in seq.group_keys():
                return [int(t) for t in read(seq[name][schema.FRAME])]
        return []

    def has_sequence(self, sequence_name: str) -> bool:
        """True if the store holds the sequence (video or tracking)."""
        return sequence_name in self.list_sequences()

    def has_video(self, sequence_name: str, serial: str) -> bool:
        """True if the store holds frames of camera ``serial`` in the sequence."""
        return self.has_sequence(sequence_name) and str(serial) in self.list_serials(sequence_name)

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
        frames = self._open_frames(sequence_name, level_of(level, scale), resize)
        c, t = self._locate(frames, sequence_name, serial, timestep)
        frame = (frames.images if array == schema.IMAGES else frames.alpha)[c, t]
        return area_average(frame, frames.resize, axes=(0, 1)) if frames.resize > 1 else frame

    def load_all_images(
        self, sequence_name: str, serial: str, as_uint8: bool = False, every_nth_frame: int | None = None,
        scale: float | None = None, *, level: int | None = None, resize: bool = False,
    ) -> list[np.ndarray]:
        """All frames of one camera (every ``every_nth_frame``-th from the first) as a list of ``(H, W, 3)``
        float64 in [0, 1] (uint8 with ``as_uint8``); ``scale=0.5`` reads the stored ½ level."""
        frames = self._open_frames(sequence_name, level_of(level, scale), resize)
        c, _ = self._locate(frames, sequence_name, serial, frames.timesteps[0])
        step = check_every_nth(every_nth_frame) or 1
        block = frames.images[c, ::step]
        if frames.resize > 1:
            block = area_average(block, frames.resize, axes=(1, 2))
        if not as_uint8:
            return [image / 255. for image in block]
        return list(block)

    # Extras beyond the official API ----------------------------------------------------------

    def load_all_alpha_maps(
        self, sequence_name: str, serial: str, every_nth_frame: int | None = None, *,
        level: int | None = None, scale: float | None = None, resize: bool = False,
    ) -> np.ndarray:
        """All alpha maps of one camera: ``(T', H, W, 1) uint8``."""
        step = check_every_nth(every_nth_frame) or 1
        frames = self._open_frames(sequence_name, level_of(level, scale), resize)
        c, _ = self._locate(frames, sequence_name, serial, frames.timesteps[0])
        block = frames.alpha[c, ::step]
        if frames.resize > 1:
            block = area_average(block, frames.resize, axes=(1, 2))
        return block[..., None]


class NVSDataManager(_StoreDataManager):
    """The multi-view NVS benchmark of one participant, read from a store (official ``NVSDataManager`` API)."""

    _benchmark = NVS

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        super().__init__(store, participant_id, storage_options=storage_options)

    def load_pointcloud(self, sequence_name: str, timestep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(points (N, 3) float32 metres, colors (N, 3) float32 in [0, 1], normals (N, 3) float32)``
        as open3d returns them (colours = uint8 / 255; no normals stored → ``(0, 3)``)."""
        timestep = check_timestep(timestep)
        seq = self._sequence_group(sequence_name)
        pc = self._complete_group(seq, schema.POINTCLOUDS, sequence_name, "point clouds")
        stamps = read(pc[schema.CLOUD_TIMESTEP])
        hits = np.flatnonzero(stamps == int(timestep))
        if hits.size == 0:
            raise DataManagerError(
                f"{self._where(sequence_name)} has no point cloud at timestep {timestep}: stored timesteps "
                f"{stamps.tolist()}"
            )
        offsets = read(pc[schema.OFFSETS], slice(int(hits[0]), int(hits[0]) + 2))
        rows = slice(int(offsets[0]), int(offsets[1]))
        points = np.asarray(read(pc[schema.POINTS], rows), dtype=np.float32)
        colors = (read(pc[schema.COLORS], rows).astype(np.float64) / 255.).astype(np.float32)
        if schema.NORMALS in pc.array_keys():
            normals = np.asarray(read(pc[schema.NORMALS], rows), dtype=np.float32)
        else:
            normals = np.zeros((0, 3), dtype=np.float32)
        return points, colors, normals


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

        seq = self._sequence_group(sequence_name)
        name = schema.tracking_group_name(version)
        group = self._complete_group(seq, name, sequence_name, f"FLAME tracking v{version}")
        values = {key: read(group[key]) for key in schema.TRACKING_VARIABLES}
        values["shape"] = values["shape"].reshape(1, -1)
        values["scale"] = np.asarray(values["scale"]).reshape(1, 1)
        return FlameTracking(frames=read(group[schema.FRAME]), **values)


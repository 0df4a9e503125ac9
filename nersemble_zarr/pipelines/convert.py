"""Raw benchmark folder → sharded Zarr v3 store, as independent tasks on threads or a dask cluster.

Planning reads only (:func:`plan_conversion` → :class:`ConvertPlan`: the units, the preparation writes, the
complete and refused units, an estimated size; ``convert --dry-run`` prints it); :func:`execute_plan` writes.
The driver (this process) does the plan's preparation (creates every shared array), hands out *units* —
one per camera video, per sequence's point clouds, per tracking file, per calibration file — and
is the only process that writes metadata afterwards: when a unit reports success it marks it
complete in attrs (``complete_cameras`` of ``images``/``alpha``, ``complete`` of a group). Tasks
write only whole shards of their own camera, or the arrays of the subgroup they own, so no two
tasks ever write the same object; markers come last, so a process killed at any point leaves
nothing that looks complete and a rerun redoes exactly the unmarked units.

A video unit decodes its mp4 once, sequentially (never seeking), with ffmpeg running ahead in a
prefetch thread while full shards (one camera × S timesteps) are compressed and written by a
writer thread (:mod:`nersemble_zarr.storage.shards`: the array's own codecs, bytes identical to zarr's write).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from .. import __version__
from ..core import benchmark as bm
from ..core import schema
from ..core.errors import NersembleZarrError, SelectionError
from ..imaging import area_average, level_shape, scale_intrinsics
from ..jobs.prefetch import Prefetch
from ..jobs.runner import JobOutcome, default_threads, run_jobs
from ..storage.location import StoreLocation
from ..storage.lock import StoreLock
from ..storage.markers import (
    INCOMPLETE, complete_cameras, consolidate, has_complete_cameras, is_complete, mark_cameras_complete, mark_complete,
)
from ..storage.shards import supports_fast_shards, write_shard

#: Test hook: the driver SIGKILLs itself after marking this many units complete (resume tests).
KILL_AFTER_UNITS_ENV = "NERSEMBLE_ZARR_TEST_KILL_AFTER_UNITS"

UnitKind = Literal["video", "pointclouds", "tracking", "calibration"]


class ConvertError(NersembleZarrError):
    """The conversion cannot start (missing raw folder, incompatible store). A selection that names
    something the benchmark or the raw folder does not have is a :class:`~nersemble_zarr.core.errors.SelectionError`."""


class InsufficientSpaceError(ConvertError):
    """The estimated store growth exceeds the free space on the target (``convert --force`` starts anyway)."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of work and the object it owns in the store.

    ``kind="video"``: camera ``serial``'s ``asset`` (``"images"``/``"alpha_maps"``) mp4 → the
    camera's shards of ``images``/``alpha``. ``"pointclouds"``: every ``.pcd`` of a sequence → its
    ``pointclouds/`` group. ``"tracking"``: one npz → ``tracking_v<version>/``. ``"calibration"``:
    ``camera_params.json`` → ``calibration/``.
    """

    kind: UnitKind
    benchmark: str
    participant: int
    sequence: str | None = None
    serial: str | None = None
    asset: str | None = None
    version: int | None = None

    @property
    def name(self) -> str:
        """Human label, e.g. ``nvs/388/GLASSES images cam_222200036``."""
        base = f"{self.benchmark}/{bm.participant_dir(self.participant)}"
        if self.kind == "calibration":
            return f"{base} calibration"
        if self.kind == "svfr":
            return f"{base} images"
        seq = f"{base}/{self.sequence}"
        if self.kind == "video":
            return f"{seq} {self.asset} cam_{self.serial}"
        if self.kind == "tracking":
            return f"{seq} tracking v{self.version}"
        return f"{seq} pointclouds"


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to run one unit (picklable; the worker opens its own store).

    ``source``: absolute raw file (or the point-cloud folder); ``target``: array or group path in
    the store; for video: ``camera_index`` into the array's camera axis, ``n_timesteps`` (from
    metadata), ``shard_timesteps``, the sequence's frame size ``height`` × ``width`` and ``reference``,
    the video that size was taken from (named when a video of another size is refused).
    """

    unit: Unit
    store: StoreLocation
    source: str
    target: str
    source_rel: str
    camera_index: int = 0
    n_timesteps: int = 0
    shard_timesteps: int = schema.DEFAULT_SHARD_TIMESTEPS
    height: int = 0
    width: int = 0
    reference: str = ""
    #: ``((factor, array path), ...)``: downscaled levels this video unit also writes, area-averaged from the
    #: decoded frames (``convert --levels``); ``write_full=False``: the full-resolution ``target`` is not
    #: written (``--no-full``, or its camera is already complete there).
    levels: tuple[tuple[int, str], ...] = ()
    write_full: bool = True


@dataclass
class UnitResult:
    """Outcome of a unit: ``status`` ``"done"`` | ``"skipped"`` (already complete) | ``"failed"`` |
    ``"absent"`` (an optional asset — point clouds, one tracking version — the raw folder does not hold)."""

    unit: Unit
    status: Literal["done", "skipped", "failed", "absent"]
    message: str = ""
    frames: int = 0
    seconds: float = 0.0


class _OutcomesByStatus:
    """``skipped``/``absent`` views of ``results`` (a :class:`ConvertReport`'s or a :class:`ConvertPlan`'s)."""

    results: list[UnitResult]

    def _with(self, status: str) -> list[UnitResult]:
        return [r for r in self.results if r.status == status]

    @property
    def skipped(self) -> list[UnitResult]:
        return self._with("skipped")

    @property
    def absent(self) -> list[UnitResult]:
        return self._with("absent")


@dataclass
class ConvertReport(_OutcomesByStatus):
    """All unit outcomes of one convert run; ``ok`` when none failed."""

    store: str
    results: list[UnitResult] = field(default_factory=list)
    seconds: float = 0.0
    #: ``"nvs/422"``, ``"mono_flame_avatar/393/FREE"``: listed in metadata.json, absent from the raw folder
    #: (not downloaded) and not explicitly selected, so not converted.
    not_in_raw: list[str] = field(default_factory=list)

    @property
    def done(self) -> list[UnitResult]:
        return self._with("done")

    @property
    def failed(self) -> list[UnitResult]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def frames(self) -> int:
        """Frames (images and alpha maps) written in this run."""
        return sum(r.frames for r in self.done)

    def summary(self) -> str:
        """A few lines for humans: counts, throughput, then one line per failed unit."""
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.store}: {len(self.done)} units converted, {len(self.skipped)} already complete, "
            f"{len(self.failed)} failed; {self.frames} frames in {self.seconds:.1f} s ({rate:.1f} frames/s)"
        ]
        if self.absent:
            lines.append(
                f"not in the raw folder (optional, not converted): {', '.join(r.unit.name for r in self.absent)}"
            )
        if self.not_in_raw:
            lines.append(
                f"listed in metadata.json but not in the raw folder (not downloaded, not converted): {', '.join(self.not_in_raw)}"
            )
        if self.failed:
            lines.append("failed units (rerun the same command to retry them; complete units are kept):")
            lines += [f"  {r.unit.name}: {r.message}" for r in self.failed]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Tasks (run on worker threads or dask workers; never raise)
# ---------------------------------------------------------------------------------------------


def run_task(task: Task, on_frames: Callable[[int], None] | None = None) -> UnitResult:
    """Run one unit; returns its :class:`UnitResult` (failures become ``status="failed"`` with a message)."""
    from ..storage import codecs  # noqa: F401  dask workers decode/encode JPEG too

    start = time.perf_counter()
    try:
        frames = _RUNNERS[task.unit.kind](task, on_frames or (lambda n: None))
    except NersembleZarrError as e:
        return UnitResult(task.unit, "failed", str(e), seconds=time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001  one broken unit must not stop the others
        return UnitResult(
            task.unit, "failed", f"{task.source}: {type(e).__name__}: {e}", seconds=time.perf_counter() - start
        )
    return UnitResult(task.unit, "done", frames=frames, seconds=time.perf_counter() - start)


def _convert_video(task: Task, on_frames: Callable[[int], None]) -> int:
    from ..raw import RawFormatError, iter_frames, probe_video

    alpha = task.unit.asset == "alpha_maps"
    t_total = task.n_timesteps

    def wrong_count() -> RawFormatError:
        found = probe_video(task.source).n_frames  # only on this error path: the happy path decodes once
        return RawFormatError(
            task.source, f"expected {t_total} frames (metadata.json of {task.unit.benchmark}), found {found}"
        )

    # every chunk is written (no per-chunk "all fill value?" scan, ~30 ms per full-res frame), so
    # a rewrite always replaces whole shards
    zstore = task.store.zarr_store()
    runs = schema.shard_runs(t_total, task.shard_timesteps)
    frame_shape = (task.height, task.width) if alpha else (task.height, task.width, 3)
    # (factor, array): the full-resolution array (factor 1) and each level, all sharded alike; progress counts
    # the frames of the first target only (a unit is n_timesteps frames, whatever it writes)
    targets = ([(1, task.target)] if task.write_full else []) + list(task.levels)
    with contextlib.ExitStack() as stack:
        writers = []
        for k, (factor, path) in enumerate(targets):
            arr = zarr.open_array(zstore, path=path, mode="r+").with_config({"write_empty_chunks": True})
            if (arr.shards or arr.chunks)[1] != runs[0][1] - runs[0][0]:
                raise NersembleZarrError(
                    f"{path}: shards of {(arr.shards or arr.chunks)[1]} timesteps, this unit writes {runs[0][1] - runs[0][0]}: "
                    "rerun with --overwrite"
                )
            h, w = level_shape(task.height, task.width, factor)
            shape = (runs[0][1] - runs[0][0], h, w) if alpha else (runs[0][1] - runs[0][0], h, w, 3)
            count = on_frames if k == 0 else (lambda n: None)
            writers.append((factor, stack.enter_context(_ShardWriter(arr, task.camera_index, count, shape))))
        bufs = [writer.buffer() for _, writer in writers]
        t = 0
        r = 0
        for frame in Prefetch(iter_frames(task.source, alpha=alpha), depth=8):
            if t >= t_total:
                raise wrong_count()
            if t == 0 and frame.shape != frame_shape:
                raise RawFormatError(task.source, _size_mismatch((frame.shape[0], frame.shape[1]), task.reference, (task.height, task.width)))
            t0, t1 = runs[r]
            for (factor, _), buf in zip(writers, bufs):
                buf[t - t0] = frame if factor == 1 else area_average(frame, factor, axes=(0, 1))
            t += 1
            if t == t1:
                for (_, writer), buf in zip(writers, bufs):
                    writer.submit(t0, t1, buf)  # one whole shard, compressed while decoding goes on
                r += 1
                bufs = [writer.buffer() for _, writer in writers]
        if t != t_total:
            raise wrong_count()
    return t_total


class _ShardWriter:
    """Writes whole shards ``arr[camera, t0:t1] = buffer[:t1 - t0]`` in a background thread while the
    next shard is decoded: two shard buffers of ``buffer_shape`` (one filling, one being written),
    reused. Errors surface on the next submit or on exit."""

    def __init__(
        self, arr: Any, camera_index: int, on_frames: Callable[[int], None], buffer_shape: tuple[int, ...]
    ) -> None:
        self._arr = arr
        self._fast = supports_fast_shards(arr)
        self._camera = camera_index
        self._on_frames = on_frames
        self._buffer_shape = buffer_shape
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shard-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            if self._error is not None:
                self._queue.task_done()
                continue  # drain: the consumer learns of the error and stops
            t0, t1, buf = item
            try:
                if self._fast:  # byte-identical to zarr's own write, without its per-chunk merge copies
                    coords = (self._camera, t0 // self._arr.shards[1], *([0] * (buf.ndim - 1)))
                    write_shard(self._arr, coords, buf[None, : t1 - t0])
                else:
                    self._arr[self._camera, t0:t1] = buf[: t1 - t0]
                self._on_frames(t1 - t0)
            except BaseException as e:  # noqa: BLE001  re-raised in the task
                self._error = e
            self._free.put(buf)
            self._queue.task_done()

    def buffer(self) -> np.ndarray:
        """A shard buffer to fill (reused once written: no fresh pages per shard)."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return np.empty(self._buffer_shape, np.uint8)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, t0: int, t1: int, buf: np.ndarray) -> None:
        """Queue ``buf[:t1 - t0]`` as timesteps ``t0:t1``; ``buf`` must not be touched afterwards."""
        self._queue.join()  # the previous shard is written: at most one shard in the writer
        self._check()
        self._queue.put((t0, t1, buf))

    def __enter__(self) -> "_ShardWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None:
            self._check()


def _convert_pointclouds(task: Task, on_frames: Callable[[int], None]) -> int:
    from ..raw import RawFormatError, read_pcd

    folder = Path(task.source)
    u = task.unit
    if not folder.is_dir():
        raise RawFormatError(folder, "expected a folder of .pcd point clouds, found none")
    clouds = pointcloud_files(folder, u.benchmark, u.participant, u.sequence or "")
    if not clouds:
        raise RawFormatError(folder, "expected frame_<timestep>.pcd point clouds, found no .pcd file")
    group = zarr.open_group(task.store.zarr_store(), path=task.target, mode="w", attributes=dict(INCOMPLETE))
    chunk, shard = schema.POINT_CHUNK, schema.POINT_SHARD
    block = shard or chunk  # written whole: memory stays below one block + one cloud, whatever the frame count
    arrays: dict[str, Any] = {}
    pending: dict[str, list[np.ndarray]] = {schema.POINTS: [], schema.COLORS: [], schema.NORMALS: []}
    n_pending = 0
    n_written = 0
    offsets = [0]
    has_normals: bool | None = None
    total_bytes = 0

    def flush(final: bool) -> None:
        nonlocal n_pending, n_written
        k = n_pending if final else (n_pending // block) * block
        if k == 0:
            return
        for name, parts in pending.items():
            if not parts:
                continue
            data = np.concatenate(parts)
            arr = arrays[name]
            arr.resize((n_written + k, 3))
            arr[n_written:n_written + k] = data[:k]  # whole chunks/shards (a partial one only at the very end)
            pending[name] = [data[k:]] if len(data) > k else []
        n_written += k
        n_pending -= k

    for _, path in clouds:
        cloud = read_pcd(path)
        total_bytes += path.stat().st_size
        if has_normals is None:
            has_normals = cloud.normals is not None
            specs = [(schema.POINTS, "float32", ("point", "xyz")), (schema.COLORS, "uint8", ("point", "rgb"))]
            if has_normals:
                specs.append((schema.NORMALS, "float32", ("point", "xyz")))
            for name, dtype, dims in specs:
                arrays[name] = group.create_array(
                    name, shape=(0, 3), dtype=dtype, chunks=(chunk, 3), shards=(shard, 3) if shard else None, dimension_names=dims,
                    **schema.chunk_codecs(schema.POINTCLOUD_COMPRESSORS[name]), attributes=schema.POINTCLOUD_ATTRS[name],
                )
        elif has_normals != (cloud.normals is not None):
            raise RawFormatError(
                path, f"expected {'normals' if has_normals else 'no normals'} like the sequence's first cloud, found "
                f"{'normals' if cloud.normals is not None else 'none'}"
            )
        pending[schema.POINTS].append(np.asarray(cloud.points, np.float32))
        pending[schema.COLORS].append(np.asarray(cloud.colors, np.uint8))
        if has_normals:
            pending[schema.NORMALS].append(np.asarray(cloud.normals, np.float32))
        n_pending += len(cloud.points)
        offsets.append(offsets[-1] + len(cloud.points))
        flush(final=False)
    flush(final=True)
    group.create_array(
        schema.OFFSETS, data=np.asarray(offsets, np.int64), dimension_names=(schema.CLOUD_OFFSET,), **schema.chunk_codecs(),
        attributes=schema.POINTCLOUD_ATTRS[schema.OFFSETS],
    )
    group.create_array(
        schema.CLOUD_TIMESTEP, data=np.asarray([t for t, _ in clouds], np.int64), dimension_names=(schema.CLOUD_TIMESTEP,), **schema.chunk_codecs(),
        attributes=schema.POINTCLOUD_ATTRS[schema.CLOUD_TIMESTEP],
    )
    group.attrs.update({
        "description": "point clouds in CSR layout: cloud i is points[offsets[i]:offsets[i+1]]",
        "source": task.source_rel, "source_files": len(clouds), "source_bytes": total_bytes,
        "has_normals": bool(has_normals),
    })
    return 0


def _convert_tracking(task: Task, on_frames: Callable[[int], None]) -> int:
    from ..raw import read_tracking

    tracking = read_tracking(task.source)
    version = int(task.unit.version or 0)
    group = zarr.open_group(task.store.zarr_store(), path=task.target, mode="w", attributes=dict(INCOMPLETE))
    frames = np.asarray(tracking.frames)
    if frames.dtype.kind in "iu" or (np.issubdtype(frames.dtype, np.floating) and np.all(frames == np.round(frames))):
        frames = frames.astype(np.int64)  # int64 like every timestep coordinate (non-integer frames, e.g. NaN, kept)
    group.create_array(
        schema.TIMESTEP, data=frames.reshape(-1), dimension_names=(schema.TIMESTEP,), **schema.chunk_codecs(),
        attributes={"description": "timestep (video frame index) of each tracked frame", "source_dtype": str(np.asarray(tracking.frames).dtype)},
    )
    for name, (dims, dtype) in schema.TRACKING_VARIABLES.items():
        value = np.asarray(getattr(tracking, name))
        data = value.astype(dtype)
        if name == "shape":
            data = data.reshape(-1)
        elif name == "scale":
            data = data.reshape(())
        group.create_array(
            name, data=data, dimension_names=dims if dims else None, **schema.chunk_codecs(),
            attributes={"source_shape": list(value.shape)},
        )
    group.attrs.update({
        "description": f"FLAME 2023 tracking, version {version}",
        "version": version, "current": version == schema.CURRENT_TRACKING_VERSION,
        "source": task.source_rel, "source_bytes": os.path.getsize(task.source),
    })
    return 0


def _convert_calibration(task: Task, on_frames: Callable[[int], None]) -> int:
    from ..raw import RawFormatError, read_camera_params

    params = read_camera_params(task.source)
    bench = bm.get_benchmark(task.unit.benchmark)
    serials = bm.SERIALS
    for serial in serials:
        for key, table in (("world_2_cam", params.world_2_cam), ("intrinsics", params.intrinsics)):
            if serial not in table:
                raise RawFormatError(task.source, f"expected {key} of all 16 cameras, camera {serial} is missing")
    group = zarr.open_group(task.store.zarr_store(), path=task.target, mode="w", attributes=dict(INCOMPLETE))
    group.create_array(
        schema.CAMERA, data=schema.string_array(serials), dimension_names=(schema.CAMERA,), **schema.chunk_codecs(),
        attributes=schema.CALIBRATION_ATTRS[schema.CAMERA],
    )
    group.create_array(
        schema.WORLD_2_CAM, data=np.stack([np.asarray(params.world_2_cam[s], np.float64) for s in serials]),
        dimension_names=schema.WORLD_2_CAM_DIMS, **schema.chunk_codecs(), attributes=schema.CALIBRATION_ATTRS[schema.WORLD_2_CAM],
    )
    group.create_array(
        schema.INTRINSICS, data=np.stack([np.asarray(params.intrinsics[s], np.float64) for s in serials]),
        dimension_names=schema.INTRINSICS_DIMS, **schema.chunk_codecs(), attributes=schema.CALIBRATION_ATTRS[schema.INTRINSICS],
    )
    group.create_array(
        schema.SPLIT, data=schema.string_array([bench.split_of(s) for s in serials]), dimension_names=(schema.CAMERA,), **schema.chunk_codecs(),
        attributes=schema.CALIBRATION_ATTRS[schema.SPLIT],
    )
    group.attrs.update({"source": task.source_rel, "source_bytes": os.path.getsize(task.source)})
    return 0


_RUNNERS: dict[str, Callable[[Task, Callable[[int], None]], int]] = {
    "video": _convert_video,
    "pointclouds": _convert_pointclouds,
    "tracking": _convert_tracking,
    "calibration": _convert_calibration,
    "svfr": lambda task, on_frames: _svfr().convert_svfr_unit(task, on_frames),
}


def _svfr() -> Any:
    from . import convert_svfr  # lazily: it builds on Task

    return convert_svfr

# ---------------------------------------------------------------------------------------------
# Driver: plan (reads only), execute (prepare: create shared arrays; run; mark complete)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvertOptions:
    """What to convert and how to store it (how to *run* it — workers, scheduler, progress — is
    :func:`execute_plan`'s). The fields mean what the keyword arguments of :func:`convert_benchmark` mean."""

    benchmarks: Sequence[str] | str | None = None
    participants: Sequence[int] | None = None
    sequences: Sequence[str] | None = None
    image_codec: schema.ImageCodecKind = "lossless"
    jpeg_quality: int = 95
    overwrite: bool = False
    shard_timesteps: int = schema.DEFAULT_SHARD_TIMESTEPS
    storage_options: dict[str, Any] | None = None
    #: downscale factors (2 = half resolution) whose levels are computed from the decoded frames during conversion
    levels: tuple[int, ...] = ()
    #: False: store only ``levels``, no full-resolution images and alpha (``convert --levels 2 --no-full``)
    full: bool = True


#: Stored bytes per pixel of one frame, the factor of the size estimate: measured by ``benchmarks/convert.py``
#: on 1604×1100 H.264-decoded frames (``benchmarks/results/convert.json``, ``bytes_per_frame`` ÷ (1604 × 1100):
#: lossless 2,850,737 B, JPEG q95 448,206 B, alpha 12,826 B per frame; compact (JPEG-XL lossless effort 1) from
#: ``benchmarks/results/tiers.json``; ``tests/test_convert_plan.py`` keeps them in step). JPEG was measured at
#: quality 95 only: other qualities are estimated with the same factor. Levels use the same factors (an
#: area-averaged frame compresses a little worse per pixel; the sampled estimate measures it).
BYTES_PER_PIXEL: dict[str, float] = {"lossless": 1.6157, "compact": 0.54260, "jpeg": 0.25403, "alpha": 0.0072695}
#: The same for a downscaled level (``--levels``), measured at ½ by ``benchmarks/tiers.py`` (``bytes_per_frame_level_2``
#: ÷ (802 × 550)): area averaging removes the smoothness H.264 left, so JPEG-XL gains less there; alpha as at full size.
LEVEL_BYTES_PER_PIXEL: dict[str, float] = {"lossless": 1.6348, "compact": 1.1167, "jpeg": 0.30289, "alpha": 0.0072695}


#: Bytes of metadata per group or array in the store: its ``zarr.json`` (~0.8 kB) and its copy in the root's
#: consolidated metadata (~1.2 kB), measured on a converted full-resolution mono sample (586 nodes, 1.15 MB).
METADATA_BYTES_PER_NODE = 2000


@dataclass(frozen=True)
class EnsureGroup:
    """Create the group ``path`` if absent and set ``attrs`` on it (benchmark, participant, sequence groups)."""

    path: str
    attrs: dict[str, Any]

    def describe(self) -> str:
        return f"group {self.path}: set {', '.join(sorted(self.attrs))}"

    def apply(self, root: zarr.Group) -> None:
        _ensure_group(root, self.path, self.attrs)


@dataclass(frozen=True)
class WriteCoords:
    """(Re)write the coordinate arrays of the sequence group ``path``: ``camera`` (the ``serials``) when
    ``serials`` is given, ``timestep`` (``0 … n_timesteps - 1``, int64) when ``n_timesteps`` is given."""

    path: str
    serials: tuple[str, ...] | None
    n_timesteps: int | None

    def describe(self) -> str:
        parts = ([f"camera ({len(self.serials)})"] if self.serials is not None else []) + (
            [f"timestep ({self.n_timesteps})"] if self.n_timesteps is not None else [])
        return f"coordinates {self.path}: {', '.join(parts)}"

    def apply(self, root: zarr.Group) -> None:
        seq = root[self.path]
        if self.serials is not None:
            seq.create_array(
                schema.CAMERA, data=schema.string_array(list(self.serials)), dimension_names=(schema.CAMERA,), overwrite=True,
                **schema.chunk_codecs(), attributes={"description": "camera serial of each video"},
            )
        if self.n_timesteps is not None:
            seq.create_array(
                schema.TIMESTEP, data=np.arange(self.n_timesteps, dtype=np.int64), dimension_names=(schema.TIMESTEP,),
                **schema.chunk_codecs(), overwrite=True, attributes={"description": "video frame index"},
            )


@dataclass(frozen=True)
class CreateArray:
    """(Re)create the frame array ``path`` (``…/images`` or ``…/alpha``), empty, with no complete camera:
    ``kwargs`` for :func:`zarr.create_array` (shape, chunks, shards, codecs), ``attrs`` its attributes."""

    path: str
    kwargs: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        """``(camera, timestep, height, width[, rgb])``."""
        return tuple(self.kwargs["shape"])

    @property
    def codec(self) -> str:
        """``"lossless"``, ``"jpeg q95"`` (images) or ``"lossless (alpha)"``."""
        c = self.attrs.get("codec")
        if c is None or self.path.endswith(f"/{schema.ALPHA}"):
            return "lossless (alpha)"
        return schema.ImageCodec.from_attrs(c).label

    def describe(self) -> str:
        return f"create {self.path} {self.shape} uint8, {self.codec}, shards of {self.kwargs['shards'][1]} timesteps"

    def apply(self, root: zarr.Group) -> None:
        parent, name = self.path.rsplit("/", 1)
        root[parent].create_array(name, attributes=self.attrs, overwrite=True, **self.kwargs)


@dataclass(frozen=True)
class DropLevels:
    """Delete the downscaled ``levels`` (``level_2``, …) of the sequence group ``path``: they were computed
    from frames this run rewrites (``nersemble-zarr downscale`` writes them again)."""

    path: str
    levels: tuple[str, ...]

    def describe(self) -> str:
        return f"drop {', '.join(f'{self.path}/{lv}' for lv in self.levels)} (computed from the frames rewritten)"

    def apply(self, root: zarr.Group) -> None:
        seq = root[self.path]
        for name in self.levels:
            if name in seq:
                del seq[name]


@dataclass(frozen=True)
class MarkIncomplete:
    """Set ``complete: False`` on the group ``path``, creating it if absent: a group a unit is about to
    (re)write, so a failed or killed unit leaves it visibly incomplete, or FLAME meshes evaluated from
    tracking this run rewrites. ``reason`` says which."""

    path: str
    reason: str

    def describe(self) -> str:
        return f"mark {self.path} incomplete ({self.reason})"

    def apply(self, root: zarr.Group) -> None:
        _ensure_group(root, self.path, dict(INCOMPLETE))


@dataclass(frozen=True)
class CreateLevel:
    """(Re)create the downscaled level ``level`` of a sequence, empty, for the video units to fill from the decoded
    frames (``convert --levels``): its group, ``images``/``alpha`` and ``intrinsics`` (scaled from the raw
    calibration) and attrs, exactly as ``nersemble-zarr downscale`` prepares a level (``level`` is its
    ``_LevelPlan``), so downscale, check and the readers treat it alike."""

    level: Any  # pipelines.downscale._LevelPlan

    @property
    def path(self) -> str:
        return self.level.path

    def describe(self) -> str:
        lv = self.level
        return (f"create {lv.path} ({lv.width}x{lv.height} WxH, scale 1/{lv.factor}, {lv.codec.label}), "
                "filled from the decoded frames")

    def apply(self, root: zarr.Group) -> None:
        from .downscale import _prepare_level

        _prepare_level(root[self.level.seq_path], self.level)


#: One write of the preparation, done in plan order before any unit runs.
PrepStep = EnsureGroup | WriteCoords | CreateArray | DropLevels | CreateLevel | MarkIncomplete


@dataclass(frozen=True)
class PlannedUnit:
    """A unit to run: its worker ``task`` (which names what it writes: ``task.target``, for a video one
    camera's shards of it), the video ``frames`` it writes (0 for other units) and ``estimated_bytes``
    in the store (see :func:`estimate_unit_bytes`)."""

    task: Task
    frames: int
    estimated_bytes: int

    @property
    def unit(self) -> Unit:
        return self.task.unit

    @property
    def metadata_nodes(self) -> int:
        """Groups and arrays the unit creates (each a ``zarr.json`` and its copy in the consolidated metadata)."""
        return {"tracking": 2 + len(schema.TRACKING_VARIABLES), "calibration": 5, "pointclouds": 6}.get(self.unit.kind, 0)


@dataclass(frozen=True)
class SequencePlan:
    """What a plan does to one sequence (``sequence=None``: the participant's calibration)."""

    benchmark: str
    participant: int
    sequence: str | None
    units: list[PlannedUnit]
    results: list[UnitResult]
    prepare: list[PrepStep]

    @property
    def name(self) -> str:
        base = f"{self.benchmark}/{bm.participant_dir(self.participant)}"
        return f"{base}/{self.sequence}" if self.sequence else f"{base} ({'images' if self.benchmark == bm.SVFR else 'calibration'})"

    @property
    def frames(self) -> int:
        return sum(u.frames for u in self.units)

    @property
    def estimated_bytes(self) -> int:
        return sum(u.estimated_bytes for u in self.units)


@dataclass
class ConvertPlan(_OutcomesByStatus):
    """Everything one convert run will do, found by reading only (:func:`plan_conversion`).

    ``prepare``: the writes done before any unit runs, in order (groups and their attrs, coordinates,
    frame arrays to create, levels to drop, groups to mark incomplete, FLAME meshes to unmark);
    ``root_attrs``: the store's root attrs to write (a new store), ``None`` when it already has them;
    ``units``: the units to run; ``results``: outcomes known before running — ``skipped`` (complete),
    ``absent`` (optional input not in the raw folder) and ``failed`` (refused inputs: another frame size,
    an unreadable header, a codec other than the store's, no frame count); ``not_in_raw``: listed in
    metadata.json but not downloaded; ``free_bytes``: free space where the store is (local stores;
    ``None`` for object stores).
    """

    raw: Path
    store: StoreLocation
    store_name: str
    options: ConvertOptions
    benchmarks: list[str]
    root_attrs: dict[str, Any] | None = None
    prepare: list[PrepStep] = field(default_factory=list)
    units: list[PlannedUnit] = field(default_factory=list)
    results: list[UnitResult] = field(default_factory=list)
    not_in_raw: list[str] = field(default_factory=list)
    free_bytes: int | None = None
    #: True: video units' bytes per pixel were measured on sample frames (:func:`sample_bytes_per_pixel`);
    #: False: the benchmark factors :data:`BYTES_PER_PIXEL`.
    sampled: bool = False
    #: the downscaled levels the video units write (``options.levels``), one per sequence and factor; the driver
    #: marks each ``complete`` once all its cameras are (``pipelines.downscale._LevelPlan``)
    level_plans: list[Any] = field(default_factory=list)

    @property
    def refused(self) -> list[UnitResult]:
        return self._with("failed")

    @property
    def frames(self) -> int:
        """Video frames (images and alpha maps) the units write."""
        return sum(u.frames for u in self.units)

    @property
    def metadata_bytes(self) -> int:
        """Estimated bytes of the metadata the plan adds: :data:`METADATA_BYTES_PER_NODE` per group or array it
        creates (groups, coordinates, frame arrays, levels, and the arrays each non-video unit writes)."""
        nodes = sum(u.metadata_nodes for u in self.units)
        for step in self.prepare:
            if isinstance(step, (EnsureGroup, CreateArray)):
                nodes += 1
            elif isinstance(step, WriteCoords):
                nodes += (step.serials is not None) + (step.n_timesteps is not None)
            elif isinstance(step, CreateLevel):
                nodes += 4  # group, images, alpha, intrinsics
        return nodes * METADATA_BYTES_PER_NODE

    @property
    def estimated_bytes(self) -> int:
        """Estimated bytes the run adds to the store: the units' (see :func:`estimate_unit_bytes`) and the
        metadata's (:attr:`metadata_bytes`)."""
        return sum(u.estimated_bytes for u in self.units) + self.metadata_bytes

    def sequences(self) -> list[SequencePlan]:
        """The plan per sequence (and per participant's calibration), in plan order."""
        keys: dict[tuple[str, int, str | None], SequencePlan] = {}

        def entry(b: str, p: int, s: str | None) -> SequencePlan:
            if (b, p, s) not in keys:
                keys[(b, p, s)] = SequencePlan(b, p, s, [], [], [])
            return keys[(b, p, s)]

        for u in self.units:
            entry(u.unit.benchmark, u.unit.participant, u.unit.sequence).units.append(u)
        for r in self.results:
            entry(r.unit.benchmark, r.unit.participant, r.unit.sequence).results.append(r)
        for step in self.prepare:
            parts = step.path.split("/")
            if len(parts) >= 2 and parts[1].isdigit():
                b, p = parts[0], int(parts[1])
                s = parts[2] if len(parts) >= 3 and parts[2] != schema.calibration_group(b, p).split("/")[-1] else None
                if (b, p, s) in keys or s is not None:
                    entry(b, p, s).prepare.append(step)
        return list(keys.values())

    def summary(self) -> str:
        """The plan for humans: per sequence its units, frames and estimated size, then the total and
        the free space on the target. Says that nothing was written and that sizes are estimates."""
        opts = self.options
        codec = schema.ImageCodec(opts.image_codec, int(opts.jpeg_quality))
        what = ("full resolution" if opts.full else "no full resolution") + (
            f" and levels {', '.join(f'1/{f}' for f in sorted(set(opts.levels)))}" if opts.levels else "")
        lines = [
            f"dry run, nothing written: converting {self.raw} into {self.store_name}",
            f"tier {codec.label} ({'bit-exact' if codec.lossless else 'lossy'}), {what}; alpha lossless",
        ]
        for sp in self.sequences():
            kinds = Counter(u.unit.kind for u in sp.units)
            what = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "nothing to run"
            done = sum(r.status == "skipped" for r in sp.results)
            size = ""
            videos = [u for u in sp.units if u.unit.kind == "video"]
            if videos:
                size = f" of {videos[0].task.width}x{videos[0].task.height} (WxH)"
            lines.append(
                f"{sp.name}: {len(sp.units)} units to run ({what}), {done} complete; "
                f"{sp.frames} frames{size}; estimated {format_bytes(sp.estimated_bytes)}"
            )
            lines += [f"    {step.describe()}" for step in sp.prepare if not isinstance(step, EnsureGroup)]
            lines += [f"    refused {r.unit.name}: {r.message}" for r in sp.results if r.status == "failed"]
            lines += [f"    absent {r.unit.name} (optional, not converted)" for r in sp.results if r.status == "absent"]
        if self.not_in_raw:
            lines.append(f"listed in metadata.json but not in the raw folder (not converted): {', '.join(self.not_in_raw)}")
        free = format_bytes(self.free_bytes) if self.free_bytes is not None else "unknown (not a local store)"
        lines.append(
            f"total: {len(self.units)} units to run, {len(self.skipped)} complete, {len(self.refused)} refused; "
            f"{self.frames} frames; estimated store growth {format_bytes(self.estimated_bytes)}; free on the target: {free}"
        )
        how = (
            "bytes per pixel of the first frame of each video compressed with the store's codec"
            if self.sampled else
            f"bytes per pixel measured per tier on full-resolution H.264 frames (lossless {BYTES_PER_PIXEL['lossless']:.2f}, "
            f"compact {BYTES_PER_PIXEL['compact']:.2f}, jpeg q95 {BYTES_PER_PIXEL['jpeg']:.2f}, alpha {BYTES_PER_PIXEL['alpha']:.4f}; "
            f"levels: lossless {LEVEL_BYTES_PER_PIXEL['lossless']:.2f}, compact {LEVEL_BYTES_PER_PIXEL['compact']:.2f}, "
            f"jpeg q95 {LEVEL_BYTES_PER_PIXEL['jpeg']:.2f})"
        )
        lines.append(
            f"  (an estimate: frames x height x width x {how}; "
            f"point clouds, tracking and calibration at their raw file size; metadata {format_bytes(self.metadata_bytes)})"
        )
        if self.free_bytes is not None and self.estimated_bytes > self.free_bytes:
            lines.append("  the estimate exceeds the free space on the target: convert refuses to start without --force")
        return "\n".join(lines)

    def space_problem(self) -> str | None:
        """One line naming the estimate and the free space when the estimate exceeds the free space on the
        target (a local store), else ``None``."""
        if self.free_bytes is None or self.estimated_bytes <= self.free_bytes:
            return None
        return (
            f"{self.store_name}: the estimated store growth {format_bytes(self.estimated_bytes)} exceeds the free space "
            f"{format_bytes(self.free_bytes)} on the target; free space, convert less (-p/-s, --levels 2 --no-full) or a "
            f"smaller tier (--tier compact or jpeg), or pass --force"
        )


def format_bytes(n: int) -> str:
    """``1234567`` → ``"1.2 MB"`` (decimal units)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def estimate_unit_bytes(task: Task, bytes_per_pixel: float, level_bytes_per_pixel: dict[int, float] | None = None) -> int:
    """Estimated bytes a unit adds to the store.

    Video: ``n_timesteps × height × width × bytes_per_pixel`` (per stored frame: images count their 3
    channels in the factor) when it writes full resolution, plus, per level ``f`` it writes,
    ``n_timesteps × (height // f) × (width // f) ×`` that level's bytes per pixel (``level_bytes_per_pixel[f]``,
    default ``bytes_per_pixel``). Point clouds, tracking, calibration: the size of their raw files (``stat``).
    """
    if task.unit.kind == "video":
        pixels = [(task.height * task.width, bytes_per_pixel)] if task.write_full else []
        for f, _ in task.levels:
            lh, lw = level_shape(task.height, task.width, f)
            pixels.append((lh * lw, (level_bytes_per_pixel or {}).get(f, bytes_per_pixel)))
        return int(round(sum(task.n_timesteps * n * bpp for n, bpp in pixels)))
    src = Path(task.source)
    try:
        if src.is_dir():
            return sum(f.stat().st_size for f in src.iterdir() if f.suffix == ".pcd")
        return src.stat().st_size
    except OSError:
        return 0


def sample_bytes_per_pixel(paths: Sequence[Path], array_kwargs: dict[str, Any], alpha: bool, factor: int = 1) -> float | None:
    """Stored bytes per pixel of the first frame of each video in ``paths`` (area-averaged by ``factor`` for a
    level), compressed with the codecs of ``array_kwargs`` (one frame, as
    :func:`~nersemble_zarr.core.schema.images_array_kwargs` / ``alpha_array_kwargs`` give for one camera × one
    timestep at that size) in memory; their mean, or ``None`` when no frame could be decoded. Reads the videos,
    writes nothing on disk."""
    from ..raw import read_frame
    from ..storage import codecs  # noqa: F401  the JPEG codec

    sizes = []
    for path in paths:
        try:
            frame = read_frame(path, 0, alpha=alpha)
        except NersembleZarrError:
            continue
        frame = area_average(frame, factor, axes=(0, 1))
        held: dict[str, Any] = {}
        arr = zarr.create_array(store=zarr.storage.MemoryStore(held), **array_kwargs)
        arr[0, 0] = frame
        stored = sum(len(v) for k, v in held.items() if not k.endswith("zarr.json"))
        sizes.append(stored / (frame.shape[0] * frame.shape[1]))
    return float(np.mean(sizes)) if sizes else None


def free_space(location: StoreLocation) -> int | None:
    """Free bytes on the file system that holds (or will hold) a local store: :func:`shutil.disk_usage`
    of its nearest existing folder. ``None`` for object stores (no such figure)."""
    import shutil

    if not location.is_local:
        return None
    path = Path(location.url)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def select_benchmarks(raw_root: Path, benchmarks: Sequence[str] | str | None) -> list[str]:
    """Benchmark names to work on: ``None``/``"all"`` = every benchmark folder present in ``raw_root``.

    Raises :class:`SelectionError` for an unknown benchmark or a selected one whose folder is absent,
    :class:`ConvertError` when ``raw_root`` holds no benchmark folder at all.
    """
    if benchmarks is None or benchmarks == "all" or (not isinstance(benchmarks, str) and "all" in benchmarks):
        found = [b for b in bm.ALL_BENCHMARK_NAMES if (raw_root / b).is_dir()]
        if not found:
            raise ConvertError(
                f"{raw_root}: expected a raw benchmark folder holding {' or '.join(bm.ALL_BENCHMARK_NAMES)}/, found none"
            )
        return found
    names = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    for name in names:
        try:
            name == bm.SVFR or bm.get_benchmark(name)
        except bm.UnknownIdError as e:
            raise SelectionError(str(e)) from None
        if not (raw_root / name).is_dir():
            present = [b for b in bm.ALL_BENCHMARK_NAMES if (raw_root / b).is_dir()]
            raise SelectionError(
                f"{raw_root / name}: benchmark folder not found (not downloaded?); "
                f"present in {raw_root}: {', '.join(present) or 'none'}"
            )
    return names


def select_participants(raw_root: Path, benchmark: str, wanted: Sequence[int] | None) -> list[int]:
    """Participants of ``benchmark`` to work on, in benchmark order: those in ``wanted`` (all when
    ``None``) whose folder is present in ``raw_root``. :func:`check_selection` has already refused a
    wanted participant that is absent from every selected benchmark folder."""
    participants = bm.participants_of(benchmark)
    want = {int(w) for w in wanted} if wanted else set(participants)
    return [p for p in participants if p in want and (raw_root / benchmark / bm.participant_dir(p)).is_dir()]


def pointcloud_files(folder: Path, benchmark: str, participant: int, sequence: str) -> list[tuple[int, Path]]:
    """``[(timestep, path)]`` of the folder's point clouds, named as :func:`benchmark.pointcloud_path` says, by timestep."""
    out = []
    for p in folder.iterdir():
        m = re.fullmatch(r"\D*(\d+)\.pcd", p.name)
        if m and Path(bm.pointcloud_path(participant, sequence, int(m.group(1)))).name == p.name:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _check_store_path(location: StoreLocation, raw_root: Path) -> None:
    if not location.is_local:
        return
    path = Path(location.url)
    if path.resolve() == raw_root.resolve() or raw_root.resolve() in path.resolve().parents:
        raise ConvertError(f"{path}: the store must not be the raw folder {raw_root} or inside it")
    if path.is_dir() and not (path / "zarr.json").exists() and any(path.iterdir()):
        raise ConvertError(f"{path}: exists and is not a Zarr store (no zarr.json); give a new or an existing store path")


def _ensure_group(root: zarr.Group, path: str, attrs: dict[str, Any] | None = None) -> zarr.Group:
    g = root.require_group(path)
    if attrs and any(g.attrs.get(k) != v for k, v in attrs.items()):
        g.update_attributes(attrs)
    return g


def _size_mismatch(found: tuple[int, int], reference: str, expected: tuple[int, int]) -> str:
    """The message for a video whose frames (``found`` = height, width) differ from the sequence's."""
    return (
        f"frame size {found[1]}x{found[0]} (width x height) differs from {expected[1]}x{expected[0]} of {reference}: "
        "every image and alpha video of a sequence must have one frame size; replace the odd video and rerun"
    )


def _probe_sizes(paths: list[Path]) -> dict[Path, tuple[int, int] | str]:
    """``(height, width)`` of each video from its header, or the error message for one that cannot be probed."""
    from ..raw import probe_frame_size

    out: dict[Path, tuple[int, int] | str] = {}
    for path in paths:
        try:
            out[path] = probe_frame_size(path)
        except NersembleZarrError as e:
            out[path] = str(e)
    return out


def _existing_array(group: zarr.Group, name: str) -> Any | None:
    try:
        node = group[name]
    except KeyError:
        return None
    return node if isinstance(node, zarr.Array) else None


@dataclass
class _VideoAsset:
    asset: str  # "images" | "alpha_maps"
    name: str  # schema.IMAGES | schema.ALPHA
    units: list[Unit]
    paths: list[Path]
    arr: Any | None  # the existing array that is kept (complete cameras stay), or None: (re)create


def _plan_video(
    plan: ConvertPlan, root: zarr.Group | None, benchmark: str, participant: int, sequence: str, n_timesteps: int,
    codec: schema.ImageCodec,
) -> None:
    """Plan the image and alpha videos of one sequence: one frame size for all of them.

    The size is that of the kept arrays (their complete cameras were written with it) or, for new
    arrays, the size most of the sequence's videos have (no such size, e.g. one image and one alpha
    video of two sizes: every unit fails). A video of another size fails its unit naming both files
    and both sizes; it is never stored, so it can never read as the others' size. Sizes come from
    the video headers (:func:`~nersemble_zarr.raw.probe_frame_size`); nothing is written.

    Levels (``options.levels``): each video unit also writes its camera's shards of ``level_<f>/images``
    (or ``alpha``), area-averaged from the decoded frames (the level layout of ``nersemble-zarr downscale``,
    intrinsics scaled from the raw ``camera_params.json``). A level is kept when it verifies
    (:func:`~nersemble_zarr.pipelines.downscale._level_problems`) and the full-resolution frames are not
    rewritten; otherwise it is created anew. ``options.full=False``: no full-resolution arrays at all.
    A unit runs while its camera is incomplete in any array it writes.
    """
    from .downscale import _LevelPlan, _level_problems

    opts = plan.options
    overwrite, shard_timesteps, loc, full = opts.overwrite, opts.shard_timesteps, plan.store, opts.full
    factors = sorted({int(f) for f in opts.levels})
    b = bm.get_benchmark(benchmark)
    serials = b.train_serials
    seq_path = schema.sequence_group(benchmark, participant, sequence)
    seq = _node(root, seq_path)
    bench_dir = plan.raw / benchmark
    assets: list[_VideoAsset] = []
    level_nodes = {f: None if overwrite else _node(root, f"{seq_path}/{schema.level_group_name(f)}") for f in factors}
    for asset, name in (("images", schema.IMAGES), ("alpha_maps", schema.ALPHA)):
        units = [Unit("video", benchmark, participant, sequence, serial=s, asset=asset) for s in serials]
        paths = [bench_dir / bm.video_path(participant, sequence, s, asset) for s in serials]
        arr = None if overwrite or seq is None or not full else _existing_array(seq, name)
        want_codec = codec if name == schema.IMAGES else schema.ImageCodec("lossless")
        if name == schema.IMAGES:
            stored = [(f"{seq_path}/{name}", arr)] + [
                (f"{seq_path}/{schema.level_group_name(f)}/{name}", _existing_array(g, name))
                for f, g in level_nodes.items() if isinstance(g, zarr.Group)
            ]
            wrong = [(p, schema.ImageCodec.from_attrs(a.attrs.get("codec", {}))) for p, a in stored if a is not None]
            wrong = [(p, c) for p, c in wrong if c != want_codec]
            if wrong:
                msg = (
                    f"the store holds {wrong[0][0]} encoded as {wrong[0][1].label}, this run asks for {codec.label}: "
                    "rerun with the same --tier, or with --overwrite to re-encode"
                )
                plan.results += [UnitResult(u, "failed", msg) for u in units]
                continue
        if arr is not None:
            if arr.shape[:2] != (len(serials), n_timesteps) or not has_complete_cameras(arr):
                arr = None  # metadata changed, or nothing complete to keep: rebuild
        assets.append(_VideoAsset(asset, name, units, paths, arr))
    kept = [a for a in assets if a.arr is not None]
    if len(kept) == 2 and kept[0].arr.shape[2:4] != kept[1].arr.shape[2:4]:
        for a in kept:  # written from videos of two sizes (before sizes were checked): rebuild both
            a.arr = None
        kept = []
    if full and any(a.arr is None for a in assets):
        level_nodes = {f: None for f in factors}  # frames written anew: their levels are computed anew too

    # what each camera still needs: the full-resolution array (unless --no-full) and each level
    full_done = {
        a.name: set(complete_cameras(a.arr)) if a.arr is not None else set() for a in assets
    }

    def level_done(f: int, name: str) -> set[str]:
        g = level_nodes.get(f)
        arr = _existing_array(g, name) if isinstance(g, zarr.Group) else None
        return set(complete_cameras(arr)) if arr is not None else set()

    def needs(a: _VideoAsset, serial: str) -> bool:
        return (full and serial not in full_done[a.name]) or any(serial not in level_done(f, a.name) for f in factors)

    pending: list[tuple[_VideoAsset, int]] = []
    for a in assets:
        for i, u in enumerate(a.units):
            if needs(a, u.serial):
                pending.append((a, i))
            else:
                plan.results.append(UnitResult(u, "skipped"))
    if not pending:
        return
    sizes = _probe_sizes([a.paths[i] for a, i in pending])
    if kept:
        k = kept[0]
        size = (int(k.arr.shape[2]), int(k.arr.shape[3]))
        done = set(complete_cameras(k.arr))
        reference = next((str(p) for u, p in zip(k.units, k.paths) if u.serial in done), f"{seq_path}/{k.name} in the store")
    else:
        probed = [sizes[a.paths[i]] for a, i in pending]
        counts = Counter(sz for sz in probed if isinstance(sz, tuple))
        if not counts:  # no video of the sequence can be read: every unit fails with its own reason
            plan.results += [UnitResult(a.units[i], "failed", str(sizes[a.paths[i]])) for a, i in pending]
            return
        ranked = counts.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            # no size most videos share (the mono benchmark's one image and one alpha video of two sizes):
            # nothing says which is right, so every unit fails naming a video of the other size
            first = {sz: next(a.paths[i] for a, i in pending if sizes[a.paths[i]] == sz) for sz, _ in ranked}
            for a, i in pending:
                found = sizes[a.paths[i]]
                if isinstance(found, str):
                    plan.results.append(UnitResult(a.units[i], "failed", found))
                    continue
                other = next(sz for sz, _ in ranked if sz != found)
                plan.results.append(UnitResult(a.units[i], "failed", f"{a.paths[i]}: {_size_mismatch(found, str(first[other]), other)}"))
            return
        size = ranked[0][0]  # the size most of the sequence's videos have
        reference = next(str(a.paths[i]) for a, i in pending if sizes[a.paths[i]] == size)
    h, w = size
    shard_len: dict[str, int] = {}
    levels = tuple(
        name for name in (seq.group_keys() if seq is not None else ())
        if name.startswith("level_") and name[len("level_"):].isdigit()
    )
    for a in assets:
        if a.arr is not None:
            shard_len[a.name] = a.arr.shards[1] if a.arr.shards else a.arr.chunks[1]
            continue
        source = f"{benchmark}/{bm.sequence_dir(participant, sequence)}/{a.asset}/"
        if a.name == schema.IMAGES:
            kwargs = schema.images_array_kwargs(len(serials), n_timesteps, h, w, codec, shard_timesteps)
            attrs = schema.image_attrs(codec, source)
        else:
            kwargs = schema.alpha_array_kwargs(len(serials), n_timesteps, h, w, shard_timesteps)
            attrs = schema.alpha_attrs(source)
        shard_len[a.name] = kwargs["shards"][1]
        if not full:
            continue  # levels only: no full-resolution array
        plan.prepare.append(CreateArray(f"{seq_path}/{a.name}", kwargs, attrs))
        if levels:  # frames written anew: the levels computed from the old ones go, right after the first new array
            plan.prepare.append(DropLevels(seq_path, levels))
            levels = ()

    if factors:
        intrinsics = _raw_intrinsics(bench_dir / bm.calibration_path(participant), serials)
        if isinstance(intrinsics, str):
            plan.results += [UnitResult(a.units[i], "failed", intrinsics) for a, i in pending]
            return
        lshard = shard_len.get(schema.IMAGES, max(1, min(shard_timesteps, n_timesteps)))
        for f in factors:
            lh, lw = level_shape(h, w, f)
            if lh < 1 or lw < 1:
                msg = f"{reference}: frames of {w}x{h} (width x height) cannot be downscaled by {f}"
                plan.results += [UnitResult(a.units[i], "failed", msg) for a, i in pending]
                return
            lp = _LevelPlan(
                seq_path=seq_path, factor=f, cameras=tuple(serials), n_timesteps=int(n_timesteps), height=lh, width=lw,
                shard_timesteps=int(lshard), codec=codec,
                intrinsics=np.stack([scale_intrinsics(intrinsics[s], f) for s in serials]),
            )
            plan.level_plans.append(lp)
            node = level_nodes.get(f)
            if not isinstance(node, zarr.Group) or _level_problems(seq, lp):
                level_nodes[f] = None  # (re)created empty: every camera writes it
                plan.prepare.append(CreateLevel(lp))
        # cameras of a recreated level run again, and their sizes are checked like the others
        pending = [(a, i) for a in assets for i, u in enumerate(a.units) if needs(a, u.serial)]
        plan.results = [r for r in plan.results if not (r.status == "skipped" and r.unit.kind == "video" and any(
            r.unit == a.units[i] for a, i in pending))]
        sizes.update(_probe_sizes([a.paths[i] for a, i in pending if a.paths[i] not in sizes]))
    bpp = {
        a.name: _bytes_per_pixel(plan, a, [a.paths[i] for owner, i in pending if owner is a and sizes[a.paths[i]] == size], h, w, codec)
        for a in assets
    }
    for a, i in pending:
        unit, path, found = a.units[i], a.paths[i], sizes[a.paths[i]]
        if isinstance(found, str):
            plan.results.append(UnitResult(unit, "failed", found))
        elif found != size:
            plan.results.append(UnitResult(unit, "failed", f"{path}: {_size_mismatch(found, reference, size)}"))
        else:
            unit_levels = tuple(
                (f, f"{seq_path}/{schema.level_group_name(f)}/{a.name}") for f in factors if unit.serial not in level_done(f, a.name)
            )
            _plan_unit(plan, Task(
                unit, loc, str(path), f"{seq_path}/{a.name}", bm.video_path(participant, sequence, unit.serial, a.asset),
                camera_index=i, n_timesteps=n_timesteps, shard_timesteps=shard_len[a.name], height=h, width=w,
                reference=reference, levels=unit_levels, write_full=full and unit.serial not in full_done[a.name],
            ), *bpp[a.name])


def _raw_intrinsics(path: Path, serials: Sequence[str]) -> dict[str, np.ndarray] | str:
    """``{serial: (3, 3) K}`` of ``serials`` from the raw ``camera_params.json`` (the levels' intrinsics), or the
    message naming the file and what is missing."""
    from ..raw import read_camera_params

    try:
        params = read_camera_params(path)
    except (NersembleZarrError, OSError) as e:
        return f"{path}: the levels need the cameras' intrinsics: {e}"
    missing = [s for s in serials if s not in params.intrinsics]
    if missing:
        return f"{path}: expected intrinsics of camera(s) {', '.join(missing)} for the levels, found none"
    return {s: np.asarray(params.intrinsics[s], np.float64) for s in serials}


def _bytes_per_pixel(
    plan: ConvertPlan, asset: _VideoAsset, paths: list[Path], h: int, w: int, codec: schema.ImageCodec,
) -> tuple[float, dict[int, float]]:
    """The estimate's bytes per pixel of one asset of a sequence, at full resolution and per level factor: the
    mean over the first frames of the videos ``paths`` (every camera to convert: cameras differ, 3 of 13 missed
    the sample's size by 18%; a level's frame is area-averaged first) when the plan samples frames, else (or when
    none decodes) the benchmark factor :data:`BYTES_PER_PIXEL`."""
    alpha = asset.name == schema.ALPHA
    fallback = BYTES_PER_PIXEL["alpha" if alpha else codec.kind]
    factors = sorted({int(f) for f in plan.options.levels})
    level_fallback = LEVEL_BYTES_PER_PIXEL["alpha" if alpha else codec.kind]
    if not plan.sampled or not paths:
        return fallback, {f: level_fallback for f in factors}
    out = []
    for f in ([1] if plan.options.full else []) + factors:
        lh, lw = level_shape(h, w, f)
        kwargs = schema.alpha_array_kwargs(1, 1, lh, lw, 1) if alpha else schema.images_array_kwargs(1, 1, lh, lw, codec, 1)
        measured = sample_bytes_per_pixel(paths, kwargs, alpha, factor=f)
        out.append((f, (fallback if f == 1 else level_fallback) if measured is None else measured))
    measured_at = dict(out)
    return measured_at.get(1, fallback), {f: measured_at[f] for f in factors}  # noqa: RET504


def _plan_coords(plan: ConvertPlan, seq: Any | None, seq_path: str, serials: Sequence[str], n_timesteps: int) -> None:
    """Plan the ``camera``/``timestep`` coordinates of a sequence: a step only for those absent or different."""
    cam = _existing_array(seq, schema.CAMERA) if seq is not None else None
    ts = _existing_array(seq, schema.TIMESTEP) if seq is not None else None
    new_cam = cam is None or cam.shape != (len(serials),) or list(cam[:]) != list(serials)
    new_ts = ts is None or ts.shape != (n_timesteps,) or not np.array_equal(ts[:], np.arange(n_timesteps))
    if new_cam or new_ts:
        plan.prepare.append(WriteCoords(seq_path, tuple(serials) if new_cam else None, n_timesteps if new_ts else None))


def _node(root: zarr.Group | None, path: str) -> Any | None:
    """The group or array at ``path`` in the (read-only) store root, or ``None`` (no store, or absent)."""
    if root is None:
        return None
    try:
        return root[path]
    except KeyError:
        return None


def _plan_group(plan: ConvertPlan, root: zarr.Group | None, path: str, attrs: dict[str, Any]) -> None:
    """Ensure the group ``path`` with ``attrs``: a step only when it is absent or its attrs differ."""
    g = _node(root, path)
    if g is None or any(g.attrs.get(k) != v for k, v in attrs.items()):
        plan.prepare.append(EnsureGroup(path, attrs))


def _plan_unit(
    plan: ConvertPlan, task: Task, bytes_per_pixel: float = 0.0, level_bytes_per_pixel: dict[int, float] | None = None,
) -> None:
    plan.units.append(PlannedUnit(task, _video_frames(task), estimate_unit_bytes(task, bytes_per_pixel, level_bytes_per_pixel)))


def _group_task(
    plan: ConvertPlan, root: zarr.Group | None, unit: Unit, source: Path, source_rel: str, target: str,
    present: bool = True,
) -> None:
    """Plan a unit that owns the group ``target``. ``present=False``: an optional asset that the raw
    folder lacks (nothing to convert; a complete group from an earlier run is kept). A unit to run
    gets its group before it runs, marked ``complete: False``, so a unit that fails (or a killed run)
    leaves the group visibly incomplete (``info``, ``verify``) instead of absent, which reads as "not
    downloaded"; ``--overwrite`` unmarks a complete group, so nothing says complete while the task
    rewrites it."""
    node = _node(root, target)
    complete = is_complete(node)
    if complete and not plan.options.overwrite:
        plan.results.append(UnitResult(unit, "skipped"))
    elif not present:
        plan.results.append(UnitResult(unit, "absent", f"{source} not found"))
    else:
        plan.prepare.append(MarkIncomplete(target, "rewritten (--overwrite)" if complete else "written by this run"))
        if unit.kind == "tracking":  # meshes evaluated from the old tracking: 'nersemble-zarr flame' redoes them
            meshes = schema.flame_group(unit.benchmark, unit.participant, unit.sequence, unit.version)
            m = _node(root, meshes)
            if is_complete(m):
                plan.prepare.append(MarkIncomplete(meshes, "FLAME meshes of the tracking rewritten"))
        _plan_unit(plan, Task(unit, plan.store, str(source), target, source_rel))


def _plan_benchmark(plan: ConvertPlan, root: zarr.Group | None, benchmark: str, codec: schema.ImageCodec) -> None:
    from ..raw import read_metadata

    if benchmark == bm.SVFR:
        return _svfr().plan_svfr(plan, root, codec)
    opts = plan.options
    raw_root = plan.raw
    participants, sequences = opts.participants, opts.sequences
    b = bm.get_benchmark(benchmark)
    bench_dir = raw_root / benchmark
    meta = read_metadata(bench_dir / bm.metadata_path(), benchmark)
    _plan_group(plan, root, schema.benchmark_group(benchmark), {
        schema.METADATA_ATTR: meta.raw, "fps": b.fps, "description": f"NeRSemble {benchmark} benchmark",
    })
    present = select_participants(raw_root, benchmark, participants)
    if not participants:  # listed but not downloaded: reported; an explicit selection was checked before
        plan.not_in_raw += [
            f"{benchmark}/{bm.participant_dir(p)}" for p in meta.participants if p in b.participants and p not in present
        ]
    for p in present:
        if not sequences:
            plan.not_in_raw += [
                f"{benchmark}/{bm.participant_dir(p)}/{s}" for (q, s) in sorted(meta.frame_counts)
                if q == p and s in b.sequences[p] and not (bench_dir / bm.sequence_dir(p, s)).is_dir()
            ]
        _plan_group(plan, root, schema.participant_group(benchmark, p), {"participant": p})
        _group_task(
            plan, root, Unit("calibration", benchmark, p), bench_dir / bm.calibration_path(p),
            f"{benchmark}/{bm.calibration_path(p)}", schema.calibration_group(benchmark, p),
        )
        for s in b.sequences[p]:
            if sequences and s not in sequences:
                continue
            if not sequences and not (bench_dir / bm.sequence_dir(p, s)).is_dir():
                continue
            is_test = s not in b.video_sequences(p)
            n_timesteps = meta.frame_counts.get((p, s))
            seq_path = schema.sequence_group(benchmark, p, s)
            _plan_group(plan, root, seq_path, {
                "participant": p, "sequence": s, "benchmark": benchmark,
                "split": "test" if is_test else "train", "has_video": not is_test,
                "n_timesteps": n_timesteps, "fps": b.fps,
            })
            if not is_test:
                if n_timesteps is None:
                    msg = f"{bench_dir / bm.metadata_path()}: expected a frame count for {bm.participant_dir(p)}/{s}, found none"
                    plan.results += [
                        UnitResult(Unit("video", benchmark, p, s, serial=c, asset=a), "failed", msg)
                        for a in ("images", "alpha_maps") for c in b.train_serials
                    ]
                else:
                    _plan_coords(plan, _node(root, seq_path), seq_path, b.train_serials, n_timesteps)
                    _plan_video(plan, root, benchmark, p, s, n_timesteps, codec)
            if b.has_pointclouds:
                pc_dir = bench_dir / Path(bm.pointcloud_path(p, s, 0)).parent
                _group_task(
                    plan, root, Unit("pointclouds", benchmark, p, s), pc_dir,
                    f"{benchmark}/{pc_dir.relative_to(bench_dir).as_posix()}/", schema.pointclouds_group(benchmark, p, s),
                    present=pc_dir.is_dir() and any(pc_dir.glob("*.pcd")),
                )
            if b.has_tracking:
                for v in sorted(bm.TRACKING_FILES):
                    _group_task(
                        plan, root, Unit("tracking", benchmark, p, s, version=v),
                        bench_dir / bm.tracking_path(p, s, v), f"{benchmark}/{bm.tracking_path(p, s, v)}",
                        schema.tracking_group(benchmark, p, s, v),
                        present=(bench_dir / bm.tracking_path(p, s, v)).exists(),
                    )


def _validate(raw_root: str | os.PathLike, store: str | os.PathLike | StoreLocation, options: ConvertOptions) -> tuple[Path, schema.ImageCodec, list[str], StoreLocation]:
    """Check the inputs of a conversion, reading only: the raw folder, the codec, the selection, the store
    path. Returns ``(raw folder, codec, benchmark names, store location)``."""
    raw = Path(raw_root).expanduser()
    if not raw.is_dir():
        raise ConvertError(f"{raw}: raw benchmark folder not found")
    try:
        codec = schema.ImageCodec(options.image_codec, int(options.jpeg_quality))
    except ValueError as e:
        raise ConvertError(str(e)) from None
    for f in options.levels:
        if isinstance(f, bool) or int(f) != f or int(f) < 2:
            raise ConvertError(f"a level is an integer downscale factor >= 2 (2 = half resolution), not {f!r}")
    if not options.full and not options.levels:
        raise ConvertError("storing no full resolution (--no-full) needs the levels to store instead (--levels 2,4)")
    names = select_benchmarks(raw, options.benchmarks)
    check_selection(raw, names, options.participants, options.sequences)
    loc = store if isinstance(store, StoreLocation) else StoreLocation.parse(store, options.storage_options)
    _check_store_path(loc, raw)
    return raw, codec, names, loc


def plan_conversion(
    raw_root: str | os.PathLike, store: str | os.PathLike | StoreLocation, options: ConvertOptions | None = None,
    *, sample_frames: bool = False,
) -> ConvertPlan:
    """What converting ``raw_root`` into ``store`` with ``options`` will do, found by reading only.

    Reads the raw folder (``metadata.json``, which files exist, their sizes, the video headers for the
    frame size), and the store's existing arrays and completion markers; writes nothing, and does not
    create a store that does not exist yet. Raises what :func:`convert_benchmark` raises before it
    starts (:class:`ConvertError`, :class:`~nersemble_zarr.core.errors.SelectionError`, a store of
    another format version). A plan made without the store lock may be stale once executed;
    :func:`convert_benchmark` plans under the lock.

    Estimated size (:attr:`ConvertPlan.estimated_bytes`): video units ``frames × height × width × bytes
    per pixel``; with ``sample_frames`` the bytes per pixel of each sequence's images and alpha are
    measured by compressing the first frame of each of its videos to convert with the store's codec in
    memory (~0.1 s per video at full resolution; within 4% of the real size on the full-resolution sample), else they are the factors measured on full-resolution
    H.264 frames (:data:`BYTES_PER_PIXEL`); other units count their raw file sizes. It is an estimate.
    """
    options = options or ConvertOptions()
    raw, codec, names, loc = _validate(raw_root, store, options)
    root = _read_root(loc)
    info = {"format_version": schema.FORMAT_VERSION, "created_by": f"nersemble-zarr {__version__}", "source": raw.name,
            "source_path": str(raw.resolve())}  # the raw folder, for the data managers' get_*_path
    found = root.attrs.get(schema.ROOT_ATTR) if root is not None else None
    if found is not None and found.get("format_version") != schema.FORMAT_VERSION:
        raise ConvertError(
            f"{loc}: store format version {found.get('format_version')}, this nersemble-zarr writes "
            f"{schema.FORMAT_VERSION}; convert into a new store"
        )
    plan = ConvertPlan(
        raw=raw, store=loc, store_name=str(store), options=options, benchmarks=names,
        root_attrs=info if found is None else None, free_bytes=free_space(loc), sampled=sample_frames,
    )
    for name in names:
        _plan_benchmark(plan, root, name, codec)
    return plan


def _read_root(location: StoreLocation) -> zarr.Group | None:
    """The store's root group opened read-only from its own metadata (not the consolidated copy), or
    ``None`` when there is no store yet (nothing is created)."""
    if not location.exists():
        return None
    return zarr.open_group(location.zarr_store(read_only=True), mode="r", use_consolidated=False)


def _prepare(plan: ConvertPlan) -> zarr.Group:
    """Do the plan's preparation: the root (and its attrs on a new store), then :attr:`ConvertPlan.prepare` in order."""
    root = zarr.open_group(plan.store.zarr_store(), mode="a", use_consolidated=False)
    if plan.root_attrs is not None and root.attrs.get(schema.ROOT_ATTR) is None:
        root.attrs[schema.ROOT_ATTR] = plan.root_attrs
    for step in plan.prepare:
        step.apply(root)
    return root


def _mark_complete(root: zarr.Group, task: Task) -> None:
    """Write the unit's completion marker (its data is already on the store)."""
    if task.unit.kind == "video":
        paths = ([task.target] if task.write_full else []) + [path for _, path in task.levels]
        for path in paths:
            mark_cameras_complete(zarr.open_array(root.store, path=path, mode="r+"), [task.unit.serial])
    else:
        mark_complete(zarr.open_group(root.store, path=task.target, mode="r+"))


def _video_frames(task: Task) -> int:
    """Frames a unit adds to the progress display: a video unit's timesteps (other units count 0)."""
    return task.n_timesteps if task.unit.kind == "video" else 0


def _frames_written(result: UnitResult) -> int:
    """Frames a finished unit counts: its video frames when done, 0 when it failed."""
    return result.frames if result.status == "done" and result.unit.kind == "video" else 0


def convert_benchmark(
    raw_root: str | os.PathLike,
    store: str | os.PathLike,
    *,
    benchmarks: Sequence[str] | str | None = None,
    participants: Sequence[int] | None = None,
    sequences: Sequence[str] | None = None,
    image_codec: schema.ImageCodecKind = "lossless",
    jpeg_quality: int = 95,
    workers: int | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    shard_timesteps: int = schema.DEFAULT_SHARD_TIMESTEPS,
    storage_options: dict[str, Any] | None = None,
    levels: Sequence[int] = (),
    full: bool = True,
    force: bool = False,
) -> ConvertReport:
    """Convert a raw benchmark folder (official layout) into the Zarr store at ``store``.

    ``benchmarks``: ``"nvs"``, ``"mono_flame_avatar"``, a list, or ``None``/``"all"`` (every
    benchmark folder present). ``participants``/``sequences``: restrict to these (default: all
    present on disk). ``image_codec``: the tier, ``"lossless"`` (blosc-lz4, bit-exact), ``"compact"`` (JPEG-XL
    lossless, bit-exact, ~3x smaller) or ``"jpeg"`` at ``jpeg_quality``; alpha is always lossless. ``levels``:
    downscale factors (2, 4) whose levels are computed from the decoded frames during conversion (the layout of
    ``nersemble-zarr downscale``); ``full=False``: store only those levels, no full resolution.
    ``force``: start even when the estimated store growth exceeds the free space on the target (otherwise
    :class:`InsufficientSpaceError`, before anything is written). ``workers``: run on a local dask cluster of that many worker
    processes; ``scheduler``: a ``tcp://`` address (or ``distributed.Client``) of an existing
    cluster; neither: threads in this process. ``store`` is a local path or an fsspec URL
    (``s3://…``, with ``storage_options``). Complete units are skipped unless ``overwrite``; frames
    written anew drop the sequence's downscaled levels and tracking written anew unmarks its FLAME
    meshes (both derived from the old data; ``downscale``/``flame`` redo them).

    Inputs must agree: every image and alpha video of a sequence has one frame size (a video of
    another size fails its unit, naming it, the video the size came from and both sizes; its camera
    stays unmarked). Raw files that are not regular files (FIFO, device, a link to ``/dev/zero``) fail
    their unit by name and are never opened for reading.

    Missing participants: with ``participants=None``, those listed in ``metadata.json`` but absent
    from the raw folder (a partial download) are skipped and listed in
    :attr:`ConvertReport.not_in_raw` (and the summary); an explicitly selected participant or
    sequence that is absent is a :class:`~nersemble_zarr.core.errors.SelectionError` (exit 2) before
    anything is written, as is one the benchmark does not have.

    Returns the :class:`ConvertReport`; raises :class:`ConvertError` when nothing can start and
    :class:`~nersemble_zarr.storage.lock.StoreLockedError` when another convert holds the store.
    """
    start = time.perf_counter()
    raw = Path(raw_root).expanduser()
    if not raw.is_dir():
        raise ConvertError(f"{raw}: raw benchmark folder not found")
    _check_run_options(workers, scheduler)
    options = ConvertOptions(
        benchmarks=benchmarks, participants=participants, sequences=sequences, image_codec=image_codec,
        jpeg_quality=jpeg_quality, overwrite=overwrite, shard_timesteps=shard_timesteps, storage_options=storage_options,
        levels=tuple(int(f) for f in levels), full=full,
    )
    _, _, _, loc = _validate(raw, store, options)  # refusals come before the lock: nothing is written
    if not force and free_space(loc) is not None:  # the lock file is a write: the space check comes before it
        problem = plan_conversion(raw_root, store, options).space_problem()
        if problem is not None:
            raise InsufficientSpaceError(problem)
    with StoreLock(loc) as lock:
        plan = plan_conversion(raw_root, store, options)  # under the lock: the store cannot change before execution
        report = execute_plan(plan, workers=workers, scheduler=scheduler, progress=progress, lock=lock)
    report.seconds = time.perf_counter() - start
    return report


def _check_run_options(workers: int | None, scheduler: Any) -> None:
    if workers is not None and scheduler is not None:
        raise ConvertError("give either workers (a local cluster) or scheduler (an existing one), not both")
    if workers is not None and int(workers) < 1:
        raise ConvertError(f"workers must be >= 1, not {workers}")


def execute_plan(
    plan: ConvertPlan, *, workers: int | None = None, scheduler: Any = None, progress: bool = True,
    lock: StoreLock | None = None,
) -> ConvertReport:
    """Do what ``plan`` says: the preparation first (root attrs, groups, coordinates, new frame arrays,
    dropped levels, groups marked incomplete), a consolidate, then the units on the job runner (threads;
    ``workers``: a local dask cluster; ``scheduler``: an existing one), each unit marked complete by
    this process after it succeeded, and a last consolidate. ``lock``: the store lock the caller holds
    (and planned under); without one, the store lock is taken here for the run.
    """
    _check_run_options(workers, scheduler)
    if lock is None:
        with StoreLock(plan.store) as own:
            return execute_plan(plan, workers=workers, scheduler=scheduler, progress=progress, lock=own)
    start = time.perf_counter()
    loc = plan.store
    report = ConvertReport(store=plan.store_name)
    root = _prepare(plan)
    report.results.extend(plan.results)
    report.not_in_raw = list(plan.not_in_raw)
    if plan.units:  # readers use the consolidated copy: it must not keep markers the preparation just reset
        consolidate(loc)
    # big videos first, so the small units fill the gaps at the end
    tasks = sorted((u.task for u in plan.units), key=lambda t: (t.unit.kind != "video", -t.n_timesteps))
    kill_after = int(os.environ.get(KILL_AFTER_UNITS_ENV, "0") or 0)
    marked = 0

    def on_result(outcome: JobOutcome[Task, UnitResult]) -> None:
        nonlocal marked
        task = outcome.job
        # run_task never raises: a failed job is a unit whose worker died (or a job that never ran)
        result = outcome.result if outcome.ok else UnitResult(
            task.unit, "failed", f"{task.source}: dask task failed: {outcome.error}")
        lock.check()  # a writer that lost its store lock stops here, before marking anything
        if result.status == "done":
            _mark_complete(root, task)
            marked += 1
            if kill_after and marked >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        report.results.append(result)

    # threads: at most 4 units at once (default_threads); run_task(task, advance) counts frames as written
    run_jobs(
        tasks, run_task, workers=workers, scheduler=scheduler, threads=default_threads(), on_result=on_result,
        progress=progress, desc="converting", frames_of=_video_frames, frames_done=_frames_written,
        jobs_label="units", live_progress=True, name="convert",
    )
    if plan.level_plans:
        from .downscale import _mark_level_complete

        for lp in plan.level_plans:  # a level is complete once every camera's images and alpha are (verified first)
            lock.check()
            _mark_level_complete(root[lp.seq_path], lp)
    consolidate(loc)
    report.seconds = time.perf_counter() - start
    return report


@dataclass(frozen=True)
class _SVFRSelection:
    name: str
    participants: tuple[int, ...]
    sequences: dict[int, tuple[str, ...]]


def check_selection(
    raw_root: Path, names: list[str], participants: Sequence[int] | None, sequences: Sequence[str] | None
) -> None:
    """Refuse a selection naming what the benchmarks or the raw folder do not have.

    Every selected participant must belong to one of the benchmarks ``names`` and have its folder in
    ``raw_root``; every selected sequence must exist in one of them and be present in the raw folder
    for at least one selected participant. Raises :class:`SelectionError` naming what was asked for
    and the valid (present) choices.
    """
    benches = [bm.get_benchmark(n) for n in names if n != bm.SVFR]
    if bm.SVFR in names:  # SVFR as a Benchmark-like view: its participants, no sequence groups to select
        benches.append(_SVFRSelection(bm.SVFR, bm.SVFR_PARTICIPANTS, {p: () for p in bm.SVFR_PARTICIPANTS}))
    for p in participants or ():
        try:
            p = int(p)
        except (TypeError, ValueError):
            raise SelectionError(f"participant {p!r}: expected an integer id") from None
        homes = [b for b in benches if p in b.participants]
        if not homes:
            raise SelectionError(
                f"participant {p} is not in {' or '.join(names)}: expected one of "
                f"{', '.join(str(x) for b in benches for x in b.participants)}"
            )
        if not any((raw_root / b.name / bm.participant_dir(p)).is_dir() for b in homes):
            present = [f"{b.name}/{bm.participant_dir(x)}" for b in benches for x in select_participants(raw_root, b.name, None)]
            raise SelectionError(
                f"participant {p} is not in the raw folder: {raw_root / homes[0].name / bm.participant_dir(p)} not found "
                f"(download it first); present: {', '.join(present) or 'none'}"
            )
    for s in sequences or ():
        if not any(s in seqs for b in benches for seqs in b.sequences.values()):
            raise SelectionError(f"sequence {s!r} is in no selected benchmark ({', '.join(names)})")
        on_disk = {
            f"{bm.participant_dir(p)}/{q}" for b in benches for p in select_participants(raw_root, b.name, participants)
            for q in b.sequences[p] if (raw_root / b.name / bm.sequence_dir(p, q)).is_dir()
        }
        if not any(key.endswith(f"/{s}") for key in on_disk):
            who = f"participant(s) {', '.join(str(int(p)) for p in participants)}" if participants else "any participant"
            raise SelectionError(
                f"sequence {s!r} is not in the raw folder {raw_root} for {who}; present: {', '.join(sorted(on_disk)) or 'none'}"
            )

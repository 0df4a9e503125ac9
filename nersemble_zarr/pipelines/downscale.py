"""Downscaled levels (½, ¼, …) of a store's images and alpha maps, computed chunk-parallel with dask.

Level ``f`` of a sequence lives in its child group ``level_<f>/`` (:func:`schema.level_group_name`):
``images (camera, timestep, height_<f>, width_<f>, rgb) uint8``, ``alpha (camera, timestep,
height_<f>, width_<f>) uint8`` and ``intrinsics (camera, k_row, k_col) float64``, sharded like the
full-resolution arrays (one frame per inner chunk) and encoded with the same image codec (a JPEG
store gets JPEG levels; alpha is always lossless). Group attrs record ``factor``, ``scale`` (1/f),
the method and ``complete`` (written last).

The math (area average, intrinsics scaling) is :mod:`nersemble_zarr.imaging`; this module writes it into the store.

Resume, and why a resumed level is correct: a level is *prepared* in a fixed order (group, images, alpha,
intrinsics, and last the group attrs ``factor``/``scale``/``height``/``width``/``source``/``method``, which mark it
prepared). A run first verifies each level against what it must hold (:func:`_level_problems`: attrs, array
shapes/dtypes/shards/dims/attrs, intrinsics values); a level with any problem, even one marked complete (as an
older version's resume could leave it), is unmarked, deleted and prepared again. Completion markers come last,
each written by the driver only after verifying the level again: a camera joins ``complete_cameras`` of the
level's images and alpha once all its shards are written; the group's ``complete`` is set after all cameras;
then metadata is reconsolidated. A failure at any step therefore leaves either a level a rerun redoes or one
whose markers are true. A rerun skips complete cameras and verified complete levels. Run one ``downscale`` per
store at a time (the store lock enforces it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core import schema
from ..core.benchmark import BENCHMARK_NAMES, get_benchmark
from ..core.errors import NersembleZarrError, SelectionError
from ..imaging import area_average, level_shape, scale_intrinsics
from ..jobs.runner import JobOutcome, run_jobs
from ..read.resolver import member
from ..storage.markers import (
    INCOMPLETE,
    complete_cameras,
    consolidate,
    has_complete_cameras,
    is_complete,
    mark_cameras_complete,
    mark_complete,
    unmark,
    unmark_cameras,
)

METHOD = (
    "area average over factor x factor blocks, mean rounded half up; sizes rounded down "
    "(trailing H mod factor rows / W mod factor columns dropped); intrinsics in the pixel-centre convention"
)


class DownscaleError(NersembleZarrError):
    """A level cannot be written (bad factor, source frames incomplete, store not writable)."""


# ---------------------------------------------------------------------------------------------
# Writing levels into a store
# ---------------------------------------------------------------------------------------------


@dataclass
class DownscaleReport:
    """What a :func:`downscale_store` run did.

    ``written``: level paths completed by this run; ``skipped``: levels already complete (and verified);
    ``redone``: ``"<level path>: <what was wrong>"`` for levels marked complete whose group, attrs,
    intrinsics or arrays were missing or wrong (written again from scratch); ``not_ready``: sequences whose
    full-resolution frames are not all converted; ``frames``: frames downscaled; ``seconds``: wall time.
    """

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    redone: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Unit:
    """One task: one shard (camera × timestep run) of one array of one level."""

    level_path: str
    array: str
    camera: int
    t0: int
    t1: int
    factor: int
    seq_path: str  # the full-resolution sequence group the shard is read from


def _shard_task(zstore: Any, unit: _Unit) -> int:
    """Read one stored shard, area-average it and write the level's shard whole; returns its timesteps."""
    import zarr

    src = zarr.open_array(zstore, path=f"{unit.seq_path}/{unit.array}", mode="r", zarr_format=3)
    dst = zarr.open_array(zstore, path=f"{unit.level_path}/{unit.array}", mode="r+", zarr_format=3).with_config(schema.WRITE_CONFIG)
    block = src[unit.camera : unit.camera + 1, unit.t0 : unit.t1]
    dst[unit.camera : unit.camera + 1, unit.t0 : unit.t1] = area_average(block, unit.factor, axes=(2, 3))
    return unit.t1 - unit.t0


def _writable_store(location: Any) -> Any:
    """A writable zarr store for a :class:`~nersemble_zarr.storage.location.StoreLocation` that must already hold a store folder."""
    if location.is_local and not os.path.isdir(location.url):
        raise DownscaleError(f"no store at {location}: expected a Zarr v3 store folder written by 'nersemble-zarr convert'")
    return location.zarr_store()


# --- what a level must hold -------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from a ``zarr.json`` (tuples become lists), for comparing attrs."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class _LevelPlan:
    """Everything level ``factor`` of one sequence must hold: the state a level is verified against.

    ``intrinsics``: ``(camera, 3, 3) float64`` in pixels, the calibration's K of each of ``cameras`` (the
    sequence's ``camera`` coordinate, in order) scaled by :func:`scale_intrinsics`.
    """

    seq_path: str
    factor: int
    cameras: tuple[str, ...]
    n_timesteps: int
    height: int
    width: int
    shard_timesteps: int
    codec: schema.ImageCodec
    intrinsics: np.ndarray = field(compare=False)

    @property
    def name(self) -> str:
        return schema.level_group_name(self.factor)

    @property
    def path(self) -> str:
        return f"{self.seq_path}/{self.name}"

    def group_attrs(self) -> dict[str, Any]:
        """The level group's attrs; written last in preparation, so they mark a prepared level."""
        return {
            "factor": int(self.factor), "scale": 1.0 / self.factor, "height": self.height, "width": self.width,
            "method": METHOD, "source": self.seq_path, **INCOMPLETE,
        }

    def array_spec(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(create_array kwargs, attrs)`` of the level's ``images`` or ``alpha``."""
        hd, wd = schema.level_dims(self.factor)
        n_cam, n_t, h, w, s = len(self.cameras), self.n_timesteps, self.height, self.width, self.shard_timesteps
        source = f"{self.seq_path}/{name}"
        if name == schema.IMAGES:
            kw = schema.images_array_kwargs(n_cam, n_t, h, w, self.codec, shard_timesteps=s)
            kw["dimension_names"] = (schema.CAMERA, schema.TIMESTEP, hd, wd, "rgb")
            attrs = {**schema.image_attrs(self.codec, source),
                     "description": f"RGB frames area-averaged by {self.factor} from {source}"}
        else:
            kw = schema.alpha_array_kwargs(n_cam, n_t, h, w, shard_timesteps=s)
            kw["dimension_names"] = (schema.CAMERA, schema.TIMESTEP, hd, wd)
            attrs = {**schema.alpha_attrs(source),
                     "description": f"alpha maps area-averaged by {self.factor} from {source}"}
        return kw, attrs

    def intrinsics_attrs(self) -> dict[str, Any]:
        return {
            "description": f"camera matrix K for level {self.factor} (scale 1/{self.factor}), pixel-centre convention",
            "units": "pixels",
        }


def _plan_level(root: Any, b: str, p: int, s: str, factor: int) -> _LevelPlan:
    """What level ``factor`` of sequence ``(b, p, s)`` must hold, from the sequence and its calibration."""
    seq_path = schema.sequence_group(b, p, s)
    seq = root[seq_path]
    src_img = seq[schema.IMAGES]
    _, n_t, height, width, _ = src_img.shape
    h, w = level_shape(height, width, factor)
    if h < 1 or w < 1:
        raise DownscaleError(f"{seq_path}: frames of {width}x{height} (width x height) cannot be downscaled by {factor}")
    cameras = tuple(str(c) for c in seq[schema.CAMERA][:])
    calib_path = schema.calibration_group(b, p)
    calib = root[calib_path]
    serials = [str(x) for x in member(calib, schema.CAMERA)[:]]
    missing = [c for c in cameras if c not in serials]
    if missing:
        raise DownscaleError(
            f"{calib_path}: no intrinsics for camera(s) {', '.join(missing)} of {seq_path}; rerun 'nersemble-zarr "
            f"convert' for participant {p}"
        )
    k_full = calib[schema.INTRINSICS][:]
    k_level = np.stack([scale_intrinsics(k_full[serials.index(c)], factor) for c in cameras])
    return _LevelPlan(
        seq_path=seq_path, factor=int(factor), cameras=cameras, n_timesteps=int(n_t), height=h, width=w,
        shard_timesteps=int((src_img.shards or src_img.chunks)[1]),
        codec=schema.ImageCodec.from_attrs(src_img.attrs.get("codec", {})), intrinsics=k_level,
    )


def _open_member(group: Any, name: str) -> Any | None:
    """``group[name]``, or None when ``group`` is None, or the member is absent or its metadata does not load."""
    if group is None:
        return None
    try:
        return group[name]
    except (KeyError, ValueError, OSError, NersembleZarrError):
        return None


def _level_problems(seq: Any, plan: _LevelPlan) -> list[str]:
    """What is missing or wrong in level ``plan`` of ``seq`` (empty: the level is prepared as planned).

    Checks the group and its attrs (factor, scale, size, source, method), ``images`` and ``alpha``
    (shape, dtype, shard layout, dims, attrs) and ``intrinsics`` (shape and values); completion markers
    are not looked at. Reads metadata and the small intrinsics array only.
    """
    import zarr

    level = _open_member(seq, plan.name)
    if not isinstance(level, zarr.Group):
        return [f"no level group {plan.name}"]
    problems = []
    attrs = dict(level.attrs)
    for key, want in plan.group_attrs().items():
        if key == schema.COMPLETE_ATTR:
            continue
        if key not in attrs:
            problems.append(f"group attr {key!r} missing")
        elif _jsonable(attrs[key]) != _jsonable(want) and key != "method":
            problems.append(f"group attr {key}={attrs[key]!r}, expected {want!r}")
    for name in (schema.IMAGES, schema.ALPHA):
        kw, want_attrs = plan.array_spec(name)
        arr = _open_member(level, name)
        if not isinstance(arr, zarr.Array):
            problems.append(f"array {name} missing")
            continue
        if arr.shape != tuple(kw["shape"]) or arr.dtype != np.dtype(kw["dtype"]):
            problems.append(f"{name} is {arr.dtype} {arr.shape}, expected {kw['dtype']} {tuple(kw['shape'])}")
        elif (arr.shards or arr.chunks) != tuple(kw["shards"]):
            problems.append(f"{name} shards are {arr.shards or arr.chunks}, expected {tuple(kw['shards'])}")
        if tuple(arr.metadata.dimension_names or ()) != tuple(kw["dimension_names"]):
            problems.append(f"{name} dims are {arr.metadata.dimension_names}, expected {kw['dimension_names']}")
        got_attrs = dict(arr.attrs)
        for key, want in want_attrs.items():
            if key != schema.COMPLETE_CAMERAS_ATTR and _jsonable(got_attrs.get(key)) != _jsonable(want):
                problems.append(f"{name} attr {key!r} is {got_attrs.get(key)!r}, expected {want!r}")
                break
    k_arr = _open_member(level, schema.INTRINSICS)
    if not isinstance(k_arr, zarr.Array):
        problems.append(f"array {schema.INTRINSICS} missing")
    elif k_arr.shape != plan.intrinsics.shape:
        problems.append(f"{schema.INTRINSICS} has shape {k_arr.shape}, expected {plan.intrinsics.shape}")
    else:
        try:
            values = k_arr[:]
        except Exception as e:  # a missing or damaged chunk: the guard's or zarr's error, either way not usable
            problems.append(f"{schema.INTRINSICS} does not read ({type(e).__name__}: {e})")
        else:
            if not np.array_equal(values, plan.intrinsics):
                problems.append(f"{schema.INTRINSICS} values differ from the calibration scaled by 1/{plan.factor}")
        if any(_jsonable(k_arr.attrs.get(k)) != _jsonable(v) for k, v in plan.intrinsics_attrs().items()):
            problems.append(f"{schema.INTRINSICS} attrs missing")
    return problems


# --- preparing a level: each step one store write; the group attrs (the "prepared" mark) last ----------


def _unmark_level(seq: Any, plan: _LevelPlan) -> None:
    """Drop the level's marks before anything of it is deleted: its group attrs (prepared and complete, one
    write of its ``zarr.json``), then the ``complete_cameras`` of its images and alpha; members whose metadata
    does not load (nothing in them can be trusted, and they would break consolidation) are deleted. A run
    killed while deleting or recreating leaves a level that no reader takes as complete and the next run redoes.
    """
    import zarr

    level = _open_member(seq, plan.name)
    if not isinstance(level, zarr.Group):
        del seq[plan.name]  # absent: nothing to do; unreadable group metadata: nothing of it can be trusted
        return
    unmark(level, drop_other_attrs=True)
    for name in (schema.IMAGES, schema.ALPHA, schema.INTRINSICS):
        arr = _open_member(level, name)
        if arr is None:
            del level[name]  # absent: nothing happens
        elif name != schema.INTRINSICS:
            unmark_cameras(arr)


def _has_markers(level: Any) -> bool:
    """Whether ``level`` (a group, or None) carries a completion marker a reader would trust."""
    import zarr

    if not isinstance(level, zarr.Group):
        return False
    if is_complete(level):
        return True
    for name in (schema.IMAGES, schema.ALPHA):
        arr = _open_member(level, name)
        if isinstance(arr, zarr.Array) and has_complete_cameras(arr):
            return True
    return False


def _create_level_group(seq: Any, plan: _LevelPlan) -> None:
    """Delete whatever the level folder holds and create the empty group."""
    seq.create_group(plan.name, overwrite=True, attributes=dict(INCOMPLETE))


def _create_images(seq: Any, plan: _LevelPlan) -> None:
    kw, attrs = plan.array_spec(schema.IMAGES)
    seq[plan.name].create_array(schema.IMAGES, overwrite=True, attributes=attrs, **kw)


def _create_alpha(seq: Any, plan: _LevelPlan) -> None:
    kw, attrs = plan.array_spec(schema.ALPHA)
    seq[plan.name].create_array(schema.ALPHA, overwrite=True, attributes=attrs, **kw)


def _create_intrinsics(seq: Any, plan: _LevelPlan) -> None:
    k_level = plan.intrinsics
    seq[plan.name].create_array(
        schema.INTRINSICS, shape=k_level.shape, dtype="float64", chunks=k_level.shape, overwrite=True,
        **schema.chunk_codecs(),
        dimension_names=(schema.CAMERA,) + schema.INTRINSICS_DIMS[1:], attributes=plan.intrinsics_attrs(),
    )


def _write_intrinsics(seq: Any, plan: _LevelPlan) -> None:
    seq[plan.name][schema.INTRINSICS][:] = plan.intrinsics


def _mark_level_prepared(seq: Any, plan: _LevelPlan) -> None:
    seq[plan.name].attrs.put(plan.group_attrs())


#: A level's preparation, in order. A failure anywhere leaves the level without its prepared mark (the
#: group attrs, written by the last step), so the next run sees problems and runs all steps again.
_PREPARATION_STEPS: tuple[Callable[[Any, _LevelPlan], None], ...] = (
    _unmark_level, _create_level_group, _create_images, _create_alpha, _create_intrinsics, _write_intrinsics,
    _mark_level_prepared,
)


def _prepare_level(seq: Any, plan: _LevelPlan) -> None:
    """Write level ``plan`` afresh (group, arrays, intrinsics, attrs) and verify what was written."""
    for step in _PREPARATION_STEPS:
        step(seq, plan)
    problems = _level_problems(seq, plan)
    if problems:
        raise DownscaleError(f"{plan.path}: the store does not hold what was just written: {'; '.join(problems)}")


# --- completion markers: written last, after verifying the level ------------------------------------------


def _verified_level(seq: Any, plan: _LevelPlan, what: str) -> Any:
    problems = _level_problems(seq, plan)
    if problems:
        raise DownscaleError(
            f"{plan.path}: not marking {what} complete: {'; '.join(problems)} (changed by another writer?); "
            f"rerun the same command to redo the level"
        )
    return seq[plan.name]


def _mark_camera_complete(seq: Any, plan: _LevelPlan, serial: str) -> None:
    """Add ``serial`` to ``complete_cameras`` of the level's images and alpha, once the level verifies."""
    level = _verified_level(seq, plan, f"camera {serial}")
    for name in (schema.IMAGES, schema.ALPHA):
        mark_cameras_complete(level[name], [serial])


def _level_done(level: Any, plan: _LevelPlan) -> bool:
    return all(set(plan.cameras) <= set(complete_cameras(level[n])) for n in (schema.IMAGES, schema.ALPHA))


def _mark_level_complete(seq: Any, plan: _LevelPlan) -> bool:
    """Set the level's ``complete`` if it verifies and every camera is complete; returns whether it was set."""
    level = _verified_level(seq, plan, "the level")
    if not _level_done(level, plan):
        return False
    mark_complete(level)
    return True


def _consolidated_root(zstore: Any) -> Any | None:
    """The store's root as its consolidated metadata describes it (what readers see), or None without one."""
    import zarr

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=True)
    except (KeyError, ValueError, OSError, NersembleZarrError, zarr.errors.GroupNotFoundError):
        return None
    return root


def _consolidated_says_complete(zstore: Any, level_paths: list[str]) -> bool:
    """Whether the store's consolidated metadata lists every one of ``level_paths`` as complete."""
    if not level_paths:
        return True
    root = _consolidated_root(zstore)
    if root is None:
        return False
    for path in level_paths:
        level = _open_member(root, path)
        if level is None or not is_complete(level):
            return False
    return True


# --- selection ------------------------------------------------------------------------------------------


def _names(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _select_sequences(
    root: Any, store: Any, benchmarks: Sequence[str] | None, participants: Iterable[int] | None,
    sequences: Iterable[str] | None,
) -> list[tuple[str, int, str]]:
    """The ``(benchmark, participant, sequence)`` with video in the store that the selection names.

    Raises :class:`SelectionError` naming the selection and the valid choices when a selected benchmark,
    participant or sequence is not in the store, or when the selection as a whole matches no sequence with
    video frames. ``None`` selects everything.
    """
    present = [b for b in BENCHMARK_NAMES if b in set(root.group_keys())]
    if benchmarks is not None:
        benchmarks = list(benchmarks)
        for b in benchmarks:
            if b not in BENCHMARK_NAMES:
                raise SelectionError(f"unknown benchmark {b!r}: expected one of {_names(BENCHMARK_NAMES)}")
        absent = [b for b in benchmarks if b not in present]
        if absent or not benchmarks:
            raise SelectionError(
                f"benchmark selection {_names(benchmarks)} matches nothing in {store}: it holds {_names(present)}"
            )
    chosen = present if benchmarks is None else [b for b in present if b in benchmarks]
    people = {b: sorted(int(x) for x in root[b].group_keys() if x.isdigit()) for b in chosen}
    where = f"{store}" + ("" if benchmarks is None else f" (benchmark {_names(chosen)})")
    held_people = "; ".join(f"{b}: {_names(ps)}" for b, ps in people.items()) or "no participants"
    if participants is not None:
        participants = list(participants)
        try:
            wanted = [int(p) for p in participants]
        except (TypeError, ValueError):
            raise SelectionError(f"participants must be integers, not {participants!r}") from None
        absent_p = [p for p in wanted if not any(p in ps for ps in people.values())]
        if absent_p or not wanted:
            raise SelectionError(
                f"participant selection {_names(participants)} matches nothing in {where}: "
                f"participant(s) {_names(absent_p)} not there; it holds {held_people}"
            )
        people = {b: [p for p in ps if p in wanted] for b, ps in people.items()}
    seqs = {(b, p): sorted(s for s in root[schema.participant_group(b, p)].group_keys() if s != schema.CALIBRATION)
            for b, ps in people.items() for p in ps}
    if sequences is not None:
        sequences = [str(s) for s in sequences]
        held = sorted({s for ss in seqs.values() for s in ss})
        absent_s = [s for s in sequences if s not in held]
        if absent_s or not sequences:
            who = "" if participants is None else f" for participant(s) {_names(participants)}"
            raise SelectionError(
                f"sequence selection {_names(sequences)} matches nothing in {where}{who}: sequence(s) "
                f"{_names(absent_s)} not there; valid sequences: {_names(held)}"
            )
    found = []
    for (b, p), ss in seqs.items():
        for s in ss:
            if (sequences is None or s in sequences) and \
                    schema.IMAGES in root[schema.sequence_group(b, p, s)].array_keys():
                found.append((b, p, s))
    if not found and (benchmarks is not None or participants is not None or sequences is not None):
        with_video = [f"{b}/{p}/{s}" for (b, p), ss in seqs.items() for s in ss
                      if schema.IMAGES in root[schema.sequence_group(b, p, s)].array_keys()]
        raise SelectionError(
            f"the selection (benchmarks {_names(benchmarks or ['all'])}, participants "
            f"{_names(participants or ['all'])}, sequences {_names(sequences or ['all'])}) matches no sequence "
            f"with video frames in {store}; sequences with video there: {_names(with_video)}"
        )
    return found


def _source_complete(seq: Any) -> set[str]:
    """Serials whose full-resolution images and alpha are completely converted."""
    done = [set(complete_cameras(seq[name])) for name in (schema.IMAGES, schema.ALPHA)]
    return done[0] & done[1]


def downscale_store(
    store: Any,
    factors: Sequence[int],
    *,
    benchmarks: Sequence[str] | None = None,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | bool = True,
) -> DownscaleReport:
    """Write level ``f`` for every factor in ``factors`` of every converted sequence with video.

    Each task reads one stored shard (one camera × up to S frames) of ``images`` or ``alpha``,
    area-averages it and writes the level's shard whole; tasks run through :func:`~nersemble_zarr.jobs.runner.run_jobs`:
    ``threads`` threads here (default one per core; ``threads=1``: one task at a time in this thread), or
    ``workers`` local worker processes, or the existing dask cluster at ``scheduler`` (``tcp://`` address;
    its workers must reach the store). The first failed task stops the run (its error is raised; a rerun
    resumes). ``progress``: True for a bar on stderr, or a callback ``(done, total)`` in frames.

    Resume: a level is prepared (group, arrays, intrinsics, then its attrs) in full or not at all: a level
    whose group attrs, intrinsics or arrays are missing or wrong is deleted and prepared again, even if it is
    marked complete (it is then listed in ``redone``). Completion markers are written by this driver last,
    each after verifying the level: a camera's ``complete_cameras`` entry once all its shards are written,
    the level's ``complete`` once every camera is; metadata is reconsolidated at the end. Sequences with
    cameras whose full-resolution frames are not completely converted are reported in ``not_ready``; their
    complete cameras are downscaled, and the level is marked complete only once every camera is.

    ``benchmarks``/``participants``/``sequences`` select (None: all). A selected benchmark, participant or
    sequence that is not in the store, or a selection matching no sequence with video, raises
    :class:`~nersemble_zarr.core.errors.SelectionError` naming it and the valid choices, before anything is written.
    """
    from zarr.abc.store import Store

    for f in factors:
        if int(f) != f or f < 2:
            raise DownscaleError(f"--factor must be an integer >= 2 (2 = half resolution), not {f!r}")
    factors = sorted({int(f) for f in factors})
    check_lock: Callable[[], None] = lambda: None
    with contextlib.ExitStack() as stack:
        if isinstance(store, Store):
            zstore = store
        else:
            from ..storage.lock import StoreLock
            from ..storage.location import StoreLocation

            location = StoreLocation.parse(store, storage_options)
            zstore = _writable_store(location)
            # one writer at a time: a convert or another downscale of the same store is refused
            check_lock = stack.enter_context(StoreLock(location, operation="downscale")).check
        report = _downscale_locked(zstore, factors, benchmarks, participants, sequences, workers, scheduler, threads,
                                   progress, store, check_lock)
    return report


def _downscale_locked(
    zstore: Any, factors: list[int], benchmarks: Sequence[str] | None, participants: Iterable[int] | None,
    sequences: Iterable[str] | None, workers: int | None, scheduler: Any, threads: int | None,
    progress: Callable[[int, int], None] | bool, store: Any, check_lock: Callable[[], None] = lambda: None,
) -> DownscaleReport:
    """``check_lock`` raises when this writer lost the store lock: called before every marker is written."""
    import zarr

    try:
        root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise DownscaleError(f"{store} is not a Zarr v3 store written by 'nersemble-zarr convert'") from None
    report = DownscaleReport()
    found = _select_sequences(root, store, benchmarks, participants, sequences)

    units: list[_Unit] = []
    levels: dict[str, tuple[Any, _LevelPlan]] = {}
    pending: dict[tuple[str, int], int] = {}  # (level path, camera index) -> shards left
    consolidated = None  # the consolidated view of the root, read on first need
    for b, p, s in found:
        seq_path = schema.sequence_group(b, p, s)
        seq = root[seq_path]
        ready = _source_complete(seq)
        if len(ready) < seq[schema.CAMERA].shape[0]:
            report.not_ready.append(seq_path)  # its complete cameras are still downscaled
        if not ready:
            continue
        for f in factors:
            plan = _plan_level(root, b, p, s, f)
            problems = _level_problems(seq, plan)
            level = _open_member(seq, plan.name)
            marked = isinstance(level, zarr.Group) and is_complete(level)
            if marked and not problems:
                if _level_done(level, plan):
                    report.skipped.append(plan.path)
                    continue
                unmark(level)  # a camera was unmarked (e.g. by check --repair)
            if problems:
                if marked:  # damaged (e.g. by a run of an older version)
                    report.redone.append(f"{plan.path}: marked complete but {'; '.join(problems)}")
                if consolidated is None:
                    consolidated = _consolidated_root(zstore)
                if _has_markers(level) or _has_markers(_open_member(consolidated, plan.path)):
                    # readers (consolidated metadata) must stop trusting it before anything of it is deleted
                    _unmark_level(seq, plan)
                    consolidate(zstore)
                    consolidated = _consolidated_root(zstore)
                _prepare_level(seq, plan)
            levels[plan.path] = (seq, plan)
            level = seq[plan.name]
            src = seq[schema.IMAGES]
            runs = schema.shard_runs(src.shape[1], (src.shards or src.chunks)[1])
            done = {n: set(complete_cameras(level[n])) for n in (schema.IMAGES, schema.ALPHA)}
            for c, serial in enumerate(plan.cameras):  # camera by camera, so cameras complete (and resume) early
                if serial not in ready or (serial in done[schema.IMAGES] and serial in done[schema.ALPHA]):
                    continue
                for t0, t1 in runs:
                    for name in (schema.IMAGES, schema.ALPHA):
                        units.append(_Unit(plan.path, name, c, t0, t1, f, seq_path))
                        pending[(plan.path, c)] = pending.get((plan.path, c), 0) + 1

    state = {"frames": 0}

    def on_result(outcome: JobOutcome[_Unit, int]) -> None:
        if not outcome.ok:  # the first failure stops the run: queued shards are dropped, a rerun resumes
            raise outcome.exception if outcome.exception is not None else DownscaleError(str(outcome.error))
        u = outcome.job
        pending[(u.level_path, u.camera)] -= 1
        if pending[(u.level_path, u.camera)] == 0:
            seq, plan = levels[u.level_path]
            check_lock()
            _mark_camera_complete(seq, plan, plan.cameras[u.camera])
        if u.array == schema.IMAGES:
            state["frames"] += outcome.result

    start = time.perf_counter()
    run_jobs(
        units, functools.partial(_shard_task, zstore), workers=workers, scheduler=scheduler, threads=threads,
        on_result=on_result, progress=progress, desc="downscale",
        frames_of=lambda u: u.t1 - u.t0 if u.array == schema.IMAGES else 0, name="downscale",
    )
    for level_path, (seq, plan) in levels.items():
        check_lock()
        if _mark_level_complete(seq, plan):
            report.written.append(level_path)
    # also when every level was skipped: a run killed after its markers but before consolidating left the
    # consolidated metadata behind them
    if levels or not _consolidated_says_complete(zstore, report.skipped):
        consolidate(zstore)
    report.frames = state["frames"]
    report.seconds = time.perf_counter() - start
    return report

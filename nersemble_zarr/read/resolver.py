"""The one sequence resolver: every reader (xarray, data managers, ``FrameDataset``) resolves a sequence here.

``resolve_sequence(root, store, benchmark, participant, sequence, cameras=..., level=..., resize=...)``
decides, once and for all three facades:

- **cameras** (the completeness rule): ``cameras=None`` → every camera whose frames are completely
  written (images *and* alpha list it in their ``complete_cameras`` marker); cameras that are not are
  left out with an :class:`IncompleteStoreWarning` naming them; no complete camera at all →
  :class:`StoreReadError`. Cameras asked for by name must be stored (else an error naming them and the
  stored ones) and complete (else an error naming them: never fill values, never a silent drop).
- **level**: ``level=f`` / ``scale=1/f`` reads the stored level group when it is complete for the
  chosen cameras; otherwise ``resize=True`` area-averages full frames on read, else an error;
- **calibration** of the chosen cameras at that level (``intrinsics`` scaled with
  :func:`~nersemble_zarr.imaging.scale_intrinsics`), timesteps, the complete tracking groups and the
  point-cloud offsets (CSR);
- **integrity**: the root is opened through the guarded store (consolidated metadata checked), every
  group used has its member arrays' metadata checked, every array is read through
  :class:`~nersemble_zarr.storage.integrity.GuardedArray`;
- **store format**: stores of format 1 (calibration dim ``serial``, tracking and FLAME-mesh dim ``frame``,
  int32 tracking frames) are read with the current names (``camera``, ``timestep``, int64): this module is
  the one place that maps them (:func:`stored_name`, :func:`read_timesteps`, :func:`current_names`), so every
  reader, ``check``, ``verify``, ``downscale`` and ``flame`` open both formats alike.

The result, :class:`ResolvedSequence`, is plain data (picklable: no zarr handles); its arrays are
opened from a root group the caller passes (each process opens its own root).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store

from ..core import schema
from ..core.benchmark import get_benchmark, participant_dir
from ..core.errors import NersembleZarrError, SelectionError
from ..imaging import level_factor, scale_intrinsics
from ..storage import codecs as _codecs  # noqa: F401  (registers the JPEG codec for stores that use it)
from ..storage.integrity import GuardedArray, check_arrays, check_root, guard_store, guarded, read, reading, store_name
from ..storage.location import StoreLocation
from ..storage.markers import complete_cameras, is_complete

StoreLike = str | os.PathLike | Store


class StoreReadError(NersembleZarrError):
    """The store lacks what was asked for (group, level, camera, timestep) or is incompletely written.

    The data managers' ``DataManagerError`` and ``FrameDataset``'s ``FrameDatasetError`` subclass it."""


class IncompleteStoreWarning(UserWarning):
    """Some cameras (or the tracking / point clouds) of a sequence are not completely converted and are
    left out of what is returned."""


# ---------------------------------------------------------------------------------------------
# Store handles (through the integrity guard)
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


def describe_store(store: StoreLike) -> str:
    """A short name of ``store`` for messages (its path/URL, or the store object's type)."""
    return os.fspath(store) if isinstance(store, (str, os.PathLike)) else type(store).__name__


def open_root(store: StoreLike, *, storage_options: dict[str, Any] | None = None) -> zarr.Group:
    """The store's root ``zarr.Group`` (read-only, through its consolidated metadata, behind the integrity guard).

    Raises :class:`~nersemble_zarr.core.errors.StoreIntegrityError` when the root ``zarr.json`` is corrupt or
    lacks consolidated metadata, :class:`StoreReadError` when there is no store or its format is newer than
    this package reads (:func:`store_format`)."""
    zstore = as_zarr_store(store, storage_options=storage_options)
    try:
        if not check_root(zstore):
            raise FileNotFoundError("no zarr.json at its root")
        with reading(store_name(zstore), "zarr.json"):
            root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=True)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise StoreReadError(f"{describe_store(store)} is not a Zarr v3 group: {e}") from None
    store_format(root)
    return root


# ---------------------------------------------------------------------------------------------
# Store formats: the one place format-1 names are mapped to the current ones
# ---------------------------------------------------------------------------------------------


def store_format(root: zarr.Group) -> int:
    """The store's ``format_version`` (root attribute ``nersemble_zarr``; 1 when absent). A format newer than
    this package reads raises :class:`StoreReadError` (update nersemble-zarr)."""
    info = root.attrs.get(schema.ROOT_ATTR)
    version = int(info.get("format_version", 1)) if isinstance(info, dict) else 1
    if version > schema.FORMAT_VERSION:
        raise StoreReadError(
            f"{store_name(root.store)}: store format {version} was written by a newer nersemble-zarr; this version "
            f"reads formats {', '.join(map(str, schema.READABLE_FORMAT_VERSIONS))}: update nersemble-zarr"
        )
    return version


def stored_name(names: zarr.Group | Iterable[str], name: str) -> str:
    """The name the array ``name`` (a current name: ``camera``, ``timestep``) has among ``names`` (a group's
    members, or the names of a metadata listing): ``name`` itself, or its format-1 name
    (:data:`~nersemble_zarr.core.schema.FORMAT_1_NAMES`: calibration ``serial``, tracking / FLAME ``frame``)
    when only that is there; ``name`` when neither is (the caller's lookup then fails naming it)."""
    present = set(names.array_keys()) if isinstance(names, zarr.Group) else set(names)
    if name in present:
        return name
    for old, new in schema.FORMAT_1_NAMES.items():
        if new == name and old in present:
            return old
    return name


def member(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]`` under its current or format-1 name (see :func:`stored_name`); ``name`` may be a path below
    ``group`` (``"nvs/388/GLASSES/camera"``). Only the member itself is opened (the group is not listed: a damaged
    sibling does not make it fail); absent under both names raises ``KeyError`` naming ``name``."""
    try:
        return group[name]
    except KeyError:
        parent, _, leaf = name.rpartition("/")
        for old, new in schema.FORMAT_1_NAMES.items():
            if new == leaf:
                try:
                    return group[f"{parent}/{old}" if parent else old]
                except KeyError:
                    pass
        raise


def as_timesteps(values: Any) -> np.ndarray:
    """Timestep values as every reader returns them: int64 when integers (format-1 tracking frames are int32),
    unchanged otherwise (a tracking npz with non-integer frames, e.g. NaN, is stored as it is)."""
    values = np.asarray(values)
    return values.astype(np.int64) if values.dtype.kind in "iu" else values


def read_timesteps(group: zarr.Group) -> np.ndarray:
    """The ``timestep`` coordinate of a tracking / FLAME-mesh group (format 1: ``frame``), through the integrity
    guard, as :func:`as_timesteps` returns it."""
    return as_timesteps(read(member(group, schema.TIMESTEP)))


def current_names(ds: Any) -> Any:
    """An ``xarray.Dataset`` of one group with the current dim/coordinate names and int64 timesteps: format-1
    ``serial`` → ``camera``, ``frame`` → ``timestep`` (:data:`~nersemble_zarr.core.schema.FORMAT_1_NAMES`); a
    current dataset is returned unchanged. Lazy: renames metadata only."""
    present = set(ds.dims) | set(ds.variables)
    renames = {old: new for old, new in schema.FORMAT_1_NAMES.items() if old in present and new not in present}
    if renames:
        ds = ds.rename(renames)
    if schema.TIMESTEP in ds.coords and ds[schema.TIMESTEP].dtype.kind in "iu" and ds[schema.TIMESTEP].dtype != np.int64:
        ds = ds.assign_coords({schema.TIMESTEP: ds[schema.TIMESTEP].astype(np.int64)})
    return ds


def has_group(root: zarr.Group, path: str) -> bool:
    """True if ``root[path]`` exists and is a group."""
    try:
        node = root[path]
    except KeyError:
        return False
    return isinstance(node, zarr.Group)


def sequences_in(root: zarr.Group, benchmark: str, participant: int) -> list[str]:
    """Sequences of one participant present in the store, in the benchmark's official order."""
    path = schema.participant_group(benchmark, participant)
    if not has_group(root, path):
        return []
    present = {name for name, _ in root[path].groups() if name != schema.CALIBRATION}
    official = get_benchmark(benchmark).sequences.get(int(participant), ())
    return [s for s in official if s in present] + sorted(present - set(official))


# ---------------------------------------------------------------------------------------------
# Argument checks (one definition each)
# ---------------------------------------------------------------------------------------------


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


def check_timesteps(timesteps: Any, argument: str = "timesteps") -> Any:
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


def timestep_positions(stored: Sequence[int], timesteps: Any = None, every_nth_frame: int | None = None) -> list[int]:
    """Positions in ``stored`` (ascending timestep values) of the timesteps selected by value — an int, a
    slice ``[start, stop)`` with an optional step, or a sequence (checked with :func:`check_timesteps`) —
    then every ``every_nth_frame``-th of them."""
    positions = list(range(len(stored)))
    if timesteps is not None:
        timesteps = check_timesteps(timesteps)
    if isinstance(timesteps, slice):
        positions = [i for i in positions if (timesteps.start is None or stored[i] >= timesteps.start)
                     and (timesteps.stop is None or stored[i] < timesteps.stop)][:: timesteps.step or 1]
    elif timesteps is not None:
        wanted = {timesteps} if isinstance(timesteps, int) else set(timesteps)
        positions = [i for i in positions if stored[i] in wanted]
    return positions[:: check_every_nth(every_nth_frame) or 1]


# ---------------------------------------------------------------------------------------------
# Completeness
# ---------------------------------------------------------------------------------------------


def complete_serials(group: zarr.Group, cameras: Sequence[str]) -> list[str]:
    """Serials among ``cameras`` whose frames are completely written in ``group``'s images and alpha
    (both list them in their ``complete_cameras`` marker), in ``cameras`` order."""
    done = None
    for name in (schema.IMAGES, schema.ALPHA):
        if name in group.array_keys():
            listed = set(complete_cameras(group[name]))
            done = listed if done is None else done & listed
    return [c for c in cameras if done is not None and c in done]


def choose_cameras(
    stored: Sequence[str],
    complete: Sequence[str],
    wanted: str | Iterable[str] | None,
    where: str,
    *,
    error: type[Exception] = StoreReadError,
    only_present: bool = False,
    stacklevel: int = 3,
) -> list[str]:
    """The completeness rule, the one place it is written.

    ``wanted=None``: the ``complete`` cameras (in ``stored`` order); the stored but incomplete ones are left
    out with an :class:`IncompleteStoreWarning` naming them; none complete raises ``error``.
    ``wanted`` given: those cameras in the order asked; one not stored raises ``error`` naming it (with
    ``only_present=True`` it is skipped instead: a filter applied to many sequences); one stored but not
    complete raises ``error`` naming it.
    """
    stored_set, complete_set = set(stored), set(complete)
    with_video = ", ".join(c for c in stored if c in complete_set) or "none"
    if wanted is None:
        chosen = [c for c in stored if c in complete_set]
        if not chosen:
            raise error(
                f"{where}: no camera's frames are completely written (no completion markers); "
                f"rerun 'nersemble-zarr convert' to finish the store"
            )
        left_out = [c for c in stored if c not in complete_set]
        if left_out:
            warnings.warn(
                f"{where}: cameras {', '.join(left_out)} are not completely converted and are left out "
                f"(download their videos and rerun 'nersemble-zarr convert')",
                IncompleteStoreWarning,
                stacklevel=stacklevel,
            )
        return chosen
    asked = [wanted] if isinstance(wanted, str) else [str(c) for c in wanted]
    absent = [c for c in asked if c not in stored_set]
    if absent and not only_present:
        raise error(f"{where} has no video of camera {', '.join(absent)}: cameras with video are {with_video}")
    asked = [c for c in asked if c in stored_set]
    unfinished = [c for c in asked if c not in complete_set]
    if unfinished:
        raise error(
            f"{where} has no video of camera {', '.join(unfinished)}: its frames are not completely converted "
            f"(download its videos and rerun 'nersemble-zarr convert'); cameras with video are {with_video}"
        )
    return list(dict.fromkeys(asked))


# ---------------------------------------------------------------------------------------------
# The resolved sequence
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Cameras of a rig, in one order: ``serials``; ``world_2_cam (C, 4, 4) float64`` (OpenCV, world →
    camera, metres); ``intrinsics (C, 3, 3) float64`` in pixels of the frames at ``level``; ``split (C,)``
    ``"train"``/``"hold_out"`` strings."""

    serials: tuple[str, ...]
    world_2_cam: np.ndarray
    intrinsics: np.ndarray
    split: tuple[str, ...]
    level: int = 1

    def select(self, serials: Sequence[str], where: str, *, error: type[Exception] = StoreReadError) -> "Calibration":
        """These cameras' rows, in ``serials`` order; one without calibration raises ``error`` naming it."""
        missing = [c for c in serials if c not in self.serials]
        if missing:
            raise error(f"{where}: cameras {', '.join(missing)} have no calibration in the store")
        rows = [self.serials.index(c) for c in serials]
        return Calibration(tuple(serials), self.world_2_cam[rows], self.intrinsics[rows],
                           tuple(self.split[r] for r in rows), self.level)

    def at_level(self, factor: int) -> "Calibration":
        """The same cameras with ``intrinsics`` for frames downscaled by ``factor`` from full resolution."""
        if factor == 1:
            return self
        k = np.stack([scale_intrinsics(m, factor) for m in self.intrinsics]) if len(self.serials) else self.intrinsics
        return Calibration(self.serials, self.world_2_cam, k, self.split, factor)


def calibration_path(root: zarr.Group, benchmark: str, participant: int, *, error: type[Exception] = StoreReadError) -> str:
    """Path of a participant's calibration group; raises ``error`` when the store has none."""
    path = schema.calibration_group(benchmark, participant)
    if not has_group(root, path):
        raise error(
            f"{benchmark} participant {participant_dir(participant)} has no calibration in the store "
            f"(expected group {path}/): convert it first"
        )
    return path


def read_calibration(
    root: zarr.Group, benchmark: str, participant: int, *, error: type[Exception] = StoreReadError
) -> Calibration:
    """All cameras of a participant's rig at full resolution, read through the integrity guard."""
    group = root[calibration_path(root, benchmark, participant, error=error)]
    check_arrays(group)
    serials = tuple(str(s) for s in read(member(group, schema.CAMERA)))
    split = tuple(str(s) for s in read(group[schema.SPLIT])) if schema.SPLIT in group.array_keys() else ("",) * len(serials)
    return Calibration(serials, np.asarray(read(group[schema.WORLD_2_CAM]), dtype=np.float64),
                       np.asarray(read(group[schema.INTRINSICS]), dtype=np.float64), split)


@dataclass
class ResolvedSequence:
    """One sequence as every reader sees it, resolved once (plain data: picklable, no zarr handles).

    ``cameras`` are the chosen (complete) cameras, ``complete_cameras`` every completely converted one;
    ``camera_positions`` their indices in the stored
    arrays (``stored_cameras`` order); ``timesteps`` the stored video frame indices (ascending);
    ``frames_path`` the group holding ``images``/``alpha`` at ``level`` (``None`` for a tracking-only
    sequence), ``resize`` > 1 when full frames are area-averaged by that factor on read;
    ``calibration`` of ``cameras`` at ``level`` (tracking-only: the evaluated serials);
    ``groups`` the complete optional groups (``tracking_v1``, ``tracking_v2``, ``pointclouds``) by name
    → path; ``incomplete`` the unfinished ones by name → what they are; ``cloud_timestep`` /
    ``cloud_offsets`` the point clouds' CSR index (``offsets[i]:offsets[i+1]`` are cloud ``i``'s rows).
    """

    benchmark: str
    participant: int
    sequence: str
    where: str
    path: str
    level: int
    stored_cameras: tuple[str, ...]
    cameras: tuple[str, ...]
    camera_positions: tuple[int, ...]
    timesteps: tuple[int, ...]
    frames_path: str | None
    resize: int
    calibration: Calibration
    complete_cameras: tuple[str, ...] = ()
    groups: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)
    cloud_timestep: np.ndarray | None = None
    cloud_offsets: np.ndarray | None = None

    @property
    def has_video(self) -> bool:
        """True if the sequence has frames (mono test sequences have tracking only)."""
        return self.frames_path is not None

    def frames(self, root: zarr.Group, name: str) -> GuardedArray:
        """``images`` or ``alpha`` at this level, ``(camera, timestep, h, w[, rgb]) uint8`` over *all*
        ``stored_cameras`` (index with ``camera_positions``), read through the integrity guard (errors name
        the camera serial and timesteps). ``root``: the store's root group opened in this process."""
        if self.frames_path is None:
            raise StoreReadError(f"{self.where} has no video in the store (tracking only)")
        labels = {schema.CAMERA: list(self.stored_cameras), schema.TIMESTEP: list(self.timesteps)}
        return guarded(root[self.frames_path][name], labels)

    def camera_position(self, serial: str, *, error: type[Exception] = StoreReadError) -> int:
        """Index of camera ``serial`` in the stored arrays; a camera that is not chosen raises ``error``
        by the completeness rule (absent, or not completely converted)."""
        serial = str(serial)
        if serial not in self.cameras:
            choose_cameras(self.stored_cameras, self.complete_cameras, [serial], self.where, error=error)
            raise error(f"{self.where}: camera {serial} was not chosen (cameras {', '.join(self.cameras)})")
        return self.stored_cameras.index(serial)

    def timestep_position(self, timestep: Any, *, error: type[Exception] = StoreReadError, serial: str = "") -> int:
        """Index of ``timestep`` (checked with :func:`check_timestep`) in the stored timesteps; one not
        stored raises ``error`` naming it and the stored range."""
        t = check_timestep(timestep)
        try:
            return self.timesteps.index(t)
        except ValueError:
            camera = f" camera {serial}" if serial else ""
            first, last = (self.timesteps[0], self.timesteps[-1]) if self.timesteps else ("-", "-")
            raise error(
                f"{self.where}{camera} has no timestep {t}: timesteps are {first}..{last} ({len(self.timesteps)} frames)"
            ) from None

    def group(
        self, name: str, what: str, *, required: bool, error: type[Exception] = StoreReadError, stacklevel: int = 3
    ) -> str | None:
        """Path of the optional group ``name`` (tracking, point clouds) if it is complete.

        ``required=True`` (data managers: the caller asked for it): absent or not complete raises ``error``.
        ``required=False`` (xarray: everything there is): absent → ``None``; not complete → ``None`` with an
        :class:`IncompleteStoreWarning`."""
        if name in self.groups:
            return self.groups[name]
        if name in self.incomplete:
            message = (f"{self.where}: {what} ({name}/) are not completely converted"
                       + ("" if required else " and are left out") + " (rerun 'nersemble-zarr convert' to finish them)")
            if required:
                raise error(message)
            warnings.warn(message, IncompleteStoreWarning, stacklevel=stacklevel)
            return None
        if required:
            raise error(f"{self.where} has no {what} in the store")
        return None

    def open_group(
        self, root: zarr.Group, name: str, what: str, *, required: bool, error: type[Exception] = StoreReadError
    ) -> zarr.Group | None:
        """The optional group ``name`` (see :meth:`group`) opened from ``root`` with its member arrays'
        metadata checked by the integrity guard (checked when used, so a reader of frames never pays for it)."""
        path = self.group(name, what, required=required, error=error, stacklevel=4)
        if path is None:
            return None
        group = root[path]
        check_arrays(group)
        return group

    def cloud_rows(self, timestep: Any, *, error: type[Exception] = StoreReadError) -> slice:
        """Rows of the point cloud at ``timestep`` in the CSR arrays (``points``, ``colors``, ``normals``)."""
        t = check_timestep(timestep)
        self.group(schema.POINTCLOUDS, "point clouds", required=True, error=error)
        stamps = self.cloud_timestep if self.cloud_timestep is not None else np.zeros(0, dtype=np.int64)
        hits = np.flatnonzero(stamps == t)
        if hits.size == 0:
            raise error(f"{self.where} has no point cloud at timestep {t}: stored timesteps {stamps.tolist()}")
        i = int(hits[0])
        return slice(int(self.cloud_offsets[i]), int(self.cloud_offsets[i + 1]))


_OPTIONAL_GROUPS = {
    **{schema.tracking_group_name(v): f"FLAME tracking v{v}" for v in (1, 2)},
    schema.POINTCLOUDS: "point clouds",
}


def resolve_sequence(
    root: zarr.Group,
    benchmark: str,
    participant: int,
    sequence: str,
    *,
    cameras: str | Iterable[str] | None = None,
    level: int | None = None,
    scale: float | None = None,
    resize: bool = False,
    error: type[Exception] = StoreReadError,
    only_present: bool = False,
    stacklevel: int = 3,
) -> ResolvedSequence:
    """Resolve one sequence of the store opened as ``root`` (see the module docstring for the rules).

    ``error`` is the exception class raised (each facade keeps its public error type; all subclass
    :class:`StoreReadError`); ``only_present=True`` skips asked-for cameras the sequence does not store
    (``FrameDataset``'s camera filter over many sequences); ``stacklevel`` points warnings at the caller."""
    factor = level_of(level, scale)
    bench = get_benchmark(benchmark)
    where = f"{benchmark} participant {participant_dir(participant)} sequence {sequence!r}"
    path = schema.sequence_group(benchmark, participant, sequence)
    if not has_group(root, path):
        present = sequences_in(root, benchmark, participant)
        raise error(f"{where} is not in the store (expected group {path}/); present: {', '.join(present) or 'none'}")
    seq = root[path]
    check_arrays(seq)
    calibration = read_calibration(root, benchmark, participant, error=error)

    stored: list[str] = []
    complete: list[str] = []
    chosen: list[str] = []
    timesteps: list[int] = []
    frames_path, on_read = None, 1
    # a levels-only store (convert --levels 2 --no-full): frames at the stored levels, no full resolution
    levels_only = [] if schema.IMAGES in seq.array_keys() else sorted(
        int(n[len("level_"):]) for n in seq.group_keys()
        if n.startswith("level_") and n[len("level_"):].isdigit() and schema.IMAGES in seq[n].array_keys()
    )
    if levels_only and factor not in levels_only:
        asked = "full resolution is" if factor == 1 else f"level {factor} (scale 1/{factor}) is"
        raise error(
            f"{where}: {asked} not stored: this store holds only level(s) {', '.join(map(str, levels_only))} (converted "
            f"with --levels --no-full); ask for level={levels_only[0]} (scale=1/{levels_only[0]})"
        )
    if schema.IMAGES in seq.array_keys() or levels_only:
        stored = [str(c) for c in read(seq[schema.CAMERA])]
        timesteps = [int(t) for t in read(seq[schema.TIMESTEP])]
        complete = complete_serials(seq[schema.level_group_name(factor)] if levels_only else seq, stored)
        chosen = choose_cameras(stored, complete, cameras, where, error=error,
                                only_present=only_present, stacklevel=stacklevel + 1)
        frames_path = path
        if factor != 1 and chosen:
            name = schema.level_group_name(factor)
            if name in seq.group_keys() and complete_serials(seq[name], chosen) == chosen:
                frames_path = f"{path}/{name}"
                check_arrays(seq[name])
            elif resize and not levels_only:
                on_read = factor
            else:
                raise error(
                    f"{where}: level {factor} (scale 1/{factor}) is not stored; run 'nersemble-zarr downscale STORE "
                    f"--factor {factor}' or pass resize=True to area-average on the fly"
                )
        rig = chosen
    else:
        rig = list(bench.evaluation_serials) if cameras is None else ([cameras] if isinstance(cameras, str) else list(cameras))

    groups, incomplete = {}, {}
    for name, what in _OPTIONAL_GROUPS.items():
        if name in seq.group_keys():
            if is_complete(seq[name]):
                groups[name] = f"{path}/{name}"
            else:
                incomplete[name] = what
    cloud_timestep = cloud_offsets = None
    if schema.POINTCLOUDS in groups:
        clouds = seq[schema.POINTCLOUDS]
        check_arrays(clouds, [schema.CLOUD_TIMESTEP, schema.OFFSETS])
        cloud_timestep = np.asarray(read(clouds[schema.CLOUD_TIMESTEP]))
        cloud_offsets = np.asarray(read(clouds[schema.OFFSETS]), dtype=np.int64)

    return ResolvedSequence(
        benchmark=benchmark,
        participant=int(participant),
        sequence=sequence,
        where=where,
        path=path,
        level=factor,
        stored_cameras=tuple(stored),
        cameras=tuple(chosen),
        camera_positions=tuple(stored.index(c) for c in chosen),
        timesteps=tuple(timesteps),
        frames_path=frames_path,
        resize=on_read,
        calibration=calibration.select(rig, where, error=error).at_level(factor),
        complete_cameras=tuple(complete),
        groups=groups,
        incomplete=incomplete,
        cloud_timestep=cloud_timestep,
        cloud_offsets=cloud_offsets,
    )


__all__ = [
    "Calibration",
    "IncompleteStoreWarning",
    "ResolvedSequence",
    "StoreLike",
    "StoreReadError",
    "as_timesteps",
    "as_zarr_store",
    "calibration_path",
    "check_every_nth",
    "check_timestep",
    "check_timesteps",
    "choose_cameras",
    "complete_serials",
    "current_names",
    "describe_store",
    "has_group",
    "level_of",
    "member",
    "open_root",
    "read_calibration",
    "read_timesteps",
    "resolve_sequence",
    "sequences_in",
    "store_format",
    "stored_name",
    "timestep_positions",
]

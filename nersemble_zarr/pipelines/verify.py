"""Re-decode the raw benchmark files and compare them with a converted store.

Exact equality for everything lossless (frames, alpha maps, point clouds, tracking, calibration,
metadata; NaN equals NaN, as convert stores it); PSNR against a threshold for JPEG-encoded images.
A user's proof that the store is faithful to the sources.

Verify never crashes on a damaged store: a missing or corrupt object (checksum error, truncated
shard, unreadable ``zarr.json``, an array of the wrong shape) becomes a failed row of the report
naming the item and the object, and the other items are still compared.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..core import benchmark as bm
from ..core import schema
from ..imaging import area_average
from ..core.errors import NersembleZarrError, SelectionError
from ..jobs.runner import run_jobs
from ..storage.integrity import guard_store, guarded
from ..read.resolver import member
from ..storage.location import StoreLocation
from ..storage.markers import complete_cameras, is_complete


class VerifyError(NersembleZarrError):
    """The store or raw folder cannot be verified at all (missing, not a nersemble-zarr store)."""


@dataclass
class Check:
    """One compared item: ``name`` (e.g. ``nvs/388/GLASSES images cam_222200036``), ``ok``, details."""

    name: str
    ok: bool
    message: str = ""
    frames: int = 0
    min_psnr: float | None = None


@dataclass
class VerifyReport:
    """Every check of one verify run; ``ok`` when all passed."""

    store: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and bool(self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        frames = sum(c.frames for c in self.checks)
        psnrs = [c.min_psnr for c in self.checks if c.min_psnr is not None]
        lines = [
            f"{self.store}: {len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed, "
            f"{frames} frames compared in {self.seconds:.1f} s"
            + (f"; lowest JPEG PSNR {min(psnrs):.2f} dB" if psnrs else "")
        ]
        if not self.checks:
            lines.append("nothing to compare: the raw folder and the selection share no data")
        lines += [f"  MISMATCH {c.name}: {c.message}" for c in self.failed]
        return "\n".join(lines)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays (``inf`` when equal)."""
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


#: Longest message quoted from an unexpected decode error (zarr/numcodecs/json messages can be long).
_MAX_ERROR_CHARS = 300


def _problem(obj: str, e: Exception) -> str:
    """One line for a failure reading ``obj`` (a store object path or a raw file)."""
    if isinstance(e, NersembleZarrError):  # ours (RawFormatError, StoreIntegrityError …) already name the object
        return str(e)
    text = " ".join(f"{type(e).__name__}: {e}".split())
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + " …"
    return f"{obj}: unreadable or damaged in the store ({text})"


def _arr(g: zarr.Group, name: str) -> Any:
    """The array ``name`` of ``g`` (a format-1 store's ``serial``/``frame`` for ``camera``/``timestep``) behind the
    integrity guard: a read of a missing or corrupt object raises
    :class:`~nersemble_zarr.core.errors.StoreIntegrityError` naming the store, the array and the object."""
    return guarded(member(g, name))


def _node(root: zarr.Group, path: str) -> Any | None:
    """The group/array at ``path``, None when absent; a damaged node (corrupt ``zarr.json``) raises."""
    try:
        return root[path]
    except KeyError:
        return None


def _verify_video(
    store: str, arr_path: str, root: zarr.Group, cams: list[str], camera_index: int, path: Path, name: str, alpha: bool,
    min_psnr: float,
) -> Check:
    """Compare camera ``camera_index`` (of the serials ``cams``) of the array ``arr_path`` with the video
    ``path``; never raises (a damaged store or raw file is a failed :class:`Check`)."""
    try:
        return _compare_video(root, arr_path, cams, camera_index, path, name, alpha, min_psnr)
    except Exception as e:  # noqa: BLE001  a damaged store or raw file is a row of the report, not a crash
        return Check(name, False, _problem(f"{store}/{arr_path}", e))


def _verify_video_job(args: tuple, *, min_psnr: float) -> Check:
    """One job: :func:`_verify_video` of one argument tuple of :func:`_video_checks`."""
    return _verify_video(*args, min_psnr=min_psnr)


def _compare_video(
    root: zarr.Group, arr_path: str, cams: list[str], camera_index: int, path: Path, name: str, alpha: bool, min_psnr: float
) -> Check:
    from ..raw import iter_frames

    arr = root[arr_path]
    if not isinstance(arr, zarr.Array):
        return Check(name, False, f"{arr_path} is a group in the store, expected an array")
    lossless = schema.ImageCodec.from_attrs(arr.attrs.get("codec", {})).lossless  # lossless and compact tiers
    serial = name.rsplit("cam_", 1)[-1]
    if serial not in complete_cameras(arr):
        return Check(name, False, "not completely written (run convert again to finish it)")
    if camera_index >= arr.shape[0]:
        return Check(name, False, f"{arr_path} has {arr.shape[0]} cameras, camera {serial} is number {camera_index + 1}")
    n_t = arr.shape[1]
    runs = schema.shard_runs(n_t, arr.shards[1] if arr.shards else arr.chunks[1])
    frames_of = guarded(arr, {schema.CAMERA: cams, schema.TIMESTEP: range(n_t)})
    worst = float("inf")
    t = 0
    r = 0
    stored = None
    try:
        factor = int(arr_path.split("/level_")[1].split("/")[0]) if "/level_" in arr_path else 1
        for frame in iter_frames(path, alpha=alpha):
            if factor > 1:  # a level converted with --levels: the decoded frame area-averaged (imaging.area_average)
                frame = area_average(frame, factor, axes=(0, 1))
            if t >= n_t:
                return Check(name, False, f"{path} has more than the {n_t} frames in the store", frames=t)
            if t == 0 and tuple(arr.shape[2:]) != frame.shape:
                return Check(
                    name, False, f"frame shape {tuple(arr.shape[2:])} in the store ({arr_path}) differs from {frame.shape} of {path}"
                )
            t0, t1 = runs[r]
            if t == t0:
                try:
                    stored = frames_of[camera_index, t0:t1]
                except Exception as e:  # noqa: BLE001  a missing or corrupt shard: name the timesteps it holds
                    return Check(name, False, f"timesteps {t0}..{t1 - 1}: {_problem(arr_path, e)}", frames=t)
            got = stored[t - t0]
            if lossless:
                if not np.array_equal(got, frame):
                    diff = int(np.count_nonzero(got != frame))
                    return Check(name, False, f"timestep {t}: {diff} values differ from {path}", frames=t)
            else:
                p = psnr(got, frame)
                worst = min(worst, p)
                if p < min_psnr:
                    return Check(name, False, f"timestep {t}: PSNR {p:.2f} dB < {min_psnr} dB against {path}", frames=t, min_psnr=worst)
            t += 1
            if t == t1:
                r += 1
    except NersembleZarrError as e:
        return Check(name, False, str(e), frames=t)
    if t != n_t:
        return Check(name, False, f"{path} has {t} frames, the store {n_t}", frames=t)
    return Check(name, True, frames=t, min_psnr=None if lossless else worst)


def nan_equal(a: Any, b: Any) -> bool:
    """Same shape and values, NaN equal to NaN (convert stores NaN/inf of a ``.pcd`` or tracking as they are)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


_equal = nan_equal


def _verify_group(root: zarr.Group, path: str, name: str, compare: Any, store: str = "") -> Check:
    """Compare the group ``path`` with ``compare(group) -> problem | None``; never raises."""
    try:
        g = _node(root, path)
        if g is None:
            return Check(name, False, f"{path} is missing from the store")
        if not isinstance(g, zarr.Group):
            return Check(name, False, f"{path} is an array in the store, expected a group")
        if not is_complete(g):
            return Check(name, False, f"{path} is not completely written (run convert again to finish it)")
        problem = compare(g)
    except Exception as e:  # noqa: BLE001  a damaged store or raw file is a row of the report, not a crash
        return Check(name, False, _problem(f"{store}/{path}" if store else path, e))
    return Check(name, problem is None, problem or "")


def _compare_calibration(source: Path, benchmark: str):
    def compare(g: zarr.Group) -> str | None:
        from ..raw import read_camera_params

        params = read_camera_params(source)
        serials = [str(s) for s in _arr(g, schema.CAMERA)[:]]
        if serials != list(bm.SERIALS):
            return f"serials {serials} differ from the rig's {list(bm.SERIALS)}"
        w2c, k, split = _arr(g, schema.WORLD_2_CAM)[:], _arr(g, schema.INTRINSICS)[:], [str(s) for s in _arr(g, schema.SPLIT)[:]]
        for i, s in enumerate(serials):
            if not _equal(w2c[i], np.asarray(params.world_2_cam[s], np.float64)):
                return f"world_2_cam of camera {s} differs from {source}"
            if not _equal(k[i], np.asarray(params.intrinsics[s], np.float64)):
                return f"intrinsics of camera {s} differ from {source}"
            if split[i] != bm.get_benchmark(benchmark).split_of(s):
                return f"split of camera {s} is {split[i]!r}, expected {bm.get_benchmark(benchmark).split_of(s)!r}"
        return None

    return compare


def _compare_tracking(source: Path):
    def compare(g: zarr.Group) -> str | None:
        from ..raw import read_tracking

        t = read_tracking(source)
        if not _equal(_arr(g, schema.TIMESTEP)[:], np.asarray(t.frames).reshape(-1)):
            return f"frames differ from {source}"
        for name in schema.TRACKING_VARIABLES:
            src = np.asarray(getattr(t, name))
            got = np.asarray(_arr(g, name)[()])
            if got.size != src.size:
                return f"{name}: shape {got.shape} in the store, {src.shape} in {source}"
            if not _equal(got.reshape(src.shape), src):
                return f"{name} differs from {source}"
        return None

    return compare


def _compare_svfr(folder: Path, participant: int, min_psnr: float):
    """SVFR: the stored keys are the raw folder's, each image equal to its decoded ``rgb.png`` (lossless tiers;
    a lossy one: PSNR >= ``min_psnr``)."""
    def compare(g: zarr.Group) -> str | None:
        from .convert_svfr import read_svfr_png, svfr_keys_on_disk

        keys = svfr_keys_on_disk(folder, participant)
        stored = [str(v) for v in _arr(g, schema.SVFR_IMAGE)[:]]
        if stored != [k.download_folder() for k in keys]:
            return f"images {stored} in the store, {[k.download_folder() for k in keys]} in {folder}"
        images = _arr(g, schema.IMAGES)
        lossless = schema.ImageCodec.from_attrs(images.attrs.get("codec") or {}).lossless
        for i, k in enumerate(keys):
            src = read_svfr_png(folder / k.download_folder() / bm.SVFR_IMAGE_FILE)
            got = images[i]
            if lossless and not np.array_equal(got, src):
                return f"image {k.download_folder()} differs from {folder / k.download_folder() / bm.SVFR_IMAGE_FILE}"
            if not lossless and psnr(got, src) < min_psnr:
                return f"image {k.download_folder()}: PSNR {psnr(got, src):.1f} dB < {min_psnr} dB"
        return None

    return compare


def _compare_pointclouds(folder: Path, benchmark: str, participant: int, sequence: str):
    def compare(g: zarr.Group) -> str | None:
        from .convert import pointcloud_files
        from ..raw import read_pcd

        clouds = pointcloud_files(folder, benchmark, participant, sequence)
        ts = _arr(g, schema.CLOUD_TIMESTEP)[:]
        if list(ts) != [t for t, _ in clouds]:
            return f"cloud timesteps {list(ts)} differ from the .pcd files in {folder}"
        offsets = _arr(g, schema.OFFSETS)[:]
        points, colors = _arr(g, schema.POINTS), _arr(g, schema.COLORS)
        if offsets.shape != (len(clouds) + 1,) or int(offsets[-1]) != points.shape[0]:
            return (
                f"offsets {offsets.shape} do not index {len(clouds)} clouds of the {points.shape[0]} points "
                f"in the store"
            )
        normals = _arr(g, schema.NORMALS) if schema.NORMALS in g.array_keys() else None
        for i, (_, path) in enumerate(clouds):
            c = read_pcd(path)
            a, b = int(offsets[i]), int(offsets[i + 1])
            if not _equal(points[a:b], c.points) or not _equal(colors[a:b], c.colors):
                return f"points or colors differ from {path}"
            if (c.normals is None) != (normals is None):
                return f"normals: {path} has {'none' if c.normals is None else 'them'}, the store {'none' if normals is None else 'has them'}"
            if normals is not None and not _equal(normals[a:b], c.normals):
                return f"normals differ from {path}"
        return None

    return compare


def _video_checks(root: zarr.Group, store: str, name: str, bench_dir: Path, p: int, s: str, report: "VerifyReport") -> list[tuple]:
    """``_verify_video`` argument tuples for every camera of a sequence's images and alpha; problems
    found on the way (missing array, unreadable camera coordinate) go to ``report``."""
    seq_name = f"{name}/{bm.participant_dir(p)}/{s}"
    seq_path = schema.sequence_group(name, p, s)
    out = []
    for asset, arr_name in (("images", schema.IMAGES), ("alpha_maps", schema.ALPHA)):
        arr_path = f"{seq_path}/{arr_name}"
        try:
            seq_node = _node(root, seq_path)
            levels = [] if _node(root, arr_path) is not None or seq_node is None else sorted(  # a levels-only store
                n for n in seq_node.group_keys() if n.startswith("level_") and _node(root, f"{seq_path}/{n}/{arr_name}") is not None)
            if _node(root, arr_path) is None and not levels:
                report.checks.append(Check(f"{seq_name} {arr_name}", False, f"{arr_path} is missing from the store"))
                continue
            cams = [str(c) for c in _arr(root, f"{seq_path}/{schema.CAMERA}")[:]]
        except Exception as e:  # noqa: BLE001  damaged metadata: a row, not a crash
            report.checks.append(Check(f"{seq_name} {arr_name}", False, _problem(f"{store}/{arr_path}", e)))
            continue
        for level in levels or [None]:
            for i, serial in enumerate(cams):
                out.append((
                    store, f"{seq_path}/{level}/{arr_name}" if level else arr_path, root, cams, i,
                    bench_dir / bm.video_path(p, s, serial, asset),
                    f"{seq_name} {f'{level}/' if level else ''}{arr_name} cam_{serial}", asset == "alpha_maps",
                ))
    return out


def _consolidated_check(loc: StoreLocation) -> Check:
    """The root's consolidated metadata (what every reader of this package opens the store through) is there."""
    name = "store consolidated metadata"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.open_group(loc.zarr_store(read_only=True), mode="r", use_consolidated=True)
    except Exception as e:  # noqa: BLE001
        return Check(name, False, (
            f"{loc}/zarr.json: no readable consolidated metadata ({type(e).__name__}: {_first_line(e)}); readers refuse "
            "the store: rerun 'nersemble-zarr convert' on it (it consolidates at the end)"
        ))
    return Check(name, True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:_MAX_ERROR_CHARS] if text else ""


def _metadata_check(root: zarr.Group, store: str, name: str, bench_dir: Path) -> Check | None:
    """The benchmark's metadata row; None when its group is absent (reported by the caller)."""
    from ..raw import read_metadata

    path = schema.benchmark_group(name)
    try:
        bgroup = _node(root, path)
        if bgroup is None:
            return None
        meta = read_metadata(bench_dir / bm.metadata_path(), name)
        same = bgroup.attrs.get(schema.METADATA_ATTR) == meta.raw
    except Exception as e:  # noqa: BLE001
        return Check(f"{name} metadata", False, _problem(f"{store}/{path}", e))
    return Check(f"{name} metadata", same, "" if same else f"differs from {bench_dir / bm.metadata_path()}")


def verify_store(
    store: str | os.PathLike,
    raw_root: str | os.PathLike,
    *,
    benchmarks: Sequence[str] | str | None = None,
    participants: Sequence[int] | None = None,
    sequences: Sequence[str] | None = None,
    min_psnr: float = 35.0,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> VerifyReport:
    """Compare every converted item of ``store`` that ``raw_root`` also holds with its source.

    Frames are re-decoded sequentially, one video per job of :func:`~nersemble_zarr.jobs.runner.run_jobs`:
    ``threads`` videos at a time here (default: one per core, at most 4), or on ``workers`` local worker
    processes, or on the existing dask cluster at ``scheduler`` (its workers must reach the store and
    ``raw_root`` at the same paths); lossless images,
    alpha maps, clouds, tracking, calibration and metadata must match exactly (NaN equals NaN),
    JPEG images must reach ``min_psnr`` dB on every frame. Returns a :class:`VerifyReport` (``ok``,
    or failed rows naming the array, camera and timestep).

    Never raises for a damaged store or raw file: a missing shard, a checksum error, a corrupt
    ``zarr.json`` or an array of the wrong shape is a failed row naming the object, and the other
    items are still compared. Raises :class:`~nersemble_zarr.core.errors.SelectionError` (exit 2) for a
    benchmark, participant or sequence the benchmarks or the raw folder do not have, and
    :class:`VerifyError` when there is no store (or no raw benchmark folder) at all.
    """
    from ..jobs.runner import default_threads
    from .convert import check_selection, select_benchmarks, select_participants

    start = time.perf_counter()
    raw = Path(raw_root).expanduser()
    loc = StoreLocation.parse(store, storage_options)
    if not loc.exists():
        raise VerifyError(f"{loc}: no Zarr store found")
    try:
        names = select_benchmarks(raw, benchmarks)
    except SelectionError:
        raise
    except NersembleZarrError as e:
        raise VerifyError(str(e)) from None
    check_selection(raw, names, participants, sequences)
    report = VerifyReport(store=str(store))
    try:
        # behind the integrity guard: a missing chunk or shard raises instead of reading as fill values
        root = zarr.open_group(guard_store(loc.zarr_store(read_only=True), str(loc)), mode="r", use_consolidated=False)
    except Exception as e:  # noqa: BLE001  a corrupt root zarr.json: nothing else can be read
        report.checks.append(Check("store", False, _problem(f"{loc}/zarr.json", e)))
        report.seconds = time.perf_counter() - start
        return report
    where = str(loc)
    report.checks.append(_consolidated_check(loc))
    videos: list[tuple] = []
    for name in names:
        if name == bm.SVFR:
            report.checks += [_verify_group(root, schema.svfr_participant_group(p), f"svfr/{bm.participant_dir(p)} images",
                                            _compare_svfr(raw / name / bm.participant_dir(p), p, min_psnr), where)
                              for p in select_participants(raw, name, participants)]
            continue
        b = bm.get_benchmark(name)
        bench_dir = raw / name
        meta_check = _metadata_check(root, where, name, bench_dir)
        if meta_check is None:
            report.checks.append(Check(f"{name}", False, f"benchmark group {name}/ is missing from the store"))
            continue
        report.checks.append(meta_check)
        for p in select_participants(raw, name, participants):
            report.checks.append(_verify_group(
                root, schema.calibration_group(name, p), f"{name}/{bm.participant_dir(p)} calibration",
                _compare_calibration(bench_dir / bm.calibration_path(p), name), where,
            ))
            for s in b.sequences[p]:
                if (sequences and s not in sequences) or not (bench_dir / bm.sequence_dir(p, s)).is_dir():
                    continue
                seq_name = f"{name}/{bm.participant_dir(p)}/{s}"
                if s in b.video_sequences(p):
                    videos += _video_checks(root, where, name, bench_dir, p, s, report)
                if b.has_pointclouds:
                    folder = bench_dir / Path(bm.pointcloud_path(p, s, 0)).parent
                    if folder.is_dir() and any(folder.glob("*.pcd")):
                        report.checks.append(_verify_group(
                            root, schema.pointclouds_group(name, p, s), f"{seq_name} pointclouds",
                            _compare_pointclouds(folder, name, p, s), where,
                        ))
                if b.has_tracking:
                    for v in sorted(bm.TRACKING_FILES):
                        if not os.path.lexists(bench_dir / bm.tracking_path(p, s, v)):
                            continue  # optional: not downloaded, not converted
                        report.checks.append(_verify_group(
                            root, schema.tracking_group(name, p, s, v), f"{seq_name} tracking v{v}",
                            _compare_tracking(bench_dir / bm.tracking_path(p, s, v)), where,
                        ))
    outcomes = run_jobs(videos, functools.partial(_verify_video_job, min_psnr=min_psnr), workers=workers,
                        scheduler=scheduler, threads=threads or default_threads(), name="verify")
    # _verify_video never raises: a failed job is a video whose worker died
    report.checks += [o.result if o.ok else Check(o.job[-2], False, f"{o.job[0]}/{o.job[1]}: {o.error}") for o in outcomes]
    report.seconds = time.perf_counter() - start
    return report

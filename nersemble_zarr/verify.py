"""Re-decode the raw benchmark files and compare them with a converted store.

Exact equality for everything lossless (frames, alpha maps, point clouds, tracking, calibration,
metadata); PSNR against a threshold for JPEG-encoded images. A user's proof that the store is
faithful to the sources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from . import benchmark as bm
from . import schema
from .errors import NersembleZarrError
from .store_lock import StoreLocation


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


def _node(root: zarr.Group, path: str) -> Any | None:
    try:
        return root[path]
    except KeyError:
        return None


def _verify_video(arr: Any, camera_index: int, path: Path, name: str, alpha: bool, lossless: bool, min_psnr: float) -> Check:
    from .raw import iter_frames

    serial = name.rsplit("cam_", 1)[-1]
    if serial not in arr.attrs.get(schema.COMPLETE_CAMERAS_ATTR, []):
        return Check(name, False, "not completely written (run convert again to finish it)")
    n_t = arr.shape[1]
    runs = schema.shard_runs(n_t, arr.shards[1] if arr.shards else arr.chunks[1])
    worst = float("inf")
    t = 0
    r = 0
    stored = None
    try:
        for frame in iter_frames(path, alpha=alpha):
            if t >= n_t:
                return Check(name, False, f"{path} has more than the {n_t} frames in the store", frames=t)
            t0, t1 = runs[r]
            if t == t0:
                stored = arr[camera_index, t0:t1]
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


def _equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b)


def _verify_group(root: zarr.Group, path: str, name: str, compare: Any) -> Check:
    g = _node(root, path)
    if g is None:
        return Check(name, False, f"{path} is missing from the store")
    if not g.attrs.get(schema.COMPLETE_ATTR, False):
        return Check(name, False, f"{path} is not completely written (run convert again to finish it)")
    try:
        problem = compare(g)
    except NersembleZarrError as e:
        return Check(name, False, str(e))
    return Check(name, problem is None, problem or "")


def _compare_calibration(source: Path, benchmark: str):
    def compare(g: zarr.Group) -> str | None:
        from .raw import read_camera_params

        params = read_camera_params(source)
        serials = [str(s) for s in g[schema.SERIAL][:]]
        if serials != list(bm.SERIALS):
            return f"serials {serials} differ from the rig's {list(bm.SERIALS)}"
        w2c, k, split = g[schema.WORLD_2_CAM][:], g[schema.INTRINSICS][:], [str(s) for s in g[schema.SPLIT][:]]
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
        from .raw import read_tracking

        t = read_tracking(source)
        if not np.array_equal(g[schema.FRAME][:], np.asarray(t.frames).reshape(-1)):
            return f"frames differ from {source}"
        for name in schema.TRACKING_VARIABLES:
            src = np.asarray(getattr(t, name))
            got = g[name][()]
            if not np.array_equal(np.asarray(got).reshape(src.shape), src):
                return f"{name} differs from {source}"
        return None

    return compare


def _compare_pointclouds(folder: Path, benchmark: str, participant: int, sequence: str):
    def compare(g: zarr.Group) -> str | None:
        from .convert import _pcd_timesteps
        from .raw import read_pcd

        clouds = _pcd_timesteps(folder, benchmark, participant, sequence)
        ts = g[schema.CLOUD_TIMESTEP][:]
        if list(ts) != [t for t, _ in clouds]:
            return f"cloud timesteps {list(ts)} differ from the .pcd files in {folder}"
        offsets = g[schema.OFFSETS][:]
        normals = g[schema.NORMALS] if schema.NORMALS in g.array_keys() else None
        for i, (_, path) in enumerate(clouds):
            c = read_pcd(path)
            a, b = int(offsets[i]), int(offsets[i + 1])
            if not _equal(g[schema.POINTS][a:b], c.points) or not _equal(g[schema.COLORS][a:b], c.colors):
                return f"points or colors differ from {path}"
            if (c.normals is None) != (normals is None):
                return f"normals: {path} has {'none' if c.normals is None else 'them'}, the store {'none' if normals is None else 'has them'}"
            if normals is not None and not _equal(normals[a:b], c.normals):
                return f"normals differ from {path}"
        return None

    return compare


def verify_store(
    store: str | os.PathLike,
    raw_root: str | os.PathLike,
    *,
    benchmarks: Sequence[str] | str | None = None,
    participants: Sequence[int] | None = None,
    sequences: Sequence[str] | None = None,
    min_psnr: float = 35.0,
    workers: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> VerifyReport:
    """Compare every converted item of ``store`` that ``raw_root`` also holds with its source.

    Frames are re-decoded sequentially (``workers`` videos at a time, threads); lossless images,
    alpha maps, clouds, tracking, calibration and metadata must match exactly, JPEG images must
    reach ``min_psnr`` dB on every frame. Returns a :class:`VerifyReport` (``ok`` or mismatches
    naming array, camera and timestep).
    """
    from .convert import _default_threads, _selected_benchmarks, _selected_participants
    from .raw import read_metadata

    start = time.perf_counter()
    raw = Path(raw_root).expanduser()
    loc = StoreLocation.parse(store, storage_options)
    if not loc.exists():
        raise VerifyError(f"{loc}: no Zarr store found")
    root = zarr.open_group(loc.zarr_store(read_only=True), mode="r", use_consolidated=False)
    report = VerifyReport(store=str(store))
    try:
        names = _selected_benchmarks(raw, benchmarks)
    except NersembleZarrError as e:
        raise VerifyError(str(e)) from None
    videos: list[tuple[Any, int, Path, str, bool, bool]] = []
    for name in names:
        b = bm.get_benchmark(name)
        bench_dir = raw / name
        bgroup = _node(root, schema.benchmark_group(name))
        if bgroup is None:
            report.checks.append(Check(f"{name}", False, f"benchmark group {name}/ is missing from the store"))
            continue
        meta = read_metadata(bench_dir / bm.metadata_path(), name)
        report.checks.append(Check(
            f"{name} metadata", bgroup.attrs.get(schema.METADATA_ATTR) == meta.raw,
            "" if bgroup.attrs.get(schema.METADATA_ATTR) == meta.raw else f"differs from {bench_dir / bm.metadata_path()}",
        ))
        for p in _selected_participants(raw, name, participants):
            report.checks.append(_verify_group(
                root, schema.calibration_group(name, p), f"{name}/{bm.participant_dir(p)} calibration",
                _compare_calibration(bench_dir / bm.calibration_path(p), name),
            ))
            for s in b.sequences[p]:
                if (sequences and s not in sequences) or not (bench_dir / bm.sequence_dir(p, s)).is_dir():
                    continue
                seq_name = f"{name}/{bm.participant_dir(p)}/{s}"
                seq_path = schema.sequence_group(name, p, s)
                if s in b.video_sequences(p):
                    for asset, arr_name in (("images", schema.IMAGES), ("alpha_maps", schema.ALPHA)):
                        arr = _node(root, f"{seq_path}/{arr_name}")
                        if arr is None:
                            report.checks.append(Check(f"{seq_name} {arr_name}", False, "missing from the store"))
                            continue
                        cams = [str(c) for c in root[f"{seq_path}/{schema.CAMERA}"][:]]
                        lossless = schema.ImageCodec.from_attrs(arr.attrs.get("codec", {})).kind == "lossless"
                        for i, serial in enumerate(cams):
                            videos.append((
                                arr, i, bench_dir / bm.video_path(p, s, serial, asset), f"{seq_name} {arr_name} cam_{serial}",
                                asset == "alpha_maps", lossless,
                            ))
                if b.has_pointclouds:
                    folder = bench_dir / Path(bm.pointcloud_path(p, s, 0)).parent
                    if folder.is_dir() and any(folder.glob("*.pcd")):
                        report.checks.append(_verify_group(
                            root, schema.pointclouds_group(name, p, s), f"{seq_name} pointclouds",
                            _compare_pointclouds(folder, name, p, s),
                        ))
                if b.has_tracking:
                    for v in sorted(bm.TRACKING_FILES):
                        if not (bench_dir / bm.tracking_path(p, s, v)).exists():
                            continue  # optional: not downloaded, not converted
                        report.checks.append(_verify_group(
                            root, schema.tracking_group(name, p, s, v), f"{seq_name} tracking v{v}",
                            _compare_tracking(bench_dir / bm.tracking_path(p, s, v)),
                        ))
    with ThreadPoolExecutor(max_workers=workers or _default_threads()) as pool:
        report.checks += list(pool.map(lambda v: _verify_video(*v, min_psnr=min_psnr), videos))
    report.seconds = time.perf_counter() - start
    return report

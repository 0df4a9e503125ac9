"""SVFR submissions: one mesh per image and task (posed, neutral) → PLY (trimesh, binary) → one zip, crash-safe.

The submission zip of the single-view face reconstruction benchmark holds, for each of the 391 image keys
(:data:`~nersemble_zarr.core.benchmark.SVFR_IMAGE_KEYS`) and each submitted task:

- ``{pid:03d}/{sequence}_{timestep:03d}_{serial}/mesh_{posed|neutral}.ply`` (timestep padded to 3 digits,
  unlike the download folder), and
- ``…/landmarks_{posed|neutral}.npy``: the 7 NoW landmarks ``(7, 3)``, required when the mesh is not FLAME
  topology (5023 vertices as the official reader loads it: ``trimesh.Trimesh(**load_ply(f))``, which merges
  duplicate vertices and drops unreferenced ones), optional otherwise.

Posed and neutral may be submitted separately or together. :class:`SVFRSubmissionDataWriter` is the drop-in
for the official writer (``add_posed_mesh``/``add_neutral_mesh``), built on
:class:`~nersemble_zarr.submission.staging.StagedZipWriter`: each mesh is staged as a complete file before
anything is zipped, the zip appears by rename, and ``mode="a"`` continues an unfinished or finalized one.
:func:`write_svfr_submission` writes many meshes from a ``(N, V, 3)`` numpy/dask/zarr array, streaming slabs
of meshes on the job runner; :func:`find_svfr_meshes` reads such arrays from a Zarr group or ``.npz``.
Everything the validator (:mod:`~nersemble_zarr.submission.validate_svfr`) would reject is refused here.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.benchmark import (
    N_VERTICES, SVFR, SVFR_IMAGE_KEYS, SVFRImageKey, UnknownIdError, check_svfr_key, participant_dir,
)
from ..jobs.runner import run_jobs
from .staging import StagedZipWriter, SubmissionError, stage_bytes

__all__ = [
    "SVFRSubmissionDataWriter", "SVFR_TASKS", "N_NOW_LANDMARKS", "SVFRTask", "svfr_mesh_path", "svfr_landmarks_path",
    "parse_svfr_member", "as_svfr_key", "write_svfr_submission", "find_svfr_meshes", "mesh_ply_bytes",
    "load_ply_as_official", "triangle_areas", "write_svfr_tasks", "write_svfr_from",
]

SVFRTask = Literal["posed", "neutral"]
#: The two SVFR tasks, in the official order.
SVFR_TASKS: tuple[str, ...] = ("posed", "neutral")
#: NoW landmarks per mesh (the NoW convention: eye corners, nose tip, mouth corners).
N_NOW_LANDMARKS = 7
#: Meshes per slab when reading an array that has no chunking of its own along the mesh axis.
_DEFAULT_SLAB = 16
_MEMBER = re.compile(r"^(\d{3})/([^/]+)/(mesh|landmarks)_(posed|neutral)\.(ply|npy)$")


# ---------------------------------------------------------------------------------------------
# Paths and keys
# ---------------------------------------------------------------------------------------------


def svfr_mesh_path(key: SVFRImageKey, task: str) -> str:
    """``"{pid:03d}/{sequence}_{timestep:03d}_{serial}/mesh_{task}.ply"``: a mesh's path in the submission zip."""
    return f"{participant_dir(key.participant)}/{key.submission_folder()}/mesh_{task}.ply"


def svfr_landmarks_path(key: SVFRImageKey, task: str) -> str:
    """``"{pid:03d}/{sequence}_{timestep:03d}_{serial}/landmarks_{task}.npy"``: its NoW landmarks' path."""
    return f"{participant_dir(key.participant)}/{key.submission_folder()}/landmarks_{task}.npy"


def parse_svfr_member(name: str) -> tuple[SVFRImageKey, Literal["mesh", "landmarks"], str, bool] | None:
    """``"017/EMO-1-shout+laugh_156_221501007/mesh_posed.ply"`` → ``(key, "mesh", "posed", padded)``.

    ``padded`` is False when the timestep is not spelled with (at least) 3 digits as the zip scheme asks
    (``…_6_…`` instead of ``…_006_…``). None for any other name. Whether the benchmark has the key is not
    checked here.
    """
    m = _MEMBER.match(name)
    if m is None or (m.group(3) == "mesh") != (m.group(5) == "ply"):
        return None
    try:
        key = SVFRImageKey.from_folder(int(m.group(1)), m.group(2))
    except ValueError:
        return None
    padded = key.submission_folder() == m.group(2)
    return key, m.group(3), m.group(4), padded  # type: ignore[return-value]


def as_svfr_key(key: Any) -> SVFRImageKey:
    """An :class:`SVFRImageKey` from a key, a ``(participant, sequence, timestep, serial)`` tuple or a
    ``"PID/FOLDER"`` string (padded or not); raises :class:`SubmissionError` unless it is one of the 391."""
    try:
        if isinstance(key, str):
            pid, _, folder = key.strip("/").partition("/")
            key = SVFRImageKey.from_folder(int(pid), folder)
        else:
            participant, sequence, timestep, serial = key
            key = SVFRImageKey(int(participant), str(sequence), int(timestep), str(serial))
        return check_svfr_key(key)
    except (UnknownIdError, ValueError, TypeError) as e:
        raise SubmissionError(f"svfr: {e}") from None


def _label(key: SVFRImageKey, task: str) -> str:
    return f"svfr {svfr_mesh_path(key, task)}"


# ---------------------------------------------------------------------------------------------
# Mesh checks and PLY bytes (trimesh both ways)
# ---------------------------------------------------------------------------------------------


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of each triangle, ``(F,) float64`` in squared vertex units, of ``vertices (V, 3)`` and ``faces (F, 3)``."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces)]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def _check_faces(faces: Any, label: str, n_vertices: int | None) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise SubmissionError(f"{label}: expected faces of shape (F, 3) (triangles), found {faces.shape}")
    if len(faces) == 0:
        raise SubmissionError(f"{label}: the mesh has no faces")
    if not np.issubdtype(faces.dtype, np.integer):
        raise SubmissionError(f"{label}: expected integer face indices, found {faces.dtype}")
    lo, hi = int(faces.min()), int(faces.max())
    if n_vertices is not None and (lo < 0 or hi >= n_vertices):
        raise SubmissionError(
            f"{label}: face indices must lie in [0, {n_vertices - 1}] ({n_vertices} vertices), found [{lo}, {hi}]")
    return faces.astype(np.int64, copy=False)


def _check_vertices(vertices: Any, label: str) -> np.ndarray:
    vertices = np.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise SubmissionError(f"{label}: expected vertices of shape (V, 3), found {vertices.shape}")
    if len(vertices) == 0:
        raise SubmissionError(f"{label}: the mesh has no vertices")
    if not (np.issubdtype(vertices.dtype, np.floating) or np.issubdtype(vertices.dtype, np.integer)):
        raise SubmissionError(f"{label}: expected float vertex coordinates, found {vertices.dtype}")
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        raise SubmissionError(f"{label}: vertex {int(np.argmin(finite))} (of {len(finite)} ; "
                              f"{int((~finite).sum())} in all) holds NaN or inf coordinates")
    return vertices


def _check_landmarks(landmarks: Any, label: str) -> np.ndarray:
    lm = np.asarray(landmarks)
    if lm.shape != (N_NOW_LANDMARKS, 3):
        raise SubmissionError(f"{label}: NoW landmarks expected shape ({N_NOW_LANDMARKS}, 3), found {lm.shape}")
    if not np.issubdtype(lm.dtype, np.floating):
        lm = lm.astype(np.float64)
    if not np.isfinite(lm).all():
        raise SubmissionError(f"{label}: the NoW landmarks hold NaN or inf")
    return lm


def mesh_ply_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A binary little-endian PLY of the mesh as trimesh exports it (vertices float32, faces int32),
    without trimesh's processing, so vertex order and count are the caller's."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    return mesh.export(file_type="ply", encoding="binary")


def load_ply_as_official(data: bytes | Any) -> Any:
    """The mesh as the official reader loads it: ``trimesh.Trimesh(**load_ply(f))`` (with trimesh's processing:
    NaN/inf vertices removed, duplicate vertices merged, unreferenced ones dropped). ``data``: bytes or a file."""
    import trimesh
    from trimesh.exchange.ply import load_ply

    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return trimesh.Trimesh(**load_ply(f))


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _prepare_mesh(vertices: Any, faces: np.ndarray, landmarks: Any, label: str) -> tuple[bytes, bytes | None]:
    """Check one mesh and return its PLY bytes and its landmarks' npy bytes (None when not given).

    Refused (:class:`SubmissionError`): non-finite vertices, face indices out of range, a degenerate mesh
    (every triangle of zero area: all vertices equal or collinear), and a mesh that is not FLAME topology as the
    official reader loads it when no landmarks are given.
    """
    vertices = _check_vertices(vertices, label)
    faces = _check_faces(faces, label, len(vertices))
    lm = None if landmarks is None else _check_landmarks(landmarks, label)
    if not (triangle_areas(vertices, faces) > 0).any():
        raise SubmissionError(f"{label}: degenerate mesh: every one of its {len(faces)} triangles has zero area "
                              f"(all vertices equal or on one line)")
    ply = mesh_ply_bytes(vertices, faces)
    if lm is None:
        n = len(load_ply_as_official(ply).vertices)
        if n != N_VERTICES:
            how = "" if n == len(vertices) else (
                f" as the official reader loads it (of the {len(vertices)} given, trimesh merges duplicate vertices "
                f"and drops unreferenced ones)")
            raise SubmissionError(
                f"{label}: the mesh is not FLAME topology ({N_VERTICES} vertices): it has {n}{how}; pass "
                f"now_landmarks, the {N_NOW_LANDMARKS} NoW landmarks ({N_NOW_LANDMARKS}, 3) for the alignment")
    return ply, None if lm is None else _npy_bytes(lm)


def _stage_mesh(staging: Path, key: SVFRImageKey, task: str, ply: bytes, landmarks: bytes | None) -> None:
    """Stage one mesh so that a kill at any point leaves either no mesh or a mesh with its right landmarks:
    the old mesh goes first, then the landmarks are written (or removed), the mesh last."""
    mesh_file = staging / svfr_mesh_path(key, task)
    lm_file = staging / svfr_landmarks_path(key, task)
    mesh_file.unlink(missing_ok=True)
    if landmarks is None:
        lm_file.unlink(missing_ok=True)
    else:
        stage_bytes(lm_file, landmarks)
    stage_bytes(mesh_file, ply)


def _as_mesh(mesh: Any, label: str) -> tuple[Any, Any]:
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        return mesh.vertices, mesh.faces
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        return mesh[0], mesh[1]
    raise SubmissionError(f"{label}: expected a trimesh.Trimesh or a (vertices (V, 3), faces (F, 3)) pair, "
                          f"found {type(mesh).__name__}")


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------


class SVFRSubmissionDataWriter(StagedZipWriter):
    """Drop-in for the official ``SVFRSubmissionDataWriter(zip_path)``, crash-safe and resumable.

    ``with SVFRSubmissionDataWriter("svfr.zip") as w: w.add_posed_mesh(17, "EMO-1-shout+laugh", 156,
    "221501007", mesh)`` — on a clean exit the zip is finalized; on an exception or a kill nothing is written
    at the target and the staged meshes stay in ``svfr.zip.partial/`` for ``mode="a"``.

    Args:
        zip_path: The target zip (written by :meth:`finalize`, atomically).
        mode: ``"w"`` starts anew; ``"a"`` continues the unfinished submission or adds to the finalized zip.
        finalize: Whether a clean exit of the ``with`` block packs the zip.
        progress: Show a progress bar in :meth:`add_meshes`.

    Meshes are stored as binary PLY written by trimesh (float32 vertices, int32 faces, no processing: vertex
    order is kept), landmarks as ``.npy``; the zip is stored uncompressed, as the official writer's is.
    """

    def __init__(self, zip_path: str | os.PathLike, *, mode: Literal["w", "a"] = "w", finalize: bool = True,
                 progress: bool = False) -> None:
        self.progress = progress
        super().__init__(zip_path, SVFR, mode=mode, finalize=finalize, compression=zipfile.ZIP_STORED)

    def _accept_member(self, name: str) -> None:
        parsed = parse_svfr_member(name)
        if parsed is None or not parsed[3]:
            raise SubmissionError(
                f"cannot append to {self.zip_path}: it holds {name!r}, which is not an SVFR submission file "
                f"(<pid:03d>/<sequence>_<timestep:03d>_<serial>/mesh_<posed|neutral>.ply or landmarks_<task>.npy)")
        as_svfr_key(parsed[0])

    def _after_reopen(self) -> None:
        # landmarks whose mesh never arrived (killed in between): the mesh is redone with its landmarks
        for path in self.staging.rglob("landmarks_*.npy"):
            if not path.with_name(path.name.replace("landmarks_", "mesh_").replace(".npy", ".ply")).exists():
                path.unlink(missing_ok=True)

    # -- what is staged ------------------------------------------------------------------------

    def meshes(self, task: str | None = None) -> list[tuple[SVFRImageKey, str]]:
        """``(key, task)`` of every staged mesh (of ``task`` only, if given), sorted."""
        found = []
        for name in self.members():
            parsed = parse_svfr_member(name)
            if parsed is not None and parsed[1] == "mesh" and (task is None or parsed[2] == task):
                found.append((parsed[0], parsed[2]))
        return sorted(found)

    def missing(self, task: str = "posed") -> list[SVFRImageKey]:
        """The image keys that have no ``task`` mesh yet, in official order."""
        have = {k for k, _ in self.meshes(task)}
        return [k for k in SVFR_IMAGE_KEYS if k not in have]

    # -- adding meshes -------------------------------------------------------------------------

    def _key(self, participant_id: int, sequence_name: str, timestep: int, serial: str, task: str,
             overwrite: bool) -> SVFRImageKey:
        if task not in SVFR_TASKS:
            raise SubmissionError(f"svfr: task must be one of {', '.join(SVFR_TASKS)}, not {task!r}")
        key = as_svfr_key((participant_id, sequence_name, timestep, serial))
        if not overwrite and (self.staging / svfr_mesh_path(key, task)).exists():
            raise SubmissionError(f"{_label(key, task)}: the submission already holds this mesh "
                                  f"(pass overwrite=True to replace it)")
        return key

    def add_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any,
                 task: str, now_landmarks: np.ndarray | None = None, *, overwrite: bool = False) -> Path:
        """Stage one mesh of ``task`` (``"posed"`` or ``"neutral"``); returns the staged PLY's path.

        ``mesh``: a ``trimesh.Trimesh`` or ``(vertices (V, 3) float, faces (F, 3) int)``. ``now_landmarks``:
        ``(7, 3)`` float, the NoW landmarks in the mesh's coordinates; required unless the mesh is FLAME
        topology (5023 vertices as the official reader loads it). Raises :class:`SubmissionError` for an
        image key the benchmark does not have, a mesh it already holds (unless ``overwrite``), or a mesh
        the validator would reject (see :func:`_prepare_mesh`); nothing is staged then.
        """
        self._check_open()
        key = self._key(participant_id, sequence_name, timestep, serial, task, overwrite)
        label = _label(key, task)
        vertices, faces = _as_mesh(mesh, label)
        ply, lm = _prepare_mesh(vertices, faces, now_landmarks, label)
        _stage_mesh(self.staging, key, task, ply, lm)
        return self.staging / svfr_mesh_path(key, task)

    def add_posed_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any,
                       now_landmarks: np.ndarray | None = None, *, overwrite: bool = False) -> Path:
        """The official ``add_posed_mesh``: :meth:`add_mesh` with ``task="posed"``."""
        return self.add_mesh(participant_id, sequence_name, timestep, serial, mesh, "posed", now_landmarks,
                             overwrite=overwrite)

    def add_neutral_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any,
                         now_landmarks: np.ndarray | None = None, *, overwrite: bool = False) -> Path:
        """The official ``add_neutral_mesh``: :meth:`add_mesh` with ``task="neutral"``."""
        return self.add_mesh(participant_id, sequence_name, timestep, serial, mesh, "neutral", now_landmarks,
                             overwrite=overwrite)

    def add_meshes(
        self,
        vertices: Any,
        faces: Any,
        keys: Iterable[Any] | None = None,
        task: str = "posed",
        *,
        landmarks: Any = None,
        overwrite: bool = False,
        workers: int | None = None,
        scheduler: Any = None,
        threads: int | None = None,
    ) -> list[SVFRImageKey]:
        """Stage many meshes of one topology from arrays, streaming slabs of meshes on the job runner.

        Args:
            vertices: ``(N, V, 3)`` float as a numpy, dask or zarr array (an xarray DataArray through its
                ``.data``); mesh ``i`` is ``vertices[i]``. Read one slab at a time: a dask array block by
                block, a zarr array by whole stored chunks (at least 16 meshes), numpy by views.
            faces: ``(F, 3)`` int, shared by all meshes (e.g. the FLAME faces).
            keys: The image key of each mesh (:class:`SVFRImageKey`, ``(pid, sequence, timestep, serial)`` or
                ``"PID/FOLDER"``); default all 391 in official order (then ``N`` must be 391).
            task: ``"posed"`` or ``"neutral"``.
            landmarks: ``(N, 7, 3)`` NoW landmarks, required when ``V`` is not 5023.
            overwrite: Replace meshes the submission already holds (else that is an error).
            workers, scheduler, threads: Where the slabs run (:func:`~nersemble_zarr.jobs.runner.run_jobs`).

        Every key and the shapes are checked before the first mesh is written; a bad mesh stops the run with
        its own error, and meshes written before it stay staged. Returns the keys in input order.
        """
        self._check_open()
        if type(vertices).__module__.startswith("xarray.") and hasattr(vertices, "data"):
            vertices = vertices.data
        if type(landmarks).__module__.startswith("xarray.") and hasattr(landmarks, "data"):
            landmarks = landmarks.data
        shape = tuple(getattr(vertices, "shape", ()))
        if len(shape) != 3 or shape[2] != 3:
            raise SubmissionError(f"svfr {task}: expected vertices of shape (N, V, 3) (meshes, vertices, xyz), "
                                  f"found {shape or type(vertices).__name__}")
        n, n_vertices = int(shape[0]), int(shape[1])
        key_list = list(SVFR_IMAGE_KEYS) if keys is None else [as_svfr_key(k) for k in keys]
        if len(key_list) != n:
            raise SubmissionError(f"svfr {task}: {n} meshes for {len(key_list)} image keys"
                                  + (" (all 391 of the benchmark: pass keys= for fewer)" if keys is None else ""))
        if len(set(key_list)) != n:
            dup = next(k for k in key_list if key_list.count(k) > 1)
            raise SubmissionError(f"svfr {task}: image key {dup.participant:03d}/{dup.submission_folder()} is given twice")
        for k in key_list:
            self._key(*k, task, overwrite)
        faces = _check_faces(faces, f"svfr {task}: faces", n_vertices)
        if landmarks is not None:
            lshape = tuple(getattr(landmarks, "shape", np.shape(landmarks)))
            if lshape != (n, N_NOW_LANDMARKS, 3):
                raise SubmissionError(f"svfr {task}: expected landmarks of shape ({n}, {N_NOW_LANDMARKS}, 3), "
                                      f"found {lshape}")
        elif n_vertices != N_VERTICES:
            raise SubmissionError(f"svfr {task}: the meshes are not FLAME topology ({n_vertices} vertices, not "
                                  f"{N_VERTICES}): pass landmarks ({n}, {N_NOW_LANDMARKS}, 3), the NoW landmarks")
        jobs = [_SlabJob(tuple(key_list[a:b]), a, b, *_slab_source(vertices, a, b), faces,
                         *_slab_source(landmarks, a, b), task, self.staging) for a, b in _slabs(vertices, n)]
        run_jobs(jobs, _write_slab, workers=workers, scheduler=scheduler, threads=threads,
                 on_result=_raise_failure, progress=self.progress, desc=f"svfr {task} meshes",
                 frames_of=lambda job: job.stop - job.start, unit="mesh", live_progress=True, name="svfr-mesh")
        return key_list

    def __enter__(self) -> SVFRSubmissionDataWriter:
        return self


# ---------------------------------------------------------------------------------------------
# Batch path: slabs of meshes on the job runner
# ---------------------------------------------------------------------------------------------


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.") and hasattr(x, "blocks")


def _slabs(vertices: Any, n: int) -> list[tuple[int, int]]:
    """``[start, stop)`` mesh ranges read at once: a dask array's blocks, whole stored chunks of a zarr array
    (at least 16 meshes), else 16 meshes."""
    from .writer import _slab_length, _storage_chunk

    if _is_dask(vertices):
        bounds = np.cumsum((0, *vertices.chunks[0]))
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    chunk = _storage_chunk(vertices, 0)
    step = _DEFAULT_SLAB if chunk is None else _slab_length(chunk)
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _slab_source(array: Any, start: int, stop: int) -> tuple[Any, int]:
    """What a job carries to read rows ``[start, stop)``: numpy and dask arrays sliced here (a numpy view pickles
    only its rows to a worker process, a dask slice only its blocks' graph), other array-likes (zarr) whole,
    with the offset of the slab in them."""
    if array is None:
        return None, 0
    if isinstance(array, np.ndarray) or _is_dask(array):
        return array[start:stop], 0
    return array, start


def _read_rows(array: Any, offset: int, n: int) -> np.ndarray:
    rows = array[offset:offset + n]
    return np.asarray(rows.compute() if _is_dask(rows) else rows)


@dataclass(frozen=True)
class _SlabJob:
    keys: tuple[SVFRImageKey, ...]
    start: int
    stop: int
    vertices: Any
    offset: int
    faces: np.ndarray
    landmarks: Any
    landmarks_offset: int
    task: str
    staging: Path


def _write_slab(job: _SlabJob, advance: Any) -> int:
    """Read meshes ``[start, stop)`` at once, check and stage each (runs where the job runs)."""
    n = job.stop - job.start
    slab = _read_rows(job.vertices, job.offset, n)
    lms = None if job.landmarks is None else _read_rows(job.landmarks, job.landmarks_offset, n)
    for i, key in enumerate(job.keys):
        label = _label(key, job.task)
        ply, lm = _prepare_mesh(slab[i], job.faces, None if lms is None else lms[i], label)
        _stage_mesh(job.staging, key, job.task, ply, lm)
        advance(1)
    return len(job.keys)


def _raise_failure(outcome: Any) -> None:
    if not outcome.ok:
        raise outcome.exception if outcome.exception is not None else SubmissionError(str(outcome.error))


def write_svfr_submission(
    out: str | os.PathLike,
    vertices: Any,
    faces: Any,
    keys: Iterable[Any] | None = None,
    task: str = "posed",
    *,
    landmarks: Any = None,
    mode: Literal["w", "a"] = "w",
    overwrite: bool = False,
    finalize: bool = True,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[Path, list[SVFRImageKey]]:
    """Write ``(N, V, 3)`` meshes of one task into the SVFR submission zip ``out``
    (:meth:`SVFRSubmissionDataWriter.add_meshes`); with ``mode="a"``, meshes already there are skipped
    unless ``overwrite``. Returns the zip (or the staging folder when not finalized) and the keys written."""
    return write_svfr_tasks(out, {task: (vertices, landmarks)}, faces, keys, mode=mode, overwrite=overwrite,
                            finalize=finalize, workers=workers, scheduler=scheduler, threads=threads,
                            progress=progress)


def write_svfr_tasks(
    out: str | os.PathLike,
    tasks: dict[str, tuple[Any, Any]],
    faces: Any,
    keys: Iterable[Any] | None = None,
    *,
    mode: Literal["w", "a"] = "w",
    overwrite: bool = False,
    finalize: bool = True,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[Path, list[SVFRImageKey]]:
    """:func:`write_svfr_submission` for several tasks at once: ``tasks`` maps ``"posed"``/``"neutral"`` to
    ``(vertices (N, V, 3), landmarks (N, 7, 3) or None)``."""
    keys = None if keys is None else [as_svfr_key(k) for k in keys]
    written: list[SVFRImageKey] = []
    writer = SVFRSubmissionDataWriter(out, mode=mode, finalize=finalize, progress=progress)
    with writer:
        for task, (vertices, landmarks) in tasks.items():
            task_keys = list(SVFR_IMAGE_KEYS) if keys is None else keys
            if mode == "a" and not overwrite:
                have = {k for k, _ in writer.meshes(task)}
                keep = [i for i, k in enumerate(task_keys) if k not in have]
                if len(keep) < len(task_keys):
                    vertices = _take(vertices, keep)
                    landmarks = None if landmarks is None else _take(landmarks, keep)
                    task_keys = [task_keys[i] for i in keep]
            if task_keys:
                written += writer.add_meshes(vertices, faces, task_keys, task, landmarks=landmarks,
                                             overwrite=overwrite, workers=workers, scheduler=scheduler,
                                             threads=threads)
    return (writer.zip_path if finalize else writer.staging), written


def _take(array: Any, index: list[int]) -> Any:
    """Rows ``index`` of an array, lazily where the array is dask (zarr arrays are wrapped in dask first)."""
    if isinstance(array, np.ndarray):
        return array[index]
    import dask.array as da

    lazy = array if _is_dask(array) else da.from_array(array, chunks=(_slabs(array, array.shape[0])[0][1],
                                                                       *array.shape[1:]))
    return lazy[index]


# ---------------------------------------------------------------------------------------------
# Mesh sources for `nersemble-zarr submit MESHES svfr`
# ---------------------------------------------------------------------------------------------


def find_svfr_meshes(source: Any, faces: Any = None) -> tuple[dict[str, tuple[Any, Any]], Any, list[SVFRImageKey] | None]:
    """Read SVFR meshes from a Zarr group (path, fsspec URL or ``zarr.Group``) or an ``.npz`` file.

    Names read: ``posed`` and/or ``neutral`` ``(N, V, 3)`` vertices; ``faces`` ``(F, 3)`` int (or the
    ``faces`` argument: an array, a ``.npy`` file or the FLAME model ``flame2023.pkl``, whose faces are taken); optional ``landmarks_posed``/``landmarks_neutral``
    ``(N, 7, 3)``; optional ``keys`` ``(N,)`` strings ``"PID/FOLDER"`` (e.g. ``"017/EMO-1-shout+laugh_156_221501007"``,
    padded or not), default the 391 image keys in official order. Zarr arrays stay lazy (read slab by slab).
    Returns ``({task: (vertices, landmarks)}, faces, keys)``; raises :class:`SubmissionError` naming what is
    missing.
    """
    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if text is not None and text.endswith(".npz"):
        if not Path(text).is_file():
            raise SubmissionError(f"{text}: mesh file not found")
        with np.load(text, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    else:
        import zarr

        try:
            group = source if isinstance(source, zarr.Group) else zarr.open_group(text, mode="r")
            arrays = dict(group.arrays())
        except Exception as e:  # missing path, not a group: the user's to fix
            raise SubmissionError(f"meshes {text}: cannot open as a Zarr group or .npz ({type(e).__name__}: {e})") \
                from None
    where = text if text is not None else "meshes"
    tasks = {t: (arrays[t], arrays.get(f"landmarks_{t}")) for t in SVFR_TASKS if t in arrays}
    if not tasks:
        raise SubmissionError(f"{where}: expected an array 'posed' and/or 'neutral' of vertices (N, V, 3), "
                              f"found {', '.join(sorted(arrays)) or 'no arrays'}")
    if faces is None:
        if "faces" not in arrays:
            raise SubmissionError(f"{where}: no 'faces' array (F, 3): store the mesh faces (e.g. FLAME's) "
                                  f"there or pass them (--faces FILE.npy)")
        faces = arrays["faces"]
    elif isinstance(faces, (str, os.PathLike)) and os.fspath(faces).endswith(".pkl"):
        from ..flame.model import read_flame_arrays  # the FLAME model file (checked, no code run); needs torch

        faces = read_flame_arrays(faces).faces
    elif isinstance(faces, (str, os.PathLike)):
        faces = np.load(faces, allow_pickle=False)
    keys = None
    if "keys" in arrays:
        keys = [as_svfr_key(str(k)) for k in np.asarray(arrays["keys"][...]).tolist()]
    return tasks, np.asarray(faces[...]), keys


def write_svfr_from(
    source: Any,
    out: str | os.PathLike,
    *,
    faces: Any = None,
    participants: Iterable[int] | None = None,
    mode: Literal["w", "a"] = "w",
    overwrite: bool = False,
    finalize: bool = True,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[Path, list[SVFRImageKey]]:
    """``nersemble-zarr submit MESHES svfr``: the meshes of :func:`find_svfr_meshes` into the zip ``out``.

    ``participants`` keeps only their rows. Other arguments as in :func:`write_svfr_tasks`.
    """
    tasks, faces, keys = find_svfr_meshes(source, faces)
    all_keys = list(SVFR_IMAGE_KEYS) if keys is None else keys
    for task, (vertices, landmarks) in tasks.items():
        if vertices.shape[0] != len(all_keys):
            raise SubmissionError(
                f"{os.fspath(source) if isinstance(source, (str, os.PathLike)) else 'meshes'}: {task} holds "
                f"{vertices.shape[0]} meshes for {len(all_keys)} image keys"
                + ("" if keys is not None else " (all 391: store a 'keys' array for fewer)"))
    if participants is not None:
        wanted = {int(p) for p in participants}
        rows = [i for i, k in enumerate(all_keys) if k.participant in wanted]
        tasks = {t: (_take(v, rows), None if lm is None else _take(lm, rows)) for t, (v, lm) in tasks.items()}
        all_keys = [all_keys[i] for i in rows]
        if not all_keys:
            raise SubmissionError(f"no meshes of participants {sorted(wanted)} in {os.fspath(source)}")
    return write_svfr_tasks(out, tasks, faces, all_keys, mode=mode, overwrite=overwrite, finalize=finalize,
                            workers=workers, scheduler=scheduler, threads=threads, progress=progress)

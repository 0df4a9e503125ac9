"""Meshes into the store: :func:`write_flame_to_store` evaluates FLAME for every tracked sequence and writes
``<sequence>/flame_v<version>/vertices`` and, once per benchmark, ``<benchmark>/flame_faces``; resumable
(completion markers last) and in parallel. The math and the reader are :mod:`nersemble_zarr.flame.provider`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import schema
from ..core.errors import NersembleZarrError
from ..core.schema import faces_array_path, flame_group
from ..flame.model import DEFAULT_CHUNK_SIZE, N_FACES, N_VERTICES, FlameModel
from ..flame.provider import (
    FACES_DIMS,
    MODEL_SHA_ATTR,
    STORE_CHUNK_FRAMES,
    VERTEX_DIMS,
    VERTICES,
    FlameParameters,
    ModelRef,
    evaluate_block,
    load_flame_parameters,
    resolve_model,
)
from ..jobs.runner import JobArgumentError, JobOutcome, run_jobs
from ..storage.markers import INCOMPLETE, consolidate, is_complete, mark_complete

__all__ = ["FlameStoreSummary", "write_flame_to_store"]


@dataclass
class FlameStoreSummary:
    """What :func:`write_flame_to_store` did: sequence paths written, already complete, without usable tracking."""

    written: list[str] = field(default_factory=list)
    skipped_complete: list[str] = field(default_factory=list)
    skipped_incomplete_tracking: list[str] = field(default_factory=list)
    frames_written: int = 0
    seconds: float = 0.0


def _tracked_sequences(root: Any, version: int) -> list[tuple[str, int, str, Any]]:
    """``(benchmark, participant, sequence, tracking group)`` for every sequence holding ``tracking_v<version>``."""
    from ..core.benchmark import BENCHMARK_NAMES

    name = schema.tracking_group_name(version)
    found = []
    for benchmark in BENCHMARK_NAMES:
        if benchmark not in root.group_keys():
            continue
        bgroup = root[benchmark]
        for pid_name, pgroup in sorted(bgroup.groups()):
            if not pid_name.isdigit():
                continue
            for seq_name, sgroup in sorted(pgroup.groups()):
                if seq_name != schema.CALIBRATION and name in sgroup.group_keys():
                    found.append((benchmark, int(pid_name), seq_name, sgroup[name]))
    return found


def _write_block(job: tuple[FlameParameters, Any, int], ref: ModelRef, *, chunk_size: int) -> int:
    """One job: evaluate a store chunk of frames (``job`` = parameters, vertices array, first frame) with the
    shared model and write it whole (chunks are disjoint, so jobs never collide); returns its frame count."""
    p, array, start = job
    verts = evaluate_block(ref, p, chunk_size)
    array[start:start + len(verts)] = verts
    return len(verts)


def _raise_failure(outcome: JobOutcome) -> None:
    """``on_result``: the first failed chunk stops the run with its own error (no sequence is marked)."""
    if not outcome.ok:
        raise outcome.exception if outcome.exception is not None else NersembleZarrError(str(outcome.error))


def write_flame_to_store(
    store: Any,
    flame_model: FlameModel | str | os.PathLike | None = None,
    *,
    version: int = schema.CURRENT_TRACKING_VERSION,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    frames_per_chunk: int = STORE_CHUNK_FRAMES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> FlameStoreSummary:
    """Write world-space vertices of every sequence with ``tracking_v<version>`` (train and test) into ``store``.

    Per sequence: ``<seq>/flame_v<version>/vertices (timestep, vertex, xyz) float32`` (metres, world coordinates,
    chunks of ``frames_per_chunk`` frames) and its ``timestep`` coordinate (video frame index, int64); per benchmark
    with tracking: ``<benchmark>/flame_faces (face, corner) int64`` (trimesh's face dtype, as the official mesh). Attrs name the model file and its SHA-256.
    A sequence's group is marked ``complete`` last; a rerun skips complete sequences evaluated with the same
    model and rewrites the rest. Chunks are evaluated in parallel by :func:`~nersemble_zarr.jobs.runner.run_jobs`:
    on ``threads`` threads here (default: one per core), on ``workers`` local worker processes, or on the
    existing dask.distributed cluster at ``scheduler`` (a ``tcp://`` address or a ``distributed.Client``; its
    workers must reach ``store`` at the same path or URL); the model is sent to each worker once, and each job
    runs torch with ``cores // concurrent jobs`` intra-op threads. The first failed chunk stops the run (its
    error is raised; a rerun resumes). Metadata is consolidated at the end.
    """
    from contextlib import nullcontext

    from ..storage.lock import StoreLock
    from ..storage.location import StoreLocation

    started = time.perf_counter()
    if workers is not None and scheduler is not None:
        raise JobArgumentError("give either workers (local worker processes) or scheduler (an existing dask "
                               "cluster's address), not both")
    model = resolve_model(flame_model)
    location = StoreLocation.parse(store, storage_options) if isinstance(store, (str, os.PathLike)) else None
    if location is not None and not location.exists():
        raise NersembleZarrError(f"{location}: no store there (run 'nersemble-zarr convert' first)")
    zstore = location.zarr_store() if location is not None else store
    with StoreLock(location, operation="flame") if location is not None else nullcontext() as lock:
        summary = _write_flame(zstore, model, version, workers, scheduler, threads, frames_per_chunk, chunk_size,
                               progress, str(store), lock.check if lock is not None else (lambda: None))
    summary.seconds = time.perf_counter() - started
    return summary


def _write_flame(
    zstore: Any, model: FlameModel, version: int, workers: int | None, scheduler: Any, threads: int | None,
    frames_per_chunk: int, chunk_size: int, progress: bool, where: str, check_lock: Callable[[], None],
) -> FlameStoreSummary:
    """``check_lock`` raises when this writer lost the store lock: called before the markers are written."""
    import zarr

    try:
        root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise NersembleZarrError(f"{where}: not a nersemble-zarr store (expected a Zarr v3 group): {e}") from None
    summary = FlameStoreSummary()
    model_attrs = {"flame_model": model.file_name, MODEL_SHA_ATTR: model.sha256}

    todo: list[tuple[str, FlameParameters, Any]] = []
    benchmarks_with_tracking = set()
    for benchmark, participant, sequence, tgroup in _tracked_sequences(root, version):
        path = flame_group(benchmark, participant, sequence, version)
        if not is_complete(tgroup):
            summary.skipped_incomplete_tracking.append(path)
            continue
        benchmarks_with_tracking.add(benchmark)
        if path in root:
            existing = root[path]
            if is_complete(existing) and existing.attrs.get(MODEL_SHA_ATTR) == model.sha256:
                summary.skipped_complete.append(path)
                continue
        params = load_flame_parameters(tgroup)
        todo.append((path, params, tgroup))

    for benchmark in sorted(benchmarks_with_tracking):
        _write_faces(root, benchmark, model, model_attrs)

    jobs: list[tuple[FlameParameters, Any, int]] = []
    groups = []
    for path, params, tgroup in todo:
        group = root.create_group(path, overwrite=True)
        group.update_attributes({
            **model_attrs, "version": version, "source": tgroup.path, **INCOMPLETE,
            "description": f"FLAME 2023 meshes evaluated from {tgroup.basename} (official NeRSemble convention)",
        })
        n = params.n_timesteps
        timestep = group.create_array(schema.TIMESTEP, shape=(n,), dtype="int64", chunks=(max(n, 1),),
                                      dimension_names=(schema.TIMESTEP,), **schema.chunk_codecs())
        timestep[...] = params.frames
        timestep.update_attributes({"description": "timestep (video frame index) of each tracked frame"})
        verts = group.create_array(
            VERTICES, shape=(n, N_VERTICES, 3), dtype="float32", chunks=(min(max(n, 1), frames_per_chunk), N_VERTICES, 3),
            dimension_names=VERTEX_DIMS, fill_value=np.nan, **schema.chunk_codecs(),
        )
        verts.update_attributes({
            "units": "metres", "coordinates": "world (scale · R_xyz(rotation) · v + translation, as the official provider)",
            "description": "FLAME vertex positions per tracked frame", **model_attrs,
        })
        for start in range(0, n, frames_per_chunk):
            block = params.select(slice(start, min(start + frames_per_chunk, n)))
            jobs.append((block, verts, start))
        groups.append(group)
        summary.written.append(path)
        summary.frames_written += n
    if groups:  # the consolidated copy must not keep saying "complete" for groups being rewritten
        consolidate(zstore)
    run_jobs(
        jobs, functools.partial(_write_block, chunk_size=chunk_size), workers=workers, scheduler=scheduler,
        threads=threads, shared=ModelRef(model), on_result=_raise_failure, progress=progress,
        desc="FLAME vertices", frames_of=lambda job: job[0].n_timesteps, torch_threads="auto", name="flame",
    )
    if groups:
        check_lock()
    for group in groups:  # completion last, after every chunk of the sequence is on the store
        mark_complete(group)
    consolidate(zstore)
    return summary


def _write_faces(root: Any, benchmark: str, model: FlameModel, model_attrs: dict[str, Any]) -> None:
    path = faces_array_path(benchmark)
    if path in root:
        existing = root[path]
        if is_complete(existing) and existing.attrs.get(MODEL_SHA_ATTR) == model.sha256:
            return
    faces = root.create_array(
        path, shape=(N_FACES, 3), dtype="int64", chunks=(N_FACES, 3), dimension_names=FACES_DIMS, overwrite=True, **schema.chunk_codecs()
    )
    faces[...] = model.faces.astype(np.int64)
    faces.update_attributes({"description": "FLAME triangles: vertex indices into flame_v*/vertices", **model_attrs})
    mark_complete(faces)

"""Offline validator of SVFR submission zips: the official checks and more, one member at a time.

:func:`validate_svfr_submission` reports everything the official ``SVFRSubmissionDataReader.validate_submission()``
(nersemble_benchmark 0.2.0) reports, under these kinds:

- ``missing_svfr_tasks`` — the zip holds no mesh of either task (official ``missing_svfr_tasks``);
- ``missing_mesh`` — a task is submitted (at least one of its meshes is there) but a key's mesh is not
  (official ``missing_{posed,neutral}_meshes``);
- ``empty_mesh`` — a mesh with no vertices or no faces as the official reader loads it (``empty_*_meshes``);
- ``missing_landmarks`` — a mesh that is not FLAME topology (not 5023 vertices as loaded by
  ``trimesh.Trimesh(**load_ply(f))``, i.e. after merging duplicate and dropping unreferenced vertices) and has
  no ``landmarks_<task>.npy`` (``missing_*_landmarks``);
- ``wrong_landmarks`` — its landmarks are not ``(7, 3)`` (``wrong_*_landmarks``), or (ours) hold NaN/inf;
- ``unexpected_file`` — a file that is neither a mesh nor landmarks of a submitted task's key (``unexpected_files``);

and, beyond the official validator (which crashes or passes on these): ``unreadable`` (a PLY or npy that does
not parse, a damaged entry), ``face_index`` (a face index outside ``[0, V-1]``), ``non_finite`` (NaN/inf
vertex coordinates), ``degenerate`` (the mesh has no surface: every triangle has zero area, e.g. all
vertices equal or on one line), ``unpadded_timestep`` (a key spelled with the download folder's unpadded
timestep: the server looks for the padded spelling, which the message gives), ``unsafe_path``,
``duplicate``, ``too_large`` (declared larger than :data:`MAX_MESH_BYTES`: not read) and ``size_mismatch``.
Warnings: ``zero_area_faces`` (some triangles of zero area), ``landmarks_ignored`` (malformed landmarks next
to a FLAME-topology mesh, which the server ignores), ``not_checked`` (participants outside the scope).

Streaming: each member is read from the zip into memory on its own (at most :data:`MAX_MESH_BYTES`, sizes
checked while reading), parsed with trimesh, checked and dropped before the next one.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.benchmark import N_VERTICES, SVFR, SVFR_IMAGE_KEYS, SVFR_PARTICIPANTS, SVFRImageKey, participant_dir
from ..jobs.progress import FrameProgress
from .staging import SubmissionError
from .svfr import (
    N_NOW_LANDMARKS, SVFR_TASKS, parse_svfr_member, svfr_landmarks_path, svfr_mesh_path, triangle_areas,
)
from .validate import Findings, Problem, _EntryProblem, _extract, _unsafe

__all__ = ["SVFR_PROBLEM_KINDS", "SVFR_WARNING_KINDS", "MeshReport", "SVFRValidationReport",
           "validate_svfr_submission", "format_svfr_report", "MAX_MESH_BYTES", "MAX_LANDMARKS_BYTES"]

#: Every problem kind of an SVFR submission, with what it means.
SVFR_PROBLEM_KINDS: dict[str, str] = {
    "not_a_zip": "the file is not a readable zip archive",
    "missing_svfr_tasks": "the zip holds neither posed nor neutral meshes",
    "missing_mesh": "a submitted task lacks the mesh of an image key",
    "empty_mesh": "the mesh has no vertices or no faces as the official reader loads it",
    "missing_landmarks": "a mesh that is not FLAME topology (5023 vertices) has no NoW landmarks",
    "wrong_landmarks": "the NoW landmarks are not a (7, 3) array of finite numbers",
    "unexpected_file": "a file that is not a mesh or landmarks of a submitted task's image key",
    "unpadded_timestep": "a mesh or landmarks file spelled with the unpadded timestep of the download folder",
    "unreadable": "the PLY or npy does not parse, or the entry cannot be read from the zip",
    "face_index": "a face refers to a vertex that does not exist",
    "non_finite": "vertex coordinates hold NaN or inf",
    "degenerate": "the mesh has no surface: every triangle has zero area (all vertices equal or on one line)",
    "unsafe_path": "an absolute path, a '..' component or a backslash in an entry name",
    "duplicate": "the same entry name occurs more than once",
    "too_large": "the entry is larger than any mesh or landmarks file should be: not read",
    "size_mismatch": "the entry's zip headers disagree on its size, or its data holds more or fewer bytes than declared",
}
#: Kinds reported as warnings: they do not fail validation.
SVFR_WARNING_KINDS: dict[str, str] = {
    "zero_area_faces": "some triangles have zero area",
    "landmarks_ignored": "malformed landmarks next to a FLAME-topology mesh (the server does not use them)",
    "not_checked": "entries of participants outside the chosen scope were not checked",
}
#: The most bytes a mesh entry may declare before it is reported ``too_large`` without being read
#: (a binary PLY of ~20 million vertices and faces).
MAX_MESH_BYTES = 512 << 20
#: The most bytes a landmarks ``.npy`` may declare (7 × 3 float64 is 296 bytes with its header).
MAX_LANDMARKS_BYTES = 64 << 10
#: Problems of one kind printed by :func:`format_svfr_report` before it summarises the rest.
SHOWN_PER_KIND = 10


@dataclass
class MeshReport:
    """What one submitted mesh holds, as the official reader loads it; ``None`` where it could not be read."""

    path: str
    participant: int
    sequence: str
    timestep: int
    serial: str
    task: str
    n_vertices: int | None = None
    n_faces: int | None = None
    flame_topology: bool | None = None
    has_landmarks: bool = False
    ok: bool = True


@dataclass
class SVFRValidationReport(Findings):
    """Result of :func:`validate_svfr_submission`; ``ok`` when ``problems`` is empty (warnings allowed)."""

    zip_path: str
    participants: list[int]
    tasks: list[str] = field(default_factory=list)
    meshes: list[MeshReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    benchmark: str = SVFR

    def official_issues(self) -> dict[str, list]:
        """The problems in the official ``validate_submission()`` dict form (its keys, e.g.
        ``missing_posed_meshes``; each a list of paths), for comparison with the official output. A key spelled
        with the unpadded timestep is one ``unpadded_timestep`` problem here; the official reader counts it twice,
        as an unexpected file and a missing one, and so does this dict."""
        issues: dict[str, list] = defaultdict(list)
        by_path = {m.path: m for m in self.meshes}
        for p in self.problems:
            task = next((t for t in SVFR_TASKS if p.path.endswith(f"_{t}.ply") or p.path.endswith(f"_{t}.npy")), None)
            if p.kind == "missing_mesh":
                issues[f"missing_{task}_meshes"].append(p.path)
            elif p.kind == "empty_mesh":
                issues[f"empty_{task}_meshes"].append(p.path)
            elif p.kind == "missing_landmarks":
                issues[f"missing_{task}_landmarks"].append(p.path)
            elif p.kind == "wrong_landmarks" and "shape" in p.message:
                issues[f"wrong_{task}_landmarks"].append(p.path)
            elif p.kind in ("unexpected_file", "unpadded_timestep"):
                issues["unexpected_files"].append(p.path)
                parsed = parse_svfr_member(p.path) if p.kind == "unpadded_timestep" else None
                if parsed is not None and parsed[1] == "mesh":  # the official reader also misses the padded one
                    issues[f"missing_{parsed[2]}_meshes"].append(svfr_mesh_path(parsed[0], parsed[2]))
                elif parsed is not None:
                    mesh = by_path.get(svfr_mesh_path(parsed[0], parsed[2]))
                    if mesh is not None and mesh.flame_topology is False:
                        issues[f"missing_{parsed[2]}_landmarks"].append(svfr_landmarks_path(parsed[0], parsed[2]))
            elif p.kind == "missing_svfr_tasks":
                issues["missing_svfr_tasks"] = list(SVFR_TASKS)
        return {k: v if k == "missing_svfr_tasks" else sorted(v) for k, v in issues.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``ok``, scope, tasks, per-mesh facts, problems and warnings."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _read_member(zf: zipfile.ZipFile, zip_file: Any, info: zipfile.ZipInfo, bound: int) -> bytes:
    """The entry's bytes, at most ``bound`` (declared) and exactly as declared (see ``validate._extract``)."""
    if info.file_size > bound:
        raise _EntryProblem("too_large", f"the zip declares {info.file_size} bytes for it, more than {bound} "
                                         f"bytes allowed for this kind of file; not read")
    buf = io.BytesIO()
    try:
        _extract(zip_file, info, zf, buf)
    except _EntryProblem:
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as e:
        raise _EntryProblem("unreadable", f"cannot extract the entry from the zip: {e}") from None
    return buf.getvalue()


def _check_mesh(data: bytes, report: MeshReport) -> tuple[list[Problem], list[Problem]]:
    """Parse one PLY, fill ``report`` and return its ``(problems, warnings)``."""
    import trimesh
    from trimesh.exchange.ply import load_ply

    path = report.path
    try:
        raw = load_ply(io.BytesIO(data))
        vertices = np.asarray(raw.get("vertices") if raw.get("vertices") is not None else np.empty((0, 3)))
        faces = raw.get("faces")
        faces = np.empty((0, 3), np.int64) if faces is None else np.asarray(faces)
    except Exception as e:  # trimesh raises assorted errors for a damaged PLY
        return [Problem(path, "unreadable", f"the PLY does not parse (trimesh: {type(e).__name__}: {e})")], []
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or not np.issubdtype(faces.dtype, np.integer):
        return [Problem(path, "unreadable", f"expected vertices (V, 3) and integer faces (F, 3), found "
                                            f"{vertices.shape} and {faces.shape} {faces.dtype}")], []
    if len(vertices) == 0 or len(faces) == 0:
        report.n_vertices, report.n_faces = len(vertices), len(faces)
        report.flame_topology = len(vertices) == N_VERTICES
        return [Problem(path, "empty_mesh", f"the mesh has {len(vertices)} vertices and {len(faces)} faces")], []
    problems: list[Problem] = []
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= len(vertices):
        bad = int(((faces < 0) | (faces >= len(vertices))).any(axis=1).sum())
        problems.append(Problem(path, "face_index", f"{bad} faces refer to vertices outside [0, {len(vertices) - 1}] "
                                                    f"({len(vertices)} vertices): indices span [{lo}, {hi}]"))
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        problems.append(Problem(path, "non_finite", f"{int((~finite).sum())} of its {len(vertices)} vertices hold "
                                                    f"NaN or inf coordinates (first: vertex {int(np.argmin(finite))})"))
    if problems:
        report.n_vertices, report.n_faces = len(vertices), len(faces)
        return problems, []
    warnings = []
    if faces.shape[1] == 3:
        areas = triangle_areas(vertices, faces)
        zero = int((areas <= 0).sum())
        if zero == len(faces):
            problems.append(Problem(path, "degenerate", f"every one of its {len(faces)} triangles has zero area "
                                                        f"(all vertices equal or on one line): no surface to compare"))
        elif zero:
            warnings.append(Problem(path, "zero_area_faces", f"{zero} of its {len(faces)} triangles have zero area"))
    try:
        official = trimesh.Trimesh(**raw)  # the official reader's view: processed (merged) as it loads it
    except Exception as e:
        return problems + [Problem(path, "unreadable", f"trimesh cannot build the mesh: {type(e).__name__}: {e}")], \
            warnings
    report.n_vertices, report.n_faces = len(official.vertices), len(official.faces)
    report.flame_topology = report.n_vertices == N_VERTICES
    if report.n_vertices == 0 or report.n_faces == 0:
        problems.append(Problem(path, "empty_mesh", f"as the official reader loads it the mesh has "
                                                    f"{report.n_vertices} vertices and {report.n_faces} faces"))
    return problems, warnings


def _check_landmarks(data: bytes, path: str) -> tuple[str, str] | None:
    """``None`` for good landmarks, else ``(kind, message)``: unreadable, or wrong shape / non-finite."""
    try:
        lm = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        return "unreadable", f"the .npy does not parse (numpy: {type(e).__name__}: {e})"
    if not isinstance(lm, np.ndarray) or lm.shape != (N_NOW_LANDMARKS, 3):
        return "wrong_landmarks", (f"NoW landmarks expected shape ({N_NOW_LANDMARKS}, 3), found "
                                   f"{getattr(lm, 'shape', type(lm).__name__)}")
    if not np.issubdtype(lm.dtype, np.number) or not np.isfinite(lm).all():
        return "wrong_landmarks", f"the NoW landmarks hold NaN, inf or non-numbers ({lm.dtype})"
    return None


def validate_svfr_submission(
    zip_path: str | os.PathLike,
    *,
    participants: Iterable[int] | None = None,
    progress: bool = False,
) -> SVFRValidationReport:
    """Check an SVFR submission zip offline; see the module docstring for what is reported.

    Args:
        zip_path: The submission zip.
        participants: Restrict the expected meshes to these participants (a partial submission). Entries of
            other participants are then skipped with a warning; names, duplicates and unexpected files are
            still checked for the whole zip.
        progress: A progress bar over the meshes read, on stderr.

    Returns an :class:`SVFRValidationReport`; raises :class:`SubmissionError` only for a missing ``zip_path``
    or a participant SVFR does not have.
    """
    path = Path(zip_path)
    if not path.is_file():
        raise SubmissionError(f"{path}: submission zip not found")
    scope = list(SVFR_PARTICIPANTS) if participants is None else sorted({int(p) for p in participants})
    for p in scope:
        if p not in SVFR_PARTICIPANTS:
            raise SubmissionError(f"participant {p} is not in the svfr benchmark "
                                  f"(expected one of {', '.join(map(str, SVFR_PARTICIPANTS))})")
    report = SVFRValidationReport(str(path), scope)
    add = report.problems.append
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        add(Problem(str(path), "not_a_zip", f"expected a zip archive: {e}"))
        return report

    all_keys = set(SVFR_IMAGE_KEYS)
    in_scope = [k for k in SVFR_IMAGE_KEYS if k.participant in scope]
    with zf, open(path, "rb") as zip_file:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for name, n in sorted(Counter(i.filename for i in infos).items()):
            if n > 1:
                add(Problem(name, "duplicate", f"the entry occurs {n} times (the server reads only one)"))
        # sort the entries: correct spellings, unpadded spellings, the rest
        entries: dict[str, zipfile.ZipInfo] = {}
        unpadded: dict[str, str] = {}  # correct name -> the unpadded name found
        others: list[str] = []
        for info in infos:
            name = info.filename
            if _unsafe(name):
                add(Problem(name, "unsafe_path", "expected a relative path <pid:03d>/<sequence>_<timestep:03d>_"
                                                 "<serial>/<file> without '..', leading '/' or backslashes"))
                continue
            parsed = parse_svfr_member(name)
            if parsed is not None and parsed[0] in all_keys:
                key, what, task, padded = parsed
                correct = (svfr_mesh_path if what == "mesh" else svfr_landmarks_path)(key, task)
                if padded:
                    entries.setdefault(name, info)
                else:
                    unpadded.setdefault(correct, name)
            else:
                others.append(name)
        # the tasks submitted: any mesh of them, correctly spelled or not
        tasks = [t for t in SVFR_TASKS if any(n.endswith(f"/mesh_{t}.ply") for n in (*entries, *unpadded))]
        report.tasks = tasks
        if not tasks:
            add(Problem(str(path), "missing_svfr_tasks", "the zip holds no mesh_posed.ply and no mesh_neutral.ply of "
                                                         "any image key: expected <pid:03d>/<sequence>_<timestep:03d>_"
                                                         "<serial>/mesh_<posed|neutral>.ply"))
        for correct, name in sorted(unpadded.items(), key=lambda kv: kv[1]):
            add(Problem(name, "unpadded_timestep", f"the timestep is not padded to 3 digits (the download folder's "
                                                   f"spelling): the server looks for {correct}; rename it"))
        for name in sorted(others):
            parsed = parse_svfr_member(name)
            if parsed is not None:
                key = parsed[0]
                why = (f"participant {key.participant} is not in the svfr benchmark" if key.participant not in
                       SVFR_PARTICIPANTS else f"participant {participant_dir(key.participant)} has no SVFR image "
                       f"{key.download_folder()!r} (sequence {key.sequence!r}, timestep {key.timestep}, serial "
                       f"{key.serial})")
            else:
                why = "not <pid:03d>/<sequence>_<timestep:03d>_<serial>/mesh_<task>.ply or landmarks_<task>.npy"
            add(Problem(name, "unexpected_file", f"unexpected file: {why}"))
        skipped = 0
        for name in sorted(entries):
            key, what, task, _ = parse_svfr_member(name)  # type: ignore[misc]
            if task not in tasks:
                add(Problem(name, "unexpected_file", f"unexpected file: {what} of the {task} task, whose meshes "
                                                     f"the zip does not hold"))
            elif key.participant not in scope:
                skipped += 1
        if skipped:
            report.warnings.append(Problem(str(path), "not_checked", f"{skipped} files of participants outside "
                                                                     f"{scope} were not checked"))

        bar = FrameProgress(len(in_scope) * len(tasks), bool(progress), desc="validating", unit="mesh")
        for task in tasks:
            for key in in_scope:
                _check_key(report, zf, zip_file, entries, unpadded, key, task)
                bar.update(1)
        bar.close()
    return report


def _check_key(report: SVFRValidationReport, zf: zipfile.ZipFile, zip_file: Any, entries: dict[str, zipfile.ZipInfo],
               unpadded: dict[str, str], key: SVFRImageKey, task: str) -> None:
    """Problems of one key's mesh and landmarks of ``task``, appended to ``report``."""
    mesh_name, lm_name = svfr_mesh_path(key, task), svfr_landmarks_path(key, task)
    if mesh_name not in entries:
        if mesh_name not in unpadded:  # else reported once, as unpadded_timestep
            report.problems.append(Problem(mesh_name, "missing_mesh", f"the {task} task is submitted, but not the "
                                                                      f"mesh of this image"))
        return
    mesh = MeshReport(mesh_name, key.participant, key.sequence, key.timestep, key.serial, task,
                      has_landmarks=lm_name in entries)
    report.meshes.append(mesh)
    try:
        problems, warnings = _check_mesh(_read_member(zf, zip_file, entries[mesh_name], MAX_MESH_BYTES), mesh)
    except _EntryProblem as e:
        problems, warnings = [Problem(mesh_name, e.kind, e.message)], []
    if any(p.kind != "empty_mesh" for p in problems):
        # unreadable, out-of-range faces, NaN/inf, degenerate: its vertex count says nothing about landmarks
        # (the official reader crashes on the first three; an empty mesh it reports with missing landmarks too)
        pass
    elif mesh.flame_topology is False or mesh.has_landmarks:
        if not mesh.has_landmarks:
            if lm_name not in unpadded:
                problems.append(Problem(lm_name, "missing_landmarks", (
                    f"the mesh is not FLAME topology ({mesh.n_vertices} vertices as the official reader loads it, "
                    f"not {N_VERTICES}): the {N_NOW_LANDMARKS} NoW landmarks ({N_NOW_LANDMARKS}, 3) are required")))
        else:
            try:
                bad = _check_landmarks(_read_member(zf, zip_file, entries[lm_name], MAX_LANDMARKS_BYTES), lm_name)
            except _EntryProblem as e:
                bad = (e.kind, e.message)
            if bad is not None:
                if mesh.flame_topology:
                    warnings.append(Problem(lm_name, "landmarks_ignored", bad[1] + " (ignored by the server: the "
                                                                                   "mesh is FLAME topology)"))
                else:
                    problems.append(Problem(lm_name, *bad))
    mesh.ok = not problems
    report.problems.extend(problems)
    report.warnings.extend(warnings)


def format_svfr_report(report: SVFRValidationReport, *, shown_per_kind: int = SHOWN_PER_KIND) -> str:
    """A per-task summary table, then problems and warnings, at most ``shown_per_kind`` of each kind
    (the rest counted; ``--json`` lists all)."""
    header = ("task", "meshes", "ok", "FLAME topology", "with landmarks")
    n_keys = sum(1 for k in SVFR_IMAGE_KEYS if k.participant in report.participants)
    rows = []
    for task in SVFR_TASKS:
        ms = [m for m in report.meshes if m.task == task]
        rows.append((task, f"{len(ms)}/{n_keys}" if task in report.tasks else "not submitted", str(sum(m.ok for m in ms)),
                     str(sum(bool(m.flame_topology) for m in ms)), str(sum(m.has_landmarks for m in ms))))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for title, items in (("problems", report.problems), ("warnings", report.warnings)):
        if not items:
            continue
        lines += ["", f"{len(items)} {title}:"]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for p in items:
            by_kind[p.kind].append(p)
        for kind, ps in by_kind.items():
            lines.extend(f"  [{p.kind}] {p.path}: {p.message}" for p in ps[:shown_per_kind])
            if len(ps) > shown_per_kind:
                lines.append(f"  [{kind}] ... and {len(ps) - shown_per_kind} more (--json lists all)")
    verdict = "OK" if report.ok else "INVALID"
    lines += ["", f"{verdict}: {report.zip_path} (svfr): tasks {', '.join(report.tasks) or 'none'}; "
                  f"{sum(m.ok for m in report.meshes)}/{len(report.meshes)} meshes pass, {len(report.problems)} "
                  f"problems, {len(report.warnings)} warnings"]
    return "\n".join(lines)

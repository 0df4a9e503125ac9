"""SVFR submissions: the drop-in writer, the batch path, crash safety, the validator and the CLI."""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import trimesh
import zarr
from click.testing import CliRunner

from nersemble_zarr.cli.main import cli
from nersemble_zarr.core.benchmark import SVFR_IMAGE_KEYS, svfr_image_keys
from nersemble_zarr.submission.staging import SubmissionError
from nersemble_zarr.submission.svfr import (
    SVFRSubmissionDataWriter, load_ply_as_official, mesh_ply_bytes, svfr_landmarks_path, svfr_mesh_path,
    write_svfr_submission,
)
from nersemble_zarr.submission.validate import format_report, validate_submission
from nersemble_zarr.submission.validate_svfr import format_svfr_report, validate_svfr_submission
from nersemble_zarr.testing.flame_model import synthetic_flame_arrays

P17 = svfr_image_keys(17)  # 20 keys
#: A key whose download folder spells the timestep unpadded (6), the zip padded (006).
SHORT = next(k for k in P17 if k.timestep < 10)
TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
LANDMARKS = np.arange(21, dtype=np.float64).reshape(7, 3) / 10


@pytest.fixture(scope="session")
def flame() -> tuple[np.ndarray, np.ndarray]:
    """A FLAME-topology mesh: vertices (5023, 3) float32, faces (9976, 3) int64 (the synthetic FLAME template)."""
    arrays = synthetic_flame_arrays()
    return np.asarray(arrays["v_template"], np.float32), np.asarray(arrays["f"]).astype(np.int64)


@pytest.fixture(scope="session")
def vertices(flame) -> np.ndarray:
    """(391, 5023, 3) float32: the template shifted by 1 mm per key, so every mesh differs."""
    v, _ = flame
    return v[None] + (np.arange(len(SVFR_IMAGE_KEYS), dtype=np.float32) * 1e-3)[:, None, None]


@pytest.fixture(scope="session")
def zips(tmp_path_factory, flame, vertices) -> dict[str, Path]:
    """Zips of all 391 keys: posed (batch path from a dask array), neutral (drop-in add_neutral_mesh with
    trimesh.Trimesh objects), both (the posed zip appended to with the neutral meshes)."""
    _, faces = flame
    root = tmp_path_factory.mktemp("svfr")
    posed, _ = write_svfr_submission(root / "posed.zip", da.from_array(vertices, chunks=(50, 5023, 3)), faces)
    with SVFRSubmissionDataWriter(root / "neutral.zip") as w:
        for i, k in enumerate(SVFR_IMAGE_KEYS):
            w.add_neutral_mesh(k.participant, k.sequence, k.timestep, k.serial,
                               trimesh.Trimesh(vertices[i], faces, process=False))
    shutil.copy(posed, root / "both.zip")
    write_svfr_submission(root / "both.zip", vertices, faces, task="neutral", mode="a")
    return {"posed": posed, "neutral": root / "neutral.zip", "both": root / "both.zip"}


# ---------------------------------------------------------------------------------------------
# Writer: round trip, drop-in, refusals
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("which, tasks", [("posed", ["posed"]), ("neutral", ["neutral"]),
                                          ("both", ["posed", "neutral"])])
def test_all_391_keys_round_trip_and_validate_clean(zips, flame, vertices, which, tasks):
    report = validate_svfr_submission(zips[which])
    assert report.ok and not report.warnings, format_svfr_report(report)
    assert report.tasks == tasks and len(report.meshes) == 391 * len(tasks)
    assert all(m.flame_topology and not m.has_landmarks for m in report.meshes)
    with zipfile.ZipFile(zips[which]) as zf:
        assert sorted(zf.namelist()) == sorted(svfr_mesh_path(k, t) for k in SVFR_IMAGE_KEYS for t in tasks)
        for i in (0, SVFR_IMAGE_KEYS.index(SHORT), 390):
            for t in tasks:
                mesh = load_ply_as_official(zf.read(svfr_mesh_path(SVFR_IMAGE_KEYS[i], t)))
                np.testing.assert_array_equal(mesh.vertices, vertices[i])  # float32 exactly, order kept
                np.testing.assert_array_equal(mesh.faces, flame[1])


def test_submission_paths_pad_the_timestep():
    assert svfr_mesh_path(SHORT, "posed") == f"017/{SHORT.sequence}_{SHORT.timestep:03d}_{SHORT.serial}/mesh_posed.ply"
    assert f"_{SHORT.timestep:03d}_" in svfr_landmarks_path(SHORT, "neutral")


def test_drop_in_methods_take_the_official_arguments():
    official = ["self", "participant_id", "sequence_name", "timestep", "serial", "mesh", "now_landmarks"]
    for method in (SVFRSubmissionDataWriter.add_posed_mesh, SVFRSubmissionDataWriter.add_neutral_mesh):
        assert list(inspect.signature(method).parameters)[:7] == official


def test_same_meshes_give_the_same_zip_bytes(tmp_path, flame, vertices):
    _, faces = flame
    for name in ("a.zip", "b.zip"):
        write_svfr_submission(tmp_path / name, vertices[:3], faces, keys=P17[:3])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_non_flame_mesh_with_landmarks_is_written_and_valid(tmp_path):
    out = tmp_path / "s.zip"
    with SVFRSubmissionDataWriter(out) as w:
        w.add_posed_mesh(17, SHORT.sequence, SHORT.timestep, SHORT.serial, (TETRA_V, TETRA_F), now_landmarks=LANDMARKS)
    with zipfile.ZipFile(out) as zf:
        np.testing.assert_array_equal(np.load(io.BytesIO(zf.read(svfr_landmarks_path(SHORT, "posed")))), LANDMARKS)
    report = validate_svfr_submission(out, participants=[17])
    assert report.kinds() == {"missing_mesh"}  # the other 19 keys of participant 17; the tetrahedron passes
    assert report.meshes[0].ok and report.meshes[0].has_landmarks and report.meshes[0].flame_topology is False


def test_non_flame_mesh_without_landmarks_is_refused(tmp_path):
    with SVFRSubmissionDataWriter(tmp_path / "s.zip") as w:
        with pytest.raises(SubmissionError, match=r"mesh_posed.ply: the mesh is not FLAME topology \(5023 vertices\): "
                                                  r"it has 4; pass now_landmarks"):
            w.add_posed_mesh(*SHORT, (TETRA_V, TETRA_F))
        assert w.meshes() == []


def test_flame_sized_mesh_that_trimesh_merges_needs_landmarks(tmp_path, flame):
    v, f = flame
    v = v.copy()
    v[1] = v[0]  # two equal vertices: the official reader merges them into 5022
    with SVFRSubmissionDataWriter(tmp_path / "s.zip") as w:
        with pytest.raises(SubmissionError, match="it has 5022 as the official reader loads it"):
            w.add_neutral_mesh(*SHORT, (v, f))
        w.add_neutral_mesh(*SHORT, (v, f), now_landmarks=LANDMARKS)  # with landmarks it is fine
    assert validate_svfr_submission(tmp_path / "s.zip", participants=[17]).kinds() == {"missing_mesh"}


@pytest.mark.parametrize("change, message", [
    (lambda v, f, lm: (np.where(np.arange(len(v))[:, None] == 7, np.nan, v), f, lm),
     "vertex 7 .* holds NaN or inf coordinates"),
    (lambda v, f, lm: (v, np.vstack([f, [[0, 1, 5023]]]), lm), r"face indices must lie in \[0, 5022\].*found \[0, 5023\]"),
    (lambda v, f, lm: (np.zeros_like(v), f, lm), "degenerate mesh: every one of its 9976 triangles has zero area"),
    (lambda v, f, lm: (v, f[:0], lm), "the mesh has no faces"),
    (lambda v, f, lm: (v[:0], f, lm), "the mesh has no vertices"),
    (lambda v, f, lm: (v, f, np.zeros((6, 3))), r"NoW landmarks expected shape \(7, 3\), found \(6, 3\)"),
    (lambda v, f, lm: (v, f.astype(np.float64), lm), "expected integer face indices, found float64"),
])
def test_writer_refuses_what_the_validator_rejects(tmp_path, flame, change, message):
    v, f, lm = change(*flame, None)
    with SVFRSubmissionDataWriter(tmp_path / "s.zip", finalize=False) as w:
        with pytest.raises(SubmissionError, match=message):
            w.add_posed_mesh(*SHORT, (v, f), now_landmarks=lm)
        assert w.members() == []  # nothing staged


def test_writer_refuses_unknown_keys_and_duplicates(tmp_path, flame):
    with SVFRSubmissionDataWriter(tmp_path / "s.zip") as w:
        with pytest.raises(SubmissionError, match="SVFR participant 017 has no image 'EXP-4-lips_7_221501007'"):
            w.add_posed_mesh(17, "EXP-4-lips", 7, "221501007", flame)
        with pytest.raises(SubmissionError, match="participant 18 is not in the svfr benchmark"):
            w.add_posed_mesh(18, "EXP-4-lips", 6, "221501007", flame)
        w.add_posed_mesh(*SHORT, flame)
        with pytest.raises(SubmissionError, match="already holds this mesh"):
            w.add_posed_mesh(*SHORT, flame)
        w.add_posed_mesh(*SHORT, (TETRA_V, TETRA_F), LANDMARKS, overwrite=True)
        w.add_posed_mesh(*SHORT, flame, overwrite=True)  # back to FLAME: the stale landmarks go with it
        assert w.members() == [svfr_mesh_path(SHORT, "posed")]


def test_batch_keys_and_shapes_are_checked_before_writing(tmp_path, flame, vertices):
    _, faces = flame
    with pytest.raises(SubmissionError, match="3 meshes for 391 image keys"):
        write_svfr_submission(tmp_path / "s.zip", vertices[:3], faces)
    with pytest.raises(SubmissionError, match="is given twice"):
        write_svfr_submission(tmp_path / "s.zip", vertices[:2], faces, keys=[P17[0], P17[0]])
    with pytest.raises(SubmissionError, match=r"not FLAME topology \(4 vertices.*pass landmarks"):
        write_svfr_submission(tmp_path / "s.zip", np.stack([TETRA_V] * 2), TETRA_F, keys=P17[:2])
    assert not (tmp_path / "s.zip").exists()


def test_batch_of_non_flame_meshes_with_landmarks_from_zarr(tmp_path):
    arr = zarr.create_array(tmp_path / "v.zarr", shape=(20, 4, 3), chunks=(3, 4, 3), dtype="float32")
    arr[...] = np.stack([TETRA_V * (i + 1) for i in range(20)])
    out, keys = write_svfr_submission(tmp_path / "s.zip", arr, TETRA_F, keys=[f"017/{k.download_folder()}" for k in P17],
                                      task="neutral", landmarks=np.stack([LANDMARKS] * 20), threads=2)
    assert keys == list(P17)
    report = validate_svfr_submission(out, participants=[17])
    assert report.ok and len(report.meshes) == 20 and all(m.has_landmarks for m in report.meshes)


def test_batch_reads_a_dask_array_block_by_block_once(tmp_path, flame, vertices):
    import dask

    _, faces = flame
    computed = []

    def block(i):
        computed.append(i)
        return vertices[3 * i:3 * i + 3]

    lazy = da.concatenate([da.from_delayed(dask.delayed(block)(i), (3, 5023, 3), np.float32) for i in range(4)])
    write_svfr_submission(tmp_path / "s.zip", lazy, faces, keys=P17[:12], threads=2)
    assert sorted(computed) == [0, 1, 2, 3]  # each block once (not once per mesh), never the whole array at once
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        mesh = load_ply_as_official(zf.read(svfr_mesh_path(P17[11], "posed")))
    np.testing.assert_array_equal(mesh.vertices, vertices[11])


# ---------------------------------------------------------------------------------------------
# Crash safety and append
# ---------------------------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import dask, dask.array as da, numpy as np
    from nersemble_zarr.core.benchmark import svfr_image_keys
    from nersemble_zarr.submission.svfr import write_svfr_submission

    data = np.load(sys.argv[2])
    v, f = data["v"], data["f"]

    def chunk(i):
        if i == 1:
            print("mid-write", flush=True)
            sys.stdin.read()  # blocks until the parent kills us
        return v[2 * i:2 * i + 2]

    lazy = da.concatenate([da.from_delayed(dask.delayed(chunk)(i), (2, *v.shape[1:]), v.dtype) for i in range(3)])
    write_svfr_submission(sys.argv[1], lazy, f, keys=svfr_image_keys(17)[:6], threads=1)
    """
)


def test_sigkilled_writer_leaves_no_zip_and_a_rerun_appends_to_the_same_zip(tmp_path, flame, vertices):
    _, faces = flame
    np.savez(tmp_path / "meshes.npz", v=vertices[:6], f=faces)
    target = tmp_path / "killed.zip"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), str(tmp_path / "meshes.npz")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "mid-write"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not target.exists()
    staging = target.with_name("killed.zip.partial")
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("mesh_*.ply")) == sorted(
        svfr_mesh_path(k, "posed") for k in P17[:2])
    orphan = staging / svfr_landmarks_path(P17[4], "posed")  # as if killed between landmarks and mesh
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    write_svfr_submission(target, vertices[:6], faces, keys=P17[:6], mode="a")  # skips the 2 staged meshes
    single = tmp_path / "single.zip"
    write_svfr_submission(single, vertices[:6], faces, keys=P17[:6])
    assert target.read_bytes() == single.read_bytes()


def test_exception_inside_the_writer_keeps_the_previous_zip(tmp_path, flame):
    target = tmp_path / "s.zip"
    target.write_bytes(b"previous submission")
    with pytest.raises(RuntimeError):
        with SVFRSubmissionDataWriter(target) as w:
            w.add_posed_mesh(*SHORT, flame)
            raise RuntimeError
    assert target.read_bytes() == b"previous submission"
    with SVFRSubmissionDataWriter(target, mode="a") as w:  # continues the staged mesh
        assert w.meshes() == [(SHORT, "posed")]


def test_appending_to_a_video_submission_is_refused(tmp_path):
    target = tmp_path / "s.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("393/FREE/cam_222200037.mp4", b"video")
    with pytest.raises(SubmissionError, match="holds '393/FREE/cam_222200037.mp4', which is not an SVFR submission file"):
        SVFRSubmissionDataWriter(target, mode="a")
    assert target.read_bytes()  # untouched


# ---------------------------------------------------------------------------------------------
# Validator: each official issue class and each extra problem on a purpose-made zip
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p17_members(zips) -> dict[str, bytes]:
    """Participant 17's posed meshes (20 FLAME-topology PLYs), by zip path."""
    with zipfile.ZipFile(zips["posed"]) as zf:
        return {svfr_mesh_path(k, "posed"): zf.read(svfr_mesh_path(k, "posed")) for k in P17}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


FIRST = svfr_mesh_path(P17[0], "posed")
TETRA = mesh_ply_bytes(TETRA_V, TETRA_F)


def _bad(flame, vertices=None, faces=None) -> bytes:
    v, f = flame
    return mesh_ply_bytes(v if vertices is None else vertices, f if faces is None else faces)


CASES = {
    # official issue classes
    "missing_svfr_tasks": (lambda m, fl: {"notes.txt": b"hi"}, "notes.txt", None),
    "missing_mesh": (lambda m, fl: {n: d for n, d in m.items() if n != FIRST}, FIRST,
                     "the posed task is submitted, but not the mesh of this image"),
    "empty_mesh": (lambda m, fl: {**m, FIRST: trimesh.Trimesh(fl[0], np.empty((0, 3), int), process=False).export(
        file_type="ply")}, FIRST, "the mesh has 5023 vertices and 0 faces"),
    "missing_landmarks": (lambda m, fl: {**m, FIRST: TETRA}, svfr_landmarks_path(P17[0], "posed"),
                          "not FLAME topology (4 vertices as the official reader loads it, not 5023): the 7 NoW "
                          "landmarks (7, 3) are required"),
    "wrong_landmarks": (lambda m, fl: {**m, FIRST: TETRA, svfr_landmarks_path(P17[0], "posed"): npy(np.zeros((68, 3)))},
                        svfr_landmarks_path(P17[0], "posed"), "NoW landmarks expected shape (7, 3), found (68, 3)"),
    "unexpected_file": (lambda m, fl: {**m, svfr_landmarks_path(P17[1], "neutral"): npy(LANDMARKS)},
                        svfr_landmarks_path(P17[1], "neutral"),
                        "unexpected file: landmarks of the neutral task, whose meshes the zip does not hold"),
    # beyond the official validator
    "unreadable": (lambda m, fl: {**m, FIRST: b"ply\nformat nonsense\n"}, FIRST, "the PLY does not parse (trimesh:"),
    "face_index": (lambda m, fl: {**m, FIRST: _bad(fl, faces=np.vstack([fl[1], [[0, 1, 9000]]]))}, FIRST,
                   "1 faces refer to vertices outside [0, 5022] (5023 vertices): indices span [0, 9000]"),
    "non_finite": (lambda m, fl: {**m, FIRST: _bad(fl, vertices=np.where(np.arange(5023)[:, None] == 3, np.inf, fl[0]))},
                   FIRST, "1 of its 5023 vertices hold NaN or inf coordinates (first: vertex 3)"),
    "degenerate": (lambda m, fl: {**m, FIRST: _bad(fl, vertices=np.ones((5023, 3)))}, FIRST,
                   "every one of its 9976 triangles has zero area (all vertices equal or on one line)"),
    "unpadded_timestep": (lambda m, fl: {(n.replace(f"_{SHORT.timestep:03d}_", f"_{SHORT.timestep}_")
                                          if n == svfr_mesh_path(SHORT, "posed") else n): d for n, d in m.items()},
                          f"017/{SHORT.download_folder()}/mesh_posed.ply",
                          f"the timestep is not padded to 3 digits (the download folder's spelling): the server looks "
                          f"for {svfr_mesh_path(SHORT, 'posed')}; rename it"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_validator_reports_each_problem_once_with_a_clear_message(tmp_path, p17_members, flame, kind):
    build, path, message = CASES[kind]
    report = validate_svfr_submission(make_zip(tmp_path / "s.zip", build(p17_members, flame)), participants=[17])
    if kind == "missing_svfr_tasks":
        assert report.kinds() == {"missing_svfr_tasks", "unexpected_file"}
        assert report.official_issues()["missing_svfr_tasks"] == ["posed", "neutral"]
        assert report.official_issues()["unexpected_files"] == ["notes.txt"]
        return
    assert [(p.kind, p.path) for p in report.problems] == [(kind, path)], format_svfr_report(report)
    assert message in report.problems[0].message
    assert str(report.problems[0].path) in format_report(report)  # the CLI's table names it


def test_official_issues_equal_what_the_official_validator_reported_for_the_same_defects(tmp_path, p17_members, flame):
    """The defects of the by-hand check against nersemble_benchmark 0.2.0 (see the README), on participant 17:
    the official validator reported exactly these keys and paths there."""
    mesh, lm = (lambda i: svfr_mesh_path(P17[i], "posed")), (lambda i: svfr_landmarks_path(P17[i], "posed"))
    unpadded = f"017/{SHORT.download_folder()}/mesh_posed.ply"
    members = {n: d for n, d in p17_members.items() if n not in (mesh(0), svfr_mesh_path(SHORT, "posed"))}
    members |= {mesh(1): TETRA, mesh(2): TETRA, lm(2): npy(np.zeros((6, 3))), unpadded: p17_members[mesh(4)],
                mesh(3): trimesh.Trimesh(flame[0], np.empty((0, 3), int), process=False).export(file_type="ply"),
                "notes.txt": b"hi"}
    report = validate_svfr_submission(make_zip(tmp_path / "s.zip", members), participants=[17])
    assert report.official_issues() == {
        "missing_posed_meshes": sorted([mesh(0), svfr_mesh_path(SHORT, "posed")]),
        "empty_posed_meshes": [mesh(3)],
        "missing_posed_landmarks": [lm(1)],
        "wrong_posed_landmarks": [lm(2)],
        "unexpected_files": sorted([unpadded, "notes.txt"]),
    }
    # ours: one problem per defect (the unpadded key once, not as unexpected + missing)
    assert sorted(p.kind for p in report.problems) == sorted(
        ["missing_mesh", "missing_landmarks", "wrong_landmarks", "empty_mesh", "unpadded_timestep", "unexpected_file"])


def test_zip_level_problems(tmp_path, p17_members):
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert validate_svfr_submission(tmp_path / "junk.zip").kinds() == {"not_a_zip"}
    report = validate_svfr_submission(make_zip(tmp_path / "s.zip", {**p17_members, "../evil.ply": b"x"}),
                                      participants=[17])
    assert [(p.kind, p.path) for p in report.problems] == [("unsafe_path", "../evil.ply")]
    assert validate_svfr_submission(make_zip(tmp_path / "e.zip", {})).kinds() == {"missing_svfr_tasks"}


def test_oversized_and_duplicate_entries(tmp_path, p17_members, monkeypatch):
    import warnings

    from nersemble_zarr.submission import validate_svfr

    path = tmp_path / "s.zip"
    make_zip(path, p17_members)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we mean to write
        zf.writestr(FIRST, p17_members[FIRST])
    monkeypatch.setattr(validate_svfr, "MAX_MESH_BYTES", len(p17_members[FIRST]) - 1)  # every mesh is one byte over
    report = validate_svfr_submission(path, participants=[17])
    assert [(p.kind, p.path) for p in report.problems if p.kind == "duplicate"] == [("duplicate", FIRST)]
    too_large = [p for p in report.problems if p.kind == "too_large"]
    assert len(too_large) == 20 and "more than" in too_large[0].message and "not read" in too_large[0].message
    assert report.kinds() == {"duplicate", "too_large"}


def test_warnings_do_not_fail(tmp_path, p17_members, flame):
    v, f = flame
    lm_path = svfr_landmarks_path(P17[0], "posed")
    members = {**p17_members, FIRST: mesh_ply_bytes(v, np.vstack([f, [[0, 0, 1]]])), lm_path: npy(np.zeros(3))}
    report = validate_svfr_submission(make_zip(tmp_path / "s.zip", members), participants=[17])
    assert report.ok
    assert [(w.kind, w.path) for w in report.warnings] == [("zero_area_faces", FIRST), ("landmarks_ignored", lm_path)]
    assert "ignored by the server: the mesh is FLAME topology" in report.warnings[1].message


def test_report_output_is_bounded_per_kind(tmp_path, zips):
    with zipfile.ZipFile(zips["posed"]) as zf:
        members = {n: zf.read(n) for n in zf.namelist()[:1]}
    report = validate_svfr_submission(make_zip(tmp_path / "s.zip", members))
    assert len(report.problems) == 390
    text = format_svfr_report(report)
    assert text.count("[missing_mesh] 0") == 10 and "[missing_mesh] ... and 380 more (--json lists all)" in text
    assert "INVALID" in text


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_submit_and_validate_svfr(tmp_path, flame, vertices):
    v, f = flame
    group = zarr.open_group(tmp_path / "meshes.zarr", mode="w")
    group.create_array("posed", data=vertices[:20], chunks=(8, 5023, 3))
    group.create_array("neutral", data=vertices[:20], chunks=(8, 5023, 3))
    group.create_array("faces", data=f.astype(np.int32))
    keys = group.create_array("keys", shape=(20,), dtype=str)  # variable-length strings: a stable zarr v3 type
    keys[...] = np.array([f"017/{k.download_folder()}" for k in P17], dtype=object)
    out = tmp_path / "svfr.zip"
    runner = CliRunner()
    result = runner.invoke(cli, ["submit", str(tmp_path / "meshes.zarr"), "svfr", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote 40 meshes" in result.output and "holds posed 20/391, neutral 20/391" in result.output
    result = runner.invoke(cli, ["validate", str(out), "svfr", "-p", "17", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "40/40 meshes pass" in result.output
    result = runner.invoke(cli, ["validate", str(out), "svfr", "-p", "17", "--json", "-", "--no-progress"])
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True
    result = runner.invoke(cli, ["validate", str(out), "svfr", "--no-progress"])  # all participants: 371 missing
    assert result.exit_code == 1 and "[missing_mesh]" in result.output and "INVALID" in result.output


def test_cli_submit_svfr_from_npz_with_faces_file(tmp_path, flame, vertices):
    v, f = flame
    np.savez(tmp_path / "m.npz", posed=vertices[:20], keys=np.array([f"017/{k.submission_folder()}" for k in P17]))
    np.save(tmp_path / "faces.npy", f)
    out = tmp_path / "svfr.zip"
    args = ["submit", str(tmp_path / "m.npz"), "svfr", "-o", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, SubmissionError) and "no 'faces' array" in str(result.exception)
    result = CliRunner().invoke(cli, [*args, "--faces", str(tmp_path / "faces.npy")])
    assert result.exit_code == 0, result.output
    assert validate_submission(out, "svfr", participants=[17]).ok
    result = CliRunner().invoke(cli, [*args, "--metadata", "x"])
    assert result.exit_code == 2 and "--metadata apply to the video benchmarks, not to svfr" in result.output


def test_cli_submit_svfr_takes_the_faces_from_the_flame_model(tmp_path, flame, vertices, flame_model_path):
    pytest.importorskip("torch")  # the FLAME model reader lives in the flame layer, which needs torch
    np.savez(tmp_path / "m.npz", posed=vertices[:20], keys=np.array([f"017/{k.submission_folder()}" for k in P17]))
    out = tmp_path / "svfr.zip"
    result = CliRunner().invoke(cli, ["submit", str(tmp_path / "m.npz"), "svfr", "-o", str(out), "--no-progress",
                                      "--faces", str(flame_model_path)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        np.testing.assert_array_equal(load_ply_as_official(zf.read(FIRST)).faces, flame[1])

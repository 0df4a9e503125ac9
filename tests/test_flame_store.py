"""FLAME meshes in the store: lazy per-sequence vertices, the ``flame`` command, resume, and xarray reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch

import xarray as xr
import zarr
from click.testing import CliRunner

from nersemble_zarr import FlameModel, FlameProvider  # noqa: F401
from nersemble_zarr.core import schema  # noqa: F401
from nersemble_zarr.core.benchmark import MONO, NVS
from nersemble_zarr.cli.main import cli
from nersemble_zarr.flame.provider import faces_array_path, flame_group, flame_vertices
from nersemble_zarr.pipelines.flame import write_flame_to_store
from nersemble_zarr.raw.tracking import FlameTracking
from nersemble_zarr.testing.flame_model import synthetic_flame_tracking

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")

# (participant, sequence, tracked frames) — a train sequence and a test sequence, frame counts unlike any chunk
SEQUENCES = ((393, "EXP-1-head", 70), (393, "FREE", 23))


def _write_tracking_group(root: zarr.Group, participant: int, sequence: str, version: int, tr: FlameTracking, complete: bool = True) -> None:
    """A ``tracking_v<version>`` group laid out as schema.py specifies (what ``convert`` writes)."""
    group = root.create_group(schema.tracking_group(MONO, participant, sequence, version))
    group.create_array(schema.TIMESTEP, data=np.asarray(tr.frames, dtype=np.int64), dimension_names=(schema.TIMESTEP,))
    for name, (dims, dtype) in schema.TRACKING_VARIABLES.items():
        data = np.asarray(getattr(tr, name)).astype(dtype)
        data = data.reshape(-1) if name == "shape" else data.reshape(()) if name == "scale" else data
        group.create_array(name, data=data, dimension_names=dims or None)
    group.update_attributes({"version": version, schema.COMPLETE_ATTR: complete})


def _tracking(participant: int, sequence: str, n: int, version: int) -> FlameTracking:
    return synthetic_flame_tracking(n, seed=participant + len(sequence) + 10 * version, frames=np.arange(3, 3 + n))


@pytest.fixture(scope="module")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flame_store") / "store.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.create_group(schema.calibration_group(NVS, 388))  # a benchmark without tracking gets no faces
    for participant, sequence, n in SEQUENCES:
        for version in (1, 2):
            _write_tracking_group(root, participant, sequence, version, _tracking(participant, sequence, n, version))
    zarr.consolidate_metadata(path)
    return path


@pytest.fixture()
def store(template_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store.zarr"
    shutil.copytree(template_store, dst)
    return dst


@pytest.fixture(scope="module")
def model(flame_model_path: Path) -> FlameModel:
    return FlameModel.load(flame_model_path)


def _vertices(store: Path, participant: int, sequence: str, version: int = 2) -> np.ndarray:
    return zarr.open_array(store, path=f"{flame_group(MONO, participant, sequence, version)}/vertices", mode="r")[...]


def test_flame_vertices_is_lazy_and_equals_the_provider(template_store: Path, model: FlameModel) -> None:
    participant, sequence, n = SEQUENCES[0]
    group = zarr.open_group(template_store, mode="r", path=schema.sequence_group(MONO, participant, sequence))
    lazy = flame_vertices(group, version=2, flame_model=model, frames_per_chunk=32)
    assert lazy.shape == (n, 5023, 3) and lazy.dtype == np.float32
    assert lazy.chunks[0] == (32, 32, n - 64)
    expected = FlameProvider(_tracking(participant, sequence, n, 2), model).vertices()
    np.testing.assert_allclose(lazy[40:45].compute(), expected[40:45], atol=1e-6)
    np.testing.assert_allclose(lazy.compute(), expected, atol=1e-6)


def test_flame_vertices_reads_tracking_version_1_when_asked(template_store: Path, model: FlameModel) -> None:
    participant, sequence, n = SEQUENCES[1]
    ds = xr.open_dataset(template_store, engine="zarr", group=schema.tracking_group(MONO, participant, sequence, 1), chunks={})
    v1 = flame_vertices(ds, flame_model=model).compute()
    expected = FlameProvider(_tracking(participant, sequence, n, 1), model).vertices()
    np.testing.assert_allclose(v1, expected, atol=1e-6)


def test_flame_command_writes_vertices_equal_to_in_memory_evaluation(store: Path, flame_model_path: Path, model: FlameModel) -> None:
    result = CliRunner().invoke(cli, ["flame", str(store), "--flame-model", str(flame_model_path), "--workers", "2",
                                      "--frames-per-chunk", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 sequence(s) written (93 frames" in result.output
    for participant, sequence, n in SEQUENCES:
        lazy = flame_vertices(zarr.open_group(store, mode="r", path=schema.tracking_group(MONO, participant, sequence, 2)),
                              flame_model=model, frames_per_chunk=16)
        stored = _vertices(store, participant, sequence)
        # same chunks and batches; torch's intra-op thread count (split across workers) may move the last bit
        np.testing.assert_allclose(stored, lazy.compute(), rtol=0, atol=1e-6)
        expected = FlameProvider(_tracking(participant, sequence, n, 2), model).vertices()
        np.testing.assert_allclose(stored, expected, atol=1e-6)


@pytest.mark.slow
def test_flame_command_on_a_dask_cluster_writes_the_same_vertices(store: Path, flame_model_path: Path, model: FlameModel) -> None:
    """--scheduler: chunks run in two worker processes (model and zarr arrays pickled across)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as cluster:
        result = CliRunner().invoke(cli, ["flame", str(store), "--flame-model", str(flame_model_path), "--scheduler",
                                          cluster.scheduler_address, "--frames-per-chunk", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 sequence(s) written (93 frames" in result.output
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    for participant, sequence, n in SEQUENCES:
        assert root[flame_group(MONO, participant, sequence, 2)].attrs[schema.COMPLETE_ATTR] is True
        expected = FlameProvider(_tracking(participant, sequence, n, 2), model).vertices()
        np.testing.assert_allclose(_vertices(store, participant, sequence), expected, atol=1e-6)
    both = CliRunner().invoke(cli, ["flame", str(store), "--flame-model", str(flame_model_path), "--workers", "2",
                                    "--scheduler", "tcp://127.0.0.1:1"])
    assert both.exit_code == 2 and "either --workers or --scheduler" in both.output


def test_store_holds_faces_once_and_provenance_attrs(store: Path, model: FlameModel) -> None:
    write_flame_to_store(store, model, progress=False)
    root = zarr.open_group(store, mode="r")
    faces = root[faces_array_path(MONO)]
    assert faces.dtype == np.int64 and faces.metadata.dimension_names == ("face", "corner")
    np.testing.assert_array_equal(faces[...], model.faces)
    assert faces_array_path(NVS) not in root  # no tracking in nvs
    participant, sequence, n = SEQUENCES[0]
    group = root[flame_group(MONO, participant, sequence, 2)]
    verts = group["vertices"]
    assert verts.metadata.dimension_names == ("timestep", "vertex", "xyz") and verts.dtype == np.float32
    assert verts.chunks == (64, 5023, 3)
    assert verts.attrs["units"] == "metres" and "world" in verts.attrs["coordinates"]
    assert group.attrs["flame_model"] == "flame2023.pkl" and group.attrs["flame_model_sha256"] == model.sha256
    assert group.attrs[schema.COMPLETE_ATTR] is True
    assert group[schema.TIMESTEP].dtype == np.int64 and group[schema.TIMESTEP].metadata.dimension_names == ("timestep",)
    np.testing.assert_array_equal(group[schema.TIMESTEP][...], np.arange(3, 3 + n))


def test_written_meshes_open_with_xarray_and_in_the_whole_tree(store: Path, model: FlameModel) -> None:
    write_flame_to_store(store, model, version=1, progress=False)
    participant, sequence, n = SEQUENCES[1]
    ds = xr.open_dataset(store, engine="zarr", group=flame_group(MONO, participant, sequence, 1), chunks={})
    assert ds["vertices"].dims == ("timestep", "vertex", "xyz") and ds.sizes["timestep"] == n
    np.testing.assert_array_equal(ds["timestep"].values, np.arange(3, 3 + n))
    np.testing.assert_array_equal(ds["vertices"].values, _vertices(store, participant, sequence, 1))
    tree = xr.open_datatree(store, engine="zarr", chunks={})
    assert tree[f"{flame_group(MONO, participant, sequence, 1)}"]["vertices"].shape == (n, 5023, 3)


def test_rerun_skips_complete_sequences_and_redoes_unfinished_ones(store: Path, model: FlameModel) -> None:
    first = write_flame_to_store(store, model, progress=False)
    assert len(first.written) == 2 and not first.skipped_complete
    (p0, s0, _), (p1, s1, _) = SEQUENCES
    good = _vertices(store, p1, s1)
    # simulate a run killed mid-sequence: chunks overwritten with garbage, completion marker absent
    broken = zarr.open_group(store, mode="r+", path=flame_group(MONO, p0, s0, 2))
    broken.update_attributes({schema.COMPLETE_ATTR: False})
    broken["vertices"][:10] = 0.0
    chunk_file = next((store / flame_group(MONO, p1, s1, 2) / "vertices").rglob("c/*/*/*"))
    mtime = chunk_file.stat().st_mtime_ns
    second = write_flame_to_store(store, model, progress=False)
    assert second.written == [flame_group(MONO, p0, s0, 2)]
    assert second.skipped_complete == [flame_group(MONO, p1, s1, 2)]
    assert chunk_file.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(_vertices(store, p1, s1), good)
    lazy = flame_vertices(zarr.open_group(store, mode="r", path=schema.tracking_group(MONO, p0, s0, 2)), flame_model=model)
    np.testing.assert_allclose(_vertices(store, p0, s0), lazy.compute(), rtol=0, atol=1e-6)
    assert not np.isnan(_vertices(store, p0, s0)).any()


def test_incomplete_tracking_is_skipped_and_reported(store: Path, model: FlameModel) -> None:
    root = zarr.open_group(store, mode="r+")
    participant, sequence, _ = SEQUENCES[1]
    root[schema.tracking_group(MONO, participant, sequence, 2)].update_attributes({schema.COMPLETE_ATTR: False})
    summary = write_flame_to_store(store, model, progress=False)
    assert summary.skipped_incomplete_tracking == [flame_group(MONO, participant, sequence, 2)]
    assert flame_group(MONO, participant, sequence, 2) not in zarr.open_group(store, mode="r")


def test_flame_command_errors_are_one_line(tmp_path: Path, flame_model_path: Path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("nersemble-zarr")
    missing = subprocess.run([str(exe), "flame", str(tmp_path / "nope.zarr"), "--flame-model", str(flame_model_path)],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no store there" in missing.stderr and "Traceback" not in missing.stderr
    bad_model = tmp_path / "model.pkl"
    bad_model.write_bytes(b"\x80\x02}q\x00")
    broken = subprocess.run([str(exe), "flame", str(tmp_path), "--flame-model", str(bad_model)], capture_output=True, text=True)
    assert broken.returncode == 1 and "model.pkl: not a readable pickle" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_flame_vertices_accepts_a_datatree_sequence_node(template_store: Path, model: FlameModel) -> None:
    participant, sequence, n = SEQUENCES[1]
    tree = xr.open_datatree(template_store, engine="zarr", chunks={})
    node = tree[schema.sequence_group(MONO, participant, sequence)]
    lazy = flame_vertices(node, version=2, flame_model=model)
    expected = FlameProvider(_tracking(participant, sequence, n, 2), model).vertices()
    np.testing.assert_allclose(lazy.compute(), expected, atol=1e-6)


@pytest.mark.slow
def test_end_to_end_sample_convert_flame_equals_the_raw_tracking(sample_root: Path, flame_model_path: Path, tmp_path: Path) -> None:
    """Generated raw folder → convert → ``flame`` → meshes equal FlameProvider on the raw npz (train and test)."""
    from nersemble_zarr.core.benchmark import tracking_path
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.read.store import open_sequence

    participant, sequences = 393, ("EXP-1-head", "FREE")  # a train (video + tracking) and a test sequence
    store = tmp_path / "store.zarr"
    convert_benchmark(sample_root, store, benchmarks=MONO, participants=[participant], sequences=sequences, progress=False)
    result = CliRunner().invoke(cli, ["flame", str(store), "--flame-model", str(flame_model_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    model = FlameModel.load(flame_model_path)
    for sequence in sequences:
        provider = FlameProvider(sample_root / MONO / tracking_path(participant, sequence, 2), model)
        stored = xr.open_dataset(store, engine="zarr", group=flame_group(MONO, participant, sequence, 2), chunks={})
        np.testing.assert_allclose(stored["vertices"].values, provider.vertices(), atol=1e-6)
        np.testing.assert_array_equal(stored["timestep"].values, provider.frames)
        lazy = flame_vertices(open_sequence(store, MONO, participant, sequence), flame_model=model)
        np.testing.assert_allclose(lazy.compute(), provider.vertices(), atol=1e-6)
    from nersemble_zarr.read.store import open_store

    tree = open_store(store)  # the meshes fit into the whole store's DataTree next to images and tracking
    node = tree[flame_group(MONO, participant, sequences[0], 2)]
    assert node["vertices"].dims == ("timestep", "vertex", "xyz") and tree[faces_array_path(MONO)].shape == (9976, 3)


def test_open_flame_meshes_returns_vertices_and_faces_and_refuses_unfinished(store: Path, model: FlameModel) -> None:
    from nersemble_zarr.core.errors import NersembleZarrError
    from nersemble_zarr.flame.provider import open_flame_meshes

    participant, sequence, n = SEQUENCES[0]
    with pytest.raises(NersembleZarrError, match=r"FLAME meshes v2 .* not in the store; run 'nersemble-zarr flame"):
        open_flame_meshes(store, MONO, participant, sequence)
    write_flame_to_store(store, model, progress=False)
    ds = open_flame_meshes(store, MONO, participant, sequence)
    assert ds["vertices"].dims == ("timestep", "vertex", "xyz") and ds["vertices"].chunks[0] == (64, n - 64)
    np.testing.assert_array_equal(ds["faces"].values, model.faces)
    np.testing.assert_array_equal(ds["vertices"].values, _vertices(store, participant, sequence))
    zarr.open_group(store, mode="r+", path=flame_group(MONO, participant, sequence, 2)).update_attributes({schema.COMPLETE_ATTR: False})
    with pytest.raises(NersembleZarrError, match="not completely written"):
        open_flame_meshes(store, MONO, participant, sequence)


@pytest.mark.slow
def test_flame_command_killed_midway_resumes_to_the_same_vertices(tmp_path: Path, flame_model_path: Path, model: FlameModel) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from nersemble_zarr.core.errors import NersembleZarrError
    from nersemble_zarr.flame.provider import open_flame_meshes

    participant, sequence, n = 404, "EXP-2-eyes", 1000
    store = tmp_path / "store.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=3)
    _write_tracking_group(root, participant, sequence, 2, _tracking(participant, sequence, n, 2))
    exe = Path(sys.executable).with_name("nersemble-zarr")
    cmd = [str(exe), "flame", str(store), "--flame-model", str(flame_model_path), "--workers", "1", "--frames-per-chunk", "8", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    chunks = store / flame_group(MONO, participant, sequence, 2) / "vertices" / "c"
    try:
        while proc.poll() is None and len(list(chunks.glob("*/*/*"))) < 3:  # observe progress on disk, then kill
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    written = len(list(chunks.glob("*/*/*")))
    assert 3 <= written < n // 8
    with pytest.raises(NersembleZarrError, match="not completely written"):
        open_flame_meshes(store, MONO, participant, sequence)
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    lazy = flame_vertices(zarr.open_group(store, mode="r", path=schema.tracking_group(MONO, participant, sequence, 2)),
                          flame_model=model, frames_per_chunk=8)
    np.testing.assert_array_equal(open_flame_meshes(store, MONO, participant, sequence)["vertices"].values, lazy.compute())

"""`nersemble-zarr convert`: the store equals its sources, resumes after SIGKILL, runs on dask, fails per unit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.cli.main import cli
from nersemble_zarr.pipelines.convert import KILL_AFTER_UNITS_ENV, ConvertError, convert_benchmark
from nersemble_zarr.core.errors import SelectionError
from nersemble_zarr.raw import iter_frames, read_camera_params, read_metadata, read_pcd, read_tracking
from nersemble_zarr.storage.location import StoreLocation
from nersemble_zarr.storage.lock import StoreLock, StoreLockedError
from nersemble_zarr.pipelines.verify import verify_store

NZ = [str(Path(sys.executable).with_name("nersemble-zarr"))]


def _open(store: Path | str) -> zarr.Group:
    return zarr.open_group(store, mode="r", use_consolidated=False)


def _participants(raw: Path, benchmark: str) -> list[int]:
    return [p for p in bm.get_benchmark(benchmark).participants if (raw / benchmark / bm.participant_dir(p)).is_dir()]


def _sequences(raw: Path, benchmark: str, p: int) -> list[str]:
    return [s for s in bm.get_benchmark(benchmark).sequences[p] if (raw / benchmark / bm.sequence_dir(p, s)).is_dir()]


def assert_same_tree(a: Path | str, b: Path | str, prefix: str) -> None:
    """Every group/array below ``prefix`` has the same attrs, metadata and values in both stores."""
    ga, gb = _open(a)[prefix], _open(b)[prefix]
    assert dict(ga.attrs) == dict(gb.attrs), prefix
    ma = dict(ga.members(max_depth=None))
    mb = dict(gb.members(max_depth=None))
    assert sorted(ma) == sorted(mb), prefix
    for name, node in ma.items():
        other = mb[name]
        assert dict(node.attrs) == dict(other.attrs), f"{prefix}/{name} attrs"
        if isinstance(node, zarr.Array):
            assert node.metadata.to_dict() == other.metadata.to_dict(), f"{prefix}/{name} metadata"
            assert np.array_equal(node[...], other[...]), f"{prefix}/{name} values"


# ---------------------------------------------------------------------------------------------
# The converted sample equals its sources
# ---------------------------------------------------------------------------------------------


def test_every_frame_and_alpha_map_equals_the_raw_decode_bit_for_bit(sample_root: Path, converted_store: Path):
    root = _open(converted_store)
    n_videos = 0
    for benchmark in bm.BENCHMARK_NAMES:
        b = bm.get_benchmark(benchmark)
        for p in _participants(sample_root, benchmark):
            for s in _sequences(sample_root, benchmark, p):
                if s not in b.video_sequences(p):
                    continue
                seq = root[schema.sequence_group(benchmark, p, s)]
                assert [str(c) for c in seq[schema.CAMERA][:]] == list(b.train_serials)
                for asset, name in (("images", schema.IMAGES), ("alpha_maps", schema.ALPHA)):
                    arr = seq[name]
                    assert sorted(arr.attrs[schema.COMPLETE_CAMERAS_ATTR]) == sorted(b.train_serials)
                    for i, serial in enumerate(b.train_serials):
                        path = sample_root / benchmark / bm.video_path(p, s, serial, asset)
                        decoded = np.stack(list(iter_frames(path, alpha=asset == "alpha_maps")))
                        assert arr.shape[1] == len(decoded) == seq[schema.TIMESTEP].shape[0]
                        assert np.array_equal(arr[i], decoded), f"{path}"
                        n_videos += 1
    assert n_videos >= 2 * (13 + 1)


def test_store_arrays_have_dims_chunks_and_one_camera_by_timestep_run_per_shard(converted_store: Path):
    seq = _open(converted_store)[schema.sequence_group(bm.NVS, 388, "GLASSES")]
    images, alpha = seq[schema.IMAGES], seq[schema.ALPHA]
    assert images.metadata.dimension_names == schema.IMAGES_DIMS
    assert alpha.metadata.dimension_names == schema.ALPHA_DIMS
    c, t, h, w, _ = images.shape
    assert images.chunks == (1, 1, h, w, 3) and images.shards == (1, min(t, schema.DEFAULT_SHARD_TIMESTEPS), h, w, 3)
    assert alpha.chunks == (1, 1, h, w) and alpha.dtype == np.uint8
    assert images.attrs["codec"]["kind"] == "lossless" and images.attrs["codec"]["compressor"] == schema.LOSSLESS_COMPRESSOR
    assert np.array_equal(seq[schema.TIMESTEP][:], np.arange(t))


def test_calibration_has_all_16_cameras_with_their_split(sample_root: Path, converted_store: Path):
    root = _open(converted_store)
    for benchmark in bm.BENCHMARK_NAMES:
        b = bm.get_benchmark(benchmark)
        for p in _participants(sample_root, benchmark):
            params = read_camera_params(sample_root / benchmark / bm.calibration_path(p))
            g = root[schema.calibration_group(benchmark, p)]
            assert g[schema.CAMERA].metadata.dimension_names == (schema.CAMERA,)
            serials = [str(s) for s in g[schema.CAMERA][:]]
            assert serials == list(bm.SERIALS)
            assert np.array_equal(g[schema.WORLD_2_CAM][:], np.stack([params.world_2_cam[s] for s in serials]))
            assert np.array_equal(g[schema.INTRINSICS][:], np.stack([params.intrinsics[s] for s in serials]))
            assert [str(x) for x in g[schema.SPLIT][:]] == [b.split_of(s) for s in serials]
            assert g[schema.WORLD_2_CAM].dtype == np.float64 and g.attrs[schema.COMPLETE_ATTR] is True


def test_benchmark_metadata_is_stored_as_loaded(sample_root: Path, converted_store: Path):
    root = _open(converted_store)
    for benchmark in bm.BENCHMARK_NAMES:
        meta = read_metadata(sample_root / benchmark / bm.metadata_path(), benchmark)
        assert root[schema.benchmark_group(benchmark)].attrs[schema.METADATA_ATTR] == meta.raw
        assert len(meta.participants) == len(bm.get_benchmark(benchmark).participants)  # all listed, offline


def test_point_clouds_equal_their_pcd_files_in_csr_layout(sample_root: Path, converted_store: Path):
    p, s = 388, "GLASSES"
    g = _open(converted_store)[schema.pointclouds_group(bm.NVS, p, s)]
    folder = sample_root / bm.NVS / Path(bm.pointcloud_path(p, s, 0)).parent
    files = sorted(folder.glob("*.pcd"))
    assert len(files) >= 2
    offsets = g[schema.OFFSETS][:]
    assert offsets[0] == 0 and len(offsets) == len(files) + 1 and offsets[-1] == g[schema.POINTS].shape[0]
    for i, path in enumerate(files):
        cloud = read_pcd(path)
        a, b = offsets[i], offsets[i + 1]
        assert g[schema.CLOUD_TIMESTEP][i] == int(path.stem.split("_")[-1])
        assert np.array_equal(g[schema.POINTS][a:b], cloud.points)
        assert np.array_equal(g[schema.COLORS][a:b], cloud.colors)
        assert np.array_equal(g[schema.NORMALS][a:b], cloud.normals)


def test_tracking_v1_and_v2_of_train_and_test_sequences_equal_their_npz(sample_root: Path, converted_store: Path):
    root = _open(converted_store)
    b = bm.MONO_BENCHMARK
    p = _participants(sample_root, bm.MONO)[0]
    checked_test = False
    for s in _sequences(sample_root, bm.MONO, p):
        for v in (1, 2):
            src = read_tracking(sample_root / bm.MONO / bm.tracking_path(p, s, v))
            g = root[schema.tracking_group(bm.MONO, p, s, v)]
            assert g.attrs["version"] == v and g.attrs["current"] is (v == 2) and g.attrs[schema.COMPLETE_ATTR]
            assert g[schema.TIMESTEP].dtype == np.int64 and np.array_equal(g[schema.TIMESTEP][:], src.frames.reshape(-1))
            for name, (dims, _) in schema.TRACKING_VARIABLES.items():
                value = np.asarray(getattr(src, name))
                assert np.array_equal(np.asarray(g[name][...]).reshape(value.shape), value), f"{s} v{v} {name}"
                assert tuple(g[name].metadata.dimension_names or ()) == dims
        if b.is_test_sequence(p, s):
            seq = root[schema.sequence_group(bm.MONO, p, s)]
            assert schema.IMAGES not in seq.array_keys() and seq.attrs["split"] == "test"
            checked_test = True
    assert checked_test


def test_store_opens_as_an_xarray_datatree_with_dims_from_zarr(converted_store: Path):
    import xarray as xr

    tree = xr.open_datatree(converted_store, engine="zarr", chunks={})
    ds = tree["nvs/388/GLASSES"].to_dataset()
    assert ds["images"].dims == schema.IMAGES_DIMS and ds["images"].dtype == np.uint8
    assert list(ds.camera.values) == list(bm.NVS_BENCHMARK.train_serials)
    assert "timestep" in tree[f"mono_flame_avatar/393/EXP-1-head/{schema.tracking_group_name(2)}"].dims
    assert tree["nvs/388/calibration"]["world_2_cam"].dims == ("camera", "w2c_row", "w2c_col")


def test_rerun_skips_complete_units_and_changes_nothing(sample_root: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    kw = dict(benchmarks="mono_flame_avatar", sequences=["EXP-1-head", "FREE"], progress=False)
    first = convert_benchmark(sample_root, store, **kw)
    assert first.ok and first.done and not first.skipped
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and "c" in p.relative_to(store).parts}
    second = convert_benchmark(sample_root, store, **kw)
    assert second.ok and not second.done and len(second.skipped) == len(first.done)
    after = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and "c" in p.relative_to(store).parts}
    assert before == after and before  # no chunk rewritten


# ---------------------------------------------------------------------------------------------
# Crash safety and parallelism
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_convert_killed_with_sigkill_midway_then_rerun_equals_a_clean_conversion(
    sample_root: Path, converted_store: Path, tmp_path: Path
):
    store = tmp_path / "killed.zarr"
    cmd = NZ + ["convert", str(sample_root), str(store), "--benchmark", "nvs", "--quiet"]
    env = {**os.environ, KILL_AFTER_UNITS_ENV: "5"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    seq = _open(store)[schema.sequence_group(bm.NVS, 388, "GLASSES")]
    marked = len(seq[schema.IMAGES].attrs[schema.COMPLETE_CAMERAS_ATTR]) + len(seq[schema.ALPHA].attrs[schema.COMPLETE_CAMERAS_ATTR])
    assert 0 < marked < 2 * 13  # killed mid-way: some units complete, not all
    assert Path(str(store) + ".nersemble-zarr.lock").exists()  # left behind by the dead process

    rerun = subprocess.run(cmd[:-1] + ["--quiet"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "already complete" in rerun.stdout
    assert_same_tree(store, converted_store, bm.NVS)
    assert not Path(str(store) + ".nersemble-zarr.lock").exists()


def _markers(group: zarr.Group) -> dict[str, object]:
    """Completion markers of every node below ``group`` (``complete`` of groups, ``complete_cameras`` of arrays)."""
    found = {}
    for name, node in group.members(max_depth=None):
        for key in (schema.COMPLETE_ATTR, schema.COMPLETE_CAMERAS_ATTR):
            if key in node.attrs:
                found[f"{name} {key}"] = node.attrs[key]
    return found


@pytest.mark.slow
def test_an_overwrite_killed_midway_leaves_no_stale_marker_in_the_consolidated_metadata(sample_root: Path, tmp_path: Path):
    """Readers open the consolidated copy: after --overwrite is killed it must not call rewritten units complete."""
    store = tmp_path / "over.zarr"
    cmd = NZ + ["convert", str(sample_root), str(store), "--benchmark", "mono_flame_avatar", "--sequence", "EXP-1-head", "--quiet"]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    proc = subprocess.run(cmd + ["--overwrite"], env={**os.environ, KILL_AFTER_UNITS_ENV: "1"}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    prefix = schema.sequence_group(bm.MONO, 393, "EXP-1-head")
    actual = _markers(_open(store)[prefix])
    consolidated = _markers(zarr.open_group(store, mode="r", use_consolidated=True)[prefix])
    for key, value in consolidated.items():
        if value is True:
            assert actual[key] is True, key
        elif isinstance(value, list):
            assert set(value) <= set(actual[key]), key
    rewritten = [k for k, v in actual.items() if v is False or v == []]
    assert rewritten  # killed mid-way: some units are still unmarked


@pytest.mark.slow
def test_rewritten_frames_and_tracking_invalidate_their_levels_and_meshes(sample_root: Path, flame_model_path: Path, tmp_path: Path):
    """Levels and FLAME meshes derive from frames and tracking: --overwrite must not leave them marked complete."""
    pytest.importorskip("torch")  # the flame command; the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.pipelines.info import store_info

    store = tmp_path / "derived.zarr"
    runner = CliRunner()
    convert = ["convert", str(sample_root), str(store), "--benchmark", "mono_flame_avatar", "--sequence", "EXP-1-head", "--quiet"]
    for args in (
        convert,
        ["downscale", str(store), "--factor", "2", "--no-progress"],
        ["flame", str(store), "--flame-model", str(flame_model_path), "--no-progress"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output

    def sequence_info():
        return next(s for b in store_info(store).benchmarks for p in b.participants for s in p.sequences if s.name == "EXP-1-head")

    assert sequence_info().levels == [2] and sequence_info().flame_meshes == [2]
    result = runner.invoke(cli, convert + ["--overwrite"])
    assert result.exit_code == 0, result.output
    info = sequence_info()
    assert info.levels == [] and "level 1/2" not in info.incomplete  # dropped, not left half-valid
    assert info.flame_meshes == [] and "flame meshes v2" in info.incomplete
    result = runner.invoke(cli, ["downscale", str(store), "--factor", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sequence_info().levels == [2]


@pytest.mark.slow
def test_a_dask_local_cluster_with_two_worker_processes_gives_the_same_store(
    sample_root: Path, converted_store: Path, tmp_path: Path
):
    store = tmp_path / "dask.zarr"
    report = convert_benchmark(sample_root, store, benchmarks="nvs", workers=2, progress=False)
    assert report.ok, report.summary()
    assert_same_tree(store, converted_store, bm.NVS)


@pytest.mark.slow
def test_convert_submits_to_an_existing_dask_scheduler_by_address(sample_root: Path, converted_store: Path, tmp_path: Path):
    from distributed import LocalCluster

    store = tmp_path / "sched.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = CliRunner().invoke(cli, [
            "convert", str(sample_root), str(store), "--benchmark", "mono_flame_avatar", "--sequence", "EXP-1-head",
            "--scheduler", cluster.scheduler_address, "--quiet",
        ])
    assert result.exit_code == 0, result.output
    prefix = schema.sequence_group(bm.MONO, 393, "EXP-1-head")
    assert_same_tree(store, converted_store, prefix)


def test_a_second_convert_of_a_locked_store_refuses_naming_the_holder(sample_root: Path, tmp_path: Path):
    store = tmp_path / "locked.zarr"
    with StoreLock(StoreLocation.parse(store)):
        result = CliRunner().invoke(cli, ["convert", str(sample_root), str(store), "--quiet"])
        assert result.exit_code != 0
        assert isinstance(result.exception, StoreLockedError)
        msg = str(result.exception)
        assert f"pid {os.getpid()}" in msg and "another convert is writing" in msg
    assert not (store / "nvs").exists()  # refused before writing anything


def test_a_convert_refused_by_another_commands_lock_names_that_command(sample_root: Path, tmp_path: Path):
    store = tmp_path / "busy.zarr"
    with StoreLock(StoreLocation.parse(store), operation="downscale"):
        result = CliRunner().invoke(cli, ["convert", str(sample_root), str(store), "--quiet"])
        assert isinstance(result.exception, StoreLockedError)
        assert "another downscale is writing" in str(result.exception)
    assert not (store / "nvs").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(sample_root: Path, tmp_path: Path):
    store = tmp_path / "stale.zarr"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = Path(str(store) + ".nersemble-zarr.lock")
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": 0}))
    report = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=["FREE"], progress=False)
    assert report.ok and report.done and not lock.exists()


# ---------------------------------------------------------------------------------------------
# Bad inputs: each fails its unit with a clear message, the rest finishes, a rerun completes
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def broken_raw(sample_root: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of the NVS sample with one truncated, one undecodable, one missing, one too-long video and a bad pcd."""
    from nersemble_zarr.raw.video_writer import VideoWriter

    raw = tmp_path / "raw"
    shutil.copytree(sample_root / bm.NVS, raw / bm.NVS)
    p, s = 388, "GLASSES"
    serials = bm.NVS_BENCHMARK.train_serials
    v = lambda i, kind="images": raw / bm.NVS / bm.video_path(p, s, serials[i], kind)  # noqa: E731
    bad = {"truncated": v(0), "garbage": v(1, "alpha_maps"), "missing": v(2), "too_long": v(3),
           "pcd": raw / bm.NVS / bm.pointcloud_path(p, s, 0)}
    data = bad["truncated"].read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["garbage"].write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4000))
    bad["missing"].unlink()
    n = len(list(iter_frames(v(4))))
    frame = next(iter_frames(v(4)))
    with VideoWriter(str(bad["too_long"]), frame.shape[1], frame.shape[0], 73.0) as w:
        for _ in range(n + 3):
            w.write(frame)
    bad["pcd"].write_bytes(b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4\nGARBAGE\n")
    return raw, bad


@pytest.mark.slow
def test_bad_inputs_fail_their_own_unit_naming_the_file_and_lose_nothing_else(
    broken_raw: tuple[Path, dict[str, Path]], sample_root: Path, converted_store: Path, tmp_path: Path
):
    raw, bad = broken_raw
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["convert", str(raw), str(store), "--quiet"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "5 failed" in out
    for path in bad.values():
        assert str(path) in out, f"{path} not named in:\n{out}"
    assert "expected" in out and "found" in out  # frame count: expected vs found
    seq = _open(store)[schema.sequence_group(bm.NVS, 388, "GLASSES")]
    serials = bm.NVS_BENCHMARK.train_serials
    done_images = set(seq[schema.IMAGES].attrs[schema.COMPLETE_CAMERAS_ATTR])
    done_alpha = set(seq[schema.ALPHA].attrs[schema.COMPLETE_CAMERAS_ATTR])
    assert done_images == set(serials) - {serials[0], serials[2], serials[3]}
    assert done_alpha == set(serials) - {serials[1]}
    assert not seq[schema.POINTCLOUDS].attrs.get(schema.COMPLETE_ATTR, False)
    clean = _open(converted_store)[schema.sequence_group(bm.NVS, 388, "GLASSES")]
    for i, serial in enumerate(serials):  # what did convert equals the clean store
        if serial in done_images:
            assert np.array_equal(seq[schema.IMAGES][i], clean[schema.IMAGES][i])

    # the user restores the files and reruns: only the failed units run, the store is then complete
    shutil.rmtree(raw / bm.NVS)
    shutil.copytree(sample_root / bm.NVS, raw / bm.NVS)
    again = CliRunner().invoke(cli, ["convert", str(raw), str(store), "--quiet"])
    assert again.exit_code == 0, again.output
    assert "5 units converted" in again.output
    assert_same_tree(store, converted_store, bm.NVS)


def test_a_video_with_another_frame_count_than_metadata_fails_with_expected_and_found(
    sample_root: Path, tmp_path: Path
):
    raw = tmp_path / "raw"
    shutil.copytree(sample_root / bm.MONO, raw / bm.MONO)
    p, s = 393, "EXP-1-head"
    meta_path = raw / bm.MONO / bm.metadata_path()
    meta = json.loads(meta_path.read_text())
    n = meta["participants_metadata"][str(p)]["sequences_metadata"][s]["n_frames"]
    meta["participants_metadata"][str(p)]["sequences_metadata"][s]["n_frames"] = n + 2
    meta_path.write_text(json.dumps(meta))
    report = convert_benchmark(raw, tmp_path / "s.zarr", sequences=[s], progress=False)
    failed = {r.unit.asset: r.message for r in report.failed}
    assert set(failed) == {"images", "alpha_maps"}
    assert f"expected {n + 2} frames" in failed["images"] and f"found {n}" in failed["images"]
    assert "cam_222200037.mp4" in failed["images"]
    assert {r.unit.kind for r in report.done} == {"calibration", "tracking"}


def test_optional_assets_absent_from_the_raw_folder_are_reported_not_failed(sample_root: Path, tmp_path: Path):
    raw = tmp_path / "raw"
    for benchmark in bm.BENCHMARK_NAMES:
        shutil.copytree(sample_root / benchmark, raw / benchmark)
    shutil.rmtree(raw / bm.NVS / Path(bm.pointcloud_path(388, "GLASSES", 0)).parent)
    (raw / bm.MONO / bm.tracking_path(393, "FREE", 1)).unlink()
    report = convert_benchmark(raw, tmp_path / "s.zarr", sequences=["GLASSES", "FREE"], progress=False)
    assert report.ok, report.summary()
    assert sorted(r.unit.name for r in report.absent) == ["mono_flame_avatar/393/FREE tracking v1", "nvs/388/GLASSES pointclouds"]
    assert "not in the raw folder" in report.summary()
    seq = _open(tmp_path / "s.zarr")[schema.sequence_group(bm.MONO, 393, "FREE")]
    assert sorted(seq.group_keys()) == [schema.tracking_group_name(2)]
    assert verify_store(tmp_path / "s.zarr", raw, sequences=["GLASSES", "FREE"]).ok


def test_unknown_participant_or_missing_raw_folder_is_a_one_line_error(sample_root: Path, tmp_path: Path):
    with pytest.raises(SelectionError, match="participant 999 is not in nvs or mono_flame_avatar: expected one of 388"):
        convert_benchmark(sample_root, tmp_path / "s.zarr", participants=[999], progress=False)
    with pytest.raises(ConvertError, match="raw benchmark folder not found"):
        convert_benchmark(tmp_path / "nope", tmp_path / "s.zarr", progress=False)
    with pytest.raises(ConvertError, match="must not be the raw folder"):
        convert_benchmark(sample_root, sample_root / "store.zarr", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ConvertError, match="is not a Zarr store"):
        convert_benchmark(sample_root, tmp_path / "full", progress=False)
    proc = subprocess.run(NZ + ["convert", str(tmp_path / "nope"), str(tmp_path / "s.zarr")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr


# ---------------------------------------------------------------------------------------------
# JPEG option and object storage
# ---------------------------------------------------------------------------------------------


def test_jpeg_store_records_its_codec_keeps_alpha_lossless_and_passes_verify(sample_root: Path, tmp_path: Path):
    store = tmp_path / "j.zarr"
    seqs = ["EXP-1-head"]
    result = CliRunner().invoke(cli, [
        "convert", str(sample_root), str(store), "--benchmark", "mono_flame_avatar", "--sequence", seqs[0],
        "--image-codec", "jpeg", "--jpeg-quality", "90", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    seq = _open(store)[schema.sequence_group(bm.MONO, 393, seqs[0])]
    assert seq[schema.IMAGES].attrs["codec"] == {"kind": "jpeg", "quality": 90, "lossless": False}
    path = sample_root / bm.MONO / bm.video_path(393, seqs[0], "222200037", "alpha_maps")
    assert np.array_equal(seq[schema.ALPHA][0], np.stack(list(iter_frames(path, alpha=True))))
    rgb = np.stack(list(iter_frames(sample_root / bm.MONO / bm.video_path(393, seqs[0], "222200037"))))
    assert not np.array_equal(seq[schema.IMAGES][0], rgb)  # really JPEG
    v = CliRunner().invoke(cli, ["verify", str(store), str(sample_root), "--benchmark", "mono_flame_avatar",
                                 "--sequence", seqs[0], "--min-psnr", "28"])
    assert v.exit_code == 0, v.output
    assert "lowest JPEG PSNR" in v.output
    # the same store, rerun lossless without --overwrite: refused per unit, with the way out
    again = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=seqs, progress=False)
    assert not again.ok and "--overwrite" in again.failed[0].message
    redo = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=seqs, overwrite=True, progress=False)
    assert redo.ok and np.array_equal(_open(store)[schema.sequence_group(bm.MONO, 393, seqs[0])][schema.IMAGES][0], rgb)


@pytest.mark.slow
def test_convert_writes_to_s3_through_fsspec(sample_root: Path, converted_store: Path):
    pytest.importorskip("moto")
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}}
        import boto3

        boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bucket")
        fs = s3fs.S3FileSystem(**opts)
        url = "s3://bucket/sample.zarr"
        seqs = ["EXP-1-head", "FREE"]
        report = convert_benchmark(sample_root, url, benchmarks="mono_flame_avatar", sequences=seqs, progress=False,
                                   storage_options=opts)
        assert report.ok, report.summary()
        assert not fs.exists("bucket/sample.zarr.nersemble-zarr.lock")
        remote = zarr.open_group(StoreLocation.parse(url, opts).zarr_store(read_only=True), mode="r")
        local = _open(converted_store)
        for s in seqs:
            for name, node in local[schema.sequence_group(bm.MONO, 393, s)].members(max_depth=None):
                if isinstance(node, zarr.Array):
                    other = remote[f"{schema.sequence_group(bm.MONO, 393, s)}/{name}"]
                    assert np.array_equal(node[...], other[...]) and dict(node.attrs) == dict(other.attrs)
        from nersemble_zarr.pipelines.info import store_info

        info = store_info(url, storage_options=opts)
        assert info.complete and info.bytes > 0
        again = convert_benchmark(sample_root, url, benchmarks="mono_flame_avatar", sequences=seqs, progress=False,
                                  storage_options=opts)
        assert again.ok and not again.done
        # another machine's live convert (fresh heartbeat) keeps this one out
        import time

        fs.pipe_file("bucket/sample.zarr.nersemble-zarr.lock",
                     json.dumps({"host": "elsewhere", "pid": 1, "started": 0, "heartbeat": time.time()}).encode())
        with pytest.raises(StoreLockedError, match="host elsewhere"):
            convert_benchmark(sample_root, url, benchmarks="mono_flame_avatar", sequences=seqs, progress=False,
                              storage_options=opts)
    finally:
        server.stop()


def test_progress_shows_units_frames_rate_on_stderr(sample_root: Path, tmp_path: Path):
    proc = subprocess.run(
        NZ + ["convert", str(sample_root), str(tmp_path / "p.zarr"), "--benchmark", "mono_flame_avatar",
              "--sequence", "EXP-2-eyes"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "frame/s" in proc.stderr and "units 5/5" in proc.stderr
    assert "5 units converted" in proc.stdout and "frames/s" in proc.stdout


# ---------------------------------------------------------------------------------------------
# Storage tiers and levels computed during conversion
# ---------------------------------------------------------------------------------------------

MONO_SEQ = "EXP-1-head"
MONO_SERIAL = "222200037"


def _mono_decode(raw: Path, alpha: bool = False) -> np.ndarray:
    path = raw / bm.MONO / bm.video_path(393, MONO_SEQ, MONO_SERIAL, "alpha_maps" if alpha else "images")
    return np.stack(list(iter_frames(path, alpha=alpha)))


def test_compact_tier_is_bit_exact_to_the_official_decode_verifies_and_is_named(sample_root: Path, tmp_path: Path):
    from nersemble_zarr.pipelines.info import store_info

    store = tmp_path / "c.zarr"
    result = CliRunner().invoke(cli, [
        "convert", str(sample_root), str(store), "-b", "mono_flame_avatar", "-s", MONO_SEQ, "--tier", "compact", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    seq = _open(store)[schema.sequence_group(bm.MONO, 393, MONO_SEQ)]
    assert seq[schema.IMAGES].attrs["codec"]["kind"] == "compact"
    inner = seq[schema.IMAGES].metadata.to_dict()["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == [schema.JPEGXL_CODEC_NAME, "crc32c"]
    np.testing.assert_array_equal(seq[schema.IMAGES][0], _mono_decode(sample_root))
    np.testing.assert_array_equal(seq[schema.ALPHA][0], _mono_decode(sample_root, alpha=True))
    v = CliRunner().invoke(cli, ["verify", str(store), str(sample_root), "-b", "mono_flame_avatar", "-s", MONO_SEQ])
    assert v.exit_code == 0, v.output
    assert "lowest JPEG PSNR" not in v.output  # compared exactly, not by PSNR
    info = next(s for b in store_info(store).benchmarks for p in b.participants for s in p.sequences if s.name == MONO_SEQ)
    assert info.codec["kind"] == "compact" and not info.incomplete
    # another tier on the same store without --overwrite: refused per unit, naming both tiers and the way out
    again = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=[MONO_SEQ], image_codec="jpeg", progress=False)
    assert not again.ok
    assert "encoded as compact, this run asks for jpeg q95" in again.failed[0].message and "--overwrite" in again.failed[0].message


def test_levels_only_store_holds_the_area_averaged_decode_and_readers_open_it_at_its_level(sample_root: Path, tmp_path: Path):
    from nersemble_zarr.imaging import area_average, scale_intrinsics
    from nersemble_zarr.pipelines.check import check_store
    from nersemble_zarr.read.resolver import StoreReadError
    from nersemble_zarr.read.store import open_sequence

    store = tmp_path / "half.zarr"
    args = ["convert", str(sample_root), str(store), "-b", "mono_flame_avatar", "-s", MONO_SEQ, "--levels", "2", "--no-full", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    seq_path = schema.sequence_group(bm.MONO, 393, MONO_SEQ)
    seq = _open(store)[seq_path]
    assert schema.IMAGES not in seq.array_keys() and schema.ALPHA not in seq.array_keys()  # no full resolution
    level = seq[schema.level_group_name(2)]
    assert level.attrs["complete"] is True and level.attrs["factor"] == 2
    rgb, alpha = _mono_decode(sample_root), _mono_decode(sample_root, alpha=True)
    np.testing.assert_array_equal(level[schema.IMAGES][0], area_average(rgb, 2, axes=(1, 2)))
    np.testing.assert_array_equal(level[schema.ALPHA][0], area_average(alpha, 2, axes=(1, 2)))
    assert level[schema.IMAGES].metadata.dimension_names == (schema.CAMERA, schema.TIMESTEP, *schema.level_dims(2), "rgb")
    k = read_camera_params(sample_root / bm.MONO / bm.calibration_path(393)).intrinsics[MONO_SERIAL]
    np.testing.assert_array_equal(level[schema.INTRINSICS][0], scale_intrinsics(np.asarray(k), 2))

    ds = open_sequence(store, bm.MONO, 393, MONO_SEQ, level=2)
    np.testing.assert_array_equal(ds["images"].values[0], area_average(rgb, 2, axes=(1, 2)))
    with pytest.raises(StoreReadError, match=r"full resolution is not stored: this store holds only level\(s\) 2"):
        open_sequence(store, bm.MONO, 393, MONO_SEQ)
    with pytest.raises(StoreReadError, match=r"level 4 \(scale 1/4\) is not stored: this store holds only level\(s\) 2"):
        open_sequence(store, bm.MONO, 393, MONO_SEQ, level=4)

    assert check_store(store).ok
    v = verify_store(store, sample_root, benchmarks="mono_flame_avatar", sequences=[MONO_SEQ])
    assert v.ok and any("level_2/images" in c.name for c in v.checks), v.summary()
    info = CliRunner().invoke(cli, ["info", str(store)])
    assert info.exit_code == 0 and "INCOMPLETE" not in info.output, info.output

    # resume: a camera unmarked in the level is the one unit redone; markers come back, values unchanged
    before = level[schema.IMAGES][...]
    zarr.open_array(store, path=f"{seq_path}/level_2/images", mode="r+").attrs[schema.COMPLETE_CAMERAS_ATTR] = []
    redo = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=[MONO_SEQ], levels=(2,), full=False, progress=False)
    assert redo.ok and [r.unit.name for r in redo.done] == [f"mono_flame_avatar/393/{MONO_SEQ} images cam_{MONO_SERIAL}"]
    after = _open(store)[f"{seq_path}/level_2"]
    assert after[schema.IMAGES].attrs[schema.COMPLETE_CAMERAS_ATTR] == [MONO_SERIAL]
    np.testing.assert_array_equal(after[schema.IMAGES][...], before)

    # --no-full without levels is refused before anything is written
    bad = CliRunner().invoke(cli, ["convert", str(sample_root), str(tmp_path / "x.zarr"), "--no-full"])
    assert bad.exit_code == 1 and not (tmp_path / "x.zarr").exists()


@pytest.mark.slow
def test_levels_written_during_convert_equal_convert_then_downscale(sample_root: Path, converted_store: Path, tmp_path: Path):
    """``convert --levels 2`` (full resolution too) stores the level ``nersemble-zarr downscale --factor 2`` writes."""
    from nersemble_zarr.pipelines.downscale import downscale_store

    store = tmp_path / "both.zarr"
    report = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=[MONO_SEQ], levels=(2,), progress=False)
    assert report.ok, report.summary()
    ref = tmp_path / "ref.zarr"
    assert convert_benchmark(sample_root, ref, benchmarks="mono_flame_avatar", sequences=[MONO_SEQ], progress=False).ok
    downscale_store(ref, [2], progress=False)
    seq_path = schema.sequence_group(bm.MONO, 393, MONO_SEQ)
    assert_same_tree(store, ref, f"{seq_path}/{schema.level_group_name(2)}")
    np.testing.assert_array_equal(_open(store)[f"{seq_path}/images"][...], _open(ref)[f"{seq_path}/images"][...])

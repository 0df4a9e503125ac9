"""convert refuses inconsistent raw inputs, naming them, and loses nothing else (issue 10, point 5).

Each test copies the generated sample, damages what it names, runs the real convert and checks the
message, the markers (the bad unit is not complete) and that every other unit converted complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.pipelines.convert import convert_benchmark
from nersemble_zarr.core.errors import SelectionError
from nersemble_zarr.raw import iter_frames, read_pcd, read_tracking, write_tracking
from nersemble_zarr.pipelines.verify import verify_store
from nersemble_zarr.raw.video_writer import VideoWriter

NZ = [str(Path(sys.executable).with_name("nersemble-zarr"))]
NVS_SEQ = (388, "GLASSES")
MONO_TRAIN = (393, "EXP-1-head")
MONO_TEST = (393, "FREE")
#: One NVS video sequence, one mono train and one mono test sequence: every unit kind, quickly.
SEQUENCES = [NVS_SEQ[1], MONO_TRAIN[1], MONO_TEST[1]]


def _open(store: Path) -> zarr.Group:
    return zarr.open_group(store, mode="r", use_consolidated=False)


def _copy(sample_root: Path, dest: Path) -> Path:
    for benchmark in bm.BENCHMARK_NAMES:
        shutil.copytree(sample_root / benchmark, dest / benchmark, symlinks=True)
    return dest


def _video(raw: Path, benchmark: str, p: int, s: str, serial: str, kind: str = "images") -> Path:
    return raw / benchmark / bm.video_path(p, s, serial, kind)


def _rewrite_resized(path: Path, grow: int) -> tuple[int, int]:
    """Re-encode ``path`` with every frame padded by ``grow`` pixels right and bottom (same frame count)."""
    frames = list(iter_frames(path))
    h, w = frames[0].shape[0] + grow, frames[0].shape[1] + grow
    path.unlink()
    with VideoWriter(str(path), w, h, 24.3) as writer:
        for f in frames:
            writer.write(np.pad(f, ((0, grow), (0, grow), (0, 0)), mode="edge"))
    return h, w


def _complete_cameras(store: Path, benchmark: str, p: int, s: str, name: str) -> set[str]:
    return set(_open(store)[schema.sequence_group(benchmark, p, s)][name].attrs.get(schema.COMPLETE_CAMERAS_ATTR, []))


@pytest.mark.slow
def test_videos_of_another_frame_size_fail_naming_both_files_and_sizes(sample_root: Path, tmp_path: Path):
    raw = _copy(sample_root, tmp_path / "raw")
    serials = bm.NVS_BENCHMARK.train_serials
    odd_nvs = _video(raw, bm.NVS, *NVS_SEQ, serials[5])
    ref_nvs = _video(raw, bm.NVS, *NVS_SEQ, serials[0])
    h0, w0 = next(iter_frames(ref_nvs)).shape[:2]
    h1, w1 = _rewrite_resized(odd_nvs, 2)
    mono_serial = bm.MONO_BENCHMARK.train_serials[0]
    mono_img = _video(raw, bm.MONO, *MONO_TRAIN, mono_serial)
    mono_alpha = _video(raw, bm.MONO, *MONO_TRAIN, mono_serial, "alpha_maps")
    mh, mw = _rewrite_resized(mono_img, 2)  # the case: a 66x66 image with its 64x64 alpha
    store = tmp_path / "s.zarr"

    report = convert_benchmark(raw, store, sequences=SEQUENCES, progress=False)

    failed = {r.unit.name: r.message for r in report.failed}
    nvs_unit = f"nvs/388/GLASSES images cam_{serials[5]}"
    mono_units = [f"mono_flame_avatar/393/EXP-1-head {kind} cam_{mono_serial}" for kind in ("images", "alpha_maps")]
    assert set(failed) == {nvs_unit, *mono_units}, report.summary()
    msg = failed[nvs_unit]  # 1 video against 25 of the sequence's size: that one is refused
    assert str(odd_nvs) in msg and str(ref_nvs) in msg and f"{w1}x{h1}" in msg and f"{w0}x{h0}" in msg
    for unit in mono_units:  # 1 image against 1 alpha: nothing says which is right, both are refused
        m = failed[unit]
        assert str(mono_alpha) in m and str(mono_img) in m and f"{mw}x{mh}" in m and f"{mw - 2}x{mh - 2}" in m
    assert nvs_unit in report.summary()

    # the odd cameras are not marked; everything else is complete
    assert _complete_cameras(store, bm.NVS, *NVS_SEQ, schema.IMAGES) == set(serials) - {serials[5]}
    assert _complete_cameras(store, bm.NVS, *NVS_SEQ, schema.ALPHA) == set(serials)
    root = _open(store)
    seq = root[schema.sequence_group(bm.NVS, *NVS_SEQ)]
    assert seq[schema.IMAGES].shape[2:4] == seq[schema.ALPHA].shape[2:4] == (h0, w0)
    assert schema.IMAGES not in root[schema.sequence_group(bm.MONO, *MONO_TRAIN)]  # nothing written, nothing marked
    assert sum(r.unit.kind != "video" for r in report.done) == 2 + 1 + 4  # 2 calibrations, clouds, 4 tracking files

    # verify no longer passes the store; it names the unmarked cameras
    vr = verify_store(store, raw, sequences=SEQUENCES)
    assert {c.name for c in vr.failed} == {f"nvs/388/GLASSES images cam_{serials[5]}", "mono_flame_avatar/393/EXP-1-head images", "mono_flame_avatar/393/EXP-1-head alpha"}

    # the user replaces the odd videos and reruns: exactly those units run, the store is then complete
    for path in (odd_nvs, mono_img):
        path.unlink()
        shutil.copy(sample_root / path.relative_to(raw), path)
    again = convert_benchmark(raw, store, sequences=SEQUENCES, progress=False)
    assert again.ok and sorted(r.unit.name for r in again.done) == sorted(failed)
    assert verify_store(store, raw, sequences=SEQUENCES).ok


@pytest.mark.slow
def test_non_regular_raw_files_are_refused_by_name_and_never_read(sample_root: Path, tmp_path: Path):
    raw = _copy(sample_root, tmp_path / "raw")
    serials = bm.NVS_BENCHMARK.train_serials
    fifo_video = _video(raw, bm.NVS, *NVS_SEQ, serials[3], "alpha_maps")
    fifo_video.unlink()
    os.mkfifo(fifo_video)  # ffmpeg (or open()) would block on it forever
    zero_pcd = raw / bm.NVS / bm.pointcloud_path(*NVS_SEQ, 2)
    zero_pcd.unlink()
    zero_pcd.symlink_to("/dev/zero")  # read() would never end
    fifo_tracking = raw / bm.MONO / bm.tracking_path(*MONO_TEST, 2)
    fifo_tracking.unlink()
    os.mkfifo(fifo_tracking)
    zero_calib = raw / bm.MONO / bm.calibration_path(393)
    zero_calib.unlink()
    zero_calib.symlink_to("/dev/zero")
    store = tmp_path / "s.zarr"

    # in a child process: a reader that blocks on the FIFO fails this test instead of hanging the suite
    proc = subprocess.run(
        NZ + ["convert", str(raw), str(store), "--quiet"] + [a for s in SEQUENCES for a in ("--sequence", s)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "4 failed" in out, out
    assert f"{fifo_video}: expected a regular video file, found a FIFO (named pipe)" in out
    assert f"{zero_pcd}: expected a regular point cloud file, found a character device (through a symlink)" in out
    assert f"{fifo_tracking}: expected a regular tracking file, found a FIFO (named pipe)" in out
    assert f"{zero_calib}: expected a regular calibration file, found a character device (through a symlink)" in out

    root = _open(store)
    assert _complete_cameras(store, bm.NVS, *NVS_SEQ, schema.ALPHA) == set(serials) - {serials[3]}
    assert _complete_cameras(store, bm.NVS, *NVS_SEQ, schema.IMAGES) == set(serials)
    assert root[schema.pointclouds_group(bm.NVS, *NVS_SEQ)].attrs[schema.COMPLETE_ATTR] is False
    assert root[schema.calibration_group(bm.MONO, 393)].attrs[schema.COMPLETE_ATTR] is False
    assert root[schema.calibration_group(bm.NVS, 388)].attrs[schema.COMPLETE_ATTR]
    assert root[schema.tracking_group(bm.MONO, *MONO_TEST, 1)].attrs[schema.COMPLETE_ATTR]
    assert _complete_cameras(store, bm.MONO, *MONO_TRAIN, schema.IMAGES) == set(bm.MONO_BENCHMARK.train_serials)


def test_a_failed_tracking_unit_leaves_its_sequence_visibly_incomplete(sample_root: Path, tmp_path: Path):
    from nersemble_zarr.pipelines.info import store_info

    raw = _copy(sample_root, tmp_path / "raw")
    bad = raw / bm.MONO / bm.tracking_path(*MONO_TEST, 2)
    bad.write_bytes(bad.read_bytes()[:100])  # a truncated download
    store = tmp_path / "s.zarr"
    report = convert_benchmark(raw, store, benchmarks="mono_flame_avatar", sequences=["FREE"], progress=False)
    assert [r.unit.name for r in report.failed] == ["mono_flame_avatar/393/FREE tracking v2"]
    assert str(bad) in report.failed[0].message
    group = _open(store)[schema.tracking_group(bm.MONO, *MONO_TEST, 2)]
    assert group.attrs[schema.COMPLETE_ATTR] is False  # present and unmarked, not absent ("not downloaded")
    assert _open(store)[schema.tracking_group(bm.MONO, *MONO_TEST, 1)].attrs[schema.COMPLETE_ATTR] is True
    info = store_info(store)
    seq = next(s for b in info.benchmarks for p in b.participants for s in p.sequences if s.name.endswith("FREE"))
    assert not seq.complete and "tracking v2" in seq.incomplete and not info.complete


def test_a_pcd_whose_points_is_smaller_than_its_data_fails_its_unit(sample_root: Path, tmp_path: Path):
    raw = tmp_path / "raw"
    shutil.copytree(sample_root / bm.NVS, raw / bm.NVS)
    pcd = raw / bm.NVS / bm.pointcloud_path(*NVS_SEQ, 4)
    n = len(read_pcd(pcd))
    blob = pcd.read_bytes()
    pcd.write_bytes(blob.replace(f"WIDTH {n}\n".encode(), f"WIDTH {n - 1}\n".encode()).replace(f"POINTS {n}\n".encode(), f"POINTS {n - 1}\n".encode()))
    store = tmp_path / "s.zarr"
    report = convert_benchmark(raw, store, progress=False)
    assert [r.unit.name for r in report.failed] == ["nvs/388/GLASSES pointclouds"]
    assert str(pcd) in report.failed[0].message and f"POINTS = {n - 1}" in report.failed[0].message
    assert len(report.done) == 2 * len(bm.NVS_BENCHMARK.train_serials) + 1  # every video and the calibration
    assert _open(store)[schema.pointclouds_group(bm.NVS, *NVS_SEQ)].attrs[schema.COMPLETE_ATTR] is False


def test_nan_and_inf_in_pcd_and_tracking_are_stored_as_they_are_and_verify_passes(sample_root: Path, tmp_path: Path):
    from nersemble_zarr.raw import write_pcd

    raw = _copy(sample_root, tmp_path / "raw")
    pcd = raw / bm.NVS / bm.pointcloud_path(*NVS_SEQ, 1)
    cloud = read_pcd(pcd)
    cloud.points[0] = [np.nan, np.inf, -np.inf]
    cloud.normals[1] = [np.nan, np.nan, np.nan]
    pcd.unlink()
    write_pcd(pcd, cloud)
    tpath = raw / bm.MONO / bm.tracking_path(*MONO_TEST, 2)
    tracking = read_tracking(tpath)
    tracking.expression[0, :3] = [np.nan, np.inf, -np.inf]
    tracking.frames = tracking.frames.astype(np.float32)
    tracking.frames[-1] = np.nan
    tpath.unlink()
    write_tracking(tpath, tracking)
    store = tmp_path / "s.zarr"
    sequences = [NVS_SEQ[1], MONO_TEST[1]]
    report = convert_benchmark(raw, store, sequences=sequences, progress=False)
    assert report.ok, report.summary()

    root = _open(store)
    pc = root[schema.pointclouds_group(bm.NVS, *NVS_SEQ)]
    a = int(pc[schema.OFFSETS][1])
    assert np.array_equal(pc[schema.POINTS][a], cloud.points[0], equal_nan=True)
    assert np.isnan(pc[schema.NORMALS][a + 1]).all()
    tr = root[schema.tracking_group(bm.MONO, *MONO_TEST, 2)]
    assert np.array_equal(tr["expression"][0, :3], [np.nan, np.inf, -np.inf], equal_nan=True)
    assert np.isnan(tr[schema.TIMESTEP][-1])

    vr = verify_store(store, raw, sequences=sequences)
    assert vr.ok, vr.summary()
    # and a real difference next to the NaNs is still found
    tr_jaw = zarr.open_array(store, path=f"{schema.tracking_group(bm.MONO, *MONO_TEST, 2)}/expression", mode="r+")
    tr_jaw[0, 3] = tr_jaw[0, 3] + 1
    assert [c.name for c in verify_store(store, raw, sequences=sequences).failed] == ["mono_flame_avatar/393/FREE tracking v2"]


# ---------------------------------------------------------------------------------------------
# Participants and sequences missing from the raw folder
# ---------------------------------------------------------------------------------------------


def test_a_selected_participant_missing_from_the_raw_folder_is_a_selection_error(sample_root: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    with pytest.raises(SelectionError, match=r"participant 422 is not in the raw folder: .*nvs/422 not found .*present: nvs/388, mono_flame_avatar/393"):
        convert_benchmark(sample_root, store, participants=[422], progress=False)
    with pytest.raises(SelectionError, match=r"participant 422 is not in the raw folder"):
        convert_benchmark(sample_root, store, participants=[388, 422], progress=False)
    with pytest.raises(SelectionError, match=r"sequence 'FREE' is not in the raw folder .* for participant\(s\) 388; present: 388/GLASSES"):
        convert_benchmark(sample_root, store, participants=[388], sequences=["FREE"], progress=False)
    with pytest.raises(SelectionError, match=r"nvs/388 not found|benchmark folder not found"):
        raw = tmp_path / "mono_only"
        shutil.copytree(sample_root / bm.MONO, raw / bm.MONO)
        convert_benchmark(raw, store, benchmarks="nvs", progress=False)
    assert not store.exists()  # refused before anything was written
    proc = subprocess.run(NZ + ["convert", str(sample_root), str(store), "--participant", "422"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "participant 422" in proc.stderr, proc.stderr


def test_participants_listed_in_metadata_but_not_downloaded_are_reported(sample_root: Path, converted_store: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    shutil.copytree(converted_store, store)  # everything complete: the rerun only plans
    report = convert_benchmark(sample_root, store, progress=False)
    assert report.ok and not report.done
    assert sorted(report.not_in_raw) == sorted(
        [f"nvs/{p}" for p in (422, 443, 445, 475)] + [f"mono_flame_avatar/{p}" for p in (404, 461, 477, 486)]
    )
    assert "listed in metadata.json but not in the raw folder (not downloaded, not converted): nvs/422" in report.summary()

    # a participant's sequence that was not downloaded is listed as well
    raw = tmp_path / "raw"
    shutil.copytree(sample_root / bm.MONO, raw / bm.MONO)
    shutil.rmtree(raw / bm.MONO / bm.sequence_dir(*MONO_TEST))
    partial = convert_benchmark(raw, store, progress=False)
    assert "mono_flame_avatar/393/FREE" in partial.not_in_raw


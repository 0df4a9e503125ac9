"""The one sequence resolver: cameras, levels, completeness, calibration and point-cloud offsets resolved once,
and the same completeness rule in all three facades (xarray, data managers, FrameDataset)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.imaging import scale_intrinsics
from nersemble_zarr.raw import read_camera_params
from nersemble_zarr.read.data_manager import DataManagerError, MonoFlameAvatarDataManager, NVSDataManager
from nersemble_zarr.read.resolver import (
    IncompleteStoreWarning,
    ResolvedSequence,
    StoreReadError,
    open_root,
    resolve_sequence,
    timestep_positions,
)
from nersemble_zarr.read.store import list_participants, list_sequences, open_sequence, pointcloud

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet

UNFINISHED = "222200038"


def _nvs(store: Path) -> tuple[int, str]:
    p = list_participants(store, bm.NVS)[0]
    return p, list_sequences(store, bm.NVS, p)[0]


def _mono(store: Path, test: bool) -> tuple[int, str]:
    p = list_participants(store, bm.MONO)[0]
    return p, [s for s in list_sequences(store, bm.MONO, p) if bm.MONO_BENCHMARK.is_test_sequence(p, s) == test][0]


@pytest.fixture(scope="module")
def partial_store(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the converted store where camera 222200038 of the first NVS sequence is not completely
    converted (its images lack the completion marker, as after a killed convert)."""
    store = tmp_path_factory.mktemp("partial") / "partial.zarr"
    shutil.copytree(converted_store, store)
    p, s = _nvs(store)
    root = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    images = root[f"nvs/{p:03d}/{s}/images"]
    images.update_attributes({"complete_cameras": [c for c in images.attrs["complete_cameras"] if c != UNFINISHED]})
    zarr.consolidate_metadata(str(store))
    return store


def test_resolved_sequence_holds_cameras_timesteps_calibration_and_cloud_offsets(converted_store: Path, sample_root: Path) -> None:
    p, s = _nvs(converted_store)
    root = open_root(converted_store)
    res = resolve_sequence(root, bm.NVS, p, s)
    assert res.has_video and res.level == 1 and res.resize == 1
    assert sorted(res.cameras) == sorted(bm.NVS_BENCHMARK.train_serials)
    assert [res.stored_cameras[i] for i in res.camera_positions] == list(res.cameras)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    assert list(res.timesteps) == ds.timestep.values.tolist()
    calib = read_camera_params(sample_root / bm.NVS / bm.calibration_path(p))
    for i, serial in enumerate(res.calibration.serials):
        np.testing.assert_array_equal(res.calibration.world_2_cam[i], calib.world_2_cam[serial])
        np.testing.assert_array_equal(res.calibration.intrinsics[i], calib.intrinsics[serial])
    assert set(res.calibration.split) == {"train"}
    # point-cloud offsets, resolved once, give the same rows as the xarray CSR view
    t = int(res.cloud_timestep[-1])
    rows = res.cloud_rows(t)
    np.testing.assert_array_equal(
        np.asarray(root[res.groups["pointclouds"]]["points"][rows]), pointcloud(ds, t).points.values
    )
    with pytest.raises(StoreReadError, match="no point cloud at timestep 100000"):
        res.cloud_rows(100000)
    # frames through the integrity guard, labelled with serials and timesteps
    c = res.camera_positions[0]
    np.testing.assert_array_equal(res.frames(root, "images")[c, 0], ds.images.isel(camera=0, timestep=0).values)


def test_resolved_sequence_is_plain_data_that_pickles(converted_store: Path) -> None:
    p, s = _nvs(converted_store)
    res = resolve_sequence(open_root(converted_store), bm.NVS, p, s, level=2, resize=True)
    clone = pickle.loads(pickle.dumps(res))
    assert isinstance(clone, ResolvedSequence) and clone.cameras == res.cameras and clone.timesteps == res.timesteps
    np.testing.assert_array_equal(clone.calibration.intrinsics, res.calibration.intrinsics)
    assert len(pickle.dumps(res)) < 50_000  # no zarr handles, no frames


def test_level_intrinsics_are_scaled_once_for_every_facade(converted_store: Path) -> None:
    p, s = _mono(converted_store, test=False)
    root = open_root(converted_store)
    full = resolve_sequence(root, bm.MONO, p, s)
    with pytest.raises(StoreReadError, match=r"level 2 \(scale 1/2\) is not stored"):
        resolve_sequence(root, bm.MONO, p, s, scale=0.5)
    half = resolve_sequence(root, bm.MONO, p, s, scale=0.5, resize=True)
    assert half.level == 2 and half.resize == 2 and half.frames_path == full.frames_path
    want = np.stack([scale_intrinsics(k, 2) for k in full.calibration.intrinsics])
    np.testing.assert_array_equal(half.calibration.intrinsics, want)
    ds = open_sequence(converted_store, bm.MONO, p, s, level=2, resize=True)
    np.testing.assert_array_equal(ds.intrinsics.values, want)


def test_tracking_only_sequence_resolves_the_evaluated_cameras(converted_store: Path) -> None:
    p, s = _mono(converted_store, test=True)
    res = resolve_sequence(open_root(converted_store), bm.MONO, p, s)
    assert not res.has_video and res.cameras == () and res.frames_path is None
    assert list(res.calibration.serials) == list(bm.MONO_BENCHMARK.evaluation_serials)
    assert "tracking_v2" in res.groups
    assert MonoFlameAvatarDataManager(converted_store, p).list_serials(s) == []


def test_timestep_positions_select_by_value_then_every_nth() -> None:
    stored = [0, 1, 2, 3, 5, 8, 9]
    assert timestep_positions(stored) == list(range(7))
    assert timestep_positions(stored, slice(2, 9)) == [2, 3, 4, 5]
    assert timestep_positions(stored, [9, 0, 4]) == [0, 6]
    assert timestep_positions(stored, 5) == [4]
    assert timestep_positions(stored, slice(1, None), every_nth_frame=2) == [1, 3, 5]
    with pytest.raises(ValueError, match="timesteps must be an integer frame index >= 0, not 3.5"):
        timestep_positions(stored, [3.5])


# ---------------------------------------------------------------------------------------------
# One completeness rule, three facades
# ---------------------------------------------------------------------------------------------


def test_unspecified_cameras_are_the_complete_ones_with_a_warning_in_every_facade(partial_store: Path) -> None:
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    p, s = _nvs(partial_store)
    with pytest.warns(IncompleteStoreWarning, match=UNFINISHED):
        ds = open_sequence(partial_store, bm.NVS, p, s)
    with pytest.warns(IncompleteStoreWarning, match=UNFINISHED):
        serials = NVSDataManager(partial_store, p).list_serials(s)
    with pytest.warns(IncompleteStoreWarning, match=UNFINISHED):
        frames = FrameDataset(partial_store, bm.NVS, p, s)
    want = [c for c in ds.camera.values.tolist()]
    assert UNFINISHED not in want and len(want) == len(bm.NVS_BENCHMARK.train_serials) - 1
    assert serials == want and frames.units[0]["serials"] == want


def test_asking_for_an_incomplete_camera_is_an_error_naming_it_in_every_facade(partial_store: Path) -> None:
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset, FrameDatasetError

    p, s = _nvs(partial_store)
    pattern = f"no video of camera {UNFINISHED}: its frames are not completely converted"
    with pytest.raises(StoreReadError, match=pattern):
        open_sequence(partial_store, bm.NVS, p, s, cameras=[UNFINISHED])
    dm = NVSDataManager(partial_store, p)
    with pytest.warns(IncompleteStoreWarning), pytest.raises(DataManagerError, match=pattern) as info:
        dm.load_image(s, UNFINISHED, 0)
    assert isinstance(info.value, KeyError) and isinstance(info.value, StoreReadError)  # official type, one base
    assert not dm.has_video(s, UNFINISHED)
    with pytest.raises(FrameDatasetError, match=pattern) as info:
        FrameDataset(partial_store, bm.NVS, p, s, cameras=[UNFINISHED, "222200036"])
    assert isinstance(info.value, StoreReadError)
    # the complete cameras still read, in the order asked
    other = "222200036"
    ds = open_sequence(partial_store, bm.NVS, p, s, cameras=[other])
    assert ds.camera.values.tolist() == [other] and ds.world_2_cam.shape == (1, 4, 4)
    np.testing.assert_array_equal(
        dm.load_image(s, other, 1, as_uint8=True), ds.images.sel(camera=other, timestep=1).values
    )
    assert FrameDataset(partial_store, bm.NVS, p, s, cameras=[other]).units[0]["serials"] == [other]


def test_a_camera_that_is_not_stored_is_named(converted_store: Path) -> None:
    p, s = _nvs(converted_store)
    with pytest.raises(StoreReadError, match="no video of camera 222200046: cameras with video are"):
        open_sequence(converted_store, bm.NVS, p, s, cameras=["222200046"])  # hold-out: no video
    with pytest.raises(DataManagerError, match="no video of camera 222200046"):
        NVSDataManager(converted_store, p).load_alpha_map(s, "222200046", 0)


def test_a_stored_level_is_used_when_complete_for_the_chosen_cameras(converted_store: Path, tmp_path: Path) -> None:
    """The level rule, for every facade: the stored level is read when it is complete for the *chosen*
    cameras; otherwise resize=True area-averages full frames, else an error naming the level."""
    from nersemble_zarr.pipelines.downscale import downscale_store

    store = tmp_path / "levels.zarr"
    shutil.copytree(converted_store, store)
    p, s = _nvs(store)
    downscale_store(store, [2], benchmarks=[bm.NVS], participants=[p], sequences=[s], threads=2, progress=False)
    dropped, kept = "222200038", "222200036"
    root = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    images = root[f"nvs/{p:03d}/{s}/level_2/images"]
    images.update_attributes({"complete_cameras": [c for c in images.attrs["complete_cameras"] if c != dropped]})
    zarr.consolidate_metadata(str(store))

    root = open_root(store)
    with pytest.raises(StoreReadError, match=r"level 2 \(scale 1/2\) is not stored"):
        resolve_sequence(root, bm.NVS, p, s, level=2)  # all complete cameras: the level lacks one
    on_the_fly = resolve_sequence(root, bm.NVS, p, s, level=2, resize=True)
    assert on_the_fly.resize == 2 and not on_the_fly.frames_path.endswith("level_2")
    chosen = resolve_sequence(root, bm.NVS, p, s, cameras=[kept], level=2)
    assert chosen.frames_path.endswith("level_2") and chosen.resize == 1
    ds = open_sequence(store, bm.NVS, p, s, cameras=[kept], level=2)
    stored = chosen.frames(root, "images")[chosen.camera_positions[0], 1]
    np.testing.assert_array_equal(ds.images.sel(camera=kept, timestep=1).values, stored)
    with pytest.raises(DataManagerError, match=r"level 2 \(scale 1/2\) is not stored"):
        NVSDataManager(store, p).load_image(s, kept, 1, level=2)  # the data manager serves all complete cameras

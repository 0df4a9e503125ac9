"""The drop-in data managers return what the official loader returns from the raw files: values, shapes, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nersemble_zarr import MonoFlameAvatarDataManager, NVSDataManager
from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.read.data_manager import DataManagerError
from nersemble_zarr.raw import iter_frames, read_camera_params, read_pcd, read_tracking
from nersemble_zarr.read.store import list_participants

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


def raw_video(sample_root: Path, benchmark: str, p: int, s: str, serial: str, kind: str = "images") -> np.ndarray:
    path = sample_root / benchmark / bm.video_path(p, s, serial, kind)
    return np.stack(list(iter_frames(path, alpha=kind == "alpha_maps")))


@pytest.fixture(scope="module")
def nvs(converted_store: Path) -> NVSDataManager:
    return NVSDataManager(converted_store, list_participants(converted_store, bm.NVS)[0])


@pytest.fixture(scope="module")
def mono(converted_store: Path) -> MonoFlameAvatarDataManager:
    return MonoFlameAvatarDataManager(converted_store, list_participants(converted_store, bm.MONO)[0])


def _mono_train(dm: MonoFlameAvatarDataManager) -> str:
    return next(s for s in dm.list_sequences() if dm.list_serials(s))


def test_load_image_is_float64_uint8_over_255_and_uint8_with_as_uint8(nvs: NVSDataManager, sample_root: Path) -> None:
    s = nvs.list_sequences()[0]
    serial = nvs.list_serials(s)[2]
    raw = raw_video(sample_root, bm.NVS, nvs._participant_id, s, serial)
    for t in (0, len(raw) // 2, len(raw) - 1):
        image = nvs.load_image(s, serial, t)
        assert image.dtype == np.float64 and image.shape == raw[t].shape
        np.testing.assert_array_equal(image, raw[t] / 255.)
        as_uint8 = nvs.load_image(s, serial, t, as_uint8=True)
        assert as_uint8.dtype == np.uint8
        np.testing.assert_array_equal(as_uint8, raw[t])


def test_load_alpha_map_is_h_w_1_uint8_first_channel(mono: MonoFlameAvatarDataManager, sample_root: Path) -> None:
    s = _mono_train(mono)
    serial = mono.list_serials(s)[0]
    raw = raw_video(sample_root, bm.MONO, mono._participant_id, s, serial, "alpha_maps")
    t = len(raw) - 1
    alpha = mono.load_alpha_map(s, serial, t)
    assert alpha.dtype == np.uint8 and alpha.shape == raw[t].shape + (1,)
    np.testing.assert_array_equal(alpha[..., 0], raw[t])


def test_load_all_images_every_nth_frame_as_uint8_and_float(mono: MonoFlameAvatarDataManager, sample_root: Path) -> None:
    s = _mono_train(mono)
    serial = mono.list_serials(s)[0]
    raw = raw_video(sample_root, bm.MONO, mono._participant_id, s, serial)
    every3 = mono.load_all_images(s, serial, as_uint8=True, every_nth_frame=3)
    assert isinstance(every3, list) and len(every3) == len(raw[::3])
    np.testing.assert_array_equal(np.stack(every3), raw[::3])
    floats = mono.load_all_images(s, serial)
    assert len(floats) == len(raw) and floats[0].dtype == np.float64
    np.testing.assert_array_equal(np.stack(floats), raw / 255.)


def test_load_camera_calibration_equals_camera_params_json(nvs: NVSDataManager, sample_root: Path) -> None:
    params = read_camera_params(sample_root / bm.NVS / bm.calibration_path(nvs._participant_id))
    got = nvs.load_camera_calibration()
    assert sorted(got.world_2_cam) == sorted(params.world_2_cam) == sorted(bm.SERIALS)
    for serial in bm.SERIALS:  # dreifus Pose/Intrinsics hold float32(value), as the official loader returns
        np.testing.assert_array_equal(got.world_2_cam[serial], params.world_2_cam[serial].astype(np.float32))
        np.testing.assert_array_equal(got.intrinsics[serial], params.intrinsics[serial].astype(np.float32))
        assert got.world_2_cam[serial].shape == (4, 4) and got.intrinsics[serial].shape == (3, 3)
        assert got.world_2_cam[serial].dtype == got.intrinsics[serial].dtype == np.float32
        # what user code calls on them: the camera centre and viewing direction in world coordinates
        w2c = params.world_2_cam[serial]
        cam_2_world = got.world_2_cam[serial].invert()
        np.testing.assert_allclose(np.asarray(cam_2_world.get_translation()), -w2c[:3, :3].T @ w2c[:3, 3], atol=1e-5)
        np.testing.assert_allclose(np.asarray(cam_2_world.get_look_direction()), w2c[2, :3], atol=1e-6)
        assert got.intrinsics[serial].fx == np.float32(params.intrinsics[serial][0, 0])


def test_load_pointcloud_is_float32_with_colors_in_0_1_as_open3d(nvs: NVSDataManager, sample_root: Path) -> None:
    s = nvs.list_sequences()[0]
    folder = sample_root / bm.NVS / bm.sequence_dir(nvs._participant_id, s) / "pointclouds"
    pcd_files = sorted(folder.glob("*.pcd"))
    assert pcd_files, "the sample has point clouds"
    t = int(pcd_files[-1].stem.split("_")[1])
    cloud = read_pcd(pcd_files[-1])
    points, colors, normals = nvs.load_pointcloud(s, t)
    assert points.dtype == colors.dtype == normals.dtype == np.float32
    np.testing.assert_array_equal(points, cloud.points)
    np.testing.assert_array_equal(colors, (cloud.colors / 255.).astype(np.float32))
    assert colors.min() >= 0.0 and colors.max() <= 1.0
    if cloud.normals is not None:
        np.testing.assert_array_equal(normals, cloud.normals)
    with pytest.raises(DataManagerError, match=r"no point cloud at timestep 99999"):
        nvs.load_pointcloud(s, 99999)


@pytest.mark.parametrize("version", [1, 2])
def test_load_flame_tracking_has_official_fields_shapes_and_values(
    mono: MonoFlameAvatarDataManager, sample_root: Path, version: int
) -> None:
    for s in mono.list_sequences():
        npz = read_tracking(sample_root / bm.MONO / bm.tracking_path(mono._participant_id, s, version))
        got = mono.load_flame_tracking(s, version=version)
        for key, want in npz.as_dict().items():
            value = getattr(got, key)
            assert value.shape == want.shape, key
            np.testing.assert_array_equal(value, want, err_msg=f"{s} {key}")
            if key != "frames":
                assert value.dtype == np.float32, key


def test_listing_methods_describe_the_store(mono: MonoFlameAvatarDataManager, nvs: NVSDataManager, sample_root: Path) -> None:
    p = mono._participant_id
    on_disk = {d.name for d in (sample_root / bm.MONO / bm.participant_dir(p) / "sequences").iterdir()}
    assert set(mono.list_sequences()) == on_disk
    assert mono.list_sequences() == [s for s in bm.MONO_BENCHMARK.sequences[p] if s in on_disk]
    s = _mono_train(mono)
    n = len(raw_video(sample_root, bm.MONO, p, s, "222200037"))
    assert mono.list_serials(s) == ["222200037"]
    assert mono.get_n_timesteps(s) == n and mono.list_timesteps(s) == list(range(n))
    assert mono.has_sequence(s) and mono.has_video(s, "222200037") and not mono.has_video(s, "222200046")
    assert not mono.has_sequence("EXP-1-head-missing")
    test_seq = next(t for t in mono.list_sequences() if bm.MONO_BENCHMARK.is_test_sequence(p, t))
    assert mono.list_serials(test_seq) == [] and not mono.has_video(test_seq, "222200037")
    assert mono.get_n_timesteps(test_seq) == read_tracking(sample_root / bm.MONO / bm.tracking_path(p, test_seq)).n_timesteps
    assert sorted(nvs.list_serials(nvs.list_sequences()[0])) == sorted(bm.NVS_BENCHMARK.train_serials)


def test_errors_name_sequence_camera_and_timestep(nvs: NVSDataManager) -> None:
    s = nvs.list_sequences()[0]
    with pytest.raises(DataManagerError, match=r"no video of camera 222200046"):
        nvs.load_image(s, "222200046", 0)
    with pytest.raises(DataManagerError, match=rf"sequence '{s}' camera 222200038 has no timestep 100000"):
        nvs.load_image(s, "222200038", 100000)
    with pytest.raises(DataManagerError, match=r"sequence 'HAIR' is not in the store"):
        nvs.load_image("HAIR", "222200038", 0)


def test_scale_reads_a_stored_level_or_resizes_only_when_asked(mono: MonoFlameAvatarDataManager) -> None:
    s = _mono_train(mono)
    serial = mono.list_serials(s)[0]
    with pytest.raises(DataManagerError, match=r"level 4 \(scale 1/4\) is not stored"):
        mono.load_image(s, serial, 0, scale=0.25)
    full = mono.load_image(s, serial, 1, as_uint8=True)
    quarter = mono.load_image(s, serial, 1, as_uint8=True, scale=0.25, resize=True)
    h, w = full.shape[0] // 4, full.shape[1] // 4
    assert quarter.shape == (h, w, 3)
    want = np.floor(full[: h * 4, : w * 4].reshape(h, 4, w, 4, 3).astype(np.float64).mean(axis=(1, 3)) + 0.5)
    np.testing.assert_array_equal(quarter, want.astype(np.uint8))
    assert mono.load_alpha_map(s, serial, 1, level=4, resize=True).shape == (h, w, 1)


# ---------------------------------------------------------------------------------------------
# get_*_path: the raw files the store was converted from
# ---------------------------------------------------------------------------------------------


def test_path_getters_return_the_converted_raw_files(nvs: NVSDataManager, mono: MonoFlameAvatarDataManager, sample_root: Path) -> None:
    raw = sample_root.resolve()
    p, s = nvs._participant_id, nvs.list_sequences()[0]
    serial = nvs.list_serials(s)[0]
    # the official: f"{benchmark_folder}/{benchmark}/{relative path}"
    assert nvs.get_camera_calibration_path() == f"{raw}/nvs/{bm.calibration_path(p)}"
    assert nvs.get_images_path(s, serial) == f"{raw}/nvs/{bm.video_path(p, s, serial)}"
    assert nvs.get_alpha_maps_path(s, serial) == f"{raw}/nvs/{bm.video_path(p, s, serial, 'alpha_maps')}"
    assert nvs.get_pointcloud_path(s, 0) == f"{raw}/nvs/{bm.pointcloud_path(p, s, 0)}"
    for path in (nvs.get_camera_calibration_path(), nvs.get_images_path(s, serial), nvs.get_alpha_maps_path(s, serial),
                 nvs.get_pointcloud_path(s, 0)):
        assert Path(path).is_file(), path
    # what the store does not hold: where the official toolkit looks, nothing there (visualize_cameras.py tests
    # Path(get_pointcloud_path(seq, t)).exists() to decide whether to draw a cloud)
    stored = set(nvs._resolve(s).cloud_timestep.tolist())
    absent = next(t for t in range(1000) if t not in stored)
    assert not Path(nvs.get_pointcloud_path(s, absent)).exists()
    assert not Path(nvs.get_images_path(s, "222200046")).exists()  # a hold-out camera: no video
    m = mono._participant_id
    seq = mono.list_sequences()[0]
    for version in (1, 2):
        path = mono.get_flame_tracking_path(seq, version)
        assert path == f"{raw}/mono_flame_avatar/{bm.tracking_path(m, seq, version)}" and Path(path).is_file()
    assert mono.get_flame_tracking_path(seq) == mono.get_flame_tracking_path(seq, 2)
    with pytest.raises(ValueError, match="tracking version must be one of \\[1, 2\\], not 3"):
        mono.get_flame_tracking_path(seq, 3)


def _set_source_path(store: Path, value: str | None) -> None:
    """Rewrite the root attrs' raw folder as an older convert (None) or a moved folder would have left it."""
    import json

    doc = json.loads((store / "zarr.json").read_text())
    info = doc["attributes"]["nersemble_zarr"]
    if value is None:
        info.pop("source_path", None)
    else:
        info["source_path"] = value
    (store / "zarr.json").write_text(json.dumps(doc))


def test_path_getters_say_when_the_raw_file_is_unknown_gone_or_changed(converted_store: Path, sample_root: Path, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "copy.zarr"
    shutil.copytree(converted_store, store)
    before = sorted(str(f.relative_to(store)) for f in store.rglob("*"))
    p = list_participants(store, bm.NVS)[0]
    s = NVSDataManager(store, p).list_sequences()[0]

    _set_source_path(store, None)  # a store converted before the raw folder was recorded
    dm = NVSDataManager(store, p)
    with pytest.raises(DataManagerError, match=r"copy.zarr: the store records no raw folder .* no source path for nvs participant "
                                               rf"{p:03d} calibration; the store's data loads with load_camera_calibration\(\)"):
        dm.get_camera_calibration_path()
    with pytest.raises(DataManagerError, match=r"records no raw folder .* camera 222200038 images; .* load_image\(\)"):
        dm.get_images_path(s, "222200038")

    moved = tmp_path / "moved"  # the raw folder moved: only the calibration is there, with other bytes
    calibration = moved / "nvs" / bm.calibration_path(p)
    calibration.parent.mkdir(parents=True)
    calibration.write_text((sample_root / "nvs" / bm.calibration_path(p)).read_text() + "\n")
    _set_source_path(store, str(moved))
    dm = NVSDataManager(store, p)
    gone = f"{moved}/nvs/{bm.video_path(p, s, '222200038')}"
    with pytest.raises(DataManagerError, match=rf"camera 222200038 images: the store was converted from {gone}, which no longer "
                                               r"exists \(raw folder moved or deleted\); the store holds the data: use load_image\(\)"):
        dm.get_images_path(s, "222200038")
    with pytest.raises(DataManagerError, match=r"point cloud at timestep 0: the store was converted from .*frame_00000.pcd, which no longer exists"):
        dm.get_pointcloud_path(s, 0)
    with pytest.raises(DataManagerError, match=rf"{calibration} has changed since the store was converted from it \(\d+ bytes, "
                                               r"converted from \d+ bytes\)"):
        dm.get_camera_calibration_path()
    assert dm.get_images_path(s, "222200038", check=False) == gone  # the path alone, unchecked
    assert dm.load_image(s, "222200038", 0).shape[2] == 3  # the store's data is unaffected
    assert sorted(str(f.relative_to(store)) for f in store.rglob("*")) == before  # nothing written but the attrs edit

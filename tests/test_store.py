"""open_store / open_sequence: lazy dask-backed trees and datasets that hold exactly what the raw files hold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.storage import LocalStore

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr import open_sequence, open_store
from nersemble_zarr.raw import iter_frames, read_camera_params, read_tracking
from nersemble_zarr.read.store import StoreReadError, list_participants, list_sequences, select_frames

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


class RecordingStore(LocalStore):
    """A read-only LocalStore that records every key it is asked for (whole or byte ranges)."""

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root, read_only=True)
        self.keys: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        self.keys.append(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        self.keys.extend(k for k, _ in key_ranges)
        return await super().get_partial_values(prototype, key_ranges)

    def frame_reads(self) -> list[str]:
        """Keys of chunks/shards of images or alpha (not metadata, not coordinates)."""
        return [k for k in self.keys if "/c/" in k and k.split("/c/")[0].rsplit("/", 1)[-1] in ("images", "alpha")]


def raw_video(sample_root: Path, benchmark: str, participant: int, sequence: str, serial: str,
              kind: str = "images") -> np.ndarray:
    """All frames of one raw mp4, decoded the official way: (T, H, W, 3) or alpha (T, H, W) uint8."""
    path = sample_root / benchmark / bm.video_path(participant, sequence, serial, kind)
    return np.stack(list(iter_frames(path, alpha=kind == "alpha_maps")))


def nvs_sequence(store: Path) -> tuple[int, str]:
    p = list_participants(store, bm.NVS)[0]
    return p, list_sequences(store, bm.NVS, p)[0]


def mono_train_sequence(store: Path) -> tuple[int, str]:
    p = list_participants(store, bm.MONO)[0]
    train = [s for s in list_sequences(store, bm.MONO, p) if not bm.MONO_BENCHMARK.is_test_sequence(p, s)]
    return p, train[0]


def mono_test_sequence(store: Path) -> tuple[int, str]:
    p = list_participants(store, bm.MONO)[0]
    test = [s for s in list_sequences(store, bm.MONO, p) if bm.MONO_BENCHMARK.is_test_sequence(p, s)]
    return p, test[0]


@contextmanager
def edited_copy(converted_store: Path, copy: Path) -> Iterator[zarr.Group]:
    """Copy the converted store to ``copy`` and yield its writable root; metadata is re-consolidated after the edit."""
    shutil.copytree(converted_store, copy)
    yield zarr.open_group(str(copy), mode="r+", use_consolidated=False)
    zarr.consolidate_metadata(str(copy))


def test_open_store_is_dask_backed_with_one_frame_per_chunk(converted_store: Path) -> None:
    tree = open_store(converted_store)
    p, s = nvs_sequence(converted_store)
    node = tree[f"nvs/{p:03d}/{s}"]
    images, alpha = node["images"], node["alpha"]
    assert images.dims == ("camera", "timestep", "height", "width", "rgb")
    assert alpha.dims == ("camera", "timestep", "height", "width")
    n_c, n_t, h, w, _ = images.shape
    assert images.data.chunksize == (1, 1, h, w, 3)
    assert alpha.data.chunksize == (1, 1, h, w)
    assert images.data.npartitions == n_c * n_t
    assert images.dtype == np.uint8 and alpha.dtype == np.uint8


def test_opening_and_selecting_read_no_frame_chunk_until_values(converted_store: Path) -> None:
    recorder = RecordingStore(converted_store)
    tree = open_store(recorder)
    p, s = nvs_sequence(converted_store)
    ds = open_sequence(recorder, bm.NVS, p, s)
    serial = str(ds.camera.values[1])
    selection = ds.images.sel(camera=serial, timestep=slice(0, 3))
    scaled = (selection.astype("float32") / 255.0).mean()  # building a graph reads nothing either
    _ = tree[f"nvs/{p:03d}/{s}"]["alpha"].isel(camera=0, timestep=-1)
    assert recorder.frame_reads() == []

    values = ds.images.sel(camera=serial, timestep=2).values
    reads = recorder.frame_reads()
    assert reads, "computing a frame must read it from the store"
    camera_index = list(ds.camera.values).index(serial)
    assert all(k.startswith(f"nvs/{p:03d}/{s}/images/c/{camera_index}/") for k in reads), reads
    assert values.shape == ds.images.shape[2:]
    assert 0.0 <= float(scaled.compute()) <= 1.0


def test_sel_by_serial_and_timestep_slice_equals_raw_decode(converted_store: Path, sample_root: Path) -> None:
    p, s = nvs_sequence(converted_store)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    serial = str(ds.camera.values[-1])
    got = ds.images.sel(camera=serial, timestep=slice(0, 100))
    want = raw_video(sample_root, bm.NVS, p, s, serial)
    assert got.dims == ("timestep", "height", "width", "rgb")
    np.testing.assert_array_equal(got.values, want)
    np.testing.assert_array_equal(ds.alpha.sel(camera=serial).values, raw_video(sample_root, bm.NVS, p, s, serial, "alpha_maps"))
    np.testing.assert_array_equal(ds.timestep.values, np.arange(len(want)))


def test_every_camera_of_both_benchmarks_equals_raw_decode(converted_store: Path, sample_root: Path) -> None:
    for benchmark, (p, s) in ((bm.NVS, nvs_sequence(converted_store)), (bm.MONO, mono_train_sequence(converted_store))):
        ds = open_sequence(converted_store, benchmark, p, s)
        assert sorted(ds.camera.values.tolist()) == sorted(bm.get_benchmark(benchmark).train_serials)
        frames = ds[["images", "alpha"]].compute()
        for serial in ds.camera.values.tolist():
            np.testing.assert_array_equal(frames.images.sel(camera=serial).values, raw_video(sample_root, benchmark, p, s, serial))
            np.testing.assert_array_equal(
                frames.alpha.sel(camera=serial).values, raw_video(sample_root, benchmark, p, s, serial, "alpha_maps")
            )


def test_calibration_is_aligned_on_camera_and_equals_camera_params_json(converted_store: Path, sample_root: Path) -> None:
    p, s = nvs_sequence(converted_store)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    params = read_camera_params(sample_root / bm.NVS / bm.calibration_path(p))
    for serial in ds.camera.values.tolist():
        np.testing.assert_array_equal(ds.world_2_cam.sel(camera=serial).values, params.world_2_cam[serial])
        np.testing.assert_array_equal(ds.intrinsics.sel(camera=serial).values, params.intrinsics[serial])
        assert ds.split.sel(camera=serial).item() == bm.NVS_BENCHMARK.split_of(serial)
    assert ds.world_2_cam.dtype == np.float64 and ds.world_2_cam.shape[1:] == (4, 4)
    assert ds.intrinsics.shape[1:] == (3, 3)


def test_tracking_v2_shares_the_video_timestep_dim_and_equals_npz(converted_store: Path, sample_root: Path) -> None:
    p, s = mono_train_sequence(converted_store)
    ds = open_sequence(converted_store, bm.MONO, p, s)
    npz = read_tracking(sample_root / bm.MONO / bm.tracking_path(p, s, 2))
    if np.array_equal(npz.frames, ds.timestep.values):
        assert ds.expression.dims == ("timestep", "expression_coeff")
    else:  # tracked frames differ from the video frames: tracking keeps its own `frame` dim
        assert ds.expression.dims == ("frame", "expression_coeff")
    for key in ("expression", "rotation", "rotation_matrices", "translation", "jaw", "neck", "eyes"):
        np.testing.assert_array_equal(ds[key].values, getattr(npz, key), err_msg=key)
        assert ds[key].dtype == np.float32
    np.testing.assert_array_equal(ds["shape"].values, npz.shape[0])
    assert ds["scale"].values.item() == npz.scale.item()
    assert ds.attrs["tracking_version"] == 2
    v1 = open_sequence(converted_store, bm.MONO, p, s, tracking_version=1)
    np.testing.assert_array_equal(
        v1.expression.values, read_tracking(sample_root / bm.MONO / bm.tracking_path(p, s, 1)).expression
    )


def test_tracking_only_test_sequence_opens_with_tracked_timesteps_and_evaluated_cameras(
    converted_store: Path, sample_root: Path
) -> None:
    p, s = mono_test_sequence(converted_store)
    ds = open_sequence(converted_store, bm.MONO, p, s)
    npz = read_tracking(sample_root / bm.MONO / bm.tracking_path(p, s, 2))
    assert "images" not in ds
    np.testing.assert_array_equal(ds.timestep.values, npz.frames)
    np.testing.assert_array_equal(ds.translation.values, npz.translation)
    assert ds.camera.values.tolist() == list(bm.MONO_BENCHMARK.evaluation_serials)
    assert ds.world_2_cam.shape == (4, 4, 4)


def test_select_frames_by_split_camera_timestep_and_every_nth(converted_store: Path) -> None:
    p, s = nvs_sequence(converted_store)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    serials = ds.camera.values.tolist()[:2]
    sub = select_frames(ds, cameras=serials, timesteps=slice(1, None), every_nth_frame=2, split="train")
    assert sub.camera.values.tolist() == serials
    np.testing.assert_array_equal(sub.timestep.values, ds.timestep.values[1::2])
    np.testing.assert_array_equal(sub.images.values, ds.images.values[:2, 1::2])
    with pytest.raises(StoreReadError, match="222200046"):
        select_frames(ds, cameras="222200046")


def test_missing_sequence_error_names_it_and_lists_what_is_there(converted_store: Path) -> None:
    with pytest.raises(StoreReadError, match=r"nvs participant 422 sequence 'EXP-2-eyes' is not in the store"):
        open_sequence(converted_store, bm.NVS, 422, "EXP-2-eyes")


def test_missing_level_raises_unless_resize_is_asked(converted_store: Path) -> None:
    p, s = mono_train_sequence(converted_store)
    with pytest.raises(StoreReadError, match="--factor 8"):
        open_sequence(converted_store, bm.MONO, p, s, level=8)
    small = open_sequence(converted_store, bm.MONO, p, s, scale=0.125, resize=True)
    full = open_sequence(converted_store, bm.MONO, p, s)
    h, w = full.images.shape[2] // 8, full.images.shape[3] // 8
    assert small.images.shape[2:4] == (h, w) and small.alpha.shape[2:4] == (h, w)
    block = full.images.values[0, 0, :8, :8].astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_array_equal(small.images.values[0, 0, 0, 0], np.floor(block + 0.5).astype(np.uint8))


def test_lossless_store_opens_in_plain_xarray_without_our_package(converted_store: Path) -> None:
    p, s = nvs_sequence(converted_store)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    serial = str(ds.camera.values[0])
    want = int(ds.images.sel(camera=serial).astype("int64").sum().values)
    code = f"""
import json, sys, warnings
warnings.simplefilter("ignore")
import xarray as xr
tree = xr.open_datatree({str(converted_store)!r}, engine="zarr", chunks={{}})
node = tree["nvs/{p:03d}/{s}"]
images = node["images"]
out = {{"dask": type(images.data).__module__.split(".")[0],
       "sum": int(images.sel(camera={serial!r}).astype("int64").sum().values),
       "leaked": "nersemble_zarr" in sys.modules}}
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"dask": "dask", "sum": want, "leaked": False}


def test_fsspec_url_opens_the_same_data(converted_store: Path) -> None:
    p, s = mono_train_sequence(converted_store)
    local = open_sequence(converted_store, bm.MONO, p, s)
    remote = open_sequence(f"file://{converted_store}", bm.MONO, p, s)
    np.testing.assert_array_equal(remote.images.isel(timestep=-1).values, local.images.isel(timestep=-1).values)
    tree = open_store(f"file://{converted_store}")
    assert isinstance(tree, xr.DataTree)
    assert f"/mono_flame_avatar/{p:03d}/{s}" in tree.groups


def test_cameras_without_completion_marker_are_left_out_with_a_warning(converted_store: Path, tmp_path: Path) -> None:
    from nersemble_zarr import NVSDataManager
    from nersemble_zarr.read.store import IncompleteStoreWarning

    store = tmp_path / "partial.zarr"
    p, s = nvs_sequence(converted_store)
    unfinished = "222200038"
    with edited_copy(converted_store, store) as root:
        images = root[f"nvs/{p:03d}/{s}/images"]
        images.update_attributes({"complete_cameras": [c for c in images.attrs["complete_cameras"] if c != unfinished]})

    with pytest.warns(IncompleteStoreWarning, match=unfinished):
        ds = open_sequence(store, bm.NVS, p, s)
    assert unfinished not in ds.camera.values.tolist()
    assert ds.sizes["camera"] == len(bm.NVS_BENCHMARK.train_serials) - 1
    dm = NVSDataManager(store, p)
    with pytest.warns(IncompleteStoreWarning, match=unfinished):  # the same rule as open_sequence (one resolver)
        assert unfinished not in dm.list_serials(s) and not dm.has_video(s, unfinished)
    with pytest.raises(KeyError, match=f"no video of camera {unfinished}: its frames are not completely converted"):
        dm.load_image(s, unfinished, 0)
    with pytest.raises(StoreReadError, match=f"camera {unfinished}: its frames are not completely converted"):
        open_sequence(store, bm.NVS, p, s, cameras=[unfinished])


def test_tracking_and_point_clouds_without_completion_marker_are_left_out(converted_store: Path, tmp_path: Path) -> None:
    """A tracking/pointclouds group a killed convert left unmarked is never served as if complete."""
    from nersemble_zarr import MonoFlameAvatarDataManager, NVSDataManager
    from nersemble_zarr.read.store import IncompleteStoreWarning

    store = tmp_path / "partial.zarr"
    pm, sm = mono_train_sequence(converted_store)
    pn, sn = nvs_sequence(converted_store)
    with edited_copy(converted_store, store) as root:
        root[f"mono_flame_avatar/{pm:03d}/{sm}/tracking_v2"].update_attributes({"complete": False})
        root[f"nvs/{pn:03d}/{sn}/pointclouds"].update_attributes({"complete": False})

    with pytest.warns(IncompleteStoreWarning, match="FLAME tracking v2 .*not completely converted"):
        mono = open_sequence(store, bm.MONO, pm, sm)
    assert "expression" not in mono and mono.sizes["camera"] > 0
    assert "expression" in open_sequence(store, bm.MONO, pm, sm, tracking_version=1)
    with pytest.warns(IncompleteStoreWarning, match="point clouds .*not completely converted"):
        nvs = open_sequence(store, bm.NVS, pn, sn)
    assert "points" not in nvs
    with pytest.raises(KeyError, match="FLAME tracking v2 .*not completely converted"):
        MonoFlameAvatarDataManager(store, pm).load_flame_tracking(sm)
    with pytest.raises(KeyError, match="point clouds .*not completely converted"):
        NVSDataManager(store, pn).load_pointcloud(sn, int(open_sequence(converted_store, bm.NVS, pn, sn).cloud_timestep[0]))


def test_pointcloud_of_one_timestep_equals_the_pcd_file(converted_store: Path, sample_root: Path) -> None:
    from nersemble_zarr.raw import read_pcd
    from nersemble_zarr.read.store import pointcloud

    p, s = nvs_sequence(converted_store)
    ds = open_sequence(converted_store, bm.NVS, p, s)
    t = int(ds.cloud_timestep.values[-1])
    cloud = read_pcd(sample_root / bm.NVS / bm.pointcloud_path(p, s, t))
    got = pointcloud(ds, t)
    np.testing.assert_array_equal(got.points.values, cloud.points)
    np.testing.assert_array_equal(got.colors.values, cloud.colors)
    assert got.points.dtype == np.float32 and got.colors.dtype == np.uint8
    with pytest.raises(StoreReadError, match="no point cloud at timestep 100000"):
        pointcloud(ds, 100000)


@pytest.mark.slow
def test_s3_store_reads_the_same_through_every_api(converted_store: Path) -> None:
    """A real S3 client stack (s3fs, botocore, HTTP) against moto's server on 127.0.0.1."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    from nersemble_zarr import NVSDataManager
    pytest.importorskip("torch")  # FrameDataset; the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bucket")
        s3fs.S3FileSystem(**opts).put(str(converted_store), "bucket/store.zarr", recursive=True)
        url = "s3://bucket/store.zarr"
        p, s = nvs_sequence(converted_store)

        local = open_sequence(converted_store, bm.NVS, p, s)
        remote = open_sequence(url, bm.NVS, p, s, storage_options=opts)
        np.testing.assert_array_equal(remote.images.isel(camera=2, timestep=3).values, local.images.isel(camera=2, timestep=3).values)
        np.testing.assert_array_equal(remote.world_2_cam.values, local.world_2_cam.values)
        assert f"/nvs/{p:03d}/{s}" in open_store(url, storage_options=opts).groups
        serial = str(local.camera.values[0])
        dm = NVSDataManager(url, p, storage_options=opts)
        np.testing.assert_array_equal(dm.load_alpha_map(s, serial, 1)[..., 0], local.alpha.sel(camera=serial, timestep=1).values)
        item = FrameDataset(url, bm.NVS, cameras=[serial], storage_options=opts)[1]
        np.testing.assert_array_equal(item["image"].numpy(), local.images.sel(camera=serial, timestep=1).values)
    finally:
        server.stop()


def test_tracking_whose_frames_differ_from_the_video_keeps_its_own_frame_dim(converted_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "shifted.zarr"
    p, s = mono_train_sequence(converted_store)
    with edited_copy(converted_store, store) as root:
        frame = root[f"mono_flame_avatar/{p:03d}/{s}/tracking_v2/timestep"]
        shifted = frame[:] * 2 + 1  # e.g. tracking of every other frame: not the video timesteps
        frame[:] = shifted

    ds = open_sequence(store, bm.MONO, p, s)
    assert ds.expression.dims == ("frame", "expression_coeff")
    np.testing.assert_array_equal(ds.frame.values, shifted)
    assert ds.images.dims[:2] == ("camera", "timestep")
    np.testing.assert_array_equal(ds.timestep.values, np.arange(ds.sizes["timestep"]))
    # the whole tree opens too (a DataTree child aligns with its parent's timestep): the tracking node keeps `frame`
    node = open_store(store)[f"mono_flame_avatar/{p:03d}/{s}/tracking_v2"]
    assert node.dataset.expression.dims == ("frame", "expression_coeff")
    np.testing.assert_array_equal(node.dataset.frame.values, shifted)

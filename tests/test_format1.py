"""Stores of format 1 (the first release: calibration dim ``serial``, tracking / FLAME-mesh dim ``frame``, int32
tracking frames) keep opening everywhere, with the current names and values equal to a format-2 store converted
from the same raw data.

The fixture ``tests/data/format1/`` holds a format-1 store written by commit 8f68425 and the raw data it was
converted from (see its README); it is copied before anything writes into it.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema

FIXTURE = Path(__file__).parent / "data" / "format1"
SEQUENCES = [("nvs", 388, "GLASSES"), ("mono_flame_avatar", 393, "EXP-1-head"), ("mono_flame_avatar", 393, "FREE")]

pytestmark = [
    pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part"),
    pytest.mark.skipif(not (FIXTURE / "store.zarr" / "zarr.json").is_file(), reason="tests/data/format1 is absent"),
]


@pytest.fixture(scope="module")
def v1_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the format-1 fixture store (read-only use)."""
    dst = tmp_path_factory.mktemp("format1") / "store.zarr"
    shutil.copytree(FIXTURE / "store.zarr", dst)
    return dst


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The fixture's raw data converted by this version (format 2), with FLAME meshes when torch is there."""
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store = tmp_path_factory.mktemp("format2") / "store.zarr"
    report = convert_benchmark(FIXTURE / "raw", store, sequences=[s for _, _, s in SEQUENCES], progress=False)
    assert report.ok, report.summary()
    try:
        import torch  # noqa: F401
    except ImportError:
        return store
    from nersemble_zarr.pipelines.flame import write_flame_to_store

    write_flame_to_store(store, request.getfixturevalue("flame_model_path"), progress=False, threads=1)
    return store


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _assert_same(v1: xr.Dataset, v2: xr.Dataset, where: str) -> None:
    """Same dims, variables, coordinates and values (vertices within float noise: evaluated by two versions)."""
    assert dict(v1.sizes) == dict(v2.sizes), where
    assert set(v1.variables) == set(v2.variables), where
    for name in v2.variables:
        a, b = v1[name], v2[name]
        assert a.dims == b.dims, f"{where} {name}"
        if name in v2.coords or name in (schema.TIMESTEP, schema.CAMERA):
            assert a.dtype == b.dtype, f"{where} {name}: {a.dtype} != {b.dtype}"
        if name == "vertices":
            np.testing.assert_allclose(a.values, b.values, atol=1e-6, err_msg=f"{where} {name}")
        else:
            np.testing.assert_array_equal(a.values, b.values, err_msg=f"{where} {name}")


def test_fixture_is_a_format1_store_with_the_old_names() -> None:
    root = json.loads((FIXTURE / "store.zarr" / "zarr.json").read_text())
    assert root["attributes"][schema.ROOT_ATTR]["format_version"] == 1
    calib = json.loads((FIXTURE / "store.zarr/nvs/388/calibration/world_2_cam/zarr.json").read_text())
    assert calib["dimension_names"][0] == "serial"
    frame = json.loads((FIXTURE / "store.zarr/mono_flame_avatar/393/FREE/tracking_v2/frame/zarr.json").read_text())
    assert frame["dimension_names"] == ["frame"] and frame["data_type"] == "int32"


def test_open_store_reads_format1_with_current_names_equal_to_format2(v1_store: Path, v2_store: Path) -> None:
    from nersemble_zarr.read.store import open_store

    t1, t2 = open_store(v1_store), open_store(v2_store)
    paths = [n.path for n in t2.subtree if n.has_data]
    assert {n.path for n in t1.subtree if n.has_data} >= set(paths)
    for path in paths:
        _assert_same(t1[path].to_dataset(inherit=False), t2[path].to_dataset(inherit=False), path)
    assert t1["nvs/388/calibration"]["world_2_cam"].dims == ("camera", "w2c_row", "w2c_col")
    assert "serial" not in t1["nvs/388/calibration"].variables
    tracking = t1["mono_flame_avatar/393/FREE/tracking_v2"]
    assert tracking["expression"].dims == ("timestep", "expression_coeff") and tracking["timestep"].dtype == np.int64


def test_open_sequence_and_calibration_read_format1_like_format2(v1_store: Path, v2_store: Path) -> None:
    from nersemble_zarr.read.store import open_calibration, open_sequence

    for benchmark, p, s in SEQUENCES:
        for version in (1, 2):
            _assert_same(open_sequence(v1_store, benchmark, p, s, tracking_version=version).load(),
                         open_sequence(v2_store, benchmark, p, s, tracking_version=version).load(), f"{s} v{version}")
        c1, c2 = open_calibration(v1_store, benchmark, p), open_calibration(v2_store, benchmark, p)
        assert c1.world_2_cam.dims[0] == "camera" and list(c1.camera.values) == list(bm.SERIALS)
        _assert_same(c1, c2, f"{benchmark} {p} calibration")
    ds = open_sequence(v1_store, "mono_flame_avatar", 393, "FREE")
    assert ds.expression.dims == ("timestep", "expression_coeff") and ds.timestep.dtype == np.int64


def test_data_managers_read_format1_like_format2(v1_store: Path, v2_store: Path) -> None:
    from nersemble_zarr.read.data_manager import MonoFlameAvatarDataManager, NVSDataManager

    n1, n2 = NVSDataManager(v1_store, 388), NVSDataManager(v2_store, 388)
    assert n1.list_serials("GLASSES") == n2.list_serials("GLASSES")
    serial = n1.list_serials("GLASSES")[0]
    for t in n1.list_timesteps("GLASSES"):
        np.testing.assert_array_equal(n1.load_image("GLASSES", serial, t, as_uint8=True), n2.load_image("GLASSES", serial, t, as_uint8=True))
        np.testing.assert_array_equal(n1.load_alpha_map("GLASSES", serial, t), n2.load_alpha_map("GLASSES", serial, t))
    for a, b in zip(n1.load_pointcloud("GLASSES", 0), n2.load_pointcloud("GLASSES", 0), strict=True):
        np.testing.assert_array_equal(a, b)
    k1, k2 = n1.load_camera_calibration(), n2.load_camera_calibration()
    assert list(k1.world_2_cam) == list(bm.SERIALS)
    for s in bm.SERIALS:
        np.testing.assert_array_equal(np.asarray(k1.world_2_cam[s]), np.asarray(k2.world_2_cam[s]))
        np.testing.assert_array_equal(np.asarray(k1.intrinsics[s]), np.asarray(k2.intrinsics[s]))

    m1, m2 = MonoFlameAvatarDataManager(v1_store, 393), MonoFlameAvatarDataManager(v2_store, 393)
    for s in ("EXP-1-head", "FREE"):
        assert m1.list_timesteps(s) == m2.list_timesteps(s)
        for version in (1, 2):
            f1, f2 = m1.load_flame_tracking(s, version), m2.load_flame_tracking(s, version)
            assert f1.frames.dtype == np.int64 and f2.frames.dtype == np.int64
            for key in ("frames", *schema.TRACKING_VARIABLES):
                np.testing.assert_array_equal(getattr(f1, key), getattr(f2, key), err_msg=f"{s} v{version} {key}")


def test_frame_dataset_reads_format1_like_format2(v1_store: Path, v2_store: Path) -> None:
    pytest.importorskip("torch")
    from nersemble_zarr.read.torch_dataset import FrameDataset

    for benchmark in ("nvs", "mono_flame_avatar"):
        d1, d2 = FrameDataset(v1_store, benchmark), FrameDataset(v2_store, benchmark)
        assert len(d1) == len(d2) > 0
        for i in range(len(d1)):
            a, b = d1[i], d2[i]
            assert a.keys() == b.keys() and d1.key(i) == d2.key(i)
            for k, v in a.items():
                if hasattr(v, "numpy"):
                    np.testing.assert_array_equal(v.numpy(), b[k].numpy(), err_msg=f"{benchmark} {i} {k}")
                else:
                    assert v == b[k]


def test_flame_meshes_and_provider_read_format1(v1_store: Path, v2_store: Path, flame_model_path: Path) -> None:
    pytest.importorskip("torch")
    from nersemble_zarr.flame.provider import FlameProvider, open_flame_meshes
    from nersemble_zarr.read.store import open_root

    for s in ("EXP-1-head", "FREE"):
        m1, m2 = open_flame_meshes(v1_store, "mono_flame_avatar", 393, s), open_flame_meshes(v2_store, "mono_flame_avatar", 393, s)
        assert m1["vertices"].dims == ("timestep", "vertex", "xyz") and m1["timestep"].dtype == np.int64
        np.testing.assert_allclose(m1["vertices"].values, m2["vertices"].values, atol=1e-6)
        np.testing.assert_array_equal(m1["timestep"].values, m2["timestep"].values)
        np.testing.assert_array_equal(m1["faces"].values, m2["faces"].values)
        group = open_root(v1_store)[schema.tracking_group("mono_flame_avatar", 393, s, 2)]
        provider = FlameProvider(group, flame_model_path)
        assert provider.frames.dtype == np.int64
        np.testing.assert_allclose(provider.vertices(), m2["vertices"].values, atol=1e-6)


def test_info_check_and_verify_accept_format1(v1_store: Path) -> None:
    from nersemble_zarr.pipelines.check import check_store
    from nersemble_zarr.pipelines.info import format_info, store_info
    from nersemble_zarr.pipelines.verify import verify_store

    info = store_info(v1_store)
    assert info.complete and info.intact
    assert "format 1 (readable;" in format_info(info) and "serial -> camera" in format_info(info)
    report = check_store(v1_store, deep=True, progress=False)
    assert report.ok, report.summary()
    vr = verify_store(v1_store, FIXTURE / "raw", sequences=[s for _, _, s in SEQUENCES])
    assert vr.ok, vr.summary()


def test_downscale_and_flame_write_into_a_format1_store(tmp_path: Path, v2_store: Path, flame_model_path: Path) -> None:
    from nersemble_zarr.pipelines.check import check_store
    from nersemble_zarr.pipelines.downscale import downscale_store
    from nersemble_zarr.read.store import open_sequence

    store = tmp_path / "v1.zarr"
    shutil.copytree(FIXTURE / "store.zarr", store)
    downscale_store(store, [2], progress=False, threads=1)
    downscale_store(v2_store, [2], progress=False, threads=1)
    for benchmark, p, s in SEQUENCES[:2]:
        _assert_same(open_sequence(store, benchmark, p, s, level=2).load(),
                     open_sequence(v2_store, benchmark, p, s, level=2).load(), f"{s} level 2")
    if _has_torch():
        from nersemble_zarr.flame.provider import open_flame_meshes
        from nersemble_zarr.pipelines.flame import write_flame_to_store

        write_flame_to_store(store, flame_model_path, version=1, progress=False, threads=1)
        write_flame_to_store(v2_store, flame_model_path, version=1, progress=False, threads=1)
        for s in ("EXP-1-head", "FREE"):
            m1 = open_flame_meshes(store, "mono_flame_avatar", 393, s, version=1)
            m2 = open_flame_meshes(v2_store, "mono_flame_avatar", 393, s, version=1)
            np.testing.assert_array_equal(m1["vertices"].values, m2["vertices"].values)
            np.testing.assert_array_equal(m1["timestep"].values, m2["timestep"].values)
    report = check_store(store, deep=True, progress=False)
    assert report.ok, report.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out: every marker written by downscale/flame is honoured
        open_sequence(store, "nvs", 388, "GLASSES", level=2)


def test_a_store_of_a_newer_format_is_refused_naming_it(tmp_path: Path) -> None:
    from nersemble_zarr.read.resolver import StoreReadError
    from nersemble_zarr.read.store import open_sequence, open_store
    from nersemble_zarr.storage.markers import consolidate

    import zarr

    store = tmp_path / "future.zarr"
    shutil.copytree(FIXTURE / "store.zarr", store)
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    root.attrs[schema.ROOT_ATTR] = {**root.attrs[schema.ROOT_ATTR], "format_version": schema.FORMAT_VERSION + 1}
    consolidate(str(store))
    for open_ in (lambda: open_store(store), lambda: open_sequence(store, "nvs", 388, "GLASSES")):
        with pytest.raises(StoreReadError, match=rf"store format {schema.FORMAT_VERSION + 1} was written by a newer "
                                                 r"nersemble-zarr; this version reads formats 1, 2: update"):
            open_()
    assert (store / "nvs/388/GLASSES/images/zarr.json").is_file()  # nothing was touched

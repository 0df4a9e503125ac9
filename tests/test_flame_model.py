"""FLAME model files: the synthetic model's layout, safe chumpy-free loading, clear errors, rotation convention."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch

import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from nersemble_zarr.flame.model import (
    FlameModel,
    FlameModelError,
    euler_xyz_to_matrix,
    model_to_world_matrices,
    read_flame_arrays,
    safe_load_pickle,
)
from nersemble_zarr.testing.flame_model import synthetic_flame_arrays, write_synthetic_flame_model


@pytest.fixture(scope="module")
def raw_model(flame_model_path: Path) -> dict:
    with open(flame_model_path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def test_synthetic_model_has_the_flame_2023_keys_shapes_and_dtypes(raw_model: dict) -> None:
    expected = {
        "v_template": (5023, 3), "f": (9976, 3), "shapedirs": (5023, 3, 400), "posedirs": (5023, 3, 36),
        "J_regressor": (5, 5023), "weights": (5023, 5), "kintree_table": (2, 5), "J": (5, 3),
    }
    assert set(expected) | {"bs_style", "bs_type"} == set(raw_model)
    for key, shape in expected.items():
        assert raw_model[key].shape == shape, key
    assert isinstance(raw_model["J_regressor"], scipy.sparse.csc_matrix)
    assert raw_model["f"].dtype == np.uint32 and raw_model["v_template"].dtype == np.float64
    np.testing.assert_array_equal(raw_model["kintree_table"][0, 1:], [0, 1, 1, 1])
    assert raw_model["kintree_table"][0, 0] == 2**32 - 1


def test_synthetic_model_is_a_plausible_head(raw_model: dict) -> None:
    v, f = raw_model["v_template"], raw_model["f"].astype(np.int64)
    extent = v.max(0) - v.min(0)
    assert np.all((extent > 0.1) & (extent < 0.3)), extent  # a head, in metres
    # every vertex is used, no degenerate triangle, every edge shared by at most two faces
    assert np.unique(f).size == 5023
    assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2
    # joints are what the regressor gives; skinning weights are a partition of unity
    np.testing.assert_allclose(raw_model["J_regressor"] @ v, raw_model["J"])
    np.testing.assert_allclose(raw_model["J_regressor"].sum(1), 1.0)
    np.testing.assert_allclose(raw_model["weights"].sum(1), 1.0)
    assert raw_model["weights"].min() >= 0
    root, neck, jaw, left_eye, right_eye = raw_model["J"]
    assert root[1] < neck[1] < jaw[1] < left_eye[1]  # bottom to top
    assert left_eye[0] > 0 > right_eye[0] and left_eye[2] > 0.05  # eyes in front, left at +x


def test_synthetic_model_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = write_synthetic_flame_model(tmp_path / "a", seed=3).read_bytes()
    b = write_synthetic_flame_model(tmp_path / "b", seed=3).read_bytes()
    c = synthetic_flame_arrays(seed=4)["shapedirs"]
    assert a == b
    assert not np.array_equal(pickle.loads(a)["shapedirs"], c)
    assert not list(tmp_path.glob("*/.*tmp*"))  # no temporary file left behind


def test_model_loads_with_checked_arrays(flame_model_path: Path, raw_model: dict) -> None:
    arrays = read_flame_arrays(flame_model_path)
    np.testing.assert_array_equal(arrays.v_template, raw_model["v_template"])
    np.testing.assert_array_equal(arrays.faces, raw_model["f"])
    np.testing.assert_array_equal(arrays.J_regressor, raw_model["J_regressor"].toarray())
    np.testing.assert_array_equal(arrays.parents, [-1, 0, 1, 1, 1])
    assert arrays.sha256 and arrays.source == str(flame_model_path)


def test_chumpy_pickle_loads_without_chumpy_installed(tmp_path: Path, raw_model: dict) -> None:
    path = write_synthetic_flame_model(tmp_path, chumpy=True)
    data = path.read_bytes()
    assert b"chumpy.ch" in data and b"Ch" in data  # the file really references chumpy's class
    assert "chumpy" not in sys.modules and importlib.util.find_spec("chumpy") is None
    with pytest.raises(ModuleNotFoundError):  # a plain unpickler cannot read it
        pickle.loads(data, encoding="latin1")
    arrays = read_flame_arrays(path)
    for key, value in (("v_template", arrays.v_template), ("shapedirs", arrays.shapedirs), ("weights", arrays.weights)):
        assert type(value) is np.ndarray
        np.testing.assert_array_equal(value, raw_model[key])
    assert "chumpy" not in sys.modules


def test_numpy1_and_old_scipy_module_paths_load(flame_model_path: Path, raw_model: dict, tmp_path: Path) -> None:
    # pickles written with numpy 1.x / scipy < 1.8 name numpy.core.multiarray and scipy.sparse.csc
    data = flame_model_path.read_bytes()
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n").replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")
    assert old != data
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    np.testing.assert_array_equal(read_flame_arrays(path).J_regressor, raw_model["J_regressor"].toarray())


class _RunsCode:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


@pytest.mark.parametrize("call", [os.system, eval, __import__("subprocess").getoutput])
def test_pickle_referencing_other_callables_is_refused_without_running_it(tmp_path: Path, raw_model: dict, call) -> None:
    marker = tmp_path / "pwned"
    command = f"open({str(marker)!r}, 'w').close()" if call is eval else f"touch {marker}"
    model = dict(raw_model, v_template=_RunsCode(call, command))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(model, protocol=2))
    with pytest.raises(FlameModelError) as err:
        read_flame_arrays(path)
    message = str(err.value)
    # protocol 2 writes python-2 names (subprocess.getoutput -> commands.getoutput): match the function name
    assert str(path) in message and f".{call.__name__}," in message and "refusing" in message
    assert not marker.exists()


def test_truncated_model_gives_a_clear_error(flame_model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "flame2023.pkl"
    path.write_bytes(flame_model_path.read_bytes()[: 5_000_000])
    with pytest.raises(FlameModelError, match=r"flame2023\.pkl: not a readable pickle .*truncated or corrupt"):
        FlameModel.load(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("v_template", np.zeros((5000, 3)), r"'v_template' has shape \(5000, 3\), expected \(5023, 3\)"),
        ("posedirs", np.zeros((5023, 3, 35)), r"'posedirs' has shape \(5023, 3, 35\), expected \(5023, 3, 36\)"),
        ("shapedirs", np.zeros((5023, 3, 20)), r"'shapedirs' has 20 directions, expected at least 400"),
        ("J_regressor", scipy.sparse.csc_matrix((4, 5023)), r"'J_regressor' has shape \(4, 5023\), expected \(5, 5023\)"),
        ("f", np.full((9976, 3), 6000, np.uint32), r"'f' indexes vertices 6000\.\.6000, expected 0\.\.5022"),
    ],
)
def test_wrong_shaped_model_names_array_expected_and_found(
    raw_model: dict, tmp_path: Path, key: str, value: object, expected: str
) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(dict(raw_model, **{key: value}), protocol=2))
    with pytest.raises(FlameModelError, match=rf"bad\.pkl: {expected}"):
        read_flame_arrays(path)


def test_missing_key_is_named(raw_model: dict, tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({k: v for k, v in raw_model.items() if k != "weights"}, protocol=2))
    with pytest.raises(FlameModelError, match=r"missing key\(s\) \['weights'\]"):
        read_flame_arrays(path)


def test_not_a_dict_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FlameModelError, match="expected a dict of FLAME arrays, found ndarray"):
        from nersemble_zarr.flame.model import parse_flame_arrays

        parse_flame_arrays(safe_load_pickle(pickle.dumps(np.zeros(3)), "x.pkl"), "x.pkl")
    from nersemble_zarr.core.errors import ConfigError

    with pytest.raises(ConfigError, match="FLAME model file not found"):
        FlameModel.load(tmp_path / "nope.pkl")


def test_model_path_comes_from_the_environment(flame_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAME_MODEL_PATH", str(flame_model_path.parent))  # a folder holding flame2023.pkl
    model = FlameModel.load()
    assert model.file_name == "flame2023.pkl" and model.faces.shape == (9976, 3)


def test_euler_xyz_matches_scipy_intrinsic_convention() -> None:
    angles = torch.tensor(np.random.default_rng(0).uniform(-np.pi, np.pi, (64, 3)))
    ours = euler_xyz_to_matrix(angles).numpy()
    np.testing.assert_allclose(ours, Rotation.from_euler("XYZ", angles.numpy()).as_matrix(), atol=1e-14)
    # and it is not the extrinsic 'xyz' convention
    assert not np.allclose(ours, Rotation.from_euler("xyz", angles.numpy()).as_matrix())


def test_model_to_world_is_scaled_rotation_plus_translation() -> None:
    rng = np.random.default_rng(1)
    rot, trans = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    m = model_to_world_matrices(torch.tensor(rot), torch.tensor(trans), 1.7).numpy()
    np.testing.assert_allclose(m[:, :3, :3], 1.7 * Rotation.from_euler("XYZ", rot).as_matrix(), atol=1e-14)
    np.testing.assert_allclose(m[:, :3, 3], trans)
    np.testing.assert_array_equal(m[:, 3], np.tile([0, 0, 0, 1.0], (4, 1)))


@pytest.fixture(scope="module")
def model(flame_model_path: Path) -> FlameModel:
    return FlameModel.load(flame_model_path)


def test_model_buffers_are_contiguous(model: FlameModel) -> None:
    # posedirs is a transposed view of the pickle's (5023, 3, 36) and J_regressor a densified sparse matrix:
    # both must be copied into C-contiguous memory once, not re-laid out by every lbs call
    assert model.posedirs.shape == (36, 5023 * 3) and model.posedirs.is_contiguous()
    assert model.J_regressor.shape == (5, 5023) and model.J_regressor.is_contiguous()
    for name in ("v_template", "shapedirs", "exprdirs", "lbs_weights"):
        assert getattr(model, name).is_contiguous(), name


def _misaligned(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` that starts ``offset`` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def test_forward_is_bit_identical_for_any_thread_count_and_input_alignment(model: FlameModel) -> None:
    from nersemble_zarr.testing.flame_model import synthetic_flame_tracking

    tr = synthetic_flame_tracking(70, seed=3)  # 2 chunks of 64 + 6, and odd batch sizes below
    args = [np.asarray(getattr(tr, k), np.float32) for k in ("shape", "expression", "neck", "jaw", "eyes", "rotation", "translation")]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ref = model.forward(*args, tr.scale, threads=1).numpy()
        assert torch.get_num_threads() == 2  # restored after the forward
        for threads in (2, 3):
            assert np.array_equal(model.forward(*args, tr.scale, threads=threads).numpy(), ref), threads
        torch.set_num_threads(1)
        assert np.array_equal(model.forward(*args, tr.scale).numpy(), ref)
        # inputs at 4/8-byte offsets (as unpickled on a worker) change BLAS summation order unless copied
        for offset in (4, 8):
            shifted = [_misaligned(np.ascontiguousarray(a[:3] if a.ndim == 2 and len(a) == 70 else a), offset) for a in args]
            got = model.forward(*shifted, tr.scale).numpy()
            assert np.array_equal(got, model.forward(*[a[:3] if a.ndim == 2 and len(a) == 70 else a for a in args], tr.scale).numpy())
        # iter_forward gives the same bits chunk by chunk
        streamed = np.concatenate([v.numpy() for _, v, _ in model.iter_forward(*args, tr.scale)])
        assert np.array_equal(streamed, ref)
    finally:
        torch.set_num_threads(previous)
    assert torch.get_num_threads() == previous


def test_forward_rejects_a_bad_chunk_size_before_computing(model: FlameModel) -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1, not 0"):
        model.forward(np.zeros(300), np.zeros((2, 100)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 6)), chunk_size=0)

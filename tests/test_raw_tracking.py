"""Tracking npz reader: official keys and shapes checked, errors name the key and the file."""

from __future__ import annotations

import numpy as np
import pytest

from nersemble_zarr.raw import TRACKING_SHAPES, FlameTracking, RawFormatError, read_tracking, write_tracking


def make_arrays(t: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for key, spec in TRACKING_SHAPES.items():
        shape = tuple(t if d == "T" else d for d in spec)
        out[key] = rng.normal(size=shape).astype(np.float32)
    out["frames"] = np.arange(t, dtype=np.int64)
    return out


def test_round_trip_keeps_every_array_exactly(tmp_path):
    path = tmp_path / "flame2023_tracking_v2.npz"
    write_tracking(path, FlameTracking(**make_arrays()))
    back = read_tracking(path)
    assert back.n_timesteps == 9
    for key, value in make_arrays().items():
        got = getattr(back, key)
        np.testing.assert_array_equal(got, value)
        assert got.dtype == (np.int64 if key == "frames" else np.float32)


def test_reads_a_file_written_with_plain_numpy_and_extra_keys(tmp_path):
    path = tmp_path / "flame2023_tracking.npz"
    arrays = make_arrays(4)
    np.savez(path, **arrays, extra=np.zeros(2))
    assert read_tracking(path).expression.shape == (4, 100)


def test_missing_key_is_named(tmp_path):
    arrays = make_arrays()
    del arrays["neck"]
    path = tmp_path / "t.npz"
    np.savez(path, **arrays)
    with pytest.raises(RawFormatError, match=rf"{path}: tracking is missing key\(s\) neck"):
        read_tracking(path)


@pytest.mark.parametrize(
    "key, bad_shape, message",
    [
        ("eyes", (9, 3), r"'eyes': expected shape \(T, 6\) = \(9, 6\) \(T=9 from 'expression'\), found \(9, 3\)"),
        ("shape", (300,), r"'shape': expected shape \(1, 300\) = \(1, 300\).*found \(300,\)"),
        ("rotation_matrices", (8, 3, 3), r"'rotation_matrices': expected shape \(T, 3, 3\) = \(9, 3, 3\).*found \(8, 3, 3\)"),
    ],
)
def test_wrong_shape_names_key_expected_and_found(tmp_path, key, bad_shape, message):
    arrays = make_arrays()
    arrays[key] = np.zeros(bad_shape, np.float32)
    path = tmp_path / "t.npz"
    np.savez(path, **arrays)
    with pytest.raises(RawFormatError, match=rf"{path}: tracking key {message}"):
        read_tracking(path)


def test_non_float_parameter_is_refused(tmp_path):
    arrays = make_arrays()
    arrays["jaw"] = arrays["jaw"].astype(np.int32)
    path = tmp_path / "t.npz"
    np.savez(path, **arrays)
    with pytest.raises(RawFormatError, match="'jaw': expected float32, found dtype int32"):
        read_tracking(path)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(RawFormatError, match="flame2023_tracking_v2.npz: tracking file not found"):
        read_tracking(tmp_path / "flame2023_tracking_v2.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RawFormatError, match=rf"{bad}: expected an .npz archive"):
        read_tracking(bad)


def test_writer_refuses_inconsistent_tracking(tmp_path):
    arrays = make_arrays()
    arrays["translation"] = np.zeros((3, 3), np.float32)
    with pytest.raises(RawFormatError, match="'translation'"):
        write_tracking(tmp_path / "t.npz", FlameTracking(**arrays))

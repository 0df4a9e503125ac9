"""camera_params.json: exact float64 round trip, errors naming file, serial and shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nersemble_zarr.core.benchmark import SERIALS
from nersemble_zarr.raw import CameraParams, RawFormatError, read_camera_params, write_camera_params


def make_params() -> CameraParams:
    rng = np.random.default_rng(2)
    w2c, intr = {}, {}
    for s in SERIALS[:4]:
        m = np.eye(4)
        m[:3, :4] = rng.normal(size=(3, 4))
        w2c[s] = m
        intr[s] = np.array([[rng.uniform(1000, 3000), 0, 550.3], [0, rng.uniform(1000, 3000), 802.1], [0, 0, 1]])
    return CameraParams(world_2_cam=w2c, intrinsics=intr)


def test_round_trip_is_exact_float64(tmp_path):
    params = make_params()
    path = tmp_path / "camera_params.json"
    write_camera_params(path, params)
    back = read_camera_params(path)
    assert back.serials == list(params.world_2_cam)
    for s in params.world_2_cam:
        np.testing.assert_array_equal(back.world_2_cam[s], params.world_2_cam[s])
        np.testing.assert_array_equal(back.intrinsics[s], params.intrinsics[s])
        assert back.world_2_cam[s].dtype == np.float64


def test_official_json_layout(tmp_path):
    path = tmp_path / "camera_params.json"
    write_camera_params(path, make_params())
    obj = json.loads(path.read_text())
    assert set(obj) == {"world_2_cam", "intrinsics"}
    assert len(obj["world_2_cam"][SERIALS[0]]) == 4 and len(obj["intrinsics"][SERIALS[0]]) == 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("intrinsics"), r"calibration needs 'intrinsics'"),
        (lambda o: o["world_2_cam"].__setitem__(SERIALS[1], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), rf"world_2_cam\['{SERIALS[1]}'\]: expected shape \(4, 4\), found \(3, 3\)"),
        (lambda o: o["intrinsics"].pop(SERIALS[2]), rf"serials differ: world_2_cam only \['{SERIALS[2]}'\]"),
        (lambda o: o["intrinsics"].__setitem__(SERIALS[0], "K"), rf"intrinsics\['{SERIALS[0]}'\]: expected shape \(3, 3\), found \(\)|expected a 3x3 matrix"),
    ],
)
def test_bad_content_names_file_block_and_serial(tmp_path, mutate, message):
    path = tmp_path / "camera_params.json"
    write_camera_params(path, make_params())
    obj = json.loads(path.read_text())
    mutate(obj)
    path.write_text(json.dumps(obj))
    with pytest.raises(RawFormatError, match=rf"{path}: .*{message}"):
        read_camera_params(path)


def test_bad_json_and_missing_file_are_named(tmp_path):
    path = tmp_path / "camera_params.json"
    path.write_text('{"world_2_cam": {')
    with pytest.raises(RawFormatError, match=rf"{path}: expected JSON calibration, parse error at line 1"):
        read_camera_params(path)
    with pytest.raises(RawFormatError, match="calibration file not found"):
        read_camera_params(tmp_path / "nope.json")

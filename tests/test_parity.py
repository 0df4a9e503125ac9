"""Parity with the official ``nersemble_benchmark`` 0.2.0 API: code written against its data managers,
``FlameProvider`` and submission writers runs unchanged on a store.

The expectations are a table written from the official 0.2.0 source (``data/benchmark_data.py``,
``models/flame.py``, ``data/submission_data.py``) and dreifus 0.1.28 (``matrix/pose_numpy.py``,
``matrix/intrinsics_numpy.py``), not read from the packages: neither is installed in CI. For every public
method: its name, the official arguments (names, order, defaults) as the leading positional parameters, any
extra parameter optional; then, on the sample store, the return type, shape and dtype. Documented differences
are listed in :data:`DIFFERENCES` with the reason; the suite fails on any other mismatch and on a listed
difference that no longer exists (so the list stays true).
"""

from __future__ import annotations

import importlib
import inspect
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.read import camera
from nersemble_zarr.read.store import list_participants

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")

REQ = inspect.Parameter.empty  # a required parameter (no default)

# ---------------------------------------------------------------------------------------------
# The official API, written from nersemble_benchmark 0.2.0: {method: [(parameter, default), ...]} after self
# ---------------------------------------------------------------------------------------------

_BASE_DATA_MANAGER = {
    "load_camera_calibration": [],
    "list_timesteps": [("sequence_name", REQ)],
    "list_sequences": [],
    "list_serials": [("sequence_name", REQ)],
    "get_n_timesteps": [("sequence_name", REQ)],
    "load_alpha_map": [("sequence_name", REQ), ("serial", REQ), ("timestep", REQ)],
    "load_image": [("sequence_name", REQ), ("serial", REQ), ("timestep", REQ), ("as_uint8", False)],
    "load_all_images": [("sequence_name", REQ), ("serial", REQ), ("as_uint8", False), ("every_nth_frame", None), ("scale", None)],
    "has_sequence": [("sequence_name", REQ)],
    "has_video": [("sequence_name", REQ), ("serial", REQ)],
    "get_camera_calibration_path": [],
    "get_images_path": [("sequence_name", REQ), ("serial", REQ)],
    "get_alpha_maps_path": [("sequence_name", REQ), ("serial", REQ)],
}
_VIDEO_WRITER = {
    "__init__": [("zip_path", REQ)],
    "add_video": [("participant_id", REQ), ("sequence_name", REQ), ("serial", REQ), ("frames", REQ)],
    "close": [],
    "__enter__": [],
    "__exit__": None,  # None: present, arguments not compared (called by the with statement only)
}
_MESH_ARGS = [("participant_id", REQ), ("sequence_name", REQ), ("timestep", REQ), ("serial", REQ), ("mesh", REQ), ("now_landmarks", None)]

OFFICIAL_API: dict[str, dict[str, list[tuple[str, Any]] | None]] = {
    "NVSDataManager": {
        "__init__": [("benchmark_folder", REQ), ("participant_id", REQ)],
        **_BASE_DATA_MANAGER,
        "load_pointcloud": [("sequence_name", REQ), ("timestep", REQ)],
        "get_pointcloud_path": [("sequence_name", REQ), ("timestep", REQ)],
    },
    "MonoFlameAvatarDataManager": {
        "__init__": [("benchmark_folder", REQ), ("participant_id", REQ)],
        **_BASE_DATA_MANAGER,
        "load_flame_tracking": [("sequence_name", REQ), ("version", 2)],
        "get_flame_tracking_path": [("sequence_name", REQ), ("version", 2)],
    },
    "SVFRDataManager": {
        "__init__": [("benchmark_folder", REQ), ("participant_id", REQ)],
        "list_image_keys": [],
        "get_asset_folder": [("image_key", REQ)],
        "load_image": [("image_key", REQ)],
    },
    "FlameProvider": {
        "__init__": [("flame_tracking", REQ)],
        "get_vertices": [("timestep", REQ)],
        "get_landmarks": [("timestep", REQ)],
        "get_mesh": [("timestep", REQ)],
        "get_model_to_world_transformation": [("timestep", REQ)],
        "apply_model_to_world_transformation": [("points", REQ), ("timestep", REQ)],
        "has_mesh": [("timestep", REQ)],
        "create_mesh": [("vertices", REQ)],
    },
    "NVSSubmissionDataWriter": dict(_VIDEO_WRITER),
    "MonoFlameAvatarSubmissionDataWriter": dict(_VIDEO_WRITER),
    "SVFRSubmissionDataWriter": {
        "__init__": [("zip_path", REQ)],
        "add_posed_mesh": list(_MESH_ARGS),
        "add_neutral_mesh": list(_MESH_ARGS),
        "close": [],
        "__enter__": [],
        "__exit__": None,
    },
    # dreifus 0.1.28, the calibration objects' classes
    "Pose": {
        "__new__": [("matrix_or_rotation", "<eye(4)>"), ("translation", None), ("camera_coordinate_convention", "<OPEN_CV>"),
                    ("pose_type", "<WORLD_2_CAM>"), ("disable_rotation_check", False)],
        "from_euler": [("euler_angles", REQ), ("translation", "<zero>"), ("euler_mode", "XYZ"),
                       ("camera_coordinate_convention", "<OPEN_CV>"), ("pose_type", "<WORLD_2_CAM>")],
        "from_rodriguez": [("rodriguez_vector", REQ), ("translation", "<zero>"), ("camera_coordinate_convention", "<OPEN_CV>"),
                           ("pose_type", "<WORLD_2_CAM>")],
        "from_quaternion": [("quaternion", REQ), ("translation", "<zero>"), ("camera_coordinate_convention", "<OPEN_CV>"),
                            ("pose_type", "<WORLD_2_CAM>")],
        "get_rotation_matrix": [],
        "get_euler_angles": [("order", REQ)],
        "get_rodriguez_vector": [],
        "get_quaternion": [],
        "get_translation": [],
        "set_translation": [("x", None), ("y", None), ("z", None)],
        "move": [("x", None), ("y", None), ("z", None), ("inplace", True)],
        "scale": [("scale", REQ)],
        "set_rotation_matrix": [("rotation_matrix", REQ)],
        "set_rotation_euler": [("order", REQ), ("euler_x", 0), ("euler_y", None), ("euler_z", None)],
        "rotate_euler": [("order", REQ), ("euler_x", 0), ("euler_y", None), ("euler_z", None), ("inplace", True)],
        "invert": [("inplace", False)],
        "negate_orientation_axis": [("axis", REQ)],
        "swap_axes": [("permutation", REQ), ("inplace", True)],
        "change_camera_coordinate_convention": [("new_camera_coordinate_convention", REQ), ("inplace", True)],
        "change_pose_type": [("new_pose_type", REQ), ("inplace", True)],
        "get_look_direction": [],
        "get_up_direction": [],
        "look_at": [("at", REQ), ("up", "<(0, 0, 1)>")],
        "calculate_rigid_transformation_to": [("other", REQ)],
        "copy": [("order", "C")],
        "numpy": [],
    },
    "Intrinsics": {
        "__new__": [("matrix_or_fx", "<eye(3)>"), ("fy", None), ("cx", None), ("cy", None), ("s", None)],
        "get_fovx": [("width", REQ)],
        "get_fovy": [("height", REQ)],
        "rescale": [("scale_factor", REQ), ("scale_factor_y", None), ("inplace", True)],
        "crop": [("crop_left", 0), ("crop_top", 0), ("inplace", True)],
        "homogenize": [("invert", False)],
        "invert": [],
        "numpy": [],
    },
}
#: Properties of the official classes (read; dreifus's Intrinsics ones also set).
OFFICIAL_PROPERTIES = {"Intrinsics": ("fx", "fy", "cx", "cy", "s")}

#: Where each official class lives here.
OURS = {
    "NVSDataManager": "nersemble_zarr.read.data_manager:NVSDataManager",
    "MonoFlameAvatarDataManager": "nersemble_zarr.read.data_manager:MonoFlameAvatarDataManager",
    "SVFRDataManager": "nersemble_zarr.read.svfr:SVFRDataManager",
    "FlameProvider": "nersemble_zarr.flame.provider:FlameProvider",
    "NVSSubmissionDataWriter": "nersemble_zarr.submission.writer:NVSSubmissionDataWriter",
    "MonoFlameAvatarSubmissionDataWriter": "nersemble_zarr.submission.writer:MonoFlameAvatarSubmissionDataWriter",
    "SVFRSubmissionDataWriter": "nersemble_zarr.submission.svfr:SVFRSubmissionDataWriter",
    "Pose": "nersemble_zarr.read.camera:Pose",
    "Intrinsics": "nersemble_zarr.read.camera:Intrinsics",
}

#: Known differences, each with its reason. (class, method, mismatch as reported by _compare).
_STORE_NOT_FOLDER = "the first argument is the store (path, fsspec URL or zarr store), not the raw folder; positional calls are unchanged"
_WRITER_NAMES = "named participant/sequence here; the official code calls add_video positionally, which is unchanged"
DIFFERENCES: dict[tuple[str, str, str], str] = {
    ("NVSDataManager", "__init__", "argument 1 is 'store', official 'benchmark_folder'"): _STORE_NOT_FOLDER,
    ("MonoFlameAvatarDataManager", "__init__", "argument 1 is 'store', official 'benchmark_folder'"): _STORE_NOT_FOLDER,
    ("SVFRDataManager", "__init__", "argument 1 is 'store', official 'benchmark_folder'"): _STORE_NOT_FOLDER,
    ("FlameProvider", "__init__", "argument 1 is 'tracking', official 'flame_tracking'"):
        "takes any tracking source (the official FlameTracking, an npz path, a store group, a Dataset); positional calls are unchanged",
    ("NVSSubmissionDataWriter", "add_video", "argument 1 is 'participant', official 'participant_id'"): _WRITER_NAMES,
    ("NVSSubmissionDataWriter", "add_video", "argument 2 is 'sequence', official 'sequence_name'"): _WRITER_NAMES,
    ("MonoFlameAvatarSubmissionDataWriter", "add_video", "argument 1 is 'participant', official 'participant_id'"): _WRITER_NAMES,
    ("MonoFlameAvatarSubmissionDataWriter", "add_video", "argument 2 is 'sequence', official 'sequence_name'"): _WRITER_NAMES,
}


_UNLOADABLE: dict[str, str] = {}


def _load(name: str) -> type | None:
    """Our class for an official one, or None (why in ``_UNLOADABLE``: not in this checkout, or it needs torch,
    which the Python 3.12 CI job lacks)."""
    module, _, attr = OURS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        _UNLOADABLE[name] = f"{OURS[name]} cannot be imported here: {type(e).__name__}: {e}"
        return None


#: Official defaults that are objects, as predicates on ours.
_MARKERS = {
    "<eye(4)>": lambda d: np.array_equal(np.asarray(d), np.eye(4)),
    "<eye(3)>": lambda d: np.array_equal(np.asarray(d), np.eye(3)),
    "<zero>": lambda d: np.array_equal(np.asarray(d, dtype=float), np.zeros(3)),
    "<(0, 0, 1)>": lambda d: np.array_equal(np.asarray(d, dtype=float), [0, 0, 1]),
    "<OPEN_CV>": lambda d: getattr(d, "name", None) == "OPEN_CV",
    "<WORLD_2_CAM>": lambda d: getattr(d, "name", None) == "WORLD_2_CAM",
}


def _same_default(ours: Any, official: Any) -> bool:
    if isinstance(official, str) and official in _MARKERS:
        return bool(_MARKERS[official](ours))
    if isinstance(ours, np.ndarray):
        return False
    return type(ours) is type(official) and ours == official


def _compare(cls: type, official: list[tuple[str, Any]], method: str) -> list[str]:
    """Mismatches of ``cls.method`` against the official leading parameters (names, order, defaults); extra
    parameters must be optional (keyword-only or with a default)."""
    fn = inspect.getattr_static(cls, method, None)
    if fn is None:
        return ["missing"]
    fn = fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls"):  # also __new__'s cls (a staticmethod)
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    problems = []
    if len(positional) < len(official):
        problems.append(f"{len(positional)} positional arguments, official {len(official)}")
    for i, ((name, default), p) in enumerate(zip(official, positional), start=1):
        if p.name != name:
            problems.append(f"argument {i} is {p.name!r}, official {name!r}")
        if default is REQ and p.default is not REQ:
            problems.append(f"argument {name!r} has a default, official required")
        elif default is not REQ and p.default is REQ:
            problems.append(f"argument {name!r} is required, official default {default!r}")
        elif default is not REQ and not _same_default(p.default, default):
            problems.append(f"argument {name!r} defaults to {p.default!r}, official {default!r}")
    for p in positional[len(official):] + [p for p in params if p.kind == p.KEYWORD_ONLY]:
        if p.default is REQ:
            problems.append(f"extra argument {p.name!r} is required")
    return problems


def _api_cases() -> list[str]:
    return list(OFFICIAL_API)


@pytest.mark.parametrize("name", _api_cases())
def test_every_official_method_has_the_official_arguments(name: str) -> None:
    cls = _load(name)
    if cls is None:
        pytest.skip(_UNLOADABLE[name])
    found: set[tuple[str, str, str]] = set()
    for method, official in OFFICIAL_API[name].items():
        if official is None:
            assert callable(getattr(cls, method, None)), f"{name}.{method} is missing"
            continue
        for problem in _compare(cls, official, method):
            found.add((name, method, problem))
    for prop in OFFICIAL_PROPERTIES.get(name, ()):
        if not isinstance(inspect.getattr_static(cls, prop, None), property):
            found.add((name, prop, "not a property"))
    expected = {k for k in DIFFERENCES if k[0] == name}
    assert found - expected == set(), f"{name}: mismatches against the official API: {sorted(found - expected)}"
    assert expected - found == set(), f"{name}: listed differences that no longer exist (remove them): {sorted(expected - found)}"


def test_the_differences_table_names_known_methods() -> None:
    for (name, method, _), why in DIFFERENCES.items():
        assert method in OFFICIAL_API[name] and why


# ---------------------------------------------------------------------------------------------
# Return types, shapes and dtypes on the sample store
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nvs(converted_store: Path) -> Any:
    from nersemble_zarr import NVSDataManager

    return NVSDataManager(converted_store, list_participants(converted_store, bm.NVS)[0])


@pytest.fixture(scope="module")
def mono(converted_store: Path) -> Any:
    from nersemble_zarr import MonoFlameAvatarDataManager

    return MonoFlameAvatarDataManager(converted_store, list_participants(converted_store, bm.MONO)[0])


def _is_pose(x: Any) -> bool:
    return type(x).__name__ == "Pose" and isinstance(x, np.ndarray)


def _check_calibration(dm: Any) -> None:
    params = dm.load_camera_calibration()
    assert set(vars(params)) >= {"world_2_cam", "intrinsics"}  # the official CameraParams fields
    assert isinstance(params.world_2_cam, dict) and sorted(params.world_2_cam) == sorted(bm.SERIALS)
    assert isinstance(params.intrinsics, dict) and sorted(params.intrinsics) == sorted(bm.SERIALS)
    for serial in bm.SERIALS:
        pose, k = params.world_2_cam[serial], params.intrinsics[serial]
        assert _is_pose(pose) and pose.shape == (4, 4) and pose.dtype == np.float32
        assert pose.pose_type.name == "WORLD_2_CAM" and pose.camera_coordinate_convention.name == "OPEN_CV"
        assert type(k).__name__ == "Intrinsics" and k.shape == (3, 3) and k.dtype == np.float32
        assert all(isinstance(getattr(k, a), float) for a in ("fx", "fy", "cx", "cy", "s"))


def test_nvs_data_manager_returns_the_official_types(nvs: Any) -> None:
    _check_calibration(nvs)
    s = nvs.list_sequences()[0]
    assert isinstance(s, str) and all(isinstance(x, str) for x in nvs.list_sequences())
    serials = nvs.list_serials(s)
    assert isinstance(serials, list) and all(isinstance(x, str) for x in serials)
    n = nvs.get_n_timesteps(s)
    assert type(n) is int and nvs.list_timesteps(s) == list(range(n))
    assert nvs.has_sequence(s) is True and nvs.has_video(s, serials[0]) is True
    image = nvs.load_image(s, serials[0], 0)
    assert isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float64
    assert nvs.load_image(s, serials[0], 0, True).dtype == np.uint8  # as_uint8 positionally, as official
    alpha = nvs.load_alpha_map(s, serials[0], 0)
    assert alpha.shape == image.shape[:2] + (1,) and alpha.dtype == np.uint8
    frames = nvs.load_all_images(s, serials[0], False, 2)
    assert isinstance(frames, list) and len(frames) == len(range(0, n, 2)) and frames[0].dtype == np.float64
    cloud = nvs.load_pointcloud(s, 0)
    assert isinstance(cloud, tuple) and len(cloud) == 3
    for a in cloud:
        assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 3
    for path in (nvs.get_camera_calibration_path(), nvs.get_images_path(s, serials[0]), nvs.get_alpha_maps_path(s, serials[0]),
                 nvs.get_pointcloud_path(s, 0)):
        assert isinstance(path, str) and Path(path).is_file()


def test_mono_data_manager_returns_the_official_types(mono: Any) -> None:
    _check_calibration(mono)
    s = next(x for x in mono.list_sequences() if mono.list_serials(x))
    tracking = mono.load_flame_tracking(s)
    t = tracking.expression.shape[0]
    shapes = {"shape": (1, 300), "expression": (t, 100), "rotation": (t, 3), "rotation_matrices": (t, 3, 3), "translation": (t, 3),
              "jaw": (t, 3), "frames": (t,), "scale": (1, 1), "neck": (t, 3), "eyes": (t, 6)}  # the official FlameTracking fields
    for field, shape in shapes.items():
        value = getattr(tracking, field)
        assert isinstance(value, np.ndarray) and value.shape == shape, field
        if field != "frames":
            assert value.dtype == np.float32, field
    assert mono.load_flame_tracking(s, 1).expression.dtype == np.float32  # version positionally
    for path in (mono.get_flame_tracking_path(s), mono.get_flame_tracking_path(s, 1)):
        assert isinstance(path, str) and Path(path).is_file()


def test_flame_provider_built_as_the_official_returns_the_official_types(mono: Any, flame_model_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    import torch
    import trimesh

    from nersemble_zarr import FlameProvider

    monkeypatch.setenv("FLAME_MODEL_PATH", str(flame_model_path))  # the official finds its model by itself too
    s = mono.list_sequences()[0]
    provider = FlameProvider(mono.load_flame_tracking(s))  # exactly the official call
    vertices = provider.get_vertices(0)
    assert isinstance(vertices, np.ndarray) and vertices.shape == (5023, 3) and vertices.dtype == np.float32
    mesh = provider.get_mesh(0)
    assert isinstance(mesh, trimesh.Trimesh) and mesh.vertices.shape == (5023, 3) and mesh.faces.shape == (9976, 3)
    assert mesh.faces.dtype == np.int64
    made = provider.create_mesh(vertices)
    assert isinstance(made, trimesh.Trimesh) and len(made.vertices) == 5023
    m = provider.get_model_to_world_transformation(0)
    assert _is_pose(m) and m.shape == (4, 4) and m.dtype == np.float32 and type(m.numpy()) is np.ndarray
    points = provider.apply_model_to_world_transformation(torch.zeros(1, 5023, 3), 0)
    assert isinstance(points, torch.Tensor) and points.shape == (1, 5023, 3) and points.dtype == torch.float32
    assert provider.has_mesh(0) is True and provider.has_mesh(10 ** 6) is False
    # the official provider's tensors, built from the tracking
    n = mono.get_n_timesteps(s)
    for attr, shape in {"shape_params": (1, 300), "expr_params": (n, 100), "pose_params": (n, 6), "neck_pose": (n, 3),
                        "eyes_pose": (n, 6), "rotation": (n, 3), "translation": (n, 3), "scale": (1, 1)}.items():
        value = getattr(provider, attr)
        assert isinstance(value, torch.Tensor) and tuple(value.shape) == shape and value.dtype == torch.float32, attr
    assert torch.equal(provider.pose_params[:, :3], torch.zeros(n, 3))


@pytest.fixture(scope="module")
def svfr_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two SVFR images of one participant, converted."""
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.testing.sample import generate_sample

    raw = generate_sample(tmp_path_factory.mktemp("parity_svfr") / "raw", benchmarks=(bm.SVFR,), participants=(17,),
                          svfr_images=2, seed=1)
    store = tmp_path_factory.mktemp("parity_svfr_store") / "s.zarr"
    assert convert_benchmark(raw, store, progress=False).ok
    return store


def test_svfr_data_manager_returns_the_official_types(svfr_store: Path) -> None:
    cls = _load("SVFRDataManager")
    if cls is None:
        pytest.skip(_UNLOADABLE["SVFRDataManager"])
    dm = cls(svfr_store, 17)
    keys = dm.list_image_keys()
    assert isinstance(keys, list) and len(keys) == 2
    key = keys[0]
    assert isinstance(key.sequence_name, str) and isinstance(key.timestep, int) and isinstance(key.serial, str)
    assert key.to_key() == f"{key.sequence_name}_{key.timestep:03d}_{key.serial}"
    assert isinstance(dm.get_asset_folder(key), str)
    image = dm.load_image(key)
    assert isinstance(image, np.ndarray) and image.shape == (512, 512, 3) and image.dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# Calibration objects: dreifus semantics (expected values from plain numpy)
# ---------------------------------------------------------------------------------------------


def _rig(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    m[:3, 3] = np.random.default_rng(seed).normal(size=3)
    return m, np.array([[2400.5, 0, 550.25], [0, 2401.5, 802.75], [0, 0, 1]])


def test_pose_follows_dreifus_semantics() -> None:
    m, _ = _rig()
    pose = camera.make_pose(m)
    assert pose.dtype == np.float32 and np.array_equal(pose, m.astype(np.float32))
    c2w = pose.invert()
    assert c2w.pose_type.name == "CAM_2_WORLD" and pose.pose_type.name == "WORLD_2_CAM"  # not in place by default
    np.testing.assert_allclose(c2w, np.linalg.inv(m), atol=1e-6)
    centre = -m[:3, :3].T @ m[:3, 3]
    np.testing.assert_allclose(np.asarray(c2w.get_translation()), centre, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c2w.get_look_direction()), m[2, :3], atol=1e-6)  # OpenCV: +z forward
    np.testing.assert_allclose(np.asarray(c2w.get_up_direction()), -m[1, :3], atol=1e-6)  # OpenCV: -y up
    with pytest.raises(AssertionError):
        pose.get_look_direction()  # dreifus: CAM_2_WORLD poses only
    same = pose.change_pose_type(pose.pose_type.invert(), inplace=False)
    np.testing.assert_array_equal(same, c2w)
    gl = c2w.change_camera_coordinate_convention(type(c2w.camera_coordinate_convention).OPEN_GL, inplace=False)
    np.testing.assert_array_equal(gl[:3, 1:3], -c2w[:3, 1:3])
    np.testing.assert_allclose(np.asarray(gl.get_look_direction()), np.asarray(c2w.get_look_direction()), atol=1e-7)
    assert (c2w @ pose).pose_type.name == "CAM_2_CAM"
    np.testing.assert_allclose(c2w @ pose, np.eye(4), atol=1e-6)
    assert type(pose.numpy()) is np.ndarray and pose.numpy().dtype == np.float32
    inplace = pose.copy()
    assert inplace.change_pose_type(c2w.pose_type) is inplace and inplace.pose_type.name == "CAM_2_WORLD"  # in place by default
    again = pickle.loads(pickle.dumps(c2w))
    assert again.pose_type.name == "CAM_2_WORLD" and np.array_equal(again, c2w)
    if isinstance(pose, camera.Pose):  # ours: views keep the pose's attributes (dreifus's lose them)
        assert pose[:3, :3].pose_type.name == "WORLD_2_CAM"


def test_intrinsics_follow_dreifus_semantics() -> None:
    _, k = _rig()
    intr = camera.make_intrinsics(k)
    assert intr.dtype == np.float32 and (intr.fx, intr.fy, intr.cx, intr.cy, intr.s) == (2400.5, 2401.5, 550.25, 802.75, 0.0)
    assert intr.get_fovx(1100) == 2 * math.atan(1100 / (2 * 2400.5))
    half = intr.rescale(0.5, inplace=False)
    assert (half.fx, half.cx, intr.fx) == (1200.25, 275.125, 2400.5)
    assert intr.rescale(0.5) is intr and intr.fx == 1200.25  # in place by default, as dreifus
    np.testing.assert_allclose(intr.invert() @ np.array([intr.cx, intr.cy, 1.0]), [0, 0, 1], atol=1e-6)
    assert intr.homogenize().shape == (4, 4) and type(intr.numpy()) is np.ndarray


def test_calibration_values_are_the_official_float32_and_fresh_per_call(nvs: Any, sample_root: Path) -> None:
    from nersemble_zarr.raw import read_camera_params

    raw = read_camera_params(sample_root / bm.NVS / bm.calibration_path(nvs._participant_id))
    first = nvs.load_camera_calibration()
    for serial in bm.SERIALS:  # dreifus: Pose(json list) stores float32(value), bit for bit
        np.testing.assert_array_equal(first.world_2_cam[serial], np.asarray(raw.world_2_cam[serial]).astype(np.float32))
        np.testing.assert_array_equal(first.intrinsics[serial], np.asarray(raw.intrinsics[serial]).astype(np.float32))
    serial = bm.SERIALS[0]
    first.intrinsics[serial].rescale(0.5)  # in place on this call's object only
    first.world_2_cam[serial].change_pose_type(first.world_2_cam[serial].pose_type.invert())
    second = nvs.load_camera_calibration()
    np.testing.assert_array_equal(second.intrinsics[serial], np.asarray(raw.intrinsics[serial]).astype(np.float32))
    assert second.world_2_cam[serial].pose_type.name == "WORLD_2_CAM"


def test_dreifus_is_used_when_installed_and_ours_match_it() -> None:
    """Runs where dreifus is installed (not in CI): the factories return dreifus objects, and this module's
    classes give the same float32 bits for what users call."""
    dreifus_matrix = pytest.importorskip("dreifus.matrix")
    from dreifus.camera import CameraCoordinateConvention, PoseType

    camera._dreifus.cache_clear()
    m, k = _rig(3)
    assert type(camera.make_pose(m)) is dreifus_matrix.Pose and type(camera.make_intrinsics(k)) is dreifus_matrix.Intrinsics
    d, o = dreifus_matrix.Pose(m), camera.Pose(m)
    dc, oc = d.change_pose_type(PoseType.CAM_2_WORLD, inplace=False), o.change_pose_type(camera.PoseType.CAM_2_WORLD, inplace=False)
    for a, b in [(d.invert(), o.invert()), (dc, oc), (dc.get_look_direction(), oc.get_look_direction()),
                 (dc.get_up_direction(), oc.get_up_direction()), (dc.get_translation(), oc.get_translation()),
                 (dc.change_camera_coordinate_convention(CameraCoordinateConvention.OPEN_GL, inplace=False),
                  oc.change_camera_coordinate_convention(camera.CameraCoordinateConvention.OPEN_GL, inplace=False)),
                 (dreifus_matrix.Pose.from_euler(np.float32([0.1, -0.2, 0.3]), np.float32([1, 2, 3])),
                  camera.Pose.from_euler(np.float32([0.1, -0.2, 0.3]), np.float32([1, 2, 3]))),
                 (dreifus_matrix.Intrinsics(k).rescale(0.5, inplace=False), camera.Intrinsics(k).rescale(0.5, inplace=False))]:
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(np.asarray(a), np.asarray(b))


def test_pose_accepts_dreifus_enum_members_by_name() -> None:
    """Code importing PoseType from dreifus but getting this module's poses (dreifus not importable at load time)."""
    from enum import Enum

    class PoseType(Enum):  # stands in for dreifus.camera.PoseType
        CAM_2_WORLD = 1
        WORLD_2_CAM = 2

    class CameraCoordinateConvention(Enum):
        OPEN_GL = 1

    m, _ = _rig(4)
    pose = camera.Pose(m, pose_type=PoseType.WORLD_2_CAM)
    assert pose.pose_type is camera.PoseType.WORLD_2_CAM
    c2w = pose.change_pose_type(PoseType.CAM_2_WORLD, inplace=False)
    assert c2w.pose_type is camera.PoseType.CAM_2_WORLD
    np.testing.assert_allclose(c2w, np.linalg.inv(m), atol=1e-6)
    gl = c2w.change_camera_coordinate_convention(CameraCoordinateConvention.OPEN_GL, inplace=False)
    assert gl.camera_coordinate_convention is camera.CameraCoordinateConvention.OPEN_GL
    with pytest.raises(ValueError, match=r"expected a PoseType \(CAM_2_WORLD, WORLD_2_CAM, CAM_2_CAM\), got 'CAM'"):
        pose.change_pose_type("CAM")

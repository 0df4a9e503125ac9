"""FlameProvider and the batched forward: equal to an independent smplx FLAME reference, from every tracking source."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch

import torch
import trimesh
from scipy.spatial.transform import Rotation

from nersemble_zarr import FlameModel, FlameProvider
from nersemble_zarr.flame.provider import FlameParameters, FlameTrackingError, load_flame_parameters
from nersemble_zarr.flame.model import FlameModelError
from nersemble_zarr.raw.tracking import FlameTracking, write_tracking
from nersemble_zarr.testing.flame_model import synthetic_flame_tracking

T = 13  # not a multiple of the chunk sizes used below
N_LANDMARKS = 51


@pytest.fixture(scope="module")
def tracking() -> FlameTracking:
    # frames that are not 0..T-1, as for a sequence whose tracking starts later than its video
    return synthetic_flame_tracking(T, seed=7, frames=np.arange(5, 5 + 2 * T, 2))


@pytest.fixture(scope="module")
def embedding_dir(tmp_path_factory: pytest.TempPathFactory, flame_model_path: Path) -> Path:
    """A smplx-style model folder: FLAME_NEUTRAL.pkl (our synthetic model) + synthetic landmark embeddings."""
    d = tmp_path_factory.mktemp("smplx_flame")
    os.symlink(flame_model_path, d / "FLAME_NEUTRAL.pkl")
    rng = np.random.default_rng(5)
    bary = rng.uniform(0.05, 1, (N_LANDMARKS, 3))
    with open(d / "flame_static_embedding.pkl", "wb") as f:
        pickle.dump({"lmk_face_idx": rng.choice(9976, N_LANDMARKS, replace=False).astype(np.uint32),
                     "lmk_b_coords": bary / bary.sum(1, keepdims=True)}, f, protocol=2)
    bary = rng.uniform(0.05, 1, (79, 17, 3))
    contour = {"lmk_face_idx": rng.integers(0, 9976, (79, 17)).astype(np.int64), "lmk_b_coords": bary / bary.sum(-1, keepdims=True)}
    np.save(d / "flame_dynamic_embedding.npy", np.array(contour, dtype=object), allow_pickle=True)
    return d


@pytest.fixture(scope="module")
def model(flame_model_path: Path, embedding_dir: Path) -> FlameModel:
    return FlameModel.load(flame_model_path, landmark_embedding=embedding_dir / "flame_static_embedding.pkl")


def _smplx_reference(embedding_dir: Path, tr: FlameTracking, *, contour: bool = False):
    """smplx's own FLAME layer (float64) + scipy 'XYZ' rotation, scale and translation: (vertices, landmarks)."""
    import smplx

    n = tr.expression.shape[0]
    layer = smplx.FLAME(str(embedding_dir), num_betas=300, num_expression_coeffs=100, batch_size=n,
                        dtype=torch.float64, use_face_contour=contour)
    f64 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        out = layer(betas=f64(tr.shape).expand(n, -1), expression=f64(tr.expression), global_orient=torch.zeros(n, 3, dtype=torch.float64),
                    neck_pose=f64(tr.neck), jaw_pose=f64(tr.jaw), leye_pose=f64(tr.eyes[:, :3]), reye_pose=f64(tr.eyes[:, 3:]))
    rot = Rotation.from_euler("XYZ", tr.rotation.astype(np.float64)).as_matrix()
    scale, trans = float(tr.scale[0, 0]), tr.translation.astype(np.float64)[:, None]
    world = lambda p: scale * np.einsum("tij,tvj->tvi", rot, p) + trans  # noqa: E731
    return world(out.vertices.numpy()), world(out.joints.numpy()[:, 5:])


def test_vertices_equal_smplx_flame_reference_with_scipy_xyz_transform(model, embedding_dir, tracking) -> None:
    expected, _ = _smplx_reference(embedding_dir, tracking)
    provider = FlameProvider(tracking, model, chunk_size=4)
    vertices = provider.vertices()
    assert vertices.shape == (T, 5023, 3) and vertices.dtype == np.float32
    assert np.abs(vertices - expected).max() <= 1e-5
    assert np.abs(expected - expected[0]).max() > 0.05  # the head really moves: the test can tell timesteps apart


def test_landmarks_equal_smplx_flame_reference(model, embedding_dir, tracking) -> None:
    _, expected = _smplx_reference(embedding_dir, tracking)
    provider = FlameProvider(tracking, model)
    landmarks = provider.landmarks()
    assert landmarks.shape == (T, N_LANDMARKS, 3)
    assert np.abs(landmarks - expected).max() <= 1e-5
    np.testing.assert_allclose(provider.get_landmarks(3), landmarks[3], atol=1e-6)


def test_contour_landmarks_come_first_and_follow_smplx_at_zero_neck(flame_model_path, embedding_dir, tracking) -> None:
    model = FlameModel.load(flame_model_path, landmark_embedding=embedding_dir / "flame_static_embedding.pkl",
                            contour_embedding=embedding_dir / "flame_dynamic_embedding.npy")
    still = FlameTracking(**{**tracking.as_dict(), "neck": np.zeros_like(tracking.neck)})
    ours = FlameProvider(still, model).landmarks()
    _, reference = _smplx_reference(embedding_dir, still, contour=True)  # smplx: static then 17 contour points
    assert ours.shape == (T, 17 + N_LANDMARKS, 3)
    assert np.abs(ours[:, :17] - reference[:, N_LANDMARKS:]).max() <= 1e-5
    assert np.abs(ours[:, 17:] - reference[:, :N_LANDMARKS]).max() <= 1e-5


def test_landmarks_without_embedding_files_say_what_is_needed(flame_model_path, tracking) -> None:
    provider = FlameProvider(tracking, flame_model_path)
    with pytest.raises(FlameModelError, match="flame_static_embedding.pkl"):
        provider.get_landmarks(0)


def test_per_timestep_methods_match_the_batch(model, tracking) -> None:
    provider = FlameProvider(tracking, model)
    batch = provider.vertices()
    for t in (0, 6, T - 1):
        np.testing.assert_allclose(provider.get_vertices(t), batch[t], atol=1e-6)
    mesh = provider.get_mesh(4)  # the official: a trimesh.Trimesh built with process=False
    assert isinstance(mesh, trimesh.Trimesh) and mesh.vertices.shape == (5023, 3) and mesh.faces.shape == (9976, 3)
    np.testing.assert_array_equal(mesh.vertices, provider.get_vertices(4))  # no merging, no reordering
    np.testing.assert_allclose(mesh.vertices, batch[4], atol=1e-6)
    assert mesh.faces.dtype == provider.faces.dtype == np.int64 and mesh.faces.max() == 5022
    np.testing.assert_array_equal(mesh.faces, model.faces)
    made = provider.create_mesh(batch[4])
    assert isinstance(made, trimesh.Trimesh) and len(made.vertices) == 5023
    np.testing.assert_array_equal(made.vertices, batch[4])
    np.testing.assert_allclose(provider.vertices([2, 9]), batch[[2, 9]], atol=1e-6)
    assert provider.has_mesh(T - 1) and not provider.has_mesh(T)
    np.testing.assert_array_equal(provider.frames, tracking.frames)
    with pytest.raises(IndexError, match=f"timestep {T} out of range, the tracking has {T} timesteps"):
        provider.get_vertices(T)


def test_model_to_world_transformation_maps_model_space_to_the_vertices(model, tracking) -> None:
    provider = FlameProvider(tracking, model)
    t = 5
    m = provider.get_model_to_world_transformation(t)
    # the official: dreifus Pose.from_euler(rotation[t], translation[t], 'XYZ') (float32), rotation block *= scale
    expected = np.eye(4, dtype=np.float32)
    expected[:3, :3] = Rotation.from_euler("XYZ", tracking.rotation[t]).as_matrix()
    expected[:3, 3] = tracking.translation[t]
    expected[:3, :3] *= tracking.scale[0, 0].item()
    assert m.dtype == np.float32 and m.shape == (4, 4) and m.pose_type.name == "WORLD_2_CAM"
    np.testing.assert_array_equal(m, expected)
    assert type(m.numpy()) is np.ndarray
    p = load_flame_parameters(tracking).select([t])
    model_space = model.forward(p.shape, p.expression, p.neck, p.jaw, p.eyes)[0].numpy()  # no rotation: model space
    np.testing.assert_allclose(provider.apply_model_to_world_transformation(model_space, t), provider.get_vertices(t), atol=1e-6)
    as_tensor = provider.apply_model_to_world_transformation(torch.from_numpy(model_space)[None], t)  # official: (B, V, 3) tensor
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (1, 5023, 3) and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor[0].numpy(), provider.get_vertices(t), atol=1e-6)


def test_every_tracking_source_gives_the_same_vertices(model, tracking, tmp_path) -> None:
    import xarray as xr

    npz = tmp_path / "flame2023_tracking_v2.npz"
    write_tracking(npz, tracking)
    ds = xr.Dataset(
        {k: (("frame",) + tuple(f"d{k}{i}" for i in range(v.ndim - 1)), v) for k, v in tracking.as_dict().items()
         if k not in ("shape", "scale", "frames")}
        | {"shape": ("shape_coeff", tracking.shape[0]), "scale": ((), tracking.scale[0, 0])},
        coords={"frame": tracking.frames},
    )
    reference = FlameProvider(tracking, model).vertices()
    for source in (npz, str(npz), dict(np.load(npz)), ds, load_flame_parameters(tracking)):
        provider = FlameProvider(source, model)
        np.testing.assert_array_equal(provider.vertices(), reference, err_msg=type(source).__name__)
        np.testing.assert_array_equal(provider.frames, tracking.frames)


def test_chunk_size_bounds_the_batch_without_changing_the_result(model, tracking) -> None:
    seen = []
    p = load_flame_parameters(tracking)
    for sl, verts, _ in model.iter_forward(p.shape, p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation, p.scale, chunk_size=5):
        seen.append((sl.start, sl.stop, verts.shape[0]))
    assert seen == [(0, 5, 5), (5, 10, 5), (10, 13, 3)]
    one_batch = FlameProvider(tracking, model, chunk_size=T).vertices()
    per_step = FlameProvider(tracking, model, chunk_size=1).vertices()
    np.testing.assert_allclose(per_step, one_batch, atol=1e-6)


def test_dtype_and_device_are_selectable(flame_model_path, tracking) -> None:
    f32 = FlameProvider(tracking, flame_model_path).vertices()
    f64 = FlameProvider(tracking, flame_model_path, dtype=torch.float64, device="cpu")
    assert f64.flame_model.dtype == torch.float64 and f64.flame_model.v_template.device.type == "cpu"
    np.testing.assert_allclose(f64.vertices(), f32, atol=2e-6)


def test_bad_tracking_names_the_variable_and_shapes(model, tracking) -> None:
    broken = {**tracking.as_dict(), "jaw": tracking.jaw[:-1]}
    with pytest.raises(FlameTrackingError, match=rf"'jaw' has shape \({T - 1}, 3\), expected \({T}, 3\)"):
        FlameProvider(broken, model)
    with pytest.raises(FlameTrackingError, match="lacks eyes"):
        FlameProvider({k: v for k, v in tracking.as_dict().items() if k != "eyes"}, model)
    with pytest.raises(FlameTrackingError, match="cannot read FLAME tracking from a int"):
        load_flame_parameters(3)


def test_parameters_select_keeps_frames_aligned(tracking) -> None:
    p = load_flame_parameters(tracking)
    assert isinstance(p, FlameParameters) and p.shape.shape == (300,) and isinstance(p.scale, float)
    sub = p.select(slice(2, 4))
    np.testing.assert_array_equal(sub.frames, tracking.frames[2:4])
    np.testing.assert_array_equal(sub.expression, tracking.expression[2:4])


def test_an_unusable_device_is_a_clear_error(model) -> None:
    with pytest.raises(FlameModelError, match="torch device 'bogus' is not usable here"):
        FlameModel(model.arrays, device="bogus")

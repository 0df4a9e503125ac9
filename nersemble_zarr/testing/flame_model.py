"""A synthetic model with the exact layout of the licensed FLAME 2023 pickle, for tests, demos and benchmarks.

The real model cannot be redistributed. This one has the same keys, shapes and dtypes as
``flame2023.pkl`` (5023 vertices, 9976 faces, 5 joints, 400 shape+expression directions, 36 pose
directions, sparse joint regressor) and a plausible head: an ellipsoid skull open at the neck with a nose,
plus two closed eyeballs, like FLAME's own mesh. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse

from ..core.benchmark import FLAME_MODEL_FILE, N_EXPRESSION, N_FACES, N_JOINTS, N_POSE_BASIS, N_SHAPE, N_VERTICES
from ..raw._atomic import write_atomic
from ..raw.tracking import FlameTracking

#: FLAME's kinematic tree: root -> neck -> {jaw, left eye, right eye}; the root's parent is uint32 -1.
KINTREE_TABLE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)

# Mesh layout. With an open skull of HEAD_RINGS rings x HEAD_SEGMENTS vertices plus a top pole and two
# closed eyeballs of EYE_RINGS x EYE_SEGMENTS vertices plus two poles each, Euler's formula gives exactly
# FLAME's counts: 1 + 66*60 + 2*(2 + 23*23) = 5023 vertices, 60*(2*66-1) + 2*(2*23*23) = 9976 faces.
HEAD_RINGS, HEAD_SEGMENTS = 66, 60
EYE_RINGS, EYE_SEGMENTS = 23, 23
HEAD_RADII = np.array([0.078, 0.105, 0.095])  # metres: half width, half height, half depth
NECK_OPENING = 0.82 * np.pi  # polar angle of the lowest skull ring
EYE_RADIUS = 0.0125
EYE_CENTRES = np.array([[0.032, 0.025, 0.0], [-0.032, 0.025, 0.0]])  # z set on the skull surface below
# polar angles of the skull rings whose centroids become the root, neck and jaw joints
JOINT_RING_ANGLES = {"root": NECK_OPENING, "neck": 0.68 * np.pi, "jaw": 0.58 * np.pi}


def write_synthetic_flame_model(directory: str | os.PathLike, seed: int = 0, *, chumpy: bool = False) -> Path:
    """Write ``<directory>/flame2023.pkl``, a FLAME-2023-shaped model, and return its path.

    Keys and arrays (float64 unless noted, metres): ``v_template (5023, 3)``, ``f (9976, 3) uint32``,
    ``shapedirs (5023, 3, 400)`` (300 shape then 100 expression directions), ``posedirs (5023, 3, 36)``,
    ``J_regressor`` scipy ``csc_matrix (5, 5023)``, ``J (5, 3)``, ``weights (5023, 5)``,
    ``kintree_table (2, 5) int64``, ``bs_style`` ``"lbs"``, ``bs_type`` ``"lrotmin"``. Written as a protocol-2
    pickle like the official files, to a temporary name and renamed, so a crash never leaves a partial model.

    ``chumpy=True`` stores ``v_template``, ``shapedirs``, ``posedirs``, ``J`` and ``weights`` as
    ``chumpy.ch.Ch`` objects the way pre-2023 FLAME releases do (without needing chumpy installed), to
    test loaders that must read such files without chumpy.
    """
    model = synthetic_flame_arrays(seed)
    if chumpy:
        with _fake_chumpy() as ch_class:
            for key in ("v_template", "shapedirs", "posedirs", "J", "weights"):
                model[key] = ch_class.wrap(model[key])
            payload = pickle.dumps(model, protocol=2)
    else:
        payload = pickle.dumps(model, protocol=2)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FLAME_MODEL_FILE
    write_atomic(path, payload)
    return path


def synthetic_flame_arrays(seed: int = 0) -> dict[str, object]:
    """The synthetic model as the dict :func:`write_synthetic_flame_model` pickles (see there for keys)."""
    rng = np.random.default_rng(seed)
    vertices, faces, parts = _mesh()
    joints, regressor = _joints(vertices, parts)
    weights = _skinning_weights(vertices, parts)
    shapedirs = _shape_directions(vertices, parts, rng)
    posedirs = _pose_directions(vertices, parts, rng)
    return {
        "f": faces.astype(np.uint32),
        "J_regressor": regressor,
        "kintree_table": KINTREE_TABLE.copy(),
        "J": joints,
        "weights": weights,
        "posedirs": posedirs,
        "v_template": vertices,
        "shapedirs": shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _uv_sphere(n_rings: int, n_segments: int, theta_max: float, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere around +y with a pole at +y, ``n_rings`` rings down to ``theta_max`` and a bottom pole if closed.

    Returns vertices ``(V, 3)`` (top pole first, rings top to bottom, bottom pole last) and faces ``(F, 3)``.
    """
    if closed:
        thetas = np.arange(1, n_rings + 1) * np.pi / (n_rings + 1)
    else:
        thetas = np.arange(1, n_rings + 1) * theta_max / n_rings
    phis = np.arange(n_segments) * 2 * np.pi / n_segments
    th, ph = np.meshgrid(thetas, phis, indexing="ij")
    ring_vertices = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1).reshape(-1, 3)
    vertices = [np.array([[0.0, 1.0, 0.0]]), ring_vertices]
    ring = lambda k: 1 + k * n_segments + np.arange(n_segments)  # noqa: E731 - vertex ids of ring k
    nxt = lambda ids: np.roll(ids, -1)  # noqa: E731
    faces = [np.stack([np.zeros(n_segments, int), ring(0), nxt(ring(0))], -1)]
    for k in range(n_rings - 1):
        a, b = ring(k), ring(k + 1)
        faces += [np.stack([a, b, nxt(b)], -1), np.stack([a, nxt(b), nxt(a)], -1)]
    if closed:
        bottom = 1 + n_rings * n_segments
        vertices.append(np.array([[0.0, -1.0, 0.0]]))
        last = ring(n_rings - 1)
        faces.append(np.stack([np.full(n_segments, bottom), nxt(last), last], -1))
    vertices = np.concatenate(vertices)
    faces = np.concatenate(faces)
    # orient every face outwards (the sphere is convex around the origin)
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("ij,ij->i", normals, tri.mean(1)) < 0
    faces[inward] = faces[inward][:, ::-1]
    return vertices, faces


def _mesh() -> tuple[np.ndarray, np.ndarray, dict[str, slice]]:
    """Skull (open at the neck, with a nose) plus two eyeballs: vertices ``(5023, 3)``, faces ``(9976, 3)``."""
    head_unit, head_faces = _uv_sphere(HEAD_RINGS, HEAD_SEGMENTS, NECK_OPENING, closed=False)
    head = head_unit * HEAD_RADII
    nose = 0.022 * np.exp(-((head[:, 0] / 0.014) ** 2 + ((head[:, 1] + 0.005) / 0.024) ** 2))
    head[:, 2] += np.where(head[:, 2] > 0, nose, 0.0)
    eye_unit, eye_faces = _uv_sphere(EYE_RINGS, EYE_SEGMENTS, np.pi, closed=True)
    # eyeball poles look forward (+z), like FLAME's
    eye_unit = eye_unit[:, [0, 2, 1]]
    eye_faces = eye_faces[:, ::-1]  # the axis swap mirrored the mesh
    vertices, faces, parts = [head], [head_faces], {"head": slice(0, len(head))}
    offset = len(head)
    for name, centre in zip(("left_eye", "right_eye"), _eye_centres()):
        vertices.append(eye_unit * EYE_RADIUS + centre)
        faces.append(eye_faces + offset)
        parts[name] = slice(offset, offset + len(eye_unit))
        offset += len(eye_unit)
    vertices_arr, faces_arr = np.concatenate(vertices), np.concatenate(faces)
    assert vertices_arr.shape == (N_VERTICES, 3) and faces_arr.shape == (N_FACES, 3)
    return vertices_arr, faces_arr, parts


def _eye_centres() -> np.ndarray:
    """Eyeball centres ``(2, 3)``: set back from the skull surface so the eyes just show."""
    centres = EYE_CENTRES.copy()
    x, y = centres[:, 0] / HEAD_RADII[0], centres[:, 1] / HEAD_RADII[1]
    centres[:, 2] = HEAD_RADII[2] * np.sqrt(1 - x**2 - y**2) - 0.5 * EYE_RADIUS
    return centres


def _head_ring(theta: float) -> np.ndarray:
    """Vertex ids of the skull ring nearest the polar angle ``theta``."""
    k = int(round(theta / NECK_OPENING * HEAD_RINGS)) - 1
    return 1 + k * HEAD_SEGMENTS + np.arange(HEAD_SEGMENTS)


def _joints(vertices: np.ndarray, parts: dict[str, slice]) -> tuple[np.ndarray, scipy.sparse.csc_matrix]:
    """Joint regressor ``(5, 5023)`` averaging a skull ring (root, neck, jaw) or an eyeball, and the joints ``(5, 3)``."""
    groups = [_head_ring(JOINT_RING_ANGLES[name]) for name in ("root", "neck", "jaw")]
    groups += [np.arange(parts[name].start, parts[name].stop) for name in ("left_eye", "right_eye")]
    rows = np.concatenate([np.full(len(g), j) for j, g in enumerate(groups)])
    cols = np.concatenate(groups)
    vals = np.concatenate([np.full(len(g), 1.0 / len(g)) for g in groups])
    regressor = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(N_JOINTS, N_VERTICES))
    return np.asarray(regressor @ vertices), regressor


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _skinning_weights(vertices: np.ndarray, parts: dict[str, slice]) -> np.ndarray:
    """Smooth skinning weights ``(5023, 5)``, rows summing to 1: neck base -> root, chin -> jaw, eyeballs rigid."""
    x, y, z = vertices.T
    root = _sigmoid((-0.075 - y) / 0.008)
    jaw = _sigmoid((-0.03 - y) / 0.008) * _sigmoid((z - 0.03) / 0.01) * (1 - root)
    weights = np.zeros((N_VERTICES, N_JOINTS))
    weights[:, 0], weights[:, 2] = root, jaw
    weights[:, 1] = 1 - root - jaw
    for joint, name in ((3, "left_eye"), (4, "right_eye")):
        weights[parts[name]] = np.eye(N_JOINTS)[joint]
    return weights


def _smooth_features(points: np.ndarray) -> np.ndarray:
    """All monomials of degree <= 3 of the head-normalised coordinates: ``(N, 20)``, smooth over the surface."""
    p = points / HEAD_RADII
    feats = [np.ones(len(p))]
    for i in range(3):
        feats.append(p[:, i])
        for j in range(i, 3):
            feats.append(p[:, i] * p[:, j])
            for k in range(j, 3):
                feats.append(p[:, i] * p[:, j] * p[:, k])
    return np.stack(feats, -1)


def _eyeballs_follow_centres(vertices: np.ndarray, parts: dict[str, slice]) -> np.ndarray:
    """``vertices`` with each eyeball collapsed to its centre, so fields evaluated there move eyes rigidly."""
    points = vertices.copy()
    for name in ("left_eye", "right_eye"):
        points[parts[name]] = vertices[parts[name]].mean(0)
    return points


def _shape_directions(vertices: np.ndarray, parts: dict[str, slice], rng: np.random.Generator) -> np.ndarray:
    """``(5023, 3, 400)``: 300 identity directions (decaying, a few mm each) then 100 expression directions
    concentrated on the lower face."""
    phi = _smooth_features(_eyeballs_follow_centres(vertices, parts))
    n_dirs = N_SHAPE + N_EXPRESSION
    coeffs = rng.standard_normal((phi.shape[1], 3, n_dirs)) / np.sqrt(phi.shape[1])
    sigma = np.concatenate([0.004 * 0.985 ** np.arange(N_SHAPE), 0.003 * 0.97 ** np.arange(N_EXPRESSION)])
    dirs = np.einsum("vk,kcd->vcd", phi, coeffs * sigma)
    _, y, z = vertices.T
    lower_face = _sigmoid((0.0 - y) / 0.02) * _sigmoid(z / 0.02)
    lower_face[parts["left_eye"]] = lower_face[parts["right_eye"]] = 0.05
    dirs[:, :, N_SHAPE:] *= lower_face[:, None, None]
    return dirs


def _pose_directions(vertices: np.ndarray, parts: dict[str, slice], rng: np.random.Generator) -> np.ndarray:
    """``(5023, 3, 36)`` pose-corrective directions (sub-millimetre per unit rotation-matrix entry), none on the eyes."""
    phi = _smooth_features(vertices)
    coeffs = rng.standard_normal((phi.shape[1], 3, N_POSE_BASIS)) / np.sqrt(phi.shape[1])
    dirs = np.einsum("vk,kcd->vcd", phi, coeffs * 5e-4)
    for name in ("left_eye", "right_eye"):
        dirs[parts[name]] = 0.0
    return dirs


class _FakeCh:
    """Pickles as ``chumpy.ch.Ch`` with the state chumpy's ``Ch.__getstate__`` writes (``__dict__`` without
    the weak-reference caches): the array in ``x`` plus chumpy's bookkeeping attributes."""

    def __init__(self, x: np.ndarray) -> None:
        self._dirty_vars = {"x"}
        self._itr = None
        self._make_dense = False
        self._make_sparse = False
        self._depends_on_deps = {}
        self.x = x

    @classmethod
    def wrap(cls, array: np.ndarray) -> "_FakeCh":
        return cls(array)


@contextmanager
def _fake_chumpy() -> Iterator[type[_FakeCh]]:
    """Register throw-away ``chumpy``/``chumpy.ch`` modules while pickling, then remove them again."""
    names = ("chumpy", "chumpy.ch")
    saved = {name: sys.modules.get(name) for name in names}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch_class = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch", "__qualname__": "Ch"})
    module.Ch = ch_class
    package.ch = module
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        yield ch_class
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def synthetic_flame_tracking(n_timesteps: int, seed: int = 0, *, frames: np.ndarray | None = None) -> FlameTracking:
    """Plausible FLAME tracking of ``n_timesteps`` timesteps: a head turning and talking, float32 like the npz.

    Identity and expression coefficients ~ N(0, 1) (expressions drift smoothly), neck/jaw/eyes small
    axis-angles (jaw opening around x), rotation a few tenths of a radian, translation within ~10 cm of a
    point 1 m in front of the origin, ``scale`` near 1. ``frames`` defaults to ``0..T-1``.
    """
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    t = n_timesteps
    phase = np.linspace(0, 2 * np.pi, max(t, 1), endpoint=False)[:t, None]
    smooth = lambda width, amp: (amp * np.sin(phase * rng.uniform(0.5, 3, width) + rng.uniform(0, 2 * np.pi, width))  # noqa: E731
                                 + 0.1 * amp * rng.standard_normal((t, width)))
    rotation = smooth(3, 0.3)
    jaw = np.concatenate([np.abs(smooth(1, 0.25)), smooth(2, 0.02)], axis=1)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return FlameTracking(
        shape=f32(rng.standard_normal((1, N_SHAPE))),
        expression=f32(smooth(N_EXPRESSION, 1.0)),
        rotation=f32(rotation),
        rotation_matrices=f32(Rotation.from_euler("XYZ", rotation).as_matrix() if t else np.zeros((0, 3, 3))),
        translation=f32(np.array([0.0, 0.0, 1.0]) + smooth(3, 0.05)),
        jaw=f32(jaw),
        frames=np.arange(t, dtype=np.int32) if frames is None else np.asarray(frames),
        scale=f32([[1.0 + 0.1 * rng.standard_normal()]]),
        neck=f32(smooth(3, 0.15)),
        eyes=f32(smooth(6, 0.1)),
    )

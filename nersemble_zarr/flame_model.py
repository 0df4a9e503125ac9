"""FLAME 2023: safe loading of the model pickle and a batched, chunked forward pass on ``smplx.lbs``.

The forward pass follows the official NeRSemble ``FlameProvider`` exactly (DESIGN §3):

- betas = shape (300) ‖ expression (100); full pose = [global 0,0,0 | neck | jaw | eyes (6)] as axis-angles;
- linear blend skinning with :func:`smplx.lbs.lbs` → vertices in model space;
- model → world: ``v_world = scale · R · v + translation`` with ``R = Rotation.from_euler('XYZ', rotation)``
  (scipy's intrinsic X-Y-Z convention), here in torch so whole batches transform at once.

Model pickles are read with a restricted unpickler: numpy arrays, scipy.sparse matrices and (pre-2023
releases) chumpy arrays, the latter turned into numpy without chumpy installed. Any other class is refused
before anything is constructed, so a model file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .benchmark import N_EXPRESSION, N_FACES, N_JOINTS, N_POSE_BASIS, N_SHAPE, N_VERTICES
from .errors import NersembleZarrError

#: Timesteps evaluated per batch by default: fastest on CPU (cache-sized), ~1 MB of intermediates per timestep (benchmarks/flame.py).
DEFAULT_CHUNK_SIZE = 64


class FlameModelError(NersembleZarrError):
    """A FLAME model or landmark-embedding file that cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------

_NUMPY_GLOBALS = {
    # (module, name) pairs across numpy 1.x (numpy.core) and 2.x (numpy._core) pickles
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_SPARSE_CLASSES = {
    "csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array",
}
_SPARSE_MODULES = {
    "scipy.sparse", "scipy.sparse.csc", "scipy.sparse.csr", "scipy.sparse.coo",
    "scipy.sparse._csc", "scipy.sparse._csr", "scipy.sparse._coo", "scipy.sparse.compressed",
}
#: Harmless helpers and containers protocol-2 pickles use to rebuild bytes, sets and plain objects.
_BUILTIN_GLOBALS = {
    ("_codecs", "encode"), ("copyreg", "_reconstructor"),
    *(("builtins", name) for name in ("object", "set", "frozenset", "complex", "slice", "bytes", "bytearray")),
}
#: Python 2 module names in old pickles (pickle's own fix_imports runs only inside the base find_class).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _ChumpyStandIn:
    """Receives a pickled chumpy object's state without chumpy; resolved to its array after loading."""

    chumpy_class = "chumpy"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ChumpyStandIn":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        self.state = state


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy, scipy.sparse and chumpy stand-ins; refuses every other global by name."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self._stand_ins: dict[str, type[_ChumpyStandIn]] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _NUMPY_GLOBALS:
            import numpy._core.multiarray as multiarray
            import numpy._core.numeric as numeric

            if name in ("ndarray", "dtype"):
                return getattr(np, name)
            return getattr(numeric if name == "_frombuffer" else multiarray, name)
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if (module, name) in _BUILTIN_GLOBALS:
            return super().find_class(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            qualified = f"{module}.{name}"
            if qualified not in self._stand_ins:
                self._stand_ins[qualified] = type(name, (_ChumpyStandIn,), {"chumpy_class": qualified})
            return self._stand_ins[qualified]
        raise FlameModelError(
            f"{self.source}: refusing to load the pickle: it references {module}.{name}, which is not a numpy, "
            "scipy.sparse or chumpy array (a model file must hold arrays only; nothing from it was executed)"
        )


def _resolve_chumpy(value: Any, source: str, key: str) -> Any:
    """A chumpy stand-in → its ``x`` array (as numpy); other values unchanged (containers recursively)."""
    if isinstance(value, _ChumpyStandIn):
        state = getattr(value, "state", None)
        x = state.get("x") if isinstance(state, dict) else None
        if x is None:
            raise FlameModelError(
                f"{source}: '{key}' is a {value.chumpy_class} object without a stored array ('x'); only plain "
                "chumpy arrays (chumpy.ch.Ch) can be read without chumpy"
            )
        return np.asarray(_resolve_chumpy(x, source, key))
    if isinstance(value, dict):
        return {k: _resolve_chumpy(v, source, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve_chumpy(v, source, key) for v in value)
    return value


def safe_load_pickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (python-2 protocol-2 pickles included, ``encoding="latin1"``) allowing only arrays.

    numpy arrays/scalars/dtypes and scipy.sparse csc/csr/coo matrices load as themselves; chumpy objects
    load as their numpy value; anything else raises :class:`FlameModelError` naming the class, before it is
    called. ``source`` names the file in error messages.
    """
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    except FlameModelError:
        raise
    except Exception as e:  # truncated or corrupt streams raise anything from EOFError to struct.error
        raise FlameModelError(
            f"{source}: not a readable pickle ({len(data)} bytes; truncated or corrupt: {type(e).__name__}: {e})"
        ) from None
    return _resolve_chumpy(obj, source, "")


# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlameModelArrays:
    """The FLAME 2023 arrays as plain numpy (float64 as stored unless noted).

    ``v_template (5023, 3)`` metres, ``faces (9976, 3) int64``, ``shapedirs (5023, 3, 400)`` (300 shape then
    100 expression directions), ``posedirs (5023, 3, 36)``, ``J_regressor (5, 5023)`` dense,
    ``weights (5023, 5)``, ``parents (5,) int64`` (root's parent -1), plus where it came from.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    source: str = "<memory>"
    sha256: str = ""


def _check_shape(source: str, name: str, array: np.ndarray, expected: tuple[int | None, ...]) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        shown = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise FlameModelError(
            f"{source}: '{name}' has shape {tuple(array.shape)}, expected {shown} for a FLAME 2023 model"
        )


def _as_dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse
        return np.asarray(value.toarray())
    return np.asarray(value)


def parse_flame_arrays(raw: Mapping[str, Any], source: str = "<memory>", sha256: str = "") -> FlameModelArrays:
    """Check a loaded model dict (keys as in the pickle) and return its arrays; errors name key, expected, found."""
    if not isinstance(raw, Mapping):
        raise FlameModelError(f"{source}: expected a dict of FLAME arrays, found {type(raw).__name__}")
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in required if k not in raw]
    if missing:
        raise FlameModelError(f"{source}: missing key(s) {missing}; a FLAME model pickle holds {list(required)}")
    try:
        arrays = {k: _as_dense(raw[k]) for k in required}
    except Exception as e:  # an object array or sparse matrix that cannot densify
        raise FlameModelError(f"{source}: cannot read the model arrays as numbers: {e}") from None
    for key, array in arrays.items():
        if not (np.issubdtype(array.dtype, np.number)):
            raise FlameModelError(f"{source}: '{key}' has dtype {array.dtype}, expected a numeric array")
    v, n_dirs = N_VERTICES, N_SHAPE + N_EXPRESSION
    _check_shape(source, "v_template", arrays["v_template"], (v, 3))
    _check_shape(source, "f", arrays["f"], (N_FACES, 3))
    _check_shape(source, "shapedirs", arrays["shapedirs"], (v, 3, None))
    if arrays["shapedirs"].shape[2] < n_dirs:
        raise FlameModelError(
            f"{source}: 'shapedirs' has {arrays['shapedirs'].shape[2]} directions, expected at least {n_dirs} "
            f"({N_SHAPE} shape + {N_EXPRESSION} expression directions)"
        )
    posedirs = arrays["posedirs"]
    if posedirs.shape == (v * 3, N_POSE_BASIS):
        posedirs = posedirs.reshape(v, 3, N_POSE_BASIS)
    _check_shape(source, "posedirs", posedirs, (v, 3, N_POSE_BASIS))
    _check_shape(source, "J_regressor", arrays["J_regressor"], (N_JOINTS, v))
    _check_shape(source, "weights", arrays["weights"], (v, N_JOINTS))
    _check_shape(source, "kintree_table", arrays["kintree_table"], (2, N_JOINTS))
    faces = arrays["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= v:
        raise FlameModelError(f"{source}: 'f' indexes vertices {faces.min()}..{faces.max()}, expected 0..{v - 1}")
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # stored as uint32 -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise FlameModelError(f"{source}: 'kintree_table' parents {parents.tolist()} do not form a kinematic tree")
    return FlameModelArrays(
        v_template=arrays["v_template"].astype(np.float64),
        faces=faces,
        shapedirs=arrays["shapedirs"][:, :, :n_dirs].astype(np.float64),
        posedirs=posedirs.astype(np.float64),
        J_regressor=arrays["J_regressor"].astype(np.float64),
        weights=arrays["weights"].astype(np.float64),
        parents=parents,
        source=source,
        sha256=sha256,
    )


def read_flame_arrays(path: str | os.PathLike) -> FlameModelArrays:
    """Read and check a FLAME 2023 model pickle (chumpy-free, no code execution); see :func:`safe_load_pickle`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FlameModelError(f"{path}: cannot read the FLAME model: {e.strerror or e}") from None
    return parse_flame_arrays(safe_load_pickle(data, str(path)), str(path), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Landmarks as barycentric points on faces: ``face_idx (L,) int64``, ``bary_coords (L, 3)``.

    ``contour``: optional dynamic jaw-contour embedding (FLAME's ``flame_dynamic_embedding.npy``):
    ``face_idx (79, 17) int64`` and ``bary_coords (79, 17, 3)`` indexed by the head's yaw in degrees.
    """

    face_idx: np.ndarray
    bary_coords: np.ndarray
    contour_face_idx: np.ndarray | None = None
    contour_bary_coords: np.ndarray | None = None


def _load_mapping(path: Path) -> Mapping[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FlameModelError(f"{path}: cannot read the landmark embedding: {e.strerror or e}") from None
    if path.suffix == ".npz":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception as e:
            raise FlameModelError(f"{path}: not a readable npz landmark embedding: {e}") from None
    if path.suffix == ".npy":
        # an object .npy is a pickle inside: load the pickled payload through the restricted unpickler
        buf = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(buf)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(buf)
        except Exception as e:
            raise FlameModelError(f"{path}: not a readable .npy file: {e}") from None
        if dtype.hasobject:
            obj = safe_load_pickle(buf.read(), str(path))  # np.save pickles the whole object array
            if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.ndim == 0:
                obj = obj.item()
            if not isinstance(obj, Mapping):
                raise FlameModelError(f"{path}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords', found {type(obj).__name__}")
            return obj
        return {"array": np.load(io.BytesIO(data), allow_pickle=False)}
    obj = safe_load_pickle(data, str(path))
    if not isinstance(obj, Mapping):
        raise FlameModelError(f"{path}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords', found {type(obj).__name__}")
    return obj


def read_landmark_embedding(
    static: str | os.PathLike, contour: str | os.PathLike | None = None
) -> LandmarkEmbedding:
    """Read FLAME's landmark embedding files as the user supplied them (nothing is downloaded).

    ``static``: ``flame_static_embedding.pkl`` (or an npz) with ``lmk_face_idx (L,)`` and ``lmk_b_coords (L, 3)``.
    ``contour``: optional ``flame_dynamic_embedding.npy`` with ``lmk_face_idx (79, 17)`` and
    ``lmk_b_coords (79, 17, 3)``; with it, landmarks are the 17 contour points followed by the static ones
    (the 68-point order of FLAME_PyTorch, which the official provider uses).
    """
    static = Path(static)
    obj = _load_mapping(static)
    if not isinstance(obj, Mapping):
        raise FlameModelError(f"{static}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords'")
    for key in ("lmk_face_idx", "lmk_b_coords"):
        if key not in obj:
            raise FlameModelError(f"{static}: missing key '{key}' (found {sorted(obj)})")
    face_idx = np.asarray(obj["lmk_face_idx"]).astype(np.int64)
    bary = np.asarray(obj["lmk_b_coords"], dtype=np.float64)
    _check_landmarks(static, face_idx, bary, ())
    contour_face_idx = contour_bary = None
    if contour is not None:
        contour = Path(contour)
        cobj = _load_mapping(contour)
        if not isinstance(cobj, Mapping) or "lmk_face_idx" not in cobj or "lmk_b_coords" not in cobj:
            raise FlameModelError(f"{contour}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords'")
        contour_face_idx = np.asarray(cobj["lmk_face_idx"]).astype(np.int64)
        contour_bary = np.asarray(cobj["lmk_b_coords"], dtype=np.float64)
        _check_landmarks(contour, contour_face_idx, contour_bary, (79,))
    return LandmarkEmbedding(face_idx, bary, contour_face_idx, contour_bary)


def _check_landmarks(path: Path, face_idx: np.ndarray, bary: np.ndarray, lead: tuple[int, ...]) -> None:
    n = len(lead)
    if face_idx.ndim != n + 1 or face_idx.shape[:n] != lead or bary.shape != face_idx.shape + (3,):
        raise FlameModelError(
            f"{path}: 'lmk_face_idx' {face_idx.shape} and 'lmk_b_coords' {bary.shape} do not match; expected "
            f"{lead + ('L',)} and {lead + ('L', 3)}"
        )
    if face_idx.size and (face_idx.min() < 0 or face_idx.max() >= N_FACES):
        raise FlameModelError(f"{path}: 'lmk_face_idx' indexes faces up to {face_idx.max()}, expected < {N_FACES}")


# ---------------------------------------------------------------------------------------------
# Math (pure functions on tensors)
# ---------------------------------------------------------------------------------------------


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of intrinsic X-Y-Z Euler angles ``(..., 3)`` in radians.

    Equals scipy's ``Rotation.from_euler('XYZ', angles).as_matrix()``: ``R = Rx(a) · Ry(b) · Rz(c)``.
    """
    a, b, c = angles.unbind(-1)
    ca, sa, cb, sb, cc, sc = a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin()
    rows = [
        cb * cc, -cb * sc, sb,
        ca * sc + sa * sb * cc, ca * cc - sa * sb * sc, -sa * cb,
        sa * sc - ca * sb * cc, sa * cc + ca * sb * sc, ca * cb,
    ]
    return torch.stack(rows, -1).reshape(angles.shape[:-1] + (3, 3))


def model_to_world_matrices(rotation: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``(T, 4, 4)`` transforms ``[[scale · R_xyz(rotation), translation], [0, 0, 0, 1]]`` for ``(T, 3)`` inputs."""
    t = rotation.shape[0]
    m = torch.zeros((t, 4, 4), dtype=rotation.dtype, device=rotation.device)
    m[:, :3, :3] = euler_xyz_to_matrix(rotation) * torch.as_tensor(scale, dtype=rotation.dtype, device=rotation.device)
    m[:, :3, 3] = translation
    m[:, 3, 3] = 1
    return m


def vertices_to_landmarks(vertices: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Barycentric landmarks ``(B, L, 3)`` from vertices ``(B, V, 3)``, faces ``(F, 3)``, ``face_idx (B|1, L)``,
    ``bary (B|1, L, 3)``."""
    if face_idx.shape[0] != vertices.shape[0]:  # one (1, L) embedding shared by the whole batch
        idx = faces[face_idx[0]]  # (L, 3)
        corners = vertices[:, idx.reshape(-1)].reshape(vertices.shape[0], -1, 3, 3)
        return torch.einsum("blkc,lk->blc", corners, bary[0])
    b = vertices.shape[0]
    idx = faces[face_idx]  # (B, L, 3)
    corners = torch.gather(vertices, 1, idx.reshape(b, -1, 1).expand(-1, -1, 3)).reshape(b, -1, 3, 3)
    return torch.einsum("blkc,blk->blc", corners, bary)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class FlameModel:
    """FLAME 2023 on a torch device: holds the model buffers and evaluates batches of timesteps.

    ``FlameModel.load(path)`` (or ``FlameModel(arrays)``); ``path=None`` takes ``$FLAME_MODEL_PATH`` / the
    ``.env``. ``dtype`` (default float32, as the official provider) and ``device`` select where the math runs.
    Landmarks need the embedding files (``landmarks=(static, contour_or_None)``); nothing is downloaded.
    """

    def __init__(
        self,
        arrays: FlameModelArrays,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        landmarks: LandmarkEmbedding | None = None,
    ) -> None:
        self.arrays = arrays
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as e:
            raise FlameModelError(f"torch device {str(device)!r} is not usable here: {e}") from None
        self.dtype = dtype
        self.landmark_embedding = landmarks
        as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        self.v_template = as_t(arrays.v_template)
        self.shapedirs = as_t(arrays.shapedirs[:, :, :N_SHAPE])
        self.exprdirs = as_t(arrays.shapedirs[:, :, N_SHAPE:N_SHAPE + N_EXPRESSION])
        # smplx's layout: (36, V*3)
        self.posedirs = as_t(arrays.posedirs.reshape(-1, N_POSE_BASIS).T)
        self.J_regressor = as_t(arrays.J_regressor)
        self.lbs_weights = as_t(arrays.weights)
        self.parents = torch.as_tensor(arrays.parents, dtype=torch.long, device=self.device)
        self.faces = arrays.faces
        self.faces_tensor = torch.as_tensor(arrays.faces, dtype=torch.long, device=self.device)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        landmark_embedding: str | os.PathLike | None = None,
        contour_embedding: str | os.PathLike | None = None,
    ) -> "FlameModel":
        """Load a FLAME 2023 pickle (``path``, a directory holding ``flame2023.pkl``, or the configured one)."""
        from .config import flame_model_path

        arrays = read_flame_arrays(flame_model_path(path))
        landmarks = read_landmark_embedding(landmark_embedding, contour_embedding) if landmark_embedding else None
        return cls(arrays, device=device, dtype=dtype, landmarks=landmarks)

    def __repr__(self) -> str:
        lmk = "none" if self.landmark_embedding is None else f"{len(self.landmark_embedding.face_idx)} static" + (
            " + 17 contour" if self.landmark_embedding.contour_face_idx is not None else "")
        return (f"FlameModel({self.arrays.source!r}, sha256={self.sha256[:12] or '-'}, device={self.device}, "
                f"dtype={self.dtype}, landmarks={lmk})")

    @property
    def file_name(self) -> str:
        """The model file's name (no directories), for provenance attrs."""
        return Path(self.arrays.source).name

    @property
    def sha256(self) -> str:
        """SHA-256 of the model file's bytes (empty for in-memory arrays)."""
        return self.arrays.sha256

    @property
    def has_landmarks(self) -> bool:
        return self.landmark_embedding is not None

    def _tensor(self, value: Any, shape_tail: tuple[int, ...], name: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        t = t.to(device=self.device, dtype=self.dtype)
        if tuple(t.shape[1:]) != shape_tail or t.ndim != len(shape_tail) + 1:
            raise ValueError(f"{name}: expected shape (T, {', '.join(map(str, shape_tail))}), found {tuple(t.shape)}")
        return t

    def iter_forward(
        self,
        shape: Any,
        expression: Any,
        neck: Any,
        jaw: Any,
        eyes: Any,
        rotation: Any | None = None,
        translation: Any | None = None,
        scale: Any = 1.0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        landmarks: bool = False,
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """Evaluate ``T`` timesteps ``chunk_size`` at a time, yielding ``(slice, vertices, landmarks)`` per chunk.

        Inputs (array-likes or tensors, radians / metres): ``shape (300,)`` or ``(1, 300)``, ``expression (T, 100)``,
        ``neck``/``jaw (T, 3)`` axis-angle, ``eyes (T, 6)`` (left, right axis-angle), ``rotation (T, 3)`` XYZ
        Euler, ``translation (T, 3)``, ``scale`` scalar or ``(1, 1)``. Without ``rotation`` the model-space
        vertices are returned. Vertices ``(n, 5023, 3)``, landmarks ``(n, L, 3)`` (or None), in ``dtype`` on
        ``device``; peak memory grows with ``chunk_size``, not ``T``.
        """
        from smplx.lbs import find_dynamic_lmk_idx_and_bcoords, lbs

        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
        if landmarks and self.landmark_embedding is None:
            raise FlameModelError(
                "landmarks need the FLAME landmark embedding files (flame_static_embedding.pkl, optionally "
                "flame_dynamic_embedding.npy): pass them to FlameModel.load(landmark_embedding=..., contour_embedding=...)"
            )
        shape_t = torch.as_tensor(np.asarray(shape) if not isinstance(shape, torch.Tensor) else shape)
        shape_t = shape_t.to(device=self.device, dtype=self.dtype).reshape(-1)
        if shape_t.shape != (N_SHAPE,):
            raise ValueError(f"shape: expected {N_SHAPE} coefficients, found {tuple(shape_t.shape)}")
        expression = self._tensor(expression, (N_EXPRESSION,), "expression")
        n = expression.shape[0]
        neck, jaw = self._tensor(neck, (3,), "neck"), self._tensor(jaw, (3,), "jaw")
        eyes = self._tensor(eyes, (6,), "eyes")
        for name, t in (("neck", neck), ("jaw", jaw), ("eyes", eyes)):
            if t.shape[0] != n:
                raise ValueError(f"{name}: {t.shape[0]} timesteps, expected {n} (as expression)")
        transform = None
        if rotation is not None:
            rotation = self._tensor(rotation, (3,), "rotation")
            translation = self._tensor(translation if translation is not None else np.zeros((n, 3)), (3,), "translation")
            scale_t = torch.as_tensor(np.asarray(scale) if not isinstance(scale, torch.Tensor) else scale)
            scale_t = scale_t.to(device=self.device, dtype=self.dtype).reshape(-1)
            if scale_t.numel() != 1:
                raise ValueError(f"scale: expected one value, found shape {tuple(scale_t.shape)}")
            if rotation.shape[0] != n or translation.shape[0] != n:
                raise ValueError(f"rotation/translation: {rotation.shape[0]}/{translation.shape[0]} timesteps, expected {n}")
            transform = (rotation, translation, scale_t[0])

        # The identity part of the blend shapes is the same for every timestep: fold it into the template
        # once (the same sum the official forward forms, in a different order), then blend only expressions.
        template = self.v_template + torch.einsum("l,mkl->mk", shape_t, self.shapedirs)
        emb = self.landmark_embedding
        with torch.inference_mode():
            for start in range(0, n, chunk_size):
                sl = slice(start, min(start + chunk_size, n))
                b = sl.stop - sl.start
                zeros = torch.zeros((b, 3), dtype=self.dtype, device=self.device)
                full_pose = torch.cat([zeros, neck[sl], jaw[sl], eyes[sl]], dim=1)
                verts, _ = lbs(
                    expression[sl], full_pose, template, self.exprdirs, self.posedirs,
                    self.J_regressor, self.parents, self.lbs_weights, pose2rot=True,
                )
                lmks = None
                if landmarks:
                    lmks = self._landmarks(verts, full_pose, emb, find_dynamic_lmk_idx_and_bcoords)
                if transform is not None:
                    rot, trans, s = transform
                    m = euler_xyz_to_matrix(rot[sl]) * s  # (b, 3, 3)
                    verts = torch.baddbmm(trans[sl].unsqueeze(1), verts, m.transpose(1, 2))
                    if lmks is not None:
                        lmks = torch.baddbmm(trans[sl].unsqueeze(1), lmks, m.transpose(1, 2))
                yield sl, verts, lmks

    def _landmarks(self, verts: torch.Tensor, full_pose: torch.Tensor, emb: LandmarkEmbedding, dynamic: Any) -> torch.Tensor:
        b = verts.shape[0]
        face_idx = torch.as_tensor(emb.face_idx, device=self.device).unsqueeze(0).expand(b, -1)
        bary = torch.as_tensor(emb.bary_coords, dtype=self.dtype, device=self.device).unsqueeze(0).expand(b, -1, -1)
        if emb.contour_face_idx is not None:
            # neck kinematic chain (neck -> root) as smplx/FLAME_PyTorch use it for the yaw lookup
            chain = torch.tensor([1, 0], dtype=torch.long, device=self.device)
            dyn_idx, dyn_bary = dynamic(
                verts, full_pose,
                torch.as_tensor(emb.contour_face_idx, device=self.device),
                torch.as_tensor(emb.contour_bary_coords, dtype=self.dtype, device=self.device),
                chain, pose2rot=True,
            )
            face_idx = torch.cat([dyn_idx, face_idx], 1)
            bary = torch.cat([dyn_bary, bary], 1)
        return vertices_to_landmarks(verts, self.faces_tensor, face_idx, bary)

    def forward(
        self,
        shape: Any,
        expression: Any,
        neck: Any,
        jaw: Any,
        eyes: Any,
        rotation: Any | None = None,
        translation: Any | None = None,
        scale: Any = 1.0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        landmarks: bool = False,
        out_device: str | torch.device = "cpu",
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """All timesteps: vertices ``(T, 5023, 3)`` (and landmarks ``(T, L, 3)`` if ``landmarks``) in ``dtype``,
        gathered on ``out_device`` while the math runs chunk by chunk on ``device``. Arguments as
        :meth:`iter_forward`."""
        n = len(expression)
        verts_out = torch.empty((n, N_VERTICES, 3), dtype=self.dtype, device=out_device)
        lmk_out = None
        for sl, verts, lmks in self.iter_forward(
            shape, expression, neck, jaw, eyes, rotation, translation, scale, chunk_size=chunk_size, landmarks=landmarks
        ):
            verts_out[sl] = verts
            if lmks is not None:
                if lmk_out is None:
                    lmk_out = torch.empty((n,) + tuple(lmks.shape[1:]), dtype=self.dtype, device=out_device)
                lmk_out[sl] = lmks
        if landmarks:
            return verts_out, lmk_out if lmk_out is not None else torch.empty((0, 0, 3), dtype=self.dtype)
        return verts_out

    __call__ = forward

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
import math
import operator
import os
import pickle
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.benchmark import N_EXPRESSION, N_FACES, N_JOINTS, N_POSE_BASIS, N_SHAPE, N_VERTICES
from ..core.errors import NersembleZarrError

#: Timesteps evaluated per batch by default: fastest on CPU (cache-sized), ~1 MB of intermediates per timestep (benchmarks/flame.py).
DEFAULT_CHUNK_SIZE = 64


class FlameModelError(NersembleZarrError):
    """A FLAME model or landmark-embedding file that cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------
#
# No byte of a model file reaches numpy's or scipy's own reconstruction code. Every numpy and scipy global a
# pickle names resolves to a stand-in that only records what the pickle asks for; after loading, the stand-ins
# become arrays through code that checks first: a dtype is rebuilt from a plain type code (numpy's
# dtype.__setstate__ accepts a float64 flagged as holding Python objects, or a field at offset 10**7, which
# crash the interpreter later), an array's bytes must equal shape × itemsize, and a scipy.sparse matrix stays
# raw (format, shape, data, indices, indptr) until parse_flame_arrays has checked its structure with numpy
# (scipy's conversions trust indices and indptr and read or write out of bounds: segfault, glibc abort, or
# silently wrong values).

_ARRAY_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
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
#: numpy type codes a pickle may use for a dtype: bool, integers, floats, complex, object (landmark .npy dicts).
_TYPE_CODE = re.compile(r"[biufcO][0-9]{1,2}")
_MAX_DEPTH = 64


class _Refused(Exception):
    """Content that is not a plain array: ``found`` and ``expected`` phrases for the one-line message."""

    def __init__(self, found: str, expected: str) -> None:
        super().__init__(f"{found}, expected {expected}")
        self.found, self.expected = found, expected


class _NdarrayRef:
    """``numpy.ndarray`` as a pickle names it: accepted only as the class argument of an array reconstruction."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_NdarrayRef":
        raise _Refused("a call of numpy.ndarray(...)", "arrays pickled as numpy pickles them")


class _DtypeStandIn:
    """``numpy.dtype(code, align, copy)`` plus its pickled state, turned into a dtype by :meth:`resolve`."""

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        args = getattr(self, "args", ())
        code = args[0] if args else None
        if isinstance(code, bytes):
            code = code.decode("latin1")
        if not isinstance(code, str) or not _TYPE_CODE.fullmatch(code):
            raise _Refused(f"a numpy dtype {code!r}", "a plain bool, integer, float, complex or object type")
        try:
            dtype = np.dtype(code)
        except TypeError:
            raise _Refused(f"a numpy dtype {code!r}", "a plain bool, integer, float, complex or object type") from None
        state = getattr(self, "state", None)
        if state is None:
            return dtype
        if not isinstance(state, tuple) or len(state) < 5:
            raise _Refused(f"numpy dtype {code} with an unreadable state", "(version, byte order, None, None, None, ...)")
        order, subarray, names, fields = state[1:5]
        if subarray is not None or names is not None or fields is not None:
            raise _Refused(f"numpy dtype {code} with fields or a sub-array", "a plain numeric dtype")
        if isinstance(order, bytes):
            order = order.decode("latin1")
        if order not in ("<", ">", "=", "|"):
            raise _Refused(f"numpy dtype {code} with byte order {order!r}", "one of '<', '>', '=', '|'")
        return dtype.newbyteorder(order) if order in ("<", ">") and dtype.itemsize > 1 else dtype


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > 32:
        raise _Refused(f"an array shape {shape!r:.80}", "a tuple of at most 32 sizes")
    try:
        out = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise _Refused(f"an array shape {shape!r:.80}", "a tuple of integers") from None
    if any(s < 0 for s in out):
        raise _Refused(f"an array shape {out}", "non-negative sizes")
    return out


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, str):  # python-2 pickles read with encoding="latin1"
        return raw.encode("latin1")
    try:
        return bytes(memoryview(raw))  # bytes, bytearray, PickleBuffer
    except TypeError:
        raise _Refused(f"array data of type {type(raw).__name__}", "bytes") from None


def _array_from_bytes(raw: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    n = math.prod(shape)
    data = _as_bytes(raw)
    if len(data) != n * dtype.itemsize:
        raise _Refused(
            f"an array of shape {shape} {dtype} with {len(data)} bytes of data", f"{n * dtype.itemsize} bytes"
        )
    if n == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer(data, dtype=dtype, count=n).reshape(shape, order=order).copy()


def _build_array(state: Any) -> np.ndarray:
    """An ndarray from numpy's pickled state ``([version,] shape, dtype, is_fortran, rawdata)``, sizes checked."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _Refused("an array with an unreadable state", "(version, shape, dtype, is_fortran, data)")
    shape, dtype, fortran, raw = state[-4:]
    if not isinstance(dtype, _DtypeStandIn):
        raise _Refused(f"an array whose dtype is a {type(dtype).__name__}", "a numpy dtype")
    if not isinstance(fortran, (bool, int)):
        raise _Refused(f"an array whose order flag is a {type(fortran).__name__}", "a bool")
    dtype, shape, order = dtype.resolve(), _shape_tuple(shape), "F" if fortran else "C"
    if not dtype.hasobject:
        return _array_from_bytes(raw, dtype, shape, order)
    n = math.prod(shape)
    if not isinstance(raw, list) or len(raw) != n:
        found = f"{len(raw)} items" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise _Refused(f"an object array of shape {shape} holding {found}", f"a list of {n} items")
    out = np.empty(n, dtype=object)
    for i, item in enumerate(raw):
        out[i] = item
    return out.reshape(shape, order=order)


class _ArrayStandIn:
    """numpy's ``_reconstruct(ndarray, shape, typecode)`` followed by ``__setstate__``; holds the checked array or
    why it was refused (reported with the array's key once loading has finished)."""

    def __init__(self, subtype: Any = None, *args: Any) -> None:
        if subtype is not _NdarrayRef:
            raise _Refused(f"an array of class {getattr(subtype, '__name__', type(subtype).__name__)}", "numpy.ndarray")

    def __setstate__(self, state: Any) -> None:
        try:
            self.array: np.ndarray | None = _build_array(state)
        except _Refused as e:
            self.array, self.refused = None, e


def _scalar(dtype: Any, *args: Any) -> Any:
    """numpy's pickled scalar ``scalar(dtype, bytes)``, size checked."""
    if not isinstance(dtype, _DtypeStandIn):
        raise _Refused(f"a numpy scalar whose dtype is a {type(dtype).__name__}", "a numpy dtype")
    dtype = dtype.resolve()
    value = args[0] if args else None
    if dtype.hasobject:
        return value
    return _array_from_bytes(value, dtype, (), "C")[()]


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """numpy's protocol-5 array ``_frombuffer(buffer, dtype, shape, order)``, size checked."""
    if not isinstance(dtype, _DtypeStandIn):
        raise _Refused(f"an array whose dtype is a {type(dtype).__name__}", "a numpy dtype")
    dtype = dtype.resolve()
    if dtype.hasobject or order not in ("C", "F"):
        raise _Refused(f"a buffer array of dtype {dtype}, order {order!r}", "a numeric dtype, order 'C' or 'F'")
    return _array_from_bytes(buf, dtype, _shape_tuple(shape), order)


class _SparseStandIn:
    """A pickled scipy.sparse matrix kept as its raw state (``_shape``, ``data``, ``indices``/``indptr`` or
    ``coords``/``row``/``col``); :func:`parse_flame_arrays` checks it and densifies it with numpy."""

    sparse_class = "scipy.sparse"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_SparseStandIn":
        if args or kwargs:
            raise _Refused(f"a call of {cls.sparse_class}(...) with arguments", "a matrix pickled as scipy pickles it")
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        self.state = state


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
    """Resolves numpy, scipy.sparse and chumpy names to stand-ins; refuses every other global by name."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self._stand_ins: dict[str, type] = {}

    def _stand_in(self, qualified: str, base: type, attr: str) -> type:
        if qualified not in self._stand_ins:
            self._stand_ins[qualified] = type(qualified.rpartition(".")[2], (base,), {attr: qualified})
        return self._stand_ins[qualified]

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayRef
        if (module, name) == ("numpy", "dtype"):
            return _DtypeStandIn
        if (module, name) in _ARRAY_RECONSTRUCT:
            return _ArrayStandIn
        if (module, name) in _SCALAR:
            return _scalar
        if (module, name) in _FROMBUFFER:
            return _frombuffer
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            return self._stand_in(f"scipy.sparse.{name}", _SparseStandIn, "sparse_class")
        if (module, name) in _BUILTIN_GLOBALS:
            return super().find_class(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(f"{module}.{name}", _ChumpyStandIn, "chumpy_class")
        raise FlameModelError(
            f"{self.source}: refusing to load the pickle: it references {module}.{name}, which is not a numpy, "
            "scipy.sparse or chumpy array (a model file must hold arrays only; nothing from it was executed)"
        )


_IN_PROGRESS = object()


def _resolve(value: Any, source: str, key: str, memo: dict[int, Any], depth: int = 0) -> Any:
    """Stand-ins → checked numpy arrays/dtypes (chumpy objects → their ``x``; sparse stand-ins keep their raw,
    resolved state); containers rebuilt. Shared objects are resolved once; a cycle is refused."""
    if not isinstance(value, (dict, list, tuple, _ArrayStandIn, _DtypeStandIn, _ChumpyStandIn, _SparseStandIn)):
        return value
    ident = id(value)
    if ident in memo:
        if memo[ident] is _IN_PROGRESS:
            raise _bad(source, key, "contains itself (a cyclic pickle)", "arrays")
        return memo[ident]
    if depth > _MAX_DEPTH:
        raise _bad(source, key, f"is nested more than {_MAX_DEPTH} levels deep", "arrays")
    memo[ident] = _IN_PROGRESS
    if isinstance(value, _ArrayStandIn):
        result = getattr(value, "array", None)
        if result is None:
            refused = getattr(value, "refused", _Refused("an array without data", "an array with data"))
            raise _bad(source, key, f"is {refused.found}", refused.expected)
        if result.dtype.hasobject:  # its items were unpickled too (np.save of a dict): resolve them
            items = np.empty(result.shape, dtype=object)
            for index in np.ndindex(result.shape):
                items[index] = _resolve(result[index], source, key, memo, depth + 1)
            result = items
    elif isinstance(value, _DtypeStandIn):
        try:
            result = value.resolve()
        except _Refused as e:
            raise _bad(source, key, f"is {e.found}", e.expected) from None
    elif isinstance(value, _ChumpyStandIn):
        state = getattr(value, "state", None)
        x = state.get("x") if isinstance(state, dict) else None
        if x is None:
            raise FlameModelError(
                f"{source}: '{key}' is a {value.chumpy_class} object without a stored array ('x'); only plain "
                "chumpy arrays (chumpy.ch.Ch) can be read without chumpy"
            )
        result = _resolve(x, source, key, memo, depth + 1)
        if not isinstance(result, (np.ndarray, _SparseStandIn)):
            try:
                result = np.asarray(result)
            except Exception as e:
                raise _bad(source, key, f"is a chumpy array whose value cannot be read as an array ({e})", "an array") from None
    elif isinstance(value, _SparseStandIn):
        state = getattr(value, "state", None)
        value.state = _resolve(state, source, key, memo, depth + 1)
        result = value
    elif isinstance(value, dict):
        result = {k: _resolve(v, source, f"{key}.{k}" if key else str(k), memo, depth + 1) for k, v in value.items()}
    else:
        result = type(value)(_resolve(v, source, key, memo, depth + 1) for v in value)
    memo[ident] = result
    return result


def safe_load_pickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (python-2 protocol-2 pickles included, ``encoding="latin1"``) allowing only arrays.

    numpy arrays/scalars/dtypes load as numpy objects rebuilt from checked type codes and sizes (never through
    numpy's own unpickling); chumpy objects load as their numpy value; a scipy.sparse csc/csr/coo matrix loads
    as a raw stand-in (its pickled state, unchecked) that :func:`parse_flame_arrays` validates and densifies,
    so no scipy code ever runs on a file's indices. Anything else raises :class:`FlameModelError` naming the
    class, before it is called. ``source`` names the file in error messages.
    """
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    except FlameModelError:
        raise
    except _Refused as e:
        raise FlameModelError(f"{source}: refusing to load the pickle: it holds {e} (a model file holds plain arrays)") from None
    except Exception as e:  # truncated or corrupt streams raise anything from EOFError to struct.error
        raise FlameModelError(
            f"{source}: not a readable pickle ({len(data)} bytes; truncated or corrupt: {type(e).__name__}: {e})"
        ) from None
    return _resolve(obj, source, "", {})


# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlameModelArrays:
    """The FLAME 2023 arrays as plain, C-contiguous numpy (float64 unless noted), checked on load.

    ``v_template (5023, 3)`` metres, ``faces (9976, 3) int64`` (vertex indices 0..5022), ``shapedirs (5023, 3,
    400)`` (300 shape then 100 expression directions), ``posedirs (5023, 3, 36)``, ``J_regressor (5, 5023)``
    dense, ``weights (5023, 5)``, ``parents (5,) int64`` (root's parent -1), plus where it came from. Every
    float array is finite.
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


_DAMAGED = "the file is damaged or not a FLAME 2023 model (use the pickle from flame.is.tue.mpg.de)"


def _bad(source: str, key: str, found: str, expected: str) -> FlameModelError:
    """The one-line refusal: file, array, what was found, what a FLAME 2023 model holds."""
    return FlameModelError(f"{source}: '{key}' {found}, expected {expected}; {_DAMAGED}")


def _shape_text(expected: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("any" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"


def _check_shape(source: str, name: str, array: np.ndarray, expected: tuple[int | None, ...]) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        raise _bad(source, name, f"has shape {tuple(array.shape)}", _shape_text(expected))


def _kind_text(kinds: str) -> str:
    return "an integer array" if kinds == "iu" else "a numeric (float or integer) array"


def _check_finite(source: str, key: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _bad(source, key, f"holds {int(bad.sum())} non-finite value(s) (first {array[where]} at index {where})",
                       "finite numbers")


def _raw_part(source: str, key: str, state: Mapping[str, Any], part: str, kinds: str) -> np.ndarray:
    """One array of a sparse matrix's raw state: a 1-D numpy array of the given dtype kinds."""
    value = state.get(part)
    if not isinstance(value, np.ndarray):
        raise _bad(source, key, f"has '{part}' of type {type(value).__name__}", "a 1-D numpy array")
    if value.dtype.kind not in kinds or value.ndim != 1:
        raise _bad(source, key, f"has '{part}' of dtype {value.dtype} and shape {value.shape}",
                   f"a 1-D {'integer' if kinds == 'iu' else 'numeric'} array")
    return value


def _sparse_to_dense(source: str, key: str, value: Any, expected: tuple[int, int]) -> np.ndarray:
    """A csc/csr/coo matrix's raw state, its structure checked with numpy, densified to float64 C-order.

    Checks before any index is used: shape equals ``expected``; data/indices/indptr (or coords) are 1-D numeric
    resp. integer arrays; ``indptr`` has one entry per column (csc) or row (csr) plus one, starts at 0, never
    decreases and ends at nnz = len(indices) = len(data); every index lies within the matrix; data is finite.
    Duplicate entries are summed (as scipy does).
    """
    if isinstance(value, _SparseStandIn):
        cls, state = value.sparse_class.rpartition(".")[2], getattr(value, "state", None)
    else:  # a real scipy object (an in-memory dict): read its raw attributes, call none of its methods
        cls, state = type(value).__name__, getattr(value, "__dict__", None)
    fmt = cls[:3]
    label = f"(a scipy.sparse {cls})"
    if fmt not in ("csc", "csr", "coo"):
        raise _bad(source, key, f"is a scipy.sparse {cls}", "a dense array or a csc/csr/coo matrix")
    if not isinstance(state, Mapping):
        raise _bad(source, key, f"{label} has no readable state ({type(state).__name__})", "a dict of arrays")
    raw_shape = state.get("_shape", state.get("shape"))
    try:
        shape = _shape_tuple(raw_shape)
    except _Refused:
        raise _bad(source, key, f"{label} has shape {raw_shape!r:.80}", _shape_text(expected)) from None
    if shape != expected:
        raise _bad(source, key, f"has shape {shape}", _shape_text(expected))
    m, n = shape
    data = _raw_part(source, key, state, "data", "iuf")
    if fmt in ("csc", "csr"):
        indices = _raw_part(source, key, state, "indices", "iu")
        indptr = _raw_part(source, key, state, "indptr", "iu")
        major, minor = (n, m) if fmt == "csc" else (m, n)
        major_name, minor_name = ("column", "row") if fmt == "csc" else ("row", "column")
        nnz = len(indices)
        if len(indptr) != major + 1:
            raise _bad(source, key, f"{label} has 'indptr' of length {len(indptr)}",
                       f"{major + 1} (one more than its {major} {major_name}s)")
        if len(data) != nnz:
            raise _bad(source, key, f"{label} has {len(data)} values in 'data' and {nnz} in 'indices'", "equal lengths")
        if indptr[0] != 0:
            raise _bad(source, key, f"{label} has 'indptr' starting at {indptr[0]}", "0")
        if indptr[-1] != nnz:
            raise _bad(source, key, f"{label} has 'indptr' ending at {indptr[-1]}",
                       f"the number of stored values, {nnz}")
        if indptr.max() > nnz:  # compared in the stored dtype: values beyond int64 cannot wrap around
            i = int(np.argmax(indptr))
            raise _bad(source, key, f"{label} has 'indptr'[{i}] = {indptr[i]}, beyond the {nnz} stored values",
                       f"offsets within 0..{nnz}")
        counts = np.diff(indptr.astype(np.int64))
        if (counts < 0).any():
            i = int(np.argmax(counts < 0))
            raise _bad(source, key, f"{label} has 'indptr' decreasing at position {i} ({indptr[i]} -> {indptr[i + 1]})",
                       "non-decreasing offsets")
        if nnz and (indices.min() < 0 or indices.max() >= minor):
            i = int(np.argmax((indices < 0) | (indices >= minor)))
            raise _bad(source, key, f"{label} has {minor_name} index {indices[i]} (stored value {i})",
                       f"{minor_name} indices in 0..{minor - 1}")
        major_index = np.repeat(np.arange(major, dtype=np.int64), counts)
        minor_index = indices.astype(np.int64)
        rows, cols = (minor_index, major_index) if fmt == "csc" else (major_index, minor_index)
    else:
        coords = state.get("coords")
        if coords is None and "row" in state and "col" in state:  # scipy < 1.13
            coords = (state["row"], state["col"])
        if not isinstance(coords, (tuple, list)) or len(coords) != 2:
            raise _bad(source, key, f"{label} has coordinates {type(coords).__name__}", "(row, col) arrays")
        pair = {"row": coords[0], "col": coords[1]}
        rows, cols = (_raw_part(source, key, pair, part, "iu") for part in ("row", "col"))
        for part, index, size in (("row", rows, m), ("col", cols, n)):
            if len(index) != len(data):
                raise _bad(source, key, f"{label} has {len(data)} values in 'data' and {len(index)} in '{part}'",
                           "equal lengths")
            if len(index) and (index.min() < 0 or index.max() >= size):
                i = int(np.argmax((index < 0) | (index >= size)))
                raise _bad(source, key, f"{label} has {part} index {index[i]} (stored value {i})",
                           f"{part} indices in 0..{size - 1}")
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    _check_finite(source, key, data)
    dense = np.zeros(shape, dtype=np.float64)
    np.add.at(dense, (rows, cols), data.astype(np.float64))
    return dense


def _is_sparse(value: Any) -> bool:
    return isinstance(value, _SparseStandIn) or type(value).__module__.startswith("scipy.sparse")


def _model_array(
    source: str, key: str, value: Any, shapes: tuple[tuple[int | None, ...], ...], kinds: str, sparse_ok: bool = False
) -> np.ndarray:
    """``value`` as a checked numpy array: one of ``shapes``, dtype kind in ``kinds``, finite if float."""
    if _is_sparse(value):
        if not sparse_ok:
            raise _bad(source, key, f"is a scipy.sparse {type(value).__name__}", "a dense numpy array")
        return _sparse_to_dense(source, key, value, shapes[0])  # type: ignore[arg-type]
    if isinstance(value, (list, tuple)):  # an in-memory dict may hold nested lists
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise _bad(source, key, f"is a list that is not a rectangular array ({e})", _kind_text(kinds)) from None
    if not isinstance(value, np.ndarray):
        raise _bad(source, key, f"is a {type(value).__name__}", f"{_kind_text(kinds)} {_shape_text(shapes[0])}")
    array = np.asarray(value)
    if array.dtype.kind not in kinds or array.dtype.names is not None:
        raise _bad(source, key, f"has dtype {array.dtype}", _kind_text(kinds))
    if not any(array.ndim == len(s) and all(e is None or e == d for e, d in zip(s, array.shape)) for s in shapes):
        raise _bad(source, key, f"has shape {tuple(array.shape)}", " or ".join(_shape_text(s) for s in shapes))
    _check_finite(source, key, array)
    return array


def parse_flame_arrays(raw: Mapping[str, Any], source: str = "<memory>", sha256: str = "") -> FlameModelArrays:
    """Check a loaded model dict (keys as in the pickle) and return its arrays, C-contiguous.

    Every array is checked before any of its values is used: dtype kind (numeric; integer for ``f`` and
    ``kintree_table``; never object), shape against the FLAME 2023 layout, finite floats, face indices within
    the vertices, a kinematic tree, a J_regressor without empty rows, and a sparse J_regressor's structure (see
    :func:`_sparse_to_dense`). A refusal is a :class:`FlameModelError` naming ``source``, the key, what it
    found and what it expected.
    """
    if not isinstance(raw, Mapping):
        raise FlameModelError(f"{source}: expected a dict of FLAME arrays, found {type(raw).__name__}")
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in required if k not in raw]
    if missing:
        raise FlameModelError(f"{source}: missing key(s) {missing}; a FLAME model pickle holds {list(required)}")
    v, n_dirs = N_VERTICES, N_SHAPE + N_EXPRESSION
    number = "iuf"
    v_template = _model_array(source, "v_template", raw["v_template"], ((v, 3),), number)
    f = _model_array(source, "f", raw["f"], ((N_FACES, 3),), "iu")
    shapedirs = _model_array(source, "shapedirs", raw["shapedirs"], ((v, 3, None),), number)
    if shapedirs.shape[2] < n_dirs:
        raise _bad(source, "shapedirs", f"has {shapedirs.shape[2]} directions",
                   f"at least {n_dirs} ({N_SHAPE} shape + {N_EXPRESSION} expression directions)")
    posedirs = _model_array(source, "posedirs", raw["posedirs"], ((v, 3, N_POSE_BASIS), (v * 3, N_POSE_BASIS)), number)
    regressor = _model_array(source, "J_regressor", raw["J_regressor"], ((N_JOINTS, v),), number, sparse_ok=True)
    weights = _model_array(source, "weights", raw["weights"], ((v, N_JOINTS),), number)
    kintree = _model_array(source, "kintree_table", raw["kintree_table"], ((2, N_JOINTS),), "iu")
    if f.min() < 0 or f.max() >= v:  # compared in the stored dtype, before any cast
        raise _bad(source, "f", f"indexes vertices {f.min()}..{f.max()}", f"0..{v - 1}")
    empty = np.flatnonzero(~np.asarray(regressor != 0).any(axis=1))
    if empty.size:
        raise _bad(source, "J_regressor", f"has no weights for joint(s) {empty.tolist()}",
                   "every joint regressed from some vertices")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise _bad(source, "kintree_table", f"has parents {kintree[0].tolist()}",
                   "a kinematic tree (each joint's parent an earlier joint)")
    as_float = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    return FlameModelArrays(
        v_template=as_float(v_template),
        faces=np.ascontiguousarray(f, dtype=np.int64),
        shapedirs=as_float(shapedirs[:, :, :n_dirs]),
        posedirs=as_float(posedirs.reshape(v, 3, N_POSE_BASIS)),
        J_regressor=as_float(regressor),
        weights=as_float(weights),
        parents=parents,
        source=source,
        sha256=sha256,
    )


def read_flame_arrays(path: str | os.PathLike) -> FlameModelArrays:
    """Read and check a FLAME 2023 model pickle (chumpy-free, no code execution, no scipy on its indices);
    see :func:`safe_load_pickle` and :func:`parse_flame_arrays`."""
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
    face_idx, bary = _landmark_arrays(static, obj)
    _check_landmarks(static, face_idx, bary, ())
    contour_face_idx = contour_bary = None
    if contour is not None:
        contour = Path(contour)
        cobj = _load_mapping(contour)
        if not isinstance(cobj, Mapping) or "lmk_face_idx" not in cobj or "lmk_b_coords" not in cobj:
            raise FlameModelError(f"{contour}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords'")
        contour_face_idx, contour_bary = _landmark_arrays(contour, cobj)
        _check_landmarks(contour, contour_face_idx, contour_bary, (79,))
    return LandmarkEmbedding(face_idx, bary, contour_face_idx, contour_bary)


def _landmark_arrays(path: Path, obj: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``lmk_face_idx`` as int64 and ``lmk_b_coords`` as float64, dtype kinds and finiteness checked first."""
    face_idx = _model_array(str(path), "lmk_face_idx", obj["lmk_face_idx"], ((None,), (None, None)), "iu")
    bary = _model_array(str(path), "lmk_b_coords", obj["lmk_b_coords"], ((None, 3), (None, None, 3)), "iuf")
    if face_idx.size and (face_idx.min() < 0 or face_idx.max() >= N_FACES):  # before a cast can wrap
        raise _bad(str(path), "lmk_face_idx", f"indexes faces {face_idx.min()}..{face_idx.max()}", f"0..{N_FACES - 1}")
    return face_idx.astype(np.int64), bary.astype(np.float64)


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


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """A fresh contiguous copy of ``t`` in torch's own (64-byte aligned) memory."""
    return t.clone(memory_format=torch.contiguous_format)


_LMK_LOCK = threading.Lock()
_THREADS_LOCK = threading.Lock()
_threads_users = 0
_threads_previous = 1


@contextmanager
def _one_intra_op_thread(device: torch.device) -> Iterator[None]:
    """Run the block with one torch intra-op thread (CPU), restoring torch's count when the last block ends.

    torch's count is process-wide (MKL's too) but OpenMP's is per thread: each thread entering sets it for
    itself; overlapping blocks (chunks on several threads) share one saved value.
    """
    global _threads_users, _threads_previous
    if device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_previous = torch.get_num_threads()
        _threads_users += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0 and _threads_previous != 1:
                torch.set_num_threads(_threads_previous)


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
        # every buffer dense and C-contiguous (posedirs is a transposed view before the copy)
        as_t = lambda a: _aligned(torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self.device))  # noqa: E731
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
        from ..core.config import flame_model_path

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
        t = _aligned(t.to(device=self.device, dtype=self.dtype))
        if tuple(t.shape[1:]) != shape_tail or t.ndim != len(shape_tail) + 1:
            raise ValueError(f"{name}: expected shape (T, {', '.join(map(str, shape_tail))}), found {tuple(t.shape)}")
        return t

    def _inputs(
        self, shape: Any, expression: Any, neck: Any, jaw: Any, eyes: Any, rotation: Any, translation: Any, scale: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, int]:
        """Checked inputs as tensors of ``dtype`` on ``device``: ``(template (V, 3), per-timestep dict, transform, T)``."""
        shape_t = torch.as_tensor(np.asarray(shape) if not isinstance(shape, torch.Tensor) else shape)
        shape_t = _aligned(shape_t.to(device=self.device, dtype=self.dtype).reshape(-1))
        if shape_t.shape != (N_SHAPE,):
            raise ValueError(f"shape: expected {N_SHAPE} coefficients, found {tuple(shape_t.shape)}")
        expression = self._tensor(expression, (N_EXPRESSION,), "expression")
        n = expression.shape[0]
        neck, jaw = self._tensor(neck, (3,), "neck"), self._tensor(jaw, (3,), "jaw")
        eyes = self._tensor(eyes, (6,), "eyes")
        for name, t in (("neck", neck), ("jaw", jaw), ("eyes", eyes)):
            if t.shape[0] != n:
                raise ValueError(f"{name}: {t.shape[0]} timesteps, expected {n} (as expression)")
        per_step = {"expression": expression, "neck": neck, "jaw": jaw, "eyes": eyes}
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
        with _one_intra_op_thread(self.device):
            template = self.v_template + torch.einsum("l,mkl->mk", shape_t, self.shapedirs)
        return template, per_step, transform, n

    def _chunk(
        self, sl: slice, template: torch.Tensor, per_step: dict[str, torch.Tensor],
        transform: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, landmarks: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Vertices ``(b, 5023, 3)`` (and landmarks) of the timesteps ``sl``: one intra-op thread, inputs copied
        to fresh (64-byte aligned) tensors, so the bits depend on the chunk's values only, not on the thread
        count, on which thread runs it, or on where its rows sat in memory (BLAS kernels sum in an order that
        depends on the alignment of their operands: measured, up to 1 ULP)."""
        from smplx.lbs import find_dynamic_lmk_idx_and_bcoords, lbs

        with _one_intra_op_thread(self.device), torch.inference_mode():
            b = sl.stop - sl.start
            zeros = torch.zeros((b, 3), dtype=self.dtype, device=self.device)
            full_pose = torch.cat([zeros, per_step["neck"][sl], per_step["jaw"][sl], per_step["eyes"][sl]], dim=1)
            verts, _ = lbs(
                _aligned(per_step["expression"][sl]), full_pose, template, self.exprdirs, self.posedirs,
                self.J_regressor, self.parents, self.lbs_weights, pose2rot=True,
            )
            lmks = None
            if landmarks:
                lmks = self._landmarks(verts, full_pose, self.landmark_embedding, find_dynamic_lmk_idx_and_bcoords)
            if transform is not None:
                rot, trans, s = transform
                m = euler_xyz_to_matrix(_aligned(rot[sl])) * s  # (b, 3, 3)
                t = _aligned(trans[sl]).unsqueeze(1)
                verts = torch.baddbmm(t, verts, m.transpose(1, 2))
                if lmks is not None:
                    lmks = torch.baddbmm(t, lmks, m.transpose(1, 2))
        return verts, lmks

    def _check_chunking(self, chunk_size: int, landmarks: bool) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
        if landmarks and self.landmark_embedding is None:
            raise FlameModelError(
                "landmarks need the FLAME landmark embedding files (flame_static_embedding.pkl, optionally "
                "flame_dynamic_embedding.npy): pass them to FlameModel.load(landmark_embedding=..., contour_embedding=...)"
            )

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
        ``device``; peak memory grows with ``chunk_size``, not ``T``. Each chunk runs on the calling thread with
        one torch intra-op thread (see :meth:`forward`); torch's setting is restored between chunks.
        """
        self._check_chunking(chunk_size, landmarks)
        template, per_step, transform, n = self._inputs(shape, expression, neck, jaw, eyes, rotation, translation, scale)
        for start in range(0, n, chunk_size):
            sl = slice(start, min(start + chunk_size, n))
            verts, lmks = self._chunk(sl, template, per_step, transform, landmarks)
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
        threads: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """All timesteps: vertices ``(T, 5023, 3)`` (and landmarks ``(T, L, 3)`` if ``landmarks``) in ``dtype``,
        gathered on ``out_device`` while the math runs chunk by chunk on ``device``. Arguments as
        :meth:`iter_forward`.

        Thread policy (CPU; chosen by measurement, ``benchmarks/flame.py``): ``threads`` chunks run at once on
        Python threads, each with ONE torch intra-op thread (default ``threads``: ``torch.get_num_threads()``, so
        ``torch.set_num_threads`` and the job runner's thread budget still size it). Intra-op threads of small
        batch ops mostly synchronise: on a busy machine they ran FLAME 5–10× slower than one thread, while
        independent chunks do not wait for each other. The result is bit-identical for every ``threads`` and
        every process (each chunk is computed alone, from aligned copies of its inputs).
        """
        self._check_chunking(chunk_size, landmarks)
        template, per_step, transform, n = self._inputs(shape, expression, neck, jaw, eyes, rotation, translation, scale)
        verts_out = torch.empty((n, N_VERTICES, 3), dtype=self.dtype, device=out_device)
        lmk_out: list[torch.Tensor | None] = [None]
        slices = [slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]

        def run(sl: slice) -> None:
            verts, lmks = self._chunk(sl, template, per_step, transform, landmarks)
            verts_out[sl] = verts
            if lmks is not None:
                if lmk_out[0] is None:
                    with _LMK_LOCK:
                        if lmk_out[0] is None:
                            lmk_out[0] = torch.empty((n,) + tuple(lmks.shape[1:]), dtype=self.dtype, device=out_device)
                lmk_out[0][sl] = lmks

        n_threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        n_threads = min(n_threads, len(slices)) if self.device.type == "cpu" else 1
        if n_threads <= 1:
            for sl in slices:
                run(sl)
        else:
            from concurrent.futures import ThreadPoolExecutor

            # the caller holds the one-thread setting for the whole call, so torch's count is restored once at the end
            with _one_intra_op_thread(self.device), ThreadPoolExecutor(n_threads, thread_name_prefix="flame") as pool:
                for f in [pool.submit(run, sl) for sl in slices]:
                    f.result()
        if landmarks:
            return verts_out, lmk_out[0] if lmk_out[0] is not None else torch.empty((0, 0, 3), dtype=self.dtype)
        return verts_out

    __call__ = forward

"""Loading a FLAME model cannot corrupt memory (issue 10, point 4).

Every crafted model here is a pickle made only of classes the loader allows (numpy arrays and dtypes, scipy.sparse
matrices, chumpy stand-ins). Before the structure checks, several of them crashed the interpreter (segfault,
glibc abort) or loaded silently wrong values; so each is loaded in a child process, where a crash fails the test
instead of killing pytest. Each must be refused with one line naming the file and the array.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch

import scipy.sparse
import torch

from nersemble_zarr.flame.model import FlameModel, read_flame_arrays
from nersemble_zarr.testing.flame_model import synthetic_flame_arrays, write_synthetic_flame_model

#: Loads every ``*.pkl`` in argv[1] (sorted) and prints one JSON line per file, flushed, so that a crash on
#: one file still leaves the outcomes of the files before it.
_RUNNER = r"""
import json, sys
from pathlib import Path
from nersemble_zarr.core.errors import NersembleZarrError
from nersemble_zarr.flame.model import read_flame_arrays
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    print(json.dumps({"case": path.stem, "outcome": "started"}), flush=True)
    try:
        arrays = read_flame_arrays(path)
        row = {"outcome": "loaded", "J_regressor_sum": float(abs(arrays.J_regressor).sum())}
    except NersembleZarrError as e:
        row = {"outcome": "refused", "type": type(e).__name__, "message": str(e)}
    except BaseException as e:
        row = {"outcome": "other", "type": type(e).__name__, "message": str(e)[:500]}
    print(json.dumps({"case": path.stem, **row}), flush=True)
"""


def _base() -> dict:
    """The synthetic model with float16 shapedirs/posedirs (still a valid model): crafted files stay ~14 MB."""
    model = synthetic_flame_arrays(seed=0)
    return dict(model, shapedirs=model["shapedirs"].astype(np.float16), posedirs=model["posedirs"].astype(np.float16))


def _with(key: str, value: object) -> Callable[[dict], dict]:
    return lambda m: dict(m, **{key: value(m[key]) if callable(value) else value})


def _sparse(fmt: str = "csc", **attrs: Callable[[np.ndarray], object]) -> Callable[[dict], dict]:
    """J_regressor as a ``fmt`` matrix whose raw attributes are replaced (scipy checks nothing on assignment
    or pickling, as a crafted file would have it)."""

    def build(m: dict) -> dict:
        matrix = getattr(m["J_regressor"], f"to{fmt}")().copy()
        for name, change in attrs.items():
            setattr(matrix, name, change(getattr(matrix, name)))
        return dict(m, J_regressor=matrix)

    return build


def _replace(a: np.ndarray, index: int | slice, value: object) -> np.ndarray:
    a = np.array(a)
    a[index] = value
    return a


def _poke(index: tuple, value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: _replace(a.astype(np.float64), index, value)


def _coords(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[tuple], tuple]:
    return lambda coords: (change(coords[0]), coords[1])


class _Reduce:
    """Pickles as ``callable(*args)`` (+ ``state``): how a crafted file spells numpy objects by hand."""

    def __init__(self, *reduce: object) -> None:
        self.reduce = reduce

    def __reduce__(self) -> tuple:
        return self.reduce


def _crafted_array(dtype_code: str, dtype_state: tuple, shape: tuple, raw: object) -> _Reduce:
    """An ndarray pickled with a hand-made dtype state (numpy's own unpickling accepts all of these)."""
    import numpy._core.multiarray as multiarray

    dtype = _Reduce(np.dtype, (dtype_code, False, True), dtype_state)
    return _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


_F8_STATE = (3, "<", None, None, None, -1, -1, 0)
_NNZ = 1242  # stored values of the synthetic J_regressor (checked in test_the_crafted_base_is_the_synthetic_model)

#: name → (how to damage the synthetic model, the array the message must name, what the message must say)
CASES: dict[str, tuple[Callable[[dict], dict], str, str]] = {
    # --- sparse J_regressor structure (segfaults, glibc aborts or silent zeros before) ---
    "csc_row_index_too_large": (_sparse(indices=lambda a: _replace(a, 0, 5)), "J_regressor",
                                r"row index 5 .*expected row indices in 0\.\.4"),
    "csc_row_indices_far_out_of_range": (_sparse(indices=lambda a: np.full_like(a, 10**6)), "J_regressor",
                                         r"row index 1000000 .*expected row indices in 0\.\.4"),
    "csc_negative_row_index": (_sparse(indices=lambda a: _replace(a, 3, -1)), "J_regressor",
                               r"row index -1 .*expected row indices in 0\.\.4"),
    "csr_column_index_out_of_range": (_sparse("csr", indices=lambda a: _replace(a, 0, 5023)), "J_regressor",
                                      r"csr_matrix\) has column index 5023 .*expected column indices in 0\.\.5022"),
    "csr_negative_column_index": (_sparse("csr", indices=lambda a: _replace(a, 7, -100)), "J_regressor",
                                  r"column index -100 .*expected column indices in 0\.\.5022"),
    "coo_row_out_of_range": (_sparse("coo", coords=_coords(lambda r: _replace(r, 0, 7))), "J_regressor",
                             r"coo_matrix\) has row index 7 .*expected row indices in 0\.\.4"),
    "coo_negative_row": (_sparse("coo", coords=_coords(lambda r: _replace(r, 0, -2))), "J_regressor",
                         r"row index -2 .*expected row indices in 0\.\.4"),
    "indptr_not_monotonic": (_sparse(indptr=lambda p: _replace(p, 1, p[-1])), "J_regressor",
                             r"'indptr' decreasing at position 1 .*expected non-decreasing offsets"),
    "indptr_middle_beyond_data": (_sparse(indptr=lambda p: _replace(p, 1, 10**9)), "J_regressor",
                                  r"'indptr'\[1\] = 1000000000, beyond the 1242 stored values"),
    "indptr_too_short": (_sparse(indptr=lambda p: p[:-1]), "J_regressor",
                         r"'indptr' of length 5023, expected 5024 \(one more than its 5023 columns\)"),
    "indptr_too_long": (_sparse(indptr=lambda p: np.append(p, p[-1])), "J_regressor",
                        r"'indptr' of length 5025, expected 5024"),
    "indptr_end_beyond_data": (_sparse(indptr=lambda p: _replace(p, -1, 10**8)), "J_regressor",
                               r"'indptr' ending at 100000000, expected the number of stored values, 1242"),
    "indptr_not_starting_at_zero": (_sparse(indptr=lambda p: _replace(p, 0, 1)), "J_regressor",
                                    r"'indptr' starting at 1, expected 0"),
    "indptr_all_zero": (_sparse(indptr=lambda p: np.zeros_like(p)), "J_regressor",
                        r"'indptr' ending at 0, expected the number of stored values, 1242"),
    "data_shorter_than_indices": (_sparse(data=lambda d: d[:-1]), "J_regressor",
                                  r"has 1241 values in 'data' and 1242 in 'indices', expected equal lengths"),
    "data_longer_than_indices": (_sparse(data=lambda d: np.append(d, 1.0)), "J_regressor",
                                 r"has 1243 values in 'data' and 1242 in 'indices'"),
    "indices_float_dtype": (_sparse(indices=lambda a: a.astype(np.float64)), "J_regressor",
                            r"has 'indices' of dtype float64 .*expected a 1-D integer array"),
    "indices_object_dtype": (_sparse(indices=lambda a: a.astype(object)), "J_regressor",
                             r"has 'indices' of dtype object"),
    "indptr_2d": (_sparse(indptr=lambda p: p.reshape(1, -1)), "J_regressor", r"'indptr' of dtype int32 and shape \(1, 5024\)"),
    "sparse_wrong_shape": (_sparse(_shape=lambda s: (5, 5000)), "J_regressor",
                           r"has shape \(5, 5000\), expected \(5, 5023\)"),
    "sparse_shape_not_a_tuple": (_sparse(_shape=lambda s: "5x5023"), "J_regressor", r"has shape '5x5023'"),
    "sparse_data_nan": (_sparse(data=_poke((0,), np.nan)), "J_regressor", r"non-finite value.*expected finite numbers"),
    "sparse_data_inf": (_sparse(data=_poke((5,), np.inf)), "J_regressor", r"non-finite value.*expected finite numbers"),
    "sparse_bsr": (_with("J_regressor", lambda j: j.tobsr()), "J_regressor", r"refusing to load the pickle.*bsr_matrix"),
    "regressor_joint_without_weights": (_with("J_regressor", lambda j: _replace(j.toarray(), 2, 0.0)), "J_regressor",
                                        r"has no weights for joint\(s\) \[2\]"),
    # --- wrong shapes, one per array ---
    "v_template_shape": (_with("v_template", lambda a: a[:, :2]), "v_template", r"has shape \(5023, 2\), expected \(5023, 3\)"),
    "f_shape": (_with("f", lambda a: a[:-1]), "f", r"has shape \(9975, 3\), expected \(9976, 3\)"),
    "shapedirs_shape": (_with("shapedirs", lambda a: a[..., 0]), "shapedirs", r"has shape \(5023, 3\), expected \(5023, 3, any\)"),
    "shapedirs_too_few_directions": (_with("shapedirs", lambda a: a[..., :399]), "shapedirs", r"has 399 directions, expected at least 400"),
    "posedirs_shape": (_with("posedirs", lambda a: a[..., :35]), "posedirs", r"has shape \(5023, 3, 35\), expected \(5023, 3, 36\) or \(15069, 36\)"),
    "J_regressor_dense_shape": (_with("J_regressor", lambda j: j.toarray()[:, :-1]), "J_regressor", r"has shape \(5, 5022\), expected \(5, 5023\)"),
    "weights_shape": (_with("weights", lambda a: a.T), "weights", r"has shape \(5, 5023\), expected \(5023, 5\)"),
    "kintree_table_shape": (_with("kintree_table", lambda a: a[:, :4]), "kintree_table", r"has shape \(2, 4\), expected \(2, 5\)"),
    "kintree_table_not_a_tree": (_with("kintree_table", lambda a: _replace(a, (0, 2), 3)), "kintree_table",
                                 r"has parents .*expected a kinematic tree"),
    # --- NaN / inf in each float array ---
    "v_template_nan": (_with("v_template", _poke((10, 1), np.nan)), "v_template", r"non-finite value.*at index \(10, 1\)\), expected finite numbers"),
    "protocol5_weights_nan": (_with("weights", _poke((3, 3), np.nan)), "weights", r"non-finite value.*\(3, 3\)"),
    "shapedirs_inf": (_with("shapedirs", _poke((1, 2, 3), np.inf)), "shapedirs", r"non-finite value.*\(1, 2, 3\)"),
    "posedirs_minus_inf": (_with("posedirs", _poke((0, 0, 35), -np.inf)), "posedirs", r"non-finite value"),
    "weights_nan": (_with("weights", _poke((5022, 4), np.nan)), "weights", r"non-finite value.*\(5022, 4\)"),
    "J_regressor_dense_nan": (_with("J_regressor", lambda j: _replace(j.toarray(), (0, 0), np.nan)), "J_regressor", r"non-finite value"),
    # --- faces ---
    "faces_beyond_vertices": (_with("f", lambda a: _replace(a, (100, 2), 5023)), "f", r"indexes vertices 0\.\.5023, expected 0\.\.5022"),
    "faces_negative": (_with("f", lambda a: _replace(a.astype(np.int64), (0, 0), -1)), "f", r"indexes vertices -1\.\.5022, expected 0\.\.5022"),
    "faces_huge_unsigned": (_with("f", lambda a: _replace(a.astype(np.uint64), 0, 2**64 - 1)), "f", r"indexes vertices 0\.\.18446744073709551615"),
    "faces_float": (_with("f", lambda a: a.astype(np.float64)), "f", r"has dtype float64, expected an integer array"),
    # --- object / non-numeric dtypes ---
    "v_template_object": (_with("v_template", lambda a: a.astype(object)), "v_template", r"has dtype object, expected a numeric"),
    "weights_object": (_with("weights", lambda a: a.astype(object)), "weights", r"has dtype object"),
    "f_object": (_with("f", lambda a: a.astype(object)), "f", r"has dtype object, expected an integer array"),
    "kintree_table_object": (_with("kintree_table", lambda a: a.astype(object)), "kintree_table", r"has dtype object"),
    "shapedirs_complex": (_with("shapedirs", lambda a: a.astype(np.complex128)), "shapedirs", r"has dtype complex128"),
    "posedirs_strings": (_with("posedirs", lambda a: a.astype("U3")), "posedirs", r"is a numpy dtype 'U3', expected a plain bool, integer, float, complex or object type"),
    "v_template_not_an_array": (_with("v_template", {"x": 1}), "v_template", r"is a dict"),
    # --- hand-made numpy dtypes and arrays (numpy's own unpickling accepts them; later use crashes) ---
    "dtype_flagged_as_objects": (_with("v_template", _crafted_array("f8", (3, "<", None, None, None, -1, -1, 1 | 8 | 16), (2,), b"A" * 16)),
                                 "v_template", r"has shape \(2,\), expected \(5023, 3\)"),
    "dtype_field_offset_out_of_range": (_with("v_template", _crafted_array("V8", (3, "|", None, ("a",), {"a": (np.dtype("f8"), 10**7)}, 8, 1, 0), (2,), bytes(16))),
                                        "v_template", r"numpy dtype 'V8'"),
    "dtype_float_with_fields": (_with("weights", _crafted_array("f8", (3, "<", None, ("a",), {"a": (np.dtype("f8"), 10**7)}, 8, 1, 0), (2,), bytes(16))),
                                "weights", r"numpy dtype f8 with fields or a sub-array"),
    "dtype_subarray": (_with("posedirs", _crafted_array("f8", (3, "<", (np.dtype("f8"), (10**6,)), None, None, -1, -1, 0), (2,), bytes(16))),
                       "posedirs", r"numpy dtype f8 with fields or a sub-array"),
    "array_bytes_shorter_than_shape": (_with("v_template", _crafted_array("f8", _F8_STATE, (5023, 3), bytes(16))),
                                       "v_template", r"shape \(5023, 3\) float64 with 16 bytes of data, expected 120552 bytes"),
    "array_negative_shape": (_with("weights", _crafted_array("f8", _F8_STATE, (-1, 5), bytes(16))), "weights", r"shape \(-1, 5\), expected non-negative sizes"),
    "sparse_indices_crafted_short": (_sparse(indices=lambda a: _crafted_array("i4", (3, "<", None, None, None, -1, -1, 0), (_NNZ,), bytes(8))),
                                     "J_regressor.indices", r"with 8 bytes of data, expected 4968 bytes"),
}

#: Cases whose refusal comes from the unpickler itself (no key is known yet); the message names the file and
#: what the pickle holds, and is a refusal before anything was built.
def _protocol(name: str) -> int:
    """Protocol 2 (how FLAME files are written) for the crashes the issue reports and the CLI test's cases,
    protocol 5 (numpy's out-of-band-capable ``_frombuffer`` form) for one, else 4 (raw bytes: smaller files)."""
    if name in _CLI_CASES or name in ("csc_row_index_too_large", "indptr_not_monotonic", "coo_row_out_of_range"):
        return 2
    return 5 if name.startswith("protocol5") else 4


_CLI_CASES = ("csc_row_indices_far_out_of_range", "indptr_end_beyond_data", "v_template_nan")

_AT_UNPICKLING = {"sparse_bsr"}


@pytest.fixture(scope="module")
def crafted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("crafted_models")
    base = _base()
    for name, (damage, _, _) in CASES.items():
        (d / f"{name}.pkl").write_bytes(pickle.dumps(damage(dict(base)), protocol=_protocol(name)))
    return d


@pytest.fixture(scope="module")
def outcomes(crafted_dir: Path) -> dict:
    """Every crafted file loaded once in a child process: case → its JSON outcome (or why there is none)."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(crafted_dir)], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).parent.parent)
    rows: dict[str, dict] = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if row["outcome"] != "started" or row["case"] not in rows:
            rows[row["case"]] = row
    for row in rows.values():
        if row["outcome"] == "started":  # the child died while loading this file
            row.update(outcome="crashed", returncode=proc.returncode, stderr=proc.stderr[-2000:])
    rows["__returncode__"] = {"returncode": proc.returncode, "stderr": proc.stderr[-2000:]}
    return rows


def test_the_crafted_base_is_the_synthetic_model() -> None:
    j = _base()["J_regressor"]
    assert isinstance(j, scipy.sparse.csc_matrix) and j.nnz == _NNZ and j.shape == (5, 5023)


def test_the_loader_child_process_survives_every_crafted_file(outcomes: dict) -> None:
    status = outcomes["__returncode__"]
    assert status["returncode"] == 0, f"child exited {status['returncode']}: {status['stderr']}"
    assert set(outcomes) - {"__returncode__"} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_model_is_refused_naming_file_and_array(name: str, outcomes: dict, crafted_dir: Path) -> None:
    _, key, expected = CASES[name]
    row = outcomes.get(name, {"outcome": "missing (the child process died before reaching it)", **outcomes["__returncode__"]})
    assert row["outcome"] == "refused", row
    message = row["message"]
    assert row["type"] == "FlameModelError" and "\n" not in message
    assert message.startswith(f"{crafted_dir / name}.pkl: ")
    if name not in _AT_UNPICKLING:
        assert f"'{key}'" in message and "expected" in message, message
    assert re.search(expected, message), (expected, message)


def test_valid_and_chumpy_models_still_load_with_contiguous_dense_arrays(flame_model_path: Path, tmp_path: Path) -> None:
    raw = synthetic_flame_arrays(seed=0)
    for path in (flame_model_path, write_synthetic_flame_model(tmp_path, chumpy=True)):
        arrays = read_flame_arrays(path)
        np.testing.assert_array_equal(arrays.J_regressor, raw["J_regressor"].toarray())
        np.testing.assert_array_equal(arrays.posedirs, raw["posedirs"])
        for name in ("v_template", "faces", "shapedirs", "posedirs", "J_regressor", "weights"):
            a = getattr(arrays, name)
            assert type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable, name
    model = FlameModel(arrays)
    assert model.posedirs.shape == (36, 5023 * 3) and model.posedirs.is_contiguous()
    assert model.J_regressor.is_contiguous() and model.J_regressor.layout == torch.strided


@pytest.mark.parametrize("fmt", ["csr", "coo"])
def test_other_sparse_formats_and_fortran_or_big_endian_arrays_load_equal(tmp_path: Path, fmt: str) -> None:
    raw = _base()
    model = dict(raw, J_regressor=getattr(raw["J_regressor"], f"to{fmt}")(),
                 shapedirs=np.asfortranarray(raw["shapedirs"]), weights=raw["weights"].astype(">f8"),
                 f=raw["f"].astype(np.int64))
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=4))
    arrays = read_flame_arrays(path)
    np.testing.assert_array_equal(arrays.J_regressor, raw["J_regressor"].toarray())
    np.testing.assert_array_equal(arrays.shapedirs, raw["shapedirs"])
    np.testing.assert_array_equal(arrays.weights, raw["weights"])
    assert arrays.shapedirs.flags.c_contiguous and arrays.weights.dtype == np.float64


def test_duplicate_sparse_entries_are_summed_as_scipy_does(tmp_path: Path) -> None:
    raw = _base()
    coo = raw["J_regressor"].tocoo()
    half = coo.data / 2
    doubled = scipy.sparse.coo_matrix((np.concatenate([half, half]), (np.tile(coo.row, 2), np.tile(coo.col, 2))), shape=coo.shape)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(dict(raw, J_regressor=doubled), protocol=2))
    np.testing.assert_allclose(read_flame_arrays(path).J_regressor, raw["J_regressor"].toarray(), rtol=0, atol=1e-15)


def test_a_cyclic_pickle_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    loop: list = []
    loop.append(loop)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(dict(_base(), bs_style=loop), protocol=2))
    from nersemble_zarr.flame.model import FlameModelError

    with pytest.raises(FlameModelError, match=r"model\.pkl: 'bs_style' contains itself"):
        read_flame_arrays(path)


def _snapshot(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(store)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("name", _CLI_CASES)
def test_flame_command_with_a_crafted_model_prints_one_line_and_writes_nothing(
    name: str, crafted_dir: Path, converted_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(converted_store, store)
    before = _snapshot(store)
    bad = crafted_dir / f"{name}.pkl"
    cli = "import sys; from nersemble_zarr.cli.main import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cli, "flame", str(store), "--flame-model", str(bad), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: '{CASES[name][1]}' "), proc.stderr
    assert proc.stdout.strip() == ""
    assert _snapshot(store) == before  # no flame group, no faces, no lock file: nothing written or lost
    assert not [p for p in store.rglob("flame_v*")]

"""Downscale resumes only to a correct level, and a selection that matches nothing is an error.

A level is prepared (group, images, alpha, intrinsics, then its attrs) in full or redone; its completion
markers are written last, after verifying it. The tests fail a run at every store write it makes (and at
every named step of a level's preparation), rerun, and demand a level equal to a clean run's, file for
file; a level damaged while marked complete (as the old resume bug left it) is redone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore, WrapperStore

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.pipelines import downscale
from nersemble_zarr import open_sequence
from nersemble_zarr.core import schema
from nersemble_zarr.pipelines.downscale import downscale_store
from nersemble_zarr.core.errors import NersembleZarrError, SelectionError
from nersemble_zarr.read.store import list_participants, list_sequences

import damage

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


# ---------------------------------------------------------------------------------------------
# Failure injection at the store: the k-th write (set or delete) raises instead of happening
# ---------------------------------------------------------------------------------------------


class InjectedFailure(Exception):
    """Stands for a kill at one store write."""


class _Writes:
    """Shared by a FailingStore and the copies zarr makes of it: the writes seen, and which one fails."""

    def __init__(self, fail_at: int | None, after: bool) -> None:
        self.fail_at, self.after, self.log = fail_at, after, []

    def count(self, op: str, key: str) -> None:
        self.log.append(f"{op} {key}")
        if self.fail_at is not None and len(self.log) - 1 == self.fail_at and not self.after:
            raise InjectedFailure(f"write #{self.fail_at}: {op} {key}")

    def done(self) -> None:
        if self.fail_at is not None and len(self.log) - 1 == self.fail_at and self.after:
            raise InjectedFailure(f"after write #{self.fail_at}: {self.log[-1]}")


class FailingStore(WrapperStore[LocalStore]):
    """A LocalStore whose ``fail_at``-th write raises :class:`InjectedFailure` (before it happens, or right
    after it with ``after=True``). ``delete_dir`` deletes key by key (sorted), so a failure can fall in the
    middle of a folder's deletion, as a kill during a recursive delete does."""

    def __init__(self, store: LocalStore, writes: _Writes | None = None) -> None:
        super().__init__(store)
        self.writes = writes if writes is not None else _Writes(None, False)

    def _with_store(self, store: LocalStore) -> FailingStore:
        return type(self)(store, self.writes)

    async def set(self, key: str, value: Any) -> None:
        self.writes.count("set", key)
        await self._store.set(key, value)
        self.writes.done()

    async def set_if_not_exists(self, key: str, value: Any) -> None:
        if await self._store.exists(key):  # zarr's "ensure the parent groups exist": no write happens
            return
        self.writes.count("set_if_not_exists", key)
        await self._store.set_if_not_exists(key, value)
        self.writes.done()

    async def _set_many(self, values: Iterable[tuple[str, Any]]) -> None:
        for key, value in values:
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        self.writes.count("delete", key)
        await self._store.delete(key)
        self.writes.done()

    async def delete_dir(self, prefix: str) -> None:
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        keys = sorted([k async for k in self._store.list_prefix(prefix)])
        for key in keys:
            await self.delete(key)
        folder = self._store.root / prefix
        if prefix and folder.is_dir():  # only empty folders are left
            shutil.rmtree(folder)

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        return self._store.list_prefix(prefix)


# ---------------------------------------------------------------------------------------------
# Stores: a trimmed copy holding one sequence, its clean levels, comparison helpers
# ---------------------------------------------------------------------------------------------


def _first_video_sequence(store: Path, benchmark: str) -> tuple[int, str]:
    p = list_participants(store, benchmark)[0]
    return p, next(s for s in list_sequences(store, benchmark, p)
                   if not (benchmark == bm.MONO and bm.MONO_BENCHMARK.is_test_sequence(p, s)))


def _trimmed_copy(source: Path, dest: Path, benchmark: str, participant: int, sequence: str) -> Path:
    """A copy of ``source`` holding only ``sequence`` (and its participant's calibration): small to copy."""
    shutil.copytree(source, dest)
    root = zarr.open_group(str(dest), mode="r+", use_consolidated=False)
    for b in list(root.group_keys()):
        if b != benchmark:
            del root[b]
            continue
        for pname in list(root[b].group_keys()):
            if pname != schema.participant_group(b, participant).split("/")[-1]:
                del root[f"{b}/{pname}"]
                continue
            for s in list(root[f"{b}/{pname}"].group_keys()):
                if s not in (schema.CALIBRATION, sequence):
                    del root[f"{b}/{pname}/{s}"]
    zarr.consolidate_metadata(str(dest))
    return dest


class Case:
    """One trimmed template store, the selection that picks its sequence, and its clean levels."""

    def __init__(self, template: Path, benchmark: str, participant: int, sequence: str, factors: list[int],
                 clean: Path) -> None:
        self.template, self.benchmark, self.participant, self.sequence = template, benchmark, participant, sequence
        self.factors, self.clean = factors, clean
        self.seq_path = schema.sequence_group(benchmark, participant, sequence)
        self.clean_frames = {f: _read_level(clean, self, f) for f in factors}

    def selection(self) -> dict[str, Any]:
        return {"benchmarks": [self.benchmark], "participants": [self.participant], "sequences": [self.sequence]}

    def level_path(self, f: int) -> str:
        return f"{self.seq_path}/{schema.level_group_name(f)}"

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.template, dest)
        return dest


def _read_level(store: Path, case: Case, f: int) -> dict[str, np.ndarray]:
    ds = open_sequence(store, case.benchmark, case.participant, case.sequence, level=f).compute()
    return {"images": ds.images.values, "alpha": ds.alpha.values, "intrinsics": ds.intrinsics.values}


def _level_files(store: Path, level_path: str) -> dict[str, Any]:
    """Every file of a level folder: ``zarr.json`` parsed, chunk/shard files as bytes."""
    out: dict[str, Any] = {}
    for f in sorted((store / level_path).rglob("*")):
        if f.is_file():
            rel = f.relative_to(store).as_posix()
            out[rel] = json.loads(f.read_bytes()) if f.name == "zarr.json" else hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def assert_level_equals_clean(store: Path, case: Case, context: str = "") -> None:
    """Level folders equal the clean run's file for file (metadata, attrs, markers, shard bytes); the
    consolidated metadata says complete; frames and intrinsics read back bit for bit."""
    for f in case.factors:
        path = case.level_path(f)
        got, want = _level_files(store, path), _level_files(case.clean, path)
        assert sorted(got) == sorted(want), f"{context}: files of {path} differ"
        for key in want:
            assert got[key] == want[key], f"{context}: {key} differs from a clean run's"
        consolidated = zarr.open_group(str(store), mode="r")[path]
        assert consolidated.attrs["complete"] is True, f"{context}: consolidated metadata of {path} is not complete"
        assert dict(consolidated.attrs) == want[f"{path}/zarr.json"]["attributes"], context
        group = zarr.open_group(str(store), mode="r", use_consolidated=False)[path]
        assert group.attrs["factor"] == f and group.attrs["scale"] == 1 / f, context
        got_frames = _read_level(store, case, f)
        for name, values in case.clean_frames[f].items():
            np.testing.assert_array_equal(got_frames[name], values, err_msg=f"{context}: level {f} {name}")
        np.testing.assert_array_equal(group["intrinsics"][:], case.clean_frames[f]["intrinsics"], err_msg=context)


def assert_no_wrong_level_data(store: Path, case: Case, context: str) -> None:
    """After a failed run, a reader gets each level's clean frames or an error, never other data."""
    for f in case.factors:
        try:
            got = _read_level(store, case, f)
        except NersembleZarrError:
            continue
        for name, values in case.clean_frames[f].items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"{context}: level {f} {name} read wrong data")


def _make_case(converted_store: Path, root: Path, benchmark: str, factors: list[int]) -> Case:
    p, s = _first_video_sequence(converted_store, benchmark)
    template = _trimmed_copy(converted_store, root / "template.zarr", benchmark, p, s)
    clean = shutil.copytree(template, root / "clean.zarr")
    downscale_store(clean, factors, benchmarks=[benchmark], participants=[p], sequences=[s], progress=False)
    case = Case(template, benchmark, p, s, factors, clean)
    return case


@pytest.fixture(scope="module")
def mono_case(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """One mono sequence (one camera), level 2."""
    return _make_case(converted_store, tmp_path_factory.mktemp("mono_case"), bm.MONO, [2])


@pytest.fixture(scope="module")
def nvs_case(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The NVS sequence (13 cameras), level 2."""
    return _make_case(converted_store, tmp_path_factory.mktemp("nvs_case"), bm.NVS, [2])


def old_bug_level(store: Path, case: Case, f: int) -> None:
    """Turn level ``f`` into what the old resume bug left: marked complete, with arrays and their camera
    markers, but no intrinsics and no factor/scale attrs; consolidated."""
    path = case.level_path(f)
    damage.delete_array_folder(store, f"{path}/intrinsics")
    zarr.open_group(str(store), mode="r+", use_consolidated=False)[path].attrs.put({"complete": True})
    zarr.consolidate_metadata(str(store))


def _run(store: Any, case: Case, **kwargs: Any) -> downscale.DownscaleReport:
    return downscale_store(store, case.factors, **case.selection(), progress=False, threads=1, **kwargs)


def _count_writes(case: Case, tmp: Path, start: str) -> list[str]:
    store = _start_state(case, tmp / "count.zarr", start)
    writes = _Writes(None, False)
    _run(FailingStore(LocalStore(str(store)), writes), case)
    assert_level_equals_clean(store, case, "a run through FailingStore")
    return writes.log


def _start_state(case: Case, dest: Path, start: str) -> Path:
    if start == "old-bug":
        store = shutil.copytree(case.clean, dest)
        old_bug_level(store, case, case.factors[0])
        return store
    store = case.copy(dest)
    if start == "half-done":  # level prepared, some cameras complete (an interrupted run)
        def stop(done: int, total: int) -> None:
            if done >= total // 2:
                raise InjectedFailure("halfway")

        with pytest.raises(InjectedFailure):
            downscale_store(store, case.factors, **case.selection(), progress=stop, threads=1)
    return store


def _fail_every_write(case: Case, tmp: Path, start: str) -> None:
    log = _count_writes(case, tmp, start)
    assert any("/c/" in w for w in log) and (start == "half-done" or any("intrinsics" in w for w in log)), log
    points = [(k, False) for k in range(len(log))] + [(len(log) - 1, True)]
    for k, after in points:
        store = _start_state(case, tmp / f"fail{k}{'a' if after else ''}.zarr", start)
        what = f"{'after' if after else 'at'} write #{k} of {len(log)} ({log[k]}), start {start}"
        with pytest.raises(InjectedFailure):
            _run(FailingStore(LocalStore(str(store)), _Writes(k, after)), case)
        assert_no_wrong_level_data(store, case, what)
        _run(str(store), case)  # the rerun finishes without error
        assert_level_equals_clean(store, case, what)
        shutil.rmtree(store)


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["fresh", "old-bug"])
def test_a_failure_at_every_store_write_then_a_rerun_gives_the_clean_level(
    mono_case: Case, tmp_path: Path, start: str
) -> None:
    """Every write of a run (level group, arrays, intrinsics, attrs, shards, markers, consolidation; for the
    damaged start also the unmarking and each file of the deletion) in turn fails; the rerun must give the
    clean run's levels, and in between a reader never gets other frames."""
    _fail_every_write(mono_case, tmp_path, start)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fresh", "half-done"])
def test_a_failure_at_every_store_write_of_a_many_camera_level_then_a_rerun_gives_the_clean_level(
    nvs_case: Case, tmp_path: Path, start: str
) -> None:
    _fail_every_write(nvs_case, tmp_path, start)


PREPARATION_STEPS = [step.__name__ for step in downscale._PREPARATION_STEPS]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", PREPARATION_STEPS)
@pytest.mark.parametrize("start", ["fresh", "old-bug"])
def test_a_failure_at_each_preparation_step_then_a_rerun_gives_the_clean_level(
    mono_case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str, step: str, when: str
) -> None:
    store = _start_state(mono_case, tmp_path / "store.zarr", start)
    steps = list(downscale._PREPARATION_STEPS)
    i = PREPARATION_STEPS.index(step)
    original = steps[i]

    def failing(seq: Any, plan: Any) -> None:
        if when == "after":
            original(seq, plan)
        raise InjectedFailure(f"{when} {step}")

    steps[i] = failing
    monkeypatch.setattr(downscale, "_PREPARATION_STEPS", tuple(steps))
    with pytest.raises(InjectedFailure):
        downscale_store(store, mono_case.factors, **mono_case.selection(), progress=False)
    monkeypatch.undo()
    assert_no_wrong_level_data(store, mono_case, f"{when} {step}")
    root = zarr.open_group(str(store), mode="r", use_consolidated=False)
    path = mono_case.level_path(mono_case.factors[0])
    if path.rsplit("/", 1)[-1] in root[mono_case.seq_path].group_keys():
        assert root[path].attrs.get("complete") is not True, "a failed preparation leaves the level unmarked"

    report = downscale_store(store, mono_case.factors, **mono_case.selection(), progress=False)
    assert report.written == [mono_case.level_path(f) for f in mono_case.factors] and report.skipped == []
    assert_level_equals_clean(store, mono_case, f"{when} {step}")


@pytest.mark.parametrize("marker", ["_mark_camera_complete", "_mark_level_complete", "consolidate", "_shard_task"])
def test_a_failure_at_each_marker_write_then_a_rerun_gives_the_clean_level(
    nvs_case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    """The writing phase: a shard task or a marker write fails (the third call, so some succeeded)."""
    store = nvs_case.copy(tmp_path / "store.zarr")
    original = getattr(downscale, marker)
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3 or (marker != "_mark_camera_complete" and marker != "_shard_task" and calls["n"] == 1):
            raise InjectedFailure(marker)
        return original(*args, **kwargs)

    monkeypatch.setattr(downscale, marker, failing)
    with pytest.raises(InjectedFailure):
        downscale_store(store, nvs_case.factors, **nvs_case.selection(), progress=False, threads=1)
    monkeypatch.undo()
    assert_no_wrong_level_data(store, nvs_case, marker)
    downscale_store(store, nvs_case.factors, **nvs_case.selection(), progress=False)
    assert_level_equals_clean(store, nvs_case, marker)


def _drop_level_attrs(store: Path, path: str) -> str:
    zarr.open_group(str(store), mode="r+", use_consolidated=False)[path].attrs.put({"complete": True})
    return "group attr 'factor' missing"


def _shrink_images(store: Path, path: str) -> str:
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)[path]
    old = group["images"]
    shape = (old.shape[0], old.shape[1] - 1) + old.shape[2:]
    group.create_array("images", shape=shape, dtype="uint8", chunks=(1, 1) + old.shape[2:], overwrite=True,
                       dimension_names=old.metadata.dimension_names, attributes=dict(old.attrs))
    return "images is uint8"


DAMAGES = {
    "old resume bug (no intrinsics, no attrs)": lambda s, p: (old_bug_level_at(s, p), "intrinsics missing")[1],
    "intrinsics folder deleted": lambda s, p: (damage.delete_array_folder(s, f"{p}/intrinsics"), "intrinsics missing")[1],
    "intrinsics chunk deleted": lambda s, p: (damage.delete_shard(s, f"{p}/intrinsics"), "intrinsics")[1],
    "alpha folder deleted": lambda s, p: (damage.delete_array_folder(s, f"{p}/alpha"), "array alpha missing")[1],
    "group attrs lost": _drop_level_attrs,
    "images of the wrong shape": _shrink_images,
    "intrinsics zarr.json corrupt": lambda s, p: (damage.corrupt_zarr_json(s, f"{p}/intrinsics"), "intrinsics")[1],
}


def old_bug_level_at(store: Path, path: str) -> None:
    damage.delete_array_folder(store, f"{path}/intrinsics")
    zarr.open_group(str(store), mode="r+", use_consolidated=False)[path].attrs.put({"complete": True})


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_a_level_marked_complete_but_damaged_is_redone(mono_case: Case, tmp_path: Path, kind: str) -> None:
    store = shutil.copytree(mono_case.clean, tmp_path / "store.zarr")
    path = mono_case.level_path(2)
    problem = DAMAGES[kind](store, path)
    if "corrupt" not in kind:  # (a corrupt zarr.json cannot be consolidated: the old consolidation stays)
        zarr.consolidate_metadata(str(store))
    assert zarr.open_group(str(store), mode="r")[path].attrs["complete"] is True

    report = downscale_store(store, mono_case.factors, **mono_case.selection(), progress=False)
    assert report.written == [path] and report.skipped == []
    assert len(report.redone) == 1 and report.redone[0].startswith(f"{path}: marked complete but ")
    assert problem in report.redone[0]
    assert_level_equals_clean(store, mono_case, kind)


def test_the_cli_redoes_a_level_the_old_resume_bug_left(mono_case: Case, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from nersemble_zarr.cli.main import main

    store = shutil.copytree(mono_case.clean, tmp_path / "store.zarr")
    old_bug_level(store, mono_case, 2)
    args = ["downscale", str(store), "--no-progress", "-b", mono_case.benchmark, "-p", str(mono_case.participant),
            "-s", mono_case.sequence] + [f"--factor={f}" for f in mono_case.factors]
    try:
        main(args)
    except SystemExit as exited:
        assert exited.code in (0, None), capsys.readouterr().err
    assert "wrote 1 level(s)" in capsys.readouterr().out
    assert_level_equals_clean(store, mono_case, "CLI rerun")


def test_rerun_after_a_complete_level_whose_consolidation_was_lost_reconsolidates(
    mono_case: Case, tmp_path: Path
) -> None:
    """A run killed after its level markers but before consolidating: the rerun skips the level and
    brings the consolidated metadata up to date."""
    store = mono_case.copy(tmp_path / "store.zarr")
    consolidated_before = (store / "zarr.json").read_bytes()
    downscale_store(store, mono_case.factors, **mono_case.selection(), progress=False)
    (store / "zarr.json").write_bytes(consolidated_before)  # as if the final consolidation never happened
    report = downscale_store(store, mono_case.factors, **mono_case.selection(), progress=False)
    assert report.written == [] and report.skipped == [mono_case.level_path(2)] and report.frames == 0
    assert_level_equals_clean(store, mono_case, "rerun")


# --- selections that match nothing -----------------------------------------------------------------------


def _tree(store: Path) -> dict[str, str]:
    return {p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def selection_store(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the converted sample holding both benchmarks (no levels)."""
    return shutil.copytree(converted_store, tmp_path_factory.mktemp("selection") / "store.zarr")


SELECTIONS: dict[str, tuple[dict[str, Any], list[str]]] = {
    # selection -> words the message must hold: the selection and the valid choices
    "unknown participant": ({"participants": [999]}, ["participant", "999", "388", "393"]),
    "one good, one unknown participant": ({"participants": [388, 999]}, ["999", "388", "393"]),
    "participant of the other benchmark": ({"benchmarks": [bm.NVS], "participants": [393]}, ["393", "388"]),
    "unknown sequence": ({"sequences": ["NO-SUCH-SEQUENCE"]}, ["NO-SUCH-SEQUENCE", "GLASSES", "EXP-1-head"]),
    "sequence of another participant": ({"participants": [388], "sequences": ["EXP-1-head"]},
                                        ["EXP-1-head", "GLASSES"]),
    "sequence without video": ({"sequences": ["FREE"]}, ["FREE", "with video", "GLASSES"]),
    "unknown benchmark": ({"benchmarks": ["nerf"]}, ["nerf", bm.NVS, bm.MONO]),
    "empty participant list": ({"participants": []}, ["participant", "388"]),
}


@pytest.mark.parametrize("kind", list(SELECTIONS))
def test_a_selection_that_matches_nothing_is_a_selection_error_that_writes_nothing(
    selection_store: Path, kind: str
) -> None:
    selection, words = SELECTIONS[kind]
    before = _tree(selection_store)
    with pytest.raises(SelectionError) as raised:
        downscale_store(selection_store, [2], progress=False, **selection)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert raised.value.exit_code == 2
    assert _tree(selection_store) == before, "nothing written"
    assert not Path(f"{selection_store}.nersemble-zarr.lock").exists()


def test_a_benchmark_missing_from_the_store_is_a_selection_error(mono_case: Case) -> None:
    with pytest.raises(SelectionError, match=rf"{bm.NVS}.*matches nothing.*{bm.MONO}"):
        downscale_store(mono_case.template, [2], benchmarks=[bm.NVS], progress=False)


def test_the_cli_exits_2_with_one_line_for_a_participant_not_in_the_store(
    selection_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nersemble_zarr.cli.main import main

    before = _tree(selection_store)
    with pytest.raises(SystemExit) as exited:
        main(["downscale", str(selection_store), "--factor", "2", "-p", "999", "--no-progress"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "999" in err and "388" in err and len(err.splitlines()) == 1
    assert _tree(selection_store) == before

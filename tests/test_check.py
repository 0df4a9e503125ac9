"""`nersemble-zarr check`: a store fsck that needs no raw data; `--repair` so that rerunning the writers restores it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from damage import ARRAY_DAMAGE, damaged_copy, shard_files
from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.pipelines.check import CheckReport, check_store
from nersemble_zarr.cli.main import cli
from nersemble_zarr.core.errors import SelectionError

IMAGES = f"{schema.sequence_group(bm.NVS, 388, 'GLASSES')}/{schema.IMAGES}"
MONO_SEQ = schema.sequence_group(bm.MONO, 393, "EXP-1-head")

#: damage kind -> the problem kind check reports at the default depth (None: only --deep finds it)
EXPECTED = {
    "missing_shard": "missing_object",
    "missing_array_folder": "missing_metadata",
    "truncated_shard": "corrupt_index",
    "chunk_bit_flip": None,
    "index_bit_flip": "corrupt_index",
    "corrupt_zarr_json": "corrupt_metadata",
    "missing_consolidated": "missing_consolidated",
}


def _digest(store: Path) -> dict[str, str]:
    return {p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


def _data_files(store: Path) -> dict[str, str]:
    """Every chunk/shard object (not zarr.json, whose key order may differ after a rewrite)."""
    return {k: v for k, v in _digest(store).items() if not k.endswith("zarr.json")}


def _check(store: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", str(store), "--no-progress", "--json", "-", *args])
    return result.exit_code, json.loads(result.stdout)


def test_check_passes_a_freshly_converted_store_at_both_depths(converted_store: Path):
    for args in ((), ("--deep",)):
        result = CliRunner().invoke(cli, ["check", str(converted_store), "--no-progress", *args])
        assert result.exit_code == 0, result.output
        assert "ok" in result.output.splitlines()[-1]
    report = check_store(converted_store, deep=True)
    assert report.ok and report.objects_checked > 100


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_check_reports_each_damage_kind_naming_the_object_and_changes_nothing(
    converted_store: Path, tmp_path: Path, kind: str
):
    store, key = damaged_copy(converted_store, tmp_path / "damaged.zarr", kind, IMAGES)
    before = _digest(store)
    rc, report = _check(store)
    if EXPECTED[kind] is None:  # a flipped bit inside chunk data: the default reads shard indexes only
        assert rc == 0 and report["ok"], report
        rc, report = _check(store, "--deep")
        expected_kind = "corrupt_chunk"
    else:
        expected_kind = EXPECTED[kind]
    assert rc == 1 and not report["ok"]
    [problem] = [p for p in report["problems"] if p["kind"] == expected_kind]
    assert problem["key"] == key or problem["key"] == f"{key}/zarr.json", problem
    assert key in problem["message"] or IMAGES in problem["message"] or kind == "missing_consolidated"
    if kind in ("missing_shard", "truncated_shard", "index_bit_flip", "chunk_bit_flip"):
        # the frames affected: participant, sequence, camera and timestep range
        assert (problem["participant"], problem["sequence"]) == (388, "GLASSES")
        assert problem["camera"] in bm.get_benchmark(bm.NVS).train_serials and problem["timesteps"] == [0, 10]
    assert _digest(store) == before  # check alone never writes


def test_check_table_names_the_damaged_shard_and_exits_1(converted_store: Path, tmp_path: Path):
    store, key = damaged_copy(converted_store, tmp_path / "d.zarr", "truncated_shard", IMAGES)
    result = CliRunner().invoke(cli, ["check", str(store), "--no-progress"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["KIND", "WHERE", "OBJECT", "PROBLEM"]
    row = next(line for line in lines if key in line)
    assert "nvs 388 GLASSES camera" in row and "timesteps 0-9" in row and "truncated or corrupted" in row
    assert "--repair" in lines[-1]


def test_check_json_to_a_file_keeps_the_table_on_stdout(converted_store: Path, tmp_path: Path):
    store, key = damaged_copy(converted_store, tmp_path / "d.zarr", "missing_shard", IMAGES)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["check", str(store), "--no-progress", "--json", str(out)])
    assert result.exit_code == 1 and key in result.stdout
    report = json.loads(out.read_text())
    assert report["ok"] is False and report["problems"][0]["key"] == key


def _leftover(store: Path) -> Path:
    shard = shard_files(store, IMAGES)[0]
    partial = shard.with_name(f"{shard.name}.{'ab' * 16}.partial")
    partial.write_bytes(shard.read_bytes()[:100])
    return partial


def test_leftover_partial_files_are_listed_and_removed_by_repair_only(converted_store: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    shutil.copytree(converted_store, store)
    partial = _leftover(store)
    meta = store / "nvs" / "zarr.abcdefabcdefabcdefabcdefabcdefab.partial"
    meta.write_text("{")
    before = _digest(store)
    rc, report = _check(store)
    assert rc == 1
    assert sorted(p["key"] for p in report["problems"] if p["kind"] == "leftover") == sorted(
        x.relative_to(store).as_posix() for x in (partial, meta)
    )
    assert partial.exists()
    rc, report = _check(store, "--repair")
    assert rc == 1 and all(p["repair"] == "removed" for p in report["problems"])
    assert not partial.exists() and not meta.exists()
    after = _digest(store)
    # nothing but the leftovers (and the re-consolidated root document) changed
    assert {k: v for k, v in after.items() if k != "zarr.json"} == {
        k: v for k, v in before.items() if k != "zarr.json" and ".partial" not in k
    }
    assert _check(store)[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_repair_then_rerun_convert_restores_the_store_bit_for_bit(
    converted_store: Path, sample_root: Path, tmp_path: Path, kind: str
):
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store, _ = damaged_copy(converted_store, tmp_path / "d.zarr", kind, IMAGES)
    report = check_store(store, deep=True, repair=True)
    assert not report.ok and all(p.repair and not p.repair.startswith("not repairable") for p in report.problems)
    assert check_store(store, deep=True).ok  # nothing claims complete any more that is not there
    if kind != "missing_consolidated":  # while unmarked, info says what is missing instead of "complete"
        seq = next(s for b in _info(store).benchmarks for p in b.participants for s in p.sequences if s.name == "GLASSES")
        assert not seq.complete and seq.incomplete and not seq.damaged
    result = convert_benchmark(sample_root, store, progress=False)
    assert result.ok, result.summary()
    assert check_store(store, deep=True).ok
    assert _data_files(store) == _data_files(converted_store)
    np.testing.assert_array_equal(zarr.open_array(store, path=IMAGES, mode="r")[:],
                                  zarr.open_array(converted_store, path=IMAGES, mode="r")[:])


def _info(store: Path):
    from nersemble_zarr.pipelines.info import store_info

    return store_info(store)


@pytest.fixture(scope="module")
def derived_store(converted_store: Path, flame_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted store plus a level 1/2 of one mono sequence and FLAME meshes (v2). Read-only."""
    pytest.importorskip("torch")  # FLAME meshes; the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.pipelines.downscale import downscale_store
    from nersemble_zarr.pipelines.flame import write_flame_to_store

    store = tmp_path_factory.mktemp("derived") / "derived.zarr"
    shutil.copytree(converted_store, store)
    downscale_store(store, [2], benchmarks=[bm.MONO], sequences=["EXP-1-head"], progress=False)
    write_flame_to_store(store, flame_model_path, progress=False)
    assert check_store(store, deep=True).ok
    return store


@pytest.mark.slow
def test_damaged_level_shard_is_named_unmarked_and_redone_by_downscale(derived_store: Path, tmp_path: Path):
    from nersemble_zarr.pipelines.downscale import downscale_store

    level_images = f"{MONO_SEQ}/level_2/{schema.IMAGES}"
    store, key = damaged_copy(derived_store, tmp_path / "d.zarr", "missing_shard", level_images)
    report = check_store(store, repair=True)
    [problem] = report.problems
    assert problem.kind == "missing_object" and problem.key == key and problem.array == level_images
    assert problem.camera == bm.get_benchmark(bm.MONO).train_serials[0] and problem.sequence == "EXP-1-head"
    level = zarr.open_group(store, path=f"{MONO_SEQ}/level_2", mode="r")
    assert level.attrs[schema.COMPLETE_ATTR] is False and level[schema.IMAGES].attrs[schema.COMPLETE_CAMERAS_ATTR] == []
    assert check_store(store).ok
    written = downscale_store(store, [2], benchmarks=[bm.MONO], sequences=["EXP-1-head"], progress=False)
    assert written.written == [f"{MONO_SEQ}/level_2"]
    assert check_store(store, deep=True).ok and _data_files(store) == _data_files(derived_store)


@pytest.mark.slow
def test_level_marked_complete_without_intrinsics_is_a_lying_marker_repaired_by_downscale(
    derived_store: Path, tmp_path: Path
):
    from nersemble_zarr.pipelines.downscale import downscale_store

    store = tmp_path / "d.zarr"
    shutil.copytree(derived_store, store)
    level = f"{MONO_SEQ}/level_2"
    shutil.rmtree(store / level / schema.INTRINSICS)
    zarr.consolidate_metadata(store)  # the consolidated copy forgets it too: only the marker still lies
    g = zarr.open_group(store, path=level, mode="r+")
    attrs = dict(g.attrs)
    del attrs["scale"]
    g.attrs.clear()
    g.update_attributes(attrs)
    report = check_store(store)
    kinds = {(p.kind, p.array) for p in report.problems}
    assert ("marker", f"{level}/{schema.INTRINSICS}") in kinds and ("marker", level) in kinds
    assert any("intrinsics" in p.message and "marked complete" in p.message for p in report.problems)
    info = _info(store)
    seq = next(s for b in info.benchmarks for p in b.participants for s in p.sequences if s.name == "EXP-1-head")
    assert not info.complete and seq.damaged and 2 in seq.levels
    check_store(store, repair=True)
    assert not (store / level).exists() and check_store(store).ok
    downscale_store(store, [2], benchmarks=[bm.MONO], sequences=["EXP-1-head"], progress=False)
    assert check_store(store, deep=True).ok and _data_files(store) == _data_files(derived_store)


@pytest.mark.slow
def test_damaged_flame_vertices_are_unmarked_and_rewritten_by_flame(
    derived_store: Path, flame_model_path: Path, tmp_path: Path
):
    from nersemble_zarr.pipelines.flame import write_flame_to_store

    vertices = f"{schema.flame_group(bm.MONO, 393, 'FREE', 2)}/vertices"
    store = tmp_path / "d.zarr"
    shutil.copytree(derived_store, store)
    chunk = sorted((store / vertices / "c").rglob("*"))[-1]
    chunk.unlink()
    report = check_store(store, repair=True)
    [problem] = report.problems
    assert problem.kind == "missing_object" and problem.key == chunk.relative_to(store).as_posix()
    assert problem.repair == f"unmarked {schema.flame_group(bm.MONO, 393, 'FREE', 2)}"
    assert check_store(store).ok
    summary = write_flame_to_store(store, flame_model_path, progress=False)
    assert summary.written == [schema.flame_group(bm.MONO, 393, "FREE", 2)]
    assert check_store(store, deep=True).ok and _data_files(store) == _data_files(derived_store)


def test_flame_meshes_whose_tracking_is_not_complete_are_a_lying_marker(derived_store: Path, tmp_path: Path):
    store = tmp_path / "d.zarr"
    shutil.copytree(derived_store, store)
    zarr.open_group(store, path=schema.tracking_group(bm.MONO, 393, "FREE", 2), mode="r+").update_attributes(
        {schema.COMPLETE_ATTR: False}
    )
    zarr.consolidate_metadata(store)
    report = check_store(store)
    [problem] = report.problems
    assert problem.kind == "marker" and problem.array == schema.flame_group(bm.MONO, 393, "FREE", 2)
    assert "tracking" in problem.message and problem.sequence == "FREE"


@pytest.mark.slow
def test_tracking_variable_lost_is_reported_and_reconverted(converted_store: Path, sample_root: Path, tmp_path: Path):
    from nersemble_zarr.pipelines.convert import convert_benchmark

    group = schema.tracking_group(bm.MONO, 393, "FREE", 2)
    store, _ = damaged_copy(converted_store, tmp_path / "d.zarr", "missing_array_folder", f"{group}/expression")
    report = check_store(store, repair=True)
    [problem] = report.problems
    assert problem.kind == "missing_metadata" and problem.array == f"{group}/expression"
    assert problem.repair == f"deleted {group}/expression, unmarked {group}"
    assert check_store(store).ok
    assert convert_benchmark(sample_root, store, progress=False).ok
    assert check_store(store, deep=True).ok and _data_files(store) == _data_files(converted_store)


def test_complete_calibration_missing_an_array_is_reported(converted_store: Path, tmp_path: Path):
    store = tmp_path / "d.zarr"
    shutil.copytree(converted_store, store)
    calib = schema.calibration_group(bm.NVS, 388)
    shutil.rmtree(store / calib / schema.INTRINSICS)
    zarr.consolidate_metadata(store)
    report = check_store(store)
    [problem] = report.problems
    assert problem.kind == "marker" and problem.array == f"{calib}/{schema.INTRINSICS}" and problem.participant == 388
    info = _info(store)
    participant = next(p for b in info.benchmarks for p in b.participants if p.participant == 388)
    assert participant.damaged and not info.complete


def test_check_selection_that_matches_nothing_is_exit_2(converted_store: Path):
    result = CliRunner().invoke(cli, ["check", str(converted_store), "-p", "999", "--no-progress"])
    assert isinstance(result.exception, SelectionError) and result.exception.exit_code == 2
    assert "999" in str(result.exception)
    report = check_store(converted_store, participants=[388])
    assert report.ok


def test_check_of_a_path_without_a_store_is_a_one_line_error(tmp_path: Path):
    from nersemble_zarr.pipelines.check import CheckError

    result = CliRunner().invoke(cli, ["check", str(tmp_path / "nothing.zarr")])
    assert isinstance(result.exception, CheckError) and "no Zarr store" in str(result.exception)


def test_check_report_is_plain_data(converted_store: Path):
    report = check_store(converted_store)
    assert isinstance(report, CheckReport)
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_check_reads_a_store_through_an_fsspec_url(converted_store: Path, tmp_path: Path):
    import fsspec

    store, key = damaged_copy(converted_store, tmp_path / "d.zarr", "index_bit_flip", IMAGES)
    fs = fsspec.filesystem("memory")
    fs.put(str(store), "/remote.zarr", recursive=True)
    try:
        report = check_store("memory://remote.zarr")
        [problem] = report.problems
        assert problem.kind == "corrupt_index" and problem.key == key
    finally:
        fs.rm("/remote.zarr", recursive=True)


def test_every_array_damage_kind_is_in_the_matrix():
    assert set(ARRAY_DAMAGE) | {"missing_consolidated"} == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("node", [schema.sequence_group(bm.NVS, 388, "GLASSES"), schema.participant_group(bm.NVS, 388),
                                  schema.calibration_group(bm.NVS, 388), schema.pointclouds_group(bm.NVS, 388, "GLASSES")])
def test_corrupt_group_document_is_restored_or_redone_and_convert_completes_it(
    converted_store: Path, sample_root: Path, tmp_path: Path, node: str
):
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store, key = damaged_copy(converted_store, tmp_path / "d.zarr", "corrupt_zarr_json", node)
    report = check_store(store, repair=True)
    [problem] = report.problems
    assert problem.kind == "corrupt_metadata" and problem.key == key and problem.participant == 388
    assert check_store(store).ok
    assert convert_benchmark(sample_root, store, progress=False).ok
    assert check_store(store, deep=True).ok and _data_files(store) == _data_files(converted_store)


def test_corrupt_root_document_is_reported_and_left_alone(converted_store: Path, tmp_path: Path):
    store, key = damaged_copy(converted_store, tmp_path / "d.zarr", "corrupt_zarr_json", "")
    before = _digest(store)
    report = check_store(store, repair=True)
    [problem] = report.problems
    assert problem.kind == "corrupt_metadata" and problem.key == "zarr.json"
    assert problem.repair.startswith("not repairable") and "new store" in problem.repair
    assert _digest(store) == before

"""`nersemble-zarr info`: the tree, sizes, codecs and completeness of a store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import zarr
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.cli.main import cli
from nersemble_zarr.pipelines.info import InfoError, store_info


def test_info_shows_benchmark_participant_sequence_tree_with_contents_and_codec(converted_store: Path):
    result = CliRunner().invoke(cli, ["info", str(converted_store)])
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    assert "complete" in lines[0] and "on disk" in lines[0]
    glasses = next(line for line in lines if "GLASSES" in line)
    assert "13 cam × " in glasses and "images [lossless blosc-lz4-5]" in glasses and "alpha [lossless]" in glasses
    assert "clouds" in glasses and glasses.rstrip().endswith("complete")
    free = next(line for line in lines if "FREE (test)" in line)
    assert "tracking v1,v2" in free and "cam" not in free
    assert any(line.startswith("nvs/") for line in lines) and any(line.strip().startswith("388/") for line in lines)


def test_info_json_has_bytes_on_disk_equal_to_the_files(converted_store: Path):
    result = CliRunner().invoke(cli, ["info", str(converted_store), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    on_disk = sum(p.stat().st_size for p in converted_store.rglob("*") if p.is_file())
    assert d["bytes"] == on_disk and d["complete"] is True
    nvs = next(b for b in d["benchmarks"] if b["name"] == bm.NVS)
    seq = nvs["participants"][0]["sequences"][0]
    assert seq["cameras"] == 13 and seq["codec"]["kind"] == "lossless" and seq["pointclouds"] >= 1
    assert 0 < seq["bytes"] < d["bytes"]


def test_info_reports_units_without_completion_marker_as_incomplete(converted_store: Path, tmp_path: Path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted_store, store)
    arr = zarr.open_array(store, path=f"{schema.sequence_group(bm.NVS, 388, 'GLASSES')}/{schema.ALPHA}", mode="r+")
    arr.update_attributes({schema.COMPLETE_CAMERAS_ATTR: arr.attrs[schema.COMPLETE_CAMERAS_ATTR][2:]})
    group = zarr.open_group(store, path=schema.tracking_group(bm.MONO, 393, "FREE", 1), mode="r+")
    group.update_attributes({schema.COMPLETE_ATTR: False})
    info = store_info(store)
    assert not info.complete
    result = CliRunner().invoke(cli, ["info", str(store)])
    assert "INCOMPLETE" in result.output.splitlines()[0]
    assert "alpha of 2/13 cameras" in result.output and "tracking v1" in result.output


def test_info_on_a_path_without_a_store_is_a_one_line_error(tmp_path: Path):
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "nothing.zarr")])
    assert result.exit_code != 0 and isinstance(result.exception, InfoError)
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "plain.zarr")])
    assert isinstance(result.exception, InfoError) and "not written by nersemble-zarr" in str(result.exception)


def test_info_lists_downscaled_levels_and_flame_meshes_once_written(
    converted_store: Path, flame_model_path: Path, tmp_path: Path
):
    pytest.importorskip("torch")  # the flame command; the Python 3.12 CI job (.ci/py312) runs without torch
    store = tmp_path / "derived.zarr"
    shutil.copytree(converted_store, store)
    runner = CliRunner()
    for args in (
        ["downscale", str(store), "--factor", "2", "--benchmark", bm.MONO, "--sequence", "EXP-1-head", "--no-progress"],
        ["flame", str(store), "--flame-model", str(flame_model_path), "--no-progress"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    lines = runner.invoke(cli, ["info", str(store)]).output.splitlines()
    head = next(line for line in lines if "EXP-1-head" in line)
    assert "levels 1/2" in head and "meshes v2" in head and head.rstrip().endswith("complete")
    free = next(line for line in lines if "FREE (test)" in line)
    assert "meshes v2" in free and "levels" not in free
    # a level whose completion marker is missing is reported, not shown as a level
    level = zarr.open_group(store, path=f"{schema.sequence_group(bm.MONO, 393, 'EXP-1-head')}/level_2", mode="r+")
    level.update_attributes({schema.COMPLETE_ATTR: False})
    seq = next(s for b in store_info(store).benchmarks for p in b.participants for s in p.sequences
               if s.name == "EXP-1-head")
    assert seq.levels == [] and "level 1/2" in seq.incomplete
    meshes = zarr.open_group(store, path=f"{schema.sequence_group(bm.MONO, 393, 'EXP-1-head')}/flame_v2", mode="r+")
    meshes.update_attributes({schema.COMPLETE_ATTR: False})
    seq = next(s for b in store_info(store).benchmarks for p in b.participants for s in p.sequences
               if s.name == "EXP-1-head")
    assert seq.flame_meshes == [] and "flame meshes v2" in seq.incomplete and seq.tracking == [1, 2]


@pytest.mark.parametrize("kind", ["missing_shard", "missing_array_folder", "corrupt_zarr_json", "missing_consolidated"])
def test_info_does_not_call_a_damaged_store_complete(converted_store: Path, tmp_path: Path, kind: str):
    from damage import damaged_copy

    images = f"{schema.sequence_group(bm.NVS, 388, 'GLASSES')}/{schema.IMAGES}"
    store, key = damaged_copy(converted_store, tmp_path / "damaged.zarr", kind, images)
    result = CliRunner().invoke(cli, ["info", str(store)])
    assert result.exit_code == 0, result.output
    head = result.output.splitlines()[0]
    assert "DAMAGED" in head and "nersemble-zarr check" in head and "complete" not in head
    if kind != "missing_consolidated":
        glasses = next(line for line in result.output.splitlines() if "GLASSES" in line)
        assert "DAMAGED" in glasses and key in glasses and not glasses.rstrip().endswith("complete")
    d = json.loads(CliRunner().invoke(cli, ["info", str(store), "--json"]).output)
    assert d["complete"] is False and d["intact"] is False


def test_info_counts_leftover_temporary_files_without_calling_the_store_damaged(converted_store: Path, tmp_path: Path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted_store, store)
    (store / "nvs" / f"zarr.{'0' * 32}.partial").write_text("{")
    info = store_info(store)
    assert info.leftovers == 1 and info.complete
    assert "1 leftover temporary file" in CliRunner().invoke(cli, ["info", str(store)]).output


def test_info_on_a_store_whose_root_zarr_json_is_corrupt_is_a_one_line_error(converted_store: Path, tmp_path: Path):
    from damage import damaged_copy

    store, _ = damaged_copy(converted_store, tmp_path / "damaged.zarr", "corrupt_zarr_json", "")
    result = CliRunner().invoke(cli, ["info", str(store)])
    assert isinstance(result.exception, InfoError)
    assert "root zarr.json does not parse" in str(result.exception) and "nersemble-zarr check" in str(result.exception)

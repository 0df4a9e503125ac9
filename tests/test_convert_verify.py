"""`nersemble-zarr verify`: re-decodes the sources and finds any difference, naming where it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import zarr
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.cli.main import cli
from nersemble_zarr.pipelines.verify import verify_store


def test_verify_passes_on_a_faithful_lossless_store(sample_root: Path, converted_store: Path):
    result = CliRunner().invoke(cli, ["verify", str(converted_store), str(sample_root)])
    assert result.exit_code == 0, result.output
    report = verify_store(converted_store, sample_root)
    assert report.ok and sum(c.frames for c in report.checks) > 0
    names = {c.name for c in report.checks}
    assert "nvs metadata" in names and "nvs/388 calibration" in names and "nvs/388/GLASSES pointclouds" in names


def test_verify_names_the_camera_and_timestep_of_a_changed_frame(sample_root: Path, converted_store: Path, tmp_path: Path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted_store, store)
    seq = schema.sequence_group(bm.NVS, 388, "GLASSES")
    arr = zarr.open_array(store, path=f"{seq}/{schema.IMAGES}", mode="r+")
    shard = arr[4, 0:arr.shards[1]]
    shard[3, 0, 0, 0] ^= 1  # one value off by one bit
    arr[4, 0:arr.shards[1]] = shard
    tracking = zarr.open_array(store, path=f"{schema.tracking_group(bm.MONO, 393, 'FREE', 2)}/jaw", mode="r+")
    tracking[0, 0] = tracking[0, 0] + 1
    result = CliRunner().invoke(cli, ["verify", str(store), str(sample_root)])
    assert result.exit_code == 1
    serial = bm.NVS_BENCHMARK.train_serials[4]
    assert f"nvs/388/GLASSES images cam_{serial}: timestep 3: 1 values differ" in result.output
    assert "FREE tracking v2: jaw differs" in result.output
    assert result.output.count("MISMATCH") == 2


def test_verify_reports_point_cloud_normals_missing_from_the_store(sample_root: Path, converted_store: Path, tmp_path: Path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted_store, store)
    shutil.rmtree(store / schema.pointclouds_group(bm.NVS, 388, "GLASSES") / schema.NORMALS)
    report = verify_store(store, sample_root, benchmarks="nvs")
    assert [c.name for c in report.failed] == ["nvs/388/GLASSES pointclouds"]
    assert ".pcd has them, the store none" in report.failed[0].message

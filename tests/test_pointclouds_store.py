"""Point clouds in the store at real-size layout (#14.4): CSR arrays in shards of inner chunks with the schema's
lossless codecs, clouds crossing chunk and shard boundaries read back bit for bit through the public reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.core import schema
from nersemble_zarr.core.benchmark import NVS
from nersemble_zarr.pipelines.convert import convert_benchmark
from nersemble_zarr.raw import read_pcd
from nersemble_zarr.read.data_manager import NVSDataManager

PID = 388


@pytest.mark.parametrize("shard", [None, 256], ids=["unsharded", "sharded"])
def test_clouds_across_chunk_and_shard_boundaries_read_back_bit_for_bit(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shard: int | None
) -> None:
    seq_dir = sorted((sample_root / NVS / f"{PID:03d}" / "sequences").iterdir())[0]
    files = sorted((seq_dir / "pointclouds").glob("frame_*.pcd"))
    clouds = [read_pcd(f) for f in files]
    assert len(clouds) >= 3 and all(len(c) > 200 for c in clouds)
    # tiny chunks (and shards): every cloud spans several chunks, and some a shard boundary
    monkeypatch.setattr(schema, "POINT_CHUNK", 64)
    monkeypatch.setattr(schema, "POINT_SHARD", shard)
    store = tmp_path / "store.zarr"
    report = convert_benchmark(sample_root, store, benchmarks=NVS, participants=[PID], sequences=[seq_dir.name], progress=False)
    assert report.ok, report.summary()

    group = zarr.open_group(store / NVS / f"{PID:03d}" / seq_dir.name / schema.POINTCLOUDS, mode="r")
    n = sum(len(c) for c in clouds)
    for name in (schema.POINTS, schema.NORMALS, schema.COLORS):
        arr = group[name]
        assert arr.shape == (n, 3) and arr.chunks == (64, 3) and arr.shards == ((shard, 3) if shard else None), name
        assert [type(c).__name__ for c in arr.compressors] == ["Crc32cCodec"], name  # schema.POINTCLOUD_COMPRESSORS
    np.testing.assert_array_equal(group[schema.OFFSETS][...], np.cumsum([0] + [len(c) for c in clouds]))

    dm = NVSDataManager(store, PID)
    for f, cloud in zip(files, clouds):
        t = int(f.stem.split("_")[1])
        points, colors, normals = dm.load_pointcloud(seq_dir.name, t)
        assert points.dtype == colors.dtype == normals.dtype == np.float32
        np.testing.assert_array_equal(points.view(np.uint32), cloud.points.view(np.uint32))
        np.testing.assert_array_equal(normals.view(np.uint32), cloud.normals.view(np.uint32))
        # colours as open3d hands them back: uint8 / 255 computed in float64, then float32
        np.testing.assert_array_equal(colors, (cloud.colors.astype(np.float64) / 255.).astype(np.float32))


def test_sample_points_sets_the_cloud_size_and_is_recorded(tmp_path: Path) -> None:
    from nersemble_zarr.testing.sample import SampleError, generate_sample

    root = generate_sample(tmp_path / "s", benchmarks=NVS, participants=[PID], frames=1, scale=1 / 16, points=3000,
                           pointclouds="first")
    files = list((root / NVS / f"{PID:03d}").rglob("*.pcd"))
    assert len(files) == 1
    assert 0.95 * 3000 <= len(read_pcd(files[0])) <= 3000  # each timestep keeps 96-100 % of the points
    # the params record the points, so a rerun with another count is refused rather than mixed in
    assert json.loads((root / ".nersemble-sample.json").read_text())["points"] == 3000
    with pytest.raises(SampleError, match="holds a sample made with"):
        generate_sample(root, benchmarks=NVS, participants=[PID], frames=1, scale=1 / 16, points=4000, pointclouds="first")


def test_sample_points_below_one_is_refused_before_writing(tmp_path: Path) -> None:
    from nersemble_zarr.testing.sample import SampleError, generate_sample

    with pytest.raises(SampleError, match="points must be at least 1, got 0"):
        generate_sample(tmp_path / "s", benchmarks=NVS, participants=[PID], points=0)
    assert not (tmp_path / "s").exists()

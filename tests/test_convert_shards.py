"""The whole-shard writer produces exactly the bytes zarr itself writes, for every codec the store uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr import schema
from nersemble_zarr.shards import encode_shard, supports_fast_shards, write_shard


def _frames(n: int, h: int, w: int, rgb: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (127 + 100 * np.sin(x / 7.0)[None] * np.cos(y / 5.0)[None] + rng.normal(0, 3, (n, h, w))).clip(0, 255)
    frames = base.astype(np.uint8)
    return np.repeat(frames[..., None], 3, axis=-1) if rgb else frames


@pytest.mark.parametrize("kind", ["images-lossless", "images-jpeg", "alpha"])
def test_write_shard_is_byte_identical_to_zarrs_own_shard_write(tmp_path: Path, kind: str):
    n_t, h, w, s_len = 11, 24, 16, 4  # 3 shards, the last one short
    if kind == "alpha":
        kwargs = schema.alpha_array_kwargs(2, n_t, h, w, s_len)
    else:
        codec = schema.ImageCodec("jpeg", 90) if kind == "images-jpeg" else schema.ImageCodec()
        kwargs = schema.images_array_kwargs(2, n_t, h, w, codec, s_len)
    frames = _frames(n_t, h, w, rgb=kind != "alpha")
    ours = zarr.create_array(tmp_path / "ours.zarr", **kwargs)
    theirs = zarr.create_array(tmp_path / "theirs.zarr", **kwargs).with_config({"write_empty_chunks": True})
    assert supports_fast_shards(ours)
    tail = (0,) * (frames.ndim - 1)
    for t0, t1 in schema.shard_runs(n_t, s_len):
        write_shard(ours, (1, t0 // s_len, *tail), frames[None, t0:t1])
        theirs[1, t0:t1] = frames[t0:t1]
    files = sorted(p.relative_to(tmp_path / "theirs.zarr") for p in (tmp_path / "theirs.zarr" / "c").rglob("*") if p.is_file())
    assert len(files) == 3
    for rel in files:
        assert (tmp_path / "ours.zarr" / rel).read_bytes() == (tmp_path / "theirs.zarr" / rel).read_bytes(), rel
    back = zarr.open_array(tmp_path / "ours.zarr", mode="r")[1]
    if kind != "images-jpeg":
        assert np.array_equal(back, frames)


def test_encode_shard_refuses_data_that_does_not_fill_its_chunks(tmp_path: Path):
    arr = zarr.create_array(tmp_path / "a.zarr", **schema.alpha_array_kwargs(1, 8, 6, 4, 4))
    with pytest.raises(ValueError, match="inner chunk"):
        encode_shard(arr, (0, 0, 0, 0), np.zeros((1, 4, 5, 4), np.uint8))


def test_unsharded_arrays_use_zarrs_write_path(tmp_path: Path):
    arr = zarr.create_array(tmp_path / "u.zarr", shape=(4, 4), chunks=(2, 2), dtype="uint8")
    assert not supports_fast_shards(arr)

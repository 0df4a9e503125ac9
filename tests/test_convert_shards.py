"""The whole-shard writer is active on the installed zarr and produces exactly the bytes zarr itself writes,
for every codec the store uses and for shard grids where the inner-chunk (Morton) order matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.core import schema
from nersemble_zarr.storage import shards
from nersemble_zarr.storage.shards import encode_shard, fast_shards_unavailable, morton_order, supports_fast_shards, write_shard


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


def test_fast_shard_writer_is_active_on_the_installed_zarr(tmp_path: Path):
    """The store's arrays take the whole-shard writer on this zarr (no silent fallback to the slow path)."""
    assert fast_shards_unavailable() is None, f"zarr {zarr.__version__}: {fast_shards_unavailable()}"
    for name, kwargs in {
        "images": schema.images_array_kwargs(2, 40, 8, 6, schema.ImageCodec()),
        "images-jpeg": schema.images_array_kwargs(2, 40, 8, 6, schema.ImageCodec("jpeg", 90)),
        "alpha": schema.alpha_array_kwargs(2, 40, 8, 6),
    }.items():
        created = zarr.create_array(tmp_path / f"{name}.zarr", **kwargs)
        reopened = zarr.open_array(tmp_path / f"{name}.zarr", mode="r+")
        assert supports_fast_shards(created) and supports_fast_shards(reopened), (name, zarr.__version__)


def test_morton_order_examples():
    assert morton_order((2, 2)) == ((0, 0), (1, 0), (0, 1), (1, 1))
    assert morton_order((1, 5, 1)) == tuple((0, t, 0) for t in range(5))  # an axis of length 1 takes no bit
    assert morton_order((3, 2)) == ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1))
    assert morton_order((4, 1, 2)) == ((0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1), (2, 0, 0), (3, 0, 0), (2, 0, 1), (3, 0, 1))
    assert morton_order(()) == ((),)
    assert morton_order((3, 0)) == ()
    for shape in [(5, 3, 2), (7,), (2, 9), (33, 3)]:
        order = morton_order(shape)
        assert sorted(order) == sorted(np.ndindex(*shape)), shape  # every coordinate exactly once


@pytest.mark.parametrize("shape", [(1, 32, 1, 1, 1), (4, 2, 2), (3, 5), (5, 3, 2), (2, 9), (33, 3, 1)])
def test_morton_order_matches_zarrs_own_helper_where_it_has_one(shape: tuple[int, ...]):
    import zarr.core.indexing as zi

    helper = getattr(zi, "morton_order_coords", None) or getattr(zi, "morton_order_iter", None)
    if helper is None:
        pytest.skip(f"zarr {zarr.__version__} has no Morton helper; the byte-identity tests cover the order")
    assert morton_order(shape) == tuple(tuple(int(i) for i in c) for c in helper(shape))


@pytest.mark.parametrize(
    ("shape", "shards", "chunks"),
    [
        ((8, 12), (4, 6), (1, 2)),  # chunk grid per shard (4, 3): Morton order differs from C order
        ((7, 10, 6), (4, 4, 6), (1, 2, 3)),  # (4, 2, 2) per shard, shards overhanging the end on two axes
        ((5, 9), (5, 9), (1, 1)),  # (5, 9): non-powers of two
    ],
)
def test_write_shard_is_byte_identical_for_multi_axis_chunk_grids(
    tmp_path: Path, shape: tuple[int, ...], shards: tuple[int, ...], chunks: tuple[int, ...]
):
    data = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    kwargs = {"shape": shape, "dtype": "uint8", "shards": shards, "chunks": chunks, "fill_value": 0, **schema.chunk_codecs()}
    ours = zarr.create_array(tmp_path / "ours.zarr", **kwargs)
    theirs = zarr.create_array(tmp_path / "theirs.zarr", **kwargs)
    assert supports_fast_shards(ours)
    n_shards = [-(-n // s) for n, s in zip(shape, shards)]
    for coords in np.ndindex(*n_shards):
        sel = tuple(slice(c * s, min((c + 1) * s, n)) for c, s, n in zip(coords, shards, shape))
        write_shard(ours, coords, data[sel])
        theirs[sel] = data[sel]
    files = sorted(p.relative_to(tmp_path / "theirs.zarr") for p in (tmp_path / "theirs.zarr" / "c").rglob("*") if p.is_file())
    assert len(files) == int(np.prod(n_shards))
    for rel in files:
        assert (tmp_path / "ours.zarr" / rel).read_bytes() == (tmp_path / "theirs.zarr" / rel).read_bytes(), rel
    assert np.array_equal(zarr.open_array(tmp_path / "ours.zarr", mode="r")[...], data)


def test_a_non_morton_write_order_takes_zarrs_write_path(tmp_path: Path):
    arr = zarr.create_array(tmp_path / "a.zarr", **schema.alpha_array_kwargs(1, 8, 6, 4, 4))
    sc = arr.metadata.codecs[0]
    if not hasattr(sc, "subchunk_write_order"):
        pytest.skip(f"zarr {zarr.__version__} writes inner chunks in Morton order only")
    object.__setattr__(sc, "subchunk_write_order", "lexicographic")
    assert not supports_fast_shards(arr)


def test_missing_zarr_internals_fall_back_and_refuse_to_encode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    arr = zarr.create_array(tmp_path / "a.zarr", **schema.alpha_array_kwargs(1, 8, 6, 4, 4))
    monkeypatch.setattr(shards, "_UNAVAILABLE", "ImportError: cannot import name 'NDBuffer'")
    assert fast_shards_unavailable() == "ImportError: cannot import name 'NDBuffer'"
    assert not supports_fast_shards(arr)
    with pytest.raises(RuntimeError, match="NDBuffer"):
        encode_shard(arr, (0, 0, 0, 0), np.zeros((1, 4, 6, 4), np.uint8))
    assert not (tmp_path / "a.zarr" / "c").exists()

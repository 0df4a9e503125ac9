"""Encode and store one whole shard of a sharded Zarr v3 array without zarr's generic write path.

Writing a full shard through ``arr[...] = value`` makes zarr merge every inner chunk into a fresh
fill-value buffer and assemble the shard on its single event-loop thread (~4 ms of CPU per
1604×1100 frame on top of the compressor with zarr 3.1). When a caller owns a whole shard, the
shard's bytes are fully determined by the array's codecs: the inner chunks encoded by the sharding
codec's inner codec chain, concatenated in Morton (Z) order of their position in the shard (the
order zarr writes by default; :func:`morton_order` here, not zarr's private helper, which zarr 3.3
renamed), then the index (offset, length per inner chunk; 2**64-1 for absent ones) encoded by the
index codecs (bytes + crc32c) at the end. This module builds exactly those bytes with zarr's own
codec objects (so any compressor or serializer works) and stores them under the shard's key.

The codec calls (``_encode_sync``, ``ArraySpec``) are zarr internals: tests/test_convert_shards.py
asserts, on the installed zarr (3.1 to 3.4 are tested), that the fast path is active and that its
shards are byte-identical to zarr's own write. Where an internal is missing,
:func:`fast_shards_unavailable` says which, :func:`supports_fast_shards` is False and callers fall
back to ``arr[...] = value`` (correct, slower); the activity test then fails in CI.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

try:  # the codec machinery the fast path calls; a zarr without it → zarr's own write path
    from zarr.codecs.sharding import ShardingCodec
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.buffer.cpu import NDBuffer
    from zarr.core.sync import sync

    _UNAVAILABLE: str | None = None
    if not hasattr(ShardingCodec, "_get_index_chunk_spec"):
        _UNAVAILABLE = "zarr.codecs.sharding.ShardingCodec._get_index_chunk_spec is missing"
except ImportError as e:  # pragma: no cover - depends on the installed zarr
    _UNAVAILABLE = f"{type(e).__name__}: {e}"

_EMPTY = np.uint64(2**64 - 1)


def fast_shards_unavailable() -> str | None:
    """Why the whole-shard writer cannot run on the installed zarr, or None when it can."""
    return _UNAVAILABLE


@lru_cache(maxsize=32)
def morton_order(shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """All coordinates of the grid ``shape`` (inner chunks per shard, per axis) in Morton (Z) order.

    The Morton code of a coordinate interleaves its bits, lowest bit first, taking one bit from each
    axis in axis order and skipping an axis once its ``(n - 1).bit_length()`` bits are used up (the
    "compressed" Morton code of Neuroglancer, which the Zarr sharding codec uses). Coordinates are
    sorted by that code. E.g. ``(2, 2)`` → ``(0,0) (1,0) (0,1) (1,1)``; an axis of length 1 takes no
    bit, so ``(1, 5, 1)`` → ``(0,0,0) … (0,4,0)``.
    """
    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"grid shape must not be negative, got {shape}")
    if not shape or 0 in shape:
        return () if 0 in shape else ((),)
    coords = np.stack(np.meshgrid(*(np.arange(n, dtype=np.int64) for n in shape), indexing="ij"), axis=-1)
    coords = coords.reshape(-1, len(shape))
    bits = [(n - 1).bit_length() for n in shape]
    code = np.zeros(len(coords), dtype=np.uint64)
    out_bit = 0
    for bit in range(max(bits)):
        for axis, n_bits in enumerate(bits):
            if bit < n_bits:
                code |= ((coords[:, axis] >> bit) & 1).astype(np.uint64) << np.uint64(out_bit)
                out_bit += 1
    order = np.argsort(code, kind="stable")
    return tuple(map(tuple, coords[order].tolist()))


def supports_fast_shards(arr: Any) -> bool:
    """True when :func:`write_shard` can write ``arr``: the zarr internals it calls exist, and ``arr`` is
    sharded with the index at the end, synchronous inner codecs and Morton inner-chunk order."""
    if _UNAVAILABLE is not None:
        return False
    codecs = arr.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return False
    sc = codecs[0]
    return (
        # an enum member in zarr 3.1, the plain string in zarr >= 3.3 (where the enum is deprecated)
        getattr(sc.index_location, "value", sc.index_location) == "end"
        # zarr >= 3.4: a write-time setting of the codec object (not stored; "morton" when opened)
        and getattr(sc, "subchunk_write_order", "morton") == "morton"
        and all(hasattr(c, "_encode_sync") for c in (*sc.codecs, *sc.index_codecs))
    )


def encode_shard(arr: Any, shard_coords: tuple[int, ...], data: np.ndarray) -> bytes:
    """The stored bytes of shard ``shard_coords`` of ``arr`` holding ``data``.

    ``data`` has the shard's shape, or less along axes where the shard overhangs the array's end
    (the last shard along timestep), and the array's dtype. Every inner chunk inside the array is
    stored (no empty-chunk elision), as zarr does with ``write_empty_chunks=True``. Raises
    ``ValueError`` when ``data`` does not fill the shard's inner chunks, ``RuntimeError`` when
    :func:`supports_fast_shards` is False.
    """
    if not supports_fast_shards(arr):
        raise RuntimeError(
            f"encode_shard cannot write {arr.path or 'the array'} on zarr: "
            f"{_UNAVAILABLE or 'not sharded with the index at the end, synchronous codecs, Morton order'}"
        )
    sc: ShardingCodec = arr.metadata.codecs[0]
    shard_shape = tuple(arr.shards)
    chunk_shape = tuple(sc.chunk_shape)
    chunks_per_shard = tuple(s // c for s, c in zip(shard_shape, chunk_shape, strict=True))
    proto = default_buffer_prototype()
    spec = ArraySpec(
        shape=chunk_shape, dtype=arr.metadata.data_type, fill_value=arr.metadata.fill_value,
        config=ArrayConfig(order="C", write_empty_chunks=True), prototype=proto,
    )
    index = np.full((*chunks_per_shard, 2), _EMPTY, dtype=np.uint64)
    parts: list[Any] = []
    offset = 0
    origin = [s * n for s, n in zip(shard_coords, shard_shape, strict=True)]
    for local in morton_order(chunks_per_shard):
        start = [lc * c for lc, c in zip(local, chunk_shape, strict=True)]
        if any(o + s >= n for o, s, n in zip(origin, start, arr.shape, strict=True)):
            continue  # inner chunk beyond the array's end
        sel = tuple(slice(s, s + c) for s, c in zip(start, chunk_shape, strict=True))
        chunk = np.ascontiguousarray(data[sel])
        if chunk.shape != chunk_shape:
            raise ValueError(f"inner chunk {local} of shard {shard_coords} has shape {chunk.shape}, expected {chunk_shape}")
        encoded = sc.codecs[0]._encode_sync(NDBuffer.from_numpy_array(chunk), spec)
        for codec in sc.codecs[1:]:
            encoded = codec._encode_sync(encoded, spec)
        raw = encoded.as_numpy_array()  # a view: the only copy is the join below
        parts.append(raw)
        index[local] = (offset, raw.nbytes)
        offset += raw.nbytes
    index_spec = sc._get_index_chunk_spec(chunks_per_shard)
    encoded_index = sc.index_codecs[0]._encode_sync(NDBuffer.from_numpy_array(index), index_spec)
    for codec in sc.index_codecs[1:]:
        encoded_index = codec._encode_sync(encoded_index, index_spec)
    parts.append(encoded_index.as_numpy_array())
    return b"".join(parts)


def write_shard(arr: Any, shard_coords: tuple[int, ...], data: np.ndarray) -> None:
    """Encode (in the calling thread) and store (atomically per object) one whole shard of ``arr``."""
    blob = encode_shard(arr, shard_coords, data)
    key = arr.metadata.encode_chunk_key(shard_coords)
    sync((arr.store_path / key).set(default_buffer_prototype().buffer.from_bytes(blob)))

"""Encode and store one whole shard of a sharded Zarr v3 array without zarr's generic write path.

Writing a full shard through ``arr[...] = value`` makes zarr merge every inner chunk into a fresh
fill-value buffer and assemble the shard on its single event-loop thread (~4 ms of CPU per
1604×1100 frame on top of the compressor). When a caller owns a whole shard, the shard's bytes are
fully determined by the array's codecs: the inner chunks encoded by the sharding codec's inner
codec chain, concatenated in the order zarr itself uses, then the index (offset, length per inner
chunk; 2**64-1 for absent ones) encoded by the index codecs (bytes + crc32c) at the end. This module
builds exactly those bytes with zarr's own codec objects (so any compressor or serializer works) and
stores them under the shard's key. Tests check the result is byte-identical to zarr's own write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from zarr.codecs.sharding import ShardingCodec, ShardingCodecIndexLocation
from zarr.core.array_spec import ArrayConfig, ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.buffer.cpu import NDBuffer
from zarr.core.sync import sync

try:  # zarr's inner-chunk order within a shard; absent in another zarr version → zarr's own write path
    from zarr.core.indexing import morton_order_iter
except ImportError:  # pragma: no cover
    morton_order_iter = None

_EMPTY = np.uint64(2**64 - 1)


def supports_fast_shards(arr: Any) -> bool:
    """True when ``arr`` is sharded with the index at the end and synchronous inner codecs."""
    codecs = arr.metadata.codecs
    if morton_order_iter is None or len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return False
    sc = codecs[0]
    return sc.index_location == ShardingCodecIndexLocation.end and all(
        hasattr(c, "_encode_sync") for c in (*sc.codecs, *sc.index_codecs)
    )


def encode_shard(arr: Any, shard_coords: tuple[int, ...], data: np.ndarray) -> bytes:
    """The stored bytes of shard ``shard_coords`` of ``arr`` holding ``data``.

    ``data`` has the shard's shape, or less along axes where the shard overhangs the array's end
    (the last shard along timestep). Every inner chunk inside the array is stored (no
    empty-chunk elision), as zarr does with ``write_empty_chunks=True``.
    """
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
    for local in morton_order_iter(chunks_per_shard):
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

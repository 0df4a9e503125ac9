"""Damage a copy of a store the ways real stores get damaged, for the corruption tests.

Each function edits a store folder in place (tests call them on a copy, see :func:`damaged_copy`) and
returns the store-relative key of the object it damaged, so tests can assert the error names it.

The kinds (the rows of the corruption matrix): a missing shard, a missing array folder, a truncated
shard, a bit flip in an inner chunk's data, a bit flip in a shard index, a corrupt ``zarr.json`` and a
store without consolidated metadata.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

#: Shard index entry size (offset + length, uint64) and the crc32c that follows the index.
_INDEX_ENTRY = 16
_CRC = 4


def shard_files(store: Path, array_path: str) -> list[Path]:
    """Every stored chunk/shard object of ``array_path`` (e.g. ``"nvs/388/GLASSES/images"``), sorted."""
    root = store / array_path / "c"
    return sorted(p for p in root.rglob("*") if p.is_file() and ".partial" not in p.name)


def _key(store: Path, path: Path) -> str:
    return path.relative_to(store).as_posix()


def delete_shard(store: Path, array_path: str, index: int = 0) -> str:
    """Delete one shard of ``array_path`` (the ``index``-th stored object)."""
    path = shard_files(store, array_path)[index]
    path.unlink()
    return _key(store, path)


def delete_array_folder(store: Path, array_path: str) -> str:
    """Delete the whole folder of ``array_path`` (its ``zarr.json`` and every shard); the consolidated
    metadata still describes it."""
    shutil.rmtree(store / array_path)
    return array_path


def truncate_shard(store: Path, array_path: str, index: int = 0, keep: float = 0.5) -> str:
    """Cut one shard of ``array_path`` to ``keep`` of its size (a killed upload, a full disk)."""
    path = shard_files(store, array_path)[index]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return _key(store, path)


def flip_chunk_byte(store: Path, array_path: str, index: int = 0) -> str:
    """Flip one bit in the data of the first inner chunk of one shard (bit rot, a bad copy)."""
    path = shard_files(store, array_path)[index]
    data = bytearray(path.read_bytes())
    data[min(len(data) // 4, 100)] ^= 0x01
    path.write_bytes(bytes(data))
    return _key(store, path)


def flip_index_byte(store: Path, array_path: str, index: int = 0) -> str:
    """Flip one bit inside the shard index (at the shard's end, before its crc32c): the offset of the
    shard's first inner chunk."""
    path = shard_files(store, array_path)[index]
    data = bytearray(path.read_bytes())
    data[-(_CRC + _INDEX_ENTRY * 1)] ^= 0x01  # somewhere in the last index entry
    path.write_bytes(bytes(data))
    return _key(store, path)


def corrupt_zarr_json(store: Path, node_path: str) -> str:
    """Overwrite ``node_path``'s ``zarr.json`` with truncated JSON (``""`` = the root's)."""
    path = store / node_path / "zarr.json" if node_path else store / "zarr.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    return _key(store, path)


def drop_consolidated_metadata(store: Path) -> str:
    """Remove the consolidated metadata from the root ``zarr.json`` (a store whose consolidation never ran)."""
    path = store / "zarr.json"
    doc = json.loads(path.read_text())
    doc.pop("consolidated_metadata", None)
    path.write_text(json.dumps(doc))
    return "zarr.json"


#: name -> function(store, array_path) for the array-level damage kinds.
ARRAY_DAMAGE: dict[str, Callable[[Path, str], str]] = {
    "missing_shard": delete_shard,
    "missing_array_folder": delete_array_folder,
    "truncated_shard": truncate_shard,
    "chunk_bit_flip": flip_chunk_byte,
    "index_bit_flip": flip_index_byte,
    "corrupt_zarr_json": corrupt_zarr_json,
}


def damaged_copy(store: Path, copy: Path, kind: str, array_path: str) -> tuple[Path, str]:
    """Copy ``store`` to ``copy`` and apply damage ``kind`` (a key of :data:`ARRAY_DAMAGE`, or
    ``"missing_consolidated"``) to ``array_path``; returns ``(copy, damaged key)``."""
    shutil.copytree(store, copy)
    if kind == "missing_consolidated":
        return copy, drop_consolidated_metadata(copy)
    return copy, ARRAY_DAMAGE[kind](copy, array_path)

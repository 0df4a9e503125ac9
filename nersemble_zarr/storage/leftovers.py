"""Temporary files a killed zarr write leaves inside a store: find them, remove them.

zarr's ``LocalStore`` writes every object to ``<stem>.<32 hex uuid>.partial`` beside its final
name and renames it when the write is complete (``c/0/0`` → ``c/0/0.<uuid>.partial``,
``zarr.json`` → ``zarr.<uuid>.partial``). A process killed between the two steps leaves that file
behind; the object itself is untouched (absent, or its previous version). The leftover holds no
data anyone reads, but zarr lists it and every later open may warn about it.

The next writer removes them: :class:`~nersemble_zarr.storage.lock.StoreLock` calls
:func:`remove_leftovers` right after it is acquired, so convert, downscale and flame all clean up
before they write. Removing is only safe while no other process writes the store (an in-flight
write has its ``.partial`` file too): call :func:`remove_leftovers` under the store's lock.

Object stores (``s3://`` through fsspec) write each object in one request and leave no such files,
but a store copied there from disk may carry them; both functions work on either kind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .location import StoreLocation

#: The name zarr's LocalStore gives an object while it is being written (``_atomic_write``).
LEFTOVER_PATTERN = re.compile(r"\.[0-9a-f]{32}\.partial$")


def _location(location: StoreLocation | str | os.PathLike, storage_options: dict[str, Any] | None) -> StoreLocation:
    if isinstance(location, StoreLocation):
        return location
    return StoreLocation.parse(location, storage_options)


def _is_leftover(name: str) -> bool:
    return LEFTOVER_PATTERN.search(name) is not None


def find_leftovers(location: StoreLocation | str | os.PathLike,
                   storage_options: dict[str, Any] | None = None) -> list[str]:
    """The store's zarr temporary files, as sorted store-relative keys (``"nvs/388/GLASSES/images/c/0/0.<uuid>.partial"``).

    ``location``: a :class:`StoreLocation`, a local path or an fsspec URL (with ``storage_options``).
    A store that does not exist has none (``[]``). Reads listings only, never object contents.
    """
    loc = _location(location, storage_options)
    found: list[str] = []
    if loc.is_local:
        root = Path(loc.url)
        if not root.is_dir():
            return []
        for folder, _dirs, files in os.walk(root):
            for name in files:
                if _is_leftover(name):
                    found.append((Path(folder) / name).relative_to(root).as_posix())
        return sorted(found)
    fs, root = loc.filesystem()
    root = root.rstrip("/")
    if not fs.exists(root):
        return []
    for path in fs.find(root):
        name = path.rsplit("/", 1)[-1]
        if _is_leftover(name):
            found.append(path[len(root):].lstrip("/"))
    return sorted(found)


def remove_leftovers(location: StoreLocation | str | os.PathLike,
                     storage_options: dict[str, Any] | None = None) -> list[str]:
    """Delete the store's zarr temporary files; returns the store-relative keys removed (sorted).

    Touches nothing else: only names matching :data:`LEFTOVER_PATTERN` are deleted, never a chunk,
    shard or metadata object. Call it while holding the store's lock (see the module docstring).
    A file that vanished meanwhile is skipped (not reported).
    """
    loc = _location(location, storage_options)
    removed: list[str] = []
    keys = find_leftovers(loc)
    if not keys:
        return []
    if loc.is_local:
        root = Path(loc.url)
        for key in keys:
            try:
                (root / key).unlink()
            except FileNotFoundError:
                continue
            removed.append(key)
        return removed
    fs, root = loc.filesystem()
    root = root.rstrip("/")
    for key in keys:
        try:
            fs.rm_file(f"{root}/{key}")
        except FileNotFoundError:
            continue
        removed.append(key)
    return removed

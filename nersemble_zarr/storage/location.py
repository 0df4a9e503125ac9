"""Where a store lives: a local directory or an fsspec URL (``s3://bucket/x.zarr``).

:class:`StoreLocation` is a small picklable value: dask workers receive it and open their own
store, never a live store object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr


def _is_url(s: str) -> bool:
    return "://" in s and not s.startswith("file://")


@dataclass(frozen=True)
class StoreLocation:
    """A Zarr store: local directory ``url`` (absolute) or fsspec URL (``s3://bucket/x.zarr``)."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, store: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> "StoreLocation":
        s = os.fspath(store)
        if s.startswith("file://"):
            s = s[len("file://"):]
        if not _is_url(s):
            s = str(Path(s).expanduser().absolute())
        return cls(s, dict(storage_options or {}))

    @property
    def is_local(self) -> bool:
        return not _is_url(self.url)

    def zarr_store(self, *, read_only: bool = False) -> Any:
        """A fresh zarr store object for this location (one per process/task)."""
        if self.is_local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(self.url, storage_options=self.storage_options or None, read_only=read_only)

    def exists(self) -> bool:
        """True when the location holds a Zarr root (``zarr.json``)."""
        if self.is_local:
            return (Path(self.url) / "zarr.json").exists()
        fs, root = self.filesystem()
        return fs.exists(f"{root.rstrip('/')}/zarr.json")

    def filesystem(self) -> tuple[Any, str]:
        """``(fsspec filesystem, path)`` of a remote store."""
        import fsspec

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def __str__(self) -> str:
        return self.url

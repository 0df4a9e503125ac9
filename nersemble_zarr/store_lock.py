"""Where a store lives (local path or fsspec URL) and the lock that keeps two converts apart.

:class:`StoreLocation` is a small picklable value: dask workers receive it and open their own
store, never a live store object. :class:`StoreLock` refuses a second concurrent convert.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from .errors import NersembleZarrError

#: A remote lock whose heartbeat is older than this (seconds) belongs to a dead convert.
REMOTE_LOCK_STALE_S = 120.0
REMOTE_LOCK_HEARTBEAT_S = 30.0


class StoreLockedError(NersembleZarrError):
    """Another convert is writing the same store."""


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


class StoreLock:
    """Exclusive writer lock of a store: a file next to it (``<store>.nersemble-zarr.lock``).

    Local stores: created atomically (``O_EXCL``) holding host, pid and start time; a lock left by
    a process that no longer runs on this host is taken over. Remote (fsspec) stores have no atomic
    create-if-absent, so the lock object carries a heartbeat rewritten every 30 s; a lock whose
    heartbeat is older than 2 minutes is stale. That keeps an accidental second convert out; two
    converts started within the same instant on two machines could both pass the check.
    """

    def __init__(self, location: StoreLocation, operation: str = "convert") -> None:
        self.location = location
        self.path = location.url.rstrip("/") + ".nersemble-zarr.lock"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                       "operation": operation}

    def _payload(self) -> str:
        return json.dumps({**self._owner, "heartbeat": time.time()})

    def _refuse(self, holder: dict[str, Any]) -> None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
        raise StoreLockedError(
            f"{self.location}: another {holder.get('operation', 'nersemble-zarr command')} is writing this store (host {holder.get('host')}, pid "
            f"{holder.get('pid')}, since {started}); wait for it to finish, or remove {self.path} if it is not running"
        )

    def acquire(self) -> "StoreLock":
        if self.location.is_local:
            self._acquire_local()
        else:
            self._acquire_remote()
        return self

    def _acquire_local(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_local()
                if holder is None or not self._alive_here(holder):
                    # stale (dead process on this host): move it aside atomically, retry the create
                    try:
                        os.replace(self.path, f"{self.path}.stale-{os.getpid()}")
                        os.unlink(f"{self.path}.stale-{os.getpid()}")
                    except FileNotFoundError:
                        pass
                    continue
                self._refuse(holder)
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(self._payload())
                return
        holder = self._read_local() or {}
        self._refuse(holder)

    def _read_local(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def _alive_here(holder: dict[str, Any]) -> bool:
        if holder.get("host") != socket.gethostname():
            return True  # another host: cannot check, assume it runs
        try:
            os.kill(int(holder["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError, TypeError):
            return False
        except PermissionError:
            return True
        return True

    def _acquire_remote(self) -> None:
        fs, lock_path = _remote_lock_path(self)
        if fs.exists(lock_path):
            try:
                holder = json.loads(fs.cat_file(lock_path))
            except (json.JSONDecodeError, FileNotFoundError):
                holder = {}
            if time.time() - float(holder.get("heartbeat", 0)) < REMOTE_LOCK_STALE_S:
                self._refuse(holder)
        fs.pipe_file(lock_path, self._payload().encode())
        self._thread = threading.Thread(target=self._heartbeat, name="store-lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        fs, lock_path = _remote_lock_path(self)
        while not self._stop.wait(REMOTE_LOCK_HEARTBEAT_S):
            try:
                fs.pipe_file(lock_path, self._payload().encode())
            except Exception:  # noqa: BLE001  a missed heartbeat only shortens the lock's life
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.location.is_local:
                os.unlink(self.path)
            else:
                fs, lock_path = _remote_lock_path(self)
                fs.rm_file(lock_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _remote_lock_path(lock: StoreLock) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(lock.path, **lock.location.storage_options)

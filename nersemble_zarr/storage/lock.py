"""The lock that keeps two writers of one store apart.

:class:`StoreLock` lets exactly one writer (convert, downscale, flame) hold a store at a time
(:class:`~nersemble_zarr.storage.location.StoreLocation` says where the store is), and removes the
temporary files a killed writer left (:mod:`nersemble_zarr.storage.leftovers`) once it holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..core.errors import NersembleZarrError
from .location import StoreLocation

#: A remote lock whose heartbeat is older than this (seconds) belongs to a dead writer.
REMOTE_LOCK_STALE_S = 120.0
#: How often (seconds) a remote lock's holder rewrites its heartbeat.
REMOTE_LOCK_HEARTBEAT_S = 30.0


class StoreLockedError(NersembleZarrError):
    """Another writer holds the store, or this writer lost its lock and must stop writing."""


class StoreLock:
    """Exclusive writer lock of a store: the file ``<store>.nersemble-zarr.lock`` beside it.

    The lock file holds JSON naming its holder (host, pid, start time, command, heartbeat); it is
    informational, the exclusion comes from the mechanism below.

    Local stores: an OS lock, ``fcntl.flock`` on the lock file, held on a descriptor kept open for
    the lock's lifetime. The kernel grants it to exactly one process and drops it when that process
    exits, however it exits, so a lock left by a killed writer is free at once (no staleness rule,
    no check-then-act). Release unlinks the file while still holding it; a contender that locked the
    unlinked file sees that its descriptor no longer names the path and tries again. On network
    filesystems this is as good as their ``flock`` (Linux NFSv4 maps it to a server-side lock).

    Object stores (``s3://`` through s3fs): conditional writes. The lock object is created with
    ``If-None-Match: *`` (only one of two racing creates succeeds); a holder rewrites its heartbeat
    every ``heartbeat_s`` with ``If-Match: <its last ETag>``, and a stale lock (heartbeat older than
    ``stale_s`` by the reader's clock) is taken over with ``If-Match: <the ETag read>`` — so of two
    writers racing for a fresh or a stale lock exactly one succeeds, and a holder that was taken
    over finds out at its next heartbeat. Clocks of different hosts must agree to well within
    ``stale_s``. Other fsspec filesystems offer no conditional write through fsspec: there the lock
    is check-then-act (two writers starting within the same second on two machines could both
    pass), and each heartbeat reads the lock back and notices a takeover.

    A holder whose remote heartbeat fails (taken over, removed, or not refreshed for
    ``stale_s - heartbeat_s``) has *lost* the lock: :meth:`check` raises :class:`StoreLockedError`,
    and writers call it between units so they stop instead of writing on under an expired lock.
    Leaving the ``with`` block normally also calls :meth:`check`, so a run that lost its lock never
    reports success. A local lock is lost only if someone removes its file by hand.

    On acquiring, the lock removes the zarr temporary files a killed writer left in a local store
    (:func:`nersemble_zarr.storage.leftovers.remove_leftovers`); their keys are in :attr:`removed_leftovers`.
    """

    def __init__(self, location: StoreLocation, operation: str = "convert", *,
                 stale_s: float = REMOTE_LOCK_STALE_S, heartbeat_s: float = REMOTE_LOCK_HEARTBEAT_S) -> None:
        if not 0 < heartbeat_s < stale_s:
            raise ValueError(f"heartbeat_s ({heartbeat_s}) must be > 0 and < stale_s ({stale_s})")
        self.location = location
        self.path = location.url.rstrip("/") + ".nersemble-zarr.lock"
        self.stale_s = float(stale_s)
        self.heartbeat_s = float(heartbeat_s)
        #: store-relative keys of the zarr temporary files removed when the lock was acquired
        self.removed_leftovers: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None  # local: the descriptor holding the flock
        self._etag: str | None = None  # remote (conditional): ETag of the lock object this holder wrote last
        self._last_ok = 0.0  # remote: time.monotonic() of the last successful write of the lock
        self._lost: str | None = None  # why the lock was lost (None while held)
        self._held = False
        self._owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                       "operation": operation, "token": uuid.uuid4().hex}

    # ------------------------------------------------------------------------------------ public API

    def acquire(self) -> "StoreLock":
        """Take the lock or raise :class:`StoreLockedError` naming the holder; then remove leftovers."""
        if self._held:
            raise RuntimeError(f"{self.path}: this StoreLock is already held")
        self._lost = None
        if self.location.is_local:
            self._acquire_local()
        else:
            self._acquire_remote()
        self._held = True
        if self.location.is_local:
            try:
                from .leftovers import remove_leftovers

                self.removed_leftovers = remove_leftovers(self.location)
            except BaseException:
                self.release()
                raise
        return self

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release` (even if since lost)."""
        return self._held

    def check(self) -> None:
        """Raise :class:`StoreLockedError` when this writer no longer holds the lock; call between units."""
        if not self._held:
            raise StoreLockedError(f"{self.location}: this writer does not hold the store lock {self.path}")
        if self._lost is None:
            if self.location.is_local:
                if not self._local_file_is_ours():
                    self._lost = f"the lock file {self.path} was removed or replaced while this writer held it"
            elif time.monotonic() - self._last_ok > self.stale_s - self.heartbeat_s:
                self._lost = (f"its heartbeat could not be written for {time.monotonic() - self._last_ok:.0f} s, "
                              f"so another writer may already treat it as stale (after {self.stale_s:.0f} s)")
        if self._lost is not None:
            raise StoreLockedError(
                f"{self.location}: this {self._owner['operation']} lost its store lock: {self._lost}; it stopped "
                f"writing. Make sure no other writer runs, then rerun the same command to resume (completed units "
                f"are kept, unfinished ones are redone)"
            )

    def refresh(self) -> None:
        """Write the heartbeat of a remote lock now (the heartbeat thread calls this every ``heartbeat_s``).

        Marks the lock lost (see :meth:`check`) when it was taken over or removed, or when writes have
        failed for ``stale_s - heartbeat_s``; other failures are retried at the next heartbeat.
        Nothing to do for a local lock.
        """
        if self.location.is_local or not self._held or self._lost is not None:
            return
        fs, lock_path = _remote_lock_path(self)
        try:
            if _conditional(fs):
                self._etag = _put_conditional(fs, lock_path, self._payload(), if_match=self._etag)
            else:
                holder = _read_remote(fs, lock_path)[0]
                if holder is None or holder.get("token") != self._owner["token"]:
                    raise _TakenOver()
                fs.pipe_file(lock_path, self._payload())
            self._last_ok = time.monotonic()
        except (_TakenOver, _PreconditionFailed, FileNotFoundError):
            self._lost = f"the lock object {self.path} was taken over or removed by someone else"
        except Exception:  # noqa: BLE001  transient (network): retried next beat; check() enforces the deadline
            if time.monotonic() - self._last_ok > self.stale_s - self.heartbeat_s:
                self._lost = f"its heartbeat could not be written to {self.path} for {self.stale_s - self.heartbeat_s:.0f} s"

    def release(self) -> None:
        """Give the lock up and remove the lock file (a lost lock's file belongs to someone else: kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.location.is_local:
            self._release_local()
        elif self._held and self._lost is None:
            self._release_remote()
        self._held = False

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self.check()
        finally:
            self.release()

    # ----------------------------------------------------------------------------------------- local

    def _acquire_local(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = self._read_local_holder()
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    self._refuse(holder)
                raise StoreLockedError(
                    f"{self.location}: cannot lock {self.path} ({os.strerror(e.errno or 0)}): the filesystem does not "
                    f"support flock; write the store on a local disk"
                ) from e
            self._fd = fd
            if self._local_file_is_ours():
                break
            # we locked a file its releasing holder had just unlinked: not the lock any more, try again
            self._fd = None
            os.close(fd)
        try:  # who holds it, for the message of a refused contender (informational only)
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._payload(), 0)
        except BaseException:
            self._release_local()
            raise

    def _local_file_is_ours(self) -> bool:
        if self._fd is None:
            return False
        try:
            return os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _read_local_holder(self) -> dict[str, Any]:
        """The holder's JSON; a holder that has just locked may not have written it yet: wait briefly."""
        for _ in range(20):
            try:
                with open(self.path) as f:
                    holder = json.load(f)
                if isinstance(holder, dict):
                    return holder
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
                pass
            time.sleep(0.01)
        return {}

    def _release_local(self) -> None:
        if self._fd is None:
            return
        try:
            if self._local_file_is_ours():
                os.unlink(self.path)  # while still locked: a contender that opened it retries on the new file
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None

    # ---------------------------------------------------------------------------------------- remote

    def _acquire_remote(self) -> None:
        fs, lock_path = _remote_lock_path(self)
        conditional = _conditional(fs)
        for _ in range(5):
            try:
                if conditional:
                    self._etag = _put_conditional(fs, lock_path, self._payload(), create=True)
                else:
                    if fs.exists(lock_path):
                        raise FileExistsError(lock_path)
                    fs.pipe_file(lock_path, self._payload())
            except FileExistsError:
                holder, etag = _read_remote(fs, lock_path)
                if holder is None:
                    continue  # released meanwhile: try the create again
                if time.time() - _heartbeat_of(holder) < self.stale_s:
                    self._refuse(holder)
                try:  # stale: take it over, only if it is still the object just read
                    if conditional:
                        self._etag = _put_conditional(fs, lock_path, self._payload(), if_match=etag)
                    else:
                        fs.pipe_file(lock_path, self._payload())
                except (_PreconditionFailed, FileNotFoundError):
                    continue  # someone else refreshed, took over or released it: look again
            if not conditional:  # best effort without conditional writes: read our own write back
                holder = _read_remote(fs, lock_path)[0]
                if holder is None or holder.get("token") != self._owner["token"]:
                    self._refuse(holder or {})
            break
        else:
            self._refuse(_read_remote(fs, lock_path)[0] or {})
        self._last_ok = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="store-lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.refresh()
            if self._lost is not None:
                return

    def _release_remote(self) -> None:
        fs, lock_path = _remote_lock_path(self)
        try:
            if _conditional(fs) and self._etag is not None:
                bucket, key, _ = fs.split_path(lock_path)
                fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=self._etag)
                fs.invalidate_cache(lock_path)
            else:
                holder = _read_remote(fs, lock_path)[0]
                if holder is not None and holder.get("token") == self._owner["token"]:
                    fs.rm_file(lock_path)
        except (FileNotFoundError, _PreconditionFailed):
            pass  # already gone, or someone else's lock now: not ours to delete

    # ---------------------------------------------------------------------------------------- common

    def _payload(self) -> bytes:
        return json.dumps({**self._owner, "heartbeat": time.time()}).encode()

    def _refuse(self, holder: dict[str, Any]) -> None:
        if not holder:
            raise StoreLockedError(
                f"{self.location}: another nersemble-zarr command is writing this store (it has just taken the lock "
                f"{self.path}); wait for it to finish"
            )
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0) or 0)))
        if self.location.is_local:
            hint = "the lock frees itself when that process exits"
        else:
            hint = (f"a lock not refreshed for {self.stale_s:.0f} s is taken over; remove {self.path} only if you "
                    f"are sure it is not running")
        raise StoreLockedError(
            f"{self.location}: another {holder.get('operation', 'nersemble-zarr command')} is writing this store "
            f"(host {holder.get('host')}, pid {holder.get('pid')}, since {started}); wait for it to finish ({hint})"
        )


class _TakenOver(Exception):
    """The remote lock object no longer carries this holder's token."""


class _PreconditionFailed(Exception):
    """A conditional write or delete found the object changed (HTTP 412)."""


def _remote_lock_path(lock: StoreLock) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(lock.path, **lock.location.storage_options)


def _conditional(fs: Any) -> bool:
    """True for filesystems whose writes we can make conditional (s3fs: If-None-Match / If-Match)."""
    try:
        import s3fs
    except ImportError:
        return False
    return isinstance(fs, s3fs.S3FileSystem)


def _put_conditional(fs: Any, path: str, data: bytes, *, create: bool = False, if_match: str | None = None) -> str:
    """Write ``data`` to ``path`` only if absent (``create``) or still at ETag ``if_match``; returns the new ETag.

    Raises FileExistsError (create, object exists), _PreconditionFailed (ETag changed),
    FileNotFoundError (if_match, object gone).
    """
    from botocore.exceptions import ClientError

    bucket, key, _ = fs.split_path(path)
    kwargs: dict[str, Any] = {"IfNoneMatch": "*"} if create else {"IfMatch": if_match}
    try:
        out = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **kwargs)
    except ClientError as e:  # pragma: no cover  s3fs translates errors; kept for other versions
        raise _translate(e) from e
    except OSError as e:
        raise _translate(e) from e
    finally:
        fs.invalidate_cache(path)
    return str(out["ETag"])


def _translate(e: BaseException) -> BaseException:
    """s3fs/botocore errors of conditional requests → FileExistsError / _PreconditionFailed / FileNotFoundError."""
    if isinstance(e, (FileExistsError, FileNotFoundError)):
        return e
    cause = e.__cause__ if e.__cause__ is not None else e
    response = getattr(cause, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code", ""))
    if code in ("PreconditionFailed", "412"):
        if error.get("Condition") == "If-None-Match":
            return FileExistsError(str(e))
        return _PreconditionFailed(str(e))
    if code in ("NoSuchKey", "404"):
        return FileNotFoundError(str(e))
    return e


def _read_remote(fs: Any, path: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(holder JSON, ETag)`` of the remote lock object; ``(None, None)`` when it is absent.

    The ETag is read before the content, so it never names a newer version than the content shows:
    a takeover conditional on it fails if the object changed after it was judged stale.
    """
    try:
        fs.invalidate_cache(path)
        etag = fs.info(path).get("ETag")
        raw = fs.cat_file(path)
    except FileNotFoundError:
        return None, None
    try:
        holder = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        holder = {}
    return (holder if isinstance(holder, dict) else {}), etag


def _heartbeat_of(holder: dict[str, Any]) -> float:
    try:
        return float(holder.get("heartbeat", 0))
    except (TypeError, ValueError):
        return 0.0

"""The per-file download engine: fetch relative paths below a base URL into a folder; resumable, atomic, verified.

It moves bytes and nothing else (like pooch's ``HTTPDownloader``): which files to fetch is
:mod:`.selection`'s business, what to tell the user (summary, exit code, progress bar, keeping the access URL
secret) :mod:`.report`'s, and :mod:`.run` ties them together for a benchmark. The engine knows no benchmark,
participant or asset, and no secret: it is handed a base URL, a folder and relative paths, and returns one
:class:`FileOutcome` per path (downloaded, skipped, not on the server, failed, denied, aborted) in a
:class:`FetchResult`. Its own errors are values, not exceptions; only bad arguments (``ValueError``) and the
user's Ctrl-C (``KeyboardInterrupt``) propagate. A reason (``FileOutcome.reason``) may quote the URL: redact it
before showing it (:class:`.report.Redactor`).

Protocol: ``<base URL>/<relative path>`` lands at ``<root>/<relative path>``. Each file is written to
``<name>.part`` (with a small ``<name>.part.json`` recording the size and validator the server announced) and
renamed to its final name only once its size equals the announced Content-Length, so a file under its final
name is always complete and is skipped without a request on the next run. An interrupted file resumes with an
HTTP ``Range`` request from the bytes already on disk; if the server's file changed in between (416, a
different total size, a failed ``If-Range``) it restarts cleanly. Connection errors, timeouts, 408/429 and 5xx
are retried with exponential backoff; 401/403 stop the whole call (the other files are aborted, their
``.part`` kept); 404 marks a file as not on the server.

A downloaded file is never spliced from two versions of the server's file: a resumed answer (206) is accepted
only when it carries the validator recorded in ``.part.json`` when the ``.part`` began (a strong ``ETag``, else a
``Last-Modified`` date old enough to be strong: at least 60 s before the response's ``Date``, RFC 9110
§8.8.2.2). Anything else (a server that ignores ``If-Range`` and sends the new version's bytes, a different or
a missing validator) restarts the file from byte 0. A ``.part`` whose version is unknown (no state file, or a
server that sends no strong validator) is not resumed at all but fetched again from byte 0, since a splice
could not be ruled out: resuming needs a server that sends validators.

State: a :class:`Downloader` holds only its settings. Everything one :meth:`Downloader.fetch` needs while it
runs (the abort flag, the HTTP sessions, the responses being read) belongs to that call and is dropped when it
returns, so two fetches (at the same time, or one after an aborted one) are independent. There is no
module-level mutable state.

Parallelism: a thread pool of its own (``workers`` GETs, :data:`HEAD_THREADS` HEADs), not
:func:`nersemble_zarr.jobs.runner.run_jobs`: downloads are I/O on one machine (worker processes or a cluster
would only add copies of the sessions), and on Ctrl-C the engine must shut down the sockets of the responses
being read so a silent server cannot hold the user for ``timeout`` seconds, whereas ``run_jobs`` lets running
jobs finish.
"""

from __future__ import annotations

import enum
import json
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from ...raw._atomic import write_atomic

DEFAULT_WORKERS = 8
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubles per failed attempt
MAX_BACKOFF = 60.0
DEFAULT_TIMEOUT = 60.0  # seconds to connect and between two received bytes
#: RFC 9110 §8.8.2.2: a Last-Modified date is a strong validator when at least this many seconds before Date.
STRONG_LAST_MODIFIED_AGE = 60.0
CHUNK_BYTES = 1 << 20
#: HEAD requests (sizes for the progress bar, early 404/403) carry no body: run them wider than ``workers``.
HEAD_THREADS = 16

PART_SUFFIX = ".part"
PART_STATE_SUFFIX = ".part.json"


class Status(str, enum.Enum):
    """What became of one file in one :meth:`Downloader.fetch`."""

    DOWNLOADED = "downloaded"  #: fetched (whole, or the rest of a ``.part``) and renamed into place
    SKIPPED = "skipped"  #: already complete locally (no request, or its size matched the server's)
    NOT_FOUND = "not_found"  #: 404 on the server
    FAILED = "failed"  #: given up on (``reason`` says why); a ``.part`` may be kept for a later resume
    DENIED = "denied"  #: 401/403: the base URL is not accepted; every other file of the call is aborted
    ABORTED = "aborted"  #: not finished because another file was denied (its ``.part`` kept)


@dataclass(frozen=True)
class FileOutcome:
    """One file's outcome: ``path`` (relative, ``/``-separated), ``status``, ``bytes_received`` in this call,
    ``reason`` (FAILED: why, one line; may quote the URL) and ``http_status`` (DENIED: 401 or 403)."""

    path: str
    status: Status
    bytes_received: int = 0
    reason: str = ""
    http_status: int | None = None


@dataclass(frozen=True)
class FetchResult:
    """The outcomes of one :meth:`Downloader.fetch`, one per distinct path in the order given, and its wall time
    in seconds."""

    outcomes: tuple[FileOutcome, ...]
    seconds: float = 0.0

    def paths(self, status: Status) -> list[str]:
        """The paths with ``status``, in the order given."""
        return [o.path for o in self.outcomes if o.status is status]

    @property
    def downloaded(self) -> list[str]:
        return self.paths(Status.DOWNLOADED)

    @property
    def skipped(self) -> list[str]:
        return self.paths(Status.SKIPPED)

    @property
    def not_found(self) -> list[str]:
        return self.paths(Status.NOT_FOUND)

    @property
    def failed(self) -> dict[str, str]:
        """Failed path → reason (not redacted)."""
        return {o.path: o.reason for o in self.outcomes if o.status is Status.FAILED}

    @property
    def denied(self) -> FileOutcome | None:
        """The first file the server refused with 401/403 (the call stopped there), or None."""
        return next((o for o in self.outcomes if o.status is Status.DENIED), None)

    @property
    def bytes_received(self) -> int:
        return sum(o.bytes_received for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """True when every file is downloaded, skipped or not on the server."""
        return all(o.status in (Status.DOWNLOADED, Status.SKIPPED, Status.NOT_FOUND) for o in self.outcomes)


class FetchProgress(Protocol):
    """Where a fetch reports its progress (e.g. :class:`.report.DownloadProgress`); called from worker threads.

    ``start(n_files)`` once, when the call has files to check or fetch; ``add_total(n)``: ``n`` more bytes to
    receive than announced so far (sizes arrive with HEAD and GET answers); ``update(n)``: ``n`` bytes received;
    ``file_done()``: one of the ``n_files`` has its outcome; ``close()`` at the end of the call.
    """

    def start(self, n_files: int) -> None: ...
    def add_total(self, n: int) -> None: ...
    def update(self, n: int) -> None: ...
    def file_done(self) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def start(self, n_files: int) -> None:
        pass

    def add_total(self, n: int) -> None:
        pass

    def update(self, n: int) -> None:
        pass

    def file_done(self) -> None:
        pass

    def close(self) -> None:
        pass


class Downloader:
    """Fetches relative paths below ``base_url`` into ``root``; holds only settings (reusable, thread-safe).

    ``workers`` files download in parallel; each is retried ``retries`` times after transient errors, waiting
    ``backoff`` seconds doubled per failure (at most :data:`MAX_BACKOFF`); ``timeout`` seconds to connect or
    receive more bytes. Files already complete locally are skipped without a request, or with ``check_sizes``
    compared by size against a HEAD request and downloaded again when they differ (files left incomplete by
    another downloader); ``overwrite`` downloads them again (replaced atomically once complete). Usable as a
    context manager (kept for callers that use it; a fetch opens and closes its own HTTP sessions).
    """

    def __init__(
        self,
        base_url: str,
        root: str | os.PathLike,
        *,
        workers: int = DEFAULT_WORKERS,
        overwrite: bool = False,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        check_sizes: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.root = Path(root)
        self.workers = workers
        self.overwrite = overwrite
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.check_sizes = check_sizes

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every fetch closes its own HTTP sessions."""

    def fetch(self, rel_paths: Sequence[str], *, progress: FetchProgress | None = None) -> FetchResult:
        """Download ``rel_paths`` (relative, ``/``-separated; duplicates once) into ``root``; see the module docstring.

        ``progress`` receives the bytes and files as they arrive. Returns a :class:`FetchResult` with one outcome
        per path. Raises ``ValueError`` for a path that is absolute or climbs out of ``root`` (before any request).
        On ``KeyboardInterrupt`` the sockets being read are shut down, the workers stop at once, the ``.part``
        files stay for a later resume and the interrupt propagates.
        """
        paths = list(dict.fromkeys(rel_paths))
        for rel in paths:
            if not rel or rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"not a relative path below the download folder: {rel!r}")
        for folder in sorted({(self.root / rel).parent for rel in paths}):
            _remove_state_leftovers(folder)
        return _Fetch(self, progress or _Silent()).run(paths)


# ---------------------------------------------------------------------------------------------
# One fetch call: all its state lives here and dies with it
# ---------------------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class _Head:
    """A HEAD answer: ``kind`` "size" (``size``: bytes, None when the server does not say), "not_found",
    "denied" (``status`` 401/403) or "aborted"."""

    kind: str
    size: int | None = None
    status: int | None = None


@dataclass(frozen=True)
class _Attempt:
    """One GET's result: ``kind`` "complete" (the ``.part`` holds the whole file), "transient" (retry after a
    backoff; ``progressed`` when it got further into the file than any attempt before), "restart" (the ``.part``
    belongs to another version: discard it), "permanent" (give up), "not_found", "denied" or "aborted"."""

    kind: str
    reason: str = ""
    progressed: bool = False
    status: int | None = None


@dataclass
class _FileState:
    """One file's download in progress: its ``.part`` and state paths, size expected from HEAD,
    bytes received in this call and how many of them the progress total already counts."""

    part: Path
    state: Path
    expected: int | None
    received: int = 0
    accounted: int = 0
    furthest: int = 0  # the furthest byte any attempt reached: only getting past it counts as progress


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class _Fetch:
    """The state of one :meth:`Downloader.fetch`: abort flag, HTTP sessions, responses in flight, progress."""

    def __init__(self, d: Downloader, progress: FetchProgress) -> None:
        self.d = d
        self.progress = progress
        self.abort = threading.Event()  # set on 401/403 or Ctrl-C: every worker stops at its next step
        self.head_unreachable = threading.Event()  # a HEAD could not connect: the others would only wait too
        self.lock = threading.Lock()
        self.sessions: list[Any] = []
        self.free: list[Any] = []
        self.inflight: set[Any] = set()

    # -- the call ------------------------------------------------------------------------------

    def run(self, paths: list[str]) -> FetchResult:
        start = time.monotonic()
        d = self.d
        outcomes: dict[str, FileOutcome] = {}
        todo: list[str] = []
        present: list[str] = []
        for rel in paths:
            if not d.overwrite and (d.root / rel).is_file():
                if d.check_sizes:
                    present.append(rel)
                else:
                    outcomes[rel] = FileOutcome(rel, Status.SKIPPED)
            else:
                todo.append(rel)
        if todo or present:
            self.progress.start(len(todo) + len(present))
            try:
                for rel, head in self._map(self._head, present, HEAD_THREADS, outcomes).items():
                    if head.kind == "denied":
                        self._finish(outcomes, FileOutcome(rel, Status.DENIED, http_status=head.status))
                    elif head.kind == "size" and head.size is not None and head.size != _size(d.root / rel):
                        todo.append(rel)  # replaced atomically once the new copy is complete
                    elif head.kind != "aborted":  # same size, size unknown or gone from the server: keep it
                        self._finish(outcomes, FileOutcome(rel, Status.SKIPPED))
                sizes: dict[str, int | None] = {}
                for rel, head in self._map(self._head, todo, HEAD_THREADS, outcomes).items():
                    if head.kind == "denied":
                        self._finish(outcomes, FileOutcome(rel, Status.DENIED, http_status=head.status))
                    elif head.kind == "not_found":
                        self._finish(outcomes, FileOutcome(rel, Status.NOT_FOUND))
                    elif head.kind == "size":
                        sizes[rel] = head.size
                accounted = {rel: self._still_needed(rel, size) for rel, size in sizes.items()}
                self.progress.add_total(sum(accounted.values()))
                remaining = [rel for rel in todo if rel in sizes]
                fetched = self._map(lambda rel: self._fetch_file(rel, sizes[rel], accounted[rel]), remaining,
                                    d.workers, outcomes)
                for outcome in fetched.values():
                    self._finish(outcomes, outcome)
            finally:
                self.progress.close()
                self._close_sessions()
        result = tuple(outcomes.get(rel) or FileOutcome(rel, Status.ABORTED) for rel in paths)
        return FetchResult(result, time.monotonic() - start)

    def _finish(self, outcomes: dict[str, FileOutcome], outcome: FileOutcome) -> None:
        outcomes[outcome.path] = outcome
        if outcome.status is Status.DENIED:
            self.abort.set()
        if outcome.status not in (Status.DENIED, Status.ABORTED):
            self.progress.file_done()

    def _map(self, job: Callable[[str], T], rels: list[str], threads: int,
             outcomes: dict[str, FileOutcome]) -> dict[str, T]:
        """``job(rel)`` for every path on a pool of ``threads``, in the order given; a job that raised becomes a
        FAILED outcome (in ``outcomes``); jobs not started when the call aborts are dropped."""
        results: dict[str, T] = {}
        if self.abort.is_set() or not rels:
            return results
        pool = ThreadPoolExecutor(max_workers=min(threads, len(rels)), thread_name_prefix="download")
        try:
            pending: dict[Future, str] = {pool.submit(job, rel): rel for rel in rels}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    rel = pending.pop(fut)
                    if fut.cancelled():
                        continue
                    try:
                        results[rel] = fut.result()
                    except Exception as e:  # noqa: BLE001 -- a bug or a local disk error: this file failed, not all
                        self._finish(outcomes, FileOutcome(rel, Status.FAILED, reason=f"{type(e).__name__}: {e}"))
                if self.abort.is_set():
                    for fut in pending:
                        fut.cancel()
        except BaseException:  # KeyboardInterrupt: stop workers now, even those waiting on a silent server
            self.abort.set()
            self._interrupt_inflight()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return {rel: results[rel] for rel in rels if rel in results}

    def _interrupt_inflight(self) -> None:
        """Shut down the sockets of responses being read so their workers stop at once (``.part`` kept)."""
        with self.lock:
            responses = list(self.inflight)
        for resp in responses:
            sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- HTTP sessions -------------------------------------------------------------------------

    @contextmanager
    def _client(self) -> Iterator[Any]:
        """Borrow an HTTP session (one connection, kept alive across this call's files) for one request."""
        with self.lock:
            session = self.free.pop() if self.free else None
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            session.headers["Accept-Encoding"] = "identity"  # Range and Content-Length refer to the file's bytes
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            with self.lock:
                self.sessions.append(session)
        try:
            yield session
        finally:
            with self.lock:
                self.free.append(session)

    def _close_sessions(self) -> None:
        with self.lock:
            sessions, self.sessions, self.free = self.sessions, [], []
        for s in sessions:
            s.close()

    def _url(self, rel: str) -> str:
        return f"{self.d.base_url}/{quote(rel, safe='/+')}"  # "+" literal, as the official toolkit sends it

    # -- per file ------------------------------------------------------------------------------

    def _head(self, rel: str) -> _Head:
        """The file's size from a HEAD request (None when the server does not say), or why there is none."""
        import requests

        if self.abort.is_set():
            return _Head("aborted")
        if self.head_unreachable.is_set():
            return _Head("size")
        try:
            with self._client() as session:
                resp = session.head(self._url(rel), timeout=self.d.timeout, allow_redirects=True)
        except requests.RequestException:
            # the GETs retry with backoff and report; the other HEADs would only wait for the same failure
            self.head_unreachable.set()
            return _Head("size")
        with resp:
            if resp.status_code in (401, 403):
                self.abort.set()
                return _Head("denied", status=resp.status_code)
            if resp.status_code == 404:
                return _Head("not_found")
            length = resp.headers.get("Content-Length")
            return _Head("size", int(length) if resp.status_code == 200 and length and length.isdigit() else None)

    def _still_needed(self, rel: str, size: int | None) -> int:
        """Bytes still to fetch for ``rel`` given the server's ``size`` and a resumable ``.part`` (0 if unknown)."""
        if size is None:
            return 0
        dest = self.d.root / rel
        state = _read_state(dest.with_name(dest.name + PART_STATE_SUFFIX))
        resumable = not self.d.overwrite and state is not None and bool(state.get("validator"))
        return max(0, size - (_size(dest.with_name(dest.name + PART_SUFFIX)) if resumable else 0))

    def _fetch_file(self, rel: str, expected: int | None, accounted: int) -> FileOutcome:
        """Fetch one file: attempts, retries with backoff and restarts until it is complete or given up on."""
        d = self.d
        dest = d.root / rel
        ctx = _FileState(
            part=dest.with_name(dest.name + PART_SUFFIX), state=dest.with_name(dest.name + PART_STATE_SUFFIX),
            expected=expected, accounted=accounted,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        if d.overwrite:
            _discard(ctx.part, ctx.state)
        failures = restarts = 0
        while True:
            if self.abort.is_set():
                return FileOutcome(rel, Status.ABORTED, ctx.received)
            with self._client() as session:
                attempt = self._attempt(session, rel, ctx)
            if attempt.kind == "complete":
                # state first: a kill in between leaves a complete .part without state, fetched again (no litter)
                ctx.state.unlink(missing_ok=True)
                os.replace(ctx.part, dest)
                return FileOutcome(rel, Status.DOWNLOADED, ctx.received)
            if attempt.kind == "restart":
                restarts += 1
                _discard(ctx.part, ctx.state)
                ctx.expected = None
                if restarts > d.retries:
                    return FileOutcome(rel, Status.FAILED, ctx.received,
                                       f"gave up after {restarts} restarts: {attempt.reason}")
                continue
            if attempt.kind == "transient":
                if self.abort.is_set():
                    return FileOutcome(rel, Status.ABORTED, ctx.received)
                failures = 1 if attempt.progressed else failures + 1
                if failures > d.retries:
                    return FileOutcome(rel, Status.FAILED, ctx.received,
                                       f"gave up after {failures} attempts: {attempt.reason}")
                delay = min(MAX_BACKOFF, d.backoff * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                if self.abort.wait(delay):
                    return FileOutcome(rel, Status.ABORTED, ctx.received)
                continue
            if attempt.kind == "permanent":
                return FileOutcome(rel, Status.FAILED, ctx.received, attempt.reason)
            if attempt.kind == "not_found":
                return FileOutcome(rel, Status.NOT_FOUND, ctx.received)
            if attempt.kind == "denied":
                self.abort.set()
                return FileOutcome(rel, Status.DENIED, ctx.received, http_status=attempt.status)
            return FileOutcome(rel, Status.ABORTED, ctx.received)

    def _attempt(self, session: Any, rel: str, ctx: _FileState) -> _Attempt:
        """One GET: resume ``ctx.part`` from its size, verify, leave it complete (the caller renames it)."""
        import requests

        offset = _size(ctx.part)
        state = _read_state(ctx.state) if offset else None
        if offset and not (state and state.get("validator")):
            # nothing proves these bytes belong to the server's current version: never resume them
            _discard(ctx.part, ctx.state)
            offset, state = 0, None
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = state["validator"]
        try:
            resp = session.get(self._url(rel), headers=headers, stream=True, timeout=self.d.timeout)
        except requests.Timeout as e:
            return _Attempt("transient", f"timed out: {e}")
        except requests.ConnectionError as e:
            return _Attempt("transient", f"connection failed: {e}")
        except requests.RequestException as e:
            return _Attempt("permanent", f"request failed: {type(e).__name__}: {e}")
        with self.lock:
            self.inflight.add(resp)
        try:
            return self._read_response(resp, ctx, offset, state)
        finally:
            with self.lock:
                self.inflight.discard(resp)

    def _read_response(self, resp: Any, ctx: _FileState, offset: int, state: dict[str, Any] | None) -> _Attempt:
        """Check ``resp``'s status and headers against the ``.part`` of ``offset`` bytes, then stream its body."""
        import requests
        import urllib3

        known_size = state.get("size") if state else ctx.expected
        with resp:
            status = resp.status_code
            if status in (401, 403):
                return _Attempt("denied", status=status)
            if status == 404:
                return _Attempt("not_found")
            if status == 416:
                m = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
                if m and int(m.group(1)) == offset and known_size in (None, offset):
                    return _Attempt("complete")  # the .part already holds the whole file (stopped before its rename)
                return _Attempt("restart", f"server rejected resuming at byte {offset} (HTTP 416): the file got shorter")
            if status in (408, 429) or status >= 500:
                return _Attempt("transient", f"HTTP {status}")
            encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                return _Attempt("permanent", f"server sent the file {encoding}-encoded although asked for identity")
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if status == 200:
                start, total = 0, length
            elif status == 206:
                content_range = resp.headers.get("Content-Range", "")
                m = _CONTENT_RANGE.fullmatch(content_range.strip())
                if not m or int(m.group(1)) != offset:
                    return _Attempt("restart", f"server answered a range request from byte {offset} with "
                                               f"Content-Range {content_range!r}")
                start, total = offset, (None if m.group(3) == "*" else int(m.group(3)))
                # a server that ignores If-Range answers with the current version's bytes: only the
                # version the .part began with may be appended to it
                recorded, now = (state or {}).get("validator"), _validator(resp.headers)
                if start and now != recorded:
                    return _Attempt("restart", f"the server's file changed since the download began (validator "
                                               f"{recorded!r} then, {now!r} now) and it sent a range of the new version")
            else:
                return _Attempt("permanent", f"unexpected HTTP {status}")
            if start and known_size is not None and total is not None and total != known_size:
                return _Attempt("restart", f"file changed on the server: {known_size} bytes before, {total} now")
            if total is not None:
                # bytes this call receives for the file in all: so far plus what this response brings
                need = ctx.received + total - start
                if need > ctx.accounted:
                    self.progress.add_total(need - ctx.accounted)
                    ctx.accounted = need
            with open(ctx.part, "r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                progressed = False  # set per chunk: True once this attempt got further into the file than any before
                if start == 0:
                    # after the truncation: a .part never meets the state of another version
                    _write_state(ctx.state, {"size": total, "validator": _validator(resp.headers)})
                size = start
                while True:
                    if self.abort.is_set():
                        return _Attempt("aborted")
                    try:
                        # read1: whatever has arrived (up to CHUNK_BYTES) goes to disk at once, so a
                        # killed process leaves every received byte in the .part
                        chunk = resp.raw.read1(CHUNK_BYTES, decode_content=False)
                    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                        return _Attempt("transient", f"connection broke after {size} of {total or '?'} bytes: "
                                                     f"{type(e).__name__}", progressed=progressed)
                    if not chunk:
                        break
                    f.write(chunk)
                    f.flush()
                    size += len(chunk)
                    progressed = size > ctx.furthest
                    ctx.furthest = max(ctx.furthest, size)
                    ctx.received += len(chunk)
                    self.progress.update(len(chunk))
                if total is not None and size < total:
                    return _Attempt("transient", f"connection closed after {size} of {total} bytes",
                                    progressed=progressed)
                if total is not None and size > total:
                    return _Attempt("restart", f"received {size} bytes, more than the announced {total}")
                os.fsync(f.fileno())
        return _Attempt("complete")


# ---------------------------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _validator(headers: Any) -> str | None:
    """The strong validator of a response: its ``ETag`` unless weak (``W/``), else its ``Last-Modified``
    when that is at least :data:`STRONG_LAST_MODIFIED_AGE` seconds before its ``Date`` (a date any
    closer could stand for two versions written within one second); None when it has neither."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    modified, date = (headers.get("Last-Modified") or "").strip(), (headers.get("Date") or "").strip()
    if not modified or not date:
        return None
    try:
        age = (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):  # unparsable, or naive vs aware dates
        return None
    return modified if age >= STRONG_LAST_MODIFIED_AGE else None


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _write_state(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(state).encode())


def _remove_state_leftovers(folder: Path) -> None:
    """Remove the temporary files of ``.part.json`` writes (``.<name>.part.json.<hex>.tmp``) that a killed or
    interrupted fetch left in ``folder`` (a worker thread stopped between write and rename)."""
    try:
        for leftover in folder.glob(f".*{PART_STATE_SUFFIX}.*.tmp"):
            leftover.unlink(missing_ok=True)
    except OSError:
        pass  # an unreadable folder fails later, with its file named


#: Names that lived here before the engine was split from the benchmark download (#11 point 5): where they are now.
_MOVED = MappingProxyType({
    "download_benchmark": ".run", "AccessDeniedError": ".report", "DownloadError": ".report",
    "DownloadReport": ".report", "format_bytes": ".report",
})


def __getattr__(name: str) -> Any:
    """Old import paths (``from ...download.engine import download_benchmark``) keep working; import these from
    :mod:`nersemble_zarr.pipelines.download` instead. The engine itself uses none of them."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name], __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

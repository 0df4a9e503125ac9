"""Download the benchmark from the access URL: parallel, resumable, atomic, verified.

Server layout = raw layout: ``<access URL>/<benchmark>/<relative path>`` lands at
``<raw root>/<benchmark>/<relative path>``. Each file is written to ``<name>.part`` (with a small
``<name>.part.json`` recording the size and validator the server announced) and renamed to its
final name only once its size equals the announced Content-Length, so a file under its final
name is always complete and is skipped without a request on the next run. An interrupted file
resumes with an HTTP ``Range`` request from the bytes already on disk; if the server's file
changed in between (416, a different total size, a failed ``If-Range``) it restarts cleanly.
Connection errors, timeouts, 408/429 and 5xx are retried with exponential backoff; 401/403 stop
everything ("access URL rejected"); 404 marks a file as not on the server.

A downloaded file is never spliced from two versions of the server's file: a resumed answer (206)
is accepted only when it carries the validator recorded in ``.part.json`` when the ``.part`` began
(a strong ``ETag``, else a ``Last-Modified`` date old enough to be strong: at least 60 s before the
response's ``Date``, RFC 9110 §8.8.2.2). Anything else (a server that ignores ``If-Range`` and sends
the new version's bytes, a different or a missing validator) restarts the file from byte 0. A
``.part`` whose version is unknown (no state file, or a server that sends no strong validator) is
not resumed at all but fetched again from byte 0, since a splice could not be ruled out: resuming
needs a server that sends validators.

The access URL is a secret: no message, report or file written here contains it; paths are
shown as ``<NERSEMBLE_BENCHMARK_URL>/<benchmark>/<relative path>``.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .selection import POINTCLOUDS, PointcloudFrames, resolve_assets, resolve_participants, select_files
from ...core.benchmark import ACCESS_FORM_URL, get_benchmark, metadata_path
from ...core.config import URL_ENV_VAR, URL_PLACEHOLDER, access_url, env_file
from ...core.errors import ConfigError, NersembleZarrError
from ...raw._atomic import write_atomic

DEFAULT_WORKERS = 8
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubles per failed attempt
MAX_BACKOFF = 60.0
DEFAULT_TIMEOUT = 60.0  # seconds to connect and between two received bytes
#: RFC 9110 §8.8.2.2: a Last-Modified date is a strong validator when at least this many seconds before Date.
STRONG_LAST_MODIFIED_AGE = 60.0
CHUNK_BYTES = 1 << 20
#: HEAD requests (sizes for the progress bar, early 404/403) carry no body: run them wider than --workers.
HEAD_THREADS = 16

PART_SUFFIX = ".part"
PART_STATE_SUFFIX = ".part.json"


class DownloadError(NersembleZarrError):
    """A download that cannot go on (metadata missing, unreadable local files)."""


class AccessDeniedError(DownloadError):
    """The server answered 401/403: the access URL is wrong or expired. Carries the report so far."""

    def __init__(self, message: str, report: DownloadReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class DownloadReport:
    """What one download did, by relative path (below ``<raw root>/<benchmark>/``).

    ``downloaded``: fetched (fully or the rest of a ``.part``) and renamed into place;
    ``skipped``: already complete locally, not requested; ``not_found``: 404 on the server;
    ``failed``: path → reason (already redacted). ``bytes_downloaded`` counts bytes received in
    this run, ``seconds`` its wall time.
    """

    benchmark: str
    root: Path
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed (files missing on the server are not failures)."""
        return not self.failed

    @property
    def n_files(self) -> int:
        """Files of the selection accounted for (all four outcomes)."""
        return len(self.downloaded) + len(self.skipped) + len(self.not_found) + len(self.failed)

    def merge(self, other: DownloadReport) -> DownloadReport:
        """This report extended by ``other`` (same benchmark and root), returned for chaining."""
        self.downloaded += other.downloaded
        self.skipped += other.skipped
        self.not_found += other.not_found
        self.failed.update(other.failed)
        self.bytes_downloaded += other.bytes_downloaded
        self.seconds += other.seconds
        return self

    def summary_lines(self, max_listed: int = 10) -> list[str]:
        """A short human summary: one line per outcome, then the paths not on the server and the failures."""
        rate = self.bytes_downloaded / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"downloaded:    {_files(self.downloaded)}, {format_bytes(self.bytes_downloaded)} in "
            f"{self.seconds:.1f} s ({format_bytes(rate)}/s) into {self.root}",
            f"skipped:       {_files(self.skipped)} already complete",
            f"not on server: {_files(self.not_found)}",
            f"failed:        {_files(self.failed)}",
        ]
        for path in self.not_found[:max_listed]:
            lines.append(f"  not on server: {self._shown(path)}")
        if len(self.not_found) > max_listed:
            lines.append(f"  … and {len(self.not_found) - max_listed} more not on server")
        for path, reason in list(self.failed.items())[:max_listed]:
            lines.append(f"  failed: {self._shown(path)}: {reason}")
        if len(self.failed) > max_listed:
            lines.append(f"  … and {len(self.failed) - max_listed} more failed")
        return lines

    def _shown(self, path: str) -> str:
        return f"{URL_PLACEHOLDER}/{self.benchmark}/{path}"


def _files(items: Sized) -> str:
    return f"{len(items)} file" + ("" if len(items) == 1 else "s")


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def download_benchmark(
    raw_root: str | os.PathLike,
    benchmark: str,
    *,
    participants: Iterable[int] | None = None,
    assets: str | Iterable[str] = "all",
    pointcloud_frames: PointcloudFrames = "first",
    workers: int = DEFAULT_WORKERS,
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
    check_sizes: bool = False,
    url: str | None = None,
) -> DownloadReport:
    """Download a selection of ``benchmark`` into ``<raw_root>/<benchmark>/`` in the official layout.

    ``metadata.json`` is fetched first and kept (later validation and conversion work offline; the
    NVS point-cloud timesteps come from it). The selection (see
    :func:`nersemble_zarr.pipelines.download.selection.select_files`) is validated before any request. ``workers`` files
    download in parallel; each is retried ``retries`` times after transient errors, waiting
    ``backoff`` seconds doubled per failure; ``timeout`` seconds to connect or receive more bytes;
    ``check_sizes``: see :class:`Downloader`. ``url`` defaults to the configured access URL
    (:func:`nersemble_zarr.core.config.access_url`). Returns the :class:`DownloadReport`; raises
    :class:`AccessDeniedError` on 401/403 and :class:`DownloadError` if ``metadata.json`` cannot be had.
    """
    b = get_benchmark(benchmark)
    chosen_assets = resolve_assets(b.name, assets)
    chosen_participants = resolve_participants(b.name, participants)
    base = (url or access_url()).rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise ConfigError(
            f"the access URL (${URL_ENV_VAR} or {env_file()}) is not an http(s):// URL; it is not shown "
            f"because it is a secret: check it against the one you received from {ACCESS_FORM_URL}"
        )
    root = Path(raw_root) / b.name
    with Downloader(
        f"{base}/{b.name}", root, benchmark=b.name, secret=base, workers=workers, overwrite=overwrite,
        retries=retries, backoff=backoff, timeout=timeout, progress=progress, check_sizes=check_sizes,
    ) as downloader:
        report = downloader.fetch([metadata_path()], progress=False)
        local_metadata = root / metadata_path()
        if not local_metadata.is_file():
            reason = report.failed.get(metadata_path(), "not on the server (HTTP 404)")
            raise DownloadError(
                f"cannot download {URL_PLACEHOLDER}/{b.name}/{metadata_path()}: {reason}; nothing else was fetched"
            )
        metadata = _load_json(local_metadata) if POINTCLOUDS in chosen_assets else None
        files = select_files(
            b.name, participants=chosen_participants, assets=chosen_assets,
            pointcloud_frames=pointcloud_frames, metadata=metadata,
        )
        try:
            return report.merge(downloader.fetch(files))
        except AccessDeniedError as e:
            raise AccessDeniedError(str(e), report.merge(e.report) if e.report else report) from None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DownloadError(f"cannot read {path}: {e}; delete it and download again") from None


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class _Transient(Exception):
    """Retry this file after a backoff; ``progressed`` when bytes arrived before the failure."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class _Restart(Exception):
    """The partial file does not belong to the server's current file: discard it and start over."""


class _Permanent(Exception):
    """Give up on this file (an HTTP status no retry will change)."""


class _NotFound(Exception):
    pass


class _Denied(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Aborted(Exception):
    """Another worker hit 401/403 or the user interrupted: stop, keep the ``.part`` for a later resume."""


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class Downloader:
    """Fetches relative paths below ``base_url`` into ``root`` with a thread pool; reusable across batches.

    ``secret`` is the text that must never be shown (defaults to ``base_url``): every message is
    redacted against it, its URL-quoted form and its path. Files already complete locally are
    skipped without a request, or with ``check_sizes`` compared by size against a HEAD request and
    downloaded again when they differ (files left incomplete by another downloader). Use as a
    context manager (closes the HTTP sessions).
    """

    def __init__(
        self,
        base_url: str,
        root: str | os.PathLike,
        *,
        benchmark: str = "",
        secret: str | None = None,
        workers: int = DEFAULT_WORKERS,
        overwrite: bool = False,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        progress: bool = True,
        check_sizes: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.root = Path(root)
        self.benchmark = benchmark
        self.workers = workers
        self.overwrite = overwrite
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.progress = progress
        self.check_sizes = check_sizes
        self._secrets = _secret_forms(secret or self.base_url)
        self._placeholder = f"{URL_PLACEHOLDER}/{benchmark}" if benchmark else URL_PLACEHOLDER
        self._sessions: list[Any] = []
        self._free: list[Any] = []
        self._inflight: set[Any] = set()
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._head_unreachable = threading.Event()
        self._denied: str | None = None
        self._bar: _Progress | None = None

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every HTTP session the workers opened."""
        with self._lock:
            sessions, self._sessions, self._free = self._sessions, [], []
        for s in sessions:
            s.close()

    # -- public ----------------------------------------------------------------------------

    def fetch(self, rel_paths: Sequence[str], *, progress: bool | None = None) -> DownloadReport:
        """Download ``rel_paths`` (relative, ``/``-separated) into ``root``; see the module docstring.

        ``progress`` overrides the downloader's setting for this batch. Raises
        :class:`AccessDeniedError` (with the report so far) on 401/403; on
        KeyboardInterrupt the workers stop at their next chunk, leaving resumable ``.part`` files.
        """
        start = time.monotonic()
        report = DownloadReport(self.benchmark, self.root)
        self._head_unreachable.clear()
        todo: list[str] = []
        present: list[str] = []
        for rel in dict.fromkeys(rel_paths):
            if rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"not a relative path below the benchmark folder: {rel!r}")
            if not self.overwrite and (self.root / rel).is_file():
                (present if self.check_sizes else report.skipped).append(rel)
            else:
                todo.append(rel)
        if todo or present:
            show = self.progress if progress is None else progress
            self._bar = _Progress(len(todo) + len(present), show, desc=f"download {self.benchmark}".strip())
            try:
                if present:
                    server_sizes = self._run(self._head_present, present, report, HEAD_THREADS)
                    for rel in present:
                        size = server_sizes.get(rel)
                        if size is not None and size != _size(self.root / rel):
                            todo.append(rel)  # replaced atomically once the new copy is complete
                        elif rel in server_sizes:
                            report.skipped.append(rel)
                            self._bar.file_done()
                sizes = self._run(self._head, todo, report, HEAD_THREADS)
                accounted = {rel: self._still_needed(rel, size) for rel, size in sizes.items()}
                self._bar.add_total(sum(accounted.values()))
                remaining = [rel for rel in todo if rel in sizes]
                self._run(lambda rel: self._fetch_file(rel, sizes[rel], accounted[rel]), remaining, report)
            finally:
                self._bar.close()
                self._bar = None
        report.seconds = time.monotonic() - start
        if self._denied is not None:
            raise AccessDeniedError(self._denied, report)
        return report

    # -- scheduling ------------------------------------------------------------------------

    def _run(self, job: Any, rels: list[str], report: DownloadReport, threads: int | None = None) -> dict[str, Any]:
        """Run ``job(rel)`` on a pool of ``threads`` (default ``workers``); returns rel → result for
        files still to do and records the others in ``report``."""
        results: dict[str, Any] = {}
        if self._abort.is_set() or not rels:
            return results
        threads = min(threads or self.workers, len(rels))
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="download")
        try:
            pending: dict[Future, str] = {pool.submit(job, rel): rel for rel in rels}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    rel = pending.pop(fut)
                    self._record(rel, fut, report, results)
                if self._abort.is_set():
                    for fut in pending:
                        fut.cancel()
        except BaseException:  # KeyboardInterrupt: stop workers now, even those waiting on a silent server
            self._abort.set()
            self._interrupt_inflight()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def _interrupt_inflight(self) -> None:
        """Shut down the sockets of responses being read so their workers stop at once (``.part`` kept)."""
        with self._lock:
            responses = list(self._inflight)
        for resp in responses:
            sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _record(self, rel: str, fut: Future, report: DownloadReport, results: dict[str, Any]) -> None:
        if fut.cancelled():
            return
        try:
            value = fut.result()
        except _NotFound:
            report.not_found.append(rel)
            self._bar.file_done()
        except _Denied as e:
            if self._denied is None:
                self._denied = (
                    f"access URL rejected (HTTP {e.status} for {self._placeholder}/{rel}): check the URL in "
                    f"${URL_ENV_VAR} or {env_file()}, or request a new one at {ACCESS_FORM_URL} ; "
                    f"rerun the same command to resume"
                )
            self._abort.set()
        except _Aborted:
            pass
        except Exception as e:  # noqa: BLE001 -- one file's failure must not stop the others
            report.failed[rel] = self._redact(f"{type(e).__name__}: {e}" if not isinstance(e, _Permanent) else str(e))
            self._bar.file_done()
        else:
            if isinstance(value, _Done):
                report.downloaded.append(rel)
                report.bytes_downloaded += value.received
                self._bar.file_done()
            else:
                results[rel] = value

    # -- per file --------------------------------------------------------------------------

    @contextmanager
    def _client(self) -> Iterator[Any]:
        """Borrow an HTTP session (one connection, kept alive across files and passes) for one request."""
        with self._lock:
            session = self._free.pop() if self._free else None
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            session.headers["Accept-Encoding"] = "identity"  # Range and Content-Length refer to the file's bytes
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            with self._lock:
                self._sessions.append(session)
        try:
            yield session
        finally:
            with self._lock:
                self._free.append(session)

    def _url(self, rel: str) -> str:
        return f"{self.base_url}/{quote(rel, safe='/+')}"  # "+" literal, as the official toolkit sends it

    def _head_present(self, rel: str) -> int | None:
        """Server size of a file already present locally (None: unknown or gone from the server: keep it)."""
        try:
            return self._head(rel)
        except _NotFound:
            return None

    def _head(self, rel: str) -> int | None:
        """The file's size from a HEAD request (None when the server does not say); 404/401/403 as in GET."""
        import requests

        if self._abort.is_set():
            raise _Aborted()
        if self._head_unreachable.is_set():
            return None
        try:
            with self._client() as session:
                resp = session.head(self._url(rel), timeout=self.timeout, allow_redirects=True)
        except requests.RequestException:
            # the GETs retry with backoff and report; the other HEADs would only wait for the same failure
            self._head_unreachable.set()
            return None
        with resp:
            if resp.status_code in (401, 403):
                raise _Denied(resp.status_code)
            if resp.status_code == 404:
                raise _NotFound()
            length = resp.headers.get("Content-Length")
            return int(length) if resp.status_code == 200 and length and length.isdigit() else None

    def _still_needed(self, rel: str, size: int | None) -> int:
        """Bytes still to fetch for ``rel`` given the server's ``size`` and a resumable ``.part`` (0 if unknown)."""
        if size is None:
            return 0
        dest = self.root / rel
        state = _read_state(dest.with_name(dest.name + PART_STATE_SUFFIX))
        resumable = not self.overwrite and state is not None and bool(state.get("validator"))
        return max(0, size - (_size(dest.with_name(dest.name + PART_SUFFIX)) if resumable else 0))

    def _fetch_file(self, rel: str, expected: int | None, accounted: int) -> _Done:
        dest = self.root / rel
        ctx = _FileState(
            part=dest.with_name(dest.name + PART_SUFFIX), state=dest.with_name(dest.name + PART_STATE_SUFFIX),
            expected=expected, accounted=accounted,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            _discard(ctx.part, ctx.state)
        failures = restarts = 0
        while True:
            if self._abort.is_set():
                raise _Aborted()
            try:
                with self._client() as session:
                    self._attempt(session, rel, ctx)
            except _Restart as e:
                restarts += 1
                _discard(ctx.part, ctx.state)
                ctx.expected = None
                if restarts > self.retries:
                    raise _Permanent(f"gave up after {restarts} restarts: {e}") from None
                continue
            except _Transient as e:
                if self._abort.is_set():
                    raise _Aborted() from None
                failures = 1 if e.progressed else failures + 1
                if failures > self.retries:
                    raise _Permanent(f"gave up after {failures} attempts: {self._redact(str(e))}") from None
                delay = min(MAX_BACKOFF, self.backoff * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                if self._abort.wait(delay):
                    raise _Aborted() from None
                continue
            # state first: a kill in between leaves a complete .part without state, fetched again (no litter)
            ctx.state.unlink(missing_ok=True)
            os.replace(ctx.part, dest)
            return _Done(ctx.received)

    def _attempt(self, session: Any, rel: str, ctx: _FileState) -> None:
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
            resp = session.get(self._url(rel), headers=headers, stream=True, timeout=self.timeout)
        except requests.Timeout as e:
            raise _Transient(f"timed out: {e}") from None
        except requests.ConnectionError as e:
            raise _Transient(f"connection failed: {e}") from None
        except requests.RequestException as e:
            raise _Permanent(f"request failed: {type(e).__name__}: {self._redact(str(e))}") from None
        with self._lock:
            self._inflight.add(resp)
        try:
            self._read_response(resp, ctx, offset, state)
        finally:
            with self._lock:
                self._inflight.discard(resp)

    def _read_response(self, resp: Any, ctx: _FileState, offset: int, state: dict[str, Any] | None) -> None:
        """Check ``resp``'s status and headers against the ``.part`` of ``offset`` bytes, then stream its body."""
        import requests
        import urllib3

        known_size = state.get("size") if state else ctx.expected
        with resp:
            status = resp.status_code
            if status in (401, 403):
                raise _Denied(status)
            if status == 404:
                raise _NotFound()
            if status == 416:
                m = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
                if m and int(m.group(1)) == offset and known_size in (None, offset):
                    return  # the .part already holds the whole file (stopped before its rename)
                raise _Restart(f"server rejected resuming at byte {offset} (HTTP 416): the file got shorter")
            if status in (408, 429) or status >= 500:
                raise _Transient(f"HTTP {status}")
            encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _Permanent(f"server sent the file {encoding}-encoded although asked for identity")
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if status == 200:
                start, total = 0, length
            elif status == 206:
                content_range = resp.headers.get("Content-Range", "")
                m = _CONTENT_RANGE.fullmatch(content_range.strip())
                if not m or int(m.group(1)) != offset:
                    raise _Restart(f"server answered a range request from byte {offset} with "
                                   f"Content-Range {content_range!r}")
                start, total = offset, (None if m.group(3) == "*" else int(m.group(3)))
                # a server that ignores If-Range answers with the current version's bytes: only the
                # version the .part began with may be appended to it
                recorded, now = (state or {}).get("validator"), _validator(resp.headers)
                if start and now != recorded:
                    raise _Restart(f"the server's file changed since the download began (validator "
                                   f"{recorded!r} then, {now!r} now) and it sent a range of the new version")
            else:
                raise _Permanent(f"unexpected HTTP {status}")
            if start and known_size is not None and total is not None and total != known_size:
                raise _Restart(f"file changed on the server: {known_size} bytes before, {total} now")
            if total is not None:
                # bytes this run receives for the file in all: so far plus what this response brings
                need = ctx.received + total - start
                if need > ctx.accounted:
                    self._bar.add_total(need - ctx.accounted)
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
                    if self._abort.is_set():
                        raise _Aborted()
                    try:
                        # read1: whatever has arrived (up to CHUNK_BYTES) goes to disk at once, so a
                        # killed process leaves every received byte in the .part
                        chunk = resp.raw.read1(CHUNK_BYTES, decode_content=False)
                    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                        raise _Transient(f"connection broke after {size} of {total or '?'} bytes: "
                                         f"{type(e).__name__}", progressed=progressed) from None
                    if not chunk:
                        break
                    f.write(chunk)
                    f.flush()
                    size += len(chunk)
                    progressed = size > ctx.furthest
                    ctx.furthest = max(ctx.furthest, size)
                    ctx.received += len(chunk)
                    self._bar.update(len(chunk))
                if total is not None and size < total:
                    raise _Transient(f"connection closed after {size} of {total} bytes", progressed=progressed)
                if total is not None and size > total:
                    raise _Restart(f"received {size} bytes, more than the announced {total}")
                os.fsync(f.fileno())

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, URL_PLACEHOLDER)
        return text


@dataclass(frozen=True)
class _Done:
    received: int


@dataclass
class _FileState:
    """One file's download in progress: its ``.part`` and state paths, size expected from HEAD,
    bytes received in this run and how many of them the progress bar's total already counts."""

    part: Path
    state: Path
    expected: int | None
    received: int = 0
    accounted: int = 0
    furthest: int = 0  # the furthest byte any attempt reached: only getting past it counts as progress


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _secret_forms(secret: str) -> list[str]:
    """Every form in which the secret URL can show up in a message, longest first."""
    secret = secret.rstrip("/")
    forms = {secret, quote(secret, safe=":/?&=@%")}
    parts = urlsplit(secret)
    if parts.netloc:
        forms.add(parts.netloc + parts.path)
    if len(parts.path.strip("/")) > 0:
        forms.add(parts.path.rstrip("/"))
        forms.add(quote(parts.path.rstrip("/")))
    if parts.query:
        forms.add(parts.query)
    return sorted((f for f in forms if f), key=len, reverse=True)


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


class _Progress:
    """One overall bar on stderr: bytes (rate, ETA) and files done; thread-safe; silent when disabled."""

    def __init__(self, n_files: int, enabled: bool, desc: str) -> None:
        self._lock = threading.Lock()
        self._n_files = n_files
        self._files_done = 0
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, postfix=f"files 0/{n_files}",
            )

    def add_total(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.total += n

    def update(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1
            if self._bar is not None:
                self._bar.set_postfix_str(f"files {self._files_done}/{self._n_files}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

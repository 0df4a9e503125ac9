"""A real threaded HTTP/1.1 file server on 127.0.0.1 for download tests, with fault injection.

Serves ``files`` (relative path → bytes) below ``/<prefix>/``; honours ``Range: bytes=a-`` / ``a-b``
(206 + Content-Range, 416 past the end) and ``If-Range`` (strong ETag), answers HEAD, counts body
bytes sent per path and logs every request. Faults per path, each used up as it triggers:
``cut_after`` (close the connection after n body bytes), ``status`` (answer with a code),
``stall_after`` (send n bytes, then hang until the server stops or :meth:`release` is called),
``replace_on_get`` (serve new bytes from the next GET on: a file that changes on the server).
``validators`` chooses what identifies a version of a file: a strong ``ETag`` (the default), only a
``Last-Modified`` date derived from the content (long past, so a strong validator), only a
``Last-Modified`` equal to the response's ``Date`` (too recent to be a strong validator), or none.
``latency``/``rate`` emulate a distant server for benchmarks (tests leave them off).
"""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


@dataclass
class Fault:
    """What to do to the next ``times`` GETs of one path (``times=None``: every GET, forever)."""

    cut_after: int | None = None
    status: int | None = None
    stall_after: int | None = None
    times: int | None = 1
    include_head: bool = False  # status faults: answer HEAD with it too


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int
    arrival: int = 0  # order in which the server received the request


@dataclass
class FileServer:
    files: dict[str, bytes]
    prefix: str = "token"
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    replace_on_get: dict[str, bytes] = field(default_factory=dict)
    honour_if_range: bool = True  # False: serve ranges regardless of If-Range (like servers without it)
    validators: str = "etag"  # "etag" | "last-modified" | "last-modified-now" | "none"
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # extra response headers per path
    latency: float = 0.0  # seconds before each answer (benchmarks: a distant server)
    rate: float | None = None  # bytes/s per response (benchmarks: a per-connection bandwidth limit)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[Request] = []  # in arrival order (a request is logged when its answer is done)
        self._arrivals = 0
        self.stalled = threading.Condition(self.lock)
        self.stalled_paths: dict[str, int] = {}  # path -> bytes sent before stalling
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_tree(cls, root: Path, **kwargs) -> FileServer:
        """Serve every file below ``root`` (relative paths with ``/``)."""
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return cls(files, **kwargs)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{self.prefix}"

    def add_fault(self, path: str, fault: Fault) -> None:
        with self.lock:
            self.faults.setdefault(path, []).append(fault)

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_served.clear()
            self.requests.clear()

    def gets(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.path == path]

    def wait_stalled(self, path: str, timeout: float = 60.0) -> int:
        """Block until a GET of ``path`` has stalled; returns the body bytes sent before the stall."""
        with self.stalled:
            if not self.stalled.wait_for(lambda: path in self.stalled_paths, timeout=timeout):
                raise TimeoutError(f"no GET of {path} stalled within {timeout} s")
            return self.stalled_paths[path]

    def release(self) -> None:
        """Let stalled responses go on (they end by closing the connection)."""
        self._release.set()

    def __enter__(self) -> FileServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- used by the handler ---------------------------------------------------------------

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults.get(path, []):
                if fault.times == 0:
                    continue
                if method == "HEAD" and not (fault.status is not None and fault.include_head):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None


class _Server(ThreadingHTTPServer):
    # the default listen backlog of 5 drops SYNs when 16 clients connect at once (TCP retries after 1 s)
    request_queue_size = 128


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha1(data).hexdigest()[:16] + '"'


def _last_modified(data: bytes) -> str:
    """An HTTP date in 2020–2021 that differs between contents (a server whose file changed has a new mtime)."""
    return formatdate(1_600_000_000 + int(hashlib.sha1(data).hexdigest()[:6], 16), usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    owner: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.owner
        method = "HEAD" if head else "GET"
        raw_path = unquote(self.path.split("?", 1)[0])
        prefix = f"/{owner.prefix}/"
        rel = raw_path[len(prefix):] if raw_path.startswith(prefix) else None
        range_header = self.headers.get("Range")
        if owner.latency:
            time.sleep(owner.latency)

        with owner.lock:
            self._arrival = owner._arrivals
            owner._arrivals += 1
            data = owner.files.get(rel) if rel is not None else None
            if not head and rel in owner.replace_on_get:
                owner.files[rel] = owner.replace_on_get.pop(rel)  # this GET still serves the old bytes
        fault = owner._take_fault(rel, method) if rel is not None else None

        if fault is not None and fault.status is not None:
            return self._empty(fault.status, rel or raw_path, method, range_header)
        if data is None:
            return self._empty(404, rel or raw_path, method, range_header)

        size = len(data)
        validator = {
            "etag": _etag(data), "last-modified": _last_modified(data),
            "last-modified-now": self.date_time_string(), "none": None,
        }[owner.validators]
        start, end, status = 0, size - 1, 200
        m = _RANGE.fullmatch(range_header.strip()) if range_header else None
        if_range = self.headers.get("If-Range")
        if m and (if_range is None or if_range == validator or not owner.honour_if_range):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._log(method, rel, range_header, 416, 0)
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if owner.validators == "etag":
            self.send_header("ETag", validator)
        elif validator is not None:
            self.send_header("Last-Modified", validator)
        for name, value in owner.headers.get(rel, {}).items():
            self.send_header(name, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return self._log(method, rel, range_header, status, 0)

        limit = len(body)
        if fault is not None and fault.cut_after is not None:
            limit = min(limit, fault.cut_after)
        if fault is not None and fault.stall_after is not None:
            limit = min(limit, fault.stall_after)
        sent = 0
        started = time.monotonic()
        try:
            while sent < limit:
                n = self.wfile.write(body[sent:min(limit, sent + 64 * 1024)])
                sent += n
                if owner.rate:
                    time.sleep(max(0.0, started + sent / owner.rate - time.monotonic()))
                with owner.lock:
                    owner.bytes_served[rel] += n
            self.wfile.flush()
        except OSError:
            pass
        self._log(method, rel, range_header, status, sent)
        if sent < len(body):
            if fault is not None and fault.stall_after is not None:
                with owner.stalled:
                    owner.stalled_paths[rel] = sent
                    owner.stalled.notify_all()
                owner._release.wait()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

    def _empty(self, status: int, rel: str, method: str, range_header: str | None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self._log(method, rel, range_header, status, 0)

    def _log(self, method: str, rel: str | None, range_header: str | None, status: int, sent: int) -> None:
        with self.owner.lock:
            # a response whose client hung up early may finish after a later request's: keep arrival order
            bisect.insort(self.owner.requests, Request(method, rel or "", range_header, status, sent, self._arrival),
                          key=lambda r: r.arrival)

"""What a download tells the user: the report (summary, exit code), the progress bar, the access URL kept secret.

The engine (:mod:`.engine`) returns outcomes whose reasons may quote the URL; everything shown to the user
passes through here: a :class:`Redactor` replaces every form of the access URL by ``<NERSEMBLE_BENCHMARK_URL>``,
and paths are shown as ``<NERSEMBLE_BENCHMARK_URL>/<benchmark>/<relative path>``. The progress bar is the one
display of :mod:`nersemble_zarr.jobs.progress` (bytes, rate, ETA, ``files done/all``).
"""

from __future__ import annotations

import threading
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from ...core.benchmark import ACCESS_FORM_URL
from ...core.config import URL_ENV_VAR, URL_PLACEHOLDER, env_file
from ...core.errors import NersembleZarrError
from ...jobs.progress import FrameProgress
from .engine import FetchResult, FileOutcome


class DownloadError(NersembleZarrError):
    """A download that cannot go on (metadata missing, unreadable local files)."""


class AccessDeniedError(DownloadError):
    """The server answered 401/403: the access URL is wrong or expired. Carries the report so far."""

    def __init__(self, message: str, report: DownloadReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class Redactor:
    """Replaces every form in which ``secret`` (the access URL) can show up in a message by the placeholder:
    the URL itself, URL-quoted, without scheme, its path and its query. Holds the secret: never print it."""

    __slots__ = ("_forms",)

    def __init__(self, secret: str) -> None:
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
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, URL_PLACEHOLDER)
        return text

    def __repr__(self) -> str:
        return "Redactor(<secret>)"


def shown_path(benchmark: str, path: str) -> str:
    """How a file on the server is shown: ``<NERSEMBLE_BENCHMARK_URL>/<benchmark>/<path>``."""
    return f"{URL_PLACEHOLDER}/{benchmark}/{path}" if benchmark else f"{URL_PLACEHOLDER}/{path}"


def access_denied_message(benchmark: str, denied: FileOutcome) -> str:
    """The one-line error for a 401/403: which file, what to check, where to get a new URL, how to resume."""
    return (
        f"access URL rejected (HTTP {denied.http_status} for {shown_path(benchmark, denied.path)}): check the URL in "
        f"${URL_ENV_VAR} or {env_file()}, or request a new one at {ACCESS_FORM_URL} ; rerun the same command to resume"
    )


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
    def exit_code(self) -> int:
        """The command's exit status for this report: 0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    @property
    def n_files(self) -> int:
        """Files of the selection accounted for (all four outcomes)."""
        return len(self.downloaded) + len(self.skipped) + len(self.not_found) + len(self.failed)

    def add(self, result: FetchResult, redact: Redactor) -> DownloadReport:
        """This report extended by one fetch's outcomes (reasons redacted), returned for chaining. Denied and
        aborted files are not listed (the download stopped: see :func:`raise_if_denied`)."""
        self.downloaded += result.downloaded
        self.skipped += result.skipped
        self.not_found += result.not_found
        self.failed.update({path: redact(reason) for path, reason in result.failed.items()})
        self.bytes_downloaded += result.bytes_received
        self.seconds += result.seconds
        return self

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
            lines.append(f"  not on server: {shown_path(self.benchmark, path)}")
        if len(self.not_found) > max_listed:
            lines.append(f"  … and {len(self.not_found) - max_listed} more not on server")
        for path, reason in list(self.failed.items())[:max_listed]:
            lines.append(f"  failed: {shown_path(self.benchmark, path)}: {reason}")
        if len(self.failed) > max_listed:
            lines.append(f"  … and {len(self.failed) - max_listed} more failed")
        return lines


def raise_if_denied(result: FetchResult, report: DownloadReport) -> None:
    """Raise :class:`AccessDeniedError` (carrying ``report``) when the server refused a file of ``result``."""
    denied = result.denied
    if denied is not None:
        raise AccessDeniedError(access_denied_message(report.benchmark, denied), report)


def _files(items: Sized) -> str:
    return f"{len(items)} file" + ("" if len(items) == 1 else "s")


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class DownloadProgress:
    """The download's bar on stderr through :class:`~nersemble_zarr.jobs.progress.FrameProgress`: bytes (rate,
    ETA; the total grows as the server announces sizes) and ``files done/all``. Implements the engine's
    :class:`~.engine.FetchProgress`; thread-safe; silent when ``enabled`` is False. The bar appears with the
    first byte to fetch (nothing is drawn for a call that only skips files)."""

    def __init__(self, enabled: bool = True, *, desc: str = "download") -> None:
        self._enabled = enabled
        self._desc = desc
        self._lock = threading.Lock()
        self._bar: FrameProgress | None = None
        self._files = [0, 0]

    def start(self, n_files: int) -> None:
        with self._lock:
            self._files = [0, n_files]

    def add_total(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            if self._bar is None:
                self._bar = FrameProgress(n, self._enabled, desc=self._desc, unit="B")
                self._bar.set_postfix(f"files {self._files[0]}/{self._files[1]}")
            else:
                self._bar.add_total(n)

    def update(self, n: int) -> None:
        bar = self._bar
        if bar is not None and n:
            bar.update(n)

    def file_done(self) -> None:
        with self._lock:
            self._files[0] += 1
            if self._bar is not None:
                self._bar.set_postfix(f"files {self._files[0]}/{self._files[1]}")

    def close(self) -> None:
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

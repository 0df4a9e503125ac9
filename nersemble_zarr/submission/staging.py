"""The crash-safe submission zip every submission writer builds on: staged files, atomic zip, append across runs.

An unfinished submission ``<target>`` is a staging folder ``<target>.partial/`` holding one finished file per
zip member at its zip path, a marker (``.nersemble-submission.json``, naming the benchmark) and a lock file.
A member is written to a hidden temporary file beside its final path (:meth:`StagedZipWriter.temp_file`) and
renamed into place only when complete (:meth:`StagedZipWriter.put_bytes` does both), so the folder only ever
holds complete members. :meth:`StagedZipWriter.finalize` packs them (sorted, fixed timestamps, so the same
members always give the same zip bytes) into a temporary zip renamed onto the target, then removes the
folder. An exception or a killed process therefore never leaves a file at the target path; the staging folder
survives and ``mode="a"`` continues it. ``mode="a"`` on a finalized zip (and no staging folder) unpacks its
members into a new staging folder first. Either way the result equals a single run.

Used by :class:`~nersemble_zarr.submission.writer.SubmissionWriter` (videos) and
:class:`~nersemble_zarr.submission.svfr.SVFRSubmissionDataWriter` (meshes); subclasses say which member names
they accept (:meth:`StagedZipWriter._accept_member`) and list their members (:meth:`StagedZipWriter.members`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per target is then the caller's promise
    fcntl = None  # type: ignore[assignment]

from ..core.errors import NersembleZarrError

__all__ = ["SubmissionError", "StagedZipWriter", "staging_folder", "stage_bytes"]

_STAGING_SUFFIX = ".partial"
_MARKER = ".nersemble-submission.json"
_LOCK = ".lock"
_TMP_PREFIX = "."
_TMP_INFIX = ".tmp"  # a temporary member is ".<stem>.<random>.tmp<suffix>": tools that pick a format by suffix still can
_ZIP_TMP = ".submission.tmp.zip"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class SubmissionError(NersembleZarrError):
    """A submission cannot be written as asked (unscored video or mesh, wrong data, busy or foreign target)."""


def staging_folder(zip_path: str | os.PathLike) -> Path:
    """Where the unfinished submission of ``zip_path`` is staged: ``<zip_path>.partial/`` (absolute)."""
    path = Path(zip_path).absolute()
    return path.with_name(path.name + _STAGING_SUFFIX)


def _temp_file(final: Path) -> Path:
    return final.with_name(f"{_TMP_PREFIX}{final.stem}.{secrets.token_hex(4)}{_TMP_INFIX}{final.suffix}")


def stage_bytes(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically: a hidden temporary file beside it, then rename. Returns ``final``.

    A module function (not a method) so that jobs on worker processes can stage members too.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_file(final)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class StagedZipWriter:
    """Base of the submission writers: the staging folder, its lock, atomic members and the atomic zip.

    Args:
        zip_path: The target zip, written only by :meth:`finalize` (temporary name + rename).
        benchmark: The benchmark name recorded in the staging marker; a staging folder of another
            benchmark is refused.
        mode: ``"w"`` starts anew (discarding an unfinished submission); ``"a"`` continues the unfinished
            one, or adds to the finalized zip at ``zip_path``, or starts a new one.
        finalize: Whether a clean exit of the ``with`` block packs the zip.
        compression: ``zipfile.ZIP_STORED`` (videos do not compress) or ``zipfile.ZIP_DEFLATED``.

    Subclasses set their own state first and call ``super().__init__`` last.
    """

    def __init__(
        self,
        zip_path: str | os.PathLike,
        benchmark: str,
        *,
        mode: Literal["w", "a"] = "w",
        finalize: bool = True,
        compression: int = zipfile.ZIP_STORED,
    ) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', not {mode!r}")
        self.zip_path = Path(zip_path).absolute()
        self.staging = staging_folder(self.zip_path)
        self._benchmark_name = benchmark
        self._finalize_on_exit = finalize
        self._compression = compression
        self._lock_fd: int | None = None
        self._closed = False
        self._open(mode)

    # -- what a subclass says ------------------------------------------------------------------

    def _accept_member(self, name: str) -> None:
        """Raise :class:`SubmissionError` if a finalized zip's member ``name`` cannot be appended to."""

    def members(self) -> list[str]:
        """Zip paths of the staged members (complete files only), in zip order."""
        return sorted(
            p.relative_to(self.staging).as_posix() for p in self.staging.rglob("*")
            if p.is_file() and not p.name.startswith(_TMP_PREFIX)
        )

    def _after_reopen(self) -> None:
        """Hook run when ``mode="a"`` continues a staging folder (after stale temporaries are removed)."""

    # -- setup ---------------------------------------------------------------------------------

    def _open(self, mode: str) -> None:
        self.zip_path.parent.mkdir(parents=True, exist_ok=True)
        if self.zip_path.is_dir():
            raise SubmissionError(f"{self.zip_path}: expected a zip file path, found a directory")
        if self.staging.exists():
            self._check_ours(self.staging)
            self._lock()
            if mode == "w":
                self._unlock()
                shutil.rmtree(self.staging)
            else:
                self._remove_stale_temporaries()
                self._after_reopen()
                return
        # the folder appears with its marker inside or not at all
        fresh = Path(tempfile.mkdtemp(prefix=f".{self.staging.name}.", dir=self.zip_path.parent))
        (fresh / _MARKER).write_text(json.dumps({"benchmark": self._benchmark_name, "format": 1}))
        os.rename(fresh, self.staging)
        self._lock()
        if mode == "a" and self.zip_path.exists():
            self._unpack_finalized()

    def _check_ours(self, folder: Path) -> None:
        marker = folder / _MARKER
        if not marker.is_file():
            raise SubmissionError(
                f"{folder} exists but is not an unfinished submission (no {_MARKER}); move it away first"
            )
        try:
            found = json.loads(marker.read_text()).get("benchmark")
        except ValueError:
            found = None
        if found != self._benchmark_name:
            raise SubmissionError(
                f"{folder}: the unfinished submission is for benchmark {found!r}, expected {self._benchmark_name!r} "
                f"(remove the folder to start over)"
            )

    def _lock(self) -> None:
        fd = os.open(self.staging / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            self._lock_fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SubmissionError(
                f"{self.zip_path}: another {type(self).__name__} is writing this submission") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _remove_stale_temporaries(self) -> None:
        """Delete half-written members a killed earlier run left behind."""
        for path in self.staging.rglob(f"{_TMP_PREFIX}*{_TMP_INFIX}.*"):
            if path.is_file():
                path.unlink(missing_ok=True)
        (self.staging / _ZIP_TMP).unlink(missing_ok=True)

    def _unpack_finalized(self) -> None:
        """Copy the members of the finalized zip at the target into the new staging folder."""
        try:
            try:
                zf = zipfile.ZipFile(self.zip_path)
            except zipfile.BadZipFile as e:
                raise SubmissionError(f"cannot append to {self.zip_path}: not a readable zip ({e})") from None
            with zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    self._accept_member(info.filename)
                    final = self.staging / info.filename
                    final.parent.mkdir(parents=True, exist_ok=True)
                    tmp = self.temp_file(final)
                    with zf.open(info) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    os.replace(tmp, final)
        except BaseException:
            self._unlock()
            shutil.rmtree(self.staging, ignore_errors=True)
            raise

    # -- members -------------------------------------------------------------------------------

    @staticmethod
    def temp_file(final: Path) -> Path:
        """A hidden temporary name beside ``final`` (same suffix): write there, then ``os.replace`` onto ``final``."""
        return _temp_file(final)

    # the video writer's spelling, kept for its callers
    _temp_file = temp_file

    def put_bytes(self, name: str, data: bytes) -> Path:
        """Stage member ``name`` (a zip path) holding ``data``: temporary file, then rename. Returns its path."""
        return stage_bytes(self.staging / name, data)

    def _check_open(self) -> None:
        if self._closed:
            raise SubmissionError(f"{self.zip_path}: the writer is closed")

    # -- finishing ----------------------------------------------------------------------------

    def finalize(self) -> Path:
        """Pack the staged members into the zip at ``zip_path`` (atomic rename) and remove the staging folder.

        Entries are in :meth:`members` order with a fixed timestamp, so equal members give a byte-identical
        zip. Incomplete submissions are packed too (the validator reports what is missing). Returns the zip's path.
        """
        self._check_open()
        tmp = self.staging / _ZIP_TMP
        try:
            with zipfile.ZipFile(tmp, "w", compression=self._compression) as zf:
                for name in self.members():
                    path = self.staging / name
                    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                    info.compress_type = self._compression
                    info.external_attr = 0o644 << 16
                    info.file_size = path.stat().st_size
                    with open(path, "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.zip_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._unlock()
        # move the folder out of the way in one step, then delete: whatever might still write into it
        # (an orphaned ffmpeg of a killed run) cannot leave a marker-less staging folder behind
        trash = self.staging.with_name(f".{self.staging.name}.{secrets.token_hex(4)}.done")
        os.rename(self.staging, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._closed = True
        return self.zip_path

    def close(self, finalize: bool = True) -> Path | None:
        """Finish: pack the zip (``finalize=True``) or keep the staging folder for a later ``mode="a"``."""
        if self._closed:
            return None
        if finalize:
            return self.finalize()
        self._unlock()
        self._closed = True
        return None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(finalize=exc_type is None and self._finalize_on_exit)

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            self._unlock()

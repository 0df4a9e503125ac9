"""Opening raw inputs safely: only regular files, read no further than their size.

A FIFO, a character/block device, a socket or a symlink to one of them (``/dev/zero``) among the raw
files must be refused by name, never read: a FIFO without a writer blocks ``open`` forever and a
device reads without end. Checks use ``os.stat`` (symlinks followed: a link to a regular file is fine);
:func:`read_regular_file` opens with ``O_NONBLOCK`` and re-checks the opened descriptor, so even a
file swapped for a FIFO between the check and the open is refused rather than waited on.
"""

from __future__ import annotations

import os
import stat

from .errors import RawFormatError

__all__ = ["check_regular_file", "read_regular_file", "file_kind"]


def file_kind(mode: int) -> str:
    """Human name of the file type in a ``st_mode`` ("a FIFO (named pipe)", "a character device" …)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: str, what: str, st: os.stat_result) -> RawFormatError:
    link = " (through a symlink)" if os.path.islink(path) else ""
    return RawFormatError(path, f"expected a regular {what} file, found {file_kind(st.st_mode)}{link}; refusing to read it")


def check_regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """``os.stat`` of ``path`` if it is a regular file (symlinks followed); ``what`` names its role
    ("video", "point cloud") in errors. Raises :class:`RawFormatError` naming the file for a missing
    file and for a directory, FIFO, device or socket (never opens it)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RawFormatError(path, f"{what} file not found") from None
    except OSError as e:
        raise RawFormatError(path, f"cannot read {what} file: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st)
    return st


def read_regular_file(path: str | os.PathLike, what: str) -> bytes:
    """The whole content of the regular file ``path``, bounded by its size at open time.

    Refuses (:class:`RawFormatError` naming the file) anything :func:`check_regular_file` refuses;
    the descriptor is opened non-blocking and checked again with ``fstat``, so a FIFO is never
    waited on and a device is never read.
    """
    path = os.fspath(path)
    check_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise RawFormatError(path, f"{what} file not found") from None
    except OSError as e:
        raise RawFormatError(path, f"cannot open {what} file: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, what, st)
        size = st.st_size
        chunks = []
        got = 0
        while got < size:
            block = os.read(fd, min(size - got, 1 << 24))
            if not block:
                break
            chunks.append(block)
            got += len(block)
        return b"".join(chunks)
    finally:
        os.close(fd)

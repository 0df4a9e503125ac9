"""Writing a small file whole or not at all: a temporary name beside it, then one rename."""

from __future__ import annotations

import os
import secrets


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via ``.<name>.<random>.tmp`` in the same folder and ``os.replace``.

    A failure or a killed process leaves ``path`` as it was (absent, or the previous file), never
    half written; the temporary file is removed on any exception.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

"""Reading a JSON file with errors that name it."""

from __future__ import annotations

import json
import os
from typing import Any

from ._atomic import write_atomic
from ._files import read_regular_file
from .errors import RawFormatError


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parsed JSON of ``path``; ``what`` names the file's role in error messages ("calibration").

    Only a regular file is read (a FIFO, device or directory is refused by name)."""
    path = os.fspath(path)
    data = read_regular_file(path, what)  # never opens a FIFO or reads a device
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RawFormatError(path, f"expected UTF-8 JSON {what}, found undecodable bytes at offset {e.start}") from None
    except json.JSONDecodeError as e:
        raise RawFormatError(path, f"expected JSON {what}, parse error at line {e.lineno} column {e.colno}: {e.msg}") from None


def dump_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (UTF-8, trailing newline), whole or not at all (temporary name + rename)."""
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))

"""Reading a JSON file with errors that name it."""

from __future__ import annotations

import json
import os
from typing import Any

from ._atomic import write_atomic
from .errors import RawFormatError


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parsed JSON of ``path``; ``what`` names the file's role in error messages ("calibration")."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RawFormatError(path, f"{what} file not found") from None
    except IsADirectoryError:
        raise RawFormatError(path, f"expected a {what} JSON file, found a directory") from None
    except UnicodeDecodeError as e:
        raise RawFormatError(path, f"expected UTF-8 JSON {what}, found undecodable bytes at offset {e.start}") from None
    except json.JSONDecodeError as e:
        raise RawFormatError(path, f"expected JSON {what}, parse error at line {e.lineno} column {e.colno}: {e.msg}") from None


def dump_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (UTF-8, trailing newline), whole or not at all (temporary name + rename)."""
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))

"""The error every raw-format reader raises for a file it cannot use."""

from __future__ import annotations

import os

from ..core.errors import NersembleZarrError


class RawFormatError(NersembleZarrError):
    """A raw benchmark file (mp4, pcd, npz, json) is missing, truncated or not what the format says.

    The message always names the file and what was expected vs what was found. ``path`` holds the
    file's path as given by the caller.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

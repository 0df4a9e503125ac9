"""Exceptions a user can act on. The CLI prints their message as one line (``--debug`` shows the traceback).

``exit_code`` is the CLI's exit status for the error: 1 for a failure, 2 for a bad argument or a
selection that matches nothing (click's convention for usage errors).
"""

from __future__ import annotations


class NersembleZarrError(Exception):
    """Base of every error whose message alone tells the user what is wrong and where."""

    exit_code: int = 1


class ConfigError(NersembleZarrError):
    """Missing or invalid configuration (access URL, FLAME model path)."""


class SelectionError(NersembleZarrError, ValueError):
    """A benchmark, participant, sequence, camera or timestep that does not exist, or a selection that
    matches nothing. The message names what was asked for and the valid choices."""

    exit_code = 2


class StoreIntegrityError(NersembleZarrError):
    """A store object that must be there is missing or damaged. The message names the store, the array,
    the camera/timestep range and the object; ``nersemble-zarr check STORE`` lists every such problem."""


class MissingObjectError(StoreIntegrityError):
    """A chunk, shard, array or metadata document of a complete array is absent from the store."""


class CorruptObjectError(StoreIntegrityError):
    """An object is present but fails its checksum, does not decode, or has the wrong size."""

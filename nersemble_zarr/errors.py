"""Exceptions a user can act on. The CLI prints their message as one line (``--debug`` shows the traceback)."""

from __future__ import annotations


class NersembleZarrError(Exception):
    """Base of every error whose message alone tells the user what is wrong and where."""


class ConfigError(NersembleZarrError):
    """Missing or invalid configuration (access URL, FLAME model path)."""

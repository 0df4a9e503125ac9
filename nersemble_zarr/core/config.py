"""Configuration from the environment and `.env` files: the access URL and the FLAME model path.

The access URL is a secret: functions here return it, nothing here prints or logs it. Use
:func:`redact` on any text that may contain it before showing that text to a user.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from .benchmark import ACCESS_FORM_URL, FLAME_MODEL_FILE
from .errors import ConfigError

URL_ENV_VAR = "NERSEMBLE_BENCHMARK_URL"
FLAME_ENV_VAR = "FLAME_MODEL_PATH"
#: Same location as the official toolkit's ``.env``.
ENV_FILE = Path("~/.config/nersemble_benchmark/.env")
URL_PLACEHOLDER = f"<{URL_ENV_VAR}>"


def env_file() -> Path:
    """The user's ``.env`` file (``~/.config/nersemble_benchmark/.env``, home expanded now)."""
    return ENV_FILE.expanduser()


def _lookup(name: str) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    path = env_file()
    if path.is_file():
        value = dotenv_values(path).get(name)
        if value:
            return value
    return None


def access_url() -> str:
    """The benchmark access URL without trailing slash, from ``$NERSEMBLE_BENCHMARK_URL`` or the ``.env``.

    Raises :class:`ConfigError` with instructions when none is configured.
    """
    url = _lookup(URL_ENV_VAR)
    if not url:
        raise ConfigError(
            f"no access URL configured: request access at {ACCESS_FORM_URL} , then either export "
            f"{URL_ENV_VAR}=... or put the line {URL_ENV_VAR}=\"...\" into {env_file()}"
        )
    return url.rstrip("/")


def flame_model_path(explicit: str | os.PathLike | None = None) -> Path:
    """The FLAME 2023 model pickle: ``explicit`` if given, else ``$FLAME_MODEL_PATH`` or the ``.env``.

    A directory is accepted and resolved to ``flame2023.pkl`` inside it. Raises :class:`ConfigError`
    when none is configured or the file does not exist; never downloads anything.
    """
    value = explicit if explicit is not None else _lookup(FLAME_ENV_VAR)
    if not value:
        raise ConfigError(
            f"no FLAME model configured: pass --flame-model PATH, export {FLAME_ENV_VAR}=PATH or put "
            f"{FLAME_ENV_VAR}=\"PATH\" into {env_file()} (the licensed FLAME 2023 pickle from flame.is.tue.mpg.de)"
        )
    path = Path(value).expanduser()
    if path.is_dir():
        path = path / FLAME_MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"FLAME model file not found: {path}")
    return path


def redact(text: str, url: str | None = None) -> str:
    """``text`` with every occurrence of the access URL replaced by ``<NERSEMBLE_BENCHMARK_URL>``."""
    if url is None:
        url = _lookup(URL_ENV_VAR)
    if not url:
        return text
    url = url.rstrip("/")
    return text.replace(url, URL_PLACEHOLDER) if url else text

"""Download a benchmark: the access URL, then :mod:`.selection` (which files), :mod:`.engine` (fetch them) and
:mod:`.report` (what to tell the user).

Server layout = raw layout: ``<access URL>/<benchmark>/<relative path>`` lands at
``<raw root>/<benchmark>/<relative path>``. ``metadata.json`` is fetched first and kept (the video benchmarks;
``svfr`` has none: only its images are fetched, as the official downloader does). The access URL is a
secret: no message, report or file written here contains it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...core.benchmark import ACCESS_FORM_URL, SVFR, check_benchmark, metadata_path
from ...core.config import URL_ENV_VAR, URL_PLACEHOLDER, access_url, env_file
from ...core.errors import ConfigError
from .engine import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_WORKERS, Downloader
from .report import DownloadError, DownloadProgress, DownloadReport, Redactor, raise_if_denied
from .selection import POINTCLOUDS, PointcloudFrames, resolve_assets, resolve_participants, select_files


def download_benchmark(
    raw_root: str | os.PathLike,
    benchmark: str,
    *,
    participants: Iterable[int] | None = None,
    assets: str | Iterable[str] = "all",
    pointcloud_frames: PointcloudFrames = "first",
    workers: int = DEFAULT_WORKERS,
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
    check_sizes: bool = False,
    url: str | None = None,
) -> DownloadReport:
    """Download a selection of ``benchmark`` into ``<raw_root>/<benchmark>/`` in the official layout.

    ``metadata.json`` is fetched first and kept (later validation and conversion work offline; the NVS
    point-cloud timesteps come from it). The selection (see :func:`.selection.select_files`) is validated
    before any request. ``workers`` files download in parallel; each is retried ``retries`` times after
    transient errors, waiting ``backoff`` seconds doubled per failure; ``timeout`` seconds to connect or receive
    more bytes; ``overwrite`` and ``check_sizes``: see :class:`.engine.Downloader`. ``progress``: a bar on stderr.
    ``url`` defaults to the configured access URL (:func:`nersemble_zarr.core.config.access_url`).

    Returns the :class:`.report.DownloadReport` (its ``exit_code`` is 1 when a file failed). Raises
    :class:`.report.AccessDeniedError` (with the report so far) on 401/403, :class:`.report.DownloadError` if
    ``metadata.json`` cannot be had, :class:`~nersemble_zarr.core.errors.ConfigError` for a missing or malformed
    access URL.
    """
    name = benchmark if benchmark == SVFR else check_benchmark(benchmark)
    chosen_assets = resolve_assets(name, assets)
    chosen_participants = resolve_participants(name, participants)
    base = (url or access_url()).rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise ConfigError(
            f"the access URL (${URL_ENV_VAR} or {env_file()}) is not an http(s):// URL; it is not shown "
            f"because it is a secret: check it against the one you received from {ACCESS_FORM_URL}"
        )
    redact = Redactor(base)
    root = Path(raw_root) / name
    report = DownloadReport(name, root)
    engine = Downloader(
        f"{base}/{name}", root, workers=workers, overwrite=overwrite, retries=retries, backoff=backoff,
        timeout=timeout, check_sizes=check_sizes,
    )
    if name == SVFR:
        files = select_files(name, participants=chosen_participants, assets=chosen_assets)
        images = engine.fetch(files, progress=DownloadProgress(progress, desc=f"download {name}"))
        report.add(images, redact)
        raise_if_denied(images, report)
        return report
    first = engine.fetch([metadata_path()])
    report.add(first, redact)
    raise_if_denied(first, report)
    local_metadata = root / metadata_path()
    if not local_metadata.is_file():
        reason = report.failed.get(metadata_path(), "not on the server (HTTP 404)")
        raise DownloadError(
            f"cannot download {URL_PLACEHOLDER}/{name}/{metadata_path()}: {reason}; nothing else was fetched"
        )
    metadata = _load_json(local_metadata) if POINTCLOUDS in chosen_assets else None
    files = select_files(
        name, participants=chosen_participants, assets=chosen_assets,
        pointcloud_frames=pointcloud_frames, metadata=metadata,
    )
    rest = engine.fetch(files, progress=DownloadProgress(progress, desc=f"download {name}"))
    report.add(rest, redact)
    raise_if_denied(rest, report)
    return report


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DownloadError(f"cannot read {path}: {e}; delete it and download again") from None

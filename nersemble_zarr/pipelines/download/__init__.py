"""Download the benchmarks: the per-file engine (:mod:`.engine`: fetch, resume, verify; knows no benchmark), what
to fetch (:mod:`.selection`), what to tell the user (:mod:`.report`: summary, exit code, progress bar, the access
URL kept secret), and :func:`download_benchmark` (:mod:`.run`) that ties them together."""

from .engine import (
    DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_WORKERS, MAX_BACKOFF,
    Downloader, FetchProgress, FetchResult, FileOutcome, Status,
)
from .report import (
    AccessDeniedError, DownloadError, DownloadProgress, DownloadReport, Redactor, format_bytes,
)
from .run import download_benchmark
from .selection import (
    ALPHA_MAPS, ASSETS, CALIBRATION, IMAGES, POINTCLOUDS, AssetSelectionError, PointcloudFrames,
    nvs_timesteps, resolve_assets, resolve_participants, select_files,
)

__all__ = [
    "DEFAULT_BACKOFF", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "MAX_BACKOFF",
    "Downloader", "FetchProgress", "FetchResult", "FileOutcome", "Status",
    "AccessDeniedError", "DownloadError", "DownloadProgress", "DownloadReport", "Redactor", "format_bytes",
    "download_benchmark",
    "ALPHA_MAPS", "ASSETS", "CALIBRATION", "IMAGES", "POINTCLOUDS", "AssetSelectionError", "PointcloudFrames",
    "nvs_timesteps", "resolve_assets", "resolve_participants", "select_files",
]

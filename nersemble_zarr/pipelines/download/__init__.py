"""Download the benchmarks: the per-file engine (:mod:`.engine`) and what to fetch (:mod:`.selection`)."""

from .engine import (
    DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_WORKERS, MAX_BACKOFF,
    AccessDeniedError, DownloadError, DownloadReport, Downloader, download_benchmark, format_bytes,
)
from .selection import (
    ALPHA_MAPS, ASSETS, CALIBRATION, IMAGES, POINTCLOUDS, AssetSelectionError, PointcloudFrames,
    nvs_timesteps, resolve_assets, resolve_participants, select_files,
)

__all__ = [
    "DEFAULT_BACKOFF", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "MAX_BACKOFF",
    "AccessDeniedError", "DownloadError", "DownloadReport", "Downloader", "download_benchmark", "format_bytes",
    "ALPHA_MAPS", "ASSETS", "CALIBRATION", "IMAGES", "POINTCLOUDS", "AssetSelectionError", "PointcloudFrames",
    "nvs_timesteps", "resolve_assets", "resolve_participants", "select_files",
]

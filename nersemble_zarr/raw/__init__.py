"""Readers (and writers, for the sample generator) of the benchmark's raw file formats.

mp4 videos (:mod:`.video`), ``.pcd`` point clouds (:mod:`.pcd`), FLAME tracking ``.npz``
(:mod:`.tracking`), ``camera_params.json`` (:mod:`.calibration`) and ``metadata.json``
(:mod:`.metadata`). Every reader raises :class:`RawFormatError` naming the file for bad input.
"""

from .calibration import CameraParams, read_camera_params, write_camera_params
from .errors import RawFormatError
from .metadata import BenchmarkMetadata, parse_metadata, read_metadata, write_metadata
from .pcd import PCD_ENCODINGS, PointCloud, read_pcd, write_pcd
from .tracking import TRACKING_SHAPES, FlameTracking, read_tracking, write_tracking
from .video import FrameIndexError, VideoInfo, ffmpeg_exe, iter_frames, probe_frame_size, probe_video, read_frame

__all__ = [
    "RawFormatError",
    "FrameIndexError",
    "VideoInfo",
    "ffmpeg_exe",
    "iter_frames",
    "probe_video",
    "probe_frame_size",
    "read_frame",
    "PointCloud",
    "PCD_ENCODINGS",
    "read_pcd",
    "write_pcd",
    "FlameTracking",
    "TRACKING_SHAPES",
    "read_tracking",
    "write_tracking",
    "CameraParams",
    "read_camera_params",
    "write_camera_params",
    "BenchmarkMetadata",
    "read_metadata",
    "parse_metadata",
    "write_metadata",
]

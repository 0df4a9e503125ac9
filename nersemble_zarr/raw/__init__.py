"""Readers (and writers, for the sample generator) of the benchmark's raw file formats.

mp4 videos (:mod:`.video`), ``.pcd`` point clouds (:mod:`.pcd`), FLAME tracking ``.npz``
(:mod:`.tracking`), ``camera_params.json`` (:mod:`.calibration`) and ``metadata.json``
(:mod:`.metadata`). Every reader raises :class:`RawFormatError` naming the file for bad input.
"""

from .errors import RawFormatError
from .video import FrameIndexError, VideoInfo, ffmpeg_exe, iter_frames, probe_video, read_frame

__all__ = [
    "RawFormatError",
    "FrameIndexError",
    "VideoInfo",
    "ffmpeg_exe",
    "iter_frames",
    "probe_video",
    "read_frame",
]

"""Per-camera mp4 videos (RGB and alpha maps), decoded by the ffmpeg binary that imageio-ffmpeg ships.

Frames are streamed from an ffmpeg subprocess (``-f rawvideo -pix_fmt rgb24``) one at a time, so a
video is never held in memory whole. The RGB conversion is ffmpeg's own, the same one imageio and
the official toolkit's readers get, so decoded frames match theirs bit for bit. Every failure
(missing file, truncated or undecodable stream) becomes a :class:`RawFormatError` naming the file.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._files import check_regular_file
from .errors import RawFormatError

__all__ = ["VideoInfo", "FrameIndexError", "ffmpeg_exe", "probe_video", "probe_frame_size", "iter_frames", "read_frame"]

#: How many trailing ffmpeg log lines an error message quotes.
_LOG_LINES = 3


class FrameIndexError(RawFormatError, IndexError):
    """A frame index outside ``[0, n_frames)`` of a video."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, from its container and a count of its packets.

    ``n_frames`` is exact (every video packet counted, not the container's estimate); ``fps`` frames
    per second (the stream's average rate); ``width``/``height`` pixels; ``codec`` ffmpeg's decoder
    name (``"h264"``); ``pix_fmt`` the stored pixel format (``"yuv420p"``).
    """

    path: str
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    pix_fmt: str

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` of a decoded RGB frame."""
        return (self.height, self.width, 3)


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _check_file(path: str) -> None:
    # ffmpeg opens the path itself: refuse a FIFO (it would block) or a device (endless) before it does
    if check_regular_file(path, "video").st_size == 0:
        raise RawFormatError(path, "video file is empty (0 bytes)")


def _problem_lines(log: str) -> list[str]:
    """ffmpeg log lines (``-loglevel level+…``) at level error or fatal, tags stripped."""
    out = []
    for line in log.splitlines():
        m = re.search(r"\[(error|fatal|panic)\]\s*(.*)", line)
        if m and m.group(2).strip():
            out.append(m.group(2).strip())
    return out


def _ffmpeg_says(log: str) -> str:
    lines = _problem_lines(log) or [ln.strip() for ln in log.splitlines() if ln.strip()]
    return "; ".join(lines[-_LOG_LINES:]) if lines else "no message"


def _split_top_level(text: str) -> list[str]:
    """Split ``a (b, c), d [e, f], g`` at commas that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _parse_stream_line(path: str, log: str) -> tuple[str, str, int, int, float]:
    """``(codec, pix_fmt, width, height, fps)`` of the first input video stream in ffmpeg's log."""
    for line in log.splitlines():
        if "Output #" in line:
            break
        m = re.search(r"Stream #\d+:\d+.*?: Video: (.*)$", line)
        if not m:
            continue
        fields = _split_top_level(m.group(1))
        codec = fields[0].split()[0]
        pix_fmt = fields[1].split("(")[0].strip() if len(fields) > 1 else ""
        width = height = 0
        rates: dict[str, float] = {}
        for f in fields[1:]:
            size = re.match(r"(\d+)x(\d+)\b", f)
            if size and not width:
                width, height = int(size.group(1)), int(size.group(2))
            rate = re.match(r"([\d.]+)(k?) (fps|tbr)\b", f)
            if rate:
                rates[rate.group(3)] = float(rate.group(1)) * (1000 if rate.group(2) else 1)
        fps = rates.get("fps", rates.get("tbr", 0.0))  # average rate; tbr when the container has none
        if width <= 0 or height <= 0:
            raise RawFormatError(path, f"could not read the frame size of the video stream from ffmpeg: {line.strip()!r}")
        return codec, pix_fmt, width, height, fps
    raise RawFormatError(path, f"expected an mp4 with a video stream, ffmpeg found none ({_ffmpeg_says(log)})")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps, size, codec and pixel format of a video, without decoding any frame.

    ffmpeg copies every video packet to a null sink (fast: no decode), which counts the frames
    exactly and reads the whole file, so a truncated file is caught here. Raises
    :class:`RawFormatError` for a missing, empty, truncated or unreadable file.
    """
    path = os.fspath(path)
    _check_file(path)
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", path,
        "-map", "0:v:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    log = proc.stderr
    if proc.returncode != 0 or _problem_lines(log):
        raise RawFormatError(path, f"expected a readable mp4 video, ffmpeg failed: {_ffmpeg_says(log)}")
    codec, pix_fmt, width, height, fps = _parse_stream_line(path, log)
    counts = re.findall(r"^frame=(\d+)\s*$", proc.stdout, flags=re.M)
    if not counts:
        raise RawFormatError(path, "ffmpeg reported no frame count for the video stream")
    n_frames = int(counts[-1])
    if n_frames == 0:
        raise RawFormatError(path, "expected at least one video frame, found 0")
    return VideoInfo(path=path, n_frames=n_frames, fps=fps, width=width, height=height, codec=codec, pix_fmt=pix_fmt)


def probe_frame_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` in pixels of a video's first video stream, from its container header only.

    Cheap (ffmpeg reads the header, no packet is copied or decoded): for checking that videos
    agree before converting them. Use :func:`probe_video` for a frame count. Raises
    :class:`RawFormatError` naming the file for a missing, empty or non-regular file or one
    without a readable video stream.
    """
    path = os.fspath(path)
    _check_file(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", path]
    # no output file: ffmpeg prints the input's streams and exits 1 ("At least one output file…")
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    _, _, width, height, _ = _parse_stream_line(path, proc.stderr)
    return height, width


def _decode_cmd(path: str, video_filter: str | None = None, max_frames: int | None = None) -> list[str]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+error", "-xerror", "-i", path, "-map", "0:v:0"]
    if video_filter:
        cmd += ["-vf", video_filter]
    if max_frames is not None:
        cmd += ["-frames:v", str(max_frames)]
    # passthrough: one output frame per decoded frame, never duplicated or dropped by timestamps
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    return cmd


def _read_into(stream, out: np.ndarray) -> int:
    """Fill ``out`` from a raw pipe without intermediate copies; returns the bytes read (short at EOF)."""
    view = memoryview(out).cast("B")
    got, n = 0, view.nbytes
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            break
        got += k
    return got


def _widen_pipe(stream) -> None:
    """Ask Linux for a 1 MiB pipe buffer: fewer context switches per multi-MB frame (no-op elsewhere)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass


def _stream_frames(path: str, info: VideoInfo, cmd: list[str], first_index: int, expected: int) -> Iterator[np.ndarray]:
    """Yield ``expected`` fresh ``(H, W, 3) uint8`` frames from ffmpeg's rawvideo stdout; raise on a short or failed decode."""
    with tempfile.TemporaryFile() as log_file:
        # stderr goes to a file, not a pipe: a chatty ffmpeg can never block on a full pipe
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, bufsize=0)
        _widen_pipe(proc.stdout)
        done = 0
        try:
            while done < expected:
                frame = np.empty((info.height, info.width, 3), np.uint8)
                if _read_into(proc.stdout, frame) < frame.nbytes:
                    break
                yield frame
                done += 1
        finally:
            if proc.poll() is None and done < expected:
                proc.kill()  # the consumer stopped early (break, close, exception)
            proc.stdout.close()
            returncode = proc.wait()
        log_file.seek(0)
        log = log_file.read().decode("utf-8", "replace")
        if done < expected:
            raise RawFormatError(
                path,
                f"decoding stopped at frame {first_index + done}: expected {info.n_frames} frames, "
                f"ffmpeg exited with code {returncode}: {_ffmpeg_says(log)}",
            )
        if returncode != 0 or _problem_lines(log):
            raise RawFormatError(
                path, f"decode error after frame {first_index + done - 1}: ffmpeg exited with code {returncode}: {_ffmpeg_says(log)}"
            )


def iter_frames(path: str | os.PathLike, *, alpha: bool = False) -> Iterator[np.ndarray]:
    """Stream a video's frames in order, one decoded frame in memory at a time.

    Yields ``(H, W, 3) uint8`` RGB frames, or with ``alpha=True`` ``(H, W) uint8`` alpha maps: the
    first channel of the decoded RGB frame, exactly what the official ``load_alpha_map`` keeps.
    The count is checked against :func:`probe_video`: a decode that ends early or logs a decode
    error raises :class:`RawFormatError` naming the file and the frame index it reached.
    Each yielded array is freshly allocated and owned by the caller.
    """
    path = os.fspath(path)
    info = probe_video(path)
    for frame in _stream_frames(path, info, _decode_cmd(path), 0, info.n_frames):
        yield np.ascontiguousarray(frame[:, :, 0]) if alpha else frame


def read_frame(path: str | os.PathLike, index: int, *, alpha: bool = False) -> np.ndarray:
    """One frame, read the way the official loader does: open the video, decode from the start, return.

    The cost grows with ``index`` (every earlier frame is decoded); this is the random-access
    baseline the Zarr store replaces. Returns ``(H, W, 3) uint8`` RGB, or ``(H, W) uint8`` with
    ``alpha=True`` (first channel), bit-identical to the same frame from :func:`iter_frames`.
    Raises :class:`FrameIndexError` (an ``IndexError``) for an index outside ``[0, n_frames)``.
    """
    path = os.fspath(path)
    info = probe_video(path)
    index = int(index)
    if not 0 <= index < info.n_frames:
        raise FrameIndexError(path, f"frame index {index} out of range: the video has {info.n_frames} frames (0..{info.n_frames - 1})")
    cmd = _decode_cmd(path, video_filter=f"select=eq(n\\,{index})", max_frames=1)
    frames = list(_stream_frames(path, info, cmd, index, 1))
    frame = frames[0]
    return np.ascontiguousarray(frame[:, :, 0]) if alpha else frame

"""Streaming mp4 writer: frames go one at a time into an ffmpeg subprocess (imageio-ffmpeg's binary).

Used for the sample benchmark's videos and for submissions (H.264, crf 14). Nothing is buffered
here: memory stays at one frame however long the video is.
"""

from __future__ import annotations

import os
from fractions import Fraction
from types import TracebackType

import numpy as np

__all__ = ["VideoWriter", "VideoWriteError"]


class VideoWriteError(OSError):
    """ffmpeg failed while encoding (it exited with an error or did not write the file)."""


class VideoWriter:
    """Encode ``(height, width, 3) uint8`` RGB frames into a video file, streaming.

    Use as a context manager::

        with VideoWriter("cam_222200037.mp4", width=512, height=512, fps=24.3) as w:
            for frame in frames:
                w.write(frame)

    ``fps`` frames per second (24.3 is stored exactly as 243/10); ``crf`` the x264 constant rate
    factor (0 lossless … 51 worst; 14 is what submissions use); ``gop`` the keyframe interval in
    frames (``None``: the encoder's default, 250 for x264); ``pix_fmt`` the stored pixel format
    (``yuv420p`` needs even width and height); ``codec`` an ffmpeg encoder name.

    The frame size is exactly ``width``×``height``: no padding to macroblock multiples, no
    quality setting besides ``-crf``. :meth:`write` checks each frame's shape and dtype itself
    (ffmpeg would silently drop a wrongly sized frame). On a clean exit ffmpeg is closed and a
    :class:`VideoWriteError` is raised if it failed. On an exception the encoder is stopped and the
    exception propagates; the partial file stays where it is, so callers write to a temporary name
    and rename it when the writer returns.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float,
        *,
        crf: int | None = 14,
        gop: int | None = None,
        pix_fmt: str = "yuv420p",
        codec: str = "libx264",
    ) -> None:
        self.path = os.fspath(path)
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.path}: frame size must be positive, got width={width} height={height}")
        if pix_fmt in ("yuv420p", "nv12") and (self.width % 2 or self.height % 2):
            raise ValueError(
                f"{self.path}: {pix_fmt} needs even width and height, got {self.width}x{self.height}"
            )
        if fps <= 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        if gop is not None and int(gop) < 1:
            raise ValueError(f"{self.path}: gop (keyframe interval) must be >= 1, got {gop}")
        self.fps = float(fps)
        self.crf, self.gop, self.pix_fmt, self.codec = crf, gop, pix_fmt, codec
        self.n_written = 0
        self._gen = None
        self._proc = None
        self._closed = False

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)``: the shape :meth:`write` accepts."""
        return (self.height, self.width, 3)

    def _output_params(self) -> list[str]:
        params = []
        if self.crf is not None:
            params += ["-crf", str(self.crf)]
        if self.gop is not None:
            params += ["-g", str(int(self.gop))]
        return params

    def open(self) -> VideoWriter:
        """Start ffmpeg (done by ``with``); returns ``self``."""
        import imageio_ffmpeg

        if self._gen is not None:
            return self
        self._gen = imageio_ffmpeg.write_frames(
            self.path,
            (self.width, self.height),
            pix_fmt_in="rgb24",
            pix_fmt_out=self.pix_fmt,
            fps=Fraction(self.fps).limit_denominator(1001),
            quality=None,
            codec=self.codec,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=self._output_params(),
        )
        self._gen.send(None)
        # imageio-ffmpeg does not report ffmpeg's exit status: keep its process handle to check it.
        frame = getattr(self._gen, "gi_frame", None)
        self._proc = frame.f_locals.get("p") if frame is not None else None
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(height, width, 3) uint8`` RGB frame.

        Raises ValueError naming the expected and found shape/dtype for any other array, and
        :class:`VideoWriteError` if ffmpeg has died.
        """
        if self._closed:
            raise ValueError(f"{self.path}: write() on a closed VideoWriter")
        if self._gen is None:
            self.open()
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {self.n_written}: expected dtype uint8, found {frame.dtype}")
        if frame.shape != self.frame_shape:
            raise ValueError(
                f"{self.path}: frame {self.n_written}: expected shape {self.frame_shape} (height, width, rgb), "
                f"found {frame.shape}"
            )
        try:
            self._gen.send(np.ascontiguousarray(frame))
        except OSError as e:
            self._abort()
            raise VideoWriteError(f"{self.path}: ffmpeg stopped accepting frames at frame {self.n_written}: {e}") from None
        self.n_written += 1

    def close(self) -> None:
        """Flush and close ffmpeg; raise :class:`VideoWriteError` if it failed or wrote nothing."""
        if self._closed:
            return
        self._closed = True
        if self.n_written == 0:
            self._abort()
            raise VideoWriteError(f"{self.path}: no frames were written; a video needs at least one frame")
        self._gen.close()
        rc = self._proc.wait() if self._proc is not None else 0
        if rc != 0:
            raise VideoWriteError(f"{self.path}: ffmpeg exited with code {rc} while encoding {self.n_written} frames")
        if not os.path.isfile(self.path) or os.path.getsize(self.path) == 0:
            raise VideoWriteError(f"{self.path}: ffmpeg wrote no file for {self.n_written} frames")

    def _abort(self) -> None:
        self._closed = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._gen is not None:
            try:
                self._gen.close()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass

    def __enter__(self) -> VideoWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

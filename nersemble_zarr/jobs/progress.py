"""Progress of long work on stderr: done, rate, ETA (tqdm), safe to update from worker threads."""

from __future__ import annotations

import sys
import threading
import time


class ConvertProgress:
    """Thread-safe progress counter drawn with tqdm on stderr (or silent when ``enabled=False``).

    ``total_frames``: frames of all video units to convert; ``total_units``: units to run.
    ``frames(n)`` may be called from worker threads; ``unit_done()`` from the driver.
    """

    def __init__(self, total_units: int, total_frames: int, *, enabled: bool = True) -> None:
        self.total_units = total_units
        self.total_frames = total_frames
        self.units_done = 0
        self.frames_done = 0
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_frames, unit="frame", desc="converting", file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1, postfix=self._postfix(),
            )

    def _postfix(self) -> str:
        return f"units {self.units_done}/{self.total_units}"

    def frames(self, n: int) -> None:
        """``n`` more frames are written."""
        with self._lock:
            self.frames_done += n
            if self._bar is not None:
                self._bar.update(n)

    def unit_done(self) -> None:
        """One more unit finished (done or failed)."""
        with self._lock:
            self.units_done += 1
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix(), refresh=True)

    @property
    def elapsed(self) -> float:
        """Seconds since start."""
        return time.perf_counter() - self.started

    def close(self) -> None:
        """Finish the bar (leaves the last line on screen)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FrameProgress:
    """Thread-safe counter of work done (``unit``, frames by default) drawn with tqdm on stderr.

    Silent when ``enabled`` is False or ``total`` is 0; ``update(n)`` may be called from any thread.
    """

    def __init__(self, total: int, enabled: bool = True, *, desc: str = "", unit: str = "frame") -> None:
        self._lock = threading.Lock()
        self._bar = None
        if enabled and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int) -> None:
        """``n`` more units are done."""
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def set_postfix(self, text: str) -> None:
        """Show ``text`` after the counts and rate (e.g. ``units 3/5``)."""
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        """Finish the bar (leaves the last line on screen)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

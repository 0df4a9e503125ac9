"""Progress of long work on stderr: done, rate, ETA (tqdm), safe to update from worker threads."""

from __future__ import annotations

import sys
import threading


class FrameProgress:
    """Thread-safe counter of work done (``unit``, frames by default) drawn with tqdm on stderr.

    Silent when ``enabled`` is False or ``total`` is 0; ``update(n)`` may be called from any thread.
    """

    def __init__(self, total: int, enabled: bool = True, *, desc: str = "", unit: str = "frame") -> None:
        self._lock = threading.Lock()
        self._bar = None
        if enabled and total:
            from tqdm import tqdm

            # unit "B": sizes and rates as KiB, MiB, ... (1024-based)
            scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
            self._bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, **scale)

    def update(self, n: int) -> None:
        """``n`` more units are done."""
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def add_total(self, n: int) -> None:
        """``n`` more units to do than the total said so far (work whose size is learnt on the way: bytes of a
        download whose sizes arrive with the answers)."""
        if self._bar is not None and n:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

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

"""Read ahead: the one way a job overlaps producing its next item with working on the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any


class Prefetch:
    """Iterate ``source`` in a background thread up to ``depth`` items ahead, so producing the next item (an
    ffmpeg decode, a store read: numpy, zarr's codecs and pipes release the GIL) overlaps the consumer's work
    on this one. Errors of ``source`` are raised in the consumer; ``source`` is closed in its own thread when
    the iteration ends (exhausted, broken off or failed), before ``__iter__`` returns."""

    _END = object()

    def __init__(self, source: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._pump, name="frame-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            for item in self._source:
                if not self._put((True, item)):
                    return
            self._put((True, self._END))
        except BaseException as e:  # noqa: BLE001  re-raised in the consumer
            self._put((False, e))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                ok, item = self._queue.get()
                if not ok:
                    raise item
                if item is self._END:
                    return
                yield item
        finally:
            self._stop.set()
            self._thread.join()

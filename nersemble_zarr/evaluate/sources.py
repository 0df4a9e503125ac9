"""Where predicted frames come from: a submission zip, a renders store, or arrays in memory.

Every source is a small picklable object (a job may run on a worker process) that lists its videos as
``(participant, sequence, serial)`` keys and opens one video at a time as a :class:`Video`: its frame count
and an iterator of ``(H, W, 3) uint8`` frames in order, one frame (or one storage chunk of frames) in memory.

* :class:`ZipPredictions`: a submission zip (``<pid:03d>/<sequence>/cam_<serial>.mp4``, as ``submit``
  writes it). A video is copied out of the zip into a temporary file and decoded by streaming through
  :func:`nersemble_zarr.raw.video.iter_frames` (ffmpeg); the file is removed when the video is closed.
* :class:`RendersPredictions`: a renders Zarr store in the ``submit`` layout
  (:func:`nersemble_zarr.submission.writer.find_renders`), read one storage chunk of frames at a time.
* :class:`ArrayPredictions`: ``{(participant, sequence, serial): frames}`` with frames a numpy/dask array
  ``(T, H, W, 3)``, an xarray DataArray, or an xarray Dataset holding ``images`` (optionally with a
  ``camera`` dimension, then the key's serial is selected). uint8 0–255, or float in [0, 1] (rounded to uint8
  as ``submit --float-input`` does).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import NersembleZarrError
from ..submission.writer import VideoKey, find_renders, parse_submission_path

#: Frames per read from an array without its own chunking along time.
_SLAB = 16


class PredictionError(NersembleZarrError):
    """Predictions that cannot be read or do not fit (not a zip/store, a foreign file, wrong shape or dtype)."""


@dataclass
class Video:
    """One opened prediction video: ``n_frames`` frames of ``height`` × ``width``, streamed by ``frames``."""

    n_frames: int
    height: int
    width: int
    frames: Iterator[np.ndarray]


def _label(key: VideoKey) -> str:
    p, s, c = key
    return f"{p:03d}/{s}/cam_{c}"


def _to_uint8(frames: np.ndarray, where: str) -> np.ndarray:
    """``(..., H, W, 3)`` frames as uint8: uint8 as is, float in [0, 1] rounded from ``x · 255``."""
    if frames.dtype == np.uint8:
        return frames
    if np.issubdtype(frames.dtype, np.floating):
        if not np.all(np.isfinite(frames)) or frames.min(initial=0) < 0 or frames.max(initial=0) > 1:
            raise PredictionError(f"{where}: float frames must be finite and in [0, 1]")
        return np.round(frames * 255.0).astype(np.uint8)
    raise PredictionError(f"{where}: frames must be uint8 (0-255) or float in [0, 1], found {frames.dtype}")


class ZipPredictions:
    """The videos of a submission zip, decoded by streaming (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (OSError, zipfile.BadZipFile) as e:
            raise PredictionError(f"{self.path}: not a readable zip ({e})") from None
        self._names: dict[VideoKey, str] = {}
        for name in names:
            key = parse_submission_path(name)
            if key is None:
                raise PredictionError(
                    f"{self.path}: holds {name!r}, which is not a submission video (<pid:03d>/<sequence>/cam_<serial>.mp4)"
                )
            self._names[key] = name

    def keys(self) -> list[VideoKey]:
        """The videos in the zip, sorted."""
        return sorted(self._names)

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def open(self, key: VideoKey) -> Iterator[Video]:
        """The video ``key`` copied to a temporary file and streamed through ffmpeg (removed on exit)."""
        from ..raw.video import iter_frames, probe_video

        name = self._names.get(key)
        if name is None:
            raise PredictionError(f"{self.path}: has no video {_label(key)}")
        folder = tempfile.mkdtemp(prefix=".nersemble-evaluate-")
        try:
            mp4 = os.path.join(folder, "video.mp4")
            with zipfile.ZipFile(self.path) as zf, zf.open(name) as src, open(mp4, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            try:
                info = probe_video(mp4)
            except NersembleZarrError as e:
                raise PredictionError(f"{self.path}: {name}: {e}") from None
            frames = iter_frames(mp4)
            try:
                yield Video(info.n_frames, info.height, info.width, frames)
            finally:
                frames.close()  # stops ffmpeg if the consumer stopped early
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _iter_array(array: Any, where: str) -> Iterator[np.ndarray]:
    """Frames of a ``(T, H, W, 3)`` numpy/dask/zarr array, one chunk (or 16 frames) read at a time."""
    chunks = getattr(array, "chunks", None)
    step = _SLAB
    if chunks is not None and len(chunks) and chunks[0]:
        first = chunks[0]
        step = max(1, int(first[0] if isinstance(first, tuple) else first))
    for t0 in range(0, int(array.shape[0]), step):
        slab = array[t0: t0 + step]
        slab = np.asarray(slab.compute() if hasattr(slab, "compute") else slab)
        slab = _to_uint8(slab, f"{where} frames {t0}..{t0 + len(slab) - 1}")
        yield from slab


def _check_frames_shape(shape: tuple[int, ...], where: str) -> None:
    if len(shape) != 4 or shape[3] != 3:
        raise PredictionError(f"{where}: expected frames (T, H, W, 3), found shape {tuple(shape)}")


class RendersPredictions:
    """The videos of a renders Zarr store in the ``submit`` layout, read a storage chunk at a time.

    ``validation=True`` (default) accepts train cameras as well as the scored ones (validation renders)."""

    def __init__(self, renders: Any, benchmark: str, *, validation: bool = True) -> None:
        self.renders = renders
        self.benchmark = benchmark
        self.validation = validation
        self._keys = sorted(self._videos())

    def _videos(self) -> dict[VideoKey, Any]:
        return find_renders(self.renders, self.benchmark, validation=self.validation)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def keys(self) -> list[VideoKey]:
        return list(self._keys)

    def describe(self) -> str:
        return str(self.renders)

    @contextmanager
    def open(self, key: VideoKey) -> Iterator[Video]:
        array = self._videos().get(key)
        if array is None:
            raise PredictionError(f"renders {self.renders}: has no video {_label(key)}")
        _check_frames_shape(array.shape, f"renders {_label(key)}")
        yield Video(int(array.shape[0]), int(array.shape[1]), int(array.shape[2]), _iter_array(array, f"renders {_label(key)}"))


class ArrayPredictions:
    """Predictions in memory or lazy: ``{(participant, sequence, serial): frames}`` (see the module docstring)."""

    def __init__(self, videos: Mapping[Any, Any]) -> None:
        self.videos: dict[VideoKey, Any] = {}
        for key, value in videos.items():
            try:
                p, s, c = key
                norm = (int(p), str(s), str(c))
            except (TypeError, ValueError):
                raise PredictionError(f"prediction keys must be (participant, sequence, serial), not {key!r}") from None
            self.videos[norm] = value

    def keys(self) -> list[VideoKey]:
        return sorted(self.videos)

    def describe(self) -> str:
        return f"{len(self.videos)} arrays"

    @staticmethod
    def _array(value: Any, key: VideoKey) -> Any:
        import xarray as xr

        if isinstance(value, xr.Dataset):
            if "images" not in value:
                raise PredictionError(f"{_label(key)}: the Dataset has no 'images' variable")
            value = value["images"]
        if isinstance(value, xr.DataArray):
            if "camera" in value.dims:
                value = value.sel(camera=key[2])
            if "timestep" in value.dims:
                value = value.transpose("timestep", ...)
            value = value.data
        return value

    @contextmanager
    def open(self, key: VideoKey) -> Iterator[Video]:
        if key not in self.videos:
            raise PredictionError(f"no prediction for {_label(key)}")
        array = self._array(self.videos[key], key)
        _check_frames_shape(tuple(array.shape), f"prediction {_label(key)}")
        yield Video(int(array.shape[0]), int(array.shape[1]), int(array.shape[2]), _iter_array(array, f"prediction {_label(key)}"))


Predictions = ZipPredictions | RendersPredictions | ArrayPredictions


def as_predictions(predictions: Any, benchmark: str | None) -> Predictions:
    """A prediction source for ``predictions``: a source as is, a mapping of arrays, a ``.zip`` file, else a
    renders store (path, URL or ``zarr.Group``; needs ``benchmark``)."""
    if isinstance(predictions, (ZipPredictions, RendersPredictions, ArrayPredictions)):
        return predictions
    if isinstance(predictions, Mapping):
        return ArrayPredictions(predictions)
    if isinstance(predictions, (str, os.PathLike)):
        path = Path(predictions)
        if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
            return ZipPredictions(path)
        if not path.exists() and "://" not in str(predictions):
            raise PredictionError(f"predictions {predictions}: no such file or folder")
    if benchmark is None:
        raise PredictionError(f"predictions {predictions}: a renders store needs the benchmark (-b nvs or -b mono_flame_avatar)")
    return RendersPredictions(predictions, benchmark)


__all__ = [
    "ArrayPredictions", "PredictionError", "Predictions", "RendersPredictions", "Video", "ZipPredictions",
    "as_predictions",
]

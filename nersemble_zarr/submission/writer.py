"""Benchmark submissions: rendered frames → H.264 mp4s (crf 14) → one zip, streamed and crash-safe.

:class:`SubmissionWriter` takes renders as numpy arrays, dask arrays, zarr arrays or lists of
frames and encodes them frame by frame (a dask array one chunk of frames at a time, a numpy array
never copied whole) into ffmpeg's libx264 at the benchmark's exact resolution and fps. Everything
that can be checked before encoding is checked first: the participant/sequence/serial is scored
by the benchmark, shape and dtype, the frame count against the benchmark's metadata, NaN/inf and
range of float input.

On disk, an unfinished submission ``<target>`` is a staging folder ``<target>.partial/`` holding
one finished mp4 per video at its zip path (``<pid:03d>/<sequence>/cam_<serial>.mp4``). A video is
encoded to a hidden temporary file in that folder and renamed into place only after ffmpeg has
closed cleanly with every frame written, so the folder only ever holds complete videos.
:meth:`SubmissionWriter.finalize` packs them (sorted, ``ZIP_STORED``, fixed timestamps, so the
same videos always give the same zip bytes) into a temporary zip that is renamed onto the target,
then removes the folder. An exception or a killed process therefore never leaves a file at the
target path; the staging folder survives, and ``mode="a"`` continues it. ``mode="a"`` on a
finalized zip (and no staging folder) unpacks its videos into a new staging folder first, so
videos can be added after a finalize too. Either way the result equals a single run. That mechanism
(staging folder, lock, atomic members, atomic zip) is :class:`~nersemble_zarr.submission.staging.StagedZipWriter`,
shared with the SVFR mesh writer.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.benchmark import MONO, NVS, Benchmark, get_benchmark, participant_dir, submission_video_path
from ..jobs.runner import JobOutcome, run_jobs
from .staging import StagedZipWriter, SubmissionError, staging_folder

__all__ = [
    "SubmissionError",
    "SubmissionWriter",
    "NVSSubmissionDataWriter",
    "MonoFlameAvatarSubmissionDataWriter",
    "VideoKey",
    "load_frame_counts",
    "find_renders",
    "write_submission",
    "parse_submission_path",
    "staging_folder",
    "SUBMISSION_CRF",
]

#: The constant rate factor the benchmark asks for (lower is better quality, 0 lossless).
SUBMISSION_CRF = 14
#: ``(participant, sequence, serial)`` of one submitted video.
VideoKey = tuple[int, str, str]

#: Frames per slab when reading an array that has no chunking of its own along time.
_DEFAULT_SLAB = 16
_SUBMISSION_PATH = re.compile(r"^(\d{3})/([^/]+)/cam_(\d+)\.mp4$")


def parse_submission_path(name: str) -> VideoKey | None:
    """``"388/GLASSES/cam_222200046.mp4"`` → ``(388, "GLASSES", "222200046")``; None for any other name.

    Only the syntax is checked here; whether the benchmark scores the key is the caller's question.
    """
    m = _SUBMISSION_PATH.match(name)
    if m is None:
        return None
    key = (int(m.group(1)), m.group(2), m.group(3))
    return key if submission_video_path(*key) == name else None


def _label(benchmark: str, key: VideoKey) -> str:
    return f"{benchmark} {submission_video_path(*key)}"


def check_scored(benchmark: Benchmark, key: VideoKey, *, validation: bool = False) -> VideoKey:
    """Return ``key`` normalised (``int`` participant, ``str`` serial) if the benchmark scores it.

    ``validation=True`` also accepts renders of published frames for local evaluation (``nersemble-zarr
    evaluate``): a train camera of a sequence with video.

    Raises :class:`SubmissionError` saying which of participant, sequence or serial is wrong and
    what the benchmark expects instead.
    """
    participant, sequence, serial = key
    try:
        participant = int(participant)
    except (TypeError, ValueError):
        raise SubmissionError(f"{benchmark.name}: participant must be an integer id, not {participant!r}") from None
    serial = str(serial)
    where = f"{benchmark.name} {participant_dir(participant)}/{sequence}/cam_{serial}"
    if participant not in benchmark.participants:
        raise SubmissionError(
            f"{where}: participant {participant} is not scored by the {benchmark.name} benchmark "
            f"(expected one of {', '.join(map(str, benchmark.participants))})"
        )
    scored_sequences = sorted({s for p, s, _ in benchmark.submission_keys() if p == participant})
    if validation and participant in benchmark.participants and sequence in benchmark.video_sequences(participant) \
            and serial in benchmark.train_serials:
        return (participant, sequence, serial)
    if sequence not in scored_sequences:
        raise SubmissionError(
            f"{where}: sequence {sequence!r} is not scored for participant {participant_dir(participant)} "
            f"(expected one of {', '.join(scored_sequences)})"
        )
    if serial not in benchmark.evaluation_serials:
        raise SubmissionError(
            f"{where}: camera {serial} is not scored by the {benchmark.name} benchmark "
            f"(expected one of {', '.join(benchmark.evaluation_serials)})"
        )
    return (participant, sequence, serial)


# ---------------------------------------------------------------------------------------------
# Metadata: frame counts a submission must have
# ---------------------------------------------------------------------------------------------


def load_frame_counts(source: str | os.PathLike | Mapping, benchmark: str) -> dict[tuple[int, str], int]:
    """Frame count per ``(participant, sequence)`` from the benchmark's ``metadata.json``.

    ``source`` is any of: a raw benchmark root (holding ``<benchmark>/metadata.json``), the
    ``<root>/<benchmark>`` folder itself, a ``metadata.json`` file, a converted Zarr store (local
    path or fsspec URL; the converter keeps the json in the ``<benchmark>`` group's attrs under
    ``"metadata"``), or an already loaded metadata dict. Raises :class:`SubmissionError` naming the
    source and what was looked for when none of these fits.
    """
    from ..raw.metadata import parse_metadata, read_metadata

    if isinstance(source, Mapping):
        return dict(parse_metadata(dict(source), benchmark).frame_counts)
    text = os.fspath(source)
    local = Path(text)
    if "://" not in text:
        if local.is_file():
            return dict(read_metadata(local, benchmark).frame_counts)
        for candidate in (local / benchmark / "metadata.json", local / "metadata.json"):
            if candidate.is_file():
                return dict(read_metadata(candidate, benchmark).frame_counts)
        if not local.exists():
            raise SubmissionError(f"metadata source {text} does not exist (expected a raw benchmark folder or a store)")
    import zarr

    try:
        root = zarr.open_group(text, mode="r")
        meta = root[benchmark].attrs.get("metadata") if benchmark in root else None
    except Exception as e:  # zarr raises assorted errors for a folder that is no store
        raise SubmissionError(
            f"metadata source {text}: expected a raw benchmark folder with {benchmark}/metadata.json or a "
            f"converted store, found neither ({type(e).__name__}: {e})"
        ) from None
    if meta is None:
        raise SubmissionError(
            f"metadata source {text}: the store has no {benchmark!r} group with a 'metadata' attribute "
            f"(convert the {benchmark} benchmark into it, or pass the raw folder)"
        )
    return dict(parse_metadata(dict(meta), benchmark).frame_counts)


# ---------------------------------------------------------------------------------------------
# Frame sources: numpy, dask, zarr/array-likes, lists of frames
# ---------------------------------------------------------------------------------------------


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.") and hasattr(x, "blocks")


@dataclass
class _Frames:
    """A validated frame source: its kind, frame count and how to stream it in slabs."""

    kind: Literal["numpy", "dask", "array", "list"]
    data: Any
    n_frames: int
    is_float: bool

    def slabs(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first frame index, (t, H, W, 3) array)``; only one slab is in memory at a time."""
        if self.kind == "numpy":
            step = _DEFAULT_SLAB if self.is_float else max(self.n_frames, 1)
            for t0 in range(0, self.n_frames, step):
                yield t0, self.data[t0:t0 + step]  # views: a numpy input is never copied whole
        elif self.kind == "dask":
            t0 = 0
            for i in range(self.data.numblocks[0]):
                block = np.asarray(self.data.blocks[i].compute())
                yield t0, block
                t0 += block.shape[0]
        elif self.kind == "array":
            step = _time_step(self.data)
            for t0 in range(0, self.n_frames, step):
                yield t0, np.asarray(self.data[t0:t0 + step])
        else:
            for t, frame in enumerate(self.data):
                yield t, np.asarray(frame)[None]


@dataclass(frozen=True)
class _EncodeJob:
    """One video to encode: its label (for errors), final staged path, frames and the benchmark's format."""

    label: str
    final: Path
    source: _Frames
    width: int
    height: int
    fps: float
    crf: int


def _encode_video(job: _EncodeJob, advance: Callable[[int], None]) -> Path:
    """Stream ``job.source`` into a temporary mp4 beside ``job.final`` and rename it into place; ``advance(n)``
    after every ``n`` frames. Runs where the job runs (a thread here or a dask worker)."""
    from ..raw.video_writer import VideoWriteError, VideoWriter

    label, final, source = job.label, job.final, job.source
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = SubmissionWriter._temp_file(final)
    try:
        with VideoWriter(tmp, job.width, job.height, job.fps, crf=job.crf, pix_fmt="yuv420p", codec="libx264") as vw:
            for t0, slab in source.slabs():
                if slab.ndim != 4 or slab.shape[1:] != (job.height, job.width, 3):
                    raise SubmissionError(
                        f"{label}: frames {t0}..: expected shape (t, {job.height}, {job.width}, 3), found {slab.shape}"
                    )
                if not source.is_float and slab.dtype != np.uint8:
                    raise SubmissionError(f"{label}: frames {t0}..: expected uint8, found {slab.dtype}")
                for j, frame in enumerate(slab):
                    # float frames are converted one at a time: no float temporaries of a whole slab
                    vw.write(_to_uint8(frame[None], t0 + j, label)[0] if source.is_float else frame)
                advance(len(slab))
        if vw.n_written != source.n_frames:  # a list or array-like that lied about its length
            raise SubmissionError(f"{label}: expected {source.n_frames} frames, the frame source yielded {vw.n_written}")
        os.replace(tmp, final)
    except VideoWriteError as e:
        tmp.unlink(missing_ok=True)
        raise SubmissionError(f"{label}: encoding failed: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _raise_failure(outcome: JobOutcome) -> None:
    """``on_result``: the first failed video stops the run with its own error."""
    if not outcome.ok:
        raise outcome.exception if outcome.exception is not None else SubmissionError(str(outcome.error))


def _slab_length(chunk: int) -> int:
    """The smallest multiple of a storage chunk length (frames) that holds at least 16 frames."""
    return chunk * max(1, -(-_DEFAULT_SLAB // chunk))


def _storage_chunk(array: Any, axis: int) -> int | None:
    """Length along ``axis`` of one stored object of a zarr-like array (its shard if sharded, else chunk)."""
    for attr in ("shards", "chunks"):
        chunks = getattr(array, attr, None)
        if chunks and isinstance(chunks[axis], (int, np.integer)) and chunks[axis] > 0:
            return int(chunks[axis])
    return None


def _time_step(array: Any) -> int:
    """Frames per read of an array-like: whole stored objects along time, at least 16 frames."""
    chunk = _storage_chunk(array, 0)
    return _DEFAULT_SLAB if chunk is None else _slab_length(chunk)


def _as_frames(frames: Any, label: str, height: int, width: int, float_input: bool) -> _Frames:
    """Check shape and dtype of ``frames`` without reading pixel data; raise SubmissionError if wrong."""
    if type(frames).__module__.startswith("xarray.") and hasattr(frames, "data"):
        frames = frames.data
    if isinstance(frames, (list, tuple)):
        shapes = {np.shape(f) for f in frames}
        dtypes = {np.dtype(f.dtype) if hasattr(f, "dtype") else np.asarray(f).dtype for f in frames}
        if len(frames) == 0:
            raise SubmissionError(f"{label}: expected at least one frame, found an empty list")
        if shapes != {(height, width, 3)}:
            bad = next(i for i, f in enumerate(frames) if np.shape(f) != (height, width, 3))
            raise SubmissionError(
                f"{label}: expected every frame of shape (H, W, 3) = ({height}, {width}, 3), "
                f"found {np.shape(frames[bad])} at frame {bad}"
            )
        if len(dtypes) != 1:
            raise SubmissionError(f"{label}: expected frames of one dtype, found {sorted(map(str, dtypes))}")
        kind, shape, dtype = "list", (len(frames), height, width, 3), dtypes.pop()
    elif isinstance(frames, np.ndarray):
        kind, shape, dtype = "numpy", frames.shape, frames.dtype
    elif _is_dask(frames):
        kind, shape, dtype = "dask", frames.shape, np.dtype(frames.dtype)
    elif hasattr(frames, "shape") and hasattr(frames, "dtype") and hasattr(frames, "__getitem__"):
        kind, shape, dtype = "array", tuple(frames.shape), np.dtype(frames.dtype)
    else:
        raise SubmissionError(
            f"{label}: expected frames as a numpy/dask/zarr array (T, H, W, 3) or a list of (H, W, 3) frames, "
            f"found {type(frames).__name__}"
        )
    if len(shape) != 4 or tuple(shape[1:]) != (height, width, 3):
        raise SubmissionError(
            f"{label}: expected frames of shape (T, {height}, {width}, 3) (T frames, height, width, RGB), found {shape}"
        )
    if kind == "dask" and any(np.isnan(c) for c in frames.chunks[0]):
        raise SubmissionError(f"{label}: the dask array has unknown chunk sizes; call .compute_chunk_sizes() first")
    n = int(shape[0])
    if n == 0:
        raise SubmissionError(f"{label}: expected at least one frame, found 0")
    is_float = np.issubdtype(dtype, np.floating)
    if is_float and not float_input:
        raise SubmissionError(
            f"{label}: expected uint8 frames (0-255), found {dtype}; pass float_input=True (--float-input) "
            f"for float frames in [0, 1]"
        )
    if not is_float and dtype != np.uint8:
        raise SubmissionError(
            f"{label}: expected uint8 frames (0-255){' or float in [0, 1]' if float_input else ''}, found {dtype}"
        )
    return _Frames(kind, frames, n, is_float)


def _to_uint8(slab: np.ndarray, t0: int, label: str) -> np.ndarray:
    """``(t, H, W, 3)`` float in [0, 1] → uint8 (``round(x · 255)``); raise naming the frame on NaN/inf/range."""
    finite = np.isfinite(slab).all(axis=(1, 2, 3))
    if not finite.all():
        raise SubmissionError(f"{label}: frame {t0 + int(np.argmin(finite))} holds NaN or inf values")
    lo, hi = slab.min(axis=(1, 2, 3)), slab.max(axis=(1, 2, 3))
    bad = np.flatnonzero((lo < 0) | (hi > 1))
    if bad.size:
        t = int(bad[0])
        raise SubmissionError(
            f"{label}: float frames must lie in [0, 1], frame {t0 + t} spans [{float(lo[t]):.6g}, {float(hi[t]):.6g}] "
            f"(clip them, or pass uint8 frames)"
        )
    return (slab * 255 + 0.5).astype(np.uint8)


def _precheck_float(frames: _Frames, label: str) -> None:
    """NaN/inf/range of in-memory float input, one slab at a time, before anything is encoded."""
    for t0, slab in frames.slabs():
        for j in range(len(slab)):
            _to_uint8(slab[j:j + 1], t0 + j, label)


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------


class SubmissionWriter(StagedZipWriter):
    """Write a benchmark submission zip by streaming renders into crf-14 H.264 videos.

    ``with SubmissionWriter("submission.zip", "nvs", metadata="data/raw") as w:
    w.add_video(388, "GLASSES", "222200046", frames)`` — on a clean exit the zip is finalized
    (``finalize=False`` keeps the staging folder for later ``mode="a"`` runs instead); on an
    exception nothing is written at the target and the finished videos stay staged.

    Args:
        zip_path: The target zip. Written only by :meth:`finalize`, atomically (temporary name +
            rename). An existing file there is replaced then, never before.
        benchmark: ``"nvs"`` (1100×1604 at 73 fps) or ``"mono_flame_avatar"`` (512×512 at 24.3 fps).
        mode: ``"w"`` starts a new submission (discarding an earlier unfinished one); ``"a"``
            continues the unfinished one at ``<zip_path>.partial/``, or, if there is none, adds to
            the finalized zip at ``zip_path``, or starts a new one.
        metadata: Frame counts to enforce: a raw folder, ``metadata.json``, store or metadata dict
            (see :func:`load_frame_counts`), or a ``{(participant, sequence): n_frames}`` mapping.
            ``None`` skips the frame-count check (the validator still needs it).
        finalize: Whether a clean exit of the ``with`` block packs the zip.
        crf: libx264 constant rate factor; the benchmark asks for 14.
        progress: Show a progress bar (frames done, rate, ETA) on stderr.
        validation: Also accept train cameras of sequences with video (renders of published frames, for
            ``nersemble-zarr evaluate``); such a zip is for local evaluation, not for the server.

    Only one writer may use a target at a time (an OS lock on the staging folder enforces it).
    """

    def __init__(
        self,
        zip_path: str | os.PathLike,
        benchmark: str,
        *,
        mode: Literal["w", "a"] = "w",
        metadata: str | os.PathLike | Mapping | None = None,
        finalize: bool = True,
        crf: int = SUBMISSION_CRF,
        progress: bool = False,
        validation: bool = False,
    ) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', not {mode!r}")
        self.benchmark = get_benchmark(benchmark)
        self.crf = int(crf)
        self.progress = progress
        self.validation = bool(validation)
        self._frame_counts = self._resolve_metadata(metadata)
        super().__init__(zip_path, self.benchmark.name, mode=mode, finalize=finalize, compression=zipfile.ZIP_STORED)

    # -- setup ---------------------------------------------------------------------------------

    def _resolve_metadata(self, metadata: Any) -> dict[tuple[int, str], int] | None:
        if metadata is None:
            return None
        if isinstance(metadata, Mapping) and all(isinstance(k, tuple) for k in metadata):
            return {(int(p), str(s)): int(n) for (p, s), n in metadata.items()}
        return load_frame_counts(metadata, self.benchmark.name)

    def _accept_member(self, name: str) -> None:
        """A finalized zip is appended to only if it holds nothing but scored videos."""
        key = parse_submission_path(name)
        if key is None:
            raise SubmissionError(
                f"cannot append to {self.zip_path}: it holds {name!r}, which is not a "
                f"submission video (<pid:03d>/<sequence>/cam_<serial>.mp4)"
            )
        check_scored(self.benchmark, key, validation=self.validation)

    # -- paths ---------------------------------------------------------------------------------

    def _video_file(self, key: VideoKey) -> Path:
        return self.staging / submission_video_path(*key)

    def videos(self) -> list[VideoKey]:
        """Keys of the videos staged so far (finished encodes only), sorted."""
        keys = []
        for path in self.staging.rglob("cam_*.mp4"):
            key = parse_submission_path(path.relative_to(self.staging).as_posix())
            if key is not None:
                keys.append(key)
        return sorted(keys)

    def members(self) -> list[str]:
        """Zip paths of the staged videos, in key order (the zip's order)."""
        return [submission_video_path(*key) for key in self.videos()]

    def missing(self) -> list[VideoKey]:
        """Scored keys that have no video yet (empty when the submission is complete)."""
        have = set(self.videos())
        return [k for k in self.benchmark.submission_keys() if k not in have]

    # -- adding videos -------------------------------------------------------------------------

    def _prepare(self, key: Sequence, frames: Any, float_input: bool, overwrite: bool) -> tuple[VideoKey, _Frames]:
        """All checks that need no pixel data (plus NaN/inf of in-memory float input)."""
        key = check_scored(self.benchmark, tuple(key), validation=self.validation)  # type: ignore[arg-type]
        label = _label(self.benchmark.name, key)
        if not overwrite and self._video_file(key).exists():
            raise SubmissionError(f"{label}: the submission already holds this video (pass overwrite=True to replace it)")
        b = self.benchmark
        source = _as_frames(frames, label, b.height, b.width, float_input)
        if self._frame_counts is not None:
            expected = self._frame_counts.get((key[0], key[1]))
            if expected is None:
                raise SubmissionError(f"{label}: the metadata lists no frame count for {participant_dir(key[0])}/{key[1]}")
            if source.n_frames != expected:
                raise SubmissionError(
                    f"{label}: expected {expected} frames (benchmark metadata), found {source.n_frames}"
                )
        if source.is_float and source.kind in ("numpy", "list"):
            _precheck_float(source, label)
        return key, source

    def add_video(
        self,
        participant: int,
        sequence: str,
        serial: str,
        frames: Any,
        *,
        float_input: bool = False,
        overwrite: bool = False,
    ) -> Path:
        """Encode one camera's renders into the submission; returns the staged mp4's path.

        ``frames``: ``(T, H, W, 3) uint8`` (0–255) as a numpy, dask or zarr array (an xarray
        DataArray is read through its ``.data``), or a list of ``(H, W, 3)`` frames; with
        ``float_input=True`` also float in [0, 1], mapped to ``round(x · 255)``. H×W must be the
        benchmark's (1604×1100 NVS, 512×512 mono) and T the metadata's frame count.

        Everything except pixel values is checked before encoding starts, and float values of
        numpy/list input too. Dask and zarr input is read one chunk of frames at a time, so NaN/inf
        and the [0, 1] range of float dask/zarr input are checked chunk by chunk while streaming;
        an error then aborts this video and leaves nothing of it in the submission.
        Adding a video the submission already holds raises unless ``overwrite=True``.
        """
        self._check_open()
        key, source = self._prepare((participant, sequence, serial), frames, float_input, overwrite)
        [path] = self._encode_all([(key, source)], submission_video_path(*key), threads=1)
        return path

    def add_videos(
        self,
        videos: Mapping[Sequence, Any],
        *,
        workers: int | None = None,
        scheduler: Any = None,
        threads: int | None = None,
        float_input: bool = False,
        overwrite: bool = False,
    ) -> list[Path]:
        """Encode many videos in parallel, one job of :func:`~nersemble_zarr.jobs.runner.run_jobs` per video
        streaming it to its own mp4 in the staging folder: on ``threads`` threads here (default one per core),
        on ``workers`` local worker processes, or on the dask cluster at ``scheduler`` (its workers must reach
        the staging folder and the frames: arrays are pickled to them, so prefer zarr/dask arrays there).

        ``videos`` maps ``(participant, sequence, serial)`` to frames as in :meth:`add_video`.
        Every video is checked before the first one is encoded. Memory stays bounded by
        ``threads`` (or workers) × one chunk of frames.
        If one video fails, the error is raised after the running encodes stop; videos that
        finished stay staged.
        """
        self._check_open()
        prepared = [self._prepare(key, frames, float_input, overwrite) for key, frames in videos.items()]
        keys = [k for k, _ in prepared]
        if len(set(keys)) != len(keys):
            raise SubmissionError(f"{self.benchmark.name}: the same video is given twice")
        return self._encode_all(prepared, f"{len(prepared)} videos", threads=threads, workers=workers,
                                scheduler=scheduler)

    def _encode_all(self, prepared: list[tuple[VideoKey, _Frames]], desc: str, *, threads: int | None = None,
                    workers: int | None = None, scheduler: Any = None) -> list[Path]:
        """Encode ``prepared`` videos, one :class:`_EncodeJob` each, through :func:`run_jobs`; the first failure
        is raised once the running encodes stopped. Progress: frames encoded."""
        b = self.benchmark
        jobs = [_EncodeJob(_label(b.name, key), self._video_file(key), source, b.width, b.height, b.fps, self.crf)
                for key, source in prepared]
        outcomes = run_jobs(jobs, _encode_video, workers=workers, scheduler=scheduler, threads=threads,
                            on_result=_raise_failure, progress=self.progress, desc=desc,
                            frames_of=lambda job: job.source.n_frames, live_progress=True, name="encode")
        return [o.result for o in outcomes]

    def finalize(self) -> Path:
        """Pack the staged videos into the zip at ``zip_path`` (atomic rename) and remove the staging folder.

        Entries are sorted, stored uncompressed (mp4 does not compress) with a fixed timestamp, so
        equal videos give a byte-identical zip. Incomplete submissions are packed too (the
        validator reports what is missing; see :meth:`missing`). Returns the zip's path.
        """
        return super().finalize()

    def __enter__(self) -> SubmissionWriter:
        return self


class NVSSubmissionDataWriter(SubmissionWriter):
    """Drop-in for the official ``NVSSubmissionDataWriter(zip_path)``: a :class:`SubmissionWriter` for ``"nvs"``."""

    def __init__(self, zip_path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(zip_path, NVS, **kwargs)


class MonoFlameAvatarSubmissionDataWriter(SubmissionWriter):
    """Drop-in for the official ``MonoFlameAvatarSubmissionDataWriter(zip_path)`` (``"mono_flame_avatar"``)."""

    def __init__(self, zip_path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(zip_path, MONO, **kwargs)


# ---------------------------------------------------------------------------------------------
# Renders stores
# ---------------------------------------------------------------------------------------------


def find_renders(renders: Any, benchmark: str, *, participants: Iterable[int] | None = None,
                 validation: bool = False) -> dict[VideoKey, Any]:
    """The videos in a renders Zarr group, as ``{(participant, sequence, serial): lazy (T, H, W, 3) array}``.

    Two layouts are read (see the README, "Submissions"):

    - ``<pid:03d>/<sequence>/<serial>``: one array ``(T, H, W, 3)`` per camera;
    - ``<pid:03d>/<sequence>/images``: one array ``(camera, T, H, W, 3)`` with a ``camera``
      coordinate array of serial strings next to it (an xarray Dataset as ``to_zarr`` writes it).

    ``renders`` is a path, fsspec URL or ``zarr.Group``. Arrays are returned as dask arrays chunked
    along time by whole storage chunks (≥ 16 frames), so nothing is read here. Every key must be
    scored by the benchmark (SubmissionError otherwise; ``validation=True`` also accepts train cameras, see
    :func:`check_scored`); ``participants`` restricts the result.

    Frames are read through the integrity guard (:mod:`nersemble_zarr.storage.integrity`): a missing chunk or
    shard, or one that fails its checksum or does not decode, raises a
    :class:`~nersemble_zarr.core.errors.StoreIntegrityError` naming it instead of encoding fill values. Write
    renders with ``write_empty_chunks=True`` (an all-fill-value frame is otherwise not stored and reads as
    missing) and, for checksums, ``compressors=nersemble_zarr.core.schema.compressor_chain()``.
    """
    import dask.array as da
    import zarr

    from ..core.errors import StoreIntegrityError
    from ..storage.integrity import GuardedArray, check_arrays, check_root, guard_store, reading, store_name
    from ..read.store import as_zarr_store

    b = get_benchmark(benchmark)
    if isinstance(renders, zarr.Group):
        group = zarr.open_group(guard_store(renders.store), path=renders.path, mode="r")
    else:
        try:
            zstore = as_zarr_store(renders)
            check_root(zstore, consolidated=False)  # a corrupt root zarr.json is named as such
            group = zarr.open_group(zstore, mode="r")
        except StoreIntegrityError:
            raise
        except Exception as e:  # missing path, not a store, unreachable URL: all the user's to fix
            raise SubmissionError(f"renders {os.fspath(renders)}: cannot open as a Zarr group ({type(e).__name__}: {e})") from None
    wanted = None if participants is None else {int(p) for p in participants}
    found: dict[VideoKey, Any] = {}
    for pid_name, pid_group in sorted(group.groups()):
        if not re.fullmatch(r"\d{3}", pid_name):
            continue
        pid = int(pid_name)
        if wanted is not None and pid not in wanted:
            continue
        for seq, seq_group in sorted(pid_group.groups()):
            check_arrays(seq_group)  # an array the (consolidated) metadata lists must be there and parse
            arrays = dict(seq_group.arrays())
            if "images" in arrays and "camera" in arrays:
                images = arrays["images"]
                with reading(store_name(group.store), arrays["camera"].path):
                    cameras = [str(c) for c in arrays["camera"][...]]
                _check_camera_major(images, cameras, f"renders {pid_name}/{seq}/images")
                step = _slab_length(_storage_chunk(images, 1) or 1)
                lazy = _guarded_dask(GuardedArray(images, {"camera": cameras}), (1, step, *images.shape[2:]))
                for i, serial in enumerate(cameras):
                    found[(pid, seq, serial)] = lazy[i]
            for name, array in arrays.items():
                if re.fullmatch(r"\d{9}", name):
                    found[(pid, seq, name)] = _guarded_dask(GuardedArray(array), (_time_step(array), *array.shape[1:]))
    for key in found:
        check_scored(b, key, validation=validation)
    return dict(sorted(found.items()))


def _guarded_dask(array: Any, chunks: tuple[int, ...]) -> Any:
    """A dask array over a :class:`~nersemble_zarr.storage.integrity.GuardedArray`: each block read through the guard."""
    import dask.array as da
    from dask.base import tokenize

    token = tokenize(str(array.array.store), array.path, array.shape, str(array.dtype))
    return da.from_array(array, chunks=chunks, name=f"renders-{token}", asarray=False, fancy=False, inline_array=True,
                         meta=np.empty((0,) * array.ndim, dtype=array.dtype))


def _check_camera_major(images: Any, cameras: list[str], where: str) -> None:
    """Refuse an ``images`` array that is not ``(camera, T, H, W, 3)`` with one camera per coordinate entry.

    Its camera axis is read from the array's dimension names (xarray writes them) when it has them: a
    ``(timestep, camera, …)`` array of as many cameras as frames would otherwise pass every shape check.
    """
    dims = getattr(getattr(images, "metadata", None), "dimension_names", None) or images.attrs.get("_ARRAY_DIMENSIONS")
    if dims and all(d is not None for d in dims) and str(dims[0]) != "camera":
        raise SubmissionError(
            f"{where}: expected dims (camera, timestep, height, width, rgb), found {tuple(map(str, dims))}; "
            f"transpose it camera-first (ds.transpose('camera', ...)) before writing"
        )
    if len(images.shape) != 5 or images.shape[0] != len(cameras):
        raise SubmissionError(
            f"{where}: expected shape (camera, T, H, W, 3) with {len(cameras)} cameras (the camera coordinate), "
            f"found {tuple(images.shape)}"
        )


def write_submission(
    renders: Any,
    benchmark: str,
    out: str | os.PathLike,
    *,
    metadata: str | os.PathLike | Mapping | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    mode: Literal["w", "a"] = "w",
    participants: Iterable[int] | None = None,
    float_input: bool = False,
    overwrite: bool = False,
    finalize: bool = True,
    progress: bool = False,
    validation: bool = False,
) -> tuple[Path, list[VideoKey]]:
    """Encode every video of a renders store (:func:`find_renders`) into the submission zip ``out``.

    Videos are checked first, then encoded in parallel (``threads`` here, ``workers`` local processes or the
    cluster at ``scheduler``, as in :meth:`SubmissionWriter.add_videos`), each streaming
    one video chunk by chunk; ``mode``/``finalize`` as in :class:`SubmissionWriter`. With
    ``mode="a"``, videos already in the submission are skipped unless ``overwrite``. Returns the
    zip path (or the staging folder when not finalized) and the keys encoded by this call. ``validation``:
    also train cameras (renders of published frames for ``evaluate``; see :func:`check_scored`).
    """
    videos = find_renders(renders, benchmark, participants=participants, validation=validation)
    if not videos:
        raise SubmissionError(
            f"{renders}: found no renders (<pid:03d>/<sequence>/<serial> arrays or <pid:03d>/<sequence>/images "
            f"with a camera coordinate)"
        )
    writer = SubmissionWriter(out, benchmark, mode=mode, metadata=metadata, finalize=finalize, progress=progress,
                              validation=validation)
    with writer:
        if mode == "a" and not overwrite:
            have = set(writer.videos())
            videos = {k: v for k, v in videos.items() if k not in have}
        writer.add_videos(videos, workers=workers, scheduler=scheduler, threads=threads, float_input=float_input,
                          overwrite=overwrite)
    return (writer.zip_path if finalize else writer.staging), list(videos)

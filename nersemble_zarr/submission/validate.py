"""Offline submission validator: the server's checks and more, before a real attempt is spent.

:func:`validate_submission` opens a submission zip and reports, per file, every defect the
benchmark server would reject or that would cost score: a missing expected video, an extra file,
a directory outside ``<pid:03d>/<sequence>/``, an absolute or ``..`` path, a duplicate entry, a
video that does not decode to the end, a frame count different from the metadata (or, without
metadata, cameras of one sequence that disagree), the wrong resolution, fps, codec (H.264) or
pixel format (yuv420p). Each video is decoded fully by ffmpeg and its frames counted. An x264
crf other than 14 (read from the encoder's settings string in the stream) and a (nearly) blank
video are warnings.

Bounded: an expected video is extracted (one at a time, into a temporary folder removed afterwards)
only when its declared size is at most :func:`max_video_bytes` (its frame count × width × height × 3
bytes + 1 MiB); a larger one is reported ``too_large`` without extracting a byte. The entry is read
from the zip by this module (stored or deflated; other methods through :mod:`zipfile`), checking
while it streams: the local header must declare the central directory's sizes, and the data must
yield exactly the declared number of bytes; extraction stops at the first byte past it
(``size_mismatch``). So temporary space never exceeds the bound of one video.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..core.benchmark import SVFR, Benchmark, get_benchmark, participant_dir, submission_video_path
from ..jobs.progress import FrameProgress
from ..raw.errors import RawFormatError
from ..raw.video import VideoInfo, ffmpeg_exe, probe_video
from .writer import SUBMISSION_CRF, SubmissionError, load_frame_counts, parse_submission_path

__all__ = [
    "Problem", "VideoReport", "ValidationReport", "validate_submission", "format_report", "PROBLEM_KINDS",
    "max_video_bytes",
]

#: Every problem kind the validator reports, with what it means.
PROBLEM_KINDS: dict[str, str] = {
    "not_a_zip": "the file is not a readable zip archive",
    "unsafe_path": "an absolute path, a '..' component or a backslash in an entry name",
    "duplicate": "the same entry name occurs more than once",
    "directory": "a directory entry outside the <pid:03d>/<sequence>/ scheme",
    "extra": "a file that is not one of the benchmark's expected videos",
    "missing": "an expected video is not in the zip",
    "unreadable": "the video cannot be read or does not decode to the end",
    "frame_count": "the number of frames differs from the metadata (or between cameras)",
    "resolution": "width x height differs from the benchmark's",
    "fps": "frame rate differs from the benchmark's",
    "codec": "the video codec is not H.264",
    "pix_fmt": "the pixel format is not yuv420p",
    "too_large": "the video is larger than any valid video of the benchmark can be (a zip bomb?): not extracted",
    "size_mismatch": "the entry's zip headers disagree on its size, or its data holds more or fewer bytes than declared",
}
#: Kinds reported as warnings: they do not fail validation.
WARNING_KINDS: dict[str, str] = {
    "crf": "x264 crf differs from 14, or the encoder's settings cannot be read",
    "no_metadata": "no metadata given: frame counts only compared between cameras",
    "not_checked": "entries of participants outside the chosen scope were not checked",
    "blank": "every frame is one flat colour, e.g. blank renders",
}
_FPS_TOLERANCE = 0.01
#: Bytes a valid video may hold beyond its raw frames: the mp4 boxes (moov, mdat), SEI and parameter sets.
CONTAINER_SLACK_BYTES = 1 << 20
#: Without metadata a sequence's frame count is unknown: the size bound assumes at most this long a video.
MAX_SECONDS_WITHOUT_METADATA = 120
_COPY_BYTES = 1 << 20
_X264_SETTINGS = re.compile(rb"x264 - core \d+.{0,4000}?\x00", re.S)


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` the zip entry (or the zip), ``kind`` a key of PROBLEM_KINDS/WARNING_KINDS."""

    path: str
    kind: str
    message: str


@dataclass
class VideoReport:
    """What one expected video holds. ``None`` where it could not be read; ``ok`` False on any problem."""

    path: str
    participant: int
    sequence: str
    serial: str
    present: bool
    n_frames: int | None = None
    expected_frames: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    crf: float | None = None
    blank: bool | None = None
    ok: bool = True


class Findings:
    """What every validation report answers from its ``problems`` (a list of :class:`Problem`)."""

    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        """The problem kinds found (warnings excluded)."""
        return {p.kind for p in self.problems}


@dataclass
class ValidationReport(Findings):
    """Result of :func:`validate_submission`; ``ok`` when ``problems`` is empty (warnings allowed)."""

    zip_path: str
    benchmark: str
    participants: list[int]
    frame_counts_checked: bool
    videos: list[VideoReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``ok``, scope, per-video facts, problems and warnings."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


def max_video_bytes(benchmark: Benchmark | str, n_frames: int | None) -> int:
    """The most bytes a valid submission video of ``n_frames`` frames of ``benchmark`` (name or object) can hold.

    Every frame counted at its raw RGB size, ``width × height × 3`` bytes (twice yuv420p's 1.5 bytes
    per pixel, which H.264 does not exceed: a crf 14 video is typically 20–50× smaller), plus
    :data:`CONTAINER_SLACK_BYTES`. ``n_frames=None`` (no metadata) assumes
    :data:`MAX_SECONDS_WITHOUT_METADATA` seconds at the benchmark's fps.
    """
    b = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    if n_frames is None:
        n_frames = round(MAX_SECONDS_WITHOUT_METADATA * b.fps)
    return n_frames * b.width * b.height * 3 + CONTAINER_SLACK_BYTES


def _unsafe(name: str) -> bool:
    return (
        name.startswith(("/", "\\"))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in name.split("/")
    )


_THUMB = 16  # side of the grey thumbnail each decoded frame is reduced to, for the blank check


def _decode(path: str) -> tuple[int, bool]:
    """Decode every frame of the first video stream; return ``(frame count, every frame one flat colour)``.

    ffmpeg reduces each decoded frame to a 16×16 grey thumbnail (area average), so the pipe carries
    256 bytes per frame. Raises RawFormatError with ffmpeg's message when decoding fails or logs an error.
    """
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+error", "-xerror", "-i", path,
        "-map", "0:v:0", "-vf", f"scale={_THUMB}:{_THUMB}:flags=area", "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "gray", "-",
    ]
    proc = subprocess.run(cmd, capture_output=True)
    errors = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    size = _THUMB * _THUMB
    if proc.returncode != 0 or errors or len(proc.stdout) % size:
        said = "; ".join(errors[-3:]) or f"exit code {proc.returncode}"
        raise RawFormatError(path, f"expected a video that decodes to the end, ffmpeg failed: {said}")
    thumbs = np.frombuffer(proc.stdout, np.uint8).reshape(-1, size)
    blank = bool(len(thumbs)) and bool((thumbs.max(axis=1).astype(int) - thumbs.min(axis=1) <= 2).all())
    return len(thumbs), blank


def _x264_crf(path: str) -> float | None:
    """The crf in the x264 settings string (an SEI message near the stream start), or None."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    m = _X264_SETTINGS.search(head)
    if m is None:
        with open(path, "rb") as f:  # the moov box may come first and be large; look further once
            head = f.read(16 << 20)
        m = _X264_SETTINGS.search(head)
    if m is None:
        return None
    crf = re.search(rb"\bcrf=([\d.]+)", m.group(0))
    return float(crf.group(1)) if crf else None


def _check_video(b: Benchmark, report: VideoReport, file: str) -> list[Problem]:
    """Probe and fully decode one extracted video; fill ``report``; return its problems."""
    path = report.path
    try:
        info: VideoInfo = probe_video(file)
        decoded, blank = _decode(file)
    except RawFormatError as e:
        return [Problem(path, "unreadable", e.problem)]
    report.n_frames, report.fps = decoded, info.fps
    report.width, report.height, report.codec, report.pix_fmt = info.width, info.height, info.codec, info.pix_fmt
    report.crf = _x264_crf(file)
    report.blank = blank
    problems = []
    if decoded != info.n_frames:
        problems.append(Problem(path, "unreadable", f"the stream holds {info.n_frames} frames, only {decoded} decode"))
    if (info.width, info.height) != (b.width, b.height):
        problems.append(
            Problem(path, "resolution", f"expected {b.width}x{b.height} (width x height), found {info.width}x{info.height}")
        )
    if abs(info.fps - b.fps) > _FPS_TOLERANCE:
        problems.append(Problem(path, "fps", f"expected {b.fps:g} fps, found {info.fps:g}"))
    if info.codec != "h264":
        problems.append(Problem(path, "codec", f"expected H.264 (h264), found {info.codec}"))
    if info.pix_fmt != "yuv420p":
        problems.append(Problem(path, "pix_fmt", f"expected pixel format yuv420p, found {info.pix_fmt}"))
    if report.expected_frames is not None and decoded != report.expected_frames:
        problems.append(
            Problem(path, "frame_count", f"expected {report.expected_frames} frames (metadata), found {decoded}")
        )
    return problems


class _EntryProblem(Exception):
    """An entry that cannot be extracted faithfully: ``kind`` a key of PROBLEM_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, crc, sizes, lengths
_ZIP64_EXTRA = 0x0001
_FLAG_ENCRYPTED, _FLAG_DATA_DESCRIPTOR = 0x1, 0x8


def _local_sizes(extra: bytes, compressed: int, size: int) -> tuple[int, int]:
    """The local header's (compressed, uncompressed) sizes, read from its zip64 extra field where they are 0xFFFFFFFF."""
    if 0xFFFFFFFF not in (compressed, size):
        return compressed, size
    at = 0
    while at + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, at)
        if tag == _ZIP64_EXTRA and n >= 16:
            size, compressed = struct.unpack_from("<QQ", extra, at + 4)  # uncompressed first
            return compressed, size
        at += 4 + n
    return compressed, size


def _extract(zip_file: BinaryIO, info: zipfile.ZipInfo, zf: zipfile.ZipFile, dst: BinaryIO) -> None:
    """Copy entry ``info`` into ``dst``, never writing more than the ``info.file_size`` bytes its headers declare.

    ``zip_file`` is the zip opened for binary reading. Raises :class:`_EntryProblem`: ``size_mismatch``
    when the local header declares other sizes than the central directory, or the data yields more
    (extraction stops at the first byte too many) or fewer bytes than declared; ``unreadable`` for
    encryption, a bad CRC-32, a truncated zip or an unsupported compression method.
    """
    zip_file.seek(info.header_offset)
    head = zip_file.read(_LOCAL_HEADER.size)
    if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
        raise _EntryProblem("unreadable", f"no local zip header at byte {info.header_offset} (damaged zip)")
    _, _, flags, method, _, _, _, compressed, size, name_len, extra_len = _LOCAL_HEADER.unpack(head)
    zip_file.seek(name_len, os.SEEK_CUR)
    compressed, size = _local_sizes(zip_file.read(extra_len), compressed, size)
    if flags & _FLAG_ENCRYPTED:
        raise _EntryProblem("unreadable", "the entry is encrypted")
    if not flags & _FLAG_DATA_DESCRIPTOR and (compressed, size) != (info.compress_size, info.file_size):
        raise _EntryProblem(
            "size_mismatch",
            f"its local header declares {size} bytes ({compressed} compressed), the central directory "
            f"{info.file_size} ({info.compress_size} compressed): zip readers would disagree on its content",
        )
    if method != info.compress_type:
        raise _EntryProblem("unreadable", f"its local header says compression method {method}, "
                                          f"the central directory {info.compress_type}")
    declared = info.file_size
    if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2/lzma through zipfile, which yields at most the declared size and checks the CRC-32
        written = 0
        with zf.open(info) as src:
            while chunk := src.read(_COPY_BYTES):
                dst.write(chunk)
                written += len(chunk)
        if written != declared:
            raise _EntryProblem("size_mismatch", f"its headers declare {declared} bytes, its data yields {written}")
        return
    if method == zipfile.ZIP_STORED and info.compress_size != declared:
        raise _EntryProblem("size_mismatch", f"its headers declare {declared} bytes, but {info.compress_size} "
                                             "bytes of stored (uncompressed) data")
    inflate = zlib.decompressobj(-zlib.MAX_WBITS) if method == zipfile.ZIP_DEFLATED else None
    left = info.compress_size
    written = crc = 0
    pending = b""
    while True:
        if not pending:
            if left == 0:
                break
            pending = zip_file.read(min(_COPY_BYTES, left))
            if not pending:
                raise _EntryProblem("unreadable", "the zip ends inside this entry's data (truncated zip)")
            left -= len(pending)
        if inflate is None:
            out, pending = pending, b""
        else:
            # at most one byte past the declared size: enough to prove a lie, never an unbounded write
            out = inflate.decompress(pending, declared + 1 - written)
            pending = inflate.unconsumed_tail
        written += len(out)
        if written > declared:
            raise _EntryProblem("size_mismatch", f"its headers declare {declared} bytes, its data decompresses "
                                                 "to more (extraction stopped there)")
        crc = zlib.crc32(out, crc)
        dst.write(out)
        if inflate is not None and inflate.eof:
            break
    if inflate is not None and not inflate.eof:
        raise _EntryProblem("size_mismatch", f"its {info.compress_size} bytes of compressed data (as the headers "
                                             "declare) end before its deflate stream does")
    if written != declared:
        raise _EntryProblem("size_mismatch", f"its headers declare {declared} bytes, its data yields {written}")
    if crc != info.CRC:
        raise _EntryProblem("unreadable", f"Bad CRC-32: the data has {crc:08x}, the headers declare {info.CRC:08x}")


def _check_member(
    b: Benchmark, zf: zipfile.ZipFile, zip_file: BinaryIO, info: zipfile.ZipInfo | None, video: VideoReport, tmp: str,
) -> list[Problem]:
    """Problems of one expected video: missing, too large, or extracted to ``tmp`` (see :func:`_extract`)
    and checked by :func:`_check_video`; the extracted file is removed before returning."""
    if info is None:
        return [Problem(video.path, "missing", "expected video is not in the zip")]
    bound = max_video_bytes(b, video.expected_frames)
    if info.file_size > bound:
        frames = (f"{video.expected_frames} frames (metadata)" if video.expected_frames is not None else
                  f"at most {MAX_SECONDS_WITHOUT_METADATA} s at {b.fps:g} fps without metadata (pass --metadata "
                  "for the exact bound)")
        return [Problem(video.path, "too_large", (
            f"the zip declares {info.file_size} bytes for it, more than a valid video can hold: {bound} bytes "
            f"({frames} of {b.width}x{b.height} raw RGB + container); not extracted"))]
    file = os.path.join(tmp, "video.mp4")
    try:
        with open(file, "wb") as dst:
            _extract(zip_file, info, zf, dst)
        return _check_video(b, video, file)
    except _EntryProblem as e:
        return [Problem(video.path, e.kind, e.message)]
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError, zlib.error) as e:
        return [Problem(video.path, "unreadable", f"cannot extract the entry from the zip: {e}")]
    finally:
        Path(file).unlink(missing_ok=True)


def validate_submission(
    zip_path: str | os.PathLike,
    benchmark: str,
    *,
    metadata: str | os.PathLike | Mapping | None = None,
    participants: Iterable[int] | None = None,
    progress: bool = False,
    tmp_dir: str | os.PathLike | None = None,
) -> ValidationReport:
    """Check a submission zip offline; see the module docstring for what is checked.

    Args:
        zip_path: The submission zip.
        benchmark: ``"nvs"`` or ``"mono_flame_avatar"``.
        metadata: Frame counts (raw folder, ``metadata.json``, store, dict; see
            :func:`~nersemble_zarr.submission.writer.load_frame_counts`) or a ``{(pid, sequence): n}``
            mapping. Without it, frame counts are only compared between the cameras of a sequence.
        participants: Restrict the expected videos to these participants (a partial submission,
            or a test). Entries of other scored participants are then skipped with a warning;
            everything else (paths, extra files, directories) is still checked for the whole zip.
        progress: Show a progress bar over the expected videos (done, rate, ETA) on stderr.
        tmp_dir: Where the temporary folder for extracted videos goes (default: the system's). It
            holds one video at a time, at most :func:`max_video_bytes`, and is removed at the end.

    Returns a :class:`ValidationReport`; raises :class:`SubmissionError` only for a missing
    ``zip_path`` or an unknown participant in ``participants``. For ``benchmark="svfr"`` this is
    :func:`~nersemble_zarr.submission.validate_svfr.validate_svfr_submission` (``metadata`` and ``tmp_dir``
    do not apply) and the report an :class:`~nersemble_zarr.submission.validate_svfr.SVFRValidationReport`.
    """
    if benchmark == SVFR:
        from .validate_svfr import validate_svfr_submission

        return validate_svfr_submission(zip_path, participants=participants, progress=progress)  # type: ignore[return-value]
    b = get_benchmark(benchmark)
    path = Path(zip_path)
    if not path.is_file():
        raise SubmissionError(f"{path}: submission zip not found")
    scope = sorted(b.participants if participants is None else {int(p) for p in participants})
    for p in scope:
        if p not in b.participants:
            raise SubmissionError(
                f"participant {p} is not in the {b.name} benchmark (expected one of {', '.join(map(str, b.participants))})"
            )
    counts: dict[tuple[int, str], int] | None = None
    if metadata is not None:
        if isinstance(metadata, Mapping) and all(isinstance(k, tuple) for k in metadata):
            counts = {(int(p), str(s)): int(n) for (p, s), n in metadata.items()}
        else:
            counts = load_frame_counts(metadata, b.name)
    report = ValidationReport(str(path), b.name, scope, frame_counts_checked=counts is not None)
    add = report.problems.append
    if counts is None:
        report.warnings.append(Problem(str(path), "no_metadata", WARNING_KINDS["no_metadata"] + " (pass --metadata)"))

    all_keys = b.submission_keys()
    expected = {submission_video_path(*k): k for k in all_keys if k[0] in scope}
    scored = {submission_video_path(*k): k for k in all_keys}
    allowed_dirs = {f"{participant_dir(p)}/" for p, _, _ in all_keys} | {
        f"{participant_dir(p)}/{s}/" for p, s, _ in all_keys
    }

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        add(Problem(str(path), "not_a_zip", f"expected a zip archive: {e}"))
        return report

    with zf, open(path, "rb") as zip_file, tempfile.TemporaryDirectory(prefix="nersemble-validate-", dir=tmp_dir) as tmp:
        infos = zf.infolist()
        names = Counter(i.filename for i in infos)
        for name, n in sorted(names.items()):
            if n > 1:
                add(Problem(name, "duplicate", f"the entry occurs {n} times (the server reads only one)"))
        skipped = 0
        present: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if _unsafe(name):
                add(Problem(name, "unsafe_path", "expected a relative path <pid:03d>/<sequence>/cam_<serial>.mp4 "
                                                 "without '..', leading '/' or backslashes"))
            elif info.is_dir():
                if name not in allowed_dirs:
                    add(Problem(name, "directory", "expected only the folders <pid:03d>/<sequence>/ of scored sequences"))
            elif name in expected:
                present.setdefault(name, info)
            elif name in scored:
                skipped += 1
            else:
                key = parse_submission_path(name)
                why = (
                    f"participant {key[0]}, sequence {key[1]}, camera {key[2]} is not scored by the {b.name} benchmark"
                    if key is not None
                    else "not a video of the scheme <pid:03d>/<sequence>/cam_<serial>.mp4"
                )
                add(Problem(name, "extra", f"unexpected file: {why}"))
        if skipped:
            report.warnings.append(
                Problem(str(path), "not_checked", f"{skipped} videos of participants outside {scope} were not checked")
            )

        bar = FrameProgress(len(expected), bool(progress), desc="validating", unit="video")
        for name, key in sorted(expected.items()):
            video = VideoReport(name, *key, present=name in present)
            report.videos.append(video)
            if counts is not None:
                video.expected_frames = counts.get((key[0], key[1]))
                if video.expected_frames is None:
                    report.warnings.append(Problem(name, "no_metadata", "the metadata lists no frame count for it"))
            problems = _check_member(b, zf, zip_file, present.get(name), video, tmp)
            video.ok = not problems
            report.problems.extend(problems)
            if video.blank:
                report.warnings.append(Problem(
                    name, "blank",
                    "every frame is one flat colour: blank renders? (the official reader, imageio on the zip "
                    "member, was seen to fail to open such tiny videos)",
                ))
            if video.crf is not None and video.crf != SUBMISSION_CRF:
                report.warnings.append(Problem(name, "crf", f"expected x264 crf {SUBMISSION_CRF}, found {video.crf:g}"))
            elif video.crf is None and video.n_frames is not None:
                report.warnings.append(Problem(name, "crf", "no x264 settings found: cannot tell the crf"))
            bar.update(1)
        bar.close()

    if counts is None:
        by_sequence: dict[tuple[int, str], list[VideoReport]] = defaultdict(list)
        for v in report.videos:
            if v.n_frames is not None:
                by_sequence[(v.participant, v.sequence)].append(v)
        for (p, s), vs in sorted(by_sequence.items()):
            if len({v.n_frames for v in vs}) > 1:
                found = ", ".join(f"cam_{v.serial}: {v.n_frames}" for v in vs)
                for v in vs:
                    v.ok = False
                add(Problem(f"{participant_dir(p)}/{s}/", "frame_count", f"cameras disagree on the frame count ({found})"))
    return report


def format_report(report: ValidationReport) -> str:
    """A plain-text table (one row per expected video) followed by problems and warnings (for an SVFR
    report: :func:`~nersemble_zarr.submission.validate_svfr.format_svfr_report`)."""
    if report.benchmark == SVFR:
        from .validate_svfr import format_svfr_report

        return format_svfr_report(report)  # type: ignore[arg-type]
    header = ("video", "frames", "size", "fps", "codec", "crf", "status")
    rows = []
    for v in report.videos:
        frames = "-" if v.n_frames is None else str(v.n_frames)
        if v.expected_frames is not None:
            frames += f"/{v.expected_frames}"
        rows.append((
            v.path,
            frames,
            "-" if v.width is None else f"{v.width}x{v.height}",
            "-" if v.fps is None else f"{v.fps:g}",
            "-" if v.codec is None else f"{v.codec}/{v.pix_fmt}",
            "-" if v.crf is None else f"{v.crf:g}",
            ("ok" if v.ok else "FAIL") if v.present else "MISSING",
        ))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for title, items in (("problems", report.problems), ("warnings", report.warnings)):
        if items:
            lines.append("")
            lines.append(f"{len(items)} {title}:")
            lines.extend(f"  [{p.kind}] {p.path}: {p.message}" for p in items)
    n_ok = sum(v.ok for v in report.videos)
    verdict = "OK" if report.ok else "INVALID"
    lines.append("")
    lines.append(
        f"{verdict}: {report.zip_path} ({report.benchmark}): {n_ok}/{len(report.videos)} expected videos pass, "
        f"{len(report.problems)} problems, {len(report.warnings)} warnings"
        + ("" if report.frame_counts_checked else "; frame counts not checked against metadata")
    )
    return "\n".join(lines)

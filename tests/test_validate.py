"""The offline validator reports each defect class on purpose-made bad zips and passes good ones."""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import struct
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr.core.benchmark import MONO, MONO_BENCHMARK, NVS, submission_video_path
from nersemble_zarr.cli.main import cli
from nersemble_zarr.submission.writer import SubmissionError, SubmissionWriter
from nersemble_zarr.submission.validate import PROBLEM_KINDS, max_video_bytes, validate_submission
from nersemble_zarr.raw.video_writer import VideoWriter

MONO_SEQS = MONO_BENCHMARK.test_sequences[393]
MONO_COUNTS = dict(zip(((393, s) for s in MONO_SEQS), (3, 5, 2, 4)))
MONO_METADATA = {
    "participants_metadata": {
        str(p): {"sequences_metadata": {s: {"n_frames": MONO_COUNTS.get((393, s), 6)} for s in MONO_SEQS}}
        for p in MONO_BENCHMARK.participants
    }
}
FREE_37 = submission_video_path(393, "FREE", "222200037")  # 3 frames expected


def frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(n, height, width, 3) uint8`` smooth moving colour fields."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    out = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        for c in range(3):
            out[t, ..., c] = 127 + 100 * np.sin(2 * np.pi * ((1 + c) * xx + yy) + 0.3 * t + seed)
    return out


def encode(path: Path, n: int, *, width: int = 512, height: int = 512, fps: float = 24.3, **kwargs) -> bytes:
    with VideoWriter(path, width, height, fps, **kwargs) as w:
        for f in frames(n, height, width):
            w.write(f)
    return path.read_bytes()


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory) -> Path:
    """A complete submission for participant 393 (16 videos, 2–5 frames each)."""
    path = tmp_path_factory.mktemp("good") / "good.zip"
    with SubmissionWriter(path, MONO, metadata=MONO_METADATA) as w:
        for p, s, serial in MONO_BENCHMARK.submission_keys():
            if p == 393:
                w.add_video(p, s, serial, frames(MONO_COUNTS[(p, s)], 512, 512, seed=len(serial)))
    return path


def rezip(good: Path, out: Path, *, drop=(), add=(), replace=None, dirs=(), deflate=()) -> Path:
    """Copy ``good`` to ``out`` without ``drop``, with ``replace[name]`` bytes, extra ``add`` entries and dirs;
    entries named in ``deflate`` are compressed (the rest stored, as the submission writer does)."""
    replace = replace or {}
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate names we make on purpose
        for d in dirs:
            dst.writestr(zipfile.ZipInfo(d), b"")
        for name in src.namelist():
            if name not in drop:
                method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
                dst.writestr(name, replace.get(name, src.read(name)), compress_type=method)
        for name, data in add:
            dst.writestr(name, data)
    return out


def check(path: Path, **kwargs):
    kwargs.setdefault("metadata", MONO_METADATA)
    kwargs.setdefault("participants", [393])
    return validate_submission(path, MONO, **kwargs)


def test_a_good_submission_passes(good_zip):
    report = check(good_zip)
    assert report.ok, report.problems
    assert len(report.videos) == 16 and all(v.ok for v in report.videos)
    v = next(v for v in report.videos if v.path == FREE_37)
    assert (v.n_frames, v.expected_frames, v.width, v.height, v.codec, v.pix_fmt, v.crf) == (
        3, 3, 512, 512, "h264", "yuv420p", 14.0)
    assert v.fps == pytest.approx(24.3)
    assert report.warnings == []


def test_folder_entries_of_the_scheme_are_allowed(good_zip, tmp_path):
    bad = rezip(good_zip, tmp_path / "dirs.zip", dirs=("393/", "393/FREE/"))
    assert check(bad).ok


def test_missing_video(good_zip, tmp_path):
    report = check(rezip(good_zip, tmp_path / "z.zip", drop={FREE_37}))
    assert report.kinds() == {"missing"}
    assert [p.path for p in report.problems] == [FREE_37]


@pytest.mark.parametrize(
    "name",
    ["393/FREE/notes.txt", "393/FREE/cam_222200036.mp4", "393/EXP-1-head/cam_222200037.mp4",
     "submission/" + FREE_37, "999/FREE/cam_222200037.mp4"],
    ids=["text-file", "unscored-camera", "train-sequence", "nested-folder", "unknown-participant"],
)
def test_extra_file(good_zip, tmp_path, name):
    report = check(rezip(good_zip, tmp_path / "z.zip", add=[(name, b"not a video")]))
    assert report.kinds() == {"extra"}
    assert [p.path for p in report.problems] == [name]


def test_directory_outside_the_scheme(good_zip, tmp_path):
    report = check(rezip(good_zip, tmp_path / "z.zip", dirs=("__MACOSX/",)))
    assert report.kinds() == {"directory"}


@pytest.mark.parametrize("name", ["../" + FREE_37, "/" + FREE_37, FREE_37.replace("/", "\\"), "393/../393/x.mp4"])
def test_absolute_and_parent_paths(good_zip, tmp_path, name):
    report = check(rezip(good_zip, tmp_path / "z.zip", add=[(name, b"x")]))
    assert report.kinds() == {"unsafe_path"}


def test_duplicate_entry(good_zip, tmp_path):
    with zipfile.ZipFile(good_zip) as zf:
        data = zf.read(FREE_37)
    report = check(rezip(good_zip, tmp_path / "z.zip", add=[(FREE_37, data)]))
    assert report.kinds() == {"duplicate"}


@pytest.mark.parametrize(
    "kind, video",
    [
        ("frame_count", dict(n=4)),
        ("resolution", dict(n=3, width=256, height=256)),
        ("fps", dict(n=3, fps=25)),
        ("codec", dict(n=3, codec="mpeg4", crf=None)),
        ("pix_fmt", dict(n=3, pix_fmt="yuv444p")),
    ],
)
def test_wrong_video_properties(good_zip, tmp_path, kind, video):
    data = encode(tmp_path / "bad.mp4", **video)
    report = check(rezip(good_zip, tmp_path / "z.zip", replace={FREE_37: data}))
    assert report.kinds() == {kind}
    assert [p.path for p in report.problems] == [FREE_37]
    assert not next(v for v in report.videos if v.path == FREE_37).ok


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_video(good_zip, tmp_path, damage):
    with zipfile.ZipFile(good_zip) as zf:
        data = zf.read(FREE_37)
    data = {"truncated": data[: len(data) * 2 // 3], "garbage": bytes(range(256)) * 40, "empty": b""}[damage]
    report = check(rezip(good_zip, tmp_path / "z.zip", replace={FREE_37: data}))
    assert report.kinds() == {"unreadable"}


def test_corrupted_zip_data_is_unreadable(good_zip, tmp_path):
    bad = tmp_path / "z.zip"
    raw = bytearray(good_zip.read_bytes())
    with zipfile.ZipFile(good_zip) as zf:
        info = zf.getinfo(FREE_37)
    raw[info.header_offset + 30 + len(FREE_37) + 500] ^= 0xFF  # one flipped byte inside the stored mp4
    bad.write_bytes(bytes(raw))
    report = check(bad)
    assert report.kinds() == {"unreadable"}
    assert "CRC" in report.problems[0].message


def test_not_a_zip(tmp_path):
    path = tmp_path / "z.zip"
    path.write_bytes(b"this is not a zip file")
    report = check(path)
    assert report.kinds() == {"not_a_zip"} and not report.ok


def test_higher_crf_is_a_warning_only(good_zip, tmp_path):
    data = encode(tmp_path / "crf.mp4", 3, crf=23)
    report = check(rezip(good_zip, tmp_path / "z.zip", replace={FREE_37: data}))
    assert report.ok
    assert [(w.kind, w.path) for w in report.warnings] == [("crf", FREE_37)]


def test_without_metadata_cameras_of_a_sequence_must_agree(good_zip, tmp_path):
    assert check(good_zip, metadata=None).ok
    data = encode(tmp_path / "bad.mp4", 4)
    report = check(rezip(good_zip, tmp_path / "z.zip", replace={FREE_37: data}), metadata=None)
    assert report.kinds() == {"frame_count"}
    assert "cameras disagree" in report.problems[0].message
    assert {w.kind for w in report.warnings} == {"no_metadata"}


def test_other_participants_are_reported_missing_unless_scoped(good_zip):
    report = validate_submission(good_zip, MONO, metadata=MONO_METADATA)
    assert report.kinds() == {"missing"}
    assert len(report.problems) == len(MONO_BENCHMARK.submission_keys()) - 16
    with pytest.raises(SubmissionError, match="participant 388 is not in the mono_flame_avatar benchmark"):
        validate_submission(good_zip, MONO, participants=[388])


def test_every_problem_kind_is_documented():
    # the tests above produce each kind; this keeps the table the CLI documents in step with them
    assert set(PROBLEM_KINDS) == {
        "not_a_zip", "unsafe_path", "duplicate", "directory", "extra", "missing", "unreadable",
        "frame_count", "resolution", "fps", "codec", "pix_fmt", "too_large", "size_mismatch",
    }


def test_validate_command_prints_a_table_and_fails_on_problems(good_zip, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["validate", str(good_zip), MONO, "-p", "393"])
    assert ok.exit_code == 0, ok.output
    assert FREE_37 in ok.output and "OK:" in ok.output and "frame counts not checked" in ok.output

    bad = rezip(good_zip, tmp_path / "z.zip", drop={FREE_37}, add=[("readme.txt", b"hi")])
    result = runner.invoke(cli, ["validate", str(bad), MONO, "-p", "393", "--json", "-", "--no-progress"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert sorted((p["kind"], p["path"]) for p in report["problems"]) == [("extra", "readme.txt"), ("missing", FREE_37)]


@pytest.mark.slow
def test_nvs_submission_at_full_resolution_passes_and_padded_width_fails(tmp_path):
    metadata = {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 3, 6]}}}
    good = tmp_path / "nvs.zip"
    with SubmissionWriter(good, NVS, metadata=metadata) as w:
        for serial in ("222200046", "222200037", "222200039"):
            w.add_video(388, "GLASSES", serial, frames(3, 1604, 1100))
    report = validate_submission(good, NVS, metadata=metadata, participants=[388])
    assert report.ok, report.problems
    assert {(v.width, v.height, v.n_frames) for v in report.videos} == {(1100, 1604, 3)}
    assert all(v.fps == pytest.approx(73) for v in report.videos)

    # what imageio-ffmpeg writes by default: the width padded to a multiple of 16
    padded = encode(tmp_path / "padded.mp4", 3, width=1104, height=1604, fps=73)
    name = submission_video_path(388, "GLASSES", "222200037")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "bad.zip", "w") as dst:
        for n in src.namelist():
            dst.writestr(n, padded if n == name else src.read(n))
    report = validate_submission(tmp_path / "bad.zip", NVS, metadata=metadata, participants=[388])
    assert report.kinds() == {"resolution"}
    assert "expected 1100x1604 (width x height), found 1104x1604" in report.problems[0].message


def test_console_script_exits_1_on_an_invalid_zip_and_names_a_missing_one(tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("nersemble-zarr")
    bad = tmp_path / "z.zip"
    bad.write_bytes(b"not a zip")
    proc = subprocess.run([str(exe), "validate", str(bad), MONO, "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 1 and "[not_a_zip]" in proc.stdout
    proc = subprocess.run([str(exe), "validate", str(tmp_path / "none.zip"), MONO], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'none.zip'}: submission zip not found"


def test_blank_video_is_a_warning(good_zip, tmp_path):
    with VideoWriter(tmp_path / "blank.mp4", 512, 512, 24.3) as w:
        for _ in range(3):
            w.write(np.full((512, 512, 3), 255, np.uint8))  # a renderer that drew nothing: white frames
    report = check(rezip(good_zip, tmp_path / "z.zip", replace={FREE_37: (tmp_path / "blank.mp4").read_bytes()}))
    assert report.ok
    assert [(w.kind, w.path) for w in report.warnings] == [("blank", FREE_37)]


# --------------------------------------------------------------------------------------------
# Bounded: zip bombs and lying headers are reported, temp space stays small
# --------------------------------------------------------------------------------------------

#: Files this process writes may not grow past this during the bounded tests: far below the bombs below,
#: above the largest valid video of the test (FREE_37: 3 frames of 512 x 512).
FILE_LIMIT = 8 << 20
BOMB = 64 << 20  # 64 MiB of zeros: deflates to about 64 kB


@contextmanager
def file_size_limit(limit: int):
    """RLIMIT_FSIZE for this process and its children: a write past ``limit`` fails with EFBIG (OSError)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def patch_sizes(path: Path, name: str, *, local: int | None = None, central: int | None = None) -> None:
    """Overwrite the uncompressed size that the local and/or central header of entry ``name`` declares."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    if local is not None:
        assert raw[info.header_offset:info.header_offset + 4] == b"PK\x03\x04"
        struct.pack_into("<I", raw, info.header_offset + 22, local)
    if central is not None:
        at = raw.find(b"PK\x01\x02")
        while raw[at + 46:at + 46 + struct.unpack_from("<H", raw, at + 28)[0]] != name.encode():
            at = raw.find(b"PK\x01\x02", at + 4)
            assert at >= 0, name
        struct.pack_into("<I", raw, at + 24, central)
    path.write_bytes(bytes(raw))


def check_bounded(path: Path, tmp: Path, **kwargs):
    """Validate ``path`` with its temp folder in ``tmp`` and every file write capped at FILE_LIMIT; return
    the report after asserting that no write hit the cap, the temp folder is empty again and the zip is intact."""
    tmp.mkdir()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with file_size_limit(FILE_LIMIT):
        report = check(path, tmp_dir=tmp, **kwargs)
    assert not any("too large" in p.message.lower() or "errno 27" in p.message.lower() for p in report.problems), \
        report.problems  # EFBIG: the validator tried to write more than FILE_LIMIT
    assert list(tmp.iterdir()) == []
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    return report


def test_the_size_bound_is_raw_frames_plus_container_slack():
    assert max_video_bytes(MONO, 3) == 3 * 512 * 512 * 3 + (1 << 20)
    assert max_video_bytes(NVS, 10) == 10 * 1604 * 1100 * 3 + (1 << 20)
    assert max_video_bytes(MONO, None) == max_video_bytes(MONO, round(120 * 24.3))  # no metadata: 2 minutes


def test_file_size_limit_catches_an_unbounded_extraction(good_zip, tmp_path):
    # the harness itself: today's validator, extracting the whole bomb, would hit it
    with file_size_limit(FILE_LIMIT), pytest.raises(OSError, match="File too large"):
        with open(tmp_path / "big", "wb") as f:
            f.write(bytes(FILE_LIMIT + 1))


def test_oversized_member_is_reported_and_never_extracted(good_zip, tmp_path):
    bad = rezip(good_zip, tmp_path / "bomb.zip", replace={FREE_37: bytes(BOMB)}, deflate={FREE_37})
    assert bad.stat().st_size < 1 << 20  # a small zip ...
    report = check_bounded(bad, tmp_path / "tmp")  # ... that would have extracted to 64 MiB
    assert report.kinds() == {"too_large"}
    [problem] = report.problems
    assert problem.path == FREE_37
    assert f"{BOMB} bytes" in problem.message and f"{max_video_bytes(MONO, 3)} bytes" in problem.message
    assert "3 frames" in problem.message
    assert not next(v for v in report.videos if v.path == FREE_37).ok
    assert sum(v.ok for v in report.videos) == 15  # the other videos were still checked


def test_oversized_member_without_metadata_is_bounded_by_the_longest_sequence(good_zip, tmp_path):
    huge = max_video_bytes(MONO, None) + 1
    bad = rezip(good_zip, tmp_path / "bomb.zip", replace={FREE_37: b"x"}, deflate={FREE_37})
    patch_sizes(bad, FREE_37, local=huge, central=huge)  # declared: one byte over the bound
    report = check_bounded(bad, tmp_path / "tmp", metadata=None)
    assert report.kinds() == {"too_large"} and [p.path for p in report.problems] == [FREE_37]
    assert "pass --metadata" in report.problems[0].message


@pytest.mark.parametrize("lie", ["stream-yields-more", "stream-yields-fewer", "local-header-differs"])
@pytest.mark.parametrize("method", ["deflated", "stored"])
def test_member_whose_declared_size_lies_is_reported(good_zip, tmp_path, lie, method):
    with zipfile.ZipFile(good_zip) as zf:
        video = zf.read(FREE_37)
    content = bytes(BOMB) if lie == "stream-yields-more" and method == "deflated" else video
    deflate = {FREE_37} if method == "deflated" else set()
    bad = rezip(good_zip, tmp_path / "lie.zip", replace={FREE_37: content}, deflate=deflate)
    declared = {"stream-yields-more": len(video) // 2, "stream-yields-fewer": len(content) + 1000}.get(lie)
    if declared is not None:
        patch_sizes(bad, FREE_37, local=declared, central=declared)  # both headers agree, the data does not
    else:
        patch_sizes(bad, FREE_37, local=len(content) - 100)  # the local header disagrees with the central one
    report = check_bounded(bad, tmp_path / "tmp")
    assert report.kinds() == {"size_mismatch"}, report.problems
    [problem] = report.problems
    assert problem.path == FREE_37
    if declared is not None:
        assert f"headers declare {declared} bytes" in problem.message
        if method == "deflated":
            assert ("decompresses to more" if lie == "stream-yields-more" else f"yields {len(content)}") in problem.message
        else:  # a stored entry's data is its compressed data: the lie shows as two different sizes
            assert f"but {len(content)} bytes of stored (uncompressed) data" in problem.message
    else:
        assert f"local header declares {len(content) - 100} bytes" in problem.message
    assert sum(v.ok for v in report.videos) == 15

"""SubmissionWriter and `nersemble-zarr submit`: checks before encoding, streaming, crash safety, append."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from nersemble_zarr.core.benchmark import MONO, MONO_BENCHMARK, NVS, NVS_BENCHMARK, submission_video_path
from nersemble_zarr.cli.main import cli
from nersemble_zarr.raw import iter_frames, probe_video
from nersemble_zarr.raw.metadata import write_metadata
from nersemble_zarr.submission.writer import SubmissionError, SubmissionWriter, load_frame_counts, write_submission

MONO_SEQS = MONO_BENCHMARK.test_sequences[393]
#: Deliberately unequal: nothing may assume one frame count per benchmark.
MONO_COUNTS = dict(zip(((393, s) for s in MONO_SEQS), (3, 5, 2, 4)))
MONO_METADATA = {
    "participants_metadata": {
        "393": {"sequences_metadata": {s: {"n_frames": MONO_COUNTS[(393, s)]} for s in MONO_SEQS}},
        "404": {"sequences_metadata": {s: {"n_frames": 7} for s in MONO_SEQS}},
    }
}


def smooth_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(n, height, width, 3) uint8``: moving smooth colour fields (photo-like content for x264)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    out = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        lum = 127 + 90 * np.sin(2 * np.pi * (1.5 * xx + yy) + phases[3] + 0.3 * t)
        for c in range(3):
            out[t, ..., c] = np.clip(lum + 20 * np.sin(2 * np.pi * (0.5 * xx + 0.7 * yy * c) + phases[c] + 0.2 * t), 0, 255)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def decode_member(zip_path: Path, name: str, tmp_path: Path) -> np.ndarray:
    """Extract one video of a zip and decode it fully: ``(T, H, W, 3) uint8``."""
    out = tmp_path / "decoded" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        out.write_bytes(zf.read(name))
    return np.stack(list(iter_frames(out)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp.*"))


@pytest.fixture(scope="module")
def mono_frames() -> dict[tuple[int, str], np.ndarray]:
    return {key: smooth_frames(n, 512, 512, seed=i) for i, (key, n) in enumerate(MONO_COUNTS.items())}


# ---------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------


def test_dask_renders_decode_back_with_exact_frame_counts_and_psnr_over_40db(tmp_path, mono_frames):
    target = tmp_path / "sub.zip"
    inputs = {}
    with SubmissionWriter(target, MONO, metadata=MONO_METADATA) as w:
        for i, ((p, s), frames) in enumerate(mono_frames.items()):
            serial = MONO_BENCHMARK.evaluation_serials[i % 4]
            # uneven chunks along time, split in space too: the writer must stream whole frames anyway
            chunks = ((1,) + (frames.shape[0] - 1,) if frames.shape[0] > 1 else (1,), (256, 256), (512,), (3,))
            w.add_video(p, s, serial, da.from_array(frames, chunks=chunks))
            inputs[submission_video_path(p, s, serial)] = frames
    assert not target.with_name("sub.zip.partial").exists()
    with zipfile.ZipFile(target) as zf:
        assert sorted(zf.namelist()) == sorted(inputs)
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    for name, frames in inputs.items():
        decoded = decode_member(target, name, tmp_path)
        assert decoded.shape == frames.shape
        assert min(psnr(a, b) for a, b in zip(decoded, frames)) >= 40


def test_nvs_video_has_the_exact_full_resolution_and_73_fps(tmp_path):
    frames = smooth_frames(3, 1604, 1100)
    target = tmp_path / "nvs.zip"
    with SubmissionWriter(target, NVS) as w:
        w.add_video(388, "GLASSES", "222200046", frames)
    name = submission_video_path(388, "GLASSES", "222200046")
    with zipfile.ZipFile(target) as zf:
        (tmp_path / "v.mp4").write_bytes(zf.read(name))
    info = probe_video(tmp_path / "v.mp4")
    assert (info.width, info.height, info.n_frames, info.codec, info.pix_fmt) == (1100, 1604, 3, "h264", "yuv420p")
    assert info.fps == pytest.approx(73)
    assert min(psnr(a, b) for a, b in zip(decode_member(target, name, tmp_path), frames)) >= 40


def test_float_input_in_unit_range_is_rounded_to_uint8(tmp_path, mono_frames):
    frames = mono_frames[(393, "FREE")]
    target = tmp_path / "f.zip"
    with SubmissionWriter(target, MONO) as w:
        w.add_video(393, "FREE", "222200037", frames.astype(np.float32) / 255, float_input=True)
        w.add_video(393, "FREE", "222200046", da.from_array(frames.astype(np.float64) / 255, chunks=(2, 512, 512, 3)),
                    float_input=True)
    for serial in ("222200037", "222200046"):
        decoded = decode_member(target, submission_video_path(393, "FREE", serial), tmp_path)
        assert min(psnr(a, b) for a, b in zip(decoded, frames)) >= 40


def test_list_of_frames_is_accepted_like_the_official_writer(tmp_path, mono_frames):
    frames = mono_frames[(393, "FREE")]
    with SubmissionWriter(tmp_path / "l.zip", MONO, metadata=MONO_METADATA) as w:
        w.add_video(393, "FREE", "222200037", list(frames))
    decoded = decode_member(tmp_path / "l.zip", submission_video_path(393, "FREE", "222200037"), tmp_path)
    assert decoded.shape == frames.shape


# ---------------------------------------------------------------------------------------------
# Refusals before encoding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, message",
    [
        ((999, "FREE", "222200037"), "participant 999 is not scored"),
        ((393, "EXP-1-head", "222200037"), "sequence 'EXP-1-head' is not scored"),  # a train sequence
        ((393, "FREE", "222200036"), "camera 222200036 is not scored"),
    ],
)
def test_unscored_videos_are_refused(tmp_path, mono_frames, key, message):
    with SubmissionWriter(tmp_path / "s.zip", MONO, finalize=False) as w:
        with pytest.raises(SubmissionError, match=message):
            w.add_video(*key, mono_frames[(393, "FREE")])
        assert w.videos() == []


def test_nvs_train_camera_is_refused(tmp_path):
    with SubmissionWriter(tmp_path / "s.zip", NVS, finalize=False) as w:
        with pytest.raises(SubmissionError, match=r"camera 222200036 is not scored .*222200046"):
            w.add_video(388, "GLASSES", "222200036", np.zeros((1, 1604, 1100, 3), np.uint8))


@pytest.mark.parametrize(
    "frames, kwargs, message",
    [
        (np.zeros((3, 512, 510, 3), np.uint8), {}, r"expected frames of shape \(T, 512, 512, 3\).*found \(3, 512, 510, 3\)"),
        (np.zeros((3, 512, 512), np.uint8), {}, r"found \(3, 512, 512\)"),
        (np.zeros((3, 512, 512, 4), np.uint8), {}, r"found \(3, 512, 512, 4\)"),
        (np.zeros((3, 512, 512, 3), np.uint16), {}, "expected uint8 frames.*found uint16"),
        (np.zeros((3, 512, 512, 3), np.float32), {}, "pass float_input=True"),
        (np.zeros((4, 512, 512, 3), np.uint8), {}, r"expected 3 frames \(benchmark metadata\), found 4"),
        (np.zeros((0, 512, 512, 3), np.uint8), {}, "at least one frame"),
        ([np.zeros((512, 512, 3), np.uint8), np.zeros((512, 511, 3), np.uint8)], {}, r"found \(512, 511, 3\) at frame 1"),
    ],
    ids=["width", "no-rgb-axis", "rgba", "uint16", "float-without-flag", "frame-count", "empty", "list-frame-shape"],
)
def test_wrong_frames_are_refused_before_encoding(tmp_path, frames, kwargs, message):
    with SubmissionWriter(tmp_path / "s.zip", MONO, metadata=MONO_METADATA, finalize=False) as w:
        with pytest.raises(SubmissionError, match=message):
            w.add_video(393, "FREE", "222200037", frames, **kwargs)
        assert w.videos() == [] and leftovers(w.staging) == []


@pytest.mark.parametrize("bad, message", [(np.nan, "frame 2 holds NaN or inf"), (np.inf, "frame 2 holds NaN or inf"),
                                          (1.5, r"frame 2 spans \[0, 1.5\]"), (-0.1, r"frame 2 spans \[-0.1, 0\]")])
def test_bad_float_values_in_numpy_input_are_refused_before_encoding(tmp_path, bad, message):
    frames = np.zeros((3, 512, 512, 3), np.float32)
    frames[2, 100, 7, 1] = bad
    with SubmissionWriter(tmp_path / "s.zip", MONO, finalize=False) as w:
        with pytest.raises(SubmissionError, match=message):
            w.add_video(393, "FREE", "222200037", frames, float_input=True)
        assert not list(w.staging.rglob("*.mp4"))  # not even a temporary file: nothing was encoded


def test_nan_in_a_later_dask_chunk_aborts_the_video_and_leaves_nothing(tmp_path, mono_frames):
    frames = mono_frames[(393, "EMO-1-shout+laugh")]  # 5 frames
    as_float = frames.astype(np.float32) / 255
    as_float[4, 0, 0, 0] = np.nan  # in the third chunk: the first two are encoded before it is seen
    target = tmp_path / "s.zip"
    with pytest.raises(SubmissionError, match="frame 4 holds NaN"):
        with SubmissionWriter(target, MONO) as w:
            w.add_video(393, "FREE", "222200037", mono_frames[(393, "FREE")])
            w.add_video(393, "EMO-1-shout+laugh", "222200037", da.from_array(as_float, chunks=(2, 512, 512, 3)), float_input=True)
    assert not target.exists()
    assert w.videos() == [(393, "FREE", "222200037")]
    assert leftovers(w.staging) == []


def test_adding_the_same_video_twice_needs_overwrite(tmp_path, mono_frames):
    frames = mono_frames[(393, "FREE")]
    target = tmp_path / "s.zip"
    with SubmissionWriter(target, MONO) as w:
        w.add_video(393, "FREE", "222200037", frames)
        with pytest.raises(SubmissionError, match="already holds this video.*overwrite=True"):
            w.add_video(393, "FREE", "222200037", frames[::-1])
        w.add_video(393, "FREE", "222200037", frames[::-1].copy(), overwrite=True)
    decoded = decode_member(target, submission_video_path(393, "FREE", "222200037"), tmp_path)
    assert psnr(decoded[0], frames[-1]) >= 40  # the replacement won


# ---------------------------------------------------------------------------------------------
# Crash safety and append
# ---------------------------------------------------------------------------------------------


def test_exception_inside_the_writer_leaves_no_zip_and_keeps_finished_videos_staged(tmp_path, mono_frames):
    target = tmp_path / "s.zip"
    with pytest.raises(RuntimeError, match="render crashed"):
        with SubmissionWriter(target, MONO) as w:
            w.add_video(393, "FREE", "222200037", mono_frames[(393, "FREE")])
            raise RuntimeError("render crashed")
    assert not target.exists()
    with SubmissionWriter(target, MONO, mode="a") as w2:
        assert w2.videos() == [(393, "FREE", "222200037")]
        assert len(w2.missing()) == len(MONO_BENCHMARK.submission_keys()) - 1
    with zipfile.ZipFile(target) as zf:
        assert zf.namelist() == [submission_video_path(393, "FREE", "222200037")]


def test_an_existing_zip_is_only_replaced_when_the_new_one_is_complete(tmp_path, mono_frames):
    target = tmp_path / "s.zip"
    target.write_bytes(b"previous submission")
    with pytest.raises(RuntimeError):
        with SubmissionWriter(target, MONO) as w:
            w.add_video(393, "FREE", "222200037", mono_frames[(393, "FREE")])
            raise RuntimeError
    assert target.read_bytes() == b"previous submission"


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import dask, dask.array as da, numpy as np
    from nersemble_zarr.submission.writer import SubmissionWriter

    frames = np.load(sys.argv[2])

    def chunk(i):
        if i == 1:
            print("mid-write", flush=True)
            sys.stdin.read()  # blocks until the parent kills us
        return frames[2 * i:2 * i + 2]

    lazy = da.concatenate([da.from_delayed(dask.delayed(chunk)(i), (len(frames[2 * i:2 * i + 2]), 512, 512, 3), np.uint8)
                           for i in range((len(frames) + 1) // 2)])
    with SubmissionWriter(sys.argv[1], "mono_flame_avatar") as w:
        w.add_video(393, "FREE", "222200037", frames)
        w.add_video(393, "FREE", "222200046", lazy)
    """
)


def test_sigkilled_writer_leaves_no_zip_and_a_rerun_resumes_to_the_same_zip(tmp_path, mono_frames):
    frames = mono_frames[(393, "EMO-1-shout+laugh")]  # 5 frames: chunks of 2, 2, 1
    np.save(tmp_path / "frames.npy", frames)
    target = tmp_path / "killed.zip"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(target), str(tmp_path / "frames.npy")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "mid-write"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and its ffmpeg, as a batch system kills a job
        proc.wait()
    assert not target.exists()
    staging = target.with_name("killed.zip.partial")
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("cam_*.mp4")) == [
        submission_video_path(393, "FREE", "222200037")
    ]
    with SubmissionWriter(target, MONO, mode="a") as w:  # the dead writer's lock is gone with it
        w.add_video(393, "FREE", "222200046", frames)
    assert not staging.exists()

    single = tmp_path / "single.zip"
    with SubmissionWriter(single, MONO) as w:
        w.add_video(393, "FREE", "222200037", frames)
        w.add_video(393, "FREE", "222200046", frames)
    assert target.read_bytes() == single.read_bytes()


def test_append_across_runs_gives_the_same_zip_as_a_single_run(tmp_path, mono_frames):
    videos = [((393, s, serial), mono_frames[(393, s)]) for s in MONO_SEQS[:2] for serial in ("222200037", "220700191")]
    single = tmp_path / "single.zip"
    with SubmissionWriter(single, MONO, metadata=MONO_METADATA) as w:
        for key, frames in videos:
            w.add_video(*key, frames)

    appended = tmp_path / "appended.zip"
    with SubmissionWriter(appended, MONO, metadata=MONO_METADATA, finalize=False) as w:  # run 1: staged only
        w.add_video(*videos[2][0], videos[2][1])
    assert not appended.exists()
    with SubmissionWriter(appended, MONO, mode="a") as w:  # run 2: continues the staging, finalizes
        w.add_video(*videos[0][0], videos[0][1])
    assert appended.exists()
    with SubmissionWriter(appended, MONO, mode="a") as w:  # run 3: reopens the finalized zip
        assert len(w.videos()) == 2
        for key, frames in (videos[3], videos[1]):
            w.add_video(*key, frames)
    assert appended.read_bytes() == single.read_bytes()


def test_mode_w_discards_an_unfinished_submission(tmp_path, mono_frames):
    target = tmp_path / "s.zip"
    with SubmissionWriter(target, MONO, finalize=False) as w:
        w.add_video(393, "FREE", "222200037", mono_frames[(393, "FREE")])
    with SubmissionWriter(target, MONO) as w:
        assert w.videos() == []
        w.add_video(393, "FREE", "222200046", mono_frames[(393, "FREE")])
    with zipfile.ZipFile(target) as zf:
        assert zf.namelist() == [submission_video_path(393, "FREE", "222200046")]


def test_two_writers_cannot_share_a_target(tmp_path):
    target = tmp_path / "s.zip"
    with SubmissionWriter(target, MONO, finalize=False):
        with pytest.raises(SubmissionError, match="another SubmissionWriter"):
            SubmissionWriter(target, MONO, mode="a")


def test_staging_of_another_benchmark_is_refused(tmp_path):
    target = tmp_path / "s.zip"
    SubmissionWriter(target, NVS, finalize=False).close(finalize=False)
    with pytest.raises(SubmissionError, match="for benchmark 'nvs', expected 'mono_flame_avatar'"):
        SubmissionWriter(target, MONO, mode="a")


# ---------------------------------------------------------------------------------------------
# Metadata sources and the renders store / CLI
# ---------------------------------------------------------------------------------------------


def test_frame_counts_come_from_a_raw_folder_a_json_file_or_a_store(tmp_path):
    raw = tmp_path / "raw"
    (raw / MONO).mkdir(parents=True)
    write_metadata(raw / MONO / "metadata.json", MONO_METADATA)
    store = tmp_path / "store.zarr"
    root = zarr.open_group(store, mode="w")
    root.create_group(MONO).attrs["metadata"] = MONO_METADATA
    for source in (raw, raw / MONO, raw / MONO / "metadata.json", store, str(store)):
        counts = load_frame_counts(source, MONO)
        assert counts[(393, "EMO-1-shout+laugh")] == 5 and counts[(404, "FREE")] == 7
    with pytest.raises(SubmissionError, match="does not exist"):
        load_frame_counts(tmp_path / "nowhere", MONO)
    with pytest.raises(SubmissionError, match="no 'nvs' group"):
        load_frame_counts(store, NVS)


def write_renders_store(path: Path, frames: dict[tuple[int, str], np.ndarray]) -> dict[str, np.ndarray]:
    """A renders store in both documented layouts; returns zip path → frames."""
    root = zarr.open_group(path, mode="w")
    expected = {}
    for i, ((p, s), f) in enumerate(frames.items()):
        serials = MONO_BENCHMARK.evaluation_serials
        if i % 2 == 0:  # one array per camera
            seq = root.require_group(f"{p:03d}/{s}")
            for serial in serials:
                seq.create_array(serial, data=f, chunks=(1, 512, 512, 3))
        else:  # an xarray Dataset per sequence: images (camera, T, H, W, 3) with a camera coordinate
            ds = xr.Dataset(
                {"images": (("camera", "timestep", "height", "width", "rgb"), np.stack([f] * len(serials)))},
                coords={"camera": np.array(serials, dtype=object)},
            )
            ds.to_zarr(path, group=f"{p:03d}/{s}", zarr_format=3, consolidated=False,
                       encoding={"images": {"chunks": (1, 2, 512, 512, 3)}})
        for serial in serials:
            expected[submission_video_path(p, s, serial)] = f
    return expected


@pytest.mark.slow
def test_submit_command_packs_a_renders_store_that_validates(tmp_path, mono_frames):
    raw = tmp_path / "raw"
    (raw / MONO).mkdir(parents=True)
    write_metadata(raw / MONO / "metadata.json", MONO_METADATA)
    expected = write_renders_store(tmp_path / "renders.zarr", mono_frames)
    out = tmp_path / "submission.zip"
    runner = CliRunner()
    result = runner.invoke(cli, ["submit", str(tmp_path / "renders.zarr"), MONO, "--out", str(out),
                                 "--metadata", str(raw), "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "encoded 16 videos" in result.output
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(expected)
    for name in (sorted(expected)[0], sorted(expected)[-1]):
        decoded = decode_member(out, name, tmp_path)
        assert min(psnr(a, b) for a, b in zip(decoded, expected[name])) >= 40

    report = tmp_path / "report.json"
    result = runner.invoke(cli, ["validate", str(out), MONO, "--metadata", str(raw), "-p", "393", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output
    assert json.loads(report.read_text())["ok"] is True


def test_submit_refuses_a_store_with_the_wrong_frame_count_before_encoding(tmp_path, mono_frames):
    raw = tmp_path / "raw"
    (raw / MONO).mkdir(parents=True)
    write_metadata(raw / MONO / "metadata.json", MONO_METADATA)
    store = tmp_path / "renders.zarr"
    group = zarr.open_group(store, mode="w").require_group("393/FREE")
    group.create_array("222200037", data=mono_frames[(393, "FREE")])
    group.create_array("222200046", data=mono_frames[(393, "FREE")][:2])
    out = tmp_path / "s.zip"
    result = CliRunner().invoke(cli, ["submit", str(store), MONO, "-o", str(out), "-m", str(raw), "--no-progress"])
    assert isinstance(result.exception, SubmissionError)
    assert "393/FREE/cam_222200046.mp4: expected 3 frames (benchmark metadata), found 2" in str(result.exception)
    assert not out.exists()
    assert not list(out.with_name("s.zip.partial").rglob("*.mp4"))  # the good video was not encoded either


def test_submit_refuses_renders_of_an_unscored_camera(tmp_path, mono_frames):
    store = tmp_path / "renders.zarr"
    zarr.open_group(store, mode="w").require_group("393/FREE").create_array("222200036", data=mono_frames[(393, "FREE")])
    with pytest.raises(SubmissionError, match="camera 222200036 is not scored"):
        write_submission(store, MONO, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()


def test_renders_dataset_not_camera_major_is_refused_not_misread(tmp_path, mono_frames):
    frames = mono_frames[(393, "SEN-10-port_strong_smokey")]  # 4 frames, as many as the 4 scored cameras
    serials = MONO_BENCHMARK.evaluation_serials
    # (timestep, camera, H, W, 3) has the very shape of the camera-major layout: only its dims tell them apart
    ds = xr.Dataset({"images": (("timestep", "camera", "height", "width", "rgb"), np.stack([frames] * 4, axis=1))},
                    coords={"camera": np.array(serials, dtype=object)})
    ds.to_zarr(tmp_path / "r.zarr", group="393/SEN-10-port_strong_smokey", zarr_format=3, consolidated=False)
    with pytest.raises(SubmissionError, match="393/SEN-10-port_strong_smokey/images: expected dims \\(camera, timestep"):
        write_submission(tmp_path / "r.zarr", MONO, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()


def test_renders_with_more_camera_names_than_camera_entries_are_refused(tmp_path, mono_frames):
    group = zarr.open_group(tmp_path / "r.zarr", mode="w").require_group("393/FREE")
    group.create_array("images", data=np.stack([mono_frames[(393, "FREE")]] * 3))  # 3 cameras
    group.create_array("camera", shape=(4,), dtype=str)[...] = np.array(MONO_BENCHMARK.evaluation_serials[:4])  # 4 names
    with pytest.raises(SubmissionError, match="393/FREE/images: expected shape \\(camera, T, H, W, 3\\) with 4 cameras"):
        write_submission(tmp_path / "r.zarr", MONO, tmp_path / "s.zip")


def test_submit_append_skips_videos_already_in_the_submission(tmp_path, mono_frames):
    store = tmp_path / "renders.zarr"
    group = zarr.open_group(store, mode="w").require_group("393/FREE")
    group.create_array("222200037", data=mono_frames[(393, "FREE")])
    out = tmp_path / "s.zip"
    _, encoded = write_submission(store, MONO, out)
    assert encoded == [(393, "FREE", "222200037")]
    group.create_array("222200046", data=mono_frames[(393, "FREE")])
    _, encoded = write_submission(store, MONO, out, mode="a")
    assert encoded == [(393, "FREE", "222200046")]
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == 2


@pytest.mark.slow
def test_renders_from_a_converted_sample_store_round_trip_with_store_metadata(tmp_path, sample_root):
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.read.store import open_sequence

    b = MONO_BENCHMARK
    train_seq = b.train_sequences[393][0]
    store = tmp_path / "store.zarr"
    convert_benchmark(sample_root, store, benchmarks=MONO, participants=[393], sequences=[train_seq], progress=False)
    counts = load_frame_counts(store, MONO)  # the metadata.json the converter keeps in the store's attrs
    images = open_sequence(store, MONO, 393, train_seq)["images"].isel(camera=0).data  # dask (T, h, w, 3)
    factor = b.height // images.shape[1]
    # stand-in renders: the sample's frames upscaled to 512x512, looped to each test sequence's frame count
    upscaled = images.map_blocks(lambda x: x.repeat(factor, axis=1).repeat(factor, axis=2),
                                 chunks=(images.chunks[0], (b.height,), (b.width,), (3,)), dtype=np.uint8)
    target = tmp_path / "sub.zip"
    renders = {}
    with SubmissionWriter(target, MONO, metadata=store) as w:
        for seq in b.test_sequences[393][:2]:
            frames = upscaled[np.arange(counts[(393, seq)]) % upscaled.shape[0]]
            for serial in b.evaluation_serials[:2]:
                w.add_video(393, seq, serial, frames)
                renders[submission_video_path(393, seq, serial)] = frames
    for name, frames in renders.items():
        expected = frames.compute()
        decoded = decode_member(target, name, tmp_path)
        assert decoded.shape == expected.shape
        assert min(psnr(a, b) for a, b in zip(decoded, expected)) >= 40


def test_official_writer_names_are_drop_ins(tmp_path, mono_frames):
    from nersemble_zarr.submission.writer import MonoFlameAvatarSubmissionDataWriter, NVSSubmissionDataWriter

    with MonoFlameAvatarSubmissionDataWriter(tmp_path / "m.zip") as w:
        w.add_video(393, "FREE", "222200037", list(mono_frames[(393, "FREE")]))
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        assert zf.namelist() == [submission_video_path(393, "FREE", "222200037")]
    with NVSSubmissionDataWriter(tmp_path / "n.zip", finalize=False) as w:
        assert w.benchmark is NVS_BENCHMARK
        with pytest.raises(SubmissionError, match="expected frames of shape \\(T, 1604, 1100, 3\\)"):
            w.add_video(388, "GLASSES", "222200046", mono_frames[(393, "FREE")])


def test_zarr_arrays_and_xarray_dataarrays_are_streamed_directly(tmp_path, mono_frames):
    frames = mono_frames[(393, "EMO-1-shout+laugh")]  # 5 frames
    stored = zarr.create_array(tmp_path / "r.zarr", data=frames, chunks=(1, 512, 512, 3), shards=(2, 512, 512, 3))
    labelled = xr.DataArray(da.from_array(frames, chunks=(3, 512, 512, 3)), dims=("timestep", "height", "width", "rgb"))
    target = tmp_path / "s.zip"
    with SubmissionWriter(target, MONO, metadata=MONO_METADATA) as w:
        w.add_video(393, "EMO-1-shout+laugh", "222200037", stored)
        w.add_video(393, "EMO-1-shout+laugh", "222200046", labelled)
    for serial in ("222200037", "222200046"):
        decoded = decode_member(target, submission_video_path(393, "EMO-1-shout+laugh", serial), tmp_path)
        assert decoded.shape == frames.shape and min(psnr(a, b) for a, b in zip(decoded, frames)) >= 40


def test_submit_names_a_renders_path_that_is_no_store(tmp_path):
    with pytest.raises(SubmissionError, match="renders .*nowhere.zarr: cannot open as a Zarr group"):
        write_submission(tmp_path / "nowhere.zarr", MONO, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()

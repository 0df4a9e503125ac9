"""Sample benchmark generator: official layout, decodable content true to its source, consistent 3D scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from nersemble_zarr.core.benchmark import (
    MONO,
    MONO_BENCHMARK,
    NVS,
    NVS_BENCHMARK,
    SERIALS,
    calibration_path,
    pointcloud_path,
    tracking_path,
    video_path,
)
from nersemble_zarr.raw import (
    iter_frames,
    probe_video,
    read_camera_params,
    read_metadata,
    read_pcd,
    read_tracking,
)
from nersemble_zarr.testing.sample import SampleError, generate_sample, sample_resolution, source_frames
from test_video_writer import keyframe_count, psnr

P_NVS, P_MONO = 388, 393
SEQ_NVS = NVS_BENCHMARK.sequences[P_NVS][0]
FRAMES, SEED = 10, 0  # as conftest's sample_root


def files_below(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_layout_is_the_official_one_and_nothing_else(sample_root):
    expected = {f"{NVS}/metadata.json", f"{MONO}/metadata.json"}
    nvs_meta = read_metadata(sample_root / NVS / "metadata.json", NVS)
    expected.add(f"{NVS}/{calibration_path(P_NVS)}")
    for serial in NVS_BENCHMARK.train_serials:
        for kind in ("images", "alpha_maps"):
            expected.add(f"{NVS}/{video_path(P_NVS, SEQ_NVS, serial, kind)}")
    for t in range(nvs_meta.n_frames(P_NVS, SEQ_NVS)):
        expected.add(f"{NVS}/{pointcloud_path(P_NVS, SEQ_NVS, t)}")
    expected.add(f"{MONO}/{calibration_path(P_MONO)}")
    for seq in MONO_BENCHMARK.sequences[P_MONO]:
        for v in (1, 2):
            expected.add(f"{MONO}/{tracking_path(P_MONO, seq, v)}")
        if seq in MONO_BENCHMARK.train_sequences[P_MONO]:
            for kind in ("images", "alpha_maps"):
                expected.add(f"{MONO}/{video_path(P_MONO, seq, MONO_BENCHMARK.train_serials[0], kind)}")
    found = {str(f.relative_to(sample_root)) for f in sample_root.rglob("*") if f.is_file() and not f.name.startswith(".")}
    assert found == expected
    assert not list(sample_root.rglob("*tmp*")), "temporary files left behind"


def test_metadata_lists_every_participant_with_the_generated_frame_counts(sample_root):
    nvs = read_metadata(sample_root / NVS / "metadata.json", NVS)
    mono = read_metadata(sample_root / MONO / "metadata.json", MONO)
    assert nvs.participants == sorted(NVS_BENCHMARK.participants)
    assert mono.participants == sorted(MONO_BENCHMARK.participants)
    assert set(mono.frame_counts) == {(p, s) for p in MONO_BENCHMARK.participants for s in MONO_BENCHMARK.sequences[p]}
    for serial in NVS_BENCHMARK.train_serials:
        assert probe_video(sample_root / NVS / video_path(P_NVS, SEQ_NVS, serial)).n_frames == nvs.n_frames(P_NVS, SEQ_NVS)
    counts = set()
    for seq in MONO_BENCHMARK.train_sequences[P_MONO]:
        for kind in ("images", "alpha_maps"):
            info = probe_video(sample_root / MONO / video_path(P_MONO, seq, MONO_BENCHMARK.train_serials[0], kind))
            assert info.n_frames == mono.n_frames(P_MONO, seq)
            assert (info.width, info.height, info.fps) == (64, 64, pytest.approx(MONO_BENCHMARK.fps))
            counts.add(info.n_frames)
    assert len(counts) > 1, "frame counts must differ between sequences"
    assert max(counts) <= FRAMES


def test_videos_decode_to_their_source_within_codec_tolerance(sample_root):
    serial = NVS_BENCHMARK.train_serials[4]
    rgb_path = sample_root / NVS / video_path(P_NVS, SEQ_NVS, serial, "images")
    alpha_path = sample_root / NVS / video_path(P_NVS, SEQ_NVS, serial, "alpha_maps")
    sources = list(source_frames(NVS, P_NVS, SEQ_NVS, serial, frames=FRAMES, seed=SEED))
    decoded_rgb, decoded_alpha = list(iter_frames(rgb_path)), list(iter_frames(alpha_path, alpha=True))
    assert len(sources) == len(decoded_rgb) == len(decoded_alpha)
    h, w = sample_resolution(NVS, 1 / 8)
    assert (h, w) == (200, 138)
    for (rgb, alpha), got_rgb, got_alpha in zip(sources, decoded_rgb, decoded_alpha):
        assert got_rgb.shape == (h, w, 3) and got_alpha.shape == (h, w)
        assert psnr(rgb, got_rgb) >= 35
        assert psnr(alpha, got_alpha) >= 35
        assert (rgb[alpha == 0] == 255).all(), "background must be exactly white where alpha is 0"
        assert 0.05 < (alpha > 0).mean() < 0.6, "the head covers part of the frame"
    moving = [np.abs(a.astype(int) - b).mean() for (a, _), (b, _) in zip(sources, sources[1:])]
    assert min(moving) > 0.1, "content moves between timesteps"


def test_videos_have_several_keyframes(sample_root):
    serial = NVS_BENCHMARK.train_serials[0]
    path = sample_root / NVS / video_path(P_NVS, SEQ_NVS, serial)
    assert keyframe_count(path) >= 2


def test_pointclouds_project_onto_the_head_in_every_camera(sample_root):
    calib = read_camera_params(sample_root / NVS / calibration_path(P_NVS))
    meta = read_metadata(sample_root / NVS / "metadata.json", NVS)
    sizes = set()
    for t in (0, meta.n_frames(P_NVS, SEQ_NVS) - 1):
        cloud = read_pcd(sample_root / NVS / pointcloud_path(P_NVS, SEQ_NVS, t))
        sizes.add(len(cloud))
        assert cloud.normals is not None and np.allclose(np.linalg.norm(cloud.normals, axis=1), 1, atol=1e-5)
        assert cloud.colors.std() > 10, "colours come from the textured head"
        for serial in NVS_BENCHMARK.train_serials:
            alpha = list(iter_frames(sample_root / NVS / video_path(P_NVS, SEQ_NVS, serial, "alpha_maps"), alpha=True))[t]
            w2c, k = calib.world_2_cam[serial], calib.intrinsics[serial]
            cam = cloud.points @ w2c[:3, :3].T + w2c[:3, 3]
            assert (cam[:, 2] > 0.8).all() and (cam[:, 2] < 1.2).all(), "about 1 m in front of every camera"
            uv = cam @ k.T
            uv = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < alpha.shape[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < alpha.shape[0])
            assert inside.all()
            assert (alpha[uv[:, 1], uv[:, 0]] > 0).mean() > 0.97
    assert len(sizes) == 2, "point counts differ between timesteps"


def test_calibration_has_all_cameras_on_an_arc_looking_at_the_head(sample_root):
    for bench, pid in ((NVS, P_NVS), (MONO, P_MONO)):
        calib = read_camera_params(sample_root / bench / calibration_path(pid))
        assert sorted(calib.serials) == sorted(SERIALS)
        h, w = sample_resolution(bench, 1 / 8)
        for serial in SERIALS:
            w2c, k = calib.world_2_cam[serial], calib.intrinsics[serial]
            np.testing.assert_allclose(w2c[:3, :3] @ w2c[:3, :3].T, np.eye(3), atol=1e-12)
            assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)
            centre = -w2c[:3, :3].T @ w2c[:3, 3]
            assert 0.9 < np.linalg.norm(centre) < 1.1
            head = k @ w2c[:3, 3]  # world origin (head centre) in the image
            u, v = head[:2] / head[2]
            assert abs(u - w / 2) < 0.1 * w and abs(v - h / 2) < 0.1 * h


def test_tracking_for_every_mono_sequence_and_no_video_for_test_sequences(sample_root):
    meta = read_metadata(sample_root / MONO / "metadata.json", MONO)
    for seq in MONO_BENCHMARK.sequences[P_MONO]:
        v1 = read_tracking(sample_root / MONO / tracking_path(P_MONO, seq, 1))
        v2 = read_tracking(sample_root / MONO / tracking_path(P_MONO, seq, 2))
        assert v1.n_timesteps == v2.n_timesteps == meta.n_frames(P_MONO, seq)
        for t in (v1, v2):
            assert all(a.dtype == np.float32 for k, a in t.as_dict().items() if k != "frames")
            np.testing.assert_allclose(t.rotation_matrices, Rotation.from_euler("XYZ", t.rotation).as_matrix(), atol=1e-5)
        diff = np.abs(v1.expression - v2.expression).max()
        assert 0 < diff < 0.2, "v2 is a slightly different fit of the same sequence"
        assert np.abs(v1.translation).max() < 0.1 and np.abs(v1.expression).max() < 3
        if MONO_BENCHMARK.is_test_sequence(P_MONO, seq):
            assert not (sample_root / MONO / video_path(P_MONO, seq, MONO_BENCHMARK.train_serials[0])).parent.exists()


def test_same_seed_same_bytes_and_reruns_resume(tmp_path):
    kwargs = dict(benchmarks=(NVS,), frames=3, seed=5, pointclouds="first")
    a = files_below(generate_sample(tmp_path / "a", **kwargs))
    b = files_below(generate_sample(tmp_path / "b", **kwargs))
    assert a == b and len(a) > 20
    victim = tmp_path / "b" / NVS / video_path(P_NVS, SEQ_NVS, NVS_BENCHMARK.train_serials[2])
    victim.unlink()
    generate_sample(tmp_path / "b", **kwargs)
    assert files_below(tmp_path / "b") == a
    other = files_below(generate_sample(tmp_path / "c", **{**kwargs, "seed": 6}))
    assert other[f"{NVS}/{calibration_path(P_NVS)}"] != a[f"{NVS}/{calibration_path(P_NVS)}"]


def test_rerun_with_other_arguments_is_refused(tmp_path):
    generate_sample(tmp_path / "s", benchmarks=(NVS,), frames=2, pointclouds="first")
    with pytest.raises(SampleError, match=r"holds a sample made with .*'frames': 2.*not .*'frames': 3"):
        generate_sample(tmp_path / "s", benchmarks=(NVS,), frames=3, pointclouds="first")


def test_a_folder_with_other_benchmark_data_is_never_mixed_into(tmp_path):
    (tmp_path / "raw" / NVS / "388").mkdir(parents=True)
    with pytest.raises(SampleError, match=r"already holds nvs data not made by this generator"):
        generate_sample(tmp_path / "raw", benchmarks=(NVS,), frames=2)
    assert not (tmp_path / "raw" / NVS / "metadata.json").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"participants": (999,)}, r"participant\(s\) 999 not in the chosen benchmark"),
        ({"benchmarks": ("nerf",)}, "unknown benchmark 'nerf'"),
        ({"benchmarks": ("svfr",), "svfr_images": 0}, "svfr_images must be at least 1 or 'all'"),
        ({"frames": 0}, "frames must be at least 1"),
        ({"scale": 1.5}, r"scale must be in \(0, 1\]"),
        ({"pointclouds": "some"}, "pointclouds must be 'first' or 'all'"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(SampleError, match=message):
        generate_sample(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_cli_generates_a_sample_and_summarises(tmp_path):
    from nersemble_zarr.cli.main import cli

    out = tmp_path / "raw"
    result = CliRunner().invoke(
        cli, ["sample", str(out), "--benchmark", "mono_flame_avatar", "-p", "404", "--frames", "3", "--scale", "1/4",
              "--no-progress", "--flame-model", str(tmp_path / "flame")],
    )
    assert result.exit_code == 0, result.output
    assert f"{out / MONO}: " in result.output and "files" in result.output
    info = probe_video(out / MONO / video_path(404, MONO_BENCHMARK.train_sequences[404][0], MONO_BENCHMARK.train_serials[0]))
    assert (info.width, info.height) == (128, 128)
    assert (tmp_path / "flame" / "flame2023.pkl").is_file()
    assert not (out / NVS).exists()


def test_cli_unknown_participant_is_one_line_with_exit_status_2(tmp_path, capsys):
    from nersemble_zarr.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path / "s"), "-p", "12345", "--no-progress"])
    assert exit_info.value.code == 2  # a bad argument (SelectionError), as in every command
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: participant 12345 is not in the") and "\n" not in err
    assert "388" in err and not (tmp_path / "s").exists()  # names the valid choices; nothing written


def test_help_explains_every_option_with_its_default():
    from nersemble_zarr.cli.main import cli

    top = CliRunner().invoke(cli, ["--help"])
    assert top.exit_code == 0 and "sample" in top.output
    text = " ".join(CliRunner().invoke(cli, ["sample", "--help"]).output.split())
    for option, default in [
        ("--benchmark", "all"), ("--participant", "388 (nvs), 393 (mono_flame_avatar)"), ("--frames", "12"),
        ("--scale", "1/8"), ("--seed", "0"), ("--pointclouds", "all"), ("--flame-model", "none"), ("--workers", "threads in this process"),
    ]:
        assert option in text
        assert f"[default: {default}" in text, option


@pytest.mark.slow
def test_full_resolution_mono_sample(tmp_path):
    root = generate_sample(tmp_path / "full", benchmarks=(MONO,), frames=2, scale=1, pointclouds="first")
    seq = MONO_BENCHMARK.train_sequences[P_MONO][3]
    path = root / MONO / video_path(P_MONO, seq, MONO_BENCHMARK.train_serials[0])
    info = probe_video(path)
    assert (info.width, info.height) == (MONO_BENCHMARK.width, MONO_BENCHMARK.height)
    sources = list(source_frames(MONO, P_MONO, seq, MONO_BENCHMARK.train_serials[0], frames=2, scale=1))
    for (rgb, _), got in zip(sources, iter_frames(path)):
        assert psnr(rgb, got) >= 35
    calib = read_camera_params(root / MONO / calibration_path(P_MONO))
    k = calib.intrinsics[MONO_BENCHMARK.train_serials[0]]
    assert abs(k[0, 2] - MONO_BENCHMARK.width / 2) < 0.05 * MONO_BENCHMARK.width
    assert sample_resolution(NVS, 1) == (NVS_BENCHMARK.height, NVS_BENCHMARK.width)
    json.loads((root / MONO / "metadata.json").read_text())

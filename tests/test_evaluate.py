"""nersemble-zarr evaluate: metrics equal to their references, the masked definition, validation splits shared
with FrameDataset, the job runner path, and sample → convert → renders → submit → evaluate end to end."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from nersemble_zarr.cli.main import cli
from nersemble_zarr.core.errors import SelectionError
from nersemble_zarr.core.splits import (
    SplitError, nearest_train_cameras, parse_split, split_sequence,
)
from nersemble_zarr.evaluate import metrics as M
from nersemble_zarr.evaluate.report import plot
from nersemble_zarr.evaluate.run import EvaluateError, evaluate
from nersemble_zarr.read.store import open_sequence

NVS_SEQ = (388, "GLASSES")


def _pair(shape=(64, 48, 3), sigma=8.0, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, shape, dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.normal(0, sigma, shape).round(), 0, 255).astype(np.uint8)
    return pred, gt


# ---------------------------------------------------------------------------------------------
# Known answers and reference equality
# ---------------------------------------------------------------------------------------------


def test_identical_frames_give_psnr_inf_and_ssim_one():
    _, gt = _pair()
    assert M.psnr(gt, gt) == math.inf
    assert M.ssim(gt, gt) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("d", [1, 4, 17])
def test_known_error_gives_the_analytic_psnr(d):
    rng = np.random.default_rng(d)
    gt = rng.integers(40, 210, (50, 30, 3), dtype=np.uint8)
    signs = rng.choice([-1, 1], gt.shape)
    pred = (gt.astype(int) + d * signs).astype(np.uint8)  # |error| = d at every pixel: MSE = (d / 255)^2
    assert M.psnr(pred, gt) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)


def _tm(x):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(x).permute(2, 0, 1)[None].to(torch.float32) / 255


@pytest.mark.parametrize("shape, sigma", [((64, 48, 3), 8.0), ((37, 53, 3), 30.0), ((200, 138, 3), 2.0)])
def test_psnr_and_ssim_equal_torchmetrics(shape, sigma):
    pytest.importorskip("torchmetrics")
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    pred, gt = _pair(shape, sigma, seed=len(shape) + int(sigma))
    assert M.psnr(pred, gt) == pytest.approx(float(peak_signal_noise_ratio(_tm(pred), _tm(gt), data_range=1.0)), abs=1e-4)
    ref = float(structural_similarity_index_measure(_tm(pred), _tm(gt), data_range=1.0, gaussian_kernel=True,
                                                    sigma=1.5, kernel_size=11))
    assert M.ssim(pred, gt) == pytest.approx(ref, abs=1e-4)


def test_ssim_map_equals_torchmetrics_per_pixel_across_band_and_tile_seams():
    """53 rows = 3 bands of 16 + 5, 75 columns = 2 tiles of 32 + 11: every seam and the reflect border agree."""
    pytest.importorskip("torchmetrics")
    from torchmetrics.functional.image import structural_similarity_index_measure

    assert (M.SSIM_BAND_ROWS, M.SSIM_TILE_COLS) == (16, 32)
    pred, gt = _pair((53, 75, 3), 20.0, seed=7)
    _, ref = structural_similarity_index_measure(_tm(pred), _tm(gt), data_range=1.0, return_full_image=True)
    ours = M.ssim_map(pred, gt)
    assert ours.shape == (3, 53, 75) and ours.dtype == np.float32
    assert np.abs(ours - ref[0].numpy()).max() < 1e-5
    assert M.ssim(pred, gt) == pytest.approx(float(ours.mean(dtype=np.float64)), abs=1e-7)


def test_ssim_equals_torchmetrics_on_flat_white_regions():
    """Masked frames are white where alpha is 0: float32 rounding of the flat regions' variances stays far below 1e-4."""
    pytest.importorskip("torchmetrics")
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, gt = _pair((90, 64, 3), 10.0, seed=13)
    gt[:50], pred[:40] = 255, 255
    gt[60:70, :, 1] = 0
    ref = float(structural_similarity_index_measure(_tm(pred), _tm(gt), data_range=1.0))
    assert M.ssim(pred, gt) == pytest.approx(ref, abs=1e-4)


def test_ssim_on_threads_gives_the_same_value_and_map():
    pred, gt = _pair((101, 70, 3), 15.0, seed=11)
    one = M.ssim(pred, gt)
    assert M.ssim(pred, gt, threads=2) == one and M.ssim(pred, gt, threads=3) == one
    assert np.array_equal(M.ssim_map(pred, gt, threads=2), M.ssim_map(pred, gt))


def test_ssim_refuses_frames_too_small_for_the_reflect_padding():
    frame = np.zeros((5, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="larger than 5 pixels on each side .*found 40x5"):
        M.ssim(frame, frame)


def test_ssim_equals_scikit_image_away_from_the_border():
    """skimage and torchmetrics pad differently and skimage crops the 5-pixel border: the maps agree inside."""
    skm = pytest.importorskip("skimage.metrics")
    pred, gt = _pair((80, 70, 3), 12.0, seed=3)
    ref = skm.structural_similarity(pred, gt, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255)
    assert float(M.ssim_map(pred, gt)[:, 5:-5, 5:-5].mean(dtype=np.float64)) == pytest.approx(ref, abs=1e-4)


def test_masked_variant_blends_both_images_onto_white_as_the_paper():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (20, 10, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 10), dtype=np.uint8)
    a = alpha[..., None] / 255.0  # the paper's perform_alpha_blending, verbatim in numpy
    paper = np.clip((a * (img / 255.0) + (1 - a) * np.ones_like(img / 255.0)) * 255.0, 0, 255).astype(np.uint8)
    assert np.array_equal(M.alpha_blend_white(img, alpha), paper)
    assert np.array_equal(M.alpha_blend_white(img, alpha[..., None]), paper)
    # where alpha is 0 both images become white: differences there do not count in the masked variant
    gt = img.copy()
    pred = img.copy()
    alpha = np.full((20, 10), 255, np.uint8)
    alpha[:, :5] = 0
    pred[:, :5] = 0
    assert M.psnr(pred, gt) < 20
    assert M.psnr(M.alpha_blend_white(pred, alpha), M.alpha_blend_white(gt, alpha)) == math.inf


def test_mismatched_frames_are_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4, 3\) and \(4, 5, 3\)"):
        M.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8; found float32 and uint8"):
        M.ssim(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# LPIPS plumbing and JOD streaming
# ---------------------------------------------------------------------------------------------


def _random_alexnet(path: Path) -> Path:
    """A torchvision-layout AlexNet state dict with random weights (``features.*`` keys), saved to ``path``."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for i, shape in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(shape) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(shape[0])
    state["classifier.1.weight"] = torch.zeros(4, 4)  # other keys of the torchvision file are ignored
    torch.save(state, path)
    return path


def test_lpips_without_weights_names_the_file_to_provide(tmp_path):
    pytest.importorskip("torchmetrics")
    with pytest.raises(M.MetricUnavailable, match=r"AlexNet backbone weights at .*alexnet-owt-7be5be79.pth.*nothing is downloaded"):
        M.LPIPS(tmp_path / "absent" / "alexnet-owt-7be5be79.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(M.MetricUnavailable, match="not an AlexNet state dict"):
        M.LPIPS(bad)


def test_lpips_runs_from_a_weights_file_on_disk(tmp_path, monkeypatch):
    pytest.importorskip("torchmetrics")
    weights = _random_alexnet(tmp_path / "alexnet.pth")
    lpips = M.LPIPS(weights)
    pred, gt = _pair((64, 64, 3), 20.0)
    assert lpips(gt, gt) == pytest.approx(0.0, abs=1e-7)
    assert lpips(pred, gt) > 0
    # torchvision's cache location is found without a path
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / M.ALEXNET_WEIGHTS_FILE).write_bytes(weights.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    assert M.LPIPS().weights == cache / M.ALEXNET_WEIGHTS_FILE


def test_lpips_equals_torchmetrics_with_the_same_backbone(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")  # torchmetrics builds its AlexNet with torchvision
    from torchmetrics.functional.image.lpips import _LPIPS

    weights = _random_alexnet(tmp_path / "alexnet.pth")
    ref = _LPIPS(pretrained=True, net="alex", pnet_rand=True)
    state = torch.load(weights)
    for name, module in ref.net.named_children():  # slices keep torchvision's layer indices
        for idx, layer in module.named_children():
            if hasattr(layer, "weight"):
                layer.weight.data = state[f"features.{idx}.weight"]
                layer.bias.data = state[f"features.{idx}.bias"]
    pred, gt = _pair((64, 64, 3), 20.0)
    expected = float(ref(_tm(pred), _tm(gt), normalize=True).squeeze())
    assert M.LPIPS(weights)(pred, gt) == pytest.approx(expected, abs=1e-5)


def test_jod_streamed_frame_by_frame_equals_pyfvvdp_on_the_whole_array():
    pytest.importorskip("pyfvvdp")
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (4, 48, 40, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8)
    q, _ = M.make_jod().predict(pred, gt, dim_order="FHWC", frames_per_second=M.jod_fps(73, 1))
    seen = []
    streamed = M.JODVideo(M.make_jod(), iter(zip(pred, gt)), 4, 48, 40, M.jod_fps(73, 1),
                          on_frame=lambda i, a, b: seen.append(i)).run()
    assert streamed == pytest.approx(float(q), abs=1e-5)
    assert seen == [0, 1, 2, 3]  # each frame pulled once, in order
    assert M.jod_fps(73, 20) == 4.1 and M.jod_fps(73, 2) == 36.5


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def _rig():
    """A ring of the 16 serials at known angles (camera centres on a circle, looking at the origin)."""
    from nersemble_zarr.core.benchmark import SERIALS

    w2c = []
    for i, _ in enumerate(SERIALS):
        angle = np.deg2rad(-90 + 12 * i)
        centre = np.array([np.sin(angle), 0.0, np.cos(angle)])
        m = np.eye(4)
        m[:3, 3] = -centre  # R = I: t = -R C
        w2c.append(m)
    return list(SERIALS), np.stack(w2c)


def test_nearest_split_takes_the_train_camera_next_to_each_hold_out():
    serials, w2c = _rig()
    chosen = nearest_train_cameras(serials, w2c)
    # SERIALS order: hold-outs 222200046 (index 2), 222200037 (8), 222200039 (13); neighbours at distance 1
    # (ties go to the smaller serial): 222200044 (1) vs 222200040 (3) -> 222200040; 222200041 (7) vs
    # 222200038 (9) -> 222200038; 222200049 (12) vs 222200045 (14) -> 222200045
    assert chosen == ("222200040", "222200038", "222200045")
    parts = split_sequence(None, "nvs", "GLASSES", [s for s in serials if s not in ("222200046", "222200037", "222200039")],
                           range(5), serials, w2c)
    assert set(parts["validation"].cameras) == set(chosen)
    assert len(parts["train"].cameras) == 10 and not set(parts["train"].cameras) & set(chosen)
    assert parts["train"].timesteps == parts["validation"].timesteps == (0, 1, 2, 3, 4)


def test_mono_default_split_holds_out_the_last_ten_percent_of_frames():
    parts = split_sequence(None, "mono_flame_avatar", "EXP-1-head", ["222200037"], range(25))
    assert parts["validation"].timesteps == (22, 23, 24)  # ceil(2.5)
    assert parts["train"].timesteps == tuple(range(22))
    parts = split_sequence("sequences=EXP-1-head", "mono_flame_avatar", "EXP-1-head", ["222200037"], range(5))
    assert not parts["train"] and parts["validation"].timesteps == tuple(range(5))


@pytest.mark.parametrize("spec, benchmark, message", [
    ("cameras=222200046", "nvs", r"222200046 not train cameras of nvs"),
    ("last=0", "mono_flame_avatar", "between 0 and 100 percent"),
    ("last=ten", "nvs", "takes a percentage"),
    ("nearest", "mono_flame_avatar", "'nearest' is for the nvs benchmark"),
    ("sequences=FREE", "mono_flame_avatar", "FREE not a sequence with video"),
    ("holdout", "nvs", "unknown split 'holdout'"),
])
def test_bad_split_rules_are_refused_with_the_reason(spec, benchmark, message):
    with pytest.raises(SplitError, match=message):
        parse_split(spec, benchmark)


def test_frame_dataset_and_evaluate_use_the_same_validation_frames(converted_store):
    pytest.importorskip("torch")
    from nersemble_zarr.read.torch_dataset import FrameDataset

    val = FrameDataset(converted_store, "nvs", participants=[388], split="validation", with_alpha=False)
    train = FrameDataset(converted_store, "nvs", participants=[388], split="train", with_alpha=False)
    every = FrameDataset(converted_store, "nvs", participants=[388], with_alpha=False)
    val_keys = {val.key(i) for i in range(len(val))}
    train_keys = {train.key(i) for i in range(len(train))}
    assert not val_keys & train_keys and val_keys | train_keys == {every.key(i) for i in range(len(every))}
    cameras = sorted({k[2] for k in val_keys})
    assert len(cameras) == 3

    ds = open_sequence(converted_store, "nvs", *NVS_SEQ)
    preds = {(*NVS_SEQ, c): ds.images.sel(camera=c).values for c in cameras}
    report = evaluate(preds, converted_store, metrics=["psnr", "ssim"], threads=2)
    scored = {(*r.key, t) for r in report.results for t in r.timesteps}
    assert scored == val_keys
    assert all(v["psnr"] == math.inf and v["ssim"] == pytest.approx(1.0) for v in report.to_dict()["videos"])
    # a train camera is refused under the validation split (and names the way out)
    train_cam = sorted({k[2] for k in train_keys})[0]
    with pytest.raises(EvaluateError, match=rf"cam_{train_cam}: not in the validation part of split nearest.*split='all'"):
        evaluate({(*NVS_SEQ, train_cam): ds.images.sel(camera=train_cam).values}, converted_store, metrics=["psnr"])
    # every-nth of the part on both sides
    val3 = FrameDataset(converted_store, "nvs", participants=[388], split="validation", every_nth_frame=3, with_alpha=False)
    report = evaluate(preds, converted_store, metrics=["psnr"], every_nth=3, threads=1)
    assert {(*r.key, t) for r in report.results for t in r.timesteps} == {val3.key(i) for i in range(len(val3))}


# ---------------------------------------------------------------------------------------------
# evaluate() on the shared sample store
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_validation(converted_store):
    """Predictions: the validation cameras' ground truth with a known ±6 error inside the head (alpha > 0)."""
    ds = open_sequence(converted_store, "nvs", *NVS_SEQ)
    cams = sorted(validation_cameras(converted_store))
    rng = np.random.default_rng(0)
    preds = {}
    for c in cams:
        gt = ds.images.sel(camera=c).values
        signs = rng.choice(np.array([-6, 6]), gt.shape)
        preds[(*NVS_SEQ, c)] = np.clip(gt.astype(int) + signs, 0, 255).astype(np.uint8)
    return preds


def test_evaluate_reports_per_video_means_per_frame_values_and_a_plot(converted_store, noisy_validation, tmp_path):
    report = evaluate(noisy_validation, converted_store, metrics=["psnr", "ssim", "lpips"], masked="both",
                      lpips_weights=str(tmp_path / "no-weights.pth"), threads=2)
    try:
        import torch  # noqa: F401
        import torchmetrics  # noqa: F401

        reason = (f"lpips needs the AlexNet backbone weights at {tmp_path / 'no-weights.pth'} (torchvision's "
                  f"alexnet-owt-7be5be79.pth; pass --lpips-weights FILE); nothing is downloaded")
    except ImportError as e:  # the Python 3.12 CI job has neither
        reason = f"lpips needs torch and torchmetrics ({e.name} is not installed)"
    assert report.skipped == [f"skipped lpips: {reason}"]
    d = report.to_dict()
    assert d["metrics"] == ["psnr", "psnr_masked", "ssim", "ssim_masked"]
    ds = open_sequence(converted_store, "nvs", *NVS_SEQ)
    for video in d["videos"]:
        pred = noisy_validation[(video["participant"], video["sequence"], video["camera"])]
        gt = ds.images.sel(camera=video["camera"]).values
        alpha = ds.alpha.sel(camera=video["camera"]).values
        assert video["psnr"] == pytest.approx(np.mean([M.psnr(p, g) for p, g in zip(pred, gt)]), abs=1e-9)
        assert video["ssim"] == pytest.approx(np.mean([M.ssim(p, g) for p, g in zip(pred, gt)]), abs=1e-9)
        masked = [M.psnr(M.alpha_blend_white(p, a), M.alpha_blend_white(g, a)) for p, g, a in zip(pred, gt, alpha)]
        assert video["psnr_masked"] == pytest.approx(np.mean(masked), abs=1e-9)
        assert video["n_frames"] == len(gt)
    # the overall mean is over all frames
    frames = report.per_frame()
    assert set(frames.dims) == {"participant", "sequence", "camera", "timestep"}
    assert d["mean"]["psnr"] == pytest.approx(float(frames.psnr.mean()), abs=1e-9)
    json_path, nc_path = report.save(tmp_path / "out" / "eval.json")
    assert json.loads(json_path.read_text())["videos"] == json.loads(json.dumps(d["videos"]))
    import xarray as xr

    with xr.open_dataset(nc_path) as back:
        np.testing.assert_array_equal(back.psnr.values, frames.psnr.values)
    png = plot(report, tmp_path / "eval.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean" in report.table() and "psnr_masked" in report.table()


def test_evaluate_refuses_predictions_that_do_not_fit(converted_store, noisy_validation):
    key, frames = next(iter(noisy_validation.items()))
    with pytest.raises(EvaluateError, match=rf"the prediction has {len(frames) - 1} frames; expected"):
        evaluate({key: frames[:-1]}, converted_store, metrics=["psnr"])
    with pytest.raises(EvaluateError, match=r"level 2 \(scale 1/2\) is not stored; run 'nersemble-zarr downscale"):
        evaluate({key: frames}, converted_store, metrics=["psnr"], level=2, threads=1)
    with pytest.raises(SelectionError, match="unknown metric 'fid'"):
        evaluate({key: frames}, converted_store, metrics=["fid"])
    with pytest.raises(EvaluateError, match=r"prediction frames are 137x200, ground truth at level 1 is 138x200"):
        evaluate({key: frames[:, :, :-1]}, converted_store, metrics=["psnr"], threads=1)


def test_evaluate_command_on_a_renders_store(converted_store, noisy_validation, tmp_path):
    renders = zarr.open_group(tmp_path / "renders.zarr", mode="w")
    for (p, s, c), frames in noisy_validation.items():
        renders.require_group(f"{p:03d}/{s}").create_array(c, data=frames, chunks=(4, *frames.shape[1:]))
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "renders.zarr"), str(converted_store), "-b", "nvs",
                                      "--metrics", "psnr,ssim", "--json", str(out), "--plot", str(tmp_path / "e.png"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "mean" in result.output and (tmp_path / "e.png").is_file() and (tmp_path / "eval.frames.nc").is_file()
    d = json.loads(out.read_text())
    assert sorted(v["camera"] for v in d["videos"]) == sorted(k[2] for k in noisy_validation)
    bad = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "renders.zarr"), str(converted_store), "-b", "nvs",
                                   "--metrics", "psnr", "--split-rule", "last=abc"])
    assert isinstance(bad.exception, SplitError) and bad.exception.exit_code == 2  # main() prints its one line
    assert "'last=P' takes a percentage" in str(bad.exception)


# ---------------------------------------------------------------------------------------------
# End to end: sample -> convert -> renders -> submit -> evaluate the zip
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_convert_submit_evaluate_the_zip(tmp_path):
    from nersemble_zarr.core.benchmark import submission_video_path
    from nersemble_zarr.raw.video import iter_frames
    from nersemble_zarr.testing.sample import generate_sample

    runner = CliRunner()
    raw, store = tmp_path / "raw", tmp_path / "store.zarr"
    generate_sample(raw, benchmarks="nvs", participants=[388], frames=1, scale=1.0, seed=0, pointclouds="first")
    assert runner.invoke(cli, ["convert", str(raw), str(store), "--no-progress"]).exit_code == 0
    ds = open_sequence(store, "nvs", *NVS_SEQ)
    val = validation_cameras(store)
    camera = sorted(val)[0]
    gt = ds.images.sel(camera=camera).values  # (T, 1604, 1100, 3)
    rng = np.random.default_rng(0)
    renders = np.clip(gt.astype(int) + rng.choice(np.array([-3, 3]), gt.shape), 0, 255).astype(np.uint8)
    group = zarr.open_group(tmp_path / "renders.zarr", mode="w").require_group(f"388/{NVS_SEQ[1]}")
    group.create_array(camera, data=renders, chunks=(1, *renders.shape[1:]))
    out = tmp_path / "validation.zip"
    result = runner.invoke(cli, ["submit", str(tmp_path / "renders.zarr"), "nvs", "--out", str(out), "--validation",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "eval.json"
    result = runner.invoke(cli, ["evaluate", str(out), str(store), "--metrics", "psnr,ssim", "--both",
                                 "--json", str(report), "--no-progress"])
    assert result.exit_code == 0, result.output
    [video] = json.loads(report.read_text())["videos"]
    assert (video["participant"], video["sequence"], video["camera"]) == (388, NVS_SEQ[1], camera)
    # expected: the zip's video decoded independently, scored against the store's frames
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "v.mp4").write_bytes(zf.read(submission_video_path(388, NVS_SEQ[1], camera)))
    decoded = list(iter_frames(tmp_path / "v.mp4"))
    alpha = ds.alpha.sel(camera=camera).values
    assert video["psnr"] == pytest.approx(np.mean([M.psnr(p, g) for p, g in zip(decoded, gt)]), abs=1e-6)
    assert video["ssim"] == pytest.approx(np.mean([M.ssim(p, g) for p, g in zip(decoded, gt)]), abs=1e-6)
    masked = [M.psnr(M.alpha_blend_white(p, a), M.alpha_blend_white(g, a)) for p, g, a in zip(decoded, gt, alpha)]
    assert video["psnr_masked"] == pytest.approx(np.mean(masked), abs=1e-6)
    # ±3 everywhere is 38.6 dB before H.264 at crf 14; the codec adds error, clipping at white removes some
    assert 33 < video["psnr"] < 45

    # at a stored level: the ground truth is level 2, the full-resolution prediction is area-averaged to it
    assert runner.invoke(cli, ["downscale", str(store), "--factor", "2", "--no-progress"]).exit_code == 0
    result = runner.invoke(cli, ["evaluate", str(out), str(store), "--metrics", "psnr", "--level", "2",
                                 "--json", str(report), "--no-progress"])
    assert result.exit_code == 0, result.output
    [half] = json.loads(report.read_text())["videos"]
    from nersemble_zarr.imaging import area_average

    gt2 = open_sequence(store, "nvs", *NVS_SEQ, level=2).images.sel(camera=camera).values
    assert gt2.shape[1:] == (802, 550, 3)
    expected = np.mean([M.psnr(area_average(p, 2, axes=(0, 1)), g) for p, g in zip(decoded, gt2)])
    assert half["psnr"] == pytest.approx(expected, abs=1e-6)


def validation_cameras(store: Path) -> set[str]:
    """The validation cameras of 388 per the shared split rule (no torch needed)."""
    from nersemble_zarr.read.resolver import open_root, read_calibration

    ds = open_sequence(store, "nvs", *NVS_SEQ)
    rig = read_calibration(open_root(store), "nvs", 388)
    return set(split_sequence(None, "nvs", NVS_SEQ[1], [str(c) for c in ds.camera.values], list(ds.timestep.values),
                              rig.serials, rig.world_2_cam)["validation"].cameras)

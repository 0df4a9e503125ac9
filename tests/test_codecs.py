"""The JPEG array→bytes codec: round trips, metadata, registration on ``import nersemble_zarr``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import zarr

from nersemble_zarr.codecs import JPEG_CODEC_NAME, JpegCodec


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 image: smooth gradients plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([127 + 100 * np.sin(x / 23 + c) * np.cos(y / 31 - c) for c in range(3)], axis=-1)
    img += rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_jpeg_codec_round_trips_sharded_rgb_frames_at_high_psnr(tmp_path):
    frames = np.stack([_smooth_image(96, 64, s) for s in range(4)])[None]  # (1, 4, 96, 64, 3)
    arr = zarr.create_array(
        tmp_path / "a.zarr", shape=frames.shape, dtype="uint8", chunks=(1, 1, 96, 64, 3), shards=(1, 4, 96, 64, 3),
        serializer=JpegCodec(level=95), compressors=None,
    )
    arr[:] = frames
    back = zarr.open_array(tmp_path / "a.zarr")[:]
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert _psnr(back, frames) > 38
    assert not np.array_equal(back, frames)  # it is lossy: proves the JPEG path ran


def test_jpeg_codec_stores_grayscale_chunks(tmp_path):
    gray = _smooth_image(80, 48)[..., 0][None, None]  # (1, 1, 80, 48)
    arr = zarr.create_array(
        tmp_path / "g.zarr", shape=gray.shape, dtype="uint8", chunks=gray.shape,
        serializer=JpegCodec(level=90), compressors=None,
    )
    arr[:] = gray
    assert _psnr(zarr.open_array(tmp_path / "g.zarr")[:], gray) > 35


def test_jpeg_codec_configuration_is_in_the_array_metadata(tmp_path):
    arr = zarr.create_array(
        tmp_path / "m.zarr", shape=(2, 16, 16, 3), dtype="uint8", chunks=(1, 16, 16, 3),
        serializer=JpegCodec(level=80, subsampling="444"), compressors=None,
    )
    codecs = arr.metadata.to_dict()["codecs"]
    assert codecs[0] == {"name": JPEG_CODEC_NAME, "configuration": {"level": 80, "subsampling": "444"}}
    assert JpegCodec.from_dict(codecs[0]) == JpegCodec(level=80, subsampling="444")


def test_a_fresh_process_reads_a_jpeg_store_after_only_importing_nersemble_zarr(tmp_path):
    img = _smooth_image(32, 32)[None]
    arr = zarr.create_array(
        tmp_path / "r.zarr", shape=img.shape, dtype="uint8", chunks=img.shape, serializer=JpegCodec(), compressors=None,
    )
    arr[:] = img
    code = (
        "import nersemble_zarr, zarr, sys; a = zarr.open_array(sys.argv[1])[:]; "
        "print(a.shape, a.dtype)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.zarr")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 32, 32, 3) uint8"


@pytest.mark.parametrize("kwargs", [{"level": 0}, {"level": 101}, {"subsampling": "411"}])
def test_jpeg_codec_rejects_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        JpegCodec(**kwargs)


def test_jpeg_codec_refuses_non_uint8_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        zarr.create_array(
            tmp_path / "f.zarr", shape=(4, 4), dtype="float32", chunks=(4, 4), serializer=JpegCodec(), compressors=None,
        )

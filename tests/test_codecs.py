"""The JPEG array→bytes codec: round trips, metadata, registration on ``import nersemble_zarr``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from nersemble_zarr.storage.codecs import JPEG_CODEC_NAME, JpegCodec


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


# ------------------------------------------------------------------ every process reads every store (entry points)

#: Run in a fresh interpreter that never imports nersemble_zarr: zarr must find the JPEG codec through the
#: ``zarr.codecs`` entry point of the installed package, in this process and in dask worker processes.
_PLAIN_READER = r"""
import sys, hashlib
import numpy as np, zarr, xarray as xr
from distributed import Client, LocalCluster

if __name__ == "__main__":
    assert "nersemble_zarr" not in sys.modules
    store, array_path, group_path = sys.argv[1:4]
    direct = zarr.open_group(store, mode="r")[array_path][...]
    print("zarr", direct.shape, hashlib.sha256(np.ascontiguousarray(direct).tobytes()).hexdigest())
    tree = xr.open_datatree(store, engine="zarr", chunks={})
    images = tree[group_path].dataset["images"]
    assert images.chunks is not None  # dask-backed: the decode happens on the workers
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        computed = images.data.compute()
        modules = client.run(lambda: "nersemble_zarr.storage.codecs" in sys.modules)
    print("dask", computed.shape, hashlib.sha256(np.ascontiguousarray(computed).tobytes()).hexdigest())
    print("workers", sorted(modules.values()))
"""


@pytest.mark.slow
def test_a_jpeg_store_is_read_by_plain_zarr_xarray_and_dask_workers_without_importing_nersemble_zarr(
        sample_root, tmp_path):
    import hashlib

    from nersemble_zarr.core import benchmark as bm
    from nersemble_zarr.core import schema
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store = tmp_path / "jpeg.zarr"
    report = convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=["EXP-1-head"],
                               image_codec="jpeg", progress=False)
    assert report.ok, report.summary()
    group = schema.sequence_group(bm.MONO, 393, "EXP-1-head")
    arr = zarr.open_group(store, mode="r")[f"{group}/images"]
    assert arr.metadata.to_dict()["codecs"][0]["configuration"]["codecs"][0]["name"] == JPEG_CODEC_NAME
    expected = arr[...]
    digest = hashlib.sha256(np.ascontiguousarray(expected).tobytes()).hexdigest()
    script = tmp_path / "plain_reader.py"
    script.write_text(_PLAIN_READER)
    proc = subprocess.run([sys.executable, str(script), str(store), f"{group}/images", group],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == f"zarr {expected.shape} {digest}"
    assert lines[1] == f"dask {expected.shape} {digest}"
    assert lines[2] == "workers [True, True]"  # each worker loaded the codec from the entry point


# ------------------------------------------------------------------ a cluster whose workers die fails in bounded time

_KILLER = '''
import os, signal

def run_task(task, on_frames=None):
    """A convert unit that crashes its worker process."""
    os.kill(os.getpid(), signal.SIGKILL)
'''

_CONVERT_ON_DYING_CLUSTER = r"""
import subprocess, sys, time
import distributed
import killer
import nersemble_zarr.pipelines.convert as convert
import nersemble_zarr.jobs.cluster as watch

if __name__ == "__main__":
    raw, store = sys.argv[1:3]
    convert.run_task = killer.run_task  # pickled by reference: the worker imports killer too
    watch.NO_WORKERS_TIMEOUT_S = 3.0
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster:
        # one worker without a nanny: nothing restarts it once the task kills it
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                   "--no-nanny", "--nthreads", "1", "--no-dashboard"])
        with distributed.Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
        try:
            convert.convert_benchmark(raw, store, benchmarks="mono_flame_avatar", sequences=["EXP-1-head"],
                                      scheduler=cluster.scheduler_address, progress=False)
        except Exception as e:
            print("raised", type(e).__name__, e)
        else:
            print("returned")
        worker.wait(60)
        print("worker exit", worker.returncode)
"""


@pytest.mark.slow
def test_convert_on_a_cluster_whose_worker_is_killed_by_its_task_raises_instead_of_hanging(sample_root, tmp_path):
    (tmp_path / "killer.py").write_text(_KILLER)
    script = tmp_path / "convert_dying.py"
    script.write_text(_CONVERT_ON_DYING_CLUSTER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(script), str(sample_root), str(tmp_path / "s.zarr")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "raised ClusterError dask cluster at tcp://" in out, (out, proc.stderr[-3000:])
    assert "no worker has been alive for 3 s" in out and "rerun the same command to resume" in out
    assert "worker exit -9" in out  # the task really killed its worker


# ------------------------------------------------------------------ the compact tier: JPEG-XL lossless


def _h264_like_frames(n: int = 3, h: int = 96, w: int = 64) -> np.ndarray:
    """``(1, n, h, w, 3)`` photo-like frames with sensor noise (what lossless codecs must keep bit for bit)."""
    return np.stack([_smooth_image(h, w, s) for s in range(n)])[None]


def test_jpegxl_codec_round_trips_sharded_rgb_and_grey_frames_bit_exact(tmp_path):
    from nersemble_zarr.storage.codecs import JpegXlCodec

    frames = _h264_like_frames()
    arr = zarr.create_array(
        tmp_path / "x.zarr", shape=frames.shape, dtype="uint8", chunks=(1, 1, 96, 64, 3), shards=(1, 3, 96, 64, 3),
        serializer=JpegXlCodec(), compressors=None,
    )
    arr[:] = frames
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "x.zarr")[:], frames)
    grey = frames[..., 0]
    g = zarr.create_array(tmp_path / "g.zarr", shape=grey.shape, dtype="uint8", chunks=(1, 1, 96, 64),
                          serializer=JpegXlCodec(), compressors=None)
    g[:] = grey
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "g.zarr")[:], grey)


def test_jpegxl_codec_configuration_is_in_the_metadata_and_the_tier_names_it(tmp_path):
    from nersemble_zarr.core import schema
    from nersemble_zarr.storage.codecs import JPEGXL_CODEC_NAME, JpegXlCodec

    kwargs = schema.images_array_kwargs(1, 2, 16, 16, schema.ImageCodec("compact"), 2)
    arr = zarr.create_array(tmp_path / "m.zarr", **kwargs)
    inner = arr.metadata.to_dict()["codecs"][0]["configuration"]["codecs"]
    assert inner[0] == {"name": JPEGXL_CODEC_NAME, "configuration": {"effort": 1, "lossless": True}}
    assert [c["name"] for c in inner[1:]] == ["crc32c"]  # the checksum after it, like every array
    assert JpegXlCodec.from_dict(inner[0]) == JpegXlCodec()
    codec = schema.ImageCodec("compact")
    assert codec.lossless and codec.label == "compact"
    assert schema.ImageCodec.from_attrs(codec.to_attrs()) == codec
    assert not schema.ImageCodec("jpeg").lossless


@pytest.mark.parametrize("kwargs, message", [({"effort": 0}, "effort"), ({"effort": 10}, "effort"), ({"lossless": False}, "lossless")])
def test_jpegxl_codec_rejects_invalid_parameters(kwargs, message):
    from nersemble_zarr.storage.codecs import JpegXlCodec

    with pytest.raises(ValueError, match=message):
        JpegXlCodec(**kwargs)


def test_decoder_threads_follow_the_environment(monkeypatch):
    from nersemble_zarr.storage.codecs import DECODE_THREADS_ENV, decode_threads

    monkeypatch.setenv(DECODE_THREADS_ENV, "3")
    assert decode_threads() == 3
    monkeypatch.setenv(DECODE_THREADS_ENV, "many")
    with pytest.raises(ValueError, match=DECODE_THREADS_ENV):
        decode_threads()
    monkeypatch.delenv(DECODE_THREADS_ENV)
    assert 1 <= decode_threads() <= 4


def test_a_fresh_process_reads_a_compact_store_through_the_entry_point_alone(tmp_path):
    from nersemble_zarr.storage.codecs import JpegXlCodec

    frames = _h264_like_frames(2, 32, 32)
    arr = zarr.create_array(tmp_path / "c.zarr", shape=frames.shape, dtype="uint8", chunks=(1, 1, 32, 32, 3),
                            serializer=JpegXlCodec(), compressors=None)
    arr[:] = frames
    code = (
        "import sys, hashlib, numpy as np, zarr; a = zarr.open_array(sys.argv[1])[:]; "
        "assert 'nersemble_zarr' not in sys.modules or 'nersemble_zarr.storage.codecs' in sys.modules; "
        "print(hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.zarr")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import hashlib

    assert out.stdout.strip() == hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()

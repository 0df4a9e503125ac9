"""Downscaled levels: exact area averages of the stored frames, intrinsics that project onto the scaled pixels,
written by the CLI chunk-parallel, readable everywhere, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr import open_sequence, open_store
from nersemble_zarr.core import schema
from nersemble_zarr.cli.main import cli
from nersemble_zarr.imaging import area_average, level_factor, scale_intrinsics
from nersemble_zarr.pipelines.downscale import downscale_store
from nersemble_zarr.read.store import StoreReadError, list_participants, list_sequences

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


def reference_area_average(frames: np.ndarray, f: int) -> np.ndarray:
    """Independent reference: torch avg_pool2d in float64 (floor mode drops partial blocks), rounded half up."""
    torch = pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    x = torch.from_numpy(frames.astype(np.float64))
    moved = x.movedim(-1, 1) if frames.ndim == 4 else x[:, None]  # (N, C, H, W)
    pooled = torch.nn.functional.avg_pool2d(moved, kernel_size=f, stride=f)
    out = pooled.movedim(1, -1) if frames.ndim == 4 else pooled[:, 0]
    return torch.floor(out + 0.5).to(torch.uint8).numpy()


def _first_video_sequence(store: Path, benchmark: str) -> str:
    p = list_participants(store, benchmark)[0]
    return next(s for s in list_sequences(store, benchmark, p)
                if not (benchmark == bm.MONO and bm.MONO_BENCHMARK.is_test_sequence(p, s)))


@pytest.fixture(scope="module")
def leveled_store(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the converted sample with levels 2 and 4 written by the CLI."""
    store = tmp_path_factory.mktemp("levels") / "store.zarr"
    shutil.copytree(converted_store, store)
    sequences = [_first_video_sequence(store, b) for b in bm.BENCHMARK_NAMES]  # one per benchmark keeps it quick
    args = ["downscale", str(store), "--factor", "2", "--factor", "4", "--no-progress"]
    result = CliRunner().invoke(cli, args + [f"--sequence={s}" for s in sequences])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    return store


@pytest.mark.parametrize("shape,f", [((3, 17, 23, 3), 2), ((2, 16, 12), 4), ((1, 9, 9, 3), 3), ((2, 19, 16), 8)])
def test_area_average_equals_an_independent_average_for_odd_sizes(shape: tuple[int, ...], f: int) -> None:
    frames = np.random.default_rng(f).integers(0, 256, size=shape, dtype=np.uint8)
    frames[0, :2, :2] = 255  # saturated blocks must not overflow
    got = area_average(frames, f, axes=(1, 2))
    assert got.dtype == np.uint8
    assert got.shape[1:3] == (shape[1] // f, shape[2] // f)
    np.testing.assert_array_equal(got, reference_area_average(frames, f))


def test_rounding_is_half_up() -> None:
    block = np.array([[0, 1], [0, 0]], dtype=np.uint8)  # mean 0.25 -> 0
    assert area_average(block, 2, axes=(0, 1)).item() == 0
    block = np.array([[1, 1], [0, 0]], dtype=np.uint8)  # mean 0.5 -> 1
    assert area_average(block, 2, axes=(0, 1)).item() == 1
    assert level_factor(0.25) == 4 and level_factor(1.0) == 1
    with pytest.raises(ValueError):
        level_factor(0.3)


@pytest.mark.parametrize("f", [2, 4])
def test_scaled_intrinsics_project_3d_points_onto_the_downscaled_pixels(f: int) -> None:
    rng = np.random.default_rng(f)
    k = np.array([[1200.3, 0.7, 549.2], [0.0, 1199.1, 801.9], [0.0, 0.0, 1.0]])
    h, w = 1604, 1100
    points = np.column_stack([rng.uniform(-0.15, 0.15, 200), rng.uniform(-0.2, 0.2, 200), rng.uniform(0.9, 1.1, 200)])
    uv = (k @ points.T).T
    uv = uv[:, :2] / uv[:, 2:]
    uv_small = (scale_intrinsics(k, f) @ points.T).T
    uv_small = uv_small[:, :2] / uv_small[:, 2:]
    np.testing.assert_allclose(uv_small, (uv + 0.5) / f - 0.5, rtol=0, atol=1e-9)

    # Pixel content: a frame lit only in the f x f block holding each projected point stays lit at the
    # level's pixel nearest to the point's level projection.
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < (w // f) * f - 0.5) & (uv[:, 1] >= 0) & (uv[:, 1] < (h // f) * f - 0.5)
    for (u, v), (us, vs) in list(zip(uv[inside], uv_small[inside]))[:20]:
        frame = np.zeros((h, w), dtype=np.uint8)
        col, row = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))  # full-res pixel holding the point
        r0, c0 = (row // f) * f, (col // f) * f
        frame[r0 : r0 + f, c0 : c0 + f] = 255
        small = area_average(frame, f, axes=(0, 1))
        assert small[int(np.floor(vs + 0.5)), int(np.floor(us + 0.5))] == 255
        assert small.sum() == 255


def test_levels_equal_an_area_average_of_the_stored_frames(leveled_store: Path) -> None:
    for benchmark in bm.BENCHMARK_NAMES:
        p = list_participants(leveled_store, benchmark)[0]
        s = _first_video_sequence(leveled_store, benchmark)
        full = open_sequence(leveled_store, benchmark, p, s).compute()
        for f in (2, 4):
            lazy = open_sequence(leveled_store, benchmark, p, s, level=f)
            n_c, n_t, h, w, _ = full.images.shape
            assert lazy.images.shape == (n_c, n_t, h // f, w // f, 3)
            assert lazy.images.data.chunksize == (1, 1, h // f, w // f, 3)
            level = lazy.compute()
            for c in range(n_c):
                np.testing.assert_array_equal(level.images.values[c], reference_area_average(full.images.values[c], f))
                np.testing.assert_array_equal(level.alpha.values[c], reference_area_average(full.alpha.values[c], f))
            want_k = np.stack([scale_intrinsics(k, f) for k in full.intrinsics.values])
            np.testing.assert_array_equal(level.intrinsics.values, want_k)
            group = zarr.open_group(str(leveled_store), mode="r")[f"{schema.sequence_group(benchmark, p, s)}/level_{f}"]
            assert group.attrs["scale"] == 1 / f and group.attrs["factor"] == f and group.attrs["complete"] is True
            np.testing.assert_array_equal(group["intrinsics"][:], want_k)


def test_levels_open_in_open_store_and_in_plain_xarray(leveled_store: Path) -> None:
    p = list_participants(leveled_store, bm.NVS)[0]
    s = list_sequences(leveled_store, bm.NVS, p)[0]
    for tree in (open_store(leveled_store), xr.open_datatree(leveled_store, engine="zarr", chunks={})):
        node = tree[f"nvs/{p:03d}/{s}/level_2"]
        assert node["images"].dims == ("camera", "timestep", "height_2", "width_2", "rgb")
        assert node.attrs["scale"] == 0.5
        np.testing.assert_array_equal(node["camera"].values, tree[f"nvs/{p:03d}/{s}"]["camera"].values)


def test_rerun_skips_complete_levels(leveled_store: Path) -> None:
    sequences = [_first_video_sequence(leveled_store, b) for b in bm.BENCHMARK_NAMES]
    report = downscale_store(leveled_store, [2, 4], sequences=sequences, progress=False)
    assert report.written == [] and report.frames == 0 and len(report.skipped) == 4


def test_interrupted_downscale_resumes_and_finishes_bit_exact(converted_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(converted_store, store)
    p = list_participants(store, bm.NVS)[0]
    s = list_sequences(store, bm.NVS, p)[0]

    n_cameras, n_timesteps = open_sequence(store, bm.NVS, p, s).images.shape[:2]

    class Interrupt(Exception):
        pass

    def stop_halfway(done: int, total: int) -> None:
        if done >= total // 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        downscale_store(store, [2], benchmarks=[bm.NVS], progress=stop_halfway, threads=1)
    group = zarr.open_group(str(store), mode="r", use_consolidated=False)[f"{schema.sequence_group(bm.NVS, p, s)}/level_2"]
    assert group.attrs["complete"] is False
    finished = group["images"].attrs["complete_cameras"]
    assert 0 < len(finished) < n_cameras and group["alpha"].attrs["complete_cameras"] == finished
    with pytest.raises(StoreReadError, match="level 2"):
        open_sequence(store, bm.NVS, p, s, level=2)
    assert not Path(f"{store}.nersemble-zarr.lock").exists(), "the lock is released on failure"

    report = downscale_store(store, [2], benchmarks=[bm.NVS], progress=False)
    assert report.frames == (n_cameras - len(finished)) * n_timesteps, "finished cameras are not recomputed"
    level = open_sequence(store, bm.NVS, p, s, level=2).compute()
    full = open_sequence(store, bm.NVS, p, s).compute()
    for c in range(n_cameras):
        np.testing.assert_array_equal(level.images.values[c], reference_area_average(full.images.values[c], 2))
        np.testing.assert_array_equal(level.alpha.values[c], reference_area_average(full.alpha.values[c], 2))


def test_downscale_cli_rejects_factor_one(converted_store: Path) -> None:
    result = CliRunner().invoke(cli, ["downscale", str(converted_store), "--factor", "1"])
    assert result.exit_code != 0 and "--factor" in result.output


def test_downscale_of_a_missing_store_is_a_one_line_error_creating_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.zarr"
    result = CliRunner().invoke(cli, ["downscale", str(missing), "--factor", "2"])
    from nersemble_zarr.pipelines.downscale import DownscaleError

    assert result.exit_code == 1 and isinstance(result.exception, DownscaleError)  # the CLI prints it as one line
    assert f"no store at {missing}" in str(result.exception)
    assert sorted(tmp_path.iterdir()) == []  # neither a store folder nor a lock file

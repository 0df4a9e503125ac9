"""``nersemble-zarr show``: a contact sheet PNG of the expected size with every camera, and a rig plot."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr import benchmark as bm
from nersemble_zarr import open_sequence
from nersemble_zarr.cli.main import cli
from nersemble_zarr.show import contact_sheet, rig_geometry
from nersemble_zarr.store import list_participants, list_sequences

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


def test_show_writes_a_contact_sheet_png_of_the_expected_size(converted_store: Path, tmp_path: Path) -> None:
    p = list_participants(converted_store, bm.NVS)[0]
    s = list_sequences(converted_store, bm.NVS, p)[0]
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["show", str(converted_store), "--benchmark", "nvs", "--participant", str(p),
                                      "--timestep", "1", "--tile-width", "131", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = open_sequence(converted_store, bm.NVS, p, s)
    n, h, w = ds.sizes["camera"], ds.sizes["height"], ds.sizes["width"]
    tile_h = round(131 * h / w)
    cols = min(n, math.ceil(math.sqrt(n * tile_h / 131)))
    rows = math.ceil(n / cols)
    png = mpimg.imread(out)
    assert png.shape[:2] == (rows * tile_h, cols * 131)
    assert png[..., :3].std() > 0.01, "the sheet shows pictures, not a blank canvas"
    assert f"{n} cameras" in result.output and "timestep 1" in result.output


def test_contact_sheet_tiles_show_the_frames(converted_store: Path, tmp_path: Path) -> None:
    p = list_participants(converted_store, bm.MONO)[0]
    s = next(s for s in list_sequences(converted_store, bm.MONO, p) if not bm.MONO_BENCHMARK.is_test_sequence(p, s))
    ds = open_sequence(converted_store, bm.MONO, p, s)
    h, w = ds.sizes["height"], ds.sizes["width"]
    info = contact_sheet(converted_store, bm.MONO, p, tmp_path / "mono.png", sequence=s, timestep=0, tile_width=w)
    png = (mpimg.imread(info.path)[..., :3] * 255).round()
    assert info.size == (h, w) and png.shape[:2] == (h, w) and info.cameras == ("222200037",)
    frame = ds.images.isel(camera=0, timestep=0).values.astype(np.float64)
    # drawn 1:1 (outline and label aside): most pixels match the frame closely
    close = np.abs(png - frame).max(axis=-1) <= 2
    assert close.mean() > 0.6


def test_cameras_plot_writes_a_png_and_finds_the_rig_target(converted_store: Path, tmp_path: Path) -> None:
    p = list_participants(converted_store, bm.NVS)[0]
    out = tmp_path / "rig.png"
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", str(p), "--cameras-plot", str(out)])
    assert result.exit_code == 0, result.output
    png = mpimg.imread(out)
    assert png.shape[:2] == (600, 1200) and png[..., :3].std() > 0.01


def test_rig_geometry_recovers_centres_and_the_common_target() -> None:
    target = np.array([0.1, -0.2, 1.0])
    rng = np.random.default_rng(0)
    w2c = []
    for _ in range(6):
        centre = target + rng.normal(size=3) * 0.3 + np.array([0, 0, -1.2])
        z = (target - centre) / np.linalg.norm(target - centre)
        x = np.cross([0.0, -1.0, 0.0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        rot = np.stack([x, y, z])
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = rot, -rot @ centre
        w2c.append(m)
    geo = rig_geometry(np.stack(w2c))
    np.testing.assert_allclose(geo["target"], target, atol=1e-9)
    assert geo["up"] @ np.array([0.0, 1.0, 0.0]) > 0.9  # the cameras' y axis (OpenCV: down) is world -y


def test_show_errors_are_one_line(converted_store: Path, tmp_path: Path) -> None:
    p = list_participants(converted_store, bm.NVS)[0]
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", str(p), "-t", "100000",
                                      "--out", str(tmp_path / "x.png")])
    assert result.exit_code != 0
    assert "has no timestep 100000" in str(result.exception) or "has no timestep 100000" in result.output
    assert not (tmp_path / "x.png").exists()
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", str(p)])
    assert result.exit_code == 2 and "nothing to draw" in result.output

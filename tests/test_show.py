"""``nersemble-zarr show``: a contact sheet PNG of the expected size with every camera, and a rig plot."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr import open_sequence
from nersemble_zarr.cli.main import cli
from nersemble_zarr.core.errors import SelectionError
from nersemble_zarr.read.show import ShowError, cameras_plot, contact_sheet, rig_geometry
from nersemble_zarr.read.store import list_participants, list_sequences

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
    assert isinstance(result.exception, SelectionError) and result.exception.exit_code == 2
    assert "timestep 100000 is not in nvs participant 388 sequence 'GLASSES': valid timesteps are 0..9" in str(result.exception)
    assert not (tmp_path / "x.png").exists()
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", str(p)])
    assert result.exit_code == 2 and "nothing to draw" in result.output


@pytest.mark.parametrize(
    ("benchmark", "participant", "sequence", "timestep", "message"),
    [
        (bm.NVS, 999, None, None, "participant 999 is not in the nvs benchmark: expected one of 388, 422, 443, 445, 475"),
        (bm.NVS, 422, None, None, "nvs participant 422 is not in {store}: it holds nvs participants 388"),
        (bm.NVS, 388, "FOO", None, "sequence 'FOO' of nvs participant 388 is not in {store}: sequences with video are GLASSES"),
        (bm.MONO, 393, "FREE", None, "sequence 'FREE' of mono_flame_avatar participant 393 has no video (tracking only): "
                                     "sequences with video are EXP-1-head, EXP-2-eyes"),
        (bm.NVS, 388, "GLASSES", -1, "timestep -1 is not in nvs participant 388 sequence 'GLASSES': valid timesteps are 0..9"),
        (bm.NVS, 388, "GLASSES", 2.5, "timestep must be an integer, not 2.5"),
    ],
)
def test_contact_sheet_refuses_what_the_store_does_not_hold(
    converted_store: Path, tmp_path: Path, benchmark: str, participant: int, sequence: str | None,
    timestep: int | None, message: str,
) -> None:
    out = tmp_path / "sheet.png"
    with pytest.raises(SelectionError) as e:
        contact_sheet(converted_store, benchmark, participant, out, sequence=sequence, timestep=timestep)
    assert message.format(store=converted_store) in str(e.value) and e.value.exit_code == 2
    assert not out.exists() and not list(tmp_path.iterdir()), "nothing is drawn for a bad selection"


def test_cameras_plot_refuses_a_participant_the_store_does_not_hold(converted_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ShowError, match="nvs participant 445 is not in .*: it holds nvs participants 388"):
        cameras_plot(converted_store, bm.NVS, 445, tmp_path / "rig.png")
    assert not list(tmp_path.iterdir())

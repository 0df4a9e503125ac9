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


# ---------------------------------------------------------------------------------------------
# Overlays: the FLAME mesh over the frames (PNG, mp4) and a point cloud projected into cameras
# ---------------------------------------------------------------------------------------------

MONO_P, NVS_P = 393, 388
TRAIN = "222200037"  # the mono benchmark's one camera with video


def _mono_train_sequence(store: Path) -> str:
    return next(s for s in list_sequences(store, bm.MONO, MONO_P) if not bm.MONO_BENCHMARK.is_test_sequence(MONO_P, s))


@pytest.fixture(scope="module")
def flame_model(flame_model_path: Path) -> object:
    """The synthetic FLAME model loaded once for this module's library-level tests (the CLI tests load the file)."""
    pytest.importorskip("torch")
    from nersemble_zarr.flame.model import FlameModel

    return FlameModel.load(flame_model_path)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_rasterizer_z_buffer_keeps_the_nearest_face_and_covers_pixel_centres() -> None:
    from nersemble_zarr.read.show import rasterize_mesh

    # two squares (two triangles each) facing the camera: far one (z=2) spans the frame, near one (z=1) the centre
    uv = np.array([[-0.5, -0.5], [9.5, -0.5], [9.5, 9.5], [-0.5, 9.5], [2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    depth = np.array([2.0] * 4 + [1.0] * 4)
    far_faces, near_faces = [[0, 1, 2], [0, 2, 3]], [[4, 5, 6], [4, 6, 7]]
    for faces, near_ids in ((far_faces + near_faces, (2, 3)), (near_faces + far_faces, (0, 1))):  # order-independent
        face, inv_depth = rasterize_mesh(uv, depth, np.array(faces), 10, 10)
        assert (face >= 0).all(), "the far square covers every pixel centre"
        centre = np.zeros((10, 10), dtype=bool)
        centre[2:7, 2:7] = True  # pixel centres 2..6 lie in the near square [2, 6]
        assert np.isin(face[centre], near_ids).all() and not np.isin(face[~centre], near_ids).any()
        np.testing.assert_allclose(inv_depth[centre], 1.0)
        np.testing.assert_allclose(inv_depth[~centre], 0.5)


def test_draw_points_puts_the_nearest_point_on_top() -> None:
    from nersemble_zarr.read.show import draw_points

    w2c, k = np.eye(4), np.array([[10.0, 0, 4.0], [0, 10.0, 4.0], [0, 0, 1]])
    points = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, -1.0]])  # near, far, behind the camera
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    for order in ([0, 1, 2], [2, 1, 0]):
        out, hit = draw_points(np.zeros((9, 9, 3), np.uint8), points[order], colors[order], w2c, k, radius=1)
        assert hit.sum() == 9 and hit[3:6, 3:6].all()
        assert (out[3:6, 3:6] == [255, 0, 0]).all(), "the nearer (red) point hides the farther (green) one"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_flame_mesh_lands_on_the_head_in_the_train_camera(converted_store: Path, flame_model: object) -> None:
    """The sample renders its head with the tracked pose (v2) and the synthetic FLAME head has about its size:
    the mesh projected with the store's calibration covers the alpha mask (IoU > 0.7 at every timestep, >= 95 %
    of the vertices inside it); the same mesh moved 5 cm sideways does not."""
    pytest.importorskip("torch")
    from nersemble_zarr.flame.show import FlameScene
    from nersemble_zarr.read.show import draw_mesh, project_points

    seq = _mono_train_sequence(converted_store)
    scene = FlameScene.open(converted_store, bm.MONO, MONO_P, sequence=seq, flame_model=flame_model)
    assert [v.serial for v in scene.views] == [TRAIN, *bm.MONO_BENCHMARK.hold_out_serials]
    assert scene.views[0].position is not None and all(v.position is None for v in scene.views[1:])
    ds = open_sequence(converted_store, bm.MONO, MONO_P, seq)
    train = scene.views[0]
    blank = np.zeros((train.height, train.width, 3), np.uint8)
    chosen = scene.tracked[::4]  # first, middle, last
    for t, vertices in zip(chosen, scene.vertices(chosen)):
        alpha = ds.alpha.sel(timestep=t).isel(camera=0).values > 127
        covered = draw_mesh(blank, vertices, scene.faces, train.world_2_cam, train.intrinsics)[1]
        assert _iou(covered, alpha) > 0.7, t
        uv, _ = project_points(vertices, train.world_2_cam, train.intrinsics)
        col, row = np.round(uv).astype(int).T
        assert alpha[np.clip(row, 0, train.height - 1), np.clip(col, 0, train.width - 1)].mean() >= 0.95
        shifted = draw_mesh(blank, vertices + np.float32([0.05, 0.0, 0.0]), scene.faces, train.world_2_cam,
                            train.intrinsics)[1]
        assert _iou(shifted, alpha) < 0.6, "control: a mesh 5 cm off the head fails the check"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_show_flame_png_has_a_row_per_timestep_and_the_mesh_only_on_the_head(
    converted_store: Path, flame_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    seq = _mono_train_sequence(converted_store)
    ds = open_sequence(converted_store, bm.MONO, MONO_P, seq)
    h, w = ds.sizes["height"], ds.sizes["width"]
    args = ["show", str(converted_store), "-b", "mono_flame_avatar", "-p", str(MONO_P), "-s", seq,
            "--flame-model", str(flame_model_path)]
    result = CliRunner().invoke(cli, [*args, "-t", "1,3", "--flame", str(tmp_path / "grid.png")])
    assert result.exit_code == 0, result.output
    assert mpimg.imread(tmp_path / "grid.png").shape[:2] == (2 * h, 4 * w)  # 2 timesteps x (train + 3 hold-out)
    assert "timesteps 1, 3, cameras 222200037, 222200046, 220700191, 222200039" in result.output
    # opacity 1 vs 0 over the train camera alone: the pixels that change are the mesh, and they are the head
    pictures = {}
    for opacity in ("0", "1"):
        out = tmp_path / f"o{opacity}.png"
        result = CliRunner().invoke(cli, [*args, "-c", TRAIN, "-t", "2", "--opacity", opacity, "--flame", str(out)])
        assert result.exit_code == 0, result.output
        pictures[opacity] = mpimg.imread(out)[..., :3]
        assert pictures[opacity].shape[:2] == (h, w)
    mesh = np.abs(pictures["1"] - pictures["0"]).max(axis=-1) > 0.02
    alpha = ds.alpha.sel(timestep=2).isel(camera=0).values > 127
    assert _iou(mesh, alpha) > 0.7
    frame = ds.images.sel(timestep=2).isel(camera=0).values / 255.0
    assert np.abs(pictures["0"] - frame)[~mesh].max(axis=-1).mean() < 0.02, "opacity 0 shows the frame"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_show_video_has_one_frame_per_tracked_timestep_of_the_right_size(
    converted_store: Path, flame_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from nersemble_zarr.raw.video import iter_frames

    seq = _mono_train_sequence(converted_store)
    ds = open_sequence(converted_store, bm.MONO, MONO_P, seq)
    h, w = ds.sizes["height"], ds.sizes["width"]
    out = tmp_path / "flame.mp4"
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "mono_flame_avatar", "-p", str(MONO_P),
                                      "-s", seq, "-c", f"{TRAIN},222200046", "--flame-model", str(flame_model_path),
                                      "--video", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    frames = list(iter_frames(out))
    assert len(frames) == ds.sizes["timestep"] and f"{len(frames)} frames" in result.output
    assert all(f.shape == (h + h % 2, 2 * w + (2 * w) % 2, 3) for f in frames)
    assert not [p for p in tmp_path.iterdir() if p.name != "flame.mp4"], "no temporary file left"
    # the mesh moves with the head: the frames differ over time
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_show_flame_uses_the_stored_meshes_without_a_model(
    converted_store: Path, flame_model_path: Path, flame_model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store where 'nersemble-zarr flame' ran needs no model: the overlay equals the one from the model."""
    pytest.importorskip("torch")
    import shutil

    from nersemble_zarr.pipelines.flame import write_flame_to_store

    store = tmp_path / "store.zarr"
    shutil.copytree(converted_store, store)
    write_flame_to_store(store, flame_model, progress=False)
    monkeypatch.setenv("FLAME_MODEL_PATH", "")
    monkeypatch.setenv("HOME", str(tmp_path))  # no .env
    seq = _mono_train_sequence(store)
    common = ["show", str(store), "-b", "mono_flame_avatar", "-p", str(MONO_P), "-s", seq, "-t", "4"]
    stored = CliRunner().invoke(cli, [*common, "--flame", str(tmp_path / "stored.png")])
    assert stored.exit_code == 0, stored.output
    assert "store meshes flame_v2" in stored.output
    model = CliRunner().invoke(cli, [*common, "--flame-model", str(flame_model_path), "--flame", str(tmp_path / "model.png")])
    assert model.exit_code == 0 and "FLAME model flame2023.pkl" in model.output
    a, b = mpimg.imread(tmp_path / "stored.png"), mpimg.imread(tmp_path / "model.png")
    assert a.shape == b.shape
    assert (np.abs(a - b).max(axis=-1) > 0.02).mean() < 0.05, "same meshes (the footer names the source)"


def test_show_pointcloud_lands_on_the_alpha_mask(converted_store: Path, tmp_path: Path) -> None:
    from nersemble_zarr.read.show import draw_points, pointcloud_overlay
    from nersemble_zarr.read.data_manager import NVSDataManager

    seq = list_sequences(converted_store, bm.NVS, NVS_P)[0]
    ds = open_sequence(converted_store, bm.NVS, NVS_P, seq)
    h, w = ds.sizes["height"], ds.sizes["width"]
    cams = [str(c) for c in ds.camera.values[:2]]
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", str(NVS_P), "-t", "3",
                                      "-c", ",".join(cams), "--pointcloud", str(tmp_path / "pc.png")])
    assert result.exit_code == 0, result.output
    assert mpimg.imread(tmp_path / "pc.png").shape[:2] == (h, 2 * w)
    assert f"at timestep 3 in cameras {', '.join(cams)}" in result.output
    points, colors, _ = NVSDataManager(converted_store, NVS_P).load_pointcloud(seq, 3)
    for cam in cams:
        alpha = ds.alpha.sel(timestep=3, camera=cam).values > 0  # the soft edge included: points lie on the rim too
        sel = ds.sel(camera=cam)
        _, hit = draw_points(np.zeros((h, w, 3), np.uint8), points, colors, sel.world_2_cam.values,
                             sel.intrinsics.values, radius=0)
        assert (hit & alpha).sum() / hit.sum() > 0.95, "the points land on the head"
        rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
        a_rows, a_cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
        assert np.ptp(rows) > 0.8 * np.ptp(a_rows) and np.ptp(cols) > 0.8 * np.ptp(a_cols), "and span it"
    # a hold-out camera (no video) is drawn over black
    info = pointcloud_overlay(converted_store, bm.NVS, NVS_P, tmp_path / "hold.png", cameras=["222200046"])
    png = mpimg.imread(info.path)[..., :3]
    assert info.timesteps == (0,) and png.shape[:2] == (h, w) and (png.max(axis=-1) < 0.01).mean() > 0.5


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "nvs", "-p", "388", "--flame", "{out}"], "nvs participant 388 has no sequence with FLAME tracking v2 in "),
        (["-b", "nvs", "-p", "388", "-s", "GLASSES", "--flame", "{out}"],
         "nvs participant 388 sequence 'GLASSES' has no FLAME tracking v2 in the store"),
        (["-b", "mono_flame_avatar", "-p", "393", "-s", "EXP-1-head", "-t", "99", "--flame", "{out}"],
         "timestep 99 is not in mono_flame_avatar participant 393 sequence 'EXP-1-head' (FLAME tracking): valid timesteps are 0.."),
        (["-b", "mono_flame_avatar", "-p", "393", "-c", "123", "--flame", "{out}"],
         "camera 123 has no calibration in the store: calibrated cameras are "),
        (["-b", "nvs", "-p", "388", "-t", "50", "--pointcloud", "{out}"],
         "timestep 50 is not in nvs participant 388 sequence 'GLASSES' (point clouds): valid timesteps are 0.."),
        (["-b", "mono_flame_avatar", "-p", "393", "--pointcloud", "{out}"],
         "mono_flame_avatar participant 393 has no sequence with point clouds in "),
    ],
)
def test_overlay_selection_errors_are_one_line_and_write_nothing(
    converted_store: Path, flame_model_path: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    if "--flame" in args:
        pytest.importorskip("torch")
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli, ["show", str(converted_store), "--flame-model", str(flame_model_path),
                                      *[a.format(out=out) for a in args]])
    assert isinstance(result.exception, SelectionError) and result.exception.exit_code == 2, result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not list(tmp_path.iterdir()), "nothing is written for a bad selection"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_show_flame_without_a_model_says_how_to_configure_one(
    converted_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from nersemble_zarr.core.errors import ConfigError

    monkeypatch.setenv("FLAME_MODEL_PATH", "")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/nersemble_benchmark/.env
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "mono_flame_avatar", "-p", "393",
                                      "--flame", str(tmp_path / "x.png")])
    assert isinstance(result.exception, ConfigError)
    assert "no FLAME model configured: pass --flame-model PATH" in str(result.exception)
    assert not (tmp_path / "x.png").exists()
    result = CliRunner().invoke(cli, ["show", str(converted_store), "-b", "nvs", "-p", "388", "-t", "1,2",
                                      "--pointcloud", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "--pointcloud draws one timestep, got 2" in result.output


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_flame_overlay_at_a_level_that_is_not_stored_draws_area_averaged_frames(
    converted_store: Path, flame_model: object, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from nersemble_zarr.flame.show import flame_overlay

    seq = _mono_train_sequence(converted_store)
    ds = open_sequence(converted_store, bm.MONO, MONO_P, seq)
    h, w = ds.sizes["height"] // 2, ds.sizes["width"] // 2
    info = flame_overlay(converted_store, bm.MONO, MONO_P, tmp_path / "half.png", sequence=seq, cameras=[TRAIN],
                         timesteps=[0, 1], level=2, flame_model=flame_model, opacity=0.0)
    png = (mpimg.imread(info.path)[..., :3] * 255).round()
    assert info.size == (h, 2 * w) and png.shape[:2] == (h, 2 * w) and info.timesteps == (0, 1)
    from nersemble_zarr.imaging import area_average

    half = area_average(ds.images.sel(timestep=0).isel(camera=0).values, 2, axes=(0, 1)).astype(np.float64)
    assert np.abs(png[:, :w] - half).max() <= 1, "opacity 0: the frame, area-averaged 2x2"

"""Convert = pure plan + execution: ``plan_conversion`` reads and writes nothing; ``execute_plan`` writes;
``convert --dry-run`` prints the plan (units, frames, estimated size, free space) and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.pipelines.convert import (
    BYTES_PER_PIXEL,
    ConvertOptions,
    CreateArray,
    DropLevels,
    MarkIncomplete,
    WriteCoords,
    execute_plan,
    plan_conversion,
)
from nersemble_zarr.raw import iter_frames
from nersemble_zarr.raw.video_writer import VideoWriter

REPO = Path(__file__).resolve().parent.parent
NVS_SEQ = "nvs/388/GLASSES"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]] | None:
    """Every file and folder under ``folder``: its bytes (folders: b"") and mtime; ``None`` if it does not exist."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _copy_raw(sample_root: Path, dest: Path) -> Path:
    for benchmark in bm.BENCHMARK_NAMES:
        shutil.copytree(sample_root / benchmark, dest / benchmark, symlinks=True)
    return dest


def _tree(store: Path) -> dict[str, object]:
    """Every node of a store: arrays as (attrs, data), groups as attrs."""
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    out: dict[str, object] = {"": dict(root.attrs)}
    for path, node in root.members(max_depth=None):
        out[path] = (dict(node.attrs), node[...]) if isinstance(node, zarr.Array) else dict(node.attrs)
    return out


def test_plan_of_a_new_store_lists_units_arrays_and_frames_and_creates_nothing(sample_root: Path, tmp_path: Path):
    store = tmp_path / "not-yet" / "store.zarr"
    plan = plan_conversion(sample_root, store)
    assert not store.parent.exists()  # not even the parent folder

    b = bm.get_benchmark("nvs")
    videos = [u for u in plan.units if u.unit.kind == "video" and u.unit.benchmark == "nvs"]
    assert len(videos) == 2 * len(b.train_serials)
    h, w = videos[0].task.height, videos[0].task.width
    creates = {s.path: s for s in plan.prepare if isinstance(s, CreateArray)}
    assert creates[f"{NVS_SEQ}/images"].shape == (len(b.train_serials), 10, h, w, 3)
    assert creates[f"{NVS_SEQ}/images"].codec == "lossless"
    assert creates[f"{NVS_SEQ}/alpha"].shape == (len(b.train_serials), 10, h, w)
    assert plan.root_attrs is not None and plan.root_attrs["format_version"] == schema.FORMAT_VERSION
    assert plan.frames == sum(u.task.n_timesteps for u in plan.units if u.unit.kind == "video")
    assert {u.unit.kind for u in plan.units} == {"video", "pointclouds", "tracking", "calibration"}
    assert not plan.skipped and not plan.refused
    # every unit's group is marked incomplete before it runs
    marked = {s.path for s in plan.prepare if isinstance(s, MarkIncomplete)}
    assert {u.task.target for u in plan.units if u.unit.kind != "video"} <= marked
    assert plan.free_bytes is not None and plan.free_bytes > 0
    seq = next(sp for sp in plan.sequences() if sp.name == NVS_SEQ)
    assert seq.frames == 2 * len(b.train_serials) * 10
    assert seq.estimated_bytes == sum(u.estimated_bytes for u in seq.units)


def test_estimate_is_frames_times_pixels_times_the_measured_factor():
    """The factors are those of the committed convert benchmark (bytes per full-resolution frame / pixels)."""
    measured = json.loads((REPO / "benchmarks/results/convert.json").read_text())
    pixels = measured["height"] * measured["width"]
    per_frame = measured["bytes_per_frame"]
    for key, name in (("lossless", "lossless"), ("jpeg", "jpeg_q95"), ("alpha", "alpha_lossless")):
        assert BYTES_PER_PIXEL[key] == pytest.approx(per_frame[name] / pixels, rel=1e-3), key


def test_plan_estimates_each_video_unit_from_its_frames_and_codec(sample_root: Path, tmp_path: Path):
    plan = plan_conversion(sample_root, tmp_path / "s.zarr", ConvertOptions(benchmarks="nvs", image_codec="jpeg"))
    for u in plan.units:
        if u.unit.kind == "video":
            factor = BYTES_PER_PIXEL["alpha" if u.unit.asset == "alpha_maps" else "jpeg"]
            assert u.estimated_bytes == round(u.task.n_timesteps * u.task.height * u.task.width * factor)
        elif u.unit.kind == "pointclouds":
            assert u.estimated_bytes == sum(f.stat().st_size for f in Path(u.task.source).glob("*.pcd"))
    assert plan.metadata_bytes > 0  # a zarr.json per group and array, and its copy in the consolidated metadata
    assert plan.estimated_bytes == sum(u.estimated_bytes for u in plan.units) + plan.metadata_bytes
    creates = [s for s in plan.prepare if isinstance(s, CreateArray) and s.path.endswith("/images")]
    assert creates and all(s.codec == "jpeg q95" for s in creates)


def test_sampled_estimate_of_the_frames_is_within_10_percent_of_the_real_arrays(sample_root: Path, converted_store: Path, tmp_path: Path):
    """With ``sample_frames`` each sequence's bytes per pixel come from its videos' first frames compressed
    with the store's codec (on the full-resolution sample: 0.97 of the real size; here, at 1/8, 0.96)."""
    plan = plan_conversion(sample_root, tmp_path / "s.zarr", sample_frames=True)
    assert plan.sampled and not (tmp_path / "s.zarr").exists()
    estimate = sum(u.estimated_bytes for u in plan.units if u.unit.kind == "video")
    real = sum(
        f.stat().st_size for name in ("images", "alpha") for d in converted_store.glob(f"*/*/*/{name}") for f in d.rglob("*")
        if f.is_file()
    )
    assert estimate == pytest.approx(real, rel=0.10)
    assert "first frame of each video" in plan.summary()


def test_replanning_a_converted_store_writes_nothing(sample_root: Path, converted_store: Path):
    before = _snapshot(converted_store)
    plan = plan_conversion(sample_root, converted_store)
    assert not plan.units and not plan.prepare and plan.root_attrs is None
    assert plan.skipped and not plan.refused
    overwrite = plan_conversion(sample_root, converted_store, ConvertOptions(overwrite=True))
    assert len(overwrite.units) == len(plan.skipped)
    assert any(isinstance(s, CreateArray) for s in overwrite.prepare)
    assert {s.reason for s in overwrite.prepare if isinstance(s, MarkIncomplete)} == {"rewritten (--overwrite)"}
    assert _snapshot(converted_store) == before


def test_overwrite_plan_lists_levels_to_drop_and_meshes_to_unmark_and_writes_nothing(
    sample_root: Path, converted_store: Path, tmp_path: Path
):
    store = tmp_path / "s.zarr"
    shutil.copytree(converted_store, store)
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    root.require_group(f"{NVS_SEQ}/{schema.level_group_name(2)}")
    mono_seq = next(s for s in bm.get_benchmark("mono_flame_avatar").video_sequences(393))
    meshes = schema.flame_group("mono_flame_avatar", 393, mono_seq, schema.CURRENT_TRACKING_VERSION)
    root.require_group(meshes).update_attributes({schema.COMPLETE_ATTR: True})
    before = _snapshot(store)

    plan = plan_conversion(sample_root, store, ConvertOptions(overwrite=True))
    drops = [s for s in plan.prepare if isinstance(s, DropLevels)]
    assert [(d.path, d.levels) for d in drops] == [(NVS_SEQ, (schema.level_group_name(2),))]
    assert MarkIncomplete(meshes, "FLAME meshes of the tracking rewritten") in plan.prepare
    assert not any(isinstance(s, WriteCoords) for s in plan.prepare)  # coordinates already right
    assert _snapshot(store) == before

    # without --overwrite nothing is rewritten, so levels and meshes stay
    plain = plan_conversion(sample_root, store)
    assert not any(isinstance(s, (DropLevels, MarkIncomplete)) for s in plain.prepare)

    # executing it does what it said: levels gone, meshes unmarked, every unit marked again
    report = execute_plan(plan, progress=False)
    assert report.ok, report.summary()
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    assert schema.level_group_name(2) not in root[NVS_SEQ]
    assert root[meshes].attrs[schema.COMPLETE_ATTR] is False
    assert len(report.done) == len(plan.units)


def _rewrite_resized(path: Path, grow: int) -> None:
    frames = list(iter_frames(path))
    h, w = frames[0].shape[0] + grow, frames[0].shape[1] + grow
    path.unlink()
    with VideoWriter(str(path), w, h, 73) as writer:
        for f in frames:
            writer.write(np.pad(f, ((0, grow), (0, grow), (0, 0)), mode="edge"))


def test_refused_inputs_are_in_the_plan_and_nothing_is_written(sample_root: Path, tmp_path: Path):
    raw = _copy_raw(sample_root, tmp_path / "raw")
    serial = bm.get_benchmark("nvs").train_serials[0]
    odd = raw / "nvs" / bm.video_path(388, "GLASSES", serial, "images")
    _rewrite_resized(odd, 2)
    store = tmp_path / "s.zarr"
    plan = plan_conversion(raw, store, ConvertOptions(benchmarks="nvs"))
    assert [r.unit.name for r in plan.refused] == [f"{NVS_SEQ} images cam_{serial}"]
    assert str(odd) in plan.refused[0].message and "frame size" in plan.refused[0].message
    assert all(u.unit.name != plan.refused[0].unit.name for u in plan.units)
    assert not store.exists()
    assert f"refused {NVS_SEQ} images cam_{serial}" in plan.summary()


def test_plan_then_execute_gives_the_store_convert_gives(sample_root: Path, converted_store: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    report = execute_plan(plan_conversion(sample_root, store), progress=False)
    assert report.ok, report.summary()
    ours, theirs = _tree(store), _tree(converted_store)
    assert ours.keys() == theirs.keys()
    for path, node in theirs.items():
        if isinstance(node, tuple):
            assert ours[path][0] == node[0], path
            np.testing.assert_array_equal(ours[path][1], node[1], err_msg=path)
        else:
            assert ours[path] == node, path


def _cli(*args: str) -> object:
    from nersemble_zarr.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_dry_run_prints_units_frames_estimate_and_free_space_and_creates_no_store(sample_root: Path, tmp_path: Path):
    store = tmp_path / "new" / "s.zarr"
    result = _cli("convert", str(sample_root), str(store), "--dry-run", "-b", "nvs")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "nothing written" in out
    assert f"{NVS_SEQ}: 27 units to run (26 video, 1 pointclouds)" in out
    assert "260 frames" in out and "estimated" in out and "an estimate" in out
    assert "first frame of each video" in out
    assert "free on the target:" in out and "unknown" not in out.split("free on the target:")[1].splitlines()[0]
    assert not store.parent.exists()


def test_dry_run_on_an_existing_store_leaves_it_byte_for_byte(sample_root: Path, converted_store: Path):
    before = _snapshot(converted_store)
    result = _cli("convert", str(sample_root), str(converted_store), "--dry-run", "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"create {NVS_SEQ}/images" in result.output
    assert _snapshot(converted_store) == before


# ---------------------------------------------------------------------------------------------
# Tiers, levels and free space in the plan
# ---------------------------------------------------------------------------------------------


def test_compact_and_level_factors_are_those_of_the_committed_tiers_benchmark():
    from nersemble_zarr.pipelines.convert import LEVEL_BYTES_PER_PIXEL

    measured = json.loads((REPO / "benchmarks/results/tiers.json").read_text())
    h, w = measured["params"]["height"], measured["params"]["width"]
    writes = {c["label"]: c["extra"] for c in measured["cases"] if c["group"] == "write"}
    assert BYTES_PER_PIXEL["compact"] == pytest.approx(writes["compact"]["bytes_per_frame"] / (h * w), rel=1e-3)
    for key, label in (("lossless", "lossless"), ("compact", "compact"), ("jpeg", "jpeg q95")):
        per_pixel = writes[label]["bytes_per_frame_level_2"] / ((h // 2) * (w // 2))
        assert LEVEL_BYTES_PER_PIXEL[key] == pytest.approx(per_pixel, rel=1e-3), key


def test_levels_only_plan_creates_levels_not_full_arrays_and_estimates_their_pixels(sample_root: Path, tmp_path: Path):
    from nersemble_zarr.pipelines.convert import LEVEL_BYTES_PER_PIXEL, CreateLevel

    store = tmp_path / "s.zarr"
    plan = plan_conversion(sample_root, store, ConvertOptions(benchmarks="nvs", image_codec="compact", levels=(2, 4), full=False))
    assert not store.exists()
    assert not any(isinstance(s, CreateArray) for s in plan.prepare)
    levels = [s for s in plan.prepare if isinstance(s, CreateLevel)]
    assert sorted(s.path for s in levels) == [f"{NVS_SEQ}/level_2", f"{NVS_SEQ}/level_4"]
    video = next(u for u in plan.units if u.unit.kind == "video" and u.unit.asset == "images")
    t = video.task
    assert not t.write_full and [f for f, _ in t.levels] == [2, 4]
    expected = sum(t.n_timesteps * (t.height // f) * (t.width // f) * LEVEL_BYTES_PER_PIXEL["compact"] for f in (2, 4))
    assert video.estimated_bytes == round(expected)
    out = plan.summary()
    assert "tier compact (bit-exact), no full resolution and levels 1/2, 1/4; alpha lossless" in out
    assert f"create {NVS_SEQ}/level_2 (" in out and f"create {NVS_SEQ}/images" not in out


def test_convert_refuses_when_the_estimate_exceeds_the_free_space_and_writes_nothing(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    import nersemble_zarr.pipelines.convert as convert
    from nersemble_zarr.cli.main import main

    monkeypatch.setattr(convert, "free_space", lambda location: 1000)
    store = tmp_path / "new" / "s.zarr"
    args = ("convert", str(sample_root), str(store), "-b", "mono_flame_avatar", "-s", "EXP-1-head", "--no-progress")
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 1
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert "\n" not in line and line.startswith("error: "), captured
    assert "estimated store growth" in line and "exceeds the free space 1.0 kB on the target" in line and "--force" in line
    assert not store.parent.exists()  # not even the lock file's folder
    dry = _cli("convert", str(sample_root), str(store), "-b", "mono_flame_avatar", "-s", "EXP-1-head", "--dry-run")
    assert dry.exit_code == 0 and "free on the target: 1.0 kB" in dry.output
    assert "exceeds the free space on the target: convert refuses to start without --force" in dry.output
    forced = _cli(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert zarr.open_group(store, mode="r")[schema.sequence_group("mono_flame_avatar", 393, "EXP-1-head")][schema.IMAGES].shape[0] == 1


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["lossless", "compact", "jpeg"])
def test_dry_run_estimate_is_within_10_percent_of_the_real_store_at_full_resolution(full_res_mono: Path, tier: str, tmp_path: Path):
    """The done-when of the size planning: on the sample at full resolution, per tier (levels too)."""
    from nersemble_zarr.pipelines.convert import convert_benchmark

    for levels, full in (((), True), ((2,), False)):
        store = tmp_path / f"{tier}-{len(levels)}.zarr"
        seqs = ("EXP-1-head", "EXP-2-eyes", "FREE")  # two with video, one tracking only
        options = ConvertOptions(benchmarks="mono_flame_avatar", sequences=seqs, image_codec=tier, levels=levels, full=full)
        plan = plan_conversion(full_res_mono, store, options, sample_frames=True)
        report = convert_benchmark(full_res_mono, store, benchmarks="mono_flame_avatar", sequences=seqs, image_codec=tier,
                                   levels=levels, full=full, progress=False)
        assert report.ok, report.summary()
        real = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        assert plan.estimated_bytes == pytest.approx(real, rel=0.10), (tier, levels)


@pytest.fixture(scope="module")
def full_res_mono(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mono benchmark's sample at its full resolution (512 x 512), 4 frames per sequence."""
    from nersemble_zarr.testing.sample import generate_sample

    return generate_sample(tmp_path_factory.mktemp("full") / "raw", benchmarks=("mono_flame_avatar",), frames=4, scale=1)


def test_levels_option_refuses_a_factor_below_2_and_writes_nothing(sample_root: Path, tmp_path: Path):
    store = tmp_path / "s.zarr"
    result = _cli("convert", str(sample_root), str(store), "--levels", "2,1", "--dry-run")
    assert result.exit_code == 2
    assert "expected integer downscale factors >= 2 separated by commas (2,4), found '1'" in result.output
    assert not store.exists()

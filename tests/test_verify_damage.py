"""verify never crashes (issue 10, point 7): every kind of store damage is a failed row naming the object,
the other items are still compared, and a selection matching nothing is a SelectionError (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from damage import ARRAY_DAMAGE, corrupt_zarr_json, damaged_copy
from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core import schema
from nersemble_zarr.core.errors import SelectionError
from nersemble_zarr.pipelines.verify import VerifyReport, verify_store

NZ = [str(Path(sys.executable).with_name("nersemble-zarr"))]
IMAGES = f"{schema.sequence_group(bm.NVS, 388, 'GLASSES')}/{schema.IMAGES}"
N_CAMERAS = len(bm.NVS_BENCHMARK.train_serials)


def _rows(report: VerifyReport, prefix: str) -> list:
    return [c for c in report.checks if c.name.startswith(prefix)]


@pytest.mark.parametrize("kind", sorted(ARRAY_DAMAGE))
def test_damaged_images_are_rows_of_the_report_and_the_rest_is_still_compared(
    kind: str, sample_root: Path, converted_store: Path, tmp_path: Path
):
    store, key = damaged_copy(converted_store, tmp_path / "s.zarr", kind, IMAGES)
    report = verify_store(store, sample_root, benchmarks="nvs", sequences=["GLASSES"])  # never raises
    assert not report.ok
    failed = report.failed
    assert failed and all(c.name.startswith("nvs/388/GLASSES images") for c in failed), report.summary()
    assert all(IMAGES in c.message for c in failed), report.summary()  # names the array
    if kind in ("missing_shard", "truncated_shard", "chunk_bit_flip", "index_bit_flip"):
        # one shard of one camera: that camera only, naming the object and its timesteps
        assert len(failed) == 1 and key.rsplit("/c/", 1)[-1] in failed[0].message and "timesteps 0.." in failed[0].message
    # nothing else was lost: every alpha map, the calibration and the point clouds still compared and passed
    alpha = _rows(report, "nvs/388/GLASSES alpha cam_")
    assert len(alpha) == N_CAMERAS and all(c.ok for c in alpha)
    assert all(c.ok for c in report.checks if c.name in ("nvs/388 calibration", "nvs/388/GLASSES pointclouds"))
    assert "MISMATCH nvs/388/GLASSES images" in report.summary()


@pytest.mark.parametrize(
    "target, kind, item",
    [
        (f"{schema.tracking_group(bm.MONO, 393, 'FREE', 2)}/jaw", "chunk_bit_flip", "mono_flame_avatar/393/FREE tracking v2"),
        (f"{schema.tracking_group(bm.MONO, 393, 'FREE', 2)}/jaw", "missing_shard", "mono_flame_avatar/393/FREE tracking v2"),
        (f"{schema.tracking_group(bm.MONO, 393, 'FREE', 1)}/expression", "corrupt_zarr_json", "mono_flame_avatar/393/FREE tracking v1"),
        (schema.calibration_group(bm.MONO, 393), "corrupt_zarr_json", "mono_flame_avatar/393 calibration"),
        (f"{schema.pointclouds_group(bm.NVS, 388, 'GLASSES')}/{schema.POINTS}", "truncated_shard", "nvs/388/GLASSES pointclouds"),
        (f"{schema.pointclouds_group(bm.NVS, 388, 'GLASSES')}/{schema.OFFSETS}", "missing_array_folder", "nvs/388/GLASSES pointclouds"),
        (f"{schema.sequence_group(bm.NVS, 388, 'GLASSES')}/{schema.CAMERA}", "corrupt_zarr_json", "nvs/388/GLASSES images|alpha"),
    ],
)
def test_damaged_tracking_calibration_clouds_and_coordinates_are_rows(
    target: str, kind: str, item: str, sample_root: Path, converted_store: Path, tmp_path: Path
):
    store, _ = damaged_copy(converted_store, tmp_path / "s.zarr", kind, target)
    report = verify_store(store, sample_root, sequences=["GLASSES", "FREE"])
    failed = {c.name: c.message for c in report.failed}
    head, _, tails = item.partition("|")  # the camera coordinate serves both images and alpha
    items = [head] + [head.rsplit(" ", 1)[0] + " " + t for t in tails.split("|") if t]
    assert sorted(failed) == sorted(items), report.summary()  # only the damaged item; every other one passed
    for name in items:
        assert target.rsplit("/", 1)[0] in failed[name] or target in failed[name], failed[name]
    assert sum(c.ok for c in report.checks) >= (0 if tails else 2 * N_CAMERAS)


def test_a_corrupt_root_zarr_json_is_a_row_not_a_traceback(sample_root: Path, converted_store: Path, tmp_path: Path):
    store, key = damaged_copy(converted_store, tmp_path / "s.zarr", "corrupt_zarr_json", "")
    report = verify_store(store, sample_root)
    assert [c.name for c in report.checks] == ["store"] and f"{store}/zarr.json" in report.checks[0].message
    proc = subprocess.run(NZ + ["verify", str(store), str(sample_root)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "MISMATCH store" in proc.stdout, proc.stderr


def test_missing_consolidated_metadata_is_reported(sample_root: Path, converted_store: Path, tmp_path: Path):
    store, _ = damaged_copy(converted_store, tmp_path / "s.zarr", "missing_consolidated", "")
    report = verify_store(store, sample_root, benchmarks="mono_flame_avatar", sequences=["FREE"])
    assert [c.name for c in report.failed] == ["store consolidated metadata"], report.summary()
    assert all(c.ok for c in report.checks if c.name != "store consolidated metadata")


def test_arrays_of_the_wrong_shape_are_rows_naming_both_shapes(sample_root: Path, converted_store: Path, tmp_path: Path):
    store, _ = damaged_copy(converted_store, tmp_path / "s.zarr", "missing_consolidated", "")
    seq = zarr.open_group(store, path=schema.sequence_group(bm.NVS, 388, "GLASSES"), mode="r+", use_consolidated=False)
    alpha = seq[schema.ALPHA]
    shape = alpha.shape
    attrs = dict(alpha.attrs)
    seq.create_array(schema.ALPHA, shape=(shape[0], shape[1], shape[2] - 2, shape[3]), dtype="uint8", attributes=attrs, overwrite=True)
    jaw = f"{schema.tracking_group(bm.MONO, 393, 'FREE', 2)}/jaw"
    old = zarr.open_array(store, path=jaw, mode="r")[...]
    g = zarr.open_group(store, path=schema.tracking_group(bm.MONO, 393, "FREE", 2), mode="r+", use_consolidated=False)
    g.create_array("jaw", data=np.concatenate([old, old]), overwrite=True)
    report = verify_store(store, sample_root, sequences=["GLASSES", "FREE"])
    failed = {c.name: c.message for c in report.failed}
    serial = bm.NVS_BENCHMARK.train_serials[0]
    assert f"frame shape {(shape[2] - 2, shape[3])} in the store" in failed[f"nvs/388/GLASSES alpha cam_{serial}"]
    assert f"jaw: shape {(2 * old.shape[0], 3)} in the store, {old.shape}" in failed["mono_flame_avatar/393/FREE tracking v2"]
    assert sum(name.startswith("nvs/388/GLASSES alpha cam_") for name in failed) == N_CAMERAS
    assert not any(name.startswith("nvs/388/GLASSES images") for name in failed)


def test_a_selection_matching_nothing_is_a_selection_error(sample_root: Path, converted_store: Path):
    with pytest.raises(SelectionError, match=r"participant 999 is not in nvs or mono_flame_avatar: expected one of 388, 422"):
        verify_store(converted_store, sample_root, participants=[999])
    with pytest.raises(SelectionError, match=r"participant 422 is not in the raw folder: .* present: nvs/388, mono_flame_avatar/393"):
        verify_store(converted_store, sample_root, participants=[422])
    with pytest.raises(SelectionError, match=r"sequence 'NOPE' is in no selected benchmark"):
        verify_store(converted_store, sample_root, sequences=["NOPE"])
    with pytest.raises(SelectionError, match=r"sequence 'HAIR' is not in the raw folder .* present: 388/GLASSES"):
        verify_store(converted_store, sample_root, benchmarks="nvs", sequences=["HAIR"])
    proc = subprocess.run(NZ + ["verify", str(converted_store), str(sample_root), "--participant", "999"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: participant 999") and "Traceback" not in proc.stderr, proc.stderr


def test_a_corrupt_tracking_zarr_json_is_named_even_without_damage_helpers(sample_root: Path, converted_store: Path, tmp_path: Path):
    """The metadata of a whole benchmark group unreadable: its rows fail, the other benchmark is compared."""
    store, _ = damaged_copy(converted_store, tmp_path / "s.zarr", "missing_consolidated", "")
    corrupt_zarr_json(store, schema.benchmark_group(bm.MONO))
    report = verify_store(store, sample_root, sequences=["GLASSES", "FREE"])
    failed = {c.name for c in report.failed}
    assert "mono_flame_avatar metadata" in failed
    assert all(c.ok for c in report.checks if c.name.startswith("nvs"))

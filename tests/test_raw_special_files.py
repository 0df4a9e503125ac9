"""Raw inputs that are not regular files (FIFO, device, directory) are refused by name and never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nersemble_zarr.raw import RawFormatError, read_camera_params, read_metadata, read_tracking


def _fifo(path: Path) -> Path:
    os.mkfifo(path)  # opening it for reading would block forever without a writer
    return path


def _zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")  # reads without end
    return path


@pytest.mark.parametrize("make, kind", [(_fifo, r"a FIFO \(named pipe\)"), (_zero, r"a character device \(through a symlink\)")])
def test_tracking_calibration_and_metadata_refuse_special_files(tmp_path: Path, make, kind):
    cases = [
        (read_tracking, "flame2023_tracking_v2.npz", "tracking"),
        (read_camera_params, "camera_params.json", "calibration"),
        (lambda p: read_metadata(p, "nvs"), "metadata.json", "nvs metadata"),
    ]
    for reader, name, what in cases:
        path = make(tmp_path / name)
        with pytest.raises(RawFormatError, match=rf"{path}: expected a regular {what} file, found {kind}; refusing"):
            reader(path)


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path):
    real = tmp_path / "real.json"
    real.write_text('{"sequences": {}}')
    link = tmp_path / "metadata.json"
    link.symlink_to(real)
    assert read_metadata(link, "nvs").frame_counts == {}

"""Camera calibration ``camera_params.json``: OpenCV world→camera extrinsics and pixel intrinsics per serial."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ._json import dump_json, load_json
from .errors import RawFormatError

__all__ = ["CameraParams", "read_camera_params", "write_camera_params"]


@dataclass
class CameraParams:
    """Calibration of a participant's cameras, keyed by serial string.

    ``world_2_cam[serial]``: ``(4, 4) float64`` OpenCV convention (x right, y down, z forward),
    world → camera, metres. ``intrinsics[serial]``: ``(3, 3) float64`` pixel intrinsics
    ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` for the published full-resolution frames.
    """

    world_2_cam: dict[str, np.ndarray]
    intrinsics: dict[str, np.ndarray]

    @property
    def serials(self) -> list[str]:
        """Serials in file order."""
        return list(self.world_2_cam)


def _matrices(path: str, obj: dict, key: str, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    block = obj.get(key)
    if not isinstance(block, dict):
        found = "nothing" if block is None else type(block).__name__
        raise RawFormatError(path, f"calibration needs {key!r}: a mapping serial → {shape[0]}x{shape[1]} matrix, found {found}")
    out = {}
    for serial, value in block.items():
        try:
            m = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise RawFormatError(path, f"calibration {key}[{serial!r}]: expected a {shape[0]}x{shape[1]} matrix of numbers") from None
        if m.shape != shape:
            raise RawFormatError(path, f"calibration {key}[{serial!r}]: expected shape {shape}, found {m.shape}")
        if not np.isfinite(m).all():
            raise RawFormatError(path, f"calibration {key}[{serial!r}]: expected finite numbers, found NaN/inf")
        out[str(serial)] = m
    return out


def read_camera_params(path: str | os.PathLike) -> CameraParams:
    """Read ``camera_params.json`` (``{"world_2_cam": {serial: 4x4}, "intrinsics": {serial: 3x3}}``).

    Raises :class:`RawFormatError` naming the file for bad JSON, a missing block, a wrong matrix
    shape, or serials present in one block but not the other.
    """
    path = os.fspath(path)
    obj = load_json(path, "calibration")
    if not isinstance(obj, dict):
        raise RawFormatError(path, f"calibration must be a JSON object with world_2_cam and intrinsics, found {type(obj).__name__}")
    w2c = _matrices(path, obj, "world_2_cam", (4, 4))
    intr = _matrices(path, obj, "intrinsics", (3, 3))
    if set(w2c) != set(intr):
        only_w, only_i = sorted(set(w2c) - set(intr)), sorted(set(intr) - set(w2c))
        raise RawFormatError(
            path, f"calibration serials differ: world_2_cam only {only_w or 'none'}, intrinsics only {only_i or 'none'}"
        )
    return CameraParams(world_2_cam=w2c, intrinsics=intr)


def write_camera_params(path: str | os.PathLike, params: CameraParams) -> None:
    """Write ``params`` in the official JSON layout (nested lists, full float64 precision)."""
    dump_json(
        path,
        {
            "world_2_cam": {s: np.asarray(m, np.float64).tolist() for s, m in params.world_2_cam.items()},
            "intrinsics": {s: np.asarray(m, np.float64).tolist() for s, m in params.intrinsics.items()},
        },
    )

"""FLAME 2023 tracking ``.npz`` files (``flame2023_tracking.npz`` v1 and ``flame2023_tracking_v2.npz``)."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, fields

import numpy as np

from ._atomic import write_atomic
from ._files import read_regular_file
from .errors import RawFormatError

__all__ = ["FlameTracking", "TRACKING_SHAPES", "read_tracking", "write_tracking"]

#: Official key → shape, ``"T"`` standing for the number of tracked timesteps.
TRACKING_SHAPES: dict[str, tuple[int | str, ...]] = {
    "shape": (1, 300),
    "expression": ("T", 100),
    "rotation": ("T", 3),
    "rotation_matrices": ("T", 3, 3),
    "translation": ("T", 3),
    "jaw": ("T", 3),
    "frames": ("T",),
    "scale": (1, 1),
    "neck": ("T", 3),
    "eyes": ("T", 6),
}


@dataclass
class FlameTracking:
    """FLAME 2023 parameters of one tracked sequence, the official npz's arrays under the same names.

    ``shape (1, 300)`` identity coefficients; per timestep: ``expression (T, 100)``, ``rotation
    (T, 3)`` Euler angles 'XYZ' in radians (model → world), ``rotation_matrices (T, 3, 3)`` the same
    rotation as matrices, ``translation (T, 3)`` metres, ``jaw``/``neck (T, 3)`` axis-angle,
    ``eyes (T, 6)`` two axis-angles, ``frames (T,)`` the video frame index of each timestep;
    ``scale (1, 1)`` model → world scale. Float arrays are float32 (``frames`` keeps its dtype).
    """

    shape: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    rotation_matrices: np.ndarray
    translation: np.ndarray
    jaw: np.ndarray
    frames: np.ndarray
    scale: np.ndarray
    neck: np.ndarray
    eyes: np.ndarray

    @property
    def n_timesteps(self) -> int:
        """T, the number of tracked timesteps."""
        return int(self.expression.shape[0])

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays by official key."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(path: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [k for k in TRACKING_SHAPES if k not in arrays]
    if missing:
        raise RawFormatError(path, f"tracking is missing key(s) {', '.join(missing)}; expected keys {', '.join(TRACKING_SHAPES)}")
    t = arrays["expression"].shape[0] if arrays["expression"].ndim else -1
    out = {}
    for key, spec in TRACKING_SHAPES.items():
        value = arrays[key]
        expected = tuple(t if d == "T" else d for d in spec)
        if value.shape != expected:
            pretty = "(" + ", ".join(str(d) for d in spec) + ")"
            raise RawFormatError(
                path, f"tracking key {key!r}: expected shape {pretty} = {expected} (T={t} from 'expression'), found {value.shape}"
            )
        if key == "frames":
            if not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)):
                raise RawFormatError(path, f"tracking key 'frames': expected numbers, found dtype {value.dtype}")
            out[key] = value
        elif not np.issubdtype(value.dtype, np.floating):
            raise RawFormatError(path, f"tracking key {key!r}: expected float32, found dtype {value.dtype}")
        else:
            out[key] = value.astype(np.float32, copy=False)
    return out


def read_tracking(path: str | os.PathLike) -> FlameTracking:
    """Read and check a tracking npz: every official key present with its shape (T from ``expression``).

    Extra keys are ignored. Raises :class:`RawFormatError` naming the file and the key (expected vs
    found shape) for a missing/unreadable file, a missing key or a wrong shape.
    """
    path = os.fspath(path)
    data = read_regular_file(path, "tracking")  # never opens a FIFO or reads a device
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k in TRACKING_SHAPES}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise RawFormatError(path, f"expected an .npz archive (zip of .npy arrays), could not read it: {e}") from None
    return FlameTracking(**_check(path, arrays))


def write_tracking(path: str | os.PathLike, tracking: FlameTracking) -> None:
    """Write ``tracking`` as an uncompressed npz with the official keys (like the released files), whole or not at all."""
    arrays = _check(os.fspath(path), tracking.as_dict())
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())

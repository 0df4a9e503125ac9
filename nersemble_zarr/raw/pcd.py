"""``.pcd`` point clouds as open3d (and PCL) write them: ascii, binary and binary_compressed (LZF).

Layout read and written: ``FIELDS x y z normal_x normal_y normal_z rgb`` with the colour packed into
one 32-bit word ``(r << 16) | (g << 8) | b`` (``TYPE U``; ``TYPE F``, PCL's habit, is the same bits
read as a float). Fields other than these (``curvature``, ``intensity`` …) are skipped on read.

``binary_compressed`` stores ``uint32 compressed size, uint32 raw size`` then an LZF block of the
points in field-major order (all x, then all y, …). LZF comes from ``imagecodecs`` (liblzf, already
a dependency for image codecs) rather than a separate package or a slow pure-Python loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ._atomic import write_atomic
from ._files import read_regular_file
from .errors import RawFormatError

__all__ = ["PointCloud", "read_pcd", "write_pcd", "PCD_ENCODINGS"]

PCD_ENCODINGS = ("ascii", "binary", "binary_compressed")
_TYPE_KIND = {"F": "f", "I": "i", "U": "u"}
_REQUIRED_KEYS = ("FIELDS", "SIZE", "TYPE", "POINTS", "DATA")
_MAX_HEADER_LINES = 64


@dataclass
class PointCloud:
    """One point cloud.

    ``points`` ``(N, 3) float32`` world coordinates (metres); ``colors`` ``(N, 3) uint8`` RGB 0–255
    (open3d's float colours are these divided by 255); ``normals`` ``(N, 3) float32`` unit vectors,
    or ``None`` when the file has none.
    """

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32)
        n = len(self.points)
        if self.points.shape != (n, 3):
            raise ValueError(f"points must have shape (N, 3), found {self.points.shape}")
        self.colors = np.asarray(self.colors)
        if self.colors.shape != (n, 3) or self.colors.dtype != np.uint8:
            raise ValueError(f"colors must be ({n}, 3) uint8, found {self.colors.shape} {self.colors.dtype}")
        if self.normals is not None:
            self.normals = np.asarray(self.normals, dtype=np.float32)
            if self.normals.shape != (n, 3):
                raise ValueError(f"normals must have shape ({n}, 3), found {self.normals.shape}")

    def __len__(self) -> int:
        return len(self.points)


@dataclass
class _Header:
    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    points: int
    data: str
    data_offset: int

    def dtype(self) -> np.dtype:
        cols = []
        for name, size, typ, count in zip(self.fields, self.sizes, self.types, self.counts):
            base = np.dtype(f"<{_TYPE_KIND[typ]}{size}")
            # unnamed/duplicate fields ("_" padding in PCL files) still need distinct names
            cols.append((f"{len(cols)}:{name}", base, (count,)) if count > 1 else (f"{len(cols)}:{name}", base))
        return np.dtype(cols)


def _parse_header(path: str, blob: bytes) -> _Header:
    values: dict[str, list[str]] = {}
    offset = 0
    for _ in range(_MAX_HEADER_LINES):
        end = blob.find(b"\n", offset)
        if end < 0:
            raise RawFormatError(path, "malformed pcd header: it ends before the DATA line")
        try:
            line = blob[offset:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise RawFormatError(path, f"malformed pcd header: non-text bytes at offset {offset}, expected 'KEY value' lines") from None
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        values[key.upper()] = rest.split()
        if key.upper() == "DATA":
            break
    else:
        raise RawFormatError(path, f"malformed pcd header: no DATA line in the first {_MAX_HEADER_LINES} lines")

    missing = [k for k in _REQUIRED_KEYS if k not in values]
    if missing:
        raise RawFormatError(path, f"malformed pcd header: missing {', '.join(missing)} (expected {', '.join(_REQUIRED_KEYS)})")
    fields = values["FIELDS"]
    n_fields = len(fields)

    def ints(key: str, default: list[int] | None = None) -> list[int]:
        if key not in values and default is not None:
            return default
        try:
            out = [int(v) for v in values[key]]
        except ValueError:
            raise RawFormatError(path, f"malformed pcd header: {key} must be integers, found {' '.join(values[key])!r}") from None
        if len(out) != n_fields:
            raise RawFormatError(path, f"malformed pcd header: {key} has {len(out)} entries, expected {n_fields} (one per field)")
        return out

    sizes = ints("SIZE")
    counts = ints("COUNT", [1] * n_fields)
    types = [t.upper() for t in values["TYPE"]]
    if len(types) != n_fields:
        raise RawFormatError(path, f"malformed pcd header: TYPE has {len(types)} entries, expected {n_fields} (one per field)")
    for name, size, typ in zip(fields, sizes, types):
        if typ not in _TYPE_KIND or size not in (1, 2, 4, 8) or (typ == "F" and size not in (4, 8)):
            raise RawFormatError(path, f"malformed pcd header: field {name!r} has TYPE {typ} SIZE {size}, expected F 4/8, I or U 1/2/4/8")
    for key in ("x", "y", "z"):
        if key not in fields:
            raise RawFormatError(path, f"pcd has no {key!r} field: expected FIELDS x y z …, found {' '.join(fields)}")
    try:
        n_points = int(values["POINTS"][0])
    except (ValueError, IndexError):
        raise RawFormatError(path, f"malformed pcd header: POINTS must be an integer, found {' '.join(values['POINTS'])!r}") from None
    if n_points < 0:
        raise RawFormatError(path, f"malformed pcd header: POINTS = {n_points}, expected a count >= 0")
    if "WIDTH" in values or "HEIGHT" in values:
        try:
            width, height = int(values["WIDTH"][0]), int(values["HEIGHT"][0])
        except (ValueError, IndexError, KeyError):
            raise RawFormatError(path, "malformed pcd header: WIDTH and HEIGHT must both be integers") from None
        if width < 0 or height < 0:
            raise RawFormatError(path, f"malformed pcd header: WIDTH {width} HEIGHT {height}, expected counts >= 0")
        wh = width * height
        if wh != n_points:
            raise RawFormatError(path, f"malformed pcd header: WIDTH x HEIGHT = {wh} but POINTS = {n_points}")
    data = values["DATA"][0].lower() if values["DATA"] else ""
    if data not in PCD_ENCODINGS:
        raise RawFormatError(path, f"malformed pcd header: DATA {data!r}, expected one of {', '.join(PCD_ENCODINGS)}")
    return _Header(fields, sizes, types, counts, n_points, data, offset)


def _decode_body(path: str, header: _Header, blob: bytes) -> np.ndarray:
    dtype = header.dtype()
    n = header.points
    body = memoryview(blob)[header.data_offset:]
    if header.data == "binary":
        need = n * dtype.itemsize
        if len(body) < need:
            raise RawFormatError(path, f"truncated pcd: {n} points need {need} data bytes, found {len(body)}")
        if len(body) > need:
            raise RawFormatError(
                path, f"corrupt pcd: POINTS = {n} needs {need} data bytes, found {len(body)} "
                f"({(len(body) - need) / dtype.itemsize:g} points more than the header declares)",
            )
        return np.frombuffer(body, dtype=dtype, count=n)
    if header.data == "binary_compressed":
        return _decode_compressed(path, header, dtype, body)
    return _decode_ascii(path, header, dtype, bytes(body))


def _decode_compressed(path: str, header: _Header, dtype: np.dtype, body: memoryview) -> np.ndarray:
    import imagecodecs

    n = header.points
    if len(body) < 8:
        raise RawFormatError(path, "truncated pcd: binary_compressed data lacks its 8-byte size prefix")
    compressed, raw = (int(v) for v in np.frombuffer(body[:8], "<u4"))
    need = n * dtype.itemsize
    if raw != need:
        raise RawFormatError(path, f"corrupt pcd: binary_compressed raw size {raw} bytes, expected {need} for {n} points")
    if len(body) - 8 < compressed:
        raise RawFormatError(path, f"truncated pcd: compressed block of {compressed} bytes, found {len(body) - 8}")
    if len(body) - 8 > compressed:
        raise RawFormatError(
            path, f"corrupt pcd: {len(body) - 8 - compressed} bytes after the {compressed}-byte compressed block the header sizes"
        )
    if need == 0:
        return np.zeros(0, dtype)
    try:
        flat = imagecodecs.lzf_decode(bytes(body[8 : 8 + compressed]), out=raw)
    except Exception as e:  # noqa: BLE001 - imagecodecs raises its own error types
        raise RawFormatError(path, f"corrupt pcd: LZF decompression failed ({e})") from None
    if len(flat) != raw:
        raise RawFormatError(path, f"corrupt pcd: LZF block decompressed to {len(flat)} bytes, expected {raw}")
    # field-major: each field's values for all points lie together
    out = np.empty(n, dtype)
    pos = 0
    for name in dtype.names:
        sub = dtype.fields[name][0]
        nbytes = n * sub.itemsize
        out[name] = np.frombuffer(flat, sub.base, count=n * max(1, int(np.prod(sub.shape))), offset=pos).reshape((n, *sub.shape))
        pos += nbytes
    return out


def _decode_ascii(path: str, header: _Header, dtype: np.dtype, body: bytes) -> np.ndarray:
    n = header.points
    n_cols = sum(header.counts)
    try:
        values = np.array(body.split(), dtype=np.float64) if n else np.zeros(0)
    except ValueError:
        raise RawFormatError(path, "malformed pcd: ascii data holds a value that is not a number") from None
    if values.size < n * n_cols:
        raise RawFormatError(path, f"truncated pcd: ascii data has {values.size} values, expected {n * n_cols} ({n} points x {n_cols})")
    if values.size > n * n_cols:
        raise RawFormatError(
            path, f"corrupt pcd: ascii data has {values.size} values, POINTS = {n} declares {n * n_cols} ({n} points x {n_cols})"
        )
    table = values[: n * n_cols].reshape(n, n_cols)
    out = np.empty(n, dtype)
    col = 0
    for name, typ, count in zip(dtype.names, header.types, header.counts):
        sub = dtype.fields[name][0]
        cols = table[:, col : col + count]
        if typ == "F" or name.split(":", 1)[1] not in ("rgb", "rgba"):
            out[name] = cols.reshape((n, *sub.shape)).astype(sub.base)
        else:
            out[name] = cols.reshape((n, *sub.shape)).astype(np.uint64).astype(sub.base)
        col += count
    return out


def _column(rows: np.ndarray, name: str) -> np.ndarray | None:
    for key in rows.dtype.names:
        if key.split(":", 1)[1] == name:
            return rows[key]
    return None


def _unpack_rgb(path: str, rows: np.ndarray, header: _Header) -> np.ndarray:
    n = len(rows)
    for name in ("rgb", "rgba"):
        col = _column(rows, name)
        if col is None:
            continue
        if col.dtype.itemsize != 4:
            raise RawFormatError(path, f"pcd field {name!r} has SIZE {col.dtype.itemsize}, expected 4 (packed 0xRRGGBB)")
        packed = np.ascontiguousarray(col).view("<u4")  # TYPE F: same bits, read as a float
        return np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1).astype(np.uint8)
    if all(_column(rows, c) is not None for c in ("r", "g", "b")):
        return np.stack([_column(rows, c) for c in ("r", "g", "b")], axis=-1).astype(np.uint8)
    return np.zeros((n, 3), np.uint8)


def read_pcd(path: str | os.PathLike) -> PointCloud:
    """Read a ``.pcd`` file (ascii, binary or binary_compressed) into a :class:`PointCloud`.

    Colours without an ``rgb``/``rgba`` field are black; normals are ``None`` without
    ``normal_x/y/z``. NaN and inf coordinates are kept as they are. Raises :class:`RawFormatError`
    naming the file for a missing file, a FIFO/device/directory (never opened), a malformed header
    (``POINTS`` negative or not ``WIDTH`` x ``HEIGHT``) and data that does not hold exactly the
    ``POINTS`` the header declares (shorter: truncated; longer: points the header does not count).
    """
    path = os.fspath(path)
    blob = read_regular_file(path, "point cloud")  # never opens a FIFO or reads a device
    header = _parse_header(path, blob)
    rows = _decode_body(path, header, blob)
    points = np.stack([_column(rows, c).astype(np.float32) for c in ("x", "y", "z")], axis=-1)
    normal_cols = [_column(rows, c) for c in ("normal_x", "normal_y", "normal_z")]
    normals = np.stack([c.astype(np.float32) for c in normal_cols], axis=-1) if all(c is not None for c in normal_cols) else None
    return PointCloud(points=points, colors=_unpack_rgb(path, rows, header), normals=normals)


def write_pcd(path: str | os.PathLike, cloud: PointCloud, encoding: str = "binary") -> None:
    """Write ``cloud`` as open3d does: ``FIELDS x y z [normal_x normal_y normal_z] rgb``, rgb ``TYPE U``.

    ``encoding`` is ``"binary"`` (open3d's default), ``"ascii"`` or ``"binary_compressed"``.
    Floats are written losslessly in every encoding (ascii uses 9 significant digits).
    """
    if encoding not in PCD_ENCODINGS:
        raise ValueError(f"pcd encoding must be one of {', '.join(PCD_ENCODINGS)}, not {encoding!r}")
    n = len(cloud)
    names = ["x", "y", "z"] + (["normal_x", "normal_y", "normal_z"] if cloud.normals is not None else []) + ["rgb"]
    dtype = np.dtype([(name, "<f4") for name in names[:-1]] + [("rgb", "<u4")])
    rows = np.empty(n, dtype)
    for i, c in enumerate("xyz"):
        rows[c] = cloud.points[:, i]
    if cloud.normals is not None:
        for i, c in enumerate(("normal_x", "normal_y", "normal_z")):
            rows[c] = cloud.normals[:, i]
    col = cloud.colors.astype(np.uint32)
    rows["rgb"] = (col[:, 0] << 16) | (col[:, 1] << 8) | col[:, 2]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(names)}\nSIZE {' '.join(['4'] * len(names))}\n"
        f"TYPE {' '.join(['F'] * (len(names) - 1) + ['U'])}\nCOUNT {' '.join(['1'] * len(names))}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {encoding}\n"
    ).encode("ascii")
    if encoding == "binary":
        body = rows.tobytes()
    elif encoding == "binary_compressed":
        import imagecodecs

        raw = b"".join(np.ascontiguousarray(rows[name]).tobytes() for name in names)
        packed = imagecodecs.lzf_encode(raw) if raw else b""
        body = np.array([len(packed), len(raw)], "<u4").tobytes() + packed
    else:
        lines = []
        for row in rows.tolist():
            lines.append(" ".join([f"{v:.9g}" for v in row[:-1]] + [str(row[-1])]))
        body = ("\n".join(lines) + ("\n" if lines else "")).encode("ascii")
    write_atomic(path, header + body)

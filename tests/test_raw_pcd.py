"""PCD reader/writer: exact round trips in all three encodings, open3d/PCL layouts, clear header errors."""

from __future__ import annotations

import numpy as np
import pytest

from nersemble_zarr.raw import PCD_ENCODINGS, PointCloud, RawFormatError, read_pcd, write_pcd


def make_cloud(n: int = 257, seed: int = 0, normals: bool = True) -> PointCloud:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3)).astype(np.float32) * np.float32(0.1)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    cols = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return PointCloud(points=pts, colors=cols, normals=nrm if normals else None)


def lzf_decompress_reference(data: bytes, size: int) -> bytes:
    """liblzf's decoder spelt out in Python: an independent check of what the writer produced."""
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
        else:  # back reference
            length = ctrl >> 5
            ref = len(out) - ((ctrl & 0x1F) << 8) - 1
            if length == 7:
                length += data[i]
                i += 1
            ref -= data[i]
            i += 1
            for _ in range(length + 2):
                out.append(out[ref])
                ref += 1
    assert len(out) == size
    return bytes(out)


@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
@pytest.mark.parametrize("with_normals", [True, False])
def test_round_trip_is_bit_exact(tmp_path, encoding, with_normals):
    cloud = make_cloud(normals=with_normals)
    path = tmp_path / f"frame_00000_{encoding}.pcd"
    write_pcd(path, cloud, encoding=encoding)
    back = read_pcd(path)
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    assert back.points.dtype == np.float32 and back.colors.dtype == np.uint8
    if with_normals:
        np.testing.assert_array_equal(back.normals, cloud.normals)
        assert back.normals.dtype == np.float32
    else:
        assert back.normals is None


@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
def test_empty_cloud_round_trips(tmp_path, encoding):
    path = tmp_path / "empty.pcd"
    write_pcd(path, make_cloud(0), encoding=encoding)
    back = read_pcd(path)
    assert back.points.shape == (0, 3) and back.colors.shape == (0, 3) and back.normals.shape == (0, 3)


def test_binary_file_has_open3d_header_and_packed_rgb(tmp_path):
    cloud = make_cloud(5)
    path = tmp_path / "c.pcd"
    write_pcd(path, cloud)
    blob = path.read_bytes()
    head, _, body = blob.partition(b"DATA binary\n")
    assert b"FIELDS x y z normal_x normal_y normal_z rgb\n" in head
    assert b"TYPE F F F F F F U\n" in head and b"POINTS 5\n" in head
    rows = np.frombuffer(body, dtype=np.dtype([(c, "<f4") for c in ("x", "y", "z", "nx", "ny", "nz")] + [("rgb", "<u4")]))
    r, g, b = (cloud.colors[:, i].astype(np.uint32) for i in range(3))
    np.testing.assert_array_equal(rows["rgb"], (r << 16) | (g << 8) | b)
    np.testing.assert_array_equal(rows["x"], cloud.points[:, 0])


def test_binary_compressed_is_lzf_of_field_major_data(tmp_path):
    cloud = make_cloud(100)
    path = tmp_path / "c.pcd"
    write_pcd(path, cloud, encoding="binary_compressed")
    body = path.read_bytes().partition(b"DATA binary_compressed\n")[2]
    compressed, raw = np.frombuffer(body[:8], "<u4")
    flat = lzf_decompress_reference(body[8 : 8 + compressed], int(raw))
    x = np.frombuffer(flat, "<f4", count=100)  # all x first
    y = np.frombuffer(flat, "<f4", count=100, offset=400)
    np.testing.assert_array_equal(x, cloud.points[:, 0])
    np.testing.assert_array_equal(y, cloud.points[:, 1])


def test_reads_pcl_style_float_rgb_extra_fields_and_comments(tmp_path):
    cloud = make_cloud(7, normals=False)
    r, g, b = (cloud.colors[:, i].astype(np.uint32) for i in range(3))
    packed = ((r << 16) | (g << 8) | b).view("<f4")
    rows = np.zeros(7, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4"), ("curvature", "<f8")])
    for i, c in enumerate("xyz"):
        rows[c] = cloud.points[:, i]
    rows["rgb"] = packed
    rows["curvature"] = 0.5
    header = (
        "# written by PCL\nVERSION .7\nFIELDS x y z rgb curvature\nSIZE 4 4 4 4 8\nTYPE F F F F F\n"
        "COUNT 1 1 1 1 1\nWIDTH 7\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 7\nDATA binary\n"
    )
    path = tmp_path / "pcl.pcd"
    path.write_bytes(header.encode() + rows.tobytes())
    back = read_pcd(path)
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    assert back.normals is None


HEADER = (
    "VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\n"
    "WIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n"
)


@pytest.mark.parametrize(
    "header, message",
    [
        (HEADER.replace("FIELDS x y z rgb\n", ""), r"missing FIELDS"),
        (HEADER.replace("SIZE 4 4 4 4", "SIZE 4 4 4"), r"SIZE has 3 entries, expected 4"),
        (HEADER.replace("TYPE F F F U", "TYPE F F Q U"), r"field 'z' has TYPE Q"),
        (HEADER.replace("POINTS 2", "POINTS two"), r"POINTS must be an integer"),
        (HEADER.replace("WIDTH 2", "WIDTH 3"), r"WIDTH x HEIGHT = 3 but POINTS = 2"),
        (HEADER.replace("DATA ascii", "DATA zipped"), r"DATA 'zipped', expected one of ascii, binary, binary_compressed"),
        (HEADER.replace("FIELDS x y z rgb", "FIELDS x y w rgb"), r"no 'z' field"),
        (HEADER.replace("DATA ascii\n", ""), r"no DATA line|ends before the DATA line"),
        (HEADER.replace("WIDTH 2\nHEIGHT 1\nPOINTS 2", "WIDTH -2\nHEIGHT 1\nPOINTS -2"), r"POINTS = -2, expected a count >= 0"),
        (HEADER.replace("HEIGHT 1\n", ""), r"WIDTH and HEIGHT must both be integers"),
        (HEADER.replace("WIDTH 2\nHEIGHT 1\nPOINTS 2", "WIDTH 1\nHEIGHT 1\nPOINTS 1"), r"ascii data has 8 values, POINTS = 1 declares 4"),
    ],
)
def test_malformed_header_names_file_and_problem(tmp_path, header, message):
    path = tmp_path / "bad.pcd"
    path.write_text(header + "0 0 0 1\n1 1 1 2\n")
    with pytest.raises(RawFormatError, match=rf"{path}: .*{message}"):
        read_pcd(path)


@pytest.mark.parametrize("encoding", ["binary", "binary_compressed", "ascii"])
def test_truncated_data_names_file(tmp_path, encoding):
    path = tmp_path / "t.pcd"
    write_pcd(path, make_cloud(50), encoding=encoding)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 300])
    with pytest.raises(RawFormatError, match=rf"{path}: truncated pcd"):
        read_pcd(path)


def test_corrupt_compressed_block_names_file(tmp_path):
    path = tmp_path / "c.pcd"
    write_pcd(path, make_cloud(50), encoding="binary_compressed")
    blob = bytearray(path.read_bytes())
    start = blob.index(b"DATA binary_compressed\n") + len("DATA binary_compressed\n") + 8
    blob[start : start + 40] = b"\xff" * 40  # back references before the start of the output
    path.write_bytes(bytes(blob))
    with pytest.raises(RawFormatError, match=rf"{path}: corrupt pcd"):
        read_pcd(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RawFormatError, match=r"frame_00000.pcd: point cloud file not found"):
        read_pcd(tmp_path / "frame_00000.pcd")


def test_bad_encoding_and_bad_cloud_are_refused(tmp_path):
    with pytest.raises(ValueError, match="encoding must be one of"):
        write_pcd(tmp_path / "x.pcd", make_cloud(3), encoding="lzma")
    with pytest.raises(ValueError, match=r"colors must be \(3, 3\) uint8"):
        PointCloud(points=np.zeros((3, 3)), colors=np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("encoding", ["binary", "binary_compressed", "ascii"])
def test_points_smaller_than_the_data_is_refused_not_cut(tmp_path, encoding):
    """POINTS (and WIDTH) lowered by one: the last point would silently vanish if the reader trusted the header."""
    path = tmp_path / "short.pcd"
    write_pcd(path, make_cloud(50), encoding=encoding)
    blob = path.read_bytes()
    path.write_bytes(blob.replace(b"WIDTH 50\n", b"WIDTH 49\n").replace(b"POINTS 50\n", b"POINTS 49\n"))
    with pytest.raises(RawFormatError, match=rf"{path}: (corrupt pcd|truncated pcd)"):
        read_pcd(path)


@pytest.mark.parametrize("encoding", ["binary", "binary_compressed", "ascii"])
def test_negative_points_is_refused(tmp_path, encoding):
    path = tmp_path / "neg.pcd"
    write_pcd(path, make_cloud(5), encoding=encoding)
    blob = path.read_bytes().replace(b"WIDTH 5\nHEIGHT 1\n", b"").replace(b"POINTS 5\n", b"POINTS -1\n")
    path.write_bytes(blob)
    with pytest.raises(RawFormatError, match=rf"{path}: malformed pcd header: POINTS = -1, expected a count >= 0"):
        read_pcd(path)


@pytest.mark.parametrize("encoding", ["binary", "binary_compressed", "ascii"])
def test_nan_and_inf_round_trip_unchanged(tmp_path, encoding):
    cloud = make_cloud(4)
    cloud.points[0] = [np.nan, np.inf, -np.inf]
    cloud.normals[1] = [np.nan, 0, 0]
    path = tmp_path / "nan.pcd"
    write_pcd(path, cloud, encoding=encoding)
    back = read_pcd(path)
    assert np.array_equal(back.points, cloud.points, equal_nan=True)
    assert np.array_equal(back.normals, cloud.normals, equal_nan=True)


def test_fifo_and_device_are_refused_by_name_without_reading(tmp_path):
    import os

    fifo = tmp_path / "frame_00000.pcd"
    os.mkfifo(fifo)  # opening it for reading would block forever without a writer
    with pytest.raises(RawFormatError, match=rf"{fifo}: expected a regular point cloud file, found a FIFO"):
        read_pcd(fifo)
    zero = tmp_path / "frame_00001.pcd"
    zero.symlink_to("/dev/zero")  # would read without end
    with pytest.raises(RawFormatError, match=rf"{zero}: expected a regular point cloud file, found a character device \(through a symlink\)"):
        read_pcd(zero)
    d = tmp_path / "frame_00002.pcd"
    d.mkdir()
    with pytest.raises(RawFormatError, match=rf"{d}: expected a regular point cloud file, found a directory"):
        read_pcd(d)

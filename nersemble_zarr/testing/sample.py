"""A generated sample benchmark folder in the exact official layout, for tests, demos and benchmarks.

What it holds per benchmark (paths from :mod:`nersemble_zarr.core.benchmark`):

- ``metadata.json`` listing every participant of the benchmark (files exist only for the chosen ones);
- per chosen participant: ``calibration/camera_params.json`` for all 16 cameras on an arc about 1 m
  in front of the head, looking at it (OpenCV world→camera; intrinsics for the generated frame size);
- per published camera and video sequence: ``images/cam_<serial>.mp4`` (libx264, yuv420p, keyframe
  interval drawn from the seed) and ``alpha_maps/cam_<serial>.mp4`` (alpha in all three channels);
- NVS: ``pointclouds/frame_<t>.pcd`` (open3d's binary layout) of the head at each timestep;
- mono: ``tracking/flame2023_tracking.npz`` (v1) and ``…_v2.npz`` for train and test sequences
  (test sequences get only tracking, as in the release);
- svfr: ``<pid:03d>/<sequence>_<timestep>_<serial>/rgb.png`` (512 x 512 RGB, timestep unpadded) for the first
  ``svfr_images`` official image keys of each chosen participant: the same textured head, posed per key, in front
  of a plain background of a colour drawn per key (no metadata, no calibration: the release has none).

The content is a 3D scene rendered per camera: an ellipsoidal head textured with matplotlib's
Grace Hopper photograph, lit, moving rigidly over time, composited on an exactly white background
(alpha 0 ⇒ RGB 255, as in the release). Point clouds sample the same surface with the same colours,
so projecting a cloud with the calibration lands on the head in every image. Per-sequence frame
counts differ (``frames`` minus 0–2) and the videos have several keyframes: code tested on the
sample cannot lean on tidy counts or single-keyframe videos.

Deterministic: the same arguments give the same bytes. Files are written under a temporary name
and renamed, ``metadata.json`` last; a rerun with the same arguments skips finished files. Videos and SVFR
images are jobs of the one job runner (:func:`nersemble_zarr.jobs.runner.run_jobs`): threads here by default,
``workers=N`` local processes, ``scheduler=`` a cluster that sees ``out``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.benchmark import (
    BENCHMARK_NAMES,
    MONO,
    MONO_BENCHMARK,
    NVS,
    NVS_BENCHMARK,
    SVFR,
    SVFR_IMAGE_SIZE,
    SVFR_PARTICIPANTS,
    Benchmark,
    SVFRImageKey,
    calibration_path,
    get_benchmark,
    metadata_path,
    pointcloud_path,
    svfr_image_keys,
    svfr_image_path,
    tracking_path,
    video_path,
)
from ..core.errors import NersembleZarrError
from ..jobs.runner import run_jobs
from ..raw import CameraParams, FlameTracking, PointCloud, write_camera_params, write_metadata, write_pcd, write_tracking
from ..raw.video_writer import VideoWriter

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_SCALE",
    "DEFAULT_PARTICIPANTS",
    "SampleError",
    "generate_sample",
    "sample_frame_count",
    "source_frames",
    "sample_resolution",
    "svfr_source_image",
    "DEFAULT_SVFR_IMAGES",
]

#: Upper bound of frames per sequence by default (each sequence gets 0-2 fewer).
DEFAULT_FRAMES = 12
#: Default linear scale of the published resolution (NVS 1100x1604 -> 138x200, mono 512 -> 64).
DEFAULT_SCALE = 1 / 8
#: One participant per benchmark: the first of each.
DEFAULT_PARTICIPANTS: dict[str, tuple[int, ...]] = {
    NVS: NVS_BENCHMARK.participants[:1], MONO: MONO_BENCHMARK.participants[:1], SVFR: SVFR_PARTICIPANTS[:2],
}
#: SVFR images per chosen participant by default (the first keys in official order); ``"all"`` for every key.
DEFAULT_SVFR_IMAGES = 3

#: Head ellipsoid half axes in metres (x: half width, y: half height, z: half depth).
HEAD_AXES = np.array([0.08, 0.115, 0.10])
CAMERA_DISTANCE = 1.0  # metres, camera centre to head centre (jittered ±3 %)
#: x264 quality of the sample videos (visually lossless on this content, PSNR > 40 dB).
SAMPLE_CRF = 16
_PARAMS_FILE = ".nersemble-sample.json"
_TMP_DIR = ".nersemble-sample-tmp"
# Texture: the face region of grace_hopper.jpg (600 x 512) the ellipsoid's front maps onto.
_FACE_CENTRE = (265.0, 190.0)  # x, y pixels
_FACE_HALF = (110.0, 165.0)
_HAIR = np.array([62.0, 52.0, 46.0])
_LIGHT = np.array([0.35, -0.45, 1.0]) / np.linalg.norm([0.35, -0.45, 1.0])  # world, towards the light


class SampleError(NersembleZarrError):
    """Invalid sample arguments, or an output folder holding a sample made with other arguments."""


# ---------------------------------------------------------------------------------------------
# Deterministic randomness: one generator per (purpose, ids), independent of generation order.
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, *keys: object) -> np.random.Generator:
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(words)


def sample_frame_count(seed: int, benchmark: str, participant: int, sequence: str, frames: int) -> int:
    """Frames of one sequence in a sample made with ``frames``: ``frames`` minus 0, 1 or 2 (at least 1)."""
    return max(1, int(frames) - int(_rng(seed, "frames", benchmark, participant, sequence).integers(0, 3)))


def sample_resolution(benchmark: str, scale: float) -> tuple[int, int]:
    """``(height, width)`` of a sample's frames: the published size times ``scale``, rounded to even."""
    b = get_benchmark(benchmark)
    return max(2, 2 * round(b.height * scale / 2)), max(2, 2 * round(b.width * scale / 2))


# ---------------------------------------------------------------------------------------------
# Scene: cameras, head motion, rendering.
# ---------------------------------------------------------------------------------------------


def _camera_slots() -> list[tuple[float, float]]:
    """16 (azimuth, elevation) positions in degrees: three rows of an arc in front of the head."""
    top = [(az, 14.0) for az in (-60, -36, -12, 12, 36, 60)]
    middle = [(az, 0.0) for az in (-48, -24, 0, 24, 48)]
    bottom = [(az, -14.0) for az in (-60, -30, 0, 30, 60)]
    return top + middle + bottom


def _serial_layout() -> dict[str, tuple[float, float]]:
    """Serial → (azimuth, elevation): hold-out cameras where the benchmark describes them."""
    slots = _camera_slots()
    left, centre, right = NVS_BENCHMARK.hold_out_serials  # documented as left, center, right
    mono_centre = MONO_BENCHMARK.hold_out_serials[1]
    fixed = {left: (-48.0, 0.0), centre: (0.0, 0.0), right: (48.0, 0.0), mono_centre: (0.0, -14.0)}
    free = [s for s in slots if s not in fixed.values()]
    layout = dict(fixed)
    for serial in NVS_BENCHMARK.serials:
        if serial not in layout:
            layout[serial] = free.pop(0)
    return {s: layout[s] for s in NVS_BENCHMARK.serials}


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV world→camera 4x4 (x right, y down, z forward) of a camera at ``position`` facing ``target``."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ position
    return w2c


def _make_calibration(seed: int, benchmark: Benchmark, participant: int, height: int, width: int) -> CameraParams:
    """All 16 cameras of a participant; intrinsics for ``height`` x ``width`` frames."""
    rng = _rng(seed, "calibration", benchmark.name, participant)
    # focal length so the head fills about half of the shorter image side at the camera distance
    focal_full = 0.75 * min(benchmark.width, benchmark.height) * CAMERA_DISTANCE / (2 * HEAD_AXES[1])
    sx, sy = width / benchmark.width, height / benchmark.height
    w2c, intr = {}, {}
    for serial, (az, el) in _serial_layout().items():
        a, e = np.radians(az + rng.normal(0, 1.0)), np.radians(el + rng.normal(0, 1.0))
        d = CAMERA_DISTANCE * (1 + rng.uniform(-0.03, 0.03))
        position = d * np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
        target = rng.normal(0, 0.005, size=3)
        w2c[serial] = _look_at(position, target)
        fx = focal_full * (1 + rng.uniform(-0.02, 0.02))
        fy = fx * (1 + rng.uniform(-0.002, 0.002))
        cx = benchmark.width / 2 + rng.normal(0, 0.01 * benchmark.width)
        cy = benchmark.height / 2 + rng.normal(0, 0.01 * benchmark.height)
        # pixel centres at integer coordinates: u_scaled = (u + 0.5) * s - 0.5
        intr[serial] = np.array([[fx * sx, 0.0, (cx + 0.5) * sx - 0.5], [0.0, fy * sy, (cy + 0.5) * sy - 0.5], [0.0, 0.0, 1.0]])
    return CameraParams(world_2_cam=w2c, intrinsics=intr)


@dataclass(frozen=True)
class _Motion:
    """Rigid head motion of one sequence: Euler 'XYZ' angles (radians) and translation (metres) over time."""

    amplitude: np.ndarray  # (6,) pitch, yaw, roll, tx, ty, tz
    period: np.ndarray  # (6,) frames
    phase: np.ndarray  # (6,)

    @staticmethod
    def draw(seed: int, benchmark: str, participant: int, sequence: str) -> _Motion:
        rng = _rng(seed, "motion", benchmark, participant, sequence)
        amplitude = np.array([0.12, 0.30, 0.06, 0.012, 0.008, 0.015]) * rng.uniform(0.5, 1.0, size=6)
        return _Motion(amplitude, rng.uniform(9, 40, size=6), rng.uniform(0, 2 * np.pi, size=6))

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(euler (T, 3), translation (T, 3))`` at frame indices ``t``."""
        t = np.asarray(t, dtype=np.float64)[:, None]
        values = self.amplitude * np.sin(2 * np.pi * t / self.period + self.phase)
        return values[:, :3], values[:, 3:]


def _rotations(euler: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` model→world rotations of Euler 'XYZ' angles, as the official FLAME provider builds them."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("XYZ", euler).as_matrix()


@lru_cache(maxsize=1)
def _texture() -> np.ndarray:
    """matplotlib's Grace Hopper photo, ``(600, 512, 3) float32`` in 0–255."""
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        image = matplotlib.image.imread(f, format="jpg")
    return np.ascontiguousarray(image[..., :3], dtype=np.float32)


def _rows_times(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x @ m`` for many rows and a tiny ``m``, without BLAS: no thread oversubscription when
    several videos render in parallel, and the same bits whatever the BLAS build or thread count."""
    return np.einsum("...i,ij->...j", x, m)


def _surface_colour(q: np.ndarray, normal_world: np.ndarray) -> np.ndarray:
    """Lit colour ``(N, 3) float`` 0–255 of unit-sphere points ``q`` (head coordinates) with world normals."""
    from scipy.ndimage import map_coordinates

    tex = _texture()
    x = _FACE_CENTRE[0] + _FACE_HALF[0] * q[:, 0]
    y = _FACE_CENTRE[1] - _FACE_HALF[1] * q[:, 1]
    photo = np.stack([map_coordinates(tex[..., c], [y, x], order=1, mode="nearest") for c in range(3)], axis=-1)
    front = np.clip(q[:, 2:3] * 3.0 + 0.3, 0.0, 1.0)  # the back of the head is hair
    colour = front * photo + (1 - front) * _HAIR
    shade = 0.55 + 0.45 * np.clip(_rows_times(normal_world, _LIGHT[:, None])[:, 0], 0.0, 1.0)
    return colour * shade[:, None]


def _head_box(cam_rot: np.ndarray, cam_t: np.ndarray, intr: np.ndarray, trans: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel rows/columns ``(v0, v1, u0, u1)`` that can see the head: its bounding sphere's image, padded."""
    centre_cam = cam_rot @ trans + cam_t
    radius = HEAD_AXES.max() * 1.05
    depth = max(centre_cam[2], radius * 1.5)
    uc, vc = (intr @ centre_cam)[:2] / centre_cam[2]
    r_px = intr[0, 0] * radius / np.sqrt(depth**2 - radius**2) * 1.1 + 3
    return (
        int(np.clip(np.floor(vc - r_px), 0, height)), int(np.clip(np.ceil(vc + r_px) + 1, 0, height)),
        int(np.clip(np.floor(uc - r_px), 0, width)), int(np.clip(np.ceil(uc + r_px) + 1, 0, width)),
    )


def _render(
    w2c: np.ndarray, intr: np.ndarray, rot: np.ndarray, trans: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast the textured head: ``(rgb (H, W, 3) uint8, alpha (H, W) uint8)``, white where alpha is 0."""
    cam_rot, cam_t = w2c[:3, :3], w2c[:3, 3]
    centre = -cam_rot.T @ cam_t
    rgb_full = np.full((height, width, 3), 255, np.uint8)
    alpha_full = np.zeros((height, width), np.uint8)
    v0, v1, u0, u1 = _head_box(cam_rot, cam_t, intr, trans, height, width)
    if v1 <= v0 or u1 <= u0:
        return rgb_full, alpha_full
    v, u = np.mgrid[v0:v1, u0:u1].astype(np.float64)
    rays_cam = np.stack([(u - intr[0, 2]) / intr[0, 0], (v - intr[1, 2]) / intr[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    # into head coordinates scaled to the unit sphere: origin o, direction d (row vectors: x_world = x_cam R)
    to_head = rot.T / HEAD_AXES[:, None]
    o = to_head @ (centre - trans)
    d = _rows_times(rays_cam, cam_rot @ to_head.T)
    dd = np.einsum("ij,ij->i", d, d)
    od = _rows_times(d, o[:, None])[:, 0]
    closest_sq = np.maximum(o @ o - od**2 / dd, 0.0)
    # soft edge about one pixel wide: pixel footprint at the head, in unit-sphere units
    edge = np.linalg.norm(centre - trans) / intr[0, 0] / HEAD_AXES.mean()
    alpha_f = np.clip((1.0 - np.sqrt(closest_sq)) / edge + 0.5, 0.0, 1.0)
    alpha = np.round(alpha_f * 255).astype(np.uint8)
    rgb = np.full((len(alpha), 3), 255, np.uint8)
    inside = np.flatnonzero(alpha)
    if inside.size:
        di, odi = d[inside], od[inside]
        disc = np.maximum(odi**2 - dd[inside] * (o @ o - 1.0), 0.0)
        s = (-odi - np.sqrt(disc)) / dd[inside]
        q = o + s[:, None] * di
        q /= np.linalg.norm(q, axis=1, keepdims=True)  # rim rays that miss: nearest point on the sphere
        normal = _rows_times(q / HEAD_AXES, rot.T)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        colour = _surface_colour(q, normal)
        a = alpha[inside, None].astype(np.float64) / 255.0
        rgb[inside] = np.clip(np.round(a * colour + (1 - a) * 255.0), 0, 255).astype(np.uint8)
    rgb_full[v0:v1, u0:u1] = rgb.reshape(v1 - v0, u1 - u0, 3)
    alpha_full[v0:v1, u0:u1] = alpha.reshape(v1 - v0, u1 - u0)
    return rgb_full, alpha_full


def _head_points(seed: int, participant: int, sequence: str, n: int) -> np.ndarray:
    """``(n, 3)`` unit-sphere directions covering the front and sides of the head (as multi-view stereo sees it)."""
    rng = _rng(seed, "points", participant, sequence)
    q = rng.normal(size=(int(n * 1.6), 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q[q[:, 2] > -0.35][:n]


def _pointcloud(seed: int, participant: int, sequence: str, timestep: int, base: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> PointCloud:
    rng = _rng(seed, "cloud", participant, sequence, timestep)
    keep = base[rng.random(len(base)) > rng.uniform(0.0, 0.04)]  # counts differ per timestep
    local = keep * HEAD_AXES * (1 + rng.normal(0, 0.002, size=(len(keep), 1)))
    points = _rows_times(local, rot.T) + trans
    normals = _rows_times(keep / HEAD_AXES, rot.T)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colours = np.clip(np.round(_surface_colour(keep, normals)), 0, 255).astype(np.uint8)
    return PointCloud(points=points.astype(np.float32), colors=colours, normals=normals.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# FLAME tracking.
# ---------------------------------------------------------------------------------------------


def _tracking(seed: int, participant: int, sequence: str, n_frames: int, version: int) -> FlameTracking:
    """Plausible small FLAME 2023 parameters; the rigid part follows the sequence's head motion."""
    t = np.arange(n_frames)
    euler, trans = _Motion.draw(seed, MONO, participant, sequence).at(t)
    ident = _rng(seed, "identity", participant)
    shape = ident.normal(0, 0.6, size=(1, 300)) / (1 + np.arange(300) / 8)
    rng = _rng(seed, "expression", participant, sequence)
    k = np.arange(100)
    expression = (0.8 / (1 + k / 4)) * np.sin(2 * np.pi * t[:, None] / rng.uniform(8, 30, size=100) + rng.uniform(0, 6.3, size=100))
    jaw = np.zeros((n_frames, 3))
    jaw[:, 0] = 0.12 * (1 + np.sin(2 * np.pi * t / rng.uniform(10, 20) + rng.uniform(0, 6.3))) / 2
    neck = 0.04 * np.sin(2 * np.pi * t[:, None] / rng.uniform(15, 40, size=3) + rng.uniform(0, 6.3, size=3))
    gaze = 0.1 * np.sin(2 * np.pi * t[:, None] / rng.uniform(10, 30, size=3) + rng.uniform(0, 6.3, size=3))
    eyes = np.concatenate([gaze, gaze], axis=1)
    scale = np.array([[1.0 + rng.uniform(-0.02, 0.02)]])
    if version == 2:  # the re-tracked release: the same sequence, slightly different fits
        v2 = _rng(seed, "tracking_v2", participant, sequence)
        shape = shape + v2.normal(0, 0.01, size=shape.shape)
        expression = expression * 1.03 + v2.normal(0, 0.01, size=expression.shape)
        euler = euler + v2.normal(0, 0.003, size=euler.shape)
        trans = trans + v2.normal(0, 0.0005, size=trans.shape)
        jaw = jaw + np.abs(v2.normal(0, 0.005, size=jaw.shape)) * [1, 0, 0]
    f32 = np.float32
    return FlameTracking(
        shape=shape.astype(f32), expression=expression.astype(f32), rotation=euler.astype(f32),
        rotation_matrices=_rotations(euler.astype(f32)).astype(f32), translation=trans.astype(f32), jaw=jaw.astype(f32),
        frames=t.astype(np.int32), scale=scale.astype(f32), neck=neck.astype(f32), eyes=eyes.astype(f32),
    )


# ---------------------------------------------------------------------------------------------
# Writing: atomic files, resumable, parallel over videos.
# ---------------------------------------------------------------------------------------------


class _Writer:
    """Writes files below ``out`` atomically (temp name in ``out/.tmp``, then rename); skips finished ones."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = out / _TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._counter = 0
        self._lock = threading.Lock()
        self.written = 0
        self.skipped = 0

    def exists(self, rel: str) -> bool:
        return (self.out / rel).is_file()

    def skip(self, n: int = 1) -> None:
        with self._lock:
            self.skipped += n

    def temp_for(self, rel: str) -> Path:
        """A temporary name unique to ``rel`` (jobs in other processes write below the same folder)."""
        return self.tmp / f"{zlib.crc32(rel.encode()):08x}_{len(rel)}_{Path(rel).name}"

    def commit(self, temp: Path, rel: str) -> None:
        final = self.out / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        with self._lock:
            self.written += 1

    def write(self, rel: str, produce: Callable[[Path], None]) -> None:
        if self.exists(rel):
            self.skip()
            return
        temp = self.temp_for(rel)
        produce(temp)
        self.commit(temp, rel)

    def finish(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(frozen=True)
class _VideoTask:
    benchmark: str
    participant: int
    sequence: str
    serial: str
    n_frames: int


def _head_poses(seed: int, benchmark: str, participant: int, sequence: str, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rotations (T, 3, 3), translations (T, 3))`` model→world of the head in a sequence."""
    if benchmark == MONO:  # the video shows the tracked head pose (v2, the current tracking)
        tracking = _tracking(seed, participant, sequence, n_frames, 2)
        return tracking.rotation_matrices.astype(np.float64), tracking.translation.astype(np.float64)
    euler, transl = _Motion.draw(seed, benchmark, participant, sequence).at(np.arange(n_frames))
    return _rotations(euler), transl


def source_frames(
    benchmark: str,
    participant: int,
    sequence: str,
    serial: str,
    *,
    frames: int = DEFAULT_FRAMES,
    scale: float = DEFAULT_SCALE,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The exact frames a sample's videos of one camera were encoded from, in order.

    Yields ``(rgb (H, W, 3) uint8, alpha (H, W) uint8)`` per timestep, ``H, W`` from
    :func:`sample_resolution`; RGB is 255 wherever alpha is 0. Arguments as for
    :func:`generate_sample`. Lets tests compare decoded frames with their source.
    """
    b = get_benchmark(benchmark)
    height, width = sample_resolution(benchmark, scale)
    calib = _make_calibration(seed, b, participant, height, width)
    n = sample_frame_count(seed, benchmark, participant, sequence, frames)
    rots, transl = _head_poses(seed, benchmark, participant, sequence, n)
    w2c, intr = calib.world_2_cam[serial], calib.intrinsics[serial]
    for t in range(n):
        yield _render(w2c, intr, rots[t], transl[t], height, width)


def _write_videos(writer: _Writer, task: _VideoTask, frames: int, scale: float, seed: int,
                  advance: Callable[[int], None]) -> None:
    b = get_benchmark(task.benchmark)
    rel_rgb = f"{task.benchmark}/{video_path(task.participant, task.sequence, task.serial, 'images')}"
    rel_alpha = f"{task.benchmark}/{video_path(task.participant, task.sequence, task.serial, 'alpha_maps')}"
    if writer.exists(rel_rgb) and writer.exists(rel_alpha):
        writer.skip(2)
        return
    height, width = sample_resolution(task.benchmark, scale)
    gop_rng = _rng(seed, "gop", task.benchmark, task.participant, task.sequence, task.serial)
    gop_rgb, gop_alpha = (int(g) for g in gop_rng.integers(3, 9, size=2))
    tmp_rgb, tmp_alpha = writer.temp_for(rel_rgb), writer.temp_for(rel_alpha)
    with VideoWriter(tmp_rgb, width, height, b.fps, crf=SAMPLE_CRF, gop=gop_rgb) as rgb_out, VideoWriter(
        tmp_alpha, width, height, b.fps, crf=SAMPLE_CRF, gop=gop_alpha
    ) as alpha_out:
        for rgb, alpha in source_frames(
            task.benchmark, task.participant, task.sequence, task.serial, frames=frames, scale=scale, seed=seed
        ):
            rgb_out.write(rgb)
            alpha_out.write(np.repeat(alpha[:, :, None], 3, axis=2))  # grey video: alpha in all channels
            advance(1)
    writer.commit(tmp_rgb, rel_rgb)
    writer.commit(tmp_alpha, rel_alpha)


# ---------------------------------------------------------------------------------------------
# SVFR: one still image per key.
# ---------------------------------------------------------------------------------------------

#: Focal length in pixels of the SVFR sample camera (1 m from the head): the face fills most of the 512 px crop.
_SVFR_FOCAL = 1500.0


def svfr_source_image(key: SVFRImageKey, *, seed: int = 0) -> np.ndarray:
    """The exact pixels of a sample's SVFR ``rgb.png`` for ``key``: ``(512, 512, 3) uint8``.

    The textured head of the video benchmarks, turned by a pose drawn from ``(seed, key)`` (yaw up to ±35°,
    pitch ±12°, roll ±6°), seen from 1 m, composited over a plain background colour drawn from the same.
    """
    key = SVFRImageKey(*key)
    rng = _rng(seed, "svfr", key.participant, key.download_folder())
    height, width = SVFR_IMAGE_SIZE
    euler = rng.uniform(-1, 1, size=3) * np.radians([12.0, 35.0, 6.0])
    trans = rng.normal(0, 0.004, size=3)
    w2c = _look_at(np.array([0.0, 0.0, CAMERA_DISTANCE]), np.zeros(3))
    intr = np.array([[_SVFR_FOCAL, 0.0, (width - 1) / 2], [0.0, _SVFR_FOCAL, (height - 1) / 2], [0.0, 0.0, 1.0]])
    rgb, alpha = _render(w2c, intr, _rotations(euler[None])[0], trans, height, width)
    background = rng.uniform(40, 215, size=3)
    a = alpha[..., None].astype(np.float64) / 255.0
    # _render composited on white: swap the white for the background colour
    out = rgb.astype(np.float64) - (1 - a) * 255.0 + (1 - a) * background
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _write_svfr_image(writer: _Writer, key: SVFRImageKey, seed: int) -> None:
    from PIL import Image

    rel = f"{SVFR}/{svfr_image_path(key)}"
    writer.write(rel, lambda path: Image.fromarray(svfr_source_image(key, seed=seed)).save(path, format="PNG"))


@dataclass(frozen=True)
class _SVFRTask:
    key: SVFRImageKey
    n_frames: int = 1


@dataclass(frozen=True)
class _Job:
    """One unit of sample work for the job runner: a camera's two videos or one SVFR image (picklable)."""

    out: str
    task: _VideoTask | _SVFRTask
    frames: int
    scale: float
    seed: int


def _run_job(job: _Job, advance: Callable[[int], None]) -> tuple[int, int]:
    """Write one job's files below ``job.out``; returns ``(written, skipped)`` file counts."""
    writer = _Writer(Path(job.out))
    if isinstance(job.task, _SVFRTask):
        _write_svfr_image(writer, job.task.key, job.seed)
    else:
        _write_videos(writer, job.task, job.frames, job.scale, job.seed, advance)
    return writer.written, writer.skipped


def _metadata(seed: int, benchmark: Benchmark, frames: int) -> dict:
    """``metadata.json`` listing every participant of the benchmark with the sample's frame counts."""
    if benchmark.name == NVS:
        return {
            "sequences": {
                str(p): {"sequence_name": s, "timesteps": list(range(sample_frame_count(seed, NVS, p, s, frames)))}
                for p in benchmark.participants
                for s in benchmark.sequences[p]
            }
        }
    return {
        "participants_metadata": {
            str(p): {"sequences_metadata": {s: {"n_frames": sample_frame_count(seed, MONO, p, s, frames)} for s in benchmark.sequences[p]}}
            for p in benchmark.participants
        }
    }


def _participants(name: str) -> tuple[int, ...]:
    return SVFR_PARTICIPANTS if name == SVFR else get_benchmark(name).participants


def _describe(task: _VideoTask | _SVFRTask) -> str:
    if isinstance(task, _SVFRTask):
        return f"svfr image {svfr_image_path(task.key)}"
    return f"{task.benchmark} {task.participant:03d} {task.sequence} camera {task.serial} videos"


def _resolve(
    benchmarks: Iterable[str] | str, participants: Iterable[int] | None, svfr_all: bool = False,
) -> dict[str, tuple[int, ...]]:
    names = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    known = (*BENCHMARK_NAMES, SVFR)
    if names == ["all"]:
        names = list(known)
    for n in names:
        if n not in known:
            raise SampleError(f"unknown benchmark {n!r}: expected {', '.join(known)} or all")
    if participants is None:
        return {n: SVFR_PARTICIPANTS if n == SVFR and svfr_all else DEFAULT_PARTICIPANTS[n] for n in names}
    wanted = [int(p) for p in participants]
    chosen = {n: tuple(p for p in _participants(n) if p in wanted) for n in names}
    unknown = [p for p in wanted if not any(p in chosen[n] for n in names)]
    if unknown:
        offered = "; ".join(f"{n}: {', '.join(map(str, _participants(n)))}" for n in names)
        raise SampleError(f"participant(s) {', '.join(map(str, unknown))} not in the chosen benchmark(s) ({offered})")
    return chosen


def generate_sample(
    out: str | os.PathLike,
    *,
    benchmarks: Sequence[str] | str = BENCHMARK_NAMES,
    participants: Iterable[int] | None = None,
    frames: int = DEFAULT_FRAMES,
    scale: float = DEFAULT_SCALE,
    seed: int = 0,
    pointclouds: str = "all",
    points: int | None = None,
    svfr_images: int | str = DEFAULT_SVFR_IMAGES,
    flame_model_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: object = None,
    threads: int | None = None,
    progress: bool = False,
) -> Path:
    """Write a sample benchmark folder ``out/<benchmark>/…`` in the official layout; returns ``out``.

    ``benchmarks``: names (``"nvs"``, ``"mono_flame_avatar"``, ``"svfr"``) or ``"all"`` (the three). ``participants``:
    ids to generate files for (each goes to the benchmark(s) that have it); ``None`` → the first
    participant of each video benchmark (388 and 393) and the first two of SVFR (17, 60). ``svfr_images``: SVFR
    images per participant (the first keys in official order), or ``"all"`` (every key; with ``participants=None``
    all 20 participants: the 391 images). ``frames``: frames per sequence at most (each gets
    ``frames`` minus 0–2, see :func:`sample_frame_count`). ``scale``: linear scale of the published
    resolution (1 = 1100x1604 / 512x512; the default 1/8 gives 138x200 / 64x64; sizes are rounded
    to even). ``seed``: all content and file bytes are a function of the arguments. ``pointclouds``:
    ``"all"`` timesteps or only the ``"first"`` (NVS). ``points``: points per NVS cloud (each timestep keeps
    96–100% of them; default ``max(400, 60000 · scale²)``; real clouds have 100k–1M). ``flame_model_dir``: also write a synthetic
    ``flame2023.pkl`` there. Videos and SVFR images are jobs of :func:`~nersemble_zarr.jobs.runner.run_jobs`:
    ``threads`` threads here (default: up to 4 by CPU count), or ``workers=N`` local worker processes, or
    ``scheduler=`` an existing cluster (its workers must see ``out``).
    ``progress``: show a progress bar (frames, rate, ETA) on stderr.

    Raises :class:`SampleError` for invalid arguments or an ``out`` that holds a sample made with
    other arguments.
    """
    if int(frames) < 1:
        raise SampleError(f"frames must be at least 1, got {frames}")
    if not 0 < float(scale) <= 1:
        raise SampleError(f"scale must be in (0, 1], got {scale}")
    if pointclouds not in ("first", "all"):
        raise SampleError(f"pointclouds must be 'first' or 'all', got {pointclouds!r}")
    if points is not None and int(points) < 1:
        raise SampleError(f"points must be at least 1, got {points}")
    if not (svfr_images == "all" or isinstance(svfr_images, int) and not isinstance(svfr_images, bool)
            and svfr_images >= 1):
        raise SampleError(f"svfr_images must be at least 1 or 'all', got {svfr_images!r}")
    frames, scale, seed = int(frames), float(scale), int(seed)
    chosen = _resolve(benchmarks, participants, svfr_all=svfr_images == "all")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = {"frames": frames, "scale": scale, "seed": seed, "format": 1}
    if points is not None:  # recorded only when given: samples made without it keep their params
        params["points"] = int(points)
    params_file = out / _PARAMS_FILE
    if params_file.is_file():
        previous = json.loads(params_file.read_text())
        if previous != params:
            raise SampleError(
                f"{out} holds a sample made with {previous}, not {params}: choose another folder or delete it first"
            )
    else:
        existing = [n for n in (*BENCHMARK_NAMES, SVFR) if (out / n).exists()]
        if existing:
            raise SampleError(
                f"{out} already holds {', '.join(existing)} data not made by this generator: refusing to mix "
                f"generated files into it; choose an empty folder"
            )
        params_file.write_text(json.dumps(params) + "\n")
    writer = _Writer(out)

    # small files first (calibration, tracking, point clouds), then the videos and SVFR images in parallel
    tasks: list[_VideoTask | _SVFRTask] = []
    for name, pids in chosen.items():
        if name == SVFR:
            for p in pids:
                keys = svfr_image_keys(p)
                tasks.extend(_SVFRTask(k) for k in (keys if svfr_images == "all" else keys[: int(svfr_images)]))
            continue
        b = get_benchmark(name)
        root = f"{name}/"
        height, width = sample_resolution(name, scale)
        for p in pids:
            calib = _make_calibration(seed, b, p, height, width)
            writer.write(root + calibration_path(p), lambda path, c=calib: write_camera_params(path, c))
            for seq in b.sequences[p]:
                n = sample_frame_count(seed, name, p, seq, frames)
                if b.has_tracking:
                    for version in (1, 2):
                        writer.write(
                            root + tracking_path(p, seq, version),
                            lambda path, s=seq, n=n, v=version, p=p: write_tracking(path, _tracking(seed, p, s, n, v)),
                        )
                if seq not in b.video_sequences(p):
                    continue  # mono test sequences: tracking only, as released
                if b.has_pointclouds:
                    rots, transl = _head_poses(seed, name, p, seq, n)
                    base = _head_points(seed, p, seq, int(points) if points else max(400, round(60000 * scale**2)))
                    for t in range(n if pointclouds == "all" else 1):
                        writer.write(
                            root + pointcloud_path(p, seq, t),
                            lambda path, t=t, s=seq, p=p, base=base, r=rots, tr=transl: write_pcd(
                                path, _pointcloud(seed, p, s, t, base, r[t], tr[t]), encoding="binary"
                            ),
                        )
                for serial in b.train_serials:
                    tasks.append(_VideoTask(name, p, seq, serial, n))
    jobs = [_Job(str(out), t, frames, scale, seed) for t in tasks]

    def on_result(outcome) -> None:
        if not outcome.ok:  # the first failure stops the run (queued jobs are dropped; a rerun writes them)
            raise outcome.exception if isinstance(outcome.exception, NersembleZarrError) else SampleError(
                f"sample: {_describe(outcome.job.task)} failed: {outcome.error}")

    if workers is None and scheduler is None and threads is None:
        threads = min(4, os.cpu_count() or 1)
    run_jobs(
        jobs, _run_job, workers=workers, scheduler=scheduler, threads=threads, on_result=on_result,
        progress=progress, desc="sample", frames_of=lambda j: j.task.n_frames, live_progress=True, name="sample",
    )
    # metadata last: its presence marks a benchmark folder complete (SVFR has none)
    for name in chosen:
        if name == SVFR:
            continue
        writer.write(f"{name}/{metadata_path()}", lambda path, b=get_benchmark(name): write_metadata(path, _metadata(seed, b, frames)))
    if flame_model_dir is not None:
        from .flame_model import write_synthetic_flame_model

        write_synthetic_flame_model(flame_model_dir, seed=seed)
    writer.finish()
    return out


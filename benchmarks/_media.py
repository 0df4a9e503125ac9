"""Photo-like full-resolution test videos for the convert/codec benchmarks.

Uniform noise compresses nothing and flat colour compresses everything; NeRSemble frames are a
head on a white background (background already removed) with smooth skin shading and fine hair
texture, stored as H.264. These frames imitate that mix so codec sizes and speeds are in the right
range, and they go through a real H.264 encode/decode like the released videos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def head_frame(t: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (H, W, 3) uint8, alpha (H, W) uint8)`` of a moving textured 'head' on white."""
    rng = np.random.default_rng(seed * 100003 + t)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * (0.5 + 0.02 * np.sin(t / 9)), width * (0.5 + 0.03 * np.cos(t / 7))
    ry, rx = height * 0.42, width * 0.40
    d = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    inside = d < 1.0
    shade = 0.75 + 0.25 * np.cos(np.sqrt(np.clip(d, 0, 1)) * np.pi / 2)
    skin = np.stack([200 * shade, 150 * shade, 125 * shade], axis=-1)
    hair = (y < cy - ry * 0.3) & inside
    texture = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).repeat(4, 0).repeat(4, 1)[:height, :width]
    skin[hair] = np.stack([60 + 25 * texture[hair], 45 + 20 * texture[hair], 35 + 15 * texture[hair]], axis=-1)
    # skin pores / sensor noise at 1-2 px scale, as in the 1604x1100 captures
    fine = rng.normal(0, 1, (height // 2 + 1, width // 2 + 1, 3)).repeat(2, 0).repeat(2, 1)[:height, :width]
    skin += 10.0 * fine + rng.normal(0, 4.0, skin.shape)
    skin *= (1.0 + 0.15 * np.sin(x / 17.0 + t / 5.0) * np.sin(y / 23.0))[..., None]
    rgb = np.where(inside[..., None], skin, 255.0)
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha


def write_head_videos(folder: Path, n_frames: int, height: int = 1604, width: int = 1100, fps: float = 73.0, crf: int = 18,
                      seed: int = 0) -> tuple[Path, Path]:
    """Write ``cam.mp4`` (RGB) and ``alpha.mp4`` (alpha as grey RGB) into ``folder``; returns both paths."""
    from nersemble_zarr.raw.video_writer import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    rgb_path, alpha_path = folder / "cam.mp4", folder / "alpha.mp4"
    with VideoWriter(str(rgb_path), width, height, fps, crf=crf) as w_rgb, \
            VideoWriter(str(alpha_path), width, height, fps, crf=crf) as w_alpha:
        for t in range(n_frames):
            rgb, alpha = head_frame(t, height, width, seed)
            w_rgb.write(rgb)
            w_alpha.write(np.repeat(alpha[..., None], 3, axis=-1))
    return rgb_path, alpha_path



def build_nvs_raw(root: Path, rgb: Path, alpha: Path, n_cameras: int, n_frames: int) -> tuple[int, str, list[str], list[Path]]:
    """An NVS raw folder under ``root`` whose first ``n_cameras`` train cameras of the first participant's
    first sequence hold the videos ``rgb``/``alpha`` (hard links), with metadata of ``n_frames`` frames and a
    plausible calibration. Returns ``(participant, sequence, serials, every video path)``."""
    from nersemble_zarr.core import benchmark as bm
    from nersemble_zarr.raw import CameraParams, write_camera_params, write_metadata

    b = bm.NVS_BENCHMARK
    p = b.participants[0]
    s = b.sequences[p][0]
    bench = root / bm.NVS
    bench.mkdir(parents=True)
    write_metadata(bench / bm.metadata_path(), {
        "sequences": {str(q): {"sequence_name": b.sequences[q][0], "timesteps": list(range(n_frames))} for q in b.participants}
    })
    calib = bench / bm.calibration_path(p)
    calib.parent.mkdir(parents=True)
    k = np.array([[2000.0, 0, 550], [0, 2000.0, 802], [0, 0, 1]])
    write_camera_params(calib, CameraParams({x: np.eye(4) for x in bm.SERIALS}, {x: k for x in bm.SERIALS}))
    serials = list(b.train_serials[:n_cameras])
    videos = []
    for serial in serials:
        for kind, src in (("images", rgb), ("alpha_maps", alpha)):
            dst = bench / bm.video_path(p, s, serial, kind)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
            videos.append(dst)
    return p, s, serials, videos

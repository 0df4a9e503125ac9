"""Drawing a FLAME mesh (9976 faces) over a frame, headless: our z-buffered numpy rasterizer vs a depth-sorted,
shaded matplotlib ``PolyCollection`` (painter's algorithm, Agg), at 512x512 (mono) and 1604x1100 (NVS).

Both draw the same shaded, semi-transparent mesh (opacity 0.6, headlight Lambert shade per face) over the same
frame and return the picture as a uint8 array. They agree when opaque (params: pixels that differ at opacity 1);
semi-transparent they differ on the whole mesh: the PolyCollection blends every hidden layer too (the back of the
head shows through), the z-buffer blends only the visible surface once. The PolyCollection is the baseline of each size. The point
cloud case draws N points (z-ordered squares) with :func:`nersemble_zarr.read.show.draw_points`.
The mesh is the synthetic FLAME-2023-shaped model's template, filling the frame as a head does in the data.

    .venv/bin/python benchmarks/show.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Harness  # noqa: E402

from nersemble_zarr.read.show import MESH_COLOR, MESH_OPACITY, draw_mesh, draw_points, face_shading, project_points  # noqa: E402
from nersemble_zarr.testing.flame_model import synthetic_flame_arrays  # noqa: E402


def _camera(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A camera 1 m in front of the head (OpenCV), the head ~75 % of the shorter side as in the sample."""
    w2c = np.eye(4)
    w2c[:3, :3] = np.diag([1.0, -1.0, -1.0])  # at world z = +1 looking along -z: x right, y down (world -y)
    w2c[:3, 3] = [0.0, 0.0, 1.0]
    f = 0.75 * min(height, width) / (2 * 0.105)
    return w2c, np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def polycollection(frame: np.ndarray, vertices: np.ndarray, faces: np.ndarray, w2c: np.ndarray, k: np.ndarray,
                   opacity: float = MESH_OPACITY) -> np.ndarray:
    """The baseline: faces sorted far to near, shaded, drawn as one PolyCollection over the frame with Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    h, w = frame.shape[:2]
    uv, depth = project_points(vertices, w2c, k)
    cam = np.einsum("ij,nj->ni", w2c[:3, :3], vertices) + w2c[:3, 3]
    shade = face_shading(cam, faces)
    order = np.argsort(-depth[faces].mean(axis=1))
    colors = np.concatenate([shade[order, None] * MESH_COLOR / 255.0, np.full((len(order), 1), opacity)], axis=1)
    fig = Figure(figsize=((w + 0.01) / 100, (h + 0.01) / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(frame, interpolation="none")
    ax.add_collection(PolyCollection(uv[faces[order]], facecolors=colors, edgecolors="none", antialiased=False))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:h, :w, :3].copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    arrays = synthetic_flame_arrays(0)
    vertices, faces = np.asarray(arrays["v_template"], dtype=np.float64), np.asarray(arrays["f"], dtype=np.int64)
    h_ = Harness("show", description=__doc__.splitlines()[0],
                 params={"faces": int(len(faces)), "vertices": int(len(vertices)), "uptime_before": uptime})
    rng = np.random.default_rng(0)
    for height, width in ((512, 512), (1604, 1100)):
        frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        w2c, k = _camera(height, width)
        group = f"mesh {width}x{height}"
        h_.time("PolyCollection, depth-sorted (Agg)", lambda: polycollection(frame, vertices, faces, w2c, k),
                group=group, repeats=args.repeats, warmup=1, items=1, unit="frame", baseline=True)
        h_.time("z-buffer rasterizer (numpy)", lambda: draw_mesh(frame, vertices, faces, w2c, k),
                group=group, repeats=args.repeats, warmup=1, items=1, unit="frame")
        ours, covered = draw_mesh(frame, vertices, faces, w2c, k)
        theirs = polycollection(frame, vertices, faces, w2c, k)
        diff = np.abs(ours.astype(int) - theirs.astype(int)).max(axis=-1) > 8
        h_.params[f"{group}: pixels that differ by > 8 levels"] = round(float(diff.mean()), 4)
        h_.params[f"{group}: mesh coverage"] = round(float(covered.mean()), 4)
        # opaque, both agree but for edges and painter's-order mistakes: the semi-transparent difference is the
        # PolyCollection blending every hidden layer (back of the head, eyeballs) too, the z-buffer only the visible one
        opaque = np.abs(draw_mesh(frame, vertices, faces, w2c, k, opacity=1.0)[0].astype(int)
                        - polycollection(frame, vertices, faces, w2c, k, opacity=1.0).astype(int)).max(axis=-1) > 8
        h_.params[f"{group}: pixels that differ by > 8 levels at opacity 1"] = round(float(opaque.mean()), 4)
        points = vertices[rng.integers(0, len(vertices), size=100_000)] + rng.normal(0, 0.002, size=(100_000, 3))
        colors = rng.integers(0, 256, size=(100_000, 3), dtype=np.uint8)
        h_.time("draw_points 100k points (numpy)", lambda: draw_points(frame, points, colors, w2c, k),
                group=f"points {width}x{height}", repeats=args.repeats, warmup=1, items=1, unit="frame")
    h_.params["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    h_.finish()


if __name__ == "__main__":
    main()

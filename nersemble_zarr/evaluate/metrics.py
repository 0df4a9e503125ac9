"""Per-frame image metrics as the NeRSemble paper's evaluation computes them (pure functions).

Every function takes one prediction and its ground truth as ``(H, W, 3) uint8`` RGB (0–255) arrays of the
same shape and returns one Python float. A per-video value is the mean over frames of the per-frame value
(as ``scripts/evaluate/evaluate_nersemble.py`` of the ``nersemble`` repository computes it).

* :func:`psnr`: torchmetrics' ``peak_signal_noise_ratio`` on ``[0, 1]`` images with ``data_range=1``,
  i.e. ``10 · log10(1 / MSE)`` with MSE over all pixels and channels. Identical frames give ``+inf``
  (no cap; the per-video mean of a video with an identical frame is then ``inf`` too, and JSON writes
  ``Infinity``).
* :func:`ssim`: torchmetrics' ``structural_similarity_index_measure`` with ``data_range=1``, a Gaussian
  window of 11 × 11 (σ = 1.5), ``k1=0.01, k2=0.03``, reflect padding, mean over the whole image and all
  channels. Computed here with numpy alone (no torch or scipy needed): the Gaussian applied separably (columns,
  then rows) as small float32 matrix products on bands of 16 rows, so the 12 moment maps stay in cache;
  equal to torchmetrics within 1e-6 and, away from the 5-pixel border that the two libraries pad
  differently, to scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)`` (both are tested to 1e-4).
* :func:`alpha_blend_white`: the paper's "masked" inputs: ``uint8(clip((α·x + (1 − α)·1) · 255))`` with
  ``α = alpha / 255`` (truncated to uint8 as the paper's ``perform_alpha_blending``); applied to the
  prediction and to the ground truth with the ground truth's alpha.
* :class:`LPIPS` (AlexNet, torchmetrics' linear layers, ``normalize=True``) and :class:`JODVideo` (pyfvvdp)
  need files or an extra; see their docstrings.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: SSIM constants of the paper's evaluation (torchmetrics defaults).
SSIM_SIGMA = 1.5
SSIM_KERNEL = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: JOD: the display model and the lowest frame rate the paper's evaluation passes to pyfvvdp.
JOD_DISPLAY = "standard_4k"
JOD_MIN_FPS = 4.1
#: torchvision's file name of its ImageNet AlexNet weights (the LPIPS backbone), in ``torch.hub``'s cache.
ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"


class MetricUnavailable(RuntimeError):
    """A metric cannot run here (a package or weights file is missing); the message says what to provide."""


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"prediction and ground truth must both be (H, W, 3); found {pred.shape} and {gt.shape}")
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        raise ValueError(f"prediction and ground truth must be uint8; found {pred.dtype} and {gt.dtype}")


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared error of ``(H, W, 3) uint8`` frames on the ``[0, 1]`` scale (float64)."""
    _check_pair(pred, gt)
    d = pred.astype(np.int16) - gt.astype(np.int16)
    d = d.reshape(-1).astype(np.float32)
    return float(np.dot(d, d)) / (d.size * 255.0 * 255.0)


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB of ``(H, W, 3) uint8`` frames on the ``[0, 1]`` scale (``data_range=1``); ``+inf`` if identical."""
    m = mse(pred, gt)
    return float("inf") if m == 0.0 else float(10.0 * np.log10(1.0 / m))


def alpha_blend_white(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``image (H, W, 3) uint8`` blended onto white with ``alpha (H, W) or (H, W, 1) uint8`` → ``(H, W, 3) uint8``.

    Exactly the paper's ``perform_alpha_blending``: float64 ``a·x + (1 − a)``, times 255, clipped, truncated."""
    if alpha.ndim == 2:
        alpha = alpha[..., None]
    if image.dtype != np.uint8 or alpha.dtype != np.uint8 or image.shape[:2] != alpha.shape[:2]:
        raise ValueError(f"alpha blending needs uint8 (H, W, 3) and (H, W[, 1]); found {image.dtype}{image.shape} "
                         f"and {alpha.dtype}{alpha.shape}")
    a = alpha / 255.0
    out = (a * (image / 255.0) + (1.0 - a)) * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def gaussian_window() -> np.ndarray:
    """torchmetrics' SSIM window ``_gaussian(11, 1.5)`` as ``(11,) float64`` weights summing to 1."""
    dist = np.arange((1 - SSIM_KERNEL) / 2, (1 + SSIM_KERNEL) / 2, 1.0)
    g = np.exp(-((dist / SSIM_SIGMA) ** 2) / 2)
    return g / g.sum()


#: SSIM works in bands of this many output rows (+ 10 halo rows) and the horizontal pass in tiles of this
#: many output columns: the Gaussian becomes small dense matrix products (BLAS) on data that stays in cache.
#: 16/32 keep every product under OpenBLAS's threading threshold (m·n·k < 2·2^18) at widths up to ~1250
#: (measured at 1100x1604 on 2 busy cores: 32/32 or 16/64 run 2x slower, BLAS's own threads contending).
SSIM_BAND_ROWS = 16
SSIM_TILE_COLS = 32


@functools.lru_cache(maxsize=64)
def _window_matrix(n: int) -> np.ndarray:
    """``(n, n + 10) float32``: row ``i`` holds the 11 Gaussian weights at columns ``i .. i + 10`` (a valid
    correlation of ``n + 10`` samples as one matrix product). Read-only (shared between threads)."""
    m = np.zeros((n, n + SSIM_KERNEL - 1), np.float64)
    g = gaussian_window()
    for i in range(n):
        m[i, i:i + SSIM_KERNEL] = g
    m = m.astype(np.float32)
    m.flags.writeable = False
    return m


def _ssim_band(xp: np.ndarray, yp: np.ndarray, r0: int, r1: int, out: np.ndarray | None) -> float:
    """Sum (float64) of the SSIM map over output rows ``r0:r1`` and all channels.

    ``xp``/``yp``: the reflect-padded frames as ``(3, H + 10, W + 10) uint8`` views. ``out``: ``(3, H, W)
    float32`` to also store the map rows into, or None. Four maps per channel are filtered: ``x``, ``y``,
    ``x² + y²`` and ``2xy`` (the SSIM formula needs only the sum of the variances and twice the covariance).
    Vertical pass per map and channel: ``(bh, bh+10) @ (bh+10, W+10)``; horizontal pass per tile of columns:
    ``(12·bh, t+10) @ (t+10, t)``; float32 throughout (each product small enough that OpenBLAS runs it on the
    calling thread)."""
    pad = SSIM_KERNEL // 2
    bh, wp = r1 - r0, xp.shape[2]
    w = wp - 2 * pad
    m = np.empty((4, 3, bh + 2 * pad, wp), np.float32)  # x, y, x² + y², 2xy of the band and its halo rows
    x, y, ss, xy2 = m
    np.multiply(xp[:, r0:r1 + 2 * pad], np.float32(1 / 255), out=x, dtype=np.float32)
    np.multiply(yp[:, r0:r1 + 2 * pad], np.float32(1 / 255), out=y, dtype=np.float32)
    np.multiply(x, x, out=ss)
    np.multiply(y, y, out=xy2)
    ss += xy2
    np.multiply(x, 2, out=xy2)
    xy2 *= y
    gv, flat = _window_matrix(bh), m.reshape(12, bh + 2 * pad, wp)
    v = np.empty((12, bh, wp), np.float32)
    for j in range(12):
        np.matmul(gv, flat[j], out=v[j])
    v = v.reshape(12 * bh, wp)
    f = np.empty((12 * bh, w), np.float32)
    for c0 in range(0, w, SSIM_TILE_COLS):
        c1 = min(w, c0 + SSIM_TILE_COLS)
        np.matmul(v[:, c0:c1 + 2 * pad], _window_matrix(c1 - c0).T, out=f[:, c0:c1])
    mu_x, mu_y, ss, xy2 = f.reshape(4, 3, bh, w)
    c1_, c2_ = np.float32(SSIM_K1 ** 2), np.float32(SSIM_K2 ** 2)
    p2 = mu_x * mu_y
    p2 *= 2  # 2·mu_x·mu_y
    mu_x *= mu_x
    mu_y *= mu_y
    mu_x += mu_y  # mu_x² + mu_y²
    xy2 -= p2  # 2·sigma_xy
    xy2 += c2_
    p2 += c1_
    p2 *= xy2  # the numerator
    ss -= mu_x  # sigma_x² + sigma_y² (clamped at 0 as their sum; torchmetrics clamps each: see ssim_map)
    np.maximum(ss, 0, out=ss)
    ss += c2_
    mu_x += c1_
    mu_x *= ss  # the denominator
    p2 /= mu_x  # (3, bh, w): the SSIM map of the band
    if out is not None:
        out[:, r0:r1] = p2
    return float(p2.sum(dtype=np.float64))


def _ssim_sum(pred: np.ndarray, gt: np.ndarray, out: np.ndarray | None, threads: int) -> float:
    _check_pair(pred, gt)
    h, w, _ = pred.shape
    pad = SSIM_KERNEL // 2
    if h <= pad or w <= pad:
        raise ValueError(f"SSIM needs frames larger than {pad} pixels on each side (reflect padding); found {w}x{h}")
    # torch's F.pad(mode="reflect") is numpy's "reflect" (edge pixel not repeated); (3, H+10, W+10) views
    xp = np.pad(pred, ((pad, pad), (pad, pad), (0, 0)), mode="reflect").transpose(2, 0, 1)
    yp = np.pad(gt, ((pad, pad), (pad, pad), (0, 0)), mode="reflect").transpose(2, 0, 1)
    bands = [(r0, min(h, r0 + SSIM_BAND_ROWS)) for r0 in range(0, h, SSIM_BAND_ROWS)]
    if threads <= 1 or len(bands) < 2:
        sums = [_ssim_band(xp, yp, r0, r1, out) for r0, r1 in bands]
    else:  # numpy/BLAS release the GIL: every threads-th band per thread; the band sums add up in band order
        from concurrent.futures import ThreadPoolExecutor

        chunks = [bands[i::threads] for i in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda c: [(b, _ssim_band(xp, yp, *b, out)) for b in c], chunks))
        by_band = dict(item for part in parts for item in part)
        sums = [by_band[b] for b in bands]
    return math.fsum(sums)


def ssim_map(pred: np.ndarray, gt: np.ndarray, threads: int = 1) -> np.ndarray:
    """The SSIM index per channel and pixel, ``(3, H, W) float32``; :func:`ssim` is its mean.

    The frames are reflect-padded by 5 (torch's ``F.pad(mode="reflect")`` that torchmetrics uses: edge pixel
    not repeated); four local moments per channel (the means of ``x``, ``y``, ``x² + y²``, ``2xy``) are
    Gaussian-filtered separably, in bands of :data:`SSIM_BAND_ROWS` rows (+ 10 halo rows) so the 12 maps of a
    band stay in cache, each pass small float32 matrix products (BLAS). The variances are clamped at 0 as a
    sum (torchmetrics clamps each; they differ only where float32 rounding makes a variance of a flat region
    negative, by ~1e-8). ``threads``: bands computed on this many threads (same values for any count)."""
    out = np.empty((3,) + pred.shape[:2], np.float32)
    _ssim_sum(pred, gt, out, threads)
    return out


def ssim(pred: np.ndarray, gt: np.ndarray, threads: int = 1) -> float:
    """SSIM of ``(H, W, 3) uint8`` frames (``data_range=1``, Gaussian 11 × 11, σ 1.5), mean over pixels and channels.

    The per-band sums are float64 and added in band order (:func:`math.fsum`), so ``threads`` does not
    change the value."""
    h, w = pred.shape[:2]
    return _ssim_sum(pred, gt, None, threads) / (3 * h * w)


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def default_alexnet_weights() -> Path:
    """Where torchvision caches its AlexNet weights: ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``
    (``TORCH_HOME`` defaults to ``~/.cache/torch``)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(home) / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE


class LPIPS:
    """LPIPS (AlexNet) as torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)``.

    Needs two weight files, nothing is downloaded:

    * the AlexNet backbone (ImageNet), a torchvision ``alexnet`` state dict (``features.*`` keys):
      ``weights=`` a path, else torchvision's cache file :func:`default_alexnet_weights`. Obtain it on a
      machine with internet with ``python -c "import torchvision; torchvision.models.alexnet(weights='DEFAULT')"``
      and copy ``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth``;
    * the LPIPS linear layers, which torchmetrics ships (``torchmetrics/functional/image/lpips_models/alex.pth``).

    The network is torchmetrics' (its ``ScalingLayer``, ``NetLinLayer``, normalisation and spatial mean)
    around torchvision's AlexNet ``features`` layers rebuilt layer for layer (so torchvision is not needed).
    Raises :class:`MetricUnavailable` naming the missing file or package.
    """

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        try:
            import torch
            from torchmetrics.functional.image import lpips as tm_lpips
        except ImportError as e:
            raise MetricUnavailable(f"lpips needs torch and torchmetrics ({e.name} is not installed)") from None
        path = Path(weights) if weights is not None else default_alexnet_weights()
        if not path.is_file():
            raise MetricUnavailable(
                f"lpips needs the AlexNet backbone weights at {path} (torchvision's {ALEXNET_WEIGHTS_FILE}; "
                f"pass --lpips-weights FILE); nothing is downloaded"
            )
        linear = Path(tm_lpips.__file__).parent / "lpips_models" / "alex.pth"
        if not linear.is_file():
            raise MetricUnavailable(f"lpips needs torchmetrics' linear layers at {linear}")
        self.torch = torch
        self._tm = tm_lpips
        nn = torch.nn
        features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            features.load_state_dict(state, strict=True)
        except Exception as e:
            raise MetricUnavailable(f"lpips: {path} is not an AlexNet state dict ({type(e).__name__}: {e})") from None
        # torchmetrics' Alexnet slices: relu1 [0,2), relu2 [2,5), relu3 [5,8), relu4 [8,10), relu5 [10,12)
        self.slices = [features[a:b] for a, b in ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))]
        self.scaling = tm_lpips.ScalingLayer()
        self.lins = nn.ModuleList(tm_lpips.NetLinLayer(c, use_dropout=True) for c in (64, 192, 384, 256, 256))
        lin_state = torch.load(linear, map_location="cpu", weights_only=True)
        self.lins.load_state_dict({k[len("lin"):]: v for k, v in lin_state.items() if k.startswith("lin")}, strict=True)
        for m in (features, self.scaling, self.lins):
            m.eval()
        self.weights = path

    def _features(self, x: Any) -> list[Any]:
        outs = []
        for s in self.slices:
            x = s(x)
            outs.append(x)
        return outs

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """LPIPS distance of ``(H, W, 3) uint8`` frames (0 = identical)."""
        _check_pair(pred, gt)
        torch, tm = self.torch, self._tm
        with torch.no_grad():
            x = torch.from_numpy(pred).permute(2, 0, 1)[None].to(torch.float32) / 255.0
            y = torch.from_numpy(gt).permute(2, 0, 1)[None].to(torch.float32) / 255.0
            x, y = self.scaling(2 * x - 1), self.scaling(2 * y - 1)
            total = 0.0
            for lin, fx, fy in zip(self.lins, self._features(x), self._features(y)):
                d = (tm._normalize_tensor(fx) - tm._normalize_tensor(fy)) ** 2
                total = total + tm._spatial_average(lin(d), keep_dim=True)
            return float(total.squeeze())


# ---------------------------------------------------------------------------------------------
# JOD (pyfvvdp), streaming
# ---------------------------------------------------------------------------------------------


def jod_fps(fps: float, every_nth: int) -> float:
    """The frame rate pyfvvdp is told: ``max(4.1, fps / every_nth)`` as the paper's evaluation."""
    return max(JOD_MIN_FPS, float(fps) / int(every_nth))


def make_jod() -> Any:
    """A ``pyfvvdp.fvvdp(display_name="standard_4k")`` on the CPU; :class:`MetricUnavailable` without pyfvvdp."""
    try:
        import pyfvvdp
    except ImportError:
        raise MetricUnavailable("jod needs pyfvvdp: pip install 'nersemble-zarr[metrics]' (licence CC BY-NC)") from None
    import torch

    return pyfvvdp.fvvdp(display_name=JOD_DISPLAY, device=torch.device("cpu"), quiet=True)


class JODVideo:
    """Run pyfvvdp over a video pulled frame by frame, so memory does not grow with the frame count.

    ``pairs`` yields ``(prediction, ground_truth)`` ``(H, W, 3) uint8`` frames, ``n_frames`` of them;
    pyfvvdp asks for frames in order (frame 0 twice), and each pair is handed to ``on_frame(i, pred, gt)``
    once, as it is first pulled, so the per-frame metrics run in the same pass. :meth:`run` returns the JOD.
    pyfvvdp keeps a sliding window of ``ceil(0.25 s · fps)`` luminance frames, not the whole video.
    """

    def __init__(self, fvvdp: Any, pairs: Iterator[tuple[np.ndarray, np.ndarray]], n_frames: int, height: int,
                 width: int, fps: float, on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None):
        from pyfvvdp.video_source import fvvdp_video_source_dm

        self.fvvdp = fvvdp
        outer = self

        class _Source(fvvdp_video_source_dm):
            def __init__(self) -> None:
                super().__init__(display_photometry=fvvdp.display_photometry, color_space_name=fvvdp.color_space)

            def get_frames_per_second(self) -> float:
                return fps

            def get_video_size(self) -> tuple[int, int, int]:
                return (height, width, n_frames)

            def get_test_frame(self, frame: int, device: Any = None) -> Any:
                return self._luminance(outer._pair(frame)[0], device)

            def get_reference_frame(self, frame: int, device: Any = None) -> Any:
                return self._luminance(outer._pair(frame)[1], device)

            def _luminance(self, image: np.ndarray, device: Any) -> Any:
                import torch

                t = torch.from_numpy(image).permute(2, 0, 1)[None, :, None].to(device).to(torch.float32) / 255
                lum = self.dm_photometry.forward(t)
                k = self.color_to_luminance
                return lum[:, 0:1] * k[0] + lum[:, 1:2] * k[1] + lum[:, 2:3] * k[2]

        self._source = _Source()
        self._pairs = pairs
        self._n = n_frames
        self._index = -1
        self._current: tuple[np.ndarray, np.ndarray] | None = None
        self._on_frame = on_frame

    def _pair(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        while self._index < frame:
            try:
                self._current = next(self._pairs)
            except StopIteration:
                raise ValueError(f"the video ended after {self._index + 1} frames, expected {self._n}") from None
            self._index += 1
            if self._on_frame is not None:
                self._on_frame(self._index, *self._current)
        if frame != self._index:
            raise RuntimeError(f"pyfvvdp asked for frame {frame} after frame {self._index}: frames stream in order")
        assert self._current is not None
        return self._current

    def run(self) -> float:
        """The JOD of the whole video (10 = indistinguishable from the ground truth)."""
        import torch

        with torch.no_grad():
            q, _ = self.fvvdp.predict_video_source(self._source)
        return float(q)


__all__ = [
    "ALEXNET_WEIGHTS_FILE", "JODVideo", "JOD_DISPLAY", "LPIPS", "MetricUnavailable", "alpha_blend_white",
    "default_alexnet_weights", "jod_fps", "make_jod", "mse", "psnr", "ssim", "ssim_map",
]

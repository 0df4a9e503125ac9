"""``evaluate``: the benchmark's metrics on a validation split, one job per video on the job runner.

:func:`evaluate` resolves which videos to score (the predictions' keys, filtered by participant, sequence,
camera, and checked against the split: a camera or frames outside the asked-for part are refused, so
evaluation and training cannot disagree), checks once which metrics can run here (a metric that cannot is
skipped with one line in :attr:`EvaluationReport.skipped`), then runs one :class:`VideoJob` per video through
:func:`~nersemble_zarr.jobs.runner.run_jobs`. A job streams its video: one prediction frame (decoded by ffmpeg
or read a chunk at a time) and one ground-truth frame (read from the store through the integrity guard) at a
time, so memory does not grow with the frame count; JOD runs in the same pass (pyfvvdp pulls the frames).

Frame alignment: a prediction video of ``n`` frames is matched to the sequence's stored timesteps when
``n`` equals their count, else to the split's timesteps, else to the split's every-``n``-th timesteps;
any other count is an error naming the three accepted counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..core import schema
from ..core.benchmark import BENCHMARKS, get_benchmark, participant_dir
from ..core.errors import NersembleZarrError, SelectionError
from ..core.splits import check_part, parse_split, split_sequence
from ..imaging import area_average
from ..jobs.prefetch import Prefetch
from ..jobs.runner import JobOutcome, available_cores, run_jobs
from ..read.resolver import StoreLike, open_root, read_calibration, resolve_sequence
from . import metrics as M
from .report import EvaluationReport, VideoResult, WorstFrame
from .sources import Predictions, as_predictions

#: Metrics by name, in report order.
METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "jod")
Variant = Literal["unmasked", "masked"]
VARIANTS: dict[str, tuple[str, ...]] = {"unmasked": ("unmasked",), "masked": ("masked",), "both": ("unmasked", "masked")}
#: Longest side of the worst-frame thumbnails a job hands back for the plot (pixels).
THUMBNAIL_SIDE = 400


class EvaluateError(NersembleZarrError):
    """Predictions and ground truth that cannot be compared (frame count, size, camera outside the split)."""


def metric_name(metric: str, variant: str) -> str:
    """``"psnr"`` / ``"psnr_masked"``: the name of a metric's variant in the report."""
    return metric if variant == "unmasked" else f"{metric}_masked"


@dataclass(frozen=True)
class VideoJob:
    """One video to score (plain data, picklable): where its prediction and ground truth are, which
    ``timesteps`` to score (stored values) and the prediction frame index of each (``pred_index``);
    ``ssim_threads``: threads SSIM may use (the job's share of the cores less one for the decode)."""

    key: tuple[int, str, str]
    benchmark: str
    store: Any
    storage_options: dict[str, Any] | None
    predictions: Any
    level: int
    timesteps: tuple[int, ...]
    pred_index: tuple[int, ...]
    n_pred: int
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    fps: float
    lpips_weights: str | None = None
    ssim_threads: int = 1

    @property
    def label(self) -> str:
        p, s, c = self.key
        return f"{self.benchmark} {participant_dir(p)}/{s}/cam_{c}"


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    factor = max(1, int(np.ceil(max(frame.shape[:2]) / THUMBNAIL_SIDE)))
    return area_average(frame[: frame.shape[0] // factor * factor, : frame.shape[1] // factor * factor], factor,
                        axes=(0, 1)) if factor > 1 else frame.copy()



def _evaluate_video(job: VideoJob, advance: Callable[[int], None]) -> VideoResult:
    """Score one video (runs where the job runs); see the module docstring."""
    root = open_root(job.store, storage_options=job.storage_options)
    p, s, serial = job.key
    res = resolve_sequence(root, job.benchmark, p, s, cameras=[serial], level=job.level, error=EvaluateError)
    images = res.frames(root, schema.IMAGES)
    alpha = res.frames(root, schema.ALPHA) if "masked" in job.variants else None
    cam = res.camera_positions[0]
    t_pos = {t: i for i, t in enumerate(res.timesteps)}
    gt_h, gt_w = int(images.shape[2]), int(images.shape[3])
    wanted = dict(zip(job.pred_index, job.timesteps))
    n = len(job.timesteps)
    per_frame = {metric_name(m, v): np.full(n, np.nan) for m in job.metrics if m != "jod" for v in job.variants}
    lpips = M.LPIPS(job.lpips_weights) if "lpips" in job.metrics else None
    worst: WorstFrame | None = None

    def pairs(video: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
        if video.n_frames != job.n_pred:
            raise EvaluateError(f"{job.label}: the prediction has {video.n_frames} frames, expected {job.n_pred}")
        factor = 1
        if (video.height, video.width) != (gt_h, gt_w):
            factor = video.height // gt_h if gt_h else 0
            if factor < 2 or (video.height // factor, video.width // factor) != (gt_h, gt_w):
                raise EvaluateError(
                    f"{job.label}: prediction frames are {video.width}x{video.height}, ground truth at level "
                    f"{job.level} is {gt_w}x{gt_h} (give full-resolution frames or frames of the level)"
                )
        k = 0
        for i, frame in enumerate(video.frames):
            t = wanted.get(i)
            if t is None:
                continue
            if factor > 1:
                frame = area_average(frame[: gt_h * factor, : gt_w * factor], factor, axes=(0, 1))
            gt = np.asarray(images[cam, t_pos[t]])
            a = np.asarray(alpha[cam, t_pos[t]]) if alpha is not None else None
            yield k, frame, gt, a
            k += 1
            if k == n:
                return

    def variant_pair(variant: str, pred: np.ndarray, gt: np.ndarray, a: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if variant == "masked":
            assert a is not None
            return M.alpha_blend_white(pred, a), M.alpha_blend_white(gt, a)
        return pred, gt

    def score(k: int, pred: np.ndarray, gt: np.ndarray, a: np.ndarray | None) -> None:
        nonlocal worst
        for v in job.variants:
            x, y = variant_pair(v, pred, gt, a)
            if "psnr" in job.metrics:
                per_frame[metric_name("psnr", v)][k] = M.psnr(x, y)
            if "ssim" in job.metrics:
                per_frame[metric_name("ssim", v)][k] = M.ssim(x, y, threads=job.ssim_threads)
            if lpips is not None:
                per_frame[metric_name("lpips", v)][k] = lpips(x, y)
        computed = "psnr" in job.metrics and "unmasked" in job.variants
        value = float(per_frame["psnr"][k]) if computed else M.psnr(pred, gt)
        if worst is None or value < worst.psnr:
            worst = WorstFrame(job.key, job.timesteps[k], value, _thumbnail(pred), _thumbnail(gt))
        advance(1)

    jod: dict[str, float] = {}
    jod_variants = [v for v in job.variants if "jod" in job.metrics]
    with job.predictions.open(job.key) as video:
        stream = pairs(video)
        if jod_variants:
            v0 = jod_variants[0]

            def first(st: Iterator[Any]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for k, pred, gt, a in st:
                    score(k, pred, gt, a)
                    yield variant_pair(v0, pred, gt, a)

            jod[metric_name("jod", v0)] = M.JODVideo(M.make_jod(), first(stream), n, gt_h, gt_w, job.fps).run()
        else:
            # the next frame pair is read while this one is scored; on an error the pending read ends (and the
            # stream is closed) before the video closes
            with closing(iter(Prefetch(stream, depth=1))) as ahead:
                for item in ahead:
                    score(*item)
    for v in jod_variants[1:]:  # a second pass for the second JOD variant (pyfvvdp pulls one stream)
        with job.predictions.open(job.key) as video:
            stream = (variant_pair(v, pred, gt, a) for _, pred, gt, a in pairs(video))
            jod[metric_name("jod", v)] = M.JODVideo(M.make_jod(), stream, n, gt_h, gt_w, job.fps).run()
    return VideoResult(job.key, job.timesteps, per_frame, jod, worst)


def _align(label: str, n_pred: int, stored: tuple[int, ...], split_ts: tuple[int, ...],
           every_nth: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(timesteps, prediction frame index of each)`` for a prediction of ``n_pred`` frames."""
    chosen = split_ts[::every_nth]
    if n_pred == len(stored):
        pos = {t: i for i, t in enumerate(stored)}
        return chosen, tuple(pos[t] for t in chosen)
    if n_pred == len(split_ts):
        pos = {t: i for i, t in enumerate(split_ts)}
        return chosen, tuple(pos[t] for t in chosen)
    if n_pred == len(chosen):
        return chosen, tuple(range(len(chosen)))
    accepted = sorted({len(stored), len(split_ts), len(chosen)})
    raise EvaluateError(
        f"{label}: the prediction has {n_pred} frames; expected {' or '.join(map(str, accepted))} (every stored "
        f"timestep, the split's timesteps, or every {every_nth}-th of them)"
    )


def _infer_benchmark(keys: Iterable[tuple[int, str, str]]) -> str:
    found = {name for p, _, _ in keys for name, b in BENCHMARKS.items() if p in b.participants}
    if len(found) != 1:
        raise SelectionError(
            f"cannot tell the benchmark from the predictions' participants ({'both' if found else 'none known'}): pass benchmark="
        )
    return found.pop()


def _check_metrics(metrics: Iterable[str], lpips_weights: str | None) -> tuple[tuple[str, ...], list[str]]:
    """The metrics that can run here, and one line per skipped one."""
    names, skipped = [], []
    for m in metrics:
        if m not in METRICS:
            raise SelectionError(f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
        try:
            if m == "lpips":
                M.LPIPS(lpips_weights)
            elif m == "jod":
                import pyfvvdp  # noqa: F401
        except M.MetricUnavailable as e:
            skipped.append(f"skipped {m}: {e}")
            continue
        except ImportError:
            skipped.append(f"skipped {m}: pyfvvdp is not installed (pip install 'nersemble-zarr[metrics]'; licence CC BY-NC)")
            continue
        if m not in names:
            names.append(m)
    return tuple(names), skipped


def evaluate(
    predictions: Any,
    store: StoreLike,
    *,
    benchmark: str | None = None,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
    cameras: Iterable[str] | None = None,
    split: str = "validation",
    split_spec: str | None = None,
    metrics: Iterable[str] = ("psnr", "ssim", "lpips", "jod"),
    masked: Literal["unmasked", "masked", "both"] = "unmasked",
    every_nth: int = 1,
    level: int = 1,
    lpips_weights: str | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Score ``predictions`` against the ground truth in ``store``; returns an :class:`EvaluationReport`.

    ``predictions``: a submission zip, a renders store (``submit`` layout), a prediction source of
    :mod:`.sources`, or ``{(participant, sequence, serial): frames}``. ``benchmark``: default from the
    predictions' participants. ``participants``/``sequences``/``cameras`` filter the predictions' videos.
    ``split``: the part scored — ``"validation"`` (default), ``"train"`` or ``"all"`` — of the split rule
    ``split_spec`` (:mod:`nersemble_zarr.core.splits`; default per benchmark). ``metrics``: any of
    ``psnr, ssim, lpips, jod``. ``masked``: ``"unmasked"``, ``"masked"`` (both images alpha-blended onto white
    with the store's alpha) or ``"both"``. ``every_nth``: score every n-th frame of the part (JOD at
    ``max(4.1, fps / n)``). ``level``: a stored level of the ground truth (2 = ½); full-resolution
    predictions are area-averaged to it. ``lpips_weights``: the AlexNet weights file (see
    :class:`~.metrics.LPIPS`). ``workers``/``scheduler``/``threads``: where the jobs run (one per video).
    """
    part = check_part(split)
    if masked not in VARIANTS:
        raise SelectionError(f"masked must be one of {', '.join(VARIANTS)}, not {masked!r}")
    if int(every_nth) < 1:
        raise SelectionError(f"every_nth must be a positive integer, not {every_nth!r}")
    every_nth, level = int(every_nth), int(level)
    source: Predictions = as_predictions(predictions, benchmark)
    b = get_benchmark(benchmark if benchmark is not None else _infer_benchmark(source.keys()))
    spec = parse_split(split_spec, b.name)
    wanted_p = None if participants is None else {int(p) for p in participants}
    wanted_s = None if sequences is None else {str(s) for s in sequences}
    wanted_c = None if cameras is None else {str(c) for c in cameras}
    keys = [k for k in source.keys()
            if (wanted_p is None or k[0] in wanted_p) and (wanted_s is None or k[1] in wanted_s)
            and (wanted_c is None or k[2] in wanted_c)]
    if not keys:
        raise SelectionError(f"no prediction videos selected in {source.describe()} (found {len(source.keys())} in all)")
    names, skipped = _check_metrics(metrics, lpips_weights)

    root = open_root(store, storage_options=storage_options)
    # SSIM's threads (threads mode): a job's share of the cores less one for its ffmpeg decode and read-ahead
    # (measured on 2 busy cores: SSIM on 2 threads is no faster than on 1); on dask workers one each
    ssim_threads = 1
    if workers is None and scheduler is None:
        at_once = min(len(keys), int(threads) if threads else available_cores())
        ssim_threads = max(1, available_cores() // max(1, at_once) - 1)
    jobs: list[VideoJob] = []
    splits: dict[tuple[int, str], Any] = {}
    for key in keys:
        p, s, serial = key
        label = f"{b.name} {participant_dir(p)}/{s}/cam_{serial}"
        if (p, s) not in splits:
            res = resolve_sequence(root, b.name, p, s, error=EvaluateError, stacklevel=3)
            rig = read_calibration(root, b.name, p, error=EvaluateError)
            splits[(p, s)] = (res, split_sequence(spec, b.name, s, res.stored_cameras, res.timesteps, rig.serials,
                                                  rig.world_2_cam))
        res, parts = splits[(p, s)]
        if serial not in res.stored_cameras:
            raise EvaluateError(f"{label}: the store has no ground truth for camera {serial} "
                                f"(stored: {', '.join(res.stored_cameras) or 'none'})")
        chosen = parts[part]
        if serial not in chosen.cameras or not chosen.timesteps:
            raise EvaluateError(
                f"{label}: not in the {part} part of split {spec} (its cameras: {', '.join(chosen.cameras) or 'none'}; "
                f"{len(chosen.timesteps)} timesteps); pass --split all (split='all') to score it anyway"
            )
        with source.open(key) as video:
            n_pred = video.n_frames
        timesteps, pred_index = _align(label, n_pred, res.timesteps, chosen.timesteps, every_nth)
        jobs.append(VideoJob(key, b.name, store, storage_options, source, level, timesteps, pred_index, n_pred,
                             names, VARIANTS[masked], M.jod_fps(b.fps, every_nth), lpips_weights, ssim_threads))

    def on_result(outcome: JobOutcome) -> None:
        if not outcome.ok:
            raise outcome.exception if isinstance(outcome.exception, NersembleZarrError) else EvaluateError(
                f"{outcome.job.label}: {outcome.error}")

    outcomes = run_jobs(jobs, _evaluate_video, workers=workers, scheduler=scheduler, threads=threads,
                        on_result=on_result, progress=progress, desc=f"evaluating {len(jobs)} videos",
                        frames_of=lambda j: len(j.timesteps), live_progress=True, name="evaluate",
                        torch_threads="auto" if {"lpips", "jod"} & set(names) else None)
    return EvaluationReport(
        benchmark=b.name, split=part, split_spec=str(spec), level=level, every_nth=every_nth,
        metrics=tuple(metric_name(m, v) for m in names for v in VARIANTS[masked]),
        results=[o.result for o in outcomes], skipped=skipped, predictions=source.describe(),
    )


__all__ = ["EvaluateError", "METRICS", "VideoJob", "evaluate", "metric_name"]

"""``nersemble-zarr evaluate``: the benchmark's metrics offline, on a validation split of a store."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    benchmark_option, camera_option, emit_report, json_option, parallel_kwargs, parallel_options, participant_option,
    progress_option, sequence_option, split_values,
)

_METRICS = ("psnr", "ssim", "lpips", "jod")


def _metrics(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(split_values(value))) or _METRICS
    for name in names:
        if name not in _METRICS:
            raise click.BadParameter(f"{name!r} is not one of {', '.join(_METRICS)}", ctx=ctx, param=param)
    return names


@click.command()
@click.argument("predictions")
@click.argument("store")
@benchmark_option(one=True)
@participant_option()
@sequence_option()
@camera_option()
@click.option("--split", "split", type=click.Choice(["validation", "train", "all"]), default="validation",
              help="Which part of the split to score: the validation frames, the train frames, or all frames.")
@click.option("--split-rule", "split_rule", default=None, metavar="RULE",
              help="The validation split: nearest (the train camera nearest each hold-out camera), cameras=S1,S2, "
                   "last=P (last P% of frames) or sequences=A,B.  [default: nvs nearest, mono_flame_avatar last=10]")
@click.option("--metrics", "metrics", multiple=True, callback=_metrics, metavar="LIST",
              help="Metrics, comma-separated: psnr, ssim, lpips, jod; one that cannot run here is skipped with one "
                   "line.  [default: all four]")
@click.option("--masked", "masked", flag_value="masked",
              help="Score the masked variant: prediction and ground truth alpha-blended onto white (the store's alpha).")
@click.option("--unmasked", "masked", flag_value="unmasked", default=True, help="Score the frames as they are.")
@click.option("--both", "masked", flag_value="both", help="Score both variants (psnr and psnr_masked, ...).")
@click.option("--every-nth", "every_nth", type=click.IntRange(min=1), default=1, metavar="N",
              help="Score every N-th frame of the part (JOD then at max(4.1, fps / N) frames per second).")
@click.option("--level", "level", type=click.IntRange(min=1), default=1, metavar="N",
              help="Ground truth at stored level N (2 = half resolution, written by `downscale`); full-resolution "
                   "predictions are area-averaged to it.")
@json_option()
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write a PNG: per-frame PSNR curves and the worst frames beside their ground truth with an error map.")
@click.option("--lpips-weights", "lpips_weights", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="torchvision's AlexNet weights (alexnet-owt-7be5be79.pth) for LPIPS.  "
                   "[default: torchvision's cache, ~/.cache/torch/hub/checkpoints/]")
@parallel_options()
@progress_option()
def evaluate(
    predictions: str, store: str, benchmark: str | None, participants: tuple[int, ...], sequences: tuple[str, ...],
    cameras: tuple[str, ...], split: str, split_rule: str | None, metrics: tuple[str, ...], masked: str,
    every_nth: int, level: int, json_out: str | None, plot_path: str | None, lpips_weights: str | None,
    workers: int | None, scheduler: str | None, progress: bool,
) -> None:
    """Score PREDICTIONS against the ground truth in STORE with the benchmark's metrics.

    PREDICTIONS is a submission zip (`submit --validation` accepts the train cameras a validation split
    holds out) or a renders store in the `submit` layout. One job per video, streamed. Prints a table
    (or the JSON); --json FILE also writes the per-frame values next to it as <FILE stem>.frames.nc.
    """
    from nersemble_zarr.evaluate.report import plot
    from nersemble_zarr.evaluate.run import evaluate as run_evaluate

    report = run_evaluate(
        predictions, store, benchmark=benchmark, participants=participants or None, sequences=sequences or None,
        cameras=cameras or None, split=split, split_spec=split_rule, metrics=metrics, masked=masked,  # type: ignore[arg-type]
        every_nth=every_nth, level=level, lpips_weights=lpips_weights, progress=progress,
        **parallel_kwargs(run_evaluate, workers, scheduler),
    )
    for line in report.skipped:
        click.echo(line, err=True)
    if json_out not in (None, "-"):
        _, frames = report.save(json_out)
        click.echo(f"wrote {json_out} and the per-frame values {frames}", err=True)
        json_out_shown = None
    else:
        json_out_shown = json_out
    emit_report(json_out_shown, report.to_dict, report.table)
    if plot_path:
        plot(report, plot_path)
        click.echo(f"wrote {plot_path}", err=True)

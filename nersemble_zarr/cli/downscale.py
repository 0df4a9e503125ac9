"""``nersemble-zarr downscale``: write ½, ¼, … levels of a store's images and alpha maps."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    LEGACY_SCHEDULERS, benchmark_option, deprecation_note, parallel_kwargs, parallel_options, participant_option,
    progress_option, sequence_option,
)
from nersemble_zarr.core.benchmark import BENCHMARK_NAMES, check_selection


@click.command()
@click.argument("store")
@click.option("--factor", "-f", "factors", type=click.IntRange(min=2), multiple=True, required=True,
              help="Downscale factor of a level to write (repeatable): 2 = half, 4 = quarter resolution.")
@benchmark_option()
@participant_option()
@sequence_option()
@parallel_options(legacy_threads=True)
@progress_option()
def downscale(
    store: str,
    factors: tuple[int, ...],
    benchmarks: tuple[str, ...],
    participants: tuple[int, ...],
    sequences: tuple[str, ...],
    workers: int | None,
    scheduler: str | None,
    threads: int | None,
    progress: bool,
) -> None:
    """Write downscaled levels of every converted sequence in STORE (path or fsspec URL).

    Each level (group level_<f>/ of a sequence) holds images and alpha area-averaged over f x f
    blocks (mean rounded half up; sizes rounded down: trailing H mod f rows and W mod f columns
    are dropped) and intrinsics scaled in the pixel-centre convention. Computed shard-parallel
    with dask from the stored frames; an interrupted run resumes where it stopped.
    """
    check_selection(benchmarks or BENCHMARK_NAMES, participants, sequences)
    from nersemble_zarr.pipelines.downscale import downscale_store

    if scheduler in LEGACY_SCHEDULERS:  # dask's local scheduler names of before the job runner
        deprecation_note(f"--scheduler {scheduler}", "--workers N for N local worker processes (threads are the "
                         "default; --scheduler is now the ADDRESS of an existing dask.distributed cluster)")
        if scheduler == "synchronous":
            threads = 1
        elif scheduler == "processes":
            from nersemble_zarr.jobs.runner import available_cores

            workers, threads = workers or threads or available_cores(), None
        scheduler = None
    report = downscale_store(
        store, factors, benchmarks=benchmarks or None, participants=participants or None,
        sequences=sequences or None, progress=progress,
        **parallel_kwargs(downscale_store, workers, scheduler, threads),
    )
    rate = f" ({report.frames / report.seconds:.0f} frames/s)" if report.frames and report.seconds > 0 else ""
    click.echo(
        f"wrote {len(report.written)} level(s), {report.frames} frames{rate}; "
        f"{len(report.skipped)} already complete"
    )
    for path in report.not_ready:
        click.echo(f"skipped {path}: its full-resolution frames are not completely converted (rerun convert)")

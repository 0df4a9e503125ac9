"""``nersemble-zarr downscale``: write ½, ¼, … levels of a store's images and alpha maps."""

from __future__ import annotations

import click

from nersemble_zarr.core.benchmark import BENCHMARK_NAMES, check_selection


@click.command()
@click.argument("store")
@click.option("--factor", "-f", "factors", type=click.IntRange(min=2), multiple=True, required=True,
              help="Downscale factor of a level to write (repeatable): 2 = half, 4 = quarter resolution.")
@click.option("--benchmark", "-b", "benchmarks", type=click.Choice(BENCHMARK_NAMES), multiple=True,
              help="Only this benchmark (repeatable).  [default: all in STORE]")
@click.option("--participant", "-p", "participants", type=int, multiple=True,
              help="Only this participant (repeatable).  [default: all in STORE]")
@click.option("--sequence", "-s", "sequences", multiple=True, help="Only this sequence (repeatable).  [default: all]")
@click.option("--scheduler", type=click.Choice(["threads", "processes", "synchronous"]), default="threads",
              help="dask scheduler running the per-shard tasks.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel tasks.  [default: dask's default, one per core]")
@click.option("--progress/--no-progress", default=True, help="Show frames done, rate and ETA on stderr.")
def downscale(
    store: str,
    factors: tuple[int, ...],
    benchmarks: tuple[str, ...],
    participants: tuple[int, ...],
    sequences: tuple[str, ...],
    scheduler: str,
    workers: int | None,
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

    report = downscale_store(
        store, factors, benchmarks=benchmarks or None, participants=participants or None,
        sequences=sequences or None, scheduler=scheduler, num_workers=workers, progress=progress,
    )
    rate = f" ({report.frames / report.seconds:.0f} frames/s)" if report.frames and report.seconds > 0 else ""
    click.echo(
        f"wrote {len(report.written)} level(s), {report.frames} frames{rate}; "
        f"{len(report.skipped)} already complete"
    )
    for path in report.not_ready:
        click.echo(f"skipped {path}: its full-resolution frames are not completely converted (rerun convert)")

"""``nersemble-zarr convert`` and ``nersemble-zarr verify``."""

from __future__ import annotations

import click

from nersemble_zarr.core.benchmark import BENCHMARK_NAMES, check_selection


def _benchmarks(benchmark: str) -> tuple[str, ...]:
    return BENCHMARK_NAMES if benchmark == "all" else (benchmark,)


@click.command()
@click.argument("raw", type=click.Path(file_okay=False))
@click.argument("store")
@click.option(
    "--benchmark", "-b", "benchmark", type=click.Choice(["nvs", "mono_flame_avatar", "all"]), default="all",
    help="Which benchmark folder(s) of RAW to convert.",
)
@click.option("--participant", "-p", "participants", type=int, multiple=True, help="Only this participant id (repeatable).")
@click.option("--sequence", "-s", "sequences", multiple=True, help="Only this sequence name (repeatable).")
@click.option(
    "--image-codec", type=click.Choice(["lossless", "jpeg"]), default="lossless",
    help=(
        "lossless: bit-exact to the official decode (blosc-lz4, ~2x smaller than raw frames). "
        "jpeg: ~6x smaller again, 40-50 dB PSNR at quality 95. Alpha is always lossless."
    ),
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, help="JPEG quality for --image-codec jpeg.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Run on a local dask cluster of N worker processes [default: one thread per core, at most 4, in this process].",
)
@click.option("--scheduler", default=None, help="Address (tcp://host:port) of an existing dask.distributed scheduler.")
@click.option("--overwrite", is_flag=True, help="Redo every selected unit, even the complete ones.")
@click.option(
    "--dry-run", is_flag=True,
    help="Print the plan (units, frames, estimated store size per sequence, free space on the target) and write nothing.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def convert(
    raw: str, store: str, benchmark: str, participants: tuple[int, ...], sequences: tuple[str, ...],
    image_codec: str, jpeg_quality: int, workers: int | None, scheduler: str | None, overwrite: bool, quiet: bool,
    dry_run: bool = False,
) -> None:
    """Convert the raw benchmark folder RAW into the Zarr store STORE (a path or an fsspec URL like s3://bucket/x.zarr).

    Resumable: rerunning the same command skips complete units (camera videos, point clouds,
    tracking files, calibrations) and redoes the rest. Exits 1 if any unit failed.
    """
    if workers is not None and scheduler is not None:
        raise click.UsageError("give either --workers or --scheduler, not both")
    check_selection(_benchmarks(benchmark), participants, sequences)
    from nersemble_zarr.pipelines.convert import convert_benchmark

    if dry_run:  # the plan only: reads RAW and STORE, writes nothing (a STORE that does not exist is not created)
        from nersemble_zarr.pipelines.convert import ConvertOptions, plan_conversion

        click.echo(plan_conversion(raw, store, ConvertOptions(
            benchmarks=benchmark, participants=participants or None, sequences=sequences or None,
            image_codec=image_codec, jpeg_quality=jpeg_quality, overwrite=overwrite,
        ), sample_frames=True).summary())
        return
    report = convert_benchmark(
        raw, store, benchmarks=benchmark, participants=participants or None, sequences=sequences or None,
        image_codec=image_codec, jpeg_quality=jpeg_quality, workers=workers, scheduler=scheduler,
        overwrite=overwrite, progress=not quiet,
    )
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("store")
@click.argument("raw", type=click.Path(exists=True, file_okay=False))
@click.option("--benchmark", "-b", type=click.Choice(["nvs", "mono_flame_avatar", "all"]), default="all", help="Which benchmark to check.")
@click.option("--participant", "-p", "participants", type=int, multiple=True, help="Only this participant id (repeatable).")
@click.option("--sequence", "-s", "sequences", multiple=True, help="Only this sequence name (repeatable).")
@click.option(
    "--min-psnr", type=float, default=35.0,
    help="Lowest PSNR (dB) a JPEG-encoded frame may have (quality 95 gives 40-50 dB; a wrong or damaged frame far less).",
)
def verify(
    store: str, raw: str, benchmark: str, participants: tuple[int, ...], sequences: tuple[str, ...], min_psnr: float,
) -> None:
    """Re-decode RAW and compare it with STORE: exact for lossless data, PSNR for JPEG images.

    Exits 1 on any mismatch or incomplete unit, naming the array, camera and timestep.
    """
    check_selection(_benchmarks(benchmark), participants, sequences)
    from nersemble_zarr.pipelines.verify import verify_store

    report = verify_store(
        store, raw, benchmarks=benchmark, participants=participants or None, sequences=sequences or None,
        min_psnr=min_psnr,
    )
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)

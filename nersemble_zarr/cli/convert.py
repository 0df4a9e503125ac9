"""``nersemble-zarr convert`` and ``nersemble-zarr verify``."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    benchmark_option, parallel_kwargs, parallel_options, participant_option, progress_option, sequence_option,
)
from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, check_selection


@click.command()
@click.argument("raw", type=click.Path(file_okay=False))
@click.argument("store")
@benchmark_option(svfr=True)
@participant_option()
@sequence_option()
@click.option(
    "--image-codec", type=click.Choice(["lossless", "jpeg"]), default="lossless",
    help=(
        "lossless: bit-exact to the official decode (blosc-lz4, ~2x smaller than raw frames). "
        "jpeg: ~6x smaller again, 40-50 dB PSNR at quality 95. Alpha is always lossless."
    ),
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, help="JPEG quality for --image-codec jpeg.")
@parallel_options()
@click.option("--overwrite", is_flag=True, help="Redo every selected unit, even the complete ones.")
@click.option(
    "--dry-run", is_flag=True,
    help="Print the plan (units, frames, estimated store size per sequence, free space on the target) and write nothing.",
)
@progress_option(legacy_quiet=True)
def convert(
    raw: str, store: str, benchmarks: tuple[str, ...], participants: tuple[int, ...], sequences: tuple[str, ...],
    image_codec: str, jpeg_quality: int, workers: int | None, scheduler: str | None, overwrite: bool, progress: bool,
    dry_run: bool = False,
) -> None:
    """Convert the raw benchmark folder RAW into the Zarr store STORE (a path or an fsspec URL like s3://bucket/x.zarr).

    Resumable: rerunning the same command skips complete units (camera videos, point clouds,
    tracking files, calibrations) and redoes the rest. Exits 1 if any unit failed.
    """
    check_selection(benchmarks or ALL_BENCHMARK_NAMES, participants, sequences)
    from nersemble_zarr.pipelines.convert import convert_benchmark

    if dry_run:  # the plan only: reads RAW and STORE, writes nothing (a STORE that does not exist is not created)
        from nersemble_zarr.pipelines.convert import ConvertOptions, plan_conversion

        click.echo(plan_conversion(raw, store, ConvertOptions(
            benchmarks=benchmarks or None, participants=participants or None, sequences=sequences or None,
            image_codec=image_codec, jpeg_quality=jpeg_quality, overwrite=overwrite,
        ), sample_frames=True).summary())
        return
    report = convert_benchmark(
        raw, store, benchmarks=benchmarks or None, participants=participants or None, sequences=sequences or None,
        image_codec=image_codec, jpeg_quality=jpeg_quality, overwrite=overwrite, progress=progress,
        **parallel_kwargs(convert_benchmark, workers, scheduler),
    )
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("store")
@click.argument("raw", type=click.Path(exists=True, file_okay=False))
@benchmark_option(svfr=True)
@participant_option()
@sequence_option()
@click.option(
    "--min-psnr", type=float, default=35.0,
    help="Lowest PSNR (dB) a JPEG-encoded frame may have (quality 95 gives 40-50 dB; a wrong or damaged frame far less).",
)
@parallel_options()
def verify(
    store: str, raw: str, benchmarks: tuple[str, ...], participants: tuple[int, ...], sequences: tuple[str, ...],
    min_psnr: float, workers: int | None, scheduler: str | None,
) -> None:
    """Re-decode RAW and compare it with STORE: exact for lossless data, PSNR for JPEG images.

    Exits 1 on any mismatch or incomplete unit, naming the array, camera and timestep.
    """
    check_selection(benchmarks or ALL_BENCHMARK_NAMES, participants, sequences)
    from nersemble_zarr.pipelines.verify import verify_store

    report = verify_store(
        store, raw, benchmarks=benchmarks or None, participants=participants or None, sequences=sequences or None,
        min_psnr=min_psnr, **parallel_kwargs(verify_store, workers, scheduler),
    )
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)

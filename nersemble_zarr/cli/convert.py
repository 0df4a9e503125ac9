"""``nersemble-zarr convert`` and ``nersemble-zarr verify``."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    benchmark_option, parallel_kwargs, parallel_options, participant_option, progress_option, sequence_option,
)
from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, check_selection


def _parse_levels(value: str | None) -> tuple[int, ...]:
    """``"2,4"`` → ``(2, 4)``; each an integer >= 2."""
    out = []
    for part in (value or "").replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) < 2:
            raise click.BadParameter(f"expected integer downscale factors >= 2 separated by commas (2,4), found {part!r}")
        out.append(int(part))
    return tuple(sorted(set(out)))


@click.command()
@click.argument("raw", type=click.Path(file_okay=False))
@click.argument("store")
@benchmark_option(svfr=True)
@participant_option()
@sequence_option()
@click.option(
    "--tier", "--image-codec", "image_codec", type=click.Choice(["lossless", "compact", "jpeg"]), default="lossless",
    help=(
        "How frames are stored. lossless: bit-exact, blosc-lz4, fastest to write and read (~1.9x smaller than raw). "
        "compact: bit-exact too, JPEG-XL lossless, ~3x smaller than lossless, slower to read. "
        "jpeg: ~6x smaller than lossless, 40-50 dB PSNR at quality 95. Alpha is always lossless. "
        "(--image-codec is the old name.)"
    ),
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, help="JPEG quality for --tier jpeg.")
@click.option(
    "--levels", "levels", default="", metavar="F[,F...]", callback=lambda ctx, param, value: _parse_levels(value),
    show_default="none",
    help="Also store these downscaled levels (2 = half resolution, 4 = quarter), area-averaged from the decoded "
         "frames during conversion (what 'nersemble-zarr downscale' writes).",
)
@click.option("--no-full", "no_full", is_flag=True, help="With --levels: store only the levels, no full-resolution frames.")
@click.option("--force", is_flag=True, help="Start even when the estimated store size exceeds the free space on the target.")
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
    dry_run: bool = False, levels: tuple[int, ...] = (), no_full: bool = False, force: bool = False,
) -> None:
    """Convert the raw benchmark folder RAW into the Zarr store STORE (a path or an fsspec URL like s3://bucket/x.zarr).

    Resumable: rerunning the same command skips complete units (camera videos, point clouds,
    tracking files, calibrations) and redoes the rest. Exits 1 if any unit failed, or, without --force,
    when the estimated store growth exceeds the free space on the target (nothing written; --dry-run shows both).
    """
    check_selection(benchmarks or ALL_BENCHMARK_NAMES, participants, sequences)
    from nersemble_zarr.pipelines.convert import convert_benchmark

    if dry_run:  # the plan only: reads RAW and STORE, writes nothing (a STORE that does not exist is not created)
        from nersemble_zarr.pipelines.convert import ConvertOptions, plan_conversion

        click.echo(plan_conversion(raw, store, ConvertOptions(
            benchmarks=benchmarks or None, participants=participants or None, sequences=sequences or None,
            image_codec=image_codec, jpeg_quality=jpeg_quality, overwrite=overwrite, levels=levels, full=not no_full,
        ), sample_frames=True).summary())
        return
    report = convert_benchmark(
        raw, store, benchmarks=benchmarks or None, participants=participants or None, sequences=sequences or None,
        image_codec=image_codec, jpeg_quality=jpeg_quality, overwrite=overwrite, progress=progress,
        levels=levels, full=not no_full, force=force, **parallel_kwargs(convert_benchmark, workers, scheduler),
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

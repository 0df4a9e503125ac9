"""``nersemble-zarr download``: fetch a benchmark from the access URL into a raw folder (official layout)."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.cli.options import (
    deprecated_alias, participant_option, progress_option, split_values,
)
from nersemble_zarr.pipelines.download.selection import ASSETS
from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, check_selection
from nersemble_zarr.pipelines.download.engine import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_WORKERS, MAX_BACKOFF


def _ints(values: list[str], what: str) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise click.BadParameter(f"expected integers, got {' '.join(values)!r}", param_hint=what) from None


@click.command(context_settings={"show_default": True})
@click.argument("raw", type=click.Path(file_okay=False, path_type=Path))
@click.argument("benchmark", type=click.Choice(ALL_BENCHMARK_NAMES))
@participant_option(default_help="all of the benchmark")
@click.option("--assets", multiple=True, default=("all",), metavar="NAME",
              help="Assets to fetch; repeat or comma-separate: "
                   + "; ".join(f"{' '.join(names)} ({b})" for b, names in ASSETS.items()) + "; or all.")
@click.option("--pointcloud-frames", multiple=True, default=("first",), metavar="T",
              help="NVS point clouds: 'first' (first timestep of each sequence), 'all', or timesteps "
                   "(repeat or comma-separate) as listed in metadata.json.")
@click.option("--connections", type=click.IntRange(min=1), default=DEFAULT_WORKERS, metavar="N",
              help="Files downloaded in parallel (HTTP connections).")
@deprecated_alias("--workers", "connections", "--connections N", type=click.IntRange(min=1))
@click.option("--overwrite", is_flag=True, help="Download again files that are already complete locally.")
@click.option("--retries", type=click.IntRange(min=0), default=DEFAULT_RETRIES,
              help="Retries per file after connection errors, timeouts and 5xx answers.")
@click.option("--backoff", type=click.FloatRange(min=0), default=DEFAULT_BACKOFF,
              help=f"Seconds before the first retry; doubles with each further failure (max {MAX_BACKOFF:g} s).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT,
              help="Seconds to wait for the server to connect or send more bytes.")
@click.option("--check-sizes", is_flag=True,
              help="Also ask the server for the size of files already present and download again those that "
                   "differ (e.g. left incomplete by another downloader): one HEAD request per file.")
@click.option("--convert", "store", default=None, metavar="STORE",
              help="After a download without failures, convert the downloaded participants into this Zarr "
                   "store (a path or an fsspec URL), as `nersemble-zarr convert RAW STORE` would.")
@progress_option()
def download(
    raw: Path, benchmark: str, participants: tuple[int, ...], assets: tuple[str, ...],
    pointcloud_frames: tuple[str, ...], connections: int, overwrite: bool, retries: int, backoff: float,
    timeout: float, check_sizes: bool, store: str | None, progress: bool,
) -> None:
    """Download BENCHMARK (nvs | mono_flame_avatar | svfr) into RAW/BENCHMARK/ in the official layout.

    The access URL comes from $NERSEMBLE_BENCHMARK_URL or ~/.config/nersemble_benchmark/.env and is
    never printed. metadata.json is fetched first (once) and kept (nvs, mono_flame_avatar; svfr is its
    391 rgb.png images only). Files are written as <name>.part
    and renamed once complete; rerunning the same command skips complete files and resumes partial
    ones. Exits with status 1 if any file failed.
    """
    from nersemble_zarr.pipelines.download.engine import AccessDeniedError, download_benchmark
    from nersemble_zarr.core.errors import NersembleZarrError

    pids = list(participants) or None
    check_selection([benchmark], pids)
    frames_arg = split_values(pointcloud_frames)
    frames: str | list[int] = frames_arg[0] if frames_arg in (["first"], ["all"]) else _ints(frames_arg, "--pointcloud-frames")
    try:
        report = download_benchmark(
            raw, benchmark, participants=pids, assets=split_values(assets) or "all", pointcloud_frames=frames,
            workers=connections, overwrite=overwrite, retries=retries, backoff=backoff, timeout=timeout,
            progress=progress, check_sizes=check_sizes,
        )
    except AccessDeniedError as e:
        if e.report is not None:
            click.echo("\n".join(e.report.summary_lines()))
        raise
    click.echo("\n".join(report.summary_lines()))
    if not report.ok:
        raise NersembleZarrError(
            f"{len(report.failed)} file{'' if len(report.failed) == 1 else 's'} failed to download"
            + (f"; not converting into {store}" if store else "")
            + "; run the same command again to retry and resume them"
        )
    if store is not None:
        from nersemble_zarr.pipelines.convert import convert_benchmark

        converted = convert_benchmark(raw, store, benchmarks=[benchmark], participants=pids, progress=progress)
        click.echo(converted.summary())
        if not converted.ok:
            raise click.exceptions.Exit(1)

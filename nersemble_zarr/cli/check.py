"""``nersemble-zarr check``: a store fsck that needs no raw data."""

from __future__ import annotations

import json

import click

from nersemble_zarr.core.benchmark import BENCHMARK_NAMES


@click.command()
@click.argument("store")
@click.option("--deep", is_flag=True,
              help="Also read and decode every chunk of what is marked complete (checksums verify where the "
                   "store has them). Reads the whole store.  [default: shard indexes and metadata only]")
@click.option("--repair", is_flag=True,
              help="Remove leftover temporary files and unmark whatever is damaged (a camera from complete_cameras, "
                   "a group's complete flag; a damaged level or an array whose zarr.json is lost is deleted), then "
                   "re-consolidate. Rerun convert / downscale / flame afterwards to redo exactly that.")
@click.option("--benchmark", "-b", "benchmarks", type=click.Choice(BENCHMARK_NAMES), multiple=True,
              help="Only this benchmark (repeatable).  [default: all in STORE]")
@click.option("--participant", "-p", "participants", type=int, multiple=True,
              help="Only this participant (repeatable).  [default: all in STORE]")
@click.option("--json", "json_out", metavar="FILE", default=None,
              help="Write the report as JSON to FILE ('-' = stdout, replacing the table): {store, ok, deep, repair, "
                   "problems: [{kind, key, array, benchmark, participant, sequence, camera, timesteps, message, "
                   "repair}], repaired, objects_checked, bytes_read, seconds}.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=8, help="Threads reading objects.")
@click.option("--progress/--no-progress", default=True, help="Show objects checked on stderr.")
def check(
    store: str, deep: bool, repair: bool, benchmarks: tuple[str, ...], participants: tuple[int, ...],
    json_out: str | None, workers: int, progress: bool,
) -> None:
    """Check STORE (path or fsspec URL) without raw data: every camera and group marked complete has all its
    shards; shard indexes verify (crc32c) and point inside their shard; every zarr.json parses and agrees with
    the consolidated metadata; completion markers agree with what is there (levels have intrinsics and attrs,
    tracking has all variables, FLAME meshes have their tracking and faces); leftover temporary files of a
    killed write are listed.

    Prints a table of problems (kind, where, object, message) and a summary line. Exit status: 0 when the
    store is clean, 1 when any problem was found (also with --repair, which says what it did in each row).
    """
    from nersemble_zarr.pipelines.check import check_store, format_report

    report = check_store(
        store, deep=deep, repair=repair, benchmarks=benchmarks or None, participants=participants or None,
        workers=workers, progress=progress,
    )
    if json_out is not None:
        text = json.dumps(report.to_dict(), indent=2)
        if json_out == "-":
            click.echo(text)
        else:
            from pathlib import Path

            Path(json_out).write_text(text + "\n")
    if json_out != "-":
        click.echo(format_report(report))
        for line in report.repaired:
            click.echo(f"repair: {line}")
    if not report.ok:
        raise click.exceptions.Exit(1)

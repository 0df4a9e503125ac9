"""``nersemble-zarr check``: a store fsck that needs no raw data."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    benchmark_option, emit_report, json_option, parallel_kwargs, parallel_options, participant_option,
    progress_option,
)


@click.command()
@click.argument("store")
@click.option("--deep", is_flag=True,
              help="Also read and decode every chunk of what is marked complete (checksums verify where the "
                   "store has them). Reads the whole store.  [default: shard indexes and metadata only]")
@click.option("--repair", is_flag=True,
              help="Remove leftover temporary files and unmark whatever is damaged (a camera from complete_cameras, "
                   "a group's complete flag; a damaged level or an array whose zarr.json is lost is deleted), then "
                   "re-consolidate. Rerun convert / downscale / flame afterwards to redo exactly that.")
@benchmark_option(svfr=True)
@participant_option()
@json_option()
@parallel_options(legacy_threads=True)
@progress_option()
def check(
    store: str, deep: bool, repair: bool, benchmarks: tuple[str, ...], participants: tuple[int, ...],
    json_out: str | None, workers: int | None, scheduler: str | None, threads: int | None, progress: bool,
) -> None:
    """Check STORE (path or fsspec URL) without raw data: every camera and group marked complete has all its
    shards; shard indexes verify (crc32c) and point inside their shard; every zarr.json parses and agrees with
    the consolidated metadata; completion markers agree with what is there (levels have intrinsics and attrs,
    tracking has all variables, FLAME meshes have their tracking and faces); leftover temporary files of a
    killed write are listed.

    Prints a table of problems (kind, where, object, message) and a summary line; --json gives the report
    {store, ok, deep, repair, problems: [{kind, key, array, benchmark, participant, sequence, camera,
    timesteps, message, repair}], repaired, objects_checked, bytes_read, seconds}. Exit status: 0 when the
    store is clean, 1 when any problem was found (also with --repair, which says what it did in each row).
    """
    from nersemble_zarr.pipelines.check import check_store, format_report

    report = check_store(
        store, deep=deep, repair=repair, benchmarks=benchmarks or None, participants=participants or None,
        progress=progress, **parallel_kwargs(check_store, workers, scheduler, threads),
    )
    emit_report(json_out, report.to_dict,
                lambda: "\n".join([format_report(report), *(f"repair: {line}" for line in report.repaired)]))
    if not report.ok:
        raise click.exceptions.Exit(1)

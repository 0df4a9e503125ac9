"""``nersemble-zarr submit`` and ``nersemble-zarr validate``: pack renders into a submission zip, check a zip."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import (
    emit_report, json_option, parallel_kwargs, parallel_options, participant_option, progress_option,
)
from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, SVFR, check_selection

_METADATA_HELP = (
    "Frame counts to enforce: a raw benchmark folder (holding <benchmark>/metadata.json), a metadata.json "
    "file, or a converted Zarr store (path or URL)."
)


def _note_starting_over(out: str, append: bool) -> None:
    """Say that a rerun without ``--append`` discards the unfinished submission staged for ``out``."""
    from nersemble_zarr.submission.staging import staging_folder

    staging = staging_folder(out)
    if staging.exists() and not append:
        click.echo(f"note: starting over; the unfinished submission in {staging} is discarded "
                   f"(--append continues it instead)", err=True)


@click.command()
@click.argument("renders")
@click.argument("benchmark", type=click.Choice(ALL_BENCHMARK_NAMES))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The submission zip to write.")
@click.option("--metadata", "-m", default=None, help=_METADATA_HELP + "  [default: no frame-count check]")
@participant_option(default_help="all in RENDERS")
@parallel_options(legacy_threads=True)
@click.option("--append", "-a", is_flag=True,
              help="Add to the unfinished submission (<out>.partial/) or to the finalized zip at --out; "
                   "videos already there are kept and not re-encoded.")
@click.option("--overwrite", is_flag=True, help="With --append, re-encode videos the submission already holds.")
@click.option("--no-finalize", is_flag=True,
              help="Keep the videos staged in <out>.partial/ instead of writing the zip (finish later with --append).")
@click.option("--float-input", is_flag=True, help="Accept float renders in [0, 1] (else uint8 0-255 is required).")
@click.option("--faces", default=None, type=click.Path(dir_okay=False, exists=True),
              help="svfr: the mesh faces (F, 3) int as a .npy file, or the FLAME model (flame2023.pkl) to take "
                   "its faces from, when MESHES holds no 'faces' array.")
@click.option("--validation", is_flag=True,
              help="Also accept train cameras (renders of published frames): a zip for `nersemble-zarr evaluate`, "
                   "not for the server.")
@progress_option()
def submit(
    renders: str,
    benchmark: str,
    out: str,
    metadata: str | None,
    participants: tuple[int, ...],
    workers: int | None,
    scheduler: str | None,
    threads: int | None,
    append: bool,
    overwrite: bool,
    no_finalize: bool,
    float_input: bool,
    progress: bool,
    validation: bool = False,
    faces: str | None = None,
) -> None:
    """Encode the renders in RENDERS into a BENCHMARK submission zip (H.264, crf 14, yuv420p).

    RENDERS is a Zarr group holding one array per video at <pid:03d>/<sequence>/<serial>, shape
    (T, H, W, 3) uint8, or per sequence an `images` array (camera, T, H, W, 3) with a `camera`
    coordinate. Every video is checked (scored camera, shape, dtype, frame count) before any is
    encoded; the zip appears at --out only when complete.

    For svfr, RENDERS is a Zarr group (or .npz) of meshes: `posed` and/or `neutral` vertices (N, V, 3),
    `faces` (F, 3) (or --faces), optional `landmarks_posed`/`landmarks_neutral` (N, 7, 3) NoW landmarks
    (required unless V is 5023, FLAME topology) and optional `keys` (N,) strings PID/FOLDER
    (e.g. 017/EMO-1-shout+laugh_156_221501007); without `keys`, N is 391 in official order.
    """
    if benchmark == SVFR:
        _submit_svfr(renders, out, faces, participants, workers, scheduler, threads, append, overwrite,
                     no_finalize, progress, metadata=metadata, float_input=float_input, validation=validation)
        return
    from nersemble_zarr.core.benchmark import get_benchmark
    from nersemble_zarr.submission.writer import write_submission

    check_selection([benchmark], participants)
    parallel = parallel_kwargs(write_submission, workers, scheduler, threads)
    _note_starting_over(out, append)
    result, encoded = write_submission(
        renders, benchmark, out, metadata=metadata, mode="a" if append else "w",
        participants=participants or None, float_input=float_input, overwrite=overwrite,
        finalize=not no_finalize, progress=progress, validation=validation, **parallel,
    )
    n_scored = len(get_benchmark(benchmark).submission_keys())
    if no_finalize:
        n_staged = sum(1 for _ in result.rglob("cam_*.mp4"))
        click.echo(f"encoded {len(encoded)} videos; {n_staged}/{n_scored} staged in {result} (not finalized)")
        return
    import zipfile

    with zipfile.ZipFile(result) as zf:
        n_videos = len(zf.infolist())
    size = result.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    click.echo(f"encoded {len(encoded)} videos; wrote {result} ({shown}) with {n_videos}/{n_scored} scored videos")
    if n_videos < n_scored:
        click.echo(f"the submission is incomplete: run `nersemble-zarr validate {result} {benchmark}` to list what is missing")


def _submit_svfr(meshes: str, out: str, faces: str | None, participants: tuple[int, ...], workers: int | None,
                 scheduler: str | None, threads: int | None, append: bool, overwrite: bool, no_finalize: bool,
                 progress: bool, **video_only: object) -> None:
    """``submit MESHES svfr``: write the meshes, print one summary line."""
    from nersemble_zarr.core.benchmark import SVFR_IMAGE_KEYS
    from nersemble_zarr.submission.svfr import write_svfr_from

    given = [f"--{k.replace('_', '-')}" for k, v in video_only.items() if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply to the video benchmarks, not to svfr")
    check_selection([SVFR], participants)
    parallel = parallel_kwargs(write_svfr_from, workers, scheduler, threads)
    _note_starting_over(out, append)
    result, written = write_svfr_from(meshes, out, faces=faces, participants=participants or None,
                                      mode="a" if append else "w", overwrite=overwrite, finalize=not no_finalize,
                                      progress=progress, **parallel)
    names = [p.relative_to(result).as_posix() for p in result.rglob("mesh_*.ply")] if no_finalize else None
    if names is None:
        import zipfile

        with zipfile.ZipFile(result) as zf:
            names = zf.namelist()
    counts = ", ".join(f"{t} {sum(n.endswith(f'/mesh_{t}.ply') for n in names)}/{len(SVFR_IMAGE_KEYS)}"
                       for t in ("posed", "neutral"))
    where = f"{result} (staged, not finalized)" if no_finalize else str(result)
    click.echo(f"wrote {len(written)} meshes; {where} holds {counts}")


@click.command()
@click.argument("zip_path", metavar="ZIP", type=click.Path(dir_okay=False))
@click.argument("benchmark", type=click.Choice(ALL_BENCHMARK_NAMES))
@click.option("--metadata", "-m", default=None,
              help=_METADATA_HELP + "  [default: frame counts only compared between cameras]")
@participant_option(default_help="all; fewer for a partial submission")
@json_option()
@progress_option()
def validate(
    zip_path: str, benchmark: str, metadata: str | None, participants: tuple[int, ...], json_out: str | None,
    progress: bool,
) -> None:
    """Check a BENCHMARK submission ZIP offline, decoding every video (svfr: parsing every mesh); exit code 1 on
    any problem.

    Checks: every expected video present, no extra files or foreign folders, no absolute/'..'
    paths, no duplicates, each video decodes to the end with the metadata's frame count, at the
    benchmark's resolution and fps, H.264 in yuv420p. A crf other than 14 is a warning.
    svfr: what the official validator reports (missing/empty meshes, missing or misshaped landmarks,
    unexpected files, no task) plus unparsable PLY, face indices out of range, NaN/inf vertices,
    degenerate meshes and keys spelled with the unpadded timestep.
    """
    check_selection([benchmark], participants)
    if benchmark == SVFR and metadata is not None:
        raise click.UsageError("--metadata applies to the video benchmarks, not to svfr")
    from nersemble_zarr.submission.validate import format_report, validate_submission

    report = validate_submission(
        zip_path, benchmark, metadata=metadata, participants=participants or None, progress=progress
    )
    emit_report(json_out, report.to_dict, lambda: format_report(report))
    if not report.ok:
        raise click.exceptions.Exit(1)

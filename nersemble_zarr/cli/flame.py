"""``nersemble-zarr flame``: evaluate FLAME meshes of every tracked sequence into the store."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.cli.options import parallel_kwargs, parallel_options, progress_option


@click.command(context_settings={"show_default": True})
@click.argument("store", type=str)
@click.option("--flame-model", "flame_model", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="FLAME 2023 model pickle (or a folder holding flame2023.pkl). "
                   "Default: $FLAME_MODEL_PATH or FLAME_MODEL_PATH in ~/.config/nersemble_benchmark/.env.")
@click.option("--tracking-version", type=click.Choice(["1", "2"]), default="2",
              help="Which FLAME tracking to evaluate (2 is the current one, used for submissions).")
@parallel_options()
@click.option("--frames-per-chunk", type=click.IntRange(min=1), default=64,
              help="Frames per stored chunk of vertices (and per parallel task).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64,
              help="Timesteps per batched FLAME evaluation within a chunk; bounds memory (~1 MB per timestep).")
@click.option("--device", default="cpu", help="Torch device the forward runs on (cpu, cuda, cuda:1, ...).")
@progress_option()
def flame(
    store: str, flame_model: Path | None, tracking_version: str, workers: int | None, scheduler: str | None,
    frames_per_chunk: int, batch_size: int, device: str, progress: bool,
) -> None:
    """Write FLAME vertices for every sequence with tracking (train and test) into STORE.

    Per sequence: <benchmark>/<pid>/<sequence>/flame_v<N>/vertices (timestep, vertex, xyz) float32, metres,
    world coordinates, exactly as the official FlameProvider evaluates them; per benchmark:
    <benchmark>/flame_faces (face, corner) int64. Resumable: sequences already evaluated with the same
    model file are skipped, unfinished ones are redone.
    """
    from nersemble_zarr.pipelines.flame import write_flame_to_store
    from nersemble_zarr.flame.model import FlameModel

    parallel = parallel_kwargs(write_flame_to_store, workers, scheduler)
    model = FlameModel.load(flame_model, device=device)
    summary = write_flame_to_store(
        store, model, version=int(tracking_version), frames_per_chunk=frames_per_chunk, chunk_size=batch_size,
        progress=progress, **parallel,
    )
    rate = summary.frames_written / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"FLAME v{tracking_version} ({model.file_name}): {len(summary.written)} sequence(s) written "
        f"({summary.frames_written} frames, {summary.seconds:.1f} s, {rate:.0f} frames/s), "
        f"{len(summary.skipped_complete)} already complete"
    )
    if summary.skipped_incomplete_tracking:
        click.echo(
            f"skipped {len(summary.skipped_incomplete_tracking)} sequence(s) whose tracking is not completely "
            f"converted: {', '.join(summary.skipped_incomplete_tracking)}"
        )
    if not summary.written and not summary.skipped_complete:
        click.echo(f"no sequence in {store} holds tracking_v{tracking_version}")

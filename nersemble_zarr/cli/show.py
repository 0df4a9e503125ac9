"""``nersemble-zarr show``: a contact sheet of every camera at one timestep, and a plot of the camera rig."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import benchmark_option, format_size, participant_option, sequence_option


@click.command()
@click.argument("store")
@benchmark_option(one=True, required=True)
@participant_option(one=True, required=True)
@sequence_option(one=True, default_help="the participant's first with video")
@click.option("--timestep", "-t", type=int, default=None, help="Timestep (video frame index).  [default: the middle one]")
@click.option("--level", type=click.IntRange(min=1), default=1, help="Stored level to read (2 = half resolution).")
@click.option("--tile-width", type=click.IntRange(min=16), default=240, help="Width of one camera's tile in pixels.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, help="Contact sheet PNG to write.")
@click.option("--cameras-plot", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of the rig seen from above and from the side, hold-out cameras marked.")
def show(
    store: str,
    benchmark: str,
    participant: int,
    sequence: str | None,
    timestep: int | None,
    level: int,
    tile_width: int,
    out: str | None,
    cameras_plot: str | None,
) -> None:
    """Draw pictures of STORE (path or fsspec URL): every camera at one timestep with the alpha
    outline (--out), and the camera rig (--cameras-plot)."""
    if out is None and cameras_plot is None:
        raise click.UsageError("nothing to draw: pass --out SHEET.png and/or --cameras-plot RIG.png")
    from nersemble_zarr.read.show import cameras_plot as plot_rig
    from nersemble_zarr.read.show import contact_sheet

    if out is not None:
        info = contact_sheet(store, benchmark, participant, out, sequence=sequence, timestep=timestep,
                             level=level, tile_width=tile_width)
        click.echo(
            f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px): {len(info.cameras)} cameras of "
            f"{benchmark} {participant:03d} {info.sequence} at timestep {info.timestep}"
        )
    if cameras_plot is not None:
        path = plot_rig(store, benchmark, participant, cameras_plot)
        click.echo(f"wrote {path}: camera rig of {benchmark} {participant:03d}")

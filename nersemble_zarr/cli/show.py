"""``nersemble-zarr show``: pictures of a store, headless (PNG / mp4): a contact sheet of every camera, the camera
rig, the tracked FLAME mesh over the frames (and over time), a point cloud projected into cameras."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.cli.options import (
    benchmark_option,
    camera_option,
    format_size,
    participant_option,
    progress_option,
    sequence_option,
    split_values,
)


def _timesteps(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[int, ...]:
    values = split_values(value)
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise click.BadParameter(f"expected integer timesteps, got {' '.join(values)!r}", ctx=ctx, param=param) from None


@click.command()
@click.argument("store")
@benchmark_option(one=True, required=True, svfr=True)
@participant_option(one=True, required=True)
@sequence_option(one=True, default_help="the participant's first with video (--flame, --video: with tracking; "
                                         "--pointcloud: with point clouds)")
@camera_option()
@click.option("--timestep", "-t", "timesteps", multiple=True, metavar="T", callback=_timesteps,
              help="Timestep (video frame index); --flame takes several (one row each), --video a subset; repeat "
                   "or comma-separate.  [default: the middle one; --pointcloud: the first cloud; --video: all tracked]")
@click.option("--level", type=click.IntRange(min=1), default=1,
              help="Draw at 1/LEVEL resolution (the stored level, else area-averaged on read; --out: stored only).")
@click.option("--tile-width", type=click.IntRange(min=16), default=240, help="--out: width of one camera's tile in pixels.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, help="Contact sheet PNG to write.")
@click.option("--cameras-plot", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of the rig seen from above and from the side, hold-out cameras marked.")
@click.option("--flame", "flame_png", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write a PNG of the tracked FLAME mesh over the frames: a row per timestep, a column per camera "
                   "(default cameras: those with video, then the evaluated hold-out ones, over black).")
@click.option("--video", "video_mp4", type=click.Path(dir_okay=False), default=None, metavar="MP4",
              help="Write an mp4 of the FLAME overlay over time (cameras side by side, streamed).")
@click.option("--pointcloud", "pointcloud_png", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write a PNG of a timestep's point cloud projected into the cameras (default: the first with "
                   "video), nearest points on top.")
@click.option("--flame-model", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="FLAME 2023 model pickle (or folder) for --flame/--video when the store holds no meshes from "
                   "'nersemble-zarr flame'.  [default: $FLAME_MODEL_PATH or the .env]")
@click.option("--tracking-version", type=click.Choice(["1", "2"]), default="2", help="FLAME tracking to draw.")
@click.option("--opacity", type=click.FloatRange(0, 1), default=0.6, help="Opacity of the shaded FLAME mesh.")
@click.option("--point-radius", type=click.IntRange(min=0), default=None,
              help="Points are squares of 2*R+1 pixels.  [default: from the frame size]")
@progress_option()
def show(
    store: str,
    benchmark: str,
    participant: int,
    sequence: str | None,
    cameras: tuple[str, ...],
    timesteps: tuple[int, ...],
    level: int,
    tile_width: int,
    out: str | None,
    cameras_plot: str | None,
    flame_png: str | None,
    video_mp4: str | None,
    pointcloud_png: str | None,
    flame_model: Path | None,
    tracking_version: str,
    opacity: float,
    point_radius: int | None,
    progress: bool,
) -> None:
    """Draw pictures of STORE (path or fsspec URL), headless: every camera at one timestep with the alpha
    outline (--out), the camera rig (--cameras-plot), the tracked FLAME mesh over the frames (--flame PNG,
    --video MP4), a point cloud projected into cameras (--pointcloud PNG)."""
    if not any((out, cameras_plot, flame_png, video_mp4, pointcloud_png)):
        raise click.UsageError("nothing to draw: pass --out SHEET.png, --cameras-plot RIG.png, --flame PNG, "
                               "--video MP4 and/or --pointcloud PNG")
    for name, given in (("--out", out), ("--pointcloud", pointcloud_png)):
        if given and len(timesteps) > 1:
            raise click.UsageError(f"{name} draws one timestep, got {len(timesteps)}: {', '.join(map(str, timesteps))}")
    one_t = timesteps[0] if timesteps else None
    who = f"{benchmark} {participant:03d}"
    if benchmark == "svfr":  # still images, no calibration or video: the contact sheet only
        if out is None or any((cameras_plot, flame_png, video_mp4, pointcloud_png, sequence, cameras, timesteps)):
            raise click.UsageError("svfr has still images only: show -b svfr -p PID --out SHEET.png (no "
                                   "--cameras-plot/--flame/--video/--pointcloud, -s, -c or -t)")
        from nersemble_zarr.read.svfr import svfr_contact_sheet

        info = svfr_contact_sheet(store, participant, out, tile_width=tile_width)
        click.echo(f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px): {len(info.cameras)} images of {who}")
        return
    if out is not None:
        from nersemble_zarr.read.show import contact_sheet

        info = contact_sheet(store, benchmark, participant, out, sequence=sequence, timestep=one_t,
                             level=level, tile_width=tile_width)
        click.echo(f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px): {len(info.cameras)} cameras of "
                   f"{who} {info.sequence} at timestep {info.timestep}")
    if cameras_plot is not None:
        from nersemble_zarr.read.show import cameras_plot as plot_rig

        path = plot_rig(store, benchmark, participant, cameras_plot)
        click.echo(f"wrote {path}: camera rig of {who}")
    if pointcloud_png is not None:
        from nersemble_zarr.read.show import pointcloud_overlay

        info = pointcloud_overlay(store, benchmark, participant, pointcloud_png, sequence=sequence,
                                  cameras=cameras or None, timestep=one_t, level=level, radius=point_radius)
        click.echo(f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px): {info.source} of {who} "
                   f"{info.sequence} at timestep {info.timesteps[0]} in cameras {', '.join(info.cameras)}")
    if flame_png is not None or video_mp4 is not None:
        from nersemble_zarr.flame.show import flame_overlay, flame_overlay_video

        common = dict(sequence=sequence, cameras=cameras or None, level=level, flame_model=flame_model,
                      tracking_version=int(tracking_version), opacity=opacity)
        if flame_png is not None:
            info = flame_overlay(store, benchmark, participant, flame_png, timesteps=timesteps or None, **common)
            click.echo(f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px): {info.source} over "
                       f"{who} {info.sequence}, timesteps {', '.join(map(str, info.timesteps))}, cameras "
                       f"{', '.join(info.cameras)}")
        if video_mp4 is not None:
            info = flame_overlay_video(store, benchmark, participant, video_mp4, timesteps=timesteps or None,
                                       progress=progress, **common)
            click.echo(f"wrote {info.path} ({format_size(info.size[1], info.size[0])} px, {len(info.timesteps)} "
                       f"frames): {info.source} over {who} {info.sequence}, cameras {', '.join(info.cameras)}")

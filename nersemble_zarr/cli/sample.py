"""``nersemble-zarr sample``: generate a small sample benchmark folder in the official layout."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import click

from nersemble_zarr.cli.options import (
    parse_participants, benchmark_option, deprecated_alias, parallel_kwargs, parallel_options, participant_option,
    progress_option,
)
from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, check_selection
from nersemble_zarr.testing.sample import DEFAULT_FRAMES, DEFAULT_PARTICIPANTS, DEFAULT_SCALE, DEFAULT_SVFR_IMAGES


class _SvfrImagesType(click.ParamType):
    """A positive count or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx) -> int | str:
        if isinstance(value, int) or value == "all":
            return value
        try:
            n = int(str(value).strip())
        except ValueError:
            self.fail(f"expected a number of images or 'all', got {value!r}", param, ctx)
        if n < 1:
            self.fail(f"must be at least 1, got {value}", param, ctx)
        return n


class _ScaleType(click.ParamType):
    """A scale in (0, 1] written as a decimal (0.125) or a fraction (1/8)."""

    name = "SCALE"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            scale = float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"expected a number or fraction such as 0.25 or 1/8, got {value!r}", param, ctx)
        if not 0 < scale <= 1:
            self.fail(f"must be in (0, 1], got {value}", param, ctx)
        return scale


_DEFAULT_IDS = ", ".join(f"{p} ({b})" for b, pids in DEFAULT_PARTICIPANTS.items() for p in pids)


@click.command(context_settings={"show_default": True})
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@benchmark_option(svfr=True)
@participant_option(default_help=_DEFAULT_IDS)
@deprecated_alias("--participants", "participants", "-p/--participant", merge=True, multiple=True,
                  callback=parse_participants)
@click.option("--frames", type=click.IntRange(min=1), default=DEFAULT_FRAMES,
              help="Frames per sequence at most: each sequence gets N, N-1 or N-2 (drawn from the seed), so "
                   "frame counts are never all equal.")
@click.option("--scale", type=_ScaleType(), default=str(Fraction(DEFAULT_SCALE).limit_denominator()),
              help="Linear scale of the published resolution (width x height: NVS 1100x1604, mono 512x512), "
                   "sizes rounded to even: 1/8 gives 138x200 and 64x64; 1 gives full resolution.")
@click.option("--seed", type=int, default=0, help="Random seed: the same arguments write the same bytes.")
@click.option("--pointclouds", type=click.Choice(["first", "all"]), default="all",
              help="NVS point clouds for every timestep or only the first.")
@click.option("--points", type=click.IntRange(min=1), default=None,
              help="Points per NVS point cloud (real clouds have 100k-1M). [default: 60000 x scale^2, at least 400]")
@click.option("--svfr-images", "svfr_images", type=_SvfrImagesType(), default=str(DEFAULT_SVFR_IMAGES),
              help="SVFR: 512x512 rgb.png images per participant (its first image keys in official order), or "
                   "'all' (every key; without -p all 20 participants, the 391 images).")
@click.option("--flame-model", "flame_model", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write a synthetic FLAME-2023-shaped model DIR/flame2023.pkl (for FLAME "
                                  "code without the licensed model). [default: none]")
@parallel_options()
@progress_option()
def sample(
    out: Path, benchmarks: tuple[str, ...], participants: tuple[int, ...], frames: int, scale: float, seed: int,
    pointclouds: str, points: int | None, svfr_images: int | str, flame_model: Path | None, workers: int | None, scheduler: str | None, progress: bool,
) -> None:
    """Generate a sample benchmark in OUT/<benchmark>/ with the official layout and file formats.

    Rendered moving head videos (libx264 mp4) with alpha maps, calibration for all 16 cameras,
    NVS point clouds (.pcd), mono FLAME tracking (v1 and v2), both metadata.json files, and SVFR
    512x512 rgb.png images (by default 3 for each of participants 17 and 60). Loads
    in the official nersemble_benchmark data managers. Rerunning with the same arguments skips
    files that are already complete. Each participant goes to the benchmark that has it;
    metadata.json always lists every participant.
    """
    from nersemble_zarr.testing.sample import generate_sample

    started = time.perf_counter()
    names = benchmarks or ALL_BENCHMARK_NAMES
    pids = list(participants) or None
    check_selection(names, pids)
    root = generate_sample(
        out, benchmarks=names, participants=pids, frames=frames, scale=scale, seed=seed, pointclouds=pointclouds, points=points,
        svfr_images=svfr_images, flame_model_dir=flame_model, progress=progress, **parallel_kwargs(generate_sample, workers, scheduler),
    )
    for name in (n for n in names if (root / n).is_dir()):
        files = [f for f in (root / name).rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        click.echo(f"{root / name}: {len(files)} files, {size / 1e6:.1f} MB")
    if flame_model is not None:
        click.echo(f"synthetic FLAME model: {flame_model / 'flame2023.pkl'}")
    click.echo(f"done in {time.perf_counter() - started:.1f} s")

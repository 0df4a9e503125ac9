"""``nersemble-zarr sample``: generate a small sample benchmark folder in the official layout."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import click

from nersemble_zarr.core.benchmark import BENCHMARK_NAMES, check_selection
from nersemble_zarr.testing.sample import DEFAULT_FRAMES, DEFAULT_PARTICIPANTS, DEFAULT_SCALE


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


def _split_ints(values: tuple[str, ...]) -> list[int]:
    items = [v for value in values for v in value.replace(",", " ").split()]
    try:
        return [int(v) for v in items]
    except ValueError:
        raise click.BadParameter(f"expected participant ids, got {' '.join(items)!r}", param_hint="--participants") from None


_DEFAULT_IDS = ", ".join(f"{p} ({b})" for b, pids in DEFAULT_PARTICIPANTS.items() for p in pids)


@click.command(context_settings={"show_default": True})
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--benchmark", "benchmark", type=click.Choice(BENCHMARK_NAMES + ("all",)), default="all",
              help="Which benchmark folder(s) to generate.")
@click.option("-p", "--participants", multiple=True, metavar="ID",
              help=f"Participant ids to generate files for; repeat or comma-separate. Each goes to the benchmark "
                   f"that has it; metadata.json always lists every participant. [default: {_DEFAULT_IDS}]")
@click.option("--frames", type=click.IntRange(min=1), default=DEFAULT_FRAMES,
              help="Frames per sequence at most: each sequence gets N, N-1 or N-2 (drawn from the seed), so "
                   "frame counts are never all equal.")
@click.option("--scale", type=_ScaleType(), default=str(Fraction(DEFAULT_SCALE).limit_denominator()),
              help="Linear scale of the published resolution (NVS 1100x1604, mono 512x512), sizes rounded to "
                   "even: 1/8 gives 138x200 and 64x64; 1 gives full resolution.")
@click.option("--seed", type=int, default=0, help="Random seed: the same arguments write the same bytes.")
@click.option("--pointclouds", type=click.Choice(["first", "all"]), default="all",
              help="NVS point clouds for every timestep or only the first.")
@click.option("--flame-model", "flame_model", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write a synthetic FLAME-2023-shaped model DIR/flame2023.pkl (for FLAME "
                                  "code without the licensed model). [default: none]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Videos encoded in parallel. [default: up to 4, by CPU count]")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar on stderr.")
def sample(
    out: Path, benchmark: str, participants: tuple[str, ...], frames: int, scale: float, seed: int,
    pointclouds: str, flame_model: Path | None, workers: int | None, no_progress: bool,
) -> None:
    """Generate a sample benchmark in OUT/<benchmark>/ with the official layout and file formats.

    Rendered moving head videos (libx264 mp4) with alpha maps, calibration for all 16 cameras,
    NVS point clouds (.pcd), mono FLAME tracking (v1 and v2) and both metadata.json files. Loads
    in the official nersemble_benchmark data managers. Rerunning with the same arguments skips
    files that are already complete.
    """
    from nersemble_zarr.testing.sample import generate_sample

    started = time.perf_counter()
    names = BENCHMARK_NAMES if benchmark == "all" else (benchmark,)
    pids = _split_ints(participants) or None
    check_selection(names, pids)
    root = generate_sample(
        out, benchmarks=names, participants=pids, frames=frames, scale=scale,
        seed=seed, pointclouds=pointclouds, flame_model_dir=flame_model, workers=workers, progress=not no_progress,
    )
    for name in names:
        files = [f for f in (root / name).rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        click.echo(f"{root / name}: {len(files)} files, {size / 1e6:.1f} MB")
    if flame_model is not None:
        click.echo(f"synthetic FLAME model: {flame_model / 'flame2023.pkl'}")
    click.echo(f"done in {time.perf_counter() - started:.1f} s")

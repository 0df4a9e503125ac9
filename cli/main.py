"""``nersemble-zarr``: the command group. Each command lives in its own module and is imported on use.

A command module holds one click command that parses options, calls one library function and
prints a short summary; library imports stay inside the command function so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

# command name -> "module:attribute" below nersemble_zarr.cli
COMMANDS: dict[str, str] = {
    "sample": "sample:sample",
    "download": "download:download",
    "convert": "convert:convert",
    "verify": "convert:verify",
    "info": "info:info",
    "downscale": "downscale:downscale",
    "show": "show:show",
    "flame": "flame:flame",
    "submit": "submission:submit",
    "validate": "submission:validate",
    "check": "check:check",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command (or the command list) is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"nersemble_zarr.cli.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"nersemble_zarr.cli.{module_name}":
                return None  # command not built yet
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line error messages.")
@click.version_option(package_name="nersemble-zarr")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """nersemble-zarr: the NeRSemble benchmarks as chunked Zarr v3 stores.

    Download the benchmark, convert its mp4/pcd/npz/json files into a sharded Zarr store, read it
    lazily with xarray/dask, evaluate FLAME meshes in batches, and write and validate submissions.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the group, turning library errors into one-line messages."""
    from nersemble_zarr.errors import NersembleZarrError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="nersemble-zarr", standalone_mode=False)
        if isinstance(rc, int) and rc != 0:  # a command's ctx.exit(n) / Exit(n) is returned, not raised
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except NersembleZarrError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

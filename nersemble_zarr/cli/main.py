"""``nersemble-zarr``: the command group. Each command lives in its own module and is imported on use.

A command module holds one click command that parses options, calls one library function and
prints a short summary; library imports stay inside the command function so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click

#: What a Ctrl-C (SIGINT) prints, alone on stderr, before the command exits with status 130.
INTERRUPTED_MESSAGE = "interrupted; rerun the same command to resume"
INTERRUPTED_EXIT_CODE = 130
PROG_NAME = "nersemble-zarr"


def _in_spawned_worker() -> bool:
    """True while multiprocessing's "spawn" start method re-runs the parent's main script (which imports
    this module) in a new worker process: it runs it as a fresh module "__mp_main__", whereas in any other
    process that imported multiprocessing "__mp_main__" is merely another name of "__main__"."""
    mp_main = sys.modules.get("__mp_main__")
    return mp_main is not None and mp_main is not sys.modules.get("__main__")


if _in_spawned_worker() and threading.current_thread() is threading.main_thread():
    # A worker process of a command (a dask multiprocessing pool, the processes of a --workers N local
    # cluster). A terminal's Ctrl-C reaches every process of the foreground group: the worker ignores it
    # (else each prints a KeyboardInterrupt traceback); the command stops its workers while it cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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
    "evaluate": "evaluate:evaluate",
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


def exit_interrupted() -> None:
    """Print :data:`INTERRUPTED_MESSAGE` as the last line on stderr and end the process with status 130 now.

    ``os._exit``: the command's own cleanup (``finally`` blocks: locks released, temporary files removed,
    worker pools shut down) has already run while the interrupt propagated; what is left are background
    threads (zarr's event loop, dask and download workers) whose teardown at interpreter exit prints asyncio
    noise ("Task was destroyed but it is pending", "Exception ignored in ...") or waits for them.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001  a closed or broken stream must not stop the exit
            pass
    if "multiprocessing" in sys.modules:
        # run the finalizers of the worker pools' semaphores the command has let go, else multiprocessing's
        # resource tracker warns of "leaked semaphore objects" when this process ends without them; and
        # say nothing of what collecting finds (asyncio's "Task exception was never retrieved", ...)
        import gc
        import logging
        import warnings

        logging.disable(logging.CRITICAL)
        warnings.simplefilter("ignore")
        sys.unraisablehook = lambda unraisable: None
        gc.collect()
    lead = ""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # a progress bar may be drawn: keep worker threads from redrawing it after the message
        try:
            tqdm.tqdm.get_lock().acquire(timeout=1)
            if sys.stderr.isatty():
                lead = "\r\033[K"  # over the bar's unfinished line (and the terminal's "^C")
        except Exception:  # noqa: BLE001
            pass
    try:
        os.write(2, f"{lead}{INTERRUPTED_MESSAGE}\n".encode())
    except OSError:
        pass
    os._exit(INTERRUPTED_EXIT_CODE)


class _Interrupts:
    """SIGINT while a command runs: the first raises ``KeyboardInterrupt`` (the command cleans up on its way
    out), a second one exits at once. ``count`` says how many arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.pid = os.getpid()

    def handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:
            # a child forked to exec a program (subprocess with preexec_fn, as imageio-ffmpeg starts ffmpeg)
            # runs Python between fork and exec: raising there prints "Exception ignored in _after_fork";
            # the command's own process handles the interrupt, the child execs or is reaped with it
            return
        self.count += 1
        if self.count > 1:
            exit_interrupted()
        raise KeyboardInterrupt


@contextmanager
def _catch_interrupts() -> Iterator[_Interrupts]:
    interrupts = _Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, interrupts.handle)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)


def _usage_line(e: click.ClickException) -> str:
    """A click usage error (unknown option, a value outside its choices, ...) as one line."""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return f"error: {message}"


def _invoke(argv: list[str] | None) -> object:
    """Parse ``argv`` and run the command; every exception reaches the caller as raised.

    Not ``cli.main()``: it turns a KeyboardInterrupt into ``Abort`` after printing an empty line to
    stderr, which would precede the one line an interrupt prints. Shell completion still goes through it.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if "_NERSEMBLE_ZARR_COMPLETE" in os.environ:
        return cli.main(args=args, prog_name=PROG_NAME, standalone_mode=False)
    with cli.make_context(PROG_NAME, args) as ctx:
        return cli.invoke(ctx)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the group, turning library errors into one-line messages.

    Exit status: 0 success, 1 failure, 2 bad argument or selection matching nothing (one line naming
    it and the valid choices), 130 interrupted (Ctrl-C: the one line :data:`INTERRUPTED_MESSAGE`).
    ``--debug`` shows tracebacks.
    """
    from nersemble_zarr.core.errors import NersembleZarrError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    with _catch_interrupts() as interrupts:
        try:
            rc = _invoke(argv)
            code = rc if isinstance(rc, int) else 0  # a command's ctx.exit(n) / Exit(n) is returned, not raised
        except (KeyboardInterrupt, click.exceptions.Abort):  # click turns KeyboardInterrupt into Abort
            if debug:
                traceback.print_exc()
            exit_interrupted()
        except click.ClickException as e:
            if debug:
                traceback.print_exc()
            click.echo(_usage_line(e), err=True)
            code = e.exit_code
        except click.exceptions.Exit as e:
            code = e.exit_code
        except NersembleZarrError as e:
            if debug:
                traceback.print_exc()
            if not interrupts.count:
                click.echo(f"error: {e}", err=True)
            code = e.exit_code
        except BaseException:
            if interrupts.count:  # whatever the interrupt turned into on its way out (e.g. a worker's error)
                if debug:
                    traceback.print_exc()
                exit_interrupted()
            raise
        if interrupts.count:  # also when the command caught the interrupt and returned
            exit_interrupted()
    sys.exit(code)


if __name__ == "__main__":
    main()

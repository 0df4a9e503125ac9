"""The options every command shares: one decorator per option, one help text, one parsing.

The same option means the same on every command that has it:

============================  ==================================================================
``-b/--benchmark NAME``        nvs, mono_flame_avatar or all; repeat or comma-separate (show: one)
``-p/--participant ID``        participant id; repeat or comma-separate (show: one)
``-s/--sequence NAME``         sequence name; repeat or comma-separate (show: one)
``-c/--camera SERIAL``         camera serial; repeat or comma-separate
``--workers N``                run on N local worker processes (a dask ``LocalCluster``)
``--scheduler ADDRESS``        run on the existing dask.distributed cluster at ADDRESS
``--progress/--no-progress``   progress bar on stderr (default: shown)
``--json [FILE]``              the report as JSON: bare / ``-`` = stdout instead of the table, FILE = also there
``--debug``                    (group level, before the command) full tracebacks
============================  ==================================================================

Without ``--workers`` and ``--scheduler`` a command runs its jobs on threads in this process.

Sizes are printed as width x height in pixels, as video tools print them (``1100x1604`` for an NVS
frame, whose arrays have shape ``(..., 1604, 1100, 3)``): :func:`format_size`.

Old spellings stay for one release as hidden aliases that print one deprecation line on stderr
(:func:`deprecated_alias`): ``--quiet`` (= ``--no-progress``), ``-j N`` (the old N threads),
``sample --participants``, ``download --workers`` (= ``--connections``), ``downscale --scheduler
threads|processes|synchronous``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from nersemble_zarr.core.benchmark import ALL_BENCHMARK_NAMES, BENCHMARK_NAMES

F = TypeVar("F", bound=Callable[..., Any])

# ---------------------------------------------------------------------------------------------
# Help texts: one per option (the tests compare every command's help with these)
# ---------------------------------------------------------------------------------------------

BENCHMARK_HELP = "Benchmark: nvs, mono_flame_avatar or all; repeat or comma-separate for several."
BENCHMARK_ONE_HELP = "Benchmark: nvs or mono_flame_avatar."
PARTICIPANT_HELP = "Participant id, e.g. 388; repeat or comma-separate for several."
PARTICIPANT_ONE_HELP = "Participant id, e.g. 388."
SEQUENCE_HELP = "Sequence name, e.g. EXP-1-head; repeat or comma-separate for several."
SEQUENCE_ONE_HELP = "Sequence name, e.g. EXP-1-head."
CAMERA_HELP = "Camera serial, e.g. 222200037; repeat or comma-separate for several."
WORKERS_HELP = (
    "Run the jobs on N local worker processes (a dask LocalCluster).  "
    "[default: threads in this process]"
)
SCHEDULER_HELP = (
    "Run the jobs on the existing dask.distributed cluster at ADDRESS (tcp://host:port); its workers must "
    "reach the data at the same path or URL."
)
PROGRESS_HELP = "Show progress (done, rate, ETA) on stderr.  [default: shown]"
JSON_HELP = (
    "The report as JSON: bare --json or --json - prints it on stdout instead of the table; "
    "--json FILE also writes it to FILE."
)
DEFAULT_ALL = "  [default: all]"

#: The old scheduler names of ``downscale --scheduler`` (dask's local schedulers), kept for one release.
LEGACY_SCHEDULERS = ("threads", "processes", "synchronous")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def split_values(values: Sequence[str] | str | None) -> list[str]:
    """Repeated and comma-separated option values as one flat list: ``("388,393", "404")`` -> 3 items."""
    if values is None:
        return []
    if isinstance(values, str):
        values = (values,)
    return [v for value in values for v in str(value).replace(",", " ").split()]


def _ints(values: list[str], param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise click.BadParameter(f"expected integer ids, got {' '.join(values)!r}", ctx=ctx, param=param) from None


def _one(values: list[Any], what: str, param: click.Parameter | None, ctx: click.Context | None) -> Any:
    if len(values) > 1:
        raise click.BadParameter(f"this command takes one {what}, got {', '.join(map(str, values))}",
                                 ctx=ctx, param=param)
    return values[0] if values else None


def _benchmarks(ctx: click.Context, param: click.Parameter, value: Sequence[str],
                known: tuple[str, ...] = BENCHMARK_NAMES) -> tuple[str, ...]:
    names = split_values(value)
    choices = (*known, "all")
    for name in names:
        if name not in choices:
            raise click.BadParameter(f"{name!r} is not one of {', '.join(repr(c) for c in choices)}",
                                     ctx=ctx, param=param)
    if "all" in names:
        return tuple(known)
    return tuple(dict.fromkeys(names))


def _benchmark_one(ctx: click.Context, param: click.Parameter, value: Sequence[str],
                   known: tuple[str, ...] = BENCHMARK_NAMES) -> str | None:
    names = split_values(value)
    for name in names:
        if name not in known:
            raise click.BadParameter(f"{name!r} is not one of {', '.join(repr(c) for c in known)}",
                                     ctx=ctx, param=param)
    return _one(names, "benchmark", param, ctx)


def parse_participants(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(_ints(split_values(value), param, ctx)))


def _participant_one(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> int | None:
    return _one(list(_ints(split_values(value), param, ctx)), "participant", param, ctx)


def _names(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(split_values(value)))


def _name_one(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> str | None:
    return _one(split_values(value), param.name or "value", param, ctx)


# ---------------------------------------------------------------------------------------------
# The shared options
# ---------------------------------------------------------------------------------------------


def benchmark_option(*, one: bool = False, required: bool = False, svfr: bool = False) -> Callable[[F], F]:
    """``-b/--benchmark``: a tuple of benchmark names (``all`` = every benchmark; empty = none named,
    i.e. all) in parameter ``benchmarks``; ``one=True``: exactly one name in parameter ``benchmark``.
    ``svfr=True``: the command also takes ``svfr`` (and ``all`` includes it)."""
    known = ALL_BENCHMARK_NAMES if svfr else BENCHMARK_NAMES
    if one:
        return click.option("-b", "--benchmark", "benchmark", multiple=True, required=required, metavar="NAME",
                            callback=functools.partial(_benchmark_one, known=known),
                            help=BENCHMARK_ONE_HELP + (" This command also takes svfr." if svfr else ""))
    return click.option("-b", "--benchmark", "benchmarks", multiple=True, required=required, metavar="NAME",
                        callback=functools.partial(_benchmarks, known=known),
                        help=BENCHMARK_HELP + (" This command also takes svfr (all includes it)." if svfr else "")
                        + DEFAULT_ALL)


def participant_option(*, one: bool = False, required: bool = False, default_help: str = "all") -> Callable[[F], F]:
    """``-p/--participant``: a tuple of int ids in parameter ``participants`` (empty: none named);
    ``one=True``: one int in parameter ``participant``."""
    if one:
        return click.option("-p", "--participant", "participant", multiple=True, required=required, metavar="ID",
                            callback=_participant_one, help=PARTICIPANT_ONE_HELP)
    return click.option("-p", "--participant", "participants", multiple=True, required=required, metavar="ID",
                        callback=parse_participants, help=f"{PARTICIPANT_HELP}  [default: {default_help}]")


def sequence_option(*, one: bool = False, default_help: str = "all") -> Callable[[F], F]:
    """``-s/--sequence``: a tuple of names in parameter ``sequences``; ``one=True``: one name in ``sequence``."""
    if one:
        return click.option("-s", "--sequence", "sequence", multiple=True, metavar="NAME", callback=_name_one,
                            help=f"{SEQUENCE_ONE_HELP}  [default: {default_help}]")
    return click.option("-s", "--sequence", "sequences", multiple=True, metavar="NAME", callback=_names,
                        help=f"{SEQUENCE_HELP}  [default: {default_help}]")


def camera_option() -> Callable[[F], F]:
    """``-c/--camera``: a tuple of camera serials in parameter ``cameras`` (empty: all)."""
    return click.option("-c", "--camera", "cameras", multiple=True, metavar="SERIAL", callback=_names,
                        help=CAMERA_HELP + DEFAULT_ALL)


def workers_option() -> Callable[[F], F]:
    """``--workers N``: N local worker processes, in parameter ``workers`` (None: threads here)."""
    return click.option("--workers", "workers", type=click.IntRange(min=1), default=None, metavar="N",
                        help=WORKERS_HELP)


def scheduler_option() -> Callable[[F], F]:
    """``--scheduler ADDRESS``: an existing dask.distributed cluster, in parameter ``scheduler``."""
    return click.option("--scheduler", "scheduler", default=None, metavar="ADDRESS", help=SCHEDULER_HELP)


def parallel_options(*, legacy_threads: bool = False) -> Callable[[F], F]:
    """``--workers`` and ``--scheduler``; ``legacy_threads``: also the hidden deprecated ``-j N`` of before
    (N threads), in parameter ``threads``."""

    def decorator(f: F) -> F:
        if legacy_threads:
            f = deprecated_alias("-j", "threads", "--workers N (N local worker processes; threads are the "
                                 "default)", type=click.IntRange(min=1))(f)
        return workers_option()(scheduler_option()(f))

    return decorator


def progress_option(*, legacy_quiet: bool = False) -> Callable[[F], F]:
    """``--progress/--no-progress`` in parameter ``progress``; ``legacy_quiet``: also the hidden deprecated
    ``--quiet`` (= ``--no-progress``)."""

    def decorator(f: F) -> F:
        if legacy_quiet:
            f = deprecated_alias("--quiet", "progress", "--no-progress", is_flag=True, convert=lambda v: False)(f)
        return click.option("--progress/--no-progress", "progress", default=True, show_default=False,
                            help=PROGRESS_HELP)(f)

    return decorator


def json_option() -> Callable[[F], F]:
    """``--json [FILE]`` in parameter ``json_out``: None (no JSON), ``"-"`` (stdout, instead of the
    table) or a file path (written as well as the table); see :func:`emit_report`."""
    return click.option("--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="[FILE]",
                        type=click.Path(dir_okay=False, allow_dash=True), help=JSON_HELP)


# ---------------------------------------------------------------------------------------------
# Deprecated spellings
# ---------------------------------------------------------------------------------------------


def deprecation_note(old: str, new: str) -> None:
    """The one line on stderr an old spelling prints."""
    click.echo(f"note: {old} is deprecated and will be removed in the next release; use {new}", err=True)


def deprecated_alias(
    decl: str, target: str, use: str, *, convert: Callable[[Any], Any] | None = None,
    merge: bool = False, **option_kwargs: Any,
) -> Callable[[F], F]:
    """A hidden option ``decl`` that stands for parameter ``target`` for one more release.

    When given, it prints :func:`deprecation_note` (``use`` names the new spelling) and its value,
    ``convert``-ed, replaces the command's ``target`` argument (``merge``: is appended to the tuple).
    ``option_kwargs`` go to :func:`click.option` (``is_flag``, ``type``, ``multiple``, ``callback``).
    """
    name = "_deprecated_" + decl.lstrip("-").replace("-", "_")

    def decorator(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(name)
            if value not in (None, False, ()):
                deprecation_note(decl, use)
                new = convert(value) if convert is not None else value
                kwargs[target] = tuple(kwargs.get(target) or ()) + tuple(new) if merge else new
            kwargs.setdefault(target, None)  # a target that only the alias sets (``threads`` of -j)
            return f(*args, **kwargs)

        return click.option(decl, name, hidden=True, **option_kwargs)(wrapper)  # type: ignore[return-value]

    return decorator


# ---------------------------------------------------------------------------------------------
# Passing the shared options on
# ---------------------------------------------------------------------------------------------


def parallel_kwargs(
    fn: Callable[..., Any], workers: int | None, scheduler: str | None, threads: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments that pass ``--workers``/``--scheduler`` (and the deprecated ``-j`` threads)
    to the library function ``fn``; only what was given. Raises :class:`click.UsageError` when both
    ``--workers`` and ``--scheduler`` are given, or when ``fn`` cannot take one that was given.

    ``-j N`` (the old N threads) goes to ``fn``'s ``threads`` argument, or to ``workers`` where
    ``fn`` has no ``threads`` (there ``workers`` still counts threads).
    """
    if workers is not None and scheduler is not None:
        raise click.UsageError("give either --workers or --scheduler, not both")
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def accepts(name: str) -> bool:
        return takes_any or name in params

    kwargs: dict[str, Any] = {}
    if threads is not None:
        if accepts("threads"):
            kwargs["threads"] = threads
        elif workers is None and accepts("workers"):
            kwargs["workers"] = threads
    for name, value in (("workers", workers), ("scheduler", scheduler)):
        if value is None:
            continue
        if not accepts(name):
            raise click.UsageError(f"--{name} is not supported by this command yet")
        kwargs[name] = value
    return kwargs


def emit_report(json_out: str | None, as_dict: Callable[[], dict[str, Any]], table: Callable[[], str]) -> None:
    """Print a command's report: the table on stdout, and with ``--json`` the JSON on stdout instead
    (``-``) or also in the file ``json_out``."""
    import json

    if json_out is not None:
        text = json.dumps(as_dict(), indent=2)
        if json_out == "-":
            click.echo(text)
            return
        with open(json_out, "w") as f:
            f.write(text + "\n")
    click.echo(table())


def format_size(width: int, height: int) -> str:
    """A frame size as printed everywhere: width x height in pixels (``1100x1604`` for NVS)."""
    return f"{width}x{height}"

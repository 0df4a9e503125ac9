"""One CLI language (issue #11, point 6): a shared option means the same on every command that has it.

- Every command's shared options come from ``nersemble_zarr/cli/options.py``: the same flags, the same
  help text (also as ``--help`` prints it), the same parsing (a comma list equals repeating the option).
- ``--workers N`` / ``--scheduler ADDRESS`` reach the library function as ``workers=N`` / ``scheduler=ADDRESS``
  on every command that runs jobs; giving both is one usage error.
- Old spellings keep working for one release, hidden, with one deprecation line on stderr.
- Sizes print as width x height (``1100x1604``).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from nersemble_zarr.cli import options as o
from nersemble_zarr.cli.main import COMMANDS, cli

# the shared options each command has (the README's option table)
TABLE: dict[str, set[str]] = {
    "sample": {"benchmark", "participant", "workers", "scheduler", "progress"},
    "download": {"participant", "progress"},
    "convert": {"benchmark", "participant", "sequence", "workers", "scheduler", "progress"},
    "verify": {"benchmark", "participant", "sequence", "workers", "scheduler"},
    "info": {"json"},
    "downscale": {"benchmark", "participant", "sequence", "workers", "scheduler", "progress"},
    "show": {"benchmark1", "participant1", "sequence1", "camera", "progress"},
    "flame": {"workers", "scheduler", "progress"},
    "submit": {"participant", "workers", "scheduler", "progress"},
    "validate": {"participant", "json", "progress"},
    "check": {"benchmark", "participant", "json", "workers", "scheduler", "progress"},
    "evaluate": {"benchmark1", "participant", "sequence", "camera", "json", "workers", "scheduler", "progress"},
}

# shared option -> (its flags, the start of its help text)
SHARED: dict[str, tuple[set[str], str]] = {
    "benchmark": ({"-b", "--benchmark"}, o.BENCHMARK_HELP),
    "benchmark1": ({"-b", "--benchmark"}, o.BENCHMARK_ONE_HELP),
    "participant": ({"-p", "--participant"}, o.PARTICIPANT_HELP),
    "participant1": ({"-p", "--participant"}, o.PARTICIPANT_ONE_HELP),
    "sequence": ({"-s", "--sequence"}, o.SEQUENCE_HELP),
    "sequence1": ({"-s", "--sequence"}, o.SEQUENCE_ONE_HELP),
    "camera": ({"-c", "--camera"}, o.CAMERA_HELP),
    "workers": ({"--workers"}, o.WORKERS_HELP),
    "scheduler": ({"--scheduler"}, o.SCHEDULER_HELP),
    "progress": ({"--progress", "--no-progress"}, o.PROGRESS_HELP),
    "json": ({"--json"}, o.JSON_HELP),
}

# the arguments each command needs to parse (nothing runs: only make_context)
REQUIRED: dict[str, list[str]] = {
    "sample": ["out"], "download": ["raw", "nvs"], "convert": ["raw", "store"], "verify": ["store", "."],
    "info": ["store"], "downscale": ["store", "-f", "2"], "show": ["store", "-b", "nvs", "-p", "388"],
    "flame": ["store"], "submit": ["renders", "nvs", "-o", "x.zip"], "validate": ["x.zip", "nvs"], "check": ["store"],
    "evaluate": ["x.zip", "store"],
}


def _command(name: str) -> click.Command:
    module, attr = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"nersemble_zarr.cli.{module}"), attr)


def _visible_flags(cmd: click.Command) -> dict[str, click.Parameter]:
    return {flag: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            for flag in (*p.opts, *p.secondary_opts)}


def _params(name: str, *args: str) -> dict[str, Any]:
    cmd = _command(name)
    with cmd.make_context(name, [*REQUIRED[name], *args]) as ctx:
        return dict(ctx.params)


def test_the_table_covers_every_command() -> None:
    assert set(TABLE) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_shared_options_have_one_spelling_and_one_help(name: str) -> None:
    cmd = _command(name)
    flags = _visible_flags(cmd)
    for option, (opts, help_start) in SHARED.items():
        present = [f for f in opts if f in flags]
        if option in TABLE[name]:
            param = flags[next(iter(opts))]
            assert set(param.opts) | set(param.secondary_opts) == opts, (name, option)
            assert param.help is not None and param.help.startswith(help_start), (name, option, param.help)
        elif option.rstrip("1") not in {t.rstrip("1") for t in TABLE[name]}:
            assert not present, f"{name} uses {present} for something other than the shared {option}"
    # the old spellings are gone from the visible options
    for old in ("--quiet", "--participants", "-j"):
        assert old not in flags, f"{name} still shows {old}"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_help_prints_the_shared_help_texts(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for option in TABLE[name]:
        help_start = " ".join(SHARED[option][1].split())
        # click may break a line at a hyphen ("comma-separate" -> "comma- separate")
        assert help_start in text or help_start in text.replace("- ", "-"), (name, option)
    assert "--debug" not in text  # a group option: `nersemble-zarr --debug COMMAND ...`


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "participant" in shared))
def test_participant_comma_list_equals_repeats(name: str) -> None:
    repeated = _params(name, "-p", "388", "--participant", "393", "-p", "404")
    listed = _params(name, "-p", "388,393,404")
    assert repeated["participants"] == listed["participants"] == (388, 393, 404)
    assert _params(name)["participants"] == ()


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "benchmark" in shared))
def test_benchmark_comma_list_equals_repeats(name: str) -> None:
    assert _params(name, "-b", "nvs", "-b", "mono_flame_avatar")["benchmarks"] == ("nvs", "mono_flame_avatar")
    assert _params(name, "--benchmark", "nvs,mono_flame_avatar")["benchmarks"] == ("nvs", "mono_flame_avatar")
    takes_svfr = "svfr" in (_command(name).params[[p.name for p in _command(name).params].index("benchmarks")].help or "")
    assert _params(name, "-b", "all")["benchmarks"] == ("nvs", "mono_flame_avatar") + (("svfr",) if takes_svfr else ())
    assert _params(name, "-b", "nvs")["benchmarks"] == ("nvs",)
    assert _params(name)["benchmarks"] == ()


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "sequence" in shared))
def test_sequence_comma_list_equals_repeats(name: str) -> None:
    assert _params(name, "-s", "EXP-1-head", "-s", "FREE")["sequences"] == ("EXP-1-head", "FREE")
    assert _params(name, "--sequence", "EXP-1-head,FREE")["sequences"] == ("EXP-1-head", "FREE")


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "progress" in shared))
def test_progress_is_one_boolean(name: str) -> None:
    assert _params(name)["progress"] is True
    assert _params(name, "--no-progress")["progress"] is False
    assert _params(name, "--progress")["progress"] is True


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "json" in shared))
def test_json_is_stdout_or_a_file(name: str) -> None:
    assert _params(name)["json_out"] is None
    assert _params(name, "--json")["json_out"] == "-"
    assert _params(name, "--json", "-")["json_out"] == "-"
    assert _params(name, "--json", "report.json")["json_out"] == "report.json"


def test_one_participant_where_a_command_draws_one() -> None:
    assert _params("show")["participant"] == 388 and _params("show")["benchmark"] == "nvs"
    with pytest.raises(click.BadParameter, match="one participant, got 388, 393"):
        _params("show", "-p", "393")  # REQUIRED already names 388


def test_bad_values_name_the_choices() -> None:
    with pytest.raises(click.BadParameter, match="'foo' is not one of 'nvs', 'mono_flame_avatar', 'svfr', 'all'"):
        _params("convert", "-b", "nvs,foo")
    with pytest.raises(click.BadParameter, match="expected integer ids, got '388 x'"):
        _params("check", "-p", "388,x")


def test_split_values() -> None:
    assert o.split_values(("388,393", "404", " 1 , 2 ")) == ["388", "393", "404", "1", "2"]
    assert o.split_values(None) == [] and o.split_values("a,b") == ["a", "b"]


# --------------------------------------------------------------------------------------------
# --workers / --scheduler reach the library with one meaning
# --------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by a fake library function once it has recorded its arguments."""


# command -> (module holding the library function, its name)
LIBRARY = {
    "sample": ("nersemble_zarr.testing.sample", "generate_sample"),
    "convert": ("nersemble_zarr.pipelines.convert", "convert_benchmark"),
    "verify": ("nersemble_zarr.pipelines.verify", "verify_store"),
    "downscale": ("nersemble_zarr.pipelines.downscale", "downscale_store"),
    "flame": ("nersemble_zarr.pipelines.flame", "write_flame_to_store"),
    "submit": ("nersemble_zarr.submission.writer", "write_submission"),
    "check": ("nersemble_zarr.pipelines.check", "check_store"),
    "evaluate": ("nersemble_zarr.evaluate.run", "evaluate"),
}
ARGV = {"sample": ["out"], "convert": ["raw", "store"], "downscale": ["store", "-f", "2"], "flame": ["store"],
        "submit": ["renders", "nvs", "-o", "x.zip"], "check": ["store"],
        "evaluate": ["x.zip", "store"]}


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, *args: str) -> tuple[dict[str, Any], Any]:
    """Run command ``name`` with its library function replaced by a recorder; its keyword arguments and
    the CliRunner result."""
    if name == "flame":
        pytest.importorskip("torch")
        from nersemble_zarr.flame import model as flame_model

        monkeypatch.setattr(flame_model.FlameModel, "load", classmethod(lambda cls, *a, **k: object()))
    seen: dict[str, Any] = {}

    def fake(*a: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _Stop

    module, attr = LIBRARY[name]
    monkeypatch.setattr(importlib.import_module(module), attr, fake)
    argv = ARGV.get(name) or ["store", str(tmp_path)]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [name, *argv, *args])
    return seen, result


@pytest.mark.parametrize("name", sorted(n for n, shared in TABLE.items() if "workers" in shared))
def test_workers_and_scheduler_mean_the_same_everywhere(name: str, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    seen, result = _run(monkeypatch, tmp_path, name)
    assert isinstance(result.exception, _Stop), result.output
    assert "workers" not in seen and "scheduler" not in seen  # the default: threads in this process
    seen, result = _run(monkeypatch, tmp_path, name, "--workers", "3")
    assert isinstance(result.exception, _Stop) and seen["workers"] == 3 and "scheduler" not in seen
    seen, result = _run(monkeypatch, tmp_path, name, "--scheduler", "tcp://127.0.0.1:8786")
    assert isinstance(result.exception, _Stop) and seen["scheduler"] == "tcp://127.0.0.1:8786"
    assert "workers" not in seen
    seen, result = _run(monkeypatch, tmp_path, name, "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2 and "give either --workers or --scheduler, not both" in result.output
    assert not seen


def test_a_library_function_without_scheduler_refuses_it() -> None:
    def serial(store: str, *, workers: int | None = None) -> None: ...

    assert o.parallel_kwargs(serial, 2, None) == {"workers": 2}
    with pytest.raises(click.UsageError, match="--scheduler is not supported by this command yet"):
        o.parallel_kwargs(serial, None, "tcp://h:1")
    assert o.parallel_kwargs(serial, None, None, threads=3) == {"workers": 3}  # -j: threads there

    def runner(store: str, *, workers: int | None = None, scheduler: Any = None, threads: int | None = None) -> None:
        ...

    assert o.parallel_kwargs(runner, None, None, threads=3) == {"threads": 3}


# --------------------------------------------------------------------------------------------
# Old spellings: hidden, working, one note on stderr
# --------------------------------------------------------------------------------------------


def _note(result: Any, old: str) -> None:
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith(f"note: {old} is deprecated"), result.stderr


def test_quiet_is_no_progress(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen, result = _run(monkeypatch, tmp_path, "convert", "--quiet")
    assert isinstance(result.exception, _Stop) and seen["progress"] is False
    _note(result, "--quiet")


def test_sample_participants_is_participant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen, result = _run(monkeypatch, tmp_path, "sample", "--participants", "388,393")
    assert isinstance(result.exception, _Stop) and seen["participants"] == [388, 393]
    _note(result, "--participants")


@pytest.mark.parametrize("name", ["check", "downscale", "submit"])
def test_j_keeps_its_threads(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen, result = _run(monkeypatch, tmp_path, name, "-j", "3")
    assert isinstance(result.exception, _Stop), result.output
    assert seen.get("threads", seen.get("workers")) == 3  # the fake takes **kwargs: threads
    _note(result, "-j")


@pytest.mark.parametrize(("old", "expected"), [
    ("threads", {}), ("synchronous", {"threads": 1}), ("processes", {"workers": 3}),
])
def test_downscale_old_scheduler_names(old: str, expected: dict[str, int], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    extra = ["-j", "3"] if old == "processes" else []
    seen, result = _run(monkeypatch, tmp_path, "downscale", "--scheduler", old, *extra)
    assert isinstance(result.exception, _Stop), result.output
    assert {k: seen[k] for k in ("workers", "threads", "scheduler") if k in seen} == expected
    assert f"note: --scheduler {old} is deprecated" in result.stderr


def test_download_workers_is_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(*a: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _Stop

    for name in ("engine", "run"):  # wherever the command imports it from
        module = importlib.import_module(f"nersemble_zarr.pipelines.download.{name}")
        if hasattr(module, "download_benchmark"):
            monkeypatch.setattr(module, "download_benchmark", fake)
    result = CliRunner().invoke(cli, ["download", str(tmp_path / "raw"), "nvs", "--workers", "3"])
    assert isinstance(result.exception, _Stop) and seen["workers"] == 3
    _note(result, "--workers")
    result = CliRunner().invoke(cli, ["download", str(tmp_path / "raw"), "nvs", "--connections", "5"])
    assert isinstance(result.exception, _Stop) and seen["workers"] == 5 and "note:" not in result.stderr


# --------------------------------------------------------------------------------------------
# Sizes: width x height
# --------------------------------------------------------------------------------------------


def test_sizes_print_as_width_x_height(converted_store: Path) -> None:
    assert o.format_size(1100, 1604) == "1100x1604"
    from nersemble_zarr.pipelines.info import format_info, store_info

    described = store_info(converted_store)
    text = format_info(described)
    nvs = [s for b in described.benchmarks if b.name == "nvs" for p in b.participants for s in p.sequences if s.width]
    assert nvs and all(f"{s.width}x{s.height}" in text for s in nvs)
    assert nvs[0].height > nvs[0].width  # NVS frames are portrait: the width comes first
    assert not re.search(r"\d×\d", text)

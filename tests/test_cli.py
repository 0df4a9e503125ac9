"""The command line's promises for bad arguments and interrupts (issue #10, points 7, 12 and 13).

- Every command, given a benchmark, participant, sequence or timestep that does not exist (or that the
  store / raw folder does not hold), prints ONE line on stderr naming it and the valid choices, exits 2,
  shows no traceback (``--debug`` does) and writes nothing.
- Ctrl-C in a long command (convert, download, sample) prints exactly ``interrupted; rerun the same
  command to resume`` and exits 130; rerunning the same command completes and gives what an
  uninterrupted run gives.

No command takes a camera serial, so there is no camera column in the matrix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zarr

from nersemble_zarr.pipelines.download import selection as assets
from nersemble_zarr.core.benchmark import NVS
from nersemble_zarr.cli.main import INTERRUPTED_MESSAGE, main

sys.path.insert(0, str(Path(__file__).parent))
from http_server import Fault, FileServer  # noqa: E402

CLI = str(Path(sys.executable).with_name("nersemble-zarr"))
TOKEN = "cli-test-token"

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root``: relative path -> (size, mtime_ns)."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _store_contents(path: Path) -> dict[str, object]:
    """Every group's and array's attrs and every array's shape, dtype and data (hashed), read without
    the consolidated metadata: two stores with equal contents hold the same data and markers."""
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    contents: dict[str, object] = {"/": json.dumps(dict(root.attrs), sort_keys=True, default=str)}
    for name, node in root.members(max_depth=None):
        attrs = json.dumps(dict(node.attrs), sort_keys=True, default=str)
        if isinstance(node, zarr.Array):
            data = node[...]
            raw = data.tobytes() if data.dtype != object else repr(data.tolist()).encode()
            contents[name] = (attrs, node.shape, str(node.dtype), hashlib.sha256(raw).hexdigest())
        else:
            contents[name] = attrs
    return contents


def _interrupt_when(cmd: list[str], ready: Callable[[], bool], *, env: dict[str, str] | None = None,
                    timeout: float = 300) -> tuple[int, str, str]:
    """Run ``cmd``; once ``ready()`` (polled) says it is writing, send SIGINT to its process group, as a
    terminal's Ctrl-C does (worker processes and ffmpeg children get it too). Returns (rc, stdout, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + timeout  # a safety net against a hang, not a timing assertion
    try:
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"{cmd[1:3]} ended (rc {proc.returncode}) before it could be interrupted:\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd[1:3]} never became ready to interrupt")
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, out, err


def _assert_interrupted(rc: int, out: str, err: str) -> None:
    assert rc == 130, f"rc {rc}\nstdout: {out}\nstderr: {err}"
    assert err == INTERRUPTED_MESSAGE + "\n", f"stderr must be exactly the one line, got:\n{err}"


# --------------------------------------------------------------------------------------------
# Point 13 (and 7): bad arguments -> one line naming the value and the choices, exit 2
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_copy(converted_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the converted store for commands that would write into it (downscale)."""
    copy = tmp_path_factory.mktemp("cli-store") / "store.zarr"
    shutil.copytree(converted_store, copy)
    return copy


# (command line with {store}, {raw}, {out} placeholders; what the one line must say)
BAD_ARGUMENTS = {
    # sample
    "sample-benchmark": ("sample {out} --benchmark foo --no-progress", ["'foo'", "'nvs'", "'mono_flame_avatar'"]),
    "sample-participant": ("sample {out} -p 999 --no-progress", ["participant 999", "388", "393"]),
    "sample-participant-of-other-benchmark": ("sample {out} --benchmark nvs -p 393 --no-progress",
                                              ["participant 393", "nvs", "388, 422"]),
    # download (the timestep case needs a server: see test_download_unknown_pointcloud_timestep)
    "download-benchmark": ("download {out} foo --no-progress", ["'foo'", "'nvs'", "'mono_flame_avatar'"]),
    "download-participant": ("download {out} nvs -p 999 --no-progress", ["participant 999", "388, 422"]),
    "download-asset": ("download {out} nvs --assets depth --no-progress", ["'depth'", "calibration, images"]),
    # convert
    "convert-benchmark": ("convert {raw} {out} --benchmark foo --no-progress", ["'foo'", "'nvs'", "'mono_flame_avatar'"]),
    "convert-participant": ("convert {raw} {out} -p 999 --no-progress", ["participant 999", "388", "393"]),
    "convert-sequence": ("convert {raw} {out} -s FOO --no-progress", ["'FOO'", "GLASSES", "EXP-1-head"]),
    "convert-sequence-of-other-participant": ("convert {raw} {out} -p 388 -s EXP-1-head --no-progress",
                                              ["'EXP-1-head'", "388", "GLASSES"]),
    # verify
    "verify-benchmark": ("verify {store} {raw} --benchmark foo", ["'foo'", "'nvs'"]),
    "verify-participant": ("verify {store} {raw} -p 999", ["participant 999", "388", "393"]),
    "verify-participant-not-there": ("verify {store} {raw} -p 422", ["422", "388"]),
    "verify-sequence": ("verify {store} {raw} -s FOO", ["'FOO'", "GLASSES"]),
    # downscale
    "downscale-benchmark": ("downscale {store} -f 2 -b foo --no-progress", ["'foo'", "'nvs'"]),
    "downscale-participant": ("downscale {store} -f 2 -p 999 --no-progress", ["participant 999", "388", "393"]),
    "downscale-participant-not-in-store": ("downscale {store} -f 2 -p 422 --no-progress", ["422", "388"]),
    "downscale-sequence": ("downscale {store} -f 2 -s FOO --no-progress", ["'FOO'", "GLASSES"]),
    # show
    "show-benchmark": ("show {store} -b foo -p 388 -o {out}", ["'foo'", "'nvs'"]),
    "show-participant": ("show {store} -b nvs -p 999 -o {out}", ["participant 999", "388, 422"]),
    "show-participant-not-in-store": ("show {store} -b nvs -p 422 -o {out}", ["participant 422", "388"]),
    "show-sequence": ("show {store} -b nvs -p 388 -s FOO -o {out}", ["'FOO'", "GLASSES"]),
    "show-sequence-without-video": ("show {store} -b mono_flame_avatar -p 393 -s FREE -o {out}",
                                    ["'FREE'", "EXP-1-head"]),
    "show-timestep": ("show {store} -b nvs -p 388 -t 999 -o {out}", ["timestep 999", "0..9"]),
    "show-rig-participant-not-in-store": ("show {store} -b nvs -p 445 --cameras-plot {out}", ["445", "388"]),
    # submit / validate
    "submit-benchmark": ("submit {store} foo -o {out}", ["'foo'", "'nvs'"]),
    "submit-participant": ("submit {store} nvs -o {out} -p 999", ["participant 999", "388, 422"]),
    "validate-benchmark": ("validate {out} foo", ["'foo'", "'nvs'"]),
    "validate-participant": ("validate {out} mono_flame_avatar -p 999", ["participant 999", "393, 404"]),
    # any command: an option it does not have
    "info-unknown-option": ("info {store} --participant 388", ["--participant"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_argument_is_one_line_naming_it_and_the_choices(
    case: str, store_copy: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    template, expected = BAD_ARGUMENTS[case]
    out = tmp_path / "out"
    argv = template.format(store=store_copy, raw=sample_root, out=out).split()
    before_store, before_raw = _tree(store_copy), _tree(sample_root)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} missing from: {lines[0]}"
    # nothing written, nothing lost
    assert not out.exists()
    assert _tree(store_copy) == before_store and _tree(sample_root) == before_raw


def test_bad_argument_through_the_console_script(converted_store: Path, tmp_path: Path) -> None:
    """The installed entry point: one line and exit 2; ``--debug`` adds the traceback."""
    args = ["show", str(converted_store), "-b", "nvs", "-p", "999", "-o", str(tmp_path / "x.png")]
    r = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "error: participant 999 is not in the nvs benchmark: expected one of 388, 422, 443, 445, 475\n"
    r = subprocess.run([CLI, "--debug", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" in r.stderr and "UnknownIdError" in r.stderr


def test_download_unknown_pointcloud_timestep(sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Point-cloud timesteps are checked against the benchmark's metadata.json (fetched first)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with FileServer.from_tree(sample_root, prefix=TOKEN) as server:
        monkeypatch.setenv("NERSEMBLE_BENCHMARK_URL", server.url)
        with pytest.raises(SystemExit) as exit_info:
            main(["download", str(tmp_path / "raw"), "nvs", "-p", "388", "--pointcloud-frames", "0,99999", "--no-progress"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "99999" in lines[0] and "0..9" in lines[0] and "Traceback" not in captured.err
    assert [p.name for p in (tmp_path / "raw").rglob("*") if p.is_file()] == ["metadata.json"]


# --------------------------------------------------------------------------------------------
# Point 12: Ctrl-C -> one line, exit 130; the rerun completes and equals a clean run
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_convert_interrupted_prints_one_line_and_the_rerun_equals_a_clean_run(
    sample_root: Path, converted_store: Path, tmp_path: Path,
) -> None:
    store = tmp_path / "store.zarr"
    cmd = [CLI, "convert", str(sample_root), str(store), "--no-progress"]

    def writing() -> bool:  # a first shard of frames is on disk
        return store.is_dir() and any(p.is_file() for p in store.glob("*/*/*/images/c/**/*"))

    _assert_interrupted(*_interrupt_when(cmd, writing))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "0 failed" in r.stdout and r.stderr == "", r.stdout + r.stderr
    assert _store_contents(store) == _store_contents(converted_store)


@pytest.mark.slow
def test_convert_on_worker_processes_interrupted_prints_one_line(sample_root: Path, tmp_path: Path) -> None:
    """``--workers 2`` runs units on a local dask cluster: its worker processes get the Ctrl-C too and
    must not print their own KeyboardInterrupt tracebacks."""
    store = tmp_path / "store.zarr"
    cmd = [CLI, "convert", str(sample_root), str(store), "--no-progress", "--workers", "2"]

    def writing() -> bool:
        return store.is_dir() and any(p.is_file() for p in store.glob("*/*/*/images/c/**/*"))

    _assert_interrupted(*_interrupt_when(cmd, writing))


@pytest.mark.slow
def test_download_interrupted_prints_one_line_and_the_rerun_equals_a_clean_run(
    sample_root: Path, tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NERSEMBLE_BENCHMARK_URL"} | {"HOME": str(tmp_path / "home")}
    video = assets.select_files(NVS, participants=[388], assets=["images"])[0]
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    args = [NVS, "-p", "388", "--no-progress", "--backoff", "0"]
    with FileServer.from_tree(sample_root, prefix=TOKEN) as server:
        env["NERSEMBLE_BENCHMARK_URL"] = server.url
        # the server sends 1000 bytes of one video, then stalls: the download is mid-file, deterministically
        server.add_fault(f"{NVS}/{video}", Fault(stall_after=1000))
        stalled = []

        def mid_file() -> bool:
            if not stalled:
                stalled.append(server.wait_stalled(f"{NVS}/{video}"))
            return True

        _assert_interrupted(*_interrupt_when([CLI, "download", str(raw), *args], mid_file, env=env))
        server.release()
        assert any(p.name.endswith(".part") for p in raw.rglob("*")), "the interrupted file is left to resume"
        r = subprocess.run([CLI, "download", str(raw), *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([CLI, "download", str(clean), *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    assert _files(raw) == _files(clean)
    assert _files(raw / NVS)[video] == (sample_root / NVS / video).read_bytes()


@pytest.mark.slow
def test_sample_interrupted_prints_one_line_and_the_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    out, clean = tmp_path / "out", tmp_path / "clean"
    args = ["--benchmark", "nvs", "-p", "388", "--frames", "12", "--no-progress", "--workers", "2"]

    def writing() -> bool:  # a first video is complete
        return out.is_dir() and any(out.rglob("*.mp4"))

    _assert_interrupted(*_interrupt_when([CLI, "sample", str(out), *args], writing))
    assert not (out / NVS / "metadata.json").exists(), "interrupted before the end: not marked complete"
    r = subprocess.run([CLI, "sample", str(out), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([CLI, "sample", str(clean), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _files(out) == _files(clean)


def test_only_spawned_worker_processes_ignore_sigint(tmp_path: Path) -> None:
    """The command's own process keeps Ctrl-C (a SIGINT while it imports is not lost); a worker process
    that multiprocessing spawns from the command line (dask pools, --workers clusters) ignores it."""
    import nersemble_zarr.cli.main as cli_main

    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN and not cli_main._in_spawned_worker()
    script = tmp_path / "command.py"
    script.write_text(
        "import multiprocessing, signal\n"
        "from nersemble_zarr.cli.main import main  # noqa: F401  as the console script does\n"
        "def child(q):\n"
        "    q.put(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
        "if __name__ == '__main__':\n"
        "    ctx = multiprocessing.get_context('spawn')\n"
        "    q = ctx.Queue()\n"
        "    p = ctx.Process(target=child, args=(q,))\n"
        "    p.start()\n"
        "    print('worker ignores:', q.get(timeout=300))\n"
        "    p.join()\n"
        "    print('command ignores:', signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["worker ignores: True", "command ignores: False"]

"""The store writer lock (one writer, really) and the removal of zarr's leftover temporary files.

Races are run as many barrier-synchronised trials with real processes (multiprocessing, spawn):
every contender imports, builds its lock object, then waits at one barrier and calls ``acquire``
at the same instant; exactly one may hold the lock in every trial, for a fresh lock file and for a
stale one (left by a dead process).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

from nersemble_zarr.storage.leftovers import LEFTOVER_PATTERN, find_leftovers, remove_leftovers
from nersemble_zarr.storage.location import StoreLocation
from nersemble_zarr.storage.lock import StoreLock, StoreLockedError


# --------------------------------------------------------------------------------------------- leftovers


def _plant(root: Path, rel: str) -> str:
    """Create a zarr-style temporary file ``<rel stem>.<uuid hex>.partial`` under ``root``; its store key."""
    target = root / rel
    tmp = target.with_suffix(f".{uuid.uuid4().hex}.partial")  # exactly zarr LocalStore's _atomic_write name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half a shard")
    return tmp.relative_to(root).as_posix()


def _small_store(path: Path) -> np.ndarray:
    data = np.arange(48, dtype="uint8").reshape(4, 12)
    g = zarr.open_group(path, mode="w")
    a = g.create_array("a", shape=data.shape, chunks=(2, 12), dtype="uint8")
    a[:] = data
    return data


def test_find_and_remove_leftovers_touch_only_zarr_temporary_files(tmp_path: Path):
    store = tmp_path / "s.zarr"
    data = _small_store(store)
    planted = sorted([_plant(store, "a/c/0/0"), _plant(store, "a/zarr.json"), _plant(store, "zarr.json")])
    # names that look close but are not zarr's temporaries stay
    (store / "a" / "notes.partial").write_text("keep")
    (store / "a" / "c" / "0" / "1.deadbeef.partial").write_text("keep")
    assert all(LEFTOVER_PATTERN.search(k) for k in planted)
    assert find_leftovers(store) == planted
    assert remove_leftovers(str(store)) == planted
    assert find_leftovers(store) == []
    assert (store / "a" / "notes.partial").exists() and (store / "a" / "c" / "0" / "1.deadbeef.partial").exists()
    assert np.array_equal(zarr.open_array(store / "a")[:], data)


def test_leftovers_of_a_missing_store_are_none(tmp_path: Path):
    assert find_leftovers(tmp_path / "absent.zarr") == []
    assert remove_leftovers(tmp_path / "absent.zarr") == []


def test_acquiring_the_lock_removes_leftovers_and_leaves_the_data(tmp_path: Path):
    store = tmp_path / "s.zarr"
    data = _small_store(store)
    _plant(store, "a/c/1/0")
    before = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()
              and not LEFTOVER_PATTERN.search(p.name)}
    with StoreLock(StoreLocation.parse(store)) as lock:
        assert lock.removed_leftovers and find_leftovers(store) == []
    after = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after == before
    assert np.array_equal(zarr.open_array(store / "a")[:], data)


# ------------------------------------------------------------------------------------ racing contenders

TRIALS = 60
CONTENDERS = 3


def _contender(url: str, opts: dict, trials: int, start_at, ready, tried, released, results) -> None:
    """One process racing for the lock in every trial; reports (trial, 'held' | 'refused' | error).

    After the barrier every contender spins until the same ``time.monotonic()`` instant (shared by all
    processes), so their ``acquire`` calls start within microseconds of each other, not a scheduler tick apart.
    """
    from nersemble_zarr.storage.location import StoreLocation
    from nersemble_zarr.storage.lock import StoreLock, StoreLockedError

    loc = StoreLocation.parse(url, opts)
    for trial in range(trials):
        lock = StoreLock(loc, operation=f"contender-{os.getpid()}")
        ready.wait()
        while time.monotonic() < start_at.value:
            pass
        try:
            lock.acquire()
            outcome = "held"
        except StoreLockedError:
            lock = None
            outcome = "refused"
        except Exception as e:  # noqa: BLE001  reported to the test, which fails on it
            lock = None
            outcome = f"{type(e).__name__}: {e}"
        tried.wait()  # every contender has tried while the holder still holds
        results.put((trial, outcome))
        if lock is not None:
            lock.release()
        released.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _race(url: str, opts: dict, prepare) -> list[list[str]]:
    """Run TRIALS barrier-synchronised races among CONTENDERS processes; per trial the outcomes."""
    ctx = mp.get_context("spawn")
    ready, tried, released = (ctx.Barrier(CONTENDERS + 1, timeout=120) for _ in range(3))
    results = ctx.Queue()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_contender, args=(url, opts, TRIALS, start_at, ready, tried, released, results),
                         daemon=True)
             for _ in range(CONTENDERS)]
    for p in procs:
        p.start()
    outcomes: list[list[str]] = [[] for _ in range(TRIALS)]
    try:
        for trial in range(TRIALS):
            prepare(trial)
            start_at.value = time.monotonic() + 0.02
            ready.wait()
            tried.wait()
            for _ in range(CONTENDERS):
                t, outcome = results.get(timeout=120)
                outcomes[t].append(outcome)
            released.wait()
    except BaseException:
        for barrier in (ready, tried, released):
            barrier.abort()  # contenders stop waiting at once
        raise
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return outcomes


def _assert_one_holder_each_time(outcomes: list[list[str]]) -> None:
    errors = [o for trial in outcomes for o in trial if o not in ("held", "refused")]
    assert not errors, errors[:3]
    holders = [trial.count("held") for trial in outcomes]
    assert holders == [1] * TRIALS, f"trials with 0/2+ holders: {[i for i, h in enumerate(holders) if h != 1]}"


@pytest.mark.slow
def test_racing_for_a_fresh_local_lock_exactly_one_process_holds_it(tmp_path: Path):
    store = tmp_path / "race.zarr"
    lock_file = Path(str(store) + ".nersemble-zarr.lock")

    def prepare(trial: int) -> None:
        # a contender refused after the holder unlinked the file may have re-created it (empty, unlocked):
        # fresh means no file at all
        lock_file.unlink(missing_ok=True)

    _assert_one_holder_each_time(_race(str(store), {}, prepare))


@pytest.mark.slow
def test_racing_for_a_stale_local_lock_exactly_one_process_holds_it(tmp_path: Path):
    """A lock file left by a dead writer: a full one (dead pid), an empty one (killed right after create)."""
    store = tmp_path / "race.zarr"
    lock_file = Path(str(store) + ".nersemble-zarr.lock")
    dead = _dead_pid()

    def prepare(trial: int) -> None:
        if trial % 2:
            lock_file.write_text("")
        else:
            lock_file.write_text(json.dumps({"host": os.uname().nodename, "pid": dead, "started": 0,
                                             "operation": "convert", "heartbeat": 0}))

    _assert_one_holder_each_time(_race(str(store), {}, prepare))


# ------------------------------------------------------------------------------------ local, one by one


def _hold_lock(url: str, truncate: bool, held, release) -> None:
    """Hold the store lock in another process until ``release`` is set (optionally with an empty lock file)."""
    from nersemble_zarr.storage.location import StoreLocation
    from nersemble_zarr.storage.lock import StoreLock

    lock = StoreLock(StoreLocation.parse(url), operation="flame").acquire()
    if truncate:  # the instant between creating the lock file and writing the holder into it, frozen
        with open(lock.path, "r+") as f:
            f.truncate(0)
    held.set()
    release.wait(120)
    lock.release()


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process holding the lock of ``tmp_path/h.zarr``; yields (store, process, release event)."""
    ctx = mp.get_context("spawn")
    started: list = []

    def start(truncate: bool):
        held, release = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=_hold_lock, args=(str(tmp_path / "h.zarr"), truncate, held, release), daemon=True)
        proc.start()
        assert held.wait(120), "the holder process did not get the lock"
        started.append((proc, release))
        return tmp_path / "h.zarr", proc, release

    yield start
    for proc, release in started:
        if proc.is_alive():  # (a killed waiter would make Event.set wait for its wake-up forever)
            release.set()
        proc.join(60)
        if proc.is_alive():
            proc.kill()


def test_a_live_holder_whose_lock_file_is_still_empty_is_not_taken_over(holder):
    store, proc, _ = holder(truncate=True)
    with pytest.raises(StoreLockedError, match="another nersemble-zarr command is writing this store"):
        StoreLock(StoreLocation.parse(store)).acquire()
    assert proc.is_alive()


def test_a_second_writer_is_refused_naming_the_live_holder(holder):
    store, proc, _ = holder(truncate=False)
    with pytest.raises(StoreLockedError) as e:
        StoreLock(StoreLocation.parse(store), operation="convert").acquire()
    assert f"another flame is writing this store (host {os.uname().nodename}, pid {proc.pid}" in str(e.value)
    assert "the lock frees itself when that process exits" in str(e.value)


def test_a_killed_holders_lock_is_free_at_once_and_its_leftovers_are_removed(holder):
    store, proc, _ = holder(truncate=False)
    data = _small_store(store)
    planted = _plant(store, "a/c/0/0")  # what a write killed with its process leaves
    proc.kill()
    proc.join(60)
    with StoreLock(StoreLocation.parse(store), operation="downscale") as lock:
        assert lock.removed_leftovers == [planted]
        assert json.loads(Path(lock.path).read_text())["operation"] == "downscale"
    assert not Path(lock.path).exists()
    assert np.array_equal(zarr.open_array(store / "a")[:], data)


def test_a_writer_whose_lock_file_was_removed_stops_at_its_next_check(tmp_path: Path):
    lock = StoreLock(StoreLocation.parse(tmp_path / "s.zarr")).acquire()
    lock.check()
    os.unlink(lock.path)  # someone "cleaned up": a second writer could now lock a new file
    other = StoreLock(StoreLocation.parse(tmp_path / "s.zarr")).acquire()
    with pytest.raises(StoreLockedError, match="lost its store lock: the lock file .* was removed or replaced"):
        lock.check()
    lock.release()
    assert Path(other.path).exists()  # the lost holder leaves the new holder's file alone
    other.release()


def test_a_convert_that_loses_its_lock_stops_before_marking_more_units(sample_root: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    import nersemble_zarr.pipelines.convert as convert_mod
    from nersemble_zarr.core import schema

    store = tmp_path / "lost.zarr"
    lock_file = Path(str(store) + ".nersemble-zarr.lock")
    real_run_task = convert_mod.run_task

    def run_task_then_lose_the_lock(task, on_frames=None):
        result = real_run_task(task, on_frames)
        lock_file.unlink(missing_ok=True)  # the lock is gone once the first unit has been written
        return result

    monkeypatch.setattr(convert_mod, "run_task", run_task_then_lose_the_lock)
    with pytest.raises(StoreLockedError, match="lost its store lock"):
        convert_mod.convert_benchmark(sample_root, store, benchmarks="mono_flame_avatar", sequences=["EXP-1-head"],
                                      progress=False)
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    marked = [name for name, node in root.members(max_depth=None)
              if node.attrs.get(schema.COMPLETE_ATTR) or node.attrs.get(schema.COMPLETE_CAMERAS_ATTR)]
    assert marked == []


# ----------------------------------------------------------------------------------- object store (moto)


@pytest.fixture
def s3():
    """A moto S3 server on 127.0.0.1 holding bucket ``bucket``; yields (storage_options, s3fs filesystem).

    Requests are served one at a time (a lock around the WSGI app) so a conditional write's check and
    write are atomic, as S3 guarantees; the clients (s3fs, botocore, HTTP) are the real ones.
    """
    s3fs = pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    import threading

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    serial = threading.Lock()

    def atomic_app(environ, start_response):
        with serial:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, atomic_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert ThreadedMotoServer  # the stock server is the same app without the lock
    host, port = server.server_address[:2]
    endpoint = f"http://{host}:{port}"
    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="bucket")
    try:
        yield opts, s3fs.S3FileSystem(**opts, skip_instance_cache=True)
    finally:
        server.shutdown()


REMOTE_LOCK = "bucket/r.zarr.nersemble-zarr.lock"


def _stale_holder() -> bytes:
    return json.dumps({"host": "elsewhere", "pid": 1, "started": 0, "operation": "convert", "heartbeat": 0}).encode()


@pytest.mark.slow
def test_racing_for_a_fresh_or_stale_remote_lock_exactly_one_process_holds_it(s3):
    opts, fs = s3

    def prepare(trial: int) -> None:
        assert not fs.exists(REMOTE_LOCK)
        if trial % 2:
            fs.pipe_file(REMOTE_LOCK, _stale_holder())

    _assert_one_holder_each_time(_race("s3://bucket/r.zarr", opts, prepare))


def test_a_remote_holder_that_was_taken_over_stops_and_keeps_the_new_lock(s3):
    opts, fs = s3
    loc = StoreLocation.parse("s3://bucket/r.zarr", opts)
    lock = StoreLock(loc, operation="flame").acquire()
    lock.refresh()
    lock.check()
    with pytest.raises(StoreLockedError, match="another flame is writing"):
        StoreLock(loc).acquire()
    fs.pipe_file(REMOTE_LOCK, json.dumps({"host": "elsewhere", "pid": 7, "heartbeat": time.time()}).encode())
    lock.refresh()  # the next heartbeat finds the object changed
    with pytest.raises(StoreLockedError, match="lost its store lock: the lock object .* was taken over"):
        lock.check()
    lock.release()
    assert json.loads(fs.cat_file(REMOTE_LOCK))["host"] == "elsewhere"  # not deleted by the lost holder


def test_a_stale_remote_lock_is_taken_over_and_released(s3):
    opts, fs = s3
    fs.pipe_file(REMOTE_LOCK, _stale_holder())
    with StoreLock(StoreLocation.parse("s3://bucket/r.zarr", opts), operation="downscale"):
        assert json.loads(fs.cat_file(REMOTE_LOCK))["operation"] == "downscale"
    assert not fs.exists(REMOTE_LOCK)


def test_a_remote_holder_whose_heartbeat_keeps_failing_stops(s3):
    opts, fs = s3
    lock = StoreLock(StoreLocation.parse("s3://bucket/r.zarr", opts), stale_s=1.0, heartbeat_s=0.25).acquire()
    fs.rm_file(REMOTE_LOCK)  # e.g. removed by hand: the heartbeat's conditional rewrite fails
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            lock.check()
        except StoreLockedError as e:
            assert "lost its store lock" in str(e)
            break
        time.sleep(0.05)
    else:
        pytest.fail("check() kept passing although the heartbeat could not be written")
    lock.release()

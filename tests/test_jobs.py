"""The one job runner: threads here, local worker processes, an existing cluster; outcomes, progress, torch
threads, Ctrl-C and a cluster that loses its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nersemble_zarr.core.errors import NersembleZarrError
from nersemble_zarr.jobs.runner import JobArgumentError, JobOutcome, available_cores, run_jobs

# ------------------------------------------------------------------ job functions (module level: workers import them)


def square(job: int) -> int:
    return job * job


def where_and_what(job: int, shared: np.ndarray) -> tuple[int, int, bool]:
    """(pid, job + sum of the shared array, whether SIGINT is ignored in this process)."""
    return os.getpid(), job + int(shared.sum()), signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def fail_on_three(job: int) -> int:
    if job == 3:
        raise ValueError(f"job {job} is broken")
    return job


def touch_later(job: tuple[str, int]) -> int:
    folder, i = job
    time.sleep(0.2)
    Path(folder, f"{i}.done").touch()
    return i


def torch_threads_in_job(job: int) -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------ threads (the default)


def test_threads_run_every_job_and_hand_outcomes_to_the_driver_thread_in_completion_order():
    n = 6
    finished = [threading.Event() for _ in range(n + 1)]
    finished[n].set()
    job_threads: list[int] = []
    seen: list[tuple[int, int]] = []

    def chained(job: int) -> int:
        # job i ends only after job i+1 has ended: completion order is the reverse of the job order
        assert finished[job + 1].wait(10)
        job_threads.append(threading.get_ident())
        finished[job].set()
        return job * 10

    outcomes = run_jobs(list(range(n)), chained, threads=n,
                        on_result=lambda o: seen.append((o.index, threading.get_ident())))
    assert [o.index for o in outcomes] == list(range(n))  # returned in job order
    assert [o.result for o in outcomes] == [i * 10 for i in range(n)]
    assert all(o.ok and o.error is None for o in outcomes)
    driver = threading.get_ident()
    assert {t for _, t in seen} == {driver}  # on_result runs in the calling thread
    assert driver not in job_threads  # jobs do not
    order = [i for i, _ in seen]
    assert sorted(order) == list(range(n)) and order.index(n - 1) < order.index(0)


def test_a_failing_job_becomes_a_failed_outcome_naming_its_error_and_the_others_complete():
    def fail(job: int) -> int:
        if job == 1:
            raise NersembleZarrError("store.zarr/nvs/388: shard 3 is damaged")
        return fail_on_three(job)

    seen: list[JobOutcome] = []
    outcomes = run_jobs(range(6), fail, threads=2, on_result=seen.append)
    assert len(seen) == 6
    failed = {o.index: o for o in outcomes if not o.ok}
    assert set(failed) == {1, 3}
    assert failed[3].error == "ValueError: job 3 is broken" and isinstance(failed[3].exception, ValueError)
    assert failed[1].error == "store.zarr/nvs/388: shard 3 is damaged"  # our errors keep their own message
    assert [o.result for o in outcomes if o.ok] == [0, 2, 4, 5]


def test_progress_callback_counts_frames_of_successful_jobs_up_to_the_total():
    calls: list[tuple[int, int]] = []
    outcomes = run_jobs([1, 2, 3, 4], square, threads=2, frames_of=lambda j: j * 10, progress=lambda d, t: calls.append((d, t)))
    assert all(o.ok for o in outcomes)
    assert calls[-1] == (100, 100) and all(t == 100 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back


def test_live_progress_moves_while_a_job_runs_and_is_not_counted_twice():
    calls: list[tuple[int, int]] = []

    def frames(job: int, advance) -> int:
        for _ in range(job):
            advance(1)
        if job == 3:
            raise RuntimeError("stops after its frames")
        return job

    outcomes = run_jobs([5, 3, 2], frames, threads=2, live_progress=True, frames_of=lambda j: j,
                        progress=lambda d, t: calls.append((d, t)))
    assert [o.ok for o in outcomes] == [True, False, True]
    assert len(calls) == 10  # one call per live frame; the successful jobs need no top-up
    assert calls[-1] == (10, 10)  # the failed job's 3 frames were really written, so they count


def test_frames_done_counts_what_a_finished_job_says_it_did():
    calls: list[tuple[int, int]] = []
    run_jobs([1, 2, 3], square, threads=1, frames_of=lambda j: j, frames_done=lambda r: 0 if r == 4 else r,
             progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (10, 6)  # job 1: 1, job 2: 0 (say its result), job 3: 9


def test_progress_true_draws_one_bar_on_stderr_with_rate_and_the_jobs_count(capsys):
    run_jobs([1, 2, 3], square, threads=1, progress=True, desc="squaring", frames_of=lambda j: j, jobs_label="units")
    err = capsys.readouterr().err
    assert "squaring" in err and "6/6" in err and "frame/s" in err and "units 3/3" in err


def test_a_failed_job_leaves_its_unreported_frames_uncounted():
    calls: list[tuple[int, int]] = []
    run_jobs([1, 2, 3, 4], fail_on_three, threads=2, frames_of=lambda j: j, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (7, 10)


def test_shared_object_is_passed_to_every_job_in_threads_mode():
    shared = np.arange(4)
    outcomes = run_jobs([0, 1], where_and_what, shared=shared, threads=2)
    assert [o.result[1] for o in outcomes] == [6, 7]
    assert {o.result[0] for o in outcomes} == {os.getpid()}


def test_keyboard_interrupt_from_on_result_cancels_the_queued_jobs_and_propagates():
    started: list[int] = []
    release = threading.Event()

    def job_fn(job: int) -> int:
        started.append(job)
        if job:  # job 0 finishes at once, the others wait until the driver has seen it
            assert release.wait(10)
        return job

    def interrupt(outcome: JobOutcome) -> None:
        release.set()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(list(range(50)), job_fn, threads=2, on_result=interrupt)
    count = len(started)
    assert count <= 4  # the queue was dropped; at most the jobs already running or just picked up ran
    time.sleep(0.2)
    assert len(started) == count  # nothing keeps running after run_jobs raised


def test_an_error_raised_by_on_result_aborts_the_run():
    with pytest.raises(RuntimeError, match="abort on 2"):
        run_jobs([0, 1, 2, 3], square, threads=1,
                 on_result=lambda o: (_ for _ in ()).throw(RuntimeError("abort on 2")) if o.index == 2 else None)


def test_threads_1_runs_the_jobs_in_order_in_the_calling_thread_each_outcome_before_the_next_job():
    events: list[str] = []

    def job_fn(job: int) -> int:
        events.append(f"job {job} in {'driver' if threading.get_ident() == driver else 'other'}")
        return job

    driver = threading.get_ident()
    run_jobs([0, 1, 2], job_fn, threads=1, on_result=lambda o: events.append(f"outcome {o.index}"))
    assert events == ["job 0 in driver", "outcome 0", "job 1 in driver", "outcome 1", "job 2 in driver", "outcome 2"]


def test_contradictory_arguments_are_refused_before_anything_runs():
    with pytest.raises(JobArgumentError, match="not both"):
        run_jobs([1], square, workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(JobArgumentError, match="workers must be >= 1"):
        run_jobs([1], square, workers=0)
    with pytest.raises(JobArgumentError, match="threads=1"):
        run_jobs([1], square, scheduler="synchronous")  # dask's local scheduler names are not cluster addresses
    assert JobArgumentError.exit_code == 2


def test_no_jobs_is_no_work():
    assert run_jobs([], square, workers=2) == []  # no cluster is started for nothing


# ------------------------------------------------------------------ torch thread budget


def test_torch_thread_budget_is_set_inside_jobs_and_restored_after():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        outcomes = run_jobs([0, 1, 2, 3], torch_threads_in_job, threads=2, torch_threads="auto")
        assert {o.result for o in outcomes} == {max(1, available_cores() // 2)}
        assert torch.get_num_threads() == 3
        outcomes = run_jobs([0, 1], torch_threads_in_job, threads=2, torch_threads=2)
        assert {o.result for o in outcomes} == {2}
        assert torch.get_num_threads() == 3
        run_jobs([0], torch_threads_in_job)  # torch_threads=None leaves torch alone
        assert torch.get_num_threads() == 3
        # the budget follows the slots, not the number of jobs: one job alone runs as it would among many
        [alone] = run_jobs([0], torch_threads_in_job, torch_threads="auto")
        assert alone.result == 1  # default slots: one per core, so 1 intra-op thread each
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------ local worker processes, an existing cluster


@pytest.mark.slow
def test_workers_run_jobs_in_local_worker_processes_that_ignore_sigint_and_hand_results_back():
    seen: list[int] = []
    outcomes = run_jobs(list(range(6)), where_and_what, workers=2, shared=np.arange(4),
                        on_result=lambda o: seen.append(threading.get_ident()))
    pids = {o.result[0] for o in outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert [o.result[1] for o in outcomes] == [6 + i for i in range(6)]
    assert all(o.result[2] for o in outcomes)  # Ctrl-C is the driver's: the workers ignore SIGINT
    assert set(seen) == {threading.get_ident()}


@pytest.mark.slow
def test_torch_thread_budget_on_local_worker_processes():
    pytest.importorskip("torch")
    outcomes = run_jobs([0, 1, 2], torch_threads_in_job, workers=2, torch_threads="auto")
    assert {o.result for o in outcomes} == {max(1, available_cores() // 2)}


def test_an_unreachable_scheduler_is_a_cluster_error_naming_the_address():
    import dask

    from nersemble_zarr.jobs.runner import ClusterError

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ClusterError, match="dask scheduler at tcp://127.0.0.1:1: cannot connect"):
            run_jobs([1], square, scheduler="tcp://127.0.0.1:1")


@pytest.fixture(scope="module")
def cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None, silence_logs=40,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"}) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_scheduler_address_runs_jobs_on_that_cluster_and_fails_jobs_one_by_one(cluster_address):
    seen: list[int] = []
    outcomes = run_jobs(list(range(5)), fail_on_three, scheduler=cluster_address, frames_of=lambda j: 1,
                        on_result=lambda o: seen.append(o.index))
    assert sorted(seen) == list(range(5))
    assert [o.result for o in outcomes if o.ok] == [0, 1, 2, 4]
    [failed] = [o for o in outcomes if not o.ok]
    assert failed.index == 3 and failed.error == "ValueError: job 3 is broken"
    outcomes = run_jobs([2, 3], square, scheduler=cluster_address)
    assert [o.result for o in outcomes] == [4, 9]


@pytest.mark.slow
def test_torch_thread_budget_on_an_existing_cluster_counts_the_jobs_of_its_host(cluster_address):
    pytest.importorskip("torch")
    outcomes = run_jobs([0, 1], torch_threads_in_job, scheduler=cluster_address, torch_threads="auto")
    assert {o.result for o in outcomes} == {max(1, available_cores() // 2)}  # one worker, 2 threads


@pytest.mark.slow
def test_keyboard_interrupt_on_a_cluster_cancels_the_queued_jobs(cluster_address, tmp_path):
    def interrupt(outcome: JobOutcome) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs([(str(tmp_path), i) for i in range(20)], touch_later, scheduler=cluster_address, on_result=interrupt)
    time.sleep(3)  # 20 jobs of 0.2 s on 2 threads would all be done by now had they not been cancelled
    assert len(list(tmp_path.glob("*.done"))) <= 6


_DYING_CLUSTER = r"""
import os, subprocess, sys, time
import distributed
from nersemble_zarr.jobs.runner import run_jobs

def die(job):
    os._exit(3)  # the worker process is gone, no nanny restarts it

if __name__ == "__main__":
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None, silence_logs=40,
                                  scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"}) as cluster:
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                   "--no-nanny", "--nthreads", "1", "--no-dashboard"], stderr=subprocess.DEVNULL)
        with distributed.Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
        start = time.monotonic()
        try:
            run_jobs([0, 1, 2], die, scheduler=cluster.scheduler_address, no_workers_timeout_s=2)
        except Exception as e:
            print("raised", type(e).__name__, e)
        else:
            print("returned")
        print("after", round(time.monotonic() - start))
        worker.wait(60)
        print("worker exit", worker.returncode)
"""


@pytest.mark.slow
def test_a_cluster_whose_workers_all_died_raises_cluster_error_in_bounded_time(tmp_path):
    script = tmp_path / "dying.py"
    script.write_text(_DYING_CLUSTER)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("raised ClusterError dask cluster at tcp://"), (proc.stdout, proc.stderr[-3000:])
    assert "no worker has been alive for 2 s" in lines[0]
    assert int(lines[1].split()[1]) < 30
    assert lines[2] == "worker exit 3"  # the job really killed its worker

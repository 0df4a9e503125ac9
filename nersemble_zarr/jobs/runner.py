"""The one job runner: every command that works in parallel hands its jobs to :func:`run_jobs`.

Where the jobs run (the same three choices, with the same argument names, for every command):

* default (``workers=None, scheduler=None``): ``threads`` threads in this process (default: one per core);
  ``threads=1`` (or a single job) runs the jobs one after another in the calling thread (deterministic order,
  each outcome handled before the next job starts, debuggable; Ctrl-C then interrupts the running job itself);
* ``workers=N``: a dask.distributed ``LocalCluster`` of N worker processes started for this call and closed
  after it (one thread each, no dashboard, a job may kill :data:`~.cluster.ALLOWED_FAILURES` worker(s) before it
  fails with ``KilledWorker``; the workers ignore SIGINT: Ctrl-C is the driver's to handle);
* ``scheduler="tcp://host:port"`` (or a ``distributed.Client``): an existing dask.distributed cluster. Its
  workers must import ``fn`` and reach the data (the store at the same path or URL).

A job is a small picklable value (a task description, not the data); ``fn(job)`` runs where the work runs and
returns a small picklable result. Extra arguments, in this order, when asked for:

* ``shared=obj``: ``fn(job, obj)``. One object every job needs (a model): sent to each worker once (dask
  ``scatter``, broadcast), not with every job;
* ``live_progress=True``: ``fn(job, [obj,] advance)``; the job calls ``advance(n)`` as it finishes ``n``
  frames. In threads mode the display moves while a long job runs; on worker processes ``advance`` does
  nothing and the job's frames are counted when it finishes.

The driver (the thread that called :func:`run_jobs`) receives every job's :class:`JobOutcome` through
``on_result(outcome)`` as the job finishes, in completion order. That is where completion markers are written:
by the driver only, after the job's data is on the store. A job that raises becomes a failed outcome
(``ok`` False, ``error`` its message, ``exception`` the exception); the caller decides what that means:
return from ``on_result`` to go on, raise to abort. Anything raised in the driver — by ``on_result``,
``KeyboardInterrupt`` (Ctrl-C), :class:`~.cluster.ClusterError` (a cluster that has had no worker for
``no_workers_timeout_s`` while jobs wait) — cancels the queued jobs and propagates; in threads mode the
jobs already running finish first, so no job of this call is still writing when the error arrives (a local
cluster's workers are stopped). :func:`run_jobs` returns every outcome, in the order of ``jobs``.

Progress is one :class:`~.progress.FrameProgress` (done, rate, ETA on stderr when ``progress=True``) or a
callback ``progress(done, total)``, counted in frames: ``frames_of(job)`` frames per job (default 1 job =
1 unit), ``total_frames`` their sum unless given. A job that finishes counts ``frames_done(result)`` frames
(default ``frames_of(job)``; a job whose result says it failed may count 0), less what it reported live, once
``on_result`` has returned (done means handled: marked); a job that raised counts only what it reported live.

Example (convert)::

    def on_result(outcome):
        if outcome.ok and outcome.result.status == "done":
            mark_complete(outcome.job)            # the driver writes the marker, last

    run_jobs(tasks, run_task, workers=workers, scheduler=scheduler, on_result=on_result, progress=True,
             desc="converting", frames_of=lambda t: t.n_timesteps, live_progress=True)

Torch thread budget: a job that runs torch (FLAME) on a machine busy with other jobs must not use every core
for intra-op threads (2 threads on a busy 2-core machine run FLAME 5–10× slower than 1). With
``torch_threads="auto"`` each job runs with ``max(1, cores // job slots on its machine)`` intra-op threads
(slots: ``threads``, ``workers``, or the threads of a cluster's workers on that host; not the number of jobs,
so a rerun that redoes one job computes it bit for bit like the run that did them all); with an int, with that
many. The previous setting is restored afterwards (in threads mode around the whole call, torch's setting
being process-wide; on a worker process around each job). ``None`` (default): torch is neither imported nor
touched.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ..core.errors import NersembleZarrError
from .cluster import ALLOWED_FAILURES, ClusterError, as_completed_or_fail
from .progress import FrameProgress

__all__ = [
    "ClusterError", "JobArgumentError", "JobOutcome", "available_cores", "default_threads", "describe_error", "run_jobs",
    "torch_thread_budget",
]

J = TypeVar("J")
R = TypeVar("R")

#: dask's local scheduler names: not a cluster address (downscale took these before the runner existed).
_LOCAL_SCHEDULERS = frozenset({"threads", "threading", "processes", "multiprocessing", "synchronous", "sync",
                               "single-threaded"})

TorchThreads = int | Literal["auto"] | None
ProgressArg = bool | Callable[[int, int], None]


class JobArgumentError(NersembleZarrError, ValueError):
    """Contradictory or out-of-range runner arguments (``workers`` and ``scheduler`` both given, ``workers < 1``)."""

    exit_code = 2


@dataclass(frozen=True)
class JobOutcome(Generic[J, R]):
    """What became of one job: ``result`` (``fn``'s return value) when ``ok``, else ``error``.

    ``index``: the job's position in ``jobs``. ``error``: one line naming the failure (a nersemble-zarr
    error's own message, else ``"<ExceptionType>: <message>"``); ``exception``: the exception itself (on a
    cluster, as dask hands it back, e.g. ``KilledWorker`` for a job whose worker died).
    """

    index: int
    job: J
    result: R | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the job returned normally."""
        return self.error is None


def describe_error(e: BaseException) -> str:
    """One line for a failed job: the message of a :class:`NersembleZarrError` (it names what and where), else
    ``"<ExceptionType>: <message>"``."""
    if isinstance(e, NersembleZarrError):
        return str(e)
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Jobs run at once in threads mode by convert and verify: one per core, at most 4 (measured on 2 cores: two
    convert units at once run 1.05-1.2x faster than one; each unit also keeps ffmpeg decoding in its own process)."""
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------------
# torch thread budget
# ---------------------------------------------------------------------------------------------

_torch_lock = threading.Lock()
_torch_users = 0
_torch_previous = 0


@contextmanager
def torch_thread_budget(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``n`` (>= 1), restoring the previous count after.

    torch's setting is process-wide: while blocks overlap (jobs on the threads of one process) the first one
    sets it and the last one to leave restores it.
    """
    global _torch_users, _torch_previous
    import torch

    with _torch_lock:
        if _torch_users == 0:
            _torch_previous = torch.get_num_threads()
            torch.set_num_threads(max(1, int(n)))
        _torch_users += 1
    try:
        yield
    finally:
        with _torch_lock:
            _torch_users -= 1
            if _torch_users == 0:
                torch.set_num_threads(_torch_previous)


def _budget(cores: int, concurrent: int) -> int:
    return max(1, cores // max(1, concurrent))


# ---------------------------------------------------------------------------------------------
# What runs where the work runs
# ---------------------------------------------------------------------------------------------


def _ignore_frames(n: int) -> None:
    """``advance`` on a worker process: frames are counted by the driver when the job finishes."""


class _Box:
    """Hides a job from dask, which would otherwise compute dask collections (or futures) found inside it."""

    __slots__ = ("job",)

    def __init__(self, job: Any) -> None:
        self.job = job


class _Call:
    """``fn`` with the runner's calling convention; picklable when ``fn`` is.

    ``torch_threads``: None (leave torch alone), an int (this many intra-op threads during the job), or a
    ``{host: concurrent jobs}`` map (on a dask worker: ``cores // concurrent jobs on this host``).
    """

    def __init__(self, fn: Callable[..., Any], with_shared: bool, live: bool,
                 torch_threads: int | dict[str, int] | None) -> None:
        self.fn = fn
        self.with_shared = with_shared
        self.live = live
        self.torch_threads = torch_threads

    def __call__(self, job: Any, shared: Any = None, advance: Callable[[int], None] | None = None) -> Any:
        if isinstance(job, _Box):
            job = job.job
        args = [job]
        if self.with_shared:
            args.append(shared)
        if self.live:
            args.append(advance or _ignore_frames)
        threads = self.torch_threads
        if isinstance(threads, dict):
            threads = _worker_budget(threads)
        with torch_thread_budget(threads) if threads is not None else nullcontext():
            return self.fn(*args)


def _worker_budget(host_threads: dict[str, int]) -> int:
    """Intra-op threads for a job on this dask worker: its host's cores over the jobs its host runs at once."""
    from distributed import get_worker

    worker = get_worker()
    host = _host(worker.address)
    concurrent = host_threads.get(host) or worker.state.nthreads
    return _budget(available_cores(), concurrent)


def _host(address: str) -> str:
    """``tcp://10.0.0.1:4567`` → ``10.0.0.1``."""
    rest = address.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def dask_setup(worker: Any) -> None:
    """Preload of the workers of our own ``LocalCluster`` (``workers=N``): ignore SIGINT.

    A terminal's Ctrl-C reaches every process of the foreground group; the driver cancels the jobs and stops
    the workers, which would otherwise each print a ``KeyboardInterrupt`` traceback (and die mid-write).
    """
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---------------------------------------------------------------------------------------------
# The driver side
# ---------------------------------------------------------------------------------------------


class _Progress:
    """Frames done out of ``total``: a bar on stderr, a callback, or nothing; safe to advance from any thread."""

    def __init__(self, total: int, progress: ProgressArg, desc: str, unit: str, n_jobs: int,
                 jobs_label: str | None) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._callback = progress if callable(progress) else None
        self._bar = FrameProgress(total, progress is True, desc=desc, unit=unit)
        self._jobs_label = jobs_label
        self._jobs = [0, n_jobs]
        if jobs_label:
            self._bar.set_postfix(f"{jobs_label} 0/{n_jobs}")

    def advance(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:  # callbacks see a non-decreasing count
            self.done += n
            self._bar.update(n)
            if self._callback is not None:
                self._callback(self.done, self.total)

    def job_done(self) -> None:
        """One more job finished (successfully or not): the display's ``<jobs_label> done/total``."""
        if self._jobs_label:
            with self._lock:
                self._jobs[0] += 1
                self._bar.set_postfix(f"{self._jobs_label} {self._jobs[0]}/{self._jobs[1]}")

    def close(self) -> None:
        self._bar.close()


class _JobFrames:
    """A job's live ``advance``: forwards to the display and remembers how much the job reported itself."""

    def __init__(self, progress: _Progress) -> None:
        self.progress = progress
        self.reported = 0

    def __call__(self, n: int) -> None:
        self.reported += n
        self.progress.advance(n)


def run_jobs(
    jobs: Sequence[J],
    fn: Callable[..., R],
    *,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int | None = None,
    on_result: Callable[[JobOutcome[J, R]], None] | None = None,
    progress: ProgressArg = False,
    desc: str = "",
    frames_of: Callable[[J], int] | None = None,
    frames_done: Callable[[R], int] | None = None,
    total_frames: int | None = None,
    unit: str | None = None,
    jobs_label: str | None = None,
    live_progress: bool = False,
    shared: Any = None,
    torch_threads: TorchThreads = None,
    name: str = "job",
    no_workers_timeout_s: float | None = None,
) -> list[JobOutcome[J, R]]:
    """Run ``fn`` on every job of ``jobs`` in parallel; returns the outcomes in the order of ``jobs``.

    See the module docstring for the whole contract. ``workers``: that many local worker processes (a
    ``LocalCluster`` for this call); ``scheduler``: a ``tcp://`` address or ``distributed.Client`` of an
    existing cluster; neither: ``threads`` threads here (default :func:`available_cores`). ``on_result``: called
    in this thread with each :class:`JobOutcome` as its job finishes; what it raises aborts the run.
    ``progress``: True for a bar on stderr (``desc``, ``unit``: default "frame" with ``frames_of``, else "job"),
    or a callback ``(done, total)`` (called under a lock, from a job's thread for live progress); with
    ``jobs_label`` (e.g. "units") the bar also shows ``units <finished>/<all>``.
    ``frames_of(job)``: frames a job covers; ``total_frames``: the display's total (default their sum);
    ``frames_done(result)``: frames a finished job did (default ``frames_of(job)``).
    ``live_progress``/``shared``: extra arguments of ``fn``. ``torch_threads``: ``"auto"``, an int or None.
    ``name``: prefix of the jobs' thread names and dask keys. ``no_workers_timeout_s``: seconds a cluster may
    have no worker while jobs wait before :class:`~.cluster.ClusterError` (default
    :data:`~.cluster.NO_WORKERS_TIMEOUT_S`).

    Raises :class:`JobArgumentError` for ``workers`` together with ``scheduler`` or ``workers < 1``;
    whatever ``on_result`` raises, ``KeyboardInterrupt`` and :class:`~.cluster.ClusterError` after cancelling
    the queued jobs.
    """
    if workers is not None and scheduler is not None:
        raise JobArgumentError("give either workers (local worker processes) or scheduler (an existing dask "
                               "cluster's address), not both")
    if workers is not None and int(workers) < 1:
        raise JobArgumentError(f"workers must be >= 1, not {workers}")
    if isinstance(scheduler, str) and scheduler in _LOCAL_SCHEDULERS:
        raise JobArgumentError(
            f"scheduler={scheduler!r}: scheduler is the address of a dask.distributed cluster (tcp://host:port); "
            f"for threads here give threads=N (threads=1: one job at a time), for local processes workers=N"
        )
    if threads is not None and int(threads) < 1:
        raise JobArgumentError(f"threads must be >= 1, not {threads}")
    if torch_threads is not None and torch_threads != "auto" and int(torch_threads) < 1:
        raise JobArgumentError(f"torch_threads must be 'auto', None or >= 1, not {torch_threads!r}")
    jobs = list(jobs)
    counts = [int(frames_of(j)) for j in jobs] if frames_of is not None else [1] * len(jobs)
    total = sum(counts) if total_frames is None else int(total_frames)
    bar = _Progress(total, progress, desc, unit or ("frame" if frames_of is not None else "job"), len(jobs),
                    jobs_label)
    outcomes: list[JobOutcome[J, R] | None] = [None] * len(jobs)
    live: dict[int, _JobFrames] = {}

    def finish(outcome: JobOutcome[J, R]) -> None:
        outcomes[outcome.index] = outcome
        if on_result is not None:  # first: a job counts as done once the driver has handled (marked) it
            on_result(outcome)
        reported = live.pop(outcome.index).reported if outcome.index in live else 0
        if outcome.ok:
            done = counts[outcome.index] if frames_done is None else int(frames_done(outcome.result))
            bar.advance(done - reported)
        bar.job_done()

    try:
        if jobs and workers is None and scheduler is None:
            _run_threads(jobs, fn, threads, shared, live_progress, torch_threads, name, bar, live, finish)
        elif jobs:
            _run_dask(jobs, fn, workers, scheduler, shared, live_progress, torch_threads, name,
                      no_workers_timeout_s, finish)
    finally:
        bar.close()
    return [o for o in outcomes if o is not None]


def _run_threads(
    jobs: list[Any], fn: Callable[..., Any], threads: int | None, shared: Any, live_progress: bool,
    torch_threads: TorchThreads, name: str, bar: _Progress, live: dict[int, _JobFrames],
    finish: Callable[[JobOutcome], None],
) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    slots = int(threads) if threads is not None else available_cores()
    n = min(len(jobs), slots)
    call = _Call(fn, shared is not None, live_progress, None)
    budget = None
    if torch_threads is not None:
        # from the slots, not from how many jobs there are: torch's results depend on its thread count in the
        # last bits, so a rerun that redoes one job must compute it exactly as a run that did them all
        budget = _budget(available_cores(), slots) if torch_threads == "auto" else int(torch_threads)
    with torch_thread_budget(budget) if budget is not None else nullcontext():
        if n == 1:  # one at a time: here, in job order, each outcome handed over before the next job starts
            for i, job in enumerate(jobs):
                advance = None
                if live_progress:
                    advance = live[i] = _JobFrames(bar)
                try:
                    outcome = JobOutcome(i, job, result=call(job, shared, advance))
                except Exception as e:  # noqa: BLE001  a failed job is an outcome; the caller decides
                    outcome = JobOutcome(i, job, error=describe_error(e), exception=e)
                finish(outcome)
            return
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=name)
        try:
            futures = {}
            for i, job in enumerate(jobs):
                advance = None
                if live_progress:
                    advance = live[i] = _JobFrames(bar)
                futures[pool.submit(call, job, shared, advance)] = i
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    outcome = JobOutcome(i, jobs[i], result=fut.result())
                except Exception as e:  # noqa: BLE001  a failed job is an outcome; the caller decides
                    outcome = JobOutcome(i, jobs[i], error=describe_error(e), exception=e)
                finish(outcome)
        finally:
            # on an error or Ctrl-C: queued jobs are dropped, running ones finish (nothing writes after we return)
            pool.shutdown(wait=True, cancel_futures=True)


def _local_cluster(workers: int) -> Any:
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        return LocalCluster(
            n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None,
            # CRITICAL only: job errors come back through the futures and dead workers through the cluster watch;
            # what workers log as ERROR is shutdown noise (a heartbeat to a scheduler closed on Ctrl-C)
            silence_logs=50,
            # no dashboard, and the scheduler's HTTP routes on a free port: with only
            # dashboard_address=None they still bind 8787 and warn when another cluster holds it
            scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
            preload=[__name__],  # dask_setup: the workers ignore SIGINT
        )


def _run_dask(
    jobs: list[Any], fn: Callable[..., Any], workers: int | None, scheduler: Any, shared: Any,
    live_progress: bool, torch_threads: TorchThreads, name: str, no_workers_timeout_s: float | None,
    finish: Callable[[JobOutcome], None],
) -> None:
    from distributed import Client

    cluster = None
    if scheduler is None:
        cluster = _local_cluster(int(workers or 1))
        client = Client(cluster)
    elif isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as e:  # nothing listens there (dask retries until its connect timeout)
            raise ClusterError(
                f"dask scheduler at {scheduler}: cannot connect ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                f"start the cluster or check the address"
            ) from None
    futures: list[Any] = []
    try:
        budget: int | dict[str, int] | None = None
        if torch_threads == "auto":
            if cluster is not None:  # our workers share this machine
                budget = _budget(available_cores(), int(workers or 1))
            else:
                budget = {}
                for address, n in client.nthreads().items():
                    budget[_host(address)] = budget.get(_host(address), 0) + int(n)
        elif torch_threads is not None:
            budget = int(torch_threads)
        call = _Call(fn, shared is not None, live_progress, budget)
        shared_ref = None
        if shared is not None:
            [shared_ref] = client.scatter([shared], broadcast=True, hash=False)
        token = uuid.uuid4().hex[:8]
        futures = [
            client.submit(call, _Box(job), shared_ref, key=f"{name}-{i}-{token}", pure=False)
            for i, job in enumerate(jobs)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        kwargs = {} if no_workers_timeout_s is None else {"no_workers_timeout_s": no_workers_timeout_s}
        for fut in as_completed_or_fail(client, futures, **kwargs):  # ClusterError when no worker is left
            i = index[fut.key]
            try:
                outcome = JobOutcome(i, jobs[i], result=fut.result())
            except Exception as e:  # noqa: BLE001  a failed job (or its lost worker) is an outcome
                outcome = JobOutcome(i, jobs[i], error=describe_error(e), exception=e)
            finish(outcome)
    finally:
        try:
            if futures:
                client.cancel(futures)  # queued jobs are dropped
        finally:
            if client is not scheduler:
                client.close()
            if cluster is not None:
                cluster.close()

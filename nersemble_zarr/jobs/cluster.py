"""Results from a dask.distributed cluster that cannot hang when its workers die.

``distributed.as_completed`` waits forever for a task whose workers are gone: with nannies a task
that kills its worker is retried on restarted workers (``allowed-failures`` times), and without
them (``dask worker --no-nanny``, or a cluster whose workers all crashed) the scheduler holds the
task in "no-worker" state indefinitely. :func:`as_completed_or_fail` yields futures as they finish
and raises :class:`ClusterError` once the cluster has had no worker for ``no_workers_timeout_s``
while tasks wait. :data:`ALLOWED_FAILURES` is what our own ``LocalCluster`` (``--workers N``)
allows before a task that keeps killing workers fails with ``KilledWorker``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..core.errors import NersembleZarrError

#: Seconds a computation may wait with no worker alive before it fails (restarting a worker takes seconds).
NO_WORKERS_TIMEOUT_S = 60.0
#: Worker deaths a task of our own LocalCluster may cause before it fails (dask's default is 3).
ALLOWED_FAILURES = 1
#: How often (seconds) the cluster's workers are counted while nothing finishes.
POLL_S = 1.0


class ClusterError(NersembleZarrError):
    """The dask cluster lost all its workers while tasks were waiting."""


def as_completed_or_fail(client: Any, futures: Iterable[Any], *, no_workers_timeout_s: float | None = None,
                         poll_s: float | None = None) -> Iterator[Any]:
    """Yield ``futures`` (``distributed.Future``) as they finish, like ``distributed.as_completed``.

    Raises :class:`ClusterError` when ``client``'s cluster has had no worker for ``no_workers_timeout_s``
    seconds (default :data:`NO_WORKERS_TIMEOUT_S`) while some futures are unfinished. A failed future
    is yielded like a finished one (``.result()`` raises its error, e.g. ``KilledWorker``).
    """
    from distributed import wait

    limit = NO_WORKERS_TIMEOUT_S if no_workers_timeout_s is None else float(no_workers_timeout_s)
    poll = POLL_S if poll_s is None else float(poll_s)
    pending = set(futures)
    no_workers_since: float | None = None
    while pending:
        try:
            done, pending = wait(pending, timeout=poll, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        if done:
            no_workers_since = None
            yield from done
            continue
        if client.nthreads():
            no_workers_since = None
            continue
        now = time.monotonic()
        if no_workers_since is None:
            no_workers_since = now
        elif now - no_workers_since >= limit:
            address = getattr(client.scheduler, "address", None) or "the dask scheduler"
            raise ClusterError(
                f"dask cluster at {address}: no worker has been alive for {limit:.0f} s while {len(pending)} "
                f"task(s) wait (the workers died or were stopped; a task that crashes its worker process does "
                f"this); check the workers' logs, start workers again and rerun the same command to resume"
            )

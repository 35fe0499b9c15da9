"""Many fits on a Dask cluster that survive a worker's death (extra `dask`).

joblib's own Dask backend scatters every argument over 1 kB (the data, and each fold's row
indices) to one worker, so when that worker dies the search fails ("already forgotten"), and a
fit that kills its worker leaves the search waiting forever. `on_cluster` runs the same search
through a joblib backend that sends each fit with its data, one fit per task: when a worker dies,
the scheduler runs its fits again elsewhere, and a fit that ends every worker that runs it stops
the search with a `WorkerDiedError` that names its parameters. (Dask counts a death against every
task the worker held, so a fit queued behind such a fit can be the one named: the message says so.)"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import joblib
from joblib.parallel import ParallelBackendBase

from chainrule.errors import WorkerDiedError

try:
    import distributed
except ImportError as error:  # pragma: no cover - the extra is installed wherever this is tested
    raise ImportError("chainrule.sklearn.cluster needs Dask: pip install 'chainrule[dask]'") from error


def describe(batch: Any) -> str:
    """What a batch of joblib calls computes, in a user's words: a search's fits by their
    parameters (scikit-learn's searches pass them as `parameters=`)."""
    calls = []
    for function, _, keywords in batch.items:
        parameters = keywords.get("parameters")
        name = getattr(function, "__name__", type(function).__name__)
        calls.append(f"the fit with parameters {parameters}" if parameters is not None else f"the call {name}")
    return ", ".join(calls)


class ClusterBackend(ParallelBackendBase):
    """joblib's backend for a Dask cluster, built for workers that may die: each task carries its
    own data (nothing is scattered, so nothing is lost with a worker), holds one call, and reports
    a task the scheduler gave up on (`KilledWorker`) as a `WorkerDiedError`."""

    default_n_jobs = -1
    supports_retrieve_callback = True

    def __init__(self, client: distributed.Client, **backend_options: Any) -> None:
        super().__init__(**backend_options)
        self.client = client
        self.running: dict[distributed.Future, str] = {}
        self.running_lock = threading.Lock()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The cluster's worker threads, and at least 2: joblib runs a one-job loop in the calling
        process, and the fits belong on the cluster however small it is."""
        return max(sum(self.client.ncores().values()), 2)

    def submit(self, func: Any, callback: Callable[[distributed.Future], None] | None = None) -> distributed.Future:
        future = self.client.submit(func, pure=False, key=f"chainrule-fit-{uuid4().hex}")
        with self.running_lock:
            self.running[future] = describe(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: distributed.Future) -> Any:
        with self.running_lock:
            what = self.running.pop(future, "a task")
        try:
            return future.result()
        except distributed.KilledWorker as error:
            raise WorkerDiedError(
                f"the cluster gave up on {what}: each of the {error.allowed_failures + 1} workers it was sent to "
                f"died before it finished (the last was {error.last_worker.address}). Either it ends its worker "
                "(a crash, or running out of memory), or it waited on workers that such a fit ended; the "
                "workers' logs say which"
            ) from None

    def abort_everything(self, ensure_ready: bool = True) -> None:
        with self.running_lock:
            abandoned = list(self.running)
            self.running.clear()
        self.client.cancel(abandoned)


@contextlib.contextmanager
def on_cluster(client: distributed.Client | None = None) -> Iterator[ClusterBackend]:
    """Run joblib's loops (a search's fits, `cross_validate`) on a Dask cluster, surviving the
    death of its workers: `with on_cluster(): search.fit(X, y)` inside `with Client(...)`, or
    `on_cluster(client)`."""
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "on_cluster: no Dask client to run the fits on; start one first (with Client(cluster): ...) "
                "or pass it, on_cluster(client)"
            ) from None
    backend = ClusterBackend(client)
    with joblib.parallel_config(backend=backend):
        yield backend

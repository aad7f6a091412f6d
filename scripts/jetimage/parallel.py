"""Independent calls run as Dask tasks, on threads, processes or a ``dask.distributed`` cluster.

:func:`dask_runner` gives the stages that work chunk by chunk (images, dataset) one way to run a
list of calls in parallel on the scheduler the config names (``dask.scheduler``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import dask
import dask.local
import dask.multiprocessing

#: Processes and a distributed cluster get the calls joined into at most this many tasks per
#: worker (consecutive calls; enough tasks left to balance the load, few enough that Dask's
#: overhead per task stays small).
TASKS_PER_WORKER = 4


SCHEDULERS = ("threads", "processes", "synchronous")


def check_scheduler(scheduler: str) -> None:
    """Raise ``ValueError`` unless ``scheduler`` is one of :data:`SCHEDULERS` or the address of
    a ``dask.distributed`` scheduler (``tcp://host:port``)."""
    if "://" not in scheduler and scheduler not in SCHEDULERS:
        msg = (
            f"dask scheduler must be threads, processes, synchronous or an address, "
            f"not {scheduler!r}"
        )
        raise ValueError(msg)


@contextmanager
def dask_runner(scheduler: str, num_workers: int):
    """A function ``run(function, arguments) -> results`` calling ``function(*args)`` for each
    tuple of ``arguments`` (results in order) as independent Dask tasks on the chosen
    scheduler: ``threads``, ``processes``, ``synchronous``, or the address of a
    ``dask.distributed`` scheduler (``tcp://host:port``; the client is closed on exit, the
    cluster left running).

    ``threads`` runs one Dask task per worker thread (Dask's local scheduler,
    ``dask.local.get_async``, what ``dask.threaded.get`` wraps, on a pool of ``num_workers``
    threads), each taking the next call from a shared queue as soon as it finishes one, so the
    threads finish within one call of each other. ``processes`` and a cluster, whose tasks share
    no memory, get the calls joined into at most :data:`TASKS_PER_WORKER` tasks per worker,
    handed to the scheduler's ``get`` as a plain task graph (Dask's custom-graph interface);
    ``processes`` keeps one pool of worker processes for the whole run. Why this design:
    docs/benchmarks.md."""
    check_scheduler(scheduler)
    if "://" in scheduler:
        try:
            from dask.distributed import Client
        except ImportError as err:  # pragma: no cover - optional dependency
            msg = "a scheduler address needs 'pip install distributed'"
            raise ImportError(msg) from err
        with Client(scheduler) as client:
            # the cluster's threads; none yet (an adaptive cluster): a task per call
            threads = sum(client.nthreads().values()) or 1 << 30
            yield partial(_run_graph, client.get, threads)
        return
    if scheduler == "threads":
        with ThreadPoolExecutor(num_workers) as pool:

            def get(graph, keys):
                return dask.local.get_async(pool.submit, len(graph), graph, keys)

            yield partial(_run_from_shared_queue, get, num_workers)
        return
    if scheduler == "processes":
        # one pool for the whole run: dask.multiprocessing.get would start (spawn) new worker
        # processes, each importing numpy, numba and jetimage, at every call, that is per batch
        context = dask.multiprocessing.get_context()
        with ProcessPoolExecutor(num_workers, mp_context=context) as processes:
            get = partial(dask.multiprocessing.get, pool=processes)
            yield partial(_run_graph, get, num_workers)
        return
    yield partial(_run_from_shared_queue, dask.get, 1)


def _run_from_shared_queue(
    get: Callable, workers: int, function: Callable, arguments: Iterable[tuple]
) -> list:
    """``workers`` Dask tasks of one process, each calling ``function`` on the next arguments
    not yet taken until none is left; the first error stops them all and reaches the caller."""
    arguments = list(arguments)
    if not arguments:
        return []
    results = [None] * len(arguments)
    calls = iter(range(len(arguments)))
    lock, failed = threading.Lock(), threading.Event()

    def work() -> None:
        while not failed.is_set():
            with lock:
                i = next(calls, None)
            if i is None:
                return
            try:
                results[i] = function(*arguments[i])
            except BaseException:
                failed.set()
                raise

    graph = {("worker", i): (work,) for i in range(min(len(arguments), max(workers, 1)))}
    get(graph, list(graph))
    return results


def _run_graph(get: Callable, workers: int, function: Callable, arguments: Iterable[tuple]) -> list:
    arguments = list(arguments)
    if not arguments:
        return []
    n_tasks = min(len(arguments), TASKS_PER_WORKER * max(workers, 1))
    shares = [
        arguments[i * len(arguments) // n_tasks : (i + 1) * len(arguments) // n_tasks]
        for i in range(n_tasks)
    ]
    # each task is a call without arguments of a partial, which Dask neither traverses nor
    # mistakes for keys or nested tasks
    graph = {("task", i): (partial(_call_each, function, share),) for i, share in enumerate(shares)}
    return [result for results in get(graph, list(graph)) for result in results]


def _call_each(function: Callable, arguments: list[tuple]) -> list:
    return [function(*args) for args in arguments]

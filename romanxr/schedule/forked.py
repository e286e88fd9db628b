"""Run independent pieces of one task in forked worker processes (copy-on-write inputs).

Some whole-image work is a long Python loop over independent items (photutils' PSF fit of
one source group after another) that holds the GIL: threads do not speed it up. Forked
processes do, and they see the parent's arrays without a copy or a pickle: the function and
its items are left in this module before the fork, and only item indices go to the workers
and small results come back.

:func:`worker_count` is romanxr's number of workers (dask's ``num_workers`` setting, else the
CPU count), as for the default chunking. :func:`fork_workers` is how many processes a task
may fork *now*: 1 (run in the calling thread) unless dask's local threaded scheduler is the
one in use (the default; not ``synchronous``, ``processes`` or a ``dask.distributed``
client, whose workers are daemonic processes that may not fork children and whose
resources the cluster manages), the platform forks, and the calling process is not itself
a daemonic worker.

:func:`forked_map` starts the workers and gives a handle: the caller can do other work
while they run, then take the results in order. The forked workers of all the maps open at
once in this process (one per detector's catalog in a batch, say, each in a thread of
dask's pool) share one budget of :func:`worker_count` processes: a map that finds fewer
than two free runs its items in the calling thread, so a batch does not start a set of
workers per detector on the same cores. Leaving the ``with`` block ends every
worker, also on an error or a KeyboardInterrupt (the workers ignore SIGINT; the parent
terminates and joins them).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["ForkedMap", "fork_workers", "forked_map", "worker_count"]

#: what the forked workers run, by token: (function, items); set before the fork
_JOBS: dict[int, tuple[Callable[[Any], Any], Sequence[Any]]] = {}
_TOKENS = itertools.count()
#: forked workers alive now, over every open forked_map of this process
_BUSY = 0
_BUDGET_LOCK = threading.Lock()


def _take_workers(wanted: int) -> int:
    """Reserve up to ``wanted`` of the :func:`worker_count` budget: the number granted,
    or 0 (none reserved) when fewer than two are free."""
    global _BUSY
    with _BUDGET_LOCK:
        granted = min(wanted, worker_count() - _BUSY)
        if granted <= 1:
            return 0
        _BUSY += granted
        return granted


def _give_back(n: int) -> None:
    global _BUSY
    with _BUDGET_LOCK:
        _BUSY -= n


def worker_count() -> int:
    """romanxr's number of workers: dask's ``num_workers`` setting, else the CPU count."""
    try:
        import dask

        workers = dask.config.get("num_workers", None)
    except Exception:
        workers = None
    return max(1, int(workers or os.cpu_count() or 1))


def fork_workers() -> int:
    """Processes a task may fork now (1: run serially in the calling thread).

    :func:`worker_count` when dask's local threaded scheduler is in use, the platform has
    the ``fork`` start method and this process is not a daemonic worker; else 1.
    """
    from romanxr.schedule.regions import local_scheduler

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if multiprocessing.current_process().daemon or not local_scheduler():
        return 1
    return worker_count()


#: seconds a terminated worker has to end before it is killed
TERMINATE_GRACE = 2.0


def _work(token: int, counter: Any, conn: Any) -> None:
    """A forked worker: take the next item index until none is left, send all results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and ends us
    for name in ("SIGTERM", "SIGHUP"):  # not the parent's handlers (scratch cleanup...)
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    func, items = _JOBS[token]
    done: list[tuple[int, Any]] = []
    try:
        while True:
            with counter.get_lock():
                index = counter.value
                counter.value += 1
            if index >= len(items):
                break
            done.append((index, func(items[index])))
        conn.send(("ok", done))
    except BaseException as exc:  # sent to the parent, which raises it
        conn.send(("error", _picklable(exc)))
    finally:
        conn.close()


def _picklable(exc: BaseException) -> BaseException:
    import pickle
    import traceback

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"a forked worker failed:\n{text}")


class ForkedMap:
    """Results of :func:`forked_map`: :meth:`result` waits for them, in the items' order."""

    def __init__(self, n_items: int, conns: list[Any], procs: list[Any]) -> None:
        self._n = n_items
        self._conns = conns
        self._procs = procs
        self._values: list[Any] | None = None

    @classmethod
    def done(cls, values: list[Any]) -> ForkedMap:
        out = cls(len(values), [], [])
        out._values = values
        return out

    def result(self) -> list[Any]:
        """The function's results, one per item, in order (re-raises a worker's error)."""
        from multiprocessing.connection import wait

        if self._values is not None:
            return self._values
        found: dict[int, Any] = {}
        waiting = list(self._conns)
        while waiting:
            for conn in wait(waiting):
                waiting.remove(conn)
                try:
                    status, payload = conn.recv()
                except EOFError:
                    codes = [p.exitcode for p in self._procs]
                    raise RuntimeError(
                        f"a forked worker ended without its results (exit codes {codes})"
                    ) from None
                if status == "error":
                    raise payload
                found.update(payload)
        if len(found) != self._n:  # pragma: no cover - every index is taken once
            raise RuntimeError(f"forked workers returned {len(found)} of {self._n} results")
        self._values = [found[i] for i in range(self._n)]
        return self._values


@contextlib.contextmanager
def forked_map(
    func: Callable[[Any], Any], items: Sequence[Any], workers: int
) -> Iterator[ForkedMap]:
    """Start ``func(item)`` for every item in up to ``workers`` forked processes.

    With ``workers <= 1``, fewer than two items, or fewer than two workers free in this
    process's budget (:func:`worker_count` forked workers over all the maps open at once),
    the calls run here, at once, in order. Otherwise the workers (forked now: they see the
    parent's memory as it is) take the items one at a time, in order, and send their
    results when no item is left; the block's body runs meanwhile, and ``handle.result()``
    waits for them. On leaving the block every worker is terminated (if still running) and
    joined.

    Parameters
    ----------
    func : callable
        Called with one item; returns something picklable (sent back to the parent).
    items : sequence
        The items (not pickled: the workers read them from the forked memory).
    workers : int
        Processes to fork at most (see :func:`fork_workers`).
    """
    n = _take_workers(min(int(workers), len(items)))
    if n == 0:
        yield ForkedMap.done([func(item) for item in items])
        return
    try:
        with _forked(func, items, n) as pending:
            yield pending
    finally:
        _give_back(n)


@contextlib.contextmanager
def _forked(func: Callable[[Any], Any], items: Sequence[Any], n: int) -> Iterator[ForkedMap]:
    """:func:`forked_map` with ``n`` workers granted: fork them, end and join them after."""
    context = multiprocessing.get_context("fork")
    token = next(_TOKENS)
    _JOBS[token] = (func, items)
    counter = context.Value("l", 0)
    procs: list[Any] = []
    conns: list[Any] = []
    try:
        for _ in range(n):
            reader, writer = context.Pipe(duplex=False)
            proc = context.Process(target=_work, args=(token, counter, writer), daemon=True)
            conns.append(reader)
            procs.append(proc)
            proc.start()
            writer.close()
        yield ForkedMap(len(items), conns, procs)
    finally:
        _JOBS.pop(token, None)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            # a worker terminated before it reset its signal handlers runs the parent's
            # SIGTERM handler, which need not end it: killed after a grace period instead
            proc.join(TERMINATE_GRACE)
            if proc.is_alive():
                proc.kill()
                proc.join()
            proc.close()
        for conn in conns:
            conn.close()

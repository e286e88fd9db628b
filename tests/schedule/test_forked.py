"""forked_map(): results in order from forked workers, errors raised in the parent, no
process left behind; fork_workers() follows the dask scheduler and ``num_workers``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import dask
import numpy as np
import pytest

from romanxr.schedule import fork_workers, forked_map, worker_count


def _square_and_pid(item):
    return item * item, os.getpid()


def _fail_on_three(item):
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


def _sleep(item):
    time.sleep(30)
    return item


def _no_children_left():
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def test_results_come_back_in_order_from_other_processes():
    big = np.arange(1_000_000)  # read by the workers from the forked memory, not pickled
    items = list(range(9))
    with forked_map(lambda i: (_square_and_pid(i), int(big[i])), items, 2) as pending:
        results = pending.result()
    assert [r[0][0] for r in results] == [i * i for i in items]
    assert [r[1] for r in results] == items
    pids = {r[0][1] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert _no_children_left()


def test_one_worker_or_one_item_runs_here():
    with forked_map(_square_and_pid, [1, 2, 3], 1) as pending:
        assert [r for r, _ in pending.result()] == [1, 4, 9]
        assert {pid for _, pid in pending.result()} == {os.getpid()}
    with forked_map(_square_and_pid, [5], 4) as pending:
        assert pending.result() == [(25, os.getpid())]


def test_a_worker_error_is_raised_in_the_parent_and_the_workers_end():
    with pytest.raises(ValueError, match="item 3 is bad"):
        with forked_map(_fail_on_three, list(range(6)), 2) as pending:
            pending.result()
    assert _no_children_left()


def test_an_error_in_the_parent_ends_busy_workers_at_once():
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with forked_map(_sleep, [1, 2], 2):
            raise KeyboardInterrupt
    assert time.monotonic() - start < 10  # terminated, not waited for (30 s each)
    assert _no_children_left()


def test_a_killed_worker_is_an_error_not_a_hang():
    def die(item):
        os._exit(3)

    with pytest.raises(RuntimeError, match="without its results"):
        with forked_map(die, [1, 2], 2) as pending:
            pending.result()
    assert _no_children_left()


def test_fork_workers_follows_the_scheduler_and_num_workers():
    with dask.config.set(scheduler="threads", num_workers=3):
        assert worker_count() == 3
        assert fork_workers() == 3
    with dask.config.set(scheduler="threads", num_workers=1):
        assert fork_workers() == 1
    with dask.config.set(scheduler="synchronous", num_workers=3):
        assert fork_workers() == 1  # the user asked for one thread
    with dask.config.set(scheduler="processes", num_workers=3):
        assert fork_workers() == 1  # daemonic pool workers cannot fork


def test_fork_workers_is_one_in_a_daemonic_process():
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    proc = context.Process(target=lambda: queue.put(fork_workers()), daemon=True)
    proc.start()
    proc.join(30)
    assert queue.get() == 1


def test_a_worker_that_ignores_sigterm_is_killed(monkeypatch):
    # A worker terminated before it has reset its signal handlers runs the parent's SIGTERM
    # handler, which need not end it (seen once in the suite: the block waited the 30 s).
    import romanxr.schedule.forked as forked

    def stubborn(token, counter, conn):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)

    monkeypatch.setattr(forked, "_work", stubborn)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with forked_map(_sleep, [1, 2], 2):
            time.sleep(0.5)  # the workers are running and ignore SIGTERM
            raise KeyboardInterrupt
    assert time.monotonic() - start < 10
    assert _no_children_left()


def test_maps_open_at_once_share_one_budget_of_workers():
    """A second map while the first holds the budget runs in the calling thread (a batch of
    catalogs does not fork a set of workers per detector); the budget comes back after."""
    with dask.config.set(num_workers=2):
        with forked_map(_square_and_pid, list(range(6)), 2) as first:
            with forked_map(_square_and_pid, list(range(6)), 2) as second:
                assert {pid for _, pid in second.result()} == {os.getpid()}
            assert os.getpid() not in {pid for _, pid in first.result()}
        with forked_map(_square_and_pid, list(range(6)), 2) as third:
            assert os.getpid() not in {pid for _, pid in third.result()}
        with dask.config.set(num_workers=3):
            with forked_map(_square_and_pid, list(range(6)), 2) as first:
                # one left of three: one worker would not run beside the parent any faster
                with forked_map(_square_and_pid, list(range(6)), 2) as second:
                    assert {pid for _, pid in second.result()} == {os.getpid()}
                assert len({pid for _, pid in first.result()}) >= 1
    assert _no_children_left()

"""Store lazy arrays region by region, so that memory stays bounded on one machine.

``dask.array.store`` hands the whole graph to the scheduler at once; :func:`store_by_region`
cuts the output chunks into regions (bands of rows, one group such as a file after another)
and computes them one after the other with the threaded scheduler (why: see
:mod:`romanxr.schedule`). Results that later regions of the same group need too (a
whole-frame stage's spectra and corrections, small coordinate arrays) are kept from the
region that made them until the last region that uses them, so nothing is computed twice
within a group; groups do not hold results for each other. Within a region the usual thread
pool runs.

With a ``dask.distributed`` client the writers use the cluster instead (its scheduler
queues root tasks and respects priorities), so this module is for the local schedulers.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from romanxr.schedule.allocator import release_free_memory

__all__ = [
    "AT_END",
    "REGION_ROWS",
    "local_scheduler",
    "local_threads",
    "optimized_graph",
    "region_axis",
    "row_axis",
    "store_by_region",
]

#: Rows of the output computed per region (a multiple of the usual 128-row chunks). Two
#: bands of 128 rows: one per core of a 2-core machine; 512 rows held ~0.1 GiB more at the
#: peak of a full-frame calibration (issue 19: 0.86 -> 0.76 GiB) for the same CPU time.
REGION_ROWS = 256

#: ``row_axes`` entry of a source without a row axis that belongs to the last region of its
#: group (e.g. the bottom reference rows of a frame), not the first.
AT_END = "end"


def local_scheduler() -> bool:
    """True when ``dask.compute`` would run on the local threaded scheduler (the default)."""
    import dask
    from dask.base import get_scheduler

    try:
        scheduler = get_scheduler()
    except Exception:
        return False
    if scheduler is None:
        return True
    import dask.threaded

    configured = dask.config.get("scheduler", None)
    # local_threads() names the threaded scheduler by its function
    local = (None, "threads", "threading", dask.threaded.get)
    return scheduler is dask.threaded.get and configured in local


@contextlib.contextmanager
def local_threads() -> Iterator[None]:
    """Name the threaded scheduler for the block, when nothing else was chosen.

    With no scheduler configured, every ``compute`` asks dask for one, and dask imports
    ``distributed`` to look for a client (~0.1 s of CPU in a process that never uses it).
    When ``distributed`` was never imported no client can exist, so naming
    ``dask.threaded.get`` (dask's default for arrays) changes nothing but that import. A
    configured scheduler, or a process where ``distributed`` is loaded, is left as it is.

    ``rechunk`` asks the same question while the graph is built (``p2p`` needs a client): with
    no method configured it is named ``tasks``, what dask picks without a client.
    """
    import dask

    if dask.config.get("scheduler", None) is not None or "distributed" in sys.modules:
        yield
        return
    import dask.threaded

    settings: dict[str, Any] = {"scheduler": dask.threaded.get}
    if dask.config.get("array.rechunk.method", None) is None:
        settings["array.rechunk.method"] = "tasks"
    with dask.config.set(settings):
        yield


def _put(target: Any, where: tuple[slice, ...], value: Any) -> None:
    target[where] = value


def _slices(chunks: tuple[tuple[int, ...], ...], index: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for sizes, i in zip(chunks, index, strict=True):
        start = int(sum(sizes[:i]))
        out.append(slice(start, start + int(sizes[i])))
    return tuple(out)


def optimized_graph(sources: Sequence[Any]) -> dict:
    """The tasks of dask arrays ``sources``, optimized together as one graph.

    The sources share most of their graph (one exposure's steps). Optimized one by one (as
    an unoptimized expression's ``__dask_graph__`` or ``Array.to_delayed`` do), each fuses
    the shared tasks into its own chunks under its own names, and the shared work runs once
    per source (the ramp fit ran four times in the full pipeline). One optimization over the
    merged graph keeps each task once, and optimizes the shared layers once.
    """
    from dask.array.optimization import optimize
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    merged = HighLevelGraph.merge(*[s.__dask_graph__() for s in sources])
    keys = [k for s in sources for k in flatten(s.__dask_keys__())]
    # prelude keys stay as they are (not fused away), for the writers to find them
    keys += [k for name, layer in merged.layers.items() if _is_prelude(name) for k in layer]
    return dict(optimize(merged, keys))


def store_by_region(
    sources: Sequence[Any],
    targets: Sequence[Any],
    row_axes: Sequence[int | str | None],
    groups: Sequence[int] | None = None,
    region_rows: int = REGION_ROWS,
) -> None:
    """``target[...] = source`` for every pair, computed one region of rows at a time.

    Parameters
    ----------
    sources : sequence of dask arrays
    targets : sequence of objects supporting ``target[slices] = block``
    row_axes : sequence of int, None or :data:`AT_END`
        For each source, the axis that runs along detector rows (None: the whole source
        belongs to the first region of its group; :data:`AT_END`: to the last). Placing a
        source where its rows lie keeps the first region from computing, and holding for
        the later ones, the work that those rows share with them.
    groups : sequence of int, optional
        For each source, the group it belongs to (e.g. the detector); groups are computed
        one after the other. Default: all in one group.
    region_rows : int
        Rows per region.
    """
    if not sources:
        return
    groups = list(groups) if groups is not None else [0] * len(sources)
    for n, group in enumerate(sorted(set(groups))):
        if n:
            # the previous group's chunks are all freed: hand their pages back, or the holes
            # they leave in the heap add up over the groups (allocator.release_free_memory)
            release_free_memory()
        members = [i for i, g in enumerate(groups) if g == group]
        _store_group(
            [sources[i] for i in members],
            [targets[i] for i in members],
            [row_axes[i] for i in members],
            region_rows,
        )


def _store_group(
    sources: Sequence[Any],
    targets: Sequence[Any],
    row_axes: Sequence[int | str | None],
    region_rows: int,
) -> None:
    """:func:`store_by_region` for the sources of one group.

    The graph is optimized and planned per group, so the planning state (task dicts,
    dependencies, per-region key sets: ~5 MB per full-frame file) exists for one file at a
    time. Anything a group shares with others (an all-zero array with the same key, a
    reference chunk) is made again in each, rather than held through every group, so memory
    does not grow with the number of groups.
    """
    from dask.core import get_dependencies

    graph = optimized_graph(sources)
    region_of = _add_store_tasks(graph, sources, targets, row_axes, region_rows)
    regions = sorted(set(region_of.values()))
    outputs = {r: [k for k, v in region_of.items() if v == r] for r in regions}
    # the prelude keys (graph.prelude: whole-frame fits from a twin) make a region of their
    # own before the first band, so that their work does not add to the first region's
    first = _prelude_regions([k for k in graph if _is_prelude(k)], region_rows)
    ordered = first + [outputs[r] for r in regions]
    deps = {k: get_dependencies(graph, k) for k in graph}
    plan, last = _plan_regions(ordered, deps)
    from romanxr.schedule.progress import expect

    expect(sum(len(todo) for todo in plan))  # the progress bar's total covers every region
    _run_regions(graph, ordered, plan, last, trim_after=len(first) - 1 if first else None)


def _prelude_regions(keys: list, region_rows: int) -> list[list]:
    """The prelude keys in regions: those in row order band by band, then the others."""
    from romanxr.schedule.graph import prelude_rows

    by_rows: dict[int, list] = {}
    rest = []
    for key in keys:
        row = prelude_rows(key)
        if row is None:
            rest.append(key)
        else:
            by_rows.setdefault(row // max(1, region_rows), []).append(key)
    return [by_rows[r] for r in sorted(by_rows)] + ([rest] if rest else [])


def _is_prelude(key: Any) -> bool:
    from romanxr.schedule.graph import PRELUDE

    name = key[0] if isinstance(key, tuple) and key else key
    return isinstance(name, str) and name.startswith(PRELUDE)


def _add_store_tasks(
    graph: dict,
    sources: Sequence[Any],
    targets: Sequence[Any],
    row_axes: Sequence[int | str | None],
    region_rows: int,
) -> dict:
    """Add one ``target[where] = chunk`` task per chunk to ``graph``; each task's region.

    A source without a row axis goes to the first region (None) or the last (:data:`AT_END`).
    """
    import itertools

    from dask.core import flatten

    region_of: dict = {}
    at_end = []
    for i, (source, target, axis) in enumerate(zip(sources, targets, row_axes, strict=True)):
        keys = list(flatten(source.__dask_keys__()))
        for index, key in zip(itertools.product(*map(range, source.numblocks)), keys, strict=True):
            where = _slices(source.chunks, index)
            store_key = ("romanxr-store", i, *index)
            graph[store_key] = (_put, target, where, key)
            if axis == AT_END:
                at_end.append(store_key)
                region_of[store_key] = None
            else:
                region_of[store_key] = (
                    0 if axis is None else where[axis].start // max(1, region_rows)
                )
    last_region = max((r for r in region_of.values() if r is not None), default=0)
    for key in at_end:
        region_of[key] = last_region
    return region_of


def _ancestors(deps: dict, starts: list, stop: set) -> set:
    """Keys that ``starts`` need, not looking past the keys in ``stop``."""
    seen: set = set()
    stack = list(starts)
    while stack:
        key = stack.pop()
        if key in seen or key in stop:
            continue
        seen.add(key)
        stack.extend(deps[key])
    return seen


def _plan_regions(outputs: list[list], deps: dict) -> tuple[list[set], dict]:
    """Dry run over the regions (in order, each given by its output keys).

    Returns what each region computes if everything made before it were still there, and,
    for every ``(key, region that computes it)``, the last region with a task that uses that
    result directly. Only keys used by a later region are kept, and only until then.
    """
    done: set = set()
    plan = []
    made_in: dict = {}  # key -> region that (last) computes it
    last: dict = {}  # (key, region that computes it) -> last region using that result
    for n, keys in enumerate(outputs):
        todo = _ancestors(deps, keys, done)
        for key in todo:
            for dep in deps[key]:
                if dep in done:
                    last[(dep, made_in[dep])] = n
        for key in todo:
            made_in[key] = n
        plan.append(todo)
        done |= todo
    return plan, last


def _run_regions(
    graph: dict, outputs: list[list], plan: list[set], last: dict, trim_after: int | None = None
) -> None:
    """Compute the regions one after the other, handing kept results on as data; after
    region ``trim_after`` (a prelude) hand the freed heap back to the system."""
    import dask.threaded
    from dask._task_spec import DataNode

    kept: dict = {}
    until: dict = {}
    for n, todo in enumerate(plan):
        sub = {k: graph[k] for k in todo}
        # results kept from earlier regions enter as data (dask's ``cache=`` argument tests
        # their truth value, which arrays do not have)
        for key, value in kept.items():
            if key not in sub:
                sub[key] = DataNode(key, value)
        share = [k for k in todo if last.get((k, n), -1) > n]
        values = dask.threaded.get(sub, outputs[n] + share)
        for key, value in zip(share, values[len(outputs[n]) :], strict=True):
            kept[key] = value
            until[key] = last[(key, n)]
        for key in [k for k in kept if until[k] <= n]:
            del kept[key], until[key]
        del values, sub
        plan[n] = set()  # this region's key set is no longer needed
        if n == trim_after:
            release_free_memory()


def row_axis(dims: Sequence[str]) -> int | None:
    """The axis of ``dims`` that runs along detector rows (``y`` or ``frame_y``), if any."""
    for name in ("y", "frame_y"):
        if name in dims:
            return list(dims).index(name)
    return None


def region_axis(name: str, dims: Sequence[str]) -> int | str | None:
    """:func:`store_by_region`'s ``row_axes`` entry for the variable ``name`` with ``dims``.

    Its row axis; without one, :data:`AT_END` for the frame's last rows (``*_bottom``: the
    bottom reference rows) and None (the first region) for everything else.
    """
    axis = row_axis(dims)
    if axis is None and name.endswith("_bottom"):
        return AT_END
    return axis

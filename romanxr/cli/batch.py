"""``romanxr calibrate`` on many files: a list, a quoted glob, an association, a folder.

Every member is opened and planned first (:func:`romanxr.open_exposures`, ``dt.roman
.calibrate``): by default one error lists every member that cannot be calibrated and nothing is
computed; with ``--continue-on-error`` those are left out, the others are written, and a final
summary lists the failures (exit code 3). The options of a one-file run (``--steps...``,
``--config``, ``--crds-context``, ``--start-at``/``--stop-after``...) apply to every member.

Where it runs: the local threaded scheduler (one member after the other, each on every core),
an existing dask.distributed cluster (``--scheduler tcp://host:8786`` or
``DASK_SCHEDULER_ADDRESS``), or a LocalCluster of ``--workers N`` processes; on a cluster the
members are submitted side by side. One progress line counts the files (done / total, ETA) on
a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from romanxr.cli.options import EXIT_CODES, run_arguments
from romanxr.errors import ConfigError

__all__ = ["BatchProgress", "add_arguments", "is_batch", "run"]

#: exit code when some members failed with --continue-on-error
PARTIAL_FAILURE = EXIT_CODES["input"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--continue-on-error``, ``--scheduler`` and ``--workers`` (batch runs)."""
    p.add_argument(
        "--continue-on-error",
        "--continue_on_error",
        dest="continue_on_error",
        action="store_true",
        help="with several inputs: calibrate the members that can be, report the others at "
        "the end and exit with 3 (default: stop before computing, listing every problem)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of a running dask.distributed scheduler (tcp://host:8786); default "
        "$DASK_SCHEDULER_ADDRESS, else this machine's threads",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="start a dask.distributed LocalCluster of N worker processes for the run",
    )


def is_batch(inputs: list[str]) -> bool:
    """Whether the inputs are a batch: several, a pattern, an association or a folder."""
    from romanxr.exposures.association import is_association

    if len(inputs) != 1:
        return len(inputs) > 1
    only = inputs[0]
    pattern = any(c in only for c in "*?[") and not os.path.exists(only)
    return pattern or is_association(only) or os.path.isdir(only)


class BatchProgress:
    """One line on ``out``: ``calibrate: 3/18 files, 1 failed, 0:42 elapsed, ETA 3:10``.

    Quiet (prints nothing) when ``enabled`` is False.
    """

    def __init__(self, total: int, enabled: bool, out: TextIO | None = None) -> None:
        self.total, self.enabled = total, enabled
        self.out = out or sys.stderr
        self.done = self.failed = 0
        self.start = time.monotonic()

    def step(self, ok: bool) -> None:
        """Count one file finished (``ok``) or failed, and redraw."""
        self.done += 1
        self.failed += 0 if ok else 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        failed = f", {self.failed} failed" if self.failed else ""
        line = f"calibrate: {self.done}/{self.total} files{failed}, {_clock(elapsed)} elapsed"
        line += f", ETA {_clock(eta)}" if self.done < self.total else ""
        end = "\n" if self.done == self.total else ""
        print(f"\r{line}", end=end, file=self.out, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


@contextlib.contextmanager
def scheduler(address: str | None, workers: int | None) -> Iterator[Any]:
    """A dask.distributed Client for the run (None: the local threaded scheduler)."""
    if address and workers:
        raise ConfigError(
            f"--scheduler {address} and --workers {workers} both say where to run: give one "
            "(--workers starts a local cluster, --scheduler uses a running one)"
        )
    if not workers:  # an explicit --workers wins over $DASK_SCHEDULER_ADDRESS
        address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address is None and not workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(
            "--scheduler/--workers need dask.distributed: pip install distributed"
        ) from exc
    if address is not None:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            # a free port for the dashboard: another cluster may hold the usual 8787
            n_workers=int(workers or 1),
            threads_per_worker=1,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        # the workers are processes of our own: give them the allocator settings this process
        # has (romanxr.schedule.allocator: without them every chunk-sized array is mapped and
        # zero-filled anew, system time that made --workers runs slower than threads)
        from romanxr.schedule.allocator import tune_allocator

        client.run(tune_allocator)
        yield client


def _options(args: argparse.Namespace) -> None:
    if args.output:
        raise ConfigError(
            f"-o/--output {args.output} names one file, but there are several inputs; use "
            "--output-dir for the folder of their outputs (named by the Roman rule)"
        )


def run(
    args: argparse.Namespace,
    step_options: dict[str, dict[str, Any]],
    inputs: list[str],
    config: str | None,
) -> int:
    """Calibrate every member of ``inputs`` and write ``<member>_cal.asdf`` for each."""
    from romanxr.exposures import open_exposures
    from romanxr.pipeline import write_products
    from romanxr.registry import STEPS, get_step

    _options(args)
    mode = "continue" if args.continue_on_error else "raise"
    tree = open_exposures(inputs, on_error=mode)
    last = get_step(args.stop_after) if args.stop_after else STEPS[-1]
    suffix = getattr(args, "suffix", None) or ("cal" if last is STEPS[-1] else last.suffix)
    # outputs go to the current directory (associations included), as strun writes them
    folder = args.output_dir if args.output_dir is not None else str(Path.cwd())
    Path(folder).mkdir(parents=True, exist_ok=True)
    targets = tree.roman.output_paths(folder, suffix)
    if getattr(args, "output_format", None) == "zarr":
        targets = {k: v.with_suffix(".zarr") for k, v in targets.items()}
    if args.dry_run:
        for node, target in targets.items():
            print(f"{node}: writes {target} (dry run: nothing computed or written)")
        return EXIT_CODES["ok"]
    if not args.overwrite:
        existing = [str(t) for t in targets.values() if t.exists()]
        if existing:
            from romanxr.errors import OutputError

            raise OutputError(f"outputs exist and --no-overwrite keeps them: {existing}")
    with scheduler(args.scheduler, args.workers) as client:
        cal = tree.roman.calibrate(
            on_error=mode, check_saturated=True, **run_arguments(args, step_options, config)
        )
        datasets = {n.path: n.to_dataset(inherit=False) for n in cal.leaves if n.has_data}
        enabled = sys.stderr.isatty() if args.progress is None else args.progress
        progress = BatchProgress(len(datasets) + len(cal.roman.failures), enabled)
        for _ in cal.roman.failures:
            progress.step(False)

        def one(node: str) -> Path:  # with _cat.parquet/_segm.asdf when source_catalog ran
            return write_products(datasets[node], targets[node], overwrite=args.overwrite)

        def member(node: str) -> str:
            return str(datasets[node].attrs.get("source_file", node))

        written, failed = _write_all(list(datasets), one, progress, client, mode, member)
    for path in written:
        print(path)
    failed = {**cal.roman.failures, **failed}
    if failed:
        print(f"romanxr: {len(written)} written, {len(failed)} failed:", file=sys.stderr)
        for member, why in failed.items():
            print(f"  {member}: {why}", file=sys.stderr)
        return PARTIAL_FAILURE
    return EXIT_CODES["ok"]


def _write_all(
    nodes: list[str],
    write_one: Callable[[str], Path],
    progress: BatchProgress,
    client: Any,
    mode: str,
    node_member: Callable[[str], str],
) -> tuple[list[Path], dict[str, str]]:
    """Write every node (side by side on a cluster), counting them on ``progress``."""
    from romanxr.schedule.allocator import release_free_memory

    written: list[Path] = []
    failed: dict[str, str] = {}

    def attempt(node: str) -> None:
        try:
            written.append(write_one(node))
        except Exception as exc:  # one member's failure must not stop the others
            if mode == "raise":
                raise
            member = node_member(node)
            failed[member] = f"{type(exc).__name__}: {exc}"
            progress.step(False)
            return
        progress.step(True)

    if client is None:
        # Opening and planning every member leaves free holes in the heap, and so does each
        # member's write: hand them back before the first member and after each one, so the
        # resident memory of a long batch stays that of one member (measured: ~870 -> ~400
        # MiB between full-frame members; RESULTS.md, issue 16)
        release_free_memory()
        for node in nodes:
            attempt(node)
            release_free_memory()
    else:
        lanes = max(1, len(client.scheduler_info().get("workers", {})))
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            list(pool.map(attempt, nodes))
    return sorted(written), failed

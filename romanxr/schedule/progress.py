"""One labelled progress bar per calibration, on a terminal, in a notebook or in a log.

:class:`Progress` is a dask callback (it counts the tasks every local ``dask.compute`` inside
its ``with`` block finishes) that also hears, through two module functions, what the rest of
romanxr knows in advance:

* :func:`note_step`: the pipeline announces each step as it adds it to the graph;
* :func:`expect`: :func:`~romanxr.schedule.store_by_region` announces how many tasks all its
  regions will run before it computes the first, so that the percentage and the ETA cover the
  whole write rather than one region at a time. A computation nobody announced (the
  pipeline's saturation check, a plain ``.compute()``) is a phase of the bar of its own.

Interactive output gets one line redrawn in place: with ``\\r`` on a terminal, as one updated
display in a Jupyter notebook (so the saved notebook, and the docs, keep only its last state)::

    calibrate r0000101001001001001_0001_wfi01_uncal.asdf: [######----]  62% 0:07, ETA 0:04

Anything else (a batch job's log, a pipe) gets plain lines and no ``\\r``: one per step, one at
each quarter of the computation and one at the end. With a ``dask.distributed`` client dask's
local callbacks do not fire; the bar then shows the steps and the end line only.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, TextIO

from dask.callbacks import Callback

__all__ = ["Progress", "expect", "note_step", "progress_for"]

#: The bars open now (innermost last): those the announcements go to.
_ACTIVE: list[Progress] = []

_WIDTH = 20


def note_step(name: str) -> None:
    """Tell the open progress bars that step ``name`` is being added to the graph."""
    for bar in _ACTIVE:
        bar.step(name)


def expect(tasks: int) -> None:
    """Tell the open progress bars that the next computations will run ``tasks`` tasks."""
    for bar in _ACTIVE:
        bar.expect(tasks)


def progress_for(
    enabled: bool | None, label: str, out: TextIO | None = None
) -> contextlib.AbstractContextManager:
    """The progress of one calibration as the command line's ``--progress`` options say it.

    Parameters
    ----------
    enabled : bool or None
        None: the bar redrawn in place on a terminal or in a notebook, plain lines (one per
        step) elsewhere; True: always redrawn in place; False: nothing.
    label : str
        The bar's label.
    out : text stream, optional
        Default ``sys.stderr``.
    """
    if enabled is False:
        return contextlib.nullcontext()
    return Progress(label, out, interactive=True if enabled else None)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _notebook(stream: Any) -> bool:
    """A Jupyter kernel's stream (it reports no TTY)."""
    return type(stream).__module__.startswith("ipykernel")


def _interactive(stream: Any) -> bool:
    """A terminal or a notebook."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return _notebook(stream)


class Progress(Callback):
    """A labelled progress bar over every local dask computation inside ``with Progress(...)``.

    Parameters
    ----------
    label : str
        What is being computed (``calibrate r..._uncal.asdf``); starts every line.
    out : text stream, optional
        Where to write (default ``sys.stderr``).
    interactive : bool, optional
        Redraw one line with ``\\r`` (True) or write plain lines (False). Default: True on a
        terminal or in a notebook.
    dt : float
        Least time in seconds between two redraws of the interactive line.

    Examples
    --------
    >>> with Progress("calibrate r..._uncal.asdf"):  # doctest: +SKIP
    ...     cal.roman.to_asdf("r..._cal.asdf")
    """

    def __init__(
        self,
        label: str,
        out: TextIO | None = None,
        *,
        interactive: bool | None = None,
        dt: float = 0.2,
    ) -> None:
        super().__init__()
        self.label = label
        self.out = out if out is not None else sys.stderr
        self.interactive = _interactive(self.out) if interactive is None else interactive
        self.dt = dt
        self._display: Any = None  # a notebook's display handle, made on the first draw
        self._in_notebook = self.interactive and _notebook(self.out)
        self.total = self.done = 0  # tasks seen and finished, over every computation
        self.steps: list[str] = []
        self._announced = 0  # announced tasks whose computation has not started
        self._new_phase(announced=False)
        self._drawn = 0.0
        self._width = 0
        self._start_time = time.monotonic()

    # ---- what the pipeline and the writers announce
    def step(self, name: str) -> None:
        """Count step ``name`` (added to the graph) and show it."""
        self.steps.append(name)
        if self.interactive:
            self._draw(f"step {len(self.steps)} {name}", force=True)
        else:
            self._line(f"step {len(self.steps)} {name}, {self._elapsed()} elapsed")

    def expect(self, tasks: int) -> None:
        """Count ``tasks`` tasks of computations to come: one phase of the bar covers them all
        (their own counts are then not added again)."""
        if self._announced == 0:  # no announced work pending: a new phase starts
            self._new_phase(announced=True)
        self._goal += int(tasks)
        self._announced += int(tasks)

    def _new_phase(self, *, announced: bool, goal: int = 0) -> None:
        self._goal, self._phase_done, self._quarter = goal, 0, 0
        self._phase_announced = announced
        self._phase_start = time.monotonic()

    # ---- dask's callbacks
    def _start(self, dsk: Any) -> None:
        n = len(dsk)
        covered = min(self._announced, n)
        self._announced -= covered
        self.total += n
        if covered:
            return  # its few extra tasks (dask's finalize, kept results) do not move the goal
        if self._phase_announced and self._phase_done < self._goal:
            self._goal += n  # inside announced work that has not finished
        else:
            self._new_phase(announced=False, goal=n)  # a computation nobody announced

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.done += 1
        self._phase_done = min(self._phase_done + 1, self._goal)
        if self.interactive:
            self._draw(self._bar())
        elif self._phase_announced:  # a log gets the quarters of the announced work only
            quarter = 4 * self._phase_done // max(self._goal, 1)
            if quarter > self._quarter and self._phase_done < self._goal:
                self._quarter = quarter
                self._line(f"{25 * quarter}% computed, {self._elapsed()} elapsed{self._eta()}")

    # ---- the context
    def __enter__(self) -> Progress:
        super().__enter__()
        _ACTIVE.append(self)
        self._start_time = time.monotonic()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        _ACTIVE.remove(self)
        super().__exit__(kind, value, traceback)
        if kind is not None:
            end = f"failed after {self._elapsed()}"
        else:
            self._phase_done = self._goal
            end = f"done in {self._elapsed()}" + (f" ({self.done} tasks)" if self.done else "")
        if self.interactive:
            bar = self._bar() + ", " if self._goal and kind is None else ""
            self._draw(bar + end, force=True)
            if not self._in_notebook:
                self._write("\n")
        else:
            self._line(end)

    # ---- drawing
    def _elapsed(self) -> str:
        return _clock(time.monotonic() - self._start_time)

    def _eta(self) -> str:
        """The time left of this phase, at the rate of its tasks so far."""
        left = self._goal - self._phase_done
        if not self._phase_done or left <= 0:
            return ""
        spent = time.monotonic() - self._phase_start
        return f", ETA {_clock(spent / self._phase_done * left)}"

    def _bar(self) -> str:
        fraction = self._phase_done / self._goal if self._goal else 0.0
        filled = round(_WIDTH * fraction)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        return f"[{bar}] {100 * fraction:3.0f}% {self._elapsed()}{self._eta()}"

    def _draw(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < self.dt and self._phase_done < self._goal:
            return
        self._drawn = now
        line = f"{self.label}: {text}"
        if self._in_notebook:
            self._show(line)
            return
        pad = " " * max(0, self._width - len(line))  # clear what a longer line left
        self._width = len(line)
        self._write(f"\r{line}{pad}")

    def _show(self, line: str) -> None:
        """The line as a notebook display, updated in place."""
        from IPython.display import Pretty, display

        if self._display is None:
            self._display = display(Pretty(line), display_id=True)
        else:
            self._display.update(Pretty(line))

    def _line(self, text: str) -> None:
        self._write(f"{self.label}: {text}\n")

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except ValueError:  # the stream was closed under us: progress is not worth an error
            pass

"""Calibration steps: one module per step, each a pure function ``step(ds, *, params) -> ds``.

:func:`skip_step` is what the pipeline records for a step it does not run.
"""

from __future__ import annotations

from romanxr.steps._common import skip_step

__all__ = ["skip_step"]

"""Calibration steps: one module per step, each a pure function ``step(ds, *, params) -> ds``."""

"""Fixtures shared by the exposure-set tests; each module makes its own ``batch``."""

from __future__ import annotations

import pytest

import romanxr


@pytest.fixture(autouse=True)
def crds(batch):
    """Every test of the module resolves references through its batch's local CRDS cache."""
    with batch.cache.activate():
        yield


@pytest.fixture(scope="module")
def solo(batch):
    """Each member calibrated on its own: {file name: computed cal Dataset}."""
    with batch.cache.activate():
        return {p.name: romanxr.calibrate(p).compute() for p in batch.members}

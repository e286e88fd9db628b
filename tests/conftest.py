"""Shared fixtures: factories that make small synthetic exposures on disk."""

from __future__ import annotations

import os

import pytest

# urllib3 probes for IPv6 support by opening a socket when it is first imported; conftest runs
# before pytest-socket disables sockets, so import it (and the packages that pull it in) here
# and no test triggers pytest-socket's "A test tried to use socket.socket" warning.
import urllib3  # noqa: F401  (isort: keep before the rest)

# the suite never touches a CRDS server
os.environ.setdefault("CRDS_SERVER_URL", "https://crds-offline.invalid")

try:  # property-based tests: a bounded run in CI, more with HYPOTHESIS_PROFILE=thorough
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.register_profile(
        "thorough",
        max_examples=500,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a test extra; tests/property skips without it
    pass


@pytest.fixture
def tmp_uncal(tmp_path):
    """Factory: write a small valid Level-1 file with roman_datamodels' own fake-data maker."""

    def make(shape=(6, 32, 32), read_pattern=None, frame_time=3.04, name="r_uncal.asdf"):
        import numpy as np
        import roman_datamodels.datamodels as dm

        model = dm.ScienceRawModel.create_fake_data(shape=shape)
        nres = shape[0]
        model.meta.exposure.read_pattern = read_pattern or [[i + 1] for i in range(nres)]
        model.meta.exposure.frame_time = frame_time
        model.meta.exposure.nresultants = nres
        rng = np.random.default_rng(1)
        model.data = rng.integers(1000, 2000, size=shape, dtype=np.uint16)
        path = tmp_path / name
        model.save(path)
        return path

    return make

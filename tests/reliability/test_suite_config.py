"""The suite's own guarantees: romanxr's warnings are errors, the network is off, and the
hypothesis profiles are registered."""

from __future__ import annotations

import os
import socket
import warnings

import pytest

from romanxr.errors import RomanxrWarning


def test_romanxr_warnings_are_errors():
    with pytest.raises(RomanxrWarning):
        warnings.warn("a romanxr warning", RomanxrWarning, stacklevel=1)


@pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")
def test_network_is_disabled():
    from pytest_socket import SocketBlockedError

    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_hypothesis_profiles():
    hypothesis = pytest.importorskip("hypothesis")
    ci = hypothesis.settings.get_profile("ci")
    assert ci.max_examples == 25 and ci.deadline is None
    assert hypothesis.settings.get_profile("thorough").max_examples > ci.max_examples
    expected = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert hypothesis.settings.default.max_examples == (
        hypothesis.settings.get_profile(expected).max_examples
    )

"""A reference file loaded twice in one process is read once while it is unchanged; each
caller gets a Dataset of its own, and a rewritten file is read again."""

from __future__ import annotations

import os

import numpy as np

from romanxr.refs import load
from romanxr.testing import make_detector, make_reference_set


def test_loaded_once_own_copies_and_reloaded_after_a_change(tmp_path, monkeypatch):
    refs = make_reference_set(tmp_path, make_detector((32, 32), seed=1), reftypes=("gain",))
    path = refs.paths["gain"]
    first = load.load_reference(path, "gain")

    reads = []
    real = load._load
    monkeypatch.setattr(load, "_load", lambda *a: reads.append(a) or real(*a))
    second = load.load_reference(path, "gain")
    assert reads == []  # unchanged file: not read again
    assert second.identical(first)
    second.attrs["meta"]["marker"] = 1
    assert "marker" not in first.attrs["meta"]  # each caller its own metadata
    assert "marker" not in load.load_reference(path, "gain").attrs["meta"]

    values = first["data"].values  # read now: a rewritten file refuses reads for old opens
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # rewritten
    third = load.load_reference(path, "gain")
    assert len(reads) == 1
    np.testing.assert_array_equal(third["data"].values, values)

"""A file's tree is validated against the Roman schemas once per process while it is unchanged
(a calibration opens its reference files every time), and again once it changes."""

from __future__ import annotations

import os

import asdf
import pytest

import romanxr
from romanxr.errors import FileFormatError
from romanxr.io import asdf_file


def test_unchanged_file_validated_once_changed_file_again(tmp_uncal, monkeypatch):
    path = tmp_uncal()
    romanxr.open_uncal(path)
    assert asdf_file.file_identity(str(path)) in asdf_file._VALIDATED

    calls = []
    original = asdf.AsdfFile._validate

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(asdf.AsdfFile, "_validate", counting)
    romanxr.open_uncal(path)
    assert calls == []  # unchanged: not validated again

    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"frame_time: 3.04", b"frame_time: 'xx'"))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later write
    with pytest.raises(FileFormatError, match=r"frame_time does not follow the Roman data model"):
        romanxr.open_uncal(path)
    assert calls

"""A real full disk (issue 18): a small tmpfs is mounted and filled by a write. Nothing of the
failed write is left, and the previous output at the target is intact (cal.asdf and Zarr).

Needs permission to mount (root, or a user namespace that allows it); skipped otherwise.
The simulated ENOSPC tests are in ``test_interrupted_writes.py``.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

import romanxr
from romanxr.errors import OutputError
from romanxr.io.asdf_writer import to_asdf
from romanxr.io.zarr_io import open_zarr, to_zarr
from tests.io.writer_fakes import image_dataset, make_cal_file

SIZE = "768k"  # the small output fits, the large one (about 2 MiB of arrays) does not


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    small = image_dataset(romanxr.open_cal(make_cal_file(folder / "small_cal.asdf", n=40)))
    large = image_dataset(romanxr.open_cal(make_cal_file(folder / "large_cal.asdf", n=300)))
    return small.load(), large.load()


def test_real_full_disk_asdf(small_disk, datasets):
    small, large = datasets
    target = small_disk / "o_cal.asdf"
    to_asdf(small, target, compression=None)
    before = target.read_bytes()
    with pytest.raises(OutputError, match="No space left on device") as e:
        to_asdf(large, target, overwrite=True, compression=None)
    assert str(target) in str(e.value)
    assert os.listdir(small_disk) == ["o_cal.asdf"]
    assert target.read_bytes() == before


def test_real_full_disk_zarr(small_disk, datasets):
    small, large = datasets
    target = small_disk / "o_cal.zarr"
    to_zarr(small, target, compressor=None)
    with pytest.raises(OutputError, match="No space left on device"):
        to_zarr(large.chunk({"y": 32}), target, overwrite=True, compressor=None)
    assert os.listdir(small_disk) == ["o_cal.zarr"]
    np.testing.assert_array_equal(open_zarr(target)["data"].values, small["data"].values)

"""Small, self-consistent Roman files for the writer tests (made in tmp_path, never in git)."""

from __future__ import annotations

import contextlib

import dask
import numpy as np
import xarray as xr

from romanxr.dataset import CAL_STEP_KEYS

#: full-frame size of the fake detector (science area n - 8) and amp33 width
N = 24
NRES = 3
AMP33 = 8


def make_cal_file(path, *, nres: int = NRES, n: int = N, seed: int = 0):
    """Write a valid wfi_image whose arrays have consistent (small) shapes."""
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(seed)
    s = (n - 8, n - 8)
    model = dm.ImageModel.create_fake_data(shape=s)
    model.data = rng.normal(10, 3, s).astype(np.float32)
    model.dq = rng.integers(0, 2**20, s).astype(np.uint32)
    for name in ("err", "var_poisson", "var_rnoise", "chisq", "dumo"):
        model[name] = rng.random(s).astype(np.float16)
    model.amp33 = rng.integers(0, 60000, (nres, n, AMP33)).astype(np.uint16)
    for side in ("left", "right"):
        model[f"border_ref_pix_{side}"] = rng.random((nres, n, 4)).astype(np.float32)
        model[f"dq_border_ref_pix_{side}"] = rng.integers(0, 9, (n, 4)).astype(np.uint32)
    for side in ("top", "bottom"):
        model[f"border_ref_pix_{side}"] = rng.random((nres, 4, n)).astype(np.float32)
        model[f"dq_border_ref_pix_{side}"] = rng.integers(0, 9, (4, n)).astype(np.uint32)
    model.meta.exposure.read_pattern = [[1], [2, 3], [4, 5, 6]][:nres]
    model.meta.exposure.nresultants = nres
    model.meta.exposure.frame_time = 3.04
    model.meta.product_type = "l2"
    model.meta.cal_step = {key: "INCOMPLETE" for key in CAL_STEP_KEYS}
    model.meta.cal_step.update(dq_init="COMPLETE", ramp_fit="COMPLETE")
    model.save(path)
    return path


def make_uncal_file(path, *, nres: int = NRES, n: int = N, seed: int = 1):
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(seed)
    model = dm.ScienceRawModel.create_fake_data(shape=(nres, n, n))
    model.meta.exposure.read_pattern = [[1], [2, 3], [4, 5, 6]][:nres]
    model.meta.exposure.nresultants = nres
    model.meta.exposure.frame_time = 3.04
    model.data = rng.integers(1000, 2000, size=(nres, n, n), dtype=np.uint16)
    model.amp33 = rng.integers(1000, 2000, size=(nres, n, AMP33), dtype=np.uint16)
    model.save(path)
    return path


def image_dataset(cal: xr.Dataset, seed: int = 2) -> xr.Dataset:
    """An in-memory Level-2 Dataset as ramp_fit makes it: err/variances in float32."""
    rng = np.random.default_rng(seed)
    out = cal.copy()
    shape = out["data"].shape
    for name in ("err", "var_poisson", "var_rnoise", "chisq", "dumo"):
        values = rng.random(shape).astype(np.float32) * 100 + np.float32(1e-3)
        out[name] = (("y", "x"), values)
    return out


def ramp_dataset(uncal: xr.Dataset, seed: int = 3) -> xr.Dataset:
    """A ramp Dataset as dq_init leaves it: float32 data, pixeldq, groupdq."""
    rng = np.random.default_rng(seed)
    out = uncal.drop_vars([v for v in ("resultantdq",) if v in uncal])
    out["data"] = out["data"].astype(np.float32) + np.float32(0.25)
    out["pixeldq"] = (("y", "x"), rng.integers(0, 2**10, uncal["data"].shape[1:]).astype(np.uint32))
    out["groupdq"] = (
        ("resultant", "y", "x"),
        rng.integers(0, 5, uncal["data"].shape).astype(np.uint8),
    )
    out.attrs = dict(uncal.attrs)
    out.attrs["meta"] = dict(uncal.attrs["meta"])
    out.attrs["meta"]["cal_step"] = {"dq_init": "COMPLETE"}
    out.attrs["step_parameters"] = {"dq_init": {"override_mask": None}}
    return out


def backed(ds: xr.Dataset, backend: str) -> xr.Dataset:
    """The same Dataset numpy-backed (loaded) or dask-backed (chunked in several pieces)."""
    # loaded first either way: re-reading the small files chunk by chunk is slow on a shared
    # machine and the reader has its own tests
    ds = ds.load()
    if backend == "numpy":
        return ds
    return ds.chunk({d: max(1, s // 2) for d, s in ds.sizes.items() if d in ("y", "x")})


class CountingScheduler:
    """A synchronous dask scheduler that counts how often it is asked to compute."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def raising_scheduler(dsk, keys, **kwargs):
    raise AssertionError("dask compute was triggered")


@contextlib.contextmanager
def no_compute():
    with dask.config.set(scheduler=raising_scheduler):
        yield


def temporaries(directory) -> list:
    return sorted(p.name for p in directory.iterdir() if ".romanxr-" in p.name)

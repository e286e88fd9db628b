"""Small Level-2 images and reference files for the image-step tests (written to tmp_path)."""

from __future__ import annotations

import numpy as np

#: science-area shape of the test images; the full frame adds a 4-pixel border on each side
NY, NX = 12, 10
FRAME = (NY + 8, NX + 8)
NRES = 3


def write_image(path, *, seed=0, exposure_type="WFI_IMAGE", optical_element="F158", **meta):
    """A valid small ImageModel file with random data and consistent carried-array shapes."""
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(seed)
    model = dm.ImageModel.create_fake_data(shape=(NY, NX))
    model.data = rng.uniform(1.0, 10.0, (NY, NX)).astype(np.float32)
    model.dq = rng.choice(np.array([0, 0, 0, 4, 1], dtype=np.uint32), (NY, NX))
    model.var_poisson = rng.uniform(0.1, 1.0, (NY, NX)).astype(np.float16)
    model.var_rnoise = rng.uniform(0.01, 0.1, (NY, NX)).astype(np.float16)
    model.err = np.sqrt(
        model.var_poisson.astype(np.float32) + model.var_rnoise.astype(np.float32)
    ).astype(np.float16)
    model.chisq = np.ones((NY, NX), np.float16)
    model.dumo = rng.uniform(-0.1, 0.1, (NY, NX)).astype(np.float16)
    fy, fx = FRAME
    model.amp33 = rng.integers(0, 100, (NRES, fy, 128), dtype=np.uint16)
    for side in ("left", "right"):
        model[f"border_ref_pix_{side}"] = np.ones((NRES, fy, 4), np.float32)
        model[f"dq_border_ref_pix_{side}"] = np.zeros((fy, 4), np.uint32)
    for side in ("top", "bottom"):
        model[f"border_ref_pix_{side}"] = np.ones((NRES, 4, fx), np.float32)
        model[f"dq_border_ref_pix_{side}"] = np.zeros((4, fx), np.uint32)
    model.meta.exposure.type = exposure_type
    model.meta.exposure.read_pattern = [[i + 1] for i in range(NRES)]
    model.meta.exposure.nresultants = NRES
    model.meta.exposure.frame_time = 3.04
    model.meta.instrument.optical_element = optical_element
    wcsinfo = {
        "v2_ref": -503.0,
        "v3_ref": -318.0,
        "ra_ref": 156.0,
        "dec_ref": 54.2,
        "roll_ref": 0.15,
        "vparity": -1,
        "v3yangle": -60.0,
    }
    wcsinfo.update(meta.pop("wcsinfo", {}))
    for key, value in wcsinfo.items():
        model.meta.wcsinfo[key] = value
    model.meta.velocity_aberration.scale_factor = meta.pop("scale_factor", 1.0)
    from romanxr.dataset import CAL_STEP_KEYS

    done = {"dq_init", "saturation", "refpix", "dark_decay", "wfi18_transient", "linearity"}
    model.meta.cal_step = {
        key: "COMPLETE" if key in done | {"ramp_fit"} else "INCOMPLETE" for key in CAL_STEP_KEYS
    }
    model.save(path)
    return path


def write_dark(path, *, seed=1, nan_at=()):
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(seed)
    model = dm.DarkRefModel.create_fake_data(shape=FRAME)
    slope = rng.uniform(0.0, 0.5, FRAME).astype(np.float32)
    for yx in nan_at:
        slope[yx] = np.nan
    model.dark_slope = slope
    model.dark_slope_error = np.full(FRAME, 0.01, np.float32)
    dq = np.zeros(FRAME, np.uint32)
    dq[5, 6] = 2048  # HOT, inside the science area
    dq[0, 0] = 1  # in the border: must not reach the image
    model.dq = dq
    model.save(path)
    return path


def write_flat(
    path, *, seed=2, shape=(NY, NX), nan_at=(), zero_at=(), dq_at=(), optical_element="F158"
):
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(seed)
    model = dm.FlatRefModel.create_fake_data(shape=shape)
    model.meta.instrument.optical_element = optical_element  # the images' element
    flat = rng.uniform(0.8, 1.2, shape).astype(np.float32)
    for yx in nan_at:
        flat[yx] = np.nan
    for yx in zero_at:
        flat[yx] = 0.0
    model.data = flat
    model.err = rng.uniform(0.001, 0.02, shape).astype(np.float32)
    dq = np.zeros(shape, np.uint32)
    for yx in dq_at:
        dq[yx] = 262144  # NO_FLAT_FIELD
    model.dq = dq
    model.save(path)
    return path


def phot_table():
    """A table like romancal's tests build: spectral/dark elements have null conversions."""
    elements = ["F062", "F087", "F106", "F129", "F146", "F158", "F184", "F213"]
    table = {}
    for i, element in enumerate(elements):
        table[element] = {
            "photmjsr": 0.5 + 0.1 * i,
            "uncertainty": 0.01 + 0.001 * i,
            "pixelareasr": 2.8e-13,
            "collecting_area": 3.6,
            "wavelength": np.linspace(1.0, 2.0, 5).astype(np.float32),
            "effective_area": np.full(5, 3.0, np.float32),
        }
    for element in ("GRISM", "PRISM"):
        table[element] = {
            "photmjsr": None,
            "uncertainty": None,
            "pixelareasr": None,
            "collecting_area": 3.6,
            "wavelength": np.linspace(1.0, 2.0, 5).astype(np.float32),
            "effective_area": np.full(5, 3.0, np.float32),
        }
    table["DARK"] = dict.fromkeys(
        ("photmjsr", "uncertainty", "pixelareasr", "collecting_area", "wavelength"), None
    )
    table["DARK"]["effective_area"] = None
    return table


def write_photom(path, *, drop=()):
    import roman_datamodels.datamodels as dm

    model = dm.WfiImgPhotomRefModel.create_fake_data()
    table = phot_table()
    for key in drop:
        table.pop(key)
    model.phot_table = table
    model.save(path)
    return path


def write_distortion(path, transform=None):
    import roman_datamodels.datamodels as dm
    from astropy.modeling.models import Shift

    model = dm.DistortionRefModel.create_fake_data()
    model.coordinate_distortion_transform = (
        transform if transform is not None else Shift(1) & Shift(2)
    )
    model.save(path)
    return path


_OPENED: dict = {}


def open_image(path, backend="dask"):
    """Open a test image numpy-backed (loaded) or dask-backed (chunked in y bands of 5 rows).

    Opening validates the whole ASDF tree (seconds on a busy machine), so each file is opened
    once per session; callers get a shallow copy with deep-copied attrs.
    """
    import os

    import romanxr

    key = (os.path.abspath(path), os.stat(path).st_mtime_ns, backend)
    if key not in _OPENED:
        if backend == "numpy":
            ds = romanxr.open_cal(path, chunks=None).load()
        else:
            ds = romanxr.open_cal(path, chunks={"y": 5, "x": -1})
        ds.attrs["meta"]["wcs"] = None  # the fake model's placeholder gwcs compares by identity
        _OPENED[key] = ds
    return with_meta(_OPENED[key])


def raise_on_compute(*args, **kwargs):
    """A dask scheduler that fails: use to prove a step only builds a graph."""
    raise AssertionError("a dask graph was computed while building the step")


def snapshot(ds):
    """Deep copy of a Dataset (values and attrs) to check later that a step left it alone."""
    import copy

    return ds.copy(deep=True), copy.deepcopy(ds.attrs)


def assert_unchanged(ds, snap):
    import xarray as xr

    before, attrs = snap
    xr.testing.assert_identical(ds.drop_attrs(), before.drop_attrs())
    assert ds.attrs == attrs


def with_meta(ds, **groups):
    """A shallow copy of ``ds`` with deep-copied attrs and ``meta[group].update(values)``.

    ``with_meta(ds, wcsinfo={"ra_ref": 0.0})`` varies the metadata without writing a new file.
    """
    import copy

    out = ds.copy(deep=False)
    out.attrs = copy.deepcopy(ds.attrs)
    for group, values in groups.items():
        out.attrs["meta"].setdefault(group, {}).update(values)
    return out

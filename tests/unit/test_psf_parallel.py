"""The PSF fit in parts of whole groups, in forked workers, gives the serial catalog exactly."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

from romanxr.kernels.psf_photometry import group_parts
from romanxr.steps import source_catalog as step
from tests.unit.test_source_catalog import SIGMA, _wcs, catalog_references, make_image

SHAPE = (160, 160)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return catalog_references(tmp_path_factory.mktemp("psfrefs"))


def crowded_image(seed=3):
    """50 stars, 15 of them 3.5-4.8 px from another (deblended, then fitted as one group)."""
    rng = np.random.default_rng(seed)
    meta = dict(make_image().attrs["meta"], wcs=_wcs(SHAPE))
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    data = np.full(SHAPE, 5.0)
    centres = rng.uniform(8, SHAPE[0] - 8, size=(35, 2))
    angle, dist = rng.uniform(0, 2 * np.pi, 15), rng.uniform(3.5, 4.8, 15)
    pairs = centres[:15] + np.transpose([dist * np.cos(angle), dist * np.sin(angle)])
    for x, y in np.concatenate([centres, pairs]):
        flux = rng.uniform(1500, 6000)
        r2 = (xx - x) ** 2 + (yy - y) ** 2
        data += flux / (2 * np.pi * SIGMA**2) * np.exp(-r2 / (2 * SIGMA**2))
    err = np.sqrt(0.25 + data * 0.01)
    data = data + rng.normal(0.0, 0.5, SHAPE)
    return xr.Dataset(
        {
            "data": (("y", "x"), data.astype(np.float32)),
            "err": (("y", "x"), err.astype(np.float32)),
            "dq": (("y", "x"), np.zeros(SHAPE, np.uint32)),
        },
        coords={"y": np.arange(4, 4 + SHAPE[0]), "x": np.arange(4, 4 + SHAPE[1])},
        attrs={"meta": meta},
    )


def _measure(ds, refs, workers):
    """The catalog measured afresh (not from the step's cache) with ``num_workers``."""
    with step._LOCK:
        step._RESULTS.clear()
        step._TABLES.clear()
    with dask.config.set(scheduler="threads", num_workers=workers):
        out = step.source_catalog(
            ds, bkg_boxsize=32, npixels=5, snr_threshold=5.0, deblend=True, **refs
        )
        return step.catalog_table(out), np.asarray(out["segmentation"].values)


def _assert_same(a, b):
    assert a.colnames == b.colnames
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_parallel_fit_equals_the_serial_one_bit_for_bit(refs):
    ds = crowded_image()
    serial, seg1 = _measure(ds, refs, 1)
    assert len(serial) > 25 and (serial["psf_flags"] == 0).sum() > 20
    for workers in (2, 3):
        parallel, seg2 = _measure(ds, refs, workers)
        _assert_same(serial, parallel)
        np.testing.assert_array_equal(seg1, seg2)


def test_psf_fit_in_parts_equals_one_call_with_groups_of_several(refs):
    import roman_datamodels.datamodels as dm

    from romanxr.kernels.psf_photometry import _groups, psf_fit
    from romanxr.kernels.source_catalog import gridded_psf
    from romanxr.schedule import forked_map

    with dm.open(refs["override_epsf"]) as model:
        psf = gridded_psf(
            np.asarray(model.psf), list(model.meta.pixel_x), list(model.meta.pixel_y), 4
        )
    ds = crowded_image()
    flux = ds["data"].values - np.float32(5.0)
    err = ds["err"].values
    mask = np.zeros(SHAPE, bool)
    rng = np.random.default_rng(5)
    # initial positions: 40 spread out, 20 within 2-4.5 px of one of them, 2 off the image
    xy = rng.uniform(6, SHAPE[0] - 6, size=(40, 2))
    near = xy[:20] + rng.uniform(2.0, 3.2, size=(20, 2)) * rng.choice([-1, 1], (20, 2))
    xy = np.concatenate([xy, near, [[-20.0, 5.0], [SHAPE[1] + 30.0, 50.0]]]).astype(np.float32)
    sizes = np.unique(_groups(xy), return_counts=True)[1]
    assert (sizes > 1).sum() >= 10  # many groups of several sources, fitted together
    with psf_fit(flux, err, mask, xy, psf, workers=1) as columns:
        serial = columns()
    assert np.isfinite(serial["psf_flux"][:60]).all() and (serial["psf_flags"][60:] != 0).all()
    for workers in (2, 3):
        with psf_fit(flux, err, mask, xy, psf, workers, forked_map) as columns:
            parallel = columns()
        assert list(parallel) == list(serial)
        for name, values in serial.items():
            assert parallel[name].dtype == values.dtype
            assert np.array_equal(parallel[name], values, equal_nan=True), name


def test_dask_input_forks_inside_the_task_with_the_same_result(refs):
    ds = crowded_image()
    eager, _ = _measure(ds, refs, 1)
    lazy, _ = _measure(ds.chunk({"y": 80, "x": 80}), refs, 2)
    _assert_same(eager, lazy)


@pytest.mark.parametrize("n_parts", [1, 2, 5, 100])
def test_group_parts_are_whole_groups_covering_every_row(n_parts):
    rng = np.random.default_rng(1)
    group_id = np.repeat(np.arange(1, 41), rng.integers(1, 4, 40))
    group_id = group_id[rng.permutation(len(group_id))]
    parts = group_parts(group_id, n_parts)
    assert 1 <= len(parts) <= n_parts
    rows = np.concatenate(parts)
    assert np.array_equal(np.sort(rows), np.arange(len(group_id)))
    for part in parts:
        assert np.all(np.diff(part) > 0)  # the rows keep their order
    owner = {g: i for i, part in enumerate(parts) for g in group_id[part]}
    for i, part in enumerate(parts):
        assert all(owner[g] == i for g in group_id[part])  # no group in two parts
    if n_parts == 2:
        sizes = [len(p) for p in parts]
        assert abs(sizes[0] - sizes[1]) <= 6  # about equal shares


@pytest.mark.parametrize("seed", range(6))
def test_groups_are_photutils_source_grouper_ones(seed):
    from photutils.psf import SourceGrouper

    from romanxr.kernels.psf_photometry import _groups

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 800))
    side = np.sqrt(n) * rng.uniform(3, 8)
    if seed % 2:  # a 5-px lattice: many pairs exactly at the grouping distance
        xy = rng.integers(0, int(side / 5) + 2, size=(n, 2)) * 5.0 + rng.choice([0, 0.5], (n, 2))
    else:
        xy = rng.uniform(0, side, size=(n, 2))
    xy = xy.astype(np.float32)
    expected = np.asarray(SourceGrouper(min_separation=5.0)(xy[:, 0], xy[:, 1]))
    got = _groups(xy)
    assert 1 < expected.max() < n  # some sources alone, some together
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_non_finite_positions_fail_as_in_photutils():
    from romanxr.kernels.psf_photometry import _groups

    with pytest.raises(ValueError, match="finite"):
        _groups(np.array([[1.0, 2.0], [np.nan, 3.0]], np.float32))
    assert _groups(np.array([[1.0, 2.0]], np.float32)).tolist() == [1]

"""meta.statistics: romancal's image statistics, from the stored arrays."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import mad_std

from romanxr.dq import PixelFlag
from romanxr.kernels.statistics import PLACEHOLDER, good_values, image_statistics

DNU = np.uint32(PixelFlag.DO_NOT_USE)


def _image(shape, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(5, 2, shape).astype(np.float32)
    dq = np.where(rng.random(shape) < 0.1, DNU | np.uint32(4), rng.integers(0, 4, shape))
    err = rng.random(shape).astype(np.float16)
    err[rng.random(shape) < 0.05] = 0
    data[rng.random(shape) < 0.05] = np.nan
    return data, dq.astype(np.uint32), err


@pytest.mark.parametrize(("shape", "seed"), [((40, 31), 0), ((40, 30), 1), ((7, 7), 2)])
def test_same_numbers_as_median_and_astropy_mad_std(shape, seed):
    data, dq, err = _image(shape, seed)
    good = np.isfinite(data) & ((dq & DNU) == 0) & (err > 0)
    stats = image_statistics(good_values(data, dq, err), data.size)
    assert stats["image_median"] == float(np.median(data[good]))
    assert stats["image_rms"] == float(mad_std(data[good]))
    assert stats["good_pixel_fraction"] == good.sum() / data.size
    assert stats["zodiacal_light"] == -1.0


def test_slabs_gathered_give_the_whole_images_values():
    data, dq, err = _image((50, 20), 3)
    parts = [good_values(data[i : i + 7], dq[i : i + 7], err[i : i + 7]) for i in range(0, 50, 7)]
    whole = image_statistics(good_values(data, dq, err), data.size)
    assert image_statistics(np.concatenate(parts), data.size) == whole


def test_no_good_pixel_keeps_the_placeholders():
    data = np.full((4, 4), np.nan, np.float32)
    stats = image_statistics(good_values(data, np.zeros((4, 4), np.uint32), np.ones((4, 4))), 16)
    assert stats["good_pixel_fraction"] == 0.0 and stats["zodiacal_light"] == -1.0
    assert np.isnan(stats["image_median"]) and np.isnan(stats["image_rms"])
    assert set(stats) == set(PLACEHOLDER)


@pytest.mark.oracle
def test_equals_romancals_populate_statistics():
    pytest.importorskip("romancal")
    import roman_datamodels.datamodels as dm
    from romancal.lib.statistics import populate_statistics

    data, dq, err = _image((24, 24), 4)
    model = dm.ImageModel.create_fake_data(shape=(24, 24))
    model.data, model.dq, model.err = data, dq, err
    populate_statistics(model)
    assert image_statistics(good_values(data, dq, err), data.size) == dict(model.meta.statistics)

"""photom: metadata copied from the phot_table entry of the optical element; data untouched."""

from __future__ import annotations

import dask
import pytest
import xarray as xr

from romanxr.errors import RomanxrWarning
from romanxr.refs import ReferenceResolver
from romanxr.steps.photom import NoPhotometryWarning, photom
from tests.unit._image_factories import (
    assert_unchanged,
    open_image,
    phot_table,
    raise_on_compute,
    snapshot,
    with_meta,
    write_image,
    write_photom,
)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("photom_image") / "r_cal.asdf")


@pytest.fixture(scope="module")
def photom_file(tmp_path_factory):
    return write_photom(tmp_path_factory.mktemp("photom") / "photom.asdf")


@pytest.mark.parametrize("element", ["F062", "F158", "f213"])
def test_table_entry_copied(image, photom_file, element):
    # lower case still matches
    ds = with_meta(open_image(image, "dask"), instrument={"optical_element": element})
    snap = snapshot(ds)
    with dask.config.set(scheduler=raise_on_compute):
        out = photom(ds, override_photom=photom_file)
    entry = phot_table()[element.upper()]
    photometry = out.attrs["meta"]["photometry"]
    assert photometry["conversion_megajanskys"] == pytest.approx(entry["photmjsr"])
    assert photometry["conversion_megajanskys_uncertainty"] == pytest.approx(entry["uncertainty"])
    assert photometry["pixel_area"] == pytest.approx(entry["pixelareasr"])
    assert out.attrs["meta"]["cal_step"]["photom"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["photom"] == "photom.asdf"
    # data are not scaled: the very same arrays
    assert out["data"].data is ds["data"].data
    assert_unchanged(ds, snap)
    assert ds.attrs["meta"]["photometry"]["conversion_megajanskys"] == -999999


@pytest.mark.parametrize("element", ["GRISM", "PRISM", "DARK"])
def test_spectral_and_dark_elements_get_none(image, photom_file, element):
    ds = with_meta(open_image(image, "numpy"), instrument={"optical_element": element})
    out = photom(ds, override_photom=photom_file)
    photometry = out.attrs["meta"]["photometry"]
    assert photometry["conversion_megajanskys"] is None
    assert photometry["conversion_megajanskys_uncertainty"] is None
    assert photometry["pixel_area"] is None


def test_missing_entry_warns_and_leaves_metadata(tmp_path, image):
    ref = write_photom(tmp_path / "photom_no_f146.asdf", drop=["F146"])
    ds = with_meta(open_image(image, "numpy"), instrument={"optical_element": "F146"})
    ds.attrs["meta"]["photometry"]["pixel_area"] = -1.0
    with pytest.warns(NoPhotometryWarning, match="F146"):
        out = photom(ds, override_photom=ref)
    assert issubclass(NoPhotometryWarning, RomanxrWarning)
    assert out.attrs["meta"]["photometry"]["pixel_area"] == -1.0
    assert out.attrs["meta"]["photometry"]["conversion_megajanskys"] == -999999
    assert out.attrs["meta"]["cal_step"]["photom"] == "COMPLETE"


def test_not_applicable_reference_skips(image):
    ds = open_image(image, "numpy")
    out = photom(ds, resolver=ReferenceResolver(overrides={"photom": "N/A"}))
    assert out.attrs["meta"]["cal_step"]["photom"] == "SKIPPED"
    assert out.attrs["meta"]["photometry"] == ds.attrs["meta"]["photometry"]
    xr.testing.assert_identical(out["data"], ds["data"])

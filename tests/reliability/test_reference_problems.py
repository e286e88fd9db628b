"""References that do not fit the exposure, and references that cannot be found (items 5, 6).

Every failure here happens while the step builds its graph: the steps run under a dask
scheduler that raises if anything is computed.

Resolution failures of the CRDS client itself are tested in ``tests/unit/test_crds.py``:
no CRDS_PATH and no server (``test_no_crds_path_and_no_server``), a file missing from the cache
(``test_missing_file_in_cache``), no match in the rules (``test_no_match_in_rules``), a missing
selection parameter (``test_missing_selection_parameter``), a folder that is not a cache, a
context not in the cache, tampered rules. Here they are checked through a step.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import roman_datamodels.datamodels as dm

from romanxr.errors import (
    CrdsConfigurationError,
    ReferenceMismatchError,
    ReferenceNotFoundError,
    ReferenceTypeError,
    WrongProductError,
)
from romanxr.refs import ReferenceResolver, check_reference_matches, load_reference
from romanxr.steps.dark_current import dark_current
from romanxr.steps.flatfield import flatfield
from tests.unit._image_factories import (
    NX,
    NY,
    open_image,
    raise_on_compute,
    write_dark,
    write_flat,
    write_image,
)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("refs") / "r_cal.asdf", optical_element="F158")


@pytest.fixture
def ds(image):
    return open_image(image, "dask")


def _set_detector(path, detector):
    with dm.open(path) as model:
        model.meta.instrument.detector = detector
        model.save(path)
    return path


def test_flat_for_another_optical_element(tmp_path, ds):
    flat = write_flat(tmp_path / "flat_f062.asdf", optical_element="F062")
    with dask.config.set(scheduler=raise_on_compute), pytest.raises(ReferenceMismatchError) as e:
        flatfield(ds, override_flat=flat)
    msg = str(e.value)
    assert "flat_f062.asdf" in msg and "F062" in msg and "F158" in msg
    assert "optical_element" in msg and "override_flat" in msg
    assert isinstance(e.value, ValueError)


def test_dark_for_another_detector(tmp_path, ds):
    dark = _set_detector(write_dark(tmp_path / "dark_wfi07.asdf"), "WFI07")
    with dask.config.set(scheduler=raise_on_compute), pytest.raises(ReferenceMismatchError) as e:
        dark_current(ds, override_dark=dark)
    msg = str(e.value)
    assert "dark_wfi07.asdf" in msg and "WFI07" in msg and "WFI01" in msg
    assert "override_dark" in msg


def test_flat_for_another_detector(tmp_path, ds):
    flat = _set_detector(write_flat(tmp_path / "flat_wfi18.asdf"), "WFI18")
    with pytest.raises(ReferenceMismatchError, match=r"detector WFI18.*WFI01"):
        flatfield(ds, override_flat=flat)


def test_dark_of_another_optical_element_is_accepted(tmp_path, ds):
    """Darks may be shared by several elements in the CRDS rules: only the flat's is compared."""
    dark = write_dark(tmp_path / "dark.asdf")
    with dm.open(dark) as model:
        assert model.meta.instrument.optical_element != "F158"
    with dask.config.set(scheduler=raise_on_compute):
        out = dark_current(ds, override_dark=dark)
    assert out.attrs["meta"]["cal_step"]["dark"] == "COMPLETE"


def test_flat_of_the_wrong_shape(tmp_path, ds):
    flat = write_flat(tmp_path / "flat_small.asdf", shape=(NY - 2, NX))
    with dask.config.set(scheduler=raise_on_compute), pytest.raises(ReferenceMismatchError) as e:
        flatfield(ds, override_flat=flat)
    assert "flat_small.asdf" in str(e.value) and f"({NY - 2}, {NX})" in str(e.value)


def test_reference_of_the_wrong_type(tmp_path, ds):
    dark = write_dark(tmp_path / "dark_as_flat.asdf")
    with dask.config.set(scheduler=raise_on_compute), pytest.raises(ReferenceTypeError) as e:
        flatfield(ds, override_flat=dark)
    assert "dark_as_flat.asdf: this is a dark reference file, but a flat" in str(e.value)
    # both kinds of caller catch it
    assert isinstance(e.value, ReferenceMismatchError) and isinstance(e.value, WrongProductError)


def test_exposure_given_as_reference(image, ds):
    with pytest.raises(WrongProductError, match="not a Roman reference file"):
        flatfield(ds, override_flat=image)


def test_check_reference_matches_ignores_wildcards(tmp_path, ds):
    flat = load_reference(write_flat(tmp_path / "flat.asdf"), "flat")
    flat.attrs["meta"]["instrument"]["optical_element"] = "N/A"
    check_reference_matches(flat, ds)  # no error
    flat.attrs["meta"]["instrument"]["optical_element"] = "F213"
    with pytest.raises(ReferenceMismatchError, match="F213"):
        check_reference_matches(flat, ds)


def test_missing_override_file(tmp_path, ds):
    with pytest.raises(ReferenceNotFoundError, match=r"nowhere_flat\.asdf"):
        flatfield(ds, override_flat=tmp_path / "nowhere_flat.asdf")


def test_no_crds_configuration_through_a_step(ds, monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    with dask.config.set(scheduler=raise_on_compute), pytest.raises(CrdsConfigurationError) as e:
        flatfield(ds, resolver=ReferenceResolver())
    assert "flat" in str(e.value)
    assert isinstance(e.value, FileNotFoundError)


def test_multi_detector_references_are_not_compared(tmp_path):
    """darkdecaysignal holds one entry per detector in one file: its own detector is moot."""
    from romanxr.steps.dark_decay import dark_decay
    from tests.unit._ramp_factory import make_ramp, write_decay_reference

    ref = write_decay_reference(tmp_path / "decay.asdf", detector="WFI03")
    with dm.open(ref) as model:
        assert model.meta.instrument.detector == "WFI01"
    ds = make_ramp(np.ones((3, 8, 8), np.float32), detector="WFI03")
    out = dark_decay(ds, override_darkdecaysignal=ref)
    assert out.attrs["meta"]["cal_step"]["dark_decay"] == "COMPLETE"

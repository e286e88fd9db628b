"""``ds.roman.summary()`` and the rich representation of ``ds.roman``."""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

import romanxr  # noqa: F401  (registers ds.roman)
from romanxr.summary import ExposureSummary, summarize

META = {
    "exposure": {
        "type": "WFI_IMAGE",
        "start_time": "2027-01-01T00:00:00.000",
        "ma_table_name": "HLWAS_IMAGING",
        "ma_table_number": 4,
        "read_pattern": [[1], [2, 3], [4, 5, 6], [7]],
        "exposure_time": 21.28,
    },
    "instrument": {"detector": "WFI07", "optical_element": "F184"},
}


def _ramp():
    ds = xr.Dataset(
        {"data": (("resultant", "y", "x"), np.zeros((4, 3, 3), np.uint16))},
        coords={"resultant": np.arange(4), "y": np.arange(3), "x": np.arange(3)},
    )
    ds.attrs["meta"] = copy.deepcopy(META)
    return ds


def _image():
    ds = xr.Dataset({"data": (("y", "x"), np.zeros((3, 3), np.float32))})
    meta = copy.deepcopy(META)
    meta["cal_step"] = {
        "dq_init": "COMPLETE",
        "linearity": "SKIPPED",
        "flat_field": "COMPLETE",
        "tweakreg": "INCOMPLETE",
    }
    meta["ref_file"] = {
        "mask": "roman_wfi_mask_0042.asdf",
        "flat": "myflat.asdf",
        "linearity": "roman_wfi_linearity_0001.asdf",
        "crds": {"context": "roman_0055.pmap", "version": "13.0"},
    }
    ds.attrs["meta"] = meta
    ds.attrs["step_parameters"] = {
        "dq_init": {"expand_gw_flagging": 0},
        "jump": {"rejection_threshold": 500, "run_inside": "ramp_fit"},
    }
    return ds


def test_summary_of_a_level1_ramp():
    s = _ramp().roman.summary()
    assert isinstance(s, ExposureSummary)
    assert (s.detector, s.optical_element, s.exposure) == ("WFI07", "F184", "WFI_IMAGE")
    assert s.level == "ramp" and s.shape == {"resultant": 4, "y": 3, "x": 3}
    assert not s.lazy and s.steps == []
    text = str(s)
    assert "HLWAS_IMAGING (#4): 4 resultants [1] [2..3] [4..6] [7]" in text
    assert "none run yet" in text
    assert "21.28 s" in text


def test_summary_lists_steps_references_and_parameters():
    s = summarize(_image())
    assert [r.step for r in s.steps] == ["dq_init", "linearity", "flat_field", "jump"]
    by = {r.step: r for r in s.steps}
    assert by["dq_init"].references == {"mask": "roman_wfi_mask_0042.asdf"}
    assert by["dq_init"].parameters == {"expand_gw_flagging": 0}
    assert by["linearity"].references == {}  # skipped: no reference was used
    assert by["flat_field"].references == {"flat": "myflat.asdf"}
    assert by["jump"].parameters["rejection_threshold"] == 500
    assert s.crds_context == "roman_0055.pmap"
    text = str(s)
    assert "linearity       SKIPPED" in text
    assert "tweakreg" not in text  # INCOMPLETE and never run: not listed


def test_lazy_flag_and_reprs():
    ds = _image().chunk({"y": 2})
    assert ds.roman.summary().lazy
    assert "lazy, dask" in repr(ds.roman)
    html = ds.roman._repr_html_()
    assert html.startswith("<div class='romanxr-summary'>")
    assert "<td style='text-align:left'>myflat.asdf</td>" in html
    assert "WFI07" in html and "roman_0055.pmap" in html


def test_html_is_escaped():
    ds = _image()
    ds.attrs["meta"]["instrument"]["detector"] = "<b>WFI01</b>"
    html = ds.roman._repr_html_()
    assert "<b>WFI01</b>" not in html and "&lt;b&gt;WFI01&lt;/b&gt;" in html


def test_summary_does_not_modify_or_compute():
    ds = _image().chunk({"y": 2})
    before = copy.deepcopy(ds.attrs)
    import dask

    def boom(*args, **kwargs):
        raise AssertionError("summary computed pixels")

    with dask.config.set(scheduler=boom):
        ds.roman.summary()
    assert ds.attrs == before

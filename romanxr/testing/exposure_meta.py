"""Metadata of simulated exposures: file names, times, pointing and aperture positions."""

from __future__ import annotations

from typing import Any

import numpy as np

from romanxr.focal_plane import v2v3_reference
from romanxr.testing.detector import DetectorModel

__all__ = ["EXPOSURE_START", "aperture_reference", "exposure_file_name", "fill_meta"]

#: Start of every simulated exposure (reference files are valid from 2020-01-01).
EXPOSURE_START = "2027-01-01T00:00:00.000"


def aperture_reference(detector: str) -> tuple[float, float]:
    """(V2, V3) of the aperture reference point of ``detector`` (``WFI01`` ... ``WFI18``).

    The centre of the detector in the WFI layout of :mod:`romanxr.focal_plane`. Used by the
    simulator's metadata and by the distortion reference, which must agree.
    """
    return v2v3_reference(detector)


def exposure_file_name(detector: str = "WFI01", *, exposure: int = 1, suffix: str = "uncal") -> str:
    """Roman file name ``r<19 digits>_<4 digits>_<detector>_<suffix>.asdf``.

    Program 00001, execution plan 01, pass/segment/observation/visit 001.
    """
    return f"r0000101001001001001_{exposure:04d}_{detector.lower()}_{suffix}.asdf"


def fill_meta(
    model: Any,
    det: DetectorModel,
    read_pattern: list[list[int]],
    frame_time: float,
    optical_element: str,
    guide_window: dict[str, int],
    file_name: str,
    ra: float,
    dec: float,
    roll: float,
) -> None:
    """Fill the metadata of the Level-1 ``model`` of a simulated exposure (in place).

    Times start at :data:`EXPOSURE_START`; the pointing, WCS and ephemeris values are
    plausible constants, the same for every simulated exposure apart from ``ra``, ``dec``
    and ``roll``.
    """
    from astropy.time import Time, TimeDelta

    meta = model.meta
    nres = len(read_pattern)
    last = read_pattern[-1][-1]
    start = Time(EXPOSURE_START, format="isot", scale="utc")
    end = start + TimeDelta(last * frame_time, format="sec")
    meta.filename = file_name
    meta.file_date = Time("2027-01-02T00:00:00.000", format="isot", scale="utc")
    meta.origin = "STSCI/SOC"
    meta.prd_version = "romanxr-sim"
    meta.sdf_software_version = "romanxr-sim"
    meta.product_type = "l1"

    exp = meta.exposure
    exp.type = "WFI_IMAGE"
    exp.start_time = start
    exp.end_time = end
    exp.nresultants = nres
    exp.frame_time = float(frame_time)
    exp.exposure_time = float(frame_time * last)
    exp.effective_exposure_time = float(
        frame_time * (np.mean(read_pattern[-1]) - np.mean(read_pattern[0]))
    )
    exp.ma_table_name = "ROMANXR_SIM"
    exp.ma_table_number = 999
    exp.ma_table_id = "SIM999"
    exp.read_pattern = [[int(r) for r in g] for g in read_pattern]
    exp.truncated = False
    exp.data_problem = None
    exp.engineering_quality = "OK"

    meta.instrument.name = "WFI"
    meta.instrument.detector = det.detector
    meta.instrument.optical_element = optical_element

    gs = meta.guide_star
    for key, value in guide_window.items():
        gs[key] = int(value)
    gs.guide_window_id = "GW0001"
    gs.guide_mode = "WIM-ACQ"
    gs.guide_star_id = "SIM0001"
    gs.epoch = "2027.0"

    v2_ref, v3_ref = aperture_reference(det.detector)
    wcs = meta.wcsinfo
    wcs.aperture_name = f"{det.detector}_FULL"
    wcs.v2_ref = v2_ref
    wcs.v3_ref = v3_ref
    wcs.vparity = -1
    wcs.v3yangle = -60.0
    wcs.ra_ref = float(ra)
    wcs.dec_ref = float(dec)
    wcs.roll_ref = float(roll)
    wcs.s_region = "?"

    pt = meta.pointing
    pt.ra_v1 = float(ra)
    pt.dec_v1 = float(dec)
    pt.pa_v3 = float(roll)
    pt.pa_aperture = float(roll)
    pt.target_aperture = f"{det.detector}_FULL"
    pt.target_ra = float(ra)
    pt.target_dec = float(dec)

    va = meta.velocity_aberration
    va.ra_reference = float(ra)
    va.dec_reference = float(dec)
    va.scale_factor = 1.0

    eph = meta.ephemeris
    eph.ephemeris_reference_frame = "EME2000"
    eph.type = "DEFINITIVE"
    eph.time = float(start.mjd)
    for axis, value in zip("xyz", (1.0e6, -5.0e5, 2.0e5), strict=True):
        eph[f"spatial_{axis}"] = value
        eph[f"velocity_{axis}"] = 0.0

    obs = meta.observation
    obs.observation_id = "0000101001001001001"
    obs.visit_id = "0000101001001001001"
    obs.program = 1
    obs.execution_plan = 1
    obs["pass"] = 1
    obs.segment = 1
    obs.observation = 1
    obs.visit = 1
    obs.visit_file_group = 1
    obs.visit_file_sequence = 1
    obs.visit_file_activity = "01"
    obs.exposure = 1

    meta.visit.start_time = start
    meta.visit.nexposures = 1
    meta.visit.type = "GENERAL"
    meta.program.title = "romanxr simulation"
    meta.program.investigator_name = "romanxr"
    meta.program.category = "GO"
    meta.program.subcategory = "None"
    meta.program.science_category = "SIM"

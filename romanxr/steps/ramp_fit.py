"""Ramp fitting: a ramp Dataset (resultant, y, x) becomes a Level-2 count-rate image (y, x).

Two fitters, as in romancal 1.1.0:

``likely`` (default; Brandt 2024)
    Generalised least squares on resultant differences with their tridiagonal read-noise +
    Poisson covariance, and iterative rejection of one difference, or a pair around a multi-read
    resultant, by chi-square improvement (thresholds from ``rejection_threshold``). Needs at
    least 4 resultants.
``ols_cas22`` (Casertano et al. 2022; deprecated upstream)
    Power-law optimally weighted least squares on segments of unflagged resultants, with the
    Sharma & Casertano (2024) single/double-difference jump test splitting segments.

Differences from romancal 1.1.0 (on purpose):

* ``rejection_threshold`` really sets the likelihood jump threshold; romancal declares it but
  never forwards it, so its likely fit always uses 4.5. At the default the results agree.
* A pixel with no usable resultant difference gets NaN slope, NaN err/variances/chisq and
  DO_NOT_USE (romancal leaves an infinite err and may not set DO_NOT_USE, e.g. when the
  resultants are cut by DROPOUT rather than SATURATED/DO_NOT_USE flags).
* The likelihood jump search runs only on pixels with at least 3 usable differences (with two,
  stcal may drop either one arbitrarily); a non-finite resultant difference is treated as
  unusable and the rate guess is the median of the finite differences (stcal propagates
  NaN); in the likely fit a gain <= 0 or non-finite drops the Poisson term and sets
  NO_GAIN_VALUE instead of producing NaN (ols_cas22 flags NO_GAIN_VALUE as romancal does).
* ``var_rnoise`` is left out by default, as romancal 1.1.0 does (``include_var_rnoise=False``;
  it can be rebuilt as ``err**2 - var_poisson``); ``include_var_rnoise=True`` keeps it. Errors
  and variances stay float32 in memory (the cal.asdf writer casts them to float16).
* Jumps found by the likely fit are kept as a boolean ``jumps`` (resultant, y, x) variable
  (lazy); :func:`jump_indices` turns it into romancal's ``(N, 3)`` int16 ``jump_indices``.
* Snowball expansion (``expand_large_events``) is not implemented; asking for it raises.
* A ramp with a single resultant is refused with :class:`~romanxr.errors.ExposureError` while
  the graph is built (ols_cas22 used to divide 0/0 inside the compute); in ols_cas22 a gain of
  exactly 0 gives a NaN slope with DO_NOT_USE | NO_GAIN_VALUE instead of a ZeroDivisionError.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import BORDER, CAL_STEP_KEYS, frame_shape, resultant_coords
from romanxr.dq import GroupFlag
from romanxr.errors import ConfigError, RomanxrWarning
from romanxr.kernels.ramp_cas22 import cas22_fit_block
from romanxr.kernels.ramp_common import jump_indices_from_flags
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import apply_kernel, finish_step
from romanxr.steps._ramp_inputs import (
    check_likely_resultants,
    check_ramp,
    jump_step_ran,
    likely_fit,
    ramp_references,
    ramp_variables,
)

__all__ = ["ALGORITHMS", "jump_indices", "ramp_fit"]

ALGORITHMS = ("likely", "ols_cas22")
#: Variables carried from the ramp into the image, with the full-frame dims renamed.
CARRIED = (
    "amp33",
    "border_ref_pix_left",
    "border_ref_pix_right",
    "border_ref_pix_top",
    "border_ref_pix_bottom",
    "dq_border_ref_pix_left",
    "dq_border_ref_pix_right",
    "dq_border_ref_pix_top",
    "dq_border_ref_pix_bottom",
)
_OUTPUTS = ("data", "dq", "err", "var_poisson", "var_rnoise", "chisq", "dumo")
_UNITS = {
    "data": "DN / s",
    "err": "DN / s",
    "var_poisson": "DN2 / s2",
    "var_rnoise": "DN2 / s2",
    "dumo": "DN / s",
}


def ramp_fit(
    ds: xr.Dataset,
    *,
    algorithm: str = "likely",
    rejection_threshold: float | None = 4.5,
    use_ramp_jump_detection: bool = True,
    threshold_intercept: float | None = None,
    threshold_constant: float | None = None,
    include_var_rnoise: bool = False,
    record_jumps: bool = True,
    expand_large_events: bool = False,
    override_readnoise: Any = None,
    override_gain: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Fit count rates to ramps and return the Level-2 image.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp after dq_init (and the other ramp steps): ``data`` (resultant, y, x) float32 DN,
        ``groupdq`` uint8, ``pixeldq`` uint32. Any ``groupdq`` bit removes that resultant from
        the fit. If the stand-alone :func:`romanxr.steps.jump.jump` ran, its flags are used and
        no second search is made by either fitter (for ``likely`` a JUMP_DET on resultant k
        then removes only the difference k-1 -> k, exactly what the search itself removed;
        ``ols_cas22`` ends a segment at every flagged resultant as usual).
    algorithm : {"likely", "ols_cas22"}
        Fitter: ``likely`` (default), the likelihood fit of Brandt (2024) on resultant
        differences with its own jump rejection; ``ols_cas22``, the optimally weighted fit of
        Casertano et al. (2022) with the Sharma & Casertano (2024) jump test (deprecated
        upstream).
    rejection_threshold : float or None
        ``likely`` only: jump threshold ``k`` in sigma (thresholds ``k**2`` for one difference,
        the equal-probability 2-dof chi-square for a pair); ``None`` turns the search off.
        Unlike romancal 1.1.0, where it is silently ignored, this changes the result.
    use_ramp_jump_detection : bool
        ``ols_cas22`` only: run the Sharma & Casertano jump test.
    threshold_intercept, threshold_constant : float, optional
        ``ols_cas22`` only: jump threshold ``b0 - b1 log10(rate)``; defaults 5.5 and 1/3.
    include_var_rnoise : bool
        Keep ``var_rnoise`` in the output (default False, romancal's default).
    record_jumps : bool
        ``likely`` only: add the boolean ``jumps`` (resultant, y, x) variable.
    expand_large_events : bool
        Snowball expansion; not implemented (``True`` raises ConfigError).
    override_readnoise, override_gain : path, optional
        READNOISE (DN per read) and GAIN (e-/DN) reference files instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution settings.

    Returns
    -------
    xarray.Dataset
        Image on the science area (the 4-pixel reference border removed; absolute y/x coords):
        ``data`` (slope, DN/s, float32), ``dq`` (uint32), ``err``, ``var_poisson``,
        ``var_rnoise`` ((DN/s)^2), ``chisq`` (zeros for ols_cas22), ``dumo`` (uniform-weight
        minus optimal slope), all float32; optional ``jumps``; ``amp33`` and the border
        reference arrays carried with dims renamed ``y -> frame_y``, ``x -> frame_x``.
        Pixel ``dq`` = input ``pixeldq`` | JUMP_DET (any resultant) | SATURATED (likely: any
        resultant; ols_cas22: all) | DO_NOT_USE (all SAT/DNU, at most one good resultant
        (likely), or no finite slope).

    Raises
    ------
    ConfigError
        Unknown algorithm, or ``expand_large_events=True``.
    ExposureError
        ``likely`` with fewer than 4 resultants (use ``algorithm='ols_cas22'``), missing
        ``groupdq``/``pixeldq``, bad read pattern.
    ReferenceNotFoundError, ReferenceMismatchError
        Reference problems.
    """
    algorithm = _check_options(algorithm, expand_large_events, rejection_threshold)
    info = check_ramp(ds, "ramp_fit")
    name = (ds.attrs.get("meta") or {}).get("filename") or "the exposure"
    if algorithm == "likely":
        check_likely_resultants(info, "ramp_fit", name)
    refs, readnoise, gain = ramp_references(
        ds, override_readnoise, override_gain, resolver, "ramp_fit"
    )
    data, gdq, pdq = ramp_variables(ds)
    pre_flagged = jump_step_ran(ds)
    if pre_flagged and algorithm == "likely" and rejection_threshold not in (4.5, None):
        _warn_threshold_unused(ds, rejection_threshold)
    timing = {
        "mean_time": info.mean_time,
        "n_reads": info.n_reads,
        "variance_time": info.variance_time,
    }
    parameters: dict[str, Any] = {"algorithm": algorithm, "include_var_rnoise": include_var_rnoise}
    if algorithm == "likely":
        kernel = likely_fit
        kwargs = {
            **timing,
            "rejection_threshold": None if pre_flagged else rejection_threshold,
            "jump_cuts_one": pre_flagged,
        }
        parameters.update(
            rejection_threshold=rejection_threshold,
            record_jumps=record_jumps,
            expand_large_events=False,
        )
    else:
        kernel = cas22_fit_block
        kwargs = _cas22_options(threshold_intercept, threshold_constant)
        parameters.update(use_ramp_jump_detection=use_ramp_jump_detection, **kwargs)
        kwargs.update(timing, use_jump=bool(use_ramp_jump_detection) and not pre_flagged)
    parameters["jump_search"] = "jump step" if pre_flagged else "ramp_fit"
    dims2 = ("y", "x")
    outputs = apply_kernel(
        kernel,
        [data, gdq, pdq, readnoise, gain],
        output_dims=[dims2] * 7 + [("resultant", "y", "x")],
        output_dtypes=[np.float32, np.uint32] + [np.float32] * 5 + [np.uint8],
        kwargs=kwargs,
    )
    variables = _image_variables(
        ds, outputs, include_var_rnoise, record_jumps=algorithm == "likely" and record_jumps
    )
    out = xr.Dataset(variables)
    if "resultant" in out.dims:
        out = out.assign_coords(resultant_coords(info))
    out = finish_step(out, ds, "ramp_fit", "COMPLETE", parameters=parameters, references=refs)
    _image_meta(out.attrs["meta"])
    return out


def _check_options(
    algorithm: str, expand_large_events: bool, rejection_threshold: float | None
) -> str:
    """The algorithm name in lower case, after checking the options that have no data."""
    algorithm = str(algorithm).lower()
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"ramp_fit: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if expand_large_events:
        raise ConfigError(
            "ramp_fit: expand_large_events (snowball flagging) is not implemented in romanxr; "
            "leave it False"
        )
    if rejection_threshold is not None and not (
        np.isfinite(rejection_threshold) and rejection_threshold >= 0
    ):
        raise ConfigError(
            f"ramp_fit: rejection_threshold must be a finite number >= 0 or None, got "
            f"{rejection_threshold!r}"
        )
    return algorithm


def _warn_threshold_unused(ds: xr.Dataset, rejection_threshold: float) -> None:
    used = ds.attrs["step_parameters"]["jump"].get("rejection_threshold")
    warnings.warn(
        f"ramp_fit: rejection_threshold={rejection_threshold} is not used because the jump "
        f"step already flagged this ramp (with rejection_threshold={used}); re-run "
        "jump(ds, rejection_threshold=...) on the original ramp to change it",
        RomanxrWarning,
        stacklevel=3,
    )


def _cas22_options(intercept: float | None, constant: float | None) -> dict[str, float]:
    """The ols_cas22 jump threshold with its defaults (5.5 and 1/3)."""
    return {
        "threshold_intercept": 5.5 if intercept is None else float(intercept),
        "threshold_constant": 1.0 / 3.0 if constant is None else float(constant),
    }


def _image_variables(
    ds: xr.Dataset, outputs: list[xr.DataArray], include_var_rnoise: bool, record_jumps: bool
) -> dict[str, xr.DataArray]:
    """The image's variables: the fit on the science area, ``jumps``, the carried arrays."""
    ysel, xsel = _science_area(ds)
    variables: dict[str, xr.DataArray] = {}
    for var, arr in zip(_OUTPUTS, outputs[:7], strict=True):
        if var == "var_rnoise" and not include_var_rnoise:
            continue
        arr = arr.isel(y=ysel, x=xsel).drop_vars([c for c in arr.coords if c not in ("y", "x")])
        if var in _UNITS:
            arr = arr.assign_attrs(units=_UNITS[var])
        variables[var] = arr
    if record_jumps:
        jumps = (outputs[7].isel(y=ysel, x=xsel) & np.uint8(GroupFlag.JUMP_DET)) != 0
        variables["jumps"] = jumps.assign_attrs(
            long_name="JUMP_DET set in this resultant by jump detection"
        )
    for var in CARRIED:
        if var in ds:
            variables[var] = ds[var].rename(
                {d: f"frame_{d}" for d in ("y", "x") if d in ds[var].dims}
            )
    # non-index coords (dask-backed when the ramp was chunked) would be compared, i.e.
    # computed, while merging: drop them and rebuild the resultant ones from the MA table
    return {k: v.drop_vars([c for c in v.coords if c not in v.dims]) for k, v in variables.items()}


def _image_meta(meta: dict[str, Any]) -> None:
    """Turn the ramp's metadata into a Level-2 image's (in place)."""
    meta["model_type"] = "ImageModel"
    meta["product_type"] = "l2"
    cal_step = meta.setdefault("cal_step", {})
    for key in CAL_STEP_KEYS:
        cal_step.setdefault(key, "INCOMPLETE")
    meta["cal_logs"] = []
    meta["photometry"] = {
        "conversion_megajanskys": -999999,
        "conversion_megajanskys_uncertainty": -999999,
        "pixel_area": -999999,
    }


def _science_area(ds: xr.Dataset) -> tuple[slice | np.ndarray, slice | np.ndarray]:
    """Positions of the science pixels: the 4-pixel reference border of the frame removed.

    The frame is ``frame_shape(ds)`` (the file's array shape, kept by cut-outs; 4096x4096 for a
    Dataset built by hand), so a whole small synthetic frame loses its outer 4 rows/columns and
    a cut-out keeps every pixel inside the frame's science area.
    """
    sel: list[slice | np.ndarray] = []
    for dim, size in zip(("y", "x"), frame_shape(ds), strict=True):
        coord = np.asarray(ds[dim].values)
        keep = np.flatnonzero((coord >= BORDER) & (coord < size - BORDER))
        contiguous = keep.size == 0 or keep[-1] - keep[0] + 1 == keep.size
        sel.append(slice(int(keep[0]), int(keep[-1]) + 1) if keep.size and contiguous else keep)
    return sel[0], sel[1]


def jump_indices(image: xr.Dataset) -> np.ndarray:
    """romancal's ``jump_indices``: ``(N, 3)`` int16 rows ``(resultant, y - 4, x - 4)``.

    Computes the ``jumps`` variable of a ``ramp_fit`` output (``record_jumps=True``); ``y``/``x``
    are positions in the 4088 x 4088 science frame.

    Raises
    ------
    KeyError
        If ``image`` has no ``jumps`` variable.
    """
    if "jumps" not in image:
        raise KeyError(
            "the image has no 'jumps' variable; run ramp_fit(algorithm='likely', record_jumps=True)"
        )
    jumps = image["jumps"].transpose("resultant", "y", "x")
    return jump_indices_from_flags(jumps.values, image["y"].values, image["x"].values, BORDER)

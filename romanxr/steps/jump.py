"""Stand-alone likelihood jump detection (the search ``ramp_fit(algorithm='likely')`` runs).

romancal 1.1.0 has no jump step: jumps are found inside ramp fitting, with a threshold that
cannot be changed (its ``rejection_threshold`` parameter is never forwarded). This step runs the
same search on its own, so it can be tuned and inspected, and writes JUMP_DET into ``groupdq``.
A later ``ramp_fit`` sees the record in ``attrs["step_parameters"]["jump"]``, does not search
again, and fits around these flags, giving the same slopes as a fit that searched itself.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import ConfigError
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import apply_kernel
from romanxr.steps._ramp_inputs import (
    JUMP_KEY,
    check_likely_resultants,
    check_ramp,
    likely_jump,
    ramp_references,
    ramp_variables,
)

__all__ = ["jump"]


def jump(
    ds: xr.Dataset,
    *,
    rejection_threshold: float = 4.5,
    override_readnoise: Any = None,
    override_gain: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Flag jumps (cosmic rays) in a ramp with the Brandt (2024) likelihood search.

    Per pixel, resultant differences are fitted with their full covariance; the difference (or
    pair of differences around a multi-read resultant) whose removal improves chi-square most
    is dropped while the improvement exceeds ``k**2`` (one difference) or the 2-dof chi-square
    quantile of the same tail probability (a pair), ``k = rejection_threshold``, and more than 3
    differences remain. Each dropped difference sets JUMP_DET on its later resultant.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp with ``data`` (DN), ``groupdq`` and ``pixeldq`` (after dq_init), >= 4 resultants.
    rejection_threshold : float
        Threshold ``k`` in sigma (default 4.5, romancal's fixed value). Larger finds fewer jumps.
    override_readnoise, override_gain : path, optional
        READNOISE (DN per read) and GAIN (e-/DN) reference files instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution settings (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        ``ds`` with ``groupdq |= JUMP_DET`` where jumps were found (lazy on dask input).
        ``attrs["step_parameters"]["jump"]`` records the parameters (there is no ``jump`` key
        in the Level-2 ``cal_step`` schema, so ``meta.cal_step`` is not touched); the
        references go to ``meta.ref_file``.

    Raises
    ------
    ExposureError
        Fewer than 4 resultants (the likelihood search needs 3 differences), or no
        ``groupdq``/``pixeldq``.
    ConfigError
        A non-finite or negative threshold.
    ReferenceNotFoundError, ReferenceMismatchError
        Reference problems.
    """
    if rejection_threshold is None or not np.isfinite(rejection_threshold):
        raise ConfigError(
            f"jump: rejection_threshold must be a finite number of sigma, got "
            f"{rejection_threshold!r}"
        )
    if rejection_threshold < 0:
        raise ConfigError(f"jump: rejection_threshold must be >= 0, got {rejection_threshold}")
    info = check_ramp(ds, "jump")
    name = (ds.attrs.get("meta") or {}).get("filename") or "the exposure"
    check_likely_resultants(info, "jump", name)
    refs, readnoise, gain = ramp_references(ds, override_readnoise, override_gain, resolver, "jump")
    data, gdq, _ = ramp_variables(ds)
    (new_gdq,) = apply_kernel(
        likely_jump,
        [data, gdq, readnoise, gain],
        output_dims=[("resultant", "y", "x")],
        output_dtypes=[np.uint8],
        kwargs={
            "mean_time": info.mean_time,
            "n_reads": info.n_reads,
            "variance_time": info.variance_time,
            "rejection_threshold": float(rejection_threshold),
        },
    )
    out = ds.copy(deep=False)
    out["groupdq"] = new_gdq.assign_attrs(ds["groupdq"].attrs)
    attrs = copy.deepcopy(dict(ds.attrs))
    ref_file = attrs.setdefault("meta", {}).setdefault("ref_file", {})
    for r in refs:
        ref_file[r.reftype] = r.recorded
    attrs.setdefault("step_parameters", {})[JUMP_KEY] = {
        "rejection_threshold": float(rejection_threshold),
        "algorithm": "likely",
        "readnoise": refs[0].name,
        "gain": refs[1].name,
    }
    out.attrs = attrs
    return out

"""linearity: read-level classical non-linearity correction."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import read_pattern_info, validate_exposure
from romanxr.dq import GROUP_DTYPE, PIXEL_DTYPE
from romanxr.errors import ReferenceFileError, ReferenceMismatchError
from romanxr.kernels.linearity import CLAMP, linearity_correction, pack_read_pattern
from romanxr.refs import ReferenceResolver
from romanxr.schedule import chunk_like
from romanxr.steps._common import apply_kernel, finish_step
from romanxr.steps._detector import require_ramp, resolve

__all__ = ["CHANNEL_WIDTH", "linearity"]

#: Columns per science (readout) channel; channel k (1-based) covers 128(k-1)..128k-1.
CHANNEL_WIDTH = 128


def _inl_tables(ref: xr.Dataset, channels: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Lookup abscissa and one correction row per science channel index 0..max(channels)."""
    if "value" not in ref:
        raise ReferenceFileError(
            f"{path}: an integralnonlinearity reference needs 'value' and 'inl_table'; pass a "
            "valid file as override_integralnonlinearity (or 'N/A' to run without INL)"
        )
    values = np.asarray(ref["value"].values)
    n_rows = int(channels.max()) + 1 if channels.size else 1
    rows = np.zeros((n_rows, values.size), dtype=np.float64)
    table = ref.attrs.get("inl_table") or {}
    for k in np.unique(channels):
        key = f"science_channel_{int(k) + 1:02d}"
        entry = table.get(key)
        correction = None if entry is None else entry.get("correction")
        if correction is None:
            raise ReferenceFileError(
                f"{path}: inl_table has no {key}.correction, needed for columns "
                f"{int(k) * CHANNEL_WIDTH}..{(int(k) + 1) * CHANNEL_WIDTH - 1}"
            )
        correction = np.asarray(correction, dtype=np.float64)
        if correction.shape != values.shape:
            raise ReferenceMismatchError(
                f"{path}: inl_table.{key}.correction has {correction.size} values but "
                f"'value' has {values.size}"
            )
        rows[int(k)] = correction
    return values, rows


def linearity(
    ds: xr.Dataset,
    *,
    override_linearity: Any = None,
    override_inverselinearity: Any = None,
    override_integralnonlinearity: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Correct resultants for classical non-linearity, read by read.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp (float32 ``data`` in DN, ``groupdq``, ``pixeldq``), normally after saturation
        and refpix.
    override_linearity : path-like, optional
        LINEARITY reference (``coeffs`` (coeff, y, x): observed DN -> linear DN; ``dq``).
    override_inverselinearity : path-like, optional
        INVERSELINEARITY reference (``coeffs``: linear DN -> observed DN).
    override_integralnonlinearity : path-like or "N/A", optional
        INTEGRALNONLINEARITY (ADC INL) reference; optional: N/A runs without it.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context). Default: the environment's.

    Returns
    -------
    xarray.Dataset
        ``data`` corrected (float32 DN), ``pixeldq`` |= linearity dq (+ NO_LIN_CORR where the
        coefficients are unusable), ``groupdq`` |= DO_NOT_USE where the result was clamped.
        ``meta.cal_step.linearity`` is ``COMPLETE``, or ``SKIPPED`` (data untouched) unless both
        LINEARITY and INVERSELINEARITY resolve.

    Notes
    -----
    Both polynomials become the identity where the linearity ``dq`` has
    NO_LIN_CORR, where any coefficient is NaN or where the linear term is 0 (the last two also
    set pixel NO_LIN_CORR). Per pixel, with ``P`` the linearity polynomial, ``Q`` the inverse
    and ``m_i`` the mean read number of resultant i:

    1. ``last = max(#unsaturated - 1, 2) - 1``; ``L0 = P(D_0)``, ``Ll = P(D_last)`` (raw where
       SATURATED); ``rate = (Ll - L0) / (m_last - m_0)`` (linear DN per read).
    2. For each read r of resultant i: ``o_r = Q(L0 + rate * (r - m_0))``, shifted so that
       ``mean(o_r) = D_i``; ``o_r += INL_channel(o_r)`` (if given);
       ``D_i' = mean(P(o_r))``. SATURATED resultants keep ``D_i``.
    3. ``|D_i'| > 1e6`` is clipped to +-1e6 and flagged group DO_NOT_USE (romancal's guard).

    A single-resultant exposure (where romancal fails) uses ``rate = 0``. The INL table row is
    chosen by the absolute column (``x // 128``), so cut-outs use the right channel.

    Raises
    ------
    ReferenceMismatchError
        If a reference does not cover the exposure's pixels.
    """
    validate_exposure(ds)  # the contract first: dims, dtypes, read_pattern
    require_ramp(ds, "linearity")
    refs = {}
    for reftype, explicit in (
        ("linearity", override_linearity),
        ("inverselinearity", override_inverselinearity),
        ("integralnonlinearity", override_integralnonlinearity),
    ):
        refs[reftype] = resolve(ds, reftype, explicit, resolver)
    resolved = [r for r, _ in refs.values()]
    lin, ilin, inl = (refs[k][1] for k in ("linearity", "inverselinearity", "integralnonlinearity"))
    if lin is None or ilin is None:
        return finish_step(ds, ds, "linearity", "SKIPPED", parameters={}, references=resolved)

    info = read_pattern_info(ds)
    reads, starts = pack_read_pattern(info.read_pattern)
    data = ds["data"]
    channel_x = xr.DataArray(
        (np.asarray(ds["x"].values) // CHANNEL_WIDTH).astype(np.int64),
        dims=("x",),
        coords={"x": ds["x"]},
    )
    kwargs: dict[str, Any] = {"reads": reads, "starts": starts, "clamp": CLAMP}
    if inl is not None:
        values, rows = _inl_tables(inl, channel_x.values, refs["integralnonlinearity"][0].path)
        kwargs.update(inl_values=values, inl_corrections=rows)
    if data.chunks is not None:
        channel_x = channel_x.chunk({"x": data.chunksizes["x"]})

    inputs = [
        data,
        ds["groupdq"],
        ds["pixeldq"],
        chunk_like(lin["coeffs"], data),
        chunk_like(ilin["coeffs"].rename(coeff="inverse_coeff"), data),
        chunk_like(lin["dq"], data),
        channel_x,
    ]
    new_data, groupdq, pixeldq = apply_kernel(
        lambda *a: linearity_correction(*a, **kwargs),
        inputs,
        output_dims=[("resultant", "y", "x"), ("resultant", "y", "x"), ("y", "x")],
        output_dtypes=[np.float32, GROUP_DTYPE, PIXEL_DTYPE],
    )
    out = ds.assign(
        data=new_data.transpose(*data.dims),
        groupdq=groupdq.transpose(*ds["groupdq"].dims),
        pixeldq=pixeldq.transpose(*ds["pixeldq"].dims),
    )
    return finish_step(out, ds, "linearity", "COMPLETE", parameters={}, references=resolved)

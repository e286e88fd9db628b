"""saturation: flag saturated and A/D-floor resultants."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from romanxr.dataset import read_pattern_info, validate_exposure
from romanxr.dq import GROUP_DTYPE, PIXEL_DTYPE, PixelFlag
from romanxr.errors import ConfigError
from romanxr.kernels.saturation import (
    flag_saturation,
    halo,
    read_pattern_arrays,
    saturation_flags,
)
from romanxr.refs import ReferenceResolver
from romanxr.schedule import chunk_like, rechunk_reference
from romanxr.steps._common import apply_kernel, finish_step
from romanxr.steps._detector import require_ramp, resolve

__all__ = ["saturation"]


def _grow_blocks(
    data: xr.DataArray,
    gdq: xr.DataArray,
    thresh: xr.DataArray,
    tdq: xr.DataArray,
    kwargs: dict,
    depth: int,
) -> xr.DataArray:
    """Run the kernel with a halo of ``depth`` pixels around each (y, x) block."""
    data = data.transpose("resultant", "y", "x")
    gdq = gdq.transpose("resultant", "y", "x")
    thresh = thresh.transpose("y", "x")
    tdq = tdq.transpose("y", "x")

    def run(d, g, t, q):
        return flag_saturation(d, g, t, q, **kwargs)

    if data.chunks is None:
        values = run(data.values, gdq.values, thresh.values, tdq.values)
        return gdq.copy(data=values)
    from dask.array.overlap import ensure_minimum_chunksize

    ychunks = ensure_minimum_chunksize(depth, data.data.chunks[1])
    xchunks = ensure_minimum_chunksize(depth, data.data.chunks[2])
    arrays = [
        data.data.rechunk({0: -1, 1: ychunks, 2: xchunks}),
        gdq.data.rechunk({0: -1, 1: ychunks, 2: xchunks})
        if isinstance(gdq.data, da.Array)
        else da.from_array(gdq.values, chunks=(-1, ychunks, xchunks)),
    ]
    for a in (thresh, tdq):  # a reference still read chunk by chunk in the tasks, not now
        arrays.append(rechunk_reference(a, {"y": ychunks, "x": xchunks}))
    depths = [{0: 0, 1: depth, 2: depth}] * 2 + [{0: depth, 1: depth}] * 2
    padded = [
        da.overlap.overlap(a, depth=dp, boundary="none")
        for a, dp in zip(arrays, depths, strict=True)
    ]
    blocks = da.map_blocks(run, *padded, dtype=GROUP_DTYPE, chunks=padded[1].chunks)
    result = da.overlap.trim_internal(blocks, {0: 0, 1: depth, 2: depth}, boundary="none")
    return gdq.copy(data=result)


def saturation(
    ds: xr.Dataset,
    *,
    n_pix_grow_sat: int = 0,
    backup: int = 0,
    override_saturation: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Flag saturated and A/D-floor resultants in ``groupdq``.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp (after :func:`~romanxr.steps.dq_init.dq_init`): float32 ``data`` (DN),
        ``groupdq`` uint8, ``pixeldq`` uint32.
    n_pix_grow_sat : int, default 0
        Grow every SATURATED flag (and every DO_NOT_USE flag set by the dilution pass) by this
        many pixels in a (2n+1)x(2n+1) square box, diagonals included, to cover charge
        spilling into neighbours. With dask, blocks overlap by ``2 * n_pix_grow_sat`` pixels so
        results do not depend on the chunking.
    backup : int, default 0
        Extra conservatism: this many times, copy SATURATED from resultant g+1 to g for every
        resultant g that averages more than one read (one resultant further back per pass).
    override_saturation : path-like, optional
        SATURATION reference file to use instead of the resolver's/CRDS's choice.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context). Default: the environment's.

    Returns
    -------
    xarray.Dataset
        ``groupdq`` and ``pixeldq`` updated; ``data`` untouched. ``meta.cal_step.saturation``
        is ``COMPLETE``, or ``SKIPPED`` when the reference resolves to N/A.

    Notes
    -----
    Per pixel, with threshold ``S`` (DN) from the reference, as in romancal's saturation step:

    * NO_SAT_CHECK in the reference DQ, or ``S`` NaN: never flagged SATURATED (NaN thresholds
      add NO_SAT_CHECK to ``pixeldq``).
    * Group SATURATED (2) from the first resultant with ``data >= S`` onward; group
      AD_FLOOR | DO_NOT_USE (64 | 1) on each resultant with ``data <= 0`` (A/D floor).
    * Dilution: a multi-read resultant g (not yet SATURATED/DO_NOT_USE) followed by a
      SATURATED one gets DO_NOT_USE if ``data_g >= S * mean(reads_g) / max(reads_g)``.
    * Second resultant (>= 3 resultants): DO_NOT_USE on resultant 1 when resultant 0 would not
      reach ``S`` by the end of resultant 2, the 0->1 jump exceeds ``(S - data_0) / n_reads_1``,
      and resultant 2 is SATURATED but 1 is not.
    * ``pixeldq |= reference dq``.

    Raises
    ------
    ReferenceMismatchError
        If the reference does not cover the exposure's pixels.
    """
    validate_exposure(ds)  # the contract first: dims, dtypes, read_pattern
    require_ramp(ds, "saturation")
    n_grow, n_backup = int(n_pix_grow_sat), int(backup)
    if n_grow < 0 or n_backup < 0:
        raise ConfigError(
            f"saturation: n_pix_grow_sat and backup must be >= 0, got {n_pix_grow_sat!r}, "
            f"{backup!r}"
        )
    params = {"n_pix_grow_sat": n_grow, "backup": n_backup}
    resolved, ref = resolve(ds, "saturation", override_saturation, resolver)
    if ref is None:
        return finish_step(
            ds, ds, "saturation", "SKIPPED", parameters=params, references=[resolved]
        )

    info = read_pattern_info(ds)
    mean_read, last_read, n_reads = read_pattern_arrays(info.read_pattern)
    kwargs = {
        "mean_read": mean_read,
        "last_read": last_read,
        "n_reads": n_reads,
        "n_grow": n_grow,
        "backup": n_backup,
    }
    data, gdq = ds["data"], ds["groupdq"]
    # The reference is read once per chunk, next to the pixel DQ chunk (the pixel DQ below
    # does not depend on the data, so later steps that need only it, such as refpix's
    # reference-pixel mask of every row, do not pull in the ramp). Cast in the kernel, not as
    # separate passes over the reference (a no-op for float32 and uint32 files, the usual case)
    thresh = chunk_like(ref["data"], ds["pixeldq"])
    tdq = chunk_like(ref["dq"], ds["pixeldq"])
    if n_grow > 0:
        thresh, tdq = thresh.astype(np.float32), tdq.astype(PIXEL_DTYPE)

    if n_grow == 0:  # one pass per block (the kernel's pixel DQ is the one below)
        rows = {k: v for k, v in kwargs.items() if k != "n_grow"}
        groupdq, _ = apply_kernel(
            lambda d, g, p, t, q: saturation_flags(d, g, p, t, q, **rows),
            [data, gdq, ds["pixeldq"], thresh, tdq],
            output_dims=[("resultant", "y", "x"), ("y", "x")],
            output_dtypes=[GROUP_DTYPE, PIXEL_DTYPE],
        )
    else:
        groupdq = _grow_blocks(data, gdq, thresh, tdq, kwargs, halo(n_grow))
    nan_flag = xr.where(thresh.isnull(), np.uint32(PixelFlag.NO_SAT_CHECK), np.uint32(0))
    pixeldq = (ds["pixeldq"] | tdq.astype(PIXEL_DTYPE) | nan_flag).astype(PIXEL_DTYPE)
    groupdq = groupdq.transpose(*gdq.dims)
    pixeldq = pixeldq.transpose(*ds["pixeldq"].dims)

    out = ds.assign(groupdq=groupdq, pixeldq=pixeldq)
    return finish_step(out, ds, "saturation", "COMPLETE", parameters=params, references=[resolved])

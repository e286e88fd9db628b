"""Plumbing shared by every step: references, provenance, and blockwise kernel application."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import record_step
from romanxr.refs import (
    ReferenceResolver,
    ResolvedReference,
    align_to_exposure,
    check_reference_matches,
    load_reference,
    resolve_reference,
)

__all__ = ["apply_kernel", "finish_step", "get_reference", "skip_step"]

PIXEL_DIMS = ("y", "x")


def get_reference(
    ds: xr.Dataset,
    reftype: str,
    *,
    explicit: Any = None,
    resolver: ReferenceResolver | None = None,
    align: bool = True,
) -> tuple[ResolvedReference, xr.Dataset | None]:
    """Resolve, open (lazily) and align a reference file to ``ds``.

    Returns ``(resolved, None)`` when the reference resolves to N/A.

    Raises
    ------
    ReferenceMismatchError
        If the reference is for another detector or optical element, or does not cover the
        exposure's pixels.
    """
    resolved = resolve_reference(reftype, ds, explicit=explicit, resolver=resolver)
    if resolved.path is None:
        return resolved, None
    ref = load_reference(resolved, reftype)
    check_reference_matches(ref, ds, resolved)
    if align:
        ref = align_to_exposure(ref, ds, resolved)
    return resolved, ref


def finish_step(
    out: xr.Dataset,
    source: xr.Dataset,
    step: str,
    status: str = "COMPLETE",
    *,
    parameters: Mapping[str, Any] | None = None,
    references: Sequence[ResolvedReference] = (),
) -> xr.Dataset:
    """Attach provenance to a step's output (attrs of ``source`` deep-copied, then updated)."""
    attrs = record_step(
        source,
        step,
        status,
        parameters=parameters,
        references={r.reftype: r.name for r in references},
    )
    if references:
        contexts = {r.context for r in references if r.context}
        if contexts:
            crds = attrs["meta"].setdefault("ref_file", {}).setdefault("crds", {})
            crds["context"] = sorted(contexts)[-1]
    out = out.copy(deep=False)
    out.attrs = attrs
    return out


def skip_step(ds: xr.Dataset, step: str, status: str = "SKIPPED") -> xr.Dataset:
    """Pass ``ds`` through unchanged apart from ``meta.cal_step[step] = status``."""
    return finish_step(ds, ds, step, status)


def _reorder(dims: tuple[str, ...]) -> tuple[str, ...]:
    """Core (non-pixel) dims first, then y, x: the layout kernels are written for."""
    return tuple(d for d in dims if d not in PIXEL_DIMS) + tuple(d for d in dims if d in PIXEL_DIMS)


def apply_kernel(
    func: Callable[..., Any],
    inputs: Sequence[xr.DataArray],
    *,
    output_dims: Sequence[tuple[str, ...]],
    output_dtypes: Sequence[Any],
    output_sizes: Mapping[str, int] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[xr.DataArray, ...]:
    """Apply a per-pixel ndarray kernel blockwise over ``(y, x)`` chunks.

    ``func`` receives numpy arrays with their non-pixel dims first and ``(y, x)`` last (e.g.
    ``(resultant, y, x)``, ``(y, x)``, ``(coeff, y, x)``) and returns one array per output, laid
    out as ``output_dims`` says. Works on numpy- and dask-backed inputs alike; with dask it
    builds a graph and computes nothing. Non-pixel dims must be whole in one chunk.

    Returns
    -------
    tuple of DataArray
        One per output, dims as given in ``output_dims``.
    """
    inputs = [a.transpose(*_reorder(a.dims)) for a in inputs]
    input_core = [[d for d in a.dims if d not in PIXEL_DIMS] for a in inputs]
    output_core = [[d for d in dims if d not in PIXEL_DIMS] for dims in output_dims]
    n_out = len(output_dims)

    def wrapped(*arrays: np.ndarray) -> Any:
        # apply_ufunc hands core dims last; kernels want them first
        moved = [
            np.moveaxis(a, list(range(a.ndim - len(c), a.ndim)), list(range(len(c))))
            for a, c in zip(arrays, input_core, strict=True)
        ]
        result = func(*moved, **(kwargs or {}))
        results = (result,) if n_out == 1 else tuple(result)
        out = []
        for r, c in zip(results, output_core, strict=True):
            r = np.asarray(r)
            out.append(np.moveaxis(r, list(range(len(c))), list(range(r.ndim - len(c), r.ndim))))
        return out[0] if n_out == 1 else tuple(out)

    result = xr.apply_ufunc(
        wrapped,
        *inputs,
        input_core_dims=input_core,
        output_core_dims=output_core,
        dask="parallelized",
        output_dtypes=list(output_dtypes),
        dask_gufunc_kwargs={"output_sizes": dict(output_sizes or {})},
        keep_attrs=False,
    )
    results = (result,) if n_out == 1 else tuple(result)
    return tuple(r.transpose(*dims) for r, dims in zip(results, output_dims, strict=True))

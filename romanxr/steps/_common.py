"""Plumbing shared by every step: references, provenance, and blockwise kernel application."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from dask.base import is_dask_collection

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
        references={r.reftype: r.recorded for r in references},
    )
    if references:
        contexts = {r.context for r in references if r.context}
        if contexts:
            crds = attrs["meta"].setdefault("ref_file", {}).setdefault("crds", {})
            crds["context"] = sorted(contexts)[-1]
            crds["version"] = _crds_version()  # the client that resolved them, as stpipe records
    out = out.copy(deep=False)
    out.attrs = attrs
    return out


def _crds_version() -> str:
    try:
        import crds
    except ImportError:  # pragma: no cover - a context implies crds was there
        return "?"
    return str(crds.__version__)


def skip_step(ds: xr.Dataset, step: str, status: str = "SKIPPED") -> xr.Dataset:
    """Pass ``ds`` through unchanged apart from ``meta.cal_step[step] = status``."""
    return finish_step(ds, ds, step, status)


def _reorder(dims: tuple[str, ...]) -> tuple[str, ...]:
    """Core (non-pixel) dims first, then y, x: the layout kernels are written for."""
    return tuple(d for d in dims if d not in PIXEL_DIMS) + tuple(d for d in dims if d in PIXEL_DIMS)


def _unwrap(block: Any, axes: int) -> np.ndarray:
    """A block of a blockwise call with ``concatenate=False``: nested lists over the core dims.

    One chunk per core dim (the usual case) is unwrapped without a copy; several are joined.
    """
    if axes == 0:
        return block
    if isinstance(block, list):
        parts = [_unwrap(b, axes - 1) for b in block]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-axes)
    return block


def _pick(blocks: tuple[np.ndarray, ...], index: int) -> np.ndarray:
    return blocks[index]


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

    On dask input every chunk reaches ``func`` in its stored layout, without a copy: the
    kernel call is one ``dask.array.blockwise`` task per (y, x) chunk whose core dims are not
    concatenated (``dask="parallelized"`` would move them last and copy every chunk), and each
    output is a cheap task picking one array from that call's result.

    Returns
    -------
    tuple of DataArray
        One per output, dims as given in ``output_dims``.
    """
    inputs = [a.transpose(*_reorder(a.dims)) for a in inputs]
    input_core = [[d for d in a.dims if d not in PIXEL_DIMS] for a in inputs]
    output_core = [[d for d in dims if d not in PIXEL_DIMS] for dims in output_dims]
    n_out = len(output_dims)
    sizes = {d: int(a.sizes[d]) for a in inputs for d in a.dims if d not in PIXEL_DIMS}
    sizes.update({k: int(v) for k, v in (output_sizes or {}).items()})
    dtypes = [np.dtype(t) for t in output_dtypes]

    def call(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        result = func(*arrays, **(kwargs or {}))
        return (result,) if n_out == 1 else tuple(result)

    def to_core_last(results: Sequence[Any], move: Callable[..., Any]) -> Any:
        out = []
        for r, c in zip(results, output_core, strict=True):
            out.append(move(r, list(range(len(c))), list(range(r.ndim - len(c), r.ndim))))
        return out[0] if n_out == 1 else tuple(out)

    def wrapped(*arrays: Any) -> Any:
        # apply_ufunc hands core dims last; kernels want them first
        if not any(is_dask_collection(a) for a in arrays):
            moved = [
                np.moveaxis(a, list(range(a.ndim - len(c), a.ndim)), list(range(len(c))))
                for a, c in zip(arrays, input_core, strict=True)
            ]
            return to_core_last([np.asarray(r) for r in call(*moved)], np.moveaxis)
        import dask.array as da

        args: list[Any] = []
        for i, (a, c) in enumerate(zip(arrays, input_core, strict=True)):
            a = da.asarray(a)
            a = da.moveaxis(a, list(range(a.ndim - len(c), a.ndim)), list(range(len(c))))
            # apply_ufunc leaves out leading missing pixel dims (an x-only input has one)
            pixel = PIXEL_DIMS[len(PIXEL_DIMS) - (a.ndim - len(c)) :]
            args += [a, tuple(f"in{i}_{d}" for d in c) + pixel]

        def block_call(*blocks: Any) -> tuple[np.ndarray, ...]:
            arrays_ = [_unwrap(b, len(c)) for b, c in zip(blocks, input_core, strict=True)]
            return tuple(np.asarray(r) for r in call(*arrays_))

        from dask.base import tokenize

        # name the tasks after the kernel, so dashboards and profiles say what runs
        kernel = getattr(func, "__name__", "kernel").strip("_") or "kernel"
        token = tokenize(func, [a.name if hasattr(a, "name") else a for a in args], kwargs)
        results = da.blockwise(
            block_call,
            PIXEL_DIMS,
            *args,
            name=f"{kernel}-{token}",
            concatenate=False,
            dtype=object,
            meta=np.empty((0, 0), dtype=object),
        )
        outs = []
        for i, (c, dt) in enumerate(zip(output_core, dtypes, strict=True)):
            ind = tuple(f"out{i}_{d}" for d in c) + PIXEL_DIMS
            outs.append(
                da.blockwise(
                    _pick,
                    ind,
                    results,
                    PIXEL_DIMS,
                    i,
                    None,
                    new_axes={f"out{i}_{d}": sizes[d] for d in c},
                    dtype=dt,
                    meta=np.empty((0,) * len(ind), dtype=dt),
                )
            )
        return to_core_last(outs, da.moveaxis)

    result = xr.apply_ufunc(
        wrapped,
        *inputs,
        input_core_dims=input_core,
        output_core_dims=output_core,
        dask="allowed",
        keep_attrs=False,
    )
    results = (result,) if n_out == 1 else tuple(result)
    return tuple(
        r.astype(dt, copy=False).transpose(*dims)
        for r, dt, dims in zip(results, dtypes, output_dims, strict=True)
    )

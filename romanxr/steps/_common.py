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

__all__ = ["apply_kernel", "chunk_like", "finish_step", "get_reference", "skip_step"]

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


def chunk_like(ref: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """Chunk a reference array like ``like``'s (y, x) chunks, other dims whole.

    A no-op for numpy-backed ``like``. Do this *before* casting a reference read from a file:
    casting a lazily indexed file array reads it at once, casting a dask array does not.

    A reference read lazily from a file gets one read task per chunk that also waits for the
    matching chunk of ``like`` (its value is not used). The reads then happen when the data
    they go with is there: dask's local scheduler runs newly ready tasks first and plain
    input reads only when nothing else is ready, so independent reads of every chunk would
    otherwise wait at the bottom of its queue while the data they are needed with piles up.
    """
    if like.chunks is None:
        return ref
    sizes: dict[str, Any] = {d: like.chunksizes[d] for d in PIXEL_DIMS if d in ref.dims}
    sizes.update({d: -1 for d in ref.dims if d not in sizes})
    pixel = [d for d in ref.dims if d in PIXEL_DIMS]
    lead = [d for d in ref.dims if d not in PIXEL_DIMS]
    backing = ref.variable._data  # (``ref.data`` would read a lazily indexed array)
    if (
        is_dask_collection(backing)
        or isinstance(backing, np.ndarray)
        or not pixel
        or list(ref.dims) != lead + pixel
        or any(d not in like.dims for d in pixel)
    ):
        return ref.chunk(sizes)
    import dask.array as da
    from dask.base import tokenize

    anchor = like.isel({d: 0 for d in like.dims if d not in pixel}).transpose(*pixel)
    anchor_data = anchor.data
    name = f"read-{ref.name or 'reference'}-" + tokenize(
        anchor_data.name, ref.name, ref.dims, ref.shape, id(backing)
    )
    data = da.map_blocks(
        _read_region,
        anchor_data,
        variable=_Opaque(ref.variable, id(backing)),
        n_lead=len(lead),
        name=name,
        new_axis=list(range(len(lead))) or None,
        chunks=tuple((ref.sizes[d],) for d in lead) + anchor_data.chunks,
        dtype=ref.dtype,
        meta=np.empty((0,) * ref.ndim, dtype=ref.dtype),
    )
    return ref.copy(data=data)


class _Opaque:
    """A lazily indexed Variable passed to tasks as is (dask would otherwise normalise the
    argument, which reads it whole)."""

    def __init__(self, variable: xr.Variable, token: Any) -> None:
        self.variable = variable
        self.token = token

    def __dask_tokenize__(self) -> Any:
        return ("romanxr-lazy-variable", self.token)


def _read_region(anchor: np.ndarray, variable: _Opaque, n_lead: int, block_info=None):
    """The part of ``variable`` under this chunk of the anchor (all leading dims)."""
    where = block_info[0]["array-location"]
    key = (slice(None),) * n_lead + tuple(slice(a, b) for a, b in where)
    return np.asarray(variable.variable[key].values)


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

"""Load Roman reference files as lazy Datasets and align them to an exposure."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import BORDER, frame_shape
from romanxr.errors import (
    FileFormatError,
    ReferenceFileError,
    ReferenceFormatError,
    ReferenceMismatchError,
    ReferenceTypeError,
    WrongProductError,
)
from romanxr.io.asdf_file import open_roman_tree
from romanxr.io.asdf_reader import lazy_variable
from romanxr.io.identity import file_identity
from romanxr.io.product import tag_of, to_plain
from romanxr.refs.resolve import ResolvedReference

__all__ = ["align_to_exposure", "check_reference_matches", "load_reference"]

#: Reference-file tag name -> CRDS reftype (where they differ).
_REFTYPE_BY_TAG = {"wfi_img_photom": "photom"}


def _materialize(node: Any) -> Any:
    """Plain containers with arrays read now, while the file is still open."""
    node = to_plain(node)
    if isinstance(node, dict):
        return {k: _materialize(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_materialize(v) for v in node]
    if hasattr(node, "shape") and hasattr(node, "dtype") and not isinstance(node, np.generic):
        return np.array(node)
    return node


@contextlib.contextmanager
def _open_reference(path: str) -> Iterator[Any]:
    """:func:`open_roman_tree` whose unreadable-file errors are reference problems (exit 4)."""
    try:
        with open_roman_tree(path) as (_, roman):
            yield roman
    except FileFormatError as exc:
        if isinstance(exc, ReferenceFileError):
            raise
        raise ReferenceFormatError(
            f"reference file {exc}; replace it (in a CRDS cache: `crds sync --check-files "
            "--repair-files`) or pass another file as override_<reftype>"
        ) from exc


def load_reference(
    ref: ResolvedReference | str | os.PathLike, reftype: str | None = None
) -> xr.Dataset:
    """Open a reference file as a lazy Dataset.

    Image-like arrays get dims ``(y, x)`` with absolute pixel coordinates: 0-based for
    full-frame references, and starting at 4 for science-area references (flat), so
    both align with exposures by coordinate. Stacks get a leading dim (``coeff`` for
    (inverse)linearity). refpix arrays get ``(channel, frequency)``. Tables and transforms
    (``phot_table``, ``decay_table``, ``inl_table``, ``coordinate_distortion_transform``)
    go to ``attrs``. ``attrs["meta"]`` holds the reference's meta; ``attrs["path"]`` the file.

    Raises
    ------
    WrongProductError
        If the file is not a Roman reference file; :class:`ReferenceTypeError` (a subclass,
        also a :class:`ReferenceMismatchError`) if it is not of ``reftype``.
    """
    path = ref.path if isinstance(ref, ResolvedReference) else os.fspath(ref)
    if reftype is None and isinstance(ref, ResolvedReference):
        reftype = ref.reftype
    if path is None:
        raise ValueError("cannot load a reference resolved as N/A")
    try:
        key = (file_identity(str(path)), reftype)
    except OSError:
        key = None  # open_roman_tree says what is wrong
    loaded = _LOADED.get(key) if key else None
    if loaded is None:
        loaded = _load(str(path), reftype)
        if key:
            if len(_LOADED) >= _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = loaded
    # a Dataset of its own each time: the variables (lazy, unread) are shared, the metadata
    # is copied, so no caller sees another's changes
    ds = loaded.copy(deep=False)
    ds.attrs = {**loaded.attrs, "meta": copy.deepcopy(loaded.attrs["meta"])}
    return ds


#: references loaded in this process, by file identity and reftype (a calibration loads the
#: same ~12 files each time; their YAML trees were ~0.15 s of a warm 512x512 run)
_LOADED: dict[tuple[Any, str | None], xr.Dataset] = {}
_LOADED_MAX = 64


def _load(path: str, reftype: str | None) -> xr.Dataset:
    with _open_reference(str(path)) as roman:
        tag = tag_of(roman) or ""
        name = tag.rsplit("/", 1)[-1].split("-")[0]
        file_reftype = _REFTYPE_BY_TAG.get(name, name)
        if "reference_files" not in tag:
            raise WrongProductError(
                f"{path}: not a Roman reference file (tag {tag or 'none'}); expected a "
                f"{reftype or 'reference'} file"
            )
        if reftype is not None and file_reftype != reftype.lower():
            raise ReferenceTypeError(
                f"{path}: this is a {file_reftype} reference file, but a {reftype} reference "
                f"was expected; pass it as override_{file_reftype} instead"
            )
        meta = to_plain(roman["meta"])
        variables: dict[str, xr.Variable] = {}
        attrs: dict[str, Any] = {"meta": meta, "path": str(path), "reftype": file_reftype}
        for key in roman:
            if key == "meta":
                continue
            node = roman[key]
            if hasattr(node, "shape") and hasattr(node, "dtype"):
                dims = _array_dims(file_reftype, key, tuple(node.shape))
                variables[key] = lazy_variable(str(path), ("roman", key), node, dims)
            else:
                attrs[key] = _materialize(node)
    coords: dict[str, Any] = {}
    sizes = {d: s for v in variables.values() for d, s in zip(v.dims, v.shape, strict=True)}
    for dim in ("y", "x"):
        if dim in sizes:
            # science-area references (the flat) start at pixel 4 of the full frame
            start = 4 if file_reftype == "flat" else 0
            coords[dim] = np.arange(start, start + sizes[dim], dtype=np.int64)
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    ds.encoding["source"] = str(path)
    return ds


def _array_dims(reftype: str, key: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """The dims a reference array gets, from its reference type and number of axes."""
    if reftype == "refpix" and len(shape) == 2:
        return ("channel", "frequency")
    by_rank = {3: ("coeff", "y", "x"), 2: ("y", "x"), 1: (f"{key}_index",)}
    # anything else, e.g. the epsf stamps: (focus, spectral type, position, y, x)
    return by_rank.get(len(shape), tuple(f"{key}_axis{i}" for i in range(len(shape))))


def align_to_exposure(
    ref: xr.Dataset, exposure: xr.Dataset, resolved: ResolvedReference | None = None
) -> xr.Dataset:
    """Select the reference pixels under ``exposure``'s ``y``/``x`` coordinates.

    One rule for every reference type: its pixels (absolute coordinates) must lie inside the
    area its type describes, the exposure's detector frame (:func:`romanxr.dataset.frame_shape`:
    dark, gain, mask...) or that frame's science area (the frame less its 4-pixel border: the
    flat), and they must cover every pixel of the exposure. A full-frame reference serves any
    cut-out of a full-frame exposure, and a cut-out reference serves the exposures inside it;
    a reference that reaches beyond its area, or does not cover the exposure, is a mismatch.

    Raises
    ------
    ReferenceMismatchError
        Names the file, its shape and the exposure's pixel range, and the override option.
    """
    _check_reference_shape(ref, exposure, resolved)
    indexers = {}
    for dim in ("y", "x"):
        if dim not in ref.dims or dim not in exposure.dims:
            continue
        want = np.asarray(exposure[dim].values)
        have = np.asarray(ref[dim].values)
        if want.size and (want.min() < have.min() or want.max() > have.max()):
            path = ref.attrs.get("path", "reference file")
            reftype = ref.attrs.get("reftype", resolved.reftype if resolved else "reference")
            shape = tuple(ref.sizes[d] for d in ("y", "x") if d in ref.dims)
            raise ReferenceMismatchError(
                f"{Path(path).name}: {reftype} reference has shape {shape} covering {dim} "
                f"{have.min()}..{have.max()}, but the exposure has {dim} "
                f"{want.min()}..{want.max()}; "
                f"use a {reftype} reference made for this detector size "
                f"(override_{reftype}=...)"
            )
        if not (want.size == have.size and np.array_equal(want, have)):
            indexers[dim] = want
    return ref.sel(indexers) if indexers else ref


def _check_reference_shape(
    ref: xr.Dataset, exposure: xr.Dataset, resolved: ResolvedReference | None
) -> None:
    if not all(d in ref.dims and d in exposure.dims for d in ("y", "x")):
        return
    frame = frame_shape(exposure)
    science = (frame[0] - 2 * BORDER, frame[1] - 2 * BORDER)
    own = (exposure.sizes["y"], exposure.sizes["x"])
    shape = (ref.sizes["y"], ref.sizes["x"])
    # science-area references (the flat) live in the frame less its border, the others in
    # the whole frame; a reference may be a cut-out of that area, never reach beyond it
    flat = ref.attrs.get("reftype", resolved.reftype if resolved else "") == "flat"
    low, high = (BORDER, science) if flat else (0, frame)
    inside = all(
        ref.sizes[d] == 0 or (int(ref[d].min()) >= low and int(ref[d].max()) < low + n)
        for d, n in zip(("y", "x"), high, strict=True)
    )
    if inside:
        return
    path = ref.attrs.get("path", "reference file")
    reftype = ref.attrs.get("reftype", resolved.reftype if resolved else "reference")
    raise ReferenceMismatchError(
        f"{Path(path).name}: {reftype} reference has shape {shape}, but the exposure's "
        f"detector frame is {frame} (science area {science}; the exposure itself {own}); "
        f"use a {reftype} reference made for this detector (override_{reftype}=...)"
    )


#: Reference types whose content depends on the optical element: their optical element must be
#: the exposure's. Others (dark, gain, distortion...) may be shared by several elements in the
#: CRDS rules, so their ``optical_element`` (a schema-required field) is not compared.
FILTER_DEPENDENT_REFTYPES = frozenset({"flat"})

#: Reference types that serve every detector in one file (e.g. the darkdecaysignal table has an
#: entry per detector): their ``meta.instrument.detector`` is not compared.
MULTI_DETECTOR_REFTYPES = frozenset(
    {"darkdecaysignal", "matable", "abvegaoffset", "apcorr", "skycells", "etc", "detectorstatus"}
)

#: Values of a reference's selector that mean "any" (never a mismatch).
_WILDCARDS = {"", "N/A", "ANY", "NONE"}


def _instrument_value(meta: Any, key: str) -> str | None:
    instrument = meta.get("instrument") if isinstance(meta, dict) else None
    value = instrument.get(key) if isinstance(instrument, dict) else None
    if value is None:
        return None
    value = str(value).strip().upper()
    return None if value in _WILDCARDS else value


def check_reference_matches(
    ref: xr.Dataset, exposure: xr.Dataset, resolved: ResolvedReference | None = None
) -> None:
    """Check that a reference was made for the exposure's detector and optical element.

    Compares ``meta.instrument.detector`` of the reference with the exposure's (except for the
    types in :data:`MULTI_DETECTOR_REFTYPES`, whose one file serves every detector), and for the
    filter-dependent types (:data:`FILTER_DEPENDENT_REFTYPES`: the flat) also
    ``meta.instrument.optical_element`` (metadata only, nothing is computed). A value missing
    on either side, or a wildcard (``N/A``, ``ANY``), is not compared.

    Raises
    ------
    ReferenceMismatchError
        Names the reference file, the field, both values and the override option.
    """
    ref_meta = ref.attrs.get("meta") or {}
    exp_meta = exposure.attrs.get("meta") or {}
    path = Path(str(ref.attrs.get("path", "reference file"))).name
    reftype = ref.attrs.get("reftype", resolved.reftype if resolved else "reference")
    exp_name = Path(str(exp_meta.get("filename") or exposure.encoding.get("source") or "")).name
    keys = [] if str(reftype).lower() in MULTI_DETECTOR_REFTYPES else ["detector"]
    if str(reftype).lower() in FILTER_DEPENDENT_REFTYPES:
        keys.append("optical_element")
    for key in keys:
        have = _instrument_value(ref_meta, key)
        want = _instrument_value(exp_meta, key)
        if have is not None and want is not None and have != want:
            raise ReferenceMismatchError(
                f"{path}: this {reftype} reference is for {key} {have}, but the exposure "
                f"{exp_name or '(unnamed)'} has meta.instrument.{key} {want}; "
                f"use a {reftype} reference for {want} (override_{reftype}=...)"
            )

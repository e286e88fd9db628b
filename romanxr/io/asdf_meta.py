"""The metadata tree of a written Roman product, brought into the shape its schema wants.

``attrs["meta"]`` of a Dataset holds plain values (and numpy ones picked up on the way); the
roman_datamodels schemas want astropy ``Time`` for times, Python scalars and lists, every
``cal_step`` entry, and ``photometry``/``wcs`` placeholders. :func:`prepare_meta` converts a
copy, guided by the schema of the product written.
"""

from __future__ import annotations

import copy
import datetime
import functools
from collections import UserList
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from romanxr._version import __version__
from romanxr.dataset import BORDER, CAL_STEP_KEYS
from romanxr.errors import InputError
from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.product import IMAGE_SCHEMA, RAMP_SCHEMA

__all__ = ["check_serialisable", "nondefault_coords", "plain_value", "prepare_meta"]

#: ``meta.calibration_software_name`` of every product romanxr writes
SOFTWARE_NAME = "romanxr"

PHOTOMETRY_KEYS = ("conversion_megajanskys", "conversion_megajanskys_uncertainty", "pixel_area")


@functools.cache
def _schema(uri: str) -> dict:
    asdf = prepare_asdf()

    return asdf.schema.load_schema(uri, resolve_references=True)


def _merge_schemas(schema: Mapping) -> tuple[dict, set[str], dict]:
    """Flatten allOf/anyOf: (properties, types, the schema itself)."""
    props: dict[str, list] = {}
    types: set[str] = set()
    stack = [schema]
    tags: list[str] = []
    items: list = []
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        t = node.get("type")
        if isinstance(t, str):
            types.add(t)
        elif isinstance(t, list):
            types.update(t)
        if "tag" in node:
            tags.append(str(node["tag"]))
        if "items" in node:
            items.append(node["items"])
        for name, sub in (node.get("properties") or {}).items():
            props.setdefault(name, []).append(sub)
        for key in ("allOf", "anyOf", "oneOf"):
            stack.extend(node.get(key) or [])
    merged = {name: {"allOf": subs} for name, subs in props.items()}
    return merged, types, {"tags": tags, "items": items}


def plain_value(value: Any) -> Any:
    """Schema-free conversion of a value (a leaf, or a tree of dicts and lists) to something
    asdf writes: numpy scalars as Python numbers, paths as strings, tuples as lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or _is_user_list(value):
        return [plain_value(v) for v in value]
    return value


def _is_user_list(value: Any) -> bool:
    return isinstance(value, UserList)


def _coerce(value: Any, schema: Mapping | None, path: str) -> Any:
    """Convert ``value`` to what ``schema`` expects (Time for time tags, lists, Python scalars)."""
    if schema is None:
        return plain_value(value)
    props, types, extra = _merge_schemas(schema)
    if any("time/time-" in t for t in extra["tags"]):
        from astropy.time import Time

        if isinstance(value, Time) or value is None:
            return value
        if isinstance(value, str | datetime.datetime | np.datetime64):
            try:
                return Time(value)
            except ValueError as exc:
                raise InputError(
                    f"attrs['meta'] field {path} must be a time (astropy Time or ISO string), "
                    f"got {value!r}"
                ) from exc
        return value
    if isinstance(value, Mapping):
        return {
            str(k): _coerce(v, props[k] if k in props else None, f"{path}.{k}")
            for k, v in value.items()
        }
    if isinstance(value, np.ndarray) and "array" in types:
        value = value.tolist()
    if isinstance(value, list | tuple) or _is_user_list(value):
        item_schema = extra["items"][0] if extra["items"] else None
        return [_coerce(v, item_schema, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if "integer" in types and isinstance(value, float) and value.is_integer():
        return int(value)
    return plain_value(value)


def prepare_meta(meta: Mapping, *, kind: str, filename: str) -> dict:
    """Build the ``meta`` tree of a ``wfi_image`` (kind "cal") or ``ramp`` (kind "ramp").

    Parameters
    ----------
    meta : mapping
        ``attrs["meta"]`` of a Dataset (not modified).
    kind : {"cal", "ramp"}
        Product to write.
    filename : str
        Goes to ``meta.filename``.

    Returns
    -------
    dict
        A deep copy converted to what roman_datamodels accepts: times as astropy ``Time``,
        numpy scalars and arrays as Python values; ``cal_step`` completed with
        ``"INCOMPLETE"``; for images ``photometry`` (None placeholders when absent) and ``wcs``
        (None when absent); ``model_type``, ``product_type`` (``"l2"`` for images, kept or
        ``"l1"`` for ramps), ``filename``, ``file_date`` (now) and
        ``calibration_software_name``/``_version`` (romanxr and its version) set.
    """
    from astropy.time import Time

    if not isinstance(meta, Mapping):
        raise InputError(
            "the Dataset has no Roman metadata in attrs['meta']; open files with "
            "romanxr.open_uncal()/open_cal() so the metadata can be written back"
        )
    wcs = meta.get("wcs")
    tree = copy.deepcopy({k: v for k, v in meta.items() if k != "wcs"})
    uri = IMAGE_SCHEMA if kind == "cal" else RAMP_SCHEMA
    meta_schema = _schema(uri)["properties"]["meta"]
    tree = _coerce(tree, meta_schema, "meta")
    cal_step = dict(tree.get("cal_step") or {})
    for key in CAL_STEP_KEYS:
        cal_step.setdefault(key, "INCOMPLETE")
    tree["cal_step"] = cal_step
    tree["filename"] = filename
    tree["file_date"] = Time.now()
    # the software that wrote the product, where romancal records its own name and version
    tree["calibration_software_name"] = SOFTWARE_NAME
    tree["calibration_software_version"] = __version__
    if kind == "cal":
        tree["model_type"] = "ImageModel"
        tree["product_type"] = "l2"
        photometry = dict(tree.get("photometry") or {})
        for key in PHOTOMETRY_KEYS:
            photometry.setdefault(key, None)
        tree["photometry"] = photometry
        tree["wcs"] = copy.deepcopy(wcs)
    else:
        tree["model_type"] = "RampModel"
        if not tree.get("product_type") or tree.get("product_type") == "l2":
            tree["product_type"] = "l1"
        if wcs is not None:
            tree["wcs"] = copy.deepcopy(wcs)
    return tree


def check_serialisable(extra: dict, source: str) -> None:
    """Fail before computing if step_parameters hold something ASDF cannot write."""
    import io

    asdf = prepare_asdf()
    try:
        asdf.AsdfFile({"romanxr": extra}).write_to(io.BytesIO(), all_array_storage="inline")
    except Exception as exc:
        raise InputError(
            f"{source}: attrs['step_parameters'] cannot be written to ASDF "
            f"({type(exc).__name__}: {exc}); keep parameters to numbers, strings, lists, dicts "
            "and None"
        ) from exc


def nondefault_coords(ds: Any, kind: str) -> dict[str, list[int]]:
    """y/x coordinates that the reader would not reconstruct (cut-outs)."""
    out = {}
    start = BORDER if kind == "cal" else 0
    for dim in ("y", "x"):
        if dim in ds.coords and ds[dim].ndim == 1:
            vals = np.asarray(ds[dim].values)
            if not np.array_equal(vals, np.arange(start, start + vals.size)):
                out[dim] = [int(v) for v in vals]
    return out

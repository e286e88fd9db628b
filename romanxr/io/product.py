"""What a Roman ASDF product is, as romanxr reads and writes it: tags, kinds and array tables.

One table per product: the dims each array gets when read, and the dtype it is stored with
when written. The reader (:mod:`romanxr.io.asdf_reader`) and the writer
(:mod:`romanxr.io.asdf_writer`) both take them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from romanxr.dataset import AMP33_DIM, RAMP_DIMS

__all__ = [
    "EXPECTED_TAG",
    "IMAGE_ARRAYS",
    "IMAGE_DTYPES",
    "IMAGE_OPTIONAL",
    "IMAGE_SCHEMA",
    "JUMP_INDICES_DIMS",
    "L2_ARRAY_DIMS",
    "PROVENANCE_ATTRS",
    "RAMP_ARRAYS",
    "RAMP_ARRAY_DIMS",
    "RAMP_DTYPES",
    "RAMP_SCHEMA",
    "SUPPORTED_MAJOR",
    "product_kind",
    "tag_of",
    "to_plain",
]

#: Dataset attrs romanxr's ASDF writer keeps in the top-level ``romanxr`` node and the reader
#: brings back: every step's effective parameters, where each came from (default, CRDS
#: ``pars-*`` reference, config file, command line/keyword) and which ``pars-*`` references
#: CRDS selected.
PROVENANCE_ATTRS = ("step_parameters", "parameter_sources", "crds_step_parameters")

#: Roman tag name (without version) -> product kind understood by romanxr.
KIND_BY_TAG = {
    "wfi_science_raw": "uncal",
    "ramp": "ramp",
    "wfi_image": "cal",
}
#: Product kind -> the tag name a file of that kind carries.
EXPECTED_TAG = {"uncal": "wfi_science_raw", "cal": "wfi_image", "ramp": "ramp"}
#: Newest major version of each tag this romanxr reads.
SUPPORTED_MAJOR = {"wfi_science_raw": 2, "wfi_image": 2, "ramp": 2}

#: Schemas the writer validates against (roman_datamodels 1.1).
IMAGE_SCHEMA = "asdf://stsci.edu/datamodels/roman/schemas/wfi_image-2.1.0"
RAMP_SCHEMA = "asdf://stsci.edu/datamodels/roman/schemas/ramp-2.1.0"

_YX = ("y", "x")
_F16 = np.float16

#: Level-2 (``wfi_image``) arrays: name -> (dims, storage dtype). ``frame_y``/``frame_x``
#: index the full frame (with the border) and ``ref_col``/``ref_row`` the 4 border
#: columns/rows, so they never clash with the trimmed image dims ``y``/``x``.
IMAGE_ARRAYS: dict[str, tuple[tuple[str, ...], Any]] = {
    "data": (_YX, np.float32),
    "dq": (_YX, np.uint32),
    **{name: (_YX, _F16) for name in ("err", "var_poisson", "var_rnoise", "var_flat")},
    **{name: (_YX, _F16) for name in ("chisq", "dumo")},
    "amp33": (("resultant", "frame_y", AMP33_DIM), np.uint16),
    "border_ref_pix_left": (("resultant", "frame_y", "ref_col"), np.float32),
    "border_ref_pix_right": (("resultant", "frame_y", "ref_col"), np.float32),
    "border_ref_pix_top": (("resultant", "ref_row", "frame_x"), np.float32),
    "border_ref_pix_bottom": (("resultant", "ref_row", "frame_x"), np.float32),
    "dq_border_ref_pix_left": (("frame_y", "ref_col"), np.uint32),
    "dq_border_ref_pix_right": (("frame_y", "ref_col"), np.uint32),
    "dq_border_ref_pix_top": (("ref_row", "frame_x"), np.uint32),
    "dq_border_ref_pix_bottom": (("ref_row", "frame_x"), np.uint32),
}
#: wfi_image arrays the schema does not require.
IMAGE_OPTIONAL = ("var_rnoise", "var_flat")

#: Ramp (``RampModel``, saved intermediates) arrays: name -> (dims, storage dtype).
RAMP_ARRAYS: dict[str, tuple[tuple[str, ...], Any]] = {
    "data": (RAMP_DIMS, np.float32),
    "pixeldq": (_YX, np.uint32),
    "groupdq": (RAMP_DIMS, np.uint8),
    "amp33": (("resultant", "y", AMP33_DIM), np.uint16),
    **{k: v for k, v in IMAGE_ARRAYS.items() if "border_ref_pix" in k},
}

#: Dims of each Level-2 array, as the reader gives them.
L2_ARRAY_DIMS = {name: dims for name, (dims, _) in IMAGE_ARRAYS.items()}
#: Storage dtype of each Level-2 array.
IMAGE_DTYPES = {name: dtype for name, (_, dtype) in IMAGE_ARRAYS.items()}
#: Dims of each ramp array.
RAMP_ARRAY_DIMS = {name: dims for name, (dims, _) in RAMP_ARRAYS.items()}
#: Storage dtype of each ramp array.
RAMP_DTYPES = {name: dtype for name, (_, dtype) in RAMP_ARRAYS.items()}
#: Default dims of the extra ``jump_indices`` array (rows of (resultant, y, x)).
JUMP_INDICES_DIMS = ("jump", "jump_axis")


def to_plain(obj: Any) -> Any:
    """Convert a Roman/ASDF node tree to nested ``dict``/``list`` (leaves kept as they are)."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        # lists, tuples and asdf's lazy list nodes (UserList) alike
        return [to_plain(v) for v in obj]
    return obj


def tag_of(node: Any) -> str | None:
    """The YAML tag of a node of an opened ASDF tree (e.g. the ``roman`` node), or None."""
    tag = getattr(node, "tag", None) or getattr(node, "_tag", None)
    if tag is None and hasattr(node, "_read_tag"):
        tag = node._read_tag
    return str(tag) if tag else None


def product_kind(tag: str | None) -> tuple[str | None, str | None, int | None]:
    """Split a Roman tag into (kind, name, major version)."""
    if not tag:
        return None, None, None
    name_version = tag.rsplit("/", 1)[-1]
    name, _, version = name_version.partition("-")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if name.endswith("_ref") or "reference_files" in tag:
        return "reference", name, major
    return KIND_BY_TAG.get(name), name, major

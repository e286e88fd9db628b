"""Reference files: resolution (explicit > override > CRDS) and loading as Datasets.

Typical use inside a step::

    ref = resolve_reference("saturation", ds, explicit=override_saturation, resolver=resolver)
    sat = load_reference(ref)                       # lazy Dataset, dims (y, x) on absolute pixels
    sat = align_to_exposure(sat, ds, ref)           # the pixels of ds; typed error if no fit
"""

from __future__ import annotations

from romanxr.refs.load import align_to_exposure, check_reference_matches, load_reference
from romanxr.refs.resolve import (
    ReferenceResolver,
    ResolvedReference,
    default_resolver,
    resolve_reference,
)

__all__ = [
    "ReferenceResolver",
    "ResolvedReference",
    "align_to_exposure",
    "check_reference_matches",
    "default_resolver",
    "load_reference",
    "resolve_reference",
]

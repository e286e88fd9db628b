"""CRDS step-parameter references (``pars-<step class>``): which file, and what it sets.

stpipe asks CRDS, for every step of a pipeline and for the pipeline itself, for a reference of
type ``pars-<step class name in lower case>`` (``pars-rampfitstep``, ``pars-exposurepipeline``)
and uses what it finds as a layer of parameters above the step's defaults and below a
parameter file and the command line. Such a reference is an stpipe parameter file in ASDF:
``class``, ``name``, ``parameters`` (and, for a pipeline, a ``steps`` list of the same), with a
``meta`` block describing it for CRDS.

This module is that look-up for romanxr, through the same crds client as every other
reference (:func:`romanxr.refs.crds_client.crds_best_reference`). As in stpipe, a reference
type the context has no rules for, a context saying "N/A", or CRDS not being configured at all
means "no step parameters from CRDS" (logged at debug level), not an error; a file CRDS
selects that cannot be read is an error. ``STPIPE_DISABLE_CRDS_STEPPARS`` is honoured as stpipe
honours it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from romanxr.errors import ReferenceFormatError, ReferenceNotFoundError

__all__ = [
    "DISABLE_ENV",
    "StepParsReference",
    "crds_step_parameters",
    "read_step_parameters",
    "steppars_disabled",
]

log = logging.getLogger("romanxr")

#: stpipe's environment variable that turns the look-up off (``true``/``t``/``yes``/``y``)
DISABLE_ENV = "STPIPE_DISABLE_CRDS_STEPPARS"
_TRUTHS = ("true", "True", "t", "yes", "y")


@dataclass(frozen=True)
class StepParsReference:
    """One ``pars-*`` reference CRDS selected, and the parameters it holds.

    Attributes
    ----------
    reftype : str
        ``pars-<step class lower>``.
    path : str
        The file.
    context : str
        The CRDS context that selected it.
    parameters : dict
        Its ``parameters`` (the step's own, or the pipeline's).
    steps : dict
        For a pipeline's reference: ``{step name: parameters}`` of its ``steps`` list.
    """

    reftype: str
    path: str
    context: str
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file's name, as CRDS knows it."""
        return Path(self.path).name


def steppars_disabled(disable: bool | None = None) -> bool:
    """Whether the look-up is off: ``disable`` when given, else ``$STPIPE_DISABLE_CRDS_STEPPARS``
    (true for ``true``, ``t``, ``yes``, ``y``, as stpipe reads it)."""
    if disable is not None:
        return bool(disable)
    return os.environ.get(DISABLE_ENV, "") in _TRUTHS


def _entry(node: Any, path: Path, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(node, Mapping):
        raise ReferenceFormatError(
            f"step-parameter reference {path}: {where} must be a mapping with class, name and "
            f"parameters; replace the file (or pass --disable-crds-steppars)"
        )
    name = node.get("name") or node.get("class") or ""
    params = node.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise ReferenceFormatError(
            f"step-parameter reference {path}: {where}.parameters must be a mapping, got "
            f"{type(params).__name__}; replace the file (or pass --disable-crds-steppars)"
        )
    return str(name), {str(k): v for k, v in params.items()}


def read_step_parameters(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, dict]]:
    """The parameters of an stpipe parameter file read as a ``pars-*`` reference.

    Returns
    -------
    parameters : dict
        Its own ``parameters``.
    steps : dict
        ``{step name: parameters}`` of its ``steps`` list (a pipeline's reference).

    Raises
    ------
    ReferenceFormatError
        Not ASDF, or not laid out as an stpipe parameter file.
    """
    import asdf

    path = Path(os.fspath(path))
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            tree = {k: af.tree[k] for k in af.tree if not str(k).startswith("asdf_")}
    except Exception as exc:  # asdf raises many kinds for a bad file
        raise ReferenceFormatError(
            f"step-parameter reference {path} cannot be read as ASDF ({exc}); replace the "
            f"file in the CRDS cache (or pass --disable-crds-steppars)"
        ) from None
    _, parameters = _entry(tree, path, "the file")
    steps: dict[str, dict[str, Any]] = {}
    entries = tree.get("steps") or []
    if isinstance(entries, Mapping):
        entries = [{"name": k, **(v if isinstance(v, Mapping) else {})} for k, v in entries.items()]
    for i, node in enumerate(entries):
        name, params = _entry(node, path, f"steps[{i}]")
        steps.setdefault(name, {}).update(params)
    return parameters, steps


def crds_step_parameters(
    reftypes: Iterable[str],
    meta: Mapping[str, Any],
    *,
    context: str | None = None,
    crds_path: str | os.PathLike | None = None,
    server_url: str | None = None,
) -> dict[str, StepParsReference]:
    """Look up each ``pars-*`` reference type for an exposure; those CRDS has a file for.

    Parameters
    ----------
    reftypes : iterable of str
        ``pars-<step class lower>`` types, e.g. ``["pars-rampfitstep"]``.
    meta : mapping
        The exposure's ``meta`` tree (CRDS selects ``pars-*`` files by its start time).
    context, crds_path, server_url
        As for :func:`romanxr.refs.crds_client.crds_best_reference`.

    Returns
    -------
    dict
        ``{reftype: StepParsReference}`` for the types CRDS selected a file for.

    Raises
    ------
    ReferenceFormatError
        A selected file cannot be read as a parameter file.
    """
    from romanxr.refs.crds_client import crds_best_reference

    found: dict[str, StepParsReference] = {}
    for reftype in reftypes:
        reftype = reftype.lower()
        try:
            path, final = crds_best_reference(
                reftype, meta, context=context, crds_path=crds_path, server_url=server_url
            )
        except ReferenceNotFoundError as exc:  # CRDS not configured, no rules: none (stpipe)
            log.debug("%s: no step parameters from CRDS (%s)", reftype.upper(), exc)
            continue
        if path is None:
            log.debug("No %s reference files found.", reftype.upper())
            continue
        parameters, steps = read_step_parameters(path)
        log.info("%s parameters found: %s", reftype.upper(), path)
        found[reftype] = StepParsReference(reftype, path, final, parameters, steps)
    return found

"""Resolve which reference file a step uses: explicit argument > user override > CRDS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.errors import ReferenceNotFoundError

__all__ = [
    "ReferenceResolver",
    "ResolvedReference",
    "default_resolver",
    "resolve_reference",
]


@dataclass(frozen=True)
class ResolvedReference:
    """Where a reference file came from.

    Attributes
    ----------
    reftype : str
        CRDS reference type (lower case).
    path : str or None
        Local file path; ``None`` when CRDS says the type does not apply ("N/A").
    source : {"argument", "override", "crds"}
        Which rule chose it.
    context : str or None
        The CRDS context (``roman_NNNN.pmap``) when CRDS chose it.
    """

    reftype: str
    path: str | None
    source: str
    context: str | None = None

    @property
    def name(self) -> str:
        """The file name recorded in ``meta.ref_file`` (``"N/A"`` when not applicable)."""
        return "N/A" if self.path is None else Path(self.path).name

    @property
    def recorded(self) -> str:
        """What ``meta.ref_file`` records: ``crds://<file>`` for a file CRDS chose (stpipe's
        form), else the file name (``"N/A"`` when not applicable)."""
        if self.source == "crds" and self.path is not None:
            return f"crds://{self.name}"
        return self.name


@dataclass
class ReferenceResolver:
    """Resolve reference files for an exposure.

    Parameters
    ----------
    overrides : mapping of reftype -> path, optional
        User overrides (``override_<reftype>`` in stpipe spelling), used before CRDS.
    context : str, optional
        Pinned CRDS context (e.g. ``roman_0055.pmap``). Default: ``CRDS_CONTEXT`` or the
        cache's/server's operational context.
    crds_path : path, optional
        CRDS cache folder; default ``$CRDS_PATH``.
    server_url : str, optional
        CRDS server; default ``$CRDS_SERVER_URL``.
    option_hints : mapping of reftype -> str, optional
        How the caller's users spell the option that replaces a reference (e.g.
        ``--steps.flatfield.override_flat``), named in error messages next to the
        ``override_<reftype>`` keyword. The pipeline fills it in from its step registry.
    """

    overrides: Mapping[str, str | os.PathLike] = field(default_factory=dict)
    context: str | None = None
    crds_path: str | os.PathLike | None = None
    server_url: str | None = None
    option_hints: Mapping[str, str] = field(default_factory=dict)

    def resolve(
        self, reftype: str, exposure: xr.Dataset | Mapping[str, Any], explicit: Any = None
    ) -> ResolvedReference:
        """Resolve one reference type for ``exposure`` (a Dataset or its ``meta`` tree).

        ``explicit`` (a step's ``override_<reftype>`` argument) wins, then this resolver's
        ``overrides`` (keys ``<reftype>`` or ``override_<reftype>``, any case), then CRDS
        (:func:`romanxr.refs.crds_client.crds_best_reference`). The string ``"N/A"`` as
        explicit or override means "not applicable" (path ``None``), as in stpipe.
        """
        reftype = reftype.lower()
        hint = self.option_hints.get(reftype)
        if explicit is not None:
            if _is_na(explicit):
                return ResolvedReference(reftype, None, "argument")
            path = _existing(explicit, reftype, "argument", hint)
            return ResolvedReference(reftype, path, "argument")
        override = None
        for key, value in (self.overrides or {}).items():
            if str(key).lower().removeprefix("override_") == reftype:
                override = value
        if override is not None:
            if _is_na(override):
                return ResolvedReference(reftype, None, "override")
            path = _existing(override, reftype, "override", hint)
            return ResolvedReference(reftype, path, "override")
        meta = exposure.attrs.get("meta", {}) if isinstance(exposure, xr.Dataset) else exposure
        from romanxr.refs.crds_client import crds_best_reference

        path, context = crds_best_reference(
            reftype,
            meta,
            context=self.context,
            crds_path=self.crds_path,
            server_url=self.server_url,
            option_hint=hint,
        )
        return ResolvedReference(reftype, path, "crds", context)


def _is_na(value: Any) -> bool:
    return isinstance(value, str) and value.strip().upper() == "N/A"


def _existing(path: Any, reftype: str, source: str, hint: str | None) -> str:
    p = Path(os.fspath(path)).expanduser()
    if p.is_dir():
        raise ReferenceNotFoundError(
            f"{reftype} reference given as {source} is a directory, not a file: {p}; pass the "
            f"path of the {reftype} reference file itself as override_{reftype}"
            + (f" ({hint})" if hint else "")
        )
    if not p.is_file():
        option = f"override_{reftype}"
        raise ReferenceNotFoundError(
            f"{reftype} reference given as {source} does not exist: {p}; fix the path passed as "
            f"{option}" + (f" ({hint})" if hint else "")
        )
    return str(p)


def default_resolver() -> ReferenceResolver:
    """A resolver with no overrides, configured from the environment (``CRDS_*``)."""
    return ReferenceResolver()


def resolve_reference(
    reftype: str,
    exposure: xr.Dataset | Mapping[str, Any],
    *,
    explicit: Any = None,
    resolver: ReferenceResolver | None = None,
) -> ResolvedReference:
    """Resolve ``reftype`` for ``exposure``: explicit > ``resolver`` overrides > CRDS.

    Raises
    ------
    ReferenceNotFoundError
        Names the reference type, the CRDS context, ``CRDS_PATH`` and the override option.
    """
    return (resolver or default_resolver()).resolve(reftype, exposure, explicit)

"""Write a complete, offline CRDS cache for Roman WFI from a set of reference files.

The cache has the layout the real ``crds`` client expects under ``CRDS_PATH``::

    mappings/roman/roman_NNNN.pmap          pipeline context (selects the instrument)
    mappings/roman/roman_wfi_NNNN.imap      instrument mapping (selects the .rmap by reftype)
    mappings/roman/roman_wfi_<type>_NNNN.rmap   one per reference type
    references/roman/wfi/<file>.asdf        the reference files (hard links, else copies)
    config/roman/server_config              what crds would have cached from the server
    config/roman/ref_cache_subdir_mode      "instrument"

Each ``.rmap`` selects on the parameters crds' own type specification lists for that
reference type (``crds.roman`` specs: detector; detector + optical element for flat and
distortion; detector + exposure type for dark and readnoise; only the time for
darkdecaysignal), then by ``USEAFTER`` on ``roman.meta.exposure.start_time``. The selection
values of a file come from its own ``meta`` (``instrument.detector``,
``instrument.optical_element``, ``exposure.p_exptype``/``exposure.type``, ``useafter``).
Mapping checksums are computed the way crds checks them, so crds loads the rules unchanged.

Use :meth:`LocalCrdsCache.environ` (a dict for ``subprocess`` / ``os.environ``) or
:meth:`LocalCrdsCache.activate` (a context manager for in-process runs, romancal included).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from romanxr.errors import InputError, WrongProductError
from romanxr.testing.crds_mappings import (
    Rows,
    known_reftypes,
    parkeys,
    write_config,
    write_mappings,
)

if TYPE_CHECKING:
    from romanxr.refs.resolve import ReferenceResolver

__all__ = [
    "OFFLINE_SERVER_URL",
    "REFERENCE_MODELS",
    "LocalCrdsCache",
    "build_local_crds_cache",
    "write_fake_reference",
    "write_step_parameters_reference",
]

#: The server URL a local cache is used with: crds treats "serverless" URLs as no server.
OFFLINE_SERVER_URL = "https://roman-serverless-mode.stsci.edu"

#: roman_datamodels class name of each reference type romanxr uses
REFERENCE_MODELS = {
    "mask": "MaskRefModel",
    "saturation": "SaturationRefModel",
    "refpix": "RefpixRefModel",
    "darkdecaysignal": "DarkdecaysignalRefModel",
    "linearity": "LinearityRefModel",
    "inverselinearity": "InverselinearityRefModel",
    "integralnonlinearity": "IntegralnonlinearityRefModel",
    "readnoise": "ReadnoiseRefModel",
    "gain": "GainRefModel",
    "dark": "DarkRefModel",
    "distortion": "DistortionRefModel",
    "photom": "WfiImgPhotomRefModel",
    "flat": "FlatRefModel",
    "apcorr": "ApcorrRefModel",
    "epsf": "EpsfRefModel",
}

_CONTEXT_RE = re.compile(r"^roman_(\d{4})\.pmap$")
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,120}$")
_DEFAULT_USEAFTER = "2000-01-01 00:00:00"


@dataclass(frozen=True)
class LocalCrdsCache:
    """A CRDS cache written by :func:`build_local_crds_cache`.

    Attributes
    ----------
    path : Path
        The cache root (``CRDS_PATH``).
    context : str
        Its operational context, e.g. ``roman_9000.pmap``.
    references : dict of str -> tuple of Path
        Per reference type, the files in the cache.
    selections : dict of str -> tuple of (tuple, str, str)
        Per reference type, ``(match values, useafter, file name)`` as written in the rmap.
    """

    path: Path
    context: str
    references: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    selections: dict[str, tuple[tuple[tuple[str, ...], str, str], ...]] = field(
        default_factory=dict
    )

    @property
    def mappings_dir(self) -> Path:
        return self.path / "mappings" / "roman"

    @property
    def references_dir(self) -> Path:
        return self.path / "references" / "roman" / "wfi"

    @property
    def config_dir(self) -> Path:
        return self.path / "config" / "roman"

    def environ(self, *, pin_context: bool = True) -> dict[str, str]:
        """Environment variables that make crds (and romancal via stpipe) use this cache.

        ``CRDS_PATH`` is the cache, ``CRDS_SERVER_URL`` a serverless URL, ``CRDS_MODE`` local
        and ``CRDS_CONFIG_URI`` the cache's own configuration folder, so crds in a fresh
        process never tries the network. crds lower-cases ``CRDS_CONFIG_URI``, so for a cache
        path with capitals it is left out; crds then makes one failed attempt to reach the
        serverless URL and falls back to the cache's configuration. (In-process,
        :meth:`activate` and romanxr's own lookups hand crds the configuration directly.)
        ``CRDS_CONTEXT`` pins this cache's context unless ``pin_context`` is False.
        """
        env = {
            "CRDS_PATH": str(self.path),
            "CRDS_SERVER_URL": OFFLINE_SERVER_URL,
            "CRDS_MODE": "local",
            "CRDS_OBSERVATORY": "roman",
        }
        config_dir = str(self.config_dir)
        if config_dir == config_dir.lower():  # crds lower-cases CRDS_CONFIG_URI
            env["CRDS_CONFIG_URI"] = config_dir
        if pin_context:
            env["CRDS_CONTEXT"] = self.context
        return env

    @contextmanager
    def activate(self, *, pin_context: bool = True) -> Iterator[LocalCrdsCache]:
        """Context manager: crds in this process uses the cache inside the block.

        crds' cached configuration is reset on entry and restored on exit, together with the
        ``CRDS_*`` environment variables, so code after the block sees its old settings.
        """
        from romanxr.refs.crds_client import crds_environment

        with crds_environment(self.environ(pin_context=pin_context), lock=False):
            yield self

    def resolver(self, **kwargs: Any) -> ReferenceResolver:
        """A :class:`~romanxr.refs.resolve.ReferenceResolver` reading this cache."""
        from romanxr.refs.resolve import ReferenceResolver

        kwargs.setdefault("context", self.context)
        kwargs.setdefault("crds_path", str(self.path))
        kwargs.setdefault("server_url", OFFLINE_SERVER_URL)
        return ReferenceResolver(**kwargs)


# ------------------------------------------------------------------------------------------


def _read_meta(path: Path) -> dict[str, Any]:
    from romanxr.io.asdf_file import open_roman_tree

    pars = _parameter_file_meta(path)
    if pars is not None:
        return pars
    from romanxr.io.product import to_plain

    with open_roman_tree(path) as (_, roman):
        return to_plain(roman["meta"])


def _parameter_file_meta(path: Path) -> dict[str, Any] | None:
    """The top-level ``meta`` of an stpipe parameter file (a ``pars-*`` reference), or None
    for any other file."""
    from romanxr.io.asdf_setup import prepare_asdf

    if path.suffix.lower() != ".asdf":
        return None
    asdf = prepare_asdf()
    try:
        # no schema validation here: a Roman reference is validated once, by
        # open_roman_tree, when _read_meta reads it (validating it here too cost ~0.3 s of
        # every cache build)
        with asdf.config_context() as cfg:
            cfg.validate_on_read = False
            with asdf.open(path, lazy_load=True, memmap=False, lazy_tree=False) as af:
                tree = af.tree
                if "roman" in tree or "parameters" not in tree or "class" not in tree:
                    return None
                return dict(tree.get("meta") or {})
    except Exception:  # not ASDF: open_roman_tree says why
        return None


def write_step_parameters_reference(
    path: str | os.PathLike,
    step_class: str,
    parameters: Mapping[str, Any],
    *,
    steps: Sequence[Mapping[str, Any]] = (),
    useafter: str = "2000-01-01T00:00:00",
) -> Path:
    """Write a CRDS step-parameter reference (``pars-<step class lower>``) as stpipe reads it.

    The layout is stpipe's parameter file (``class``, ``name``, ``parameters``, and for a
    pipeline a ``steps`` list of ``{class, name, parameters}``) with the ``meta`` block stpipe's
    ``StepConfig.to_asdf(include_metadata=True)`` writes for CRDS (``reftype``,
    ``useafter``...), so both stpipe's ``config_parser.load_config_file`` and
    :func:`build_local_crds_cache` take it.

    Parameters
    ----------
    path : path
        Output ``.asdf`` file.
    step_class : str
        The step's full class name, e.g. ``romancal.ramp_fitting.ramp_fit_step.RampFitStep``.
    parameters : mapping
        The parameters it sets.
    steps : sequence of mappings, optional
        For a pipeline: ``{class, name, parameters}`` of its steps.
    useafter : str
        ISO time from which CRDS selects it.

    Returns
    -------
    Path
    """
    import asdf

    short = step_class.rsplit(".", 1)[-1]
    tree: dict[str, Any] = {
        "class": step_class,
        "name": short,
        "parameters": dict(parameters),
        "meta": {
            "author": "romanxr.testing",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "description": f"Parameters for calibration step {step_class}",
            "instrument": {"name": "WFI"},
            "origin": "romanxr.testing",
            "pedigree": "DUMMY",
            "reftype": f"pars-{short.lower()}",
            "telescope": "ROMAN",
            "useafter": useafter,
        },
    }
    if steps:
        tree["steps"] = [dict(s) for s in steps]
    out = Path(os.fspath(path))
    asdf.AsdfFile(tree).write_to(out)
    return out


def _get(meta: Mapping[str, Any], dotted: str) -> Any:
    node: Any = meta
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _match_value(meta: Mapping[str, Any], parkey: str) -> str:
    """The rmap match value of one parameter for a reference with ``meta``."""
    dotted = parkey.lower().removeprefix("roman.meta.")
    if dotted == "exposure.type":
        p_exptype = _get(meta, "exposure.p_exptype")
        if p_exptype:
            parts = [p.strip() for p in str(p_exptype).split("|") if p.strip()]
            if parts:
                return "|".join(parts)
    value = _get(meta, dotted)
    if value is None or (isinstance(value, str) and value.strip() in ("", "?")):
        return "N/A"  # crds: this parameter does not matter for this file
    return str(getattr(value, "value", value))


def _useafter(meta: Mapping[str, Any]) -> str:
    value = _get(meta, "useafter")
    if value is None:
        return _DEFAULT_USEAFTER
    if hasattr(value, "to_datetime"):
        value = value.to_datetime()
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value).replace("T", " ")
    return text.split(".")[0]


def _expand(
    references: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]]
    | Iterable[str | os.PathLike],
) -> list[tuple[str | None, Path]]:
    items: list[tuple[str | None, Path]] = []
    if isinstance(references, Mapping):
        for reftype, value in references.items():
            paths = [value] if isinstance(value, str | os.PathLike) else list(value)
            items.extend((str(reftype).lower(), Path(os.fspath(p))) for p in paths)
    else:
        items.extend((None, Path(os.fspath(p))) for p in references)
    return items


def _place(src: Path, dest: Path, link: bool) -> None:
    if dest.exists():
        dest.unlink()
    if link:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copy2(src, dest)


def build_local_crds_cache(
    crds_path: str | os.PathLike,
    references: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]]
    | Iterable[str | os.PathLike],
    *,
    context: str = "roman_9000.pmap",
    not_applicable: Iterable[str] = (),
    step_parameters: bool = True,
    link: bool = True,
) -> LocalCrdsCache:
    """Write a self-contained CRDS cache for Roman WFI that resolves with no server at all.

    Parameters
    ----------
    crds_path : path
        Folder for the cache (created; existing mapping/config files of the same names are
        replaced).
    references : mapping of reftype -> path(s), or iterable of paths
        The reference files. With a plain list, each file's type is its ``meta.reftype``.
        Several files of one type (e.g. one per detector, or per useafter date) are
        selected by their own metadata.
    context : str
        Name of the pipeline context to write, ``roman_NNNN.pmap``; the instrument and
        reference mappings get the same serial number. It becomes the cache's operational
        context. The default serial 9000 stays clear of real Roman contexts.
    not_applicable : iterable of str
        Reference types whose rules say "N/A" for every exposure (as the real Roman rules
        do for some types in some contexts).
    step_parameters : bool
        Also write "N/A" rules for every other ``pars-<step>`` type crds knows, so that
        stpipe's look-up of step parameters (romancal does one per step) finds "none"
        quietly instead of logging a CRDS error. Step-parameter references themselves
        (:func:`write_step_parameters_reference`) are given like any other file, under
        ``pars-<step class lower>``.
    link : bool
        Hard-link the files into the cache when possible (else copy).

    Returns
    -------
    LocalCrdsCache

    Raises
    ------
    InputError
        Bad context name, unknown reference type, or two files competing for the same
        selection (same match values and useafter).
    WrongProductError
        A file's ``meta.reftype`` disagrees with the type it was given as.
    """
    found = _CONTEXT_RE.match(context)
    if not found:
        raise InputError(
            f"context {context!r} is not a Roman pipeline context name; use roman_NNNN.pmap "
            f"(four digits), e.g. roman_9000.pmap"
        )
    root = Path(os.fspath(crds_path)).expanduser().absolute()
    cache = LocalCrdsCache(root, context)
    for folder in (cache.mappings_dir, cache.references_dir, cache.config_dir):
        folder.mkdir(parents=True, exist_ok=True)
    rows, placed = _place_references(cache, references, link)
    _add_not_applicable(rows, placed, not_applicable, step_parameters)
    mappings = write_mappings(cache.mappings_dir, context, found.group(1), rows)
    write_config(cache.config_dir, context, mappings)
    for reftype, paths in placed.items():
        cache.references[reftype] = tuple(paths)
        cache.selections[reftype] = tuple(
            (key, date, fname)
            for key, dates in sorted(rows.get(reftype, {}).items())
            for date, fname in sorted(dates.items())
        )
    from romanxr.refs.crds_client import clear_crds_cache

    clear_crds_cache()  # lookups cached before a rebuild of the same folder are stale
    return cache


def _place_references(
    cache: LocalCrdsCache,
    references: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]]
    | Iterable[str | os.PathLike],
    link: bool,
) -> tuple[Rows, dict[str, list[Path]]]:
    """Put every reference file into the cache; return its rules and the placed paths."""
    rows: Rows = {}
    placed: dict[str, list[Path]] = {}
    used_names: dict[str, Path] = {}
    for given_type, src in _expand(references):
        if not src.is_file():
            raise FileNotFoundError(f"reference file {src} does not exist")
        meta = _read_meta(src)
        reftype = _file_reftype(src, given_type, str(meta.get("reftype", "")).lower())
        match_keys, _ = parkeys(reftype)
        key = tuple(_match_value(meta, k) for k in match_keys)
        name = src.name if _SAFE_NAME_RE.match(src.name) else None
        if name is None or (name in used_names and used_names[name] != src.resolve()):
            stem = "_".join(v.split("|")[0].lower() for v in key if v != "N/A")
            name = f"roman_wfi_{reftype}_{stem or 'all'}_{len(used_names):04d}.asdf"
        _add_rule(rows, src, reftype, match_keys, key, _useafter(meta), name)
        dest = cache.references_dir / name
        if used_names.get(name) != src.resolve():
            _place(src, dest, link)
            used_names[name] = src.resolve()
        placed.setdefault(reftype, []).append(dest)
    return rows, placed


def _file_reftype(src: Path, given_type: str | None, file_type: str) -> str:
    """The reference type of ``src``: as given, else its ``meta.reftype`` (they must agree)."""
    reftype = given_type or file_type
    if not reftype:
        raise WrongProductError(
            f"{src}: meta.reftype is missing; pass the file as references={{reftype: path}}"
        )
    if given_type and file_type and file_type != given_type:
        raise WrongProductError(
            f"{src}: a {file_type} reference file given as {given_type}; list it under "
            f"{file_type!r}"
        )
    return reftype


def _add_rule(
    rows: Rows,
    src: Path,
    reftype: str,
    match_keys: Sequence[str],
    key: tuple[str, ...],
    date: str,
    name: str,
) -> None:
    """Add the rule selecting ``name``; two files for one selection are an error."""
    existing = rows.setdefault(reftype, {}).setdefault(key, {})
    if date in existing and existing[date] != name:
        keys = ", ".join(k.lower().removeprefix("roman.meta.") for k in match_keys)
        raise InputError(
            f"{src}: {reftype} files {existing[date]} and {name} compete for the same "
            f"rule from useafter {date}: CRDS selects {reftype} by "
            f"{keys or 'useafter only (one file serves every detector)'}, and both have "
            f"{dict(zip(match_keys, key, strict=True)) or 'the same useafter'}; give them "
            f"different values or useafter dates"
        )
    existing[date] = name


def _add_not_applicable(
    rows: Rows,
    placed: dict[str, list[Path]],
    not_applicable: Iterable[str],
    step_parameters: bool,
) -> None:
    """ "N/A" rules for the types listed (and every ``pars-`` type with ``step_parameters``)."""
    na_types = [t.lower() for t in not_applicable]
    if step_parameters:
        na_types += [t for t in known_reftypes() if t.startswith("pars-") and t not in rows]
    for reftype in na_types:
        if reftype in rows:
            raise InputError(
                f"{reftype} is listed in not_applicable but files of that type were given"
            )
        match_keys, _ = parkeys(reftype)
        rows[reftype] = {tuple("N/A" for _ in match_keys): {_DEFAULT_USEAFTER: "N/A"}}
        if not reftype.startswith("pars-"):
            placed.setdefault(reftype, [])


def write_fake_reference(
    path: str | os.PathLike,
    reftype: str,
    detector: str = "WFI01",
    *,
    shape: tuple[int, int] = (8, 8),
    arrays: Mapping[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """Write a small ``reftype`` reference made by roman_datamodels' ``create_fake_data``.

    For CRDS plumbing tests: the arrays are roman_datamodels' fake values, not meaningful.

    Parameters
    ----------
    path : path
        Output file.
    reftype : str
        One of :data:`REFERENCE_MODELS`.
    detector : str
        ``meta.instrument.detector``.
    shape : (int, int)
        Pixel shape (y, x) of the image arrays; (inverse)linearity coefficients get
        ``(2, y, x)``.
    arrays : mapping of str -> array, optional
        Replace these top-level arrays (e.g. ``{"data": ...}``) before saving.
    **meta
        More metadata by dotted name below ``meta``, e.g. ``useafter="2027-01-01T00:00:00"``
        (a string, converted to a Time), ``**{"instrument.optical_element": "F158"}``.

    Returns
    -------
    Path
    """
    import numpy as np

    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()
    from astropy.time import Time

    try:
        cls = getattr(dm, REFERENCE_MODELS[reftype.lower()])
    except KeyError:
        raise InputError(
            f"no fake-reference recipe for {reftype!r}; known: {sorted(REFERENCE_MODELS)}"
        ) from None
    ny, nx = shape
    if reftype.lower() in ("linearity", "inverselinearity"):
        model = cls.create_fake_data(shape=(2, ny, nx))
        model.dq = np.zeros((ny, nx), dtype=np.uint32)
    else:
        try:
            model = cls.create_fake_data(shape=(ny, nx))
        except TypeError:
            model = cls.create_fake_data()
    model.meta.instrument.detector = detector
    for dotted, value in meta.items():
        node = model.meta
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = Time(value) if leaf == "useafter" and isinstance(value, str) else value
    for key, value in (arrays or {}).items():
        model[key] = value
    out = Path(os.fspath(path))
    model.save(out)
    return out

"""Many exposure files as one lazy :class:`xarray.DataTree`: ``/<exposure>/<detector>``.

:func:`open_exposures` takes what users point at (a list of files, a glob, a romancal
association, a folder) and gives a tree with one node per detector file, each node the
Dataset :func:`romanxr.open_uncal` gives (no pixel is read). :func:`map_nodes` applies a
Dataset function (a step, :func:`romanxr.calibrate`) to every node, lazily, collecting the
members it fails on instead of stopping at the first (see ``on_error``).

Identity of a node, in its attrs: ``exposure`` (``r0000101001001001001_0001``),
``detector`` (``wfi07``) and ``source_file`` (the absolute path of the file).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.errors import BatchError, InputError, RomanxrError
from romanxr.exposures.association import is_association, read_association
from romanxr.pipeline import open_exposure

__all__ = [
    "FAILURES",
    "IDENTITY",
    "ON_ERROR",
    "calibrate_nodes",
    "expand_inputs",
    "failures",
    "map_jointly",
    "map_nodes",
    "merge_failures",
    "node_datasets",
    "node_identity",
    "open_exposures",
]

#: tree attribute holding ``{member file: "ErrorType: message"}`` of the members left out
FAILURES = "failures"
#: the node attrs that say which member it is
IDENTITY = ("exposure", "detector", "source_file")
#: accepted values of ``on_error``
ON_ERROR = ("raise", "continue")

#: Roman file names: r<program..visit: 19 digits>_<exposure: 4 digits>_<detector>_<suffix>
_ROMAN_NAME = re.compile(r"^(?P<exposure>r\d{19}_\d{4})_(?P<detector>wfi\d{2})(?:_|\.|$)", re.I)
_GLOB_CHARS = re.compile(r"[*?\[]")

Source = str | os.PathLike | Iterable[str | os.PathLike]


def expand_inputs(source: Source) -> tuple[list[Path], str]:
    """The exposure files ``source`` names, and a label for messages.

    Parameters
    ----------
    source : path, glob, association, folder, or an iterable of them
        ``a_uncal.asdf``; ``"r00001*_uncal.asdf"`` (a pattern is expanded, sorted);
        ``exposure_asn.json`` (a romancal association: its members, relative to its folder);
        a folder (its ``*_uncal.asdf`` files, sorted); or a list of any of these.

    Returns
    -------
    (list of Path, str)
        The files in order (each once), and what they came from ("association
        exposure_asn.json", "3 files"...).

    Raises
    ------
    InputError
        A pattern or folder that matches nothing, or nothing given at all.
    AssociationError
        An association that cannot be used (see :func:`read_association`).
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    paths: list[Path] = []
    labels: list[str] = []
    for item in items:
        text = os.fspath(item)
        if is_association(text):
            paths += [m.path for m in read_association(text)]
            labels.append(f"association {text}")
        elif os.path.isdir(text):
            found = sorted(Path(text).glob("*_uncal.asdf"))
            if not found:
                raise InputError(f"{text}: the folder holds no *_uncal.asdf file")
            paths += found
        elif _GLOB_CHARS.search(text) and not os.path.exists(text):
            found = sorted(Path(p) for p in glob.glob(text))
            if not found:
                raise InputError(f"{text}: the pattern matches no file; check it (and quote it)")
            paths += found
        else:
            paths.append(Path(text))
    if not paths:
        raise InputError("no exposure given: pass files, a pattern, an association or a folder")
    unique = list(dict.fromkeys(p.absolute() for p in paths))
    label = labels[0] if len(labels) == 1 and len(items) == 1 else f"{len(unique)} files"
    return unique, label


def node_identity(ds: xr.Dataset, path: str | os.PathLike) -> tuple[str, str]:
    """``(exposure, detector)`` of an exposure: from its Roman file name (the file's name,
    else ``meta.filename``), the detector falling back on ``meta.instrument.detector``."""
    meta = ds.attrs.get("meta", {}) or {}
    names = [Path(path).name, str(meta.get("filename") or "")]
    for name in names:
        match = _ROMAN_NAME.match(name)
        if match:
            return match["exposure"].lower(), match["detector"].lower()
    detector = str((meta.get("instrument") or {}).get("detector") or "detector").lower()
    stem = Path(path).name.split(".")[0]
    for suffix in ("_uncal", "_cal", f"_{detector}"):
        stem = stem.removesuffix(suffix)
    return stem or "exposure", detector


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise InputError(f"on_error={on_error!r}: use one of {ON_ERROR}")


def open_exposures(
    source: Source, *, chunks: Any = "default", on_error: str = "raise"
) -> xr.DataTree:
    """Open many exposure files lazily as one tree, one node per detector file.

    Parameters
    ----------
    source : path, glob, association, folder, or an iterable of them
        See :func:`expand_inputs`.
    chunks
        Dask chunks of every node (see :func:`romanxr.open_uncal`).
    on_error : {"raise", "continue"}
        ``"raise"``: open every member, then raise one :class:`~romanxr.errors.BatchError`
        listing every member that cannot be opened. ``"continue"``: leave those out of the
        tree and list them in its ``attrs["failures"]``.

    Returns
    -------
    xarray.DataTree
        Nodes ``/<exposure>/<detector>`` (e.g. ``/r0000101001001001001_0001/wfi07``), each
        the Dataset :func:`romanxr.open_uncal` gives (a cal or saved intermediate opens as
        :func:`romanxr.pipeline.open_exposure` opens it), with ``exposure``, ``detector`` and
        ``source_file`` added to its attrs. No pixel is read.

    Raises
    ------
    BatchError
        With ``on_error="raise"``, members that cannot be opened (missing, truncated, not an
        exposure) or two files for the same node.
    InputError, AssociationError
        The source itself names nothing usable (see :func:`expand_inputs`).
    """
    _check_on_error(on_error)
    paths, label = expand_inputs(source)
    nodes: dict[str, xr.Dataset] = {}
    problems: dict[str, Exception] = {}
    for path in paths:
        try:
            ds = open_exposure(path, chunks=chunks)
        except (RomanxrError, OSError) as exc:
            problems[str(path)] = exc
            continue
        exposure, detector = node_identity(ds, path)
        name = f"/{exposure}/{detector}"
        if name in nodes:
            problems[str(path)] = InputError(
                f"{path}: a second file for {name} (the first is "
                f"{nodes[name].attrs['source_file']}); give each detector of an exposure once"
            )
            continue
        attrs = {**ds.attrs, "exposure": exposure, "detector": detector}
        attrs["source_file"] = str(path)
        nodes[name] = ds.assign_attrs(attrs)
    if problems and on_error == "raise":
        raise BatchError(problems, label)
    tree = xr.DataTree.from_dict(dict(sorted(nodes.items())))
    tree.attrs["source"] = label
    tree.attrs[FAILURES] = {member: _describe(exc) for member, exc in problems.items()}
    return tree


def node_datasets(tree: xr.DataTree) -> dict[str, xr.Dataset]:
    """``{node path: Dataset}`` of every exposure node of the tree (those with ``data``)."""
    return {
        node.path: node.to_dataset(inherit=False)
        for node in tree.subtree
        if "data" in node.data_vars
    }


def failures(tree: xr.DataTree) -> dict[str, str]:
    """``{member file: "ErrorType: message"}`` of the members left out of the tree."""
    return dict(tree.attrs.get(FAILURES) or {})


def map_nodes(
    tree: xr.DataTree,
    func: Callable[..., xr.Dataset],
    *args: Any,
    on_error: str = "raise",
    **kwargs: Any,
) -> xr.DataTree:
    """``func(ds, *args, **kwargs)`` on every exposure node, as a new tree (lazy when
    ``func`` is).

    Parameters
    ----------
    tree : xarray.DataTree
        A tree of :func:`open_exposures`.
    func : callable
        A Dataset -> Dataset function: a step or :func:`romanxr.calibrate`.
    on_error : {"raise", "continue"}
        What to do with the members ``func`` raises a romanxr error for (a reference that
        does not fit, a step that does not apply): ``"raise"`` one
        :class:`~romanxr.errors.BatchError` listing all of them, once every node was tried;
        ``"continue"`` leave them out and add them to ``attrs["failures"]``.

    Returns
    -------
    xarray.DataTree
        The same node names, each ``func``'s result, with the node identity attrs kept.
    """
    _check_on_error(on_error)
    nodes: dict[str, xr.Dataset] = {}
    problems: dict[str, Exception] = {}
    for path, ds in node_datasets(tree).items():
        member = str(ds.attrs.get("source_file", path))
        try:
            out = func(ds, *args, **kwargs)
        except RomanxrError as exc:
            problems[member] = exc
            continue
        identity = {k: ds.attrs[k] for k in IDENTITY if k in ds.attrs}
        nodes[path] = out.assign_attrs(identity)
    if problems and on_error == "raise":
        raise BatchError(problems, str(tree.attrs.get("source", "tree")))
    out_tree = xr.DataTree.from_dict(nodes)
    out_tree.attrs = {k: v for k, v in tree.attrs.items() if k != FAILURES}
    out_tree.attrs[FAILURES] = merge_failures(tree, problems)
    return out_tree


def map_jointly(
    tree: xr.DataTree,
    func: Callable[..., Mapping[str, xr.Dataset]],
    *args: Any,
    check: Callable[[xr.Dataset, str], None] | None = None,
    on_error: str = "raise",
    **kwargs: Any,
) -> xr.DataTree:
    """``func({node path: Dataset}, *args, **kwargs)`` on all exposure nodes at once, as a
    new tree: for a step whose result for one node depends on the others (tweakreg aligns
    the exposures to each other).

    Parameters
    ----------
    tree : xarray.DataTree
        A tree of :func:`open_exposures` (or of its calibrated images).
    func : callable
        ``{path: Dataset} -> {path: Dataset}``.
    check : callable, optional
        ``check(ds, member)`` raises a romanxr error for a node ``func`` cannot take.
    on_error : {"raise", "continue"}
        As :func:`map_nodes`, for the nodes ``check`` refuses: one
        :class:`~romanxr.errors.BatchError` listing all of them, or leave them out (listed
        in ``attrs["failures"]``) and run ``func`` on the others.

    Returns
    -------
    xarray.DataTree
        The same node names (minus those left out), with the node identity attrs kept.
    """
    _check_on_error(on_error)
    datasets = node_datasets(tree)
    problems: dict[str, Exception] = {}
    good: dict[str, xr.Dataset] = {}
    for path, ds in datasets.items():
        member = str(ds.attrs.get("source_file", path))
        try:
            if check is not None:
                check(ds, member)
        except RomanxrError as exc:
            problems[member] = exc
            continue
        good[path] = ds
    if problems and on_error == "raise":
        raise BatchError(problems, str(tree.attrs.get("source", "tree")))
    results = func(good, *args, **kwargs) if good else {}
    nodes = {}
    for path, out in results.items():
        identity = {k: good[path].attrs[k] for k in IDENTITY if k in good[path].attrs}
        nodes[path] = out.assign_attrs(identity)
    out_tree = xr.DataTree.from_dict(nodes)
    out_tree.attrs = {k: v for k, v in tree.attrs.items() if k != FAILURES}
    out_tree.attrs[FAILURES] = merge_failures(tree, problems)
    return out_tree


def _joint_runs(kwargs: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The steps with a joint form (tweakreg) that this pipeline call would run, with
    their options: those the nodes must not run one by one."""
    from romanxr.pipeline import (
        RUN,
        StepRun,
        optional_skip_reason,
        requested_steps,
        resolve_step_options,
    )
    from romanxr.registry import STEPS, get_step

    options = resolve_step_options(kwargs.get("steps"), kwargs.get("config"))
    asked = requested_steps(kwargs.get("steps"), kwargs.get("config"))
    names = [s.name for s in STEPS]
    first = names.index(get_step(kwargs["start_at"]).name) if kwargs.get("start_at") else 0
    last = names.index(get_step(kwargs["stop_after"]).name) if kwargs.get("stop_after") else -1
    chosen = STEPS[first:] if last == -1 else STEPS[first : last + 1]
    runs = []
    for spec in chosen:
        given = dict(options.get(spec.name) or {})
        if not spec.joint or given.pop("skip", False):
            continue
        given.pop("save_results", None)
        # a default run that cannot work (tweakreg with the service catalogue) is skipped
        # node by node; one asked for raises here, before any work
        run = StepRun(spec, RUN, arguments=given, requested=spec.name in asked)
        if not optional_skip_reason(run):
            runs.append((spec, given))
    return runs


def calibrate_nodes(
    tree: xr.DataTree,
    calibrate: Callable[..., xr.Dataset],
    *,
    on_error: str = "raise",
    **kwargs: Any,
) -> xr.DataTree:
    """``calibrate`` on every node, with the steps that align nodes to each other (tweakreg)
    run once on all of them afterwards, as romancal's exposure pipeline runs TweakRegStep
    on its whole ModelLibrary.

    A joint step that can run (tweakreg with a local ``abs_refcat``; with its default
    service catalogue it is SKIPPED node by node, as in a single-file run) is skipped in
    the per-node runs (its source catalog still runs) and then applied to every node that
    has what it needs (a node without a catalog, e.g. a fully saturated one, keeps its
    SKIPPED record).
    """
    joint = _joint_runs(kwargs)
    if not joint:
        return map_nodes(tree, calibrate, on_error=on_error, **kwargs)
    steps = {k: dict(v) for k, v in (kwargs.get("steps") or {}).items()}
    for spec, _ in joint:
        steps[spec.name] = {"skip": True}
        steps.setdefault("source_catalog", {}).setdefault("skip", False)
    calibrated = map_nodes(tree, calibrate, on_error=on_error, **{**kwargs, "steps": steps})
    for spec, options in joint:
        func, check = spec.load_joint()
        datasets = node_datasets(calibrated)
        ready = {p: ds for p, ds in datasets.items() if "source_catalog" in ds.attrs}
        if not ready:
            continue
        subtree = xr.DataTree.from_dict(ready)
        subtree.attrs = dict(calibrated.attrs)
        aligned = map_jointly(subtree, func, check=check, on_error=on_error, **options)
        merged = {**datasets, **node_datasets(aligned)}
        attrs = {**calibrated.attrs, FAILURES: failures(aligned)}
        calibrated = xr.DataTree.from_dict(merged)
        calibrated.attrs = attrs
    return calibrated


def merge_failures(tree: xr.DataTree, more: Mapping[str, BaseException]) -> dict[str, str]:
    """The tree's failures and ``more`` (``{member: exception}``) together."""
    known = failures(tree)
    known.update({member: _describe(exc) for member, exc in more.items()})
    return known

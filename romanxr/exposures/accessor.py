"""The ``dt.roman`` accessor of exposure trees: each method forwards to a plain function.

Every step of :data:`romanxr.registry.STEPS` and :func:`romanxr.calibrate` is applied to every
node (:func:`romanxr.exposures.tree.map_nodes`), lazily; the writers are
:mod:`romanxr.exposures.writers`; the summary lists the nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

from romanxr import pipeline
from romanxr.errors import ConfigError
from romanxr.exposures import tree as _tree
from romanxr.exposures import writers as _writers
from romanxr.registry import STEPS, StepSpec

__all__ = ["RomanTreeAccessor", "tree_summary"]


def tree_summary(tree: xr.DataTree) -> str:
    """One line per node (path, exposure, detector, level, shape) and the failures."""
    datasets = _tree.node_datasets(tree)
    lines = [f"romanxr exposure tree: {len(datasets)} detector(s) ({tree.attrs.get('source', '')})"]
    for path, ds in datasets.items():
        level = "ramp" if ds["data"].ndim == 3 else "image"
        shape = " x ".join(f"{ds.sizes[d]} {d}" for d in ds["data"].dims)
        exposure, detector = ds.attrs.get("exposure", "?"), ds.attrs.get("detector", "?")
        lines.append(f"  {path}: exposure {exposure}, detector {detector}, {level}, {shape}")
    for member, why in _tree.failures(tree).items():
        lines.append(f"  failed {member}: {why}")
    return "\n".join(lines)


def _forward_step(spec: StepSpec) -> Callable[..., xr.DataTree]:
    """The tree method of a step: the step on every node (keyword ``on_error`` as
    :func:`~romanxr.exposures.tree.map_nodes`), or, for a step with a joint form
    (:attr:`~romanxr.registry.StepSpec.joint`: tweakreg), on all nodes together."""

    def each(self: RomanTreeAccessor, *args: Any, on_error: str = "raise", **kwargs: Any):
        return _tree.map_nodes(self._tree, spec.load(), *args, on_error=on_error, **kwargs)

    def together(self: RomanTreeAccessor, *args: Any, on_error: str = "raise", **kwargs: Any):
        func, check = spec.load_joint()
        return _tree.map_jointly(self._tree, func, *args, check=check, on_error=on_error, **kwargs)

    method = together if spec.joint else each
    method.__name__ = spec.name
    method.__qualname__ = f"RomanTreeAccessor.{spec.name}"
    method.__doc__ = (
        f"``{spec.name}`` on every node of the tree (see ``ds.roman.{spec.name}``), lazily; "
        "``on_error`` as :func:`romanxr.exposures.tree.map_nodes`."
    )
    if spec.joint:
        method.__doc__ = (
            f"``{spec.name}`` on all nodes of the tree together (``{spec.joint}``: each "
            "node's result depends on the others); ``on_error`` as "
            ":func:`romanxr.exposures.tree.map_jointly`."
        )
    return method


class RomanTreeAccessor:
    """Roman calibration on a tree of exposures (:func:`romanxr.open_exposures`).

    ``dt.roman.calibrate()`` gives a tree of lazy cal images; ``dt.roman.to_asdf(folder)`` or
    ``dt.roman.to_zarr(store)`` computes and writes them. Every step is here too
    (``dt.roman.dq_init()``...), applied to every node.
    """

    def __init__(self, tree: xr.DataTree) -> None:
        self._tree = tree

    def __repr__(self) -> str:
        return tree_summary(self._tree)

    def summary(self) -> str:
        """The nodes (exposure, detector, level, shape) and the failed members, as text."""
        return tree_summary(self._tree)

    @property
    def failures(self) -> dict[str, str]:
        """``{member file: "ErrorType: message"}`` of the members left out."""
        return _tree.failures(self._tree)

    def calibrate(
        self, *, on_error: str = "raise", check_saturated: bool = False, **kwargs: Any
    ) -> xr.DataTree:
        """:func:`romanxr.calibrate` on every node, lazily (the tree of cal images).

        ``kwargs`` are :func:`romanxr.calibrate`'s (``steps``, ``config``, ``overrides``,
        ``crds_context``, ``stop_after``...); ``check_saturated`` is off by default so that
        nothing is computed until the write (pass True for romancal's fully-saturated
        exit, which computes one reduction per node). ``on_error`` as
        :func:`romanxr.exposures.tree.map_nodes`: by default every member is planned and
        resolved first and one error lists every problem. ``source_catalog`` runs node by
        node (by default on imaging exposures, when its references are found);
        ``tweakreg``, when it can run (a local ``abs_refcat``), runs once on all the nodes
        after their calibration (relative alignment across exposures, then absolute), as
        romancal's pipeline runs it on the whole set.
        """
        for name in ("output", "save_results"):
            if kwargs.get(name):
                raise ConfigError(
                    f"{name}= would send every node to one file; write the calibrated tree "
                    "with .roman.to_asdf(folder) or .roman.to_zarr(store)"
                )
        return _tree.calibrate_nodes(
            self._tree,
            pipeline.calibrate,
            on_error=on_error,
            check_saturated=check_saturated,
            **kwargs,
        )

    def output_paths(self, output_dir: Any = None, suffix: str = "cal") -> dict:
        """Where :meth:`to_asdf` writes each node (see
        :func:`romanxr.exposures.writers.output_paths`)."""
        return _writers.output_paths(self._tree, output_dir, suffix)

    def to_asdf(self, output_dir: Any = None, **kwargs: Any) -> _writers.BatchReport:
        """:func:`romanxr.exposures.writers.to_asdf` on this tree."""
        return _writers.to_asdf(self._tree, output_dir, **kwargs)

    def to_zarr(self, store: Any, **kwargs: Any) -> Any:
        """:func:`romanxr.exposures.writers.to_zarr` on this tree."""
        return _writers.to_zarr(self._tree, store, **kwargs)


for _spec in STEPS:
    setattr(RomanTreeAccessor, _spec.name, _forward_step(_spec))

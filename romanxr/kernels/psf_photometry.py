"""The catalog's PSF fit (photutils ``PSFPhotometry``), in parts of whole source groups.

photutils fits the source groups (sources closer than ``PSF_GROUP_SEPARATION`` pixels are
fitted together) one after another, in Python: on a full frame that is most of the catalog's
time, and threads do not help (the loop holds the GIL). The result of a source depends only
on its group (its pixels, its initial positions and fluxes, the order of its sources), so
the groups are found once for all sources, exactly as photutils' ``SourceGrouper`` does,
and split into parts of whole groups; each part is one ``PSFPhotometry`` call with those
group ids, and the parts can run in parallel (the caller's ``parallel_map``, e.g.
:func:`romanxr.schedule.forked_map`: forked processes).
The rows of each part keep their relative order, so every group is fitted with its sources
in the same order as in one call over all sources, and the columns are the same, bit for
bit, whatever the number of parts or processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from romanxr.kernels.quiet import ignoring

__all__ = ["PARTS_PER_WORKER", "PSF_FIT_SHAPE", "PSF_GROUP_SEPARATION", "group_parts", "psf_fit"]

#: PSF fit box (pixels) and grouping distance (pixels)
PSF_FIT_SHAPE = (5, 5)
PSF_GROUP_SEPARATION = 5.0
#: parts per worker process: several, so that a slow part does not leave a core idle
PARTS_PER_WORKER = 4

#: photutils' result column -> the catalog's
COLUMNS = {
    "x_fit": "x_psf",
    "x_err": "x_psf_err",
    "y_fit": "y_psf",
    "y_err": "y_psf_err",
    "flux_fit": "psf_flux",
    "flux_err": "psf_flux_err",
    "reduced_chi2": "psf_gof",
    "flags": "psf_flags",
}


def group_parts(group_id: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Split sources into at most ``n_parts`` parts of whole groups, of similar sizes.

    Groups stay in the order of their ids (photutils numbers them by first appearance, so
    neighbouring ids are neighbouring rows); each part is a run of consecutive groups with
    about ``len(group_id) / n_parts`` sources. Returns each part's row indices, ascending.
    """
    group_id = np.asarray(group_id)
    n = len(group_id)
    if n == 0:
        return []
    order = np.argsort(group_id, kind="stable")
    sorted_ids = group_id[order]
    # cut only where the group id changes, as close as possible to equal shares
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    targets = np.arange(1, max(1, int(n_parts))) * n / max(1, int(n_parts))
    cuts = np.unique(starts[np.clip(np.searchsorted(starts, targets), 0, len(starts) - 1)])
    cuts = cuts[(cuts > 0) & (cuts < n)]
    return [np.sort(part) for part in np.split(order, cuts) if len(part)]


@dataclass(frozen=True)
class _Fit:
    """What each part's fit reads (left in memory for forked workers)."""

    flux: np.ndarray
    flux_err: np.ndarray
    mask: np.ndarray
    xy: np.ndarray
    group_id: np.ndarray
    psf: Any

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        from astropy.table import Table
        from astropy.utils.exceptions import AstropyUserWarning
        from photutils.psf import PSFPhotometry

        phot = PSFPhotometry(
            self.psf, PSF_FIT_SHAPE, aperture_radius=PSF_FIT_SHAPE[0], progress_bar=False
        )
        init = Table(
            {
                "id": rows + 1,
                "group_id": self.group_id[rows],
                "x_init": self.xy[rows, 0],
                "y_init": self.xy[rows, 1],
            }
        )
        with ignoring(RuntimeWarning, AstropyUserWarning):
            res = phot(self.flux, error=self.flux_err, mask=self.mask, init_params=init)
        out = {}
        for old, new in COLUMNS.items():
            value = np.asarray(getattr(res[old], "value", res[old]))
            kind = np.int32 if np.issubdtype(value.dtype, np.integer) else np.float32
            out[new] = value.astype(kind)
        return out


class _Done:
    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def result(self) -> list[Any]:
        return self.values


@contextlib.contextmanager
def _serial_map(func: Callable[[Any], Any], items: Any, workers: int) -> Iterator[_Done]:
    yield _Done([func(item) for item in items])


def _groups(xy: np.ndarray) -> np.ndarray:
    """The group id of every source, as ``PSFPhotometry``'s ``SourceGrouper`` gives them.

    photutils clusters with ``fclusterdata`` (single linkage, distance criterion): all
    pairwise distances (n^2 / 2 of them: 1.9 GB and ~20 s for a full frame's 22,000
    sources). Single-linkage clusters cut at ``t`` are the connected components of the
    pairs at most ``t`` apart, so only the near pairs are needed (a KD-tree finds them; the
    distance is then computed as ``pdist`` does, in float64). Components are numbered by
    first appearance, as photutils renumbers its clusters. Non-finite or fewer than two
    positions go to photutils itself (its checks and errors).
    """
    from photutils.psf import SourceGrouper
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import KDTree

    xy = np.asarray(xy)
    if len(xy) < 2 or not np.isfinite(xy).all():
        return np.asarray(SourceGrouper(min_separation=PSF_GROUP_SEPARATION)(xy[:, 0], xy[:, 1]))
    points = np.ascontiguousarray(xy, dtype=np.float64)
    n = len(points)
    # candidates a little beyond the cut, then the exact test on the pdist-style distance
    pairs = KDTree(points).query_pairs(
        PSF_GROUP_SEPARATION * (1 + 1e-6) + 1e-9, output_type="ndarray"
    )
    d = points[pairs[:, 0]] - points[pairs[:, 1]]
    near = pairs[np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) <= PSF_GROUP_SEPARATION]
    graph = coo_matrix((np.ones(len(near)), (near[:, 0], near[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber 1, 2, ... by first appearance
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    return rank[labels]


@contextlib.contextmanager
def psf_fit(
    flux: np.ndarray,
    flux_err: np.ndarray,
    mask: np.ndarray,
    xy: np.ndarray,
    psf: Any,
    workers: int = 1,
    parallel_map: Callable[..., Any] | None = None,
) -> Iterator[Callable[[], dict[str, np.ndarray] | None]]:
    """Fit ``psf`` at the initial positions ``xy`` (n, 2; x, y) of the sources.

    A context manager: with ``workers > 1`` and a ``parallel_map`` (a context manager
    ``parallel_map(func, parts, workers)`` yielding a handle whose ``result()`` is
    ``[func(part) for part in parts]``, as :func:`romanxr.schedule.forked_map`), the parts
    are fitted by it while the block runs; otherwise they are fitted on entry, in one call.
    It yields a function that returns the columns (``x_psf``, ``x_psf_err``,
    ``y_psf``, ``y_psf_err``, ``psf_flux``, ``psf_flux_err``, ``psf_gof``, ``psf_flags``;
    float32, flags int32; one row per source in the order of ``xy``), or None when
    ``psf`` is None.
    """
    if psf is None:
        yield lambda: None
        return
    xy = np.asarray(xy)  # its dtype as given: photutils computes with the column's dtype
    fit = _Fit(flux, flux_err, mask, xy, _groups(xy), psf)
    parts = group_parts(fit.group_id, max(1, int(workers)) * PARTS_PER_WORKER)
    if workers <= 1 or parallel_map is None:
        parts, workers, parallel_map = [np.arange(len(xy))], 1, _serial_map
    with parallel_map(fit, parts, workers) as pending:

        def columns() -> dict[str, np.ndarray]:
            results = pending.result()
            out = {}
            for name in COLUMNS.values():
                column = np.empty(len(xy), dtype=results[0][name].dtype)
                for rows, result in zip(parts, results, strict=True):
                    column[rows] = result[name]
                out[name] = column
            return out

        yield columns

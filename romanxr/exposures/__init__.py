"""Many exposures at once: the 18 detectors of a WFI exposure, file lists, associations.

:func:`open_exposures` opens them as one lazy :class:`xarray.DataTree`
(``/<exposure>/<detector>``); importing this package registers the ``dt.roman`` accessor
(:class:`~romanxr.exposures.accessor.RomanTreeAccessor`): every step and ``calibrate`` over
all nodes, the tree writers (:mod:`romanxr.exposures.writers`) and a summary. Associations are
read by :mod:`romanxr.exposures.association`.
"""

from __future__ import annotations

from romanxr.exposures.accessor import RomanTreeAccessor
from romanxr.exposures.association import Member, read_association
from romanxr.exposures.tree import expand_inputs, map_nodes, open_exposures
from romanxr.exposures.writers import BatchReport, output_paths, to_asdf, to_zarr

__all__ = [
    "BatchReport",
    "Member",
    "RomanTreeAccessor",
    "expand_inputs",
    "map_nodes",
    "open_exposures",
    "output_paths",
    "read_association",
    "to_asdf",
    "to_zarr",
]

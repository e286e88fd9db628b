"""The ``_wcs.asdf`` product: the WCS of a cal.asdf on its own, as romancal 1.1.0 writes it.

Whenever romancal's exposure pipeline saves a cal it writes a ``WfiWcsModel`` beside it,
named with the ``_wcs`` suffix: the WCS-related metadata of the image copied verbatim,
``wcs_l2`` (the image's gwcs) and ``wcs_l1`` (the same gwcs shifted by the 4-pixel
reference border, with a bounding box grown to the full frame, for the Level-1 arrays).
:func:`write_wcs_product` builds it with roman_datamodels' own
``WfiWcsModel.from_model_with_wcs`` and writes it atomically (:mod:`romanxr.io.atomic`). romancal
writes one for every cal its exposure pipeline saves, with or without a WCS; so does romanxr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from romanxr.io.atomic import atomic_target

__all__ = ["SUFFIX", "write_wcs_product"]

#: product suffix of the WCS file (``r..._wcs.asdf`` beside ``r..._cal.asdf``)
SUFFIX = "wcs"


def write_wcs_product(image_model: Any, target: str | os.PathLike, *, overwrite: bool) -> Path:
    """Write the ``WfiWcsModel`` of ``image_model`` (an ImageModel) to ``target`` atomically.

    An image without a WCS (``meta.wcs`` None: assign_wcs skipped) gets a ``WfiWcsModel``
    with the metadata only, as romancal writes it then.

    Parameters
    ----------
    image_model : roman_datamodels.datamodels.ImageModel
        The image as written (only its metadata is read; the arrays may be stand-ins).
    target : path-like
        The ``_wcs.asdf`` path (the pipeline names it by the Roman naming rule,
        :func:`romanxr.pipeline.output_name` with suffix ``wcs``).
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    Path
        ``target``.
    """
    import asdf

    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()
    from astropy.time import Time

    target = Path(target)
    model = dm.WfiWcsModel.from_model_with_wcs(image_model)
    model.meta.filename = target.name
    model.meta.file_date = Time.now()
    # not model.validate(): asdf validates the tree against the same schemas as it writes it
    # (an invalid model raises the same ValidationError there, and no file is left behind)
    with atomic_target(target, overwrite=overwrite) as tmp:
        af = asdf.AsdfFile()
        af.tree = {"roman": model._instance}
        af.write_to(tmp)
    return target

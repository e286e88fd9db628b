"""romancal association files (``*_asn.json``): which exposures a run calibrates.

The format is the one :func:`romancal.associations.asn_from_list.asn_from_list` writes::

    {"asn_type": "...", "asn_rule": "DMS_ELPP_Base", "asn_id": "...",
     "products": [{"name": "...", "members": [{"expname": "a_uncal.asdf",
                                               "exptype": "science"}, ...]}, ...]}

Member paths are relative to the folder of the association file, as stpipe's model library
reads them. Only ``science`` members are exposures to calibrate; any other ``exptype`` is not
something the Exposure Level Pipeline runs on and is refused, as is a member whose file is
missing, before anything is opened or computed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from romanxr.errors import AssociationError

__all__ = ["CALIBRATED_EXPTYPES", "Member", "is_association", "read_association"]

#: member types the Exposure Level Pipeline calibrates (romancal's ``exptype`` spelling)
CALIBRATED_EXPTYPES = frozenset({"science"})


@dataclass(frozen=True)
class Member:
    """One exposure of an association.

    Attributes
    ----------
    path : Path
        The member's file (absolute: ``expname`` joined to the association's folder).
    exptype : str
        Its ``exptype`` (``science``).
    product : str
        The name of the association product it belongs to.
    """

    path: Path
    exptype: str
    product: str


def is_association(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an association file (a ``.json`` file)."""
    return Path(path).suffix.lower() == ".json"


def read_association(path: str | os.PathLike) -> list[Member]:
    """The members of a romancal association file, checked.

    Parameters
    ----------
    path : path-like
        The ``*_asn.json`` file.

    Returns
    -------
    list of Member
        Every member of every product, in the file's order.

    Raises
    ------
    AssociationError
        The file cannot be read or is not an association (no ``products[].members[]`` with
        ``expname``), a member has an ``exptype`` other than ``science``, or member files are
        missing (all of them are named at once).
    """
    path = Path(path)
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AssociationError(
            f"{path}: cannot read the association ({type(exc).__name__}: {exc}); give a "
            "romancal association JSON file (asn_from_list writes one)"
        ) from exc
    products = tree.get("products") if isinstance(tree, dict) else None
    if not isinstance(products, list) or not products:
        raise AssociationError(
            f"{path}: not a romancal association: no 'products' list; each product needs "
            "'members' with 'expname' and 'exptype'"
        )
    members: list[Member] = []
    missing: list[str] = []
    for index, product in enumerate(products):
        name = str(product.get("name", f"product {index}")) if isinstance(product, dict) else ""
        entries = product.get("members") if isinstance(product, dict) else None
        if not isinstance(entries, list):
            raise AssociationError(f"{path}: product {name or index} has no 'members' list")
        for entry in entries:
            members.append(_member(path, name, entry))
            if not members[-1].path.is_file():
                missing.append(str(entry["expname"]))
    if missing:
        raise AssociationError(
            f"{path}: member file(s) not found: {', '.join(missing)} (looked for them in "
            f"{path.parent.resolve()}, the association's folder); copy them there or fix "
            "their expname"
        )
    return members


def _member(path: Path, product: str, entry: object) -> Member:
    """One checked member entry of product ``product`` of association ``path``."""
    if not isinstance(entry, dict) or not entry.get("expname"):
        raise AssociationError(f"{path}: a member of product {product} has no 'expname': {entry!r}")
    expname = str(entry["expname"])
    exptype = str(entry.get("exptype", "science"))
    if exptype.lower() not in CALIBRATED_EXPTYPES:
        raise AssociationError(
            f"{path}: member {expname} has exptype {exptype!r}; the Exposure Level Pipeline "
            f"calibrates only {sorted(CALIBRATED_EXPTYPES)} members: remove it from the "
            "association or mark it 'science'"
        )
    return Member((path.parent / expname).resolve(), exptype.lower(), product)

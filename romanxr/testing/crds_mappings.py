"""The files of a local CRDS cache: rule mappings (rmap, imap, pmap) and the config folder.

Mapping texts are written the way crds reads them, with the ``sha1sum`` header crds
verifies; which parameters an rmap selects on comes from crds' own Roman type specs.
:func:`romanxr.testing.crds_cache.build_local_crds_cache` decides the rules.
"""

from __future__ import annotations

import datetime
import pprint
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from romanxr.errors import InputError

__all__ = ["Rows", "crds_version", "known_reftypes", "parkeys", "write_config", "write_mappings"]

#: rules of the rmaps: reftype -> match values -> useafter -> file name ("N/A": none)
Rows = dict[str, dict[tuple[str, ...], dict[str, str]]]


def parkeys(reftype: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(match keys, useafter keys) for ``reftype`` from crds' own Roman type specs."""
    from crds.roman import TYPES

    try:
        parkey = TYPES.get_item("wfi", reftype, "parkey")
    except KeyError:
        raise InputError(
            f"crds {crds_version()} knows no Roman WFI reference type {reftype!r}; "
            f"reference types come from meta.reftype of the file"
        ) from None
    match = tuple(str(k) for k in parkey[0])
    useafter = tuple(str(k) for k in parkey[1]) if len(parkey) > 1 else ()
    return match, useafter


def known_reftypes() -> list[str]:
    from crds.roman import TYPES

    return [t for t in TYPES.unified_defs["wfi"] if t != "all"]


def _encoded_empty_metadata() -> Any:
    from crds.client import proxy

    return proxy.crds_encode({})


def crds_version() -> str:
    import crds

    return str(crds.__version__)


def _format_header(header: Mapping[str, Any]) -> str:
    lines = ["header = {"]
    for key in sorted(header):
        lines.append(f"    {key!r} : {header[key]!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _with_checksum(text: str) -> str:
    """Insert the ``sha1sum`` header line crds verifies (checksum of all other lines)."""
    from crds.core import utils

    checksum = utils.str_checksum(text)
    out = []
    for line in text.splitlines(True):
        out.append(line)
        if line.startswith("    'parkey' :"):
            out.append(f"    'sha1sum' : '{checksum}',\n")
    return "".join(out)


def _rmap_text(
    name: str,
    reftype: str,
    match_keys: tuple[str, ...],
    useafter_keys: tuple[str, ...],
    rows: Mapping[tuple[str, ...], Mapping[str, str]],
) -> str:
    from crds.roman import TYPES

    header = {
        "classes": ("Match", "UseAfter"),
        "derived_from": "romanxr.testing.build_local_crds_cache",
        "file_ext": ".asdf",
        "filekind": reftype.upper(),
        "filetype": reftype.upper(),
        "instrument": "WFI",
        "mapping": "REFERENCE",
        "name": name,
        "observatory": "ROMAN",
        "parkey": (match_keys, useafter_keys),
        "suffix": reftype,
        "text_descr": str(TYPES.get_item("wfi", reftype, "text_descr")),
    }
    body = ["", "selector = Match({"]
    for key in sorted(rows):
        match = repr(key) if len(key) != 1 else repr(key[0])
        body.append(f"    {match} : UseAfter({{")
        for date in sorted(rows[key]):
            body.append(f"        {date!r} : {rows[key][date]!r},")
        body.append("    }),")
    body.append("})")
    return _with_checksum(_format_header(header) + "\n".join(body) + "\n")


def _selector_text(header: Mapping[str, Any], selector: Mapping[str, str]) -> str:
    body = ["", "selector = {"]
    for key in sorted(selector):
        body.append(f"    {key!r} : {selector[key]!r},")
    body.append("}")
    return _with_checksum(_format_header(header) + "\n".join(body) + "\n")


def write_mappings(mappings_dir: Path, context: str, serial: str, rows: Rows) -> list[str]:
    """Write the rmaps, the imap and the pmap ``context``; return their names, sorted."""
    rmaps: dict[str, str] = {}
    for reftype, table in rows.items():
        match_keys, useafter_keys = parkeys(reftype)
        name = f"roman_wfi_{reftype}_{serial}.rmap"
        text = _rmap_text(name, reftype, match_keys, useafter_keys, table)
        (mappings_dir / name).write_text(text)
        rmaps[reftype.upper()] = name

    imap = f"roman_wfi_{serial}.imap"
    imap_header = {
        "derived_from": "romanxr.testing.build_local_crds_cache",
        "instrument": "WFI",
        "mapping": "INSTRUMENT",
        "name": imap,
        "observatory": "ROMAN",
        "parkey": ("REFTYPE",),
    }
    (mappings_dir / imap).write_text(_selector_text(imap_header, rmaps))
    pmap_header = {
        "derived_from": "romanxr.testing.build_local_crds_cache",
        "mapping": "PIPELINE",
        "name": context,
        "observatory": "ROMAN",
        "parkey": ("ROMAN.META.INSTRUMENT.NAME",),
    }
    (mappings_dir / context).write_text(_selector_text(pmap_header, {"WFI": imap}))
    return sorted([context, imap, *rmaps.values()])


def write_config(config_dir: Path, context: str, mappings: list[str]) -> None:
    """The cache's config folder: a server_config that says "cache mode, this context"."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    server_config = {
        "observatory": "roman",
        "operational_context": context,
        "latest_context": context,
        "edit_context": context,
        "versions_context": context,
        "bad_files": "",
        "bad_files_list": [],
        "force_remote_mode": False,
        "last_synced": now,
        "mappings": mappings,
        "crds_version": {"str": crds_version()},
        "reference_url": {"checked": {}, "unchecked": {}},
        "mapping_url": {"checked": {}, "unchecked": {}},
        "status": "cache",
        "connected": False,
        # crds asks the server for this when it is missing; it is only used for downloads
        "download_metadata": _encoded_empty_metadata(),
    }
    (config_dir / "server_config").write_text(pprint.pformat(server_config) + "\n")
    (config_dir / "bad_files.txt").write_text("")
    (config_dir / "ref_cache_subdir_mode").write_text("instrument\n")

"""Opening a Roman ASDF file: its YAML tree validated, its ``roman`` node, its blocks in place.

Used by the product reader (:mod:`romanxr.io.asdf_reader`), the reference loader
(:mod:`romanxr.refs.load`) and the checksum check (:mod:`romanxr.io.integrity`): every bad
file gets the same :class:`~romanxr.errors.FileFormatError` or
:class:`~romanxr.errors.WrongProductError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from romanxr.errors import FileFormatError, InputFileError, WrongProductError
from romanxr.io.asdf_guard import check_yaml_tree
from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.blocks import BLOCK_MAGIC, read_block_header
from romanxr.io.identity import FileIdentity, check_identity, file_identity

__all__ = ["block_list", "file_identity", "open_roman_tree"]


def block_list(af: Any, path: str) -> list:
    """The binary blocks asdf found in the open file ``af`` (its block manager's entries)."""
    try:
        return list(af._blocks.blocks)
    except Exception as exc:  # the block index itself is unreadable
        raise FileFormatError(
            f"{path}: the ASDF binary blocks cannot be read ({exc}); the file is truncated or "
            "corrupt: download or write it again"
        ) from exc


def _check_blocks(af: Any, path: str) -> None:
    """Make sure every binary block the header announces lies inside the file."""
    size = os.path.getsize(path)
    blocks = block_list(af, path)
    with open(path, "rb") as fh:
        for i, block in enumerate(blocks):
            try:
                # asdf's block offset points just past the block magic
                end = read_block_header(fh, int(block.offset) - len(BLOCK_MAGIC)).end
            except Exception as exc:
                raise FileFormatError(
                    f"{path}: binary block {i} has an unreadable header ({exc}); the file is "
                    "truncated or corrupt: download or write it again"
                ) from exc
            if end > size:
                raise FileFormatError(
                    f"{path}: binary block {i} ends at byte {end} but the file has only {size} "
                    "bytes; the file is truncated: download or write it again"
                )


#: files whose tree validated in this process, by identity (device, inode, size, mtime in ns)
_VALIDATED: set[FileIdentity] = set()


def _asdf_open(path: str) -> Any:
    asdf = prepare_asdf()

    # A file validated once in this process is not validated again while it is unchanged
    # (same inode, size and modification time): a calibration opens its ~12 reference files
    # every time, and their schema validation was ~0.3 s of a warm 512x512 run.
    identity = file_identity(path)
    if identity in _VALIDATED:
        with asdf.config_context() as cfg:
            cfg.validate_on_read = False
            return asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
    # validate the tree against the Roman schemas at open (explicitly: asdf announces that
    # validation on read will be off by default); the reader's own checks come after
    if asdf.get_config().validate_on_read:
        # (a config context of its own would rebuild asdf's extension list: ~0.1 s each)
        af = asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
    else:
        with asdf.config_context() as cfg:
            cfg.validate_on_read = True
            af = asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
    _VALIDATED.add(identity)
    return af


def _open_asdf(path: str) -> tuple[Any, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputFileError(
            f"{path}: is a directory, not a file; give the path of an ASDF file such as a "
            "*_uncal.asdf (a Zarr store written by romanxr ends in .zarr)"
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(5)
    except PermissionError as exc:
        raise InputFileError(
            f"{path}: cannot be read ({exc.strerror or exc}); ask its owner for read "
            "permission, or copy the file somewhere you can read it"
        ) from exc
    if head != b"#ASDF":
        raise FileFormatError(
            f"{path}: not an ASDF file (it does not start with '#ASDF'); romanxr reads Roman "
            "ASDF products such as *_uncal.asdf and *_cal.asdf"
        )
    check_yaml_tree(path)  # alias bombs and external array sources, before asdf parses it
    try:
        af = _asdf_open(path)
        tree = af.tree
        roman = tree.get("roman") if hasattr(tree, "get") else None
    except Exception as exc:
        if type(exc).__name__ == "ValidationError" and hasattr(exc, "absolute_path"):
            where = ".".join(str(p) for p in exc.absolute_path) or "the tree"
            raise FileFormatError(
                f"{path}: {where} does not follow the Roman data model schema "
                f"({getattr(exc, 'message', exc)}); the file was written wrongly or edited: "
                "fix that field or write the file again"
            ) from exc
        raise FileFormatError(
            f"{path}: the ASDF tree cannot be parsed ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt"
        ) from exc
    try:
        if roman is None:
            keys = sorted(str(k) for k in tree if not str(k).startswith("asdf_library"))
            raise WrongProductError(
                f"{path}: ASDF file without a 'roman' node (top-level keys: "
                f"{', '.join(keys) or 'none'}); expected a Roman datamodel file "
                "(e.g. an L1 wfi_science_raw *_uncal.asdf)"
            )
        _check_blocks(af, path)
    except BaseException:
        af.close()  # never leave the file open behind an error
        raise
    return af, roman


@contextlib.contextmanager
def open_roman_tree(path: str | os.PathLike) -> Iterator[tuple[Any, Any]]:
    """Open a Roman ASDF file lazily; yields ``(asdf_file, roman_node)`` and closes it after.

    The tree is validated against the Roman schemas, and every binary block must lie inside
    the file; no pixel data are read.

    Raises
    ------
    FileNotFoundError
        No such file.
    FileFormatError
        Not an ASDF file, a tree that does not parse or validate, truncated blocks, a YAML
        alias bomb or an array stored outside the file
        (:func:`~romanxr.io.asdf_guard.check_yaml_tree`).
    WrongProductError
        An ASDF file without a ``roman`` node.
    InputFileError
        The file was replaced or rewritten while it was being opened.
    """
    path = os.fspath(path)
    try:
        identity = file_identity(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    af, roman = _open_asdf(path)
    try:
        yield af, roman
        # what was read (tree, arrays' identities) all came from the file as it was first seen
        check_identity(path, identity)
    finally:
        af.close()

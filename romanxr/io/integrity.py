"""The on-demand integrity check of an ASDF file: every block against its MD5 checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from romanxr.errors import FileFormatError
from romanxr.io.asdf_file import block_list, open_roman_tree
from romanxr.io.blocks import BLOCK_MAGIC, read_block_header

__all__ = ["verify_checksums"]


def verify_checksums(path: str | os.PathLike) -> None:
    """Read every binary block of an ASDF file and compare it with its recorded MD5 checksum.

    Opening a file (:func:`romanxr.io.asdf_reader.open_roman_asdf`) checks the structure
    only: the ``#ASDF`` magic, the YAML tree, and that every block the header announces lies
    inside the file. Damaged bytes *inside* a block can only be found by reading the block: a
    compressed block that no longer decompresses raises :class:`FileFormatError` naming the
    file when its chunk is computed, but some damage (e.g. inside an lz4 literal run)
    decompresses into wrong pixel values without any error. This function finds that too, at
    the cost of reading the whole file once; run it on files of doubtful origin before
    calibrating.

    Raises
    ------
    FileFormatError
        If a block's bytes do not match its checksum, or the file cannot be read.
    """
    path = str(Path(path))
    with open_roman_tree(path) as (af, _), open(path, "rb") as fh:
        for i, block in enumerate(block_list(af, path)):
            # asdf's block offset points just past the block magic
            header = read_block_header(fh, int(block.offset) - len(BLOCK_MAGIC))
            if not any(header.checksum):  # an all-zero checksum means "not computed"
                continue
            fh.seek(header.data_offset)
            used = fh.read(header.used)
            if hashlib.md5(used, usedforsecurity=False).digest() != header.checksum:
                raise FileFormatError(
                    f"{path}: binary block {i} does not match its MD5 checksum; the file is "
                    "corrupt: download or write it again"
                )

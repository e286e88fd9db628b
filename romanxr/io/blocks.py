"""ASDF binary block framing, defined once for the block reader and the streaming writer.

A block is ``\\xd3BLK``, a 2-byte big-endian header size, the header (:data:`HEADER`: flags,
4-byte compression label, allocated/used/data sizes, MD5 of the stored bytes), then the stored
bytes; the file ends with a YAML block index. lz4 blocks are a sequence of independently
compressed pieces of :data:`PIECE` uncompressed bytes, each a 4-byte big-endian length and an
``lz4.block`` frame that starts with its little-endian decompressed size (asdf's
``Lz4Compressor`` framing), which is what lets :mod:`romanxr.io.block_reader` decompress only
the pieces a slice needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BLOCK_MAGIC",
    "HEADER",
    "INDEX_HEADER",
    "LZ4_FRAME_START",
    "LZ4_PIECE_HEAD",
    "PIECE",
    "SUPPORTED_COMPRESSION",
    "BlockHeader",
    "Compressor",
    "block_index",
    "decompress",
    "lz4_piece_head",
    "pack_header",
    "read_block_header",
]

BLOCK_MAGIC = b"\xd3BLK"
INDEX_HEADER = b"#ASDF BLOCK INDEX"
#: The 2-byte big-endian size of the header that follows the magic.
HEADER_SIZE = struct.Struct(">H")
#: flags, compression label, allocated size, used size, data size, md5
HEADER = struct.Struct(">I4sQQQ16s")
#: Uncompressed bytes per compressed piece (asdf's ``compression_block_size`` default).
PIECE = 1 << 22
#: Compressions the writer can stream (asdf's labels; None = raw).
SUPPORTED_COMPRESSION = (None, "lz4", "zlib", "bzp2")
#: Length prefix of an lz4 piece; the frame follows it.
_LZ4_LENGTH = struct.Struct(">I")
LZ4_FRAME_START = _LZ4_LENGTH.size
#: Bytes at the start of an lz4 piece: its length prefix and the frame's decompressed size.
LZ4_PIECE_HEAD = 8


@dataclass(frozen=True)
class BlockHeader:
    """One block's header, read from the file."""

    offset: int  #: where the block (its magic) starts
    header_size: int
    flags: int
    compression: bytes  #: the label without padding (b"" for raw)
    allocated: int
    used: int
    data_size: int
    checksum: bytes

    @property
    def data_offset(self) -> int:
        """Where the stored bytes start."""
        return self.offset + len(BLOCK_MAGIC) + HEADER_SIZE.size + self.header_size

    @property
    def end(self) -> int:
        """Where the block's allocated space ends."""
        return self.data_offset + self.allocated


def read_block_header(fh: Any, offset: int) -> BlockHeader:
    """The header of the block whose magic starts at ``offset`` of the binary file ``fh``.

    Raises ValueError when there is no block there (wrong magic or a short header).
    """
    fh.seek(offset)
    head = fh.read(len(BLOCK_MAGIC) + HEADER_SIZE.size)
    if len(head) < len(BLOCK_MAGIC) + HEADER_SIZE.size or head[: len(BLOCK_MAGIC)] != BLOCK_MAGIC:
        raise ValueError(f"no ASDF block at byte {offset}")
    (size,) = HEADER_SIZE.unpack(head[len(BLOCK_MAGIC) :])
    raw = fh.read(size)
    if size < HEADER.size or len(raw) < HEADER.size:
        raise ValueError(f"short ASDF block header at byte {offset}")
    flags, comp, allocated, used, data_size, checksum = HEADER.unpack(raw[: HEADER.size])
    return BlockHeader(
        offset, size, flags, comp.rstrip(b"\0"), allocated, used, data_size, checksum
    )


def pack_header(compression: bytes, used: int, data_size: int, checksum: bytes) -> bytes:
    """The magic, header size and header of a block stored in exactly ``used`` bytes."""
    header = HEADER.pack(0, compression.ljust(4, b"\0"), used, used, data_size, checksum)
    return BLOCK_MAGIC + HEADER_SIZE.pack(HEADER.size) + header


def lz4_piece_head(head: bytes) -> tuple[int, int]:
    """(stored length, decompressed size) from the first :data:`LZ4_PIECE_HEAD` bytes of an
    lz4 piece; its frame starts :data:`LZ4_FRAME_START` bytes in."""
    (length,) = _LZ4_LENGTH.unpack_from(head)
    return length, int.from_bytes(head[LZ4_FRAME_START:LZ4_PIECE_HEAD], "little")


class Compressor:
    """Turns a stream of uncompressed pieces into the bytes stored in a block."""

    def __init__(self, compression: str | None) -> None:
        if compression not in SUPPORTED_COMPRESSION:
            raise ValueError(f"unsupported compression {compression!r}")
        self.compression = compression
        self._stream: Any = None
        if compression == "zlib":
            import zlib

            self._stream = zlib.compressobj()
        elif compression == "bzp2":
            import bz2

            self._stream = bz2.BZ2Compressor()

    @property
    def label(self) -> bytes:
        """The block header's compression label (unpadded)."""
        return (self.compression or "").encode("ascii")

    def piece(self, data: memoryview) -> list[bytes | memoryview]:
        """The stored bytes of one piece of at most :data:`PIECE` bytes."""
        if self.compression is None:
            return [data]
        if self.compression == "lz4":
            import lz4.block

            frame = lz4.block.compress(data, mode="default", store_size=True)
            return [_LZ4_LENGTH.pack(len(frame)), frame]
        return [self._stream.compress(data)]

    def finish(self) -> list[bytes]:
        """What a stream compressor still holds."""
        if self._stream is not None:
            return [self._stream.flush()]
        return []


def decompress(stored: bytes, compression: bytes, size: int, path: Any) -> bytes:
    """The ``size`` uncompressed bytes of a whole raw or lz4 block (ValueError otherwise)."""
    if compression == b"":
        data = stored
    elif compression == b"lz4":
        import lz4.block

        parts, pos = [], 0
        while pos < len(stored):
            (length,) = _LZ4_LENGTH.unpack_from(stored, pos)
            pos += LZ4_FRAME_START
            parts.append(lz4.block.decompress(stored[pos : pos + length]))
            pos += length
        data = b"".join(parts)
    else:
        raise ValueError(f"{path}: cannot re-block a {compression!r} block")
    if len(data) != size:
        raise ValueError(f"{path}: block holds {len(data)} bytes, its header says {size}")
    return data


def block_index(offsets: list[int]) -> bytes:
    """The YAML block index asdf writes after the last block."""
    import yaml

    text = yaml.dump(
        [int(o) for o in offsets],
        Dumper=yaml.SafeDumper,
        explicit_start=True,
        explicit_end=True,
        allow_unicode=True,
        encoding="utf-8",
        version=(1, 1),
    )
    return INDEX_HEADER + b"\n" + text

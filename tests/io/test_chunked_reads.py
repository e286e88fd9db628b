"""The reader takes only the bytes of the requested chunk from raw and lz4 ASDF blocks."""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.io import asdf_reader, chunking
from romanxr.io.asdf_reader import AsdfBackendArray
from romanxr.io.cache import ArrayCache
from romanxr.io.chunking import default_chunks

KEYS = [
    (slice(None), slice(None), slice(None)),
    (slice(None), slice(3, 17), slice(None)),
    (slice(1, 3), slice(2, 30, 3), slice(5, 20, 2)),
    (2, slice(None, None, -1), 7),
    (slice(None), 31, slice(None)),
    (-1, -2, -3),
    (slice(3, 0, -1), slice(30, 1, -4), slice(None)),
    (slice(None), slice(None), slice(0, 4)),
    (slice(0, 0), slice(None), slice(None)),
]


def _write(path, array, compression, block_size=None):
    import asdf

    af = asdf.AsdfFile({"arr": array})
    kwargs = {"compression_block_size": block_size} if block_size else None
    af.write_to(path, all_array_compression=compression, compression_kwargs=kwargs)
    return path


@pytest.mark.parametrize(
    ("compression", "block_size"), [(None, None), ("lz4", None), ("lz4", 100), ("lz4", 4096)]
)
def test_partial_reads_equal_numpy_indexing(tmp_path, compression, block_size):
    array = np.arange(4 * 32 * 24, dtype=np.uint16).reshape(4, 32, 24) * 7
    path = _write(tmp_path / "a.asdf", array, compression, block_size)
    cache = ArrayCache()
    layout = cache.layout(str(path), ("arr",))
    assert layout is not None
    assert layout.compressed == (compression == "lz4")
    if block_size == 100:  # 100-byte compression chunks: many chunks per read
        assert len(layout.chunk_starts) > 50
    for key in KEYS:
        np.testing.assert_array_equal(layout.read(key), array[key], err_msg=str(key))


def test_backend_array_keeps_no_pixels_in_the_cache(tmp_path, monkeypatch):
    array = np.arange(3 * 16 * 8, dtype=np.float32).reshape(3, 16, 8)
    path = _write(tmp_path / "b.asdf", array, "lz4")
    cache = ArrayCache()
    monkeypatch.setattr(asdf_reader, "CACHE", cache)
    backend = AsdfBackendArray(str(path), ("arr",), array.shape, array.dtype)
    np.testing.assert_array_equal(backend._raw_getitem((slice(None), slice(4, 8))), array[:, 4:8])
    assert not cache._items  # no whole decompressed array kept
    assert len(cache._layouts) == 1


def test_other_compressions_fall_back_to_whole_array(tmp_path, monkeypatch):
    array = np.arange(2 * 8 * 8, dtype=np.int32).reshape(2, 8, 8)
    path = _write(tmp_path / "c.asdf", array, "zlib")
    cache = ArrayCache()
    monkeypatch.setattr(asdf_reader, "CACHE", cache)
    assert cache.layout(str(path), ("arr",)) is None
    backend = AsdfBackendArray(str(path), ("arr",), array.shape, array.dtype)
    np.testing.assert_array_equal(backend._raw_getitem((1, slice(2, 5))), array[1, 2:5])
    assert len(cache._items) == 1


def test_default_chunks_fit_memory_and_honour_target(monkeypatch):
    shape = {"resultant": 8, "y": 4096, "x": 4096}
    # plenty of memory: 16 MiB chunks, 128 rows
    monkeypatch.setattr(chunking, "_available_memory", lambda: 64 * 2**30)
    monkeypatch.setattr(chunking, "_dask_threads", lambda: 2)
    assert default_chunks(shape) == {"resultant": -1, "y": 128, "x": -1}
    # 1 GiB for 16 threads: 1 GiB / (4 * 16 * 16) = 1 MiB -> the 4 MiB floor, 32 rows
    monkeypatch.setattr(chunking, "_available_memory", lambda: 2**30)
    monkeypatch.setattr(chunking, "_dask_threads", lambda: 16)
    assert default_chunks(shape) == {"resultant": -1, "y": 32, "x": -1}
    # explicit target wins; never more rows than the frame has
    assert default_chunks(shape, target_bytes=64 * 2**20)["y"] == 512
    assert default_chunks({"resultant": 2, "y": 10, "x": 10}, target_bytes=2**30)["y"] == 10


def test_files_kept_open_for_memmaps_are_closed_at_exit(tmp_path):
    """Closed by an exit handler, not left to the collector at shutdown (which warns about
    each with a ResourceWarning, as the saturation property test's references did)."""
    import subprocess
    import sys

    path = _write(tmp_path / "m.asdf", np.arange(64, dtype=np.float32).reshape(8, 8), None)
    code = (
        "import atexit, sys\n"
        "def check():\n"
        "    from romanxr.io.cache import CACHE\n"
        "    print('open at exit' if CACHE._items else 'closed at exit')\n"
        # registered first, so it runs after romanxr's own exit handlers
        "atexit.register(check)\n"
        "from romanxr.io.cache import CACHE\n"
        "a = CACHE.get(sys.argv[1], ('arr',))\n"
        "assert float(a.sum()) == 2016.0\n"
        "assert CACHE._items  # kept with its open file (a raw block: a memmap)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "closed at exit"

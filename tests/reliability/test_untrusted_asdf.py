"""Untrusted ASDF files (issue 18, item 5): a YAML alias bomb fails fast with a
FileFormatError, and an array whose data ``source`` is a path or URL is refused."""

from __future__ import annotations

import re
import time

import pytest

import romanxr
from romanxr.cli import EXIT_CODES, main
from romanxr.errors import FileFormatError
from romanxr.io.asdf_guard import MAX_TREE_NODES, check_yaml_tree
from romanxr.refs import load_reference
from tests.io.writer_fakes import make_uncal_file

HEADER = (
    "#ASDF 1.0.0\n#ASDF_STANDARD 1.6.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n"
    "--- !core/asdf-1.1.0\n"
)
#: generous: the old code took minutes (20 s at depth 6); the check itself takes milliseconds
FAST = 10.0


def _bomb(path, depth=10):
    """~700 bytes: each level lists the previous one ten times (10**depth nodes)."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth):
        prev = f"*l{i - 1}"
        lines.append(f"l{i}: &l{i} [{', '.join([prev] * 10)}]")
    lines.append(f"roman: {{meta: *l{depth - 1}}}")
    path.write_text(HEADER + "\n".join(lines) + "\n...\n")
    return path


def test_bomb_is_small(tmp_path):
    assert 500 < _bomb(tmp_path / "b.asdf").stat().st_size < 1000


@pytest.mark.parametrize(
    "opener",
    [romanxr.open_uncal, romanxr.open_cal, lambda p: load_reference(p, "dark")],
    ids=["open_uncal", "open_cal", "load_reference"],
)
def test_alias_bomb_fails_fast(tmp_path, opener):
    bomb = _bomb(tmp_path / "bomb_uncal.asdf")
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match="aliases are expanded") as e:
        opener(bomb)
    assert time.perf_counter() - start < FAST
    assert str(bomb) in str(e.value)


def test_alias_bomb_through_romanxr_info(tmp_path, capsys):
    bomb = _bomb(tmp_path / "bomb_uncal.asdf")
    start = time.perf_counter()
    code = main(["info", str(bomb)])
    assert time.perf_counter() - start < FAST
    assert code == EXIT_CODES["input"] == 3
    assert "aliases are expanded" in capsys.readouterr().err


def test_small_aliases_are_fine(tmp_path):
    ok = _bomb(tmp_path / "ok.asdf", depth=3)  # 1000 nodes
    check_yaml_tree(ok)
    assert 10**5 < MAX_TREE_NODES


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.asdf"
    path.write_text(HEADER + "roman: &a {meta: [*a]}\n...\n")
    with pytest.raises(FileFormatError, match="contains itself"):
        romanxr.open_uncal(path)


def _with_source(tmp_path, source: str):
    good = make_uncal_file(tmp_path / "good_uncal.asdf")
    raw = good.read_bytes()
    end = raw.find(b"\n...\n")
    tree = re.sub(rb"source: 0\b", b"source: " + source.encode(), raw[:end], count=1)
    assert (tree != raw[:end]) == (source != "0")
    path = tmp_path / "external_uncal.asdf"
    path.write_bytes(tree + raw[end:])
    return path


@pytest.mark.parametrize(
    "source", ["../../secret/x.asdf", "'https://example.invalid/x.asdf'", "x.asdf"]
)
def test_external_block_source_is_refused(tmp_path, source):
    path = _with_source(tmp_path, source)
    with pytest.raises(FileFormatError, match="not a block of this file") as e:
        romanxr.open_uncal(path)
    assert str(path) in str(e.value) and source.strip("'") in str(e.value)


def test_integer_sources_are_accepted(tmp_path):
    path = _with_source(tmp_path, "0")  # unchanged
    assert romanxr.open_uncal(path)["data"].shape[0] > 0

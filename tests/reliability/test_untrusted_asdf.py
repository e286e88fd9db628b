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


def _whole_read_yaml(data: bytes) -> bytes:
    """The YAML part as defined: the earliest end marker or block in the first bytes."""
    from romanxr.io.asdf_guard import MAX_YAML_BYTES

    data = data[: MAX_YAML_BYTES + 1]
    ends = [i + len(m) for m in (b"\n...\n", b"\n...\r\n") if (i := data.find(m)) >= 0]
    if (block := data.find(b"\xd3BLK")) >= 0:
        ends.append(block)
    return data[: min(ends)] if ends else data


@pytest.mark.parametrize("mark", [b"\n...\n", b"\n...\r\n", b"\xd3BLK"])
@pytest.mark.parametrize("shift", [-12, -6, -5, -4, -3, -1, 0, 1, 2, 5, 65536])
def test_yaml_text_read_in_pieces_finds_the_same_end(tmp_path, mark, shift):
    """The tree is read in doubling pieces (issue 19: not 64 MiB of every file); an end
    marker cut by a piece boundary, or a second marker just after, gives the same text."""
    from romanxr.io.asdf_guard import _FIRST_READ, _yaml_text

    at = _FIRST_READ + shift
    body = b"a" * (at - len(HEADER)) + mark + b"\n...\n" + b"\xd3BLK" + b"z" * 100
    path = tmp_path / "t.asdf"
    path.write_bytes(HEADER.encode() + body)
    expected = _whole_read_yaml(path.read_bytes())
    assert expected.endswith(mark) or mark == b"\xd3BLK"
    assert _yaml_text(str(path)) == expected


def test_yaml_text_without_an_end_is_the_whole_small_file(tmp_path):
    from romanxr.io.asdf_guard import _FIRST_READ, _yaml_text

    path = tmp_path / "t.asdf"
    path.write_bytes(HEADER.encode() + b"b" * (3 * _FIRST_READ))
    assert _yaml_text(str(path)) == path.read_bytes()

"""Checks of an ASDF file's YAML tree made before asdf parses and validates it.

An ASDF file is untrusted input. Two things in its YAML are refused here, before asdf builds
the tree (which is where the cost or the harm would be):

* **Too large a tree once aliases are expanded.** YAML anchors and aliases let a few hundred
  bytes describe a tree of billions of nodes (an "alias bomb": each level lists the previous
  one ten times). asdf shares the aliased objects, but schema validation and every walk of the
  tree visit each of them, which takes minutes. The tree's size with aliases expanded is
  counted on the composed YAML graph (each node once, with memoised sizes: linear in the
  file) and a file over :data:`MAX_TREE_NODES` is a :class:`FileFormatError`. Recursive
  aliases (a node that contains itself) are refused too.
* **Array data outside the file.** An ASDF ``ndarray`` may name its block by an integer
  (a block of this file) or by a string: a relative path or a URL of another file, which asdf
  would open (through fsspec for URLs). Roman products keep their blocks inside the file; a
  string ``source`` could make a run read pixels from anywhere the process can reach, so only
  integer sources are accepted.
"""

from __future__ import annotations

import os
from typing import Any

from romanxr.errors import FileFormatError

__all__ = ["MAX_TREE_NODES", "MAX_YAML_BYTES", "check_yaml_tree"]

#: Most nodes the YAML tree may have with its aliases expanded. A full Roman uncal or cal
#: tree has a few thousand; a million leaves a wide margin and is walked in well under 1 s.
MAX_TREE_NODES = 1_000_000

#: Most bytes of YAML read before the blocks (a Roman product's tree is some tens of KiB).
MAX_YAML_BYTES = 64 * 2**20

_END_MARKS = (b"\n...\n", b"\n...\r\n")
_BLOCK_MAGIC = b"\xd3BLK"


#: First read of :func:`_yaml_text`; each further read doubles what is held.
_FIRST_READ = 1 << 16
#: Longest of the markers searched for: a marker that straddles the end of what is read so
#: far starts at least this close to that end.
_LONGEST_MARK = max(len(m) for m in (*_END_MARKS, _BLOCK_MAGIC))


def _tree_end(data: bytes) -> int | None:
    """Where the YAML part of ``data`` ends (document end marker or first block), or None."""
    ends = [i + len(m) for m in _END_MARKS if (i := data.find(m)) >= 0]
    block = data.find(_BLOCK_MAGIC)
    if block >= 0:
        ends.append(block)
    return min(ends) if ends else None


def _yaml_text(path: str) -> bytes:
    """The YAML part of the file: up to the document end marker or the first block.

    Read in doubling pieces, not :data:`MAX_YAML_BYTES` at once: a Roman tree is some tens of
    KiB, and reading (and searching) 64 MiB of every file opened cost ~50 ms each. The result
    is what searching the first ``MAX_YAML_BYTES + 1`` bytes gives: an end is taken once it
    lies more than a marker's length before the end of what is read, so no marker cut by the
    read can start before it.
    """
    limit = MAX_YAML_BYTES + 1
    with open(path, "rb") as fh:
        data = fh.read(min(_FIRST_READ, limit))
        while True:
            end = _tree_end(data)
            at_eof = len(data) >= limit
            if end is not None and end <= len(data) - _LONGEST_MARK:
                return data[:end]
            more = fh.read(min(len(data), limit - len(data))) if not at_eof else b""
            if not more:
                break
            data += more
    if end is not None:
        return data[:end]
    if len(data) > MAX_YAML_BYTES:
        raise FileFormatError(
            f"{path}: the ASDF tree is larger than {MAX_YAML_BYTES // 2**20} MiB of YAML "
            "(Roman products hold some tens of KiB); the file is corrupt or not a Roman product"
        )
    return data


def _expanded_size(root: Any, path: str) -> int:
    """Nodes of the composed YAML graph with aliases expanded (iterative, memoised)."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node, yaml):
                total += sizes[id(child)]
            sizes[key] = min(total, MAX_TREE_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise FileFormatError(
                f"{path}: the ASDF tree contains itself through a YAML alias (a recursive "
                "anchor); Roman products never do: the file is corrupt or crafted"
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node, yaml) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: Any, yaml: Any) -> list:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_sources(root: Any, path: str) -> None:
    """Refuse ndarrays whose ``source`` is not an integer block number of this file."""
    import yaml

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode) and "/ndarray-" in (node.tag or ""):
            for key, value in node.value:
                if getattr(key, "value", None) != "source":
                    continue
                if not (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":int")):
                    shown = getattr(value, "value", value)
                    raise FileFormatError(
                        f"{path}: an array's data source is {shown!r}, not a block of this "
                        "file; romanxr reads only arrays stored inside the file (Roman "
                        "products always are), never another file or a URL named by it"
                    )
        stack.extend(_children(node, yaml))


def check_yaml_tree(path: str | os.PathLike) -> None:
    """Refuse an ASDF file whose YAML tree is an alias bomb or names external array data.

    Raises
    ------
    FileFormatError
        A tree of more than :data:`MAX_TREE_NODES` nodes with its aliases expanded, a
        recursive alias, YAML that does not parse, or an ``ndarray`` whose ``source`` is not
        an integer (a path or URL of other data).
    """
    import yaml

    path = os.fspath(path)
    text = _yaml_text(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise FileFormatError(
            f"{path}: the ASDF tree is not valid YAML ({exc}); the file is truncated or corrupt"
        ) from exc
    except RecursionError:
        raise FileFormatError(
            f"{path}: the ASDF tree is nested too deeply to be read; the file is corrupt or crafted"
        ) from None
    if root is None:
        return
    size = _expanded_size(root, path)
    if size > MAX_TREE_NODES:
        raise FileFormatError(
            f"{path}: the ASDF tree has more than {MAX_TREE_NODES:,} nodes once its YAML "
            "aliases are expanded (a Roman product has a few thousand); it is not read, since "
            "validating it would take a very long time. The file is corrupt or crafted"
        )
    _check_sources(root, path)

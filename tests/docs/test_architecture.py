"""docs/architecture.rst names real modules, and its arrows between rooms are the code's."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "architecture.rst").read_text()
sys.path.insert(0, str(ROOT / "tools"))
import check_structure  # noqa: E402

# the rooms of the page, and the shared modules everything may use
ROOMS = {"io", "refs", "schedule", "kernels", "steps", "registry", "pipeline", "accessor"}
ROOMS |= {"cli", "testing", "demo", "plot", "summary", "exposures", "focal_plane"}
SHARED = {"errors", "dq", "dataset", "config", "wcs", "_version", "logsetup"}
# the arrows drawn on the page: room -> rooms it may import (besides SHARED)
ARROWS = {
    "cli": {"pipeline", "refs", "registry", "schedule", "demo", "exposures"},
    "demo": {"pipeline", "refs", "plot", "testing", "romanxr", "focal_plane", "schedule"},
    "pipeline": {"registry", "steps", "io", "refs", "schedule"},
    "steps": {"kernels", "refs", "io", "schedule"},
    "refs": {"io"},
    "io": {"schedule", "kernels"},
    "schedule": set(),
    "kernels": set(),
    "registry": set(),
    "accessor": {"steps", "pipeline", "io", "plot", "summary"},
    "testing": {"io", "refs", "kernels", "focal_plane"},
    "plot": set(),
    "focal_plane": {"plot"},
    "summary": {"registry"},
    "exposures": {"pipeline", "registry", "io"},
    "romanxr": {"accessor", "io", "pipeline", "exposures", "_startup"},
    "_startup": set(),
}


def _named_modules() -> list[str]:
    return sorted(set(re.findall(r":mod:`~?(romanxr[\w.]*)`", PAGE)))


def test_the_page_names_every_room_and_each_named_module_exists() -> None:
    named = _named_modules()
    assert len(named) > 30
    rooms = {m.split(".")[1] for m in named if m.count(".") >= 1}
    assert ROOMS - {"demo", "plot", "summary", "registry", "accessor", "focal_plane"} <= rooms
    for name in named:
        importlib.import_module(name)


def test_functions_and_classes_the_page_names_exist() -> None:
    for target in re.findall(r":(?:func|class):`~?(romanxr[\w.]+)`", PAGE):
        module, _, attr = target.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), target


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "romanxr"


def test_imports_between_rooms_follow_the_arrows_on_the_page() -> None:
    edges, _ = check_structure.import_graph(check_structure.modules(ROOT))
    seen: dict[str, set[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            a, b = _room(source), _room(target)
            if a != b and b not in SHARED:
                seen.setdefault(a, set()).add(b)
    unexpected = {a: sorted(bs - ARROWS.get(a, set())) for a, bs in seen.items()}
    assert {a: bs for a, bs in unexpected.items() if bs} == {}


def test_kernels_work_on_plain_arrays() -> None:
    # the page's promise: no xarray, no dask, no files in romanxr.kernels
    for path in (ROOT / "romanxr" / "kernels").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (xarray|dask)", text, re.M), path
        assert not re.search(r"\bopen\(", text), path

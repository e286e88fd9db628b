"""The house rules on romanxr's shape hold (tools/check_structure.py), and the checker can fail."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_structure", ROOT / "tools" / "check_structure.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


@pytest.fixture(scope="module")
def report():
    return checker.check(ROOT)


def test_no_long_module(report):
    assert report.long_modules == [], report.lines()


def test_no_complex_function(report):
    assert report.complex_functions == [], report.lines()


def test_no_import_cycle(report):
    assert report.cycles == [], report.lines()


def test_no_private_import_across_packages(report):
    assert report.private_imports == [], report.lines()


def test_no_repeated_block(report):
    assert report.repeats == [], report.lines()


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_checker_finds_each_kind_of_breach(tmp_path):
    body = "\n".join(f"    total = total + value * {i} - offset_{i}" for i in range(8))
    _write(
        tmp_path,
        {
            "romanxr/__init__.py": "",
            "romanxr/a/__init__.py": "",
            "romanxr/a/one.py": "from romanxr.b.two import _hidden\n",
            "romanxr/b/__init__.py": "",
            # two.py imports one.py back (inside a function: still a cycle)
            "romanxr/b/two.py": "def _hidden():\n    from romanxr.a import one\n",
            "romanxr/c.py": f"def f(value):\n    total = 0\n{body}\n\n\ndef g(value):\n"
            f"    total = 1\n{body}\n",
            "romanxr/long.py": "x = 1\n" * (checker.MAX_LINES + 1),
            "romanxr/branchy.py": "def h(x):\n"
            + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(30)),
        },
    )
    found = checker.check(tmp_path)
    assert found.private_imports == [("romanxr.a.one", "romanxr.b.two", "_hidden")]
    assert found.cycles == [["romanxr.a.one", "romanxr.b.two"]]
    assert found.long_modules == [("romanxr.long", checker.MAX_LINES + 1)]
    assert [(m, f) for m, f, _ in found.complex_functions] == [("romanxr.branchy", "h")]
    assert [(a, b) for a, _, b, _ in found.repeats] == [("romanxr.c", "romanxr.c")]
    assert not found.ok()
    assert checker.main([str(tmp_path)]) == 1


def test_checker_passes_a_clean_tree(tmp_path):
    _write(
        tmp_path,
        {
            "romanxr/__init__.py": "from romanxr.a import one\n",
            "romanxr/a/__init__.py": "from romanxr.a.one import _inside\n",
            "romanxr/a/one.py": '"""Doc."""\n\n\ndef _inside():\n    return 1\n',
        },
    )
    found = checker.check(tmp_path)
    assert found.ok(), found.lines()
    assert checker.main([str(tmp_path)]) == 0

"""Build the Sphinx documentation with warnings as errors and check the API reference.

The build writes plain text (the quickest builder) into a temporary folder; the checks read
that text: every public function/class and every ``ds.roman`` method must have a docstring,
and that docstring's summary line must appear in the API reference.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.filterwarnings("ignore:The mapping interface for autodoc options")

pytest.importorskip("sphinx")
sys.path.insert(0, str(DOCS / "_ext"))
import romanxr_docgen  # noqa: E402


def _words(text: str) -> list[str]:
    text = re.sub(r":[a-z]+(:[a-z]+)?:`~?", "`", text)  # reST roles render as their target
    return re.findall(r"[A-Za-z0-9]+", text)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    first = needle[0]
    return any(haystack[i : i + n] == needle for i, w in enumerate(haystack) if w == first)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("docs")
    # -W: any warning (a broken docstring, a missing page, a bad reference) fails the build
    code = build_main(["-W", "--keep-going", "-q", "-b", "text", str(DOCS), str(out)])
    assert code == 0, "sphinx-build -W failed; run `make docs` to see the warnings"
    return out


@pytest.mark.slow
def test_docs_build_without_warnings(built):
    for page in ("index", "installation", "quickstart", "crds", "coming-from-romancal"):
        assert (built / f"{page}.txt").stat().st_size > 500, page


@pytest.mark.slow
def test_every_step_has_a_user_guide_page(built):
    from romanxr.registry import STEPS

    for spec in STEPS:
        text = (built / "generated" / "steps" / f"{spec.name}.txt").read_text()
        assert "Reference types:" in text and "DQ bits:" in text
        for name in spec.parameters():
            assert name in text, (spec.name, name)


@pytest.mark.slow
def test_cli_reference_lists_every_command_and_step_option(built):
    from romanxr.cli import build_parser
    from romanxr.registry import STEPS

    text = (built / "generated" / "cli.txt").read_text()
    for name in romanxr_docgen._subparsers(build_parser()):
        assert f"romanxr {name}" in text
    assert "--steps.jump.rejection_threshold" in text
    assert all(f"--steps.{s.name}." in text for s in STEPS if s.parameters())


def _public() -> list[tuple[str, object]]:
    items = [
        (f"{mod}.{name}", obj)
        for mod, name, obj in romanxr_docgen.public_objects()
        if inspect.isfunction(obj) or inspect.isclass(obj)
    ]
    from romanxr.accessor import RomanAccessor

    items += [
        (f"RomanAccessor.{name}", getattr(RomanAccessor, name))
        for name in romanxr_docgen.accessor_methods()
    ]
    return items


def test_the_api_list_covers_the_accessor_and_the_package():
    names = {n for n, _ in _public()}
    assert {"RomanAccessor.plot", "RomanAccessor.summary", "RomanAccessor.calibrate"} <= names
    assert "romanxr.pipeline.calibrate" in names
    assert "romanxr.io.open_uncal" in names
    assert "romanxr.plot.RomanPlotter" in names
    assert len(names) > 60


@pytest.mark.parametrize("qualname, obj", _public(), ids=[n for n, _ in _public()])
def test_public_object_has_a_docstring(qualname, obj):
    doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj)
    assert doc and doc.strip(), f"{qualname} has no docstring"


@pytest.mark.slow
def test_every_docstring_appears_in_the_api_reference(built):
    api = _words((built / "generated" / "api.txt").read_text())
    missing = []
    for qualname, obj in _public():
        doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
        summary = _words(doc.strip().split("\n\n")[0])[:8]
        if not summary or not _contains(api, summary):
            missing.append(qualname)
    assert not missing, f"not in the API reference: {missing}"

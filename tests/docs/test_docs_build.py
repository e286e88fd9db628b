"""Build the Sphinx documentation with warnings as errors and check what it shows.

One HTML build (as ``make docs``) into a temporary folder serves every check: the notebooks
are executed during it (myst-nb) and their pages must show images and outputs, every step page
must show its figure, every public function/class and ``ds.roman`` method must have a
docstring whose summary appears in the API reference. The notebooks' own checks (their
``assert`` cells, no romancal log records in the outputs) are read from the notebooks the
build executed, so the suite runs each notebook once. The build is the session fixture
``built`` (``tests/docs/conftest.py``): once per test session, however the tests are spread
over xdist workers.
"""

from __future__ import annotations

import html
import inspect
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = [
    pytest.mark.filterwarnings("ignore:The mapping interface for autodoc options"),
    # the notebook kernels talk to the build over localhost ZMQ
    pytest.mark.enable_socket,
]

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
sys.path.insert(0, str(DOCS / "_ext"))
import romanxr_docgen  # noqa: E402


def _words(text: str) -> list[str]:
    text = re.sub(r":[a-z]+(:[a-z]+)?:`~?", "`", text)  # reST roles render as their target
    return re.findall(r"[A-Za-z0-9]+", text)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    first = needle[0]
    return any(haystack[i : i + n] == needle for i, w in enumerate(haystack) if w == first)


class _Text(HTMLParser):
    """The text of an HTML page's body, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    # a field list's "Reference types" and its ":" come in separate tags
    return re.sub(r"\s+:", ":", html.unescape(" ".join(parser.parts)))


def executed(built: Path, name: str):
    import nbformat

    return nbformat.read(built.parent / "jupyter_execute" / "generated" / "notebooks" / name, 4)


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
def test_docs_build_without_warnings(built):
    for page in ("index", "installation", "quickstart", "crds", "coming-from-romancal"):
        assert len(page_text(built / f"{page}.html")) > 500, page


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
def test_every_step_has_a_user_guide_page_with_a_figure(built):
    from romanxr.registry import STEPS

    for spec in STEPS:
        page = built / "generated" / "steps" / f"{spec.name}.html"
        text = page_text(page)
        assert "Reference types:" in text and "DQ bits:" in text
        for name in spec.parameters():
            assert name in text, (spec.name, name)
        # the figure made at build time from simulated data, and its file, a real PNG
        images = re.findall(r'<img[^>]*src="([^"]+\.png)"', page.read_text())
        assert images, f"{spec.name}: no figure on the step page"
        png = (page.parent / images[0]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, spec.name
        assert f"What {spec.name} does to a small simulated exposure" in text


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_page_shows_its_outputs_and_images(built, path):
    page = built / "generated" / "notebooks" / f"{path.stem}.html"
    source = page.read_text()
    # myst-nb renders each output in a div of its own; the figures as PNG images
    outputs = re.findall(r'class="cell_output', source)
    images = re.findall(r'<img[^>]*src="([^"]+\.png)"', source)
    assert len(outputs) >= 4, f"{path.name}: {len(outputs)} outputs rendered"
    assert images, f"{path.name}: no image on the rendered page"
    assert all((page.parent / src).is_file() for src in images)
    assert "Traceback" not in page_text(page)


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ran_cleanly_in_the_build(built, path):
    """What the notebook test checked when it executed the notebooks itself: no error output,
    at least four asserting cells (all of which ran), and no romancal/stpipe log records."""
    nb = executed(built, path.name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a cell did not run"
    outputs = [out for c in code for out in c.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert len([c for c in code if "assert" in c.source]) >= 4
    logged = [
        out for out in outputs if out.output_type == "stream" and " - stpipe" in out.get("text", "")
    ]
    assert not logged, logged[0].text[:500]


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
def test_cli_reference_lists_every_command_and_step_option(built):
    from romanxr.cli import build_parser
    from romanxr.registry import STEPS

    text = page_text(built / "generated" / "cli.html")
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
@pytest.mark.xdist_group("docs_build")
def test_every_docstring_appears_in_the_api_reference(built):
    api = _words(page_text(built / "generated" / "api.html"))
    missing = []
    for qualname, obj in _public():
        doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
        summary = _words(doc.strip().split("\n\n")[0])[:8]
        if not summary or not _contains(api, summary):
            missing.append(qualname)
    assert not missing, f"not in the API reference: {missing}"


@pytest.mark.slow
@pytest.mark.xdist_group("docs_build")
def test_notebook_progress_bar_is_one_updated_display(built):
    """In a notebook the bar is a display updated in place: the saved notebook (and so the
    docs page) keeps its last state, labelled and at 100 %, not every redraw."""
    nb = executed(built, "03_out_of_core.ipynb")
    cell = next(c for c in nb.cells if c.cell_type == "code" and "Progress(" in c.source)
    shown = [o for o in cell.outputs if o.output_type == "display_data"]
    assert len(shown) == 1
    text = shown[0].data["text/plain"]
    assert text.startswith("three detectors: [####################] 100%"), text
    streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert "three detectors" not in streams

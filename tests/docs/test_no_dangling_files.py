"""No page, docstring, notebook or CLI message cites a document that is not in the repository.

An internal note once cited as "algorithms.md" reached the rendered step pages and the output of
``romanxr steps``; readers could not open it. Every ``*.md``, ``*.rst`` or ``*.ipynb`` name in
what users read must be a file of the repository (or a page the docs build writes itself).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from romanxr.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC_NAME = re.compile(r"[\w./-]*\w\.(?:md|rst|ipynb)\b")
# pages written by docs/_ext/romanxr_docgen.py at build time
GENERATED = {"generated/cli.rst", "generated/api.rst", "cli.rst", "api.rst"}
NEVER = ("algorithms.md", "design.md")


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "romanxr", "docs", "notebooks", "README.md", "CONTRIBUTING.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if line]


def _read_by_users() -> dict[str, str]:
    texts = {}
    suffixes = {".py", ".rst", ".md", ".ipynb", ".css", ".html", ".toml", ".txt"}
    for path in _tracked():
        if path.suffix in suffixes and path.is_file():
            texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


def _known_names() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    names = set(GENERATED)
    for line in out.stdout.splitlines():
        names.add(line)
        names.add(Path(line).name)
    return names


def _dangling(text: str, known: set[str]) -> set[str]:
    found = set()
    for name in DOC_NAME.findall(text):
        if name not in known and Path(name).name not in known:
            found.add(name)
    return found


def test_sources_cite_only_files_that_exist():
    known = _known_names()
    bad = {}
    for where, text in _read_by_users().items():
        missing = _dangling(text, known) | {n for n in NEVER if n in text}
        if missing:
            bad[where] = sorted(missing)
    assert not bad, f"documents cited but not in the repository: {bad}"


def test_steps_listing_cites_only_files_that_exist(capsys):
    assert main(["steps"]) == 0
    out = capsys.readouterr().out
    assert "ramp_fit" in out
    assert not _dangling(out, _known_names())
    assert not [n for n in NEVER if n in out]


def test_the_check_can_fail():
    assert _dangling("see algorithms.md section 4", _known_names()) == {"algorithms.md"}
    assert _dangling("see docs/romancal.rst and README.md", _known_names()) == set()

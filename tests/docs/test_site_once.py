"""The docs site's build-once guard (``tests/docs/_site.py``), with a stand-in build."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from tests.docs._site import build_once


def _slow_build(root: Path) -> int:
    """A build that takes long enough for a second caller to arrive while it runs."""
    with (root.parent / "builds.log").open("a") as log:
        log.write("built\n")
    time.sleep(0.5)
    (root / "index.html").write_text("<html></html>")
    return 0


def _ask(root: str) -> int:
    return build_once(Path(root), _slow_build)


def test_two_processes_asking_at_once_build_once(tmp_path):
    root = tmp_path / "site"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        codes = pool.map(_ask, [str(root), str(root)])
    assert codes == [0, 0]
    assert (tmp_path / "builds.log").read_text() == "built\n"
    assert (root / "index.html").is_file()


def test_a_failed_build_is_reported_to_every_caller_not_rebuilt(tmp_path):
    calls = []

    def failing(root: Path) -> int:
        calls.append(root)
        return 2

    root = tmp_path / "site"
    assert build_once(root, failing) == 2
    assert build_once(root, failing) == 2
    assert calls == [root]

"""The helpers of benchmarks/bench_cli.py (the benchmark itself is not run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cli.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cli", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cli"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    from romanxr.testing import make_detector, make_reference_set

    return make_reference_set(tmp_path_factory.mktemp("bench_cli_refs"), make_detector((64, 64)))


def test_reference_files_are_found_by_their_reftype(bench, refs):
    found = bench.references_in(Path(refs.paths["mask"]).parent)
    assert found == {k: str(v) for k, v in refs.paths.items()}


def test_a_folder_without_references_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="no Roman reference files"):
        bench.references_in(tmp_path)


def test_both_tools_get_every_reference_and_the_same_skips(bench, refs):
    small = bench.step_options(refs.overrides(), 64)
    for reftype, path in refs.paths.items():
        assert sum(o.endswith(f".override_{reftype}={path}") for o in small) == 1, reftype
    skipped = {o.split(".")[1] for o in small if o.endswith(".skip=true")}
    assert skipped == {"source_catalog", "tweakreg", "refpix", "dark_decay"}
    full = bench.step_options(refs.overrides(), 4096)
    assert {o.split(".")[1] for o in full if o.endswith(".skip=true")} == {
        "source_catalog",
        "tweakreg",
    }
    cmds = bench.commands(Path("x_uncal.asdf"), Path("out"), small)
    assert cmds["romanxr"][1:3] == ["calibrate", "x_uncal.asdf"]
    assert cmds["romancal"][1:3] == ["roman_elp", "x_uncal.asdf"]
    assert cmds["romanxr"][5:] == cmds["romancal"][5:] == small

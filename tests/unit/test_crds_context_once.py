"""One run parses the CRDS context once (issue #19): every reference type and every
``pars-*`` step-parameter lookup of a calibration is answered from the same loaded rules,
with the same files and recorded names as when each lookup parses the context itself."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

import romanxr
from romanxr.refs import crds_client
from romanxr.refs.crds_client import clear_crds_cache, crds_best_reference
from romanxr.testing.crds_cache import build_local_crds_cache, write_fake_reference
from tests.cli._exposure import make_exposure


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    return make_exposure(tmp_path_factory.mktemp("context_once"))


@pytest.fixture
def loads(monkeypatch):
    """The names of the mappings crds reads and parses from disk, in order."""
    from crds.core import rmap

    names: list[str] = []
    real = rmap._load_mapping.uncached

    def counting(mapping, **keys):
        names.append(str(mapping))
        return real(mapping, **keys)

    monkeypatch.setattr(rmap._load_mapping, "uncached", counting)
    return names


def _references(exposure) -> dict:
    clear_crds_cache()
    with exposure.cache.activate():
        cal = romanxr.calibrate(exposure.uncal)
    return dict(cal.attrs["meta"]["ref_file"])


def test_a_run_parses_the_context_once_with_the_same_references(exposure, loads, monkeypatch):
    found = _references(exposure)
    crds_names = {k: v for k, v in found.items() if str(v).startswith("crds://")}
    assert len(crds_names) >= 5  # a run that needs many reference types
    pmaps = [name for name in loads if name.endswith(".pmap")]
    assert pmaps == [exposure.cache.context]
    rmaps = [name for name in loads if name.endswith(".rmap")]
    assert len(rmaps) == len(set(rmaps))  # no rules file parsed twice

    # each lookup parsing the context afresh (as before) selects exactly the same files
    monkeypatch.setattr(crds_client, "_reuse_mappings", lambda key: contextlib.nullcontext())
    loads.clear()
    assert _references(exposure) == found
    assert sum(name.endswith(".pmap") for name in loads) >= len(crds_names)


def _cache_with_gain(folder: Path, name: str):
    folder.mkdir()
    ref = write_fake_reference(folder / name, "gain", detector="WFI01")
    return build_local_crds_cache(folder / "crds", [ref])


def test_parsed_rules_are_kept_per_cache_folder(exposure, tmp_path, loads):
    meta = romanxr.open_uncal(exposure.uncal).attrs["meta"]
    one = _cache_with_gain(tmp_path / "one", "gain_one.asdf")
    two = _cache_with_gain(tmp_path / "two", "gain_two.asdf")
    clear_crds_cache()
    for _ in range(2):
        crds_client._RESULTS.clear()  # answers, not rules: the second round asks crds again
        crds_client._PARKEYS.clear()
        first, _ = crds_best_reference("gain", meta, crds_path=one.path)
        second, _ = crds_best_reference("gain", meta, crds_path=two.path)
        assert (Path(first).name, Path(second).name) == ("gain_one.asdf", "gain_two.asdf")
        assert Path(first).is_relative_to(one.path) and Path(second).is_relative_to(two.path)
    # both caches share the context's name, yet each folder's rules were read once
    assert sum(name.endswith(".pmap") for name in loads) == 2

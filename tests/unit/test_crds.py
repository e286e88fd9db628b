"""CRDS resolution through the real crds client, from offline caches written by romanxr.

Network is disabled in the test session and CRDS_SERVER_URL points to a ``.invalid`` host, so
everything here must resolve from the local cache alone.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
from functools import cache
from pathlib import Path

import crds  # noqa: F401  (imported at collection: urllib3 probes a socket on import)
import numpy as np
import pytest
import xarray as xr

from romanxr.errors import (
    CrdsConfigurationError,
    InputError,
    ReferenceNotFoundError,
    WrongProductError,
)
from romanxr.refs import crds_client, load_reference, resolve_reference
from romanxr.refs.crds_client import (
    clear_crds_cache,
    crds_best_reference,
    crds_environment,
    crds_parameters,
    is_offline_server,
)
from romanxr.registry import ALL_REFTYPES
from romanxr.testing.crds_cache import build_local_crds_cache, write_fake_reference

DETECTORS = ("WFI01", "WFI02")


def make_ref(path: Path, reftype: str, detector: str = "WFI01", **meta) -> Path:
    """A tiny fake reference; gains hold 1 + detector index so files can be told apart."""
    arrays = None
    if reftype == "gain":
        arrays = {"data": np.full((8, 8), 1.0 + DETECTORS.index(detector), dtype=np.float32)}
    return write_fake_reference(path, reftype, detector, arrays=arrays, **meta)


@cache
def _raw_meta() -> dict:
    import roman_datamodels.datamodels as dm

    from romanxr.io.product import to_plain

    return to_plain(dm.ScienceRawModel.create_fake_data(shape=(2, 8, 8)).meta)


def exposure_meta(detector: str = "WFI01", **changes) -> dict:
    """A full Level-1 meta tree (fake values) for ``detector``; changes by dotted name."""
    meta = copy.deepcopy(_raw_meta())
    meta["instrument"]["detector"] = detector
    for dotted, value in changes.items():
        node = meta
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return meta


@pytest.fixture(scope="module")
def ref_files(tmp_path_factory):
    """Fake references of every type for two detectors (darkdecaysignal: one for all)."""
    folder = tmp_path_factory.mktemp("refs")
    files: dict[str, list[Path]] = {}
    for reftype in ALL_REFTYPES:
        for detector in DETECTORS:
            if reftype == "darkdecaysignal" and detector != DETECTORS[0]:
                continue  # crds selects darkdecaysignal by time only
            path = make_ref(folder / f"{reftype}_{detector}.asdf", reftype, detector)
            files.setdefault(reftype, []).append(path)
    return files


@pytest.fixture(scope="module")
def crds_cache(ref_files, tmp_path_factory):
    return build_local_crds_cache(tmp_path_factory.mktemp("crds"), ref_files)


def expected_name(reftype: str, detector: str) -> str:
    det = DETECTORS[0] if reftype == "darkdecaysignal" else detector
    return f"{reftype}_{det}.asdf"


# ------------------------------------------------------------------------------------------
# resolution


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("reftype", ALL_REFTYPES)
def test_every_reftype_resolves_from_the_offline_cache(crds_cache, reftype, detector):
    path, context = crds_best_reference(reftype, exposure_meta(detector), crds_path=crds_cache.path)
    assert context == crds_cache.context == "roman_9000.pmap"
    assert Path(path) == crds_cache.references_dir / expected_name(reftype, detector)
    assert Path(path).is_file()


def test_two_detectors_pick_different_files(crds_cache):
    one, _ = crds_best_reference("dark", exposure_meta("WFI01"), crds_path=crds_cache.path)
    two, _ = crds_best_reference("dark", exposure_meta("WFI02"), crds_path=crds_cache.path)
    assert Path(one).name == "dark_WFI01.asdf"
    assert Path(two).name == "dark_WFI02.asdf"


def test_configuration_from_environment(crds_cache, monkeypatch):
    monkeypatch.setenv("CRDS_PATH", str(crds_cache.path))
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    ds = xr.Dataset(attrs={"meta": exposure_meta("WFI02")})
    ref = resolve_reference("gain", ds)
    assert ref.source == "crds"
    assert ref.context == "roman_9000.pmap"
    assert ref.name == "gain_WFI02.asdf"
    # meta.ref_file gets stpipe's form for a file CRDS chose
    assert ref.recorded == "crds://gain_WFI02.asdf"


def test_recorded_name_of_an_override_and_of_not_applicable(tmp_path):
    from romanxr.refs import ReferenceResolver

    (tmp_path / "my_gain.asdf").write_bytes(b"")
    meta = {"meta": exposure_meta("WFI02")}
    resolver = ReferenceResolver(overrides={"gain": tmp_path / "my_gain.asdf", "dark": "N/A"})
    assert resolver.resolve("gain", meta["meta"]).recorded == "my_gain.asdf"
    assert resolver.resolve("dark", meta["meta"]).recorded == "N/A"


def test_resolved_reference_loads(crds_cache):
    ds = xr.Dataset(attrs={"meta": exposure_meta("WFI02")})
    ref = resolve_reference("gain", ds, resolver=crds_cache.resolver())
    loaded = load_reference(ref)
    assert loaded.attrs["reftype"] == "gain"
    assert loaded["data"].dims == ("y", "x")
    assert loaded.sizes == {"y": 8, "x": 8}
    # make_ref wrote 1 + detector index into the WFI02 gain
    np.testing.assert_array_equal(loaded["data"].values, np.full((8, 8), 2.0, np.float32))


@pytest.mark.parametrize("reftype", ALL_REFTYPES)
def test_every_resolved_reftype_loads(crds_cache, reftype):
    ds = xr.Dataset(attrs={"meta": exposure_meta("WFI01")})
    ref = resolve_reference(reftype, ds, resolver=crds_cache.resolver())
    loaded = load_reference(ref)
    assert loaded.attrs["reftype"] == reftype
    assert loaded.attrs["meta"]["instrument"]["detector"] == "WFI01"


def test_selection_parameters_flatten_like_roman_datamodels():
    import roman_datamodels.datamodels as dm

    model = dm.ScienceRawModel.create_fake_data(shape=(2, 8, 8))
    from romanxr.io.product import to_plain

    ours = crds_parameters(to_plain(model.meta))
    theirs = model.get_crds_parameters()
    assert ours == theirs
    assert ours["roman.meta.instrument.detector"] == "WFI01"
    assert ours["roman.meta.exposure.start_time"] == "2020-01-01T00:00:00.000"


def test_selection_parameters_of_an_opened_uncal_file(tmp_uncal):
    import roman_datamodels.datamodels as dm

    from romanxr.io import open_uncal

    path = tmp_uncal(shape=(3, 16, 16))
    ours = crds_parameters(open_uncal(path).attrs["meta"])
    with dm.open(path) as model:
        theirs = model.get_crds_parameters()
    assert ours == theirs
    assert ours["roman.meta.exposure.read_pattern.2.0"] == 3


def test_pinned_context_and_crds_context(tmp_path, monkeypatch):
    old = make_ref(tmp_path / "gain_old.asdf", "gain")
    new = make_ref(tmp_path / "gain_new.asdf", "gain")
    root = tmp_path / "crds"
    build_local_crds_cache(root, {"gain": old}, context="roman_9000.pmap")
    latest = build_local_crds_cache(root, {"gain": new}, context="roman_9001.pmap")
    meta = exposure_meta()
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    # default: the cache's operational context, i.e. the newest build
    path, context = crds_best_reference("gain", meta, crds_path=root)
    assert (Path(path).name, context) == ("gain_new.asdf", latest.context)
    # pinned by argument
    path, context = crds_best_reference("gain", meta, crds_path=root, context="roman_9000.pmap")
    assert (Path(path).name, context) == ("gain_old.asdf", "roman_9000.pmap")
    # pinned by CRDS_CONTEXT
    monkeypatch.setenv("CRDS_CONTEXT", "roman_9000.pmap")
    path, context = crds_best_reference("gain", meta, crds_path=root)
    assert (Path(path).name, context) == ("gain_old.asdf", "roman_9000.pmap")


def test_useafter_picks_by_exposure_start(tmp_path):
    early = make_ref(tmp_path / "gain_2020.asdf", "gain", useafter="2020-01-01T00:00:00")
    late = make_ref(tmp_path / "gain_2027.asdf", "gain", useafter="2027-06-01T00:00:00")
    cache = build_local_crds_cache(tmp_path / "crds", [early, late])
    for start, name in [
        ("2026-01-01T00:00:00.000", "gain_2020.asdf"),
        ("2027-06-01T00:00:00.000", "gain_2027.asdf"),
        ("2030-01-01T00:00:00.000", "gain_2027.asdf"),
    ]:
        meta = exposure_meta(**{"exposure.start_time": start})
        path, _ = crds_best_reference("gain", meta, crds_path=cache.path)
        assert Path(path).name == name, start
    meta = exposure_meta(**{"exposure.start_time": "2019-01-01T00:00:00.000"})
    with pytest.raises(ReferenceNotFoundError, match="no gain reference"):
        crds_best_reference("gain", meta, crds_path=cache.path)


def test_optical_element_and_exposure_type_select(tmp_path):
    files = [
        make_ref(tmp_path / "flat_f062.asdf", "flat", **{"instrument.optical_element": "F062"}),
        make_ref(tmp_path / "flat_f158.asdf", "flat", **{"instrument.optical_element": "F158"}),
        make_ref(tmp_path / "dark_img.asdf", "dark", **{"exposure.p_exptype": "WFI_IMAGE|"}),
        make_ref(
            tmp_path / "dark_spec.asdf",
            "dark",
            **{"exposure.type": "WFI_SPECTRAL", "exposure.p_exptype": "WFI_SPECTRAL|WFI_SP_DARK|"},
        ),
    ]
    cache = build_local_crds_cache(tmp_path / "crds", files)
    assert {s[0] for s in cache.selections["dark"]} == {
        ("WFI01", "WFI_IMAGE"),
        ("WFI01", "WFI_SPECTRAL|WFI_SP_DARK"),
    }

    def pick(reftype, **changes):
        path, _ = crds_best_reference(reftype, exposure_meta(**changes), crds_path=cache.path)
        return Path(path).name

    assert pick("flat", **{"instrument.optical_element": "F158"}) == "flat_f158.asdf"
    assert pick("flat", **{"instrument.optical_element": "F062"}) == "flat_f062.asdf"
    assert pick("dark", **{"exposure.type": "WFI_IMAGE"}) == "dark_img.asdf"
    assert pick("dark", **{"exposure.type": "WFI_SP_DARK"}) == "dark_spec.asdf"


def test_not_applicable_is_none(tmp_path):
    cache = build_local_crds_cache(
        tmp_path / "crds",
        [make_ref(tmp_path / "gain.asdf", "gain")],
        not_applicable=["integralnonlinearity"],
    )
    path, context = crds_best_reference(
        "integralnonlinearity", exposure_meta(), crds_path=cache.path
    )
    assert path is None
    assert context == cache.context
    ds = xr.Dataset(attrs={"meta": exposure_meta()})
    ref = resolve_reference("integralnonlinearity", ds, resolver=cache.resolver())
    assert (ref.path, ref.name, ref.source) == (None, "N/A", "crds")


# ------------------------------------------------------------------------------------------
# errors


def assert_names_everything(exc: pytest.ExceptionInfo, reftype: str, context: str, crds_path):
    message = str(exc.value)
    assert reftype in message
    assert context in message
    assert f"CRDS_PATH={crds_path}" in message
    assert f"override_{reftype}" in message
    assert "Name or service not known" not in message
    assert "jsonrpc" not in message


def test_missing_file_in_cache(tmp_path):
    cache = build_local_crds_cache(
        tmp_path / "crds", [make_ref(tmp_path / "dark.asdf", "dark")], link=False
    )
    (cache.references_dir / "dark.asdf").unlink()
    with pytest.raises(ReferenceNotFoundError) as exc:
        crds_best_reference("dark", exposure_meta(), crds_path=cache.path)
    assert_names_everything(exc, "dark", cache.context, cache.path)
    assert "dark.asdf" in str(exc.value)
    assert "override_dark=" in str(exc.value)
    # the pipeline passes the command-line spelling of the fix, which the message then names
    with pytest.raises(ReferenceNotFoundError) as exc:
        crds_best_reference(
            "dark",
            exposure_meta(),
            crds_path=cache.path,
            option_hint="--steps.dark_current.override_dark=<path>",
        )
    assert "--steps.dark_current.override_dark=<path>" in str(exc.value)


def test_no_match_in_rules(crds_cache):
    with pytest.raises(ReferenceNotFoundError) as exc:
        crds_best_reference("saturation", exposure_meta("WFI07"), crds_path=crds_cache.path)
    assert_names_everything(exc, "saturation", crds_cache.context, crds_cache.path)
    assert "WFI07" in str(exc.value)


def test_missing_selection_parameter(crds_cache):
    meta = exposure_meta(**{"instrument.detector": None})
    with pytest.raises(ReferenceNotFoundError) as exc:
        crds_best_reference("mask", meta, crds_path=crds_cache.path)
    assert_names_everything(exc, "mask", crds_cache.context, crds_cache.path)
    assert "meta.instrument.detector" in str(exc.value)


def test_no_crds_path_and_no_server(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.setenv("CRDS_CONTEXT", "roman_0042.pmap")
    with pytest.raises(CrdsConfigurationError) as exc:
        crds_best_reference("flat", exposure_meta())
    assert_names_everything(exc, "flat", "roman_0042.pmap", "(unset)")
    assert isinstance(exc.value, ReferenceNotFoundError)
    assert isinstance(exc.value, FileNotFoundError)


def test_folder_that_is_not_a_cache(tmp_path):
    with pytest.raises(CrdsConfigurationError) as exc:
        crds_best_reference("gain", exposure_meta(), crds_path=tmp_path, context="roman_0001.pmap")
    assert_names_everything(exc, "gain", "roman_0001.pmap", tmp_path)
    assert "server_config" in str(exc.value)


def test_context_not_in_cache(crds_cache):
    with pytest.raises(CrdsConfigurationError) as exc:
        crds_best_reference(
            "gain", exposure_meta(), crds_path=crds_cache.path, context="roman_0001.pmap"
        )
    assert_names_everything(exc, "gain", "roman_0001.pmap", crds_cache.path)


def test_reftype_without_rules(tmp_path):
    cache = build_local_crds_cache(tmp_path / "crds", [make_ref(tmp_path / "g.asdf", "gain")])
    with pytest.raises(ReferenceNotFoundError) as exc:
        crds_best_reference("photom", exposure_meta(), crds_path=cache.path)
    assert_names_everything(exc, "photom", cache.context, cache.path)


def test_tampered_rules_fail_the_checksum(tmp_path):
    from crds.core import rmap

    cache = build_local_crds_cache(tmp_path / "crds", [make_ref(tmp_path / "g.asdf", "gain")])
    rules = cache.mappings_dir / "roman_wfi_gain_9000.rmap"
    for mapping in (cache.context, "roman_wfi_9000.imap", rules.name):
        rmap.load_mapping(str(cache.mappings_dir / mapping))  # checksums verified by crds
    rules.write_text(rules.read_text().replace("'WFI01'", "'WFI03'"))
    with pytest.raises(Exception, match="sha1sum mismatch"):
        rmap.load_mapping(str(rules))


# ------------------------------------------------------------------------------------------
# crds state, caching, threads


def _crds_env():
    return {k: v for k, v in os.environ.items() if k.startswith("CRDS_")}


def test_lookups_leave_crds_configuration_alone(crds_cache):
    from crds.client import api

    url_before = api.URL
    env_before = _crds_env()
    clear_crds_cache()
    crds_best_reference("gain", exposure_meta(), crds_path=crds_cache.path)
    with pytest.raises(ReferenceNotFoundError):
        crds_best_reference("gain", exposure_meta("WFI09"), crds_path=crds_cache.path)
    assert _crds_env() == env_before
    assert api.URL == url_before


def test_activate_sets_and_restores_environment(crds_cache):
    env_before = _crds_env()
    with crds_cache.activate():
        assert os.environ["CRDS_PATH"] == str(crds_cache.path)
        assert os.environ["CRDS_CONTEXT"] == crds_cache.context
        assert is_offline_server(os.environ["CRDS_SERVER_URL"])
        path, _ = crds_best_reference("mask", exposure_meta("WFI02"))
        assert Path(path).name == "mask_WFI02.asdf"
    assert _crds_env() == env_before
    env = crds_cache.environ()
    assert env["CRDS_PATH"] == str(crds_cache.path)
    assert "CRDS_CONTEXT" not in crds_cache.environ(pin_context=False)


def test_crds_environment_restores_after_error(tmp_path):
    env_before = _crds_env()
    with pytest.raises(RuntimeError), crds_environment({"CRDS_PATH": str(tmp_path)}):
        assert os.environ["CRDS_PATH"] == str(tmp_path)
        raise RuntimeError("boom")
    assert _crds_env() == env_before


def test_results_are_cached_per_selection(crds_cache, monkeypatch):
    clear_crds_cache()
    meta = exposure_meta("WFI01")
    first = crds_best_reference("linearity", meta, crds_path=crds_cache.path)

    def no_crds(*args, **kwargs):
        raise AssertionError("crds consulted again")

    monkeypatch.setattr(crds_client, "_lookup", no_crds)
    # same selection values (other meta differs) -> from the cache
    other = exposure_meta("WFI01", **{"observation.program": 12})
    assert crds_best_reference("linearity", other, crds_path=crds_cache.path) == first
    # another detector is a different selection
    with pytest.raises(AssertionError, match="consulted again"):
        crds_best_reference("linearity", exposure_meta("WFI02"), crds_path=crds_cache.path)
    clear_crds_cache()
    with pytest.raises(AssertionError, match="consulted again"):
        crds_best_reference("linearity", meta, crds_path=crds_cache.path)


def test_concurrent_lookups_from_threads(crds_cache):
    clear_crds_cache()
    jobs = [(rt, det) for rt in ("gain", "mask", "refpix") for det in DETECTORS] * 2

    def lookup(job):
        reftype, detector = job
        path, _ = crds_best_reference(reftype, exposure_meta(detector), crds_path=crds_cache.path)
        return Path(path).name

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lookup, jobs))
    assert names == [expected_name(rt, det) for rt, det in jobs]


def test_offline_lookups_never_touch_the_network(tmp_path, monkeypatch):
    import socket

    calls = []

    def record(*args, **kwargs):
        calls.append(args)
        raise OSError("network used")

    monkeypatch.setattr(socket, "getaddrinfo", record)
    # capitals in the path: crds lower-cases CRDS_CONFIG_URI, so it must not be relied on
    cache = build_local_crds_cache(
        tmp_path / "MyCache", [make_ref(tmp_path / "Gain.asdf", "gain", "WFI02")]
    )
    path, _ = crds_best_reference("gain", exposure_meta("WFI02"), crds_path=cache.path)
    assert Path(path) == cache.references_dir / "Gain.asdf"
    with pytest.raises(ReferenceNotFoundError):
        crds_best_reference("gain", exposure_meta("WFI03"), crds_path=cache.path)
    with cache.activate():
        import crds

        params = crds_parameters(exposure_meta("WFI02"))
        got = crds.getreferences(params, reftypes=["gain"], observatory="roman")
        assert Path(got["gain"]).name == "Gain.asdf"
    assert calls == []


def test_offline_server_detection():
    assert is_offline_server(None)
    assert is_offline_server("")
    assert is_offline_server("https://crds-offline.invalid")
    assert is_offline_server("https://roman-serverless-mode.stsci.edu")
    assert not is_offline_server("https://roman-crds.stsci.edu")


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_unreachable_server_falls_back_to_the_cache(crds_cache):
    # sockets are blocked in the test session: crds fails to connect, then uses the cache
    path, context = crds_best_reference(
        "gain",
        exposure_meta("WFI02"),
        crds_path=crds_cache.path,
        server_url="https://roman-crds-test.example.org",
    )
    assert (Path(path).name, context) == ("gain_WFI02.asdf", crds_cache.context)


def test_environ_alone_configures_a_fresh_process(crds_cache):
    """What a romancal run in a subprocess gets: only the environment variables."""
    import subprocess
    import sys

    script = (
        "import json, sys, crds\n"
        "params = json.loads(sys.argv[1])\n"
        "print(json.dumps(crds.getreferences(params, reftypes=['gain', 'flat'],"
        " observatory='roman')))\n"
    )
    params = crds_parameters(exposure_meta("WFI02"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(crds_cache.environ())
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(params)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: Path(v).name for k, v in got.items()} == {
        "gain": "gain_WFI02.asdf",
        "flat": "flat_WFI02.asdf",
    }


def test_instrument_context(crds_cache):
    path, context = crds_best_reference(
        "gain", exposure_meta("WFI02"), crds_path=crds_cache.path, context="roman_wfi_9000.imap"
    )
    assert (Path(path).name, context) == ("gain_WFI02.asdf", "roman_wfi_9000.imap")


# ------------------------------------------------------------------------------------------
# the cache builder


def test_builder_rejects_competing_files(tmp_path):
    a = make_ref(tmp_path / "gain_a.asdf", "gain")
    b = make_ref(tmp_path / "gain_b.asdf", "gain")
    with pytest.raises(InputError, match="compete"):
        build_local_crds_cache(tmp_path / "crds", [a, b])


def test_builder_rejects_file_of_another_type(tmp_path):
    gain = make_ref(tmp_path / "gain.asdf", "gain")
    with pytest.raises(WrongProductError, match="gain reference file given as dark"):
        build_local_crds_cache(tmp_path / "crds", {"dark": gain})


def test_builder_rejects_bad_context_name(tmp_path):
    gain = make_ref(tmp_path / "gain.asdf", "gain")
    with pytest.raises(InputError, match=r"roman_NNNN\.pmap"):
        build_local_crds_cache(tmp_path / "crds", [gain], context="my_context.pmap")


def test_builder_layout(crds_cache):
    assert (crds_cache.config_dir / "server_config").is_file()
    assert (crds_cache.mappings_dir / "roman_wfi_9000.imap").is_file()
    for reftype in ALL_REFTYPES:
        assert (crds_cache.mappings_dir / f"roman_wfi_{reftype}_9000.rmap").is_file()
    assert len(crds_cache.references["gain"]) == 2
    assert all(p.parent == crds_cache.references_dir for p in crds_cache.references["gain"])


# ------------------------------------------------------------------------------------------
# romancal's own path (stpipe -> crds.getreferences)


@pytest.mark.oracle
def test_stpipe_crds_client_resolves_from_cache(crds_cache):
    stpipe_crds = pytest.importorskip("stpipe.crds_client")
    import roman_datamodels.datamodels as dm

    model = dm.ScienceRawModel.create_fake_data(shape=(2, 8, 8))
    model.meta.instrument.detector = "WFI02"
    with crds_cache.activate():
        params = model.get_crds_parameters()
        for reftype in ALL_REFTYPES:
            got = stpipe_crds.get_reference_file(params, reftype, "roman")
            assert Path(got).name == expected_name(reftype, "WFI02")
        assert stpipe_crds.get_context_used("roman") == crds_cache.context


@pytest.mark.oracle
def test_romancal_step_resolves_from_cache(crds_cache):
    pytest.importorskip("romancal")
    import roman_datamodels.datamodels as dm
    from romancal.dq_init import DQInitStep

    model = dm.ScienceRawModel.create_fake_data(shape=(2, 8, 8))
    with crds_cache.activate():
        step = DQInitStep()
        assert Path(step.get_reference_file(model, "mask")).name == "mask_WFI01.asdf"
        # step parameters: N/A rules, found quietly
        assert dict(DQInitStep.get_config_from_reference(model)) == {}
        result = DQInitStep.call(model)
    assert result.meta.ref_file.mask == "crds://mask_WFI01.asdf"
    assert result.meta.ref_file.crds.context == crds_cache.context
    assert result.meta.cal_step.dq_init == "COMPLETE"

"""Which rule picks a reference: explicit argument > resolver override > CRDS."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from romanxr.errors import ReferenceNotFoundError
from romanxr.refs import ReferenceResolver, crds_client, resolve_reference
from romanxr.testing.crds_cache import build_local_crds_cache, write_fake_reference


def exposure_meta(detector: str) -> dict:
    import roman_datamodels.datamodels as dm

    from romanxr.io.product import to_plain

    meta = to_plain(dm.ScienceRawModel.create_fake_data(shape=(2, 8, 8)).meta)
    meta["instrument"]["detector"] = detector
    return meta


def make_ref(path: Path, reftype: str) -> Path:
    return write_fake_reference(path, reftype, "WFI01")


@pytest.fixture
def cache_and_files(tmp_path):
    in_crds = make_ref(tmp_path / "gain_crds.asdf", "gain")
    override = make_ref(tmp_path / "gain_override.asdf", "gain")
    explicit = make_ref(tmp_path / "gain_explicit.asdf", "gain")
    cache = build_local_crds_cache(tmp_path / "crds", [in_crds])
    return cache, override, explicit


@pytest.fixture
def exposure():
    return xr.Dataset(attrs={"meta": exposure_meta("WFI01")})


def test_crds_when_nothing_else(cache_and_files, exposure):
    cache, _, _ = cache_and_files
    ref = resolve_reference("gain", exposure, resolver=cache.resolver())
    assert (ref.name, ref.source, ref.context) == ("gain_crds.asdf", "crds", cache.context)


def test_override_beats_crds(cache_and_files, exposure):
    cache, override, _ = cache_and_files
    resolver = cache.resolver(overrides={"gain": override})
    ref = resolve_reference("gain", exposure, resolver=resolver)
    assert (Path(ref.path), ref.source, ref.context) == (override, "override", None)


def test_explicit_beats_override(cache_and_files, exposure):
    cache, override, explicit = cache_and_files
    resolver = cache.resolver(overrides={"gain": override})
    ref = resolve_reference("gain", exposure, explicit=explicit, resolver=resolver)
    assert (Path(ref.path), ref.source) == (explicit, "argument")


def test_override_and_explicit_never_consult_crds(cache_and_files, exposure, monkeypatch):
    _, override, explicit = cache_and_files

    def no_crds(*args, **kwargs):
        raise AssertionError("CRDS consulted")

    monkeypatch.setattr(crds_client, "crds_best_reference", no_crds)
    resolver = ReferenceResolver(overrides={"override_GAIN": override})
    assert resolve_reference("gain", exposure, resolver=resolver).source == "override"
    assert resolve_reference("gain", exposure, explicit=explicit).source == "argument"
    with pytest.raises(AssertionError, match="CRDS consulted"):
        resolve_reference("gain", exposure, resolver=ReferenceResolver())


@pytest.mark.parametrize("where", ["explicit", "override"])
def test_na_means_not_applicable(where, exposure):
    if where == "explicit":
        ref = resolve_reference("dark", exposure, explicit="N/A")
    else:
        ref = resolve_reference(
            "dark", exposure, resolver=ReferenceResolver(overrides={"dark": "n/a"})
        )
    assert ref.path is None
    assert ref.name == "N/A"


@pytest.mark.parametrize("where", ["explicit", "override"])
def test_missing_given_file_names_the_option(where, tmp_path, exposure):
    missing = tmp_path / "nope.asdf"
    with pytest.raises(ReferenceNotFoundError) as exc:
        if where == "explicit":
            resolve_reference("saturation", exposure, explicit=missing)
        else:
            resolve_reference(
                "saturation",
                exposure,
                resolver=ReferenceResolver(overrides={"saturation": missing}),
            )
    message = str(exc.value)
    assert str(missing) in message
    assert "override_saturation" in message


def test_meta_mapping_works_like_a_dataset(cache_and_files):
    cache, _, _ = cache_and_files
    ref = cache.resolver().resolve("gain", exposure_meta("WFI01"))
    assert ref.name == "gain_crds.asdf"

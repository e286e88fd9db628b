"""asdf's plugin lists built by :func:`romanxr.io.asdf_setup.prepare_asdf` (issue #19).

The quick path must give asdf exactly what its own entry-point loading gives (same schemas,
same extensions in the same order, same converters), and must not import stpipe or crds.
Each side runs in a fresh interpreter, since asdf builds the lists once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DESCRIBE = """
import json, sys
{setup}
config = asdf.get_config()
resources = config.resource_manager
print(json.dumps({{
    "resources": sorted((uri, len(resources[uri])) for uri in resources),
    "mappings": [[m.package_name, type(m.delegate).__name__] for m in config.resource_mappings],
    "extensions": [
        [e.extension_uri, e.package_name, sorted(t.tag_uri for t in e.tags),
         [type(c.delegate).__qualname__ for c in e.converters]]
        for e in config.extensions
    ],
    "modules": sorted({{name.split(".")[0] for name in sys.modules}}),
}}))
"""
PLAIN = "import asdf"
QUICK = "from romanxr.io.asdf_setup import prepare_asdf\nasdf = prepare_asdf()"


def describe(setup: str) -> dict:
    code = DESCRIBE.format(setup=setup)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both() -> tuple[dict, dict]:
    return describe(PLAIN), describe(QUICK)


def test_quick_lists_are_asdfs_own(both):
    plain, quick = both
    assert len(plain["extensions"]) > 10  # the comparison has something to compare
    for key in ("resources", "mappings", "extensions"):
        assert quick[key] == plain[key], key


def test_stpipe_schemas_are_there_without_importing_stpipe(both):
    plain, quick = both
    stpipe = [
        uri for uri, _ in quick["resources"] if uri.startswith("http://stsci.edu/schemas/stpipe/")
    ]
    assert stpipe, "stpipe's schemas are missing from asdf's resources"
    assert "stpipe" in plain["modules"]  # what the quick path saves (asdf's loading imports it)
    assert not {"stpipe", "crds", "romancal"} & set(quick["modules"])


def test_prepare_leaves_yaml_and_asdf_as_they_were():
    code = (
        "import yaml, asdf._entry_points as p\n"
        "before = (yaml.safe_load, p.entry_points)\n"
        f"{QUICK}\n"
        "assert (yaml.safe_load, p.entry_points) == before\n"
        "assert prepare_asdf() is asdf\n"
        "print(yaml.safe_load('a: [1, 2]'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "{'a': [1, 2]}"


# --- parsed schemas kept between validations ---------------------------------------------

SCHEMA_URI = "asdf://romanxr.test/schemas/kept-1.0.0"


def _schema(kind: str) -> bytes:
    return (
        f"%YAML 1.1\n---\n$schema: http://stsci.edu/schemas/yaml-schema/draft-01\n"
        f"id: {SCHEMA_URI}\ntype: {kind}\n...\n"
    ).encode()


def _count_yaml_loads(monkeypatch) -> list:
    import yaml

    calls: list = []
    load = yaml.load

    def counting(stream, Loader):
        calls.append(stream)
        return load(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "load", counting)
    return calls


def test_a_second_validation_parses_no_schema(monkeypatch):
    from romanxr.io.asdf_setup import prepare_asdf

    prepare_asdf()
    import roman_datamodels.datamodels as dm
    from asdf.exceptions import ValidationError

    model = dm.FlatRefModel.create_fake_data(shape=(8, 8))
    model.validate()
    calls = _count_yaml_loads(monkeypatch)
    model.validate()
    assert calls == []  # asdf alone parses ~30 schemas again here
    model.meta.instrument.detector = "WFI99"  # not an enum value: validation still bites
    with pytest.raises(ValidationError):
        model.validate()


def test_a_schema_whose_bytes_change_is_parsed_again(monkeypatch):
    import asdf.schema

    from romanxr.io.asdf_setup import prepare_asdf

    asdf = prepare_asdf()
    seen = []
    for kind in ("object", "string", "object"):
        with asdf.config_context() as config:
            config.add_resource_mapping({SCHEMA_URI: _schema(kind)})
            calls = _count_yaml_loads(monkeypatch)
            seen.append((asdf.schema._make_schema_loader()(SCHEMA_URI)[0]["type"], len(calls)))
            monkeypatch.undo()
    # parsed for each new content; the third content was seen before: no parse
    assert seen == [("object", 1), ("string", 1), ("object", 0)]

"""asdf's extension list, built once per process and quickly: :func:`prepare_asdf`.

The first ``asdf.open`` of a process asks every installed plugin for its extensions and
schema directories, and on this stack that was the largest fixed cost of a small calibration
(about half of a 256x256 ``romanxr calibrate``), for two reasons:

* the manifests of roman_datamodels (and of the other plugins) are parsed with
  ``yaml.safe_load``, PyYAML's pure-Python parser, about ten times slower than the C one
  (libyaml) that asdf uses for everything else;
* the stpipe plugin's only contribution is a folder of schemas, yet loading it imports the
  ``stpipe`` package and with it crds (~280 modules) before any file is read.

:func:`prepare_asdf` builds asdf's lists itself, in the same order and from the same plugins,
with these two costs taken out: while it runs, ``yaml.safe_load`` parses with PyYAML's C
loader (same constructor, so the same Python objects), and stpipe's schema folder is handed to
asdf without importing stpipe (the folder and URI prefix stpipe itself registers; if that
folder is not where it is expected, stpipe's plugin is loaded as usual). Lists that asdf
already has (someone opened a file before) are left alone.

It also keeps the schemas that validation parses. asdf's validator resolves each ``$ref`` to
another schema by parsing that schema's YAML again, every time a file, a model or a
reference is validated (asdf caches the parsed schemas it reads from files, but not those it
gets from its resource manager, which is where every Roman schema comes from): about 90
parses and 1 s of CPU for each validation of a source catalog, 0.6 s over a small
calibration. :func:`prepare_asdf` has asdf parse each such schema once per process and
content (a resource whose bytes change is parsed again) and hand the same parsed tree to the
validator after that, as asdf already does for file schemas.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["STPIPE_SCHEMA_PREFIX", "datamodels", "prepare_asdf"]

#: the URI prefix of stpipe's schemas (what its asdf plugin registers)
STPIPE_SCHEMA_PREFIX = "http://stsci.edu/schemas/stpipe/"
_STPIPE_ENTRY = "stpipe._integration:get_resource_mappings"

_LOCK = threading.Lock()
_DONE = False
#: schemas from asdf's resource manager, parsed: (uri, the resource's bytes) -> parsed tree
_PARSED: dict[tuple[str, Any], Any] = {}


def _stpipe_schemas() -> str | None:
    """stpipe's schema folder, found without importing stpipe (None where it is not)."""
    spec = importlib.util.find_spec("stpipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "resources", "schemas")
    return folder if os.path.isdir(folder) else None


class _SchemaFolderEntry:
    """Stands in for stpipe's entry point: same distribution, same mapping, no import."""

    def __init__(self, entry: Any, folder: str) -> None:
        self.entry = entry
        self.dist = entry.dist
        self.name = entry.name
        self.value = entry.value
        self.group = entry.group
        self.folder = folder

    def load(self) -> Any:
        from asdf.resource import DirectoryResourceMapping

        def mappings() -> list:
            return [DirectoryResourceMapping(self.folder, STPIPE_SCHEMA_PREFIX, recursive=True)]

        return mappings


@contextlib.contextmanager
def _quick_plugins() -> Iterator[None]:
    """While inside: C-parsed ``yaml.safe_load``, stpipe's schema entry point not imported."""
    import yaml
    from asdf import _entry_points as plugins

    listed = plugins.entry_points
    folder = _stpipe_schemas()

    def entry_points(**kwargs: Any) -> list:
        found = list(listed(**kwargs))
        if folder is None:
            return found
        return [_SchemaFolderEntry(e, folder) if e.value == _STPIPE_ENTRY else e for e in found]

    safe_load = yaml.safe_load
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is not None:
        yaml.safe_load = lambda stream: yaml.load(stream, Loader=c_loader)
    plugins.entry_points = entry_points
    try:
        yield
    finally:
        plugins.entry_points = listed
        yaml.safe_load = safe_load


def _cached_schema_loader(make_loader: Any) -> Any:
    """Wrap asdf's ``schema._make_schema_loader``: resource-manager schemas parsed once."""

    def make_cached_loader() -> Any:
        import yaml
        from asdf import get_config, yamlutil

        fallback = make_loader()

        def load_schema(url: str) -> tuple[Any, str]:
            manager = get_config().resource_manager
            if url not in manager:
                return fallback(url)
            key = (url, manager[url])
            parsed = _PARSED.get(key)
            if parsed is None:
                # asdf's own parse of a resource-manager schema (its loader is a SafeLoader)
                parsed = _PARSED.setdefault(key, yaml.load(key[1], Loader=yamlutil.AsdfLoader))
            return parsed, url

        return load_schema

    make_cached_loader.romanxr_wraps = make_loader  # type: ignore[attr-defined]
    return make_cached_loader


def _keep_parsed_schemas() -> None:
    """Install :func:`_cached_schema_loader` in asdf (once)."""
    from asdf import schema

    if not hasattr(schema._make_schema_loader, "romanxr_wraps"):
        schema._make_schema_loader = _cached_schema_loader(schema._make_schema_loader)


def prepare_asdf() -> Any:
    """Import asdf and build its resource and extension lists once (quickly); returns asdf.

    Safe to call any number of times and from several threads; the lists are the ones asdf
    would build itself (see the module docstring for what is done differently).
    """
    global _DONE
    import asdf

    if _DONE:
        return asdf
    with _LOCK:
        if not _DONE:
            config = asdf.get_config()
            with _quick_plugins():
                config.resource_mappings  # noqa: B018 (the property builds the list)
                config.extensions  # noqa: B018
            _keep_parsed_schemas()
            _DONE = True
    return asdf


def datamodels() -> Any:
    """``roman_datamodels.datamodels``, imported after :func:`prepare_asdf`.

    Importing roman_datamodels, or making its first model, would otherwise have asdf build
    its plugin lists the slow way (0.8 s more in a fresh process).
    """
    prepare_asdf()
    import roman_datamodels.datamodels as dm

    return dm

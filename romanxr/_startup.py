"""What ``import romanxr`` does, kept cheap: lazy public names and the ``ds.roman`` hook.

``import romanxr`` used to import xarray, dask, numba, scipy and every step (1.3-2 s); the
command line (``romanxr --help``) paid it too, since ``romanxr.cli`` is inside the package.
Now the public functions load on first use (:func:`lazy_attribute`) and the accessor is
registered the moment xarray is imported (:func:`when_imported`), at once if it already is:
a ``Dataset`` cannot exist before xarray does, so ``ds.roman`` is there on every Dataset,
and a command that never touches xarray never imports it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["lazy_attribute", "when_imported"]


def lazy_attribute(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[attr]`` (``"module:attribute"``) on use."""

    def __getattr__(name: str) -> Any:
        try:
            target = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attribute = target.split(":")
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then the callbacks (the module is complete by then)."""

    def __init__(self, loader: importlib.abc.Loader, callbacks: list[Callable[[], Any]]) -> None:
        self.loader = loader
        self.callbacks = callbacks

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        for callback in self.callbacks:
            callback()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``name`` with the other finders and wraps its loader (once)."""

    def __init__(self, name: str, callbacks: list[Callable[[], Any]]) -> None:
        self.name = name
        self.callbacks = callbacks
        self.local = threading.local()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name or getattr(self.local, "busy", False):
            return None
        self.local.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.local.busy = False
        if spec is None or spec.loader is None:
            return spec
        sys.meta_path.remove(self)
        spec.loader = _Loader(spec.loader, self.callbacks)
        return spec


def when_imported(name: str, callback: Callable[[], Any]) -> None:
    """Call ``callback()`` once module ``name`` is imported: now if it is already."""
    if name in sys.modules:
        callback()
        return
    for finder in sys.meta_path:
        if isinstance(finder, _Finder) and finder.name == name:
            finder.callbacks.append(callback)
            return
    sys.meta_path.insert(0, _Finder(name, [callback]))

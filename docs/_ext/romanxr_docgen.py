"""Sphinx extension: write the generated pages of the romanxr docs before reading the sources.

* ``generated/cli.rst``: the command-line reference, from ``romanxr.cli.build_parser()``
  (every sub-command's ``--help``; ``calibrate`` with every ``--steps.<step>.<param>`` option);
* ``generated/api.rst``: the API reference, an autodoc entry for every name in the ``__all__``
  of the public modules (each documented once, where it is defined) and the ``ds.roman``
  accessor's methods;
* ``generated/steps/<step>.rst``: a user-guide page per pipeline step (what it does, a figure
  of it on simulated data (:mod:`romanxr_stepfigures`), its parameters, reference types, DQ
  bits, and its docstring with the differences from romancal);
* ``generated/notebooks/*.ipynb``: copies of ``notebooks/``, executed by myst-nb during the
  build so that their pages show the outputs.

The same lists are used by ``tests/docs`` to check that everything public is documented.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

#: The notebooks rendered into the docs (executed at build time).
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

#: Modules whose ``__all__`` is the public API, in the order of the API reference.
PUBLIC_MODULES = (
    "romanxr",
    "romanxr.io",
    "romanxr.registry",
    "romanxr.pipeline",
    "romanxr.exposures",
    "romanxr.steps.dq_init",
    "romanxr.steps.saturation",
    "romanxr.steps.refpix",
    "romanxr.steps.dark_decay",
    "romanxr.steps.wfi18_transient",
    "romanxr.steps.linearity",
    "romanxr.steps.jump",
    "romanxr.steps.ramp_fit",
    "romanxr.steps.dark_current",
    "romanxr.steps.assign_wcs",
    "romanxr.steps.photom",
    "romanxr.steps.flatfield",
    "romanxr.steps.source_catalog",
    "romanxr.steps.tweakreg",
    "romanxr.steps.saturated_exposure",
    "romanxr.io.catalog_io",
    "romanxr.refs",
    "romanxr.wcs",
    "romanxr.plot",
    "romanxr.summary",
    "romanxr.dataset",
    "romanxr.dq",
    "romanxr.errors",
    "romanxr.testing",
    "romanxr.testing.crds_cache",
    "romanxr.testing.catalog_refs",
    "romanxr.cli",
    "romanxr.demo",
)

#: DQ bits each step sets or reads.
STEP_DQ = {
    "dq_init": "sets ``pixeldq`` from the MASK reference (DO_NOT_USE, DEAD, HOT, "
    "REFERENCE_PIXEL...), GW_AFFECTED_DATA | DO_NOT_USE in the guide-star window, and "
    "``groupdq`` from the file's ``resultantdq``",
    "saturation": "``groupdq``: SATURATED (from the crossing resultant on), AD_FLOOR | "
    "DO_NOT_USE (values <= 0), DO_NOT_USE (read-level look-ahead); ``pixeldq``: the SATURATION "
    "reference dq, NO_SAT_CHECK",
    "refpix": "reads BAD_REF_PIXEL (zeroed reference pixels); sets none",
    "dark_decay": "none",
    "wfi18_transient": "``groupdq``: DO_NOT_USE | WFI18_TRANSIENT on the affected rows "
    "(WFI18 only)",
    "linearity": "``pixeldq``: the LINEARITY reference dq, NO_LIN_CORR; ``groupdq``: "
    "DO_NOT_USE where the corrected value is clamped",
    "jump": "``groupdq``: JUMP_DET",
    "ramp_fit": "``dq`` = ``pixeldq`` plus JUMP_DET, SATURATED, DO_NOT_USE, NO_GAIN_VALUE... "
    "carried up from the resultants",
    "dark_current": "``dq``: the DARK reference dq",
    "assign_wcs": "none",
    "photom": "none (metadata only)",
    "flatfield": "``dq``: the FLAT reference dq, NO_FLAT_FIELD where the flat is invalid",
    "source_catalog": "reads DO_NOT_USE (masked pixels; ``warning_flags`` of a source whose "
    "centre pixel has it); sets none",
    "tweakreg": "reads the catalog's ``warning_flags`` (DO_NOT_USE sources are not matched); "
    "sets none",
}


def public_objects() -> list[tuple[str, str, Any]]:
    """(module, name, object) for every public name, each object once, where it is defined."""
    seen: set[int] = set()
    found: list[tuple[str, str, Any]] = []
    deferred: list[tuple[str, str, Any]] = []
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            home = getattr(obj, "__module__", None)
            if not str(home or "romanxr").startswith("romanxr"):
                continue  # e.g. a numpy dtype exported as a constant
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and home != modname:
                deferred.append((modname, name, obj))
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                if id(obj) in seen:
                    continue
                seen.add(id(obj))
            found.append((modname, name, obj))

    # re-exports whose home module is not listed: documented under the listed package that
    # holds the home module (romanxr.pipeline.calibrate, defined in romanxr.pipeline.calibration),
    # else under the first module that exports them
    def rank(item: tuple[str, str, Any]) -> int:
        home = item[2].__module__
        return -len(item[0]) if home.startswith(item[0] + ".") else 0

    for modname, name, obj in sorted(deferred, key=rank):
        if id(obj) not in seen and obj.__module__ not in PUBLIC_MODULES:
            seen.add(id(obj))
            found.append((modname, name, obj))
    return found


def accessor_methods() -> list[str]:
    """Public methods and properties of the ``ds.roman`` accessor."""
    from romanxr.accessor import RomanAccessor

    return [n for n in vars(RomanAccessor) if not n.startswith("_")]


def _attribute_docs(modname: str) -> dict[str, str]:
    """``#:`` comments of a module's constants (what autodoc shows for data)."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # a compiled or source-less module
        return {}
    return {name: "\n".join(lines) for (scope, name), lines in docs.items() if scope == ""}


def _directive(modname: str, name: str, obj: Any) -> str | None:
    target = f"{modname}.{name}"
    if inspect.isclass(obj):
        return f".. autoclass:: {target}\n   :members:\n"
    if callable(obj):
        return f".. autofunction:: {target}\n"
    home = modname
    if name not in _attribute_docs(home):
        return None  # an undocumented constant: listed by name only
    return f".. autodata:: {target}\n   :no-value:\n"


def write_api(folder: Path) -> None:
    lines = [
        "API reference",
        "=============",
        "",
        "Every public function and class, grouped by module; names re-exported elsewhere "
        "(``romanxr.open_uncal`` is ``romanxr.io.open_uncal``) are documented once, where they "
        "are defined.",
        "",
        "The ``ds.roman`` accessor",
        "-------------------------",
        "",
        "Importing romanxr registers it. Each step method forwards to the step function of the "
        "same name.",
        "",
        ".. autoclass:: romanxr.accessor.RomanAccessor",
        "   :members:",
        "   :special-members: _repr_html_",
        "",
    ]
    current = None
    constants: list[str] = []
    for modname, name, obj in public_objects():
        if modname != current:
            if constants:
                lines += ["Constants: " + ", ".join(constants) + ".", ""]
                constants = []
            current = modname
            lines += ["", f"``{modname}``", "-" * (len(modname) + 4), ""]
            lines += [f".. currentmodule:: {modname}", ""]
        directive = _directive(modname, name, obj)
        if directive is None:
            constants.append(f"``{name}``")
        else:
            lines.append(directive)
    if constants:
        lines += ["Constants: " + ", ".join(constants) + ".", ""]
    (folder / "api.rst").write_text("\n".join(lines) + "\n")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _block(text: str) -> list[str]:
    return [".. code-block:: text", ""] + [f"   {line}".rstrip() for line in text.splitlines()]


def write_cli(folder: Path) -> None:
    from romanxr import cli

    parser = cli.build_parser()
    lines = [
        "Command-line reference",
        "======================",
        "",
        "Generated from ``romanxr.cli.build_parser()``: exactly what ``romanxr ... --help`` "
        "prints.",
        "",
        "Exit codes: "
        + ", ".join(f"``{code}`` {name}" for name, code in cli.EXIT_CODES.items())
        + ".",
        "",
        "romanxr",
        "-------",
        "",
        *_block(parser.format_help()),
        "",
    ]
    for name, sub in _subparsers(parser).items():
        title = f"romanxr {name}"
        lines += [title, "-" * len(title), "", *_block(sub.format_help()), ""]
    (folder / "cli.rst").write_text("\n".join(lines) + "\n")


def write_steps(folder: Path) -> None:
    from romanxr_stepfigures import write_figures

    from romanxr.registry import STEPS

    folder.mkdir(parents=True, exist_ok=True)
    captions = write_figures(folder)
    for position, spec in enumerate(STEPS, start=1):
        func = spec.load()
        module = importlib.import_module(f"romanxr.steps.{spec.module}")
        intro = inspect.getdoc(module) or inspect.getdoc(func) or ""
        intro = intro.split("\n\n")[0]
        reftypes = spec.reftypes
        title = f"{spec.name}"
        aliases = ", ".join(f"``{a}``" for a in spec.aliases)
        aliases = f" (also spelled {aliases})" if aliases else ""
        lines = [
            title,
            "=" * len(title),
            "",
            intro,
            "",
            f":Position: {position} of {len(STEPS)} in the Exposure Level Pipeline "
            f"({'ramp' if spec.level == 'ramp' else 'image'} input"
            f"{', imaging exposures only' if spec.imaging_only else ''})",
            f":Python: ``romanxr.steps.{spec.module}.{spec.function}(ds, ...)`` or "
            f"``ds.roman.{spec.name}(...)``",
            f":Pipeline option: ``steps={{'{spec.name}': {{...}}}}`` / "
            f"``--steps.{spec.name}.<parameter>=<value>``" + aliases,
            f":meta.cal_step: ``{spec.cal_step}``"
            if spec.cal_step
            else ":meta.cal_step: none (recorded in ``attrs['step_parameters']['jump']``)",
            ":Reference types: "
            + (", ".join(f"``{r.upper()}``" for r in reftypes) if reftypes else "none"),
            f":DQ bits: {STEP_DQ.get(spec.name, 'see the docstring')}",
            "",
            f".. figure:: {spec.name}.png",
            f"   :alt: {spec.name} applied to a simulated exposure",
            "   :width: 100%",
            "",
            f"   What {spec.name} does to a small simulated exposure (made while these pages were "
            f"built): {captions[spec.name]}",
            "",
            "Parameters",
            "----------",
            "",
        ]
        params = spec.parameters()
        if params:
            lines += [
                ".. list-table::",
                "   :header-rows: 1",
                "",
                "   * - parameter",
                "     - default",
                "     - meaning",
            ]
            for p in params.values():
                text = " ".join(str(p.help or "").split()) or "(see below)"
                lines += [f"   * - ``{p.name}``", f"     - ``{p.default!r}``", f"     - {text}"]
        else:
            lines.append("None besides ``skip`` and the reference overrides.")
        lines += [
            "",
            "Every step also takes ``skip`` (pipeline only) and ``override_<reftype>=path`` "
            "(use that file instead of asking CRDS).",
            "",
            "Reference and differences from romancal",
            "---------------------------------------",
            "",
            "The full docstring; its *Differences from romancal* part lists what romanxr does "
            "on purpose differently from romancal 1.1.0 (see also :doc:`../../romancal`).",
            "",
            f".. autofunction:: romanxr.steps.{spec.module}.{spec.function}",
            "   :no-index:",
            "",
        ]
        (folder / f"{spec.name}.rst").write_text("\n".join(lines) + "\n")


def copy_notebooks(folder: Path) -> list[Path]:
    """Copy ``notebooks/*.ipynb`` (stripped, as committed) into ``folder`` for myst-nb, which
    executes them during the build; a copy is rewritten only when its source changed, so an
    incremental build does not re-read unchanged pages."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        target = folder / source.name
        text = source.read_text()
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        copies.append(target)
    return copies


def generate(app: Any) -> None:
    folder = Path(app.srcdir) / "generated"
    folder.mkdir(exist_ok=True)
    write_api(folder)
    write_cli(folder)
    write_steps(folder / "steps")
    copy_notebooks(folder / "notebooks")


_STRAY_BAR = re.compile(r"(?<![`\\])\|=")


def escape_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list) -> None:
    """Escape a bare ``|=`` (Python's in-place OR, common in DQ prose) so that reST does not read
    it as the start of a substitution."""
    for i, line in enumerate(lines):
        if "|=" in line:
            parts = line.split("``")
            parts[::2] = [_STRAY_BAR.sub(r"\\|=", p) for p in parts[::2]]
            lines[i] = "``".join(parts)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", escape_docstring)
    return {"parallel_read_safe": True, "version": "1"}

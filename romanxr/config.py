"""Step parameters: specs derived from the step functions, and stpipe-style option parsing.

The step functions are the single source of truth: a parameter's name, default and help text
come from the function's signature and numpy-style docstring. This module adds the spellings
users already type for romancal (``--steps.jump.rejection_threshold=500``,
``steps={"flat": {"override_flat": ...}}``, ``skip=True``) and config files (TOML, YAML, or an
stpipe parameter file in ASDF or YAML).

Precedence, lowest first: step defaults < config file < keyword arguments / command line.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from romanxr.errors import ConfigError

__all__ = [
    "COMMON_PARAMETERS",
    "STPIPE_IGNORED",
    "ParameterSpec",
    "RecordedOptions",
    "coerce_value",
    "load_config_file",
    "merge_step_options",
    "normalize_step_name",
    "parameter_specs",
    "parameter_specs_from_source",
    "parse_step_option",
]

#: parameters every pipeline step accepts on top of its own
COMMON_PARAMETERS = {
    "skip": (False, "Skip this step (its cal_step becomes SKIPPED)."),
    "save_results": (
        False,
        "Also write this step's output (<input>_<suffix>.asdf), like --save-intermediate.",
    ),
}

#: stpipe's generic step parameters that have no meaning in romanxr (accepted and ignored,
#: so that pasted ``strun`` arguments and stpipe parameter files work)
STPIPE_IGNORED = frozenset(
    {
        "pre_hooks",
        "post_hooks",
        "output_file",
        "output_dir",
        "output_ext",
        "output_use_model",
        "output_use_index",
        "search_output_file",
        "input_dir",
        "suffix",
        "update_version",
    }
)


@dataclass(frozen=True)
class ParameterSpec:
    """One step parameter: name, default value, python type and help text."""

    name: str
    default: Any
    type: type | None
    help: str


def _docstring_params(doc: str) -> dict[str, str]:
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\w[\w ]*\n-+\n|\Z)", doc, re.S | re.M)
    if not match:
        return {}
    helps: dict[str, str] = {}
    current = None
    for line in match.group(1).splitlines():
        if line and not line.startswith(" "):
            names = line.split(":")[0]
            current = [n.strip() for n in names.split(",")]
            for n in current:
                helps[n] = ""
        elif current and line.strip():
            for n in current:
                helps[n] = (helps[n] + " " + line.strip()).strip()
    return helps


def _specs(keywords: list[tuple[str, Any]], doc: str) -> dict[str, ParameterSpec]:
    helps = _docstring_params(doc)
    specs: dict[str, ParameterSpec] = {}
    for name, default in keywords:
        if name in {"resolver"}:
            continue
        typ = type(default) if default is not None else (str if "override" in name else None)
        text = helps.get(name, "")
        if not text and name.startswith("override_"):
            text = (
                f"{name.removeprefix('override_').upper()} reference file to use instead of "
                "the one CRDS selects."
            )
        specs[name] = ParameterSpec(name, default, typ, text)
    for name, (default, text) in COMMON_PARAMETERS.items():
        specs.setdefault(name, ParameterSpec(name, default, bool, text))
    return specs


def parameter_specs(func: Any) -> dict[str, ParameterSpec]:
    """Parameters of a step function (keyword-only ones, minus internal plumbing)."""
    keywords = [
        (name, None if param.default is inspect.Parameter.empty else param.default)
        for name, param in inspect.signature(func).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    return _specs(keywords, inspect.getdoc(func) or "")


def parameter_specs_from_source(source: str, function: str) -> dict[str, ParameterSpec] | None:
    """:func:`parameter_specs` of ``function`` read from its module's source, unimported.

    ``romanxr calibrate -h`` lists every step's parameters; importing the steps for that
    would import dask, scipy and the numba kernels (~1.5 s). None when the function is not
    a top-level ``def`` of ``source`` or a default is not a literal: then import it.
    """
    body = ast.parse(source).body
    # module constants used as defaults (``catalog: str = DEFAULT_CATALOG``)
    constants = {
        node.targets[0].id: node.value
        for node in body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            break
    else:
        return None
    args = node.args
    try:
        defaults = [
            None if d is None else ast.literal_eval(constants.get(getattr(d, "id", None), d))
            for d in args.kw_defaults
        ]
    except ValueError:
        return None
    keywords = [(arg.arg, default) for arg, default in zip(args.kwonlyargs, defaults, strict=True)]
    return _specs(keywords, ast.get_docstring(node) or "")


_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}


def coerce_value(text: Any, spec: ParameterSpec, where: str = "") -> Any:
    """Convert a command-line or config value to the parameter's type."""
    if not isinstance(text, str):
        if spec.type is float and isinstance(text, int) and not isinstance(text, bool):
            return float(text)
        return text
    low = text.strip().lower()
    if low == "" and isinstance(spec.default, str):
        # a string parameter's empty value (stpipe's unset string, e.g. tweakreg's
        # catalog_path) stays ''; one whose default is None (override_*) reads '' as None
        return text
    if low in {"none", "null", ""} and spec.type is not bool:
        return None
    try:
        if spec.type is bool:
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if spec.type is int:
            return int(text)
        if spec.type is float:
            return float(text)
    except ValueError:
        kind = spec.type.__name__ if spec.type else "value"
        raise ConfigError(f"{where}{spec.name}: {text!r} is not a valid {kind}") from None
    if spec.type is None:
        # no default to learn the type from: numbers stay numbers
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
    return text


def closest(name: str, choices: list[str]) -> str:
    """A 'did you mean' suffix for an unknown name."""
    best = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {best[0]!r}?" if best else f"; valid names: {', '.join(choices)}"


def parse_step_option(option: str) -> tuple[str, str, str]:
    """Split ``steps.<step>.<param>=<value>`` (leading dashes allowed) into its parts."""
    text = option.lstrip("-")
    if "=" not in text:
        raise ConfigError(f"{option!r}: expected steps.<step>.<parameter>=<value>")
    key, value = text.split("=", 1)
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != "steps" or not parts[1] or not parts[2]:
        raise ConfigError(f"{option!r}: expected steps.<step>.<parameter>=<value>")
    return parts[1], parts[2].replace("-", "_"), value


def normalize_step_name(name: str) -> str:
    """Canonical spelling for matching step names across romanxr, romancal and stpipe.

    Lower case, no underscores or dashes, no module path and no ``Step`` suffix, so that
    ``dark_current``, ``DarkCurrentStep``, ``romancal.dark_current.DarkCurrentStep`` and
    ``darkcurrent`` all compare equal.
    """
    text = str(name).strip().rsplit(".", 1)[-1].lower().replace("_", "").replace("-", "")
    if text.endswith("step") and len(text) > 4:
        text = text[:-4]
    return text


def _read_tree(path: Path) -> Any:
    suffix = path.suffix.lower()
    head = path.read_bytes()[:5]
    if suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text())
    if suffix == ".asdf" or head == b"#ASDF":
        import asdf

        with asdf.open(path, lazy_load=False, memmap=False) as af:
            return {k: af.tree[k] for k in af.tree if not k.startswith("asdf_")}
    if suffix == ".cfg":  # stpipe's legacy ConfigObj format
        from configobj import ConfigObj

        return ConfigObj(str(path), raise_errors=True).dict()
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _step_entries(tree: Mapping[str, Any], path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """(step name, parameters) pairs from any accepted layout."""
    steps = tree.get("steps", None)
    entries: list[tuple[str, Mapping[str, Any]]] = []
    if steps is None:
        # no 'steps' table: top-level tables are steps (``[jump]`` in TOML); a lone
        # stpipe step file (``class: ...JumpStep`` + ``parameters``) is that one step
        if "parameters" in tree and ("class" in tree or "name" in tree):
            name = tree.get("name") or tree.get("class")
            if normalize_step_name(str(name)) not in {"exposurepipeline", "romanelp"}:
                return [(str(name), tree["parameters"] or {})]
            return []
        return [(str(k), v) for k, v in tree.items() if isinstance(v, Mapping)]
    if isinstance(steps, list):  # stpipe parameter file: [{class, name, parameters}]
        for entry in steps:
            if not isinstance(entry, Mapping):
                raise ConfigError(f"config file {path}: every entry of 'steps' must be a mapping")
            name = entry.get("name") or entry.get("class")
            if not name:
                raise ConfigError(f"config file {path}: a 'steps' entry has no name or class")
            entries.append((str(name), entry.get("parameters", {}) or {}))
    elif isinstance(steps, Mapping):
        for name, params in steps.items():
            if params is None:
                params = {}
            if not isinstance(params, Mapping):
                raise ConfigError(
                    f"config file {path}: steps.{name} must be a table of parameters, "
                    f"got {params!r}"
                )
            if "parameters" in params and isinstance(params["parameters"], Mapping):
                params = params["parameters"]
            entries.append((str(name), params))
    else:
        raise ConfigError(f"config file {path}: 'steps' must be a table/mapping or a list")
    return entries


def load_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read step parameters from a TOML, YAML, ASDF or stpipe parameter file.

    Accepted layouts (step names in any romanxr/romancal/stpipe spelling):

    * TOML/YAML ``{"steps": {step: {param: value}}}`` (``[steps.jump]`` tables in TOML), or
      the step tables at top level (``[jump]``);
    * stpipe's parameter file (ASDF or YAML, as written by ``strun --save-parameters``):
      ``{"class": ..., "name": ..., "parameters": {...}, "steps": [{"class": ...,
      "name": step, "parameters": {...}}]}``; the pipeline's own ``class``/``name``/
      ``parameters`` are ignored;
    * stpipe's legacy ConfigObj ``.cfg`` (``[steps]`` / ``[[jump]]``).

    Step and parameter names are checked later by
    :func:`romanxr.pipeline.resolve_step_options`. A relative path given to an
    ``override_<reftype>`` parameter is taken relative to the config file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        tree = _read_tree(path)
    except Exception as exc:
        raise ConfigError(f"config file {path} cannot be parsed: {exc}") from exc
    if not isinstance(tree, Mapping):
        raise ConfigError(f"config file {path}: expected a table/mapping at top level")
    if "roman" in tree:
        return _recorded_parameters(tree, path)
    out: dict[str, dict[str, Any]] = {}
    for name, params in _step_entries(tree, path):
        clean = {
            k: _relative_to(path.parent, k, v)
            for k, v in dict(params).items()
            if k not in {"class", "name"}
        }
        out.setdefault(name, {}).update(clean)
    return out


def _relative_to(folder: Path, name: str, value: Any) -> Any:
    """A relative path given to an ``override_*`` parameter in a config file, made relative to
    the file's folder (not to wherever the run starts), as one expects of a file that names
    its neighbours."""
    if not name.startswith("override_") or not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text.upper() == "N/A" or "://" in text or Path(text).expanduser().is_absolute():
        return value
    return str(folder.resolve() / text)


class RecordedOptions(dict):
    """Step parameters read from a product's record: they may hold values a step decided at
    run time, which are not parameters (:func:`romanxr.pipeline.resolve_step_options` drops
    those)."""


def _recorded_parameters(tree: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """The step parameters a romanxr product recorded (its ``romanxr.step_parameters``)."""
    node = tree.get("romanxr") or {}
    record = node.get("step_parameters") if isinstance(node, Mapping) else None
    if not record:
        raise ConfigError(
            f"config file {path} is a Roman product without romanxr's record of step "
            "parameters (romancal's cal files keep none); pass a parameter file instead"
        )
    return RecordedOptions({str(step): dict(params) for step, params in record.items()})


def merge_step_options(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict]:
    """Merge step-option layers; later layers win parameter by parameter."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step, params in (layer or {}).items():
            merged.setdefault(step, {}).update(params or {})
    return merged

"""Step parameters: specs derived from the step functions, and stpipe-style option parsing.

The step functions are the single source of truth: a parameter's name, default and help text
come from the function's signature and numpy-style docstring. This module adds the spellings
users already type for romancal (``--steps.jump.rejection_threshold=500``,
``steps={"flat": {"override_flat": ...}}``, ``skip=True``) and config files (TOML, YAML, or an
stpipe parameter file in ASDF or YAML).

Precedence, lowest first: step defaults < config file < keyword arguments / command line.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from romanxr.errors import ConfigError

__all__ = [
    "ParameterSpec",
    "coerce_value",
    "load_config_file",
    "merge_step_options",
    "parameter_specs",
    "parse_step_option",
]

#: parameters every pipeline step accepts on top of its own
COMMON_PARAMETERS = {"skip": (False, "Skip this step (its cal_step becomes SKIPPED).")}


@dataclass(frozen=True)
class ParameterSpec:
    """One step parameter: name, default value, python type and help text."""

    name: str
    default: Any
    type: type | None
    help: str


def _docstring_params(func: Any) -> dict[str, str]:
    doc = inspect.getdoc(func) or ""
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


def parameter_specs(func: Any) -> dict[str, ParameterSpec]:
    """Parameters of a step function (keyword-only ones, minus internal plumbing)."""
    helps = _docstring_params(func)
    specs: dict[str, ParameterSpec] = {}
    for name, param in inspect.signature(func).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY or name in {"resolver"}:
            continue
        default = None if param.default is inspect.Parameter.empty else param.default
        typ = type(default) if default is not None else (str if "override" in name else None)
        specs[name] = ParameterSpec(name, default, typ, helps.get(name, ""))
    for name, (default, text) in COMMON_PARAMETERS.items():
        specs.setdefault(name, ParameterSpec(name, default, bool, text))
    return specs


_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}


def coerce_value(text: Any, spec: ParameterSpec, where: str = "") -> Any:
    """Convert a command-line or config value to the parameter's type."""
    if not isinstance(text, str):
        if spec.type is float and isinstance(text, int) and not isinstance(text, bool):
            return float(text)
        return text
    low = text.strip().lower()
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
    if len(parts) != 3 or parts[0] != "steps":
        raise ConfigError(f"{option!r}: expected steps.<step>.<parameter>=<value>")
    return parts[1], parts[2], value


def load_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read step parameters from a TOML, YAML or stpipe parameter (ASDF/YAML) file.

    Accepted layouts: ``{"steps": {step: {param: value}}}`` (TOML/YAML), stpipe's
    ``{"steps": [{"name": step, "parameters": {...}}]}`` or ``{"parameters": {...}}`` nested
    under ``steps``, with or without a top-level ``class`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            tree = tomllib.loads(path.read_text())
        elif suffix == ".asdf":
            import asdf

            with asdf.open(path, lazy_load=False) as af:
                tree = {k: af.tree[k] for k in af.tree if not k.startswith("asdf_")}
        else:
            import yaml

            tree = yaml.safe_load(path.read_text()) or {}
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"config file {path} cannot be parsed: {exc}") from exc
    steps = tree.get("steps", {}) if isinstance(tree, Mapping) else {}
    out: dict[str, dict[str, Any]] = {}
    if isinstance(steps, list):  # stpipe parameter-file layout
        for entry in steps:
            name = entry.get("name")
            params = entry.get("parameters", {})
            if name:
                out[str(name)] = dict(params)
    elif isinstance(steps, Mapping):
        for name, params in steps.items():
            if isinstance(params, Mapping) and "parameters" in params:
                params = params["parameters"]
            out[str(name)] = dict(params or {})
    else:
        raise ConfigError(f"config file {path}: 'steps' must be a table/mapping")
    return out


def merge_step_options(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict]:
    """Merge step-option layers; later layers win parameter by parameter."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step, params in (layer or {}).items():
            merged.setdefault(step, {}).update(params or {})
    return merged

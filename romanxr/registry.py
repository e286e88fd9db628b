"""The step registry: every step of the Exposure Level Pipeline, in order, and what it needs.

One :class:`StepSpec` per step says where its function lives, under which names users know it
(romanxr's, romancal's, stpipe's), which ``meta.cal_step`` key records it, which CRDS reference
types it reads, what it takes and gives (ramp or image), and its parameters (read from the step
function's signature and docstring, so they cannot drift from the code).

This is the one place where the three spellings of a step meet: the step name (``dark_current``,
``flatfield``), the ``meta.cal_step`` key romancal records (``dark``, ``flat_field``) and the
romancal/stpipe names (``rampfit``, ``FlatFieldStep``). Everything else (pipeline, command line,
summary, docs) asks here: :func:`get_step` takes any spelling, :attr:`StepSpec.key` is the
``cal_step`` key, :attr:`StepSpec.reftypes` the reference types.

Adding a step: write ``romanxr/steps/<module>.py``, add its :class:`StepSpec` to :data:`STEPS`
at its place in the pipeline order, and forward it from the accessor
(``tests/unit/test_accessor.py`` fails until the accessor has it).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from romanxr.config import (
    ParameterSpec,
    closest,
    normalize_step_name,
    parameter_specs,
    parameter_specs_from_source,
)
from romanxr.errors import ConfigError

if TYPE_CHECKING:  # the registry is read by `romanxr -h`: no xarray at import
    import xarray as xr

__all__ = [
    "ALL_REFTYPES",
    "NOT_RUN_STEPS",
    "STEPS",
    "StepSpec",
    "find_step",
    "get_step",
    "override_options",
]


@dataclass(frozen=True)
class StepSpec:
    """A pipeline step.

    Attributes
    ----------
    name : str
        The name used in ``steps={...}``, on the command line and as accessor method.
    module, function : str
        Where the step function lives (``romanxr.steps.<module>.<function>``).
    cal_step : str or None
        Its key in ``meta.cal_step`` (romancal's spelling: ``dark``, ``flat_field``); None for
        a step romancal does not record (``jump``).
    suffix : str
        File suffix of its saved intermediate product (``_rampfit.asdf``).
    aliases : tuple of str
        Other accepted spellings (romancal/stpipe names).
    level : {"ramp", "image"}
        What the step takes as input.
    output_level : {"ramp", "image"} or None
        What it gives, when that differs from ``level`` (``ramp_fit``: an image).
    imaging_only : bool
        Runs on imaging exposures only (:func:`romanxr.dataset.is_imaging`); the pipeline
        records SKIPPED for the others.
    reftypes : tuple of str
        CRDS reference types it reads (lower case, as ``meta.ref_file`` spells them); each has
        an ``override_<reftype>`` parameter.
    romancal_class : str or None
        The romancal step class it corresponds to (None: romanxr only).
    ignored_parameters : frozenset of str
        romancal parameters without a romanxr equivalent: accepted and ignored (with a log
        message) so that pasted ``strun`` arguments and romancal parameter files work.
    exposure_types : tuple of str
        When set, the exposure types the step runs on (narrower than ``imaging_only``:
        source_catalog and tweakreg run on WFI_IMAGE and WFI_LOLO, not WFI_WFSC, as in
        romancal's exposure pipeline); the pipeline records SKIPPED for the others.
    precheck : str or None
        A function of the step module that the plan calls as ``precheck(arguments,
        exposure, resolver)`` to reject options (tweakreg: its reference catalogue) or
        missing inputs (source_catalog: its references) before any work.
    optional : bool
        Runs by default when it can: a run nobody asked for whose :attr:`precheck` fails is
        SKIPPED (the reason logged), while one the user asked for (``skip=False``, or one
        of :attr:`request_options`) raises the precheck's error.
    request_options : tuple of str
        The options that ask for an :attr:`optional` step explicitly (tweakreg:
        ``abs_refcat``).
    joint : str or None
        A function of the step module that works on several images at once (a mapping of
        Datasets in, the same mapping out): ``dt.roman.<step>`` on a tree calls it with all
        the nodes (tweakreg: relative alignment across exposures) instead of node by node.
    member_check : str or None
        A function of the step module that checks one member before the joint call
        (raises a romanxr error naming it), so ``on_error="continue"`` can leave it out.
    from_twin : str or None
        A function of the step module, ``f(ds, twin, **parameters)``, that the pipeline calls
        instead of :attr:`function`: ``twin()`` returns the step's input built again (the
        earlier steps on a clone of the exposure), for a whole-frame reduction that should
        not hold the bands of the input (wfi18_transient's fit).
    """

    name: str
    module: str
    function: str
    cal_step: str | None
    suffix: str
    aliases: tuple[str, ...] = ()
    level: str = "ramp"
    output_level: str | None = None
    imaging_only: bool = False
    reftypes: tuple[str, ...] = ()
    romancal_class: str | None = None
    ignored_parameters: frozenset[str] = frozenset()
    exposure_types: tuple[str, ...] = ()
    precheck: str | None = None
    optional: bool = False
    request_options: tuple[str, ...] = ()
    joint: str | None = None
    member_check: str | None = None
    from_twin: str | None = None

    def load(self) -> Callable[..., xr.Dataset]:
        """Import and return the step function."""
        return _load(self.module, self.function)

    def load_joint(self) -> tuple[Callable[..., Any], Callable[..., Any] | None] | None:
        """The :attr:`joint` function and the :attr:`member_check` (None: no joint form)."""
        if not self.joint:
            return None
        check = _load(self.module, self.member_check) if self.member_check else None
        return _load(self.module, self.joint), check

    def check_arguments(
        self, arguments: dict[str, Any], exposure: Any = None, resolver: Any = None
    ) -> None:
        """Run the step's :attr:`precheck` (if any) on its planned arguments (and, when
        given, the exposure and the reference resolver the run will use)."""
        if self.precheck:
            _load(self.module, self.precheck)(arguments, exposure, resolver)

    @property
    def key(self) -> str:
        """The key of its record in ``attrs["step_parameters"]`` (the ``cal_step`` key)."""
        return self.cal_step or self.name

    @property
    def result_level(self) -> str:
        """``"ramp"`` or ``"image"``: what its output is."""
        return self.output_level or self.level

    def parameters(self) -> dict[str, ParameterSpec]:
        """The step's parameters with defaults and help (from its signature and docstring),
        plus the ones every pipeline step takes (``skip``, ``save_results``)."""
        return dict(_parameters(self.module, self.function))

    @property
    def takes_resolver(self) -> bool:
        """Whether the step function takes a ``resolver`` (it reads reference files)."""
        return "resolver" in inspect.signature(self.load()).parameters

    def applies_to(self, ds: xr.Dataset) -> bool:
        """Whether the step runs on this exposure (``imaging_only`` steps: imaging only;
        with :attr:`exposure_types`, those types only)."""
        from romanxr.dataset import exposure_type, is_imaging

        if self.exposure_types:
            return exposure_type(ds) in self.exposure_types
        return not self.imaging_only or is_imaging(ds)

    def apply(
        self,
        ds: xr.Dataset,
        parameters: dict[str, Any] | None = None,
        resolver: Any = None,
        twin: Callable[[], xr.Dataset] | None = None,
    ) -> xr.Dataset:
        """Run the step function on ``ds`` with ``parameters`` (and ``resolver`` if it reads
        references); with ``twin``, the :attr:`from_twin` form where the step has one."""
        func = self.load()
        if twin is not None and self.from_twin:
            func = functools.partial(_load(self.module, self.from_twin), statistics=twin)
        if self.takes_resolver:
            return func(ds, resolver=resolver, **(parameters or {}))
        return func(ds, **(parameters or {}))

    def override_option(self, reftype: str) -> str:
        """The command-line option that replaces its ``reftype`` reference."""
        return f"--steps.{self.name}.override_{reftype}"


@functools.cache
def _load(module: str, function: str) -> Callable[..., xr.Dataset]:
    return getattr(importlib.import_module(f"romanxr.steps.{module}"), function)


@functools.cache
def _parameters(module: str, function: str) -> dict[str, ParameterSpec]:
    # from the source when it can be (`romanxr calibrate -h` imports no step); the same specs
    # as from the imported function (tests/unit/test_registry.py checks every step)
    source = Path(__file__).with_name("steps") / f"{module}.py"
    if source.is_file():
        specs = parameter_specs_from_source(source.read_text(encoding="utf-8"), function)
        if specs is not None:
            return specs
    return parameter_specs(_load(module, function))


_RAMP_FIT_IGNORED = frozenset(
    {
        # the snowball options only matter with expand_large_events (not implemented, see
        # ramp_fit); dask sets the parallelism
        "maximum_cores",
        "min_sat_area",
        "min_jump_area",
        "expand_factor",
        "sat_required_snowball",
        "min_sat_radius_extend",
        "sat_expand",
        "edge_size",
    }
)

#: the exposure types romancal's exposure pipeline measures a source catalog of (and aligns)
_CATALOG_TYPES = ("WFI_IMAGE", "WFI_LOLO")

#: romancal's ExposurePipeline order, with romanxr's stand-alone jump step before ramp_fit.
STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "dq_init",
        "dq_init",
        "dq_init",
        "dq_init",
        "dqinit",
        reftypes=("mask",),
        romancal_class="romancal.dq_init.dq_init_step.DQInitStep",
    ),
    StepSpec(
        "saturation",
        "saturation",
        "saturation",
        "saturation",
        "saturation",
        reftypes=("saturation",),
        romancal_class="romancal.saturation.saturation_step.SaturationStep",
    ),
    StepSpec(
        "refpix",
        "refpix",
        "refpix",
        "refpix",
        "refpix",
        reftypes=("refpix",),
        romancal_class="romancal.refpix.refpix_step.RefPixStep",
    ),
    StepSpec(
        "dark_decay",
        "dark_decay",
        "dark_decay",
        "dark_decay",
        "dark_decay",
        reftypes=("darkdecaysignal",),
        romancal_class="romancal.dark_decay.dark_decay_step.DarkDecayStep",
    ),
    StepSpec(
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
        romancal_class="romancal.wfi18_transient.wfi18_transient_step.WFI18TransientStep",
        from_twin="wfi18_transient_from",
    ),
    StepSpec(
        "linearity",
        "linearity",
        "linearity",
        "linearity",
        "linearity",
        reftypes=("linearity", "inverselinearity", "integralnonlinearity"),
        romancal_class="romancal.linearity.linearity_step.LinearityStep",
    ),
    StepSpec("jump", "jump", "jump", None, "jump", reftypes=("readnoise", "gain")),
    StepSpec(
        "ramp_fit",
        "ramp_fit",
        "ramp_fit",
        "ramp_fit",
        "rampfit",
        ("rampfit",),
        output_level="image",
        reftypes=("readnoise", "gain"),
        romancal_class="romancal.ramp_fitting.ramp_fit_step.RampFitStep",
        ignored_parameters=_RAMP_FIT_IGNORED,
    ),
    StepSpec(
        "dark_current",
        "dark_current",
        "dark_current",
        "dark",
        "darkcurrent",
        ("dark",),
        level="image",
        reftypes=("dark",),
        romancal_class="romancal.dark_current.dark_current_step.DarkCurrentStep",
    ),
    StepSpec(
        "assign_wcs",
        "assign_wcs",
        "assign_wcs",
        "assign_wcs",
        "assignwcs",
        level="image",
        reftypes=("distortion",),
        romancal_class="romancal.assign_wcs.assign_wcs_step.AssignWcsStep",
    ),
    StepSpec(
        "photom",
        "photom",
        "photom",
        "photom",
        "photom",
        level="image",
        reftypes=("photom",),
        romancal_class="romancal.photom.photom_step.PhotomStep",
    ),
    StepSpec(
        "flatfield",
        "flatfield",
        "flatfield",
        "flat_field",
        "flat",
        ("flat_field", "flat"),
        level="image",
        imaging_only=True,
        reftypes=("flat",),
        romancal_class="romancal.flatfield.flat_field_step.FlatFieldStep",
    ),
    # on by default for WFI_IMAGE/WFI_LOLO, as in romancal; without APCORR/EPSF references
    # (not every CRDS cache carries them) a default run is SKIPPED
    StepSpec(
        "source_catalog",
        "source_catalog",
        "source_catalog",
        "source_catalog",
        "cat",
        level="image",
        imaging_only=True,
        reftypes=("apcorr", "epsf"),
        romancal_class="romancal.source_catalog.source_catalog_step.SourceCatalogStep",
        exposure_types=_CATALOG_TYPES,
        precheck="check_arguments",
        optional=True,
        request_options=("override_apcorr", "override_epsf"),
    ),
    # on by default too, but it needs a local reference catalogue (abs_refcat): the default
    # service catalogue makes a default run SKIPPED; asking for it runs source_catalog too
    StepSpec(
        "tweakreg",
        "tweakreg",
        "tweakreg",
        "tweakreg",
        "tweakreg",
        level="image",
        imaging_only=True,
        romancal_class="romancal.tweakreg.tweakreg_step.TweakRegStep",
        exposure_types=_CATALOG_TYPES,
        precheck="check_arguments",
        optional=True,
        request_options=("abs_refcat",),
        joint="tweakreg_many",
        member_check="check_image",
    ),
)

#: Every reference type a step reads, once each, in pipeline order.
ALL_REFTYPES: tuple[str, ...] = tuple(dict.fromkeys(r for s in STEPS for r in s.reftypes))

#: Steps of romancal's ExposurePipeline that romanxr does not run (normalized spelling ->
#: romancal's name): their options are accepted and ignored with a log message, so that
#: pasted ``strun`` arguments and stpipe parameter files work. (None left.)
NOT_RUN_STEPS: dict[str, str] = {}


def _spellings(spec: StepSpec) -> tuple[str, ...]:
    """Every name a step is known by: romanxr's, its aliases, its cal_step key, its suffix
    and its romancal class (``RampFitStep``)."""
    romancal = spec.romancal_class.rsplit(".", 1)[-1] if spec.romancal_class else spec.name
    return (spec.name, *spec.aliases, spec.key, spec.suffix, romancal)


_BY_KEY: dict[str, StepSpec] = {
    normalize_step_name(alias): spec for spec in STEPS for alias in _spellings(spec)
}


def find_step(name: str) -> StepSpec | None:
    """The step known by ``name`` (any spelling, the ``cal_step`` key too), or None."""
    return _BY_KEY.get(normalize_step_name(name))


def get_step(name: str) -> StepSpec:
    """Look a step up by name, alias or stpipe spelling (``rampfit``, ``FlatFieldStep``...).

    Raises
    ------
    ConfigError
        Unknown name; the message names the closest valid step.
    """
    spec = find_step(name)
    if spec is None:
        raise ConfigError(f"unknown step {name!r}" + closest(name, [s.name for s in STEPS]))
    return spec


def override_options() -> dict[str, str]:
    """reftype -> the command-line option(s) that replace it (for error messages)."""
    options: dict[str, list[str]] = {}
    for spec in STEPS:
        for reftype in spec.reftypes:
            options.setdefault(reftype, []).append(spec.override_option(reftype))
    return {reftype: " or ".join(names) for reftype, names in options.items()}

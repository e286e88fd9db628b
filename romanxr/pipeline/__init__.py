"""The Exposure Level Pipeline: :func:`calibrate` is :func:`plan` followed by :func:`execute`.

* :func:`resolve_step_options` merges the options users give (keywords, command line, config
  files; any romanxr/romancal/stpipe step spelling) into ``{step: {parameter: value}}``;
* :func:`plan` turns them, with the exposure's metadata, into a list of :class:`StepRun`:
  which steps run or are skipped and why, with which arguments, what is recorded, what is
  saved (no pixel is read, nothing is written; the one look-up is where the references of
  source_catalog and tweakreg's catalogue are: without them a default run skips both);
* :func:`execute` carries a plan out on the exposure;
* :func:`calibrate` does all three from a file or a Dataset and writes the result.

The steps themselves, with their names, cal_step keys, reference types and parameters, are
described by :mod:`romanxr.registry`.
"""

from __future__ import annotations

from romanxr.pipeline.calibration import calibrate
from romanxr.pipeline.executor import execute
from romanxr.pipeline.options import (
    CrdsStepOptions,
    StepOptions,
    crds_step_options,
    effective_parameters,
    export_config,
    parameter_sources,
    requested_steps,
    resolve_step_options,
)
from romanxr.pipeline.planning import (
    FOLD,
    RUN,
    SKIP,
    PlannedReference,
    StepRun,
    fold_jump,
    optional_skip_reason,
    plan,
    references_of,
    settle_optional,
)
from romanxr.pipeline.products import (
    intermediate_path,
    open_exposure,
    output_name,
    output_path,
    wcs_path,
    write,
    write_products,
)

__all__ = [
    "FOLD",
    "RUN",
    "SKIP",
    "CrdsStepOptions",
    "PlannedReference",
    "StepOptions",
    "StepRun",
    "calibrate",
    "crds_step_options",
    "effective_parameters",
    "execute",
    "export_config",
    "fold_jump",
    "intermediate_path",
    "open_exposure",
    "optional_skip_reason",
    "output_name",
    "output_path",
    "parameter_sources",
    "plan",
    "references_of",
    "requested_steps",
    "resolve_step_options",
    "settle_optional",
    "wcs_path",
    "write",
    "write_products",
]

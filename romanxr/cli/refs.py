"""``romanxr refs``: the plan of a run with the reference file each step would use, and why.

Nothing is computed and no reference file is read: each one is only resolved (the step's
``override_<reftype>`` option, else CRDS for this exposure's metadata).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from romanxr.cli.options import (
    EXIT_CODES,
    Command,
    add_config,
    add_crds_context,
    add_selection,
    add_verbose,
)

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="*_uncal.asdf file (or a saved intermediate with --start-at)")
    add_crds_context(p)
    add_config(p, "override_* options")
    add_selection(p)
    add_verbose(p)


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.errors import CrdsConfigurationError
    from romanxr.pipeline import (
        RUN,
        SKIP,
        open_exposure,
        plan,
        references_of,
        requested_steps,
        resolve_step_options,
    )
    from romanxr.refs import ReferenceResolver
    from romanxr.registry import override_options

    options = resolve_step_options(step_options, args.config)
    ds = open_exposure(args.input)
    resolver = ReferenceResolver(context=args.crds_context, option_hints=override_options())
    runs = plan(
        options,
        ds,
        start_at=args.start_at,
        stop_after=args.stop_after,
        source=args.input,
        requested=requested_steps(step_options, args.config),
        resolver=resolver,
    )
    failures = 0
    unconfigured = 0  # lookups that failed only because CRDS is not set up: one message
    first_unconfigured: Exception | None = None
    print(f"{'step':16s} {'reftype':22s} reference  [source]")
    for run in runs:
        if run.action != RUN:
            done = "skipped" if run.action == SKIP else "folded"
            print(f"{run.name:16s} {'-':22s} {done} ({run.reason})")
            continue
        if not run.spec.reftypes:
            print(f"{run.name:16s} {'-':22s} (no reference file)")
        for found in references_of(run, ds, resolver):
            if found.resolved is None:
                failures += 1
                if isinstance(found.error, CrdsConfigurationError):
                    unconfigured += 1
                    first_unconfigured = first_unconfigured or found.error
                    option = f"--steps.{run.name}.override_{found.reftype}"
                    print(f"{run.name:16s} {found.reftype:22s} CRDS not configured ({option})")
                else:
                    print(f"{run.name:16s} {found.reftype:22s} ERROR: {found.error}")
                continue
            ref = found.resolved
            where = ref.source + (f" {ref.context}" if ref.context else "")
            print(f"{run.name:16s} {found.reftype:22s} {ref.path or 'N/A'}  [{where}]")
    if unconfigured:
        print(_crds_message(first_unconfigured, unconfigured), file=sys.stderr)
    return EXIT_CODES["reference"] if failures else 0


def _crds_message(first: Exception | None, count: int) -> str:
    """The one explanation printed when lookups failed because CRDS is not set up."""
    if not os.environ.get("CRDS_PATH") and not os.environ.get("CRDS_SERVER_URL"):
        return CRDS_NOT_CONFIGURED
    others = f"\n(the same holds for the {count - 1} other references above)" if count > 1 else ""
    return f"romanxr: {first}{others}"


#: printed once by ``romanxr refs`` when lookups failed because CRDS is not set up
CRDS_NOT_CONFIGURED = """\
romanxr: CRDS is not configured (neither CRDS_PATH nor CRDS_SERVER_URL is set), so no reference
could be looked up. Either point CRDS at a cache (one from `crds sync`, or the one `romanxr demo`
made):
    export CRDS_PATH=$PWD/demo-output/crds_cache
or at a server:
    export CRDS_SERVER_URL=https://roman-crds.stsci.edu CRDS_PATH=$HOME/crds_cache
or give each reference file with the option named in its row above, e.g.
    --steps.flatfield.override_flat=my_flat.asdf"""


COMMAND = Command(
    name="refs",
    help="which reference file each step would use, and from where (no compute)",
    description="The steps a calibration would run and, for each, the reference files it "
    "would use and the rule that chose them: [argument] (its --steps.<step>.override_<reftype> "
    "option), [override], or [crds <context>] (CRDS for this exposure's metadata). Nothing "
    "is computed and no reference file is read.",
    add_arguments=add_arguments,
    run=run,
    takes_step_options=True,
)

"""Start-up stays cheap (issue #19): what ``import romanxr`` and ``romanxr -h`` load.

Checked on ``sys.modules`` of a fresh interpreter, not on time: a module that sneaks back
into the import path fails here on any machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from romanxr.config import parameter_specs
from romanxr.registry import STEPS

#: heavy modules that ``import romanxr`` and ``romanxr --help`` / ``calibrate -h`` must not load
HEAVY = (
    "xarray",
    "dask",
    "pandas",
    "numba",
    "scipy",
    "matplotlib",
    "asdf",
    "astropy",
    "roman_datamodels",
    "crds",
    "stpipe",
    "romancal",
)


HELP = """import contextlib, io, romanxr.cli as c
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    c.main({args})
assert "usage" in out.getvalue()"""


def loaded_after(code: str) -> set[str]:
    """Top-level names of the modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    last = proc.stdout.strip().splitlines()[-1]
    return {name.split(".")[0] for name in json.loads(last)}


@pytest.mark.parametrize(
    "code",
    [
        "import romanxr",
        HELP.format(args=["--help"]),
        HELP.format(args=["calibrate", "-h"]),
    ],
    ids=["import", "help", "calibrate-help"],
)
def test_start_up_imports_no_heavy_module(code):
    assert loaded_after(code) & set(HEAVY) == set()


def test_accessor_registered_when_xarray_comes_later_or_first():
    later = "import romanxr, xarray as xr\nassert hasattr(xr.Dataset(), 'roman')"
    first = "import xarray as xr, romanxr\nassert hasattr(xr.Dataset(), 'roman')"
    for code in (later, first):
        assert "romanxr" in loaded_after(code)


def test_public_functions_load_on_use():
    import romanxr
    import romanxr.io
    import romanxr.pipeline

    assert romanxr.calibrate is romanxr.pipeline.calibrate
    assert romanxr.open_uncal is romanxr.io.open_uncal
    assert set(romanxr.__all__) <= set(dir(romanxr))
    with pytest.raises(AttributeError, match="no_such_thing"):
        romanxr.no_such_thing  # noqa: B018


@pytest.mark.parametrize("spec", STEPS, ids=[s.name for s in STEPS])
def test_parameters_read_from_source_equal_the_imported_signature(spec):
    assert spec.parameters() == parameter_specs(spec.load())

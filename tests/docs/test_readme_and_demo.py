"""The demo tells the truth about what it simulated, and the README's code runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from romanxr.demo import describe_truth, run_demo
from romanxr.testing import make_detector, simulate_exposure

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_SEED = 11


def test_describe_truth_counts_jumps_and_stars(tmp_path):
    sim = simulate_exposure((64, 64), seed=3, n_jumps=7, path=tmp_path)
    line = describe_truth("x_uncal.asdf", sim.truth)
    assert "7 cosmic-ray jumps" in line
    stars = len(sim.truth.sources["x"])
    saturating = int(np.count_nonzero(sim.truth.sources["saturating"]))
    assert f"{stars} stars of which {saturating} saturate" in line
    assert "64x64" in line


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``make demo``'s job, in a scratch folder: (folder, what it wrote, what it printed)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("readme")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        written = run_demo(root / "demo-output", size=256, seed=DEMO_SEED, progress=False)
    return root, written, printed.getvalue()


@pytest.mark.slow
def test_demo_prints_the_true_counts_and_the_cache_settings(demo, tmp_path):
    _, written, out = demo
    # the same seed simulates the same exposure: its truth is what the demo must have counted
    detector = make_detector((256, 256), seed=DEMO_SEED)
    truth = simulate_exposure(detector, seed=DEMO_SEED, path=tmp_path).truth
    jumps = int(re.search(r"(\d+) cosmic-ray jumps", out).group(1))
    assert jumps == len(truth.jumps["y"])
    assert jumps > 5  # the old demo printed the number of keys of the truth record
    assert f"source {written['crds_env']}" in out
    assert f"export CRDS_PATH={written['crds_cache']}" in written["crds_env"].read_text()
    assert written["cal"].exists() and written["png"].exists()


@pytest.mark.slow
def test_demo_writes_the_catalog_and_segmentation_map(demo):
    import pyarrow.parquet as pq
    import roman_datamodels.datamodels as dm

    _, written, out = demo
    cal = written["cal"]
    assert written["catalog"] == cal.with_name(cal.name.replace("_cal.asdf", "_cat.parquet"))
    assert written["segmentation"] == cal.with_name(cal.name.replace("_cal.asdf", "_segm.asdf"))
    table = pq.read_table(written["catalog"])
    assert {"x_centroid", "y_centroid", "ra_centroid", "segment_flux", "psf_flux"} <= set(
        table.column_names
    )
    n = table.num_rows
    assert n > 10  # the simulated stars are found
    assert f"source catalog: {n} sources in {written['catalog'].name}" in out
    with dm.open(written["segmentation"]) as segm:
        labels = np.asarray(segm.data)
        assert labels.shape == (248, 248)
        assert len(np.unique(labels[labels > 0])) == n
    with dm.open(cal) as model:
        assert model.meta.cal_step.source_catalog == "COMPLETE"
        assert model.meta.cal_step.tweakreg == "SKIPPED"  # no local abs_refcat in the demo


def _blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the README, in order."""
    return re.findall(r"^```(\w+)\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _is_setup(code: str) -> bool:
    return code.lstrip().startswith("make demo")


def test_readme_has_exactly_two_setup_commands():
    setup = [code for lang, code in _blocks() if lang == "bash" and _is_setup(code)]
    assert len(setup) == 1
    commands = [line.split("#")[0].strip() for line in setup[0].splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.slow
def test_every_readme_block_runs_as_written_after_the_demo(demo):
    root, _, _ = demo
    # one shell script, so that the README's `source` and `cd` carry over to later blocks;
    # the set-up block is what made `demo` (running `make test` here would recurse)
    script = ["set -euo pipefail"]
    for lang, code in _blocks():
        if _is_setup(code):
            continue
        if lang == "bash":
            script.append(code)
        elif lang == "python":
            script.append(f"python - <<'README_PYTHON'\n{code}README_PYTHON")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(README.parent)
    for name in [k for k in env if k.startswith("CRDS_")]:
        del env[name]  # only what the README sets may point crds anywhere
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "demo-output"
    for name in ("chained_cal.asdf", "threshold500_cal.asdf"):
        assert (out / name).exists()
    assert "readnoise" in proc.stdout  # romanxr refs listed the references

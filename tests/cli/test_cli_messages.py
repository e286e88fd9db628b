"""Top-level CLI messages, in process: --version and did-you-mean for mistyped options."""

from __future__ import annotations

import pytest

import romanxr
from romanxr.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"romanxr {romanxr.__version__}"


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["--verison"], "did you mean --version?"),
        (["calibrate", "x_uncal.asdf", "--ouput_dir=out"], "did you mean --output_dir?"),
        (["calibrate", "x_uncal.asdf", "--ouput-dir", "out"], "did you mean --output-dir?"),
        (["refs", "x_uncal.asdf", "--crds-contxt=roman_0001.pmap"], "did you mean --crds-context?"),
    ],
)
def test_mistyped_option_gets_a_suggestion(capsys, argv, suggestion):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err
    assert suggestion in err


def test_unlike_option_gets_no_suggestion(capsys):
    assert main(["calibrate", "x_uncal.asdf", "--completely-different"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --completely-different" in err
    assert "did you mean" not in err


def test_refs_without_crds_says_so_once(tmp_path, monkeypatch, capsys):
    from romanxr.testing import simulate_exposure

    for name in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    sim = simulate_exposure((64, 64), seed=1, path=tmp_path)
    assert main(["refs", str(sim.path)]) == 4
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if "CRDS not configured" in line]
    assert len(rows) >= 10  # one short row per reference, with the option that overrides it
    assert "--steps.dark_current.override_dark)" in captured.out
    assert all(len(line) < 120 for line in captured.out.splitlines())
    # and the explanation with the fix, once
    assert captured.err.count("CRDS is not configured") == 1
    assert "export CRDS_PATH=" in captured.err

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

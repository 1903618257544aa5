"""``lobworld precompile``: runs its jobs in worker processes and reports each; bad arguments are clear errors."""

import io

import pytest

from lobworld.cli import CLIError, main
from lobworld.cli.precompile import JOBS, precompile


def test_a_job_runs_in_a_worker_process_and_is_reported():
    out = io.StringIO()
    assert precompile(jobs=1, names=["dark-pool"], stream=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("precompile: dark-pool done in ")
    assert lines[-1].startswith("precompile: 1 of 1 jobs in ") and lines[-1].endswith("with 1 processes")


def test_a_failing_job_is_reported_and_exits_1(monkeypatch):
    import lobworld.cli.precompile as P

    # the worker is a fresh (spawned) process: it fails on a job name this module does not know there
    monkeypatch.setitem(P.JOBS, "nope", (9.0, None))
    out = io.StringIO()
    assert precompile(jobs=1, names=["nope"], stream=out) == 1
    assert "precompile: nope failed" in out.getvalue() and "KeyError" in out.getvalue()


def test_bad_arguments_are_clear_errors(capsys):
    with pytest.raises(CLIError, match="unknown precompile job"):
        precompile(jobs=1, names=["no-such-job"])
    with pytest.raises(CLIError, match="--jobs must be >= 1"):
        precompile(jobs=0)
    assert main(["precompile", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse's choices
        main(["precompile", "--job", "no-such-job"])
    assert info.value.code == 2
    assert set(JOBS) >= {"execution", "market-making", "dark-pool", "tick-learned", "tick-parametric", "tick-replay", "models"}

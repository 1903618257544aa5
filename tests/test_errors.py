"""User errors vs bugs: every user-facing exception class is a LobworldError; the CLI prints a
user error as one line with exit code 2 and lets any other exception (a bug) keep its traceback."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import lobworld.cli as cli
from lobworld.errors import LobworldError

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = {"envs": "lobworld.envs", "world_models": "lobworld.world_models", "agents": "lobworld.agents",
            "scenarios": "lobworld.scenarios", "lobworld": "lobworld"}


def _error_classes():
    """``(module, class name)`` of every top-level ``class *Error(...)`` in the project's packages."""
    out = []
    for folder, pkg in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    rel = path.relative_to(REPO / folder).with_suffix("")
                    parts = [p for p in rel.parts if p != "__init__"]
                    out.append((".".join([pkg, *parts]), node.name))
    return out


#: Errors that mean a bug in lobworld, not a user mistake: they must keep their traceback.
INTERNAL = {("lobworld.envs.columns", "ColumnLayoutError")}
ERROR_CLASSES = [e for e in _error_classes() if e not in INTERNAL]


@pytest.mark.parametrize("module, name", sorted(INTERNAL))
def test_internal_error_classes_are_not_user_errors(module, name):
    assert (module, name) in set(_error_classes())
    assert not issubclass(getattr(importlib.import_module(module), name), LobworldError)


def test_the_scan_finds_the_known_classes():
    names = {n for _, n in ERROR_CLASSES}
    assert {"ActionError", "VecAttributeError", "CheckpointError", "FidelityError", "DataValidationError",
            "ConfigError", "BaselineError", "StrategyError", "ModelLoadError", "CLIError"} <= names


@pytest.mark.parametrize("module, name", ERROR_CLASSES, ids=[f"{m}.{n}" for m, n in ERROR_CLASSES])
def test_every_error_class_is_a_lobworld_error(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, LobworldError), f"{module}.{name} bases {cls.__mro__[1:]}"
    assert issubclass(cls, ValueError)  # `except ValueError` keeps working


# ------------------------------------------------------------------ CLI: user errors
def _one_error_line(capsys, command):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lobworld {command}: error: ")
    assert "Traceback" not in err
    return lines[0]


def _main(argv):
    """``cli.main(argv)``'s exit code, also when argparse itself exits (``choices`` of ``--env``)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv", [
    ["evaluate", "--env", "LOB-Nope-v0", "--strategy", "twap"],
    ["train", "--env", "LOB-Nope-v0"],
    ["counterfactual", "--env", "LOB-Nope-v0", "--strategies", "twap"],
    ["report", "--env", "LOB-Nope-v0", "--horizon-min", "5", "--out", "unused"],
    ["bench", "--env", "LOB-Execution-v0", "--env", "LOB-Nope-v0"],
])
def test_unknown_env_id_is_one_line_exit_2(argv, capsys):
    """Exit code 2 and one error line naming the id and the registered ones (argparse may print its
    usage lines before it), never a traceback."""
    assert _main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith(f"lobworld {argv[0]}: error: ")]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    assert "LOB-Nope-v0" in lines[0] and "LOB-Execution-v0" in lines[0] and "LOB-DarkPool-v0" in lines[0]


def test_unknown_env_id_reaching_the_command_is_a_lobworld_error(capsys):
    """The check in ``main`` itself, for a namespace argparse let through (no ``choices``)."""
    import argparse

    with pytest.raises(LobworldError, match="unknown env id 'LOB-Nope-v0'.*LOB-Execution-v0"):
        cli.check_env_ids(argparse.Namespace(env="LOB-Nope-v0"))
    with pytest.raises(LobworldError, match="LOB-Nope-v0"):
        cli.check_env_ids(argparse.Namespace(env=["LOB-Execution-v0", "LOB-Nope-v0"]))
    cli.check_env_ids(argparse.Namespace(env=["LOB-Execution-v0"]))
    cli.check_env_ids(argparse.Namespace(env=None))


def test_unknown_env_id_exit_code_of_the_installed_command():
    proc = subprocess.run([sys.executable, "-c", "import sys; from lobworld.cli import main; sys.exit(main())",
                           "evaluate", "--env", "LOB-Nope-v0", "--strategy", "twap"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "LOB-Nope-v0" in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr


def test_bad_env_kwargs_json_is_one_line_exit_2(capsys):
    argv = ["evaluate", "--env", "LOB-Execution-v0", "--strategy", "twap", "--env-kwargs", "{horizon: 3"]
    assert cli.main(argv) == 2
    assert "--env-kwargs is not valid JSON" in _one_error_line(capsys, "evaluate")
    assert cli.main([*argv[:-1], "[1, 2]"]) == 2
    assert "must be a JSON object, got list" in _one_error_line(capsys, "evaluate")


def test_a_missing_path_the_user_named_is_one_line_exit_2(capsys, tmp_path):
    missing = tmp_path / "no_model.zip"
    assert cli.main(["evaluate", "--env", "LOB-Execution-v0", "--model", str(missing)]) == 2
    assert str(missing) in _one_error_line(capsys, "evaluate")


# ------------------------------------------------------------------ CLI: bugs keep their traceback
@pytest.mark.parametrize("exc", [ZeroDivisionError("division by zero"), KeyError("column"),
                                 ValueError("an internal ValueError is a bug too"),
                                 FileNotFoundError(2, "No such file", "/lobworld/internal/asset.npz")])
def test_an_internal_bug_propagates_with_its_traceback(monkeypatch, capsys, exc):
    import lobworld.scenarios.counterfactual as cf

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cf, "run_counterfactual", broken)
    with pytest.raises(type(exc)) as info:
        cli.main(["evaluate", "--env", "LOB-Execution-v0", "--strategy", "twap", "--episodes", "2"])
    assert info.value is exc
    # nothing printed as if it were a user error; the one-time notice of a cold kernel cache (when
    # this test runs before any other compiled the kernels) is not an error message
    from lobworld.cli._progress import COMPILE_NOTICE

    err = [ln for ln in capsys.readouterr().err.splitlines() if ln != COMPILE_NOTICE]
    assert err == []


def test_a_lobworld_error_raised_deep_inside_is_one_line(monkeypatch, capsys):
    import lobworld.scenarios.counterfactual as cf

    def user_error(*args, **kwargs):
        raise cf.StrategyError("unknown strategy 'nosuch' for LOB-Execution-v0;\n known: twap, vwap")

    monkeypatch.setattr(cf, "run_counterfactual", user_error)
    assert cli.main(["evaluate", "--env", "LOB-Execution-v0", "--strategy", "nosuch"]) == 2
    line = _one_error_line(capsys, "evaluate")
    assert line.endswith("unknown strategy 'nosuch' for LOB-Execution-v0; known: twap, vwap")


@pytest.mark.parametrize("env_kwargs, expect", [
    ('{"horizon": 0}', "ExecutionConfig.horizon must be an int >= 1"),
    ('{"horizonn": 5}', "unknown argument 'horizonn'; valid arguments: side, quantity, horizon"),
])
def test_a_bad_env_argument_is_one_line_exit_2(capsys, env_kwargs, expect):
    argv = ["evaluate", "--env", "LOB-Execution-v0", "--strategy", "twap", "--episodes", "2",
            "--dynamics", "parametric", "--env-kwargs", env_kwargs]
    assert cli.main(argv) == 2
    assert expect in _one_error_line(capsys, "evaluate")

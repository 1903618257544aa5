"""The ``lobworld`` command line.

Sub-commands live next to the code they drive: each of ``lobworld.cli.bench``,
``lobworld.cli.world_models``, ``lobworld.cli.agents`` and
``lobworld.cli.scenarios`` exposes ``add_commands(subparsers)``, which adds its
parsers and sets ``func`` on each (called with the parsed namespace, returning
an exit code).

Errors: a :class:`~lobworld.errors.LobworldError` (what the user gave is wrong: an argument, a
config, a file's content) prints one line ``lobworld COMMAND: error: ...`` on stderr and exits
with code 2. So does a missing path, directory-for-a-file or file-for-a-directory error
(``FileNotFoundError``, ``IsADirectoryError``, ``NotADirectoryError``) about a path the user named
on the command line. Anything else is a bug in lobworld and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lobworld._version import __version__
from lobworld.errors import LobworldError

_COMMAND_MODULES = (
    "lobworld.cli.world_models",
    "lobworld.cli.bench",
    "lobworld.cli.agents",
    "lobworld.cli.scenarios",
    "lobworld.cli.backtest",
    "lobworld.cli.precompile",
)


class CLIError(LobworldError):
    """A user-facing error of the command line itself (a bad argument): one line, exit code 2."""


#: OS errors reported as user errors when they are about a path the user named
_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lobworld",
        description="Learned limit-order-book world models as fast batched RL environments.",
    )
    parser.add_argument("--version", action="version", version=f"lobworld {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # sub-package without commands yet
            if exc.name != name:
                raise
            continue
        module.add_commands(sub)
    return parser


def _user_paths(args: argparse.Namespace) -> list[str]:
    """The string values of the parsed arguments (the paths the user may have named)."""
    out = []
    for v in vars(args).values():
        for x in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(x, str) and x:
                out.append(x)
    return out


def _names_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """True when ``exc`` is about a path the user gave (or a file inside a folder they gave)."""
    paths = _user_paths(args)
    if exc.filename is None:  # raised with a message only: it must quote the path
        return any(p in str(exc) for p in paths if os.sep in p or "." in p)
    name = os.path.abspath(os.fspath(exc.filename))
    for p in paths:
        ap = os.path.abspath(p)
        if name == ap or name.startswith(ap.rstrip(os.sep) + os.sep):
            return True
    return False


def check_env_ids(args: argparse.Namespace) -> None:
    """Raise :class:`~lobworld.envs.spec.UnknownEnvError` (listing the known ids) when ``--env``
    names an id lobworld does not have."""
    given = getattr(args, "env", None)
    if given is None:
        return
    from lobworld.envs.spec import get_spec

    for env_id in given if isinstance(given, (list, tuple)) else [given]:
        get_spec(env_id)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        check_env_ids(args)
        return int(args.func(args) or 0)
    except LobworldError as exc:
        print(f"lobworld {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a Ctrl-C the command did not handle itself (e.g. during set-up or compilation, before
        # a training loop that saves on SIGINT has started): one line, the shell's exit code
        print(f"lobworld {args.command}: interrupted (Ctrl-C) before it finished", file=sys.stderr)
        return 130  # 128 + SIGINT, as run_folder.INTERRUPT_EXIT_CODE
    except _PATH_ERRORS as exc:
        if not _names_user_path(exc, args):
            raise  # a file lobworld itself needs: a bug or a broken install, keep the traceback
        print(f"lobworld {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

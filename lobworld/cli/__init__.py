"""The ``lobworld`` command line.

Sub-commands live next to the code they drive: each of ``lobworld.cli.bench``,
``lobworld.cli.world_models``, ``lobworld.cli.agents`` and
``lobworld.cli.scenarios`` exposes ``add_commands(subparsers)``, which adds its
parsers and sets ``func`` on each (called with the parsed namespace, returning
an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lobworld._version import __version__

_COMMAND_MODULES = (
    "lobworld.cli.world_models",
    "lobworld.cli.bench",
    "lobworld.cli.agents",
    "lobworld.cli.scenarios",
)


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as exc:
        print(f"lobworld {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command-line entry points of ``lobworld.world_models``.

``lobworld data ...`` and ``lobworld demo`` come from
``lobworld.cli.data``; ``lobworld world-model ...`` gathers the
sub-commands of ``lobworld.cli.world_model_train`` (GRU dynamics training) and
``lobworld.cli.world_model_fit`` (arrival and impact fitting).
"""

from __future__ import annotations

import importlib


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def add_commands(sub) -> None:
    data_cli = _optional("lobworld.cli.data")
    if data_cli is not None:
        data_cli.add_commands(sub)
    [m.add_commands(sub) for m in [_optional("lobworld.cli.fidelity")] if m]  # lobworld fidelity
    modules = [m for m in (_optional("lobworld.cli.world_model_train"), _optional("lobworld.cli.world_model_fit")) if m]
    if modules:
        wm = sub.add_parser("world-model", help="train and fit world models")
        wm_sub = wm.add_subparsers(dest="wm_command", metavar="WM_COMMAND", required=True)
        for m in modules:
            m.add_commands(wm_sub)

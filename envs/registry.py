"""One registration rule for the floor's name -> factory tables (market dynamics, tick worlds).

The simulation floor keeps tables of named factories that the composition root fills
(``register_dynamics``, ``register_tick_world``), so it never imports the layers above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register_factory"]


def register_factory(table: dict[str, Callable[..., Any]], name: str, factory: Callable[..., Any], *,
                     kind: str, error: type[Exception], overwrite: bool = False) -> None:
    """Put ``factory`` in ``table`` under ``name``; ``kind`` names the table in ``error`` messages."""
    if not isinstance(name, str) or not name:
        raise error(f"{kind} name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise error(f"{kind} factory for {name!r} must be callable, got {factory!r}")
    if name in table and not overwrite:
        raise error(f"{kind} {name!r} is already registered (pass overwrite=True to replace it)")
    table[name] = factory

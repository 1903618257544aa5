"""One registration rule for the floor's name -> factory tables (market dynamics, tick worlds),
and one registry class for the named scenario tables (latency, dark pool, regime presets).

The simulation floor keeps tables of named factories that the composition root fills
(``register_dynamics``, ``register_tick_world``), so it never imports the layers above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register_factory", "ScenarioRegistry"]


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


class ScenarioRegistry(dict):
    """Named scenarios of one kind (latency, dark pool, regime): a ``dict`` name -> scenario with one
    lookup and one registration rule, shared by every scenario table so they read alike.

    Every table is exposed as ``<KIND>_SCENARIOS`` with ``get_<kind>_scenario(name)`` and
    ``register_<kind>_scenario(scenario, overwrite=False)`` (:meth:`lookup`, :meth:`register`).

    ``kind`` names the table in messages (``"latency"`` -> "latency scenario 'x' already exists");
    ``item_type`` is the scenario class (``scenario.name`` is its key); ``error`` is raised for a
    refused registration and, unless ``unknown_error`` is given, for an unknown name;
    ``unknown_label`` replaces ``"{kind} scenario"`` in the unknown-name message.
    """

    def __init__(self, kind: str, item_type: type, *, error: type[Exception],
                 unknown_error: type[Exception] | None = None, unknown_label: str | None = None,
                 items: Any = ()) -> None:
        super().__init__()
        self.kind, self.item_type, self.error = kind, item_type, error
        self.unknown_error = unknown_error or error
        self.unknown_label = unknown_label or f"{kind} scenario"
        for item in items:
            self.register(item)

    def lookup(self, name: Any) -> Any:
        """The scenario ``name``; a scenario object of ``item_type`` passes through. An unknown name
        raises ``unknown_error`` listing the known names."""
        if isinstance(name, self.item_type):
            return name
        try:
            return self[name]
        except (KeyError, TypeError):
            raise self.unknown_error(
                f"unknown {self.unknown_label} {name!r}; known: {', '.join(sorted(self))}") from None

    def register(self, item: Any, *, overwrite: bool = False) -> Any:
        """Add ``item`` under ``item.name``; a different scenario of the same name is refused unless
        ``overwrite`` (registering an equal one again is a no-op). Returns ``item``."""
        if not isinstance(item, self.item_type):
            raise TypeError(f"expected a {self.item_type.__name__}, got {type(item).__name__}")
        name = item.name
        if not isinstance(name, str) or not name:
            raise self.error(f"{self.kind} scenario name must be a non-empty string, got {name!r}")
        if name in self and not overwrite and self[name] != item:
            raise self.error(f"{self.kind} scenario {name!r} already exists; pass overwrite=True to replace it")
        self[name] = item
        return item

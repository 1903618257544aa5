"""Config dataclasses: one ``replace()`` and one TOML -> dataclass reader for every package.

* :class:`Replaceable`: a mixin giving a (frozen) dataclass ``replace(**changes)``, a copy with
  ``changes`` that runs ``__post_init__`` again, so a copy is validated as the original was
  (``dataclasses.replace``; an unknown field is a ``TypeError``).
* :func:`read_toml`: parse a TOML file; a syntax error is ``error("{source}: not valid TOML: ...")``.
* :func:`from_mapping`: build a dataclass from a TOML table with one unknown-key error for every
  config (``"{source}: unknown key(s) [...]; known: [...]"``), optional type checks against a base
  instance, and the class's own validation error prefixed by ``source``.

Used by the RL training config (:mod:`lobworld.agents.config`) and the world-model training config
(:mod:`lobworld.world_models.training`). This module is at the floor of the layer contract: every
lobworld package may import it, and it imports none of them.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["Replaceable", "read_toml", "from_mapping", "unknown_keys_message"]

T = TypeVar("T")


class Replaceable:
    """Mixin for config dataclasses: ``cfg.replace(**changes)`` returns a validated copy."""

    __slots__ = ()

    def replace(self: T, **changes: Any) -> T:
        """A copy of this dataclass with ``changes`` applied (``__post_init__`` checks it again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def read_toml(path: str | pathlib.Path, *, error: type[Exception], source: str | None = None) -> dict[str, Any]:
    """The TOML table of ``path``. A missing file raises ``FileNotFoundError``; a syntax error raises
    ``error("{source}: not valid TOML: {detail}")`` (``source`` defaults to the path)."""
    path = pathlib.Path(path)
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise error(f"{source if source is not None else path}: not valid TOML: {exc}") from None


def unknown_keys_message(source: str, unknown: list[str], known: list[str]) -> str:
    """The one unknown-key message of every lobworld config reader."""
    return f"{source}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}"


def from_mapping(cls: type[T], data: Mapping[str, Any], *, source: str, error: type[Exception],
                 base: T | None = None, check_types: bool = False, tuples: tuple[str, ...] = ()) -> T:
    """``base`` (default ``cls()``) with the fields in ``data`` replaced.

    Keys that are not init fields of ``cls`` raise ``error`` with :func:`unknown_keys_message`.
    An ``int`` given for a field whose base value is a ``float`` becomes a ``float``; fields named
    in ``tuples`` take a list and become tuples. With ``check_types``, any other value whose type
    differs from the base value's raises ``error("{source}: {key} must be {type}, got ...")``.
    A ``ValueError`` of the class's own validation comes back as ``error("{source}: {message}")``.
    """
    known = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise error(unknown_keys_message(source, unknown, known))
    defaults = base if base is not None else cls()
    clean: dict[str, Any] = {}
    for k, v in data.items():
        want = type(getattr(defaults, k))
        if k in tuples:
            if not isinstance(v, (list, tuple)):
                raise error(f"{source}: {k} must be a list of ints, got {v!r}")
            v = tuple(v)
        elif want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif check_types and want is not type(v) and not (want is dict and isinstance(v, dict)):
            raise error(f"{source}: {k} must be {want.__name__}, got {type(v).__name__} {v!r}")
        clean[k] = v
    try:
        return dataclasses.replace(defaults, **clean)  # type: ignore[type-var]
    except ValueError as exc:
        raise error(f"{source}: {exc}") from None

"""Named column layouts: one helper so every env packs its config vectors the same way.

A kernel reads a config vector by named constants (``C_Q``, ``C_DT``, ...). The host side
packs it with :func:`pack`, which takes the values by column name and checks that every
column of the layout is set exactly once, so a column added to a layout and forgotten in the
packing is an error at construction, not a silent zero read by the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["ColumnLayoutError", "layout", "pack"]


class ColumnLayoutError(RuntimeError):
    """A packing does not match its column layout (a bug in lobworld, not a user error)."""


def layout(namespace: Mapping[str, object], prefix: str, n: int) -> tuple[str, ...]:
    """Column names ``prefix*`` of a module namespace ordered by index, checked to cover ``0..n-1`` once."""
    cols = sorted((v, k) for k, v in namespace.items()
                  if k.startswith(prefix) and isinstance(v, int) and not isinstance(v, bool))
    idx = [v for v, _ in cols]
    if idx != list(range(n)):
        raise ColumnLayoutError(f"columns {prefix}* are {dict((k, v) for v, k in cols)}, not 0..{n - 1} once each")
    return tuple(k for _, k in cols)


def pack(names: tuple[str, ...], values: Mapping[str, float], where: str) -> np.ndarray:
    """A float64 vector with ``values[name]`` at the index of ``name`` in ``names``; every name set."""
    missing = [k for k in names if k not in values]
    extra = [k for k in values if k not in names]
    if missing or extra:
        raise ColumnLayoutError(f"{where}: columns not set {missing}, unknown columns {extra}")
    return np.array([float(values[k]) for k in names], dtype=np.float64)

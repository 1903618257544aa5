"""Validation helpers for configuration fields: one place for "finite", "> 0", ">= 0", "in [lo, hi]".

Each helper checks one scalar and raises ``error(message)`` (a :class:`~lobworld.errors.LobworldError`
subclass the caller names) when it fails, otherwise returns ``value`` unchanged. ``name`` is the field
as the user knows it (``"LatencyScenario.one_way_us"``), and the messages read::

    finite        "{name} must be a finite number{unit}, got {value!r}"
    positive      "{name} must be a finite number > 0{unit}, got {value!r}"
    non_negative  "{name} must be a finite number >= 0{unit}, got {value!r}"
    in_range      "{name} must be in [lo, hi]{unit}, got {value!r}"   (brackets follow lo_open / hi_open)
    integer       "{name} must be an int >= {minimum}{unit}, got {value!r}"

``unit`` is appended in parentheses (``unit="microseconds"`` -> ``" (microseconds)"``). ``what``
replaces the words after "must be" where a module's documented message differs (``what="a positive
number of seconds"``); the test is the same. A number is an ``int``, ``float`` or NumPy scalar, never
a ``bool``. This module sits at the floor of the layer contract with :mod:`lobworld.errors`: every
lobworld package may import it, and it imports none of them.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["is_number", "finite", "positive", "non_negative", "in_range", "integer"]


def is_number(value: Any) -> bool:
    """True for a real number (``int``, ``float``, NumPy scalar), False for a ``bool`` or anything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(error: type[Exception], name: str, what: str, unit: str | None, value: Any) -> Exception:
    u = f" ({unit})" if unit else ""
    return error(f"{name} must be {what}{u}, got {value!r}")


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def finite(name: str, value: Any, *, error: type[Exception], unit: str | None = None,
           what: str = "a finite number") -> Any:
    """``value`` if it is a finite number, else ``error``."""
    if not _finite(value):
        raise _fail(error, name, what, unit, value)
    return value


def positive(name: str, value: Any, *, error: type[Exception], unit: str | None = None,
             what: str = "a finite number > 0") -> Any:
    """``value`` if it is a finite number ``> 0``, else ``error``."""
    if not (_finite(value) and value > 0):
        raise _fail(error, name, what, unit, value)
    return value


def non_negative(name: str, value: Any, *, error: type[Exception], unit: str | None = None,
                 what: str = "a finite number >= 0") -> Any:
    """``value`` if it is a finite number ``>= 0``, else ``error``."""
    if not (_finite(value) and value >= 0):
        raise _fail(error, name, what, unit, value)
    return value


def in_range(name: str, value: Any, lo: float, hi: float, *, error: type[Exception], lo_open: bool = False,
             hi_open: bool = False, unit: str | None = None, what: str | None = None) -> Any:
    """``value`` if it is a number in ``[lo, hi]`` (an end excluded where ``lo_open`` / ``hi_open``).

    An infinite ``hi`` (``math.inf``) with ``hi_open`` accepts every finite number ``>= lo``.
    """
    ok = _finite(value) and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not ok:
        if what is None:
            what = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise _fail(error, name, what, unit, value)
    return value


def integer(name: str, value: Any, *, error: type[Exception], minimum: int = 1, unit: str | None = None,
            what: str | None = None) -> Any:
    """``value`` if it is an ``int`` (or NumPy integer, never a ``bool``) ``>= minimum``, else ``error``."""
    if not (isinstance(value, numbers.Integral) and is_number(value) and value >= minimum):
        raise _fail(error, name, f"an int >= {minimum}" if what is None else what, unit, value)
    return value

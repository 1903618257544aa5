"""Episode end and episode statistics: the one helper every env family uses.

Kernel side (Numba, called by every env's step kernel where an episode ends)
    :func:`keep_final_obs` copies env ``i``'s last observation into ``final_obs`` (read by the
    faces' ``final_obs`` / ``terminal_observation``) before a same-step autoreset overwrites
    ``obs``; :func:`keep_episode` copies its running accumulators ``ep`` into ``ep_done``, the
    finished episode's row that the faces read after the reset. :func:`end_episode` does both.

Host side
    An env family declares its episode statistics once, as an :class:`EpisodeStats` table of
    :class:`Stat` entries (name, a vectorised getter over the core's arrays, Python type). From
    that table :class:`~lobworld.envs.core.BatchedCore` builds the single env's ``info`` dict,
    the SB3 face's per-env dicts and the Gymnasium vector face's ``final_info`` dict of arrays,
    so the three faces cannot disagree: every value comes from the same array expression
    (``float`` entries as float64, ``int`` entries as int64, ``bool`` as bool).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from lobworld.envs.episode_kernels import end_episode, keep_episode, keep_final_obs

__all__ = ["EpisodeStats", "Rows", "Stat", "column", "end_episode", "keep_episode", "keep_final_obs", "keep_rows",
           "ratio", "record_maker", "sharpe"]


def keep_rows(done: np.ndarray, *pairs: tuple[np.ndarray, np.ndarray]) -> None:
    """Host-side form of :func:`end_episode` for cores that finish episodes in NumPy (the tick
    envs): ``dst[done] = src[done]`` for each ``(src, dst)`` pair, e.g. ``(obs, final_obs)``."""
    for src, dst in pairs:
        dst[done] = src[done]


def ratio(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``num / den`` element by element, ``fill`` where ``den`` is 0 (or NaN), without a warning."""
    bad = ~(den != 0) | np.isnan(den)
    out = num / np.where(bad, 1.0, den)
    out[bad] = fill
    return out


def sharpe(sum_x: np.ndarray, sum_x2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Mean over standard deviation of a per-step series from its running sums over ``n`` steps
    (``n`` floored at 1; 0 where the deviation is 0)."""
    n = np.maximum(n, 1.0)
    mean = sum_x / n
    sd = np.sqrt(np.maximum(sum_x2 / n - mean * mean, 0.0))
    return ratio(mean, sd)


_DTYPES = {float: np.float64, int: np.int64, bool: np.bool_}


class Rows:
    """The rows ``idx`` of a core's arrays, gathered once per array: ``rows["ep_done"]`` is
    ``core.ep_done[idx]`` (shape ``(len(idx), k)``); ``rows.core`` the core (for config values)."""

    __slots__ = ("core", "idx", "_cache")

    def __init__(self, core: Any, idx: np.ndarray):
        self.core, self.idx, self._cache = core, idx, {}

    def __getitem__(self, table: str) -> np.ndarray:
        a = self._cache.get(table)
        if a is None:
            a = self._cache[table] = getattr(self.core, table)[self.idx]
        return a


@dataclass(frozen=True)
class Stat:
    """One episode statistic: ``get(rows)`` returns its values for the envs of ``rows`` (a
    :class:`Rows`) as an array of length ``len(rows.idx)``; ``kind`` is the Python type of the
    info value (``float``, ``int`` or ``bool``)."""

    name: str
    get: Callable[[Rows], np.ndarray]
    kind: type = float
    source: tuple[str, int] | None = None  # (table, column) when ``get`` is exactly that column

    def __post_init__(self) -> None:
        if self.kind not in _DTYPES:
            raise TypeError(f"Stat {self.name!r}: kind must be float, int or bool, got {self.kind!r}")


def column(name: str, col: int, table: str = "ep_done", kind: type = float) -> Stat:
    """A statistic that is column ``col`` of the core's array ``table`` (default ``ep_done``)."""

    def get(rows, _t=table, _c=col):
        return rows[_t][:, _c]

    return Stat(name, get, kind, (table, int(col)))


@njit(cache=True)
def _scatter(vals, idx, n):
    """A ``(k, n)`` block, zero but for ``block[:, idx[j]] = vals[:, j]`` (one pass per row)."""
    k, m = vals.shape
    out = np.zeros((k, n), vals.dtype)
    for r in range(k):
        for j in range(m):
            out[r, idx[j]] = vals[r, j]
    return out


@njit(cache=True)
def _masks(idx, n, k):
    """``k`` rows of the boolean mask of length ``n`` that is true at ``idx``."""
    out = np.zeros((k, n), np.bool_)
    for r in range(k):
        for j in range(idx.shape[0]):
            out[r, idx[j]] = True
    return out


class _Group:
    """The statistics of one dtype: their rows in the group's ``(k, m)`` block of values, the
    plain columns gathered with one fancy index per table, the others through their getters."""

    __slots__ = ("dtype", "keys", "tables", "computed")

    def __init__(self, dtype: Any, rows: list[tuple[int, Stat]]):
        self.dtype = dtype
        self.keys = [j for j, _ in rows]
        by_table: dict[str, tuple[list[int], list[int]]] = {}
        self.computed: list[tuple[int, Stat]] = []
        for r, (_, s) in enumerate(rows):
            if s.source is None:
                self.computed.append((r, s))
            else:
                pos, cols = by_table.setdefault(s.source[0], ([], []))
                pos.append(r)
                cols.append(s.source[1])
        self.tables = [(t, np.array(p, np.int64), np.array(c, np.int64)) for t, (p, c) in by_table.items()]

    def values(self, rows: Rows) -> np.ndarray:
        m = len(rows.idx)
        out = np.empty((len(self.keys), m), self.dtype)
        for table, pos, cols in self.tables:
            out[pos] = rows[table][:, cols].T
        for r, s in self.computed:
            out[r] = s.get(rows)  # broadcast (a constant) and cast to the group's dtype by the assignment
        return out


@functools.lru_cache(maxsize=64)
def record_maker(keys: tuple[str, ...]):
    """A function ``make(v0, ..., vk) -> {keys[0]: v0, ...}`` built once per key tuple.

    A dict display with constant keys is about twice as fast to build as
    ``dict(zip(keys, values))``; the faces build one info dict per finished episode, tens of
    thousands per step at large batch sizes. ``keys`` are identifiers from the cores'
    own code (never user input).
    """
    if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise ValueError(f"record keys must be distinct strings, got {keys!r}")
    args = ", ".join(f"v{i}" for i in range(len(keys)))
    body = ", ".join(f"{k!r}: v{i}" for i, k in enumerate(keys))
    ns: dict[str, Any] = {}
    exec(f"def make({args}):\n    return {{{body}}}\n", ns)  # noqa: S102 - keys are our own literals
    return ns["make"]


class EpisodeStats:
    """The table of an env family's episode statistics (see the module docstring)."""

    def __init__(self, *stats: Stat):
        names = [s.name for s in stats]
        if len(set(names)) != len(names):
            raise ValueError(f"EpisodeStats: duplicate names in {names}")
        self.stats: tuple[Stat, ...] = tuple(stats)
        self.keys: tuple[str, ...] = tuple(names)
        self._make = record_maker(self.keys)
        by_dtype: dict[Any, list[tuple[int, Stat]]] = {}
        for j, s in enumerate(self.stats):
            by_dtype.setdefault(_DTYPES[s.kind], []).append((j, s))
        self._groups = [_Group(dt, rows) for dt, rows in by_dtype.items()]

    def _blocks(self, core: Any, idx: np.ndarray) -> list[np.ndarray]:
        """Per dtype group, the ``(k, len(idx))`` block of its statistics' values."""
        rows = Rows(core, idx)
        return [g.values(rows) for g in self._groups]

    def columns(self, core: Any, idx: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """The values for the envs ``idx``, one array per statistic (float64 / int64 / bool)."""
        idx = np.asarray(idx, dtype=np.int64)
        out: list[Any] = [None] * len(self.stats)
        for g, block in zip(self._groups, self._blocks(core, idx)):
            for r, j in enumerate(g.keys):
                out[j] = block[r]
        return out

    def final_info(self, core: Any, idx: np.ndarray, n: int) -> dict[str, Any]:
        """Gymnasium's ``final_info`` for the envs ``idx`` (ascending) of a batch of ``n``: per
        statistic an array of length ``n`` (its dtype, zero where the env did not end) and the
        boolean mask ``"_" + name`` of the envs that did. The arrays of one dtype are rows of one
        block (separate, non-overlapping arrays; one allocation per dtype instead of one per key)."""
        out: dict[str, Any] = {}
        if not len(idx):
            return out
        idx = np.asarray(idx, dtype=np.int64)
        every = len(idx) == n  # every env ended (a batch whose episodes end together): no scatter
        arrays: list[Any] = [None] * len(self.stats)
        for g, block in zip(self._groups, self._blocks(core, idx)):
            if not every:
                block = _scatter(block, idx, n)
            for r, j in enumerate(g.keys):
                arrays[j] = block[r]
        masks = np.ones((len(self.stats), n), np.bool_) if every else _masks(idx, n, len(self.stats))
        for j, key in enumerate(self.keys):
            out[key] = arrays[j]
            out["_" + key] = masks[j]
        return out

    def infos(self, core: Any, idx: Sequence[int] | np.ndarray,
              extra_keys: tuple[str, ...] = (), extra_cols: tuple[Sequence, ...] = ()) -> list[dict[str, Any]]:
        """One new dict per env of ``idx`` (Python numbers), with ``extra_keys`` columns appended."""
        cols = [c.tolist() for c in self.columns(core, idx)]
        make = self._make if not extra_keys else record_maker(self.keys + tuple(extra_keys))
        return list(itertools.starmap(make, zip(*cols, *extra_cols)))

    def info(self, core: Any, i: int) -> dict[str, Any]:
        """The dict of env ``i``."""
        return self.infos(core, [int(i)])[0]

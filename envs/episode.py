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

    def __post_init__(self) -> None:
        if self.kind not in _DTYPES:
            raise TypeError(f"Stat {self.name!r}: kind must be float, int or bool, got {self.kind!r}")


def column(name: str, col: int, table: str = "ep_done", kind: type = float) -> Stat:
    """A statistic that is column ``col`` of the core's array ``table`` (default ``ep_done``)."""

    def get(rows, _t=table, _c=col):
        return rows[_t][:, _c]

    return Stat(name, get, kind)


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

    def columns(self, core: Any, idx: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """The values for the envs ``idx``, one array per statistic (float64 / int64 / bool)."""
        idx = np.asarray(idx, dtype=np.int64)
        rows = Rows(core, idx)
        out = []
        for s in self.stats:
            v = np.asarray(s.get(rows))
            if v.shape != idx.shape:
                v = np.broadcast_to(v, idx.shape)
            out.append(v.astype(_DTYPES[s.kind], copy=False))
        return out

    def final_info(self, core: Any, idx: np.ndarray, n: int) -> dict[str, Any]:
        """Gymnasium's ``final_info`` for the envs ``idx`` (ascending) of a batch of ``n``: per
        statistic an array of length ``n`` (its dtype, zero where the env did not end) and the
        boolean mask ``"_" + name`` of the envs that did. The arrays of one dtype are rows of one
        block (separate, non-overlapping arrays; one allocation per dtype instead of one per key)."""
        out: dict[str, Any] = {}
        if not len(idx):
            return out
        cols = self.columns(core, idx)
        groups: dict[Any, list[int]] = {}
        for j, c in enumerate(cols):
            groups.setdefault(c.dtype, []).append(j)
        arrays: list[Any] = [None] * len(cols)
        every = len(idx) == n  # every env ended (a batch whose episodes end together): no scatter
        for dt, js in groups.items():
            if every:
                block = np.stack([cols[j] for j in js])
            else:
                block = np.zeros((len(js), n), dtype=dt)
                block[:, idx] = np.stack([cols[j] for j in js])
            for r, j in enumerate(js):
                arrays[j] = block[r]
        if every:
            masks = np.ones((len(cols), n), dtype=np.bool_)
        else:
            mask = np.zeros(n, dtype=np.bool_)
            mask[idx] = True
            masks = np.empty((len(cols), n), dtype=np.bool_)
            masks[:] = mask
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

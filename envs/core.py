"""Batched simulation core and the three faces of every lobworld env.

A concrete environment subclasses :class:`BatchedCore`: it owns struct-of-arrays
state with leading dimension ``n_envs``, preallocated output buffers, and
``@njit`` kernels that step and reset every env in place. From one core class
this module builds the three faces users see:

* :class:`LOBEnv` -- a single :class:`gymnasium.Env` (``gym.make``), a core with
  ``n_envs=1`` and no autoreset;
* :class:`LOBVectorEnv` -- a native :class:`gymnasium.vector.VectorEnv`
  (``gym.make_vec(..., vectorization_mode="vector_entry_point")``) with
  same-step autoreset (``metadata["autoreset_mode"] = SAME_STEP``);
* :class:`LOBSB3VecEnv` -- a direct subclass of SB3's ``VecEnv`` with exactly
  ``DummyVecEnv``'s semantics (same-step autoreset, ``terminal_observation``,
  ``TimeLimit.truncated``, ``seed()`` applied at the next ``reset()``).

Seeding: env ``i`` of a batch reset with ``seed=s`` is seeded with ``s + i``,
so it replays exactly the single env reset with ``seed=s + i``. Seeds are ints in
``[0, MAX_SEED]`` (``2**63 - 1``); any other seed, or a batch whose ``s + i`` leaves the
range, raises :class:`SeedError` (never wrapped).

Inputs every face checks: ``step()`` before the first ``reset()`` raises
:class:`ResetNeeded`; an action that is not numbers in the action space raises
:class:`ActionError` naming the space; an env keyword that is not a field of the env's
config raises :class:`UnknownArgumentError` listing the valid ones
(:func:`config_from_kwargs`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from numba import njit
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from lobworld._checks import integer
from lobworld.envs.episode import EpisodeStats
from lobworld.envs.rng import seed_state, seed_states
from lobworld.errors import LobworldError

__all__ = [
    "BatchedCore",
    "LOBEnv",
    "LOBVectorEnv",
    "LOBSB3VecEnv",
    "ActionError",
    "VecAttributeError",
    "ResetNeeded",
    "EnvConfigError",
    "SeedError",
    "UnknownArgumentError",
    "MAX_SEED",
    "check_seed",
    "config_from_kwargs",
    "renamed_kwarg",
    "batch_infos",
    "make_sb3_vec_env",
]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic GC while a face builds its per-env info dicts.

    A batch whose episodes end together creates tens of thousands of small acyclic
    objects in one step; each 700 allocations would trigger a collection that walks
    every tracked object (docs/benchmarks.md has the effect on the SB3 face). The objects
    are collected normally after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _episode_dicts(core: "BatchedCore", idx: np.ndarray, extra_keys: tuple[str, ...] = (),
                   extra_cols: tuple[list, ...] = ()) -> list[dict[str, Any]]:
    """Info dicts of the envs ``idx``, with ``extra_keys`` columns appended (from the core's
    :class:`~lobworld.envs.episode.EpisodeStats` table when it has one)."""
    stats = core.episode_stats
    if stats is not None:
        return stats.infos(core, idx, tuple(extra_keys), tuple(extra_cols))
    out = core.episode_infos(idx)
    for k, col in zip(extra_keys, extra_cols):
        for d, v in zip(out, col):
            d[k] = v
    return out


def _info_array(n: int, first: Any) -> np.ndarray:
    """The empty batch array Gymnasium's ``VectorEnv._add_info`` makes for a key whose first value is
    ``first``: the value's own dtype for Python/NumPy scalars, ``(n, *shape)`` for an array, an object
    array (``None`` where absent) otherwise."""
    if type(first) in (int, float, bool) or isinstance(first, np.number):
        return np.zeros(n, dtype=type(first))
    if isinstance(first, np.ndarray):
        return np.zeros((n, *first.shape), dtype=first.dtype)
    return np.full(n, None, dtype=object)


def batch_infos(n: int, idx: Sequence[int], dicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-env info ``dicts[j]`` of env ``idx[j]`` (ascending) as one dict of arrays, exactly as
    Gymnasium's ``VectorEnv._add_info`` builds it env by env: for every key an array of length ``n``
    (created from the first env that has the key, zero / ``None`` elsewhere) and a boolean mask
    ``"_" + key`` of the envs that have it; nested dicts recursively."""
    out: dict[str, Any] = {}
    for i, d in zip(idx, dicts):
        _add_info(out, n, int(i), d)
    return out


def _add_info(out: dict[str, Any], n: int, i: int, info: dict[str, Any]) -> dict[str, Any]:
    for key, value in info.items():
        if isinstance(value, dict):
            arr = _add_info(out.get(key, {}), n, i, value)
        else:
            arr = out.get(key)
            if arr is None:
                arr = _info_array(n, value)
            arr[i] = value
        mask = out.get("_" + key)
        if mask is None:
            mask = np.zeros(n, dtype=np.bool_)
        mask[i] = True
        out[key], out["_" + key] = arr, mask
    return out


def _final_info(core: "BatchedCore", idx: np.ndarray, n: int) -> dict[str, Any]:
    """``infos["final_info"]`` of the vector face for the envs ``idx`` that ended: Gymnasium's
    dict of arrays with ``_key`` masks (:func:`batch_infos`), built column by column from the
    core's :class:`~lobworld.envs.episode.EpisodeStats` table when it has one (float64, int64
    and bool arrays, the dtypes Gymnasium gives Python floats, ints and bools)."""
    stats = core.episode_stats
    if stats is None:
        return batch_infos(n, idx.tolist(), core.episode_infos(idx))
    return stats.final_info(core, idx, n)


def _row_objects(a: np.ndarray) -> np.ndarray:
    """A 1-d object array whose element ``j`` is row ``j`` of ``a`` (views of ``a``, which the
    caller owns): what Gymnasium's ``final_obs`` holds, built without a Python loop
    (``np.fromiter`` stores each row as one object, without the shape discovery ``np.array`` runs)."""
    return np.fromiter(a, dtype=object, count=len(a))


@njit(cache=True)
def _first_bad_row(a, low, high):
    """First row of ``a`` (n, k) with a value that is not finite or outside ``[low, high]``; -1 when none."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            x = a[i, j]
            if not (x >= low[j] and x <= high[j] and x - x == 0.0):  # x - x is NaN for +-inf and NaN
                return i
    return -1


@njit(cache=True)
def _any_bad(a, low, high):
    """Whether :func:`_first_bad_row` of ``a`` (C-contiguous) finds a row: the same test without the
    early exit, over the flat array in blocks of 64 rows against bounds tiled to the block's length,
    so that the inner loop runs over contiguous memory and the compiler vectorises it."""
    n, k = a.shape
    f = a.reshape(-1)
    span = 64 * k
    lo_t = np.empty(span)
    hi_t = np.empty(span)
    for q in range(span):
        lo_t[q] = low[q % k]
        hi_t[q] = high[q % k]
    bad = False
    blocks = n // 64
    for b in range(blocks):
        base = b * span
        for q in range(span):
            x = f[base + q]
            bad |= (x < lo_t[q]) | (x > hi_t[q]) | (x - x != 0.0)
    for p in range(blocks * span, n * k):
        x = f[p]
        j = p % k
        bad |= (x < low[j]) | (x > high[j]) | (x - x != 0.0)
    return bad


class ActionError(LobworldError):
    """An action that is not in the env's action space (type, shape, NaN, bounds)."""


class VecAttributeError(LobworldError):
    """An SB3 attribute-API call that cannot be honoured for the ``indices`` given: the attribute
    or method belongs to the whole batch (one core), not to the envs named."""


class ResetNeeded(LobworldError, RuntimeError):
    """``step()`` on a face that has not been reset (or, single env, whose episode ended)."""


class EnvConfigError(LobworldError):
    """A bad value of an env config field (the message names the config class and field)."""


class SeedError(LobworldError):
    """A seed that is not an int in ``[0, MAX_SEED]``."""


class UnknownArgumentError(LobworldError, TypeError):
    """An env keyword argument that is neither a config field nor a parameter of the env (also a
    ``TypeError``, what Python raises for an unexpected keyword)."""


#: largest seed an env accepts (the int64 range: seeds are recorded as int64 and ``seed + i``
#: must stay representable); larger or negative seeds are refused rather than wrapped
MAX_SEED = 2**63 - 1


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``seed`` as a Python int (``None`` passes), or :class:`SeedError` naming ``what``."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise SeedError(f"{what} must be an int in [0, 2**63 - 1] or None, got {seed!r}")
    s = int(seed)
    if not 0 <= s <= MAX_SEED:
        raise SeedError(f"{what} must be in [0, 2**63 - 1], got {s} (seeds are refused, not wrapped)")
    return s


def batch_seeds(seed: Any, n: int) -> list[int]:
    """Seeds ``seed + i`` of a batch of ``n`` envs, each checked (:func:`check_seed`)."""
    s = check_seed(seed)
    return [check_seed(s + i, f"seed + {i} (env {i} of {n})") if i else s for i in range(n)]


def renamed_kwarg(kwargs: dict[str, Any], old: str, new: str, owner: str) -> dict[str, Any]:
    """``kwargs`` with the deprecated name ``old`` renamed ``new`` (a ``DeprecationWarning``); both
    given is a :class:`~lobworld.errors.LobworldError`."""
    if old not in kwargs:
        return kwargs
    if new in kwargs:
        raise UnknownArgumentError(f"{owner}: give {new!r} only ({old!r} is its deprecated alias), got both")
    warnings.warn(f"{owner}: {old!r} is deprecated, use {new!r} (the same parent-order size in every env)",
                  DeprecationWarning, stacklevel=4)
    out = dict(kwargs)
    out[new] = out.pop(old)
    return out


def config_from_kwargs(config_cls: type, config: Any, overrides: dict[str, Any], owner: str,
                       params: Sequence[str] = ()) -> Any:
    """The env config: ``config`` (default ``config_cls()``) with the fields ``overrides`` replaced.

    A name that is not a field of ``config_cls`` raises :class:`UnknownArgumentError` listing the
    fields and the env's own ``params``.
    """
    names = [f.name for f in dataclasses.fields(config_cls) if f.init]
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise UnknownArgumentError(
            f"{owner}: unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid arguments: {', '.join(names)} ({config_cls.__name__} fields)"
            + (f" and {', '.join(params)}" if params else ""))
    if config is None:
        return config_cls(**overrides)
    if not isinstance(config, config_cls):
        raise TypeError(f"{owner}: config must be a {config_cls.__name__}, got {type(config).__name__}")
    return dataclasses.replace(config, **overrides) if overrides else config


class BatchedCore:
    """Base class of a Numba-batched environment.

    Subclasses set the class attributes and implement the four hooks:

    ``_alloc_state()``
        allocate the struct-of-arrays state (leading dimension ``n_envs``).
    ``_reset_rows(mask)``
        reset every env ``i`` with ``mask[i]`` and write its first observation
        into ``self.obs[i]``.
    ``_step_rows(actions, autoreset)``
        advance every env one step; write ``obs``, ``reward``, ``terminated``,
        ``truncated``; for each env that ended copy its last observation into
        ``self.final_obs[i]`` and its episode statistics into the subclass's
        episode arrays; when ``autoreset`` reset it in the same call.
    ``episode_info(i)``
        the info dict of the episode env ``i`` finished last (plain floats).

    Buffers are reused: faces copy what they hand to the caller, except the four step outputs of
    a core with ``fresh_outputs`` (see :meth:`step_fresh`).
    """

    #: number of independent random streams per env (one per model component)
    n_streams: ClassVar[int] = 1
    #: methods ``m(i, ...)`` about env ``i`` alone: the SB3 face's ``env_method(m, ..., indices)``
    #: calls ``m(i, ...)`` for each index; every other method acts on the whole batch
    env_methods: ClassVar[tuple[str, ...]] = ("episode_info",)
    #: whether ``_step_rows(actions, autoreset=True)`` writes every row of ``obs``, ``reward``,
    #: ``terminated`` and ``truncated`` and reads none of them: then :meth:`step_fresh` steps into
    #: new arrays that the faces return without a copy (tests/test_fresh_outputs.py checks every
    #: core that sets it against the copying path, from arrays filled with sentinels)
    fresh_outputs: ClassVar[bool] = False
    single_observation_space: spaces.Box
    single_action_space: spaces.Space

    def __init__(self, n_envs: int):
        integer("n_envs", n_envs, error=EnvConfigError, what="a positive int")
        self.n_envs = int(n_envs)
        obs_shape = self.single_observation_space.shape
        self.obs = np.zeros((self.n_envs, *obs_shape), dtype=np.float32)
        self.final_obs = np.zeros_like(self.obs)
        self.reward = np.zeros(self.n_envs, dtype=np.float64)
        self.terminated = np.zeros(self.n_envs, dtype=np.bool_)
        self.truncated = np.zeros(self.n_envs, dtype=np.bool_)
        self.rng_state = seed_states([None] * self.n_envs, self.n_streams)
        self._alloc_state()

    # ----------------------------------------------------------------- hooks
    def _alloc_state(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset_rows(self, mask: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_rows(self, actions: np.ndarray, autoreset: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    #: the family's episode statistics (:class:`~lobworld.envs.episode.EpisodeStats`); the
    #: three faces build every episode info from it. A core without one overrides
    #: :meth:`episode_info` (and optionally :meth:`episode_infos`).
    episode_stats: ClassVar[EpisodeStats | None] = None

    def episode_info(self, i: int) -> dict[str, Any]:
        """Statistics of the episode env ``i`` finished last (keys and units: the env's docstring)."""
        if self.episode_stats is None:  # pragma: no cover - abstract
            raise NotImplementedError
        return self.episode_stats.info(self, i)

    def episode_infos(self, idx: np.ndarray) -> list[dict[str, Any]]:
        """Episode infos of the envs ``idx`` (new dicts, equal to :meth:`episode_info` of each)."""
        if self.episode_stats is not None:
            return self.episode_stats.infos(self, idx)
        return [self.episode_info(int(i)) for i in idx]

    def episode_columns(self, idx: np.ndarray) -> tuple[tuple[str, ...], list[np.ndarray]] | None:
        """``(keys, columns)``: ``columns[k][j]`` the value of ``keys[k]`` for env ``idx[j]``
        (float64 / int64 / bool arrays, equal to what :meth:`episode_infos` returns); ``None``
        for a core without an :attr:`episode_stats` table."""
        if self.episode_stats is None:
            return None
        return self.episode_stats.keys, self.episode_stats.columns(self, idx)

    def set_options(self, indices: Sequence[int], options: dict[str, Any]) -> None:
        """Apply reset ``options`` to the given envs before their next reset.

        The base core accepts none; subclasses override and validate keys.
        """
        if options:
            raise ValueError(
                f"{type(self).__name__}: unknown reset option(s) {sorted(options)}; this env takes none"
            )

    # --------------------------------------------------------------- public
    def seed_rows(self, indices: Sequence[int], seeds: Sequence[int | None]) -> None:
        """Re-seed the random streams of the given envs (``None``: fresh entropy)."""
        for i, s in zip(indices, seeds):
            self.rng_state[i] = seed_state(check_seed(s, f"seed of env {i}"), self.n_streams)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Reset the envs selected by ``mask`` (all when ``None``)."""
        if mask is None:
            mask = np.ones(self.n_envs, dtype=np.bool_)
        self.terminated[mask] = False
        self.truncated[mask] = False
        self._reset_rows(np.ascontiguousarray(mask, dtype=np.bool_))

    def _into_action_buffer(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        """``a`` copied (and converted) into the core's action buffer: one C-contiguous array per
        core, allocated at the first call and reused by every step, which the kernels read. A fresh
        array per step would sit at a new address in memory, and how fast a batched kernel runs
        depends on where its arrays lie relative to one another; one buffer keeps that fixed for
        the core's life, the same for every face."""
        buf = self.__dict__.get("_action_buf")
        if buf is None or buf.shape != a.shape or buf.dtype != dtype:
            buf = self._action_buf = np.empty(a.shape, dtype)
        np.copyto(buf, a, casting="unsafe")
        return buf

    def step(self, actions: Any, autoreset: bool) -> None:
        """Validate ``actions`` (batched, leading dim ``n_envs``) and step every env."""
        self._step_rows(self.check_actions(actions), autoreset)

    def step_fresh(self, actions: Any) -> bool:
        """:meth:`step` with autoreset, for the faces. On a core with ``fresh_outputs`` the step writes
        into newly allocated ``obs``, ``reward``, ``terminated`` and ``truncated`` arrays (allocated
        after the actions passed their check, so a refused batch leaves the core as it was); the
        core never writes those arrays again, so a face may hand them to its caller as they are.
        Returns whether it did (False: the core's reused buffers, which a face must copy)."""
        a = self.check_actions(actions)
        fresh = self.fresh_outputs
        if fresh:
            self.obs = self._new_output(self.obs)
            self.reward = self._new_output(self.reward)
            self.terminated = self._new_output(self.terminated)
            self.truncated = self._new_output(self.truncated)
        self._step_rows(a, True)
        return fresh

    def _new_output(self, a: np.ndarray) -> np.ndarray:
        """A new array like ``a`` for :meth:`step_fresh` (uninitialised: the step writes every row)."""
        return np.empty_like(a)

    def check_actions(self, actions: Any) -> np.ndarray:
        """Return ``actions`` as a contiguous array, or raise :class:`ActionError`.

        Checks shape, finiteness and bounds against ``single_action_space``;
        never clips silently. The array returned is the core's own action buffer (see
        :meth:`_into_action_buffer`), valid until the next call.
        """
        space = self.single_action_space
        try:
            a = np.asarray(actions)
        except Exception as exc:  # ragged lists and the like
            raise ActionError(f"{type(self).__name__}: actions are not an array: {exc}; expected actions "
                              f"in {space}") from exc
        if a.dtype.kind not in "biuf":
            example = a.reshape(-1)[0] if a.size else a
            raise ActionError(f"{type(self).__name__}: actions must be numbers in {space}, got {a.dtype} "
                              f"values such as {example!r}")
        if isinstance(space, spaces.Discrete):
            want: tuple[int, ...] = (self.n_envs,)
            if a.shape != want:
                if a.shape == (self.n_envs, 1):
                    a = a[:, 0]
                else:
                    raise ActionError(
                        f"{type(self).__name__}: actions must have shape {want}, got {a.shape}"
                    )
            if not np.issubdtype(a.dtype, np.integer):
                if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                    raise ActionError(f"{type(self).__name__}: discrete actions must be integers")
            a = self._into_action_buffer(a, np.int64)
            bad = (a < space.start) | (a >= space.start + space.n)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ActionError(
                    f"{type(self).__name__}: action {a[i]} of env {i} outside Discrete({space.n})"
                )
            return a
        assert isinstance(space, spaces.Box)
        want = (self.n_envs, *space.shape)
        if a.shape != want:
            raise ActionError(f"{type(self).__name__}: actions must have shape {want}, got {a.shape}")
        bounds = self.__dict__.get("_box_bounds")
        if bounds is None:
            bounds = self._box_bounds = (np.ascontiguousarray(space.low, dtype=np.float64).reshape(-1),
                                         np.ascontiguousarray(space.high, dtype=np.float64).reshape(-1))
        a = self._into_action_buffer(a, np.float64)
        a2 = a.reshape(self.n_envs, -1)
        i = _first_bad_row(a2, bounds[0], bounds[1]) if _any_bad(a2, bounds[0], bounds[1]) else -1
        if i >= 0:
            if not np.isfinite(a[i]).all():
                raise ActionError(f"{type(self).__name__}: action of env {i} is not finite: {a[i]}")
            raise ActionError(
                f"{type(self).__name__}: action {a[i]} of env {i} outside the action space "
                f"[{space.low}, {space.high}]"
            )
        return a


# ---------------------------------------------------------------------------
# Face 1: single gym.Env
# ---------------------------------------------------------------------------
class LOBEnv(gym.Env):
    """Single-env face of a :class:`BatchedCore` (``gym.make``).

    Subclasses set ``core_cls``. ``reset(seed=s)`` seeds every component from
    ``SeedSequence(s).spawn(n_streams)``; ``reset()`` without a seed continues
    the streams. Stepping a finished episode without ``reset()`` raises.
    """

    core_cls: ClassVar[type[BatchedCore]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None:
            raise ValueError(f"{type(self).__name__} has no render modes, got {render_mode!r}")
        self.render_mode = None
        self.core = self.core_cls(n_envs=1, **kwargs)
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed_rows([0], [seed])
        if options:
            self.core.set_options([0], options)
        self.core.reset()
        self._needs_reset = False
        return self.core.obs[0].copy(), {}

    def step(self, action):
        if self._needs_reset:
            raise ResetNeeded(f"{type(self).__name__}: call reset() before step() (not reset yet, or the "
                              f"episode ended)")
        a = np.asarray(action)
        self.core.step(a[None, ...], autoreset=False)
        terminated = bool(self.core.terminated[0])
        truncated = bool(self.core.truncated[0])
        info: dict[str, Any] = {}
        if terminated or truncated:
            self._needs_reset = True
            info = self.core.episode_info(0)
        return self.core.obs[0].copy(), float(self.core.reward[0]), terminated, truncated, info


# ---------------------------------------------------------------------------
# Face 2: Gymnasium vector env
# ---------------------------------------------------------------------------
class LOBVectorEnv(VectorEnv):
    """Native Gymnasium vector face with same-step autoreset.

    ``step`` returns batched arrays; an env that ended this step is reset in the
    same call. Its infos are exactly those of :class:`gymnasium.vector.SyncVectorEnv`
    with ``autoreset_mode=SAME_STEP`` over the single envs: ``infos["final_obs"]`` an
    object array (the last observation where the env ended, ``None`` elsewhere) with the
    mask ``infos["_final_obs"]``; ``infos["final_info"]`` a dict of arrays, one per
    episode-info key (the value's dtype, zero where the env did not end) each with its
    boolean mask ``"_" + key``, and the mask ``infos["_final_info"]``. A step where no
    env ended returns ``{}``.
    """

    core_cls: ClassVar[type[BatchedCore]]
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None:
            raise ValueError(f"{type(self).__name__} has no render modes, got {render_mode!r}")
        self.render_mode = None
        self.core = self.core_cls(n_envs=num_envs, **kwargs)
        self.num_envs = self.core.n_envs
        self.single_observation_space = self.core.single_observation_space
        self.single_action_space = self.core.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = True

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        if seed is not None:
            if isinstance(seed, (list, tuple, np.ndarray)):
                seeds = [check_seed(s, f"seed of env {i}") for i, s in enumerate(seed)]
            else:
                seeds = batch_seeds(seed, self.num_envs)
            if len(seeds) != self.num_envs:
                raise SeedError(f"expected {self.num_envs} seeds, got {len(seeds)}")
            self.core.seed_rows(range(self.num_envs), seeds)
            if seeds[0] is not None:
                self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seeds[0])
        if options:
            self.core.set_options(range(self.num_envs), options)
        self.core.reset()
        self._needs_reset = False
        return self.core.obs.copy(), {}

    def step(self, actions):
        if self._needs_reset:
            raise ResetNeeded(f"{type(self).__name__}: call reset() before step()")
        core = self.core
        fresh = core.step_fresh(actions)
        done = core.terminated | core.truncated
        infos: dict[str, Any] = {}
        if done.any():
            idx = np.flatnonzero(done)
            if len(idx) == self.num_envs:  # every env ended: a copy is cheaper than a gather
                final_obs = _row_objects(core.final_obs.copy())
            else:
                final_obs = np.empty(self.num_envs, dtype=object)  # None-filled
                final_obs[idx] = _row_objects(core.final_obs[idx])
            with _gc_paused():
                final_info = _final_info(core, idx, self.num_envs)
            infos = {"final_obs": final_obs, "_final_obs": done.copy(),
                     "final_info": final_info, "_final_info": done.copy()}
        if fresh:  # the step's own new arrays: the core never writes them again
            return core.obs, core.reward, core.terminated, core.truncated, infos
        return (core.obs.copy(), core.reward.copy(), core.terminated.copy(),
                core.truncated.copy(), infos)

    def close_extras(self, **kwargs: Any) -> None:
        pass


# ---------------------------------------------------------------------------
# Face 3: Stable-Baselines3 VecEnv
# ---------------------------------------------------------------------------
class LOBSB3VecEnv(VecEnv):
    """Direct SB3 ``VecEnv`` over a :class:`BatchedCore` (no ``DummyVecEnv``).

    Matches ``DummyVecEnv.step_wait``: rewards ``float32 (n,)``, dones
    ``bool (n,)``; an env that ended is reset in the same step, with
    ``infos[i]["terminal_observation"]`` its last observation and
    ``infos[i]["TimeLimit.truncated"] = truncated and not terminated``;
    episode statistics are merged into that info dict.
    """

    def __init__(self, core: BatchedCore):
        self.core = core
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        self._env_attrs: list[dict[str, Any]] = [{} for _ in range(core.n_envs)]
        super().__init__(core.n_envs, core.single_observation_space, core.single_action_space)
        self._actions: np.ndarray | None = None
        self._needs_reset = True

    # --- core API
    def reset(self):
        n = self.num_envs
        seeds = [s for s in self._seeds]
        if any(s is not None for s in seeds):
            idx = [i for i, s in enumerate(seeds) if s is not None]
            self.core.seed_rows(idx, [seeds[i] for i in idx])
        opts = [o for o in self._options]
        if any(opts):
            for i, o in enumerate(opts):
                if o:
                    self.core.set_options([i], o)
        self.core.reset()
        self._needs_reset = False
        self.reset_infos = [{} for _ in range(n)]
        self._reset_seeds()
        self._reset_options()
        return self.core.obs.copy()

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """Store ``seed + i`` for env ``i`` for the next :meth:`reset` (a random seed when ``None``);
        a seed outside ``[0, MAX_SEED]`` for any env raises :class:`SeedError` now."""
        if seed is not None:
            batch_seeds(seed, self.num_envs)
        return super().seed(seed)

    def step_async(self, actions: np.ndarray) -> None:
        if self._needs_reset:
            raise ResetNeeded(f"{type(self).__name__}: call reset() before step()")
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        core = self.core
        actions, self._actions = self._actions, None
        fresh = core.step_fresh(actions)
        done = core.terminated | core.truncated
        with _gc_paused():
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            if done.any():
                idx = np.flatnonzero(done)
                fo = core.final_obs[idx].copy()
                time_limit = (core.truncated[idx] & ~core.terminated[idx]).tolist()
                dicts = _episode_dicts(core, idx, ("terminal_observation", "TimeLimit.truncated"),
                                       (list(fo), time_limit))
                for i, info in zip(idx.tolist(), dicts):
                    infos[i] = info
        return core.obs if fresh else core.obs.copy(), core.reward.astype(np.float32), done, infos

    def close(self) -> None:
        pass

    # --- attribute API
    # The batch is one core, so its attributes and methods belong to the whole batch. What SB3
    # code attaches to envs (``set_attr(name, v, indices=[3])`` for a name the core does not have)
    # lives in per-env namespaces, read first, as DummyVecEnv's separate envs keep it.
    def _indices_list(self, indices) -> list[int]:
        idx = [int(i) for i in self._get_indices(indices)]
        for i in idx:
            if not -self.num_envs <= i < self.num_envs:
                raise IndexError(f"env index {i} out of range for {self.num_envs} envs")
        return [i % self.num_envs for i in idx]

    def _covers_all(self, idx: list[int]) -> bool:
        return set(idx) == set(range(self.num_envs))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """``[value of attr_name for env i in indices]``: a value set for env ``i`` alone by
        :meth:`set_attr`, else the core's (batch-wide) attribute; ``AttributeError`` when neither."""
        out = []
        for i in self._indices_list(indices):
            own = self._env_attrs[i]
            if attr_name in own:
                out.append(own[attr_name])
            elif attr_name == "render_mode":
                out.append(None)
            elif hasattr(self.core, attr_name):
                out.append(getattr(self.core, attr_name))
            else:
                raise AttributeError(f"env {i} of {type(self.core).__name__} has no attribute {attr_name!r}")
        return out

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        """Set ``attr_name`` for the envs ``indices`` only.

        An attribute the core has (its config, buffers, ``horizon`` ...) is shared by the whole
        batch and read by the kernels: it is set on the core when ``indices`` covers every env,
        and refused with :class:`VecAttributeError` for a subset (rather than changing every env).
        Any other name goes into the named envs' own namespaces, as on DummyVecEnv's envs.
        """
        idx = self._indices_list(indices)
        if hasattr(self.core, attr_name) or attr_name == "render_mode":
            if not self._covers_all(idx):
                raise VecAttributeError(
                    f"{type(self.core).__name__}.{attr_name} is shared by all {self.num_envs} envs of the "
                    f"batch; set it for every env (indices=None), not for envs {idx}")
            setattr(self.core, attr_name, value)
            return
        for i in idx:
            self._env_attrs[i][attr_name] = value

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        """Call ``method_name`` for the envs ``indices``: ``[result for env i in indices]``.

        A callable set for env ``i`` by :meth:`set_attr` is called as ``f(*args, **kwargs)``;
        a per-env method of the core (listed in ``BatchedCore.env_methods``, e.g.
        ``episode_info``) as ``core.method(i, *args, **kwargs)``; any other core method acts on
        the whole batch, so it is called once (its result repeated for every env) when
        ``indices`` covers every env and refused with :class:`VecAttributeError` otherwise.
        """
        idx = self._indices_list(indices)
        out: list[Any] = []
        batch_method = None
        for i in idx:
            own = self._env_attrs[i]
            if method_name in own:
                out.append(own[method_name](*method_args, **method_kwargs))
                continue
            method = getattr(self.core, method_name)  # AttributeError when missing, like DummyVecEnv
            if method_name in self.core.env_methods:
                out.append(method(i, *method_args, **method_kwargs))
                continue
            if not self._covers_all(idx) or any(method_name in self._env_attrs[j] for j in idx):
                raise VecAttributeError(
                    f"{type(self.core).__name__}.{method_name} acts on all {self.num_envs} envs of the batch; "
                    f"call it for every env (indices=None), not for envs {idx}")
            if batch_method is None:
                batch_method = (method(*method_args, **method_kwargs),)
            out.append(batch_method[0])
        return out

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices_list(indices)]

    def get_images(self):
        return [None for _ in range(self.num_envs)]


def make_sb3_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, **kwargs: Any) -> LOBSB3VecEnv:
    """Build the native SB3 ``VecEnv`` of a registered lobworld id.

    ``kwargs`` override the id's registered keyword arguments. With ``seed``
    the first ``reset()`` seeds env ``i`` with ``seed + i``.
    """
    if env_id not in gym.registry:
        from lobworld.envs.spec import env_ids

        raise gym.error.UnregisteredEnv(f"unknown env id {env_id!r}; lobworld ids: {', '.join(env_ids())}")
    spec = gym.registry[env_id]
    vec_cls = spec.vector_entry_point
    if isinstance(vec_cls, str):
        vec_cls = gym.envs.registration.load_env_creator(vec_cls)
    core_cls = vec_cls.core_cls
    core = core_cls(n_envs=n_envs, **{**spec.kwargs, **kwargs})
    env = LOBSB3VecEnv(core)
    if seed is not None:
        env.seed(seed)
    return env

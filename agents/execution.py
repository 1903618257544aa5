"""Execution baselines and a batched evaluator.

Every policy is a callable on a batch of observations of the execution envs
(``obs (n, 8)``, columns as in :class:`lobworld.envs.execution.ExecutionEnv`) returning
``actions (n, 1)`` float64 in [0, 1] -- the fraction of the remaining quantity to trade.
They read only the observation (time fraction ``obs[:, 1]``, remaining fraction
``obs[:, 0]``, volume ``obs[:, 5]``, time of day ``obs[:, 7]``), so they run unchanged on
the single, Gymnasium-vector and SB3 faces.

* :class:`SchedulePolicy` -- follow a deterministic holdings schedule x_0..x_T
  (action a_k = 1 - x_{k+1}/x_k); :func:`twap_policy`, :func:`almgren_chriss_policy` build one.
* :class:`VWAPPolicy` -- trade in proportion to the intraday volume profile over the
  remaining window.
* :class:`POVPolicy` -- a fixed participation rate of the observed (EWMA) market volume.
* :class:`AggressivePolicy` -- everything at the first step.

:func:`evaluate` runs a policy on ``n_episodes`` envs of a registered id on the batched
core (one episode per env, env ``i`` seeded ``seed + i``) and returns per-episode arrays.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lobworld._checks import in_range, integer

from lobworld.agents.almgren_chriss import ACProblem, ac_trajectory
from lobworld.envs.execution import (
    GOOG_U_PROFILE,
    O_REMAINING,
    O_TIME,
    O_TOD,
    O_VOLUME,
    SESSION_MINUTES,
    ExecutionConfig,
)
from lobworld.errors import LobworldError


class ExecutionPolicyError(LobworldError):
    """Bad parameters of an execution baseline or evaluation (field named)."""


__all__ = [
    "SchedulePolicy",
    "VWAPPolicy",
    "POVPolicy",
    "AggressivePolicy",
    "twap_policy",
    "almgren_chriss_policy",
    "evaluate",
]


def _steps_taken(obs: np.ndarray, horizon: int) -> np.ndarray:
    obs = np.asarray(obs)
    if obs.ndim != 2 or obs.shape[1] < 8:
        raise ExecutionPolicyError(f"execution policies take batched observations (n, 8), got shape {obs.shape}")
    return np.clip(np.rint(obs[:, O_TIME].astype(np.float64) * horizon).astype(np.int64), 0, horizon - 1)


class SchedulePolicy:
    """Follow holdings ``x_0 = X > x_1 >= ... >= x_T = 0`` (any units; only ratios matter).

    At step k the action is ``1 - x_{k+1} / x_k`` (``1`` once ``x_k = 0``): an env on the
    schedule trades exactly ``n_{k+1} = x_k - x_{k+1}``.
    """

    def __init__(self, holdings):
        x = np.asarray(holdings, dtype=np.float64)
        if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)) or x[0] <= 0 or x[-1] != 0:
            raise ExecutionPolicyError("holdings must be a finite 1-d schedule with x_0 > 0 and x_T = 0")
        if np.any(np.diff(x) > 1e-12 * x[0]):
            raise ExecutionPolicyError("holdings must be non-increasing (a sell/buy-only schedule)")
        self.holdings = x
        self.horizon = x.size - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(x[:-1] > 0, 1.0 - x[1:] / np.where(x[:-1] > 0, x[:-1], 1.0), 1.0)
        self.fractions = np.clip(a, 0.0, 1.0)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        k = _steps_taken(obs, self.horizon)
        return self.fractions[k][:, None]


def twap_policy(horizon: int) -> SchedulePolicy:
    """Equal child orders: a_k = 1 / (T - k)."""
    return SchedulePolicy(np.linspace(1.0, 0.0, int(horizon) + 1))


def almgren_chriss_policy(risk_aversion_bps: float, config: ExecutionConfig | None = None,
                          params=None, problem: ACProblem | None = None) -> SchedulePolicy:
    """The Almgren-Chriss optimal schedule for lambda (1/bps of arrival notional)."""
    if problem is None:
        problem = ACProblem.from_env(config if config is not None else ExecutionConfig(), params)
    return SchedulePolicy(ac_trajectory(problem, risk_aversion_bps))


class VWAPPolicy:
    """Trade the remainder in proportion to the profile's expected volume of each remaining step.

    a_k = w_k / sum_{j >= k} w_j with w_j = profile(time of day at the middle of step j),
    the time of day read from the observation.
    """

    def __init__(self, horizon: int, dt: float = 60.0, profile_coef=GOOG_U_PROFILE):
        self.horizon = int(horizon)
        self.dt = float(dt)
        self.coef = tuple(profile_coef)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        k = _steps_taken(obs, self.horizon)
        tod = np.asarray(obs)[:, O_TOD].astype(np.float64)
        j = np.arange(self.horizon)[None, :]
        x = tod[:, None] + (j + 0.5) * self.dt / 60.0 / SESSION_MINUTES
        a, b, c = self.coef
        w = ((a * np.clip(x, 0, 1) + b) * np.clip(x, 0, 1) + c) * (j < (self.horizon - k)[:, None])
        tot = w.sum(axis=1)
        return np.clip(w[:, 0] / np.where(tot > 0, tot, 1.0), 0.0, 1.0)[:, None]


class POVPolicy:
    """Participate at ``rate`` of the market volume predicted by the volume observation.

    Child order = rate * obs[5] * volume_per_step shares (obs[5] is the EWMA of market volume
    over its reset value, ``volume_per_step`` the expected shares per step of the dynamics),
    as a fraction of the remaining quantity; the remainder is forced at the horizon.
    """

    def __init__(self, rate: float = 0.1, quantity: float = 7061.0, volume_per_step: float = 30.18 * 60.0):
        in_range("POV rate", rate, 0.0, 1.0, lo_open=True, error=ExecutionPolicyError)
        self.rate, self.quantity, self.volume_per_step = float(rate), float(quantity), float(volume_per_step)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        rem = obs[:, O_REMAINING] * self.quantity
        want = self.rate * obs[:, O_VOLUME] * self.volume_per_step
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(rem > 0, want / np.where(rem > 0, rem, 1.0), 1.0)
        return np.clip(a, 0.0, 1.0)[:, None]


class AggressivePolicy:
    """Trade everything at the first step (a = 1)."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.ones((np.asarray(obs).shape[0], 1))


_INFO_KEYS = ("shortfall_bps", "benchmark_slippage_bps", "episode_return", "risk_penalty", "vwap",
              "market_vwap", "market_twap", "arrival_price", "shares_executed", "completion",
              "episode_length")


def evaluate(policy: Callable[[np.ndarray], Any], env_id: str = "LOB-Execution-v0", n_episodes: int = 1000,
             seed: int = 0, **env_kwargs: Any) -> dict[str, np.ndarray]:
    """Run one episode per env on the batched core of ``env_id``; env ``i`` is seeded ``seed + i``.

    Returns per-episode arrays keyed as the episode info (``shortfall_bps``,
    ``benchmark_slippage_bps``, ``episode_return``, ``risk_penalty``, ``vwap``,
    ``market_vwap``, ``market_twap``, ``arrival_price``, ``shares_executed``,
    ``completion``, ``episode_length``). Same seed, same policy: same numbers; two
    policies on the same seed face the same market draws (common random numbers).
    """
    import gymnasium as gym

    if env_id not in gym.registry:
        raise ExecutionPolicyError(f"unknown env id {env_id!r}")
    spec = gym.registry[env_id]
    vec_cls = spec.vector_entry_point
    if isinstance(vec_cls, str):
        vec_cls = gym.envs.registration.load_env_creator(vec_cls)
    integer("n_episodes", n_episodes, error=ExecutionPolicyError)
    core = vec_cls.core_cls(n_envs=int(n_episodes), **{**spec.kwargs, **env_kwargs})
    core.seed_rows(range(core.n_envs), [seed + i for i in range(core.n_envs)])
    core.reset()
    out = {k: np.full(core.n_envs, np.nan) for k in _INFO_KEYS}
    alive = np.ones(core.n_envs, dtype=bool)
    max_steps = 10 * getattr(getattr(core, "config", None), "horizon", 10_000) + 10
    for _ in range(max_steps):
        a = np.asarray(policy(core.obs.copy()), dtype=np.float64).reshape(core.n_envs, -1)
        a = np.where(alive[:, None], a, 0.0)
        core.step(a, autoreset=False)
        ended = alive & (core.terminated | core.truncated)
        for i in np.flatnonzero(ended):
            info = core.episode_info(int(i))
            for k in _INFO_KEYS:
                out[k][i] = info.get(k, np.nan)
        alive &= ~ended
        if not alive.any():
            return out
    raise RuntimeError(f"evaluate: {alive.sum()} episodes did not end within {max_steps} steps")

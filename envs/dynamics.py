"""Market dynamics: the world-model interface the batched kernels call.

A :class:`MarketDynamics` moves the market of every env by one step of ``dt``
seconds, given the agent's signed child-order volume, and prices that child
order. Its state is the row ``market[i]`` of a float64 array whose first
``N_MARKET`` columns have the fixed meanings below (any dynamics may append
private columns after them, e.g. a GRU hidden state); its parameters are a
tuple of arrays ``args`` (per-env rows allowed) passed unchanged to its two
``@njit`` functions::

    reset_fn(i, row, args, st) -> None
    step_fn(i, row, args, st, q, vol_mult) -> float   # average execution price of q

``st`` is the env's dedicated market random stream (``uint64[4]``, see
:mod:`lobworld.envs.rng`); ``q`` is the agent's signed quantity this step in
shares (+ buy, - sell); ``vol_mult`` scales the expected market volume (an
intraday volume profile). A dynamics must draw the same number of random
numbers whatever ``q`` is, so two strategies run on the same seed see the
same exogenous market (common random numbers).

``dynamics="parametric"`` selects :class:`ParametricDynamics`;
``dynamics="learned"`` is provided by :mod:`lobworld.world_models` once a
checkpoint is available.
"""

from __future__ import annotations

from collections.abc import Callable

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numba import njit

from lobworld._checks import finite, non_negative, positive
from lobworld._config import Replaceable
from lobworld.envs.registry import register_factory
from lobworld.envs.rng import normal
from lobworld.errors import LobworldError


class DynamicsError(LobworldError):
    """Bad market-dynamics parameters or arguments (field named)."""


# ---- market state columns (shared by every dynamics) ----------------------
MID = 0  #: mid price after the step (USD)
SPREAD = 1  #: quoted spread after the step (USD)
VOLUME = 2  #: market volume traded during the step, agent excluded (shares)
LAST_RET = 3  #: mid change over the step (USD)
PERM_IMPACT = 4  #: the agent's own displacement of the mid so far (USD, signed): cumulative permanent impact
#: (parametric, learned impact='gru'); the square-root channel's D incl. its undecayed transient part (learned)
TEMP_IMPACT = 5  #: temporary impact paid per share on the last child order (USD, >= 0)
IMBALANCE = 6  #: order-flow imbalance of the step, in [-1, 1]
SIGMA = 7  #: volatility used for the step (USD per sqrt(second))
N_MARKET = 8

# ---- parametric parameter columns ----------------------------------------
P_S0, P_MU, P_SIGMA, P_SPREAD, P_SPREAD_LOGSD, P_TICK, P_VOL_RATE, P_VOL_LOGSD = range(8)
P_ETA, P_GAMMA, P_SQRT_Y, P_SQRT, P_DT = range(8, 13)
N_PARAM = 13


@dataclass(frozen=True)
class ParametricParams(Replaceable):
    """Parameters of the parametric (textbook) market, in physical units.

    Defaults are :func:`lobworld.world_models.calibration.calibrate_parametric`
    on the full LOBSTER GOOG day 2012-06-21 at ``dt`` = 60 s (rounded; a test
    checks them against the estimate): sigma 0.03591, spread 0.2689 (bar-end
    mean; 0.273 time-weighted), spread_logsd 0.466, volume_rate 30.18,
    volume_logsd 1.014. ``s0`` 570.78 is the day's mean mid over its events.
    Impact parameters (eta, gamma, sqrt_y) are not estimable from the public
    tape; see :mod:`lobworld.world_models.impact` for the square-root fit.
    """

    s0: float = 570.78
    """Initial mid price (USD)."""
    mu: float = 0.0
    """Mid drift (USD per second)."""
    sigma: float = 0.03591
    """Arithmetic Brownian volatility of the mid (USD per sqrt(second)); 0.278 USD per minute."""
    spread: float = 0.2689
    """Mean quoted spread (USD)."""
    spread_logsd: float = 0.466
    """Log-normal dispersion of the spread around its mean (0: constant spread)."""
    tick: float = 0.01
    """Tick size (USD); the spread never goes below one tick."""
    volume_rate: float = 30.18
    """Mean market volume (shares per second): 1811 shares per minute."""
    volume_logsd: float = 1.014
    """Log-normal dispersion of per-step market volume."""
    eta: float = 0.05
    """Linear temporary impact (USD per share, per share/second traded): cost per share = eta * q / dt."""
    gamma: float = 4e-6
    """Linear permanent impact (USD per share traded)."""
    sqrt_y: float = 0.5
    """Square-root law coefficient Y: temporary cost per share = Y * sigma_step * sqrt(|q| / V_step)."""
    impact: str = "linear"
    """Temporary impact form: ``"linear"`` (Almgren-Chriss) or ``"sqrt"`` (square-root law)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "impact":
                if v not in ("linear", "sqrt"):
                    raise DynamicsError(f"ParametricParams.impact must be 'linear' or 'sqrt', got {v!r}")
                continue
            finite(f"ParametricParams.{f.name}", v, error=DynamicsError, what="finite")
            if f.name != "mu":
                non_negative(f"ParametricParams.{f.name}", v, error=DynamicsError, what=">= 0")
        if self.s0 <= 0 or self.tick <= 0:
            raise DynamicsError("ParametricParams.s0 and .tick must be > 0")


@dataclass(frozen=True)
class DynamicsBundle:
    """What an env's kernels take from a dynamics for ``n_envs`` envs stepping ``dt`` seconds.

    ``args``: the argument tuple of the functions; ``reset_fn``/``step_fn``: the per-env ``@njit``
    functions; ``batch_reset_fn``/``batch_step_fn``: the batch-level ones, ``None`` where the
    dynamics has none for this ``dt``. Built by :meth:`MarketDynamics.bundle` and never changed
    afterwards, so which functions an env compiles cannot depend on the order of calls.
    """

    args: tuple
    reset_fn: Any
    step_fn: Any
    batch_reset_fn: Any = None
    batch_step_fn: Any = None


class MarketDynamics:
    """Interface: ``reset_fn``/``step_fn`` (``@njit``) plus their argument tuple.

    Optional batch-level form (used by the execution env when both are set; other envs keep
    calling ``reset_fn``/``step_fn`` per env): ``@njit`` functions over a chunk of envs::

        batch_reset_fn(idx, lo, hi, ws, market, args, rng, stream) -> None
        batch_step_fn(idx, lo, hi, ws, market, args, rng, stream, q, vol_mult, price) -> None

    for the envs ``i = idx[lo:hi]`` (at most ``ws.shape[1]`` of them), row ``market[i]``, stream
    ``rng[i, stream]``, quantity ``q[i]``, multiplier ``vol_mult[i]``, writing the execution price
    to ``price[i]``; ``ws`` is one chunk ``workspace(n_envs)[c]`` of scratch. They must give
    every env the market that ``reset_fn``/``step_fn`` give it (same draws, same formulas).
    """

    name: ClassVar[str]
    n_state: int = N_MARKET

    def args(self, n_envs: int, dt: float) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def bundle(self, n_envs: int, dt: float) -> DynamicsBundle:
        """The :class:`DynamicsBundle` for ``n_envs`` envs stepping ``dt`` seconds (default: :meth:`args`
        and the functions set on the dynamics; a dynamics whose functions depend on ``dt`` overrides it)."""
        return DynamicsBundle(self.args(n_envs, dt), self.reset_fn, self.step_fn,
                              getattr(self, "batch_reset_fn", None), getattr(self, "batch_step_fn", None))

    reset_fn: Any
    step_fn: Any
    batch_reset_fn: Any = None
    batch_step_fn: Any = None

    def workspace(self, n_envs: int) -> np.ndarray:  # pragma: no cover - only with batch functions
        """Scratch of the batch functions, ``(n_chunks, rows, chunk)`` float64."""
        raise NotImplementedError


@njit(inline="always")
def _parametric_reset(i, row, args, st):
    P = args[0]
    row[MID] = P[i, P_S0]
    row[SPREAD] = max(P[i, P_SPREAD], P[i, P_TICK])
    row[VOLUME] = P[i, P_VOL_RATE] * P[i, P_DT]
    row[LAST_RET] = 0.0
    row[PERM_IMPACT] = 0.0
    row[TEMP_IMPACT] = 0.0
    row[IMBALANCE] = 0.0
    row[SIGMA] = P[i, P_SIGMA]


@njit(inline="always")
def _parametric_step(i, row, args, st, q, vol_mult):
    """Almgren-Chriss step. Executes ``q`` at the pre-step mid, then moves the mid.

    price paid per share = mid_prev + sign(q) * (spread/2 + temporary impact)
    mid_next = mid_prev + mu dt + sigma sqrt(dt) z + gamma q
    """
    P = args[0]
    dt = P[i, P_DT]
    z_mid = normal(st)
    z_vol = normal(st)
    z_spr = normal(st)
    sd = P[i, P_VOL_LOGSD]
    volume = vol_mult * P[i, P_VOL_RATE] * dt * math.exp(sd * z_vol - 0.5 * sd * sd)
    mid = row[MID]
    spread = row[SPREAD]
    aq = abs(q)
    if P[i, P_SQRT] > 0.0:
        temp = P[i, P_SQRT_Y] * P[i, P_SIGMA] * math.sqrt(dt) * math.sqrt(aq / max(volume, 1.0))
    else:
        temp = P[i, P_ETA] * aq / dt
    sgn = 1.0 if q > 0.0 else (-1.0 if q < 0.0 else 0.0)
    price = mid + sgn * (0.5 * spread + temp)
    perm = P[i, P_GAMMA] * q
    ret = P[i, P_MU] * dt + P[i, P_SIGMA] * math.sqrt(dt) * z_mid + perm
    ssd = P[i, P_SPREAD_LOGSD]
    new_spread = P[i, P_SPREAD] * math.exp(ssd * z_spr - 0.5 * ssd * ssd)
    tick = P[i, P_TICK]
    new_spread = max(tick, tick * math.floor(new_spread / tick + 0.5))
    row[MID] = mid + ret
    row[SPREAD] = new_spread
    row[VOLUME] = volume
    row[LAST_RET] = ret
    row[PERM_IMPACT] += perm
    row[TEMP_IMPACT] = temp
    row[IMBALANCE] = math.tanh(z_mid)
    row[SIGMA] = P[i, P_SIGMA]
    return price


class ParametricDynamics(MarketDynamics):
    """Arithmetic Brownian mid + Almgren-Chriss (or square-root) impact.

    ``params`` is one :class:`ParametricParams` for every env, or a sequence of
    ``n_envs`` of them (randomised scenarios).
    """

    name = "parametric"
    reset_fn = staticmethod(_parametric_reset)
    step_fn = staticmethod(_parametric_step)

    def __init__(self, params: ParametricParams | list[ParametricParams] | None = None):
        self.params = params if params is not None else ParametricParams()

    def param_rows(self, n_envs: int, dt: float) -> np.ndarray:
        ps = self.params if isinstance(self.params, (list, tuple)) else [self.params] * n_envs
        if len(ps) != n_envs:
            raise DynamicsError(f"got {len(ps)} ParametricParams for {n_envs} envs")
        P = np.empty((n_envs, N_PARAM), dtype=np.float64)
        for i, p in enumerate(ps):
            P[i] = (p.s0, p.mu, p.sigma, p.spread, p.spread_logsd, p.tick, p.volume_rate,
                    p.volume_logsd, p.eta, p.gamma, p.sqrt_y, 1.0 if p.impact == "sqrt" else 0.0, dt)
        return P

    def args(self, n_envs: int, dt: float) -> tuple:
        positive("dt", dt, error=DynamicsError, what="a positive number of seconds")
        return (self.param_rows(n_envs, dt),)


_DYNAMICS_FACTORIES: dict[str, Callable[[], MarketDynamics]] = {"parametric": ParametricDynamics}


def register_dynamics(name: str, factory: Callable[[], MarketDynamics], *, overwrite: bool = False) -> None:
    """Make ``dynamics=name`` resolve to ``factory()`` in every env.

    The simulation floor knows only ``"parametric"``; the composition root (``import
    lobworld``) registers ``"learned"`` (the shipped world model), so this package never
    imports the layers above it.
    """
    register_factory(_DYNAMICS_FACTORIES, name, factory, kind="dynamics", error=DynamicsError, overwrite=overwrite)


def registered_dynamics() -> list[str]:
    """Names accepted by ``dynamics=`` (besides a :class:`MarketDynamics` instance)."""
    return sorted(_DYNAMICS_FACTORIES)


def make_dynamics(dynamics: str | MarketDynamics | None) -> MarketDynamics:
    """Resolve the ``dynamics=`` env argument.

    ``None`` or ``"parametric"`` -> :class:`ParametricDynamics` with calibrated defaults;
    another registered name (``"learned"``, registered by ``import lobworld``) -> its
    factory's model; a :class:`MarketDynamics` instance is used as is.
    """
    if dynamics is None:
        dynamics = "parametric"
    if isinstance(dynamics, MarketDynamics):
        return dynamics
    if isinstance(dynamics, str) and dynamics in _DYNAMICS_FACTORIES:
        return _DYNAMICS_FACTORIES[dynamics]()
    known = ", ".join(repr(n) for n in registered_dynamics())
    raise DynamicsError(f"unknown dynamics {dynamics!r}: use one of {known} or a MarketDynamics")

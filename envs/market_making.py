"""Market-making environment: quotes, queue position, latency and adverse selection.

Ids: ``LOB-MarketMaking-v0`` (continuous quotes) and
``LOB-MarketMaking-Discrete-v0`` (``discrete=True``). The kernels live in
:mod:`lobworld.envs.market_making_kernels`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numba
import numpy as np
from gymnasium import spaces

from lobworld.envs import market_making_kernels as K
from lobworld.envs.core import BatchedCore, EnvConfigError, LOBEnv, LOBVectorEnv, config_from_kwargs
from lobworld.envs.dynamics import MarketDynamics, ParametricDynamics, ParametricParams, make_dynamics
from lobworld._checks import integer, non_negative, positive
from lobworld._config import Replaceable
from lobworld.envs.columns import pack
from lobworld.envs.episode import EpisodeStats, Stat, column, sharpe
from lobworld.envs.jit import ThreadChoice
from lobworld.envs.latency import LatencyScenario, resolve_latency
from lobworld.envs.arrivals import HawkesParams, PoissonParams

__all__ = [
    "MarketMakingConfig",
    "MarketMakingCore",
    "MarketMakingEnv",
    "MarketMakingVectorEnv",
    "avellaneda_stoikov_config",
    "OBS_NAMES",
    "PARALLEL_MIN_ENVS",
]

#: Batches of at least ``PARALLEL_MIN_ENVS`` envs run the kernels on all Numba threads (``prange``
#: over envs), smaller ones on one thread (waking the other threads costs more than a few
#: hundred envs' steps). ``LOBWORLD_PARALLEL=0`` forces serial, ``=1`` parallel, per process;
#: ``MarketMakingCore(parallel=...)`` per core. Results are bit-identical either way: each env
#: owns its rows and random streams (``tests/test_market_making_speed.py``).
PARALLEL_MIN_ENVS = 512

OBS_NAMES = ("inventory", "time", "spread", "imbalance", "volatility", "queue_bid", "queue_ask",
             "dist_bid", "dist_ask", "latency")


@dataclass(frozen=True)
class MarketMakingConfig(Replaceable):
    """Configuration of the market-making env (units in each field's docstring).

    Defaults are illustrative values of the order of magnitude of the shipped
    GOOG 2012-06-21 sample day (mid, spread and volatility come from the
    calibrated :class:`~lobworld.envs.dynamics.ParametricParams`); the arrival,
    fill and queue numbers are round values, not a calibration.
    """

    horizon: int = 3600
    """Episode length (steps); reaching it truncates the episode."""
    dt: float = 1.0
    """Step length (seconds)."""
    tick: float = 0.01
    """Tick size (USD). Quote prices are whole ticks."""
    inventory_limit: float = 1000.0
    """Inventory limit (shares): ``|inventory| > inventory_limit`` after a step terminates the episode."""
    max_offset: float = 50.0
    """Action bound on the quote offsets (ticks from the mid): offsets lie in ``[-max_offset, max_offset]``."""
    max_size: float = 500.0
    """Action bound on the quote sizes (shares): sizes lie in ``[0, max_size]``, rounded to whole shares; 0 = no quote."""
    discrete_offsets: tuple[float, ...] = (5.0, 15.0, 30.0)
    """Discrete variant: offsets (ticks from the mid) whose pairs form the grid of quoting actions."""
    discrete_size: float = 100.0
    """Discrete variant: quote size of every grid action (shares per side)."""
    arrival: str = "poisson"
    """Market-order arrival model: ``"poisson"`` (``poisson`` field) or ``"hawkes"`` (``hawkes`` field)."""
    poisson: PoissonParams = field(default_factory=lambda: PoissonParams(rate=(0.3, 0.3)))
    """Buy and sell market-order rates (orders per second) when ``arrival == "poisson"``."""
    hawkes: HawkesParams = field(default_factory=lambda: HawkesParams(mu=(0.2, 0.2), alpha=((0.25, 0.1), (0.1, 0.25)), beta=2.0))
    """Bivariate Hawkes parameters (per second) when ``arrival == "hawkes"``; must be stationary."""
    mo_size: float = 100.0
    """Market-order size (shares): exponential with this mean rounded up to whole shares, or exactly this when ``mo_size_fixed``."""
    mo_size_fixed: bool = False
    """Every market order has exactly ``mo_size`` shares (hand-checkable tests)."""
    mo_impact: float = 2e-5
    """Permanent impact of a market order on the mid (USD per share, signed by the order's side): the
    source of adverse selection -- the order that fills our quote moves the mid against us."""
    fill_A: float = 1.0
    """A of the fill intensity ``A exp(-k delta)`` (per second) of a quote ``delta`` USD from the mid with nothing ahead."""
    fill_k: float = 10.0
    """k of the fill intensity (per USD)."""
    fill_model: str = "queue"
    """``"queue"``: event-driven market orders, queue position and latency (the default);
    ``"bernoulli"``: the Avellaneda-Stoikov textbook rule, a quote fills in full with
    probability ``A exp(-k delta) dt`` per step, no queue, no latency."""
    queue_init: float = 300.0
    """Shares resting ahead of a new quote that joins an existing price level (at or behind the touch)."""
    queue_cancel_rate: float = 0.05
    """Rate (per second) at which the queue ahead of our quote cancels: it decays by ``exp(-rate * time)``."""
    queue_join_rate: float = 500.0
    """Shares per second that join a price level while our message is in flight (added to the queue ahead)."""
    latency: Any = "colocated"
    """Latency scenario: a name in :data:`lobworld.envs.latency.LATENCY_SCENARIOS`, a
    :class:`~lobworld.envs.latency.LatencyScenario`, a list of one per env, or ``f(i) -> scenario``."""
    penalty: str = "quadratic"
    """Inventory penalty: ``"quadratic"`` (running ``phi * q^2 * dt``) or ``"exponential"`` (CARA utility of the step PnL)."""
    phi: float = 1e-6
    """Quadratic running penalty (USD per share^2 per second)."""
    gamma: float = 1e-3
    """CARA risk aversion (1/USD) of the ``"exponential"`` penalty."""
    vol_halflife: float = 20.0
    """Half-life (steps) of the EWMA of squared mid changes behind the volatility observation."""
    dynamics: Any = "parametric"
    """Market dynamics: ``"parametric"``, ``"learned"``, a :class:`ParametricParams` or a :class:`MarketDynamics`."""

    def __post_init__(self) -> None:
        def bad(name, why):
            raise EnvConfigError(f"MarketMakingConfig.{name} {why}, got {getattr(self, name)!r}")

        integer("MarketMakingConfig.horizon", self.horizon, error=EnvConfigError, what="a positive int (steps)")
        for name in ("dt", "tick", "inventory_limit", "max_offset", "max_size", "discrete_size", "mo_size",
                     "fill_A", "fill_k", "vol_halflife"):
            positive(f"MarketMakingConfig.{name}", getattr(self, name), error=EnvConfigError)
        for name in ("queue_init", "queue_cancel_rate", "queue_join_rate", "phi", "gamma", "mo_impact"):
            non_negative(f"MarketMakingConfig.{name}", getattr(self, name), error=EnvConfigError)
        if self.arrival not in ("poisson", "hawkes"):
            bad("arrival", "must be 'poisson' or 'hawkes'")
        if self.fill_model not in ("queue", "bernoulli"):
            bad("fill_model", "must be 'queue' or 'bernoulli'")
        if self.penalty not in ("quadratic", "exponential"):
            bad("penalty", "must be 'quadratic' or 'exponential'")
        if self.penalty == "exponential" and self.gamma <= 0:
            bad("gamma", "must be > 0 with penalty='exponential'")
        if not isinstance(self.poisson, PoissonParams):
            bad("poisson", "must be a PoissonParams")
        if not isinstance(self.hawkes, HawkesParams):
            bad("hawkes", "must be a HawkesParams")
        if self.arrival == "hawkes" and self.hawkes.branching_ratio >= 1:
            bad("hawkes", f"is non-stationary (branching ratio {self.hawkes.branching_ratio:.3f} >= 1)")
        if self.arrival == "poisson" and min(self.poisson.rate) <= 0:
            bad("poisson", "needs two positive rates")
        offs = np.asarray(self.discrete_offsets, dtype=float)
        if offs.ndim != 1 or offs.size < 1 or not np.all(np.isfinite(offs)) or np.any(np.abs(offs) > self.max_offset):
            bad("discrete_offsets", f"must be a non-empty tuple of offsets within +-max_offset={self.max_offset}")
        if self.discrete_size > self.max_size:
            bad("discrete_size", f"must be <= max_size={self.max_size}")

    @property
    def mean_rates(self) -> tuple[float, float]:
        """Long-run buy and sell market-order rates (per second) of the arrival model."""
        if self.arrival == "poisson":
            return float(self.poisson.rate[0]), float(self.poisson.rate[1])
        lam = self.hawkes.stationary_intensity
        return float(lam[0]), float(lam[1])


_CFG_FIELDS = {f.name for f in fields(MarketMakingConfig)}


def avellaneda_stoikov_config(**overrides: Any) -> MarketMakingConfig:
    """The Avellaneda-Stoikov (2008) simulation setting as an env config.

    s0 = 100, sigma = 2 (USD per sqrt(unit time)), T = 1, dt = 0.005 (200 steps),
    A = 140, k = 1.5, Brownian mid with a constant spread, textbook Bernoulli fills
    of one unit per side per step, no inventory limit in practice, no running
    penalty (the profit is the terminal wealth). Time is in the paper's units
    (``dt`` is "seconds" for the env).
    """
    params = ParametricParams(s0=100.0, mu=0.0, sigma=2.0, spread=0.0, spread_logsd=0.0, tick=1e-4,
                              volume_rate=0.0, volume_logsd=0.0, eta=0.0, gamma=0.0)
    base = dict(horizon=200, dt=0.005, tick=1e-4, inventory_limit=1e6, max_offset=1e5, max_size=1.0,
                discrete_size=1.0, discrete_offsets=(5000.0,), fill_A=140.0, fill_k=1.5, fill_model="bernoulli",
                latency="none", penalty="quadratic", phi=0.0, dynamics=params)
    base.update(overrides)
    return MarketMakingConfig(**base)


def _steps(e: np.ndarray) -> np.ndarray:
    """Steps of each finished episode row, at least 1 (the denominator of the per-step means)."""
    return np.maximum(e[:, K.E_LEN], 1.0)


def _sharpe(e: np.ndarray) -> np.ndarray:
    """Mean over sd of the per-step wealth change of each finished episode row (0 when sd is 0)."""
    return sharpe(e[:, K.E_SUM_DW], e[:, K.E_SUM_DW2], e[:, K.E_LEN])


@contextlib.contextmanager
def _threads(parallel: bool) -> Iterator[None]:
    """Run the enclosed kernel call on one Numba thread unless ``parallel`` (thread-local setting)."""
    if parallel:
        yield
        return
    prev = numba.get_num_threads()
    if prev == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


class MarketMakingCore(BatchedCore):
    """Batched market-making simulation (the spec is :class:`MarketMakingEnv`'s docstring)."""

    fresh_outputs = True  # every step writes all rows of obs, reward, terminated, truncated

    n_streams = K.N_STREAMS

    def __init__(self, n_envs: int = 1, config: MarketMakingConfig | None = None, discrete: bool = False,
                 parallel: bool | None = None, **overrides: Any):
        config = config_from_kwargs(MarketMakingConfig, config, overrides, "MarketMakingEnv",
                                    ("config", "discrete", "parallel"))
        self.config = config
        self.discrete = bool(discrete)
        c = config
        # spaces are instance attributes (they depend on the config)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (K.N_OBS,), np.float32)
        offs = [float(o) for o in c.discrete_offsets]
        self.discrete_grid = np.array([(b, a) for b in offs for a in offs], dtype=np.float64)
        self.n_quote_actions = len(self.discrete_grid)
        if self.discrete:
            self.single_action_space = spaces.Discrete(self.n_quote_actions + 2)
        else:
            self.single_action_space = spaces.Box(
                low=np.array([-c.max_offset, -c.max_offset, 0.0, 0.0], np.float32),
                high=np.array([c.max_offset, c.max_offset, c.max_size, c.max_size], np.float32),
                dtype=np.float32,
            )
        dyn = c.dynamics
        if isinstance(dyn, ParametricParams) or (isinstance(dyn, (list, tuple)) and dyn and isinstance(dyn[0], ParametricParams)):
            dyn = ParametricDynamics(list(dyn) if isinstance(dyn, (list, tuple)) else dyn)
        self.dynamics: MarketDynamics = make_dynamics(dyn)
        self.latency: list[LatencyScenario] = resolve_latency(c.latency, int(n_envs))
        # all threads or one per call, chosen from measured wall time (lobworld.envs.jit.ThreadChoice)
        self._threads_choice = ThreadChoice(int(n_envs), parallel, min_envs=PARALLEL_MIN_ENVS)
        super().__init__(n_envs)

    @property
    def parallel(self) -> bool:
        """Whether the next step runs on all Numba threads (see :class:`lobworld.envs.jit.ThreadChoice`)."""
        return self._threads_choice.parallel

    # ------------------------------------------------------------------ state
    def _alloc_state(self) -> None:
        n = self.n_envs
        c = self.config
        try:
            self.dyn_args = self.dynamics.args(n, c.dt)
        except ValueError as exc:
            raise ValueError(f"MarketMakingEnv: dynamics {getattr(self.dynamics, 'name', type(self.dynamics).__name__)!r} "
                             f"cannot run at dt={c.dt} s: {exc}") from exc
        self.market = np.zeros((n, self.dynamics.n_state), np.float64)
        self.sv = np.zeros((n, K.N_SV), np.float64)
        self.qs = np.zeros((n, 2, K.N_QS), np.float64)
        self.ep = np.zeros((n, K.N_EP), np.float64)
        self.ep_done = np.zeros((n, K.N_EP + 2), np.float64)
        self.t = np.zeros(n, np.int64)
        self.fills = np.zeros((n, 4), np.float64)
        self.lat_ow = np.array([s.one_way_s for s in self.latency], np.float64)
        self.lat_jit = np.array([s.jitter_s for s in self.latency], np.float64)
        self.lat_obs = np.array([s.scaled_id for s in self.latency], np.float64)
        self._act = np.zeros((n, 4), np.float64)
        self._modes = np.zeros(n, np.int64)
        lam = c.mean_rates
        if c.arrival == "poisson":
            mu, alpha, beta = c.poisson.rate, ((0.0, 0.0), (0.0, 0.0)), 1.0
        else:
            mu, alpha, beta = c.hawkes.mu, c.hawkes.alpha, c.hawkes.beta
        cfg = pack(K.CFG_COLUMNS, {
            "C_DT": c.dt, "C_TICK": c.tick, "C_HORIZON": c.horizon, "C_LIMIT": c.inventory_limit,
            "C_A": c.fill_A, "C_K": c.fill_k, "C_QINIT": c.queue_init, "C_QCANCEL": c.queue_cancel_rate,
            "C_QJOIN": c.queue_join_rate, "C_MOSIZE": c.mo_size, "C_MOFIXED": 1.0 if c.mo_size_fixed else 0.0,
            "C_PENALTY": K.PEN_QUADRATIC if c.penalty == "quadratic" else K.PEN_EXPONENTIAL,
            "C_PHI": c.phi, "C_GAMMA": c.gamma, "C_LAMBAR0": lam[0], "C_LAMBAR1": lam[1],
            "C_FILLMODE": K.FILL_QUEUE if c.fill_model == "queue" else K.FILL_BERNOULLI,
            "C_VOL_ALPHA": 1.0 - 0.5 ** (1.0 / c.vol_halflife), "C_HMU0": mu[0], "C_HMU1": mu[1],
            "C_HA00": alpha[0][0], "C_HA01": alpha[0][1], "C_HA10": alpha[1][0], "C_HA11": alpha[1][1],
            "C_HBETA": beta, "C_QSCALE": max(c.queue_init, 1.0), "C_MAXOFF": c.max_offset,
            "C_IMPACT": c.mo_impact,
            "C_P0": math.exp(-(mu[0] + mu[1]) * c.dt) if c.arrival == "poisson" else 0.0,
            "C_QDECAY_DT": math.exp(-c.queue_cancel_rate * c.dt),
        }, "MarketMakingCore.cfg")
        self._parametric = type(self.dynamics) is ParametricDynamics
        if self._parametric:  # the market-making parametric step (mid, spread and volume per second)
            self._kernels = K.get_kernels(K._parametric_reset, K._mm_parametric_step, "parametric")
        else:
            self._kernels = K.get_kernels(self.dynamics.reset_fn, self.dynamics.step_fn,
                                          type(self.dynamics).__name__.lower())
        self.cfg = cfg

    def _reset_rows(self, mask: np.ndarray) -> None:
        with _threads(self.parallel):
            self._reset_rows_kernel(mask)

    def _reset_rows_kernel(self, mask: np.ndarray) -> None:
        self._kernels[0](mask, self.market, self.sv, self.qs, self.ep, self.t, self.cfg, self.lat_obs,
                         self.rng_state, self.dyn_args, self.obs)
        self.fills[mask] = 0.0

    def _step_rows(self, actions: np.ndarray, autoreset: bool) -> None:
        if self.discrete:
            a = actions
            q = a < self.n_quote_actions
            self._modes[:] = np.where(q, K.M_SET, np.where(a == self.n_quote_actions, K.M_CANCEL, K.M_HOLD))
            np.take(self.discrete_grid, np.where(q, a, 0), axis=0, out=self._act[:, :2])
            self._act[:, 2:] = self.config.discrete_size
            act = self._act
        else:
            act = actions
        par = self._threads_choice.choose()
        t0 = time.perf_counter()
        with _threads(par):
            self._step_kernel(act, autoreset)
        self._threads_choice.record(par, time.perf_counter() - t0)

    def _step_kernel(self, act: np.ndarray, autoreset: bool) -> None:
        self._kernels[1](act, self._modes, self.rng_state, self.market, self.sv, self.qs, self.ep, self.t,
                         self.fills, self.cfg, self.lat_ow, self.lat_jit, self.lat_obs, self.dyn_args,
                         bool(autoreset), self.obs, self.final_obs, self.reward, self.terminated,
                         self.truncated, self.ep_done)

    # ------------------------------------------------------------------- info
    episode_stats = EpisodeStats(
        column("episode_length", K.E_LEN, kind=int),
        column("pnl", K.N_EP),
        Stat("inventory_mean", lambda rows: rows["ep_done"][:, K.E_SUM_INV] / _steps(rows["ep_done"])),
        column("inventory_max_abs", K.E_MAXABS_INV),
        column("inventory_terminal", K.N_EP + 1),
        column("fills_bid", K.E_NFILL_BID, kind=int),
        column("fills_ask", K.E_NFILL_ASK, kind=int),
        column("filled_shares_bid", K.E_VFILL_BID),
        column("filled_shares_ask", K.E_VFILL_ASK),
        column("adverse_selection_cost", K.E_ADVERSE),
        column("inventory_penalty", K.E_SUM_PEN),
        Stat("sharpe_per_step", lambda rows: _sharpe(rows["ep_done"])),
        column("market_orders_buy", K.E_NMO_BUY, kind=int),
        column("market_orders_sell", K.E_NMO_SELL, kind=int),
    )

    # ------------------------------------------------------- introspection
    def quotes(self, i: int = 0) -> dict[str, Any]:
        """Live and in-flight quotes of env ``i`` (prices in USD; diagnostics and tests)."""
        tick = self.config.tick
        out = {}
        for s, name in ((0, "bid"), (1, "ask")):
            q = self.qs[i, s]
            out[name] = {
                "live": bool(q[K.Q_LIVE] > 0), "price": float(q[K.Q_PX] * tick), "size": float(q[K.Q_SZ]),
                "queue_ahead": float(q[K.Q_AHEAD]), "in_flight": bool(q[K.P_ACT] > 0),
                "in_flight_price": float(q[K.P_PX] * tick), "in_flight_size": float(q[K.P_SZ]),
                "in_flight_eta": float(q[K.P_T]),
            }
        return out

    @property
    def inventory(self) -> np.ndarray:
        """Inventory of every env (shares, copy)."""
        return self.sv[:, K.V_INV].copy()

    @property
    def cash(self) -> np.ndarray:
        """Cash of every env (USD, copy)."""
        return self.sv[:, K.V_CASH].copy()

    @property
    def mid(self) -> np.ndarray:
        """Mid price of every env (USD, copy)."""
        return self.market[:, 0].copy()


class MarketMakingEnv(LOBEnv):
    """Market making on a simulated limit order book, with queue position and latency.

    ## Description

    The agent quotes a bid and an ask around a simulated mid price. Market
    orders arrive in continuous time (Poisson or bivariate Hawkes,
    :mod:`lobworld.envs.arrivals`); a market order that reaches the
    agent's price first consumes the shares queued ahead of the agent's quote,
    then fills it. Each decision reaches the venue after the latency of the
    env's :class:`~lobworld.envs.latency.LatencyScenario`; until then the old
    quote keeps trading. The agent earns the spread and bears inventory risk and
    adverse selection.

    Within a step of ``dt`` seconds, in this order:

    1. the agent's action becomes at most one message per side (new price/size,
       or cancel); it goes live ``one_way_us + jitter_us * z`` (>= 0) after the
       step start. A message that would not change the order the venue will
       hold is not sent (a *kept* quote keeps its queue place). A new message
       replaces the side's message still in flight, if any. A message at the
       live quote's price keeps its queue place even if it changes the size
       (a simplification: real venues send size increases to the back);
    2. the mid, spread and imbalance move by one step of the market dynamics
       (:mod:`lobworld.envs.dynamics`, called with ``q = 0``: passive fills
       cause no temporary impact in this env);
    3. market orders arrive at times ``tau`` in ``[0, dt)``; the mid at ``tau``
       is drawn from the Brownian bridge between the step's start and end mids
       (volatility ``sigma`` of the dynamics). A buy (sell) market order of
       ``v`` shares reaches our ask (bid) ``delta`` USD from the mid at ``tau``
       with probability ``min(1, A exp(-k delta) / lambda_bar)``, ``lambda_bar``
       the mean arrival rate of its side, so with Poisson arrivals a quote with
       nothing ahead fills at intensity ``A exp(-k delta)`` (Avellaneda-Stoikov).
       A reaching order first consumes ``min(v, queue_ahead)``, then fills us for
       ``min(rest, our size)`` (whole shares) at our quote price. Each order then
       moves the mid permanently by ``+- mo_impact * v`` (its side's sign): the
       order that fills us moves the mid against us, which is where adverse
       selection comes from (flow without impact is uninformed, and fills are
       then followed by mid moves of mean zero);
    4. queue model: a quote joining an existing level (at or behind the touch)
       starts behind ``queue_init`` shares, one improving the touch behind 0,
       plus ``queue_join_rate * latency`` shares that joined while the message
       was in flight; the queue ahead decays at ``queue_cancel_rate``
       (cancellations) and shrinks with the volume traded at our price. A
       quote at a new price goes to the back of the queue.

    ``fill_model="bernoulli"`` replaces 3-4 by the textbook rule of Avellaneda
    and Stoikov (2008): each live quote fills in full with probability
    ``A exp(-k delta) dt``, ``delta`` its distance from the mid at the step's start,
    when the quote was set (the paper's section 3.3 procedure, which reproduces its
    published tables; see ``docs/envs/market_making.md``), no queue and no latency.
    :func:`avellaneda_stoikov_config` builds that setting.

    ## Action Space

    Continuous (``Box(4,)``, float32): ``[bid_offset, ask_offset, bid_size, ask_size]``.
    Offsets are ticks from the mid in ``[-max_offset, max_offset]`` (bid price
    ``floor(mid/tick - bid_offset)`` ticks, ask ``ceil(mid/tick + ask_offset)``);
    in the queue model a price that would cross the opposite touch is placed one
    tick inside it (post-only). Sizes are shares in ``[0, max_size]``, rounded
    to whole shares; size 0 cancels that side.

    Discrete (``discrete=True``, ``Discrete(m*m + 2)`` with ``m =
    len(discrete_offsets)``): action ``j < m*m`` quotes ``discrete_size``
    shares at offsets ``(discrete_offsets[j // m], discrete_offsets[j % m])``
    (bid, ask); ``m*m`` cancels both quotes; ``m*m + 1`` holds (sends nothing:
    quotes keep their prices and queue places even if the mid has moved).

    Out-of-space actions raise :class:`~lobworld.envs.core.ActionError`.

    ## Observation Space

    ``Box(10,)`` float32:

    | idx | name       | meaning                                                          | unit / scale         |
    |-----|------------|------------------------------------------------------------------|----------------------|
    | 0   | inventory  | inventory / ``inventory_limit``                                  | in [-1, 1] while alive |
    | 1   | time       | steps elapsed / ``horizon``                                      | [0, 1]               |
    | 2   | spread     | market quoted spread                                             | ticks                |
    | 3   | imbalance  | order-flow imbalance of the last step (dynamics)                 | [-1, 1]              |
    | 4   | volatility | sqrt of the EWMA (half-life ``vol_halflife``) of squared mid changes | ticks per step     |
    | 5   | queue_bid  | shares ahead of our live bid / ``max(queue_init, 1)``; -1 if none | ratio               |
    | 6   | queue_ask  | same for the ask                                                 | ratio                |
    | 7   | dist_bid   | mid - our live bid price (0 if none)                             | ticks                |
    | 8   | dist_ask   | our live ask price - mid (0 if none)                             | ticks                |
    | 9   | latency    | ``log10(1 + one_way_us) / 5`` of the env's latency scenario      | [0, ~1.2]            |

    ## Rewards

    ``reward = dW - penalty`` with wealth ``W = cash + inventory * mid`` (USD,
    marked at the step's closing mid). ``penalty="quadratic"``: ``phi *
    inventory^2 * dt``. ``penalty="exponential"``: the reward is the CARA
    certainty-equivalent increment ``(1 - exp(-gamma dW)) / gamma`` (<= dW,
    about ``dW - gamma dW^2 / 2``). Without penalty the rewards sum to the
    episode PnL.

    ## Starting State

    Mid and spread from the dynamics' reset (``s0``); zero inventory and cash;
    no quotes; Hawkes excitation zero (baseline intensity).

    ## Episode End

    Terminated when ``|inventory| > inventory_limit`` after a step; truncated
    after ``horizon`` steps. The info of the last step holds ``pnl`` (USD),
    ``inventory_mean``, ``inventory_max_abs``, ``inventory_terminal``
    (shares), ``fills_bid``/``fills_ask`` (counts), ``filled_shares_bid``/
    ``filled_shares_ask``, ``adverse_selection_cost`` (USD: over fills,
    shares times the mid move against the fill from its time to the close of
    the following step; the episode's last step's fills to its close),
    ``inventory_penalty`` (USD), ``sharpe_per_step`` (mean/sd of the per-step
    wealth changes, not annualised), ``market_orders_buy``/``_sell``,
    ``episode_length``. Other steps' infos are empty.

    ## Arguments

    ``config`` (:class:`MarketMakingConfig`), or any of its fields as keyword
    arguments (``gym.make("LOB-MarketMaking-v0", latency="retail", horizon=600)``);
    ``discrete`` (bool). ``latency`` may differ per env of a batch (a list, or
    :func:`lobworld.envs.latency.random_latency_sampler`).

    Random streams per env: dynamics, arrivals, fills, latency (independent
    ``SeedSequence`` children), so strategies compared on one seed see the same
    market.

    ## Version History

    * v0: initial version.
    """

    core_cls = MarketMakingCore


class MarketMakingVectorEnv(LOBVectorEnv):
    """Native batched form of :class:`MarketMakingEnv` (same-step autoreset)."""

    core_cls = MarketMakingCore

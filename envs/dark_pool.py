"""Dark-pool routing with censored fills: ``LOB-DarkPool-v0``.

The agent works a parent order across one lit venue and ``K`` dark pools. Dark
fills are censored (Ganchev, Kearns, Nevmyvaka & Vaughan, "Censored exploration
and the dark pool problem", UAI 2009 / CACM 2010): a pool with hidden liquidity
``s`` fills ``min(allocated, s)`` and the agent only ever sees the fill.

Kernels are ``@njit`` functions over struct-of-arrays state; the lit venue's mid,
spread and impact come from a :class:`lobworld.envs.dynamics.MarketDynamics`
(``dynamics="parametric"`` by default).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit

from lobworld.envs.core import (BatchedCore, EnvConfigError, LOBEnv, LOBVectorEnv, config_from_kwargs,
                                renamed_kwarg)
from lobworld._checks import integer, non_negative, positive
from lobworld.envs.columns import layout, pack
from lobworld.envs.episode import EpisodeStats, Stat, column, end_episode, ratio
from lobworld.envs.jit import bind
from lobworld.envs.dynamics import MID, PERM_IMPACT, SIGMA, SPREAD, MarketDynamics, make_dynamics
from lobworld.envs.rng import normal, uniform
from lobworld.envs.dark_pool_scenarios import DarkPoolScenario, get_scenario

__all__ = [
    "DarkPoolConfig",
    "DarkPoolCore",
    "DarkPoolEnv",
    "DarkPoolVectorEnv",
    "OBS_REMAINING",
    "OBS_TIME",
    "OBS_SPREAD",
    "OBS_VOL",
    "N_OBS_GLOBAL",
    "N_OBS_VENUE",
    "obs_index",
]

# ---- random streams --------------------------------------------------------
STREAM_MID = 0  #: lit market dynamics (mid, spread, volume)
STREAM_LIQ = 1  #: hidden dark liquidity, one draw set per pool per step
STREAM_VENUE = 2  #: per-episode venue parameters and their within-episode drift
N_STREAMS = 3

# ---- observation layout ---------------------------------------------------
OBS_REMAINING = 0  #: remaining shares / order size
OBS_TIME = 1  #: steps elapsed / horizon
OBS_SPREAD = 2  #: lit spread, bps of mid / 10
OBS_VOL = 3  #: EW realised mid volatility, bps per step / 10
N_OBS_GLOBAL = 4
# per dark pool k, at N_OBS_GLOBAL + N_OBS_VENUE * k + j:
OV_LAST_ALLOC = 0  #: shares sent to pool k last step / order size
OV_LAST_FILL = 1  #: shares filled by pool k last step / order size
OV_FILL_RATE = 2  #: EW fill / allocation over steps with an allocation (0 before any)
OV_MEAN_FILL = 3  #: EW fill per step (shares) / (order size / horizon)
N_OBS_VENUE = 4


def obs_index(k: int, j: int) -> int:
    """Index of per-pool feature ``j`` (``OV_*``) of dark pool ``k`` (0-based) in the observation."""
    return N_OBS_GLOBAL + N_OBS_VENUE * k + j


# ---- per-pool venue state columns -----------------------------------------
V_P0, V_SCALE, V_SHAPE, V_PI, V_TOX, V_PRESS = range(6)
N_VENUE = 6

# ---- scenario array -------------------------------------------------------
(SC_FAMILY, SC_P0_LO, SC_P0_HI, SC_SC_LO, SC_SC_HI, SC_SH_LO, SC_SH_HI, SC_PI_LO, SC_PI_HI,
 SC_TOXP, SC_TOX_LO, SC_TOX_HI, SC_DRIFT, SC_ADV, SC_PRATE, SC_CAP, SC_FIXED) = range(17)
N_SC = 17

# ---- config array ---------------------------------------------------------
C_Q, C_T, C_SIDE, C_PEN, C_EWA, C_DT = range(6)
_CFG_COLUMNS = layout(globals(), "C_", 6)
N_C = 6

# ---- episode accumulators -------------------------------------------------
(EP_RETURN, EP_IMPROVE, EP_ADVERSE, EP_PERM, EP_PENALTY, EP_DARK, EP_LIT, EP_FORCED,
 EP_DARK_ALLOC, EP_IS, EP_HALFSPREAD, EP_MARKET, EP_ENDO, EP_LEN) = range(14)
N_EP = 14
_EP_NAMES = {
    EP_RETURN: "return_bps", EP_IMPROVE: "improvement_bps", EP_ADVERSE: "adverse_selection_bps",
    EP_PERM: "permanent_impact_bps", EP_PENALTY: "penalty_bps", EP_IS: "shortfall_bps",
    EP_HALFSPREAD: "half_spread_bps", EP_MARKET: "market_move_bps",
}

def _fill_rate(e: np.ndarray) -> np.ndarray:
    """Dark shares filled over dark shares sent, per episode row (NaN where nothing was sent)."""
    return ratio(e[:, EP_DARK], e[:, EP_DARK_ALLOC], fill=np.nan)


_MAX_LIQ = 1e12  # hidden draws are clipped here before the integer cast (shares)


@dataclass(frozen=True)
class DarkPoolConfig:
    """Settings of ``LOB-DarkPool-v0`` (units per field)."""

    quantity: int = 2000
    """Parent order Q (shares, integer >= 1), named as in the execution envs; ``order_size`` is a
    deprecated alias (env arguments and this attribute)."""
    horizon: int = 30
    """Number of decision steps T; what is left after step T is executed lit (forced)."""
    dt: float = 10.0
    """Length of a step (seconds), passed to the market dynamics."""
    side: str = "sell"
    """``"sell"`` or ``"buy"``: the parent order's direction."""
    n_dark: int = 4
    """Number of dark pools K (>= 1); the action has K + 2 coordinates."""
    scenario: str | DarkPoolScenario = "stationary"
    """Venue scenario: a name in :data:`lobworld.envs.dark_pool_scenarios.SCENARIOS` or a scenario object."""
    unfilled_penalty_bps: float = 5.0
    """Extra penalty per share left at the horizon (bps of arrival mid), on top of the forced lit execution's cost."""
    ew_halflife: float = 5.0
    """Half-life (steps) of the exponentially weighted fill and volatility statistics in the observation."""

    def __post_init__(self) -> None:
        for f in ("quantity", "horizon", "n_dark"):
            integer(f"DarkPoolConfig.{f}", getattr(self, f), error=EnvConfigError, what="an integer >= 1")
        if self.quantity > 10**9:
            raise EnvConfigError(f"DarkPoolConfig.quantity must be <= 1e9 shares, got {self.quantity}")
        for f in ("dt", "ew_halflife"):
            positive(f"DarkPoolConfig.{f}", getattr(self, f), error=EnvConfigError)
        non_negative("DarkPoolConfig.unfilled_penalty_bps", self.unfilled_penalty_bps, error=EnvConfigError)
        if self.side not in ("sell", "buy"):
            raise EnvConfigError(f"DarkPoolConfig.side must be 'sell' or 'buy', got {self.side!r}")
        scen = get_scenario(self.scenario)  # raises on unknown names
        if scen.venues is not None and len(scen.venues) != self.n_dark:
            raise EnvConfigError(
                f"DarkPoolConfig: scenario {scen.name!r} fixes {len(scen.venues)} pools but n_dark={self.n_dark}"
            )

    @property
    def order_size(self) -> int:
        """Deprecated alias of :attr:`quantity` (warns)."""
        warnings.warn("DarkPoolConfig.order_size is deprecated, use DarkPoolConfig.quantity", DeprecationWarning,
                      stacklevel=2)
        return self.quantity

    @property
    def side_sign(self) -> float:
        """+1 for a buy order, -1 for a sell order."""
        return 1.0 if self.side == "buy" else -1.0

    @property
    def scenario_obj(self) -> DarkPoolScenario:
        return get_scenario(self.scenario)


def _scenario_array(s: DarkPoolScenario, n_dark: int) -> tuple[np.ndarray, np.ndarray]:
    sc = np.zeros(N_SC, np.float64)
    sc[SC_FAMILY] = 0.0 if s.family == "pareto" else 1.0
    sc[SC_P0_LO], sc[SC_P0_HI] = s.p_zero
    sc[SC_SC_LO], sc[SC_SC_HI] = s.scale
    sc[SC_SH_LO], sc[SC_SH_HI] = s.shape
    sc[SC_PI_LO], sc[SC_PI_HI] = s.price_improvement
    sc[SC_TOXP] = s.toxic_prob
    sc[SC_TOX_LO], sc[SC_TOX_HI] = s.toxicity
    sc[SC_DRIFT] = s.drift_sd
    sc[SC_ADV] = s.adversarial
    sc[SC_PRATE] = s.pressure_rate
    sc[SC_CAP] = min(s.liquidity_cap, _MAX_LIQ)
    fixed = np.zeros((n_dark, N_VENUE), np.float64)
    if s.venues is not None:
        sc[SC_FIXED] = 1.0
        for k, v in enumerate(s.venues):
            fixed[k] = (v.p_zero, v.scale, v.shape, v.price_improvement, v.toxicity, 0.0)
    return sc, fixed


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------
@njit(cache=True)
def _draw_venues(i, venue, sc, fixed, st):
    K = venue.shape[1]
    for k in range(K):
        if sc[SC_FIXED] > 0.0:
            for c in range(N_VENUE):
                venue[i, k, c] = fixed[k, c]
        else:
            u0 = uniform(st)
            u1 = uniform(st)
            u2 = uniform(st)
            u3 = uniform(st)
            u4 = uniform(st)
            u5 = uniform(st)
            venue[i, k, V_P0] = sc[SC_P0_LO] + (sc[SC_P0_HI] - sc[SC_P0_LO]) * u0
            lo = math.log(sc[SC_SC_LO])
            hi = math.log(sc[SC_SC_HI])
            venue[i, k, V_SCALE] = math.exp(lo + (hi - lo) * u1)
            venue[i, k, V_SHAPE] = sc[SC_SH_LO] + (sc[SC_SH_HI] - sc[SC_SH_LO]) * u2
            venue[i, k, V_PI] = sc[SC_PI_LO] + (sc[SC_PI_HI] - sc[SC_PI_LO]) * u3
            if u4 < sc[SC_TOXP]:
                venue[i, k, V_TOX] = sc[SC_TOX_LO] + (sc[SC_TOX_HI] - sc[SC_TOX_LO]) * u5
            else:
                venue[i, k, V_TOX] = 0.0
        venue[i, k, V_PRESS] = 0.0


@njit(cache=True)
def _write_obs(i, obs, rem, t, cfg, market, ew_var, last_alloc, last_fill, ew_rate, ew_fill):
    Q = cfg[C_Q]
    obs[i, OBS_REMAINING] = rem[i] / Q
    obs[i, OBS_TIME] = t[i] / cfg[C_T]
    mid = market[i, MID]
    obs[i, OBS_SPREAD] = (market[i, SPREAD] / mid * 1e4 / 10.0) if mid > 0.0 else 0.0
    obs[i, OBS_VOL] = math.sqrt(ew_var[i]) / 10.0
    slice_ = Q / cfg[C_T]
    K = ew_rate.shape[1]
    for k in range(K):
        b = N_OBS_GLOBAL + N_OBS_VENUE * k
        obs[i, b + OV_LAST_ALLOC] = last_alloc[i, k + 1] / Q
        obs[i, b + OV_LAST_FILL] = last_fill[i, k + 1] / Q
        obs[i, b + OV_FILL_RATE] = ew_rate[i, k]
        obs[i, b + OV_MEAN_FILL] = ew_fill[i, k] / slice_


@njit(inline="always")  # inlined into the kernels bound per dynamics below
def _reset_row(i, rng, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
               last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs):
    rem[i] = int(cfg[C_Q])
    t[i] = 0
    _draw_venues(i, venue, sc, fixed, rng[i, STREAM_VENUE])
    reset_fn(i, market[i], dyn_args, rng[i, STREAM_MID])
    mid = market[i, MID]
    s0[i] = mid
    sig = market[i, SIGMA] * math.sqrt(cfg[C_DT]) / mid * 1e4 if mid > 0.0 else 0.0
    ew_var[i] = sig * sig
    endo[i] = 0.0
    for k in range(last_alloc.shape[1]):
        last_alloc[i, k] = 0
        last_fill[i, k] = 0
    for k in range(ew_rate.shape[1]):
        ew_rate[i, k] = 0.0
        ew_fill[i, k] = 0.0
    for c in range(ep.shape[1]):
        ep[i, c] = 0.0
    _write_obs(i, obs, rem, t, cfg, market, ew_var, last_alloc, last_fill, ew_rate, ew_fill)


@njit(inline="always")  # inlined into the kernels bound per dynamics below
def _reset_kernel(mask, rng, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
                  last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs):
    for i in range(mask.shape[0]):
        if mask[i]:
            _reset_row(i, rng, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
                       last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs)


@njit(cache=True)
def _allocate(a, R, out):
    """Integer allocation of this step (see the env docstring, Action Space).

    ``V = floor(a[K+1] * R + 1/2)`` shares (clipped to [0, R]) are split over the
    K+1 venues in proportion to ``w = a[:K+1] / sum(a[:K+1])`` by the largest-remainder
    method (ties to the lower venue index); a venue with zero weight gets nothing.
    """
    n = out.shape[0]
    S = 0.0
    for k in range(n):
        S += a[k]
        out[k] = 0
    if S <= 0.0:
        return 0
    V = int(math.floor(a[n] * R + 0.5))
    if V > R:
        V = R
    if V <= 0:
        return 0
    tot = 0
    for k in range(n):
        x = V * a[k] / S
        fl = int(math.floor(x))
        out[k] = fl
        tot += fl
    deficit = V - tot
    while deficit > 0:
        best = -1
        best_r = -1.0
        for k in range(n):
            if a[k] > 0.0 and out[k] <= V * a[k] / S:  # not yet bumped past its share
                r = V * a[k] / S - out[k]
                if r > best_r:
                    best_r = r
                    best = k
        if best < 0:
            break
        out[best] += 1
        deficit -= 1
    return V


@njit(inline="always")  # inlined into the kernels bound per dynamics below
def _step_kernel(actions, autoreset, rng, step_fn, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market,
                 venue, last_alloc, last_fill, ew_rate, ew_fill, ew_var, endo, hidden, ep, ep_done,
                 obs, final_obs, reward, term, trunc):
    n = actions.shape[0]
    K = venue.shape[1]
    Q = cfg[C_Q]
    T = int(cfg[C_T])
    side = cfg[C_SIDE]
    ewa = cfg[C_EWA]
    pareto = sc[SC_FAMILY] == 0.0
    cap = sc[SC_CAP]
    adv = sc[SC_ADV]
    prate = sc[SC_PRATE]
    drift = sc[SC_DRIFT]
    for i in range(n):
        R = rem[i]
        alloc = last_alloc[i]
        fill = last_fill[i]
        _allocate(actions[i], R, alloc)
        row = market[i]
        mid = row[MID]
        hs = 0.5 * row[SPREAD]
        S0 = s0[i]
        # -- hidden liquidity: 2 draws per pool per step whatever the action
        st = rng[i, STREAM_LIQ]
        dark_filled = 0
        dark_alloc = 0
        improve = 0.0
        jump = 0.0
        is_usd = 0.0
        for k in range(K):
            u0 = uniform(st)
            if pareto:
                x = uniform(st) ** (-1.0 / venue[i, k, V_SHAPE])
            else:
                x = math.exp(venue[i, k, V_SHAPE] * normal(st))
            scale = venue[i, k, V_SCALE] * math.exp(-adv * venue[i, k, V_PRESS])
            s = 0.0
            if u0 >= venue[i, k, V_P0]:
                s = math.floor(min(scale * x, cap, _MAX_LIQ))
            h = int(s)
            hidden[i, k] = h
            a_k = alloc[k + 1]
            f = a_k if a_k < h else h
            fill[k + 1] = f
            dark_filled += f
            dark_alloc += a_k
            pi = venue[i, k, V_PI]
            improve += f * pi * hs
            jump += venue[i, k, V_TOX] * 1e-4 * mid * f / 100.0
            is_usd += f * (side * (mid - S0) + (1.0 - pi) * hs)
        # -- lit venue, with the forced execution of the remainder at the horizon
        R1 = R - alloc[0] - dark_filled
        forced = R1 if t[i] + 1 >= T else 0
        q_lit = alloc[0] + forced
        fill[0] = q_lit
        perm0 = row[PERM_IMPACT]
        p_lit = step_fn(i, row, dyn_args, rng[i, STREAM_MID], side * q_lit, 1.0)
        touch = mid + side * hs
        improve += q_lit * side * (touch - p_lit)
        is_usd += q_lit * side * (p_lit - S0)
        perm_cost = side * (row[PERM_IMPACT] - perm0)
        row[MID] += side * jump  # toxic fills move the mid against the agent
        R2 = R1 - forced
        adverse = jump * R2
        perm_usd = perm_cost * R2
        penalty = cfg[C_PEN] * 1e-4 * S0 * forced
        notional = Q * S0
        r = 1e4 * (improve - adverse - perm_usd - penalty) / notional
        reward[i] = r
        # market-move attribution: executed shares times the exogenous part of the mid move
        exec_now = dark_filled + q_lit
        ep[i, EP_MARKET] += 1e4 * exec_now * (side * (mid - S0) - endo[i]) / notional
        endo[i] += jump + perm_cost
        ep[i, EP_RETURN] += r
        ep[i, EP_IMPROVE] += 1e4 * improve / notional
        ep[i, EP_ADVERSE] += 1e4 * adverse / notional
        ep[i, EP_PERM] += 1e4 * perm_usd / notional
        ep[i, EP_PENALTY] += 1e4 * penalty / notional
        ep[i, EP_DARK] += dark_filled
        ep[i, EP_LIT] += q_lit
        ep[i, EP_FORCED] += forced
        ep[i, EP_DARK_ALLOC] += dark_alloc
        ep[i, EP_IS] += 1e4 * is_usd / notional
        ep[i, EP_HALFSPREAD] += 1e4 * exec_now * hs / notional
        # -- observed statistics (fills and allocations only: never the hidden liquidity)
        ret_bps = (row[MID] - mid) / mid * 1e4
        ew_var[i] = (1.0 - ewa) * ew_var[i] + ewa * ret_bps * ret_bps
        for k in range(K):
            a_k = alloc[k + 1]
            f = fill[k + 1]
            if a_k > 0:
                ew_rate[i, k] = (1.0 - ewa) * ew_rate[i, k] + ewa * (f / a_k)
            ew_fill[i, k] = (1.0 - ewa) * ew_fill[i, k] + ewa * f
        # -- venue evolution (pressure: deterministic in the allocations; drift: venue stream)
        for k in range(K):
            share = alloc[k + 1] / dark_alloc if dark_alloc > 0 else 0.0
            venue[i, k, V_PRESS] = (1.0 - prate) * venue[i, k, V_PRESS] + prate * share
        if drift > 0.0:
            sv = rng[i, STREAM_VENUE]
            for k in range(K):
                z1 = normal(sv)
                z2 = normal(sv)
                venue[i, k, V_SCALE] *= math.exp(drift * z1)
                p = min(max(venue[i, k, V_P0], 1e-6), 1.0 - 1e-6)
                lg = math.log(p / (1.0 - p)) + drift * z2
                venue[i, k, V_P0] = min(1.0 / (1.0 + math.exp(-lg)), 0.999)
        t[i] += 1
        rem[i] = R2
        ep[i, EP_LEN] = t[i]
        _write_obs(i, obs, rem, t, cfg, market, ew_var, last_alloc, last_fill, ew_rate, ew_fill)
        done = R2 == 0
        term[i] = done
        trunc[i] = False
        if done:
            end_episode(i, obs, final_obs, ep, ep_done)
            if autoreset:
                _reset_row(i, rng, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
                           last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs)


# ---------------------------------------------------------------------------
# core and faces
# ---------------------------------------------------------------------------

# Kernels bound per dynamics by :func:`lobworld.envs.jit.bind` (one disk-cached copy each):
# ``step_fn``/``reset_fn`` are the dynamics' functions, placeholders here.
step_fn = reset_fn = None


def _reset_bound(mask, rng, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
                 last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs):
    _reset_kernel(mask, rng, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market, venue, last_alloc,
                  last_fill, ew_rate, ew_fill, ew_var, endo, ep, obs)


def _step_bound(actions, autoreset, rng, dyn_args, cfg, sc, fixed, rem, t, s0, market,
                venue, last_alloc, last_fill, ew_rate, ew_fill, ew_var, endo, hidden, ep, ep_done,
                obs, final_obs, reward, term, trunc):
    _step_kernel(actions, autoreset, rng, step_fn, reset_fn, dyn_args, cfg, sc, fixed, rem, t, s0, market,
                 venue, last_alloc, last_fill, ew_rate, ew_fill, ew_var, endo, hidden, ep, ep_done,
                 obs, final_obs, reward, term, trunc)


def get_kernels(dynamics: MarketDynamics) -> tuple:
    """The dark pool's compiled ``(reset_kernel, step_kernel)`` for a dynamics (serial, disk-cached)."""
    return bind((_reset_bound, _step_bound), (), {"step_fn": dynamics.step_fn, "reset_fn": dynamics.reset_fn},
                label=f"darkpool_{type(dynamics).__name__.lower()}", parallel=False)


class DarkPoolCore(BatchedCore):
    """Numba-batched core of ``LOB-DarkPool-v0`` (spec: :class:`DarkPoolEnv`).

    ``DarkPoolCore(n_envs, config=None, dynamics="parametric", **overrides)``:
    ``overrides`` are :class:`DarkPoolConfig` fields (``n_dark=6``, ``scenario="drifting"``).

    Public read-only arrays after each step (copy before keeping them):
    ``last_alloc`` / ``last_fill`` ``(n_envs, K+1)`` int64 shares per venue (column 0
    lit, including a forced execution), ``remaining`` ``(n_envs,)`` shares.
    ``venue_params()`` returns the current pool parameters (for the oracle baseline
    only: a learning agent must not read them).
    """

    fresh_outputs = True  # every step writes all rows of obs, reward, terminated, truncated

    n_streams = N_STREAMS

    def __init__(self, n_envs: int = 1, config: DarkPoolConfig | None = None,
                 dynamics: str | MarketDynamics | None = "parametric", **overrides: Any):
        overrides = renamed_kwarg(overrides, "order_size", "quantity", "DarkPoolEnv")
        config = config_from_kwargs(DarkPoolConfig, config, overrides, "DarkPoolEnv", ("config", "dynamics"))
        self.config = config
        self.scenario = config.scenario_obj
        self.dynamics = make_dynamics(dynamics)
        K = config.n_dark
        self.n_dark = K
        obs_dim = N_OBS_GLOBAL + N_OBS_VENUE * K
        low = np.zeros(obs_dim, np.float32)
        high = np.full(obs_dim, np.inf, np.float32)
        high[OBS_REMAINING] = 1.0
        high[OBS_TIME] = 1.0
        for k in range(K):
            for j in (OV_LAST_ALLOC, OV_LAST_FILL, OV_FILL_RATE):
                high[obs_index(k, j)] = 1.0
            high[obs_index(k, OV_MEAN_FILL)] = float(config.horizon)  # a fill never exceeds Q
        self.single_observation_space = spaces.Box(low, high, (obs_dim,), np.float32)
        self.single_action_space = spaces.Box(0.0, 1.0, (K + 2,), np.float32)
        super().__init__(n_envs)

    def _alloc_state(self) -> None:
        n, K, c = self.n_envs, self.n_dark, self.config
        self.cfg = pack(_CFG_COLUMNS, {"C_Q": c.quantity, "C_T": c.horizon, "C_SIDE": c.side_sign,
                                       "C_PEN": c.unfilled_penalty_bps, "C_EWA": 1.0 - 0.5 ** (1.0 / c.ew_halflife),
                                       "C_DT": c.dt}, "DarkPoolCore.cfg")
        self.sc, self.fixed = _scenario_array(self.scenario, K)
        self.dyn_args = self.dynamics.args(n, c.dt)
        self._kernels = get_kernels(self.dynamics)
        self.market = np.zeros((n, self.dynamics.n_state), np.float64)
        self.remaining = np.zeros(n, np.int64)
        self.t = np.zeros(n, np.int64)
        self.s0 = np.zeros(n, np.float64)
        self.venue = np.zeros((n, K, N_VENUE), np.float64)
        self.last_alloc = np.zeros((n, K + 1), np.int64)
        self.last_fill = np.zeros((n, K + 1), np.int64)
        self.ew_rate = np.zeros((n, K), np.float64)
        self.ew_fill = np.zeros((n, K), np.float64)
        self.ew_var = np.zeros(n, np.float64)
        self.endo = np.zeros(n, np.float64)
        self._hidden = np.zeros((n, K), np.int64)  # last hidden draws: tests and diagnostics only
        self.ep = np.zeros((n, N_EP), np.float64)
        self.ep_done = np.zeros((n, N_EP), np.float64)

    def _reset_rows(self, mask: np.ndarray) -> None:
        self._kernels[0](mask, self.rng_state, self.dyn_args, self.cfg, self.sc, self.fixed,
                      self.remaining, self.t, self.s0, self.market, self.venue, self.last_alloc, self.last_fill,
                      self.ew_rate, self.ew_fill, self.ew_var, self.endo, self.ep, self.obs)

    def _step_rows(self, actions: np.ndarray, autoreset: bool) -> None:
        self._kernels[1](actions, autoreset, self.rng_state,
                     self.dyn_args, self.cfg, self.sc, self.fixed, self.remaining, self.t, self.s0, self.market,
                     self.venue, self.last_alloc, self.last_fill, self.ew_rate, self.ew_fill, self.ew_var,
                     self.endo, self._hidden, self.ep, self.ep_done, self.obs, self.final_obs, self.reward,
                     self.terminated, self.truncated)

    episode_stats = EpisodeStats(
        *(column(name, c) for c, name in _EP_NAMES.items()),
        Stat("cost_bps", lambda rows: -rows["ep_done"][:, EP_RETURN]),
        Stat("dark_fraction", lambda rows: rows["ep_done"][:, EP_DARK] / float(rows.core.config.quantity)),
        Stat("forced_fraction", lambda rows: rows["ep_done"][:, EP_FORCED] / float(rows.core.config.quantity)),
        Stat("dark_fill_rate", lambda rows: _fill_rate(rows["ep_done"])),
        column("dark_shares", EP_DARK),
        column("dark_allocated", EP_DARK_ALLOC),
        column("lit_shares", EP_LIT),
        column("episode_length", EP_LEN, kind=int),
    )

    def venue_params(self) -> dict[str, np.ndarray]:
        """Current pool parameters, ``(n_envs, K)`` arrays (oracle use only).

        ``scale`` is the effective scale after adversarial pressure.
        """
        v = self.venue
        return {
            "p_zero": v[:, :, V_P0].copy(),
            "scale": (v[:, :, V_SCALE] * np.exp(-self.scenario.adversarial * v[:, :, V_PRESS])).copy(),
            "shape": v[:, :, V_SHAPE].copy(),
            "price_improvement": v[:, :, V_PI].copy(),
            "toxicity": v[:, :, V_TOX].copy(),
            "family": self.scenario.family,
            "cap": float(min(self.scenario.liquidity_cap, _MAX_LIQ)),
        }


class DarkPoolEnv(LOBEnv):
    """Route a parent order over one lit venue and K dark pools with censored fills.

    ## Description

    The agent sells (or buys) ``Q = quantity`` shares within ``T = horizon`` steps of
    ``dt`` seconds. Each step it sends part of the remaining quantity ``R`` to one lit
    venue and ``K = n_dark`` dark pools. The lit venue fills with certainty at the touch
    plus the temporary impact of the market dynamics (``dynamics="parametric"``:
    Almgren-Chriss; or a learned world model). Dark pool ``k`` holds hidden liquidity
    ``s_k`` (integer shares, drawn afresh each step, see
    :mod:`lobworld.envs.dark_pool_scenarios`: zero with probability ``p_zero``, heavy-tailed
    otherwise) and fills ``min(n_k, s_k)`` of the ``n_k`` shares sent: the fill is
    *censored*, the agent never observes ``s_k``. Dark fills execute at
    ``mid -/+ (1 - pi_k) * spread / 2`` (``pi_k``: the pool's price improvement as a
    fraction of the half-spread; 1 = mid). A toxic pool (``tox_k`` > 0) moves the mid
    against the agent by ``tox_k`` bps per 100 shares it fills, right after the fill
    (adverse selection, applied through the mid). Unfilled dark shares stay in ``R``.

    ## Action Space

    ``Box(0, 1, (K + 2,), float32)``: ``a[0]`` lit weight, ``a[1..K]`` dark-pool weights,
    ``a[K+1]`` participation ``u``. The env sends ``V = floor(u * R + 1/2)`` shares this
    step, split with weights ``w = a[:K+1] / sum(a[:K+1])`` into integers by the
    largest-remainder method (ties: lower venue index; a zero weight gets nothing). All
    weights zero, or ``V = 0``: nothing is sent. ``u = 1/(T - t)`` is TWAP on the
    remaining quantity; ``u = 1`` sends everything. Out-of-space, NaN or wrongly shaped
    actions raise :class:`lobworld.envs.core.ActionError`.

    ## Observation Space

    ``Box((4 + 4K,), float32)``, all entries >= 0:

    | index            | meaning                                                     | unit / scale           |
    |------------------|-------------------------------------------------------------|------------------------|
    | 0                | remaining shares / Q                                        | [0, 1]                 |
    | 1                | steps elapsed / T                                           | [0, 1]                 |
    | 2                | lit quoted spread / mid                                     | bps / 10               |
    | 3                | EW realised mid volatility (half-life ``ew_halflife``)      | bps per step / 10      |
    | 4+4k             | shares sent to pool k last step / Q                         | [0, 1]                 |
    | 5+4k             | shares filled by pool k last step / Q                       | [0, 1]                 |
    | 6+4k             | EW of fill/allocation of pool k over steps it got shares    | [0, 1], 0 before any   |
    | 7+4k             | EW of pool k's fill per step                                | shares / (Q / T), <= T |

    Every entry is a function of the agent's own allocations, the fills and the lit
    market: none depends on hidden liquidity beyond what was filled.

    ## Rewards

    In bps of arrival notional ``Q * S0`` (``S0``: mid at reset), with ``side = +1`` buy,
    ``-1`` sell, ``hs`` the half-spread and ``mid`` the mid before the step::

        r_t = 1e4 / (Q S0) * [ sum_k f_k pi_k hs                    # dark price improvement vs touch
                               - q_lit * temp_impact                # lit: touch + impact (incl. forced)
                               - J_t * R_{t+1}                      # adverse selection
                               - side * dPerm_t * R_{t+1}           # lit permanent impact
                               - penalty_bps * 1e-4 * S0 * forced ]

    ``J_t = sum_k tox_k 1e-4 mid f_k / 100`` is the toxic mid move (USD) and ``R_{t+1}``
    the shares still to execute after the step: every later share pays the move.
    ``dPerm_t`` is the step's change of the dynamics' ``PERM_IMPACT``, the agent's own
    displacement of the mid; on the learned market's square-root channel it includes the
    decay of earlier transient impact, so it can be in the agent's favour (negative cost). The
    episode return is minus the implementation shortfall measured from the touch, with
    the exogenous mid move removed: ``shortfall_bps = cost_bps - penalty_bps +
    half_spread_bps + market_move_bps`` holds exactly (all reported at episode end).

    ## Starting State

    ``R = Q``; the market dynamics reset (``S0`` its mid); each pool's parameters are
    drawn from the scenario (``venue`` stream); fill statistics are zero; the volatility
    statistic starts at the dynamics' sigma over one step.

    ## Episode End

    The episode **terminates** when the order is complete: early when ``R`` reaches 0,
    or at step ``T``, where whatever is left is executed lit in that step (forced, paying
    impact plus ``unfilled_penalty_bps``). The horizon is part of the task (time is
    observed and the forced execution settles the order), so ``truncated`` is always
    False. The final info holds ``cost_bps`` (= -return), ``shortfall_bps``,
    ``improvement_bps``, ``adverse_selection_bps``, ``permanent_impact_bps``,
    ``penalty_bps``, ``half_spread_bps``, ``market_move_bps``, ``dark_fraction``,
    ``forced_fraction``, ``dark_fill_rate``, share counts and ``episode_length``.

    ## Arguments

    ``gym.make("LOB-DarkPool-v0", config=DarkPoolConfig(...), dynamics="parametric")`` or
    field overrides (``n_dark=6, scenario="drifting"``); see :class:`DarkPoolConfig`.
    Random streams per env: lit market, hidden liquidity, venue parameters (independent,
    so the exogenous world is the same whatever the agent does, except the adversarial
    pressure and the toxic moves, which respond to the agent by design).

    ## Version History

    * v0: initial version.
    """

    core_cls = DarkPoolCore


class DarkPoolVectorEnv(LOBVectorEnv):
    """Native Gymnasium vector face of :class:`DarkPoolEnv` (same-step autoreset)."""

    core_cls = DarkPoolCore

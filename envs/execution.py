"""Optimal-execution environments: implementation shortfall, VWAP and TWAP.

One batched core, :class:`ExecutionCore`, serves three registered ids:

* ``LOB-Execution-v0`` -- minimise implementation shortfall against the arrival mid
  (optionally mean-variance, Almgren-Chriss style);
* ``LOB-VWAP-v0`` -- track the market VWAP over the window under an intraday U-shaped
  volume profile fitted to the shipped GOOG day;
* ``LOB-TWAP-v0`` -- beat the time-weighted average mid (TWAP) over the window.

The market is a :class:`lobworld.envs.dynamics.MarketDynamics` (``"parametric"`` by
default). The per-env state is struct-of-arrays: ``market`` ``(n_envs, dynamics.n_state)``,
``es`` ``(n_envs, N_ES)`` (columns ``ES_*``), the step counter ``t`` ``(n_envs,)`` and
episode statistics ``ep`` ``(n_envs, N_EP)`` (columns ``EP_*``). Numba kernels step and
reset every env in place and allocate nothing per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit, prange

from lobworld.envs.core import BatchedCore, EnvConfigError, LOBEnv, LOBVectorEnv, config_from_kwargs
from lobworld.envs.dynamics import (
    LAST_RET,
    MID,
    SIGMA,
    SPREAD,
    TEMP_IMPACT,
    VOLUME,
    MarketDynamics,
    make_dynamics,
)
from lobworld._checks import finite, in_range, integer, non_negative, positive
from lobworld._config import Replaceable
from lobworld.envs.columns import layout, pack
from lobworld.envs.episode import EpisodeStats, column, keep_final_obs
from lobworld.envs.jit import ThreadChoice, bind, use_parallel
from lobworld.envs.rng import uniform
from lobworld.world_models.data.session import SESSION_MINUTES, SESSION_OPEN_S

__all__ = [
    "ExecutionConfig",
    "ExecutionCore",
    "ExecutionEnv",
    "ExecutionVectorEnv",
    "GOOG_ADV",
    "GOOG_U_PROFILE",
    "SESSION_MINUTES",
    "fit_volume_profile",
    "volume_profile",
    "OBS_NAMES",
]

#: GOOG 2012-06-21 (shipped LOBSTER day) shares executed, visible + hidden.
GOOG_ADV = 706_125.0
#: U-shaped intraday volume profile m(x) = a x^2 + b x + c, x = time of day in [0, 1]
#: of the session, normalised to mean 1 over the session. Least-squares fit to the
#: per-minute executed volume (visible + hidden) of GOOG 2012-06-21 (see
#: :func:`fit_volume_profile`); min 0.33 at 12:16, 1.70 at the open, 2.83 at the close.
GOOG_U_PROFILE = (7.57608398, -6.44782561, 1.69855563)

# ---- observation columns ----------------------------------------------------
O_REMAINING, O_TIME, O_RET, O_SPREAD, O_VOL, O_VOLUME, O_IMPACT, O_TOD = range(8)
N_OBS = 8
OBS_NAMES = (
    "remaining_frac", "time_frac", "mid_ret_bps/100", "spread_bps/10",
    "realised_vol_bps/10", "volume_rel", "temp_impact_bps/100", "time_of_day",
)

# ---- per-env scalar state columns (es) -------------------------------------
(ES_ARRIVAL, ES_REMAINING, ES_EXECUTED, ES_PAID, ES_TOD0, ES_VAR_EWM, ES_VOL_EWM, ES_VOL_REF,
 ES_ACC_NPM, ES_ACC_VPM, ES_ACC_V, ES_ACC_PM, ES_RETURN, ES_PENALTY) = range(14)
N_ES = 14

# ---- episode statistics columns (ep), valid for the last finished episode ---
(EP_SHORTFALL_BPS, EP_BENCH_BPS, EP_VWAP, EP_MKT_VWAP, EP_TWAP, EP_EXECUTED, EP_COMPLETION,
 EP_RETURN, EP_LEN, EP_ARRIVAL, EP_PENALTY) = range(11)
N_EP = 11

# ---- kernel config vector (cfg) ---------------------------------------------
(C_Q, C_T, C_DT, C_LAM, C_SIDE, C_BENCH, C_START, C_RANDSTART, C_PA, C_PB, C_PC, C_PROFILE,
 C_ALPHA) = range(13)
N_CFG = 13
_CFG_COLUMNS = layout(globals(), "C_", N_CFG)

BENCH_IS, BENCH_VWAP, BENCH_TWAP = 0, 1, 2
_BENCH_CODES = {"is": BENCH_IS, "vwap": BENCH_VWAP, "twap": BENCH_TWAP}
_STREAM_MARKET, _STREAM_EPISODE = 0, 1


@dataclass(frozen=True)
class ExecutionConfig(Replaceable):
    """Settings of an execution episode (one for the whole batch)."""

    side: str = "sell"
    """``"sell"`` (liquidate a long position) or ``"buy"`` (acquire)."""
    quantity: float = 7061.0
    """Parent order size Q (shares): 1% of the shipped GOOG day's volume (706,125 shares)."""
    horizon: int = 30
    """Number of decision steps T; the unexecuted remainder is forced at the last step."""
    dt: float = 60.0
    """Step length (seconds)."""
    risk_aversion: float = 0.0
    """Mean-variance weight lambda (1/bps): the summed reward estimates
    ``-(E[C] + lambda Var[C])`` with C the episode's cost in bps of arrival notional."""
    benchmark: str = "is"
    """``"is"`` (arrival mid), ``"vwap"`` (market VWAP over the window) or ``"twap"``
    (time-weighted mid over the window)."""
    dynamics: Any = "parametric"
    """``"parametric"``, ``"learned"`` or a :class:`MarketDynamics` instance."""
    start_minute: float = 0.0
    """Episode start, minutes after the 09:30 open (used by the volume profile and the
    time-of-day observation)."""
    randomize_start: bool = False
    """Draw the start uniformly in ``[0, 390 - horizon*dt/60]`` minutes at every reset."""
    volume_profile: str = "auto"
    """``"u"`` (intraday U-shape ``profile_coef`` scales market volume), ``"flat"``, or
    ``"auto"`` (``"u"`` for ``benchmark="vwap"``, ``"flat"`` otherwise)."""
    profile_coef: tuple = GOOG_U_PROFILE
    """Quadratic coefficients ``(a, b, c)`` of the profile ``a x^2 + b x + c`` (mean 1 over
    the session, x = time of day in [0, 1]); default fitted on GOOG 2012-06-21."""
    ewm_alpha: float = 0.2
    """Smoothing weight of the realised-volatility and volume observations (per step)."""

    def __post_init__(self) -> None:
        if self.side not in ("sell", "buy"):
            raise EnvConfigError(f"ExecutionConfig.side must be 'sell' or 'buy', got {self.side!r}")
        if self.benchmark not in _BENCH_CODES:
            raise EnvConfigError(
                f"ExecutionConfig.benchmark must be one of {sorted(_BENCH_CODES)}, got {self.benchmark!r}"
            )
        if self.volume_profile not in ("auto", "u", "flat"):
            raise EnvConfigError(
                f"ExecutionConfig.volume_profile must be 'auto', 'u' or 'flat', got {self.volume_profile!r}"
            )
        for name in ("quantity", "dt", "risk_aversion", "start_minute", "ewm_alpha"):
            finite(f"ExecutionConfig.{name}", getattr(self, name), error=EnvConfigError)
        positive("ExecutionConfig.quantity", self.quantity, error=EnvConfigError, what="> 0 shares")
        positive("ExecutionConfig.dt", self.dt, error=EnvConfigError, what="> 0 seconds")
        non_negative("ExecutionConfig.risk_aversion", self.risk_aversion, error=EnvConfigError, what=">= 0")
        in_range("ExecutionConfig.ewm_alpha", self.ewm_alpha, 0.0, 1.0, lo_open=True, error=EnvConfigError)
        integer("ExecutionConfig.horizon", self.horizon, error=EnvConfigError)
        window = self.horizon * self.dt / 60.0
        if window > SESSION_MINUTES:
            raise EnvConfigError(f"ExecutionConfig: horizon*dt = {window:g} min exceeds the 390-min session")
        if not (0.0 <= self.start_minute <= SESSION_MINUTES - window):
            raise EnvConfigError(
                f"ExecutionConfig.start_minute must be in [0, {SESSION_MINUTES - window:g}] so the "
                f"window ends by the close, got {self.start_minute!r}"
            )
        coef = tuple(float(c) for c in self.profile_coef)
        if len(coef) != 3 or not all(np.isfinite(coef)):
            raise EnvConfigError(f"ExecutionConfig.profile_coef must be 3 finite numbers, got {self.profile_coef!r}")
        xs = np.linspace(0.0, 1.0, 401)
        if np.any(np.polyval(coef, xs) <= 0):
            raise EnvConfigError(f"ExecutionConfig.profile_coef {coef} gives a non-positive volume profile")
        object.__setattr__(self, "profile_coef", coef)

    @property
    def side_sign(self) -> float:
        """+1 for a buy, -1 for a sell (the sign of the agent's child orders)."""
        return 1.0 if self.side == "buy" else -1.0

    @property
    def uses_profile(self) -> bool:
        return self.volume_profile == "u" or (self.volume_profile == "auto" and self.benchmark == "vwap")



def volume_profile(x, coef=GOOG_U_PROFILE):
    """Volume multiplier at time of day ``x`` (fraction of the session, clipped to [0, 1])."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    a, b, c = coef
    return (a * x + b) * x + c


def fit_volume_profile(events=None, *, message_path=None, bin_minutes: float = 1.0) -> tuple[float, float, float]:
    """Fit the U-shaped profile ``a x^2 + b x + c`` (mean 1 over the session).

    ``events`` is a canonical event table (``lobworld.world_models.data``: columns ``ts``,
    ``event``, ``size``); or give ``message_path``, a LOBSTER message file (read and checked by
    ``lobworld.world_models.data.load_lobster_messages``).
    Executions (visible + hidden) are binned per ``bin_minutes`` of the 09:30-16:00 session;
    the per-bin volume divided by its mean is fitted by least squares.
    """
    import pandas as pd

    if events is None and message_path is None:
        raise ValueError("fit_volume_profile: give an event table or message_path")
    if events is not None:
        missing = {"ts", "event", "size"} - set(events.columns)
        if missing:
            raise ValueError(f"fit_volume_profile: event table lacks columns {sorted(missing)}")
        ex = events[events["event"].astype(str).isin(["exec_visible", "exec_hidden"])]
        ts = pd.DatetimeIndex(ex["ts"])
        secs = (ts.hour * 3600 + ts.minute * 60 + ts.second + ts.nanosecond * 1e-9
                + ts.microsecond * 1e-6).to_numpy(dtype=np.float64)
        sizes = ex["size"].to_numpy(dtype=np.float64)
    else:
        from lobworld.world_models.data import DataValidationError, load_lobster_messages

        try:
            m = load_lobster_messages(message_path)
        except DataValidationError as exc:  # keep its class (and rule): say which step failed
            raise type(exc)(exc.path, exc.rule, f"fit_volume_profile: cannot read LOBSTER message file: "
                            f"{exc.detail}", row=exc.row) from exc
        ex = m[m["type"].isin([4, 5])]
        secs = ex["time"].to_numpy(dtype=np.float64)
        sizes = ex["size"].to_numpy(dtype=np.float64)
    nbins = int(round(SESSION_MINUTES / bin_minutes))
    b = np.clip(((secs - SESSION_OPEN_S) // (60.0 * bin_minutes)).astype(np.int64), 0, nbins - 1)
    vol = np.bincount(b, weights=sizes, minlength=nbins)
    if vol.sum() <= 0:
        raise ValueError("fit_volume_profile: no executions in the session")
    x = (np.arange(nbins) + 0.5) / nbins
    a, bb, c = np.polyfit(x, vol / vol.mean(), 2)
    return float(a), float(bb), float(c)


# ---------------------------------------------------------------------------
# Kernels: written once; lobworld.envs.jit.bind compiles one cached copy per dynamics
# ---------------------------------------------------------------------------
# Names bound per dynamics by :func:`lobworld.envs.jit.bind` (placeholders here): the
# dynamics' per-env ``step_fn``/``reset_fn`` and batch-level ``batch_step_fn``/``batch_reset_fn``
# (see :class:`lobworld.envs.dynamics.MarketDynamics`).
step_fn = reset_fn = batch_step_fn = batch_reset_fn = None

# With the dynamics' batch-level functions the envs are processed in chunks (one ``prange``
# over chunks, one parallel region per call); a chunk runs in phases: the agent's child
# orders of its envs, one batched market step, the execution bookkeeping, then the batched
# reset of its finished envs (autoreset; ``reset`` likewise resets the masked envs chunk by
# chunk). Otherwise one loop over envs calls ``step_fn`` per env. Per env, both compute the
# same episode from the same random draws.

@njit(inline="always")
def vol_mult(cfg, tod0, k):
    if cfg[C_PROFILE] == 0.0:
        return 1.0
    x = (tod0 + (k + 0.5) * cfg[C_DT] / 60.0) / SESSION_MINUTES
    x = min(max(x, 0.0), 1.0)
    return (cfg[C_PA] * x + cfg[C_PB]) * x + cfg[C_PC]

@njit(inline="always")
def write_obs(cfg, row, es, i, k, obs):
    s0 = es[i, ES_ARRIVAL]
    obs[i, O_REMAINING] = es[i, ES_REMAINING] / cfg[C_Q]
    obs[i, O_TIME] = k / cfg[C_T]
    obs[i, O_RET] = (row[MID] - s0) / s0 * 100.0
    obs[i, O_SPREAD] = row[SPREAD] / s0 * 1000.0
    obs[i, O_VOL] = math.sqrt(es[i, ES_VAR_EWM]) / s0 * 1000.0
    obs[i, O_VOLUME] = es[i, ES_VOL_EWM] / es[i, ES_VOL_REF]
    obs[i, O_IMPACT] = row[TEMP_IMPACT] / s0 * 100.0
    obs[i, O_TOD] = (es[i, ES_TOD0] + k * cfg[C_DT] / 60.0) / SESSION_MINUTES

@njit(inline="always")
def reset_rest(i, rng, market, cfg, es, t, obs):
    """Everything of an env reset after the dynamics' reset of its market row."""
    row = market[i]
    if cfg[C_RANDSTART] != 0.0:
        span = SESSION_MINUTES - cfg[C_T] * cfg[C_DT] / 60.0
        es[i, ES_TOD0] = uniform(rng[i, _STREAM_EPISODE]) * span
    else:
        es[i, ES_TOD0] = cfg[C_START]
    es[i, ES_ARRIVAL] = row[MID]
    es[i, ES_REMAINING] = cfg[C_Q]
    es[i, ES_EXECUTED] = 0.0
    es[i, ES_PAID] = 0.0
    es[i, ES_VAR_EWM] = row[SIGMA] * row[SIGMA] * cfg[C_DT]
    ref = row[VOLUME]
    if not ref > 0.0:
        ref = 1.0
    es[i, ES_VOL_REF] = ref
    es[i, ES_VOL_EWM] = ref
    es[i, ES_ACC_NPM] = 0.0
    es[i, ES_ACC_VPM] = 0.0
    es[i, ES_ACC_V] = 0.0
    es[i, ES_ACC_PM] = 0.0
    es[i, ES_RETURN] = 0.0
    es[i, ES_PENALTY] = 0.0
    t[i] = 0
    write_obs(cfg, row, es, i, 0, obs)

def reset_one(i, rng, market, args, cfg, es, t, obs):
    reset_fn(i, market[i], args, rng[i, _STREAM_MARKET])
    reset_rest(i, rng, market, cfg, es, t, obs)

@njit(inline="always")
def child_order(i, actions, cfg, es, t):
    """Shares n traded by env i this step (the whole remainder at the last step)."""
    rem = es[i, ES_REMAINING]
    if t[i] >= int(cfg[C_T]) - 1:
        return rem
    n = actions[i, 0] * rem
    return rem if n > rem else n

def finish_step(i, n, price, mid_prev, rng, market, args, cfg, es, t, ep, obs, final_obs, reward, term, trunc):
    """Bookkeeping of env i after its market step (``n`` shares filled at ``price``); returns done."""
    Q = cfg[C_Q]
    T = int(cfg[C_T])
    dt = cfg[C_DT]
    s = cfg[C_SIDE]
    bench = int(cfg[C_BENCH])
    lam = cfg[C_LAM]
    alpha = cfg[C_ALPHA]
    row = market[i]
    st = rng[i, _STREAM_MARKET]
    k = t[i]
    s0 = es[i, ES_ARRIVAL]
    norm = 1e4 / (s0 * Q)
    pm = 0.5 * (mid_prev + row[MID])
    vol = row[VOLUME]
    es[i, ES_PAID] += n * price
    rem = es[i, ES_REMAINING] - n
    if k >= T - 1 or n == es[i, ES_REMAINING]:
        rem = 0.0
    es[i, ES_REMAINING] = rem
    es[i, ES_EXECUTED] = Q - rem
    es[i, ES_ACC_NPM] += n * pm
    es[i, ES_ACC_VPM] += vol * pm
    es[i, ES_ACC_V] += vol
    es[i, ES_ACC_PM] += pm
    if bench == 0:
        r = -norm * s * (price - s0) * n
    else:
        r = -norm * s * (price - pm) * n
    sig = row[SIGMA]
    pen = lam * norm * norm * sig * sig * dt * rem * rem
    r -= pen
    ret = row[LAST_RET]
    es[i, ES_VAR_EWM] = (1.0 - alpha) * es[i, ES_VAR_EWM] + alpha * ret * ret
    es[i, ES_VOL_EWM] = (1.0 - alpha) * es[i, ES_VOL_EWM] + alpha * vol
    k += 1
    t[i] = k
    done = rem == 0.0
    es[i, ES_RETURN] += r
    es[i, ES_PENALTY] += pen
    if done:
        # finish the benchmark window with the market alone (same random draws)
        n_win = k
        if bench != 0:
            for j in range(k, T):
                mp = row[MID]
                step_fn(i, row, args, st, 0.0, vol_mult(cfg, es[i, ES_TOD0], j))
                pmj = 0.5 * (mp + row[MID])
                es[i, ES_ACC_VPM] += row[VOLUME] * pmj
                es[i, ES_ACC_V] += row[VOLUME]
                es[i, ES_ACC_PM] += pmj
            n_win = T
        twap = es[i, ES_ACC_PM] / n_win
        mvwap = es[i, ES_ACC_VPM] / es[i, ES_ACC_V] if es[i, ES_ACC_V] > 0.0 else twap
        if bench == 1:
            corr = -norm * s * (es[i, ES_ACC_NPM] - Q * mvwap)
            r += corr
            es[i, ES_RETURN] += corr
        elif bench == 2:
            corr = -norm * s * (es[i, ES_ACC_NPM] - Q * twap)
            r += corr
            es[i, ES_RETURN] += corr
        ex = es[i, ES_EXECUTED]
        avg = es[i, ES_PAID] / ex if ex > 0.0 else 0.0
        ep[i, EP_SHORTFALL_BPS] = s * (es[i, ES_PAID] - ex * s0) * norm
        if bench == 0:
            ep[i, EP_BENCH_BPS] = ep[i, EP_SHORTFALL_BPS]
        elif bench == 1:
            ep[i, EP_BENCH_BPS] = s * (es[i, ES_PAID] - Q * mvwap) * norm
        else:
            ep[i, EP_BENCH_BPS] = s * (es[i, ES_PAID] - Q * twap) * norm
        ep[i, EP_VWAP] = avg
        ep[i, EP_MKT_VWAP] = mvwap
        ep[i, EP_TWAP] = twap
        ep[i, EP_EXECUTED] = ex
        ep[i, EP_COMPLETION] = ex / Q
        ep[i, EP_RETURN] = es[i, ES_RETURN]
        ep[i, EP_LEN] = k
        ep[i, EP_ARRIVAL] = s0
        ep[i, EP_PENALTY] = es[i, ES_PENALTY]
    reward[i] = r
    term[i] = done
    trunc[i] = False
    write_obs(cfg, row, es, i, k, obs)
    if done:
        keep_final_obs(i, obs, final_obs)
    return done

def reset_kernel(mask, rng, market, args, cfg, es, t, obs):
    for i in prange(mask.shape[0]):
        if mask[i]:
            reset_one(np.int64(i), rng, market, args, cfg, es, t, obs)  # int64: the serial kernel's types

def step_kernel(actions, rng, market, args, cfg, es, t, ep, autoreset,
                obs, final_obs, reward, term, trunc):
    for k in prange(actions.shape[0]):
        i = np.int64(k)  # the prange index is unsigned: int64 keeps the serial kernel's compiled callees
        row = market[i]
        n = child_order(i, actions, cfg, es, t)
        mid_prev = row[MID]
        price = step_fn(i, row, args, rng[i, _STREAM_MARKET], cfg[C_SIDE] * n,
                        vol_mult(cfg, es[i, ES_TOD0], t[i]))
        done = finish_step(i, n, price, mid_prev, rng, market, args, cfg, es, t, ep, obs, final_obs,
                           reward, term, trunc)
        if done and autoreset:
            reset_one(i, rng, market, args, cfg, es, t, obs)


def reset_listed(ridx, lo, m, wsc, rng, market, args, cfg, es, t, obs):
    """Reset the envs ridx[lo:m] of one chunk: one batched market reset, then the rest."""
    if m > lo:
        batch_reset_fn(ridx, lo, m, wsc, market, args, rng, np.int64(_STREAM_MARKET))  # int64, not a literal
        for j in range(lo, m):
            reset_rest(ridx[j], rng, market, cfg, es, t, obs)

def reset_kernel_batched(mask, rng, market, args, cfg, es, t, obs, ws, scr, idx, ridx):
    # one parallel region: chunk c resets its masked envs, listed in ridx[lo:m]
    n_envs = mask.shape[0]
    ch = ws.shape[2]
    for c in prange((n_envs + ch - 1) // ch):
        lo = c * ch
        m = lo
        for i in range(lo, min(n_envs, lo + ch)):
            if mask[i]:
                ridx[m] = i
                m += 1
        reset_listed(ridx, lo, m, ws[c], rng, market, args, cfg, es, t, obs)

def step_kernel_batched(actions, rng, market, args, cfg, es, t, ep, autoreset,
                        obs, final_obs, reward, term, trunc, ws, scr, idx, ridx):
    # one parallel region: chunk c = envs lo..hi-1 runs the three phases (child orders, one
    # batched market step, bookkeeping) and the batched autoreset of its finished envs.
    # scr rows: 0 shares n, 1 signed quantity q, 2 volume multiplier, 3 mid before, 4 price
    n_envs = actions.shape[0]
    ch = ws.shape[2]
    q = scr[1]
    vm = scr[2]
    price = scr[4]
    for c in prange((n_envs + ch - 1) // ch):
        lo = c * ch
        hi = min(n_envs, lo + ch)
        for i in range(lo, hi):
            n = child_order(i, actions, cfg, es, t)
            scr[0, i] = n
            scr[1, i] = cfg[C_SIDE] * n
            scr[2, i] = vol_mult(cfg, es[i, ES_TOD0], t[i])
            scr[3, i] = market[i, MID]
        batch_step_fn(idx, lo, hi, ws[c], market, args, rng, np.int64(_STREAM_MARKET), q, vm, price)
        m = lo
        for i in range(lo, hi):
            done = finish_step(i, scr[0, i], scr[4, i], scr[3, i], rng, market, args, cfg, es, t, ep, obs,
                               final_obs, reward, term, trunc)
            if done and autoreset:
                ridx[m] = i
                m += 1
        reset_listed(ridx, lo, m, ws[c], rng, market, args, cfg, es, t, obs)


def get_kernels(dynamics: MarketDynamics, parallel: bool | None = None, n_envs: int = 1, label: str | None = None):
    """The compiled ``(reset_kernel, step_kernel)`` for a dynamics (disk-cached, see :mod:`lobworld.envs.jit`).

    ``parallel=None``: the threading policy of :func:`lobworld.envs.jit.use_parallel`.
    """
    par = use_parallel(n_envs, parallel)
    binding = {"step_fn": dynamics.step_fn, "reset_fn": dynamics.reset_fn}
    label = label or type(dynamics).__name__.lower()
    if uses_batch_kernels(dynamics):
        binding.update(batch_step_fn=dynamics.batch_step_fn, batch_reset_fn=dynamics.batch_reset_fn)
        return bind((reset_kernel_batched, step_kernel_batched), (finish_step, reset_listed), binding,
                    label=f"exec_{label}_batch", parallel=par)
    return bind((reset_kernel, step_kernel), (reset_one, finish_step), binding,
                label=f"exec_{label}", parallel=par)


def uses_batch_kernels(dynamics: MarketDynamics) -> bool:
    """True when the execution kernels step ``dynamics`` through its batch-level functions."""
    return (getattr(dynamics, "batch_step_fn", None) is not None
            and getattr(dynamics, "batch_reset_fn", None) is not None)


# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
_OBS_LOW = np.array([0, 0, -np.inf, 0, 0, 0, 0, 0], dtype=np.float32)
_OBS_HIGH = np.array([1, 1, np.inf, np.inf, np.inf, np.inf, np.inf, 1], dtype=np.float32)


class ExecutionCore(BatchedCore):
    """Batched execution core (see :class:`ExecutionEnv` for the spec).

    ``ExecutionCore(n_envs, config=None, **fields)``: ``fields`` override
    :class:`ExecutionConfig` fields (the registered ids pass ``benchmark=``).
    """

    fresh_outputs = True  # every step writes all rows of obs, reward, terminated, truncated

    n_streams = 2  # 0: market dynamics, 1: episode (random start time)
    single_observation_space = spaces.Box(_OBS_LOW, _OBS_HIGH, (N_OBS,), np.float32)
    single_action_space = spaces.Box(0.0, 1.0, (1,), np.float32)

    def __init__(self, n_envs: int = 1, config: ExecutionConfig | None = None,
                 parallel: bool | None = None, **overrides: Any):
        config = config_from_kwargs(ExecutionConfig, config, overrides, "ExecutionEnv", ("config", "parallel"))
        self.config = config
        self.dynamics = make_dynamics(config.dynamics)
        self._parallel = parallel
        super().__init__(n_envs)

    def _alloc_state(self) -> None:
        c = self.config
        n = self.n_envs
        self.market = np.zeros((n, self.dynamics.n_state), dtype=np.float64)
        bundle = self.dynamics.bundle(n, float(c.dt))  # arguments and functions for this dt (immutable)
        self.args = bundle.args
        self.es = np.zeros((n, N_ES), dtype=np.float64)
        self.es[:, ES_VOL_REF] = 1.0
        self.es[:, ES_ARRIVAL] = 1.0
        self.t = np.zeros(n, dtype=np.int64)
        self.ep = np.zeros((n, N_EP), dtype=np.float64)
        self.cfg = self._cfg_vector()
        self._bundle = bundle
        self._threads = ThreadChoice(n, self._parallel)  # serial or parallel kernel per call (measured)
        self._kernel_pairs: dict[bool, tuple] = {}
        self._reset_kernel, self._step_kernel = self._kernels(self._threads.parallel)
        self._batched = uses_batch_kernels(bundle)
        if self._batched:  # scratch of the batched market step (allocated once, reused every step)
            self._ws = self.dynamics.workspace(n)
            self._scr = np.zeros((5, n), dtype=np.float64)
            self._idx = np.arange(n, dtype=np.int64)
            self._ridx = np.zeros(n, dtype=np.int64)

    def _cfg_vector(self) -> np.ndarray:
        c = self.config
        pa, pb, pc = c.profile_coef
        return pack(_CFG_COLUMNS, {
            "C_Q": c.quantity, "C_T": c.horizon, "C_DT": c.dt, "C_LAM": c.risk_aversion, "C_SIDE": c.side_sign,
            "C_BENCH": _BENCH_CODES[c.benchmark], "C_START": c.start_minute,
            "C_RANDSTART": 1.0 if c.randomize_start else 0.0, "C_PA": pa, "C_PB": pb, "C_PC": pc,
            "C_PROFILE": 1.0 if c.uses_profile else 0.0, "C_ALPHA": c.ewm_alpha,
        }, "ExecutionCore.cfg")

    def _kernels(self, parallel: bool) -> tuple:
        pair = self._kernel_pairs.get(parallel)
        if pair is None:
            pair = self._kernel_pairs[parallel] = get_kernels(self._bundle, parallel, self.n_envs,
                                                                    label=type(self.dynamics).__name__.lower())
        return pair

    @property
    def parallel(self) -> bool:
        """Whether the next step runs the parallel kernel (see :class:`lobworld.envs.jit.ThreadChoice`)."""
        return self._threads.parallel

    def _reset_rows(self, mask: np.ndarray) -> None:
        self._reset_kernel, self._step_kernel = self._kernels(self._threads.parallel)
        if self._batched:
            self._reset_kernel(mask, self.rng_state, self.market, self.args, self.cfg, self.es, self.t, self.obs,
                               self._ws, self._scr, self._idx, self._ridx)
        else:
            self._reset_kernel(mask, self.rng_state, self.market, self.args, self.cfg, self.es, self.t, self.obs)

    def _step_rows(self, actions: np.ndarray, autoreset: bool) -> None:
        par = self._threads.choose()
        self._reset_kernel, self._step_kernel = self._kernels(par)
        t0 = time.perf_counter()
        if self._batched:
            self._step_kernel(actions, self.rng_state, self.market, self.args, self.cfg, self.es, self.t,
                              self.ep, bool(autoreset), self.obs, self.final_obs, self.reward,
                              self.terminated, self.truncated, self._ws, self._scr, self._idx, self._ridx)
        else:
            self._step_kernel(actions, self.rng_state, self.market, self.args, self.cfg, self.es, self.t,
                              self.ep, bool(autoreset), self.obs, self.final_obs, self.reward,
                              self.terminated, self.truncated)
        self._threads.record(par, time.perf_counter() - t0)

    def step_unchecked(self, actions: np.ndarray, autoreset: bool = True) -> None:
        """Step without validating ``actions`` (float64 ``(n_envs, 1)`` in [0, 1]; benchmarks)."""
        self._step_rows(actions, autoreset)

    episode_stats = EpisodeStats(
        column("shortfall_bps", EP_SHORTFALL_BPS, "ep"),
        column("benchmark_slippage_bps", EP_BENCH_BPS, "ep"),
        column("vwap", EP_VWAP, "ep"),
        column("market_vwap", EP_MKT_VWAP, "ep"),
        column("market_twap", EP_TWAP, "ep"),
        column("arrival_price", EP_ARRIVAL, "ep"),
        column("shares_executed", EP_EXECUTED, "ep"),
        column("completion", EP_COMPLETION, "ep"),
        column("episode_return", EP_RETURN, "ep"),
        column("risk_penalty", EP_PENALTY, "ep"),
        column("episode_length", EP_LEN, "ep", int),
    )


_SPEC = """
    ## Description
    A parent order of ``quantity`` shares (default 7,061 = 1% of the shipped GOOG day's
    volume) must be {verb} within ``horizon`` steps of ``dt`` seconds (default 30 x 60 s).
    Each step the agent sends one child market order; it executes at the pre-step mid plus
    (buy) or minus (sell) half the spread and the temporary impact, then the market moves
    (mid, spread, volume, permanent impact: :mod:`lobworld.envs.dynamics`, ``"parametric"``
    Almgren-Chriss dynamics calibrated on GOOG 2012-06-21 by default). Shares are continuous.

    ## Action Space
    ``Box(0, 1, (1,), float32)``: the fraction of the *remaining* quantity to trade this
    step, n_k = a_k x_k. At the last step the whole remainder is traded whatever the action.

    ## Observation Space
    ``Box((8,), float32)``; s0 is the arrival mid.

    | idx | observation | unit / scaling | range |
    |-----|-------------|----------------|-------|
    | 0 | remaining quantity x_k / Q | fraction | [0, 1] |
    | 1 | steps taken k / T | fraction | [0, 1] |
    | 2 | mid return since arrival (mid - s0)/s0 | bps / 100 | R |
    | 3 | quoted spread / s0 | bps / 10 | >= 0 |
    | 4 | realised volatility: sqrt(EWMA of squared mid changes per step) / s0 | bps per step / 10 | >= 0 |
    | 5 | EWMA of market volume per step / expected volume per step at reset | ratio | >= 0 |
    | 6 | temporary impact paid per share on the last child order / s0 | bps / 100 | >= 0 |
    | 7 | time of day (minutes since 09:30) / 390 | fraction | [0, 1] |

    ## Rewards
    ``s`` = +1 buy, -1 sell; ``p_k`` the average price of child order ``n_k``;
    ``N = s0 * Q`` the arrival notional; ``pm_k`` = (mid before + mid after step k) / 2,
    the market's price over step k; ``V_k`` the market volume of step k (agent excluded).
    {reward}
    Mean-variance penalty (all ids): ``- lambda * (1e4/N)^2 * sigma_k^2 * dt * x_{{k+1}}^2``
    (``sigma_k`` the dynamics' volatility of step k in USD/sqrt(s), ``x_{{k+1}}`` the shares
    still held after the trade), so the summed reward estimates ``-(E[C] + lambda Var[C])``
    with ``Var[C] = (1e4/N)^2 sigma^2 dt sum_k x_k^2`` (Almgren-Chriss); lambda is in 1/bps.

    ## Starting State
    The dynamics' reset (parametric: mid 570.78 USD, mean spread, expected volume), full
    inventory, k = 0, start time ``start_minute`` (or uniform with ``randomize_start``).

    ## Episode End
    Terminated when the order is complete: after an action of 1 or at step T where the
    remainder is forced. The horizon is part of the task (the order must be done), so
    episodes are never truncated; ``completion`` is always 1.
    {window}
    The info dict of the final step holds ``shortfall_bps`` (s (sum n_k p_k - Q s0) * 1e4/N),
    ``benchmark_slippage_bps``, ``vwap`` (agent's average price), ``market_vwap``,
    ``market_twap``, ``arrival_price``, ``shares_executed``, ``completion``,
    ``episode_return``, ``risk_penalty``, ``episode_length``.

    ## Arguments
    The fields of :class:`ExecutionConfig` as keyword arguments (``side``, ``quantity``,
    ``horizon``, ``dt``, ``risk_aversion``, ``benchmark``, ``dynamics``, ``start_minute``,
    ``randomize_start``, ``volume_profile``, ``profile_coef``, ``ewm_alpha``) or ``config=``.
    ``gym.make("{env_id}")``; ``gym.make_vec("{env_id}", num_envs, vectorization_mode=
    "vector_entry_point")``; ``lobworld.envs.make_sb3_vec_env("{env_id}", n_envs, seed)``.

    ## Version History
    * v0: initial version.
"""

_IS_REWARD = """``LOB-Execution-v0`` (``benchmark="is"``): r_k = -s (p_k - s0) n_k * 1e4 / N, so the
    episode's summed reward is minus the implementation shortfall in bps of arrival notional.
    ``LOB-VWAP-v0`` (``benchmark="vwap"``): r_k = -s (p_k - pm_k) n_k * 1e4 / N (slippage
    of the fill against the market's price of that step), and the final step adds the
    tracking term -s (sum_k n_k pm_k - Q VWAP_mkt) * 1e4 / N with
    VWAP_mkt = sum_k V_k pm_k / sum_k V_k over the whole window; summed reward =
    -s (sum n_k p_k - Q VWAP_mkt) * 1e4 / N, minus the slippage vs market VWAP in bps.
    ``LOB-TWAP-v0`` (``benchmark="twap"``): as VWAP with equal weights,
    TWAP = mean_k pm_k over the window; summed reward = minus the slippage vs TWAP in bps."""

_WINDOW = """For VWAP/TWAP the benchmark window is always the full T steps: when the order completes
    early the market is simulated on (agent absent, same random draws) to step T before the
    benchmark is computed."""


class ExecutionEnv(LOBEnv):
    __doc__ = "Single-env optimal execution (LOB-Execution-v0, LOB-VWAP-v0, LOB-TWAP-v0).\n" + _SPEC.format(
        verb="sold (bought)", reward=_IS_REWARD, window=_WINDOW, env_id="LOB-Execution-v0")
    core_cls = ExecutionCore


class ExecutionVectorEnv(LOBVectorEnv):
    __doc__ = ("Native batched Gymnasium vector env of :class:`ExecutionEnv` (same-step autoreset;\n"
               "``infos['final_info']`` holds the episode info). Spec as :class:`ExecutionEnv`.\n")
    core_cls = ExecutionCore

"""Baselines of the tick-level envs (``LOB-TickMarketMaking-v0``, ``LOB-TickExecution-v0``).

Every baseline is a batched policy ``policy(obs (n, d)) -> actions`` acting through the env's
action space (:mod:`lobworld.envs.tick`): it reads the observation (spread, time, inventory or
remaining shares, its own resting orders, recent flow) and, where it needs them, a few world
statistics measured once by :func:`calibrate` (a pilot of the same world). Nothing here knows
which world moves the books (``world="replay"``, ``"parametric"``, ``"learned"``): the
calibration runs whatever the config names.

Calibration (:func:`calibrate`, :class:`TickWorldStats`)
    A pilot batch of ``PILOT_ENVS`` envs of the same config, but with random episode starts over
    the data's hours (never the evaluated window alone), fixed seeds, and an agent that sends
    nothing, runs ``PILOT_STEPS`` decisions. Measured: the mean quoted spread ``spread`` (ticks,
    over decisions with both sides non-empty), the mean decision interval ``interval`` (seconds:
    ``dt``, or the measured mean with ``decide_every="events"``), the mid's variance rate
    ``sigma2`` (ticks^2 per second: mean squared mid change per decision / ``interval``), the
    mean visible size at the touch ``touch_size`` (shares, both sides), the executed volume rate
    ``volume_rate`` (shares per second) and the mean mid ``mid`` (ticks). Cached per (core
    class, config). Below, ``dt`` stands for ``interval`` and ``T = horizon * interval``.

Market making (continuous ``[bid_level, ask_level, bid_size, ask_size, keep_bid, keep_ask]``;
on the discrete id the nearest grid action, :class:`lobworld.agents.baselines.DiscreteQuotes`).
A quote at ``delta`` ticks from the mid is sent as level ``delta - spread / 2`` from the own-side
touch (``spread`` from the observation), clipped to ``[-max_level, max_level]`` (the env rounds
half up and keeps an unchanged quote in its queue place). Each quotes ``size = discrete_size`` shares per side, and drops a side (size 0)
whose fill would take ``|inventory|`` beyond ``inventory_limit``.

* ``fixed-spread[:TICKS]``: ``delta = TICKS`` each side (default: the world's mean half-spread,
  i.e. the average touch).
* ``avellaneda-stoikov[:GAMMA]`` / ``as``: reservation price ``r = m - q gamma sigma2 tau`` and
  total spread ``gamma sigma2 tau + (2 / gamma) ln(1 + gamma / kappa)`` (``q`` shares, ``tau``
  seconds left, prices in ticks, ``gamma`` per tick-share). ``kappa = 2 / spread``: the
  risk-neutral optimum ``2 / kappa`` is the world's mean spread. Default ``gamma = spread /
  (2 size sigma2 T)`` (``T = horizon dt``): one filled quote at the episode start moves the
  reservation price by half the mean spread.
* ``cartea-jaimungal[:PHI]`` / ``cj``: the finite-inventory optimum with running penalty
  (:func:`lobworld.agents.market_making.cartea_jaimungal_depths`, prices in ticks, inventory in
  lots of ``size``): ``kappa = 2 / spread`` as above, ``A = e * lambda_touch`` with
  ``lambda_touch = (volume_rate / 2) / max(touch_size, size)`` (lots per second at which a queue
  as long as the touch's is consumed, taken as the fill rate at ``delta = spread / 2``), penalty
  ``phi * size / tick`` ticks per lot^2 per second from ``PHI`` in the env's units (USD per
  share^2 per second; default the env's ``phi``), no terminal penalty.
* ``random[:SEED]``: uniform actions of the space.

Execution (``[fraction, type, level]``; ``R`` = shares left, read from the observation as
``round(remaining * Q)``). A schedule is the holding ``Q w_j`` it targets after decision ``j``
(``w_0 = 1``, ``w_H = 0``); at decision ``j`` (``j = round(time * H)``) the child is
``R - round(Q w_{j+1})`` shares (none when ahead of the schedule), sent as a market order.

* ``twap``: ``w_j = 1 - j / H``.
* ``ac[:LAMBDA]``: Almgren-Chriss, ``w_j = sinh(k (H - j)) / sinh(k H)`` with ``cosh k = 1 +
  lambda sigma2_step / (2 eta)`` (the exact discrete optimum of ``E[C] + lambda Var[C]``):
  ``sigma2_step = sigma2 dt`` ticks^2, ``eta = 1 / (2 touch_size)`` ticks per share (walking a
  book of ``touch_size`` shares per level), ``lambda`` per tick-share from ``LAMBDA`` per bps
  (``LAMBDA * 1e4 / (Q mid)``). Default ``LAMBDA = 0``: ``k = 0`` and the schedule is TWAP's,
  exactly (the same code path).
* ``vwap``: ``w`` follows the cumulative intraday U-shaped volume profile
  (:data:`lobworld.envs.execution.GOOG_U_PROFILE`) from each env's start time of day.
* ``pov[:RATE]``: a market child of ``RATE`` (default 0.1) times the shares the market executed
  in the last interval (the observation's ``exec_volume``), at most ``R``.
* ``passive-first[:LAG]``: TWAP's schedule worked passively: while less than ``LAG * Q`` shares
  behind (default ``LAG = 0.1``), a limit child at the own-side touch holds what the schedule
  asks plus ``LAG * Q`` (at most ``R``), kept as it is (its queue place) while it rests at the
  touch or better and sent again when the touch moved away from it; once ``LAG * Q`` behind, or in the
  last two decisions, the resting child is cancelled (one decision) and the deficit is sent as a
  market order.
* ``aggressive``: everything as one market order at the first decision.

The forced completion of the env executes what is left at the horizon in every case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lobworld.errors import LobworldError

__all__ = ["TickBaselineError", "TickWorldStats", "calibrate", "obs_index", "TickQuoteAgent", "TickScheduleAgent",
           "TickPOVAgent", "TickPassiveFirstAgent", "twap_weights", "ac_weights", "vwap_weights",
           "make_tick_market_making", "make_tick_execution", "PILOT_ENVS", "PILOT_STEPS"]

PILOT_ENVS = 8
"""Envs of the calibration pilot."""
PILOT_STEPS = 120
"""Decisions of the calibration pilot (with autoreset)."""
PILOT_SEED = 7_770_000
"""First seed of the pilot's envs (seeds ``PILOT_SEED + i``)."""


class TickBaselineError(LobworldError):
    """A bad parameter of a tick-env baseline, or observations it cannot read (names the field)."""


# ---------------------------------------------------------------------------
# observation layout (lobworld.envs.tick.obs_names)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Idx:
    spread: int
    time: int
    first: int
    o0_ahead: int
    o0_rest: int
    o0_dist: int
    exec_volume: int


def obs_index(n_levels: int) -> _Idx:
    """Column indices of the tick observation with ``n_levels`` book levels per side."""
    c = 2 * n_levels
    return _Idx(spread=c, time=c + 2, first=c + 3, o0_ahead=c + 4, o0_rest=c + 5, o0_dist=c + 6,
                exec_volume=c + 10)


def _obs(obs: np.ndarray, width: int) -> np.ndarray:
    o = np.asarray(obs, dtype=np.float64)
    if o.ndim == 1:
        o = o[None, :]
    if o.ndim != 2 or o.shape[1] != width:
        raise TickBaselineError(f"observations must have shape (n, {width}), got {np.shape(obs)}")
    if not np.all(np.isfinite(o)):
        raise TickBaselineError("observations contain NaN or inf")
    return o


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TickWorldStats:
    """World statistics of a pilot (units in each field)."""

    spread: float
    """Mean quoted spread (ticks)."""
    sigma2: float
    """Variance rate of the mid (ticks^2 per second)."""
    touch_size: float
    """Mean visible shares at the best level (both sides)."""
    volume_rate: float
    """Executed shares per second (visible + hidden)."""
    mid: float
    """Mean mid (ticks)."""
    interval: float = 1.0
    """Mean time between decisions (seconds: ``dt``, or the measured mean with ``decide_every="events"``)."""


_CACHE: dict[Any, TickWorldStats] = {}


def calibrate(core: Any, n_envs: int = PILOT_ENVS, steps: int = PILOT_STEPS) -> TickWorldStats:
    """Measure :class:`TickWorldStats` on a pilot of ``core``'s world (see the module docstring)."""
    cfg = core.config.replace(start=None)
    key: Any = None
    try:
        key = (type(core).__name__, cfg, n_envs, steps)
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    if not isinstance(cfg.world, str):  # a world object: the pilot gets its own (shallow) copy, so the
        import copy                     # pilot's batch never resizes the arrays of the core's world

        cfg = cfg.replace(world=copy.copy(cfg.world))
    pilot = type(core)(n_envs=n_envs, config=cfg)
    pilot.seed_rows(range(n_envs), [PILOT_SEED + i for i in range(n_envs)])
    pilot.reset()
    idx = obs_index(pilot.n_levels)
    scale = float(cfg.size_scale)
    if hasattr(cfg, "inventory_limit"):  # market making: keep (no quotes); execution: a child of 0 shares
        idle = np.array([0, 0, 0, 0, 1, 1], np.float32)
    else:
        idle = np.array([0, 1, 0], np.float32)
    act = np.tile(idle, (n_envs, 1))
    L = pilot.n_levels
    spreads, dm2, touch, vol, mids, els = [], [], [], [], [], []

    def mid_of(c):
        b = c.book
        ok = (b.nl[:, 0] > 0) & (b.nl[:, 1] > 0)
        return np.where(ok, 0.5 * (b.px[:, 0, 0] + b.px[:, 1, 0]), np.nan)

    m_prev = mid_of(pilot)
    for _ in range(steps):
        t_prev = pilot.time_ns
        pilot.step(act, autoreset=True)
        done = pilot.terminated | pilot.truncated
        els.append(((pilot.time_ns - t_prev) * 1e-9)[~done])
        o = np.where(done[:, None], pilot.final_obs, pilot.obs).astype(np.float64)
        both = (o[:, 0] > 0) & (o[:, L] > 0)
        spreads.append(o[both, idx.spread])
        touch.append(np.concatenate([o[both, 0], o[both, L]]) * scale)
        vol.append(o[:, idx.exec_volume] * scale)
        m = mid_of(pilot)
        d = (m - m_prev)[~done]
        dm2.append(d[np.isfinite(d)])
        mids.append(m[np.isfinite(m)])
        m_prev = m
    cat = np.concatenate
    sp, t, v, d2, mm, el = cat(spreads), cat(touch), cat(vol), cat(dm2), cat(mids), cat(els)
    dt = float(el.mean()) if el.size and el.mean() > 0 else float(cfg.dt)
    stats = TickWorldStats(
        spread=float(sp.mean()) if sp.size else 1.0,
        sigma2=max(float(np.mean(d2 ** 2)) / dt if d2.size else 0.0, 1e-9),
        touch_size=max(float(t.mean()) if t.size else 1.0, 1.0),
        volume_rate=float(v.mean()) / dt if v.size else 0.0,
        mid=float(mm.mean()) if mm.size else 1.0,
        interval=dt)
    if key is not None:
        _CACHE[key] = stats
    return stats


# ---------------------------------------------------------------------------
# market making
# ---------------------------------------------------------------------------
class TickQuoteAgent:
    """Quotes at ``delta`` ticks from the mid (see the module docstring), one of three rules.

    ``rule``: ``"fixed"`` (``delta = half``), ``"as"`` (Avellaneda-Stoikov with ``gamma``,
    ``kappa``, ``sigma2``), ``"cj"`` (Cartea-Jaimungal depth tables ``bid_depth`` /
    ``ask_depth``, rows = decisions, columns = inventory in lots ``+ q_max``); ``T``: the
    episode's length in seconds (default ``horizon * dt``).
    """

    def __init__(self, core: Any, rule: str, *, half: float = 1.0, gamma: float = 0.0, kappa: float = 1.0,
                 sigma2: float = 0.0, bid_depth: np.ndarray | None = None, ask_depth: np.ndarray | None = None,
                 q_max: int = 1, T: float | None = None):
        c = core.config
        self.rule = rule
        self.idx = obs_index(core.n_levels)
        self.width = core.single_observation_space.shape[0]
        self.limit = float(c.inventory_limit)
        self.size = float(c.discrete_size)
        self.max_level = float(c.max_level)
        self.H = int(c.horizon)
        self.T = float(c.horizon * c.dt) if T is None else float(T)
        self.half, self.gamma, self.kappa, self.sigma2 = float(half), float(gamma), float(kappa), float(sigma2)
        self.bid_depth, self.ask_depth, self.q_max = bid_depth, ask_depth, int(q_max)

    def deltas(self, o: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(delta_bid, delta_ask, quote_bid, quote_ask)`` in ticks from the mid for observations ``o``."""
        q = o[:, self.idx.first] * self.limit
        n = o.shape[0]
        qb = np.ones(n, bool)
        qa = np.ones(n, bool)
        if self.rule == "fixed":
            db = np.full(n, self.half)
            da = np.full(n, self.half)
        elif self.rule == "as":
            tau = np.clip(1.0 - o[:, self.idx.time], 0.0, 1.0) * self.T
            g = self.gamma
            skew = q * g * self.sigma2 * tau
            total = g * self.sigma2 * tau + (2.0 / g) * math.log1p(g / self.kappa)
            db = 0.5 * total + skew
            da = 0.5 * total - skew
        else:
            lots = np.clip(np.round(q / self.size), -self.q_max, self.q_max).astype(np.int64)
            j = np.clip(np.round(o[:, self.idx.time] * self.H), 0, self.H).astype(np.int64)
            db = self.bid_depth[j, lots + self.q_max]
            da = self.ask_depth[j, lots + self.q_max]
            qb &= ~np.isnan(db)
            qa &= ~np.isnan(da)
            db = np.nan_to_num(db, nan=0.0)
            da = np.nan_to_num(da, nan=0.0)
        qb &= q + self.size <= self.limit
        qa &= q - self.size >= -self.limit
        return db, da, qb, qa

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        o = _obs(obs, self.width)
        db, da, qb, qa = self.deltas(o)
        hs = 0.5 * o[:, self.idx.spread]
        out = np.zeros((o.shape[0], 6), np.float32)
        m = self.max_level
        out[:, 0] = np.clip(db - hs, -m, m)
        out[:, 1] = np.clip(da - hs, -m, m)
        out[:, 2] = np.where(qb, self.size, 0.0)
        out[:, 3] = np.where(qa, self.size, 0.0)
        return out

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self(obs), None


def _param(name: str, arg: str) -> float | None:
    if not arg:
        return None
    try:
        x = float(arg)
    except ValueError:
        raise TickBaselineError(f"strategy {name!r}: the parameter after ':' must be a number, got {arg!r}") from None
    if not math.isfinite(x):
        raise TickBaselineError(f"strategy {name!r}: the parameter must be finite, got {arg!r}")
    return x


def make_tick_market_making(name: str, base: str, arg: str, core: Any, seed: int = 0):
    """The market-making baseline ``base`` (lower case, without ``:X``) with parameter text ``arg``."""
    from lobworld.agents.market_making import RandomAgent, cartea_jaimungal_depths

    x = _param(name, arg)
    c = core.config
    if base == "random":
        if x is not None and (x < 0 or x != int(x)):
            raise TickBaselineError(f"strategy {name!r}: random:SEED needs a non-negative integer seed")
        return RandomAgent(core.single_action_space, seed=int(seed if x is None else x))
    st = calibrate(core)
    kappa = 2.0 / max(st.spread, 1e-6)
    size = float(c.discrete_size)
    if base == "fixed-spread":
        half = 0.5 * st.spread if x is None else x
        if not half >= 0:
            raise TickBaselineError(f"strategy {name!r}: TICKS must be >= 0 (ticks from the mid), got {half}")
        return TickQuoteAgent(core, "fixed", half=half)
    if base in ("avellaneda-stoikov", "as"):
        gamma = st.spread / (2.0 * size * st.sigma2 * c.horizon * st.interval) if x is None else x
        if not gamma > 0:
            raise TickBaselineError(f"strategy {name!r}: GAMMA must be > 0 (per tick-share), got {gamma}")
        return TickQuoteAgent(core, "as", gamma=gamma, kappa=kappa, sigma2=st.sigma2, T=c.horizon * st.interval)
    if base in ("cartea-jaimungal", "cj"):
        phi_usd = float(c.phi) if x is None else x
        if phi_usd < 0:
            raise TickBaselineError(f"strategy {name!r}: PHI must be >= 0 (USD per share^2 per s), got {phi_usd}")
        tick = float(core.world.tick_size)
        lam_touch = 0.5 * st.volume_rate / max(st.touch_size, size)
        A = max(math.e * lam_touch, 1e-6)
        q_max = max(1, int(c.inventory_limit // size) - 1)
        bd, ad = cartea_jaimungal_depths(A, kappa, phi_usd * size / tick, 0.0, q_max, int(c.horizon), st.interval)
        return TickQuoteAgent(core, "cj", bid_depth=bd, ask_depth=ad, q_max=q_max)
    raise TickBaselineError(f"unknown tick market-making baseline {name!r}")


# ---------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------
def twap_weights(H: int) -> np.ndarray:
    """TWAP's holding fractions ``w_j = 1 - j / H``, ``j = 0..H``."""
    return 1.0 - np.arange(H + 1, dtype=np.float64) / H


def ac_weights(H: int, lam: float, sigma2_step: float, eta: float) -> np.ndarray:
    """Almgren-Chriss holding fractions ``sinh(k (H - j)) / sinh(k H)``, ``cosh k = 1 + lam sigma2_step / (2 eta)``
    (``lam`` per tick-share, ``sigma2_step`` ticks^2 per decision, ``eta`` ticks per share);
    ``lam = 0`` is TWAP's, exactly."""
    if not (math.isfinite(lam) and lam >= 0):
        raise TickBaselineError(f"ac: LAMBDA must be a finite number >= 0, got {lam!r}")
    k = math.acosh(1.0 + lam * sigma2_step / (2.0 * eta)) if lam > 0 else 0.0
    if k == 0.0:
        return twap_weights(H)
    j = np.arange(H + 1, dtype=np.float64)
    if k * H > 700:  # sinh overflows: the ratio is exp(-k j) to double precision
        w = np.exp(-k * j)
        w[-1] = 0.0
        return w
    return np.sinh(k * (H - j)) / math.sinh(k * H)


def vwap_weights(H: int, dt: float, start_s: np.ndarray, coef: tuple[float, float, float]) -> np.ndarray:
    """Holding fractions ``(n, H + 1)`` following the cumulative U-shaped volume profile ``a x^2 + b x + c``
    (``x`` the fraction of the 09:30-16:00 session) from each env's start ``start_s`` (seconds after midnight)."""
    a, b, c = coef
    sess = 6.5 * 3600.0
    x = (np.asarray(start_s, np.float64)[:, None] - 9.5 * 3600.0 + np.arange(H + 1) * dt) / sess
    x = np.clip(x, 0.0, 1.0)
    F = ((a / 3.0 * x + b / 2.0) * x + c) * x
    span = F[:, -1:] - F[:, :1]
    lin = np.arange(H + 1, dtype=np.float64)[None, :] / H
    frac = np.where(span > 0, (F - F[:, :1]) / np.where(span > 0, span, 1.0), lin)
    return 1.0 - frac


class _ExecBase:
    def __init__(self, core: Any):
        c = core.config
        self.core = core
        self.idx = obs_index(core.n_levels)
        self.width = core.single_observation_space.shape[0]
        self.Q = int(c.quantity)
        self.H = int(c.horizon)
        self.scale = float(c.size_scale)

    def _read(self, obs):
        o = _obs(obs, self.width)
        R = np.round(o[:, self.idx.first] * self.Q)
        j = np.clip(np.round(o[:, self.idx.time] * self.H), 0, self.H - 1).astype(np.int64)
        return o, R, j

    @staticmethod
    def _market(R: np.ndarray, child: np.ndarray) -> np.ndarray:
        out = np.zeros((R.shape[0], 3), np.float32)
        child = np.clip(child, 0.0, R)
        out[:, 0] = np.where(R > 0, child / np.where(R > 0, R, 1.0), 0.0)
        return out

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self(obs), None


class TickScheduleAgent(_ExecBase):
    """Market children that keep the holding on a schedule ``w`` (``(H + 1,)``, or ``(n, H + 1)`` per env;
    ``per_env(core) -> w`` recomputes it at every call, e.g. from each env's start time)."""

    def __init__(self, core: Any, w: np.ndarray | None = None, per_env=None):
        super().__init__(core)
        self.w = None if w is None else np.asarray(w, np.float64)
        self.per_env = per_env

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        o, R, j = self._read(obs)
        w = self.per_env(self.core) if self.per_env is not None else self.w
        wn = w[..., j + 1] if w.ndim == 1 else w[np.arange(len(j)), j + 1]
        target = np.round(self.Q * wn)
        return self._market(R, R - target)


class TickPOVAgent(_ExecBase):
    """Market children of ``rate`` times the last interval's executed volume."""

    def __init__(self, core: Any, rate: float):
        super().__init__(core)
        if not (math.isfinite(rate) and 0 < rate <= 1):
            raise TickBaselineError(f"pov: RATE must lie in (0, 1], got {rate!r}")
        self.rate = float(rate)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        o, R, _ = self._read(obs)
        return self._market(R, np.round(self.rate * o[:, self.idx.exec_volume] * self.scale))


class TickPassiveFirstAgent(_ExecBase):
    """TWAP's schedule worked with a limit child at the touch first (see the module docstring);
    ``lag``: the fraction of Q the schedule may lag before the agent crosses."""

    def __init__(self, core: Any, lag: float = 0.1):
        super().__init__(core)
        if not (math.isfinite(lag) and 0 < lag <= 1):
            raise TickBaselineError(f"passive-first: LAG must lie in (0, 1] (fraction of Q), got {lag!r}")
        self.w = twap_weights(self.H)
        self.lag = max(1.0, round(lag * self.Q))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        o, R, j = self._read(obs)
        behind = np.maximum(R - np.round(self.Q * self.w[j + 1]), 0.0)
        rest = np.round(np.maximum(o[:, self.idx.o0_rest], 0.0) * self.scale)
        live = (o[:, self.idx.o0_ahead] >= 0) & (rest > 0)
        at_touch = live & (o[:, self.idx.o0_dist] < 0.5)  # at the market's touch or better (it is the touch)
        urgent = (behind >= self.lag) | (j >= self.H - 2)
        out = np.zeros((o.shape[0], 3), np.float32)
        safe_R = np.where(R > 0, R, 1.0)
        cancel = urgent & live  # urgent with a resting child: cancel it first (one decision)
        cross = urgent & ~live  # urgent without: cross the deficit
        out[cancel, 1] = 3.0
        out[cross, 0] = (behind / safe_R)[cross]
        calm = ~urgent  # rest what the schedule asks plus the allowed lag; keep a child resting at the touch
        want = np.where(at_touch, rest, np.minimum(R, behind + self.lag))
        out[calm, 1] = 1.0
        out[calm, 0] = (want / safe_R)[calm]
        out[R <= 0] = 0.0
        return out


def make_tick_execution(name: str, base: str, arg: str, core: Any, seed: int = 0):
    """The execution baseline ``base`` (lower case, without ``:X``) with parameter text ``arg``."""
    x = _param(name, arg)
    c = core.config
    H = int(c.horizon)
    if base == "twap" and x is None:
        return TickScheduleAgent(core, twap_weights(H))
    if base == "aggressive" and x is None:
        w = np.zeros(H + 1)
        w[0] = 1.0
        return TickScheduleAgent(core, w)
    if base == "passive-first":
        return TickPassiveFirstAgent(core, 0.1 if x is None else x)
    if base == "pov":
        return TickPOVAgent(core, 0.1 if x is None else x)
    if base == "vwap" and x is None:
        from lobworld.envs.execution import GOOG_U_PROFILE

        return TickScheduleAgent(core, per_env=lambda cr: vwap_weights(H, float(c.dt), cr.start_seconds,
                                                                        GOOG_U_PROFILE))
    if base == "ac":
        lam_bps = 0.0 if x is None else x
        if not (math.isfinite(lam_bps) and lam_bps >= 0):
            raise TickBaselineError(f"strategy {name!r}: LAMBDA must be a finite number >= 0 (1/bps), got {lam_bps}")
        if lam_bps == 0.0:
            return TickScheduleAgent(core, ac_weights(H, 0.0, 1.0, 1.0))
        st = calibrate(core)
        lam = lam_bps * 1e4 / (c.quantity * st.mid)
        return TickScheduleAgent(core, ac_weights(H, lam, st.sigma2 * st.interval, 0.5 / st.touch_size))
    raise TickBaselineError(f"unknown tick execution baseline {name!r}")

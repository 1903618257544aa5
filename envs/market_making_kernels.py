"""Numba kernels of the market-making env (:mod:`lobworld.envs.market_making`).

Everything here works on struct-of-arrays state with leading dimension
``n_envs`` and allocates nothing per step. Column meanings are the named
constants below; the Python class packs its config into the ``cfg`` vector.

Random streams of env ``i`` (``rng[i, c]``):

* ``S_MID`` -- the market dynamics (mid, spread, volume),
* ``S_ARR`` -- market-order arrival times, sides and sizes,
* ``S_FILL`` -- fill draws (reach of a market order; Brownian-bridge mid at its time),
* ``S_LAT`` -- latency jitter.

The number of draws from each stream does not depend on the agent's actions,
so two strategies run on the same seed face the same market orders and the
same mid path (common random numbers).

The kernels are compiled with ``parallel=True`` (``prange`` over envs); small
batches run them on one Numba thread (see
:data:`lobworld.envs.market_making.PARALLEL_MIN_ENVS`). Each env reads and writes
only its own rows and its own random streams, so the thread count does not change
any result. (A plain serial ``@njit`` build of the same loop is slower per CPU-second,
see ``docs/benchmarks.md``: the parallel build's outlined loop body lets LLVM treat the
arrays as non-aliasing.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from lobworld.envs.dynamics import (
    IMBALANCE,
    LAST_RET,
    MID,
    P_DT,
    P_MU,
    P_SIGMA,
    P_SPREAD,
    P_SPREAD_LOGSD,
    P_TICK,
    SIGMA,
    SPREAD,
    _parametric_reset,  # noqa: F401  (bound by market_making.MarketMakingCore)
)
from lobworld.envs.columns import layout
from lobworld.envs.episode import keep_episode, keep_final_obs
from lobworld.envs.fastmath import tanh as _tanh
from lobworld.envs.jit import bind
from lobworld.envs.rng import exponential, normal, uniform

S_MID, S_ARR, S_FILL, S_LAT = 0, 1, 2, 3
N_STREAMS = 4

# ---- cfg vector columns ----------------------------------------------------
(C_DT, C_TICK, C_HORIZON, C_LIMIT, C_A, C_K, C_QINIT, C_QCANCEL, C_QJOIN, C_MOSIZE, C_MOFIXED,
 C_PENALTY, C_PHI, C_GAMMA, C_LAMBAR0, C_LAMBAR1, C_FILLMODE, C_VOL_ALPHA, C_HMU0, C_HMU1,
 C_HA00, C_HA01, C_HA10, C_HA11, C_HBETA, C_QSCALE, C_MAXOFF, C_IMPACT, C_P0, C_QDECAY_DT) = range(30)
N_CFG = 30
CFG_COLUMNS = layout(globals(), "C_", N_CFG)
# C_P0: probability of no market order in a step, exp(-(mu0 + mu1) dt), for Poisson flow (0 for
# Hawkes): the first inter-arrival uniform is compared with it before any log is taken.
# C_QDECAY_DT: exp(-queue_cancel_rate * dt), the queue decay over a step without events.

FILL_QUEUE = 0.0  #: event-driven market orders + queue position + latency
FILL_BERNOULLI = 1.0  #: Avellaneda-Stoikov textbook fills: P(fill) = A exp(-k delta) dt per side per step
PEN_QUADRATIC = 0.0
PEN_EXPONENTIAL = 1.0

# ---- action modes ------------------------------------------------------------
M_SET, M_CANCEL, M_HOLD = 0, 1, 2

# ---- action columns (continuous): bid offset, ask offset (ticks from mid), bid size, ask size (shares)
A_BOFF, A_AOFF, A_BSZ, A_ASZ = 0, 1, 2, 3

# ---- observation columns ----------------------------------------------------
(O_INV, O_TIME, O_SPREAD, O_IMB, O_VOL, O_QBID, O_QASK, O_DBID, O_DASK, O_LAT) = range(10)
N_OBS = 10

# ---- per-env scalar state columns (float64 array ``sv``) -------------------
(V_INV, V_CASH, V_WEALTH, V_VOL, V_HX0, V_HX1, V_CURQ, V_CURQM, V_PREVQ, V_PREVQM, V_W0) = range(11)
N_SV = 11

# ---- per-env per-side quote state (float64 array ``qs`` of shape (n, 2, N_QS)); side 0 bid, 1 ask
(Q_LIVE, Q_PX, Q_SZ, Q_AHEAD, P_ACT, P_PX, P_SZ, P_T, P_LAT) = range(9)
N_QS = 9

# ---- episode statistics (float64 array ``ep`` of shape (n, N_EP)), accumulated during the episode
(E_LEN, E_SUM_INV, E_MAXABS_INV, E_NFILL_BID, E_NFILL_ASK, E_VFILL_BID, E_VFILL_ASK, E_SUM_DW, E_SUM_DW2,
 E_ADVERSE, E_NMO_BUY, E_NMO_SELL, E_VMO_BUY, E_VMO_SELL, E_SUM_PEN) = range(15)
N_EP = 15

# ---- per-step fill record (float64 array ``fr`` of shape (n, 4)): bid qty, bid notional, ask qty, ask notional
F_BQ, F_BN, F_AQ, F_AN = 0, 1, 2, 3


@njit(inline="always")
def _mm_parametric_step(i, row, args, st, q, vol_mult):
    """The parametric dynamics' step as the maker sees it (``q = 0``).

    Draws the same three normals as :func:`lobworld.envs.dynamics._parametric_step`
    (mid, volume, spread, in that order) and gives the same mid and spread bit for bit
    and the same imbalance to a few ulp; it skips the market-volume and impact columns,
    which this env does not read (``tests/test_market_making_speed.py`` checks the
    equivalence).
    """
    P = args[0]
    dt = P[i, P_DT]
    z_mid = normal(st)
    normal(st)  # the volume draw: consumed to keep the stream aligned with the shared dynamics
    z_spr = normal(st)
    ret = P[i, P_MU] * dt + P[i, P_SIGMA] * math.sqrt(dt) * z_mid + 0.0
    ssd = P[i, P_SPREAD_LOGSD]
    new_spread = P[i, P_SPREAD] * math.exp(ssd * z_spr - 0.5 * ssd * ssd)
    tick = P[i, P_TICK]
    new_spread = max(tick, tick * math.floor(new_spread / tick + 0.5))
    row[MID] = row[MID] + ret
    row[SPREAD] = new_spread
    row[LAST_RET] = ret
    row[IMBALANCE] = _tanh(z_mid)
    row[SIGMA] = P[i, P_SIGMA]
    return 0.0


@njit(inline="always")
def _book(row, tick):
    """Tick-aligned best bid and ask (integer tick counts) around the mid with the market spread."""
    spread_t = max(1.0, math.floor(row[SPREAD] / tick + 0.5))
    bb = math.floor((row[MID] - 0.5 * spread_t * tick) / tick + 0.5)
    return bb, bb + spread_t, spread_t


@njit(inline="always")
def _write_obs(i, market, sv, qs, cfg, lat_obs, t, out):
    row = market[i]
    tick = cfg[C_TICK]
    mid = row[MID]
    out[i, O_INV] = sv[i, V_INV] / cfg[C_LIMIT]
    out[i, O_TIME] = t[i] / cfg[C_HORIZON]
    out[i, O_SPREAD] = row[SPREAD] / tick
    out[i, O_IMB] = row[IMBALANCE]
    out[i, O_VOL] = math.sqrt(sv[i, V_VOL])
    for s in range(2):
        if qs[i, s, Q_LIVE] > 0.0 and qs[i, s, Q_SZ] > 0.0:
            out[i, O_QBID + s] = qs[i, s, Q_AHEAD] / cfg[C_QSCALE]
            d = (mid / tick - qs[i, s, Q_PX]) if s == 0 else (qs[i, s, Q_PX] - mid / tick)
            out[i, O_DBID + s] = d
        else:
            out[i, O_QBID + s] = -1.0
            out[i, O_DBID + s] = 0.0
    out[i, O_LAT] = lat_obs[i]


@njit(inline="always")
def _reset_env(i, market, sv, qs, ep, t, cfg, lat_obs, rng, reset_fn, dyn_args, obs):
    row = market[i]
    reset_fn(i, row, dyn_args, rng[i, S_MID])
    t[i] = 0
    for c in range(N_SV):
        sv[i, c] = 0.0
    for s in range(2):
        for c in range(N_QS):
            qs[i, s, c] = 0.0
    for c in range(N_EP):
        ep[i, c] = 0.0
    _write_obs(i, market, sv, qs, cfg, lat_obs, t, obs)


# Kernels bound per dynamics by :func:`lobworld.envs.jit.bind` (one disk-cached copy each, see
# :func:`get_kernels`): ``reset_fn``/``step_fn`` are the dynamics' functions, placeholders here.
reset_fn = step_fn = None


def mm_reset(mask, market, sv, qs, ep, t, cfg, lat_obs, rng, dyn_args, obs):
    """Reset every env ``i`` with ``mask[i]``; writes its first observation."""
    for i in prange(mask.shape[0]):
        if mask[i]:
            _reset_env(np.int64(i), market, sv, qs, ep, t, cfg, lat_obs, rng, reset_fn, dyn_args, obs)


@njit(inline="always")
def _fill(i, s, qty, px_ticks, mid_at, sv, qs, ep, fr, tick):
    """Book a fill of ``qty`` shares of side ``s`` (0 our bid is hit: we buy) at ``px_ticks``."""
    px = px_ticks * tick
    if s == 0:
        sv[i, V_INV] += qty
        sv[i, V_CASH] -= qty * px
        sv[i, V_CURQ] += qty
        sv[i, V_CURQM] += qty * mid_at
        fr[i, F_BQ] += qty
        fr[i, F_BN] += qty * px
        ep[i, E_NFILL_BID] += 1.0
        ep[i, E_VFILL_BID] += qty
    else:
        sv[i, V_INV] -= qty
        sv[i, V_CASH] += qty * px
        sv[i, V_CURQ] -= qty
        sv[i, V_CURQM] -= qty * mid_at
        fr[i, F_AQ] += qty
        fr[i, F_AN] += qty * px
        ep[i, E_NFILL_ASK] += 1.0
        ep[i, E_VFILL_ASK] += qty
    qs[i, s, Q_SZ] -= qty
    if qs[i, s, Q_SZ] <= 0.0:
        qs[i, s, Q_SZ] = 0.0
        qs[i, s, Q_LIVE] = 0.0


@njit(inline="always")
def _activate(i, s, qs, bb, ba, cfg):
    """The in-flight message of side ``s`` reaches the book."""
    qs[i, s, P_ACT] = 0.0
    px = qs[i, s, P_PX]
    sz = qs[i, s, P_SZ]
    if sz <= 0.0:  # cancel
        qs[i, s, Q_LIVE] = 0.0
        qs[i, s, Q_SZ] = 0.0
        qs[i, s, Q_AHEAD] = 0.0
        return
    if qs[i, s, Q_LIVE] > 0.0 and qs[i, s, Q_PX] == px:  # same price: keeps its queue place
        qs[i, s, Q_SZ] = sz
        return
    # new price: back of the queue. Depth ahead = the resting queue if the price level
    # exists (at or behind the touch), 0 if the quote improves the touch; plus what joined
    # the level while the message was in flight.
    improves = px > bb if s == 0 else px < ba
    ahead = 0.0 if improves else cfg[C_QINIT]
    ahead += cfg[C_QJOIN] * qs[i, s, P_LAT]
    qs[i, s, Q_LIVE] = 1.0
    qs[i, s, Q_PX] = px
    qs[i, s, Q_SZ] = sz
    qs[i, s, Q_AHEAD] = ahead


@njit(inline="always")
def _advance(i, qs, bb, ba, cfg, t_from, t_to):
    """Move the within-step clock from ``t_from`` to ``t_to``: activate messages due, cancel-deplete queues."""
    c = cfg[C_QCANCEL]
    if qs[i, 0, P_ACT] == 0.0 and qs[i, 1, P_ACT] == 0.0:  # fast path: nothing in flight
        if c > 0.0 and t_to > t_from and (qs[i, 0, Q_AHEAD] != 0.0 or qs[i, 1, Q_AHEAD] != 0.0):
            if t_from == 0.0 and t_to == cfg[C_DT]:
                f = cfg[C_QDECAY_DT]
            else:
                f = math.exp(-c * (t_to - t_from))
            qs[i, 0, Q_AHEAD] *= f
            qs[i, 1, Q_AHEAD] *= f
        return
    now = t_from
    # e_now = exp(-c * now) while known (from the step's start): the step's last segment then
    # costs a division by it instead of another exp (exp(-c dt) is precomputed)
    known = t_from == 0.0
    e_now = 1.0
    for _ in range(2):  # at most one message per side
        first = -1
        tf = t_to
        for s in range(2):
            if qs[i, s, P_ACT] > 0.0 and qs[i, s, P_T] <= tf:
                if first < 0 or qs[i, s, P_T] < tf:
                    first = s
                    tf = qs[i, s, P_T]
        if first < 0:
            break
        if c > 0.0 and tf > now:
            if qs[i, 0, Q_AHEAD] != 0.0 or qs[i, 1, Q_AHEAD] != 0.0:
                f = math.exp(-c * (tf - now))
                qs[i, 0, Q_AHEAD] *= f
                qs[i, 1, Q_AHEAD] *= f
                e_now *= f
            else:
                known = False
        now = max(now, tf)
        _activate(i, first, qs, bb, ba, cfg)
    if c > 0.0 and t_to > now and (qs[i, 0, Q_AHEAD] != 0.0 or qs[i, 1, Q_AHEAD] != 0.0):
        if known and t_to == cfg[C_DT] and e_now > 1e-300:
            f = cfg[C_QDECAY_DT] / e_now
        else:
            f = math.exp(-c * (t_to - now))
        qs[i, 0, Q_AHEAD] *= f
        qs[i, 1, Q_AHEAD] *= f


@njit(inline="always")
def _decide(i, s, mode, act, mid, bb, ba, lat, qs, cfg, queue_mode):
    """Turn the agent's action for side ``s`` into at most one message (or nothing)."""
    if mode == M_HOLD:
        return
    tick = cfg[C_TICK]
    if mode == M_CANCEL:
        sz = 0.0
        px = 0.0
    else:
        off = act[i, A_BOFF + s]
        sz = math.floor(act[i, A_BSZ + s] + 0.5)
        if s == 0:
            px = math.floor((mid - off * tick) / tick + 1e-9)
            if queue_mode and px > ba - 1.0:
                px = ba - 1.0  # post-only: never cross the opposite touch
        else:
            px = math.ceil((mid + off * tick) / tick - 1e-9)
            if queue_mode and px < bb + 1.0:
                px = bb + 1.0
    # the order the venue will hold once everything in flight has arrived
    if qs[i, s, P_ACT] > 0.0:
        tpx = qs[i, s, P_PX]
        tsz = qs[i, s, P_SZ]
    elif qs[i, s, Q_LIVE] > 0.0:
        tpx = qs[i, s, Q_PX]
        tsz = qs[i, s, Q_SZ]
    else:
        tpx = 0.0
        tsz = 0.0
    if sz <= 0.0:
        if tsz <= 0.0:
            return
    elif tsz > 0.0 and tpx == px and tsz == sz:
        return
    # send: replaces any message of this side still in flight
    qs[i, s, P_ACT] = 1.0
    qs[i, s, P_PX] = px
    qs[i, s, P_SZ] = sz
    qs[i, s, P_T] = lat
    qs[i, s, P_LAT] = lat


@njit(inline="always")
def _step_env(i, actions, modes, rng, market, sv, qs, ep, t, fr, cfg, lat_ow, lat_jit, lat_obs,
              reset_fn, step_fn, dyn_args, obs, final_obs, reward, term, trunc):
    row = market[i]
    dt = cfg[C_DT]
    tick = cfg[C_TICK]
    queue_mode = cfg[C_FILLMODE] == FILL_QUEUE
    mid0 = row[MID]
    bb, ba, _sp = _book(row, tick)
    fr[i, 0] = 0.0
    fr[i, 1] = 0.0
    fr[i, 2] = 0.0
    fr[i, 3] = 0.0
    # -- decisions -> messages (two latency normals per step, whatever the action)
    st_lat = rng[i, S_LAT]
    z0 = normal(st_lat)
    z1 = normal(st_lat)
    mode = modes[i]
    if queue_mode:
        _decide(i, 0, mode, actions, mid0, bb, ba, max(0.0, lat_ow[i] + lat_jit[i] * z0), qs, cfg, True)
        _decide(i, 1, mode, actions, mid0, bb, ba, max(0.0, lat_ow[i] + lat_jit[i] * z1), qs, cfg, True)
    else:  # textbook setting: quotes live at once
        for s in range(2):
            _decide(i, s, mode, actions, mid0, bb, ba, 0.0, qs, cfg, False)
            if qs[i, s, P_ACT] > 0.0:
                _activate(i, s, qs, bb, ba, cfg)
                qs[i, s, Q_AHEAD] = 0.0
    # -- the market moves (the maker's passive fills create no temporary impact: q = 0)
    step_fn(i, row, dyn_args, rng[i, S_MID], 0.0, 1.0)
    mid1 = row[MID]
    sigma = row[SIGMA]
    st_fill = rng[i, S_FILL]
    if not queue_mode:
        # Avellaneda-Stoikov (2008), section 3.3: each live quote fills in full with probability
        # A exp(-k delta) dt, delta its distance from the mid when it was set (the step's start).
        for s in range(2):
            u = uniform(st_fill)
            if qs[i, s, Q_LIVE] > 0.0 and qs[i, s, Q_SZ] > 0.0:
                px = qs[i, s, Q_PX] * tick
                delta = (mid0 - px) if s == 0 else (px - mid0)
                p = cfg[C_A] * math.exp(-cfg[C_K] * delta) * dt
                if u < p:
                    _fill(i, s, qs[i, s, Q_SZ], qs[i, s, Q_PX], mid1, sv, qs, ep, fr, tick)
    else:
        st_arr = rng[i, S_ARR]
        mu0 = cfg[C_HMU0]
        mu1 = cfg[C_HMU1]
        a00 = cfg[C_HA00]
        a01 = cfg[C_HA01]
        a10 = cfg[C_HA10]
        a11 = cfg[C_HA11]
        beta = cfg[C_HBETA]
        hx0 = sv[i, V_HX0]
        hx1 = sv[i, V_HX1]
        hawkes = (a00 + a01 + a10 + a11) > 0.0
        now = 0.0
        s_prev = 0.0
        m_prev = mid0
        jump = 0.0  # cumulative permanent impact of this step's market orders (USD)
        kappa = cfg[C_IMPACT]
        first = True
        while True:
            lam_bar = mu0 + mu1 + (a00 + a10) * hx0 + (a01 + a11) * hx1
            if lam_bar <= 0.0:
                break
            if first:
                # Poisson flow: no order this step iff the first uniform is <= exp(-lambda dt) (C_P0),
                # decided without a log; otherwise the same exponential -log(u) as below
                first = False
                u0 = uniform(st_arr)
                if u0 <= cfg[C_P0]:
                    break
                w = -math.log(u0) / lam_bar
            else:
                w = exponential(st_arr) / lam_bar
            if now + w >= dt:
                if hawkes:
                    d = math.exp(-beta * (dt - now))
                    hx0 *= d
                    hx1 *= d
                break
            if hawkes:
                d = math.exp(-beta * w)
                hx0 *= d
                hx1 *= d
            now += w
            lam0 = mu0 + a00 * hx0 + a01 * hx1
            lam1 = mu1 + a10 * hx0 + a11 * hx1
            u = uniform(st_arr) * lam_bar
            if u >= lam0 + lam1:
                continue  # thinned candidate
            mark = 0 if u < lam0 else 1
            if hawkes:
                if mark == 0:
                    hx0 += beta
                else:
                    hx1 += beta
            size = cfg[C_MOSIZE] if cfg[C_MOFIXED] > 0.0 else math.ceil(cfg[C_MOSIZE] * exponential(st_arr))
            u_reach = uniform(st_fill)
            zb = normal(st_fill)
            # mid at the order's time: Brownian bridge towards the end-of-step mid
            span = dt - s_prev
            frac = (now - s_prev) / span
            var = sigma * sigma * (now - s_prev) * (dt - now) / span
            m_now = m_prev + frac * (mid1 - m_prev) + math.sqrt(max(var, 0.0)) * zb
            _advance(i, qs, bb, ba, cfg, s_prev, now)
            s_prev = now
            m_prev = m_now
            if mark == 0:
                ep[i, E_NMO_BUY] += 1.0
                ep[i, E_VMO_BUY] += size
            else:
                ep[i, E_NMO_SELL] += 1.0
                ep[i, E_VMO_SELL] += size
            s = 1 if mark == 0 else 0  # a buy market order lifts asks, a sell hits bids
            m_obs = m_now + jump  # mid seen by the order (diffusion + earlier orders' impact)
            if qs[i, s, Q_LIVE] > 0.0 and qs[i, s, Q_SZ] > 0.0:
                px = qs[i, s, Q_PX] * tick
                delta = (m_obs - px) if s == 0 else (px - m_obs)
                lbar = cfg[C_LAMBAR0] if mark == 0 else cfg[C_LAMBAR1]
                p = cfg[C_A] * math.exp(-cfg[C_K] * delta) / lbar
                if u_reach < p:
                    v = size
                    c = min(v, qs[i, s, Q_AHEAD])
                    qs[i, s, Q_AHEAD] -= c
                    v -= c
                    f = min(math.floor(v + 1e-9), qs[i, s, Q_SZ])  # whole shares
                    if f > 0.0:
                        _fill(i, s, f, qs[i, s, Q_PX], m_obs, sv, qs, ep, fr, tick)
            # the order's permanent impact moves the mid after it trades
            jump += kappa * size if mark == 0 else -kappa * size
        if jump != 0.0:
            row[MID] += jump
            mid1 = row[MID]
        sv[i, V_HX0] = hx0
        sv[i, V_HX1] = hx1
        # messages due by the step's end go live now; the rest stay in flight
        _advance(i, qs, bb, ba, cfg, s_prev, dt)
        for s in range(2):
            if qs[i, s, P_ACT] > 0.0:
                qs[i, s, P_T] -= dt
    # -- accounting
    inv = sv[i, V_INV]
    wealth = sv[i, V_CASH] + inv * mid1
    dw = wealth - sv[i, V_WEALTH]
    sv[i, V_WEALTH] = wealth
    if cfg[C_PENALTY] == PEN_QUADRATIC:
        pen = cfg[C_PHI] * inv * inv * dt
        r = dw - pen
    else:
        g = cfg[C_GAMMA]
        r = (1.0 - math.exp(-g * dw)) / g
        pen = dw - r
    reward[i] = r
    ret_t = (mid1 - mid0) / tick
    a = cfg[C_VOL_ALPHA]
    sv[i, V_VOL] = (1.0 - a) * sv[i, V_VOL] + a * ret_t * ret_t
    # adverse selection: fills of the previous step, marked against this step's closing mid
    ep[i, E_ADVERSE] += sv[i, V_PREVQM] - sv[i, V_PREVQ] * mid1
    sv[i, V_PREVQ] = sv[i, V_CURQ]
    sv[i, V_PREVQM] = sv[i, V_CURQM]
    sv[i, V_CURQ] = 0.0
    sv[i, V_CURQM] = 0.0
    t[i] += 1
    ep[i, E_LEN] += 1.0
    ep[i, E_SUM_INV] += inv
    ep[i, E_MAXABS_INV] = max(ep[i, E_MAXABS_INV], abs(inv))
    ep[i, E_SUM_DW] += dw
    ep[i, E_SUM_DW2] += dw * dw
    ep[i, E_SUM_PEN] += pen
    te = abs(inv) > cfg[C_LIMIT]
    tr = (t[i] >= cfg[C_HORIZON]) and not te
    term[i] = te
    trunc[i] = tr
    _write_obs(i, market, sv, qs, cfg, lat_obs, t, obs)
    if te or tr:
        # the last step's fills are marked against the final mid (horizon < one step)
        ep[i, E_ADVERSE] += sv[i, V_PREVQM] - sv[i, V_PREVQ] * mid1
        sv[i, V_PREVQ] = 0.0
        sv[i, V_PREVQM] = 0.0
        keep_final_obs(i, obs, final_obs)


@njit(inline="always")
def _step_one(i, actions, modes, rng, market, sv, qs, ep, t, fr, cfg, lat_ow, lat_jit, lat_obs,
          reset_fn, step_fn, dyn_args, autoreset, obs, final_obs, reward, term, trunc, ep_done):
    _step_env(i, actions, modes, rng, market, sv, qs, ep, t, fr, cfg, lat_ow, lat_jit, lat_obs,
              reset_fn, step_fn, dyn_args, obs, final_obs, reward, term, trunc)
    if term[i] or trunc[i]:
        keep_episode(i, ep, ep_done)
        ep_done[i, N_EP] = sv[i, V_WEALTH]
        ep_done[i, N_EP + 1] = sv[i, V_INV]
        if autoreset:
            _reset_env(i, market, sv, qs, ep, t, cfg, lat_obs, rng, reset_fn, dyn_args, obs)


def mm_step(actions, modes, rng, market, sv, qs, ep, t, fr, cfg, lat_ow, lat_jit, lat_obs,
            dyn_args, autoreset, obs, final_obs, reward, term, trunc, ep_done):
    """Advance every env one step. ``ep_done[i]`` gets a finished episode's stats."""
    for i in prange(actions.shape[0]):
        _step_one(np.int64(i), actions, modes, rng, market, sv, qs, ep, t, fr, cfg, lat_ow, lat_jit, lat_obs,
                  reset_fn, step_fn, dyn_args, autoreset, obs, final_obs, reward, term, trunc, ep_done)


def get_kernels(reset, step, label: str) -> tuple:
    """``(mm_reset, mm_step)`` bound to the dynamics functions ``reset``/``step``.

    Compiled with ``parallel=True`` whatever the batch size: small batches run them on one
    Numba thread (see the module docstring for why this beats a serial build).
    """
    return bind((mm_reset, mm_step), (), {"reset_fn": reset, "step_fn": step}, label=f"mm_{label}", parallel=True)

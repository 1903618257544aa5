"""The Cont-Stoikov-Talreja model driving the event-level book engine: ``world="parametric"``.

Description
    :class:`CSTWorld` is a :class:`~lobworld.envs.tick.TickWorld`: ``n_envs`` books of one
    :class:`~lobworld.envs.book.Book` batch move by the zero-intelligence order flow of
    :mod:`lobworld.world_models.tick_parametric` (rates ``lambda(i)``, ``mu``, ``theta(i)`` of a
    :class:`~lobworld.world_models.tick_parametric.CSTParams`, distances in ticks from the
    opposite best). The generator is one Numba kernel (:func:`cst_advance`, serial, and
    :func:`cst_advance_parallel`, ``prange`` over envs) that draws each event from the env's own
    xoshiro stream (:mod:`lobworld.envs.rng`) on the env's *current* book and applies it at once
    through the engine's own message routine (LOBSTER semantics: submit 1, delete 3, visible
    execution 4), so the agent's orders, queue positions, latency and fills are the engine's and
    the flow always sees the book the agent has changed (``mode="live"``). Nothing is allocated
    per message.

The model (the same as :func:`~lobworld.world_models.tick_parametric.simulate_cst`)
    With ``bb`` / ``ba`` the best bid / ask (the last price of a side while it is empty), one
    Gillespie step draws, in this order from the env's stream: the waiting time (exponential with
    the total rate ``R``), one uniform that picks the event, and under ``size_law="lognormal"``
    one normal for the size. ``R = 2 * sum(lambda) + 2 * mu + sum_levels theta(d) * Q / S_l``
    (``sim_rates()``; ``Q`` shares at a level, ``d`` its distance from the opposite best clipped to
    ``1..max_distance``, so orders beyond ``max_distance`` cancel at ``theta(max_distance)``).

    * limit bid / ask at distance ``i`` (rate ``lambda(i)`` each): a submit at ``ba - i`` /
      ``bb + i``; it never crosses;
    * market buy / sell (rate ``mu`` each): visible executions against the opposite side from
      its best, one message per level taken, all at the same ns, until the size is filled or the
      side is empty; a market order that finds its side empty is **rejected** (no message,
      counted in ``W_REJECTED``), as in the reference;
    * cancel (rate ``theta(d) * Q / S_l`` per level): a delete of ``min(size, Q)`` shares there.

    Sizes: one lot of ``round(S_l)`` shares under ``"unit"``; ``max(1, round(exp(m + s z)))``
    shares of the kind's log-normal under ``"lognormal"``. Times: the world clock is float64 ns;
    a message carries ``floor`` of its time.

Deviations from the reference (documented rules)
    * The agent: whenever the agent's next decision or arrival (the engine's latency model) comes
      before the next drawn event, the agent event runs first and the waiting time is drawn
      again from its time on the changed book (exact for a Poisson flow: memoryless). At the end
      of :meth:`CSTWorld.advance` the pending draw is dropped the same way.
    * Depth: the engine keeps ``BookConfig.depth`` levels per side (at most 50); the reference's
      grid keeps every price. A submit beyond the deepest kept level is dropped (``N_BEYOND``)
      and one that pushes a level out of a full side drops that level (``N_PUSHED_OUT``). GOOG's
      fitted ``max_distance`` is 60 ticks, so a side can hold more than 50 levels only while the
      spread is under 10 ticks.
    * Sizes are whole shares (the engine is int64); a start book from a LOBSTER file keeps its
      own share sizes.

Counters ``wcnt (n, N_WCNT)`` int64 (columns ``W_*``) count events by kind, rejections, agent
redraws and crossed books seen after a message (always 0; a test checks it).
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import replace

import numba
import numpy as np
from numba import njit, prange

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import MAX_DEPTH, Book, BookConfig
from lobworld.envs.book_kernels import (
    ASK, BID, CF_MODE, ES_FROZEN, ES_LAST_T, MSG_DELETE, MSG_EXEC, MSG_SUBMIT, agent_until,
    _apply_message,
)
from lobworld.envs.rng import exponential, normal, uniform
from lobworld.errors import LobworldError
from lobworld.world_models.tick_parametric import CSTParams, load_fitted_cst

__all__ = ["CSTWorld", "CSTWorldError", "cst_advance", "cst_advance_parallel", "cst_advance_events",
           "cst_advance_events_parallel", "W_LIMIT_BID", "W_LIMIT_ASK",
           "W_MARKET_BUY", "W_MARKET_SELL", "W_CANCEL_BID", "W_CANCEL_ASK", "W_REJECTED", "W_MSGS",
           "W_REDRAWS", "W_CROSSED", "W_EVENTS", "N_WCNT", "L_T", "L_TYPE", "L_SIDE", "L_PRICE", "L_SIZE", "L_DIST",
           "N_LCOL", "world_params"]

# ---- world counters ``wcnt (n, N_WCNT)`` int64 -------------------------------------------
(W_LIMIT_BID, W_LIMIT_ASK, W_MARKET_BUY, W_MARKET_SELL, W_CANCEL_BID, W_CANCEL_ASK, W_REJECTED, W_MSGS,
 W_REDRAWS, W_CROSSED, W_EVENTS) = range(11)
N_WCNT = 11
#: ``W_MARKET_*`` count market orders drawn (including the rejected ones); ``W_MSGS`` messages
#: applied; ``W_REDRAWS`` waiting times drawn again after an agent event; ``W_EVENTS`` market events
#: that reached the book (a limit order, a cancel, a market order with all its messages: what
#: :meth:`CSTWorld.advance_events` counts)

# ---- message log ``log (n, cap, N_LCOL)`` int64 (optional, ``record=cap``) ---------------
L_T, L_TYPE, L_SIDE, L_PRICE, L_SIZE, L_DIST = range(6)
N_LCOL = 6
#: ``L_DIST``: the message's distance in ticks from the opposite best (the reference of the
#: rates) on the book it was drawn on: ``ba - p`` for a bid, ``p - bb`` for an ask

# ---- params vector ``pv`` float64 --------------------------------------------------------
P_MU, P_UNIT, P_INV_LOT, P_LOGNORMAL, P_ML, P_SL, P_MM, P_SM, P_MC, P_SC = range(10)
N_PV = 10

# what follows the one message of an event in _cst_env
K_NONE, K_LIMIT_BID, K_LIMIT_ASK, K_MARKET, K_CANCEL = range(5)

_STREAM_TAG = 0x43535457  # "CSTW": domain tag of the world's stream derivation


class CSTWorldError(LobworldError):
    """Bad input to the parametric tick world (names the field)."""


def world_params(params: CSTParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lam_cum, theta, pv)``: the kernel's view of ``params`` under its size law
    (cumulative ``lambda`` per second, ``theta`` per lot-second, the ``P_*`` vector)."""
    lam, mu, theta = params.sim_rates()
    pv = np.zeros(N_PV, np.float64)
    pv[P_MU] = mu
    pv[P_UNIT] = float(max(1, round(params.mean_limit_size)))
    pv[P_INV_LOT] = 1.0 / params.mean_limit_size
    pv[P_LOGNORMAL] = 1.0 if params.size_law == "lognormal" else 0.0
    (pv[P_ML], pv[P_SL]), (pv[P_MM], pv[P_SM]), (pv[P_MC], pv[P_SC]) = params.log_size
    return np.ascontiguousarray(np.cumsum(lam), np.float64), np.ascontiguousarray(theta, np.float64), pv


@njit(inline="always")
def _size(st, lognormal, unit, m, s, z):
    if lognormal:
        x = math.floor(math.exp(m + s * z) + 0.5)
        return np.int64(x) if x >= 1.0 else np.int64(1)
    return unit


@njit(inline="always")
def _emit(i, t, typ, s, p, q, dist, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt, log,
          nlog):
    ok = _apply_message(i, wcnt[i, W_MSGS], t, np.int64(typ), np.int64(s), p, q, px, sz, dq, nl, orders, fills,
                        es, acct, cnt, rng, lat, cfg, qpow)
    if ok:
        wcnt[i, W_MSGS] += 1
        if nl[i, 0] > 0 and nl[i, 1] > 0 and px[i, 0, 0] >= px[i, 1, 0]:
            wcnt[i, W_CROSSED] += 1
        k = nlog[i]
        if k < log.shape[1]:
            log[i, k, L_T] = t
            log[i, k, L_TYPE] = typ
            log[i, k, L_SIDE] = s
            log[i, k, L_PRICE] = p
            log[i, k, L_SIZE] = q
            log[i, k, L_DIST] = dist
            nlog[i] = k + 1
    return ok


@njit(inline="always")
def _side_rate(i, s, ref, px, sz, nl, theta):
    """sum over side ``s``'s levels of ``theta(d) * shares``, ``d`` the distance from ``ref`` (the
    opposite best) clipped to ``1..D``."""
    D = theta.shape[0]
    r = 0.0
    for j in range(nl[i, s]):
        d = (ref - px[i, s, j]) if s == BID else (px[i, s, j] - ref)
        d = 1 if d < 1 else (D if d > D else d)
        r += theta[d - 1] * sz[i, s, j]
    return r


@njit(cache=True, _nrt=False)
def _cst_env(i, until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
             cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, k_ev, tdec):
    """Env ``i``'s flow before ``until[i]``; with ``k_ev > 0``, stop right after its ``k_ev``-th market
    event instead (the bound becomes one ns past that event: the agent's events before it still run)
    and write the bound reached into ``tdec[i]``."""
    mode = cfg[CF_MODE]
    D = lam_cum.shape[0]
    lam_tot = lam_cum[D - 1]
    mu = pv[P_MU]
    unit = np.int64(pv[P_UNIT])
    inv_lot = pv[P_INV_LOT]
    lognormal = pv[P_LOGNORMAL] != 0.0
    st = wrng[i]
    t_end = until[i]
    t0i = w0[i]
    tw = wt[i]
    if es[i, ES_FROZEN] != 0:
        if k_ev > 0:
            tdec[i] = t0i + np.int64(tw)
        return
    t_next = agent_until(i, t0i + np.int64(tw), px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    # total cancel rates per side (lots/s), kept up to date message by message; a side is recomputed
    # from its levels when the opposite best moved, when a level may have left the depth window, and
    # after an agent event
    cb = 0.0
    ca = 0.0
    dirty_b = True
    dirty_a = True
    nev = 0
    done = False  # the k_ev-th event was applied: only the agent's events before t_end are left
    while es[i, ES_FROZEN] == 0:
        if nl[i, 0] > 0:
            wref[i, 0] = px[i, 0, 0]
        if nl[i, 1] > 0:
            wref[i, 1] = px[i, 1, 0]
        bb = wref[i, 0]
        ba = wref[i, 1]
        if dirty_b:
            cb = _side_rate(i, BID, ba, px, sz, nl, theta) * inv_lot
            dirty_b = False
        if dirty_a:
            ca = _side_rate(i, ASK, bb, px, sz, nl, theta) * inv_lot
            dirty_a = False
        if cb < 0.0:
            cb = 0.0
        if ca < 0.0:
            ca = 0.0
        R = 2.0 * lam_tot + 2.0 * mu + cb + ca
        t_new = tw
        tm = np.int64(bk.INT_MAX)
        if not done:
            t_new = tw + exponential(st) * 1e9 / R
            tm = t0i + np.int64(t_new) if t_new < 4.0e18 else np.int64(bk.INT_MAX)
        if t_next < tm and t_next < t_end:
            # the agent acts first; the flow restarts from its time on the changed book (memoryless)
            ta = t_next
            t_next = agent_until(i, ta + 1, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng,
                                  lat, mode)
            if float(ta - t0i) > tw:
                tw = float(ta - t0i)
            wcnt[i, W_REDRAWS] += 1
            dirty_b = True
            dirty_a = True
            continue
        if tm >= t_end:
            tw = float(t_end - t0i)
            break
        tw = t_new
        u = uniform(st) * R
        z = normal(st) if lognormal else 0.0
        ev = False  # the event reached the book
        # the event's messages go through one _emit call site below (the engine's message routine is
        # inlined there once, not once per kind): ``kind`` says what follows the message, ``typ, s, p,
        # q, dd`` are the message; a market order loops there, one message per level taken
        kind = K_NONE
        typ = MSG_SUBMIT
        s = BID
        p = np.int64(0)
        q = np.int64(0)
        dd = np.int64(0)
        full = False
        lo = 0
        take = np.int64(0)
        left = np.int64(0)
        if u < 2.0 * lam_tot:  # limit order
            is_bid = u < lam_tot
            v = u if is_bid else u - lam_tot
            lo = 0
            hi = D - 1
            while lo < hi:  # first k with lam_cum[k] > v
                mid = (lo + hi) >> 1
                if lam_cum[mid] > v:
                    hi = mid
                else:
                    lo = mid + 1
            q = _size(st, lognormal, unit, pv[P_ML], pv[P_SL], z)
            dd = np.int64(lo + 1)
            if is_bid:
                wcnt[i, W_LIMIT_BID] += 1
                p = ba - (lo + 1)
                if p >= 1:
                    s = BID
                    full = nl[i, BID] == px.shape[2]
                    kind = K_LIMIT_BID
                    ev = True
            else:
                wcnt[i, W_LIMIT_ASK] += 1
                p = bb + lo + 1
                s = ASK
                full = nl[i, ASK] == px.shape[2]
                kind = K_LIMIT_ASK
                ev = True
        elif u - 2.0 * lam_tot < 2.0 * mu:  # market order: buy hits the asks, sell hits the bids
            u -= 2.0 * lam_tot
            s = ASK if u < mu else BID
            wcnt[i, W_MARKET_BUY if s == ASK else W_MARKET_SELL] += 1
            if nl[i, s] == 0:
                wcnt[i, W_REJECTED] += 1
            else:
                ev = True
                left = _size(st, lognormal, unit, pv[P_MM], pv[P_SM], z)
                typ = MSG_EXEC
                kind = K_MARKET
        else:
            u -= 2.0 * lam_tot
            u -= 2.0 * mu
            if u < cb:
                s = BID
            else:
                s = ASK
                u -= cb
            # the level whose cumulative cancel rate first exceeds u (float edge: the last positive one)
            acc = 0.0
            jj = -1
            dj = 0
            sgn = 1 if s == BID else -1
            ref = ba if s == BID else bb
            for j in range(nl[i, s]):
                draw = sgn * (ref - px[i, s, j])
                d = 1 if draw < 1 else (D if draw > D else draw)
                r = theta[d - 1] * sz[i, s, j] * inv_lot
                if r > 0.0:
                    jj = j
                    dj = draw
                    acc += r
                    if acc > u:
                        break
            if jj >= 0:
                wcnt[i, W_CANCEL_BID if s == BID else W_CANCEL_ASK] += 1
                q = _size(st, lognormal, unit, pv[P_MC], pv[P_SC], z)
                if q > sz[i, s, jj]:
                    q = sz[i, s, jj]
                if jj == 0 and q == sz[i, s, 0]:  # the touch empties: the other side's distances move
                    if s == BID:
                        dirty_a = True
                    else:
                        dirty_b = True
                dc = theta[(1 if dj < 1 else (D if dj > D else dj)) - 1] * q * inv_lot
                if s == BID:
                    cb -= dc
                else:
                    ca -= dc
                typ = MSG_DELETE
                p = px[i, s, jj]
                dd = np.int64(dj)
                kind = K_CANCEL
                ev = True
        while kind != K_NONE and (kind != K_MARKET or (left > 0 and nl[i, s] > 0 and es[i, ES_FROZEN] == 0)):
            if kind == K_MARKET:
                take = sz[i, s, 0]
                if take > left:
                    take = left
                if take == sz[i, s, 0]:  # the touch empties: the other side's distances move
                    if s == BID:
                        dirty_a = True
                    else:
                        dirty_b = True
                dd = (ba - px[i, s, 0]) if s == BID else (px[i, s, 0] - bb)
                dc = theta[(1 if dd < 1 else (D if dd > D else dd)) - 1] * take * inv_lot
                if s == BID:
                    cb -= dc
                else:
                    ca -= dc
                p = px[i, s, 0]
                q = take
            _emit(i, tm, typ, s, p, q, dd, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt,
                  log, nlog)
            if kind == K_MARKET:
                left -= q
            elif kind == K_LIMIT_BID:
                if full:
                    dirty_b = True
                else:
                    cb += theta[lo] * q * inv_lot
                if p > bb or nl[i, BID] == 1:
                    dirty_a = True
                kind = K_NONE
            elif kind == K_LIMIT_ASK:
                if full:
                    dirty_a = True
                else:
                    ca += theta[lo] * q * inv_lot
                if p < ba or nl[i, ASK] == 1:
                    dirty_b = True
                kind = K_NONE
            else:
                kind = K_NONE
        if ev:
            wcnt[i, W_EVENTS] += 1
            nev += 1
            if nev == k_ev:  # the decision follows this event: one ns past its time
                done = True
                t_end = tm + 1
    wt[i] = tw
    if es[i, ES_FROZEN] == 0:
        agent_until(i, t_end, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    if k_ev > 0:
        tdec[i] = t_end


@njit(cache=True)
def cst_advance(until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg,
                qpow, wrng, w0, wt, wref, wcnt, log, nlog):
    """Run every env's CST flow and its agent's events strictly before ``until[i]`` (ns).

    ``lam_cum, theta, pv``: :func:`world_params`; ``px .. qpow``: the :class:`Book`'s arrays;
    ``wrng (n, 4)`` uint64 the world's streams, ``w0 (n,)`` int64 clock origin (ns, the episode
    start), ``wt (n,)`` float64 world clock (ns since ``w0``), ``wref
    (n, 2)`` int64 last best bid / ask (ticks), ``wcnt (n, N_WCNT)``, ``log (n, cap, N_LCOL)``
    (``cap`` may be 0) and ``nlog (n,)``. One thread."""
    no_dec = np.zeros(1, np.int64)  # the decision-time output of advance_events: not written here
    for i in range(px.shape[0]):
        _cst_env(i, until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
                 cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, np.int64(0), no_dec)


@njit(cache=True, parallel=True)
def cst_advance_parallel(until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng,
                         lat, cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog):
    """:func:`cst_advance` over Numba's threads (each env touches only its own rows and stream,
    so results do not depend on the thread count)."""
    no_dec = np.zeros(1, np.int64)  # the decision-time output of advance_events: not written here
    for i in prange(px.shape[0]):
        _cst_env(np.int64(i), until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
                 cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, np.int64(0), no_dec)


@njit(cache=True)
def cst_advance_events(k_ev, until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt,
                       rng, lat, cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, tdec):
    """Run every env's CST flow and its agent's events until the env has applied ``k_ev >= 1`` market
    events (``W_EVENTS``), stopping right after the ``k_ev``-th: ``tdec[i]`` (int64 ns) is then one ns
    past its time, and the agent's events before ``tdec[i]`` have run, as :func:`cst_advance` with that
    bound would run them. ``until[i]`` is a bound the flow never reaches (the session end): an env whose
    ``k_ev``-th event would come at or after it runs as :func:`cst_advance` to ``until[i]``, and
    ``tdec[i] = until[i]``. Either way the world clock ``wt`` ends at ``tdec[i]`` (the waiting time
    after it is drawn afresh: exact for the Poisson flow). Other arguments: :func:`cst_advance`'s. One thread."""
    for i in range(px.shape[0]):
        _cst_env(i, until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
                 cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, k_ev, tdec)


@njit(cache=True, parallel=True)
def cst_advance_events_parallel(k_ev, until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct,
                                cnt, rng, lat, cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, tdec):
    """:func:`cst_advance_events` over Numba's threads (equal to it bit for bit)."""
    for i in prange(px.shape[0]):
        _cst_env(np.int64(i), until, lam_cum, theta, pv, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
                 cfg, qpow, wrng, w0, wt, wref, wcnt, log, nlog, k_ev, tdec)


def replay_and_ticker(data) -> tuple:
    """The :class:`~lobworld.envs.tick.ReplayWorld` of a tick env's ``data`` (None: the shipped GOOG
    hour) and the ticker whose shipped model a generated world uses: ``"AMZN"`` when the file's name
    starts with ``AMZN``, else ``"GOOG"``."""
    from lobworld.envs.tick import ReplayWorld

    rw = ReplayWorld.from_path(data)
    name = pathlib.Path(str(data)).name.upper() if data is not None else "GOOG"
    return rw, ("AMZN" if name.startswith("AMZN") else "GOOG")


def _ny_ns(day: str, hms: str) -> int:
    import pandas as pd

    return int(pd.Timestamp(f"{day} {hms}", tz="America/New_York").tz_convert("UTC").value)


class CSTWorld:
    """The Cont-Stoikov-Talreja flow as a tick world (``world="parametric"``).

    Arguments
        ``params``: a :class:`CSTParams` (``load_fitted_cst("GOOG")`` ...). ``data``: a
        :class:`~lobworld.envs.replay.ReplayData` (a LOBSTER day): each episode starts from the
        file's book at the last row at or before its start time, and the episode window is the
        file's hours; None: every episode starts from the default book (``start_lots`` lots at
        every distance ``1..min(max_distance, depth)`` behind a ``start_spread``-tick spread
        around ``start_mid`` ticks) and the window is 09:30-16:00 New York time of ``day``.
        ``record``: messages kept per env in ``log`` (0: none). ``parallel``: force the serial
        or the ``prange`` kernel (None: ``prange`` for 2 envs or more when Numba has threads).

    Random stream
        Env ``i`` draws from its own xoshiro stream ``wrng[i]``. :meth:`reset_rows` derives it
        from the book's streams of that env (``SeedSequence`` of a tag and their 12 words), so a
        seeded env gets the same flow bit for bit and one env's flow never depends on another's;
        :meth:`seed` sets it from an explicit seed instead.
    """

    name = "parametric"

    def __init__(self, params: CSTParams, data=None, *, day: str = "2012-06-21", start_mid: int = 57_000,
                 start_spread: int = 2, start_lots: float = 5.0, record: int = 0, parallel: bool | None = None):
        if not isinstance(params, CSTParams):
            raise CSTWorldError(f"params: must be a CSTParams, got {type(params).__name__}")
        if isinstance(record, bool) or not isinstance(record, (int, np.integer)) or record < 0:
            raise CSTWorldError(f"record: must be an int >= 0 (messages kept per env), got {record!r}")
        if isinstance(start_spread, bool) or not isinstance(start_spread, (int, np.integer)) or start_spread < 1:
            raise CSTWorldError(f"start_spread: must be an int >= 1 (ticks), got {start_spread!r}")
        if not (isinstance(start_lots, (int, float)) and math.isfinite(start_lots) and start_lots > 0):
            raise CSTWorldError(f"start_lots: must be a number > 0 (lots), got {start_lots!r}")
        self.params = params
        self.data = data
        self.tick_size = float(params.tick_size)
        if data is not None and abs(float(data.tick_size) - self.tick_size) > 1e-12:
            raise CSTWorldError(f"data: tick size {data.tick_size} USD differs from the params' {self.tick_size}")
        self.levels = int(data.levels) if data is not None else min(MAX_DEPTH, params.max_distance)
        self.record = int(record)
        self.parallel = parallel
        self.start_mid, self.start_spread, self.start_lots = int(start_mid), int(start_spread), float(start_lots)
        self.lam_cum, self.theta, self.pv = world_params(params)
        if data is not None:
            self._bounds = (int(data.tape.t[0]), int(data.tape.t[-1]))
        else:
            self._bounds = (_ny_ns(day, "09:30:00"), _ny_ns(day, "16:00:00"))
        self._n = 0

    @classmethod
    def from_config(cls, config) -> "CSTWorld":
        """The world of a tick env's config: ``config.data`` (None: the shipped GOOG hour) gives the
        start books and the window; the params are the shipped fit of the file's ticker (its name
        starts with ``GOOG_`` or ``AMZN_``; GOOG otherwise)."""
        rw, ticker = replay_and_ticker(config.data)
        return cls(load_fitted_cst(ticker), rw.data)

    # ------------------------------------------------------------------ TickWorld
    def bounds(self) -> tuple[int, int]:
        return self._bounds

    def book_config(self, base: BookConfig) -> BookConfig:
        depth = max(base.depth, min(MAX_DEPTH, self.params.max_distance), self.levels)
        return replace(base, depth=min(depth, MAX_DEPTH), mode="live", tick_size=self.tick_size)

    def _alloc(self, n: int) -> None:
        if self._n == n:
            return
        self._n = n
        self.wrng = np.zeros((n, 4), np.uint64)
        self.wt = np.zeros(n, np.float64)
        self.w0 = np.zeros(n, np.int64)
        self.wref = np.zeros((n, 2), np.int64)
        self.wcnt = np.zeros((n, N_WCNT), np.int64)
        self.log = np.zeros((n, self.record, N_LCOL), np.int64)
        self.nlog = np.zeros(n, np.int64)
        self._t_stop = np.zeros(n, np.int64)
        self._tdec = np.zeros(n, np.int64)

    def seed(self, envs, seeds) -> None:
        """Set the world streams of ``envs`` from ``SeedSequence(seeds[j])`` (after :meth:`reset_rows`)."""
        from lobworld.envs.rng import seed_state

        for i, s in zip(np.atleast_1d(envs), np.atleast_1d(seeds)):
            self.wrng[int(i)] = seed_state(int(s), 1)[0]

    def reset_rows(self, book: Book, envs: np.ndarray, t0: np.ndarray) -> None:
        self._alloc(book.n_envs)
        envs = np.asarray(envs, np.int64)
        t0 = np.asarray(t0, np.int64)
        D = book.px.shape[2]
        if self.data is not None:
            d = self.data
            rows = np.maximum(np.searchsorted(d.tape.t, t0, side="right").astype(np.int64) - 1, 0)
            bk.load_rows(envs, rows, d.fpx, d.fsz, book.px, book.sz, book.dq, book.nl)
        else:
            m = min(self.params.max_distance, D)
            unit = int(self.pv[P_UNIT])
            q = int(max(1, round(self.start_lots * unit)))
            bb = self.start_mid - self.start_spread // 2
            ba = bb + self.start_spread
            book.px[envs] = 0
            book.sz[envs] = 0
            book.dq[envs] = 0
            book.px[envs, BID, :m] = bb - np.arange(m)
            book.px[envs, ASK, :m] = ba + np.arange(m)
            book.sz[envs, :, :m] = q
            book.nl[envs] = m
        book.es[envs, ES_LAST_T] = t0
        for i in envs:  # references for a side that is empty at the start: one tick from the other
            b = int(book.px[i, BID, 0]) if book.nl[i, BID] else 0
            a = int(book.px[i, ASK, 0]) if book.nl[i, ASK] else 0
            if not (b or a):
                raise CSTWorldError(f"reset_rows: env {int(i)}'s start book is empty on both sides")
            self.wref[i] = (b if b else a - 1, a if a else b + 1)
            words = [_STREAM_TAG] + [int(w) for w in book.rng[i].ravel()]
            st = np.random.SeedSequence(words).generate_state(4, np.uint64)
            if not st.any():
                st[0] = np.uint64(0x9E3779B97F4A7C15)
            self.wrng[i] = st
        self.w0[envs] = t0
        self.wt[envs] = 0.0
        self.wcnt[envs] = 0
        self.nlog[envs] = 0

    def _par(self, book: Book) -> bool:
        return (book.n_envs >= 2 and numba.get_num_threads() > 1) if self.parallel is None else bool(self.parallel)

    def _args(self, book: Book) -> tuple:
        return (self.lam_cum, self.theta, self.pv, book.px, book.sz, book.dq, book.nl, book.orders, book.pend,
                book.cmds, book.fills, book.es, book.acct, book.cnt, book.rng, book.lat, book.cfg,
                float(book.config.queue_power), self.wrng, self.w0, self.wt, self.wref, self.wcnt, self.log, self.nlog)

    def advance(self, book: Book, until: np.ndarray) -> None:
        if self._n != book.n_envs:
            raise CSTWorldError(f"advance: the world was reset for {self._n} envs, the book has {book.n_envs}")
        until = np.array(np.broadcast_to(np.asarray(until, np.int64), (book.n_envs,)))  # writable: one compiled signature
        (cst_advance_parallel if self._par(book) else cst_advance)(until, *self._args(book))
        self._check(book)

    def advance_events(self, book: Book, k: int) -> np.ndarray:
        """Run every env's flow until it has applied exactly ``k`` more market events (``W_EVENTS``: a
        limit order, a cancel, or a market order with every level it takes, at one ns), with the agent's
        events interleaved in time order as in :meth:`advance`, and stop right after the ``k``-th.
        Returns each env's decision time ``(n,)`` int64 ns: one ns past that event's time, where the
        world clock now stands (the next event comes after it). An env whose ``k``-th event would come at
        or after the session end ``bounds()[1]`` runs to the session end as :meth:`advance` would (fewer
        than ``k`` events) and returns it."""
        if self._n != book.n_envs:
            raise CSTWorldError(f"advance_events: the world was reset for {self._n} envs, the book has "
                                f"{book.n_envs}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise CSTWorldError(f"advance_events: k must be an int >= 1 (market events), got {k!r}")
        self._t_stop[:] = self._bounds[1]
        (cst_advance_events_parallel if self._par(book) else cst_advance_events)(
            np.int64(k), self._t_stop, *self._args(book), self._tdec)
        self._check(book)
        return self._tdec.copy()

    def _check(self, book: Book) -> None:
        if book.config.strict and (book.es[:, bk.ES_ERR] != 0).any():
            i = int(np.flatnonzero(book.es[:, bk.ES_ERR] != 0)[0])
            code = int(book.es[i, bk.ES_ERR])
            raise CSTWorldError(f"advance: env {i}: generated message {int(book.es[i, bk.ES_ERR_ROW])} was "
                                f"rejected by the book engine (rule {code}); this is a bug of the generator")

    # ------------------------------------------------------------------ inspection
    def messages(self, env: int) -> np.ndarray:
        """A copy of env ``env``'s recorded messages ``(m, N_LCOL)`` int64 (columns ``L_*``: ns,
        LOBSTER type, side 0 bid / 1 ask, price ticks, shares, distance from the opposite best in ticks); at most ``record`` since its reset."""
        return self.log[env, : int(self.nlog[env])].copy()

"""Numba kernels of the tick-level envs (:mod:`lobworld.envs.tick`).

The envs drive a :class:`~lobworld.envs.book.Book` batch: before each decision interval a
*pre* kernel turns the agents' actions into book commands (written straight into the
book's command buffer, validated here), the world advances every book to the end of the
interval, and a *post* kernel computes rewards, episode ends, statistics and observations.
Every array has the env index first; nothing is allocated per env. Column layouts are the
named constants below.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lobworld.envs import book_kernels as bk
from lobworld.envs.rng import uniform

# ---- per-env float state ``sv (n, N_SV)`` -----------------------------------------------
(V_STEP, V_MID0, V_MID_PREV, V_W_PREV, V_COST_PREV, V_VOL2, V_EXECVOL_PREV, V_MSG_PREV, V_MAXABS,
 V_SUMINV, V_RET, V_FORCED, V_FORCED_BEYOND, V_SUMDW, V_SUMDW2, V_EXECVOL, V_MSGS,
 V_FILLS_SEEN, V_ADVERSE, V_WAIT_NS_SH, V_PASSIVE_REC) = range(21)
N_SV = 21
#: market-making fill statistics over the recorded passive fills (``max_fills`` per episode):
#: ``V_ADVERSE`` ticks x shares of mid move against each fill over the interval it happened in
#: (decision-boundary mid before it to the one after: + = adverse), ``V_WAIT_NS_SH`` ns x shares
#: from the order going live to the fill, ``V_PASSIVE_REC`` their shares, ``V_FILLS_SEEN`` records read

# ---- per-env int64 times ``tns (n, 3)`` --------------------------------------------------
T_START, T_NOW, T_END = 0, 1, 2
#: ``T_END``: the session end of a generated world under ``decide_every="events"`` (a decision that
#: reaches it ends the episode as the horizon does); ``bk.INT_MAX`` otherwise (never reached)

# ---- cfg (float64 vector) ------------------------------------------------------------------
(C_DT_NS, C_HORIZON, C_TICK, C_LIMIT, C_PHI, C_DT_S, C_SCALE, C_VOL_ALPHA, C_QTY, C_SIDE,
 C_MSG_SCALE, C_EVENTS) = range(12)
N_CFG = 12
#: ``cfg[C_EVENTS]``: 0 -- a decision every ``dt`` (interval ``C_DT_S`` seconds); 1 -- a decision after
#: every k market messages (the interval is the time between the two decisions)

# ---- agent slots ---------------------------------------------------------------------------
SLOT_BID, SLOT_ASK = 0, 1  #: market making: one quote per side
SLOT_CHILD, SLOT_MARKET = 0, 1  #: execution: the resting child limit order, the market child

# ---- execution child-order types (action component 1) -----------------------------------
X_MARKET, X_TOUCH, X_LEVEL, X_CANCEL = 0, 1, 2, 3


@njit(inline="always")
def _working(orders, i, k):
    st = orders[i, k, bk.O_STATUS]
    return st == bk.ST_PENDING or st == bk.ST_LIVE


@njit(inline="always")
def _push(cmds, es, i, t, kind, slot, side, price, size):
    """Append one command (``PM_ABS``) to env ``i``'s buffer, compacting it when needed.
    Returns False when the buffer is full (the command is dropped)."""
    head = es[i, bk.ES_CMD_HEAD]
    tail = es[i, bk.ES_CMD_TAIL]
    if head == tail:
        head = 0
        tail = 0
    cap = cmds.shape[1]
    if tail >= cap:
        m = tail - head
        for r in range(m):
            for c in range(bk.N_CCOL):
                cmds[i, r, c] = cmds[i, head + r, c]
        head = 0
        tail = m
        if tail >= cap:
            es[i, bk.ES_CMD_HEAD] = head
            es[i, bk.ES_CMD_TAIL] = tail
            return False
    cmds[i, tail, bk.C_T] = t
    cmds[i, tail, bk.C_KIND] = kind
    cmds[i, tail, bk.C_SLOT] = slot
    cmds[i, tail, bk.C_SIDE] = side
    cmds[i, tail, bk.C_PMODE] = bk.PM_ABS
    cmds[i, tail, bk.C_PRICE] = price
    cmds[i, tail, bk.C_SIZE] = size
    es[i, bk.ES_CMD_HEAD] = head
    es[i, bk.ES_CMD_TAIL] = tail + 1
    return True


@njit(inline="always")
def _round(x):
    return np.int64(np.floor(x + 0.5))


@njit(cache=True)
def draw_starts(mask, rng_state, stream, lo, hi, out):
    """``out[i] = lo + floor(u * (hi - lo + 1))`` ns for every env with ``mask[i]`` (one uniform
    from stream ``stream`` of env ``i``)."""
    span = hi - lo + 1
    for i in range(mask.shape[0]):
        if mask[i]:
            u = uniform(rng_state[i, stream])
            d = np.int64(u * span)
            if d >= span:
                d = span - 1
            out[i] = lo + d


@njit(cache=True)
def reset_book_rows(mask, px, sz, dq, nl, orders, pend, cmds, fills, acct, cnt, es):
    """Empty the books, orders, commands, fills, accounts and cursors of the envs ``mask``
    (as :meth:`Book.reset` does, but keeping their random streams running)."""
    for i in range(mask.shape[0]):
        if not mask[i]:
            continue
        px[i] = 0
        sz[i] = 0
        dq[i] = 0
        nl[i] = 0
        orders[i] = 0
        pend[i] = 0
        cmds[i] = 0
        fills[i] = 0
        acct[i] = 0
        cnt[i] = 0
        es[i] = 0
        es[i, bk.ES_TRADING] = 1
        es[i, bk.ES_HEAD_VIEW] = bk.NO_VIEW
        es[i, bk.ES_PREV_EXEC_T] = -1
        es[i, bk.ES_LAST_T] = -(2 ** 62)
        es[i, bk.ES_LAST_ARR] = -(2 ** 62)
        cnt[i, bk.FIRST_MISMATCH_ROW] = -1


# =========================================================================================
# pre: actions -> commands
# =========================================================================================
@njit(cache=True)
def mm_commands(act, tns, md_ns, px, nl, orders, cmds, es, sent):
    """Market making: ``act[i] = [bid_level, ask_level, bid_size, ask_size, keep_bid, keep_ask]``
    (levels in ticks from the own-side touch, negative improves; sizes in shares; keep >= 0.5
    sends nothing). Commands are decided at ``T_NOW + md_ns[i]`` (when the agent has seen the
    book of ``T_NOW``). ``sent[i]`` counts the commands written."""
    for i in range(act.shape[0]):
        t = tns[i, T_NOW] + md_ns[i]
        m = 0
        for s in range(2):
            k = s
            if act[i, 4 + s] >= 0.5:
                continue
            size = _round(act[i, 2 + s])
            work = _working(orders, i, k)
            if size <= 0:
                if work:
                    m += _push(cmds, es, i, t, bk.K_CANCEL, k, s, 0, 0)
                continue
            if nl[i, s] == 0:
                continue  # no own-side touch to measure the level from: nothing sent
            lvl = _round(act[i, s])
            touch = px[i, s, 0]
            price = touch - lvl if s == bk.BID else touch + lvl
            if nl[i, 1 - s] > 0:  # post-only: never at or through the opposite best
                opp = px[i, 1 - s, 0]
                if s == bk.BID and price >= opp:
                    price = opp - 1
                elif s == bk.ASK and price <= opp:
                    price = opp + 1
            if price <= 0:
                continue
            if work:
                if orders[i, k, bk.O_PRICE] == price and orders[i, k, bk.O_REM] == size:
                    continue  # unchanged: keeps its place
                m += _push(cmds, es, i, t, bk.K_MODIFY, k, s, price, size)
            else:
                m += _push(cmds, es, i, t, bk.K_LIMIT, k, s, price, size)
        sent[i] = m


@njit(cache=True)
def exec_commands(act, tns, md_ns, px, nl, orders, cmds, es, acct, cfg, sent):
    """Execution: ``act[i] = [fraction, type, level]`` (see ``TickExecutionEnv``). The child
    size is ``round(fraction * R)``, ``R`` the shares still to execute; a new child never
    makes the working shares exceed ``R`` (so no fill race can over-execute the order)."""
    Q = np.int64(cfg[C_QTY])
    side = np.int64(cfg[C_SIDE])  # the child's side: BID buys, ASK sells
    for i in range(act.shape[0]):
        t = tns[i, T_NOW] + md_ns[i]
        pos = acct[i, bk.A_POS]
        done = pos if side == bk.BID else -pos
        R = Q - done
        m = 0
        typ = _round(act[i, 1])
        child_rem = orders[i, SLOT_CHILD, bk.O_REM] if _working(orders, i, SLOT_CHILD) else 0
        mkt_rem = orders[i, SLOT_MARKET, bk.O_REM] if _working(orders, i, SLOT_MARKET) else 0
        free = R - child_rem - mkt_rem
        q = _round(act[i, 0] * R)
        if typ == X_CANCEL:
            if child_rem > 0:
                m += _push(cmds, es, i, t, bk.K_CANCEL, SLOT_CHILD, side, 0, 0)
        elif typ == X_MARKET:
            if q > free:
                q = free
            if q > 0 and mkt_rem == 0:
                m += _push(cmds, es, i, t, bk.K_MARKET, SLOT_MARKET, side, 0, q)
        elif q > 0 and nl[i, side] > 0:
            lvl = 0 if typ == X_TOUCH else _round(act[i, 2])
            touch = px[i, side, 0]
            price = touch - lvl if side == bk.BID else touch + lvl
            if price > 0:
                if child_rem > 0:
                    if orders[i, SLOT_CHILD, bk.O_PRICE] == price and q <= child_rem:
                        if q < child_rem:  # same price, fewer shares: keeps its place
                            m += _push(cmds, es, i, t, bk.K_REDUCE, SLOT_CHILD, side, 0, child_rem - q)
                    else:  # cancel now; the replacement is sent at a later decision
                        m += _push(cmds, es, i, t, bk.K_CANCEL, SLOT_CHILD, side, 0, 0)
                else:
                    if q > free:
                        q = free
                    if q > 0:
                        m += _push(cmds, es, i, t, bk.K_LIMIT, SLOT_CHILD, side, price, q)
        sent[i] = m


# =========================================================================================
# observation
# =========================================================================================
@njit(inline="always")
def _mid(px, nl, i, prev):
    if nl[i, 0] > 0 and nl[i, 1] > 0:
        return 0.5 * (px[i, 0, 0] + px[i, 1, 0])
    return prev


@njit(cache=True)
def write_obs(mask, n_levels, px, sz, dq, nl, orders, sv, cfg, first, lat_obs, obs):
    """Observation of every env with ``mask[i]`` (layout: ``TickMarketMakingEnv``'s table).
    ``first[i]`` is the family's own column (inventory ratio or remaining fraction)."""
    scale = cfg[C_SCALE]
    L = n_levels
    for i in range(mask.shape[0]):
        if not mask[i]:
            continue
        for s in range(2):
            for j in range(L):
                v = 0.0
                if j < nl[i, s]:
                    v = (sz[i, s, j] - dq[i, s, j]) / scale
                    if v < 0.0:
                        v = 0.0
                obs[i, s * L + j] = v
        c = 2 * L
        b0 = obs[i, 0] if nl[i, 0] > 0 else 0.0
        a0 = obs[i, L] if nl[i, 1] > 0 else 0.0
        spread = 0.0
        if nl[i, 0] > 0 and nl[i, 1] > 0:
            spread = px[i, 1, 0] - px[i, 0, 0]
        obs[i, c] = spread
        obs[i, c + 1] = (b0 - a0) / (b0 + a0) if b0 + a0 > 0 else 0.0
        obs[i, c + 2] = sv[i, V_STEP] / cfg[C_HORIZON]
        obs[i, c + 3] = first[i]
        c += 4
        for k in range(2):
            if orders[i, k, bk.O_STATUS] == bk.ST_LIVE:
                s = orders[i, k, bk.O_SIDE]
                obs[i, c] = orders[i, k, bk.O_AHEAD] / scale
                obs[i, c + 1] = orders[i, k, bk.O_REM] / scale
                d = 0.0
                if nl[i, s] > 0:
                    d = (px[i, s, 0] - orders[i, k, bk.O_PRICE]) if s == bk.BID else \
                        (orders[i, k, bk.O_PRICE] - px[i, s, 0])
                obs[i, c + 2] = d
            else:
                obs[i, c] = -1.0
                obs[i, c + 1] = 0.0
                obs[i, c + 2] = 0.0
            c += 3
        obs[i, c] = sv[i, V_EXECVOL] / scale
        obs[i, c + 1] = sv[i, V_MSGS] / cfg[C_MSG_SCALE]
        obs[i, c + 2] = np.sqrt(sv[i, V_VOL2])
        obs[i, c + 3] = lat_obs[i]


@njit(cache=True)
def start_rows(mask, px, nl, cnt, sv):
    """Episode start of the envs ``mask`` (their books already set): arrival mid, zeroed stats."""
    for i in range(mask.shape[0]):
        if not mask[i]:
            continue
        sv[i] = 0.0
        mid = _mid(px, nl, i, 0.0)
        sv[i, V_MID0] = mid
        sv[i, V_MID_PREV] = mid
        sv[i, V_EXECVOL_PREV] = cnt[i, bk.EXEC_VOL_VIS] + cnt[i, bk.EXEC_VOL_HID]
        sv[i, V_MSG_PREV] = cnt[i, bk.N_MSGS]


@njit(inline="always")
def _flow(i, px, nl, cnt, sv, cfg):
    """Step bookkeeping shared by both families: step count, flow, volatility; returns the mid."""
    sv[i, V_STEP] += 1.0
    ev = cnt[i, bk.EXEC_VOL_VIS] + cnt[i, bk.EXEC_VOL_HID]
    sv[i, V_EXECVOL] = ev - sv[i, V_EXECVOL_PREV]
    sv[i, V_EXECVOL_PREV] = ev
    ms = cnt[i, bk.N_MSGS]
    sv[i, V_MSGS] = ms - sv[i, V_MSG_PREV]
    sv[i, V_MSG_PREV] = ms
    mid = _mid(px, nl, i, sv[i, V_MID_PREV])
    dm = mid - sv[i, V_MID_PREV]
    a = cfg[C_VOL_ALPHA]
    sv[i, V_VOL2] = (1.0 - a) * sv[i, V_VOL2] + a * dm * dm
    sv[i, V_MID_PREV] = mid
    return mid


# =========================================================================================
# post: rewards, episode ends
# =========================================================================================
@njit(inline="always")
def _advance_clock(i, until, tns, cfg):
    """Move env ``i``'s clock to the end of the interval ``until[i]``; return the interval (seconds)."""
    if cfg[C_EVENTS] != 0.0:
        el = (until[i] - tns[i, T_NOW]) * 1e-9
        tns[i, T_NOW] = until[i]
        return el
    tns[i, T_NOW] += np.int64(cfg[C_DT_NS])
    return cfg[C_DT_S]


@njit(inline="always")
def _fill_stats(i, mid_prev, mid, fills, es, orders, sv):
    """Fold the passive fills recorded since the last decision into env ``i``'s adverse-selection and
    queue-wait sums (see ``V_ADVERSE``)."""
    n = es[i, bk.ES_NFILL]
    if n > fills.shape[1]:
        n = fills.shape[1]
    for r in range(np.int64(sv[i, V_FILLS_SEEN]), n):
        if fills[i, r, bk.F_KIND] != bk.FILL_PASSIVE:
            continue
        q = fills[i, r, bk.F_QTY]
        move = mid - mid_prev
        sv[i, V_ADVERSE] += -move * q if fills[i, r, bk.F_SIDE] == bk.BID else move * q
        k = fills[i, r, bk.F_SLOT]
        w = fills[i, r, bk.F_T] - orders[i, k, bk.O_T_LIVE]
        if w > 0:
            sv[i, V_WAIT_NS_SH] += w * q
        sv[i, V_PASSIVE_REC] += q
    if n > sv[i, V_FILLS_SEEN]:
        sv[i, V_FILLS_SEEN] = n


@njit(cache=True)
def mm_post(px, nl, cnt, acct, fills, es, orders, sv, tns, until, cfg, reward, terminated, truncated, first):
    """Market making after the interval ending at ``until[i]`` (ns): ``reward = dW - phi * q^2 * dt``
    (USD, ``dt`` the interval in seconds), ``W = (cash + q * mid) * tick``; terminated when
    ``|q| > inventory_limit``, truncated at the horizon (or at ``T_END``)."""
    tick = cfg[C_TICK]
    for i in range(px.shape[0]):
        el = _advance_clock(i, until, tns, cfg)
        mid_prev = sv[i, V_MID_PREV]
        mid = _flow(i, px, nl, cnt, sv, cfg)
        _fill_stats(i, mid_prev, mid, fills, es, orders, sv)
        q = acct[i, bk.A_POS]
        w = (acct[i, bk.A_CASH] + q * mid) * tick
        dw = w - sv[i, V_W_PREV]
        sv[i, V_W_PREV] = w
        pen = cfg[C_PHI] * q * q * el
        r = dw - pen
        reward[i] = r
        sv[i, V_RET] += r
        sv[i, V_SUMDW] += dw
        sv[i, V_SUMDW2] += dw * dw
        aq = abs(q)
        if aq > sv[i, V_MAXABS]:
            sv[i, V_MAXABS] = aq
        sv[i, V_SUMINV] += q
        terminated[i] = aq > cfg[C_LIMIT]
        truncated[i] = sv[i, V_STEP] >= cfg[C_HORIZON] or tns[i, T_NOW] >= tns[i, T_END]
        first[i] = q / cfg[C_LIMIT]


@njit(cache=True)
def exec_post(px, sz, dq, nl, orders, es, cnt, acct, sv, tns, until, cfg, reward, terminated, truncated, first):
    """Execution after the interval: at the horizon (or at ``T_END``), cancel the working children and sell
    (buy) what is left into the book at once (forced completion); ``reward`` = minus the
    shortfall increment in bps of the arrival notional; terminated when the order is done."""
    Q = np.int64(cfg[C_QTY])
    side = np.int64(cfg[C_SIDE])
    for i in range(px.shape[0]):
        _advance_clock(i, until, tns, cfg)
        _flow(i, px, nl, cnt, sv, cfg)
        pos = acct[i, bk.A_POS]
        done = pos if side == bk.BID else -pos
        if done < Q and (sv[i, V_STEP] >= cfg[C_HORIZON] or tns[i, T_NOW] >= tns[i, T_END]):
            for k in range(orders.shape[1]):  # the episode ends: working children are withdrawn
                st = orders[i, k, bk.O_STATUS]
                if st == bk.ST_PENDING or st == bk.ST_LIVE:
                    if st == bk.ST_LIVE:
                        es[i, bk.ES_NLIVE] -= 1
                    orders[i, k, bk.O_STATUS] = bk.ST_CANCELLED
                    orders[i, k, bk.O_CXL] += orders[i, k, bk.O_REM]
                    orders[i, k, bk.O_REM] = 0
            left = Q - done
            os_ = 1 - side
            j = 0
            last = 0
            while left > 0 and j < nl[i, os_]:
                p = px[i, os_, j]
                last = p
                avail = sz[i, os_, j] - dq[i, os_, j]
                if avail > 0:
                    x = avail if avail < left else left
                    dq[i, os_, j] += x
                    _forced_fill(i, side, p, x, acct)
                    left -= x
                    sv[i, V_FORCED] += x
                j += 1
            if left > 0:  # beyond the visible book: one tick worse than its deepest level
                if last == 0:
                    last = np.int64(sv[i, V_MID_PREV])
                p = last + 1 if side == bk.BID else last - 1
                if p < 1:
                    p = 1
                _forced_fill(i, side, p, left, acct)
                sv[i, V_FORCED] += left
                sv[i, V_FORCED_BEYOND] += left
            pos = acct[i, bk.A_POS]
            done = pos if side == bk.BID else -pos
        mid0 = sv[i, V_MID0]
        cost = -acct[i, bk.A_CASH] - mid0 * pos  # ticks x shares, + = cost
        r = -(cost - sv[i, V_COST_PREV]) * 1e4 / (Q * mid0) if mid0 > 0 else 0.0
        sv[i, V_COST_PREV] = cost
        reward[i] = r
        sv[i, V_RET] += r
        terminated[i] = done >= Q
        truncated[i] = False
        first[i] = (Q - done) / Q


@njit(inline="always")
def _forced_fill(i, side, p, x, acct):
    if side == bk.BID:
        acct[i, bk.A_CASH] -= p * x
        acct[i, bk.A_POS] += x
        acct[i, bk.A_BUY_QTY] += x
    else:
        acct[i, bk.A_CASH] += p * x
        acct[i, bk.A_POS] -= x
        acct[i, bk.A_SELL_QTY] += x
    acct[i, bk.A_AGGR_QTY] += x
    acct[i, bk.A_NFILLS] += 1

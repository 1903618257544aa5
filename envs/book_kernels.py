"""Numba kernels of the event-level order book (:mod:`lobworld.envs.book`).

Every array has the env index ``i`` first and every kernel allocates nothing per
message. The column constants below are the one definition of each layout; the
Python side (:mod:`lobworld.envs.book`, :mod:`lobworld.envs.replay`) only packs and
unpacks them. The full specification (message semantics, queue models, latency and
race rules, the replay rule) is ``docs/book.md``; the short version:

* the *market book* (``px``, ``sz``: ``(n, 2, D)`` int64, side 0 bid / 1 ask, level 0
  the touch, prices in ticks, sizes in shares, ``nl[i, s]`` levels in use) holds only
  the message stream's own liquidity: the agent's resting orders are not in it;
* ``dq`` (same shape) holds, in replay mode, the shares the agent's aggressive orders
  took from a level; the agent sees ``sz - dq`` and the deficit is cleared by the
  stream's next message at that level (its update replaces them);
* the agent's orders live in a fixed table ``orders (n, K, N_OCOL)``, its messages in
  flight in a FIFO ring ``pend (n, P, N_PCOL)``, its decisions in a command buffer
  ``cmds (n, C, N_CCOL)``, its fills in ``fills (n, F, N_FCOL)``;
* per-env scalars are ``es (n, N_ES)``, the agent's account ``acct (n, N_ACC)``,
  counters ``cnt (n, N_CNT)`` (error counts first, indexed by the error code).

The helpers on the per-message and per-agent-event paths (the file check, the agent's
decisions, arrivals, takes and queue updates) are ``inline="always"``: Numba passes every
array argument as its full descriptor (a 3-d array is 11 machine words), so a call with a
dozen arrays pushes well over a hundred words, and that, not the arithmetic, was most of the
cost of an agent command. They are inlined into :func:`_run_env`, which is compiled with
``_nrt=False`` (it allocates nothing, and the views it takes then need no reference counts).
The rare paths (a fill, an error, a resynchronisation) stay separate ``_nrt=False`` functions
so the kernels compile in reasonable time.

Times are int64 nanoseconds; latencies ``lat (n, 4)`` float64 nanoseconds (entry mean,
entry jitter, market-data mean, market-data jitter). Random streams per env
(``rng (n, N_STREAMS, 4)``, :mod:`lobworld.envs.rng`): ``S_ENTRY`` order-entry latency,
``S_MD`` market-data latency, ``S_QUEUE`` the probabilistic queue model. Each command
draws exactly one entry and one market-data latency whatever happens to it, and each
fill one market-data latency, so the draws of one stream never depend on another.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lobworld.envs.rng import normal, uniform

# ---- sides, message types --------------------------------------------------------------
BID, ASK = 0, 1
MSG_SUBMIT, MSG_CANCEL, MSG_DELETE, MSG_EXEC, MSG_HIDDEN, MSG_CROSS, MSG_HALT = 1, 2, 3, 4, 5, 6, 7

# ---- random streams ------------------------------------------------------------------------
S_ENTRY, S_MD, S_QUEUE = 0, 1, 2
N_STREAMS = 3

# ---- agent order table ``orders (n, K, N_OCOL)`` int64 ---------------------------------
(O_STATUS, O_SIDE, O_PRICE, O_QTY, O_REM, O_AHEAD, O_FILLED, O_T_SENT, O_T_LIVE, O_T_FILLED,
 O_T_DONE, O_ID, O_CXL) = range(13)
N_OCOL = 13
#: shares of an order always add up: ``O_QTY == O_FILLED + O_REM + O_CXL`` (cancelled shares,
#: including the rest of a cancelled, rejected or exhausted market order)
#: order status (``O_STATUS``)
ST_EMPTY, ST_PENDING, ST_LIVE, ST_FILLED, ST_CANCELLED, ST_REJECTED = 0, 1, 2, 3, 4, 5

# ---- agent commands ``cmds (n, C, N_CCOL)`` int64 --------------------------------------
C_T, C_KIND, C_SLOT, C_SIDE, C_PMODE, C_PRICE, C_SIZE = range(7)
N_CCOL = 7
#: command kinds (``C_KIND``)
K_LIMIT, K_MARKET, K_CANCEL, K_REDUCE, K_MODIFY, K_QUOTE = 1, 2, 3, 4, 5, 6
#: ``K_QUOTE`` is a modify when the slot holds a working order at decision time, else a new limit
#: price modes (``C_PMODE``): absolute ticks; own-side touch + offset ticks towards the
#: other side (0 joins the best, 1 improves it by a tick, -1 one tick behind); opposite
#: touch + offset ticks away from the mid (0 = at the opposite best: marketable)
PM_ABS, PM_TOUCH, PM_CROSS = 0, 1, 2

# ---- messages in flight ``pend (n, P, N_PCOL)`` int64 ----------------------------------
P_T_ARR, P_KIND, P_SLOT, P_PRICE, P_SIZE, P_ID, P_T_SENT = range(7)
N_PCOL = 7

# ---- fill log ``fills (n, F, N_FCOL)`` int64 -------------------------------------------
F_T, F_T_SEEN, F_SLOT, F_SIDE, F_PRICE, F_QTY, F_KIND, F_ID = range(8)
N_FCOL = 8
FILL_PASSIVE, FILL_AGGRESSIVE = 0, 1

# ---- per-env scalars ``es (n, N_ES)`` int64 --------------------------------------------
(ES_POS, ES_CMD_HEAD, ES_CMD_TAIL, ES_HEAD_VIEW, ES_PEND_HEAD, ES_PEND_COUNT, ES_LAST_T, ES_LAST_ARR,
 ES_NLIVE, ES_TRADING, ES_NFILL, ES_ERR, ES_ERR_ROW, ES_FROZEN, ES_NEXT_ID, ES_PREV_EXEC_T,
 ES_PREV_EXEC_SIDE, ES_HEAD_ENTRY, ES_AG_DIRTY, ES_AG_LO_B, ES_AG_HI_B, ES_AG_LO_A, ES_AG_HI_A) = range(23)
N_ES = 23
#: ``ES_AG_*``: lowest / highest price of the agent's live bids and asks (a filter that skips
#: the order table for messages that cannot touch it), recomputed when ``ES_AG_DIRTY``
NO_VIEW = -(2 ** 62)  #: ``ES_HEAD_VIEW`` before the head command's latencies are drawn

# ---- agent account ``acct (n, N_ACC)`` int64 -------------------------------------------
A_CASH, A_POS, A_BUY_QTY, A_SELL_QTY, A_PASSIVE_QTY, A_AGGR_QTY, A_NFILLS = range(7)
N_ACC = 7
#: ``A_CASH`` is in ticks x shares (sell fills add price x qty, buy fills subtract it)

# ---- counters ``cnt (n, N_CNT)`` int64; the first N_ERR are error counts by code --------
(E_NONE, E_TOO_MUCH, E_NO_LEVEL, E_CROSSED, E_TIME, E_BAD_TYPE, E_BAD_SIZE, E_BAD_CMD) = range(8)
N_ERR = 8
(N_MSGS, N_EXEC_MSGS, EXEC_VOL_VIS, EXEC_VOL_HID, N_TRADES, N_RESYNC, N_TOP_MISMATCH,
 N_LEVEL_MISMATCH, FIRST_MISMATCH_ROW, N_BEYOND, N_CANCEL_FAILED, N_CMD_REJECTED, N_FILL_OVERFLOW,
 SHARES_IN, SHARES_OUT, N_HIDDEN_MSGS, N_PUSHED_OUT) = range(N_ERR, N_ERR + 17)
N_CNT = N_ERR + 17

# ---- cfg (int64 vector) ---------------------------------------------------------------
CF_QMODEL, CF_MODE, CF_STRICT, CF_VERIFY, CF_RESYNC = range(5)
N_CFG = 5
QM_BEHIND, QM_PROB = 0, 1  #: queue models
MODE_REPLAY, MODE_LIVE = 0, 1  #: how the agent's aggressive orders take liquidity

# ---- latency columns ``lat (n, 4)`` float64 ns ------------------------------------------
L_ENTRY, L_ENTRY_JIT, L_MD, L_MD_JIT = range(4)

INT_MAX = 2 ** 62


# =========================================================================================
# level primitives (one side: px, sz, dq rows of length D; n levels in use)
# =========================================================================================
@njit(inline="always")
def _better(side, p, q):
    """True when price ``p`` is more aggressive than ``q`` on ``side`` (bid: higher)."""
    return p > q if side == BID else p < q


@njit(inline="always")
def _find(px, i, s, n, p):
    """Index of level ``p`` on side ``s`` of env ``i``, or ``-(j + 1)`` where ``j`` is where it
    would be inserted (the 3-d arrays are indexed directly: no views, no reference counting)."""
    for j in range(n):
        q = px[i, s, j]
        if q == p:
            return j
        if _better(s, p, q):
            return -(j + 1)
    return -(n + 1)


@njit(inline="always")
def _insert(px, sz, dq, i, s, n, j, p, q):
    """Insert level ``(p, q)`` at index ``j``; the deepest level falls off a full side.
    Returns the new level count (``n`` when full)."""
    D = px.shape[2]
    last = n if n < D else D - 1
    for k in range(last, j, -1):
        px[i, s, k] = px[i, s, k - 1]
        sz[i, s, k] = sz[i, s, k - 1]
        dq[i, s, k] = dq[i, s, k - 1]
    px[i, s, j] = p
    sz[i, s, j] = q
    dq[i, s, j] = 0
    return n + 1 if n < D else D


@njit(inline="always")
def _remove(px, sz, dq, i, s, n, j):
    for k in range(j, n - 1):
        px[i, s, k] = px[i, s, k + 1]
        sz[i, s, k] = sz[i, s, k + 1]
        dq[i, s, k] = dq[i, s, k + 1]
    px[i, s, n - 1] = 0
    sz[i, s, n - 1] = 0
    dq[i, s, n - 1] = 0
    return n - 1


@njit(inline="always")
def _visible(px, sz, dq, nl, i, s, p):
    """Shares the agent sees at price ``p`` (market size minus its own deficit)."""
    j = _find(px, i, s, nl[i, s], p)
    if j < 0:
        return 0
    v = sz[i, s, j] - dq[i, s, j]
    return v if v > 0 else 0


@njit(inline="always")
def _draw_lat(st, mean, jit):
    """``max(0, mean + jit * z)`` rounded to integer ns (always one normal draw)."""
    z = normal(st)
    v = mean + jit * z
    if v < 0.0:
        v = 0.0
    return np.int64(v + 0.5)


# =========================================================================================
# fills
# =========================================================================================
@njit(cache=True, _nrt=False)
def _fill(i, k, t, price, q, kind, orders, fills, es, acct, cnt, rng, lat):
    es[i, ES_AG_DIRTY] = 1
    side = orders[i, k, O_SIDE]
    orders[i, k, O_REM] -= q
    orders[i, k, O_FILLED] += q
    orders[i, k, O_T_FILLED] = t
    if side == BID:
        acct[i, A_CASH] -= price * q
        acct[i, A_POS] += q
        acct[i, A_BUY_QTY] += q
    else:
        acct[i, A_CASH] += price * q
        acct[i, A_POS] -= q
        acct[i, A_SELL_QTY] += q
    if kind == FILL_PASSIVE:
        acct[i, A_PASSIVE_QTY] += q
    else:
        acct[i, A_AGGR_QTY] += q
    acct[i, A_NFILLS] += 1
    seen = t + _draw_lat(rng[i, S_MD], lat[i, L_MD], lat[i, L_MD_JIT])
    nf = es[i, ES_NFILL]
    if nf < fills.shape[1]:
        fills[i, nf, F_T] = t
        fills[i, nf, F_T_SEEN] = seen
        fills[i, nf, F_SLOT] = k
        fills[i, nf, F_SIDE] = side
        fills[i, nf, F_PRICE] = price
        fills[i, nf, F_QTY] = q
        fills[i, nf, F_KIND] = kind
        fills[i, nf, F_ID] = orders[i, k, O_ID]
        es[i, ES_NFILL] = nf + 1
    else:
        cnt[i, N_FILL_OVERFLOW] += 1
    if orders[i, k, O_REM] == 0 and orders[i, k, O_STATUS] == ST_LIVE:
        orders[i, k, O_STATUS] = ST_FILLED
        orders[i, k, O_T_DONE] = t
        es[i, ES_NLIVE] -= 1


@njit(inline="always")
def _take(i, k, t, limit, has_limit, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode):
    """Walk the side opposite order ``k`` from the touch while the level price is not worse
    than ``limit`` (every level when ``has_limit`` is False); fill at each level's price."""
    s = orders[i, k, O_SIDE]
    os_ = 1 - s
    j = 0
    while orders[i, k, O_REM] > 0 and j < nl[i, os_]:
        p = px[i, os_, j]
        if has_limit and _better(s, p, limit):
            # a bid walks asks up to its limit: stop once the ask is above the limit
            break
        avail = sz[i, os_, j] - dq[i, os_, j]
        if avail <= 0:
            j += 1
            continue
        rem = orders[i, k, O_REM]
        q = avail if avail < rem else rem
        if mode == MODE_REPLAY:
            dq[i, os_, j] += q
            j += 1
        else:
            sz[i, os_, j] -= q
            if sz[i, os_, j] == 0:
                nl[i, os_] = _remove(px, sz, dq, i, os_, nl[i, os_], j)
            else:
                j += 1
        _fill(i, k, t, p, q, FILL_AGGRESSIVE, orders, fills, es, acct, cnt, rng, lat)


@njit(inline="always")
def _go_live(i, k, t, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode):
    """A limit order reaches the book at ``t``: trade what crosses, rest the remainder at
    the back of its level (shares ahead = the visible size there)."""
    o = orders[i, k]
    s = o[O_SIDE]
    p = o[O_PRICE]
    o[O_STATUS] = ST_LIVE
    o[O_T_LIVE] = t
    es[i, ES_NLIVE] += 1
    # limit on the other side: a buy at p crosses asks at prices <= p
    _take(i, k, t, p, True, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode)
    if o[O_REM] > 0:
        o[O_AHEAD] = _visible(px, sz, dq, nl, i, s, p)


# =========================================================================================
# the agent's queue positions on a stream message
# =========================================================================================
@njit(inline="always")
def _agent_on_message(i, t, typ, s, p, q, v_before, v_after, orders, fills, es, acct, cnt, rng, lat,
                      qmodel, qpow):
    K = orders.shape[1]
    for k in range(K):
        if orders[i, k, O_STATUS] != ST_LIVE:
            continue
        P = orders[i, k, O_PRICE]
        if orders[i, k, O_SIDE] == s:
            if P == p:
                if typ == MSG_CANCEL or typ == MSG_DELETE:
                    a = orders[i, k, O_AHEAD]
                    if qmodel == QM_PROB and a > 0 and v_before > 0:
                        x = a / v_before
                        if x > 1.0:
                            x = 1.0
                        if uniform(rng[i, S_QUEUE]) < x ** qpow:
                            a = a - q if a > q else 0
                    orders[i, k, O_AHEAD] = a if a < v_after else v_after
                elif typ == MSG_EXEC:
                    a = orders[i, k, O_AHEAD]
                    x = a if a < q else q
                    orders[i, k, O_AHEAD] = a - x
                    left = q - x
                    rem = orders[i, k, O_REM]
                    f = left if left < rem else rem
                    if f > 0:
                        _fill(i, k, t, P, f, FILL_PASSIVE, orders, fills, es, acct, cnt, rng, lat)
                    if orders[i, k, O_AHEAD] > v_after:
                        orders[i, k, O_AHEAD] = v_after
                elif orders[i, k, O_AHEAD] > v_after:
                    orders[i, k, O_AHEAD] = v_after
            elif (typ == MSG_EXEC or typ == MSG_HIDDEN) and _better(s, P, p):
                # the aggressor traded through the agent's better price: it would have met the agent first
                rem = orders[i, k, O_REM]
                f = q if q < rem else rem
                if f > 0:
                    _fill(i, k, t, P, f, FILL_PASSIVE, orders, fills, es, acct, cnt, rng, lat)
        elif typ == MSG_SUBMIT:
            # an order arriving on the other side at a price that crosses the agent's resting one
            cross = p <= P if s == ASK else p >= P
            if cross:
                rem = orders[i, k, O_REM]
                f = q if q < rem else rem
                if f > 0:
                    _fill(i, k, t, P, f, FILL_PASSIVE, orders, fills, es, acct, cnt, rng, lat)


@njit(inline="always")
def _agent_ranges(i, orders, es):
    lo_b = INT_MAX
    hi_b = -INT_MAX
    lo_a = INT_MAX
    hi_a = -INT_MAX
    for k in range(orders.shape[1]):
        if orders[i, k, O_STATUS] == ST_LIVE:
            P = orders[i, k, O_PRICE]
            if orders[i, k, O_SIDE] == BID:
                lo_b = P if P < lo_b else lo_b
                hi_b = P if P > hi_b else hi_b
            else:
                lo_a = P if P < lo_a else lo_a
                hi_a = P if P > hi_a else hi_a
    es[i, ES_AG_LO_B] = lo_b
    es[i, ES_AG_HI_B] = hi_b
    es[i, ES_AG_LO_A] = lo_a
    es[i, ES_AG_HI_A] = hi_a
    es[i, ES_AG_DIRTY] = 0


@njit(inline="always")
def _agent_relevant(i, typ, s, p, es):
    """False when stream message ``(typ, s, p)`` cannot touch any live agent order: not at a
    price of the agent's on its side, not an execution through one, not a submit crossing one."""
    lo_b = es[i, ES_AG_LO_B]
    hi_b = es[i, ES_AG_HI_B]
    lo_a = es[i, ES_AG_LO_A]
    hi_a = es[i, ES_AG_HI_A]
    if s == BID:
        if typ == MSG_EXEC or typ == MSG_HIDDEN:
            if hi_b >= p:
                return True
        elif lo_b <= p and p <= hi_b:
            return True
        return typ == MSG_SUBMIT and lo_a <= p
    if typ == MSG_EXEC or typ == MSG_HIDDEN:
        if lo_a <= p:
            return True
    elif lo_a <= p and p <= hi_a:
        return True
    return typ == MSG_SUBMIT and hi_b >= p


@njit(cache=True, _nrt=False)
def _clamp_side(i, s, px, sz, dq, nl, orders):
    """After a resynchronisation: shares ahead never exceed what is visible at the price."""
    for k in range(orders.shape[1]):
        o = orders[i, k]
        if o[O_STATUS] == ST_LIVE and o[O_SIDE] == s:
            v = _visible(px, sz, dq, nl, i, s, o[O_PRICE])
            if o[O_AHEAD] > v:
                o[O_AHEAD] = v


# =========================================================================================
# one stream message
# =========================================================================================
@njit(cache=True, _nrt=False)
def _error(i, code, row, es, cnt, strict):
    cnt[i, code] += 1
    if es[i, ES_ERR] == 0:
        es[i, ES_ERR] = code
        es[i, ES_ERR_ROW] = row
    if strict:
        es[i, ES_FROZEN] = 1


@njit(inline="always")
def _apply_message(i, row, t, typ, s, p, q, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg,
                   qpow):
    """Validate, then apply stream message ``row``; returns False when it was rejected."""
    strict = cfg[CF_STRICT] != 0
    if t < es[i, ES_LAST_T]:
        _error(i, E_TIME, row, es, cnt, strict)
        return False
    if typ < 1 or typ > 7:
        _error(i, E_BAD_TYPE, row, es, cnt, strict)
        return False
    if typ == MSG_HALT:
        es[i, ES_LAST_T] = t
        es[i, ES_TRADING] = p
        cnt[i, N_MSGS] += 1
        return True
    if s != BID and s != ASK:
        _error(i, E_BAD_TYPE, row, es, cnt, strict)
        return False
    if q <= 0 and typ != MSG_CROSS:
        _error(i, E_BAD_SIZE, row, es, cnt, strict)
        return False
    n = nl[i, s]
    D = px.shape[2]
    v_before = 0
    v_after = 0
    if typ == MSG_SUBMIT:
        o = 1 - s
        if nl[i, o] > 0:
            b = px[i, o, 0]
            if (s == BID and p >= b) or (s == ASK and p <= b):
                # a limit order at or through the opposite best would have traded: the book would cross
                _error(i, E_CROSSED, row, es, cnt, strict)
                return False
        j = _find(px, i, s, n, p)
        if j >= 0:
            v_before = sz[i, s, j] - dq[i, s, j]
            sz[i, s, j] += q
            dq[i, s, j] = 0
            v_after = sz[i, s, j]
        else:
            j = -j - 1
            if j >= D:
                cnt[i, N_BEYOND] += 1  # beyond the depth window: not kept
            else:
                if n == D:
                    cnt[i, N_PUSHED_OUT] += 1
                nl[i, s] = _insert(px, sz, dq, i, s, n, j, p, q)
                v_after = q
        cnt[i, SHARES_IN] += q
    elif typ == MSG_CANCEL or typ == MSG_DELETE or typ == MSG_EXEC:
        j = _find(px, i, s, n, p)
        if j < 0:
            _error(i, E_NO_LEVEL, row, es, cnt, strict)
            return False
        if q > sz[i, s, j]:
            _error(i, E_TOO_MUCH, row, es, cnt, strict)
            return False
        v_before = sz[i, s, j] - dq[i, s, j]
        if v_before < 0:
            v_before = 0
        sz[i, s, j] -= q
        dq[i, s, j] = 0
        v_after = sz[i, s, j]
        if v_after == 0:
            nl[i, s] = _remove(px, sz, dq, i, s, n, j)
        cnt[i, SHARES_OUT] += q
        if typ == MSG_EXEC:
            cnt[i, EXEC_VOL_VIS] += q
    elif typ == MSG_HIDDEN:
        cnt[i, EXEC_VOL_HID] += q
        cnt[i, N_HIDDEN_MSGS] += 1
    if typ == MSG_EXEC or typ == MSG_HIDDEN:
        cnt[i, N_EXEC_MSGS] += 1
        if not (es[i, ES_PREV_EXEC_T] == t and es[i, ES_PREV_EXEC_SIDE] == s):
            cnt[i, N_TRADES] += 1
        es[i, ES_PREV_EXEC_T] = t
        es[i, ES_PREV_EXEC_SIDE] = s
    else:
        es[i, ES_PREV_EXEC_T] = -1
    es[i, ES_LAST_T] = t
    cnt[i, N_MSGS] += 1
    if es[i, ES_NLIVE] > 0 and typ != MSG_CROSS:
        if es[i, ES_AG_DIRTY] != 0:
            _agent_ranges(i, orders, es)
        if _agent_relevant(i, typ, s, p, es):
            _agent_on_message(i, t, typ, s, p, q, v_before, v_after, orders, fills, es, acct, cnt, rng,
                              lat, cfg[CF_QMODEL], qpow)
    return True


# =========================================================================================
# replay against the orderbook file: verification and resynchronisation
# =========================================================================================
@njit(cache=True, _nrt=False)
def _resync_side(i, s, row, px, sz, dq, nl, fpx, fsz):
    """Replace the top of side ``s`` by the file's levels of ``row``; keep the engine's
    deeper levels beyond the file's last one (when the file's window is full)."""
    L = fpx.shape[2]
    D = px.shape[2]
    spx = px[i, s]
    ssz = sz[i, s]
    sdq = dq[i, s]
    n = nl[i, s]
    m = 0
    while m < L and fsz[row, s, m] > 0:
        m += 1
    j0 = n
    if m == L and D > L:
        last = fpx[row, s, L - 1]
        j0 = 0
        while j0 < n and not _better(s, last, spx[j0]):
            j0 += 1
    keep = n - j0
    if keep > D - m:
        keep = D - m
    if keep > 0:
        if m > j0:
            for k in range(keep - 1, -1, -1):
                spx[m + k] = spx[j0 + k]
                ssz[m + k] = ssz[j0 + k]
                sdq[m + k] = sdq[j0 + k]
        elif m < j0:
            for k in range(keep):
                spx[m + k] = spx[j0 + k]
                ssz[m + k] = ssz[j0 + k]
                sdq[m + k] = sdq[j0 + k]
    for k in range(m):
        if not (k < n and spx[k] == fpx[row, s, k]):
            sdq[k] = 0
        spx[k] = fpx[row, s, k]
        ssz[k] = fsz[row, s, k]
        if sdq[k] > ssz[k]:
            sdq[k] = ssz[k]
    new_n = m + (keep if keep > 0 else 0)
    for k in range(new_n, n):
        spx[k] = 0
        ssz[k] = 0
        sdq[k] = 0
    nl[i, s] = new_n


@njit(inline="always")
def _side_matches(i, s, row, px, sz, nl, fpx, fsz, depth):
    """True when the first ``depth`` levels of side ``s`` equal file row ``row`` (a level the
    engine does not hold must be empty in the file)."""
    n = nl[i, s]
    m = depth if depth < n else n
    bad = 0
    for k in range(m):
        bad |= (fsz[row, s, k] ^ sz[i, s, k]) | (fpx[row, s, k] ^ px[i, s, k])
    for k in range(m, depth):
        bad |= fsz[row, s, k]
    return bad == 0


@njit(inline="always")
def _check_row(i, row, px, sz, dq, nl, orders, es, cnt, fpx, fsz, entry, erow, verify):
    """Compare the book after message ``row`` with the file and resynchronise what differs.

    A side where a level entered from beyond the window (``entry`` bit) and whose levels
    differ from the file is taken from the file (``N_RESYNC`` counts those rows). With
    ``verify`` every row is compared: a top-of-book difference counts in ``N_TOP_MISMATCH``,
    a difference on a side without an entering level in ``N_LEVEL_MISMATCH`` (an engine or
    data error; that side is resynchronised too, so one difference does not cascade).
    """
    L = fpx.shape[2]
    e = np.int64(entry[row])
    if e == 0 and not verify:
        return
    fr = erow[row] if erow.shape[0] > 0 else row  # the file's row (a compact file holds entry rows only)
    if verify:
        ok_top = _side_matches(i, BID, fr, px, sz, nl, fpx, fsz, 1) and \
            _side_matches(i, ASK, fr, px, sz, nl, fpx, fsz, 1)
        if not ok_top:
            cnt[i, N_TOP_MISMATCH] += 1
            if cnt[i, FIRST_MISMATCH_ROW] < 0:
                cnt[i, FIRST_MISMATCH_ROW] = row
    fix = 0
    genuine = False
    for s in range(2):
        if verify or (e & (1 << s)):
            if not _side_matches(i, s, fr, px, sz, nl, fpx, fsz, L):
                fix |= 1 << s
                if not (e & (1 << s)):
                    genuine = True
    if genuine:
        cnt[i, N_LEVEL_MISMATCH] += 1
        if cnt[i, FIRST_MISMATCH_ROW] < 0:
            cnt[i, FIRST_MISMATCH_ROW] = row
    elif fix != 0:
        cnt[i, N_RESYNC] += 1
    for s in range(2):
        if fix & (1 << s):
            _resync_side(i, s, fr, px, sz, dq, nl, fpx, fsz)
            if es[i, ES_NLIVE] > 0:
                _clamp_side(i, s, px, sz, dq, nl, orders)


# =========================================================================================
# the agent's decisions and messages
# =========================================================================================
@njit(inline="always")
def _decide(i, t_view, px, sz, dq, nl, orders, pend, cmds, es, cnt, rng, lat):
    """Turn the head command into a message in flight (its latencies are already drawn)."""
    c = cmds[i, es[i, ES_CMD_HEAD]]
    es[i, ES_CMD_HEAD] += 1
    es[i, ES_HEAD_VIEW] = NO_VIEW
    t_dec = c[C_T]
    entry = es[i, ES_HEAD_ENTRY]
    kind = c[C_KIND]
    k = c[C_SLOT]
    K = orders.shape[1]
    if k < 0 or k >= K or kind < K_LIMIT or kind > K_QUOTE:
        cnt[i, N_CMD_REJECTED] += 1
        return
    o = orders[i, k]
    if kind == K_QUOTE:
        kind = K_MODIFY if (o[O_STATUS] == ST_PENDING or o[O_STATUS] == ST_LIVE) else K_LIMIT
    side = o[O_SIDE]
    if kind == K_LIMIT or kind == K_MARKET:
        side = c[C_SIDE]
        if side != BID and side != ASK:
            cnt[i, N_CMD_REJECTED] += 1
            return
    price = c[C_PRICE]
    pm = c[C_PMODE]
    if (kind == K_LIMIT or kind == K_MODIFY) and pm != PM_ABS:
        ref_side = side if pm == PM_TOUCH else 1 - side
        if nl[i, ref_side] == 0:
            cnt[i, N_CMD_REJECTED] += 1
            return
        ref = px[i, ref_side, 0]
        towards = 1 if side == BID else -1
        if pm == PM_TOUCH:
            price = ref + towards * c[C_PRICE]
        else:
            price = ref + towards * c[C_PRICE]
    size = c[C_SIZE]
    if kind == K_LIMIT or kind == K_MARKET or kind == K_MODIFY or kind == K_REDUCE:
        if size <= 0 or ((kind == K_LIMIT or kind == K_MODIFY) and price <= 0):
            cnt[i, E_BAD_CMD] += 1
            cnt[i, N_CMD_REJECTED] += 1
            return
    st = o[O_STATUS]
    if kind == K_LIMIT or kind == K_MARKET:
        if st == ST_PENDING or st == ST_LIVE:
            cnt[i, N_CMD_REJECTED] += 1  # the slot still holds a working order
            return
    elif o[O_ID] == 0:
        cnt[i, N_CMD_REJECTED] += 1  # nothing was ever sent from this slot
        return
    if es[i, ES_PEND_COUNT] >= pend.shape[1]:
        cnt[i, N_CMD_REJECTED] += 1
        return
    if kind == K_LIMIT or kind == K_MARKET:
        es[i, ES_NEXT_ID] += 1
        o[O_STATUS] = ST_PENDING
        o[O_SIDE] = side
        o[O_PRICE] = price if kind == K_LIMIT else 0
        o[O_QTY] = size
        o[O_REM] = size
        o[O_AHEAD] = 0
        o[O_FILLED] = 0
        o[O_CXL] = 0
        o[O_T_SENT] = t_dec
        o[O_T_LIVE] = -1
        o[O_T_FILLED] = -1
        o[O_T_DONE] = -1
        o[O_ID] = es[i, ES_NEXT_ID]
    t_arr = t_dec + entry
    if t_arr < es[i, ES_LAST_ARR]:
        t_arr = es[i, ES_LAST_ARR]  # one session: messages reach the venue in the order sent
    es[i, ES_LAST_ARR] = t_arr
    slot = es[i, ES_PEND_HEAD] + es[i, ES_PEND_COUNT]  # head < P and count < P: one wrap at most
    if slot >= pend.shape[1]:
        slot -= pend.shape[1]
    m = pend[i, slot]
    m[P_T_ARR] = t_arr
    m[P_KIND] = kind
    m[P_SLOT] = k
    m[P_PRICE] = price
    m[P_SIZE] = size
    m[P_ID] = o[O_ID]
    m[P_T_SENT] = t_dec
    es[i, ES_PEND_COUNT] += 1


@njit(inline="always")
def _arrive(i, px, sz, dq, nl, orders, pend, fills, es, acct, cnt, rng, lat, mode):
    """The oldest message in flight reaches the venue."""
    es[i, ES_AG_DIRTY] = 1
    h = es[i, ES_PEND_HEAD]
    m = pend[i, h]
    es[i, ES_PEND_HEAD] = h + 1 if h + 1 < pend.shape[1] else 0
    es[i, ES_PEND_COUNT] -= 1
    t = m[P_T_ARR]
    kind = m[P_KIND]
    k = m[P_SLOT]
    o = orders[i, k]
    if o[O_ID] != m[P_ID]:
        cnt[i, N_CANCEL_FAILED] += 1  # aimed at an older order of this slot
        return
    if kind == K_LIMIT or kind == K_MARKET:
        if es[i, ES_TRADING] != 1:
            o[O_STATUS] = ST_REJECTED
            o[O_T_DONE] = t
            o[O_CXL] += o[O_REM]
            o[O_REM] = 0
            return
        if kind == K_LIMIT:
            _go_live(i, k, t, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode)
        else:
            o[O_STATUS] = ST_LIVE
            o[O_T_LIVE] = t
            es[i, ES_NLIVE] += 1
            _take(i, k, t, 0, False, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode)
            if o[O_REM] > 0:  # the book ran out: the rest is cancelled
                o[O_STATUS] = ST_CANCELLED
                o[O_T_DONE] = t
                o[O_CXL] += o[O_REM]
                o[O_REM] = 0
                es[i, ES_NLIVE] -= 1
        return
    if o[O_STATUS] != ST_LIVE:
        cnt[i, N_CANCEL_FAILED] += 1  # the fill (or an earlier cancel) came first: it stands
        return
    if kind == K_CANCEL:
        o[O_STATUS] = ST_CANCELLED
        o[O_T_DONE] = t
        o[O_CXL] += o[O_REM]
        o[O_REM] = 0
        es[i, ES_NLIVE] -= 1
    elif kind == K_REDUCE:
        q = m[P_SIZE]
        if q >= o[O_REM]:
            o[O_CXL] += o[O_REM]
            o[O_REM] = 0
            o[O_STATUS] = ST_CANCELLED
            o[O_T_DONE] = t
            es[i, ES_NLIVE] -= 1
        else:
            o[O_REM] -= q  # keeps its place in the queue
            o[O_CXL] += q
    elif kind == K_MODIFY:
        p = m[P_PRICE]
        q = m[P_SIZE]
        if p == o[O_PRICE] and q <= o[O_REM]:
            o[O_CXL] += o[O_REM] - q
            o[O_REM] = q  # a size-down at the same price keeps its place
        else:
            # a price change (or a size-up) is a new order at the back: it loses its place
            es[i, ES_NLIVE] -= 1
            o[O_PRICE] = p
            o[O_T_SENT] = m[P_T_SENT]
            o[O_CXL] += o[O_REM]
            o[O_QTY] = o[O_FILLED] + o[O_CXL] + q
            o[O_REM] = q
            _go_live(i, k, t, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, mode)


@njit(inline="always")
def _agent_until(i, t_bound, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode):
    """Process the agent's decisions and arrivals strictly before ``t_bound`` in time order;
    return the time of the next one (``INT_MAX``: none)."""
    while True:
        tv = INT_MAX
        if es[i, ES_CMD_HEAD] < es[i, ES_CMD_TAIL]:
            if es[i, ES_HEAD_VIEW] == NO_VIEW:
                c = cmds[i, es[i, ES_CMD_HEAD]]
                md = _draw_lat(rng[i, S_MD], lat[i, L_MD], lat[i, L_MD_JIT])
                es[i, ES_HEAD_ENTRY] = _draw_lat(rng[i, S_ENTRY], lat[i, L_ENTRY], lat[i, L_ENTRY_JIT])
                es[i, ES_HEAD_VIEW] = c[C_T] - md
            tv = es[i, ES_HEAD_VIEW]
        ta = INT_MAX
        if es[i, ES_PEND_COUNT] > 0:
            ta = pend[i, es[i, ES_PEND_HEAD], P_T_ARR]
        if ta <= tv:
            if ta >= t_bound:
                return ta
            _arrive(i, px, sz, dq, nl, orders, pend, fills, es, acct, cnt, rng, lat, mode)
        else:
            if tv >= t_bound:
                return tv
            _decide(i, tv, px, sz, dq, nl, orders, pend, cmds, es, cnt, rng, lat)


@njit(cache=True, _nrt=False)
def agent_until(i, t_bound, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode):
    """:func:`_agent_until` as a call, for kernels outside this module that drive the book with
    their own flow (the generated tick worlds). Inlining it at each of their call sites would copy
    the whole agent machinery (decisions, arrivals, fills) into them several times over and
    multiply their compile time; a generated world's per-event cost (drawing the event) dwarfs
    the cost of the call."""
    return _agent_until(i, t_bound, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)


# =========================================================================================
# the batch kernels
# =========================================================================================
@njit(cache=True, _nrt=False)
def _run_env(i, stop, tt, ttype, tside, tpx, tsz, fpx, fsz, entry, erow, px, sz, dq, nl, orders, pend, cmds,
             fills, es, acct, cnt, rng, lat, cfg, qpow, t_flush):
    mode = cfg[CF_MODE]
    verify = cfg[CF_VERIFY] != 0
    resync = cfg[CF_RESYNC] != 0 or verify
    N = tt.shape[0]
    pos = es[i, ES_POS]
    end = stop[i]
    if end > N:
        end = N
    t_next = -INT_MAX  # time of the agent's next decision or arrival (unknown yet)
    while pos < end and es[i, ES_FROZEN] == 0:
        t = tt[pos]
        if t_next < t:
            t_next = _agent_until(i, t, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
        ok = _apply_message(i, pos, t, np.int64(ttype[pos]), np.int64(tside[pos]), tpx[pos], tsz[pos], px, sz,
                            dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow)
        if ok and resync and (verify or entry[pos] != 0):
            _check_row(i, pos, px, sz, dq, nl, orders, es, cnt, fpx, fsz, entry, erow, verify)
        if es[i, ES_FROZEN] == 0:
            pos += 1
    es[i, ES_POS] = pos
    if es[i, ES_FROZEN] == 0:
        tb = t_flush[i]
        _agent_until(i, tb, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)


@njit(cache=True)
def book_run(stop, tt, ttype, tside, tpx, tsz, fpx, fsz, entry, erow, px, sz, dq, nl, orders, pend, cmds, fills,
             es, acct, cnt, rng, lat, cfg, qpow, t_flush):
    """Advance every env ``i`` through tape rows ``es[i, ES_POS] .. stop[i] - 1``.

    Before each row the agent's decisions and arrivals strictly earlier than the row's time
    run; after the last row those strictly earlier than ``t_flush[i]``. ``fpx, fsz``
    ``(N, 2, L)`` and ``entry`` ``(N,)`` are the orderbook file (used when ``cfg[CF_VERIFY]``
    or ``cfg[CF_RESYNC]``; zero-size otherwise). ``erow`` ``(N,)`` int32, when not empty, maps
    tape row ``k`` to the row of ``fpx, fsz`` that holds its book: a compact file of the
    entry rows only (:func:`compact_file`; enough without ``cfg[CF_VERIFY]``). One thread.
    """
    for i in range(px.shape[0]):
        _run_env(i, stop, tt, ttype, tside, tpx, tsz, fpx, fsz, entry, erow, px, sz, dq, nl, orders, pend, cmds,
                 fills, es, acct, cnt, rng, lat, cfg, qpow, t_flush)


@njit(cache=True, parallel=True)
def book_run_parallel(stop, tt, ttype, tside, tpx, tsz, fpx, fsz, entry, erow, px, sz, dq, nl, orders, pend, cmds,
                      fills, es, acct, cnt, rng, lat, cfg, qpow, t_flush):
    """:func:`book_run` with the envs spread over Numba's threads (each env touches only its
    own rows and streams, so results do not depend on the thread count)."""
    for i in prange(px.shape[0]):
        # prange's index is unsigned: cast it, so the serial kernel's compiled _run_env is reused
        _run_env(np.int64(i), stop, tt, ttype, tside, tpx, tsz, fpx, fsz, entry, erow, px, sz, dq, nl, orders, pend, cmds,
                 fills, es, acct, cnt, rng, lat, cfg, qpow, t_flush)


@njit(cache=True)
def entry_flags(fpx, fsz, tside, tpx, ttype):
    """Rows where a level enters the file's depth window from beyond it.

    ``out[k]`` bit ``s`` is set when side ``s`` of file row ``k`` holds a price that is in
    neither row ``k - 1``'s window of that side nor message ``k``'s own price on that side:
    its size is in no message, so a replay must take it from the file. Row 0 is 0.
    """
    N = fpx.shape[0]
    L = fpx.shape[2]
    out = np.zeros(N, np.int8)
    for k in range(1, N):
        e = 0
        for s in range(2):
            for j in range(L):
                if fsz[k, s, j] == 0:
                    break
                p = fpx[k, s, j]
                if ttype[k] == MSG_SUBMIT and tside[k] == s and tpx[k] == p:
                    continue
                found = False
                for jj in range(L):
                    if fsz[k - 1, s, jj] == 0:
                        break
                    if fpx[k - 1, s, jj] == p:
                        found = True
                        break
                if not found:
                    e |= 1 << s
                    break
        out[k] = e
    return out


def compact_file(fpx, fsz, entry):
    """The rows of the orderbook file a replay without verification reads: ``(cpx, csz, erow)``
    with ``cpx, csz`` ``(M, 2, L)`` the file's rows where ``entry != 0`` (in order, the dtype
    of ``fpx, fsz``) and ``erow`` ``(N,)`` int32 the index of row ``k`` in them (-1 where
    ``entry[k] == 0``). A few MB that stay in cache where the whole file would not."""
    rows = np.flatnonzero(entry)
    erow = np.full(len(entry), -1, np.int32)
    erow[rows] = np.arange(len(rows), dtype=np.int32)
    return np.ascontiguousarray(fpx[rows]), np.ascontiguousarray(fsz[rows]), erow


@njit(cache=True)
def load_rows(envs, rows, fpx, fsz, px, sz, dq, nl):
    """Set the book of env ``envs[j]`` to file row ``rows[j]`` (deficits cleared)."""
    L = fpx.shape[2]
    D = px.shape[2]
    for j in range(envs.shape[0]):
        i = envs[j]
        r = rows[j]
        for s in range(2):
            m = 0
            for k in range(D):
                px[i, s, k] = 0
                sz[i, s, k] = 0
                dq[i, s, k] = 0
            for k in range(L if L < D else D):
                if fsz[r, s, k] > 0:
                    px[i, s, m] = fpx[r, s, k]
                    sz[i, s, m] = fsz[r, s, k]
                    m += 1
            nl[i, s] = m

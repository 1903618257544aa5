"""The tick GRU driving the event-level book engine: ``world="learned"``.

Description
    :class:`TickGRUWorld` is a :class:`~lobworld.envs.tick.TickWorld`: every market message of
    ``n_envs`` books of one :class:`~lobworld.envs.book.Book` batch is drawn by the shipped tick
    GRU (:mod:`lobworld.world_models.tick_sim`: its packed weights, forward cell, head rows and
    sampler are imported, not copied) on the env's *current* engine book and applied at once
    through the engine's own message routine (``mode="live"``), so the agent's orders, queue
    positions, latency and fills are the engine's. The market reacts to the agent in two ways,
    both learned, none put in:

    * the book context the GRU reads before every event (spread, top-5 sizes per side, touch
      imbalance) is that of the engine book *merged with the agent's resting orders* (its live
      limit orders' remaining shares added at their prices), so an agent quote that improves
      the touch is the touch the model sees, and shares the agent's market orders took are gone;
    * every agent arrival that changes the visible book is fed to the GRU as an event of its own
      (an *agent token*, below), exactly as such a message would appear in the tape.

    One top-level serial kernel (:func:`gru_advance`) and a ``prange`` one
    (:func:`gru_advance_parallel`) run the same per-env function, so they agree bit for bit; each
    env draws from its own xoshiro256** stream (:mod:`lobworld.envs.rng`); per-thread workspace
    rows, nothing allocated per message. With ``engine="batch"`` (or ``"auto"`` from
    :data:`BATCH_MIN_ENVS` envs on) the world runs the lockstep engine of :mod:`~lobworld.world_models.tick_gru_batch` instead:
    the same flow as a resumable state machine per env, with the GRU's products done as matrix
    products over the envs that wait for them (the same rules, counters and streams; float64, so
    equal to the per-env kernels up to summation order: the tests require identical streams).

One market event (per env, in this order)
    1. model input: the previous event's columns (as :mod:`~lobworld.world_models.tick_sim`
       builds them) and the merged book's context at the previous event's time; the GRU cell
       and the time head; one inter-arrival drawn (a mixture component, a normal: the same
       helper as the simulator). The draw is *pending* until applied: an :meth:`advance` that
       ends before it keeps it (the cell has consumed the previous event) for the next call;
    2. when the agent's next decision or arrival (the engine's latency model) comes first, the
       agent event runs. If it changed the visible book (an agent token), the pending draw is
       dropped and step 1 restarts with the token as the previous event; a decision that only
       puts a message in flight changes nothing and the draw stands;
    3. otherwise the marks are drawn from the heads (type, side given type, level, size bin:
       :func:`~lobworld.world_models.tick_sim.draw_event_marks`'s order) and turned into one
       engine message on the current book by the rules below.

Messages and the rules for events the book cannot take (counted in ``wcnt``, columns ``W_*``)
    The *reference* of a side is its merged best (engine or agent, whichever is better); for an
    empty side one tick inside the opposite merged best; with both empty the side's last best.
    A level is ticks behind the same-side reference (negative inside the spread).

    * cancel, delete or visible execution drawn on a side whose *engine* book is empty (the
      agent's orders cannot be cancelled or executed by the market flow except by the rule for
      executions below): the marks are **redrawn** from the same heads (rejection sampling, the
      draw conditioned on being possible; the time is kept), up to 16 tries, then a submit at
      level 0 (``W_REDRAW``, ``W_FORCED``);
    * submit (LOBSTER 1) at ``ref -/+ level``: a price at or through the opposite merged best
      (engine or agent) is moved to one tick inside it (``W_CROSS_CLAMP``), so it never trades
      and the merged book never crosses; a price below 1 tick becomes 1;
    * partial cancel (2) / delete (3): at the drawn price if an engine level rests there, else at
      the engine level nearest in price (ties to the touch; ``W_MOVED``); a delete always takes
      the whole level, a partial cancel at most the level's size less one share (a cancel that
      would empty the level becomes a delete); sizes capped at the resting size
      (``W_SIZE_CAPPED``);
    * visible execution (4): at the engine's same-side best (``W_MOVED`` when the drawn level was
      not 0), capped at its size. When a live agent order on that side is strictly better than
      the engine best, the execution meets the agent first: a LOBSTER-5 message at the engine
      best, which the engine routes to the agent's better-priced order by its trade-through
      rule, and only the rest (if any) hits the engine best (``W_AGENT_FIRST``);
    * hidden execution (5): the book does not change; its price is kept inside the spread.
    One message per event; an execution never walks the book. So the engine book never crosses
    (``W_CROSSED`` counts crossed engine books after a message: always 0) and no size is negative.

Agent tokens (the agent's own messages in the stream the GRU reads)
    After the agent's events at one time, with ``buy`` / ``sell`` the shares it bought / sold
    there (aggressive fills: passive ones come from market messages) and ``R_s`` the remaining
    shares of its live limit orders on side ``s``: a buy is a visible execution against the
    asks at level 0 of ``buy`` shares, else a sell one against the bids; else, for the first
    side (bid first) whose ``R_s`` or price-weighted shares changed: more shares is a submit of
    the difference at the agent's best price there, fewer a delete of the difference at its
    former best, a move at equal shares a submit of all of them at the new best. Levels are
    relative to the merged reference before the agent event. A limit order that trades and
    rests is fed as its execution only. The token's inter-arrival is the time since the last
    event (``W_AGENT_TOKENS`` counts them).

Warm-up (:meth:`TickGRUWorld.reset_rows`, ``warmup`` messages, default 500)
    Each env starts from the real book of the LOBSTER file at the last row at or before its
    start time (as the replay and parametric worlds do). The GRU state is then conditioned on
    the real tape: from a zero state the cell runs over the ``warmup`` real messages up to that
    row (each with the file's book after the message before it, the model's input layout; halts
    and crosses are skipped), so the first generated event follows the real tape and book. The
    world clock starts at the episode start ``t0`` (the first inter-arrival is counted from it,
    not from the last real message). ``warmup=0``: a zero state and a zero previous event.

Output
    ``wcnt (n, N_WCNT)`` counters; with ``record=cap`` the first ``cap`` market messages per env
    since its reset in ``log (n, cap, N_LCOL)`` (``L_*``: ns, LOBSTER type, side 0 bid / 1 ask,
    price ticks, shares, level); with ``track=True`` ``wprob (n, 10)`` sums, over the market
    events drawn, of the model's predictive probability of each (type, side) pair
    (``type * 2 + side``) before any redraw, the expected counts a test compares with the drawn
    first tries (``wfirst (n, 10)``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numba
import numpy as np
from numba import njit, prange

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import Book, BookConfig
from lobworld.envs.book_kernels import (
    A_BUY_QTY, A_SELL_QTY, ASK, BID, CF_MODE, ES_FROZEN, ES_LAST_T, MSG_DELETE, MSG_EXEC, MSG_HIDDEN, MSG_SUBMIT,
    O_PRICE, O_REM, O_SIDE, O_STATUS, ST_LIVE, agent_until, _apply_message,
)
from lobworld.envs.rng import seed_state
from lobworld.errors import LobworldError
from lobworld.world_models.data.session import SESSION_LENGTH_S, SESSION_OPEN_S
from lobworld.world_models.tick_world import replay_and_ticker
from lobworld.world_models.tick_sim import (
    MAX_DT_NS, N_FEATURES, N_TYPES, TOP_K, X_IMB, X_SIZE, X_SPREAD, X_TOD, TickWeights, _cell, _context, _draw_y,
    _head_rows, _at_level, _level_at, draw_marks, pack_tick_weights,
)

__all__ = ["TickGRUWorld", "TickGRUWorldError", "BATCH_MIN_ENVS", "gru_advance", "gru_advance_parallel", "gru_advance_events",
           "gru_advance_events_parallel", "gru_warmup",
           "W_SUBMIT", "W_CANCEL", "W_DELETE", "W_EXEC", "W_HIDDEN", "W_REDRAW", "W_FORCED", "W_CROSS_CLAMP",
           "W_MOVED", "W_SIZE_CAPPED", "W_AGENT_FIRST", "W_MSGS", "W_AGENT_TOKENS", "W_CROSSED", "W_REJECTED",
           "N_WCNT", "L_T", "L_TYPE", "L_SIDE", "L_PRICE", "L_SIZE", "L_LEVEL", "N_LCOL"]

# ---- world counters ``wcnt (n, N_WCNT)`` int64 -------------------------------------------
(W_SUBMIT, W_CANCEL, W_DELETE, W_EXEC, W_HIDDEN, W_REDRAW, W_FORCED, W_CROSS_CLAMP, W_MOVED, W_SIZE_CAPPED,
 W_AGENT_FIRST, W_MSGS, W_AGENT_TOKENS, W_CROSSED, W_REJECTED) = range(15)
N_WCNT = 15
#: ``W_SUBMIT .. W_HIDDEN`` market events applied by LOBSTER type (1..5); ``W_MSGS`` engine
#: messages applied (an execution that meets the agent first is two); ``W_REJECTED`` messages
#: the engine refused (always 0: a test checks it)

# ---- message log ``log (n, cap, N_LCOL)`` int64 ------------------------------------------
L_T, L_TYPE, L_SIDE, L_PRICE, L_SIZE, L_LEVEL = range(6)
N_LCOL = 6

# ---- per-env int state ``ws_i (n, N_SI)`` --------------------------------------------------
(SI_T, SI_PEND, SI_TP, SI_LAST_B, SI_LAST_A, SI_MIDNIGHT) = range(6)
N_SI = 6
#: ``SI_T`` time of the last event (ns), ``SI_PEND`` 1 while a drawn time waits (``SI_TP``),
#: ``SI_LAST_*`` last best per side (ticks), ``SI_MIDNIGHT`` the day's midnight (ns, exchange time)

# ---- agent fingerprint (per-env scratch ``wfp (n, 2, N_FP)``) ------------------------------
FP_BUY, FP_SELL, FP_REM_B, FP_REM_A, FP_PQ_B, FP_PQ_A, FP_BEST_B, FP_BEST_A = range(8)
N_FP = 8

#: ``engine="auto"`` (not the default) runs the batch engine (:mod:`~lobworld.world_models.tick_gru_batch`) from this many envs on
BATCH_MIN_ENVS = 128

_STREAM_TAG = 0x54475257  # "TGRW": domain tag of the world's stream derivation
_NO_BID = -(2 ** 62)
_NO_ASK = 2 ** 62


class TickGRUWorldError(LobworldError):
    """Bad input to the learned tick world (names the field)."""


# =========================================================================================
# helpers (inlined into the per-env function)
# =========================================================================================
@njit(inline="always")
def _fingerprint(i, orders, acct, fp, slot):
    """The agent's bought / sold shares and its live limit orders' shares, price-weighted shares
    and best price per side, into ``fp[i, slot]``."""
    f = fp[i, slot]
    f[FP_BUY] = acct[i, A_BUY_QTY]
    f[FP_SELL] = acct[i, A_SELL_QTY]
    f[FP_REM_B] = 0
    f[FP_REM_A] = 0
    f[FP_PQ_B] = 0
    f[FP_PQ_A] = 0
    f[FP_BEST_B] = _NO_BID
    f[FP_BEST_A] = _NO_ASK
    for k in range(orders.shape[1]):
        if orders[i, k, O_STATUS] != ST_LIVE:
            continue
        r = orders[i, k, O_REM]
        p = orders[i, k, O_PRICE]
        if r <= 0 or p <= 0:
            continue
        if orders[i, k, O_SIDE] == BID:
            f[FP_REM_B] += r
            f[FP_PQ_B] += r * p
            if p > f[FP_BEST_B]:
                f[FP_BEST_B] = p
        else:
            f[FP_REM_A] += r
            f[FP_PQ_A] += r * p
            if p < f[FP_BEST_A]:
                f[FP_BEST_A] = p


@njit(inline="always")
def _merged_best(i, s, px, nl, f):
    """Best price of side ``s`` over the engine book and the agent's live orders (fingerprint
    row ``f``); the ``_NO_*`` sentinel when both are empty."""
    if s == BID:
        b = px[i, BID, 0] if nl[i, BID] > 0 else _NO_BID
        a = f[FP_BEST_B]
        return b if b > a else a
    b = px[i, ASK, 0] if nl[i, ASK] > 0 else _NO_ASK
    a = f[FP_BEST_A]
    return b if b < a else a


@njit(inline="always")
def _reference(i, s, px, nl, f, si):
    """Same-side merged best; one tick inside the opposite one when empty; else the last best."""
    m = _merged_best(i, s, px, nl, f)
    if s == BID and m != _NO_BID:
        return m
    if s == ASK and m != _NO_ASK:
        return m
    o = _merged_best(i, 1 - s, px, nl, f)
    if s == BID:
        return o - 1 if o != _NO_ASK else si[i, SI_LAST_B]
    return o + 1 if o != _NO_BID else si[i, SI_LAST_A]


@njit(inline="always")
def _merged_context(i, t_ns, px, sz, nl, orders, lot, x):
    """Book columns of the model input of env ``i`` on the engine book merged with the agent's
    live limit orders (the layout of ``tick_sim._context``); ``t_ns`` ns after midnight."""
    K = orders.shape[1]
    top_b = 0.0
    top_a = 0.0
    best_b = _NO_BID
    best_a = _NO_ASK
    for s in range(2):
        j = 0
        prev_set = False
        prev = 0
        for k in range(TOP_K):
            # the next price strictly worse than ``prev``: engine level j or an agent order
            cand_set = False
            cand = 0
            if j < nl[i, s]:
                cand = px[i, s, j]
                cand_set = True
            for a in range(K):
                if orders[i, a, O_STATUS] != ST_LIVE or orders[i, a, O_SIDE] != s or orders[i, a, O_REM] <= 0:
                    continue
                p = orders[i, a, O_PRICE]
                if p <= 0:
                    continue
                if prev_set and not ((p < prev) if s == BID else (p > prev)):
                    continue
                if not cand_set or ((p > cand) if s == BID else (p < cand)):
                    cand = p
                    cand_set = True
            v = 0.0
            if cand_set:
                if j < nl[i, s] and px[i, s, j] == cand:
                    v += float(sz[i, s, j])
                    j += 1
                for a in range(K):
                    if orders[i, a, O_STATUS] == ST_LIVE and orders[i, a, O_SIDE] == s \
                            and orders[i, a, O_PRICE] == cand and orders[i, a, O_REM] > 0:
                        v += float(orders[i, a, O_REM])
                if k == 0:
                    if s == BID:
                        top_b = v
                        best_b = cand
                    else:
                        top_a = v
                        best_a = cand
                prev = cand
                prev_set = True
            x[X_SIZE + s * TOP_K + k] = math.log1p(v / lot)
    spread = 0.0
    if best_b != _NO_BID and best_a != _NO_ASK and best_a > best_b:
        spread = float(best_a - best_b)
    x[X_SPREAD] = math.log1p(spread)
    x[X_IMB] = (top_b - top_a) / (top_b + top_a) if top_b + top_a > 0 else 0.0
    x[X_TOD] = (t_ns * 1e-9 - SESSION_OPEN_S) / SESSION_LENGTH_S


@njit(inline="always")
def _set_prev(xi, typ, s, level, q, dt, lm, lot, min_dt_s):
    """The previous-event columns (type index ``typ`` 0..4, side 0 bid / 1 ask, level ticks,
    ``q`` shares, ``dt`` ns)."""
    for c in range(N_TYPES):
        xi[c] = 0.0
    xi[typ] = 1.0
    xi[N_TYPES] = 1.0 if s == BID else -1.0
    lc = level if level < lm else lm
    if lc < -lm:
        lc = -lm
    xi[N_TYPES + 1] = lc / lm
    xi[N_TYPES + 2] = math.log(q / lot)
    dsec = dt * 1e-9
    xi[N_TYPES + 3] = math.log(dsec) if dsec > min_dt_s else math.log(min_dt_s)
    xi[N_TYPES + 4] = 1.0 if dt == 0 else 0.0


@njit(inline="always")
def _resolve_message(i, typ, s, p, q, level, om, o_has, px, sz, nl, f, wcnt):
    """The drawn event ``typ`` (0 submit, 1 cancel, 2 delete, 3 visible, 4 hidden execution) on
    side ``s`` at price ``p`` and size ``q``, made possible on the engine book by the module's
    rules (counted in ``wcnt``). Returns ``(p, q, msg, q1, nm, q2)``: the logged price and size,
    and the plan of ``nm`` engine messages: ``msg`` of ``q1`` shares, then (``nm == 2``) a visible
    execution of ``q2`` at the same price (an execution that meets a better agent order first).
    ``om`` / ``o_has``: the merged best of the other side and whether it exists."""
    msg = MSG_SUBMIT
    nm = 1
    q2 = np.int64(0)
    if typ == 0 or typ == 4:
        if o_has and not ((p < om) if s == BID else (p > om)):
            p = om - 1 if s == BID else om + 1
            if typ == 0:
                wcnt[i, W_CROSS_CLAMP] += 1
        if p < 1:
            p = 1
        msg = MSG_SUBMIT if typ == 0 else MSG_HIDDEN
        q1 = q
    elif typ == 3:
        # visible execution: at the engine's same-side best; a better agent order meets it first
        if level != 0:
            wcnt[i, W_MOVED] += 1
        p, q = _at_level(i, s, 0, q, px, sz, wcnt, W_SIZE_CAPPED)
        ab = f[FP_BEST_B] if s == BID else f[FP_BEST_A]
        ar = f[FP_REM_B] if s == BID else f[FP_REM_A]
        better = (ab > p) if s == BID else (ab < p)
        msg = MSG_EXEC
        q1 = q
        if ar > 0 and better:
            wcnt[i, W_AGENT_FIRST] += 1
            msg = MSG_HIDDEN
            q1 = q if q < ar else ar
            if q > q1:
                nm = 2
                q2 = q - q1
    else:
        j = _level_at(i, s, p, px, nl, wcnt, W_MOVED)
        p, q = _at_level(i, s, j, q, px, sz, wcnt, W_SIZE_CAPPED)
        msg = MSG_DELETE if typ == 2 else bk.MSG_CANCEL
        q1 = q
    return p, q, msg, q1, nm, q2


@njit(inline="always")
def _record_message(i, tm, typ, s, p, q, ref, dt, px, nl, si, log, nlog, xi, lm, lot, min_dt_s, wcnt):
    """After a drawn event's engine messages: its counter, the last bests, its row of the message
    log (while there is room) and the network's previous-event input."""
    wcnt[i, W_SUBMIT + typ] += 1
    level = (ref - p) if s == BID else (p - ref)
    if nl[i, BID] > 0:
        si[i, SI_LAST_B] = px[i, BID, 0]
    if nl[i, ASK] > 0:
        si[i, SI_LAST_A] = px[i, ASK, 0]
    k = nlog[i]
    if k < log.shape[1]:
        log[i, k, L_T] = tm
        log[i, k, L_TYPE] = typ + 1
        log[i, k, L_SIDE] = s
        log[i, k, L_PRICE] = p
        log[i, k, L_SIZE] = q
        log[i, k, L_LEVEL] = level
        nlog[i] = k + 1
    _set_prev(xi, typ, s, level, q, dt, lm, lot, min_dt_s)


# =========================================================================================
# the per-env function and the batch kernels
# =========================================================================================
@njit(inline="always")
def _agent_turn(i, ta, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode, wfp, si, xi, tokens,
                lm, lot, min_dt_s, wcnt):
    """The agent's turn at ``ta``, before the pending event: its commands up to ``ta`` run
    (:func:`agent_until`), and the change they make to the visible book (a trade, or an order that
    joins, leaves or moves the touch, told apart by the fingerprints before and after) becomes the
    network's previous-event input when ``tokens`` is set. Returns the agent's next time. One
    turn of the per-env loop (:func:`_gru_env`) and of the batch engine's logic pass."""
    _fingerprint(i, orders, acct, wfp, 0)
    fb = wfp[i, 0]
    rb_b = _reference(i, BID, px, nl, fb, si)
    rb_a = _reference(i, ASK, px, nl, fb, si)
    t_next = agent_until(i, ta + 1, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    _fingerprint(i, orders, acct, wfp, 1)
    fa = wfp[i, 1]
    typ = -1
    s = BID
    q = np.int64(0)
    p = np.int64(0)
    if fa[FP_BUY] > fb[FP_BUY]:
        typ, s, q, p = 3, ASK, fa[FP_BUY] - fb[FP_BUY], rb_a
    elif fa[FP_SELL] > fb[FP_SELL]:
        typ, s, q, p = 3, BID, fa[FP_SELL] - fb[FP_SELL], rb_b
    else:
        for c in range(2):
            dr = fa[FP_REM_B + c] - fb[FP_REM_B + c]
            dpq = fa[FP_PQ_B + c] - fb[FP_PQ_B + c]
            if dr > 0:
                typ, s, q, p = 0, c, dr, fa[FP_BEST_B + c]
            elif dr < 0:
                typ, s, q, p = 2, c, -dr, fb[FP_BEST_B + c]
            elif dpq != 0:
                typ, s, q, p = 0, c, fa[FP_REM_B + c], fa[FP_BEST_B + c]
            if typ >= 0:
                break
    if typ >= 0 and tokens:
        tt = ta if ta > si[i, SI_T] else si[i, SI_T]
        ref = rb_b if s == BID else rb_a
        level = (ref - p) if s == BID else (p - ref)
        _set_prev(xi, typ, s, level, q, tt - si[i, SI_T], lm, lot, min_dt_s)
        si[i, SI_T] = tt
        si[i, SI_PEND] = 0
        wcnt[i, W_AGENT_TOKENS] += 1
    return t_next


@njit(cache=True, fastmath=True)
def _gru_env(i, until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s,
             px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow,
             wrng, h, z, x, si, wfp, wcnt, log, nlog, track, wprob, wfirst, tokens, xs, gi, gh, buf, k_ev, tdec):
    """Env ``i``'s flow before ``until[i]``; with ``k_ev > 0``, stop right after its ``k_ev``-th market
    event instead (the bound becomes one ns past that event: the agent's events before it still run,
    as tokens), move the clock ``SI_T`` there and write the bound reached into ``tdec[i]``."""
    if es[i, ES_FROZEN] != 0:
        if k_ev > 0:
            tdec[i] = si[i, SI_T]
        return
    mode = cfg[CF_MODE]
    K, lm = dims[0], dims[1]
    o_type, o_side = dims[4], dims[5]
    st = wrng[i]
    t_end = until[i]
    hi = h[i]
    zi = z[i]
    xi = x[i]
    mid = si[i, SI_MIDNIGHT]
    t_next = agent_until(i, si[i, SI_T], px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    nev = 0
    done = False  # the k_ev-th event was applied: only the agent's events before t_end are left
    while es[i, ES_FROZEN] == 0:
        if not done and si[i, SI_PEND] == 0:
            if es[i, bk.ES_NLIVE] > 0:
                _merged_context(i, si[i, SI_T] - mid, px, sz, nl, orders, lot, xi)
            else:
                _context(i, si[i, SI_T] - mid, px, sz, nl, lot, xi)
            _cell(xi, hi, mean, std, we, be, wih, bih, whh, bhh, xs, zi, gi, gh, hi)
            _head_rows(wh, bh, 0, 3 * K, hi, zi, buf)
            y = _draw_y(buf, K, st)
            dts = math.exp(y) * 1e9
            dt = np.int64(MAX_DT_NS) if dts >= MAX_DT_NS else np.int64(math.floor(dts))
            si[i, SI_TP] = si[i, SI_T] + dt
            si[i, SI_PEND] = 1
        tm = si[i, SI_TP] if not done else np.int64(bk.INT_MAX)
        if t_next < tm and t_next < t_end:
            # the agent acts first: a change of the visible book is a token of the stream
            t_next = _agent_turn(i, t_next, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode,
                                 wfp, si, xi, tokens, lm, lot, min_dt_s, wcnt)
            continue
        if tm >= t_end:
            break
        # ---- the marks of the pending event
        si[i, SI_PEND] = 0
        dt = tm - si[i, SI_T]
        si[i, SI_T] = tm
        _fingerprint(i, orders, acct, wfp, 0)
        f = wfp[i, 0]
        base_t = 3 * K
        _head_rows(wh, bh, o_type, N_TYPES, hi, zi, buf[base_t:])
        if track:
            # predictive (type, side) probabilities of this event, before any redraw
            mx = buf[base_t]
            for c in range(1, N_TYPES):
                if buf[base_t + c] > mx:
                    mx = buf[base_t + c]
            tot = 0.0
            for c in range(N_TYPES):
                tot += math.exp(buf[base_t + c] - mx)
            sb = base_t + N_TYPES
            for c in range(N_TYPES):
                pt = math.exp(buf[base_t + c] - mx) / tot
                _head_rows(wh, bh, o_side + 2 * c, 2, hi, zi, buf[sb:])
                m2 = buf[sb] if buf[sb] > buf[sb + 1] else buf[sb + 1]
                e0 = math.exp(buf[sb] - m2)
                e1 = math.exp(buf[sb + 1] - m2)
                wprob[i, 2 * c] += pt * e0 / (e0 + e1)
                wprob[i, 2 * c + 1] += pt * e1 / (e0 + e1)
        typ, s, lvc, b, ok, redraws, first_ts = draw_marks(wh, bh, dims, hi, zi, buf, base_t, nl, i, st)
        if track:
            wfirst[i, first_ts] += 1.0
        wcnt[i, W_REDRAW] += redraws
        if not ok:
            wcnt[i, W_FORCED] += 1
            typ = 0
            lvc = lm
        level = lvc - lm
        q = np.int64(round(centers[b]))
        if q < 1:
            q = 1
        ref = _reference(i, s, px, nl, f, si)
        p = ref - level if s == BID else ref + level
        o = 1 - s
        om = _merged_best(i, o, px, nl, f)
        o_has = om != (_NO_ASK if o == ASK else _NO_BID)
        p, q, lt, q1, nm, q2 = _resolve_message(i, typ, s, p, q, level, om, o_has, px, sz, nl, f, wcnt)
        _emit(i, tm, lt, s, p, q1, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt)
        if nm == 2:
            _emit(i, tm, MSG_EXEC, s, p, q2, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt)
        _record_message(i, tm, typ, s, p, q, ref, dt, px, nl, si, log, nlog, xi, lm, lot, min_dt_s, wcnt)
        nev += 1
        if nev == k_ev:  # the decision follows this event: one ns past its time
            done = True
            t_end = tm + 1
    if es[i, ES_FROZEN] == 0:
        agent_until(i, t_end, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    if done:
        # the next inter-arrival is counted from the decision (so the next event comes after it)
        si[i, SI_T] = t_end
    if k_ev > 0:
        tdec[i] = t_end


@njit(inline="always")
def _emit(i, t, typ, s, p, q, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt):
    ok = _apply_message(i, wcnt[i, W_MSGS], t, np.int64(typ), np.int64(s), np.int64(p), np.int64(q), px, sz, dq,
                        nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow)
    if ok:
        wcnt[i, W_MSGS] += 1
        if nl[i, 0] > 0 and nl[i, 1] > 0 and px[i, 0, 0] >= px[i, 1, 0]:
            wcnt[i, W_CROSSED] += 1
    else:
        wcnt[i, W_REJECTED] += 1
    return ok


@njit(inline="always")
def _ws_row(w, F, H):
    """The views of one workspace row ``w``: the standardised input ``xs (F,)``, the GRU gate
    buffers ``gi, gh (3 H,)`` and the rest (the head rows; the batch engine's level / size buffers)."""
    return w[0:F], w[F:F + 3 * H], w[F + 3 * H:F + 6 * H], w[F + 6 * H:]


@njit(cache=True)
def gru_advance(until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz, dq, nl,
                orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log,
                nlog, track, wprob, wfirst, tokens, ws):
    """Run every env's GRU flow and its agent's events strictly before ``until[i]`` (ns), one thread.

    ``mean .. min_dt_s``: :class:`~lobworld.world_models.tick_sim.TickWeights` (``kernel_args()``,
    ``dims()``, ``centers``, ``lot``, ``min_dt_s``); ``px .. qpow``: the :class:`Book`'s arrays;
    world state ``wrng (n, 4)`` uint64, ``h (n, H)``, ``z (n, E)``, ``x (n, F)`` float64, ``si (n,
    N_SI)`` int64, scratch ``wfp (n, 2, N_FP)``; ``wcnt (n, N_WCNT)``, ``log (n, cap, N_LCOL)``,
    ``nlog (n,)``; ``track`` bool with ``wprob, wfirst (n, 10)``; ``tokens`` bool (agent tokens
    on); ``ws (>= 1, W)`` workspace
    (``W = F + 6 H + n_out``; row 0 is used)."""
    no_dec = np.zeros(1, np.int64)  # the decision-time output of advance_events: not written here
    F = x.shape[1]
    H = h.shape[1]
    xs, gi, gh, buf = _ws_row(ws[0], F, H)
    for i in range(px.shape[0]):
        _gru_env(i, until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz, dq,
                 nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log,
                 nlog, track, wprob, wfirst, tokens, xs, gi, gh, buf, np.int64(0), no_dec)


@njit(cache=True, parallel=True)
def gru_advance_parallel(until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz,
                         dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp,
                         wcnt, log, nlog, track, wprob, wfirst, tokens, ws):
    """:func:`gru_advance` with ``prange`` over ``ws.shape[0]`` chunks of envs (one workspace row
    each). Each env touches only its own rows and stream: equal to the serial kernel bit for bit."""
    no_dec = np.zeros(1, np.int64)  # the decision-time output of advance_events: not written here
    n = px.shape[0]
    F = x.shape[1]
    H = h.shape[1]
    nw = ws.shape[0]
    per = (n + nw - 1) // nw
    for c in prange(nw):
        xs, gi, gh, buf = _ws_row(ws[c], F, H)
        for i in range(c * per, min(n, (c + 1) * per)):
            _gru_env(np.int64(i), until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz,
                     dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp,
                     wcnt, log, nlog, track, wprob, wfirst, tokens, xs, gi, gh, buf, np.int64(0), no_dec)


@njit(cache=True)
def gru_advance_events(k_ev, until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px,
                       sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp,
                       wcnt, log, nlog, track, wprob, wfirst, tokens, ws, tdec):
    """Run every env's GRU flow and its agent's events until the env has applied ``k_ev >= 1`` market
    events (one per draw: ``W_SUBMIT .. W_HIDDEN``), stopping right after the ``k_ev``-th: ``tdec[i]``
    (int64 ns) is then one ns past its time, the agent's events before it have run (as agent tokens,
    as in :func:`gru_advance`), and the env's clock ``SI_T`` stands there (the next inter-arrival is
    counted from it). ``until[i]`` is a bound the flow never reaches (the session end): an env whose
    ``k_ev``-th event would come at or after it runs as :func:`gru_advance` to ``until[i]`` (the pending
    draw kept) and ``tdec[i] = until[i]``. Other arguments: :func:`gru_advance`'s. One thread."""
    F = x.shape[1]
    H = h.shape[1]
    xs, gi, gh, buf = _ws_row(ws[0], F, H)
    for i in range(px.shape[0]):
        _gru_env(i, until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz, dq,
                 nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log,
                 nlog, track, wprob, wfirst, tokens, xs, gi, gh, buf, k_ev, tdec)


@njit(cache=True, parallel=True)
def gru_advance_events_parallel(k_ev, until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot,
                                min_dt_s, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow,
                                wrng, h, z, x, si, wfp, wcnt, log, nlog, track, wprob, wfirst, tokens, ws, tdec):
    """:func:`gru_advance_events` with ``prange`` over ``ws.shape[0]`` chunks of envs (equal to it bit
    for bit)."""
    n = px.shape[0]
    F = x.shape[1]
    H = h.shape[1]
    nw = ws.shape[0]
    per = (n + nw - 1) // nw
    for c in prange(nw):
        xs, gi, gh, buf = _ws_row(ws[c], F, H)
        for i in range(c * per, min(n, (c + 1) * per)):
            _gru_env(np.int64(i), until, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz,
                     dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp,
                     wcnt, log, nlog, track, wprob, wfirst, tokens, xs, gi, gh, buf, k_ev, tdec)


# =========================================================================================
# warm-up on the real tape
# =========================================================================================
@njit(inline="always")
def _file_context(r, t_ns, fpx, fsz, lot, x):
    """Book columns of the model input from orderbook-file row ``r`` (``t_ns`` ns after midnight)."""
    L = fpx.shape[2]
    top_b = 0.0
    top_a = 0.0
    for s in range(2):
        for k in range(TOP_K):
            v = float(fsz[r, s, k]) if k < L and fsz[r, s, k] > 0 else 0.0
            x[X_SIZE + s * TOP_K + k] = math.log1p(v / lot)
            if k == 0:
                if s == 0:
                    top_b = v
                else:
                    top_a = v
    spread = 0.0
    if fsz[r, 0, 0] > 0 and fsz[r, 1, 0] > 0:
        spread = float(fpx[r, 1, 0] - fpx[r, 0, 0])
        if spread < 0.0:
            spread = 0.0
    x[X_SPREAD] = math.log1p(spread)
    x[X_IMB] = (top_b - top_a) / (top_b + top_a) if top_b + top_a > 0 else 0.0
    x[X_TOD] = (t_ns * 1e-9 - SESSION_OPEN_S) / SESSION_LENGTH_S


@njit(inline="always")
def _file_level(r, s, p, fpx, fsz):
    """Level of price ``p`` on side ``s`` against file row ``r`` (the book before the message)."""
    hb = fsz[r, 0, 0] > 0
    ha = fsz[r, 1, 0] > 0
    if s == 0:
        ref = fpx[r, 0, 0] if hb else (fpx[r, 1, 0] - 1 if ha else p)
        return ref - p
    ref = fpx[r, 1, 0] if ha else (fpx[r, 0, 0] + 1 if hb else p)
    return p - ref


@njit(cache=True)
def gru_warmup(envs, rows, n_warm, tt, ttype, tside, tpx, tsz, fpx, fsz, midnight, mean, std, we, be, wih, bih, whh,
               bhh, dims, lot, min_dt_s, h, z, x, ws):
    """Condition env ``envs[j]``'s GRU state on the real tape: from ``h = 0`` run the cell over
    messages ``rows[j] - n_warm + 1 .. rows[j]`` (tape ``tt .. tsz``, the file's books ``fpx, fsz``,
    ``midnight`` ns), leaving ``x`` with message ``rows[j]`` as the previous event."""
    F = x.shape[1]
    H = h.shape[1]
    xs, gi, gh, _ = _ws_row(ws[0], F, H)
    lm = dims[1]
    for j in range(envs.shape[0]):
        i = envs[j]
        r = rows[j]
        for c in range(H):
            h[i, c] = 0.0
        for c in range(F):
            x[i, c] = 0.0
        k0 = r - n_warm + 1
        if k0 < 2:
            k0 = 2
        if n_warm <= 0:
            continue
        have = False
        for m in range(k0 - 1, r + 1):
            # message m becomes the previous event; the cell first consumes the one before it
            if ttype[m] < 1 or ttype[m] > 5:
                continue
            if have:
                _file_context(m - 1, tt[m - 1] - midnight, fpx, fsz, lot, x[i])
                _cell(x[i], h[i], mean, std, we, be, wih, bih, whh, bhh, xs, z[i], gi, gh, h[i])
            s = np.int64(tside[m])
            q = tsz[m] if tsz[m] > 0 else 1
            lv = _file_level(m - 1, s, tpx[m], fpx, fsz)
            _set_prev(x[i], np.int64(ttype[m]) - 1, s, lv, q, tt[m] - tt[m - 1], lm, lot, min_dt_s)
            have = True


# =========================================================================================
# the world
# =========================================================================================
def _midnight_ns(t_ns: int) -> int:
    import pandas as pd

    return int(pd.Timestamp(int(t_ns), tz="UTC").tz_convert("America/New_York").normalize().value)


class TickGRUWorld:
    """The shipped tick GRU as a tick world (``world="learned"``; see the module docstring).

    Arguments
        ``weights``: a :class:`~lobworld.world_models.tick_sim.TickWeights` or what
        :func:`~lobworld.world_models.tick_sim.pack_tick_weights` accepts ("GOOG", "AMZN", a path).
        ``data``: a :class:`~lobworld.envs.replay.ReplayData` (a LOBSTER day): each episode starts
        from the file's book at the last row at or before its start time; the episode window is
        the file's hours. ``warmup``: real messages the GRU state is conditioned on before the
        start (int >= 0). ``record``: market messages kept per env in ``log`` (0: none).
        ``track``: accumulate the predictive (type, side) probabilities (``wprob``, ``wfirst``;
        slower, for tests). ``agent_tokens``: feed the agent's arrivals to the GRU as events (False:
        an ablation in which the market sees the agent only through the book context). ``parallel``: force the serial or the ``prange`` kernel (None:
        ``prange`` for 2 envs or more when Numba has threads). ``engine``: ``"env"`` (default) the
        per-env kernels (:func:`gru_advance`, the reference), ``"batch"`` the lockstep engine of
        :mod:`~lobworld.world_models.tick_gru_batch` (the GRU's products as matrix products over
        the envs; the same rules, counters and streams), ``"auto"`` the batch engine from
        :data:`BATCH_MIN_ENVS` envs on. The batch engine is opt-in: on the 2-core machine it was no
        faster than the per-env kernels when quiet and several times slower under load
        (docs/tick_world_models.md); its logic passes use ``prange`` unless ``parallel`` is
        False. ``batch_tail``: active envs below which the batch engine finishes a call per env
        (int >= 0).

    Random stream
        Env ``i`` draws from its own xoshiro stream ``wrng[i]``, derived in :meth:`reset_rows` from
        the book's streams of that env (``SeedSequence`` of a tag and their 12 words), so a seeded
        env gets the same flow bit for bit and never depends on another env; :meth:`seed` sets it
        from an explicit seed instead.
    """

    name = "learned"

    def __init__(self, weights, data, *, warmup: int = 500, record: int = 0, track: bool = False,
                 agent_tokens: bool = True, parallel: bool | None = None, engine: str = "env",
                 batch_tail: int = 32):
        if engine not in ("auto", "batch", "env"):
            raise TickGRUWorldError(f"engine: must be 'auto', 'batch' or 'env', got {engine!r}")
        if isinstance(batch_tail, bool) or not isinstance(batch_tail, (int, np.integer)) or batch_tail < 0:
            raise TickGRUWorldError(f"batch_tail: must be an int >= 0, got {batch_tail!r}")
        if not isinstance(weights, TickWeights):
            weights = pack_tick_weights(weights)
        if data is None or not hasattr(data, "tape") or not hasattr(data, "fpx"):
            raise TickGRUWorldError(f"data: must be a ReplayData (a LOBSTER day), got {type(data).__name__}")
        for name, v in (("warmup", warmup), ("record", record)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise TickGRUWorldError(f"{name}: must be an int >= 0, got {v!r}")
        if data.levels < TOP_K:
            raise TickGRUWorldError(f"data: the file has {data.levels} levels, the model reads the top {TOP_K}")
        self.w = weights
        self.data = data
        self.tick_size = float(data.tick_size)
        self.levels = int(data.levels)
        self.warmup, self.record, self.track, self.parallel = int(warmup), int(record), bool(track), parallel
        self.agent_tokens = bool(agent_tokens)
        self.engine, self.batch_tail = engine, int(batch_tail)
        self._batch = None
        self._bounds = (int(data.tape.t[0]), int(data.tape.t[-1]))
        self._midnight = _midnight_ns(self._bounds[0])
        self._dims = weights.dims()
        self._n = 0

    @classmethod
    def from_config(cls, config) -> "TickGRUWorld":
        """The world of a tick env's config: ``config.data`` (None: the shipped GOOG hour) gives the
        start books, the warm-up tape and the window; the weights are the shipped model of the
        file's ticker (its name starts with ``GOOG_`` or ``AMZN_``; GOOG otherwise)."""
        rw, ticker = replay_and_ticker(config.data)
        return cls(_weights(ticker), rw.data)

    # ------------------------------------------------------------------ TickWorld
    def bounds(self) -> tuple[int, int]:
        return self._bounds

    def book_config(self, base: BookConfig) -> BookConfig:
        return replace(base, depth=max(base.depth, self.levels), mode="live", tick_size=self.tick_size)

    def _alloc(self, n: int) -> None:
        if self._n == n:
            return
        self._n = n
        w = self.w
        H, E = w.hidden, w.we.shape[0]
        self.wrng = np.zeros((n, 4), np.uint64)
        self.h = np.zeros((n, H))
        self.z = np.zeros((n, E))
        self.x = np.zeros((n, N_FEATURES))
        self.si = np.zeros((n, N_SI), np.int64)
        self.wfp = np.zeros((n, 2, N_FP), np.int64)
        self.wcnt = np.zeros((n, N_WCNT), np.int64)
        self.log = np.zeros((n, self.record, N_LCOL), np.int64)
        self.nlog = np.zeros(n, np.int64)
        self.wprob = np.zeros((n, 2 * N_TYPES))
        self.wfirst = np.zeros((n, 2 * N_TYPES))
        nt = max(1, numba.get_num_threads())
        self.ws = np.zeros((nt, N_FEATURES + 6 * H + w.wh.shape[0]))
        self._t_stop = np.zeros(n, np.int64)
        self._tdec = np.zeros(n, np.int64)

    def seed(self, envs, seeds) -> None:
        """Set the world streams of ``envs`` from ``SeedSequence(seeds[j])`` (after :meth:`reset_rows`)."""
        for i, s in zip(np.atleast_1d(envs), np.atleast_1d(seeds)):
            self.wrng[int(i)] = seed_state(int(s), 1)[0]

    def reset_rows(self, book: Book, envs: np.ndarray, t0: np.ndarray) -> None:
        self._alloc(book.n_envs)
        envs = np.asarray(envs, np.int64)
        t0 = np.asarray(t0, np.int64)
        d = self.data
        rows = np.maximum(np.searchsorted(d.tape.t, t0, side="right").astype(np.int64) - 1, 0)
        bk.load_rows(envs, rows, d.fpx, d.fsz, book.px, book.sz, book.dq, book.nl)
        book.es[envs, ES_LAST_T] = t0
        w = self.w
        tp = d.tape
        gru_warmup(envs, rows, self.warmup, tp.t, tp.type, tp.side, tp.price, tp.size, d.fpx, d.fsz,
                   self._midnight, w.mean, w.std, w.we, w.be, w.wih, w.bih, w.whh, w.bhh, self._dims, w.lot,
                   w.min_dt_s, self.h, self.z, self.x, self.ws)
        for i in envs:
            b = int(book.px[i, BID, 0]) if book.nl[i, BID] else 0
            a = int(book.px[i, ASK, 0]) if book.nl[i, ASK] else 0
            if not (b or a):
                raise TickGRUWorldError(f"reset_rows: env {int(i)}'s start book is empty on both sides")
            self.si[i, SI_LAST_B] = b if b else a - 1
            self.si[i, SI_LAST_A] = a if a else b + 1
            words = [_STREAM_TAG] + [int(v) for v in book.rng[i].ravel()]
            st = np.random.SeedSequence(words).generate_state(4, np.uint64)
            if not st.any():
                st[0] = np.uint64(0x9E3779B97F4A7C15)
            self.wrng[i] = st
        self.si[envs, SI_T] = t0
        self.si[envs, SI_PEND] = 0
        self.si[envs, SI_TP] = 0
        self.si[envs, SI_MIDNIGHT] = self._midnight
        self.z[envs] = 0.0
        self.wcnt[envs] = 0
        self.nlog[envs] = 0
        self.wprob[envs] = 0.0
        self.wfirst[envs] = 0.0

    def _args(self, book: Book, until: np.ndarray) -> tuple:
        w = self.w
        return (until, *w.kernel_args(), self._dims, w.centers, w.lot, w.min_dt_s, book.px, book.sz, book.dq,
                book.nl, book.orders, book.pend, book.cmds, book.fills, book.es, book.acct, book.cnt, book.rng,
                book.lat, book.cfg, float(book.config.queue_power), self.wrng, self.h, self.z, self.x, self.si,
                self.wfp, self.wcnt, self.log, self.nlog, self.track, self.wprob, self.wfirst, self.agent_tokens)

    def _par(self, book: Book) -> bool:
        return (book.n_envs >= 2 and numba.get_num_threads() > 1) if self.parallel is None else bool(self.parallel)

    def uses_batch(self, n_envs: int) -> bool:
        """Whether :meth:`advance` runs the batch engine for ``n_envs`` envs."""
        return self.engine == "batch" or (self.engine == "auto" and n_envs >= BATCH_MIN_ENVS)

    def _batch_engine(self):
        if self._batch is None:
            from lobworld.world_models.tick_gru_batch import TickGRUBatch  # it imports this module's helpers

            self._batch = TickGRUBatch(self.w, tail=self.batch_tail, parallel=self.parallel is not False)
        return self._batch

    def _run(self, book: Book, until: np.ndarray, k_ev: int) -> None:
        if self.uses_batch(book.n_envs):
            self._batch_engine().run(self, book, until, k_ev, self._tdec)
        else:
            if self._batch is not None:
                self._batch.hb_valid = False  # the states move without the batch engine's head cache
            if k_ev == 0:
                (gru_advance_parallel if self._par(book) else gru_advance)(*self._args(book, until), self.ws)
            else:
                (gru_advance_events_parallel if self._par(book) else gru_advance_events)(
                    np.int64(k_ev), *self._args(book, until), self.ws, self._tdec)

    def advance(self, book: Book, until: np.ndarray) -> None:
        if self._n != book.n_envs:
            raise TickGRUWorldError(f"advance: the world was reset for {self._n} envs, the book has {book.n_envs}")
        until = np.array(np.broadcast_to(np.asarray(until, np.int64), (book.n_envs,)))  # writable: one compiled signature
        self._run(book, until, 0)
        self._check(book)

    def advance_events(self, book: Book, k: int) -> np.ndarray:
        """Run every env's flow until it has applied exactly ``k`` more market events (one per draw of
        the GRU: ``W_SUBMIT .. W_HIDDEN``; an execution that meets the agent first is two engine
        messages), with the agent's events and tokens interleaved in time order as in :meth:`advance`,
        and stop right after the ``k``-th. Returns each env's decision time ``(n,)`` int64 ns: one ns
        past that event's time; the env's clock moves there, so the next inter-arrival is counted from
        the decision (an event drawn at zero delay after the ``k``-th comes 1 ns after it). An env whose
        ``k``-th event would come at or after the session end ``bounds()[1]`` runs to the session end
        as :meth:`advance` would (fewer than ``k`` events) and returns it."""
        if self._n != book.n_envs:
            raise TickGRUWorldError(f"advance_events: the world was reset for {self._n} envs, the book has "
                                    f"{book.n_envs}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise TickGRUWorldError(f"advance_events: k must be an int >= 1 (market events), got {k!r}")
        self._t_stop[:] = self._bounds[1]
        self._run(book, self._t_stop, int(k))
        self._check(book)
        return self._tdec.copy()

    def _check(self, book: Book) -> None:
        if book.config.strict and (book.es[:, bk.ES_ERR] != 0).any():
            i = int(np.flatnonzero(book.es[:, bk.ES_ERR] != 0)[0])
            code = int(book.es[i, bk.ES_ERR])
            raise TickGRUWorldError(f"advance: env {i}: generated message {int(book.es[i, bk.ES_ERR_ROW])} was "
                                    f"rejected by the book engine (rule {code}); this is a bug of the generator")

    # ------------------------------------------------------------------ inspection
    def messages(self, env: int) -> np.ndarray:
        """A copy of env ``env``'s recorded market messages ``(m, N_LCOL)`` int64 (columns ``L_*``)."""
        return self.log[env, : int(self.nlog[env])].copy()


_WEIGHTS: dict[str, TickWeights] = {}


def _weights(ticker: str) -> TickWeights:
    """The shipped weights of ``ticker``, packed once per process."""
    if ticker not in _WEIGHTS:
        _WEIGHTS[ticker] = pack_tick_weights(ticker)
    return _WEIGHTS[ticker]


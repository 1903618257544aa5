"""The learned tick world's batched ("lockstep") engine: :class:`TickGRUBatch`.

Description
    The same flow as the per-env function of :mod:`lobworld.world_models.tick_gru_world`
    (``_gru_env``: the same rules, counters, agent tokens, per-env xoshiro streams and draw order),
    with the tick GRU's products done for many envs at once as matrix products (numpy's BLAS)
    instead of one scalar GEMV per env and message. Each env's flow is a resumable state machine
    (:func:`_logic_env`) that runs until it

    * **needs the GRU cell** (its model input ``x[i]`` is built: the previous event and the merged
      book's context), or
    * **needs the level and size rows** of its drawn (type, side), or
    * is **done** for this call (the bound reached, the ``k``-th event applied, or frozen).

    Between two logic passes the engine evaluates, on the gathered rows of the envs that wait:
    encoder, GRU cell and the time / type / side heads (``3 K + 5 + 10`` rows) as products over
    all of them, and the level + size rows grouped by (type, side) (10 groups, one product each).
    The categorical sampler uses exactly one uniform per draw whatever the logits, so the redraw
    loop of the marks needs only the type and side logits: the level and size uniforms of every
    try are drawn in the stream's order, and the level / size rows are evaluated only for the last
    try (the accepted one, or the last failed one, whose size bin a forced submit keeps). When
    fewer than ``tail`` envs are still active, they finish in the same state machine with the GRU
    evaluated per env in scalar loops (the helpers of :mod:`~lobworld.world_models.tick_sim`), so
    the host loop does not spin over tiny batches.

Equality with the per-env kernels
    float64 throughout: the products differ from the scalar loops only in summation order, so
    message logs, counters, books and accounts equal those of ``gru_advance`` /
    ``gru_advance_events`` unless a rounding difference in the last bits moves a drawn uniform
    across a class boundary or an inter-arrival across a whole ns (the tests require equality).

State and workspaces
    Per env: ``bs (n, N_BS)`` int64 (the phase and the loop variables of a suspended flow),
    ``bu (n, 2)`` the level / size uniforms of the last try, ``hb (n, NH)`` float64 the time, type
    and side head outputs of the env's current GRU state (kept across calls: a pending draw's type
    logits are read from it; rebuilt from ``h, z`` when another engine ran in between). Pass
    buffers ``(n, .)`` for the gathered inputs and the products are allocated once per ``n_envs``;
    nothing is allocated per message.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from lobworld.envs import book_kernels as bk
from lobworld.envs.book_kernels import (
    ASK, BID, CF_MODE, ES_FROZEN, MSG_EXEC, agent_until,
)
from lobworld.envs.fastmath import sigmoid as _sigmoid
from lobworld.envs.fastmath import tanh as _tanh
from lobworld.envs.rng import uniform
from lobworld.world_models.tick_gru_world import (
    _NO_ASK, _NO_BID, SI_MIDNIGHT, SI_PEND, SI_T, SI_TP, W_FORCED, W_REDRAW, _emit, _fingerprint,
    _agent_turn, _merged_best, _merged_context, _record_message, _reference, _resolve_message, _ws_row,
)
from lobworld.world_models.tick_sim import (
    MAX_DT_NS, MAX_REDRAW, N_TYPES, _categorical, _cell, _context, _draw_y, _head_rows,
)

__all__ = ["TickGRUBatch", "N_BS"]

# ---- per-env batch state ``bs (n, N_BS)`` int64 ---------------------------------------------
(B_PH, B_TNEXT, B_NEV, B_DONE, B_TEND, B_TYP, B_SIDE, B_OK, B_TS, B_DT) = range(10)
N_BS = 10
#: phases (``B_PH``): a fresh call, waiting for the cell, waiting for the level / size rows, done
PH_START, PH_CELL, PH_ROWS, PH_IDLE = 0, 1, 2, 3
#: what :func:`_logic_env` returns
R_DONE, R_CELL, R_ROWS = 0, 1, 2
N_GROUPS = 2 * N_TYPES


@njit(inline="always")
def _cat_u(lg, off, n, u01, eb):
    """``tick_sim._categorical`` over ``lg[off:off + n]`` with its uniform ``u01`` drawn before (the
    same terms; each ``exp`` computed once, kept in the scratch ``eb``)."""
    m = lg[off]
    for j in range(1, n):
        if lg[off + j] > m:
            m = lg[off + j]
    tot = 0.0
    for j in range(n):
        e = math.exp(lg[off + j] - m)
        eb[j] = e
        tot += e
    u = u01 * tot
    c = 0.0
    for j in range(n):
        c += eb[j]
        if u < c:
            return j
    return n - 1


@njit(inline="always")
def _park(bs, i, ph, t_next, nev, done, t_end):
    """Keep env ``i``'s loop registers in its state row ``bs[i]`` when it waits in phase ``ph`` (the
    next logic pass resumes from them)."""
    bs[i, B_PH] = ph
    bs[i, B_TNEXT] = t_next
    bs[i, B_NEV] = nev
    bs[i, B_DONE] = 1 if done else 0
    bs[i, B_TEND] = t_end


@njit(cache=True)
def _emit_call(i, t, typ, s, p, q, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt):
    """``tick_gru_world._emit`` as a call (one site in the state machine instead of an inlined engine
    message routine per site: compile time)."""
    return _emit(i, t, typ, s, p, q, px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat, cfg, qpow, wcnt)


@njit(cache=True, fastmath=True)
def _logic_env(i, scalar, k_ev, until, tdec, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims, centers, lot,
               min_dt_s, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z,
               x, si, wfp, wcnt, log, nlog, track, wprob, wfirst, tokens, bs, bu, hb, hd, rr, pos, xs, gi, gh,
               rbuf, ebuf):
    """Run env ``i``'s flow (``_gru_env``'s loop) from its phase ``bs[i, B_PH]`` until it needs the GRU
    cell (returns ``R_CELL``; ``x[i]`` holds the input), the level / size rows of the (type, side)
    ``bs[i, B_TS]`` (``R_ROWS``) or is done (``R_DONE``). On resume the products are read from row
    ``pos[i]`` of ``hd`` (the heads of the new state; ``h[i], z[i]`` already updated) or ``rr`` (the
    level logits then the size logits). ``scalar``: evaluate them here instead (never suspends).
    Scratch: ``xs, gi, gh`` (the scalar cell), ``rbuf`` (the scalar rows), ``ebuf`` (the sampler)."""
    mode = cfg[CF_MODE]
    K, lm, S = dims[0], dims[1], dims[2]
    nlev = 2 * lm + 1
    o_type, o_side, o_level, o_size = dims[4], dims[5], dims[6], dims[7]
    nh = hb.shape[1]
    st = wrng[i]
    hi = h[i]
    zi = z[i]
    xi = x[i]
    hbi = hb[i]
    mid = si[i, SI_MIDNIGHT]
    ph = bs[i, B_PH]
    if ph == PH_START:
        if es[i, ES_FROZEN] != 0:
            if k_ev > 0:
                tdec[i] = si[i, SI_T]
            bs[i, B_PH] = PH_IDLE
            return R_DONE
        t_next = agent_until(i, si[i, SI_T], px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat,
                             mode)
        nev = np.int64(0)
        done = False
        t_end = until[i]
    else:
        t_next = bs[i, B_TNEXT]
        nev = bs[i, B_NEV]
        done = bs[i, B_DONE] != 0
        t_end = bs[i, B_TEND]
    while True:
        if ph == PH_CELL:
            # ---- the cell has run: the time head, one inter-arrival (pending until applied)
            if scalar:
                _cell(xi, hi, mean, std, we, be, wih, bih, whh, bhh, xs, zi, gi, gh, hi)
                _head_rows(wh, bh, 0, nh, hi, zi, hbi)
            else:
                r = hd[pos[i]]
                for c in range(nh):
                    hbi[c] = r[c]
            y = _draw_y(hbi, K, st)
            dts = math.exp(y) * 1e9
            dt = np.int64(MAX_DT_NS) if dts >= MAX_DT_NS else np.int64(math.floor(dts))
            si[i, SI_TP] = si[i, SI_T] + dt
            si[i, SI_PEND] = 1
        elif ph == PH_ROWS:
            # ---- the level / size rows of the last try: the event's message
            typ = bs[i, B_TYP]
            s = bs[i, B_SIDE]
            ts = bs[i, B_TS]
            dt = bs[i, B_DT]
            tm = si[i, SI_T]
            if scalar:
                _head_rows(wh, bh, o_level + ts * nlev, nlev, hi, zi, rbuf)
                _head_rows(wh, bh, o_size + ts * S, S, hi, zi, rbuf[nlev:])
                lg = rbuf
            else:
                lg = rr[pos[i]]
            lvc = _cat_u(lg, 0, nlev, bu[i, 0], ebuf)
            b = _cat_u(lg, nlev, S, bu[i, 1], ebuf)
            if bs[i, B_OK] == 0:
                wcnt[i, W_FORCED] += 1
                typ = 0
                lvc = lm
            f = wfp[i, 0]
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
            for m in range(nm):
                _emit_call(i, tm, np.int64(lt if m == 0 else MSG_EXEC), np.int64(s), np.int64(p),
                           np.int64(q1 if m == 0 else q2), px, sz, dq, nl, orders, fills, es, acct, cnt, rng, lat,
                           cfg, qpow, wcnt)
            _record_message(i, tm, typ, s, p, q, ref, dt, px, nl, si, log, nlog, xi, lm, lot, min_dt_s, wcnt)
            nev += 1
            if nev == k_ev:  # the decision follows this event: one ns past its time
                done = True
                t_end = tm + 1
        ph = PH_START
        # ---- one turn of _gru_env's loop
        if es[i, ES_FROZEN] != 0:
            break
        if not done and si[i, SI_PEND] == 0:
            if es[i, bk.ES_NLIVE] > 0:
                _merged_context(i, si[i, SI_T] - mid, px, sz, nl, orders, lot, xi)
            else:
                _context(i, si[i, SI_T] - mid, px, sz, nl, lot, xi)
            ph = PH_CELL
            if scalar:
                continue
            _park(bs, i, PH_CELL, t_next, nev, done, t_end)
            return R_CELL
        tm = si[i, SI_TP] if not done else np.int64(bk.INT_MAX)
        if t_next < tm and t_next < t_end:
            # the agent acts first: a change of the visible book is a token of the stream
            t_next = _agent_turn(i, t_next, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode,
                                 wfp, si, xi, tokens, lm, lot, min_dt_s, wcnt)
            continue
        if tm >= t_end:
            break
        # ---- the marks of the pending event: type and side (with redraws) now, the rows next
        si[i, SI_PEND] = 0
        dt = tm - si[i, SI_T]
        si[i, SI_T] = tm
        _fingerprint(i, orders, acct, wfp, 0)
        if track:
            mx = hbi[o_type]
            for c in range(1, N_TYPES):
                if hbi[o_type + c] > mx:
                    mx = hbi[o_type + c]
            tot = 0.0
            for c in range(N_TYPES):
                tot += math.exp(hbi[o_type + c] - mx)
            for c in range(N_TYPES):
                pt = math.exp(hbi[o_type + c] - mx) / tot
                l0 = hbi[o_side + 2 * c]
                l1 = hbi[o_side + 2 * c + 1]
                m2 = l0 if l0 > l1 else l1
                e0 = math.exp(l0 - m2)
                e1 = math.exp(l1 - m2)
                wprob[i, 2 * c] += pt * e0 / (e0 + e1)
                wprob[i, 2 * c + 1] += pt * e1 / (e0 + e1)
        typ = 0
        s = 0
        ok = False
        first_ts = -1
        redraws = 0
        ts = 0
        for _ in range(MAX_REDRAW):
            typ = _categorical(hbi[o_type:], N_TYPES, st)
            s = _categorical(hbi[o_side + 2 * typ:], 2, st)
            ts = 2 * typ + s
            if first_ts < 0:
                first_ts = ts
            bu[i, 0] = uniform(st)
            bu[i, 1] = uniform(st)
            if typ == 0 or typ == 4 or nl[i, s] > 0:
                ok = True
                break
            redraws += 1
        if track:
            wfirst[i, first_ts] += 1.0
        wcnt[i, W_REDRAW] += redraws
        bs[i, B_TYP] = typ
        bs[i, B_SIDE] = s
        bs[i, B_OK] = 1 if ok else 0
        bs[i, B_TS] = ts
        bs[i, B_DT] = dt
        ph = PH_ROWS
        if scalar:
            continue
        _park(bs, i, PH_ROWS, t_next, nev, done, t_end)
        return R_ROWS
    if es[i, ES_FROZEN] == 0:
        agent_until(i, t_end, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng, lat, mode)
    if done:
        # the next inter-arrival is counted from the decision (so the next event comes after it)
        si[i, SI_T] = t_end
    if k_ev > 0:
        tdec[i] = t_end
    bs[i, B_PH] = PH_IDLE
    return R_DONE


@njit(inline="always")
def _compact(act, na, status, bs, cidx, ridx, goff, pos):
    """The envs of ``act[:na]`` that wait: the cell list ``cidx`` and the rows list ``ridx`` grouped
    by (type, side) (group ``g`` at ``goff[g]:goff[g + 1]``), ``pos[i]`` each env's row in its
    pass; the next active list ``act`` = both lists. Returns ``(nc, nr)``."""
    nc = 0
    for g in range(N_GROUPS + 1):
        goff[g] = 0
    for j in range(na):
        i = act[j]
        if status[i] == R_CELL:
            pos[i] = nc
            cidx[nc] = i
            nc += 1
        elif status[i] == R_ROWS:
            goff[bs[i, B_TS] + 1] += 1
    for g in range(N_GROUPS):
        goff[g + 1] += goff[g]
    nr = goff[N_GROUPS]
    for j in range(na):
        i = act[j]
        if status[i] == R_ROWS:
            g = bs[i, B_TS]
            pos[i] = goff[g]
            ridx[goff[g]] = i
            goff[g] += 1
    for g in range(N_GROUPS, 0, -1):
        goff[g] = goff[g - 1]
    goff[0] = 0
    for j in range(nc):
        act[j] = cidx[j]
    for j in range(nr):
        act[nc + j] = ridx[j]
    return nc, nr


@njit(cache=True, fastmath=True)
def gru_batch_logic(act, na, scalar, status, cidx, ridx, goff, k_ev, until, tdec, mean, std, we, be, wih, bih,
                    whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz, dq, nl, orders, pend, cmds, fills, es,
                    acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log, nlog, track, wprob, wfirst,
                    tokens, bs, bu, hb, hd, rr, pos, ws):
    """One logic pass over the active envs ``act[:na]`` (one thread): each runs until it waits or is
    done (:func:`_logic_env`); then the waiting ones are listed (:func:`_compact`). Returns ``(nc, nr)``.
    ``ws (>= 1, W)`` scratch (``W = F + 6 H + 2 (n_levels + n_size)``; row 0)."""
    F = x.shape[1]
    H = h.shape[1]
    nr = rr.shape[1]
    xs, gi, gh, rest = _ws_row(ws[0], F, H)
    rbuf, ebuf = rest[:nr], rest[nr:]
    for j in range(na):
        i = act[j]
        status[i] = _logic_env(i, scalar, k_ev, until, tdec, mean, std, we, be, wih, bih, whh, bhh, wh, bh, dims,
                               centers, lot, min_dt_s, px, sz, dq, nl, orders, pend, cmds, fills, es, acct, cnt, rng,
                               lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log, nlog, track, wprob, wfirst, tokens,
                               bs, bu, hb, hd, rr, pos, xs, gi, gh, rbuf, ebuf)
    return _compact(act, na, status, bs, cidx, ridx, goff, pos)


@njit(cache=True, parallel=True)
def gru_batch_logic_parallel(act, na, scalar, status, cidx, ridx, goff, k_ev, until, tdec, mean, std, we, be, wih,
                             bih, whh, bhh, wh, bh, dims, centers, lot, min_dt_s, px, sz, dq, nl, orders, pend, cmds,
                             fills, es, acct, cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log, nlog,
                             track, wprob, wfirst, tokens, bs, bu, hb, hd, rr, pos, ws):
    """:func:`gru_batch_logic` with ``prange`` over ``ws.shape[0]`` chunks of ``act[:na]`` (each env
    touches only its own rows and stream: the same result)."""
    F = x.shape[1]
    H = h.shape[1]
    nw = ws.shape[0]
    nr = rr.shape[1]
    per = (na + nw - 1) // nw
    for c in prange(nw):
        xs, gi, gh, rest = _ws_row(ws[c], F, H)
        rbuf, ebuf = rest[:nr], rest[nr:]
        for j in range(c * per, min(na, (c + 1) * per)):
            i = act[j]
            status[i] = _logic_env(i, scalar, k_ev, until, tdec, mean, std, we, be, wih, bih, whh, bhh, wh, bh,
                                   dims, centers, lot, min_dt_s, px, sz, dq, nl, orders, pend, cmds, fills, es, acct,
                                   cnt, rng, lat, cfg, qpow, wrng, h, z, x, si, wfp, wcnt, log, nlog, track, wprob,
                                   wfirst, tokens, bs, bu, hb, hd, rr, pos, xs, gi, gh, rbuf, ebuf)
    return _compact(act, na, status, bs, cidx, ridx, goff, pos)


@njit(cache=True)
def gru_batch_gather(cidx, nc, ridx, nr, x, h, z, mean, std, xsb, hob, gb):
    """Pass inputs: for the cell envs ``xsb[j] = [(x[i] - mean) / std, 1]``, ``hob[j] = [h[i], 1]``; for
    the rows envs ``gb[j] = [h[i], z[i], 1]`` (the trailing 1 multiplies the bias row of each
    weight matrix)."""
    F = x.shape[1]
    H = h.shape[1]
    E = z.shape[1]
    for j in range(nc):
        i = cidx[j]
        for f in range(F):
            xsb[j, f] = (x[i, f] - mean[f]) / std[f]
        xsb[j, F] = 1.0
        for c in range(H):
            hob[j, c] = h[i, c]
        hob[j, H] = 1.0
    for j in range(nr):
        i = ridx[j]
        for c in range(H):
            gb[j, c] = h[i, c]
        for c in range(E):
            gb[j, H + c] = z[i, c]
        gb[j, H + E] = 1.0


@njit(cache=True, fastmath=True)
def gru_batch_tanh(nc, zp, hz):
    """Encoder non-linearity: ``hz[j, H:H + E] = tanh(zp[j])``, ``hz[j, H + E] = 1``."""
    E = zp.shape[1]
    H = hz.shape[1] - E - 1
    for j in range(nc):
        for c in range(E):
            hz[j, H + c] = _tanh(zp[j, c])
        hz[j, H + E] = 1.0


@njit(cache=True, fastmath=True)
def gru_batch_gates(cidx, nc, gib, ghb, hob, hz, h, z):
    """GRU gates (torch's order r, z, n) from the products ``gib = W_ih [z, 1]``, ``ghb = W_hh [h, 1]``:
    the new state into ``hz[j, :H]`` and ``h[i]``, the encoder output ``hz[j, H:H + E]`` into ``z[i]``."""
    H = h.shape[1]
    E = z.shape[1]
    for j in range(nc):
        i = cidx[j]
        for c in range(H):
            r = _sigmoid(gib[j, c] + ghb[j, c])
            u = _sigmoid(gib[j, H + c] + ghb[j, H + c])
            nn = _tanh(gib[j, 2 * H + c] + r * ghb[j, 2 * H + c])
            v = (1.0 - u) * nn + u * hob[j, c]
            hz[j, c] = v
            h[i, c] = v
        for c in range(E):
            z[i, c] = hz[j, H + c]


class _BlasThreads:
    """Set the thread count of numpy's OpenBLAS for a block (``with _BLAS(k):``), restoring it after;
    a no-op where numpy's BLAS is not the scipy-openblas build whose symbols are known here. The
    engine's products are small (a few thousand rows of at most 113 x 192) and alternate with
    Numba passes: on a 2-core machine a second BLAS thread costs more in waking and waiting than
    it gains (docs/tick_world_models.md, the learned world's speed)."""

    def __init__(self):
        self._set = self._get = None
        self._k = 0
        try:
            import ctypes

            path = next((ln.split()[-1] for ln in open("/proc/self/maps") if "libscipy_openblas64_" in ln), None)
            if path is None:
                return
            lib = ctypes.CDLL(path)
            self._set = lib.scipy_openblas_set_num_threads64_
            self._set.argtypes = [ctypes.c_int]
            self._get = lib.scipy_openblas_get_num_threads64_
            self._get.restype = ctypes.c_int
        except (OSError, AttributeError, StopIteration):
            self._set = self._get = None

    def __call__(self, k: int):
        self._want = int(k)
        return self

    def __enter__(self):
        if self._set is not None and self._want > 0:
            self._k = self._get()
            self._set(self._want)

    def __exit__(self, *exc):
        if self._set is not None and self._want > 0:
            self._set(self._k)


_BLAS = _BlasThreads()


def _with_bias(w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[w.T; b]`` C-contiguous: ``[v, 1] @ it == w @ v + b``."""
    return np.ascontiguousarray(np.vstack([w.T, b[None, :]]))


class TickGRUBatch:
    """The lockstep engine of one :class:`~lobworld.world_models.tick_gru_world.TickGRUWorld` (see the
    module docstring). ``tail``: active envs below which the rest of a call runs per env (scalar GRU).
    ``blas_threads``: numpy's OpenBLAS threads during a call (0: leave them as they are).
    ``parallel``: the logic passes with ``prange`` (:func:`gru_batch_logic_parallel`, when Numba has
    threads; the same result as the serial pass)."""

    def __init__(self, weights, tail: int = 32, blas_threads: int = 1, parallel: bool = False):
        w = weights
        self.w = w
        self.tail = int(tail)
        self.parallel = bool(parallel)
        self.blas_threads = int(blas_threads)
        self.dims = w.dims()
        K, lm, S = w.n_mix, w.level_max, w.n_size
        nlev = 2 * lm + 1
        o_level, o_size = w.offsets[3], w.offsets[4]
        self.nh = o_level  # time (3K), type (5), side (10) rows: they precede the level rows
        assert self.nh == 3 * K + N_TYPES + 2 * N_TYPES
        self.nr = nlev + S
        self.wet = _with_bias(w.we, w.be)                    # (F + 1, E)
        self.wiht = _with_bias(w.wih, w.bih)                 # (E + 1, 3H)
        self.whht = _with_bias(w.whh, w.bhh)                 # (H + 1, 3H)
        self.wht = _with_bias(w.wh[:o_level], w.bh[:o_level])  # (H + E + 1, NH)
        self.wrt = np.ascontiguousarray(np.stack([
            _with_bias(np.vstack([w.wh[o_level + g * nlev:o_level + (g + 1) * nlev],
                                  w.wh[o_size + g * S:o_size + (g + 1) * S]]),
                       np.concatenate([w.bh[o_level + g * nlev:o_level + (g + 1) * nlev],
                                       w.bh[o_size + g * S:o_size + (g + 1) * S]]))
            for g in range(N_GROUPS)]))                      # (10, H + E + 1, nlev + S)
        self._n = 0
        self.hb_valid = False

    def _alloc(self, n: int, F: int) -> None:
        if self._n == n:
            return
        self._n = n
        w = self.w
        H, E = w.hidden, w.we.shape[0]
        self.bs = np.zeros((n, N_BS), np.int64)
        self.bu = np.zeros((n, 2))
        self.hb = np.zeros((n, self.nh))
        self.act = np.zeros(n, np.int64)
        self.status = np.zeros(n, np.int64)
        self.cidx = np.zeros(n, np.int64)
        self.ridx = np.zeros(n, np.int64)
        self.pos = np.zeros(n, np.int64)
        self.goff = np.zeros(N_GROUPS + 1, np.int64)
        self.xsb = np.zeros((n, F + 1))
        self.hob = np.zeros((n, H + 1))
        self.zp = np.zeros((n, E))
        self.hz = np.zeros((n, H + E + 1))
        self.gib = np.zeros((n, 3 * H))
        self.ghb = np.zeros((n, 3 * H))
        self.hd = np.zeros((n, self.nh))
        self.gb = np.zeros((n, H + E + 1))
        self.rr = np.zeros((n, self.nr))
        nt = max(1, numba.get_num_threads())
        self.ws = np.zeros((nt, F + 6 * H + 2 * self.nr))
        self.hb_valid = False

    def refresh_heads(self, h: np.ndarray, z: np.ndarray) -> None:
        """``hb = heads(h, z)`` for every env (after another engine moved the states)."""
        n = h.shape[0]
        H, E = h.shape[1], z.shape[1]
        self.gb[:, :H] = h
        self.gb[:, H:H + E] = z
        self.gb[:, H + E] = 1.0
        np.matmul(self.gb[:n], self.wht, out=self.hb)
        self.hb_valid = True

    def run(self, world, book, until: np.ndarray, k_ev: int, tdec: np.ndarray) -> int:
        """Advance every env of ``book`` as ``gru_advance`` (``k_ev = 0``) or ``gru_advance_events``
        (``k_ev >= 1``) would; returns the number of batched passes (for the benchmark)."""
        n = book.n_envs
        self._alloc(n, world.x.shape[1])
        if not self.hb_valid:
            self.refresh_heads(world.h, world.z)
        w = self.w
        logic = gru_batch_logic_parallel if self.parallel and numba.get_num_threads() > 1 else gru_batch_logic
        self.bs[:, B_PH] = PH_START
        self.act[:] = np.arange(n)
        head = (self.act, n)
        tail = (self.status, self.cidx, self.ridx, self.goff, np.int64(k_ev), until, tdec, *w.kernel_args(),
                self.dims, w.centers, w.lot, w.min_dt_s, book.px, book.sz, book.dq, book.nl, book.orders,
                book.pend, book.cmds, book.fills, book.es, book.acct, book.cnt, book.rng, book.lat, book.cfg,
                float(book.config.queue_power), world.wrng, world.h, world.z, world.x, world.si, world.wfp,
                world.wcnt, world.log, world.nlog, world.track, world.wprob, world.wfirst, world.agent_tokens,
                self.bs, self.bu, self.hb, self.hd, self.rr, self.pos, self.ws)
        with _BLAS(self.blas_threads):
            return self._loop(world, logic, head, tail, n)

    def _loop(self, world, logic, head, tail, n: int) -> int:
        w = self.w
        H = w.hidden
        passes = 0
        scalar = n < self.tail
        while True:
            nc, nr = logic(*head, scalar, *tail)
            if scalar or nc + nr == 0:
                break
            if nc + nr < self.tail:
                logic(self.act, nc + nr, True, *tail)
                break
            passes += 1
            gru_batch_gather(self.cidx, nc, self.ridx, nr, world.x, world.h, world.z, w.mean, w.std, self.xsb,
                             self.hob, self.gb)
            if nc:
                np.matmul(self.xsb[:nc], self.wet, out=self.zp[:nc])
                gru_batch_tanh(nc, self.zp, self.hz)
                np.matmul(self.hz[:nc, H:], self.wiht, out=self.gib[:nc])
                np.matmul(self.hob[:nc], self.whht, out=self.ghb[:nc])
                gru_batch_gates(self.cidx, nc, self.gib, self.ghb, self.hob, self.hz, world.h, world.z)
                np.matmul(self.hz[:nc], self.wht, out=self.hd[:nc])
            if nr:
                g = self.goff
                for k in range(N_GROUPS):
                    a, b = g[k], g[k + 1]
                    if b > a:
                        np.matmul(self.gb[a:b], self.wrt[k], out=self.rr[a:b])
            head = (self.act, nc + nr)
        return passes

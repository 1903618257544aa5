"""Order-by-order book replay for Databento MBO events (Numba).

Rebuilds the top ``levels`` price levels (size and order count per level)
after every MBO record, so MBO files give the same canonical book columns as
MBP files. Databento action semantics:

* ``A`` add: a new resting order (side, price, size).
* ``C`` cancel: removes ``size`` shares of the order (partial or full).
* ``M`` modify: the order's new price and size.
* ``F`` fill: a resting order loses ``size`` shares.
* ``R`` clear: the book is emptied.
* ``T`` trade, ``N`` none: no change to the book.

Orders unknown to the replay (a file that starts without a snapshot) are
ignored by ``C``/``F`` and added by ``M``. The book may be transiently
inconsistent inside one exchange packet (Databento marks the last record of a
packet with ``F_LAST``); rows are the book after each record regardless.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

from lobworld.world_models.data.errors import DataValidationError

ACT_A, ACT_C, ACT_M, ACT_F, ACT_R, ACT_OTHER = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _level_add(keys, sz, ct, n, key, dq, dc):
    """Add ``dq`` shares / ``dc`` orders at ``key`` in the ascending level arrays; returns new n."""
    i = np.searchsorted(keys[:n], key)
    if i < n and keys[i] == key:
        sz[i] += dq
        ct[i] += dc
        if sz[i] <= 0:
            for j in range(i, n - 1):
                keys[j] = keys[j + 1]
                sz[j] = sz[j + 1]
                ct[j] = ct[j + 1]
            return n - 1
        return n
    if dq <= 0:
        return n
    for j in range(n, i, -1):
        keys[j] = keys[j - 1]
        sz[j] = sz[j - 1]
        ct[j] = ct[j - 1]
    keys[i] = key
    sz[i] = dq
    ct[i] = dc
    return n + 1


@njit(cache=True)
def _replay(act, side, price, size, oid, levels, cap, out_bpx, out_bsz, out_bct, out_apx, out_asz, out_act):
    n = act.shape[0]
    bkeys = np.empty(cap, np.int64)
    bsz = np.zeros(cap, np.int64)
    bct = np.zeros(cap, np.int64)
    akeys = np.empty(cap, np.int64)
    asz = np.zeros(cap, np.int64)
    act_ = np.zeros(cap, np.int64)
    nb = 0
    na = 0
    o_side = Dict.empty(key_type=types.int64, value_type=types.int64)
    o_px = Dict.empty(key_type=types.int64, value_type=types.int64)
    o_sz = Dict.empty(key_type=types.int64, value_type=types.int64)
    for k in range(n):
        a = act[k]
        if a == ACT_R:
            nb = 0
            na = 0
            o_side.clear()
            o_px.clear()
            o_sz.clear()
        elif a == ACT_A or (a == ACT_M and oid[k] not in o_side):
            if side[k] != 0 and size[k] > 0:
                o_side[oid[k]] = side[k]
                o_px[oid[k]] = price[k]
                o_sz[oid[k]] = size[k]
                if side[k] > 0:
                    nb = _level_add(bkeys, bsz, bct, nb, -price[k], size[k], 1)
                else:
                    na = _level_add(akeys, asz, act_, na, price[k], size[k], 1)
        elif a == ACT_C or a == ACT_F or a == ACT_M:
            if oid[k] in o_side:
                s = o_side[oid[k]]
                px = o_px[oid[k]]
                q = o_sz[oid[k]]
                if a == ACT_M:
                    rem = q
                else:
                    rem = min(size[k], q)
                gone = 1 if rem >= q else 0
                if s > 0:
                    nb = _level_add(bkeys, bsz, bct, nb, -px, -rem, -gone)
                else:
                    na = _level_add(akeys, asz, act_, na, px, -rem, -gone)
                if gone == 1:
                    del o_side[oid[k]]
                    del o_px[oid[k]]
                    del o_sz[oid[k]]
                else:
                    o_sz[oid[k]] = q - rem
                if a == ACT_M and size[k] > 0:
                    o_side[oid[k]] = s
                    o_px[oid[k]] = price[k]
                    o_sz[oid[k]] = size[k]
                    if s > 0:
                        nb = _level_add(bkeys, bsz, bct, nb, -price[k], size[k], 1)
                    else:
                        na = _level_add(akeys, asz, act_, na, price[k], size[k], 1)
        for j in range(levels):
            if j < nb:
                out_bpx[k, j] = -bkeys[j]
                out_bsz[k, j] = bsz[j]
                out_bct[k, j] = bct[j]
            else:
                out_bpx[k, j] = np.iinfo(np.int64).max
                out_bsz[k, j] = 0
                out_bct[k, j] = 0
            if j < na:
                out_apx[k, j] = akeys[j]
                out_asz[k, j] = asz[j]
                out_act[k, j] = act_[j]
            else:
                out_apx[k, j] = np.iinfo(np.int64).max
                out_asz[k, j] = 0
                out_act[k, j] = 0


def replay_mbo(action, side, price_nanos, size, order_id, levels: int = 10) -> dict[str, np.ndarray]:
    """Book after each MBO record: ``bid_px, ask_px`` (USD, NaN when empty), ``bid_sz, ask_sz,
    bid_ct, ask_ct`` as ``(n, levels)`` float64 arrays.

    ``action``: array of single-letter strings; ``side``: ``"B"``/``"A"``/``"N"``;
    ``price_nanos``: int64 fixed-point prices (1e-9 USD); ``size``, ``order_id``: integers.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise DataValidationError(None, "bad_levels", f"replay_mbo: levels must be an int >= 1, got {levels!r}")
    amap = {"A": ACT_A, "C": ACT_C, "M": ACT_M, "F": ACT_F, "R": ACT_R}
    action = np.asarray(action).astype(str)
    act = np.full(len(action), ACT_OTHER, np.int64)
    for ch, code in amap.items():
        act[action == ch] = code
    s = np.asarray(side).astype(str)
    sd = np.where(s == "B", 1, np.where(s == "A", -1, 0)).astype(np.int64)
    px = np.array(price_nanos, np.int64)  # writable copies: one compiled signature of _replay
    n = len(act)
    cap = len(np.unique(px)) + 2
    out = {k: np.empty((n, levels), np.int64) for k in ("bpx", "bsz", "bct", "apx", "asz", "act")}
    _replay(act, sd, px, np.array(size, np.int64), np.array(order_id, np.int64), levels, cap,
            out["bpx"], out["bsz"], out["bct"], out["apx"], out["asz"], out["act"])
    undef = np.iinfo(np.int64).max

    def usd(v):
        r = v.astype(np.float64) / 1e9
        r[v == undef] = np.nan
        return r

    return {"bid_px": usd(out["bpx"]), "ask_px": usd(out["apx"]), "bid_sz": out["bsz"].astype(np.float64),
            "ask_sz": out["asz"].astype(np.float64), "bid_ct": out["bct"].astype(np.float64),
            "ask_ct": out["act"].astype(np.float64)}

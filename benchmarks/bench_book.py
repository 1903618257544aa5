"""Replay throughput of the event-level book engine over the full GOOG L10 day (messages/s).

Measures, in one run:

* ``single``: one env replaying the whole day (levels entering the window resynchronised from
  the orderbook file; no per-row verification), no agent;
* ``single_agent``: the same with the touch quoter of
  :func:`lobworld.envs.replay.touch_quoter_commands` (re-quotes both sides every
  ``quote_every_ms``, default 1 s, and sends a market order every tenth time) under the ``colocated`` latency scenario;
* ``batch``: ``n_envs`` envs replaying different windows of the day (each ``window_frac`` of
  it, starts spread over the day), every one with the quoter active, in one kernel call;
* ``hftbacktest``: hftbacktest 2.4.4 (``pip install .[bench]``) replaying the same day
  converted to its depth/trade events, alone and with a market maker quoting both sides every
  ``quote_every_ms``, when it is installed.

Throughput is LOBSTER messages per second of wall time, best of ``repeat`` runs. Run:
``python benchmarks/bench_book.py [--n-envs 64] [--repeat 3]``; :func:`bench_book` returns the
figures as a dict (for ``lobworld bench``).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numba
import numpy as np

from lobworld.envs import book_kernels as bk
from lobworld.envs.replay import ReplayData, prepare_replay, run_replay, touch_quoter_commands

GOOG_L10 = "lobster/GOOG_2012-06-21_34200000_57600000_message_10.csv.gz"
_DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _best(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _ours(data, windows, commands, latency, repeat, parallel):
    def once():
        book = prepare_replay(data, windows, commands=commands, latency=latency, seed=0, strict=True)
        t0 = time.perf_counter()
        rep = run_replay(data, book, verify=False, parallel=parallel)
        return time.perf_counter() - t0, rep

    once()  # compile / warm the cache
    best, rep = float("inf"), None
    for _ in range(repeat):
        dt, rep = once()
        best = min(best, dt)
    msgs = int(rep.rows.sum())
    return {"messages": msgs, "seconds": best, "messages_per_s": msgs / best,
            "agent_fills": int(rep.book.acct[:, bk.A_NFILLS].sum()), "n_envs": len(windows)}


# ----------------------------------------------------------------------------- hftbacktest
def lobster_to_hftbacktest(data: ReplayData) -> np.ndarray:
    """The day as hftbacktest events: the first row's book as depth events, then per message a
    depth event with the level's new size (from the orderbook file), a trade event for each
    execution, and depth events for levels entering the window from beyond it."""
    from hftbacktest import BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT, TRADE_EVENT, event_dtype

    tp, fpx, fsz = data.tape, data.fpx, data.fsz
    N, L = fpx.shape[0], fpx.shape[2]
    tick = data.tick_size
    flag = EXCH_EVENT | LOCAL_EVENT
    side_flag = np.where(tp.side == bk.BID, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    rows = []
    # initial book
    for s in range(2):
        for j in range(L):
            if fsz[0, s, j] > 0:
                rows.append((DEPTH_EVENT | flag | (BUY_EVENT if s == 0 else SELL_EVENT), tp.t[0], tp.t[0],
                             fpx[0, s, j] * tick, float(fsz[0, s, j])))
    k = np.arange(1, N)
    typ = tp.type[k]
    s = tp.side[k].astype(np.int64)
    hit = fpx[k, s, :] == tp.price[k, None]
    new_sz = np.where(hit.any(axis=1), fsz[k, s, :][np.arange(len(k)), hit.argmax(axis=1)], 0)
    ev = np.zeros(0, dtype=event_dtype)
    depth = (typ >= 1) & (typ <= 4)
    trade = (typ == 4) | (typ == 5)
    parts = []
    head = np.zeros(len(rows), dtype=event_dtype)
    for j, r in enumerate(rows):
        head[j]["ev"], head[j]["exch_ts"], head[j]["local_ts"], head[j]["px"], head[j]["qty"] = r
    parts.append((np.full(len(head), -1), head))
    tr = np.zeros(int(trade.sum()), dtype=event_dtype)
    # the aggressor of an execution against a resting sell (ask) is a buyer
    aggr = np.where(s[trade] == bk.ASK, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    tr["ev"] = np.uint64(TRADE_EVENT | flag) | aggr
    tr["exch_ts"] = tr["local_ts"] = tp.t[k][trade]
    tr["px"] = tp.price[k][trade] * tick
    tr["qty"] = tp.size[k][trade]
    parts.append((k[trade] * 4 + 0, tr))
    de = np.zeros(int(depth.sum()), dtype=event_dtype)
    de["ev"] = np.uint64(DEPTH_EVENT | flag) | side_flag[k][depth]
    de["exch_ts"] = de["local_ts"] = tp.t[k][depth]
    de["px"] = tp.price[k][depth] * tick
    de["qty"] = new_sz[depth]
    parts.append((k[depth] * 4 + 1, de))
    # levels entering the window: their size comes from the file
    for side in range(2):
        rows_e = np.flatnonzero(data.entry & (1 << side))
        for j in range(L):
            r = rows_e[fsz[rows_e, side, j] > 0]
            if not len(r):
                continue
            prev_has = (fpx[r - 1, side, :] == fpx[r, side, j][:, None]).any(axis=1)
            r = r[~prev_has]
            en = np.zeros(len(r), dtype=event_dtype)
            en["ev"] = np.uint64(DEPTH_EVENT | flag | (BUY_EVENT if side == 0 else SELL_EVENT))
            en["exch_ts"] = en["local_ts"] = tp.t[r]
            en["px"] = fpx[r, side, j] * tick
            en["qty"] = fsz[r, side, j]
            parts.append((r * 4 + 2 + side, en))
    order = np.concatenate([p[0] for p in parts])
    ev = np.concatenate([p[1] for p in parts])
    return ev[np.argsort(order, kind="stable")]


def _hbt_make(events, latency_ns):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (BacktestAsset().data(events).linear_asset(1.0)
             .constant_order_latency(int(latency_ns), int(latency_ns))
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .tick_size(0.01).lot_size(1.0).last_trades_capacity(0))
    return HashMapMarketDepthBacktest([asset])


@numba.njit
def _hbt_replay(hbt, horizon):
    hbt.elapse(horizon)
    return 0


_GTX, _LIMIT = 1, 0  # hftbacktest.GTX (post-only), hftbacktest.LIMIT


@numba.njit
def _hbt_quoter(hbt, step_ns, size):
    oid = 0
    n = 0
    while hbt.elapse(step_ns) == 0:
        depth = hbt.depth(0)
        hbt.clear_inactive_orders(0)
        orders = hbt.orders(0)
        values = orders.values()
        while values.has_next():
            o = values.get()
            if o.cancellable:
                hbt.cancel(0, o.order_id, False)
        bb = depth.best_bid
        ba = depth.best_ask
        if bb > 0 and ba > bb:
            oid += 1
            hbt.submit_buy_order(0, oid, bb, size, _GTX, _LIMIT, False)
            oid += 1
            hbt.submit_sell_order(0, oid, ba, size, _GTX, _LIMIT, False)
        n += 1
    return n


def _hbt(events, n_msgs, horizon, repeat, every_ns):
    import hftbacktest as h

    assert (h.GTX, h.LIMIT) == (_GTX, _LIMIT)
    out = {}
    for name, quoting in (("replay", False), ("quoter", True)):
        best = float("inf")
        for r in range(repeat + 1):  # the first run compiles
            hbt = _hbt_make(events, 25_000)
            t0 = time.perf_counter()
            if quoting:
                _hbt_quoter(hbt, every_ns, 100.0)
            else:
                _hbt_replay(hbt, horizon)
            dt = time.perf_counter() - t0
            hbt.close()
            if r:
                best = min(best, dt)
        out[name] = {"messages": n_msgs, "events": len(events), "seconds": best,
                     "messages_per_s": n_msgs / best, "events_per_s": len(events) / best}
    return out


def bench_book(data_dir=None, *, n_envs: int = 64, window_frac: float = 0.5, repeat: int = 3,
               hftbacktest: bool = True, latency: str = "colocated", quote_every_ms: float = 1000.0) -> dict:
    """Run the benchmark (see the module docstring) and return its figures.

    ``data_dir``: the folder holding ``lobster/`` (default ``../shared/data``). Returns a dict
    with ``single``, ``single_agent``, ``batch`` (each ``messages``, ``seconds``,
    ``messages_per_s``, ``agent_fills``, ``n_envs``), ``hftbacktest`` (``replay`` and ``quoter``,
    or the reason it was skipped), ``ratio_batch_vs_hftbacktest_quoter``, ``threads``.
    """
    base = pathlib.Path(data_dir) if data_dir is not None else _DEFAULT_DATA
    data = ReplayData.from_lobster(base / GOOG_L10)
    N = data.n_rows
    t = data.tape.t
    res = {"data": data.name, "rows": N, "threads": numba.get_num_threads()}
    whole = [(0, N)]
    res["single"] = _ours(data, whole, None, "none", repeat, False)
    every = int(quote_every_ms * 1e6)
    res["single_agent"] = _ours(data, whole, [touch_quoter_commands(t, 0, N, every_ns=every)], latency, repeat,
                                False)
    w = max(2, int(N * window_frac))
    starts = np.linspace(0, N - w, n_envs).astype(np.int64)
    windows = [(int(s), int(s) + w) for s in starts]
    cmds = [touch_quoter_commands(t, s, e, every_ns=every) for s, e in windows]
    res["batch"] = _ours(data, windows, cmds, latency, repeat, None)
    if hftbacktest:
        try:
            import hftbacktest as _h  # noqa: F401
        except ImportError:
            res["hftbacktest"] = "not installed (pip install -e '.[bench]')"
        else:
            ev = lobster_to_hftbacktest(data)
            res["hftbacktest"] = _hbt(ev, N - 1, int(t[-1] - t[0]) + 1_000_000_000, repeat, every)
            res["ratio_batch_vs_hftbacktest_quoter"] = (res["batch"]["messages_per_s"]
                                                        / res["hftbacktest"]["quoter"]["messages_per_s"])
            res["ratio_single_vs_hftbacktest_replay"] = (res["single"]["messages_per_s"]
                                                         / res["hftbacktest"]["replay"]["messages_per_s"])
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n-envs", type=int, default=64)
    ap.add_argument("--window-frac", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quote-every-ms", type=float, default=1000.0)
    ap.add_argument("--no-hftbacktest", action="store_true")
    a = ap.parse_args(argv)
    r = bench_book(a.data_dir, n_envs=a.n_envs, window_frac=a.window_frac, repeat=a.repeat,
                   hftbacktest=not a.no_hftbacktest, quote_every_ms=a.quote_every_ms)
    print(f"{r['data']}, {r['rows']} rows, {r['threads']} Numba threads")
    for k in ("single", "single_agent", "batch"):
        x = r[k]
        print(f"  lobworld {k:13s} {x['n_envs']:4d} envs  {x['messages']:>10,d} msgs  {x['seconds']:.4f} s  "
              f"{x['messages_per_s'] / 1e6:7.2f}M msgs/s  agent fills {x['agent_fills']}")
    h = r.get("hftbacktest")
    if isinstance(h, dict):
        for k, x in h.items():
            print(f"  hftbacktest {k:8s}  {x['messages']:>10,d} msgs ({x['events']:,d} events)  {x['seconds']:.4f} s  "
                  f"{x['messages_per_s'] / 1e6:7.2f}M msgs/s")
        print(f"  ratio batch / hftbacktest quoter: {r['ratio_batch_vs_hftbacktest_quoter']:.2f}x; "
              f"single / hftbacktest replay: {r['ratio_single_vs_hftbacktest_replay']:.2f}x")
    elif h is not None:
        print(f"  hftbacktest: {h}")


if __name__ == "__main__":
    main()

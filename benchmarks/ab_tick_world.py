"""A/B of the parametric tick world's kernels: ``world_models/tick_world.py`` (B, the package's)
against the same file at a git revision (A; default ``HEAD``, ``LOBWORLD_AB_REF=<rev>`` picks
another: ``681cc93`` is the kernels before the 2026-12-07 speed pass), read with ``git show`` into a cache folder and imported as a module of its own, in one
process. Needs a git checkout.

Two parts:

* ``--check``: for GOOG and AMZN (shipped fits, default book), without an agent and with a
  touch-quoting agent that also sends market orders (colocated latency), serial and ``prange``,
  through ``advance`` (one 20 s call, then 1 s calls) and ``advance_events`` (3 events a call):
  the message logs, every book array (``px, sz, dq, nl, orders, pend, cmds, fills, es, acct,
  cnt, rng``) and every world array (``wrng, wt, w0, wref, wcnt, log, nlog``, the decision
  times) must be equal bit for bit. Raises on the first difference, naming the case and the array.
* timing: ``bench_tick_world``'s cases (4,096 envs from the default book, 60 s of market time,
  one call and 60 calls of 1 s, no agent), A and B alternating (A first in even rounds), best of
  ``--repeat``; prints M msgs/s of each and the ratio B/A.

Run: ``python benchmarks/ab_tick_world.py [--check] [--repeat 5] [--no-time] [--b FILE]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numba
import numpy as np

from lobworld.envs.book import Book, BookConfig
from lobworld.envs.book_kernels import A_NFILLS
from lobworld.world_models import tick_world as B
from lobworld.world_models.tick_parametric import load_fitted_cst

from _ab import load_module, ref_file  # a sibling module: the benchmarks folder is the script's path

HERE = pathlib.Path(__file__).resolve().parent
REF_REV = os.environ.get("LOBWORLD_AB_REF", "HEAD")
BOOK = ("px", "sz", "dq", "nl", "orders", "pend", "cmds", "fills", "es", "acct", "cnt", "rng")
WORLD = ("wrng", "wt", "w0", "wref", "wcnt", "log", "nlog")
S = 10**9


def _ref_file(rev: str = REF_REV) -> pathlib.Path:
    """``world_models/tick_world.py`` at ``rev`` (:func:`_ab.ref_file`)."""
    return ref_file("world_models/tick_world.py", rev, "_tick_world_ref.py", "ab_tick_world")


A = load_module("_tick_world_ref", _ref_file())


def use_b(path) -> None:
    """Compare against the kernels of file ``path`` instead of the package's (a scratch copy)."""
    global B
    B = load_module("_tick_world_b", path)


def _setup(mod, ticker, n, agent, parallel, record, seconds):
    w = mod.CSTWorld(load_fitted_cst(ticker), record=record, parallel=parallel)
    cfg = w.book_config(BookConfig(max_orders=4, max_pending=32, max_commands=4 * seconds + 8, max_fills=64))
    b = Book(n, cfg, latency="colocated" if agent else "none", seed=7)
    t0 = np.full(n, w.bounds()[0], np.int64)
    w.reset_rows(b, np.arange(n), t0)
    if agent:  # quotes one tick inside / at the touch every second, a market order every 7 s
        for i in range(n):
            rows = []
            for k in range(seconds):
                t = int(t0[i]) + k * S + 1_000 * (i + 1)
                rows.append(b.command(t, 6, 0, 0, 0, 100, "touch"))
                rows.append(b.command(t + 1, 6, 1, 1, i % 2, 100, "touch"))
                if k % 7 == 3:
                    rows.append(b.command(t + 2, 2, 2 + (k % 2), k % 2, 0, 50))
            b.schedule(i, np.stack(rows))
    return w, b, t0


def _run_case(mod, ticker, n, agent, parallel, api, seconds=24):
    w, b, t0 = _setup(mod, ticker, n, agent, parallel, record=20_000, seconds=seconds)
    dec = []
    if api == "advance":
        w.advance(b, t0 + 20 * S)
        for k in range(21, seconds + 1):
            w.advance(b, t0 + k * S)
    else:
        for _ in range(400):
            dec.append(w.advance_events(b, 3))
    out = {k: getattr(b, k).copy() for k in BOOK}
    out.update({k: getattr(w, k).copy() for k in WORLD})
    out["tdec"] = np.array(dec)
    return out


def check(tickers=("GOOG", "AMZN")) -> int:
    """Bit-for-bit comparison of A and B on every case; returns the number of cases run."""
    n_cases = 0
    for ticker in tickers:
        for agent in (False, True):
            for api in ("advance", "advance_events"):
                n = 64
                ra = _run_case(A, ticker, n, agent, False, api)
                for par in (False, True):
                    rb = _run_case(B, ticker, n, agent, par, api)
                    for k, va in ra.items():
                        vb = rb[k]
                        if va.shape != vb.shape or not np.array_equal(va, vb):
                            bad = np.argwhere(va != vb)[:3] if va.shape == vb.shape else "shape"
                            raise AssertionError(f"{ticker} agent={agent} {api} parallel={par}: {k} differs "
                                                 f"(first at {bad})")
                msgs = int(ra["wcnt"][:, B.W_MSGS].sum())
                fills = int(ra["acct"][:, A_NFILLS].sum())
                print(f"  equal: {ticker} agent={agent} {api} serial and prange ({msgs:,d} msgs, "
                      f"{int(ra['wcnt'][:, B.W_REDRAWS].sum())} redraws, {fills} agent fills)", flush=True)
                n_cases += 1
    return n_cases


def _time_once(mod, ticker, n, seconds, per_second):
    w, b, t0 = _setup(mod, ticker, n, False, None, 0, seconds)
    steps = range(1, seconds + 1) if per_second else [seconds]
    tic = time.perf_counter()
    for k in steps:
        w.advance(b, t0 + k * S)
    return time.perf_counter() - tic, int(w.wcnt[:, B.W_MSGS].sum())


def timing(repeat: int, n: int = 4096, seconds: int = 60) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}, {numba.get_num_threads()} Numba threads, best of {repeat}, "
          f"A = {REF_REV}, B = {B.__file__}")
    for ticker in ("GOOG", "AMZN"):
        for per_second in (False, True):
            _time_once(A, ticker, n, 2, per_second)
            _time_once(B, ticker, n, 2, per_second)  # compile / warm
            best = {"A": float("inf"), "B": float("inf")}
            msgs = {}
            for r in range(repeat):
                for tag, mod in ((("A", A), ("B", B)) if r % 2 == 0 else (("B", B), ("A", A))):
                    dt, m = _time_once(mod, ticker, n, seconds, per_second)
                    best[tag] = min(best[tag], dt)
                    msgs[tag] = m
            ra, rb = (msgs[t] / best[t] / 1e6 for t in "AB")
            name = f"{ticker} {'60 x 1 s calls' if per_second else 'one 60 s call'}"
            print(f"  {name:22s} A {ra:6.2f}M msgs/s   B {rb:6.2f}M msgs/s   B/A {rb / ra:.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="bit-for-bit comparison on GOOG and AMZN first")
    ap.add_argument("--tickers", default="GOOG,AMZN")
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--b", default=None, help="a tick_world.py to use as B instead of the package's")
    a = ap.parse_args(argv)
    if a.b:
        use_b(a.b)
    if a.check:
        print(f"checked {check(a.tickers.split(','))} cases: all arrays equal")
    if not a.no_time:
        timing(a.repeat)


if __name__ == "__main__":
    main()

"""A/B of the book kernels: ``envs/book_kernels.py`` (B, the package's) against the same file at
an earlier git revision (A; default ``ccd5480``, the kernels before the 2026-12-07 speed pass,
extracted with ``git show`` into a cache folder; ``LOBWORLD_AB_REF=<rev>`` picks another), in one
process. Needs a git checkout.

Two parts:

* ``--check``: every state array the kernels write (``px, sz, dq, nl, orders, pend, cmds, fills,
  es, acct, cnt, rng``) must be equal bit for bit after a replay of the full GOOG L10 and AMZN
  L5 days, without an agent and with the touch quoter under every latency preset, with and
  without per-row verification, serial and threaded (64 half-day windows). Raises on the
  first difference, naming the case and the array.
* timing: the cases of ``benchmarks/bench_book.py`` (1 env no agent, 1 env with the quoter,
  64 envs x half-day windows with quoters, serial and 2 threads), A and B alternating (A first in even rounds, B first in odd ones), best of
  ``--repeat``; prints ns/message for each and the ratio A/B.

Run: ``python benchmarks/ab_book_kernels.py [--check] [--repeat 5] [--no-time]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numba
import numpy as np

from lobworld.envs import book_kernels as B
from lobworld.envs.book import BookConfig, _compact
from lobworld.envs.latency import LATENCY_SCENARIOS
from lobworld.envs.replay import ReplayData, prepare_replay, touch_quoter_commands

from _ab import load_module, ref_file  # a sibling module: the benchmarks folder is the script's path

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "data" / "lobster"
DAYS = {"GOOG": "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz",
        "AMZN": "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"}
STATE = ("px", "sz", "dq", "nl", "orders", "pend", "cmds", "fills", "es", "acct", "cnt", "rng")


REF_REV = os.environ.get("LOBWORLD_AB_REF", "ccd5480")


def _ref_file(rev: str = REF_REV) -> pathlib.Path:
    """``envs/book_kernels.py`` at git revision ``rev`` (:func:`_ab.ref_file`)."""
    return ref_file("envs/book_kernels.py", rev, "_book_kernels_ref.py", "ab_book_kernels")


A = load_module("_book_kernels_ref", _ref_file())


def use_b(path) -> None:
    """Compare against the kernels of file ``path`` instead of the package's (a scratch copy)."""
    global B
    B = load_module("_book_kernels_b", path)


class Case:
    """One prepared replay: the book's state before the run and the kernel arguments."""

    def __init__(self, data, windows, commands, latency, verify, seed=0, config=None):
        book = prepare_replay(data, windows, commands=commands, latency=latency, seed=seed, strict=False,
                              config=config)
        N = data.n_rows
        win = book.windows
        self.stop = win[:, 1].copy()
        self.t_flush = np.where(win[:, 1] < N, data.tape.t[np.minimum(win[:, 1], N - 1)], np.int64(B.INT_MAX))
        fpx, fsz, entry = data.file
        erow = np.zeros(0, np.int32)
        if not verify:
            fpx, fsz, erow = _compact(fpx, fsz, entry)
        self.file = (fpx, fsz, entry, erow)
        tp = data.tape
        self.tape = (tp.t, tp.type, tp.side, tp.price, tp.size)
        book.cfg[B.CF_VERIFY] = int(verify)
        book.cfg[B.CF_RESYNC] = 1
        self.cfg = book.cfg.copy()
        self.lat = book.lat.copy()
        self.qpow = float(book.config.queue_power)
        self.state0 = {k: getattr(book, k).copy() for k in STATE}
        self.messages = int((self.stop - book.es[:, B.ES_POS]).clip(0).sum())

    def run(self, mod, parallel):
        st = {k: v.copy() for k, v in self.state0.items()}
        kern = mod.book_run_parallel if parallel else mod.book_run
        t0 = time.perf_counter()
        c0 = time.thread_time()
        kern(self.stop, *self.tape, *self.file, st["px"], st["sz"], st["dq"], st["nl"], st["orders"], st["pend"],
             st["cmds"], st["fills"], st["es"], st["acct"], st["cnt"], st["rng"], self.lat, self.cfg, self.qpow,
             self.t_flush)
        self.cpu = time.thread_time() - c0
        return time.perf_counter() - t0, st


def _windows(N, n_envs, frac):
    w = max(2, int(N * frac))
    starts = np.linspace(0, N - w, n_envs).astype(np.int64)
    return [(int(s), int(s) + w) for s in starts]


def _quoter(data, windows, every_ns=1_000_000_000):
    return [touch_quoter_commands(data.tape.t, s, e, every_ns=every_ns) for s, e in windows]


def check(days=("GOOG", "AMZN")) -> int:
    """Bit-for-bit comparison of A and B on every case; returns the number of cases run."""
    n = 0
    for day in days:
        data = ReplayData.from_lobster(DATA / DAYS[day])
        N = data.n_rows
        whole = [(0, N)]
        deep = max(data.levels, 20)
        prob = BookConfig(depth=deep, queue_model="probabilistic", queue_power=2.0)
        live = BookConfig(depth=deep, mode="live", max_orders=4)
        cases = [("no agent", whole, None, "none", False, (False,), None),
                 ("no agent, verify", whole, None, "none", True, (False,), None)]
        for lat in LATENCY_SCENARIOS:
            cases.append((f"quoter, {lat}", whole, _quoter(data, whole), lat, False, (False,), None))
        q100 = _quoter(data, whole, 100_000_000)
        cases.append(("quoter 100 ms, colocated, verify", whole, q100, "colocated", True, (False,), None))
        cases.append(("quoter 100 ms, cloud, probabilistic queue ** 2", whole, q100, "cloud", False, (False,), prob))
        cases.append(("quoter 100 ms, colocated, live mode, depth 20", whole, q100, "colocated", False, (False,),
                      live))
        wins = _windows(N, 64, 0.5)
        cases.append(("64 x half-day quoters, colocated", wins, _quoter(data, wins), "colocated", False,
                      (False, True), None))
        wins8 = _windows(N, 8, 0.3)
        cases.append(("8 x 0.3-day quoters 50 ms, proximity", wins8, _quoter(data, wins8, 50_000_000), "proximity",
                      False, (False, True), None))
        for name, wins, cmds, lat, verify, pars, cfg in cases:
            c = Case(data, wins, cmds, lat, verify, config=cfg)
            _, ra = c.run(A, False)
            for par in pars:
                _, rb = c.run(B, par)
                for k in STATE:
                    if ra[k].shape != rb[k].shape or not np.array_equal(ra[k], rb[k]):
                        bad = np.argwhere(ra[k] != rb[k])[:3] if ra[k].shape == rb[k].shape else "shape"
                        raise AssertionError(f"{day} {name} parallel={par}: {k} differs (first at {bad})")
            fills = int(ra["acct"][:, B.A_NFILLS].sum())
            print(f"  equal: {day} {name} ({c.messages:,d} msgs, {fills} agent fills)", flush=True)
            n += 1
    return n


def timing(repeat: int) -> None:
    data = ReplayData.from_lobster(DATA / DAYS["GOOG"])
    N = data.n_rows
    whole = [(0, N)]
    wins = _windows(N, 64, 0.5)
    cases = [("1 env, no agent", Case(data, whole, None, "none", False), False),
             ("1 env, touch quoter (colocated)", Case(data, whole, _quoter(data, whole), "colocated", False), False),
             ("64 x half-day, quoters, serial", Case(data, wins, _quoter(data, wins), "colocated", False), False),
             ("64 x half-day, quoters, threads", Case(data, wins, _quoter(data, wins), "colocated", False), True)]
    print(f"load average {os.getloadavg()[0]:.2f}, {numba.get_num_threads()} Numba threads, best of {repeat}")
    for name, c, par in cases:
        c.run(A, par)
        c.run(B, par)  # compile / warm
        best = {"A": float("inf"), "B": float("inf")}
        cpu = {"A": float("inf"), "B": float("inf")}
        for r in range(repeat):
            for tag, mod in ((("A", A), ("B", B)) if r % 2 == 0 else (("B", B), ("A", A))):
                dt, _ = c.run(mod, par)
                best[tag] = min(best[tag], dt)
                cpu[tag] = min(cpu[tag], c.cpu)
        na, nb = (best[t] / c.messages * 1e9 for t in "AB")
        extra = ""
        if not par:  # the CPU time of the one thread that ran it: less sensitive to the machine's load
            ca, cb = (cpu[t] / c.messages * 1e9 for t in "AB")
            extra = f"   cpu A {ca:6.1f} B {cb:6.1f} A/B {ca / cb:.2f}"
        print(f"  {name:34s} wall A {na:6.1f} ns/msg = {1e3 / na:5.2f}M/s   B {nb:6.1f} ns/msg = {1e3 / nb:5.2f}M/s"
              f"   A/B {na / nb:.2f}{extra}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="bit-for-bit comparison on GOOG and AMZN first")
    ap.add_argument("--days", default="GOOG,AMZN")
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--b", default=None, help="a kernel file to use as B instead of envs/book_kernels.py")
    a = ap.parse_args(argv)
    if a.b:
        use_b(a.b)
    if a.check:
        print(f"checked {check(a.days.split(','))} cases: all state arrays equal")
    if not a.no_time:
        timing(a.repeat)


if __name__ == "__main__":
    main()

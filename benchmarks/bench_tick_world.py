"""Throughput of the parametric (Cont-Stoikov-Talreja) tick world: simulated messages per second.

Measures, in one run:

* ``parametric_<TICKER>``: ``n_envs`` (default 4,096) books of :class:`~lobworld.world_models.tick_world.CSTWorld`
  with the shipped fit of the ticker, from the default book, advanced ``seconds`` of market time
  in one call (``one_call``) and in 1 s calls (``per_second``: the tick envs' pattern at ``dt = 1``),
  no agent; messages are those applied to the books (``W_MSGS``);
* ``replay``: the book engine replaying the GOOG L10 day of ``../shared/data`` (64 envs, each half
  the day, no agent, levels entering the window resynchronised), the engine's own rate in the same
  process for comparison.

``lobworld bench --tick`` runs the same parametric cases from the CLI. Best of ``repeat`` runs (the first run compiles / warms the cache and is not timed). Run:
``python benchmarks/bench_tick_world.py [--n-envs 4096] [--seconds 60] [--repeat 3]``;
:func:`bench_tick_world` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numba
import numpy as np

from lobworld.cli.bench import time_cst_world
from lobworld.envs.replay import ReplayData, prepare_replay, run_replay

GOOG_L10 = "lobster/GOOG_2012-06-21_34200000_57600000_message_10.csv.gz"
_DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _parametric(ticker: str, n_envs: int, seconds: int, repeat: int, chunk_s: int | None) -> dict:
    x = time_cst_world(ticker, n_envs, seconds, repeat, chunk_s)
    assert x.pop("redraws") == 0
    return x


def _replay(data_dir, repeat: int, n_envs: int = 64) -> dict:
    data = ReplayData.from_lobster(pathlib.Path(data_dir) / GOOG_L10)
    N = data.n_rows
    w = N // 2
    starts = np.linspace(0, N - w, n_envs).astype(np.int64)
    windows = [(int(s), int(s) + w) for s in starts]
    best, msgs = float("inf"), 0
    for r in range(repeat + 1):
        book = prepare_replay(data, windows, commands=None, latency="none", seed=0, strict=True)
        tic = time.perf_counter()
        rep = run_replay(data, book, verify=False, parallel=None)
        dt = time.perf_counter() - tic
        if r > 0 and dt < best:
            best, msgs = dt, int(rep.rows.sum())
    return {"n_envs": n_envs, "messages": msgs, "seconds": best, "messages_per_s": msgs / best}


def bench_tick_world(data_dir=None, *, n_envs: int = 4096, seconds: int = 60, repeat: int = 3,
                     tickers=("GOOG", "AMZN"), replay: bool = True) -> dict:
    """Run the benchmark (see the module docstring); returns ``{"threads", "parametric_<T>":
    {"one_call", "per_second"}, "replay"}`` with ``messages``, ``seconds``, ``messages_per_s``."""
    res: dict = {"threads": numba.get_num_threads()}
    for t in tickers:
        res[f"parametric_{t}"] = {"one_call": _parametric(t, n_envs, seconds, repeat, None),
                                  "per_second": _parametric(t, n_envs, seconds, repeat, 1)}
    if replay:
        base = pathlib.Path(data_dir) if data_dir is not None else _DEFAULT_DATA
        res["replay"] = _replay(base, repeat)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n-envs", type=int, default=4096)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-replay", action="store_true")
    a = ap.parse_args(argv)
    r = bench_tick_world(a.data_dir, n_envs=a.n_envs, seconds=a.seconds, repeat=a.repeat, replay=not a.no_replay)
    print(f"{r['threads']} Numba threads")
    for k, v in r.items():
        if k.startswith("parametric_"):
            for mode, x in v.items():
                print(f"  {k:16s} {mode:10s} {x['n_envs']:5d} envs x {x['market_seconds']} s  {x['messages']:>11,d} msgs  "
                      f"{x['seconds']:.3f} s  {x['messages_per_s'] / 1e6:6.2f}M msgs/s  "
                      f"{x['market_seconds_per_s'] / 1e6:6.2f}M market-s/s  (depth {x['depth']})")
    if "replay" in r:
        x = r["replay"]
        print(f"  book replay      GOOG L10 day {x['n_envs']:4d} envs  {x['messages']:>11,d} msgs  {x['seconds']:.3f} s  "
              f"{x['messages_per_s'] / 1e6:6.2f}M msgs/s")


if __name__ == "__main__":
    main()

"""Throughput of the market-making env: env-steps per second, raw kernel and both batched faces.

Queue position and latency on (``fill_model="queue"``, cloud latency with
jitter), parametric dynamics, Poisson or Hawkes arrivals, random valid quotes
(8 pre-drawn action batches cycled), same-step autoreset, compilation excluded.
Columns: the raw kernel (``core._step_rows``: no action validation, no info
dicts), the Gymnasium vector face (``MarketMakingVectorEnv.step``) and the SB3
face (``make_sb3_vec_env``). Each figure is the best of ``--reps`` timed runs.

    python benchmarks/bench_market_making.py [--threads N] [--steps S] [--reps R] [--n-envs 1000,10000]
                                             [--arrival poisson,hawkes] [--serial-vs-parallel]

``--serial-vs-parallel`` adds the raw kernel on one Numba thread. Numbers depend
on the machine and its load; run on a quiet machine.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from lobworld.envs import make_sb3_vec_env
from lobworld.envs.market_making import MarketMakingConfig, MarketMakingCore, MarketMakingVectorEnv


def _config(arrival: str) -> MarketMakingConfig:
    return MarketMakingConfig(horizon=3600, latency="cloud", arrival=arrival, inventory_limit=1e9,
                              dynamics="parametric")


def _actions(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform([0, 0, 0, 0], [20, 20, 300, 300], (n, 4)).astype(np.float32) for _ in range(8)]


def _time(step, acts, steps: int, reps: int, n: int) -> float:
    for a in acts:  # warm up
        step(a)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        for k in range(steps):
            step(acts[k & 7])
        best = max(best, n * steps / (time.perf_counter() - t0))
    return best


def bench(n: int, steps: int, reps: int, arrival: str, parallel: bool | None = None) -> dict[str, float]:
    cfg = _config(arrival)
    acts = _actions(n)
    acts64 = [a.astype(np.float64) for a in acts]
    core = MarketMakingCore(n, cfg, parallel=parallel)
    core.seed_rows(range(n), range(n))
    core.reset()
    out = {"raw": _time(lambda a: core._step_rows(a, True), acts64, steps, reps, n)}
    if parallel is not None:
        return out
    venv = MarketMakingVectorEnv(num_envs=n, config=cfg)
    venv.reset(seed=0)
    out["gym_vector"] = _time(venv.step, acts, steps, reps, n)
    sb3 = make_sb3_vec_env("LOB-MarketMaking-v0", n_envs=n, seed=0, config=cfg)
    sb3.reset()
    out["sb3"] = _time(lambda a: sb3.step(a), acts, steps, reps, n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="Numba threads (default: all cores)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-envs", default="1000,10000")
    ap.add_argument("--arrival", default="poisson,hawkes")
    ap.add_argument("--serial-vs-parallel", action="store_true")
    args = ap.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"numba threads: {numba.get_num_threads()}")
    head = f"{'arrival':>8} {'n_envs':>7} {'raw kernel':>12} {'gym vector':>12} {'SB3 VecEnv':>12}"
    print(head + (f" {'raw 1 thread':>13}" if args.serial_vs_parallel else ""))
    for arrival in args.arrival.split(","):
        for n in (int(x) for x in args.n_envs.split(",")):
            r = bench(n, args.steps, args.reps, arrival)
            line = f"{arrival:>8} {n:>7} {r['raw'] / 1e6:>11.2f}M {r['gym_vector'] / 1e6:>11.2f}M {r['sb3'] / 1e6:>11.2f}M"
            if args.serial_vs_parallel:
                line += f" {bench(n, args.steps, args.reps, arrival, parallel=False)['raw'] / 1e6:>12.2f}M"
            print(line, flush=True)


if __name__ == "__main__":
    main()

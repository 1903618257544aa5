"""Throughput of the market-making env: env-steps per second.

Queue position and latency on (``fill_model="queue"``, cloud latency with
jitter), parametric dynamics, Poisson or Hawkes arrivals. Reports the raw
Numba kernel (``mm_step_parametric`` on preallocated buffers) and the core's
``step`` (action validation + kernel) at 1k and 10k envs.

    python benchmarks/bench_market_making.py [--threads N] [--steps S]

Numbers depend on the machine and its load; run on a quiet machine.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from lobworld.envs import market_making_kernels as K
from lobworld.envs.market_making import MarketMakingConfig, MarketMakingCore


def bench(n_envs: int, steps: int, arrival: str) -> tuple[float, float]:
    cfg = MarketMakingConfig(horizon=3600, latency="cloud", arrival=arrival, inventory_limit=1e9)
    core = MarketMakingCore(n_envs, cfg)
    core.seed_rows(range(n_envs), range(n_envs))
    core.reset()
    act = np.tile(np.array([10.0, 10.0, 100.0, 100.0]), (n_envs, 1))
    core.step(act, autoreset=True)  # compile / warm up

    def raw():
        K.mm_step_parametric(act, core._modes, core.rng_state, core.market, core.sv, core.qs, core.ep, core.t,
                             core.fills, core.cfg, core.lat_ow, core.lat_jit, core.lat_obs, core.dyn_args, True,
                             core.obs, core.final_obs, core.reward, core.terminated, core.truncated, core.ep_done)

    t0 = time.perf_counter()
    for _ in range(steps):
        raw()
    t_raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        core.step(act, autoreset=True)
    t_core = time.perf_counter() - t0
    return n_envs * steps / t_raw, n_envs * steps / t_core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="Numba threads (default: all cores)")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"numba threads: {numba.get_num_threads()}")
    print(f"{'arrival':>8} {'n_envs':>7} {'kernel steps/s':>16} {'core.step steps/s':>18}")
    for arrival in ("poisson", "hawkes"):
        for n in (1_000, 10_000):
            raw, core = bench(n, args.steps, arrival)
            print(f"{arrival:>8} {n:>7} {raw:>16,.0f} {core:>18,.0f}")


if __name__ == "__main__":
    main()

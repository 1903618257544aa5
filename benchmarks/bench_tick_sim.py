"""Simulated messages per second of the tick GRU simulator (world_models/tick_sim.py).

    .venv/bin/python benchmarks/bench_tick_sim.py [--envs 4096] [--steps 200] [--serial]

Starts every env from the first book of the shipped GOOG hour, compiles (first call), then times
``TickSimulator.run`` and prints messages/s (envs x steps / wall seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> None:
    from lobworld.world_models.tick_sim import TickSimulator, pack_tick_weights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--ticker", default="GOOG")
    ap.add_argument("--serial", action="store_true")
    ns = ap.parse_args(argv)
    sim = TickSimulator(pack_tick_weights(ns.ticker), n_envs=ns.envs, depth=10, parallel=not ns.serial)
    bp = 57_590 - np.arange(10)
    ap_ = 57_591 + np.arange(10)
    q = np.full(10, 100)
    sim.reset(0, bp, q, ap_, q, 36_000 * 10 ** 9)
    out = np.empty((ns.envs, ns.steps, 5), np.int64)
    sim.run(2, out[:, :2])
    t = time.perf_counter()
    sim.run(ns.steps, out)
    dt = time.perf_counter() - t
    n = ns.envs * ns.steps
    print(f"tick GRU simulator ({ns.ticker}, {'serial' if ns.serial else 'parallel'}): {ns.envs} envs x {ns.steps} "
          f"messages in {dt:.3f} s = {n / dt:,.0f} messages/s; counters {sim.counts.sum(0).tolist()}")


if __name__ == "__main__":
    main()

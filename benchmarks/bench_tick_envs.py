"""Throughput of the tick-level envs on the replay world: env-steps per second and tape messages per second.

``LOB-TickMarketMaking-v0`` (both quotes re-sent at the touch every decision, 100 shares) and
``LOB-TickExecution-v0`` (random valid child orders), ``dt = 1`` s decisions, colocated
latency, random windows of the shipped GOOG 2012-06-21 10:00-11:00 hour, same-step autoreset,
compilation excluded. Columns: the raw core (``core._step_rows``: no action validation, no info
dicts) and the SB3 face (``make_sb3_vec_env``); beside each, the tape messages the book engine
applied per wall second in the same run (``Book.cnt[:, N_MSGS]``). Each figure is the best of
``--reps`` timed runs of ``--steps`` decisions.

    python benchmarks/bench_tick_envs.py [--n-envs 4096] [--steps 50] [--reps 2] [--ids mm,exec]

Numbers depend on the machine and its load; a figure means something only next to the others of
the same run.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from lobworld.envs import book_kernels as bk
from lobworld.envs import make_sb3_vec_env
from lobworld.envs.tick import TickExecutionCore, TickMarketMakingCore

IDS = {"mm": ("LOB-TickMarketMaking-v0", TickMarketMakingCore), "exec": ("LOB-TickExecution-v0", TickExecutionCore)}
KW = {"mm": dict(horizon=600, inventory_limit=1e6, max_size=100.0, latency="colocated"),
      "exec": dict(horizon=300, quantity=1000, latency="colocated")}


def _actions(key: str, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if key == "mm":
        a = np.zeros((n, 6), np.float32)
        a[:, 2:4] = 100.0
        return [a] * 8
    return [np.stack([rng.uniform(0, 0.3, n), rng.integers(0, 4, n), rng.integers(0, 4, n)], 1).astype(np.float32)
            for _ in range(8)]


def _time(step, core, acts, steps: int, reps: int) -> tuple[float, float]:
    for a in acts[:2]:  # warm up (compilation)
        step(a)
    best, best_msgs = 0.0, 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        done_msgs = 0
        for k in range(steps):
            before = core.book.cnt[:, bk.N_MSGS].copy()
            step(acts[k & 7])
            # envs reset this step zeroed their counters: count what they ran before the reset
            after = core.book.cnt[:, bk.N_MSGS]
            done_msgs += int(np.maximum(after - before, 0).sum())
        wall = time.perf_counter() - t0
        if core.n_envs * steps / wall > best:
            best, best_msgs = core.n_envs * steps / wall, done_msgs / wall
    return best, best_msgs


def bench(key: str, n: int, steps: int, reps: int) -> dict[str, float]:
    env_id, core_cls = IDS[key]
    acts = _actions(key, n)
    core = core_cls(n, **KW[key])
    core.seed_rows(range(n), range(n))
    core.reset()
    acts64 = [a.astype(np.float64) for a in acts]
    raw, raw_msgs = _time(lambda a: core._step_rows(a, True), core, acts64, steps, reps)
    venv = make_sb3_vec_env(env_id, n_envs=n, seed=0, **KW[key])
    venv.reset()
    sb3, sb3_msgs = _time(lambda a: venv.step(a), venv.core, acts, steps, reps)
    return {"raw": raw, "raw_msgs": raw_msgs, "sb3": sb3, "sb3_msgs": sb3_msgs}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=4096)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--ids", default="mm,exec")
    args = p.parse_args(argv)
    print(f"Numba threads: {numba.get_num_threads()}; n_envs {args.n_envs}; dt = 1 s; replay world (GOOG hour)")
    print(f"{'id':28s} {'raw env-steps/s':>16s} {'msgs/s':>12s} {'SB3 env-steps/s':>16s} {'msgs/s':>12s}")
    out = {}
    for key in args.ids.split(","):
        r = bench(key, args.n_envs, args.steps, args.reps)
        out[IDS[key][0]] = r
        print(f"{IDS[key][0]:28s} {r['raw']:16,.0f} {r['raw_msgs']:12,.0f} {r['sb3']:16,.0f} {r['sb3_msgs']:12,.0f}")
    return out


if __name__ == "__main__":
    main()

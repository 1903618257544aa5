"""Env-steps per second of LOB-DarkPool-v0: raw batched kernel and the SB3 VecEnv face.

    .venv/bin/python benchmarks/bench_dark_pool.py [--n-envs 10000] [--steps 200]

The raw figure times ``DarkPoolCore.step`` (action validation + Numba kernel with
same-step autoreset); the SB3 figure times ``LOBSB3VecEnv.step`` (adds the copies and
the per-env info list). Actions are fixed random arrays prepared beforehand, so the
policy costs nothing. One warm-up pass compiles the kernels first.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lobworld.envs.core import LOBSB3VecEnv
from lobworld.envs.dark_pool import DarkPoolCore


def _actions(n: int, k: int, n_sets: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sets):
        a = rng.uniform(0, 1, (n, k + 2)).astype(np.float32)
        a[:, k + 1] = rng.uniform(0, 0.2, n)
        out.append(a)
    return out


def bench(n_envs: int, steps: int, scenario: str = "stationary") -> dict[str, float]:
    core = DarkPoolCore(n_envs=n_envs, scenario=scenario)
    acts = _actions(n_envs, core.n_dark)
    core.seed_rows(range(n_envs), range(n_envs))
    core.reset()
    core.step(acts[0], autoreset=True)  # compile
    t0 = time.perf_counter()
    for s in range(steps):
        core.step(acts[s % len(acts)], autoreset=True)
    raw = n_envs * steps / (time.perf_counter() - t0)

    venv = LOBSB3VecEnv(DarkPoolCore(n_envs=n_envs, scenario=scenario))
    venv.seed(0)
    venv.reset()
    venv.step(acts[0])
    t0 = time.perf_counter()
    for s in range(steps):
        venv.step(acts[s % len(acts)])
    sb3 = n_envs * steps / (time.perf_counter() - t0)
    return {"raw_steps_per_s": raw, "sb3_steps_per_s": sb3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--scenario", default="stationary")
    args = p.parse_args()
    r = bench(args.n_envs, args.steps, args.scenario)
    print(f"LOB-DarkPool-v0 ({args.scenario}), {args.n_envs} envs, {args.steps} steps, K=4:")
    print(f"  raw kernel : {r['raw_steps_per_s'] / 1e6:.2f} M env-steps/s")
    print(f"  SB3 VecEnv : {r['sb3_steps_per_s'] / 1e6:.2f} M env-steps/s")


if __name__ == "__main__":
    main()

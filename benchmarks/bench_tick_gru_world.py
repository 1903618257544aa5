"""Throughput of the learned tick world (``world="learned"``), per-env and batch engines, next to the parametric one.

* ``world``: ``n_envs`` books of the world alone (no agent orders: zero-size quotes), advanced in
  1 s calls (the tick envs' pattern at ``dt = 1``) from random starts in the shipped GOOG hour:
  market messages applied per wall second;
* ``raw`` / ``sb3``: ``LOB-TickMarketMaking-v0`` with both quotes re-sent at the touch every
  1 s decision (100 shares), colocated latency, same-step autoreset: env-steps per second
  through the raw core (``core._step_rows``) and the SB3 face (``make_sb3_vec_env``), with the
  world's messages per wall second in the same run.

Worlds (``--worlds``, comma-separated): ``learned-env`` (the per-env kernels, ``engine="env"``),
``learned-batch`` (the lockstep engine, ``engine="batch"``, ``--tail`` its ``batch_tail``),
``learned`` (``engine="auto"``), ``parametric`` (the CST world). Best of ``--reps`` timed runs of
``--steps`` decisions after two untimed ones (compilation).

    python benchmarks/bench_tick_gru_world.py [--n-envs 4096] [--steps 10] [--reps 2]
        [--worlds learned-env,learned-batch,parametric] [--tail 32]

Numbers depend on the machine and its load; a figure means something only next to the others of
the same run.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import lobworld  # noqa: F401  (registers the worlds)
from lobworld.envs import make_sb3_vec_env
from lobworld.envs.tick import TickMarketMakingCore

KW = dict(horizon=600, inventory_limit=1e6, max_size=100.0, latency="colocated")


def _time(step, core, act, steps: int, reps: int) -> tuple[float, float]:
    for _ in range(2):
        step(act)
    best, best_msgs = 0.0, 0.0
    for _ in range(reps):
        done = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            before = core.world.wcnt.copy()
            step(act)
            # envs reset in this step zeroed their counters: count only what did not go back
            done += int(np.maximum(core.world.wcnt - before, 0)[:, _col(core.world)].sum())
        wall = time.perf_counter() - t0
        if core.n_envs * steps / wall > best:
            best, best_msgs = core.n_envs * steps / wall, done / wall
    return best, best_msgs


def _col(world) -> int:
    from lobworld.world_models import tick_gru_world as G
    from lobworld.world_models import tick_world as C

    return G.W_MSGS if world.name == "learned" else C.W_MSGS


def _make(world: str, tail: int):
    """A fresh world for each core (a world holds per-env state)."""
    if not world.startswith("learned-"):
        return world
    from lobworld.envs.tick import ReplayWorld
    from lobworld.world_models.tick_gru_world import TickGRUWorld, _weights

    return TickGRUWorld(_weights("GOOG"), ReplayWorld.from_path(None).data, engine=world.split("-", 1)[1],
                        batch_tail=tail)


def bench(world: str, n: int, steps: int, reps: int, tail: int = 32) -> dict[str, float]:
    env_id = "LOB-TickMarketMaking-v0"
    zero = np.zeros((n, 6))
    touch = np.zeros((n, 6))
    touch[:, 2:4] = 100.0
    core = TickMarketMakingCore(n, world=_make(world, tail), **KW)
    core.seed_rows(range(n), range(n))
    core.reset()
    alone, alone_msgs = _time(lambda a: core._step_rows(a, True), core, zero, steps, reps)
    core = TickMarketMakingCore(n, world=_make(world, tail), **KW)
    core.seed_rows(range(n), range(n))
    core.reset()
    raw, raw_msgs = _time(lambda a: core._step_rows(a, True), core, touch, steps, reps)
    venv = make_sb3_vec_env(env_id, n_envs=n, seed=0, world=_make(world, tail), **KW)
    venv.reset()
    sb3, sb3_msgs = _time(lambda a: venv.step(a), venv.core, touch.astype(np.float32), steps, reps)
    return {"world_steps": alone, "world_msgs": alone_msgs, "raw": raw, "raw_msgs": raw_msgs, "sb3": sb3,
            "sb3_msgs": sb3_msgs}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=4096)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--worlds", default="learned-env,learned-batch,parametric")
    p.add_argument("--tail", type=int, default=32, help="batch_tail of learned-batch")
    args = p.parse_args(argv)
    print(f"Numba threads: {numba.get_num_threads()}; n_envs {args.n_envs}; dt = 1 s; GOOG hour")
    print(f"{'world':14s} {'alone msgs/s':>13s} {'raw env-steps/s':>16s} {'msgs/s':>12s} "
          f"{'SB3 env-steps/s':>16s} {'msgs/s':>12s}")
    out = {}
    for w in args.worlds.split(","):
        r = bench(w, args.n_envs, args.steps, args.reps, args.tail)
        out[w] = r
        print(f"{w:14s} {r['world_msgs']:13,.0f} {r['raw']:16,.0f} {r['raw_msgs']:12,.0f} {r['sb3']:16,.0f} "
              f"{r['sb3_msgs']:12,.0f}")
    return out


if __name__ == "__main__":
    main()

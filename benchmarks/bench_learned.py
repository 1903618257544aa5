"""Throughput of the learned (GRU) dynamics: raw Numba step, execution env, batched torch.

Run: ``.venv/bin/python benchmarks/bench_learned.py [--n-envs 8192] [--steps 200]``

* ``raw per-env``: one ``prange`` kernel calling ``LearnedDynamics.step_fn`` for every env
  (env dt = 60 s; the 10-second model runs 6 sub-steps per env step);
* ``raw batched``: the batch-level ``LearnedDynamics.batch_step_fn`` over chunks of
  ``BATCH_CHUNK`` envs (``prange`` over chunks) -- what the execution env uses;
* ``env``: ``ExecutionVectorEnv`` (``LOB-Execution-v0``) with ``dynamics=LearnedDynamics``
  and a TWAP-like constant action (episodes of 30 steps reset inside the loop, burn-in
  included), batched (default) and per-env (``LearnedDynamics(batch=False)``);
* ``parametric``: the same env on the parametric market, for the ratio;
* ``torch`` (``--torch``): the model step (encoder, flow head, sampling, GRU, heads, sampling)
  as batched ``torch.no_grad`` tensor ops over the same envs, for comparison.

Figures are env-steps per second (one env advanced by one 60 s step), best of ``--repeat``
timed runs after a compile run.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from numba import njit, prange

from lobworld.envs.rng import seed_states
from lobworld.world_models.learned import DEFAULT_CHECKPOINT, LearnedDynamics

WEIGHTS = pathlib.Path(DEFAULT_CHECKPOINT).parent


#: clock of the timed runs: wall clock, or (``--cpu-time``) this process's CPU time (with
#: ``NUMBA_NUM_THREADS=1``: per-core throughput, robust to other processes on a shared machine)
_clock = time.perf_counter


def _best(fn, repeat: int) -> float:
    """Best (largest) of ``repeat`` calls of ``fn() -> env-steps/s``."""
    return max(fn() for _ in range(repeat))


def _make_raw(step_fn):
    @njit(parallel=True)
    def run(rows, args, rng, q, n_steps):
        n = rows.shape[0]
        for t in range(n_steps):
            for i in prange(n):
                step_fn(i, rows[i], args, rng[i, 0], q[i], 1.0)

    return run


def _raw_setup(dyn: LearnedDynamics, n_envs: int, dt: float):
    """Arguments, streams and reset rows of ``n_envs`` envs; every other env sells 200 shares a step."""
    args = dyn.args(n_envs, dt)
    rng = seed_states(list(range(n_envs)), 1)
    rows = np.zeros((n_envs, dyn.n_state))
    for i in range(n_envs):
        dyn.reset_fn(i, rows[i], args, rng[i, 0])
    q = np.where(np.arange(n_envs) % 2 == 0, -200.0, 0.0)
    return args, rng, rows, q


def bench_raw(dyn: LearnedDynamics, n_envs: int, n_steps: int, dt: float = 60.0, repeat: int = 3) -> float:
    args, rng, rows, q = _raw_setup(dyn, n_envs, dt)
    run = _make_raw(dyn.step_fn)
    run(rows, args, rng, q, 1)  # compile

    def once():
        t0 = _clock()
        run(rows, args, rng, q, n_steps)
        return n_envs * n_steps / (_clock() - t0)

    return _best(once, repeat)


def _make_raw_batched(batch_step_fn):
    @njit(parallel=True)
    def run(idx, ws, rows, args, rng, q, vm, price, n_steps):
        n = idx.shape[0]
        ch = ws.shape[2]
        for t in range(n_steps):
            for c in prange((n + ch - 1) // ch):
                batch_step_fn(idx, c * ch, min(n, (c + 1) * ch), ws[c], rows, args, rng, 0, q, vm, price)

    return run


def bench_raw_batched(dyn: LearnedDynamics, n_envs: int, n_steps: int, dt: float = 60.0, repeat: int = 3) -> float:
    args, rng, rows, q = _raw_setup(dyn, n_envs, dt)
    vm = np.ones(n_envs)
    price = np.zeros(n_envs)
    idx = np.arange(n_envs, dtype=np.int64)
    ws = dyn.workspace(n_envs)
    run = _make_raw_batched(dyn.batch_step_fn)
    run(idx, ws, rows, args, rng, q, vm, price, 1)  # compile

    def once():
        t0 = _clock()
        run(idx, ws, rows, args, rng, q, vm, price, n_steps)
        return n_envs * n_steps / (_clock() - t0)

    return _best(once, repeat)


def bench_env(dyn, n_envs: int, n_steps: int, repeat: int = 3) -> float | None:
    try:
        from lobworld.envs.execution import ExecutionVectorEnv
    except ImportError:
        return None
    env = ExecutionVectorEnv(num_envs=n_envs, dynamics=dyn)
    env.reset(seed=0)
    a = np.full((n_envs, 1), 1.0 / 30.0, dtype=np.float32)
    env.step(a)  # compile

    def once():
        t0 = _clock()
        for _ in range(n_steps):
            env.step(a)
        return n_envs * n_steps / (_clock() - t0)

    return _best(once, repeat)


def bench_torch(dyn: LearnedDynamics, n_envs: int, n_steps: int, nsub: int) -> float:
    import torch

    from lobworld.world_models.dynamics_model import F_OFI, F_SVOL, N_FEATURES
    from lobworld.world_models.training import model_from_checkpoint

    torch.set_num_threads(2)
    model = model_from_checkpoint(dyn.checkpoint)
    H = model.cfg.hidden
    h = torch.zeros(n_envs, H)
    x = torch.zeros(n_envs, N_FEATURES)
    K = model.cfg.n_mix
    with torch.no_grad():
        def one():
            nonlocal h, x
            z = model.encode(x)
            flow = model.flow(torch.cat([h, z], -1))
            a = model.sample_flow(flow)
            h = model.gru_step(torch.cat([z, a], -1), h)
            head = model.head(h)
            lw, mu, ls, sl, dep, timb = model.split_head(head)
            comp = torch.multinomial(torch.softmax(lw, -1), 1)
            r = mu.gather(1, comp)[:, 0] + torch.exp(ls.gather(1, comp)[:, 0]) * torch.randn(n_envs)
            spr = torch.multinomial(torch.softmax(sl, -1), 1)[:, 0].float()
            xn = torch.empty_like(x)
            xn[:, 0] = r
            xn[:, 1] = spr
            xn[:, 2] = dep[:, 0] + torch.exp(dep[:, 1]) * torch.randn(n_envs)
            xn[:, 3] = torch.tanh(timb[:, 0] + torch.exp(timb[:, 1]) * torch.randn(n_envs))
            xn[:, 4:] = 0.0
            xn[:, F_OFI] = a[:, 0]
            xn[:, F_SVOL] = a[:, 1]
            x = xn
            return K

        one()
        t0 = _clock()
        for _ in range(n_steps * nsub):
            one()
    return n_envs * n_steps / (_clock() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-envs", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=60, help="env steps per timed run")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--models", default="60s,10s", help="shipped models to run (60s, 10s)")
    ap.add_argument("--no-track", action="store_true", help="also run with track_permanent=False")
    ap.add_argument("--per-env", action="store_true", help="also time the per-env (pre-batch) paths")
    ap.add_argument("--torch", action="store_true", help="also time batched torch inference")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by process CPU time (run with NUMBA_NUM_THREADS=1 for per-core figures)")
    args = ap.parse_args()
    n, T, R = args.n_envs, args.steps, args.repeat
    global _clock
    if args.cpu_time:
        _clock = time.process_time
    from lobworld.envs.dynamics import ParametricDynamics

    import numba

    clock = "process CPU time" if args.cpu_time else "wall clock"
    print(f"{n:,} envs, {T} env steps of 60 s per timed run, best of {R}, {clock}, "
          f"{numba.get_num_threads()} Numba thread(s); env-steps/s")
    par = bench_env(ParametricDynamics(), n, max(T, 200), R)
    print(f"parametric market, LOB-Execution-v0 : {par:>12,.0f}")
    for stem in args.models.split(","):
        path = WEIGHTS / f"bar_gru_{stem}.npz"
        for track in (True, False) if args.no_track else (True,):
            dyn = LearnedDynamics(path, track_permanent=track)
            nsub = dyn.n_substeps(60.0)
            steps = max(T // nsub, 5)
            print(f"{path.stem} (model dt {dyn.model_dt:g} s, {nsub} sub-step(s)/env step, track_permanent={track})")
            print(f"  raw batched step   : {bench_raw_batched(dyn, n, steps, repeat=R):>12,.0f}")
            e = bench_env(dyn, n, steps, R)
            print(f"  LOB-Execution-v0   : {e:>12,.0f}   ({e / par:.3f} of parametric)")
            if args.per_env:
                print(f"  raw per-env step   : {bench_raw(dyn, n, steps, repeat=R):>12,.0f}")
                e1 = bench_env(LearnedDynamics(path, track_permanent=track, batch=False), n, steps, R)
                print(f"  env, per-env step  : {e1:>12,.0f}")
            if args.torch and track:
                print(f"  batched torch      : {bench_torch(dyn, n, max(steps // 4, 3), nsub):>12,.0f}")


if __name__ == "__main__":
    main()

"""Throughput of the learned (GRU) dynamics: raw Numba step, execution env, batched torch.

Run: ``.venv/bin/python benchmarks/bench_learned.py [--n-envs 8192] [--steps 200]``

* ``raw``: one ``prange`` kernel calling ``LearnedDynamics.step_fn`` for every env
  (env dt = 60 s; the 10-second model runs 6 sub-steps per env step);
* ``env``: ``ExecutionVectorEnv`` (``LOB-Execution-v0``) with ``dynamics=LearnedDynamics``
  and a TWAP-like constant action (episodes reset inside the loop);
* ``torch``: the same model step (encoder, flow head, sampling, GRU, heads, sampling) as
  batched ``torch.no_grad`` tensor ops over the same envs, for comparison.

Figures are env-steps per second (one env advanced by one 60 s step).
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


def _make_raw(step_fn):
    @njit(parallel=True)
    def run(rows, args, rng, q, n_steps):
        n = rows.shape[0]
        for t in range(n_steps):
            for i in prange(n):
                step_fn(i, rows[i], args, rng[i, 0], q[i], 1.0)

    return run


def bench_raw(dyn: LearnedDynamics, n_envs: int, n_steps: int, dt: float = 60.0) -> float:
    args = dyn.args(n_envs, dt)
    rng = seed_states(list(range(n_envs)), 1)
    rows = np.zeros((n_envs, dyn.n_state))
    for i in range(n_envs):
        dyn.reset_fn(i, rows[i], args, rng[i, 0])
    q = np.where(np.arange(n_envs) % 2 == 0, -200.0, 0.0)
    run = _make_raw(dyn.step_fn)
    run(rows, args, rng, q, 1)  # compile
    t0 = time.perf_counter()
    run(rows, args, rng, q, n_steps)
    return n_envs * n_steps / (time.perf_counter() - t0)


def bench_env(dyn: LearnedDynamics, n_envs: int, n_steps: int) -> float | None:
    try:
        from lobworld.envs.execution import ExecutionVectorEnv
    except ImportError:
        return None
    env = ExecutionVectorEnv(num_envs=n_envs, dynamics=dyn)
    env.reset(seed=0)
    a = np.full((n_envs, 1), 1.0 / 30.0, dtype=np.float32)
    env.step(a)  # compile
    t0 = time.perf_counter()
    for _ in range(n_steps):
        env.step(a)
    return n_envs * n_steps / (time.perf_counter() - t0)


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
            z = torch.tanh(model.enc(x))
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
        t0 = time.perf_counter()
        for _ in range(n_steps * nsub):
            one()
    return n_envs * n_steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-envs", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    n, T = args.n_envs, args.steps
    for path in sorted(WEIGHTS.glob("bar_gru_*.npz")):
        for track in (True, False):
            dyn = LearnedDynamics(path, track_permanent=track)
            nsub = dyn.n_substeps(60.0)
            tag = f"{path.stem} (model dt {dyn.model_dt:g} s, {nsub} sub-step(s)/env step, track_permanent={track})"
            print(f"{tag}")
            print(f"  raw Numba step     : {bench_raw(dyn, n, T):>12,.0f} env-steps/s")
            e = bench_env(dyn, n, T)
            if e is not None:
                print(f"  LOB-Execution-v0   : {e:>12,.0f} env-steps/s")
            if track:
                print(f"  batched torch      : {bench_torch(dyn, n, max(T // 10, 5), nsub):>12,.0f} env-steps/s")


if __name__ == "__main__":
    main()

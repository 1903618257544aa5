"""``lobworld bench``: env-steps per second of every registered env, on three paths.

* ``raw``   -- the core's Numba step kernel with same-step autoreset, no action checks,
  no Python-side info building (``core._step_rows``);
* ``gym``   -- the Gymnasium vector env (``gym.make_vec(..., "vector_entry_point")``);
* ``sb3``   -- the native SB3 ``VecEnv`` (``make_sb3_vec_env``).

Random valid actions are drawn once (a pool of batches cycled through), so action
generation is not timed. Compilation happens in an untimed warm-up step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from lobworld.cli import CLIError

FACES = ("raw", "gym", "sb3")


def _action_pool(space, n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    from gymnasium import spaces

    rng = np.random.default_rng(seed)
    if isinstance(space, spaces.Discrete):
        return [rng.integers(space.start, space.start + space.n, size=n) for _ in range(k)]
    lo = np.where(np.isfinite(space.low), space.low, -1.0)
    hi = np.where(np.isfinite(space.high), space.high, 1.0)
    return [np.clip(rng.uniform(lo, hi, size=(n, *space.shape)), space.low, space.high).astype(space.dtype)
            for _ in range(k)]


def _auto_steps(n_envs: int) -> int:
    # at least 2,000 steps up to 10k envs: whole-batch episode ends come in bursts, so short
    # measurements at large batch sizes are noisy
    return int(min(2000, max(20, 20_000_000 // n_envs)))


def bench_env(env_id: str, n_envs: int, steps: int | None = None, faces=FACES, seed: int = 0,
              **env_kwargs: Any) -> list[dict[str, Any]]:
    """Time ``steps`` batched steps of ``env_id`` with ``n_envs`` envs on each face.

    ``env_kwargs`` override the id's registered arguments (e.g. ``dynamics="parametric"``).
    """
    import gymnasium as gym

    import lobworld  # noqa: F401
    from lobworld.envs.core import make_sb3_vec_env

    if env_id not in gym.registry:
        raise CLIError(f"unknown env id {env_id!r}; registered: {', '.join(lobworld.ENV_IDS)}")
    steps = steps or _auto_steps(n_envs)
    rows = []
    for face in faces:
        if face == "raw":
            venv = make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, **env_kwargs)
            core = venv.core
            core.reset()
            pool = [core.check_actions(a) for a in _action_pool(core.single_action_space, n_envs, 8, seed)]
            t0 = time.perf_counter()
            core._step_rows(pool[0], True)
            compile_s = time.perf_counter() - t0

            def step(a, core=core):
                core._step_rows(a, True)
        elif face == "gym":
            venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
            venv.reset(seed=seed)
            pool = _action_pool(venv.single_action_space, n_envs, 8, seed)
            t0 = time.perf_counter()
            venv.step(pool[0])
            compile_s = time.perf_counter() - t0
            step = venv.step
        elif face == "sb3":
            venv = make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, **env_kwargs)
            venv.reset()
            pool = _action_pool(venv.action_space, n_envs, 8, seed)
            t0 = time.perf_counter()
            venv.step(pool[0])
            compile_s = time.perf_counter() - t0
            step = venv.step
        else:
            raise CLIError(f"unknown face {face!r}; use one of {FACES}")
        t0 = time.perf_counter()
        for k in range(steps):
            step(pool[k & 7])
        dt = time.perf_counter() - t0
        core = getattr(venv, "core", None) or venv.unwrapped.core
        rows.append({"env": env_id, "dynamics": getattr(core.dynamics, "name", type(core.dynamics).__name__)
                     if hasattr(core, "dynamics") else "n/a", "face": face, "n_envs": n_envs, "steps": steps, "seconds": dt,
                     "env_steps_per_s": n_envs * steps / dt, "warmup_s": compile_s})
    return rows


def machine_info() -> dict[str, Any]:
    import numba

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}


def run_bench(env_ids=None, n_envs=(1, 1000, 10000), steps=None, faces=FACES, **env_kwargs: Any) -> list[dict[str, Any]]:
    import lobworld

    ids = list(env_ids) if env_ids else list(lobworld.ENV_IDS)
    rows = []
    for env_id in ids:
        for n in n_envs:
            rows.extend(bench_env(env_id, int(n), steps, faces, **env_kwargs))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'env':30s} {'dynamics':10s} {'face':4s} {'n_envs':>7s} {'steps':>6s} {'env-steps/s':>14s}"]
    for r in rows:
        lines.append(f"{r['env']:30s} {r['dynamics']:10s} {r['face']:4s} {r['n_envs']:7d} {r['steps']:6d} "
                     f"{r['env_steps_per_s']:14,.0f}")
    return "\n".join(lines)


def _parse_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from exc
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return vals


def _cmd_bench(args: argparse.Namespace) -> int:
    import lobworld

    unknown = [e for e in (args.env or []) if e not in lobworld.ENV_IDS]
    if unknown:
        print(f"lobworld bench: unknown env id(s) {unknown}; registered: {', '.join(lobworld.ENV_IDS)}",
              file=sys.stderr)
        return 2
    faces = tuple(args.face) if args.face else FACES
    kw = {"dynamics": args.dynamics} if args.dynamics else {}
    rows = run_bench(args.env, args.n_envs, args.steps, faces, **kw)
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0


def add_commands(sub) -> None:
    """Add ``bench`` to the ``lobworld`` CLI."""
    p = sub.add_parser("bench", help="env-steps/s of the registered envs (raw kernel, Gymnasium vector, SB3 VecEnv)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", metavar="ID", help="env id (repeatable; default: every registered id)")
    p.add_argument("--n-envs", type=_parse_ints, default=[1, 1000, 10000], metavar="N[,N...]",
                   help="batch sizes (default 1,1000,10000)")
    p.add_argument("--steps", type=int, default=None, help="batched steps per measurement (default: 2,000, fewer above 10k envs)")
    p.add_argument("--face", action="append", choices=FACES, help="faces to time (repeatable; default all)")
    p.add_argument("--dynamics", choices=("parametric", "learned"), default=None,
                   help="market dynamics for every id (default: each id's registered default: learned for "
                        "the execution ids, parametric for market making and the dark pool)")
    p.add_argument("--json", action="store_true", help="print JSON with machine info")
    p.set_defaults(func=_cmd_bench)

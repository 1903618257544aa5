"""``lobworld precompile``: compile every built-in kernel into Numba's disk cache, in parallel.

A fresh install compiles its kernels on first use (tens of seconds to minutes per env family, once:
later processes load them from the cache). ``lobworld precompile --jobs N`` does that work up front
in ``N`` worker processes, each driving a share of the built-in paths for a few steps (every
registered env family on each of its dynamics or tick worlds, single env and batch, serial and
threaded kernels, time and event decisions, the book engine's replay), so a following test run,
training job or benchmark starts warm. Numba compiles one function on one core, so two processes
on two cores halve the wall time of a cold start. Results are never affected: the cache holds the
same machine code a first call would compile.

The jobs are listed in :data:`JOBS` with a rough relative cost; they are handed out longest
first. A job that fails is reported (its traceback on stderr) and the command exits with 1 after
the others finished.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
import traceback

__all__ = ["JOBS", "run_job", "precompile"]


def _steps(core, n_steps: int = 3, seed: int = 0) -> None:
    import numpy as np

    core.seed_rows(range(core.n_envs), [seed + i for i in range(core.n_envs)])
    core.reset()
    space = core.single_action_space
    space.seed(seed)
    for _ in range(n_steps):
        core.step(np.asarray([space.sample() for _ in range(core.n_envs)]), autoreset=True)


def _faces(env_id: str, **kw) -> None:
    """The single env (serial kernels) and the Gymnasium vector and SB3 faces (a small batch)."""
    import gymnasium as gym
    import numpy as np

    from lobworld.envs.core import make_sb3_vec_env

    env = gym.make(env_id, **kw)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        env.step(env.action_space.sample())
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kw)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    for _ in range(3):
        venv.step(venv.action_space.sample())
    sb = make_sb3_vec_env(env_id, n_envs=3, seed=0, **kw)
    sb.reset()
    for _ in range(3):
        sb.step(np.asarray([sb.action_space.sample() for _ in range(3)]))


def _bar_family(core_cls, env_ids, dynamics) -> None:
    for dyn in dynamics:
        for par in (False, True):
            _steps(core_cls(n_envs=4, dynamics=dyn, parallel=par))
        for env_id in env_ids:
            _faces(env_id, dynamics=dyn)


def _job_execution() -> None:
    from lobworld.envs.execution import ExecutionCore

    _bar_family(ExecutionCore, ("LOB-Execution-v0", "LOB-VWAP-v0", "LOB-TWAP-v0"), ("parametric", "learned"))


def _job_market_making() -> None:
    from lobworld.envs.market_making import MarketMakingCore

    _bar_family(MarketMakingCore, ("LOB-MarketMaking-v0", "LOB-MarketMaking-Discrete-v0"), ("parametric", "learned"))


def _job_dark_pool() -> None:
    from lobworld.envs.dark_pool import DarkPoolCore

    for dyn in ("parametric", "learned"):
        _steps(DarkPoolCore(n_envs=4, dynamics=dyn))
        _faces("LOB-DarkPool-v0", dynamics=dyn)


def _tick_world(world: str) -> None:
    from lobworld.envs.tick import TickExecutionCore, TickMarketMakingCore

    for cls, kw in ((TickMarketMakingCore, {}), (TickExecutionCore, {"quantity": 600})):
        for n in (1, 3):  # one env: the serial world kernel; three: the threaded one
            _steps(cls(n_envs=n, horizon=3, start="10:20:00", world=world, **kw))
            if world != "replay":
                _steps(cls(n_envs=n, horizon=3, start="10:20:00", world=world, decide_every="events", k_events=5,
                           **kw))
    for env_id in ("LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"):
        _faces(env_id, world=world, horizon=3)


def _job_tick_learned() -> None:
    _tick_world("learned")


def _job_tick_parametric() -> None:
    _tick_world("parametric")


def _job_tick_replay() -> None:
    from lobworld.envs.replay import ReplayData, prepare_replay, run_replay, touch_quoter_commands
    from lobworld.envs.tick import ReplayWorld

    _tick_world("replay")
    data = ReplayWorld.from_path(None).data
    data = data if isinstance(data, ReplayData) else ReplayData.from_lobster(data)
    t = data.tape.t
    for k in (1, 3):
        for verify in (False, True):
            run_replay(data, prepare_replay(data, [(0, 300)] * k, latency="colocated",
                                            commands=[touch_quoter_commands(t, 0, 300)] * k), verify=verify)


def _job_models() -> None:
    """The world models' own kernels: the tick GRU simulator, learned-bar rollouts (the square-root
    channel and the legacy GRU-impact mode), the latency wrapper of the execution market, the Hawkes
    likelihood and the MBO book replay."""
    import numpy as np

    from lobworld.envs.execution import ExecutionCore
    from lobworld.envs.latency import LatencyDynamics
    from lobworld.world_models.data.mbo_book import replay_mbo
    from lobworld.world_models.learned import DEFAULT_CHECKPOINT, LearnedDynamics, LegacyGRUImpactDynamics, rollout
    from lobworld.world_models.tick_sim import TickSimulator, pack_tick_weights

    w = pack_tick_weights("GOOG")
    levels = np.arange(10)
    for par in (False, True):
        sim = TickSimulator(w, n_envs=2, depth=10, parallel=par)
        sim.reset([0, 1], 57_000 - levels, np.full(10, 100), 57_001 + levels, np.full(10, 100), 36_000 * 10 ** 9)
        sim.run(5)
    q = np.where(np.arange(5) % 2 == 0, 100.0, -50.0)
    for cls in (LearnedDynamics, LegacyGRUImpactDynamics):
        rollout(cls(DEFAULT_CHECKPOINT), 2, 5, 60.0, seed=0, q=q)
    for dyn in ("parametric", "learned"):
        core = ExecutionCore(n_envs=4, dynamics=LatencyDynamics(dyn, "retail"), horizon=3, parallel=False)
        _steps(core)
    act = np.array(["A", "A", "C", "F"])
    replay_mbo(act, np.array(["B", "A", "B", "A"]), np.array([100, 101, 100, 101], np.int64) * 10 ** 9,
               np.array([5, 7, 5, 2]), np.array([1, 2, 1, 2]), levels=2)


JOBS: dict[str, tuple[float, object]] = {
    # name: (relative cold-compile cost, function)
    "tick-learned": (5.0, _job_tick_learned),
    "market-making": (4.0, _job_market_making),
    "tick-replay": (3.0, _job_tick_replay),
    "execution": (3.0, _job_execution),
    "tick-parametric": (2.5, _job_tick_parametric),
    "models": (2.0, _job_models),
    "dark-pool": (1.5, _job_dark_pool),
}


def run_job(name: str) -> tuple[str, float, str | None]:
    """Run one job in this process: ``(name, seconds, traceback or None)``."""
    import lobworld  # noqa: F401  (registers the ids, the learned dynamics and tick worlds)

    t0 = time.perf_counter()
    try:
        JOBS[name][1]()
        err = None
    except Exception:  # a failing job is reported, the others still run
        err = traceback.format_exc()
    return name, time.perf_counter() - t0, err


def precompile(jobs: int = 2, names=None, stream=sys.stderr) -> int:
    """Run the :data:`JOBS` (all, or ``names``) in ``jobs`` worker processes, longest first; returns
    the exit code (0, or 1 when a job failed)."""
    names = list(names or JOBS)
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        from lobworld.cli import CLIError

        raise CLIError(f"unknown precompile job(s) {unknown}; known: {', '.join(JOBS)}")
    if jobs < 1:
        from lobworld.cli import CLIError

        raise CLIError(f"--jobs must be >= 1, got {jobs}")
    names.sort(key=lambda n: -JOBS[n][0])
    t0 = time.perf_counter()
    failed = []
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=mp.get_context("spawn")) as pool:
        for fut in cf.as_completed([pool.submit(run_job, n) for n in names]):
            name, secs, err = fut.result()
            print(f"precompile: {name} {'failed' if err else 'done'} in {secs:.0f} s", file=stream, flush=True)
            if err:
                failed.append(name)
                print(err, file=stream)
    print(f"precompile: {len(names) - len(failed)} of {len(names)} jobs in {time.perf_counter() - t0:.0f} s "
          f"with {jobs} processes", file=stream, flush=True)
    return 1 if failed else 0


def _cmd(args: argparse.Namespace) -> int:
    return precompile(args.jobs, args.job)


def add_commands(sub) -> None:
    """Add ``precompile`` to the ``lobworld`` CLI."""
    p = sub.add_parser("precompile", help="compile the built-in kernels into the disk cache, in parallel",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: the number of CPUs)")
    p.add_argument("--job", action="append", choices=list(JOBS), help="only this job (repeatable; default all)")
    p.set_defaults(func=_cmd)

"""Serial, parallel and the measured thread choice, on a quiet machine and under contention.

For each env family (execution, parametric market; market making, parametric market) and
each kernel policy (``serial``, ``parallel``, ``auto`` = :class:`lobworld.envs.jit.ThreadChoice`)
the raw batched step is timed at ``--n-envs`` envs, first alone and then while one other
process keeps a core busy (a pure-Python spin loop, the same kind of load as a second job on
the machine). Every cell of one row is measured in the same run, so the ratios are fair;
absolute numbers depend on the machine and what else runs on it.

    python benchmarks/bench_threads.py --n-envs 10000 --seconds 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np


def _spin(stop) -> None:  # pragma: no cover - runs in a child process
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _make(family: str, n: int, parallel):
    if family == "execution":
        from lobworld.envs.execution import ExecutionCore

        core = ExecutionCore(n_envs=n, dynamics="parametric", horizon=300, parallel=parallel)
        act = np.full((n, 1), 1e-4)
    else:
        from lobworld.envs.market_making import MarketMakingCore

        core = MarketMakingCore(n, horizon=1_000_000, parallel=parallel)
        act = np.zeros((n, 4))
        act[:, 0] = act[:, 1] = 1.0
        act[:, 2] = act[:, 3] = 100.0
    core.reset()
    return core, act


def _rate(family: str, n: int, policy: str, seconds: float) -> float:
    parallel = {"serial": False, "parallel": True, "auto": None}[policy]
    core, act = _make(family, n, parallel)
    for _ in range(20):  # compile / load and settle the choice
        core.step_unchecked(act, True) if hasattr(core, "step_unchecked") else core.step(act, True)
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        core.step_unchecked(act, True) if hasattr(core, "step_unchecked") else core.step(act, True)
        steps += 1
    return steps * n / (time.perf_counter() - t0)


def run(n_envs: int, seconds: float, families=("execution", "market_making")) -> list[dict]:
    rows = []
    for family in families:
        for load in ("quiet", "one busy process"):
            stop = proc = None
            if load != "quiet":
                stop = mp.Event()
                proc = mp.Process(target=_spin, args=(stop,), daemon=True)
                proc.start()
                time.sleep(0.5)
            try:
                row = {"family": family, "load": load}
                for policy in ("serial", "parallel", "auto"):
                    row[policy] = _rate(family, n_envs, policy, seconds)
            finally:
                if proc is not None:
                    stop.set()
                    proc.join(5)
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-envs", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    import numba

    print(f"{args.n_envs} envs, {numba.get_num_threads()} Numba threads; env-steps/s (millions)")
    print(f"{'family':<14} {'load':<17} {'serial':>8} {'parallel':>9} {'auto':>8}  auto/serial")
    for r in run(args.n_envs, args.seconds):
        print(f"{r['family']:<14} {r['load']:<17} {r['serial'] / 1e6:8.2f} {r['parallel'] / 1e6:9.2f} "
              f"{r['auto'] / 1e6:8.2f}  {r['auto'] / r['serial']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

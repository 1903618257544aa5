"""Env-steps/s of every registered lobworld env: raw kernel, Gymnasium vector env, SB3 VecEnv.

Usage::

    python benchmarks/bench_envs.py [--env ID ...] [--n-envs 1,1000,10000] [--steps N]
                                    [--dynamics parametric|learned] [--out results.json]
                                    [--serial-vs-parallel]

Same measurement as ``lobworld bench`` (see :mod:`lobworld.cli.bench`), plus an optional
comparison of the execution kernel compiled serial vs ``parallel=True`` (prange) at each
batch size (parametric market). ``--dynamics`` overrides every id's registered market (the
execution ids default to the learned one). Random valid actions; compilation excluded. Run it on a quiet machine:
figures taken while other processes use the CPU are not meaningful.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from lobworld.cli.bench import _parse_ints, format_table, machine_info, run_bench


def serial_vs_parallel(n_envs_list, steps=None):
    """Raw execution kernel with LOBWORLD_PARALLEL=0/1 (separate processes: the choice is read at import)."""
    rows = []
    for flag in ("0", "1"):
        for n in n_envs_list:
            code = ("import json; from lobworld.cli.bench import bench_env; "
                    f"print(json.dumps(bench_env('LOB-Execution-v0', {n}, {steps!r}, faces=('raw',), "
                    "dynamics='parametric')[0]))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**__import__('os').environ, "LOBWORLD_PARALLEL": flag})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["face"] = "raw-parallel" if flag == "1" else "raw-serial"
            rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", metavar="ID")
    p.add_argument("--n-envs", type=_parse_ints, default=[1, 1000, 10000])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--dynamics", choices=("parametric", "learned"), default=None)
    p.add_argument("--out", default=None, help="write JSON here")
    p.add_argument("--serial-vs-parallel", action="store_true")
    a = p.parse_args(argv)
    rows = run_bench(a.env, a.n_envs, a.steps, **({"dynamics": a.dynamics} if a.dynamics else {}))
    if a.serial_vs_parallel:
        rows += serial_vs_parallel(a.n_envs, a.steps)
    print(format_table(rows))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info(),
                       "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

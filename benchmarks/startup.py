"""Start-up time of every registered id: first ``reset()`` + ``step()`` in a fresh process.

Each id runs twice in new processes that share one empty Numba cache folder
(``NUMBA_CACHE_DIR``): the first run compiles and writes the cache (cold), the second
loads it (warm). ``import lobworld`` is timed separately. The Gymnasium single env is
used (``gym.make``), with each id's registered default market.

    python benchmarks/startup.py            # every id
    python benchmarks/startup.py LOB-Execution-v0 --dynamics parametric
    python benchmarks/startup.py --warm-only  # the checkout's own cache: a first run fills it, the second is timed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import gymnasium as gym
import lobworld
t1 = time.perf_counter()
kw = json.loads(sys.argv[2])
env = gym.make(sys.argv[1], **kw)
env.reset(seed=0)
env.step(env.action_space.sample())
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1}))
"""


def measure(env_id: str, kwargs: dict, cache_dir: str | None) -> dict:
    env = dict(os.environ) if cache_dir is None else dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    r = subprocess.run([sys.executable, "-c", _CHILD, env_id, json.dumps(kwargs)], capture_output=True,
                       text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{env_id}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", help="env ids (default: every registered id)")
    ap.add_argument("--dynamics", default=None, help="market for every id (default: each id's own)")
    ap.add_argument("--warm-only", action="store_true",
                    help="no cold run: use the usual Numba cache (run once to fill it, then time the second run)")
    args = ap.parse_args(argv)
    import lobworld

    ids = args.ids or list(lobworld.ENV_IDS)
    kw = {} if args.dynamics is None else {"dynamics": args.dynamics}
    print(f"{'id':<32} {'import s':>9} {'cold s':>8} {'warm s':>8}")
    for env_id in ids:
        if args.warm_only:
            measure(env_id, kw, None)  # fills the cache if anything is missing
            warm = measure(env_id, kw, None)
            print(f"{env_id:<32} {warm['import_s']:9.2f} {'n/a':>8} {warm['first_step_s']:8.2f}")
            continue
        with tempfile.TemporaryDirectory(prefix="lobworld-numba-") as cache:
            cold = measure(env_id, kw, cache)
            warm = measure(env_id, kw, cache)
        print(f"{env_id:<32} {warm['import_s']:9.2f} {cold['first_step_s']:8.2f} {warm['first_step_s']:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

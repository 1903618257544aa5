"""Each big per-env Numba function is compiled for one signature only.

A cold compile of the book engine's ``_run_env`` or a generated tick world's per-env function takes
tens of seconds to minutes, and Numba compiles a function again for every new combination of
argument types: a read-only view where a writable array came before, a literal ``0`` where an
``int64`` came before, a ``prange`` index (unsigned) where a ``range`` index (signed) came before,
int64 file arrays where int32 came before. Any of these silently doubles the cost of the first
run. This test drives every path that reaches them from Python (serial and threaded kernels, time and
event decisions, replay with and without the orderbook file, scalar and per-env bounds, read-only
input arrays) in a fresh process and checks the entry kernels' signatures: one each, no read-only
array, and the same types wherever two entry kernels share a per-env function. (Calls between
compiled functions, such as the literal ``0`` that ``gru_advance`` once passed where
``gru_advance_events`` passes an int64, are not visible from Python once loaded from the cache;
those sites pass ``np.int64``.)
"""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import numpy as np
import lobworld  # noqa: F401  (registers the worlds and the learned dynamics)
from lobworld.envs import book_kernels as bk
from lobworld.envs.execution import ExecutionCore
from lobworld.envs.market_making import MarketMakingCore
from lobworld.envs.replay import ReplayData, prepare_replay, run_replay
from lobworld.envs.tick import ReplayWorld, TickExecutionCore
from lobworld.world_models import tick_gru_world as G, tick_world as C
from lobworld.world_models.data import mbo_book
from lobworld.world_models.learned import batch as LB, kernel as LK

data = ReplayWorld.from_path(None).data
for world in ("parametric", "learned", "replay"):
    for n in (1, 3):  # one env runs the serial kernel, three the threaded one
        for every in ("time", "events"):
            if world == "replay" and every == "events":
                continue
            core = TickExecutionCore(n_envs=n, horizon=3, start="10:20:00", world=world, quantity=600,
                                     **({"decide_every": "events", "k_events": 5} if every == "events" else {}))
            core.seed_rows(range(n), list(range(n)))
            core.reset()
            core.single_action_space.seed(0)
            for _ in range(3):
                core.step(np.asarray([core.single_action_space.sample() for _ in range(n)]), autoreset=True)
rd = data if isinstance(data, ReplayData) else ReplayData.from_lobster(data)
for k in (1, 3):
    run_replay(rd, prepare_replay(rd, [(0, 200)] * k, latency="colocated"), verify=False)
book = prepare_replay(rd, [(0, 200)] * 2, latency="colocated", strict=False)  # no resync: not strict
book.run(rd.tape, 50)  # no file, a scalar bound
book.run(rd.tape, np.array([80, 90]))  # no file, one bound per env
for par in (False, True):
    for dyn in ("learned",):
        core = ExecutionCore(n_envs=4, dynamics=dyn, parallel=par)
        core.reset()
        for _ in range(3):
            core.step(np.full((4, 1), 0.2), autoreset=True)
        core = MarketMakingCore(n_envs=4, dynamics=dyn, parallel=par)
        core.reset()
        core.single_action_space.seed(0)
        for _ in range(3):
            core.step(np.asarray([core.single_action_space.sample() for _ in range(4)]), autoreset=True)
act = np.array(["A", "A", "C"]); side = np.array(["B", "A", "B"])
px = np.array([100, 101, 100], np.int64) * 10**9; sz = np.array([5, 7, 5]); oid = np.array([1, 2, 1])
mbo_book.replay_mbo(act, side, px, sz, oid, levels=2)
ro = [a.copy() for a in (px, sz, oid)]
for a in ro:
    a.setflags(write=False)
mbo_book.replay_mbo(act, side, *ro, levels=2)
fns = {name: getattr(mod, name) for mod, names in (
    (bk, ("book_run", "book_run_parallel")),
    (C, ("cst_advance", "cst_advance_parallel", "cst_advance_events", "cst_advance_events_parallel")),
    (G, ("gru_advance", "gru_advance_parallel", "gru_advance_events", "gru_advance_events_parallel")),
    (mbo_book, ("_replay",))) for name in names}
print(json.dumps({k: [[str(t) for t in sig] for sig in f.signatures] for k, f in fns.items()}))
"""


def test_each_big_per_env_function_has_one_signature():
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=3000)
    assert out.returncode == 0, out.stderr[-4000:]
    sigs = json.loads(out.stdout.strip().splitlines()[-1])
    # each entry kernel (called from Python, so its signatures are those of this process) was reached
    # by every path with one set of argument types, none of them a read-only view
    assert {k: len(v) for k, v in sigs.items()} == {k: 1 for k in sigs}, sigs
    one = {k: v[0] for k, v in sigs.items()}
    assert not [k for k, v in one.items() if any("readonly" in t for t in v)], one
    # the kernels that share a per-env function pass it the same types (k_ev and tdec aside)
    assert one["book_run"] == one["book_run_parallel"]
    assert "int32, 3d" in one["book_run"][6] and one["book_run"][6] == one["book_run"][7]  # the file's arrays
    for w in ("cst", "gru"):
        plain = one[f"{w}_advance"]
        assert one[f"{w}_advance_parallel"] == plain
        assert one[f"{w}_advance_events"] == one[f"{w}_advance_events_parallel"] == ["int64", *plain, "array(int64, 1d, C)"]

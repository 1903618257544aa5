"""The kernel pattern (lobworld.envs.jit): static binding, disk caching, the thread choice."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit
from numba.core.caching import NullCache

from lobworld.envs.jit import ThreadChoice, bind, fingerprint, use_parallel


@njit(inline="always")
def _add_one(x):
    return x + 1.0


@njit(inline="always")
def _times_ten(x):
    return x * 10.0


step_fn = None  # bound by jit.bind


def _helper(x):
    return step_fn(x) * 2.0


def _kernel(a, out):
    for i in range(a.shape[0]):
        out[i] = _helper(a[i])


def test_bind_binds_each_dynamics_statically():
    (k1,) = bind((_kernel,), (_helper,), {"step_fn": _add_one}, label="t1", parallel=False)
    (k2,) = bind((_kernel,), (_helper,), {"step_fn": _times_ten}, label="t1", parallel=False)
    a = np.array([0.0, 1.0, 2.5])
    o1, o2 = np.empty(3), np.empty(3)
    k1(a, o1)
    k2(a, o2)
    np.testing.assert_array_equal(o1, [2.0, 4.0, 7.0])
    np.testing.assert_array_equal(o2, [0.0, 20.0, 50.0])
    assert k1 is not k2 and k1.py_func.__name__ != k2.py_func.__name__
    assert not isinstance(k1._cache, NullCache)  # both have source files: disk-cached
    # memoised per process: the same binding returns the same dispatchers
    assert bind((_kernel,), (_helper,), {"step_fn": _add_one}, label="t1", parallel=False)[0] is k1


def test_fingerprint_follows_source_and_closures():
    assert fingerprint(_add_one) != fingerprint(_times_ten)
    assert fingerprint(_add_one) == fingerprint(_add_one)
    ns: dict = {}
    exec("def f(x):\n    return x", ns)  # no source file: not cacheable
    assert fingerprint(ns["f"]) is None


def test_fingerprint_follows_compiled_functions_called_from_other_files(tmp_path, monkeypatch):
    """Editing a module whose compiled helper a kernel calls (by name or as ``module.fn``)
    changes the kernel's fingerprint; editing an unrelated file does not."""
    import importlib
    import sys

    from lobworld.envs import jit

    (tmp_path / "fp_dep.py").write_text("from numba import njit\n\n@njit\ndef helper(x):\n    return x + 1.0\n")
    (tmp_path / "fp_other.py").write_text("X = 1\n")
    (tmp_path / "fp_kern.py").write_text(
        "import fp_dep\nfrom fp_dep import helper\n\n"
        "def by_name(x):\n    return helper(x)\n\n"
        "def by_attr(x):\n    return fp_dep.helper(x)\n\n"
        "def alone(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in ("fp_dep", "fp_kern", "fp_other"):
        sys.modules.pop(m, None)
    kern = importlib.import_module("fp_kern")
    before = {f: fingerprint(getattr(kern, f)) for f in ("by_name", "by_attr", "alone")}
    assert all(before.values())
    (tmp_path / "fp_dep.py").write_text("from numba import njit\n\n@njit\ndef helper(x):\n    return x + 2.0\n")
    (tmp_path / "fp_other.py").write_text("X = 2\n")
    monkeypatch.setattr(jit, "_FILE_HASH", {})  # the per-process memo of file hashes
    after = {f: fingerprint(getattr(kern, f)) for f in ("by_name", "by_attr", "alone")}
    assert after["by_name"] != before["by_name"]
    assert after["by_attr"] != before["by_attr"]
    assert after["alone"] == before["alone"]


def test_kernel_without_source_file_still_compiles_uncached():
    ns: dict = {}
    exec("def g(x):\n    return x - 1.0", ns)
    g = njit(inline="always")(ns["g"])
    (k,) = bind((_kernel,), (_helper,), {"step_fn": g}, label="t2", parallel=False)
    o = np.empty(2)
    k(np.array([1.0, 3.0]), o)
    np.testing.assert_array_equal(o, [0.0, 4.0])
    assert isinstance(k._cache, NullCache)


@pytest.mark.slow
def test_fresh_process_loads_bound_kernels_from_the_disk_cache(tmp_path):
    """A second process finds the execution env's bound kernels in Numba's cache (no compile)."""
    code = textwrap.dedent("""
        import numpy as np
        import lobworld
        from lobworld.envs.execution import ExecutionCore
        core = ExecutionCore(n_envs=4, dynamics="parametric")
        core.reset()
        core.step(np.full((4, 1), 0.1, dtype=np.float32), True)
        k = core._step_kernel
        print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
    """)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    hits, misses = map(int, runs[1].stdout.split()[-2:])
    assert hits >= 1 and misses == 0


def test_use_parallel_policy(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    assert not use_parallel(10) and use_parallel(100_000)
    assert use_parallel(10, True) and not use_parallel(100_000, False)
    monkeypatch.setenv("LOBWORLD_PARALLEL", "0")
    assert not use_parallel(100_000)
    monkeypatch.setenv("LOBWORLD_PARALLEL", "1")
    assert use_parallel(10)


def _drive(tc: ThreadChoice, cost, n: int) -> list[bool]:
    used = []
    for _ in range(n):
        p = tc.choose()
        used.append(p)
        tc.record(p, cost(p))
    return used


def test_thread_choice_prefers_the_faster_kernel_and_keeps_probing(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tc = ThreadChoice(10_000, probe_every=16, probe_calls=2)
    # quiet machine: parallel twice as fast
    used = _drive(tc, lambda p: 1.0 if p else 2.0, 200)
    tail = used[50:]
    assert sum(tail) / len(tail) > 0.85  # mostly parallel
    assert not all(tail)  # serial re-measured now and then
    # contention: parallel becomes 5x slower than serial; the choice follows within a few probes
    used = _drive(tc, lambda p: 10.0 if p else 2.0, 300)
    tail = used[150:]
    assert sum(tail) / len(tail) < 0.15


def test_thread_choice_ignores_the_first_compiling_call(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tc = ThreadChoice(10_000)
    first = {False: True, True: True}

    def cost(p):
        if first[p]:
            first[p] = False
            return 1000.0  # compile
        return 1.0 if not p else 0.5

    used = _drive(tc, cost, 40)
    assert all(used[5:])


def test_thread_choice_probes_back_off_on_a_steady_machine(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tc = ThreadChoice(10_000, probe_every=64, max_probe_every=1024, probe_calls=3)
    used = _drive(tc, lambda p: 1.0 if p else 2.0, 6000)
    serial_tail = used[1000:].count(False)
    # probes at 64, 128, ... then every 1024 calls, 3 calls each: a handful of serial calls
    assert 0 < serial_tail <= 3 * (5000 // 1024 + 1)
    assert tc._interval == 1024


def test_thread_choice_switches_only_beyond_the_margin(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    # serial 5% faster: inside the 10% margin, the parallel start is kept
    tc = ThreadChoice(10_000, margin=0.1)
    used = _drive(tc, lambda p: 1.0 if p else 0.95, 500)
    assert used[10:].count(False) <= 3 * 4  # probe calls only
    # serial 15% faster: beyond the margin, serial it is
    tc = ThreadChoice(10_000, margin=0.1)
    used = _drive(tc, lambda p: 1.0 if p else 0.85, 500)
    assert used[10:].count(True) <= 3 * 4


def test_thread_choice_probe_does_not_count_the_wake_up_call(monkeypatch):
    """The first parallel call after serial ones pays the thread wake-up; a probe ignores it and
    finds the parallel kernel faster once the machine is quiet again."""
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tc = ThreadChoice(10_000, probe_every=16, max_probe_every=64, probe_calls=3)
    state = {"last": None, "quiet": False}

    def cost(p):
        wake = p and state["last"] is False
        state["last"] = p
        if not state["quiet"]:
            return 5.0 if p else 1.0  # contention: parallel 5x slower
        return 10.0 if wake else (0.5 if p else 1.0)

    used = _drive(tc, cost, 300)
    assert used[100:].count(True) <= 3 * 4  # serial under contention, parallel only in probes
    state["quiet"] = True
    used = _drive(tc, cost, 300)
    # back on the parallel kernel (the wake-up calls did not keep it serial), serial only in probes
    assert used[150:].count(False) <= 3 * 3


def test_thread_choice_does_not_leave_serial_on_a_spike(monkeypatch):
    """Under load serial calls are spiky; a spike must not send the choice to the (slower)
    parallel kernel: serial is left only on a probe's fresh measurement."""
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tc = ThreadChoice(10_000, probe_every=64, max_probe_every=1024, probe_calls=3)
    k = {"n": 0}

    def cost(p):
        k["n"] += 1
        if p:
            return 3.0
        return 20.0 if k["n"] % 10 == 0 else 1.0  # a descheduled serial call now and then

    used = _drive(tc, cost, 3000)
    assert used[100:].count(True) <= 3 * 6  # parallel only in the (backed-off) probes


def test_thread_choice_fixed_modes(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    assert not any(_drive(ThreadChoice(10_000, parallel=False), lambda p: 1.0, 50))
    assert all(_drive(ThreadChoice(10, parallel=True), lambda p: 1.0, 50))
    assert not any(_drive(ThreadChoice(10), lambda p: 1.0, 50))  # small batch: serial
    monkeypatch.setenv("LOBWORLD_PARALLEL", "0")
    assert not any(_drive(ThreadChoice(10_000), lambda p: 0.0 if p else 1.0, 50))


class _Alternate:
    """A thread choice that flips between the serial and the parallel kernel at every call."""

    def __init__(self):
        self.parallel = False

    def choose(self):
        self.parallel = not self.parallel
        return self.parallel

    def record(self, parallel, seconds):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("family", ["execution", "market_making"])
def test_switching_kernels_mid_run_is_bit_identical(monkeypatch, family):
    """Serial only, parallel only, and a choice that alternates every call give the same run."""
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    n = 2048
    if family == "execution":
        from lobworld.envs.execution import ExecutionCore

        def make(parallel):
            return ExecutionCore(n_envs=n, dynamics="parametric", horizon=12, parallel=parallel)

        def action(k):
            return np.full((n, 1), 0.05 + 0.01 * (k % 7), dtype=np.float64)
    else:
        from lobworld.envs.market_making import MarketMakingCore

        def make(parallel):
            return MarketMakingCore(n, horizon=12, parallel=parallel)

        def action(k):
            a = np.zeros((n, 4))
            a[:, 0] = a[:, 1] = 1.0 + (k % 3)
            a[:, 2] = a[:, 3] = 100.0
            return a

    runs = []
    for mode in (False, True, "alternate"):
        core = make(None if mode == "alternate" else mode)
        if mode == "alternate":
            setattr(core, "_threads" if family == "execution" else "_threads_choice", _Alternate())
        core.seed_rows(range(n), list(range(n)))
        core.reset()
        out = []
        for k in range(30):
            core.step(action(k), True)
            out.append((core.obs.copy(), core.reward.copy(), core.terminated.copy(), core.truncated.copy()))
        runs.append(out)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)

"""Market-making kernels: thread-count invariance and the specialised parametric step.

The speed work (parallel kernels on all Numba threads for large batches, a
specialised parametric step, a log-free test for "no market order this step")
must not change what the env computes. Speed itself is measured by
``benchmarks/bench_market_making.py``, not here.
"""

import math

import numba
import numpy as np
import pytest

from lobworld.envs import market_making_kernels as K
from lobworld.envs.dynamics import ParametricDynamics, ParametricParams, _parametric_reset, _parametric_step
from lobworld.envs.market_making import PARALLEL_MIN_ENVS, MarketMakingConfig, MarketMakingCore
from lobworld.envs.rng import seed_state
from lobworld.world_models.arrivals import PoissonParams


def _run(parallel, cfg, n, steps, discrete=False):
    core = MarketMakingCore(n, cfg, discrete=discrete, parallel=parallel)
    core.seed_rows(range(n), range(100, 100 + n))
    core.reset()
    rng = np.random.default_rng(7)
    trace = []
    for _ in range(steps):
        if discrete:
            a = rng.integers(0, core.single_action_space.n, n)
        else:
            a = rng.uniform([-2, -2, 0, 0], [12, 12, 300, 300], (n, 4))
        core.step(a, autoreset=True)
        trace.append(np.concatenate([core.obs.ravel().astype(np.float64), core.reward,
                                     core.terminated.astype(float), core.truncated.astype(float),
                                     core.ep_done.ravel(), core.fills.ravel()]))
    return np.stack(trace), core.rng_state.copy(), core.sv.copy(), core.qs.copy()


@pytest.mark.skipif(numba.get_num_threads() < 2, reason="needs at least 2 Numba threads to exercise prange")
@pytest.mark.parametrize("arrival, latency", [("poisson", "cloud"), ("hawkes", "retail")])
def test_parallel_and_one_thread_kernels_are_bit_identical(arrival, latency):
    """Each env owns its rows and streams: the thread count cannot change any bit (episodes end mid-run)."""
    cfg = MarketMakingConfig(horizon=17, arrival=arrival, latency=latency, inventory_limit=400.0,
                             poisson=PoissonParams(rate=(2.0, 2.0)), fill_A=3.0)
    n = 257  # not a multiple of the thread count: uneven chunks
    ser = _run(False, cfg, n, 60)
    par = _run(True, cfg, n, 60)
    for a, b in zip(ser, par):
        np.testing.assert_array_equal(a, b)
    t = ser[0]
    assert np.isfinite(t).all()
    assert t[:, n * K.N_OBS + n: n * K.N_OBS + 3 * n].sum() > n  # episodes ended (truncation and/or termination)
    assert ser[0][:, -4 * n:].sum() > 0  # and fills happened


def test_parallel_flag_follows_batch_size_and_override(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    assert MarketMakingCore(PARALLEL_MIN_ENVS, horizon=5).parallel
    assert not MarketMakingCore(PARALLEL_MIN_ENVS - 1, horizon=5).parallel
    assert MarketMakingCore(3, horizon=5, parallel=True).parallel
    monkeypatch.setenv("LOBWORLD_PARALLEL", "0")
    assert not MarketMakingCore(PARALLEL_MIN_ENVS, horizon=5).parallel
    monkeypatch.setenv("LOBWORLD_PARALLEL", "1")
    assert MarketMakingCore(2, horizon=5).parallel
    # the one-thread run restores the caller's thread count
    before = numba.get_num_threads()
    core = MarketMakingCore(2, horizon=5, parallel=False)
    core.reset()
    core.step(np.zeros((2, 4)), autoreset=True)
    assert numba.get_num_threads() == before


def test_specialised_parametric_step_matches_the_shared_dynamics():
    """Same three normals, same mid and spread bit for bit, imbalance within a few ulp, same stream state."""
    p = ParametricParams(s0=100.0, sigma=0.05, spread=0.03, spread_logsd=0.4, mu=1e-3)
    dyn = ParametricDynamics(p)
    (P,) = args = dyn.args(1, 0.5)
    row_a = np.zeros(8)
    row_b = np.zeros(8)
    st_a = seed_state(3, 1)[0].copy()
    st_b = st_a.copy()
    _parametric_reset(0, row_a, args, st_a)
    _parametric_reset(0, row_b, args, st_b)
    for _ in range(2000):
        _parametric_step(0, row_a, args, st_a, 0.0, 1.0)
        K._mm_parametric_step(0, row_b, args, st_b, 0.0, 1.0)
        assert row_b[0] == row_a[0] and row_b[1] == row_a[1] and row_b[3] == row_a[3] and row_b[7] == row_a[7]
        assert abs(row_b[6] - row_a[6]) <= 4 * math.ulp(max(abs(row_a[6]), 1e-300)) + 1e-300
    np.testing.assert_array_equal(st_a, st_b)


def test_fast_tanh_against_math_tanh():
    xs = np.concatenate([np.linspace(-25, 25, 20001), [0.0, -0.0, 1e-300, -1e-12, 5e-9, 19.0, 800.0, -800.0]])
    for x in xs:
        got, want = K._tanh(float(x)), math.tanh(float(x))
        assert abs(got - want) <= 4 * math.ulp(abs(want)) + 1e-300 or abs(got - want) <= 2e-16 * abs(x), x
        assert abs(got) <= 1.0


def test_no_order_shortcut_keeps_the_poisson_law():
    """P(no market order in a step) = exp(-(mu0 + mu1) dt), decided by one uniform against C_P0."""
    cfg = MarketMakingConfig(horizon=400, dt=0.5, poisson=PoissonParams(rate=(0.7, 0.5)), inventory_limit=1e9,
                             mo_impact=0.0)
    n = 200
    core = MarketMakingCore(n, cfg)
    assert core.cfg[K.C_P0] == pytest.approx(math.exp(-1.2 * 0.5), rel=1e-15)
    assert MarketMakingCore(1, cfg.replace(arrival="hawkes")).cfg[K.C_P0] == 0.0
    core.seed_rows(range(n), range(n))
    core.reset()
    empty = 0
    last = np.zeros(n)
    for _ in range(400):
        core.step(np.zeros((n, 4)), autoreset=False)
        tot = core.ep[:, K.E_NMO_BUY] + core.ep[:, K.E_NMO_SELL] if not core.truncated.any() else \
            core.ep_done[:, K.E_NMO_BUY] + core.ep_done[:, K.E_NMO_SELL]
        empty += int(np.sum(tot == last))
        last = tot.copy()
    frac = empty / (n * 400)
    p0 = math.exp(-0.6)
    assert abs(frac - p0) < 4 * math.sqrt(p0 * (1 - p0) / (n * 400))

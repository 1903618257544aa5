"""Latency wrapper of the execution envs' market (lobworld.envs.latency.LatencyDynamics).

Closed forms: a child order sent L seconds before it reaches the market pays, per share,
sigma sqrt(L) z + adverse drift; zero latency is bit-identical to no wrapper; the inner market
draws exactly what it draws unwrapped (the mid path is the same in every latency scenario).
"""

import math

import numpy as np
import pytest

from lobworld.envs.dynamics import MID, ParametricDynamics, ParametricParams
from lobworld.envs.execution import ExecutionCore
from lobworld.scenarios.counterfactual import parse_latency, run_counterfactual
from lobworld.envs.latency import (
    LAT_DELAY,
    LAT_EXTRA_COST,
    LatencyDynamics,
    LatencyScenario,
)

P = ParametricParams()
Q, T = 1000.0, 8


def _run(dynamics, action, n=200, seed=11, steps=T):
    """Run ``n`` paths of a small sell order with a constant action; return (core, infos, mids per step)."""
    core = ExecutionCore(n_envs=n, dynamics=dynamics, quantity=Q, horizon=T, parallel=False)  # no 2nd compile
    core.seed_rows(range(n), [seed + i for i in range(n)])
    core.reset()
    mids = [core.market[:, MID].copy()]
    extra = []
    for _ in range(steps):
        if core.terminated.all():
            break
        core.step(np.full((n, 1), action), autoreset=False)
        mids.append(core.market[:, MID].copy())
        if isinstance(dynamics, LatencyDynamics):
            extra.append(core.market[:, dynamics.col + LAT_EXTRA_COST].copy())
    infos = {k: np.array([core.episode_info(i)[k] for i in range(n)]) for k in ("shortfall_bps", "vwap")}
    return core, infos, np.stack(mids, 1), (np.stack(extra, 1) if extra else None)


def test_zero_latency_is_bit_identical_to_no_wrapper():
    for action in (1.0, 0.3):
        _, a, ma, _ = _run("parametric", action)
        _, b, mb, _ = _run(LatencyDynamics("parametric", "none", adverse_bps_per_s=5.0), action)
        np.testing.assert_array_equal(a["shortfall_bps"], b["shortfall_bps"])
        np.testing.assert_array_equal(a["vwap"], b["vwap"])
        np.testing.assert_array_equal(ma, mb)


def test_latency_leaves_the_market_path_unchanged():
    # the wrapper draws from its own stream: the inner market sees exactly the draws it sees unwrapped
    _, _, m0, _ = _run("parametric", 0.3)
    _, _, m1, _ = _run(LatencyDynamics("parametric", "retail"), 0.3)
    np.testing.assert_array_equal(m0, m1)


@pytest.mark.parametrize("L_us,adverse", [(250_000.0, 2.0), (50_000.0, 0.0)])
def test_extra_slippage_mean_and_variance(L_us, adverse):
    # aggressive: one child order of Q shares at step 0, so the extra shortfall (bps) is 1e4 / s0 times
    # the extra cost per share: mean adverse * L bps, variance (sigma^2 L) (1e4 / s0)^2
    n = 4000
    L = L_us * 1e-6
    _, base, _, _ = _run("parametric", 1.0, n=n)
    dyn = LatencyDynamics("parametric", LatencyScenario("user", L_us, 0.0), adverse_bps_per_s=adverse)
    core, lat, _, extra = _run(dyn, 1.0, n=n)
    d = lat["shortfall_bps"] - base["shortfall_bps"]
    sd = P.sigma * math.sqrt(L) / P.s0 * 1e4
    assert abs(d.mean() - adverse * L) < 4 * sd / math.sqrt(n)
    # sample variance of n normals: relative sd sqrt(2 / (n - 1)) = 2.2%; allow 4 of them
    assert d.var(ddof=1) / sd ** 2 == pytest.approx(1.0, abs=4 * math.sqrt(2 / (n - 1)))
    # the state column holds the same extra cost per share (USD), the delay column L
    np.testing.assert_allclose(extra[:, 0] / P.s0 * 1e4, d, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(core.market[:, dyn.col + LAT_DELAY], L)


def test_extra_cost_per_share_over_several_child_orders():
    # const 0.3: child orders every step; per share the extra cost has mean adverse * L and sd sigma sqrt(L)
    n, L = 2000, 0.1
    dyn = LatencyDynamics("parametric", LatencyScenario("user", L * 1e6, 0.0), adverse_bps_per_s=10.0)
    core, _, mids, extra = _run(dyn, 0.3, n=n)
    x = extra[:, :-1].ravel()  # every step trades (the last one forces the remainder)
    drift = 10.0 * 1e-4 * L * mids[:, :-2].ravel()  # adverse bps of the decision mid
    z = (x - drift) / (P.sigma * math.sqrt(L))
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=4 * math.sqrt(2 / z.size))


def test_jitter_draws_nonnegative_delays_around_the_one_way_latency():
    dyn = LatencyDynamics("parametric", LatencyScenario("jittery", 1000.0, 800.0))
    core, _, _, _ = _run(dyn, 0.2, n=3000, steps=1)
    delay = core.market[:, dyn.col + LAT_DELAY]
    assert delay.min() >= 0.0 and (delay == 0.0).any()  # floored at zero (z < -1.25 happens ~10% of the time)
    assert delay.mean() == pytest.approx(1e-3, rel=0.05)


def test_no_trade_no_extra_cost_and_common_random_numbers():
    # q = 0 pays nothing; two strategies that do not move prices (gamma = 0) see the same mid under latency
    dyn = LatencyDynamics(ParametricDynamics(P.replace(gamma=0.0)), "cloud", adverse_bps_per_s=1.0)
    core, _, _, extra = _run(dyn, 0.0, n=50, steps=3)
    assert np.all(extra == 0.0)
    res = run_counterfactual("LOB-Execution-v0", ["const:0.1", "const:0.5"], n_paths=64, seed=3,
                             env_kwargs=dict(quantity=Q, horizon=T, dynamics=ParametricDynamics(P.replace(gamma=0.0))),
                             scenario="latency:retail", record=64, n_boot=100)
    m1 = res.paths["const:0.1"].trajectories["mid"]
    m2 = res.paths["const:0.5"].trajectories["mid"]
    both = ~np.isnan(m1) & ~np.isnan(m2)
    assert both[:, 1:].sum() > 64
    np.testing.assert_array_equal(m1[both], m2[both])
    assert res.market == "parametric + latency retail"


def test_counterfactual_latency_scenarios_are_paired_with_no_latency():
    kw = dict(n_paths=300, seed=1, env_kwargs=dict(quantity=Q, horizon=T, dynamics="parametric"), n_boot=100)
    base = run_counterfactual("LOB-Execution-v0", ["twap"], **kw)
    zero = run_counterfactual("LOB-Execution-v0", ["twap"], scenario="latency:none", **kw)
    slow = run_counterfactual("LOB-Execution-v0", ["twap"], scenario="latency:500ms", adverse_bps_per_s=4.0, **kw)
    np.testing.assert_array_equal(base.paths["twap"].infos["shortfall_bps"], zero.paths["twap"].infos["shortfall_bps"])
    d = slow.paths["twap"].infos["shortfall_bps"] - base.paths["twap"].infos["shortfall_bps"]
    # TWAP: equal child orders, each paying 4 bps/s x 0.5 s of its decision mid: ~2 bps of arrival notional
    assert d.mean() == pytest.approx(2.0, abs=0.05)
    # paired: the difference is much less noisy than the shortfall itself
    assert d.std() < 0.1 * base.summaries["twap"].std


def test_bad_latency_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="adverse_bps_per_s must be a finite number >= 0"):
        LatencyDynamics("parametric", "cloud", adverse_bps_per_s=-1.0)
    with pytest.raises(KeyError, match="unknown latency scenario 'warp'"):
        LatencyDynamics("parametric", "warp")
    with pytest.raises(ValueError, match="already has a latency wrapper"):
        LatencyDynamics(LatencyDynamics(), "cloud")
    with pytest.raises(ValueError, match="unknown latency scenario 'fast'.*500us or 12.5ms"):
        parse_latency("fast")
    assert parse_latency("12.5ms").one_way_us == 12_500.0 and parse_latency("cloud").one_way_us == 2000.0
    with pytest.raises(ValueError, match="one_way_us must be a finite number >= 0"):
        parse_latency("-3us")


@pytest.mark.slow  # compiles the learned market's kernels (~1 min on the shared 2-core machine)
def test_wrapper_works_around_the_learned_market():
    kw = dict(n_paths=200, seed=1, env_kwargs=dict(quantity=Q, horizon=T, dynamics="learned"), n_boot=100)
    base = run_counterfactual("LOB-Execution-v0", ["twap", "aggressive"], **kw)
    zero = run_counterfactual("LOB-Execution-v0", ["twap", "aggressive"], scenario="latency:none", **kw)
    slow = run_counterfactual("LOB-Execution-v0", ["twap", "aggressive"], scenario="latency:250ms",
                              adverse_bps_per_s=2.0, **kw)
    assert base.market == "learned" and slow.market == "learned + latency 250ms, adverse 2 bps/s"
    for s in ("twap", "aggressive"):
        x = base.paths[s].infos["shortfall_bps"]
        np.testing.assert_array_equal(x, zero.paths[s].infos["shortfall_bps"])
        d = slow.paths[s].infos["shortfall_bps"] - x
        assert d.mean() == pytest.approx(2.0 * 0.25, abs=4 * d.std() / math.sqrt(d.size) + 0.02)

"""Latency scenarios and their effect in the market-making env."""

import numpy as np
import pytest

from lobworld.envs import market_making_kernels as K
from lobworld.envs.dynamics import ParametricParams
from lobworld.envs.market_making import MarketMakingConfig, MarketMakingCore
from lobworld.scenarios import (
    LATENCY_SCENARIOS,
    LatencyScenario,
    get_latency_scenario,
    random_latency_sampler,
    register_latency_scenario,
    resolve_latency,
)
from lobworld.world_models.arrivals import PoissonParams


def test_presets():
    assert get_latency_scenario("colocated") == LatencyScenario("colocated", 25.0, 5.0)
    assert get_latency_scenario("proximity") == LatencyScenario("proximity", 200.0, 30.0)
    assert get_latency_scenario("cloud") == LatencyScenario("cloud", 2000.0, 200.0)
    assert get_latency_scenario("retail") == LatencyScenario("retail", 50000.0, 5000.0)
    assert get_latency_scenario("retail").one_way_s == pytest.approx(0.05)
    with pytest.raises(KeyError, match="colocated"):
        get_latency_scenario("moon")
    with pytest.raises(ValueError, match="one_way_us"):
        LatencyScenario("bad", -1.0)
    with pytest.raises(ValueError, match="jitter_us"):
        LatencyScenario("bad", 1.0, float("nan"))


def test_user_defined_and_resolution():
    s = register_latency_scenario(LatencyScenario("my-fpga", 2.0, 0.5))
    assert LATENCY_SCENARIOS["my-fpga"] is s
    with pytest.raises(ValueError, match="already exists"):
        register_latency_scenario(LatencyScenario("my-fpga", 3.0))
    assert resolve_latency("cloud", 3) == [LATENCY_SCENARIOS["cloud"]] * 3
    assert [x.name for x in resolve_latency(["cloud", s], 2)] == ["cloud", "my-fpga"]
    with pytest.raises(ValueError, match="3 scenarios for 2 envs"):
        resolve_latency(["cloud"] * 3, 2)
    with pytest.raises(TypeError):
        resolve_latency(3.5, 2)
    f = random_latency_sampler(seed=7)
    a = [f(i).name for i in range(40)]
    assert a == [random_latency_sampler(seed=7)(i).name for i in range(40)]
    assert len(set(a)) == 4
    with pytest.raises(ValueError, match="weights"):
        random_latency_sampler(["cloud"], weights=[-1.0])


def test_per_env_latency_arrays_and_observation():
    core = MarketMakingCore(3, MarketMakingConfig(latency=["colocated", "retail", "none"]))
    np.testing.assert_allclose(core.lat_ow, [25e-6, 0.05, 0.0])
    np.testing.assert_allclose(core.lat_jit, [5e-6, 5e-3, 0.0])
    core.reset()
    np.testing.assert_allclose(core.obs[:, K.O_LAT], [np.log10(26) / 5, np.log10(50001) / 5, 0.0], rtol=1e-6)
    sampled = MarketMakingCore(8, MarketMakingConfig(latency=random_latency_sampler(seed=1)))
    assert len(set(sampled.lat_ow)) > 1


def _fast_flow(latency, dt=0.01, mo_size=100.0):
    dyn = ParametricParams(s0=100.0, sigma=0.0, spread=0.02, spread_logsd=0.0)
    cfg = MarketMakingConfig(dynamics=dyn, latency=latency, mo_impact=0.0, queue_cancel_rate=0.0,
                             queue_join_rate=0.0, queue_init=0.0, inventory_limit=1e9, horizon=1000, dt=dt,
                             mo_size_fixed=True, mo_size=mo_size, fill_A=1e9, poisson=PoissonParams(rate=(1000.0, 1e-9)))
    core = MarketMakingCore(1, cfg)
    core.seed_rows([0], [0])
    core.reset()
    return core


def test_slow_quote_cannot_fill_before_it_reaches_the_book():
    """dt = 10 ms, 50 ms latency without jitter: the quote is in flight for 5 steps; 10 buy orders/step."""
    slow = _fast_flow(LatencyScenario("slow", 50_000.0, 0.0))
    ask = np.array([[0.0, 1.0, 0.0, 100.0]])
    for k in range(4):
        slow.step(ask, autoreset=False)
        assert slow.fills[0, K.F_AQ] == 0.0
        q = slow.quotes(0)["ask"]
        assert q["in_flight"] and not q["live"]
        assert q["in_flight_eta"] == pytest.approx(0.05 - 0.01 * (k + 1))
    filled_at = None
    for k in range(4, 8):
        slow.step(ask, autoreset=False)
        if slow.fills[0, K.F_AQ] > 0:
            filled_at = k
            break
    assert filled_at in (4, 5)  # the message lands at t = 50 ms (end of step 5 or start of step 6)
    fast = _fast_flow(LatencyScenario("fast", 25.0, 0.0))
    fast.step(ask, autoreset=False)
    assert fast.fills[0, K.F_AQ] == 100.0  # live after 25 us, filled within the first step


def test_stale_quote_trades_until_the_cancel_lands():
    """A cancel takes the latency to land; market orders arriving meanwhile still fill the old quote."""
    slow = _fast_flow(LatencyScenario("slow", 5_000.0, 0.0), dt=0.01, mo_size=10.0)  # 5 ms of a 10 ms step
    ask = np.array([[0.0, 1.0, 0.0, 500.0]])
    slow.step(ask, autoreset=False)  # live at 5 ms; ~5 orders of 10 shares follow
    first = slow.fills[0, K.F_AQ]
    assert 0 < first < 500
    slow.step(np.array([[0.0, 1.0, 0.0, 0.0]]), autoreset=False)  # cancel: lands 5 ms into the step
    in_cancel_step = slow.fills[0, K.F_AQ]
    assert in_cancel_step > 0  # the quote kept trading for the first 5 ms
    assert first + in_cancel_step <= 500.0
    assert not slow.quotes(0)["ask"]["live"]
    slow.step(np.array([[0.0, 1.0, 0.0, 0.0]]), autoreset=False)
    assert slow.fills[0, K.F_AQ] == 0.0


def test_slow_agent_is_picked_off_and_loses_queue_priority():
    """Same seeds (common random numbers): retail latency fills less and pays more adverse selection per share."""
    def run(lat):
        cfg = MarketMakingConfig(horizon=300, dt=0.1, latency=lat, inventory_limit=1e9, mo_impact=2e-5,
                                 dynamics=ParametricParams(s0=100.0, sigma=0.05, spread=0.02, spread_logsd=0.0),
                                 poisson=PoissonParams(rate=(2.0, 2.0)), fill_A=2.0, fill_k=100.0,
                                 queue_init=100.0, queue_join_rate=2000.0)
        core = MarketMakingCore(64, cfg)
        core.seed_rows(range(64), range(64))
        core.reset()
        a = np.tile([1.0, 1.0, 100.0, 100.0], (64, 1))
        for _ in range(300):
            core.step(a, autoreset=False)
        infos = [core.episode_info(i) for i in range(64)]
        shares = np.array([d["filled_shares_bid"] + d["filled_shares_ask"] for d in infos])
        return shares, sum(d["adverse_selection_cost"] for d in infos) / shares.sum()

    shares_fast, adv_fast = run("colocated")
    shares_slow, adv_slow = run("retail")
    # behind in the queue (queue_join_rate * 50 ms = 100 more shares ahead at every re-quote): fewer fills
    d = shares_fast - shares_slow
    assert d.mean() > 3 * d.std(ddof=1) / np.sqrt(d.size)
    # and the fills it gets are worse: the stale quote is hit by the flow that moves the mid
    assert adv_slow > 1.03 * adv_fast > 0

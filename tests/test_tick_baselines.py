"""Baselines of the tick-level envs (lobworld.agents.tick_baselines): actions on hand-built observations,
schedules that conserve shares on the replay and the parametric worlds, AC at zero risk aversion == TWAP."""

import math

import numpy as np
import pytest

import lobworld  # noqa: F401  (registers the ids and the parametric tick world)
from lobworld.agents import tick_baselines as tb
from lobworld.agents.baselines import BaselineError, DiscreteQuotes, make_baseline
from lobworld.envs import book_kernels as bk
from lobworld.envs.tick import TickExecutionCore, TickMarketMakingCore

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"


def _mm_core(**kw):
    return TickMarketMakingCore(n_envs=2, **{"horizon": 20, "inventory_limit": 1000.0, **kw})


def _obs(core, n=1, **cols):
    """A zero observation of ``core`` with the named columns set (names: lobworld.envs.tick.obs_names)."""
    from lobworld.envs.tick import obs_names

    names = obs_names(core.n_levels, core._first_name)
    o = np.zeros((n, len(names)), np.float32)
    for k, v in cols.items():
        o[:, names.index(k)] = v
    return o


# ---------------------------------------------------------------------------
# market making: hand-built observations
# ---------------------------------------------------------------------------
def test_fixed_spread_quotes_ticks_from_the_mid_as_levels_from_the_touch():
    core = _mm_core()
    agent = make_baseline("fixed-spread:3", MM, core)
    a = agent(_obs(core, 2, spread=[4.0, 1.0]))
    # 3 ticks from the mid with a 4-tick spread: 1 tick behind each touch; with a 1-tick spread: 2.5 behind
    np.testing.assert_allclose(a[:, :2], [[1.0, 1.0], [2.5, 2.5]])
    np.testing.assert_array_equal(a[:, 2:4], 100.0)  # discrete_size
    np.testing.assert_array_equal(a[:, 4:], 0.0)


def test_quotes_drop_the_side_whose_fill_would_break_the_inventory_limit():
    core = _mm_core(inventory_limit=250.0, max_size=100.0)
    agent = make_baseline("fixed-spread:2", MM, core)
    a = agent(_obs(core, 3, spread=2.0, inventory=[160 / 250, -160 / 250, 0.0]))
    np.testing.assert_array_equal(a[:, 2:4], [[0.0, 100.0], [100.0, 0.0], [100.0, 100.0]])


def test_avellaneda_stoikov_by_hand():
    core = _mm_core(horizon=10, dt=2.0)  # T = 20 s
    g, kappa, s2 = 0.01, 0.5, 2.0
    agent = tb.TickQuoteAgent(core, "as", gamma=g, kappa=kappa, sigma2=s2)
    q, t = 20.0, 0.25  # 20 shares long, a quarter of the horizon gone: tau = 15 s
    a = agent(_obs(core, 1, spread=6.0, inventory=q / 1000.0, time=t))
    tau = 15.0
    total = g * s2 * tau + (2 / g) * math.log(1 + g / kappa)
    skew = q * g * s2 * tau
    np.testing.assert_allclose(a[0, :2], [total / 2 + skew - 3.0, total / 2 - skew - 3.0], rtol=1e-6)
    np.testing.assert_allclose(a[0, :2], [5.1303, -6.8697], atol=1e-4)  # the same, evaluated by hand
    assert a[0, 0] > a[0, 1]  # long: bid further away than the ask


def test_cartea_jaimungal_is_symmetric_flat_and_skews_with_inventory():
    core = _mm_core()
    agent = make_baseline("cartea-jaimungal:1e-5", MM, core)
    db, da, qb, qa = agent.deltas(_obs(core, 3, spread=2.0, inventory=[0.0, 0.3, -0.3], time=0.1).astype(float))
    assert db[0] == pytest.approx(da[0], rel=1e-12) and qb.all() and qa.all()
    assert db[1] > da[1] and db[2] < da[2]  # long: sell more eagerly; short: buy more eagerly
    np.testing.assert_allclose([db[1], da[1]], [da[2], db[2]], rtol=1e-9)  # mirror images
    # at the largest inventory (q_max lots) the side that would add to it is not quoted
    _, _, qb, qa = agent.deltas(_obs(core, 1, spread=2.0, inventory=agent.q_max * 100 / 1000).astype(float))
    assert not qb[0] and qa[0]


def test_calibration_measures_the_world():
    st = tb.calibrate(_mm_core())
    # the shipped GOOG hour: a spread of tens of ticks (0.01 USD), mids near 575 USD, a few hundred shares at the touch
    assert 5 < st.spread < 100 and 55_000 < st.mid < 60_000 and 10 < st.touch_size < 2_000
    assert st.sigma2 > 0 and st.volume_rate > 0
    assert tb.calibrate(_mm_core()) is st  # cached per (core class, config)


def test_discrete_id_gets_grid_actions_and_bad_names_are_refused():
    core = TickMarketMakingCore(n_envs=2, horizon=20, discrete=True)
    agent = make_baseline("fixed-spread:1", MM, core)
    assert isinstance(agent, DiscreteQuotes)
    a = agent(_obs(core, 2, spread=2.0))
    # 1 tick from the mid with a 2-tick spread = level 0 on both sides: grid action (0, 0) is index 0
    np.testing.assert_array_equal(a, [0, 0])
    with pytest.raises(BaselineError, match="valid names"):
        make_baseline("twap", MM, core)
    with pytest.raises(BaselineError, match="number"):
        make_baseline("as:x", MM, core)


# ---------------------------------------------------------------------------
# execution: hand-built observations
# ---------------------------------------------------------------------------
def _ex_core(**kw):
    return TickExecutionCore(n_envs=2, **{"horizon": 10, "quantity": 1000, **kw})


def test_twap_child_is_the_schedule_gap():
    core = _ex_core()
    agent = make_baseline("twap", EX, core)
    # decision 3 of 10 with 800 left: the target after it is 600 -> a market child of 200 of 800
    a = agent(_obs(core, 1, time=0.3, remaining=0.8))
    np.testing.assert_allclose(a[0], [0.25, 0.0, 0.0])
    a = agent(_obs(core, 1, time=0.3, remaining=0.5))  # ahead of the schedule: nothing
    np.testing.assert_array_equal(a[0], [0.0, 0.0, 0.0])


def test_pov_child_is_the_rate_times_the_last_volume():
    core = _ex_core()
    a = make_baseline("pov:0.2", EX, core)(_obs(core, 1, time=0.1, remaining=0.5, exec_volume=3.0))
    np.testing.assert_allclose(a[0], [0.2 * 300 / 500, 0.0, 0.0], rtol=1e-6)


def test_passive_first_rests_at_the_touch_keeps_its_place_then_crosses():
    core = _ex_core()
    agent = make_baseline("passive-first:0.2", EX, core)  # may lag 200 shares
    # decision 2, 800 left, target after it 700: a limit child of 100 + 200 at the touch
    a = agent(_obs(core, 1, time=0.2, remaining=0.8, order0_ahead=-1.0))
    np.testing.assert_allclose(a[0], [300 / 800, 1.0, 0.0], rtol=1e-6)
    # a child of 100 resting at the touch (distance 0), 150 behind (< 200): keep it as it is
    a = agent(_obs(core, 1, time=0.3, remaining=0.75, order0_ahead=0.5, order0_resting=1.0))
    np.testing.assert_allclose(a[0], [100 / 750, 1.0, 0.0], rtol=1e-6)
    # the same child 2 ticks behind the touch (the touch moved away): ask for 150 + 200 at the touch
    a = agent(_obs(core, 1, time=0.3, remaining=0.75, order0_ahead=0.5, order0_resting=1.0, order0_distance=2.0))
    np.testing.assert_allclose(a[0], [350 / 750, 1.0, 0.0], rtol=1e-6)
    # 200 behind with the child resting: cancel; without a child: cross the deficit
    a = agent(_obs(core, 1, time=0.3, remaining=0.8, order0_ahead=0.5, order0_resting=1.0))
    np.testing.assert_array_equal(a[0], [0.0, 3.0, 0.0])
    a = agent(_obs(core, 1, time=0.3, remaining=0.8, order0_ahead=-1.0))
    np.testing.assert_allclose(a[0], [200 / 800, 0.0, 0.0], rtol=1e-6)
    # the last two decisions cross whatever is behind (decision 8: 250 left, target after it 100)
    a = agent(_obs(core, 1, time=0.8, remaining=0.25, order0_ahead=-1.0))
    np.testing.assert_allclose(a[0], [150 / 250, 0.0, 0.0], rtol=1e-6)
    with pytest.raises(BaselineError, match="LAG"):
        make_baseline("passive-first:0", EX, core)


def test_ac_weights_closed_form():
    H, lam, s2, eta = 8, 0.02, 3.0, 0.01
    w = tb.ac_weights(H, lam, s2, eta)
    k = math.acosh(1 + lam * s2 / (2 * eta))
    np.testing.assert_allclose(w, [math.sinh(k * (H - j)) / math.sinh(k * H) for j in range(H + 1)], rtol=1e-12)
    # the discrete Euler-Lagrange equation of E[C] + lam Var[C]: x_{j-1} - 2 x_j + x_{j+1} = lam s2 / eta x_j
    np.testing.assert_allclose(w[:-2] - 2 * w[1:-1] + w[2:], lam * s2 / eta * w[1:-1], rtol=1e-9)
    np.testing.assert_array_equal(tb.ac_weights(H, 0.0, s2, eta), tb.twap_weights(H))


def test_vwap_weights_follow_the_u_profile():
    from lobworld.envs.execution import GOOG_U_PROFILE

    w = tb.vwap_weights(4, 60.0, np.array([9.5 * 3600.0, 12.25 * 3600.0]), GOOG_U_PROFILE)
    assert w[:, 0].tolist() == [1.0, 1.0] and w[:, -1].tolist() == [0.0, 0.0]
    # at the open volume falls through the first minutes: more than a quarter trades in the first minute
    assert 1 - w[0, 1] > 0.25
    # near the midday minimum the profile is flat: within 1e-3 of TWAP
    np.testing.assert_allclose(w[1], tb.twap_weights(4), atol=1e-3)


# ---------------------------------------------------------------------------
# execution: rollouts
# ---------------------------------------------------------------------------
def _rollout(core, agent, seeds):
    n = core.n_envs
    core.seed_rows(range(n), seeds)
    core.reset()
    acts, rem = [], [core.book.acct[:, bk.A_POS].copy()]
    for _ in range(core.config.horizon):
        a = agent(core.obs.copy())
        acts.append(a)
        core.step(a, autoreset=False)
        rem.append(core.book.acct[:, bk.A_POS].copy())
    return np.array(acts), np.array(rem), [core.episode_info(i) for i in range(n)]


@pytest.mark.parametrize("world", ["replay", "parametric"])
def test_twap_sells_exactly_q_on_its_schedule(world):
    H, Q = 10, 600
    core = TickExecutionCore(n_envs=3, horizon=H, quantity=Q, world=world, latency="retail")
    _, pos, infos = _rollout(core, make_baseline("twap", EX, core), [5, 6, 7])
    # after decision j the position is -(j Q / H) exactly: every market child filled within its interval
    np.testing.assert_array_equal(pos, -np.outer(np.arange(H + 1) * Q // H, np.ones(3)))
    for info in infos:
        assert info["shares_executed"] == Q and info["forced_shares"] == 0 and info["aggressive_shares"] == Q
    # cash: the sum of the fills' price x shares (ticks)
    b = core.book
    for i in range(3):
        f = b.fills[i, : b.es[i, bk.ES_NFILL]]
        assert f[:, bk.F_QTY].sum() == Q
        assert b.acct[i, bk.A_CASH] == (f[:, bk.F_PRICE] * f[:, bk.F_QTY]).sum()


@pytest.mark.parametrize("world", ["replay", "parametric"])
def test_ac_with_zero_risk_aversion_is_twap_exactly(world):
    core = TickExecutionCore(n_envs=3, horizon=8, quantity=400, world=world)
    runs = [_rollout(core, make_baseline(name, EX, core), [1, 2, 3]) for name in ("twap", "ac", "ac:0")]
    for acts, pos, infos in runs[1:]:
        np.testing.assert_array_equal(acts, runs[0][0])
        np.testing.assert_array_equal(pos, runs[0][1])
        assert [i["shortfall_bps"] for i in infos] == [i["shortfall_bps"] for i in runs[0][2]]
    # a positive LAMBDA front-loads: at every decision it holds no more than TWAP
    _, pos, _ = _rollout(core, make_baseline("ac:1", EX, core), [1, 2, 3])
    assert (-pos <= 400).all() and (-pos >= -runs[0][1]).all() and (-pos[1] > -runs[0][1][1]).all()


@pytest.mark.parametrize("name", ["vwap", "pov", "passive-first", "aggressive"])
def test_every_execution_baseline_completes_q(name):
    core = TickExecutionCore(n_envs=4, horizon=60, quantity=500, side="buy")
    _, pos, infos = _rollout(core, make_baseline(name, EX, core), [3, 4, 5, 6])
    assert (pos[-1] == 500).all()
    for info in infos:
        assert info["completion"] == 1.0
        assert info["shares_executed"] == info["passive_shares"] + info["aggressive_shares"] + info["forced_shares"]
    if name == "passive-first":
        assert sum(i["passive_shares"] for i in infos) > 0
    if name == "aggressive":
        assert all(i["forced_shares"] == 0 for i in infos) and (pos[1] == 500).all()
    if name == "pov":  # 10% of a few shares a second cannot buy 500 shares in a minute: the rest is forced
        assert all(0 < i["forced_shares"] < 500 for i in infos)


def test_calibration_with_event_decisions_and_with_a_world_object():
    core = TickMarketMakingCore(n_envs=2, horizon=20, decide_every="events", k_events=50)
    st = tb.calibrate(core)
    # 50 GOOG messages take a few seconds of this hour (about 8 messages per second)
    assert 1.0 < st.interval < 30.0
    from lobworld.world_models.tick_world import CSTWorld
    from lobworld.envs.tick import TickMarketMakingConfig

    w = CSTWorld.from_config(TickMarketMakingConfig())
    core = TickMarketMakingCore(n_envs=3, horizon=20, world=w)
    core.reset()
    tb.calibrate(core)  # the pilot (8 envs) runs on a copy: the core's world keeps its 3 rows
    assert w.wrng.shape[0] == 3
    core.step(np.tile(np.array([0, 0, 100, 100, 0, 0], np.float32), (3, 1)), autoreset=True)

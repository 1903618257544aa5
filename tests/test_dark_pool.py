"""LOB-DarkPool-v0: censoring, conservation, closed-form rewards, faces, baselines."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld  # noqa: F401  (registers the ids)
from lobworld.agents.dark_pool import (
    GanchevPolicy,
    GanchevState,
    LitOnlyPolicy,
    OraclePolicy,
    UniformPolicy,
    _greedy,
    alloc_fill_from_obs,
    evaluate,
    oracle_tails,
)
from lobworld.envs.core import ActionError, LOBSB3VecEnv, make_sb3_vec_env
from lobworld.envs.dark_pool import (
    OBS_REMAINING,
    DarkPoolConfig,
    DarkPoolCore,
    DarkPoolEnv,
    DarkPoolVectorEnv,
    _allocate,
)
from lobworld.envs.dynamics import MID, ParametricDynamics, ParametricParams
from lobworld.envs.dark_pool_scenarios import SCENARIOS, DarkPoolScenario, VenueSpec, get_scenario
from vec_contract import assert_matches_dummy

K = 4


def _random_actions(rng, n, k=K, zero_prob=0.2):
    a = rng.uniform(0, 1, (n, k + 2)).astype(np.float32)
    a[:, : k + 1] *= rng.uniform(size=(n, k + 1)) > zero_prob
    a[:, k + 1] = rng.uniform(0, 0.3, n)
    return a


# --------------------------------------------------------------- checkers
def test_gym_and_sb3_checkers():
    gym_check_env(DarkPoolEnv(), skip_render_check=True)
    sb3_check_env(DarkPoolEnv(), warn=False)
    env = gym.make("LOB-DarkPool-v0", n_dark=2, scenario="drifting")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4 + 4 * 2,) and obs.dtype == np.float32
    venv = gym.make_vec("LOB-DarkPool-v0", num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=1)
    assert obs.shape == (3, 4 + 4 * K)


# --------------------------------------------------------------- action mapping
def test_allocation_largest_remainder_hand_computed():
    out = np.zeros(5, np.int64)
    # V = floor(0.1 * 2000 + 0.5) = 200 split 1:1:1 -> 66.67 each: floors 198, +1 to venues 0 and 1
    assert _allocate(np.array([1, 1, 1, 0, 0, 0.1]), 2000, out) == 200
    assert out.tolist() == [67, 67, 66, 0, 0]
    # weights 0.5 : 0.25 : 0.25 of V = floor(0.3 * 7 + 0.5) = 2 -> [1, 0.5, 0.5]: one spare share to venue 1
    assert _allocate(np.array([0.5, 0.25, 0.25, 0, 0, 0.3]), 7, out) == 2
    assert out.tolist() == [1, 1, 0, 0, 0]
    assert _allocate(np.zeros(6), 2000, out) == 0 and out.sum() == 0  # all-zero weights: nothing
    assert _allocate(np.array([1, 1, 1, 1, 1, 0.0]), 2000, out) == 0 and out.sum() == 0
    assert _allocate(np.array([0, 0, 0, 0, 1, 1.0]), 13, out) == 13 and out.tolist() == [0, 0, 0, 0, 13]


# --------------------------------------------------------------- closed-form rewards
def _det_core(**kw):
    """One deterministic pool (s = 50 shares every step), no mid noise, constant 0.30 spread."""
    scen = DarkPoolScenario(name="det", venues=(VenueSpec(p_zero=0.0, scale=50.0, shape=1e9,
                                                          price_improvement=0.5, toxicity=2.0),))
    params = ParametricParams(sigma=0.0, spread=0.30, spread_logsd=0.0, gamma=0.0, eta=0.05)
    cfg = dict(quantity=1000, horizon=5, n_dark=1, scenario=scen, dt=10.0)
    cfg.update(kw)
    core = DarkPoolCore(n_envs=1, dynamics=ParametricDynamics(params), **cfg)
    core.seed_rows([0], [0])
    core.reset()
    return core


def test_reward_hand_computed_dark_then_lit():
    core = _det_core()
    S0, Q = ParametricParams().s0, 1000
    assert core.s0[0] == S0
    core.step(np.array([[0.0, 1.0, 0.1]]), autoreset=False)  # 100 shares to the pool, fills 50
    assert core.last_alloc[0].tolist() == [0, 100] and core.last_fill[0].tolist() == [0, 50]
    improve = 50 * 0.5 * 0.15
    jump = 2.0e-4 * S0 * 50 / 100  # toxic move against the seller, USD
    expected = 1e4 * (improve - jump * 950) / (Q * S0)
    assert core.reward[0] == pytest.approx(expected, rel=1e-12)
    assert core.market[0, MID] == pytest.approx(S0 - jump, rel=1e-14)
    assert core.obs[0, OBS_REMAINING] == pytest.approx(0.95)
    core.step(np.array([[1.0, 0.0, 0.1]]), autoreset=False)  # 95 shares lit: temp impact 0.05 * 95 / 10
    assert core.last_fill[0].tolist() == [95, 0]
    assert core.reward[0] == pytest.approx(1e4 * (-95 * 0.05 * 95 / 10) / (Q * S0), rel=1e-12)
    assert not core.terminated[0] and core.remaining[0] == 855


def test_forced_lit_execution_at_horizon_and_penalty():
    core = _det_core(horizon=2, unfilled_penalty_bps=5.0)
    S0, Q = ParametricParams().s0, 1000
    core.step(np.zeros((1, 3)), autoreset=False)
    assert core.reward[0] == 0.0 and not core.terminated[0]
    core.step(np.zeros((1, 3)), autoreset=False)  # nothing sent: all 1000 shares forced lit
    assert core.terminated[0] and not core.truncated[0]
    assert core.last_fill[0].tolist() == [1000, 0]
    expected = 1e4 * (-1000 * 0.05 * 1000 / 10 - 5e-4 * S0 * 1000) / (Q * S0)
    assert core.reward[0] == pytest.approx(expected, rel=1e-12)
    info = core.episode_info(0)
    assert info["forced_fraction"] == 1.0 and info["penalty_bps"] == pytest.approx(5.0)
    assert info["dark_fraction"] == 0.0 and math.isnan(info["dark_fill_rate"])


@pytest.mark.parametrize("scenario", ["stationary", "drifting", "adversarial", "lognormal"])
@pytest.mark.parametrize("side", ["sell", "buy"])
def test_shortfall_decomposition_and_conservation(scenario, side):
    """shortfall = cost - penalty + half-spread + exogenous market move, exactly; shares sum to Q."""
    n = 16
    core = DarkPoolCore(n_envs=n, scenario=scenario, side=side, horizon=12)
    core.seed_rows(range(n), range(n))
    core.reset()
    rng = np.random.default_rng(0)
    returns = np.zeros(n)
    n_done = 0
    for _ in range(40):
        R_before = core.remaining.copy()
        core.step(_random_actions(rng, n), autoreset=True)
        returns += core.reward
        done = core.terminated
        # conservation within the step
        executed = core.last_fill.sum(axis=1)
        live = ~done
        np.testing.assert_array_equal(R_before[live] - executed[live], core.remaining[live])
        for i in np.flatnonzero(done):
            info = core.episode_info(int(i))
            n_done += 1
            assert info["dark_shares"] + info["lit_shares"] == core.config.quantity
            assert info["cost_bps"] == pytest.approx(-returns[i], abs=1e-9)
            lhs = info["shortfall_bps"]
            rhs = info["cost_bps"] - info["penalty_bps"] + info["half_spread_bps"] + info["market_move_bps"]
            assert lhs == pytest.approx(rhs, abs=1e-8)
            returns[i] = 0.0
    assert n_done >= 2 * n


# --------------------------------------------------------------- censoring
def test_fills_never_exceed_allocation_or_hidden_liquidity():
    n = 32
    core = DarkPoolCore(n_envs=n, scenario="stationary")
    core.seed_rows(range(n), range(n))
    core.reset()
    rng = np.random.default_rng(1)
    censored = uncensored = 0
    for _ in range(60):
        a = _random_actions(rng, n)
        R = core.remaining.copy()
        core.step(a, autoreset=True)
        done = core.terminated
        live = ~done
        alloc, fill, hid = core.last_alloc[live, 1:], core.last_fill[live, 1:], core._hidden[live]
        np.testing.assert_array_equal(fill, np.minimum(alloc, hid))
        assert (fill <= alloc).all() and (fill <= hid).all() and (fill >= 0).all()
        np.testing.assert_array_equal(core.last_alloc[live].sum(axis=1) <= R[live], True)
        censored += int(((fill == alloc) & (alloc > 0) & (hid > alloc)).sum())
        uncensored += int((fill < alloc).sum())
    assert censored > 50 and uncensored > 50  # both regimes exercised


def _run_capped(cap, per_pool, scenario, steps=45, n=6):
    scen = get_scenario(scenario).replace(name="capped", liquidity_cap=cap)
    core = DarkPoolCore(n_envs=n, scenario=scen, horizon=15)
    core.seed_rows(range(n), [100 + i for i in range(n)])
    core.reset()
    out, hidden, infos = [np.concatenate([core.obs, core.obs, [[0.0]] * n], axis=1)], [], []
    for _ in range(steps):
        R = np.maximum(core.remaining, 1)
        a = np.ones((n, K + 2))
        a[:, 0] = 0.0  # dark only, per_pool shares to each pool
        a[:, K + 1] = np.minimum(1.0, K * per_pool / R)
        core.step(a, autoreset=True)
        out.append(np.concatenate([core.obs, core.final_obs, core.reward[:, None]], axis=1).copy())
        hidden.append(core._hidden.copy())
        infos += [core.episode_info(int(i)) for i in np.flatnonzero(core.terminated)]
    return np.array(out), np.array(hidden), infos


@pytest.mark.parametrize("scenario", ["stationary", "drifting", "adversarial"])
def test_censoring_is_never_leaked(scenario):
    """Hidden liquidity changed only above the allocated amount leaves every output unchanged."""
    per_pool, cap = 20, 20.0
    o1, h1, i1 = _run_capped(math.inf, per_pool, scenario)
    o2, h2, i2 = _run_capped(cap, per_pool, scenario)
    assert (h1 > cap).sum() > 20 and not np.array_equal(h1, h2)  # the hidden world did differ
    np.testing.assert_array_equal(o1, o2)
    assert len(i1) == len(i2) > 0
    for a, b in zip(i1, i2):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    # control: allocating above the cap does reveal the difference (the test can fail)
    o3, _, _ = _run_capped(math.inf, 60, scenario)
    o4, _, _ = _run_capped(cap, 60, scenario)
    assert not np.array_equal(o3, o4)


def test_exogenous_draws_do_not_depend_on_actions():
    """Common random numbers: hidden liquidity and the lit market's noise ignore the agent (stationary)."""
    n = 4
    runs = []
    for pol in ("lit", "dark"):
        core = DarkPoolCore(n_envs=n, scenario=get_scenario("stationary").replace(name="nt", toxic_prob=0.0),
                            dynamics=ParametricDynamics(ParametricParams(gamma=0.0)))
        core.seed_rows(range(n), range(n))
        core.reset()
        hid, mids = [], []
        for _ in range(20):
            a = np.zeros((n, K + 2))
            a[:, 0 if pol == "lit" else 1] = 1.0
            a[:, K + 1] = 0.05
            core.step(a, autoreset=True)
            hid.append(core._hidden.copy())
            mids.append(core.market[:, MID].copy())
        runs.append((np.array(hid), np.array(mids)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


# --------------------------------------------------------------- determinism and faces
def test_determinism_and_batch_row_equals_single_env_seeded_s_plus_i():
    n, s = 3, 40
    rng = np.random.default_rng(2)
    acts = [_random_actions(rng, n) for _ in range(70)]
    vec = DarkPoolVectorEnv(num_envs=n, scenario="drifting")
    o_v = [vec.reset(seed=s)[0]]
    singles = [DarkPoolEnv(scenario="drifting") for _ in range(n)]
    o_s = [np.stack([e.reset(seed=s + i)[0] for i, e in enumerate(singles)])]
    for a in acts:
        o, r, term, trunc, infos = vec.step(a)
        o_v.append(np.concatenate([o, r[:, None]], axis=1))
        rows = []
        for i, e in enumerate(singles):
            ob, rw, te, tr, inf = e.step(a[i])
            assert te == term[i] and tr == trunc[i]
            if te or tr:
                np.testing.assert_array_equal(ob, infos["final_obs"][i])
                assert all(infos["final_info"]["_" + k][i] and infos["final_info"][k][i] == v for k, v in inf.items())
                ob, _ = e.reset()
            rows.append(np.concatenate([ob, [rw]]))
        o_s.append(np.stack(rows))
    # same seeds, second run: bit-identical
    vec2 = DarkPoolVectorEnv(num_envs=n, scenario="drifting")
    o_v2 = [vec2.reset(seed=s)[0]] + [np.concatenate([o, r[:, None]], 1) for o, r, *_ in (vec2.step(a) for a in acts)]
    for a, b, c in zip(o_v, o_s, o_v2):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("n", [1, 4])
def test_sb3_face_matches_dummyvecenv(n):
    rng = np.random.default_rng(3)
    actions = [_random_actions(rng, n) for _ in range(80)]
    def on_end(i, info, obs):
        assert info["TimeLimit.truncated"] is False and {"cost_bps", "dark_fraction", "episode_length"} <= info.keys()

    n_done = assert_matches_dummy(make_sb3_vec_env("LOB-DarkPool-v0", n_envs=n, horizon=10),
                                  DummyVecEnv([lambda: DarkPoolEnv(horizon=10) for _ in range(n)]), 5, actions, on_end)
    assert n_done >= 4 * n


def test_sb3_autoreset_first_obs_of_new_episode():
    venv = LOBSB3VecEnv(DarkPoolCore(n_envs=2, horizon=3))
    venv.seed(0)
    venv.reset()
    for _ in range(2):
        _, _, d, _ = venv.step(np.zeros((2, K + 2), np.float32))
        assert not d.any()
    obs, _, d, infos = venv.step(np.zeros((2, K + 2), np.float32))
    assert d.all()
    for i in range(2):
        assert infos[i]["terminal_observation"][OBS_REMAINING] == 0.0
        assert infos[i]["terminal_observation"][1] == 1.0
        assert infos[i]["forced_fraction"] == 1.0
    assert (obs[:, OBS_REMAINING] == 1.0).all() and (obs[:, 1] == 0.0).all()


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, msg", [
    (np.full((2, K + 2), np.nan), "not finite"),
    (np.full((2, K + 2), 1.5), "outside the action space"),
    (np.full((2, K + 2), -0.1), "outside the action space"),
    (np.zeros((2, K + 1)), "shape"),
    (np.zeros((3, K + 2)), "shape"),
])
def test_bad_actions_raise_and_leave_state(bad, msg):
    core = DarkPoolCore(n_envs=2)
    core.reset()
    before = (core.remaining.copy(), core.market.copy(), core.rng_state.copy())
    with pytest.raises(ActionError, match=msg):
        core.step(bad, autoreset=True)
    for x, y in zip(before, (core.remaining, core.market, core.rng_state)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kw, msg", [
    (dict(n_dark=0), "n_dark"),
    (dict(quantity=2.5), "quantity"),
    (dict(horizon=0), "horizon"),
    (dict(side="short"), "side"),
    (dict(dt=float("nan")), "dt"),
    (dict(unfilled_penalty_bps=-1.0), "unfilled_penalty_bps"),
    (dict(scenario="nope"), "unknown dark-pool scenario"),
    (dict(scenario="fixed4", n_dark=3), "fixes 4 pools"),
])
def test_bad_config_raises_naming_the_field(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DarkPoolConfig(**kw)


def test_bad_scenario_and_overrides_raise():
    with pytest.raises(ValueError, match="p_zero"):
        DarkPoolScenario(p_zero=(0.2, 1.0))
    with pytest.raises(ValueError, match="low .* > high"):
        DarkPoolScenario(scale=(100.0, 10.0))
    with pytest.raises(ValueError, match="family"):
        DarkPoolScenario(family="cauchy")
    with pytest.raises(ValueError, match="shape"):
        VenueSpec(shape=0.0)
    with pytest.raises(TypeError, match="unknown argument .n_dak.*valid arguments: quantity"):
        DarkPoolCore(config=DarkPoolConfig(), n_dak=3)
    assert {"stationary", "drifting", "adversarial"} <= set(SCENARIOS)


# --------------------------------------------------------------- baselines
def test_kaplan_meier_hand_computed():
    st = GanchevState.empty(1, 1, 100, unit=10, prior=0.0)
    # fill 0 of 20 (s = 0), fill 20 of 20 (s >= 20), fill 15 of 30 (s = 15)
    for a, f in ((20, 0), (20, 20), (30, 15)):
        st.update(np.array([[a]]), np.array([[f]]))
    T = st.tails()[0, 0]
    # risk sets: bin 0 -> 3 (one event), bin 1 -> 2 (one event), bin 2 -> 0 (flat: optimism)
    np.testing.assert_allclose(T[:5], [1.0, 2 / 3, 1 / 3, 1 / 3, 1 / 3])
    st.prior = 1.0
    np.testing.assert_allclose(st.tails()[0, 0, :4], [1.0, 3 / 4, 1 / 2, 1 / 2])
    with pytest.raises(ValueError, match="fill <= allocation"):
        st.update(np.array([[5]]), np.array([[6]]))


def test_greedy_allocation_hand_computed():
    tails = np.array([[[1.0, 0.9, 0.5, 0.1, 0.0], [1.0, 0.6, 0.6, 0.6, 0.6]]])
    out = np.zeros((1, 2), np.int64)
    _greedy(tails, np.array([35]), 10, out)  # A gets unit 1 (0.9); B units 1, 2 (0.6 > 0.5); 5 extra to B
    assert out.tolist() == [[10, 25]]


@pytest.mark.parametrize("family", ["pareto", "lognormal"])
def test_oracle_tails_match_simulated_hidden_liquidity(family):
    n, steps = 64, 60
    scen = get_scenario("fixed4").replace(name="f", family=family)
    core = DarkPoolCore(n_envs=n, scenario=scen)
    core.seed_rows(range(n), range(n))
    core.reset()
    draws = []
    for _ in range(steps):
        core.step(np.zeros((n, K + 2)), autoreset=True)
        draws.append(core._hidden.copy())
    s = np.concatenate(draws)  # (steps * n, K)
    tails = oracle_tails(core.venue_params(), core.config.quantity, 10)[0]
    for j in (1, 3, 8):
        emp = (s >= 10 * j).mean(axis=0)
        se = np.sqrt(tails[:, j] * (1 - tails[:, j]) / s.shape[0])
        assert (np.abs(emp - tails[:, j]) < 4 * se + 1e-9).all(), (j, emp, tails[:, j])


def test_adversarial_liquidity_shrinks_where_the_agent_concentrates():
    n = 64
    means = {}
    for mode in ("concentrated", "spread"):
        core = DarkPoolCore(n_envs=n, scenario=get_scenario("adversarial").replace(
            name="a", venues=get_scenario("fixed4").venues))
        core.seed_rows(range(n), range(n))
        core.reset()
        hid = []
        for _ in range(25):
            a = np.zeros((n, K + 2))
            if mode == "concentrated":
                a[:, 1] = 1.0
            else:
                a[:, 1:K + 1] = 1.0
            a[:, K + 1] = 0.01
            core.step(a, autoreset=True)
            hid.append(core._hidden[:, 0].copy())
        means[mode] = np.mean(hid[5:])
        if mode == "concentrated":  # pressure on pool 0 -> 1: scale * exp(-3)
            np.testing.assert_allclose(core.venue_params()["scale"][:, 0], 20.0 * np.exp(-3.0 * core.venue[:, 0, 5]))
            assert (core.venue[:, 0, 5] > 0.9).all()
    assert means["concentrated"] < 0.5 * means["spread"]


def test_drifting_parameters_move_within_the_episode():
    core = DarkPoolCore(n_envs=8, scenario="drifting")
    core.seed_rows(range(8), range(8))
    core.reset()
    p0 = core.venue_params()
    core.step(np.zeros((8, K + 2)), autoreset=True)
    p1 = core.venue_params()
    assert (p0["scale"] != p1["scale"]).all() and (p0["p_zero"] != p1["p_zero"]).all()
    np.testing.assert_array_equal(p0["shape"], p1["shape"])


def test_obs_roundtrip_of_allocations_and_fills():
    core = DarkPoolCore(n_envs=5)
    core.seed_rows(range(5), range(5))
    core.reset()
    rng = np.random.default_rng(4)
    for _ in range(10):
        core.step(_random_actions(rng, 5), autoreset=False)
        alloc, fills = alloc_fill_from_obs(core.obs, core.config)
        np.testing.assert_array_equal(alloc, core.last_alloc[:, 1:])
        np.testing.assert_array_equal(fills, core.last_fill[:, 1:])


def test_policies_send_what_they_intend():
    n = 8
    core = DarkPoolCore(n_envs=n)
    core.seed_rows(range(n), range(n))
    core.reset()
    lit = LitOnlyPolicy(core.config)
    core.step(lit.act(core.obs), autoreset=True)
    assert (core.last_alloc[:, 0] == round(2000 / 30)).all() and (core.last_alloc[:, 1:] == 0).all()
    g = GanchevPolicy(core.config, n)
    a = g.act(core.obs)
    core.step(a, autoreset=True)
    # unexplored pools all have tail 1: the greedy gives the whole slice (2 x TWAP) to pool 0
    assert (core.last_alloc[:, 0] == 0).all() and (core.last_alloc[:, 1] == round(2 * 1933 / 29)).all()
    assert (core.last_alloc[:, 2:] == 0).all()


def test_ganchev_fill_rate_converges_to_oracle():
    n, n_ep = 16, 25
    res = {}
    for name in ("ganchev", "oracle", "uniform"):
        core = DarkPoolCore(n_envs=n, scenario="fixed4")
        pol = {"ganchev": lambda: GanchevPolicy(core.config, n), "oracle": lambda: OraclePolicy(core),
               "uniform": lambda: UniformPolicy(core.config)}[name]()
        res[name] = evaluate(pol, core, n_ep, seed=7)["dark_fill_rate"]
    g_first, g_last = np.nanmean(res["ganchev"][:2]), np.nanmean(res["ganchev"][-5:])
    o_last, u_last = np.nanmean(res["oracle"][-5:]), np.nanmean(res["uniform"][-5:])
    assert g_last >= 0.93 * o_last, (g_last, o_last)
    assert g_first < g_last - 0.03  # it learned
    assert g_last > u_last + 0.05  # and beats the naive split


# --------------------------------------------------------------- properties and other dynamics
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(w=st.lists(st.sampled_from([0.0, 1e-6, 0.1, 0.25, 1 / 3, 0.5, 0.7, 1.0]), min_size=5, max_size=5),
       u=st.floats(0.0, 1.0), R=st.integers(0, 5000))
def test_allocation_properties(w, u, R):
    a = np.array(w + [u])
    out = np.zeros(5, np.int64)
    V = _allocate(a, R, out)
    S = sum(w)
    if S == 0:
        assert V == 0 and out.sum() == 0
        return
    assert V == min(R, int(np.floor(u * R + 0.5))) and out.sum() == V
    exact = V * np.array(w) / S
    assert (np.abs(out - exact) < 1.0 + 1e-9).all()  # largest remainder: within one share of the share
    assert (out[np.array(w) == 0] == 0).all()


@pytest.mark.slow
def test_learned_dynamics_runs_and_keeps_the_shortfall_identity():
    from lobworld.world_models.checkpoint import CheckpointError

    try:
        core = DarkPoolCore(n_envs=4, dynamics="learned", dt=60.0, horizon=10)
    except CheckpointError as exc:  # the shipped checkpoint is tested by the world-model suite
        pytest.skip(f"shipped learned model not loadable here: {exc}")
    core.seed_rows(range(4), range(4))
    core.reset()
    rng = np.random.default_rng(5)
    done = 0
    for _ in range(25):
        core.step(_random_actions(rng, 4), autoreset=True)
        for i in np.flatnonzero(core.terminated):
            info = core.episode_info(int(i))
            rhs = info["cost_bps"] - info["penalty_bps"] + info["half_spread_bps"] + info["market_move_bps"]
            assert info["shortfall_bps"] == pytest.approx(rhs, abs=1e-8)
            assert info["dark_shares"] + info["lit_shares"] == core.config.quantity
            done += 1
    assert done >= 4

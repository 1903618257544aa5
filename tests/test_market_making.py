"""Market-making env: Gymnasium/SB3 contracts, conservation, determinism, parity, config errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld  # noqa: F401  (registers the ids)
from lobworld.envs import make_sb3_vec_env
from lobworld.envs import market_making_kernels as K
from lobworld.envs.core import ActionError
from lobworld.envs.dynamics import ParametricParams
from lobworld.envs.market_making import MarketMakingConfig, MarketMakingCore, MarketMakingEnv, MarketMakingVectorEnv
from lobworld.world_models.arrivals import HawkesParams, PoissonParams
from vec_contract import assert_matches_dummy

IDS = ["LOB-MarketMaking-v0", "LOB-MarketMaking-Discrete-v0"]
# short episodes, a tight inventory limit (so both episode ends occur), busy flow
SMALL = dict(horizon=9, inventory_limit=150.0, poisson=PoissonParams(rate=(3.0, 3.0)), fill_A=5.0)


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass(env_id):
    env = gym.make(env_id, horizon=20)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, horizon=20).unwrapped, warn=False)


def _actions(env_id, n, steps, seed=0):
    rng = np.random.default_rng(seed)
    if "Discrete" in env_id:
        return [rng.integers(0, 11, size=n) for _ in range(steps)]
    hi = np.array([20, 20, 200, 200], np.float32)
    return [(rng.uniform(0, 1, (n, 4)) * hi).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("n", [1, 4])
def test_sb3_vecenv_matches_dummyvecenv(env_id, n):
    kwargs = dict(SMALL, latency="retail", arrival="hawkes")
    acts = _actions(env_id, n, 40)
    dummy = DummyVecEnv([lambda: gym.make(env_id, **kwargs).unwrapped for _ in range(n)])
    native = make_sb3_vec_env(env_id, n_envs=n, **kwargs)
    ends = {"trunc": 0, "term": 0}

    def on_end(i, info, obs):
        assert "pnl" in info
        ends["trunc" if info["TimeLimit.truncated"] else "term"] += 1
        assert obs[i][1] == 0.0  # same-step reset: time fraction back to 0

    assert_matches_dummy(native, dummy, 5, acts, on_end)
    assert ends["trunc"] > 0
    if "Discrete" not in env_id:
        assert ends["term"] > 0


@pytest.mark.parametrize("env_id", IDS)
def test_vector_entry_point_autoreset_and_truncation(env_id):
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", horizon=4,
                        inventory_limit=1e9)
    venv.reset(seed=0)
    a = _actions(env_id, 3, 4)
    for k in range(3):
        _, _, term, trunc, infos = venv.step(a[k])
        assert not (term.any() or trunc.any()) and infos == {}
    obs, _, term, trunc, infos = venv.step(a[3])
    assert trunc.all() and not term.any()
    assert infos["_final_info"].all()
    for i in range(3):
        assert infos["final_obs"][i][1] == pytest.approx(1.0)
        assert infos["final_info"]["episode_length"][i] == 4
    assert (obs[:, 1] == 0).all()


@pytest.mark.parametrize("env_id", IDS)
def test_batch_env_i_replays_single_env_seeded_s_plus_i(env_id):
    n, s = 3, 21
    kw = dict(horizon=30, arrival="hawkes", latency="cloud", poisson=PoissonParams(rate=(2.0, 2.0)))
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
    o_v, _ = vec.reset(seed=s)
    singles = [gym.make(env_id, **kw) for _ in range(n)]
    o_s = np.stack([e.reset(seed=s + i)[0] for i, e in enumerate(singles)])
    np.testing.assert_array_equal(o_v, o_s)
    for a in _actions(env_id, n, 25, seed=3):
        o_v, r_v, *_ = vec.step(a)
        out = [e.step(a[i]) for i, e in enumerate(singles)]
        np.testing.assert_array_equal(o_v, np.stack([x[0] for x in out]))
        np.testing.assert_array_equal(r_v, np.array([x[1] for x in out]))


def test_same_seed_same_rollout_and_reset_without_seed_continues():
    def roll(seed):
        env = MarketMakingEnv(horizon=50, arrival="hawkes", latency="retail")
        out = [env.reset(seed=seed)[0]]
        rng = np.random.default_rng(1)
        for _ in range(50):
            o, r, te, tr, info = env.step(rng.uniform([0, 0, 0, 0], [10, 10, 100, 100]).astype(np.float32))
            out.append(np.append(o, r))
        return np.concatenate(out), info

    a, ia = roll(4)
    b, ib = roll(4)
    c, _ = roll(5)
    np.testing.assert_array_equal(a, b)
    assert ia == ib
    assert not np.array_equal(a, c)


def test_exogenous_market_identical_across_strategies():
    """Common random numbers: the mid path and market orders do not depend on the quotes."""
    cfg = MarketMakingConfig(horizon=40, arrival="hawkes", mo_impact=0.0, latency="retail")
    mids, mos = [], []
    for act in ([2, 2, 100, 100], [40, 1, 500, 0]):
        core = MarketMakingCore(5, cfg)
        core.seed_rows(range(5), range(5))
        core.reset()
        path = []
        for _ in range(40):
            core.step(np.tile(np.array(act, np.float64), (5, 1)), autoreset=False)
            path.append(core.mid)
        mids.append(np.array(path))
        mos.append(core.ep_done[:, [K.E_NMO_BUY, K.E_NMO_SELL, K.E_VMO_BUY, K.E_VMO_SELL]].copy())
    np.testing.assert_array_equal(mids[0], mids[1])
    np.testing.assert_array_equal(mos[0], mos[1])
    assert mos[0][:, :2].sum() > 0


def _quiet(**kw):
    """Constant mid 100.00, spread 2 ticks (best bid 99.99, best ask 100.01), no latency."""
    dyn = ParametricParams(s0=100.0, sigma=0.0, spread=0.02, spread_logsd=0.0, volume_logsd=0.0)
    base = dict(dynamics=dyn, latency="none", mo_impact=0.0, queue_cancel_rate=0.0, queue_join_rate=0.0,
                inventory_limit=1e9, horizon=1000)
    base.update(kw)
    return MarketMakingConfig(**base)


def test_conservation_cash_and_inventory_change_only_on_fills_at_quoted_prices():
    """Moving mid, random quotes, zero latency: every fill is at the price computed from the action."""
    dyn = ParametricParams(s0=100.0, sigma=0.05, spread=0.03, spread_logsd=0.3)
    cfg = MarketMakingConfig(dynamics=dyn, latency="none", horizon=300, inventory_limit=1e9,
                             poisson=PoissonParams(rate=(2.0, 2.0)), fill_A=2.0, fill_k=50.0, queue_init=50.0,
                             phi=0.0)
    n = 8
    core = MarketMakingCore(n, cfg)
    core.seed_rows(range(n), range(n))
    core.reset()
    rng = np.random.default_rng(0)
    tick = cfg.tick
    total_reward = np.zeros(n)
    n_fills = 0
    for _ in range(300):
        inv0, cash0, mid0, spread0 = core.inventory, core.cash, core.mid, core.market[:, 1].copy()
        a = rng.uniform([-3, -3, 0, 0], [8, 8, 200, 200], (n, 4))
        a[:, 2:] = np.floor(a[:, 2:])
        core.step(a, autoreset=False)
        total_reward += core.reward
        f = core.fills
        np.testing.assert_allclose(core.inventory - inv0, f[:, 0] - f[:, 2], atol=1e-9)
        np.testing.assert_allclose(core.cash - cash0, f[:, 3] - f[:, 1], atol=1e-7)
        # expected prices (ticks): floor/ceil from the pre-step mid, post-only against the touch
        st = np.maximum(1.0, np.floor(spread0 / tick + 0.5))
        bb = np.floor((mid0 - 0.5 * st * tick) / tick + 0.5)
        ba = bb + st
        bid = np.minimum(np.floor((mid0 - a[:, 0] * tick) / tick + 1e-9), ba - 1) * tick
        ask = np.maximum(np.ceil((mid0 + a[:, 1] * tick) / tick - 1e-9), bb + 1) * tick
        for i in range(n):
            if f[i, 0] > 0:
                n_fills += 1
                assert f[i, 1] == pytest.approx(f[i, 0] * bid[i], rel=1e-12)
                assert f[i, 0] <= a[i, 2] and f[i, 0] == np.floor(f[i, 0])
            if f[i, 2] > 0:
                n_fills += 1
                assert f[i, 3] == pytest.approx(f[i, 2] * ask[i], rel=1e-12)
                assert f[i, 2] <= a[i, 3]
            if f[i, 0] == 0 and f[i, 2] == 0:
                assert core.inventory[i] == inv0[i] and core.cash[i] == cash0[i]
    assert n_fills > 100
    pnl = np.array([core.episode_info(i)["pnl"] for i in range(n)])
    np.testing.assert_allclose(pnl, core.cash + core.inventory * core.mid, rtol=1e-12)
    np.testing.assert_allclose(total_reward, pnl, rtol=1e-9, atol=1e-6)  # phi = 0: rewards sum to the PnL


def test_reward_hand_case_quadratic_and_exponential_penalty():
    """One ask fill of 100 shares at 100.01 (mid 100.00): dW = +1.00 USD, inventory -100."""
    for penalty, expect in (("quadratic", 1.0 - 1e-4 * 100 ** 2 * 1.0), ("exponential", (1 - np.exp(-0.5)) / 0.5)):
        cfg = _quiet(mo_size_fixed=True, mo_size=100.0, queue_init=0.0, fill_A=1e9,
                     poisson=PoissonParams(rate=(50.0, 1e-9)), penalty=penalty, phi=1e-4, gamma=0.5)
        core = MarketMakingCore(1, cfg)
        core.seed_rows([0], [0])
        core.reset()
        core.step(np.array([[0.0, 1.0, 0.0, 100.0]]), autoreset=False)
        assert core.fills[0, 2] == 100.0 and core.fills[0, 3] == pytest.approx(100 * 100.01)
        assert core.inventory[0] == -100.0
        assert core.reward[0] == pytest.approx(expect, rel=1e-9)


def test_inventory_limit_terminates_and_info_is_complete():
    cfg = _quiet(mo_size_fixed=True, mo_size=100.0, queue_init=0.0, fill_A=1e9, inventory_limit=250.0,
                 poisson=PoissonParams(rate=(1e-9, 5.0)))
    env = MarketMakingEnv(config=cfg)
    env.reset(seed=1)
    for k in range(100):
        obs, r, term, trunc, info = env.step(np.array([1.0, 1.0, 100.0, 0.0], np.float32))
        if term:
            break
    assert term and not trunc
    assert info["inventory_terminal"] == 300.0 and obs[0] == pytest.approx(300 / 250)
    assert info["fills_bid"] == 3 and info["fills_ask"] == 0 and info["filled_shares_bid"] == 300.0
    assert info["inventory_max_abs"] == 300.0
    for key in ("pnl", "inventory_mean", "adverse_selection_cost", "sharpe_per_step", "inventory_penalty"):
        assert np.isfinite(info[key])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, np.float32))


def test_adverse_selection_emerges_from_market_order_impact():
    """Flow with impact: fills are followed by mid moves against us; without impact the mean is ~0."""
    def adverse(impact):
        cfg = MarketMakingConfig(horizon=300, dt=0.1, mo_impact=impact, inventory_limit=1e9, latency="colocated",
                                 dynamics=ParametricParams(s0=100.0, sigma=0.05, spread=0.02, spread_logsd=0.0),
                                 poisson=PoissonParams(rate=(2.0, 2.0)), fill_A=2.0, fill_k=100.0, queue_init=100.0)
        core = MarketMakingCore(64, cfg)
        core.seed_rows(range(64), range(64))
        core.reset()
        a = np.tile([1.0, 1.0, 100.0, 100.0], (64, 1))
        for _ in range(300):
            core.step(a, autoreset=False)
        infos = [core.episode_info(i) for i in range(64)]
        cost = sum(d["adverse_selection_cost"] for d in infos)
        shares = sum(d["filled_shares_bid"] + d["filled_shares_ask"] for d in infos)
        return cost / shares

    with_impact = adverse(2e-5)
    without = adverse(0.0)
    # own order impact alone: 100-share orders * 2e-5 USD/share = 0.002 USD per share filled
    assert with_impact > 0.002
    assert abs(without) < 0.0015
    assert with_impact - without > 0.002


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(horizon=0), "horizon"),
        (dict(dt=float("nan")), "dt"),
        (dict(arrival="gauss"), "arrival"),
        (dict(penalty="linear"), "penalty"),
        (dict(queue_init=-1.0), "queue_init"),
        (dict(fill_model="magic"), "fill_model"),
        (dict(arrival="hawkes", hawkes=HawkesParams(mu=(0.1, 0.1), alpha=((0.9, 0.5), (0.5, 0.9)))), "non-stationary"),
        (dict(discrete_offsets=(1.0, 500.0)), "discrete_offsets"),
    ],
)
def test_bad_config_raises_naming_the_field(kw, msg):
    with pytest.raises(ValueError, match=msg):
        MarketMakingConfig(**kw)


def test_unknown_kwarg_and_bad_actions():
    with pytest.raises(TypeError, match="horizn"):
        MarketMakingEnv(horizn=3)
    env = MarketMakingEnv(horizon=5)
    env.reset(seed=0)
    with pytest.raises(ActionError, match="outside"):
        env.step(np.array([1, 1, 1000, 1], np.float32))
    with pytest.raises(ActionError, match="finite"):
        env.step(np.array([np.nan, 1, 1, 1], np.float32))
    with pytest.raises(ActionError, match="shape"):
        env.step(np.array([1, 1, 1], np.float32))
    denv = MarketMakingEnv(horizon=5, discrete=True)
    denv.reset(seed=0)
    with pytest.raises(ActionError, match="Discrete"):
        denv.step(11)


def test_vector_env_class_and_spaces():
    v = MarketMakingVectorEnv(num_envs=2, discrete=True)
    assert v.single_action_space.n == 11 and v.single_observation_space.shape == (10,)
    o, _ = v.reset(seed=0)
    assert o.dtype == np.float32 and o.shape == (2, 10)
    assert o[0, 5] == -1.0 and o[0, 6] == -1.0  # no quotes yet


@pytest.mark.parametrize("arrival", ["poisson", "hawkes"])
def test_arrival_counts_match_the_model_rates(arrival):
    """Market-order counts per env over 2000 s vs the stationary rate; Hawkes counts are over-dispersed."""
    cfg = MarketMakingConfig(horizon=2000, arrival=arrival, inventory_limit=1e9, mo_impact=0.0)
    n = 32
    core = MarketMakingCore(n, cfg)
    core.seed_rows(range(n), range(n))
    core.reset()
    zero = np.zeros((n, 4))
    per_window = []
    last = np.zeros(n)
    for k in range(2000):
        core.step(zero, autoreset=False)
        if (k + 1) % 20 == 0:
            tot = core.ep[:, K.E_NMO_BUY] + core.ep[:, K.E_NMO_SELL] if k < 1999 else \
                core.ep_done[:, K.E_NMO_BUY] + core.ep_done[:, K.E_NMO_SELL]
            per_window.append(tot - last)
            last = tot.copy()
    counts = core.ep_done[:, K.E_NMO_BUY]
    lam = cfg.mean_rates[0]  # poisson 0.3/s; hawkes 0.2 / (1 - 0.35) = 0.3077/s
    expected = lam * 2000
    assert abs(counts.mean() / expected - 1) < 4 * np.sqrt(expected / n) / expected + 0.01
    w = np.concatenate(per_window)
    dispersion = w.var() / w.mean()  # 1 for Poisson counts
    if arrival == "poisson":
        assert 0.85 < dispersion < 1.15
    else:
        assert dispersion > 1.3

"""Avellaneda-Stoikov (2008) reproduced through the env, and the Cartea-Jaimungal closed form."""

import math

import numpy as np
import pytest

from lobworld.agents.market_making import (
    AS2006_WORKING_PAPER_TABLE,
    AS2008_TABLE,
    AvellanedaStoikovAgent,
    CarteaJaimungalAgent,
    FixedSpreadAgent,
    RandomAgent,
    avellaneda_stoikov_experiment,
    cartea_jaimungal_depths,
)
from lobworld.envs.market_making import MarketMakingEnv


@pytest.mark.parametrize("gamma", [0.1, 0.01, 1.0])
@pytest.mark.parametrize("strategy", ["inventory", "symmetric"])
def test_reproduces_published_table(gamma, strategy):
    """1000 paths, as in the paper (Tables 1-3 of the published article): profit mean within 3 standard
    errors + 0.1 USD (the table is rounded to 0.1) of the published mean; standard deviations within
    15 % (profit) and 20 % (terminal inventory); the average spread within 0.02 of the table."""
    r = avellaneda_stoikov_experiment(gamma, strategy, n_sims=1000, seed=0)
    spread, mean, std, _q_mean, q_std = AS2008_TABLE[(gamma, strategy)]
    se = r["profit_std"] / math.sqrt(r["n_sims"])
    assert abs(r["profit_mean"] - mean) < 3 * se + 0.1, r
    assert abs(r["profit_std"] / std - 1) < 0.15, r
    assert abs(r["final_q_std"] / q_std - 1) < 0.20, r
    # the spread averages the formula over the decision times t = 0, dt, ..., T - dt: mean(T - t) = 0.5025
    assert r["spread"] == pytest.approx(2 / gamma * math.log1p(gamma / 1.5) + gamma * 4 * 0.5025, rel=1e-3)
    assert abs(r["spread"] - spread) < 0.02
    # the published spread column is the formula's continuous time-average (the time term included)
    assert 2 / gamma * math.log1p(gamma / 1.5) + gamma * 4 / 2 == pytest.approx(spread, abs=0.005)


def test_working_paper_spread_column_omits_the_time_term():
    """The 2006 working paper's spreads are (2/gamma) ln(1 + gamma/k) alone; kept for the record, not compared."""
    for (gamma, _), row in AS2006_WORKING_PAPER_TABLE.items():
        assert 2 / gamma * math.log1p(gamma / 1.5) == pytest.approx(row[0], abs=0.005)


def test_inventory_strategy_cuts_risk():
    inv = avellaneda_stoikov_experiment(0.1, "inventory", n_sims=400, seed=1)
    sym = avellaneda_stoikov_experiment(0.1, "symmetric", n_sims=400, seed=1)
    assert inv["profit_std"] < 0.6 * sym["profit_std"]
    assert inv["final_q_std"] < 0.5 * sym["final_q_std"]


def test_as_agent_formula_by_hand():
    ag = AvellanedaStoikovAgent(gamma=0.1, sigma=2.0, k=1.5, horizon=200, dt=0.005, inventory_limit=1000.0,
                                tick=1e-4, size=1.0)
    obs = np.zeros((2, 10), np.float32)
    obs[0, 0], obs[0, 1] = 3 / 1000, 0.5  # q = 3, half-way: tau = 0.5
    a = ag(obs)
    half = 0.5 * (0.1 * 4 * 0.5 + 20 * math.log(1 + 0.1 / 1.5))
    skew = 3 * 0.1 * 4 * 0.5
    assert a[0, 0] == pytest.approx((half + skew) / 1e-4, rel=1e-5)
    assert a[0, 1] == pytest.approx((half - skew) / 1e-4, rel=1e-5)
    assert a[1, 0] == pytest.approx(a[1, 1]) and (a[:, 2:] == 1).all()
    # the paper's symmetric benchmark: the formula's average spread, centred on the mid
    assert ag.mean_spread() == pytest.approx(20 * math.log(1 + 0.1 / 1.5) + 0.1 * 4 * 0.5025, rel=1e-12)
    sym = AvellanedaStoikovAgent(gamma=0.1, sigma=2.0, k=1.5, horizon=200, dt=0.005, inventory_limit=1000.0,
                                 tick=1e-4, inventory_aware=False, fixed_spread=1.5)
    b = sym(obs)
    np.testing.assert_allclose(b[:, :2], 0.75 / 1e-4, rtol=1e-6)
    with pytest.raises(ValueError, match="fixed_spread"):
        AvellanedaStoikovAgent(gamma=0.1, sigma=2.0, k=1.5, horizon=200, dt=0.005, inventory_limit=1.0, tick=1e-4,
                               fixed_spread=-1.0)


def test_cartea_jaimungal_terminal_and_time_limits():
    A, k, phi, alpha, Q = 140.0, 1.5, 0.01, 0.002, 5
    bid, ask = cartea_jaimungal_depths(A, k, phi, alpha, Q, 200, 0.005)
    qs = np.arange(-Q, Q + 1)
    # at T: omega_q = exp(-k alpha q^2) -> delta_ask = 1/k - alpha (2q - 1), delta_bid = 1/k + alpha (2q + 1)
    np.testing.assert_allclose(ask[-1, 1:], 1 / k - alpha * (2 * qs[1:] - 1), rtol=1e-12)
    np.testing.assert_allclose(bid[-1, :-1], 1 / k + alpha * (2 * qs[:-1] + 1), rtol=1e-12)
    assert np.isnan(bid[:, -1]).all() and np.isnan(ask[:, 0]).all()
    # symmetry: bid at q == ask at -q; long inventory -> wider bid, tighter ask
    np.testing.assert_allclose(bid[0, :-1], ask[0, ::-1][:-1], rtol=1e-10)
    assert bid[0, Q + 2] > bid[0, Q] and ask[0, Q + 2] < ask[0, Q]
    # the cache returns the same table (computed once per parameter set)
    assert cartea_jaimungal_depths(A, k, phi, alpha, Q, 200, 0.005)[0] is bid


def test_cartea_jaimungal_matches_ode_integration():
    """expm solution vs an independent RK4 integration of d omega/dt = -M omega backwards from T."""
    A, k, phi, alpha, Q, n, dt = 2.0, 10.0, 0.5, 0.1, 3, 50, 0.1
    bid, ask = cartea_jaimungal_depths(A, k, phi, alpha, Q, n, dt)
    qs = np.arange(-Q, Q + 1, dtype=float)
    M = np.diag(-k * phi * qs ** 2) + np.diag(np.full(2 * Q, A / np.e), 1) + np.diag(np.full(2 * Q, A / np.e), -1)
    w = np.exp(-k * alpha * qs ** 2)
    h = dt / 200
    for _ in range(n * 200):  # tau = T - t grows: d omega / d tau = M omega
        k1 = M @ w
        k2 = M @ (w + 0.5 * h * k1)
        k3 = M @ (w + 0.5 * h * k2)
        k4 = M @ (w + h * k3)
        w = w + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    lw = np.log(w)
    np.testing.assert_allclose(bid[0, :-1], 1 / k + (lw[:-1] - lw[1:]) / k, rtol=1e-8)
    np.testing.assert_allclose(ask[0, 1:], 1 / k + (lw[1:] - lw[:-1]) / k, rtol=1e-8)


def test_cj_agent_policy_on_env_observations_and_baselines_run():
    env = MarketMakingEnv(horizon=50)
    cfg = env.core.config
    cj = CarteaJaimungalAgent.from_config(cfg, phi=1e-3)
    obs, _ = env.reset(seed=0)
    a = cj(obs[None])
    assert env.action_space.contains(a[0])
    j, col = 0, cj.q_max
    assert a[0, 0] == pytest.approx(min(cj.bid_depth[j, col] / cfg.tick, cfg.max_offset), rel=1e-5)
    for agent in (cj, FixedSpreadAgent(5, 5, 100), RandomAgent(env.action_space, seed=0),
                  AvellanedaStoikovAgent.from_config(cfg, gamma=1e-4)):
        obs, _ = env.reset(seed=1)
        for _ in range(50):
            act, _ = agent.predict(obs)
            act = np.clip(act, env.action_space.low, env.action_space.high)
            obs, r, term, trunc, info = env.step(act)
            if term or trunc:
                break
        assert trunc or term
        assert np.isfinite(info["pnl"])
    with pytest.raises(ValueError, match="shape"):
        cj(np.zeros((2, 3, 4)))

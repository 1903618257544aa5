"""Almgren-Chriss closed form, and the execution env simulated against it.

Setting: parametric dynamics with linear impact, zero drift and a constant 0.30 USD spread
(spread_logsd = 0), where the AC formulas for E[cost] and Var[cost] are exact.
"""

import numpy as np
import pytest

from lobworld.agents.almgren_chriss import ACProblem, ac_kappa, ac_trajectory, cost_variance, expected_cost
from lobworld.agents.execution import SchedulePolicy, almgren_chriss_policy, evaluate, twap_policy
from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
from lobworld.envs.execution import ExecutionConfig, ExecutionCore

P = ParametricParams(spread=0.30, spread_logsd=0.0)
LAM = 0.02  # 1/bps: kappa*T ~ 2, a clearly curved schedule
PROB = ACProblem.from_env(ExecutionConfig(), P)
M = 1500  # episodes per schedule (common random numbers across schedules)


def _objective(x, lam):
    return expected_cost(PROB, x) + lam * cost_variance(PROB, x)


def _random_schedules(k, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        w = rng.dirichlet(np.ones(PROB.N))
        x = PROB.X * np.concatenate([[1.0], 1.0 - np.cumsum(w)])
        x[-1] = 0.0
        out.append(np.maximum.accumulate(x[::-1])[::-1])  # non-increasing despite rounding
    return out


def _simulate(schedules, lam, m=M, seed=1000):
    """Run every schedule on the same m market paths; returns (cost_bps, -return) arrays (k, m)."""
    k = len(schedules)
    core = ExecutionCore(n_envs=k * m, risk_aversion=lam, dynamics=ParametricDynamics(P), parallel=False)
    core.seed_rows(range(m), [seed + j for j in range(m)])
    core.rng_state[m:] = np.tile(core.rng_state[:m], (k - 1, 1, 1))  # common random numbers
    core.reset()
    fr = np.repeat(np.stack([SchedulePolicy(x).fractions for x in schedules]), m, axis=0)
    rows = np.arange(k * m)
    for step in range(PROB.N):
        core.step(fr[rows, core.t][:, None], autoreset=False)
    assert core.terminated.all()
    cost = core.ep[:, 0].reshape(k, m)  # EP_SHORTFALL_BPS
    obj = -core.ep[:, 7].reshape(k, m)  # EP_RETURN
    return cost, obj


def test_kappa_and_trajectory_closed_form():
    kappa = ac_kappa(PROB, LAM)
    lam_usd = LAM * 1e4 / (PROB.s0 * PROB.X)
    kt2 = lam_usd * PROB.sigma ** 2 / (PROB.eta - 0.5 * PROB.gamma * PROB.tau)
    assert 2 * (np.cosh(kappa * PROB.tau) - 1) / PROB.tau ** 2 == pytest.approx(kt2, rel=1e-10)
    x = ac_trajectory(PROB, LAM)
    assert x[0] == PROB.X and x[-1] == 0.0 and np.all(np.diff(x) < 0)
    # discrete Euler-Lagrange equation of the AC problem
    lhs = (x[:-2] - 2 * x[1:-1] + x[2:]) / PROB.tau ** 2
    np.testing.assert_allclose(lhs, kt2 * x[1:-1], rtol=1e-8)
    np.testing.assert_allclose(ac_trajectory(PROB, 0.0), np.linspace(PROB.X, 0, PROB.N + 1), rtol=1e-12)
    # continuous-time limit: kappa -> sqrt(lambda sigma^2 / eta~); kappa T ~ 2 here (a curved schedule)
    assert kappa == pytest.approx(np.sqrt(kt2), rel=0.02)
    assert 1.0 < kappa * PROB.N * PROB.tau < 4.0


def test_closed_form_minimises_the_formula_objective():
    xa = ac_trajectory(PROB, LAM)
    best = _objective(xa, LAM)
    rng = np.random.default_rng(3)
    for _ in range(200):  # local perturbations of the interior holdings
        x = xa.copy()
        x[1:-1] *= np.exp(0.01 * rng.standard_normal(PROB.N - 1))
        assert _objective(x, LAM) > best
    for x in _random_schedules(100):
        assert _objective(x, LAM) > best + 1.0  # bps


def test_problem_validation():
    with pytest.raises(ValueError, match="eta_tilde"):
        ACProblem(X=1.0, N=2, tau=60.0, sigma=0.1, eta=1e-3, gamma=1.0)
    with pytest.raises(ValueError, match="risk aversion"):
        ac_kappa(PROB, -1.0)
    with pytest.raises(ValueError, match="shape"):
        expected_cost(PROB, np.ones(3))


@pytest.mark.parametrize("lam", [0.0, LAM])
def test_simulated_cost_mean_and_variance_match_formulas(lam):
    schedules = [ac_trajectory(PROB, LAM), ac_trajectory(PROB, 0.0), _random_schedules(1, seed=9)[0]]
    cost, obj = _simulate(schedules, lam)
    for x, c, o in zip(schedules, cost, obj):
        e, v = expected_cost(PROB, x), cost_variance(PROB, x)
        se = c.std(ddof=1) / np.sqrt(M)
        assert abs(c.mean() - e) < 4 * se, (c.mean(), e, se)
        assert abs(c.var(ddof=1) / v - 1.0) < 4 * np.sqrt(2.0 / (M - 1)), (c.var(ddof=1), v)
        # -return estimates E[C] + lambda Var[C]: its penalty part is deterministic per schedule
        np.testing.assert_allclose(o - c, lam * v, rtol=1e-9, atol=1e-9)
    # TWAP by hand: n = X/N shares a step pays half spread 0.15, temporary eta n / dt per share and
    # the permanent impact gamma n of each earlier child order
    X, N, n = PROB.X, PROB.N, PROB.X / PROB.N
    usd = 0.15 * X + N * P.eta * n * n / 60.0 + P.gamma * n * n * N * (N - 1) / 2
    assert expected_cost(PROB, schedules[1]) == pytest.approx(usd * 1e4 / (P.s0 * X), rel=1e-12)


def test_ac_schedule_is_not_beaten_by_twap_or_random_schedules():
    schedules = [ac_trajectory(PROB, LAM), ac_trajectory(PROB, 0.0)] + _random_schedules(100, seed=5)
    _, obj = _simulate(schedules, LAM, m=600)
    d = obj[1:] - obj[0]  # paired differences vs AC (same market paths)
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / np.sqrt(d.shape[1])
    assert np.all(mean > -3 * se), "a schedule beats Almgren-Chriss on the mean-variance objective"
    assert mean[0] > 3 * se[0]  # and AC is significantly better than TWAP (gap ~0.93 bps)
    assert mean[0] == pytest.approx(_objective(schedules[1], LAM) - _objective(schedules[0], LAM), abs=4 * se[0])


def test_twap_is_optimal_without_risk_aversion():
    schedules = [ac_trajectory(PROB, 0.0)] + _random_schedules(100, seed=6)
    cost, _ = _simulate(schedules, 0.0, m=600)
    d = cost[1:] - cost[0]
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / np.sqrt(d.shape[1])
    assert np.all(mean > -3 * se)
    assert np.all([_objective(x, 0.0) > _objective(schedules[0], 0.0) for x in schedules[1:]])


def test_policies_through_evaluate_match_direct_schedule():
    kw = dict(risk_aversion=LAM, dynamics=ParametricDynamics(P))
    r_ac = evaluate(almgren_chriss_policy(LAM, params=P), "LOB-Execution-v0", 400, seed=1000, **kw)
    r_tw = evaluate(twap_policy(30), "LOB-Execution-v0", 400, seed=1000, **kw)
    cost, _ = _simulate([ac_trajectory(PROB, LAM), ac_trajectory(PROB, 0.0)], LAM, m=400)
    # float32 observations round the time fraction only; schedules are followed exactly
    np.testing.assert_allclose(r_ac["shortfall_bps"], cost[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r_tw["shortfall_bps"], cost[1], rtol=1e-9, atol=1e-9)
    assert np.all(r_ac["completion"] == 1.0) and np.all(r_ac["episode_length"] == 30)

"""Arrival models: Poisson and bivariate exponential Hawkes (fit, likelihood, simulation).

Synthetic checks use GENERATED data (simulated from known parameters); the
real-data checks use the LOBSTER GOOG/AMZN 2012-06-21 days from ../shared/data.
"""

import math

import numpy as np
import pytest

from lobworld.world_models.arrivals import (
    HawkesParams,
    PoissonParams,
    fit_hawkes,
    fit_poisson,
    hawkes_intensity,
    hawkes_loglik,
    load_market_orders,
    market_orders_from_events,
    poisson_loglik,
    simulate_hawkes,
    simulate_poisson,
)

TRUE = HawkesParams(mu=(0.5, 0.4), alpha=((0.3, 0.1), (0.15, 0.25)), beta=2.0)


def brute_loglik(p: HawkesParams, t, m, T):
    mu = np.asarray(p.mu)
    a = np.asarray(p.alpha)
    b = p.beta
    ll = 0.0
    for i in range(len(t)):
        lam = mu[m[i]]
        for j in range(i):
            lam += a[m[i], m[j]] * b * math.exp(-b * (t[i] - t[j]))
        ll += math.log(lam)
    comp = mu.sum() * T
    for j in range(len(t)):
        comp += a[:, m[j]].sum() * (1 - math.exp(-b * (T - t[j])))
    return ll - comp


def test_loglik_matches_brute_force():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 20, 40))
    m = rng.integers(0, 2, 40)
    p = HawkesParams(mu=(0.7, 0.2), alpha=((0.4, 0.3), (0.05, 0.5)), beta=1.7)
    assert hawkes_loglik(p, t, m, 21.0) == pytest.approx(brute_loglik(p, t, m, 21.0), rel=1e-12, abs=1e-10)


def test_hand_case_loglik_and_intensity():
    # one buy at t=1, window [0, 2]: lambda_sell(t=2-) = mu1 + a10*beta*exp(-beta)
    p = HawkesParams(mu=(0.5, 0.25), alpha=((0.2, 0.0), (0.4, 0.0)), beta=2.0)
    t, m = np.array([1.0]), np.array([0])
    expected = math.log(0.5) - 0.75 * 2 - 0.6 * (1 - math.exp(-2.0))
    assert hawkes_loglik(p, t, m, 2.0) == pytest.approx(expected, rel=1e-14)
    lam = hawkes_intensity(p, t, m, [0.5, 2.0])
    np.testing.assert_allclose(lam[0], [0.5, 0.25])
    np.testing.assert_allclose(lam[1], [0.5 + 0.2 * 2 * math.exp(-2), 0.25 + 0.4 * 2 * math.exp(-2)])


def test_poisson_mle_hand_case():
    t = np.array([0.5, 1.0, 2.0, 3.5, 7.0])
    m = np.array([0, 1, 0, 0, 1])
    p = fit_poisson(t, m, T=10.0)
    assert p.rate == (0.3, 0.2)
    assert poisson_loglik(p, t, m, 10.0) == pytest.approx(3 * math.log(0.3) + 2 * math.log(0.2) - 5.0)
    # MLE: any other rate is worse
    assert poisson_loglik(PoissonParams((0.31, 0.2)), t, m, 10.0) < poisson_loglik(p, t, m, 10.0)


def test_simulate_poisson_rate():
    t, m = simulate_poisson(PoissonParams((2.0, 0.5)), 2000.0, np.random.default_rng(0))
    assert np.all(np.diff(t) >= 0) and t[-1] <= 2000.0
    # counts ~ Poisson(4000), Poisson(1000): within 5 sd
    assert abs((m == 0).sum() - 4000) < 5 * math.sqrt(4000)
    assert abs((m == 1).sum() - 1000) < 5 * math.sqrt(1000)


def test_simulate_hawkes_mean_intensity():
    T = 4000.0
    t, m = simulate_hawkes(TRUE, T, np.random.default_rng(11))
    lam = TRUE.stationary_intensity
    for k in range(2):
        # clustered counts have variance ~ lam T / (1 - br)^2; allow 5 sd of that
        sd = math.sqrt(lam[k] * T) / (1 - TRUE.branching_ratio)
        assert abs((m == k).sum() - lam[k] * T) < 5 * sd


def test_hawkes_mle_recovers_parameters():
    T = 5000.0
    t, m = simulate_hawkes(TRUE, T, np.random.default_rng(1))  # generated data, ~7600 events
    fitted, rep = fit_hawkes(t, m, T)
    assert rep.converged and rep.stationary
    truth = dict(mu_buy=0.5, mu_sell=0.4, alpha_bb=0.3, alpha_bs=0.1, alpha_sb=0.15, alpha_ss=0.25, beta=2.0)
    est = dict(mu_buy=fitted.mu[0], mu_sell=fitted.mu[1], alpha_bb=fitted.alpha[0][0], alpha_bs=fitted.alpha[0][1],
               alpha_sb=fitted.alpha[1][0], alpha_ss=fitted.alpha[1][1], beta=fitted.beta)
    for k, v in truth.items():
        se = rep.stderr[k]
        assert np.isfinite(se) and se > 0
        assert abs(est[k] - v) < 4 * se, (k, est[k], v, se)
        assert se < 0.2 * v  # the sample size pins every parameter to within ~20%
    assert rep.branching_ratio == pytest.approx(TRUE.branching_ratio, abs=0.05)
    assert rep.loglik > rep.loglik_poisson and rep.aic < rep.aic_poisson
    assert rep.loglik == pytest.approx(hawkes_loglik(fitted, t, m, T))
    assert rep.loglik >= hawkes_loglik(TRUE, t, m, T)  # the MLE beats the truth in-sample


def test_poisson_data_gives_small_excitation():
    T = 3000.0
    t, m = simulate_poisson(PoissonParams((0.6, 0.6)), T, np.random.default_rng(5))
    fitted, rep = fit_hawkes(t, m, T)
    assert rep.branching_ratio < 0.1
    assert rep.loglik - rep.loglik_poisson < 10  # nested model: at most a chance gain
    assert rep.aic > rep.aic_poisson - 10


def test_branching_ratio_and_nonstationary_flag():
    p = HawkesParams(mu=(0.1, 0.1), alpha=((0.6, 0.5), (0.5, 0.6)), beta=1.0)
    assert p.branching_ratio == pytest.approx(1.1)
    with pytest.raises(ValueError, match="non-stationary"):
        p.stationary_intensity
    assert HawkesParams(alpha=((0.5, 0.0), (0.0, 0.2))).branching_ratio == pytest.approx(0.5)


@pytest.mark.parametrize(
    "times, marks, T, match",
    [
        ([1.0, 0.5], [0, 1], 2.0, "sorted"),
        ([0.1, np.nan], [0, 1], 2.0, "NaN"),
        ([0.1, 0.2], [0, 2], 2.0, "marks"),
        ([0.1, 3.0], [0, 1], 2.0, "before the last event"),
        ([0.1, 0.2], [0], 2.0, "equal length"),
        ([0.1, 0.2], [0, 1], -1.0, "positive"),
    ],
)
def test_bad_input(times, marks, T, match):
    with pytest.raises(ValueError, match=match):
        fit_hawkes(np.array(times), np.array(marks), T)
    with pytest.raises(ValueError, match=match):
        hawkes_loglik(TRUE, np.array(times), np.array(marks), T)


def test_fit_needs_events_of_both_marks():
    with pytest.raises(ValueError, match="at least 2 events"):
        fit_hawkes(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]), 1.0)


def test_market_order_aggregation_hand_case():
    pd = pytest.importorskip("pandas")
    # two executions at the same time on the same side = one market order; a sell LO executed
    # (direction -1) is buyer-initiated
    ev = pd.DataFrame({
        "ts": [34200.5, 34201.0, 34201.0, 34201.0, 34202.0, 34202.0],
        "event": pd.Categorical(["submit", "exec_visible", "exec_hidden", "exec_visible", "exec_visible", "exec_visible"]),
        "size": [100.0, 50.0, 30.0, 20.0, 10.0, 5.0],
        "aggressor": [0, 1, 1, -1, -1, -1],
        "bid_px_1": [10.00, 10.00, 10.00, 10.00, 9.99, 9.98],
        "ask_px_1": [10.02, 10.03, 10.04, 10.04, 10.04, 10.04],
        "bid_sz_1": [200.0, 200, 200, 180, 5, 100],
        "ask_sz_1": [300.0, 250, 220, 220, 220, 220],
    })
    mo = market_orders_from_events(ev)
    np.testing.assert_allclose(mo.times, [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(mo.marks, [0, 1, 1])
    np.testing.assert_allclose(mo.sizes, [80.0, 20.0, 15.0])
    np.testing.assert_allclose(mo.mid_before, [10.01, 10.02, 10.02])
    np.testing.assert_allclose(mo.mid_after, [10.02, 10.02, 10.01])
    np.testing.assert_allclose(mo.depth_before, [300.0, 200.0, 180.0])
    assert mo.T == 23400.0


@pytest.mark.parametrize("ticker", ["GOOG", "AMZN"])
def test_real_day_hawkes_beats_poisson(shared_data, ticker):
    mo = load_market_orders(shared_data / "lobster" / f"{ticker}_2012-06-21_34200000_57600000_message_1.csv.gz")
    assert 7000 < len(mo) < 9000  # ~11.5k execution messages aggregate to ~8k market orders
    params, rep = fit_hawkes(mo.times, mo.marks, mo.T)
    assert rep.stationary and rep.branching_ratio < 1
    assert rep.loglik > rep.loglik_poisson + 1000  # strong clustering: a huge likelihood gain
    assert rep.aic < rep.aic_poisson
    assert all(np.isfinite(v) for v in rep.stderr.values())


def test_time_rescaling_residuals_are_exp1_under_the_true_model():
    from lobworld.world_models.arrivals import hawkes_residuals

    T = 3000.0
    t, m = simulate_hawkes(TRUE, T, np.random.default_rng(21))
    rb, rs = hawkes_residuals(TRUE, t, m)
    assert rb.size == (m == 0).sum() and rs.size == (m == 1).sum()
    for r in (rb, rs):
        assert r.mean() == pytest.approx(1.0, abs=5 / math.sqrt(r.size))
        assert r.var() == pytest.approx(1.0, abs=10 / math.sqrt(r.size))
    _, rep = fit_hawkes(t, m, T)
    crit = 1.63 / math.sqrt(min(rb.size, rs.size))  # 1% KS critical value
    assert max(rep.ks_hawkes) < crit < min(rep.ks_poisson)  # Poisson is rejected, Hawkes is not


def test_residual_hand_case():
    from lobworld.world_models.arrivals import hawkes_residuals

    p = HawkesParams(mu=(0.5, 0.25), alpha=((0.2, 0.0), (0.4, 0.0)), beta=2.0)
    rb, rs = hawkes_residuals(p, np.array([1.0, 3.0]), np.array([0, 0]))
    np.testing.assert_allclose(rb, [0.5, 0.5 * 2 + 0.2 * (1 - math.exp(-4.0))])
    assert rs.size == 0


def exploding_rate_data():
    """Generated data: an inhomogeneous Poisson process with exploding rate 0.5 exp(t / 15) on [0, 100].

    A stationary Hawkes process cannot produce that; the MLE goes past branching ratio 1.
    """
    rng = np.random.default_rng(0)
    T, lam_max = 100.0, 0.5 * math.exp(100.0 / 15)
    t = np.sort(rng.uniform(0, T, rng.poisson(lam_max * T)))
    t = t[rng.uniform(0, lam_max, t.size) < 0.5 * np.exp(t / 15)]
    return t, rng.integers(0, 2, t.size), T


def test_nonstationary_fit_is_flagged():
    t, m, T = exploding_rate_data()
    with pytest.warns(RuntimeWarning, match="non-stationary"):
        _, rep = fit_hawkes(t, m, T, beta_starts=(0.01,))
    assert not rep.stationary and rep.branching_ratio > 1


@pytest.mark.slow
def test_nonstationary_fit_raises_when_required():
    t, m, T = exploding_rate_data()
    with pytest.raises(ValueError, match="non-stationary"):
        fit_hawkes(t, m, T, beta_starts=(0.01,), require_stationary=True)


def test_simulation_is_deterministic_given_the_generator():
    a = simulate_hawkes(TRUE, 200.0, np.random.default_rng(4))
    b = simulate_hawkes(TRUE, 200.0, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])

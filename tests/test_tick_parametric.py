"""Cont-Stoikov-Talreja model (world_models/tick_parametric.py): MLE on a hand-made table, recovery of
known rates from the reference simulator, fitted GOOG / AMZN parameters, seeding, JSON, stream sanity."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lobworld.errors import LobworldError
from lobworld.world_models.data import load_lobster, sample_lobster_paths
from lobworld.world_models.data.events import NO_PRICE, Messages, messages_to_events
from lobworld.world_models.tick_parametric import (
    ArrayBook, CSTError, CSTParams, default_book, fit_cst, load_cst, load_fitted_cst, save_cst, simulate_cst,
)

ALL_TRAIN = {"test_hours": 0.0, "early_stop_hours": 0.0}


def _params(lam, mu, theta, *, size_law="unit", lot=100.0, log_size=None) -> CSTParams:
    ls = log_size or ((math.log(lot), 0.0),) * 3
    return CSTParams(ticker="SIM", tick_size=0.01, lam=tuple(lam), mu=mu, theta=tuple(theta),
                     mean_limit_size=lot, mean_market_size=lot, mean_cancel_size=lot, log_size=ls,
                     size_law=size_law)


def test_fit_hand_computed_table():
    """Five rows, two levels, exposures worked out by hand (docstring of the numbers below).

    row 0 (t=0): bids 99 x100, 98 x100 | asks 101 x100, 102 x100
    row 1 (t=1): submit buy 100 @ 100  (distance 101-100 = 1, visible: 1 <= 101-98)
    row 2 (t=3): delete sell 100 @ 102 (distance 102-100 = 2, visible: 2 <= 102-100)
    row 3 (t=4): execution of a sell LO, 50 @ 101 (a market buy)
    row 4 (t=6): submit sell 100 @ 103 (distance 3; the ask side lists 1 < 2 levels: all visible)
    Time with both sides: T = 6 s. Lot S_l = 100 shares.
    Queue exposure (lot-seconds) by distance: d1 = 2*2 + 1*2 + 2*(1 + 0.5) = 9, d2 = 1*2 + 2*2 + 1*1 + 2*1 = 9,
    d3 = 1*2 = 2. Visible time (both sides summed): d1 = 2 + 4 + 2 + 4 = 12, d2 = 12, d3 = 2 + 0 + 1 + 2 = 5.
    """
    s = 10**9
    m = Messages(time_ns=np.array([0, 1, 3, 4, 6], np.int64) * s, type=np.array([1, 1, 3, 4, 1], np.int8),
                 size=np.array([100.0, 100, 100, 50, 100]), price_ticks=np.array([99, 100, 102, 101, 103], np.int64),
                 direction=np.array([1, 1, -1, -1, -1], np.int8))
    bp = np.array([[99, 98], [100, 99], [100, 99], [100, 99], [100, 99]])
    bs = np.full((5, 2), 100.0)
    ap = np.array([[101, 102], [101, 102], [101, NO_PRICE], [101, NO_PRICE], [101, 103]])
    as_ = np.array([[100.0, 100], [100, 100], [100, 0], [50, 0], [50, 100]])
    ev = messages_to_events(m, bp, bs, ap, as_, date="2012-06-21")
    p = fit_cst(ev, max_distance=3, min_count=0, min_exposure=0.0, **ALL_TRAIN)
    assert p.train_seconds == pytest.approx(6.0)
    np.testing.assert_allclose(p.lam, [1 / 12, 0.0, 1 / 5], rtol=1e-12)
    np.testing.assert_allclose(p.theta, [0.0, 1 / 9, 0.0], rtol=1e-12)
    assert p.mu == pytest.approx(1 / 12)
    assert (p.mean_limit_size, p.mean_market_size, p.mean_cancel_size) == (100.0, 50.0, 100.0)
    np.testing.assert_allclose(p.lam_se, [math.sqrt(1) / 12, 0.0, 1 / 5])
    assert p.n_events == 4 and p.n_out_of_range == 0
    lam_u, mu_u, th_u = p.unit_rates()
    assert mu_u == pytest.approx(1 / 12 * 50 / 100)
    np.testing.assert_allclose(th_u, p.theta)
    # pooling: theta counts (0, 1, 0) over exposures (9, 9, 2): d1 joins d2 (1 event / 18), the short
    # last group d3 joins them (1 / 20); lambda counts (1, 0, 1) over (12, 12, 5): (1 / 12), then d2 + d3
    q = fit_cst(ev, max_distance=3, min_count=1, min_exposure=0.0, **ALL_TRAIN)
    np.testing.assert_allclose(q.theta, [1 / 20] * 3, rtol=1e-12)
    np.testing.assert_allclose(q.lam, [1 / 12, 1 / 17, 1 / 17], rtol=1e-12)
    q = fit_cst(ev, max_distance=3, min_count=1, min_exposure=10.0, **ALL_TRAIN)
    np.testing.assert_allclose(q.lam, [1 / 12, 1 / 17, 1 / 17], rtol=1e-12)
    np.testing.assert_allclose(q.theta, [1 / 20] * 3, rtol=1e-12)
    q = fit_cst(ev, max_distance=3, min_count=0, min_exposure=12.0, **ALL_TRAIN)
    np.testing.assert_allclose(q.lam, [1 / 12, 1 / 17, 1 / 17], rtol=1e-12)  # d1 alone (12 s); d3 (5 s) joins d2
    q = fit_cst(ev, max_distance=3, min_count=0, min_exposure=13.0, **ALL_TRAIN)
    np.testing.assert_allclose(q.lam, [2 / 29] * 3, rtol=1e-12)  # d1 + d2 (24 s), then d3 joins them


TRUE_LAM = (1.0, 0.8, 0.6, 0.5)
TRUE_MU = 0.6
TRUE_THETA = (0.25, 0.2, 0.15, 0.1)


@pytest.fixture(scope="module")
def unit_run():
    p = _params(TRUE_LAM, TRUE_MU, TRUE_THETA)
    run = simulate_cst(p, np.random.default_rng(20100101), 30_000, levels=10)
    return p, run


def test_fit_recovers_known_rates(unit_run):
    """The fit of a simulated stream recovers the simulator's rates. Each estimate is a Poisson count
    over an exposure, so its standard error is sqrt(N) / exposure (= ``lam_se`` etc.); we require every
    one within 4 standard errors and the sum of the 9 squared z-scores below the chi-square(9) 0.999
    quantile (27.88)."""
    true, run = unit_run
    ev = run.to_events()
    fit = fit_cst(ev, max_distance=len(TRUE_LAM), **ALL_TRAIN)
    assert fit.mean_limit_size == 100.0 and fit.mean_market_size == 100.0 and fit.mean_cancel_size == 100.0
    z = np.concatenate([(np.array(fit.lam) - TRUE_LAM) / np.array(fit.lam_se),
                        (np.array(fit.theta) - TRUE_THETA) / np.array(fit.theta_se),
                        [(fit.mu - TRUE_MU) / fit.mu_se]])
    assert np.all(np.abs(z) < 4.0), z
    assert float(np.sum(z**2)) < 27.88, z
    # the standard errors are small enough for the test to mean something: a 5% error in any rate
    # would be more than 2 standard errors
    rel = np.concatenate([np.array(fit.lam_se) / TRUE_LAM, np.array(fit.theta_se) / TRUE_THETA, [fit.mu_se / TRUE_MU]])
    assert rel.max() < 0.025, rel
    assert fit.n_hidden_ignored == 0 and run.n_rejected == 0


def test_fit_recovers_lognormal_sizes():
    ls = ((math.log(80.0), 0.6), (math.log(120.0), 0.4), (math.log(60.0), 0.5))
    true = _params((0.9, 0.7, 0.5), 0.5, (0.3, 0.2, 0.1), size_law="lognormal", lot=80.0, log_size=ls)
    true = dataclasses.replace(true, mean_limit_size=80.0 * math.exp(0.18))
    run = simulate_cst(true, np.random.default_rng(7), 15_000)
    fit = fit_cst(run.to_events(), max_distance=3, size_law="lognormal", **ALL_TRAIN)
    # limit sizes are drawn uncapped: log mean / sd within 4 standard errors (sd / sqrt(n), sd / sqrt(2n))
    n_lim = int((run.messages.type == 1).sum())
    (m, s) = fit.log_size[0]
    assert abs(m - ls[0][0]) < 4 * ls[0][1] / math.sqrt(n_lim) + 0.01  # + rounding to whole shares
    assert abs(s - ls[0][1]) < 4 * ls[0][1] / math.sqrt(2 * n_lim) + 0.01
    z = np.concatenate([(np.array(fit.lam) - true.lam) / np.array(fit.lam_se), [(fit.mu - true.mu) / fit.mu_se]])
    assert np.all(np.abs(z) < 4.0), z


def test_same_seed_same_stream_bit_for_bit():
    p = _params(TRUE_LAM, TRUE_MU, TRUE_THETA)
    a = simulate_cst(p, np.random.default_rng(42), 3000)
    b = simulate_cst(p, np.random.default_rng(42), 3000)
    c = simulate_cst(p, np.random.default_rng(43), 3000)
    for f in ("time_ns", "type", "size", "price_ticks", "direction"):
        np.testing.assert_array_equal(getattr(a.messages, f), getattr(b.messages, f))
    for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.messages.time_ns, c.messages.time_ns)
    q = dataclasses.replace(p, size_law="lognormal", log_size=((4.0, 0.5),) * 3)
    x = simulate_cst(q, np.random.default_rng(5), 2000, record_book=False)
    y = simulate_cst(q, np.random.default_rng(5), 2000, record_book=False)
    np.testing.assert_array_equal(x.messages.size, y.messages.size)
    np.testing.assert_array_equal(x.messages.time_ns, y.messages.time_ns)


def test_stream_never_crosses_and_executions_hit_the_best(unit_run):
    _, run = unit_run
    m = run.messages
    assert len(m) == 30_000 and np.all(np.diff(m.time_ns) >= 0)
    assert set(np.unique(m.type)) == {1, 3, 4}
    bb, ba = run.bid_px[:, 0], run.ask_px[:, 0]
    both = (bb != NO_PRICE) & (ba != NO_PRICE)
    assert np.all(bb[both] < ba[both])
    for arr in (run.bid_sz, run.ask_sz):
        assert (arr >= 0).all()
    # an execution trades at the best of its side in the book before it
    ex = np.flatnonzero(m.type == 4)[1:]
    before_b, before_a = run.bid_px[ex - 1, 0], run.ask_px[ex - 1, 0]
    np.testing.assert_array_equal(m.price_ticks[ex], np.where(m.direction[ex] > 0, before_b, before_a))
    # a limit order never crosses the opposite best before it
    sub = np.flatnonzero(m.type == 1)[1:]
    buy = m.direction[sub] > 0
    assert np.all(np.where(buy, m.price_ticks[sub] < run.ask_px[sub - 1, 0], m.price_ticks[sub] > run.bid_px[sub - 1, 0]))
    # conservation: resting shares = start + submitted - cancelled - executed (nothing left the grid)
    b0 = default_book(_params(TRUE_LAM, TRUE_MU, TRUE_THETA))
    start = b0.bid.sum() + b0.ask.sum()
    sign = np.where(m.type == 1, 1.0, -1.0)
    assert run.book.bid.sum() + run.book.ask.sum() == pytest.approx(start + float((sign * m.size).sum()))
    assert run.book.dropped_shares == 0.0


def test_start_from_the_real_book(tmp_path):
    ev = load_lobster(*sample_lobster_paths())
    p = fit_cst(ev, test_hours=0.25, early_stop_hours=0.125)
    book = ArrayBook.from_events(ev, 0, n_grid=4 * p.max_distance + 256)
    assert book.refs() == (57563, 57591)
    run = simulate_cst(p, np.random.default_rng(0), 500, book=book, start_ns=36_000 * 10**9)
    assert run.messages.time_ns[0] > 36_000 * 10**9
    ev2 = run.to_events(date="2012-06-21", ticker="GOOG")
    assert len(ev2) == 500 and ev2["ts"].is_monotonic_increasing


@pytest.fixture(scope="module")
def goog_hour_params():
    ev = load_lobster(*sample_lobster_paths())
    return fit_cst(ev, test_hours=0.25, early_stop_hours=0.125)


def _finite_positive(p: CSTParams):
    lam, th = np.array(p.lam), np.array(p.theta)
    assert p.max_distance >= 10
    assert np.isfinite(lam).all() and (lam > 0).all()
    assert np.isfinite(th).all() and (th > 0).all()
    assert math.isfinite(p.mu) and p.mu > 0
    assert all(np.isfinite(x).all() and x[1] > 0 for x in p.log_size)
    assert p.mean_limit_size > 1 and p.mean_market_size > 1 and p.mean_cancel_size > 1


def test_goog_hour_params_finite_positive(goog_hour_params):
    p = goog_hour_params
    _finite_positive(p)
    assert p.ticker == "GOOG" and 0.5 * 3600 < p.train_seconds < 0.626 * 3600
    assert p.n_hidden_ignored > 0


@pytest.mark.slow
@pytest.mark.parametrize("name, ticker", [("GOOG_2012-06-21_34200000_57600000_message_10.csv.gz", "GOOG"),
                                          ("AMZN_2012-06-21_34200000_57600000_message_5.csv.gz", "AMZN")])
def test_full_day_params_finite_positive(shared_data, name, ticker):
    ev = load_lobster(shared_data / "lobster" / name)
    p = fit_cst(ev)
    _finite_positive(p)
    assert p.ticker == ticker
    assert p.train_seconds == pytest.approx(4.0 * 3600, abs=60)  # 09:30 to 13:30 with both sides present
    # cancellation rates per lot near the touch exceed the deep ones (the paper's shape)
    assert np.mean(p.theta[:3]) > np.mean(p.theta[-5:])
    # the shipped parameters are this fit (reproduce command in load_fitted_cst's docstring)
    assert load_fitted_cst(ticker) == p


def test_json_round_trip_and_errors(tmp_path, goog_hour_params):
    p = goog_hour_params
    path = save_cst(p, tmp_path / "cst.json")
    assert load_cst(path) == p
    doc = json.loads(path.read_text())
    doc["params"].pop("mu")
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(CSTError, match="params.mu' missing"):
        load_cst(tmp_path / "a.json")
    doc = json.loads(path.read_text())
    doc["params"]["theta"][2] = -1.0
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(CSTError, match=r"theta\[2\] \(distance 3\)"):
        load_cst(tmp_path / "b.json")
    doc = json.loads(path.read_text())
    doc["format"] = "other"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(CSTError, match="format"):
        load_cst(tmp_path / "c.json")
    with pytest.raises(CSTError, match="no such"):
        load_cst(tmp_path / "missing.json")
    assert issubclass(CSTError, LobworldError)
    with pytest.raises(CSTError, match="no shipped CST parameters"):
        load_fitted_cst("MSFT")


def test_bad_arguments(goog_hour_params):
    p = goog_hour_params
    with pytest.raises(CSTError, match="rng"):
        simulate_cst(p, 0, 10)
    with pytest.raises(CSTError, match="n_events"):
        simulate_cst(p, np.random.default_rng(0), 0)
    with pytest.raises(CSTError, match="size_law"):
        dataclasses.replace(p, size_law="pareto")
    with pytest.raises(CSTError, match="mu"):
        dataclasses.replace(p, mu=float("nan"))
    ev = load_lobster(*sample_lobster_paths())
    with pytest.raises(CSTError, match="training block is empty"):
        fit_cst(ev)  # 2 h held out of a 1 h file
    with pytest.raises(CSTError, match="max_distance"):
        fit_cst(ev, max_distance=0, **ALL_TRAIN)


def test_cst_event_nats_time_term_closed_form_and_marks():
    """On a CST stream scored by CST, ``R dt`` is Exp(1), so the time term ``R dt - log(R dt)`` has mean
    1 + Euler's gamma = 1.5772 whatever the book (within 4 standard errors); the fitted model's marks
    score as well as the true model's, and a wrong model scores worse."""
    from lobworld.world_models.data.events import TokenConfig, tokenize
    from lobworld.world_models.tick_parametric import cst_event_nats

    true = _params(TRUE_LAM, TRUE_MU, TRUE_THETA)
    run = simulate_cst(true, np.random.default_rng(11), 20_000)
    ev = run.to_events()
    tok = tokenize(ev, TokenConfig(test_hours=0, early_stop_hours=0))
    everything = np.ones(len(tok), bool)
    fit = fit_cst(ev, max_distance=4, size_law="lognormal", **ALL_TRAIN)
    two = (tok.best_bid != NO_PRICE) & (tok.best_ask != NO_PRICE)
    assert two.mean() > 0.99  # the rest (a side momentarily empty) is NaN by design
    n_true = cst_event_nats(true, ev, tok, everything)[two]
    n_fit = cst_event_nats(fit, ev, tok, everything)
    assert np.isnan(n_fit[~two]).all() and np.isfinite(n_fit[two]).all()
    n_fit = n_fit[two]
    se = n_true[:, 0].std() / math.sqrt(len(n_true))
    assert abs(n_true[:, 0].mean() - (1.0 + 0.5772156649)) < 4 * se
    assert abs(n_fit[:, 1].mean() - n_true[:, 1].mean()) < 0.01
    wrong = dataclasses.replace(true, lam=tuple(2.0 * x for x in TRUE_LAM[::-1]))
    n_wrong = cst_event_nats(wrong, ev, tok, everything)[two]
    assert n_wrong.sum(1).mean() > n_true.sum(1).mean() + 0.05

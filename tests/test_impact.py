"""Market impact: square-root-law fit, metaorder proxies, ImpactModel, CLI.

Recovery tests use GENERATED data (NumPy simulations with a known law, and the
parametric simulator ``ParametricDynamics(impact="sqrt")``); the real-data
tests use the LOBSTER GOOG/AMZN 2012-06-21 days.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from lobworld.envs import dynamics as dyn
from lobworld.envs.rng import seed_state
from lobworld.world_models.impact import (
    ImpactModel,
    ImpactParams,
    Metaorders,
    RunRule,
    extract_metaorders,
    fit_metaorders,
    fit_sqrt_law,
    load_metaorders,
    permanent_fraction,
)


def simulate_law(n, Y, delta, noise_sd, rng, lo=1e-5, hi=1e-2):
    """Generated metaorders: x = Q/V log-uniform, I/sigma = Y x^delta + N(0, noise_sd^2)."""
    x = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    return x, Y * x ** delta + noise_sd * rng.standard_normal(n)


def test_sqrt_law_recovered_with_ci_covering_truth():
    x, y = simulate_law(4000, 0.8, 0.5, 0.02, np.random.default_rng(1))
    f = fit_sqrt_law(x, y, n_boot=200, rng=np.random.default_rng(2))
    assert f.delta == pytest.approx(0.5, abs=0.05)
    assert f.Y == pytest.approx(0.8, rel=0.25)
    assert f.delta_ci[0] < 0.5 < f.delta_ci[1]
    assert f.Y_ci[0] < 0.8 < f.Y_ci[1]
    assert f.delta_ci[1] - f.delta_ci[0] < 0.2  # informative, not a vacuous interval
    assert f.n_runs == 4000 and f.bin_n.sum() == 4000


def test_linear_impact_gives_delta_one():
    x, y = simulate_law(4000, 5.0, 1.0, 0.01, np.random.default_rng(3))
    f = fit_sqrt_law(x, y, n_boot=100, rng=np.random.default_rng(4))
    assert f.delta == pytest.approx(1.0, abs=0.06)
    assert f.delta_ci[0] < 1.0 < f.delta_ci[1]
    assert f.delta_ci[0] > 0.8  # clearly distinguishable from the square-root law


def test_parametric_simulator_sqrt_impact_recovered():
    """ParametricDynamics(impact='sqrt') prices child orders with cost Y sigma sqrt(dt) sqrt(|q|/V_step)."""
    Y = 0.7
    p = dyn.ParametricParams(impact="sqrt", sqrt_y=Y)
    d = dyn.ParametricDynamics(p)
    dt = 1.0
    args = d.args(1, dt)
    st = seed_state(7, 1)[0]
    row = np.zeros(dyn.N_MARKET)
    d.reset_fn(0, row, args, st)
    rng = np.random.default_rng(5)
    xs, ys = [], []
    for _ in range(1500):
        q = float(np.exp(rng.uniform(0, math.log(5000))) * rng.choice([-1, 1]))
        mid, spread = row[dyn.MID], row[dyn.SPREAD]
        price = d.step_fn(0, row, args, st, q, 1.0)
        cost = np.sign(q) * (price - mid) - 0.5 * spread  # per-share temporary impact (USD)
        xs.append(abs(q) / row[dyn.VOLUME])
        ys.append(cost / (p.sigma * math.sqrt(dt)))
    f = fit_sqrt_law(np.array(xs), np.array(ys), n_boot=50, rng=np.random.default_rng(6))
    assert f.delta == pytest.approx(0.5, abs=0.02)
    assert f.Y == pytest.approx(Y, rel=0.05)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.full(100, 1e-3), np.full(99, 0.1), "equal length"),
        (np.r_[np.nan, np.full(99, 1e-3)], np.full(100, 0.1), "finite"),
        (np.r_[-1.0, np.full(99, 1e-3)], np.full(100, 0.1), "> 0"),
        (np.geomspace(1e-5, 1e-2, 20), np.full(20, 0.1), "at least 60 runs"),
        (np.geomspace(1e-5, 1e-2, 100), -np.ones(100), "positive mean impact"),
    ],
)
def test_sqrt_law_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_sqrt_law(x, y, n_boot=0)


def make_meta(n, rng, Y=0.8, delta=0.5, b_depth=-0.3, noise=0.01, V=1e6, sigma=5.0, T=23400.0):
    """Generated Metaorders with I/sigma = Y x^delta (depth/100)^b_depth + noise and a 60% permanent part."""
    x = np.exp(rng.uniform(math.log(1e-5), math.log(1e-2), n))
    depth = np.exp(rng.uniform(math.log(20), math.log(500), n))
    sign = rng.choice([-1.0, 1.0], n)
    t0 = np.sort(rng.uniform(0, T - 600, n))
    dur = rng.uniform(0, 60, n)
    peak = sigma * (Y * x ** delta * (depth / 100.0) ** b_depth + noise * rng.standard_normal(n))
    mid0 = 100.0 + rng.standard_normal(n)
    return Metaorders(
        sign=sign, Q=x * V, n_orders=np.ones(n, dtype=int), t_start=t0, t_end=t0 + dur, mid_start=mid0,
        mid_end=mid0 + sign * peak, mid_post=mid0 + sign * (0.6 * peak + 0.002 * sigma * rng.standard_normal(n)),
        depth=depth, V=V, sigma=sigma, T=T, rule=RunRule(), ticker="SIM",
    )


def test_impact_model_fit_and_predict(tmp_path):
    meta = make_meta(4000, np.random.default_rng(8))
    m = ImpactModel.fit(meta, ridge=1.0)
    p = m.params
    assert p.delta == pytest.approx(0.5, abs=0.06)
    assert p.b_depth == pytest.approx(-0.3, abs=0.08)
    assert abs(p.b_participation) < 0.08  # no urgency effect was simulated
    assert p.permanent_fraction == pytest.approx(0.6, abs=0.03)
    # predict: closed form at the references
    pr = m.predict(-1e4, 1e6, 5.0)
    expect = -p.Y * 5.0 * 1e-2 ** p.delta
    assert pr.peak == pytest.approx(expect)
    assert pr.permanent == pytest.approx(p.permanent_fraction * expect)
    assert pr.temporary + pr.permanent == pytest.approx(pr.peak)
    # doubling depth scales impact by 2^b_depth; zero order has zero impact
    r = m.predict(1e4, 1e6, 5.0, depth=2 * p.depth_ref).peak / m.predict(1e4, 1e6, 5.0).peak
    assert r == pytest.approx(2 ** p.b_depth)
    assert m.predict(0.0, 1e6, 5.0).peak == 0.0
    # JSON round trip
    path = m.save(tmp_path / "m.json")
    assert ImpactModel.load(path).params == p


def test_ridge_pulls_toward_sqrt_prior():
    meta = make_meta(400, np.random.default_rng(9), b_depth=-0.3)
    loose = ImpactModel.fit(meta, ridge=0.0).params.b_depth
    tight = ImpactModel.fit(meta, ridge=1e6).params.b_depth
    assert abs(tight) < 0.01 < abs(loose)


def test_permanent_fraction_ci_covers_truth():
    meta = make_meta(2000, np.random.default_rng(10))
    pf, (lo, hi) = permanent_fraction(meta, n_boot=200, rng=np.random.default_rng(1))
    assert lo < 0.6 < hi and hi - lo < 0.1


def test_impact_model_bad_input(tmp_path):
    m = ImpactModel()
    with pytest.raises(ValueError, match="participation"):
        m.predict(100, 1e6, 5.0, participation=1.5)
    with pytest.raises(ValueError, match="V > 0"):
        m.predict(100, 0.0, 5.0)
    with pytest.raises(ValueError, match="finite"):
        m.predict(np.nan, 1e6, 5.0)
    with pytest.raises(ValueError, match="permanent_fraction"):
        ImpactParams(permanent_fraction=1.5)
    with pytest.raises(ValueError, match="delta"):
        ImpactParams(delta=0.0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ImpactModel.load(bad)
    bad.write_text(json.dumps({"params": {"Y": 1.0, "gamma": 2.0}}))
    with pytest.raises(ValueError, match="unknown ImpactParams fields"):
        ImpactModel.load(bad)
    with pytest.raises(FileNotFoundError):
        ImpactModel.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="available"):
        ImpactModel.load_fitted("MSFT")
    with pytest.raises(ValueError, match="interrupt_frac"):
        RunRule(interrupt_frac=-1.0)


def test_run_extraction_hand_case():
    # 12 single-execution market orders; signs + + - - - + + + - + + -, one 100-s gap
    ts = np.array([1, 2, 3, 4, 5, 6, 7, 107, 108, 109, 110, 111], dtype=float) + 34200.0
    agg = np.array([1, 1, -1, -1, -1, 1, 1, 1, -1, 1, 1, -1])
    size = np.array([100, 200, 50, 50, 50, 10, 10, 300, 5, 20, 20, 70], dtype=float)
    n = len(ts)
    # one quote row after each execution; mid moves by +-0.01 in the aggressor's direction
    mid = 100.0 + 0.01 * np.cumsum(agg)
    ev = pd.DataFrame({
        "ts": np.r_[34200.0, ts], "event": pd.Categorical(["submit"] + ["exec_visible"] * n),
        "size": np.r_[1.0, size], "aggressor": np.r_[0, agg],
        "bid_px_1": np.r_[99.99, mid - 0.01], "ask_px_1": np.r_[100.01, mid + 0.01],
        "bid_sz_1": np.full(n + 1, 100.0), "ask_sz_1": np.full(n + 1, 200.0),
    })
    meta = extract_metaorders(ev, RunRule(max_gap_s=60.0, horizon_s=2.0))
    np.testing.assert_array_equal(meta.sign, [1, -1, 1, 1, -1, 1, -1])
    np.testing.assert_allclose(meta.Q, [300, 150, 20, 300, 5, 40, 70])
    np.testing.assert_allclose(meta.impact, [0.02, 0.03, 0.02, 0.01, 0.01, 0.02, 0.01], atol=1e-9)
    assert meta.V == size.sum()
    np.testing.assert_allclose(meta.depth, [200, 100, 200, 200, 100, 200, 100])
    # post mid 2 s after the first run's end (t=2 -> t=4): mid after order 4 = 100.00
    assert meta.post_impact[0] == pytest.approx(0.0, abs=1e-9)
    # tolerant rule: the 5-share sell inside the buy run at t=107..110 is skipped
    tol = extract_metaorders(ev, RunRule(max_gap_s=60.0, interrupt_frac=0.1))
    np.testing.assert_allclose(tol.Q, [300, 150, 20, 340, 70])


@pytest.mark.parametrize("ticker", ["GOOG", "AMZN"])
def test_real_day_exponent(shared_data, ticker):
    meta = load_metaorders(shared_data / "lobster" / f"{ticker}_2012-06-21_34200000_57600000_message_1.csv.gz")
    assert 1000 < len(meta) < 3000
    f = fit_metaorders(meta, n_boot=100, rng=np.random.default_rng(0))
    print(f"{ticker}: delta = {f.delta:.3f} CI {f.delta_ci}, Y = {f.Y:.3f} CI {f.Y_ci}, {f.n_runs} runs")
    assert np.isfinite(f.delta) and f.delta_ci[0] < f.delta < f.delta_ci[1]
    assert 0 < f.delta < 1.5 and f.delta_ci[1] - f.delta_ci[0] < 0.5  # concave impact, measured to +-0.25
    assert f.Y > 0 and np.all(np.isfinite(f.Y_ci))


def test_shipped_fitted_models_load():
    from lobworld.world_models.arrivals import load_fitted_arrivals

    for t in ("GOOG", "AMZN"):
        m = ImpactModel.load_fitted(t)
        assert m.params.ticker == t and 0 < m.params.delta < 1.5
        hp, pp = load_fitted_arrivals(t)
        assert hp.branching_ratio < 1 and min(pp.rate) > 0


def test_cli_fit_on_shipped_sample(tmp_path, capsys):
    from lobworld.cli import main
    from lobworld.world_models.data import sample_lobster_paths

    msg = str(sample_lobster_paths()[0])
    assert main(["world-model", "fit-arrivals", "--data", msg, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["T_seconds"] == 3600.0 and d["hawkes_report"]["loglik"] > d["hawkes_report"]["loglik_poisson"]
    png = tmp_path / "impact.png"
    assert main(["world-model", "fit-impact", "--data", msg, "--json", "--plot", str(png), "--n-boot", "20"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert np.isfinite(d["sqrt_law"]["delta"]) and png.stat().st_size > 10_000
    missing = tmp_path / "GOOG_2012-06-21_34200000_57600000_message_1.csv"
    assert main(["world-model", "fit-impact", "--data", str(missing)]) == 2
    assert missing.name in capsys.readouterr().err  # a one-line error naming the file, no traceback

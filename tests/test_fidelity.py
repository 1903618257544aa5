"""Fidelity report (issue 8): statistics on hand-made series, scores, the report and the CLI."""

from __future__ import annotations

import json
import math
import pathlib
import shutil

import numpy as np
import pytest

from lobworld.world_models import fidelity as fd
from lobworld.world_models.fidelity import PathSample

SAMPLE_DIR = pathlib.Path(fd.__file__).parent / "assets" / "lobster"
SAMPLE_MSG = SAMPLE_DIR / "GOOG_2012-06-21_36000000_39600000_message_10.csv.gz"
CK10 = pathlib.Path(fd.__file__).parent / "assets" / "weights" / "bar_gru_10s.npz"


def _sample(ret, dt=60.0, **kw) -> PathSample:
    ret = np.atleast_2d(np.asarray(ret, float))
    n, w = ret.shape
    base = dict(spread=None, volume=None, svol=None, trade_imb=None, count=None, ofi=None, book_imb=None, depth=None,
                tod=np.tile(50_400.0 + dt * np.arange(1, w + 1), (n, 1)), mean_count=None)
    base.update({k: (np.atleast_2d(np.asarray(v, float)) if k != "mean_count" and v is not None else v)
                 for k, v in kw.items()})
    return PathSample(ret=ret, dt=dt, **base)


# ---------------------------------------------------------------------------
# each statistic on a hand-made series
# ---------------------------------------------------------------------------
def test_returns_at_horizons_are_overlapping_scaled_sums():
    s = _sample([[1.0, 2.0, 3.0, 4.0]])
    v, c, p = fd.stat_returns(s, 1)
    assert v.tolist() == [1, 2, 3, 4] and c is None and p.tolist() == [0, 0, 0, 0]
    v, _, _ = fd.stat_returns(s, 2)
    np.testing.assert_allclose(v, np.array([3.0, 5.0, 7.0]) / math.sqrt(2))
    v, _, _ = fd.stat_returns(s, 4)
    np.testing.assert_allclose(v, [10.0 / 2.0])
    with pytest.raises(fd.FidelityError, match="exceeds the path window"):
        fd.stat_returns(s, 5)


def test_spread_depth_ofi_book_imbalance_are_the_per_bar_values():
    s = _sample([[0.0, 0.0, 0.0]], spread=[[1.0, 2.0, 1.5]], depth=[[0.5, 1.0, 2.0]], ofi=[[-1.0, 0.0, 3.0]],
                book_imb=[[0.1, -0.2, 0.3]])
    assert fd.stat_spread(s)[0].tolist() == [1.0, 2.0, 1.5]
    assert fd.stat_depth(s)[0].tolist() == [0.5, 1.0, 2.0]
    assert fd.stat_ofi(s)[0].tolist() == [-1.0, 0.0, 3.0]
    assert fd.stat_book_imbalance(s)[0].tolist() == pytest.approx([0.1, -0.2, 0.3])
    # a source without the quantity gives None (n/a), never zeros
    bare = _sample([[0.0, 0.0, 0.0]])
    for f in (fd.stat_spread, fd.stat_depth, fd.stat_ofi, fd.stat_book_imbalance, fd.stat_trades_per_min,
              fd.stat_inter_arrival, fd.stat_volume_per_min, fd.stat_trade_imbalance, fd.stat_impact_curve,
              fd.stat_spread_by_vol, fd.stat_spread_by_tod):
        assert f(bare) is None


def test_abs_return_autocorrelation_hand_computed():
    # |ret| = 1, 3, 1, 3: mean 2, deviations -1, 1, -1, 1, sum of squares 4
    s = _sample([[1.0, -3.0, 1.0, 3.0]])
    v, c, p = fd.stat_abs_acf(s, lags=(1, 2))
    np.testing.assert_allclose(v, [-3.0 / 4.0, 2.0 / 4.0])
    assert c.tolist() == [1, 2] and p.tolist() == [0, 0]
    # a path with constant |ret| has no autocorrelation: no value
    v, _, _ = fd.stat_abs_acf(_sample([[1.0, -1.0, 1.0, -1.0]]), lags=(1,))
    assert v.size == 0


def test_volume_and_trades_per_minute_sum_bars_to_minutes():
    vol = np.arange(12.0)[None, :]  # 10 s bars: 6 per minute
    s = _sample(np.zeros((1, 12)), dt=10.0, volume=vol, count=vol * 2)
    np.testing.assert_allclose(fd.stat_volume_per_min(s)[0], [2.5, 8.5])  # mean(0..5), mean(6..11)
    np.testing.assert_allclose(fd.stat_trades_per_min(s)[0], [5.0, 17.0])
    s60 = _sample(np.zeros((1, 3)), volume=[[1.0, 0.0, 2.0]])
    np.testing.assert_allclose(fd.stat_volume_per_min(s60)[0], [1.0, 0.0, 2.0])
    with pytest.raises(fd.FidelityError, match="does not divide a minute"):
        fd.stat_volume_per_min(_sample(np.zeros((1, 3)), dt=7.0, volume=np.ones((1, 3))))


def test_inter_arrival_is_bar_seconds_over_trade_count():
    # normalised counts 2, 0, 4 with a mean count of 5 trades -> 10, 0, 20 trades in 60 s bars
    s = _sample(np.zeros((1, 3)), count=[[2.0, 0.0, 4.0]], mean_count=np.array([5.0]))
    v, _, p = fd.stat_inter_arrival(s)
    np.testing.assert_allclose(v, [6.0, 3.0])
    assert p.tolist() == [0, 0]


def test_trade_imbalance_skips_bars_without_trades():
    s = _sample(np.zeros((2, 2)), trade_imb=[[0.5, np.nan], [-1.0, 1.0]])
    v, _, p = fd.stat_trade_imbalance(s)
    assert v.tolist() == [0.5, -1.0, 1.0] and p.tolist() == [0, 1, 1]


def test_spread_by_volatility_tercile():
    # window 1: realised vol = |ret|; values 1,2,3,1,2,3 -> terciles 0,1,2,0,1,2
    s = _sample([[1.0, -2.0, 3.0, 1.0, 2.0, -3.0]], spread=[[10.0, 20.0, 30.0, 10.0, 20.0, 30.0]])
    v, c, _ = fd.stat_spread_by_vol(s, window=1)
    assert c.tolist() == [0, 1, 2, 0, 1, 2]
    assert v.tolist() == [10.0, 20.0, 30.0, 10.0, 20.0, 30.0]
    # window 2: rv_t = sqrt((r_{t-1}^2 + r_t^2) / 2), first value at bar 1
    v, c, _ = fd.stat_spread_by_vol(s, window=2)
    assert v.tolist() == [20.0, 30.0, 10.0, 20.0, 30.0]
    rv = np.sqrt((np.array([1, 4, 9, 1, 4]) + np.array([4, 9, 1, 4, 9])) / 2.0)
    assert c.tolist() == np.where(rv <= np.quantile(rv, 1 / 3), 0, np.where(rv <= np.quantile(rv, 2 / 3), 1, 2)).tolist()


def test_spread_by_time_of_day_half_hours():
    s = _sample(np.zeros((1, 2)), spread=[[1.0, 2.0]])
    s.tod = np.array([[14 * 3600 + 60.0, 14 * 3600 + 1800.0 + 60.0]])
    v, c, _ = fd.stat_spread_by_tod(s)
    assert c.tolist() == [28, 29] and v.tolist() == [1.0, 2.0]
    s.tod = np.array([[14 * 3600 + 1800.0, 15 * 3600.0]])  # bar ENDING 14:30 belongs to 14:00-14:30
    assert fd.stat_spread_by_tod(s)[1].tolist() == [28, 29]


def test_impact_curve_bins_returns_by_signed_volume():
    s = _sample([[-2.0, -1.0, 0.0, 1.0, 2.0, 0.5]], svol=[[-2.0, -0.5, 0.0, 0.5, 2.0, 0.25]])
    v, c, _ = fd.stat_impact_curve(s)
    assert v.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0, 0.5]
    assert c.tolist() == [0, 1, 2, 3, 4, 3]  # 0.25 sits on an edge and goes to the bin above


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def test_histogram_l1_hand_computed():
    a = np.array([0.0, 0.0, 1.0, 1.0])
    b = np.array([0.0, 0.0, 0.0, 1.0])
    assert fd.hist_l1(a, b, edges=np.array([0.5])) == pytest.approx(0.5)  # |.5-.75| + |.5-.25|
    assert fd.hist_l1(a, a) == 0.0
    assert fd.hist_l1(np.zeros(10), np.ones(10)) == pytest.approx(2.0)


def test_w1_is_in_units_of_the_real_sd():
    a = np.array([0.0, 4.0])  # mean 2, sd 2
    assert fd.w1_standardised(a, a + 2.0) == pytest.approx(1.0)
    assert fd.w1_standardised(a, a) == 0.0


def test_score_ci_contains_estimate_and_conditional_bins_average():
    rng = np.random.default_rng(1)
    A = (rng.normal(size=400), None, np.repeat(np.arange(20), 20))
    B = (rng.normal(1.0, 1.0, size=400), None, np.repeat(np.arange(20), 20))
    sc = fd.score(A, 20, B, 20, n_boot=100, rng=rng)
    assert 0.8 < sc["w1"] < 1.2  # a shift of one sd
    assert 0.6 < sc["w1_ci"][0] < sc["w1"] + 0.05 and 1.0 < sc["w1_ci"][1] < 1.6
    # paired difference: a shifted sample vs an identical-in-law one -> clearly positive, every replicate
    C = (rng.normal(size=400), None, np.repeat(np.arange(20), 20))
    res = fd.score_many(A, 20, {"shifted": (B, 20), "same": (C, 20)}, n_boot=100, rng=rng, paired=("shifted", "same"))
    d = res["diff"]
    assert d["w1"] == pytest.approx(res["shifted"]["w1"] - res["same"]["w1"])
    assert d["w1_ci"][0] > 0.3 and d["p_lower_w1"] == 0.0
    # conditional: condition 0 identical, condition 1 shifted by 2 sd -> average of 0-ish and 2-ish
    ca = np.repeat([0, 1], 200)
    va = rng.normal(size=400)
    vb = va + np.where(ca == 1, 2.0 * va[ca == 1].std(), 0.0)
    sc = fd.score((va, ca, np.repeat(np.arange(20), 20)), 20, (vb, ca, np.repeat(np.arange(20), 20)), 20, n_boot=0)
    assert sc["w1"] == pytest.approx(1.0, rel=1e-6)


def _gen(rng, n_paths, window=20, vol=1.0, dt=60.0) -> PathSample:
    """A generated (not real) market sample: fat-tailed returns, log-normal spread/volume/depth/counts."""
    ret = vol * rng.standard_t(5, size=(n_paths, window)) / math.sqrt(5 / 3)
    vol_ = np.exp(rng.normal(-0.5, 1.0, size=(n_paths, window)))
    imb = np.tanh(rng.normal(size=(n_paths, window)))
    return PathSample(
        ret=ret, spread=np.round(np.exp(rng.normal(0, 0.4, size=(n_paths, window))) * 4) / 4, volume=vol_,
        svol=imb * vol_, trade_imb=imb, count=np.exp(rng.normal(0, 0.5, size=(n_paths, window))),
        ofi=rng.normal(size=(n_paths, window)), book_imb=np.tanh(rng.normal(size=(n_paths, window))),
        depth=np.exp(rng.normal(0, 0.6, size=(n_paths, window))),
        tod=np.tile(50_400.0 + dt * np.arange(1, window + 1), (n_paths, 1)), dt=dt,
        mean_count=np.full(n_paths, 10.0), label="generated")


@pytest.fixture(scope="module")
def generated_rows():
    rng = np.random.default_rng(7)
    real = _gen(rng, 80)
    same = _gen(rng, 160)
    wrong = _gen(rng, 160, vol=2.0)
    return fd.compare(real, {"same": same, "wrong": wrong}, n_boot=30, seed=3)


def test_model_scored_on_its_own_samples_is_at_the_noise_floor(generated_rows):
    rows = generated_rows
    same_w1 = np.array([r["scores"]["same"]["w1"] for r in rows])
    floor_w1 = np.array([r["floor"]["w1"] for r in rows])
    same_l1 = np.array([r["scores"]["same"]["l1"] for r in rows])
    floor_l1 = np.array([r["floor"]["l1"] for r in rows])
    # same generator: no worse than the real-vs-real floor (which uses half the real paths per side)
    assert same_w1.mean() <= floor_w1.mean()
    assert same_l1.mean() <= floor_l1.mean()
    assert np.all(same_w1 < 0.5)


def test_doubled_volatility_scores_clearly_worse(generated_rows):
    by = {r["name"]: r for r in generated_rows}
    for name in ("ret_1", "ret_5", "ret_15"):
        wrong, same, floor = (by[name]["scores"]["wrong"]["w1"], by[name]["scores"]["same"]["w1"],
                              by[name]["floor"]["w1"])
        assert wrong > 0.4 and wrong > 3 * same, (name, wrong, same)
        if name != "ret_15":  # 15-bar returns: about one independent value per path, the floor is noisy
            assert wrong > 2 * floor, (name, wrong, floor)
        assert by[name]["scores"]["wrong"]["l1"] > (2 if name != "ret_15" else 1) * by[name]["scores"]["same"]["l1"]
    # statistics that do not depend on volatility stay at the floor
    assert by["depth"]["scores"]["wrong"]["w1"] < 0.5


def test_verdict_rules():
    a = {"l1": 0.1, "w1": 0.1}
    b = {"l1": 0.2, "w1": 0.2}
    assert fd.verdict(a, b) == "win" and fd.verdict(b, a) == "loss"
    assert fd.verdict(a, {"l1": 0.05, "w1": 0.2}) == "mixed"
    assert fd.verdict(a, None) == "n/a"


def test_kurtosis_of_gaussian_and_t_samples():
    rng = np.random.default_rng(0)
    g = _sample(rng.normal(size=(200, 20)))
    t = _sample(rng.standard_t(5, size=(200, 20)))
    k = fd.kurtosis_table({"g": g, "t": t}, horizons=(1,), n_boot=20)
    assert abs(k["g"]["ret_1"]["kurtosis"]) < 0.4  # Gaussian: 0
    assert k["t"]["ret_1"]["kurtosis"] > 2.0  # Student t(5): 6 in theory, heavy-tailed estimate


# ---------------------------------------------------------------------------
# the report on real data (the shipped one-hour GOOG sample, 10 s model)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_report():
    from lobworld.world_models.checkpoint import load_checkpoint

    ck = load_checkpoint(CK10)
    return fd.fidelity_report(ck, [SAMPLE_MSG], window=20, draws=2, n_boot=20, test_hours=0.5, early_stop_hours=0.0,
                              impact_draws=1)


def test_report_lists_every_statistic(sample_report):
    rep = sample_report
    names = [s.name for s in fd.STATISTICS]
    assert [r["name"] for r in rep["statistics"]] == names
    md = fd.format_markdown(rep)
    for n in names:
        assert f"| {n} |" in md
    # the one-hour sample's last half hour is inside the shipped model's training data: flagged
    assert rep["meta"]["held_out"] is False and "NOT the checkpoint's held-out block" in md
    assert rep["meta"]["n_real_paths"] == 9 and rep["meta"]["n_sim_paths"] == 18  # 180 bars / 20, 2 draws each
    # the parametric market cannot produce depth, book imbalance, OFI, trade counts or inter-arrivals
    na = {r["name"] for r in rep["statistics"] if r["scores"]["parametric"] is None}
    assert na == {"trades_per_min", "inter_arrival", "ofi", "book_imbalance", "depth"}
    assert rep["summary"]["n_statistics"] == len(names)
    assert rep["summary"]["wins"] + rep["summary"]["losses"] + rep["summary"]["mixed"] == len(names) - len(na)
    json.dumps(fd.to_json(rep))  # JSON-able


def test_real_paths_match_the_bars(sample_report):
    from lobworld.world_models.checkpoint import load_checkpoint

    ck = load_checkpoint(CK10)
    day = fd.load_fidelity_day(SAMPLE_MSG, ck, 20, test_hours=0.5, early_stop_hours=0.0)
    real = fd.real_paths(day)
    b = day.bars
    s0 = day.starts[0]
    np.testing.assert_allclose(real.ret[0] * day.stats.sigma_bar, b["mid_ret"].to_numpy()[s0 + 1:s0 + 21])
    # the windows tile the last half hour (10:30-11:00) without overlap
    assert str(b.index[day.starts[0] + 1].time()) == "10:30:10"
    assert np.all(np.diff(day.starts) == 20)
    # simulated paths start from the real mid at the window start
    sim = fd.simulate_learned(ck, [day], draws=1)
    assert sim.n_paths == len(day.starts)
    assert np.all(np.isfinite(sim.ret)) and np.all(sim.spread > 0) and np.all(sim.depth > 0)


def test_impact_exponent_is_fitted(sample_report):
    imp = sample_report["impact"]
    assert imp["n_runs"] == 9 * 12  # windows x sizes (1 draw)
    assert imp["error"] is None and imp["delta_ci"][0] <= imp["delta"] <= imp["delta_ci"][1]
    m = np.array(imp["mean_impact_over_sigma"])
    assert m[-1] > m[0] and m[-1] > 0  # bigger buy metaorders push the mid up more


# ---------------------------------------------------------------------------
# CLI and bad inputs
# ---------------------------------------------------------------------------
def _cli(argv):
    from lobworld.cli import main

    return main(argv)


def test_cli_end_to_end_writes_report_pngs_and_json(tmp_path, capsys):
    out = tmp_path / "fid"
    rc = _cli(["fidelity", "--data", str(SAMPLE_MSG), "--model", str(CK10), "--out", str(out), "--json",
               "--test-hours", "0.5", "--early-stop-hours", "0", "--window", "20", "--draws", "1", "--n-boot", "5",
               "--no-impact"])
    assert rc == 0
    js = json.loads((out / "fidelity.json").read_text())
    assert json.loads(capsys.readouterr().out)["summary"] == js["summary"]
    assert (out / "report.md").read_text().startswith("# Fidelity report")
    for s in fd.STATISTICS:
        assert (out / f"fidelity_{s.name}.png").stat().st_size > 1000
    assert js["impact"] is None


@pytest.mark.parametrize("case", ["missing_data", "missing_model", "corrupt_model", "unknown_asset", "too_little",
                                  "malformed_data", "bad_window"])
def test_cli_bad_inputs_give_a_clear_error(tmp_path, capsys, case):
    data, model, extra = str(SAMPLE_MSG), str(CK10), ["--test-hours", "0.5", "--early-stop-hours", "0"]
    want = {"missing_data": "does not exist", "missing_model": "does not exist", "corrupt_model": "cannot read",
            "unknown_asset": "no statistics for asset 'MSFT'", "too_little": "fewer than one window",
            "malformed_data": "cannot load", "bad_window": "window must be an int >= 16"}[case]
    window = "20"
    if case == "missing_data":
        data = str(tmp_path / "GOOG_2012-06-21_36000000_39600000_message_10.csv.gz")
    elif case == "missing_model":
        model = str(tmp_path / "nope.npz")
    elif case == "corrupt_model":
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        model = str(tmp_path / "bad.npz")
    elif case == "unknown_asset":
        for kind in ("message", "orderbook"):
            shutil.copy(SAMPLE_DIR / f"GOOG_2012-06-21_36000000_39600000_{kind}_10.csv.gz",
                        tmp_path / f"MSFT_2012-06-21_36000000_39600000_{kind}_10.csv.gz")
        data = str(tmp_path / "MSFT_2012-06-21_36000000_39600000_message_10.csv.gz")
    elif case == "too_little":
        extra = ["--test-hours", "0.02", "--early-stop-hours", "0"]  # 72 s: 7 bars < a 20-bar window
    elif case == "malformed_data":
        import gzip

        lines = gzip.open(SAMPLE_MSG, "rt").read().splitlines()[:50]
        lines[10] = "36000.5,1,abc,100,5800000,1"  # non-numeric order id
        data = str(tmp_path / SAMPLE_MSG.name)
        with gzip.open(data, "wt") as fh:
            fh.write("\n".join(lines) + "\n")
        shutil.copy(SAMPLE_DIR / SAMPLE_MSG.name.replace("_message_", "_orderbook_"),
                    tmp_path / SAMPLE_MSG.name.replace("_message_", "_orderbook_"))
    elif case == "bad_window":
        window = "5"
    rc = _cli(["fidelity", "--data", data, "--model", model, "--out", str(tmp_path / "o"), "--window", window,
               "--no-impact", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and want in err and "Traceback" not in err, err


def test_too_few_windows_for_the_floor_is_an_error():
    from lobworld.world_models.checkpoint import load_checkpoint

    ck = load_checkpoint(CK10)
    with pytest.raises(fd.FidelityError, match="need at least 4"):
        fd.fidelity_report(ck, [SAMPLE_MSG], window=60, test_hours=0.5, early_stop_hours=0.0, impact=False)


def test_flow_correlations_hand_made():
    s = _sample([[1.0, -1.0, 2.0, -2.0]], svol=[[1.0, -1.0, 2.0, -2.0]], ofi=[[-1.0, 1.0, -2.0, 2.0]])
    c = fd.flow_correlations({"x": s, "bare": _sample([[1.0, 2.0, 0.0]])})
    assert c["x"]["ret_svol"] == pytest.approx(1.0) and c["x"]["ret_ofi"] == pytest.approx(-1.0)
    assert c["bare"] == {"ret_svol": None, "ret_ofi": None, "svol_ofi": None}


def test_learned_model_against_its_own_draws_is_at_the_floor(sample_report):
    """End to end on real starting states: the learned market's paths treated as 'real' are matched by fresh
    learned draws (at or below the real-vs-real floor) but not by the parametric market."""
    from lobworld.world_models.checkpoint import load_checkpoint

    ck = load_checkpoint(CK10)
    day = fd.load_fidelity_day(SAMPLE_MSG, ck, 20, test_hours=0.5, early_stop_hours=0.0)
    pseudo_real = fd.simulate_learned(ck, [day], 4, seed=1)
    rows = fd.compare(pseudo_real, {"own": fd.simulate_learned(ck, [day], 4, seed=2),
                                    "parametric": fd.simulate_parametric([day], 4, seed=3)}, n_boot=10)
    own = np.array([r["scores"]["own"]["w1"] for r in rows])
    floor = np.array([r["floor"]["w1"] for r in rows])
    assert own.mean() <= floor.mean()
    common = [r for r in rows if r["scores"]["parametric"] is not None]
    assert np.mean([r["scores"]["parametric"]["w1"] for r in common]) > \
        2 * np.mean([r["scores"]["own"]["w1"] for r in common])


@pytest.mark.slow
def test_cli_runs_the_1s_categorical_model(tmp_path):
    """The 1 s model (categorical mid head, needs the asset scale input) runs through the report."""
    ck1 = CK10.parent / "bar_gru_1s.npz"
    out = tmp_path / "fid1"
    rc = _cli(["fidelity", "--data", str(SAMPLE_MSG), "--model", str(ck1), "--out", str(out), "--json",
               "--test-hours", "0.1", "--early-stop-hours", "0", "--window", "60", "--draws", "1", "--n-boot", "5",
               "--no-impact"])
    assert rc == 0
    js = json.loads((out / "fidelity.json").read_text())
    assert js["summary"]

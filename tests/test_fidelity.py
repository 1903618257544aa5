"""Fidelity report (issue 8): statistics on hand-made series, scores, the report and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shutil

import numpy as np
import pytest

from lobworld.world_models import fidelity as fd
from lobworld.world_models.fidelity import PathSample

SAMPLE_DIR = pathlib.Path(fd.__file__).parents[1] / "assets" / "lobster"
SAMPLE_MSG = SAMPLE_DIR / "GOOG_2012-06-21_36000000_39600000_message_10.csv.gz"
CK10 = pathlib.Path(fd.__file__).parents[1] / "assets" / "weights" / "bar_gru_10s.npz"


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
    _STAGES.clear()
    return fd.fidelity_report(ck, [SAMPLE_MSG], window=20, draws=2, n_boot=20, test_hours=0.5, early_stop_hours=0.0,
                              impact_draws=1, progress=_STAGES.append)


_STAGES: list[str] = []  # the labels the sample report gave its progress callback


def test_report_reports_each_stage_to_the_progress_callback(sample_report):
    stages = list(_STAGES)
    assert len(stages) == fd.fidelity_stages(1, impact=True) == 5
    assert stages[0].startswith("loaded ") and stages[1:] == ["learned market simulated", "parametric market simulated",
                                                              "statistics compared", "impact exponent"]


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
    # both markets produce every statistic (the parametric one through its tape laws): no n/a
    for r in rep["statistics"]:
        for src in ("learned", "parametric"):
            sc = r["scores"][src]
            assert sc is not None and np.isfinite(sc["l1"]) and np.isfinite(sc["w1"]), (r["name"], src)
        assert r["verdict"] in ("win", "loss", "mixed"), r["name"]
    sm = rep["summary"]
    assert sm["n_statistics"] == sm["n_common"] == len(names) and sm["n_na"] == 0
    assert sm["parametric_n_statistics"] == sm["learned_n_statistics"] == len(names)
    assert sm["wins"] + sm["losses"] + sm["mixed"] == len(names)
    assert f"of the {len(names)} statistics both produce." in md and "n/a on" not in md
    # the tape laws are recorded per day, next to the parametric parameters
    tape = rep["meta"]["days"][0]["tape"]
    assert set(tape) == {f.name for f in dataclasses.fields(fd.ParametricTape)} and tape["trades_per_bar"] > 0
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
    # 8 draws per start: the 1-hour sample has only 9 test windows, and with 4 draws the own-draw scores
    # are noisy enough to blur the contrast this test is about
    pseudo_real = fd.simulate_learned(ck, [day], 8, seed=1)
    rows = fd.compare(pseudo_real, {"own": fd.simulate_learned(ck, [day], 8, seed=2),
                                    "parametric": fd.simulate_parametric([day], 8, seed=3)}, n_boot=10)
    own = np.array([r["scores"]["own"]["w1"] for r in rows])
    floor = np.array([r["floor"]["w1"] for r in rows])
    assert own.mean() <= floor.mean()
    # the statistics of the parametric market's dynamics (mid, spread, volume, imbalance): far from the
    # learned paths; the i.i.d. tape laws (counts, OFI, book imbalance, depth) are farther than fresh draws too
    tape = {"trades_per_min", "inter_arrival", "ofi", "book_imbalance", "depth"}
    dyn_rows = [r for r in rows if r["name"] not in tape]
    tape_rows = [r for r in rows if r["name"] in tape]
    assert len(dyn_rows) == 10 and len(tape_rows) == 5
    assert np.mean([r["scores"]["parametric"]["w1"] for r in dyn_rows]) > \
        2 * np.mean([r["scores"]["own"]["w1"] for r in dyn_rows])
    assert np.mean([r["scores"]["parametric"]["w1"] for r in tape_rows]) > \
        np.mean([r["scores"]["own"]["w1"] for r in tape_rows])


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


# ---------------------------------------------------------------------------
# the parametric market's tape laws (Poisson counts, Gaussian OFI, log-normal depth, Beta imbalance)
# ---------------------------------------------------------------------------
def _bars(n_trades, ofi, bid, ask, dt=10.0):
    import pandas as pd

    n = len(n_trades)
    return pd.DataFrame({"n_trades": np.asarray(n_trades, float), "ofi": np.asarray(ofi, float),
                         "bid_sz_1": np.asarray(bid, float), "ask_sz_1": np.asarray(ask, float),
                         "bar_seconds": np.full(n, dt)})


def test_calibrate_tape_hand_computed():
    # depth e, e^3, e, e^3 (log 1, 3: mean 2, sd 1); imbalance -0.5, 0.5, ...: u = 0.25, 0.75 -> m 0.5, v 1/16,
    # c = 0.25 / 0.0625 - 1 = 3 -> alpha = beta = 1.5
    d = np.exp([1.0, 3.0, 1.0, 3.0])
    u = np.array([0.25, 0.75, 0.25, 0.75])
    t = fd.calibrate_tape(_bars([0, 2, 4, 2], [1.0, 3.0, 1.0, 3.0], u * d, (1 - u) * d))
    assert t.dt == 10.0 and t.n_bars == 4
    assert t.trades_per_bar == pytest.approx(2.0)  # bars without a trade count
    assert (t.ofi_mean, t.ofi_sd) == pytest.approx((2.0, 1.0))
    assert (t.log_depth_mean, t.log_depth_sd) == pytest.approx((2.0, 1.0))
    assert (t.imb_alpha, t.imb_beta) == pytest.approx((1.5, 1.5))
    # skewed imbalance: u = 0.1, 0.3 -> m 0.2, v 0.01, c = 15 -> alpha 3, beta 12
    t = fd.calibrate_tape(_bars([1, 1], [0.0, 1.0], [10.0, 60.0], [90.0, 140.0], dt=60.0))
    assert (t.imb_alpha, t.imb_beta) == pytest.approx((3.0, 12.0)) and t.dt == 60.0
    # depth below one share is floored at 1 (as in real_paths): log depths 0 and log 4
    t = fd.calibrate_tape(_bars([1, 1], [0.0, 1.0], [0.2, 1.0], [0.2, 3.0]))
    assert t.log_depth_mean == pytest.approx(math.log(4.0) / 2)


def test_calibrate_tape_recovers_generated_laws():
    rng = np.random.default_rng(11)
    n = 20_000
    u = rng.beta(2.0, 5.0, n)
    depth = np.exp(rng.normal(5.0, 0.7, n))
    t = fd.calibrate_tape(_bars(rng.poisson(3.7, n), rng.normal(-50.0, 800.0, n), u * depth, (1 - u) * depth))
    assert abs(t.trades_per_bar - 3.7) < 4 * math.sqrt(3.7 / n)
    assert abs(t.ofi_mean + 50.0) < 4 * 800.0 / math.sqrt(n) and t.ofi_sd == pytest.approx(800.0, rel=0.03)
    assert abs(t.log_depth_mean - 5.0) < 4 * 0.7 / math.sqrt(n) and t.log_depth_sd == pytest.approx(0.7, rel=0.03)
    assert t.imb_alpha == pytest.approx(2.0, rel=0.06) and t.imb_beta == pytest.approx(5.0, rel=0.06)


@pytest.mark.parametrize("case", ["constant_imbalance", "no_depth", "constant_depth", "one_sided_book", "no_trades",
                                  "constant_ofi", "nan", "missing_column", "one_bar"])
def test_calibrate_tape_bad_training_block_is_a_clear_error(case):
    trades, ofi, bid, ask = [1, 2, 3, 0], [5.0, -3.0, 1.0, 0.0], [100.0, 50.0, 30.0, 80.0], [60.0, 90.0, 30.0, 20.0]
    want = {"constant_imbalance": "top-of-book imbalance is constant", "no_depth": "no top-of-book depth",
            "constant_depth": "top-of-book depth is constant", "one_sided_book": "only ever at -1 or +1",
            "no_trades": "no trade", "constant_ofi": "OFI is constant", "nan": "'ofi' has NaN",
            "missing_column": "lacks column 'bid_sz_1'", "one_bar": "at least 2"}[case]
    if case == "constant_imbalance":
        bid = ask = [100.0, 50.0, 30.0, 80.0]
    elif case == "no_depth":
        bid = ask = [0.0] * 4
    elif case == "constant_depth":
        bid, ask = [100.0, 50.0, 30.0, 80.0], [0.0, 50.0, 70.0, 20.0]
    elif case == "one_sided_book":
        bid, ask = [100.0, 0.0, 30.0, 0.0], [0.0, 90.0, 0.0, 20.0]
    elif case == "no_trades":
        trades = [0] * 4
    elif case == "constant_ofi":
        ofi = [7.0] * 4
    elif case == "nan":
        ofi = [5.0, np.nan, 1.0, 0.0]
    bars = _bars(trades, ofi, bid, ask)
    if case == "missing_column":
        bars = bars.drop(columns="bid_sz_1")
    elif case == "one_bar":
        bars = bars.iloc[:1]
    with pytest.raises(fd.FidelityError, match="training block") as ei:
        fd.calibrate_tape(bars)
    assert want in str(ei.value)


def test_tape_fields_are_validated():
    ok = dict(dt=10.0, trades_per_bar=2.0, ofi_mean=0.0, ofi_sd=1.0, log_depth_mean=5.0, log_depth_sd=0.5,
              imb_alpha=1.0, imb_beta=1.0)
    fd.ParametricTape(**ok)
    for name, bad in (("ofi_sd", 0.0), ("imb_beta", -1.0), ("trades_per_bar", float("nan"))):
        with pytest.raises(fd.FidelityError, match=f"ParametricTape.{name} must be"):
            fd.ParametricTape(**(ok | {name: bad}))


@pytest.fixture(scope="module")
def sample_day():
    from lobworld.world_models.checkpoint import load_checkpoint

    return fd.load_fidelity_day(SAMPLE_MSG, load_checkpoint(CK10), 20, test_hours=0.5, early_stop_hours=0.0)


def test_tape_is_fitted_on_the_training_block_only(sample_day):
    from lobworld.world_models.training import split_masks

    day = sample_day
    tr, _es, te = split_masks(day.bars.index, 0.5, 0.0)
    assert day.tape == fd.calibrate_tape(day.bars[tr]) and day.tape.n_bars == tr.sum()
    assert day.tape != fd.calibrate_tape(day.bars)  # the test block would change it


def test_simulate_parametric_draws_every_field_from_the_tape(sample_day):
    day, t, st = sample_day, sample_day.tape, sample_day.stats
    s = fd.simulate_parametric([day], 50, seed=0)
    shape = (len(day.starts) * 50, day.window)
    for name in ("ret", "spread", "volume", "svol", "trade_imb", "count", "ofi", "book_imb", "depth"):
        assert getattr(s, name).shape == shape, name
    np.testing.assert_array_equal(s.mean_count, np.full(shape[0], st.mean_count))
    N = s.count.size
    # Poisson counts: integers, mean and share of empty bars as calibrated
    n_tr = s.count * st.mean_count
    np.testing.assert_allclose(n_tr, np.round(n_tr), atol=1e-9)
    assert abs(n_tr.mean() - t.trades_per_bar) < 4 * math.sqrt(t.trades_per_bar / N)
    p0 = math.exp(-t.trades_per_bar)
    assert abs(np.mean(n_tr == 0) - p0) < 4 * math.sqrt(p0 * (1 - p0) / N) + 1e-3
    # trade imbalance only in traded bars, exactly
    assert np.array_equal(np.isnan(s.trade_imb), s.count == 0) and np.all(np.abs(s.trade_imb[s.count > 0]) <= 1)
    # Gaussian OFI, log-normal depth (normalised by the asset constants, as the real paths)
    ofi = s.ofi * st.ofi_scale
    assert abs(ofi.mean() - t.ofi_mean) < 4 * t.ofi_sd / math.sqrt(N) and ofi.std() == pytest.approx(t.ofi_sd, rel=0.05)
    ld = np.log(s.depth * st.mean_depth)
    assert abs(ld.mean() - t.log_depth_mean) < 4 * t.log_depth_sd / math.sqrt(N)
    assert ld.std() == pytest.approx(t.log_depth_sd, rel=0.05)
    # Beta imbalance on (imb + 1) / 2
    u = (s.book_imb + 1) / 2
    a, b = t.imb_alpha, t.imb_beta
    m, v = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert np.all((u >= 0) & (u <= 1)) and abs(u.mean() - m) < 4 * math.sqrt(v / N)
    assert u.var() == pytest.approx(v, rel=0.07)
    # every statistic is produced
    assert all(stat.fn(s) is not None for stat in fd.STATISTICS)


def test_simulate_parametric_is_deterministic_with_a_separate_tape_stream(sample_day):
    day = sample_day
    names = ("ret", "spread", "volume", "trade_imb", "count", "ofi", "book_imb", "depth")
    a, b = fd.simulate_parametric([day], 2, seed=5), fd.simulate_parametric([day], 2, seed=5)
    for name in names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = fd.simulate_parametric([day], 2, seed=6)
    for name in ("ret", "count", "ofi", "book_imb", "depth"):
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name
    # another tape leaves the ParametricDynamics paths alone; other params leave the tape draws alone
    t2 = dataclasses.replace(day.tape, ofi_mean=day.tape.ofi_mean + day.tape.ofi_sd)
    d = fd.simulate_parametric([day], 2, seed=5, tapes=[t2])
    for name in ("ret", "spread", "volume"):
        np.testing.assert_array_equal(getattr(a, name), getattr(d, name), err_msg=name)
    assert not np.array_equal(a.ofi, d.ofi)
    e = fd.simulate_parametric([day], 2, seed=5, params=[day.params.replace(sigma=2 * day.params.sigma)])
    assert not np.array_equal(a.ret, e.ret)
    for name in ("count", "ofi", "book_imb", "depth"):
        np.testing.assert_array_equal(getattr(a, name), getattr(e, name), err_msg=name)
    with pytest.raises(fd.FidelityError, match="fitted on 60 s bars"):
        fd.simulate_parametric([day], 1, tapes=[dataclasses.replace(day.tape, dt=60.0)])

"""Sim versus real (scenarios.sim_vs_real): bias and RMSE of a world's predicted shortfall against the tape.

The hand case: a world that IS the replay predicts every window exactly (bias 0, RMSE 0, not approximately).
Hand-computed bias / RMSE / round-trip numbers from a made-up table; the parametric tick world and the bar
markets run on the shipped GOOG hour with the alignment the docs state; bad input names the field.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

import lobworld  # noqa: F401  (registers world="parametric")
from lobworld.cli import main
from lobworld.scenarios import backtest as bt
from lobworld.scenarios import sim_vs_real as svr
from lobworld.world_models.data.lobster import sample_lobster_paths

HOUR = str(sample_lobster_paths()[0])
SMALL = svr.SimVsRealConfig(first="10:05", last_end="10:25", horizon_s=300, interval_s=10, n_paths=3,
                            quantity=300, strategies=("twap", "pov", "passive_first"))


def test_a_world_that_is_the_replay_has_bias_and_rmse_exactly_zero():
    res = svr.sim_vs_real([HOUR], SMALL.replace(worlds=("bar-parametric",)), tick_worlds={"tape": "replay"})
    w = res.windows[res.windows["world"] == "tape"]
    assert len(w) == 4 * 2 * 3  # 4 windows (10:05 .. 10:20), 2 sides, 3 strategies
    assert (w["error_bps"] == 0.0).all() and (w["sim_sd_bps"] == 0.0).all()
    s = res.summary[res.summary["world"] == "tape"]
    assert set(s["measure"]) == {"per_side", "round_trip"}
    assert (s["bias_bps"] == 0.0).all() and (s["rmse_bps"] == 0.0).all()
    assert s["bias_ok"].all() and s["rmse_ok"].all()
    assert (s["real_sd_bps"] > 0).all()  # what is predicted does vary across windows
    # the bar market has no limit orders: passive_first has no bar prediction, and a note says so
    bar = res.windows[res.windows["world"] == "bar-parametric"]
    assert set(bar["strategy"]) == {"twap", "pov"}
    assert any("passive_first" in n for n in res.notes)


def test_summary_by_hand():
    rows = []
    t = [pd.Timestamp("2012-06-21 14:00", tz=bt.TZ), pd.Timestamp("2012-06-21 14:10", tz=bt.TZ)]
    # (start, side, real, sim): errors +1, +3 (window 0), -2, (no sell at window 1)
    for start, side, real, sim in ((t[0], "buy", 2.0, 3.0), (t[0], "sell", 4.0, 7.0), (t[1], "buy", 1.0, -1.0)):
        rows.append(dict(ticker="X", world="w", side=side, strategy="twap", start=start, real_bps=real, sim_bps=sim,
                         sim_sd_bps=0.0, error_bps=sim - real, paths=1))
    s = svr.summarize(pd.DataFrame(rows)).set_index("measure")
    assert s.loc["per_side", "n"] == 3
    assert s.loc["per_side", "bias_bps"] == pytest.approx(2.0 / 3.0)
    assert s.loc["per_side", "rmse_bps"] == pytest.approx(math.sqrt((1 + 9 + 4) / 3))
    assert s.loc["per_side", "real_sd_bps"] == pytest.approx(np.std([2.0, 4.0, 1.0], ddof=1))
    # round trip: only window 0 has both sides: sim (3 + 7) / 2 - real (2 + 4) / 2 = 2
    assert s.loc["round_trip", "n"] == 1
    assert s.loc["round_trip", "bias_bps"] == pytest.approx(2.0) and s.loc["round_trip", "rmse_bps"] == pytest.approx(2.0)
    assert not s.loc["round_trip", "bias_ok"] and not s.loc["round_trip", "rmse_ok"]


def test_parametric_and_bar_worlds_on_the_hour():
    cfg = SMALL.replace(worlds=("parametric", "bar-parametric", "bar-learned"), sides=("sell",))
    res = svr.sim_vs_real([HOUR], cfg)
    w = res.windows
    assert set(w["world"]) == {"parametric", "bar-parametric", "bar-learned"}
    assert np.isfinite(w["error_bps"]).all() and (w["paths"] == 3).all()
    par = w[w["world"] == "parametric"]
    assert (par["sim_sd_bps"] > 0).all()  # different paths of a generated world
    # the real column is the same tape run whichever world it is compared with
    key = ["strategy", "start"]
    a = par.set_index(key)["real_bps"]
    b = w[w["world"] == "bar-parametric"].set_index(key)["real_bps"]
    assert np.array_equal(a.reindex(b.index).to_numpy(), b.to_numpy())
    # real = the tick env on the tape, by hand for one window
    start = bt.parse_time("2012-06-21T10:05")
    tab = bt.run_tick_execution(HOUR, [start], ["twap"], side="sell", quantity=300, horizon_s=300, interval_s=10,
                                n_paths=3)
    assert a.loc[("twap", pd.Timestamp(start, tz="UTC").tz_convert(bt.TZ))] == tab["shortfall_bps"].mean()
    assert res.quantities == {"GOOG": 300}


def test_bar_alignment_start_and_arrival_mid():
    """The bar market starts at the window's minute of the session with the real arrival mid."""
    data = bt.tick_world_data(HOUR)
    mids = bt.mid_path(data)
    start = bt.parse_time("2012-06-21T10:15")
    sig, spread, vol = svr._pre_window(data, mids, start)
    assert 0 < sig < 1 and data.tick_size <= spread < 1 and vol > 0
    tab = svr._run_bar(data, [start], ["twap"], "sell", 300, SMALL.replace(n_paths=2), "parametric")
    assert len(tab) == 2 and np.isfinite(tab["shortfall_bps"]).all()


def test_learned_tick_world_is_skipped_cleanly_when_not_registered(monkeypatch):
    from lobworld.envs import tick

    monkeypatch.setattr(tick, "registered_tick_worlds", lambda: ["parametric", "replay"])
    res = svr.sim_vs_real([HOUR], SMALL.replace(worlds=("learned",), strategies=("twap",), sides=("sell",)),
                          tick_worlds={"tape": "replay"})
    assert any(n.startswith("world 'learned': no tick world of that name is registered") for n in res.notes)
    assert set(res.windows["world"]) == {"tape"}


def test_bad_input_names_the_field():
    with pytest.raises(bt.BacktestError, match="worlds"):
        svr.SimVsRealConfig(worlds=("nope",))
    with pytest.raises(bt.UnknownStrategyError, match="strategy"):
        svr.SimVsRealConfig(strategies=("twop",))
    with pytest.raises(bt.OrderSizeError, match="quantity"):
        svr.SimVsRealConfig(quantity=0)
    with pytest.raises(bt.BacktestError, match="paths"):
        svr.SimVsRealConfig(n_paths=0)
    with pytest.raises(bt.WindowError, match="start"):
        svr.sim_vs_real([HOUR], svr.SimVsRealConfig())  # the default 14:00 .. 16:00 block is not in the 10:00 hour


def test_cli_sim_vs_real(tmp_path):
    out = tmp_path / "svr"
    argv = ["backtest", "--sim-vs-real", "--data", HOUR, "--worlds", "parametric,bar-parametric", "--strategy",
            "twap", "--side", "sell", "--quantity", "300", "--first", "10:05", "--last-end", "10:20",
            "--horizon-min", "5", "--paths", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert {r["world"] for r in s["summary"]} == {"parametric", "bar-parametric"}
    assert s["quantities"] == {"GOOG": 300}
    assert "bias_bps" in (out / "summary.md").read_text()
    assert main(argv[:-3] + ["--worlds", "nope", "--out", str(tmp_path / "x")]) == 2

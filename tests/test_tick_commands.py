"""`lobworld evaluate / counterfactual / report / train` on the tick-level ids: the same windows on the
replay world, common random numbers on the parametric one, the learned world as the ids' default, paired CIs, the report's latency section on
the four presets, a PPO smoke run that loads back; clear errors for bar-only options."""

import json

import numpy as np
import pytest

import lobworld  # noqa: F401  (registers the ids and the parametric tick world)
from lobworld.scenarios.counterfactual import CounterfactualError, run_counterfactual
from lobworld.scenarios.report import pre_trade_report

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"
EX_KW = {"horizon": 10, "quantity": 300}
MM_KW = {"horizon": 20}


def test_counterfactual_on_replay_trades_the_same_windows_and_pairs_the_paths():
    r = run_counterfactual(EX, ["twap", "aggressive", "passive-first"], n_paths=6, seed=4,
                           env_kwargs={**EX_KW, "world": "replay"}, n_boot=200)
    assert r.market == "replay tick world, latency colocated" and r.metric == "shortfall_bps"
    arrival = r.paths["twap"].infos["arrival_price"]
    assert len(set(arrival.tolist())) > 1  # random windows over the hour ...
    for name in ("aggressive", "passive-first"):  # ... the same for every strategy (path i = seed 4 + i)
        np.testing.assert_array_equal(r.paths[name].infos["arrival_price"], arrival)
        a, b = r.paths[name].infos["shortfall_bps"], r.paths["twap"].infos["shortfall_bps"]
        assert r.summaries[name].diff_mean == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert r.summaries["aggressive"].completion_rate == 1.0


def test_counterfactual_on_the_parametric_world_uses_common_random_numbers():
    kw = {**EX_KW, "world": "parametric"}
    r = run_counterfactual(EX, ["twap", "ac"], n_paths=4, seed=1, env_kwargs=kw, n_boot=100)
    assert r.market.startswith("parametric tick world")
    # ac at zero risk aversion sends TWAP's orders: with the same random numbers, the same flow, path by path
    np.testing.assert_array_equal(r.paths["ac"].infos["shortfall_bps"], r.paths["twap"].infos["shortfall_bps"])
    s = r.summaries["ac"]
    assert s.diff_mean == 0.0 and s.diff_ci95 == (0.0, 0.0)
    # and a different strategy sees different paths' shortfalls but the same starting books
    r2 = run_counterfactual(EX, ["twap", "aggressive"], n_paths=4, seed=1, env_kwargs=kw, n_boot=100)
    np.testing.assert_array_equal(r2.paths["twap"].infos["shortfall_bps"], r.paths["twap"].infos["shortfall_bps"])
    np.testing.assert_array_equal(r2.paths["aggressive"].infos["arrival_price"],
                                  r.paths["twap"].infos["arrival_price"])


def test_counterfactual_start_fixes_the_window_and_latency_scenarios_set_the_env_latency():
    r = run_counterfactual(EX, ["twap"], n_paths=3, env_kwargs=EX_KW, start="2012-06-21T10:30", n_boot=50)
    assert len(set(r.paths["twap"].infos["arrival_price"].tolist())) == 1  # every path starts at 10:30:00
    r = run_counterfactual(MM, ["fixed-spread"], n_paths=2, env_kwargs=MM_KW, scenario="latency:retail", n_boot=50)
    assert r.market == "learned tick world, latency retail"  # the id's registered world
    with pytest.raises(CounterfactualError, match="tick world"):
        run_counterfactual(EX, ["twap"], n_paths=2, env_kwargs=EX_KW, scenario="volatile")
    with pytest.raises(CounterfactualError, match="no bar dynamics"):
        run_counterfactual(EX, ["twap"], n_paths=2, env_kwargs={**EX_KW, "dynamics": "parametric"})


def test_report_on_tick_market_making_runs_the_four_latency_presets_with_paired_cis(tmp_path):
    doc = pre_trade_report(None, None, 1, 0.0, tmp_path, n_paths=4, n_boot=100, plots=False, env_id=MM)
    assert list(doc["latency"]) == ["colocated", "proximity", "cloud", "retail"]
    assert doc["regimes_skipped"] and doc["market"] == "learned tick world, latency colocated"
    assert doc["inputs"]["env_kwargs"] == {"horizon": 60, "dt": 1.0, "world": "learned"}  # the id's default
    pairs = doc["latency_paired"]
    assert set(pairs) == {"fixed-spread", "avellaneda-stoikov", "cartea-jaimungal"}
    for name, p in pairs.items():
        assert (p["slow"], p["fast"]) == ("retail", "colocated")
        a = np.array([doc["latency"]["retail"]["strategies"][name]["mean"]])
        b = np.array([doc["latency"]["colocated"]["strategies"][name]["mean"]])
        assert p["diff_mean"] == pytest.approx(float(a[0] - b[0]), abs=1e-9)  # paired: difference of the means
        assert p["diff_ci95"][0] <= p["diff_mean"] <= p["diff_ci95"][1]
    md = (tmp_path / "report.md").read_text()
    assert "`retail` minus `colocated` on the same paths" in md and "market making for 1 minutes" in md


def test_report_on_tick_execution_and_its_errors(tmp_path):
    doc = pre_trade_report("buy", 200, 1, 0.0, tmp_path, strategies=["twap", "aggressive"], n_paths=3, n_boot=50,
                           plots=True, env_id=EX, world="parametric", latencies=["colocated", "retail"])
    assert doc["inputs"]["env_kwargs"] == {"side": "buy", "quantity": 200, "horizon": 60, "dt": 1.0,
                                           "world": "parametric"}
    assert doc["market"].startswith("parametric tick world") and doc["recommendation"]["strategy"] in (
        "twap", "aggressive")
    assert (tmp_path / "execution_trajectories.png").is_file()
    from lobworld.scenarios.report import ReportError

    with pytest.raises(ReportError, match="no bar dynamics"):
        pre_trade_report("sell", 100, 1, 0.0, tmp_path, env_id=EX, dynamics="parametric")
    with pytest.raises(ReportError, match="whole number"):
        pre_trade_report("sell", 100.5, 1, 0.0, tmp_path, env_id=EX)


def test_cli_evaluate_counterfactual_and_flag_errors(capsys):
    from lobworld.cli import main

    kw = json.dumps(EX_KW)
    assert main(["evaluate", "--env", EX, "--strategy", "twap", "--episodes", "3", "--world", "parametric",
                 "--env-kwargs", kw, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["market"].startswith("parametric tick world") and d["strategies"]["twap"]["completion_rate"] == 1.0
    assert main(["counterfactual", "--env", MM, "--strategies", "fixed-spread,as", "--paths", "3", "--boot", "50",
                 "--env-kwargs", json.dumps(MM_KW), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["metric"] == "pnl" and d["benchmark"] == "fixed-spread"
    assert main(["evaluate", "--env", EX, "--strategy", "twap", "--episodes", "2", "--dynamics", "learned"]) == 2
    assert "has no bar dynamics" in capsys.readouterr().err
    assert main(["evaluate", "--env", "LOB-Execution-v0", "--strategy", "twap", "--episodes", "2",
                 "--world", "replay"]) == 2
    assert "takes --dynamics" in capsys.readouterr().err
    assert main(["evaluate", "--env", EX, "--strategy", "twap", "--episodes", "2", "--world", "nowhere"]) == 2
    assert "not a registered tick world" in capsys.readouterr().err


@pytest.mark.slow
def test_ppo_trains_on_the_parametric_tick_world_and_loads_back(tmp_path, capsys):
    from lobworld.cli import main

    f = tmp_path / "tiny.toml"
    f.write_text("n_steps = 32\nbatch_size = 64\nn_epochs = 1\ncheckpoint_freq = 0\neval_freq = 0\n"
                 "env_kwargs = { quantity = 200, horizon = 20 }\n")
    out = tmp_path / "run"
    assert main(["train", "--env", EX, "--algo", "PPO", "--timesteps", "384", "--n-envs", "4", "--device", "cpu",
                 "--config", str(f), "--out", str(out), "--no-progress", "--world", "parametric"]) == 0
    assert "(parametric tick world market) for 384 steps" in capsys.readouterr().out
    meta = json.loads((out / "lobworld_run.json").read_text())
    assert meta["config"]["env_kwargs"] == {"quantity": 200, "horizon": 20, "world": "parametric"}
    # evaluate --model runs on the world the model was trained on
    assert main(["evaluate", "--env", EX, "--model", str(out / "model.zip"), "--episodes", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["market"].startswith("parametric tick world")
    s = d["strategies"][str(out / "model.zip")]
    assert s["n_paths"] == 3 and s["completion_rate"] == 1.0 and np.isfinite(s["mean"])

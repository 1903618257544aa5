"""Pre-trade report: files exist, hold the computed numbers, recommendation is the argmin; bad input."""

import json
import math

import pytest

from lobworld.cli import main
from lobworld.envs.dynamics import ParametricParams
from lobworld.scenarios.report import pre_trade_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    doc = pre_trade_report("sell", 2000.0, 10, 1.0, out, strategies=["twap", "ac", "aggressive", "const:0.3"],
                           n_paths=300, seed=4, scenarios=["normal", "volatile"], n_boot=200, record=30,
                           latencies=["none", "retail", "250ms"], adverse_bps_per_s=2.0, dynamics="parametric")
    return out, doc


def test_files_exist(report):
    out, doc = report
    for name in ("report.md", "report.json", "shortfall_distributions.png", "execution_trajectories.png",
                 "inventory_paths.png", "scenario_sensitivity.png", "latency_sensitivity.png"):
        f = out / name
        assert f.is_file() and f.stat().st_size > 500, name
        if name.endswith(".png"):
            assert f.read_bytes()[:8] == PNG


def test_recommendation_is_the_argmin_of_mean_plus_r_std(report):
    out, doc = report
    saved = json.loads((out / "report.json").read_text())
    strat = saved["scenarios"]["normal"]["strategies"]
    objectives = {k: v["mean"] + 1.0 * v["std"] for k, v in strat.items()}
    best = min(objectives, key=objectives.get)
    assert saved["recommendation"]["strategy"] == best == doc["recommendation"]["strategy"]
    assert saved["recommendation"]["objective"] == pytest.approx(objectives[best])
    # aggressive (everything at once) is deterministic and the most expensive for a 10-minute order
    assert strat["aggressive"]["std"] == pytest.approx(0.0, abs=1e-9)
    assert strat["aggressive"]["mean"] > strat["twap"]["mean"]
    assert saved["ranking"][0] == best and set(saved["best_by_scenario"]) == {"normal", "volatile"}
    # the risk-aware AC schedule got a positive mean-variance weight R / (2 sd_TWAP)
    assert saved["inputs"]["mean_variance_lambda_per_bps"] > 0


def test_markdown_holds_the_numbers(report):
    out, doc = report
    md = (out / "report.md").read_text()
    rec = doc["recommendation"]
    assert f"**{rec['strategy']}**" in md
    assert f"{rec['objective']:.2f}" in md
    twap = doc["scenarios"]["normal"]["strategies"]["twap"]
    assert f"| twap | {twap['mean']:.2f} | {twap['ci95'][0]:.2f} .. {twap['ci95'][1]:.2f} | {twap['std']:.2f} |" in md
    vol = doc["scenarios"]["volatile"]["strategies"]["twap"]
    assert f"{vol['mean'] + vol['std']:.2f}" in md
    assert "Simulated" in md and "shortfall_distributions.png" in md
    assert "Market: **parametric** dynamics" in md  # the report names the market of its numbers
    assert doc["market"] == "parametric" and doc["inputs"]["dynamics"] == "parametric"


def test_latency_sensitivity(report):
    out, doc = report
    md = (out / "report.md").read_text()
    lat = doc["latency"]
    assert set(lat) == {"none", "retail", "250ms"} and doc["best_by_latency"].keys() == lat.keys()
    assert lat["retail"]["market"] == "parametric + latency retail, adverse 2 bps/s"
    none = lat["none"]["strategies"]
    base = doc["scenarios"]["normal"]["strategies"]
    P = ParametricParams()
    # zero latency is the base market exactly
    for k in none:
        assert none[k]["mean"] == base[k]["mean"] and none[k]["std"] == base[k]["std"]
    # aggressive sells everything in one child order at the decision: with latency L it pays the adverse drift
    # 2 bps/s x L on every share, plus noise of sd sigma sqrt(L) per share (0.31 bps at 250 ms)
    for name, L in (("retail", 0.05), ("250ms", 0.25)):
        agg = lat[name]["strategies"]["aggressive"]
        d = agg["mean"] - none["aggressive"]["mean"]
        sd_noise = P.sigma * math.sqrt(L) / P.s0 * 1e4
        assert abs(d - 2.0 * L) < 4 * sd_noise / math.sqrt(300) + 0.003, (name, d)
        assert agg["std"] == pytest.approx(sd_noise, rel=0.2)
    row = next(line for line in md.splitlines() if line.startswith("| retail |"))
    assert f"{lat['retail']['strategies']['twap']['mean']:.4f}" in row and "50 ms" in row
    assert "LatencyDynamics" in md


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="side must be 'buy' or 'sell'"):
        pre_trade_report("hold", 100.0, 10, 0.0, tmp_path)
    with pytest.raises(ValueError, match="quantity must be a positive"):
        pre_trade_report("sell", -5.0, 10, 0.0, tmp_path)
    with pytest.raises(ValueError, match="risk aversion R"):
        pre_trade_report("sell", 5.0, 10, float("nan"), tmp_path)
    assert main(["report", "--side", "sell", "--quantity", "100", "--horizon-min", "5", "--out", str(tmp_path),
                 "--strategies", "twap,bogus", "--paths", "20", "--scenarios", "normal"]) == 0
    skipped = json.loads((tmp_path / "report.json").read_text())["skipped_strategies"]
    assert "bogus" in skipped
    assert main(["report", "--side", "sell", "--quantity", "100", "--horizon-min", "5", "--out", str(tmp_path),
                 "--strategies", "bogus", "--paths", "20"]) == 2
    assert "none of the strategies" in capsys.readouterr().err


def test_counterfactual_cli_json(tmp_path, capsys):
    assert main(["counterfactual", "--env", "LOB-Execution-v0", "--strategies", "twap,ac:0.1,aggressive",
                 "--paths", "50", "--seed", "3", "--boot", "200", "--json", "--out", str(tmp_path)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["benchmark"] == "twap" and d["n_paths"] == 50
    assert d["strategies"]["aggressive"]["diff_mean"] > 0
    assert json.loads((tmp_path / "counterfactual.json").read_text())["strategies"] == d["strategies"]
    assert main(["counterfactual", "--strategies", "twap,nonsense", "--paths", "10"]) == 2
    assert "unknown strategy 'nonsense'" in capsys.readouterr().err


def test_learned_market_skips_regimes(tmp_path):
    doc = pre_trade_report("buy", 500.0, 3, 0.0, tmp_path, strategies=["twap", "aggressive"], n_paths=20,
                           scenarios=["normal", "volatile"], latencies=[], dynamics="learned", n_boot=50, plots=False)
    assert doc["market"] == "learned" and list(doc["scenarios"]) == ["normal"]
    assert "regime scenarios transform the parametric market" in doc["regimes_skipped"]
    md = (tmp_path / "report.md").read_text()
    assert "Market: **learned** dynamics" in md and "Not run: regime scenarios" in md


def test_dark_pool_report(tmp_path):
    doc = pre_trade_report("sell", 2000, 5, 0.5, tmp_path, n_paths=60, scenarios=["normal"], n_boot=50,
                           plots=False, env_id="LOB-DarkPool-v0")
    assert doc["metric"] == "cost_bps" and doc["inputs"]["env_kwargs"]["horizon"] == 30  # 5 min of 10 s steps
    strat = doc["scenarios"]["normal"]["strategies"]
    assert set(strat) == {"lit-only", "uniform", "ganchev-km", "oracle"}
    # the oracle (sees hidden liquidity) is a bound, never the recommendation
    best = min((k for k in strat if k != "oracle"), key=lambda k: strat[k]["mean"] + 0.5 * strat[k]["std"])
    assert doc["recommendation"]["strategy"] == best
    assert doc["latency"] == {} and "no latency model" in doc["latency_model"]
    assert "dark_fill_rate" in (tmp_path / "report.md").read_text()


def test_market_making_report(tmp_path):
    with pytest.raises(ValueError, match="market making has no parent order"):
        pre_trade_report("sell", 100.0, 1, 0.0, tmp_path, env_id="LOB-MarketMaking-v0")
    doc = pre_trade_report(None, None, 1, 0.0, tmp_path, n_paths=16, scenarios=["normal"], n_boot=50,
                           latencies=["colocated", "retail"], env_id="LOB-MarketMaking-v0",
                           strategies=["fixed-spread", "cartea-jaimungal"])
    assert doc["metric"] == "pnl" and not doc["lower_is_better"]
    strat = doc["scenarios"]["normal"]["strategies"]
    assert doc["recommendation"]["strategy"] == max(strat, key=lambda k: strat[k]["mean"])
    # the base market is colocated (the env's default): the colocated latency scenario repeats it exactly
    assert doc["latency"]["colocated"]["strategies"]["fixed-spread"]["mean"] == strat["fixed-spread"]["mean"]
    assert doc["latency"]["retail"]["strategies"]["fixed-spread"]["mean"] != strat["fixed-spread"]["mean"]
    assert (tmp_path / "mean_inventory.png").is_file()

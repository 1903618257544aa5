"""The first hour of a new user: one market rule everywhere, report defaults, bounds, honest notes, plot names."""

import json

import matplotlib.figure
import pytest

from lobworld.cli import build_parser, main
from lobworld.envs import spec as _spec
from lobworld.scenarios.counterfactual import run_counterfactual
from lobworld.scenarios.report import default_quantity, pre_trade_report, registered_dynamics


def _help(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())


@pytest.mark.parametrize("command", ["train", "evaluate", "counterfactual", "report"])
def test_every_command_help_states_the_registered_market_rule(command):
    text = _help(command)
    assert "registered market" in text
    assert "learned for LOB-Execution-v0" in text.replace("- ", "-")
    assert "parametric for LOB-MarketMaking-v0" in text.replace("- ", "-")


@pytest.mark.parametrize("env_id", ["LOB-Execution-v0", "LOB-DarkPool-v0"])
def test_report_and_counterfactual_default_to_the_registered_market(tmp_path, env_id):
    want = _spec.get_spec(env_id).default_kwargs.get("dynamics", "parametric")
    assert registered_dynamics(env_id) == want
    strategies = ["twap", "aggressive"] if env_id == "LOB-Execution-v0" else ["lit-only", "uniform"]
    doc = pre_trade_report(None, None, 3, 0.0, tmp_path, strategies=strategies, n_paths=8, n_boot=20,
                           scenarios=["normal"], plots=False, env_id=env_id)
    cf = run_counterfactual(env_id, strategies, n_paths=8, n_boot=20)
    assert doc["inputs"]["dynamics"] == want and doc["market"] == cf.market
    assert cf.market.split()[0].startswith(want)
    assert f"Market: **{cf.market}** dynamics" in (tmp_path / "report.md").read_text()


def test_report_cli_defaults_side_and_quantity_to_one_percent_of_adv(tmp_path, capsys):
    assert default_quantity("LOB-Execution-v0") == 7061.0  # round(0.01 * GOOG_ADV), GOOG_ADV = 706,125 shares
    assert default_quantity("LOB-DarkPool-v0") == 2000.0
    assert main(["report", "--horizon-min", "3", "--strategies", "twap,aggressive", "--paths", "8",
                 "--out", str(tmp_path)]) == 0
    inp = json.loads((tmp_path / "report.json").read_text())["inputs"]
    assert (inp["side"], inp["quantity"], inp["dynamics"]) == ("sell", 7061.0, "learned")
    assert "market learned" in capsys.readouterr().out
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Pre-trade report: sell 7,061 shares over 3 minutes")


def test_dark_pool_report_never_recommends_the_oracle(tmp_path):
    doc = pre_trade_report("sell", 2000, 5, 0.0, tmp_path, n_paths=60, scenarios=["normal"], n_boot=50,
                           plots=False, env_id="LOB-DarkPool-v0")
    strat = doc["scenarios"]["normal"]["strategies"]
    objective = {k: v["mean"] for k, v in strat.items()}
    assert min(objective, key=objective.get) == "oracle"  # the bound is the cheapest: it sees hidden liquidity
    rec = doc["recommendation"]["strategy"]
    assert rec != "oracle" and rec == min((k for k in objective if k != "oracle"), key=objective.get)
    assert doc["bounds"] == ["oracle"] and "oracle" not in doc["ranking"]
    assert "oracle" not in doc["best_by_scenario"].values()
    md = (tmp_path / "report.md").read_text()
    assert "| oracle (bound) |" in md and "never recommended" in md


def test_ac_at_zero_risk_aversion_is_said_to_be_twap(tmp_path):
    doc = pre_trade_report("sell", 2000.0, 5, 0.0, tmp_path, strategies=["twap", "ac"], n_paths=30, n_boot=50,
                           scenarios=["normal"], plots=False, dynamics="parametric")
    ac = doc["scenarios"]["normal"]["strategies"]["ac"]
    assert abs(ac["diff_mean"]) < 1e-9 and max(map(abs, ac["diff_ci95"])) < 1e-9
    assert doc["ac_equals_twap"] == ["ac"]
    md = (tmp_path / "report.md").read_text()
    assert "Almgren-Chriss is TWAP exactly here" in md and "0 (identical to twap on every path)" in md
    assert "-0.00" not in md.split("## Strategies")[1].split("##")[0]
    doc = pre_trade_report("sell", 2000.0, 5, 1.0, tmp_path, strategies=["twap", "ac"], n_paths=30, n_boot=50,
                           scenarios=["normal"], plots=False, dynamics="parametric")
    assert doc["ac_equals_twap"] == [] and "TWAP exactly" not in (tmp_path / "report.md").read_text()


def test_execution_report_runs_no_latency_scenarios_by_default(tmp_path):
    doc = pre_trade_report("sell", 2000.0, 3, 0.0, tmp_path, strategies=["twap", "aggressive"], n_paths=8,
                           n_boot=20, scenarios=["normal"], dynamics="parametric")
    assert doc["latency"] == {} and "latency does not matter at this grain" in doc["latency_model"]
    assert "latency does not matter at this grain" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "latency_sensitivity.png").exists()


@pytest.fixture
def saved_titles(monkeypatch):
    """Every figure saved during the test: file name -> the text of its titles."""
    seen = {}
    orig = matplotlib.figure.Figure.savefig

    def spy(self, fname, *a, **k):
        texts = [ax.get_title() for ax in self.axes] + ([self._suptitle.get_text()] if self._suptitle else [])
        seen[str(fname).rsplit("/", 1)[-1]] = " ".join(texts)
        return orig(self, fname, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    return seen


def test_market_making_plots_are_named_for_what_they_show_and_name_the_market(tmp_path, saved_titles):
    doc = pre_trade_report(None, None, 1, 0.0, tmp_path, n_paths=8, scenarios=["normal"], n_boot=20,
                           latencies=["colocated", "retail"], env_id="LOB-MarketMaking-v0",
                           strategies=["fixed-spread", "cartea-jaimungal"])
    files = set(doc["figures"].values())
    assert {"pnl_distributions.png", "mean_inventory.png", "inventory_paths.png", "latency_sensitivity.png"} <= files
    assert not {"shortfall_distributions.png", "execution_trajectories.png"} & files
    for f in files:
        assert (tmp_path / f).is_file()
        assert "parametric" in saved_titles[f], (f, saved_titles[f])


def test_fidelity_plot_axes_carry_units(tmp_path, monkeypatch):
    import numpy as np

    from lobworld.world_models.fidelity.plots import plot_statistics

    labels = {}
    orig = matplotlib.figure.Figure.savefig

    def spy(self, fname, *a, **k):
        ax = self.axes[0]
        labels[str(fname).rsplit("/", 1)[-1]] = (ax.get_xlabel(), ax.get_ylabel())
        return orig(self, fname, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    g = np.random.default_rng(0)
    v, c = g.normal(1.0, 0.1, 400), np.repeat(np.arange(20, 24), 100)
    rep = {"_plot": {"spread_by_tod": {"real": (v, c), "learned": (v + 0.05, c)},
                     "spread": {"real": (v, None), "learned": (v * 1.1, None)}}}
    written = plot_statistics(rep, tmp_path)
    assert [p.name for p in written] == ["fidelity_spread_by_tod.png", "fidelity_spread.png"]
    x, y = labels["fidelity_spread_by_tod.png"]
    assert y == "mean spread / median spread (dimensionless)" and x == "time of day (hours, exchange time)"
    assert labels["fidelity_spread.png"][0] == "spread: spread / median spread"


def test_compile_notice_only_when_the_kernel_cache_is_cold(tmp_path, monkeypatch, capsys):
    from lobworld.cli import _progress

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_progress, "_noticed", False)
    assert _progress.kernel_cache_is_cold()
    assert _progress.compile_notice() and not _progress.compile_notice()  # once per process
    assert capsys.readouterr().err.count("compiling kernels (first run only") == 1
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "execution._step-12.py311.nbi").write_bytes(b"x")
    monkeypatch.setattr(_progress, "_noticed", False)
    assert not _progress.kernel_cache_is_cold() and not _progress.compile_notice()
    assert capsys.readouterr().err == ""


def test_counterfactual_and_report_show_progress(tmp_path, capsys):
    assert main(["counterfactual", "--strategies", "twap,aggressive", "--paths", "8", "--boot", "20",
                 "--dynamics", "parametric"]) == 0
    err = capsys.readouterr().err
    assert "2/2" in err and "8 paths per strategy" in err
    assert main(["report", "--horizon-min", "3", "--strategies", "twap,aggressive", "--paths", "8",
                 "--dynamics", "parametric", "--scenarios", "normal,volatile", "--out", str(tmp_path)]) == 0
    assert "4/4" in capsys.readouterr().err  # 2 strategies x 2 scenarios
    assert main(["counterfactual", "--strategies", "twap", "--paths", "8", "--json", "--dynamics", "parametric"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["n_paths"] == 8 and "1/1" not in out.err


def test_evaluate_shows_progress(capsys):
    assert main(["evaluate", "--env", "LOB-Execution-v0", "--strategy", "twap", "--episodes", "8",
                 "--dynamics", "parametric"]) == 0
    out = capsys.readouterr()
    # the bar counts episodes as they end
    assert "8/8" in out.err and "evaluate twap on LOB-Execution-v0" in out.err
    assert "twap on LOB-Execution-v0 (parametric" in out.out


def test_counterfactual_cli_says_when_ac_is_twap(capsys):
    assert main(["counterfactual", "--strategies", "twap,ac", "--paths", "8", "--boot", "20", "--dynamics",
                 "parametric", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 (identical to twap on every path)" in out and "TWAP exactly" in out and "-0.000" not in out

"""Backtests of a trained SB3 model of LOB-TickExecution-v0 on the real tape (scenarios.backtest.backtest_model).

A PPO model trained a few hundred steps on world="parametric" is backtested on the shipped GOOG hour
through the tick env's replay world; the result equals stepping the single env by hand with
model.predict on the VecNormalize-normalised observations (exact). Models of another env id, with
other spaces, or without their VecNormalize statistics are refused with errors that say why.
"""

import json
import pickle
import shutil

import numpy as np
import pytest
from stable_baselines3 import PPO

import lobworld  # noqa: F401  (registers the ids and world="parametric")
from lobworld.agents.config import TrainConfig
from lobworld.agents.training import IncompatibleModelError, MissingVecNormalizeError, train
from lobworld.cli import main
from lobworld.envs.tick import TickExecutionEnv
from lobworld.scenarios import backtest as bt
from lobworld.world_models.data.lobster import sample_lobster_paths

HOUR = str(sample_lobster_paths()[0])
KW = {"world": "parametric", "horizon": 12, "dt": 10.0, "quantity": 300, "side": "sell"}
STARTS = ["2012-06-21T10:10", "2012-06-21T10:31:30"]


def _cfg(env_id, env_kwargs, **kw):
    return TrainConfig(env_id=env_id, timesteps=256, n_envs=4, n_steps=32, batch_size=64, n_epochs=2,
                       checkpoint_freq=0, eval_freq=0, progress_bar=False, device="cpu", env_kwargs=env_kwargs,
                       **kw)


@pytest.fixture(scope="module")
def tick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tick_run") / "run"
    res = train(_cfg(bt.TICK_EXEC_ENV, KW, normalize=True), out)
    assert res.vecnormalize_path is not None
    return out


@pytest.fixture(scope="module")
def bar_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bar_run") / "run"
    train(_cfg("LOB-Execution-v0", {"dynamics": "parametric", "horizon": 10}), out)
    return out


def _by_hand(run, start, seed=0):
    """Step the single tick env on the tape with model.predict (VecNormalize statistics applied)."""
    model = PPO.load(str(run / "model.zip"), device="cpu")
    with open(run / "vecnormalize.pkl", "rb") as fh:
        vn = pickle.load(fh)
    env = TickExecutionEnv(data=HOUR, world="replay", start=start, horizon=12, dt=10.0, quantity=300, side="sell",
                           latency="cloud")
    obs, _ = env.reset(seed=seed)
    for _ in range(12):
        a, _ = model.predict(vn.normalize_obs(obs[None, :]).astype(np.float32), deterministic=True)
        obs, _, term, trunc, info = env.step(a[0])
        if term or trunc:
            return info
    raise AssertionError("the episode did not end at its horizon")


def test_model_backtest_on_the_tape_equals_stepping_by_hand(tick_run):
    starts = [bt.parse_time(s) for s in STARTS]
    res = bt.backtest_model(tick_run, HOUR, starts, baselines=("twap", "passive_first"))
    assert res.trained_on.startswith(bt.TICK_EXEC_ENV)
    assert res.env_kwargs["horizon"] == 12 and res.env_kwargs["quantity"] == 300 and res.env_kwargs["dt"] == 10.0
    tab = res.table
    assert list(tab["strategy"].unique()) == ["model", "twap", "passive_first"]
    assert (tab["completion"] == 1.0).all()
    assert np.allclose(tab["passive_shares"] + tab["aggressive_shares"] + tab["forced_shares"], 300)
    for k, text in enumerate(("10:10", "10:31:30")):
        info = _by_hand(tick_run, text)
        row = tab[(tab["strategy"] == "model")].iloc[k]
        for key in ("shortfall_bps", "passive_shares", "aggressive_shares", "forced_shares", "vwap",
                    "episode_length"):
            assert row[key] == info[key], key  # exact
    # the paired table: model minus baseline per window, averaged over the two windows
    per = tab.groupby(["strategy", "start"], sort=False)["shortfall_bps"].mean().unstack("strategy")
    p = res.paired.set_index("baseline")
    assert p.loc["twap", "windows"] == 2
    assert p.loc["twap", "diff"] == pytest.approx(float((per["model"] - per["twap"]).mean()), abs=1e-12)


def test_baselines_through_the_tick_env_hand_checks():
    """TWAP sends X / N shares per decision as market children on the tape; aggressive finishes at
    the first decision when the book holds the order; both complete exactly."""
    start = bt.parse_time("2012-06-21T10:10")
    tab = bt.run_tick_execution(HOUR, [start], ["twap", "aggressive"], quantity=300, horizon_s=120, interval_s=10)
    tw, ag = tab.iloc[0], tab.iloc[1]
    assert tw["aggressive_shares"] == 300 and tw["passive_shares"] == 0 and tw["episode_length"] == 12
    assert ag["aggressive_shares"] == 300 and ag["episode_length"] <= 2
    assert ag["shortfall_bps"] > tw["shortfall_bps"] > 0  # crossing at once walks deeper than slicing
    assert tw["passive_fills"] == 0 and np.isnan(tw["avg_queue_wait_s"]) and tw["aggressive_fills"] >= 12


def test_passive_first_rests_in_the_queue_and_waits():
    start = bt.parse_time("2012-06-21T10:10")
    row = bt.run_tick_execution(HOUR, [start], ["passive_first"], quantity=1000, horizon_s=300, interval_s=10).iloc[0]
    assert row["passive_shares"] > 500 and row["passive_fills"] > 0
    assert row["passive_shares"] + row["aggressive_shares"] + row["forced_shares"] == 1000
    assert 0 < row["avg_queue_wait_s"] < 300  # a child waits in the real queue, within the window


def test_model_of_another_env_id_is_refused(bar_run):
    with pytest.raises(bt.ModelEnvError, match="trained on LOB-Execution-v0"):
        bt.backtest_model(bar_run, HOUR, [bt.parse_time(STARTS[0])])


def test_model_without_record_with_other_spaces_is_refused(bar_run, tmp_path):
    shutil.copy(bar_run / "model.zip", tmp_path / "model.zip")  # no run record: only the spaces can tell
    with pytest.raises(IncompatibleModelError, match="observation space"):
        bt.backtest_model(tmp_path, HOUR, [bt.parse_time(STARTS[0])])


def test_missing_vecnormalize_is_refused(tick_run, tmp_path):
    for f in ("model.zip", "lobworld_run.json"):
        shutil.copy(tick_run / f, tmp_path / f)
    with pytest.raises(MissingVecNormalizeError, match="vecnormalize.pkl"):
        bt.backtest_model(tmp_path, HOUR, [bt.parse_time(STARTS[0])])


def test_cli_backtest_model(tick_run, tmp_path, capsys):
    out = tmp_path / "bt"
    argv = ["backtest", "--data", HOUR, "--model", str(tick_run), "--strategy", "twap,vwap",
            "--start", "10:10,10:31:30", "--latency", "cloud", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == bt.TICK_EXEC_ENV and summary["trained_on"].startswith(bt.TICK_EXEC_ENV)
    assert {r["strategy"] for r in summary["results"]} == {"model", "twap", "vwap"}
    assert "paired" in (out / "summary.md").read_text()
    assert main(["backtest", "--data", HOUR, "--model", str(tmp_path / "nope"), "--start", "10:10",
                 "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sim_vs_real_with_the_model(tick_run):
    from lobworld.scenarios import sim_vs_real as svr

    cfg = svr.SimVsRealConfig(first="10:05", last_end="10:15", horizon_s=120, n_paths=2, quantity=300,
                              strategies=("twap",), sides=("sell",), worlds=("bar-parametric",))
    res = svr.sim_vs_real([HOUR], cfg, policy=bt.load_tick_model(tick_run)[0], tick_worlds={"tape": "replay"})
    tape = res.windows[res.windows["world"] == "tape"]
    assert set(tape["strategy"]) == {"twap", "model"} and (tape["error_bps"] == 0.0).all()
    assert set(res.windows[res.windows["world"] == "bar-parametric"]["strategy"]) == {"twap"}
    assert any("model" in n for n in res.notes)

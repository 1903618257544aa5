"""Backtests of a trained SB3 model of LOB-TickMarketMaking-v0 on the real tape (scenarios.backtest.backtest_mm_model).

A PPO trained a few hundred steps on the tick MM env's replay world (shipped GOOG hour) is backtested
with the tick MM baselines on two windows under two latency presets. The PPO's action head is then
biased to quote 100 shares two ticks inside the touch on each side (an untrained Gaussian mean sits near
size 0, which quotes nothing and would make the comparison empty); its actions still depend on the
observation through the trained network. The model's rows equal stepping the single env by hand with
``model.predict(deterministic=True)`` on the VecNormalize-normalised observations (exact); the paired
table equals a hand computation from the per-window rows; bad models and an existing --out are refused.
"""

import json
import math
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from stable_baselines3 import PPO

import lobworld  # noqa: F401  (registers the ids)
from lobworld.agents.config import TrainConfig
from lobworld.agents.training import IncompatibleModelError, MissingVecNormalizeError, train
from lobworld.cli import main
from lobworld.envs import book_kernels as bk
from lobworld.envs.tick import TickMarketMakingEnv
from lobworld.errors import LobworldError
from lobworld.scenarios import backtest as bt
from lobworld.world_models.data.lobster import sample_lobster_paths

HOUR = str(sample_lobster_paths()[0])
H = 60
KW = {"world": "replay", "horizon": H, "dt": 1.0, "latency": "cloud"}
STARTS = ["2012-06-21T10:10", "2012-06-21T10:31:30"]
LATS = ("colocated", "retail")
BASELINES = ("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal")


@pytest.fixture(scope="module")
def mm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mm_run") / "run"
    cfg = TrainConfig(env_id=bt.TICK_MM_ENV, timesteps=256, n_envs=4, n_steps=32, batch_size=64, n_epochs=2,
                      checkpoint_freq=0, eval_freq=0, progress_bar=False, device="cpu", env_kwargs=KW, normalize=True)
    res = train(cfg, out)
    assert res.vecnormalize_path is not None
    model = PPO.load(str(out / "model.zip"), device="cpu")
    with torch.no_grad():  # quote: levels -2 (inside the touch), sizes 100, keep flags off
        model.policy.action_net.bias[:] = torch.tensor([-2.0, -2.0, 100.0, 100.0, -1.0, -1.0])
    model.save(str(out / "model.zip"))
    return out


@pytest.fixture(scope="module")
def result(mm_run):
    return bt.backtest_mm_model(mm_run, HOUR, [bt.parse_time(s) for s in STARTS], baselines=BASELINES,
                                latencies=LATS)


def _by_hand(run, start, latency, seed=0, world="replay"):
    """Step the single tick MM env on the tape (or in ``world``) with model.predict (VecNormalize
    statistics applied)."""
    model = PPO.load(str(run / "model.zip"), device="cpu")
    with open(run / "vecnormalize.pkl", "rb") as fh:
        vn = pickle.load(fh)
    env = TickMarketMakingEnv(data=HOUR, world=world, start=start, horizon=H, dt=1.0, latency=latency,
                              max_fills=4096)
    obs, _ = env.reset(seed=seed)
    inv = [0]
    for _ in range(H):
        a, _ = model.predict(vn.normalize_obs(obs[None, :]).astype(np.float32), deterministic=True)
        obs, _, term, trunc, info = env.step(a[0])
        inv.append(int(env.core.book.acct[0, bk.A_POS]))
        if term or trunc:
            return info, inv, env.core.book.fill_log(0)
    raise AssertionError("the episode did not end at its horizon")


def test_model_backtest_on_the_tape_equals_stepping_by_hand(mm_run, result):
    tab = result.table
    assert result.trained_on.startswith(bt.TICK_MM_ENV)
    assert result.env_kwargs["horizon"] == H and result.env_kwargs["dt"] == 1.0
    assert list(tab["strategy"].unique()) == ["model", *BASELINES]
    assert len(tab) == len(STARTS) * len(LATS) * (1 + len(BASELINES))
    model_rows = tab[tab["strategy"] == "model"]
    assert model_rows["fills"].sum() > 0  # the model quotes and is filled on the tape
    assert (model_rows["passive_shares"] > 0).any() and (tab["latency"] == "retail").any()
    for text in ("10:10", "10:31:30"):
        for lat in LATS:
            info, inv, fl = _by_hand(mm_run, text, lat)
            start = pd.Timestamp(bt.parse_time(f"2012-06-21T{text}"), tz="UTC").tz_convert(bt.TZ)
            row = model_rows[(model_rows["start"] == start) & (model_rows["latency"] == lat)].iloc[0]
            for key in ("pnl", "fills", "filled_shares_bid", "filled_shares_ask", "inventory_terminal",
                        "inventory_max_abs", "passive_shares", "aggressive_shares", "sharpe_per_step",
                        "episode_length"):
                assert row[key] == info[key], (text, lat, key)  # exact
            if info["passive_shares"] > 0:
                assert row["adverse_selection_ticks"] == info["adverse_selection_ticks"]
                assert row["queue_wait_s"] == info["queue_wait_s"]
            assert row["bid_fills"] == int(np.sum(fl[:, bk.F_SIDE] == bk.BID))
            assert row["ask_fills"] == int(np.sum(fl[:, bk.F_SIDE] == bk.ASK))
            path = result.paths[(start, lat, "model")]
            assert path["inventory"].tolist() == inv  # the inventory path, decision by decision
            assert path["t_s"].iloc[-1] == pytest.approx(H)
            assert path["pnl"].iloc[-1] == pytest.approx(info["pnl"], abs=1e-9)


def test_fill_accounting_and_markouts(result):
    """Conservation and the tape markout recomputed from the fill log of one baseline row."""
    tab = result.table
    assert (tab["filled_shares_bid"] - tab["filled_shares_ask"] == tab["inventory_terminal"]).all()
    assert (tab["bid_fills"] + tab["ask_fills"] == tab["fills_logged"]).all()
    assert (tab["fills_logged"] == tab["fills"]).all()  # max_fills=4096 keeps every fill of these windows
    assert (tab["inventory_max_abs"] >= tab["inventory_terminal"].abs()).all()
    none = tab["fills"] == 0
    assert tab.loc[none, "adverse_1s_ticks"].isna().all() and tab.loc[none, "queue_wait_s"].isna().all()


def test_paired_table_equals_hand_computation(result):
    tab, pr = result.table, result.paired
    for lat in LATS:
        g = tab[tab["latency"] == lat]
        m = g[g["strategy"] == "model"].set_index("start")["pnl"]
        for b in BASELINES:
            v = g[g["strategy"] == b].set_index("start")["pnl"]
            d = (m - v.reindex(m.index)).to_numpy()
            n = len(d)
            assert n == 2
            mean = (d[0] + d[1]) / 2
            sd = math.sqrt(((d[0] - mean) ** 2 + (d[1] - mean) ** 2) / (n - 1))
            half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)  # 12.706 sd / sqrt(2)
            row = pr[(pr["latency"] == lat) & (pr["metric"] == "pnl") & (pr["baseline"] == b)].iloc[0]
            assert row["windows"] == 2
            assert row["diff"] == pytest.approx(mean, abs=1e-12)
            assert row["ci95_half"] == pytest.approx(half, rel=1e-12)
            assert row["model_mean"] == pytest.approx(m.mean(), abs=1e-12)
            assert row["baseline_mean"] == pytest.approx(v.mean(), abs=1e-12)
    lt = result.latency_table.set_index(["strategy", "latency"])
    for s in ("model", *BASELINES):
        a = tab[(tab["strategy"] == s) & (tab["latency"] == "colocated")].set_index("start")["pnl"]
        r = tab[(tab["strategy"] == s) & (tab["latency"] == "retail")].set_index("start")["pnl"]
        assert lt.loc[(s, "retail"), "diff_vs_base"] == pytest.approx(float((r - a).mean()), abs=1e-12)
    summ = result.summary.set_index(["strategy", "latency"])
    g = tab[(tab["strategy"] == "fixed-spread") & (tab["latency"] == "retail")]["pnl"]
    assert summ.loc[("fixed-spread", "retail"), "pnl"] == pytest.approx(g.mean(), abs=1e-12)
    assert summ.loc[("fixed-spread", "retail"), "pnl_sd"] == pytest.approx(g.std(ddof=1), abs=1e-12)


def _copy(run, dst, files=("model.zip", "lobworld_run.json", "vecnormalize.pkl")):
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(run / f, dst / f)
    return dst


def _edit_record(folder, edit):
    p = folder / "lobworld_run.json"
    rec = json.loads(p.read_text())
    edit(rec)
    p.write_text(json.dumps(rec))


def test_model_of_another_env_id_is_refused(mm_run, tmp_path):
    other = _copy(mm_run, tmp_path / "other")

    def to_bar(rec):
        rec["env"]["id"] = rec["config"]["env_id"] = "LOB-MarketMaking-v0"

    _edit_record(other, to_bar)
    with pytest.raises(bt.ModelEnvError, match="trained on LOB-MarketMaking-v0") as exc:
        bt.backtest_mm_model(other, HOUR, [bt.parse_time(STARTS[0])])
    assert isinstance(exc.value, LobworldError)
    # the command reads the id from the record and refuses it too (naming it), before writing anything
    out = tmp_path / "out_other"
    assert main(["backtest", "--data", HOUR, "--model", str(other), "--start", "10:10", "--out", str(out)]) == 2
    assert not out.exists()


def test_cli_env_disagreeing_with_the_record_is_refused(mm_run, tmp_path, capsys):
    assert main(["backtest", "--data", HOUR, "--model", str(mm_run), "--env", bt.TICK_EXEC_ENV, "--start", "10:10",
                 "--out", str(tmp_path / "o")]) == 2
    assert f"was trained on {bt.TICK_MM_ENV}" in capsys.readouterr().err


def test_model_with_other_spaces_is_refused(mm_run, tmp_path):
    odd = _copy(mm_run, tmp_path / "odd")

    def fewer_levels(rec):
        rec["config"]["env_kwargs"]["obs_levels"] = 3  # the env would observe 20 columns; the model takes 24

    _edit_record(odd, fewer_levels)
    with pytest.raises(IncompatibleModelError, match="observation space"):
        bt.backtest_mm_model(odd, HOUR, [bt.parse_time(STARTS[0])])


def test_missing_vecnormalize_is_refused(mm_run, tmp_path):
    bare = _copy(mm_run, tmp_path / "bare", files=("model.zip", "lobworld_run.json"))
    with pytest.raises(MissingVecNormalizeError, match="vecnormalize.pkl"):
        bt.backtest_mm_model(bare, HOUR, [bt.parse_time(STARTS[0])])


def test_cli_backtest_mm_model(mm_run, result, tmp_path, capsys):
    out = tmp_path / "bt"
    argv = ["backtest", "--data", HOUR, "--model", str(mm_run), "--strategy", ",".join(BASELINES),
            "--start", "10:10,10:31:30", "--latency", ",".join(LATS), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["env"] == bt.TICK_MM_ENV and res["latency"] == list(LATS)
    assert [r["strategy"] for r in res["results"]] == result.table["strategy"].tolist()
    assert [r["pnl"] for r in res["results"]] == result.table["pnl"].tolist()  # deterministic: same numbers
    assert (out / "plots" / "window_101000_colocated.png").stat().st_size > 0
    assert (out / "plots" / "window_101000_retail.png").stat().st_size > 0
    csv = pd.read_csv(out / "paired.csv")
    assert set(csv["baseline"]) == set(BASELINES) and "pnl" in set(csv["metric"])
    assert "PnL paired per window" in (out / "report.md").read_text()
    # an existing --out is refused, naming the folder, and left as it was
    before = sorted(p.name for p in out.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and str(out) in err
    assert sorted(p.name for p in out.iterdir()) == before
    # a flag of the execution path is refused for a market-making model
    assert main(["backtest", "--data", HOUR, "--model", str(mm_run), "--start", "10:10", "--quantity", "100",
                 "--out", str(tmp_path / "q")]) == 2
    assert "--quantity does not apply" in capsys.readouterr().err


def test_model_backtest_in_the_learned_world_runs_common_random_numbers(mm_run):
    """world="learned", 2 paths: path p of the model equals the single env seeded ``seed + p`` stepped
    by hand (exact), the two paths differ, the tape markouts are NaN, the paired table averages the
    paths of a window, and a second call gives the same table (deterministic)."""
    start = bt.parse_time(STARTS[0])
    res = bt.backtest_mm_model(mm_run, HOUR, [start], baselines=("fixed-spread",), latencies=("colocated",),
                               world="learned", n_paths=2, seed=5)
    tab = res.table
    assert res.env_kwargs["world"] == "learned"
    assert tab["path"].tolist() == [0, 0, 1, 1] and tab["seed"].tolist() == [5, 5, 6, 6]
    assert tab["adverse_1s_ticks"].isna().all() and tab["adverse_10s_ticks"].isna().all()
    m = tab[tab["strategy"] == "model"].set_index("path")
    for p in (0, 1):
        info, _, _ = _by_hand(mm_run, "10:10", "colocated", seed=5 + p, world="learned")
        for key in ("pnl", "fills", "filled_shares_bid", "filled_shares_ask", "inventory_terminal", "sharpe_per_step"):
            assert m.loc[p, key] == info[key], (p, key)
    assert m.loc[0, "pnl"] != m.loc[1, "pnl"] or m.loc[0, "fills"] != m.loc[1, "fills"]
    # the paired table averages the two paths of the window before pairing
    row = res.paired[(res.paired["metric"] == "pnl") & (res.paired["baseline"] == "fixed-spread")].iloc[0]
    fs = tab[tab["strategy"] == "fixed-spread"]["pnl"].mean()
    assert row["windows"] == 1 and row["diff"] == pytest.approx(m["pnl"].mean() - fs, abs=1e-12)
    again = bt.backtest_mm_model(mm_run, HOUR, [start], baselines=("fixed-spread",), latencies=("colocated",),
                                 world="learned", n_paths=2, seed=5).table
    pd.testing.assert_frame_equal(again, tab)


def test_generated_world_arguments_are_checked(mm_run):
    start = [bt.parse_time(STARTS[0])]
    with pytest.raises(bt.BacktestError, match="world: unknown tick world 'lerned'"):
        bt.backtest_mm_model(mm_run, HOUR, start, world="lerned")
    with pytest.raises(bt.BacktestError, match="paths must be an int >= 1, got 0"):
        bt.backtest_mm_model(mm_run, HOUR, start, world="learned", n_paths=0)
    with pytest.raises(bt.BacktestError, match="the tape has one path per window"):
        bt.backtest_mm_model(mm_run, HOUR, start, n_paths=2)


def test_cli_backtest_mm_model_in_the_learned_world(mm_run, tmp_path, capsys):
    """--world learned --paths 2 writes the same rows as backtest_mm_model(world="learned", n_paths=2)."""
    out = tmp_path / "bt_world"
    argv = ["backtest", "--data", HOUR, "--model", str(mm_run), "--strategy", "fixed-spread", "--start", "10:10",
            "--latency", "colocated", "--world", "learned", "--paths", "2", "--seed", "5", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["env_kwargs"]["world"] == "learned"
    want = bt.backtest_mm_model(mm_run, HOUR, [bt.parse_time(STARTS[0])], baselines=("fixed-spread",),
                                latencies=("colocated",), world="learned", n_paths=2, seed=5).table
    assert [r["path"] for r in res["results"]] == want["path"].tolist() == [0, 0, 1, 1]
    assert [r["pnl"] for r in res["results"]] == want["pnl"].tolist()
    report = (out / "report.md").read_text()
    assert "in the learned tick world" in report and "2 paths per window" in report
    assert (out / "plots" / "window_101000_colocated.png").stat().st_size > 0


@pytest.mark.parametrize("extra, message", [
    (["--paths", "3"], "the tape has one path per window"),
    (["--world", "learned", "--paths", "0"], "--paths must be >= 1, got 0"),
])
def test_cli_world_and_paths_are_checked_for_a_mm_model(mm_run, tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    assert main(["backtest", "--data", HOUR, "--model", str(mm_run), "--start", "10:10", "--out", str(out),
                 *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_world_is_refused_outside_a_mm_model(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["backtest", "--data", HOUR, "--strategy", "twap", "--start", "10:10", "--world", "learned",
                 "--out", str(out)]) == 2
    assert "--world applies to a LOB-TickMarketMaking-v0 model" in capsys.readouterr().err
    assert main(["backtest", "--data", HOUR, "--strategy", "twap", "--start", "10:10", "--paths", "4",
                 "--out", str(out)]) == 2
    assert "a strategy backtest has one path" in capsys.readouterr().err
    assert not out.exists()

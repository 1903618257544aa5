"""benchmarks/tick_ppo_seeds.py: the per-seed rows and the across-seed summary of the tick PPO study.

A tiny study (2 seeds x 256 PPO steps on the parametric tick world of the shipped GOOG hour, 30 s
episodes, two held-out windows) runs once; the tests check that the seeds differ, that a seed
reproduces bit for bit, and that the summary's means and t intervals are the hand computation
from the per-seed rows. ``seed_metrics`` and ``crop_lobster`` are checked on hand-made inputs.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pandas as pd
import pytest

from lobworld.world_models.data.lobster import sample_lobster_paths

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tick_ppo_seeds", ROOT / "benchmarks" / "tick_ppo_seeds.py")
T = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("tick_ppo_seeds", T)  # dataclasses look their module up there
_spec.loader.exec_module(T)

MSG = sample_lobster_paths()[0]  # GOOG 2012-06-21 10:00-11:00, L10
WORLD = "replay"


def _tiny(seeds=(0, 1)) -> "T.StudyConfig":
    return T.StudyConfig(assets={"GOOG": str(MSG)}, seeds=seeds, world=WORLD, timesteps=256, n_envs=4,
                         eval_freq=0, horizon=30, split="10:40", eval_starts=("10:45", "10:50"), eval_paths=2,
                         baselines=("twap", "aggressive", "passive_first"),
                         train_overrides={"n_steps": 32, "batch_size": 64, "n_epochs": 2})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("study")
    rows = T.run_study(_tiny(), base / "a", log=lambda s: None)
    again = T.run_study(_tiny(seeds=(0,)), base / "b", log=lambda s: None)
    return base, rows, again


def test_crop_keeps_only_the_rows_before_the_split(tmp_path):
    out = T.crop_lobster(MSG, tmp_path, "10:40")
    assert out.name == "GOOG_2012-06-21_36000000_38400000_message_10.csv"
    t = pd.read_csv(out, header=None)[0].to_numpy()
    full = pd.read_csv(MSG, header=None)[0].to_numpy()
    assert t.max() < 10 * 3600 + 40 * 60 and len(t) == int((full < 38400).sum())
    ob = pd.read_csv(out.with_name(out.name.replace("message", "orderbook")), header=None)
    assert len(ob) == len(t) and ob.shape[1] == 40


def test_seeds_differ_and_a_seed_reproduces_bit_for_bit(study):
    base, rows, again = study
    w0, w1 = (pd.read_csv(base / "a" / "GOOG" / f"seed{s}" / "world.csv") for s in (0, 1))
    m0, m1 = (w[w.strategy == "model"].shortfall_bps.to_numpy() for w in (w0, w1))
    assert not np.array_equal(m0, m1)  # different training seeds, different policies
    # the baselines meet the same paths whatever the training seed (common random numbers)
    b0, b1 = (w[w.strategy != "model"].drop(columns="seed").reset_index(drop=True) for w in (w0, w1))
    pd.testing.assert_frame_equal(b0, b1)
    for name in ("world.csv", "tape.csv"):
        a = (base / "a" / "GOOG" / "seed0" / name).read_bytes()
        b = (base / "b" / "GOOG" / "seed0" / name).read_bytes()
        assert a == b, name
    r0 = rows[rows.seed == 0].drop(columns=["train_s", "eval_s"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(r0, again.drop(columns=["train_s", "eval_s"]).reset_index(drop=True))


def test_summary_is_the_hand_computation_from_the_rows(study):
    _, rows, _ = study
    summ = {(s["asset"], s["eval_world"], s["metric"]): s for s in T.summarize(rows)}
    t975_1 = 12.706204736174707  # Student t quantile 0.975 with 1 degree of freedom (2 seeds)
    for ev in ("world", "tape"):
        g = rows[rows.eval_world == ev].sort_values("seed")
        for metric in ("shortfall_bps", "minus_twap_bps", "unfilled_shares", "reward"):
            a, b = g[metric].to_numpy()
            s = summ[("GOOG", ev, metric)]
            assert s["seeds"] == 2
            assert s["mean"] == pytest.approx((a + b) / 2, abs=1e-12)
            half = t975_1 * abs(a - b) / 2  # t * (|a - b| / sqrt 2) / sqrt 2
            assert s["ci_lo"] == pytest.approx((a + b) / 2 - half, abs=1e-9)
            assert s["ci_hi"] == pytest.approx((a + b) / 2 + half, abs=1e-9)
            assert (s["min"], s["max"]) == (min(a, b), max(a, b))
        assert summ[("GOOG", ev, "reward")]["mean"] == pytest.approx(-summ[("GOOG", ev, "shortfall_bps")]["mean"])
    w = rows[rows.eval_world == "world"].sort_values("seed").shortfall_bps.to_numpy()
    tp = rows[rows.eval_world == "tape"].sort_values("seed").shortfall_bps.to_numpy()
    assert summ[("GOOG", "world", "world_minus_tape_bps")]["mean"] == pytest.approx(np.mean(w - tp), abs=1e-12)
    md = (study[0] / "a" / "summary.md").read_text()
    assert "| mean (95% CI) |" in md and "### GOOG, world" in md and "### GOOG, tape" in md
    assert "| twap |" in md  # the baseline table
    T.rebuild_summary(study[0] / "a")  # from seeds.csv alone: the same summary
    assert (study[0] / "a" / "summary.md").read_text() == md


def test_baseline_table_by_hand():
    w = pd.DataFrame(dict(strategy=["twap", "twap", "model", "model"], shortfall_bps=[2.0, 4.0, 1.0, 2.0],
                          forced_shares=[0, 0, 10, 30], passive_shares=[0, 0, 5, 5]))
    t = pd.DataFrame(dict(strategy=["twap", "model"], shortfall_bps=[1.0, 5.0], forced_shares=[0, 100],
                          passive_shares=[0, 7]))
    tab = T.baseline_table(w, t).set_index("strategy")
    assert tab.loc["twap", "world_minus_tape_bps"] == 2.0 and tab.loc["model", "world_minus_tape_bps"] == -3.5
    assert tab.loc["model", "world_unfilled"] == 20.0 and tab.loc["model", "tape_unfilled"] == 100.0


def test_seed_metrics_by_hand():
    rows = []
    for start in ("a", "b"):
        for s, sf, forced in (("model", 1.0, 100), ("twap", 3.0, 0), ("passive_first", 2.0, 0)):
            sf2 = sf + (1.0 if start == "b" else 0.0)
            rows.append(dict(start=start, path=0, strategy=s, shortfall_bps=sf2, episode_return=-sf2,
                             forced_shares=forced, arrival_price=500.0, shares_executed=1000, passive_fills=3,
                             aggressive_fills=1, passive_shares=600, aggressive_shares=300, completion=1.0))
    m = T.seed_metrics(pd.DataFrame(rows))
    assert m["shortfall_bps"] == 1.5 and m["reward"] == -1.5
    assert m["minus_twap_bps"] == -2.0 and m["best_baseline"] == "passive_first" and m["minus_best_bps"] == -1.0
    assert m["pnl_usd"] == pytest.approx(-1.5e-4 * 500.0 * 1000)  # -75 USD
    assert m["unfilled_shares"] == 100 and m["twap_bps"] == 3.5 and m["episodes"] == 2


def test_t_ci_matches_scipy_free_closed_form():
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    m, lo, hi = T.t_ci(x)
    half = 2.7764451051977987 * x.std(ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert (m, lo, hi) == pytest.approx((5.0, 5.0 - half, 5.0 + half))

"""Counterfactual evaluation: pairing, closed forms, bootstrap coverage, errors, history conditioning."""

import json
import math

import numpy as np
import pytest

from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
from lobworld.scenarios.counterfactual import (
    StrategyError,
    condition_on_history,
    mean_ci,
    paired_bootstrap_ci,
    run_counterfactual,
    run_scenarios,
)
from lobworld.scenarios.presets import REGIMES, get_regime, regime_env_kwargs

ENV = "LOB-Execution-v0"
SMALL = dict(quantity=1000.0, horizon=10, dynamics="parametric")  # the registered id defaults to learned


def _kw(**params):
    return {**SMALL, "dynamics": ParametricDynamics(ParametricParams(**params))}


def test_paths_are_paired_without_impact():
    # zero permanent impact: the agent cannot move the mid, so every strategy sees the same mid path
    res = run_counterfactual(ENV, ["const:0.1", "const:0.5"], n_paths=64, seed=3, env_kwargs=_kw(gamma=0.0),
                             record=64, n_boot=100)
    m1 = res.paths["const:0.1"].trajectories["mid"]
    m2 = res.paths["const:0.5"].trajectories["mid"]
    both = ~np.isnan(m1) & ~np.isnan(m2)
    assert both[:, 1:].sum() > 64  # several steps compared on every path
    np.testing.assert_array_equal(m1[both], m2[both])
    # and the paths differ across seeds (the comparison is not vacuous)
    assert not np.allclose(m1[0, 1:4], m1[1, 1:4])


def test_permanent_impact_separates_mid_paths():
    # with permanent impact gamma the faster seller pushes the mid down: same shocks, lower mid
    res = run_counterfactual(ENV, ["const:0.1", "const:0.5"], n_paths=8, seed=3, env_kwargs=_kw(gamma=1e-3),
                             record=8, n_boot=100)
    m1 = res.paths["const:0.1"].trajectories["mid"][:, 1]
    m2 = res.paths["const:0.5"].trajectories["mid"][:, 1]
    # step 1 trade: 0.1 * 1000 vs 0.5 * 1000 shares sold; mid difference = gamma * 400 exactly
    np.testing.assert_allclose(m1 - m2, 1e-3 * 400, rtol=1e-9)


def test_immediate_liquidation_closed_form():
    # const:1.0 sells Q at the first step at mid - spread/2 - eta*Q/dt: shortfall is deterministic
    p = ParametricParams()
    res = run_counterfactual(ENV, ["const:1.0"], n_paths=16, seed=0, env_kwargs=_kw(), n_boot=100)
    s = res.summaries["const:1.0"]
    want = (p.spread / 2 + p.eta * 1000.0 / 60.0) / p.s0 * 1e4
    assert s.mean == pytest.approx(want, rel=1e-9)
    assert s.std == pytest.approx(0.0, abs=1e-9)
    assert s.completion_rate == 1.0
    assert res.metric == "shortfall_bps" and res.lower_is_better


def test_same_seed_same_numbers_other_seed_differs():
    a = run_counterfactual(ENV, ["const:0.2", "const:0.3"], n_paths=50, seed=7, env_kwargs=SMALL, n_boot=200)
    b = run_counterfactual(ENV, ["const:0.2", "const:0.3"], n_paths=50, seed=7, env_kwargs=SMALL, n_boot=200)
    c = run_counterfactual(ENV, ["const:0.2", "const:0.3"], n_paths=50, seed=8, env_kwargs=SMALL, n_boot=200)
    assert a.to_dict() == b.to_dict()
    assert a.summaries["const:0.2"].mean != c.summaries["const:0.2"].mean


def test_paired_difference_matches_path_differences():
    res = run_counterfactual(ENV, ["const:0.2", "const:0.3"], n_paths=300, seed=1, env_kwargs=SMALL, n_boot=500)
    d = res.paths["const:0.3"].infos["shortfall_bps"] - res.paths["const:0.2"].infos["shortfall_bps"]
    s = res.summaries["const:0.3"]
    assert s.diff_mean == pytest.approx(d.mean(), rel=1e-12)
    lo, hi = s.diff_ci95
    assert lo < d.mean() < hi
    # pairing removes the common market noise: the paired CI is much narrower than an unpaired one
    unpaired_half = 1.96 * math.sqrt(res.summaries["const:0.3"].std ** 2 / 300 + res.summaries["const:0.2"].std ** 2 / 300)
    assert (hi - lo) / 2 < 0.5 * unpaired_half


def test_paired_bootstrap_ci_covers_known_mean():
    rng = np.random.default_rng(123)
    true = 0.7
    hits = 0
    reps = 200
    for r in range(reps):
        common = rng.standard_normal(200) * 5.0  # shared noise, cancels in the pairing
        a = common + true + rng.standard_normal(200)
        b = common + rng.standard_normal(200) * 0.5
        m, lo, hi = paired_bootstrap_ci(a, b, n_boot=400, rng=r)
        hits += lo <= true <= hi
    assert 0.90 <= hits / reps <= 0.99


def test_mean_ci_covers_known_mean():
    rng = np.random.default_rng(5)
    hits = sum(lo <= 2.0 <= hi for lo, hi in (mean_ci(rng.exponential(2.0, 400)) for _ in range(300)))
    assert 0.91 <= hits / 300 <= 0.98


def test_paired_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_ci(np.zeros(5), np.zeros(4))


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(StrategyError, match="unknown strategy 'nonsense'"):
        run_counterfactual(ENV, ["nonsense"], n_paths=4, env_kwargs=SMALL)
    with pytest.raises(StrategyError, match="const:X needs a number"):
        run_counterfactual(ENV, ["const:abc"], n_paths=4, env_kwargs=SMALL)
    with pytest.raises(StrategyError, match="benchmark 'twap' is not among"):
        run_counterfactual(ENV, ["const:0.5"], n_paths=4, env_kwargs=SMALL, benchmark="twap")
    with pytest.raises(ValueError, match="unknown scenario 'stormy'"):
        run_counterfactual(ENV, ["const:0.5"], n_paths=4, env_kwargs=SMALL, scenario="stormy")


def test_out_of_space_strategy_is_a_clear_error():
    from lobworld.envs.core import ActionError

    with pytest.raises(ActionError, match="outside the action space"):
        run_counterfactual(ENV, ["const:2.0"], n_paths=4, env_kwargs=SMALL)


def test_regime_presets_transform_parameters():
    p = ParametricParams()
    v = get_regime("volatile").apply(p)
    assert v.sigma == pytest.approx(2 * p.sigma) and v.spread == pytest.approx(1.5 * p.spread)
    assert v.eta == pytest.approx(1.5 * p.eta) and v.gamma == pytest.approx(1.5 * p.gamma)
    t = get_regime("trending").apply(p)
    assert t.mu * 3600 / p.s0 * 1e4 == pytest.approx(-50.0)
    assert get_regime("normal").apply(p) == p
    assert set(REGIMES) >= {"calm", "normal", "volatile", "illiquid", "trending"}
    kw = regime_env_kwargs("illiquid", {"quantity": 5.0})
    assert kw["quantity"] == 5.0 and kw["dynamics"].params.volume_rate == pytest.approx(0.3 * p.volume_rate)


def test_regime_changes_the_outcome_in_the_expected_direction():
    res = run_scenarios(["calm", "volatile"], env_id=ENV, strategies=["const:0.2"], n_paths=200, seed=0,
                        env_kwargs=SMALL, n_boot=100)
    assert res["volatile"].summaries["const:0.2"].std > 1.5 * res["calm"].summaries["const:0.2"].std


def test_run_scenarios_in_process_equals_direct_runs():
    kw = dict(env_id=ENV, strategies=["const:0.3", "const:0.1"], n_paths=40, seed=2, env_kwargs=SMALL, n_boot=100)
    many = run_scenarios(["normal", "illiquid"], **kw)
    assert many["illiquid"].to_dict() == run_counterfactual(scenario="illiquid", **kw).to_dict()


def test_ray_path_needs_ray(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(ValueError, match="needs the 'ray' package"):
        run_scenarios(["normal"], use_ray=True, env_id=ENV, strategies=["const:0.5"], n_paths=4,
                      env_kwargs=SMALL)


@pytest.mark.slow  # starts Ray and two workers that each compile the execution kernels (~1 min on 2 cores)
def test_ray_gives_identical_results():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    kw = dict(env_id=ENV, strategies=["const:0.3", "twap"], n_paths=40, seed=2, env_kwargs=SMALL, n_boot=100,
              record=5)
    local = run_scenarios(["normal", "illiquid"], **kw)
    remote = run_scenarios(["normal", "illiquid"], use_ray=True, ray_num_cpus=2, **kw)
    for sc in ("normal", "illiquid"):
        assert remote[sc].to_dict() == local[sc].to_dict()
        for name in kw["strategies"]:
            np.testing.assert_array_equal(remote[sc].paths[name].infos["shortfall_bps"],
                                          local[sc].paths[name].infos["shortfall_bps"])
    assert remote["illiquid"].summaries["twap"].mean != remote["normal"].summaries["twap"].mean
    assert not ray.is_initialized()  # started for the call, shut down after it


def test_toy_env_one_episode_per_path():
    import gymnasium as gym

    if "LOB-Toy-v0" not in gym.registry:
        gym.register(id="LOB-Toy-v0", entry_point="toy_core:ToyEnv", vector_entry_point="toy_core:ToyVectorEnv")
    res = run_counterfactual("LOB-Toy-v0", ["const:0.0", "const:1.0"], n_paths=32, seed=0, n_boot=100)
    # reward = action; the toy env has no shortfall/pnl: the metric is the episode return
    assert res.metric == "episode_return"
    assert res.summaries["const:0.0"].mean == 0.0
    lengths = res.paths["const:1.0"].infos["episode_length"]
    np.testing.assert_array_equal(res.paths["const:1.0"].episode_return, lengths * 1.0)
    assert res.summaries["const:0.0"].completion_rate is None


def test_condition_on_history_matches_the_book():
    import pandas as pd

    from lobworld.world_models.data import load_lobster, sample_lobster_paths

    msg, _ = sample_lobster_paths()
    params, info = condition_on_history(msg, "2012-06-21T10:30")
    ev = load_lobster(msg)
    t0 = pd.Timestamp("2012-06-21 10:30", tz=ev["ts"].dt.tz)
    row = ev[ev["ts"] <= t0].iloc[-1]
    assert params.s0 == pytest.approx((row["bid_px_1"] + row["ask_px_1"]) / 2)
    assert params.spread == pytest.approx(row["ask_px_1"] - row["bid_px_1"])
    win = ev[(ev["ts"] <= t0) & (ev["ts"] >= ev["ts"].iloc[0])]
    traded = win.loc[win["event"].isin(["exec_visible", "exec_hidden"]), "size"].sum()
    assert params.volume_rate == pytest.approx(traded / (info["window_minutes"] * 60), rel=1e-6)
    assert 0.005 < params.sigma < 0.2  # USD per sqrt(s): a plausible GOOG volatility
    assert info["start_minute"] == pytest.approx(60.0)
    with pytest.raises(ValueError, match="outside"):
        condition_on_history(msg, "2012-06-21T15:30")
    with pytest.raises(ValueError, match="not an ISO"):
        condition_on_history(msg, "half past ten")


def test_market_making_pnl_metric_and_latency_scenario():
    import gymnasium as gym

    import lobworld  # noqa: F401

    if "LOB-MarketMaking-v0" not in gym.registry:
        pytest.skip("market-making env not available")
    base = run_counterfactual("LOB-MarketMaking-v0", ["const:1.0"], n_paths=20, seed=0, n_boot=100,
                              env_kwargs=dict(horizon=300))
    slow = run_counterfactual("LOB-MarketMaking-v0", ["const:1.0"], n_paths=20, seed=0, n_boot=100,
                              scenario="latency:retail", env_kwargs=dict(horizon=300))
    assert base.metric == "pnl" and not base.lower_is_better
    s = base.summaries["const:1.0"]
    assert s.objective == pytest.approx(-s.mean)  # R = 0: the objective of a PnL is minus its mean
    assert slow.summaries["const:1.0"].mean != s.mean  # the latency preset reached the env
    assert slow.market == "parametric, latency retail" and base.market == "parametric, latency colocated"
    with pytest.raises(ValueError, match="has no latency setting"):
        run_counterfactual("LOB-DarkPool-v0", ["uniform"], n_paths=4, scenario="latency:retail")


# ---------------------------------------------------------------------------
# baselines of every env id (lobworld.agents.baselines)
# ---------------------------------------------------------------------------
MM = "LOB-MarketMaking-v0"
MMD = "LOB-MarketMaking-Discrete-v0"
DP = "LOB-DarkPool-v0"
MM_KW = dict(horizon=120)


def _common_mid(res, a, b):
    m1 = res.paths[a].trajectories["mid"]
    m2 = res.paths[b].trajectories["mid"]
    both = ~np.isnan(m1) & ~np.isnan(m2)
    return m1, m2, both


def test_market_making_baselines_resolve_and_share_the_market_path():
    names = ["fixed-spread", "avellaneda-stoikov", "as-symmetric", "cartea-jaimungal", "random"]
    res = run_counterfactual(MM, names, n_paths=24, seed=5, env_kwargs=MM_KW, n_boot=100, record=24)
    assert res.metric == "pnl" and not res.lower_is_better and res.market == "parametric, latency colocated"
    for n in names:
        s = res.summaries[n]
        assert np.isfinite(s.mean) and s.std > 0
        assert s.secondary["filled_shares_bid"] > 0  # they quote and get filled
    # quotes do not move the mid (the dynamics are called with q = 0): the same mid path for every strategy
    m1, m2, both = _common_mid(res, "fixed-spread", "avellaneda-stoikov")
    assert both[:, 1:].sum() > 24 * 100
    np.testing.assert_array_equal(m1[both], m2[both])
    assert not np.allclose(m1[0, 1:20], m1[1, 1:20])  # and paths differ across seeds
    # the inventory-aware quotes hold less inventory than the symmetric ones on the same paths
    assert res.summaries["avellaneda-stoikov"].secondary["inventory_max_abs"] < \
        res.summaries["as-symmetric"].secondary["inventory_max_abs"]
    # parameters: a larger gamma widens the quotes, so fewer shares fill
    wide = run_counterfactual(MM, ["as:0.01", "as:1.0"], n_paths=8, seed=5, env_kwargs=MM_KW, n_boot=50)
    assert wide.summaries["as:1.0"].secondary["filled_shares_bid"] < wide.summaries["as:0.01"].secondary[
        "filled_shares_bid"]


def test_discrete_market_making_maps_quotes_to_the_grid():
    from lobworld.agents.baselines import DiscreteQuotes
    from lobworld.agents.market_making import FixedSpreadAgent

    grid = np.array([(b, a) for b in (5.0, 15.0, 30.0) for a in (5.0, 15.0, 30.0)])
    obs = np.zeros((1, 10), np.float32)
    assert DiscreteQuotes(FixedSpreadAgent(14.0, 29.0, 100.0), grid)(obs).tolist() == [1 * 3 + 2]
    assert DiscreteQuotes(FixedSpreadAgent(4.0, 6.0, 100.0), grid)(obs).tolist() == [0]
    assert DiscreteQuotes(FixedSpreadAgent(5.0, 5.0, 0.0), grid)(obs).tolist() == [9]  # size 0: cancel
    res = run_counterfactual(MMD, ["fixed-spread", "cartea-jaimungal", "random"], n_paths=16, seed=1,
                             env_kwargs=MM_KW, n_boot=50, record=16)
    assert res.metric == "pnl"
    m1, m2, both = _common_mid(res, "fixed-spread", "cartea-jaimungal")
    np.testing.assert_array_equal(m1[both], m2[both])


def test_random_baseline_is_seeded_by_the_run():
    a = run_counterfactual(MM, ["random"], n_paths=6, seed=3, env_kwargs=MM_KW, n_boot=50)
    b = run_counterfactual(MM, ["random"], n_paths=6, seed=3, env_kwargs=MM_KW, n_boot=50)
    c = run_counterfactual(MM, ["random:99"], n_paths=6, seed=3, env_kwargs=MM_KW, n_boot=50)
    np.testing.assert_array_equal(a.paths["random"].infos["pnl"], b.paths["random"].infos["pnl"])
    assert not np.array_equal(a.paths["random"].infos["pnl"], c.paths["random:99"].infos["pnl"])


def test_dark_pool_baselines_cost_metric_and_paired_paths():
    from lobworld.envs.dark_pool_scenarios import get_scenario

    benign = get_scenario("stationary").replace(name="benign", toxic_prob=0.0)
    kw = dict(scenario=benign, dynamics=ParametricDynamics(ParametricParams(gamma=0.0)))
    names = ["lit-only", "uniform", "ganchev-km", "oracle"]
    res = run_counterfactual(DP, names, n_paths=200, seed=0, env_kwargs=kw, n_boot=200, record=50)
    assert res.metric == "cost_bps" and res.lower_is_better
    # no permanent impact, no toxic pool: routing does not move the mid, every strategy sees the same path
    m1, m2, both = _common_mid(res, "lit-only", "uniform")
    assert both[:, 1:].sum() > 50 * 10
    np.testing.assert_array_equal(m1[both], m2[both])
    s = res.summaries
    assert s["lit-only"].secondary["dark_fraction"] == 0.0 and "dark_fill_rate" not in s["lit-only"].secondary
    assert 0.0 < s["uniform"].secondary["dark_fill_rate"] <= 1.0
    # dark liquidity at the mid is cheaper than crossing the spread; the oracle routes best
    assert s["uniform"].mean < s["lit-only"].mean
    assert s["oracle"].mean < s["uniform"].mean
    assert s["oracle"].diff_ci95[1] < 0  # paired CI vs lit-only (the first strategy) excludes zero
    # the learner was fed its fills (it sends more to dark pools than the uniform split)
    assert s["ganchev-km"].secondary["dark_fraction"] > s["uniform"].secondary["dark_fraction"]


def test_unknown_baseline_lists_the_valid_names_for_the_env():
    with pytest.raises(StrategyError, match=r"unknown strategy 'twap' for LOB-MarketMaking-v0; valid names "
                                            r"for LOB-MarketMaking-v0: avellaneda-stoikov.*cartea-jaimungal"):
        run_counterfactual(MM, ["twap"], n_paths=2, env_kwargs=MM_KW)
    with pytest.raises(StrategyError, match=r"valid names for LOB-DarkPool-v0: uniform, lit-only, ganchev-km"):
        run_counterfactual(DP, ["avellaneda-stoikov"], n_paths=2)
    with pytest.raises(StrategyError, match=r"valid names for LOB-Execution-v0: twap, vwap"):
        run_counterfactual(ENV, ["oracle"], n_paths=2, env_kwargs=SMALL)
    with pytest.raises(StrategyError, match="as:X needs a number"):
        run_counterfactual(MM, ["as:wide"], n_paths=2, env_kwargs=MM_KW)
    with pytest.raises(StrategyError, match="fixed-spread.*max_offset"):
        run_counterfactual(MM, ["fixed-spread:500"], n_paths=2, env_kwargs=MM_KW)


def test_regime_on_the_learned_market_is_a_clear_error():
    with pytest.raises(ValueError, match="transforms the parametric market.*learned.*--dynamics parametric"):
        run_counterfactual(ENV, ["twap"], n_paths=2, env_kwargs={**SMALL, "dynamics": "learned"},
                           scenario="volatile")


def test_cli_dynamics_and_env_kwargs(capsys):
    from lobworld.cli import main

    assert main(["counterfactual", "--env", MM, "--strategies", "fixed-spread,cartea-jaimungal", "--paths", "8",
                 "--boot", "50", "--env-kwargs", '{"horizon": 60}', "--dynamics", "parametric", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["market"] == "parametric, latency colocated" and d["metric"] == "pnl"
    assert set(d["strategies"]) == {"fixed-spread", "cartea-jaimungal"}
    assert main(["evaluate", "--env", DP, "--strategy", "oracle", "--episodes", "20", "--dynamics", "parametric"]) == 0
    out = capsys.readouterr().out
    assert "oracle on LOB-DarkPool-v0 (parametric market)" in out and "cost_bps: mean" in out
    assert "mean dark_fill_rate" in out
    assert main(["counterfactual", "--strategies", "twap", "--paths", "4", "--env-kwargs", "{bad"]) == 2
    assert "--env-kwargs is not valid JSON" in capsys.readouterr().err
    assert main(["evaluate", "--env", MM, "--strategy", "vwap", "--episodes", "4"]) == 2
    assert "valid names for LOB-MarketMaking-v0" in capsys.readouterr().err


def test_train_and_evaluate_cli_record_the_market(tmp_path, capsys):
    from lobworld.cli import main

    f = tmp_path / "tiny.toml"
    f.write_text("n_steps = 8\nbatch_size = 32\nn_epochs = 1\ncheckpoint_freq = 0\neval_freq = 0\n"
                 "env_kwargs = { quantity = 500.0, horizon = 4 }\n")
    out = tmp_path / "run"
    assert main(["train", "--env", ENV, "--algo", "A2C", "--timesteps", "64", "--n-envs", "4", "--device", "cpu",
                 "--config", str(f), "--out", str(out), "--no-progress", "--dynamics", "parametric"]) == 0
    assert "(parametric market)" in capsys.readouterr().out
    meta = json.loads((out / "lobworld_run.json").read_text())
    assert meta["dynamics"] == "parametric"
    assert meta["config"]["env_kwargs"] == {"quantity": 500.0, "horizon": 4, "dynamics": "parametric"}
    # evaluate --model runs on the market the model was trained on (not the id's learned default)
    assert main(["evaluate", "--env", ENV, "--model", str(out / "model.zip"), "--episodes", "8"]) == 0
    assert f"model.zip on {ENV} (parametric market)" in capsys.readouterr().out


@pytest.mark.parametrize("env_id, kw, strategies", [
    (ENV, SMALL, ["twap", "aggressive"]),
    ("LOB-MarketMaking-v0", dict(horizon=40), ["avellaneda-stoikov", "fixed-spread"]),
    ("LOB-DarkPool-v0", dict(horizon=8), ["uniform", "lit-only"])])
def test_episode_counts_reach_the_progress_callback_and_infos_equal_episode_info(env_id, kw, strategies):
    """``on_episodes`` gets every ended episode once (per strategy); the per-path infos gathered
    through the family's EpisodeStats table equal the single env's ``episode_info`` of each path."""
    import gymnasium as gym

    from lobworld.envs.core import make_sb3_vec_env
    from lobworld.scenarios.counterfactual import resolve_strategy, simulate

    counts: list[int] = []
    res = run_counterfactual(env_id, strategies, n_paths=24, seed=5, env_kwargs=kw, n_boot=50,
                             on_episodes=counts.append)
    assert sum(counts) == 24 * len(strategies) and all(c > 0 for c in counts)
    # one strategy again, with the reference per-env path of episode_info
    core = make_sb3_vec_env(env_id, 24, **kw).core
    policy = resolve_strategy(strategies[0], env_id, core, seed=5)
    cols = simulate(env_id, policy, 24, 5, core=core).infos
    env = gym.make(env_id, **kw)
    for i in (0, 7, 23):
        obs, _ = env.reset(seed=5 + i)
        single = resolve_strategy(strategies[0], env_id, env.unwrapped.core, seed=5)
        done, info = False, {}
        while not done:
            obs, _, te, tr, info = env.step(np.asarray(single(obs[None]))[0])
            done = te or tr
        for k, v in info.items():
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float)):
                continue
            np.testing.assert_equal(cols[k][i], float(v), err_msg=f"{env_id} path {i} {k}")
    assert res.summaries[strategies[0]].n_paths == 24

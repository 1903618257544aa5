"""Learned bar dynamics: torch/Numba parity, checkpoints, rollouts, impact pricing, training on generated data."""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from lobworld.envs.dynamics import (
    LAST_RET,
    MID,
    N_MARKET,
    PERM_IMPACT,
    SIGMA,
    SPREAD,
    TEMP_IMPACT,
    VOLUME,
    ParametricDynamics,
    ParametricParams,
)
from lobworld.envs.rng import seed_state
from lobworld.world_models.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from lobworld.world_models.dynamics_model import (
    CONTROL,
    N_FEATURES,
    AssetStats,
    BarWorldModel,
    ModelConfig,
)
from lobworld.world_models.learned import (
    DEFAULT_CHECKPOINT,
    LearnedDynamics,
    LegacyGRUImpactDynamics,
    numba_forward,
    rollout,
)
from lobworld.world_models.training import DayBars, model_from_checkpoint, train_on_days
from lobworld.world_models.training import WorldModelTrainConfig as TrainConfig
from lobworld.world_models.training import load_world_model_config as load_config

STATS = AssetStats(tick=0.01, sigma_bar=0.28, median_spread=0.28, mean_volume=1800.0, mean_count=30.0,
                   mean_depth=300.0, s0=570.0)


def random_checkpoint(seed: int = 0, cfg: ModelConfig | None = None, dt: float = 60.0) -> Checkpoint:
    torch.manual_seed(seed)
    cfg = cfg or ModelConfig(hidden=16, latent=8)
    model = BarWorldModel(cfg)
    with torch.no_grad():  # larger weights than the default init, so every nonlinearity is exercised
        for p in model.parameters():
            p.mul_(2.0)
    return Checkpoint(weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                      model_config=cfg, assets={"GOOG": STATS}, dt=dt, fingerprint={"a.csv": "00" * 32},
                      train_config={"freq": f"{int(dt)}s"}, metrics={"x": 1.0})


# ---------------------------------------------------------------------------
# torch <-> Numba parity
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("hidden,latent,level", [(16, 8, False), (24, 6, False), (16, 8, True)])
def test_numba_forward_matches_torch(hidden, latent, level):
    ck = random_checkpoint(1, ModelConfig(hidden=hidden, latent=latent, spread_level=level))
    model = model_from_checkpoint(ck)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        x = rng.normal(size=N_FEATURES).astype(np.float32)
        a = rng.normal(size=2).astype(np.float32)
        h = np.tanh(rng.normal(size=hidden)).astype(np.float32)
        with torch.no_grad():
            f, o, hn = model.step(torch.tensor(x)[None], torch.tensor(a)[None], torch.tensor(h)[None])
        nf, no, nh = numba_forward(ck, x.astype(np.float64), a.astype(np.float64), h.astype(np.float64))
        worst = max(worst, np.abs(nf - f[0].numpy()).max(), np.abs(no - o[0].numpy()).max(),
                    np.abs(nh - hn[0].numpy()).max())
    assert worst < 1e-5


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------
def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    ck = random_checkpoint(2)
    p = save_checkpoint(ck, tmp_path / "m.npz")
    back = load_checkpoint(p)
    assert set(back.weights) == set(ck.weights)
    for k, w in ck.weights.items():
        assert back.weights[k].dtype == np.float32
        assert back.weights[k].tobytes() == w.tobytes(), k
    assert back.model_config == ck.model_config
    assert back.assets == ck.assets
    assert back.dt == ck.dt and back.fingerprint == ck.fingerprint
    assert back.train_config == ck.train_config and back.metrics == ck.metrics
    # saving the loaded checkpoint again gives identical arrays
    p2 = save_checkpoint(back, tmp_path / "m2.npz")
    with np.load(p) as z1, np.load(p2) as z2:
        assert sorted(z1.files) == sorted(z2.files)
        for k in z1.files:
            assert z1[k].tobytes() == z2[k].tobytes()


def _rewrite(path, mutate):
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(bytes(data["meta"]).decode())
    data, meta = mutate(data, meta)
    if meta is not None:
        data["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **data)


def _set(d, k, v):
    d[k] = v
    return d


@pytest.mark.parametrize("case,match", [
    ("version", "format_version 99"),
    ("missing_weight", r"missing weight\(s\) \['gru.weight_hh_l0'\]"),
    ("shape", r"'head.bias' has shape \(5,\)"),
    ("nan", "'enc.bias' holds NaN"),
    ("no_meta", "no 'meta' entry"),
    ("meta_key", "meta lacks the key 'assets'"),
    ("dtype", "'enc.weight' has dtype float64"),
])
def test_corrupted_checkpoints_name_the_problem(tmp_path, case, match):
    p = save_checkpoint(random_checkpoint(3), tmp_path / "m.npz")
    muts = {
        "version": lambda d, m: (d, _set(m, "format_version", 99)),
        "missing_weight": lambda d, m: ({k: v for k, v in d.items() if k != "w/gru.weight_hh_l0"}, m),
        "shape": lambda d, m: (_set(d, "w/head.bias", np.zeros(5, np.float32)), m),
        "nan": lambda d, m: (_set(d, "w/enc.bias", np.full(8, np.nan, np.float32)), m),
        "no_meta": lambda d, m: ({k: v for k, v in d.items() if k != "meta"}, None),
        "meta_key": lambda d, m: (d, {k: v for k, v in m.items() if k != "assets"}),
        "dtype": lambda d, m: (_set(d, "w/enc.weight", d["w/enc.weight"].astype(np.float64)), m),
    }
    _rewrite(p, muts[case])
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)


def test_truncated_missing_and_mismatched_checkpoints(tmp_path):
    p = save_checkpoint(random_checkpoint(4), tmp_path / "m.npz")
    raw = p.read_bytes()
    t = tmp_path / "t.npz"
    t.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(t)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="fingerprint mismatch"):
        load_checkpoint(p, expect_fingerprint={"a.csv": "11" * 32})
    with pytest.raises(CheckpointError, match="model config"):
        load_checkpoint(p, expect_model_config=ModelConfig(hidden=32))
    assert load_checkpoint(p, expect_fingerprint={"a.csv": "00" * 32}).format_version == FORMAT_VERSION
    assert zipfile.is_zipfile(p)


# ---------------------------------------------------------------------------
# the MarketDynamics contract
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dyn():
    return LearnedDynamics(random_checkpoint(5, ModelConfig(hidden=16, latent=8)), burn_in=5)


def _fresh(dyn, seed, dt=60.0, n=1):
    args = dyn.args(n, dt)
    row = np.zeros(dyn.n_state)
    st = seed_state(seed, 1)[0]
    dyn.reset_fn(0, row, args, st)
    return args, row, st


def test_rollouts_are_seeded_and_stochastic(dyn):
    m1, v1 = rollout(dyn, 6, 30, 60.0, seed=7)
    m2, v2 = rollout(dyn, 6, 30, 60.0, seed=7)
    m3, _ = rollout(dyn, 6, 30, 60.0, seed=8)
    assert np.array_equal(m1, m2) and np.array_equal(v1, v2)
    assert not np.array_equal(m1, m3)
    assert len({tuple(np.round(m, 6)) for m in m1}) == 6  # the paths differ from each other
    assert np.all(np.isfinite(m1)) and np.all(v1 >= 0)
    # mids live on the half-tick lattice
    assert np.allclose(np.round(m1 * 200) / 200, m1, atol=1e-9)


def test_same_random_draws_whatever_q(dyn):
    args, row_a, st_a = _fresh(dyn, 3)
    row_b, st_b = row_a.copy(), st_a.copy()
    for q in (0.0, 5000.0, -123.0, 0.0):
        dyn.step_fn(0, row_a, args, st_a, 0.0, 1.0)
        dyn.step_fn(0, row_b, args, st_b, q, 1.0)
        assert np.array_equal(st_a, st_b)
    assert row_a[PERM_IMPACT] == 0.0


def test_execution_price_closed_form():
    """The legacy channel (impact="gru"): temporary cost Y sigma_step sqrt(|q| / V_step) over the half spread."""
    dyn = LegacyGRUImpactDynamics(random_checkpoint(5, ModelConfig(hidden=16, latent=8)), burn_in=5)
    args, row, st = _fresh(dyn, 11)
    Y = dyn.sqrt_y
    for q in (0.0, 300.0, -300.0, 4000.0):
        mid0, spr0 = row[MID], row[SPREAD]
        price = dyn.step_fn(0, row, args, st, q, 1.0)
        if q == 0.0:
            assert price == mid0 and row[TEMP_IMPACT] == 0.0
            continue
        temp = Y * row[SIGMA] * math.sqrt(60.0) * math.sqrt(abs(q) / max(row[VOLUME], 1.0))
        assert row[TEMP_IMPACT] == pytest.approx(temp, rel=1e-12)
        assert price == pytest.approx(mid0 + math.copysign(1.0, q) * (0.5 * spr0 + temp), rel=1e-14)
        assert row[SPREAD] >= 0.01 and row[SIGMA] > 0
        assert row[MID] == pytest.approx(mid0 + row[LAST_RET], abs=1e-9)


def test_dt_must_be_a_multiple_of_the_model_bar():
    d = LearnedDynamics(random_checkpoint(6, dt=10.0))
    assert d.n_substeps(60.0) == 6 and d.n_substeps(10.0) == 1
    with pytest.raises(ValueError, match="not a whole multiple"):
        d.args(4, 15.0)
    with pytest.raises(ValueError, match="not a whole multiple"):
        d.args(4, 5.0)
    with pytest.raises(ValueError, match="asset 'MSFT' not in the checkpoint"):
        LearnedDynamics(random_checkpoint(6), asset="MSFT")
    # 6 sub-steps of 10 s draw six times the random numbers of one
    args, row, st = _fresh(d, 1, dt=60.0)
    assert row.shape == (d.n_state,) and d.n_state > N_MARKET + 16


def test_shipped_checkpoint_loads():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint yet")
    d = LearnedDynamics.load_default()
    assert set(d.checkpoint.assets) >= {"GOOG", "AMZN"}
    m, v = rollout(d, 4, 20, 60.0, seed=0)
    assert np.all(np.isfinite(m)) and np.all(v >= 0)


def test_shipped_checkpoint_fingerprint_matches_shared_data(shared_data):
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint yet")
    from lobworld.world_models.checkpoint import file_fingerprint

    ck = load_checkpoint(DEFAULT_CHECKPOINT)
    files = [shared_data / "lobster" / name for name in ck.fingerprint]
    assert ck.fingerprint == file_fingerprint(files)


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------
def test_config_from_toml_and_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[train]\nfreq = "10s"\nhidden = 24\nseed = 3\n')
    c = load_config(p)
    assert (c.freq, c.hidden, c.seed, c.dt) == ("10s", 24, 3, 10.0)
    p.write_text('hiden = 3\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hiden'\]"):
        load_config(p)
    p.write_text('freq = "5min"\n')
    with pytest.raises(ValueError, match="between 1s and 1min"):
        load_config(p)
    p.write_text('burn_in = 80\n')
    with pytest.raises(ValueError, match="burn_in"):
        load_config(p)
    p.write_text('freq = [\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(p)


# ---------------------------------------------------------------------------
# training on data GENERATED by the parametric simulator
# ---------------------------------------------------------------------------
def generated_bars(n: int, dt: float, sigma: float, gamma: float, seed: int) -> pd.DataFrame:
    """GENERATED (not real) bars: ParametricDynamics with exogenous signed flow as its q."""
    params = ParametricParams(sigma=sigma, gamma=gamma, mu=0.0, spread_logsd=0.2, volume_logsd=0.5)
    pd_ = ParametricDynamics(params)
    args = pd_.args(1, dt)
    row = np.zeros(N_MARKET)
    st = seed_state(seed, 1)[0]
    pd_.reset_fn(0, row, args, st)
    rng = np.random.default_rng(seed)
    vbar = params.volume_rate * dt
    out = {k: np.empty(n) for k in ("mid", "mid_ret", "spread", "volume", "buy_volume", "sell_volume",
                                    "n_trades", "bid_sz_1", "ask_sz_1", "ofi")}
    for t in range(n):
        q = rng.normal(0.0, 0.5 * vbar)  # the market's signed aggressive volume of the bar
        pd_.step_fn(0, row, args, st, q, 1.0)
        vt = row[VOLUME] + abs(q)
        out["mid"][t] = row[MID]
        out["mid_ret"][t] = row[LAST_RET]
        out["spread"][t] = row[SPREAD]
        out["volume"][t] = vt
        out["buy_volume"][t] = 0.5 * (vt + q)
        out["sell_volume"][t] = 0.5 * (vt - q)
        out["n_trades"][t] = max(1.0, round(vt / 60.0))
        out["ofi"][t] = q  # in this generated world all order flow is aggressive
        out["bid_sz_1"][t] = rng.lognormal(5.0, 0.5)
        out["ask_sz_1"][t] = rng.lognormal(5.0, 0.5)
    idx = pd.Timestamp("2000-01-03 09:30", tz="America/New_York") + pd.to_timedelta(dt * (np.arange(n) + 1), unit="s")
    return pd.DataFrame(out, index=idx)


def test_training_on_generated_parametric_data_recovers_sigma_and_impact():
    dt, sigma, gamma = 10.0, 0.0357, 4e-4
    bars = generated_bars(2400, dt, sigma, gamma, seed=0)
    day = DayBars("GEN", bars, 0.01, [])
    cfg = TrainConfig(freq="10s", hidden=8, latent=4, n_mix=1, spread_bins=8, seq_len=24, burn_in=4, batch_size=64,
                      max_epochs=60, patience=60, lr=2e-2, test_hours=1.0, early_stop_hours=0.5,
                      tensorboard=False, progress=False, seed=0)
    ck = train_on_days([day], cfg, None)
    model = model_from_checkpoint(ck)
    st = ck.assets["GEN"]
    from lobworld.world_models.dynamics_model import bar_features

    x = torch.as_tensor(bar_features(bars, st))
    with torch.no_grad():
        _, head, _ = model(x[None, :-1], x[None, 1:, CONTROL])
        mean, var = model.ret_mean_var(head[0])
    sd_usd = float(torch.sqrt(var).mean()) * st.sigma_bar
    true_sd = sigma * math.sqrt(dt)
    assert sd_usd == pytest.approx(true_sd, rel=0.15)
    # price response to the control: slope of the predicted mean (USD) on the signed volume (shares)
    q = (bars["buy_volume"] - bars["sell_volume"]).to_numpy()[1:]
    slope = np.polyfit(q, mean.numpy() * st.sigma_bar, 1)[0]
    assert slope == pytest.approx(gamma, rel=0.25)


# ---------------------------------------------------------------------------
# CLI on the real sample hour shipped in the package (GOOG 10:00-11:00)
# ---------------------------------------------------------------------------
def test_cli_train_and_evaluate_on_the_shipped_sample_hour(tmp_path, capsys):
    from lobworld.cli import main
    from lobworld.world_models.checkpoint import file_fingerprint
    from lobworld.world_models.data import sample_lobster_paths

    msg, ob = sample_lobster_paths()
    cfg = tmp_path / "c.toml"
    cfg.write_text('freq = "10s"\ntest_hours = 0.25\nearly_stop_hours = 0.1\nseq_len = 16\nburn_in = 2\n'
                   'max_epochs = 2\nhidden = 8\nlatent = 4\nprogress = false\n')
    out = tmp_path / "run"
    assert main(["world-model", "train", "--data", str(msg), "--config", str(cfg), "--out", str(out)]) == 0
    ck = load_checkpoint(out / "model.npz", expect_fingerprint=file_fingerprint([msg, ob]))
    assert ck.dt == 10.0 and set(ck.assets) == {"GOOG"} and ck.model_config.hidden == 8
    assert any((out / "tb").iterdir())  # TensorBoard event file
    png = tmp_path / "paths.png"
    js = tmp_path / "m.json"
    assert main(["world-model", "evaluate", "--checkpoint", str(out / "model.npz"), "--data", str(msg),
                 "--plot", str(png), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["per_day"][0]["test_bars"] == 90  # 15 minutes of 10 s bars
    assert set(res["pooled"]) == {"model_given_flow", "model_forecast", "persistence", "linear_ofi", "parametric"}
    assert png.stat().st_size > 10_000
    # bad input: a missing data file is a clear CLI error, not a traceback
    assert main(["world-model", "train", "--data", str(tmp_path / "nope_message_10.csv.gz"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_training_is_reproducible_with_a_seed():
    bars = generated_bars(600, 10.0, 0.0357, 4e-4, seed=1)
    day = DayBars("GEN", bars, 0.01, [])
    cfg = TrainConfig(freq="10s", hidden=4, latent=2, n_mix=1, spread_bins=4, seq_len=16, burn_in=2,
                      batch_size=16, max_epochs=3, test_hours=0.25, early_stop_hours=0.1,
                      tensorboard=False, progress=False, seed=5)
    a = train_on_days([day], cfg, None)
    b = train_on_days([day], cfg, None)
    c = train_on_days([day], dataclasses.replace(cfg, seed=6), None)
    assert all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights)
    assert any(a.weights[k].tobytes() != c.weights[k].tobytes() for k in a.weights)


def test_several_checkpoints_pick_the_coarsest_bar_dividing_dt():
    d = LearnedDynamics([random_checkpoint(7, dt=10.0), random_checkpoint(8, dt=60.0)])
    assert d.n_substeps(120.0) == 2 and d.args(2, 120.0)[10][0, 8] == 2.0 and d.bundle(2, 120.0).checkpoint.dt == 60.0
    assert d.n_substeps(30.0) == 3 and d.args(2, 30.0)[10][0, 8] == 3.0 and d.bundle(2, 30.0).checkpoint.dt == 10.0
    with pytest.raises(ValueError, match=r"not a whole multiple .*\(60s, 10s\)"):
        d.args(2, 5.0)


@pytest.mark.slow
def test_shipped_model_reproduces_the_readme_evaluation(shared_data):
    """README table (1-minute model, last 2 h of GOOG and AMZN 2012-06-21)."""
    from lobworld.world_models.training import evaluate, load_day

    ck = load_checkpoint(DEFAULT_CHECKPOINT)
    lob = shared_data / "lobster"
    days = [load_day(lob / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz", "60s"),
            load_day(lob / "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz", "60s")]
    res = evaluate(ck, days=days, seed=0)["pooled"]
    assert res["model_given_flow"]["loglik"] == pytest.approx(-0.207, abs=0.002)
    assert res["linear_ofi"]["loglik"] == pytest.approx(-0.595, abs=0.002)
    assert res["parametric"]["loglik"] == pytest.approx(-1.231, abs=0.002)
    assert res["model_given_flow"]["loglik"] > res["linear_ofi"]["loglik"] + 0.25


# ---------------------------------------------------------------------------
# fast math and the batch-level kernels
# ---------------------------------------------------------------------------
def test_fast_exp_tanh_sigmoid_are_accurate():
    from numba import njit

    from lobworld.world_models.learned import _exp, _sigmoid, _tanh

    @njit
    def apply(x, e, t, s):
        for i in range(x.shape[0]):
            e[i] = _exp(x[i])
            t[i] = _tanh(x[i])
            s[i] = _sigmoid(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700.0, 700.0, 20000), rng.normal(0.0, 3.0, 20000),
                        [0.0, -0.0, 1e-300, -1e-12, 0.5 * math.log(2.0), 708.0, -707.0]])
    e, t, s = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    apply(x, e, t, s)
    assert np.max(np.abs(e / np.exp(x) - 1.0)) < 1e-15
    assert np.max(np.abs(t - np.tanh(x))) < 1e-15
    assert np.max(np.abs(s - 1.0 / (1.0 + np.exp(-x)))) < 1e-15
    assert _exp(0.0) == 1.0 and _tanh(0.0) == 0.0 and _sigmoid(0.0) == 0.5
    # outside [-708, 709] the argument is clamped (finite results); NaN propagates
    assert _exp(-1000.0) == pytest.approx(math.exp(-708.0), rel=1e-15) and math.isfinite(_exp(1000.0))
    assert math.isnan(_exp(float("nan"))) and _tanh(50.0) == 1.0 and _tanh(-50.0) == -1.0


def _batch_vs_per_env(dyn, dt, n, n_steps, seed0=100):
    """Run envs 0..n-1 by step_fn (A) and by the batch kernels (B) on the same seeds."""
    from lobworld.envs.rng import seed_states
    from lobworld.world_models.learned import BATCH_CHUNK, learned_batch_reset, learned_batch_step

    args = dyn.args(n, dt)
    rng_a = seed_states([seed0 + i for i in range(n)], 1)
    rng_b = rng_a.copy()
    A = np.zeros((n, dyn.n_state))
    B = np.zeros((n, dyn.n_state))
    ws = dyn.workspace(n)
    idx = np.arange(n, dtype=np.int64)
    for i in range(n):
        dyn.reset_fn(i, A[i], args, rng_a[i, 0])
    for c in range(ws.shape[0]):
        learned_batch_reset(idx, c * BATCH_CHUNK, min(n, (c + 1) * BATCH_CHUNK), ws[c], B, args, rng_b, 0)
    meta = args[11]
    oh, ox, H = int(meta[4]), int(meta[5]), int(meta[2])
    cols = list(range(N_MARKET)) + list(range(oh, oh + H)) + list(range(ox, ox + N_FEATURES))
    # q: sells, buys and zeros; a volume profile multiplier != 1
    q = np.where(np.arange(n) % 3 == 0, 0.0, np.where(np.arange(n) % 3 == 1, -800.0, 350.0))
    vm = np.linspace(0.5, 2.0, n)
    out = []
    for _ in range(n_steps):
        mid0 = B[:, MID].copy()
        pa = np.array([dyn.step_fn(i, A[i], args, rng_a[i, 0], q[i], vm[i]) for i in range(n)])
        pb = np.zeros(n)
        for c in range(ws.shape[0]):
            learned_batch_step(idx, c * BATCH_CHUNK, min(n, (c + 1) * BATCH_CHUNK), ws[c], B, args, rng_b, 0,
                               q, vm, pb)
        out.append((pa, pb, A[:, cols].copy(), B[:, cols].copy(), rng_a.copy(), rng_b.copy(), mid0))
    return out, q


@pytest.mark.parametrize("cfg,model_dt,env_dt", [(ModelConfig(hidden=16, latent=8), 60.0, 60.0),
                                                 (ModelConfig(hidden=24, latent=6, n_mix=2, spread_bins=12),
                                                  10.0, 30.0),
                                                 (ModelConfig(hidden=16, latent=8, spread_level=True), 10.0, 60.0)])
def test_batch_kernels_match_the_per_env_step(cfg, model_dt, env_dt):
    """The batch-level kernels compute the per-env market: same draws, same values up to rounding."""
    from lobworld.world_models.learned import BATCH_CHUNK

    dyn = LearnedDynamics(random_checkpoint(7, cfg, dt=model_dt), burn_in=3)
    n = BATCH_CHUNK + 6  # more than one chunk; lanes in the vector body and the remainder
    out, q = _batch_vs_per_env(dyn, env_dt, n, 6)
    for pa, pb, ra, rb, sa, sb, mid0 in out:
        assert np.array_equal(sa, sb)  # exactly the same random draws
        assert np.allclose(pa, pb, rtol=1e-12, atol=0)
        assert np.array_equal(pb[q == 0], mid0[q == 0])  # no order: priced at the pre-step mid
        assert np.all(pb[q > 0] > mid0[q > 0]) and np.all(pb[q < 0] < mid0[q < 0])
        assert np.allclose(ra, rb, rtol=1e-9, atol=1e-9)
        assert np.all(rb[q == 0, PERM_IMPACT] == 0.0) and np.all(rb[q != 0, TEMP_IMPACT] > 0.0)
        assert np.all(rb[q != 0, PERM_IMPACT] != 0.0)  # every trading env records its impact on the mid
    mids = np.array([o[3][:, MID] for o in out])
    assert np.allclose(np.round(mids * 200) / 200, mids, atol=1e-9) and len(np.unique(mids[-1])) > n // 2


def test_batch_kernel_lanes_are_independent():
    """An env's batch result does not depend on its lane or on the other envs: bit-identical."""
    from lobworld.envs.rng import seed_states
    from lobworld.world_models.learned import BATCH_CHUNK as CH
    from lobworld.world_models.learned import learned_batch_reset, learned_batch_step

    dyn = LearnedDynamics(random_checkpoint(8), burn_in=2)
    n = CH + 6
    args = dyn.args(n, 60.0)
    rng = seed_states(list(range(n)), 1)
    full = np.zeros((n, dyn.n_state))
    ws = dyn.workspace(n)
    q = np.full(n, -500.0)
    vm = np.ones(n)
    price = np.zeros(n)
    idx = np.arange(n, dtype=np.int64)
    e = CH + 2
    one = np.array([e], dtype=np.int64)  # lane 2 of chunk 1, alone: lane 0 of a one-env chunk
    rng1 = rng.copy()
    solo = np.zeros((n, dyn.n_state))
    for c in range(2):
        learned_batch_reset(idx, CH * c, min(n, CH * c + CH), ws[c], full, args, rng, 0)
    learned_batch_reset(one, 0, 1, ws[0], solo, args, rng1, 0)
    for _ in range(5):
        for c in range(2):
            learned_batch_step(idx, CH * c, min(n, CH * c + CH), ws[c], full, args, rng, 0, q, vm, price)
        p_full = price[e]
        learned_batch_step(one, 0, 1, ws[0], solo, args, rng1, 0, q, vm, price)
        assert price[e] == p_full
    assert np.array_equal(full[e], solo[e]) and np.array_equal(rng[e], rng1[e])

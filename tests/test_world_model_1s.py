"""The 1-second learned market: categorical half-tick mid head (torch, Numba, training, shipped model, env)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lobworld.world_models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lobworld.world_models.dynamics_model import (
    CONTROL,
    AssetStats,
    BarWorldModel,
    ModelConfig,
    asset_scale,
    bar_features,
    half_tick_changes,
)
from lobworld.world_models.training import DayBars, model_from_checkpoint, train_on_days
from lobworld.world_models.training import WorldModelTrainConfig as TrainConfig
from lobworld.world_models.training import load_world_model_config as load_config

K = 3
CAT = ModelConfig(hidden=16, latent=8, spread_bins=6, mid_head="categorical", mid_half_ticks=K)
STATS = AssetStats(tick=0.01, sigma_bar=0.04, median_spread=0.15, mean_volume=30.0, mean_count=2.0,
                   mean_depth=300.0, s0=570.0)


def random_model(seed: int = 0, cfg: ModelConfig = CAT, scale: float = 2.0) -> BarWorldModel:
    torch.manual_seed(seed)
    model = BarWorldModel(cfg)
    with torch.no_grad():  # larger weights than the default init, so the tails and every category matter
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def as_checkpoint(model: BarWorldModel, dt: float = 1.0) -> Checkpoint:
    return Checkpoint(weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                      model_config=model.cfg, assets={"GOOG": STATS}, dt=dt, fingerprint={"a.csv": "00" * 32},
                      train_config={"freq": f"{int(dt)}s"}, metrics={})


def random_heads(model: BarWorldModel, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.tanh(2.0 * torch.randn(n, model.cfg.hidden, generator=g, dtype=torch.float64))
    return model.double().state_head(h, asset_scale(STATS)).detach()


# ---------------------------------------------------------------------------
# the categorical pmf (torch)
# ---------------------------------------------------------------------------
def test_categorical_pmf_is_a_distribution_with_the_stated_moments_and_cdf():
    model = random_model(0).double()
    head = random_heads(model, 5)
    # the tail means must span small and large values for the test to mean something
    n = CAT.n_mid_cat
    g = head[:, n:n + 2].clamp(-7, 5)
    assert float(g.min()) < -0.5 and float(g.max()) > 0.5
    j = torch.arange(-6000, 6001)
    lp = model.mid_logpmf(head[:, None, :].expand(-1, len(j), -1), j[None].expand(5, -1))
    p = lp.exp()
    assert torch.allclose(p.sum(1), torch.ones(5, dtype=p.dtype), atol=1e-9)
    mean, var = model.mid_mean_var(head)
    jf = j.to(p.dtype)
    bm = (p * jf).sum(1)
    assert torch.allclose(mean, bm, atol=1e-7)
    assert torch.allclose(var, (p * jf * jf).sum(1) - bm * bm, rtol=1e-7)
    cdf = model.mid_cdf(head[:, None, :].expand(-1, len(j), -1), j[None].expand(5, -1))
    assert torch.allclose(cdf, torch.cumsum(p, 1), atol=1e-9)
    # inside -K..K the probability is the softmax category; j = +-(K+1) is the tail category times (1 - q)
    pc = torch.softmax(head[:, :n], -1)
    i0 = 6000
    assert torch.allclose(p[:, i0 - K:i0 + K + 1], pc[:, 1:-1], atol=1e-12)
    m_up = torch.exp(g[:, 1])
    assert torch.allclose(p[:, i0 + K + 1], pc[:, -1] / (1 + m_up), atol=1e-12)


def test_hand_computed_categorical_probabilities():
    """K = 1: categories (j<-1, -1, 0, 1, j>1) with logits log(.1, .2, .4, .2, .1); tails of mean excess 1 (g = 0)."""
    cfg = ModelConfig(hidden=2, latent=2, spread_bins=2, mid_head="categorical", mid_half_ticks=1)
    model = BarWorldModel(cfg).double()
    head = torch.zeros(cfg.n_head_out, dtype=torch.float64)
    head[:5] = torch.log(torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1], dtype=torch.float64))
    j = torch.tensor([-4, -2, -1, 0, 1, 2, 3])
    p = model.mid_logpmf(head.expand(len(j), -1), j).exp()
    # geometric excess of mean 1: P(e) = 0.5^(e+1)
    want = torch.tensor([0.1 * 0.5 ** 3, 0.1 * 0.5, 0.2, 0.4, 0.2, 0.1 * 0.5, 0.1 * 0.25], dtype=torch.float64)
    assert torch.allclose(p, want, atol=1e-15)
    mean, var = model.mid_mean_var(head[None])
    assert float(mean) == pytest.approx(0.0, abs=1e-15)
    # E[j^2] = 2 (0.2 * 1 + 0.1 * E[(2 + e)^2]), E[(2+e)^2] = 4 + 4 + (1 + 2) = 11
    assert float(var) == pytest.approx(2 * (0.2 + 0.1 * 11.0), rel=1e-14)
    assert float(model.mid_cdf(head[None], torch.tensor([-3]))) == pytest.approx(0.1 * 0.5, rel=1e-14)  # P(e >= 1)


def test_mixture_configs_and_shipped_checkpoints_are_unchanged(tmp_path):
    from lobworld.world_models.learned import DEFAULT_CHECKPOINT

    assert ModelConfig().n_head_out == 3 * 3 + 20 + 4 and ModelConfig().mid_head == "mixture"
    assert "mid_head" not in ModelConfig().to_dict()
    for name in ("bar_gru_60s.npz", "bar_gru_10s.npz"):
        p = DEFAULT_CHECKPOINT.parent / name
        with np.load(p) as z:
            stored = json.loads(bytes(z["meta"]).decode())["model_config"]
        assert "mid_head" not in stored
        ck = load_checkpoint(p)
        assert ck.model_config.mid_head == "mixture" and not ck.model_config.categorical
        back = save_checkpoint(ck, tmp_path / name)
        with np.load(back) as z:
            assert json.loads(bytes(z["meta"]).decode())["model_config"] == stored
        model = model_from_checkpoint(ck)
        with pytest.raises(ValueError, match="'mixture' mid head; the method needs 'categorical'"):
            model.mid_logpmf(torch.zeros(1, ck.model_config.n_head_out), torch.zeros(1, dtype=torch.long))


def test_categorical_checkpoint_round_trip_and_config_errors(tmp_path):
    ck = as_checkpoint(random_model(3))
    back = load_checkpoint(save_checkpoint(ck, tmp_path / "c.npz"))
    assert back.model_config == CAT
    assert all(back.weights[k].tobytes() == ck.weights[k].tobytes() for k in ck.weights)
    with pytest.raises(ValueError, match="mid_head must be one of"):
        ModelConfig(mid_head="poisson")
    with pytest.raises(ValueError, match="mid_half_ticks must be a positive int"):
        ModelConfig(mid_head="categorical", mid_half_ticks=0)
    p = tmp_path / "t.toml"
    p.write_text('mid_head = "Categorical"\n')
    with pytest.raises(ValueError, match=r"t.toml: TrainConfig.mid_head must be one of"):
        load_config(p)
    model = random_model(3)
    with pytest.raises(ValueError, match="needs the half-tick mid changes"):
        x = torch.zeros(1, 4, 10)
        flow, head, _ = model(x, x[..., CONTROL], c=1.0)
        model.losses(flow, head, x)
    with pytest.raises(ValueError, match="needs the asset scale"):
        model(x, x[..., CONTROL])


def test_half_tick_changes_checks_the_lattice():
    bars = pd.DataFrame({"mid_ret": [0.0, 0.005, -0.02, 0.135]})
    assert half_tick_changes(bars, 0.01).tolist() == [0, 1, -4, 27]
    with pytest.raises(ValueError, match="not multiples of half a tick"):
        half_tick_changes(pd.DataFrame({"mid_ret": [0.0, 0.003]}), 0.01)


# ---------------------------------------------------------------------------
# training on GENERATED data with a known discrete law
# ---------------------------------------------------------------------------
P_MOVE = 0.3  # P(mid moves in a bar); a move goes the way of the bar's OFI, 1 + Geometric(mean 1) half ticks


def generated_1s_bars(n: int, seed: int) -> pd.DataFrame:
    """GENERATED (not real) 1-second bars with a known law of the half-tick mid change ``j``:

    ``j = 0`` with probability 0.7, else ``sign(OFI) (1 + e)``, ``P(e) = 0.5^(e+1)``; the OFI is
    N(0, 100^2) shares and every bar trades ``|OFI| + 1`` shares (all flow aggressive).
    """
    rng = np.random.default_rng(seed)
    ofi = rng.normal(0.0, 100.0, n)
    move = rng.uniform(size=n) < P_MOVE
    j = np.where(move, np.sign(ofi) * (1 + rng.geometric(0.5, n) - 1), 0).astype(np.int64)
    mid = 570.0 + 0.005 * np.cumsum(j)
    vol = np.abs(ofi) + 1.0
    out = pd.DataFrame({
        "mid": mid, "mid_ret": 0.005 * j, "spread": np.full(n, 0.02), "volume": vol,
        "buy_volume": np.where(ofi > 0, vol, 0.0), "sell_volume": np.where(ofi > 0, 0.0, vol),
        "n_trades": 1.0 + rng.poisson(vol / 50.0), "ofi": ofi, "bid_sz_1": rng.lognormal(5.0, 0.5, n),
        "ask_sz_1": rng.lognormal(5.0, 0.5, n)})
    out.index = pd.Timestamp("2000-01-03 09:30", tz="America/New_York") + pd.to_timedelta(np.arange(n) + 1.0, unit="s")
    return out


def true_loglik(bars: pd.DataFrame) -> np.ndarray:
    j = half_tick_changes(bars, 0.01)
    m = np.abs(j)
    return np.where(j == 0, math.log(1 - P_MOVE), math.log(P_MOVE) + m * math.log(0.5))


def test_training_on_generated_discrete_data_recovers_the_law():
    bars = generated_1s_bars(3000, seed=0)
    cfg = TrainConfig(freq="1s", hidden=8, latent=4, spread_bins=4, mid_head="categorical", mid_half_ticks=2,
                      seq_len=32, burn_in=4, batch_size=32, max_epochs=100, patience=100, lr=2e-2,
                      test_hours=0.1, early_stop_hours=0.05, tensorboard=False, progress=False, seed=0)
    ck = train_on_days([DayBars("GEN", bars, 0.01, [])], cfg, None)
    model = model_from_checkpoint(ck)
    fresh = generated_1s_bars(4000, seed=1)  # a new sample of the same law, never trained on
    x = torch.as_tensor(bar_features(fresh, ck.assets["GEN"]))
    j = torch.as_tensor(half_tick_changes(fresh, 0.01))
    with torch.no_grad():
        _, head, _ = model(x[None, :-1], x[None, 1:, CONTROL], c=asset_scale(ck.assets["GEN"]))
        lp = model.mid_logpmf(head[0], j[1:]).numpy()
        p0 = model.mid_logpmf(head[0], torch.zeros_like(j[1:])).exp().numpy()
        mean, _ = model.mid_mean_var(head[0])
    truth = true_loglik(fresh)[1:]
    # the true law scores -1.027 nats per bar; ignoring the OFI's sign would cost 0.3 ln 2 = 0.21 more
    assert truth.mean() == pytest.approx(-1.027, abs=0.03)
    assert lp.mean() > truth.mean() - 0.04
    assert p0.mean() == pytest.approx(1 - P_MOVE, abs=0.03)
    # the predicted mean follows the flow's sign: E[j | OFI > 0] = 0.3 * 2 = 0.6 half ticks (bars with
    # |OFI| > 1 sd: a smooth network cannot be a perfect step at OFI = 0)
    ofi = fresh["ofi"].to_numpy()[1:]
    assert float(mean[torch.as_tensor(ofi > 100)].mean()) == pytest.approx(0.6, abs=0.1)
    assert float(mean[torch.as_tensor(ofi < -100)].mean()) == pytest.approx(-0.6, abs=0.1)


# ---------------------------------------------------------------------------
# Numba kernels of the categorical head
# ---------------------------------------------------------------------------
CAT_SL = ModelConfig(hidden=16, latent=8, spread_bins=6, mid_head="categorical", mid_half_ticks=K,
                     ofi_head="zero_signed_lognormal")


@pytest.mark.parametrize("cfg", [CAT, CAT_SL, ModelConfig(hidden=8, latent=4, mid_head="categorical",
                                                          mid_half_ticks=12)])
def test_numba_forward_matches_torch_for_the_categorical_model(cfg):
    from lobworld.world_models.learned import numba_forward

    model = random_model(4, cfg)
    ck = as_checkpoint(model)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        x = rng.normal(size=10).astype(np.float32)
        a = rng.normal(size=2).astype(np.float32)
        h = np.tanh(rng.normal(size=cfg.hidden)).astype(np.float32)
        with torch.no_grad():
            f, o, hn = model.step(torch.tensor(x)[None], torch.tensor(a)[None], torch.tensor(h)[None],
                                  c=asset_scale(STATS))
        nf, no, nh = numba_forward(ck, x.astype(np.float64), a.astype(np.float64), h.astype(np.float64))
        assert nf.shape == (cfg.n_flow_out,) and no.shape == (cfg.n_head_out,)
        worst = max(worst, np.abs(nf - f[0].numpy()).max(), np.abs(no - o[0].numpy()).max(),
                    np.abs(nh - hn[0].numpy()).max())
    assert worst < 1e-5


def test_numba_categorical_moments_and_sampler_follow_the_torch_pmf():
    from scipy.stats import norm

    from lobworld.world_models.learned import _cat_mean_var, _cat_sample

    model = random_model(5).double()
    head = random_heads(model, 3, seed=7)
    n = CAT.n_mid_cat
    for row in head:
        mean, var = model.mid_mean_var(row[None])
        m, v = _cat_mean_var(row.numpy().copy(), 0, K, 1.0)
        assert m == pytest.approx(float(mean), abs=1e-12) and v == pytest.approx(float(var), rel=1e-12)
        assert _cat_mean_var(row.numpy().copy(), 0, K, 0.25)[1] == pytest.approx(float(var) / 16, rel=1e-12)
    # sampler: 200k draws on a grid of (u, z) from one head; frequencies vs the pmf (chi-square)
    row = head[0].clone()
    row[n + 1] = 1.0  # up tail of mean excess e: both tails in play
    row[:n] = torch.log(torch.tensor([0.1, 0.05, 0.05, 0.1, 0.3, 0.1, 0.05, 0.05, 0.2], dtype=torch.float64))
    g = np.random.default_rng(3)
    N = 200_000
    us, zs = g.uniform(size=N), g.normal(size=N)
    base = row.numpy()
    draws = np.empty(N)
    buf = base.copy()
    for t in range(N):
        buf[:] = base
        draws[t] = _cat_sample(buf, 0, K, us[t], zs[t])
    assert np.all(draws == np.round(draws))
    jv = np.arange(-30, 31)
    p = model.mid_logpmf(row[None].expand(len(jv), -1), torch.as_tensor(jv)).exp().numpy()
    obs = np.array([(draws == j).sum() for j in jv])
    exp_ = N * p
    keep = exp_ > 20
    chi2 = float((((obs - exp_) ** 2) / exp_)[keep].sum())
    from scipy.stats import chi2 as chi2_dist

    assert chi2 < chi2_dist.ppf(0.999, keep.sum() - 1), chi2
    # the tail draw is the inverse of the geometric law in Phi(z): z = 0 (v = 1/2) gives floor(log 0.5 / log q)
    buf[:] = base
    q = math.exp(1.0) / (1 + math.exp(1.0))
    assert _cat_sample(buf, 0, K, 0.999, 0.0) == K + 1 + math.floor(math.log(0.5) / math.log(q))
    buf[:] = base
    assert _cat_sample(buf, 0, K, 0.5, 3.0) == 0.0  # category of u = 0.5 is j = 0 (cdf .3 -> .6)
    assert norm.cdf(0.0) == 0.5


@pytest.fixture(scope="module")
def dyn_cat():
    from lobworld.world_models.learned import LearnedDynamics

    return LearnedDynamics(as_checkpoint(random_model(6, CAT_SL, scale=1.0)))


def test_categorical_rollouts_are_seeded_on_the_lattice_and_draw_the_same_whatever_q(dyn_cat):
    from lobworld.envs.dynamics import MID, PERM_IMPACT
    from lobworld.envs.rng import seed_state
    from lobworld.world_models.learned import rollout

    m1, v1 = rollout(dyn_cat, 4, 300, 1.0, seed=7)
    m2, v2 = rollout(dyn_cat, 4, 300, 1.0, seed=7)
    m3, _ = rollout(dyn_cat, 4, 300, 1.0, seed=8)
    assert np.array_equal(m1, m2) and np.array_equal(v1, v2) and not np.array_equal(m1, m3)
    assert np.allclose(np.round(m1 * 200) / 200, m1, atol=1e-9)
    d = np.diff(m1, axis=1)
    assert 0.0 < np.mean(d == 0) < 1.0  # some seconds move, some do not
    args = dyn_cat.args(1, 1.0)
    row_a = np.zeros(dyn_cat.n_state)
    st_a = seed_state(3, 1)[0]
    dyn_cat.reset_fn(0, row_a, args, st_a)
    row_b, st_b = row_a.copy(), st_a.copy()
    for q in (0.0, 500.0, -40.0, 0.0, 3.0):
        dyn_cat.step_fn(0, row_a, args, st_a, 0.0, 1.0)
        dyn_cat.step_fn(0, row_b, args, st_b, q, 1.0)
        assert np.array_equal(st_a, st_b)
    assert row_a[PERM_IMPACT] == 0.0 and row_b[PERM_IMPACT] != 0.0
    assert math.isfinite(row_b[MID])


def test_batch_kernels_refuse_the_categorical_model(dyn_cat):
    from lobworld.envs.rng import seed_states
    from lobworld.world_models.learned import learned_batch_reset

    args = dyn_cat.args(2, 1.0)
    assert dyn_cat.batch_step_fn is None and dyn_cat.batch_reset_fn is None  # envs step it per env
    market = np.zeros((2, dyn_cat.n_state))
    with pytest.raises(ValueError, match="1 s model runs through the per-env"):
        learned_batch_reset(np.arange(2), 0, 2, dyn_cat.workspace(2)[0], market, args, seed_states([0, 1], 1), 0)


# ---------------------------------------------------------------------------
# the shipped 1-second model and LOB-MarketMaking-v0 on it
# ---------------------------------------------------------------------------
def _shipped_1s():
    from lobworld.world_models.learned import DEFAULT_CHECKPOINT

    p = DEFAULT_CHECKPOINT.parent / "bar_gru_1s.npz"
    if not p.is_file():
        pytest.skip("no shipped 1-second checkpoint")
    return p


def test_default_learned_market_picks_the_1s_model_for_dt_1():
    from lobworld.world_models.learned import LearnedDynamics

    p = _shipped_1s()
    assert p.stat().st_size < 40_000
    d = LearnedDynamics.load_default()
    assert d.n_substeps(1.0) == 1 and d.n_substeps(60.0) == 1 and d.n_substeps(10.0) == 1
    b1 = d.bundle(2, 1.0)
    assert b1.checkpoint.dt == 1.0 and b1.checkpoint.model_config.categorical and b1.batch_step_fn is None
    b60 = d.bundle(2, 60.0)
    assert b60.checkpoint.dt == 60.0 and not b60.checkpoint.model_config.categorical


@pytest.mark.slow  # ~2 CPU-minutes: compiles the market-making kernels around the learned step
def test_market_making_runs_on_the_learned_1s_market_and_is_seeded():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    _shipped_1s()
    env = gym.make("LOB-MarketMaking-v0", dynamics="learned", horizon=50)
    check_env(env.unwrapped, skip_render_check=True)

    def run(seed):
        e = gym.make("LOB-MarketMaking-v0", dynamics="learned", horizon=200)
        obs, _ = e.reset(seed=seed)
        e.action_space.seed(seed)
        out = [obs]
        rews = []
        for _ in range(200):
            obs, r, term, trunc, _ = e.step(e.action_space.sample())
            out.append(obs)
            rews.append(r)
            if term or trunc:
                break
        return np.array(out), np.array(rews), e.unwrapped

    a, ra, ea = run(5)
    b, rb, _ = run(5)
    c, _, _ = run(6)
    assert np.array_equal(a, b) and np.array_equal(ra, rb)
    assert not np.array_equal(a, c)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(ra))


README_1S = {"model_given_flow": -1.130, "linear_ofi_binned": -1.195, "model_forecast": -1.566, "markov": -1.560,
             "empirical": -1.570, "parametric": -3.026}


def test_shipped_1s_checkpoint_fingerprint_matches_shared_data(shared_data):
    from lobworld.world_models.checkpoint import file_fingerprint

    ck = load_checkpoint(_shipped_1s())
    lob = shared_data / "lobster"
    files = [lob / n for n in sorted(ck.fingerprint)]
    assert len(files) == 4 and ck.fingerprint == file_fingerprint(files)
    assert ck.train_config["freq"] == "1s" and ck.train_config["mirror"] is True and ck.dt == 1.0


@pytest.mark.slow
def test_shipped_1s_model_reproduces_the_readme_evaluation(shared_data):
    """README table (1-second model, last 2 h of GOOG and AMZN 2012-06-21, discrete mid changes)."""
    from lobworld.world_models.training import evaluate, load_day

    ck = load_checkpoint(_shipped_1s())
    lob = shared_data / "lobster"
    days = [load_day(lob / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz", "1s"),
            load_day(lob / "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz", "1s")]
    res = evaluate(ck, days=days, seed=0)["pooled"]
    for name, want in README_1S.items():
        assert res[name]["loglik"] == pytest.approx(want, abs=0.002), name
    assert res["model_given_flow"]["loglik"] > res["linear_ofi_binned"]["loglik"] + 0.01
    assert res["model_given_flow"]["loglik"] > res["parametric"]["loglik"] + 1.0
    assert res["model_forecast"]["p_zero"] == pytest.approx(0.709, abs=0.02)  # realised share of no-change seconds

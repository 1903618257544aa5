"""Learned market: the spread level (feature, relative spread head, prior init) and the flow copula."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from numba import njit
from scipy import stats as sps

from lobworld.envs.dynamics import SPREAD
from lobworld.envs.rng import seed_states
from lobworld.world_models.checkpoint import Checkpoint, load_checkpoint
from lobworld.world_models.dynamics_model import (
    F_LSPR,
    F_OFI,
    F_SLVL,
    F_SVOL,
    N_FEATURES,
    O_IMB,
    O_LVOL_LS,
    O_NOTRADE,
    O_OFI_LS,
    O_OFI_MU,
    SPREAD_HI,
    SPREAD_LEVEL_HALFLIFE_S,
    SPREAD_LO,
    AssetStats,
    BarWorldModel,
    ModelConfig,
    bar_features,
    spread_level,
    spread_level_decay,
)
from lobworld.world_models.learned import (
    BATCH_CHUNK,
    DEFAULT_CHECKPOINT,
    M_OX,
    Q_RHO,
    Q_SLA,
    LearnedDynamics,
    _couple,
    learned_batch_step,
)
from lobworld.world_models.training import (
    SPREAD_PRIOR_PSEUDO,
    DayBars,
    _init_spread_prior,
    copula_loglik_gain,
    model_from_checkpoint,
    train_on_days,
)
from lobworld.world_models.training import WorldModelTrainConfig as TrainConfig

WEIGHTS = DEFAULT_CHECKPOINT.parent
STATS = AssetStats(tick=0.01, sigma_bar=0.28, median_spread=0.28, mean_volume=1800.0, mean_count=30.0,
                   mean_depth=300.0, s0=570.0)


def _bars(spreads, seconds=60.0, with_col=True) -> pd.DataFrame:
    n = len(spreads)
    idx = pd.Timestamp("2000-01-03 09:30", tz="America/New_York") + pd.to_timedelta(seconds * np.arange(1, n + 1),
                                                                                      unit="s")
    b = pd.DataFrame({"mid_ret": np.zeros(n), "spread": spreads, "bid_sz_1": np.full(n, 100.0),
                      "ask_sz_1": np.full(n, 100.0), "volume": np.full(n, 10.0), "buy_volume": np.full(n, 5.0),
                      "sell_volume": np.full(n, 5.0), "n_trades": np.ones(n), "ofi": np.zeros(n)}, index=idx)
    if with_col:
        b["bar_seconds"] = seconds
    return b


# ---------------------------------------------------------------------------
# the spread-level feature
# ---------------------------------------------------------------------------
def test_spread_level_feature_hand_computed():
    # bars of one half-life: the previous level keeps weight 1/2
    spr = np.array([0.56, 0.14, 0.28]) * 1.0
    x = bar_features(_bars(spr, seconds=SPREAD_LEVEL_HALFLIFE_S), STATS)
    ls = np.log(spr / 0.28)
    want = [0.5 * ls[0], 0.25 * ls[0] + 0.5 * ls[1], 0.125 * ls[0] + 0.25 * ls[1] + 0.5 * ls[2]]
    np.testing.assert_allclose(x[:, F_SLVL], want, rtol=1e-6)
    np.testing.assert_allclose(x[:, F_LSPR], ls, rtol=1e-6)
    assert x.shape == (3, N_FEATURES)
    # without a bar_seconds column the lengths come from the DatetimeIndex
    x2 = bar_features(_bars(spr, seconds=SPREAD_LEVEL_HALFLIFE_S, with_col=False), STATS)
    np.testing.assert_array_equal(x2, x)
    # 1-minute bars: weight 0.5 ** (60 / 1800) per bar
    assert spread_level_decay(60.0) == pytest.approx(0.5 ** (1 / 30), rel=1e-15)
    np.testing.assert_allclose(spread_level(np.ones(3), np.full(3, 60.0)),
                               1.0 - spread_level_decay(60.0) ** np.arange(1, 4), rtol=1e-14)
    bare = _bars(spr, with_col=False).reset_index(drop=True)
    with pytest.raises(ValueError, match="bar_seconds"):
        bar_features(bare, STATS)


def test_model_config_spread_level_inputs_and_metadata():
    off, on = ModelConfig(), ModelConfig(spread_level=True)
    assert off.n_inputs == N_FEATURES - 1 and on.n_inputs == N_FEATURES
    assert "spread_level" not in off.to_dict() and on.to_dict()["spread_level"] is True
    assert BarWorldModel(on).enc.weight.shape == (8, N_FEATURES)
    with pytest.raises(ValueError, match="spread_level"):
        ModelConfig(spread_level=1)
    with pytest.raises(ValueError, match="spread_level"):
        TrainConfig(spread_level="yes")
    # the shipped checkpoints: 60 s and 10 s read the level, the 1 s model (older) does not
    for name, want in (("bar_gru_60s.npz", True), ("bar_gru_10s.npz", True), ("bar_gru_1s.npz", False)):
        ck = load_checkpoint(WEIGHTS / name)
        assert ck.model_config.spread_level is want
        assert ck.weights["enc.weight"].shape[1] == ck.model_config.n_inputs


def test_spread_target_is_relative_to_the_level_read():
    model = BarWorldModel(ModelConfig(spread_level=True))
    y = torch.zeros(2, 3, N_FEATURES)
    x = torch.zeros(2, 3, N_FEATURES)
    y[..., F_LSPR] = 0.3
    x[..., F_SLVL] = -0.2
    assert torch.allclose(model.spread_target(y, x), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="pass x"):
        model.spread_target(y, None)
    assert torch.equal(BarWorldModel(ModelConfig()).spread_target(y, None), y[..., F_LSPR])


def _one_bin_checkpoint(spread_level_on: bool, k: int, S: int = 8) -> Checkpoint:
    """A model whose spread head always picks bin ``k`` (huge bias, zero weights)."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, latent=4, n_mix=1, spread_bins=S, spread_level=spread_level_on)
    model = BarWorldModel(cfg)
    with torch.no_grad():
        m = cfg.n_mid_out
        model.head.weight[m:m + S] = 0.0
        model.head.bias[m:m + S] = -50.0
        model.head.bias[m + k] = 50.0
    return Checkpoint(weights={n: v.detach().numpy().copy() for n, v in model.state_dict().items()},
                      model_config=cfg, assets={"GOOG": STATS}, dt=60.0, fingerprint={},
                      train_config={"freq": "60s"})


@pytest.mark.parametrize("level_on", [True, False])
def test_kernels_sample_the_spread_around_the_level_and_update_it(level_on):
    """Per env and batch kernels: log(spread / median) = level (if the head is relative) + the drawn bin
    value (up to tick rounding), and the level follows the sampled spreads by the feature's recursion."""
    S, k = 8, 6
    dyn = LearnedDynamics(_one_bin_checkpoint(level_on, k, S), burn_in=0)
    n, T = BATCH_CHUNK + 3, 12
    args = dyn.args(n, 60.0)
    ox = int(args[11][M_OX])
    a = spread_level_decay(60.0)
    assert args[10][0, Q_SLA] == pytest.approx(a, rel=1e-15)
    rng_a = seed_states(list(range(n)), 1)
    rng_b = rng_a.copy()
    A = np.zeros((n, dyn.n_state))
    B = np.zeros((n, dyn.n_state))
    for i in range(n):
        dyn.reset_fn(i, A[i], args, rng_a[i, 0])
        A[i, ox + F_SLVL] = 0.4 * math.sin(i)  # start from different levels
    B[:] = A
    ws = dyn.workspace(n)
    idx = np.arange(n, dtype=np.int64)
    w = (SPREAD_HI - SPREAD_LO) / S
    lo, hi = SPREAD_LO + k * w, SPREAD_LO + (k + 1) * w
    q, vm, price = np.zeros(n), np.ones(n), np.zeros(n)
    for _ in range(T):
        lv0 = A[:, ox + F_SLVL].copy()
        for i in range(n):
            dyn.step_fn(i, A[i], args, rng_a[i, 0], 0.0, 1.0)
        for c in range(ws.shape[0]):
            learned_batch_step(idx, c * BATCH_CHUNK, min(n, (c + 1) * BATCH_CHUNK), ws[c], B, args, rng_b, 0,
                               q, vm, price)
        ls = np.log(A[:, SPREAD] / STATS.median_spread)
        rel = ls - (lv0 if level_on else 0.0)
        slack = 0.02  # rounding to ticks: half a tick of a spread near 1 USD, in log
        assert np.all(rel >= lo - slack) and np.all(rel <= hi + slack)
        np.testing.assert_allclose(A[:, ox + F_SLVL], a * lv0 + (1.0 - a) * ls, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(B[:, ox + F_SLVL], A[:, ox + F_SLVL], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(B[:, SPREAD], A[:, SPREAD])
    if not level_on:  # the level moved, the spread law did not follow it
        assert np.ptp(np.log(A[:, SPREAD])) < w + 0.1


def test_spread_prior_init_sets_the_log_bin_frequencies():
    cfg = ModelConfig(hidden=8, latent=4, n_mix=1, spread_bins=5, spread_level=True)
    model = BarWorldModel(cfg)
    x = np.zeros((7, N_FEATURES), np.float32)
    x[:, F_LSPR] = [0.0, -2.4, -2.4, 0.1, 2.4, 0.1, 0.1]  # targets (relative to level 0) of bars 1..6
    tr = np.ones(7, bool)
    tr[-1] = False  # the last bar is outside the training block
    _init_spread_prior(model, [x], [(tr, ~tr, ~tr)])
    counts = np.array([2, 0, 2, 0, 1], float)  # bins of width 1 on [-2.5, 2.5]: -2.4, -2.4, 0.1, 2.4, 0.1
    want = (counts + SPREAD_PRIOR_PSEUDO) / (counts.sum() + 5 * SPREAD_PRIOR_PSEUDO)
    m = cfg.n_mid_out
    got = torch.softmax(model.head.bias[m:m + 5].detach(), 0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[1] < 0.01 and got[0] > 0.3


# ---------------------------------------------------------------------------
# the flow copula
# ---------------------------------------------------------------------------
@njit
def _couple_many(u, n, rho):
    out = np.empty_like(u)
    for i in range(u.shape[0]):
        out[i] = _couple(u[i], n[i], rho)
    return out


def test_copula_keeps_the_uniform_and_has_the_stated_correlation():
    rng = np.random.default_rng(0)
    u, n = rng.uniform(size=200_000), rng.normal(size=200_000)
    assert np.array_equal(_couple_many(u, n, 0.0), u)
    for rho in (0.6, -0.3):
        v = _couple_many(u, n, rho)
        assert sps.kstest(v, "uniform").pvalue > 0.01  # still U(0, 1)
        assert np.corrcoef(sps.norm.ppf(v), n)[0, 1] == pytest.approx(rho, abs=0.006)


def test_copula_likelihood_gain_recovers_rho():
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(1)
    N, rho = 20_000, 0.55
    z1 = rng.normal(size=N)
    z2 = rho * z1 + math.sqrt(1 - rho * rho) * rng.normal(size=N)
    edges = sps.norm.ppf(np.array([0.1, 0.3, 0.5, 0.6, 0.85]))  # 6 categories of the latent z1
    k = np.searchsorted(edges, z1)
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    al, be = full[k], full[k + 1]
    assert np.all(copula_loglik_gain(0.0, al, be, z2) == 0.0)
    res = minimize_scalar(lambda r: -copula_loglik_gain(r, al, be, z2).sum(), bounds=(-0.99, 0.99), method="bounded")
    assert res.x == pytest.approx(rho, abs=0.02)
    assert copula_loglik_gain(res.x, al, be, z2).mean() > 0.1  # the coupling is worth nats


def test_shipped_copula_is_fitted_and_helps_on_held_out_bars():
    for name in ("bar_gru_60s.npz", "bar_gru_10s.npz"):
        ck = load_checkpoint(WEIGHTS / name)
        fit = ck.metrics["flow_copula"]
        for a in ("GOOG", "AMZN"):
            assert 0.3 < ck.assets[a].flow_rho < 0.8 and ck.assets[a].flow_rho == fit[a]["rho"]
            assert fit[a]["gain_test"] > 0.05  # nats per traded test bar, never used in the fit
    one = load_checkpoint(WEIGHTS / "bar_gru_1s.npz")  # signed log-normal OFI: no Gaussian copula
    assert all(s.flow_rho == 0.0 for s in one.assets.values())
    P = LearnedDynamics(one, asset="GOOG").args(2, 1.0)[10]
    assert np.all(P[:, Q_RHO] == 0.0)
    ck = load_checkpoint(WEIGHTS / "bar_gru_60s.npz")
    P = LearnedDynamics(ck, asset=["GOOG", "AMZN"]).args(2, 60.0)[10]
    assert P[0, Q_RHO] == ck.assets["GOOG"].flow_rho and P[1, Q_RHO] == ck.assets["AMZN"].flow_rho
    with pytest.raises(ValueError, match="flow_rho"):
        dataclasses.replace(STATS, flow_rho=1.0)


def test_simulated_flows_are_coupled():
    """From the same states, the learned market's signed volume and OFI correlate with the copula on, not off."""
    ck = load_checkpoint(WEIGHTS / "bar_gru_60s.npz")
    corrs = {}
    for rho in (0.0, ck.assets["GOOG"].flow_rho):
        c = dataclasses.replace(ck, assets={a: dataclasses.replace(s, flow_rho=rho) for a, s in ck.assets.items()})
        dyn = LearnedDynamics(c, asset="GOOG", burn_in=5)
        n = 400
        args = dyn.args(n, 60.0)
        ox = int(args[11][M_OX])
        rng = seed_states(list(range(n)), 1)
        rows = np.zeros((n, dyn.n_state))
        sv, of = [], []
        for i in range(n):
            dyn.reset_fn(i, rows[i], args, rng[i, 0])
            for _ in range(5):
                dyn.step_fn(i, rows[i], args, rng[i, 0], 0.0, 1.0)
                sv.append(rows[i, ox + F_SVOL])
                of.append(rows[i, ox + F_OFI])
        corrs[rho] = np.corrcoef(sv, of)[0, 1]
    assert abs(corrs[0.0]) < 0.12
    assert corrs[ck.assets["GOOG"].flow_rho] > corrs[0.0] + 0.2


def test_torch_sampler_couples_like_the_kernels():
    model = model_from_checkpoint(load_checkpoint(WEIGHTS / "bar_gru_60s.npz"))
    flow = torch.zeros(50_000, model.cfg.n_flow_out, dtype=torch.float64)
    flow[:, O_NOTRADE] = -20.0  # always a trade
    flow[:, O_OFI_LS] = 0.0
    flow[:, O_OFI_MU] = 0.0
    flow[:, O_LVOL_LS] = -7.0  # (almost) constant volume: signed volume ~ the imbalance
    flow[:, O_IMB:O_IMB + 9] = 0.0  # uniform categories
    base = model.sample_flow(flow, generator=torch.Generator().manual_seed(0)).numpy()
    coupled = model.sample_flow(flow, generator=torch.Generator().manual_seed(0), rho=0.6).numpy()
    np.testing.assert_array_equal(base[:, 0], coupled[:, 0])  # the OFI draw itself is unchanged
    assert abs(np.corrcoef(base[:, 0], base[:, 1])[0, 1]) < 0.02
    # corr(Z, imbalance) for a latent correlation of 0.6 (0.59 for a uniform imbalance)
    assert 0.5 < np.corrcoef(coupled[:, 0], coupled[:, 1])[0, 1] < 0.6


def test_training_fits_the_copula_on_generated_coupled_flow():
    """Generated bars whose trade imbalance is the sign-consistent transform of a latent correlated with the
    OFI: the fitted rho is clearly positive and matches the held-out gain's sign; flow_copula=False skips it."""
    rng = np.random.default_rng(3)
    n = 1500
    z_ofi = rng.normal(size=n)
    z_imb = 0.7 * z_ofi + math.sqrt(1 - 0.49) * rng.normal(size=n)
    imb = np.tanh(0.8 * z_imb)
    vol = rng.lognormal(7.0, 0.5, n)
    idx = pd.Timestamp("2000-01-03 09:30", tz="America/New_York") + pd.to_timedelta(10.0 * np.arange(1, n + 1),
                                                                                      unit="s")
    bars = pd.DataFrame({"mid": 100 + np.cumsum(rng.normal(0, 0.05, n)).round(3),
                         "mid_ret": rng.normal(0, 0.05, n).round(3), "spread": 0.01 * rng.integers(1, 4, n),
                         "volume": vol, "buy_volume": 0.5 * vol * (1 + imb), "sell_volume": 0.5 * vol * (1 - imb),
                         "n_trades": rng.integers(1, 20, n).astype(float), "ofi": 1000.0 * z_ofi,
                         "bid_sz_1": rng.lognormal(5, 0.5, n), "ask_sz_1": rng.lognormal(5, 0.5, n)}, index=idx)
    cfg = TrainConfig(freq="10s", hidden=8, latent=4, n_mix=1, spread_bins=4, seq_len=24, burn_in=4, batch_size=32,
                      max_epochs=30, patience=30, lr=1e-2, test_hours=0.5, early_stop_hours=0.25,
                      tensorboard=False, progress=False, seed=0)
    ck = train_on_days([DayBars("GEN", bars, 0.01, [])], cfg, None)
    fit = ck.metrics["flow_copula"]["GEN"]
    assert ck.assets["GEN"].flow_rho == fit["rho"] and fit["rho"] > 0.4
    assert fit["gain_train"] > 0.05 and fit["gain_test"] > 0.05
    ck0 = train_on_days([DayBars("GEN", bars, 0.01, [])], dataclasses.replace(cfg, flow_copula=False), None)
    assert ck0.assets["GEN"].flow_rho == 0.0 and "flow_copula" not in ck0.metrics

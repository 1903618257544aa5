"""The head layout of the torch model and of the Numba kernels is one definition.

``world_models/dynamics_model.py`` defines the output offsets of the flow head (``O_*``) and of the
state heads (``S_*``, ``MIX_*``, ``CAT_*``); the torch model slices its outputs with them and the
kernels of ``lobworld.world_models.learned`` read them with them. These tests check (1) the torch
slices against the constants, (2) the kernels' row layout against the torch head widths, and (3)
behaviour: a model whose outputs are constants written at the named offsets, stepped by the per-env
and the batch kernels, produces the volume, count, OFI, imbalance, mid change, spread, depth and
top-of-book imbalance those offsets stand for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lobworld.envs.dynamics import MID, SPREAD, VOLUME
from lobworld.envs.rng import seed_state, seed_states
from lobworld.world_models.checkpoint import Checkpoint, load_checkpoint
from lobworld.world_models.dynamics_model import (
    CAT_G_DN,
    CAT_G_UP,
    F_IMB,
    F_LCNT,
    F_LDEP,
    F_OFI,
    F_TIMB,
    IMB_BINS,
    MIX_LOGIT,
    MIX_LS,
    MIX_MU,
    N_FLOW_OUT,
    O_IMB,
    O_LCNT_LS,
    O_LCNT_MU,
    O_LVOL_LS,
    O_LVOL_MU,
    O_NOTRADE,
    O_OFI_LS,
    O_OFI_MU,
    O_OFI_SIGN,
    O_OFI_ZERO,
    S_DEP_LS,
    S_DEP_MU,
    S_TIMB_LS,
    S_TIMB_MU,
    SPREAD_HI,
    SPREAD_LO,
    AssetStats,
    BarWorldModel,
    ModelConfig,
)
from lobworld.world_models.learned import (
    DEFAULT_CHECKPOINT,
    M_NMID,
    M_OFO,
    M_OHC,
    M_OHCO,
    M_OHO,
    M_OIMP,
    M_OX,
    LearnedDynamics,
    _learned_reset,
    _learned_step,
    export_args,
    learned_batch_reset,
    learned_batch_step,
)
from lobworld.world_models.learned.batch import _ws_rows

STATS = AssetStats(tick=0.01, sigma_bar=0.28, median_spread=0.28, mean_volume=1800.0, mean_count=30.0,
                   mean_depth=300.0, s0=570.0)
CONFIGS = {
    "mixture": ModelConfig(),
    "mixture_level": ModelConfig(spread_level=True, n_mix=4, spread_bins=16),
    "categorical_signed_ofi": ModelConfig(mid_head="categorical", mid_half_ticks=4, ofi_head="zero_signed_lognormal"),
}


def _checkpoint(cfg: ModelConfig, flow_bias: np.ndarray | None = None, head_bias: np.ndarray | None = None):
    """A checkpoint of a model with every weight 0: its outputs are the biases (hidden state stays 0)."""
    torch.manual_seed(0)
    w = {k: v.detach().numpy().astype(np.float64) for k, v in BarWorldModel(cfg).state_dict().items()}
    if flow_bias is not None:
        w = {k: np.zeros_like(v) for k, v in w.items()}
        w["flow.bias"] = flow_bias
        w["head.bias"] = head_bias
    return Checkpoint(weights=w, model_config=cfg, assets={"GOOG": STATS}, dt=60.0, fingerprint={"a.csv": "00" * 32},
                      train_config={"freq": "60s"}, metrics={"x": 1.0})


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torch_head_slices_follow_the_layout_constants(name):
    cfg = CONFIGS[name]
    model = BarWorldModel(cfg)
    head = torch.arange(cfg.n_head_out, dtype=torch.float64) * 0.01  # value = offset / 100, inside the clamps
    mid, spr, dep, timb = model.split_state(head)
    m, s = cfg.n_mid_out, cfg.spread_bins
    t = m + s
    assert [round(float(v) * 100) for v in mid] == list(range(m))
    assert [round(float(v) * 100) for v in spr] == list(range(m, t))
    assert [round(float(v) * 100) for v in dep] == [t + S_DEP_MU, t + S_DEP_LS]
    assert [round(float(v) * 100) for v in timb] == [t + S_TIMB_MU, t + S_TIMB_LS]
    assert cfg.n_head_out == t + 4
    if cfg.categorical:
        n = cfg.n_mid_cat
        _, g_dn, g_up = model._mid_cat(head)
        assert round(float(g_dn) * 100) == n + CAT_G_DN and round(float(g_up) * 100) == n + CAT_G_UP
        assert m == n + 2
    else:
        K = cfg.n_mix
        lw, mu, ls = model.split_head(head)[:3]
        for blk, v in ((MIX_LOGIT, lw), (MIX_MU, mu), (MIX_LS, ls)):
            assert [round(float(x) * 100) for x in v] == list(range(blk * K, (blk + 1) * K))
    flow_w = N_FLOW_OUT + (2 if cfg.ofi_head == "zero_signed_lognormal" else 0)
    assert cfg.n_flow_out == flow_w and model.flow.out_features == flow_w and model.head.out_features == cfg.n_head_out
    assert O_IMB + IMB_BINS == N_FLOW_OUT and (O_OFI_ZERO, O_OFI_SIGN) == (N_FLOW_OUT, N_FLOW_OUT + 1)


@pytest.mark.parametrize("name", sorted(CONFIGS) + ["shipped_60s", "shipped_10s", "shipped_1s"])
def test_kernel_row_layout_has_the_torch_head_widths(name):
    if name.startswith("shipped"):
        ck = load_checkpoint(DEFAULT_CHECKPOINT.parent / f"bar_gru_{name.split('_')[1]}.npz")
    else:
        ck = _checkpoint(CONFIGS[name])
    cfg = ck.model_config
    _w, meta, n_state = export_args(ck)
    assert meta[M_OHO] - meta[M_OFO] == cfg.n_flow_out  # flow outputs, then the state-head outputs
    assert meta[M_OHC] - meta[M_OHO] == cfg.n_head_out
    assert meta[M_NMID] == cfg.n_mid_out and meta[M_OIMP] - meta[M_OHCO] == cfg.n_mid_out
    assert n_state == meta[M_OIMP] + 2
    if not cfg.categorical:  # the batch workspace: flow rows, then gates; state-head rows, then counterfactual
        r_h, r_z, r_x, r_fo, r_gib, r_gh, r_hn, r_ho, r_hc, r_hco, r_rnd, r_v, _n = _ws_rows(
            cfg.hidden, cfg.latent, cfg.n_mix, cfg.spread_bins)
        assert r_gib - r_fo == N_FLOW_OUT and r_hc - r_ho == cfg.n_head_out and r_rnd - r_hco == cfg.n_mid_out


def _constant_outputs(cfg: ModelConfig):
    """Flow and state-head outputs (the biases of an all-zero-weight model) with known meanings.

    Flow: always a trade, log volume log 2 (sd e^-7), log count log 3, OFI 1.5 sd, imbalance exactly +1.
    Mid: +2 sigma_bar (mixture: component 1 dominant) or +3 half ticks (categorical); spread: bin 3 of
    the spread head dominant; log depth 0.7; top-of-book imbalance atanh(0.3); every log sd at the clamp."""
    f = np.zeros(cfg.n_flow_out)
    f[O_NOTRADE] = -40.0
    f[O_LVOL_MU], f[O_LVOL_LS] = math.log(2.0), -30.0
    f[O_LCNT_MU] = math.log(3.0)
    f[O_LCNT_LS] = -30.0
    f[O_OFI_MU], f[O_OFI_LS] = 1.5, -30.0
    f[O_IMB + IMB_BINS - 1] = 40.0
    if cfg.ofi_head == "zero_signed_lognormal":
        f[O_OFI_MU] = math.log(1.5)  # log |OFI| given OFI != 0
        f[O_OFI_ZERO], f[O_OFI_SIGN] = -40.0, 40.0  # never zero, always positive
    h = np.zeros(cfg.n_head_out)
    if cfg.categorical:
        h[cfg.mid_half_ticks + 1 + 3] = 40.0  # the category of +3 half ticks
        h[cfg.n_mid_cat + CAT_G_DN] = h[cfg.n_mid_cat + CAT_G_UP] = -30.0
    else:
        K = cfg.n_mix
        h[MIX_LOGIT * K + 1] = 40.0
        h[MIX_MU * K + 1] = 2.0
        h[MIX_LS * K:MIX_LS * K + K] = -30.0
    t = cfg.n_mid_out + cfg.spread_bins
    h[cfg.n_mid_out + 3] = 40.0
    h[t + S_DEP_MU], h[t + S_DEP_LS] = 0.7, -30.0
    h[t + S_TIMB_MU], h[t + S_TIMB_LS] = math.atanh(0.3), -30.0
    return f, h


def _check_step(cfg, row, ox, dt_spread):
    """The outputs' meanings in the stepped row (one bar; log sds at e^-7, so values within ~1e-3)."""
    assert row[VOLUME] == pytest.approx(2.0 * STATS.mean_volume, rel=5e-3)
    assert row[ox + F_LCNT] == pytest.approx(math.log(3.0), abs=3e-3)
    assert row[ox + F_OFI] == pytest.approx(1.5, rel=3e-3)
    assert row[ox + F_IMB] == 1.0
    assert row[ox + F_LDEP] == pytest.approx(0.7, abs=3e-3)
    assert row[ox + F_TIMB] == pytest.approx(0.3, abs=3e-3)
    ret = 3 * 0.5 * STATS.tick if cfg.categorical else 0.5 * STATS.tick * round(2.0 * STATS.sigma_bar / (0.5 * STATS.tick))
    assert row[MID] - STATS.s0 == pytest.approx(ret, abs=1e-9)
    w = (SPREAD_HI - SPREAD_LO) / cfg.spread_bins
    lo, hi = STATS.median_spread * math.exp(SPREAD_LO + 3 * w), STATS.median_spread * math.exp(SPREAD_LO + 4 * w)
    assert lo - 0.5 * STATS.tick <= row[SPREAD] <= hi + 0.5 * STATS.tick and row[SPREAD] == dt_spread


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kernels_read_each_head_output_where_the_torch_model_writes_it(name):
    cfg = CONFIGS[name]
    f, h = _constant_outputs(cfg)
    ck = _checkpoint(cfg, f, h)
    model = BarWorldModel(cfg).double()
    model.load_state_dict({k: torch.as_tensor(v) for k, v in ck.weights.items()})
    with torch.no_grad():
        fo, ho, _hn = model.step(torch.zeros(1, cfg.n_inputs, dtype=torch.float64),
                                 torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, cfg.hidden, dtype=torch.float64),
                                 c=0.0)
    assert np.array_equal(fo[0].numpy(), f) and np.array_equal(ho[0].numpy(), h)
    if not cfg.categorical:  # the torch model's reading of the same outputs: mid change +2 sigma_bar
        assert float(model.ret_mean_var(ho)[0]) == pytest.approx(2.0, abs=1e-12)
    dyn = LearnedDynamics(ck, burn_in=0)
    args = dyn.args(1, 60.0)
    ox = int(args[11][M_OX])
    row = np.zeros(dyn.n_state)
    st = seed_state(5, 1)[0]
    _learned_reset(0, row, args, st)
    row[MID] = STATS.s0
    _learned_step(0, row, args, st, 0.0, 1.0)
    spread = row[SPREAD]
    _check_step(cfg, row, ox, spread)
    if not cfg.categorical and cfg.ofi_head == "gaussian":  # the batch kernels, same draws
        ws = dyn.workspace(1)
        market = np.zeros((1, dyn.n_state))
        rng = seed_states([5], 1)
        idx = np.zeros(1, dtype=np.int64)
        learned_batch_reset(idx, 0, 1, ws[0], market, args, rng, 0)
        market[0, MID] = STATS.s0
        learned_batch_step(idx, 0, 1, ws[0], market, args, rng, 0, np.zeros(1), np.ones(1), np.zeros(1))
        _check_step(cfg, market[0], ox, spread)

"""Column layouts of the learned kernels: per-env parameter rows ``P`` and the row layout vector ``meta``."""

from __future__ import annotations

import numpy as np

from lobworld.envs.dynamics import N_MARKET
from lobworld.world_models.dynamics_model import (
    LOGSD_HI,
    LOGSD_LO,
    N_FEATURES,
    N_FLOW_OUT,
    ModelConfig,
)

# ---- per-env parameter columns ---------------------------------------------
(Q_S0, Q_TICK, Q_SIG, Q_MSPR, Q_MVOL, Q_MCNT, Q_MDEP, Q_DT, Q_NSUB, Q_Y, Q_DELTA,
 Q_TRACK, Q_NBURN, Q_OFIS, Q_CSCALE) = range(15)
# Q_CSCALE: log(sigma_bar / half tick), the extra state-head input of the categorical (1 s) model.
# Agent impact channel (impact="sqrt"): Q_IMODE 1.0 (0.0: legacy "gru"), Q_IC = Y sigma_D / V_D**delta
# (USD / shares**delta), Q_IDEL = delta, Q_IPF = permanent weight, Q_IDEC = exp(-dt / tau) per env step;
# Q_RHO: Gaussian-copula correlation of the OFI and trade-imbalance draws (AssetStats.flow_rho).
Q_IMODE, Q_IC, Q_IDEL, Q_IPF, Q_IDEC, Q_RHO = range(15, 21)
Q_SLA = 21  # weight of the previous spread level per model bar (spread_level_decay of the bar length)
N_Q = 22
# ---- layout vector (float64, cast to int in the kernels) ---------------------
(M_NMIX, M_NSPR, M_H, M_E, M_OH, M_OX, M_OZ, M_OGI, M_OGH, M_OHN, M_OFO, M_OHO, M_OHC, M_OHCO) = range(14)
# categorical (1 s) model only: mid-head width, K of the categorical mid head (0: mixture head),
# 1.0 when the OFI is zero-inflated signed log-normal (ModelConfig.ofi_head), else 0.0
M_NMID, M_KCAT, M_OFISL = 14, 15, 16
M_OIMP = 17  # row offset of the agent-impact state (X_perm, X_trans: signed shares)
M_SREL = 18  # 1.0: the spread head is relative to the spread level (ModelConfig.spread_level)
N_FLOW = N_FLOW_OUT  # outputs of the Gaussian-OFI flow head (the signed-lognormal one has N_OFI_SL_OUT more)
_LS_LO, _LS_HI = LOGSD_LO, LOGSD_HI


def _layout(c: ModelConfig) -> tuple[np.ndarray, int]:
    """``(meta, n_state)``: the layout vector and the row length of a model of architecture ``c``; the head
    widths are the torch model's (:class:`ModelConfig`)."""
    H, E, n_mix, n_spr = c.hidden, c.latent, c.n_mix, c.spread_bins
    kcat = c.mid_half_ticks if c.categorical else 0
    ofi_sl = c.ofi_head == "zero_signed_lognormal"
    spread_rel = c.spread_level
    n_mid = c.n_mid_out
    n_head = c.n_head_out
    off = N_MARKET
    oh = off
    off += H
    ox = off
    off += N_FEATURES
    oz = off
    off += E
    ogi = off
    off += 3 * H
    ogh = off
    off += 3 * H
    ohn = off
    off += H
    ofo = off
    off += c.n_flow_out
    oho = off
    off += n_head
    ohc = off
    off += H
    ohco = off
    off += n_mid
    oimp = off
    off += 2
    meta = np.array([n_mix, n_spr, H, E, oh, ox, oz, ogi, ogh, ohn, ofo, oho, ohc, ohco, n_mid, kcat,
                     1.0 if ofi_sl else 0.0, oimp, 1.0 if spread_rel else 0.0], dtype=np.float64)
    return meta, off



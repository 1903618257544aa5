"""Column layouts of the learned kernels: per-env parameter rows ``P`` and the row layout vector ``meta``."""

from __future__ import annotations

import numpy as np

from lobworld.envs.dynamics import N_MARKET
from lobworld.world_models.dynamics_model import IMB_BINS, N_FEATURES

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
N_FLOW = 7 + IMB_BINS
_LS_LO, _LS_HI = -7.0, 5.0


def _layout(H: int, E: int, n_mix: int, n_spr: int, kcat: int = 0, ofi_sl: bool = False,
            spread_rel: bool = False) -> tuple[np.ndarray, int]:
    n_mid = 2 * kcat + 5 if kcat > 0 else 3 * n_mix
    n_head = n_mid + n_spr + 4
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
    off += N_FLOW + (2 if ofi_sl else 0)
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



"""Batch-level kernels of the learned market: one model bar over a chunk of envs, struct of arrays."""

from __future__ import annotations

import math

from numba import njit

from lobworld.envs.dynamics import IMBALANCE, LAST_RET, MID, PERM_IMPACT, SIGMA, SPREAD, TEMP_IMPACT, VOLUME
from lobworld.envs.rng import normal, uniform
from lobworld.world_models.dynamics_model import (
    F_IMB,
    F_LCNT,
    F_LDEP,
    F_LSPR,
    F_LVOL,
    F_OFI,
    F_RET,
    F_SLVL,
    F_SVOL,
    F_TIMB,
    F_TRADED,
    IMB_BINS,
    MIX_LOGIT,
    MIX_LS,
    MIX_MU,
    N_FEATURES,
    N_MIX_BLOCKS,
    N_STATE_TAIL,
    O_IMB,
    O_LCNT_LS,
    O_LCNT_MU,
    O_LVOL_LS,
    O_LVOL_MU,
    O_NOTRADE,
    O_OFI_LS,
    O_OFI_MU,
    RET_CLIP,
    S_DEP_LS,
    S_DEP_MU,
    S_TIMB_LS,
    S_TIMB_MU,
    SPREAD_HI,
    SPREAD_LO,
    TIMB_CLIP,
)
from lobworld.world_models.learned.fastmath import _clamp, _couple, _exp, _sigmoid, _tanh
from lobworld.world_models.learned.impact_channel import _sqrt_impact
from lobworld.world_models.learned.layout import (
    _LS_HI,
    _LS_LO,
    M_E,
    M_H,
    M_KCAT,
    M_NMIX,
    M_NSPR,
    M_OFISL,
    M_OH,
    M_OIMP,
    M_OX,
    M_SREL,
    N_FLOW,
    Q_DT,
    Q_IMODE,
    Q_MCNT,
    Q_MSPR,
    Q_MVOL,
    Q_NBURN,
    Q_NSUB,
    Q_OFIS,
    Q_RHO,
    Q_S0,
    Q_SIG,
    Q_SLA,
    Q_TICK,
)


@njit(inline="always")
def _check_batch_model(meta):
    if meta[M_KCAT] > 0.0 or meta[M_OFISL] > 0.0:
        raise ValueError("the batch kernels support only the mixture mid head and the Gaussian OFI head; the "
                         "1 s model runs through the per-env step_fn/reset_fn")

# ---------------------------------------------------------------------------
# batch-level kernels (struct of arrays across envs)
# ---------------------------------------------------------------------------
# The execution env advances its envs in chunks of ``BATCH_CHUNK``: each chunk copies the
# envs' hidden state and features out of their rows into a workspace of shape
# (rows, BATCH_CHUNK) -- one row per activation, envs along the row -- and runs the bar
# layer by layer with the loop over envs innermost, so LLVM vectorises it (AVX-512 / AVX2)
# together with _exp/_tanh. The random draws stay per env and in the same order as in
# _substep (each env's own stream), the arithmetic is the same as _substep's, so the batch
# path computes the same market as step_fn up to floating-point rounding (fused
# multiply-adds, summation order: about 1e-15 relative; tested). These kernels do not
# reassociate (fastmath only allows contraction), so an env's result does not depend on its
# lane or the batch size: env i of a batch is bit-identical to a single env seeded alike.
#: envs per chunk of the batch kernels (lanes of the workspace)
BATCH_CHUNK = 128  # 64, 128, 256 measured: 128 fastest (the workspace, ~270 KB, stays in L2)
_N_DRAWS = 12
(V_QS, V_VM, V_SIG, V_TICK, V_MVOL, V_MSPR, V_MCNT, V_OFIS, V_TRACK, V_MID, V_SPREAD, V_IMB,
 V_VOL, V_VAR, V_PERM, V_RET, V_AVOL, V_AVAR, V_APERM, V_ARET, V_TRADED, V_LC, V_OFI0, V_D0,
 V_A0, V_A1, V_A1C, V_AIMB, V_TOT, V_MQ, V_K, V_T0, V_T1, V_T2, V_SLA) = range(35)
_N_V = 35
_VEC = dict(cache=True, error_model="numpy", fastmath={"contract"})


@njit(inline="always")
def _ws_rows(H, E, K, S):
    """Row offsets of the chunk workspace: [h, z] contiguous (the flow head's input), x, ..."""
    r_h = 0
    r_z = H
    r_x = r_z + E
    r_fo = r_x + N_FEATURES
    r_gib = r_fo + N_FLOW
    r_gh = r_gib + 3 * H
    r_hn = r_gh + 3 * H
    r_ho = r_hn + H
    r_hc = r_ho + N_MIX_BLOCKS * K + S + N_STATE_TAIL
    r_hco = r_hc + H
    r_rnd = r_hco + N_MIX_BLOCKS * K
    r_v = r_rnd + _N_DRAWS
    return r_h, r_z, r_x, r_fo, r_gib, r_gh, r_hn, r_ho, r_hc, r_hco, r_rnd, r_v, r_v + _N_V


def workspace_rows(H: int, E: int, K: int, S: int) -> int:
    """Rows of the chunk workspace for a model with hidden H, latent E, K components, S spread bins."""
    return int(_ws_rows(H, E, K, S)[-1])


@njit(inline="always")
def _meta_rows(meta):
    """(r_rnd, r_v) of the chunk workspace of the model described by ``meta``."""
    rows = _ws_rows(int(meta[M_H]), int(meta[M_E]), int(meta[M_NMIX]), int(meta[M_NSPR]))
    return rows[10], rows[11]


@njit(**_VEC)
def _b_matvec(W, b, nout, nin, ws, r_in, r_out, m):
    """ws[r_out + o, :m] = b[o] + sum_k W[o, k] ws[r_in + k, :m] (k ascending, as _head)."""
    for o in range(nout):
        acc = ws[r_out + o]
        bo = b[o]
        for j in range(m):
            acc[j] = bo
        k = 0
        while k + 8 <= nin:  # eight inputs per pass over acc
            w0, w1, w2, w3 = W[o, k], W[o, k + 1], W[o, k + 2], W[o, k + 3]
            w4, w5, w6, w7 = W[o, k + 4], W[o, k + 5], W[o, k + 6], W[o, k + 7]
            x0, x1, x2, x3 = ws[r_in + k], ws[r_in + k + 1], ws[r_in + k + 2], ws[r_in + k + 3]
            x4, x5, x6, x7 = ws[r_in + k + 4], ws[r_in + k + 5], ws[r_in + k + 6], ws[r_in + k + 7]
            for j in range(m):
                acc[j] = (acc[j] + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
                          + w4 * x4[j] + w5 * x5[j] + w6 * x6[j] + w7 * x7[j])
            k += 8
        while k + 4 <= nin:  # four inputs per pass over acc (same left-to-right sum as one by one)
            w0, w1, w2, w3 = W[o, k], W[o, k + 1], W[o, k + 2], W[o, k + 3]
            x0, x1, x2, x3 = ws[r_in + k], ws[r_in + k + 1], ws[r_in + k + 2], ws[r_in + k + 3]
            for j in range(m):
                acc[j] = acc[j] + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
            k += 4
        while k < nin:
            w = W[o, k]
            x = ws[r_in + k]
            for j in range(m):
                acc[j] += w * x[j]
            k += 1


@njit(**_VEC)
def _b_gates(Wih, E, H, ws, r_gib, r_gh, r_h, r_out, r_a0, r_a1, m):
    """GRU gates (torch.nn.GRUCell) given gi without the control, gh, the control rows a0, a1."""
    a0 = ws[r_a0]
    a1 = ws[r_a1]
    for k in range(H):
        gr = ws[r_gib + k]
        gu = ws[r_gib + H + k]
        gn = ws[r_gib + 2 * H + k]
        hr = ws[r_gh + k]
        hu = ws[r_gh + H + k]
        hn = ws[r_gh + 2 * H + k]
        hh = ws[r_h + k]
        out = ws[r_out + k]
        wr0, wr1 = Wih[k, E], Wih[k, E + 1]
        wu0, wu1 = Wih[H + k, E], Wih[H + k, E + 1]
        wn0, wn1 = Wih[2 * H + k, E], Wih[2 * H + k, E + 1]
        for j in range(m):
            r = _sigmoid((gr[j] + (wr0 * a0[j] + wr1 * a1[j])) + hr[j])
            u = _sigmoid((gu[j] + (wu0 * a0[j] + wu1 * a1[j])) + hu[j])
            n = _tanh((gn[j] + (wn0 * a0[j] + wn1 * a1[j])) + r * hn[j])
            out[j] = (1.0 - u) * n + u * hh[j]


@njit(**_VEC)
def _b_max(ws, r_o, n, r_mx, m):
    mx = ws[r_mx]
    l0 = ws[r_o]
    for j in range(m):
        mx[j] = l0[j]
    for k in range(1, n):
        lk = ws[r_o + k]
        for j in range(m):
            v = lk[j]
            mx[j] = v if v > mx[j] else mx[j]


@njit(**_VEC)
def _b_mix_mean_var(ws, r_o, K, r_m1, r_var, r_mx, r_tot, m):
    """Mixture mean and variance (as _mix_mean_var) of the head rows r_o.. into rows r_m1, r_var."""
    _b_max(ws, r_o + MIX_LOGIT * K, K, r_mx, m)
    mx = ws[r_mx]
    tot = ws[r_tot]
    m1 = ws[r_m1]
    m2 = ws[r_var]
    for j in range(m):
        tot[j] = 0.0
        m1[j] = 0.0
        m2[j] = 0.0
    for k in range(K):
        lk = ws[r_o + MIX_LOGIT * K + k]
        mu = ws[r_o + MIX_MU * K + k]
        ls = ws[r_o + MIX_LS * K + k]
        for j in range(m):
            w = _exp(lk[j] - mx[j])
            sd = _exp(_clamp(ls[j], _LS_LO, _LS_HI))
            tot[j] += w
            m1[j] += w * mu[j]
            m2[j] += w * (sd * sd + mu[j] * mu[j])
    for j in range(m):
        a = m1[j] / tot[j]
        m1[j] = a
        m2[j] = m2[j] / tot[j] - a * a


@njit(**_VEC)
def _b_categorical(ws, r_o, n, r_u, r_k, r_mx, r_tot, m):
    """Inverse-CDF draws (as _categorical) from the softmax of rows r_o..r_o+n; index (float) in row r_k.

    The index is the number of cumulative weights below the target, i.e. the first k whose
    cumulative weight reaches it (branch-free, so it vectorises).
    """
    _b_max(ws, r_o, n, r_mx, m)
    mx = ws[r_mx]
    tot = ws[r_tot]
    kk = ws[r_k]
    u = ws[r_u]
    for j in range(m):
        tot[j] = 0.0
    for k in range(n):
        lk = ws[r_o + k]
        for j in range(m):
            w = _exp(lk[j] - mx[j])
            lk[j] = w
            tot[j] += w
    for j in range(m):
        mx[j] = u[j] * tot[j]  # the target
        tot[j] = 0.0  # the running sum
        kk[j] = 0.0
    for k in range(n):
        lk = ws[r_o + k]
        for j in range(m):
            tot[j] += lk[j]
            kk[j] += 1.0 if tot[j] < mx[j] else 0.0
    top = n - 1.0
    for j in range(m):
        kk[j] = kk[j] if kk[j] < top else top


@njit(cache=True)
def _b_draws(ws, r_rnd, rng, stream, idx, lo, m, P):
    """The bar's 12 draws of every env of the chunk, from its own stream, in _substep's order
    (u_imb coupled to n_ofi by the env's copula correlation, as in _substep)."""
    for j in range(m):
        st = rng[idx[lo + j], stream]
        ws[r_rnd + 0, j] = uniform(st)  # u_trade
        ws[r_rnd + 1, j] = normal(st)  # n_vol
        ws[r_rnd + 2, j] = uniform(st)  # u_imb
        ws[r_rnd + 3, j] = uniform(st)  # u_in
        ws[r_rnd + 4, j] = normal(st)  # n_cnt
        ws[r_rnd + 5, j] = uniform(st)  # u_comp
        ws[r_rnd + 6, j] = normal(st)  # n_ret
        ws[r_rnd + 7, j] = uniform(st)  # u_spr
        ws[r_rnd + 8, j] = uniform(st)  # u_spr_in
        ws[r_rnd + 9, j] = normal(st)  # n_dep
        ws[r_rnd + 10, j] = normal(st)  # n_timb
        ws[r_rnd + 11, j] = normal(st)  # n_ofi
        ws[r_rnd + 2, j] = _couple(ws[r_rnd + 2, j], ws[r_rnd + 11, j], P[idx[lo + j], Q_RHO])


@njit(**_VEC)
def _b_bar(args, ws, m):
    """One model bar (as _substep) for lanes 0..m-1 of a chunk workspace whose draws are filled.

    The market's own flow only (``impact="sqrt"``: the agent acts through the impact channel).
    Reads rows h, x, V_VM and the per-env constants; writes the next h, x, V_MID,
    V_SPREAD, V_IMB and the bar's V_VOL, V_VAR, V_RET.
    """
    We, be, Wf, bf, Wih, Whh, bih, bhh, Wo, bo, P, meta = args
    K = int(meta[M_NMIX])
    S = int(meta[M_NSPR])
    H = int(meta[M_H])
    E = int(meta[M_E])
    r_h, r_z, r_x, r_fo, r_gib, r_gh, r_hn, r_ho, r_hc, r_hco, r_rnd, r_v, _n = _ws_rows(H, E, K, S)
    F = We.shape[1]  # encoder inputs: N_FEATURES, or one fewer for a model without the spread level
    # V: encoder, flow head on (h, z)
    _b_matvec(We, be, E, F, ws, r_x, r_z, m)
    for e in range(E):
        z = ws[r_z + e]
        for j in range(m):
            z[j] = _tanh(z[j])
    _b_matvec(Wf, bf, N_FLOW, H + E, ws, r_h, r_fo, m)
    _b_categorical(ws, r_fo + O_IMB, IMB_BINS, r_rnd + 2, r_v + V_K, r_v + V_T0, r_v + V_T1, m)
    wbin = 2.0 / (IMB_BINS - 2)
    for j in range(m):
        traded = ws[r_rnd + 0, j] >= _sigmoid(ws[r_fo + O_NOTRADE, j])
        lv = ws[r_fo + O_LVOL_MU, j] + _exp(_clamp(ws[r_fo + O_LVOL_LS, j], _LS_LO, _LS_HI)) * ws[r_rnd + 1, j]
        lc = ws[r_fo + O_LCNT_MU, j] + _exp(_clamp(ws[r_fo + O_LCNT_LS, j], _LS_LO, _LS_HI)) * ws[r_rnd + 4, j]
        ofi0 = ws[r_fo + O_OFI_MU, j] + _exp(_clamp(ws[r_fo + O_OFI_LS, j], _LS_LO, _LS_HI)) * ws[r_rnd + 11, j]
        kb = ws[r_v + V_K, j]
        imb = -1.0 + (kb - 1.0 + ws[r_rnd + 3, j]) * wbin
        imb = -1.0 if kb == 0.0 else imb
        imb = 1.0 if kb == IMB_BINS - 1.0 else imb
        mvol = ws[r_v + V_MVOL, j]
        vol = mvol * _exp(lv) * ws[r_v + V_VM, j]
        vol = vol if traded else 0.0
        imb = imb if traded else 0.0
        buy = 0.5 * vol * (1.0 + imb)
        sell = 0.5 * vol * (1.0 - imb)
        tot = buy + sell
        ws[r_v + V_AIMB, j] = (buy - sell) / tot if tot > 0.0 else 0.0
        ws[r_v + V_A1, j] = (buy - sell) / mvol
        ws[r_v + V_A0, j] = _clamp(ofi0, -RET_CLIP, RET_CLIP)
        ws[r_v + V_TOT, j] = tot
        ws[r_v + V_VOL, j] = vol
        ws[r_v + V_LC, j] = lc
        ws[r_v + V_TRADED, j] = 1.0 if traded else 0.0
    # M: GRU update with the control (the market's own OFI and signed volume)
    _b_matvec(Wih, bih, 3 * H, E, ws, r_z, r_gib, m)
    _b_matvec(Whh, bhh, 3 * H, H, ws, r_h, r_gh, m)
    _b_gates(Wih, E, H, ws, r_gib, r_gh, r_h, r_hn, r_v + V_A0, r_v + V_A1, m)
    n_head = N_MIX_BLOCKS * K + S + N_STATE_TAIL
    _b_matvec(Wo, bo, n_head, H, ws, r_hn, r_ho, m)
    _b_mix_mean_var(ws, r_ho, K, r_v + V_MQ, r_v + V_VAR, r_v + V_T0, r_v + V_T1, m)
    # heads: sample the next bar
    _b_categorical(ws, r_ho + MIX_LOGIT * K, K, r_rnd + 5, r_v + V_K, r_v + V_T0, r_v + V_T1, m)
    for j in range(m):
        ws[r_v + V_T2, j] = 0.0  # mu of the drawn component
        ws[r_v + V_T0, j] = 0.0  # its log sd
    for k in range(K):
        for j in range(m):
            sel = ws[r_v + V_K, j] == k
            ws[r_v + V_T2, j] = ws[r_ho + MIX_MU * K + k, j] if sel else ws[r_v + V_T2, j]
            ws[r_v + V_T0, j] = ws[r_ho + MIX_LS * K + k, j] if sel else ws[r_v + V_T0, j]
    _b_categorical(ws, r_ho + N_MIX_BLOCKS * K, S, r_rnd + 7, r_v + V_K, r_v + V_T1, r_v + V_IMB, m)
    od = r_ho + N_MIX_BLOCKS * K + S
    wspr = (SPREAD_HI - SPREAD_LO) / S
    srel = meta[M_SREL]  # 1.0: categories relative to the spread level (read before this bar updates it)
    for j in range(m):
        sig = ws[r_v + V_SIG, j]
        tick = ws[r_v + V_TICK, j]
        mspr = ws[r_v + V_MSPR, j]
        r = ws[r_v + V_T2, j] + _exp(_clamp(ws[r_v + V_T0, j], _LS_LO, _LS_HI)) * ws[r_rnd + 6, j]
        half = 0.5 * tick
        ret = half * math.floor(r * sig / half + 0.5)
        ls = SPREAD_LO + (ws[r_v + V_K, j] + ws[r_rnd + 8, j]) * wspr + srel * ws[r_x + F_SLVL, j]
        spread = tick * math.floor(mspr * _exp(ls) / tick + 0.5)
        spread = tick if spread < tick else spread
        ldep = ws[od + S_DEP_MU, j] + _exp(_clamp(ws[od + S_DEP_LS, j], _LS_LO, _LS_HI)) * ws[r_rnd + 9, j]
        timb = _tanh(ws[od + S_TIMB_MU, j] + _exp(_clamp(ws[od + S_TIMB_LS, j], _LS_LO, _LS_HI)) * ws[r_rnd + 10, j])
        tot = ws[r_v + V_TOT, j]
        traded = ws[r_v + V_TRADED, j] != 0.0
        ws[r_x + F_RET, j] = _clamp(ret / sig, -RET_CLIP, RET_CLIP)
        lspr = math.log(spread / mspr)
        ws[r_x + F_LSPR, j] = lspr
        sla = ws[r_v + V_SLA, j]
        ws[r_x + F_SLVL, j] = sla * ws[r_x + F_SLVL, j] + (1.0 - sla) * lspr
        ws[r_x + F_LDEP, j] = ldep
        ws[r_x + F_TIMB, j] = _clamp(timb, -TIMB_CLIP, TIMB_CLIP)
        pos = tot > 0.0
        ws[r_x + F_TRADED, j] = 1.0 if pos else 0.0
        ws[r_x + F_LVOL, j] = math.log(tot / ws[r_v + V_MVOL, j]) if pos else 0.0
        lcnt = ws[r_v + V_LC, j] if traded else -math.log(ws[r_v + V_MCNT, j])
        ws[r_x + F_LCNT, j] = lcnt if pos else 0.0
        aimb = ws[r_v + V_AIMB, j]
        ws[r_x + F_IMB, j] = aimb
        ws[r_x + F_SVOL, j] = ws[r_v + V_A1, j]
        ws[r_x + F_OFI, j] = ws[r_v + V_A0, j]
        ws[r_v + V_MID, j] += ret
        ws[r_v + V_SPREAD, j] = spread
        ws[r_v + V_IMB, j] = aimb
        ws[r_v + V_RET, j] = ret
    for k in range(H):
        hn = ws[r_hn + k]
        h = ws[r_h + k]
        for j in range(m):
            h[j] = hn[j]


@njit(cache=True)
def _b_gather(idx, lo, m, ws, market, P, meta, r_v):
    """Copy hidden state, features and constants of envs idx[lo:lo+m] into the chunk workspace."""
    H = int(meta[M_H])
    oh = int(meta[M_OH])
    ox = int(meta[M_OX])
    r_x = H + int(meta[M_E])
    for j in range(m):
        i = idx[lo + j]
        row = market[i]
        for k in range(H):
            ws[k, j] = row[oh + k]
        for f in range(N_FEATURES):
            ws[r_x + f, j] = row[ox + f]
        ws[r_v + V_MID, j] = row[MID]
        ws[r_v + V_SPREAD, j] = row[SPREAD]
        ws[r_v + V_SIG, j] = P[i, Q_SIG]
        ws[r_v + V_TICK, j] = P[i, Q_TICK]
        ws[r_v + V_MVOL, j] = P[i, Q_MVOL]
        ws[r_v + V_MSPR, j] = P[i, Q_MSPR]
        ws[r_v + V_MCNT, j] = P[i, Q_MCNT]
        ws[r_v + V_OFIS, j] = P[i, Q_OFIS]
        ws[r_v + V_SLA, j] = P[i, Q_SLA]
        ws[r_v + V_AVOL, j] = 0.0
        ws[r_v + V_AVAR, j] = 0.0
        ws[r_v + V_ARET, j] = 0.0


@njit(cache=True)
def _b_scatter_state(idx, lo, m, ws, market, meta):
    H = int(meta[M_H])
    oh = int(meta[M_OH])
    ox = int(meta[M_OX])
    r_x = H + int(meta[M_E])
    for j in range(m):
        row = market[idx[lo + j]]
        for k in range(H):
            row[oh + k] = ws[k, j]
        for f in range(N_FEATURES):
            row[ox + f] = ws[r_x + f, j]


@njit(cache=True)
def learned_batch_step(idx, lo, hi, ws, market, args, rng, stream, q, vol_mult, price):
    """Batch-level ``step_fn``: advance envs ``idx[lo:hi]`` (at most ``BATCH_CHUNK``) by one env step.

    ``q[i]``, ``vol_mult[i]``: agent quantity and volume multiplier of env ``i``; writes the
    execution price to ``price[i]`` and updates ``market[i]`` exactly as ``_learned_step``
    does (same draws from ``rng[i, stream]``, same formulas; rounding may differ by ~1e-15).
    ``ws``: this chunk's workspace, ``(rows, BATCH_CHUNK)`` float64 (see ``workspace``).
    """
    P = args[10]
    meta = args[11]
    _check_batch_model(meta)
    m = hi - lo
    if m <= 0:
        return
    r_rnd, r_v = _meta_rows(meta)
    _b_gather(idx, lo, m, ws, market, P, meta, r_v)
    i0 = idx[lo]
    nsub = int(P[i0, Q_NSUB])
    for j in range(m):
        i = idx[lo + j]
        if P[i, Q_IMODE] == 0.0:
            raise ValueError("the batch kernels implement the square-root impact channel only; the legacy "
                             "LegacyGRUImpactDynamics runs through its per-env step_fn")
        ws[r_v + V_VM, j] = vol_mult[i]
    for _ in range(nsub):
        _b_draws(ws, r_rnd, rng, stream, idx, lo, m, P)
        _b_bar(args, ws, m)
        for j in range(m):
            ws[r_v + V_AVOL, j] += ws[r_v + V_VOL, j]
            ws[r_v + V_AVAR, j] += ws[r_v + V_VAR, j]
            ws[r_v + V_ARET, j] += ws[r_v + V_RET, j]
    _b_scatter_state(idx, lo, m, ws, market, meta)
    oimp = int(meta[M_OIMP])
    for j in range(m):
        i = idx[lo + j]
        row = market[i]
        mid0 = row[MID]
        spread0 = row[SPREAD]
        vol = ws[r_v + V_AVOL, j]
        sigma_step = math.sqrt(ws[r_v + V_AVAR, j]) * P[i, Q_SIG]
        ret = ws[r_v + V_ARET, j]
        price[i], temp, dd = _sqrt_impact(P, i, row, oimp, q[i], mid0, spread0)
        ret += dd
        row[MID] = ws[r_v + V_MID, j] + dd
        row[SPREAD] = ws[r_v + V_SPREAD, j]
        row[IMBALANCE] = ws[r_v + V_IMB, j]
        row[VOLUME] = vol
        row[LAST_RET] = ret
        row[TEMP_IMPACT] = temp
        row[SIGMA] = sigma_step / math.sqrt(P[i, Q_DT])


@njit(cache=True)
def learned_batch_reset(idx, lo, hi, ws, market, args, rng, stream):
    """Batch-level ``reset_fn`` for envs ``idx[lo:hi]``: as ``_learned_reset`` (burn-in included)."""
    P = args[10]
    meta = args[11]
    _check_batch_model(meta)
    m = hi - lo
    if m <= 0:
        return
    H = int(meta[M_H])
    r_x = H + int(meta[M_E])
    r_rnd, r_v = _meta_rows(meta)
    _b_gather(idx, lo, m, ws, market, P, meta, r_v)
    for j in range(m):
        i = idx[lo + j]
        for k in range(H):
            ws[k, j] = 0.0
        for f in range(N_FEATURES):
            ws[r_x + f, j] = 0.0
        ws[r_x + F_TRADED, j] = 1.0
        ws[r_v + V_MID, j] = P[i, Q_S0]
        ws[r_v + V_SPREAD, j] = P[i, Q_MSPR]
        ws[r_v + V_VM, j] = 1.0
        ws[r_v + V_VOL, j] = P[i, Q_MVOL]
        ws[r_v + V_VAR, j] = 1.0
    for _ in range(int(P[idx[lo], Q_NBURN])):
        _b_draws(ws, r_rnd, rng, stream, idx, lo, m, P)
        _b_bar(args, ws, m)
    _b_scatter_state(idx, lo, m, ws, market, meta)
    oimp = int(meta[M_OIMP])
    for j in range(m):
        i = idx[lo + j]
        row = market[i]
        row[MID] = P[i, Q_S0]
        row[oimp] = 0.0
        row[oimp + 1] = 0.0
        row[SPREAD] = ws[r_v + V_SPREAD, j]
        row[VOLUME] = ws[r_v + V_VOL, j] * P[i, Q_NSUB]
        row[LAST_RET] = 0.0
        row[PERM_IMPACT] = 0.0
        row[TEMP_IMPACT] = 0.0
        row[IMBALANCE] = 0.0
        row[SIGMA] = math.sqrt(ws[r_v + V_VAR, j]) * P[i, Q_SIG] * math.sqrt(P[i, Q_NSUB]) / math.sqrt(P[i, Q_DT])


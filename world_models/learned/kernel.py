"""Per-env kernels of the learned market: the network's forward pass on one env's row, one model bar, reset and step."""

from __future__ import annotations

import math

from numba import njit

from lobworld.envs.dynamics import IMBALANCE, LAST_RET, MID, PERM_IMPACT, SIGMA, SPREAD, TEMP_IMPACT, VOLUME
from lobworld.envs.rng import normal, uniform
from lobworld.world_models.dynamics_model import (
    CAT_G_DN,
    CAT_G_UP,
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
    N_STATE_TAIL,
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
    M_NMID,
    M_NMIX,
    M_NSPR,
    M_OFISL,
    M_OFO,
    M_OGH,
    M_OGI,
    M_OH,
    M_OHC,
    M_OHCO,
    M_OHN,
    M_OHO,
    M_OIMP,
    M_OX,
    M_OZ,
    M_SREL,
    Q_CSCALE,
    Q_DT,
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
    Q_TRACK,
)


@njit(cache=True, fastmath=True)
def _encode(We, be, row, ox, oz):
    E = We.shape[0]
    F = We.shape[1]
    for e in range(E):
        s = be[e]
        for f in range(F):
            s += We[e, f] * row[ox + f]
        row[oz + e] = _tanh(s)


@njit(cache=True, fastmath=True)
def _flow_head(Wf, bf, row, oh, oz, ofo, H, E):
    for o in range(Wf.shape[0]):
        s = bf[o]
        for k in range(H):
            s += Wf[o, k] * row[oh + k]
        for e in range(E):
            s += Wf[o, H + e] * row[oz + e]
        row[ofo + o] = s


@njit(cache=True, fastmath=True)
def _gru_gates(Wih, row, a0, a1, oh, ogi, ogh, out, H, E):
    """GRU gates given row[ogi:] = W_z z + b_ih (without the control) and row[ogh:] = W_hh h + b_hh."""
    for k in range(H):
        gr = row[ogi + k] + (Wih[k, E] * a0 + Wih[k, E + 1] * a1)
        gu = row[ogi + H + k] + (Wih[H + k, E] * a0 + Wih[H + k, E + 1] * a1)
        gn = row[ogi + 2 * H + k] + (Wih[2 * H + k, E] * a0 + Wih[2 * H + k, E + 1] * a1)
        r = _sigmoid(gr + row[ogh + k])
        u = _sigmoid(gu + row[ogh + H + k])
        n = _tanh(gn + r * row[ogh + 2 * H + k])
        row[out + k] = (1.0 - u) * n + u * row[oh + k]


@njit(cache=True, fastmath=True)
def _gru(Wih, Whh, bih, bhh, row, oz, a0, a1, oh, ogi, ogh, out, H, E):
    """torch.nn.GRUCell on input [z, a0, a1] and hidden row[oh:oh+H]; writes row[out:out+H].

    Leaves the input part without the control in row[ogi:] and the hidden part in row[ogh:],
    so a counterfactual update with another control only needs :func:`_gru_gates`.
    """
    for g in range(3 * H):
        s = bih[g]
        for e in range(E):
            s += Wih[g, e] * row[oz + e]
        row[ogi + g] = s
        t = bhh[g]
        for k in range(H):
            t += Whh[g, k] * row[oh + k]
        row[ogh + g] = t
    _gru_gates(Wih, row, a0, a1, oh, ogi, ogh, out, H, E)


@njit(cache=True, fastmath=True)
def _head(Wo, bo, row, ohid, oout, n_out, H):
    for o in range(n_out):
        s = bo[o]
        for k in range(H):
            s += Wo[o, k] * row[ohid + k]
        row[oout + o] = s


@njit(inline="always")
def _rowmax(row, o, n):
    """max(row[o:o+n]) (n >= 1): the softmax shift of the mixture and categorical heads."""
    mx = row[o]
    for k in range(1, n):
        if row[o + k] > mx:
            mx = row[o + k]
    return mx


@njit(inline="always")
def _mix_mean_var(row, o, K):
    mx = _rowmax(row, o + MIX_LOGIT * K, K)
    tot = 0.0
    m1 = 0.0
    m2 = 0.0
    for k in range(K):
        w = _exp(row[o + MIX_LOGIT * K + k] - mx)
        mu = row[o + MIX_MU * K + k]
        sd = _exp(_clamp(row[o + MIX_LS * K + k], _LS_LO, _LS_HI))
        tot += w
        m1 += w * mu
        m2 += w * (sd * sd + mu * mu)
    m1 /= tot
    return m1, m2 / tot - m1 * m1


@njit(inline="always")
def _categorical(row, o, n, u):
    """Inverse-CDF draw from the softmax of row[o:o+n] with uniform u (overwrites the logits)."""
    mx = _rowmax(row, o, n)
    tot = 0.0
    for k in range(n):
        w = _exp(row[o + k] - mx)
        row[o + k] = w
        tot += w
    target = u * tot
    c = 0.0
    for k in range(n):
        c += row[o + k]
        if c >= target:
            return k
    return n - 1


@njit(inline="always")
def _cat_mean_var(row, o, KC, unit):
    """Mean and variance of the categorical mid head at row[o:] (half ticks times ``unit``; see
    ``BarWorldModel.mid_mean_var``); does not modify the row."""
    n = 2 * KC + 3
    mx = _rowmax(row, o, n)
    tot = 0.0
    m1 = 0.0
    m2 = 0.0
    for k in range(1, n - 1):
        w = math.exp(row[o + k] - mx)
        v = k - KC - 1.0
        tot += w
        m1 += w * v
        m2 += w * v * v
    k1 = KC + 1.0
    w_dn = math.exp(row[o] - mx)
    w_up = math.exp(row[o + n - 1] - mx)
    m_dn = math.exp(_clamp(row[o + n + CAT_G_DN], _LS_LO, _LS_HI))
    m_up = math.exp(_clamp(row[o + n + CAT_G_UP], _LS_LO, _LS_HI))
    tot += w_dn + w_up
    m1 += w_up * (k1 + m_up) - w_dn * (k1 + m_dn)
    m2 += w_dn * (k1 * k1 + 2.0 * k1 * m_dn + m_dn + 2.0 * m_dn * m_dn)
    m2 += w_up * (k1 * k1 + 2.0 * k1 * m_up + m_up + 2.0 * m_up * m_up)
    m1 /= tot
    return m1 * unit, (m2 / tot - m1 * m1) * unit * unit


@njit(inline="always")
def _cat_sample(row, o, KC, u, z):
    """Half-tick mid change drawn from the categorical head at row[o:]: the category by inverse CDF
    with ``u``; in a tail, the geometric excess by inversion of ``Phi(z)`` (the bar's normal draw
    of the mixture head, unused otherwise, so the draws per bar stay the same). Overwrites the logits."""
    n = 2 * KC + 3
    g_dn = _clamp(row[o + n + CAT_G_DN], _LS_LO, _LS_HI)
    g_up = _clamp(row[o + n + CAT_G_UP], _LS_LO, _LS_HI)
    c = _categorical(row, o, n, u)
    if c > 0 and c < n - 1:
        return c - KC - 1.0
    g = g_up if c == n - 1 else g_dn
    v = 0.5 * math.erfc(-z / math.sqrt(2.0))  # U(0, 1)
    if v < 1e-300:
        v = 1e-300
    lq = -math.log1p(math.exp(-g))  # log(m / (1 + m)), m = exp(g) the mean excess
    e = math.floor(math.log(v) / lq)
    return (KC + 1.0 + e) if c == n - 1 else -(KC + 1.0 + e)


@njit(inline="always")
def _head_scale(Wo, row, oout, n_out, H, cs):
    """Adds the asset-scale input's term (column H of the state-head weights) of the categorical model."""
    for o in range(n_out):
        row[oout + o] += Wo[o, H] * cs


@njit(cache=True, fastmath=True)
def _substep(i, row, args, st, qs, vol_mult):
    """One model bar for env ``i``; returns (market volume, mixture variance, expected perm. impact USD, mid change).

    ``qs``: agent shares added to the bar's flow before the GRU update, and the expected permanent
    impact by the counterfactual update without them (``Q_TRACK``): the legacy channel of
    :class:`~lobworld.world_models.learned.legacy.LegacyGRUImpactDynamics` only; the square-root
    channel's kernels pass 0 (the market's own flow), and then neither is computed."""
    We, be, Wf, bf, Wih, Whh, bih, bhh, Wo, bo, P, meta = args
    K = int(meta[M_NMIX])
    S = int(meta[M_NSPR])
    H = int(meta[M_H])
    E = int(meta[M_E])
    oh = int(meta[M_OH])
    ox = int(meta[M_OX])
    oz = int(meta[M_OZ])
    ogi = int(meta[M_OGI])
    ogh = int(meta[M_OGH])
    ohn = int(meta[M_OHN])
    ofo = int(meta[M_OFO])
    oho = int(meta[M_OHO])
    ohc = int(meta[M_OHC])
    ohco = int(meta[M_OHCO])
    sig = P[i, Q_SIG]
    tick = P[i, Q_TICK]
    mvol = P[i, Q_MVOL]

    # random draws (always the same 6 uniforms and 6 normals, whatever q)
    u_trade = uniform(st)
    n_vol = normal(st)
    u_imb = uniform(st)
    u_in = uniform(st)
    n_cnt = normal(st)
    u_comp = uniform(st)
    n_ret = normal(st)
    u_spr = uniform(st)
    u_spr_in = uniform(st)
    n_dep = normal(st)
    n_timb = normal(st)
    n_ofi = normal(st)
    u_imb = _couple(u_imb, n_ofi, P[i, Q_RHO])

    # V: encode; flow head on (h, z)
    _encode(We, be, row, ox, oz)
    _flow_head(Wf, bf, row, oh, oz, ofo, H, E)
    traded = u_trade >= _sigmoid(row[ofo + O_NOTRADE])
    lv = row[ofo + O_LVOL_MU] + _exp(_clamp(row[ofo + O_LVOL_LS], _LS_LO, _LS_HI)) * n_vol
    lc = row[ofo + O_LCNT_MU] + _exp(_clamp(row[ofo + O_LCNT_LS], _LS_LO, _LS_HI)) * n_cnt
    ofi0 = row[ofo + O_OFI_MU] + _exp(_clamp(row[ofo + O_OFI_LS], _LS_LO, _LS_HI)) * n_ofi
    if meta[M_OFISL] > 0.0:  # zero-inflated signed log-normal OFI (1 s model): coupled uniforms, no extra draw
        mag = _exp(_clamp(ofi0, -50.0, 50.0))
        ofi0 = -mag if u_imb < 1.0 - _sigmoid(row[ofo + O_OFI_SIGN]) else mag
        if u_trade < _sigmoid(row[ofo + O_OFI_ZERO]):
            ofi0 = 0.0
    kb = _categorical(row, ofo + O_IMB, IMB_BINS, u_imb)
    if kb == 0:
        imb = -1.0
    elif kb == IMB_BINS - 1:
        imb = 1.0
    else:
        imb = -1.0 + (kb - 1 + u_in) * (2.0 / (IMB_BINS - 2))
    vol = mvol * _exp(lv) * vol_mult if traded else 0.0
    if not traded:
        imb = 0.0
    buy0 = 0.5 * vol * (1.0 + imb)
    sell0 = 0.5 * vol * (1.0 - imb)
    buy = buy0 + (qs if qs > 0.0 else 0.0)
    sell = sell0 + (-qs if qs < 0.0 else 0.0)
    tot = buy + sell
    a_imb = (buy - sell) / tot if tot > 0.0 else 0.0
    a_sv = (buy - sell) / mvol
    ofi0 = _clamp(ofi0, -RET_CLIP, RET_CLIP)
    a_ofi = _clamp(ofi0 + qs / P[i, Q_OFIS], -RET_CLIP, RET_CLIP)

    # M: GRU update with the control (agent included)
    _gru(Wih, Whh, bih, bhh, row, oz, a_ofi, a_sv, oh, ogi, ogh, ohn, H, E)
    NM = int(meta[M_NMID])  # mid-head outputs
    KC = int(meta[M_KCAT])  # > 0: categorical half-tick mid head (1 s model)
    half = 0.5 * tick
    n_head = NM + S + N_STATE_TAIL
    _head(Wo, bo, row, ohn, oho, n_head, H)
    if KC > 0:
        _head_scale(Wo, row, oho, n_head, H, P[i, Q_CSCALE])
        m_q, var = _cat_mean_var(row, oho, KC, half / sig)
    else:
        m_q, var = _mix_mean_var(row, oho, K)
    perm = 0.0
    if qs != 0.0 and P[i, Q_TRACK] > 0.0:
        _gru_gates(Wih, row, ofi0, (buy0 - sell0) / mvol, oh, ogi, ogh, ohc, H, E)
        _head(Wo, bo, row, ohc, ohco, NM, H)
        if KC > 0:
            _head_scale(Wo, row, ohco, NM, H, P[i, Q_CSCALE])
            m_0, _v0 = _cat_mean_var(row, ohco, KC, half / sig)
        else:
            m_0, _v0 = _mix_mean_var(row, ohco, K)
        perm = (m_q - m_0) * sig

    # heads: sample the next bar
    if KC > 0:  # categorical: category with u_comp, a tail's geometric excess from n_ret
        ret = half * _cat_sample(row, oho, KC, u_comp, n_ret)
    else:
        kc = _categorical(row, oho + MIX_LOGIT * K, K, u_comp)
        r = row[oho + MIX_MU * K + kc] + _exp(_clamp(row[oho + MIX_LS * K + kc], _LS_LO, _LS_HI)) * n_ret
        ret = half * math.floor(r * sig / half + 0.5)
    ks = _categorical(row, oho + NM, S, u_spr)
    ls = SPREAD_LO + (ks + u_spr_in) * ((SPREAD_HI - SPREAD_LO) / S) + meta[M_SREL] * row[ox + F_SLVL]
    spread = tick * math.floor(P[i, Q_MSPR] * _exp(ls) / tick + 0.5)
    if spread < tick:
        spread = tick
    od = oho + NM + S
    ldep = row[od + S_DEP_MU] + _exp(_clamp(row[od + S_DEP_LS], _LS_LO, _LS_HI)) * n_dep
    timb = _tanh(row[od + S_TIMB_MU] + _exp(_clamp(row[od + S_TIMB_LS], _LS_LO, _LS_HI)) * n_timb)

    # new features and hidden state
    row[ox + F_RET] = _clamp(ret / sig, -RET_CLIP, RET_CLIP)
    lspr = math.log(spread / P[i, Q_MSPR])
    row[ox + F_LSPR] = lspr
    row[ox + F_SLVL] = P[i, Q_SLA] * row[ox + F_SLVL] + (1.0 - P[i, Q_SLA]) * lspr
    row[ox + F_LDEP] = ldep
    row[ox + F_TIMB] = _clamp(timb, -TIMB_CLIP, TIMB_CLIP)
    if tot > 0.0:
        row[ox + F_TRADED] = 1.0
        row[ox + F_LVOL] = math.log(tot / mvol)
        row[ox + F_LCNT] = lc if traded else -math.log(P[i, Q_MCNT])
    else:
        row[ox + F_TRADED] = 0.0
        row[ox + F_LVOL] = 0.0
        row[ox + F_LCNT] = 0.0
    row[ox + F_IMB] = a_imb
    row[ox + F_SVOL] = a_sv
    row[ox + F_OFI] = a_ofi
    for k in range(H):
        row[oh + k] = row[ohn + k]
    row[MID] += ret
    row[SPREAD] = spread
    row[IMBALANCE] = a_imb
    return vol, var, perm, ret


@njit
def _learned_reset(i, row, args, st):
    P = args[10]
    meta = args[11]
    H = int(meta[M_H])
    oh = int(meta[M_OH])
    ox = int(meta[M_OX])
    for k in range(H):
        row[oh + k] = 0.0
    for f in range(N_FEATURES):
        row[ox + f] = 0.0
    row[ox + F_TRADED] = 1.0
    row[MID] = P[i, Q_S0]
    row[SPREAD] = P[i, Q_MSPR]
    # burn-in: let the hidden state reach its stationary regime (no agent flow)
    vol = P[i, Q_MVOL]
    var = 1.0
    for _ in range(int(P[i, Q_NBURN])):
        vol, var, _p, _r = _substep(i, row, args, st, 0.0, 1.0)
    row[MID] = P[i, Q_S0]
    row[VOLUME] = vol * P[i, Q_NSUB]
    row[LAST_RET] = 0.0
    oimp = int(meta[M_OIMP])
    row[oimp] = 0.0
    row[oimp + 1] = 0.0
    row[PERM_IMPACT] = 0.0
    row[TEMP_IMPACT] = 0.0
    row[IMBALANCE] = 0.0
    row[SIGMA] = math.sqrt(var) * P[i, Q_SIG] * math.sqrt(P[i, Q_NSUB]) / math.sqrt(P[i, Q_DT])
@njit
def _learned_step(i, row, args, st, q, vol_mult):
    """One env step (``step_fn``): ``n_sub`` model bars of the market's own flow, then the agent's order
    of ``q`` shares through the square-root impact channel (:func:`_sqrt_impact`); returns its price."""
    P = args[10]
    nsub = int(P[i, Q_NSUB])
    dt = P[i, Q_DT]
    mid0 = row[MID]
    spread0 = row[SPREAD]
    vol = 0.0
    var = 0.0
    ret = 0.0
    for _ in range(nsub):
        v, s2, _p, r = _substep(i, row, args, st, 0.0, vol_mult)
        vol += v
        var += s2
        ret += r
    sigma_step = math.sqrt(var) * P[i, Q_SIG]
    price, temp, dd = _sqrt_impact(P, i, row, int(args[11][M_OIMP]), q, mid0, spread0)
    row[MID] += dd
    ret += dd
    row[VOLUME] = vol
    row[LAST_RET] = ret
    row[TEMP_IMPACT] = temp
    row[SIGMA] = sigma_step / math.sqrt(dt)
    return price


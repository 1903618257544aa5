"""Learned market dynamics for the batched envs: the GRU bar model in Numba.

:class:`LearnedDynamics` implements :class:`lobworld.envs.dynamics.MarketDynamics`
with the model of :mod:`lobworld.world_models.dynamics_model` exported to
float64 arrays. One env step of ``dt`` seconds runs ``n_sub = dt / model_dt``
model bars (``dt`` must be a whole multiple of the model's bar length).

Per model bar (the same random draws -- 6 uniforms, 6 normals -- whatever ``q``):

1. encode the last bar's features ``x`` -> ``z``; the flow head on ``(h, z)``
   samples the market's own flow: trade/no trade, volume (log-normal, times
   ``vol_mult``), trade count, trade-sign imbalance, multi-level OFI; the
   imbalance category's uniform is coupled to the OFI's normal by a Gaussian
   copula of correlation ``AssetStats.flow_rho`` (fitted after training), so
   signed volume and OFI move together as in the data (marginals unchanged);
2. the control ``a = (OFI / OFI sd, signed volume / mean volume)`` of the
   market's own flow (with ``impact="gru"`` the agent's child order
   ``q / n_sub`` is added to the buy or sell volume and to the OFI first);
   ``h <- GRU([z, a], h)``;
3. the state heads on ``h`` sample the mid change (Gaussian mixture, in units
   of the asset's ``sigma_bar``, rounded to half ticks; or, for a categorical-head
   model (the 1 s one), a category of the half-tick change drawn with the same
   uniform and, in a tail, a geometric excess from ``Phi`` of the same normal, so
   the draws per bar are the same for both heads), the spread
   (categorical over log(spread / median), relative to the 30-minute spread level
   for a ``spread_level`` model, rounded to ticks, >= 1 tick), top-of-book depth and
   imbalance, which become the next ``x`` (the spread level is updated from the
   new spread).

Agent impact, ``impact="sqrt"`` (the default): the square-root law fitted on the
real tape (:class:`lobworld.world_models.impact.ImpactModel`, shipped per asset) is
the agent's impact channel, and the GRU sees only the market's own flow (historical
flow is not exogenous, so feeding the agent's orders to the GRU gave a mid response
linear in the order size: simulated exponent 1.02). State per env: ``X_p``, the
agent's cumulative signed shares, and ``X_t``, the same decaying by
``exp(-dt / impact_decay_s)`` per env step. The agent's displacement of the mid is::

    D = w F(X_p) + (1 - w) F(X_t),    F(x) = sign(x) c |x|^delta,    c = Y sigma_D / V_D^delta

(``Y``, ``delta``, ``sigma_D``, ``V_D`` of the fitted model: session constants, as in the
fit, so ``c`` does not follow the intraday volume profile -- a ``c`` that changed while the
agent holds a position would rescale ``D`` and let a round trip earn; ``w`` such that an
instantaneous order's displacement keeps the fitted ``permanent_fraction`` 120 s later, as
measured on the tape). An order ``q`` moves both states from ``X``
to ``X + q`` and pays the mean displacement along the way::

    price = mid_before + sign(q) spread_before / 2 + (mean of D over X -> X + q) - D(X)

the mid moves by the change of ``D`` over the step (the trade, then the decay), and
``PERM_IMPACT`` holds ``D`` (USD) and ``TEMP_IMPACT`` ``|mean D - D|``. A metaorder's
peak impact is then proportional to ``Q^delta`` whatever its schedule (``delta`` 0.52
GOOG, 0.49 AMZN); its level lies between ``w`` and 1 times ``Y sigma_D (Q / V_D)^delta``
depending on how much of the transient part has decayed, and the market's own path is the same with or
without the agent (common random numbers hold exactly).

Legacy ``impact="gru"``, execution price of the agent's order ``q`` (+ buy) over the step::

    price = mid_before + sign(q) * (spread_before / 2 + temp)
    temp  = Y * sigma_step * (|q| / V_step) ** delta        (USD per share)

with ``sigma_step`` the model's conditional mid-change sd over the step (USD),
``V_step`` the market volume of the step (shares, agent excluded), ``Y =
sqrt_y`` (default 0.5, the same constant as ``ParametricParams.sqrt_y``) and
``delta = impact_exponent`` (default 0.5, the square-root law; the hook for
the exponent fitted by :mod:`lobworld.world_models.impact`). Permanent impact
is *not* a formula: it is the GRU's response to the agent's signed volume in
the control. ``PERM_IMPACT`` accumulates the expected part of it: per bar, the
mixture mean with the agent's flow minus the mixture mean of a counterfactual
GRU update without it (USD), computed only when ``q != 0`` and
``track_permanent`` (it draws no random numbers; it shares the hidden-state part of the
gates with the real update, so it costs the gate nonlinearities and 3K head rows).

Two implementations of the same bar:

* per env: ``reset_fn``/``step_fn`` (``_learned_reset``/``_learned_step``), the
  :class:`MarketDynamics` contract every env uses, e.g. the dark pool and market making;
* batch level: ``batch_reset_fn``/``batch_step_fn`` (``learned_batch_reset``/
  ``learned_batch_step``) over a chunk of ``BATCH_CHUNK`` envs, struct of arrays with the
  loop over envs innermost so LLVM vectorises it; the execution env uses it (about 4x
  faster, ``benchmarks/bench_learned.py``). Same draws per env, values equal up to rounding.

Both use ``_exp``/``_tanh``/``_sigmoid``: polynomial approximations written as plain
arithmetic (relative error of exp < 1e-15), because libm calls do not vectorise.
"""

from __future__ import annotations

import math
import numbers
import pathlib
from collections.abc import Sequence

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import get_cython_function_address, intrinsic

from lobworld.envs.dynamics import (
    IMBALANCE,
    LAST_RET,
    MID,
    N_MARKET,
    PERM_IMPACT,
    SIGMA,
    SPREAD,
    TEMP_IMPACT,
    VOLUME,
    MarketDynamics,
)
from lobworld.envs.rng import normal, uniform
from lobworld.world_models.checkpoint import Checkpoint, CheckpointError, load_checkpoint
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
    N_FEATURES,
    RET_CLIP,
    SPREAD_HI,
    SPREAD_LO,
    TIMB_CLIP,
    asset_scale,
    spread_level_decay,
)

__all__ = ["LearnedDynamics", "DEFAULT_CHECKPOINT", "BATCH_CHUNK", "export_args", "learned_batch_reset",
           "learned_batch_step", "numba_forward", "rollout"]

#: the shipped checkpoint (see the README section "World models" for how it was trained)
DEFAULT_CHECKPOINT = pathlib.Path(__file__).parent / "assets" / "weights" / "bar_gru_60s.npz"

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


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------
# ---- fast transcendental functions --------------------------------------------
# llvmlite has no vector math library, so math.exp / math.tanh in a loop are scalar libm
# calls. These are plain arithmetic (range reduction with an exact power-of-two scaling and
# a polynomial), so LLVM vectorises the loops that call them. Measured against numpy over
# 1e6 points: |exp relative error| <= 5e-16 on [-700, 700]; tanh and sigmoid have absolute
# error <= 1e-15 (tests/test_world_model.py checks these bounds).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * _LN2_HI is exact for |n| < 2**11
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return sig, codegen


@njit(inline="always")
def _exp(x):
    """exp(x) for x in [-708, 709] (clamped outside; NaN propagates): 2**n * P12(r), |r| <= ln2 / 2."""
    if x > 709.0:
        x = 709.0
    if x < -708.0:
        x = -708.0
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 2.08767569878680989792e-09  # 1/12!  (Taylor; truncation error < 2e-16 relative on |r| <= 0.347)
    p = p * r + 2.50521083854417187751e-08
    p = p * r + 2.75573192239858906526e-07
    p = p * r + 2.75573192239858906526e-06
    p = p * r + 2.48015873015873015873e-05
    p = p * r + 1.98412698412698412698e-04
    p = p * r + 1.38888888888888888889e-03
    p = p * r + 8.33333333333333333333e-03
    p = p * r + 4.16666666666666666667e-02
    p = p * r + 1.66666666666666666667e-01
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _i64_as_f64((np.int64(n) + 1023) << 52)


@njit(inline="always")
def _tanh(x):
    """tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|) (absolute error <= 1e-15)."""
    e = _exp(-2.0 * abs(x))
    t = (1.0 - e) / (1.0 + e)
    return t if x >= 0.0 else -t


@njit(inline="always")
def _sigmoid(v):
    return 1.0 / (1.0 + _exp(-v))


@njit(inline="always")
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


# scipy's inverse standard normal CDF (cephes ndtri), called from the kernels as an external
# symbol (registered with LLVM by name, so the kernels that call it stay cacheable)
llvm_binding.add_symbol("lobworld_scipy_ndtri", get_cython_function_address("scipy.special.cython_special", "ndtri"))
_ndtri = types.ExternalFunction("lobworld_scipy_ndtri", types.float64(types.float64))


@njit(inline="always")
def _couple(u, n, rho):
    """Gaussian copula: the uniform ``Phi(rho n + sqrt(1 - rho^2) Phi^-1(u))`` (``u`` itself when rho = 0).

    ``u`` ~ U(0, 1) and ``n`` ~ N(0, 1) independent give a uniform whose normal score has
    correlation ``rho`` with ``n``: the trade-imbalance category is drawn with it, so the
    imbalance and the OFI (``mu + sd n``) keep their marginals and get the copula correlation."""
    if rho == 0.0:
        return u
    z = rho * n + math.sqrt(1.0 - rho * rho) * _ndtri(u)
    return 0.5 * math.erfc(-z * 0.7071067811865476)


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
    mx = _rowmax(row, o, K)
    tot = 0.0
    m1 = 0.0
    m2 = 0.0
    for k in range(K):
        w = _exp(row[o + k] - mx)
        mu = row[o + K + k]
        sd = _exp(_clamp(row[o + 2 * K + k], _LS_LO, _LS_HI))
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
    m_dn = math.exp(_clamp(row[o + n], _LS_LO, _LS_HI))
    m_up = math.exp(_clamp(row[o + n + 1], _LS_LO, _LS_HI))
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
    g_dn = _clamp(row[o + n], _LS_LO, _LS_HI)
    g_up = _clamp(row[o + n + 1], _LS_LO, _LS_HI)
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
    """One model bar for env ``i``; returns (market volume, mixture variance, expected perm. impact USD)."""
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
    traded = u_trade >= _sigmoid(row[ofo + 0])
    lv = row[ofo + 1] + _exp(_clamp(row[ofo + 2], _LS_LO, _LS_HI)) * n_vol
    lc = row[ofo + 3] + _exp(_clamp(row[ofo + 4], _LS_LO, _LS_HI)) * n_cnt
    ofi0 = row[ofo + 5] + _exp(_clamp(row[ofo + 6], _LS_LO, _LS_HI)) * n_ofi
    if meta[M_OFISL] > 0.0:  # zero-inflated signed log-normal OFI (1 s model): coupled uniforms, no extra draw
        mag = _exp(_clamp(ofi0, -50.0, 50.0))
        ofi0 = -mag if u_imb < 1.0 - _sigmoid(row[ofo + N_FLOW + 1]) else mag
        if u_trade < _sigmoid(row[ofo + N_FLOW]):
            ofi0 = 0.0
    kb = _categorical(row, ofo + 7, IMB_BINS, u_imb)
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
    n_head = NM + S + 4
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
        kc = _categorical(row, oho, K, u_comp)
        r = row[oho + K + kc] + _exp(_clamp(row[oho + 2 * K + kc], _LS_LO, _LS_HI)) * n_ret
        ret = half * math.floor(r * sig / half + 0.5)
    ks = _categorical(row, oho + NM, S, u_spr)
    ls = SPREAD_LO + (ks + u_spr_in) * ((SPREAD_HI - SPREAD_LO) / S) + meta[M_SREL] * row[ox + F_SLVL]
    spread = tick * math.floor(P[i, Q_MSPR] * _exp(ls) / tick + 0.5)
    if spread < tick:
        spread = tick
    od = oho + NM + S
    ldep = row[od] + _exp(_clamp(row[od + 1], _LS_LO, _LS_HI)) * n_dep
    timb = _tanh(row[od + 2] + _exp(_clamp(row[od + 3], _LS_LO, _LS_HI)) * n_timb)

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


@njit(inline="always")
def _exec_price(P, i, q, vol, sigma_step, mid0, spread0):
    """Execution price of the agent's ``q`` over the step and its temporary cost per share (USD):
    ``mid0 + sign(q) (spread0 / 2 + temp)``, ``temp = Y sigma_step (|q| / max(V_step, 1))^delta``.
    One definition for the per-env and the batch kernels."""
    aq = abs(q)
    temp = 0.0
    if aq > 0.0:
        temp = P[i, Q_Y] * sigma_step * (aq / max(vol, 1.0)) ** P[i, Q_DELTA]
    sgn = 1.0 if q > 0.0 else (-1.0 if q < 0.0 else 0.0)
    return mid0 + sgn * (0.5 * spread0 + temp), temp


@njit(inline="always")
def _imp_f(x, c, d):
    """Displacement of the impact state ``x`` (signed shares): ``sign(x) c |x|^d`` (USD)."""
    return c * abs(x) ** d if x >= 0.0 else -c * (-x) ** d


@njit(inline="always")
def _imp_avg(x, q, c, d):
    """Mean of ``_imp_f`` over the fill ``x -> x + q`` (q != 0): ``(G(x + q) - G(x)) / q`` with
    ``G(x) = c |x|^(1+d) / (1+d)`` its antiderivative; the midpoint value when ``|q|`` is tiny
    against ``|x|`` (where the difference would cancel)."""
    if abs(q) <= 1e-7 * abs(x):
        return _imp_f(x + 0.5 * q, c, d)
    return c * (abs(x + q) ** (1.0 + d) - abs(x) ** (1.0 + d)) / ((1.0 + d) * q)


@njit(inline="always")
def _sqrt_impact(P, i, row, oimp, q, mid0, spread0):
    """The agent-impact channel (``impact="sqrt"``) for an order of ``q`` shares (+ buy) at the step start.

    State ``row[oimp] = X_p`` (the agent's cumulative signed shares) and ``row[oimp + 1] = X_t``
    (the same, decaying by ``Q_IDEC`` per step); the agent's displacement of the mid is
    ``D = w F(X_p) + (1 - w) F(X_t)``, ``F(x) = sign(x) c |x|^delta``, ``c = Y sigma_D / V_D^delta``
    (session constants: a ``c`` varying within an episode would rescale ``D``). ``row[PERM_IMPACT]``
    holds the ``D`` already in the mid. The order walks both states from ``X`` to ``X + q``
    and pays the mean displacement along the way (``_imp_avg``) over the pre-trade one.
    Returns ``(price, temp, dD)``: execution price ``mid0 + sign(q) spread0 / 2 + (mean D - D)``,
    the temporary cost per share ``|mean D - D|`` (USD) and the change of ``D`` over the step
    (trade, then decay), which the caller adds to the mid; updates the state and PERM_IMPACT."""
    xp = row[oimp]
    xt = row[oimp + 1]
    if q == 0.0 and xp == 0.0 and xt == 0.0:  # no agent flow yet: nothing to displace (no pow calls)
        return mid0, 0.0, 0.0
    d = P[i, Q_IDEL]
    c = P[i, Q_IC]
    w = P[i, Q_IPF]
    d_old = row[PERM_IMPACT]
    d0 = w * _imp_f(xp, c, d) + (1.0 - w) * _imp_f(xt, c, d)
    price = mid0
    temp = 0.0
    if q != 0.0:
        avg = w * _imp_avg(xp, q, c, d) + (1.0 - w) * _imp_avg(xt, q, c, d)
        temp = abs(avg - d0)
        price = mid0 + (0.5 * spread0 if q > 0.0 else -0.5 * spread0) + (avg - d0)
        xp += q
        xt += q
    xt *= P[i, Q_IDEC]
    row[oimp] = xp
    row[oimp + 1] = xt
    d1 = w * _imp_f(xp, c, d) + (1.0 - w) * _imp_f(xt, c, d)
    row[PERM_IMPACT] = d1
    return price, temp, d1 - d_old


@njit(inline="always")
def _check_batch_model(meta):
    if meta[M_KCAT] > 0.0 or meta[M_OFISL] > 0.0:
        raise ValueError("the batch kernels support only the mixture mid head and the Gaussian OFI head; the "
                         "1 s model runs through the per-env step_fn/reset_fn")


@njit
def _learned_step(i, row, args, st, q, vol_mult):
    P = args[10]
    nsub = int(P[i, Q_NSUB])
    dt = P[i, Q_DT]
    mid0 = row[MID]
    spread0 = row[SPREAD]
    qs = q / nsub
    vol = 0.0
    var = 0.0
    perm = 0.0
    ret = 0.0
    sq = P[i, Q_IMODE] > 0.0
    if sq:  # the market's own flow only: the agent acts through the impact channel
        qs = 0.0
    for _ in range(nsub):
        v, s2, p, r = _substep(i, row, args, st, qs, vol_mult)
        vol += v
        var += s2
        perm += p
        ret += r
    sigma_step = math.sqrt(var) * P[i, Q_SIG]
    if sq:
        price, temp, dd = _sqrt_impact(P, i, row, int(args[11][M_OIMP]), q, mid0, spread0)
        row[MID] += dd
        ret += dd
    else:
        price, temp = _exec_price(P, i, q, vol, sigma_step, mid0, spread0)
        row[PERM_IMPACT] += perm
    row[VOLUME] = vol
    row[LAST_RET] = ret
    row[TEMP_IMPACT] = temp
    row[SIGMA] = sigma_step / math.sqrt(dt)
    return price


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
    r_hc = r_ho + 3 * K + S + 4
    r_hco = r_hc + H
    r_rnd = r_hco + 3 * K
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
    _b_max(ws, r_o, K, r_mx, m)
    mx = ws[r_mx]
    tot = ws[r_tot]
    m1 = ws[r_m1]
    m2 = ws[r_var]
    for j in range(m):
        tot[j] = 0.0
        m1[j] = 0.0
        m2[j] = 0.0
    for k in range(K):
        lk = ws[r_o + k]
        mu = ws[r_o + K + k]
        ls = ws[r_o + 2 * K + k]
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

    Reads rows h, x, V_QS, V_VM and the per-env constants; writes the next h, x, V_MID,
    V_SPREAD, V_IMB and the bar's V_VOL, V_VAR, V_PERM, V_RET.
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
    _b_categorical(ws, r_fo + 7, IMB_BINS, r_rnd + 2, r_v + V_K, r_v + V_T0, r_v + V_T1, m)
    wbin = 2.0 / (IMB_BINS - 2)
    for j in range(m):
        traded = ws[r_rnd + 0, j] >= _sigmoid(ws[r_fo + 0, j])
        lv = ws[r_fo + 1, j] + _exp(_clamp(ws[r_fo + 2, j], _LS_LO, _LS_HI)) * ws[r_rnd + 1, j]
        lc = ws[r_fo + 3, j] + _exp(_clamp(ws[r_fo + 4, j], _LS_LO, _LS_HI)) * ws[r_rnd + 4, j]
        ofi0 = ws[r_fo + 5, j] + _exp(_clamp(ws[r_fo + 6, j], _LS_LO, _LS_HI)) * ws[r_rnd + 11, j]
        kb = ws[r_v + V_K, j]
        imb = -1.0 + (kb - 1.0 + ws[r_rnd + 3, j]) * wbin
        imb = -1.0 if kb == 0.0 else imb
        imb = 1.0 if kb == IMB_BINS - 1.0 else imb
        mvol = ws[r_v + V_MVOL, j]
        vol = mvol * _exp(lv) * ws[r_v + V_VM, j]
        vol = vol if traded else 0.0
        imb = imb if traded else 0.0
        buy0 = 0.5 * vol * (1.0 + imb)
        sell0 = 0.5 * vol * (1.0 - imb)
        qs = ws[r_v + V_QS, j]
        buy = buy0 + (qs if qs > 0.0 else 0.0)
        sell = sell0 + (-qs if qs < 0.0 else 0.0)
        tot = buy + sell
        ws[r_v + V_AIMB, j] = (buy - sell) / tot if tot > 0.0 else 0.0
        ws[r_v + V_A1, j] = (buy - sell) / mvol
        ws[r_v + V_A1C, j] = (buy0 - sell0) / mvol
        ofi0 = _clamp(ofi0, -RET_CLIP, RET_CLIP)
        ws[r_v + V_OFI0, j] = ofi0
        ws[r_v + V_A0, j] = _clamp(ofi0 + qs / ws[r_v + V_OFIS, j], -RET_CLIP, RET_CLIP)
        ws[r_v + V_TOT, j] = tot
        ws[r_v + V_VOL, j] = vol
        ws[r_v + V_LC, j] = lc
        ws[r_v + V_TRADED, j] = 1.0 if traded else 0.0
    # M: GRU update with the control (agent included); gi without the control is shared
    # with the counterfactual
    _b_matvec(Wih, bih, 3 * H, E, ws, r_z, r_gib, m)
    _b_matvec(Whh, bhh, 3 * H, H, ws, r_h, r_gh, m)
    _b_gates(Wih, E, H, ws, r_gib, r_gh, r_h, r_hn, r_v + V_A0, r_v + V_A1, m)
    n_head = 3 * K + S + 4
    _b_matvec(Wo, bo, n_head, H, ws, r_hn, r_ho, m)
    _b_mix_mean_var(ws, r_ho, K, r_v + V_MQ, r_v + V_VAR, r_v + V_T0, r_v + V_T1, m)
    any_q = False
    for j in range(m):
        if ws[r_v + V_QS, j] != 0.0 and ws[r_v + V_TRACK, j] > 0.0:
            any_q = True
    if any_q:  # counterfactual update without the agent's flow (expected permanent impact)
        _b_gates(Wih, E, H, ws, r_gib, r_gh, r_h, r_hc, r_v + V_OFI0, r_v + V_A1C, m)
        _b_matvec(Wo, bo, 3 * K, H, ws, r_hc, r_hco, m)
        _b_mix_mean_var(ws, r_hco, K, r_v + V_PERM, r_v + V_T2, r_v + V_T0, r_v + V_T1, m)
        for j in range(m):
            on = ws[r_v + V_QS, j] != 0.0 and ws[r_v + V_TRACK, j] > 0.0
            d = (ws[r_v + V_MQ, j] - ws[r_v + V_PERM, j]) * ws[r_v + V_SIG, j]
            ws[r_v + V_PERM, j] = d if on else 0.0
    else:
        for j in range(m):
            ws[r_v + V_PERM, j] = 0.0
    # heads: sample the next bar
    _b_categorical(ws, r_ho, K, r_rnd + 5, r_v + V_K, r_v + V_T0, r_v + V_T1, m)
    for j in range(m):
        ws[r_v + V_T2, j] = 0.0  # mu of the drawn component
        ws[r_v + V_T0, j] = 0.0  # its log sd
    for k in range(K):
        for j in range(m):
            sel = ws[r_v + V_K, j] == k
            ws[r_v + V_T2, j] = ws[r_ho + K + k, j] if sel else ws[r_v + V_T2, j]
            ws[r_v + V_T0, j] = ws[r_ho + 2 * K + k, j] if sel else ws[r_v + V_T0, j]
    _b_categorical(ws, r_ho + 3 * K, S, r_rnd + 7, r_v + V_K, r_v + V_T1, r_v + V_IMB, m)
    od = r_ho + 3 * K + S
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
        ldep = ws[od, j] + _exp(_clamp(ws[od + 1, j], _LS_LO, _LS_HI)) * ws[r_rnd + 9, j]
        timb = _tanh(ws[od + 2, j] + _exp(_clamp(ws[od + 3, j], _LS_LO, _LS_HI)) * ws[r_rnd + 10, j])
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
        ws[r_v + V_TRACK, j] = P[i, Q_TRACK]
        ws[r_v + V_SLA, j] = P[i, Q_SLA]
        ws[r_v + V_AVOL, j] = 0.0
        ws[r_v + V_AVAR, j] = 0.0
        ws[r_v + V_APERM, j] = 0.0
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
        # impact="sqrt": the market's own flow only, the agent acts through the impact channel
        ws[r_v + V_QS, j] = 0.0 if P[i, Q_IMODE] > 0.0 else q[i] / nsub
        ws[r_v + V_VM, j] = vol_mult[i]
    for _ in range(nsub):
        _b_draws(ws, r_rnd, rng, stream, idx, lo, m, P)
        _b_bar(args, ws, m)
        for j in range(m):
            ws[r_v + V_AVOL, j] += ws[r_v + V_VOL, j]
            ws[r_v + V_AVAR, j] += ws[r_v + V_VAR, j]
            ws[r_v + V_APERM, j] += ws[r_v + V_PERM, j]
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
        dd = 0.0
        if P[i, Q_IMODE] > 0.0:
            price[i], temp, dd = _sqrt_impact(P, i, row, oimp, q[i], mid0, spread0)
            ret += dd
        else:
            price[i], temp = _exec_price(P, i, q[i], vol, sigma_step, mid0, spread0)
            row[PERM_IMPACT] += ws[r_v + V_APERM, j]
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
        ws[r_v + V_QS, j] = 0.0
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


# ---------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------
def export_args(ck: Checkpoint) -> tuple:
    """The float64 weight arrays of the kernels (without ``P``) and the layout vector."""
    w = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in ck.weights.items()}
    c = ck.model_config
    meta, n_state = _layout(c.hidden, c.latent, c.n_mix, c.spread_bins,
                            kcat=c.mid_half_ticks if c.categorical else 0,
                            ofi_sl=c.ofi_head == "zero_signed_lognormal", spread_rel=c.spread_level)
    return (w["enc.weight"], w["enc.bias"], w["flow.weight"], w["flow.bias"], w["gru.weight_ih_l0"],
            w["gru.weight_hh_l0"], w["gru.bias_ih_l0"], w["gru.bias_hh_l0"], w["head.weight"], w["head.bias"]), meta, n_state


class LearnedDynamics(MarketDynamics):
    """GRU bar world model (see the module docstring) as a :class:`MarketDynamics`.

    Arguments
    ---------
    checkpoint: a :class:`Checkpoint`, the path of one, or a sequence of them (models with
        different bar lengths; ``args(n_envs, dt)`` uses the coarsest bar that divides ``dt``).
        Default: the shipped 1-minute model; :meth:`load_default` takes every shipped one.
    asset: ticker whose normalisation statistics to use (``"GOOG"``, ``"AMZN"`` for
        the shipped model), or a sequence of ``n_envs`` tickers (one per env).
    s0: starting mid (USD); default the asset's first training mid.
    impact: the agent's impact channel (module docstring). ``"sqrt"`` (default): the fitted
        square-root law (:class:`~lobworld.world_models.impact.ImpactModel`) with a decaying
        transient part; the GRU sees only the market's own flow. ``"gru"``: the legacy channel,
        the agent's flow added to the GRU's control and the temporary cost
        ``sqrt_y sigma_step (|q| / V_step)^impact_exponent``.
    impact_model: an :class:`~lobworld.world_models.impact.ImpactModel` for every asset, or a
        dict of them by asset; default: the model fitted on the asset's shipped LOBSTER day
        (``assets/fitted/<asset>.json``), else the square-root prior ``ImpactParams()`` scaled to
        the asset's session sigma and volume, with a warning. ``impact="sqrt"`` only.
    impact_decay_s: e-folding time (seconds) of the transient part of the agent's impact
        (``math.inf``: none decays). ``impact="sqrt"`` only.
    sqrt_y: the temporary-impact constant ``Y`` (dimensionless); ``impact="gru"`` only.
    impact_exponent: ``delta`` in ``(|q| / V)^delta``; 0.5 is the square-root law; ``impact="gru"`` only.
    track_permanent: compute ``PERM_IMPACT`` by the counterfactual GRU update
        (doubles the cost of steps with ``q != 0``; the dynamics are the same either way);
        ``impact="gru"`` only (with ``"sqrt"``, ``PERM_IMPACT`` is the displacement ``D``).
    burn_in: model bars run at reset (no agent flow) before the episode starts
        (default: 5 minutes of model time).
    batch: let envs that can (the execution env) step the market with the batch-level
        kernels ``batch_step_fn``/``batch_reset_fn`` (same market, about 4x faster); False
        forces the per-env ``step_fn``. Models the batch kernels do not implement (the 1 s
        categorical-head / signed-OFI model) always run per env.
    """

    name = "learned"
    reset_fn = staticmethod(_learned_reset)
    step_fn = staticmethod(_learned_step)
    batch_reset_fn = staticmethod(learned_batch_reset)
    batch_step_fn = staticmethod(learned_batch_step)

    def __init__(self, checkpoint: Checkpoint | str | pathlib.Path | Sequence | None = None,
                 asset: str | Sequence[str] | None = None, *, s0: float | None = None, sqrt_y: float = 0.5,
                 impact_exponent: float = 0.5, track_permanent: bool = True, burn_in: int | None = None,
                 batch: bool = True, impact: str = "sqrt", impact_model=None, impact_decay_s: float = 60.0):
        if checkpoint is None:
            checkpoint = DEFAULT_CHECKPOINT
        cands = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
        if not cands:
            raise ValueError("LearnedDynamics: no checkpoint given")
        cks = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in cands]
        cks.sort(key=lambda c: -c.dt)  # coarsest bar first: fewest sub-steps per env step
        if asset is None:
            common = set.intersection(*(set(c.assets) for c in cks))
            if not common:
                raise ValueError("LearnedDynamics: the checkpoints share no asset; pass asset=...")
            asset = "GOOG" if "GOOG" in common else sorted(common)[0]
        for ck in cks:
            for a in [asset] if isinstance(asset, str) else list(asset):
                if a not in ck.assets:
                    raise ValueError(f"LearnedDynamics: asset {a!r} not in the checkpoint (has {sorted(ck.assets)})")
        self.asset = asset
        for name, v in (("sqrt_y", sqrt_y), ("impact_exponent", impact_exponent)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"LearnedDynamics.{name} must be a finite number >= 0, got {v!r}")
        if s0 is not None and not (math.isfinite(s0) and s0 > 0):
            raise ValueError(f"LearnedDynamics.s0 must be a positive price, got {s0!r}")
        if burn_in is not None and (not isinstance(burn_in, int) or burn_in < 0):
            raise ValueError(f"LearnedDynamics.burn_in must be an int >= 0, got {burn_in!r}")
        self.s0, self.sqrt_y, self.impact_exponent = s0, float(sqrt_y), float(impact_exponent)
        if impact not in ("sqrt", "gru"):
            raise ValueError(f"LearnedDynamics.impact must be 'sqrt' or 'gru', got {impact!r}")
        if not (isinstance(impact_decay_s, numbers.Real) and not isinstance(impact_decay_s, bool)
                and impact_decay_s > 0 and not math.isnan(impact_decay_s)):
            raise ValueError(f"LearnedDynamics.impact_decay_s must be a positive number of seconds (inf: no "
                             f"decay), got {impact_decay_s!r}")
        self.impact, self.impact_decay_s = impact, float(impact_decay_s)
        self._impact_model_arg = impact_model
        self.impact_models = self._impact_models(impact_model, [asset] if isinstance(asset, str) else list(asset))
        self.track_permanent, self._burn_in = bool(track_permanent), burn_in
        self.batch = bool(batch)
        self._models = [(ck, *export_args(ck)) for ck in cks]
        self.n_state = max(m[3] for m in self._models)
        self._use(0)

    @staticmethod
    def _impact_models(impact_model, assets) -> dict:
        """Asset -> ImpactModel: the given one (for every asset, or a dict by asset), else the model
        fitted on the shipped LOBSTER day of the asset; an asset with neither gets the square-root
        prior ``ImpactParams()`` scaled to its own session sigma and volume, with a warning."""
        from lobworld.world_models.impact import FITTED_DIR, ImpactModel

        out = {}
        for a in dict.fromkeys(assets):
            m = impact_model.get(a) if isinstance(impact_model, dict) else impact_model
            if m is None and (FITTED_DIR / f"{a.lower()}.json").is_file():
                m = ImpactModel.load_fitted(a)
            if m is not None and not isinstance(m, ImpactModel):
                raise TypeError(f"LearnedDynamics.impact_model must be an ImpactModel or a dict of them, got {m!r}")
            out[a] = m
        return out

    def impact_columns(self, asset: str, dt: float) -> tuple[float, float, float, float]:
        """``(c, delta, w, decay)`` of the impact channel for ``asset`` at env step ``dt``:
        ``c = Y sigma_D / V_D^delta``, the permanent weight ``w`` and the per-step decay ``exp(-dt / tau)``.

        ``w`` is set so that the channel reproduces the fitted ``permanent_fraction`` the way it
        was measured (the mid ``RunRule.horizon_s`` = 120 s after a short run over its peak):
        ``w + (1 - w) exp(-120 delta / tau) = permanent_fraction``, clipped to [0, 1]."""
        from lobworld.world_models.impact import ImpactParams, RunRule

        if asset not in self.impact_models:
            self.impact_models.update(self._impact_models(self._impact_model_arg, [asset]))
        m = self.impact_models[asset]
        if m is not None:
            p = m.params
            sig_d, v_d = p.sigma_ref, p.V_ref
        else:
            import warnings

            p = ImpactParams()
            s = self.checkpoint.assets[asset]
            n_bars = 23400.0 / self.checkpoint.dt
            sig_d, v_d = s.sigma_bar * math.sqrt(n_bars), s.mean_volume * n_bars
            warnings.warn(f"LearnedDynamics: no fitted impact model for {asset!r}; using the square-root prior "
                          f"Y={p.Y}, delta={p.delta} with the asset's session sigma and volume (fit one with "
                          "`lobworld world-model fit-impact` and pass impact_model=)", stacklevel=3)
        c = p.Y * sig_d / v_d ** p.delta
        e = math.exp(-RunRule().horizon_s * p.delta / self.impact_decay_s)
        if e > p.permanent_fraction and e < 1.0:
            import warnings

            warnings.warn(f"LearnedDynamics: with impact_decay_s={self.impact_decay_s:g} s the transient part alone keeps "
                          f"{e:.2f} of the impact after {RunRule().horizon_s:g} s, more than the fitted permanent "
                          f"fraction {p.permanent_fraction:.2f} of {asset!r}; the permanent weight is 0 and all of the "
                          "impact decays (use a shorter impact_decay_s to match the fit)", stacklevel=3)
        w = p.permanent_fraction if e >= 1.0 else min(max((p.permanent_fraction - e) / (1.0 - e), 0.0), 1.0)
        return c, p.delta, w, math.exp(-dt / self.impact_decay_s)

    def _use(self, k: int) -> None:
        ck, self._weights, self._meta, _n = self._models[k]
        # the batch kernels implement the mixture mid head and the Gaussian OFI head only
        ok = self.batch and self._meta[M_KCAT] == 0.0 and self._meta[M_OFISL] == 0.0
        self.batch_step_fn = learned_batch_step if ok else None
        self.batch_reset_fn = learned_batch_reset if ok else None
        self.checkpoint = ck
        self.model_dt = ck.dt
        self.burn_in = self._burn_in if self._burn_in is not None else max(1, int(math.ceil(300.0 / ck.dt)))

    @classmethod
    def load_default(cls, **kwargs) -> "LearnedDynamics":
        """Every shipped checkpoint (1-minute and 10-second bars; GOOG and AMZN 2012-06-21).

        ``args(n_envs, dt)`` then uses the coarsest model whose bar divides ``dt``.
        """
        paths = sorted(DEFAULT_CHECKPOINT.parent.glob("bar_gru_*.npz"))
        if not paths:
            raise CheckpointError(f"no shipped checkpoint in {DEFAULT_CHECKPOINT.parent} (broken install?)")
        return cls(paths, **kwargs)

    def _select(self, dt: float) -> int:
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        for k, m in enumerate(self._models):
            n = dt / m[0].dt
            j = int(round(n))
            if j >= 1 and abs(n - j) <= 1e-9 * max(1.0, n):
                return k
        bars = ", ".join(f"{m[0].dt:g}s" for m in self._models)
        raise ValueError(f"env dt={dt}s is not a whole multiple of the learned model's bar length ({bars}); "
                         "use such a dt or train a model at another freq")

    def n_substeps(self, dt: float) -> int:
        """Model bars per env step; raises ``ValueError`` unless ``dt`` is a whole multiple of a model's bar."""
        return int(round(dt / self._models[self._select(dt)][0].dt))

    def param_rows(self, n_envs: int, dt: float) -> np.ndarray:
        self._use(self._select(dt))
        nsub = self.n_substeps(dt)
        names = [self.asset] * n_envs if isinstance(self.asset, str) else list(self.asset)
        if len(names) != n_envs:
            raise ValueError(f"LearnedDynamics: got {len(names)} assets for {n_envs} envs")
        P = np.empty((n_envs, N_Q), dtype=np.float64)
        sq = self.impact == "sqrt"
        gaussian_ofi = self._meta[M_OFISL] == 0.0  # the 1 s model's OFI sign already shares u_imb
        cols = {a: self.impact_columns(a, dt) if sq else (0.0, 0.5, 0.0, 1.0) for a in dict.fromkeys(names)}
        sla = float(spread_level_decay(self.checkpoint.dt))
        for i, a in enumerate(names):
            s = self.checkpoint.assets[a]
            P[i] = (self.s0 if self.s0 is not None else s.s0, s.tick, s.sigma_bar, s.median_spread, s.mean_volume,
                    s.mean_count, s.mean_depth, dt, nsub, self.sqrt_y, self.impact_exponent,
                    1.0 if (self.track_permanent and not sq) else 0.0, self.burn_in, s.ofi_scale, asset_scale(s),
                    1.0 if sq else 0.0, *cols[a], s.flow_rho if gaussian_ofi else 0.0, sla)
        return P

    def workspace(self, n_envs: int) -> np.ndarray:
        """Scratch of the batch kernels: ``(n_chunks, rows, BATCH_CHUNK)`` float64, chunk ``c`` for envs
        ``c * BATCH_CHUNK ...`` (rows for the largest of the loaded models)."""
        rows = max(workspace_rows(m[0].model_config.hidden, m[0].model_config.latent, m[0].model_config.n_mix,
                                  m[0].model_config.spread_bins) for m in self._models)
        n_chunks = max(1, -(-int(n_envs) // BATCH_CHUNK))
        return np.zeros((n_chunks, rows, BATCH_CHUNK), dtype=np.float64)

    def args(self, n_envs: int, dt: float) -> tuple:
        """Weights of the model chosen for ``dt`` (coarsest bar dividing it), per-env rows, layout."""
        P = self.param_rows(n_envs, dt)
        return (*self._weights, P, self._meta)


# ---------------------------------------------------------------------------
# helpers for tests, evaluation and plots
# ---------------------------------------------------------------------------
def numba_forward(ck: Checkpoint, x: np.ndarray, a: np.ndarray, h: np.ndarray, asset: str | None = None):
    """Deterministic part of one model step in the Numba kernels (for parity tests).

    ``x`` (the model's ``n_inputs`` features or all ``N_FEATURES``), ``a`` (2,), ``h`` (H,) ->
    (flow outputs, head outputs, next hidden), float64. ``asset`` (default: the first stored)
    gives the asset-scale input of a categorical-head model.
    """
    weights, meta, n_state = export_args(ck)
    We, be, Wf, bf, Wih, Whh, bih, bhh, Wo, bo = weights
    c = ck.model_config
    x = np.asarray(x, dtype=np.float64)
    if x.shape not in ((c.n_inputs,), (N_FEATURES,)):
        raise ValueError(f"numba_forward: x must have {c.n_inputs} or {N_FEATURES} features, got shape {x.shape}")
    row = np.zeros(n_state)
    oh, ox, oz = int(meta[M_OH]), int(meta[M_OX]), int(meta[M_OZ])
    row[oh:oh + c.hidden] = h
    row[ox:ox + x.shape[0]] = x
    _encode(We, be, row, ox, oz)
    _flow_head(Wf, bf, row, oh, oz, int(meta[M_OFO]), c.hidden, c.latent)
    _gru(Wih, Whh, bih, bhh, row, oz, float(a[0]), float(a[1]), oh, int(meta[M_OGI]), int(meta[M_OGH]),
         int(meta[M_OHN]), c.hidden, c.latent)
    n_head = c.n_head_out
    _head(Wo, bo, row, int(meta[M_OHN]), int(meta[M_OHO]), n_head, c.hidden)
    if c.categorical:
        cs = asset_scale(ck.assets[asset if asset is not None else next(iter(ck.assets))])
        _head_scale(Wo, row, int(meta[M_OHO]), n_head, c.hidden, cs)
    fo = int(meta[M_OFO])
    ho = int(meta[M_OHO])
    hn = int(meta[M_OHN])
    return row[fo:fo + c.n_flow_out].copy(), row[ho:ho + n_head].copy(), row[hn:hn + c.hidden].copy()


@njit(cache=True)
def _rollout_kernel(rows, args, rng, stream, q, n_steps, mids, vols):
    for i in range(rows.shape[0]):
        st = rng[i, stream]
        mids[i, 0] = rows[i, MID]
        for t in range(n_steps):
            _learned_step(i, rows[i], args, st, q[i, t], 1.0)
            mids[i, t + 1] = rows[i, MID]
            vols[i, t] = rows[i, VOLUME]


def rollout(dyn: LearnedDynamics, n_paths: int, n_steps: int, dt: float, seed: int, q: np.ndarray | None = None,
            init_hidden: np.ndarray | None = None, init_x: np.ndarray | None = None, mid0: float | None = None):
    """Simulate ``n_paths`` independent paths of ``n_steps`` env steps; returns (mids (n, T+1), volumes (n, T)).

    Path ``i`` uses the stream ``seed_state(seed + i)``. With ``init_hidden`` /
    ``init_x`` / ``mid0`` the paths start from that state (no burn-in), e.g.
    the teacher-forced state of a real day.
    """
    from lobworld.envs.rng import seed_states

    args = dyn.args(n_paths, dt)
    rng = seed_states([seed + i for i in range(n_paths)], 1)
    rows = np.zeros((n_paths, dyn.n_state))
    meta = args[11]
    for i in range(n_paths):
        _learned_reset(i, rows[i], args, rng[i, 0])
        if init_hidden is not None:
            oh = int(meta[M_OH])
            rows[i, oh:oh + len(init_hidden)] = init_hidden
        if init_x is not None:
            ox = int(meta[M_OX])
            rows[i, ox:ox + N_FEATURES] = init_x
        if mid0 is not None:
            rows[i, MID] = mid0
    qq = np.zeros((n_paths, n_steps)) if q is None else np.ascontiguousarray(
        np.broadcast_to(np.asarray(q, dtype=np.float64), (n_paths, n_steps)))
    mids = np.empty((n_paths, n_steps + 1))
    vols = np.empty((n_paths, n_steps))
    _rollout_kernel(rows, args, rng, 0, qq, n_steps, mids, vols)
    return mids, vols

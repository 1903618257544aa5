"""Learned market dynamics for the batched envs: the GRU bar model in Numba.

:class:`LearnedDynamics` implements :class:`lobworld.envs.dynamics.MarketDynamics`
with the model of :mod:`lobworld.world_models.dynamics_model` exported to
float64 arrays. One env step of ``dt`` seconds runs ``n_sub = dt / model_dt``
model bars (``dt`` must be a whole multiple of the model's bar length).

Per model bar (the same random draws -- 6 uniforms, 6 normals -- whatever ``q``):

1. encode the last bar's features ``x`` -> ``z``; the flow head on ``(h, z)``
   samples the market's own flow: trade/no trade, volume (log-normal, times
   ``vol_mult``), trade count, trade-sign imbalance, multi-level OFI;
2. the agent's child order ``q / n_sub`` (signed shares) is added to the
   market's buy or sell volume and to its OFI, giving the control
   ``a = (OFI / OFI sd, signed volume / mean volume)``; ``h <- GRU([z, a], h)``;
3. the state heads on ``h`` sample the mid change (Gaussian mixture, in units
   of the asset's ``sigma_bar``; rounded to half ticks), the spread
   (categorical, rounded to ticks, >= 1 tick), top-of-book depth and
   imbalance, which become the next ``x``.

Execution price of the agent's order ``q`` (+ buy) over the step::

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
``track_permanent`` (it draws no random numbers).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np
from numba import njit

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
    F_SVOL,
    F_TIMB,
    F_TRADED,
    IMB_BINS,
    N_FEATURES,
    RET_CLIP,
    SPREAD_HI,
    SPREAD_LO,
    TIMB_CLIP,
)

__all__ = ["LearnedDynamics", "DEFAULT_CHECKPOINT", "export_args", "numba_forward", "rollout"]

#: the shipped checkpoint (see the README section "World models" for how it was trained)
DEFAULT_CHECKPOINT = pathlib.Path(__file__).parent / "assets" / "weights" / "bar_gru_60s.npz"

# ---- per-env parameter columns ---------------------------------------------
(Q_S0, Q_TICK, Q_SIG, Q_MSPR, Q_MVOL, Q_MCNT, Q_MDEP, Q_DT, Q_NSUB, Q_Y, Q_DELTA,
 Q_TRACK, Q_NBURN, Q_OFIS) = range(14)
N_Q = 14
# ---- layout vector (float64, cast to int in the kernels) ---------------------
(M_NMIX, M_NSPR, M_H, M_E, M_OH, M_OX, M_OZ, M_OGI, M_OGH, M_OHN, M_OFO, M_OHO, M_OHC, M_OHCO) = range(14)
N_FLOW = 7 + IMB_BINS
_LS_LO, _LS_HI = -7.0, 5.0


def _layout(H: int, E: int, n_mix: int, n_spr: int) -> tuple[np.ndarray, int]:
    n_head = 3 * n_mix + n_spr + 4
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
    off += N_FLOW
    oho = off
    off += n_head
    ohc = off
    off += H
    ohco = off
    off += 3 * n_mix
    meta = np.array([n_mix, n_spr, H, E, oh, ox, oz, ogi, ogh, ohn, ofo, oho, ohc, ohco], dtype=np.float64)
    return meta, off


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------
@njit(inline="always")
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(inline="always")
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@njit(cache=True, fastmath=True)
def _encode(We, be, row, ox, oz):
    E = We.shape[0]
    F = We.shape[1]
    for e in range(E):
        s = be[e]
        for f in range(F):
            s += We[e, f] * row[ox + f]
        row[oz + e] = math.tanh(s)


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
def _gru(Wih, Whh, bih, bhh, row, oz, a0, a1, oh, ogi, ogh, out, H, E):
    """torch.nn.GRUCell on input [z, a0, a1] and hidden row[oh:oh+H]; writes row[out:out+H]."""
    for g in range(3 * H):
        s = bih[g]
        for e in range(E):
            s += Wih[g, e] * row[oz + e]
        s += Wih[g, E] * a0 + Wih[g, E + 1] * a1
        row[ogi + g] = s
        t = bhh[g]
        for k in range(H):
            t += Whh[g, k] * row[oh + k]
        row[ogh + g] = t
    for k in range(H):
        r = _sigmoid(row[ogi + k] + row[ogh + k])
        u = _sigmoid(row[ogi + H + k] + row[ogh + H + k])
        n = math.tanh(row[ogi + 2 * H + k] + r * row[ogh + 2 * H + k])
        row[out + k] = (1.0 - u) * n + u * row[oh + k]


@njit(cache=True, fastmath=True)
def _head(Wo, bo, row, ohid, oout, n_out, H):
    for o in range(n_out):
        s = bo[o]
        for k in range(H):
            s += Wo[o, k] * row[ohid + k]
        row[oout + o] = s


@njit(inline="always")
def _mix_mean_var(row, o, K):
    mx = row[o]
    for k in range(1, K):
        if row[o + k] > mx:
            mx = row[o + k]
    tot = 0.0
    m1 = 0.0
    m2 = 0.0
    for k in range(K):
        w = math.exp(row[o + k] - mx)
        mu = row[o + K + k]
        sd = math.exp(_clamp(row[o + 2 * K + k], _LS_LO, _LS_HI))
        tot += w
        m1 += w * mu
        m2 += w * (sd * sd + mu * mu)
    m1 /= tot
    return m1, m2 / tot - m1 * m1


@njit(inline="always")
def _categorical(row, o, n, u):
    """Inverse-CDF draw from the softmax of row[o:o+n] with uniform u (overwrites the logits)."""
    mx = row[o]
    for k in range(1, n):
        if row[o + k] > mx:
            mx = row[o + k]
    tot = 0.0
    for k in range(n):
        w = math.exp(row[o + k] - mx)
        row[o + k] = w
        tot += w
    target = u * tot
    c = 0.0
    for k in range(n):
        c += row[o + k]
        if c >= target:
            return k
    return n - 1


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

    # V: encode; flow head on (h, z)
    _encode(We, be, row, ox, oz)
    _flow_head(Wf, bf, row, oh, oz, ofo, H, E)
    traded = u_trade >= _sigmoid(row[ofo + 0])
    lv = row[ofo + 1] + math.exp(_clamp(row[ofo + 2], _LS_LO, _LS_HI)) * n_vol
    lc = row[ofo + 3] + math.exp(_clamp(row[ofo + 4], _LS_LO, _LS_HI)) * n_cnt
    ofi0 = row[ofo + 5] + math.exp(_clamp(row[ofo + 6], _LS_LO, _LS_HI)) * n_ofi
    kb = _categorical(row, ofo + 7, IMB_BINS, u_imb)
    if kb == 0:
        imb = -1.0
    elif kb == IMB_BINS - 1:
        imb = 1.0
    else:
        imb = -1.0 + (kb - 1 + u_in) * (2.0 / (IMB_BINS - 2))
    vol = mvol * math.exp(lv) * vol_mult if traded else 0.0
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
    n_head = 3 * K + S + 4
    _head(Wo, bo, row, ohn, oho, n_head, H)
    m_q, var = _mix_mean_var(row, oho, K)
    perm = 0.0
    if qs != 0.0 and P[i, Q_TRACK] > 0.0:
        _gru(Wih, Whh, bih, bhh, row, oz, ofi0, (buy0 - sell0) / mvol, oh, ogi, ogh, ohc, H, E)
        _head(Wo, bo, row, ohc, ohco, 3 * K, H)
        m_0, _v0 = _mix_mean_var(row, ohco, K)
        perm = (m_q - m_0) * sig

    # heads: sample the next bar
    kc = _categorical(row, oho, K, u_comp)
    r = row[oho + K + kc] + math.exp(_clamp(row[oho + 2 * K + kc], _LS_LO, _LS_HI)) * n_ret
    half = 0.5 * tick
    ret = half * math.floor(r * sig / half + 0.5)
    ks = _categorical(row, oho + 3 * K, S, u_spr)
    ls = SPREAD_LO + (ks + u_spr_in) * ((SPREAD_HI - SPREAD_LO) / S)
    spread = tick * math.floor(P[i, Q_MSPR] * math.exp(ls) / tick + 0.5)
    if spread < tick:
        spread = tick
    od = oho + 3 * K + S
    ldep = row[od] + math.exp(_clamp(row[od + 1], _LS_LO, _LS_HI)) * n_dep
    timb = math.tanh(row[od + 2] + math.exp(_clamp(row[od + 3], _LS_LO, _LS_HI)) * n_timb)

    # new features and hidden state
    row[ox + F_RET] = _clamp(ret / sig, -RET_CLIP, RET_CLIP)
    row[ox + F_LSPR] = math.log(spread / P[i, Q_MSPR])
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
    row[PERM_IMPACT] = 0.0
    row[TEMP_IMPACT] = 0.0
    row[IMBALANCE] = 0.0
    row[SIGMA] = math.sqrt(var) * P[i, Q_SIG] * math.sqrt(P[i, Q_NSUB]) / math.sqrt(P[i, Q_DT])


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
    for _ in range(nsub):
        v, s2, p, r = _substep(i, row, args, st, qs, vol_mult)
        vol += v
        var += s2
        perm += p
        ret += r
    sigma_step = math.sqrt(var) * P[i, Q_SIG]
    aq = abs(q)
    temp = 0.0
    if aq > 0.0:
        temp = P[i, Q_Y] * sigma_step * (aq / max(vol, 1.0)) ** P[i, Q_DELTA]
    sgn = 1.0 if q > 0.0 else (-1.0 if q < 0.0 else 0.0)
    row[VOLUME] = vol
    row[LAST_RET] = ret
    row[PERM_IMPACT] += perm
    row[TEMP_IMPACT] = temp
    row[SIGMA] = sigma_step / math.sqrt(dt)
    return mid0 + sgn * (0.5 * spread0 + temp)


# ---------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------
def export_args(ck: Checkpoint) -> tuple:
    """The float64 weight arrays of the kernels (without ``P``) and the layout vector."""
    w = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in ck.weights.items()}
    c = ck.model_config
    meta, n_state = _layout(c.hidden, c.latent, c.n_mix, c.spread_bins)
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
    sqrt_y: the temporary-impact constant ``Y`` (dimensionless).
    impact_exponent: ``delta`` in ``(|q| / V)^delta``; 0.5 is the square-root law.
    track_permanent: compute ``PERM_IMPACT`` by the counterfactual GRU update
        (doubles the cost of steps with ``q != 0``; the dynamics are the same either way).
    burn_in: model bars run at reset (no agent flow) before the episode starts
        (default: 5 minutes of model time).
    """

    name = "learned"
    reset_fn = staticmethod(_learned_reset)
    step_fn = staticmethod(_learned_step)

    def __init__(self, checkpoint: Checkpoint | str | pathlib.Path | Sequence | None = None,
                 asset: str | Sequence[str] | None = None, *, s0: float | None = None, sqrt_y: float = 0.5,
                 impact_exponent: float = 0.5, track_permanent: bool = True, burn_in: int | None = None):
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
        self.track_permanent, self._burn_in = bool(track_permanent), burn_in
        self._models = [(ck, *export_args(ck)) for ck in cks]
        self.n_state = max(m[3] for m in self._models)
        self._use(0)

    def _use(self, k: int) -> None:
        ck, self._weights, self._meta, _n = self._models[k]
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
        for i, a in enumerate(names):
            s = self.checkpoint.assets[a]
            P[i] = (self.s0 if self.s0 is not None else s.s0, s.tick, s.sigma_bar, s.median_spread, s.mean_volume,
                    s.mean_count, s.mean_depth, dt, nsub, self.sqrt_y, self.impact_exponent,
                    1.0 if self.track_permanent else 0.0, self.burn_in, s.ofi_scale)
        return P

    def args(self, n_envs: int, dt: float) -> tuple:
        """Weights of the model chosen for ``dt`` (coarsest bar dividing it), per-env rows, layout."""
        P = self.param_rows(n_envs, dt)
        return (*self._weights, P, self._meta)


# ---------------------------------------------------------------------------
# helpers for tests, evaluation and plots
# ---------------------------------------------------------------------------
def numba_forward(ck: Checkpoint, x: np.ndarray, a: np.ndarray, h: np.ndarray):
    """Deterministic part of one model step in the Numba kernels (for parity tests).

    ``x`` (F,), ``a`` (2,), ``h`` (H,) -> (flow outputs, head outputs, next hidden), float64.
    """
    weights, meta, n_state = export_args(ck)
    We, be, Wf, bf, Wih, Whh, bih, bhh, Wo, bo = weights
    c = ck.model_config
    row = np.zeros(n_state)
    oh, ox, oz = int(meta[M_OH]), int(meta[M_OX]), int(meta[M_OZ])
    row[oh:oh + c.hidden] = h
    row[ox:ox + N_FEATURES] = x
    _encode(We, be, row, ox, oz)
    _flow_head(Wf, bf, row, oh, oz, int(meta[M_OFO]), c.hidden, c.latent)
    _gru(Wih, Whh, bih, bhh, row, oz, float(a[0]), float(a[1]), oh, int(meta[M_OGI]), int(meta[M_OGH]),
         int(meta[M_OHN]), c.hidden, c.latent)
    n_head = c.n_head_out
    _head(Wo, bo, row, int(meta[M_OHN]), int(meta[M_OHO]), n_head, c.hidden)
    fo = int(meta[M_OFO])
    ho = int(meta[M_OHO])
    hn = int(meta[M_OHN])
    return row[fo:fo + N_FLOW].copy(), row[ho:ho + n_head].copy(), row[hn:hn + c.hidden].copy()


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

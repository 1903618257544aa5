"""Bar-level learned market dynamics: a small V-M-C world model in PyTorch.

Description
-----------
One model step is one bar of ``dt`` seconds (1 s to 1 min). With ``x_t`` the
(normalised) features of bar ``t`` and ``h_t`` the GRU memory after bar ``t``:

* **V** (encoder): ``z_t = tanh(W_e x_t + b_e)`` summarises the microstructure
  at the end of bar ``t`` (mid change, spread, top-of-book depth and
  imbalance, traded volume, trade count, order-flow imbalance; with
  ``ModelConfig.spread_level`` also a 30-minute exponentially weighted level
  of the log spread).
* **flow head** ``p(a_{t+1}, v_{t+1}, c_{t+1} | h_t, z_t)``: the market's own
  order flow of the next bar -- P(no trade), log-normal volume, log-normal
  trade count, the trade-sign imbalance (categorical: exactly -1, seven
  interior bins, exactly +1) and the multi-level Cont-Kukanov-Stoikov OFI
  (Gaussian, in units of the asset's OFI sd).
* **M** (memory): ``h_{t+1} = GRU([z_t, a_{t+1}], h_t)`` with the control
  ``a = (OFI / OFI sd, signed aggressive volume / mean bar volume)`` of bar
  ``t+1``: in training the bar's historical values; in simulation the market's
  own flow that the flow head samples (the agent's orders are not in it, see
  "Agent impact" below).
* **state heads** on ``h_{t+1}``: mid change (a 3-component Gaussian mixture,
  in units of the asset's own per-bar volatility; or, ``mid_head="categorical"``,
  a probability mass function over the change in half ticks, whose head also
  gets the asset's scale ``log(sigma_bar / half tick)`` as an input), spread (categorical over 20
  bins of log(spread / the asset's median spread), rounded to ticks),
  log top-of-book depth (Gaussian) and top-of-book imbalance (Gaussian on
  ``atanh``).

Agent impact (not learned by this model)
----------------------------------------
The model learns the *contemporaneous* response of the mid to the bar's
aggressive flow from historical data, where that flow is not exogenous: it is
partly caused by the information that also moves the mid, so the learned
response is not the mechanical impact of an order. Treating the agent's child
order as one more aggressive order of the bar (the first design, kept as
:class:`~lobworld.world_models.learned.legacy.LegacyGRUImpactDynamics`) gave a
simulated mid response linear in the order size. The simulators therefore use
this model for the market's own flow only, and the agent's impact is a separate
channel: the square-root law fitted on the real tape
(:class:`lobworld.world_models.impact.ImpactModel`), applied by
:class:`lobworld.world_models.learned.LearnedDynamics`; the market's own path is
then the same with or without the agent (common random numbers).

Per-asset normalisation
-----------------------
Returns are divided by the asset's per-bar volatility ``sigma_bar`` (USD);
volumes, trade counts and depths by the asset's training means; spreads by its
median spread. One model is shared across assets; :class:`AssetStats` holds
the per-asset constants (kept in the checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch import nn
from lobworld._checks import in_range, integer, positive
from lobworld.errors import LobworldError


class ModelConfigError(LobworldError):
    """A bar world-model configuration or input that cannot be used (field named)."""


__all__ = [
    "ModelConfig",
    "AssetStats",
    "BarWorldModel",
    "FEATURES",
    "N_FEATURES",
    "IMB_BINS",
    "SPREAD_LO",
    "SPREAD_HI",
    "bar_features",
    "asset_stats",
    "MID_HEADS",
    "OFI_HEADS",
    "MIRROR_SIGN",
    "half_tick_changes",
    "asset_scale",
    "check_bar_columns",
    "spread_level",
    "spread_level_decay",
    "SPREAD_LEVEL_HALFLIFE_S",
    "O_NOTRADE", "O_LVOL_MU", "O_LVOL_LS", "O_LCNT_MU", "O_LCNT_LS", "O_OFI_MU", "O_OFI_LS", "O_IMB", "N_FLOW_OUT",
    "O_OFI_ZERO", "O_OFI_SIGN", "N_OFI_SL_OUT", "S_DEP_MU", "S_DEP_LS", "S_TIMB_MU", "S_TIMB_LS", "N_STATE_TAIL",
    "MIX_LOGIT", "MIX_MU", "MIX_LS", "N_MIX_BLOCKS", "CAT_G_DN", "CAT_G_UP", "N_CAT_TAILS", "LOGSD_LO", "LOGSD_HI",
]

#: feature columns of ``x_t`` (the encoder input), all dimensionless
FEATURES = (
    "ret",  # mid change / sigma_bar
    "log_spread",  # log(spread / median spread)
    "log_depth",  # log((bid_sz_1 + ask_sz_1) / mean)
    "top_imb",  # (bid_sz_1 - ask_sz_1) / (bid_sz_1 + ask_sz_1)
    "traded",  # 1 if any trade in the bar
    "log_vol",  # log(volume / mean volume), 0 if no trade
    "imb",  # trade-sign imbalance (buy - sell) / (buy + sell), 0 if no trade
    "svol",  # (buy - sell) / mean volume
    "log_cnt",  # log(n_trades / mean n_trades), 0 if no trade
    "ofi",  # multi-level Cont-Kukanov-Stoikov order-flow imbalance / the asset's OFI sd
    "spread_level",  # exponentially weighted mean of log_spread (half-life SPREAD_LEVEL_HALFLIFE_S), incl. this bar
)
N_FEATURES = len(FEATURES)
F_RET, F_LSPR, F_LDEP, F_TIMB, F_TRADED, F_LVOL, F_IMB, F_SVOL, F_LCNT, F_OFI, F_SLVL = range(N_FEATURES)
#: half-life (seconds of bar time) of the ``spread_level`` feature: the slow intraday level of the spread
#: (wide after the open, narrow into the close), which the bar-end spread alone hardly shows (its lag-1
#: autocorrelation at 1-minute bars is 0.28 on the GOOG and AMZN days)
SPREAD_LEVEL_HALFLIFE_S = 1800.0
#: features of the buy/sell mirror image of a bar: ``x * MIRROR_SIGN`` (signed quantities negated)
MIRROR_SIGN = np.ones(N_FEATURES, dtype=np.float32)
MIRROR_SIGN[[F_RET, F_TIMB, F_IMB, F_SVOL, F_OFI]] = -1.0
#: feature columns that form the control ``a`` (order-flow imbalance, signed aggressive volume)
CONTROL = [F_OFI, F_SVOL]

#: trade-imbalance categories: 0 is exactly -1, 8 exactly +1, 1..7 uniform bins on (-1, 1)
IMB_BINS = 9
#: spread categories: 20 equal bins of log(spread / median spread) on [SPREAD_LO, SPREAD_HI]
SPREAD_LO, SPREAD_HI = -2.5, 2.5
RET_CLIP = 12.0  # returns beyond +-12 sigma_bar are clipped in the features and the loss
TIMB_CLIP = 0.995

# ---- output layouts of the heads -----------------------------------------------------------
# One definition for the torch model below and the Numba kernels of lobworld.world_models.learned,
# which read the same outputs by these offsets (tests/test_world_model_layout.py checks both).
#: flow-head output layout: P(no trade) logit, log volume (mu, log sd), log count (mu, log sd), OFI (mu, log sd)
O_NOTRADE, O_LVOL_MU, O_LVOL_LS, O_LCNT_MU, O_LCNT_LS, O_OFI_MU, O_OFI_LS = range(7)
O_IMB = 7  # IMB_BINS logits
N_FLOW_OUT = O_IMB + IMB_BINS
# with ModelConfig.ofi_head == "zero_signed_lognormal": logits of P(OFI == 0) and P(OFI > 0 | OFI != 0);
# O_OFI_MU / O_OFI_LS are then the mean and log-sd of log|OFI / OFI sd| given OFI != 0
O_OFI_ZERO, O_OFI_SIGN = N_FLOW_OUT, N_FLOW_OUT + 1
N_OFI_SL_OUT = 2  #: extra flow outputs of the zero-signed-lognormal OFI head
#: state-head output layout: [mid head (ModelConfig.n_mid_out) | spread logits (spread_bins) | tail], with the
#: tail's offsets: log top-of-book depth (mu, log sd), atanh top-of-book imbalance (mu, log sd)
S_DEP_MU, S_DEP_LS, S_TIMB_MU, S_TIMB_LS = range(4)
N_STATE_TAIL = 4
#: mixture mid head: ``N_MIX_BLOCKS`` blocks of ``n_mix`` outputs (component ``k`` of block ``b`` at ``b * n_mix + k``)
MIX_LOGIT, MIX_MU, MIX_LS = range(3)
N_MIX_BLOCKS = 3
#: categorical mid head: ``n_mid_cat`` logits, then the tail log-means (down, up) at these offsets after them
CAT_G_DN, CAT_G_UP = range(2)
N_CAT_TAILS = 2
#: clamp of every log-sd and tail log-mean output (the same in the losses and the kernels)
LOGSD_LO, LOGSD_HI = -7.0, 5.0
#: values of ``ModelConfig.ofi_head``
OFI_HEADS = ("gaussian", "zero_signed_lognormal")


#: values of ``ModelConfig.mid_head``
MID_HEADS = ("mixture", "categorical")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`BarWorldModel`."""

    hidden: int = 16
    """GRU hidden size (keep 16-32: the Numba step cost grows as hidden**2)."""
    latent: int = 8
    """Size of the encoder output ``z``."""
    n_mix: int = 3
    """Gaussian mixture components of the mid-change head (``mid_head="mixture"`` only)."""
    spread_bins: int = 20
    """Categories of the spread head (bins of log(spread / median) on [-2.5, 2.5])."""
    mid_head: str = "mixture"
    """Mid-change head. ``"mixture"``: ``n_mix`` Gaussians on the mid change in units of the
    asset's per-bar sd (a density; simulation rounds to half ticks); the 60 s and 10 s models.
    ``"categorical"``: a probability mass function over the mid change in half ticks ``j``
    (integer): one category per ``j`` in ``-K..K`` (``K = mid_half_ticks``) and one tail
    category per side for ``|j| > K``, within which the excess ``|j| - K - 1`` is geometric
    with conditional mean ``exp(g)`` (``g`` an output per side, clamped to [-7, 5]). A proper
    discrete likelihood, for short bars where most mid changes are exactly 0 (the 1 s model).
    Checkpoints written before this field existed are mixtures."""
    mid_half_ticks: int = 12
    """``K`` of the categorical head (half ticks covered one by one); unused by the mixture head."""
    ofi_head: str = "gaussian"
    """Law of the market's OFI (in units of the asset's OFI sd) in the flow head. ``"gaussian"``
    (the 60 s / 10 s models). ``"zero_signed_lognormal"`` (1-second bars, where 35% of bars have
    no event at the touch, and then the mid stays put 99% of the time, and the non-zero OFI is
    very heavy-tailed: kurtosis 18 (GOOG) and 280 (AMZN), median |OFI| / sd 0.36 and 0.22):
    P(OFI == 0), P(OFI > 0 | OFI != 0) and a Gaussian for log|OFI| given OFI != 0 (two more
    outputs). Simulation draws no extra random numbers: OFI = 0 when the trade uniform is below
    P(OFI == 0) (so a zero-OFI bar is a no-trade bar while P(OFI == 0) <= P(no trade), as in the
    data: 39% of 1-second bars without a trade have zero OFI, 35% / 87.5% = 40% under this
    coupling); the sign is positive when the trade-imbalance uniform is above P(OFI < 0) (OFI
    and trade imbalance agree in sign in 78-81% of traded 1-second bars); the magnitude uses the
    OFI normal draw."""
    spread_level: bool = False
    """The encoder also reads the ``spread_level`` feature (the last of :data:`FEATURES`) and the
    spread head's categories cover the next bar's log spread *relative to that level*
    (``log(spread / median) - spread_level``), so the simulated spread fluctuates around its own
    slowly moving level. Without it the spread head is on ``log(spread / median)`` itself and,
    trained on 4 morning hours, it predicts nearly the training block's unconditional law
    whatever the state (predicted mean log spread: sd 0.02 across test bars), while the real
    spread narrows into the close. Checkpoints written before this field existed read the other
    features only."""

    def __post_init__(self) -> None:
        for name in ("hidden", "latent", "n_mix", "spread_bins", "mid_half_ticks"):
            integer(f"ModelConfig.{name}", getattr(self, name), error=ModelConfigError, what="a positive int")
        if self.spread_bins < 2:
            raise ModelConfigError(f"ModelConfig.spread_bins must be >= 2, got {self.spread_bins}")
        if self.mid_head not in MID_HEADS:
            raise ModelConfigError(f"ModelConfig.mid_head must be one of {MID_HEADS}, got {self.mid_head!r}")
        if self.ofi_head not in OFI_HEADS:
            raise ModelConfigError(f"ModelConfig.ofi_head must be one of {OFI_HEADS}, got {self.ofi_head!r}")
        if not isinstance(self.spread_level, bool):
            raise ModelConfigError(f"ModelConfig.spread_level must be true or false, got {self.spread_level!r}")

    @property
    def categorical(self) -> bool:
        """True for the categorical half-tick mid head."""
        return self.mid_head == "categorical"

    @property
    def n_inputs(self) -> int:
        """Encoder inputs: the first ``n_inputs`` of :data:`FEATURES` (all of them with ``spread_level``)."""
        return N_FEATURES if self.spread_level else N_FEATURES - 1

    @property
    def n_mid_cat(self) -> int:
        """Categories of the categorical mid head: ``2 K + 1`` half-tick values and two tails."""
        return 2 * self.mid_half_ticks + 3

    @property
    def n_mid_out(self) -> int:
        """Mid-head outputs: 3 per mixture component, or ``n_mid_cat`` logits + 2 tail log-means."""
        return self.n_mid_cat + N_CAT_TAILS if self.categorical else N_MIX_BLOCKS * self.n_mix

    @property
    def n_flow_out(self) -> int:
        """Flow-head outputs: 7 + IMB_BINS, plus the zero and sign logits of a zero-signed-lognormal OFI."""
        return N_FLOW_OUT + (N_OFI_SL_OUT if self.ofi_head == "zero_signed_lognormal" else 0)

    @property
    def n_head_out(self) -> int:
        """State-head outputs: the mid head, spread logits, 2 depth, 2 imbalance."""
        return self.n_mid_out + self.spread_bins + N_STATE_TAIL

    def to_dict(self) -> dict:
        """Fields as stored in a checkpoint (a mixture config omits the categorical fields, so
        its metadata is the same as before they existed)."""
        d = asdict(self)
        if not self.categorical:
            d.pop("mid_head")
            d.pop("mid_half_ticks")
        if self.ofi_head == "gaussian":
            d.pop("ofi_head")
        if not self.spread_level:
            d.pop("spread_level")
        return d


@dataclass(frozen=True)
class AssetStats:
    """Per-asset normalisation constants (estimated on the training split only)."""

    tick: float
    """Tick size (USD)."""
    sigma_bar: float
    """Standard deviation of the per-bar mid change (USD)."""
    median_spread: float
    """Median quoted spread at bar end (USD)."""
    mean_volume: float
    """Mean traded volume per bar (shares)."""
    mean_count: float
    """Mean number of trades per bar, over bars with a trade."""
    mean_depth: float
    """Mean top-of-book depth bid_sz_1 + ask_sz_1 (shares)."""
    s0: float
    """A representative mid price (USD): the first training mid."""
    ofi_scale: float = 1.0
    """Standard deviation of the per-bar multi-level OFI (shares)."""
    flow_rho: float = 0.0
    """Gaussian-copula correlation of the flow head's trade-imbalance and OFI draws (in (-1, 1);
    fitted by maximum likelihood after training, :func:`lobworld.world_models.training.fit_flow_copula`).
    The two heads are otherwise independent given the state, while in the data signed volume and OFI
    move together (correlation about 0.6 per 1-minute bar). 0: independent (checkpoints written
    before this field existed, and models whose OFI head is not Gaussian)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "flow_rho":
                in_range("AssetStats.flow_rho", v, -1.0, 1.0, lo_open=True, hi_open=True, error=ModelConfigError,
                         what="a finite number in (-1, 1)")
                continue
            positive(f"AssetStats.{f.name}", v, error=ModelConfigError, what="a finite positive number")

    def to_dict(self) -> dict[str, float]:
        """Fields as stored in a checkpoint (``flow_rho`` only when fitted, so older metadata is unchanged)."""
        d = {k: float(v) for k, v in asdict(self).items()}
        if d["flow_rho"] == 0.0:
            d.pop("flow_rho")
        return d


def asset_stats(bars, tick: float) -> AssetStats:
    """Estimate :class:`AssetStats` from a bar DataFrame (``make_bars`` columns)."""
    ret = bars["mid_ret"].to_numpy(float)[1:]
    vol = bars["volume"].to_numpy(float)
    cnt = bars["n_trades"].to_numpy(float)
    depth = bars["bid_sz_1"].to_numpy(float) + bars["ask_sz_1"].to_numpy(float)
    sig = float(np.std(ret)) if ret.size > 1 else float("nan")
    return AssetStats(
        tick=float(tick),
        sigma_bar=max(sig, 0.5 * tick),
        median_spread=max(float(np.median(bars["spread"].to_numpy(float))), tick),
        mean_volume=max(float(np.mean(vol)), 1.0),
        mean_count=max(float(np.mean(cnt[cnt > 0])) if (cnt > 0).any() else 1.0, 1.0),
        mean_depth=max(float(np.mean(depth)), 1.0),
        s0=float(bars["mid"].iloc[0]),
        ofi_scale=max(float(np.std(bars["ofi"].to_numpy(float))), 1.0),
    )


def asset_scale(stats: AssetStats) -> float:
    """``log(sigma_bar / half tick)``: the asset's per-bar volatility in half ticks (log), the extra
    state-head input of a categorical-mid-head model (GOOG 1 s: 2.1, AMZN: 1.4)."""
    return math.log(stats.sigma_bar / (0.5 * stats.tick))


def check_bar_columns(bars, names, *, error: type[Exception] = ValueError, prefix: str = "") -> None:
    """Raise ``error`` (message ``prefix`` + the problem) unless every column of ``names`` is in the bar
    frame and holds finite values only."""
    for c in names:
        if c not in bars.columns:
            raise error(f"{prefix}bar frame lacks column {c!r} (have {list(bars.columns)})")
        if not np.all(np.isfinite(bars[c].to_numpy(float))):
            raise error(f"{prefix}bar column {c!r} has NaN or inf values")


def bar_features(bars, stats: AssetStats) -> np.ndarray:
    """Normalised features ``x_t`` (shape ``(n_bars, N_FEATURES)``, float32) of a bar frame.

    Raises ``ValueError`` naming the column when a needed column is missing or
    holds NaN/inf.
    """
    check_bar_columns(bars, ("mid_ret", "spread", "bid_sz_1", "ask_sz_1", "volume", "buy_volume", "sell_volume",
                             "n_trades", "ofi"))
    n = len(bars)
    x = np.zeros((n, N_FEATURES), dtype=np.float64)
    x[:, F_RET] = np.clip(bars["mid_ret"].to_numpy(float) / stats.sigma_bar, -RET_CLIP, RET_CLIP)
    spr = np.maximum(bars["spread"].to_numpy(float), stats.tick)
    x[:, F_LSPR] = np.log(spr / stats.median_spread)
    b = bars["bid_sz_1"].to_numpy(float)
    a = bars["ask_sz_1"].to_numpy(float)
    d = np.maximum(b + a, 1.0)
    x[:, F_LDEP] = np.log(d / stats.mean_depth)
    x[:, F_TIMB] = np.clip((b - a) / d, -TIMB_CLIP, TIMB_CLIP)
    vol = bars["volume"].to_numpy(float)
    buy = bars["buy_volume"].to_numpy(float)
    sell = bars["sell_volume"].to_numpy(float)
    cnt = bars["n_trades"].to_numpy(float)
    traded = (vol > 0) & (cnt > 0)
    x[:, F_TRADED] = traded
    x[traded, F_LVOL] = np.log(vol[traded] / stats.mean_volume)
    tot = np.where(buy + sell > 0, buy + sell, 1.0)
    x[:, F_IMB] = np.where(traded, (buy - sell) / tot, 0.0)
    x[:, F_SVOL] = np.where(traded, (buy - sell) / stats.mean_volume, 0.0)
    x[traded, F_LCNT] = np.log(cnt[traded] / stats.mean_count)
    x[:, F_OFI] = np.clip(bars["ofi"].to_numpy(float) / stats.ofi_scale, -RET_CLIP, RET_CLIP)
    x[:, F_SLVL] = spread_level(x[:, F_LSPR], _bar_seconds(bars))
    return x.astype(np.float32)


def spread_level_decay(bar_seconds) -> np.ndarray | float:
    """Weight of the previous level in the ``spread_level`` update after a bar of ``bar_seconds``:
    ``0.5 ** (bar_seconds / SPREAD_LEVEL_HALFLIFE_S)``."""
    return 0.5 ** (np.asarray(bar_seconds, float) / SPREAD_LEVEL_HALFLIFE_S)


def spread_level(log_spread: np.ndarray, bar_seconds: np.ndarray) -> np.ndarray:
    """The ``spread_level`` feature: ``L_t = a_t L_{t-1} + (1 - a_t) log_spread_t``, ``L_{-1} = 0`` (the
    training median), ``a_t`` = :func:`spread_level_decay` of bar ``t``'s length."""
    a = spread_level_decay(bar_seconds)
    out = np.empty(len(log_spread), dtype=np.float64)
    lv = 0.0
    for t, (at, ls) in enumerate(zip(a, np.asarray(log_spread, float))):
        lv = at * lv + (1.0 - at) * ls
        out[t] = lv
    return out


def _bar_seconds(bars) -> np.ndarray:
    """Length of each bar (s): the ``bar_seconds`` column of ``make_bars``, else the spacing of a
    DatetimeIndex (the first bar as long as the median)."""
    if "bar_seconds" in bars.columns:
        v = bars["bar_seconds"].to_numpy(float)
    elif isinstance(bars.index, pd.DatetimeIndex) and len(bars) >= 2:
        d = np.diff(bars.index).astype("timedelta64[ns]").astype(np.int64) / 1e9
        v = np.concatenate([[np.median(d)], d])
    else:
        raise ModelConfigError("bar frame lacks column 'bar_seconds' and has no DatetimeIndex to derive bar lengths from")
    if not np.all(np.isfinite(v) & (v >= 0)):
        raise ModelConfigError("bar column 'bar_seconds' has NaN, inf or negative values")
    return v


def half_tick_changes(bars, tick: float) -> np.ndarray:
    """Mid change of every bar in half ticks (int64), the target of the categorical mid head.

    Raises ``ValueError`` when a change is not on the half-tick lattice (wrong tick size).
    """
    r = bars["mid_ret"].to_numpy(float) / (0.5 * tick)
    j = np.round(r)
    if r.size and np.max(np.abs(r - j)) > 1e-6:
        raise ModelConfigError(f"mid changes are not multiples of half a tick ({tick}); wrong tick size?")
    return j.astype(np.int64)


def imb_bin(imb: torch.Tensor) -> torch.Tensor:
    """Category of a trade imbalance in [-1, 1] (see :data:`IMB_BINS`)."""
    inner = torch.clamp(((imb + 1.0) / 2.0 * (IMB_BINS - 2)).floor().long() + 1, 1, IMB_BINS - 2)
    out = torch.where(imb <= -1.0 + 1e-9, torch.zeros_like(inner), inner)
    return torch.where(imb >= 1.0 - 1e-9, torch.full_like(inner, IMB_BINS - 1), out)


def spread_bin(ls: torch.Tensor, n_bins: int) -> torch.Tensor:
    w = (SPREAD_HI - SPREAD_LO) / n_bins
    return torch.clamp(((ls - SPREAD_LO) / w).floor().long(), 0, n_bins - 1)


class BarWorldModel(nn.Module):
    """Encoder + flow head + GRU + state heads (see the module docstring).

    ``forward(x, a)`` with ``x`` (B, T, F) the features of bars ``0..T-1`` and
    ``a`` (B, T, 2) the controls of bars ``1..T`` returns ``flow`` (B, T,
    n_flow_out), the flow-head outputs predicting bar ``t+1``'s flow from
    ``(h_t, z_t)``, and ``head`` (B, T, n_head_out), the state heads predicting
    bar ``t+1`` from ``h_{t+1}``. ``h_0`` is zero (or ``h0``).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.enc = nn.Linear(cfg.n_inputs, cfg.latent)
        self.flow = nn.Linear(cfg.hidden + cfg.latent, cfg.n_flow_out)
        self.gru = nn.GRU(cfg.latent + 2, cfg.hidden, batch_first=True)
        # the categorical mid head is in absolute half ticks, so the state heads also see the asset's
        # scale c = log(sigma_bar / half tick) (asset_scale); the mixture head is in sigma_bar units
        self.head = nn.Linear(cfg.hidden + (1 if cfg.categorical else 0), cfg.n_head_out)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """V: ``z = tanh(W_e x + b_e)`` of features ``x`` (..., N_FEATURES), on the model's ``n_inputs`` of them."""
        return torch.tanh(self.enc(x[..., :self.cfg.n_inputs]))

    def gru_step(self, inp: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``torch.nn.GRUCell`` semantics on the ``nn.GRU`` weights: (B, E+2), (B, H) -> (B, H)."""
        return self.gru(inp.unsqueeze(1), h.unsqueeze(0))[0][:, 0]

    def state_head(self, hs: torch.Tensor, c=None) -> torch.Tensor:
        """State-head outputs on hidden states ``hs`` (..., H); ``c`` (scalar or leading dims of ``hs``) is
        the asset scale :func:`asset_scale`, required by (and only used with) the categorical mid head."""
        if not self.cfg.categorical:
            return self.head(hs)
        if c is None:
            raise ModelConfigError("the categorical mid head needs the asset scale c = log(sigma_bar / half tick) (c=...)")
        c = torch.as_tensor(c, dtype=hs.dtype, device=hs.device)
        c = c.reshape(c.shape + (1,) * (hs.dim() - c.dim())).expand(hs.shape[:-1] + (1,))
        return self.head(torch.cat([hs, c], -1))

    def step(self, x: torch.Tensor, a: torch.Tensor, h: torch.Tensor, c=None):
        """One step: ``(flow_out, head_out, h_next)`` for features ``x`` (B, F), control ``a`` (B, 2)."""
        z = self.encode(x)
        flow = self.flow(torch.cat([h, z], dim=-1))
        h_next = self.gru_step(torch.cat([z, a], dim=-1), h)
        return flow, self.state_head(h_next, c), h_next

    def forward(self, x: torch.Tensor, a: torch.Tensor, h0: torch.Tensor | None = None, c=None):
        B, T, _ = x.shape
        h = x.new_zeros(B, self.cfg.hidden) if h0 is None else h0
        z = self.encode(x)
        hs, _ = self.gru(torch.cat([z, a], dim=-1), h.unsqueeze(0))
        h_prev = torch.cat([h.unsqueeze(1), hs[:, :-1]], 1)
        flow = self.flow(torch.cat([h_prev, z], dim=-1))
        return flow, self.state_head(hs, c), hs

    # ------------------------------------------------------------- heads
    def split_state(self, head: torch.Tensor):
        """Mid-head outputs, spread logits, depth (mu, logsd), top-imb (mu, logsd)."""
        m = self.cfg.n_mid_out
        t = m + self.cfg.spread_bins  # start of the tail
        return (head[..., :m], head[..., m:t], head[..., t + S_DEP_MU:t + S_DEP_LS + 1],
                head[..., t + S_TIMB_MU:t + S_TIMB_LS + 1])

    def split_head(self, head: torch.Tensor):
        """Mixture (logits, means, log-sds), spread logits, depth (mu, logsd), top-imb (mu, logsd)."""
        self._need("mixture")
        k = self.cfg.n_mix
        mid, sl, dep, timb = self.split_state(head)
        return (mid[..., MIX_LOGIT * k:(MIX_LOGIT + 1) * k], mid[..., MIX_MU * k:(MIX_MU + 1) * k],
                mid[..., MIX_LS * k:(MIX_LS + 1) * k], sl, dep, timb)

    def _need(self, kind: str) -> None:
        if self.cfg.mid_head != kind:
            raise ModelConfigError(f"this model has a {self.cfg.mid_head!r} mid head; the method needs {kind!r}")

    def ret_logpdf(self, head: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Log density of the normalised mid change ``r`` under the mixture head."""
        lw, mu, ls = self.split_head(head)[:3]
        ls = ls.clamp(LOGSD_LO, LOGSD_HI)
        logw = torch.log_softmax(lw, -1)
        z = (r.unsqueeze(-1) - mu) * torch.exp(-ls)
        comp = -0.5 * z * z - ls - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(logw + comp, -1)

    def ret_mean_var(self, head: torch.Tensor):
        lw, mu, ls = self.split_head(head)[:3]
        w = torch.softmax(lw, -1)
        s2 = torch.exp(2 * ls.clamp(LOGSD_LO, LOGSD_HI))
        m = (w * mu).sum(-1)
        return m, (w * (s2 + mu * mu)).sum(-1) - m * m

    def ret_cdf(self, head: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        lw, mu, ls = self.split_head(head)[:3]
        w = torch.softmax(lw, -1)
        z = (r.unsqueeze(-1) - mu) * torch.exp(-ls.clamp(LOGSD_LO, LOGSD_HI))
        return (w * 0.5 * (1 + torch.erf(z / math.sqrt(2)))).sum(-1)

    # ---------------------------------------------- categorical mid head
    def _mid_cat(self, head: torch.Tensor):
        """(log category probabilities (..., 2K+3), tail log-means g_down, g_up (clamped))."""
        self._need("categorical")
        n = self.cfg.n_mid_cat
        mid = self.split_state(head)[0]
        return (torch.log_softmax(mid[..., :n], -1), mid[..., n + CAT_G_DN].clamp(LOGSD_LO, LOGSD_HI),
                mid[..., n + CAT_G_UP].clamp(LOGSD_LO, LOGSD_HI))

    def mid_logpmf(self, head: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Log probability (nats) of the mid change of ``j`` half ticks (integer tensor) under the categorical head.

        ``P(j) = p[j + K + 1]`` for ``|j| <= K``; ``P(j) = p_tail (1 - q) q^e`` with ``e = |j| - K - 1``,
        ``q = m / (1 + m)``, ``m = exp(g)`` (the tail's mean excess) beyond.
        """
        logp, g_dn, g_up = self._mid_cat(head)
        K = self.cfg.mid_half_ticks
        j = j.long()
        c = torch.clamp(j, -K - 1, K + 1) + K + 1
        lp = torch.gather(logp, -1, c.unsqueeze(-1)).squeeze(-1)
        e = (j.abs() - K - 1).clamp(min=0).to(logp.dtype)
        g = torch.where(j > 0, g_up, g_dn)
        sp = nn.functional.softplus(g)
        geo = e * (g - sp) - sp  # log[(1-q) q^e]
        return lp + torch.where(j.abs() > K, geo, torch.zeros_like(geo))

    def mid_mean_var(self, head: torch.Tensor):
        """Mean and variance (half ticks, half ticks^2) of the categorical mid change."""
        logp, g_dn, g_up = self._mid_cat(head)
        K = self.cfg.mid_half_ticks
        p = torch.exp(logp)
        v = torch.arange(-K, K + 1, dtype=p.dtype, device=p.device)
        core = p[..., 1:-1]
        m_dn, m_up = torch.exp(g_dn), torch.exp(g_up)
        k1 = K + 1.0
        mean = (core * v).sum(-1) - p[..., 0] * (k1 + m_dn) + p[..., -1] * (k1 + m_up)
        sq = lambda m: k1 * k1 + 2 * k1 * m + m + 2 * m * m  # noqa: E731  E[(K+1+e)^2], e geometric of mean m
        ex2 = (core * v * v).sum(-1) + p[..., 0] * sq(m_dn) + p[..., -1] * sq(m_up)
        return mean, ex2 - mean * mean

    def mid_cdf(self, head: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """``P(J <= j)`` for integer half-tick changes ``j`` under the categorical head."""
        logp, g_dn, g_up = self._mid_cat(head)
        K = self.cfg.mid_half_ticks
        p = torch.exp(logp)
        cum = torch.cumsum(p, -1)
        j = j.long()
        c = torch.clamp(j, -K - 1, K + 1) + K + 1
        core = torch.gather(cum, -1, c.unsqueeze(-1)).squeeze(-1)
        lq_dn = g_dn - nn.functional.softplus(g_dn)
        lq_up = g_up - nn.functional.softplus(g_up)
        jf = j.to(p.dtype)
        down = p[..., 0] * torch.exp(lq_dn * (-jf - K - 1).clamp(min=0))
        up = 1.0 - p[..., -1] * torch.exp(lq_up * (jf - K).clamp(min=0))
        return torch.where(j < -K, down, torch.where(j > K, up, core))

    def losses(self, flow: torch.Tensor, head: torch.Tensor, y: torch.Tensor,
               half_ticks: torch.Tensor | None = None, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-element negative log-likelihoods (nats) of the next bar's features ``y`` (B, T, F).

        Keys: ``ret`` (mid change: density of ``y_ret`` for the mixture head; for the
        categorical head the probability of ``half_ticks`` (B, T), the next bar's mid change
        in half ticks, required then), ``spread`` (categorical over log(spread / median), or with
        ``spread_level`` over its difference from the current bar's level ``x[..., F_SLVL]``: ``x``,
        the features the model read (B, T, F), is required then), ``depth``, ``top_imb``,
        ``traded`` (Bernoulli), ``ofi``, and, masked to bars with trades (zero elsewhere),
        ``volume``, ``count``, ``imb``.
        """
        _, sl, dep, timb = self.split_state(head)
        if self.cfg.categorical:
            if half_ticks is None:
                raise ModelConfigError("the categorical mid head needs the half-tick mid changes (half_ticks=...)")
            out = {"ret": -self.mid_logpmf(head, half_ticks)}
        else:
            out = {"ret": -self.ret_logpdf(head, y[..., F_RET])}
        out["spread"] = nn.functional.cross_entropy(
            sl.reshape(-1, sl.shape[-1]), spread_bin(self.spread_target(y, x), sl.shape[-1]).reshape(-1),
            reduction="none").reshape(y.shape[:-1])
        out["depth"] = _gauss_nll(y[..., F_LDEP], dep[..., 0], dep[..., 1])
        out["top_imb"] = _gauss_nll(torch.atanh(y[..., F_TIMB]), timb[..., 0], timb[..., 1])
        traded = y[..., F_TRADED]
        out["traded"] = nn.functional.binary_cross_entropy_with_logits(
            -flow[..., O_NOTRADE], traded, reduction="none")
        out["volume"] = traded * _gauss_nll(y[..., F_LVOL], flow[..., O_LVOL_MU], flow[..., O_LVOL_LS])
        if self.cfg.ofi_head == "zero_signed_lognormal":
            o = y[..., F_OFI]
            zero = (o == 0).to(y.dtype)
            bce = nn.functional.binary_cross_entropy_with_logits
            lmag = torch.log(torch.where(o == 0, torch.ones_like(o), o.abs()))
            out["ofi"] = bce(flow[..., O_OFI_ZERO], zero, reduction="none") + (1 - zero) * (
                bce(flow[..., O_OFI_SIGN], (o > 0).to(y.dtype), reduction="none")
                + _gauss_nll(lmag, flow[..., O_OFI_MU], flow[..., O_OFI_LS]))
        else:
            out["ofi"] = _gauss_nll(y[..., F_OFI], flow[..., O_OFI_MU], flow[..., O_OFI_LS])
        out["count"] = traded * _gauss_nll(y[..., F_LCNT], flow[..., O_LCNT_MU], flow[..., O_LCNT_LS])
        il = flow[..., O_IMB:O_IMB + IMB_BINS]
        out["imb"] = traded * nn.functional.cross_entropy(
            il.reshape(-1, IMB_BINS), imb_bin(y[..., F_IMB]).reshape(-1), reduction="none").reshape(y.shape[:-1])
        return out

    def spread_target(self, y: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """What the spread head's categories cover: ``log(spread / median)`` of the next bar, or with
        ``spread_level`` its difference from the level the model read (``x[..., F_SLVL]``)."""
        if not self.cfg.spread_level:
            return y[..., F_LSPR]
        if x is None:
            raise ModelConfigError("a spread_level model's spread head is relative to the level feature: pass x=...")
        return y[..., F_LSPR] - x[..., F_SLVL]

    def sample_flow(self, flow: torch.Tensor, stats_mean_volume_ratio: float = 1.0, generator=None,
                    rho: float = 0.0) -> torch.Tensor:
        """Sample the control ``a = (ofi, svol)`` from flow-head outputs (evaluation helper).

        ``rho``: Gaussian-copula correlation of the trade-imbalance and OFI draws
        (:attr:`AssetStats.flow_rho`; Gaussian OFI head only), as in the simulation kernels."""
        shape = flow.shape[:-1]
        u = torch.rand(shape + (3,), generator=generator, dtype=flow.dtype)
        n_vol = torch.randn(shape, generator=generator, dtype=flow.dtype)
        n_ofi = torch.randn(shape, generator=generator, dtype=flow.dtype)
        if rho != 0.0 and self.cfg.ofi_head == "gaussian":
            z = rho * n_ofi + math.sqrt(1.0 - rho * rho) * torch.special.ndtri(u[..., 1])
            u = torch.cat([u[..., :1], torch.special.ndtr(z)[..., None], u[..., 2:]], -1)
        traded = u[..., 0] >= torch.sigmoid(flow[..., O_NOTRADE])
        lv = flow[..., O_LVOL_MU] + torch.exp(flow[..., O_LVOL_LS].clamp(LOGSD_LO, LOGSD_HI)) * n_vol
        cdf = torch.cumsum(torch.softmax(flow[..., O_IMB:O_IMB + IMB_BINS], -1), -1)
        k = torch.clamp((cdf < u[..., 1:2]).sum(-1), 0, IMB_BINS - 1)
        w = 2.0 / (IMB_BINS - 2)
        inner = -1.0 + (k - 1 + u[..., 2]) * w
        imb = torch.where(k == 0, -torch.ones_like(inner), torch.where(k == IMB_BINS - 1, torch.ones_like(inner), inner))
        imb = torch.where(traded, imb, torch.zeros_like(imb))
        sv = torch.where(traded, imb * torch.exp(lv) * stats_mean_volume_ratio, torch.zeros_like(imb))
        ofi = flow[..., O_OFI_MU] + torch.exp(flow[..., O_OFI_LS].clamp(LOGSD_LO, LOGSD_HI)) * n_ofi
        if self.cfg.ofi_head == "zero_signed_lognormal":  # coupled uniforms: see ModelConfig.ofi_head
            mag = torch.exp(ofi)  # ofi above is mu + sd * n: log|OFI| here
            neg = u[..., 1] < 1.0 - torch.sigmoid(flow[..., O_OFI_SIGN])
            ofi = torch.where(neg, -mag, mag)
            ofi = torch.where(u[..., 0] < torch.sigmoid(flow[..., O_OFI_ZERO]), torch.zeros_like(ofi), ofi)
        return torch.stack([ofi.clamp(-RET_CLIP, RET_CLIP), sv], -1)


def _gauss_nll(y: torch.Tensor, mu: torch.Tensor, logsd: torch.Tensor) -> torch.Tensor:
    ls = logsd.clamp(LOGSD_LO, LOGSD_HI)
    z = (y - mu) * torch.exp(-ls)
    return 0.5 * z * z + ls + 0.5 * math.log(2 * math.pi)

"""Fidelity of the simulated markets: real vs simulated LOB statistics on held-out hours.

Description
-----------
LOB-Bench-style (Nagy et al. 2025) comparison of the bar-level markets of
lobworld with real LOBSTER/Databento data, adapted to what a *bar* model can
produce (no per-order events, so every event-level statistic is replaced by a
documented bar-level proxy, see the table below).

Protocol:

1. **Held-out real paths.** For every data file (one asset-day) the bars of
   ``dt`` seconds (the checkpoint's bar length) are split by time as in
   training (:func:`lobworld.world_models.training.split_masks`); the test block
   (the last ``test_hours``, never used in training or model selection) is cut
   into consecutive, non-overlapping windows of ``window`` bars: the *real
   paths*.
2. **Simulated paths from real starting states.** For every real path the
   simulators start from the state at the bar just before its window and run
   ``window`` bars, ``draws`` independent times:

   * ``learned``: :class:`~lobworld.world_models.learned.LearnedDynamics`; the
     GRU hidden state is teacher-forced on the real bars of the day up to the
     window start, the feature vector is the real last bar's, the mid the real
     mid;
   * ``parametric``: :class:`~lobworld.envs.dynamics.ParametricDynamics`
     calibrated (:func:`~lobworld.world_models.calibration.calibrate_parametric`)
     on the **training block** of the same day, started at the real mid and
     spread, for mid, spread and volume; completed by textbook laws
     (:class:`ParametricTape`, fitted by :func:`calibrate_tape` on the same
     training block) for what it lacks: Poisson trade counts per bar,
     Gaussian OFI, log-normal top-of-book depth and a Beta top-of-book
     imbalance, each i.i.d. over bars and independent of the mid, so it
     produces every statistic below.

3. **Statistics** (:data:`STATISTICS`): each maps a :class:`PathSample` to a
   1-D sample of values (optionally with a condition label per value, and the
   path each value came from). Values are made dimensionless with the asset's
   training constants (:class:`~lobworld.world_models.dynamics_model.AssetStats`
   of the checkpoint) so that assets can be pooled.
4. **Scores** (:func:`score`): L1 distance between histograms on common bins
   (quantiles of the pooled real+simulated values; range [0, 2]) and the
   Wasserstein-1 distance of the values standardised by the real sample's mean
   and sd; conditional statistics average the score over condition bins.
   Bootstrap ranges resample whole paths (real and simulated independently);
   a paired bootstrap of learned minus parametric (same real resample) says
   whether a difference exceeds sampling noise (:func:`score_many`).
   Noise floor: the same scores between two halves of the real paths (even vs
   odd windows). The floor uses half the real paths per side, so it is an
   *upper* estimate of pure sampling noise.

=====================  ==============================================================================
statistic              definition (per bar of ``dt`` seconds unless stated)
=====================  ==============================================================================
``spread``             quoted spread at bar end / the asset's median spread
``ret_{h}``            overlapping ``h``-bar mid changes within a path / (sigma_bar sqrt(h)),
                       h in :data:`HORIZONS` (fat tails: see also :func:`kurtosis_table`)
``abs_ret_acf``        per path: autocorrelation of |1-bar mid change| at lags 1..5 (volatility
                       clustering); condition = lag
``volume_per_min``     traded shares per minute / mean per minute (bars summed to minutes)
``trades_per_min``     trades per minute / mean per minute; a LOBSTER "trade" is one execution
                       message (one per resting order hit); the learned model's count is its
                       log-normal count head (continuous); parametric: Poisson count per bar
``inter_arrival``      proxy: bar seconds / trade count, over bars with a trade (s). A bar model
                       has no individual arrivals; this is the mean inter-trade time of the bar
``trade_imbalance``    (buy - sell) / (buy + sell) aggressive volume, bars with a trade
                       (parametric: its ``IMBALANCE`` column, the only flow imbalance it exposes,
                       in bars whose Poisson count is > 0)
``ofi``                multi-level Cont-Kukanov-Stoikov order-flow imbalance / the asset's OFI sd
                       (parametric: i.i.d. Gaussian)
``book_imbalance``     top-of-book (bid size - ask size) / (bid size + ask size) at bar end
                       (parametric: i.i.d. Beta on (imbalance + 1) / 2)
``depth``              top-of-book depth (bid size + ask size) / its training mean
                       (parametric: i.i.d. log-normal)
``spread_by_vol``      spread / median spread, by tercile of realised volatility (RMS of the last
                       5 1-bar mid changes, terciles of each sample's own values); cond = tercile
``spread_by_tod``      spread / median spread, by half hour of the day; cond = half hour
``impact_curve``       1-bar mid change / sigma_bar by bin of signed aggressive volume / mean bar
                       volume (bins split at -1, -0.25, 0.25, 1); the price response to market
                       orders at bar level (parametric: IMBALANCE x VOLUME as its signed flow)
=====================  ==============================================================================

Not produced (the bar model cannot): per-order inter-arrival times, order
sizes and levels, cancellation rates, depth beyond the top of book, and the
event-level impact curves split by whether the mid moved (at 1-minute bars the
mid almost always moves). ``n/a`` marks a statistic a simulator returns no
value for (its :class:`PathSample` field is ``None``); both simulators of the
report produce all of them.

Impact exponent (:func:`simulated_impact_exponent`): simulated buy metaorders
of several sizes ``Q`` executed evenly over ``exec_seconds`` through the
learned dynamics, each paired with a no-agent run on the same random numbers
(common random numbers); the peak impact is the mid difference at the end of
execution. The square-root law ``I/sigma = Y (Q/V)^delta`` is fitted with
:func:`lobworld.world_models.impact.fit_sqrt_law` (bootstrap CI over runs),
with ``V`` the asset's mean daily volume (mean bar volume x bars per 6.5 h)
and ``sigma`` its daily mid sd (sigma_bar x sqrt(bars per 6.5 h)); constants
that do not change the exponent.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np
from numba import njit
from scipy.stats import wasserstein_distance

from lobworld.envs.dynamics import IMBALANCE, MID, SPREAD, VOLUME, ParametricDynamics, ParametricParams
from lobworld.envs.rng import seed_states
from lobworld.world_models.dynamics_model import (
    CONTROL,
    F_LCNT,
    F_LDEP,
    F_OFI,
    F_SVOL,
    F_TIMB,
    F_TRADED,
    N_FEATURES,
    AssetStats,
    bar_features,
    check_bar_columns,
)

__all__ = [
    "HORIZONS", "STATISTICS", "PathSample", "FidelityDay", "Statistic", "score", "load_fidelity_day",
    "real_paths", "simulate_learned", "simulate_parametric", "compare", "kurtosis_table",
    "simulated_impact_exponent", "fidelity_report", "format_markdown", "plot_statistics", "FidelityError",
    "score_many", "hist_l1", "w1_standardised", "n_bins_for", "verdict", "flow_correlations", "to_json",
    "teacher_forced_hidden", "ParametricTape", "calibrate_tape", "sample_tape",
]

HORIZONS = (1, 5, 15)  #: return horizons (bars)
ACF_LAGS = (1, 2, 3, 4, 5)  #: lags of the absolute-return autocorrelation (bars)
RV_WINDOW = 5  #: bars in the realised volatility of ``spread_by_vol``
IMPACT_EDGES = np.array([-1.0, -0.25, 0.25, 1.0])  #: signed volume / mean bar volume bin edges
SESSION_SECONDS = 23_400.0
N_HIST_BINS = 20


class FidelityError(ValueError):
    """Bad input to the fidelity report (missing file, checkpoint mismatch, too little held-out data, a training
    block the parametric laws cannot be fitted on)."""


# ---------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------
@dataclass
class PathSample:
    """Paths of one source (real or a simulator), all arrays ``(n_paths, window)``, dimensionless.

    A quantity the source cannot produce is ``None``.
    """

    ret: np.ndarray
    """Mid change of each bar / sigma_bar."""
    spread: np.ndarray | None
    """Spread at bar end / median spread."""
    volume: np.ndarray | None
    """Traded volume of the bar / mean bar volume."""
    svol: np.ndarray | None
    """Signed aggressive volume (buy - sell) of the bar / mean bar volume."""
    trade_imb: np.ndarray | None
    """(buy - sell) / (buy + sell); NaN in bars without a trade."""
    count: np.ndarray | None
    """Trades in the bar / mean trade count (0 without a trade)."""
    ofi: np.ndarray | None
    """Multi-level OFI / OFI sd."""
    book_imb: np.ndarray | None
    """Top-of-book (bid - ask) / (bid + ask) sizes at bar end."""
    depth: np.ndarray | None
    """Top-of-book depth / training mean depth."""
    tod: np.ndarray
    """Time of day of the bar end (seconds after midnight)."""
    dt: float
    """Bar length (seconds)."""
    mean_count: np.ndarray | None = None
    """Per path: the asset's mean trade count per bar (to turn ``count`` back into trades)."""
    label: str = ""
    """Source name."""

    @property
    def n_paths(self) -> int:
        return int(self.ret.shape[0])

    @property
    def window(self) -> int:
        return int(self.ret.shape[1])

    def subset(self, idx: np.ndarray) -> "PathSample":
        """The paths ``idx`` (a copy)."""
        kw = {}
        for name in ("ret", "spread", "volume", "svol", "trade_imb", "count", "ofi", "book_imb", "depth", "tod",
                     "mean_count"):
            v = getattr(self, name)
            kw[name] = None if v is None else np.asarray(v)[idx].copy()
        return PathSample(dt=self.dt, label=self.label, **kw)

    @staticmethod
    def concat(samples: list["PathSample"]) -> "PathSample":
        """Paths of several samples (same window and dt) stacked."""
        s0 = samples[0]
        kw = {}
        for name in ("ret", "spread", "volume", "svol", "trade_imb", "count", "ofi", "book_imb", "depth", "tod",
                     "mean_count"):
            vals = [getattr(s, name) for s in samples]
            kw[name] = None if any(v is None for v in vals) else np.concatenate(vals, 0)
        return PathSample(dt=s0.dt, label=s0.label, **kw)


# ---------------------------------------------------------------------------
# statistics: PathSample -> (values, cond or None, path index) or None (n/a)
# ---------------------------------------------------------------------------
StatOut = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def _flat(a: np.ndarray, mask: np.ndarray | None = None) -> StatOut:
    n, w = a.shape
    path = np.repeat(np.arange(n), w).reshape(n, w)
    if mask is None:
        mask = np.isfinite(a)
    return a[mask].astype(np.float64), None, path[mask]


def _bars_per_min(s: PathSample) -> int:
    if s.dt >= 60.0:
        return 1
    k = 60.0 / s.dt
    if abs(k - round(k)) > 1e-9:
        raise FidelityError(f"bar length {s.dt}s does not divide a minute; per-minute statistics need it")
    return int(round(k))


def stat_spread(s: PathSample) -> StatOut | None:
    """Quoted spread at bar end / median spread (one value per bar)."""
    return None if s.spread is None else _flat(s.spread)


def stat_returns(s: PathSample, h: int) -> StatOut:
    """Overlapping ``h``-bar mid changes within each path / sqrt(h) (units of sigma_bar).

    A path of ``w`` bars gives ``w - h + 1`` values: ``sum(ret[t:t+h]) / sqrt(h)``.
    """
    if h > s.window:
        raise FidelityError(f"return horizon {h} bars exceeds the path window {s.window}")
    c = np.concatenate([np.zeros((s.n_paths, 1)), np.cumsum(s.ret, 1)], 1)
    r = (c[:, h:] - c[:, :-h]) / math.sqrt(h)
    return _flat(r)


def stat_abs_acf(s: PathSample, lags=ACF_LAGS) -> StatOut:
    """Per path, the sample autocorrelation of ``|ret|`` at each lag (cond = lag).

    ``acf(k) = sum_t (a_t - m)(a_{t+k} - m) / sum_t (a_t - m)^2`` with ``m``
    the path mean of ``a = |ret|``; a path with constant ``|ret|`` gives no value.
    """
    a = np.abs(s.ret)
    d = a - a.mean(1, keepdims=True)
    den = (d * d).sum(1)
    vals, cond, path = [], [], []
    for k in lags:
        if k >= s.window:
            continue
        num = (d[:, :-k] * d[:, k:]).sum(1)
        ok = den > 0
        vals.append(num[ok] / den[ok])
        cond.append(np.full(ok.sum(), k))
        path.append(np.flatnonzero(ok))
    return np.concatenate(vals), np.concatenate(cond), np.concatenate(path)


def _per_minute(a: np.ndarray, k: int) -> np.ndarray:
    n, w = a.shape
    m = w // k
    return a[:, :m * k].reshape(n, m, k).sum(2) / k


def stat_volume_per_min(s: PathSample) -> StatOut | None:
    """Traded volume per minute in units of the mean per-minute volume (bars summed to whole minutes)."""
    return None if s.volume is None else _flat(_per_minute(s.volume, _bars_per_min(s)))


def stat_trades_per_min(s: PathSample) -> StatOut | None:
    """Trades per minute in units of the mean per-minute count (bars summed to whole minutes)."""
    return None if s.count is None else _flat(_per_minute(s.count, _bars_per_min(s)))


def stat_inter_arrival(s: PathSample) -> StatOut | None:
    """Proxy inter-trade time (s): bar seconds / number of trades, over bars with at least one trade."""
    if s.count is None or s.mean_count is None:
        return None
    n_tr = s.count * s.mean_count[:, None]
    mask = n_tr > 0
    with np.errstate(divide="ignore"):
        v = np.where(mask, s.dt / np.where(mask, n_tr, 1.0), np.nan)
    return _flat(v, mask)


def stat_trade_imbalance(s: PathSample) -> StatOut | None:
    """(buy - sell) / (buy + sell) aggressive volume, bars with a trade (NaN entries skipped)."""
    return None if s.trade_imb is None else _flat(s.trade_imb)


def stat_ofi(s: PathSample) -> StatOut | None:
    """Multi-level order-flow imbalance of the bar / the asset's OFI sd."""
    return None if s.ofi is None else _flat(s.ofi)


def stat_book_imbalance(s: PathSample) -> StatOut | None:
    """Top-of-book size imbalance (bid - ask) / (bid + ask) at bar end."""
    return None if s.book_imb is None else _flat(s.book_imb)


def stat_depth(s: PathSample) -> StatOut | None:
    """Top-of-book depth (bid + ask size) at bar end / training mean depth."""
    return None if s.depth is None else _flat(s.depth)


def stat_spread_by_vol(s: PathSample, window: int = RV_WINDOW) -> StatOut | None:
    """Spread by tercile of realised volatility (cond 0 low, 1 mid, 2 high).

    Realised volatility at bar ``t`` (``t >= window - 1`` within a path) is
    ``sqrt(mean(ret[t-window+1..t]^2))``; the terciles are those of the
    sample's own realised volatilities (so the statistic measures how the
    spread co-moves with volatility, not the volatility level).
    """
    if s.spread is None or s.window < window + 2:
        return None
    r2 = s.ret ** 2
    c = np.concatenate([np.zeros((s.n_paths, 1)), np.cumsum(r2, 1)], 1)
    rv = np.sqrt((c[:, window:] - c[:, :-window]) / window)  # bars window-1 .. w-1
    spr = s.spread[:, window - 1:]
    q1, q2 = np.quantile(rv, [1 / 3, 2 / 3])
    cond = np.where(rv <= q1, 0, np.where(rv <= q2, 1, 2))
    v, _, p = _flat(spr)
    return v, cond.reshape(-1), p


def stat_spread_by_tod(s: PathSample) -> StatOut | None:
    """Spread by half hour of the day of the bar end (cond = floor(seconds after midnight / 1800))."""
    if s.spread is None:
        return None
    v, _, p = _flat(s.spread)
    cond = np.floor((s.tod - 1e-6) / 1800.0).astype(np.int64).reshape(-1)
    return v, cond, p


def stat_impact_curve(s: PathSample, edges=IMPACT_EDGES) -> StatOut | None:
    """1-bar mid change (sigma_bar units) by bin of signed aggressive volume / mean bar volume.

    Bins: ``searchsorted(edges, svol, 'right')``; default edges -1, -0.25, 0.25, 1
    (5 bins, 0 = strong selling ... 4 = strong buying).
    """
    if s.svol is None:
        return None
    v, _, p = _flat(s.ret)
    cond = np.searchsorted(np.asarray(edges), s.svol.reshape(-1), side="right")
    return v, cond, p


@dataclass(frozen=True)
class Statistic:
    """A named statistic: ``fn(sample) -> (values, cond or None, path) | None``."""

    name: str
    fn: Callable[[PathSample], StatOut | None]
    description: str
    conditional: bool = False


STATISTICS: tuple[Statistic, ...] = (
    Statistic("spread", stat_spread, "spread / median spread"),
    *(Statistic(f"ret_{h}", (lambda s, h=h: stat_returns(s, h)), f"{h}-bar mid change / (sigma_bar sqrt({h}))")
      for h in HORIZONS),
    Statistic("abs_ret_acf", stat_abs_acf, "autocorrelation of |1-bar return|, lags 1-5 (per path)", True),
    Statistic("volume_per_min", stat_volume_per_min, "traded volume per minute / mean"),
    Statistic("trades_per_min", stat_trades_per_min, "trades per minute / mean"),
    Statistic("inter_arrival", stat_inter_arrival, "bar seconds / trade count (proxy, s)"),
    Statistic("trade_imbalance", stat_trade_imbalance, "(buy - sell) / (buy + sell) aggressive volume"),
    Statistic("ofi", stat_ofi, "multi-level order-flow imbalance / sd"),
    Statistic("book_imbalance", stat_book_imbalance, "top-of-book size imbalance"),
    Statistic("depth", stat_depth, "top-of-book depth / mean"),
    Statistic("spread_by_vol", stat_spread_by_vol, "spread by realised-volatility tercile", True),
    Statistic("spread_by_tod", stat_spread_by_tod, "spread by half hour of the day", True),
    Statistic("impact_curve", stat_impact_curve, "1-bar return by signed-volume bin", True),
)


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def hist_l1(a: np.ndarray, b: np.ndarray, n_bins: int = N_HIST_BINS, edges: np.ndarray | None = None) -> float:
    """L1 distance ``sum |p_k - q_k|`` (in [0, 2]) of the histograms of ``a`` and ``b``.

    Bins: split points at the interior quantiles (``1/n_bins .. (n-1)/n_bins``)
    of the pooled values (unique, so discrete values get fewer, wider bins),
    or the given interior ``edges``; a value equal to a split point goes right.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    if edges is None:
        edges = _edges(np.concatenate([a, b]), n_bins)
    na = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1) / a.size
    nb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1) / b.size
    return float(np.abs(na - nb).sum())


def _edges(pooled: np.ndarray, n_bins: int = N_HIST_BINS) -> np.ndarray:
    return np.unique(np.quantile(pooled, np.arange(1, n_bins) / n_bins))


def n_bins_for(n_a: int, n_b: int) -> int:
    """Histogram bins for samples of ``n_a`` and ``n_b`` values: ``sqrt(min(n_a, n_b))`` clipped to [2, 20].

    Few bins for small samples keep the L1 distance from saturating at 2 by
    sampling noise alone (e.g. 6 autocorrelation values per side).
    """
    return int(np.clip(int(math.sqrt(max(min(n_a, n_b), 1))), 2, N_HIST_BINS))


def w1_standardised(a: np.ndarray, b: np.ndarray, mu: float | None = None, sd: float | None = None) -> float:
    """Wasserstein-1 distance between ``(a - mu)/sd`` and ``(b - mu)/sd``; ``mu``, ``sd`` default to ``a``'s.

    ``a`` is the reference (real) sample; a constant ``a`` (sd 0) is not rescaled.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    mu = float(a.mean()) if mu is None else mu
    sd = float(a.std()) if sd is None else sd
    sd = sd if sd > 0 else 1.0
    return float(wasserstein_distance((a - mu) / sd, (b - mu) / sd))


class _Grouped:
    """Values of one statistic grouped by path (for path bootstraps)."""

    def __init__(self, out: StatOut, n_paths: int):
        v, c, p = out
        order = np.argsort(p, kind="stable")
        self.v = v[order]
        self.c = None if c is None else np.asarray(c)[order]
        counts = np.bincount(p[order], minlength=n_paths)
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self.n_paths = n_paths

    def take(self, paths: np.ndarray):
        idx = np.concatenate([np.arange(self.start[i], self.start[i + 1]) for i in paths]) if len(paths) else \
            np.zeros(0, np.int64)
        return self.v[idx], None if self.c is None else self.c[idx]


def _pair_scores(va, ca, vb, cb, edges_by_cond, ref_by_cond) -> tuple[float, float]:
    if ca is None:
        e, (mu, sd) = edges_by_cond[None], ref_by_cond[None]
        return hist_l1(va, vb, edges=e), w1_standardised(va, vb, mu, sd)
    l1s, w1s = [], []
    for k, e in edges_by_cond.items():
        xa = va[ca == k]
        xb = vb[cb == k]
        if xa.size < 2 or xb.size < 2:
            continue
        mu, sd = ref_by_cond[k]
        l1s.append(hist_l1(xa, xb, edges=e))
        w1s.append(w1_standardised(xa, xb, mu, sd))
    if not l1s:
        return float("nan"), float("nan")
    return float(np.mean(l1s)), float(np.mean(w1s))


def _prepare(A: _Grouped, B: _Grouped):
    edges, ref = {}, {}
    if A.c is None:
        edges[None] = _edges(np.concatenate([A.v, B.v]), n_bins_for(A.v.size, B.v.size))
        ref[None] = (float(A.v.mean()), float(A.v.std()))
    else:
        for k in np.unique(A.c):
            xa = A.v[A.c == k]
            xb = B.v[B.c == k] if B.c is not None else np.zeros(0)
            if xa.size < 2 or xb.size < 2:
                continue
            edges[k] = _edges(np.concatenate([xa, xb]), n_bins_for(xa.size, xb.size))
            ref[k] = (float(xa.mean()), float(xa.std()))
    return edges, ref


def _q(bt: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    if bt.shape[0] == 0:
        return np.full(bt.shape[1], np.nan), np.full(bt.shape[1], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanquantile(bt, a, axis=0), np.nanquantile(bt, 1 - a, axis=0)


def score_many(real: StatOut, n_real: int, sims: dict[str, tuple[StatOut, int]], *, n_boot: int = 200,
               level: float = 0.9, rng: np.random.Generator | None = None, paired: tuple[str, str] | None = None
               ) -> dict[str, Any]:
    """L1 (histograms) and W1 (standardised) of each simulator's statistic sample vs ``real``, with bootstrap ranges.

    Conditional samples are scored per condition bin present in ``real`` (with
    at least 2 values on both sides) and averaged. Bins (:func:`n_bins_for`,
    at quantiles of the pooled values) and the standardisation (real mean/sd)
    are fixed from the full samples. Each of ``n_boot`` replicates resamples
    the real paths once and every simulator's paths independently (whole
    paths, with replacement); ``l1_ci`` / ``w1_ci`` are the ``level``
    percentile ranges of the replicated scores. Resampling duplicates paths,
    and both distances grow as the effective sample shrinks, so in small
    samples that range sits *above* the point estimate: read it as the
    score's sampling spread. ``paired=(a, b)`` adds ``diff``: the percentile
    range of ``score_a - score_b`` over the same replicates (same real
    resample, so the shared upward shift largely cancels) and the share of
    replicates in which ``a`` is lower, per score.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    A = _Grouped(real, n_real)
    Bs = {k: _Grouped(o, n) for k, (o, n) in sims.items()}
    prep = {k: _prepare(A, B) for k, B in Bs.items()}
    est = {k: _pair_scores(A.v, A.c, B.v, B.c, *prep[k]) for k, B in Bs.items()}
    boots: dict[str, list] = {k: [] for k in Bs}
    for _ in range(n_boot):
        va, ca = A.take(rng.integers(0, n_real, n_real))
        for k, B in Bs.items():
            vb, cb = B.take(rng.integers(0, B.n_paths, B.n_paths))
            boots[k].append(_pair_scores(va, ca, vb, cb, *prep[k]))
    out: dict[str, Any] = {}
    for k, B in Bs.items():
        lo, hi = _q(np.array(boots[k], dtype=float).reshape(-1, 2), level)
        l1, w1 = est[k]
        out[k] = {"l1": l1, "l1_ci": [float(lo[0]), float(hi[0])], "w1": w1, "w1_ci": [float(lo[1]), float(hi[1])],
                  "n_real_values": int(A.v.size), "n_sim_values": int(B.v.size)}
    if paired is not None:
        a, b = paired
        d = np.array(boots[a], dtype=float).reshape(-1, 2) - np.array(boots[b], dtype=float).reshape(-1, 2)
        lo, hi = _q(d, level)
        with np.errstate(invalid="ignore"):
            share = np.mean(d < 0, axis=0) if d.shape[0] else np.full(2, np.nan)
        out["diff"] = {"pair": [a, b], "l1": est[a][0] - est[b][0], "l1_ci": [float(lo[0]), float(hi[0])],
                       "w1": est[a][1] - est[b][1], "w1_ci": [float(lo[1]), float(hi[1])],
                       "p_lower_l1": float(share[0]), "p_lower_w1": float(share[1])}
    return out


def score(real: StatOut, n_real: int, sim: StatOut, n_sim: int, *, n_boot: int = 200, level: float = 0.9,
          rng: np.random.Generator | None = None) -> dict[str, Any]:
    """:func:`score_many` for one simulator: ``{l1, l1_ci, w1, w1_ci, n_real_values, n_sim_values}``."""
    return score_many(real, n_real, {"sim": (sim, n_sim)}, n_boot=n_boot, level=level, rng=rng)["sim"]


# ---------------------------------------------------------------------------
# the parametric market's tape: textbook laws for the quantities ParametricDynamics lacks
# ---------------------------------------------------------------------------
_TAPE_STREAM = 0x7A9E  #: last SeedSequence entropy word of the tape draws (a non-zero tag: see simulate_parametric)


@dataclass(frozen=True)
class ParametricTape:
    """Textbook per-bar laws of the parametric market's trade count, OFI and top of book (physical units).

    :class:`~lobworld.envs.dynamics.ParametricDynamics` produces mid, spread,
    volume and a trade-sign imbalance only; the fidelity report completes it
    with these laws, fitted by :func:`calibrate_tape` on the same training
    block as its :class:`~lobworld.envs.dynamics.ParametricParams` and drawn by
    :func:`sample_tape`. Every law is i.i.d. across bars and independent of the
    others and of the mid (no clustering, no cross-correlation): the baseline
    a learned market has to beat.

    * trade count per bar ~ Poisson(``trades_per_bar``) (Poisson arrivals);
    * OFI per bar ~ Normal(``ofi_mean``, ``ofi_sd``);
    * top-of-book depth ``bid_sz_1 + ask_sz_1`` ~ LogNormal(``log_depth_mean``, ``log_depth_sd``);
    * top-of-book imbalance ``(bid_sz_1 - ask_sz_1) / (bid_sz_1 + ask_sz_1)`` = ``2 u - 1``,
      ``u`` ~ Beta(``imb_alpha``, ``imb_beta``).
    """

    dt: float
    """Bar length (seconds) the per-bar laws refer to."""
    trades_per_bar: float
    """Poisson mean: executions per bar (LOBSTER: one per resting order hit), over every bar, > 0."""
    ofi_mean: float
    """Mean of the per-bar multi-level OFI (shares)."""
    ofi_sd: float
    """Standard deviation of the per-bar multi-level OFI (shares), > 0."""
    log_depth_mean: float
    """Mean of log top-of-book depth at bar end (log shares; depth floored at 1 share)."""
    log_depth_sd: float
    """Standard deviation of log top-of-book depth at bar end (log shares), > 0."""
    imb_alpha: float
    """Beta shape alpha of ``(imbalance + 1) / 2`` (dimensionless), > 0."""
    imb_beta: float
    """Beta shape beta of ``(imbalance + 1) / 2`` (dimensionless), > 0."""
    n_bars: int = 0
    """Training bars the laws were fitted on (information only)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v)):
                raise FidelityError(f"ParametricTape.{f.name} must be a finite number, got {v!r}")
            if f.name in ("dt", "trades_per_bar", "ofi_sd", "log_depth_sd", "imb_alpha", "imb_beta") and v <= 0:
                raise FidelityError(f"ParametricTape.{f.name} must be > 0, got {v!r}")
        if self.n_bars < 0:
            raise FidelityError(f"ParametricTape.n_bars must be >= 0, got {self.n_bars!r}")

    def to_dict(self) -> dict[str, float]:
        """The fields as plain numbers (JSON-able)."""
        return {f.name: (int if f.name == "n_bars" else float)(getattr(self, f.name)) for f in fields(self)}


def _degenerate(sd: float, centre: float) -> bool:
    return not sd > 1e-12 * max(1.0, abs(centre))


def calibrate_tape(bars, dt: float | None = None) -> ParametricTape:
    """Fit :class:`ParametricTape` on ``bars`` (a ``make_bars`` frame: the day's **training block** only).

    Moments over every bar (population moments, ``ddof=0``):

    * ``trades_per_bar`` = mean of ``n_trades`` (bars without a trade count as 0);
    * ``ofi_mean``, ``ofi_sd`` = mean and sd of ``ofi``;
    * ``log_depth_mean``, ``log_depth_sd`` = mean and sd of ``log(max(bid_sz_1 + ask_sz_1, 1))``
      (the floor of :func:`real_paths`);
    * ``imb_alpha``, ``imb_beta``: method of moments on ``u = (imb + 1) / 2`` with
      ``imb = (bid_sz_1 - ask_sz_1) / max(bid_sz_1 + ask_sz_1, 1)``: with ``m``, ``v`` the mean and
      variance of ``u`` and ``c = m (1 - m) / v - 1``, ``alpha = m c``, ``beta = (1 - m) c``.

    ``dt`` defaults to the median ``bar_seconds``. Raises :class:`FidelityError`
    naming the problem for a missing column, NaN/inf values, fewer than 2 bars,
    a block without trades, without top-of-book depth, or with a constant OFI,
    depth or book imbalance (or one only ever at +-1), where a law cannot be fitted.
    """
    need = ("n_trades", "ofi", "bid_sz_1", "ask_sz_1") + (("bar_seconds",) if dt is None else ())
    check_bar_columns(bars, need, error=FidelityError, prefix="training block: ")
    n = len(bars)
    if n < 2:
        raise FidelityError(f"training block: {n} bar(s); the parametric tape laws need at least 2")
    dt = float(np.median(bars["bar_seconds"].to_numpy(float))) if dt is None else float(dt)
    cnt = bars["n_trades"].to_numpy(float)
    lam = float(cnt.mean())
    if not lam > 0:
        raise FidelityError(f"training block: no trade in its {n} bars; the Poisson trade-count law needs a "
                            "positive mean")
    ofi = bars["ofi"].to_numpy(float)
    ofi_mean, ofi_sd = float(ofi.mean()), float(ofi.std())
    if _degenerate(ofi_sd, ofi_mean):
        raise FidelityError(f"training block: the OFI is constant ({ofi_mean:g} shares in all {n} bars); "
                            "the Gaussian OFI law needs variation")
    bs = bars["bid_sz_1"].to_numpy(float)
    as_ = bars["ask_sz_1"].to_numpy(float)
    raw = bs + as_
    if not np.any(raw > 0):
        raise FidelityError(f"training block: no top-of-book depth (bid_sz_1 + ask_sz_1 = 0 in all {n} bars); "
                            "the log-normal depth law cannot be fitted")
    depth = np.maximum(raw, 1.0)
    ld = np.log(depth)
    ld_mean, ld_sd = float(ld.mean()), float(ld.std())
    if _degenerate(ld_sd, ld_mean):
        raise FidelityError(f"training block: the top-of-book depth is constant ({depth[0]:g} shares in all {n} "
                            "bars); the log-normal depth law needs variation")
    u = 0.5 * ((bs - as_) / depth + 1.0)
    m, v = float(u.mean()), float(u.var())
    if _degenerate(v, 1.0):
        raise FidelityError(f"training block: the top-of-book imbalance is constant ({2 * m - 1:g} in all {n} "
                            "bars); the Beta imbalance law needs variation")
    c = m * (1.0 - m) / v - 1.0
    if not c > 1e-6:
        raise FidelityError(f"training block: the top-of-book imbalance is only ever at -1 or +1 (one side of the "
                            f"book empty; mean {2 * m - 1:g}, variance of (imb + 1) / 2 {v:g} >= m (1 - m)); "
                            "the Beta imbalance law cannot be fitted")
    return ParametricTape(dt=dt, trades_per_bar=lam, ofi_mean=ofi_mean, ofi_sd=ofi_sd, log_depth_mean=ld_mean,
                          log_depth_sd=ld_sd, imb_alpha=m * c, imb_beta=(1.0 - m) * c, n_bars=n)


def sample_tape(tape: ParametricTape, rng: np.random.Generator, shape: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Independent draws of ``shape`` bars: ``(n_trades, ofi, book_imb, depth)``.

    Units: trades (int-valued float64), shares, dimensionless in [-1, 1], shares.
    The draw order is fixed (count, OFI, imbalance, depth), so the same ``rng``
    state gives the same arrays.
    """
    n_tr = rng.poisson(tape.trades_per_bar, size=shape).astype(np.float64)
    ofi = rng.normal(tape.ofi_mean, tape.ofi_sd, size=shape)
    imb = 2.0 * rng.beta(tape.imb_alpha, tape.imb_beta, size=shape) - 1.0
    depth = np.exp(rng.normal(tape.log_depth_mean, tape.log_depth_sd, size=shape))
    return n_tr, ofi, imb, depth


# ---------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------
@dataclass
class FidelityDay:
    """One asset-day: bars, features, held-out windows and the training-block calibration."""

    asset: str
    """Ticker."""
    bars: Any
    """The day's bars (``make_bars`` columns, pandas DataFrame indexed by bar end)."""
    x: np.ndarray
    """Normalised model features of every bar, ``(n_bars, N_FEATURES)`` float64."""
    stats: AssetStats
    """The checkpoint's normalisation constants for ``asset``."""
    starts: np.ndarray
    """Bar index of the last bar *before* each held-out window."""
    window: int
    """Bars per held-out window (real path)."""
    params: ParametricParams
    """Parametric market calibrated on the training block of this day."""
    tape: ParametricTape
    """The parametric market's trade-count, OFI and top-of-book laws, fitted on the same training block."""
    source: str = ""
    """Data file name."""
    held_out: bool = True
    """False when the test block differs from the checkpoint's held-out block (then it may overlap training)."""
    hidden: np.ndarray | None = field(default=None, repr=False)
    """Teacher-forced GRU hidden state at each start (n_windows, H)."""


def load_fidelity_day(path, ck, window: int, test_hours: float | None = None,
                      early_stop_hours: float | None = None) -> FidelityDay:
    """Load one data file, cut its test block into windows, calibrate the parametric market on its training block.

    The parametric market is :func:`~lobworld.world_models.calibration.calibrate_parametric`
    on the training block's events plus :func:`calibrate_tape` on its bars
    (never the early-stopping or test block). Raises :class:`FidelityError`
    for a missing file, an asset the checkpoint does not know, a test block
    too short for one window, or a training block the laws cannot be fitted on.
    """
    from lobworld.world_models import data as data_mod
    from lobworld.world_models.calibration import calibrate_parametric
    from lobworld.world_models.training import split_masks

    path = pathlib.Path(path)
    if not path.is_file():
        raise FidelityError(f"data file {path} does not exist")
    tc = ck.train_config
    ck_test = float(tc.get("test_hours", 2.0))
    ck_es = float(tc.get("early_stop_hours", 0.5))
    test_hours = ck_test if test_hours is None else float(test_hours)
    early_stop_hours = ck_es if early_stop_hours is None else float(early_stop_hours)
    try:
        ev = data_mod.load_lobster(path) if "_message_" in path.name else data_mod.load_databento(path)
    except (FileNotFoundError, ValueError) as exc:  # DataValidationError is a ValueError naming file and row
        raise FidelityError(f"{path.name}: cannot load: {exc}") from exc
    ticker = str(ev.attrs.get("ticker") or path.name.split("_")[0])
    if ticker not in ck.assets:
        raise FidelityError(f"{path.name}: the checkpoint has no statistics for asset {ticker!r} "
                            f"(it was trained on {sorted(ck.assets)}); train a model on this asset first")
    freq = tc.get("freq", f"{int(ck.dt)}s")
    try:
        bars = data_mod.make_bars(ev, freq=freq)
    except ValueError as exc:
        raise FidelityError(f"{path.name}: cannot make {freq} bars: {exc}") from exc
    tr, es, te = split_masks(bars.index, test_hours, early_stop_hours)
    idx = np.flatnonzero(te)
    n_win = len(idx) // window
    if n_win < 1 or idx[0] < 1:
        raise FidelityError(f"{path.name}: the test block (last {test_hours} h) has {len(idx)} bars of {ck.dt:g} s, "
                            f"fewer than one window of {window} bars (or no bar before it); "
                            "use a longer file, --test-hours or a shorter --window")
    if tr.sum() < 2:
        raise FidelityError(f"{path.name}: only {int(tr.sum())} training bars before the test block; the parametric "
                            "market cannot be calibrated (use --test-hours / --early-stop-hours)")
    train_end = bars.index[np.flatnonzero(tr)[-1]]
    ev_train = ev[ev["ts"] <= train_end]
    ev_train.attrs.update(ev.attrs)
    try:
        params = calibrate_parametric(ev_train, dt=float(ck.dt))
        tape = calibrate_tape(bars[tr])
        x = bar_features(bars, ck.assets[ticker]).astype(np.float64)
    except ValueError as exc:
        raise FidelityError(f"{path.name}: {exc}") from exc
    st = ck.assets[ticker]
    starts = idx[0] - 1 + np.arange(n_win) * window
    held = abs(test_hours - ck_test) < 1e-9 and abs(early_stop_hours - ck_es) < 1e-9
    return FidelityDay(ticker, bars, x, st, starts, window, params, tape, source=path.name, held_out=held)


def real_paths(day: FidelityDay) -> PathSample:
    """The held-out windows of ``day`` as a :class:`PathSample` (normalised by the checkpoint's asset stats)."""
    b = day.bars
    st = day.stats
    W = day.window
    sel = (day.starts[:, None] + 1 + np.arange(W)[None, :])

    def col(name):
        return b[name].to_numpy(float)[sel]

    vol = col("volume")
    buy = col("buy_volume")
    sell = col("sell_volume")
    cnt = col("n_trades")
    traded = (vol > 0) & (cnt > 0)
    bs = col("bid_sz_1")
    as_ = col("ask_sz_1")
    d = np.maximum(bs + as_, 1.0)
    tod_all = (b.index.hour * 3600 + b.index.minute * 60 + b.index.second).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        timb = np.where(traded & (buy + sell > 0), (buy - sell) / (buy + sell), np.nan)
    return PathSample(
        ret=col("mid_ret") / st.sigma_bar, spread=col("spread") / st.median_spread, volume=vol / st.mean_volume,
        svol=(buy - sell) / st.mean_volume, trade_imb=timb, count=np.where(traded, cnt, 0.0) / st.mean_count,
        ofi=col("ofi") / st.ofi_scale, book_imb=(bs - as_) / d, depth=d / st.mean_depth, tod=tod_all[sel],
        dt=float(np.median(b["bar_seconds"].to_numpy(float))), mean_count=np.full(len(sel), st.mean_count),
        label="real")


def teacher_forced_hidden(ck, day: FidelityDay) -> np.ndarray:
    """GRU hidden state after each window's start bar, teacher-forced on the real bars of the day (n_windows, H)."""
    import torch

    from lobworld.world_models.training import model_from_checkpoint

    from lobworld.world_models.dynamics_model import asset_scale

    model = model_from_checkpoint(ck)
    xt = torch.as_tensor(day.x, dtype=torch.float32)
    c = asset_scale(day.stats) if model.cfg.categorical else None  # input of the categorical mid head only
    with torch.no_grad():
        _, _, hs = model(xt[None, :-1], xt[None, 1:, CONTROL], c=c)
    hs = hs[0].numpy().astype(np.float64)
    # hs[k] is the state after bar k+1 (inputs x[:k+1], control of bar k+1); start s -> hs[s-1]
    return np.stack([hs[s - 1] if s >= 1 else np.zeros(hs.shape[1]) for s in day.starts])


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------
@njit  # not disk-cached: a cached kernel taking jitted functions as arguments can go stale (ReferenceError)
def _sim_kernel(rows, args, rng, step_fn, q, ox, out_pub, out_feat):
    """Step every row ``n_steps`` times (q[i, t] agent shares); record public columns and (ox >= 0) features."""
    n, T = q.shape
    for i in range(n):
        st = rng[i, 0]
        for t in range(T):
            step_fn(i, rows[i], args, st, q[i, t], 1.0)
            out_pub[i, t, 0] = rows[i, MID]
            out_pub[i, t, 1] = rows[i, SPREAD]
            out_pub[i, t, 2] = rows[i, VOLUME]
            out_pub[i, t, 3] = rows[i, IMBALANCE]
            if ox >= 0:
                for f in range(out_feat.shape[2]):
                    out_feat[i, t, f] = rows[i, ox + f]


def _learned_rows(dyn, n: int, dt: float, seeds, hidden, x0, mid0, spread0):
    from lobworld.world_models.learned import M_OH, M_OX

    args = dyn.args(n, dt)
    meta = args[-1]
    rng = seed_states(list(seeds), 1)
    rows = np.zeros((n, dyn.n_state))
    oh, ox = int(meta[M_OH]), int(meta[M_OX])
    for i in range(n):
        dyn.reset_fn(i, rows[i], args, rng[i, 0])
        rows[i, oh:oh + hidden.shape[1]] = hidden[i]
        rows[i, ox:ox + N_FEATURES] = x0[i]
        rows[i, MID] = mid0[i]
        rows[i, SPREAD] = spread0[i]
    return args, rng, rows, ox


def _check_model_dt(dyn, dt):
    if dyn.n_substeps(dt) != 1:
        raise FidelityError(f"the learned model's bar is {dyn.model_dt}s but the data bars are {dt}s")


def simulate_learned(ck, days: list[FidelityDay], draws: int, seed: int = 0) -> PathSample:
    """``draws`` learned paths per held-out window, from the teacher-forced real state (see module docstring)."""
    from lobworld.world_models.learned import LearnedDynamics

    parts = []
    for d_i, day in enumerate(days):
        dyn = LearnedDynamics(ck, asset=day.asset, burn_in=0)
        dt = float(ck.dt)
        _check_model_dt(dyn, dt)
        if day.hidden is None:
            day.hidden = teacher_forced_hidden(ck, day)
        nw = len(day.starts)
        rep = np.repeat(np.arange(nw), draws)
        n = rep.size
        mid = day.bars["mid"].to_numpy(float)
        spr = day.bars["spread"].to_numpy(float)
        seeds = [seed * 1_000_003 + d_i * 10_007 + k for k in range(n)]
        args, rng, rows, ox = _learned_rows(dyn, n, dt, seeds, day.hidden[rep], day.x[day.starts[rep]],
                                            mid[day.starts[rep]], spr[day.starts[rep]])
        W = day.window
        pub = np.zeros((n, W, 4))
        feat = np.zeros((n, W, N_FEATURES))
        _sim_kernel(rows, args, rng, dyn.step_fn, np.zeros((n, W)), ox, pub, feat)
        parts.append(_learned_sample(day, rep, mid[day.starts[rep]], pub, feat))
    return PathSample.concat(parts)


def _learned_sample(day: FidelityDay, rep, mid0, pub, feat) -> PathSample:
    st = day.stats
    mids = np.concatenate([mid0[:, None], pub[:, :, 0]], 1)
    traded = feat[:, :, F_TRADED] > 0.5
    vol = pub[:, :, 2] / st.mean_volume
    svol = feat[:, :, F_SVOL]
    with np.errstate(invalid="ignore", divide="ignore"):
        timb = np.where(traded & (vol > 0), svol / np.where(vol > 0, vol, 1.0), np.nan)
    cnt = np.where(traded, np.exp(feat[:, :, F_LCNT]), 0.0)
    tod = _window_tod(day)[rep]
    return PathSample(ret=np.diff(mids, axis=1) / st.sigma_bar, spread=pub[:, :, 1] / st.median_spread, volume=vol,
                      svol=svol, trade_imb=timb, count=cnt, ofi=feat[:, :, F_OFI], book_imb=feat[:, :, F_TIMB],
                      depth=np.exp(feat[:, :, F_LDEP]), tod=tod, dt=_dt(day),
                      mean_count=np.full(len(rep), st.mean_count), label="learned")


def _dt(day: FidelityDay) -> float:
    return float(np.median(day.bars["bar_seconds"].to_numpy(float)))


def _window_tod(day: FidelityDay) -> np.ndarray:
    idx = day.bars.index
    tod_all = (idx.hour * 3600 + idx.minute * 60 + idx.second).to_numpy(float)
    return tod_all[day.starts[:, None] + 1 + np.arange(day.window)[None, :]]


def simulate_parametric(days: list[FidelityDay], draws: int, seed: int = 0,
                        params: list[ParametricParams] | None = None,
                        tapes: list[ParametricTape] | None = None) -> PathSample:
    """``draws`` parametric paths per held-out window from the real mid and spread (training-block calibration).

    Mid, spread and volume come from :class:`~lobworld.envs.dynamics.ParametricDynamics`
    (``params``, default each day's ``params``); its signed volume is
    ``IMBALANCE x VOLUME``. Trade count, OFI, top-of-book imbalance and depth
    are i.i.d. draws of the day's :class:`ParametricTape` (``tapes``, default
    each day's ``tape``; :func:`sample_tape`), normalised like :func:`real_paths`
    by the checkpoint's asset constants; ``mean_count`` is the asset's. A bar
    is traded when its Poisson count is > 0: ``trade_imb`` (the ``IMBALANCE``
    column) is NaN in the other bars, as for real data.

    Randomness: per path, ParametricDynamics streams from the seeds
    ``seed * 1_000_003 + d_i * 10_007 + k + 555``; per day ``d_i``, the tape
    draws from ``Generator(PCG64(SeedSequence([seed, d_i, _TAPE_STREAM])))``, a
    separate stream (the non-zero last entropy word keeps it apart from any
    integer seed), so the same ``seed`` gives identical paths and changing the
    tape leaves mid, spread and volume unchanged.
    """
    parts = []
    for d_i, day in enumerate(days):
        p = day.params if params is None else params[d_i]
        tape = day.tape if tapes is None else tapes[d_i]
        dt = _dt(day)
        if abs(tape.dt - dt) > 1e-9 * dt:
            raise FidelityError(f"{day.source or day.asset}: the parametric tape was fitted on {tape.dt:g} s bars "
                                f"but the day's bars are {dt:g} s")
        nw = len(day.starts)
        rep = np.repeat(np.arange(nw), draws)
        n = rep.size
        dyn = ParametricDynamics(p)
        args = dyn.args(n, dt)
        rng = seed_states([seed * 1_000_003 + d_i * 10_007 + k + 555 for k in range(n)], 1)
        rows = np.zeros((n, dyn.n_state))
        mid = day.bars["mid"].to_numpy(float)[day.starts[rep]]
        spr = day.bars["spread"].to_numpy(float)[day.starts[rep]]
        for i in range(n):
            dyn.reset_fn(i, rows[i], args, rng[i, 0])
            rows[i, MID] = mid[i]
            rows[i, SPREAD] = spr[i]
        W = day.window
        pub = np.zeros((n, W, 4))
        _sim_kernel(rows, args, rng, dyn.step_fn, np.zeros((n, W)), -1, pub, np.zeros((1, 1, 1)))
        tape_rng = np.random.default_rng(np.random.SeedSequence([seed, d_i, _TAPE_STREAM]))
        n_tr, ofi, book_imb, depth = sample_tape(tape, tape_rng, (n, W))
        st = day.stats
        mids = np.concatenate([mid[:, None], pub[:, :, 0]], 1)
        vol = pub[:, :, 2] / st.mean_volume
        traded = n_tr > 0
        parts.append(PathSample(ret=np.diff(mids, axis=1) / st.sigma_bar, spread=pub[:, :, 1] / st.median_spread,
                                volume=vol, svol=pub[:, :, 3] * vol, trade_imb=np.where(traded, pub[:, :, 3], np.nan),
                                count=n_tr / st.mean_count, ofi=ofi / st.ofi_scale, book_imb=book_imb,
                                depth=depth / st.mean_depth, tod=_window_tod(day)[rep], dt=dt,
                                mean_count=np.full(n, st.mean_count), label="parametric"))
    return PathSample.concat(parts)


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------
def compare(real: PathSample, sims: dict[str, PathSample], *, n_boot: int = 200, seed: int = 0,
            statistics=STATISTICS) -> list[dict[str, Any]]:
    """Score every statistic for every simulator against ``real``, plus the real-vs-real floor.

    Returns one dict per statistic: ``name``, ``description``, ``scores``
    (``{source: score dict or None}``; ``None`` = the source cannot produce it),
    ``diff`` (paired bootstrap of the first two simulators that produce it,
    see :func:`score_many`; else ``None``) and ``floor`` (even vs odd real
    paths; ``None`` with fewer than 2 paths per half).
    """
    rng = np.random.default_rng(seed)
    even = np.arange(0, real.n_paths, 2)
    odd = np.arange(1, real.n_paths, 2)
    ra, rb = real.subset(even), real.subset(odd)
    rows = []
    for s in statistics:
        r = s.fn(real)
        if r is None:
            raise FidelityError(f"statistic {s.name}: the real sample lacks the data it needs")
        entry = {"name": s.name, "description": s.description, "conditional": s.conditional, "scores": {}}
        outs = {name: s.fn(sim) for name, sim in sims.items()}
        have = {name: (o, sims[name].n_paths) for name, o in outs.items() if o is not None}
        pair = tuple(have)[:2] if len(have) >= 2 else None
        res = score_many(r, real.n_paths, have, n_boot=n_boot, rng=rng, paired=pair)
        entry["scores"] = {name: res.get(name) for name in sims}
        entry["diff"] = res.get("diff")
        if len(even) >= 2 and len(odd) >= 2:
            entry["floor"] = score(s.fn(ra), ra.n_paths, s.fn(rb), rb.n_paths, n_boot=n_boot, rng=rng)
        else:
            entry["floor"] = None
        entry["plot"] = {"real": r, **{k: s.fn(v) for k, v in sims.items()}}
        rows.append(entry)
    return rows


def verdict(a: dict | None, b: dict | None) -> str:
    """``"win"`` when ``a`` is lower than ``b`` on both L1 and W1, ``"loss"`` when higher on both, else ``"mixed"``;
    ``"n/a"`` when ``b`` is None (the baseline cannot produce the statistic)."""
    if a is None:
        return "n/a"
    if b is None:
        return "n/a"
    l1 = a["l1"] < b["l1"]
    w1 = a["w1"] < b["w1"]
    if l1 and w1:
        return "win"
    if not l1 and not w1:
        return "loss"
    return "mixed"


def kurtosis_table(samples: dict[str, PathSample], horizons=HORIZONS, n_boot: int = 200, seed: int = 0,
                   level: float = 0.9) -> dict[str, dict[str, Any]]:
    """Excess kurtosis of the ``h``-bar returns (:func:`stat_returns`) per source, with a path-bootstrap CI."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        out[name] = {}
        for h in horizons:
            v, _, p = stat_returns(s, h)
            g = _Grouped((v, None, p), s.n_paths)
            k = _exkurt(g.v)
            bt = [_exkurt(g.take(rng.integers(0, s.n_paths, s.n_paths))[0]) for _ in range(n_boot)]
            a = (1 - level) / 2
            out[name][f"ret_{h}"] = {"kurtosis": k, "ci": [float(np.nanquantile(bt, a)),
                                                           float(np.nanquantile(bt, 1 - a))] if n_boot else None}
    return out


def flow_correlations(samples: dict[str, PathSample]) -> dict[str, dict[str, float | None]]:
    """Descriptive (not scored): Pearson correlation of the 1-bar mid change with the same bar's signed
    aggressive volume (``ret_svol``), with its OFI (``ret_ofi``), and of signed volume with OFI (``svol_ofi``)."""
    out = {}
    for name, s in samples.items():
        r = s.ret.ravel()

        def c(a, b):
            if a is None or b is None:
                return None
            a, b = np.ravel(a), np.ravel(b)
            return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None

        out[name] = {"ret_svol": c(r, s.svol), "ret_ofi": c(r, s.ofi), "svol_ofi": c(s.svol, s.ofi)}
    return out


def _exkurt(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    if v.size < 4:
        return float("nan")
    d = v - v.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d ** 4) / (m2 * m2) - 3.0) if m2 > 0 else float("nan")


# ---------------------------------------------------------------------------
# impact exponent
# ---------------------------------------------------------------------------
def simulated_impact_exponent(ck, days: list[FidelityDay], *, sizes=None, exec_seconds: float = 600.0,
                              draws: int = 4, seed: int = 0, n_boot: int = 300) -> dict[str, Any]:
    """Square-root-law fit of the peak mid impact of simulated buy metaorders (learned dynamics).

    Every held-out window start x ``draws`` x size runs a metaorder of ``Q``
    shares split evenly over ``exec_seconds / dt`` bars, paired with a no-agent
    run on the same random numbers; ``I = mid_with(T) - mid_without(T)``.
    ``sizes`` are ``Q / V_day`` (default 12 log-spaced values from 1e-4 to 3e-2).
    Returns the fit (:class:`~lobworld.world_models.impact.SqrtLawFit` as a dict)
    plus the mean impact per size.
    """
    from lobworld.world_models.impact import fit_sqrt_law
    from lobworld.world_models.learned import LearnedDynamics

    sizes = np.geomspace(1e-4, 3e-2, 12) if sizes is None else np.asarray(sizes, float)
    dt = float(ck.dt)
    n_exec = int(round(exec_seconds / dt))
    if n_exec < 1:
        raise FidelityError(f"exec_seconds {exec_seconds} is shorter than one bar of {dt}s")
    bars_day = SESSION_SECONDS / dt
    xs, ys = [], []
    mean_by_size = np.zeros(len(sizes))
    cnt_by_size = np.zeros(len(sizes))
    for d_i, day in enumerate(days):
        dyn = LearnedDynamics(ck, asset=day.asset, burn_in=0)
        _check_model_dt(dyn, dt)
        if day.hidden is None:
            day.hidden = teacher_forced_hidden(ck, day)
        st = day.stats
        V = st.mean_volume * bars_day
        sig = st.sigma_bar * math.sqrt(bars_day)
        nw = len(day.starts)
        combos = [(w, k, j) for w in range(nw) for k in range(draws) for j in range(len(sizes))]
        n = len(combos)
        w_idx = np.array([c[0] for c in combos])
        seeds = [seed * 7_919 + d_i * 100_003 + w * 101 + k for (w, k, _j) in combos]
        mid = day.bars["mid"].to_numpy(float)[day.starts[w_idx]]
        spr = day.bars["spread"].to_numpy(float)[day.starts[w_idx]]
        q = np.zeros((n, n_exec))
        for r, (_w, _k, j) in enumerate(combos):
            q[r, :] = sizes[j] * V / n_exec
        res = []
        for qq in (q, np.zeros_like(q)):
            args, rng, rows, ox = _learned_rows(dyn, n, dt, seeds, day.hidden[w_idx], day.x[day.starts[w_idx]],
                                                mid, spr)
            pub = np.zeros((n, n_exec, 4))
            _sim_kernel(rows, args, rng, dyn.step_fn, qq, -1, pub, np.zeros((1, 1, 1)))
            res.append(pub[:, -1, 0])
        imp = (res[0] - res[1]) / sig
        for r, (_w, _k, j) in enumerate(combos):
            xs.append(sizes[j])
            ys.append(imp[r])
            mean_by_size[j] += imp[r]
            cnt_by_size[j] += 1
    xs = np.array(xs)
    ys = np.array(ys)
    out: dict[str, Any] = {"sizes_q_over_v": sizes.tolist(), "exec_seconds": exec_seconds, "n_runs": int(xs.size),
                           "mean_impact_over_sigma": (mean_by_size / np.maximum(cnt_by_size, 1)).tolist()}
    try:
        fit = fit_sqrt_law(xs, ys, n_bins=len(sizes), n_boot=n_boot, rng=np.random.default_rng(seed))
        out.update(delta=fit.delta, delta_ci=list(fit.delta_ci), Y=fit.Y, Y_ci=list(fit.Y_ci), level=fit.level,
                   error=None)
    except ValueError as exc:
        out.update(delta=None, delta_ci=None, Y=None, Y_ci=None, level=None, error=str(exc))
    return out


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def fidelity_report(ck, paths, *, window: int | None = None, draws: int = 4, n_boot: int = 200, seed: int = 0,
                    test_hours: float | None = None, early_stop_hours: float | None = None,
                    impact: bool = True, impact_draws: int = 4) -> dict[str, Any]:
    """Run the whole comparison (see the module docstring) on the data files ``paths``; returns a JSON-able dict
    (plus ``_plot`` data, removed by :func:`to_json`)."""
    if not paths:
        raise FidelityError("no data files given")
    if window is None:
        window = max(max(HORIZONS) + 5, int(round(1200.0 / ck.dt)))
    if not isinstance(window, int) or window < max(HORIZONS) + 1:
        raise FidelityError(f"window must be an int >= {max(HORIZONS) + 1} bars (the longest return horizon + 1), "
                            f"got {window!r}")
    if not isinstance(draws, int) or draws < 1:
        raise FidelityError(f"draws must be a positive int, got {draws!r}")
    if not isinstance(n_boot, int) or n_boot < 0:
        raise FidelityError(f"n_boot must be an int >= 0, got {n_boot!r}")
    days = [load_fidelity_day(p, ck, window, test_hours, early_stop_hours) for p in paths]
    real = PathSample.concat([real_paths(d) for d in days])
    if real.n_paths < 4:
        raise FidelityError(f"only {real.n_paths} held-out windows of {window} bars; need at least 4 (2 per half for "
                            "the real-vs-real floor): give more data, --test-hours or a shorter --window")
    sims = {"learned": simulate_learned(ck, days, draws, seed), "parametric": simulate_parametric(days, draws, seed)}
    rows = compare(real, sims, n_boot=n_boot, seed=seed)
    verdicts = {r["name"]: verdict(r["scores"]["learned"], r["scores"]["parametric"]) for r in rows}
    summary = {}
    for src in ("learned", "parametric", "floor"):
        vals = [(r["scores"].get(src) if src != "floor" else r["floor"]) for r in rows]
        for key in ("l1", "w1"):
            v = np.array([x[key] for x in vals if x is not None and np.isfinite(x[key])])
            summary[f"{src}_{key}_mean"] = float(v.mean()) if v.size else None
            summary[f"{src}_{key}_median"] = float(np.median(v)) if v.size else None
        summary[f"{src}_n_statistics"] = int(sum(x is not None for x in vals))
    # summary over the statistics both simulators produce (like for like; all of them unless one returns None)
    both = [r for r in rows if r["scores"]["learned"] is not None and r["scores"]["parametric"] is not None]
    for src in ("learned", "parametric"):
        for key in ("l1", "w1"):
            v = np.array([r["scores"][src][key] for r in both
                          if np.isfinite(r["scores"]["learned"][key]) and np.isfinite(r["scores"]["parametric"][key])])
            summary[f"{src}_{key}_mean_common"] = float(v.mean()) if v.size else None
    summary.update(n_statistics=len(rows), n_common=len(both),
                   wins=sum(v == "win" for v in verdicts.values()), losses=sum(v == "loss" for v in verdicts.values()),
                   mixed=sum(v == "mixed" for v in verdicts.values()),
                   n_na=sum(v == "n/a" for v in verdicts.values()),
                   w1_lower_significant=sum(1 for r in rows if r.get("diff") and r["diff"]["w1_ci"][1] < 0),
                   w1_higher_significant=sum(1 for r in rows if r.get("diff") and r["diff"]["w1_ci"][0] > 0))
    rep = {
        "meta": {"checkpoint_dt": float(ck.dt), "window_bars": window, "draws_per_path": draws, "n_boot": n_boot,
                 "seed": seed, "n_real_paths": real.n_paths, "n_sim_paths": sims["learned"].n_paths,
                 "days": [{"source": d.source, "asset": d.asset, "windows": int(len(d.starts)),
                           "held_out": d.held_out, "first_window_start": str(d.bars.index[d.starts[0]]),
                           "parametric": {k: float(v) for k, v in vars(d.params).items() if k != "impact"},
                           "tape": d.tape.to_dict()}
                          for d in days],
                 "held_out": all(d.held_out for d in days)},
        "statistics": [{k: v for k, v in r.items() if k != "plot"} | {"verdict": verdicts[r["name"]]} for r in rows],
        "summary": summary,
        "kurtosis": kurtosis_table({"real": real, **sims}, n_boot=n_boot, seed=seed),
        "flow_correlations": flow_correlations({"real": real, **sims}),
        "_plot": {r["name"]: r["plot"] for r in rows},
    }
    rep["impact"] = simulated_impact_exponent(ck, days, draws=impact_draws, seed=seed) if impact else None
    return rep


def to_json(rep: dict) -> dict:
    """The report without plot data (JSON-serialisable)."""
    return {k: v for k, v in rep.items() if not k.startswith("_")}


def _fmt(sc: dict | None, key: str) -> str:
    if sc is None:
        return "n/a"
    v = sc[key]
    lo, hi = sc[f"{key}_ci"]
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _fmt_diff(d: dict | None) -> str:
    if d is None:
        return "n/a"
    lo, hi = d["w1_ci"]
    sig = "*" if (lo > 0 or hi < 0) else ""
    return f"{d['w1']:+.3f} [{lo:+.3f}, {hi:+.3f}]{sig}"


def format_markdown(rep: dict) -> str:
    """The Markdown report: settings, the statistic x model table, summary, kurtosis and impact exponent."""
    m = rep["meta"]
    s = rep["summary"]
    lines = ["# Fidelity report: real vs simulated markets", ""]
    lines.append(f"Bars of {m['checkpoint_dt']:g} s; {m['n_real_paths']} real held-out paths of {m['window_bars']} "
                 f"bars; {m['draws_per_path']} simulated draws per real path ({m['n_sim_paths']} per simulator), "
                 f"each started from the real state at the window start. Brackets: 5-95% range over "
                 f"{m['n_boot']} path-bootstrap replicates (resampling duplicates paths, which inflates both "
                 "distances, so in small samples the range sits above the point estimate).")
    for d in m["days"]:
        lines.append(f"- {d['source']} ({d['asset']}): {d['windows']} windows from {d['first_window_start']}"
                     + ("" if d["held_out"] else " -- NOT the checkpoint's held-out block (may overlap training)"))
    lines += ["", "L1 = histogram L1 distance (0..2), W1 = Wasserstein-1 on values standardised by the real sample. "
              "Lower is better; `floor` = real vs real (even vs odd windows, half the data per side). "
              "Verdict: win = learned lower than parametric on both scores, loss = higher on both, mixed otherwise "
              "(n/a: a simulator cannot produce the statistic). "
              "dW1 = learned W1 - parametric W1 with its paired-bootstrap 5-95% range (same real resample); "
              "* = the range excludes 0.", "",
              "| statistic | learned L1 | parametric L1 | floor L1 | learned W1 | parametric W1 | floor W1 | dW1 | "
              "verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["statistics"]:
        sc = r["scores"]
        lines.append(f"| {r['name']} | {_fmt(sc['learned'], 'l1')} | {_fmt(sc['parametric'], 'l1')} | "
                     f"{_fmt(r['floor'], 'l1')} | {_fmt(sc['learned'], 'w1')} | {_fmt(sc['parametric'], 'w1')} | "
                     f"{_fmt(r['floor'], 'w1')} | {_fmt_diff(r.get('diff'))} | {r['verdict']} |")

    def g(k):
        v = s.get(k)
        return "n/a" if v is None else f"{v:.3f}"

    lines += ["", "| summary | learned | parametric | floor |", "|---|---|---|---|",
              f"| mean L1 (all produced) | {g('learned_l1_mean')} | {g('parametric_l1_mean')} | {g('floor_l1_mean')} |",
              f"| median L1 | {g('learned_l1_median')} | {g('parametric_l1_median')} | {g('floor_l1_median')} |",
              f"| mean W1 (all produced) | {g('learned_w1_mean')} | {g('parametric_w1_mean')} | {g('floor_w1_mean')} |",
              f"| median W1 | {g('learned_w1_median')} | {g('parametric_w1_median')} | {g('floor_w1_median')} |",
              f"| mean L1, the {s['n_common']} statistics both produce | {g('learned_l1_mean_common')} | "
              f"{g('parametric_l1_mean_common')} | |",
              f"| mean W1, the {s['n_common']} statistics both produce | {g('learned_w1_mean_common')} | "
              f"{g('parametric_w1_mean_common')} | |",
              f"| statistics produced | {s['learned_n_statistics']} | {s['parametric_n_statistics']} | "
              f"{s['floor_n_statistics']} |", "",
              f"**Learned vs parametric:** wins {s['wins']}, losses {s['losses']}, mixed {s['mixed']} of the "
              f"{s['n_common']} statistics both produce"
              + (f"; n/a on {s['n_na']} (a simulator cannot produce them)" if s["n_na"] else "")
              + f". Paired bootstrap on W1: learned significantly lower on {s['w1_lower_significant']}, "
              f"significantly higher on {s['w1_higher_significant']}.", "",
              "Excess kurtosis of h-bar returns (90% CI):", "", "| source | " +
              " | ".join(rep["kurtosis"]["real"].keys()) + " |", "|---" * (1 + len(rep["kurtosis"]["real"])) + "|"]
    for src, ks in rep["kurtosis"].items():
        cells = []
        for v in ks.values():
            ci = v["ci"]
            cells.append(f"{v['kurtosis']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    fc = rep.get("flow_correlations")
    if fc:
        def cf(v):
            return "n/a" if v is None else f"{v:+.2f}"

        lines += ["", "Flow diagnostics (descriptive, not scored): correlation of the 1-bar mid change with the bar's "
                  "signed aggressive volume and with its OFI, and of the two flows with each other.", "",
                  "| source | corr(ret, signed volume) | corr(ret, OFI) | corr(signed volume, OFI) |", "|---|---|---|---|"]
        for src, v in fc.items():
            lines.append(f"| {src} | {cf(v['ret_svol'])} | {cf(v['ret_ofi'])} | {cf(v['svol_ofi'])} |")
    imp = rep.get("impact")
    if imp:
        lines.append("")
        if imp.get("delta") is not None:
            lines.append(f"**Impact exponent** of simulated buy metaorders (learned, {imp['n_runs']} CRN pairs, "
                         f"executed over {imp['exec_seconds']:g} s, Q/V_day {imp['sizes_q_over_v'][0]:.1e} to "
                         f"{imp['sizes_q_over_v'][-1]:.1e}): delta = {imp['delta']:.3f} "
                         f"[{imp['delta_ci'][0]:.3f}, {imp['delta_ci'][1]:.3f}] ({imp['level']:.0%} CI), "
                         f"Y = {imp['Y']:.3f} (target 0.4-0.6).")
        else:
            lines.append(f"**Impact exponent:** no fit ({imp['error']}).")
    lines += ["", "Not produced by a bar model (so not scored): per-order inter-arrival times, order sizes, "
              "cancellations, depth beyond the top of book, event-level impact curves split by whether the mid moved. "
              "`inter_arrival` is the bar proxy bar seconds / trade count."]
    return "\n".join(lines) + "\n"


def plot_statistics(rep: dict, out_dir, prefix: str = "fidelity_") -> list[pathlib.Path]:
    """One PNG per statistic: histograms (real vs simulators) or, for conditional statistics, mean per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = {"real": "black", "learned": "tab:blue", "parametric": "tab:orange"}
    written = []
    cond_names = {"abs_ret_acf": "lag (bars)", "spread_by_vol": "realised-vol tercile",
                  "spread_by_tod": "time of day (h)", "impact_curve": "signed volume bin"}
    for name, data in rep["_plot"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        real_v = data["real"][0]
        if data["real"][1] is None:
            lo, hi = np.quantile(real_v, [0.005, 0.995])
            span = hi - lo if hi > lo else 1.0
            bins = np.linspace(lo - 0.1 * span, hi + 0.1 * span, 41)
            for src, o in data.items():
                if o is None:
                    continue
                ax.hist(np.clip(o[0], bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.6,
                        color=colours.get(src), label=src)
            ax.set_xlabel(name)
            ax.set_ylabel("density")
        else:
            for src, o in data.items():
                if o is None or o[1] is None:
                    continue
                ks = np.unique(data["real"][1])
                means = [np.mean(o[0][o[1] == k]) if np.any(o[1] == k) else np.nan for k in ks]
                xk = ks / 2.0 if name == "spread_by_tod" else ks
                ax.plot(xk, means, marker="o", color=colours.get(src), label=src)
            ax.set_xlabel(cond_names.get(name, "condition"))
            ax.set_ylabel(f"mean {name}")
        ax.set_title(f"{name}: real (held-out) vs simulated")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"{prefix}{name}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)
    imp = rep.get("impact")
    if imp and imp.get("delta") is not None:
        x = np.asarray(imp["sizes_q_over_v"])
        y = np.asarray(imp["mean_impact_over_sigma"])
        ok = y > 0
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(x[ok], y[ok], "o", color="tab:blue", label="learned: mean peak impact (CRN)")
        xx = np.geomspace(x.min(), x.max(), 50)
        ax.loglog(xx, imp["Y"] * xx ** imp["delta"], color="tab:blue",
                  label=f"fit delta = {imp['delta']:.2f} [{imp['delta_ci'][0]:.2f}, {imp['delta_ci'][1]:.2f}]")
        ax.loglog(xx, y[ok][0] * (xx / x[ok][0]) ** 0.5, "--", color="gray", label="slope 1/2 (square-root law)")
        ax.set_xlabel("Q / V_day")
        ax.set_ylabel("I / sigma_day")
        ax.set_title("Simulated metaorders through the learned market")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"{prefix}impact_exponent.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)
    return written

"""The fidelity statistics: each maps a :class:`PathSample` to a 1-D sample of dimensionless values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lobworld.world_models.fidelity.samples import (
    ACF_LAGS,
    HORIZONS,
    IMPACT_EDGES,
    RV_WINDOW,
    FidelityError,
    PathSample,
)

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



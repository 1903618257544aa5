"""Order-book and order-flow features (vectorised NumPy; no Python loops over rows).

Event-level functions take ``(N, L)`` book arrays (USD / shares; an empty level
has price NaN and size 0). Rolling functions take per-bar arrays and a window in
bars; the first ``window - 1`` outputs are NaN (not enough history).

References: micro-price as the size-weighted mid (Stoikov 2018 calls this the
weighted mid; it is the usual first-order micro-price); order-flow imbalance
e_n of Cont, Kukanov & Stoikov (2014), applied per level as in Xu, Gould &
Howison (2019, "Multi-level order-flow imbalance"); Kyle's lambda as the OLS
slope of mid changes on signed volume; Amihud (2002) illiquidity
``|return| / dollar volume``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lobworld.errors import LobworldError


class FeatureError(LobworldError):
    """Bad arguments or input to the feature builder (field named)."""


def _as2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def micro_price(bid_px, ask_px, bid_sz, ask_sz) -> np.ndarray:
    """Size-weighted mid ``(bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz)`` (USD).

    Lies in ``[bid, ask]``; leans toward the ask when the bid queue is larger.
    Falls back to the plain mid when both sizes are 0; NaN if a side is empty.
    """
    b, a = np.asarray(bid_px, float), np.asarray(ask_px, float)
    qb, qa = np.asarray(bid_sz, float), np.asarray(ask_sz, float)
    tot = qb + qa
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(tot > 0, qb / np.where(tot > 0, tot, 1.0), 0.5)
    return b + w * (a - b)


def depth_imbalance(bid_sz, ask_sz, levels: int | None = None) -> np.ndarray:
    """``(sum bid_sz - sum ask_sz) / (sum bid_sz + sum ask_sz)`` over the first
    ``levels`` levels (all when None); in [-1, 1], 0 when the book is empty."""
    qb, qa = _as2d(bid_sz), _as2d(ask_sz)
    if levels is not None:
        if levels < 1:
            raise FeatureError(f"levels must be >= 1, got {levels}")
        qb, qa = qb[:, :levels], qa[:, :levels]
    sb, sa = qb.sum(axis=1), qa.sum(axis=1)
    tot = sb + sa
    return np.where(tot > 0, (sb - sa) / np.where(tot > 0, tot, 1.0), 0.0)


def ofi_events(bid_px, bid_sz, ask_px, ask_sz) -> np.ndarray:
    """Per-event, per-level order-flow imbalance e_n^k (shares), shape ``(N, L)``.

    For each level k, with bid price/size ``P^b, q^b`` and ask ``P^a, q^a``::

        e_n = q^b_n 1[P^b_n >= P^b_{n-1}] - q^b_{n-1} 1[P^b_n <= P^b_{n-1}]
            - q^a_n 1[P^a_n <= P^a_{n-1}] + q^a_{n-1} 1[P^a_n >= P^a_{n-1}]

    Positive = buying pressure (bids added / asks removed). An empty bid level
    counts as price -inf, an empty ask as +inf (both size 0). Row 0 is 0 (no
    previous book).
    """
    bp, bs, ap, as_ = (_as2d(x) for x in (bid_px, bid_sz, ask_px, ask_sz))
    bp = np.where(np.isnan(bp), -np.inf, bp)
    ap = np.where(np.isnan(ap), np.inf, ap)
    e = np.zeros_like(bs)
    if len(bs) < 2:
        return e
    with np.errstate(invalid="ignore"):
        e[1:] = (np.where(bp[1:] >= bp[:-1], bs[1:], 0.0) - np.where(bp[1:] <= bp[:-1], bs[:-1], 0.0)
                 - np.where(ap[1:] <= ap[:-1], as_[1:], 0.0) + np.where(ap[1:] >= ap[:-1], as_[:-1], 0.0))
    return e


def _rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1:] = c[window:] - c[:-window]
    return out


def _check_window(window: int) -> None:
    if int(window) != window or window < 1:
        raise FeatureError(f"window must be a positive integer number of bars, got {window!r}")


def realized_volatility(mid_ret, window: int) -> np.ndarray:
    """Rolling realized volatility ``sqrt(sum of squared mid changes)`` over
    ``window`` bars (USD per window; divide by ``sqrt(window * bar seconds)`` for
    USD per sqrt(second))."""
    _check_window(window)
    r = np.nan_to_num(np.asarray(mid_ret, float))
    return np.sqrt(np.maximum(_rolling_sum(r * r, window), 0.0))


def kyle_lambda(mid_ret, signed_volume, window: int) -> np.ndarray:
    """Rolling OLS slope of mid change on signed volume (USD per share), with intercept.

    ``lambda = cov(dm, v) / var(v)`` over the last ``window`` bars; NaN when the
    signed volume does not vary in the window.
    """
    _check_window(window)
    y = np.nan_to_num(np.asarray(mid_ret, float))
    x = np.nan_to_num(np.asarray(signed_volume, float))
    n = float(window)
    sx, sy = _rolling_sum(x, window), _rolling_sum(y, window)
    sxy, sxx = _rolling_sum(x * y, window), _rolling_sum(x * x, window)
    var = sxx - sx * sx / n
    cov = sxy - sx * sy / n
    scale = np.maximum(sxx, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-12 * scale, cov / np.where(var > 0, var, 1.0), np.nan)


def amihud_illiquidity(mid_ret, mid_prev, dollar_volume, window: int) -> np.ndarray:
    """Rolling Amihud illiquidity: mean over bars with volume of
    ``|mid_ret / mid_prev| / dollar_volume`` (per USD traded; x1e6 gives per
    million USD). NaN when no bar in the window traded."""
    _check_window(window)
    dv = np.asarray(dollar_volume, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.abs(np.asarray(mid_ret, float) / np.asarray(mid_prev, float)) / dv
    ok = (dv > 0) & np.isfinite(a)
    s = _rolling_sum(np.where(ok, a, 0.0), window)
    c = _rolling_sum(ok.astype(float), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.where(c > 0, c, 1.0), np.nan)


def trade_arrival_rate(n_trades, bar_seconds, window: int) -> np.ndarray:
    """Rolling trade arrival rate (trades per second) over ``window`` bars.
    ``bar_seconds`` is a scalar or per-bar array of bar durations (s)."""
    _check_window(window)
    n = np.asarray(n_trades, float)
    secs = np.broadcast_to(np.asarray(bar_seconds, float), n.shape)
    s, t = _rolling_sum(n, window), _rolling_sum(secs, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t > 0, s / np.where(t > 0, t, 1.0), np.nan)


def add_features(bars: pd.DataFrame, window: int = 15) -> pd.DataFrame:
    """Return a copy of ``bars`` (from :func:`make_bars`) with feature columns:

    ``micro_price`` (USD, bar end), ``realized_vol`` (USD over ``window`` bars),
    ``kyle_lambda`` (USD per share), ``amihud`` (per USD traded),
    ``trade_rate`` (trades per second), all over rolling ``window`` bars.
    """
    _check_window(window)
    out = bars.copy()
    out["micro_price"] = micro_price(bars["bid_px_1"], bars["ask_px_1"], bars["bid_sz_1"], bars["ask_sz_1"])
    out["realized_vol"] = realized_volatility(bars["mid_ret"], window)
    out["kyle_lambda"] = kyle_lambda(bars["mid_ret"], bars["buy_volume"] - bars["sell_volume"], window)
    mid_prev = (bars["mid"] - bars["mid_ret"]).to_numpy()
    out["amihud"] = amihud_illiquidity(bars["mid_ret"], mid_prev, bars["vwap"].fillna(0.0) * bars["volume"], window)
    out["trade_rate"] = trade_arrival_rate(bars["n_trades"], bars["bar_seconds"], window)
    return out

"""Bars: the canonical event table aggregated over clock time or event counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lobworld.world_models.data.features import depth_imbalance, ofi_events
from lobworld.world_models.data.schema import EVENT_CATEGORIES, EXEC_EVENTS, event_codes, infer_levels
from lobworld.errors import LobworldError


class BarError(LobworldError):
    """Bad arguments or input to the bar builder (field named)."""


def _freq_ns(freq) -> int:
    try:
        off = pd.tseries.frequencies.to_offset(freq)
        ns = int(pd.Timedelta(off).value)
    except (ValueError, TypeError):
        raise BarError(f"freq must be a fixed pandas offset like '1s', '10s', '1min', got {freq!r}") from None
    if ns <= 0:
        raise BarError(f"freq must be positive, got {freq!r}")
    return ns


def make_bars(events: pd.DataFrame, freq="1min", *, events_per_bar: int | None = None,
              ofi_levels: int | None = None, depth_levels: int = 5) -> pd.DataFrame:
    """Aggregate a canonical event table into bars.

    Clock bars (``freq``, any fixed pandas offset) are the half-open intervals
    ``[start, end)`` aligned on the local midnight of the first event, labelled
    by their END timestamp; every bar from the first event's to the last
    event's is present (an empty bar repeats the previous book, zero volume).
    Event-time bars (``events_per_bar=N``) hold N consecutive events (the last
    may hold fewer), labelled by the time of their last event.

    Columns (USD, shares): ``mid_open`` (mid after the bar's first event),
    ``mid`` (mid at bar end), ``mid_ret`` (mid - previous bar's mid; first bar:
    mid - mid_open), ``high``/``low`` (of the mid over the bar's events),
    ``spread`` (bar end), ``volume`` (shares executed, visible + hidden; LOBSTER
    type-6 cross/auction trades and Databento ``F`` fill records excluded),
    ``buy_volume``/``sell_volume`` (by aggressor), ``n_trades`` (execution
    events; LOBSTER reports one per resting order hit), ``vwap`` (NaN without a
    trade), ``ofi_trade`` ((buy - sell) / (buy + sell), 0 without trades),
    ``ofi`` (sum over ``ofi_levels`` levels, default all, of the per-level
    Cont-Kukanov-Stoikov OFI summed over the bar's events, shares) and
    ``ofi_1..ofi_K``, ``bid_px_1``, ``ask_px_1``, ``bid_sz_1``, ``ask_sz_1``
    (bar end), ``depth_imbalance`` (bar end, over ``depth_levels`` levels),
    ``n_events``, ``bar_seconds`` (bar length; event bars: time since the
    previous bar's end, first bar: since its first event).
    """
    if not isinstance(events, pd.DataFrame):
        raise BarError(f"make_bars needs a canonical event table (DataFrame), got {type(events).__name__}")
    missing = [c for c in ("ts", "event", "size", "price", "aggressor") if c not in events.columns]
    if missing:
        raise BarError(f"make_bars: the event table lacks columns {missing} (see lobworld.world_models.data.schema)")
    n = len(events)
    if n == 0:
        raise BarError("make_bars: the event table is empty")
    L = infer_levels(events)
    K = L if ofi_levels is None else int(ofi_levels)
    if not 1 <= K <= L:
        raise BarError(f"ofi_levels must be in 1..{L}, got {ofi_levels}")
    ts = events["ts"]
    tz = ts.dt.tz
    t_ns = ts.to_numpy().astype("datetime64[ns]").astype(np.int64) if tz is None else \
        ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    if np.any(np.diff(t_ns) < 0):
        raise BarError("make_bars: events are not sorted by ts")

    bid_px = events[[f"bid_px_{k}" for k in range(1, L + 1)]].to_numpy(float)
    ask_px = events[[f"ask_px_{k}" for k in range(1, L + 1)]].to_numpy(float)
    bid_sz = events[[f"bid_sz_{k}" for k in range(1, L + 1)]].to_numpy(float)
    ask_sz = events[[f"ask_sz_{k}" for k in range(1, L + 1)]].to_numpy(float)
    mid = 0.5 * (bid_px[:, 0] + ask_px[:, 0])
    spread = ask_px[:, 0] - bid_px[:, 0]
    codes = event_codes(events)
    is_exec = np.isin(codes, [EVENT_CATEGORIES.index(e) for e in EXEC_EVENTS])
    size = events["size"].to_numpy(float)
    price = events["price"].to_numpy(float)
    agg = events["aggressor"].to_numpy()
    vol = np.where(is_exec, size, 0.0)
    notional = np.where(is_exec, size * np.nan_to_num(price), 0.0)
    buy = np.where(is_exec & (agg > 0), size, 0.0)
    sell = np.where(is_exec & (agg < 0), size, 0.0)
    ofi = ofi_events(bid_px[:, :K], bid_sz[:, :K], ask_px[:, :K], ask_sz[:, :K])
    dimb = depth_imbalance(bid_sz, ask_sz, min(depth_levels, L))

    # ---- bar ids (events sorted, so ids are non-decreasing) ----------------
    if events_per_bar is not None:
        if int(events_per_bar) != events_per_bar or events_per_bar < 1:
            raise BarError(f"events_per_bar must be a positive integer, got {events_per_bar!r}")
        bar_id = np.arange(n) // int(events_per_bar)
        n_bars = int(bar_id[-1]) + 1
    else:
        step = _freq_ns(freq)
        first = ts.iloc[0]
        origin_local = first.normalize() if tz is not None else first.floor("D")
        origin = int(origin_local.tz_convert("UTC").value if tz is not None else origin_local.value)
        rel = t_ns - origin
        bar_id_abs = rel // step
        b0 = int(bar_id_abs[0])
        bar_id = bar_id_abs - b0
        n_bars = int(bar_id[-1]) + 1
    starts = np.searchsorted(bar_id, np.arange(n_bars), side="left")
    ends = np.searchsorted(bar_id, np.arange(n_bars), side="right")  # exclusive
    nonempty = ends > starts
    ne_starts = starts[nonempty]

    def bsum(x):
        out = np.zeros(n_bars)
        if len(ne_starts):
            out[nonempty] = np.add.reduceat(x, ne_starts, axis=0)
        return out

    counts = (ends - starts).astype(np.int64)
    last = np.maximum(ends - 1, 0)
    # for empty bars, carry the previous bar's last event forward
    last_idx = np.where(nonempty, last, -1)
    last_idx = np.maximum.accumulate(last_idx)
    first_idx = np.where(nonempty, starts, last_idx)

    mid_end = mid[last_idx]
    high = np.full(n_bars, np.nan)
    low = np.full(n_bars, np.nan)
    if len(ne_starts):
        high[nonempty] = np.fmax.reduceat(mid, ne_starts)
        low[nonempty] = np.fmin.reduceat(mid, ne_starts)
    high = np.where(nonempty, high, mid_end)
    low = np.where(nonempty, low, mid_end)
    volume, buy_v, sell_v = bsum(vol), bsum(buy), bsum(sell)
    n_trades = bsum(is_exec.astype(float)).astype(np.int64)
    notional_b = bsum(notional)
    mid_open = np.where(nonempty, mid[first_idx], mid_end)
    mid_ret = np.empty(n_bars)
    mid_ret[0] = mid_end[0] - mid_open[0]
    mid_ret[1:] = np.diff(mid_end)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(volume > 0, notional_b / np.where(volume > 0, volume, 1.0), np.nan)
        ofi_trade = np.where(buy_v + sell_v > 0, (buy_v - sell_v) / np.where(buy_v + sell_v > 0, buy_v + sell_v, 1.0), 0.0)
    ofi_b = np.zeros((n_bars, K))
    if len(ne_starts):
        ofi_b[nonempty] = np.add.reduceat(ofi, ne_starts, axis=0)

    if events_per_bar is not None:
        end_ns = t_ns[last_idx]
        bar_seconds = np.empty(n_bars)
        bar_seconds[0] = (end_ns[0] - t_ns[0]) / 1e9
        bar_seconds[1:] = np.diff(end_ns) / 1e9
    else:
        end_ns = origin + (b0 + np.arange(n_bars) + 1) * step
        bar_seconds = np.full(n_bars, step / 1e9)
    index = pd.DatetimeIndex(end_ns.astype("datetime64[ns]"), name="ts")
    if tz is not None:
        index = index.tz_localize("UTC").tz_convert(tz)

    cols = {
        "mid_open": mid_open, "mid": mid_end, "mid_ret": mid_ret, "high": high, "low": low,
        "spread": spread[last_idx], "volume": volume, "buy_volume": buy_v, "sell_volume": sell_v,
        "n_trades": n_trades, "vwap": vwap, "ofi_trade": ofi_trade, "ofi": ofi_b.sum(axis=1),
    }
    for k in range(K):
        cols[f"ofi_{k + 1}"] = ofi_b[:, k]
    cols.update({
        "bid_px_1": bid_px[last_idx, 0], "ask_px_1": ask_px[last_idx, 0],
        "bid_sz_1": bid_sz[last_idx, 0], "ask_sz_1": ask_sz[last_idx, 0],
        "depth_imbalance": dimb[last_idx], "n_events": counts, "bar_seconds": bar_seconds,
    })
    bars = pd.DataFrame(cols, index=index)
    bars.attrs = {k: v for k, v in events.attrs.items() if k != "dropped"}
    bars.attrs.update({"freq": None if events_per_bar is not None else str(freq),
                       "events_per_bar": events_per_bar, "ofi_levels": K, "depth_levels": min(depth_levels, L)})
    return bars

"""Canonical event table -> tick-model tokens, and tokens -> order messages.

One token per event (row ``n >= 1`` of the table; row 0 has no book before it and
only anchors the clock). Every field is an array of length ``len(tokens)``:

==================  =========  =====================================================
field               dtype      meaning
==================  =========  =====================================================
``row``             int64      row of the source event table
``etype``           int8       :data:`SUBMIT` 0, :data:`CANCEL` 1 (partial cancel),
                               :data:`DELETE` 2, :data:`EXEC_VISIBLE` 3,
                               :data:`EXEC_HIDDEN` 4 (LOBSTER type = etype + 1)
``side``            int8       book side the message acts on: +1 bid (buy limit
                               order), -1 ask (sell LO); an execution's side is the
                               resting order's (LOBSTER ``direction``)
``level``           int32      ticks behind the same-side best before the event:
                               bid ``best_bid - price``, ask ``price - best_ask``;
                               0 = at the touch, > 0 deeper, < 0 inside the spread
                               (an improvement, or a hidden execution inside it).
                               For executions and cancels it is the level hit.
``sub_tick``        int8       exact price minus the tick price ``price_ticks`` of the table,
                               in half ticks (-1, 0, +1): LOBSTER hidden executions at the
                               midpoint of an odd spread trade at half ticks
``size``            float64    shares of the message (exact)
``size_lots``       float32    ``size / lot`` (``lot``: mean limit-order size of the
                               training block, :attr:`SizeScale.lot`)
``size_bin``        int16      bin of ``size`` in :attr:`SizeScale.edges`
``dt_ns``           int64      nanoseconds since the previous event (exact, >= 0)
``log_dt``          float32    ``log(max(dt, TokenConfig.min_dt_s))``, dt in seconds
``best_bid``        int64      best bid before the event, ticks (:data:`NO_PRICE`
``best_ask``        int64      / best ask    if that side is empty)
``spread``          int32      ``best_ask - best_bid`` ticks before the event
                               (:data:`NO_PRICE` cast to -1 when a side is empty)
``bid_sz``          float32    (n, top_k) visible sizes of the first ``top_k``
``ask_sz``                     listed levels before the event, shares (0 = empty)
``imbalance``       float32    ``(B - A) / (B + A)`` of the first
                               ``TokenConfig.imbalance_levels`` levels, in [-1, 1]
``tod_s``           float64    time of day of the event, seconds after midnight
                               (exchange wall clock)
==================  =========  =====================================================

When the same-side book is empty the reference of ``level`` is one tick inside the
opposite best (``best_ask - 1`` for bids, ``best_bid + 1`` for asks), so level 0 is the
first price that does not cross; :func:`detokenize` applies the same rule.

:func:`detokenize` turns tokens back into :class:`Messages` (the LOBSTER message
layout, struct of arrays): time, type, size, price and direction reproduce the event
table exactly (the clock is ``t_start_ns + cumsum(dt_ns)``).

Splits follow the bar models (``world_models/training.py``): the last
``test_hours`` of the stream are held out, the ``early_stop_hours`` before them are
for early stopping, the rest trains; :func:`split_masks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from lobworld.errors import LobworldError
from lobworld.world_models.data.session import SESSION_LENGTH_S, SESSION_OPEN_S  # noqa: F401  (re-exported)
from lobworld.world_models.data.schema import (
    EVENT_CATEGORIES, EVENT_DTYPE, NY_TZ, book_columns, event_codes, infer_levels,
)

__all__ = [
    "SUBMIT", "CANCEL", "DELETE", "EXEC_VISIBLE", "EXEC_HIDDEN", "N_TYPES", "NO_PRICE", "ETYPE_NAMES",
    "EventTokenError", "TokenConfig", "SizeScale", "EventTokens", "Messages", "fit_size_scale",
    "tokenize", "detokenize", "split_masks", "time_split_masks", "messages_to_events", "level_class",
]

SUBMIT, CANCEL, DELETE, EXEC_VISIBLE, EXEC_HIDDEN = 0, 1, 2, 3, 4
N_TYPES = 5
#: token type -> canonical ``event`` name (LOBSTER message type = index + 1)
ETYPE_NAMES = ("submit", "cancel", "delete", "exec_visible", "exec_hidden")
NO_PRICE = -1
"""Price (ticks) of an empty side in :attr:`EventTokens.best_bid` / ``best_ask``."""

_NEEDED = ("ts", "event", "size", "price_ticks", "direction")
# canonical category index -> token type (-1: not an order-flow event of the tick model)
_CAT_TO_ETYPE = np.full(len(EVENT_CATEGORIES), -1, dtype=np.int8)
for _k, _name in enumerate(ETYPE_NAMES):
    _CAT_TO_ETYPE[EVENT_CATEGORIES.index(_name)] = _k


class EventTokenError(LobworldError):
    """An event table (or a token / message array) that cannot be tokenised. ``field``
    names the column or argument and ``row`` the 0-based table row (None when the
    problem is not one row's)."""

    def __init__(self, field_name: str, detail: str, row: int | None = None):
        self.field = field_name
        self.row = row
        where = f"field {field_name!r}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {detail}")


@dataclass(frozen=True)
class TokenConfig:
    """How an event table becomes tokens."""

    top_k: int = 5
    """Listed book levels per side in the context (``bid_sz`` / ``ask_sz`` columns)."""
    imbalance_levels: int = 1
    """Levels summed on each side in ``imbalance`` (1 = the touch)."""
    size_bins: int = 16
    """Number of quantile (or log) bins. Quantile bins merge where sizes repeat; a size with at least
    ``1 / size_bins`` of the mass (GOOG: 100 shares) gets a bin of its own, and doubling bins cover the
    sizes above the last quantile, so the final count differs (:attr:`SizeScale.n_bins`)."""
    size_binning: str = "quantile"
    """``"quantile"`` (edges at quantiles of the training sizes) or ``"log"`` (geometric edges
    from 1 share to the largest training size)."""
    min_dt_s: float = 1e-9
    """Floor of the inter-arrival in ``log_dt``, seconds (simultaneous events have dt = 0)."""
    test_hours: float = 2.0
    """Last hours of the stream held out for evaluation."""
    early_stop_hours: float = 0.5
    """Hours just before the test block used for early stopping."""

    def __post_init__(self):
        if not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise EventTokenError("top_k", f"must be an int >= 1, got {self.top_k!r}")
        if not (isinstance(self.imbalance_levels, int) and 1 <= self.imbalance_levels <= self.top_k):
            raise EventTokenError("imbalance_levels", f"must be an int in 1..top_k={self.top_k}, "
                                  f"got {self.imbalance_levels!r}")
        if not (isinstance(self.size_bins, int) and self.size_bins >= 2):
            raise EventTokenError("size_bins", f"must be an int >= 2, got {self.size_bins!r}")
        if self.size_binning not in ("quantile", "log"):
            raise EventTokenError("size_binning", f"must be 'quantile' or 'log', got {self.size_binning!r}")
        if not (self.min_dt_s > 0 and np.isfinite(self.min_dt_s)):
            raise EventTokenError("min_dt_s", f"must be a positive number, got {self.min_dt_s!r}")
        for name in ("test_hours", "early_stop_hours"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise EventTokenError(name, f"must be >= 0 hours, got {v!r}")


@dataclass(frozen=True)
class SizeScale:
    """Size scale of one asset, fitted on a training block (:func:`fit_size_scale`)."""

    lot: float
    """Mean limit-order (submit) size of the training block, shares: the unit of ``size_lots``
    and of the Cont-Stoikov-Talreja queues."""
    edges: tuple[float, ...]
    """Bin edges, shares: bin ``b`` holds ``edges[b] <= size < edges[b + 1]``; the first bin also takes
    smaller sizes and the last (upper edge ``inf``) larger ones."""
    centers: tuple[float, ...]
    """Representative size of each bin, shares (median training size in the bin; the geometric
    middle of the edges for a bin the training block never visits). Used to sample sizes."""
    binning: str = "quantile"
    """How the edges were chosen (``TokenConfig.size_binning``)."""

    @property
    def n_bins(self) -> int:
        return len(self.centers)

    def bin_of(self, size) -> np.ndarray:
        """Bin index (int16) of each size (shares)."""
        e = np.asarray(self.edges[1:-1], dtype=np.float64)
        return np.searchsorted(e, np.asarray(size, dtype=np.float64), side="right").astype(np.int16)


@dataclass(frozen=True, eq=False)
class Messages:
    """Order messages in the LOBSTER message layout, struct of arrays (all length n)."""

    time_ns: np.ndarray
    """int64, nanoseconds after midnight (exchange wall clock)."""
    type: np.ndarray
    """int8, LOBSTER message type: 1 submit, 2 partial cancel, 3 delete, 4 visible execution,
    5 hidden execution."""
    size: np.ndarray
    """float64, shares."""
    price_ticks: np.ndarray
    """int64, price in ticks of the asset (the canonical table's ``price_ticks``: the exact price
    rounded half to even)."""
    direction: np.ndarray
    """int8, +1 buy limit order (bid side), -1 sell LO (ask side); for an execution the resting
    order's side (so an execution of a sell LO is a buyer-initiated trade)."""
    order_id: np.ndarray | None = None
    """int64 exchange order ids, or None (0 is written for generated messages)."""
    sub_tick: np.ndarray | None = None
    """int8 half ticks to add to ``price_ticks`` for the exact price (-1, 0, +1), or None (all 0)."""

    def __post_init__(self):
        n = len(self.time_ns)
        for f in ("type", "size", "price_ticks", "direction", "order_id", "sub_tick"):
            v = getattr(self, f)
            if v is not None and len(v) != n:
                raise EventTokenError(f, f"has {len(v)} entries, time_ns has {n}")

    def __len__(self) -> int:
        return len(self.time_ns)

    def price_half_ticks(self) -> np.ndarray:
        """int64 exact prices in half ticks (``2 * price_ticks + sub_tick``)."""
        sub = 0 if self.sub_tick is None else self.sub_tick.astype(np.int64)
        return 2 * self.price_ticks.astype(np.int64) + sub

    def tape_columns(self) -> dict[str, np.ndarray]:
        """Columns in the layout of the book engine's tape (``lobworld.envs.book.Tape``): ``t`` int64 ns,
        ``type`` int8, ``side`` int8 (0 bid, 1 ask), ``price`` int64 ticks, ``size`` int64 shares,
        ``order_id`` int64. Raises :class:`EventTokenError` for sizes that are not whole shares."""
        size = np.asarray(self.size, dtype=np.float64)
        if (size != np.rint(size)).any():
            raise EventTokenError("size", "the tape holds whole shares", row=_first(size != np.rint(size)))
        return {"t": self.time_ns.astype(np.int64), "type": self.type.astype(np.int8),
                "side": (self.direction < 0).astype(np.int8), "price": self.price_ticks.astype(np.int64),
                "size": size.astype(np.int64),
                "order_id": np.zeros(len(self), np.int64) if self.order_id is None else self.order_id.astype(np.int64)}

    def to_lobster(self, tick_size: float = 0.01) -> np.ndarray:
        """``(n, 6)`` float64 rows of a LOBSTER message file: time (s after midnight), type,
        order id, size, price (USD x 10000), direction."""
        out = np.empty((len(self), 6))
        out[:, 0] = self.time_ns / 1e9
        out[:, 1] = self.type
        out[:, 2] = 0 if self.order_id is None else self.order_id
        out[:, 3] = self.size
        out[:, 4] = np.rint(self.price_half_ticks() * (tick_size * 5_000.0))
        out[:, 5] = self.direction
        return out

    def events_frame(self, date: str, tick_size: float = 0.01, tz: str = NY_TZ) -> pd.DataFrame:
        """The message columns of the canonical event table (no book columns)."""
        day = np.datetime64(str(date), "ns")
        ts = pd.DatetimeIndex(day + self.time_ns.astype("timedelta64[ns]")).tz_localize(tz)
        t = self.type.astype(np.int64)
        if ((t < 1) | (t > N_TYPES)).any():
            bad = int(np.flatnonzero((t < 1) | (t > N_TYPES))[0])
            raise EventTokenError("type", f"LOBSTER type {t[bad]} is not 1..5", row=bad)
        cats = np.array([EVENT_CATEGORIES.index(n) for n in ETYPE_NAMES], dtype=np.int8)[t - 1]
        direction = self.direction.astype(np.int8)
        is_exec = (t == 4) | (t == 5)
        return pd.DataFrame({
            "ts": ts,
            "event": pd.Categorical.from_codes(cats, dtype=EVENT_DTYPE),
            "order_id": np.zeros(len(self), np.int64) if self.order_id is None else self.order_id.astype(np.int64),
            "size": self.size.astype(np.float64),
            "price": self.price_half_ticks() * (tick_size / 2.0),
            "price_ticks": self.price_ticks.astype(np.int64),
            "direction": direction,
            "aggressor": np.where(is_exec, -direction, 0).astype(np.int8),
            "trading_state": np.ones(len(self), np.int8),
        })


def messages_to_events(messages: Messages, bid_px, bid_sz, ask_px, ask_sz, *, date: str = "2012-06-21",
                       tick_size: float = 0.01, ticker: str = "SIM") -> pd.DataFrame:
    """A canonical event table from messages and the book after each of them.

    ``bid_px`` ... ``ask_sz``: ``(n, L)`` arrays, prices in ticks (``NO_PRICE`` or NaN for an
    empty level, size 0), sizes in shares, in the level order of a LOBSTER orderbook file.
    """
    arrs = [np.asarray(a, dtype=np.float64) for a in (bid_px, bid_sz, ask_px, ask_sz)]
    n = len(messages)
    for name, a in zip(("bid_px", "bid_sz", "ask_px", "ask_sz"), arrs):
        if a.ndim != 2 or a.shape[0] != n or a.shape[1] != arrs[0].shape[1]:
            raise EventTokenError(name, f"must be ({n}, L) like the other book arrays, got {a.shape}")
    bp, bs, ap, as_ = arrs
    bp = np.where((bs > 0) & (bp != NO_PRICE), bp * tick_size, np.nan)
    ap = np.where((as_ > 0) & (ap != NO_PRICE), ap * tick_size, np.nan)
    L = bp.shape[1]
    df = messages.events_frame(date, tick_size)
    book = pd.DataFrame(np.concatenate([bp, bs, ap, as_], axis=1), columns=book_columns(L))
    df = pd.concat([df, book], axis=1)
    df.attrs.update({"ticker": ticker, "date": str(date), "levels": int(L), "tick_size": float(tick_size),
                     "source": "simulated", "path": "", "dropped": {}})
    return df


@dataclass(frozen=True, eq=False)
class EventTokens:
    """Tokens of one event stream (struct of arrays; see the module docstring for the fields)."""

    row: np.ndarray
    etype: np.ndarray
    side: np.ndarray
    level: np.ndarray
    sub_tick: np.ndarray
    size: np.ndarray
    size_lots: np.ndarray
    size_bin: np.ndarray
    dt_ns: np.ndarray
    log_dt: np.ndarray
    best_bid: np.ndarray
    best_ask: np.ndarray
    spread: np.ndarray
    bid_sz: np.ndarray
    ask_sz: np.ndarray
    imbalance: np.ndarray
    tod_s: np.ndarray
    t_start_ns: int = 0
    """Clock of the event before the first token, ns after midnight."""
    scale: SizeScale | None = None
    """The size scale used for ``size_lots`` / ``size_bin``."""
    config: TokenConfig = field(default_factory=TokenConfig)
    """The settings that made these tokens."""
    meta: dict = field(default_factory=dict)
    """``ticker``, ``date``, ``tick_size`` (USD) of the source table."""

    _ARRAYS = ("row", "etype", "side", "level", "sub_tick", "size", "size_lots", "size_bin", "dt_ns", "log_dt",
               "best_bid", "best_ask", "spread", "bid_sz", "ask_sz", "imbalance", "tod_s")

    def __len__(self) -> int:
        return len(self.row)

    def time_ns(self) -> np.ndarray:
        """Clock of every token, ns after midnight (``t_start_ns + cumsum(dt_ns)``)."""
        return self.t_start_ns + np.cumsum(self.dt_ns)

    def slice(self, start: int, stop: int) -> "EventTokens":
        """Tokens ``start:stop`` (contiguous, so the clock of the slice stays exact)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        t0 = self.t_start_ns + int(self.dt_ns[:start].sum())
        return replace(self, t_start_ns=t0, **{k: getattr(self, k)[start:stop] for k in self._ARRAYS})


def fit_size_scale(sizes, etype, config: TokenConfig = TokenConfig()) -> SizeScale:
    """Fit the size scale on training-block ``sizes`` (shares) with token types ``etype``.

    ``lot`` is the mean submit size; the bins are fitted on the sizes of every event type.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    etype = np.asarray(etype)
    if len(sizes) == 0:
        raise EventTokenError("size", "the training block is empty: no sizes to fit the size scale on "
                              "(shorten TokenConfig.test_hours / early_stop_hours or pass scale=)")
    sub = sizes[etype == SUBMIT]
    lot = float(sub.mean()) if len(sub) else float(sizes.mean())
    nb = config.size_bins
    if config.size_binning == "quantile":
        q = np.quantile(sizes, np.linspace(0.0, 1.0, nb + 1)[1:-1])
        inner = np.ceil(q)  # integer share thresholds
        vals, counts = np.unique(sizes, return_counts=True)
        atoms = vals[counts >= len(sizes) / nb]  # a size this common gets a bin of its own
        top = max(float(np.max(np.concatenate([inner, atoms + 1.0]))), 1.0)
        tail = top * 2.0 ** np.arange(1, 64)
        tail = tail[tail < sizes.max()]  # doubling bins above the last quantile
        inner = np.unique(np.concatenate([inner, atoms, atoms + 1.0, tail]))
        inner = inner[inner > sizes.min()]
    else:
        inner = np.unique(np.geomspace(1.0, max(float(sizes.max()), 2.0), nb + 1)[1:-1])
    edges = np.concatenate([[min(1.0, float(sizes.min()))], inner, [np.inf]])
    b = np.searchsorted(edges[1:-1], sizes, side="right")
    centers = []
    for k in range(len(edges) - 1):
        s = sizes[b == k]
        if len(s):
            centers.append(float(np.median(s)))
        else:
            hi = edges[k + 1] if np.isfinite(edges[k + 1]) else 2.0 * edges[k]
            centers.append(float(np.sqrt(max(edges[k], 1e-9) * hi)))
    return SizeScale(lot=lot, edges=tuple(float(e) for e in edges), centers=tuple(centers),
                     binning=config.size_binning)


def time_split_masks(time_ns, test_hours: float, early_stop_hours: float):
    """Boolean masks (train, early_stop, test) over event times (ns): test = the events after the
    last event's time minus ``test_hours``; early stop = the ``early_stop_hours`` before that
    (the rule of ``world_models.training.split_masks`` for bars)."""
    t = np.asarray(time_ns, dtype=np.int64)
    if len(t) == 0:
        z = np.zeros(0, bool)
        return z, z, z
    test_start = int(t.max()) - int(round(test_hours * 3600e9))
    es_start = test_start - int(round(early_stop_hours * 3600e9))
    test = t > test_start
    es = (t > es_start) & ~test
    return ~test & ~es, es, test


def split_masks(tokens: EventTokens, test_hours: float | None = None, early_stop_hours: float | None = None):
    """(train, early_stop, test) masks over ``tokens``; hours default to ``tokens.config``'s."""
    th = tokens.config.test_hours if test_hours is None else test_hours
    eh = tokens.config.early_stop_hours if early_stop_hours is None else early_stop_hours
    return time_split_masks(tokens.time_ns(), th, eh)


def _wall_ns(ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 nanoseconds after midnight of the exchange wall clock, datetime64[D] day) of every row."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize(None)
    if not pd.api.types.is_datetime64_any_dtype(ts.dtype):
        raise EventTokenError("ts", f"must be a datetime column, got dtype {ts.dtype}")
    v = ts.to_numpy(dtype="datetime64[ns]")
    if np.isnat(v).any():
        raise EventTokenError("ts", "missing time", row=int(np.flatnonzero(np.isnat(v))[0]))
    day = v.astype("datetime64[D]")
    return (v - day).astype(np.int64), day


def _first(mask) -> int:
    return int(np.flatnonzero(mask)[0])


def tokenize(events: pd.DataFrame, config: TokenConfig = TokenConfig(),
             scale: SizeScale | None = None) -> EventTokens:
    """Tokens of a canonical event table (``load_lobster``'s), one per row after the first.

    ``scale`` None fits the size scale on this table's training block (``config``'s split);
    pass the training day's scale to tokenise held-out data. Vectorised (no per-row Python).
    Raises :class:`EventTokenError` naming the column and row for a missing column, an
    unsorted clock, a NaN / non-positive size, a direction other than +-1, an event type the
    tick model does not have (halts, crosses, Databento trades), or a table whose book has
    fewer than ``top_k`` levels.
    """
    if not isinstance(events, pd.DataFrame):
        raise EventTokenError("events", f"must be a canonical event table (DataFrame), got {type(events).__name__}")
    missing = [c for c in _NEEDED if c not in events.columns]
    if missing:
        raise EventTokenError(missing[0], f"missing column(s) {missing} (need a canonical event table, "
                              "lobworld.world_models.data.load_lobster)")
    try:
        levels = infer_levels(events)
    except ValueError as e:
        raise EventTokenError("bid_px_1", str(e)) from None
    k = config.top_k
    if levels < k:
        raise EventTokenError("top_k", f"the table has {levels} book levels, fewer than top_k={k}")
    for c in book_columns(k) + ["bid_px_1", "ask_px_1"]:
        if c not in events.columns:
            raise EventTokenError(c, "missing book column")
    n_rows = len(events)
    if n_rows < 2:
        raise EventTokenError("events", f"need at least 2 rows (the first only anchors the book), got {n_rows}")
    tick = events.attrs.get("tick_size")
    if tick is None or not tick > 0:
        raise EventTokenError("tick_size", f"events.attrs['tick_size'] must be a positive USD tick, got {tick!r}")

    t_ns, day = _wall_ns(events["ts"])
    if (day != day[0]).any():
        raise EventTokenError("ts", "the table spans more than one day; tokenise each day apart",
                              row=_first(day != day[0]))
    back = np.diff(t_ns) < 0
    if back.any():
        i = _first(back) + 1
        raise EventTokenError("ts", f"time goes backwards ({t_ns[i - 1]} ns -> {t_ns[i]} ns after midnight); "
                              "the table must be sorted by time", row=i)
    try:
        cat = event_codes(events)
    except ValueError as e:
        raise EventTokenError("event", str(e)) from None
    etype_all = _CAT_TO_ETYPE[cat]
    bad = etype_all[1:] < 0
    if bad.any():
        i = _first(bad) + 1
        raise EventTokenError("event", f"event {EVENT_CATEGORIES[cat[i]]!r} is not one of the tick model's "
                              f"{', '.join(ETYPE_NAMES)} (drop halts / crosses first)", row=i)
    size_all = events["size"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(size_all[1:]) | ~(size_all[1:] > 0)
    if bad.any():
        i = _first(bad) + 1
        raise EventTokenError("size", f"size {size_all[i]!r} is not a positive finite number of shares", row=i)
    dirn = events["direction"].to_numpy()
    bad = (dirn[1:] != 1) & (dirn[1:] != -1)
    if bad.any():
        i = _first(bad) + 1
        raise EventTokenError("direction", f"direction {dirn[i]!r} is not +1 or -1", row=i)
    px_all = events["price_ticks"].to_numpy(dtype=np.int64)

    def ticks(col):
        v = events[col].to_numpy(dtype=np.float64)[:-1]
        return np.where(np.isfinite(v), np.rint(v / tick), NO_PRICE).astype(np.int64)

    bb, ba = ticks("bid_px_1"), ticks("ask_px_1")
    both_empty = (bb == NO_PRICE) & (ba == NO_PRICE)
    side = dirn[1:].astype(np.int8)
    px = px_all[1:]
    if both_empty.any():
        i = _first(both_empty) + 1
        raise EventTokenError("bid_px_1", "both sides of the book before the event are empty: "
                              "no reference for the price level", row=i)
    level = _level(side, px, bb, ba).astype(np.int32)
    if "price" in events.columns:
        exact = events["price"].to_numpy(dtype=np.float64)[1:]
        x2 = np.rint(exact * (2.0 / tick))
        sub = x2 - 2 * px
        bad = ~np.isfinite(exact) | (np.abs(sub) > 1) | (np.abs(exact * (2.0 / tick) - x2) > 1e-6)
        if bad.any():
            i = _first(bad) + 1
            raise EventTokenError("price", f"price {exact[i - 1]!r} is not on the half-tick grid of tick "
                                  f"{tick} around price_ticks {px[i - 1]}", row=i)
        sub_tick = sub.astype(np.int8)
    else:
        sub_tick = np.zeros(len(px), np.int8)
    has2 = (bb != NO_PRICE) & (ba != NO_PRICE)
    spread = np.where(has2, ba - bb, -1).astype(np.int32)
    bid_sz = events[[f"bid_sz_{j}" for j in range(1, k + 1)]].to_numpy(dtype=np.float32)[:-1]
    ask_sz = events[[f"ask_sz_{j}" for j in range(1, k + 1)]].to_numpy(dtype=np.float32)[:-1]
    for name, a in (("bid_sz", bid_sz), ("ask_sz", ask_sz)):
        if not np.isfinite(a).all():
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise EventTokenError(f"{name}_{c + 1}", "NaN book size", row=int(r))
    m = config.imbalance_levels
    sb, sa = bid_sz[:, :m].sum(axis=1, dtype=np.float64), ask_sz[:, :m].sum(axis=1, dtype=np.float64)
    tot = sb + sa
    imbalance = np.where(tot > 0, (sb - sa) / np.where(tot > 0, tot, 1.0), 0.0).astype(np.float32)
    dt_ns = np.diff(t_ns)
    log_dt = np.log(np.maximum(dt_ns * 1e-9, config.min_dt_s)).astype(np.float32)
    etype = etype_all[1:].astype(np.int8)
    size = size_all[1:]
    if scale is None:
        train, _, _ = time_split_masks(t_ns[1:], config.test_hours, config.early_stop_hours)
        scale = fit_size_scale(size[train], etype[train], config)
    return EventTokens(
        row=np.arange(1, n_rows, dtype=np.int64), etype=etype, side=side, level=level, sub_tick=sub_tick, size=size,
        size_lots=(size / scale.lot).astype(np.float32), size_bin=scale.bin_of(size), dt_ns=dt_ns,
        log_dt=log_dt, best_bid=bb, best_ask=ba, spread=spread, bid_sz=bid_sz, ask_sz=ask_sz,
        imbalance=imbalance, tod_s=t_ns[1:] / 1e9, t_start_ns=int(t_ns[0]), scale=scale, config=config,
        meta={"ticker": events.attrs.get("ticker", "UNKNOWN"), "date": str(day[0]), "tick_size": float(tick)},
    )


def _reference(side, bb, ba):
    """Same-side best (ticks), or one tick inside the opposite best when that side is empty."""
    ref_bid = np.where(bb != NO_PRICE, bb, ba - 1)
    ref_ask = np.where(ba != NO_PRICE, ba, bb + 1)
    return np.where(side > 0, ref_bid, ref_ask)


def _level(side, px, bb, ba):
    ref = _reference(side, bb, ba)
    return np.where(side > 0, ref - px, px - ref)


def detokenize(tokens: EventTokens, *, sizes_from_bins: bool = False) -> Messages:
    """Messages of ``tokens``: type ``etype + 1``, direction ``side``, price from ``level`` and the
    same-side best before the event (plus ``sub_tick`` half ticks), time ``t_start_ns + cumsum(dt_ns)``. Sizes are the exact
    ``size`` field, or with ``sizes_from_bins`` the bin centres of ``tokens.scale`` (what a
    model that samples bins produces)."""
    side = np.asarray(tokens.side)
    if ((side != 1) & (side != -1)).any():
        raise EventTokenError("side", "must be +1 or -1", row=_first((side != 1) & (side != -1)))
    et = np.asarray(tokens.etype)
    if ((et < 0) | (et >= N_TYPES)).any():
        raise EventTokenError("etype", f"must be 0..{N_TYPES - 1}", row=_first((et < 0) | (et >= N_TYPES)))
    ref = _reference(side, tokens.best_bid, tokens.best_ask)
    price = np.where(side > 0, ref - tokens.level, ref + tokens.level).astype(np.int64)
    if sizes_from_bins:
        if tokens.scale is None:
            raise EventTokenError("scale", "sizes_from_bins needs tokens.scale")
        size = np.asarray(tokens.scale.centers, dtype=np.float64)[tokens.size_bin]
    else:
        size = np.asarray(tokens.size, dtype=np.float64).copy()
    return Messages(time_ns=tokens.time_ns(), type=(et + 1).astype(np.int8), size=size, price_ticks=price,
                    direction=side.astype(np.int8), sub_tick=np.asarray(tokens.sub_tick, np.int8).copy())


def level_class(level, level_max: int) -> np.ndarray:
    """Class index (int64) of a level in ticks behind the same-side best: ``clip(level, -m, m) + m``
    with ``m = level_max`` (``2 m + 1`` classes; the end classes take everything beyond)."""
    return (np.clip(np.asarray(level, dtype=np.int64), -level_max, level_max) + level_max).astype(np.int64)


def token_fields() -> tuple[str, ...]:
    """Names of the per-event array fields of :class:`EventTokens`."""
    return tuple(f.name for f in fields(EventTokens) if f.name in EventTokens._ARRAYS)

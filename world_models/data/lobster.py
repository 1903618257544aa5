"""LOBSTER message + orderbook files -> the canonical event table.

LOBSTER (lobsterdata.com) reconstructs NASDAQ TotalView-ITCH into two headerless
CSV files per ticker and day, named
``TICKER_DATE_STARTMS_ENDMS_message_LEVELS.csv`` and
``TICKER_DATE_STARTMS_ENDMS_orderbook_LEVELS.csv`` (optionally ``.gz``).

* message (N x 6): ``time`` (seconds after midnight, exchange wall clock, up to
  ns decimals), ``type`` (1 submit, 2 partial cancel, 3 delete, 4 visible
  execution, 5 hidden execution, 6 cross trade, 7 trading halt), ``order_id``,
  ``size`` (shares), ``price`` (USD x 10000), ``direction`` (+1 buy LO, -1 sell
  LO; the execution of a sell LO is a buyer-initiated trade).
* orderbook (N x 4L): per level 1..L ``ask_px, ask_sz, bid_px, bid_sz``; row k
  is the book after message k. Empty levels hold 9999999999 / -9999999999 with
  size 0 and become price NaN, size 0.
* type 7 (halt) messages carry the new state in ``price``: -1 halt, 0 quotation
  only, 1 trading resumes. They are kept as ``halt`` events (price NaN,
  aggressor 0) and the state is forward-filled into ``trading_state``.
"""

from __future__ import annotations

import datetime as _dt
import pathlib
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from lobworld.world_models.data._csv import read_numeric_csv
from lobworld.world_models.data.errors import DataValidationError
from lobworld.world_models.data.schema import (
    EVENT_CATEGORIES, EVENT_DTYPE, LOBSTER_EVENT_CODES, NY_TZ, book_columns,
)
from lobworld.world_models.data.validate import (
    apply_rules, book_rule_masks, time_rule_mask, warn_dropped,
)

_NAME_RE = re.compile(
    r"^(?P<ticker>[A-Za-z0-9.\-]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv(?P<gz>\.gz)?$"
)
EMPTY_ASK = 9999999999
EMPTY_BID = -9999999999
PRICE_SCALE = 10_000.0  #: LOBSTER prices are USD x 10000
TICK_SIZE = 0.01  #: USD, NASDAQ equities above 1 USD
MAX_LEVELS = 50
PLAUSIBLE_FACTOR = 10.0  #: a price beyond this factor of the file's median mid is implausible
MESSAGE_FIELDS = ("time", "type", "order_id", "size", "price", "direction")


@dataclass(frozen=True)
class LobsterName:
    """The parts of a LOBSTER file name."""

    ticker: str
    """Ticker symbol, e.g. ``"GOOG"``."""
    date: _dt.date
    """Trading day."""
    start_ms: int
    """Window start, milliseconds after midnight (34200000 = 09:30)."""
    end_ms: int
    """Window end, milliseconds after midnight (57600000 = 16:00)."""
    kind: str
    """``"message"`` or ``"orderbook"``."""
    levels: int
    """Book levels in the orderbook file (1..50)."""
    gz: bool
    """Whether the name ends in ``.gz``."""

    def sibling(self, kind: str) -> str:
        return (f"{self.ticker}_{self.date.isoformat()}_{self.start_ms}_{self.end_ms}_"
                f"{kind}_{self.levels}.csv" + (".gz" if self.gz else ""))


def parse_lobster_name(path) -> LobsterName:
    """Parse ``TICKER_DATE_STARTMS_ENDMS_{message,orderbook}_LEVELS.csv[.gz]``.

    Raises :class:`DataValidationError` (rule ``malformed_file_name``) naming the
    part that is wrong.
    """
    path = pathlib.Path(path)
    m = _NAME_RE.match(path.name)
    if m is None:
        raise DataValidationError(
            path, "malformed_file_name",
            "not a LOBSTER file name TICKER_DATE_STARTMS_ENDMS_{message,orderbook}_LEVELS.csv[.gz] "
            "(pass orderbook_path=, date= and levels= to load a renamed file)")
    try:
        date = _dt.date.fromisoformat(m["date"])
    except ValueError:
        raise DataValidationError(path, "malformed_file_name", f"invalid date {m['date']!r}") from None
    start, end, levels = int(m["start"]), int(m["end"]), int(m["levels"])
    if not (0 <= start < end <= 86_400_000):
        raise DataValidationError(path, "malformed_file_name",
                                  f"time window {start}-{end} ms is not 0 <= start < end <= 86400000")
    if not 1 <= levels <= MAX_LEVELS:
        raise DataValidationError(path, "malformed_file_name",
                                  f"level count {levels} is outside 1..{MAX_LEVELS}")
    return LobsterName(m["ticker"], date, start, end, m["kind"], levels, bool(m["gz"]))


def sample_lobster_paths() -> tuple[pathlib.Path, pathlib.Path]:
    """(message, orderbook) paths of the slice shipped in the package: GOOG,
    2012-06-21, 10:00-11:00 New York time, 10 levels (free LOBSTER sample data,
    (c) LOBSTER; see ``lobworld/world_models/assets/lobster/README.md``)."""
    base = pathlib.Path(str(resources.files("lobworld.world_models") / "assets" / "lobster"))
    stem = "GOOG_2012-06-21_36000000_39600000_{}_10.csv.gz"
    msg, ob = base / stem.format("message"), base / stem.format("orderbook")
    if not (msg.is_file() and ob.is_file()):
        raise FileNotFoundError(f"shipped LOBSTER slice missing under {base}")
    return msg, ob


def load_lobster(message_path, orderbook_path=None, *, strict: bool = True,
                 levels: int | None = None, date=None, ticker: str | None = None) -> pd.DataFrame:
    """Load a LOBSTER message/orderbook pair into the canonical event table.

    Arguments:
        message_path: the message file (``.csv`` or ``.csv.gz``).
        orderbook_path: the orderbook file; None infers it from the file-name
            convention (same folder).
        strict: True raises :class:`DataValidationError` (file, line, rule) on the
            first bad row; False drops bad rows, records ``attrs["dropped"]``
            (rule -> count) and logs a warning. The rules are listed in
            :mod:`lobworld.world_models.data.validate`; beside the book rules,
            every price must lie in the file's plausible range (a factor of
            :data:`PLAUSIBLE_FACTOR` around the median mid, :func:`plausible_range`),
            a visible execution must be at the previous row's best price on the
            resting side and a hidden one inside the previous row's spread
            (:func:`execution_rule_masks`).
        levels, date, ticker: only needed for files that do not follow the
            LOBSTER naming convention (then ``orderbook_path`` and ``date`` are
            required; ``levels`` defaults to the orderbook column count / 4).

    Returns the canonical table (see :mod:`lobworld.world_models.data.schema`),
    ``ts`` in America/New_York, ``attrs["tick_size"] = 0.01``.
    """
    message_path = pathlib.Path(message_path)
    try:
        name = parse_lobster_name(message_path)
    except DataValidationError:
        if orderbook_path is None or date is None:
            raise
        name = None
    if name is not None:
        if name.kind != "message":
            raise DataValidationError(message_path, "malformed_file_name",
                                      "expected a message file as the first argument, got an orderbook file")
        if orderbook_path is None:
            orderbook_path = message_path.with_name(name.sibling("orderbook"))
            if not orderbook_path.is_file():  # allow a .gz / plain mix
                alt = orderbook_path.with_name(name.sibling("orderbook").removesuffix(".gz")
                                               if name.gz else name.sibling("orderbook") + ".gz")
                orderbook_path = alt if alt.is_file() else orderbook_path
    orderbook_path = pathlib.Path(orderbook_path)
    ob_name = None
    if name is not None:
        try:
            ob_name = parse_lobster_name(orderbook_path)
        except DataValidationError:
            ob_name = None
        if ob_name is not None:
            for field in ("ticker", "date", "start_ms", "end_ms", "levels"):
                if getattr(ob_name, field) != getattr(name, field):
                    raise DataValidationError(
                        orderbook_path, "file_pair_mismatch",
                        f"orderbook {field} {getattr(ob_name, field)!r} differs from the message file's "
                        f"{getattr(name, field)!r} ({message_path.name})")
    if levels is None and name is not None:
        levels = name.levels
    ticker = ticker or (name.ticker if name else "UNKNOWN")
    day = _dt.date.fromisoformat(str(date)) if date is not None else name.date

    msg = read_numeric_csv(message_path, 6, strict=strict, what="LOBSTER message",
                           field_names=MESSAGE_FIELDS.__getitem__)
    ob = read_numeric_csv(orderbook_path, None if levels is None else 4 * levels,
                          strict=strict, what="LOBSTER orderbook", field_names=_orderbook_field)
    if levels is None:
        if ob.values.shape[1] % 4:
            raise DataValidationError(orderbook_path, "column_count",
                                      f"orderbook has {ob.values.shape[1]} columns, not a multiple of 4", row=1)
        levels = ob.values.shape[1] // 4
    if not 1 <= levels <= MAX_LEVELS:
        raise DataValidationError(orderbook_path, "column_count", f"{levels} levels is outside 1..{MAX_LEVELS}")

    dropped: dict[str, int] = {}
    # ---- align the two files line by line ----------------------------------
    n_common = min(msg.n_lines, ob.n_lines)
    if msg.n_lines != ob.n_lines:
        if strict or not (msg.truncated or ob.truncated or msg.bad_lines or ob.bad_lines):
            raise DataValidationError(
                message_path, "row_count_mismatch",
                f"message file has {msg.n_lines} rows but orderbook {orderbook_path.name} has "
                f"{ob.n_lines}; row k of the orderbook must be the book after message k")
        dropped["truncated_file"] = max(msg.n_lines, ob.n_lines) - n_common
    good = np.intersect1d(msg.lines[msg.lines <= n_common], ob.lines[ob.lines <= n_common],
                          assume_unique=True)
    n_malformed = n_common - len(good)
    if n_malformed:
        dropped["malformed_row"] = n_malformed
    m = msg.values[np.searchsorted(msg.lines, good)]
    b = ob.values[np.searchsorted(ob.lines, good)]
    line = good  # 1-based line numbers of the kept rows (same in both files)

    # ---- decode ---------------------------------------------------------
    t, code, oid, size, px_raw, direction = (m[:, i] for i in range(6))
    L = levels
    ask_px = b[:, 0::4].copy()
    ask_sz = b[:, 1::4].copy()
    bid_px = b[:, 2::4].copy()
    bid_sz = b[:, 3::4].copy()
    ask_px[ask_px == EMPTY_ASK] = np.nan  # exactly the sentinel: a wild price is not "empty"
    bid_px[bid_px == EMPTY_BID] = np.nan
    ask_px /= PRICE_SCALE
    bid_px /= PRICE_SCALE

    masks = {"nan_value": np.isnan(m).any(axis=1)}
    with np.errstate(invalid="ignore"):
        code_ok = np.isin(code, np.arange(1, 8))
        masks["unknown_event_code"] = ~code_ok & ~masks["nan_value"]
        is_halt = code == 7
        masks["bad_direction"] = ~is_halt & ~np.isin(direction, (-1.0, 1.0)) & ~masks["nan_value"]
        masks["negative_size"] = size < 0
    for rule, mk in book_rule_masks(bid_px, bid_sz, ask_px, ask_sz).items():
        masks[rule] = masks.get(rule, False) | mk
    masks["bad_order_id"] = _bad_order_id(oid) & ~masks["nan_value"]
    masks["non_monotonic_time"] = time_rule_mask(t)
    masks["time_outside_window"] = _outside_window(t, name)
    lo, hi = plausible_range(px_raw[code != 7] / PRICE_SCALE, bid_px, ask_px)
    masks["price_out_of_range"] = _out_of_range(px_raw / PRICE_SCALE, ~is_halt, lo, hi) | (
        _book_out_of_range(bid_px, lo, hi) | _book_out_of_range(ask_px, lo, hi))
    # the row before is the reference book when it is the previous file line and breaks no rule
    # (a crossed or garbled book must not condemn the execution after it)
    row_bad = np.zeros(len(line), dtype=bool)
    for mk in masks.values():
        row_bad |= mk
    prev_ok = np.zeros(len(line), dtype=bool)
    prev_ok[1:] = (line[1:] == line[:-1] + 1) & ~row_bad[:-1]
    masks.update(execution_rule_masks(code, px_raw, direction, b, prev_ok))

    def describe(rule, i):
        return _describe(rule, i, m, bid_px, ask_px, bid_sz, ask_sz, t, (lo, hi))

    keep, more = apply_rules(masks, len(t), strict=strict, path=message_path,
                             line_of=lambda i: int(line[i]), describe=describe)
    dropped.update(more)
    if not keep.all():
        m, t, code, oid, size, px_raw, direction = (x[keep] for x in (m, t, code, oid, size, px_raw, direction))
        ask_px, ask_sz, bid_px, bid_sz = ask_px[keep], ask_sz[keep], bid_px[keep], bid_sz[keep]
        is_halt = is_halt[keep]

    # ---- canonical columns ------------------------------------------------
    ns = np.rint(t * 1e9).astype(np.int64)
    wall = np.datetime64(day.isoformat(), "ns") + ns.astype("timedelta64[ns]")
    ts = pd.DatetimeIndex(wall).tz_localize(NY_TZ)
    code_i = code.astype(np.int64)
    cat_codes = np.array([EVENT_CATEGORIES.index(LOBSTER_EVENT_CODES.get(c, "halt"))
                          for c in range(8)], dtype=np.int8)[code_i]
    event = pd.Categorical.from_codes(cat_codes, dtype=EVENT_DTYPE)
    price = np.where(is_halt, np.nan, px_raw / PRICE_SCALE)
    price_ticks = np.where(is_halt, 0, np.rint(px_raw / (PRICE_SCALE * TICK_SIZE))).astype(np.int64)
    dir_i8 = np.where(is_halt, 0, direction).astype(np.int8)
    is_exec = (code_i == 4) | (code_i == 5)
    aggressor = np.where(is_exec, -dir_i8, 0).astype(np.int8)
    state = pd.Series(np.where(is_halt, px_raw, np.nan)).ffill().fillna(1.0).to_numpy()
    cols = {
        "ts": ts, "event": event, "order_id": oid.astype(np.int64), "size": size,
        "price": price, "price_ticks": price_ticks, "direction": dir_i8, "aggressor": aggressor,
        "trading_state": state.astype(np.int8),
    }
    names = book_columns(L)
    book = np.concatenate([bid_px, bid_sz, ask_px, ask_sz], axis=1)
    df = pd.DataFrame(cols)
    df = pd.concat([df, pd.DataFrame(book, columns=names)], axis=1)
    df.attrs.update({
        "ticker": ticker, "date": day.isoformat(), "levels": int(L), "tick_size": TICK_SIZE,
        "source": "lobster", "path": str(message_path), "orderbook_path": str(orderbook_path),
        "dropped": dict(dropped),
    })
    if name is not None:
        df.attrs["window_ms"] = [name.start_ms, name.end_ms]
    warn_dropped(message_path, dropped)
    return df


def load_lobster_messages(message_path, *, strict: bool = True) -> pd.DataFrame:
    """Load only the message file of a LOBSTER pair (fast; no orderbook, no timestamps).

    For what needs the messages alone (e.g. an intraday volume profile). Columns:
    ``time`` (float64, seconds after midnight, as in the file), ``type`` (int8,
    LOBSTER code 1..7), ``order_id`` (int64), ``size`` (float64, shares),
    ``price`` (float64, USD; NaN for halts), ``direction`` (int8: +1 buy LO, -1
    sell LO; 0 for halts), ``trading_state`` (int8, as in :func:`load_lobster`).

    The rules that need no book apply (``nan_value``, ``unknown_event_code``,
    ``bad_direction``, ``negative_size``, ``bad_order_id``, ``non_monotonic_time``,
    ``time_outside_window`` for a file named by the LOBSTER convention, else the
    day 0..86400 s, and ``price_out_of_range`` with the plausible range taken from
    the median message price, :func:`plausible_range`); ``strict`` as in
    :func:`load_lobster`. ``attrs``: ``ticker``, ``date`` (when the name gives
    them), ``path``, ``source`` ``"lobster"``, ``dropped``.
    """
    message_path = pathlib.Path(message_path)
    try:
        name = parse_lobster_name(message_path)
    except DataValidationError:
        name = None
    if name is not None and name.kind != "message":
        raise DataValidationError(message_path, "malformed_file_name",
                                  "expected a LOBSTER message file, got an orderbook file")
    msg = read_numeric_csv(message_path, 6, strict=strict, what="LOBSTER message",
                           field_names=MESSAGE_FIELDS.__getitem__)
    dropped: dict[str, int] = {}
    if msg.truncated:
        dropped["truncated_file"] = 1
    if msg.bad_lines:
        dropped["malformed_row"] = len(msg.bad_lines)
    m = msg.values
    t, code, oid, size, px_raw, direction = (m[:, i] for i in range(6))
    is_halt = code == 7
    masks = {"nan_value": np.isnan(m).any(axis=1)}
    with np.errstate(invalid="ignore"):
        masks["unknown_event_code"] = ~np.isin(code, np.arange(1, 8)) & ~masks["nan_value"]
        masks["bad_direction"] = ~is_halt & ~np.isin(direction, (-1.0, 1.0)) & ~masks["nan_value"]
        masks["negative_size"] = size < 0
    masks["bad_order_id"] = _bad_order_id(oid) & ~masks["nan_value"]
    masks["non_monotonic_time"] = time_rule_mask(t)
    masks["time_outside_window"] = _outside_window(t, name)
    px = px_raw / PRICE_SCALE
    lo, hi = plausible_range(px[~is_halt])
    masks["price_out_of_range"] = _out_of_range(px, ~is_halt, lo, hi)
    empty = np.empty((len(t), 0))

    def describe(rule, i):
        return _describe(rule, i, m, empty, empty, empty, empty, t, (lo, hi))

    line = msg.lines
    keep, more = apply_rules(masks, len(t), strict=strict, path=message_path,
                             line_of=lambda i: int(line[i]), describe=describe)
    dropped.update(more)
    if not keep.all():
        t, code, oid, size, px, direction, is_halt = (x[keep] for x in (t, code, oid, size, px, direction, is_halt))
        px_raw = px_raw[keep]
    state = pd.Series(np.where(is_halt, px_raw, np.nan)).ffill().fillna(1.0).to_numpy()
    df = pd.DataFrame({
        "time": t, "type": code.astype(np.int8), "order_id": oid.astype(np.int64), "size": size,
        "price": np.where(is_halt, np.nan, px), "direction": np.where(is_halt, 0, direction).astype(np.int8),
        "trading_state": state.astype(np.int8),
    })
    df.attrs.update({"source": "lobster", "path": str(message_path), "dropped": dict(dropped)})
    if name is not None:
        df.attrs.update({"ticker": name.ticker, "date": name.date.isoformat(),
                         "window_ms": [name.start_ms, name.end_ms]})
    warn_dropped(message_path, dropped)
    return df


def _orderbook_field(i: int) -> str:
    return f"{('ask_px', 'ask_sz', 'bid_px', 'bid_sz')[i % 4]}_{i // 4 + 1}"


def _fmt_levels(px) -> str:
    return ", ".join("empty" if np.isnan(x) else f"{x:.6g}" for x in px[:3]) + (" ..." if len(px) > 3 else "")


def _bad_order_id(oid: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~((oid >= 0) & (oid < 2.0**63) & (oid == np.floor(oid)))


def _outside_window(t: np.ndarray, name: LobsterName | None) -> np.ndarray:
    """Times outside the file name's window, or outside the day (0..86400 s) without a name."""
    start, end = (name.start_ms, name.end_ms) if name is not None else (0, 86_400_000)
    with np.errstate(invalid="ignore"):
        return (t * 1000.0 < start) | (t * 1000.0 > end)


def plausible_range(message_px: np.ndarray, bid_px=None, ask_px=None) -> tuple[float, float]:
    """The file's plausible price range ``[P / PLAUSIBLE_FACTOR, P * PLAUSIBLE_FACTOR]`` (USD).

    ``P`` is the median best-level mid-price over the rows with both sides quoted
    (``bid_px`` / ``ask_px`` are ``(N, L)`` USD arrays, NaN = empty level); without a
    book, or with no two-sided row, the median of the positive finite message
    prices. A move beyond a factor of :data:`PLAUSIBLE_FACTOR` within one file is
    not a market move but a sentinel, a unit error (prices not in USD x 10000) or a
    corrupt field. ``(nan, nan)`` when no price is known (then nothing is out of range).
    """
    ref = np.nan
    if bid_px is not None and len(bid_px):
        mid = 0.5 * (bid_px[:, 0] + ask_px[:, 0])
        mid = mid[np.isfinite(mid) & (mid > 0)]
        if len(mid):
            ref = float(np.median(mid))
    if not np.isfinite(ref):
        p = message_px[np.isfinite(message_px) & (message_px > 0)]
        if len(p):
            ref = float(np.median(p))
    return ref / PLAUSIBLE_FACTOR, ref * PLAUSIBLE_FACTOR


def _out_of_range(px: np.ndarray, check: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Rows (``check`` True) whose price is infinite, not positive or outside ``[lo, hi]``."""
    if not np.isfinite(lo):
        with np.errstate(invalid="ignore"):
            return check & (np.isinf(px) | (px <= 0))
    with np.errstate(invalid="ignore"):
        return check & ~np.isnan(px) & ~((px >= lo) & (px <= hi))


def _book_out_of_range(px: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Rows with a quoted book price (not NaN) outside ``[lo, hi]`` USD."""
    if not np.isfinite(lo):
        return np.zeros(len(px), dtype=bool)
    with np.errstate(invalid="ignore"):
        return (~np.isnan(px) & ~((px >= lo) & (px <= hi))).any(axis=1)


def execution_rule_masks(code, px_raw, direction, book_raw, prev_ok) -> dict[str, np.ndarray]:
    """Masks of the rules tying message prices to the book (raw LOBSTER units, exact).

    ``book_raw`` is the raw orderbook ``(N, 4L)`` (``ask_px, ask_sz, bid_px, bid_sz``
    per level, empty levels as LOBSTER's sentinels), ``prev_ok[k]`` whether row
    ``k - 1`` is the book just before message ``k`` (False for the first row or
    after a dropped line). Rules:

    * ``exec_off_book``: a visible execution (type 4) not at the best price of the
      resting side just before it (direction +1, a buy order: the best bid; -1: the
      best ask). Without the row before: not within its own row's best bid..best ask.
    * ``exec_outside_spread``: a hidden execution (type 5) outside best bid..best ask
      of the row before it (without it: of its own row). Hidden orders are not on the
      visible book, so only the spread bounds them.

    An empty best level (a one-sided book) does not bound the check on that side.
    """
    n = len(code)
    ask1 = np.where(book_raw[:, 0] == EMPTY_ASK, np.nan, book_raw[:, 0])
    bid1 = np.where(book_raw[:, 2] == EMPTY_BID, np.nan, book_raw[:, 2])
    prev = np.maximum(np.arange(n) - 1, 0)
    pb = np.where(prev_ok, bid1[prev], bid1)  # best bid / ask of the row before (own row without it)
    pa = np.where(prev_ok, ask1[prev], ask1)
    with np.errstate(invalid="ignore"):
        in_spread = ~(px_raw < pb) & ~(px_raw > pa)  # NaN bounds do not bind
        vis = code == 4
        at_best = np.where(direction == 1, px_raw == pb, px_raw == pa)
        exec_off = vis & np.where(prev_ok, ~at_best, ~in_spread)
        hid_off = (code == 5) & ~in_spread
    return {"exec_off_book": exec_off, "exec_outside_spread": hid_off}


def _describe(rule, i, m, bid_px, ask_px, bid_sz, ask_sz, t, band=(np.nan, np.nan)) -> str:
    px = m[i, 4] / PRICE_SCALE
    if rule == "price_out_of_range":
        lo, hi = band
        if np.isfinite(px) and m[i, 1] != 7 and not lo <= px <= hi:
            return (f"price {px:.6g} USD (field 5 = {m[i, 4]:.6g}) is outside the file's plausible "
                    f"range [{lo:.4f}, {hi:.4f}] USD")
        return (f"a book price is outside the file's plausible range [{lo:.4f}, {hi:.4f}] USD "
                f"(bids {_fmt_levels(bid_px[i])}; asks {_fmt_levels(ask_px[i])})")
    if rule in ("exec_off_book", "exec_outside_spread"):
        kind = "visible execution" if rule == "exec_off_book" else "hidden execution"
        d = int(m[i, 5])
        j = i - 1 if i > 0 else i
        where = "the previous row's" if i > 0 else "its own row's"
        book = f"best bid {bid_px[j, 0]:.4f} / best ask {ask_px[j, 0]:.4f}"
        if rule == "exec_off_book" and i == 0:
            return f"{kind} at {px:.4f} USD lies outside its own row's spread ({book}); no row before it"
        if rule == "exec_off_book":
            side = "best bid (a buy order rests there)" if d == 1 else "best ask (a sell order rests there)"
            return (f"{kind} at {px:.4f} USD (direction {d:+d}) is not at {where} {side}; {where} "
                    f"book: {book}")
        return f"{kind} at {px:.4f} USD lies outside {where} spread ({book})"
    if rule == "bad_order_id":
        return f"order id {m[i, 2]!r} (field 3) is not an integer in 0..2**63-1"
    if rule == "crossed_book":
        return f"crossed book: best bid {bid_px[i, 0]:.4f} > best ask {ask_px[i, 0]:.4f}"
    if rule == "locked_book":
        return f"locked book: best bid == best ask == {bid_px[i, 0]:.4f}"
    if rule == "non_monotonic_time":
        nxt = f", next {t[i + 1]!r} s" if i + 1 < len(t) else ""
        return f"time {t[i]!r} s is out of order (previous event {t[i - 1]!r} s{nxt})"
    if rule == "unknown_event_code":
        return f"message type {m[i, 1]:g} is not a LOBSTER code (1..7)"
    if rule == "bad_direction":
        return f"direction {m[i, 5]:g} is not +1 or -1"
    if rule == "negative_size":
        return "negative size in the message or the book"
    if rule == "nan_value":
        nan_f = np.flatnonzero(np.isnan(m[i]))
        if len(nan_f):
            return f"field {nan_f[0] + 1} ({MESSAGE_FIELDS[nan_f[0]]}) of the message is empty or NaN"
        return "a book size is empty or NaN, or a non-empty book level has no price"
    if rule == "book_order":
        return "book levels out of order (bids must fall, asks rise with the level)"
    if rule == "time_outside_window":
        return f"time {t[i]!r} s is outside the window named by the file (or outside 0..86400 s)"
    return "row breaks the rule"

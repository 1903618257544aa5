"""The canonical event table shared by every loader (names agreed across lobworld).

One row per event. Columns, in order:

==================  ==========================  ============================================
column              dtype                       meaning
==================  ==========================  ============================================
``ts``              datetime64[ns, tz]          event time (America/New_York for LOBSTER,
                                                UTC for Databento)
``event``           Categorical                 one of :data:`EVENT_CATEGORIES`
``order_id``        int64                       exchange order id (0 when n/a)
``size``            float64                     shares of the event
``price``           float64                     USD (NaN when n/a, e.g. halts)
``price_ticks``     int64                       ``round(price / tick_size)`` (0 when n/a)
``direction``       int8                        +1 buy limit order, -1 sell LO, 0 n/a
``aggressor``       int8                        +1 buyer-initiated trade, -1 seller-initiated,
                                                0 not a trade
``trading_state``   int8                        +1 trading, 0 quotation only, -1 halted
                                                (LOBSTER type-7 messages, forward-filled)
``bid_px_k`` ...    float64                     book AFTER the event, levels k = 1..L:
``bid_sz_k``                                    ``bid_px_1..L, bid_sz_1..L, ask_px_1..L,
``ask_px_k``                                    ask_sz_1..L`` (USD / shares; empty level:
``ask_sz_k``                                    price NaN, size 0)
``bid_ct_k``        float64                     order counts per level (Databento MBP only)
``ask_ct_k``
==================  ==========================  ============================================

``df.attrs``: ``ticker``, ``date`` (ISO string), ``levels``, ``tick_size`` (USD),
``source`` (``"lobster"`` / ``"databento"``), ``path`` (str), ``dropped`` (dict
rule -> rows dropped by ``strict=False``; empty when nothing was dropped).
"""

from __future__ import annotations

import pandas as pd

from lobworld.world_models.data.errors import DataValidationError

EVENT_CATEGORIES = (
    "submit", "cancel", "delete", "exec_visible", "exec_hidden", "cross", "halt",
    "trade", "modify", "clear", "fill",
)
"""Categories of the ``event`` column (fixed order, shared by every source)."""

#: LOBSTER message type code -> event name.
LOBSTER_EVENT_CODES = {1: "submit", 2: "cancel", 3: "delete", 4: "exec_visible",
                       5: "exec_hidden", 6: "cross", 7: "halt"}

#: Events counted as executed volume in bars (visible + hidden executions,
#: Databento trades; Databento "fill" records repeat a trade from the resting side).
EXEC_EVENTS = ("exec_visible", "exec_hidden", "trade")

EVENT_DTYPE = pd.CategoricalDtype(list(EVENT_CATEGORIES), ordered=False)

NY_TZ = "America/New_York"

MESSAGE_COLUMNS = ("ts", "event", "order_id", "size", "price", "price_ticks",
                   "direction", "aggressor", "trading_state")


def book_columns(levels: int, counts: bool = False) -> list[str]:
    """Book column names for ``levels`` levels, in canonical order."""
    cols = [f"{name}_{k}" for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")
            for k in range(1, levels + 1)]
    if counts:
        cols += [f"{name}_{k}" for name in ("bid_ct", "ask_ct") for k in range(1, levels + 1)]
    return cols


def infer_levels(df: pd.DataFrame) -> int:
    """Number of book levels present in a canonical table."""
    k = 0
    while f"bid_px_{k + 1}" in df.columns:
        k += 1
    if k == 0:
        raise DataValidationError(None, "no_book_columns",
                                  "the event table has no book columns (bid_px_1, ...): bars and book features "
                                  "need a source with a book (LOBSTER, Databento MBP-1/MBP-10; not MBO)")
    return k


def event_codes(events: pd.DataFrame):
    """Category codes of ``events["event"]`` in :data:`EVENT_CATEGORIES` order (accepts
    plain strings too); raises :class:`DataValidationError` (rule ``unknown_event``) naming an
    unknown event name and its row."""
    import numpy as np

    col = events["event"]
    if not (isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == list(EVENT_CATEGORIES)):
        vals = col.astype(str)
        bad = ~vals.isin(EVENT_CATEGORIES)
        if bad.any():
            raise DataValidationError(None, "unknown_event",
                                      f"unknown event name {vals[bad].iloc[0]!r} (row {int(bad.to_numpy().argmax())} "
                                      f"of the table); expected one of {', '.join(EVENT_CATEGORIES)}")
        col = vals.astype(EVENT_DTYPE)
    return np.asarray(col.cat.codes.to_numpy())

"""Row-level validation rules shared by the loaders (vectorised, no row loops).

Each rule is a boolean mask over rows (True = the row breaks the rule). With
``strict=True`` the earliest offending row raises :class:`DataValidationError`
naming the file, the 1-based line and the rule; with ``strict=False`` every
offending row is dropped, the counts per rule go to ``df.attrs["dropped"]`` and a
``logging`` warning lists them.

Rules (names used in errors and in ``attrs["dropped"]``):

* ``nan_value``: a missing / NaN field (a book price may be NaN only on an
  empty level, i.e. with size 0).
* ``negative_size``: a negative event or book size.
* ``crossed_book``: best bid above best ask.
* ``locked_book``: best bid equal to best ask.
* ``book_order``: bid prices not strictly decreasing / ask prices not strictly
  increasing with the level, or a filled level below an empty one.
* ``non_monotonic_time``: an event earlier than an event before it.
* ``unknown_event_code``: an event code outside the source's code table.
* ``bad_direction``: a direction outside {-1, +1} on an order event.
* ``time_outside_window``: an event outside the time window named by the file.
* ``price_out_of_range``: a price outside the file's plausible range, a factor of
  10 either side of its median mid-price (LOBSTER: message prices other than halts,
  and every quoted book price; see ``lobster.plausible_range``).
* ``exec_off_book``: a visible execution not at the best price of the resting side
  of the book just before it (LOBSTER).
* ``exec_outside_spread``: a hidden execution outside the best bid..best ask of the
  book just before it (LOBSTER).
* ``bad_order_id``: an order id that is not an integer in 0..2**63-1 (LOBSTER).
* ``unknown_record_type``: a Databento ``rtype`` other than the schema's.
* ``malformed_row``: a line with the wrong number of fields; ``truncated_file``: a
  file cut short (a compressed stream that ends early, a last line cut mid-line, a
  DBN file that ends inside a record).

Errors that ``strict=False`` cannot turn into drops (there is no row to drop, or no
way to tell the damaged rows): ``file_not_found`` / ``not_a_file`` (a missing path,
a directory), ``not_gzip``, ``corrupt_gzip`` (a damaged deflate stream or CRC
mismatch), ``corrupt_dbn``, ``empty_file``, ``column_count``, ``non_numeric``
(naming the line and field).
"""

from __future__ import annotations

import logging

import numpy as np

from lobworld.world_models.data.errors import DataValidationError

log = logging.getLogger("lobworld.data")


def book_rule_masks(bid_px, bid_sz, ask_px, ask_sz) -> dict[str, np.ndarray]:
    """Masks of the book rules for ``(N, L)`` arrays (USD / shares, NaN = empty level)."""
    masks: dict[str, np.ndarray] = {}
    sizes_nan = np.isnan(bid_sz).any(axis=1) | np.isnan(ask_sz).any(axis=1)
    px_nan_filled = (np.isnan(bid_px) & (bid_sz > 0)).any(axis=1) | (
        np.isnan(ask_px) & (ask_sz > 0)).any(axis=1)
    masks["nan_value"] = sizes_nan | px_nan_filled
    masks["negative_size"] = (bid_sz < 0).any(axis=1) | (ask_sz < 0).any(axis=1)
    b1, a1 = bid_px[:, 0], ask_px[:, 0]
    with np.errstate(invalid="ignore"):
        masks["crossed_book"] = b1 > a1
        masks["locked_book"] = b1 == a1
        if bid_px.shape[1] > 1:
            bp, ap = bid_px, ask_px
            bad_b = ~np.isnan(bp[:, 1:]) & (np.isnan(bp[:, :-1]) | (bp[:, 1:] >= bp[:, :-1]))
            bad_a = ~np.isnan(ap[:, 1:]) & (np.isnan(ap[:, :-1]) | (ap[:, 1:] <= ap[:, :-1]))
            masks["book_order"] = bad_b.any(axis=1) | bad_a.any(axis=1)
    return masks


def time_rule_mask(t: np.ndarray) -> np.ndarray:
    """Rows that break the time order.

    A lone spike (a row later than the next one while its neighbours are in
    order) is flagged itself, so one bad stamp does not condemn every later
    row; otherwise a row earlier than the running maximum of the rows before
    is flagged.
    """
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    if n >= 3:
        out[1:-1] = (t[1:-1] > t[2:]) & (t[:-2] <= t[2:])
    rest = np.flatnonzero(~out)
    tr = t[rest]
    prev_max = np.maximum.accumulate(tr)
    late = np.zeros(len(tr), dtype=bool)
    late[1:] = tr[1:] < prev_max[:-1]
    out[rest[late]] = True
    return out


def apply_rules(masks: dict[str, np.ndarray], n: int, *, strict: bool, path,
                line_of=None, describe=None) -> tuple[np.ndarray, dict[str, int]]:
    """Raise on the earliest violation (strict) or return ``(keep_mask, dropped_counts)``.

    ``line_of(i)`` maps a row index to its 1-based file line (default ``i + 1``);
    ``describe(rule, i)`` returns a detail string for the error message.
    """
    line_of = line_of or (lambda i: i + 1)
    bad = np.zeros(n, dtype=bool)
    dropped: dict[str, int] = {}
    first: tuple[int, str] | None = None
    for rule, m in masks.items():
        if m is None or not m.any():
            continue
        idx = int(np.argmax(m))
        if first is None or idx < first[0]:
            first = (idx, rule)
        dropped[rule] = int(np.count_nonzero(m & ~bad))
        bad |= m
    if first is not None and strict:
        idx, rule = first
        detail = describe(rule, idx) if describe else "row breaks the rule"
        raise DataValidationError(path, rule, detail + f" ({int(masks[rule].sum())} rows break this "
                                  "rule; load with strict=False to drop them)", row=line_of(idx))
    return ~bad, {k: v for k, v in dropped.items() if v}


def warn_dropped(path, dropped: dict[str, int]) -> None:
    if dropped:
        total = sum(dropped.values())
        log.warning("%s: dropped %d rows (strict=False): %s", path, total,
                    ", ".join(f"{k}={v}" for k, v in dropped.items()))

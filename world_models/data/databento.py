"""Databento MBP-1 / MBP-10 / MBO (DBN or CSV) -> the canonical event table.

Sources: ``.dbn`` / ``.dbn.zst`` files decoded with ``databento_dbn.DBNDecoder``
(records are then viewed as one NumPy structured array, no per-field Python access),
and Databento's CSV layout (``DBNStore.to_csv``: columns ``ts_recv, ts_event,
rtype, publisher_id, instrument_id, action, side, depth, price, size, flags,
ts_in_delta, sequence, bid_px_00, ask_px_00, bid_sz_00, ask_sz_00, bid_ct_00,
ask_ct_00, ..., symbol``; MBO has ``channel_id, order_id`` instead of the
book; prices either decimal (``pretty_px=True``) or fixed-point 1e-9 integers,
timestamps ISO 8601 or integer ns). Both give the same table.

Mapping:

* ``ts`` = ``ts_recv`` (UTC, the Databento index time; files are sorted by it),
  and ``ts_event`` is kept as an extra column.
* ``action`` -> ``event``: A submit, C cancel, M modify, T trade, F fill,
  R clear, N (a book update with no action) modify.
* ``side`` (B bid / A ask / N none) -> ``direction`` (+1 / -1 / 0) for order
  events. For ``T`` records ``side`` is the aggressor's side: ``aggressor`` =
  +1 (B) / -1 (A), ``direction`` = the resting side (-aggressor). ``F`` (fill)
  records are the resting order's side of a trade already reported as ``T``
  (MBO): ``direction`` = side, ``aggressor`` = 0 so volume is not counted twice.
* Book levels ``_00.._09`` -> ``_1.._10``; an undefined price (i64 max) -> NaN.
  Order counts kept as ``bid_ct_k`` / ``ask_ct_k``.
* MBO files: the book after each record is rebuilt by replaying the orders
  (``mbo_levels`` levels, default 10; the book rules are not applied to it,
  since a book may cross inside one exchange packet); ``mbo_levels=0`` gives
  order events only (``attrs["levels"] = 0``).
* ``attrs["tick_size"]``: 0.01 for US equity datasets (XNAS, XNYS, ARCX, ...),
  else the largest of 1, 0.5, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0001 that
  divides every price; pass ``tick_size=`` to override.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from lobworld.world_models.data.errors import DataValidationError, require_file
from lobworld.world_models.data.schema import EVENT_CATEGORIES, EVENT_DTYPE, book_columns
from lobworld.world_models.data.validate import apply_rules, book_rule_masks, time_rule_mask, warn_dropped

UNDEF_PRICE = 9223372036854775807
PRICE_SCALE = 1e9
ACTION_EVENTS = {"A": "submit", "C": "cancel", "M": "modify", "T": "trade", "F": "fill",
                 "R": "clear", "N": "modify"}
EQUITY_DATASET_PREFIXES = ("XNAS", "XNYS", "ARCX", "XBOS", "XPSX", "BATS", "BATY", "EDGA", "EDGX",
                           "IEXG", "EPRL", "XCHI", "XCIS", "MEMX", "DBEQ", "EQUS", "XASE", "AMXO")
_TICKS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0001)
_SCHEMA_LEVELS = {"mbp-1": 1, "mbp-10": 10, "mbo": 0}


def _infer_tick(prices: np.ndarray, dataset: str) -> float:
    if dataset.split(".")[0] in EQUITY_DATASET_PREFIXES:
        return 0.01
    p = prices[np.isfinite(prices)]
    for t in _TICKS:
        if np.all(np.abs(p / t - np.rint(p / t)) < 1e-6):
            return t
    return 1e-9


_HEADER = [("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
           ("ts_event", "<u8")]
_LEVEL = np.dtype([("bid_px", "<i8"), ("ask_px", "<i8"), ("bid_sz", "<u4"), ("ask_sz", "<u4"),
                   ("bid_ct", "<u4"), ("ask_ct", "<u4")])


def _record_dtype(schema: str) -> np.dtype:
    """Little-endian layout of a DBN record (16-byte header + body), for ``np.frombuffer``."""
    if schema == "mbo":
        return np.dtype(_HEADER + [("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"),
                                   ("channel_id", "u1"), ("action", "S1"), ("side", "S1"), ("ts_recv", "<u8"),
                                   ("ts_in_delta", "<i4"), ("sequence", "<u4")])
    L = _SCHEMA_LEVELS[schema]
    return np.dtype(_HEADER + [("price", "<i8"), ("size", "<u4"), ("action", "S1"), ("side", "S1"),
                               ("flags", "u1"), ("depth", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"),
                               ("sequence", "<u4"), ("levels", _LEVEL, (L,))])


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"


def _read_dbn(path: pathlib.Path, strict: bool = True) -> tuple[dict, dict]:
    """Decode a DBN file into column arrays; ``info["dropped"]`` counts a cut last record
    (``truncated_file``, ``strict=False`` only)."""
    import databento_dbn as dbn

    raw = path.read_bytes()
    zst = path.name.endswith(".zst")
    comp = dbn.Compression.ZSTD if zst else dbn.Compression.NONE
    dec = dbn.DBNDecoder(compression=comp)
    try:
        dec.write(raw)
        recs = dec.decode()
    except Exception as exc:  # databento_dbn.DBNError and friends
        raise DataValidationError(path, "corrupt_dbn", f"cannot decode DBN ({exc})") from None
    rest = bytes(dec.buffer())  # bytes after the last complete record (or metadata)
    if not recs or not isinstance(recs[0], dbn.Metadata):
        if zst and raw.startswith(ZSTD_MAGIC):
            why = "the zstd stream is cut short or damaged"
        elif raw.startswith(DBN_MAGIC):
            why = f"the file ends inside the DBN metadata header ({len(raw)} bytes): it is truncated"
        else:
            why = f"not DBN data (first bytes {raw[:4]!r})"
        raise DataValidationError(path, "corrupt_dbn", f"no complete DBN metadata header: {why}")
    meta, recs = recs[0], recs[1:]
    dropped: dict[str, int] = {}
    if rest:
        want = rest[0] * 4  # a record's first byte is its length in 4-byte words
        detail = (f"the file ends inside record {len(recs) + 1} ({len(rest)} of {want} bytes): it is "
                  "truncated")
        if strict:
            raise DataValidationError(path, "truncated_file",
                                      detail + " (load with strict=False to drop the partial record)",
                                      row=len(recs) + 1)
        dropped["truncated_file"] = 1
    schema = str(meta.schema) if meta.schema is not None else ""
    schema = {"Mbp1": "mbp-1", "Mbp10": "mbp-10", "Mbo": "mbo"}.get(schema, schema).lower()
    if schema not in _SCHEMA_LEVELS:
        raise DataValidationError(path, "unsupported_schema",
                                  f"schema {schema!r} is not supported (use mbp-1, mbp-10 or mbo)")
    L = _SCHEMA_LEVELS[schema]
    cls = {"mbp-1": dbn.MBP1Msg, "mbp-10": dbn.MBP10Msg, "mbo": dbn.MBOMsg}[schema]
    recs = [r for r in recs if isinstance(r, cls)]  # skip system / error / mapping records
    dtype = _record_dtype(schema)
    if dtype.itemsize != cls.size_hint:  # a DBN layout this code does not know
        raise DataValidationError(path, "unsupported_schema",
                                  f"{schema} records are {cls.size_hint} bytes, expected {dtype.itemsize}")
    rec = np.frombuffer(b"".join(map(bytes, recs)), dtype=dtype)
    a = {
        "ts_recv": rec["ts_recv"].astype(np.int64), "ts_event": rec["ts_event"].astype(np.int64),
        "instrument_id": rec["instrument_id"].astype(np.int64),
        "action": rec["action"].astype("U1").astype(object), "side": rec["side"].astype("U1").astype(object),
        "price": _px(rec["price"]), "size": rec["size"].astype(np.float64),
        "order_id": rec["order_id"].astype(np.int64) if schema == "mbo" else np.zeros(len(rec), np.int64),
        "flags": rec["flags"].astype(np.int64), "sequence": rec["sequence"].astype(np.int64),
    }
    if L:
        lv = rec["levels"]
        for fld in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
            a[fld] = _px(lv[fld]) if fld.endswith("_px") else lv[fld].astype(np.float64)
    symbols = list(meta.symbols) if meta.symbols else []
    by_id = {}
    for raw_sym, intervals in (meta.mappings or {}).items():
        for iv in intervals:
            try:
                by_id[int(iv["symbol"])] = raw_sym
            except (ValueError, KeyError, TypeError):
                pass
    info = {"dataset": str(meta.dataset), "schema": schema, "levels": L, "symbols": symbols, "by_id": by_id,
            "dropped": dropped, "lines": np.arange(1, len(rec) + 1)}
    return a, info


def _px(v: np.ndarray) -> np.ndarray:
    out = v.astype(np.float64) / PRICE_SCALE
    out[v == UNDEF_PRICE] = np.nan
    return out


#: rtype of each schema's records (DBN ``RType``): MBP-0 is 0, MBP-1 1, MBP-10 10, MBO 160.
SCHEMA_RTYPE = {"mbp-1": 1, "mbp-10": 10, "mbo": 160}
_INT_COLUMNS = ("rtype", "publisher_id", "instrument_id", "depth", "flags", "ts_in_delta", "sequence",
                "channel_id", "order_id")


def _line_field_counts(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(field count, 1-based line number) of every non-blank line of a CSV (no quoting)."""
    a = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(a == 10)
    if len(a) and a[-1] != 10:
        ends = np.append(ends, len(a))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    cc = np.concatenate([[0], np.cumsum(a == 44)])
    counts = cc[ends] - cc[starts] + 1
    length = ends - starts
    blank = (length == 0) | ((length == 1) & (a[np.minimum(starts, len(a) - 1)] == 13))  # "" or "\r"
    keep = ~blank
    return counts[keep], (np.arange(len(ends)) + 1)[keep]


def _csv_lines(path: pathlib.Path, raw: bytes, strict: bool) -> tuple[bytes, np.ndarray, dict]:
    """Check every line's field count against the header.

    Returns the CSV bytes to parse (without the bad lines when ``strict=False``), the
    1-based file line of each data row, and the drop counts. A last line without a
    line end that is short of fields (or ends in an empty field) is a file cut
    mid-line (``truncated_file``); any other line with the wrong field count is
    ``malformed_row``.
    """
    if b'"' in raw:  # quoted fields: count with the csv module
        import csv
        import io

        rows = list(csv.reader(io.StringIO(raw.decode(errors="replace"))))
        nums = np.arange(1, len(rows) + 1)
        counts = np.array([len(r) for r in rows])
        keep = np.array([bool(r) and any(x.strip() for x in r) for r in rows], dtype=bool)
        counts, nums = counts[keep], nums[keep]
    else:
        counts, nums = _line_field_counts(raw)
    if not len(counts):
        raise DataValidationError(path, "empty_file", "Databento CSV file has no header line")
    want = counts[0]
    bad = np.flatnonzero(counts[1:] != want) + 1
    unterminated = not raw.endswith(b"\n")
    if unterminated and len(counts) > 1 and raw.rstrip(b"\r").endswith(b",") and (len(counts) - 1) not in bad:
        bad = np.append(bad, len(counts) - 1)  # cut just after a comma: the last field is missing
    dropped: dict[str, int] = {}
    if len(bad):
        i = int(bad[0])
        cut = unterminated and i == len(counts) - 1
        rule = "truncated_file" if cut else "malformed_row"
        detail = (f"line has {counts[i]} fields, the header {want}"
                  + ("; it is the last line and has no line end: the file is cut mid-line" if cut else ""))
        if strict:
            raise DataValidationError(path, rule, detail + f" ({len(bad)} such lines; load with strict=False "
                                      "to drop them)", row=int(nums[i]))
        last_cut = unterminated and bad[-1] == len(counts) - 1
        n_trunc = int(last_cut)
        if len(bad) - n_trunc:
            dropped["malformed_row"] = len(bad) - n_trunc
        if n_trunc:
            dropped["truncated_file"] = n_trunc
        drop_lines = set(nums[bad].tolist())
        raw = b"\n".join(ln for k, ln in enumerate(raw.split(b"\n"), start=1) if k not in drop_lines)
        keep = np.ones(len(counts), dtype=bool)
        keep[bad] = False
        counts, nums = counts[keep], nums[keep]
    return raw, nums[1:], dropped


def _read_csv(path: pathlib.Path, strict: bool = True) -> tuple[dict, dict]:
    import io

    raw, lines, dropped = _csv_lines(path, path.read_bytes(), strict)
    try:
        df = pd.read_csv(io.BytesIO(raw), dtype={"action": str, "side": str, "symbol": str},
                         keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError) as exc:
        raise DataValidationError(path, "malformed_row", f"cannot parse Databento CSV ({exc})") from None
    if len(df) != len(lines):
        raise DataValidationError(path, "malformed_row", f"Databento CSV: {len(df)} rows parsed from "
                                  f"{len(lines)} data lines (blank or quoted lines?)")
    need = {"ts_recv", "ts_event", "action", "side", "price", "size"}
    missing = need - set(df.columns)
    if missing:
        raise DataValidationError(path, "column_count", f"not a Databento CSV: missing columns {sorted(missing)}",
                                  row=1)
    L = 0
    while f"bid_px_{L:02d}" in df.columns:
        L += 1
    schema = "mbo" if "order_id" in df.columns and L == 0 else f"mbp-{L}"
    if schema not in _SCHEMA_LEVELS:
        raise DataValidationError(path, "unsupported_schema", f"{L} book levels: only mbp-1/mbp-10/mbo supported")

    def numeric(col, integer=False):
        """Column ``col`` as numbers; a non-numeric field raises naming its line and column."""
        s = df[col]
        if not (pd.api.types.is_numeric_dtype(s) or s.isna().all()):
            num = pd.to_numeric(s, errors="coerce")
            bad = (num.isna() & s.notna()).to_numpy()
            if bad.any():
                j = int(np.argmax(bad))
                raise DataValidationError(path, "non_numeric", f"column {col} is not a number: {s.iloc[j]!r}",
                                          row=int(lines[j]))
            s = num
        if integer:
            v = s.to_numpy(np.float64) if not pd.api.types.is_integer_dtype(s) else None
            if v is not None:
                bad = ~np.isnan(v) & (v != np.floor(v))
                if bad.any():
                    j = int(np.argmax(bad))
                    raise DataValidationError(path, "non_numeric", f"column {col} is not an integer: "
                                              f"{df[col].iloc[j]!r}", row=int(lines[j]))
                if np.isnan(v).any():
                    j = int(np.argmax(np.isnan(v)))
                    raise DataValidationError(path, "nan_value", f"column {col} is empty", row=int(lines[j]))
            return s.to_numpy(np.int64)
        return s

    for col in _INT_COLUMNS:
        if col in df:
            df[col] = numeric(col, integer=True)

    def ts(col):
        s = df[col]
        if pd.api.types.is_integer_dtype(s):
            return s.to_numpy(np.int64)
        parsed = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
        bad = (parsed.isna() & s.notna()).to_numpy() | s.isna().to_numpy()
        if bad.any():
            j = int(np.argmax(bad))
            raise DataValidationError(path, "bad_timestamp", f"column {col}: {s.iloc[j]!r} is not an ISO 8601 "
                                      "time or integer nanoseconds", row=int(lines[j]))
        return parsed.dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)

    price = numeric("price")
    fixed = pd.api.types.is_integer_dtype(price) and price.abs().max() >= PRICE_SCALE

    def px(col):
        s = numeric(col)
        if fixed:
            v = s.fillna(UNDEF_PRICE).to_numpy(np.int64)
            return _px(v)
        return s.to_numpy(np.float64)

    n = len(df)
    a = {
        "ts_recv": ts("ts_recv"), "ts_event": ts("ts_event"),
        "instrument_id": df["instrument_id"].to_numpy(np.int64) if "instrument_id" in df else np.zeros(n, np.int64),
        "action": df["action"].fillna("").to_numpy(object), "side": df["side"].fillna("").to_numpy(object),
        "price": px("price"), "size": numeric("size").to_numpy(np.float64),
        "order_id": df["order_id"].to_numpy(np.int64) if "order_id" in df else np.zeros(n, np.int64),
        "flags": df["flags"].to_numpy(np.int64) if "flags" in df else np.zeros(n, np.int64),
        "sequence": df["sequence"].to_numpy(np.int64) if "sequence" in df else np.zeros(n, np.int64),
        "rtype": df["rtype"].to_numpy(np.int64) if "rtype" in df else np.full(n, SCHEMA_RTYPE[schema], np.int64),
    }
    for fld in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
        if L:
            cols = [f"{fld}_{k:02d}" for k in range(L)]
            a[fld] = np.column_stack([px(c) if fld.endswith("_px") else numeric(c).to_numpy(np.float64)
                                      for c in cols])
    symbols = sorted(set(df["symbol"].dropna())) if "symbol" in df else []
    by_id = {}
    if "symbol" in df:
        for iid, sym in zip(a["instrument_id"], df["symbol"].fillna("")):
            by_id.setdefault(int(iid), sym)
    stem = path.name.split("_")[0].upper().replace("-", ".")
    info = {"dataset": stem, "schema": schema, "levels": L, "symbols": symbols, "by_id": by_id,
            "dropped": dropped, "lines": lines}
    return a, info


def load_databento(path, *, strict: bool = True, instrument_id: int | None = None,
                   tick_size: float | None = None, mbo_levels: int = 10) -> pd.DataFrame:
    """Load a Databento MBP-1 / MBP-10 / MBO file (``.dbn``, ``.dbn.zst`` or ``.csv``).

    ``instrument_id`` selects one instrument when the file holds several (else
    an error). ``strict`` as in :func:`load_lobster`. ``ts`` is UTC. MBO books
    are rebuilt order by order (:mod:`lobworld.world_models.data.mbo_book`) to
    ``mbo_levels`` levels (0: order events only, no book columns).
    """
    path = require_file(path, "Databento")
    name = path.name.lower()
    if name.endswith((".dbn", ".dbn.zst")):
        a, info = _read_dbn(path, strict)
    elif name.endswith(".csv"):
        a, info = _read_csv(path, strict)
    else:
        raise DataValidationError(path, "malformed_file_name", "expected a .dbn, .dbn.zst or .csv file")
    ids = np.unique(a["instrument_id"])
    if instrument_id is None and len(ids) > 1:
        raise DataValidationError(path, "several_instruments",
                                  f"holds {len(ids)} instruments {ids.tolist()}; pass instrument_id=")
    if instrument_id is not None:
        sel = a["instrument_id"] == instrument_id
        if not sel.any():
            raise DataValidationError(path, "unknown_instrument",
                                      f"no records for instrument_id={instrument_id} (has {ids.tolist()})")
        a = {k: v[sel] for k, v in a.items()}
        info["lines"] = info["lines"][sel]
    L = info["levels"]
    n = len(a["ts_recv"])
    if info["schema"] == "mbo" and mbo_levels < 0:
        raise DataValidationError(path, "bad_argument", f"mbo_levels must be >= 0, got {mbo_levels}")
    act = a["action"].astype(str)
    side = a["side"].astype(str)

    masks = {
        "unknown_event_code": ~np.isin(act, list(ACTION_EVENTS)),
        "nan_value": np.isnan(a["size"]) | ((act != "R") & np.isnan(a["price"]) & np.isin(act, ["A", "T", "F"])),
        "negative_size": a["size"] < 0,
        "bad_direction": ~np.isin(side, ["A", "B", "N"]),
        "non_monotonic_time": time_rule_mask(a["ts_recv"]),
    }
    if "rtype" in a:  # CSV: the rtype column must be the schema's (DBN records are filtered by type)
        masks["unknown_record_type"] = a["rtype"] != SCHEMA_RTYPE[info["schema"]]
    if L:
        for rule, m in book_rule_masks(a["bid_px"], a["bid_sz"], a["ask_px"], a["ask_sz"]).items():
            masks[rule] = masks.get(rule, np.zeros(n, bool)) | m

    def describe(rule, i):
        if rule == "unknown_event_code":
            return f"action {act[i]!r} is not a Databento action (A C M T F R N)"
        if rule == "crossed_book":
            return f"crossed book: bid {a['bid_px'][i, 0]} > ask {a['ask_px'][i, 0]}"
        if rule == "locked_book":
            return f"locked book: bid == ask == {a['bid_px'][i, 0]}"
        if rule == "non_monotonic_time":
            return "ts_recv earlier than the previous record"
        if rule == "unknown_record_type":
            return (f"rtype {a['rtype'][i]} is not the {info['schema']} record type "
                    f"{SCHEMA_RTYPE[info['schema']]}")
        if rule == "nan_value":
            return "size or price is empty or NaN"
        if rule == "bad_direction":
            return f"side {side[i]!r} is not A, B or N"
        return f"record {i} breaks the rule"

    # CSV: the file line of the row (header on line 1); DBN: record index + 1
    lines = info["lines"]
    keep, dropped = apply_rules(masks, n, strict=strict, path=path, line_of=lambda i: int(lines[i]),
                                describe=describe)
    dropped = {**info["dropped"], **dropped}
    if not keep.all():
        a = {k: v[keep] for k, v in a.items()}
        act, side = act[keep], side[keep]
    if info["schema"] == "mbo" and mbo_levels > 0:
        from lobworld.world_models.data.mbo_book import replay_mbo

        nanos = np.rint(np.nan_to_num(a["price"]) * PRICE_SCALE).astype(np.int64)
        a.update(replay_mbo(act, side, nanos, a["size"].astype(np.int64), a["order_id"], mbo_levels))
        L = mbo_levels

    ev_names = np.array([ACTION_EVENTS.get(x, "modify") for x in act], dtype=object)
    codes = np.array([EVENT_CATEGORIES.index(e) for e in ev_names], dtype=np.int8)
    side_sign = np.select([side == "B", side == "A"], [1, -1], 0).astype(np.int8)
    is_trade = act == "T"
    aggressor = np.where(is_trade, side_sign, 0).astype(np.int8)
    direction = np.where(is_trade, -side_sign, side_sign).astype(np.int8)
    if tick_size is None:
        allpx = a["price"] if not L else np.concatenate([a["price"], a["bid_px"].ravel(), a["ask_px"].ravel()])
        tick_size = _infer_tick(allpx, info["dataset"])
    price = a["price"]
    price_ticks = np.where(np.isfinite(price), np.rint(np.nan_to_num(price) / tick_size), 0).astype(np.int64)
    ts = pd.DatetimeIndex(a["ts_recv"].astype("datetime64[ns]")).tz_localize("UTC")
    cols = {
        "ts": ts, "event": pd.Categorical.from_codes(codes, dtype=EVENT_DTYPE),
        "order_id": a["order_id"].astype(np.int64), "size": a["size"].astype(np.float64),
        "price": price, "price_ticks": price_ticks, "direction": direction, "aggressor": aggressor,
        "trading_state": np.ones(len(price), np.int8),
    }
    df = pd.DataFrame(cols)
    if L:
        book = np.concatenate([a["bid_px"], a["bid_sz"], a["ask_px"], a["ask_sz"], a["bid_ct"], a["ask_ct"]],
                              axis=1)
        df = pd.concat([df, pd.DataFrame(book, columns=book_columns(L, counts=True))], axis=1)
    df["ts_event"] = pd.DatetimeIndex(a["ts_event"].astype("datetime64[ns]")).tz_localize("UTC")
    df["instrument_id"] = a["instrument_id"]
    df["flags"] = a["flags"].astype(np.uint8 if a["flags"].max(initial=0) < 256 else np.int64)
    df["sequence"] = a["sequence"]
    iid = int(a["instrument_id"][0]) if n else -1
    ticker = info["by_id"].get(iid) or (info["symbols"][0] if len(info["symbols"]) == 1 else str(iid))
    df.attrs.update({
        "ticker": ticker, "date": ts[0].date().isoformat() if len(ts) else "", "levels": L,
        "tick_size": float(tick_size), "source": "databento", "path": str(path),
        "dataset": info["dataset"], "schema": info["schema"], "dropped": dict(dropped),
    })
    warn_dropped(path, dropped)
    return df

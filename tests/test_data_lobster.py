"""LOBSTER loader: values checked against the raw CSV of the shipped slice."""

import csv
import gzip
import io

import numpy as np
import pandas as pd
import pytest

from _data_helpers import slice_lines, write_pair
from lobworld.world_models.data import (
    EVENT_CATEGORIES, DataValidationError, load_lobster, parse_lobster_name, sample_lobster_paths,
)


@pytest.fixture(scope="module")
def goog():
    return load_lobster(*sample_lobster_paths())


@pytest.fixture(scope="module")
def raw():
    msg, ob = sample_lobster_paths()
    m = list(csv.reader(io.StringIO(gzip.decompress(msg.read_bytes()).decode())))
    o = list(csv.reader(io.StringIO(gzip.decompress(ob.read_bytes()).decode())))
    return m, o


def test_shipped_slice_shape_and_attrs(goog):
    assert goog.shape[0] == 29753
    assert goog.attrs["ticker"] == "GOOG" and goog.attrs["date"] == "2012-06-21"
    assert goog.attrs["levels"] == 10 and goog.attrs["tick_size"] == 0.01 and goog.attrs["source"] == "lobster"
    assert goog.attrs["dropped"] == {}
    assert str(goog["ts"].dtype) == "datetime64[ns, America/New_York]"
    assert list(goog["event"].cat.categories) == list(EVENT_CATEGORIES)
    assert goog["order_id"].dtype == np.int64 and goog["direction"].dtype == np.int8
    for k in range(1, 11):
        for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            assert f"{c}_{k}" in goog.columns


def test_first_row_exact(goog):
    # raw line 1: 36000.04700716,3,46516287,15,5761000,-1
    r = goog.iloc[0]
    assert r["ts"] == pd.Timestamp("2012-06-21 10:00:00.047007160", tz="America/New_York")
    assert r["event"] == "delete" and r["order_id"] == 46516287 and r["size"] == 15.0
    assert r["price"] == 576.10 and r["price_ticks"] == 57610 and r["direction"] == -1 and r["aggressor"] == 0
    assert r["bid_px_1"] == 575.63


@pytest.mark.parametrize("row", [0, 99, 1234, 29752])
def test_book_rows_match_raw_csv(goog, raw, row):
    m, o = raw
    ob = [float(x) for x in o[row]]
    for k in range(10):
        assert goog[f"ask_px_{k + 1}"].iat[row] == pytest.approx(ob[4 * k] / 1e4, abs=1e-9)
        assert goog[f"ask_sz_{k + 1}"].iat[row] == ob[4 * k + 1]
        assert goog[f"bid_px_{k + 1}"].iat[row] == pytest.approx(ob[4 * k + 2] / 1e4, abs=1e-9)
        assert goog[f"bid_sz_{k + 1}"].iat[row] == ob[4 * k + 3]
    t = float(m[row][0])
    ns = (goog["ts"].iat[row] - pd.Timestamp("2012-06-21", tz="America/New_York")).value
    assert abs(ns - t * 1e9) < 1.0
    assert goog["size"].iat[row] == float(m[row][3])


def test_event_counts_match_raw(goog, raw):
    m, _ = raw
    types = np.array([int(r[1]) for r in m])
    counts = goog["event"].value_counts()
    for code, name in [(1, "submit"), (2, "cancel"), (3, "delete"), (4, "exec_visible"), (5, "exec_hidden")]:
        assert counts[name] == int((types == code).sum())
    assert counts["submit"] == 14592 and counts["exec_visible"] == 907 and counts["exec_hidden"] == 502


def test_visible_executions_at_previous_best_on_correct_side(goog):
    ex = np.flatnonzero((goog["event"] == "exec_visible").to_numpy())
    ex = ex[ex > 0]
    d = goog["direction"].to_numpy()[ex]
    px = goog["price"].to_numpy()[ex]
    prev_bid = goog["bid_px_1"].to_numpy()[ex - 1]
    prev_ask = goog["ask_px_1"].to_numpy()[ex - 1]
    np.testing.assert_allclose(px[d == 1], prev_bid[d == 1], atol=1e-9)  # buy LO hit at the best bid
    np.testing.assert_allclose(px[d == -1], prev_ask[d == -1], atol=1e-9)
    agg = goog["aggressor"].to_numpy()[ex]
    assert np.all(agg == -d)  # execution of a sell LO is buyer-initiated
    assert len(ex) == 907


def test_plain_and_gz_identical(tmp_path):
    m, o = slice_lines(300)
    (tmp_path / "gz").mkdir()
    a = load_lobster(write_pair(tmp_path / "gz", m, o))
    b = load_lobster(write_pair(tmp_path, m, o, gz=False))
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 300


def test_halt_messages_kept_with_state(tmp_path):
    m, o = slice_lines(100)
    t = m[49].split(",")[0]
    halt = [f"{t},7,0,0,-1,-1", f"{t},7,0,0,0,-1", f"{t},7,0,0,1,-1"]
    m2 = m[:50] + halt + m[50:]
    o2 = o[:50] + [o[49]] * 3 + o[50:]
    df = load_lobster(write_pair(tmp_path, m2, o2))
    h = df.iloc[50:53]
    assert list(h["event"]) == ["halt"] * 3
    assert list(h["trading_state"]) == [-1, 0, 1]
    assert h["price"].isna().all() and (h["aggressor"] == 0).all() and (h["direction"] == 0).all()
    assert (df["trading_state"].iloc[:50] == 1).all()
    from lobworld.world_models.data import make_bars
    assert make_bars(df, "1h")["n_trades"].sum() == int(df["event"].isin(["exec_visible", "exec_hidden"]).sum())


def test_parse_name():
    n = parse_lobster_name("AMZN_2012-06-21_34200000_57600000_orderbook_5.csv.gz")
    assert (n.ticker, n.date.isoformat(), n.start_ms, n.end_ms, n.kind, n.levels, n.gz) == \
        ("AMZN", "2012-06-21", 34200000, 57600000, "orderbook", 5, True)
    for bad in ["AMZN_2012-06-21_message_5.csv", "AMZN_2012-13-21_34200000_57600000_message_5.csv",
                "AMZN_2012-06-21_57600000_34200000_message_5.csv", "AMZN_2012-06-21_34200000_57600000_message_51.csv"]:
        with pytest.raises(DataValidationError, match="malformed_file_name"):
            parse_lobster_name(bad)


def test_renamed_file_needs_date(tmp_path):
    m, o = slice_lines(20)
    mp, op = tmp_path / "msgs.csv", tmp_path / "book.csv"
    mp.write_text("\n".join(m) + "\n")
    op.write_text("\n".join(o) + "\n")
    with pytest.raises(DataValidationError, match="malformed_file_name"):
        load_lobster(mp, op)
    df = load_lobster(mp, op, date="2012-06-21", ticker="GOOG")
    assert df.attrs["levels"] == 10 and len(df) == 20


@pytest.mark.parametrize("ticker,levels,rows", [("GOOG", 10, 147916), ("GOOG", 5, 112673), ("GOOG", 1, 49482),
                                                ("AMZN", 5, 155935), ("AMZN", 1, 57515)])
def test_full_days(shared_data, ticker, levels, rows):
    p = shared_data / "lobster" / f"{ticker}_2012-06-21_34200000_57600000_message_{levels}.csv.gz"
    df = load_lobster(p)
    assert len(df) == rows and df.attrs["levels"] == levels
    assert df.attrs["dropped"] == {}
    n_vis = int((df["event"] == "exec_visible").sum())
    assert n_vis == {"GOOG": 7765, "AMZN": 8974}[ticker]
    mid = 0.5 * (df["bid_px_1"] + df["ask_px_1"])
    lo, hi = {"GOOG": (563.73, 579.82), "AMZN": (220.52, 226.03)}[ticker]
    assert mid.min() >= lo - 0.01 and mid.max() <= hi + 0.01


def _pad_levels(ob_lines, levels_in, levels_out):
    """Keep the first ``levels_out`` levels, or pad with LOBSTER's empty-level dummies."""
    out = []
    for ln in ob_lines:
        f = ln.split(",")[: 4 * min(levels_in, levels_out)]
        f += ["9999999999", "0", "-9999999999", "0"] * max(0, levels_out - levels_in)
        out.append(",".join(f))
    return out


@pytest.mark.parametrize("levels", [1, 3, 50])
def test_any_level_count(tmp_path, levels):
    m, o = slice_lines(300)
    stem = "GOOG_2012-06-21_36000000_39600000_{}_" + str(levels) + ".csv"
    df = load_lobster(write_pair(tmp_path, m, _pad_levels(o, 10, levels), stem=stem))
    ref = load_lobster(write_pair(tmp_path, m, o))
    assert df.attrs["levels"] == levels and len(df) == 300
    for k in range(1, min(levels, 10) + 1):
        for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            np.testing.assert_array_equal(df[f"{c}_{k}"].to_numpy(), ref[f"{c}_{k}"].to_numpy())
    if levels == 50:  # LOBSTER dummies -> price NaN, size 0
        assert df["ask_px_11"].isna().all() and df["bid_px_50"].isna().all()
        assert (df["ask_sz_11"] == 0).all() and (df["bid_sz_50"] == 0).all()


def test_empty_best_level_is_nan(tmp_path):
    m, o = slice_lines(50)
    o1 = _pad_levels(o, 10, 1)
    o1[20] = "9999999999,0," + o1[20].split(",", 2)[2]  # empty ask side
    stem = "GOOG_2012-06-21_36000000_39600000_{}_1.csv"
    df = load_lobster(write_pair(tmp_path, m, o1, stem=stem))
    assert np.isnan(df["ask_px_1"].iat[20]) and df["ask_sz_1"].iat[20] == 0
    assert df["bid_px_1"].iat[20] == float(o1[20].split(",")[2]) / 1e4


def test_full_day_executions_at_previous_best(shared_data):
    """All 7,764 visible executions after row 0 of the GOOG L10 day trade at the previous
    row's best price on the resting order's side (the data README's alignment check)."""
    df = load_lobster(shared_data / "lobster" / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz")
    ex = np.flatnonzero((df["event"] == "exec_visible").to_numpy())
    ex = ex[ex > 0]
    assert len(ex) == 7764
    d = df["direction"].to_numpy()[ex]
    best = np.where(d == 1, df["bid_px_1"].to_numpy()[ex - 1], df["ask_px_1"].to_numpy()[ex - 1])
    np.testing.assert_allclose(df["price"].to_numpy()[ex], best, atol=1e-9)


# ---- message file only (the loader behind envs.execution.fit_volume_profile) -------------------
def _raw_messages(path):
    return pd.read_csv(path, header=None, names=["time", "type", "order_id", "size", "price", "direction"])


@pytest.mark.parametrize("day", [False, True])
def test_messages_loader_equals_raw_csv(shared_data, day):
    from lobworld.world_models.data import load_lobster_messages
    p = (shared_data / "lobster" / "GOOG_2012-06-21_34200000_57600000_message_1.csv.gz" if day
         else sample_lobster_paths()[0])
    df, raw = load_lobster_messages(p), _raw_messages(p)
    assert len(df) == len(raw) == (49482 if day else 29753) and df.attrs["dropped"] == {}
    for c in ("time", "type", "order_id", "size", "direction"):
        np.testing.assert_array_equal(df[c].to_numpy(), raw[c].to_numpy(), err_msg=c)
    np.testing.assert_array_equal(df["price"].to_numpy(), raw["price"].to_numpy() / 1e4)
    assert df["type"].dtype == np.int8 and df["order_id"].dtype == np.int64
    assert df.attrs["ticker"] == "GOOG" and df.attrs["date"] == "2012-06-21"
    full = load_lobster(p)
    np.testing.assert_array_equal(df["price"].to_numpy(), full["price"].to_numpy())


def _old_fit_volume_profile(message_path, bin_minutes=1.0):
    """envs.execution.fit_volume_profile(message_path=...) as it read the file before the data layer."""
    from lobworld.envs.execution import SESSION_MINUTES
    m = pd.read_csv(message_path, header=None, usecols=[0, 1, 3])
    m.columns = ["time", "type", "size"]
    ex = m[m["type"].isin([4, 5])]
    secs = ex["time"].to_numpy(dtype=np.float64)
    sizes = ex["size"].to_numpy(dtype=np.float64)
    nbins = int(round(SESSION_MINUTES / bin_minutes))
    b = np.clip(((secs - 34200.0) // (60.0 * bin_minutes)).astype(np.int64), 0, nbins - 1)
    vol = np.bincount(b, weights=sizes, minlength=nbins)
    x = (np.arange(nbins) + 0.5) / nbins
    a, bb, c = np.polyfit(x, vol / vol.mean(), 2)
    return float(a), float(bb), float(c)


@pytest.mark.parametrize("name,bin_minutes", [("GOOG_2012-06-21_34200000_57600000_message_1.csv.gz", 1.0),
                                              ("AMZN_2012-06-21_34200000_57600000_message_5.csv.gz", 5.0)])
def test_fit_volume_profile_identical_through_the_data_layer(shared_data, name, bin_minutes):
    from lobworld.envs.execution import fit_volume_profile
    p = shared_data / "lobster" / name
    assert fit_volume_profile(message_path=p, bin_minutes=bin_minutes) == _old_fit_volume_profile(p, bin_minutes)


def test_fit_volume_profile_rejects_garbage(tmp_path):
    """Through the data layer the profile fit refuses a message at 1e19 USD (raw 1e23), naming the line."""
    from lobworld.envs.execution import fit_volume_profile
    m, o = slice_lines(200)
    m[9] = m[9].rsplit(",", 2)[0] + ",1e23,1"
    p = write_pair(tmp_path, m, o)
    with pytest.raises(DataValidationError) as ei:
        fit_volume_profile(message_path=p)
    assert ei.value.rule == "price_out_of_range" and ei.value.row == 10
    assert "cannot read LOBSTER message file" in str(ei.value)
    with pytest.raises(FileNotFoundError, match="cannot read"):
        fit_volume_profile(message_path=tmp_path / "missing.csv")


def test_messages_loader_rules(tmp_path):
    from lobworld.world_models.data import load_lobster_messages
    m, o = slice_lines(200)
    m[40] = m[40].rsplit(",", 2)[0] + ",10000,1"  # 1 USD: a factor 575 below the median price
    m[50] = m[50].split(",", 1)[0] + ",9," + m[50].split(",", 2)[2]
    p = write_pair(tmp_path, m, o)
    with pytest.raises(DataValidationError, match=r"line 41: \[price_out_of_range\] price 1 USD"):
        load_lobster_messages(p)
    df = load_lobster_messages(p, strict=False)
    assert df.attrs["dropped"] == {"price_out_of_range": 1, "unknown_event_code": 1} and len(df) == 198
    with pytest.raises(DataValidationError, match="got an orderbook file"):
        load_lobster_messages(p.with_name(p.name.replace("message", "orderbook")))
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_lobster_messages(d)

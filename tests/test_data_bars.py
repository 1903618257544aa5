"""Bars: conservation, hand counts from the raw file, OFI on hand-made books."""

import gzip

import numpy as np
import pandas as pd
import pytest

from lobworld.world_models.data import (
    EVENT_CATEGORIES, load_lobster, make_bars, ofi_events, sample_lobster_paths,
)
from lobworld.world_models.data.schema import EVENT_DTYPE


@pytest.fixture(scope="module")
def goog():
    return load_lobster(*sample_lobster_paths())


@pytest.fixture(scope="module")
def raw_msgs():
    txt = gzip.decompress(sample_lobster_paths()[0].read_bytes()).decode()
    return np.array([[float(x) for x in ln.split(",")] for ln in txt.splitlines()])


def test_contract_columns(goog):
    b = make_bars(goog, "1min")
    for c in ["mid_open", "mid", "mid_ret", "high", "low", "spread", "volume", "buy_volume", "sell_volume",
              "n_trades", "vwap", "ofi_trade", "ofi", "ofi_1", "ofi_10", "bid_sz_1", "ask_sz_1",
              "depth_imbalance", "n_events"]:
        assert c in b.columns
    assert len(b) == 60
    assert b.index[0] == pd.Timestamp("2012-06-21 10:01", tz="America/New_York")
    assert b.index[-1] == pd.Timestamp("2012-06-21 11:00", tz="America/New_York")


@pytest.mark.parametrize("freq", ["1s", "10s", "1min", "7min"])
def test_volume_conservation(goog, raw_msgs, freq):
    b = make_bars(goog, freq)
    execs = np.isin(raw_msgs[:, 1], (4, 5))
    assert b["volume"].sum() == raw_msgs[execs, 3].sum() == 88356
    assert b["buy_volume"].sum() + b["sell_volume"].sum() == 88356
    assert b["n_events"].sum() == len(goog)
    assert b["n_trades"].sum() == int(execs.sum())
    np.testing.assert_allclose(b["ofi"].sum(), b[[f"ofi_{k}" for k in range(1, 11)]].to_numpy().sum())


def test_trade_count_in_minute_matches_hand_count(goog, raw_msgs):
    b = make_bars(goog, "1min")
    t, typ = raw_msgs[:, 0], raw_msgs[:, 1]
    for minute in (1, 17, 42):
        lo, hi = 36000 + 60 * minute, 36000 + 60 * (minute + 1)
        sel = (t >= lo) & (t < hi) & np.isin(typ, (4, 5))
        row = b.loc[pd.Timestamp("2012-06-21 10:00", tz="America/New_York") + pd.Timedelta(minutes=minute + 1)]
        assert row["n_trades"] == sel.sum()
        assert row["volume"] == raw_msgs[sel, 3].sum()
        buy = sel & (raw_msgs[:, 5] == -1)  # execution of a sell LO = buyer-initiated
        assert row["buy_volume"] == raw_msgs[buy, 3].sum()
        if sel.any():
            assert row["vwap"] == pytest.approx((raw_msgs[sel, 3] * raw_msgs[sel, 4]).sum() / 1e4 / raw_msgs[sel, 3].sum())
    # 10:01-10:02: 15 executions, 841 shares (awk count on the raw file)
    r = b.loc[pd.Timestamp("2012-06-21 10:02", tz="America/New_York")]
    assert (r["n_trades"], r["volume"]) == (15, 841)


def test_mid_and_returns(goog):
    b = make_bars(goog, "5min")
    mid = 0.5 * (goog["bid_px_1"] + goog["ask_px_1"])
    ends = goog["ts"].searchsorted(b.index, side="left") - 1
    np.testing.assert_allclose(b["mid"].to_numpy(), mid.to_numpy()[ends])
    np.testing.assert_allclose(b["mid_ret"].iloc[1:].to_numpy(), np.diff(b["mid"].to_numpy()))
    assert b["mid_ret"].iloc[0] == pytest.approx(b["mid"].iloc[0] - b["mid_open"].iloc[0])
    assert (b["high"] >= b["mid"]).all() and (b["low"] <= b["mid"]).all()
    assert np.isclose(b["mid_ret"].sum(), b["mid"].iloc[-1] - b["mid_open"].iloc[0])


def test_event_bars(goog):
    b = make_bars(goog, events_per_bar=1000)
    assert len(b) == 30 and (b["n_events"].iloc[:-1] == 1000).all() and b["n_events"].iloc[-1] == 753
    assert b.index[0] == goog["ts"].iloc[999]
    assert b["volume"].sum() == 88356


def _book(rows):
    """Hand-made 1-level event table: rows of (bid, bid_sz, ask, ask_sz)."""
    n = len(rows)
    a = np.array(rows, dtype=float)
    return pd.DataFrame({
        "ts": pd.date_range("2020-01-02 10:00", periods=n, freq="1s", tz="America/New_York"),
        "event": pd.Categorical(["submit"] * n, dtype=EVENT_DTYPE), "order_id": np.arange(n),
        "size": np.ones(n), "price": a[:, 0], "price_ticks": np.zeros(n, np.int64),
        "direction": np.ones(n, np.int8), "aggressor": np.zeros(n, np.int8),
        "bid_px_1": a[:, 0], "bid_sz_1": a[:, 1], "ask_px_1": a[:, 2], "ask_sz_1": a[:, 3],
    })


def test_ofi_hand_case():
    rows = [(100.00, 10, 100.02, 10),
            (100.00, 15, 100.02, 10),   # +5 bid added            e = +5
            (100.00, 15, 100.02, 4),    # 6 ask removed           e = +6
            (100.01, 7, 100.02, 4),     # bid improves (new 7)    e = +7
            (100.00, 20, 100.02, 4),    # bid level gone: -7      e = -7
            (100.00, 20, 100.01, 3)]    # ask improves: -3        e = -3
    e = ofi_events(*[np.array([r[i] for r in rows]) for i in (0, 1, 2, 3)])
    np.testing.assert_array_equal(e[:, 0], [0, 5, 6, 7, -7, -3])
    b = make_bars(_book(rows), "3s")
    np.testing.assert_array_equal(b["ofi"].to_numpy(), [0 + 5 + 6, 7 - 7 - 3])  # events 0-2 | 3-5
    assert np.sign(b["ofi"].iloc[0]) == 1  # bids added, asks taken: buying pressure


def test_empty_bars_carry_book(goog):
    sub = goog.iloc[:50]
    b = make_bars(sub, "1ms")
    empty = b["n_events"] == 0
    assert empty.any()
    assert (b.loc[empty, "volume"] == 0).all() and (b.loc[empty, "mid_ret"] == 0).all()


def test_bad_inputs(goog):
    with pytest.raises(ValueError, match="freq"):
        make_bars(goog, "1M")
    with pytest.raises(ValueError, match="events_per_bar"):
        make_bars(goog, events_per_bar=0)
    with pytest.raises(ValueError, match="empty"):
        make_bars(goog.iloc[:0])
    with pytest.raises(ValueError, match="sorted"):
        make_bars(goog.iloc[::-1].reset_index(drop=True))
    assert EVENT_CATEGORIES[0] == "submit"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=2, max_size=40))
def test_ofi_telescopes_when_prices_fixed(qs):
    """With constant prices e_n = dq_bid - dq_ask, so the bar sum telescopes."""
    qb = np.array([q[0] for q in qs], float)
    qa = np.array([q[1] for q in qs], float)
    e = ofi_events(np.full(len(qs), 100.0), qb, np.full(len(qs), 100.01), qa)[:, 0]
    assert e.sum() == (qb[-1] - qb[0]) - (qa[-1] - qa[0])


def test_mbo_table_has_no_bars(shared_data):
    from lobworld.world_models.data import load_databento
    mbo = load_databento(shared_data / "databento" / "XNAS.ITCH" / "test_data.mbo.dbn.zst", mbo_levels=0)
    with pytest.raises(ValueError, match="no book columns"):
        make_bars(mbo)


def test_plain_string_events_accepted_and_unknown_rejected(goog):
    sub = goog.iloc[:500].copy()
    ref = make_bars(sub, "10s")
    sub["event"] = sub["event"].astype(str)
    pd.testing.assert_frame_equal(make_bars(sub, "10s"), ref)
    sub.loc[sub.index[3], "event"] = "explode"
    with pytest.raises(ValueError, match="unknown event name 'explode'"):
        make_bars(sub, "10s")


def test_missing_columns_named(goog):
    with pytest.raises(ValueError, match=r"lacks columns \['aggressor'\]"):
        make_bars(goog.drop(columns=["aggressor"]).iloc[:10])
    with pytest.raises(ValueError, match="DataFrame"):
        make_bars([1, 2, 3])

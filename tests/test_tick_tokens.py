"""Tick-model tokens (world_models/data/events.py): exact round trip on the shipped GOOG hour,
hand-checked context, time splits, size bins, bad input."""

from __future__ import annotations

import dataclasses
import gzip
import time

import numpy as np
import pandas as pd
import pytest

from lobworld.errors import LobworldError
from lobworld.world_models.data import load_lobster, sample_lobster_paths
from lobworld.world_models.data.events import (
    DELETE, EXEC_HIDDEN, NO_PRICE, SUBMIT, EventTokenError, Messages, TokenConfig, detokenize,
    messages_to_events, split_masks, time_split_masks, tokenize,
)

HOUR_CFG = TokenConfig(top_k=3, test_hours=0.25, early_stop_hours=0.125)


@pytest.fixture(scope="module")
def hour():
    return load_lobster(*sample_lobster_paths())


@pytest.fixture(scope="module")
def raw_messages():
    """The shipped message file parsed here from its text: time in ns (exact, from the decimal
    string), type, order id, size, price (USD x 10000), direction."""
    msg, _ = sample_lobster_paths()
    lines = gzip.decompress(msg.read_bytes()).decode().splitlines()
    t_ns, rest = [], []
    for ln in lines:
        f = ln.split(",")
        sec, _, frac = f[0].partition(".")
        t_ns.append(int(sec) * 10**9 + int((frac + "000000000")[:9]))
        rest.append([int(x) for x in f[1:]])
    return np.array(t_ns, np.int64), np.array(rest, np.int64)


@pytest.fixture(scope="module")
def hour_tokens(hour):
    return tokenize(hour, HOUR_CFG)


def test_round_trip_reproduces_the_message_file(hour_tokens, raw_messages):
    t_ns, raw = raw_messages
    tok = hour_tokens
    assert len(tok) == len(t_ns) - 1 == 29752
    m = detokenize(tok)
    # every field of rows 1.. of the file, exactly
    np.testing.assert_array_equal(m.time_ns, t_ns[1:])
    np.testing.assert_array_equal(m.type, raw[1:, 0])
    np.testing.assert_array_equal(m.size, raw[1:, 2])
    np.testing.assert_array_equal(m.price_half_ticks() * 50, raw[1:, 3])  # USD x 10000 = half ticks x 50
    # the 5 prices off the tick grid are hidden executions at the midpoint of an odd spread
    off = np.flatnonzero(raw[1:, 3] % 100)
    assert len(off) == 5 and (raw[1:][off, 0] == 5).all() and (np.abs(tok.sub_tick[off]) == 1).all()
    assert (tok.sub_tick[np.setdiff1d(np.arange(len(tok)), off)] == 0).all()
    np.testing.assert_array_equal(m.direction, raw[1:, 4])
    lob = m.to_lobster(0.01)
    np.testing.assert_array_equal(lob[:, [1, 3, 4, 5]], raw[1:][:, [0, 2, 3, 4]].astype(float))
    np.testing.assert_allclose(lob[:, 0], t_ns[1:] / 1e9, rtol=0, atol=1e-9)


def test_tape_columns(hour_tokens, raw_messages):
    t_ns, raw = raw_messages
    cols = detokenize(hour_tokens).tape_columns()
    np.testing.assert_array_equal(cols["t"], t_ns[1:])
    np.testing.assert_array_equal(cols["side"], (raw[1:, 4] < 0).astype(np.int8))
    np.testing.assert_array_equal(cols["size"], raw[1:, 2])
    assert cols["size"].dtype == np.int64 and cols["side"].dtype == np.int8
    frac = Messages(time_ns=np.array([1], np.int64), type=np.array([1], np.int8), size=np.array([0.5]),
                    price_ticks=np.array([10], np.int64), direction=np.array([1], np.int8))
    with pytest.raises(EventTokenError, match="whole shares"):
        frac.tape_columns()
    with pytest.raises(EventTokenError, match="time_ns has 1"):
        Messages(time_ns=np.array([1], np.int64), type=np.array([1, 1], np.int8), size=np.array([1.0]),
                 price_ticks=np.array([10], np.int64), direction=np.array([1], np.int8))


def test_round_trip_to_the_canonical_table(hour, hour_tokens):
    fr = detokenize(hour_tokens).events_frame(hour_tokens.meta["date"], 0.01)
    ref = hour.iloc[1:].reset_index(drop=True)
    for col in ("ts", "event", "size", "price_ticks", "direction", "aggressor"):
        pd.testing.assert_series_equal(fr[col], ref[col], check_names=False)
    np.testing.assert_allclose(fr["price"], ref["price"], rtol=0, atol=1e-9)


def test_context_hand_checked(hour_tokens):
    """Values read off the raw files (lines 1-8 of the shipped message / orderbook CSVs)."""
    tok = hour_tokens
    # row 1 (line 2): 36000.047039856, submit buy 15 @ 575.54; book before it (orderbook line 1):
    # ask 575.91 x 1, 575.92 x 100, 576.09 x 13; bid 575.63 x 100, 575.60 x 200, 575.56 x 100
    assert tok.row[0] == 1
    assert (tok.etype[0], tok.side[0], tok.size[0]) == (SUBMIT, 1, 15.0)
    assert (tok.best_bid[0], tok.best_ask[0], tok.spread[0]) == (57563, 57591, 28)
    assert tok.level[0] == 57563 - 57554 == 9
    np.testing.assert_array_equal(tok.bid_sz[0], [100, 200, 100])
    np.testing.assert_array_equal(tok.ask_sz[0], [1, 100, 13])
    assert tok.imbalance[0] == pytest.approx((100 - 1) / (100 + 1), abs=1e-7)
    assert tok.dt_ns[0] == 36000047039856 - 36000047007160 == 32696
    assert tok.log_dt[0] == pytest.approx(np.log(32696e-9), rel=1e-6)
    assert tok.tod_s[0] == pytest.approx(36000.047039856, abs=1e-9)
    # row 2 (line 3): delete sell 15 @ 576.11, 20 ticks behind the best ask 575.91
    assert (tok.etype[1], tok.side[1], tok.level[1]) == (DELETE, -1, 57611 - 57591)
    assert tok.dt_ns[1] == 36000071748820 - 36000047039856
    # row 7 (line 8): hidden execution of a buy LO at 575.77, inside the spread 575.63 / 575.91
    assert tok.row[6] == 7
    assert (tok.etype[6], tok.side[6], tok.level[6]) == (EXEC_HIDDEN, 1, 57563 - 57577)
    assert tok.level[6] == -14


def test_size_scale_and_bins(hour, hour_tokens):
    tok = hour_tokens
    train, _, _ = split_masks(tok)
    sub = tok.size[train & (tok.etype == SUBMIT)]
    assert tok.scale.lot == pytest.approx(sub.mean())
    np.testing.assert_allclose(tok.size_lots, tok.size / tok.scale.lot, rtol=1e-6)
    e = np.asarray(tok.scale.edges)
    b = tok.size_bin.astype(int)
    assert (tok.size >= np.where(b == 0, -np.inf, e[b])).all() and (tok.size < e[b + 1]).all()
    assert len(tok.scale.centers) == len(e) - 1 == tok.scale.n_bins
    # 100 shares (the round lot) is common enough to get a bin of its own
    k = int(tok.scale.bin_of(100.0))
    assert e[k] == 100.0 and e[k + 1] == 101.0 and tok.scale.centers[k] == 100.0
    sized = detokenize(tok, sizes_from_bins=True).size
    np.testing.assert_array_equal(sized, np.asarray(tok.scale.centers)[b])
    # a given scale is used as is (held-out data tokenised with the training day's scale)
    again = tokenize(hour, HOUR_CFG, scale=tok.scale)
    assert again.scale is tok.scale
    log_cfg = dataclasses.replace(HOUR_CFG, size_binning="log", size_bins=8)
    lg = tokenize(hour, log_cfg)
    assert lg.scale.binning == "log" and lg.scale.n_bins == 8
    np.testing.assert_allclose(np.diff(np.log(lg.scale.edges[1:-1])), np.log(lg.scale.edges[2]) - np.log(lg.scale.edges[1]))


def test_split_masks_hour_hand_computed(hour_tokens):
    tok = hour_tokens
    train, es, test = split_masks(tok)
    t = tok.time_ns()
    last = 39599109131023
    assert t[-1] == last
    test_start = last - 900 * 10**9  # 0.25 h
    es_start = test_start - 450 * 10**9  # 0.125 h
    np.testing.assert_array_equal(test, t > test_start)
    np.testing.assert_array_equal(es, (t > es_start) & (t <= test_start))
    np.testing.assert_array_equal(train, t <= es_start)
    assert (train.astype(int) + es + test == 1).all()
    # blocks are contiguous in time: train, then early stop, then test
    assert np.flatnonzero(train).max() < np.flatnonzero(es).min() < np.flatnonzero(es).max() < np.flatnonzero(test).min()
    tr2, es2, te2 = split_masks(tok, 0.5, 0.25)
    assert te2.sum() > test.sum() and tr2.sum() < train.sum()
    z = time_split_masks(np.array([0, 10, 20], np.int64), 0.0, 0.0)
    np.testing.assert_array_equal(z[0], [True, True, True])


def test_slice_keeps_the_clock_exact(hour_tokens):
    tok = hour_tokens
    part = tok.slice(1000, 1500)
    assert len(part) == 500
    np.testing.assert_array_equal(part.time_ns(), tok.time_ns()[1000:1500])
    np.testing.assert_array_equal(detokenize(part).price_ticks, detokenize(tok).price_ticks[1000:1500])


def test_empty_same_side_reference_round_trips():
    """A side with no levels: the level counts from one tick inside the opposite best."""
    n = 3
    m = Messages(time_ns=np.array([1, 2, 3], np.int64) * 10**9, type=np.array([1, 1, 1], np.int8),
                 size=np.array([10.0, 20.0, 30.0]), price_ticks=np.array([99, 104, 98], np.int64),
                 direction=np.array([1, -1, 1], np.int8))
    bp = np.array([[99], [99], [99]])
    bs = np.array([[10.0], [10.0], [40.0]])
    ap = np.array([[NO_PRICE], [104], [104]])
    as_ = np.array([[0.0], [20.0], [20.0]])
    ev = messages_to_events(m, bp, bs, ap, as_, date="2012-06-21")
    assert np.isnan(ev["ask_px_1"].iloc[0]) and ev["ask_sz_1"].iloc[0] == 0
    tok = tokenize(ev, TokenConfig(top_k=1, test_hours=0, early_stop_hours=0))
    # token 0 = row 1: sell at 104 while the ask side was empty: reference = best bid 99 + 1
    assert tok.best_ask[0] == NO_PRICE and tok.spread[0] == -1
    assert tok.level[0] == 104 - 100
    # token 1 = row 2: buy at 98 behind the best bid 99
    assert tok.level[1] == 1 and tok.spread[1] == 5
    back = detokenize(tok)
    np.testing.assert_array_equal(back.price_ticks, [104, 98])
    np.testing.assert_array_equal(back.time_ns, [2 * 10**9, 3 * 10**9])
    assert n == 3


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def _err(fn, *a, **k) -> EventTokenError:
    with pytest.raises(EventTokenError) as ei:
        fn(*a, **k)
    assert isinstance(ei.value, LobworldError) and isinstance(ei.value, ValueError)
    return ei.value


def test_missing_columns(hour):
    e = _err(tokenize, hour.drop(columns=["size"]), HOUR_CFG)
    assert e.field == "size" and "missing column" in str(e)
    e = _err(tokenize, hour.drop(columns=[c for c in hour.columns if c.startswith("bid_")]), HOUR_CFG)
    assert e.field == "bid_px_1"
    e = _err(tokenize, hour, TokenConfig(top_k=11))
    assert e.field == "top_k" and "10 book levels" in str(e)


def test_unsorted_times(hour):
    bad = hour.copy()
    ts = bad["ts"].to_numpy().copy()
    ts[100], ts[101] = ts[101], ts[100]
    bad["ts"] = pd.DatetimeIndex(ts)
    e = _err(tokenize, bad, HOUR_CFG)
    assert e.field == "ts" and e.row == 101 and "backwards" in str(e) and "row 101" in str(e)


def test_nan_and_bad_sizes(hour):
    bad = hour.copy()
    bad.loc[5, "size"] = np.nan
    e = _err(tokenize, bad, HOUR_CFG)
    assert e.field == "size" and e.row == 5 and "nan" in str(e)
    bad = hour.copy()
    bad.loc[7, "size"] = 0.0
    assert _err(tokenize, bad, HOUR_CFG).row == 7
    bad = hour.copy()
    bad.loc[9, "bid_sz_2"] = np.nan
    e = _err(tokenize, bad, HOUR_CFG)
    assert e.field == "bid_sz_2" and e.row == 9  # the row whose book (the context of row 10) is bad


def test_bad_event_direction_and_attrs(hour):
    bad = hour.copy()
    bad["event"] = bad["event"].astype(str)
    bad.loc[3, "event"] = "halt"
    e = _err(tokenize, bad, HOUR_CFG)
    assert e.field == "event" and e.row == 3 and "halt" in str(e)
    bad.loc[3, "event"] = "bogus"
    assert "bogus" in str(_err(tokenize, bad, HOUR_CFG))
    bad = hour.copy()
    bad.loc[4, "direction"] = 0
    assert _err(tokenize, bad, HOUR_CFG).field == "direction"
    bad = hour.copy()
    bad.attrs = {}
    assert _err(tokenize, bad, HOUR_CFG).field == "tick_size"
    assert _err(tokenize, hour.iloc[:1], HOUR_CFG).field == "events"
    assert _err(tokenize, "not a frame").field == "events"


def test_config_is_frozen_and_validated():
    cfg = TokenConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.top_k = 3
    for kw, field in (({"top_k": 0}, "top_k"), ({"imbalance_levels": 9}, "imbalance_levels"),
                      ({"size_binning": "kmeans"}, "size_binning"), ({"min_dt_s": 0.0}, "min_dt_s"),
                      ({"test_hours": -1.0}, "test_hours"), ({"size_bins": 1}, "size_bins")):
        assert _err(TokenConfig, **kw).field == field


def test_empty_training_block_is_named(hour):
    e = _err(tokenize, hour, TokenConfig())  # 2 h held out of a 1 h file
    assert e.field == "size" and "training block is empty" in str(e)


# ---------------------------------------------------------------------------
# full day (shared data)
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_full_goog_day_tokenises_in_seconds(shared_data):
    ev = load_lobster(shared_data / "lobster" / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz")
    t0 = time.perf_counter()
    tok = tokenize(ev)
    elapsed = time.perf_counter() - t0
    assert len(tok) == 147_915
    assert elapsed < 5.0, f"tokenising the GOOG day took {elapsed:.2f} s"
    m = detokenize(tok)
    ref = ev.iloc[1:]
    np.testing.assert_array_equal(m.price_ticks, ref["price_ticks"].to_numpy())
    np.testing.assert_array_equal(m.size, ref["size"].to_numpy())
    np.testing.assert_array_equal(m.type, ref["event"].cat.codes.to_numpy() + 1)
    wall = ref["ts"].dt.tz_localize(None).to_numpy()
    np.testing.assert_array_equal(m.time_ns, (wall - wall.astype("datetime64[D]")).astype(np.int64))
    train, es, test = split_masks(tok)
    t = tok.time_ns()
    # the last 2 h (after 13:59:59.87) held out, the half hour before for early stopping
    assert t[test].min() > t[-1] - 7200 * 10**9 >= t[~test].max()
    assert t[es].min() > t[-1] - 9000 * 10**9 >= t[train].max()
    assert 0.30 < test.mean() < 0.34 and train.sum() == 89_101

"""Event-level fidelity (LOB-Bench statistics): hand-computed statistics, scores, floor vs CST, LOBSTER files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths
from lobworld.world_models.data.schema import EVENT_DTYPE, NY_TZ, book_columns
from lobworld.world_models.fidelity import FidelityError
from lobworld.world_models.fidelity.events import (
    EVENT_STATISTICS, STAT_BY_NAME, cst_sequences, event_report, fd_edges, iqm, l1_tv, score_sample,
    score_sequences, sequence_statistics, split_sequences, summarise, w1_z, write_lobster,
)
from lobworld.world_models.tick_parametric import load_fitted_cst

# time (s after midnight), event, order id, size, price USD, direction; book after (2 levels):
# bid (px, sz) x2, ask (px, sz) x2
ROWS = [
    (36000.0, "submit", 1, 100, 10.00, 1, [(10.00, 100), (9.99, 50)], [(10.02, 200), (10.03, 100)]),
    (36000.5, "submit", 2, 30, 10.03, -1, [(10.00, 100), (9.99, 50)], [(10.02, 200), (10.03, 130)]),
    (36001.5, "delete", 1, 100, 10.00, 1, [(9.99, 50), (np.nan, 0)], [(10.02, 200), (10.03, 130)]),
    (36001.5, "exec_visible", 9, 50, 10.02, -1, [(9.99, 50), (np.nan, 0)], [(10.02, 150), (10.03, 130)]),
    (36061.5, "cancel", 2, 10, 10.03, -1, [(9.99, 50), (np.nan, 0)], [(10.02, 150), (10.03, 120)]),
]


def tiny_stream() -> pd.DataFrame:
    day = np.datetime64("2012-06-21", "ns")
    ts = pd.DatetimeIndex([day + np.timedelta64(int(round(r[0] * 1e9)), "ns") for r in ROWS]).tz_localize(NY_TZ)
    direction = np.array([r[5] for r in ROWS], np.int8)
    ev = [r[1] for r in ROWS]
    df = pd.DataFrame({
        "ts": ts, "event": pd.Categorical(ev, dtype=EVENT_DTYPE),
        "order_id": np.array([r[2] for r in ROWS], np.int64), "size": np.array([r[3] for r in ROWS], float),
        "price": np.array([r[4] for r in ROWS]), "price_ticks": np.rint(np.array([r[4] for r in ROWS]) * 100).astype(np.int64),
        "direction": direction,
        "aggressor": np.where(np.array(ev) == "exec_visible", -direction, 0).astype(np.int8),
        "trading_state": np.ones(len(ROWS), np.int8),
    })
    book = []
    for r in ROWS:
        bid, ask = r[6], r[7]
        book.append([bid[0][0], bid[1][0], bid[0][1], bid[1][1], ask[0][0], ask[1][0], ask[0][1], ask[1][1]])
    df = pd.concat([df, pd.DataFrame(np.array(book, float), columns=book_columns(2))], axis=1)
    df.attrs.update({"ticker": "TINY", "date": "2012-06-21", "levels": 2, "tick_size": 0.01})
    return df


def test_book_statistics_hand_computed():
    s = sequence_statistics(tiny_stream())
    np.testing.assert_array_equal(s["spread"], [2, 2, 3, 3, 3])
    np.testing.assert_allclose(s["orderbook_imbalance"], [-1 / 3, -1 / 3, -0.6, -0.5, -0.5])
    np.testing.assert_array_equal(s["ask_volume_touch"], [200, 200, 200, 150, 150])
    np.testing.assert_array_equal(s["bid_volume_touch"], [100, 100, 50, 50, 50])
    np.testing.assert_array_equal(s["ask_volume_10"], [300, 330, 330, 280, 270])
    np.testing.assert_array_equal(s["bid_volume_10"], [150, 150, 50, 50, 50])


def test_message_statistics_hand_computed():
    s = sequence_statistics(tiny_stream())
    np.testing.assert_allclose(s["log_inter_arrival"], np.log([0.5, 1.0, 1e-9, 60.0]))
    np.testing.assert_allclose(s["log_time_to_cancel"], np.log([1.5, 61.0]))
    # row 1: ask submit at 10.03 behind a 10.02 best ask -> depth 1, one better level
    np.testing.assert_array_equal(s["limit_depth_ask"], [1])
    np.testing.assert_array_equal(s["limit_level_ask"], [1])
    assert len(s["limit_depth_bid"]) == 0 and len(s["limit_level_bid"]) == 0  # row 0 has no book before
    # row 2 deletes the whole best bid (depth 0, level 0); row 4 cancels at the second ask level
    np.testing.assert_array_equal(s["cancel_depth_bid"], [0])
    np.testing.assert_array_equal(s["cancel_level_bid"], [0])
    np.testing.assert_array_equal(s["cancel_depth_ask"], [1])
    np.testing.assert_array_equal(s["cancel_level_ask"], [1])
    np.testing.assert_array_equal(s["volume_per_min"], [50, 0])  # minutes 10:00 and 10:01


def test_ofi_hand_computed():
    ev = tiny_stream()
    # level-1 OFI terms: e1 = 0, e2 = -100 (best bid leaves), e3 = +50 (ask queue -50), e4 = 0
    s = sequence_statistics(ev, ofi_window=2)
    np.testing.assert_array_equal(s["ofi"], [-100, -50, 50])
    np.testing.assert_array_equal(s["ofi_flat"], [-100, -50])  # the last window has no next message
    assert len(s["ofi_up"]) == 0 and len(s["ofi_down"]) == 0
    s = sequence_statistics(ev, ofi_window=1)
    np.testing.assert_array_equal(s["ofi"], [0, -100, 50, 0])
    np.testing.assert_array_equal(s["ofi_down"], [0])  # mid 10.01 -> 10.005 at row 2
    np.testing.assert_array_equal(s["ofi_flat"], [-100, 50])
    assert len(sequence_statistics(ev)["ofi"]) == 0  # 5 messages < the 100-message window


def test_conditional_statistics_hand_computed():
    s = sequence_statistics(tiny_stream())
    v, c = s["ask_volume_touch|spread"]
    np.testing.assert_array_equal(v, [200, 200, 200, 150, 150])
    np.testing.assert_array_equal(c, [2, 2, 3, 3, 3])
    v, c = s["spread|hour"]
    np.testing.assert_array_equal(c, [10] * 5)
    v, c = s["spread|volatility"]
    # minute 10:00: 599 0.1 s returns, one of them ln(1000.5 / 1001); minute 10:01: 16 zero returns
    x = math.log(1000.5 / 1001)
    sd = abs(x) * math.sqrt((1 - 1 / 599) / 598)
    np.testing.assert_allclose(c, [sd] * 4 + [0.0], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(v, [2, 2, 3, 3, 3])


def test_every_statistic_is_produced_and_21_unconditional():
    s = sequence_statistics(tiny_stream())
    assert set(s) == {st.name for st in EVENT_STATISTICS}
    assert sum(not st.conditional for st in EVENT_STATISTICS) == 21
    assert sum(st.conditional for st in EVENT_STATISTICS) == 3


def test_l1_identical_disjoint_and_hand_case():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    assert l1_tv(a, a.copy()) == 0.0
    assert l1_tv(a, a + 100.0) == 1.0
    assert l1_tv([1, 1, 2], [3, 4, 4], discrete=True) == 1.0
    assert l1_tv([0, 0, 1], [0, 1, 1], discrete=True) == pytest.approx(1 / 3)
    assert math.isnan(l1_tv([], [1.0]))


def test_w1_hand_checked():
    assert w1_z([0, 0], [1, 1]) == pytest.approx(2.0)  # pooled mean 0.5, sd 0.5 -> -1 vs +1
    assert w1_z([0, 2], [1, 3]) == pytest.approx(1 / math.sqrt(1.25))  # shift 1 / pooled sd sqrt(1.25)
    assert w1_z([3.0, 5.0], [5.0, 3.0]) == 0.0


def test_fd_edges_hand_checked():
    # IQR(0..7) = 5.25 - 1.75 = 3.5, n = 8 -> h = 2 * 3.5 / 2 = 3.5 over a range of 7: 2 bins
    np.testing.assert_allclose(fd_edges(np.arange(8.0)), [0, 3.5, 7])
    x = np.arange(1000.0)
    h = 2 * (np.percentile(x, 75) - np.percentile(x, 25)) * 1000 ** (-1 / 3)
    assert len(fd_edges(x)) - 1 == math.ceil(999 / h)
    np.testing.assert_allclose(fd_edges([1, 1, 1, 1, 2]), [0.5, 1.5, 2.5])  # IQR 0: unique values
    with pytest.raises(FidelityError):
        fd_edges([])


def test_conditional_score_averages_over_condition_bins():
    st = STAT_BY_NAME["spread|hour"]
    a = (np.array([1, 1, 2, 2.0]), np.array([10, 10, 11, 11.0]))
    b = (np.array([1, 2, 2, 2.0]), np.array([10, 10, 11, 11.0]))  # hour 10: L1 1/2; hour 11: 0
    l1, _ = score_sample(st, a, b)
    assert l1 == pytest.approx(0.25)


def test_summaries_and_bootstrap():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)
    assert summarise([0.1, 0.3, float("nan"), 0.2]) == {"mean": pytest.approx(0.2), "median": pytest.approx(0.2),
                                                         "iqm": pytest.approx(0.2)}
    s = sequence_statistics(tiny_stream())
    sc = score_sequences([s, s], [s], n_boot=5)
    assert sc.l1["spread"] == 0.0 and sc.l1_ci["spread"] == (0.0, 0.0)
    assert math.isnan(sc.l1["ofi"])  # no value on either side


@pytest.fixture(scope="module")
def shipped():
    return load_lobster(*sample_lobster_paths())


@pytest.mark.slow
def test_floor_small_and_cst_larger_on_shipped_hour(shipped):
    rep = event_report(shipped, start="10:00", end="11:00", window_s=600, n_boot=0, seed=0)
    assert rep.cst.n_real == 6 and rep.floor.n_real == 3
    floor, cst = rep.floor.summary["l1"]["mean"], rep.cst.summary["l1"]["mean"]
    # measured: floor 0.172, CST 0.533 (mean L1); W1 0.189 vs 0.778
    assert floor < 0.25
    assert cst > 0.45 and cst > 2 * floor
    assert rep.cst.summary["w1"]["mean"] > 2 * rep.floor.summary["w1"]["mean"]
    assert math.isnan(rep.cst.l1["log_time_to_cancel"])  # CST messages carry no order ids


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(pd.DatetimeIndex(a["ts"]).asi8, pd.DatetimeIndex(b["ts"]).asi8)
    for col in ("event", "order_id", "size", "price_ticks", "direction", "aggressor", "trading_state"):
        np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]), err_msg=col)
    np.testing.assert_array_equal(np.rint(a["price"] * 10_000), np.rint(b["price"] * 10_000))
    cols = [c for c in a.columns if c.startswith(("bid_", "ask_"))]
    np.testing.assert_array_equal(np.rint(a[cols].to_numpy() * 10_000), np.rint(b[cols].to_numpy() * 10_000))


def test_write_lobster_round_trip_real(shipped, tmp_path):
    part = shipped.iloc[:3000].reset_index(drop=True)
    part.attrs = dict(shipped.attrs)
    mp, op = write_lobster(part, tmp_path, ticker="GOOG")
    assert mp.name.startswith("GOOG_2012-06-21_36000") and mp.name.endswith("_message_10.csv")
    back = load_lobster(mp, op)
    _assert_same_table(part, back)
    # line by line, the written files hold the numbers of the original LOBSTER files
    import gzip

    msg0, ob0 = sample_lobster_paths()
    for orig, new in ((msg0, mp), (ob0, op)):
        with gzip.open(orig, "rt") as f:
            want = np.array([[float(v) for v in f.readline().split(",")] for _ in range(200)])
        got = np.array([[float(v) for v in line.split(",")] for line in new.read_text().splitlines()[:200]])
        np.testing.assert_array_equal(got, want)


def test_write_lobster_round_trip_cst(shipped, tmp_path):
    ranges = split_sequences(shipped, start="10:00", end="10:10")
    a, _ = ranges[0]
    gen = cst_sequences(load_fitted_cst("GOOG"), shipped, [(a, a + 1500)], np.random.default_rng(3))[0]
    mp, op = write_lobster(gen, tmp_path, ticker="CST-GOOG", gz=True)
    assert len(op.read_bytes()) > 0 and op.name.endswith("_orderbook_10.csv.gz")
    back = load_lobster(mp)
    _assert_same_table(gen, back)
    assert sequence_statistics(back)["spread"].tolist() == sequence_statistics(gen)["spread"].tolist()


def test_write_lobster_rejects_fractional_size(tmp_path):
    ev = tiny_stream()
    ev.loc[0, "size"] = 1.5
    with pytest.raises(FidelityError, match="row 0"):
        write_lobster(ev, tmp_path)


@pytest.mark.slow
def test_cli_events_section(tmp_path):
    from lobworld.cli import main

    msg, _ = sample_lobster_paths()
    rc = main(["fidelity", "--events", "--data", str(msg), "--out", str(tmp_path), "--events-span", "10:00-10:20",
               "--events-n-boot", "0"])
    assert rc == 0
    md = (tmp_path / "events.md").read_text()
    assert "| `log_inter_arrival` |" in md and "| GOOG | CST |" in md
    assert (tmp_path / "events_scores_GOOG.png").stat().st_size > 1000
    pairs = sorted((tmp_path / "events_lobster" / "GOOG").glob("*_message_10.csv"))
    assert len(pairs) == 2  # one file pair per 10-minute sequence
    assert len(load_lobster(pairs[0])) > 100
    assert main(["fidelity", "--events", "--data", str(msg), "--out", str(tmp_path), "--events-span", "x"]) == 2

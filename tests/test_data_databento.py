"""Databento loader: DBN and CSV of every fixture give the same table; values vs the CSV export."""

import numpy as np
import pandas as pd
import pytest

from lobworld.world_models.data import DataValidationError, load_databento, make_bars

PAIRS = [
    ("XNAS.ITCH/test_data.mbp-10.dbn.zst", "csv/xnas-itch_test_data.mbp-10.csv"),
    ("XNAS.ITCH/test_data.mbp-1.dbn.zst", "csv/xnas-itch_test_data.mbp-1.csv"),
    ("XNAS.ITCH/test_data.mbo.dbn.zst", "csv/xnas-itch_test_data.mbo.csv"),
    ("GLBX.MDP3/test_data.mbp-10.dbn.zst", "csv/glbx-mdp3_test_data.mbp-10.csv"),
    ("GLBX.MDP3/test_data.mbo.dbn.zst", "csv/glbx-mdp3_test_data.mbo.csv"),
]


@pytest.mark.parametrize("dbn,csv", PAIRS)
def test_dbn_equals_csv(shared_data, dbn, csv):
    a = load_databento(shared_data / "databento" / dbn)
    b = load_databento(shared_data / "databento" / csv)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 4
    for k in ("ticker", "date", "levels", "tick_size", "schema"):
        assert a.attrs[k] == b.attrs[k]


@pytest.mark.parametrize("dbn,csv", PAIRS)
def test_values_against_csv_export(shared_data, dbn, csv):
    df = load_databento(shared_data / "databento" / dbn)
    raw = pd.read_csv(shared_data / "databento" / csv)
    np.testing.assert_array_equal(df["price"].to_numpy(), raw["price"].to_numpy(float))
    np.testing.assert_array_equal(df["size"].to_numpy(), raw["size"].to_numpy(float))
    assert list(df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")) == [s[:26] for s in raw["ts_recv"]]
    L = df.attrs["levels"] if "bid_px_00" in raw else 0  # MBO: the book is replayed, not in the CSV
    for k in range(L):
        for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
            np.testing.assert_array_equal(df[f"{f}_{k + 1}"].to_numpy(), raw[f"{f}_{k:02d}"].to_numpy(float))


def test_nvda_mbp1_specific_values(shared_data):
    df = load_databento(shared_data / "databento" / "XNAS.ITCH" / "test_data.mbp-1.dbn.zst")
    assert df.attrs["ticker"] == "NVDA" and df.attrs["tick_size"] == 0.01 and df.attrs["levels"] == 1
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert df["ts"].iloc[0] == pd.Timestamp("2020-12-28T09:01:28.297109209Z")
    assert list(df["price"]) == [502.0, 512.01, 539.0, 519.75]
    assert np.isnan(df["ask_px_1"].iloc[0]) and df["ask_sz_1"].iloc[0] == 0  # empty ask side
    assert df["bid_px_1"].iloc[3] == 519.75 and df["ask_px_1"].iloc[3] == 539.0 and df["ask_sz_1"].iloc[3] == 17
    assert df["price_ticks"].iloc[1] == 51201
    assert (df["event"] == "submit").all() and (df["aggressor"] == 0).all()


def test_esh1_mbp10_book(shared_data):
    df = load_databento(shared_data / "databento" / "GLBX.MDP3" / "test_data.mbp-10.dbn.zst")
    assert df.attrs["ticker"] == "ESH1" and df.attrs["tick_size"] == 0.25 and df.attrs["levels"] == 10
    r = df.iloc[0]
    assert (r["bid_px_1"], r["ask_px_1"], r["bid_sz_1"], r["ask_sz_1"], r["bid_ct_1"], r["ask_ct_1"]) == \
        (3702.25, 3702.75, 19, 13, 11, 13)
    assert (r["bid_px_10"], r["ask_px_10"], r["bid_sz_10"], r["ask_sz_10"]) == (3700.0, 3705.0, 38, 35)
    assert r["direction"] == 1  # side B
    b = make_bars(df, "10ms")
    assert b["n_events"].sum() == 4


def test_esh1_mbo(shared_data):
    p = shared_data / "databento" / "GLBX.MDP3" / "test_data.mbo.dbn.zst"
    df = load_databento(p, mbo_levels=0)
    assert df.attrs["levels"] == 0 and "bid_px_1" not in df.columns
    assert list(df["order_id"]) == [647784248135, 647782686353, 647782884482, 647782912367]
    assert list(df["price"]) == [3675.75, 3675.5, 3675.25, 3675.0]
    book = load_databento(p)  # snapshot adds, one order per price: the book fills level by level
    assert book.attrs["levels"] == 10
    assert list(book.iloc[3][["bid_px_1", "bid_px_2", "bid_px_3", "bid_px_4"]]) == [3675.75, 3675.5, 3675.25, 3675.0]
    assert list(book.iloc[3][["bid_sz_1", "bid_sz_2", "bid_sz_3", "bid_sz_4"]]) == [2, 1, 1, 1]
    assert book["ask_px_1"].isna().all() and book["bid_px_2"].isna().iloc[0]


def test_mbo_replay_matches_mbp10(shared_data):
    """The NVDA MBO and MBP-10 fixtures hold the same 4 events: the replayed book must equal MBP-10's."""
    mbo = load_databento(shared_data / "databento" / "XNAS.ITCH" / "test_data.mbo.dbn.zst")
    mbp = load_databento(shared_data / "databento" / "XNAS.ITCH" / "test_data.mbp-10.dbn.zst")
    cols = [c for c in mbp.columns if c.startswith(("bid_", "ask_"))]
    assert (mbo["ts"] == mbp["ts"]).all()
    pd.testing.assert_frame_equal(mbo[cols], mbp[cols])


def test_mbo_replay_hand_case():
    from lobworld.world_models.data.mbo_book import replay_mbo
    b = replay_mbo(["A", "A", "A", "A", "C", "M", "F", "T", "R"], ["B", "B", "A", "B", "B", "A", "B", "A", "N"],
                   np.array([100, 99, 101, 100, 100, 102, 99, 101, 0]) * 10**9,
                   [5, 3, 4, 2, 5, 6, 1, 1, 0], [1, 2, 3, 4, 1, 3, 2, 9, 0], levels=2)
    # add 5@100, 3@99 bids; 4@101 ask; 2 more @100; cancel order 1 (5); modify ask 3 -> 6@102; fill 1 of order 2
    assert b["bid_sz"].tolist() == [[5, 0], [5, 3], [5, 3], [7, 3], [2, 3], [2, 3], [2, 2], [2, 2], [0, 0]]
    assert b["bid_ct"][3].tolist() == [2, 1] and b["bid_ct"][4].tolist() == [1, 1]
    assert b["ask_px"][:, 0].tolist()[2:8] == [101, 101, 101, 102, 102, 102]
    assert np.isnan(b["bid_px"][8]).all() and np.isnan(b["ask_px"][0, 0])


def test_broken_databento(tmp_path, shared_data):
    src = (shared_data / "databento" / "csv" / "xnas-itch_test_data.mbp-1.csv").read_text().splitlines()
    bad = src[:]
    bad[3] = bad[3].replace(",A,N,", ",Z,N,", 1)
    p = tmp_path / "xnas-itch_bad.mbp-1.csv"
    p.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataValidationError, match=r"line 4: \[unknown_event_code\]"):
        load_databento(p)
    df = load_databento(p, strict=False)
    assert len(df) == 3 and df.attrs["dropped"] == {"unknown_event_code": 1}
    swapped = [src[0], src[2], src[1]] + src[3:]
    p.write_text("\n".join(swapped) + "\n")
    with pytest.raises(DataValidationError, match="non_monotonic_time"):
        load_databento(p)
    z = tmp_path / "cut.mbp-1.dbn.zst"
    z.write_bytes((shared_data / "databento" / "XNAS.ITCH" / "test_data.mbp-1.dbn.zst").read_bytes()[:100])
    with pytest.raises(DataValidationError, match="corrupt_dbn"):
        load_databento(z)
    with pytest.raises(DataValidationError, match="malformed_file_name"):
        load_databento(shared_data / "databento" / "csv" / ".." / ".." / "README.md")

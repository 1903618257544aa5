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


# ---- damaged Databento files (built in tmp_path from the real fixtures) ------------------------
MBP1_DBN = "XNAS.ITCH/test_data.mbp-1.dbn.zst"
MBP1_CSV = "csv/xnas-itch_test_data.mbp-1.csv"


def _raw_dbn(shared_data, rel=MBP1_DBN) -> bytes:
    """The uncompressed DBN bytes of a fixture: its metadata header + its 4 records."""
    import databento_dbn as dbn
    dec = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
    dec.write((shared_data / "databento" / rel).read_bytes())
    recs = dec.decode()
    return recs[0].encode() + b"".join(bytes(r) for r in recs[1:])


def _csv_lines(shared_data, rel=MBP1_CSV):
    return (shared_data / "databento" / rel).read_text().splitlines()


def test_raw_dbn_equals_zst(tmp_path, shared_data):
    p = tmp_path / "nvda.mbp-1.dbn"
    p.write_bytes(_raw_dbn(shared_data))
    a, b = load_databento(p), load_databento(shared_data / "databento" / MBP1_DBN)
    pd.testing.assert_frame_equal(a, b)


def test_raw_dbn_cut_mid_record(tmp_path, shared_data, caplog):
    raw = _raw_dbn(shared_data)
    p = tmp_path / "nvda.mbp-1.dbn"
    p.write_bytes(raw[:-20])  # 60 of the last record's 80 bytes
    with pytest.raises(DataValidationError) as ei:
        load_databento(p)
    e = ei.value
    assert e.rule == "truncated_file" and e.row == 4
    assert "ends inside record 4 (60 of 80 bytes)" in str(e)
    with caplog.at_level("WARNING", logger="lobworld.data"):
        df = load_databento(p, strict=False)
    assert len(df) == 3 and df.attrs["dropped"] == {"truncated_file": 1}
    assert "truncated_file=1" in caplog.text
    assert list(df["price"]) == [502.0, 512.01, 539.0]
    p.write_bytes(raw[:200])  # inside the metadata header
    with pytest.raises(DataValidationError, match="ends inside the DBN metadata header"):
        load_databento(p, strict=False)


def test_zst_cut_says_so(tmp_path, shared_data):
    z = tmp_path / "cut.mbp-1.dbn.zst"
    z.write_bytes((shared_data / "databento" / MBP1_DBN).read_bytes()[:200])
    with pytest.raises(DataValidationError, match=r"corrupt_dbn.*zstd stream is cut short or damaged"):
        load_databento(z)


def test_csv_non_numeric_rtype(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    hdr = src[0].split(",")
    f = src[2].split(",")
    assert f[hdr.index("rtype")] == "1"
    f[hdr.index("rtype")] = "one"
    src[2] = ",".join(f)
    p = tmp_path / "xnas-itch_rtype.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    for strict in (True, False):
        with pytest.raises(DataValidationError, match=r"line 3: \[non_numeric\] column rtype is not a number: 'one'"):
            load_databento(p, strict=strict)


def test_csv_wrong_rtype(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    hdr = src[0].split(",")
    f = src[3].split(",")
    f[hdr.index("rtype")] = "10"  # an MBP-10 record type in an MBP-1 file
    src[3] = ",".join(f)
    p = tmp_path / "xnas-itch_rtype.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(DataValidationError, match=r"line 4: \[unknown_record_type\] rtype 10 is not the mbp-1"):
        load_databento(p)
    df = load_databento(p, strict=False)
    assert df.attrs["dropped"] == {"unknown_record_type": 1} and list(df["price"]) == [502.0, 512.01, 519.75]


def test_csv_non_numeric_size_is_not_nan(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    hdr = src[0].split(",")
    f = src[1].split(",")
    f[hdr.index("size")] = "2x"
    src[1] = ",".join(f)
    p = tmp_path / "xnas-itch_size.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(DataValidationError, match=r"line 2: \[non_numeric\] column size is not a number: '2x'"):
        load_databento(p)


def test_csv_cut_mid_line(tmp_path, shared_data):
    text = (shared_data / "databento" / MBP1_CSV).read_bytes()
    p = tmp_path / "xnas-itch_cut.mbp-1.csv"
    last = text.rstrip(b"\n").rfind(b"\n") + 1
    for cut in (last + 40, text.rfind(b",") + 1):  # inside ts_event; just after the last comma
        p.write_bytes(text[:cut])
        with pytest.raises(DataValidationError) as ei:
            load_databento(p)
        e = ei.value
        assert e.rule == "truncated_file" and e.row == 5 and "cut mid-line" in str(e), str(e)
        assert "nan_value" not in str(e)
        df = load_databento(p, strict=False)
        assert len(df) == 3 and df.attrs["dropped"] == {"truncated_file": 1}
        assert list(df["price"]) == [502.0, 512.01, 539.0]


def test_csv_short_line_in_the_middle(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    src[2] = ",".join(src[2].split(",")[:10])
    p = tmp_path / "xnas-itch_short.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(DataValidationError, match=r"line 3: \[malformed_row\] line has 10 fields, the header 20"):
        load_databento(p)
    df = load_databento(p, strict=False)
    assert df.attrs["dropped"] == {"malformed_row": 1} and list(df["price"]) == [502.0, 539.0, 519.75]
    src[4] = src[4].replace(",A,N,", ",Z,N,", 1)
    p.write_text("\n".join(src) + "\n")
    assert load_databento(p, strict=False).attrs["dropped"] == {"malformed_row": 1, "unknown_event_code": 1}


def test_csv_rows_keep_their_file_lines(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    src[4] = src[4].replace(",A,N,", ",Z,N,", 1)
    src.insert(2, "")  # a blank line: pandas skips it, the error must still name line 6
    p = tmp_path / "xnas-itch_blank.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(DataValidationError, match=r"line 6: \[unknown_event_code\]"):
        load_databento(p)


def test_csv_bad_timestamp(tmp_path, shared_data):
    src = _csv_lines(shared_data)
    src[2] = "2020-12-28T09:0x," + src[2].split(",", 1)[1]
    p = tmp_path / "xnas-itch_ts.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(DataValidationError, match=r"line 3: \[bad_timestamp\] column ts_recv"):
        load_databento(p)


def test_directory_and_missing_file(tmp_path):
    from lobworld.world_models.data.errors import DataFileNotFoundError, DataNotAFileError
    d = tmp_path / "xnas-itch.mbp-1.csv"
    d.mkdir()
    with pytest.raises(DataNotAFileError, match=r"\[not_a_file\] Databento path is a directory"):
        load_databento(d)
    with pytest.raises(DataFileNotFoundError, match=r"\[file_not_found\] Databento file not found"):
        load_databento(tmp_path / "nope.dbn")


def test_several_instruments_named(tmp_path, shared_data):
    from lobworld.errors import LobworldError
    src = _csv_lines(shared_data)
    src[2] = src[2].replace(",2,6155,", ",2,6156,", 1)  # publisher 2, a second instrument id
    p = tmp_path / "xnas-itch_two.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(LobworldError, match=r"\[several_instruments\] holds 2 instruments \[6155, 6156\]"):
        load_databento(p)
    assert len(load_databento(p, instrument_id=6156)) == 1
    with pytest.raises(DataValidationError, match=r"\[unknown_instrument\]"):
        load_databento(p, instrument_id=1)

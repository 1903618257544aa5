"""Validation: every rule triggered by a deliberately broken copy of the shipped slice."""

import gzip
import logging
import shutil
import warnings

import numpy as np
import pytest

from _data_helpers import STEM, set_field, slice_lines, write_pair
from lobworld.world_models.data import DataValidationError, load_lobster, sample_lobster_paths

N = 200


@pytest.fixture
def lines():
    return slice_lines(N)


def _raises(path, rule, line=None):
    with pytest.raises(DataValidationError) as ei:
        load_lobster(path)
    e = ei.value
    assert e.rule == rule, str(e)
    assert e.path is not None and str(e.path) in str(e)
    if line is not None:
        assert e.row == line and f"line {line}" in str(e)
    return e


def test_clean_copy_loads(tmp_path, lines):
    df = load_lobster(write_pair(tmp_path, *lines))
    assert len(df) == N and df.attrs["dropped"] == {}


def test_row_count_mismatch(tmp_path, lines):
    m, o = lines
    e = _raises(write_pair(tmp_path, m, o[:-1]), "row_count_mismatch")
    assert "200" in str(e) and "199" in str(e)


def test_non_monotonic_time(tmp_path, lines, caplog):
    m, o = lines
    m[11] = set_field(m[11], 0, "35999.5")  # earlier than line 11
    _raises(write_pair(tmp_path, m, o), "non_monotonic_time", line=12)
    with caplog.at_level(logging.WARNING, logger="lobworld.data"):
        df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    # 35999.5 s is also before the file's window 36000000 ms: counted once, under the first rule
    assert len(df) == N - 1 and sum(df.attrs["dropped"].values()) == 1
    assert "dropped 1 rows" in caplog.text


def test_crossed_book_strict_and_lenient(tmp_path, lines, caplog):
    m, o = lines
    f = o[49].split(",")
    f[2] = str(int(f[0]) + 100)  # bid_1 one cent above ask_1
    o[49] = ",".join(f)
    e = _raises(write_pair(tmp_path, m, o), "crossed_book", line=50)
    assert "best bid" in str(e)
    with caplog.at_level(logging.WARNING, logger="lobworld.data"):
        df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"crossed_book": 1}
    assert len(df) == N - 1 and "crossed_book=1" in caplog.text
    assert not (df["bid_px_1"] >= df["ask_px_1"]).any()


def test_locked_book(tmp_path, lines):
    m, o = lines
    o[60] = set_field(o[60], 2, o[60].split(",")[0])
    _raises(write_pair(tmp_path, m, o), "locked_book", line=61)


def test_nan_field(tmp_path, lines):
    m, o = lines
    m[30] = set_field(m[30], 3, "")
    _raises(write_pair(tmp_path, m, o), "nan_value", line=31)
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"nan_value": 1}


def test_negative_size(tmp_path, lines):
    m, o = lines
    m[40] = set_field(m[40], 3, "-5")
    _raises(write_pair(tmp_path, m, o), "negative_size", line=41)
    m2, o2 = slice_lines(N)
    o2[41] = set_field(o2[41], 1, "-100")
    _raises(write_pair(tmp_path, m2, o2), "negative_size", line=42)


def test_unknown_event_code(tmp_path, lines):
    m, o = lines
    m[70] = set_field(m[70], 1, "9")
    e = _raises(write_pair(tmp_path, m, o), "unknown_event_code", line=71)
    assert "9" in str(e)


def test_bad_direction(tmp_path, lines):
    m, o = lines
    m[80] = set_field(m[80], 5, "0")
    _raises(write_pair(tmp_path, m, o), "bad_direction", line=81)


def test_book_order(tmp_path, lines):
    m, o = lines
    f = o[90].split(",")
    f[6] = str(int(f[2]) + 1)  # bid_2 above bid_1 (still below ask_1: not crossed)
    o[90] = ",".join(f)
    _raises(write_pair(tmp_path, m, o), "book_order", line=91)


def test_truncated_gzip(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) * 2 // 3])
    e = _raises(p, "truncated_file")
    assert "cut short" in str(e)
    df = load_lobster(p, strict=False)
    assert 0 < len(df) < N
    assert df.attrs["dropped"]["truncated_file"] == N - len(df)
    assert df["order_id"].iloc[-1] == int(m[len(df) - 1].split(",")[2])


def test_last_line_missing_fields(tmp_path, lines):
    m, o = lines
    m[-1] = ",".join(m[-1].split(",")[:4])
    _raises(write_pair(tmp_path, m, o), "malformed_row", line=N)
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert len(df) == N - 1 and df.attrs["dropped"] == {"malformed_row": 1}


def test_wrong_column_count_for_levels(tmp_path, lines):
    m, o = lines
    o5 = [",".join(x.split(",")[:20]) for x in o]  # a 5-level book under a _10 name
    e = _raises(write_pair(tmp_path, m, o5), "column_count", line=1)
    assert "20 columns, expected 40" in str(e)


def test_message_column_count(tmp_path, lines):
    m, o = lines
    m7 = [x + ",0" for x in m]
    _raises(write_pair(tmp_path, m7, o), "column_count", line=1)


def test_malformed_file_name(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o, stem="GOOG_2012-06-21_36000000_{}_10.csv")
    _raises(p, "malformed_file_name")


def test_pair_mismatch(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o)
    other = tmp_path / STEM.format("orderbook").replace("GOOG", "AMZN")
    other = other.with_name(other.name + ".gz")
    other.write_bytes(gzip.compress(("\n".join(o) + "\n").encode()))
    with pytest.raises(DataValidationError, match="file_pair_mismatch"):
        load_lobster(p, other)


def test_not_gzip(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o)
    p.write_bytes(b"hello, not gzip\n")
    _raises(p, "not_gzip")


def test_non_numeric(tmp_path, lines):
    m, o = lines
    m[5] = set_field(m[5], 4, "abc")
    _raises(write_pair(tmp_path, m, o), "non_numeric", line=6)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_lobster(tmp_path / STEM.format("message"))


def test_time_outside_window(tmp_path, lines):
    m, o = lines
    m[-1] = set_field(m[-1], 0, "39600.5")  # after the 39600000 ms end named by the file
    _raises(write_pair(tmp_path, m, o), "time_outside_window", line=N)


def test_orderbook_as_message_argument(tmp_path, lines):
    p = write_pair(tmp_path, *lines)
    ob = p.with_name(p.name.replace("message", "orderbook"))
    with pytest.raises(DataValidationError, match="expected a message file"):
        load_lobster(ob)


def test_lenient_counts_several_rules(tmp_path, lines):
    m, o = lines
    m[70] = set_field(m[70], 1, "9")
    m[40] = set_field(m[40], 3, "-5")
    o[49] = set_field(o[49], 2, str(int(o[49].split(",")[0]) + 100))
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"unknown_event_code": 1, "negative_size": 1, "crossed_book": 1}
    assert len(df) == N - 3
    assert int(m[70].split(",")[2]) not in set(df["order_id"])


def test_databento_crossed_book(tmp_path, shared_data):
    src = (shared_data / "databento" / "csv" / "xnas-itch_test_data.mbp-1.csv").read_text().splitlines()
    f = src[4].split(",")
    hdr = src[0].split(",")
    f[hdr.index("bid_px_00")] = "540.000000000"  # above ask_px_00 = 539
    src[4] = ",".join(f)
    p = tmp_path / "xnas-itch_crossed.mbp-1.csv"
    p.write_text("\n".join(src) + "\n")
    from lobworld.world_models.data import load_databento
    with pytest.raises(DataValidationError, match=r"line 5: \[crossed_book\]"):
        load_databento(p)
    assert load_databento(p, strict=False).attrs["dropped"] == {"crossed_book": 1}


def test_time_spike_drops_only_itself(tmp_path, lines):
    m, o = lines
    m[100] = set_field(m[100], 0, "39000.0")  # one stamp far ahead, neighbours in order
    _raises(write_pair(tmp_path, m, o), "non_monotonic_time", line=101)
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"non_monotonic_time": 1} and len(df) == N - 1


def test_time_rule_mask_cases():
    from lobworld.world_models.data.validate import time_rule_mask
    assert time_rule_mask([1, 2, 9, 3, 4]).tolist() == [False, False, True, False, False]
    assert time_rule_mask([1, 2, 3, 0.5, 4]).tolist() == [False, False, False, True, False]
    assert time_rule_mask([1, 1, 1]).tolist() == [False] * 3


# ---- prices: plausible range, executions on the book (shipped GOOG hour, lines 1-200) ----
# Raw lines used below (0-based index into the slice):
#   9: 36000.420456828,4,36056180,100,5756300,1   visible execution of a buy LO at the best bid
#      575.63 of line 9's book (ask 575.91)
#  11: 36000.420456828,5,0,3,5756000,1            hidden execution at 575.60 (line 11's book:
#      bid 575.56, ask 575.91)
VIS, HID = 9, 11


def test_shipped_lines_are_what_the_tests_assume(lines):
    m, o = lines
    assert m[VIS].split(",")[1] == "4" and m[VIS].split(",")[4] == o[VIS - 1].split(",")[2] == "5756300"
    assert m[HID].split(",")[1] == "5" and o[HID - 1].split(",")[2] == "5755600"


def test_execution_at_one_dollar_is_out_of_range(tmp_path, lines):
    m, o = lines
    clean = load_lobster(write_pair(tmp_path, m, o))
    m[VIS] = set_field(m[VIS], 4, "10000")  # 1 USD in a 575 USD book
    e = _raises(write_pair(tmp_path, m, o), "price_out_of_range", line=VIS + 1)
    assert "price 1 USD" in str(e) and "plausible range [57.5" in str(e)
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"price_out_of_range": 1} and len(df) == N - 1
    # the bar VWAP is that of the clean file without the dropped execution, not moved by 1 USD
    from lobworld.world_models.data import make_bars
    ref = make_bars(clean.drop(index=VIS).reset_index(drop=True), "1min")
    got = make_bars(df, "1min")
    np.testing.assert_array_equal(got["vwap"].to_numpy(), ref["vwap"].to_numpy())
    assert got["vwap"].min() > 575.0


def test_submit_at_1e23_is_an_error_without_numpy_warning(tmp_path, lines):
    m, o = lines
    i = next(k for k in range(1, N) if m[k].split(",")[1] == "1")
    m[i] = set_field(m[i], 4, "1e23")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        e = _raises(write_pair(tmp_path, m, o), "price_out_of_range", line=i + 1)
        df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert "1e+19 USD" in str(e)
    assert df.attrs["dropped"] == {"price_out_of_range": 1}
    assert df["price"].max() < 580 and df["price_ticks"].max() < 58_000


def test_negative_and_zero_prices_are_out_of_range(tmp_path, lines):
    m, o = lines
    m[20] = set_field(m[20], 4, "0")
    m[30] = set_field(m[30], 4, "-5756300")
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"price_out_of_range": 2}


def test_book_price_far_off_is_out_of_range(tmp_path, lines):
    m, o = lines
    o[50] = set_field(o[50], 36, "100000000000")  # ask_px_10 = 10,000,000 USD, not LOBSTER's empty dummy
    e = _raises(write_pair(tmp_path, m, o), "price_out_of_range", line=51)
    assert "book price" in str(e)


def test_visible_execution_not_at_previous_best(tmp_path, lines):
    m, o = lines
    m[VIS] = set_field(m[VIS], 4, "5756200")  # one cent under the best bid 575.63, inside the range
    e = _raises(write_pair(tmp_path, m, o), "exec_off_book", line=VIS + 1)
    assert "575.6200" in str(e) and "best bid 575.6300" in str(e)
    df = load_lobster(write_pair(tmp_path, m, o), strict=False)
    assert df.attrs["dropped"] == {"exec_off_book": 1}
    assert 36056180 not in set(df["order_id"])


def test_visible_execution_on_the_wrong_side(tmp_path, lines):
    m, o = lines
    m[VIS] = set_field(m[VIS], 5, "-1")  # a sell LO cannot be executed at the best bid
    e = _raises(write_pair(tmp_path, m, o), "exec_off_book", line=VIS + 1)
    assert "best ask" in str(e)


def test_hidden_execution_outside_the_spread(tmp_path, lines):
    m, o = lines
    m[HID] = set_field(m[HID], 4, "5759200")  # one cent above the previous best ask 575.91
    e = _raises(write_pair(tmp_path, m, o), "exec_outside_spread", line=HID + 1)
    assert "575.9200" in str(e)
    m2, o2 = slice_lines(N)
    m2[HID] = set_field(m2[HID], 4, "5755600")  # at the previous best bid: inside, accepted
    assert load_lobster(write_pair(tmp_path, m2, o2)).attrs["dropped"] == {}


def test_execution_rule_masks_hand_case():
    from lobworld.world_models.data.lobster import EMPTY_ASK, EMPTY_BID, execution_rule_masks
    # one level (ask_px, ask_sz, bid_px, bid_sz); rows are the book after each message
    book = np.array([[101, 5, 99, 5], [101, 5, 99, 3], [101, 5, 98, 4], [EMPTY_ASK, 0, 98, 4],
                     [EMPTY_ASK, 0, EMPTY_BID, 0]], dtype=float)
    code = np.array([4, 4, 5, 4, 5])
    px = np.array([99, 99, 102, 101, 50], dtype=float)
    d = np.array([1, 1, 1, -1, 1])
    prev_ok = np.array([False, True, True, True, True])
    r = execution_rule_masks(code, px, d, book, prev_ok)
    # row 0: own row's spread [99, 101] holds 99; row 1: at the previous best bid 99;
    # row 2: hidden at 102 above the previous ask 101; row 3: sell LO at the previous ask 101;
    # row 4: the previous book has no ask, bid 98 -> 50 is below it
    assert r["exec_off_book"].tolist() == [False, False, False, False, False]
    assert r["exec_outside_spread"].tolist() == [False, False, True, False, True]
    r = execution_rule_masks(code, px + np.array([0, 1, 0, 0, 0]), d, book, prev_ok)
    assert r["exec_off_book"].tolist() == [False, True, False, False, False]


def test_plausible_range_rule():
    from lobworld.world_models.data.lobster import PLAUSIBLE_FACTOR, plausible_range
    bid = np.array([[99.0], [np.nan], [100.0]])
    ask = np.array([[101.0], [102.0], [102.0]])
    assert plausible_range(np.array([1.0, 1e23]), bid, ask) == (100.5 / PLAUSIBLE_FACTOR, 100.5 * PLAUSIBLE_FACTOR)
    assert plausible_range(np.array([50.0, -1.0, np.nan, 70.0, 1e23])) == (7.0, 700.0)  # no book: messages
    lo, hi = plausible_range(np.array([np.nan]))
    assert np.isnan(lo) and np.isnan(hi)


def test_order_id_out_of_int64(tmp_path, lines):
    m, o = lines
    m[25] = set_field(m[25], 2, "1e23")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _raises(write_pair(tmp_path, m, o), "bad_order_id", line=26)
        assert load_lobster(write_pair(tmp_path, m, o), strict=False).attrs["dropped"] == {"bad_order_id": 1}


def test_renamed_file_time_outside_the_day(tmp_path, lines):
    m, o = lines
    m[-1] = set_field(m[-1], 0, "1e15")
    mp, op = tmp_path / "msgs.csv", tmp_path / "book.csv"
    mp.write_text("\n".join(m) + "\n")
    op.write_text("\n".join(o) + "\n")
    with pytest.raises(DataValidationError, match=r"line 200: \[time_outside_window\]"):
        load_lobster(mp, op, date="2012-06-21")


# ---- damaged files: each message names the real problem ------------------------------------------
def test_errors_are_lobworld_errors(tmp_path):
    from lobworld.errors import LobworldError
    from lobworld.world_models.data.errors import DataFileNotFoundError, DataNotAFileError
    assert issubclass(DataValidationError, LobworldError) and issubclass(DataValidationError, ValueError)
    with pytest.raises(DataFileNotFoundError) as ei:
        load_lobster(tmp_path / STEM.format("message"))
    assert isinstance(ei.value, LobworldError) and isinstance(ei.value, FileNotFoundError)
    assert ei.value.rule == "file_not_found" and "LOBSTER message file not found" in str(ei.value)
    assert issubclass(DataNotAFileError, IsADirectoryError)


def test_corrupt_gzip_is_not_called_truncated(tmp_path, lines):
    """Bytes overwritten in the middle of the deflate stream: an invalid block, in both modes."""
    msg, ob = sample_lobster_paths()
    p = tmp_path / msg.name
    shutil.copy(ob, tmp_path / ob.name)
    raw = bytearray(msg.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 16] = b"\xff" * 16  # this spot of the shipped hour gives "invalid block type"
    p.write_bytes(bytes(raw))
    e = _raises(p, "corrupt_gzip")
    assert "invalid block type" in str(e) and "truncated" not in str(e), str(e)
    with pytest.raises(DataValidationError) as ei:
        load_lobster(p, strict=False)
    assert ei.value.rule == "corrupt_gzip"  # not "empty_file": nothing can be salvaged safely


def test_gzip_crc_mismatch(tmp_path, lines):
    """One byte flipped inside a Huffman block: the data decodes, but to other bytes."""
    p = write_pair(tmp_path, *lines)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    p.write_bytes(bytes(raw))
    with pytest.raises(DataValidationError) as ei:
        load_lobster(p, strict=False)
    assert ei.value.rule == "corrupt_gzip" and "incorrect data check" in str(ei.value), str(ei.value)


def test_gzip_cut_before_first_line(tmp_path, lines):
    p = write_pair(tmp_path, *lines)
    p.write_bytes(p.read_bytes()[:12])
    for strict in (True, False):
        with pytest.raises(DataValidationError) as ei:
            load_lobster(p, strict=strict)
        assert ei.value.rule == "truncated_file", str(ei.value)


def test_plain_csv_cut_mid_line(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o, gz=False)
    data = p.read_bytes()
    p.write_bytes(data[: data.rfind(b",") + 1])  # the last line ends after its 5th comma
    e = _raises(p, "truncated_file", line=N)
    assert "ends mid-line" in str(e) and "nan_value" not in str(e)
    df = load_lobster(p, strict=False)
    assert len(df) == N - 1 and df.attrs["dropped"] == {"truncated_file": 1}
    # a complete last line without a line end is fine
    p.write_bytes(data.rstrip(b"\n"))
    assert len(load_lobster(p)) == N


def test_orderbook_cut_mid_number(tmp_path, lines):
    m, o = lines
    p = write_pair(tmp_path, m, o, gz=False)
    ob = p.with_name(p.name.replace("message", "orderbook"))
    data = ob.read_bytes()
    ob.write_bytes(data[:-40])  # inside the last line's 36th-40th fields
    with pytest.raises(DataValidationError, match=r"line 200: \[truncated_file\].*orderbook file ends mid-line"):
        load_lobster(p)


def test_directory_given_as_a_file(tmp_path, lines):
    d = tmp_path / STEM.format("message")
    d.mkdir()
    e = _raises(d, "not_a_file")
    assert "is a directory" in str(e) and "not found" not in str(e)
    assert isinstance(e, IsADirectoryError)
    (tmp_path / "x").mkdir()
    p = write_pair(tmp_path / "x", *lines)
    with pytest.raises(DataValidationError, match=r"orderbook path is a directory"):
        load_lobster(p, tmp_path)


def test_non_numeric_names_field(tmp_path, lines):
    m, o = lines
    o[7] = set_field(o[7], 5, "12x")  # ask_sz_2
    e = _raises(write_pair(tmp_path, m, o), "non_numeric", line=8)
    assert "field 6 (ask_sz_2)" in str(e) and "'12x'" in str(e)
    m2, o2 = slice_lines(N)
    m2[3] = set_field(m2[3], 3, "ten")
    e = _raises(write_pair(tmp_path, m2, o2), "non_numeric", line=4)
    assert "field 4 (size)" in str(e)


def test_nan_value_names_field(tmp_path, lines):
    m, o = lines
    m[30] = set_field(m[30], 3, "")
    e = _raises(write_pair(tmp_path, m, o), "nan_value", line=31)
    assert "field 4 (size)" in str(e)


def test_parquet_path_errors(tmp_path):
    from lobworld.world_models.data import load_parquet
    from lobworld.world_models.data.errors import DataFileNotFoundError, DataNotAFileError
    with pytest.raises(DataNotAFileError, match="Parquet path is a directory"):
        load_parquet(tmp_path)
    with pytest.raises(DataFileNotFoundError, match="Parquet file not found"):
        load_parquet(tmp_path / "x.parquet")
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match=r"\[not_parquet\]"):
        load_parquet(tmp_path / "x.parquet")


def test_errors_pickle(tmp_path):
    import pickle
    from lobworld.world_models.data.errors import DataNotAFileError
    for e in (DataValidationError("f.csv", "crossed_book", "best bid above best ask", row=7),
              DataNotAFileError(tmp_path, "not_a_file", "LOBSTER message path is a directory, not a file")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        assert (back.path, back.rule, back.detail, back.row) == (e.path, e.rule, e.detail, e.row)


def test_argument_errors_of_the_table_helpers_are_data_errors():
    """Tables without a book, unknown event names and a bad MBO depth: DataValidationError
    (a LobworldError, so the CLI prints one line) with the rule and the offending value."""
    import pandas as pd

    from lobworld.errors import LobworldError
    from lobworld.world_models.data.mbo_book import replay_mbo
    from lobworld.world_models.data.schema import event_codes, infer_levels

    with pytest.raises(DataValidationError, match=r"\[no_book_columns\].*bid_px_1") as e:
        infer_levels(pd.DataFrame({"time": [1.0]}))
    assert isinstance(e.value, LobworldError) and e.value.rule == "no_book_columns"
    with pytest.raises(DataValidationError, match=r"\[unknown_event\].*'teleport' \(row 1 "):
        event_codes(pd.DataFrame({"event": ["submit", "teleport"]}))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(DataValidationError, match=r"\[bad_levels\].*levels must be an int >= 1"):
            replay_mbo(np.array(["A"]), np.array(["B"]), np.array([1], np.int64), np.array([1]),
                       np.array([1]), levels=bad)

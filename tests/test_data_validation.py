"""Validation: every rule triggered by a deliberately broken copy of the shipped slice."""

import gzip
import logging

import pytest

from _data_helpers import STEM, set_field, slice_lines, write_pair
from lobworld.world_models.data import DataValidationError, load_lobster

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

"""Fast, checked reading of headerless numeric CSV files (plain or gzip)."""

from __future__ import annotations

import gzip
import io
import pathlib
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from lobworld.world_models.data.errors import DataValidationError, require_file


@dataclass
class RawCSV:
    """A parsed numeric CSV: ``values`` (rows, ncols) float64 for the good lines,
    ``lines`` their 1-based line numbers, ``n_lines`` lines in the file,
    ``bad_lines`` malformed lines (wrong field count), ``truncated`` whether the
    compressed stream was cut short (its partial last line is dropped)."""

    values: np.ndarray
    lines: np.ndarray
    n_lines: int
    bad_lines: list[int]
    truncated: bool


GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: pathlib.Path, *, strict: bool, what: str = "data") -> tuple[bytes, bool]:
    """Decompressed file content and whether a gzip stream was cut short.

    A ``.gz`` file whose stream ends early (a truncated copy) raises
    ``truncated_file`` with ``strict=True``; with ``strict=False`` the complete
    lines decoded before the cut are returned (everything deflate decoded before
    the cut is intact). A stream that is damaged inside (an invalid deflate block,
    or a CRC / length mismatch at the end) raises ``corrupt_gzip`` in both modes:
    which rows are damaged cannot be known, so there is nothing safe to drop.
    A ``.gz`` name on data that is not gzip raises ``not_gzip``.
    """
    raw = path.read_bytes()
    if not path.name.endswith(".gz"):
        return raw, False
    if not raw.startswith(GZIP_MAGIC):
        raise DataValidationError(path, "not_gzip", f"{what} file ends in .gz but is not gzip data "
                                  f"(first bytes {raw[:4]!r})")
    d = zlib.decompressobj(wbits=31)  # gzip wrapper: zlib checks the CRC-32 and length trailer
    out: list[bytes] = []
    chunk = 1 << 20
    try:
        for i in range(0, len(raw), chunk):
            out.append(d.decompress(raw[i:i + chunk]))
            if d.eof:
                break
    except zlib.error as exc:
        done = b"".join(out)
        raise DataValidationError(
            path, "corrupt_gzip",
            f"{what} gzip stream is corrupt ({exc}) after {len(done)} decompressed bytes "
            f"(about line {_line_at(done)}); the file is damaged, not merely cut short, and "
            "strict=False cannot repair it (which rows are wrong cannot be known): "
            "re-download or re-extract it") from None
    data = b"".join(out)
    if not d.eof:
        if strict:
            raise DataValidationError(
                path, "truncated_file",
                f"{what} gzip stream is cut short after {len(data)} decompressed bytes (about line "
                f"{_line_at(data)}); the file is truncated (load with strict=False to keep the "
                "complete lines before the cut)")
        cut = data.rfind(b"\n")
        return data[: cut + 1], True
    if d.unused_data.strip(b"\0"):  # further gzip members (concatenated .gz files)
        try:
            return gzip.decompress(raw), False
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataValidationError(path, "corrupt_gzip",
                                      f"{what} file: data after the first gzip member is not a valid "
                                      f"gzip member ({exc})") from None
    return data, False


def _line_at(data: bytes) -> int:
    """1-based line number of the byte just after ``data``."""
    return data.count(b"\n") + 1


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def read_numeric_csv(path, ncols: int | None, *, strict: bool, what: str,
                     field_names=None) -> RawCSV:
    """Read a headerless numeric CSV. ``ncols`` None: take it from the first line.

    ``field_names(i)`` (optional) names field ``i`` (0-based) in error messages.
    A last line without a line end that is incomplete (wrong field count, an empty
    or non-numeric field) means the file was cut mid-line: ``truncated_file``
    (``strict=False`` drops that line and marks the result ``truncated``).
    """
    path = require_file(path, what)
    data, truncated = read_bytes(path, strict=strict, what=what)
    if not data.strip():
        if truncated:
            raise DataValidationError(path, "truncated_file", f"{what} gzip stream is cut short "
                                      "before the end of its first line: no complete row to keep")
        raise DataValidationError(path, "empty_file", f"{what} file has no rows")
    first = data[: data.find(b"\n") if b"\n" in data else len(data)]
    got = first.count(b",") + 1
    if ncols is None:
        ncols = got
    if got != ncols:
        raise DataValidationError(path, "column_count",
                                  f"{what} file has {got} columns, expected {ncols}", row=1)
    if not data.endswith(b"\n"):
        start = data.rfind(b"\n") + 1
        fields = data[start:].split(b",")
        if len(fields) != ncols or not all(f.strip() and _is_number(f) for f in fields):
            n_last = data.count(b"\n") + 1
            if strict or start == 0:
                raise DataValidationError(
                    path, "truncated_file",
                    f"{what} file ends mid-line: its last line has no line end and is incomplete "
                    f"({len(fields)} of {ncols} fields, last {data[start:][-20:].decode(errors='replace')!r}); "
                    "the file is cut short (load with strict=False to drop that line)", row=n_last)
            data, truncated = data[:start], True
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    bad: list[int] = []

    def handler(row):
        bad.append(int(row.number))
        return "skip"

    names = [f"c{i}" for i in range(ncols)]
    read_opts = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 24)
    conv = pacsv.ConvertOptions(column_types={n: pa.float64() for n in names})
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=read_opts,
                               parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
                               convert_options=conv)
    except pa.ArrowInvalid as exc:  # a non-numeric field: find its line (slow path)
        raise _locate_conversion_error(path, data, names, exc, what, field_names) from None
    if bad and strict:
        raise DataValidationError(path, "malformed_row",
                                  f"{what} line has the wrong number of fields (expected {ncols}); "
                                  f"{len(bad)} such lines (a corrupt file?)", row=bad[0])
    values = np.column_stack([table.column(i).to_numpy(zero_copy_only=False)
                              for i in range(ncols)]) if table.num_rows else np.empty((0, ncols))
    lines = np.setdiff1d(np.arange(1, n_lines + 1), np.asarray(bad, dtype=np.int64), assume_unique=True)
    if len(lines) != len(values):
        raise DataValidationError(path, "malformed_row",
                                  f"{what} file: could not map rows to lines ({len(values)} rows, "
                                  f"{len(lines)} lines); blank lines?")
    return RawCSV(np.ascontiguousarray(values), lines, n_lines, bad, truncated)


def _locate_conversion_error(path, data: bytes, names, exc, what: str, field_names=None) -> DataValidationError:
    import pandas as pd

    skipped: list[int] = []

    def handler(row):
        skipped.append(int(row.number))
        return "skip"

    table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(column_names=names),
                           parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
                           convert_options=pacsv.ConvertOptions(
                               column_types={n: pa.string() for n in names}))
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    lines = np.setdiff1d(np.arange(1, n_lines + 1), np.asarray(skipped, dtype=np.int64), assume_unique=True)
    best: tuple[int, int, str] | None = None  # (row index, field, value): the earliest bad field
    for i in range(len(names)):
        col = table.column(i).to_pandas()
        num = pd.to_numeric(col, errors="coerce")
        badm = (num.isna() & col.notna() & (col.str.strip() != "")).to_numpy()
        if badm.any():
            j = int(np.argmax(badm))
            if best is None or j < best[0]:
                best = (j, i, col.iloc[j])
    if best is None:
        return DataValidationError(path, "non_numeric", f"{what} file: could not parse numbers ({exc})")
    j, i, val = best
    label = f"field {i + 1}" + (f" ({field_names(i)})" if field_names else "")
    row = int(lines[j]) if j < len(lines) else j + 1
    return DataValidationError(path, "non_numeric", f"{what} {label} is not a number: {val!r}", row=row)

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

from lobworld.world_models.data.errors import DataValidationError


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


def read_bytes(path: pathlib.Path, *, strict: bool) -> tuple[bytes, bool]:
    """Decompressed file content and whether a gzip stream was cut short."""
    raw = path.read_bytes()
    if not path.name.endswith(".gz"):
        return raw, False
    try:
        return gzip.decompress(raw), False
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if isinstance(exc, gzip.BadGzipFile) or not raw.startswith(b"\x1f\x8b"):
            raise DataValidationError(path, "not_gzip", f"file ends in .gz but is not gzip data ({exc})")
        if strict:
            raise DataValidationError(path, "truncated_file",
                                      f"gzip stream is cut short ({exc}); the file is truncated") from None
        d = zlib.decompressobj(wbits=31)
        try:
            data = d.decompress(raw)
        except zlib.error:
            data = b""
        cut = data.rfind(b"\n")
        return data[: cut + 1], True


def read_numeric_csv(path, ncols: int | None, *, strict: bool, what: str) -> RawCSV:
    """Read a headerless numeric CSV. ``ncols`` None: take it from the first line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    data, truncated = read_bytes(path, strict=strict)
    if not data.strip():
        raise DataValidationError(path, "empty_file", f"{what} file has no rows")
    first = data[: data.find(b"\n") if b"\n" in data else len(data)]
    got = first.count(b",") + 1
    if ncols is None:
        ncols = got
    elif got != ncols:
        raise DataValidationError(path, "column_count",
                                  f"{what} file has {got} columns, expected {ncols}", row=1)
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
        raise _locate_conversion_error(path, data, names, exc) from None
    if bad and strict:
        raise DataValidationError(path, "malformed_row",
                                  f"{what} line has the wrong number of fields (expected {ncols}); "
                                  f"{len(bad)} such lines (a truncated or corrupt file?)", row=bad[0])
    values = np.column_stack([table.column(i).to_numpy(zero_copy_only=False)
                              for i in range(ncols)]) if table.num_rows else np.empty((0, ncols))
    lines = np.setdiff1d(np.arange(1, n_lines + 1), np.asarray(bad, dtype=np.int64), assume_unique=True)
    if len(lines) != len(values):
        raise DataValidationError(path, "malformed_row",
                                  f"{what} file: could not map rows to lines ({len(values)} rows, "
                                  f"{len(lines)} lines); blank lines?")
    return RawCSV(np.ascontiguousarray(values), lines, n_lines, bad, truncated)


def _locate_conversion_error(path, data: bytes, names, exc) -> DataValidationError:
    import pandas as pd

    table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(column_names=names),
                           parse_options=pacsv.ParseOptions(invalid_row_handler=lambda r: "skip"),
                           convert_options=pacsv.ConvertOptions(
                               column_types={n: pa.string() for n in names}))
    for i, n in enumerate(names):
        col = table.column(i).to_pandas()
        num = pd.to_numeric(col, errors="coerce")
        badm = num.isna() & col.notna() & (col.str.strip() != "")
        if badm.any():
            j = int(np.argmax(badm.to_numpy()))
            return DataValidationError(path, "non_numeric",
                                       f"field {i + 1} is not a number: {col.iloc[j]!r}", row=j + 1)
    return DataValidationError(path, "non_numeric", f"could not parse numbers: {exc}")

"""Parquet round trip of canonical tables (attrs included)."""

from __future__ import annotations

import json
import pathlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lobworld.world_models.data.errors import DataValidationError, require_file

_ATTRS_KEY = b"lobworld.attrs"


def save_parquet(df: pd.DataFrame, path) -> pathlib.Path:
    """Write ``df`` (dtypes, categories, tz and ``df.attrs``) to a Parquet file.

    ``attrs`` must be JSON-serialisable (the loaders' attrs are); they are
    stored under the schema metadata key ``lobworld.attrs``.
    """
    path = pathlib.Path(path)
    try:
        attrs = json.dumps(df.attrs)
    except TypeError as exc:
        raise DataValidationError(path, "attrs_not_json",
                                  f"save_parquet: df.attrs is not JSON-serialisable ({exc})") from None
    table = pa.Table.from_pandas(df, preserve_index=not isinstance(df.index, pd.RangeIndex))
    meta = dict(table.schema.metadata or {})
    meta[_ATTRS_KEY] = attrs.encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def load_parquet(path) -> pd.DataFrame:
    """Read a file written by :func:`save_parquet`; ``attrs`` restored."""
    path = require_file(path, "Parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(path, "not_parquet", f"cannot read as Parquet ({exc})") from None
    df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(_ATTRS_KEY)
    df.attrs = json.loads(raw) if raw else {}
    return df

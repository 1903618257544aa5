"""Market-data layer: loaders into the canonical event table, validation, bars,
features, Parquet I/O.

Public API::

    load_lobster(message_path, orderbook_path=None, *, strict=True) -> DataFrame
    load_databento(path, *, strict=True) -> DataFrame           # .dbn / .dbn.zst / .csv
    sample_lobster_paths() -> (message_path, orderbook_path)     # shipped GOOG hour
    make_bars(events, freq="1min" | events_per_bar=N) -> DataFrame
    save_parquet(df, path) / load_parquet(path)
    DataValidationError

The canonical table is documented in :mod:`lobworld.world_models.data.schema`.
"""

from lobworld.world_models.data.errors import DataValidationError
from lobworld.world_models.data.lobster import (
    LobsterName, load_lobster, parse_lobster_name, sample_lobster_paths,
)
from lobworld.world_models.data.schema import EVENT_CATEGORIES, book_columns, infer_levels

__all__ = [
    "DataValidationError", "EVENT_CATEGORIES", "LobsterName", "book_columns", "infer_levels",
    "load_lobster", "parse_lobster_name", "sample_lobster_paths",
]

try:  # optional modules, filled in as they land
    from lobworld.world_models.data.bars import make_bars  # noqa: F401
    __all__.append("make_bars")
except ImportError:  # pragma: no cover
    pass

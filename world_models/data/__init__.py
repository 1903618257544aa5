"""Market-data layer: loaders into the canonical event table, validation, bars,
features, Parquet I/O.

Public API::

    load_lobster(message_path, orderbook_path=None, *, strict=True) -> DataFrame
    load_lobster_messages(message_path, *, strict=True) -> DataFrame   # message file only
    load_databento(path, *, strict=True) -> DataFrame           # .dbn / .dbn.zst / .csv
    sample_lobster_paths() -> (message_path, orderbook_path)     # shipped GOOG hour
    make_bars(events, freq="1min" | events_per_bar=N) -> DataFrame
    save_parquet(df, path) / load_parquet(path)
    DataValidationError

The canonical table is documented in :mod:`lobworld.world_models.data.schema`.
"""

from lobworld.world_models.data.errors import DataValidationError
from lobworld.world_models.data.lobster import (
    LobsterName, load_lobster, load_lobster_messages, parse_lobster_name, sample_lobster_paths,
)
from lobworld.world_models.data.schema import EVENT_CATEGORIES, book_columns, infer_levels
from lobworld.world_models.data.bars import make_bars
from lobworld.world_models.data.databento import load_databento
from lobworld.world_models.data.features import (
    add_features, amihud_illiquidity, depth_imbalance, kyle_lambda, micro_price, ofi_events,
    realized_volatility, trade_arrival_rate,
)
from lobworld.world_models.data.io import load_parquet, save_parquet

__all__ = [
    "DataValidationError", "EVENT_CATEGORIES", "LobsterName", "add_features", "amihud_illiquidity",
    "book_columns", "depth_imbalance", "infer_levels", "kyle_lambda", "load_databento", "load_lobster",
    "load_lobster_messages", "load_parquet", "make_bars", "micro_price", "ofi_events", "parse_lobster_name",
    "realized_volatility", "sample_lobster_paths", "save_parquet", "trade_arrival_rate",
]

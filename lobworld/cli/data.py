"""``lobworld data summary`` and ``lobworld demo``."""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import pandas as pd

from lobworld.world_models.data.errors import DataValidationError
from lobworld.world_models.data.schema import EXEC_EVENTS


def load_any(path, orderbook=None, *, strict: bool = True, date=None, ticker=None) -> pd.DataFrame:
    """Load a LOBSTER pair (by file-name convention, or any name with ``orderbook`` and
    ``date``) or a Databento file (.dbn, .dbn.zst, .csv)."""
    from lobworld.world_models.data.databento import load_databento
    from lobworld.world_models.data.lobster import load_lobster, parse_lobster_name

    path = pathlib.Path(path)
    try:
        parse_lobster_name(path)
        return load_lobster(path, orderbook, strict=strict)
    except DataValidationError as exc:
        if exc.rule != "malformed_file_name":
            raise
        if orderbook is not None:
            if date is None:
                raise DataValidationError(path, "malformed_file_name",
                                          "not a LOBSTER file name: pass --date (and --ticker) to load it") from None
            return load_lobster(path, orderbook, strict=strict, date=date, ticker=ticker)
    if path.name.lower().endswith((".dbn", ".dbn.zst", ".csv")):
        return load_databento(path, strict=strict)
    raise DataValidationError(path, "malformed_file_name",
                              "neither a LOBSTER file name nor a Databento .dbn/.dbn.zst/.csv file")


def summarize(events: pd.DataFrame, freq: str = "1min") -> dict:
    """A JSON-ready summary of a canonical event table."""
    from lobworld.world_models.data.bars import make_bars

    counts = {k: int(v) for k, v in events["event"].value_counts(sort=False).items() if v}
    is_exec = events["event"].isin(list(EXEC_EVENTS)).to_numpy()
    out = {
        "ticker": events.attrs.get("ticker"), "date": events.attrs.get("date"),
        "source": events.attrs.get("source"), "levels": events.attrs.get("levels"),
        "events": int(len(events)), "event_counts": counts,
        "trades": int(is_exec.sum()), "volume": float(events["size"].to_numpy()[is_exec].sum()),
        "start": str(events["ts"].iloc[0]) if len(events) else None,
        "end": str(events["ts"].iloc[-1]) if len(events) else None,
        "dropped": events.attrs.get("dropped", {}),
    }
    if "bid_px_1" in events:
        mid = 0.5 * (events["bid_px_1"] + events["ask_px_1"])
        spread = events["ask_px_1"] - events["bid_px_1"]
        out.update({"mid_min": float(mid.min()), "mid_max": float(mid.max()),
                    "mean_spread": float(spread.mean())})
        bars = make_bars(events, freq)
        out.update({"bars": int(len(bars)), "bar_freq": str(freq),
                    "mean_bar_volume": float(bars["volume"].mean()),
                    "rms_bar_mid_change": float(np.sqrt(np.mean(bars["mid_ret"] ** 2)))})
    return out


def _print_table(title: str, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_header=True)
    t.add_column("field")
    t.add_column("value", overflow="fold")
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:.4g}" if 0 < abs(v) < 0.1 else (f"{v:,.4f}" if abs(v) < 1e4 else f"{v:,.0f}")
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        t.add_row(k, str(v))
    Console().print(t)


def _cmd_summary(args) -> int:
    ev = load_any(args.path, args.orderbook, strict=not args.lenient, date=args.date, ticker=args.ticker)
    s = summarize(ev, args.freq)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        _print_table(f"{pathlib.Path(args.path).name}", s)
    return 0


def _cmd_demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lobworld.world_models.data.bars import make_bars
    from lobworld.world_models.data.features import add_features
    from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths

    t0 = time.perf_counter()
    ev = load_lobster(*sample_lobster_paths())
    bars = add_features(make_bars(ev, args.freq), window=args.window)
    elapsed = time.perf_counter() - t0
    s = summarize(ev, args.freq)
    s["load_and_featurise_s"] = round(elapsed, 3)
    s["mean_kyle_lambda_usd_per_share"] = float(bars["kyle_lambda"].mean())
    s["mean_trade_rate_per_s"] = float(bars["trade_rate"].mean())
    _print_table("lobworld demo: GOOG 2012-06-21 10:00-11:00 (free LOBSTER sample data, (c) LOBSTER)", s)

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    x = bars.index.tz_localize(None)
    ax[0].plot(x, bars["mid"], color="k", lw=1.2, label="mid (bar end)")
    ax[0].fill_between(x, bars["low"], bars["high"], color="0.8", label="mid range in bar")
    ax[0].plot(x, bars["micro_price"], color="tab:blue", lw=0.8, label="micro-price")
    ax[0].set_ylabel("USD")
    ax[0].legend(loc="best", fontsize=8)
    ax[1].step(x, bars["spread"] * 100, where="post", color="tab:orange")
    ax[1].set_ylabel("spread (cents)")
    ax[2].bar(x, bars["ofi_1"], width=pd.Timedelta(args.freq) * 0.8, color=np.where(bars["ofi_1"] >= 0, "tab:green", "tab:red"))
    ax2 = ax[2].twinx()
    ax2.plot(x, bars["ofi_trade"], color="k", lw=0.8)
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_ylabel("trade-sign OFI")
    ax[2].set_ylabel("level-1 OFI (shares)")
    ax[2].set_xlabel("New York time, 2012-06-21")
    fig.suptitle(f"GOOG, {args.freq} bars. Data: free LOBSTER sample (c) LOBSTER, lobsterdata.com")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out.resolve()}")
    return 0


def add_commands(sub) -> None:
    """Add ``data`` (with ``summary``) and ``demo`` to the ``lobworld`` CLI."""
    data = sub.add_parser("data", help="inspect market-data files (LOBSTER, Databento)")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    s = dsub.add_parser("summary", help="load a file into the canonical event table and summarise it")
    s.add_argument("path", help="LOBSTER message file, or Databento .dbn/.dbn.zst/.csv")
    s.add_argument("--orderbook", default=None, help="LOBSTER orderbook file (default: from the file name)")
    s.add_argument("--date", default=None, help="trading day YYYY-MM-DD of a renamed LOBSTER pair")
    s.add_argument("--ticker", default=None, help="ticker of a renamed LOBSTER pair")
    s.add_argument("--freq", default="1min", help="bar length for bar statistics (pandas offset, default 1min)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--lenient", action="store_true", help="drop bad rows (strict=False) instead of failing")
    s.set_defaults(func=_cmd_summary)
    d = sub.add_parser("demo", help="load the shipped GOOG hour, build bars and features, plot them")
    d.add_argument("--out", default="docs/demo_goog.png", help="PNG to write (default docs/demo_goog.png)")
    d.add_argument("--freq", default="1min", help="bar length (default 1min)")
    d.add_argument("--window", type=int, default=15, help="rolling window of the features, in bars")
    d.set_defaults(func=_cmd_demo)

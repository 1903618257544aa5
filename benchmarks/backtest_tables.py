"""The results tables of docs/backtest.md: execution baselines and market making on the real tape.

``python benchmarks/backtest_tables.py [--out DIR]`` loads the full GOOG L10 and AMZN L5 days of
``../shared/data/lobster`` and runs, per ticker:

* execution: buy and sell parent orders of 1% of the day's executed volume over 30 minutes
  (decisions every 10 s), back to back from 13:00 (the afternoon), every strategy, under the
  colocated and retail presets;
* market making: 30-minute windows back to back from 10:00, both strategies, all four latency
  presets (quotes of 100 shares re-placed every second; fixed_spread at mid -+ half the day's
  median spread, Avellaneda-Stoikov with k = 2 / median spread, gamma 1e-4, sigma measured on the
  30 minutes before each window).

Prints Markdown tables (means and paired 95% intervals across windows) and writes the per-env
CSVs into ``--out``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import pandas as pd

from lobworld.envs.replay import ReplayData
from lobworld.scenarios import backtest as bt

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
FILES = {"GOOG": "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz",
         "AMZN": "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"}


def _fmt(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


def execution_table(data: ReplayData, latencies=("colocated", "retail")) -> pd.DataFrame:
    adv = int(data.tape.size[(data.tape.type == 4) | (data.tape.type == 5)].sum())
    q = int(round(0.01 * adv))
    starts = bt.afternoon_starts(data, 1800.0, "13:00", "15:59")
    orders = [bt.ParentOrder(side, q, s, 1800.0, 10.0) for s in starts for side in ("buy", "sell")]
    t0 = time.perf_counter()
    res = bt.run_execution(data, orders, bt.EXECUTION_STRATEGIES, latencies)
    print(f"{data.name}: {len(res.table)} execution envs, {q} shares each, {time.perf_counter() - t0:.1f} s")
    tab = res.table
    tab["key"] = tab["start"].astype(str) + tab["side"]
    return tab


def summarize_execution(tab: pd.DataFrame) -> pd.DataFrame:
    g = tab.groupby(["strategy", "latency"], sort=False)
    s = g.agg(orders=("is_bps", "size"), is_bps=("is_bps", "mean"), is_sd=("is_bps", "std"),
              completion=("completion", "mean"), passive_frac=("passive_shares", "sum"),
              executed=("executed", "sum"), queue_wait_s=("avg_queue_wait_s", "mean")).reset_index()
    s["passive_frac"] = s["passive_frac"] / s["executed"]
    s["is_se"] = s["is_sd"] / np.sqrt(s["orders"])
    base = tab[tab["strategy"] == "twap"].set_index(["latency", "key"])["is_bps"]
    d = []
    for (st, lat), gg in tab.groupby(["strategy", "latency"], sort=False):
        x = gg.set_index(["latency", "key"])["is_bps"] - base
        x = x.dropna()
        d.append((x.mean(), 1.96 * x.std(ddof=1) / np.sqrt(len(x))))
    s["vs_twap"] = [a for a, _ in d]
    s["vs_twap_ci95"] = [b for _, b in d]
    return s.drop(columns=["executed", "is_sd"])


def round_trip_table(tab: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and latency: the cost of a window's buy and sell orders averaged
    (``(IS_buy + IS_sell) / 2``: the market's drift over the window cancels to first order),
    mean over windows with a 95% t interval, and the paired difference to twap."""
    from scipy import stats

    t = tab.copy()
    t["win"] = t["start"].astype(str)
    rt = t.groupby(["strategy", "latency", "win"])["is_bps"].mean().sort_index()
    out = []
    for (st, lat), g in rt.groupby(level=[0, 1], sort=False):
        x = g.droplevel([0, 1])
        d = x - rt.loc[("twap", lat)].reindex(x.index)
        n = len(x)
        q = stats.t.ppf(0.975, n - 1) / np.sqrt(n)
        out.append(dict(strategy=st, latency=lat, windows=n, cost_bps=x.mean(), ci95=q * x.std(ddof=1),
                        vs_twap=d.mean(), vs_twap_ci95=q * d.std(ddof=1)))
    return pd.DataFrame(out)


def mm_table(data: ReplayData, interval_s: float = 1.0, horizon_s: float = 1800.0) -> pd.DataFrame:
    sp = data.fpx[:, 1, 0] - data.fpx[:, 0, 0]
    med = float(np.median(sp[(data.fsz[:, 0, 0] > 0) & (data.fsz[:, 1, 0] > 0)]))
    params = bt.MarketMakingParams(half_spread_ticks=max(1.0, round(med / 2)), k=2.0 / med, interval_s=interval_s)
    starts = bt.afternoon_starts(data, horizon_s, "10:00", "15:59", step_s=1800.0)
    t0 = time.perf_counter()
    res = bt.run_market_making(data, starts, bt.MM_STRATEGIES, bt.LATENCY_PRESETS, horizon_s=horizon_s,
                               params=params)
    print(f"{data.name}: {len(res.table)} market-making envs (median spread {med:g} ticks, re-quote every "
          f"{interval_s:g} s, {horizon_s:g} s windows), "
          f"{time.perf_counter() - t0:.1f} s")
    return res.table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/backtest_tables")
    ap.add_argument("--tickers", default="GOOG,AMZN")
    ap.add_argument("--mm-interval", type=float, default=1.0, help="market making: seconds between re-quotes")
    ap.add_argument("--mm-horizon", type=float, default=1800.0, help="market making: window seconds")
    ap.add_argument("--skip-execution", action="store_true")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for tk in a.tickers.split(","):
        t0 = time.perf_counter()
        data = ReplayData.from_lobster(DATA / FILES[tk])
        print(f"{data.name}: loaded {data.n_rows} rows in {time.perf_counter() - t0:.1f} s")
        if not a.skip_execution:
            ex = execution_table(data)
            ex.to_csv(out / f"{tk}_execution.csv", index=False)
            print(_fmt(summarize_execution(ex)))
            print(_fmt(round_trip_table(ex)))
        mm = mm_table(data, a.mm_interval, a.mm_horizon)
        mm.to_csv(out / f"{tk}_market_making_{a.mm_interval:g}s.csv", index=False)
        for metric in ("pnl_usd", "bid_fills", "adverse_10s_ticks"):
            print(f"\n{tk} market making, {metric}")
            print(_fmt(bt.paired_latency_table(mm, metric)))
        agg = mm.groupby(["strategy", "latency"], sort=False)[
            ["pnl_usd", "bid_fills", "ask_fills", "max_abs_inventory", "adverse_1s_ticks", "adverse_10s_ticks",
             "markout_10s_ticks"]].mean().reset_index()
        print(_fmt(agg))


if __name__ == "__main__":
    main()

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


DEMO_ENV = "LOB-Execution-v0"
#: what ``lobworld demo`` writes into its folder (``--overwrite`` deletes these, and only these)
DEMO_ARTEFACTS = ("demo_goog.png", "data_summary.json", "agent", "report.md", "report.json", "comparison.txt",
                  "shortfall_distributions.png", "execution_trajectories.png", "inventory_paths.png",
                  "scenario_sensitivity.png", "latency_sensitivity.png")
SMOKE_NOTE = ("note: a PPO agent trained for {steps:,} steps in a couple of minutes is a smoke run of the pipeline, "
              "not a result; train for about 300,000 steps (lobworld train) before reading anything into its row")


def _plot_bars(bars: pd.DataFrame, freq: str, out: pathlib.Path) -> None:
    """The shipped hour's bars: mid with its range and the micro-price, spread, order-flow imbalance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    x = bars.index.tz_localize(None)
    ax[0].plot(x, bars["mid"], color="k", lw=1.2, label="mid (bar end)")
    ax[0].fill_between(x, bars["low"], bars["high"], color="0.8", label="mid range in bar")
    ax[0].plot(x, bars["micro_price"], color="tab:blue", lw=0.8, label="micro-price")
    ax[0].set_ylabel("USD")
    ax[0].legend(loc="best", fontsize=8)
    ax[1].step(x, bars["spread"] * 100, where="post", color="tab:orange")
    ax[1].set_ylabel("spread (cents)")
    ax[2].bar(x, bars["ofi_1"], width=pd.Timedelta(freq) * 0.8, color=np.where(bars["ofi_1"] >= 0, "tab:green", "tab:red"))
    ax2 = ax[2].twinx()
    ax2.plot(x, bars["ofi_trade"], color="k", lw=0.8)
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_ylabel("trade-sign OFI (-1 .. 1)")
    ax[2].set_ylabel("level-1 OFI (shares)")
    ax[2].set_xlabel("New York time, 2012-06-21")
    fig.suptitle(f"GOOG, {freq} bars (real data). Data: free LOBSTER sample (c) LOBSTER, lobsterdata.com", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _cmd_demo(args) -> int:
    """The product's main job on the shipped data and weights (see ``lobworld demo --help``)."""
    from lobworld.agents.config import load_config
    from lobworld.agents.training import train
    from lobworld.cli import CLIError
    from lobworld.cli._progress import compile_notice, progress
    from lobworld.scenarios.report import pre_trade_report
    from lobworld.world_models.data.bars import make_bars
    from lobworld.world_models.data.features import add_features
    from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths
    from lobworld.world_models.run_folder import claim_run_folder

    show = not args.no_progress
    out = pathlib.Path(args.out)
    if out.suffix.lower() == ".png":
        raise CLIError(f"--out {out}: lobworld demo writes a folder now (the report, its PNGs and the agent); "
                       "give a folder, e.g. docs/demo")
    t_all = time.perf_counter()
    with claim_run_folder(out, artefacts=DEMO_ARTEFACTS, overwrite=args.overwrite,
                          hint="pass --overwrite to replace it, or choose another --out"):
        # 1. the data: the shipped hour, bars and features, a summary and a plot
        with progress("[1/4] load the shipped GOOG hour, build bars", 3, enabled=show) as step:
            t0 = time.perf_counter()
            ev = load_lobster(*sample_lobster_paths())
            step("loaded")
            bars = add_features(make_bars(ev, args.freq), window=args.window)
            elapsed = time.perf_counter() - t0
            s = summarize(ev, args.freq)
            s["load_and_featurise_s"] = round(elapsed, 3)
            s["mean_kyle_lambda_usd_per_share"] = float(bars["kyle_lambda"].mean())
            s["mean_trade_rate_per_s"] = float(bars["trade_rate"].mean())
            step("bars")
            _plot_bars(bars, args.freq, out / "demo_goog.png")
            (out / "data_summary.json").write_text(json.dumps(s, indent=2, default=str))
            step("plotted")
        _print_table("lobworld demo: GOOG 2012-06-21 10:00-11:00 (free LOBSTER sample data, (c) LOBSTER)", s)
        # 2. a short PPO agent on the learned market (the id's registered one)
        compile_notice()
        cfg = load_config(DEMO_ENV, None, timesteps=args.timesteps, n_envs=args.n_envs, seed=args.seed,
                          progress_bar=show)
        cfg = cfg.replace(batch_size=min(cfg.batch_size, cfg.n_envs * cfg.n_steps), eval_freq=0, checkpoint_freq=0)
        print(f"[2/4] train PPO on {DEMO_ENV} (learned market, the id's registered one) for {cfg.timesteps:,} steps")
        res = train(cfg, out / "agent")
        print(f"      {res.num_timesteps:,} steps in {res.wall_s:.1f} s; model {res.model_path}")
        # 3 + 4. compare with TWAP, VWAP and Almgren-Chriss on common random paths; the pre-trade report
        strategies = ["twap", "vwap", "ac", str(res.model_path)]
        with progress(f"[3/4] {len(strategies)} strategies on {args.paths:,} common paths (learned market)", None,
                      enabled=show) as step:
            doc = pre_trade_report("sell", None, 30, args.risk_aversion, out, strategies=strategies,
                                   n_paths=args.paths, seed=args.seed, n_boot=args.boot, env_id=DEMO_ENV,
                                   progress=step)
        table = _comparison_table(doc, res.model_path)
        note = SMOKE_NOTE.format(steps=res.num_timesteps)
        (out / "comparison.txt").write_text(table + "\n" + note + "\n")
        print(table)
        print(note)
        with progress("[4/4] pre-trade report (Markdown + PNGs)", 1, enabled=show) as step:
            md = (out / "report.md").read_text()
            md += ("\n## The demo\n\n"
                   f"`lobworld demo` trained the `ppo` row ({res.model_path.relative_to(out)}) for "
                   f"{res.num_timesteps:,} steps: {note[6:]}. Its first stage loaded the shipped GOOG hour (real "
                   "LOBSTER data) and built one-minute bars:\n\n![GOOG bars](demo_goog.png)\n")
            (out / "report.md").write_text(md)
            step("written")
        print(f"wrote {(out / 'report.md').resolve()} and its PNGs in {time.perf_counter() - t_all:.0f} s")
    return 0


def _comparison_table(doc: dict, model: pathlib.Path) -> str:
    """The base scenario's strategies with their paired differences against TWAP (95% bootstrap CIs)."""
    res = doc["scenarios"]["normal"]
    bench = res["benchmark"]
    lines = [f"{doc['inputs']['env_id']}, {doc['market']} market: sell {doc['inputs']['quantity']:,.0f} shares "
             f"over {doc['inputs']['horizon_min']} minutes, {res['n_paths']:,} common paths (seeds "
             f"{res['seed']}..{res['seed'] + res['n_paths'] - 1}); {res['metric']} in bps, lower is better; "
             "simulated",
             f"{'strategy':<12}{'mean':>9}{'95% CI':>18}{'std':>9}{'compl.':>8}   diff vs {bench} "
             "[95% paired bootstrap CI]"]
    for name, s in res["strategies"].items():
        label = "ppo (demo)" if name == str(model) else name
        comp = "n/a" if s["completion_rate"] is None else f"{s['completion_rate']:.3f}"
        if s["diff_mean"] is None:
            diff = "benchmark"
        elif abs(s["diff_mean"]) < 1e-9 and max(map(abs, s["diff_ci95"])) < 1e-9:
            diff = f"0 (identical to {bench})"
        else:
            diff = f"{s['diff_mean']:+.3f} [{s['diff_ci95'][0]:+.3f}, {s['diff_ci95'][1]:+.3f}]"
        ci = f"{s['ci95'][0]:.2f}..{s['ci95'][1]:.2f}"
        lines.append(f"{label:<12}{s['mean']:9.3f}{ci:>18}{s['std']:9.3f}{comp:>8}   {diff}")
    if doc["ac_equals_twap"]:
        lines.append("ac: at risk aversion 0 Almgren-Chriss is TWAP exactly (identical rows); --risk-aversion > 0 "
                     "front-loads it")
    return "\n".join(lines)


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
    d = sub.add_parser("demo", help="the main job in about two minutes: data, a short PPO agent, baselines, report",
                       description="On the shipped data and weights: load the GOOG hour and build bars (summary, "
                                   "demo_goog.png); train a short PPO agent in LOB-Execution-v0 on the learned "
                                   "market (the id's registered market); compare it with TWAP, VWAP and "
                                   "Almgren-Chriss on common random paths (paired bootstrap CIs); write the "
                                   "pre-trade report (report.md + PNGs) into --out. A couple of minutes of PPO is "
                                   "a smoke run of the pipeline, not a result.")
    d.add_argument("--out", default="docs/demo", help="output folder (default docs/demo); an existing non-empty "
                   "folder is refused unless --overwrite")
    d.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    d.add_argument("--timesteps", type=int, default=65536, help="PPO env steps (default 65536: a smoke run)")
    d.add_argument("--n-envs", type=int, default=None, help="envs in the training batch (default: the shipped "
                   "execution config's)")
    d.add_argument("--paths", type=int, default=2000, help="common market paths per strategy (default 2000)")
    d.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the paired CIs (default 1000)")
    d.add_argument("--risk-aversion", type=float, default=0.5,
                   help="R of the report's mean + R * std (default 0.5: Almgren-Chriss then front-loads; at 0 it "
                        "is TWAP exactly)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--freq", default="1min", help="bar length (default 1min)")
    d.add_argument("--window", type=int, default=15, help="rolling window of the features, in bars")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

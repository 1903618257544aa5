"""``lobworld backtest``: execution and market-making baselines on a real LOBSTER window.

The strategies run through the event-level book engine (:mod:`lobworld.scenarios.backtest`,
``docs/backtest.md``): the agent's orders wait in the real queues of the tape, with the latency
preset's delays. Writes ``summary.md``, ``summary.json``, ``results.csv`` and PNGs into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

from lobworld.cli import CLIError

__all__ = ["add_commands"]

_EXEC_ENV = "LOB-Execution-v0"
_MM_ENV = "LOB-MarketMaking-v0"
_ARTEFACTS = ("summary.md", "summary.json", "results.csv", "plots")


def _strategies(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise CLIError("--strategy: give at least one strategy name")
    return out


def _latencies(text: str) -> list[str]:
    from lobworld.envs.latency import get_latency_scenario
    from lobworld.scenarios.backtest import LATENCY_PRESETS

    out = list(LATENCY_PRESETS) if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    for name in out:
        get_latency_scenario(name)  # an unknown name raises, listing the known ones
    return out


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def _records(df) -> list[dict]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _md_table(df, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        cells = []
        for v in r:
            if isinstance(v, float):
                cells.append("nan" if not math.isfinite(v) else format(v, floatfmt))
            elif hasattr(v, "strftime"):
                cells.append(v.strftime("%H:%M"))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load(path: str):
    from lobworld.envs.replay import ReplayData

    p = pathlib.Path(path)
    if p.is_dir():
        found = sorted(p.glob("*_message_*.csv*"))
        if len(found) != 1:
            raise CLIError(f"--data: {p} holds {len(found)} LOBSTER message files; name one")
        p = found[0]
    return ReplayData.from_lobster(p)


def _cmd_backtest(args: argparse.Namespace) -> int:
    from lobworld.scenarios import backtest as bt
    from lobworld.world_models.run_folder import atomic_write_text, claim_run_folder

    if args.env not in (_EXEC_ENV, _MM_ENV):
        raise CLIError(f"--env: backtests exist for {_EXEC_ENV} and {_MM_ENV}, not {args.env}")
    if not (args.horizon_min > 0):
        raise CLIError(f"--horizon-min must be > 0, got {args.horizon_min}")
    strategies = _strategies(args.strategy)
    known = bt.EXECUTION_STRATEGIES if args.env == _EXEC_ENV else bt.MM_STRATEGIES
    for s in strategies:
        if s not in known:
            raise bt.UnknownStrategyError(f"--strategy: {s!r} is not a {args.env} backtest strategy; "
                                          f"one of {', '.join(known)}")
    lats = _latencies(args.latency)
    if args.env == _EXEC_ENV:
        if args.side is None or args.quantity is None:
            raise CLIError(f"--side and --quantity are required for {_EXEC_ENV}")
        if args.quantity <= 0:
            raise bt.OrderSizeError(f"--quantity must be > 0 shares, got {args.quantity}")
    if args.size is not None and args.size <= 0:
        raise bt.OrderSizeError(f"--size must be > 0 shares, got {args.size}")
    horizon_s = 60.0 * args.horizon_min
    with claim_run_folder(args.out, artefacts=_ARTEFACTS, overwrite=args.overwrite) as out:
        data = _load(args.data)  # after the folder check: a refused run loads nothing
        date = data.name.split()[1] if len(data.name.split()) > 1 else None
        starts = [bt.parse_time(s, date) for s in args.start.split(",")]
        plots = out / "plots"
        plots.mkdir(exist_ok=True)
        if args.env == _EXEC_ENV:
            params = bt.ExecutionParams(pov_rate=args.pov_rate)
            orders = [bt.ParentOrder(args.side, int(args.quantity), s, horizon_s, args.interval_s or 10.0)
                      for s in starts]
            res = bt.run_execution(data, orders, strategies, lats, params=params, seed=args.seed)
            tab = res.table
            for i, r in tab.iterrows():
                bt.plot_execution(res, i, plots / f"{r['strategy']}_{r['latency']}_{r['start']:%H%M}.png")
            cols = ["strategy", "latency", "start", "executed", "completion", "is_bps", "passive_shares",
                    "aggressive_shares", "avg_queue_wait_s"]
            title = (f"{data.name}: {args.side} {args.quantity} shares over {args.horizon_min:g} min, "
                     f"decisions every {orders[0].interval_s:g} s")
            extra = ""
        else:
            kw = {}
            if args.size is not None:
                kw["size"] = int(args.size)
            if args.interval_s is not None:
                kw["interval_s"] = float(args.interval_s)
            if args.half_spread_ticks is not None:
                kw["half_spread_ticks"] = float(args.half_spread_ticks)
            params = bt.MarketMakingParams(**kw)
            res = bt.run_market_making(data, starts, strategies, lats, horizon_s=horizon_s, params=params,
                                       seed=args.seed)
            tab = res.table
            for (s, st), g in tab.groupby(["strategy", "start"], sort=False):
                bt.plot_market_making(res, list(g.index), plots / f"{s}_{st:%H%M}.png")
            cols = ["strategy", "latency", "start", "pnl_usd", "bid_fills", "ask_fills", "final_position",
                    "max_abs_inventory", "adverse_1s_ticks", "adverse_10s_ticks"]
            title = f"{data.name}: market making over {args.horizon_min:g} min windows, quote {params.size} shares"
            pair = bt.paired_latency_table(tab, base=lats[0]) if len(lats) > 1 else None
            extra = ("\n\n## PnL paired across windows (difference to " + lats[0] + ", USD, 95% t interval)\n\n"
                     + _md_table(pair)) if pair is not None else ""
        tab.to_csv(out / "results.csv", index=False)
        md = (f"# Backtest on the real tape\n\n{title}. Replay: the tape does not react to the agent "
              f"(docs/backtest.md).\n\n" + _md_table(tab[cols]) + extra + "\n")
        atomic_write_text(out / "summary.md", md)
        atomic_write_text(out / "summary.json", json.dumps(
            {"data": data.name, "env": args.env, "strategies": strategies, "latency": lats,
             "horizon_min": args.horizon_min, "seed": args.seed, "results": _records(tab)}, indent=1))
    if not args.quiet:
        print(md)
        print(f"wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from lobworld.scenarios.backtest import EXECUTION_STRATEGIES, MM_STRATEGIES

    p = sub.add_parser(
        "backtest", help="run execution / market-making baselines on a real LOBSTER window (event level)",
        description="Replays a real LOBSTER window through the event-level book engine with the strategy's "
                    "orders in the real queues and the latency preset's delays; the tape does not react to "
                    "the agent. Writes summary.md, summary.json, results.csv and plots/ into --out.")
    p.add_argument("--data", required=True, help="LOBSTER message file (its orderbook file beside it), or a "
                   "folder with one; level-1 files work (the book is as deep as the file)")
    p.add_argument("--env", default=_EXEC_ENV, choices=(_EXEC_ENV, _MM_ENV), metavar="ENV_ID",
                   help=f"{_EXEC_ENV} (default) or {_MM_ENV}")
    p.add_argument("--strategy", required=True,
                   help=f"comma-separated; execution: {', '.join(EXECUTION_STRATEGIES)}; market making: "
                        f"{', '.join(MM_STRATEGIES)}")
    p.add_argument("--side", choices=("buy", "sell"), default=None, help="parent order side (execution)")
    p.add_argument("--quantity", type=int, default=None, help="parent order shares (execution)")
    p.add_argument("--start", required=True, help="window start(s), exchange time, e.g. 2012-06-21T14:00 "
                   "(comma-separated for several windows; HH:MM uses the file's date)")
    p.add_argument("--horizon-min", type=float, default=30.0, help="window length in minutes (default 30)")
    p.add_argument("--interval-s", type=float, default=None,
                   help="seconds between decisions (default 10 for execution, 1 for market making)")
    p.add_argument("--latency", default="cloud", help="latency preset(s), comma-separated, or 'all' "
                   "(colocated, proximity, cloud, retail); default cloud")
    p.add_argument("--pov-rate", type=float, default=0.25, help="pov participation (default 0.25)")
    p.add_argument("--size", type=int, default=None, help="market making: quote size in shares (default 100)")
    p.add_argument("--half-spread-ticks", type=float, default=None,
                   help="fixed_spread: quotes at mid -+ this many ticks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (refused if it holds a run, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_backtest)

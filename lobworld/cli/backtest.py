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

    return ReplayData.from_lobster(_one_message_file(path))


def _cmd_backtest(args: argparse.Namespace) -> int:
    from lobworld.scenarios import backtest as bt
    from lobworld.world_models.run_folder import atomic_write_text, claim_run_folder

    if args.world is not None and args.world != "replay" and (args.sim_vs_real or args.model is None):
        raise CLIError(f"--world applies to a {bt.TICK_MM_ENV} model (--model); strategy backtests run on the tape, "
                       "and --sim-vs-real compares the worlds with --worlds")
    if args.sim_vs_real:
        return _cmd_sim_vs_real(args)
    if args.model is not None:
        return _cmd_model(args)
    if args.paths is not None:
        raise CLIError("--paths applies to --sim-vs-real and to a market-making --model with --world; "
                       "a strategy backtest has one path, the tape")
    if args.env is None:
        args.env = _EXEC_ENV
    if args.strategy is None or args.start is None:
        raise CLIError("--strategy and --start are required (unless --sim-vs-real)")
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


def _starts(text: str, data) -> list[int]:
    from lobworld.scenarios import backtest as bt

    date = data.name.split()[1] if len(data.name.split()) > 1 else None
    return [bt.parse_time(s.strip(), date) for s in text.split(",") if s.strip()]


def _cmd_model(args: argparse.Namespace) -> int:
    """``--model RUN_DIR``: a trained LOB-TickExecution-v0 or LOB-TickMarketMaking-v0 model (the env id
    of its run record; ``--env`` for a model without one) and the baselines on the tape's windows."""
    from lobworld.scenarios import backtest as bt
    from lobworld.world_models.run_folder import atomic_write_text, claim_run_folder

    env_id = bt.model_env_id(args.model)
    if env_id is not None and args.env is not None and args.env != env_id:
        raise CLIError(f"--env: the model {args.model} was trained on {env_id} (its run record), not {args.env}")
    if (env_id or args.env) == bt.TICK_MM_ENV:
        return _cmd_mm_model(args)
    if args.env not in (None, bt.TICK_EXEC_ENV):
        raise CLIError(f"--env: --model backtests run {bt.TICK_EXEC_ENV} models (the env is the model's), not {args.env}")
    if args.start is None:
        raise CLIError("--start is required with --model")
    if args.world not in (None, "replay") or args.paths is not None:
        raise CLIError(f"--world / --paths apply to a {bt.TICK_MM_ENV} model; a {bt.TICK_EXEC_ENV} model is "
                       "backtested on the tape (--sim-vs-real compares what the worlds predict for it)")
    baselines = _strategies(args.strategy) if args.strategy else list(bt.TICK_STRATEGIES)
    for s in baselines:
        if s not in bt.TICK_STRATEGIES:
            raise bt.UnknownStrategyError(f"--strategy: {s!r} is not a {bt.TICK_EXEC_ENV} baseline; "
                                          f"one of {', '.join(bt.TICK_STRATEGIES)}")
    lats = _latencies(args.latency)
    if len(lats) != 1:
        raise CLIError("--latency: give one preset with --model")
    if args.quantity is not None and args.quantity <= 0:
        raise bt.OrderSizeError(f"--quantity must be > 0 shares, got {args.quantity}")
    bt.load_tick_model(args.model)  # refuse a bad model before claiming the folder
    with claim_run_folder(args.out, artefacts=_ARTEFACTS, overwrite=args.overwrite) as out:
        path = _message_path(args.data)
        data = bt.tick_world_data(path)
        starts = _starts(args.start, data)
        horizon_s = 60.0 * args.horizon_min if args.horizon_min_given else None
        res = bt.backtest_model(args.model, path, starts, baselines=baselines, side=args.side,
                                quantity=args.quantity, horizon_s=horizon_s, interval_s=args.interval_s,
                                latency=lats[0], seed=args.seed)
        tab = res.table
        tab.to_csv(out / "results.csv", index=False)
        kw = res.env_kwargs
        cols = ["strategy", "start", "shortfall_bps", "completion", "passive_shares", "aggressive_shares",
                "forced_shares", "avg_queue_wait_s", "episode_length"]
        md = (f"# Trained model on the real tape\n\n{res.model_path}, trained on {res.trained_on}, run "
              f"deterministically on {bt.TICK_EXEC_ENV} (world=replay, {data.name}): {kw['side']} {kw['quantity']} "
              f"shares, {kw['horizon']} decisions every {kw['dt']:g} s, latency {lats[0]}. Replay: the tape does not "
              f"react to the agent (docs/backtest.md).\n\n" + _md_table(tab[cols])
              + "\n\n## Shortfall paired per window (model - baseline, bps, 95% t interval)\n\n"
              + _md_table(res.paired) + "\n")
        atomic_write_text(out / "summary.md", md)
        atomic_write_text(out / "summary.json", json.dumps(
            {"data": data.name, "env": bt.TICK_EXEC_ENV, "model": res.model_path, "trained_on": res.trained_on,
             "env_kwargs": kw, "seed": args.seed, "results": _records(tab), "paired": _records(res.paired)},
            indent=1))
    if not args.quiet:
        print(md)
        print(f"wrote {out}")
    return 0


_MM_MODEL_ARTEFACTS = ("report.md", "results.json", "results.csv", "paired.csv", "summary.csv", "paths.csv",
                       "plots")


def _cmd_mm_model(args: argparse.Namespace) -> int:
    """``--model RUN_DIR`` of LOB-TickMarketMaking-v0: the model and the tick market-making baselines
    on the tape's windows under each latency preset; report.md, results.json and CSVs in --out."""
    import pandas as pd

    from lobworld.envs.spec import baseline_base, get_spec
    from lobworld.scenarios import backtest as bt
    from lobworld.world_models.run_folder import atomic_write_text, claim_run_folder

    if args.start is None:
        raise CLIError("--start is required with --model")
    for flag, v in (("--side", args.side), ("--quantity", args.quantity), ("--size", args.size),
                    ("--half-spread-ticks", args.half_spread_ticks)):
        if v is not None:
            raise CLIError(f"{flag} does not apply to a {bt.TICK_MM_ENV} model (its quotes are its own; give a "
                           f"baseline's parameter in its name, e.g. fixed-spread:2)")
    valid = {baseline_base(b) for b in get_spec(bt.TICK_MM_ENV).baselines}
    baselines = _strategies(args.strategy) if args.strategy else list(bt.TICK_MM_BASELINES)
    for s in baselines:
        if baseline_base(s.strip().lower()) not in valid:
            raise bt.UnknownStrategyError(f"--strategy: {s!r} is not a {bt.TICK_MM_ENV} baseline; one of "
                                          f"{', '.join(get_spec(bt.TICK_MM_ENV).baselines)}")
    lats = _latencies(args.latency)
    world = args.world or "replay"
    if world == "replay" and args.paths is not None:
        raise CLIError("--paths: the tape has one path per window; give --world learned or parametric for more")
    n_paths = 1 if world == "replay" else (args.paths or 4)
    bt.load_tick_mm_model(args.model)  # refuse a bad model before claiming the folder
    with claim_run_folder(args.out, artefacts=_MM_MODEL_ARTEFACTS + _ARTEFACTS, overwrite=args.overwrite) as out:
        path = _message_path(args.data)
        data = bt.tick_world_data(path)
        starts = _starts(args.start, data)
        horizon_s = 60.0 * args.horizon_min if args.horizon_min_given else None
        res = bt.backtest_mm_model(args.model, path, starts, baselines=baselines, latencies=lats,
                                   horizon_s=horizon_s, interval_s=args.interval_s, seed=args.seed,
                                   world=world, n_paths=n_paths)
        tab, kw = res.table, res.env_kwargs
        tab.to_csv(out / "results.csv", index=False)
        res.paired.to_csv(out / "paired.csv", index=False)
        res.summary.to_csv(out / "summary.csv", index=False)
        pd.concat([p.assign(start=k[0], latency=k[1], strategy=k[2]) for k, p in res.paths.items()],
                  ignore_index=True).to_csv(out / "paths.csv", index=False)
        plots = out / "plots"
        plots.mkdir(exist_ok=True)
        first = tab["start"].iloc[0]
        for lat in dict.fromkeys(lats):
            bt.plot_mm_model(res, first, lat, plots / f"window_{first:%H%M%S}_{lat}.png")
        md = _mm_report(res, data, lats)
        atomic_write_text(out / "report.md", md)
        atomic_write_text(out / "results.json", json.dumps(
            {"data": data.name, "env": bt.TICK_MM_ENV, "model": res.model_path, "trained_on": res.trained_on,
             "env_kwargs": kw, "latency": lats, "seed": args.seed, "markout_s": list(bt.MARKOUT_S),
             "results": _records(tab), "paired": _records(res.paired), "summary": _records(res.summary),
             "latency_table": _records(res.latency_table) if res.latency_table is not None else None}, indent=1))
    if not args.quiet:
        print(md)
        print(f"wrote {out}")
    return 0


def _mm_report(res, data, lats) -> str:
    from lobworld.scenarios import backtest as bt

    kw, tab = res.env_kwargs, res.table
    windows = ", ".join(f"{s:%H:%M:%S}" for s in dict.fromkeys(tab["start"]))
    summ = res.summary[["strategy", "latency", "windows", "terminated", "pnl", "pnl_sd", "pnl_sharpe_windows",
                        "sharpe_per_step", "bid_fills", "ask_fills", "inventory_terminal", "inventory_max_abs",
                        "adverse_selection_ticks", "adverse_1s_ticks", "adverse_10s_ticks", "queue_wait_s"]]
    per = tab[["start", "latency", "strategy", "pnl", "sharpe_per_step", "bid_fills", "ask_fills",
               "inventory_terminal", "inventory_max_abs", "adverse_selection_ticks", "adverse_1s_ticks",
               "queue_wait_s"]]
    pr = res.paired
    world = kw.get("world", "replay")
    if world == "replay":
        title = "on the real tape"
        where = ("every strategy meets the same latency draws (seed) on the same tape. Replay: the tape does not "
                 "react to the agent (docs/backtest.md)")
    else:
        paths = int(tab["path"].max()) + 1
        title = f"in the {world} tick world"
        where = (f"{paths} paths per window started from the file's book, path p seeded seed + p for every strategy "
                 f"(common random numbers); the tape markouts (adverse_Hs_ticks) are NaN in a generated world")
    md = (f"# Trained market-making model {title}\n\n{res.model_path}, trained on {res.trained_on}, run "
          f"deterministically on {bt.TICK_MM_ENV} (world={world}, {data.name}): {kw['horizon']} decisions every "
          f"{kw['dt']:g} s per window, windows starting {windows}, latency presets {', '.join(lats)}; {where}."
          f"\n\nUnits: PnL in USD (cash + inventory x mid at the window's end); sharpe_per_step = "
          f"mean / sd of the per-decision PnL changes within a window; pnl_sharpe_windows = mean / sd of the window "
          f"PnLs; fills per side counted from the fill log; adverse_selection_ticks = the env's (the mid's move against "
          f"each passive fill over the decision interval it happened in, per share); adverse_Hs_ticks = the tape's mid "
          f"H s after each fill against its mid at the fill (every fill, share-weighted; + = adverse); queue_wait_s = "
          f"share-weighted seconds from a quote going live to its fill.\n\n## Per strategy (means across windows)\n\n"
          + _md_table(summ)
          + "\n\n## PnL paired per window (model - baseline, USD, 95% t interval)\n\n"
          + _md_table(pr[pr["metric"] == "pnl"].drop(columns="metric"))
          + "\n\n## Other metrics paired per window (model - baseline, 95% t interval)\n\n"
          + _md_table(pr[(pr["metric"] != "pnl") & (pr["windows"] > 0)]))  # paired.csv keeps the undefined rows
    if res.latency_table is not None:
        md += (f"\n\n## PnL across latency presets (paired per window, difference to {lats[0]}, USD)\n\n"
               + _md_table(res.latency_table))
    return md + "\n\n## Per window\n\n" + _md_table(per) + "\n"


def _one_message_file(text: str) -> pathlib.Path:
    """``--data`` as a path: a folder must hold exactly one LOBSTER message file, which it names."""
    p = pathlib.Path(text)
    if p.is_dir():
        found = sorted(p.glob("*_message_*.csv*"))
        if len(found) != 1:
            raise CLIError(f"--data: {p} holds {len(found)} LOBSTER message files; name one")
        p = found[0]
    return p


def _message_path(text: str):
    p = _one_message_file(text)
    if not p.is_file():
        raise CLIError(f"--data: {p} does not exist")
    return str(p)


def _cmd_sim_vs_real(args: argparse.Namespace) -> int:
    """``--sim-vs-real``: predicted (worlds) vs realised (tape) shortfall over held-out windows."""
    from lobworld.scenarios import backtest as bt
    from lobworld.scenarios import sim_vs_real as svr
    from lobworld.world_models.run_folder import atomic_write_text, claim_run_folder

    strategies = tuple(_strategies(args.strategy)) if args.strategy else svr.SIM_STRATEGIES
    lats = _latencies(args.latency)
    if len(lats) != 1:
        raise CLIError("--latency: give one preset with --sim-vs-real")
    cfg = svr.SimVsRealConfig(
        strategies=strategies, worlds=tuple(_strategies(args.worlds)),
        sides=(args.side,) if args.side else ("buy", "sell"),
        horizon_s=60.0 * (args.horizon_min if args.horizon_min_given else 10.0), interval_s=args.interval_s or 10.0,
        first=args.first, last_end=args.last_end, quantity=args.quantity, latency=lats[0], n_paths=args.paths or 16,
        seed=args.seed, pov_rate=args.pov_rate)
    policy = bt.load_tick_model(args.model)[0] if args.model else None
    paths = [_message_path(x.strip()) for x in args.data.split(",") if x.strip()]
    with claim_run_folder(args.out, artefacts=_ARTEFACTS, overwrite=args.overwrite) as out:
        res = svr.sim_vs_real(paths, cfg, policy=policy,
                              progress=None if args.quiet else (lambda line: print(line, flush=True)))
        res.windows.to_csv(out / "results.csv", index=False)
        summ = res.summary
        md = (f"# Sim versus real: shortfall predicted by each world against the real tape\n\n"
              f"Windows of {cfg.horizon_s / 60:g} min from {cfg.first} to {cfg.last_end}, decisions every "
              f"{cfg.interval_s:g} s, parent orders {res.quantities} shares, sides {', '.join(cfg.sides)}, "
              f"{cfg.n_paths} paths per window, latency {cfg.latency}. Targets: |bias| < {svr.BIAS_TARGET_BPS} bps, "
              f"RMSE < {svr.RMSE_TARGET_BPS} bps (docs/backtest.md).\n\n"
              + "".join(f"- {n}\n" for n in res.notes) + "\n" + _md_table(summ, ".2f") + "\n")
        atomic_write_text(out / "summary.md", md)
        atomic_write_text(out / "summary.json", json.dumps(
            {"data": paths, "config": {k: _jsonable(v) if not isinstance(v, tuple) else list(v)
                                       for k, v in vars(cfg).items()},
             "quantities": res.quantities, "notes": res.notes, "summary": _records(summ)}, indent=1))
    if not args.quiet:
        print(md)
        print(f"wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from lobworld.scenarios.backtest import (EXECUTION_STRATEGIES, MM_STRATEGIES, TICK_EXEC_ENV, TICK_MM_BASELINES,
                                             TICK_MM_ENV, TICK_STRATEGIES)

    p = sub.add_parser(
        "backtest", help="run execution / market-making baselines on a real LOBSTER window (event level)",
        description="Replays a real LOBSTER window through the event-level book engine with the strategy's "
                    "orders in the real queues and the latency preset's delays; the tape does not react to "
                    "the agent. Writes summary.md, summary.json, results.csv and plots/ into --out.")
    p.add_argument("--data", required=True, help="LOBSTER message file (its orderbook file beside it), or a "
                   "folder with one; level-1 files work (the book is as deep as the file)")
    p.add_argument("--env", default=None, choices=(_EXEC_ENV, _MM_ENV, TICK_EXEC_ENV, TICK_MM_ENV), metavar="ENV_ID",
                   help=f"{_EXEC_ENV} (default) or {_MM_ENV}; with --model: the model's, {TICK_EXEC_ENV} or "
                        f"{TICK_MM_ENV} (read from its run record; needed only for a model without one)")
    p.add_argument("--strategy", default=None,
                   help=f"comma-separated; execution: {', '.join(EXECUTION_STRATEGIES)}; market making: "
                        f"{', '.join(MM_STRATEGIES)}; with --model / --sim-vs-real: the baselines to run "
                        f"(default {', '.join(TICK_STRATEGIES)}; for a {TICK_MM_ENV} model "
                        f"{', '.join(TICK_MM_BASELINES)}; --sim-vs-real: all but aggressive)")
    p.add_argument("--model", default=None, metavar="RUN_DIR",
                   help=f"backtest a trained {TICK_EXEC_ENV} or {TICK_MM_ENV} model (a lobworld train run folder "
                        "or model .zip) deterministically on the tape through the tick env's replay world, paired "
                        "per window with the baselines (market making: under every --latency preset, report.md, "
                        "results.json and CSVs); with --sim-vs-real: add an execution model as a strategy")
    p.add_argument("--sim-vs-real", action="store_true",
                   help="compare the shortfall each world predicts (tick parametric / learned, bar markets) with "
                        "the tape's over held-out windows (--first .. --last-end) of every --data file "
                        "(comma-separated): bias and RMSE in bps")
    p.add_argument("--worlds", default="parametric,learned,bar-parametric,bar-learned",
                   help="--sim-vs-real: worlds to compare (default all)")
    p.add_argument("--first", default="14:00", help="--sim-vs-real: first window start (default 14:00)")
    p.add_argument("--last-end", default="16:00", help="--sim-vs-real: no window ends later (default 16:00)")
    p.add_argument("--paths", type=int, default=None, help="--sim-vs-real: simulated paths per window (default 16); "
                   f"--model of {TICK_MM_ENV} with --world learned / parametric: paths per window (default 4)")
    p.add_argument("--world", choices=("replay", "learned", "parametric"), default=None,
                   help=f"--model of {TICK_MM_ENV}: run the model and the baselines in this tick world instead of "
                        "the tape (replay, the default): started from the file's book at each window start, "
                        "--paths paths per window, the same random streams for every strategy")
    p.add_argument("--side", choices=("buy", "sell"), default=None, help="parent order side (execution; --model: the model's; "
                   "--sim-vs-real: both when omitted)")
    p.add_argument("--quantity", type=int, default=None, help="parent order shares (execution; --model: the model's; "
                   "--sim-vs-real: 1/300 of the day's executed volume when omitted)")
    p.add_argument("--start", default=None, help="window start(s), exchange time, e.g. 2012-06-21T14:00 "
                   "(comma-separated for several windows; HH:MM uses the file's date)")
    p.add_argument("--horizon-min", type=_horizon, default=None,
                   help="window length in minutes (default 30; --model: the model's horizon x dt; "
                        "--sim-vs-real: 10)")
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
    p.set_defaults(func=_cmd_backtest_entry)


def _horizon(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--horizon-min must be a number of minutes, got {text!r}") from None


def _cmd_backtest_entry(args: argparse.Namespace) -> int:
    args.horizon_min_given = args.horizon_min is not None
    if args.horizon_min is None:
        args.horizon_min = 30.0
    if args.paths is not None and args.paths < 1:
        raise CLIError(f"--paths must be >= 1, got {args.paths}")
    return _cmd_backtest(args)

"""``lobworld counterfactual`` and ``lobworld report``."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("counterfactual", help="run several strategies on the same simulated market paths",
                       description="Every strategy runs one episode on each of --paths market paths seeded "
                                   "seed+i (common random numbers); reports the metric's mean, std, quantiles, "
                                   "completion rate and paired differences against --benchmark with paired "
                                   "bootstrap CIs. All numbers are simulated.")
    c.add_argument("--env", default="LOB-Execution-v0")
    c.add_argument("--strategies", required=True,
                   help="comma-separated: baseline names (twap,vwap,ac,pov,aggressive), const:X, MODEL.zip")
    c.add_argument("--paths", type=int, default=10_000)
    c.add_argument("--scenario", default="normal",
                   help="regime preset (calm, normal, volatile, illiquid, trending, trending_up) or latency:NAME")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--benchmark", default=None, help="strategy the others are compared with (default: the first)")
    c.add_argument("--start", default=None, help="condition the market on the book at this time, e.g. "
                   "2012-06-21T10:30 (needs --data)")
    c.add_argument("--data", default=None, help="LOBSTER message file (or a folder with one) for --start")
    c.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--ray", action="store_true", help="run through Ray (must be installed)")
    c.add_argument("--out", default=None, help="folder for counterfactual.json")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_counterfactual)

    r = sub.add_parser("report", help="pre-trade report: recommended execution strategy with plots",
                       description="Simulate an order under every baseline and regime scenario, recommend the "
                                   "strategy minimising mean + R * std of shortfall; writes report.md, "
                                   "report.json and PNG plots into --out.")
    r.add_argument("--side", choices=["buy", "sell"], required=True)
    r.add_argument("--quantity", type=float, required=True, help="shares")
    r.add_argument("--horizon-min", type=int, required=True, help="minutes (one decision per minute)")
    r.add_argument("--risk-aversion", type=float, default=0.0, help="R in mean + R * std (dimensionless)")
    r.add_argument("--strategies", default=None, help="comma-separated (default twap,vwap,pov,ac,aggressive)")
    r.add_argument("--model", default=None, help="also evaluate this trained model .zip")
    r.add_argument("--paths", type=int, default=2000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--scenarios", default=None, help="comma-separated regime presets (default calm,normal,"
                   "volatile,illiquid and the trend adverse to the side: trending for a sell, trending_up for a buy)")
    r.add_argument("--start", default=None)
    r.add_argument("--data", default=None)
    r.add_argument("--ray", action="store_true")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--json", action="store_true", help="print the JSON report")
    r.set_defaults(func=_report)


def _counterfactual(args: argparse.Namespace) -> int:
    from lobworld.scenarios.counterfactual import run_scenarios

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    t0 = time.perf_counter()
    res = run_scenarios([args.scenario], use_ray=args.ray, env_id=args.env, strategies=strategies,
                        n_paths=args.paths, seed=args.seed, benchmark=args.benchmark, start=args.start,
                        data=args.data, n_boot=args.boot)[args.scenario]
    wall = time.perf_counter() - t0
    d = res.to_dict()
    d["wall_s"] = wall
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "counterfactual.json").write_text(json.dumps(d, indent=2))
    if args.json:
        json.dump(d, sys.stdout, indent=2)
        print()
        return 0
    better = "lower" if res.lower_is_better else "higher"
    print(f"{res.env_id}, scenario {res.scenario}: {res.n_paths:,} common paths (seeds {res.seed}.."
          f"{res.seed + res.n_paths - 1}); {res.metric} ({better} is better); simulated")
    if res.conditioning:
        c = res.conditioning
        print(f"conditioned on {c['start']}: mid {c['s0']:.4f}, spread {c['spread']:.4f}, "
              f"sigma {c['sigma_per_minute']:.4f} USD/min, volume {c['volume_rate']:.2f} sh/s")
    print(f"{'strategy':<24}{'mean':>9}{'95% CI':>20}{'std':>9}{'q05':>9}{'q50':>9}{'q95':>9}{'compl.':>8}"
          f"   diff vs {res.benchmark} [95% paired bootstrap CI]")
    for s in res.summaries.values():
        comp = "n/a" if s.completion_rate is None else f"{s.completion_rate:.3f}"
        diff = "" if s.diff_mean is None else f"   {s.diff_mean:+.3f} [{s.diff_ci95[0]:+.3f}, {s.diff_ci95[1]:+.3f}]"
        ci = f"{s.ci95[0]:.2f}..{s.ci95[1]:.2f}"
        print(f"{s.strategy[:23]:<24}{s.mean:9.3f}{ci:>20}{s.std:9.3f}{s.q05:9.3f}{s.q50:9.3f}{s.q95:9.3f}"
              f"{comp:>8}{diff}")
    print(f"wall time {wall:.1f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lobworld.scenarios.report import pre_trade_report

    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    if args.model:
        from lobworld.scenarios.report import DEFAULT_STRATEGIES

        strategies = [*(strategies or DEFAULT_STRATEGIES), args.model]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()] if args.scenarios else None
    doc = pre_trade_report(args.side, args.quantity, args.horizon_min, args.risk_aversion, args.out,
                           strategies=strategies, n_paths=args.paths, seed=args.seed, scenarios=scenarios,
                           start=args.start, data=args.data, use_ray=args.ray)
    if args.json:
        json.dump(doc, sys.stdout, indent=2, default=str)
        print()
        return 0
    rec = doc["recommendation"]
    print(f"recommended: {rec['strategy']} (mean {rec['mean']:.2f} bps, std {rec['std']:.2f} bps, "
          f"objective {rec['objective']:.2f}); report: {pathlib.Path(args.out) / 'report.md'}")
    return 0

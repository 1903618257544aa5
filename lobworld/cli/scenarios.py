"""``lobworld counterfactual`` and ``lobworld report``."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

from lobworld.cli import CLIError
from lobworld.envs import spec as _spec

__all__ = ["add_commands", "env_kwargs_from_args", "add_market_args", "add_world_arg", "add_env_arg", "env_help",
           "strategy_help", "registered_market_note"]


# ---------------------------------------------------------------------------
# help texts read from the env table (lobworld.envs.spec.ENV_SPECS), shared with lobworld.cli.agents
# ---------------------------------------------------------------------------
def _pct(text: str) -> str:
    """``text`` safe for argparse's %-formatted help."""
    return text.replace("%", "%%")


def _compact(names: tuple[str, ...]) -> str:
    """``("pov", "pov:RATE", "ac")`` -> ``"pov[:RATE], ac"``."""
    params: dict[str, list[str]] = {}
    for n in names:
        base, _, arg = n.partition(":")
        params.setdefault(base, [])
        if arg:
            params[base].append(arg)
    return ", ".join(b + "".join(f"[:{a}]" for a in args) for b, args in params.items())


def env_help(default: str | None = None) -> str:
    """``--env`` help: every id of the table with its one-line summary."""
    head = f"env id (default {default})" if default else "env id"
    return _pct(head + ": " + "; ".join(f"{s.id}: {s.summary}" for s in _spec.ENV_SPECS.values()))


def add_env_arg(p: argparse.ArgumentParser, default: str | None = None, required: bool = False,
                help: str | None = None) -> None:
    """``--env`` with the table's ids as choices (an unknown id is refused, listing them)."""
    p.add_argument("--env", default=default, required=required, choices=_spec.env_ids(), metavar="ENV_ID",
                   help=help if help is not None else env_help(default))


def strategy_help(prefix: str = "comma-separated: ", suffix: str = " -- or const:X, or a trained MODEL.zip") -> str:
    """The baseline names of every family, from the table."""
    parts = []
    for fam, specs in _spec.specs_by_family().items():
        ids = ", ".join(s.id for s in specs)
        parts.append(f"{fam.replace('_', ' ')} ({ids}): {_compact(specs[0].baselines)}")
    return _pct(f"{prefix}baselines of the env -- " + "; ".join(parts) + suffix)


def registered_market_note() -> str:
    """Which market each id runs on by default (its registered ``dynamics``, else the class's parametric)."""
    by: dict[str, list[str]] = {}
    for s in _spec.ENV_SPECS.values():
        if s.module == "lobworld.envs.tick":  # event-level envs: a tick world moves the books, no bar dynamics
            w = s.default_kwargs.get("world", "replay")
            name = w if isinstance(w, str) else type(w).__name__
            what = {"replay": " (real tape)", "learned": " (the shipped tick GRU)",
                    "parametric": " (Cont-Stoikov-Talreja)"}.get(name, "")
            key = f"the {name} tick world{what}"
        else:
            dyn = s.default_kwargs.get("dynamics", "parametric")
            key = dyn if isinstance(dyn, str) else type(dyn).__name__
        by.setdefault(key, []).append(s.id)
    return "the id's registered market -- " + "; ".join(f"{d} for {', '.join(ids)}" for d, ids in by.items())


def _scenario_help() -> str:
    from lobworld.envs.latency import LATENCY_SCENARIOS
    from lobworld.scenarios.presets import REGIMES

    return (f"regime preset ({', '.join(REGIMES)}; parametric market only) or latency:NAME "
            f"({', '.join(LATENCY_SCENARIOS)}, or 500us / 12.5ms)")


def _is_tick(env_id: str | None) -> bool:
    s = _spec.find_spec(env_id) if env_id else None
    return s is not None and s.module == "lobworld.envs.tick"


def add_world_arg(p: argparse.ArgumentParser) -> None:
    """``--world`` of the tick-level ids (the tick world that moves their books)."""
    tick_ids = ", ".join(s.id for s in _spec.ENV_SPECS.values() if s.module == "lobworld.envs.tick")
    p.add_argument("--world", default=None, metavar="NAME",
                   help=f"tick world of the event-level ids ({tick_ids}): replay (the real tape), parametric "
                        "(Cont-Stoikov-Talreja) or another registered one (default: the id's registered world, "
                        "replay); the bar ids take --dynamics instead")


def add_market_args(p: argparse.ArgumentParser, default_note: str) -> None:
    """``--dynamics``, ``--world`` and ``--env-kwargs`` (shared by counterfactual and evaluate)."""
    p.add_argument("--dynamics", choices=["parametric", "learned"], default=None,
                   help=f"market dynamics of the bar ids ({default_note})")
    add_world_arg(p)
    p.add_argument("--env-kwargs", default=None, metavar="JSON",
                   help='env arguments as a JSON object, e.g. \'{"quantity": 1000, "horizon": 10}\' '
                        "(override the id's registered ones; --dynamics wins over a dynamics key here)")


def env_kwargs_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base``, then ``--env-kwargs``, then ``--dynamics``; a clear error for malformed JSON."""
    kw = dict(base or {})
    raw = getattr(args, "env_kwargs", None)
    if raw:
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CLIError(f"--env-kwargs is not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise CLIError(f"--env-kwargs must be a JSON object, got {type(extra).__name__}")
        kw.update(extra)
    env_id = getattr(args, "env", None)
    if getattr(args, "dynamics", None):
        if _is_tick(env_id):
            raise CLIError(f"{env_id} has no bar dynamics: its market is a tick world, pick it with --world "
                           "(replay, parametric, ...)")
        kw["dynamics"] = args.dynamics
    if getattr(args, "world", None):
        if not _is_tick(env_id):
            raise CLIError(f"--world picks the tick world of the event-level ids; {env_id} takes --dynamics")
        kw["world"] = args.world
    return kw


def add_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("counterfactual", help="run several strategies on the same simulated market paths",
                       description="Every strategy runs one episode on each of --paths market paths seeded "
                                   "seed+i (common random numbers); reports the metric's mean, std, quantiles, "
                                   "completion rate and paired differences against --benchmark with paired "
                                   "bootstrap CIs. All numbers are simulated.")
    add_env_arg(c, default="LOB-Execution-v0")
    c.add_argument("--strategies", required=True, help=strategy_help())
    c.add_argument("--paths", type=int, default=10_000)
    c.add_argument("--scenario", default="normal", help=_pct(_scenario_help()))
    add_market_args(c, "default: " + registered_market_note())
    c.add_argument("--adverse-bps-per-s", type=float, default=0.0,
                   help="latency scenarios of the execution ids: adverse mid drift while an order is in flight "
                        "(bps per second of latency, default 0)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--benchmark", default=None, help="strategy the others are compared with (default: the first)")
    c.add_argument("--start", default=None, help="condition the market on the book at this time, e.g. "
                   "2012-06-21T10:30 (needs --data)")
    c.add_argument("--data", default=None, help="LOBSTER message file (or a folder with one) for --start")
    c.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--ray", action="store_true", help="run through Ray (must be installed)")
    c.add_argument("--out", default=None, help="folder for counterfactual.json")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--no-progress", action="store_true", help="no progress bar (none with --json either)")
    c.set_defaults(func=_counterfactual)

    r = sub.add_parser("report", help="pre-trade report: recommended execution strategy with plots",
                       description="Simulate an order under every baseline (and, on the parametric market, every "
                                   "regime scenario), recommend the strategy minimising mean + R * std of the "
                                   "cost (oracle-type baselines are shown as bounds, never recommended); writes "
                                   "report.md, report.json and PNG plots into --out. Market: "
                                   + _pct(registered_market_note()) + " (--dynamics picks the other).")
    add_env_arg(r, default="LOB-Execution-v0",
                help=env_help("LOB-Execution-v0") + " (market making: no --side/--quantity)")
    r.add_argument("--side", choices=["buy", "sell"], default=None,
                   help="order side (execution, dark pool; default sell)")
    r.add_argument("--quantity", type=float, default=None,
                   help=_pct("order size, shares (execution, dark pool; default: 1% of GOOG's average daily volume, "
                             "7061 shares, for the execution ids; the env's default order, 2000, for the dark pool)"))
    r.add_argument("--horizon-min", type=int, required=True,
                   help="minutes (execution: one decision per minute; dark pool: 10 s steps; market making and the "
                        "tick ids: 1 s)")
    r.add_argument("--risk-aversion", type=float, default=0.0, help="R in mean + R * std (dimensionless)")
    defaults = "; ".join(f"{','.join(specs[0].default_strategies)} for {fam.replace('_', ' ')}"
                         for fam, specs in _spec.specs_by_family().items())
    r.add_argument("--strategies", default=None, help=_pct(f"comma-separated (default per env: {defaults})"))
    r.add_argument("--dynamics", choices=["parametric", "learned"], default=None,
                   help="market (default: " + _pct(registered_market_note()) + "); the regime scenarios transform "
                        "the parametric market's parameters and are skipped on the learned one")
    add_world_arg(r)
    r.add_argument("--latencies", default=None,
                   help="comma-separated latency scenarios, also 500us, 12.5ms; 'off' for none (default: "
                        "none,colocated,proximity,cloud,retail for market making; colocated,proximity,cloud,retail for "
                        "the tick ids; none run for the execution ids, where one-minute steps make latency immaterial)")
    r.add_argument("--adverse-bps-per-s", type=float, default=0.0,
                   help="execution latency model: adverse mid drift while an order is in flight (bps/s, default 0)")
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
    r.add_argument("--no-progress", action="store_true", help="no progress bar (none with --json either)")
    r.set_defaults(func=_report)


def _counterfactual(args: argparse.Namespace) -> int:
    from lobworld.cli._progress import compile_notice, progress
    from lobworld.scenarios.counterfactual import run_scenarios

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    kw = env_kwargs_from_args(args)
    compile_notice()
    t0 = time.perf_counter()
    with progress(f"{args.env}: {args.paths:,} paths per strategy", len(strategies),
                  enabled=not (args.json or args.no_progress)) as advance:
        res = run_scenarios([args.scenario], use_ray=args.ray, env_id=args.env, strategies=strategies,
                            n_paths=args.paths, seed=args.seed, benchmark=args.benchmark, start=args.start,
                            data=args.data, n_boot=args.boot, env_kwargs=kw,
                            adverse_bps_per_s=args.adverse_bps_per_s, progress=advance)[args.scenario]
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
    print(f"{res.env_id}, scenario {res.scenario}, market {res.market}: {res.n_paths:,} common paths (seeds "
          f"{res.seed}..{res.seed + res.n_paths - 1}); {res.metric} ({better} is better); simulated")
    if res.conditioning:
        c = res.conditioning
        print(f"conditioned on {c['start']}: mid {c['s0']:.4f}, spread {c['spread']:.4f}, "
              f"sigma {c['sigma_per_minute']:.4f} USD/min, volume {c['volume_rate']:.2f} sh/s")
    print(f"{'strategy':<24}{'mean':>9}{'95% CI':>20}{'std':>9}{'q05':>9}{'q50':>9}{'q95':>9}{'compl.':>8}"
          f"   diff vs {res.benchmark} [95% paired bootstrap CI]")
    same: list[str] = []
    for s in res.summaries.values():
        comp = "n/a" if s.completion_rate is None else f"{s.completion_rate:.3f}"
        if s.diff_mean is None:
            diff = ""
        elif abs(s.diff_mean) <= 1e-9 and max(abs(s.diff_ci95[0]), abs(s.diff_ci95[1])) <= 1e-9:
            diff = f"   0 (identical to {res.benchmark} on every path)"
            same.append(s.strategy)
        else:
            diff = f"   {s.diff_mean:+.3f} [{s.diff_ci95[0]:+.3f}, {s.diff_ci95[1]:+.3f}]"
        ci = f"{s.ci95[0]:.2f}..{s.ci95[1]:.2f}"
        print(f"{s.strategy[:23]:<24}{s.mean:9.3f}{ci:>20}{s.std:9.3f}{s.q05:9.3f}{s.q50:9.3f}{s.q95:9.3f}"
              f"{comp:>8}{diff}")
        if s.secondary:
            print(" " * 24 + ", ".join(f"{k} {v:.4g}" for k, v in s.secondary.items()))
    if any(n.lower() == "ac" for n in same):
        print("note: ac with the env's risk aversion 0 is the linear schedule, TWAP exactly; ac:LAMBDA (1/bps, > 0) "
              "front-loads it")
    print(f"wall time {wall:.1f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lobworld.scenarios.report import pre_trade_report

    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    if args.model:
        strategies = [*(strategies or _spec.get_spec(args.env).default_strategies), args.model]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()] if args.scenarios else None
    latencies = None
    if args.latencies:
        latencies = [] if args.latencies.strip() == "off" else \
            [s.strip() for s in args.latencies.split(",") if s.strip()]
    from lobworld.cli._progress import compile_notice, progress

    compile_notice()
    with progress(f"report on {args.env}: {args.paths:,} paths per run", None,
                  enabled=not (args.json or args.no_progress)) as advance:
        doc = pre_trade_report(args.side, args.quantity, args.horizon_min, args.risk_aversion, args.out,
                               strategies=strategies, n_paths=args.paths, seed=args.seed, scenarios=scenarios,
                               start=args.start, data=args.data, use_ray=args.ray, env_id=args.env,
                               dynamics=args.dynamics, world=args.world, latencies=latencies,
                               adverse_bps_per_s=args.adverse_bps_per_s, progress=advance)
    if args.json:
        json.dump(doc, sys.stdout, indent=2, default=str)
        print()
        return 0
    rec = doc["recommendation"]
    if doc["ac_equals_twap"]:
        print("note: at risk aversion 0 Almgren-Chriss is TWAP exactly (identical rows); give --risk-aversion > 0")
    if doc["bounds"]:
        print(f"bounds (not candidates): {', '.join(doc['bounds'])} sees hidden liquidity; never recommended")
    if not doc["latency"] and doc["latency_model"]:
        print(f"latency: {doc['latency_model']}")
    print(f"recommended: {rec['strategy']} ({doc['metric']} mean {rec['mean']:.2f}, std {rec['std']:.2f}, "
          f"objective {rec['objective']:.2f}; {doc['metric_units']}; market {doc['market']}); "
          f"report: {pathlib.Path(args.out) / 'report.md'}")
    return 0

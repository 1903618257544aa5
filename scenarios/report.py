"""Pre-trade report: which strategy to use for an order, and how sensitive that choice is.

:func:`pre_trade_report` simulates the order (``side``, ``quantity`` shares over
``horizon_min`` minutes) in an env id -- ``LOB-Execution-v0`` by default (one-minute
steps), also the other execution ids, ``LOB-DarkPool-v0`` (10 s routing steps; the
order is ``quantity``, as for the execution ids) and the market-making ids (no parent order:
``side``/``quantity`` are not used; ``horizon_min`` minutes of 1 s steps) -- for each
candidate strategy on the same market paths (common random numbers), under the base
market, each regime scenario (:mod:`lobworld.scenarios.presets`) and each latency
scenario (:mod:`lobworld.envs.latency`), and recommends the strategy that minimises
``mean + R * std`` of the cost metric in the base scenario (implementation shortfall in bps
for execution, ``cost_bps`` for the dark pool; for market making ``-mean + R * std`` of the
PnL in USD). Everything in the report is SIMULATED; no number in it is a real execution.

Market: the env id's registered one (``dynamics=None``, the default): the ``dynamics`` of its
:attr:`~lobworld.envs.spec.EnvSpec.default_kwargs` in :data:`lobworld.envs.spec.ENV_SPECS`, else the
class's parametric market -- the same rule as ``gym.make`` and every command (``train``,
``evaluate``, ``counterfactual``): the learned market for the execution ids, the parametric one for
market making and the dark pool. ``dynamics="parametric"`` selects the Almgren-Chriss market
calibrated on GOOG 2012-06-21 (or conditioned on a historical book with ``start``/``data``), on which
the regime scenarios run (they are transforms of its parameters); on the learned market only the
base scenario runs and the report says so. Every table and plot title names its market.

Order: ``side`` defaults to ``"sell"`` and ``quantity`` to :func:`default_quantity` (execution ids:
1% of the GOOG average daily volume :data:`lobworld.envs.execution.GOOG_ADV`, 7,061 shares; dark
pool: the env's default order).

Bounds: strategies that see what a trader cannot (``oracle``: the dark pool's hidden liquidity) are
simulated and tabled as bounds, never recommended (:data:`BOUND_STRATEGIES`).

Strategies that need a risk-aversion parameter (the Almgren-Chriss schedule) receive the
env's mean-variance weight ``lambda`` (1/bps) = ``R / (2 sd_TWAP)``, with ``sd_TWAP`` TWAP's
shortfall standard deviation on a pilot of the base scenario's paths: at the optimum of
``mean + R sd`` the marginal rate between mean and variance is ``R / (2 sd)``, so this is the
mean-variance weight whose solution is (to first order) the ``mean + R sd`` optimum.
Schedules that read market parameters (AC, POV) are rebuilt for each regime's parameters
(the trader is assumed to know the regime); ``lambda`` stays the base scenario's.

Latency: for the execution ids the latency scenarios are off by default (``latencies=None``): with
one decision per minute the mid moves hundredths of a bps over milliseconds, far below the
differences between strategies (the tick-level backtests, ``lobworld backtest``, show where latency
matters); pass ``latencies`` to run them. There each latency scenario wraps the market in
:class:`~lobworld.envs.latency.LatencyDynamics` (every child order reaches the market
``L`` seconds after the decision and pays the mid's move over ``L``, plus an optional
adverse drift ``adverse_bps_per_s``); the mid path is the same in every latency scenario, so
the table's differences are paired. For market making the scenario sets the env's own
``latency`` (quotes and cancels in flight). The dark-pool env has no latency model (skipped).

Output folder: ``report.md``, ``report.json`` and PNGs named for what they plot:
``<metric>_distributions.png`` (``shortfall_distributions.png``, ``cost_distributions.png``,
``pnl_distributions.png``), ``execution_trajectories.png`` (orders: mean executed fraction) or
``mean_inventory.png`` (market making), ``inventory_paths.png``, ``scenario_sensitivity.png``
(parametric market), ``latency_sensitivity.png`` (when latency scenarios ran).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lobworld._checks import integer, non_negative, positive
from lobworld.envs import spec as _spec
from lobworld.errors import LobworldError
from lobworld.scenarios.counterfactual import (
    CounterfactualResult,
    StrategyError,
    resolve_strategy,
    run_counterfactual,
    run_scenarios,
)

__all__ = ["pre_trade_report", "DEFAULT_STRATEGIES", "DEFAULT_SCENARIOS", "DEFAULT_LATENCIES",
           "FAMILY_STRATEGIES", "ReportError", "BOUND_STRATEGIES", "DEFAULT_SIDE", "default_quantity",
           "registered_dynamics", "is_bound"]


class ReportError(LobworldError):
    """Bad arguments of a pre-trade report (side, quantity, horizon, risk aversion, market)."""

ENV_ID = "LOB-Execution-v0"
DEFAULT_STRATEGIES = _spec.get_spec(ENV_ID).default_strategies
"""Default strategies of the default id (its spec's ``default_strategies``)."""
FAMILY_STRATEGIES = _spec.family_view("default_strategies")
"""Default strategies per env family (the first is the paired-difference benchmark): a read-only view
of :attr:`lobworld.envs.spec.EnvSpec.default_strategies`, kept for one release (read the spec instead)."""
DEFAULT_SCENARIOS = ("calm", "normal", "volatile", "illiquid", "trending")
DEFAULT_LATENCIES = ("none", "colocated", "proximity", "cloud", "retail")
"""Latency scenarios run by default for the ids whose env has its own latency (market making); the
execution ids (latency wrapper at one-minute steps) run none unless asked (see the module docstring)."""
DEFAULT_SIDE = "sell"
"""Order side when none is given (execution and dark-pool ids)."""
BOUND_STRATEGIES = ("oracle",)
"""Baselines that see information a trader does not have (hidden dark liquidity): shown as bounds in
the tables, never recommended."""
LATENCY_NOTE = ("latency does not matter at this grain: with one decision per {dt:g} s step the mid moves "
                "hundredths of a bps over milliseconds (the tick-level backtests, `lobworld backtest`, show where it "
                "does); pass latencies (--latencies) to run the scenarios anyway")


def is_bound(name: str) -> bool:
    """True for an oracle-type strategy (:data:`BOUND_STRATEGIES`), which is never recommended."""
    return _spec.baseline_base(name.strip().lower()) in BOUND_STRATEGIES


def registered_dynamics(env_id: str) -> str:
    """The market ``env_id`` runs on when no ``dynamics`` is given: its spec's registered ``dynamics``,
    else ``"parametric"`` (the env classes' own default). The one rule of every command and env."""
    dyn = _spec.get_spec(env_id).default_kwargs.get("dynamics", "parametric")
    return dyn if isinstance(dyn, str) else getattr(dyn, "name", type(dyn).__name__)


_MM_FAMILIES = ("market_making", "tick_market_making")
"""Families without a parent order (market making, bar and tick level)."""
TICK_LATENCIES = ("colocated", "proximity", "cloud", "retail")
"""Latency scenarios run by default for the tick-level ids: the four presets."""


def _is_tick(spec: _spec.EnvSpec) -> bool:
    return spec.module == "lobworld.envs.tick"


def default_quantity(env_id: str) -> float:
    """The order size (shares) used when none is given: 1% of GOOG's average daily volume
    (:data:`lobworld.envs.execution.GOOG_ADV`, rounded to whole shares) for the execution ids, the
    env's default order (``DarkPoolConfig.quantity``) for the dark pool, ``TickExecutionConfig.quantity``
    (1,000 shares) for the tick-level execution id."""
    fam = _spec.get_spec(env_id).family
    if fam == "tick_execution":
        from lobworld.envs.tick import TickExecutionConfig

        return float(TickExecutionConfig().quantity)
    if fam == "dark_pool":
        from lobworld.envs.dark_pool import DarkPoolConfig

        return float(DarkPoolConfig().quantity)
    from lobworld.envs.execution import GOOG_ADV

    return float(round(0.01 * GOOG_ADV))


def _usable(env_id: str, strategies: Sequence[str], env_kwargs: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    from lobworld.envs import make_sb3_vec_env

    core = make_sb3_vec_env(env_id, 1, **env_kwargs).core
    ok, skipped = [], {}
    for s in strategies:
        try:
            resolve_strategy(s, env_id, core)
            ok.append(s)
        except StrategyError as exc:
            skipped[s] = str(exc)
    return ok, skipped


def _fmt(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _order_kwargs(env_id: str, fam: str, side: str | None, quantity: float | None, horizon_min: int,
                  dynamics: Any, world: Any = None) -> dict[str, Any]:
    """The env arguments of the order (see the module docstring)."""
    if fam == "tick_execution":
        if side is None or quantity is None:
            raise ReportError(f"{env_id}: an execution report needs --side and --quantity")
        if quantity != round(quantity):
            raise ReportError(f"{env_id}: the order size is a whole number of shares, got {quantity!r}")
        return {"side": side, "quantity": int(round(quantity)), "horizon": int(horizon_min) * 60, "dt": 1.0,
                "world": world}
    if fam == "tick_market_making":
        if side is not None or quantity is not None:
            raise ReportError(f"{env_id}: market making has no parent order; omit side and quantity")
        return {"horizon": int(horizon_min) * 60, "dt": 1.0, "world": world}
    if fam == "execution":
        if side is None or quantity is None:
            raise ReportError(f"{env_id}: an execution report needs --side and --quantity")
        return {"side": side, "quantity": float(quantity), "horizon": int(horizon_min), "dt": 60.0,
                "dynamics": dynamics}
    if fam == "dark_pool":
        from lobworld.envs.dark_pool import DarkPoolConfig

        if side is None or quantity is None:
            raise ReportError(f"{env_id}: a dark-pool report needs --side and --quantity")
        if quantity != round(quantity):
            raise ReportError(f"{env_id}: the dark-pool order size is a whole number of shares, got {quantity!r}")
        dt = DarkPoolConfig().dt
        return {"side": side, "quantity": int(round(quantity)), "horizon": max(1, int(round(horizon_min * 60 / dt))),
                "dynamics": dynamics}
    if fam == "market_making":
        if side is not None or quantity is not None:
            raise ReportError(f"{env_id}: market making has no parent order; omit side and quantity")
        return {"horizon": int(horizon_min) * 60, "dt": 1.0, "dynamics": dynamics}
    raise LobworldError(f"the pre-trade report has no order arguments for {env_id!r} (family {fam!r}); it supports "
                        "the execution, dark_pool and market_making families")


def pre_trade_report(side: str | None, quantity: float | None, horizon_min: int, risk_aversion: float,
                     out: str | pathlib.Path, strategies: Sequence[str] | None = None, n_paths: int = 2000,
                     seed: int = 0, scenarios: Sequence[str] | None = None, base_scenario: str = "normal",
                     start: str | None = None, data: str | pathlib.Path | None = None, use_ray: bool = False,
                     n_boot: int = 1000, record: int = 200, plots: bool = True, env_id: str = ENV_ID,
                     dynamics: str | None = None, world: Any = None, latencies: Sequence[str] | None = None,
                     adverse_bps_per_s: float = 0.0, progress: Callable[[str], None] | None = None
                     ) -> dict[str, Any]:
    """Simulate, recommend, plot; write ``report.md`` / ``report.json`` into ``out``; return the JSON dict.

    ``side`` / ``quantity``: the order (default :data:`DEFAULT_SIDE` and :func:`default_quantity`;
    market making takes neither). ``scenarios``: regime presets (default calm, normal, volatile,
    illiquid and the trend adverse to ``side``; parametric market only); ``latencies``: latency
    scenario names or ``<n>us``/``<n>ms`` (default for market making: none, colocated, proximity,
    cloud, retail; for the execution ids: none run, see the module docstring; ``[]`` for none);
    ``dynamics``: ``None`` (default: the id's registered market, :func:`registered_dynamics`),
    ``"parametric"`` or ``"learned"`` (regimes skipped). Tick-level ids: ``world`` (default the id's
    registered tick world, ``replay``) instead of ``dynamics``; ``horizon_min`` minutes of 1 s
    decisions; no regime scenarios; latencies default to the four presets (:data:`TICK_LATENCIES`);
    ``start`` (``HH:MM[:SS]``) fixes the window and ``data`` the LOBSTER file. ``progress``: called with a label after each
    strategy run (progress bars); when it has a ``set_total(n)`` method, that is called first with the
    number of runs.
    """
    spec = _spec.get_spec(env_id)
    fam = spec.family
    tick = _is_tick(spec)
    if fam in _MM_FAMILIES:
        if side is not None or quantity is not None:
            raise ReportError(f"{env_id}: market making has no parent order; omit side and quantity")
    else:
        if side is None:
            side = DEFAULT_SIDE
        if quantity is None:
            quantity = default_quantity(env_id)
        if side not in ("buy", "sell"):
            raise ReportError(f"side must be 'buy' or 'sell', got {side!r}")
        positive("quantity", quantity, error=ReportError, what="a positive number of shares")
    integer("horizon", horizon_min, error=ReportError, what="a positive whole number of minutes")
    non_negative("risk aversion R", risk_aversion, error=ReportError)
    if tick:
        if dynamics is not None:
            raise ReportError(f"{env_id} has no bar dynamics; its market is a tick world: pass world= (--world)")
        if world is None:
            world = spec.default_kwargs.get("world", "replay")
        dynamics = world if isinstance(world, str) else getattr(world, "name", type(world).__name__)
    elif world is not None:
        raise ReportError(f"world= picks the tick world of the event-level ids; {env_id} takes dynamics=")
    if dynamics is None:
        dynamics = registered_dynamics(env_id)
    if not tick and dynamics not in ("parametric", "learned"):
        raise ReportError(f"dynamics must be 'parametric' or 'learned', got {dynamics!r}")
    if start is not None and dynamics != "parametric" and not tick:
        raise ReportError(f"start/data condition the parametric market; {env_id} runs on the {dynamics} market "
                          "by default: pass dynamics='parametric' (--dynamics parametric)")
    env_kwargs = _order_kwargs(env_id, fam, side, quantity, horizon_min, dynamics, world)
    if scenarios is None:  # the adverse trend for the order's side
        scenarios = [("trending_up" if sc == "trending" and side == "buy" else sc) for sc in DEFAULT_SCENARIOS]
    regimes_skipped = None
    if tick:
        regimes_skipped = (f"regime scenarios transform the parametric bar market's parameters; the tick world "
                           f"{dynamics!r} has none")
        scenarios = []
    elif dynamics != "parametric":
        regimes_skipped = (f"regime scenarios transform the parametric market's parameters; with dynamics="
                           f"{dynamics!r} only the base market is simulated")
        scenarios = []
    scenarios = list(dict.fromkeys([base_scenario, *scenarios]))
    latency_note = None
    if latencies is None:
        if spec.latency == "wrapper":
            latency_note = LATENCY_NOTE.format(dt=float(env_kwargs.get("dt", 60.0)))
            latencies = []
        elif tick:
            latencies = TICK_LATENCIES
        else:
            latencies = DEFAULT_LATENCIES
    if spec.latency == "none" and latencies:
        latency_note = f"{env_id} has no latency model; no latency scenarios run"
        latencies = []
    latencies = list(dict.fromkeys(latencies))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wanted = list(strategies) if strategies else list(spec.default_strategies)
    usable, skipped = _usable(env_id, wanted, env_kwargs)
    if not usable:
        raise StrategyError(f"none of the strategies {wanted} is available: {skipped}")
    bench = "twap" if "twap" in usable else usable[0]
    common = dict(env_id=env_id, n_paths=n_paths, seed=seed, start=start, data=data, n_boot=n_boot,
                  risk_aversion=risk_aversion, progress=progress)
    # pilot: TWAP's shortfall sd sets the env's mean-variance weight for risk-aware schedules
    lam = 0.0
    if fam == "execution":
        if risk_aversion > 0 and "twap" in usable:
            pilot = run_counterfactual(strategies=["twap"], scenario=base_scenario, env_kwargs=env_kwargs,
                                       **{**common, "n_paths": min(n_paths, 500), "progress": None})
            sd = pilot.summaries["twap"].std
            lam = risk_aversion / (2.0 * sd) if sd > 0 else 0.0
        env_kwargs["risk_aversion"] = lam
    others = [s for s in scenarios if s != base_scenario]
    lat_names = [f"latency:{x}" for x in latencies]
    if progress is not None and hasattr(progress, "set_total"):
        progress.set_total(len(usable) * (1 + len(others) + len(lat_names)))
    results: dict[str, CounterfactualResult] = {}
    base = run_counterfactual(strategies=usable, scenario=base_scenario, benchmark=bench, env_kwargs=env_kwargs,
                              record=record, **common)
    results[base_scenario] = base
    more = run_scenarios([*others, *lat_names], use_ray=use_ray, strategies=usable, benchmark=bench,
                         env_kwargs=env_kwargs, adverse_bps_per_s=adverse_bps_per_s, **common) \
        if others or lat_names else {}
    results.update({k: v for k, v in more.items() if k in others})
    lat_results = {k.split(":", 1)[1]: v for k, v in more.items() if k in lat_names}
    wall = time.perf_counter() - t0
    best = _best(base)
    ranking = sorted((s for s in base.summaries.values() if not is_bound(s.strategy)), key=lambda s: s.objective)
    bounds = [s.strategy for s in base.summaries.values() if is_bound(s.strategy)]
    per_scenario_best = {sc: _best(r).strategy for sc, r in results.items()}
    per_latency_best = {sc: _best(r).strategy for sc, r in lat_results.items()}
    ac_is_twap = [n for n, s in base.summaries.items() if _spec.baseline_base(n.lower()) == "ac" and bench == "twap"
                  and lam == 0.0 and _same_as_benchmark(s)] if fam == "execution" else []
    figures = _plots(out, base, results, lat_results, spec, env_kwargs, risk_aversion) if plots else {}
    if spec.latency == "wrapper":
        lat_model = (f"LatencyDynamics around the {dynamics} market: each child order reaches the market L s after "
                     f"the decision and pays sigma sqrt(L) z (+ adverse drift {adverse_bps_per_s:g} bps/s x L)")
    elif tick:
        lat_model = (f"the tick env's own latency (every order, modify and cancel reaches the venue after the "
                     f"scenario's entry latency and the agent sees the book one market-data latency late; the "
                     f"same seeds, so the same windows and random streams, in every scenario; see {env_id})")
    elif spec.latency == "env":
        lat_model = f"the env's own latency setting (quotes and cancels in flight; see {env_id})"
    else:
        lat_model = latency_note
    if not lat_results and latency_note:
        lat_model = latency_note
    latency_paired = _latency_pairs(lat_results, base.metric, n_boot, seed)
    doc: dict[str, Any] = {
        "inputs": {"side": side, "quantity": quantity, "horizon_min": horizon_min, "risk_aversion": risk_aversion,
                   "n_paths": n_paths, "seed": seed, "env_id": env_id, "env_kwargs": env_kwargs,
                   "dynamics": dynamics, "mean_variance_lambda_per_bps": lam, "start": start,
                   "data": str(data) if data else None, "adverse_bps_per_s": adverse_bps_per_s},
        "generated": f"simulated market paths ({base.market} market); not real executions",
        "market": base.market,
        "metric": base.metric,
        "metric_units": spec.metric_units,
        "lower_is_better": base.lower_is_better,
        "objective": (f"mean + {risk_aversion} * std of {base.metric}" if base.lower_is_better
                      else f"-mean + {risk_aversion} * std of {base.metric}"),
        "recommendation": {"strategy": best.strategy, "objective": best.objective, "mean": best.mean,
                           "std": best.std},
        "ranking": [s.strategy for s in ranking],
        "bounds": bounds,
        "ac_equals_twap": ac_is_twap,
        "best_by_scenario": per_scenario_best,
        "scenarios": {sc: r.to_dict() for sc, r in results.items()},
        "regimes_skipped": regimes_skipped,
        "latency_model": lat_model,
        "latency": {sc: r.to_dict() for sc, r in lat_results.items()},
        "best_by_latency": per_latency_best,
        "latency_paired": latency_paired,
        "skipped_strategies": skipped,
        "conditioning": base.conditioning,
        "figures": figures,
        "wall_s": wall,
    }
    (out / "report.json").write_text(json.dumps(doc, indent=2, default=_json_default))
    (out / "report.md").write_text(_markdown(doc, results, lat_results, base_scenario, bench, spec))
    return doc


def _latency_pairs(lat_results: dict[str, CounterfactualResult], metric: str, n_boot: int,
                   seed: int) -> dict[str, dict[str, Any]]:
    """Per strategy: the slowest latency scenario's metric minus the fastest's on the same paths (seeds),
    mean and paired-bootstrap 95% CI (empty with fewer than two scenarios)."""
    from lobworld.scenarios.counterfactual import paired_bootstrap_ci, parse_latency

    if len(lat_results) < 2:
        return {}
    order = sorted(lat_results, key=lambda k: parse_latency(k).one_way_us)
    fast, slow = order[0], order[-1]
    out: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A7]))
    for name, pr in lat_results[slow].paths.items():
        a = pr.infos[metric]
        b = lat_results[fast].paths[name].infos[metric]
        m, lo, hi = paired_bootstrap_ci(a, b, n_boot=n_boot, rng=rng)
        out[name] = {"slow": slow, "fast": fast, "diff_mean": m, "diff_ci95": (lo, hi)}
    return out


def _same_as_benchmark(s: Any, tol: float = 1e-9) -> bool:
    """True when a strategy's paired difference to the benchmark is zero (to ``tol``) on every resample."""
    return s.diff_mean is not None and abs(s.diff_mean) <= tol and max(abs(s.diff_ci95[0]), abs(s.diff_ci95[1])) <= tol


def _best(r: CounterfactualResult):
    """The summary with the lowest objective among the strategies that may be recommended (not bounds)."""
    cands = [s for s in r.summaries.values() if not is_bound(s.strategy)] or list(r.summaries.values())
    return min(cands, key=lambda s: round(s.objective, 9))  # a tie within rounding goes to the earlier (benchmark)


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    return repr(o)


def _markdown(doc: dict[str, Any], results: dict[str, CounterfactualResult],
              lat_results: dict[str, CounterfactualResult], base_sc: str, bench: str, spec: _spec.EnvSpec) -> str:
    inp = doc["inputs"]
    base = results[base_sc]
    rec = doc["recommendation"]
    R = inp["risk_aversion"]
    unit = spec.metric_unit
    fam = spec.family
    if fam in _MM_FAMILIES:
        title = f"# Strategy report: market making for {inp['horizon_min']} minutes"
    else:
        title = f"# Pre-trade report: {inp['side']} {inp['quantity']:,.0f} shares over {inp['horizon_min']} minutes"
    L = [title, "",
         f"**Simulated**, not real executions: {inp['n_paths']:,} market paths per strategy and scenario "
         f"(seeds {inp['seed']}..{inp['seed'] + inp['n_paths'] - 1}, the same paths for every strategy) in "
         f"`{inp['env_id']}`. Market: **{base.market}** dynamics"
         + (" (calibrated on GOOG 2012-06-21)" if inp["dynamics"] == "parametric" and not doc["conditioning"] else "")
         + f". Metric: `{base.metric}` ({doc['metric_units']}).", ""]
    if doc["conditioning"]:
        c = doc["conditioning"]
        L += [f"Market conditioned on the book at {c['start']} from `{pathlib.Path(c['source']).name}`: "
              f"mid {c['s0']:.4f} USD, spread {c['spread']:.4f} USD, volatility {c['sigma_per_minute']:.4f} USD/min, "
              f"volume {c['volume_rate']:.2f} shares/s (window {c['window_minutes']:.0f} min).", ""]
    L += ["## Recommendation", "",
          f"**{rec['strategy']}**: minimises {doc['objective']} with R = {R} "
          f"(objective {rec['objective']:.2f} {unit}; mean {rec['mean']:.2f} {unit}, std {rec['std']:.2f} {unit}) "
          f"in the `{base_sc}` scenario ({base.market}).", ""]
    if inp["mean_variance_lambda_per_bps"]:
        L += [f"Risk-aware schedules use the env's mean-variance weight lambda = R / (2 sd_TWAP) = "
              f"{inp['mean_variance_lambda_per_bps']:.4g} per bps.", ""]
    if doc["ac_equals_twap"]:
        L += [f"Almgren-Chriss is TWAP exactly here: with risk aversion R = {R} its mean-variance weight lambda is 0, "
              "and the lambda = 0 schedule is the linear (TWAP) one, so the `ac` row repeats `twap` on the same paths "
              "(paired differences below 1e-9 bps: float rounding), not a bug. Give R > 0 (--risk-aversion) for a front-loaded schedule.", ""]
    if doc["bounds"]:
        L += [f"Bounds, not candidates: {', '.join(f'`{b}`' for b in doc['bounds'])} sees information a trader does "
              "not have (the dark pools' hidden liquidity); its row shows the best achievable, and it is never "
              "recommended.", ""]
    sec_keys = sorted({k for s in base.summaries.values() for k in s.secondary} - {"completion"})
    L += [f"## Strategies (`{base_sc}` scenario, {base.market}; `{base.metric}` in {doc['metric_units']})", "",
          "| strategy | mean | 95% CI | std | q05 | q50 | q95 | completion | objective | "
          f"diff vs {bench} (95% paired bootstrap CI) |" + "".join(f" {k} |" for k in sec_keys),
          "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(sec_keys)]
    for s in sorted(base.summaries.values(), key=lambda s: (is_bound(s.strategy), round(s.objective, 9))):
        if s.diff_mean is None:
            diff = "benchmark"
        elif _same_as_benchmark(s):
            diff = f"0 (identical to {bench} on every path)"
        else:
            diff = f"{s.diff_mean:+.2f} ({s.diff_ci95[0]:+.2f} .. {s.diff_ci95[1]:+.2f})"
        extra = "".join(f" {_fmt(s.secondary.get(k), 3)} |" for k in sec_keys)
        label = f"{s.strategy} (bound)" if is_bound(s.strategy) else s.strategy
        L.append(f"| {label} | {s.mean:.2f} | {s.ci95[0]:.2f} .. {s.ci95[1]:.2f} | {s.std:.2f} | {s.q05:.2f} | "
                 f"{s.q50:.2f} | {s.q95:.2f} | {_fmt(s.completion_rate, 3)} | {s.objective:.2f} | {diff} |{extra}")
    strategies = list(base.summaries)
    L += ["", f"## Sensitivity to market regime ({doc['objective']}, {unit})", ""]
    if doc["regimes_skipped"]:
        L += [f"Not run: {doc['regimes_skipped']}.", ""]
    else:
        from lobworld.scenarios.presets import REGIMES

        L += ["| scenario | market | " + " | ".join(strategies) + " | best |", "|---" * (len(strategies) + 3) + "|"]
        for sc, r in results.items():
            row = " | ".join(f"{r.summaries[s].objective:.2f}" for s in strategies)
            L.append(f"| {sc} | {r.market} | {row} | {doc['best_by_scenario'][sc]} |")
        L += ["", "Scenarios: " + "; ".join(f"`{sc}`: {REGIMES[sc].description}" for sc in results if sc in REGIMES)
              + ".", ""]
    L += [f"## Sensitivity to latency ({base.market.split(' + ')[0]})", ""]
    if not lat_results:
        L += [f"Not run: {doc['latency_model'] or 'no latency scenarios requested'}.", ""]
    else:
        L += [f"Model: {doc['latency_model']}. Mean of `{base.metric}` ({unit}) per strategy and latency scenario "
              "(same market paths in every scenario), then the objective.", "",
              "| latency | one way | " + " | ".join(f"{s} mean" for s in strategies) + " | "
              + " | ".join(f"{s} objective" for s in strategies) + " | best |",
              "|---" * (2 * len(strategies) + 3) + "|"]
        from lobworld.scenarios.counterfactual import parse_latency

        for sc, r in lat_results.items():
            ow = parse_latency(sc).one_way_us
            ow_s = f"{ow / 1000:g} ms" if ow >= 1000 else f"{ow:g} us"
            means = " | ".join(f"{r.summaries[s].mean:.4f}" for s in strategies)
            objs = " | ".join(f"{r.summaries[s].objective:.4f}" for s in strategies)
            L.append(f"| {sc} | {ow_s} | {means} | {objs} | {doc['best_by_latency'][sc]} |")
        pairs = doc.get("latency_paired") or {}
        if pairs:
            p0 = next(iter(pairs.values()))
            L += ["", f"`{p0['slow']}` minus `{p0['fast']}` on the same paths (seeds), mean {base.metric} ({unit}) "
                  "and 95% paired bootstrap CI: "
                  + "; ".join(f"{s} {v['diff_mean']:+.4f} ({v['diff_ci95'][0]:+.4f} .. {v['diff_ci95'][1]:+.4f})"
                              for s, v in pairs.items()) + "."]
        ref = lat_results.get("none")
        if ref is not None and spec.latency == "wrapper":
            worst = max(lat_results, key=lambda k: parse_latency(k).one_way_us)
            d = {s: lat_results[worst].summaries[s].mean - ref.summaries[s].mean for s in strategies}
            L += ["", f"Largest latency (`{worst}`) minus no latency, mean {base.metric}: "
                  + ", ".join(f"{s} {v:+.4f} {unit}" for s, v in d.items())
                  + f". With one child order per {inp['env_kwargs'].get('dt', 60.0):g} s step the mid moves "
                  "little over milliseconds: without adverse drift the effect is noise of sd sigma sqrt(L) per share "
                  "(hundredths of a bps), far below the differences between strategies."]
        L += [""]
    if doc["skipped_strategies"]:
        L += ["Skipped strategies: " + "; ".join(f"{k} ({v})" for k, v in doc["skipped_strategies"].items()), ""]
    if doc["figures"]:
        L += ["## Figures", ""] + [f"![{k}]({v})" for k, v in doc["figures"].items()] + [""]
    L += [f"Wall time {doc['wall_s']:.1f} s."]
    return "\n".join(L) + "\n"


_METRIC_FILES = {"shortfall_bps": "shortfall", "cost_bps": "cost", "pnl": "pnl"}
"""File-name stem of each metric's distribution plot."""


def _step_label(env_kwargs: dict[str, Any], fam: str) -> str:
    """The length of one env step in words, for axis labels."""
    if fam == "dark_pool":
        from lobworld.envs.dark_pool import DarkPoolConfig

        return f"{DarkPoolConfig().dt:g} s each"
    dt = float(env_kwargs.get("dt", 60.0 if fam == "execution" else 1.0))
    return f"{dt / 60:g} min each" if dt >= 60 else f"{dt:g} s each"


def _plots(out: pathlib.Path, base: CounterfactualResult, results: dict[str, CounterfactualResult],
           lat_results: dict[str, CounterfactualResult], spec: _spec.EnvSpec, env_kwargs: dict[str, Any],
           R: float) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, str] = {}
    names = list(base.paths)
    unit = spec.metric_units
    fam = spec.family
    # 1. metric distributions
    fig, ax = plt.subplots(figsize=(8, 4.5))
    vals = [base.paths[n].infos[base.metric] for n in names]
    spread_out = [v for v in vals if np.ptp(v) > 1e-9]  # deterministic strategies are drawn as lines
    lo, hi = np.quantile(np.concatenate(spread_out or vals), [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    bins = np.linspace(lo, hi, 60)
    for j, (n, v) in enumerate(zip(names, vals)):
        color = f"C{j % 10}"
        if np.ptp(v) > 1e-9:
            ax.hist(v, bins=bins, histtype="step", lw=1.5, color=color, label=f"{n} (mean {v.mean():.1f})")
        elif lo <= v[0] <= hi:
            ax.axvline(v[0], color=color, lw=1.5, ls="--", label=f"{n} (deterministic, {v[0]:.1f})")
        else:
            ax.plot([], [], color=color, ls="--", label=f"{n} (deterministic, {v[0]:.1f}: off scale)")
    ax.set_xlabel(f"{base.metric} ({unit})")
    ax.set_ylabel("paths")
    ax.set_title(f"Simulated {base.metric} per strategy ({base.n_paths:,} common paths, {base.scenario}, {base.market})",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    dist_name = f"{_METRIC_FILES.get(base.metric, base.metric)}_distributions.png"
    fig.savefig(out / dist_name, dpi=110)
    plt.close(fig)
    figs[f"{base.metric} distributions"] = dist_name
    # 2. trajectories: mean executed fraction per step (orders) or mean inventory (market making)
    order = fam not in _MM_FAMILIES
    scale = float(env_kwargs.get("quantity", env_kwargs.get("order_size", 1.0))) if order else \
        float(env_kwargs.get("inventory_limit", 1000.0))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for n in names:
        o0 = base.paths[n].trajectories.get("obs0")
        if o0 is None:
            continue
        if order:
            y = (1.0 - np.where(np.isnan(o0), 0.0, o0)).mean(axis=0)  # finished paths have executed everything
        else:
            y = np.nanmean(o0 * scale, axis=0)
        ax.plot(np.arange(len(y)), y, marker="." if len(y) < 200 else None, label=n)
    ax.set_xlabel(f"step ({_step_label(env_kwargs, fam)})")
    ax.set_ylabel("executed fraction of the order (mean over paths)" if order else "mean inventory (shares)")
    ax.set_title(("Execution trajectories" if order else "Mean inventory") + f" (simulated, {base.market})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    traj_name = "execution_trajectories.png" if order else "mean_inventory.png"
    fig.savefig(out / traj_name, dpi=110)
    plt.close(fig)
    figs["execution trajectories" if order else "mean inventory"] = traj_name
    # 3. inventory paths: a few sample paths per strategy
    k = len(names)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.6), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], names):
        o0 = base.paths[n].trajectories.get("obs0")
        if o0 is None:
            continue
        for j in range(min(20, o0.shape[0])):
            ax.plot(o0[j] * scale, lw=0.8, alpha=0.6)
        ax.set_title(n)
        ax.set_xlabel(f"step ({_step_label(env_kwargs, fam)})")
    axes[0, 0].set_ylabel("shares remaining" if order else "inventory (shares)")
    fig.suptitle(f"Inventory paths (20 simulated paths each, {base.market})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "inventory_paths.png", dpi=110)
    plt.close(fig)
    figs["inventory paths"] = "inventory_paths.png"
    # 4. regime and 5. latency sensitivity
    sign = "" if base.lower_is_better else "-"
    objective = f"{sign}mean + {R:g} x std of {base.metric} ({spec.metric_unit})"
    for key, res, fname, title in (("scenario sensitivity", results, "scenario_sensitivity.png", "market regime"),
                                   ("latency sensitivity", lat_results, "latency_sensitivity.png", "latency")):
        if not res or (key == "scenario sensitivity" and len(res) < 2):
            continue
        scs = list(res)
        fig, ax = plt.subplots(figsize=(9, 4.5))
        w = 0.8 / max(len(names), 1)
        ref = scs[0]
        for j, n in enumerate(names):
            y = [res[s].summaries[n].objective for s in scs]
            if key == "latency sensitivity":  # small effects: the change against the first scenario is what shows
                y = [v - res[ref].summaries[n].objective for v in y]
            ax.bar(np.arange(len(scs)) + j * w, y, width=w, label=n)
        ax.set_xticks(np.arange(len(scs)) + 0.4 - w / 2, scs)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_ylabel(objective if key == "scenario sensitivity" else f"change vs {ref}:\n{objective}")
        ax.set_title(f"Sensitivity to {title} (simulated, {base.market.split(' + ')[0]})", fontsize=9)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        figs[key] = fname
    return figs

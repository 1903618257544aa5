"""Pre-trade report: which execution strategy to use for an order, and how sensitive that choice is.

:func:`pre_trade_report` simulates the order (``side``, ``quantity`` shares over
``horizon_min`` minutes in one-minute steps) in ``LOB-Execution-v0`` for each
candidate strategy on the same market paths (common random numbers), under the
base market and each regime scenario (:mod:`lobworld.scenarios.presets`), and
recommends the strategy that minimises ``mean + R * std`` of the implementation
shortfall (bps of arrival notional) in the base scenario. Everything in the
report is SIMULATED (parametric Almgren-Chriss market calibrated on GOOG
2012-06-21, or conditioned on a historical book with ``start``/``data``); no
number in it is a real execution.

Strategies that need a risk-aversion parameter (the Almgren-Chriss schedule)
receive the env's mean-variance weight ``lambda`` (1/bps) = ``R / (2 sd_TWAP)``,
with ``sd_TWAP`` TWAP's shortfall standard deviation on a pilot of the base
scenario's paths: at the optimum of ``mean + R sd`` the marginal rate between
mean and variance is ``R / (2 sd)``, so this is the mean-variance weight whose
solution is (to first order) the ``mean + R sd`` optimum. Schedules that read market
parameters (AC, POV) are rebuilt for each regime's parameters (the trader is assumed to
know the regime); ``lambda`` stays the base scenario's.

Latency: the execution env trades one market order per minute; order-entry
latency (microseconds to milliseconds) is not part of its model, so latency
presets are applied only to envs whose config has a ``latency`` field (market
making); the report says so instead of showing made-up numbers.

Output folder: ``report.md``, ``report.json``, ``shortfall_distributions.png``,
``execution_trajectories.png``, ``inventory_paths.png``, ``scenario_sensitivity.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lobworld.scenarios.counterfactual import (
    CounterfactualResult,
    StrategyError,
    resolve_strategy,
    run_counterfactual,
    run_scenarios,
)

__all__ = ["pre_trade_report", "DEFAULT_STRATEGIES", "DEFAULT_SCENARIOS"]

DEFAULT_STRATEGIES = ("twap", "vwap", "pov", "ac", "aggressive")
DEFAULT_SCENARIOS = ("calm", "normal", "volatile", "illiquid", "trending")
ENV_ID = "LOB-Execution-v0"


def _usable(strategies: Sequence[str], env_kwargs: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    from lobworld.envs import make_sb3_vec_env

    core = make_sb3_vec_env(ENV_ID, 1, **env_kwargs).core
    ok, skipped = [], {}
    for s in strategies:
        try:
            resolve_strategy(s, ENV_ID, core)
            ok.append(s)
        except StrategyError as exc:
            skipped[s] = str(exc)
    return ok, skipped


def _fmt(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def pre_trade_report(side: str, quantity: float, horizon_min: int, risk_aversion: float, out: str | pathlib.Path,
                     strategies: Sequence[str] | None = None, n_paths: int = 2000, seed: int = 0,
                     scenarios: Sequence[str] | None = None, base_scenario: str = "normal",
                     start: str | None = None, data: str | pathlib.Path | None = None, use_ray: bool = False,
                     n_boot: int = 1000, record: int = 200, plots: bool = True) -> dict[str, Any]:
    """Simulate, recommend, plot; write ``report.md`` / ``report.json`` into ``out``; return the JSON dict."""
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    if not (quantity > 0 and math.isfinite(quantity)):
        raise ValueError(f"quantity must be a positive number of shares, got {quantity!r}")
    if not isinstance(horizon_min, int) or horizon_min < 1:
        raise ValueError(f"horizon must be a positive whole number of minutes, got {horizon_min!r}")
    if not (risk_aversion >= 0 and math.isfinite(risk_aversion)):
        raise ValueError(f"risk aversion R must be a finite number >= 0, got {risk_aversion!r}")
    if scenarios is None:  # the adverse trend for the order's side
        scenarios = [("trending_up" if sc == "trending" and side == "buy" else sc) for sc in DEFAULT_SCENARIOS]
    scenarios = list(dict.fromkeys([base_scenario, *scenarios]))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env_kwargs: dict[str, Any] = {"side": side, "quantity": float(quantity), "horizon": int(horizon_min), "dt": 60.0}
    wanted = list(strategies) if strategies else list(DEFAULT_STRATEGIES)
    usable, skipped = _usable(wanted, env_kwargs)
    if not usable:
        raise StrategyError(f"none of the strategies {wanted} is available: {skipped}")
    bench = "twap" if "twap" in usable else usable[0]
    common = dict(env_id=ENV_ID, n_paths=n_paths, seed=seed, start=start, data=data, n_boot=n_boot,
                  risk_aversion=risk_aversion)
    # pilot: TWAP's shortfall sd sets the env's mean-variance weight for risk-aware schedules
    lam = 0.0
    if risk_aversion > 0 and "twap" in usable:
        pilot = run_counterfactual(strategies=["twap"], scenario=base_scenario, env_kwargs=env_kwargs,
                                   **{**common, "n_paths": min(n_paths, 500)})
        sd = pilot.summaries["twap"].std
        lam = risk_aversion / (2.0 * sd) if sd > 0 else 0.0
    env_kwargs["risk_aversion"] = lam
    results: dict[str, CounterfactualResult] = {}
    base = run_counterfactual(strategies=usable, scenario=base_scenario, benchmark=bench, env_kwargs=env_kwargs,
                              record=record, **common)
    results[base_scenario] = base
    others = [s for s in scenarios if s != base_scenario]
    if others:
        results.update(run_scenarios(others, use_ray=use_ray, strategies=usable, benchmark=bench,
                                     env_kwargs=env_kwargs, **common))
    wall = time.perf_counter() - t0
    best = min(base.summaries.values(), key=lambda s: s.objective)
    ranking = sorted(base.summaries.values(), key=lambda s: s.objective)
    per_scenario_best = {sc: min(r.summaries.values(), key=lambda s: s.objective).strategy
                         for sc, r in results.items()}
    figures = _plots(out, base, results, quantity, risk_aversion) if plots else {}
    doc: dict[str, Any] = {
        "inputs": {"side": side, "quantity": quantity, "horizon_min": horizon_min, "risk_aversion": risk_aversion,
                   "n_paths": n_paths, "seed": seed, "env_id": ENV_ID, "env_kwargs": env_kwargs,
                   "mean_variance_lambda_per_bps": lam, "start": start, "data": str(data) if data else None},
        "generated": "simulated market paths (parametric model); not real executions",
        "metric": base.metric,
        "objective": f"mean + {risk_aversion} * std of {base.metric}",
        "recommendation": {"strategy": best.strategy, "objective": best.objective, "mean": best.mean,
                           "std": best.std},
        "ranking": [s.strategy for s in ranking],
        "best_by_scenario": per_scenario_best,
        "scenarios": {sc: r.to_dict() for sc, r in results.items()},
        "skipped_strategies": skipped,
        "latency": "not modelled by LOB-Execution-v0 (one market order per 60 s step); no latency scenarios run",
        "conditioning": base.conditioning,
        "figures": figures,
        "wall_s": wall,
    }
    (out / "report.json").write_text(json.dumps(doc, indent=2, default=_json_default))
    (out / "report.md").write_text(_markdown(doc, results, base_scenario, bench))
    return doc


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    return repr(o)


def _markdown(doc: dict[str, Any], results: dict[str, CounterfactualResult], base_sc: str, bench: str) -> str:
    inp = doc["inputs"]
    base = results[base_sc]
    rec = doc["recommendation"]
    R = inp["risk_aversion"]
    L = [f"# Pre-trade report: {inp['side']} {inp['quantity']:,.0f} shares over {inp['horizon_min']} minutes", "",
         f"**Simulated**, not real executions: {inp['n_paths']:,} market paths per strategy and scenario "
         f"(seeds {inp['seed']}..{inp['seed'] + inp['n_paths'] - 1}, the same paths for every strategy) in "
         f"`{inp['env_id']}` with parametric dynamics (calibrated on GOOG 2012-06-21).", ""]
    if doc["conditioning"]:
        c = doc["conditioning"]
        L += [f"Market conditioned on the book at {c['start']} from `{pathlib.Path(c['source']).name}`: "
              f"mid {c['s0']:.4f} USD, spread {c['spread']:.4f} USD, volatility {c['sigma_per_minute']:.4f} USD/min, "
              f"volume {c['volume_rate']:.2f} shares/s (window {c['window_minutes']:.0f} min).", ""]
    L += ["## Recommendation", "",
          f"**{rec['strategy']}**: minimises mean + R x std of {base.metric} with R = {R} "
          f"(objective {rec['objective']:.2f} bps; mean {rec['mean']:.2f} bps, std {rec['std']:.2f} bps) in the "
          f"`{base_sc}` scenario.", ""]
    if inp["mean_variance_lambda_per_bps"]:
        L += [f"Risk-aware schedules use the env's mean-variance weight lambda = R / (2 sd_TWAP) = "
              f"{inp['mean_variance_lambda_per_bps']:.4g} per bps.", ""]
    L += [f"## Strategies (`{base_sc}` scenario; shortfall in bps of arrival notional, positive = cost)", "",
          "| strategy | mean | 95% CI | std | q05 | q50 | q95 | completion | mean + R std | "
          f"diff vs {bench} (95% paired bootstrap CI) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(base.summaries.values(), key=lambda s: s.objective):
        diff = "benchmark" if s.diff_mean is None else \
            f"{s.diff_mean:+.2f} ({s.diff_ci95[0]:+.2f} .. {s.diff_ci95[1]:+.2f})"
        L.append(f"| {s.strategy} | {s.mean:.2f} | {s.ci95[0]:.2f} .. {s.ci95[1]:.2f} | {s.std:.2f} | {s.q05:.2f} | "
                 f"{s.q50:.2f} | {s.q95:.2f} | {_fmt(s.completion_rate, 3)} | {s.objective:.2f} | {diff} |")
    L += ["", "## Sensitivity to market regime (mean + R std, bps)", ""]
    strategies = list(base.summaries)
    L += ["| scenario | " + " | ".join(strategies) + " | best |", "|---" * (len(strategies) + 2) + "|"]
    from lobworld.scenarios.presets import REGIMES

    for sc, r in results.items():
        row = " | ".join(f"{r.summaries[s].objective:.2f}" for s in strategies)
        L.append(f"| {sc} | {row} | {doc['best_by_scenario'][sc]} |")
    L += ["", "Scenarios: " + "; ".join(f"`{sc}`: {REGIMES[sc].description}" for sc in results if sc in REGIMES)
          + ".", "", "## Latency", "", "Not modelled by `LOB-Execution-v0`: it sends one market order per 60 s "
          "step, so order-entry latency (microseconds to milliseconds) does not enter its dynamics; no latency "
          "numbers are shown.", ""]
    if doc["skipped_strategies"]:
        L += ["Skipped strategies: " + "; ".join(f"{k} ({v})" for k, v in doc["skipped_strategies"].items()), ""]
    if doc["figures"]:
        L += ["## Figures", ""] + [f"![{k}]({v})" for k, v in doc["figures"].items()] + [""]
    L += [f"Wall time {doc['wall_s']:.1f} s."]
    return "\n".join(L) + "\n"


def _plots(out: pathlib.Path, base: CounterfactualResult, results: dict[str, CounterfactualResult],
           quantity: float, R: float) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, str] = {}
    names = list(base.paths)
    # 1. shortfall distributions
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
    ax.set_xlabel(f"{base.metric} (bps of arrival notional; positive = cost)")
    ax.set_ylabel("paths")
    ax.set_title(f"Simulated shortfall per strategy ({base.n_paths:,} common paths, {base.scenario})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "shortfall_distributions.png", dpi=110)
    plt.close(fig)
    figs["shortfall distributions"] = "shortfall_distributions.png"
    # 2. execution trajectories: mean executed fraction per step
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for n in names:
        rem = base.paths[n].trajectories.get("obs0")
        if rem is None:
            continue
        executed = 1.0 - np.where(np.isnan(rem), 0.0, rem)  # finished paths have executed everything
        ax.plot(np.arange(executed.shape[1]), executed.mean(axis=0), marker=".", label=n)
    ax.set_xlabel("step (minutes)")
    ax.set_ylabel("executed fraction of the order (mean over paths)")
    ax.set_title("Execution trajectories (simulated)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "execution_trajectories.png", dpi=110)
    plt.close(fig)
    figs["execution trajectories"] = "execution_trajectories.png"
    # 3. inventory paths: a few sample paths per strategy
    k = len(names)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.6), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], names):
        rem = base.paths[n].trajectories.get("obs0")
        if rem is None:
            continue
        for j in range(min(20, rem.shape[0])):
            ax.plot(rem[j] * quantity, lw=0.8, alpha=0.6)
        ax.set_title(n)
        ax.set_xlabel("step (minutes)")
    axes[0, 0].set_ylabel("shares remaining")
    fig.suptitle("Inventory paths (20 simulated paths each)")
    fig.tight_layout()
    fig.savefig(out / "inventory_paths.png", dpi=110)
    plt.close(fig)
    figs["inventory paths"] = "inventory_paths.png"
    # 4. scenario sensitivity
    scs = list(results)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    w = 0.8 / max(len(names), 1)
    for j, n in enumerate(names):
        ax.bar(np.arange(len(scs)) + j * w, [results[s].summaries[n].objective for s in scs], width=w, label=n)
    ax.set_xticks(np.arange(len(scs)) + 0.4 - w / 2, scs)
    ax.set_ylabel(f"mean + {R} x std of shortfall (bps)")
    ax.set_title("Sensitivity to market regime (simulated)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scenario_sensitivity.png", dpi=110)
    plt.close(fig)
    figs["scenario sensitivity"] = "scenario_sensitivity.png"
    return figs

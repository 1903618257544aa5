"""Baselines of the tick-level envs across the four latency presets (docs/envs/tick.md, "Results").

Market making (fixed spread, Avellaneda-Stoikov, Cartea-Jaimungal) and execution (TWAP, VWAP, POV,
AC, passive-first, aggressive) on the parametric tick world and on the replay tape of the shipped
GOOG hour, through :func:`lobworld.scenarios.counterfactual.run_counterfactual`: path ``i`` is seed
``seed + i`` in every strategy and latency scenario (the same real windows on the replay, the same
random numbers on the parametric world). Prints Markdown tables.

    python benchmarks/tick_baseline_results.py [--paths 128] [--horizon 300] [--worlds parametric,replay]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lobworld  # noqa: F401
from lobworld.scenarios.counterfactual import mean_ci, paired_bootstrap_ci, run_counterfactual

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"
LATENCIES = ("colocated", "proximity", "cloud", "retail")
MM_STRATS = ("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal")
EX_STRATS = ("twap", "vwap", "pov", "ac:0.5", "passive-first", "aggressive")


def _ci(x: np.ndarray) -> str:
    lo, hi = mean_ci(x)
    return f"{x.mean():.2f} ({lo:.2f} .. {hi:.2f})"


def market_making(world: str, n: int, horizon: int, seed: int) -> list[str]:
    res = {lat: run_counterfactual(MM, list(MM_STRATS), n_paths=n, seed=seed, scenario=f"latency:{lat}",
                                   env_kwargs={"world": world, "horizon": horizon}, n_boot=1000)
           for lat in LATENCIES}
    rows = [f"Market making, {world} world: {n} paths of {horizon} x 1 s (seeds {seed}..{seed + n - 1}); "
            "mean (95% CI) over paths.", "",
            "| strategy | latency | PnL USD | Sharpe/step | fills | filled shares | adverse sel. USD | "
            "adverse ticks/share | queue wait s | max abs inventory |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in MM_STRATS:
        for lat in LATENCIES:
            inf = res[lat].paths[s].infos
            sh = inf["filled_shares_bid"] + inf["filled_shares_ask"]
            rows.append(f"| {s} | {lat} | {_ci(inf['pnl'])} | {inf['sharpe_per_step'].mean():.3f} | "
                        f"{inf['fills'].mean():.1f} | {sh.mean():.0f} | {inf['adverse_selection_usd'].mean():.2f} | "
                        f"{np.nanmean(inf['adverse_selection_ticks']):.2f} | {inf['queue_wait_s'].mean():.2f} | "
                        f"{inf['inventory_max_abs'].mean():.0f} |")
    rows += ["", f"Colocated minus retail, same paths ({world} world), mean and 95% paired bootstrap CI:", "",
             "| strategy | PnL USD | fills | adverse sel. USD |", "|---|---:|---:|---:|"]
    for s in MM_STRATS:
        c, r = res["colocated"].paths[s].infos, res["retail"].paths[s].infos
        cells = []
        for k in ("pnl", "fills", "adverse_selection_usd"):
            m, lo, hi = paired_bootstrap_ci(c[k], r[k], n_boot=2000, rng=seed)
            cells.append(f"{m:+.2f} ({lo:+.2f} .. {hi:+.2f})")
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return rows


def execution(world: str, n: int, horizon: int, seed: int, quantity: int) -> list[str]:
    rows = [f"Execution, {world} world: sell {quantity} shares in {horizon} x 1 s, {n} paths (seeds "
            f"{seed}..{seed + n - 1}); shortfall in bps of the arrival mid, mean (95% CI); difference vs TWAP "
            "on the same paths (95% paired bootstrap CI).", "",
            "| strategy | latency | shortfall bps | vs twap | passive shares | forced shares |",
            "|---|---|---:|---:|---:|---:|"]
    for lat in ("colocated", "retail"):
        r = run_counterfactual(EX, list(EX_STRATS), n_paths=n, seed=seed, scenario=f"latency:{lat}",
                               env_kwargs={"world": world, "horizon": horizon, "quantity": quantity}, n_boot=2000)
        for s in EX_STRATS:
            sm, inf = r.summaries[s], r.paths[s].infos
            d = "benchmark" if sm.diff_mean is None else \
                f"{sm.diff_mean:+.2f} ({sm.diff_ci95[0]:+.2f} .. {sm.diff_ci95[1]:+.2f})"
            rows.append(f"| {s} | {lat} | {_ci(inf['shortfall_bps'])} | {d} | {inf['passive_shares'].mean():.0f} | "
                        f"{inf['forced_shares'].mean():.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=128)
    ap.add_argument("--horizon", type=int, default=300)
    ap.add_argument("--quantity", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worlds", default="parametric,replay")
    ap.add_argument("--only", choices=["mm", "ex", "both"], default="both")
    a = ap.parse_args()
    t0 = time.perf_counter()
    out: list[str] = []
    for w in a.worlds.split(","):
        if a.only in ("mm", "both"):
            out += market_making(w, a.paths, a.horizon, a.seed) + [""]
        if a.only in ("ex", "both"):
            out += execution(w, a.paths, a.horizon, a.seed, a.quantity) + [""]
    print("\n".join(out))
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

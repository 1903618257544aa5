"""Shortfall of the execution baselines on the parametric and the learned market.

Usage::

    python benchmarks/execution_baselines.py [--episodes 2000] [--seed 0] [--out results.json]

Runs TWAP, Almgren-Chriss (lambda = 0.02), the VWAP profile, POV 10% and the aggressive
policy on ``LOB-Execution-v0`` with ``dynamics="parametric"`` (calibrated on GOOG
2012-06-21) and ``dynamics="learned"`` (the shipped GRU, the registered default), on the
same seeds (common random numbers within each market), and prints mean / sd of the
implementation shortfall in bps with a 95% CI of the mean. Also the tracking error (sd of
the slippage vs market VWAP) of TWAP and VWAP on ``LOB-VWAP-v0``. Every number is
simulated (generated paths), not real executions.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from lobworld.agents.execution import AggressivePolicy, POVPolicy, VWAPPolicy, almgren_chriss_policy, evaluate, twap_policy
from lobworld.envs.dynamics import ParametricParams

T = 30


def policies() -> dict:
    return {
        "TWAP": twap_policy(T),
        "Almgren-Chriss lambda=0.02": almgren_chriss_policy(0.02),
        "VWAP profile": VWAPPolicy(T),
        "POV 10%": POVPolicy(0.1, volume_per_step=ParametricParams().volume_rate * 60.0),
        "aggressive": AggressivePolicy(),
    }


def run(episodes: int, seed: int) -> dict:
    out: dict = {"episodes": episodes, "seed": seed, "shortfall": {}, "vwap_tracking_sd": {}}
    for market in ("parametric", "learned"):
        rows = {}
        for name, pol in policies().items():
            r = evaluate(pol, "LOB-Execution-v0", episodes, seed=seed, dynamics=market)["shortfall_bps"]
            half = 1.96 * r.std(ddof=1) / np.sqrt(len(r))
            rows[name] = {"mean": float(r.mean()), "sd": float(r.std(ddof=1)), "ci95": [float(r.mean() - half),
                                                                                     float(r.mean() + half)]}
        out["shortfall"][market] = rows
        trk = {}
        for name in ("TWAP", "VWAP profile"):
            r = evaluate(policies()[name], "LOB-VWAP-v0", episodes, seed=seed, dynamics=market)
            trk[name] = float(np.std(r["benchmark_slippage_bps"], ddof=1))
        out["vwap_tracking_sd"][market] = trk
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    res = run(a.episodes, a.seed)
    print(f"{'policy':28s} {'market':10s} {'mean':>8s} {'sd':>7s}  95% CI of the mean")
    for market, rows in res["shortfall"].items():
        for name, r in rows.items():
            print(f"{name:28s} {market:10s} {r['mean']:8.2f} {r['sd']:7.2f}  [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
    for market, trk in res["vwap_tracking_sd"].items():
        print(f"LOB-VWAP-v0 tracking sd ({market}): " + ", ".join(f"{k} {v:.2f} bps" for k, v in trk.items()))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

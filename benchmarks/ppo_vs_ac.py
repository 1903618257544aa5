"""PPO vs the Almgren-Chriss closed form and TWAP on LOB-Execution-v0 (parametric dynamics).

Trains PPO with the shipped defaults (agents/configs/execution.toml) on the
mean-variance execution task with risk aversion ``lambda`` (1/bps), then evaluates
PPO, the AC schedule for the same lambda and TWAP on the same ``--paths`` market paths
(seeds from 10,000,000: disjoint from training and evaluation-callback seeds).
Objective = mean + lambda * var of the realised shortfall (bps), with paired-bootstrap
95% CIs of each strategy's objective minus AC's. All numbers are simulated.

    .venv/bin/python benchmarks/ppo_vs_ac.py --timesteps 300000 --out runs/ppo_vs_ac
"""

import argparse
import json
import pathlib
import time

import numpy as np

from lobworld.agents.almgren_chriss import ACProblem, ac_trajectory, cost_variance, expected_cost
from lobworld.agents.config import load_config
from lobworld.agents.training import train
from lobworld.envs.execution import ExecutionConfig
from lobworld.scenarios.counterfactual import run_counterfactual

ENV = "LOB-Execution-v0"


def objective_ci(a, b, lam, n_boot=2000, seed=0):
    """Objective(a) - objective(b) (mean + lam var) and its paired-bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    n = len(a)
    obj = lambda x: x.mean(axis=-1) + lam * x.var(axis=-1, ddof=1)  # noqa: E731
    d = float(obj(a) - obj(b))
    ds = np.empty(n_boot)
    for i in range(0, n_boot, 100):
        idx = rng.integers(0, n, size=(100, n))
        ds[i:i + 100] = obj(a[idx]) - obj(b[idx])
    lo, hi = np.quantile(ds, [0.025, 0.975])
    return d, float(lo), float(hi)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timesteps", type=int, default=None)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="runs/ppo_vs_ac")
    ap.add_argument("--config", default=None, help="TOML overriding the shipped defaults")
    args = ap.parse_args()
    cfg = load_config(ENV, args.config, timesteps=args.timesteps, device=args.device, progress_bar=False)
    # the registered id runs on the learned market by default; this comparison is on the parametric one
    env_kwargs = {"risk_aversion": args.lam, "dynamics": "parametric"}
    cfg = cfg.replace(env_kwargs=env_kwargs)
    res = train(cfg, args.out)
    print(f"trained {res.num_timesteps} steps in {res.wall_s:.0f} s on {res.device}")
    strategies = {"PPO (final)": str(res.model_path), "AC": "ac", "TWAP": "twap"}
    if res.best_model_path:
        strategies["PPO (best by eval)"] = str(res.best_model_path)
    cf = run_counterfactual(ENV, list(strategies.values()), n_paths=args.paths, seed=10_000_000,
                            env_kwargs=env_kwargs, benchmark="ac")
    pr = ACProblem.from_env(ExecutionConfig(risk_aversion=args.lam))
    x = ac_trajectory(pr, args.lam)
    closed = expected_cost(pr, x) + args.lam * cost_variance(pr, x)
    ac = cf.paths["ac"].infos["shortfall_bps"]
    out = {"lambda": args.lam, "timesteps": res.num_timesteps, "train_wall_s": res.wall_s, "device": res.device,
           "paths": args.paths, "ac_closed_form_objective": closed, "strategies": {}}
    for label, name in strategies.items():
        v = cf.paths[name].infos["shortfall_bps"]
        s = cf.summaries[name]
        obj = float(v.mean() + args.lam * v.var(ddof=1))
        d, lo, hi = objective_ci(v, ac, args.lam) if name != "ac" else (0.0, 0.0, 0.0)
        out["strategies"][label] = {"mean_bps": s.mean, "ci95": s.ci95, "std_bps": s.std, "objective": obj,
                                    "objective_minus_ac": d, "objective_minus_ac_ci95": [lo, hi],
                                    "objective_rel_to_ac": obj / float(ac.mean() + args.lam * ac.var(ddof=1)) - 1}
        print(f"{label:<20} mean {s.mean:7.3f} bps [{s.ci95[0]:.3f}, {s.ci95[1]:.3f}]  std {s.std:7.3f}  "
              f"objective {obj:8.3f}  vs AC {d:+.3f} [{lo:+.3f}, {hi:+.3f}] ({out['strategies'][label]['objective_rel_to_ac']:+.1%})")
    print(f"AC closed-form objective {closed:.3f}")
    pathlib.Path(args.out, "ppo_vs_ac.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"total wall {time.time() - t:.0f} s")

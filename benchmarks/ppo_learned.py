"""PPO vs TWAP and Almgren-Chriss on LOB-Execution-v0 with the LEARNED market (shipped GRU).

Trains PPO with the shipped defaults (agents/configs/execution.toml) on
``dynamics="learned"`` with risk aversion 0 (minimise expected implementation
shortfall), then evaluates PPO, TWAP and the AC schedule (lambda = 0.02 per bps) on
the same ``--paths`` simulated market paths (seeds from 20,000,000, disjoint from
training and evaluation-callback seeds), with paired-bootstrap 95% CIs of each
strategy's mean shortfall minus TWAP's. All numbers are simulated.

    .venv/bin/python benchmarks/ppo_learned.py --timesteps 200000 --out runs/ppo_learned
"""

import argparse
import json
import pathlib
import time

from lobworld.agents.config import load_config
from lobworld.agents.training import train
from lobworld.scenarios.counterfactual import run_counterfactual

ENV = "LOB-Execution-v0"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timesteps", type=int, default=None)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="runs/ppo_learned")
    ap.add_argument("--config", default=None, help="TOML overriding the shipped defaults")
    args = ap.parse_args()
    env_kwargs = {"dynamics": "learned"}
    cfg = load_config(ENV, args.config, timesteps=args.timesteps, device=args.device, progress_bar=False)
    cfg = cfg.replace(env_kwargs=env_kwargs)
    res = train(cfg, args.out)
    print(f"trained {res.num_timesteps} steps in {res.wall_s:.0f} s on {res.device}")
    strategies = {"TWAP": "twap", "PPO (final)": str(res.model_path), "AC (lambda 0.02)": "ac:0.02"}
    if res.best_model_path:
        strategies["PPO (best by eval)"] = str(res.best_model_path)
    cf = run_counterfactual(ENV, list(strategies.values()), n_paths=args.paths, seed=20_000_000,
                            env_kwargs=env_kwargs, benchmark="twap")
    out = {"dynamics": "learned", "timesteps": res.num_timesteps, "train_wall_s": res.wall_s,
           "device": res.device, "paths": args.paths, "strategies": {}}
    for label, name in strategies.items():
        s = cf.summaries[name]
        out["strategies"][label] = {"mean_bps": s.mean, "ci95": s.ci95, "std_bps": s.std,
                                    "minus_twap_bps": s.diff_mean, "minus_twap_ci95": s.diff_ci95}
        diff = "" if s.diff_mean is None else f"  vs TWAP {s.diff_mean:+.3f} [{s.diff_ci95[0]:+.3f}, {s.diff_ci95[1]:+.3f}]"
        print(f"{label:<20} mean {s.mean:7.3f} bps [{s.ci95[0]:.3f}, {s.ci95[1]:.3f}]  std {s.std:7.3f}{diff}")
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out, "ppo_learned.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"total wall {time.time() - t:.0f} s")

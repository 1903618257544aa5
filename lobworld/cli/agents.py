"""``lobworld train`` and ``lobworld evaluate``."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

from lobworld.cli.scenarios import add_env_arg, add_market_args, add_world_arg, env_kwargs_from_args, \
    registered_market_note, strategy_help
from lobworld.envs import spec as _spec

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a Stable-Baselines3 agent on a batched lobworld env",
                       description="Train PPO/SAC/A2C/TD3 on the native batched VecEnv. Settings: the env's "
                                   "shipped defaults, then --config, then the flags given.")
    add_env_arg(p, required=True)
    p.add_argument("--algo", choices=["PPO", "SAC", "A2C", "TD3"], default=None)
    p.add_argument("--timesteps", type=int, default=None, help="total env steps")
    p.add_argument("--n-envs", type=int, default=None, help="envs in the batch")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.add_argument("--config", default=None, help="TOML file of TrainConfig fields")
    p.add_argument("--normalize", action="store_true", default=None, help="VecNormalize observations and rewards")
    p.add_argument("--out", default="runs/train", help="run folder (default runs/train)")
    p.add_argument("--resume", default=None, help="checkpoint or model .zip to continue from (the run folder may "
                   "then hold files already)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its model, "
                   "statistics, checkpoints, best model, logs and run record are deleted first); without it, or "
                   "--resume, a non-empty --out is refused")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dynamics", choices=["parametric", "learned"], default=None,
                   help="market dynamics (default: the config's env_kwargs, else "
                        + registered_market_note() + "); recorded in lobworld_run.json")
    add_world_arg(p)
    p.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate a trained model or a baseline strategy",
                       description="Run one episode on each of --episodes paths (seeds seed+i) and report the "
                                   "episode metric (shortfall_bps / pnl / return) with a 95% CI.")
    add_env_arg(e, required=True)
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="trained model .zip")
    g.add_argument("--strategy", help=strategy_help(prefix="", suffix=" -- or const:X"))
    e.add_argument("--episodes", type=int, default=1000)
    e.add_argument("--seed", type=int, default=10_000_000, help="first path seed (default 10000000: "
                   "disjoint from training seeds)")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--no-progress", action="store_true", help="no progress line (none with --json either)")
    add_market_args(e, "default: for --model the market it was trained on (lobworld_run.json), else "
                    + registered_market_note())
    e.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from lobworld.agents.config import load_config
    from lobworld.agents.training import train

    cfg = load_config(args.env, args.config, algo=args.algo, timesteps=args.timesteps, n_envs=args.n_envs,
                      seed=args.seed, device=args.device, normalize=args.normalize,
                      progress_bar=False if args.no_progress else None)
    if args.dynamics or args.world:
        cfg = cfg.replace(env_kwargs=env_kwargs_from_args(args, dict(cfg.env_kwargs)))
    from lobworld.cli._progress import compile_notice

    compile_notice()
    res = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    if res.interrupted:
        print(f"interrupted at {res.num_timesteps} steps: final model saved to {res.model_path}, run record "
              f"{res.run_record} (continue with --resume {res.model_path})")
        return 130
    print(f"trained {cfg.algo} on {cfg.env_id} ({_market_of(cfg.env_id, cfg.env_kwargs)} market) for "
          f"{res.num_timesteps} steps in {res.wall_s:.1f} s on {res.device}")
    print(f"model: {res.model_path}")
    if res.vecnormalize_path:
        print(f"VecNormalize stats: {res.vecnormalize_path}")
    if res.best_model_path:
        print(f"best model (eval seeds from {cfg.eval_seed}): {res.best_model_path} "
              f"(last eval mean reward {res.last_eval_mean_reward:.4g})")
    return 0


def _market_of(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """The dynamics name an env id runs on with ``env_kwargs`` (its spec's registered default otherwise);
    for the tick ids, the tick world's name."""
    spec = _spec.get_spec(env_id)
    if spec.module == "lobworld.envs.tick":
        w = env_kwargs.get("world", spec.default_kwargs.get("world", "replay"))
        return (w if isinstance(w, str) else getattr(w, "name", type(w).__name__)) + " tick world"
    dyn = env_kwargs.get("dynamics")
    if dyn is None:
        dyn = _spec.get_spec(env_id).default_kwargs.get("dynamics", "parametric")
    return dyn if isinstance(dyn, str) else getattr(dyn, "name", type(dyn).__name__)


def _env_kwargs_of_model(model: str, env_id: str) -> dict[str, Any]:
    for folder in (pathlib.Path(model).parent, pathlib.Path(model).parent.parent):
        f = folder / "lobworld_run.json"
        if f.is_file():
            try:
                cfg = json.loads(f.read_text()).get("config", {})
            except json.JSONDecodeError:
                return {}
            if cfg.get("env_id") == env_id:
                kw = dict(cfg.get("env_kwargs") or {})
                if _spec.get_spec(env_id).module == "lobworld.envs.tick":
                    return kw  # a tick world (world=) moves the books; its env_kwargs say which
                meta = json.loads(f.read_text())
                dyn = meta.get("dynamics")
                if "dynamics" not in kw and dyn in ("parametric", "learned"):
                    kw["dynamics"] = dyn  # the market it was trained on, even if the id's default changed
                elif "dynamics" not in kw and "dynamics" not in meta:
                    print(f"note: {f} does not record the market the model was trained on (runs before "
                          "2026-11-22 used the parametric market for every id); evaluating on the id's registered "
                          "market unless --dynamics is given", file=sys.stderr)
                return kw
            return {}
    return {}


def _evaluate(args: argparse.Namespace) -> int:
    from lobworld.scenarios.counterfactual import run_counterfactual

    name = args.model if args.model else args.strategy
    if args.model and not pathlib.Path(args.model).is_file():
        raise FileNotFoundError(f"model file {args.model} does not exist")
    kw = env_kwargs_from_args(args, _env_kwargs_of_model(args.model, args.env) if args.model else {})
    t0 = time.perf_counter()
    from lobworld.cli._progress import compile_notice, progress

    compile_notice()
    with progress(f"evaluate {pathlib.Path(name).name} on {args.env}", args.episodes,
                  enabled=not (args.json or args.no_progress)) as advance:
        res = run_counterfactual(args.env, [name], n_paths=args.episodes, seed=args.seed, env_kwargs=kw,
                                 on_episodes=advance.by)
    wall = time.perf_counter() - t0
    s = res.summaries[name]
    if args.json:
        d = res.to_dict()
        d["wall_s"] = wall
        json.dump(d, sys.stdout, indent=2)
        print()
        return 0
    print(f"{name} on {args.env} ({res.market} market): {s.n_paths} episodes, seeds {args.seed}.."
          f"{args.seed + s.n_paths - 1}")
    print(f"  {res.metric}: mean {s.mean:.3f} (95% CI {s.ci95[0]:.3f} .. {s.ci95[1]:.3f}), std {s.std:.3f}, "
          f"q05/q50/q95 {s.q05:.3f} / {s.q50:.3f} / {s.q95:.3f}")
    if s.completion_rate is not None:
        print(f"  completion rate: {s.completion_rate:.4f}")
    for k, v in s.secondary.items():
        if k != "completion":
            print(f"  mean {k}: {v:.4g}")
    return 0

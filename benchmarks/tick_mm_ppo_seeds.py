"""PPO on ``LOB-TickMarketMaking-v0`` in the learned tick world, over training seeds, per asset (docs/tick_rl.md).

The market-making counterpart of ``benchmarks/tick_ppo_seeds.py``. For each asset (GOOG L10, AMZN L5,
2012-06-21) and each training seed:

1. **Train** PPO with :func:`lobworld.agents.training.train` (the shipped tick market-making defaults,
   ``agents/configs/tick_market_making.toml``, with this study's ``timesteps`` / ``n_envs`` / evaluation
   settings) on the **discrete** variant (``discrete=True``: quote ``discrete_size`` shares at levels
   ``discrete_levels`` from the touch on each side, cancel both, or keep both) in ``world`` (default
   ``"learned"``, the tick GRU). Episode starts come from the training hours only: the day is cut at
   ``split`` (14:00; the tick GRU's held-out block starts there).
2. **Evaluate in the world**: :func:`lobworld.scenarios.backtest.backtest_mm_model` with ``world=world`` on
   the held-out window starts of the full file, ``eval_paths`` paths per window, path ``p`` seeded
   ``eval_seed + p`` for the model and every baseline (common random numbers; the same for every seed).
3. **Evaluate on the tape**: the same function on the real tape (replay world) of the same windows under
   each of ``tape_latencies`` (the same latency draws for every strategy).

Outputs in ``out`` (default ``runs/tick_mm_ppo_seeds``): ``<asset>/seed<k>/`` run folders and the
evaluation tables ``world.csv`` / ``tape.csv``, ``seeds.csv`` (one row per asset, seed, evaluation and
latency: :func:`seed_metrics`), ``summary.json`` / ``summary.md`` (mean and 95% t interval across seeds,
min, max) and ``baselines.md`` (the baselines' means, identical for every seed). PnL in USD per 300 s
window, + = profit.

    .venv/bin/python benchmarks/tick_mm_ppo_seeds.py --timesteps 500000 --out runs/tick_mm_ppo_seeds
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import lobworld  # noqa: F401  (registers the ids and the generated tick worlds)
from lobworld.agents.config import load_config
from lobworld.agents.training import train
from lobworld.scenarios.backtest import TICK_MM_BASELINES, backtest_mm_model, mm_paired_table

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tick_ppo_seeds import (  # noqa: E402
    ASSET_FILES, _start_ns, load_study_config, seed_loop, study_arguments, t_ci,
)

ENV = "LOB-TickMarketMaking-v0"
#: the model's per-seed metrics, each the mean over windows (and paths) of one evaluation and latency
METRICS = ("reward", "pnl", "sharpe_per_step", "fills", "filled_shares", "inventory_max_abs",
           "inventory_terminal_abs", "terminated", "adverse_selection_ticks", "adverse_10s_ticks",
           "quoting_share", "minus_best_pnl")


@dataclass(frozen=True)
class StudyConfig:
    """Settings of one study (every seed of every asset uses the same)."""

    assets: dict[str, str] = field(default_factory=lambda: {k: str(v) for k, v in ASSET_FILES.items()})
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    world: str = "learned"
    timesteps: int = 500_000
    n_envs: int = 64
    eval_freq: int = 100_000
    n_eval_episodes: int = 64
    horizon: int = 300
    """Decisions per episode."""
    dt: float = 1.0
    latency: str = "colocated"
    """Latency preset of training and of the world evaluation."""
    tape_latencies: tuple[str, ...] = ("colocated", "retail")
    split: str | None = "14:00"
    eval_starts: tuple[str, ...] = tuple(f"{h:02d}:{m:02d}" for h in (14, 15) for m in range(0, 60, 5))[:-1]
    """Held-out window starts, 14:00 .. 15:50 every 5 min (300 s windows)."""
    eval_paths: int = 2
    eval_seed: int = 7_000_000
    baselines: tuple[str, ...] = TICK_MM_BASELINES
    model: str = "final"
    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Further env kwargs of training (e.g. ``{"phi": 1e-5}``); the backtests take them from the run record."""
    train_overrides: dict[str, Any] = field(default_factory=dict)


def train_seed(cfg: StudyConfig, train_data, seed: int, run_dir) -> pathlib.Path:
    tc = load_config(ENV, None, timesteps=cfg.timesteps, n_envs=cfg.n_envs, seed=seed, device="cpu",
                     progress_bar=False, eval_freq=cfg.eval_freq, n_eval_episodes=cfg.n_eval_episodes,
                     checkpoint_freq=max(cfg.timesteps // 2, 1), **cfg.train_overrides)
    kw = {"world": cfg.world, "data": str(pathlib.Path(train_data).resolve()), "discrete": True,
          "horizon": cfg.horizon, "dt": cfg.dt, "latency": cfg.latency, **cfg.env_overrides}
    res = train(tc.replace(env_kwargs=kw), run_dir, overwrite=True)
    if cfg.model == "best" and res.best_model_path is not None:
        return res.best_model_path
    return res.model_path


def evaluate_seed(cfg: StudyConfig, full_data, model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(world table, tape table) of ``model`` and the baselines on the held-out windows of ``full_data``."""
    starts = [_start_ns(full_data, s) for s in cfg.eval_starts]
    world = backtest_mm_model(model, full_data, starts, baselines=cfg.baselines, latencies=(cfg.latency,),
                              seed=cfg.eval_seed, world=cfg.world, n_paths=cfg.eval_paths).table
    tape = backtest_mm_model(model, full_data, starts, baselines=cfg.baselines, latencies=cfg.tape_latencies,
                             seed=cfg.eval_seed).table
    return world, tape


def seed_metrics(table: pd.DataFrame) -> dict[str, Any]:
    """The model's metrics in one evaluation table of one latency (rows of :func:`backtest_mm_model`).

    Means over windows and paths of the env's episode info: ``reward`` (episode return), ``pnl`` (USD),
    ``sharpe_per_step``, ``fills``, ``filled_shares`` (both sides), ``inventory_max_abs``,
    ``inventory_terminal_abs``, ``terminated`` (share of episodes ended at the inventory limit),
    ``adverse_selection_ticks`` / ``adverse_10s_ticks`` (over episodes with passive fills; the 10 s tape
    markout is NaN in a generated world), ``quoting_share`` (share of episodes with at least one fill);
    paired on the same windows and paths: ``minus_best_pnl``, the model minus the baseline of highest mean
    PnL in this table (``best_baseline``)."""
    key = ["start", "path"]
    m = table[table.strategy == "model"].sort_values(key)
    means = table.groupby("strategy")["pnl"].mean().drop("model")
    best = str(means.idxmax())
    b = table[table.strategy == best].sort_values(key)
    if len(b) != len(m) or not (b[key].to_numpy() == m[key].to_numpy()).all():
        raise ValueError(f"seed_metrics: the {best} rows do not pair with the model's")
    out = {"reward": float(m.episode_return.mean()), "pnl": float(m.pnl.mean()),
           "sharpe_per_step": float(m.sharpe_per_step.mean()), "fills": float(m.fills.mean()),
           "filled_shares": float((m.filled_shares_bid + m.filled_shares_ask).mean()),
           "inventory_max_abs": float(m.inventory_max_abs.mean()),
           "inventory_terminal_abs": float(m.inventory_terminal.abs().mean()),
           "terminated": float(m.terminated.mean()),
           "adverse_selection_ticks": float(m.adverse_selection_ticks.mean()),
           "adverse_10s_ticks": float(m.adverse_10s_ticks.mean()),
           "quoting_share": float((m.fills > 0).mean()),
           "minus_best_pnl": float(np.mean(m.pnl.to_numpy() - b.pnl.to_numpy())), "best_baseline": best,
           "best_baseline_pnl": float(means[best]), "episodes": int(len(m))}
    for s, v in means.items():
        out[f"baseline_pnl_{s}"] = float(v)
    return out


def summarize(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per asset, evaluation, latency and metric: mean across seeds, 95% t interval, min, max."""
    out = []
    for (asset, ev, lat), g in rows.groupby(["asset", "eval_world", "latency"], sort=False):
        for k in METRICS:
            x = g[k].to_numpy(np.float64)
            mean, lo, hi = t_ci(x)
            out.append(dict(asset=asset, eval_world=ev, latency=lat, metric=k, seeds=len(x), mean=mean, ci_lo=lo,
                            ci_hi=hi, min=float(np.nanmin(x)), max=float(np.nanmax(x))))
    # the latency effect on the model's own PnL, paired per seed (retail minus colocated, tape)
    tape = rows[rows.eval_world == "tape"]
    lats = list(dict.fromkeys(tape.latency))
    if len(lats) > 1:
        for asset, g in tape.groupby("asset", sort=False):
            base = g[g.latency == lats[0]].set_index("seed").pnl
            for lat in lats[1:]:
                d = (g[g.latency == lat].set_index("seed").pnl - base).dropna().to_numpy()
                mean, lo, hi = t_ci(d)
                out.append(dict(asset=asset, eval_world="tape", latency=f"{lat} - {lats[0]}",
                                metric="pnl", seeds=len(d), mean=mean, ci_lo=lo, ci_hi=hi,
                                min=float(d.min()), max=float(d.max())))
    return out


def summary_markdown(summary: list[dict[str, Any]], rows: pd.DataFrame, cfg: StudyConfig) -> str:
    lines = [f"PPO on {ENV} (discrete), world {cfg.world!r}, {len(cfg.seeds)} seeds x {cfg.timesteps} steps "
             f"({cfg.n_envs} envs); {cfg.horizon} x {cfg.dt:g} s, training latency {cfg.latency}; held-out windows "
             f"{cfg.eval_starts[0]}..{cfg.eval_starts[-1]} ({len(cfg.eval_starts)}), world: {cfg.eval_paths} paths "
             "each. PnL in USD per window.", ""]
    cols = ("pnl", "minus_best_pnl", "sharpe_per_step", "fills", "filled_shares", "inventory_max_abs",
            "inventory_terminal_abs", "terminated", "adverse_selection_ticks", "quoting_share")
    sm = {(s["asset"], s["eval_world"], s["latency"], s["metric"]): s for s in summary}
    for (asset, ev, lat), g in rows.groupby(["asset", "eval_world", "latency"], sort=False):
        lines += [f"### {asset}, {'learned world' if ev == 'world' and cfg.world == 'learned' else ev}, {lat}", "",
                  "| seed | " + " | ".join(cols) + " | best baseline |", "|---|" + "---:|" * len(cols) + "---|"]
        for _, r in g.iterrows():
            lines.append(f"| {int(r.seed)} | " + " | ".join(f"{r[c]:.2f}" for c in cols)
                         + f" | {r.best_baseline} ({r.best_baseline_pnl:.2f}) |")
        cells = [f"{sm[(asset, ev, lat, c)]['mean']:.2f} ({sm[(asset, ev, lat, c)]['ci_lo']:.2f} .. "
                 f"{sm[(asset, ev, lat, c)]['ci_hi']:.2f})" for c in cols]
        lines += ["| mean (95% CI) | " + " | ".join(cells) + " | |", ""]
    for s in summary:
        if " - " in s["latency"]:
            lines.append(f"{s['asset']} tape, model PnL {s['latency']}: {s['mean']:+.2f} ({s['ci_lo']:+.2f} .. "
                         f"{s['ci_hi']:+.2f}) USD per window, paired per seed.")
    return "\n".join(lines) + "\n"


def baselines_markdown(out: pathlib.Path, cfg: StudyConfig) -> str:
    """The baselines' mean PnL, fills and adverse selection per asset, evaluation and latency (seed 0's
    tables; the baselines do not depend on the seed)."""
    lines = ["| asset | where | latency | strategy | PnL | Sharpe/step | fills | max abs inventory | adverse (ticks) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for asset in cfg.assets:
        sd = out / asset / f"seed{cfg.seeds[0]}"
        for ev in ("world", "tape"):
            f = sd / f"{ev}.csv"
            if not f.is_file():
                continue
            t = pd.read_csv(f)
            for (lat, s), g in t.groupby(["latency", "strategy"], sort=False):
                if s == "model":
                    continue
                lines.append(f"| {asset} | {ev} | {lat} | {s} | {g.pnl.mean():.2f} | {g.sharpe_per_step.mean():.3f} | "
                             f"{g.fills.mean():.1f} | {g.inventory_max_abs.mean():.0f} | "
                             f"{g.adverse_selection_ticks.mean():.2f} |")
    return "\n".join(lines) + "\n"


def paired_windows(out: pathlib.Path, cfg: StudyConfig) -> pd.DataFrame:
    """Per asset, evaluation and latency: the model's PnL (its rows of every seed, so a window's mean is over
    seeds and paths) minus each baseline's, paired per window with a 95% t interval across the windows
    (:func:`~lobworld.scenarios.backtest.mm_paired_table`); empty when the per-seed tables are not there."""
    out_rows = []
    for asset in cfg.assets:
        for ev in ("world", "tape"):
            files = [out / asset / f"seed{s}" / f"{ev}.csv" for s in cfg.seeds]
            if not all(f.is_file() for f in files):
                continue
            tabs = [pd.read_csv(f) for f in files]
            table = pd.concat([tabs[0]] + [t[t.strategy == "model"] for t in tabs[1:]], ignore_index=True)
            pr = mm_paired_table(table, ("pnl",))
            pr.insert(0, "eval_world", ev)
            pr.insert(0, "asset", asset)
            out_rows.append(pr)
    return pd.concat(out_rows, ignore_index=True) if out_rows else pd.DataFrame()


def write_summary(out, cfg: StudyConfig, rows: pd.DataFrame) -> list[dict[str, Any]]:
    out = pathlib.Path(out)
    summary = summarize(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    md = summary_markdown(summary, rows, cfg)
    pw = paired_windows(out, cfg)
    if len(pw):
        pw.to_csv(out / "paired_windows.csv", index=False)
        md += ("\n### Model minus each baseline, PnL paired per window (the model's mean over seeds and paths; "
               "95% t interval across windows)\n\n| asset | where | latency | baseline | windows | model | baseline | "
               "model - baseline |\n|---|---|---|---|---:|---:|---:|---:|\n")
        md += "".join(f"| {r.asset} | {r.eval_world} | {r.latency} | {r.baseline} | {r.windows} | {r.model_mean:.1f} | "
                      f"{r.baseline_mean:.1f} | {r['diff']:+.1f} ± {r.ci95_half:.1f} |\n" for _, r in pw.iterrows())
    (out / "summary.md").write_text(md)
    (out / "baselines.md").write_text(baselines_markdown(out, cfg))
    return summary


def _records(asset, seed, world, tape, train_s, eval_s):
    rows = [dict(asset=asset, seed=seed, eval_world=ev, latency=lat, train_s=train_s, eval_s=eval_s,
                 **seed_metrics(g))
            for ev, tab in (("world", world), ("tape", tape)) for lat, g in tab.groupby("latency", sort=False)]
    return rows, (f"{asset} seed {seed}: train {train_s:.0f} s, eval {eval_s:.0f} s; PnL "
                  + ", ".join(f"{r['eval_world']}/{r['latency']} {r['pnl']:.2f} (best {r['best_baseline']} "
                              f"{r['best_baseline_pnl']:.2f}), fills {r['fills']:.1f}" for r in rows))


def run_study(cfg: StudyConfig, out, log=print) -> pd.DataFrame:
    """Train and evaluate every asset and seed of ``cfg`` into ``out`` (the loop of
    ``tick_ppo_seeds.seed_loop``); returns the per-seed rows, with the summary files written."""
    rows = pd.DataFrame(seed_loop(cfg, out, train_seed, evaluate_seed, _records, log))
    write_summary(out, cfg, rows)
    return rows


def main() -> None:
    ap = study_arguments(__doc__.splitlines()[0], StudyConfig, "runs/tick_mm_ppo_seeds")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    if a.summarize_only:
        write_summary(out, load_study_config(out, StudyConfig), pd.read_csv(out / "seeds.csv"))
        print((out / "summary.md").read_text())
        return
    if out.exists() and any(out.iterdir()):
        ap.error(f"--out {out} already holds files; give a new folder (or --summarize-only)")
    import torch

    torch.set_num_threads(1)
    cfg = StudyConfig(assets={k: str(ASSET_FILES[k]) for k in a.assets.split(",")},
                      seeds=tuple(int(s) for s in a.seeds.split(",")), world=a.world, timesteps=a.timesteps,
                      n_envs=a.n_envs, eval_paths=a.eval_paths)
    t = time.perf_counter()
    run_study(cfg, out, log=lambda s: print(s, flush=True))
    print((out / "summary.md").read_text())
    print((out / "baselines.md").read_text())
    print(f"total wall {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()

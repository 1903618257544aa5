"""PPO on ``LOB-TickExecution-v0`` in the learned tick world, over training seeds, per asset (docs/tick_rl.md).

For each asset (GOOG L10, AMZN L5, 2012-06-21) and each training seed:

1. **Train** PPO with :func:`lobworld.agents.training.train` (the shipped tick execution defaults,
   ``agents/configs/tick_execution.toml``, with ``timesteps`` / ``n_envs`` / evaluation settings of this
   study) in ``world`` (default ``"learned"``: the tick GRU) with the same env kwargs for every seed.
   Episode starts are drawn from the *training hours* only: the study writes a copy of the LOBSTER day
   cut at ``split`` (default 14:00, the tick GRU's held-out block starts there) and trains on it.
2. **Evaluate in the world**: :func:`lobworld.scenarios.backtest.run_tick_execution` with
   ``world=world`` on the held-out window starts of the *full* file (conditioned on the real book at
   each start), the model and every baseline of :data:`~lobworld.scenarios.backtest.TICK_STRATEGIES`
   on ``eval_paths`` paths per window, path ``p`` seeded ``eval_seed + p`` in every strategy
   (common random numbers; the same seeds for every training seed).
3. **Evaluate on the tape**: :func:`lobworld.scenarios.backtest.backtest_model` on the same windows of
   the real tape (replay world), against the same baselines.

Outputs in ``out`` (default ``runs/tick_ppo_seeds``): ``<asset>/seed<k>/`` run folders,
``<asset>/seed<k>/world.csv`` and ``tape.csv`` (one row per window, strategy and path: the env's
episode info), ``seeds.csv`` / ``seeds.json`` (one row per asset, seed and world: :func:`seed_metrics`),
``summary.json`` and ``summary.md`` (:func:`summarize`: mean, 95% t interval across seeds, min, max,
max/min ratio). Shortfalls are in bps of the arrival mid, + = cost.

    .venv/bin/python benchmarks/tick_ppo_seeds.py --timesteps 500000 --out runs/tick_ppo_seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import lobworld  # noqa: F401  (registers the ids and the generated tick worlds)
from lobworld.agents.config import load_config
from lobworld.agents.training import train
from lobworld.scenarios.backtest import (
    TICK_STRATEGIES,
    backtest_model,
    load_tick_model,
    run_tick_execution,
)
from lobworld.world_models.data.lobster import parse_lobster_name

ENV = "LOB-TickExecution-v0"
DATA = pathlib.Path("/work/shared/data/lobster")
ASSET_FILES = {"GOOG": DATA / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz",
               "AMZN": DATA / "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"}
#: per-seed metrics, each the mean over windows and paths (bps, shares, USD, fills, fraction)
METRICS = ("reward", "shortfall_bps", "unfilled_shares", "pnl_usd", "passive_fills", "aggressive_fills",
           "passive_shares", "aggressive_shares", "completion", "minus_twap_bps", "minus_best_bps")


def _hms_seconds(hms: str) -> float:
    parts = [float(x) for x in hms.split(":")]
    while len(parts) < 3:
        parts.append(0.0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


@dataclass(frozen=True)
class StudyConfig:
    """Settings of one study (every seed of every asset uses the same)."""

    assets: dict[str, str] = field(default_factory=lambda: {k: str(v) for k, v in ASSET_FILES.items()})
    """Asset name -> LOBSTER message file of the full day (orderbook file beside it)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Training seeds (``TrainConfig.seed``)."""
    world: str = "learned"
    """Tick world PPO trains and is evaluated in (``"learned"``, ``"parametric"``, ``"replay"``)."""
    timesteps: int = 500_000
    """Env steps of PPO training per seed."""
    n_envs: int = 64
    """Training envs."""
    eval_freq: int = 100_000
    """Env steps between the training run's evaluations (best model by them), 0: none."""
    n_eval_episodes: int = 64
    """Episodes per training-time evaluation."""
    side: str = "sell"
    quantity: int = 1000
    """Parent order (shares)."""
    horizon: int = 300
    """Decisions per episode."""
    dt: float = 1.0
    """Seconds per decision."""
    latency: str = "colocated"
    """Latency preset of training and every evaluation."""
    split: str | None = "14:00"
    """Training episodes start before this time (exchange time, ``HH:MM``; the file is cut there);
    None: train on the whole file."""
    eval_starts: tuple[str, ...] = tuple(f"{h:02d}:{m:02d}" for h in (14, 15) for m in range(0, 60, 5))[:-1]
    """Held-out window starts (exchange time) of both evaluations, 14:00 .. 15:50 every 5 min (each window
    is ``horizon * dt`` s and must end before the file's last message)."""
    eval_paths: int = 4
    """Paths per window in the world evaluation (the tape has one)."""
    eval_seed: int = 7_000_000
    """Path ``p`` of every evaluation is seeded ``eval_seed + p``."""
    baselines: tuple[str, ...] = TICK_STRATEGIES
    """Baselines beside the model (``twap`` must be one)."""
    model: str = "final"
    """Which model is evaluated: ``"final"`` (``model.zip``) or ``"best"`` (best by training-time evaluation)."""
    train_overrides: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~lobworld.agents.config.TrainConfig` fields (e.g. ``{"n_steps": 32}``)."""


def crop_lobster(message_path, out_dir, end: str, start: str | None = None) -> pathlib.Path:
    """Write the rows of a LOBSTER day with ``start <= time < end`` (exchange time ``HH:MM[:SS]``;
    ``start`` None: from the file's first row) into ``out_dir`` as a LOBSTER pair named for the new
    window (``TICKER_DATE_STARTMS_ENDMS_{message,orderbook}_L.csv``); returns the message path.
    Reused when it already exists. Raises ``ValueError`` naming the file when no row is left."""
    message_path = pathlib.Path(message_path)
    name = parse_lobster_name(message_path)
    lo_ms = name.start_ms if start is None else int(round(_hms_seconds(start) * 1000))
    hi_ms = int(round(_hms_seconds(end) * 1000))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name.ticker}_{name.date.isoformat()}_{lo_ms}_{hi_ms}"
    out_msg = out_dir / f"{stem}_message_{name.levels}.csv"
    out_ob = out_dir / f"{stem}_orderbook_{name.levels}.csv"
    if out_msg.is_file() and out_ob.is_file():
        return out_msg
    ob_path = message_path.with_name(name.sibling("orderbook"))
    opener = gzip.open if name.gz else open
    with opener(message_path, "rt") as fm, opener(ob_path, "rt") as fo:
        msg, ob = fm.read().splitlines(), fo.read().splitlines()
    if len(msg) != len(ob):
        raise ValueError(f"{message_path}: {len(msg)} message rows but {len(ob)} orderbook rows")
    keep = [i for i, line in enumerate(msg) if lo_ms / 1000 <= float(line.split(",", 1)[0]) < hi_ms / 1000]
    if not keep:
        raise ValueError(f"{message_path}: no rows in {start or 'start'}..{end}")
    out_ob.write_text("\n".join(ob[i] for i in keep) + "\n")
    out_msg.write_text("\n".join(msg[i] for i in keep) + "\n")
    return out_msg


def _env_kwargs(cfg: StudyConfig, train_data) -> dict[str, Any]:
    return {"world": cfg.world, "data": str(pathlib.Path(train_data).resolve()), "side": cfg.side,
            "quantity": cfg.quantity, "horizon": cfg.horizon, "dt": cfg.dt, "latency": cfg.latency}


def _start_ns(path, hms: str) -> int:
    name = parse_lobster_name(path)
    return int(pd.Timestamp(f"{name.date.isoformat()} {hms}", tz="America/New_York").tz_convert("UTC").value)


def train_seed(cfg: StudyConfig, train_data, seed: int, run_dir) -> pathlib.Path:
    """Train one seed into ``run_dir`` (overwriting an earlier run there); returns the model to evaluate."""
    tc = load_config(ENV, None, timesteps=cfg.timesteps, n_envs=cfg.n_envs, seed=seed, device="cpu",
                     progress_bar=False, eval_freq=cfg.eval_freq, n_eval_episodes=cfg.n_eval_episodes,
                     checkpoint_freq=max(cfg.timesteps // 2, 1), **cfg.train_overrides)
    tc = tc.replace(env_kwargs=_env_kwargs(cfg, train_data))
    res = train(tc, run_dir, overwrite=True)
    if cfg.model == "best" and res.best_model_path is not None:
        return res.best_model_path
    return res.model_path


def evaluate_seed(cfg: StudyConfig, full_data, model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(world table, tape table) of ``model`` and the baselines on the held-out windows of ``full_data``."""
    starts = [_start_ns(full_data, s) for s in cfg.eval_starts]
    policy, _, obs_kw = load_tick_model(model)
    horizon_s = cfg.horizon * cfg.dt
    world = run_tick_execution(full_data, starts, ["model", *cfg.baselines], side=cfg.side, quantity=cfg.quantity,
                               horizon_s=horizon_s, interval_s=cfg.dt, world=cfg.world, latency=cfg.latency,
                               n_paths=cfg.eval_paths, seed=cfg.eval_seed, policy=policy, env_kwargs=obs_kw)
    tape = backtest_model(model, full_data, starts, baselines=cfg.baselines, side=cfg.side, quantity=cfg.quantity,
                          horizon_s=horizon_s, interval_s=cfg.dt, latency=cfg.latency, n_paths=1,
                          seed=cfg.eval_seed).table
    return world, tape


def seed_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The model's metrics in one evaluation table (rows of :func:`run_tick_execution`).

    Means over windows and paths of: ``reward`` (the episode return, minus the shortfall), ``shortfall_bps``,
    ``unfilled_shares`` (shares left at the horizon and crossed by the forced completion), ``pnl_usd``
    (minus the shortfall in USD: ``-shortfall_bps * 1e-4 * arrival_price * shares_executed``), fills and shares
    passive / aggressive (aggressive fills include the forced completion's), ``completion``; and, paired on the
    same windows and paths, ``minus_twap_bps`` (model minus TWAP) and ``minus_best_bps`` (model minus the
    baseline of lowest mean shortfall in this table, named in ``best_baseline``). The final inventory is
    always 0 (forced completion), so it is not a column."""
    m = table[table.strategy == "model"].sort_values(["start", "path"])
    key = ["start", "path"]
    means = table.groupby("strategy")["shortfall_bps"].mean().drop("model")
    best = str(means.idxmin())

    def paired(s: str) -> float:
        b = table[table.strategy == s].sort_values(key)
        if len(b) != len(m) or not (b[key].to_numpy() == m[key].to_numpy()).all():
            raise ValueError(f"seed_metrics: the {s} rows do not pair with the model's")
        return float(np.mean(m.shortfall_bps.to_numpy() - b.shortfall_bps.to_numpy()))

    pnl = -m.shortfall_bps * 1e-4 * m.arrival_price * m.shares_executed
    return {"reward": float(m.episode_return.mean()), "shortfall_bps": float(m.shortfall_bps.mean()),
            "unfilled_shares": float(m.forced_shares.mean()), "pnl_usd": float(pnl.mean()),
            "passive_fills": float(m.passive_fills.mean()), "aggressive_fills": float(m.aggressive_fills.mean()),
            "passive_shares": float(m.passive_shares.mean()), "aggressive_shares": float(m.aggressive_shares.mean()),
            "completion": float(m.completion.mean()), "minus_twap_bps": paired("twap"),
            "minus_best_bps": paired(best), "best_baseline": best, "best_baseline_bps": float(means[best]),
            "twap_bps": float(means["twap"]), "episodes": int(len(m))}


def t_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``x`` and its Student-t interval across seeds ``(mean, lo, hi)`` (NaN half-width for one value)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def summarize(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per asset, world and metric of :data:`METRICS` (plus ``world_minus_tape_bps``): the mean across seeds,
    its 95% t interval, min, max and the max/min ratio (NaN when min and max differ in sign or min is 0)."""
    out = []
    rows = rows.copy()
    gap = rows[rows.eval_world == "world"].set_index(["asset", "seed"]).shortfall_bps - \
        rows[rows.eval_world == "tape"].set_index(["asset", "seed"]).shortfall_bps
    for (asset, ev), g in rows.groupby(["asset", "eval_world"], sort=False):
        cols = {k: g[k].to_numpy(np.float64) for k in METRICS}
        if ev == "world":
            cols["world_minus_tape_bps"] = gap.loc[asset].reindex(g.seed).to_numpy(np.float64)
        for k, x in cols.items():
            m, lo, hi = t_ci(x)
            mn, mx = float(x.min()), float(x.max())
            ratio = mx / mn if mn * mx > 0 else float("nan")
            out.append(dict(asset=asset, eval_world=ev, metric=k, seeds=len(x), mean=m, ci_lo=lo, ci_hi=hi,
                            min=mn, max=mx, max_min_ratio=ratio))
    return out


def summary_markdown(summary: list[dict[str, Any]], rows: pd.DataFrame, cfg: StudyConfig) -> str:
    """The tables docs/tick_rl.md quotes: per asset and evaluation, one row per seed and the mean (95% CI)."""
    lines = [f"PPO on {ENV}, world {cfg.world!r}, {len(cfg.seeds)} seeds x {cfg.timesteps} steps ({cfg.n_envs} envs); "
             f"sell {cfg.quantity} in {cfg.horizon} x {cfg.dt:g} s, latency {cfg.latency}; held-out windows "
             f"{cfg.eval_starts[0]}..{cfg.eval_starts[-1]} ({len(cfg.eval_starts)}), world: {cfg.eval_paths} "
             "paths each.", ""]
    cols = ("reward", "shortfall_bps", "unfilled_shares", "pnl_usd", "passive_fills", "aggressive_fills",
            "completion", "minus_twap_bps", "minus_best_bps")
    sm = {(s["asset"], s["eval_world"], s["metric"]): s for s in summary}
    for (asset, ev), g in rows.groupby(["asset", "eval_world"], sort=False):
        lines += [f"### {asset}, {'learned world' if ev == 'world' and cfg.world == 'learned' else ev}", "",
                  "| seed | " + " | ".join(cols) + " | best baseline |", "|---|" + "---:|" * len(cols) + "---|"]
        for _, r in g.iterrows():
            lines.append(f"| {int(r.seed)} | " + " | ".join(f"{r[c]:.2f}" for c in cols)
                         + f" | {r.best_baseline} ({r.best_baseline_bps:.2f}) |")
        cells = []
        for c in cols:
            s = sm[(asset, ev, c)]
            cells.append(f"{s['mean']:.2f} ({s['ci_lo']:.2f} .. {s['ci_hi']:.2f})")
        lines.append("| mean (95% CI) | " + " | ".join(cells) + " | |")
        s = sm[(asset, ev, "shortfall_bps")]
        lines += ["", f"Shortfall across seeds: min {s['min']:.2f}, max {s['max']:.2f}, max/min "
                  f"{s['max_min_ratio']:.2f}; TWAP {g.twap_bps.iloc[0]:.2f} bps."]
        if (asset, ev, "world_minus_tape_bps") in sm:
            s = sm[(asset, ev, "world_minus_tape_bps")]
            lines.append(f"World minus tape shortfall of the same model: {s['mean']:.2f} "
                         f"({s['ci_lo']:.2f} .. {s['ci_hi']:.2f}) bps.")
        lines.append("")
    return "\n".join(lines)


def baseline_table(world: pd.DataFrame, tape: pd.DataFrame) -> pd.DataFrame:
    """Per strategy of one seed's two evaluation tables: mean shortfall in the world and on the tape (bps),
    their difference, and the mean unfilled (forced) and passive shares in each."""
    out = []
    for s in world.strategy.unique():
        w, t = world[world.strategy == s], tape[tape.strategy == s]
        out.append(dict(strategy=s, world_bps=float(w.shortfall_bps.mean()), tape_bps=float(t.shortfall_bps.mean()),
                        world_minus_tape_bps=float(w.shortfall_bps.mean() - t.shortfall_bps.mean()),
                        world_unfilled=float(w.forced_shares.mean()), tape_unfilled=float(t.forced_shares.mean()),
                        world_passive=float(w.passive_shares.mean()), tape_passive=float(t.passive_shares.mean())))
    return pd.DataFrame(out)


def _baseline_markdown(asset: str, tab: pd.DataFrame) -> list[str]:
    lines = [f"### {asset}: baselines (the same paths for every seed), and the seed-0 model", "",
             "| strategy | world bps | tape bps | world - tape | unfilled world | unfilled tape | passive world | "
             "passive tape |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in tab.iterrows():
        lines.append(f"| {r.strategy} | {r.world_bps:.2f} | {r.tape_bps:.2f} | {r.world_minus_tape_bps:+.2f} | "
                     f"{r.world_unfilled:.0f} | {r.tape_unfilled:.0f} | {r.world_passive:.0f} | {r.tape_passive:.0f} |")
    return lines + [""]


def write_summary(out, cfg: StudyConfig, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Write ``seeds.json``, ``summary.json`` and ``summary.md`` (with each asset's baseline table from its
    first seed's evaluation tables) into ``out``; returns the summary."""
    out = pathlib.Path(out)
    (out / "seeds.json").write_text(json.dumps(rows.to_dict(orient="records"), indent=2))
    summary = summarize(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    md = summary_markdown(summary, rows, cfg)
    for asset in cfg.assets:
        sd = out / asset / f"seed{cfg.seeds[0]}"
        if (sd / "world.csv").is_file() and (sd / "tape.csv").is_file():
            md += "\n" + "\n".join(_baseline_markdown(asset, baseline_table(pd.read_csv(sd / "world.csv"),
                                                                                pd.read_csv(sd / "tape.csv"))))
    (out / "summary.md").write_text(md)
    return summary


def load_study_config(out, cls):
    """The ``cls`` (a study's frozen config dataclass) written to ``out/study_config.json``."""
    d = json.loads((pathlib.Path(out) / "study_config.json").read_text())
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def rebuild_summary(out) -> list[dict[str, Any]]:
    """Re-write the summary files of a finished (or partly finished) study from its ``seeds.csv``."""
    return write_summary(out, load_study_config(out, StudyConfig), pd.read_csv(pathlib.Path(out) / "seeds.csv"))


def seed_loop(cfg, out, train_seed_fn, evaluate_seed_fn, records_fn, log=print) -> list[dict[str, Any]]:
    """The loop of a seeds study: for each asset of ``cfg`` (its training copy cut at ``cfg.split``) and
    seed, ``train_seed_fn(cfg, train_data, seed, run_dir) -> model``, ``evaluate_seed_fn(cfg, full_data,
    model) -> (world, tape)`` tables (written as ``world.csv`` / ``tape.csv``), then
    ``records_fn(asset, seed, world, tape, train_s, eval_s) -> (rows, line)``: the rows are appended to
    ``seeds.csv`` after every seed and the line is logged. Returns every row."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    recs: list[dict[str, Any]] = []
    for asset, full in cfg.assets.items():
        train_data = full if cfg.split is None else crop_lobster(full, out / "data", cfg.split)
        for seed in cfg.seeds:
            sd = out / asset / f"seed{seed}"
            t0 = time.perf_counter()
            model = train_seed_fn(cfg, train_data, seed, sd / "run")
            t1 = time.perf_counter()
            world, tape = evaluate_seed_fn(cfg, full, model)
            t2 = time.perf_counter()
            world.to_csv(sd / "world.csv", index=False)
            tape.to_csv(sd / "tape.csv", index=False)
            rows, line = records_fn(asset, seed, world, tape, t1 - t0, t2 - t1)
            recs += rows
            log(line)
            pd.DataFrame(recs).to_csv(out / "seeds.csv", index=False)
    return recs


def _records(asset, seed, world, tape, train_s, eval_s):
    rows = [dict(asset=asset, seed=seed, eval_world=ev, train_s=train_s, eval_s=eval_s, **seed_metrics(tab))
            for ev, tab in (("world", world), ("tape", tape))]
    w, tp = rows
    return rows, (f"{asset} seed {seed}: train {train_s:.0f} s, eval {eval_s:.0f} s; shortfall world "
                  f"{w['shortfall_bps']:.2f} (twap {w['twap_bps']:.2f}) tape {tp['shortfall_bps']:.2f} "
                  f"(twap {tp['twap_bps']:.2f}) bps")


def run_study(cfg: StudyConfig, out, log=print) -> pd.DataFrame:
    """Train and evaluate every asset and seed of ``cfg`` into ``out``; returns the per-seed rows
    (also written as ``seeds.csv``, with ``summary.json`` / ``summary.md``)."""
    rows = pd.DataFrame(seed_loop(cfg, out, train_seed, evaluate_seed, _records, log))
    write_summary(out, cfg, rows)
    return rows


def study_arguments(description: str, cfg_cls, out: str) -> argparse.ArgumentParser:
    """The command-line options both seed studies share (defaults from their config class ``cfg_cls``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--timesteps", type=int, default=cfg_cls.timesteps)
    ap.add_argument("--n-envs", type=int, default=cfg_cls.n_envs)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--assets", default="GOOG,AMZN")
    ap.add_argument("--world", default="learned")
    ap.add_argument("--eval-paths", type=int, default=cfg_cls.eval_paths)
    ap.add_argument("--out", default=out)
    ap.add_argument("--summarize-only", action="store_true", help="re-write the summary of --out from its seeds.csv")
    return ap


def main() -> None:
    ap = study_arguments(__doc__.splitlines()[0], StudyConfig, "runs/tick_ppo_seeds")
    ap.add_argument("--model", choices=["final", "best"], default="final")
    a = ap.parse_args()
    if a.summarize_only:
        rebuild_summary(a.out)
        print(pathlib.Path(a.out, "summary.md").read_text())
        return
    import torch

    torch.set_num_threads(1)
    cfg = StudyConfig(assets={k: str(ASSET_FILES[k]) for k in a.assets.split(",")},
                      seeds=tuple(int(s) for s in a.seeds.split(",")), world=a.world, timesteps=a.timesteps,
                      n_envs=a.n_envs, model=a.model, eval_paths=a.eval_paths)
    t = time.perf_counter()
    run_study(cfg, a.out, log=lambda s: print(s, flush=True))
    print(pathlib.Path(a.out, "summary.md").read_text())
    print(f"total wall {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()

"""``lobworld world-model train`` and ``lobworld world-model evaluate``.

train:    lobworld world-model train --data MSG.csv.gz [...] --config CFG.toml --out DIR [--overwrite] [--no-strict]
          (a config with ``kind = "tick"`` at its top trains the tick GRU on one LOBSTER message file:
          ``lobworld.world_models.tick_model.train_tick_run``; without ``kind`` it is a bar-GRU config)
evaluate: lobworld world-model evaluate --checkpoint DIR/model.npz --data MSG.csv.gz [...] [--plot PNG] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

__all__ = ["add_commands", "plot_paths", "format_table"]


def add_commands(wm_sub) -> None:
    p = wm_sub.add_parser("train", help="train the GRU bar dynamics on LOBSTER/Databento files, or the tick GRU "
                          "(a config with kind = \"tick\")")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="LOBSTER message files (orderbook inferred) or Databento files")
    p.add_argument("--config", metavar="TOML", help="TrainConfig TOML (default: built-in bar-GRU defaults); a file "
                   "with kind = \"tick\" at its top trains the tick GRU on one LOBSTER message file instead "
                   "(TickTrainConfig: [train] and [tokens] tables; world_models/configs/tick_gru_*.toml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (model.npz, tb/); refused when it "
                   "already holds files, unless --overwrite")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its model.npz and tb/ are deleted first)")
    p.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                   help="--strict (default): a bad row in the data is an error naming file, line and rule; "
                        "--no-strict drops bad rows and counts them in a warning")
    p.add_argument("--lenient", dest="strict", action="store_false", help="the same as --no-strict "
                   "(the flag of lobworld data)")
    p.set_defaults(func=_cmd_train)

    e = wm_sub.add_parser("evaluate", help="score a checkpoint on the held-out hours of each day")
    e.add_argument("--checkpoint", required=True, metavar="NPZ")
    e.add_argument("--data", nargs="+", required=True, metavar="PATH")
    e.add_argument("--plot", metavar="PNG", help="write real vs simulated mid paths of the test block")
    e.add_argument("--json", metavar="OUT", help="write all metrics as JSON")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_cmd_evaluate)


#: data rules whose rows ``--no-strict`` drops instead of failing on
_LENIENT_RULES = ("truncated_file", "malformed_row")


def _strict_advice(exc: Exception) -> str:
    """The loader's message with its advice given as this command's flag."""
    msg = str(exc)
    if "strict=False" in msg:
        return msg.replace("load with strict=False", "rerun with --no-strict").replace("strict=False", "--no-strict")
    if getattr(exc, "rule", None) in _LENIENT_RULES:
        return msg + " (rerun with --no-strict to drop such rows)"
    return msg


def _cmd_train(args: argparse.Namespace) -> int:
    if args.config:
        from lobworld.world_models.tick_model import TICK_KIND, config_kind

        if config_kind(args.config) == TICK_KIND:
            return _cmd_train_tick(args)
    import dataclasses

    from lobworld.errors import LobworldError
    from lobworld.world_models.data.errors import DataValidationError
    from lobworld.world_models.run_folder import INTERRUPT_EXIT_CODE
    from lobworld.world_models.training import WorldModelTrainConfig, load_world_model_config, train

    cfg = load_world_model_config(args.config) if args.config else WorldModelTrainConfig()
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    out = pathlib.Path(args.out) / "model.npz"
    try:
        ck = train(args.data, cfg, args.out, overwrite=args.overwrite, strict=args.strict)
    except DataValidationError as exc:
        if not args.strict:
            raise
        raise LobworldError(_strict_advice(exc)) from exc
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc or 'world-model training stopped'}", file=sys.stderr)
        return INTERRUPT_EXIT_CODE
    if ck.metrics.get("interrupted"):
        print(f"interrupted after {ck.metrics['epochs_completed']} epochs: best-so-far model (epoch "
              f"{ck.metrics['best_epoch']}) saved to {out}")
        return INTERRUPT_EXIT_CODE
    print(f"wrote {out}: {json.dumps(ck.metrics)}")
    return 0


def _cmd_train_tick(args: argparse.Namespace) -> int:
    import dataclasses

    from lobworld.errors import LobworldError
    from lobworld.world_models.data.errors import DataValidationError
    from lobworld.world_models.run_folder import INTERRUPT_EXIT_CODE
    from lobworld.world_models.tick_model import load_tick_config, train_tick_run

    cfg = load_tick_config(args.config)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, seed=args.seed))
    if len(args.data) != 1 or "_message_" not in pathlib.Path(args.data[0]).name:
        raise LobworldError(f"--data: a tick-model config trains on exactly one LOBSTER message file "
                            f"(orderbook inferred), got {args.data}")
    out = pathlib.Path(args.out) / "tick_gru.npz"
    try:
        res = train_tick_run(args.data[0], cfg, args.out, overwrite=args.overwrite, strict=args.strict,
                             config_path=pathlib.Path(args.config), log=lambda s: print(s, file=sys.stderr))
    except DataValidationError as exc:
        if not args.strict:
            raise
        raise LobworldError(_strict_advice(exc)) from exc
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc or 'tick-model training stopped'}", file=sys.stderr)
        return INTERRUPT_EXIT_CODE
    if res.get("interrupted"):
        print(f"interrupted after {res['epochs']} epochs: best-so-far model (epoch {res['best_epoch']}) saved to {out}")
        return INTERRUPT_EXIT_CODE
    print(f"wrote {out}: {json.dumps(res)}")
    return 0


def format_table(res: dict) -> str:
    """Markdown table of the pooled scores of :func:`lobworld.world_models.training.evaluate`."""
    discrete = bool(res.get("discrete"))
    head = "| model | log-lik (nats/bar) | R^2 | direction acc. | 50% cover | 90% cover |"
    lines = [head + (" P(no change) |" if discrete else ""), "|---|---|---|---|---|---|" + ("---|" if discrete else "")]
    for name, s in res["pooled"].items():
        def f(k, fmt="{:.3f}"):
            v = s.get(k)
            return "n/a" if v is None or v != v else fmt.format(v)
        row = f"| {name} | {f('loglik')} | {f('r2')} | {f('direction_acc')} | {f('cover50')} | {f('cover90')} |"
        lines.append(row + (f" {f('p_zero')} |" if discrete else ""))
    if discrete:
        lines.append(f"| (realised) | | | | | | {res['zero_share']:.3f} |")
    return "\n".join(lines)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lobworld.world_models.checkpoint import load_checkpoint
    from lobworld.world_models.training import evaluate, load_day

    ck = load_checkpoint(args.checkpoint)
    freq = ck.train_config.get("freq", f"{int(ck.dt)}s")
    days = [load_day(p, freq) for p in args.data]
    res = evaluate(ck, days=days, seed=args.seed)
    print(f"test block: last {res['test_hours']} h of each day, bars of {res['dt']} s")
    print(format_table(res))
    if args.plot:
        res["paths"] = plot_paths(ck, days, args.plot, seed=args.seed)
        print(f"wrote {args.plot}: {json.dumps(res['paths'])}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


def plot_paths(ck, days, png, n_paths: int = 20, seed: int = 0) -> dict:
    """Real mid of each day's test block vs ``n_paths`` simulated paths started from the real state.

    The hidden state is the teacher-forced GRU state at the start of the test
    block; simulation runs with the model's own flow (no agent). Returns, per
    asset, the real and mean simulated sd of bar mid changes (USD), the share of
    bars without a mid change, and the real range / median simulated range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from lobworld.world_models.dynamics_model import CONTROL, asset_scale, bar_features
    from lobworld.world_models.learned import LearnedDynamics, rollout
    from lobworld.world_models.training import model_from_checkpoint, split_masks

    model = model_from_checkpoint(ck)
    tc = ck.train_config
    fig, axes = plt.subplots(1, len(days), figsize=(6 * len(days), 4), squeeze=False)
    out = {}
    for ax, d in zip(axes[0], days):
        st = ck.assets[d.asset]
        x = bar_features(d.bars, st)
        _, _, te = split_masks(d.bars.index, float(tc.get("test_hours", 2.0)), float(tc.get("early_stop_hours", 0.5)))
        s0 = int(np.flatnonzero(te)[0]) - 1
        xt = torch.as_tensor(x)
        with torch.no_grad():
            _, _, hs = model(xt[None, :s0], xt[None, 1:s0 + 1, CONTROL], c=asset_scale(st))
        h = hs[0, -1].numpy().astype(np.float64)
        real = d.bars["mid"].to_numpy(float)[s0:]
        n = len(real) - 1
        dyn = LearnedDynamics(ck, asset=d.asset)
        mids, _ = rollout(dyn, n_paths, n, ck.dt, seed=seed, init_hidden=h, init_x=x[s0].astype(np.float64),
                          mid0=float(real[0]))
        t = np.arange(n + 1) * ck.dt / 60.0
        for k in range(n_paths):
            ax.plot(t, mids[k], color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(t, real, color="black", lw=1.6, label="real (LOBSTER)")
        ax.plot([], [], color="tab:blue", alpha=0.5, label=f"simulated ({n_paths} paths)")
        ax.set_title(f"{d.asset} {d.bars.index[s0]:%Y-%m-%d}: test block from {d.bars.index[s0]:%H:%M}")
        ax.set_xlabel("minutes")
        ax.set_ylabel("mid (USD)")
        ax.legend(loc="upper left", fontsize=8)
        half = 0.5 * st.tick
        out[d.asset] = {"real_ret_sd": float(np.std(np.diff(real))),
                        "sim_ret_sd": float(np.mean(np.std(np.diff(mids, axis=1), axis=1))),
                        "real_zero_share": float(np.mean(np.abs(np.diff(real)) < 0.5 * half)),
                        "sim_zero_share": float(np.mean(np.abs(np.diff(mids, axis=1)) < 0.5 * half)),
                        "real_range": float(real.max() - real.min()),
                        "sim_range_median": float(np.median(mids.max(1) - mids.min(1)))}
    fig.suptitle("Learned GRU bar dynamics: real vs simulated mid paths\non held-out hours", fontsize=10)
    fig.tight_layout()
    pathlib.Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:  # pragma: no cover - convenience
    ap = argparse.ArgumentParser(prog="lobworld-world-model")
    sub = ap.add_subparsers(dest="cmd", required=True)
    add_commands(sub)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``lobworld fidelity``: real vs simulated LOB statistics on held-out hours (see :mod:`.fidelity`).

lobworld fidelity --data MSG.csv.gz [...] [--model CHECKPOINT] --out DIR [--json]

Writes ``DIR/report.md``, one ``DIR/fidelity_<statistic>.png`` per statistic
and, with ``--json``, ``DIR/fidelity.json`` (also printed to stdout).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

__all__ = ["add_commands", "run"]


def add_commands(sub) -> None:
    p = sub.add_parser("fidelity", help="how real are the simulated markets? (real vs simulated statistics)")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="LOBSTER message files (orderbook inferred) or Databento files, one asset-day each")
    p.add_argument("--model", metavar="CHECKPOINT", help="learned-model checkpoint (default: the shipped 60 s model)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (report.md, PNGs, fidelity.json)")
    p.add_argument("--json", action="store_true", help="also write DIR/fidelity.json and print it")
    p.add_argument("--window", type=int, help="bars per real path (default: 20 minutes, at least 20 bars)")
    p.add_argument("--draws", type=int, default=4, help="simulated paths per real path (default 4)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the CIs (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-hours", type=float,
                   help="held-out hours at the end of each day (default: the checkpoint's; another value may "
                        "overlap the model's training data and is flagged in the report)")
    p.add_argument("--early-stop-hours", type=float, help="hours before the test block left out of the "
                   "parametric calibration (default: the checkpoint's)")
    p.add_argument("--no-impact", action="store_true", help="skip the simulated metaorder impact exponent")
    p.add_argument("--no-progress", action="store_true", help="no progress line (none with --json either)")
    # --- event-level section (LOB-Bench statistics; see lobworld.world_models.fidelity.events) ---
    p.add_argument("--events", action="store_true",
                   help="run the event-level section instead (LOB-Bench statistics of message streams: "
                        "real-vs-real floor and CST-generated vs real on the 14:00-16:00 windows; LOBSTER files "
                        "only); writes DIR/events.md, PNGs and the generated LOBSTER file pairs")
    p.add_argument("--events-window", type=float, default=600.0, metavar="SECONDS",
                   help="seconds per sequence of the event-level section (default 600)")
    p.add_argument("--events-span", default="14:00-16:00", metavar="HH:MM-HH:MM",
                   help="held-out exchange-time span of the event-level section (default 14:00-16:00)")
    p.add_argument("--events-n-boot", type=int, default=50,
                   help="bootstrap resamples of the event-level section (default 50)")
    p.set_defaults(func=run)


def _run_events(args: argparse.Namespace) -> int:
    from lobworld.world_models.data.errors import DataValidationError
    from lobworld.world_models.data.lobster import load_lobster
    from lobworld.world_models.fidelity import FidelityError
    from lobworld.world_models.fidelity.events import (
        event_report, format_events_markdown, plot_events, write_lobster,
    )

    out = pathlib.Path(args.out)
    reports = []
    try:
        start, sep, end = str(args.events_span).partition("-")
        if not sep:
            raise FidelityError(f"--events-span: expected HH:MM-HH:MM, got {args.events_span!r}")
        for path in args.data:
            try:
                ev = load_lobster(path, strict=False)
            except (DataValidationError, FileNotFoundError) as exc:
                raise FidelityError(f"--events needs LOBSTER message files: {exc}") from exc
            rep = event_report(ev, start=start, end=end, window_s=args.events_window, n_boot=args.events_n_boot, seed=args.seed)
            reports.append(rep)
            folder = out / "events_lobster" / rep.ticker
            for g in rep.cst_events:
                write_lobster(g, folder, ticker=f"CST-{rep.ticker}")
    except FidelityError as exc:
        print(f"lobworld fidelity: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    md = format_events_markdown(reports)
    (out / "events.md").write_text(md)
    pngs = plot_events(reports, out)
    print(md)
    print(f"wrote {out / 'events.md'}, {len(pngs)} PNGs and the CST sequences under {out / 'events_lobster'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "events", False):
        return _run_events(args)
    from lobworld.world_models.checkpoint import CheckpointError, load_checkpoint
    from lobworld.world_models.fidelity import FidelityError, fidelity_report, fidelity_stages, format_markdown, plot_statistics, to_json
    from lobworld.world_models.learned import DEFAULT_CHECKPOINT

    model = pathlib.Path(args.model) if args.model else DEFAULT_CHECKPOINT
    try:
        if not model.is_file():
            raise FidelityError(f"checkpoint {model} does not exist")
        try:
            ck = load_checkpoint(model)
        except (CheckpointError, ValueError, OSError) as exc:
            raise FidelityError(f"cannot read checkpoint {model}: {exc}") from exc
        from lobworld.cli._progress import compile_notice, progress

        compile_notice()
        with progress(f"fidelity of {model.name} on {len(args.data)} file(s)",
                      fidelity_stages(len(args.data), impact=not args.no_impact),
                      enabled=not (args.json or args.no_progress)) as advance:
            rep = fidelity_report(ck, args.data, window=args.window, draws=args.draws, n_boot=args.n_boot,
                                  seed=args.seed, test_hours=args.test_hours, early_stop_hours=args.early_stop_hours,
                                  impact=not args.no_impact, progress=advance)
    except FidelityError as exc:
        print(f"lobworld fidelity: error: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rep["meta"]["model"] = str(model)
    md = format_markdown(rep)
    (out / "report.md").write_text(md)
    pngs = plot_statistics(rep, out)
    js = to_json(rep)
    if args.json:
        (out / "fidelity.json").write_text(json.dumps(js, indent=1))
        print(json.dumps(js, indent=1))
    else:
        print(md)
        print(f"wrote {out / 'report.md'} and {len(pngs)} PNGs")
    return 0


def main(argv=None) -> int:  # pragma: no cover - convenience
    ap = argparse.ArgumentParser(prog="lobworld")
    add_commands(ap.add_subparsers(dest="cmd", required=True))
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

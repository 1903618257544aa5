"""``lobworld world-model fit-arrivals`` and ``lobworld world-model fit-impact``.

Both read a LOBSTER message file (``*_message_<L>.csv[.gz]``; the orderbook
file is found next to it) and print a summary, or JSON with ``--json``.
``--save PATH`` writes the fitted parameters as JSON (the format of the
shipped ``world_models/assets/fitted/<ticker>.json``; both commands merge into
an existing file).
"""

from __future__ import annotations

import json
import pathlib
import warnings
from dataclasses import asdict

import numpy as np


def _hawkes_dict(params) -> dict:
    return {"mu": list(params.mu), "alpha": [list(r) for r in params.alpha], "beta": params.beta}


def fit_arrivals_day(path) -> dict:
    """Poisson and Hawkes fits of one LOBSTER day, as a JSON-ready dict."""
    from lobworld.world_models.arrivals import fit_hawkes, fit_poisson, load_market_orders

    mo = load_market_orders(path)
    pois = fit_poisson(mo.times, mo.marks, mo.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # non-stationarity is reported in the dict
        hp, rep = fit_hawkes(mo.times, mo.marks, mo.T)
    return {
        "ticker": mo.ticker, "source": str(path), "n_market_orders": len(mo), "T_seconds": mo.T,
        "poisson": {"rate": list(pois.rate)},
        "hawkes": _hawkes_dict(hp),
        "hawkes_report": rep.to_dict(),
    }


def fit_impact_day(path, *, max_gap_s=60.0, interrupt_frac=0.0, horizon_s=120.0, n_boot=300, seed=0,
                   plot=None) -> dict:
    """Square-root-law fit and learned impact model of one LOBSTER day, as a JSON-ready dict."""
    from lobworld.world_models.impact import (
        ImpactModel, RunRule, fit_metaorders, load_metaorders, permanent_fraction, plot_sqrt_law,
    )

    rule = RunRule(max_gap_s=max_gap_s, interrupt_frac=interrupt_frac, horizon_s=horizon_s)
    meta = load_metaorders(path, rule)
    rng = np.random.default_rng(seed)
    fit = fit_metaorders(meta, n_boot=n_boot, rng=rng)
    pf, pf_ci = permanent_fraction(meta, n_boot=n_boot, rng=rng)
    model = ImpactModel.fit(meta, rng=rng)
    if plot:
        plot_sqrt_law(fit, plot, title=f"{meta.ticker or 'LOBSTER'} 2012-06-21: peak impact of same-sign runs")
    return {
        "ticker": meta.ticker, "source": str(path), "run_rule": asdict(rule), "n_runs": len(meta),
        "V_shares": meta.V, "sigma_usd": meta.sigma,
        "sqrt_law": fit.to_dict(),
        "permanent_fraction": pf, "permanent_fraction_ci": list(pf_ci),
        "impact": {"kind": "lobworld.ImpactParams", "params": asdict(model.params)},
    }


def _merge_save(path, d: dict, keys) -> None:
    path = pathlib.Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    for k in keys:
        old[k] = d[k]
    old.setdefault("ticker", d.get("ticker", ""))
    old["note"] = "Fitted on real LOBSTER sample data (c) LOBSTER, by lobworld world-model fit-arrivals/fit-impact."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old, indent=1) + "\n")


def _cmd_fit_arrivals(args) -> int:
    d = fit_arrivals_day(args.data)
    if args.save:
        _merge_save(args.save, d, ("poisson", "hawkes", "hawkes_report", "n_market_orders", "T_seconds"))
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    r = d["hawkes_report"]
    h = d["hawkes"]
    print(f"{d['ticker']}: {d['n_market_orders']} market orders in {d['T_seconds']:.0f} s "
          f"({r['n_events'][0]} buy, {r['n_events'][1]} sell)")
    print(f"Poisson rates (1/s): buy {d['poisson']['rate'][0]:.4f}, sell {d['poisson']['rate'][1]:.4f}")
    se = r["stderr"]
    fmt = lambda k, v: f"{v:.4g} ± {se[k]:.2g}" if se[k] is not None else f"{v:.4g} (on bound)"  # noqa: E731
    print(f"Hawkes mu (1/s): buy {fmt('mu_buy', h['mu'][0])}, sell {fmt('mu_sell', h['mu'][1])}")
    print(f"Hawkes alpha: [[{fmt('alpha_bb', h['alpha'][0][0])}, {fmt('alpha_bs', h['alpha'][0][1])}], "
          f"[{fmt('alpha_sb', h['alpha'][1][0])}, {fmt('alpha_ss', h['alpha'][1][1])}]]")
    print(f"Hawkes beta (1/s): {fmt('beta', h['beta'])}")
    print(f"branching ratio {r['branching_ratio']:.3f} ({'stationary' if r['stationary'] else 'NON-STATIONARY'})")
    print(f"log-likelihood: Hawkes {r['loglik']:.1f}, Poisson {r['loglik_poisson']:.1f}; "
          f"AIC Hawkes {r['aic']:.1f} vs Poisson {r['aic_poisson']:.1f}")
    n = r["n_events"]
    print(f"time-rescaling KS distance to Exp(1) (buy, sell): Hawkes {r['ks_hawkes'][0]:.3f}, {r['ks_hawkes'][1]:.3f}; "
          f"Poisson {r['ks_poisson'][0]:.3f}, {r['ks_poisson'][1]:.3f} (5% critical ~{1.36 / n[0] ** 0.5:.3f})")
    return 0


def _cmd_fit_impact(args) -> int:
    d = fit_impact_day(args.data, max_gap_s=args.max_gap, interrupt_frac=args.interrupt_frac,
                       horizon_s=args.horizon, n_boot=args.n_boot, seed=args.seed, plot=args.plot)
    if args.save:
        _merge_save(args.save, d, ("impact", "sqrt_law", "run_rule", "n_runs", "V_shares", "sigma_usd",
                                   "permanent_fraction", "permanent_fraction_ci"))
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    f = d["sqrt_law"]
    p = d["impact"]["params"]
    print(f"{d['ticker']}: {d['n_runs']} same-sign runs; V = {d['V_shares']:.0f} shares, sigma = {d['sigma_usd']:.3f} USD")
    print(f"I = Y sigma (Q/V)^delta: delta = {f['delta']:.3f} [{f['delta_ci'][0]:.3f}, {f['delta_ci'][1]:.3f}], "
          f"Y = {f['Y']:.3f} [{f['Y_ci'][0]:.3f}, {f['Y_ci'][1]:.3f}] ({100 * f['level']:.0f}% bootstrap CI)")
    print(f"permanent fraction after {d['run_rule']['horizon_s']:.0f} s: {d['permanent_fraction']:.3f} "
          f"[{d['permanent_fraction_ci'][0]:.3f}, {d['permanent_fraction_ci'][1]:.3f}]")
    print(f"ImpactModel: Y = {p['Y']:.3f}, delta = {p['delta']:.3f}, b_depth = {p['b_depth']:.3f}, "
          f"b_participation = {p['b_participation']:.3f}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def add_commands(wm_sub) -> None:
    p = wm_sub.add_parser("fit-arrivals", help="fit Poisson and bivariate Hawkes market-order arrivals to a LOBSTER day")
    p.add_argument("--data", required=True, help="LOBSTER message file (*_message_<L>.csv[.gz])")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--save", default=None, help="merge the fitted parameters into this JSON file")
    p.set_defaults(func=_cmd_fit_arrivals)

    q = wm_sub.add_parser("fit-impact", help="fit the square-root impact law and the impact model to a LOBSTER day")
    q.add_argument("--data", required=True, help="LOBSTER message file (*_message_<L>.csv[.gz])")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--plot", default=None, help="write a log-log PNG of binned impact vs Q/V")
    q.add_argument("--save", default=None, help="merge the fitted parameters into this JSON file")
    q.add_argument("--max-gap", type=float, default=60.0, help="max seconds between orders of one run (default 60)")
    q.add_argument("--interrupt-frac", type=float, default=0.0,
                   help="skip opposite-sign orders up to this fraction of the run volume (default 0: strict runs)")
    q.add_argument("--horizon", type=float, default=120.0, help="post-run horizon for permanent impact, s (default 120)")
    q.add_argument("--n-boot", type=int, default=300, help="bootstrap replications (default 300)")
    q.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    q.set_defaults(func=_cmd_fit_impact)

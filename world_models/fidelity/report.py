"""Comparison of real and simulated samples and the fidelity report (JSON and Markdown)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from lobworld._checks import integer
from lobworld.world_models.fidelity.days import load_fidelity_day, real_paths
from lobworld.world_models.fidelity.samples import HORIZONS, FidelityError, PathSample
from lobworld.world_models.fidelity.scoring import _Grouped, score, score_many
from lobworld.world_models.fidelity.simulation import simulate_learned, simulate_parametric, simulated_impact_exponent
from lobworld.world_models.fidelity.statistics import STATISTICS, stat_returns


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------
def compare(real: PathSample, sims: dict[str, PathSample], *, n_boot: int = 200, seed: int = 0,
            statistics=STATISTICS) -> list[dict[str, Any]]:
    """Score every statistic for every simulator against ``real``, plus the real-vs-real floor.

    Returns one dict per statistic: ``name``, ``description``, ``scores``
    (``{source: score dict or None}``; ``None`` = the source cannot produce it),
    ``diff`` (paired bootstrap of the first two simulators that produce it,
    see :func:`score_many`; else ``None``) and ``floor`` (even vs odd real
    paths; ``None`` with fewer than 2 paths per half).
    """
    rng = np.random.default_rng(seed)
    even = np.arange(0, real.n_paths, 2)
    odd = np.arange(1, real.n_paths, 2)
    ra, rb = real.subset(even), real.subset(odd)
    rows = []
    for s in statistics:
        r = s.fn(real)
        if r is None:
            raise FidelityError(f"statistic {s.name}: the real sample lacks the data it needs")
        entry = {"name": s.name, "description": s.description, "conditional": s.conditional, "scores": {}}
        outs = {name: s.fn(sim) for name, sim in sims.items()}
        have = {name: (o, sims[name].n_paths) for name, o in outs.items() if o is not None}
        pair = tuple(have)[:2] if len(have) >= 2 else None
        res = score_many(r, real.n_paths, have, n_boot=n_boot, rng=rng, paired=pair)
        entry["scores"] = {name: res.get(name) for name in sims}
        entry["diff"] = res.get("diff")
        if len(even) >= 2 and len(odd) >= 2:
            entry["floor"] = score(s.fn(ra), ra.n_paths, s.fn(rb), rb.n_paths, n_boot=n_boot, rng=rng)
        else:
            entry["floor"] = None
        entry["plot"] = {"real": r, **{k: s.fn(v) for k, v in sims.items()}}
        rows.append(entry)
    return rows


def verdict(a: dict | None, b: dict | None) -> str:
    """``"win"`` when ``a`` is lower than ``b`` on both L1 and W1, ``"loss"`` when higher on both, else ``"mixed"``;
    ``"n/a"`` when ``b`` is None (the baseline cannot produce the statistic)."""
    if a is None:
        return "n/a"
    if b is None:
        return "n/a"
    l1 = a["l1"] < b["l1"]
    w1 = a["w1"] < b["w1"]
    if l1 and w1:
        return "win"
    if not l1 and not w1:
        return "loss"
    return "mixed"


def kurtosis_table(samples: dict[str, PathSample], horizons=HORIZONS, n_boot: int = 200, seed: int = 0,
                   level: float = 0.9) -> dict[str, dict[str, Any]]:
    """Excess kurtosis of the ``h``-bar returns (:func:`stat_returns`) per source, with a path-bootstrap CI."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        out[name] = {}
        for h in horizons:
            v, _, p = stat_returns(s, h)
            g = _Grouped((v, None, p), s.n_paths)
            k = _exkurt(g.v)
            bt = [_exkurt(g.take(rng.integers(0, s.n_paths, s.n_paths))[0]) for _ in range(n_boot)]
            a = (1 - level) / 2
            out[name][f"ret_{h}"] = {"kurtosis": k, "ci": [float(np.nanquantile(bt, a)),
                                                           float(np.nanquantile(bt, 1 - a))] if n_boot else None}
    return out


def flow_correlations(samples: dict[str, PathSample]) -> dict[str, dict[str, float | None]]:
    """Descriptive (not scored): Pearson correlation of the 1-bar mid change with the same bar's signed
    aggressive volume (``ret_svol``), with its OFI (``ret_ofi``), and of signed volume with OFI (``svol_ofi``)."""
    out = {}
    for name, s in samples.items():
        r = s.ret.ravel()

        def c(a, b):
            if a is None or b is None:
                return None
            a, b = np.ravel(a), np.ravel(b)
            return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None

        out[name] = {"ret_svol": c(r, s.svol), "ret_ofi": c(r, s.ofi), "svol_ofi": c(s.svol, s.ofi)}
    return out


def _exkurt(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    if v.size < 4:
        return float("nan")
    d = v - v.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d ** 4) / (m2 * m2) - 3.0) if m2 > 0 else float("nan")


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def fidelity_report(ck, paths, *, window: int | None = None, draws: int = 4, n_boot: int = 200, seed: int = 0,
                    test_hours: float | None = None, early_stop_hours: float | None = None,
                    impact: bool = True, impact_draws: int = 4,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole comparison (see the module docstring) on the data files ``paths``; returns a JSON-able dict
    (plus ``_plot`` data, removed by :func:`to_json`).

    ``progress``: called with a label after each stage, :func:`fidelity_stages` times in all: one per
    data file loaded, then the learned and the parametric simulations, the statistics, and the
    impact exponent (when ``impact``)."""
    tick = progress if progress is not None else (lambda label: None)
    if not paths:
        raise FidelityError("no data files given")
    if window is None:
        window = max(max(HORIZONS) + 5, int(round(1200.0 / ck.dt)))
    integer("window", window, error=FidelityError, minimum=max(HORIZONS) + 1,
            what=f"an int >= {max(HORIZONS) + 1} bars (the longest return horizon + 1)")
    integer("draws", draws, error=FidelityError, what="a positive int")
    integer("n_boot", n_boot, error=FidelityError, minimum=0)
    days = []
    for p in paths:
        days.append(load_fidelity_day(p, ck, window, test_hours, early_stop_hours))
        tick(f"loaded {pathlib.Path(p).name}")
    real = PathSample.concat([real_paths(d) for d in days])
    if real.n_paths < 4:
        raise FidelityError(f"only {real.n_paths} held-out windows of {window} bars; need at least 4 (2 per half for "
                            "the real-vs-real floor): give more data, --test-hours or a shorter --window")
    sims = {"learned": simulate_learned(ck, days, draws, seed)}
    tick("learned market simulated")
    sims["parametric"] = simulate_parametric(days, draws, seed)
    tick("parametric market simulated")
    rows = compare(real, sims, n_boot=n_boot, seed=seed)
    verdicts = {r["name"]: verdict(r["scores"]["learned"], r["scores"]["parametric"]) for r in rows}
    summary = {}
    for src in ("learned", "parametric", "floor"):
        vals = [(r["scores"].get(src) if src != "floor" else r["floor"]) for r in rows]
        for key in ("l1", "w1"):
            v = np.array([x[key] for x in vals if x is not None and np.isfinite(x[key])])
            summary[f"{src}_{key}_mean"] = float(v.mean()) if v.size else None
            summary[f"{src}_{key}_median"] = float(np.median(v)) if v.size else None
        summary[f"{src}_n_statistics"] = int(sum(x is not None for x in vals))
    # summary over the statistics both simulators produce (like for like; all of them unless one returns None)
    both = [r for r in rows if r["scores"]["learned"] is not None and r["scores"]["parametric"] is not None]
    for src in ("learned", "parametric"):
        for key in ("l1", "w1"):
            v = np.array([r["scores"][src][key] for r in both
                          if np.isfinite(r["scores"]["learned"][key]) and np.isfinite(r["scores"]["parametric"][key])])
            summary[f"{src}_{key}_mean_common"] = float(v.mean()) if v.size else None
    summary.update(n_statistics=len(rows), n_common=len(both),
                   wins=sum(v == "win" for v in verdicts.values()), losses=sum(v == "loss" for v in verdicts.values()),
                   mixed=sum(v == "mixed" for v in verdicts.values()),
                   n_na=sum(v == "n/a" for v in verdicts.values()),
                   w1_lower_significant=sum(1 for r in rows if r.get("diff") and r["diff"]["w1_ci"][1] < 0),
                   w1_higher_significant=sum(1 for r in rows if r.get("diff") and r["diff"]["w1_ci"][0] > 0))
    rep = {
        "meta": {"checkpoint_dt": float(ck.dt), "window_bars": window, "draws_per_path": draws, "n_boot": n_boot,
                 "seed": seed, "n_real_paths": real.n_paths, "n_sim_paths": sims["learned"].n_paths,
                 "days": [{"source": d.source, "asset": d.asset, "windows": int(len(d.starts)),
                           "held_out": d.held_out, "first_window_start": str(d.bars.index[d.starts[0]]),
                           "parametric": {k: float(v) for k, v in vars(d.params).items() if k != "impact"},
                           "tape": d.tape.to_dict()}
                          for d in days],
                 "held_out": all(d.held_out for d in days)},
        "statistics": [{k: v for k, v in r.items() if k != "plot"} | {"verdict": verdicts[r["name"]]} for r in rows],
        "summary": summary,
        "kurtosis": kurtosis_table({"real": real, **sims}, n_boot=n_boot, seed=seed),
        "flow_correlations": flow_correlations({"real": real, **sims}),
        "_plot": {r["name"]: r["plot"] for r in rows},
    }
    tick("statistics compared")
    rep["impact"] = simulated_impact_exponent(ck, days, draws=impact_draws, seed=seed) if impact else None
    if impact:
        tick("impact exponent")
    return rep


def fidelity_stages(n_files: int, impact: bool = True) -> int:
    """How many times :func:`fidelity_report` calls its ``progress`` callback."""
    return int(n_files) + 3 + (1 if impact else 0)


def to_json(rep: dict) -> dict:
    """The report without plot data (JSON-serialisable)."""
    return {k: v for k, v in rep.items() if not k.startswith("_")}


def _fmt(sc: dict | None, key: str) -> str:
    if sc is None:
        return "n/a"
    v = sc[key]
    lo, hi = sc[f"{key}_ci"]
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _fmt_diff(d: dict | None) -> str:
    if d is None:
        return "n/a"
    lo, hi = d["w1_ci"]
    sig = "*" if (lo > 0 or hi < 0) else ""
    return f"{d['w1']:+.3f} [{lo:+.3f}, {hi:+.3f}]{sig}"


def format_markdown(rep: dict) -> str:
    """The Markdown report: settings, the statistic x model table, summary, kurtosis and impact exponent."""
    m = rep["meta"]
    s = rep["summary"]
    lines = ["# Fidelity report: real vs simulated markets", ""]
    lines.append(f"Bars of {m['checkpoint_dt']:g} s; {m['n_real_paths']} real held-out paths of {m['window_bars']} "
                 f"bars; {m['draws_per_path']} simulated draws per real path ({m['n_sim_paths']} per simulator), "
                 f"each started from the real state at the window start. Brackets: 5-95% range over "
                 f"{m['n_boot']} path-bootstrap replicates (resampling duplicates paths, which inflates both "
                 "distances, so in small samples the range sits above the point estimate).")
    for d in m["days"]:
        lines.append(f"- {d['source']} ({d['asset']}): {d['windows']} windows from {d['first_window_start']}"
                     + ("" if d["held_out"] else " -- NOT the checkpoint's held-out block (may overlap training)"))
    lines += ["", "L1 = histogram L1 distance (0..2), W1 = Wasserstein-1 on values standardised by the real sample. "
              "Lower is better; `floor` = real vs real (even vs odd windows, half the data per side). "
              "Verdict: win = learned lower than parametric on both scores, loss = higher on both, mixed otherwise "
              "(n/a: a simulator cannot produce the statistic). "
              "dW1 = learned W1 - parametric W1 with its paired-bootstrap 5-95% range (same real resample); "
              "* = the range excludes 0.", "",
              "| statistic | learned L1 | parametric L1 | floor L1 | learned W1 | parametric W1 | floor W1 | dW1 | "
              "verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["statistics"]:
        sc = r["scores"]
        lines.append(f"| {r['name']} | {_fmt(sc['learned'], 'l1')} | {_fmt(sc['parametric'], 'l1')} | "
                     f"{_fmt(r['floor'], 'l1')} | {_fmt(sc['learned'], 'w1')} | {_fmt(sc['parametric'], 'w1')} | "
                     f"{_fmt(r['floor'], 'w1')} | {_fmt_diff(r.get('diff'))} | {r['verdict']} |")

    def g(k):
        v = s.get(k)
        return "n/a" if v is None else f"{v:.3f}"

    lines += ["", "| summary | learned | parametric | floor |", "|---|---|---|---|",
              f"| mean L1 (all produced) | {g('learned_l1_mean')} | {g('parametric_l1_mean')} | {g('floor_l1_mean')} |",
              f"| median L1 | {g('learned_l1_median')} | {g('parametric_l1_median')} | {g('floor_l1_median')} |",
              f"| mean W1 (all produced) | {g('learned_w1_mean')} | {g('parametric_w1_mean')} | {g('floor_w1_mean')} |",
              f"| median W1 | {g('learned_w1_median')} | {g('parametric_w1_median')} | {g('floor_w1_median')} |",
              f"| mean L1, the {s['n_common']} statistics both produce | {g('learned_l1_mean_common')} | "
              f"{g('parametric_l1_mean_common')} | |",
              f"| mean W1, the {s['n_common']} statistics both produce | {g('learned_w1_mean_common')} | "
              f"{g('parametric_w1_mean_common')} | |",
              f"| statistics produced | {s['learned_n_statistics']} | {s['parametric_n_statistics']} | "
              f"{s['floor_n_statistics']} |", "",
              f"**Learned vs parametric:** wins {s['wins']}, losses {s['losses']}, mixed {s['mixed']} of the "
              f"{s['n_common']} statistics both produce"
              + (f"; n/a on {s['n_na']} (a simulator cannot produce them)" if s["n_na"] else "")
              + f". Paired bootstrap on W1: learned significantly lower on {s['w1_lower_significant']}, "
              f"significantly higher on {s['w1_higher_significant']}.", "",
              "Excess kurtosis of h-bar returns (90% CI):", "", "| source | " +
              " | ".join(rep["kurtosis"]["real"].keys()) + " |", "|---" * (1 + len(rep["kurtosis"]["real"])) + "|"]
    for src, ks in rep["kurtosis"].items():
        cells = []
        for v in ks.values():
            ci = v["ci"]
            cells.append(f"{v['kurtosis']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    fc = rep.get("flow_correlations")
    if fc:
        def cf(v):
            return "n/a" if v is None else f"{v:+.2f}"

        lines += ["", "Flow diagnostics (descriptive, not scored): correlation of the 1-bar mid change with the bar's "
                  "signed aggressive volume and with its OFI, and of the two flows with each other.", "",
                  "| source | corr(ret, signed volume) | corr(ret, OFI) | corr(signed volume, OFI) |", "|---|---|---|---|"]
        for src, v in fc.items():
            lines.append(f"| {src} | {cf(v['ret_svol'])} | {cf(v['ret_ofi'])} | {cf(v['svol_ofi'])} |")
    imp = rep.get("impact")
    if imp:
        lines.append("")
        if imp.get("delta") is not None:
            lines.append(f"**Impact exponent** of simulated buy metaorders (learned, {imp['n_runs']} CRN pairs, "
                         f"executed over {imp['exec_seconds']:g} s, Q/V_day {imp['sizes_q_over_v'][0]:.1e} to "
                         f"{imp['sizes_q_over_v'][-1]:.1e}): delta = {imp['delta']:.3f} "
                         f"[{imp['delta_ci'][0]:.3f}, {imp['delta_ci'][1]:.3f}] ({imp['level']:.0%} CI), "
                         f"Y = {imp['Y']:.3f} (target 0.4-0.6).")
        else:
            lines.append(f"**Impact exponent:** no fit ({imp['error']}).")
    lines += ["", "Not produced by a bar model (so not scored): per-order inter-arrival times, order sizes, "
              "cancellations, depth beyond the top of book, event-level impact curves split by whether the mid moved. "
              "`inter_arrival` is the bar proxy bar seconds / trade count."]
    return "\n".join(lines) + "\n"


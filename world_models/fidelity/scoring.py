"""Scores of a simulated sample against the real one: histogram L1, standardised Wasserstein-1, bootstrap ranges."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from lobworld.world_models.fidelity.samples import N_HIST_BINS
from lobworld.world_models.fidelity.statistics import StatOut


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def hist_l1(a: np.ndarray, b: np.ndarray, n_bins: int = N_HIST_BINS, edges: np.ndarray | None = None) -> float:
    """L1 distance ``sum |p_k - q_k|`` (in [0, 2]) of the histograms of ``a`` and ``b``.

    Bins: split points at the interior quantiles (``1/n_bins .. (n-1)/n_bins``)
    of the pooled values (unique, so discrete values get fewer, wider bins),
    or the given interior ``edges``; a value equal to a split point goes right.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    if edges is None:
        edges = _edges(np.concatenate([a, b]), n_bins)
    na = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1) / a.size
    nb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1) / b.size
    return float(np.abs(na - nb).sum())


def _edges(pooled: np.ndarray, n_bins: int = N_HIST_BINS) -> np.ndarray:
    return np.unique(np.quantile(pooled, np.arange(1, n_bins) / n_bins))


def n_bins_for(n_a: int, n_b: int) -> int:
    """Histogram bins for samples of ``n_a`` and ``n_b`` values: ``sqrt(min(n_a, n_b))`` clipped to [2, 20].

    Few bins for small samples keep the L1 distance from saturating at 2 by
    sampling noise alone (e.g. 6 autocorrelation values per side).
    """
    return int(np.clip(int(math.sqrt(max(min(n_a, n_b), 1))), 2, N_HIST_BINS))


def w1_standardised(a: np.ndarray, b: np.ndarray, mu: float | None = None, sd: float | None = None) -> float:
    """Wasserstein-1 distance between ``(a - mu)/sd`` and ``(b - mu)/sd``; ``mu``, ``sd`` default to ``a``'s.

    ``a`` is the reference (real) sample; a constant ``a`` (sd 0) is not rescaled.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    mu = float(a.mean()) if mu is None else mu
    sd = float(a.std()) if sd is None else sd
    sd = sd if sd > 0 else 1.0
    return float(wasserstein_distance((a - mu) / sd, (b - mu) / sd))


class _Grouped:
    """Values of one statistic grouped by path (for path bootstraps)."""

    def __init__(self, out: StatOut, n_paths: int):
        v, c, p = out
        order = np.argsort(p, kind="stable")
        self.v = v[order]
        self.c = None if c is None else np.asarray(c)[order]
        counts = np.bincount(p[order], minlength=n_paths)
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self.n_paths = n_paths

    def take(self, paths: np.ndarray):
        idx = np.concatenate([np.arange(self.start[i], self.start[i + 1]) for i in paths]) if len(paths) else \
            np.zeros(0, np.int64)
        return self.v[idx], None if self.c is None else self.c[idx]


def _pair_scores(va, ca, vb, cb, edges_by_cond, ref_by_cond) -> tuple[float, float]:
    if ca is None:
        e, (mu, sd) = edges_by_cond[None], ref_by_cond[None]
        return hist_l1(va, vb, edges=e), w1_standardised(va, vb, mu, sd)
    l1s, w1s = [], []
    for k, e in edges_by_cond.items():
        xa = va[ca == k]
        xb = vb[cb == k]
        if xa.size < 2 or xb.size < 2:
            continue
        mu, sd = ref_by_cond[k]
        l1s.append(hist_l1(xa, xb, edges=e))
        w1s.append(w1_standardised(xa, xb, mu, sd))
    if not l1s:
        return float("nan"), float("nan")
    return float(np.mean(l1s)), float(np.mean(w1s))


def _prepare(A: _Grouped, B: _Grouped):
    edges, ref = {}, {}
    if A.c is None:
        edges[None] = _edges(np.concatenate([A.v, B.v]), n_bins_for(A.v.size, B.v.size))
        ref[None] = (float(A.v.mean()), float(A.v.std()))
    else:
        for k in np.unique(A.c):
            xa = A.v[A.c == k]
            xb = B.v[B.c == k] if B.c is not None else np.zeros(0)
            if xa.size < 2 or xb.size < 2:
                continue
            edges[k] = _edges(np.concatenate([xa, xb]), n_bins_for(xa.size, xb.size))
            ref[k] = (float(xa.mean()), float(xa.std()))
    return edges, ref


def _q(bt: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    if bt.shape[0] == 0:
        return np.full(bt.shape[1], np.nan), np.full(bt.shape[1], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanquantile(bt, a, axis=0), np.nanquantile(bt, 1 - a, axis=0)


def score_many(real: StatOut, n_real: int, sims: dict[str, tuple[StatOut, int]], *, n_boot: int = 200,
               level: float = 0.9, rng: np.random.Generator | None = None, paired: tuple[str, str] | None = None
               ) -> dict[str, Any]:
    """L1 (histograms) and W1 (standardised) of each simulator's statistic sample vs ``real``, with bootstrap ranges.

    Conditional samples are scored per condition bin present in ``real`` (with
    at least 2 values on both sides) and averaged. Bins (:func:`n_bins_for`,
    at quantiles of the pooled values) and the standardisation (real mean/sd)
    are fixed from the full samples. Each of ``n_boot`` replicates resamples
    the real paths once and every simulator's paths independently (whole
    paths, with replacement); ``l1_ci`` / ``w1_ci`` are the ``level``
    percentile ranges of the replicated scores. Resampling duplicates paths,
    and both distances grow as the effective sample shrinks, so in small
    samples that range sits *above* the point estimate: read it as the
    score's sampling spread. ``paired=(a, b)`` adds ``diff``: the percentile
    range of ``score_a - score_b`` over the same replicates (same real
    resample, so the shared upward shift largely cancels) and the share of
    replicates in which ``a`` is lower, per score.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    A = _Grouped(real, n_real)
    Bs = {k: _Grouped(o, n) for k, (o, n) in sims.items()}
    prep = {k: _prepare(A, B) for k, B in Bs.items()}
    est = {k: _pair_scores(A.v, A.c, B.v, B.c, *prep[k]) for k, B in Bs.items()}
    boots: dict[str, list] = {k: [] for k in Bs}
    for _ in range(n_boot):
        va, ca = A.take(rng.integers(0, n_real, n_real))
        for k, B in Bs.items():
            vb, cb = B.take(rng.integers(0, B.n_paths, B.n_paths))
            boots[k].append(_pair_scores(va, ca, vb, cb, *prep[k]))
    out: dict[str, Any] = {}
    for k, B in Bs.items():
        lo, hi = _q(np.array(boots[k], dtype=float).reshape(-1, 2), level)
        l1, w1 = est[k]
        out[k] = {"l1": l1, "l1_ci": [float(lo[0]), float(hi[0])], "w1": w1, "w1_ci": [float(lo[1]), float(hi[1])],
                  "n_real_values": int(A.v.size), "n_sim_values": int(B.v.size)}
    if paired is not None:
        a, b = paired
        d = np.array(boots[a], dtype=float).reshape(-1, 2) - np.array(boots[b], dtype=float).reshape(-1, 2)
        lo, hi = _q(d, level)
        with np.errstate(invalid="ignore"):
            share = np.mean(d < 0, axis=0) if d.shape[0] else np.full(2, np.nan)
        out["diff"] = {"pair": [a, b], "l1": est[a][0] - est[b][0], "l1_ci": [float(lo[0]), float(hi[0])],
                       "w1": est[a][1] - est[b][1], "w1_ci": [float(lo[1]), float(hi[1])],
                       "p_lower_l1": float(share[0]), "p_lower_w1": float(share[1])}
    return out


def score(real: StatOut, n_real: int, sim: StatOut, n_sim: int, *, n_boot: int = 200, level: float = 0.9,
          rng: np.random.Generator | None = None) -> dict[str, Any]:
    """:func:`score_many` for one simulator: ``{l1, l1_ci, w1, w1_ci, n_real_values, n_sim_values}``."""
    return score_many(real, n_real, {"sim": (sim, n_sim)}, n_boot=n_boot, level=level, rng=rng)["sim"]



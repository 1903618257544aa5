"""Mid-price direction over the next ``k`` events: labels, order-flow features, a logistic baseline, scores.

Description
    The forecasting target of the imbalance-forecasting literature at the event level: from the
    book just after message ``r``, will the mid be **up**, **flat** or **down** after the next ``k``
    messages (``sign(mid[r + k] - mid[r])``, classes ``-1, 0, +1``)? Everything here works on book
    arrays ``px, sz (N, 2, L)`` in ticks and shares (side 0 bid, 1 ask; size 0 = empty level), the
    layout of :class:`lobworld.envs.replay.ReplayData` (``fpx`` / ``fsz``) and of books rebuilt
    from a generated message log, so the real tape and a simulated one are scored alike.

Features (:func:`direction_features`, one row per message)
    ``ofi_<w>``
        order-flow imbalance at the touch (Cont, Kukanov and Stoikov 2014, the same terms as the
        LOB-Bench statistic of :mod:`lobworld.world_models.fidelity.events`) summed over the last
        ``w`` messages up to and including ``r``, shares;
    ``imb_<l>``
        depth imbalance over the best ``l`` levels, ``(bid - ask) / (bid + ask)`` of the summed
        sizes, in ``[-1, 1]``.

    A row is usable (``ok``) where both touches exist now and ``max(w)`` messages back.

Baseline (:class:`DirectionLogit`)
    Multinomial logistic regression on the standardised features (mean and sd of the fitting
    rows), with a small L2 penalty on the slopes, fitted by maximum likelihood with SciPy's
    L-BFGS (analytic gradient). Fit it on the training block only; score it on held-out rows.

Scores (:func:`direction_scores`)
    accuracy; macro-F1 (the unweighted mean over the three classes of ``2 P R / (P + R)``, a class
    never predicted or never present scoring 0, as scikit-learn's ``zero_division=0``); and, for a
    predictive distribution, the log score (mean negative log probability of the realised class,
    nats). :func:`paired_bootstrap` gives percentile intervals of a score and of the difference
    between two forecasters on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from lobworld.world_models.fidelity.events import _ofi_terms as _event_ofi_terms
from lobworld.world_models.fidelity.samples import FidelityError

__all__ = [
    "CLASSES", "DirectionLogit", "direction_features", "direction_labels", "direction_scores",
    "macro_f1", "mid_ticks", "paired_bootstrap", "predict_from_counts",
]

#: the three directions, in the column order of every probability and count array here
CLASSES = (-1, 0, 1)


def _check_book(px, sz) -> tuple[np.ndarray, np.ndarray]:
    px = np.asarray(px)
    sz = np.asarray(sz)
    if px.ndim != 3 or px.shape[1] != 2 or px.shape != sz.shape:
        raise FidelityError(f"direction: need prices and sizes of shape (N, 2, L), got {px.shape} and {sz.shape}")
    if sz.size and (sz < 0).any():
        raise FidelityError("direction: negative sizes in the book")
    return px, sz


def mid_ticks(px, sz) -> np.ndarray:
    """``(N,)`` mid in ticks after each message; NaN where a touch is empty or the book is crossed."""
    px, sz = _check_book(px, sz)
    b, a = px[:, 0, 0].astype(np.float64), px[:, 1, 0].astype(np.float64)
    ok = (sz[:, 0, 0] > 0) & (sz[:, 1, 0] > 0) & (a > b)
    return np.where(ok, 0.5 * (a + b), np.nan)


def direction_labels(mid, k: int) -> np.ndarray:
    """``(N,)`` float: ``sign(mid[r + k] - mid[r])``; NaN where either mid is NaN or ``r + k >= N``."""
    mid = np.asarray(mid, np.float64)
    k = int(k)
    if k < 1:
        raise FidelityError(f"direction_labels: k must be >= 1, got {k}")
    out = np.full(len(mid), np.nan)
    if len(mid) > k:
        out[:-k] = np.sign(mid[k:] - mid[:-k])
    return out


def _ofi_terms(px, sz) -> np.ndarray:
    """Level-1 OFI term of each message (the first is 0): the LOB-Bench statistic's terms
    (:func:`lobworld.world_models.fidelity.events._ofi_terms`) on the touches, an empty one as NaN."""
    bb = np.where(sz[:, 0, 0] > 0, px[:, 0, 0], np.nan).astype(np.float64)
    ba = np.where(sz[:, 1, 0] > 0, px[:, 1, 0], np.nan).astype(np.float64)
    return _event_ofi_terms(bb, sz[:, 0, 0].astype(np.float64), ba, sz[:, 1, 0].astype(np.float64))


def direction_features(px, sz, *, windows=(10, 50), levels=(1, 5)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X (N, F), ok (N,), names)``: OFI over each window in ``windows`` (messages), then depth
    imbalance over each count of ``levels`` (capped at the book's levels). See the module doc."""
    px, sz = _check_book(px, sz)
    windows = tuple(int(w) for w in windows)
    levels = tuple(int(v) for v in levels)
    if not windows and not levels:
        raise FidelityError("direction_features: no features asked for")
    if any(w < 1 for w in windows) or any(v < 1 for v in levels):
        raise FidelityError(f"direction_features: windows and levels must be >= 1, got {windows}, {levels}")
    n = px.shape[0]
    e = _ofi_terms(px, sz)
    c = np.concatenate([[0.0], np.cumsum(e)])
    cols, names = [], []
    idx = np.arange(n)
    for w in windows:
        lo = np.maximum(idx + 1 - w, 0)
        cols.append(c[idx + 1] - c[lo])
        names.append(f"ofi_{w}")
    for v in levels:
        m = min(v, px.shape[2])
        b = sz[:, 0, :m].sum(axis=1).astype(np.float64)
        a = sz[:, 1, :m].sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.append(np.where(a + b > 0, (b - a) / (a + b), 0.0))
        names.append(f"imb_{v}")
    touch = (sz[:, 0, 0] > 0) & (sz[:, 1, 0] > 0)
    back = max(windows) if windows else 0
    ok = touch & (idx >= back)
    if back:
        ok[back:] &= touch[:-back] if back < n else False
    return np.stack(cols, axis=1), ok, names


@dataclass(frozen=True)
class DirectionLogit:
    """A fitted multinomial logit over :data:`CLASSES` (see the module doc)."""

    mean: np.ndarray
    """``(F,)`` feature means of the fitting rows."""
    scale: np.ndarray
    """``(F,)`` feature sds of the fitting rows (1 where a feature is constant)."""
    coef: np.ndarray
    """``(F + 1, 3)``: intercepts (row 0) and slopes on the standardised features."""
    names: tuple[str, ...] = ()
    """Feature names, for reports."""

    @classmethod
    def fit(cls, X, y, *, l2: float = 1e-4, names=()) -> DirectionLogit:
        """Maximum likelihood on rows ``X (n, F)`` with labels ``y`` in ``{-1, 0, 1}`` (``l2``: penalty
        per slope, in units of the mean log-likelihood)."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y) or len(X) < 10:
            raise FidelityError(f"DirectionLogit.fit: need X (n, F) and y (n,) with n >= 10, got {X.shape}, {y.shape}")
        if not (np.isfinite(X).all() and np.isin(y, CLASSES).all()):
            raise FidelityError("DirectionLogit.fit: non-finite features or labels outside {-1, 0, 1}")
        if not (l2 >= 0 and np.isfinite(l2)):
            raise FidelityError(f"DirectionLogit.fit: l2 must be finite and >= 0, got {l2}")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        Z = np.column_stack([np.ones(len(X)), (X - mean) / scale])
        Y = np.zeros((len(y), 3))
        Y[np.arange(len(y)), y.astype(np.int64) + 1] = 1.0
        n, p = Z.shape
        pen = np.full((p, 3), float(l2))
        pen[0] = 0.0

        def loss(w):
            W = w.reshape(p, 3)
            s = Z @ W
            s -= s.max(axis=1, keepdims=True)
            E = np.exp(s)
            tot = E.sum(axis=1)
            P = E / tot[:, None]
            f = -(np.sum(Y * s) - np.log(tot).sum()) / n + 0.5 * np.sum(pen * W * W)
            g = Z.T @ (P - Y) / n + pen * W
            return f, g.ravel()

        res = minimize(loss, np.zeros(p * 3), jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-10})
        if not np.isfinite(res.fun):
            raise FidelityError(f"DirectionLogit.fit: the optimiser failed ({res.message})")
        return cls(mean=mean, scale=scale, coef=res.x.reshape(p, 3), names=tuple(names))

    def predict_proba(self, X) -> np.ndarray:
        """``(n, 3)`` probabilities of down, flat, up."""
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise FidelityError(f"DirectionLogit.predict_proba: need X (n, {len(self.mean)}), got {X.shape}")
        s = np.column_stack([np.ones(len(X)), (X - self.mean) / self.scale]) @ self.coef
        s -= s.max(axis=1, keepdims=True)
        P = np.exp(s)
        return P / P.sum(axis=1, keepdims=True)


def predict_from_counts(counts, prior=None) -> np.ndarray:
    """``(n,)`` predicted class: the most frequent of ``counts (n, 3)`` (simulated paths per class);
    ties go to the class with the larger ``prior`` (default: flat, then down, then up)."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 2 or counts.shape[1] != 3:
        raise FidelityError(f"predict_from_counts: need counts (n, 3), got {counts.shape}")
    prior = np.array([0.2, 0.6, 0.1]) if prior is None else np.asarray(prior, np.float64)
    rank = np.argsort(np.argsort(prior))  # 0 = smallest prior; a tie-break below one count
    return np.argmax(counts + 1e-3 * (1 + rank), axis=1) - 1


def macro_f1(y, pred) -> tuple[float, np.ndarray]:
    """``(macro-F1, per-class F1 (3,))`` over :data:`CLASSES` (0 for a class never predicted or present)."""
    y = np.asarray(y)
    pred = np.asarray(pred)
    f = np.zeros(3)
    for j, c in enumerate(CLASSES):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        f[j] = 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0
    return float(f.mean()), f


def direction_scores(y, pred, proba=None) -> dict:
    """Accuracy, macro-F1, per-class F1 and (with ``proba (n, 3)``) the log score in nats."""
    y = np.asarray(y)
    pred = np.asarray(pred)
    if y.shape != pred.shape or y.ndim != 1 or not len(y):
        raise FidelityError(f"direction_scores: need labels and predictions of one length, got {y.shape}, {pred.shape}")
    mf, per = macro_f1(y, pred)
    out = {"n": int(len(y)), "accuracy": float(np.mean(pred == y)), "macro_f1": mf,
           "f1_down": float(per[0]), "f1_flat": float(per[1]), "f1_up": float(per[2])}
    if proba is not None:
        proba = np.asarray(proba, np.float64)
        p = proba[np.arange(len(y)), y.astype(np.int64) + 1]
        out["log_score"] = float(-np.mean(np.log(np.clip(p, 1e-12, None))))
    return out


def paired_bootstrap(y, preds: dict, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals over resampled rows for each forecaster's accuracy and macro-F1, and for the
    difference of each forecaster against the first one in ``preds`` (name -> predictions), on the same
    resampled rows."""
    y = np.asarray(y)
    names = list(preds)
    P = {k: np.asarray(v) for k, v in preds.items()}
    rng = np.random.default_rng(seed)
    n = len(y)
    acc = {k: np.empty(n_boot) for k in names}
    mf = {k: np.empty(n_boot) for k in names}
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        for k in names:
            acc[k][b] = np.mean(P[k][i] == y[i])
            mf[k][b] = macro_f1(y[i], P[k][i])[0]
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    out = {}
    base = names[0]
    for k in names:
        out[k] = {"accuracy": tuple(np.percentile(acc[k], q)), "macro_f1": tuple(np.percentile(mf[k], q))}
        if k != base:
            out[k]["accuracy_minus_" + base] = tuple(np.percentile(acc[k] - acc[base], q))
            out[k]["macro_f1_minus_" + base] = tuple(np.percentile(mf[k] - mf[base], q))
    return out

"""Marked Poisson and multivariate Hawkes baselines of the tick token stream: fit, held-out nats, generator.

The model
---------
Every token (:mod:`lobworld.world_models.data.events`) belongs to one of ``K = 10`` **classes**,
``class = 2 * etype + (side is ask)`` (submit / partial cancel / delete / visible / hidden execution,
each on the bid or the ask). The classes arrive as a multivariate point process with intensities
(events per second)::

    lambda_k(t) = mu[k] + sum_p sum_{t_m < t} alpha[k, c_m, p] * beta[p] * exp(-beta[p] (t - t_m))

so ``alpha[k, j, p]`` is the expected number of class-``k`` events one class-``j`` event triggers
through the kernel of decay ``beta[p]`` (1/second; a fixed grid, so the log-likelihood is concave in
``mu, alpha`` and separates by target class). ``P = 0`` decays is the **Poisson** model (constant
rates ``mu``). Given the class, the **level** class (:func:`~lobworld.world_models.data.events.level_class`,
ticks behind the same-side best clipped to ``+-level_max``) and the **size bin** are drawn
independently from their empirical training laws: the size bin's per class (add-1/2 smoothed), the
level's per class and spread bucket before the event (:data:`SPREAD_EDGES`; shrunk to the class's
pooled law with :data:`LEVEL_PRIOR` pseudo-counts, since a trader improves a wide spread and cannot
improve a one-tick one). Timing and classes do not read the book.

Clock: the waiting time before token ``i`` is ``w_i = exp(log_dt_i)`` seconds (the tokens' floor of
``TokenConfig.min_dt_s`` for simultaneous events), the same ``y = log_dt`` every tick model is scored on.

Fit (:func:`fit_pointprocess`): maximum likelihood on the training block (a prefix of the day's
tokens; observation window from the day's first message to the last training token). Per class
``k`` the log-likelihood is ``sum_i log(theta_k . z_i) - theta_k . c`` with ``z_i = (1, beta_p E_jp(t_i))``
and the compensator weights ``c``; it is maximised by L-BFGS-B with the analytic gradient under
``theta >= 0``; standard errors come from the exact observed information
``sum_i z_i z_i^T / lambda_k(t_i)^2`` (parameters on the bound get NaN). Poisson: ``mu_k = N_k / T``,
standard error ``sqrt(N_k) / T``.

Scores (:func:`pointprocess_event_nats`): per token the five terms of the tick GRU (time, type, side,
level, size; nats), with the history from the day's first token: time ``-log f(y)`` with
``f(y) = w lambda(w) exp(-Lambda(w))`` (``lambda`` the total intensity, ``Lambda`` its integral since
the previous event), type ``-log(lambda_type / lambda)``, side ``-log(lambda_k / lambda_type)``, level and
size from the class's laws. Their sum is the event's negative log-likelihood, in the factorisation of
:func:`~lobworld.world_models.tick_model.event_nats` and of
:func:`~lobworld.world_models.tick_parametric.cst_event_nats` (whose marks are the last four summed).

Generator (:func:`simulate_pointprocess`): Ogata thinning of the intensities (they only decay
between events), the marks drawn from the laws, each message applied to an
:class:`~lobworld.world_models.tick_parametric.ArrayBook` as the CST reference simulator does, with
these rules (counted in :attr:`PPRun.counts`). The level is drawn from the class's law **conditioned
on what the book can take** (one uniform; when that level is impossible, a second from the law
truncated to the possible levels, counted ``redrawn``), the rule of the tick GRU's sampler:

* submit: possible levels are those that neither cross nor lock (``l >= -(spread - 1)``); price
  ``best_bid - l`` (bid) / ``best_ask + l`` (ask); the reference of an empty side is one tick inside
  the opposite best (then ``l >= 0``);
* partial cancel / delete: the level classes that hold shares on that side (the end class: the
  nearest level at least ``level_max`` ticks away); ``min(size, queue)`` shares leave;
* visible execution: at the same-side best (no level drawn), ``min(size, queue)`` shares;
* hidden execution: a price between the bests (``-spread <= l <= 0``), no book change;
* a cancel or execution on an empty side emits nothing (``dropped``); the point process runs on
  regardless (it is not book-aware).

Sizes are the bin centres of the tokens' size scale (rounded, at least one share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from lobworld.errors import LobworldError
from lobworld.world_models.data.events import (
    CANCEL, EXEC_HIDDEN, EXEC_VISIBLE, N_TYPES, SUBMIT, EventTokens, Messages, level_class,
    messages_to_events,
)

__all__ = ["N_CLASSES", "PointProcessError", "PointProcessParams", "PPRun", "token_classes", "token_waits",
           "excitation", "fit_hawkes_classes", "fit_pointprocess", "pointprocess_event_nats", "hawkes_class_nats",
           "simulate_classes", "simulate_pointprocess", "pointprocess_sequences", "DEFAULT_BETAS", "SPREAD_EDGES",
           "LEVEL_PRIOR", "spread_bucket", "compare_tick_baselines"]

N_CLASSES = 2 * N_TYPES
"""Event classes: ``2 * etype + (side is ask)``."""
DEFAULT_BETAS = (1e7, 1e5, 3e3, 100.0, 3.0, 0.1)
"""Kernel decays of the Hawkes baseline, 1/second (time scales 100 ns to 10 s). Chosen on the GOOG early-stop
block among seven grids (docs/tick_world_models.md); the fast kernels carry the bursts of messages with one
timestamp (an aggressive order walking several resting orders)."""


SPREAD_EDGES = (1, 2, 3, 5, 9, 17, 33)
"""Lower edges (ticks) of the spread buckets the level law is conditioned on: 1, 2, 3-4, 5-8, 9-16,
17-32, 33 and more (and one-sided books)."""
LEVEL_PRIOR = 20.0
"""Pseudo-counts of a class's pooled level law in each of its spread-bucket laws."""


class PointProcessError(LobworldError):
    """Bad input to the Poisson / Hawkes tick baseline (names the argument or field)."""


@dataclass(frozen=True, eq=False)
class PointProcessParams:
    """A fitted marked Poisson (``betas`` empty) or Hawkes model of the token stream."""

    mu: np.ndarray
    """(K,) baseline intensity of each class, events per second."""
    alpha: np.ndarray
    """(K, K, P) branching: ``alpha[k, j, p]`` = expected class-k children of a class-j event via kernel p."""
    betas: np.ndarray
    """(P,) kernel decays, 1/second (P = 0: Poisson)."""
    level_probs: np.ndarray
    """(K, len(SPREAD_EDGES), 2 level_max + 1) P(level class | class, spread bucket before the event)."""
    size_probs: np.ndarray
    """(K, n_size_bins) P(size bin | class)."""
    size_centers: np.ndarray
    """(n_size_bins,) shares drawn for each size bin (the tokens' :attr:`SizeScale.centers`, rounded, >= 1)."""
    level_max: int
    """Levels are clipped to ``+-level_max`` ticks."""
    mu_se: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(K,) standard errors of ``mu`` (NaN on the bound)."""
    alpha_se: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(K, K, P) standard errors of ``alpha`` (NaN on the bound)."""
    train_seconds: float = 0.0
    """Observation window of the fit, seconds."""
    n_train: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(K,) training events per class."""
    loglik: float = float("nan")
    """Maximised log-likelihood of the class stream on the training window (times and classes)."""
    ticker: str = ""

    @property
    def kind(self) -> str:
        return "poisson" if len(self.betas) == 0 else "hawkes"

    @property
    def n_classes(self) -> int:
        return len(self.mu)

    @property
    def branching_ratio(self) -> float:
        """Spectral radius of ``alpha.sum(axis=2)`` (the process is stationary iff < 1)."""
        if len(self.betas) == 0:
            return 0.0
        return float(np.max(np.abs(np.linalg.eigvals(self.alpha.sum(axis=2)))))

    def __post_init__(self):
        K = len(self.mu)
        if np.asarray(self.alpha).shape != (K, K, len(self.betas)):
            raise PointProcessError(f"alpha: shape {np.asarray(self.alpha).shape}, needs (K, K, P) = "
                                    f"({K}, {K}, {len(self.betas)})")
        for name in ("mu", "alpha", "betas"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if not (np.isfinite(v).all() and (v >= 0).all()):
                raise PointProcessError(f"{name}: must be finite and >= 0")
        if (np.asarray(self.betas) <= 0).any():
            raise PointProcessError("betas: must be > 0")
        for name, nd in (("level_probs", 3), ("size_probs", 2)):
            v = np.asarray(getattr(self, name))
            if v.ndim != nd or v.shape[0] != K or not np.allclose(v.sum(axis=-1), 1.0):
                raise PointProcessError(f"{name}: needs probability rows per class ({K}) summing to 1, {nd}-d")


# ---------------------------------------------------------------------------
# classes, clock, excitation
# ---------------------------------------------------------------------------
def token_classes(tokens: EventTokens) -> np.ndarray:
    """int64 class of every token: ``2 * etype + (side == -1)``."""
    return (2 * tokens.etype.astype(np.int64) + (tokens.side < 0)).astype(np.int64)


def token_waits(tokens: EventTokens) -> np.ndarray:
    """float64 waiting time before every token, seconds: ``exp(log_dt)`` (floored like ``log_dt``)."""
    return np.exp(tokens.log_dt.astype(np.float64))


@njit(cache=True)
def _excitation(w, cls, betas, n_classes, out):
    """``out[i, j, p]`` = sum over earlier events m of class j of ``exp(-betas[p] (t_i - t_m))``,
    ``t_i = w[0] + ... + w[i]``: the kernel sums just before event i."""
    P = betas.shape[0]
    E = np.zeros((n_classes, P))
    for i in range(w.shape[0]):
        if i > 0:
            c = cls[i - 1]
            for p in range(P):
                E[c, p] += 1.0
        for p in range(P):
            d = math.exp(-betas[p] * w[i])
            for j in range(n_classes):
                E[j, p] *= d
                out[i, j, p] = E[j, p]


def excitation(waits, classes, betas, n_classes: int = N_CLASSES) -> np.ndarray:
    """(n, K, P) kernel sums just before each event (see :func:`_excitation`)."""
    w = np.ascontiguousarray(waits, dtype=np.float64)
    c = np.ascontiguousarray(classes, dtype=np.int64)
    b = np.ascontiguousarray(betas, dtype=np.float64)
    out = np.empty((len(w), n_classes, len(b)))
    if len(w):
        _excitation(w, c, b, n_classes, out)
    return out


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _check_stream(waits, classes, n_classes):
    w = np.asarray(waits, dtype=np.float64)
    c = np.asarray(classes)
    if w.ndim != 1 or c.shape != w.shape:
        raise PointProcessError(f"waits and classes: 1-d arrays of one length, got {w.shape} and {c.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        i = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0])
        raise PointProcessError(f"waits[{i}] = {w[i]!r}: must be finite and >= 0 seconds")
    if len(c) and (c.min() < 0 or c.max() >= n_classes):
        i = int(np.flatnonzero((c < 0) | (c >= n_classes))[0])
        raise PointProcessError(f"classes[{i}] = {c[i]}: must be in 0..{n_classes - 1}")
    return w, c.astype(np.int64)


def fit_hawkes_classes(waits, classes, n_classes: int, betas, *, T: float | None = None):
    """Maximum-likelihood ``(mu, alpha, mu_se, alpha_se, loglik)`` of the ``n_classes``-variate
    exponential Hawkes process with fixed decays ``betas`` (empty: Poisson) on the window ``[0, T]``
    (``T`` defaults to the last event's time ``sum(waits)``), events at ``t_i = cumsum(waits)``."""
    w, c = _check_stream(waits, classes, n_classes)
    b = np.asarray(betas, dtype=np.float64)
    K, P = n_classes, len(b)
    t = np.cumsum(w)
    T = float(t[-1]) if T is None else float(T)
    if not T > 0 or (len(t) and T < t[-1] - 1e-9 * max(1.0, t[-1])):
        raise PointProcessError(f"T = {T!r}: must be > 0 and not before the last event ({t[-1] if len(t) else 0})")
    counts = np.bincount(c, minlength=K)
    mu, alpha = np.zeros(K), np.zeros((K, K, P))
    mu_se, alpha_se = np.full(K, np.nan), np.full((K, K, P), np.nan)
    if P == 0:
        mu = counts / T
        mu_se = np.sqrt(counts) / T
        ll = float(np.sum(counts[counts > 0] * np.log(mu[counts > 0])) - mu.sum() * T)
        return mu, alpha, mu_se, alpha_se, ll
    E = excitation(w, c, b, K)  # (n, K, P)
    # compensator weights: int_0^T of beta_p * kernel of each event = 1 - exp(-beta_p (T - t_m))
    C = np.zeros((K, P))
    for p in range(P):
        np.add.at(C[:, p], c, -np.expm1(-b[p] * (T - t)))
    cvec = np.concatenate([[T], C.ravel()])
    ll_tot = 0.0
    for k in range(K):
        if counts[k] == 0:
            continue
        Z = np.concatenate([np.ones((counts[k], 1)), (E[c == k] * b[None, None, :]).reshape(counts[k], K * P)], axis=1)
        x0 = np.concatenate([[0.5 * counts[k] / T], np.full(K * P, 0.5 * counts[k] / max(counts.sum(), 1) / P)])
        x, lam, info, free = _newton_fit(Z, cvec, x0)
        ll_tot += float(np.log(lam).sum() - x @ cvec)
        se = np.full(len(x), np.nan)
        try:
            se[free] = np.sqrt(np.clip(np.diag(np.linalg.inv(info[np.ix_(free, free)])), 0.0, None))
        except np.linalg.LinAlgError:
            pass
        mu[k], alpha[k] = x[0], x[1:].reshape(K, P)
        mu_se[k], alpha_se[k] = se[0], se[1:].reshape(K, P)
    return mu, alpha, mu_se, alpha_se, ll_tot


def _newton_fit(Z, cvec, x0, *, max_iter: int = 200, tol: float = 1e-10):
    """Maximise ``sum log(Z x) - c . x`` over ``x >= 0`` (``x[0] >= 1e-12``) by projected Newton
    (Bertsekas 1982): Newton steps on the parameters off their bound, a projected Armijo line search.
    Returns ``(x, Z x, observed information, free mask)``; the information is ``Z^T diag(1/lam^2) Z``."""
    lb = np.zeros(len(x0))
    lb[0] = 1e-12
    x = np.maximum(np.asarray(x0, dtype=np.float64), lb)
    lam = Z @ x
    f = -(np.log(lam).sum() - x @ cvec)
    for _ in range(max_iter):
        g = -(Z.T @ (1.0 / lam) - cvec)
        Zl = Z / lam[:, None]
        H = Zl.T @ Zl
        at_bound = (x <= lb + 1e-14) & (g > 0)
        fr = ~at_bound
        d = np.zeros_like(x)
        try:
            d[fr] = -np.linalg.solve(H[np.ix_(fr, fr)] + 1e-12 * np.eye(int(fr.sum())), g[fr])
        except np.linalg.LinAlgError:
            d[fr] = -g[fr] / np.maximum(np.diag(H)[fr], 1e-300)
        step, fn, xn, lam_n = 1.0, np.inf, x, lam
        while step >= 1e-12:
            xn = np.maximum(x + step * d, lb)
            lam_n = Z @ xn
            if (lam_n > 0).all():
                fn = -(np.log(lam_n).sum() - xn @ cvec)
                if fn <= f + 1e-4 * g @ (xn - x):
                    break
            step *= 0.5
        if not fn <= f:  # no descent left (float precision at the optimum)
            break
        gain = f - fn
        x, lam, f = xn, lam_n, fn
        if gain <= tol * max(1.0, abs(f)):
            break
    Zl = Z / lam[:, None]
    free = np.ones(len(x), bool)
    free[1:] = x[1:] > 1e-9
    return x, lam, Zl.T @ Zl, free


def spread_bucket(spread) -> np.ndarray:
    """int64 bucket of a spread in ticks (:data:`SPREAD_EDGES`); a one-sided book (spread -1) goes to
    the widest bucket."""
    sp = np.asarray(spread, dtype=np.int64)
    b = np.searchsorted(np.asarray(SPREAD_EDGES), sp, side="right") - 1
    return np.where(sp < 1, len(SPREAD_EDGES) - 1, np.clip(b, 0, len(SPREAD_EDGES) - 1)).astype(np.int64)


def _laws(tokens: EventTokens, cls, mask, level_max: int):
    nl = 2 * level_max + 1
    nb = tokens.scale.n_bins
    lc = level_class(tokens.level[mask], level_max)
    flat = np.full((N_CLASSES, nl), 0.5)
    np.add.at(flat, (cls[mask], lc), 1.0)
    flat /= flat.sum(1, keepdims=True)
    lv = np.broadcast_to(LEVEL_PRIOR * flat[:, None, :], (N_CLASSES, len(SPREAD_EDGES), nl)).copy()
    np.add.at(lv, (cls[mask], spread_bucket(tokens.spread[mask]), lc), 1.0)
    lv /= lv.sum(2, keepdims=True)
    sz = np.full((N_CLASSES, nb), 0.5)
    np.add.at(sz, (cls[mask], tokens.size_bin[mask].astype(np.int64)), 1.0)
    return lv, sz / sz.sum(1, keepdims=True)


def fit_pointprocess(tokens: EventTokens, train, *, kind: str = "hawkes", betas=DEFAULT_BETAS,
                     level_max: int = 64) -> PointProcessParams:
    """Fit the Poisson (``kind="poisson"``) or Hawkes model on the ``train`` tokens (a prefix of the
    stream: the block before the early-stop and test hours); window from the day's first message to
    the last training token."""
    if kind not in ("poisson", "hawkes"):
        raise PointProcessError(f"kind: must be 'poisson' or 'hawkes', got {kind!r}")
    train = np.asarray(train, bool)
    if train.shape != (len(tokens),):
        raise PointProcessError(f"train: needs one bool per token ({len(tokens)}), got shape {train.shape}")
    n_tr = int(train.sum())
    if n_tr == 0 or not train[:n_tr].all():
        raise PointProcessError("train: must be a non-empty prefix of the tokens (the training block)")
    if not (isinstance(level_max, (int, np.integer)) and level_max >= 1):
        raise PointProcessError(f"level_max: must be an int >= 1, got {level_max!r}")
    cls = token_classes(tokens)
    w = token_waits(tokens)
    b = np.asarray(betas if kind == "hawkes" else (), dtype=np.float64)
    if kind == "hawkes" and (len(b) == 0 or (b <= 0).any() or not np.isfinite(b).all()):
        raise PointProcessError(f"betas: the Hawkes model needs at least one positive decay, got {betas!r}")
    T = float(w[:n_tr].sum())
    mu, alpha, mu_se, alpha_se, ll = fit_hawkes_classes(w[:n_tr], cls[:n_tr], N_CLASSES, b, T=T)
    lv, sz = _laws(tokens, cls, train, level_max)
    centers = np.maximum(1.0, np.rint(np.asarray(tokens.scale.centers, dtype=np.float64)))
    # the marks' log-likelihood on the training block joins the class stream's
    lc = level_class(tokens.level[train], level_max)
    ll += float(np.log(lv[cls[train], spread_bucket(tokens.spread[train]), lc]).sum() + np.log(sz[cls[train], tokens.size_bin[train].astype(int)]).sum())
    return PointProcessParams(mu=mu, alpha=alpha, betas=b, level_probs=lv, size_probs=sz, size_centers=centers,
                              level_max=int(level_max), mu_se=mu_se, alpha_se=alpha_se, train_seconds=T,
                              n_train=np.bincount(cls[train], minlength=N_CLASSES), loglik=ll,
                              ticker=str(tokens.meta.get("ticker", "")))


# ---------------------------------------------------------------------------
# held-out nats
# ---------------------------------------------------------------------------
def hawkes_class_nats(mu, alpha, betas, waits, classes):
    """Per event ``(time_nll, log lambda_c(w), log lambda(w), lambda_k(w))``: the time term
    ``-(log w + log lambda(w) - Lambda(w))`` (a density over ``y = log w``), the log intensities of the
    event's class and of all classes at the event, and the ``(n, K)`` intensities of every class;
    history from the first event (none before it)."""
    mu, alpha, b = (np.asarray(a, dtype=np.float64) for a in (mu, alpha, betas))
    K = len(mu)
    w, c = _check_stream(waits, classes, K)
    n = len(w)
    if len(b):
        E = excitation(w, c, b, K)  # just before event i
        ab = (alpha * b[None, None, :]).reshape(K, -1)
        lam_k = mu[None, :] + E.reshape(n, -1) @ ab.T  # (n, K)
        Eplus = np.zeros_like(E)  # just after event i - 1
        Eplus[1:] = E[:-1]
        Eplus[np.arange(1, n), c[:-1], :] += 1.0
        A = alpha.sum(axis=0)  # (K, P): total children by source class and kernel
        comp = mu.sum() * w + ((Eplus - E) * A[None]).reshape(n, -1).sum(1)
    else:
        lam_k = np.broadcast_to(mu, (n, K))
        comp = mu.sum() * w
    lam = lam_k.sum(1)
    with np.errstate(divide="ignore"):
        time = -(np.log(w) + np.log(lam) - comp)
        return time, np.log(lam_k[np.arange(n), c]), np.log(lam), lam_k


def pointprocess_event_nats(params: PointProcessParams, tokens: EventTokens) -> np.ndarray:
    """``(n, 5)`` per-token NLL terms (time, type, side, level, size; nats) of the whole stream, the
    history carried from the first token (see the module docstring)."""
    if tokens.scale is None or tokens.scale.n_bins != params.size_probs.shape[1]:
        raise PointProcessError(f"tokens: size bins {None if tokens.scale is None else tokens.scale.n_bins} "
                                f"differ from the model's {params.size_probs.shape[1]}")
    cls = token_classes(tokens)
    time, _, log_lam, lam_k = hawkes_class_nats(params.mu, params.alpha, params.betas, token_waits(tokens), cls)
    n = len(cls)
    et = cls // 2
    lam_type = lam_k.reshape(n, N_TYPES, 2).sum(2)[np.arange(n), et]
    with np.errstate(divide="ignore"):
        nll_type = -(np.log(lam_type) - log_lam)
        nll_side = -(np.log(lam_k[np.arange(n), cls]) - np.log(lam_type))
    lc = level_class(tokens.level, params.level_max)
    nll_lev = -np.log(params.level_probs[cls, spread_bucket(tokens.spread), lc])
    nll_sz = -np.log(params.size_probs[cls, tokens.size_bin.astype(np.int64)])
    return np.stack([time, nll_type, nll_side, nll_lev, nll_sz], axis=1)


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------
def simulate_classes(mu, alpha, betas, rng: np.random.Generator, *, T: float | None = None,
                     n_events: int | None = None, state=None):
    """Ogata thinning of the class process: ``(waits, classes, state)`` until time ``T`` or
    ``n_events`` events. ``state`` (K, P) are the kernel sums just after the last event (default 0);
    the returned state is the one after the last event. Draws per candidate: one exponential, one
    uniform."""
    mu, alpha, b = (np.asarray(a, dtype=np.float64) for a in (mu, alpha, betas))
    K, P = len(mu), len(b)
    if (T is None) == (n_events is None):
        raise PointProcessError("simulate_classes: give exactly one of T, n_events")
    Ep = np.zeros((K, P)) if state is None else np.array(state, dtype=np.float64)
    ab = (alpha * b[None, None, :]).reshape(K, -1)
    A_b = (alpha.sum(0) * b[None, :]).ravel()
    M = float(mu.sum())
    waits, classes = [], []
    t, last = 0.0, 0.0
    while True:
        lam_bar = M + float(A_b @ Ep.ravel())
        dt = rng.exponential(1.0 / lam_bar)
        u = rng.random() * lam_bar
        t += dt
        if T is not None and t > T:
            break
        Ep *= np.exp(-b * dt)[None, :]
        lam_k = mu + ab @ Ep.ravel()
        cum = np.cumsum(lam_k)
        if u >= cum[-1]:
            continue
        k = min(int(np.searchsorted(cum, u, side="right")), K - 1)
        waits.append(t - last)
        classes.append(k)
        last = t
        Ep[k] += 1.0
        if n_events is not None and len(classes) >= n_events:
            break
    return np.asarray(waits), np.asarray(classes, dtype=np.int64), Ep


@dataclass(frozen=True, eq=False)
class PPRun:
    """Output of :func:`simulate_pointprocess`."""

    messages: Messages
    """Generated messages (LOBSTER layout; types 1-5)."""
    bid_px: np.ndarray
    """(n, levels) int64 book after each message, ticks (``NO_PRICE`` empty)."""
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    book: object
    """The :class:`~lobworld.world_models.tick_parametric.ArrayBook` at the end."""
    counts: dict
    """``events`` (accepted point-process events), ``clamped``, ``moved``, ``dropped`` (the rules)."""
    state: np.ndarray
    """(K, P) kernel sums just after the last event."""

    def to_events(self, *, date: str = "2012-06-21", tick_size: float = 0.01, ticker: str = "PP") -> pd.DataFrame:
        """The run as a canonical event table."""
        return messages_to_events(self.messages, self.bid_px, self.bid_sz, self.ask_px, self.ask_sz,
                                  date=date, tick_size=tick_size, ticker=ticker)


def simulate_pointprocess(params: PointProcessParams, rng: np.random.Generator, n_messages: int, *, book,
                          start_ns: int = 34_200 * 10**9, levels: int = 10, state=None) -> PPRun:
    """Generate ``n_messages`` messages from ``params`` applied to ``book`` (an ``ArrayBook``, changed in
    place) with the rules of the module docstring. ``state``: (K, P) kernel sums at the start (the
    real history, :func:`pointprocess_sequences`); times are ``start_ns`` plus the waiting times.
    Draws from ``rng`` per candidate event: an exponential and a uniform (thinning); per accepted
    event: a uniform for the level and one for the size bin."""
    if not isinstance(rng, np.random.Generator):
        raise PointProcessError(f"rng: must be a numpy.random.Generator, got {type(rng).__name__}")
    if not (isinstance(n_messages, (int, np.integer)) and n_messages >= 1):
        raise PointProcessError(f"n_messages: must be an int >= 1, got {n_messages!r}")
    n = int(n_messages)
    K, P = params.n_classes, len(params.betas)
    b = np.asarray(params.betas, np.float64)
    Ep = np.zeros((K, P)) if state is None else np.array(state, dtype=np.float64)
    if Ep.shape != (K, P):
        raise PointProcessError(f"state: shape {Ep.shape}, needs ({K}, {P})")
    ab = (params.alpha * b[None, None, :]).reshape(K, -1)
    A_b = (params.alpha.sum(0) * b[None, :]).ravel()
    M = float(params.mu.sum())
    lcum = np.cumsum(params.level_probs, axis=2)
    scum = np.cumsum(params.size_probs, axis=1)
    L = int(params.level_max)
    t_ns, typ = np.empty(n, np.int64), np.empty(n, np.int8)
    size, price, dirn = np.empty(n, np.float64), np.empty(n, np.int64), np.empty(n, np.int8)
    obp, obs = np.empty((n, levels), np.int64), np.empty((n, levels))
    oap, oas = np.empty((n, levels), np.int64), np.empty((n, levels))
    counts = {"events": 0, "redrawn": 0, "dropped": 0}
    t = 0.0
    m = 0
    while m < n:
        lam_bar = M + float(A_b @ Ep.ravel())
        dt = rng.exponential(1.0 / lam_bar)
        u = rng.random() * lam_bar
        t += dt
        if P:
            Ep *= np.exp(-b * dt)[None, :]
            lam_k = params.mu + ab @ Ep.ravel()
        else:
            lam_k = params.mu
        cum = np.cumsum(lam_k)
        if u >= cum[-1]:
            continue
        k = min(int(np.searchsorted(cum, u, side="right")), K - 1)
        if P:
            Ep[k] += 1.0
        counts["events"] += 1
        sb = min(int(np.searchsorted(scum[k], rng.random() * scum[k, -1], side="right")), scum.shape[1] - 1)
        s = float(params.size_centers[sb])
        et, is_bid = k // 2, k % 2 == 0
        msg = _apply(book, et, is_bid, params.level_probs[k], lcum[k], L, s, rng, counts)  # rows picked by spread
        if msg is None:
            continue
        tp, sz, px = msg
        t_ns[m], typ[m], size[m], price[m], dirn[m] = start_ns + int(round(t * 1e9)), tp, sz, px, 1 if is_bid else -1
        obp[m], obs[m], oap[m], oas[m] = book.levels(levels)
        m += 1
    msgs = Messages(time_ns=t_ns, type=typ, size=size, price_ticks=price, direction=dirn)
    return PPRun(msgs, obp, obs, oap, oas, book, counts, Ep)


def _draw_class(probs, cum, feasible, rng, counts) -> int:
    """A level class from the law ``probs`` conditioned on ``feasible`` (bool per class): one uniform,
    and a second from the truncated law when the first draw is not feasible (counted ``redrawn``)."""
    c = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(cum) - 1)
    if feasible is None or feasible[c]:
        return c
    counts["redrawn"] += 1
    tc = np.cumsum(np.where(feasible, probs, 0.0))
    return min(int(np.searchsorted(tc, rng.random() * tc[-1], side="right")), len(tc) - 1)


def _apply(book, et: int, is_bid: bool, probs, cum, L: int, s: float, rng, counts: dict):
    """Draw the level of one event (conditioned on the book, see the module docstring), apply the
    event to ``book``; returns (LOBSTER type, size, price) or None (dropped)."""
    nzb = np.flatnonzero(book.bid > 0)
    nza = np.flatnonzero(book.ask > 0)
    bb = book.base + int(nzb[-1]) if len(nzb) else None
    ba = book.base + int(nza[0]) if len(nza) else None
    lb, la = book.refs()
    if is_bid:
        ref = bb if bb is not None else (ba - 1 if ba is not None else lb)
    else:
        ref = ba if ba is not None else (bb + 1 if bb is not None else la)
    sign = 1 if is_bid else -1  # price = ref - sign * level
    sb = int(spread_bucket(ba - bb if bb is not None and ba is not None else -1))
    probs, cum = probs[sb], cum[sb]
    nc = 2 * L + 1
    cls = np.arange(nc) - L  # level of each class (the end classes: at least L ticks away)
    if et in (SUBMIT, EXEC_HIDDEN):
        feasible = None
        if bb is not None and ba is not None:
            spread = ba - bb
            lo = -(spread - 1) if et == SUBMIT else -spread  # submits never cross or lock; hidden trades between the bests
            hi = 2 * L if et == SUBMIT else 0
            feasible = (cls >= max(lo, -L) if lo > -L else np.ones(nc, bool)) & (cls <= hi)
        elif et == SUBMIT and (bb if is_bid else ba) is None:
            feasible = cls >= 0  # the reference is one tick inside the opposite best
        c = _draw_class(probs, cum, feasible, rng, counts)
        level = int(cls[c])
        px = ref - sign * level
        if et == EXEC_HIDDEN:
            return 5, s, px
        lo_p = min(px, bb if bb is not None else px, ba if ba is not None else px)
        hi_p = max(px, bb if bb is not None else px, ba if ba is not None else px)
        book.ensure(lo_p, hi_p)
        (book.bid if is_bid else book.ask)[px - book.base] += s
        return 1, s, px
    arr, nz = (book.bid, nzb) if is_bid else (book.ask, nza)
    if not len(nz):
        counts["dropped"] += 1
        return None
    if et == EXEC_VISIBLE:
        j = int(nz[-1] if is_bid else nz[0])
    else:  # CANCEL, DELETE: a level class that holds shares
        lev = sign * (ref - (book.base + nz))  # >= 0
        lc = np.clip(lev, -L, L) + L
        feasible = np.zeros(nc, bool)
        feasible[lc] = True
        c = _draw_class(probs, cum, feasible, rng, counts)
        cand = np.flatnonzero(lc == c)
        j = int(nz[cand[np.argmin(lev[cand])]])  # the end class: the nearest such level
    take = min(s, float(arr[j]))
    arr[j] -= take
    return (4 if et == EXEC_VISIBLE else (2 if et == CANCEL else 3)), take, book.base + j


def pointprocess_sequences(params: PointProcessParams, events: pd.DataFrame, tokens: EventTokens, ranges,
                           rng: np.random.Generator, *, levels: int = 10) -> tuple[list[pd.DataFrame], dict]:
    """One generated sequence per real row range ``[a, b)`` of ``events`` (as
    :func:`~lobworld.world_models.fidelity.events.cst_sequences`): started from the real book after row
    ``a - 1`` (its listed levels) and the kernel sums of the real history up to that row, decayed to the
    range's first message time, for as many messages as the range holds. Returns the sequences and
    the summed rule counts."""
    from lobworld.world_models.tick_parametric import ArrayBook

    if len(tokens) != len(events) - 1:
        raise PointProcessError(f"tokens: {len(tokens)} tokens for {len(events)} rows (need one per row after the first)")
    ts = pd.DatetimeIndex(events["ts"])
    day_ns = ts[0].normalize().value
    cls = token_classes(tokens)
    P = len(params.betas)
    E = excitation(token_waits(tokens), cls, params.betas) if P else None
    tick = float(events.attrs.get("tick_size", 0.01))
    out, tot = [], {}
    for a, b in ranges:
        row = max(a - 1, 0)
        book = ArrayBook.from_events(events, row, n_grid=4096)
        start_ns = int(ts[a].value - day_ns)
        state = None
        if P and row >= 1:
            i = row - 1  # token of table row `row`
            state = E[i].copy()
            state[cls[i]] += 1.0
            gap = (ts[a].value - ts[row].value) * 1e-9
            state *= np.exp(-np.asarray(params.betas) * gap)[None, :]
        run = simulate_pointprocess(params, rng, int(b - a), book=book, start_ns=start_ns, levels=levels, state=state)
        for k, v in run.counts.items():
            tot[k] = tot.get(k, 0) + v
        out.append(run.to_events(date=str(ts[0].date()), tick_size=tick,
                                 ticker=f"{params.kind.upper()}-{events.attrs.get('ticker', '')}"))
    return out, tot


# ---------------------------------------------------------------------------
# the held-out comparison of docs/tick_world_models.md
# ---------------------------------------------------------------------------
def compare_tick_baselines(message_path, *, betas=DEFAULT_BETAS, level_max: int = 64, gru: bool = True,
                           lob_bench: bool = True, n_boot: int = 50, seed: int = 0, out_dir=None,
                           log=print) -> dict:
    """Held-out nats per event (the last ``TokenConfig().test_hours``) of Poisson, Hawkes, CST and (with
    ``gru``) the shipped tick GRU of the file's ticker on one LOBSTER day, all fitted on the same
    training block and scored on the same tokens (the GRU's size bins); with ``lob_bench`` the LOB-Bench
    scores of Poisson- and Hawkes-generated sequences on the 14:00-16:00 windows
    (:func:`pointprocess_sequences`, scored as ``lobworld fidelity --events`` scores CST, with the
    real-vs-real floor of the same seed). ``out_dir``: the generated sequences as LOBSTER file pairs."""
    import pathlib

    from lobworld.world_models.data import load_lobster
    from lobworld.world_models.data.events import SizeScale, TokenConfig, split_masks, tokenize
    from lobworld.world_models.tick_parametric import cst_event_nats, fit_cst

    events = load_lobster(message_path)
    ticker = str(events.attrs.get("ticker", "UNKNOWN"))
    scale, model = None, None
    if gru:
        from lobworld.world_models.tick_model import event_nats, load_fitted_tick_model, tick_features

        model, meta = load_fitted_tick_model(ticker)
        scale = SizeScale(**{**meta["scale"], "edges": tuple(meta["scale"]["edges"]),
                             "centers": tuple(meta["scale"]["centers"])})
        level_max = int(meta["config"]["level_max"])
    tok = tokenize(events, TokenConfig(), scale=scale)
    train, es, test = split_masks(tok)
    nats = {}
    for kind in ("poisson", "hawkes"):
        p = fit_pointprocess(tok, train, kind=kind, betas=betas, level_max=level_max)
        nats[kind] = pointprocess_event_nats(p, tok)
        log(f"{ticker} {kind}: fitted (branching ratio {p.branching_ratio:.3f})")
        if kind == "hawkes":
            hawkes = p
        else:
            poisson = p
    cst = fit_cst(events, size_law="lognormal", train_mask=train)
    c = cst_event_nats(cst, events, tok, train, level_max=level_max)
    nats["cst"] = np.stack([c[:, 0], c[:, 1], np.zeros(len(c)), np.zeros(len(c)), np.zeros(len(c))], axis=1)
    if gru:
        x, tg = tick_features(tok, level_max)
        nats["gru"] = event_nats(model, x, tg)
    ok = test.copy()
    for v in nats.values():
        ok &= np.isfinite(v).all(axis=1)
    tie = tok.dt_ns == 0
    res = {"ticker": ticker, "n_test_events": int(ok.sum()), "tie_share_test": float(tie[ok].mean()),
           "betas": list(map(float, betas)), "branching_ratio": hawkes.branching_ratio, "models": {}}
    for name, v in nats.items():
        r = {"time": float(v[ok, 0].mean()), "marks": float(v[ok, 1:].sum(1).mean()),
             "total": float(v[ok].sum(1).mean()), "early_stop_total": float(v[es & np.isfinite(v).all(1)].sum(1).mean()),
             "time_dt_pos": float(v[ok & ~tie, 0].mean()), "time_dt_zero": float(v[ok & tie, 0].mean())}
        if name != "cst":
            r["terms"] = dict(zip(("time", "type", "side", "level", "size"), map(float, v[ok].mean(0))))
        res["models"][name] = r
    if lob_bench:
        from lobworld.world_models.data.schema import infer_levels
        from lobworld.world_models.fidelity.events import (
            score_sequences, sequence_statistics, split_sequences, write_lobster,
        )

        L = min(10, infer_levels(events))
        ranges = split_sequences(events, start="14:00", end="16:00", window_s=600.0)
        real = [sequence_statistics(events.iloc[a:b], levels=L) for a, b in ranges]
        r_floor, r_score, r_sim = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        lb = {"floor": score_sequences(real[0::2], real[1::2], label="real vs real", n_boot=n_boot, rng=r_floor)}
        for name, p in (("poisson", poisson), ("hawkes", hawkes)):
            gen, counts = pointprocess_sequences(p, events, tok, ranges, r_sim)
            lb[name] = score_sequences(real, [sequence_statistics(g, levels=L) for g in gen], label=f"{name} vs real",
                                       n_boot=n_boot, rng=r_score)
            res.setdefault("rules", {})[name] = counts
            if out_dir is not None:
                for g in gen:
                    write_lobster(g, pathlib.Path(out_dir) / name / ticker, ticker=f"{name.upper()}-{ticker}")
            log(f"{ticker} {name}: LOB-Bench mean L1 {lb[name].summary['l1']['mean']:.3f}")
        res["lob_bench"] = {k: {"l1": v.l1, "w1": v.w1, "summary": v.summary, "summary_ci": v.summary_ci,
                                "n_real": v.n_real, "n_other": v.n_other} for k, v in lb.items()}
    return res


def _main(argv=None) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Held-out nats and LOB-Bench scores of the Poisson / Hawkes tick "
                                             "baselines beside CST and the shipped tick GRU (one LOBSTER day).")
    ap.add_argument("message_path")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--out", help="write the generated sequences as LOBSTER file pairs under this folder")
    ap.add_argument("--n-boot", type=int, default=50)
    ap.add_argument("--no-lob-bench", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args(argv)
    res = compare_tick_baselines(ns.message_path, lob_bench=not ns.no_lob_bench, n_boot=ns.n_boot, seed=ns.seed,
                                 out_dir=ns.out)
    text = json.dumps(res, indent=1, default=float)
    if ns.json:
        with open(ns.json, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    _main()

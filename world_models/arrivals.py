"""Order-flow arrival models: Poisson and bivariate Hawkes (exponential kernel).

Marks: 0 = buyer-initiated market order, 1 = seller-initiated. The Hawkes
intensity of mark ``m`` is::

    lambda_m(t) = mu[m] + sum_{t_j < t} alpha[m, m_j] * beta * exp(-beta (t - t_j))

so ``alpha[m, n]`` is the expected number of mark-``m`` events directly
triggered by one mark-``n`` event (a branching matrix), and the process is
stationary iff the spectral radius of ``alpha`` (the branching ratio) is < 1.
Units: seconds; ``mu`` in events per second, ``beta`` in 1/second.

Contents
--------
* :class:`HawkesParams`, :class:`PoissonParams`: frozen parameter dataclasses
  (shared with the market-making environments).
* :func:`market_orders_from_events` / :func:`load_market_orders`: market
  orders (aggregated executions, see :class:`MarketOrders`) from a canonical
  event table / a LOBSTER file.
* :func:`fit_poisson`, :func:`poisson_loglik`, :func:`simulate_poisson`.
* :func:`fit_hawkes` (exact MLE, returns a :class:`FitReport`),
  :func:`hawkes_loglik`, :func:`hawkes_intensity`, :func:`hawkes_residuals`
  (time-rescaling), :func:`simulate_hawkes` (Ogata thinning).
* :func:`load_fitted_arrivals`: parameters fitted on the shipped LOBSTER days.

All times are seconds since the start of the observation window ``[0, T]``.
"""

from __future__ import annotations

import math
import pathlib
import warnings
from dataclasses import dataclass

import numpy as np
from numba import njit

from lobworld.envs.arrivals import HawkesParams, PoissonParams
from lobworld._checks import positive
from lobworld.errors import LobworldError
from lobworld.world_models.data.session import SESSION_CLOSE_S, SESSION_OPEN_S


class ArrivalFitError(LobworldError):
    """Bad input to the arrival-process fits, likelihoods or simulators (field named)."""


# ---------------------------------------------------------------------------
# Market orders from an event table
# ---------------------------------------------------------------------------

BUY, SELL = 0, 1  #: marks: 0 buyer-initiated market order, 1 seller-initiated


@dataclass(frozen=True)
class MarketOrders:
    """Market orders (aggressor events) of one session, in time order.

    A LOBSTER market order is not a message: an aggressive order that walks
    through several resting orders produces one execution message (type 4
    visible or type 5 hidden) per resting order hit, all with the same
    timestamp. We therefore aggregate executions into market orders with this
    rule: **consecutive execution messages with the same timestamp and the
    same aggressor side are one market order**. Its size is the sum of their
    sizes; its mid before is the mid before the first of them and its mid
    after is the mid after the last of them.
    """

    times: np.ndarray
    """Seconds since ``t0`` (float64, non-decreasing)."""
    marks: np.ndarray
    """int8: 0 buyer-initiated (hits the ask), 1 seller-initiated (hits the bid)."""
    sizes: np.ndarray
    """Shares (float64, > 0)."""
    mid_before: np.ndarray
    """Mid (USD) just before the order's first execution message (NaN if unknown)."""
    mid_after: np.ndarray
    """Mid (USD) just after the order's last execution message (NaN if unknown)."""
    depth_before: np.ndarray
    """Size (shares) at the best quote on the side the order hits, before it (NaN if unknown)."""
    t0: float
    """Session start, seconds after midnight (09:30 = 34200 for LOBSTER)."""
    T: float
    """Session length in seconds (observation window is ``[0, T]``)."""
    ticker: str = ""
    """Instrument, when known."""

    @property
    def signs(self) -> np.ndarray:
        """+1 for buyer-initiated, -1 for seller-initiated orders."""
        return np.where(self.marks == BUY, 1.0, -1.0)

    def __len__(self) -> int:
        return int(self.times.shape[0])


def seconds_after_midnight(ts) -> np.ndarray:
    """Seconds after local midnight of a ``ts`` column (datetime64, tz-aware or not); floats pass through."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(ts):
        midnight = ts.dt.normalize()
        return (ts - midnight).dt.total_seconds().to_numpy(dtype=np.float64)
    return np.asarray(ts, dtype=np.float64)


def market_orders_from_events(events, *, t0: float | None = None, T: float | None = None) -> MarketOrders:
    """Aggregate the executions of a canonical event table into :class:`MarketOrders`.

    ``events`` needs columns ``ts``, ``event``, ``size``, ``aggressor`` and,
    for mids, ``bid_px_1``/``ask_px_1`` (plus ``bid_sz_1``/``ask_sz_1`` for
    depth). Executions are the rows whose ``event`` is ``exec_visible`` or
    ``exec_hidden``. ``t0``/``T`` default to 09:30 and 6.5 hours for LOBSTER
    (seconds after midnight), i.e. the full regular session.
    """

    need = {"ts", "event", "size", "aggressor"}
    missing = need - set(events.columns)
    if missing:
        raise ArrivalFitError(f"event table lacks columns {sorted(missing)}")
    secs = seconds_after_midnight(events["ts"])
    ev = events["event"].astype(str).to_numpy()
    is_exec = (ev == "exec_visible") | (ev == "exec_hidden")
    idx = np.flatnonzero(is_exec)
    if idx.size == 0:
        raise ArrivalFitError("event table has no executions (exec_visible/exec_hidden rows)")
    agg = events["aggressor"].to_numpy()[idx].astype(np.int64)
    if np.any((agg != 1) & (agg != -1)):
        raise ArrivalFitError("executions must have aggressor +1 or -1")
    t = secs[idx]
    if np.any(~np.isfinite(t)) or np.any(np.diff(secs) < 0):
        raise ArrivalFitError("event timestamps must be finite and sorted")
    sz = events["size"].to_numpy(dtype=np.float64)[idx]
    has_book = {"bid_px_1", "ask_px_1"} <= set(events.columns)
    if has_book:
        mid_all = 0.5 * (events["bid_px_1"].to_numpy(dtype=np.float64) + events["ask_px_1"].to_numpy(dtype=np.float64))
    # a new market order starts where the timestamp or the side changes, or where a
    # non-execution event separates two executions
    new = np.ones(idx.size, dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (agg[1:] != agg[:-1]) | (idx[1:] != idx[:-1] + 1)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], idx.size) - 1
    sizes = np.add.reduceat(sz, starts)
    marks = np.where(agg[starts] == 1, BUY, SELL).astype(np.int8)
    n = starts.size
    mid_before = np.full(n, np.nan)
    mid_after = np.full(n, np.nan)
    depth = np.full(n, np.nan)
    if has_book:
        first_row = idx[starts]
        prev_row = first_row - 1
        ok = prev_row >= 0
        mid_before[ok] = mid_all[prev_row[ok]]
        mid_after[:] = mid_all[idx[ends]]
        if {"bid_sz_1", "ask_sz_1"} <= set(events.columns):
            bsz = events["bid_sz_1"].to_numpy(dtype=np.float64)
            asz = events["ask_sz_1"].to_numpy(dtype=np.float64)
            d = np.where(marks == BUY, asz[np.maximum(prev_row, 0)], bsz[np.maximum(prev_row, 0)])
            depth[ok] = d[ok]
    win = getattr(events, "attrs", {}).get("window_ms")
    if t0 is None and T is None and win is not None and len(win) == 2:
        t0, T = float(win[0]) / 1000.0, float(win[1] - win[0]) / 1000.0
    if t0 is None:
        t0 = SESSION_OPEN_S if t[0] >= SESSION_OPEN_S else float(np.floor(secs[0]))
    if T is None:
        T = max(SESSION_CLOSE_S - t0, float(secs[-1] - t0)) if t0 == SESSION_OPEN_S else float(secs[-1] - t0)
    times = t[starts] - t0
    if times[0] < 0 or times[-1] > T:
        raise ArrivalFitError(f"market orders fall outside the window [t0, t0+T] = [{t0}, {t0 + T}]")
    ticker = str(getattr(events, "attrs", {}).get("ticker", ""))
    return MarketOrders(times, marks, sizes, mid_before, mid_after, depth, float(t0), float(T), ticker)


def load_events(message_path: str | pathlib.Path):
    """Load a LOBSTER day as a canonical event table (:func:`lobworld.world_models.data.load_lobster`)."""
    from lobworld.world_models.data import load_lobster

    return load_lobster(message_path)


def load_market_orders(message_path: str | pathlib.Path) -> MarketOrders:
    """Market orders of a LOBSTER day (``*_message_<L>.csv[.gz]``; the orderbook file is found next to it)."""
    return market_orders_from_events(load_events(message_path))


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _check_points(times, marks, T=None) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=np.float64)
    m = np.asarray(marks)
    if t.ndim != 1 or m.ndim != 1 or t.shape != m.shape:
        raise ArrivalFitError(f"times and marks must be 1-D arrays of equal length, got shapes {t.shape} and {m.shape}")
    if not np.all(np.isfinite(t)):
        raise ArrivalFitError(f"times contain NaN/inf at index {int(np.flatnonzero(~np.isfinite(t))[0])}")
    if np.any(t < 0):
        raise ArrivalFitError("times must be >= 0 (seconds since the window start)")
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ArrivalFitError(f"times must be sorted; first decrease at index {int(np.flatnonzero(np.diff(t) < 0)[0]) + 1}")
    if m.size and not np.all(np.isin(m, (0, 1))):
        raise ArrivalFitError(f"marks must be 0 (buy) or 1 (sell), got {np.unique(m)[~np.isin(np.unique(m), (0, 1))][:5]}")
    if T is not None:
        positive("T", T, error=ArrivalFitError, what="a positive finite number of seconds")
        if t.size and T < t[-1]:
            raise ArrivalFitError(f"T = {T} is before the last event time {t[-1]}")
    return t, m.astype(np.int64)


# ---------------------------------------------------------------------------
# Poisson
# ---------------------------------------------------------------------------


def fit_poisson(times, marks, T: float | None = None) -> PoissonParams:
    """MLE of independent Poisson rates: ``rate[m] = count(m) / T`` (events per second).

    ``T`` defaults to the last event time.
    """
    t, m = _check_points(times, marks, T)
    if T is None:
        if t.size == 0 or t[-1] <= 0:
            raise ArrivalFitError("need T (or at least one event at a positive time)")
        T = float(t[-1])
    counts = np.bincount(m, minlength=2).astype(float)
    return PoissonParams(rate=(float(counts[0] / T), float(counts[1] / T)))


def poisson_loglik(params: PoissonParams, times, marks, T: float) -> float:
    """Log-likelihood of marked Poisson arrivals on ``[0, T]``."""
    t, m = _check_points(times, marks, T)
    r = np.asarray(params.rate, dtype=float)
    counts = np.bincount(m, minlength=2)
    ll = -float(r.sum()) * T
    for k in range(2):
        if counts[k]:
            if r[k] <= 0:
                return -math.inf
            ll += float(counts[k]) * math.log(r[k])
    return float(ll)


def simulate_poisson(params: PoissonParams, T: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Marked Poisson arrivals on ``[0, T]``: ``(times, marks)`` sorted by time."""
    positive("T", T, error=ArrivalFitError, what="a positive finite number of seconds")
    ts, ms = [], []
    for k, r in enumerate(params.rate):
        n = rng.poisson(r * T)
        ts.append(np.sort(rng.uniform(0.0, T, size=n)))
        ms.append(np.full(n, k, dtype=np.int8))
    t = np.concatenate(ts)
    m = np.concatenate(ms)
    order = np.argsort(t, kind="stable")
    return t[order], m[order]


# ---------------------------------------------------------------------------
# Hawkes: log-likelihood (O(n) recursion) with analytic gradient
# ---------------------------------------------------------------------------


@njit(cache=True)
def _hawkes_ll_grad(t, m, T, mu, alpha, beta, grad):
    """Log-likelihood of the bivariate exponential Hawkes process; gradient into ``grad``.

    ``grad`` (length 7) = d/d(mu0, mu1, a00, a01, a10, a11, beta).
    Recursion over E_n(i) = sum_{j<i, m_j=n} exp(-beta (t_i - t_j)) and
    S_n(i) = sum_{j<i, m_j=n} (t_i - t_j) exp(-beta (t_i - t_j)).
    """
    for k in range(7):
        grad[k] = 0.0
    n = t.shape[0]
    E0 = 0.0
    E1 = 0.0
    S0 = 0.0
    S1 = 0.0
    ll = 0.0
    for i in range(n):
        if i > 0:
            d = t[i] - t[i - 1]
            e = math.exp(-beta * d)
            p0 = 1.0 if m[i - 1] == 0 else 0.0
            p1 = 1.0 - p0
            S0 = e * (S0 + d * (E0 + p0))
            S1 = e * (S1 + d * (E1 + p1))
            E0 = e * (E0 + p0)
            E1 = e * (E1 + p1)
        k = m[i]
        lam = mu[k] + beta * (alpha[k, 0] * E0 + alpha[k, 1] * E1)
        if lam <= 0.0:
            return -np.inf
        ll += math.log(lam)
        inv = 1.0 / lam
        grad[k] += inv
        grad[2 + 2 * k] += beta * E0 * inv
        grad[3 + 2 * k] += beta * E1 * inv
        # d(beta E_n)/d beta = E_n - beta S_n
        grad[6] += (alpha[k, 0] * (E0 - beta * S0) + alpha[k, 1] * (E1 - beta * S1)) * inv
    # compensator
    ll -= (mu[0] + mu[1]) * T
    grad[0] -= T
    grad[1] -= T
    for j in range(n):
        u = T - t[j]
        e = math.exp(-beta * u)
        c = m[j]
        a_tot = alpha[0, c] + alpha[1, c]
        ll -= a_tot * (1.0 - e)
        grad[2 + c] -= 1.0 - e
        grad[4 + c] -= 1.0 - e
        grad[6] -= a_tot * u * e
    return ll


def _unpack(params: HawkesParams) -> tuple[np.ndarray, np.ndarray, float]:
    return (np.asarray(params.mu, dtype=np.float64), np.asarray(params.alpha, dtype=np.float64), float(params.beta))


def hawkes_loglik(params: HawkesParams, times, marks, T: float) -> float:
    """Exact log-likelihood of a bivariate exponential Hawkes process on ``[0, T]`` (O(n))."""
    t, m = _check_points(times, marks, T)
    mu, alpha, beta = _unpack(params)
    return float(_hawkes_ll_grad(t, m, float(T), mu, alpha, beta, np.empty(7)))


def hawkes_intensity(params: HawkesParams, times, marks, at) -> np.ndarray:
    """Intensities ``lambda_m(s)`` (shape ``(len(at), 2)``, events/second) at times ``at``, from events strictly before."""
    t, m = _check_points(times, marks)
    mu, alpha, beta = _unpack(params)
    at = np.asarray(at, dtype=np.float64)
    out = np.empty((at.size, 2))
    for q, s in enumerate(at):
        past = t < s
        k = beta * np.exp(-beta * (s - t[past]))
        excite = np.array([k[m[past] == 0].sum(), k[m[past] == 1].sum()])
        out[q] = mu + alpha @ excite
    return out


@njit(cache=True)
def _hawkes_compensator(t, m, mu, alpha, beta, out):
    """``out[i, k]`` = Lambda_k(t_i) = int_0^{t_i} lambda_k(s) ds (events strictly before ``t_i``)."""
    E0 = 0.0
    E1 = 0.0
    N0 = 0.0
    N1 = 0.0
    for i in range(t.shape[0]):
        if i > 0:
            e = math.exp(-beta * (t[i] - t[i - 1]))
            if m[i - 1] == 0:
                E0 = e * (E0 + 1.0)
                E1 = e * E1
                N0 += 1.0
            else:
                E0 = e * E0
                E1 = e * (E1 + 1.0)
                N1 += 1.0
        for k in range(2):
            out[i, k] = mu[k] * t[i] + alpha[k, 0] * (N0 - E0) + alpha[k, 1] * (N1 - E1)


def hawkes_residuals(params: HawkesParams, times, marks) -> tuple[np.ndarray, np.ndarray]:
    """Time-rescaling residuals: compensator increments between consecutive events of each mark.

    If the data come from ``params`` these are i.i.d. Exp(1) (time-rescaling
    theorem); returns ``(buy_residuals, sell_residuals)``. The first
    increment of each mark is measured from 0.
    """
    t, m = _check_points(times, marks)
    mu, alpha, beta = _unpack(params)
    lam = np.empty((t.size, 2))
    _hawkes_compensator(t, m, mu, alpha, beta, lam)
    out = []
    for k in range(2):
        c = lam[m == k, k]
        out.append(np.diff(np.r_[0.0, c]))
    return out[0], out[1]


def _ks_exp1(r: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the sample ``r`` and Exp(1)."""
    if r.size == 0:
        return math.nan
    x = np.sort(r)
    cdf = 1.0 - np.exp(-x)
    n = x.size
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


# ---------------------------------------------------------------------------
# Hawkes: MLE
# ---------------------------------------------------------------------------

_PARAM_NAMES = ("mu_buy", "mu_sell", "alpha_bb", "alpha_bs", "alpha_sb", "alpha_ss", "beta")


@dataclass(frozen=True)
class FitReport:
    """Diagnostics of a Hawkes maximum-likelihood fit (compare with the Poisson fit on the same data)."""

    n_events: tuple[int, int]
    """Number of buy and sell events."""
    T: float
    """Observation window length (seconds)."""
    loglik: float
    """Maximised Hawkes log-likelihood."""
    loglik_poisson: float
    """Log-likelihood of the Poisson MLE on the same data (2 parameters)."""
    aic: float
    """Hawkes AIC = 2*7 - 2*loglik (lower is better)."""
    aic_poisson: float
    """Poisson AIC = 2*2 - 2*loglik_poisson."""
    stderr: dict
    """Asymptotic standard errors from the inverse observed-information (Hessian) matrix,
    by parameter name (``mu_buy, mu_sell, alpha_bb, alpha_bs, alpha_sb, alpha_ss, beta``;
    ``alpha_bs`` = effect of a sell on buys). NaN for a parameter stuck on its bound (alpha = 0),
    where the asymptotic normal theory does not apply."""
    branching_ratio: float
    """Spectral radius of the fitted alpha matrix."""
    stationary: bool
    """``branching_ratio < 1``; a non-stationary fit is flagged here and warned about."""
    converged: bool
    """Optimiser success flag."""
    message: str
    """Optimiser message."""
    ks_hawkes: tuple[float, float] = (math.nan, math.nan)
    """Kolmogorov-Smirnov distance of the time-rescaling residuals (buy, sell) to Exp(1) under the
    fitted Hawkes model; ~1.36/sqrt(n) is the 5% critical value, larger means misfit."""
    ks_poisson: tuple[float, float] = (math.nan, math.nan)
    """The same distance under the Poisson fit (exponential inter-arrival times)."""

    def to_dict(self) -> dict:
        return {
            "n_events": list(self.n_events), "T": self.T, "loglik": self.loglik,
            "loglik_poisson": self.loglik_poisson, "aic": self.aic, "aic_poisson": self.aic_poisson,
            "stderr": {k: (None if not np.isfinite(v) else float(v)) for k, v in self.stderr.items()},
            "branching_ratio": self.branching_ratio, "stationary": self.stationary,
            "converged": self.converged, "message": self.message,
            "ks_hawkes": list(self.ks_hawkes), "ks_poisson": list(self.ks_poisson),
        }


def _theta_to_params(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    return x[0:2].copy(), x[2:6].reshape(2, 2).copy(), float(math.exp(x[6]))


def fit_hawkes(times, marks, T: float, *, beta_starts=(0.1, 1.0, 10.0, 100.0),
               require_stationary: bool = False) -> tuple[HawkesParams, FitReport]:
    """Maximum-likelihood fit of the bivariate exponential Hawkes process on ``[0, T]``.

    Maximises the exact log-likelihood (O(n) recursion, analytic gradient) with
    L-BFGS-B over ``(mu, alpha, log beta)`` with bounds ``mu >= 1e-9``,
    ``alpha >= 0`` (so ``beta > 0`` by construction), started from each
    ``beta`` in ``beta_starts``; the best optimum is kept. Standard errors come
    from the inverse of the numerically differentiated analytic-gradient
    Hessian in the natural parameters. A fit with branching ratio >= 1 is
    non-stationary: it is flagged in the report and a ``RuntimeWarning`` is
    issued, or a ``ValueError`` raised when ``require_stationary``.
    """
    from scipy.optimize import minimize

    t, m = _check_points(times, marks, T)
    T = float(T)
    counts = np.bincount(m, minlength=2)
    if counts.min() < 2:
        raise ArrivalFitError(f"need at least 2 events of each mark to fit a bivariate Hawkes process, got {tuple(counts)}")
    pois = fit_poisson(t, m, T)
    ll_pois = poisson_loglik(pois, t, m, T)
    g = np.empty(7)

    def negll(x):
        mu, alpha, beta = _theta_to_params(x)
        ll = _hawkes_ll_grad(t, m, T, mu, alpha, beta, g)
        if not np.isfinite(ll):
            return 1e300, np.zeros(7)
        gx = g.copy()
        gx[6] *= beta  # chain rule for log beta
        return -ll, -gx

    bounds = [(1e-9, None)] * 2 + [(0.0, None)] * 4 + [(math.log(1e-6), math.log(1e6))]
    best = None
    for b0 in beta_starts:
        x0 = np.array([0.5 * counts[0] / T, 0.5 * counts[1] / T, 0.2, 0.1, 0.1, 0.2, math.log(b0)])
        res = minimize(negll, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-8})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    mu, alpha, beta = _theta_to_params(best.x)
    params = HawkesParams(mu=(float(mu[0]), float(mu[1])),
                          alpha=((float(alpha[0, 0]), float(alpha[0, 1])), (float(alpha[1, 0]), float(alpha[1, 1]))),
                          beta=beta)
    ll = -float(best.fun)
    # L-BFGS-B may stop with 'ABNORMAL' when the line search hits float precision at the
    # optimum; accept that when the projected gradient is small relative to each parameter
    gnat = np.empty(7)
    _hawkes_ll_grad(t, m, T, mu, alpha, beta, gnat)
    xnat = np.concatenate([mu, alpha.ravel(), [beta]])
    free = ~((np.arange(7) >= 2) & (np.arange(7) < 6) & (xnat < 1e-6) & (gnat < 0))
    converged = bool(best.success) or bool(np.all(np.abs(gnat * np.maximum(xnat, 1e-6))[free] < 1e-2))
    stderr = _hawkes_stderr(t, m, T, mu, alpha, beta)
    br = params.branching_ratio
    rb, rs = hawkes_residuals(params, t, m)
    ks_h = (_ks_exp1(rb), _ks_exp1(rs))
    ks_p = tuple(_ks_exp1(np.diff(np.r_[0.0, t[m == k]]) * pois.rate[k]) for k in range(2))
    report = FitReport(
        n_events=(int(counts[0]), int(counts[1])), T=T, loglik=ll, loglik_poisson=ll_pois,
        aic=2 * 7 - 2 * ll, aic_poisson=2 * 2 - 2 * ll_pois, stderr=stderr, branching_ratio=br,
        stationary=bool(br < 1.0), converged=converged, message=str(best.message),
        ks_hawkes=ks_h, ks_poisson=ks_p,
    )
    if br >= 1.0:
        msg = f"fitted Hawkes process is non-stationary: branching ratio {br:.4f} >= 1"
        if require_stationary:
            raise ArrivalFitError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return params, report


def _hawkes_stderr(t, m, T, mu, alpha, beta) -> dict:
    """Standard errors from the observed information (central differences of the analytic gradient)."""
    x = np.concatenate([mu, alpha.ravel(), [beta]])
    g = np.empty(7)

    def grad(z):
        _hawkes_ll_grad(t, m, T, z[0:2], z[2:6].reshape(2, 2), float(z[6]), g)
        return g.copy()

    free = [k for k in range(7) if not (2 <= k < 6 and x[k] < 1e-6)]
    H = np.zeros((7, 7))
    for k in free:
        h = 1e-5 * max(abs(x[k]), 1e-3)
        zp, zm = x.copy(), x.copy()
        zp[k] += h
        zm[k] -= h
        H[:, k] = (grad(zp) - grad(zm)) / (2 * h)
    Hf = H[np.ix_(free, free)]
    Hf = 0.5 * (Hf + Hf.T)
    se = np.full(7, np.nan)
    try:
        cov = np.linalg.inv(-Hf)
        d = np.diag(cov)
        se[free] = np.where(d > 0, np.sqrt(np.abs(d)), np.nan)
    except np.linalg.LinAlgError:
        pass
    return dict(zip(_PARAM_NAMES, (float(v) for v in se)))


# ---------------------------------------------------------------------------
# Hawkes: simulation (Ogata thinning, NumPy reference)
# ---------------------------------------------------------------------------


def simulate_hawkes(params: HawkesParams, T: float, rng: np.random.Generator,
                    max_events: int = 10_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the bivariate Hawkes process on ``[0, T]`` by Ogata's thinning.

    Between events the total intensity only decays, so the intensity just
    after the last accepted event (or candidate) bounds it until the next
    candidate. Returns ``(times, marks)`` sorted by time (marks int8).
    """
    positive("T", T, error=ArrivalFitError, what="a positive finite number of seconds")
    mu, alpha, beta = _unpack(params)
    if params.branching_ratio >= 1.0:
        warnings.warn(f"simulating a non-stationary Hawkes process (branching ratio {params.branching_ratio:.3f})",
                      RuntimeWarning, stacklevel=2)
    times: list[float] = []
    marks: list[int] = []
    s = 0.0
    ex = np.zeros(2)  # excitation sum_j beta exp(-beta (s - t_j)) by source mark, at time s
    while True:
        lam_bar = float(np.sum(mu + alpha @ ex))
        w = rng.exponential(1.0 / lam_bar)
        s_new = s + w
        if s_new > T:
            break
        ex *= math.exp(-beta * w)
        s = s_new
        lam = mu + alpha @ ex
        u = rng.uniform(0.0, lam_bar)
        if u < lam[0] + lam[1]:
            k = 0 if u < lam[0] else 1
            times.append(s)
            marks.append(k)
            ex[k] += beta
            if len(times) >= max_events:
                raise RuntimeError(f"simulate_hawkes: more than {max_events} events (explosive parameters?)")
    return np.asarray(times, dtype=np.float64), np.asarray(marks, dtype=np.int8)


def load_fitted_arrivals(ticker: str = "GOOG") -> tuple[HawkesParams, PoissonParams]:
    """Hawkes and Poisson parameters fitted on the shipped LOBSTER day of ``ticker`` (GOOG or AMZN).

    Read from ``lobworld/world_models/assets/fitted/<ticker>.json`` (written by
    ``lobworld world-model fit-arrivals --save``).
    """
    import json

    path = pathlib.Path(__file__).parent / "assets" / "fitted" / f"{ticker.lower()}.json"
    if not path.is_file():
        avail = sorted(p.stem.upper() for p in path.parent.glob("*.json"))
        raise ArrivalFitError(f"no fitted arrival model for {ticker!r}; available: {avail}")
    d = json.loads(path.read_text())
    if "hawkes" not in d or "poisson" not in d:
        raise ArrivalFitError(f"{path}: no 'hawkes'/'poisson' blocks")
    h = d["hawkes"]
    hp = HawkesParams(mu=tuple(h["mu"]), alpha=tuple(tuple(r) for r in h["alpha"]), beta=float(h["beta"]))
    return hp, PoissonParams(rate=tuple(d["poisson"]["rate"]))

"""The Cont-Stoikov-Talreja (2010) zero-intelligence order-flow model: fit and reference simulator.

The model (R. Cont, S. Stoikov, R. Talreja, "A stochastic model for order book dynamics",
Operations Research 58(3), 2010) treats the book as queues on a tick grid. With distances
measured in ticks **from the opposite best** (a bid at price ``p`` is at distance
``i = best_ask - p``, an ask at ``i = p - best_bid``; ``i >= 1``), independent Poisson streams:

* limit orders arrive at distance ``i`` at rate ``lambda(i)`` per side;
* market orders arrive at rate ``mu`` per side and take liquidity at the opposite best;
* each resting lot at distance ``i`` is cancelled at rate ``theta(i)`` (so the queue at ``i``
  shrinks at rate ``theta(i) * Q_i``, ``Q_i`` in lots).

Queues are counted in **lots**: one lot is the mean limit-order size of the training block
(``S_l``, shares), as in the paper.

Fitting (:func:`fit_cst`) is maximum likelihood for these Poisson streams on the training block
of a canonical event table (``load_lobster``), with the exact exposure of the piecewise-constant
book between events:

* ``lambda(i) = N_l(i) / T_obs(i)``: limit orders at distance ``i`` over the time distance ``i`` is
  inside the file's visible window (a LOBSTER level-L file only reports messages at its L listed
  levels, so submissions deeper than the L-th level are unobserved), both sides pooled;
* ``theta(i) = N_c(i) / int Q_i(t) dt``: cancellations (partial cancels and deletes) at distance
  ``i`` over the integrated queue at ``i`` in lots;
* ``mu = N_m / (2 T)``: market orders, one per run of visible executions with the same timestamp
  and side (one aggressive order walking several resting orders; the rule of
  :class:`lobworld.world_models.arrivals.MarketOrders`). Hidden executions do not change the
  visible book and are left out (counted in ``n_hidden_ignored``).

With ``size_law="unit"`` every order is one lot and the rates are those of the paper's unit-size
model: ``mu`` and ``theta`` are rescaled by the mean market / cancel size over ``S_l``
(:meth:`CSTParams.unit_rates`), so the expected shares per second match the data. With
``size_law="lognormal"`` the count rates are used and each order's size is drawn from the fitted
log-normal of its kind (limit, market, cancel).

:func:`cst_event_nats` scores every token of the learned tick model's space under the fitted model
(completed with constant-rate streams for what CST does not model), for held-out comparisons.
:func:`load_fitted_cst` reads the parameters shipped for GOOG and AMZN.

:func:`simulate_cst` is the NumPy reference simulator (one Gillespie step per event on an
:class:`ArrayBook`); it takes a ``numpy.random.Generator`` and returns
:class:`lobworld.world_models.data.events.Messages` in the LOBSTER layout plus the book after every
message, the inputs the batched book engine consumes.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from lobworld._checks import integer, positive
from lobworld.errors import LobworldError
from lobworld.world_models.data.events import (
    NO_PRICE, Messages, SizeScale, TokenConfig, messages_to_events, time_split_masks, tokenize,
    CANCEL, DELETE, EXEC_HIDDEN, EXEC_VISIBLE, SUBMIT, level_class,
)
from lobworld.world_models.data.schema import infer_levels
from lobworld.world_models.data.session import SESSION_OPEN_S

__all__ = ["CSTParams", "CSTError", "ArrayBook", "CSTRun", "fit_cst", "simulate_cst", "save_cst", "load_cst", "load_fitted_cst", "default_book",
           "cst_event_nats"]

FORMAT = "lobworld.cst/1"
_NO_SCALE = SizeScale(lot=1.0, edges=(0.0, float("inf")), centers=(1.0,))  # the fit needs no size bins


class CSTError(LobworldError):
    """Bad input to the Cont-Stoikov-Talreja fit, simulator or parameter file (names the field)."""


@dataclass(frozen=True)
class CSTParams:
    """Fitted Cont-Stoikov-Talreja parameters of one asset (distances in ticks from the opposite best)."""

    ticker: str
    """Asset the parameters were fitted on."""
    tick_size: float
    """USD per tick."""
    lam: tuple[float, ...]
    """``lambda(i)``, i = 1..``max_distance``: limit orders per second per side at distance ``i``."""
    mu: float
    """Market orders per second per side (count rate)."""
    theta: tuple[float, ...]
    """``theta(i)``: cancellations per second per resting lot at distance ``i`` (count rate)."""
    mean_limit_size: float
    """``S_l``, mean limit-order size, shares: the lot in which queues are counted."""
    mean_market_size: float
    """``S_m``, mean market-order size (executions aggregated per aggressive order), shares."""
    mean_cancel_size: float
    """``S_c``, mean cancellation size, shares."""
    log_size: tuple[tuple[float, float], ...]
    """Log-normal size laws (mean, sd of the natural log of shares) of limit, market and cancel orders."""
    size_law: str = "unit"
    """``"unit"`` (every order one lot, rates of :meth:`unit_rates`) or ``"lognormal"`` (count rates,
    sizes from ``log_size``)."""
    lam_se: tuple[float, ...] = ()
    """Poisson standard error of each ``lam`` (``sqrt(N) / T_obs``), per second."""
    theta_se: tuple[float, ...] = ()
    """Poisson standard error of each ``theta`` (``sqrt(N) / exposure``), per lot-second."""
    mu_se: float = 0.0
    """Poisson standard error of ``mu``, per second."""
    train_seconds: float = 0.0
    """Length of the training block, seconds."""
    n_events: int = 0
    """Events of the training block the fit used (limit, cancel, market orders within range)."""
    n_out_of_range: int = 0
    """Training submits / cancels at distance > ``max_distance`` (or unobservable), left out."""
    n_hidden_ignored: int = 0
    """Hidden executions in the training block (no visible book change; not modelled)."""

    @property
    def max_distance(self) -> int:
        """Largest modelled distance from the opposite best, ticks."""
        return len(self.lam)

    def unit_rates(self) -> tuple[np.ndarray, float, np.ndarray]:
        """``(lambda, mu, theta)`` of the unit-size model: ``mu * S_m / S_l`` lots per second and
        ``theta * S_c / S_l`` per lot-second, so unit orders carry the data's share flow."""
        lam = np.asarray(self.lam, dtype=np.float64)
        th = np.asarray(self.theta, dtype=np.float64)
        return (lam, self.mu * self.mean_market_size / self.mean_limit_size,
                th * self.mean_cancel_size / self.mean_limit_size)

    def sim_rates(self) -> tuple[np.ndarray, float, np.ndarray]:
        """The ``(lambda, mu, theta)`` the simulator uses under ``size_law``."""
        if self.size_law == "unit":
            return self.unit_rates()
        return np.asarray(self.lam, float), float(self.mu), np.asarray(self.theta, float)

    def __post_init__(self):
        _validate(self)


def _validate(p: CSTParams) -> None:
    if p.size_law not in ("unit", "lognormal"):
        raise CSTError(f"CSTParams.size_law: must be 'unit' or 'lognormal', got {p.size_law!r}")
    if len(p.lam) < 1 or len(p.theta) != len(p.lam):
        raise CSTError(f"CSTParams.theta: needs one value per distance like lam ({len(p.lam)}), got {len(p.theta)}")
    for name in ("lam", "theta"):
        v = np.asarray(getattr(p, name), dtype=np.float64)
        if not (np.isfinite(v).all() and (v >= 0).all()):
            i = int(np.flatnonzero(~(np.isfinite(v) & (v >= 0)))[0])
            raise CSTError(f"CSTParams.{name}[{i}] (distance {i + 1}): must be finite and >= 0, got {v[i]!r}")
    for name in ("mu", "mean_limit_size", "mean_market_size", "mean_cancel_size", "tick_size"):
        positive(f"CSTParams.{name}:", getattr(p, name), error=CSTError, what="a positive finite number")
    if len(p.log_size) != 3 or any(len(x) != 2 or not (math.isfinite(x[0]) and x[1] >= 0) for x in p.log_size):
        raise CSTError(f"CSTParams.log_size: must be 3 pairs (mean, sd >= 0), got {p.log_size!r}")


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _book_ticks(events: pd.DataFrame, side: str, levels: int, tick: float):
    px = events[[f"{side}_px_{k}" for k in range(1, levels + 1)]].to_numpy(np.float64)
    sz = events[[f"{side}_sz_{k}" for k in range(1, levels + 1)]].to_numpy(np.float64)
    ok = np.isfinite(px) & (sz > 0)
    return np.where(ok, np.rint(np.where(ok, px, 0.0) / tick), NO_PRICE).astype(np.int64), np.where(ok, sz, 0.0)


def _default_distance(t_obs, total) -> int:
    ok = np.flatnonzero(t_obs >= 0.5 * total)
    return int(ok[-1] + 1) if len(ok) else 1


def fit_cst(events: pd.DataFrame, *, max_distance: int | None = None, size_law: str = "unit",
            test_hours: float = 2.0, early_stop_hours: float = 0.5, train_mask=None,
            max_search: int = 400, min_count: int = 10, min_exposure: float = 60.0) -> CSTParams:
    """Fit :class:`CSTParams` by maximum likelihood on the training block of ``events``.

    Arguments:
        events: a canonical event table (``load_lobster``; or the table of a simulated run).
        max_distance: largest distance from the opposite best (ticks) to model. None picks the
            largest distance that is inside the file's visible window at least half the training
            time (searching up to ``max_search`` ticks).
        size_law: stored in the result (``"unit"`` or ``"lognormal"``; see the module docstring).
        test_hours, early_stop_hours: the held-out split of the bar models; the fit uses the
            training block only (the events before both). ``train_mask`` (bool per table row
            after the first) overrides it.
        min_count, min_exposure: sparse distances are pooled. Walking out from distance 1,
            consecutive distances are merged until the group holds at least ``min_count`` events
            and ``min_exposure`` of exposure (seconds for ``lambda``, lot-seconds for ``theta``; a
            short last group joins the one before), and the group gets one rate, the MLE of a
            rate shared by its distances (sum of counts over sum of exposures). GOOG's spread is
            rarely under 5 ticks, so distances 1-4 from the opposite best are seldom occupied.
            ``min_count=0, min_exposure=0`` gives the per-distance MLE (0 where nothing happened).
    """
    if size_law not in ("unit", "lognormal"):
        raise CSTError(f"size_law: must be 'unit' or 'lognormal', got {size_law!r}")
    tok = tokenize(events, TokenConfig(top_k=1, test_hours=test_hours, early_stop_hours=early_stop_hours),
                   scale=_NO_SCALE)
    n = len(tok)
    if train_mask is None:
        train, _, _ = time_split_masks(tok.time_ns(), test_hours, early_stop_hours)
    else:
        train = np.asarray(train_mask, dtype=bool)
        if train.shape != (n,):
            raise CSTError(f"train_mask: needs one bool per table row after the first ({n}), got {train.shape}")
    if not train.any():
        raise CSTError("fit_cst: the training block is empty (shorten test_hours / early_stop_hours)")
    tick = tok.meta["tick_size"]
    L = infer_levels(events)
    bpx, bsz = _book_ticks(events, "bid", L, tick)
    apx, asz = _book_ticks(events, "ask", L, tick)
    bpx, bsz, apx, asz = bpx[:-1], bsz[:-1], apx[:-1], asz[:-1]  # book before token n
    a, b = tok.best_ask, tok.best_bid
    two = (a != NO_PRICE) & (b != NO_PRICE)
    dt = tok.dt_ns * 1e-9
    w = np.where(train & two, dt, 0.0)  # exposure weights (intervals where both bests exist)
    T = float(w.sum())
    if not T > 0:
        raise CSTError("fit_cst: the training block has no time with both sides of the book present")
    # deepest visible distance per side (inf when the side lists fewer than L levels)
    big = max_search + 1
    dmax_b = np.where(bpx[:, -1] != NO_PRICE, a - bpx[:, -1], big)
    dmax_a = np.where(apx[:, -1] != NO_PRICE, apx[:, -1] - b, big)
    dmax_b, dmax_a = np.clip(dmax_b, 0, big), np.clip(dmax_a, 0, big)
    hist = (np.bincount(dmax_b, weights=w, minlength=big + 1)
            + np.bincount(dmax_a, weights=w, minlength=big + 1))
    t_obs_all = hist[::-1].cumsum()[::-1]  # t_obs_all[i] = time with distance i visible, both sides summed
    D = max_distance if max_distance is not None else _default_distance(t_obs_all[1:max_search + 1], 2 * T)
    if not (isinstance(D, (int, np.integer)) and 1 <= D <= max_search):
        raise CSTError(f"max_distance: must be an int in 1..{max_search}, got {max_distance!r}")
    D = int(D)
    t_obs = t_obs_all[1:D + 1]

    et, side = tok.etype, tok.side
    px = _prices(tok)
    dist = np.where(side > 0, a - px, px - b)
    dmax = np.where(side > 0, dmax_b, dmax_a)
    in_range = train & two & (dist >= 1) & (dist <= D) & (dist <= dmax)
    is_lim = et == SUBMIT
    is_can = (et == CANCEL) | (et == DELETE)
    lim = in_range & is_lim
    can = in_range & is_can
    sub_sizes = tok.size[train & is_lim]
    if len(sub_sizes) == 0:
        raise CSTError("fit_cst: no limit orders in the training block")
    S_l = float(sub_sizes.mean())
    # integrated queue per distance in lots, both sides
    expo = np.zeros(D + 1)
    for px_l, sz_l, sgn in ((bpx, bsz, 1), (apx, asz, -1)):
        d = (a[:, None] - px_l) if sgn > 0 else (px_l - b[:, None])
        ok = (px_l != NO_PRICE) & (d >= 1) & (d <= D) & (w[:, None] > 0)
        expo += np.bincount(d[ok], weights=(sz_l * w[:, None])[ok] / S_l, minlength=D + 1)
    expo = expo[1:]
    n_lim = np.bincount(dist[lim], minlength=D + 1)[1:].astype(np.float64)
    n_can = np.bincount(dist[can], minlength=D + 1)[1:].astype(np.float64)
    lam, lam_se = _pooled_rates(n_lim, t_obs, min_count, min_exposure)
    theta, theta_se = _pooled_rates(n_can, expo, min_count, min_exposure)
    # market orders: runs of visible executions with the same ns timestamp and side
    t_ns = tok.time_ns()
    ex = np.flatnonzero(train & (et == EXEC_VISIBLE))
    if len(ex) == 0:
        raise CSTError("fit_cst: no visible executions (market orders) in the training block")
    new = np.ones(len(ex), bool)
    new[1:] = ~((ex[1:] == ex[:-1] + 1) & (t_ns[ex[1:]] == t_ns[ex[:-1]]) & (side[ex[1:]] == side[ex[:-1]]))
    grp = np.cumsum(new) - 1
    mo_size = np.bincount(grp, weights=tok.size[ex])
    n_mo = len(mo_size)
    mu = n_mo / (2.0 * T)
    can_sizes = tok.size[train & is_can]
    S_c = float(can_sizes.mean()) if len(can_sizes) else S_l

    def ln(x):
        lx = np.log(x)
        return (float(lx.mean()), float(lx.std())) if len(lx) else (math.log(S_l), 0.0)

    return CSTParams(
        ticker=str(tok.meta.get("ticker", "UNKNOWN")), tick_size=float(tick), lam=tuple(map(float, lam)),
        mu=float(mu), theta=tuple(map(float, theta)), mean_limit_size=S_l, mean_market_size=float(mo_size.mean()),
        mean_cancel_size=S_c, log_size=(ln(sub_sizes), ln(mo_size), ln(can_sizes)), size_law=size_law,
        lam_se=tuple(map(float, lam_se)), theta_se=tuple(map(float, theta_se)),
        mu_se=float(math.sqrt(n_mo) / (2.0 * T)), train_seconds=T,
        n_events=int(lim.sum() + can.sum() + n_mo),
        n_out_of_range=int((train & (is_lim | is_can)).sum() - lim.sum() - can.sum()),
        n_hidden_ignored=int((train & (et == EXEC_HIDDEN)).sum()),
    )


def _pooled_rates(counts, exposure, min_count, min_exposure):
    """Per-distance rates and standard errors with sparse distances pooled (see :func:`fit_cst`)."""
    D = len(counts)
    groups, start = [], 0
    c = e = 0.0
    for i in range(D):
        c += counts[i]
        e += exposure[i]
        if c >= min_count and e >= min_exposure and e > 0:
            groups.append((start, i + 1))
            start, c, e = i + 1, 0.0, 0.0
    if start < D:
        if groups:
            groups[-1] = (groups[-1][0], D)
        else:
            groups.append((0, D))
    rate, se = np.zeros(D), np.zeros(D)
    for lo, hi in groups:
        n, x = float(counts[lo:hi].sum()), float(exposure[lo:hi].sum())
        if x > 0:
            rate[lo:hi], se[lo:hi] = n / x, math.sqrt(n) / x
    return rate, se


def _prices(tok) -> np.ndarray:
    """Message prices (ticks) of tokens."""
    ref_b = np.where(tok.best_bid != NO_PRICE, tok.best_bid, tok.best_ask - 1)
    ref_a = np.where(tok.best_ask != NO_PRICE, tok.best_ask, tok.best_bid + 1)
    return np.where(tok.side > 0, ref_b - tok.level, ref_a + tok.level).astype(np.int64)


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------
def save_cst(params: CSTParams, path) -> pathlib.Path:
    """Write ``params`` as JSON (``{"format": "lobworld.cst/1", "params": {...}}``)."""
    path = pathlib.Path(path)
    path.write_text(json.dumps({"format": FORMAT, "params": asdict(params)}, indent=1) + "\n")
    return path


def load_cst(path) -> CSTParams:
    """Read parameters written by :func:`save_cst`; :class:`CSTError` names a missing or bad field."""
    path = pathlib.Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CSTError(f"{path}: no such CST parameter file") from None
    except json.JSONDecodeError as e:
        raise CSTError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CSTError(f"{path}: field 'format' must be {FORMAT!r}, got {doc.get('format') if isinstance(doc, dict) else doc!r}")
    p = doc.get("params")
    if not isinstance(p, dict):
        raise CSTError(f"{path}: field 'params' missing")
    known = {f.name for f in fields(CSTParams)}
    unknown = sorted(set(p) - known)
    if unknown:
        raise CSTError(f"{path}: unknown field(s) {unknown}")
    for f in ("ticker", "tick_size", "lam", "mu", "theta", "mean_limit_size", "mean_market_size",
              "mean_cancel_size", "log_size"):
        if f not in p:
            raise CSTError(f"{path}: field 'params.{f}' missing")
    kw = dict(p)
    for f in ("lam", "theta", "lam_se", "theta_se"):
        if f in kw:
            kw[f] = tuple(float(x) for x in kw[f])
    kw["log_size"] = tuple(tuple(float(y) for y in x) for x in kw["log_size"])
    try:
        return CSTParams(**kw)
    except CSTError as e:
        raise CSTError(f"{path}: {e}") from None


def load_fitted_cst(ticker: str = "GOOG") -> CSTParams:
    """Parameters shipped in the package, fitted by :func:`fit_cst` (defaults: unit sizes, the last
    2.5 h of 2012-06-21 held out) on the LOBSTER day of ``ticker`` ("GOOG" level 10, "AMZN" level 5).
    Reproduce: ``save_cst(fit_cst(load_lobster(path)), "world_models/assets/fitted/cst_<ticker>.json")``."""
    from importlib import resources

    name = f"cst_{ticker.lower()}.json"
    path = pathlib.Path(str(resources.files("lobworld.world_models") / "assets" / "fitted" / name))
    if not path.is_file():
        raise CSTError(f"no shipped CST parameters for ticker {ticker!r} (have GOOG, AMZN)")
    return load_cst(path)


# ---------------------------------------------------------------------------
# reference simulator
# ---------------------------------------------------------------------------
class ArrayBook:
    """A price-grid book: ``bid[j]`` / ``ask[j]`` shares resting at price ``base + j`` ticks.

    ``last_bid`` / ``last_ask`` are the bests' last prices, the reference of the distances while a
    side is empty. The grid recentres on the mid when an order would fall off it; shares pushed off
    the far edge are dropped and counted in ``dropped_shares``.
    """

    def __init__(self, base: int, bid: np.ndarray, ask: np.ndarray):
        self.base = int(base)
        self.bid = np.asarray(bid, dtype=np.float64).copy()
        self.ask = np.asarray(ask, dtype=np.float64).copy()
        if self.bid.shape != self.ask.shape or self.bid.ndim != 1:
            raise CSTError("ArrayBook: bid and ask must be 1-d arrays of the same length")
        if (self.bid < 0).any() or (self.ask < 0).any():
            raise CSTError("ArrayBook: negative size")
        self.dropped_shares = 0.0
        bb, ba = self._bb(), self._ba()
        if bb is None or ba is None:
            raise CSTError("ArrayBook: the initial book needs both sides")
        if bb >= ba:
            raise CSTError(f"ArrayBook: crossed initial book (bid {bb} >= ask {ba} ticks)")
        self.last_bid, self.last_ask = bb, ba

    @classmethod
    def from_levels(cls, bid_px, bid_sz, ask_px, ask_sz, n_grid: int = 1024) -> "ArrayBook":
        """From listed levels (prices in ticks, sizes in shares; empty levels NO_PRICE / size 0)."""
        bp, bs, ap, as_ = (np.asarray(x) for x in (bid_px, bid_sz, ask_px, ask_sz))
        okb, oka = (bs > 0) & (bp != NO_PRICE), (as_ > 0) & (ap != NO_PRICE)
        if not okb.any() or not oka.any():
            raise CSTError("ArrayBook.from_levels: both sides need a level")
        mid = (int(bp[okb].max()) + int(ap[oka].min())) // 2
        base = mid - n_grid // 2
        lo, hi = int(bp[okb].min()), int(ap[oka].max())
        if lo < base or hi >= base + n_grid:
            raise CSTError(f"ArrayBook.from_levels: levels span {lo}..{hi} ticks, wider than n_grid={n_grid}")
        bid, ask = np.zeros(n_grid), np.zeros(n_grid)
        np.add.at(bid, bp[okb].astype(np.int64) - base, bs[okb])
        np.add.at(ask, ap[oka].astype(np.int64) - base, as_[oka])
        return cls(base, bid, ask)

    @classmethod
    def from_events(cls, events: pd.DataFrame, row: int, n_grid: int = 1024) -> "ArrayBook":
        """The book after ``row`` of a canonical event table (its listed levels only)."""
        tick = events.attrs.get("tick_size", 0.01)
        L = infer_levels(events)
        bp, bs = _book_ticks(events.iloc[[row]], "bid", L, tick)
        ap, as_ = _book_ticks(events.iloc[[row]], "ask", L, tick)
        return cls.from_levels(bp[0], bs[0], ap[0], as_[0], n_grid)

    def _bb(self):
        nz = np.flatnonzero(self.bid > 0)
        return self.base + int(nz[-1]) if len(nz) else None

    def _ba(self):
        nz = np.flatnonzero(self.ask > 0)
        return self.base + int(nz[0]) if len(nz) else None

    def refs(self) -> tuple[int, int]:
        """(best bid, best ask) ticks; the last price of a side while it is empty."""
        bb, ba = self._bb(), self._ba()
        if bb is not None:
            self.last_bid = bb
        if ba is not None:
            self.last_ask = ba
        return self.last_bid, self.last_ask

    def ensure(self, lo: int, hi: int) -> None:
        """Recentre so that prices ``lo..hi`` (ticks) are on the grid."""
        n = len(self.bid)
        if lo >= self.base and hi < self.base + n:
            return
        if hi - lo + 1 > n:
            raise CSTError(f"ArrayBook: the grid ({n} ticks) is narrower than the modelled range {lo}..{hi}")
        new_base = (lo + hi) // 2 - n // 2
        shift = new_base - self.base
        for arr in (self.bid, self.ask):
            out = np.zeros(n)
            src = np.arange(n) + shift
            ok = (src >= 0) & (src < n)
            out[ok] = arr[src[ok]]
            self.dropped_shares += float(arr.sum() - out.sum())
            arr[:] = out
        self.base = new_base

    def levels(self, L: int):
        """Top ``L`` listed levels: (bid_px, bid_sz, ask_px, ask_sz), ticks / shares, NO_PRICE / 0 padded."""
        bp, bs = np.full(L, NO_PRICE, np.int64), np.zeros(L)
        ap, as_ = np.full(L, NO_PRICE, np.int64), np.zeros(L)
        nb = np.flatnonzero(self.bid > 0)[::-1][:L]
        na = np.flatnonzero(self.ask > 0)[:L]
        bp[:len(nb)], bs[:len(nb)] = nb + self.base, self.bid[nb]
        ap[:len(na)], as_[:len(na)] = na + self.base, self.ask[na]
        return bp, bs, ap, as_


@dataclass(frozen=True, eq=False)
class CSTRun:
    """Output of :func:`simulate_cst`."""

    messages: Messages
    """The generated messages (LOBSTER layout; types 1 submit, 3 delete, 4 visible execution)."""
    bid_px: np.ndarray | None
    """(n, levels) int64 book after each message, ticks (``NO_PRICE`` empty); None without ``record_book``."""
    bid_sz: np.ndarray | None
    """(n, levels) float64 shares."""
    ask_px: np.ndarray | None
    ask_sz: np.ndarray | None
    book: ArrayBook
    """The book at the end of the run."""
    n_rejected: int
    """Market orders that found their side empty (no message)."""

    def to_events(self, *, date: str = "2012-06-21", tick_size: float = 0.01, ticker: str = "CST") -> pd.DataFrame:
        """The run as a canonical event table (needs ``record_book``)."""
        if self.bid_px is None:
            raise CSTError("CSTRun.to_events: the run was made with record_book=False")
        return messages_to_events(self.messages, self.bid_px, self.bid_sz, self.ask_px, self.ask_sz,
                                  date=date, tick_size=tick_size, ticker=ticker)


def default_book(params: CSTParams, *, mid_ticks: int = 57_000, spread: int = 2, lots: float = 5.0,
                 n_grid: int | None = None) -> ArrayBook:
    """A symmetric start book: ``lots`` lots at every distance 1..max_distance behind a ``spread``-tick spread."""
    D = params.max_distance
    n_grid = n_grid or 4 * (D + spread) + 64
    unit = _unit_shares(params)
    bb = mid_ticks - spread // 2
    ba = bb + spread
    bp = bb - np.arange(D)
    ap = ba + np.arange(D)
    q = np.full(D, lots * unit)
    return ArrayBook.from_levels(bp, q, ap, q, n_grid)


def _unit_shares(params: CSTParams) -> float:
    return float(max(1, round(params.mean_limit_size)))


def simulate_cst(params: CSTParams, rng: np.random.Generator, n_events: int, *, book: ArrayBook | None = None,
                 start_ns: int = int(SESSION_OPEN_S) * 10**9, levels: int = 10, record_book: bool = True) -> CSTRun:
    """Simulate ``n_events`` messages of the CST model (reference NumPy path, one Gillespie step per order).

    Each step draws, in this order from ``rng``: the waiting time (exponential with the total rate),
    one uniform that picks the event (limit bid / limit ask at distance i, market buy / sell, cancel
    at a price), and under ``size_law="lognormal"`` one normal for the size. A limit order at
    distance ``i`` rests at ``best_ask - i`` (bid) or ``best_bid + i`` (ask), so it never crosses;
    it is a submit message (type 1). A market order walks the opposite side from its best (one
    visible-execution message, type 4, per level it takes) until its size is filled or the side is
    empty. A cancel removes ``min(size, queue)`` shares at the chosen price (a delete, type 3). Under
    the unit law every size is one lot of ``round(S_l)`` shares. Resting orders beyond
    ``max_distance`` from the opposite best are cancelled at ``theta(max_distance)``.

    ``book`` (modified in place) defaults to :func:`default_book`. Times are ``start_ns`` plus the
    cumulative waiting times, rounded to ns.
    """
    if not isinstance(rng, np.random.Generator):
        raise CSTError(f"rng: must be a numpy.random.Generator, got {type(rng).__name__}")
    integer("n_events:", n_events, error=CSTError)
    lam, mu, theta = params.sim_rates()
    D = len(lam)
    unit = _unit_shares(params)
    lognormal = params.size_law == "lognormal"
    (ml, sl), (mm, sm), (mc, sc) = params.log_size
    lot = params.mean_limit_size
    book = book if book is not None else default_book(params)
    lam_cum = np.cumsum(lam)
    lam_tot = float(lam_cum[-1])
    n = int(n_events)
    t_ns = np.empty(n, np.int64)
    typ = np.empty(n, np.int8)
    size = np.empty(n, np.float64)
    price = np.empty(n, np.int64)
    dirn = np.empty(n, np.int8)
    if record_book:
        obp, obs = np.empty((n, levels), np.int64), np.empty((n, levels))
        oap, oas = np.empty((n, levels), np.int64), np.empty((n, levels))
    theta_ext = np.concatenate([[theta[0]], theta])  # index by distance clipped to 1..D
    k = 0
    t = 0.0
    n_rej = 0

    def emit(tp, sz, p, d):
        nonlocal k
        if k >= n:
            return
        t_ns[k], typ[k], size[k], price[k], dirn[k] = start_ns + int(round(t * 1e9)), tp, sz, p, d
        if record_book:
            obp[k], obs[k], oap[k], oas[k] = book.levels(levels)
        k += 1

    while k < n:
        bb, ba = book.refs()
        book.ensure(min(ba - D, bb), max(bb + D, ba))
        g = book.base + np.arange(len(book.bid))
        cb = theta_ext[np.clip(ba - g, 1, D)] * book.bid / lot
        ca = theta_ext[np.clip(g - bb, 1, D)] * book.ask / lot
        cb_tot, ca_tot = float(cb.sum()), float(ca.sum())
        has_b, has_a = book.bid[bb - book.base] > 0, book.ask[ba - book.base] > 0
        r_mb = mu  # market buy (hits asks); rate counted even if the side is empty (then rejected)
        r_ms = mu
        R = 2.0 * lam_tot + r_mb + r_ms + cb_tot + ca_tot
        t += rng.exponential(1.0 / R)
        u = rng.random() * R
        if lognormal:
            z = rng.standard_normal()
        if u < 2.0 * lam_tot:  # limit order
            is_bid = u < lam_tot
            i = int(np.searchsorted(lam_cum, u - (0.0 if is_bid else lam_tot), side="right")) + 1
            i = min(i, D)
            s = max(1.0, round(math.exp(ml + sl * z))) if lognormal else unit
            if is_bid:
                p = ba - i
                book.bid[p - book.base] += s
                emit(1, s, p, 1)
            else:
                p = bb + i
                book.ask[p - book.base] += s
                emit(1, s, p, -1)
            continue
        u -= 2.0 * lam_tot
        if u < r_mb + r_ms:  # market order
            buy = u < r_mb
            s = max(1.0, round(math.exp(mm + sm * z))) if lognormal else unit
            arr = book.ask if buy else book.bid
            if not (has_a if buy else has_b):
                n_rej += 1
                continue
            left = s
            while left > 0 and k < n:
                nz = np.flatnonzero(arr > 0)
                if not len(nz):
                    break
                j = int(nz[0] if buy else nz[-1])
                take = min(left, arr[j])
                arr[j] -= take
                left -= take
                emit(4, take, book.base + j, -1 if buy else 1)
            continue
        u -= r_mb + r_ms
        if u < cb_tot:
            arr, rates, d = book.bid, cb, 1
        else:
            u -= cb_tot
            arr, rates, d = book.ask, ca, -1
        cum = np.cumsum(rates)
        j = min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1)
        while arr[j] <= 0 and j > 0:  # float edge of the cumulative sum
            j -= 1
        s = max(1.0, round(math.exp(mc + sc * z))) if lognormal else unit
        take = min(s, arr[j])
        arr[j] -= take
        emit(3, take, book.base + j, d)
    msgs = Messages(time_ns=t_ns, type=typ, size=size, price_ticks=price, direction=dirn)
    if record_book:
        return CSTRun(msgs, obp, obs, oap, oas, book, n_rej)
    return CSTRun(msgs, None, None, None, None, book, n_rej)


# ---------------------------------------------------------------------------
# held-out log-likelihood in the token space of the learned tick model
# ---------------------------------------------------------------------------
def _lognormal_bin_probs(edges, m: float, s: float) -> np.ndarray:
    """P(size bin) of a log-normal size rounded to whole shares: bin ``[e_k, e_k+1)`` takes the sizes in
    ``(e_k - 0.5, e_k+1 - 0.5]`` (the first from 0, the last to infinity); floored at 1e-12."""
    inner = np.log(np.maximum(np.asarray(edges[1:-1], dtype=np.float64) - 0.5, 1e-12))
    z = (inner - m) / (max(s, 1e-3) * math.sqrt(2.0))
    cdf = 0.5 * (1.0 + np.array([math.erf(v) for v in z]))
    return np.maximum(np.diff(np.concatenate([[0.0], cdf, [1.0]])), 1e-12)


def cst_event_nats(params: CSTParams, events: pd.DataFrame, tokens, train, *, level_max: int = 64) -> np.ndarray:
    """Per-event negative log-likelihood ``(n, 2)`` (time, marks; nats) of ``tokens`` under the fitted CST
    model, completed so that it scores every token of the learned tick model's space.

    The CST rates on the book before each event (limit orders at distances the file can show,
    ``mu`` per side, ``theta(d) * Q / S_l`` per visible queue) are joined by constant-rate Poisson
    streams, fitted on the ``train`` tokens, for the events CST has no rate for: hidden executions,
    the 2nd.. executions of one market order (same ns and side), and submits / cancels beyond
    ``max_distance``; each with its empirical training law of (side, level class) and size bin
    (add-1/2 smoothed). Time term: ``-log f(y)``, ``y = log_dt`` (log seconds, the tokens' floor),
    ``f(y) = R e^y exp(-R e^y)`` with ``R`` the total rate; mark term: ``-log(rate of the event's class
    / R) - log P(size bin)``, CST sizes log-normal (``log_size``), the cancel type split partial /
    delete at the training frequency. Tokens whose book lacks a side get NaN.
    """
    train = np.asarray(train, bool)
    tick = tokens.meta["tick_size"]
    L = infer_levels(events)
    bpx, bsz = _book_ticks(events, "bid", L, tick)
    apx, asz = _book_ticks(events, "ask", L, tick)
    bpx, bsz, apx, asz = bpx[:-1], bsz[:-1], apx[:-1], asz[:-1]
    a, b, s = tokens.best_ask, tokens.best_bid, tokens.spread.astype(np.int64)
    two = (a != NO_PRICE) & (b != NO_PRICE)
    n = len(tokens)
    D = params.max_distance
    lam = np.asarray(params.lam)
    cum = np.concatenate([[0.0], np.cumsum(lam)])
    theta = np.asarray(params.theta)
    S_l = params.mean_limit_size
    et, side, lev = tokens.etype, tokens.side, tokens.level.astype(np.int64)
    px = _prices(tokens)
    big = 10**6
    dmax_b = np.where(bpx[:, -1] != NO_PRICE, a - bpx[:, -1], big)
    dmax_a = np.where(apx[:, -1] != NO_PRICE, apx[:, -1] - b, big)
    dist = np.where(side > 0, a - px, px - b)
    dvis = np.where(side > 0, dmax_b, dmax_a)
    # per-level cancel rates (lots) on each side
    db, da = a[:, None] - bpx, apx - b[:, None]
    cb = np.where((bpx != NO_PRICE) & (db >= 1) & (db <= D), theta[np.clip(db, 1, D) - 1] * bsz / S_l, 0.0)
    ca = np.where((apx != NO_PRICE) & (da >= 1) & (da <= D), theta[np.clip(da, 1, D) - 1] * asz / S_l, 0.0)
    sub_b = cum[np.clip(np.minimum(dmax_b, D), 0, D)]
    sub_a = cum[np.clip(np.minimum(dmax_a, D), 0, D)]
    R_cst = sub_b + sub_a + 2.0 * params.mu + cb.sum(1) + ca.sum(1)
    # classes
    t_ns = tokens.time_ns()
    cont = np.zeros(n, bool)
    cont[1:] = (et[1:] == EXEC_VISIBLE) & (et[:-1] == EXEC_VISIBLE) & (t_ns[1:] == t_ns[:-1]) & (side[1:] == side[:-1])
    is_sub, is_can = et == SUBMIT, (et == CANCEL) | (et == DELETE)
    in_rng = (dist >= 1) & (dist <= D) & (dist <= dvis)
    cls = np.full(n, -1)  # -1 = CST class; 0.. = remainder classes
    rem = [("hidden", et == EXEC_HIDDEN), ("exec_cont", cont), ("submit_far", is_sub & ~in_rng),
           ("cancel_far", is_can & ~in_rng)]
    for k, (_, mk) in enumerate(rem):
        cls[mk & (cls < 0)] = k
    T = float(np.where(train & two, tokens.dt_ns * 1e-9, 0.0).sum())
    lc = level_class(lev, level_max)
    nl = 2 * level_max + 1
    sb = tokens.size_bin.astype(np.int64)
    nb = tokens.scale.n_bins
    rate_rem = np.zeros(len(rem))
    p_sl = np.zeros((len(rem), 2, nl))
    p_sz = np.zeros((len(rem), nb))
    for k in range(len(rem)):
        mk = train & two & (cls == k)
        rate_rem[k] = max(mk.sum(), 0.5) / T
        h = np.full((2, nl), 0.5)
        np.add.at(h, ((side[mk] < 0).astype(int), lc[mk]), 1.0)
        p_sl[k] = h / h.sum()
        hz = np.full(nb, 0.5)
        np.add.at(hz, sb[mk], 1.0)
        p_sz[k] = hz / hz.sum()
    R = R_cst + rate_rem.sum()
    n_can_tr = max(int((train & is_can).sum()), 1)
    f_pc = max(int((train & (et == CANCEL)).sum()), 0.5) / n_can_tr
    psize = [_lognormal_bin_probs(tokens.scale.edges, *params.log_size[k]) for k in range(3)]
    # CST class rates of the observed event
    with np.errstate(divide="ignore", invalid="ignore"):
        sub_rate = np.where(in_rng, lam[np.clip(dist, 1, D) - 1], 0.0)
        lo_clip, hi_clip = lev <= -level_max, lev >= level_max  # clipped level classes: sum the band
        dv = np.clip(np.minimum(dvis, D), 0, D)
        band_lo = cum[np.clip(np.minimum(s - level_max, dv), 0, D)]
        band_hi = cum[dv] - cum[np.clip(s + level_max - 1, 0, D)]
        sub_rate = np.where(lo_clip, band_lo, np.where(hi_clip, np.maximum(band_hi, 0.0), sub_rate))
        lev_b = np.where(bpx != NO_PRICE, b[:, None] - bpx, big)
        lev_a = np.where(apx != NO_PRICE, apx - a[:, None], big)
        same_b = level_class(lev_b, level_max) == lc[:, None]
        same_a = level_class(lev_a, level_max) == lc[:, None]
        can_rate = np.where(side > 0, (cb * same_b).sum(1), (ca * same_a).sum(1))
        mark = np.full(n, np.nan)
        m_sub = (cls < 0) & is_sub
        mark[m_sub] = -np.log(sub_rate[m_sub] / R[m_sub]) - np.log(psize[0][sb[m_sub]])
        m_mo = (cls < 0) & (et == EXEC_VISIBLE)
        mark[m_mo] = -np.log(params.mu / R[m_mo]) - np.log(psize[1][sb[m_mo]])
        m_can = (cls < 0) & is_can
        f_type = np.where(et[m_can] == CANCEL, f_pc, 1.0 - f_pc)
        mark[m_can] = (-np.log(can_rate[m_can] / R[m_can]) - np.log(f_type) - np.log(psize[2][sb[m_can]]))
        m_rem = cls >= 0
        k = cls[m_rem]
        mark[m_rem] = (-np.log(rate_rem[k] / R[m_rem]) - np.log(p_sl[k, (side[m_rem] < 0).astype(int), lc[m_rem]])
                       - np.log(p_sz[k, sb[m_rem]]))
        y = tokens.log_dt.astype(np.float64)
        time_nll = -(np.log(R) + y - R * np.exp(y))
    out = np.stack([time_nll, mark], axis=1)
    out[~two] = np.nan
    return out

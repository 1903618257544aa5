"""Market impact from real order flow: metaorder proxies, the square-root law, a learned impact model.

Description
-----------
Public data has no metaorder labels, so we use **runs of same-sign market
orders** as metaorder proxies (market orders are aggregated executions, see
:class:`lobworld.world_models.arrivals.MarketOrders`). Run rule
(:class:`RunRule`): a run is a maximal sequence of market orders of one sign
such that (a) consecutive orders of the run are at most ``max_gap_s`` seconds
apart, and (b) an opposite-sign order interrupts the run only if its size is
larger than ``interrupt_frac`` times the run's volume so far (a small
interruption is skipped: it is not part of the run and does not end it).

For each run:

* ``Q`` = run volume (shares), ``V`` = market volume of the whole session
  (shares), ``sigma`` = session volatility of the mid (USD; standard deviation
  of 1-minute mid changes times sqrt(number of minutes));
* peak impact ``I = sign * (mid_end - mid_start)``, USD, where ``mid_start``
  is the mid just before the first order of the run and ``mid_end`` the mid
  just after its last order;
* post-run mid ``mid_post`` = mid ``horizon_s`` seconds after the run's end.

The square-root law ``E[I] = Y * sigma * (Q/V)^delta`` is fitted by weighted
least squares in log space on binned data (:func:`fit_sqrt_law`), with
bootstrap (over runs) confidence intervals for ``delta`` and ``Y``.

:class:`ImpactModel` is the learned impact model (a pre-trade estimate of the agent's
own impact, and the agent-impact channel of the learned market,
``LearnedDynamics(impact="sqrt")``, which uses its ``Y``, ``delta``, ``sigma_ref``,
``V_ref`` and ``permanent_fraction``; the depth and urgency corrections are not used
there): the peak
impact is ``Y sigma (Q/V)^delta exp(b_depth log(depth/depth_ref) +
b_part log(participation/participation_ref))``, fitted per run by nonlinear
least squares (``Y, delta`` from the binned law, then the corrections ``b``
with a ridge penalty pulling them toward 0, the pure square-root law); the permanent part is the fraction
``permanent_fraction`` of the peak measured from the post-run decay, the rest
is temporary.

Caveat (honest): runs alternate in sign, so the post-run window of one run
contains the next (opposite) run, and a run's "impact" includes the
mechanical mid jump of walking the book; these are properties of the proxy,
not of true metaorders.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import asdict, dataclass, field

import numpy as np

from lobworld.world_models.arrivals import seconds_after_midnight, load_events, market_orders_from_events
from lobworld._checks import finite, in_range, non_negative
from lobworld.errors import LobworldError


class ImpactFitError(LobworldError):
    """Bad input to the impact fit or the impact model (data, window or parameter named)."""


FITTED_DIR = pathlib.Path(__file__).parent / "assets" / "fitted"


# ---------------------------------------------------------------------------
# Metaorder proxies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRule:
    """How runs of same-sign market orders (metaorder proxies) are cut."""

    max_gap_s: float = 60.0
    """A run ends when its next same-sign order comes more than this many seconds after its last one."""
    interrupt_frac: float = 0.0
    """An opposite-sign order no larger than this fraction of the run's volume so far is skipped
    (default 0: strict runs, any opposite-sign order ends the run)."""
    horizon_s: float = 120.0
    """Seconds after the run's end at which the post-run (permanent) mid is read."""

    def __post_init__(self) -> None:
        for name in ("max_gap_s", "interrupt_frac", "horizon_s"):
            non_negative(f"RunRule.{name}", getattr(self, name), error=ImpactFitError)


@dataclass(frozen=True)
class Metaorders:
    """Metaorder proxies of one session (arrays of length ``n_runs``) plus session scales."""

    sign: np.ndarray
    """+1 buy run, -1 sell run."""
    Q: np.ndarray
    """Run volume (shares)."""
    n_orders: np.ndarray
    """Market orders in the run."""
    t_start: np.ndarray
    """Time of the first order (seconds since session start)."""
    t_end: np.ndarray
    """Time of the last order (seconds since session start)."""
    mid_start: np.ndarray
    """Mid just before the first order (USD)."""
    mid_end: np.ndarray
    """Mid just after the last order (USD)."""
    mid_post: np.ndarray
    """Mid ``horizon_s`` after the last order (USD); NaN when that is past the session end."""
    depth: np.ndarray
    """Best-quote size on the side the run hits, before its first order (shares)."""
    V: float
    """Session market volume (shares)."""
    sigma: float
    """Session mid volatility (USD)."""
    T: float
    """Session length (seconds)."""
    rule: RunRule = field(default_factory=RunRule)
    """The run rule used."""
    ticker: str = ""
    """Instrument."""

    @property
    def impact(self) -> np.ndarray:
        """Signed peak impact ``sign * (mid_end - mid_start)`` (USD)."""
        return self.sign * (self.mid_end - self.mid_start)

    @property
    def post_impact(self) -> np.ndarray:
        """Signed impact at ``horizon_s`` after the run, ``sign * (mid_post - mid_start)`` (USD)."""
        return self.sign * (self.mid_post - self.mid_start)

    @property
    def participation(self) -> np.ndarray:
        """Urgency: ``Q / (Q + v_bar * duration)`` in (0, 1], ``v_bar = V / T`` (1 = all at once)."""
        dur = self.t_end - self.t_start
        return self.Q / (self.Q + (self.V / self.T) * dur)

    def __len__(self) -> int:
        return int(self.Q.shape[0])


def session_sigma(times: np.ndarray, mids: np.ndarray, T: float, bar_s: float = 60.0) -> float:
    """Session volatility (USD): std of ``bar_s``-second mid changes times sqrt(T / bar_s)."""
    grid = np.arange(bar_s, T + 1e-9, bar_s)
    k = np.searchsorted(times, grid, side="right") - 1
    ok = k >= 0
    m = mids[k[ok]]
    m = m[np.isfinite(m)]
    if m.size < 3:
        raise ImpactFitError("too few mid observations to measure volatility")
    return float(np.std(np.diff(m), ddof=1) * math.sqrt(T / bar_s))


def extract_metaorders(events, rule: RunRule | None = None) -> Metaorders:
    """Metaorder proxies (runs of same-sign market orders) from a canonical event table."""
    rule = rule or RunRule()
    mo = market_orders_from_events(events)
    if len(mo) < 10:
        raise ImpactFitError(f"only {len(mo)} market orders: too few to build metaorder proxies")
    secs = seconds_after_midnight(events["ts"]) - mo.t0
    mids = 0.5 * (events["bid_px_1"].to_numpy(dtype=np.float64) + events["ask_px_1"].to_numpy(dtype=np.float64))
    sign = mo.signs
    runs = []  # (first idx, last idx, Q, n)
    i = 0
    n = len(mo)
    while i < n:
        s = sign[i]
        q = mo.sizes[i]
        last = i
        cnt = 1
        j = i + 1
        while j < n:
            if mo.times[j] - mo.times[last] > rule.max_gap_s:
                break
            if sign[j] == s:
                q += mo.sizes[j]
                last = j
                cnt += 1
            elif mo.sizes[j] > rule.interrupt_frac * q:
                break
            j += 1
        runs.append((i, last, q, cnt))
        i = last + 1
    first = np.array([r[0] for r in runs])
    last = np.array([r[1] for r in runs])
    t_end = mo.times[last]
    post_t = t_end + rule.horizon_s
    k = np.searchsorted(secs, post_t, side="right") - 1
    mid_post = np.where(post_t <= mo.T, mids[np.clip(k, 0, None)], np.nan)
    sigma = session_sigma(secs, mids, mo.T)
    out = Metaorders(
        sign=sign[first], Q=np.array([r[2] for r in runs]), n_orders=np.array([r[3] for r in runs]),
        t_start=mo.times[first], t_end=t_end, mid_start=mo.mid_before[first], mid_end=mo.mid_after[last],
        mid_post=mid_post, depth=mo.depth_before[first], V=float(mo.sizes.sum()), sigma=sigma, T=mo.T,
        rule=rule, ticker=mo.ticker,
    )
    return out


def load_metaorders(message_path, rule: RunRule | None = None) -> Metaorders:
    """Metaorder proxies of a LOBSTER day (message file path; orderbook found next to it)."""
    return extract_metaorders(load_events(message_path), rule)


# ---------------------------------------------------------------------------
# Square-root law fit
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SqrtLawFit:
    """Fit of ``E[I/sigma] = Y (Q/V)^delta`` on binned data, with bootstrap CIs."""

    Y: float
    """Prefactor (dimensionless)."""
    delta: float
    """Exponent (dimensionless; 1/2 for the square-root law)."""
    Y_ci: tuple[float, float]
    """Bootstrap percentile confidence interval for Y."""
    delta_ci: tuple[float, float]
    """Bootstrap percentile confidence interval for delta."""
    level: float
    """Confidence level of the intervals."""
    n_runs: int
    """Number of runs (metaorder proxies) used."""
    n_boot: int
    """Bootstrap replications that gave a fit."""
    bin_x: np.ndarray
    """Mean Q/V per bin."""
    bin_y: np.ndarray
    """Mean I/sigma per bin."""
    bin_se: np.ndarray
    """Standard error of the bin mean of I/sigma."""
    bin_n: np.ndarray
    """Runs per bin."""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("bin_x", "bin_y", "bin_se", "bin_n"):
            d[k] = np.asarray(d[k]).tolist()
        d["Y_ci"] = list(self.Y_ci)
        d["delta_ci"] = list(self.delta_ci)
        return d


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ImpactFitError(f"Q/V and impact must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ImpactFitError("Q/V and impact must be finite (no NaN/inf)")
    if np.any(x <= 0):
        raise ImpactFitError("Q/V must be > 0")
    return x, y


def _binned_fit(x, y, edges):
    """WLS of log(bin mean y) on log(bin mean x); weights = inverse variance of log(mean y)."""
    b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    n = np.bincount(b, minlength=nb).astype(float)
    sx = np.bincount(b, weights=x, minlength=nb)
    sy = np.bincount(b, weights=y, minlength=nb)
    syy = np.bincount(b, weights=y * y, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = sx / n
        my = sy / n
        var = (syy - n * my * my) / np.maximum(n - 1, 1)
        se = np.sqrt(np.maximum(var, 0) / n)
    ok = (n >= 2) & (my > 0) & (se > 0)
    if ok.sum() < 3:
        return None, (mx, my, se, n)
    lx = np.log(mx[ok])
    ly = np.log(my[ok])
    w = (my[ok] / se[ok]) ** 2
    A = np.stack([np.ones_like(lx), lx], axis=1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], ly * sw, rcond=None)
    return (float(math.exp(coef[0])), float(coef[1])), (mx, my, se, n)


def fit_sqrt_law(q_over_v, impact_over_sigma, *, n_bins: int = 12, n_boot: int = 300,
                 level: float = 0.95, rng: np.random.Generator | None = None) -> SqrtLawFit:
    """Fit ``E[I/sigma] = Y (Q/V)^delta`` by WLS in log space on quantile bins of log(Q/V).

    Runs are put in ``n_bins`` equal-count bins of ``Q/V``; the mean of
    ``I/sigma`` per bin is regressed in logs on the mean ``Q/V``, weighting
    each bin by the inverse variance of its log mean (``(mean/se)^2``). Bins
    with a non-positive mean are left out (they have no logarithm). The
    confidence intervals are bootstrap percentiles over runs (resampled with
    replacement, same bin edges, ``n_boot`` replications).
    """
    x, y = _check_xy(q_over_v, impact_over_sigma)
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 3):
        raise ImpactFitError(f"n_bins must be an int >= 3, got {n_bins!r}")
    if x.size < 5 * n_bins:
        raise ImpactFitError(f"need at least {5 * n_bins} runs for {n_bins} bins, got {x.size}")
    if not 0 < level < 1:
        raise ImpactFitError(f"level must be in (0, 1), got {level!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    edges = np.quantile(x, np.linspace(0, 1, n_bins + 1))
    edges = np.unique(edges)
    if edges.size < 4:
        raise ImpactFitError("Q/V takes too few distinct values to bin")
    edges[-1] = np.inf
    fit, (mx, my, se, n) = _binned_fit(x, y, edges)
    if fit is None:
        raise ImpactFitError("fewer than 3 bins with a positive mean impact: no power law can be fitted")
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        f, _ = _binned_fit(x[idx], y[idx], edges)
        if f is not None:
            boots.append(f)
    bt = np.array(boots) if boots else np.full((1, 2), np.nan)
    a = (1 - level) / 2
    qs = np.quantile(bt, [a, 1 - a], axis=0)
    return SqrtLawFit(
        Y=fit[0], delta=fit[1], Y_ci=(float(qs[0, 0]), float(qs[1, 0])), delta_ci=(float(qs[0, 1]), float(qs[1, 1])),
        level=level, n_runs=int(x.size), n_boot=len(boots), bin_x=mx, bin_y=my, bin_se=se, bin_n=n,
    )


def fit_metaorders(meta: Metaorders, **kw) -> SqrtLawFit:
    """:func:`fit_sqrt_law` on the runs of ``meta`` with complete mids (``Q/V``, ``I/sigma``)."""
    ok = np.isfinite(meta.mid_start) & np.isfinite(meta.mid_end)
    return fit_sqrt_law(meta.Q[ok] / meta.V, meta.impact[ok] / meta.sigma, **kw)


def permanent_fraction(meta: Metaorders, *, n_boot: int = 300, level: float = 0.95,
                       rng: np.random.Generator | None = None) -> tuple[float, tuple[float, float]]:
    """Permanent share of peak impact: ``sum(post-run impact) / sum(peak impact)`` over runs, bootstrap CI."""
    ok = np.isfinite(meta.mid_post) & np.isfinite(meta.mid_start) & np.isfinite(meta.mid_end)
    peak = meta.impact[ok]
    post = meta.post_impact[ok]
    if peak.size < 10 or peak.sum() <= 0:
        raise ImpactFitError("need >= 10 runs with a positive total peak impact to measure the permanent fraction")
    rng = rng if rng is not None else np.random.default_rng(0)
    est = float(post.sum() / peak.sum())
    bs = []
    for _ in range(n_boot):
        i = rng.integers(0, peak.size, peak.size)
        if peak[i].sum() > 0:
            bs.append(post[i].sum() / peak[i].sum())
    if not bs:
        return est, (math.nan, math.nan)
    a = (1 - level) / 2
    lo, hi = np.quantile(bs, [a, 1 - a])
    return est, (float(lo), float(hi))


# ---------------------------------------------------------------------------
# Learned impact model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactParams:
    """Parameters of :class:`ImpactModel` (square-root law with feature corrections)."""

    Y: float = 0.5
    """Prefactor of the peak impact ``Y sigma (Q/V)^delta`` (dimensionless)."""
    delta: float = 0.5
    """Exponent on ``Q/V`` (square-root law: 0.5)."""
    b_depth: float = 0.0
    """Elasticity of impact to top-of-book depth: factor ``(depth/depth_ref)^b_depth``."""
    b_participation: float = 0.0
    """Elasticity of impact to urgency: factor ``(participation/participation_ref)^b_participation``."""
    depth_ref: float = 100.0
    """Reference best-quote size (shares)."""
    participation_ref: float = 0.5
    """Reference participation rate (dimensionless, in (0, 1])."""
    permanent_fraction: float = 0.5
    """Share of the peak impact that is permanent (in [0, 1]); the rest decays (temporary)."""
    V_ref: float = 1.0e6
    """Session volume the model was fitted with (shares); the V to use when unsure."""
    sigma_ref: float = 5.0
    """Session volatility the model was fitted with (USD)."""
    ticker: str = ""
    """Instrument the fit came from ("" for a prior)."""
    source: str = "prior"
    """Where the numbers come from (e.g. 'LOBSTER GOOG 2012-06-21, 3,211 runs')."""

    def __post_init__(self) -> None:
        for name in ("Y", "delta", "b_depth", "b_participation", "depth_ref", "participation_ref",
                     "permanent_fraction", "V_ref", "sigma_ref"):
            finite(f"ImpactParams.{name}", getattr(self, name), error=ImpactFitError)
        if self.Y < 0 or self.delta <= 0 or self.depth_ref <= 0 or self.V_ref <= 0 or self.sigma_ref <= 0:
            raise ImpactFitError("ImpactParams: Y >= 0, delta > 0, depth_ref, V_ref, sigma_ref > 0 are required")
        in_range("ImpactParams.participation_ref", self.participation_ref, 0.0, 1.0, lo_open=True, error=ImpactFitError)
        in_range("ImpactParams.permanent_fraction", self.permanent_fraction, 0.0, 1.0, error=ImpactFitError)


@dataclass(frozen=True)
class ImpactPrediction:
    """Predicted impact of a signed order (USD, same sign as the order)."""

    peak: np.ndarray
    """Peak mid move by the end of the order."""
    permanent: np.ndarray
    """Part of the peak that stays."""
    temporary: np.ndarray
    """Part of the peak that decays (``peak - permanent``)."""


class ImpactModel:
    """Impact of the agent's own flow: square-root law prior plus depth and urgency corrections.

    ``peak = sign(q) * Y * sigma * (|q|/V)^delta * (depth/depth_ref)^b_depth
    * (participation/participation_ref)^b_participation``;
    ``permanent = permanent_fraction * peak``; ``temporary = peak - permanent``.
    ``V`` and ``sigma`` must refer to the same window as in the fit (one
    trading session: total volume in shares, volatility in USD).
    """

    def __init__(self, params: ImpactParams | None = None):
        self.params = params if params is not None else ImpactParams()

    def predict(self, q, V, sigma, depth=None, participation=None) -> ImpactPrediction:
        """Impact of signed size ``q`` (shares) given ``V`` (shares), ``sigma`` (USD), ``depth`` (shares),
        ``participation`` (in (0, 1]); arrays broadcast. ``depth``/``participation`` default to the references."""
        p = self.params
        q = np.asarray(q, dtype=np.float64)
        V = np.asarray(V, dtype=np.float64)
        sigma = np.asarray(sigma, dtype=np.float64)
        depth = np.asarray(p.depth_ref if depth is None else depth, dtype=np.float64)
        part = np.asarray(p.participation_ref if participation is None else participation, dtype=np.float64)
        for name, a in (("q", q), ("V", V), ("sigma", sigma), ("depth", depth), ("participation", part)):
            if not np.all(np.isfinite(a)):
                raise ImpactFitError(f"ImpactModel.predict: {name} must be finite")
        if np.any(V <= 0) or np.any(sigma < 0) or np.any(depth <= 0):
            raise ImpactFitError("ImpactModel.predict: V > 0, sigma >= 0 and depth > 0 are required")
        if np.any(part <= 0) or np.any(part > 1):
            raise ImpactFitError("ImpactModel.predict: participation must be in (0, 1]")
        peak = (np.sign(q) * p.Y * sigma * (np.abs(q) / V) ** p.delta
                * (depth / p.depth_ref) ** p.b_depth * (part / p.participation_ref) ** p.b_participation)
        perm = p.permanent_fraction * peak
        return ImpactPrediction(peak=peak, permanent=perm, temporary=peak - perm)

    # -- fitting ----------------------------------------------------------
    @classmethod
    def fit(cls, meta: Metaorders, *, ridge: float = 50.0, n_bins: int = 12,
            rng: np.random.Generator | None = None) -> "ImpactModel":
        """Fit on metaorder proxies in two stages.

        1. Structural part ``(Y, delta)``: the binned square-root-law fit
           (:func:`fit_sqrt_law`), which is robust to the heavy per-run noise.
        2. Feature corrections ``b = (b_depth, b_participation)`` with
           ``z = [log(depth/depth_ref), log(participation/participation_ref)]``
           (references = medians): nonlinear least squares on the per-run
           residuals ``I_i/sigma - Y x_i^delta exp(b . z_i)`` plus ridge rows
           ``sqrt(ridge) * s * b`` (``s`` = std of ``I/sigma``), i.e. the
           penalty counts as ``ridge`` pseudo-observations at the prior
           ``b = 0`` (the pure square-root law).

        The permanent fraction comes from :func:`permanent_fraction`, clipped to [0, 1].
        """
        from scipy.optimize import least_squares

        ok = (np.isfinite(meta.mid_start) & np.isfinite(meta.mid_end) & np.isfinite(meta.depth)
              & (meta.depth > 0))
        if ok.sum() < 5 * n_bins:
            raise ImpactFitError(f"need >= {5 * n_bins} usable runs to fit the impact model, got {int(ok.sum())}")
        non_negative("ridge", ridge, error=ImpactFitError, what=">= 0")
        x = meta.Q[ok] / meta.V
        y = meta.impact[ok] / meta.sigma
        law = fit_sqrt_law(x, y, n_bins=n_bins, n_boot=0)
        depth_ref = float(np.median(meta.depth[ok]))
        part = meta.participation[ok]
        part_ref = float(np.median(part))
        z = np.stack([np.log(meta.depth[ok] / depth_ref), np.log(part / part_ref)], axis=1)
        base = law.Y * x ** law.delta
        lam = math.sqrt(ridge) * (float(np.std(y)) or 1.0)

        def resid(bv):
            return np.concatenate([y - base * np.exp(z @ bv), lam * bv])

        res = least_squares(resid, np.zeros(2), method="trf")
        bd, bp = (float(v) for v in res.x)
        try:
            pf, _ = permanent_fraction(meta, n_boot=0, rng=rng)
        except ValueError:
            pf = 0.5
        params = ImpactParams(
            Y=law.Y, delta=law.delta, b_depth=bd, b_participation=bp, depth_ref=depth_ref,
            participation_ref=min(max(part_ref, 1e-6), 1.0), permanent_fraction=float(np.clip(pf, 0.0, 1.0)),
            V_ref=meta.V, sigma_ref=meta.sigma, ticker=meta.ticker,
            source=f"fitted on {int(ok.sum())} same-sign runs" + (f" of {meta.ticker}" if meta.ticker else ""),
        )
        return cls(params)

    # -- persistence ------------------------------------------------------
    def save(self, path) -> pathlib.Path:
        """Write the parameters as JSON."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "lobworld.ImpactParams", "params": asdict(self.params)}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "ImpactModel":
        """Read parameters written by :meth:`save` (or the ``impact`` block of a fitted-asset JSON)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"impact model file not found: {path}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ImpactFitError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(d, dict) and "impact" in d and isinstance(d["impact"], dict):
            d = d["impact"]
        if not isinstance(d, dict) or "params" not in d:
            raise ImpactFitError(f"{path}: no 'params' object (not an ImpactModel file)")
        known = set(ImpactParams.__dataclass_fields__)
        unknown = set(d["params"]) - known
        if unknown:
            raise ImpactFitError(f"{path}: unknown ImpactParams fields {sorted(unknown)}")
        return cls(ImpactParams(**d["params"]))

    @classmethod
    def load_fitted(cls, ticker: str = "GOOG") -> "ImpactModel":
        """The model fitted on the shipped LOBSTER day of ``ticker`` (``GOOG`` or ``AMZN``)."""
        path = FITTED_DIR / f"{ticker.lower()}.json"
        if not path.is_file():
            avail = sorted(p.stem.upper() for p in FITTED_DIR.glob("*.json"))
            raise ImpactFitError(f"no fitted impact model for {ticker!r}; available: {avail}")
        return cls.load(path)


def plot_sqrt_law(fit: SqrtLawFit, path, title: str = "") -> pathlib.Path:
    """Log-log plot of binned mean I/sigma vs Q/V with error bars and the fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    pos = fit.bin_y > 0
    ax.errorbar(fit.bin_x[pos], fit.bin_y[pos], yerr=np.minimum(fit.bin_se[pos], 0.999 * fit.bin_y[pos]),
                fmt="o", color="C0", label="binned runs (mean ± s.e.)")
    xs = np.geomspace(fit.bin_x[pos].min() / 1.5, fit.bin_x[pos].max() * 1.5, 50)
    ax.plot(xs, fit.Y * xs ** fit.delta, color="C3",
            label=f"fit: Y={fit.Y:.3g}, δ={fit.delta:.3f} [{fit.delta_ci[0]:.3f}, {fit.delta_ci[1]:.3f}]")
    ax.plot(xs, fit.Y * xs[len(xs) // 2] ** (fit.delta - 0.5) * xs ** 0.5, ls="--", color="grey",
            label="slope 1/2 (reference)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Q / V (run volume / session volume)")
    ax.set_ylabel("I / σ (peak impact / session volatility)")
    ax.set_title(title or "Peak impact of same-sign runs")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

"""The parametric market's tape: textbook laws for the quantities ``ParametricDynamics`` lacks."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from lobworld._checks import finite, positive
from lobworld.world_models.dynamics_model import check_bar_columns
from lobworld.world_models.fidelity.samples import FidelityError

# ---------------------------------------------------------------------------
# the parametric market's tape: textbook laws for the quantities ParametricDynamics lacks
# ---------------------------------------------------------------------------
_TAPE_STREAM = 0x7A9E  #: last SeedSequence entropy word of the tape draws (a non-zero tag: see simulate_parametric)


@dataclass(frozen=True)
class ParametricTape:
    """Textbook per-bar laws of the parametric market's trade count, OFI and top of book (physical units).

    :class:`~lobworld.envs.dynamics.ParametricDynamics` produces mid, spread,
    volume and a trade-sign imbalance only; the fidelity report completes it
    with these laws, fitted by :func:`calibrate_tape` on the same training
    block as its :class:`~lobworld.envs.dynamics.ParametricParams` and drawn by
    :func:`sample_tape`. Every law is i.i.d. across bars and independent of the
    others and of the mid (no clustering, no cross-correlation): the baseline
    a learned market has to beat.

    * trade count per bar ~ Poisson(``trades_per_bar``) (Poisson arrivals);
    * OFI per bar ~ Normal(``ofi_mean``, ``ofi_sd``);
    * top-of-book depth ``bid_sz_1 + ask_sz_1`` ~ LogNormal(``log_depth_mean``, ``log_depth_sd``);
    * top-of-book imbalance ``(bid_sz_1 - ask_sz_1) / (bid_sz_1 + ask_sz_1)`` = ``2 u - 1``,
      ``u`` ~ Beta(``imb_alpha``, ``imb_beta``).
    """

    dt: float
    """Bar length (seconds) the per-bar laws refer to."""
    trades_per_bar: float
    """Poisson mean: executions per bar (LOBSTER: one per resting order hit), over every bar, > 0."""
    ofi_mean: float
    """Mean of the per-bar multi-level OFI (shares)."""
    ofi_sd: float
    """Standard deviation of the per-bar multi-level OFI (shares), > 0."""
    log_depth_mean: float
    """Mean of log top-of-book depth at bar end (log shares; depth floored at 1 share)."""
    log_depth_sd: float
    """Standard deviation of log top-of-book depth at bar end (log shares), > 0."""
    imb_alpha: float
    """Beta shape alpha of ``(imbalance + 1) / 2`` (dimensionless), > 0."""
    imb_beta: float
    """Beta shape beta of ``(imbalance + 1) / 2`` (dimensionless), > 0."""
    n_bars: int = 0
    """Training bars the laws were fitted on (information only)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            finite(f"ParametricTape.{f.name}", v, error=FidelityError)
            if f.name in ("dt", "trades_per_bar", "ofi_sd", "log_depth_sd", "imb_alpha", "imb_beta"):
                positive(f"ParametricTape.{f.name}", v, error=FidelityError, what="> 0")
        if self.n_bars < 0:
            raise FidelityError(f"ParametricTape.n_bars must be >= 0, got {self.n_bars!r}")

    def to_dict(self) -> dict[str, float]:
        """The fields as plain numbers (JSON-able)."""
        return {f.name: (int if f.name == "n_bars" else float)(getattr(self, f.name)) for f in fields(self)}


def _degenerate(sd: float, centre: float) -> bool:
    return not sd > 1e-12 * max(1.0, abs(centre))


def calibrate_tape(bars, dt: float | None = None) -> ParametricTape:
    """Fit :class:`ParametricTape` on ``bars`` (a ``make_bars`` frame: the day's **training block** only).

    Moments over every bar (population moments, ``ddof=0``):

    * ``trades_per_bar`` = mean of ``n_trades`` (bars without a trade count as 0);
    * ``ofi_mean``, ``ofi_sd`` = mean and sd of ``ofi``;
    * ``log_depth_mean``, ``log_depth_sd`` = mean and sd of ``log(max(bid_sz_1 + ask_sz_1, 1))``
      (the floor of :func:`real_paths`);
    * ``imb_alpha``, ``imb_beta``: method of moments on ``u = (imb + 1) / 2`` with
      ``imb = (bid_sz_1 - ask_sz_1) / max(bid_sz_1 + ask_sz_1, 1)``: with ``m``, ``v`` the mean and
      variance of ``u`` and ``c = m (1 - m) / v - 1``, ``alpha = m c``, ``beta = (1 - m) c``.

    ``dt`` defaults to the median ``bar_seconds``. Raises :class:`FidelityError`
    naming the problem for a missing column, NaN/inf values, fewer than 2 bars,
    a block without trades, without top-of-book depth, or with a constant OFI,
    depth or book imbalance (or one only ever at +-1), where a law cannot be fitted.
    """
    need = ("n_trades", "ofi", "bid_sz_1", "ask_sz_1") + (("bar_seconds",) if dt is None else ())
    check_bar_columns(bars, need, error=FidelityError, prefix="training block: ")
    n = len(bars)
    if n < 2:
        raise FidelityError(f"training block: {n} bar(s); the parametric tape laws need at least 2")
    dt = float(np.median(bars["bar_seconds"].to_numpy(float))) if dt is None else float(dt)
    cnt = bars["n_trades"].to_numpy(float)
    lam = float(cnt.mean())
    if not lam > 0:
        raise FidelityError(f"training block: no trade in its {n} bars; the Poisson trade-count law needs a "
                            "positive mean")
    ofi = bars["ofi"].to_numpy(float)
    ofi_mean, ofi_sd = float(ofi.mean()), float(ofi.std())
    if _degenerate(ofi_sd, ofi_mean):
        raise FidelityError(f"training block: the OFI is constant ({ofi_mean:g} shares in all {n} bars); "
                            "the Gaussian OFI law needs variation")
    bs = bars["bid_sz_1"].to_numpy(float)
    as_ = bars["ask_sz_1"].to_numpy(float)
    raw = bs + as_
    if not np.any(raw > 0):
        raise FidelityError(f"training block: no top-of-book depth (bid_sz_1 + ask_sz_1 = 0 in all {n} bars); "
                            "the log-normal depth law cannot be fitted")
    depth = np.maximum(raw, 1.0)
    ld = np.log(depth)
    ld_mean, ld_sd = float(ld.mean()), float(ld.std())
    if _degenerate(ld_sd, ld_mean):
        raise FidelityError(f"training block: the top-of-book depth is constant ({depth[0]:g} shares in all {n} "
                            "bars); the log-normal depth law needs variation")
    u = 0.5 * ((bs - as_) / depth + 1.0)
    m, v = float(u.mean()), float(u.var())
    if _degenerate(v, 1.0):
        raise FidelityError(f"training block: the top-of-book imbalance is constant ({2 * m - 1:g} in all {n} "
                            "bars); the Beta imbalance law needs variation")
    c = m * (1.0 - m) / v - 1.0
    if not c > 1e-6:
        raise FidelityError(f"training block: the top-of-book imbalance is only ever at -1 or +1 (one side of the "
                            f"book empty; mean {2 * m - 1:g}, variance of (imb + 1) / 2 {v:g} >= m (1 - m)); "
                            "the Beta imbalance law cannot be fitted")
    return ParametricTape(dt=dt, trades_per_bar=lam, ofi_mean=ofi_mean, ofi_sd=ofi_sd, log_depth_mean=ld_mean,
                          log_depth_sd=ld_sd, imb_alpha=m * c, imb_beta=(1.0 - m) * c, n_bars=n)


def sample_tape(tape: ParametricTape, rng: np.random.Generator, shape: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Independent draws of ``shape`` bars: ``(n_trades, ofi, book_imb, depth)``.

    Units: trades (int-valued float64), shares, dimensionless in [-1, 1], shares.
    The draw order is fixed (count, OFI, imbalance, depth), so the same ``rng``
    state gives the same arrays.
    """
    n_tr = rng.poisson(tape.trades_per_bar, size=shape).astype(np.float64)
    ofi = rng.normal(tape.ofi_mean, tape.ofi_sd, size=shape)
    imb = 2.0 * rng.beta(tape.imb_alpha, tape.imb_beta, size=shape) - 1.0
    depth = np.exp(rng.normal(tape.log_depth_mean, tape.log_depth_sd, size=shape))
    return n_tr, ofi, imb, depth



"""Arrival-process parameters of the order flow (the simulation floor's view).

:class:`HawkesParams` (bivariate exponential-kernel Hawkes) and :class:`PoissonParams`
(independent Poisson) for buyer- and seller-initiated market orders; marks 0 = buy,
1 = sell; seconds. The market-making envs simulate them; fitting, likelihoods and the
fitted values of the shipped days are in :mod:`lobworld.world_models.arrivals`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lobworld.errors import LobworldError


class ArrivalParamsError(LobworldError):
    """Arrival-process parameters that are not valid (field named)."""


__all__ = ["HawkesParams", "PoissonParams"]


@dataclass(frozen=True)
class HawkesParams:
    """Bivariate exponential-kernel Hawkes process for buy/sell market orders."""

    mu: tuple[float, float] = (0.05, 0.05)
    """Baseline intensities of buy and sell market orders (events per second)."""
    alpha: tuple[tuple[float, float], tuple[float, float]] = ((0.3, 0.1), (0.1, 0.3))
    """Branching matrix: ``alpha[m][n]`` = expected mark-m children of one mark-n event."""
    beta: float = 1.0
    """Exponential decay rate of the kernel (1/second)."""

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=float)
        alpha = np.asarray(self.alpha, dtype=float)
        if mu.shape != (2,) or alpha.shape != (2, 2):
            raise ArrivalParamsError(f"HawkesParams: mu must have shape (2,), alpha (2, 2); got {mu.shape}, {alpha.shape}")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(alpha)) and np.isfinite(self.beta)):
            raise ArrivalParamsError("HawkesParams: parameters must be finite")
        if np.any(mu < 0) or np.any(alpha < 0) or self.beta <= 0:
            raise ArrivalParamsError("HawkesParams: mu >= 0, alpha >= 0 and beta > 0 are required")

    @property
    def branching_ratio(self) -> float:
        """Spectral radius of ``alpha``; the process is stationary iff it is < 1."""
        return float(np.max(np.abs(np.linalg.eigvals(np.asarray(self.alpha, dtype=float)))))

    @property
    def stationary_intensity(self) -> np.ndarray:
        """Long-run mean intensities ``(I - alpha)^{-1} mu`` (events per second)."""
        if self.branching_ratio >= 1:
            raise ArrivalParamsError(f"non-stationary Hawkes process (branching ratio {self.branching_ratio:.3f} >= 1)")
        a = np.asarray(self.alpha, dtype=float)
        return np.linalg.solve(np.eye(2) - a, np.asarray(self.mu, dtype=float))


@dataclass(frozen=True)
class PoissonParams:
    """Independent Poisson arrivals of buy and sell market orders."""

    rate: tuple[float, float] = field(default=(0.1, 0.1))
    """Intensities of buy and sell market orders (events per second)."""

    def __post_init__(self) -> None:
        r = np.asarray(self.rate, dtype=float)
        if r.shape != (2,) or not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ArrivalParamsError(f"PoissonParams.rate must be two finite non-negative rates, got {self.rate!r}")

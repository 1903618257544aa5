"""Almgren-Chriss (2000) optimal liquidation in closed form, in lobworld's units.

Discrete model (Almgren & Chriss, "Optimal execution of portfolio transactions"): X shares
over N steps of tau seconds; holdings x_0 = X, ..., x_N = 0, trades n_k = x_{k-1} - x_k;
arithmetic Brownian mid with volatility sigma (USD/sqrt(s)); permanent impact gamma
(USD per share traded); temporary impact eps + eta n_k / tau (USD per share). Then

* E[IS] = 0.5 gamma X^2 + eps X + (eta_tilde / tau) sum_k n_k^2,  eta_tilde = eta - gamma tau / 2
* Var[IS] = sigma^2 tau sum_{k=1}^{N} x_k^2
* the mean-variance optimum of E + lambda_usd Var is
  x_j = X sinh(kappa (T - t_j)) / sinh(kappa T), t_j = j tau, T = N tau, with
  2 (cosh(kappa tau) - 1) / tau^2 = kappa_tilde^2 = lambda_usd sigma^2 / eta_tilde.

In the execution envs the cost is measured in bps of arrival notional,
C = IS * 1e4 / (s0 X), and the risk aversion ``lambda`` (1/bps) weighs Var[C], so
``lambda_usd = lambda * 1e4 / (s0 X)``. These formulas hold exactly in the
``"parametric"`` dynamics with ``impact="linear"``, zero drift and a constant spread
(``spread_logsd=0``; eps = spread / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lobworld._checks import non_negative
from lobworld.errors import LobworldError


class AlmgrenChrissError(LobworldError):
    """Bad Almgren-Chriss parameters (field named)."""


__all__ = ["ACProblem", "ac_trajectory", "expected_cost", "cost_variance", "ac_kappa"]


@dataclass(frozen=True)
class ACProblem:
    """An Almgren-Chriss liquidation problem (physical units)."""

    X: float
    """Shares to trade (> 0)."""
    N: int
    """Number of trading steps."""
    tau: float
    """Step length (seconds)."""
    sigma: float
    """Mid volatility (USD per sqrt(second))."""
    eta: float
    """Linear temporary impact (USD per share per share/second)."""
    gamma: float
    """Linear permanent impact (USD per share per share)."""
    eps: float = 0.0
    """Fixed cost per share (USD): half the spread."""
    s0: float = 1.0
    """Arrival mid (USD); used only for bps conversions."""

    def __post_init__(self) -> None:
        if not (self.X > 0 and self.N >= 1 and self.tau > 0 and self.sigma >= 0 and self.s0 > 0):
            raise AlmgrenChrissError(f"ACProblem: need X > 0, N >= 1, tau > 0, sigma >= 0, s0 > 0; got {self}")
        if self.eta_tilde <= 0:
            raise AlmgrenChrissError(
                f"ACProblem: eta_tilde = eta - gamma*tau/2 = {self.eta_tilde:g} must be > 0 (impact too permanent)"
            )

    @property
    def eta_tilde(self) -> float:
        return self.eta - 0.5 * self.gamma * self.tau

    @property
    def bps_per_usd(self) -> float:
        """Cost conversion: bps of arrival notional per USD of shortfall."""
        return 1e4 / (self.s0 * self.X)

    @classmethod
    def from_env(cls, config, params=None) -> "ACProblem":
        """From an :class:`ExecutionConfig` and :class:`ParametricParams` (defaults when None)."""
        from lobworld.envs.dynamics import ParametricParams

        p = params if params is not None else ParametricParams()
        return cls(X=float(config.quantity), N=int(config.horizon), tau=float(config.dt), sigma=p.sigma,
                   eta=p.eta, gamma=p.gamma, eps=0.5 * p.spread, s0=p.s0)


def ac_kappa(problem: ACProblem, risk_aversion_bps: float) -> float:
    """Urgency kappa (1/s) for risk aversion lambda in 1/bps (lambda_usd = lambda * bps_per_usd)."""
    non_negative("risk aversion", risk_aversion_bps, error=AlmgrenChrissError, what="a finite number >= 0 (1/bps)")
    lam_usd = risk_aversion_bps * problem.bps_per_usd
    kt2 = lam_usd * problem.sigma ** 2 / problem.eta_tilde
    return math.acosh(0.5 * kt2 * problem.tau ** 2 + 1.0) / problem.tau


def ac_trajectory(problem: ACProblem, risk_aversion_bps: float) -> np.ndarray:
    """Optimal holdings ``x_0 .. x_N`` (shares; x_0 = X, x_N = 0)."""
    kappa = ac_kappa(problem, risk_aversion_bps)
    N, tau = problem.N, problem.tau
    T = N * tau
    t = np.arange(N + 1) * tau
    if kappa * T < 1e-9:  # lambda -> 0: straight line (TWAP)
        x = problem.X * (1.0 - t / T)
    else:
        x = problem.X * np.sinh(kappa * (T - t)) / np.sinh(kappa * T)
    x[0], x[-1] = problem.X, 0.0
    return x


def _check_holdings(problem: ACProblem, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (problem.N + 1,):
        raise AlmgrenChrissError(f"holdings must have shape ({problem.N + 1},), got {x.shape}")
    return x


def expected_cost(problem: ACProblem, x: np.ndarray, bps: bool = True) -> float:
    """E[IS] of holdings ``x`` (USD, or bps of arrival notional when ``bps``)."""
    x = _check_holdings(problem, x)
    n = -np.diff(x)
    e = 0.5 * problem.gamma * problem.X ** 2 + problem.eps * problem.X + problem.eta_tilde / problem.tau * np.sum(n * n)
    return float(e * problem.bps_per_usd) if bps else float(e)


def cost_variance(problem: ACProblem, x: np.ndarray, bps: bool = True) -> float:
    """Var[IS] of holdings ``x`` (USD^2, or bps^2 when ``bps``)."""
    x = _check_holdings(problem, x)
    v = problem.sigma ** 2 * problem.tau * np.sum(x[1:] ** 2)
    return float(v * problem.bps_per_usd ** 2) if bps else float(v)

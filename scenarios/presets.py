"""Market-regime presets: transforms of :class:`~lobworld.envs.dynamics.ParametricParams`.

A :class:`Regime` multiplies volatility, spread, volume and impact of a base
parametric market and may add a drift. Multipliers are stylised orders of
magnitude (not estimates for a specific stock or day); the base is the
calibrated GOOG 2012-06-21 default unless a history-conditioned start is given.

==============  =====  ======  ======  ======  ================  ==========================
name            sigma  spread  volume  impact  drift             meaning
==============  =====  ======  ======  ======  ================  ==========================
``calm``        x0.5   x0.8    x1.2    x0.8    0                 quiet mid-day market
``normal``      x1     x1      x1      x1      0                 the base parameters
``volatile``    x2     x1.5    x1.3    x1.5    0                 news / high-volatility day
``illiquid``    x1.2   x2      x0.3    x3      0                 thin book, little volume
``trending``    x1     x1      x1      x1      -50 bps per hour  falling market (adverse to a seller)
``trending_up`` x1     x1      x1      x1      +50 bps per hour  rising market (adverse to a buyer)
==============  =====  ======  ======  ======  ================  ==========================

"impact" scales both the temporary (``eta``, ``sqrt_y``) and permanent
(``gamma``) impact coefficients. The drift is relative to the base ``s0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lobworld._checks import non_negative
from lobworld._config import Replaceable
from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
from lobworld.envs.registry import ScenarioRegistry
from lobworld.errors import LobworldError

__all__ = ["Regime", "REGIMES", "RegimeError", "get_regime", "regime_env_kwargs", "base_params_of",
           "REGIME_SCENARIOS", "get_regime_scenario", "register_regime_scenario"]


class RegimeError(LobworldError):
    """An unknown regime preset, a bad :class:`Regime` field, or a regime on a non-parametric market."""


@dataclass(frozen=True)
class Regime(Replaceable):
    """A stylised market condition applied to a base :class:`ParametricParams`."""

    name: str
    """Label used in reports and on the command line."""
    description: str
    """One line for reports."""
    sigma_mult: float = 1.0
    """Multiplier of the mid volatility ``sigma``."""
    spread_mult: float = 1.0
    """Multiplier of the mean quoted spread (never below one tick)."""
    volume_mult: float = 1.0
    """Multiplier of the market volume rate."""
    impact_mult: float = 1.0
    """Multiplier of the temporary (``eta``, ``sqrt_y``) and permanent (``gamma``) impact."""
    drift_bps_per_hour: float = 0.0
    """Mid drift, basis points of ``s0`` per hour (negative: falling market)."""

    def __post_init__(self) -> None:
        for f in ("sigma_mult", "spread_mult", "volume_mult", "impact_mult"):
            non_negative(f"Regime.{f}", getattr(self, f), error=RegimeError)

    def apply(self, p: ParametricParams) -> ParametricParams:
        """The transformed parameters (``p`` is not modified)."""
        return p.replace(
            sigma=p.sigma * self.sigma_mult,
            spread=max(p.spread * self.spread_mult, p.tick),
            volume_rate=p.volume_rate * self.volume_mult,
            eta=p.eta * self.impact_mult,
            sqrt_y=p.sqrt_y * self.impact_mult,
            gamma=p.gamma * self.impact_mult,
            mu=p.mu + self.drift_bps_per_hour * 1e-4 * p.s0 / 3600.0,
        )


REGIMES: ScenarioRegistry = ScenarioRegistry("regime", Regime, error=RegimeError, unknown_label="scenario", items=(
    Regime("calm", "quiet market: half the volatility, tighter spread, more volume",
           sigma_mult=0.5, spread_mult=0.8, volume_mult=1.2, impact_mult=0.8),
    Regime("normal", "base parameters (calibrated GOOG 2012-06-21 unless conditioned on history)"),
    Regime("volatile", "twice the volatility, wider spread, higher impact",
           sigma_mult=2.0, spread_mult=1.5, volume_mult=1.3, impact_mult=1.5),
    Regime("illiquid", "thin market: 30% of the volume, double spread, triple impact",
           sigma_mult=1.2, spread_mult=2.0, volume_mult=0.3, impact_mult=3.0),
    Regime("trending", "falling market: -50 bps per hour drift (adverse to a seller)",
           drift_bps_per_hour=-50.0),
    Regime("trending_up", "rising market: +50 bps per hour drift (adverse to a buyer)",
           drift_bps_per_hour=50.0),
))
"""Regime presets by name (a :class:`~lobworld.envs.registry.ScenarioRegistry`)."""
REGIME_SCENARIOS = REGIMES
"""The same table under the name every scenario registry follows (``<KIND>_SCENARIOS``)."""


def get_regime_scenario(name: str | Regime) -> Regime:
    """The preset ``name`` (a :class:`Regime` passes through) or a :class:`RegimeError` listing the known ones."""
    return REGIMES.lookup(name)


def register_regime_scenario(regime: Regime, *, overwrite: bool = False) -> Regime:
    """Add ``regime`` to :data:`REGIME_SCENARIOS` under its name; a different regime of the same name is
    refused unless ``overwrite`` (registering an equal one again is a no-op)."""
    return REGIMES.register(regime, overwrite=overwrite)


get_regime = get_regime_scenario
"""The short name of :func:`get_regime_scenario`."""


def base_params_of(env_kwargs: dict[str, Any]) -> ParametricParams:
    """The parametric base of an env's ``dynamics`` keyword (default: calibrated parameters)."""
    dyn = env_kwargs.get("dynamics", "parametric")
    if dyn is None or dyn == "parametric":
        return ParametricParams()
    if isinstance(dyn, ParametricParams):
        return dyn
    if isinstance(dyn, ParametricDynamics) and isinstance(dyn.params, ParametricParams):
        return dyn.params
    raise RegimeError(f"regime scenarios need parametric dynamics; the env uses {dyn!r}")


def regime_env_kwargs(regime: str | Regime, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``env_kwargs`` with ``dynamics`` replaced by the regime applied to its parametric base."""
    r = get_regime(regime) if isinstance(regime, str) else regime
    kw = dict(env_kwargs or {})
    kw["dynamics"] = ParametricDynamics(r.apply(base_params_of(kw)))
    return kw


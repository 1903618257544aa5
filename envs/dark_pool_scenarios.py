"""Dark-pool venue scenarios for ``LOB-DarkPool-v0``.

A :class:`DarkPoolScenario` says how the hidden liquidity, price improvement and
toxicity of each dark pool are drawn at the start of every episode, and how they
evolve within it. All of this is *generated* (synthetic) liquidity, not data.

Hidden liquidity of dark pool ``k`` at one step (shares, integer) is drawn iid
given the venue's parameters::

    s = 0                                   with probability p_zero
    s = floor(scale * U ** (-1 / shape))    otherwise, family "pareto"   (U ~ Uniform(0, 1))
    s = floor(scale * exp(shape * Z))       otherwise, family "lognormal" (Z ~ N(0, 1))
    s = min(s, liquidity_cap)

so ``P(s >= x) = (1 - p_zero) * min(1, (scale / x) ** shape)`` for ``0 < x <= cap`` in
the Pareto family (tail index ``shape``; a heavy tail and many zeros).

Per episode each pool draws ``p_zero ~ U(p_zero)``, ``log(scale) ~ U(log scale)``,
``shape ~ U(shape)``, ``price_improvement ~ U(price_improvement)`` and, with probability
``toxic_prob``, a toxicity ``~ U(toxicity)`` (else 0). ``venues`` pins every pool's
parameters instead (no per-episode draw).

Within the episode:

* ``drift_sd > 0`` ("drifting"): every step ``log(scale)`` and ``logit(p_zero)`` of each
  pool take an independent Gaussian random-walk step of standard deviation ``drift_sd``.
* ``adversarial > 0`` ("adversarial"): each pool keeps a pressure ``P_k`` = exponentially
  weighted share of the agent's dark allocation sent to it (weight ``pressure_rate`` per
  step); its effective scale is ``scale * exp(-adversarial * P_k)``, so liquidity dries
  up where the agent allocates most.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from lobworld._checks import in_range, non_negative, positive
from lobworld._config import Replaceable
from lobworld.envs.registry import ScenarioRegistry
from lobworld.errors import LobworldError

__all__ = [
    "DarkPoolScenarioError",
    "VenueSpec",
    "DarkPoolScenario",
    "DARK_POOL_SCENARIOS",
    "get_dark_pool_scenario",
    "register_dark_pool_scenario",
    "SCENARIOS",
    "get_scenario",
    "register_scenario",
]


class DarkPoolScenarioError(LobworldError):
    """A bad dark-pool scenario: a field out of range, an unknown or duplicate name."""


@dataclass(frozen=True)
class VenueSpec(Replaceable):
    """Fixed parameters of one dark pool (used by ``DarkPoolScenario.venues``)."""

    p_zero: float = 0.5
    """Probability that the pool has no hidden liquidity at a step (0 <= p_zero < 1)."""
    scale: float = 50.0
    """Scale of the non-zero liquidity (shares): Pareto minimum / lognormal median."""
    shape: float = 1.5
    """Pareto tail index alpha (> 0), or lognormal log-sd (> 0)."""
    price_improvement: float = 1.0
    """Price improvement of a fill as a fraction of the lit half-spread (1 = fill at the mid)."""
    toxicity: float = 0.0
    """Adverse selection: mid move against the agent, bps of mid per 100 shares filled (>= 0)."""

    def __post_init__(self) -> None:
        _check_range("VenueSpec.p_zero", (self.p_zero, self.p_zero), 0.0, 1.0, hi_open=True)
        positive("VenueSpec.scale", self.scale, error=DarkPoolScenarioError)
        positive("VenueSpec.shape", self.shape, error=DarkPoolScenarioError)
        _check_range("VenueSpec.price_improvement", (self.price_improvement,) * 2, 0.0, 1.0)
        _check_range("VenueSpec.toxicity", (self.toxicity,) * 2, 0.0, math.inf)


def _check_range(name: str, r, lo: float, hi: float, hi_open: bool = False) -> None:
    try:
        a, b = (float(r[0]), float(r[1]))
        if len(r) != 2:
            raise TypeError
    except (TypeError, ValueError, IndexError) as exc:
        raise DarkPoolScenarioError(f"{name} must be a (low, high) pair of numbers, got {r!r}") from exc
    if not (math.isfinite(a) and (math.isfinite(b) or hi == math.inf)):
        raise DarkPoolScenarioError(f"{name} must be finite, got {r!r}")
    if a > b:
        raise DarkPoolScenarioError(f"{name}: low {a} > high {b}")
    if a < lo or b > hi or (hi_open and b >= hi):
        bracket = ")" if hi_open else "]"
        raise DarkPoolScenarioError(f"{name} must lie in [{lo}, {hi}{bracket}, got {r!r}")


@dataclass(frozen=True)
class DarkPoolScenario(Replaceable):
    """How dark-pool liquidity, price improvement and toxicity are generated.

    Ranges are ``(low, high)`` pairs; each episode draws every pool's parameters
    uniformly from them (``scale`` log-uniformly). Units are given per field.
    """

    name: str = "custom"
    """Registry name."""
    description: str = ""
    """One-line description for listings and docs."""
    family: str = "pareto"
    """Non-zero liquidity family: ``"pareto"`` or ``"lognormal"``."""
    p_zero: tuple[float, float] = (0.3, 0.7)
    """Range of the per-step probability of no hidden liquidity."""
    scale: tuple[float, float] = (15.0, 150.0)
    """Range of the liquidity scale (shares), drawn log-uniformly."""
    shape: tuple[float, float] = (1.2, 2.5)
    """Range of the Pareto tail index (or lognormal log-sd)."""
    price_improvement: tuple[float, float] = (0.8, 1.0)
    """Range of price improvement, fraction of the lit half-spread (1 = mid-point fill)."""
    toxic_prob: float = 0.25
    """Probability that a pool is toxic in an episode."""
    toxicity: tuple[float, float] = (0.2, 1.0)
    """Range of a toxic pool's adverse selection (bps of mid per 100 shares filled)."""
    drift_sd: float = 0.0
    """Per-step random-walk sd of log(scale) and logit(p_zero) (0: stationary within episode)."""
    adversarial: float = 0.0
    """Liquidity shrink strength: effective scale = scale * exp(-adversarial * pressure)."""
    pressure_rate: float = 0.3
    """Per-step weight of the exponentially weighted allocation share ("pressure"), in (0, 1]."""
    liquidity_cap: float = math.inf
    """Hidden liquidity per pool per step never exceeds this (shares); inf = no cap."""
    venues: tuple[VenueSpec, ...] | None = field(default=None)
    """Fixed per-pool parameters (length = number of dark pools); overrides the ranges."""

    def __post_init__(self) -> None:
        if self.family not in ("pareto", "lognormal"):
            raise DarkPoolScenarioError(f"DarkPoolScenario.family must be 'pareto' or 'lognormal', got {self.family!r}")
        _check_range("DarkPoolScenario.p_zero", self.p_zero, 0.0, 1.0, hi_open=True)
        _check_range("DarkPoolScenario.scale", self.scale, 0.0, math.inf)
        if self.scale[0] <= 0 or not math.isfinite(self.scale[1]):
            raise DarkPoolScenarioError(f"DarkPoolScenario.scale must be finite and > 0, got {self.scale!r}")
        _check_range("DarkPoolScenario.shape", self.shape, 0.0, math.inf)
        if self.shape[0] <= 0 or not math.isfinite(self.shape[1]):
            raise DarkPoolScenarioError(f"DarkPoolScenario.shape must be finite and > 0, got {self.shape!r}")
        _check_range("DarkPoolScenario.price_improvement", self.price_improvement, 0.0, 1.0)
        _check_range("DarkPoolScenario.toxic_prob", (self.toxic_prob,) * 2, 0.0, 1.0)
        _check_range("DarkPoolScenario.toxicity", self.toxicity, 0.0, math.inf)
        if not math.isfinite(self.toxicity[1]):
            raise DarkPoolScenarioError("DarkPoolScenario.toxicity must be finite")
        for f in ("drift_sd", "adversarial"):
            non_negative(f"DarkPoolScenario.{f}", getattr(self, f), error=DarkPoolScenarioError)
        in_range("DarkPoolScenario.pressure_rate", self.pressure_rate, 0.0, 1.0, lo_open=True, error=DarkPoolScenarioError)
        if not (self.liquidity_cap > 0):
            raise DarkPoolScenarioError(f"DarkPoolScenario.liquidity_cap must be > 0 shares, got {self.liquidity_cap!r}")
        if self.venues is not None:
            if len(self.venues) == 0 or not all(isinstance(v, VenueSpec) for v in self.venues):
                raise DarkPoolScenarioError("DarkPoolScenario.venues must be a non-empty tuple of VenueSpec")
            object.__setattr__(self, "venues", tuple(self.venues))

    def to_dict(self) -> dict:
        return asdict(self)


DARK_POOL_SCENARIOS: ScenarioRegistry = ScenarioRegistry("dark-pool", DarkPoolScenario, error=DarkPoolScenarioError)
"""Dark-pool scenarios by name (a :class:`~lobworld.envs.registry.ScenarioRegistry`)."""
SCENARIOS = DARK_POOL_SCENARIOS
"""The same table under its old name (kept for one release)."""


def get_dark_pool_scenario(s: str | DarkPoolScenario) -> DarkPoolScenario:
    """The scenario named ``s`` (a :class:`DarkPoolScenario` passes through); :class:`DarkPoolScenarioError`
    listing the known ones."""
    return DARK_POOL_SCENARIOS.lookup(s)


def register_dark_pool_scenario(s: DarkPoolScenario, *, overwrite: bool = False) -> DarkPoolScenario:
    """Add ``s`` to :data:`DARK_POOL_SCENARIOS` under ``s.name``; a different scenario of the same name is
    refused unless ``overwrite`` (registering an equal one again is a no-op)."""
    return DARK_POOL_SCENARIOS.register(s, overwrite=overwrite)


def register_scenario(s: DarkPoolScenario) -> DarkPoolScenario:
    """Old name (kept for one release): as :func:`register_dark_pool_scenario`, but any scenario already
    registered under ``s.name`` is refused."""
    if isinstance(s, DarkPoolScenario) and s.name in DARK_POOL_SCENARIOS:
        raise DarkPoolScenarioError(f"dark-pool scenario {s.name!r} already registered")
    return DARK_POOL_SCENARIOS.register(s)


get_scenario = get_dark_pool_scenario
"""Old name of :func:`get_dark_pool_scenario` (kept for one release)."""


register_dark_pool_scenario(DarkPoolScenario(
    name="stationary",
    description="Per-episode random zero-inflated Pareto pools, fixed within the episode; 1 in 4 toxic.",
))
register_dark_pool_scenario(DarkPoolScenario(
    name="drifting",
    description="As stationary, but log-scale and logit(p_zero) random-walk (sd 0.1 per step).",
    drift_sd=0.1,
))
register_dark_pool_scenario(DarkPoolScenario(
    name="adversarial",
    description="Liquidity shrinks where the agent allocates most (scale * exp(-3 * pressure)); half the pools toxic.",
    adversarial=3.0,
    toxic_prob=0.5,
    toxicity=(0.5, 2.0),
))
register_dark_pool_scenario(DarkPoolScenario(
    name="lognormal",
    description="Stationary, zero-inflated lognormal pools (log-sd 0.5 to 1.5) instead of Pareto.",
    family="lognormal",
    shape=(0.5, 1.5),
))
register_dark_pool_scenario(DarkPoolScenario(
    name="fixed4",
    description="Four fixed pools (deep/shallow, one toxic): a stationary problem to learn across episodes.",
    venues=(
        VenueSpec(p_zero=0.6, scale=20.0, shape=1.3, price_improvement=1.0, toxicity=0.0),
        VenueSpec(p_zero=0.3, scale=60.0, shape=2.0, price_improvement=0.9, toxicity=0.0),
        VenueSpec(p_zero=0.8, scale=100.0, shape=1.1, price_improvement=1.0, toxicity=0.0),
        VenueSpec(p_zero=0.5, scale=30.0, shape=2.5, price_improvement=1.0, toxicity=0.5),
    ),
))

"""Latency scenarios: how long an order or cancel takes to become live at the venue.

A :class:`LatencyScenario` is the one-way latency from the agent's decision to
the matching engine, plus a Gaussian jitter. In the market-making env the
agent decides at the start of each step (on the state at that instant); a new
quote, a price change or a cancel reaches the book ``one_way_us + jitter_us *
z`` microseconds later (``z`` standard normal from the env's dedicated latency
stream, floored at 0). Until then the previous quote stays live and keeps
trading against the market orders that arrive in the meantime, so a slow
agent is picked off by the flow that arrives before its update (adverse
selection) and joins the queue later (behind the limit orders that arrived
while its message was in flight).

Presets (order of magnitude, not measurements of a specific venue):

=============  ==========  =========  ==========================================
name           one way     jitter     meaning
=============  ==========  =========  ==========================================
``none``       0 us        0 us       idealised instant access (textbook models)
``colocated``  25 us       5 us       server in the exchange's data centre
``proximity``  200 us      30 us      hosting near the venue
``cloud``      2 ms        200 us     public cloud region near the venue
``retail``     50 ms       5 ms       retail broker API over the internet
=============  ==========  =========  ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

__all__ = [
    "LatencyScenario",
    "LATENCY_SCENARIOS",
    "get_latency_scenario",
    "register_latency_scenario",
    "resolve_latency",
    "random_latency_sampler",
]


@dataclass(frozen=True)
class LatencyScenario:
    """One-way order-entry latency with Gaussian jitter."""

    name: str
    """Label of the scenario (used in reports; user-defined names are free)."""
    one_way_us: float
    """Mean one-way latency from decision to the matching engine (microseconds, >= 0)."""
    jitter_us: float = 0.0
    """Standard deviation of the latency (microseconds, >= 0); draws below 0 are floored at 0."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LatencyScenario.name must be a non-empty string, got {self.name!r}")
        for f in ("one_way_us", "jitter_us"):
            v = getattr(self, f)
            if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"LatencyScenario.{f} must be a finite number >= 0 (microseconds), got {v!r}")

    @property
    def one_way_s(self) -> float:
        """Mean one-way latency in seconds."""
        return float(self.one_way_us) * 1e-6

    @property
    def jitter_s(self) -> float:
        """Jitter standard deviation in seconds."""
        return float(self.jitter_us) * 1e-6

    @property
    def scaled_id(self) -> float:
        """Observation feature: ``log10(1 + one_way_us) / 5`` (0 instant, 0.28 colocated, 0.94 retail)."""
        return math.log10(1.0 + float(self.one_way_us)) / 5.0


LATENCY_SCENARIOS: dict[str, LatencyScenario] = {
    s.name: s
    for s in (
        LatencyScenario("none", 0.0, 0.0),
        LatencyScenario("colocated", 25.0, 5.0),
        LatencyScenario("proximity", 200.0, 30.0),
        LatencyScenario("cloud", 2_000.0, 200.0),
        LatencyScenario("retail", 50_000.0, 5_000.0),
    )
}
"""Preset scenarios by name (see the module docstring)."""


def get_latency_scenario(name: str) -> LatencyScenario:
    """Return the preset (or registered) scenario ``name``; raise ``KeyError`` listing the known names."""
    try:
        return LATENCY_SCENARIOS[name]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown latency scenario {name!r}; known: {', '.join(sorted(LATENCY_SCENARIOS))}"
        ) from None


def register_latency_scenario(scenario: LatencyScenario, *, overwrite: bool = False) -> LatencyScenario:
    """Add a user-defined scenario to :data:`LATENCY_SCENARIOS` (refuses to replace one unless ``overwrite``)."""
    if not isinstance(scenario, LatencyScenario):
        raise TypeError(f"expected a LatencyScenario, got {type(scenario).__name__}")
    if scenario.name in LATENCY_SCENARIOS and not overwrite and LATENCY_SCENARIOS[scenario.name] != scenario:
        raise ValueError(f"latency scenario {scenario.name!r} already exists; pass overwrite=True to replace it")
    LATENCY_SCENARIOS[scenario.name] = scenario
    return scenario


LatencySpec = Union[str, LatencyScenario, Sequence[Union[str, LatencyScenario]], Callable[[int], Union[str, LatencyScenario]]]


def _one(spec) -> LatencyScenario:
    if isinstance(spec, LatencyScenario):
        return spec
    if isinstance(spec, str):
        return get_latency_scenario(spec)
    raise TypeError(f"a latency scenario must be a name or a LatencyScenario, got {type(spec).__name__}")


def resolve_latency(spec: LatencySpec, n_envs: int) -> list[LatencyScenario]:
    """Expand the ``latency=`` env argument to one scenario per env.

    ``spec`` is a name, a :class:`LatencyScenario` (every env), a sequence of
    exactly ``n_envs`` of them (env ``i`` gets ``spec[i]``), or a callable
    ``f(i) -> scenario`` evaluated once per env index at construction (see
    :func:`random_latency_sampler` for a seeded random one).
    """
    if isinstance(spec, (str, LatencyScenario)):
        return [_one(spec)] * n_envs
    if callable(spec):
        return [_one(spec(i)) for i in range(n_envs)]
    if isinstance(spec, Sequence):
        if len(spec) != n_envs:
            raise ValueError(f"latency: got a list of {len(spec)} scenarios for {n_envs} envs (need exactly one per env)")
        return [_one(s) for s in spec]
    raise TypeError(f"latency must be a name, a LatencyScenario, a list of them or a callable, got {type(spec).__name__}")


def random_latency_sampler(
    scenarios: Sequence[str | LatencyScenario] = ("colocated", "proximity", "cloud", "retail"),
    *,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> Callable[[int], LatencyScenario]:
    """Return ``f(i)`` drawing env ``i``'s scenario from ``scenarios`` (probabilities ``weights``).

    The draw for env ``i`` uses ``numpy.random.default_rng([seed, i])``, so it
    depends only on ``(seed, i)``: a batch and a single env built with the
    same sampler and index agree.
    """
    pool = [_one(s) for s in scenarios]
    if not pool:
        raise ValueError("random_latency_sampler needs at least one scenario")
    p = None
    if weights is not None:
        p = np.asarray(weights, dtype=float)
        if p.shape != (len(pool),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"weights must be {len(pool)} non-negative numbers with a positive sum, got {weights!r}")
        p = p / p.sum()

    def sample(i: int) -> LatencyScenario:
        rng = np.random.default_rng([int(seed), int(i)])
        return pool[int(rng.choice(len(pool), p=p))]

    return sample

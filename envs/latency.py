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

Execution envs (:class:`LatencyDynamics`): the execution envs trade one child order per
step through a :class:`~lobworld.envs.dynamics.MarketDynamics`; the wrapper
``LatencyDynamics(inner, latency, adverse_bps_per_s)`` makes that child order reach the
market ``L = max(0, one_way + jitter * z_L)`` seconds after the decision, so it executes at
the inner dynamics' price shifted by the mid's move over ``L``::

    price = inner_price + sigma * sqrt(L) * z + side(q) * adverse_bps_per_s * 1e-4 * mid * L

``z``, ``z_L`` standard normals from the wrapper's own xoshiro stream per env, drawn at
every step whatever ``q`` is (common random numbers hold); ``sigma`` the inner market's
volatility at the decision (``SIGMA`` column, USD per sqrt(s)); ``mid`` the mid at the
decision; ``side(q)`` = +1 buy, -1 sell, 0 no trade. Per share, the extra cost
``side(q) * (price - inner_price)`` has mean ``adverse_bps_per_s * L`` bps of the mid and
variance ``sigma^2 L`` (USD^2). The wrapper leaves the inner market untouched: the inner
dynamics draws exactly what it draws unwrapped, so the mid path is the same in every
latency scenario (runs across latency scenarios are paired), and ``L = 0`` is bit-identical
to no wrapper. The move over ``L`` is drawn independently of the step's mid move (an
approximation that is harmless while ``L`` is much smaller than the step ``dt``).

The wrapper's stream of env ``i`` is seeded at every reset from the env's market stream
state, mixed by splitmix64 without advancing it (so the inner dynamics' draws are
unchanged); it appends two state columns after the inner ones: the last child order's
extra cost per share (USD, signed by side: positive = worse) and its latency (seconds).
One compiled wrapper exists per inner dynamics class.

Orders of magnitude (GOOG calibration, sigma 0.0359 USD/sqrt(s), mid 570.78 USD, no
adverse drift): the extra cost per share of a child order has sd ``sigma sqrt(L)`` =
0.003 bps (colocated), 0.009 bps (proximity), 0.028 bps (cloud) and 0.14 bps (retail,
50 ms): negligible against a shortfall of several bps for 1-minute child orders. Latency matters for an
execution strategy only through adverse selection (``adverse_bps_per_s``) or for much
faster strategies (market making, where it is modelled in the env).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
from numba import njit

from lobworld.envs.dynamics import MID, SIGMA, MarketDynamics, make_dynamics
from lobworld.envs.registry import ScenarioRegistry
from lobworld.envs.rng import normal
from lobworld._checks import non_negative
from lobworld.errors import LobworldError

__all__ = [
    "LatencyError",
    "UnknownLatencyError",
    "LatencyDynamics",
    "LAT_EXTRA_COST",
    "LAT_DELAY",
    "LatencyScenario",
    "LATENCY_SCENARIOS",
    "get_latency_scenario",
    "register_latency_scenario",
    "resolve_latency",
    "random_latency_sampler",
]


class LatencyError(LobworldError):
    """A bad latency scenario or latency argument (field out of range, duplicate name, wrong count)."""


class UnknownLatencyError(LatencyError, KeyError):
    """An unknown latency scenario name (also a ``KeyError``, what a name lookup raises)."""

    def __str__(self) -> str:  # the message, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


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
            raise LatencyError(f"LatencyScenario.name must be a non-empty string, got {self.name!r}")
        for f in ("one_way_us", "jitter_us"):
            non_negative(f"LatencyScenario.{f}", getattr(self, f), error=LatencyError, unit="microseconds")

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


LATENCY_SCENARIOS: ScenarioRegistry = ScenarioRegistry(
    "latency", LatencyScenario, error=LatencyError, unknown_error=UnknownLatencyError, items=(
        LatencyScenario("none", 0.0, 0.0),
        LatencyScenario("colocated", 25.0, 5.0),
        LatencyScenario("proximity", 200.0, 30.0),
        LatencyScenario("cloud", 2_000.0, 200.0),
        LatencyScenario("retail", 50_000.0, 5_000.0),
    ))
"""Preset scenarios by name (see the module docstring; a :class:`~lobworld.envs.registry.ScenarioRegistry`)."""


def get_latency_scenario(name: str) -> LatencyScenario:
    """Return the preset (or registered) scenario ``name`` (a :class:`LatencyScenario` passes through);
    raise :class:`UnknownLatencyError` (a ``KeyError``) listing the known names."""
    return LATENCY_SCENARIOS.lookup(name)


def register_latency_scenario(scenario: LatencyScenario, *, overwrite: bool = False) -> LatencyScenario:
    """Add a user-defined scenario to :data:`LATENCY_SCENARIOS` (refuses to replace a different one of the
    same name unless ``overwrite``; an equal one again is a no-op)."""
    return LATENCY_SCENARIOS.register(scenario, overwrite=overwrite)


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
            raise LatencyError(f"latency: got a list of {len(spec)} scenarios for {n_envs} envs (need exactly one per env)")
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
        raise LatencyError("random_latency_sampler needs at least one scenario")
    p = None
    if weights is not None:
        p = np.asarray(weights, dtype=float)
        if p.shape != (len(pool),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise LatencyError(f"weights must be {len(pool)} non-negative numbers with a positive sum, got {weights!r}")
        p = p / p.sum()

    def sample(i: int) -> LatencyScenario:
        rng = np.random.default_rng([int(seed), int(i)])
        return pool[int(rng.choice(len(pool), p=p))]

    return sample


# ---------------------------------------------------------------------------
# latency wrapper for the execution envs' market dynamics
# ---------------------------------------------------------------------------
#: wrapper state columns, counted after the inner dynamics' columns
LAT_EXTRA_COST = 0  #: last child order's extra cost per share from latency (USD, + = worse for the agent)
LAT_DELAY = 1  #: last child order's latency (seconds)
N_LAT_STATE = 2
#: wrapper parameter columns (per env)
L_ONE_WAY, L_JITTER, L_ADVERSE, L_COL = range(4)

_U64 = np.uint64
_SALT = np.array([0x6C61746E63793031, 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0x8CB92BA72F3D8DD7],
                 dtype=np.uint64)


@njit(inline="always")
def _splitmix64(x):
    z = x + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


_WRAPPERS: dict[tuple, tuple] = {}


def _build_wrapper(inner_reset, inner_step):
    @njit
    def reset_fn(i, row, args, st):
        L = args[0]
        S = args[1]
        inner_args = args[2:]
        acc = _U64(0)
        for j in range(4):  # seed from the market stream's state without advancing it
            S[i, j] = _splitmix64(st[j] ^ _SALT[j])
            acc |= S[i, j]
        if acc == _U64(0):
            S[i, 0] = _SALT[1]
        inner_reset(i, row, inner_args, st)
        c = int(L[i, L_COL])
        row[c + LAT_EXTRA_COST] = 0.0
        row[c + LAT_DELAY] = 0.0

    @njit
    def step_fn(i, row, args, st, q, vol_mult):
        L = args[0]
        ls = args[1][i]
        inner_args = args[2:]
        z = normal(ls)  # always two draws: common random numbers whatever q is
        z_l = normal(ls)
        sigma = row[SIGMA]
        mid = row[MID]
        price = inner_step(i, row, inner_args, st, q, vol_mult)
        delay = L[i, L_ONE_WAY] + L[i, L_JITTER] * z_l
        if delay < 0.0:
            delay = 0.0
        sgn = 1.0 if q > 0.0 else (-1.0 if q < 0.0 else 0.0)
        extra = 0.0
        if delay > 0.0 and sgn != 0.0:
            shift = sigma * math.sqrt(delay) * z + sgn * L[i, L_ADVERSE] * 1e-4 * mid * delay
            price = price + shift
            extra = sgn * shift
        c = int(L[i, L_COL])
        row[c + LAT_EXTRA_COST] = extra
        row[c + LAT_DELAY] = delay
        return price

    return reset_fn, step_fn


class LatencyDynamics(MarketDynamics):
    """Order-entry latency around any market dynamics (see the module docstring).

    ``inner``: ``"parametric"``, ``"learned"`` or a :class:`MarketDynamics`; ``latency``: a
    scenario name, a :class:`LatencyScenario`, one per env, or ``f(i) -> scenario``
    (:func:`resolve_latency`); ``adverse_bps_per_s``: drift of the mid against the order
    while it is in flight (bps of the mid per second of latency, >= 0).

    ``args(n_envs, dt)`` = ``(L, S, *inner.args(n_envs, dt))``: ``L`` ``(n_envs, 4)`` float64
    (one-way latency s, jitter s, adverse bps/s, first wrapper state column), ``S``
    ``(n_envs, 4)`` uint64 (the wrapper's xoshiro stream per env), then the inner arguments
    unchanged (a flat tuple, as the parallel kernels need).

    ``params`` is the inner dynamics' ``params`` (so baselines that read market parameters
    see the wrapped market).
    """

    name = "latency"

    def __init__(self, inner: str | MarketDynamics | None = "parametric", latency: LatencySpec = "none",
                 adverse_bps_per_s: float = 0.0):
        if isinstance(inner, LatencyDynamics):
            raise LatencyError("LatencyDynamics: the inner dynamics already has a latency wrapper")
        self.inner = make_dynamics(inner)
        self.adverse_bps_per_s = float(non_negative("LatencyDynamics.adverse_bps_per_s", adverse_bps_per_s,
                                                    error=LatencyError))
        if isinstance(latency, (str, LatencyScenario)):
            resolve_latency(latency, 1)  # unknown names fail here, not at the first reset
        self.latency = latency
        key = (self.inner.reset_fn, self.inner.step_fn)
        if key not in _WRAPPERS:
            _WRAPPERS[key] = _build_wrapper(self.inner.reset_fn, self.inner.step_fn)
        self.reset_fn, self.step_fn = _WRAPPERS[key]
        self.n_state = int(self.inner.n_state) + N_LAT_STATE

    @property
    def params(self):
        return getattr(self.inner, "params", None)

    @property
    def col(self) -> int:
        """Index of the first wrapper state column (``LAT_EXTRA_COST``) in the market row."""
        return int(self.inner.n_state)

    def describe(self) -> str:
        lat = self.latency
        lat = lat.name if isinstance(lat, LatencyScenario) else (lat if isinstance(lat, str) else "per-env")
        adv = f", adverse {self.adverse_bps_per_s:g} bps/s" if self.adverse_bps_per_s else ""
        return f"{getattr(self.inner, 'name', type(self.inner).__name__)} + latency {lat}{adv}"

    def args(self, n_envs: int, dt: float) -> tuple:
        scen = resolve_latency(self.latency, n_envs)
        L = np.empty((n_envs, 4), dtype=np.float64)
        L[:, L_ONE_WAY] = [s.one_way_s for s in scen]
        L[:, L_JITTER] = [s.jitter_s for s in scen]
        L[:, L_ADVERSE] = self.adverse_bps_per_s
        L[:, L_COL] = self.col
        S = np.zeros((n_envs, 4), dtype=np.uint64)
        return (L, S, *self.inner.args(n_envs, dt))

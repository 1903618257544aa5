"""Baseline strategies by name, for every registered env id.

:func:`make_baseline` turns a name into a batched policy ``policy(obs (n, d)) -> actions``
built for a concrete core (its config, market parameters and batch size);
:func:`baseline_names` lists the names valid for an env id. Used by
``lobworld counterfactual``, ``lobworld evaluate`` and the pre-trade report.

Names (case-insensitive; ``:X`` sets the strategy's one parameter). The valid names of an id are
its spec's :attr:`~lobworld.envs.spec.EnvSpec.baselines` (:data:`lobworld.envs.spec.ENV_SPECS`);
:data:`BUILDERS` maps each family to the function that implements them:

=======================================  =====================================================================
env ids                                  names
=======================================  =====================================================================
``LOB-Execution-v0``, ``-VWAP-``,        ``twap``, ``vwap``, ``pov`` / ``pov:RATE`` (default 0.1),
``-TWAP-``                               ``ac`` (the env's ``risk_aversion``) / ``ac:LAMBDA`` (1/bps),
                                         ``aggressive``
``LOB-MarketMaking-v0``,                 ``avellaneda-stoikov`` / ``as`` [``:GAMMA``, 1/(USD lot), default 0.01],
``LOB-MarketMaking-Discrete-v0``         ``as-symmetric`` [``:GAMMA``], ``cartea-jaimungal`` / ``cj``
                                         [``:PHI``, USD/(lot^2 s), default the env's ``phi`` per lot],
                                         ``fixed-spread`` [``:TICKS``, default 10], ``random`` [``:SEED``]
``LOB-DarkPool-v0``                      ``uniform``, ``lit-only``, ``ganchev-km`` / ``ganchev``, ``oracle``
``LOB-TickMarketMaking-v0``              ``fixed-spread`` [``:TICKS`` from the mid], ``avellaneda-stoikov`` / ``as``
                                         [``:GAMMA``, per tick-share], ``cartea-jaimungal`` / ``cj`` [``:PHI``],
                                         ``random`` [``:SEED``] (calibrated on a pilot of the world:
                                         :mod:`lobworld.agents.tick_baselines`)
``LOB-TickExecution-v0``                 ``twap``, ``vwap``, ``pov`` [``:RATE``], ``ac`` [``:LAMBDA``, 1/bps,
                                         default 0 = TWAP], ``passive-first``, ``aggressive``
=======================================  =====================================================================

Market-making baselines quote ``discrete_size`` shares (one lot) per side. On the
discrete id their continuous quotes are mapped to the nearest grid action (offsets
``discrete_offsets``; a side with size 0 -> the cancel action). ``random`` draws from
its own generator seeded ``SEED`` (default: the run's seed), one batch draw per step,
so its actions on path ``i`` depend on the batch size.

The dark-pool learner (``ganchev-km``) is updated after every step from the
observations (:meth:`DarkPoolBaseline.after_step`); it learns within each episode
(pools are redrawn per episode). Policies may define ``after_step(core)``; the
counterfactual simulator calls it after every batched step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lobworld.envs import spec as _spec
from lobworld.errors import LobworldError

__all__ = ["BaselineError", "baseline_names", "make_baseline", "env_family", "DiscreteQuotes",
           "DarkPoolBaseline", "FAMILY_NAMES", "BUILDERS"]

Policy = Callable[[np.ndarray], np.ndarray]

FAMILY_NAMES: Mapping[str, tuple[str, ...]] = _spec.family_view("baselines")
"""Valid baseline names per env family (``:X`` marks an optional parameter): a read-only view of
:attr:`lobworld.envs.spec.EnvSpec.baselines`, kept for one release (read the spec instead)."""

#: default Avellaneda-Stoikov risk aversion, 1/(USD lot) with a lot = ``discrete_size`` shares
AS_GAMMA = 0.01
#: default fixed-spread offset (ticks from the mid, each side)
FIXED_TICKS = 10.0


class BaselineError(LobworldError):
    """A baseline name that does not exist for the env, or a bad parameter."""


def env_family(env_id: str) -> str | None:
    """The id's family in :data:`lobworld.envs.spec.ENV_SPECS` (``"execution"``, ``"market_making"``,
    ``"dark_pool"``), or None when it is not a lobworld id. Kept for one release: use
    :func:`lobworld.envs.spec.family_of`."""
    return _spec.family_of(env_id)


def baseline_names(env_id: str) -> tuple[str, ...]:
    """Baseline names valid for ``env_id`` (its spec's ``baselines``; empty for ids without a spec)."""
    s = _spec.find_spec(env_id)
    return s.baselines if s is not None else ()


def _unknown(name: str, env_id: str) -> BaselineError:
    names = baseline_names(env_id)
    valid = ", ".join(names) if names else "(no baselines for this id)"
    return BaselineError(f"unknown strategy {name!r} for {env_id}; valid names for {env_id}: {valid}, "
                         "const:X, or a trained MODEL.zip")


def _param(name: str, base: str, arg: str) -> float | None:
    if not arg:
        return None
    try:
        x = float(arg)
    except ValueError:
        raise BaselineError(f"strategy {name!r}: {base}:X needs a number X") from None
    if not math.isfinite(x):
        raise BaselineError(f"strategy {name!r}: {base}:X needs a finite number, got {arg!r}")
    return x


def make_baseline(name: str, env_id: str, core: Any, seed: int = 0) -> Policy:
    """The baseline ``name`` as a batched policy for ``core`` (an env core of ``env_id``).

    Raises :class:`BaselineError` naming the valid names for the env when ``name`` is unknown.
    """
    s = _spec.find_spec(env_id)
    build = BUILDERS.get(s.family) if s is not None else None
    key = name.strip().lower()
    base, _, arg = key.partition(":")
    valid = {_spec.baseline_base(b) for b in s.baselines} if s is not None else set()
    if build is None or base not in valid:
        raise _unknown(name, env_id)
    return build(name, env_id, base, arg, core, seed)


# ---------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------
def _execution(name: str, env_id: str, base: str, arg: str, core: Any, seed: int = 0) -> Policy:
    """Execution baselines of :mod:`lobworld.agents.execution` for the core's config and market.

    Market parameters (AC, POV) come from the core's parametric dynamics (also through a
    latency wrapper); for other dynamics the calibrated defaults are used.
    """
    from lobworld.agents import execution as ex
    from lobworld.envs.dynamics import ParametricParams

    cfg = core.config
    dyn = getattr(core, "dynamics", None)
    dyn = getattr(dyn, "inner", dyn)
    p = getattr(dyn, "params", None)
    params = p if isinstance(p, ParametricParams) else ParametricParams()
    x = _param(name, base, arg)
    if base == "twap" and not arg:
        return ex.twap_policy(cfg.horizon)
    if base == "vwap" and not arg:
        return ex.VWAPPolicy(cfg.horizon, cfg.dt, cfg.profile_coef)
    if base == "aggressive" and not arg:
        return ex.AggressivePolicy()
    try:
        if base == "pov":
            return ex.POVPolicy(rate=0.1 if x is None else x, quantity=cfg.quantity,
                                volume_per_step=params.volume_rate * cfg.dt)
        if base == "ac":
            return ex.almgren_chriss_policy(cfg.risk_aversion if x is None else x, cfg, params)
    except ValueError as exc:
        raise BaselineError(f"strategy {name!r}: {exc}") from None
    raise _unknown(name, env_id)


# ---------------------------------------------------------------------------
# market making
# ---------------------------------------------------------------------------
class DiscreteQuotes:
    """Map continuous quotes ``(n, 4)`` of a market-making baseline to the discrete id's grid.

    Action ``j < m*m`` quotes offsets ``grid[j]`` (bid, ask) in ticks; the nearest grid
    pair (squared distance in ticks) is chosen; a quote with a zero size on either side
    maps to the cancel action ``m*m`` (the grid always quotes both sides).
    """

    def __init__(self, agent: Policy, grid: np.ndarray):
        self.agent = agent
        self.grid = np.asarray(grid, dtype=np.float64)
        self.cancel = len(self.grid)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        a = np.asarray(self.agent(obs), dtype=np.float64)
        d = ((a[:, None, :2] - self.grid[None, :, :]) ** 2).sum(axis=2)
        j = np.argmin(d, axis=1).astype(np.int64)
        return np.where((a[:, 2] > 0) & (a[:, 3] > 0), j, self.cancel)


def _market_making(name: str, env_id: str, base: str, arg: str, core: Any, seed: int) -> Policy:
    from lobworld.agents import market_making as mm

    cfg = core.config
    x = _param(name, base, arg)
    sigma = None
    dyn = getattr(core, "dynamics", None)
    p = getattr(dyn, "params", None)
    if p is not None and hasattr(p, "sigma"):
        sigma = float(p.sigma)
    try:
        if base in ("avellaneda-stoikov", "as", "as-symmetric"):
            gamma = AS_GAMMA if x is None else x
            agent: Policy = mm.AvellanedaStoikovAgent.from_config(
                cfg, gamma=gamma, sigma=sigma, inventory_aware=(base != "as-symmetric"))
        elif base in ("cartea-jaimungal", "cj"):
            agent = mm.CarteaJaimungalAgent.from_config(cfg, phi=x)
        elif base == "fixed-spread":
            ticks = FIXED_TICKS if x is None else x
            if not (0 <= ticks <= cfg.max_offset):
                raise ValueError(f"offset must lie in [0, max_offset={cfg.max_offset}] ticks, got {ticks}")
            agent = mm.FixedSpreadAgent(ticks, ticks, float(cfg.discrete_size))
        elif base == "random":
            if x is not None and (x < 0 or x != int(x)):
                raise ValueError(f"random:SEED needs a non-negative integer seed, got {arg!r}")
            return mm.RandomAgent(core.single_action_space, seed=int(seed if x is None else x))
        else:
            raise _unknown(name, env_id)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, BaselineError):
            raise
        raise BaselineError(f"strategy {name!r}: {exc}") from None
    if getattr(core, "discrete", False):
        return DiscreteQuotes(agent, core.discrete_grid)
    return agent


# ---------------------------------------------------------------------------
# dark pool
# ---------------------------------------------------------------------------
class DarkPoolBaseline:
    """A :mod:`lobworld.agents.dark_pool` policy as ``policy(obs) -> actions`` with learning feedback.

    :meth:`after_step` folds the step's dark allocations and fills into the learner (read
    from the observation; the terminal observation for envs that just finished) and
    resets the learner of finished envs.
    """

    def __init__(self, policy: Any):
        self.policy = policy

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(obs)

    def after_step(self, core: Any) -> None:
        from lobworld.agents.dark_pool import alloc_fill_from_obs

        done = core.terminated | core.truncated
        seen = np.where(done[:, None], core.final_obs, core.obs)
        alloc, fills = alloc_fill_from_obs(seen, core.config)
        self.policy.update(alloc, fills)
        if done.any():
            self.policy.reset(done)


def _dark_pool(name: str, env_id: str, base: str, arg: str, core: Any, seed: int = 0) -> Policy:
    from lobworld.agents import dark_pool as dp

    if arg:
        raise _unknown(name, env_id)
    if base == "uniform":
        pol: Any = dp.UniformPolicy(core.config)
    elif base == "lit-only":
        pol = dp.LitOnlyPolicy(core.config)
    elif base in ("ganchev-km", "ganchev"):
        pol = dp.GanchevPolicy(core.config, core.n_envs, reset_each_episode=True)
    elif base == "oracle":
        pol = dp.OraclePolicy(core)
    else:
        raise _unknown(name, env_id)
    return DarkPoolBaseline(pol)


# ---------------------------------------------------------------------------
# tick-level envs (lobworld.agents.tick_baselines)
# ---------------------------------------------------------------------------
def _tick(name: str, env_id: str, base: str, arg: str, core: Any, seed: int = 0) -> Policy:
    from lobworld.agents import tick_baselines as tb

    try:
        if _spec.get_spec(env_id).family == "tick_execution":
            return tb.make_tick_execution(name, base, arg, core, seed)
        agent = tb.make_tick_market_making(name, base, arg, core, seed)
    except tb.TickBaselineError as exc:
        raise BaselineError(str(exc)) from None
    if getattr(core, "discrete", False) and base != "random":
        return DiscreteQuotes(agent, core.discrete_grid)
    return agent


BUILDERS: dict[str, Callable[..., Policy]] = {
    "execution": _execution,
    "market_making": _market_making,
    "dark_pool": _dark_pool,
    "tick_market_making": _tick,
    "tick_execution": _tick,
}
"""Env family -> ``build(name, env_id, base, arg, core, seed) -> policy``: the implementations of the
names in each family's :attr:`~lobworld.envs.spec.EnvSpec.baselines` (``base``: the name without its
``:X`` parameter, lower case; ``arg``: the parameter text, may be empty)."""

"""One table of every lobworld env id: :data:`ENV_SPECS`.

Everything the project knows about an env id lives in its :class:`EnvSpec`: where the
classes are (Gymnasium registration), the registered keyword arguments, the task metric
and its direction, the secondary metrics the counterfactual reports, the metric's units,
the baseline strategies by name, the pre-trade report's default strategies, the shipped
training defaults and a one-line summary (command-line help, docs). Registration
(:mod:`lobworld._registration`), the baselines (:mod:`lobworld.agents.baselines`), the
training defaults (:mod:`lobworld.agents.config`), the counterfactual and the report
(:mod:`lobworld.scenarios`) and the command line all read this table; nothing matches
substrings of an id.

A new env id is one entry in :data:`ENV_SPECS` plus its module. A new *family* also needs
its baselines implemented in :mod:`lobworld.agents.baselines` (names here, implementations
there) and, for the pre-trade report, its order arguments in :mod:`lobworld.scenarios.report`.

This module sits in the simulation floor and holds strings only: it imports no other
lobworld package (every layer may read it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lobworld._config import Replaceable
from lobworld.errors import LobworldError

__all__ = [
    "EnvSpec",
    "ENV_SPECS",
    "LATENCY_MODELS",
    "UnknownEnvError",
    "get_spec",
    "find_spec",
    "env_ids",
    "specs_by_family",
    "family_of",
    "family_view",
    "baseline_base",
    "markdown_table",
]

#: how latency scenarios (``latency:NAME``) reach an env family:
#: ``"env"`` -- the env's own ``latency`` argument (orders in flight inside the env);
#: ``"wrapper"`` -- :class:`lobworld.envs.latency.LatencyDynamics` around the env's market;
#: ``"none"`` -- the env has no latency model.
LATENCY_MODELS = ("env", "wrapper", "none")


class UnknownEnvError(LobworldError):
    """An env id that is not in :data:`ENV_SPECS` (the message lists the known ids)."""


@dataclass(frozen=True)
class EnvSpec(Replaceable):
    """Everything lobworld knows about one env id (see the module docstring)."""

    id: str
    """Gymnasium id, e.g. ``LOB-Execution-v0``."""
    family: str
    """Env family (``execution``, ``market_making``, ``dark_pool``): ids of one family share a batched
    core, their baselines and their metrics."""
    module: str
    """Module holding the env classes, e.g. ``lobworld.envs.execution``."""
    env_class: str
    """Single-env ``gym.Env`` class name in :attr:`module` (Gymnasium ``entry_point``)."""
    vector_class: str
    """Native batched ``gymnasium.vector.VectorEnv`` class name in :attr:`module` (``vector_entry_point``;
    its ``core_cls`` is the batched core the SB3 face and the counterfactual drive)."""
    default_kwargs: Mapping[str, Any]
    """Registered keyword arguments (read-only; user arguments override them)."""
    metric: str
    """Task metric: the episode-info key every strategy is ranked by."""
    lower_is_better: bool
    """Direction of :attr:`metric`: True for a cost (bps), False for a gain (PnL)."""
    metric_unit: str
    """Short unit of :attr:`metric` for tables and axes (``bps``, ``USD``)."""
    metric_units: str
    """Units of :attr:`metric` in words, with the sign convention (report headers)."""
    secondary_metrics: tuple[str, ...]
    """Further episode-info keys whose means the counterfactual reports (info units)."""
    baselines: tuple[str, ...]
    """Valid baseline names (case-insensitive); ``name:X`` marks the optional parameter of ``name``. The
    implementations are in :mod:`lobworld.agents.baselines`."""
    default_strategies: tuple[str, ...]
    """The pre-trade report's default strategies; the first is the paired-difference benchmark."""
    train_config: str | None
    """File name of the shipped training defaults in ``lobworld/agents/configs/`` (None: none)."""
    latency: str
    """How latency scenarios reach the env: one of :data:`LATENCY_MODELS`."""
    summary: str
    """One line for command-line help and docs."""

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> LobworldError:
            return LobworldError(f"EnvSpec {self.id!r}: {field} {why}")

        for name in ("id", "family", "module", "env_class", "vector_class", "metric", "metric_unit",
                     "metric_units", "summary"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise bad(name, f"must be a non-empty string, got {v!r}")
        if not self.family.isidentifier():
            raise bad("family", f"must be an identifier such as 'execution', got {self.family!r}")
        if "\n" in self.summary:
            raise bad("summary", "must be one line")
        if not isinstance(self.lower_is_better, bool):
            raise bad("lower_is_better", f"must be a bool, got {self.lower_is_better!r}")
        if self.latency not in LATENCY_MODELS:
            raise bad("latency", f"must be one of {LATENCY_MODELS}, got {self.latency!r}")
        if self.train_config is not None and (not isinstance(self.train_config, str)
                                              or not self.train_config.endswith(".toml")):
            raise bad("train_config", f"must be a .toml file name or None, got {self.train_config!r}")
        if not isinstance(self.default_kwargs, Mapping):
            raise bad("default_kwargs", f"must be a mapping, got {type(self.default_kwargs).__name__}")
        object.__setattr__(self, "default_kwargs", MappingProxyType(dict(self.default_kwargs)))
        for name in ("secondary_metrics", "baselines", "default_strategies"):
            v = getattr(self, name)
            if isinstance(v, str) or not all(isinstance(x, str) and x for x in v):
                raise bad(name, f"must be a tuple of non-empty names, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        if self.metric in self.secondary_metrics:
            raise bad("secondary_metrics", f"repeats the task metric {self.metric!r}")
        valid = set(self.baselines) | {baseline_base(b) for b in self.baselines}
        unknown = [s for s in self.default_strategies if s not in valid]
        if unknown:
            raise bad("default_strategies", f"{unknown} are not among its baselines {self.baselines}")

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def entry_point(self) -> str:
        """Gymnasium ``entry_point`` (``module:env_class``)."""
        return f"{self.module}:{self.env_class}"

    @property
    def vector_entry_point(self) -> str:
        """Gymnasium ``vector_entry_point`` (``module:vector_class``)."""
        return f"{self.module}:{self.vector_class}"

    @property
    def direction(self) -> str:
        """``"lower"`` or ``"higher"`` (is better), for messages."""
        return "lower" if self.lower_is_better else "higher"


def baseline_base(name: str) -> str:
    """The baseline's name without its parameter: ``"pov:RATE"`` -> ``"pov"``."""
    return name.partition(":")[0]


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
# What the ids of one family share; each entry adds its id, kwargs and summary.
_EXECUTION: dict[str, Any] = dict(
    family="execution", module="lobworld.envs.execution", env_class="ExecutionEnv",
    vector_class="ExecutionVectorEnv",
    metric="shortfall_bps", lower_is_better=True, metric_unit="bps",
    metric_units="bps of arrival notional, positive = cost", secondary_metrics=("completion",),
    baselines=("twap", "vwap", "pov", "pov:RATE", "ac", "ac:LAMBDA", "aggressive"),
    default_strategies=("twap", "vwap", "pov", "ac", "aggressive"),
    train_config="execution.toml", latency="wrapper",
)
_MARKET_MAKING: dict[str, Any] = dict(
    family="market_making", module="lobworld.envs.market_making", env_class="MarketMakingEnv",
    vector_class="MarketMakingVectorEnv",
    metric="pnl", lower_is_better=False, metric_unit="USD", metric_units="USD, higher is better",
    secondary_metrics=("inventory_terminal", "inventory_max_abs", "adverse_selection_cost", "filled_shares_bid",
                       "filled_shares_ask"),
    baselines=("avellaneda-stoikov", "avellaneda-stoikov:GAMMA", "as", "as-symmetric", "cartea-jaimungal",
               "cartea-jaimungal:PHI", "cj", "fixed-spread", "fixed-spread:TICKS", "random", "random:SEED"),
    default_strategies=("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal", "random"),
    train_config="market_making.toml", latency="env",
)
_DARK_POOL: dict[str, Any] = dict(
    family="dark_pool", module="lobworld.envs.dark_pool", env_class="DarkPoolEnv",
    vector_class="DarkPoolVectorEnv",
    metric="cost_bps", lower_is_better=True, metric_unit="bps",
    metric_units="bps of arrival notional, positive = cost",
    secondary_metrics=("dark_fill_rate", "dark_fraction", "forced_fraction", "shortfall_bps"),
    baselines=("uniform", "lit-only", "ganchev-km", "ganchev", "oracle"),
    default_strategies=("lit-only", "uniform", "ganchev-km", "oracle"),
    train_config="dark_pool.toml", latency="none",
)

# The execution ids run on the learned market (the shipped world model) by default; pass
# dynamics="parametric" for the calibrated Almgren-Chriss market (the classes' own default, used by
# the closed-form tests). Market making (1 s steps) and the dark pool keep their class defaults.
# The tick ids run on the learned tick world (the shipped tick GRU, registered by the package root)
# by default; world="replay" (the classes' own default, the real tape) and world="parametric" (CST).
_SPECS = (
    EnvSpec(id="LOB-Execution-v0", default_kwargs={"dynamics": "learned"}, **_EXECUTION,
            summary="sell (buy) a parent order over one-minute steps; reward: minus implementation shortfall "
                    "against the arrival mid (bps)"),
    EnvSpec(id="LOB-VWAP-v0", default_kwargs={"benchmark": "vwap", "dynamics": "learned"}, **_EXECUTION,
            summary="execute a parent order tracking the market VWAP under a U-shaped intraday volume profile "
                    "(slippage in bps)"),
    EnvSpec(id="LOB-TWAP-v0", default_kwargs={"benchmark": "twap", "dynamics": "learned"}, **_EXECUTION,
            summary="execute a parent order against the time-weighted average mid (slippage in bps)"),
    EnvSpec(id="LOB-MarketMaking-v0", default_kwargs={}, **_MARKET_MAKING,
            summary="quote a bid and an ask (offsets and sizes) with queue position and latency; reward: "
                    "PnL change (USD)"),
    EnvSpec(id="LOB-MarketMaking-Discrete-v0", default_kwargs={"discrete": True}, **_MARKET_MAKING,
            summary="market making on a discrete grid of quote offsets, plus a cancel action"),
    EnvSpec(id="LOB-DarkPool-v0", default_kwargs={}, **_DARK_POOL,
            summary="route a parent order over one lit venue and dark pools with censored fills (cost in bps)"),
    EnvSpec(id="LOB-TickMarketMaking-v0", family="tick_market_making", module="lobworld.envs.tick",
            env_class="TickMarketMakingEnv", vector_class="TickMarketMakingVectorEnv", default_kwargs={"world": "learned"},
            metric="pnl", lower_is_better=False, metric_unit="USD", metric_units="USD, higher is better",
            secondary_metrics=("inventory_terminal", "inventory_max_abs", "filled_shares_bid", "filled_shares_ask",
                               "fills", "sharpe_per_step", "adverse_selection_usd", "queue_wait_s"),
            baselines=("fixed-spread", "fixed-spread:TICKS", "avellaneda-stoikov", "avellaneda-stoikov:GAMMA", "as",
                       "cartea-jaimungal", "cartea-jaimungal:PHI", "cj", "random", "random:SEED"),
            default_strategies=("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal"),
            train_config="tick_market_making.toml", latency="env",
            summary="quote a bid and an ask in ticks from the touch on the event-level book (learned tick "
                    "world or real tape, queue position, latency); reward: PnL change (USD)"),
    EnvSpec(id="LOB-TickExecution-v0", family="tick_execution", module="lobworld.envs.tick",
            env_class="TickExecutionEnv", vector_class="TickExecutionVectorEnv", default_kwargs={"world": "learned"},
            metric="shortfall_bps", lower_is_better=True, metric_unit="bps",
            metric_units="bps of arrival notional, positive = cost",
            secondary_metrics=("completion", "forced_shares", "passive_shares"),
            baselines=("twap", "vwap", "pov", "pov:RATE", "ac", "ac:LAMBDA", "passive-first",
                       "passive-first:LAG", "aggressive"),
            default_strategies=("twap", "vwap", "pov", "passive-first", "aggressive"),
            train_config="tick_execution.toml", latency="env",
            summary="sell (buy) a parent order with market and limit child orders on the event-level book (learned "
                    "tick world or real tape, queue position, latency); reward: minus shortfall increment (bps)"),
)

ENV_SPECS: dict[str, EnvSpec] = {s.id: s for s in _SPECS}
"""Every lobworld env id -> its :class:`EnvSpec`, in registration order. Read it through
:func:`get_spec` / :func:`env_ids` / :func:`specs_by_family` (which see changes to the table)."""


# ---------------------------------------------------------------------------
# lookups
# ---------------------------------------------------------------------------
def env_ids() -> list[str]:
    """Every id of the table, in table order."""
    return list(ENV_SPECS)


def find_spec(env_id: str) -> EnvSpec | None:
    """The spec of ``env_id``, or None when it is not a lobworld id."""
    return ENV_SPECS.get(env_id) if isinstance(env_id, str) else None


def get_spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id``; :class:`UnknownEnvError` listing the known ids otherwise."""
    spec = find_spec(env_id)
    if spec is None:
        raise UnknownEnvError(f"unknown env id {env_id!r}; lobworld ids: {', '.join(ENV_SPECS)}")
    return spec


def family_of(env_id: str) -> str | None:
    """The family of ``env_id``, or None when it is not a lobworld id."""
    spec = find_spec(env_id)
    return spec.family if spec is not None else None


def specs_by_family() -> dict[str, tuple[EnvSpec, ...]]:
    """Family -> its specs, both in table order."""
    out: dict[str, list[EnvSpec]] = {}
    for s in ENV_SPECS.values():
        out.setdefault(s.family, []).append(s)
    return {f: tuple(v) for f, v in out.items()}


class _FamilyView(Mapping):
    """Read-only family -> value mapping computed from the table on every access (its first id per
    family). Backs the per-family dicts the project exported before the table existed."""

    def __init__(self, value: Callable[[EnvSpec], Any], doc: str = ""):
        self._value = value
        self.__doc__ = doc or type(self).__doc__

    def _firsts(self) -> dict[str, EnvSpec]:
        return {f: specs[0] for f, specs in specs_by_family().items()}

    def __getitem__(self, family: str) -> Any:
        return self._value(self._firsts()[family])

    def __iter__(self) -> Iterator[str]:
        return iter(self._firsts())

    def __len__(self) -> int:
        return len(self._firsts())

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def family_view(value: str | Callable[[EnvSpec], Any], doc: str = "") -> Mapping[str, Any]:
    """A live read-only mapping family -> ``value`` of the family's first spec (a field name or a function)."""
    fn = (lambda s: getattr(s, value)) if isinstance(value, str) else value
    return _FamilyView(fn, doc)


def markdown_table(specs: Mapping[str, EnvSpec] | None = None) -> str:
    """The env ids as a Markdown table (id, family, metric and direction, baselines, summary) for docs."""
    rows = ["| id | family | metric | baselines | summary |", "|---|---|---|---|---|"]
    for s in (specs if specs is not None else ENV_SPECS).values():
        names = ", ".join(dict.fromkeys(baseline_base(b) for b in s.baselines))
        rows.append(f"| `{s.id}` | {s.family} | `{s.metric}` ({s.metric_unit}, {s.direction} is better) | "
                    f"{names} | {s.summary} |")
    return "\n".join(rows) + "\n"

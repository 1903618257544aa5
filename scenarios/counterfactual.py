"""Counterfactual evaluation: every strategy on the same simulated market paths.

Common random numbers: path ``i`` is env ``i`` of one batched core of
``n_paths`` envs, seeded ``seed + i`` before each strategy's run. Every
dynamics draws the same number of market randoms whatever the agent does, so
two strategies see the same exogenous market (mid shocks, volume, spread);
they differ only through their own impact. Each path is run for exactly one
episode (the batch steps until every env has finished once; later steps of a
finished env are discarded).

Per strategy: mean, standard deviation, 5/50/95% quantiles of the metric
(the id's :attr:`~lobworld.envs.spec.EnvSpec.metric` in :data:`lobworld.envs.spec.ENV_SPECS`:
``shortfall_bps`` for execution and ``cost_bps`` for the dark pool, lower is better; ``pnl``
for market making, higher is better; else the episode return), a 95% CI of the mean (normal approximation), the completion rate,
means of the spec's secondary info keys (``secondary_metrics``, e.g. the dark fill rate), and the paired
difference against a benchmark strategy with a paired bootstrap CI (paths resampled
jointly, numpy ``Generator`` seeded from ``seed``).

Strategies: baselines of every env id by name (:mod:`lobworld.agents.baselines`),
``const:X`` or a trained ``MODEL.zip``. Policies with an ``after_step(core)`` method
(the dark-pool learner) are called after every batched step. The market simulated
(``dynamics``: the id's registered one unless ``env_kwargs`` says otherwise) is
recorded in :attr:`CounterfactualResult.market`.

Tick-level ids (``LOB-TickMarketMaking-v0``, ``LOB-TickExecution-v0``): the market is the tick world
(``env_kwargs["world"]``: ``replay``, ``parametric``, ...). Path ``i``'s seed fixes its episode window
(drawn from the env's own stream, or ``start``) and, on a generated world, its flow's random stream:
on the replay world every strategy trades the same real windows, on the simulated worlds the same
random numbers (the flow still reacts to each strategy's orders). ``start`` (``HH:MM[:SS]`` or an ISO
date-time: its time of day) fixes every path's window and ``data`` names the LOBSTER file; there is
no regime preset (latency scenarios set the env's ``latency``).

Starting state from history (:func:`condition_on_history`): the parametric
market is conditioned on the real book at a time ``start`` -- ``s0`` = mid,
``spread`` = quoted spread at ``start``; ``sigma`` = standard deviation of
1-minute mid changes over the previous ``window_min`` minutes / sqrt(60 s);
``volume_rate`` = shares executed (visible + hidden) in that window / its
length. Impact coefficients, spread/volume dispersion and drift keep their
calibrated values; the book shape beyond the spread is not used. For the
execution envs ``start_minute`` (the time-of-day observation and volume
profile) is set to ``start`` too.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lobworld.envs import make_sb3_vec_env
from lobworld.envs import spec as _spec
from lobworld.envs.core import BatchedCore
from lobworld.errors import LobworldError

__all__ = [
    "Policy", "StrategyError", "CounterfactualError", "PathResults", "StrategySummary", "CounterfactualResult",
    "resolve_strategy", "simulate", "mean_ci", "paired_bootstrap_ci", "summarize",
    "run_counterfactual", "run_scenarios", "condition_on_history", "metric_for", "FAMILY_METRICS",
    "describe_market", "parse_latency", "is_tick",
]

Policy = Callable[[np.ndarray], np.ndarray]
FAMILY_METRICS: Mapping[str, tuple[str, bool, tuple[str, ...]]] = _spec.family_view(
    lambda s: (s.metric, s.lower_is_better, s.secondary_metrics))
"""Per env family: (metric, lower is better, secondary info keys whose means are reported too). A
read-only view of :data:`lobworld.envs.spec.ENV_SPECS`, kept for one release (read the spec instead)."""


def _fallback_metrics() -> tuple[tuple[str, bool], ...]:
    """(info key, lower is better) of every spec's task metric, in table order: the metric of an id
    without a spec is the first of these its infos have."""
    return tuple(dict.fromkeys((s.metric, s.lower_is_better) for s in _spec.ENV_SPECS.values()))


class StrategyError(LobworldError):
    """A strategy name that cannot be resolved for the env."""


class CounterfactualError(LobworldError):
    """Bad arguments of a counterfactual run (path count, scenario, ``--start`` / ``--data``, Ray)."""


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------
class _Constant:
    def __init__(self, value: float, shape: tuple[int, ...]):
        self.value = value
        self.shape = shape

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.full((obs.shape[0], *self.shape), self.value, dtype=np.float64)


def resolve_strategy(name: str, env_id: str, core: BatchedCore, device: str = "cpu", seed: int = 0) -> Policy:
    """Turn a strategy name into a batched policy ``policy(obs (n, d)) -> actions``.

    * ``PATH.zip``: a trained SB3 model (with its VecNormalize statistics when saved next to it);
    * ``const:X``: the constant action X (every action dimension);
    * any other name: a baseline of :mod:`lobworld.agents.baselines` for the env id (execution,
      market-making and dark-pool baselines), built for ``core``; ``seed`` seeds the random one.

    An unknown name raises :class:`StrategyError` listing the valid names for ``env_id``.
    """
    from lobworld.agents.baselines import BaselineError, make_baseline

    if not isinstance(name, str) or not name.strip():
        raise StrategyError(f"empty strategy name {name!r}")
    name = name.strip()
    if name.endswith(".zip"):
        from lobworld.agents.training import load_policy

        return load_policy(name, device=device, env_id=env_id, observation_space=core.single_observation_space,
                           action_space=core.single_action_space)
    if name.startswith("const:"):
        try:
            v = float(name[6:])
        except ValueError:
            raise StrategyError(f"strategy {name!r}: const:X needs a number X") from None
        return _Constant(v, core.single_action_space.shape)
    try:
        return make_baseline(name, env_id, core, seed=seed)
    except BaselineError as exc:
        raise StrategyError(str(exc)) from None


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------
@dataclass
class PathResults:
    """Per-path outcomes of one strategy (arrays of length ``n_paths``)."""

    strategy: str
    infos: dict[str, np.ndarray]
    """Every numeric key of the env's episode info, per path."""
    episode_return: np.ndarray
    """Sum of rewards of the path's episode."""
    terminated: np.ndarray
    """True where the episode terminated (False: truncated)."""
    trajectories: dict[str, np.ndarray] = field(default_factory=dict)
    """For the first ``record`` paths, ``(record, steps + 1)`` arrays (NaN after the end):
    ``obs0`` (the core's ``record_column`` of the observation, default the first: the remaining
    fraction in the execution envs, the inventory ratio in market making), ``mid`` (USD,
    when the core has a market state) and ``action`` (first action column; NaN at index 0)."""


def simulate(env_id: str, policy: Policy, n_paths: int, seed: int, env_kwargs: dict[str, Any] | None = None,
             record: int = 0, max_steps: int = 1_000_000, strategy: str = "policy",
             core: BatchedCore | None = None, on_episodes: Callable[[int], None] | None = None) -> PathResults:
    """Run ``policy`` for one episode on each of ``n_paths`` paths seeded ``seed + i``.

    ``on_episodes``: called with the number of paths whose episode ended, after every step in
    which some did (progress bars)."""
    if n_paths < 1:
        raise CounterfactualError(f"n_paths must be >= 1, got {n_paths}")
    after_step = getattr(policy, "after_step", None)
    if core is None:
        core = make_sb3_vec_env(env_id, n_paths, **(env_kwargs or {})).core
    n = core.n_envs
    core.seed_rows(range(n), [seed + i for i in range(n)])
    core.reset()
    finished = np.zeros(n, dtype=bool)
    ret = np.zeros(n, dtype=np.float64)
    terminated = np.zeros(n, dtype=bool)
    infos: dict[str, np.ndarray] = {}
    record = min(record, n)
    has_mid = hasattr(core, "market") and getattr(core, "market").ndim == 2
    col = int(getattr(core, "record_column", 0))  # the inventory / remaining column of the observation
    tr_obs: list[np.ndarray] = [core.obs[:record, col].astype(np.float64).copy()]
    tr_mid: list[np.ndarray] = [core.market[:record, 0].copy()] if has_mid else []
    tr_act: list[np.ndarray] = [np.full(record, np.nan)]
    steps = 0
    while not finished.all():
        if steps >= max_steps:
            raise RuntimeError(f"{env_id}: {int((~finished).sum())} paths did not finish in {max_steps} steps")
        actions = np.asarray(policy(core.obs.copy()))
        core.step(actions, autoreset=True)
        if after_step is not None:
            after_step(core)
        steps += 1
        live = ~finished
        ret[live] += core.reward[live]
        if record:
            rl = live[:record]
            a = actions.reshape(n, -1)[:record, 0].astype(np.float64) if actions.ndim else np.full(record, np.nan)
            done_now = (core.terminated | core.truncated)[:record]
            # an env reset in the same step: its last observation is in final_obs
            ob = np.where(done_now, core.final_obs[:record, col], core.obs[:record, col]).astype(np.float64)
            tr_obs.append(np.where(rl, ob, np.nan))
            tr_act.append(np.where(rl, a, np.nan))
            if has_mid:
                # after an autoreset the market row holds the new episode: keep the mid only while live
                tr_mid.append(np.where(rl & ~done_now, core.market[:record, 0], np.nan))
        done = (core.terminated | core.truncated) & live
        if done.any():
            idx = np.flatnonzero(done)
            stats = core.episode_columns(idx)
            if stats is not None:  # the family's EpisodeStats table: one array per statistic
                for k, values in zip(*stats):
                    if values.dtype.kind in "iuf":
                        arr = infos.get(k)
                        if arr is None:
                            arr = infos[k] = np.full(n, np.nan)
                        arr[idx] = values
            else:
                for i in idx:
                    info = core.episode_info(int(i))
                    for k, v in info.items():
                        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                            continue
                        arr = infos.get(k)
                        if arr is None:
                            arr = infos[k] = np.full(n, np.nan)
                        arr[i] = float(v)
            terminated[done] = core.terminated[done]
            finished |= done
            if on_episodes is not None:
                on_episodes(len(idx))
    traj: dict[str, np.ndarray] = {}
    if record:
        traj["obs0"] = np.stack(tr_obs, axis=1)
        traj["action"] = np.stack(tr_act, axis=1)
        if has_mid:
            traj["mid"] = np.stack(tr_mid, axis=1)
    return PathResults(strategy, infos, ret, terminated, traj)


def metric_for(infos: dict[str, np.ndarray], metric: str | None = None,
               env_id: str | None = None) -> tuple[str, bool]:
    """The metric key and whether lower is better.

    Per env id, its spec's task metric and direction (:data:`lobworld.envs.spec.ENV_SPECS`):
    implementation shortfall ``shortfall_bps`` (execution), ``pnl`` (market making), ``cost_bps``
    (dark pool); for an id without a spec the first spec metric found in the infos (table order:
    ``shortfall_bps``, ``pnl``, ``cost_bps``), else the episode return. An explicit ``metric`` takes
    the spec's direction when it is the spec's metric; otherwise a name ending in ``_bps`` or
    containing ``cost`` or ``shortfall`` is a cost (lower is better).
    """
    s = _spec.find_spec(env_id) if env_id else None
    if metric is None and s is not None and s.metric in infos:
        return s.metric, s.lower_is_better
    if metric is not None:
        if metric == "episode_return":
            return metric, False
        if metric not in infos:
            raise StrategyError(f"metric {metric!r} not in the env's episode info keys {sorted(infos)}")
        if s is not None and metric == s.metric:
            return metric, s.lower_is_better
        return metric, metric.endswith("_bps") or "cost" in metric or "shortfall" in metric
    for key, lower in _fallback_metrics():
        if key in infos:
            return key, lower
    return "episode_return", False


def _values(pr: PathResults, key: str) -> np.ndarray:
    return pr.episode_return if key == "episode_return" and key not in pr.infos else pr.infos[key]


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation CI of the mean of ``x``."""
    from statistics import NormalDist

    x = np.asarray(x, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    half = z * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    m = float(x.mean())
    return m - half, m + half


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                        rng: np.random.Generator | int | None = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its percentile bootstrap CI, resampling paths jointly (pairs kept)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired samples must be 1-D of equal length >= 2, got {a.shape} and {b.shape}")
    d = a - b
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = len(d)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for s in range(0, n_boot, chunk):
        m = min(chunk, n_boot - s)
        idx = g.integers(0, n, size=(m, n))
        means[s:s + m] = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(d.mean()), float(lo), float(hi)


@dataclass
class StrategySummary:
    """Statistics of one strategy's metric over the paths (metric units, e.g. bps)."""

    strategy: str
    n_paths: int
    mean: float
    std: float
    ci95: tuple[float, float]
    q05: float
    q50: float
    q95: float
    completion_rate: float | None
    """Share of paths whose order completed (``completion`` >= 1 - 1e-9), when the env reports it."""
    objective: float | None = None
    """``mean + R * std`` (costs) or ``-mean + R * std`` (PnL) for the chosen risk aversion R."""
    diff_mean: float | None = None
    """Mean paired difference strategy - benchmark (metric units)."""
    diff_ci95: tuple[float, float] | None = None
    """Paired-bootstrap 95% CI of ``diff_mean``."""
    secondary: dict[str, float] = field(default_factory=dict)
    """Means over paths of the family's secondary info keys (e.g. ``dark_fill_rate``: the mean over
    paths that sent shares to dark pools; ``completion``), in the info's units."""


def summarize(pr: PathResults, key: str, bench: PathResults | None = None, n_boot: int = 2000,
              rng: np.random.Generator | int | None = 0, risk_aversion: float = 0.0,
              lower_is_better: bool = True, secondary: Sequence[str] = ()) -> StrategySummary:
    x = _values(pr, key)
    if np.isnan(x).any():
        raise ValueError(f"{pr.strategy}: {int(np.isnan(x).sum())} paths have no {key!r}")
    q05, q50, q95 = (float(v) for v in np.quantile(x, [0.05, 0.5, 0.95]))
    comp = pr.infos.get("completion")
    rate = float(np.mean(comp >= 1 - 1e-9)) if comp is not None else None
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    s = StrategySummary(pr.strategy, len(x), float(x.mean()), sd, mean_ci(x), q05, q50, q95, rate)
    s.objective = (s.mean if lower_is_better else -s.mean) + risk_aversion * sd
    if bench is not None:
        m, lo, hi = paired_bootstrap_ci(x, _values(bench, key), n_boot=n_boot, rng=rng)
        s.diff_mean, s.diff_ci95 = m, (lo, hi)
    for k in secondary:
        v = pr.infos.get(k)
        if v is not None and np.isfinite(v).any():
            s.secondary[k] = float(np.nanmean(v))
    return s


# ---------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------
@dataclass
class CounterfactualResult:
    """Everything :func:`run_counterfactual` computed."""

    env_id: str
    scenario: str
    n_paths: int
    seed: int
    metric: str
    lower_is_better: bool
    benchmark: str | None
    summaries: dict[str, StrategySummary]
    paths: dict[str, PathResults]
    conditioning: dict[str, Any] | None = None
    """The history-conditioned parameters and their source, when ``start`` was given."""
    market: str = ""
    """The simulated market in words: dynamics (``parametric``, ``learned``), latency wrapper or setting."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id, "scenario": self.scenario, "market": self.market, "n_paths": self.n_paths,
            "seed": self.seed,
            "metric": self.metric, "lower_is_better": self.lower_is_better, "benchmark": self.benchmark,
            "conditioning": self.conditioning,
            "strategies": {k: dataclasses.asdict(v) for k, v in self.summaries.items()},
        }


def parse_latency(name: str):
    """A latency scenario from a name: a preset or registered name (``cloud``), or a user-defined
    one-way latency ``<number>us`` / ``<number>ms`` (no jitter), e.g. ``500us``, ``12.5ms``."""
    from lobworld.envs.latency import LatencyScenario, get_latency_scenario

    low = name.strip().lower()
    for unit, mult in (("us", 1.0), ("ms", 1000.0)):
        if low.endswith(unit):
            try:
                x = float(low[: -len(unit)])
            except ValueError:
                break
            return LatencyScenario(low, x * mult, 0.0)
    try:
        return get_latency_scenario(name)
    except KeyError as exc:
        raise CounterfactualError(f"{exc.args[0]}; or a user-defined one-way latency such as 500us or 12.5ms") from None


def is_tick(env_id: str) -> bool:
    """True for the event-level ids (:mod:`lobworld.envs.tick`): a tick world (``world=``) moves their
    books; they have no bar ``dynamics``."""
    s = _spec.find_spec(env_id)
    return s is not None and s.module == "lobworld.envs.tick"


def _tick_start(start: str) -> str:
    """``--start`` for a tick id: an ISO date-time (``2012-06-21T10:30``) or ``HH:MM[:SS]`` -> ``HH:MM:SS``
    (the env's ``start``: exchange time of the file's day)."""
    text = str(start).strip()
    if "T" in text or " " in text:
        import pandas as pd

        try:
            t = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise CounterfactualError(f"--start {start!r} is not an ISO date-time or HH:MM[:SS]: {exc}") from None
        return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return text


def describe_market(core: BatchedCore) -> str:
    """Which market a core simulates, in words (dynamics name, latency wrapper, env latency; for the
    tick ids the tick world and the order-entry latency)."""
    world = getattr(core, "world", None)
    if world is not None and hasattr(world, "advance"):
        lat = getattr(core.config, "latency", None)
        lat = lat.name if hasattr(lat, "name") else (lat if isinstance(lat, str) else "per-env")
        return f"{getattr(world, 'name', type(world).__name__)} tick world, latency {lat}"
    dyn = getattr(core, "dynamics", None)
    if dyn is None:
        return type(core).__name__
    text = dyn.describe() if hasattr(dyn, "describe") else getattr(dyn, "name", type(dyn).__name__)
    lat = getattr(getattr(core, "config", None), "latency", None)
    if lat is not None:
        lat = lat.name if hasattr(lat, "name") else (lat if isinstance(lat, str) else "per-env")
        text += f", latency {lat}"
    return text


def _scenario_kwargs(env_id: str, scenario: str, env_kwargs: dict[str, Any],
                     adverse_bps_per_s: float = 0.0) -> dict[str, Any]:
    """``env_kwargs`` for ``scenario``: a regime preset applied to the env's parametric market, or a
    ``latency:NAME`` scenario -- the env's own ``latency`` setting (market making) or a
    :class:`~lobworld.envs.latency.LatencyDynamics` around the env's market (execution ids)."""
    from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
    from lobworld.scenarios.presets import get_regime

    if not isinstance(scenario, str) or not scenario:
        raise CounterfactualError(f"scenario must be a non-empty name, got {scenario!r}")
    if scenario.startswith("latency:"):
        from lobworld.envs.latency import LatencyDynamics

        lat = parse_latency(scenario.split(":", 1)[1])
        model = _spec.get_spec(env_id).latency
        if model == "env":
            return {**env_kwargs, "latency": lat}
        if model == "wrapper":
            probe = make_sb3_vec_env(env_id, 1, **env_kwargs).core
            return {**env_kwargs, "dynamics": LatencyDynamics(probe.dynamics, lat, adverse_bps_per_s)}
        with_latency = ", ".join(i for i, sp in _spec.ENV_SPECS.items() if sp.latency != "none")
        raise CounterfactualError(f"scenario {scenario!r}: {env_id} has no latency setting (latency scenarios "
                                  f"apply to {with_latency})")
    regime = get_regime(scenario)
    if scenario == "normal":
        return dict(env_kwargs)
    if is_tick(env_id):
        raise CounterfactualError(f"regime scenario {scenario!r} transforms the parametric bar market's parameters; "
                                  f"{env_id} runs on a tick world (world=), which has none: use 'normal' or "
                                  "latency:NAME")
    probe = make_sb3_vec_env(env_id, 1, **env_kwargs).core
    params = getattr(getattr(probe, "dynamics", None), "params", None)
    if not isinstance(params, ParametricParams):
        raise CounterfactualError(f"regime scenario {scenario!r} transforms the parametric market; {env_id} runs on "
                         f"{describe_market(probe)} here (pass dynamics='parametric', --dynamics parametric)")
    kw = {**env_kwargs, "dynamics": ParametricDynamics(regime.apply(params))}
    try:
        make_sb3_vec_env(env_id, 1, **kw)
    except TypeError as exc:
        raise CounterfactualError(f"regime scenario {scenario!r}: {env_id} does not take a dynamics argument ({exc})") from None
    return kw


def run_counterfactual(env_id: str, strategies: Sequence[str], n_paths: int = 10_000, seed: int = 0,
                       scenario: str = "normal", benchmark: str | None = None,
                       env_kwargs: dict[str, Any] | None = None, start: str | None = None,
                       data: str | pathlib.Path | None = None, n_boot: int = 2000, record: int = 0,
                       risk_aversion: float = 0.0, metric: str | None = None,
                       device: str = "cpu", adverse_bps_per_s: float = 0.0,
                       progress: Callable[[str], None] | None = None,
                       on_episodes: Callable[[int], None] | None = None) -> CounterfactualResult:
    """Run every strategy on the same ``n_paths`` market paths (seeds ``seed + i``) and summarise.

    ``benchmark`` (default: the first strategy) must be one of ``strategies``.
    ``start`` + ``data`` condition the market on the book at ``start`` (see module docstring).
    ``env_kwargs`` override the id's registered arguments, e.g. ``{"dynamics": "parametric"}``
    (the registered execution ids run on the learned market). ``scenario``: a regime preset or
    ``latency:NAME`` (``adverse_bps_per_s``: the latency wrapper's adverse drift, execution ids).
    The market actually simulated is recorded in the result's ``market``. ``progress``: called with
    ``"<scenario>: <strategy>"`` after each strategy's paths are simulated (progress bars);
    ``on_episodes``: called with the number of episodes that ended, after every step in which
    some did (``len(strategies) * n_paths`` in all).
    """
    strategies = [s.strip() for s in strategies if s.strip()]
    if not strategies:
        raise StrategyError("no strategies given")
    if len(set(strategies)) != len(strategies):
        raise StrategyError(f"duplicate strategies in {strategies}")
    if benchmark is not None and benchmark not in strategies:
        raise StrategyError(f"benchmark {benchmark!r} is not among the strategies {strategies}")
    if not isinstance(n_paths, int) or n_paths < 2:
        raise CounterfactualError(f"n_paths must be an integer >= 2, got {n_paths!r}")
    kw = dict(env_kwargs or {})
    conditioning = None
    if is_tick(env_id):
        if "dynamics" in kw:
            raise CounterfactualError(f"{env_id} has no bar dynamics (dynamics={kw['dynamics']!r}); its market is the "
                                      "tick world: world='replay', 'parametric' or another registered one (--world)")
        if start is not None:  # the episode window on the file's day (the same window for every path)
            kw["start"] = _tick_start(start)
        if data is not None:
            kw["data"] = str(data)
        start = None
    if start is not None:
        if data is None:
            raise CounterfactualError("--start needs --data (a LOBSTER message file)")
        params, conditioning = condition_on_history(data, start)
        from lobworld.envs.dynamics import ParametricDynamics

        if kw.get("dynamics", "parametric") != "parametric":
            raise CounterfactualError(f"--start conditions the parametric market; it cannot be combined with "
                             f"dynamics={kw['dynamics']!r}")
        kw["dynamics"] = ParametricDynamics(params)
        if _spec.family_of(env_id) == "execution":  # its time-of-day observation and volume profile
            kw.setdefault("start_minute", conditioning["start_minute"])
    kw = _scenario_kwargs(env_id, scenario, kw, adverse_bps_per_s)
    core = make_sb3_vec_env(env_id, n_paths, **kw).core
    paths: dict[str, PathResults] = {}
    for name in strategies:
        policy = resolve_strategy(name, env_id, core, device=device, seed=seed)
        paths[name] = simulate(env_id, policy, n_paths, seed, record=record, strategy=name, core=core,
                               on_episodes=on_episodes)
        if progress is not None:
            progress(f"{scenario}: {name}")
    key, lower = metric_for(paths[strategies[0]].infos, metric, env_id)
    sp = _spec.find_spec(env_id)
    secondary = sp.secondary_metrics if sp is not None else ()
    bname = benchmark if benchmark is not None else strategies[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    summaries = {name: summarize(pr, key, paths[bname] if name != bname else None, n_boot=n_boot, rng=rng,
                                 risk_aversion=risk_aversion, lower_is_better=lower, secondary=secondary)
                 for name, pr in paths.items()}
    return CounterfactualResult(env_id, scenario, n_paths, seed, key, lower, bname, summaries, paths, conditioning,
                                market=describe_market(core))


def _run_one(kwargs: dict[str, Any]) -> CounterfactualResult:
    return run_counterfactual(**kwargs)


def run_scenarios(scenarios: Sequence[str], use_ray: bool = False, ray_num_cpus: int | None = None,
                  **kwargs: Any) -> dict[str, CounterfactualResult]:
    """:func:`run_counterfactual` for each scenario (same seeds); in-process, or through Ray.

    With ``use_ray`` every scenario is a Ray task (one CPU each) running the same function with
    the same arguments, so results are identical to the in-process run (tested). Ray is optional
    (``pip install lobworld[ray]``); a clear error is raised when it is not installed. When Ray is
    not already running it is started with ``ray_num_cpus`` CPUs (default: the number of
    scenarios, at most the machine's CPU count) and shut down afterwards; a running Ray instance
    (``ray.init`` by the caller, e.g. a cluster) is used as is and left running.
    """
    if use_ray:  # a callback does not cross into Ray workers
        kwargs.pop("progress", None)
        kwargs.pop("on_episodes", None)
    jobs = [{**kwargs, "scenario": s} for s in scenarios]
    if not use_ray:
        return {s: _run_one(j) for s, j in zip(scenarios, jobs)}
    try:
        import ray
    except ImportError:
        raise CounterfactualError("--ray needs the 'ray' package, which is not installed (pip install ray); "
                         "without --ray scenarios run in-process") from None
    import os

    started = False
    if not ray.is_initialized():
        n_cpu = ray_num_cpus if ray_num_cpus is not None else max(1, min(len(jobs), os.cpu_count() or 1))
        ray.init(num_cpus=int(n_cpu), include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_run_one)
        results = ray.get([remote.remote(j) for j in jobs])
    finally:
        if started:
            ray.shutdown()
    return dict(zip(scenarios, results))


# ---------------------------------------------------------------------------
# starting state from history
# ---------------------------------------------------------------------------
def condition_on_history(data: str | pathlib.Path, start: str, window_min: float = 30.0):
    """Parametric parameters conditioned on the real book at ``start`` (see module docstring).

    ``data``: a LOBSTER message file (its orderbook file is found by name) or a
    folder holding exactly one. ``start``: ISO time, e.g. ``2012-06-21T10:30``
    (New York time for LOBSTER), which must lie inside the file and leave at
    least 2 minutes of history. Returns ``(ParametricParams, summary dict)``.
    """
    import pandas as pd

    from lobworld.envs.dynamics import ParametricParams
    from lobworld.world_models.data import load_lobster, make_bars

    p = pathlib.Path(data)
    if p.is_dir():
        msgs = sorted(p.glob("*_message_*.csv*"))
        if len(msgs) != 1:
            raise CounterfactualError(f"{p}: expected exactly one LOBSTER *_message_*.csv[.gz] file, found {len(msgs)}")
        p = msgs[0]
    if not p.is_file():
        raise FileNotFoundError(f"data file {p} does not exist")
    ev = load_lobster(p)
    tz = ev["ts"].dt.tz
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise CounterfactualError(f"--start {start!r} is not an ISO date-time: {exc}") from None
    t0 = t0.tz_localize(tz) if t0.tzinfo is None else t0.tz_convert(tz)
    first, last = ev["ts"].iloc[0], ev["ts"].iloc[-1]
    if not (first + pd.Timedelta(minutes=2) <= t0 <= last):
        raise CounterfactualError(f"--start {t0} is outside {p.name} ({first} .. {last}) or has < 2 minutes of history")
    before = ev[ev["ts"] <= t0]
    row = before.iloc[-1]
    bid, ask = float(row["bid_px_1"]), float(row["ask_px_1"])
    if not (math.isfinite(bid) and math.isfinite(ask) and ask > bid):
        raise CounterfactualError(f"{p.name}: no valid best bid/ask at {t0}")
    w0 = max(first, t0 - pd.Timedelta(minutes=window_min))
    win = before[before["ts"] >= w0]
    bars = make_bars(win, freq="1min")
    bars = bars[bars["bar_seconds"] > 0] if "bar_seconds" in bars else bars
    rets = bars["mid_ret"].to_numpy(dtype=np.float64)[1:]  # the first bar's return is intra-bar
    secs = float((t0 - w0).total_seconds())
    if len(rets) < 2:
        raise CounterfactualError(f"{p.name}: fewer than 3 one-minute bars before {t0}; cannot estimate volatility")
    sigma = float(np.std(rets, ddof=1) / math.sqrt(60.0))
    volume_rate = float(bars["volume"].sum() / secs)
    base = ParametricParams()
    params = base.replace(s0=round(0.5 * (bid + ask), 6), spread=round(ask - bid, 6), sigma=sigma, volume_rate=volume_rate)
    open_ = t0.normalize() + pd.Timedelta(hours=9, minutes=30)
    summary = {
        "source": str(p), "start": str(t0), "window_start": str(w0), "window_minutes": secs / 60.0,
        "s0": params.s0, "spread": params.spread, "sigma": sigma, "sigma_per_minute": sigma * math.sqrt(60.0),
        "volume_rate": volume_rate, "start_minute": float((t0 - open_).total_seconds() / 60.0),
        "conditioned_on": ["s0 (mid)", "spread", "sigma (1-min mid changes)", "volume_rate"],
    }
    return params, summary

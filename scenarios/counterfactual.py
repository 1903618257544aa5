"""Counterfactual evaluation: every strategy on the same simulated market paths.

Common random numbers: path ``i`` is env ``i`` of one batched core of
``n_paths`` envs, seeded ``seed + i`` before each strategy's run. Every
dynamics draws the same number of market randoms whatever the agent does, so
two strategies see the same exogenous market (mid shocks, volume, spread);
they differ only through their own impact. Each path is run for exactly one
episode (the batch steps until every env has finished once; later steps of a
finished env are discarded).

Per strategy: mean, standard deviation, 5/50/95% quantiles of the metric
(``shortfall_bps`` for execution, lower is better; ``pnl`` for market making,
higher is better; else the episode return), a 95% CI of the mean (normal
approximation), the completion rate, and the paired difference against a
benchmark strategy with a paired bootstrap CI (paths resampled jointly, numpy
``Generator`` seeded from ``seed``).

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
import importlib
import math
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lobworld.envs import make_sb3_vec_env
from lobworld.envs.core import BatchedCore

__all__ = [
    "Policy", "StrategyError", "PathResults", "StrategySummary", "CounterfactualResult",
    "resolve_strategy", "simulate", "mean_ci", "paired_bootstrap_ci", "summarize",
    "run_counterfactual", "run_scenarios", "condition_on_history", "metric_for",
]

Policy = Callable[[np.ndarray], np.ndarray]
#: metric per env family: (info key, lower is better)
_METRICS = (("shortfall_bps", True), ("pnl", False))


class StrategyError(ValueError):
    """A strategy name that cannot be resolved for the env."""


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------
def _family_module(env_id: str) -> str | None:
    if "Execution" in env_id or "VWAP" in env_id or "TWAP" in env_id:
        return "lobworld.agents.execution"
    if "MarketMaking" in env_id:
        return "lobworld.agents.market_making"
    if "DarkPool" in env_id:
        return "lobworld.agents.dark_pool"
    return None


class _Constant:
    def __init__(self, value: float, shape: tuple[int, ...]):
        self.value = value
        self.shape = shape

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.full((obs.shape[0], *self.shape), self.value, dtype=np.float64)


def resolve_strategy(name: str, env_id: str, core: BatchedCore, device: str = "cpu") -> Policy:
    """Turn a strategy name into a batched policy ``policy(obs (n, d)) -> actions``.

    * ``PATH.zip``: a trained SB3 model (with its VecNormalize statistics when saved next to it);
    * ``const:X``: the constant action X (every action dimension);
    * any other name: a baseline from the env family's agents module
      (``lobworld.agents.execution`` for the execution ids, ...), built for ``core.config``.
    """
    if not isinstance(name, str) or not name.strip():
        raise StrategyError(f"empty strategy name {name!r}")
    name = name.strip()
    if name.endswith(".zip"):
        from lobworld.agents.training import load_policy

        return load_policy(name, device=device)
    if name.startswith("const:"):
        try:
            v = float(name[6:])
        except ValueError:
            raise StrategyError(f"strategy {name!r}: const:X needs a number X") from None
        return _Constant(v, core.single_action_space.shape)
    mod_name = _family_module(env_id)
    if mod_name == "lobworld.agents.execution" and hasattr(core, "config"):
        return _execution_strategy(name, env_id, core)
    known: list[str] = []
    if mod_name is not None:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name != mod_name:
                raise
            mod = None
        if mod is not None:
            factory = getattr(mod, "make_policy", None) or getattr(mod, "make_strategy", None)
            registry = getattr(mod, "STRATEGIES", None) or getattr(mod, "BASELINES", None)
            if registry is not None:
                known = sorted(registry)
            if factory is not None:
                try:
                    return factory(name, getattr(core, "config", None))
                except (KeyError, ValueError) as exc:
                    raise StrategyError(f"unknown strategy {name!r} for {env_id}: {exc}") from None
            if registry is not None and name in registry:
                return registry[name](getattr(core, "config", None))
    hint = f"; baselines: {', '.join(known)}" if known else ""
    raise StrategyError(
        f"unknown strategy {name!r} for {env_id}: use a baseline name, const:X, or a trained MODEL.zip{hint}"
    )


EXECUTION_STRATEGIES = ("twap", "vwap", "pov", "pov:RATE", "ac", "ac:LAMBDA", "aggressive")


def _execution_strategy(name: str, env_id: str, core: BatchedCore) -> Policy:
    """Execution baselines of :mod:`lobworld.agents.execution`, built for the core's config and market.

    ``ac`` uses the env's ``risk_aversion`` (1/bps), ``ac:LAMBDA`` an explicit one; ``pov`` a 10%
    participation rate, ``pov:RATE`` another; market parameters come from the core's parametric
    dynamics (calibrated defaults for other dynamics).
    """
    from lobworld.agents import execution as ex
    from lobworld.envs.dynamics import ParametricParams

    cfg = core.config
    dyn_params = getattr(getattr(core, "dynamics", None), "params", None)
    params = dyn_params if isinstance(dyn_params, ParametricParams) else ParametricParams()
    base, _, arg = name.partition(":")
    try:
        x = float(arg) if arg else None
    except ValueError:
        raise StrategyError(f"strategy {name!r}: {base}:X needs a number X") from None
    if base == "twap" and not arg:
        return ex.twap_policy(cfg.horizon)
    if base == "vwap" and not arg:
        return ex.VWAPPolicy(cfg.horizon, cfg.dt, cfg.profile_coef)
    if base == "aggressive" and not arg:
        return ex.AggressivePolicy()
    if base == "pov":
        try:
            return ex.POVPolicy(rate=0.1 if x is None else x, quantity=cfg.quantity,
                                volume_per_step=params.volume_rate * cfg.dt)
        except ValueError as exc:
            raise StrategyError(f"strategy {name!r}: {exc}") from None
    if base == "ac":
        lam = cfg.risk_aversion if x is None else x
        try:
            return ex.almgren_chriss_policy(lam, cfg, params)
        except ValueError as exc:
            raise StrategyError(f"strategy {name!r}: {exc}") from None
    raise StrategyError(f"unknown strategy {name!r} for {env_id}: use one of {', '.join(EXECUTION_STRATEGIES)}, "
                        "const:X, or a trained MODEL.zip")


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
    ``obs0`` (first observation column; remaining fraction in the execution envs), ``mid`` (USD,
    when the core has a market state) and ``action`` (first action column; NaN at index 0)."""


def simulate(env_id: str, policy: Policy, n_paths: int, seed: int, env_kwargs: dict[str, Any] | None = None,
             record: int = 0, max_steps: int = 1_000_000, strategy: str = "policy",
             core: BatchedCore | None = None) -> PathResults:
    """Run ``policy`` for one episode on each of ``n_paths`` paths seeded ``seed + i``."""
    if n_paths < 1:
        raise ValueError(f"n_paths must be >= 1, got {n_paths}")
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
    tr_obs: list[np.ndarray] = [core.obs[:record, 0].astype(np.float64).copy()]
    tr_mid: list[np.ndarray] = [core.market[:record, 0].copy()] if has_mid else []
    tr_act: list[np.ndarray] = [np.full(record, np.nan)]
    steps = 0
    while not finished.all():
        if steps >= max_steps:
            raise RuntimeError(f"{env_id}: {int((~finished).sum())} paths did not finish in {max_steps} steps")
        actions = np.asarray(policy(core.obs.copy()))
        core.step(actions, autoreset=True)
        steps += 1
        live = ~finished
        ret[live] += core.reward[live]
        if record:
            rl = live[:record]
            a = actions.reshape(n, -1)[:record, 0].astype(np.float64) if actions.ndim else np.full(record, np.nan)
            done_now = (core.terminated | core.truncated)[:record]
            # an env reset in the same step: its last observation is in final_obs
            ob = np.where(done_now, core.final_obs[:record, 0], core.obs[:record, 0]).astype(np.float64)
            tr_obs.append(np.where(rl, ob, np.nan))
            tr_act.append(np.where(rl, a, np.nan))
            if has_mid:
                # after an autoreset the market row holds the new episode: keep the mid only while live
                tr_mid.append(np.where(rl & ~done_now, core.market[:record, 0], np.nan))
        done = (core.terminated | core.truncated) & live
        if done.any():
            for i in np.flatnonzero(done):
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
    traj: dict[str, np.ndarray] = {}
    if record:
        traj["obs0"] = np.stack(tr_obs, axis=1)
        traj["action"] = np.stack(tr_act, axis=1)
        if has_mid:
            traj["mid"] = np.stack(tr_mid, axis=1)
    return PathResults(strategy, infos, ret, terminated, traj)


def metric_for(infos: dict[str, np.ndarray], metric: str | None = None) -> tuple[str, bool]:
    """The metric key and whether lower is better (``shortfall_bps``, ``pnl``, else the episode return)."""
    if metric is not None:
        if metric == "episode_return":
            return metric, False
        if metric not in infos:
            raise ValueError(f"metric {metric!r} not in the env's episode info keys {sorted(infos)}")
        return metric, metric.endswith("_bps") or "cost" in metric or "shortfall" in metric
    for key, lower in _METRICS:
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


def summarize(pr: PathResults, key: str, bench: PathResults | None = None, n_boot: int = 2000,
              rng: np.random.Generator | int | None = 0, risk_aversion: float = 0.0,
              lower_is_better: bool = True) -> StrategySummary:
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id, "scenario": self.scenario, "n_paths": self.n_paths, "seed": self.seed,
            "metric": self.metric, "lower_is_better": self.lower_is_better, "benchmark": self.benchmark,
            "conditioning": self.conditioning,
            "strategies": {k: dataclasses.asdict(v) for k, v in self.summaries.items()},
        }


def _scenario_kwargs(env_id: str, scenario: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` for ``scenario``: a regime preset applied to the env's parametric market, or a
    ``latency:NAME`` preset for envs with a ``latency`` setting."""
    from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
    from lobworld.scenarios.presets import get_regime

    if not isinstance(scenario, str) or not scenario:
        raise ValueError(f"scenario must be a non-empty name, got {scenario!r}")
    if scenario.startswith("latency:"):
        from lobworld.scenarios.latency import get_latency_scenario

        probe = make_sb3_vec_env(env_id, 1, **env_kwargs).core
        if not hasattr(getattr(probe, "config", None), "latency"):
            raise ValueError(f"scenario {scenario!r}: {env_id} has no latency setting (latency presets apply to "
                             "the market-making envs)")
        return {**env_kwargs, "latency": get_latency_scenario(scenario.split(":", 1)[1])}
    regime = get_regime(scenario)
    if scenario == "normal":
        return dict(env_kwargs)
    probe = make_sb3_vec_env(env_id, 1, **env_kwargs).core
    params = getattr(getattr(probe, "dynamics", None), "params", None)
    if not isinstance(params, ParametricParams):
        raise ValueError(f"regime scenario {scenario!r} needs parametric dynamics with one parameter set; "
                         f"{env_id} uses {type(getattr(probe, 'dynamics', None)).__name__}")
    kw = {**env_kwargs, "dynamics": ParametricDynamics(regime.apply(params))}
    try:
        make_sb3_vec_env(env_id, 1, **kw)
    except TypeError as exc:
        raise ValueError(f"regime scenario {scenario!r}: {env_id} does not take a dynamics argument ({exc})") from None
    return kw


def run_counterfactual(env_id: str, strategies: Sequence[str], n_paths: int = 10_000, seed: int = 0,
                       scenario: str = "normal", benchmark: str | None = None,
                       env_kwargs: dict[str, Any] | None = None, start: str | None = None,
                       data: str | pathlib.Path | None = None, n_boot: int = 2000, record: int = 0,
                       risk_aversion: float = 0.0, metric: str | None = None,
                       device: str = "cpu") -> CounterfactualResult:
    """Run every strategy on the same ``n_paths`` market paths (seeds ``seed + i``) and summarise.

    ``benchmark`` (default: the first strategy) must be one of ``strategies``.
    ``start`` + ``data`` condition the market on the book at ``start`` (see module docstring).
    """
    strategies = [s.strip() for s in strategies if s.strip()]
    if not strategies:
        raise StrategyError("no strategies given")
    if len(set(strategies)) != len(strategies):
        raise StrategyError(f"duplicate strategies in {strategies}")
    if benchmark is not None and benchmark not in strategies:
        raise StrategyError(f"benchmark {benchmark!r} is not among the strategies {strategies}")
    if not isinstance(n_paths, int) or n_paths < 2:
        raise ValueError(f"n_paths must be an integer >= 2, got {n_paths!r}")
    kw = dict(env_kwargs or {})
    conditioning = None
    if start is not None:
        if data is None:
            raise ValueError("--start needs --data (a LOBSTER message file)")
        params, conditioning = condition_on_history(data, start)
        from lobworld.envs.dynamics import ParametricDynamics

        kw["dynamics"] = ParametricDynamics(params)
        if "Execution" in env_id or "VWAP" in env_id or "TWAP" in env_id:
            kw.setdefault("start_minute", conditioning["start_minute"])
    kw = _scenario_kwargs(env_id, scenario, kw)
    core = make_sb3_vec_env(env_id, n_paths, **kw).core
    paths: dict[str, PathResults] = {}
    for name in strategies:
        policy = resolve_strategy(name, env_id, core, device=device)
        paths[name] = simulate(env_id, policy, n_paths, seed, record=record, strategy=name, core=core)
    key, lower = metric_for(paths[strategies[0]].infos, metric)
    bname = benchmark if benchmark is not None else strategies[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    summaries = {name: summarize(pr, key, paths[bname] if name != bname else None, n_boot=n_boot, rng=rng,
                                 risk_aversion=risk_aversion, lower_is_better=lower)
                 for name, pr in paths.items()}
    return CounterfactualResult(env_id, scenario, n_paths, seed, key, lower, bname, summaries, paths, conditioning)


def _run_one(kwargs: dict[str, Any]) -> CounterfactualResult:
    return run_counterfactual(**kwargs)


def run_scenarios(scenarios: Sequence[str], use_ray: bool = False, **kwargs: Any) -> dict[str, CounterfactualResult]:
    """:func:`run_counterfactual` for each scenario (same seeds); in-process, or through Ray.

    With ``use_ray`` every scenario is a Ray task running the same function with
    the same arguments, so results are identical to the in-process run. Ray is
    optional: a clear error is raised when it is not installed.
    """
    jobs = [{**kwargs, "scenario": s} for s in scenarios]
    if not use_ray:
        return {s: _run_one(j) for s, j in zip(scenarios, jobs)}
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs the 'ray' package, which is not installed (pip install ray); "
                         "without --ray scenarios run in-process") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False)
    remote = ray.remote(_run_one)
    results = ray.get([remote.remote(j) for j in jobs])
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
            raise ValueError(f"{p}: expected exactly one LOBSTER *_message_*.csv[.gz] file, found {len(msgs)}")
        p = msgs[0]
    if not p.is_file():
        raise FileNotFoundError(f"data file {p} does not exist")
    ev = load_lobster(p)
    tz = ev["ts"].dt.tz
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--start {start!r} is not an ISO date-time: {exc}") from None
    t0 = t0.tz_localize(tz) if t0.tzinfo is None else t0.tz_convert(tz)
    first, last = ev["ts"].iloc[0], ev["ts"].iloc[-1]
    if not (first + pd.Timedelta(minutes=2) <= t0 <= last):
        raise ValueError(f"--start {t0} is outside {p.name} ({first} .. {last}) or has < 2 minutes of history")
    before = ev[ev["ts"] <= t0]
    row = before.iloc[-1]
    bid, ask = float(row["bid_px_1"]), float(row["ask_px_1"])
    if not (math.isfinite(bid) and math.isfinite(ask) and ask > bid):
        raise ValueError(f"{p.name}: no valid best bid/ask at {t0}")
    w0 = max(first, t0 - pd.Timedelta(minutes=window_min))
    win = before[before["ts"] >= w0]
    bars = make_bars(win, freq="1min")
    bars = bars[bars["bar_seconds"] > 0] if "bar_seconds" in bars else bars
    rets = bars["mid_ret"].to_numpy(dtype=np.float64)[1:]  # the first bar's return is intra-bar
    secs = float((t0 - w0).total_seconds())
    if len(rets) < 2:
        raise ValueError(f"{p.name}: fewer than 3 one-minute bars before {t0}; cannot estimate volatility")
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

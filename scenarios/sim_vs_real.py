"""Sim versus real: the shortfall a world predicts for a window against the one the real tape realises.

Description
    For each execution strategy and each held-out window of a real LOBSTER day, a *world*
    predicts the strategy's implementation shortfall (bps of the arrival mid, + = cost) as the
    mean over ``n_paths`` simulated paths started from the real market at the window's start;
    the *real* shortfall is the same strategy on the real tape of that window. Over the windows
    (and both sides) the prediction error ``e_w = sim_w - real_w`` gives the mean **bias** and
    the **RMSE** (bps). Targets of the product's source material: ``|bias| < 0.5`` bps, RMSE
    ``< 2`` bps.

Worlds (names in :data:`SIM_WORLDS`)
    ``parametric``     ``LOB-TickExecution-v0`` with ``world="parametric"`` (Cont-Stoikov-Talreja
                       flow of the ticker, fitted with 13:30-16:00 held out): every path starts
                       from the file's book at the window start; the agent's orders sit in its
                       queues with the same latency preset as on the tape.
    ``learned``        the same with ``world="learned"`` (the tick GRU), when a tick world of that
                       name is registered; otherwise skipped with a note.
    ``bar-parametric`` ``LOB-Execution-v0`` with Almgren-Chriss dynamics conditioned on the tape
                       before the start (no look-ahead): ``s0`` = the real arrival mid, ``sigma``
                       and the mean spread and executed volume rate of the 30 min before the
                       start, the ticker's tick; impact ``eta``, ``gamma`` the env's defaults.
    ``bar-learned``    ``LOB-Execution-v0`` with the bar GRU (``LearnedDynamics.load_default``,
                       trained 09:30-13:30, test block 14:00-16:00) of the ticker with ``s0`` =
                       the real arrival mid (the GRU starts from its own burn-in state: the bar
                       model has no way to take the real book).
    Bar alignment: ``dt`` = the tick decision interval (the 10 s bar model for ``dt = 10``),
    ``horizon`` = the same number of decisions, ``start_minute`` = the window start after 09:30,
    the same side and quantity. Bar strategies are the env's own baselines (``twap``, ``vwap``,
    ``pov:RATE``, ``ac:LAMBDA``, ``aggressive`` of :mod:`lobworld.agents.baselines`); a bar market
    has no limit orders, so ``passive_first`` and a tick-env model have no bar prediction (noted).

Pairing
    The real run and every tick world use the seeds ``seed + p`` for ``p < n_paths`` for every
    strategy (latency draws; on a generated world also its flow), and the real shortfall of a
    window is the mean over those latency paths. A world that *is* the replay therefore predicts
    every window exactly: bias 0 and RMSE 0 (a test).

Measures (:attr:`SimVsRealResult.summary`)
    ``per_side``: every (window, side) is one error. ``round_trip``: the error of the window's
    mean cost of a buy and a sell, ``(IS_buy + IS_sell) / 2``, which cancels the window's price
    drift to first order (the part of a shortfall no world can predict from the start state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from lobworld.scenarios import backtest as bt
from lobworld.scenarios.backtest import BacktestError

__all__ = ["SIM_WORLDS", "SIM_STRATEGIES", "BIAS_TARGET_BPS", "RMSE_TARGET_BPS", "SimVsRealConfig",
           "SimVsRealResult", "sim_vs_real", "summarize", "held_out_starts", "ticker_of", "day_volume"]

SIM_WORLDS = ("parametric", "learned", "bar-parametric", "bar-learned")
SIM_STRATEGIES = ("twap", "vwap", "pov", "ac", "passive_first")
BIAS_TARGET_BPS = 0.5  #: |mean bias| target (bps)
RMSE_TARGET_BPS = 2.0  #: RMSE target (bps)
_BAR_ENV = "LOB-Execution-v0"
_NS = 1_000_000_000


@dataclass(frozen=True)
class SimVsRealConfig:
    """Settings of a sim-versus-real comparison (units in each docstring)."""

    strategies: tuple = SIM_STRATEGIES
    """Execution strategies (:data:`lobworld.scenarios.backtest.TICK_STRATEGIES`); a model is added by
    :func:`sim_vs_real`'s ``policy``."""
    worlds: tuple = SIM_WORLDS
    """Worlds to compare with the tape (:data:`SIM_WORLDS`)."""
    sides: tuple = ("buy", "sell")
    """Parent order sides (each window runs each)."""
    horizon_s: float = 600.0
    """Window length (seconds)."""
    interval_s: float = 10.0
    """Seconds between decisions (the tick env's ``dt``, the bar env's ``dt``)."""
    first: str = "14:00"
    """First window start (exchange time): the held-out block starts here."""
    last_end: str = "16:00"
    """No window ends after this (nor after the file's last message)."""
    step_s: float | None = None
    """Seconds between window starts (None: ``horizon_s``, back-to-back windows)."""
    quantity: int | None = None
    """Parent order shares; None: ``round(adv_share x`` the day's executed volume (visible + hidden)``)``."""
    adv_share: float = 1.0 / 300.0
    """Share of the day's volume per parent order when ``quantity`` is None (1/300: 1% of ADV per 30 min of a 10-min window)."""
    latency: str = "cloud"
    """Latency preset of the agent's messages (tick worlds and the tape)."""
    n_paths: int = 16
    """Paths per window and strategy on a simulated world (and latency paths on the tape)."""
    seed: int = 0
    """Path ``p`` is seeded ``seed + p`` (every strategy, every world)."""
    pov_rate: float = 0.25
    """POV participation (tick and bar)."""
    ac_risk_aversion_bps: float = 1e-4
    """Almgren-Chriss lambda (1/bps; tick and bar)."""

    def __post_init__(self) -> None:
        for w in self.worlds:
            if w not in SIM_WORLDS:
                raise BacktestError(f"worlds: unknown world {w!r}; one of {', '.join(SIM_WORLDS)}")
        for s in self.strategies:
            if s not in bt.TICK_STRATEGIES:
                raise bt.UnknownStrategyError(f"strategy: {s!r} is not a tick execution strategy; one of "
                                              f"{', '.join(bt.TICK_STRATEGIES)}")
        for s in self.sides:
            if s not in ("buy", "sell"):
                raise BacktestError(f"side must be 'buy' or 'sell', got {s!r}")
        if not self.sides or not self.worlds or not self.strategies:
            raise BacktestError("strategies, worlds and sides need at least one entry each")
        if isinstance(self.n_paths, bool) or not isinstance(self.n_paths, int) or self.n_paths < 1:
            raise BacktestError(f"paths must be an int >= 1, got {self.n_paths!r}")
        if not (math.isfinite(self.horizon_s) and self.horizon_s > 0 and 0 < self.interval_s <= self.horizon_s):
            raise BacktestError(f"horizon ({self.horizon_s!r} s) and interval ({self.interval_s!r} s) must satisfy "
                                "0 < interval <= horizon")
        if self.quantity is not None and (isinstance(self.quantity, bool) or not isinstance(self.quantity, int)
                                          or self.quantity <= 0):
            raise bt.OrderSizeError(f"quantity must be a whole number of shares > 0, got {self.quantity!r}")
        if not (0 < self.adv_share <= 1):
            raise BacktestError(f"adv_share must be in (0, 1], got {self.adv_share!r}")

    def replace(self, **changes) -> "SimVsRealConfig":
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


@dataclass
class SimVsRealResult:
    """What :func:`sim_vs_real` measured."""

    windows: pd.DataFrame
    """One row per (ticker, world, side, strategy, window): ``real_bps`` (mean over the latency
    paths on the tape), ``sim_bps`` (mean over the world's paths), ``sim_sd_bps``, ``error_bps`` =
    sim - real, ``paths``."""
    summary: pd.DataFrame
    """One row per (ticker, world, strategy, measure): ``n`` errors, ``bias_bps``, ``bias_ci95``
    (95% t half-width), ``rmse_bps``, ``real_sd_bps`` (sd of the real shortfalls: the size of
    what is predicted), ``bias_ok`` / ``rmse_ok`` against the targets (:func:`summarize`)."""
    notes: list = field(default_factory=list)
    """Lines on what was skipped or how something was aligned."""
    config: SimVsRealConfig | None = None
    quantities: dict = field(default_factory=dict)
    """Parent order shares per ticker."""


def ticker_of(data) -> str:
    """The ticker of a :class:`~lobworld.envs.replay.ReplayData` (the first word of its name)."""
    return str(data.name).split()[0].split("_")[0].upper()


def day_volume(data) -> int:
    """Shares executed on the file's tape (visible type 4 + hidden type 5)."""
    tp = data.tape
    return int(tp.size[(tp.type == 4) | (tp.type == 5)].sum())


def held_out_starts(data, cfg: SimVsRealConfig) -> list[int]:
    """Window starts (ns) from ``cfg.first`` every ``step_s`` that fall after the file's first
    message and whose window ends by ``cfg.last_end`` and by the file's last message."""
    starts = bt.afternoon_starts(data, cfg.horizon_s, cfg.first, cfg.last_end, cfg.step_s)
    t_first, t_last = int(data.tape.t[0]), int(data.tape.t[-1])
    return [s for s in starts if s > t_first and s + int(round(cfg.horizon_s * _NS)) <= t_last]


def _pre_window(data, mids: np.ndarray, t0: int, lookback_s: float = 1800.0) -> tuple[float, float, float]:
    """(sigma USD/sqrt(s), mean spread USD, executed shares per second) of the tape in the
    ``lookback_s`` before ``t0`` (the rows in it, row-weighted spread)."""
    t = data.tape.t
    lo = int(np.searchsorted(t, t0 - int(lookback_s * _NS), side="left"))
    hi = int(np.searchsorted(t, t0, side="left"))
    span = max((t0 - int(t[lo])) / 1e9, 1.0) if hi > lo else lookback_s
    sig = bt._sigma_ticks(data, mids, t0, lookback_s) * data.tick_size
    b, a = data.fpx[lo:hi, 0, 0].astype(float), data.fpx[lo:hi, 1, 0].astype(float)
    ok = (data.fsz[lo:hi, 0, 0] > 0) & (data.fsz[lo:hi, 1, 0] > 0)
    spread = float(np.mean((a - b)[ok])) * data.tick_size if ok.any() else 2 * data.tick_size
    ty = data.tape.type[lo:hi]
    vol = float(data.tape.size[lo:hi][(ty == 4) | (ty == 5)].sum()) / span
    return max(sig, 1e-9), max(spread, data.tick_size), vol


def _bar_baseline(name: str, cfg: SimVsRealConfig) -> str:
    return {"pov": f"pov:{cfg.pov_rate:g}", "ac": f"ac:{cfg.ac_risk_aversion_bps:g}"}.get(name, name)


def _run_bar(data, starts, strategies, side, quantity, cfg: SimVsRealConfig, dynamics: str) -> pd.DataFrame:
    """Bar-market shortfall of each baseline per window (``n_paths`` CRN paths: seed + p)."""
    from lobworld.agents.baselines import make_baseline
    from lobworld.envs.dynamics import ParametricDynamics, ParametricParams
    from lobworld.envs.execution import ExecutionCore

    mids = bt.mid_path(data)
    N = max(1, int(round(cfg.horizon_s / cfg.interval_s)))
    ticker = ticker_of(data)
    rows = []
    for st in starts:
        mid0 = float(bt._mid_at(data, mids, st)) * data.tick_size
        start_minute = (bt._ny_seconds(st) - 9.5 * 3600) / 60.0
        if dynamics == "parametric":
            sig, spread, vol = _pre_window(data, mids, st)
            dyn = ParametricDynamics(ParametricParams(s0=mid0, sigma=sig, spread=spread, tick=data.tick_size,
                                                      volume_rate=vol))
        else:
            from lobworld.world_models.learned import LearnedDynamics

            dyn = LearnedDynamics.load_default(asset=ticker, s0=mid0)
        for s in strategies:
            core = ExecutionCore(cfg.n_paths, side=side, quantity=float(quantity), horizon=N, dt=float(cfg.interval_s),
                                 start_minute=start_minute, dynamics=dyn)
            core.seed_rows(range(cfg.n_paths), [cfg.seed + p for p in range(cfg.n_paths)])
            core.reset()
            policy = make_baseline(_bar_baseline(s, cfg), _BAR_ENV, core)
            done = np.zeros(cfg.n_paths, bool)
            infos: list = [None] * cfg.n_paths
            for _ in range(N):
                core.step(np.asarray(policy(core.obs), np.float64).reshape(cfg.n_paths, -1), autoreset=False)
                if bt.record_ended(core, done, infos):
                    break
            for p, info in enumerate(infos):
                if info is None:
                    raise BacktestError(f"bar env path {p} ({s}) did not finish within {N} steps")
                rows.append(dict(start=pd.Timestamp(st, tz="UTC").tz_convert(bt.TZ), strategy=s, path=p,
                                 shortfall_bps=info["shortfall_bps"]))
    return pd.DataFrame(rows)


def _per_window(tab: pd.DataFrame) -> pd.DataFrame:
    g = tab.groupby(["strategy", "start"], sort=False)["shortfall_bps"]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.size()}).reset_index()


def summarize(windows: pd.DataFrame) -> pd.DataFrame:
    """Bias and RMSE per (ticker, world, strategy) from the per-window errors.

    ``per_side``: the errors ``error_bps`` of every (window, side); ``round_trip``: per window, the
    mean over its sides of sim minus the mean of real (only windows that have both sides).
    ``bias_bps`` = mean error, ``bias_ci95`` its 95% t half-width, ``rmse_bps`` = sqrt(mean error^2),
    ``real_sd_bps`` = sd of the real values, ``bias_ok`` = ``|bias| < 0.5``, ``rmse_ok`` = ``rmse < 2``.
    """
    from scipy import stats

    out = []
    if windows.empty:
        return pd.DataFrame(out)
    for (tk, w, s), g in windows.groupby(["ticker", "world", "strategy"], sort=False):
        rt = g.groupby("start").filter(lambda x: x["side"].nunique() == 2).groupby("start")[
            ["sim_bps", "real_bps"]].mean()
        for measure, sim, real in (("per_side", g["sim_bps"].to_numpy(), g["real_bps"].to_numpy()),
                                   ("round_trip", rt["sim_bps"].to_numpy(), rt["real_bps"].to_numpy())):
            e = sim - real
            n = len(e)
            if n == 0:
                continue
            bias = float(np.mean(e))
            half = float(stats.t.ppf(0.975, n - 1) * np.std(e, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            rmse = float(math.sqrt(np.mean(e * e)))
            out.append(dict(ticker=tk, world=w, strategy=s, measure=measure, n=n, bias_bps=bias, bias_ci95=half,
                            rmse_bps=rmse, real_sd_bps=float(np.std(real, ddof=1)) if n > 1 else float("nan"),
                            bias_ok=abs(bias) < BIAS_TARGET_BPS, rmse_ok=rmse < RMSE_TARGET_BPS))
    return pd.DataFrame(out)


def sim_vs_real(paths: Sequence, config: SimVsRealConfig | None = None, *, policy=None,
                tick_worlds: dict | None = None, progress=None) -> SimVsRealResult:
    """Compare each world's predicted shortfall with the tape's over the held-out windows of each
    LOBSTER message file in ``paths`` (see the module docstring).

    ``policy``: a trained ``LOB-TickExecution-v0`` policy (:func:`lobworld.scenarios.backtest.load_tick_model`)
    added as strategy ``"model"`` on the tick worlds. ``tick_worlds``: extra tick worlds by name
    (a name -> a :class:`~lobworld.envs.tick.TickWorld` or a registered name), compared like
    ``parametric``; e.g. ``{"replay-as-sim": "replay"}`` predicts with the tape itself.
    ``progress(line)`` is called after each (file, side, world).
    """
    from lobworld.envs.tick import registered_tick_worlds

    cfg = config or SimVsRealConfig()
    if not paths:
        raise BacktestError("data: need at least one LOBSTER message file")
    strategies = list(cfg.strategies) + (["model"] if policy is not None else [])
    params = bt.ExecutionParams(pov_rate=cfg.pov_rate, ac_risk_aversion_bps=cfg.ac_risk_aversion_bps)
    tick = {}
    notes: list[str] = []
    for w in cfg.worlds:
        if w in ("parametric", "learned"):
            if w in registered_tick_worlds():
                tick[w] = w
            else:
                notes.append(f"world '{w}': no tick world of that name is registered "
                             f"(registered: {', '.join(registered_tick_worlds())}): skipped")
    tick.update(tick_worlds or {})
    bars = [w for w in cfg.worlds if w.startswith("bar-")]
    bar_strats = [s for s in cfg.strategies if s != "passive_first"]
    if bars and len(bar_strats) < len(strategies):
        left = [s for s in strategies if s not in bar_strats]
        notes.append(f"bar markets: no prediction for {', '.join(left)} (a bar market has no limit orders and "
                     f"a tick-env model does not act on bars)")
    rows, quantities = [], {}
    for path in paths:
        data = bt.tick_world_data(path)
        tk = ticker_of(data)
        q = int(cfg.quantity if cfg.quantity is not None else max(1, round(cfg.adv_share * day_volume(data))))
        quantities[tk] = q
        starts = held_out_starts(data, cfg)
        if not starts:
            raise bt.WindowError(f"start: no {cfg.horizon_s:g}-s window from {cfg.first} to {cfg.last_end} fits in "
                                 f"{data.name}")
        for side in cfg.sides:
            kw = dict(side=side, quantity=q, horizon_s=cfg.horizon_s, interval_s=cfg.interval_s,
                      latency=cfg.latency, n_paths=cfg.n_paths, seed=cfg.seed, params=params, policy=policy)
            real = _per_window(bt.run_tick_execution(path, starts, strategies, world="replay", **kw))
            real = real.rename(columns={"mean": "real_bps"})[["strategy", "start", "real_bps"]]
            sims = {name: (bt.run_tick_execution(path, starts, strategies, world=w, **kw)) for name, w in tick.items()}
            for name in bars:
                sims[name] = _run_bar(data, starts, bar_strats, side, q, cfg, name.split("-", 1)[1])
            for name, tab in sims.items():
                pw = _per_window(tab).rename(columns={"mean": "sim_bps", "sd": "sim_sd_bps", "n": "paths"})
                m = pw.merge(real, on=["strategy", "start"], how="inner")
                m["error_bps"] = m["sim_bps"] - m["real_bps"]
                m.insert(0, "side", side)
                m.insert(0, "world", name)
                m.insert(0, "ticker", tk)
                rows.append(m)
                if progress is not None:
                    progress(f"{tk} {side} {name}: {len(m)} windows x strategies")
    windows = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    cols = ["ticker", "world", "side", "strategy", "start", "real_bps", "sim_bps", "sim_sd_bps", "error_bps", "paths"]
    windows = windows[cols] if not windows.empty else windows
    return SimVsRealResult(windows, summarize(windows), notes, cfg, quantities)

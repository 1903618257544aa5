"""Backtests on the real tape: execution and market-making strategies replayed through the book engine.

Description
    Every backtest is one env of one :class:`~lobworld.envs.book.Book` replaying a window of a
    real LOBSTER day (:class:`~lobworld.envs.replay.ReplayData`). A batch holds
    ``windows x strategies x latency presets`` envs and advances them together: one kernel call
    per stretch of tape between two decision times. At a decision time ``T`` the strategy looks
    at the book as it was at ``T - margin`` (``margin`` = the env's market-data latency mean + 4
    jitters, so the view is never fresher than the latency allows), decides, and schedules its
    commands at ``T``; the engine resolves relative prices on the book at ``T - md`` and the
    message reaches the venue at ``T + entry`` (``docs/book.md``). Replay rule and its bias:
    ``docs/backtest.md`` and ``docs/book.md`` ("Replay rule and its bias"): the tape never reacts
    to the agent.

Execution strategies (a parent order: side, quantity X shares, start, horizon H s, decision
interval dt s; N = H / dt decisions at ``start + k dt``, then a cleanup at ``start + H - d``,
``d = min(1 s, dt / 2)``, cancelling resting orders, and a sweep at ``start + H`` sending a
market order for whatever is left)
    ==================  ===================================================================
    ``twap``            market order at decision k for ``X (k + 1) / N - executed``
    ``vwap``            same with the cumulative U profile of
                        :func:`lobworld.envs.execution.volume_profile` over the horizon
    ``pov``             market orders keeping ``executed >= rate x`` the market's executed
                        volume since the start (visible + hidden), capped at X
    ``ac``              the Almgren-Chriss holdings (:func:`lobworld.agents.almgren_chriss.ac_trajectory`)
                        with sigma measured on the tape before the start
    ``aggressive``      a market order for everything left at every decision
    ``passive_first``   every share not yet executed rests at the own-side touch (a price
                        change is a cancel and a new order at the back); when ``executed``
                        falls more than ``slack`` slices behind the TWAP line it crosses
                        (market order) only the shares it is behind
    ==================  ===================================================================

Market-making strategies (quote size q shares both sides, re-quoted every dt s, no quote on a
side whose fill would take ``|position|`` over the inventory limit; all prices in ticks)
    ``fixed_spread``: bid ``floor(mid - h)``, ask ``ceil(mid + h)``. ``avellaneda_stoikov``:
    reservation ``r = mid - inv gamma sigma^2 (T - t)`` (inv in lots of q), total spread
    ``gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / k)``, quotes ``r -+ spread / 2``
    (gamma 1/(tick lot), sigma ticks/sqrt(s), k 1/tick). Quotes never cross the viewed book.

Units: prices in ticks internally, shortfall in bps of the arrival mid (+ = cost), PnL in USD
(cash + position x the file's last mid), times in ns since the epoch (the tape's clock).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lobworld._checks import in_range, integer, positive
from lobworld.agents.almgren_chriss import ACProblem, ac_trajectory
from lobworld.envs import book_kernels as bk
from lobworld.envs import tick_kernels as tk
from lobworld.envs.book import BookConfig
from lobworld.envs.execution import GOOG_U_PROFILE
from lobworld.world_models.data.session import SESSION_MINUTES, SESSION_OPEN_S
from lobworld.envs.replay import ReplayData, prepare_replay
from lobworld.errors import LobworldError

__all__ = [
    "BacktestError", "WindowError", "UnknownStrategyError", "OrderSizeError", "EXECUTION_STRATEGIES",
    "MM_STRATEGIES", "LATENCY_PRESETS", "ParentOrder", "ExecutionParams", "MarketMakingParams",
    "ExecutionResult", "MarketMakingResult", "run_execution", "run_market_making", "paired_latency_table",
    "parse_time", "afternoon_starts", "mid_path", "plot_execution", "plot_market_making", "TZ",
    "TICK_EXEC_ENV", "TICK_STRATEGIES", "ModelEnvError", "TickStrategy", "ModelStrategy", "run_tick_execution",
    "tick_world_data", "ModelBacktestResult", "model_run_record", "load_tick_model", "backtest_model",
    "TICK_MM_ENV", "TICK_MM_BASELINES", "MARKOUT_S", "MM_PAIRED_METRICS", "model_env_id", "load_tick_mm_model",
    "MMModelBacktestResult", "mm_paired_table", "backtest_mm_model", "plot_mm_model",
]

EXECUTION_STRATEGIES = ("twap", "vwap", "pov", "ac", "aggressive", "passive_first")
MM_STRATEGIES = ("fixed_spread", "avellaneda_stoikov")
LATENCY_PRESETS = ("colocated", "proximity", "cloud", "retail")
TZ = "America/New_York"  #: the exchange clock LOBSTER times are in
_NS = 1_000_000_000
N_PASSIVE_SLOTS = 4  #: order slots 0..3 hold passive_first's resting orders; the rest send market orders
_EXEC_SLOTS = 8
PARALLEL_MIN_ROWS = 200_000  #: a stretch with more tape rows than this (all envs) runs the threaded kernel


class BacktestError(LobworldError):
    """Bad input to a backtest (names the field)."""


class WindowError(BacktestError):
    """A backtest window outside the file's hours (field ``start`` or ``horizon``)."""


class UnknownStrategyError(BacktestError):
    """A strategy name that is not a baseline of the family (field ``strategy``)."""


class OrderSizeError(BacktestError):
    """A parent order or quote size <= 0 (field ``quantity`` / ``size``)."""


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def parse_time(text, date: str | None = None) -> int:
    """``"2012-06-21T14:00"`` (exchange time, America/New_York unless it has a zone), ``"14:00"``
    (with ``date``), a pandas Timestamp or int ns -> int ns since the epoch."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    try:
        s = str(text)
        if date is not None and "T" not in s and " " not in s and "-" not in s:
            s = f"{date}T{s}"
        ts = pd.Timestamp(s)
    except (ValueError, TypeError) as exc:
        raise BacktestError(f"start: cannot read {text!r} as a time (e.g. 2012-06-21T14:00): {exc}") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize(TZ)
    return int(ts.value)


@dataclass(frozen=True)
class ParentOrder:
    """One parent order to execute."""

    side: str
    """``"buy"`` or ``"sell"``."""
    quantity: int
    """Shares (> 0)."""
    start: int
    """Start time, ns since the epoch (see :func:`parse_time`)."""
    horizon_s: float = 1800.0
    """Seconds to complete."""
    interval_s: float = 10.0
    """Seconds between decisions (``horizon_s / interval_s`` decisions, rounded)."""

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise BacktestError(f"side must be 'buy' or 'sell', got {self.side!r}")
        integer("quantity", self.quantity, error=OrderSizeError, what="a whole number of shares > 0")
        positive("horizon", self.horizon_s, error=BacktestError, what="> 0 s")
        in_range("interval", self.interval_s, 0.0, self.horizon_s, lo_open=True, error=BacktestError,
                 what="in (0, horizon] s")

    @property
    def n_decisions(self) -> int:
        return max(1, int(round(self.horizon_s / self.interval_s)))


@dataclass(frozen=True)
class ExecutionParams:
    """Strategy parameters of the execution baselines."""

    pov_rate: float = 0.25
    """POV participation: executed >= rate x the market's executed volume since the start."""
    ac_risk_aversion_bps: float = 1e-4
    """Almgren-Chriss lambda (1/bps of arrival notional), see :mod:`lobworld.agents.almgren_chriss`."""
    ac_eta: float = 1e-3
    """Almgren-Chriss temporary impact eta (USD per share per share/s)."""
    passive_slack: float = 1.0
    """passive_first crosses once it is more than this many TWAP slices (X / N shares) behind."""
    volume_profile: tuple = GOOG_U_PROFILE
    """VWAP's intraday profile coefficients (``a x^2 + b x + c``, x the session fraction)."""


@dataclass(frozen=True)
class MarketMakingParams:
    """Quote parameters (ticks, shares, seconds)."""

    size: int = 100
    """Quote size per side (shares, > 0)."""
    interval_s: float = 1.0
    """Seconds between re-quotes."""
    inventory_limit: int = 1000
    """No quote on a side whose fill would take |position| above this (shares)."""
    half_spread_ticks: float = 10.0
    """fixed_spread: quotes at mid -+ this (ticks; rounded away from the mid)."""
    gamma: float = 1e-4
    """Avellaneda-Stoikov risk aversion (1 / (tick x lot))."""
    sigma_ticks: float | None = None
    """Mid volatility (ticks / sqrt(s)); None: measured on the tape before each window's start."""
    k: float = 0.1
    """Avellaneda-Stoikov fill-intensity decay (1 / tick)."""

    def __post_init__(self) -> None:
        integer("size", self.size, error=OrderSizeError, what="a whole number of shares > 0")
        for f in ("interval_s", "gamma", "k"):
            positive(f, getattr(self, f), error=BacktestError, what="> 0")
        if self.half_spread_ticks < 0 or self.inventory_limit < 0:
            raise BacktestError("half_spread_ticks and inventory_limit must be >= 0")


# ---------------------------------------------------------------------------------------------
# helpers on the tape
# ---------------------------------------------------------------------------------------------
def mid_path(data: ReplayData) -> np.ndarray:
    """Mid price (ticks) of the file's book after each row (NaN where a side is empty)."""
    b, a = data.fpx[:, 0, 0].astype(float), data.fpx[:, 1, 0].astype(float)
    ok = (data.fsz[:, 0, 0] > 0) & (data.fsz[:, 1, 0] > 0)
    return np.where(ok, 0.5 * (a + b), np.nan)


def _mid_at(data: ReplayData, mids: np.ndarray, t) -> np.ndarray:
    """The file's mid (ticks) in force at times ``t`` (the last row at or before ``t``)."""
    j = np.searchsorted(data.tape.t, np.asarray(t, np.int64), side="right") - 1
    return mids[np.clip(j, 0, len(mids) - 1)]


def _sigma_ticks(data: ReplayData, mids: np.ndarray, t_end: int, lookback_s: float = 1800.0) -> float:
    """Realised mid volatility (ticks / sqrt(s)) from 10-s mid changes over ``lookback_s`` before
    ``t_end`` (the start of the window: no look-ahead). Falls back to the window after it."""
    t0 = int(data.tape.t[0])
    lo = max(t0, t_end - int(lookback_s * _NS))
    if t_end - lo < 60 * _NS:  # too little tape before: use what follows
        lo, t_end = t_end, min(int(data.tape.t[-1]), t_end + int(lookback_s * _NS))
    grid = np.arange(lo, t_end, 10 * _NS)
    if len(grid) < 3:
        return 1.0
    d = np.diff(_mid_at(data, mids, grid))
    d = d[np.isfinite(d)]
    return float(np.std(d) / math.sqrt(10.0)) if len(d) > 1 else 1.0


def _check_window(data: ReplayData, t_start: int, t_end: int, what: str = "start") -> tuple[int, int]:
    t = data.tape.t
    fmt = lambda x: pd.Timestamp(int(x), tz="UTC").tz_convert(TZ).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    if t_start <= int(t[0]) or t_start > int(t[-1]):
        raise WindowError(f"{what}: {fmt(t_start)} is outside the file's hours {fmt(t[0])} - {fmt(t[-1])} "
                          f"({data.name})")
    if t_end > int(t[-1]):
        raise WindowError(f"horizon: the window ends at {fmt(t_end)}, after the file's last message at "
                          f"{fmt(t[-1])} ({data.name})")
    r0 = int(np.searchsorted(t, t_start, side="left")) - 1
    r1 = int(min(len(t), np.searchsorted(t, t_end + 2 * _NS, side="right")))
    return r0, r1


def afternoon_starts(data: ReplayData, horizon_s: float = 1800.0, first: str = "13:00", last_end: str = "15:55",
                     step_s: float | None = None) -> list[int]:
    """Start times (ns) of back-to-back windows of ``horizon_s`` from ``first`` to ``last_end``
    (exchange time) of the file's date."""
    date = pd.Timestamp(int(data.tape.t[0]), tz="UTC").tz_convert(TZ).strftime("%Y-%m-%d")
    t0, t1 = parse_time(first, date), parse_time(last_end, date)
    step = int((step_s or horizon_s) * _NS)
    out = []
    s = t0
    while s + int(horizon_s * _NS) <= t1:
        out.append(s)
        s += step
    return out


def _vwap_fraction(t_start: int, horizon_s: float, u: np.ndarray, coef) -> np.ndarray:
    """Cumulative share of the U profile's volume from the start to fraction ``u`` of the horizon."""
    tod = pd.Timestamp(t_start, tz="UTC").tz_convert(TZ)
    sec = tod.hour * 3600 + tod.minute * 60 + tod.second + tod.microsecond * 1e-6
    x0 = (sec - SESSION_OPEN_S) / (SESSION_MINUTES * 60)
    x1 = x0 + horizon_s / (SESSION_MINUTES * 60)
    a, b, c = coef

    def M(x):
        x = np.clip(x, 0.0, 1.0)
        return a * x ** 3 / 3 + b * x ** 2 / 2 + c * x

    tot = M(x1) - M(x0)
    if not tot > 0:
        return np.asarray(u, float)
    return (M(x0 + np.asarray(u) * (x1 - x0)) - M(x0)) / tot


# ---------------------------------------------------------------------------------------------
# the batch driver: one kernel call per stretch of tape
# ---------------------------------------------------------------------------------------------
class _Driver:
    """A book over many windows and the decision loop. ``times[i]`` is env ``i``'s decision
    times (ns, increasing); ``decide(i, k, T)`` returns its ``(m, N_CCOL)`` commands at T."""

    def __init__(self, data, windows, latencies, seed, depth, max_orders, n_cmds):
        cfg = BookConfig(depth=depth, max_orders=max_orders, max_commands=max(256, n_cmds), max_fills=1 << 16,
                         tick_size=data.tick_size)
        self.data = data
        self.book = prepare_replay(data, windows, config=cfg, latency=list(latencies), seed=seed)
        lat = self.book.lat
        self.margin = (lat[:, bk.L_MD] + 4.0 * lat[:, bk.L_MD_JIT]).astype(np.int64) + 1000
        self.t_live: list[dict[int, int]] = [dict() for _ in range(len(windows))]

    def _record_live(self):
        o = self.book.orders
        for i in range(o.shape[0]):
            d = self.t_live[i]
            for k in range(o.shape[1]):
                oid = int(o[i, k, bk.O_ID])
                if oid and o[i, k, bk.O_T_LIVE] >= 0 and oid not in d:
                    d[oid] = int(o[i, k, bk.O_T_LIVE])

    def run(self, times: Sequence[np.ndarray], decide, after=None):
        n = self.book.n_envs
        t = self.data.tape.t
        kmax = max(len(x) for x in times)
        for k in range(kmax):
            B = np.empty(n, np.int64)
            for i in range(n):
                if k < len(times[i]):
                    B[i] = times[i][k] - self.margin[i]
                else:
                    B[i] = times[i][-1] + _NS  # finished: run its last messages in flight
            stop = np.searchsorted(t, B, side="left").astype(np.int64)
            stop = np.minimum(np.maximum(stop, self.book.es[:, bk.ES_POS]), self.book.windows[:, 1])
            # threads pay only on long stretches (a parallel launch costs more than a short serial run)
            par = bool(np.sum(stop - self.book.es[:, bk.ES_POS]) > PARALLEL_MIN_ROWS)
            self.book.run(self.data.tape, stop, t_flush=B, file=self.data.file, resync=True, parallel=par)
            self._record_live()
            for i in range(n):
                if k < len(times[i]):
                    c = decide(i, k, int(times[i][k]))
                    if c is not None and len(c):
                        self.book.schedule(i, np.asarray(c, np.int64).reshape(-1, bk.N_CCOL))
            if after is not None:
                after(k)
        # the tail: everything in flight reaches the venue, then the window's last rows
        self.book.run(self.data.tape, self.book.windows[:, 1].copy(), file=self.data.file, resync=True)
        self._record_live()


def _cmd(t, kind, slot, side=0, price=0, size=0, pmode=bk.PM_ABS):
    return (int(t), int(kind), int(slot), int(side), int(pmode), int(price), int(size))


def _expand(items, n_rep):
    return [x for x in items for _ in range(n_rep)]


# ---------------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------------
@dataclass
class ExecutionResult:
    """What :func:`run_execution` measured: one row per env in :attr:`table`."""

    table: pd.DataFrame
    """Columns: strategy, latency, start, side, quantity, executed, completion, is_bps,
    avg_price, arrival_mid, passive_shares, aggressive_shares, passive_fills, aggressive_fills,
    avg_queue_wait_s, commands_rejected, cancels_failed."""
    fills: list = field(default_factory=list)
    """Per env: DataFrame of fills (t ns, price ticks, shares, kind 'passive'/'aggressive', queue_wait_s)."""
    executed_path: list = field(default_factory=list)
    """Per env: ``(times ns, executed shares)`` at each decision."""
    data: ReplayData | None = None
    orders: list = field(default_factory=list)
    """Per env: its :class:`ParentOrder`."""
    book: object = None
    """The :class:`~lobworld.envs.book.Book` after the run (orders, fill log, counters)."""


def _exec_targets(strategy: str, po: ParentOrder, params: ExecutionParams, data, mids, mid0_ticks: float):
    """Cumulative shares the schedule wants done after each decision k (length N; NaN for pov)."""
    N, X = po.n_decisions, po.quantity
    u = np.arange(1, N + 1) / N
    if strategy in ("twap", "passive_first"):
        f = u
    elif strategy == "vwap":
        f = _vwap_fraction(po.start, po.horizon_s, u, params.volume_profile)
    elif strategy == "aggressive":
        f = np.ones(N)
    elif strategy == "ac":
        sig = _sigma_ticks(data, mids, po.start) * data.tick_size
        spread = np.nanmean(data.fpx[:, 1, 0] - data.fpx[:, 0, 0]) * data.tick_size
        pr = ACProblem(X=float(X), N=N, tau=po.horizon_s / N, sigma=max(sig, 1e-9), eta=params.ac_eta, gamma=0.0,
                       eps=0.5 * spread, s0=mid0_ticks * data.tick_size)
        x = ac_trajectory(pr, params.ac_risk_aversion_bps)
        f = 1.0 - x[1:] / X
    elif strategy == "pov":
        return np.full(N, np.nan)
    else:
        raise UnknownStrategyError(f"strategy: unknown execution strategy {strategy!r}; "
                                   f"one of {', '.join(EXECUTION_STRATEGIES)}")
    return np.minimum(X, np.round(X * np.asarray(f, float)))


def run_execution(data: ReplayData, orders: Sequence[ParentOrder], strategies: Sequence[str],
                  latencies: Sequence[str] = ("cloud",), *, params: ExecutionParams | None = None, seed: int = 0,
                  depth: int | None = None) -> ExecutionResult:
    """Run every strategy on every parent order under every latency, in one batch.

    Env order: for each parent order, for each strategy, for each latency. A preset named
    several times in ``latencies`` gives independent latency draws (env ``i`` seeds its streams
    with ``seed + i``). ``depth`` (levels per side) defaults to the file's level count (a book
    as deep as the file).
    """
    params = params or ExecutionParams()
    for s in strategies:
        if s not in EXECUTION_STRATEGIES:
            raise UnknownStrategyError(f"strategy: unknown execution strategy {s!r}; "
                                       f"one of {', '.join(EXECUTION_STRATEGIES)}")
    if not orders:
        raise BacktestError("orders: need at least one parent order")
    mids = mid_path(data)
    envs = [(po, s, lat) for po in orders for s in strategies for lat in latencies]
    windows, times, info = [], [], []
    for po, s, lat in envs:
        t_end = po.start + int(po.horizon_s * _NS)
        r0, r1 = _check_window(data, po.start, t_end)
        windows.append((r0, r1))
        N = po.n_decisions
        dt = int(po.horizon_s * _NS) // N
        d = min(_NS, dt // 2)
        T = np.r_[po.start + np.arange(N, dtype=np.int64) * dt, t_end - d, t_end].astype(np.int64)
        times.append(T)
        mid0 = float(mids[r0])
        info.append(dict(po=po, strategy=s, latency=lat, side=bk.BID if po.side == "buy" else bk.ASK, mid0=mid0,
                         target=_exec_targets(s, po, params, data, mids, mid0), N=N, slice=po.quantity / N,
                         mslot=N_PASSIVE_SLOTS))
    drv = _Driver(data, windows, [e[2] for e in envs], seed, depth or data.levels, _EXEC_SLOTS,
                  4 * max(len(x) for x in times) + 16)
    book = drv.book
    vol0 = (book.cnt[:, bk.EXEC_VOL_VIS] + book.cnt[:, bk.EXEC_VOL_HID]).copy()
    paths = [[] for _ in envs]

    def executed(i):
        sd = info[i]["side"]
        return int(book.acct[i, bk.A_BUY_QTY] if sd == bk.BID else book.acct[i, bk.A_SELL_QTY])

    def market(i, T, size, out):
        if size <= 0:
            return
        e = info[i]
        slot = e["mslot"]
        e["mslot"] = N_PASSIVE_SLOTS + (slot + 1 - N_PASSIVE_SLOTS) % (_EXEC_SLOTS - N_PASSIVE_SLOTS)
        out.append(_cmd(T, bk.K_MARKET, slot, e["side"], 0, size))

    def decide(i, k, T):
        e = info[i]
        X, N, sd = e["po"].quantity, e["N"], e["side"]
        ex = executed(i)
        paths[i].append((T, ex))
        o = book.orders[i]
        working = [j for j in range(o.shape[0]) if o[j, bk.O_STATUS] in (bk.ST_LIVE, bk.ST_PENDING)]
        committed = int(sum(o[j, bk.O_REM] for j in working))
        out: list = []
        s = e["strategy"]
        if k == N:  # cleanup: cancel every resting order
            for j in working:
                out.append(_cmd(T, bk.K_CANCEL, j))
            return out
        if k == N + 1:  # sweep
            market(i, T, X - ex - committed, out)
            return out
        if s == "passive_first":
            line = X * k / N
            M = 0
            if ex < line - params.passive_slack * e["slice"]:
                M = int(round(line - ex))
            pas = [j for j in working if j < N_PASSIVE_SLOTS]
            free = X - ex - committed
            taken = 0
            if M > free:  # cross with shares taken from the resting orders (a reduce keeps the place)
                for j in pas:
                    c = min(M - free - taken, int(o[j, bk.O_REM]))
                    if c > 0:
                        out.append(_cmd(T, bk.K_REDUCE, j, 0, 0, c))
                        taken += c
                M = min(M, free + taken)
            market(i, T, M, out)
            free = free + taken - M
            touch = int(book.px[i, sd, 0]) if book.nl[i, sd] else 0
            for j in pas:  # off the touch: cancel (its shares are posted again once the cancel is done)
                if o[j, bk.O_STATUS] == bk.ST_LIVE and o[j, bk.O_PRICE] != touch:
                    out.append(_cmd(T, bk.K_CANCEL, j))
            idle = [j for j in range(N_PASSIVE_SLOTS) if j not in working]
            if free > 0 and touch and idle:
                out.append(_cmd(T, bk.K_LIMIT, idle[0], sd, 0, free, bk.PM_TOUCH))
            return out
        if s == "pov":
            v = int(book.cnt[i, bk.EXEC_VOL_VIS] + book.cnt[i, bk.EXEC_VOL_HID] - vol0[i])
            want = min(X, int(round(params.pov_rate * v)))
        else:
            want = int(e["target"][k])
        market(i, T, want - ex - committed, out)
        return out

    drv.run(times, decide)
    rows, fills = [], []
    for i, e in enumerate(info):
        po = e["po"]
        fl = book.fill_log(i)
        ex = executed(i)
        cash = int(book.acct[i, bk.A_CASH])
        avg = abs(cash) / ex if ex else float("nan")
        sign = 1.0 if po.side == "buy" else -1.0
        is_bps = sign * (avg - e["mid0"]) / e["mid0"] * 1e4 if ex else float("nan")
        kinds = fl[:, bk.F_KIND]
        pas = kinds == bk.FILL_PASSIVE
        live = drv.t_live[i]
        wait = np.array([(fl[j, bk.F_T] - live.get(int(fl[j, bk.F_ID]), fl[j, bk.F_T])) / _NS
                         for j in range(len(fl))], float)
        q = fl[:, bk.F_QTY].astype(float)
        avg_wait = float(np.sum(wait[pas] * q[pas]) / np.sum(q[pas])) if pas.any() else float("nan")
        fills.append(pd.DataFrame({"t": fl[:, bk.F_T], "price": fl[:, bk.F_PRICE], "shares": fl[:, bk.F_QTY],
                                   "kind": np.where(pas, "passive", "aggressive"), "queue_wait_s":
                                   np.where(pas, wait, np.nan)}))
        rows.append(dict(
            strategy=e["strategy"], latency=e["latency"], start=pd.Timestamp(po.start, tz="UTC").tz_convert(TZ),
            side=po.side, quantity=po.quantity, executed=ex, completion=ex / po.quantity, is_bps=is_bps,
            avg_price=avg * data.tick_size if ex else float("nan"), arrival_mid=e["mid0"] * data.tick_size,
            passive_shares=int(q[pas].sum()), aggressive_shares=int(q[~pas].sum()),
            passive_fills=int(pas.sum()), aggressive_fills=int((~pas).sum()), avg_queue_wait_s=avg_wait,
            commands_rejected=int(book.cnt[i, bk.N_CMD_REJECTED]), cancels_failed=int(book.cnt[i, bk.N_CANCEL_FAILED]),
        ))
    return ExecutionResult(pd.DataFrame(rows), fills, [np.array(p, np.int64) for p in paths], data,
                           [e["po"] for e in info], book)


# ---------------------------------------------------------------------------------------------
# market making
# ---------------------------------------------------------------------------------------------
@dataclass
class MarketMakingResult:
    """What :func:`run_market_making` measured: one row per env in :attr:`table`."""

    table: pd.DataFrame
    """Columns: strategy, latency, start, pnl_usd, cash_usd, final_position, bid_fills, ask_fills,
    bought, sold, passive_shares, aggressive_shares, max_abs_inventory, adverse_1s_ticks,
    adverse_10s_ticks (mean mid move against the agent after its fills, share-weighted; + =
    adverse), markout_10s_ticks (mean ``sign (mid(t + 10 s) - price)``, + = the fill made money)."""
    fills: list = field(default_factory=list)
    """Per env: DataFrame of fills (t, side, price ticks, shares, kind, mid_1s, mid_10s)."""
    inventory: list = field(default_factory=list)
    """Per env: ``(times ns, position shares)`` at each decision."""
    data: ReplayData | None = None
    book: object = None
    """The :class:`~lobworld.envs.book.Book` after the run."""


def _as_quotes(mid, inv_lots, tau_s, p: MarketMakingParams, sigma):
    r = mid - inv_lots * p.gamma * sigma ** 2 * tau_s
    spread = p.gamma * sigma ** 2 * tau_s + (2.0 / p.gamma) * math.log1p(p.gamma / p.k)
    return r - 0.5 * spread, r + 0.5 * spread


def run_market_making(data: ReplayData, starts: Sequence[int], strategies: Sequence[str] = MM_STRATEGIES,
                      latencies: Sequence[str] = LATENCY_PRESETS, *, horizon_s: float = 1800.0,
                      params: MarketMakingParams | None = None, seed: int = 0,
                      depth: int | None = None) -> MarketMakingResult:
    """Quote every strategy over every window ``[start, start + horizon_s)`` under every latency,
    in one batch (env order: for each start, strategy, latency)."""
    p = params or MarketMakingParams()
    for s in strategies:
        if s not in MM_STRATEGIES:
            raise UnknownStrategyError(f"strategy: unknown market-making strategy {s!r}; "
                                       f"one of {', '.join(MM_STRATEGIES)}")
    positive("horizon", horizon_s, error=BacktestError, what="> 0 s")
    if not starts:
        raise BacktestError("start: need at least one window start")
    mids = mid_path(data)
    envs = [(int(st), s, lat) for st in starts for s in strategies for lat in latencies]
    H = int(horizon_s * _NS)
    dt = int(p.interval_s * _NS)
    windows, times, info = [], [], []
    sig_cache: dict[int, float] = {}
    for st, s, lat in envs:
        r0, r1 = _check_window(data, st, st + H)
        windows.append((r0, r1))
        T = np.r_[st + np.arange(0, H, dt, dtype=np.int64), st + H].astype(np.int64)
        times.append(T)
        if st not in sig_cache:
            sig_cache[st] = p.sigma_ticks if p.sigma_ticks is not None else _sigma_ticks(data, mids, st)
        info.append(dict(start=st, strategy=s, latency=lat, sigma=sig_cache[st], n=len(T)))
    drv = _Driver(data, windows, [e[2] for e in envs], seed, depth or data.levels, 4,
                  3 * max(len(x) for x in times) + 16)
    book = drv.book
    inv = [[] for _ in envs]

    def decide(i, k, T):
        e = info[i]
        pos = int(book.acct[i, bk.A_POS])
        inv[i].append((T, pos))
        if k == e["n"] - 1:
            return [_cmd(T, bk.K_CANCEL, 0), _cmd(T, bk.K_CANCEL, 1)]
        if not (book.nl[i, 0] and book.nl[i, 1]):
            return None
        bb, ba = int(book.px[i, 0, 0]), int(book.px[i, 1, 0])
        mid = 0.5 * (bb + ba)
        if e["strategy"] == "fixed_spread":
            qb, qa = mid - p.half_spread_ticks, mid + p.half_spread_ticks
        else:
            qb, qa = _as_quotes(mid, pos / p.size, (e["start"] + H - T) / _NS, p, e["sigma"])
        bid = min(int(math.floor(qb + 1e-9)), ba - 1)
        ask = max(int(math.ceil(qa - 1e-9)), bb + 1)
        out = []
        for slot, sd, price, ok in ((0, bk.BID, bid, pos + p.size <= p.inventory_limit),
                                    (1, bk.ASK, ask, pos - p.size >= -p.inventory_limit)):
            st_ = book.orders[i, slot, bk.O_STATUS]
            working = st_ in (bk.ST_LIVE, bk.ST_PENDING)
            if not ok or price <= 0:
                if working:
                    out.append(_cmd(T, bk.K_CANCEL, slot))
                continue
            if working and book.orders[i, slot, bk.O_PRICE] == price and book.orders[i, slot, bk.O_REM] > 0:
                continue  # same price: keep the queue place
            out.append(_cmd(T, bk.K_QUOTE, slot, sd, price, p.size))
        return out

    drv.run(times, decide)
    rows, fills = [], []
    for i, e in enumerate(info):
        fl = book.fill_log(i)
        t_end = e["start"] + H
        mid_end = float(_mid_at(data, mids, t_end))
        cash = int(book.acct[i, bk.A_CASH])
        pos = int(book.acct[i, bk.A_POS])
        pnl = (cash + pos * mid_end) * data.tick_size
        sd = fl[:, bk.F_SIDE]
        sign = np.where(sd == bk.BID, 1.0, -1.0)
        q = fl[:, bk.F_QTY].astype(float)
        m0 = _mid_at(data, mids, fl[:, bk.F_T])
        m1 = _mid_at(data, mids, fl[:, bk.F_T] + _NS)
        m10 = _mid_at(data, mids, fl[:, bk.F_T] + 10 * _NS)

        def wmean(x):
            ok = np.isfinite(x)
            return float(np.sum(x[ok] * q[ok]) / np.sum(q[ok])) if ok.any() else float("nan")

        fills.append(pd.DataFrame({"t": fl[:, bk.F_T], "side": np.where(sd == bk.BID, "buy", "sell"),
                                   "price": fl[:, bk.F_PRICE], "shares": fl[:, bk.F_QTY],
                                   "kind": np.where(fl[:, bk.F_KIND] == bk.FILL_PASSIVE, "passive", "aggressive"),
                                   "mid_1s": m1, "mid_10s": m10}))
        ip = np.array(inv[i], np.int64).reshape(-1, 2)
        rows.append(dict(
            strategy=e["strategy"], latency=e["latency"], start=pd.Timestamp(e["start"], tz="UTC").tz_convert(TZ),
            pnl_usd=pnl, cash_usd=cash * data.tick_size, final_position=pos,
            bid_fills=int(np.sum(sd == bk.BID)), ask_fills=int(np.sum(sd == bk.ASK)),
            bought=int(book.acct[i, bk.A_BUY_QTY]), sold=int(book.acct[i, bk.A_SELL_QTY]),
            passive_shares=int(book.acct[i, bk.A_PASSIVE_QTY]), aggressive_shares=int(book.acct[i, bk.A_AGGR_QTY]),
            max_abs_inventory=int(np.abs(ip[:, 1]).max()) if len(ip) else 0,
            adverse_1s_ticks=wmean(-sign * (m1 - m0)), adverse_10s_ticks=wmean(-sign * (m10 - m0)),
            markout_10s_ticks=wmean(sign * (m10 - fl[:, bk.F_PRICE])),
        ))
    return MarketMakingResult(pd.DataFrame(rows), fills, [np.array(x, np.int64) for x in inv], data, book)


def paired_latency_table(table: pd.DataFrame, metric: str = "pnl_usd", base: str = "colocated",
                         key: Sequence[str] = ("strategy", "start")) -> pd.DataFrame:
    """Per strategy and latency: mean of ``metric`` and the paired difference to ``base`` across
    windows (same window, same strategy), with a 95% t interval of the mean difference."""
    from scipy import stats

    if metric not in table.columns:
        raise BacktestError(f"metric: {metric!r} is not a column ({', '.join(table.columns)})")
    out = []
    for strat, g in table.groupby("strategy", sort=False):
        b = g[g["latency"] == base].set_index(list(key))[metric]
        for lat, gl in g.groupby("latency", sort=False):
            v = gl.set_index(list(key))[metric]
            d = (v - b.reindex(v.index)).dropna()
            n = len(d)
            half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            out.append(dict(strategy=strat, latency=lat, windows=n, mean=float(v.mean()),
                            diff_vs_base=float(d.mean()) if n else float("nan"), ci95_half=half))
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------------
def plot_execution(result: ExecutionResult, env: int, path) -> None:
    """PNG of env ``env``'s fills (passive / aggressive) on the real mid path, with the shares done."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = result.data
    po = result.orders[env]
    mids = mid_path(data)
    t0, t1 = po.start - 60 * _NS, po.start + int(po.horizon_s * _NS) + 60 * _NS
    r = slice(int(np.searchsorted(data.tape.t, t0)), int(np.searchsorted(data.tape.t, t1)))
    tt = (data.tape.t[r] - po.start) / 60e9
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(tt, mids[r] * data.tick_size, lw=0.7, color="0.3", label="mid (real tape)")
    f = result.fills[env]
    for kind, mk, col in (("passive", "o", "tab:blue"), ("aggressive", "x", "tab:red")):
        g = f[f["kind"] == kind]
        if len(g):
            ax.scatter((g["t"] - po.start) / 60e9, g["price"] * data.tick_size, s=8 + 40 * g["shares"] / max(1, f["shares"].max()),
                       marker=mk, color=col, label=f"{kind} fills", zorder=3)
    ax.set_xlabel("minutes from start")
    ax.set_ylabel("USD")
    row = result.table.iloc[env]
    ax.set_title(f"{data.name}: {row['strategy']} {po.side} {po.quantity} sh, latency {row['latency']}: "
                 f"IS {row['is_bps']:.2f} bps, completion {row['completion']:.2f}", fontsize=9)
    ax2 = ax.twinx()
    p = result.executed_path[env]
    if len(p):
        ax2.step((p[:, 0] - po.start) / 60e9, p[:, 1], where="post", color="tab:green", lw=1, label="shares done")
    ax2.set_ylabel("shares done")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_market_making(result: MarketMakingResult, envs: Sequence[int], path) -> None:
    """PNG: the real mid path and the inventory path of ``envs`` (e.g. one strategy, each latency)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = result.data
    tab = result.table
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    st = int(tab.iloc[envs[0]]["start"].value)
    inv0 = result.inventory[envs[0]]
    t1 = int(inv0[-1, 0]) if len(inv0) else st
    mids = mid_path(data)
    r = slice(int(np.searchsorted(data.tape.t, st)), int(np.searchsorted(data.tape.t, t1)))
    ax.plot((data.tape.t[r] - st) / 60e9, mids[r] * data.tick_size, lw=0.7, color="0.3")
    ax.set_ylabel("mid USD (real tape)")
    for i in envs:
        inv = result.inventory[i]
        row = tab.iloc[i]
        ax2.step((inv[:, 0] - st) / 60e9, inv[:, 1], where="post", lw=0.9,
                 label=f"{row['strategy']} {row['latency']}: PnL {row['pnl_usd']:.0f} USD")
    ax2.set_ylabel("inventory (shares)")
    ax2.set_xlabel("minutes from start")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# strategies and trained models on the tick execution env (LOB-TickExecution-v0)
# ---------------------------------------------------------------------------------------------
TICK_EXEC_ENV = "LOB-TickExecution-v0"
#: execution strategies as child-order rules of ``LOB-TickExecution-v0`` (:class:`TickStrategy`)
TICK_STRATEGIES = ("twap", "vwap", "pov", "ac", "aggressive", "passive_first")
#: env kwargs a trained model's observations depend on: taken from its run record
_OBS_KWARGS = ("obs_levels", "size_scale", "max_level", "vol_halflife", "depth", "queue_model", "queue_power",
               "max_fills")


class ModelEnvError(BacktestError):
    """A trained model whose env id is not the one a backtest runs (field ``model``)."""


def _exec_side_qty(acct: np.ndarray, idx: np.ndarray, side: str) -> np.ndarray:
    return acct[idx, bk.A_BUY_QTY if side == "buy" else bk.A_SELL_QTY].astype(np.int64)


def _working_rem(orders: np.ndarray, idx: np.ndarray, slot: int) -> np.ndarray:
    st = orders[idx, slot, bk.O_STATUS]
    return np.where((st == bk.ST_LIVE) | (st == bk.ST_PENDING), orders[idx, slot, bk.O_REM], 0).astype(np.int64)


class TickStrategy:
    """An execution strategy as actions of ``LOB-TickExecution-v0`` for the envs ``idx`` of a core.

    The env's action is ``[fraction, type, level]`` with ``round(fraction * R)`` shares (``R``
    the shares still to execute, Q - executed); ``act(k)`` returns the actions of decision ``k``
    (0 .. N-1) from the core's state (executed shares, working children, touch, the tape's
    executed volume), so the same rule runs on every tick world (replay, parametric, learned).

    ===================  =====================================================================
    ``twap``, ``vwap``,  a market child for ``target_k - executed - working``, with
    ``ac``,              ``target_k`` the cumulative schedule after decision k of
    ``aggressive``       :func:`run_execution` (``X (k + 1) / N``; the U profile; the
                         Almgren-Chriss holdings with sigma from the 30 min of tape before the
                         start; everything)
    ``pov``              a market child keeping ``executed >= rate x`` the world's executed
                         volume since the start (visible + hidden), capped at Q
    ``passive_first``    one resting child at the own-side touch holds every free share; a
                         child off the touch is cancelled (posted again at the next decision);
                         more than ``slack`` TWAP slices behind the line ``X k / N`` it crosses
                         the shares it is behind with a market child, first reducing the
                         resting child (keeps its place) when it holds them, then crossing at
                         the next decision
    ===================  =====================================================================

    The env's rules apply: one child rests (slot 0) and one market child is in flight
    (slot 1) at most; at the horizon the env withdraws the children and sends the rest into
    the book at once (forced completion).
    """

    def __init__(self, name: str, core, idx: np.ndarray, po: ParentOrder, params: ExecutionParams,
                 data: ReplayData, mids: np.ndarray):
        if name not in TICK_STRATEGIES:
            raise UnknownStrategyError(f"strategy: unknown tick execution strategy {name!r}; "
                                       f"one of {', '.join(TICK_STRATEGIES)}")
        self.name, self.core, self.idx, self.po, self.params = name, core, np.asarray(idx, np.int64), po, params
        self.N, self.X = po.n_decisions, int(po.quantity)
        self.sd = bk.BID if po.side == "buy" else bk.ASK
        mid0 = float(_mid_at(data, mids, po.start))
        self.target = None
        if name not in ("pov", "passive_first"):
            self.target = _exec_targets(name, po, params, data, mids, mid0).astype(np.int64)
        b = core.book
        self.vol0 = (b.cnt[self.idx, bk.EXEC_VOL_VIS] + b.cnt[self.idx, bk.EXEC_VOL_HID]).copy()

    def act(self, k: int) -> np.ndarray:
        b, idx = self.core.book, self.idx
        n = len(idx)
        out = np.zeros((n, 3), np.float64)
        ex = _exec_side_qty(b.acct, idx, self.po.side)
        R = self.X - ex
        child = _working_rem(b.orders, idx, 0)
        mkt = _working_rem(b.orders, idx, 1)
        free = R - child - mkt
        safe_r = np.maximum(R, 1).astype(np.float64)
        if self.name == "passive_first":
            line = self.X * k / self.N
            behind = line - ex
            M = np.where(behind > self.params.passive_slack * self.X / self.N, np.rint(behind), 0).astype(np.int64)
            st = b.orders[idx, 0, bk.O_STATUS]
            live = st == bk.ST_LIVE
            touch = b.px[idx, self.sd, 0]
            has_touch = b.nl[idx, self.sd] > 0
            at_touch = live & has_touch & (b.orders[idx, 0, bk.O_PRICE] == touch)
            for j in range(n):
                if M[j] > 0 and mkt[j] == 0:
                    if free[j] >= M[j]:
                        out[j] = (M[j] / safe_r[j], 0.0, 0.0)
                    elif at_touch[j] and child[j] - (M[j] - free[j]) > 0:
                        out[j] = ((child[j] - (M[j] - free[j])) / safe_r[j], 1.0, 0.0)  # reduce: keeps its place
                    elif child[j] > 0:
                        out[j] = (0.0, 3.0, 0.0)  # cancel; cross at the next decision
                    continue
                if live[j] and not at_touch[j]:
                    out[j] = (0.0, 3.0, 0.0)
                elif child[j] == 0 and free[j] > 0 and has_touch[j]:
                    out[j] = (free[j] / safe_r[j], 1.0, 0.0)
            return out
        if self.name == "pov":
            v = b.cnt[idx, bk.EXEC_VOL_VIS] + b.cnt[idx, bk.EXEC_VOL_HID] - self.vol0
            want = np.minimum(self.X, np.rint(self.params.pov_rate * v)).astype(np.int64)
        else:
            want = np.full(n, self.target[min(k, self.N - 1)], np.int64)
        q = np.clip(want - ex - child - mkt, 0, None)
        out[:, 0] = np.where(R > 0, np.minimum(q / safe_r, 1.0), 0.0)
        return out


class ModelStrategy:
    """A trained policy (:class:`~lobworld.agents.training.SB3Policy`) acting on envs ``idx``:
    deterministic actions from the env's observations (normalised by its VecNormalize
    statistics when it has them)."""

    name = "model"

    def __init__(self, policy, core, idx):
        self.policy, self.core, self.idx = policy, core, np.asarray(idx, np.int64)

    def act(self, k: int) -> np.ndarray:
        return np.asarray(self.policy(self.core.obs[self.idx]), np.float64).reshape(len(self.idx), -1)


def _ny_seconds(t_ns: int) -> float:
    ts = pd.Timestamp(int(t_ns), tz="UTC").tz_convert(TZ)
    return float((int(t_ns) - ts.normalize().value) / 1e9)


def tick_world_data(path) -> ReplayData:
    """The :class:`ReplayData` a tick env built on LOBSTER file ``path`` replays (loaded once per process)."""
    from lobworld.envs.tick import ReplayWorld

    return ReplayWorld.from_path(path).data


def record_ended(core, done: np.ndarray, infos: list) -> bool:
    """After a ``core.step(..., autoreset=False)``: store ``core.episode_info(i)`` in ``infos[i]`` for
    every env that ended in this step and not before, mark it in ``done`` (in place), and return
    whether every env has ended."""
    new = (core.terminated | core.truncated) & ~done
    for i in np.flatnonzero(new):
        infos[i] = core.episode_info(int(i))
    done |= new
    return bool(done.all())


def run_tick_execution(path, starts: Sequence[int], strategies: Sequence[str], *, side: str = "sell",
                       quantity: int = 1000, horizon_s: float = 600.0, interval_s: float = 10.0,
                       world="replay", latency="cloud", n_paths: int = 1, seed: int = 0,
                       params: ExecutionParams | None = None, policy=None,
                       env_kwargs: dict | None = None) -> pd.DataFrame:
    """Run every strategy on ``LOB-TickExecution-v0`` over each window ``[start, start + horizon_s)``
    of LOBSTER file ``path`` in tick world ``world`` (``"replay"``: the real tape; ``"parametric"``,
    ``"learned"`` or a :class:`~lobworld.envs.tick.TickWorld`: conditioned on the file's book at the
    start), ``n_paths`` paths each.

    One :class:`~lobworld.envs.tick.TickExecutionCore` per window holds ``len(strategies) x n_paths``
    envs; env ``(strategy, p)`` is seeded ``seed + p``, so every strategy meets the same latency
    draws and, on a generated world, the same random streams (common random numbers). Names are
    :data:`TICK_STRATEGIES` and ``"model"`` (``policy``, an SB3Policy). Decisions every
    ``interval_s`` (``N = round(horizon_s / interval_s)`` of them), no autoreset; the metrics are
    the env's episode info at its end (``shortfall_bps`` + = cost in bps of the arrival mid).

    Returns one row per env: start, strategy, path, seed, the episode info (shortfall_bps,
    completion, shares_executed, passive_shares, aggressive_shares, forced_shares,
    forced_beyond_book_shares, vwap, arrival_price, episode_length) and, from the env's fill
    log, passive_fills, aggressive_fills (forced completion included) and avg_queue_wait_s (the
    share-weighted time from a child going live at the venue to each of its passive fills; NaN
    without passive fills). The fill log keeps ``max_fills`` records per episode (256 by
    default; the counts cover those).
    """
    from lobworld.envs.tick import TickExecutionCore

    params = params or ExecutionParams()
    strategies = list(strategies)
    if not strategies:
        raise BacktestError("strategy: need at least one strategy")
    for s in strategies:
        if s == "model":
            if policy is None:
                raise BacktestError("strategy: 'model' needs a trained policy (policy=)")
        elif s not in TICK_STRATEGIES:
            raise UnknownStrategyError(f"strategy: unknown tick execution strategy {s!r}; "
                                       f"one of {', '.join(TICK_STRATEGIES)} (or 'model')")
    if isinstance(n_paths, bool) or not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
        raise BacktestError(f"paths must be an int >= 1, got {n_paths!r}")
    if not starts:
        raise BacktestError("start: need at least one window start")
    data = tick_world_data(path)
    mids = mid_path(data)
    kw = dict(env_kwargs or {})
    rows = []
    for st in starts:
        po = ParentOrder(side, int(quantity), int(st), float(horizon_s), float(interval_s))
        N = po.n_decisions
        _check_window(data, po.start, po.start + int(round(N * interval_s * _NS)))
        n = len(strategies) * n_paths
        core = TickExecutionCore(n, data=str(path), world=world, start=_ny_seconds(po.start), horizon=N,
                                 dt=float(interval_s), quantity=int(quantity), side=side, latency=latency, **kw)
        core.seed_rows(range(n), [seed + (j % n_paths) for j in range(n)])
        core.reset()
        groups = []
        for si, s in enumerate(strategies):
            idx = np.arange(si * n_paths, (si + 1) * n_paths)
            groups.append(ModelStrategy(policy, core, idx) if s == "model"
                          else TickStrategy(s, core, idx, po, params, data, mids))
        infos: list = [None] * n
        done = np.zeros(n, bool)
        live: list[dict[int, int]] = [dict() for _ in range(n)]  # order id -> time it went live (ns)
        orders = core.book.orders
        for k in range(N):
            act = np.zeros((n, 3), np.float64)
            for g in groups:
                act[g.idx] = g.act(k)
            act[done] = 0.0  # a finished env sends nothing (its info is already recorded)
            core.step(act, autoreset=False)
            for i in np.flatnonzero(~done):
                for slot in (0, 1):
                    oid, tl = int(orders[i, slot, bk.O_ID]), int(orders[i, slot, bk.O_T_LIVE])
                    if oid and tl >= 0 and oid not in live[i]:
                        live[i][oid] = tl
            if record_ended(core, done, infos):
                break
        for si, s in enumerate(strategies):
            for p in range(n_paths):
                i = si * n_paths + p
                if infos[i] is None:  # cannot happen: the env terminates at its horizon
                    raise BacktestError(f"env {i} ({s}) did not finish within {N} decisions")
                fl = core.book.fill_log(i)
                pas = fl[:, bk.F_KIND] == bk.FILL_PASSIVE
                q = fl[:, bk.F_QTY].astype(float)
                wait = np.array([(fl[j, bk.F_T] - live[i].get(int(fl[j, bk.F_ID]), fl[j, bk.F_T])) / _NS
                                 for j in np.flatnonzero(pas)], float)
                avg_wait = float(np.sum(wait * q[pas]) / np.sum(q[pas])) if pas.any() else float("nan")
                rows.append(dict(start=pd.Timestamp(po.start, tz="UTC").tz_convert(TZ), strategy=s, path=p,
                                 seed=seed + p, **infos[i], passive_fills=int(pas.sum()),
                                 aggressive_fills=int((~pas).sum()), avg_queue_wait_s=avg_wait))
    return pd.DataFrame(rows)


@dataclass
class ModelBacktestResult:
    """What :func:`backtest_model` measured."""

    table: pd.DataFrame
    """One row per (window, strategy, latency path): the tick env's episode info (see
    :func:`run_tick_execution`); strategy ``"model"`` is the trained model."""
    paired: pd.DataFrame
    """Per baseline: the model's mean shortfall minus the baseline's across windows (paired per
    window, bps, + = the model costs more), with a 95% t interval."""
    trained_on: str
    """The env the model was trained on (its run record)."""
    model_path: str
    env_kwargs: dict
    """The env kwargs the backtest ran with (those of the model's observations from its record)."""


def _find_model(model) -> pathlib.Path:
    p = pathlib.Path(model)
    if p.is_dir():
        p = p / "model.zip"
    if not p.is_file():
        raise BacktestError(f"model: {p} does not exist (give a run folder holding model.zip, or a model .zip)")
    return p


def model_run_record(model) -> dict:
    """The ``lobworld_run.json`` of a model (``{}`` when the model has none beside it)."""
    from lobworld.agents.training import _find_meta

    return _find_meta(_find_model(model)) or {}


def _model_and_kwargs(model, env_id_wanted: str, what: str):
    """``(path, run record, recorded env kwargs)`` of a model for the tape backtest of
    ``env_id_wanted``; a run record naming another env id raises :class:`ModelEnvError` (``what``:
    the kind of backtest, for the message)."""
    p = _find_model(model)
    meta = model_run_record(p)
    env_id = (meta.get("env") or {}).get("id") or (meta.get("config") or {}).get("env_id")
    if env_id is not None and env_id != env_id_wanted:
        raise ModelEnvError(f"model: {p} was trained on {env_id}; {what} runs models of {env_id_wanted} "
                            f"(tape backtests take {TICK_EXEC_ENV} and {TICK_MM_ENV} models: their observations "
                            f"are built from the event-level book). "
                            f"Evaluate a {env_id} model with `lobworld evaluate --env {env_id}`")
    return p, meta, dict((meta.get("config") or {}).get("env_kwargs") or {})


def load_tick_model(model, *, latency="cloud", **env_overrides):
    """Load a trained model of ``LOB-TickExecution-v0`` as a deterministic batched policy.

    ``model``: a run folder of ``lobworld train`` (holding ``model.zip``) or a model ``.zip``.
    Refuses a model whose run record names another env id (:class:`ModelEnvError`, naming
    it), a model whose spaces differ from the env's
    (:class:`~lobworld.agents.training.IncompatibleModelError`) and a model trained with
    VecNormalize whose statistics are missing
    (:class:`~lobworld.agents.training.MissingVecNormalizeError`), as ``lobworld evaluate`` does.
    Returns ``(policy, record, obs_kwargs)``: ``obs_kwargs`` are the recorded env kwargs the
    observations depend on (:data:`_OBS_KWARGS`).
    """
    from gymnasium import spaces

    from lobworld.agents.training import load_policy
    from lobworld.envs.tick import TickExecutionConfig, obs_names

    p, meta, rec_kw = _model_and_kwargs(model, TICK_EXEC_ENV, "an execution backtest on the tape")
    obs_kw = {k: rec_kw[k] for k in _OBS_KWARGS if k in rec_kw}
    cfg = TickExecutionConfig(**obs_kw)
    obs_space = spaces.Box(-np.inf, np.inf, (len(obs_names(int(cfg.obs_levels), "remaining")),), np.float32)
    act_space = spaces.Box(low=np.zeros(3, np.float32), high=np.array([1.0, 3.0, cfg.max_level], np.float32),
                           dtype=np.float32)  # TickExecutionEnv's action space
    policy = load_policy(p, env_id=TICK_EXEC_ENV, observation_space=obs_space, action_space=act_space)
    return policy, meta, obs_kw


def _paired_vs(table: pd.DataFrame, ref: str, metric: str = "shortfall_bps") -> pd.DataFrame:
    """Per strategy other than ``ref``: mean of ``ref - strategy`` per window (paths averaged), with a
    95% t interval across windows."""
    from scipy import stats

    per = table.groupby(["strategy", "start"], sort=False)[metric].mean().unstack("strategy")
    out = []
    for s in per.columns:
        if s == ref:
            continue
        d = (per[ref] - per[s]).dropna()
        n = len(d)
        half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        out.append(dict(baseline=s, windows=n, **{f"{ref}_mean": float(per[ref].mean()),
                                                   "baseline_mean": float(per[s].mean())},
                        diff=float(d.mean()) if n else float("nan"), ci95_half=half))
    return pd.DataFrame(out)


def backtest_model(model, path, starts: Sequence[int], *, baselines: Sequence[str] = TICK_STRATEGIES,
                   side: str | None = None, quantity: int | None = None, horizon_s: float | None = None,
                   interval_s: float | None = None, latency="cloud", n_paths: int = 1, seed: int = 0,
                   params: ExecutionParams | None = None) -> ModelBacktestResult:
    """Backtest a trained ``LOB-TickExecution-v0`` model deterministically on the real tape.

    ``model``: run folder or ``.zip`` (checked by :func:`load_tick_model`); ``path``: the LOBSTER
    message file; ``starts``: window starts (ns). The model and every baseline run through the
    tick env's replay world (``world="replay"``) on the same windows with the same latency draws
    (:func:`run_tick_execution`); ``side``, ``quantity``, ``interval_s`` (the env's ``dt``) and
    ``horizon_s`` (``horizon x dt``) default to the model's training env kwargs, else the env's
    defaults. ``paired`` compares the model with each baseline window by window.
    """
    from lobworld.envs.tick import TickExecutionConfig

    policy, meta, obs_kw = load_tick_model(model)
    rec_kw = dict((meta.get("config") or {}).get("env_kwargs") or {})
    d = TickExecutionConfig()
    side = side or rec_kw.get("side", d.side)
    quantity = int(quantity if quantity is not None else rec_kw.get("quantity", d.quantity))
    interval_s = float(interval_s if interval_s is not None else rec_kw.get("dt", d.dt))
    if horizon_s is None:
        horizon_s = interval_s * int(rec_kw.get("horizon", d.horizon))
    strategies = ["model"] + [b for b in baselines if b != "model"]
    table = run_tick_execution(path, starts, strategies, side=side, quantity=quantity, horizon_s=horizon_s,
                               interval_s=interval_s, world="replay", latency=latency, n_paths=n_paths, seed=seed,
                               params=params, policy=policy, env_kwargs=obs_kw)
    kw = dict(obs_kw, side=side, quantity=quantity, dt=interval_s, horizon=ParentOrder(
        side, quantity, int(starts[0]), float(horizon_s), interval_s).n_decisions, latency=latency)
    return ModelBacktestResult(table, _paired_vs(table, "model"), policy.trained_on, str(_find_model(model)), kw)


# ---------------------------------------------------------------------------------------------
# trained models of the tick market-making env (LOB-TickMarketMaking-v0)
# ---------------------------------------------------------------------------------------------
TICK_MM_ENV = "LOB-TickMarketMaking-v0"
#: the tick market-making baselines a model backtest runs by default (:mod:`lobworld.agents.tick_baselines`)
TICK_MM_BASELINES = ("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal")
#: env kwargs of a trained market-making model taken from its run record: what its observations,
#: actions and episode end depend on (``horizon`` and ``dt`` are taken too, unless overridden)
_MM_MODEL_KWARGS = ("obs_levels", "size_scale", "max_level", "max_size", "vol_halflife", "depth", "queue_model",
                    "queue_power", "inventory_limit", "phi", "discrete_levels", "discrete_size", "decide_every",
                    "k_events", "md_latency")
#: seconds after each fill at which :func:`backtest_mm_model` reads the tape's mid (adverse selection)
MARKOUT_S = (1.0, 10.0)
#: the metrics :func:`backtest_mm_model` pairs model - baseline per window
MM_PAIRED_METRICS = ("pnl", "sharpe_per_step", "fills", "inventory_max_abs", "adverse_selection_ticks",
                     "adverse_1s_ticks", "adverse_10s_ticks", "queue_wait_s")


def model_env_id(model) -> str | None:
    """The env id in a model's run record (None when it has no record or the record names none)."""
    meta = model_run_record(model)
    return (meta.get("env") or {}).get("id") or (meta.get("config") or {}).get("env_id")


def _mm_spaces(cfg, discrete: bool):
    """``(observation, action)`` spaces of ``TickMarketMakingEnv`` with config ``cfg`` (as its core builds them)."""
    from gymnasium import spaces

    from lobworld.envs.tick import obs_names

    obs = spaces.Box(-np.inf, np.inf, (len(obs_names(int(cfg.obs_levels), "inventory")),), np.float32)
    if discrete:
        m = len(cfg.discrete_levels)
        return obs, spaces.Discrete(m * m + 2)
    lv = float(cfg.max_level)
    act = spaces.Box(low=np.array([-lv, -lv, 0.0, 0.0, 0.0, 0.0], np.float32),
                     high=np.array([lv, lv, cfg.max_size, cfg.max_size, 1.0, 1.0], np.float32), dtype=np.float32)
    return obs, act


def load_tick_mm_model(model):
    """Load a trained model of ``LOB-TickMarketMaking-v0`` as a deterministic batched policy.

    ``model``: a run folder of ``lobworld train`` (holding ``model.zip``) or a model ``.zip``.
    Refuses a model whose run record names another env id (:class:`ModelEnvError`, naming it),
    a model whose spaces differ from the env's built from its recorded kwargs
    (:class:`~lobworld.agents.training.IncompatibleModelError`) and a model trained with
    VecNormalize whose statistics are missing
    (:class:`~lobworld.agents.training.MissingVecNormalizeError`). A model without a run record
    is taken as one of the env's defaults (only its spaces can then refuse it).
    Returns ``(policy, record, model_kwargs, discrete)``: ``model_kwargs`` are the recorded env
    kwargs of :data:`_MM_MODEL_KWARGS` plus ``horizon`` and ``dt``; ``discrete`` whether the
    model acts on the discrete variant (``discrete=True`` in its env kwargs).
    """
    from lobworld.agents.training import load_policy
    from lobworld.envs.tick import TickMarketMakingConfig

    p, meta, rec_kw = _model_and_kwargs(model, TICK_MM_ENV, "a market-making backtest on the tape")
    kw = {k: rec_kw[k] for k in _MM_MODEL_KWARGS + ("horizon", "dt") if k in rec_kw}
    if "discrete_levels" in kw:
        kw["discrete_levels"] = tuple(int(x) for x in kw["discrete_levels"])
    discrete = bool(rec_kw.get("discrete", False))
    obs_space, act_space = _mm_spaces(TickMarketMakingConfig(**kw), discrete)
    policy = load_policy(p, env_id=TICK_MM_ENV, observation_space=obs_space, action_space=act_space)
    return policy, meta, kw, discrete


@dataclass
class MMModelBacktestResult:
    """What :func:`backtest_mm_model` measured."""

    table: pd.DataFrame
    """One row per (window, latency preset, strategy, path): start, latency, strategy (``"model"`` or
    a baseline name), path (0 on the tape), seed, terminated (the inventory limit ended the episode early), the tick
    env's episode info (pnl USD, episode_return, sharpe_per_step, inventory_terminal,
    inventory_max_abs, inventory_mean, filled_shares_bid / _ask, fills, passive_shares,
    aggressive_shares, adverse_selection_usd, adverse_selection_ticks, queue_wait_s,
    episode_length; units: :class:`~lobworld.envs.tick.TickMarketMakingEnv`), and from the
    env's fill log: bid_fills, ask_fills, fills_logged, adverse_1s_ticks, adverse_10s_ticks
    (share-weighted mean move of the tape's mid against each fill 1 s / 10 s after it, every
    logged fill; + = adverse). adverse_selection_ticks and queue_wait_s (means over the passive
    fills) are NaN where the env logged no passive fill (the env's info has 0 there)."""
    paired: pd.DataFrame
    """Per latency, metric (:data:`MM_PAIRED_METRICS`) and baseline: the model's mean minus the
    baseline's across windows (paired per window), with a 95% t interval."""
    summary: pd.DataFrame
    """Per strategy and latency: means of the table's metrics across windows, the PnL's
    standard deviation across windows and ``pnl_sharpe_windows`` (mean / sd of the window PnLs)."""
    latency_table: pd.DataFrame | None
    """With several presets: :func:`paired_latency_table` of the PnL against the first preset."""
    paths: dict = field(default_factory=dict)
    """``(start, latency, strategy) -> DataFrame`` of path 0 at each decision: t_s (seconds
    from the start), inventory (shares), pnl (USD, cash + inventory x the book's mid)."""
    data: ReplayData | None = None
    trained_on: str = ""
    """The env the model was trained on (its run record)."""
    model_path: str = ""
    env_kwargs: dict = field(default_factory=dict)
    """The env kwargs every strategy ran with (the model's recorded ones, horizon, dt, max_fills)."""


def _fill_markouts(fl: np.ndarray, data: ReplayData, mids: np.ndarray, horizons) -> list[float]:
    """Share-weighted mean move (ticks) of the tape's mid against the fills ``fl`` ``h`` seconds
    after each, for each ``h`` in ``horizons`` (+ = adverse: the mid fell after a buy)."""
    if not len(fl):
        return [float("nan")] * len(horizons)
    sign = np.where(fl[:, bk.F_SIDE] == bk.BID, 1.0, -1.0)
    q = fl[:, bk.F_QTY].astype(float)
    m0 = _mid_at(data, mids, fl[:, bk.F_T])
    out = []
    for h in horizons:
        x = -sign * (_mid_at(data, mids, fl[:, bk.F_T] + int(round(h * _NS))) - m0)
        ok = np.isfinite(x)
        out.append(float(np.sum(x[ok] * q[ok]) / np.sum(q[ok])) if ok.any() else float("nan"))
    return out


def _mm_summary(table: pd.DataFrame) -> pd.DataFrame:
    metrics = ["pnl", "sharpe_per_step", "bid_fills", "ask_fills", "filled_shares_bid", "filled_shares_ask",
               "inventory_terminal", "inventory_max_abs", "adverse_selection_ticks", "adverse_1s_ticks",
               "adverse_10s_ticks", "queue_wait_s"]
    g = table.groupby(["strategy", "latency"], sort=False)
    out = g[metrics].mean()
    out.insert(1, "pnl_sd", g["pnl"].std(ddof=1))
    out.insert(2, "pnl_sharpe_windows", out["pnl"] / out["pnl_sd"])
    out.insert(0, "windows", g.size())
    out.insert(1, "terminated", g["terminated"].sum())
    return out.reset_index()


def mm_paired_table(table: pd.DataFrame, metrics: Sequence[str] = MM_PAIRED_METRICS, ref: str = "model"
                    ) -> pd.DataFrame:
    """Per latency, metric and strategy other than ``ref``: the mean over windows of ``ref -
    strategy`` (paired per window start), with a 95% t interval (:func:`_paired_vs`)."""
    out = []
    for lat, g in table.groupby("latency", sort=False):
        for m in metrics:
            p = _paired_vs(g, ref, m)
            if len(p):
                p.insert(0, "metric", m)
                p.insert(0, "latency", lat)
                out.append(p)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def backtest_mm_model(model, path, starts: Sequence[int], *, baselines: Sequence[str] = TICK_MM_BASELINES,
                      latencies: Sequence[str] = ("cloud",), horizon_s: float | None = None,
                      interval_s: float | None = None, seed: int = 0, max_fills: int = 4096,
                      markout_s: Sequence[float] = MARKOUT_S, world: str = "replay",
                      n_paths: int = 1) -> MMModelBacktestResult:
    """Backtest a trained ``LOB-TickMarketMaking-v0`` model deterministically on the real tape
    (or, with ``world="learned"`` / ``"parametric"``, in a generated tick world started from the
    file's book at each window start).

    ``model``: run folder or ``.zip`` (checked by :func:`load_tick_mm_model`); ``path``: the
    LOBSTER message file; ``starts``: window starts (ns). For each window one
    :class:`~lobworld.envs.tick.TickMarketMakingCore` on the replay world (``world="replay"``)
    holds ``len(latencies) x (1 + len(baselines))`` envs, env ``(preset l, strategy s)`` with
    latency ``latencies[l]`` and seed ``seed``: every strategy meets the same latency draws
    on the same tape. The env kwargs are the model's recorded ones (:func:`load_tick_mm_model`);
    ``interval_s`` (the env's ``dt``) and ``horizon_s`` (``horizon x dt``) default to the
    recorded ones, else the env's defaults; ``max_fills`` fill records per episode (the env
    statistics over passive fills and the per-side fill counts cover those; ``fills`` counts all).
    The model acts with ``predict(deterministic=True)`` on its VecNormalize-normalised
    observations; the baselines are :func:`lobworld.agents.baselines.make_baseline` names of
    the id, calibrated once (:func:`lobworld.agents.tick_baselines.calibrate`) on a pilot of the
    same config with random starts over the file's hours. Decisions every ``dt`` until the
    horizon or the inventory limit (terminated; no autoreset); the metrics are the env's episode
    info at its end plus the tape markouts ``markout_s`` (first two reported).

    ``world``: the tick world every strategy runs in (``"replay"``: the tape; a generated world is
    conditioned on the file's book at the window start and runs ``n_paths`` paths per window,
    path ``p`` seeded ``seed + p`` in every strategy and preset: common random numbers). The
    tape markouts are NaN on a generated world (its mid is not the file's). Rows carry ``path``
    (0 on the tape); ``paired`` averages the paths of a window before pairing.
    """
    from lobworld.agents.baselines import make_baseline
    from lobworld.envs.tick import TickMarketMakingConfig, TickMarketMakingCore

    policy, meta, kw, discrete = load_tick_mm_model(model)
    if world not in ("replay", "learned", "parametric"):
        raise BacktestError(f"world: unknown tick world {world!r}; one of replay, learned, parametric")
    if isinstance(n_paths, bool) or not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
        raise BacktestError(f"paths must be an int >= 1, got {n_paths!r}")
    if world == "replay" and n_paths != 1:
        raise BacktestError(f"paths: the tape has one path per window (world='replay'), got {n_paths}")
    baselines = [b for b in baselines if b != "model"]
    lats = list(latencies)
    if not lats:
        raise BacktestError("latency: need at least one latency preset")
    if not starts:
        raise BacktestError("start: need at least one window start")
    integer("max_fills", max_fills, error=BacktestError, what="a positive int (fill records per episode)")
    d = TickMarketMakingConfig()
    dt = float(interval_s if interval_s is not None else kw.get("dt", d.dt))
    if horizon_s is None:
        H = int(kw.get("horizon", d.horizon))
    else:
        positive("horizon", horizon_s, error=BacktestError, what="> 0 s")
        H = max(1, int(round(float(horizon_s) / dt)))
    kw = dict(kw, horizon=H, dt=dt, max_fills=int(max_fills), data=str(path), world=world)
    data = tick_world_data(path)
    mids = mid_path(data)
    cfg = TickMarketMakingConfig(**dict(kw, latency=lats[0], start=None))
    calib = TickMarketMakingCore(1, config=cfg, discrete=discrete)
    agents = [make_baseline(b, TICK_MM_ENV, calib, seed) for b in baselines]
    strategies = ["model"] + baselines
    S = len(strategies)
    SL = S * len(lats)
    n = SL * int(n_paths)  # env j: path j // SL, preset (j % SL) // S, strategy j % S
    lat_of = [lats[(j % SL) // S] for j in range(n)]
    path_of = [j // SL for j in range(n)]
    idle = (np.int64(calib.n_quote_actions) if discrete else np.zeros(6, np.float32))  # cancel both quotes
    horizons = tuple(float(h) for h in markout_s)
    rows, paths = [], {}
    for st in starts:
        st = int(st)
        if kw.get("decide_every", "dt") == "dt":
            _check_window(data, st, st + int(round(H * dt * _NS)))
        core = TickMarketMakingCore(n, config=cfg.replace(start=_ny_seconds(st), latency=lat_of), discrete=discrete)
        core.seed_rows(range(n), [seed + p for p in path_of])
        core.reset()
        groups = [(np.arange(j, n, S), policy if j == 0 else agents[j - 1]) for j in range(S)]
        t0 = core.time_ns
        rec = [[(0.0, 0, 0.0)] for _ in range(n)]
        infos: list = [None] * n
        done = np.zeros(n, bool)
        for _k in range(H):
            act = np.zeros((n,) if discrete else (n, 6), np.int64 if discrete else np.float32)
            for idx, pol in groups:
                act[idx] = np.asarray(pol(core.obs[idx])).reshape(act[idx].shape)
            act[done] = idle  # a finished env cancels its quotes (its info is already recorded)
            core.step(act, autoreset=False)
            tn, inv, w = core.time_ns, core.book.acct[:, bk.A_POS], core.sv[:, tk.V_W_PREV]
            for i in np.flatnonzero(~done):
                rec[i].append(((tn[i] - t0[i]) / _NS, int(inv[i]), float(w[i])))
            if record_ended(core, done, infos):
                break
        start_ts = pd.Timestamp(st, tz="UTC").tz_convert(TZ)
        for i in range(n):
            if infos[i] is None:  # cannot happen: the env is truncated at its horizon
                raise BacktestError(f"env {i} ({strategies[i % S]}) did not finish within {H} decisions")
            fl = core.book.fill_log(i)
            mk = _fill_markouts(fl, data, mids, horizons) if world == "replay" else [float("nan")] * len(horizons)
            s = strategies[i % S]
            row = dict(start=start_ts, latency=lat_of[i], strategy=s, path=path_of[i], seed=seed + path_of[i],
                       terminated=bool(core.terminated[i]), **infos[i],
                       bid_fills=int(np.sum(fl[:, bk.F_SIDE] == bk.BID)),
                       ask_fills=int(np.sum(fl[:, bk.F_SIDE] == bk.ASK)), fills_logged=int(len(fl)))
            for h, v in zip(horizons, mk):
                row[f"adverse_{h:g}s_ticks"] = v
            if not np.any(fl[:, bk.F_KIND] == bk.FILL_PASSIVE):  # the env writes 0 for a mean over no fills
                row["adverse_selection_ticks"] = row["queue_wait_s"] = float("nan")
            rows.append(row)
            if path_of[i] == 0:
                paths[(start_ts, lat_of[i], s)] = pd.DataFrame(rec[i], columns=["t_s", "inventory", "pnl"])
    table = pd.DataFrame(rows)
    metrics = [m for m in MM_PAIRED_METRICS if m in table.columns]
    lt = (paired_latency_table(table, "pnl", base=lats[0], key=("strategy", "start", "path"))
          if len(set(lats)) > 1 else None)
    return MMModelBacktestResult(table, mm_paired_table(table, metrics), _mm_summary(table), lt, paths, data,
                                 policy.trained_on, str(_find_model(model)), dict(kw, latency=lats))


def plot_mm_model(result: MMModelBacktestResult, start, latency: str, path) -> None:
    """PNG of one window and preset: the tape's mid, then the PnL path (USD) and the inventory path
    (shares) of the model and every baseline at each decision (path 0 in a generated world)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = result.data
    keys = [k for k in result.paths if k[0] == start and k[1] == latency]
    if not keys:
        raise BacktestError(f"plot: no paths for window {start} and latency {latency!r}")
    st = int(pd.Timestamp(start).value)
    t1 = st + int(max(result.paths[k]["t_s"].iloc[-1] for k in keys) * _NS)
    mids = mid_path(data)
    r = slice(int(np.searchsorted(data.tape.t, st)), int(np.searchsorted(data.tape.t, t1)))
    fig, (ax0, ax1, ax2) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax0.plot((data.tape.t[r] - st) / 1e9, mids[r] * data.tick_size, lw=0.7, color="0.3")
    ax0.set_ylabel("mid USD (real tape)")
    tab = result.table
    for k in keys:
        p = result.paths[k]
        row = tab[(tab["start"] == k[0]) & (tab["latency"] == k[1]) & (tab["strategy"] == k[2])
                  & (tab["path"] == 0)].iloc[0]
        lw = 1.4 if k[2] == "model" else 0.9
        ax1.step(p["t_s"], p["pnl"], where="post", lw=lw, label=f"{k[2]}: PnL {row['pnl']:.2f} USD")
        ax2.step(p["t_s"], p["inventory"], where="post", lw=lw, label=k[2])
    ax1.set_ylabel("PnL USD (mark to mid)")
    ax2.set_ylabel("inventory (shares)")
    ax2.set_xlabel("seconds from the window start")
    ax1.legend(fontsize=7)
    world = result.env_kwargs.get("world", "replay")
    where = "" if world == "replay" else f", path 0 in the {world} tick world (the mid above is the tape's)"
    ax0.set_title(f"{data.name}: window {pd.Timestamp(start):%H:%M:%S}, latency {latency}{where}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

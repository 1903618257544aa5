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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lobworld.agents.almgren_chriss import ACProblem, ac_trajectory
from lobworld.envs import book_kernels as bk
from lobworld.envs.book import BookConfig
from lobworld.envs.execution import GOOG_U_PROFILE, SESSION_MINUTES
from lobworld.envs.replay import ReplayData, prepare_replay
from lobworld.errors import LobworldError

__all__ = [
    "BacktestError", "WindowError", "UnknownStrategyError", "OrderSizeError", "EXECUTION_STRATEGIES",
    "MM_STRATEGIES", "LATENCY_PRESETS", "ParentOrder", "ExecutionParams", "MarketMakingParams",
    "ExecutionResult", "MarketMakingResult", "run_execution", "run_market_making", "paired_latency_table",
    "parse_time", "afternoon_starts", "mid_path", "plot_execution", "plot_market_making", "TZ",
]

EXECUTION_STRATEGIES = ("twap", "vwap", "pov", "ac", "aggressive", "passive_first")
MM_STRATEGIES = ("fixed_spread", "avellaneda_stoikov")
LATENCY_PRESETS = ("colocated", "proximity", "cloud", "retail")
TZ = "America/New_York"  #: the exchange clock LOBSTER times are in
_NS = 1_000_000_000
_SESSION_OPEN_S = 9.5 * 3600  # 09:30 in seconds after midnight
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
        q = self.quantity
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q <= 0:
            raise OrderSizeError(f"quantity must be a whole number of shares > 0, got {q!r}")
        if not (math.isfinite(self.horizon_s) and self.horizon_s > 0):
            raise BacktestError(f"horizon must be > 0 s, got {self.horizon_s!r}")
        if not (math.isfinite(self.interval_s) and 0 < self.interval_s <= self.horizon_s):
            raise BacktestError(f"interval must be in (0, horizon] s, got {self.interval_s!r}")

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
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size <= 0:
            raise OrderSizeError(f"size must be a whole number of shares > 0, got {self.size!r}")
        for f in ("interval_s", "gamma", "k"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise BacktestError(f"{f} must be > 0, got {v!r}")
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
    x0 = (sec - _SESSION_OPEN_S) / (SESSION_MINUTES * 60)
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
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise BacktestError(f"horizon must be > 0 s, got {horizon_s!r}")
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

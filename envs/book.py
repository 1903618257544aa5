"""Event-level limit order book: batched, Numba-compiled, with the agent's own orders in real queues.

Description
    ``n_envs`` independent books advance through a tape of order messages with LOBSTER
    semantics (submit 1, partial cancel 2, delete 3, visible execution 4, hidden execution 5,
    halt 7). Each env also holds a fixed-capacity table of the agent's own orders, with their
    queue positions, and a latency model for the agent's messages (order entry: decision to
    venue) and for what it sees (market data: venue to agent). The full specification is
    ``docs/book.md``; the kernels and column layouts are :mod:`lobworld.envs.book_kernels`.

State (struct of arrays, ``n_envs`` leading; ``D = config.depth``, ``K = config.max_orders``)
    ==============  ======================  =================================================
    array           shape, dtype            meaning
    ==============  ======================  =================================================
    ``px``          (n, 2, D) int64         level prices in ticks; side 0 bid (falling), 1 ask
                                            (rising); level 0 is the touch
    ``sz``          (n, 2, D) int64         visible shares of the message stream at the level
    ``dq``          (n, 2, D) int64         shares the agent's aggressive orders took there
                                            (replay mode; the agent sees ``sz - dq``)
    ``nl``          (n, 2) int64            levels in use per side
    ``orders``      (n, K, N_OCOL) int64    the agent's orders, columns ``O_*`` (side, price,
                                            remaining, shares ahead, status, t_sent / t_live /
                                            t_filled / t_done in ns, order id, cancelled)
    ``pend``        (n, P, N_PCOL) int64    the agent's messages in flight (FIFO ring)
    ``cmds``        (n, C, N_CCOL) int64    the agent's decisions not yet taken (``C_*``)
    ``fills``       (n, F, N_FCOL) int64    the agent's fills (``F_*``: exchange time, time the
                                            agent learns it, slot, side, price, shares, kind)
    ``acct``        (n, N_ACC) int64        cash (ticks x shares), position, volumes
    ``cnt``         (n, N_CNT) int64        error counts by code, replay statistics
    ``es``          (n, N_ES) int64         per-env cursors and scalars
    ``rng``         (n, 3, 4) uint64        xoshiro streams: entry latency, market-data
                                            latency, queue model
    ``lat``         (n, 4) float64          entry mean / jitter, market-data mean / jitter (ns)
    ==============  ======================  =================================================

Agent commands (:meth:`Book.limit`, :meth:`Book.market`, :meth:`Book.cancel`, :meth:`Book.reduce`,
:meth:`Book.modify`, :meth:`Book.quote`, or :meth:`Book.schedule` with an ``(m, N_CCOL)`` array)
    A command is a decision taken at time ``t`` (ns) on market data that is one market-data
    latency old: the price of a relative command (``PM_TOUCH``, ``PM_CROSS``) is resolved on
    the book at ``t - md``. The message reaches the venue at ``t + entry`` (both latencies drawn
    per command from the env's own streams; arrivals keep the order sent, one session). A limit
    order that crosses when it arrives trades what is there, level by level, up to its price
    and rests the remainder at the back of its level; a market order walks the book and its
    unfilled rest (book exhausted) is cancelled. A cancel or reduce that arrives after the
    order was filled fails (counted in ``N_CANCEL_FAILED``) and the fill stands; a reduce keeps
    the queue place, a price change (``modify``) loses it.

Arguments
    ``n_envs``: number of books. ``config``: :class:`BookConfig`. ``latency``: order-entry
    latency, a scenario name / :class:`~lobworld.envs.latency.LatencyScenario` / one per env /
    ``f(i)`` (see :func:`~lobworld.envs.latency.resolve_latency`). ``md_latency``: the
    market-data latency, same forms (default: the same scenario as ``latency``). ``seed``:
    int, None, or one per env; env ``i``'s streams come from ``SeedSequence(seed + i)`` (or
    its own seed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from lobworld._checks import integer, positive
from lobworld.envs import book_kernels as bk
from lobworld.envs.book_kernels import (  # noqa: F401  (re-exported layout constants)
    A_AGGR_QTY, A_BUY_QTY, A_CASH, A_NFILLS, A_PASSIVE_QTY, A_POS, A_SELL_QTY, ASK, BID, C_KIND,
    C_PMODE, C_PRICE, C_SIDE, C_SIZE, C_SLOT, C_T, E_BAD_CMD, E_BAD_SIZE, E_BAD_TYPE, E_CROSSED,
    E_NO_LEVEL, E_TIME, E_TOO_MUCH, EXEC_VOL_HID, EXEC_VOL_VIS, F_ID, F_KIND, F_PRICE, F_QTY, F_SIDE,
    F_SLOT, F_T, F_T_SEEN, FILL_AGGRESSIVE, FILL_PASSIVE, FIRST_MISMATCH_ROW, K_CANCEL, K_LIMIT,
    K_MARKET, K_MODIFY, K_QUOTE, K_REDUCE, MSG_CANCEL, MSG_CROSS, MSG_DELETE, MSG_EXEC, MSG_HALT, MSG_HIDDEN,
    MSG_SUBMIT, N_ACC, N_BEYOND, N_CANCEL_FAILED, N_CCOL, N_CMD_REJECTED, N_CNT, N_ERR, N_ES,
    N_EXEC_MSGS, N_FCOL, N_FILL_OVERFLOW, N_HIDDEN_MSGS, N_LEVEL_MISMATCH, N_MSGS, N_OCOL, N_PCOL,
    N_PUSHED_OUT, N_RESYNC, N_STREAMS, N_TOP_MISMATCH, N_TRADES, O_AHEAD, O_FILLED, O_ID, O_PRICE,
    O_CXL, O_QTY, O_REM, O_SIDE, O_STATUS, O_T_DONE, O_T_FILLED, O_T_LIVE, O_T_SENT, PM_ABS, PM_CROSS,
    PM_TOUCH, SHARES_IN, SHARES_OUT, ST_CANCELLED, ST_EMPTY, ST_FILLED, ST_LIVE, ST_PENDING,
    ST_REJECTED,
)
from lobworld.envs.jit import ThreadChoice
from lobworld.envs.latency import LatencySpec, resolve_latency
from lobworld.envs.rng import seed_state
from lobworld.errors import LobworldError

__all__ = ["Book", "BookConfig", "BookError", "Tape", "ERROR_NAMES", "MAX_DEPTH", "PARALLEL_MIN_ENVS",
           "PARALLEL_MIN_ROWS"]

MAX_DEPTH = 50  #: deepest book a config may ask for (levels per side)
#: batches of at least this many envs may run the ``prange`` kernel (all Numba threads); which
#: kernel a call runs is the project's one policy (:class:`lobworld.envs.jit.ThreadChoice`,
#: ``LOBWORLD_PARALLEL``), see :meth:`Book.run`
PARALLEL_MIN_ENVS = 2
#: in ``auto`` mode a call with at least this many tape rows to replay (all envs together) runs
#: the ``prange`` kernel without measuring: waking the threads is small beside its work
PARALLEL_MIN_ROWS = 1 << 19

#: error code -> rule name (``cnt[:, code]`` counts them; ``es[:, ES_ERR]`` holds the first)
ERROR_NAMES = {
    E_TOO_MUCH: "cancel_exceeds_resting",
    E_NO_LEVEL: "no_visible_size_at_price",
    E_CROSSED: "crossed_result",
    E_TIME: "time_backwards",
    E_BAD_TYPE: "bad_type_or_side",
    E_BAD_SIZE: "size_not_positive",
    E_BAD_CMD: "bad_agent_command",
}
_QMODELS = {"behind": bk.QM_BEHIND, "probabilistic": bk.QM_PROB}
_MODES = {"replay": bk.MODE_REPLAY, "live": bk.MODE_LIVE}
_SIDES = {"bid": BID, "buy": BID, "ask": ASK, "sell": ASK, BID: BID, ASK: ASK}
_PMODES = {"abs": PM_ABS, "touch": PM_TOUCH, "cross": PM_CROSS, PM_ABS: PM_ABS, PM_TOUCH: PM_TOUCH,
           PM_CROSS: PM_CROSS}


class BookError(LobworldError):
    """Bad input to the book engine: a message, an agent command, a latency or a config field
    (the message names the env, the tape row or command index, and the field)."""


@dataclass(frozen=True)
class BookConfig:
    """Settings of a :class:`Book` batch (frozen; validated on construction)."""

    depth: int = 10
    """Price levels kept per side (1..50). A replay needs at least the file's level count."""
    max_orders: int = 8
    """Slots of the agent's order table per env."""
    max_pending: int = 64
    """Capacity of the agent's messages in flight per env (a command beyond it is rejected)."""
    max_commands: int = 8192
    """Capacity of the agent's command buffer per env."""
    max_fills: int = 8192
    """Fill records kept per env (later fills still count in ``acct``; ``N_FILL_OVERFLOW``)."""
    queue_model: str = "behind"
    """How a cancel at the agent's level moves it: ``"behind"`` (cancels come only from behind
    the agent: the risk-averse bound) or ``"probabilistic"`` (from ahead with probability
    ``(ahead / level size) ** queue_power``)."""
    queue_power: float = 1.0
    """Exponent ``n`` of the probabilistic model (``f(x) = x ** n``, > 0)."""
    mode: str = "replay"
    """``"replay"``: shares the agent takes are a deficit on the level until the stream's next
    message there (the market book stays the tape's); ``"live"``: they leave the book."""
    strict: bool = True
    """True: a bad message freezes its env and :meth:`Book.run` raises :class:`BookError`;
    False: the message is skipped and counted per rule (``cnt[:, code]``)."""
    tick_size: float = 0.01
    """Price grid in USD (used to convert USD prices to ticks)."""

    def __post_init__(self) -> None:
        for f, lo, hi in (("depth", 1, MAX_DEPTH), ("max_orders", 1, 1 << 16), ("max_pending", 1, 1 << 20),
                          ("max_commands", 1, 1 << 26), ("max_fills", 1, 1 << 26)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise BookError(f"BookConfig.{f} must be an int in {lo}..{hi}, got {v!r}")
        if self.queue_model not in _QMODELS:
            raise BookError(f"BookConfig.queue_model must be one of {sorted(_QMODELS)}, got {self.queue_model!r}")
        if self.mode not in _MODES:
            raise BookError(f"BookConfig.mode must be one of {sorted(_MODES)}, got {self.mode!r}")
        positive("BookConfig.queue_power", self.queue_power, error=BookError)
        positive("BookConfig.tick_size", self.tick_size, error=BookError, unit="USD")


@dataclass(frozen=True)
class Tape:
    """A stream of order messages as plain arrays (one row per message).

    ``t`` int64 ns, ``type`` int8 (LOBSTER code 1..7), ``side`` int8 (0 bid: the message is
    about a buy limit order; 1 ask), ``price`` int64 ticks (for a halt: the new trading state,
    -1 halted, 0 quotation only, 1 trading), ``size`` int64 shares, ``order_id`` int64.
    """

    t: np.ndarray
    type: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    order_id: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.t)
        for f, dt in (("t", np.int64), ("type", np.int8), ("side", np.int8), ("price", np.int64),
                      ("size", np.int64), ("order_id", np.int64)):
            a = np.ascontiguousarray(getattr(self, f), dtype=dt)
            if a.ndim != 1 or len(a) != n:
                raise BookError(f"Tape.{f} must be 1-d with {n} rows, got shape {a.shape}")
            object.__setattr__(self, f, a)

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]]) -> Tape:
        """Build from ``(t_ns, type, side, price_ticks, size[, order_id])`` tuples (``side``
        may be ``"bid"``/``"ask"``)."""
        cols = [[], [], [], [], [], []]
        for r in rows:
            if len(r) not in (5, 6):
                raise BookError(f"Tape row {r!r}: expected (t_ns, type, side, price_ticks, size[, order_id])")
            r = list(r) + ([0] if len(r) == 5 else [])
            r[2] = _SIDES[r[2]] if r[2] in _SIDES else r[2]
            for c, v in zip(cols, r):
                c.append(v)
        return cls(*(np.asarray(c, dtype=np.int64) for c in cols))

    @classmethod
    def concat(cls, tapes: Sequence[Tape]) -> Tape:
        """Stack tapes end to end (lanes then replay their own ranges of rows)."""
        return cls(*(np.concatenate([getattr(tp, f) for tp in tapes]) for f in
                     ("t", "type", "side", "price", "size", "order_id")))


# int32 like :attr:`~lobworld.envs.replay.ReplayData.file`, so a run without a file uses the same compiled kernel
_EMPTY_FILE = (np.zeros((0, 2, 1), np.int32), np.zeros((0, 2, 1), np.int32), np.zeros(0, np.int8))
_NO_EROW = np.zeros(0, np.int32)
_COMPACT: list = []  # (fpx, fsz, entry, compact file) of the files last run without verify
_COMPACT_KEEP = 4


def _compact(fpx, fsz, entry):
    """:func:`~lobworld.envs.book_kernels.compact_file` of a file, made once per file (the same
    array objects; a file changed in place after its first run is not seen)."""
    for f in _COMPACT:
        if f[0] is fpx and f[1] is fsz and f[2] is entry:
            return f[3]
    c = bk.compact_file(fpx, fsz, entry)
    _COMPACT.insert(0, (fpx, fsz, entry, c))
    del _COMPACT[_COMPACT_KEEP:]
    return c


def _ticks(price, price_usd, tick, what):
    if price_usd is not None:
        x = float(price_usd) / tick
        r = round(x)
        if not np.isfinite(x) or abs(x - r) > 1e-6:
            raise BookError(f"{what}: price {price_usd!r} USD is off the {tick:g} USD tick grid")
        return int(r)
    if isinstance(price, (float, np.floating)):
        if not np.isfinite(price) or price != round(price):
            raise BookError(f"{what}: price {price!r} ticks is off the tick grid (needs a whole number of ticks)")
        return int(price)
    if isinstance(price, bool) or not isinstance(price, (int, np.integer)):
        raise BookError(f"{what}: price must be an int number of ticks, got {price!r}")
    return int(price)


def _latency_ns(spec, n_envs, field) -> np.ndarray:
    out = np.empty((n_envs, 2), np.float64)
    if isinstance(spec, np.ndarray):
        a = np.asarray(spec, np.float64)
        if a.shape != (n_envs, 2) or not np.all(np.isfinite(a)):
            raise BookError(f"{field}: an array of latencies must be (n_envs, 2) finite ns (mean, jitter), "
                            f"got shape {a.shape}")
        bad = np.argwhere(a < 0)
        if len(bad):
            i, j = bad[0]
            raise BookError(f"{field}[{i}, {j}] = {float(a[i, j])!r}: latency {'mean' if j == 0 else 'jitter'} "
                            f"must be >= 0 ns")
        return a.copy()
    try:
        scen = resolve_latency(spec, n_envs)
    except (KeyError, TypeError) as e:
        raise BookError(f"{field}: {e}") from None
    for i, s in enumerate(scen):
        if s.one_way_us < 0 or s.jitter_us < 0:
            raise BookError(f"{field}: scenario {s.name!r} of env {i} has a negative latency")
        out[i, 0] = s.one_way_us * 1e3
        out[i, 1] = s.jitter_us * 1e3
    return out


class Book:
    """A batch of ``n_envs`` order books (see the module docstring for the layout)."""

    def __init__(self, n_envs: int, config: BookConfig | None = None, *, latency: LatencySpec | np.ndarray = "none",
                 md_latency: LatencySpec | np.ndarray | None = None, seed=None):
        integer("n_envs", n_envs, error=BookError)
        self.config = cfg = config if config is not None else BookConfig()
        if not isinstance(cfg, BookConfig):
            raise BookError(f"config must be a BookConfig, got {type(cfg).__name__}")
        n, D, K = int(n_envs), cfg.depth, cfg.max_orders
        self.n_envs = n
        self.windows = None  #: ``(n, 2)`` tape row windows when built by :func:`lobworld.envs.replay.prepare_replay`
        self.px = np.zeros((n, 2, D), np.int64)
        self.sz = np.zeros((n, 2, D), np.int64)
        self.dq = np.zeros((n, 2, D), np.int64)
        self.nl = np.zeros((n, 2), np.int64)
        self.orders = np.zeros((n, K, N_OCOL), np.int64)
        self.pend = np.zeros((n, cfg.max_pending, N_PCOL), np.int64)
        self.cmds = np.zeros((n, cfg.max_commands, N_CCOL), np.int64)
        self.fills = np.zeros((n, cfg.max_fills, N_FCOL), np.int64)
        self.acct = np.zeros((n, N_ACC), np.int64)
        self.cnt = np.zeros((n, N_CNT), np.int64)
        self.es = np.zeros((n, N_ES), np.int64)
        self.lat = np.zeros((n, 4), np.float64)
        self.lat[:, 0:2] = _latency_ns(latency, n, "latency")
        self.lat[:, 2:4] = _latency_ns(latency if md_latency is None else md_latency, n, "md_latency")
        self.cfg = np.array([_QMODELS[cfg.queue_model], _MODES[cfg.mode], int(cfg.strict), 0, 0], np.int64)
        self.rng = np.zeros((n, N_STREAMS, 4), np.uint64)
        #: serial or ``prange`` kernel per :meth:`run` call (measured; ``LOBWORLD_PARALLEL``)
        self.threads = ThreadChoice(n, min_envs=PARALLEL_MIN_ENVS)
        self.last_parallel = False  #: whether the last :meth:`run` call ran the ``prange`` kernel
        self.reset(seed=seed)

    # ---------------------------------------------------------------- state
    def reset(self, envs=None, *, seed=None) -> None:
        """Empty the books, orders, counters and cursors of ``envs`` (all by default) and
        reseed their streams (``seed``: int -> env ``i`` gets ``seed + i``; a list: one each)."""
        idx = np.arange(self.n_envs) if envs is None else np.atleast_1d(np.asarray(envs, np.int64))
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + int(i) for i in idx]
        else:
            seeds = list(seed)
            if len(seeds) != len(idx):
                raise BookError(f"seed: got {len(seeds)} seeds for {len(idx)} envs")
        for a in (self.px, self.sz, self.dq, self.nl, self.orders, self.pend, self.cmds, self.fills,
                  self.acct, self.cnt, self.es):
            a[idx] = 0
        self.es[idx, bk.ES_TRADING] = 1
        self.es[idx, bk.ES_AG_DIRTY] = 1
        self.es[idx, bk.ES_HEAD_VIEW] = bk.NO_VIEW
        self.es[idx, bk.ES_PREV_EXEC_T] = -1
        self.es[idx, bk.ES_LAST_T] = -(2 ** 62)
        self.es[idx, bk.ES_LAST_ARR] = -(2 ** 62)
        self.cnt[idx, FIRST_MISMATCH_ROW] = -1
        for i, s in zip(idx, seeds):
            self.rng[i] = seed_state(s, N_STREAMS)

    def set_book(self, env: int, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], *,
                 t0: int | None = None) -> None:
        """Set env ``env``'s market book: ``bids`` / ``asks`` lists of ``(price_ticks, shares)``,
        best first. ``t0`` (ns), when given, is the time of the book (earlier messages are
        rejected as time going backwards)."""
        D = self.config.depth
        for name, side, lv in (("bids", BID, bids), ("asks", ASK, asks)):
            lv = list(lv)
            if len(lv) > D:
                raise BookError(f"set_book: {len(lv)} {name} levels exceed the depth {D}")
            prev = None
            for j, (p, q) in enumerate(lv):
                if q <= 0 or p <= 0:
                    raise BookError(f"set_book: {name}[{j}] = ({p}, {q}) needs price > 0 ticks and size > 0 shares")
                if prev is not None and not (p < prev if side == BID else p > prev):
                    raise BookError(f"set_book: {name} must be strictly {'falling' if side == BID else 'rising'}, "
                                    f"level {j} is {p} after {prev}")
                prev = p
            self.px[env, side] = 0
            self.sz[env, side] = 0
            self.dq[env, side] = 0
            for j, (p, q) in enumerate(lv):
                self.px[env, side, j] = p
                self.sz[env, side, j] = q
            self.nl[env, side] = len(lv)
        if self.nl[env, 0] and self.nl[env, 1] and self.px[env, 0, 0] >= self.px[env, 1, 0]:
            raise BookError(f"set_book: crossed book (best bid {self.px[env, 0, 0]} >= best ask {self.px[env, 1, 0]})")
        if t0 is not None:
            self.es[env, bk.ES_LAST_T] = int(t0)

    def levels(self, env: int, side) -> list[tuple[int, int]]:
        """The market book of one side, best first: ``[(price_ticks, shares), ...]``."""
        s = _SIDES[side]
        return [(int(self.px[env, s, j]), int(self.sz[env, s, j])) for j in range(int(self.nl[env, s]))]

    def best(self, env: int) -> tuple[int, int, int, int]:
        """``(bid_px, bid_sz, ask_px, ask_sz)`` of the market book (0, 0 for an empty side)."""
        return (int(self.px[env, 0, 0]), int(self.sz[env, 0, 0]), int(self.px[env, 1, 0]), int(self.sz[env, 1, 0]))

    def order(self, env: int, slot: int) -> dict:
        """The agent's order in ``slot`` as a dict of its columns."""
        o = self.orders[env, slot]
        names = ("status", "side", "price", "qty", "remaining", "ahead", "filled", "t_sent", "t_live",
                 "t_filled", "t_done", "id", "cancelled")
        return {k: int(o[c]) for k, c in zip(names, range(N_OCOL))}

    def fill_log(self, env: int) -> np.ndarray:
        """A copy of env ``env``'s fill records, ``(n_fills, N_FCOL)`` (columns ``F_*``)."""
        return self.fills[env, : int(self.es[env, bk.ES_NFILL])].copy()

    def position(self, env: int) -> int:
        """The agent's position (shares, + long)."""
        return int(self.acct[env, A_POS])

    def cash_ticks(self, env: int) -> int:
        """The agent's cash in ticks x shares (sells add, buys subtract)."""
        return int(self.acct[env, A_CASH])

    # ---------------------------------------------------------------- agent commands
    def schedule(self, env: int, commands: np.ndarray) -> None:
        """Append an ``(m, N_CCOL)`` int64 array of commands (columns ``C_*``, times in ns,
        non-decreasing) to env ``env``'s buffer, after validating every row."""
        c = np.asarray(commands)
        if c.ndim != 2 or c.shape[1] != N_CCOL:
            raise BookError(f"schedule: commands must be (m, {N_CCOL}), got shape {c.shape}")
        if c.dtype.kind == "f":
            bad = np.flatnonzero(np.any(c != np.round(c), axis=1))
            if len(bad):
                raise BookError(f"schedule: command {bad[0]}: prices, sizes and times must be whole numbers "
                                f"(price {c[bad[0], C_PRICE]!r} is off the tick grid)")
        c = c.astype(np.int64)
        K = self.config.max_orders
        for j, r in enumerate(c):
            kind = r[C_KIND]
            if kind not in (K_LIMIT, K_MARKET, K_CANCEL, K_REDUCE, K_MODIFY, K_QUOTE):
                raise BookError(f"schedule: command {j}: unknown kind {kind}")
            if not 0 <= r[C_SLOT] < K:
                raise BookError(f"schedule: command {j}: slot {r[C_SLOT]} outside 0..{K - 1}")
            if kind in (K_LIMIT, K_MARKET, K_QUOTE) and r[C_SIDE] not in (BID, ASK):
                raise BookError(f"schedule: command {j}: side {r[C_SIDE]} is not 0 (bid/buy) or 1 (ask/sell)")
            if kind != K_CANCEL and r[C_SIZE] <= 0:
                raise BookError(f"schedule: command {j}: size must be > 0 shares, got {r[C_SIZE]}")
            if kind in (K_LIMIT, K_MODIFY, K_QUOTE):
                if r[C_PMODE] not in (PM_ABS, PM_TOUCH, PM_CROSS):
                    raise BookError(f"schedule: command {j}: unknown price mode {r[C_PMODE]}")
                if r[C_PMODE] == PM_ABS and r[C_PRICE] <= 0:
                    raise BookError(f"schedule: command {j}: price must be > 0 ticks, got {r[C_PRICE]}")
        if len(c) > 1 and np.any(np.diff(c[:, C_T]) < 0):
            j = int(np.flatnonzero(np.diff(c[:, C_T]) < 0)[0]) + 1
            raise BookError(f"schedule: command {j}: time {c[j, C_T]} ns is before the previous command's")
        head, tail = int(self.es[env, bk.ES_CMD_HEAD]), int(self.es[env, bk.ES_CMD_TAIL])
        if tail > head and len(c) and c[0, C_T] < self.cmds[env, tail - 1, C_T]:
            raise BookError(f"schedule: command 0: time {c[0, C_T]} ns is before the last scheduled command")
        cap = self.cmds.shape[1]
        if tail + len(c) > cap:  # compact: drop what was already taken
            self.cmds[env, : tail - head] = self.cmds[env, head:tail].copy()
            tail -= head
            head = 0
            if tail + len(c) > cap:
                raise BookError(f"schedule: {tail + len(c)} commands exceed BookConfig.max_commands={cap}")
        self.cmds[env, tail: tail + len(c)] = c
        self.es[env, bk.ES_CMD_HEAD] = head
        self.es[env, bk.ES_CMD_TAIL] = tail + len(c)

    @staticmethod
    def command(t: int, kind: int, slot: int, side=0, price: int = 0, size: int = 0, pmode=PM_ABS) -> np.ndarray:
        """One command row (``C_*`` columns); ``side`` may be ``"buy"``/``"sell"``, ``pmode``
        ``"abs"``/``"touch"``/``"cross"``."""
        r = np.zeros(N_CCOL, np.int64)
        r[C_T], r[C_KIND], r[C_SLOT] = int(t), int(kind), int(slot)
        r[C_SIDE] = _SIDES[side] if side in _SIDES else side
        r[C_PRICE], r[C_SIZE] = int(price), int(size)
        r[C_PMODE] = _PMODES[pmode] if pmode in _PMODES else pmode
        return r

    def limit(self, env, t, slot, side, size, price=0, *, price_usd=None, pmode="abs") -> None:
        """Decide at ``t`` (ns) to send a limit order from ``slot``: ``price`` in ticks (or
        ``price_usd`` on the tick grid; ``pmode`` ``"touch"``/``"cross"``: ``price`` is an offset
        in ticks, see :data:`~lobworld.envs.book_kernels.PM_TOUCH`)."""
        p = _ticks(price, price_usd, self.config.tick_size, f"limit order of env {env}")
        self.schedule(env, self.command(t, K_LIMIT, slot, side, p, size, pmode)[None])

    def quote(self, env, t, slot, side, size, price=0, *, price_usd=None, pmode="abs") -> None:
        """Decide at ``t`` (ns) to keep a quote in ``slot``: a modify when the slot holds a
        working order at decision time (an unchanged price and size keeps the queue place), else
        a new limit order (``K_QUOTE``)."""
        p = _ticks(price, price_usd, self.config.tick_size, f"quote of env {env}")
        self.schedule(env, self.command(t, K_QUOTE, slot, side, p, size, pmode)[None])

    def market(self, env, t, slot, side, size) -> None:
        """Decide at ``t`` (ns) to send a market order of ``size`` shares (``side`` buy/sell)."""
        self.schedule(env, self.command(t, K_MARKET, slot, side, 0, size)[None])

    def cancel(self, env, t, slot) -> None:
        """Decide at ``t`` (ns) to cancel the order in ``slot`` (fails if filled first)."""
        self.schedule(env, self.command(t, K_CANCEL, slot)[None])

    def reduce(self, env, t, slot, size) -> None:
        """Decide at ``t`` (ns) to cancel ``size`` shares of the order in ``slot`` (keeps its place)."""
        self.schedule(env, self.command(t, K_REDUCE, slot, 0, 0, size)[None])

    def modify(self, env, t, slot, size, price=0, *, price_usd=None, pmode="abs") -> None:
        """Decide at ``t`` (ns) to replace the order in ``slot`` by ``size`` shares at ``price``
        (a new price loses the queue place; the same price and a smaller size keeps it)."""
        p = _ticks(price, price_usd, self.config.tick_size, f"modify of env {env}")
        self.schedule(env, self.command(t, K_MODIFY, slot, 0, p, size, pmode)[None])

    # ---------------------------------------------------------------- running
    def run(self, tape: Tape, stop=None, *, t_flush=None, file=None, verify: bool = False,
            resync: bool = False, parallel: bool | None = None) -> None:
        """Advance every env from its cursor (``es[:, ES_POS]``, set by :meth:`seek`) to row
        ``stop[i]`` of ``tape`` (default: the end), then run its agent events before
        ``t_flush[i]`` (default: the next row's time, or all when the tape ended).

        ``file`` = ``(fpx, fsz, entry)`` is the orderbook file (``(N, 2, L)`` int64 or int32
        prices and sizes: :attr:`lobworld.envs.replay.ReplayData.file` gives int32, the faster), ``entry`` ``(N,)`` int8 from
        :func:`~lobworld.envs.book_kernels.entry_flags`) for ``verify`` (compare every row,
        count mismatches) or ``resync`` (take entering levels from it). In strict mode the
        first bad message of any env raises :class:`BookError` after every env has run (the
        bad env is frozen at that row; the others are unaffected).

        ``parallel``: True / False force the ``prange`` / serial kernel (bit-identical results).
        None follows :attr:`threads` (:class:`~lobworld.envs.jit.ThreadChoice`): serial below
        :data:`PARALLEL_MIN_ENVS` envs or with ``LOBWORLD_PARALLEL=0``, parallel with ``=1``;
        otherwise a call with at least :data:`PARALLEL_MIN_ROWS` rows to replay runs parallel
        and a smaller one (stepped use) runs whichever kernel its measured wall time favours.
        """
        if not isinstance(tape, Tape):
            raise BookError(f"run: tape must be a Tape, got {type(tape).__name__}")
        N = len(tape)
        # writable int64 copies (a read-only view would compile the kernels a second time)
        stop = np.full(self.n_envs, N, np.int64) if stop is None else \
            np.array(np.broadcast_to(np.asarray(stop, np.int64), (self.n_envs,)))
        if t_flush is None:
            nxt = np.minimum(stop, N - 1)
            t_flush = np.where(stop < N, tape.t[nxt] if N else 0, np.int64(bk.INT_MAX))
        t_flush = np.array(np.broadcast_to(np.asarray(t_flush, np.int64), (self.n_envs,)))
        if file is None:
            if verify or resync:
                raise BookError("run: verify/resync need the orderbook file (file=)")
            fpx, fsz, entry = _EMPTY_FILE
            erow = _NO_EROW
        else:
            fpx, fsz, entry = file
            if fpx.shape[0] != N or fsz.shape != fpx.shape or entry.shape != (N,):
                raise BookError(f"run: file arrays must have {N} rows like the tape, got {fpx.shape}, "
                                f"{fsz.shape}, {entry.shape}")
            if fpx.shape[2] > self.config.depth:
                raise BookError(f"run: the file has {fpx.shape[2]} levels but BookConfig.depth is "
                                f"{self.config.depth}; the book must be at least as deep as the file")
            erow = _NO_EROW
            if not verify and resync:  # only the entry rows are read: a compact copy stays in cache
                fpx, fsz, erow = _compact(fpx, fsz, entry)
        self.cfg[bk.CF_VERIFY] = int(bool(verify))
        self.cfg[bk.CF_RESYNC] = int(bool(resync))
        tc = self.threads
        timed = False
        if parallel is not None:
            par = bool(parallel)
        elif tc.mode != "auto":
            par = tc.choose()
        elif numba.get_num_threads() < 2:
            par = False
        elif int(np.maximum(np.minimum(stop, N) - self.es[:, bk.ES_POS], 0).sum()) >= PARALLEL_MIN_ROWS:
            par = True
        else:
            par = tc.choose()
            timed = True
        kern = bk.book_run_parallel if par else bk.book_run
        t0 = time.perf_counter()
        kern(stop, tape.t, tape.type, tape.side, tape.price, tape.size, fpx, fsz, entry, erow, self.px, self.sz,
             self.dq, self.nl, self.orders, self.pend, self.cmds, self.fills, self.es, self.acct, self.cnt,
             self.rng, self.lat, self.cfg, float(self.config.queue_power), t_flush)
        if timed:
            tc.record(par, time.perf_counter() - t0)
        self.last_parallel = par
        if self.config.strict:
            self.raise_first_error(tape)

    def seek(self, row, envs=None) -> None:
        """Set the tape cursor of ``envs`` (all by default) to ``row`` (scalar or one per env)."""
        idx = np.arange(self.n_envs) if envs is None else np.atleast_1d(np.asarray(envs, np.int64))
        self.es[idx, bk.ES_POS] = np.asarray(row, np.int64)

    def errors(self) -> dict[str, np.ndarray]:
        """Per-env counts of bad messages by rule (``strict=False`` skips and counts them)."""
        return {name: self.cnt[:, code].copy() for code, name in ERROR_NAMES.items()}

    def describe_error(self, env: int, tape: Tape, line_offset: int = 1) -> str:
        """One line naming env ``env``'s first bad message (row, fields, rule)."""
        code = int(self.es[env, bk.ES_ERR])
        if code == 0:
            return ""
        r = int(self.es[env, bk.ES_ERR_ROW])
        side = "bid" if tape.side[r] == BID else "ask"
        msg = (f"env {env}: tape row {r} (file line {r + line_offset}): type {int(tape.type[r])} {side} "
               f"price {int(tape.price[r])} ticks size {int(tape.size[r])} t {int(tape.t[r])} ns: "
               f"{ERROR_NAMES[code]}")
        if code == E_TOO_MUCH:
            msg += " (field size: more shares than rest at that price)"
        elif code == E_NO_LEVEL:
            msg += " (field price: no visible size at that price on that side)"
        elif code == E_CROSSED:
            msg += " (field price: the limit order would cross the opposite best)"
        elif code == E_TIME:
            msg += " (field time: earlier than the previous message)"
        elif code == E_BAD_SIZE:
            msg += " (field size: must be > 0)"
        elif code == E_BAD_TYPE:
            msg += " (field type/direction)"
        return msg

    def raise_first_error(self, tape: Tape, line_offset: int = 1) -> None:
        """Raise :class:`BookError` for the first env with a bad message (if any)."""
        bad = np.flatnonzero(self.es[:, bk.ES_ERR] != 0)
        if len(bad):
            more = f" ({len(bad)} envs have bad messages)" if len(bad) > 1 else ""
            raise BookError(self.describe_error(int(bad[0]), tape, line_offset) + more)

"""Replay of a real LOBSTER day through the book engine (:mod:`lobworld.envs.book`).

:class:`ReplayData` turns the canonical event table of the data layer
(:func:`lobworld.world_models.data.lobster.load_lobster`) into plain arrays once: the
message tape (time ns, LOBSTER type, side, price ticks, size, order id) and the orderbook
file (prices in ticks, sizes, ``(N, 2, L)``), with the rows where a level enters the
file's depth window from beyond it (:func:`~lobworld.envs.book_kernels.entry_flags`).

:func:`replay` starts each env from the file's book at the first row of its window and
applies the following messages. On every row it can compare the engine's book with the
file (``verify``): the top of book must match on every row; every visible level must match
on every row where no level enters the window from beyond it; at those entry rows the
entering side is re-synchronised from the file (its size is in no message), and the rows
are counted (``N_RESYNC``). Many envs replay different windows of the same day in one
kernel call, each with its own agent commands, latency draws and queue positions. The
agent's orders never change the market book that is compared with the file: its resting
orders are not in it, and the shares its aggressive orders take are a per-level deficit
that the stream's next message at that level clears (``docs/book.md``, "Replay rule").
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import (
    ERROR_NAMES, K_MARKET, K_QUOTE, N_CCOL, PM_TOUCH, Book, BookConfig, BookError, Tape,
)
from lobworld.world_models.data.schema import book_columns, infer_levels

__all__ = ["DEFAULT_REPLAY_DEPTH", "ReplayData", "ReplayReport", "prepare_replay", "replay", "run_replay",
           "touch_quoter_commands"]

#: levels per side a replay keeps by default (more than the file: levels pushed out of the
#: window are remembered, so most that come back need no resync)
DEFAULT_REPLAY_DEPTH = 20

_TYPE_OF_EVENT = {"submit": 1, "cancel": 2, "delete": 3, "exec_visible": 4, "exec_hidden": 5, "cross": 6,
                  "halt": 7}


@dataclass(frozen=True)
class ReplayData:
    """One LOBSTER day as arrays: the message tape and the orderbook file (see module doc)."""

    tape: Tape
    """The messages (row ``k`` is message ``k``; file line ``k + 1``)."""
    fpx: np.ndarray
    """``(N, 2, L)`` int64: file book prices in ticks after each message (side 0 bid, 1 ask; 0 = empty)."""
    fsz: np.ndarray
    """``(N, 2, L)`` int64: file book sizes (shares; 0 = empty level)."""
    entry: np.ndarray
    """``(N,)`` int8: bit ``s`` set where a level of side ``s`` enters the window from beyond it."""
    levels: int
    """The file's level count ``L``."""
    tick_size: float
    """USD per tick."""
    name: str = ""
    """Ticker and date, for reports."""

    @property
    def n_rows(self) -> int:
        return len(self.tape)

    @property
    def file(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fpx, fsz, entry)`` for :meth:`Book.run` ``file=``: int32 copies of the prices and
        sizes when every value fits (made once, kept; the same values as :attr:`fpx` and
        :attr:`fsz`), else those arrays. A replay reads the file on about a third of its rows
        and that read is most of its cost: half the bytes make it markedly faster."""
        f = self.__dict__.get("_file")
        if f is None:
            lim = np.iinfo(np.int32)
            fits = all(a.size == 0 or (int(a.min()) >= lim.min and int(a.max()) <= lim.max)
                       for a in (self.fpx, self.fsz))
            f = (self.fpx.astype(np.int32), self.fsz.astype(np.int32), self.entry) if fits else \
                (self.fpx, self.fsz, self.entry)
            object.__setattr__(self, "_file", f)
        return f

    @classmethod
    def from_events(cls, df) -> ReplayData:
        """Build from a canonical event table (``load_lobster``'s output)."""
        L = infer_levels(df)
        tick = float(df.attrs.get("tick_size", 0.01))
        ev = df["event"].astype(str).to_numpy()
        typ = np.zeros(len(df), np.int8)
        for name, code in _TYPE_OF_EVENT.items():
            typ[ev == name] = code
        if np.any(typ == 0):
            j = int(np.flatnonzero(typ == 0)[0])
            raise BookError(f"event table row {j}: event {ev[j]!r} has no LOBSTER message type")
        direction = df["direction"].to_numpy().astype(np.int64)
        side = np.where(direction < 0, bk.ASK, bk.BID).astype(np.int8)
        price = df["price_ticks"].to_numpy().astype(np.int64).copy()
        halt = typ == bk.MSG_HALT
        if halt.any():
            price[halt] = df["trading_state"].to_numpy()[halt].astype(np.int64)
        size = df["size"].to_numpy()
        if np.any(size != np.round(size)):
            j = int(np.flatnonzero(size != np.round(size))[0])
            raise BookError(f"event table row {j}: size {size[j]!r} is not a whole number of shares")
        t = df["ts"].array.asi8 if hasattr(df["ts"].array, "asi8") else df["ts"].to_numpy().astype(np.int64)
        tape = Tape(np.asarray(t, np.int64), typ, side, price, size.astype(np.int64),
                    df["order_id"].to_numpy().astype(np.int64))
        cols = book_columns(L)
        b = df[cols].to_numpy(np.float64)
        bpx, bsz, apx, asz = (b[:, j * L:(j + 1) * L] for j in range(4))
        fpx = np.zeros((len(df), 2, L), np.int64)
        fsz = np.zeros((len(df), 2, L), np.int64)
        for s, (p, q) in enumerate(((bpx, bsz), (apx, asz))):
            ok = np.isfinite(p) & (q > 0)
            fpx[:, s] = np.where(ok, np.rint(np.where(ok, p, 0.0) / tick), 0).astype(np.int64)
            fsz[:, s] = np.where(ok, q, 0).astype(np.int64)
        entry = bk.entry_flags(fpx, fsz, tape.side, tape.price, tape.type)
        name = f"{df.attrs.get('ticker', '')} {df.attrs.get('date', '')} L{L}".strip()
        return cls(tape, fpx, fsz, entry, L, tick, name)

    @classmethod
    def from_lobster(cls, message_path, orderbook_path=None, **kw) -> ReplayData:
        """Load a LOBSTER message/orderbook pair with the data layer and build the arrays."""
        from lobworld.world_models.data.lobster import load_lobster

        return cls.from_events(load_lobster(pathlib.Path(message_path), orderbook_path, **kw))


@dataclass
class ReplayReport:
    """What one :func:`replay` call measured, per env (arrays of length ``n_envs``)."""

    windows: np.ndarray
    """``(n, 2)`` row ranges ``[start, end)``; the book starts from file row ``start``."""
    rows: np.ndarray
    """Messages replayed per env (``end - start - 1`` unless an error froze the env)."""
    top_mismatch: np.ndarray
    """Rows whose top of book (price and size, both sides) differs from the file."""
    level_mismatch: np.ndarray
    """Rows without an entering level where some visible level differs from the file."""
    resync: np.ndarray
    """Rows re-synchronised from the file (a level entered from beyond the window)."""
    first_mismatch_row: np.ndarray
    """First row with a mismatch (-1: none)."""
    exec_volume_visible: np.ndarray
    """Shares of the visible executions (type 4) replayed."""
    exec_volume_hidden: np.ndarray
    """Shares of the hidden executions (type 5) replayed."""
    exec_messages: np.ndarray
    """Execution messages (types 4 and 5)."""
    trades: np.ndarray
    """Trades: runs of consecutive executions with the same time and side (one aggressor)."""
    errors: dict = field(default_factory=dict)
    """Rule name -> per-env count of bad messages (``strict=False``)."""
    book: Book | None = None
    """The engine after the replay (its orders, fills, accounts, counters)."""

    @property
    def full_match_fraction(self) -> np.ndarray:
        """Share of rows where every visible level matched the file before any resync."""
        r = np.maximum(self.rows, 1)
        return 1.0 - (self.resync + self.level_mismatch) / r

    def summary(self, env: int = 0) -> str:
        """One line for env ``env``."""
        return (f"rows {self.rows[env]}: top-of-book mismatches {self.top_mismatch[env]}, level mismatches "
                f"{self.level_mismatch[env]}, resynced rows {self.resync[env]} "
                f"({100 * self.full_match_fraction[env]:.2f}% rows match on every level); executions "
                f"{self.exec_messages[env]} messages / {self.trades[env]} trades, volume "
                f"{self.exec_volume_visible[env]} visible + {self.exec_volume_hidden[env]} hidden shares")


def prepare_replay(data: ReplayData, windows: Sequence[tuple[int, int]] | None = None, *,
                   config: BookConfig | None = None, latency="none", md_latency=None, seed=0,
                   commands: Sequence[np.ndarray | None] | None = None, strict: bool = True) -> Book:
    """Build the :class:`~lobworld.envs.book.Book` that :func:`replay` runs: one env per window,
    its book set to the file's row ``start``, its cursor at ``start + 1``, its commands
    scheduled. Run it with :func:`run_replay` (separate so a benchmark can time the run alone)."""
    N = data.n_rows
    win = np.array([(0, N)] if windows is None else list(windows), np.int64).reshape(-1, 2)
    if np.any(win[:, 0] < 0) or np.any(win[:, 1] > N) or np.any(win[:, 1] <= win[:, 0]):
        j = int(np.flatnonzero((win[:, 0] < 0) | (win[:, 1] > N) | (win[:, 1] <= win[:, 0]))[0])
        raise BookError(f"replay: window {j} = {tuple(win[j])} is not 0 <= start < end <= {N}")
    n = len(win)
    if config is None:
        config = BookConfig(depth=max(data.levels, DEFAULT_REPLAY_DEPTH), strict=strict)
    else:
        if config.depth < data.levels:
            raise BookError(f"replay: BookConfig.depth={config.depth} is shallower than the file's "
                            f"{data.levels} levels")
        config = replace(config, strict=strict)
    most = max((len(c) for c in commands if c is not None), default=0) if commands is not None else 0
    if most > config.max_commands:  # the command buffer grows to hold the longest schedule
        config = replace(config, max_commands=int(most))
    book = Book(n, config, latency=latency, md_latency=md_latency, seed=seed)
    envs = np.arange(n, dtype=np.int64)
    bk.load_rows(envs, win[:, 0].copy(), data.fpx, data.fsz, book.px, book.sz, book.dq, book.nl)
    book.seek(win[:, 0] + 1)
    book.es[:, bk.ES_LAST_T] = data.tape.t[win[:, 0]]
    book.windows = win
    if commands is not None:
        if len(commands) != n:
            raise BookError(f"replay: got {len(commands)} command arrays for {n} windows")
        for i, c in enumerate(commands):
            if c is not None and len(c):
                book.schedule(i, c)
    return book


def run_replay(data: ReplayData, book: Book, *, verify: bool = True, parallel: bool | None = None) -> ReplayReport:
    """Run a book made by :func:`prepare_replay` to the end of its windows; return the report."""
    N = data.n_rows
    win = book.windows
    t_flush = np.where(win[:, 1] < N, data.tape.t[np.minimum(win[:, 1], N - 1)], np.int64(bk.INT_MAX))
    book.run(data.tape, win[:, 1].copy(), t_flush=t_flush, file=data.file, verify=verify, resync=True,
             parallel=parallel)
    c = book.cnt
    return ReplayReport(
        windows=win, rows=c[:, bk.N_MSGS].copy(), top_mismatch=c[:, bk.N_TOP_MISMATCH].copy(),
        level_mismatch=c[:, bk.N_LEVEL_MISMATCH].copy(), resync=c[:, bk.N_RESYNC].copy(),
        first_mismatch_row=c[:, bk.FIRST_MISMATCH_ROW].copy(),
        exec_volume_visible=c[:, bk.EXEC_VOL_VIS].copy(), exec_volume_hidden=c[:, bk.EXEC_VOL_HID].copy(),
        exec_messages=c[:, bk.N_EXEC_MSGS].copy(), trades=c[:, bk.N_TRADES].copy(),
        errors={name: c[:, code].copy() for code, name in ERROR_NAMES.items()}, book=book,
    )


def replay(data: ReplayData, windows: Sequence[tuple[int, int]] | None = None, *, config: BookConfig | None = None,
           latency="none", md_latency=None, seed=0, commands: Sequence[np.ndarray | None] | None = None,
           verify: bool = True, strict: bool = True, parallel: bool | None = None) -> ReplayReport:
    """Replay ``data`` in one env per window ``(start, end)`` (default: the whole day).

    Env ``i`` starts from the file's book at row ``start`` and applies messages ``start + 1 ..
    end - 1``. ``commands[i]`` (``(m, N_CCOL)`` int64, or None) are its agent's decisions.
    ``config`` defaults to ``BookConfig(depth=max(L, DEFAULT_REPLAY_DEPTH))``: a book deeper than
    the file remembers the levels pushed out of the window, so most levels that come back
    match without a resync. Its ``depth`` must be at least ``L``; its ``strict`` is overridden
    by ``strict``. ``verify`` compares every row with the file; without it only the rows where
    a level enters the window are compared (and resynchronised where they differ), which is
    the fast path. ``strict=True`` raises :class:`~lobworld.envs.book.BookError` naming the
    first bad message (after every env has run: the others are unaffected); ``strict=False``
    skips and counts them (``report.errors``).
    """
    book = prepare_replay(data, windows, config=config, latency=latency, md_latency=md_latency, seed=seed,
                          commands=commands, strict=strict)
    return run_replay(data, book, verify=verify, parallel=parallel)


def touch_quoter_commands(t: np.ndarray, start: int, end: int, *, every_ns: int = 100_000_000, size: int = 100,
                          market_every: int = 10, market_size: int = 100) -> np.ndarray:
    """A simple agent for tests and benchmarks: from ``t[start]`` to ``t[end - 1]`` every
    ``every_ns`` it re-quotes a bid (slot 0) and an ask (slot 1) of ``size`` shares at the
    touch (``K_QUOTE``, ``PM_TOUCH`` offset 0: a price change loses the place, an unchanged
    touch keeps it; a filled quote is sent again), and every ``market_every``-th time it sends a market order of ``market_size`` shares
    (slot 2 buys, slot 3 sells, alternating). Returns ``(m, N_CCOL)`` int64 commands."""
    t0, t1 = int(t[start]), int(t[max(start, end - 1)])
    ticks = np.arange(t0 + every_ns, t1, every_ns, dtype=np.int64) if t1 > t0 + every_ns else \
        np.zeros(0, np.int64)
    rows = []
    for j, tj in enumerate(ticks):
        kind = K_QUOTE
        rows.append((tj, kind, 0, bk.BID, PM_TOUCH, 0, size))
        rows.append((tj, kind, 1, bk.ASK, PM_TOUCH, 0, size))
        if market_every > 0 and j % market_every == market_every - 1:
            buy = (j // market_every) % 2 == 0
            rows.append((tj, K_MARKET, 2 if buy else 3, bk.BID if buy else bk.ASK, 0, 0, market_size))
    out = np.array(rows, np.int64).reshape(-1, N_CCOL)
    return out

"""Tick-level environments on the event-level book: market making and execution.

Ids: ``LOB-TickMarketMaking-v0`` (:class:`TickMarketMakingEnv`; ``discrete=True`` for a
discrete grid of quotes) and ``LOB-TickExecution-v0`` (:class:`TickExecutionEnv`). Both
run a :class:`~lobworld.envs.book.Book` batch, one book per env, with the agent's orders at
their queue positions and its messages delayed by a latency scenario; a decision every
``dt`` seconds of market time, or right after every ``k_events``-th market message
(``decide_every="events"``). The kernels are :mod:`lobworld.envs.tick_kernels`; the page
is ``docs/envs/tick.md``.

World interface
    The market flow that moves the books comes from a *tick world* (:class:`TickWorld`):
    ``world="replay"`` (:class:`ReplayWorld`, the real tape of a LOBSTER file) is built in.
    Generated worlds live in :mod:`lobworld.world_models`, a higher layer, and the
    composition root registers them with :func:`register_tick_world`: ``"parametric"`` is
    the Cont-Stoikov-Talreja flow fitted on the file's ticker
    (:class:`lobworld.world_models.tick_world.CSTWorld`, reacting to the agent's orders
    through the book); ``"learned"`` is the tick GRU generating every message on the current
    book, the agent's orders included (:class:`lobworld.world_models.tick_gru_world.TickGRUWorld`).
    Any unregistered name raises :class:`UnknownTickWorldError`. The classes' own default is
    ``"replay"`` (this layer knows no other world); the registered ids default to ``"learned"``
    (their :class:`~lobworld.envs.spec.EnvSpec` keyword arguments), so ``gym.make`` and every face
    run the learned tick world unless ``world=`` says otherwise.
"""

from __future__ import annotations

import functools
import math
import pathlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from lobworld._checks import in_range, integer, positive
from lobworld._config import Replaceable
from lobworld.envs import book_kernels as bk
from lobworld.envs import tick_kernels as K
from lobworld.envs.book import Book, BookConfig
from lobworld.envs.core import BatchedCore, EnvConfigError, LOBEnv, LOBVectorEnv, config_from_kwargs
from lobworld.envs.episode import EpisodeStats, Stat, column, keep_rows, ratio, sharpe
from lobworld.envs.latency import LatencyScenario, resolve_latency
from lobworld.envs.registry import register_factory
from lobworld.envs.replay import DEFAULT_REPLAY_DEPTH, ReplayData

__all__ = [
    "TickWorld", "ReplayWorld", "register_tick_world", "registered_tick_worlds", "make_tick_world",
    "UnknownTickWorldError", "TickWindowError",
    "TickConfig", "TickMarketMakingConfig", "TickExecutionConfig",
    "TickMarketMakingCore", "TickExecutionCore",
    "TickMarketMakingEnv", "TickMarketMakingVectorEnv", "TickExecutionEnv", "TickExecutionVectorEnv",
    "obs_names",
]


class UnknownTickWorldError(EnvConfigError):
    """A ``world=`` name that no tick world is registered under (the message lists them)."""


class TickWindowError(EnvConfigError):
    """An episode window (``start``, ``horizon * dt``) outside the hours of the world's data."""


# =========================================================================================
# the world interface
# =========================================================================================
@runtime_checkable
class TickWorld(Protocol):
    """What a tick-level env needs from the market that moves its books.

    A world owns the market flow of ``n_envs`` books of one :class:`~lobworld.envs.book.Book`
    batch (the env owns the book and the agent's commands in it). Times are int64 ns.

    ``tick_size`` (USD per tick) and ``levels`` (levels per side the world's books hold at
    least) size the book; ``bounds() -> (t_first, t_last)`` the ns range an episode may use.

    ``book_config(base)``: the :class:`~lobworld.envs.book.BookConfig` the world's books need,
    from the env's ``base`` (depth, ``mode``: ``"replay"`` for a tape, ``"live"`` for generated
    flow).

    ``reset_rows(book, envs, t0)``: set the market book of each env ``envs[j]`` (already
    emptied) to the state at time ``t0[j]`` and position the world's flow there.

    ``advance(book, until)``: run every env's market flow and its agent's events strictly
    before ``until[i]`` (the book engine's :meth:`~lobworld.envs.book.Book.run` semantics:
    the agent's decisions and arrivals interleave with the messages in time order).

    Optional, for decisions every k market events (``decide_every="events"``), in one of two forms:

    * a world whose message times are known in advance (a tape) provides
      ``event_until(book, k) -> until (n,) int64``: one ns past the time of each env's k-th market
      message from its current position (the decision follows that message and every message at
      the same ns; the env then calls ``advance(book, until)``), and
      ``event_window(n_messages) -> (t_first, t_last_start)``: the starts from which ``n_messages``
      messages follow (the episode must fit);
    * a generated world provides ``advance_events(book, k) -> t_decision (n,) int64`` *instead of*
      ``advance`` for the interval: it generates and applies exactly ``k`` market events per env
      from its current position (the agent's decisions, arrivals and fills interleaved in time
      order as ``advance`` does), stops right after the k-th and returns one ns past its time (the
      decision time; the world's clock moves there, so the next event comes after it). A market
      event is one draw of the flow that reached the book (it may be several engine messages at
      one ns, e.g. a market order taking several levels). The flow never runs out, so there is no
      window to fit: episodes start anywhere before the session end ``bounds()[1]``; an env whose
      k-th event would come at or after the session end runs to it as ``advance`` would and
      returns it, and that decision ends the episode (market making truncated, execution forced
      to complete), as the horizon does.

    The env uses ``advance_events`` when the world has it; a world with neither form refuses
    ``decide_every="events"``.
    """

    name: str
    tick_size: float
    levels: int

    def bounds(self) -> tuple[int, int]: ...

    def book_config(self, base: BookConfig) -> BookConfig: ...

    def reset_rows(self, book: Book, envs: np.ndarray, t0: np.ndarray) -> None: ...

    def advance(self, book: Book, until: np.ndarray) -> None: ...


@functools.lru_cache(maxsize=4)
def _load_replay(path: str, mtime: float) -> ReplayData:
    return ReplayData.from_lobster(path)


class ReplayWorld:
    """The real tape of a LOBSTER file (``world="replay"``).

    ``reset_rows`` loads the file's book at the last row at or before ``t0`` and puts the
    env's cursor after it; ``advance`` replays the messages before ``until`` (levels entering
    the file's window from beyond it are resynchronised from the orderbook file, as
    :func:`~lobworld.envs.replay.replay` does). The replay rule and its bias are those of
    ``docs/book.md``: the tape does not react to the agent; the shares its aggressive orders
    take are missing from their level until the stream's next message there.
    """

    name = "replay"

    def __init__(self, data: ReplayData):
        self.data = data
        self.tick_size = float(data.tick_size)
        self.levels = int(data.levels)
        self._t = data.tape.t

    @classmethod
    def from_path(cls, path: str | pathlib.Path | None = None) -> "ReplayWorld":
        """The world of LOBSTER message file ``path`` (default: the shipped GOOG hour; the
        orderbook file is found by the LOBSTER naming convention). Loaded once per process."""
        if path is None:
            from lobworld.world_models.data.lobster import sample_lobster_paths

            path = sample_lobster_paths()[0]
        p = pathlib.Path(path)
        if not p.is_file():
            raise EnvConfigError(f"data: LOBSTER message file {str(p)!r} does not exist")
        return cls(_load_replay(str(p.resolve()), p.stat().st_mtime))

    def bounds(self) -> tuple[int, int]:
        return int(self._t[0]), int(self._t[-1])

    def book_config(self, base: BookConfig) -> BookConfig:
        return replace(base, depth=max(base.depth, self.levels), mode="replay", tick_size=self.tick_size)

    def reset_rows(self, book: Book, envs: np.ndarray, t0: np.ndarray) -> None:
        d = self.data
        rows = np.searchsorted(self._t, t0, side="right").astype(np.int64) - 1
        rows = np.maximum(rows, 0)
        bk.load_rows(envs.astype(np.int64), rows, d.fpx, d.fsz, book.px, book.sz, book.dq, book.nl)
        book.es[envs, bk.ES_POS] = rows + 1
        book.es[envs, bk.ES_LAST_T] = self._t[rows]

    def advance(self, book: Book, until: np.ndarray) -> None:
        stop = np.searchsorted(self._t, until, side="left").astype(np.int64)
        book.run(self.data.tape, stop, t_flush=until, file=self.data.file, resync=True)

    def event_until(self, book: Book, k: int) -> np.ndarray:
        """One ns past the time of the ``k``-th tape message from each env's cursor (the last message
        of the file when fewer are left)."""
        last = np.minimum(book.es[:, bk.ES_POS] + (int(k) - 1), len(self._t) - 1)
        return self._t[last] + 1

    def event_window(self, n_messages: int) -> tuple[int, int]:
        """Starts with at least ``n_messages`` tape messages after them: ``(t_first, t_last_start)``
        (``t_last_start < t_first`` when the file is too short)."""
        n = len(self._t)
        j = n - 1 - int(n_messages)
        return int(self._t[0]), int(self._t[j]) if j >= 0 else int(self._t[0]) - 1


_WORLDS: dict[str, Callable[["TickConfig"], TickWorld]] = {}


def register_tick_world(name: str, factory: Callable[["TickConfig"], TickWorld], *,
                        overwrite: bool = False) -> None:
    """Make ``world=name`` build ``factory(config)`` (a :class:`TickWorld`) in the tick envs.

    The simulation floor knows ``"replay"``; the composition root registers the generated
    worlds of :mod:`lobworld.world_models` (this package never imports that layer)."""
    register_factory(_WORLDS, name, factory, kind="tick world", error=ValueError, overwrite=overwrite)


def registered_tick_worlds() -> list[str]:
    """Names accepted by ``world=``."""
    return sorted(_WORLDS)


register_tick_world("replay", lambda cfg: ReplayWorld.from_path(cfg.data))


def make_tick_world(config: "TickConfig") -> TickWorld:
    """The world named by ``config.world`` (or ``config.world`` itself when it is a world)."""
    w = config.world
    if isinstance(w, str):
        if w not in _WORLDS:
            extra = (" ('parametric' and 'learned' are registered by `import lobworld`)"
                     if w in ("learned", "parametric") else "")
            raise UnknownTickWorldError(f"{type(config).__name__}.world {w!r} is not a registered tick world; "
                                        f"registered: {', '.join(registered_tick_worlds())}{extra}")
        return _WORLDS[w](config)
    if isinstance(w, TickWorld):
        return w
    raise EnvConfigError(f"{type(config).__name__}.world must be a name or a TickWorld, got {type(w).__name__}")


# =========================================================================================
# configs
# =========================================================================================
def _parse_start(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        parts = v.strip().split(":")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            nums = []
        if not 2 <= len(nums) <= 3:
            raise EnvConfigError(f"start must be seconds after midnight or 'HH:MM[:SS]', got {v!r}")
        return nums[0] * 3600 + nums[1] * 60 + (nums[2] if len(nums) == 3 else 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise EnvConfigError(f"start must be seconds after midnight or 'HH:MM[:SS]', got {v!r}")
    return float(v)


def _hms(sec: float) -> str:
    s = int(round(sec))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class TickConfig(Replaceable):
    """Fields shared by the tick-level envs (units in each docstring)."""

    data: Any = None
    """LOBSTER message file of the replay world (``.csv`` / ``.csv.gz``; the orderbook file
    beside it by the LOBSTER naming convention). None: the shipped GOOG 2012-06-21 10:00-11:00 L10 hour."""
    world: Any = "replay"
    """Tick world: ``"replay"`` (the real tape of ``data``) or a registered name / a :class:`TickWorld`."""
    start: Any = None
    """Episode start: None draws it uniformly (ns) over the data's hours so the episode fits, from
    the env's own stream; else seconds after midnight exchange time (New York, as LOBSTER's NASDAQ
    files), or ``"HH:MM[:SS]"``."""
    horizon: int = 300
    """Decisions per episode (each ``dt`` seconds of market time, or ``k_events`` market messages)."""
    dt: float = 1.0
    """Decision interval (seconds of market time, 0.1 .. 60) when ``decide_every="dt"``."""
    decide_every: str = "dt"
    """``"dt"``: a decision every ``dt`` seconds of market time; ``"events"``: a decision right after
    every ``k_events``-th market message, one ns past its time. Supported by every built-in world:
    ``"replay"`` (the k-th tape message and the messages sharing its ns; the episode's
    ``horizon * k_events`` messages must fit in the file), ``"parametric"`` and ``"learned"`` (exactly
    ``k_events`` generated market events per decision; an episode that reaches the session end first
    ends there). A world of your own needs ``event_until`` / ``event_window`` or ``advance_events``
    (:class:`TickWorld`)."""
    k_events: int = 100
    """Market messages per decision when ``decide_every="events"`` (1 .. 1,000,000)."""
    latency: Any = "colocated"
    """Order-entry latency: a name in :data:`lobworld.envs.latency.LATENCY_SCENARIOS`, a
    :class:`~lobworld.envs.latency.LatencyScenario`, or one per env."""
    md_latency: Any = None
    """Market-data latency (venue to agent), same forms; None: the same scenario as ``latency``."""
    queue_model: str = "behind"
    """How cancels at the agent's level move it (:class:`~lobworld.envs.book.BookConfig`):
    ``"behind"`` or ``"probabilistic"``."""
    queue_power: float = 1.0
    """Exponent of the probabilistic queue model."""
    obs_levels: int = 5
    """Book levels per side in the observation (1..10)."""
    size_scale: float = 100.0
    """Shares per observation unit (sizes, queue positions, volumes are divided by it)."""
    depth: int = DEFAULT_REPLAY_DEPTH
    """Levels per side the engine keeps (at least the data's)."""
    max_fills: int = 256
    """Fill records kept per env and episode (the account counts every fill anyway)."""
    vol_halflife: float = 20.0
    """Half-life (decisions) of the EWMA of squared mid changes behind the volatility observation."""

    def _bad(self, name, why):
        raise EnvConfigError(f"{type(self).__name__}.{name} {why}, got {getattr(self, name)!r}")

    def __post_init__(self) -> None:
        me = type(self).__name__
        integer(f"{me}.horizon", self.horizon, error=EnvConfigError, what="a positive int (decisions)")
        in_range(f"{me}.dt", self.dt, 0.1 - 1e-12, 60.0, error=EnvConfigError, what="a number of seconds in [0.1, 60]")
        if self.decide_every not in ("dt", "events"):
            self._bad("decide_every", "must be 'dt' or 'events'")
        for name, hi, what in (("k_events", 1_000_000, "an int in 1..1000000 (market messages per decision)"),
                               ("obs_levels", 10, "an int in 1..10"), ("depth", 50, "an int in 1..50")):
            integer(f"{me}.{name}", getattr(self, name), error=EnvConfigError, what=what)
            if getattr(self, name) > hi:
                self._bad(name, f"must be {what}")
        for name in ("size_scale", "vol_halflife", "queue_power"):
            positive(f"{me}.{name}", getattr(self, name), error=EnvConfigError)
        integer(f"{me}.max_fills", self.max_fills, error=EnvConfigError, what="a positive int")
        if self.queue_model not in ("behind", "probabilistic"):
            self._bad("queue_model", "must be 'behind' or 'probabilistic'")
        for name in ("latency", "md_latency"):
            v = getattr(self, name)
            if isinstance(v, str):
                resolve_latency(v, 1)  # UnknownLatencyError names the presets
            elif v is not None and not isinstance(v, (LatencyScenario, list, tuple)):
                self._bad(name, "must be a latency scenario name, a LatencyScenario or one per env")
        _parse_start(self.start)



@dataclass(frozen=True)
class TickMarketMakingConfig(TickConfig):
    """Configuration of ``LOB-TickMarketMaking-v0`` (units in each docstring)."""

    inventory_limit: float = 1000.0
    """Inventory limit (shares): ``|inventory| > inventory_limit`` after a decision terminates."""
    max_level: int = 10
    """Action bound on the quote levels: ticks from the own-side touch in ``[-max_level, max_level]``."""
    max_size: float = 500.0
    """Action bound on the quote sizes (shares, ``[0, max_size]``, rounded to whole shares; <= inventory_limit)."""
    phi: float = 1e-6
    """Quadratic running inventory penalty (USD per share^2 per second)."""
    discrete_levels: tuple[int, ...] = (0, 1, 3)
    """Discrete variant: levels (ticks behind the own touch) whose pairs form the quote grid."""
    discrete_size: float = 100.0
    """Discrete variant: quote size of every grid action (shares per side)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("inventory_limit", "max_size", "discrete_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v <= 0:
                self._bad(name, "must be a finite number > 0")
        if not isinstance(self.phi, (int, float, np.integer, np.floating)) or not math.isfinite(self.phi) \
                or self.phi < 0:
            self._bad("phi", "must be a finite number >= 0")
        if isinstance(self.max_level, bool) or not isinstance(self.max_level, (int, np.integer)) \
                or not 0 <= self.max_level <= 1000:
            self._bad("max_level", "must be an int in 0..1000 (ticks)")
        if self.max_size > self.inventory_limit:
            self._bad("max_size", f"must be <= inventory_limit={self.inventory_limit} (a quote larger than the "
                      f"limit could end the episode on one fill)")
        lv = self.discrete_levels
        if not isinstance(lv, (tuple, list)) or not lv or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) and abs(x) <= self.max_level for x in lv):
            self._bad("discrete_levels", f"must be a non-empty tuple of int levels within +-max_level={self.max_level}")
        if self.discrete_size > self.max_size:
            self._bad("discrete_size", f"must be <= max_size={self.max_size}")


@dataclass(frozen=True)
class TickExecutionConfig(TickConfig):
    """Configuration of ``LOB-TickExecution-v0`` (units in each docstring)."""

    side: str = "sell"
    """``"sell"`` (liquidate) or ``"buy"`` (acquire)."""
    quantity: int = 1000
    """Parent order Q (shares, a positive int)."""
    max_level: int = 10
    """Action bound on the child's level (ticks behind the own-side touch, ``[0, max_level]``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.side not in ("sell", "buy"):
            self._bad("side", "must be 'sell' or 'buy'")
        q = self.quantity
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
            self._bad("quantity", "must be a positive int (shares)")
        if isinstance(self.max_level, bool) or not isinstance(self.max_level, (int, np.integer)) \
                or not 0 <= self.max_level <= 1000:
            self._bad("max_level", "must be an int in 0..1000 (ticks)")


def obs_names(n_levels: int, first: str) -> tuple[str, ...]:
    """Names of the observation columns (``first``: ``"inventory"`` or ``"remaining"``)."""
    return (tuple(f"bid_size_{j}" for j in range(n_levels)) + tuple(f"ask_size_{j}" for j in range(n_levels))
            + ("spread", "imbalance", "time", first)
            + tuple(f"{k}_{c}" for k in ("order0", "order1") for c in ("ahead", "resting", "distance"))
            + ("exec_volume", "messages", "volatility", "latency"))


# =========================================================================================
# the batched cores
# =========================================================================================
class _TickCore(BatchedCore):
    """Shared machinery: the book, the world, windows, latency, observations."""

    fresh_outputs = True  # every step writes all rows of obs, reward, terminated, truncated

    n_streams = bk.N_STREAMS + 1  #: the book's three (entry, market data, queue), then the window draw
    _S_WINDOW = bk.N_STREAMS
    config_cls: type = TickConfig
    _first_name = "inventory"

    def __init__(self, n_envs: int = 1, config=None, parallel: bool | None = None, **overrides: Any):
        config = config_from_kwargs(self.config_cls, config, overrides, self._owner, ("config", "parallel"))
        self.config = c = config
        self.world: TickWorld = make_tick_world(c)
        self.n_levels = int(c.obs_levels)
        self.record_column = 2 * self.n_levels + 3
        """The observation column of the inventory ratio / remaining fraction (what the counterfactual records)."""
        n_obs = len(obs_names(self.n_levels, self._first_name))
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self._set_action_space()
        self.latency = resolve_latency(c.latency, int(n_envs))
        self.md_latency = self.latency if c.md_latency is None else resolve_latency(c.md_latency, int(n_envs))
        t_first, t_last = self.world.bounds()
        self.dt_ns = int(round(c.dt * 1e9))
        self.events = c.decide_every == "events"
        span = c.horizon * self.dt_ns
        self.gen_events = self.events and hasattr(self.world, "advance_events")
        """Decisions every k events of a generated world (``TickWorld.advance_events``)."""
        if self.gen_events:
            span = 1  # starts strictly before the session end; a decision that reaches it ends the episode
        elif self.events:
            if not (hasattr(self.world, "event_until") and hasattr(self.world, "event_window")):
                raise EnvConfigError(f"{type(c).__name__}.decide_every 'events': the {getattr(self.world, 'name', '?')!r} "
                                     "tick world has neither event_until / event_window nor advance_events (decisions "
                                     "every k messages need them); use decide_every='dt'")
            n_msg = c.horizon * c.k_events
            w0, w1 = self.world.event_window(n_msg)
            if w1 < w0:
                raise TickWindowError(f"{self._owner}: horizon * k_events = {n_msg} messages do not fit in the data")
            span = t_last - w1
        elif t_last - t_first < span:
            raise TickWindowError(f"{self._owner}: horizon * dt = {c.horizon * c.dt:g} s does not fit in the data's "
                                  f"{(t_last - t_first) / 1e9:.0f} s")
        import pandas as pd

        mid_ns = pd.Timestamp(t_first, tz="UTC").tz_convert("America/New_York").normalize().value
        self._midnight_ns = int(mid_ns)
        self._window = (t_first, t_last - span)
        self._fixed_start: int | None = None
        start = _parse_start(c.start)
        if start is not None:
            t0 = self._midnight_ns + int(round(start * 1e9))
            if self.gen_events and not t_first <= t0 <= t_last - span:
                raise TickWindowError(
                    f"{type(c).__name__}.start {c.start!r} is outside the world's session "
                    f"{_hms((t_first - self._midnight_ns) / 1e9)}-{_hms((t_last - self._midnight_ns) / 1e9)} "
                    "(exchange time; it must come before the session end)")
            if self.events and not t_first <= t0 <= t_last - span:
                raise TickWindowError(
                    f"{type(c).__name__}.start {c.start!r}: fewer than horizon * k_events = {c.horizon * c.k_events} "
                    f"messages follow it in the data (latest start {_hms((t_last - span - self._midnight_ns) / 1e9)}, "
                    "exchange time)")
            if not t_first <= t0 <= t_last - span:
                lo = (t_first - self._midnight_ns) / 1e9
                hi = (t_last - self._midnight_ns) / 1e9
                raise TickWindowError(
                    f"{type(c).__name__}.start {c.start!r}: the window {_hms(start)} + {c.horizon * c.dt:g} s is "
                    f"outside the data's hours {_hms(lo)}-{_hms(hi)} (exchange time); latest start "
                    f"{_hms(hi - c.horizon * c.dt)}")
            self._fixed_start = t0
        super().__init__(n_envs)

    @property
    def _owner(self) -> str:
        return type(self).__name__.replace("Core", "Env")

    def _set_action_space(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _alloc_state(self) -> None:
        n, c = self.n_envs, self.config
        base = BookConfig(depth=int(c.depth), max_orders=2, max_pending=16, max_commands=16,
                          max_fills=int(c.max_fills), queue_model=c.queue_model, queue_power=float(c.queue_power),
                          strict=True)
        self.book = Book(n, self.world.book_config(base), latency=self.latency, md_latency=self.md_latency, seed=0)
        self.book.rng[:] = self.rng_state[:, : bk.N_STREAMS]
        self.md_ns = np.rint(self.book.lat[:, bk.L_MD]).astype(np.int64)
        self.lat_obs = np.array([s.scaled_id for s in self.latency], np.float64)
        self.sv = np.zeros((n, K.N_SV), np.float64)
        self.ep_done = np.zeros((n, K.N_SV), np.float64)
        self.acct_done = np.zeros((n, bk.N_ACC), np.int64)
        self.tns = np.zeros((n, 3), np.int64)
        self.tns[:, K.T_END] = self.world.bounds()[1] if self.gen_events else bk.INT_MAX
        self.first = np.zeros(n, np.float64)
        self.sent = np.zeros(n, np.int64)
        self._t0 = np.zeros(n, np.int64)
        self._all = np.ones(n, np.bool_)
        cfg = np.zeros(K.N_CFG, np.float64)
        cfg[K.C_DT_NS] = self.dt_ns
        cfg[K.C_HORIZON] = c.horizon
        cfg[K.C_TICK] = self.world.tick_size
        cfg[K.C_DT_S] = c.dt
        cfg[K.C_SCALE] = c.size_scale
        cfg[K.C_VOL_ALPHA] = 1.0 - 0.5 ** (1.0 / c.vol_halflife)
        cfg[K.C_MSG_SCALE] = 100.0
        cfg[K.C_EVENTS] = 1.0 if self.events else 0.0
        self._until = np.zeros(n, np.int64)
        self.cfg = cfg
        self._family_cfg(cfg)

    def _family_cfg(self, cfg: np.ndarray) -> None:
        pass

    def seed_rows(self, indices, seeds) -> None:
        super().seed_rows(indices, seeds)
        if hasattr(self, "book"):
            idx = np.asarray(list(indices), np.int64)
            self.book.rng[idx] = self.rng_state[idx, : bk.N_STREAMS]

    def _reset_rows(self, mask: np.ndarray) -> None:
        b = self.book
        # the book's streams are the first N_STREAMS of the env's own: keep them running
        self.rng_state[:, : bk.N_STREAMS] = b.rng
        K.reset_book_rows(mask, b.px, b.sz, b.dq, b.nl, b.orders, b.pend, b.cmds, b.fills, b.acct, b.cnt, b.es)
        if self._fixed_start is not None:
            self._t0[mask] = self._fixed_start
        else:
            K.draw_starts(mask, self.rng_state, self._S_WINDOW, self._window[0], self._window[1], self._t0)
        idx = np.flatnonzero(mask)
        self.world.reset_rows(b, idx, self._t0[idx])
        self.tns[idx, K.T_START] = self._t0[idx]
        self.tns[idx, K.T_NOW] = self._t0[idx]
        K.start_rows(mask, b.px, b.nl, b.cnt, self.sv)
        self.first[mask] = self._first_at_start
        K.write_obs(mask, self.n_levels, b.px, b.sz, b.dq, b.nl, b.orders, self.sv, self.cfg, self.first,
                    self.lat_obs, self.obs)

    _first_at_start = 0.0

    def _step_rows(self, actions: np.ndarray, autoreset: bool) -> None:
        b = self.book
        self._commands(self._to_continuous(actions))
        if self.gen_events:
            self._until[:] = self.world.advance_events(b, self.config.k_events)
        else:
            if self.events:
                self._until[:] = self.world.event_until(b, self.config.k_events)
            else:
                np.add(self.tns[:, K.T_NOW], self.dt_ns, out=self._until)
            self.world.advance(b, self._until)
        self._post()
        K.write_obs(self._all, self.n_levels, b.px, b.sz, b.dq, b.nl, b.orders, self.sv, self.cfg, self.first,
                    self.lat_obs, self.obs)
        done = self.terminated | self.truncated
        if done.any():
            keep_rows(done, (self.obs, self.final_obs), (self.sv, self.ep_done), (b.acct, self.acct_done))
            if autoreset:
                self._reset_rows(done)

    def _to_continuous(self, actions: np.ndarray) -> np.ndarray:
        return actions

    # ------------------------------------------------------------------ introspection
    @property
    def inventory(self) -> np.ndarray:
        """The agent's position of every env (shares, + long; copy)."""
        return self.book.acct[:, bk.A_POS].copy()

    @property
    def cash_usd(self) -> np.ndarray:
        """The agent's cash of every env (USD; sells add, buys subtract; copy)."""
        return self.book.acct[:, bk.A_CASH] * self.world.tick_size

    @property
    def time_ns(self) -> np.ndarray:
        """Market time of every env (int64 ns; copy)."""
        return self.tns[:, K.T_NOW].copy()

    @property
    def start_ns(self) -> np.ndarray:
        """Episode start time of every env (int64 ns; copy)."""
        return self.tns[:, K.T_START].copy()

    @property
    def start_seconds(self) -> np.ndarray:
        """Episode start of every env in seconds after midnight, exchange time (float64)."""
        return (self.tns[:, K.T_START] - self._midnight_ns) / 1e9


class TickMarketMakingCore(_TickCore):
    """Batched tick-level market making (the spec is :class:`TickMarketMakingEnv`'s docstring)."""

    config_cls = TickMarketMakingConfig
    _first_name = "inventory"

    def __init__(self, n_envs: int = 1, config: TickMarketMakingConfig | None = None, discrete: bool = False,
                 parallel: bool | None = None, **overrides: Any):
        self.discrete = bool(discrete)
        super().__init__(n_envs, config, parallel, **overrides)

    def _set_action_space(self) -> None:
        c = self.config
        lv = [int(x) for x in c.discrete_levels]
        self.discrete_grid = np.array([(b, a) for b in lv for a in lv], np.float64)
        self.n_quote_actions = len(self.discrete_grid)
        if self.discrete:
            self.single_action_space = spaces.Discrete(self.n_quote_actions + 2)
        else:
            m = float(c.max_level)
            self.single_action_space = spaces.Box(
                low=np.array([-m, -m, 0.0, 0.0, 0.0, 0.0], np.float32),
                high=np.array([m, m, c.max_size, c.max_size, 1.0, 1.0], np.float32), dtype=np.float32)

    def _alloc_state(self) -> None:
        super()._alloc_state()
        self._act = np.zeros((self.n_envs, 6), np.float64)

    def _family_cfg(self, cfg: np.ndarray) -> None:
        cfg[K.C_LIMIT] = self.config.inventory_limit
        cfg[K.C_PHI] = self.config.phi

    def _to_continuous(self, actions: np.ndarray) -> np.ndarray:
        if not self.discrete:
            return actions
        a = actions
        act = self._act
        quote = a < self.n_quote_actions
        act[:, :2] = self.discrete_grid[np.where(quote, a, 0)]
        act[:, 2:4] = np.where(quote, self.config.discrete_size, 0.0)[:, None]
        act[:, 4:6] = (a == self.n_quote_actions + 1)[:, None]
        return act

    def _commands(self, act: np.ndarray) -> None:
        b = self.book
        K.mm_commands(act, self.tns, self.md_ns, b.px, b.nl, b.orders, b.cmds, b.es, self.sent)

    def _post(self) -> None:
        b = self.book
        K.mm_post(b.px, b.nl, b.cnt, b.acct, b.fills, b.es, b.orders, self.sv, self.tns, self._until, self.cfg,
                  self.reward, self.terminated,
                  self.truncated, self.first)

    episode_stats = EpisodeStats(
        column("episode_length", K.V_STEP, kind=int),
        column("pnl", K.V_W_PREV),
        column("episode_return", K.V_RET),
        column("inventory_terminal", bk.A_POS, "acct_done"),
        column("inventory_max_abs", K.V_MAXABS),
        Stat("inventory_mean", lambda r: r["ep_done"][:, K.V_SUMINV] / np.maximum(r["ep_done"][:, K.V_STEP], 1.0)),
        column("filled_shares_bid", bk.A_BUY_QTY, "acct_done"),
        column("filled_shares_ask", bk.A_SELL_QTY, "acct_done"),
        column("fills", bk.A_NFILLS, "acct_done", int),
        column("passive_shares", bk.A_PASSIVE_QTY, "acct_done"),
        column("aggressive_shares", bk.A_AGGR_QTY, "acct_done"),
        Stat("sharpe_per_step", lambda r: sharpe(r["ep_done"][:, K.V_SUMDW], r["ep_done"][:, K.V_SUMDW2],
                                                 r["ep_done"][:, K.V_STEP])),
        Stat("adverse_selection_usd", lambda r: r["ep_done"][:, K.V_ADVERSE] * r.core.world.tick_size),
        Stat("adverse_selection_ticks", lambda r: ratio(r["ep_done"][:, K.V_ADVERSE], r["ep_done"][:, K.V_PASSIVE_REC])),
        Stat("queue_wait_s", lambda r: ratio(r["ep_done"][:, K.V_WAIT_NS_SH], r["ep_done"][:, K.V_PASSIVE_REC]) * 1e-9),
    )


def _done_shares(r) -> np.ndarray:
    """Shares of the parent order executed in each finished episode (sold for a sale, bought for a buy)."""
    return r["acct_done"][:, bk.A_SELL_QTY if r.core.config.side == "sell" else bk.A_BUY_QTY].astype(float)


class TickExecutionCore(_TickCore):
    """Batched tick-level execution (the spec is :class:`TickExecutionEnv`'s docstring)."""

    config_cls = TickExecutionConfig
    _first_name = "remaining"
    _first_at_start = 1.0

    def _set_action_space(self) -> None:
        m = float(self.config.max_level)
        self.single_action_space = spaces.Box(low=np.array([0.0, 0.0, 0.0], np.float32),
                                              high=np.array([1.0, 3.0, m], np.float32), dtype=np.float32)

    def _family_cfg(self, cfg: np.ndarray) -> None:
        cfg[K.C_QTY] = self.config.quantity
        cfg[K.C_SIDE] = bk.ASK if self.config.side == "sell" else bk.BID

    def _commands(self, act: np.ndarray) -> None:
        b = self.book
        K.exec_commands(act, self.tns, self.md_ns, b.px, b.nl, b.orders, b.cmds, b.es, b.acct, self.cfg, self.sent)

    def _post(self) -> None:
        b = self.book
        K.exec_post(b.px, b.sz, b.dq, b.nl, b.orders, b.es, b.cnt, b.acct, self.sv, self.tns, self._until, self.cfg,
                    self.reward, self.terminated, self.truncated, self.first)

    episode_stats = EpisodeStats(
        column("episode_length", K.V_STEP, kind=int),
        Stat("shortfall_bps", lambda r: ratio(r["ep_done"][:, K.V_COST_PREV] * 1e4,
                                              float(r.core.config.quantity) * r["ep_done"][:, K.V_MID0])),
        column("episode_return", K.V_RET),
        Stat("completion", lambda r: _done_shares(r) / float(r.core.config.quantity)),
        Stat("shares_executed", _done_shares),
        column("passive_shares", bk.A_PASSIVE_QTY, "acct_done"),
        Stat("aggressive_shares", lambda r: r["acct_done"][:, bk.A_AGGR_QTY] - r["ep_done"][:, K.V_FORCED]),
        column("forced_shares", K.V_FORCED),
        column("forced_beyond_book_shares", K.V_FORCED_BEYOND),
        Stat("vwap", lambda r: ratio(np.abs(r["acct_done"][:, bk.A_CASH]) * r.core.world.tick_size,
                                     (r["acct_done"][:, bk.A_SELL_QTY] + r["acct_done"][:, bk.A_BUY_QTY]).astype(float))),
        Stat("arrival_price", lambda r: r["ep_done"][:, K.V_MID0] * r.core.world.tick_size),
    )


_OBS_TABLE = """
    | idx | name | meaning | unit / scale |
    |---|---|---|---|
    | 0 .. k-1 | bid_size_j | visible shares at bid level j (market book; the agent's own orders not included) | / ``size_scale`` |
    | k .. 2k-1 | ask_size_j | same for the ask | / ``size_scale`` |
    | 2k | spread | best ask - best bid (0 if a side is empty) | ticks |
    | 2k+1 | imbalance | (bid_size_0 - ask_size_0) / (bid_size_0 + ask_size_0) | [-1, 1] |
    | 2k+2 | time | decisions taken / ``horizon`` | [0, 1] |
    | 2k+3 | {first} | {first_doc} | ratio |
    | 2k+4 .. 2k+6 | order0_* | slot 0 ({slot0}): shares ahead (-1 if not live), resting shares, ticks behind the own touch | / ``size_scale``, / ``size_scale``, ticks |
    | 2k+7 .. 2k+9 | order1_* | slot 1 ({slot1}): same | |
    | 2k+10 | exec_volume | shares executed on the tape (visible + hidden) in the last interval | / ``size_scale`` |
    | 2k+11 | messages | tape messages in the last interval | / 100 |
    | 2k+12 | volatility | sqrt of the EWMA (half-life ``vol_halflife``) of squared mid changes per interval | ticks |
    | 2k+13 | latency | ``log10(1 + one_way_us) / 5`` of the env's entry latency | [0, ~1.2] |

    ``k = obs_levels`` (default 5: 24 columns).
"""


class TickMarketMakingEnv(LOBEnv):
    """Market making on the event-level book, at real queue positions, with latency.

    ## Description

    The agent quotes a bid and an ask in an event-level limit order book, moved by the learned
    tick world (the registered id's default), the Cont-Stoikov-Talreja flow
    (``world="parametric"``) or the real tape of a LOBSTER day (``world="replay"``, the class's
    own default). Every ``dt`` seconds of market time (default 1 s) it decides
    (``decide_every="events"``: right after every ``k_events``-th market message, the
    decision boundary one ns past its time; on the replay world the messages sharing its ns
    come before the decision too, on the generated worlds exactly ``k_events`` market events
    do: ``TickWorld``);
    its messages reach the venue after the order-entry latency of its scenario, and it
    decides on a book one market-data latency old (the command is timed at
    ``t + md`` where ``t`` is the decision boundary, so the book engine resolves it on the
    book of about ``t``). A quote joins the back of its price level (shares ahead = the
    visible size there when it goes live; one that improves the touch has nothing ahead);
    the tape's executions at its price consume the queue ahead first, then fill it (FIFO);
    cancels move the queue by ``queue_model``. Executions that trade through its price and
    crossing submits fill it too (``docs/book.md``). Fills are the engine's, at the quote's
    price.

    ## Action Space

    Continuous, ``Box(6,)`` float32: ``[bid_level, ask_level, bid_size, ask_size, keep_bid,
    keep_ask]``. Levels are ticks from the own-side touch, in ``[-max_level, max_level]``,
    rounded half up to whole ticks: 0 joins the best bid (ask), 2 rests two ticks behind it,
    -1 improves it by a tick. A price at or through the opposite best is placed one tick
    behind it (post-only at decision time; a quote that arrives after the book moved and
    crosses then trades, as on an exchange). Sizes are shares in ``[0, max_size]``, rounded
    to whole shares; 0 cancels that side. ``keep_* >= 0.5`` sends nothing for that side
    (the quote keeps its price and queue place). A quote whose price and size equal the
    working order's is also kept. Otherwise a working quote is modified (a new price loses
    the place) and an empty slot gets a new limit order. A side whose own touch is empty
    sends nothing.

    Discrete (``discrete=True``), ``Discrete(m*m + 2)`` with ``m = len(discrete_levels)``:
    action ``j < m*m`` quotes ``discrete_size`` shares at levels ``(discrete_levels[j // m],
    discrete_levels[j % m])``; ``m*m`` cancels both; ``m*m + 1`` keeps both.

    Out-of-space or non-finite actions raise :class:`~lobworld.envs.core.ActionError`.

    ## Observation Space

    ``Box(2k + 14,)`` float32:
    {obs}
    ## Rewards

    ``reward = dW - phi * q^2 * dt`` (USD; ``dt`` the interval in seconds: the time between
    the two decisions when ``decide_every="events"``) with wealth ``W = cash + q * mid`` (``q`` the
    inventory in shares, cash from the fills at their prices, the mid of the market book at
    the end of the interval). Without penalty the rewards sum to the episode PnL.

    ## Starting State

    The book of the world at the episode start (the file's book at the last message before
    it), flat inventory, no cash, no orders. The start is ``start`` or drawn uniformly over
    the data's hours so that ``horizon * dt`` fits (``decide_every="events"``: so that
    ``horizon * k_events`` messages follow it on the replay world; anywhere before the session
    end on a generated world).

    ## Episode End

    Terminated when ``|q| > inventory_limit`` after a decision; truncated after ``horizon``
    decisions, or (generated world, ``decide_every="events"``) at a decision the session end
    forced: the flow reached ``bounds()[1]`` before its ``k_events``-th event. The last step's info holds ``pnl`` (USD), ``episode_return``,
    ``inventory_terminal``, ``inventory_max_abs``, ``inventory_mean``,
    ``filled_shares_bid`` / ``_ask``, ``fills``, ``passive_shares``, ``aggressive_shares``,
    ``sharpe_per_step``, ``episode_length``; over the recorded passive fills (``max_fills``):
    ``adverse_selection_usd`` (the mid's move against each fill over the decision interval it
    happened in, times its shares: + = adverse), ``adverse_selection_ticks`` (the same per
    share, ticks) and ``queue_wait_s`` (share-weighted seconds from the order going live to the
    fill); other infos are empty.

    ## Arguments

    The fields of :class:`TickMarketMakingConfig` (``data``, ``world``, ``start``,
    ``horizon``, ``dt``, ``decide_every``, ``k_events``, ``latency``, ``md_latency``, ``queue_model``, ``inventory_limit``,
    ``max_level``, ``max_size``, ``phi`` ...) as keywords or ``config=``; ``discrete``;
    ``parallel`` is accepted like the other cores' but not used (the book engine picks its
    serial or ``prange`` kernel by batch size).
    ``world``: ``"learned"`` (the tick GRU; the registered id's default), ``"parametric"``
    (Cont-Stoikov-Talreja), both registered by the package root, or ``"replay"`` (the real tape;
    the class's own default). Random streams per env: entry latency,
    market-data latency, queue model, episode start.

    ## Version History

    * v0: initial version (replay world); decisions every k market events (``decide_every``;
      on the generated worlds too); the registered id's default world became ``"learned"`` on
      2026-12-07 (``world="replay"`` gives the earlier default).
    """

    core_cls = TickMarketMakingCore


class TickMarketMakingVectorEnv(LOBVectorEnv):
    """Native batched form of :class:`TickMarketMakingEnv` (same-step autoreset)."""

    core_cls = TickMarketMakingCore


class TickExecutionEnv(LOBEnv):
    """Execution of a parent order with limit and market child orders on the event-level book.

    ## Description

    Sell (``side="sell"``) or buy ``quantity`` = Q shares within ``horizon`` decisions of
    ``dt`` seconds (or of ``k_events`` market messages, ``decide_every="events"``, as in
    :class:`TickMarketMakingEnv`) on the event-level book (the registered id: the learned tick world;
    the class: ``world="replay"``, the real tape). Each decision sends at most one
    child order; its messages reach the venue after the entry latency; a passive child
    rests at the back of its level and fills from the tape's executions at its queue
    position (as in :class:`TickMarketMakingEnv`); a market child walks the book.

    ## Action Space

    ``Box(3,)`` float32: ``[fraction, type, level]``. ``R`` = shares still to execute;
    the child's size is ``round(fraction * R)``, ``fraction`` in ``[0, 1]``. ``type`` in
    ``[0, 3]`` is rounded half up: 0 market order, 1 limit at the own-side touch (the best
    ask for a sale), 2 limit ``round(level)`` ticks behind the touch (``level`` in ``[0,
    max_level]``), 3 cancel the resting child. Rules (none silently changes an order):
    a new child never makes the working shares (resting child + market child in flight)
    exceed ``R``; its size is cut to what is free. A limit action at the resting child's
    price with fewer shares reduces it (keeps its place); at the same price with the same
    shares it is kept; otherwise the resting child is cancelled and the new child must be
    sent at a later decision, once the cancel has landed (so no race of a fill with a
    replace can execute more than Q). A size of 0 sends nothing; a market child while
    another is in flight sends nothing. Out-of-space or non-finite actions raise
    :class:`~lobworld.envs.core.ActionError` (a level beyond ``max_level`` is out of the space).

    ## Observation Space

    ``Box(2k + 14,)`` float32:
    {obs}
    ## Rewards

    ``s0`` = the arrival mid (ticks), ``C = -cash - s0 * position`` (ticks x shares: the
    implementation shortfall against the arrival mid so far, + = cost). ``reward =
    -(C_k - C_{{k-1}}) * 1e4 / (Q * s0)``: the rewards sum to minus the episode's
    implementation shortfall in bps of the arrival notional (``shortfall_bps``).

    ## Starting State

    As :class:`TickMarketMakingEnv`; nothing executed.

    ## Episode End

    Terminated when Q shares are executed, or at decision ``horizon`` (or at a decision the
    session end forced, as in :class:`TickMarketMakingEnv`): then the working
    children are withdrawn and the rest is sold (bought) at once into the book at the
    horizon, level by level (forced completion, no latency; shares beyond the visible book
    at one tick worse than its deepest level, counted in ``forced_beyond_book_shares``).
    Never truncated; ``completion`` is always 1. The last info holds ``shortfall_bps``,
    ``episode_return``, ``completion``, ``shares_executed``, ``passive_shares``,
    ``aggressive_shares`` (market children), ``forced_shares``,
    ``forced_beyond_book_shares``, ``vwap`` and ``arrival_price`` (USD),
    ``episode_length``.

    ## Arguments

    The fields of :class:`TickExecutionConfig` (``side``, ``quantity``, ``max_level`` and
    the shared ones: ``data``, ``world``, ``start``, ``horizon``, ``dt``, ``decide_every``,
    ``k_events``, ``latency`` ...)
    as keywords or ``config=``.

    ## Version History

    * v0: initial version (replay world; no risk penalty yet); the registered id's default world
      became ``"learned"`` on 2026-12-07 (``world="replay"`` gives the earlier default).
    """

    core_cls = TickExecutionCore


class TickExecutionVectorEnv(LOBVectorEnv):
    """Native batched form of :class:`TickExecutionEnv` (same-step autoreset)."""

    core_cls = TickExecutionCore


TickMarketMakingEnv.__doc__ = TickMarketMakingEnv.__doc__.format(obs=_OBS_TABLE.format(
    first="inventory", first_doc="inventory / ``inventory_limit``", slot0="the bid", slot1="the ask"))
TickExecutionEnv.__doc__ = TickExecutionEnv.__doc__.format(obs=_OBS_TABLE.format(
    first="remaining", first_doc="shares still to execute / Q", slot0="the resting child",
    slot1="the market child"))

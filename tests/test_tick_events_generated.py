"""Decisions every k market events (``decide_every="events"``) on the generated tick worlds: the
parametric (Cont-Stoikov-Talreja) world and the learned tick-GRU world, through ``advance_events``.

Each interval holds exactly ``k_events`` market events by the world's own counter (CST ``W_EVENTS``;
GRU ``W_SUBMIT .. W_HIDDEN``), every engine message of the interval comes from the world, the decision
time is one ns past the k-th event's logged time and strictly increases; one interval equals the
world's ``advance`` to that decision time (same books, orders, fills, accounts); serial and ``prange``
kernels agree bit for bit; seeding is deterministic; fills add up to position and cash; an episode that
reaches the session end ends there.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lobworld  # noqa: F401  (registers the ids and the generated tick worlds)
from lobworld.envs import book_kernels as bk
from lobworld.envs.tick import ReplayWorld, TickExecutionCore, TickMarketMakingCore, obs_names
from lobworld.world_models import tick_gru_world as G
from lobworld.world_models import tick_world as C
from lobworld.world_models.tick_gru_world import TickGRUWorld, TickGRUWorldError, _weights
from lobworld.world_models.tick_parametric import load_fitted_cst
from lobworld.world_models.tick_world import CSTWorld, CSTWorldError
from vec_contract import batch_actions

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"
WORLDS = ["parametric", "learned"]
MM_KW = dict(inventory_limit=1e4, max_size=300.0, phi=0.0)


def _world(name, **kw):
    data = ReplayWorld.from_path(None).data
    if name == "parametric":
        return CSTWorld(load_fitted_cst("GOOG"), data, **kw)
    return TickGRUWorld(_weights("GOOG"), data, **kw)


def _events(world) -> np.ndarray:
    """Market events each env's world has applied since its reset (the world's own counter)."""
    if world.name == "parametric":
        return world.wcnt[:, C.W_EVENTS].copy()
    return world.wcnt[:, G.W_SUBMIT:G.W_HIDDEN + 1].sum(1)


def _core(family, world, n, horizon, k, seeds, start="10:20:00", latency="colocated", **kw):
    cls, extra = (TickMarketMakingCore, MM_KW) if family == "mm" else (TickExecutionCore, {"quantity": 600})
    core = cls(n_envs=n, horizon=horizon, start=start, latency=latency, world=world, decide_every="events",
               k_events=k, **{**extra, **kw})
    core.seed_rows(range(n), seeds)
    core.reset()
    return core


def _quotes(n, steps, seed):
    """Market-making actions: quotes at levels -1..3 of 50..300 shares, sometimes kept or cancelled."""
    r = np.random.default_rng(seed)
    a = np.zeros((steps, n, 6), np.float32)
    a[:, :, :2] = r.integers(-1, 4, (steps, n, 2))
    a[:, :, 2:4] = r.integers(0, 7, (steps, n, 2)) * 50
    a[:, :, 4:6] = r.random((steps, n, 2)) < 0.2
    return a


# ---------------------------------------------------------------------------
# exactly k events per decision
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("family", ["mm", "ex"])
@pytest.mark.parametrize("k", [1, 37])
def test_every_interval_holds_exactly_k_events(name, family, k):
    """Per env and decision: the world's event counter grows by exactly k; every engine message of the
    interval is the world's (``cnt[N_MSGS]`` and the world's ``W_MSGS`` grow alike, by at least k; the
    observation's ``messages`` column is that count / 100); the decision is one ns past the time of the
    k-th event in the world's message log; decision times strictly increase. An env whose flow reached the
    session end first (the GRU can draw an inter-arrival past it) has fewer events, decides at the session
    end and its episode is over; most intervals are full ones."""
    n, H = 3, 10
    world = _world(name, record=4000)
    core = _core(family, world, n, H, k, [11, 12, 13], latency=["colocated", "proximity", "retail"])
    msgs_col = obs_names(core.n_levels, "inventory").index("messages")
    wm = G.W_MSGS if name == "learned" else C.W_MSGS
    ev0, m0, w0, t0 = _events(world), core.book.cnt[:, bk.N_MSGS].copy(), world.wcnt[:, wm].copy(), core.time_ns
    acts = _quotes(n, H, 1) if family == "mm" else np.tile(np.array([0.1, 1.0, 0.0], np.float32), (H, n, 1))
    t_last = world.bounds()[1]
    full = 0
    for a in acts:
        core.step(a, autoreset=False)
        ev, m, w, t = _events(world), core.book.cnt[:, bk.N_MSGS].copy(), world.wcnt[:, wm].copy(), core.time_ns
        end = t >= t_last
        np.testing.assert_array_equal((ev - ev0)[~end], k)
        assert ((ev - ev0)[end] <= k).all() and (t <= t_last).all()
        assert (core.truncated | core.terminated)[end].all()
        full += int((~end).sum())
        np.testing.assert_array_equal(m - m0, w - w0)
        assert (m - m0 >= k)[~end].all()
        np.testing.assert_allclose(core.obs[:, msgs_col] * 100.0, m - m0, atol=1e-3)
        assert (t > t0)[~end].all()
        for i in np.flatnonzero(~end):
            # the k-th event's time: CST logs every message (a market order's levels share its ns), GRU every event
            row = (w[i] if name == "parametric" else ev[i]) - 1
            assert world.log[i, row, C.L_T if name == "parametric" else G.L_T] + 1 == t[i]
        if family == "ex" and core.terminated.all():
            break
        ev0, m0, w0, t0 = ev, m, w, t
    assert full >= 2 * n and (core.book.es[:, bk.ES_ERR] == 0).all()


@pytest.mark.parametrize("name", WORLDS)
def test_one_interval_equals_advance_to_the_decision_time(name):
    """``advance_events(book, k)`` leaves the books, the agent's orders, fills, account and the book's
    counters exactly as ``advance(book, t_decision)`` from the same state does (the agent's quotes are
    sent at the reset decision and arrive inside the interval)."""
    k, n, seeds = 150, 4, [21, 22, 23, 24]
    ref = _core("mm", _world(name), n, 5, k, seeds)
    alt = _core("mm", _world(name), n, 5, k, seeds)
    seen = {}

    def via_advance(book, kk):
        assert kk == k
        alt.world.advance(book, seen["t"])
        return seen["t"].copy()

    alt.world.advance_events = via_advance
    a = np.tile(np.array([0, 0, 200, 200, 0, 0], np.float32), (n, 1))
    ref.step(a, autoreset=False)
    seen["t"] = ref.time_ns
    alt.step(a, autoreset=False)
    np.testing.assert_array_equal(alt.time_ns, ref.time_ns)
    for f in ("px", "sz", "dq", "nl", "orders", "pend", "fills", "acct", "cnt"):
        np.testing.assert_array_equal(getattr(alt.book, f), getattr(ref.book, f), err_msg=f)
    np.testing.assert_array_equal(alt.obs, ref.obs)
    np.testing.assert_array_equal(alt.reward, ref.reward)
    np.testing.assert_array_equal(_events(alt.world), k)
    assert (ref.book.acct[:, bk.A_NFILLS] + ref.book.es[:, bk.ES_NLIVE] > 0).all()  # the quotes arrived


# ---------------------------------------------------------------------------
# kernels, seeding, conservation
# ---------------------------------------------------------------------------
def _trace(world, family, n=6, steps=25, seeds=None, k=20):
    core = _core(family, world, n, 8, k, seeds or [100 + i for i in range(n)], latency="proximity")
    out = [core.obs.copy()]
    space = core.single_action_space
    for a in batch_actions(space, n, steps, seed=4):
        core.step(a, autoreset=True)
        out += [core.obs.copy(), core.reward.copy(), core.time_ns, core.terminated.copy(), core.truncated.copy()]
    b = core.book
    out += [b.px.copy(), b.sz.copy(), b.acct.copy(), b.fills.copy(), world.wcnt.copy(), world.log.copy()]
    return core, out


@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("family", ["mm", "ex"])
def test_serial_and_parallel_kernels_agree_bit_for_bit(name, family):
    _, a = _trace(_world(name, parallel=False, record=500), family)
    _, b = _trace(_world(name, parallel=True, record=500), family)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", WORLDS)
def test_same_seed_same_run_and_envs_independent(name):
    _, a = _trace(_world(name, record=500), "mm")
    _, b = _trace(_world(name, record=500), "mm")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # another seed for env 5 only: the decision times of envs 0..4 are unchanged, env 5's differ
    _, c = _trace(_world(name, record=500), "mm", seeds=[100, 101, 102, 103, 104, 999])
    ta, tc = np.stack(a[3:-6:5]), np.stack(c[3:-6:5])
    np.testing.assert_array_equal(ta[:, :5], tc[:, :5])
    assert not np.array_equal(ta[:, 5], tc[:, 5])


@pytest.mark.parametrize("name", WORLDS)
def test_market_making_fills_add_up_to_position_and_cash(name):
    core = _core("mm", name, 2, 40, 25, [5, 6], latency="colocated")
    rewards = np.zeros(2)
    for a in _quotes(2, 40, 3):
        core.step(a, autoreset=False)
        rewards += core.reward
    assert core.truncated.all()
    b = core.book
    for i in range(2):
        log = b.fill_log(i)
        assert b.cnt[i, bk.N_FILL_OVERFLOW] == 0 and len(log) > 0
        sign = np.where(log[:, bk.F_SIDE] == bk.BID, 1, -1)
        assert int((sign * log[:, bk.F_QTY]).sum()) == core.inventory[i]
        assert int((-sign * log[:, bk.F_QTY] * log[:, bk.F_PRICE]).sum()) == b.acct[i, bk.A_CASH]
        info = core.episode_info(i)
        mid = 0.5 * (b.px[i, 0, 0] + b.px[i, 1, 0])
        pnl = (b.acct[i, bk.A_CASH] + b.acct[i, bk.A_POS] * mid) * core.world.tick_size
        assert info["pnl"] == pytest.approx(pnl, abs=1e-9)
        assert rewards[i] == pytest.approx(pnl, abs=1e-6)  # phi = 0: the rewards sum to the PnL


@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("side", ["sell", "buy"])
def test_execution_completes_exactly_q(name, side):
    Q = 600
    core = _core("ex", name, 3, 12, 30, [7, 8, 9], side=side, quantity=Q)
    for _ in range(12):
        core.step(np.tile(np.array([0.3, 1.0, 0.0], np.float32), (3, 1)), autoreset=False)
        if core.terminated.all():
            break
    assert core.terminated.all()
    assert (core.inventory == (Q if side == "buy" else -Q)).all()
    assert (core.book.acct[:, bk.A_BUY_QTY if side == "buy" else bk.A_SELL_QTY] == Q).all()
    assert (core.book.acct[:, bk.A_SELL_QTY if side == "buy" else bk.A_BUY_QTY] == 0).all()


# ---------------------------------------------------------------------------
# the session end
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", WORLDS)
def test_a_decision_at_the_session_end_ends_the_episode(name):
    """Started 4 s before the end of the shipped hour with k = 100000 events per decision: the first
    decision comes at the session end with fewer than k events, all of them before it; market making is
    truncated there (before its horizon), execution completes by the forced order there."""
    world = _world(name, record=100_000)
    t_last = world.bounds()[1]
    mm = _core("mm", world, 2, 50, 100_000, [1, 2], start="10:59:55")
    assert mm.start_ns[0] < t_last < mm.start_ns[0] + 5 * 10**9
    mm.step(np.tile(np.array([0, 0, 100, 100, 0, 0], np.float32), (2, 1)), autoreset=False)
    np.testing.assert_array_equal(mm.time_ns, t_last)
    assert mm.truncated.all() and mm.episode_info(0)["episode_length"] == 1
    ev = _events(world)
    assert (ev > 0).all() and (ev < 100_000).all()
    for i in range(2):
        assert (world.messages(i)[:, 0] < t_last).all()
    ex = _core("ex", _world(name), 2, 50, 100_000, [3, 4], start="10:59:55", quantity=500)
    ex.step(np.tile(np.array([0.0, 1.0, 0.0], np.float32), (2, 1)), autoreset=False)
    np.testing.assert_array_equal(ex.time_ns, t_last)
    assert ex.terminated.all()
    for i in range(2):
        info = ex.episode_info(i)
        assert info["shares_executed"] == 500 and info["forced_shares"] == 500 and info["episode_length"] == 1


def test_starts_must_come_before_the_session_end():
    from lobworld.envs.tick import TickWindowError

    with pytest.raises(TickWindowError, match="outside the world's session 10:00:00-10:59:59"):
        TickMarketMakingCore(n_envs=1, world="parametric", decide_every="events", start="11:00:01")
    with pytest.raises(TickWindowError, match="outside the world's session"):
        TickExecutionCore(n_envs=1, world="learned", decide_every="events", start="09:59:00")
    # drawn starts cover the session (no window to fit): 200 draws spread over the hour
    core = TickMarketMakingCore(n_envs=200, world="parametric", decide_every="events", k_events=1, horizon=1)
    core.seed_rows(range(200), range(200))
    core.reset()
    lo, hi = core.world.bounds()
    s = core.start_ns
    assert (s >= lo).all() and (s < hi).all() and s.max() - s.min() > 0.9 * (hi - lo)


@pytest.mark.parametrize("name", WORLDS)
def test_advance_events_names_bad_input(name):
    from lobworld.envs.book import Book, BookConfig

    world = _world(name)
    err = CSTWorldError if name == "parametric" else TickGRUWorldError
    book = Book(2, world.book_config(BookConfig()))
    world.reset_rows(book, np.arange(2), np.full(2, world.bounds()[0] + 10**9))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(err, match="advance_events: k must be an int >= 1"):
            world.advance_events(book, bad)
    with pytest.raises(err, match="reset for 2 envs"):
        world.advance_events(Book(3, world.book_config(BookConfig())), 5)


# ---------------------------------------------------------------------------
# checkers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("env_id", [MM, EX])
def test_checkers_pass(name, env_id):
    kw = dict(world=name, decide_every="events", k_events=20, horizon=10, start="10:30:00")
    if env_id == MM:
        kw.update(inventory_limit=200.0, max_size=100.0, discrete_size=100.0)
    else:
        kw.update(quantity=300)
    gym_check_env(gym.make(env_id, **kw).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **kw).unwrapped, warn=False)

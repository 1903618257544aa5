"""The learned tick world (lobworld.world_models.tick_gru_world, ``world="learned"``) on the shipped GOOG hour.

Serial and prange kernels bit for bit, seeding, never a crossed book or a rejected message, conservation of
shares and cash through the tick envs, the checkers and the vector contracts, the drawn (type, side)
frequencies against the GRU's own predictive probabilities, the warm-up on the real tape, and the market's
reaction to an agent's market buy under common random numbers.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld  # noqa: F401  (registers the ids and world="learned")
from lobworld.envs import book_kernels as bk
from lobworld.envs.book import Book, BookConfig
from lobworld.envs.core import make_sb3_vec_env
from lobworld.envs.tick import ReplayWorld, TickExecutionCore, TickMarketMakingCore, TickMarketMakingEnv
from lobworld.world_models import tick_gru_world as G
from lobworld.world_models.tick_gru_world import TickGRUWorld, TickGRUWorldError, _weights
from vec_contract import assert_matches_dummy, assert_matches_sync, batch_actions

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"
SHORT = {MM: dict(horizon=12, inventory_limit=150.0, max_size=100.0, discrete_size=100.0, world="learned"),
         EX: dict(horizon=12, quantity=300, world="learned")}


def _world(**kw):
    return TickGRUWorld(_weights("GOOG"), ReplayWorld.from_path(None).data, **kw)


def _assert_books_valid(b):
    for i in range(b.n_envs):
        for s in range(2):
            n = b.nl[i, s]
            assert (b.sz[i, s, :n] > 0).all(), f"env {i} side {s}: a listed level has no shares"
            d = np.diff(b.px[i, s, :n])
            assert ((d < 0) if s == 0 else (d > 0)).all(), f"env {i} side {s}: prices not strictly ordered"
        if b.nl[i, 0] and b.nl[i, 1]:
            assert b.px[i, 0, 0] < b.px[i, 1, 0], f"env {i}: crossed book"
    assert (b.sz >= 0).all()


def _run_mm(world, n=8, steps=20, seed=2, start="10:20:00"):
    core = TickMarketMakingCore(n_envs=n, horizon=steps + 5, start=start, latency="colocated", world=world,
                                inventory_limit=1e4, max_size=300.0)
    core.seed_rows(range(n), [100 + i for i in range(n)])
    core.reset()
    out = [core.obs.copy()]
    for a in batch_actions(core.single_action_space, n, steps, seed=seed):
        core.step(a, autoreset=True)
        out += [core.obs.copy(), core.reward.copy()]
    b = core.book
    out += [b.px.copy(), b.sz.copy(), b.acct.copy(), b.fills.copy(), world.h.copy(), world.wcnt.copy(),
            world.log.copy(), world.nlog.copy()]
    return core, out


# ---------------------------------------------------------------------------
# kernels and seeding
# ---------------------------------------------------------------------------
def test_serial_and_parallel_kernels_agree_bit_for_bit():
    _, a = _run_mm(_world(parallel=False, record=2000))
    _, b = _run_mm(_world(parallel=True, record=2000))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[-1].min() > 100  # every env generated a stream


def test_same_seed_same_stream_and_lanes_independent():
    core1, a = _run_mm(_world(record=3000), n=4)
    _, b = _run_mm(_world(record=3000), n=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    w = core1.world
    m0, m1 = w.messages(0), w.messages(1)
    assert len(m0) > 100 and not np.array_equal(m0[:100], m1[:100])  # each env its own stream
    # another seed for env 3 only: envs 0..2 are unchanged, env 3 differs
    core = TickMarketMakingCore(n_envs=4, horizon=25, start="10:20:00", latency="colocated",
                                world=_world(record=3000), inventory_limit=1e4, max_size=300.0)
    core.seed_rows(range(4), [100, 101, 102, 999])
    core.reset()
    for act in batch_actions(core.single_action_space, 4, 20, seed=2):
        core.step(act, autoreset=True)
    for i in range(3):
        np.testing.assert_array_equal(core.world.messages(i), w.messages(i))
    assert not np.array_equal(core.world.messages(3)[:50], w.messages(3)[:50])


# ---------------------------------------------------------------------------
# validity and conservation
# ---------------------------------------------------------------------------
def test_never_crossed_never_rejected_under_a_random_agent():
    """32 envs x 60 s with random quotes: after every step the books are strictly ordered with
    positive sizes, the kernel saw no crossed engine book after any message, the engine rejected
    no generated message, and agent tokens and agent-first executions happened."""
    world = _world()
    core = TickMarketMakingCore(n_envs=32, horizon=60, start="10:05:00", latency="proximity", world=world,
                                inventory_limit=1e4, max_size=300.0)
    core.seed_rows(range(32), list(range(32)))
    core.reset()
    for a in batch_actions(core.single_action_space, 32, 60, seed=5):
        core.step(a, autoreset=False)
        _assert_books_valid(core.book)
    tot = world.wcnt.sum(0)
    assert tot[G.W_CROSSED] == 0 and tot[G.W_REJECTED] == 0
    assert (core.book.es[:, bk.ES_ERR] == 0).all()
    assert tot[G.W_MSGS] > 32 * 60  # more than one message per env-second
    assert tot[G.W_AGENT_TOKENS] > 0 and tot[G.W_AGENT_FIRST] > 0
    events = tot[G.W_SUBMIT:G.W_HIDDEN + 1].sum()
    assert events <= tot[G.W_MSGS] <= events + tot[G.W_AGENT_FIRST]  # an agent-first execution is 1 or 2 messages


def test_market_making_fills_add_up_to_position_and_cash():
    env = TickMarketMakingEnv(world="learned", horizon=300, start="10:20:00", latency="colocated", phi=0.0,
                              inventory_limit=1e4, max_size=100.0)
    env.reset(seed=3)
    touch = np.array([0, 0, 100, 100, 0, 0], np.float32)
    rewards = []
    for _ in range(300):
        _, r, term, trunc, info = env.step(touch)
        rewards.append(r)
    core = env.core
    log = core.book.fill_log(0)
    assert core.book.cnt[0, bk.N_FILL_OVERFLOW] == 0 and len(log) > 5
    sign = np.where(log[:, bk.F_SIDE] == bk.BID, 1, -1)
    assert int((sign * log[:, bk.F_QTY]).sum()) == info["inventory_terminal"] == core.inventory[0]
    assert int((-sign * log[:, bk.F_QTY] * log[:, bk.F_PRICE]).sum()) == core.book.acct[0, bk.A_CASH]
    assert info["filled_shares_bid"] + info["filled_shares_ask"] == log[:, bk.F_QTY].sum()
    b = core.book
    mid = 0.5 * (b.px[0, 0, 0] + b.px[0, 1, 0])
    pnl = (b.acct[0, bk.A_CASH] + b.acct[0, bk.A_POS] * mid) * 0.01
    assert info["pnl"] == pytest.approx(pnl, abs=1e-9)
    assert np.sum(rewards) == pytest.approx(pnl, abs=1e-6)  # phi = 0: the rewards sum to the PnL


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_execution_completes_exactly_q(side):
    Q, T = 1000, 60
    core = TickExecutionCore(n_envs=4, horizon=T, quantity=Q, side=side, start="10:30:00", latency="proximity",
                             world="learned")
    core.seed_rows(range(4), [7, 8, 9, 10])
    core.reset()
    for k in range(T):
        a = np.tile(np.array([0.2, 0, 0] if k == 30 else [0.5, 1, 0], np.float32), (4, 1))
        core.step(a, autoreset=False)
    assert core.terminated.all()
    assert (core.inventory == (Q if side == "buy" else -Q)).all()
    assert (core.book.acct[:, bk.A_BUY_QTY if side == "buy" else bk.A_SELL_QTY] == Q).all()
    assert (core.book.acct[:, bk.A_SELL_QTY if side == "buy" else bk.A_BUY_QTY] == 0).all()


# ---------------------------------------------------------------------------
# checkers and contracts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,kw", [(MM, {}), (MM, {"discrete": True}), (EX, {})])
def test_checkers_pass(env_id, kw):
    gym_check_env(gym.make(env_id, **SHORT[env_id], **kw).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **SHORT[env_id], **kw).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", [MM, EX])
def test_sb3_vecenv_matches_dummyvecenv_and_sync(env_id):
    n, kw = 3, dict(SHORT[env_id], latency="retail")
    native = make_sb3_vec_env(env_id, n_envs=n, **kw)
    dummy = DummyVecEnv([lambda: gym.make(env_id, **kw).unwrapped for _ in range(n)])
    acts = batch_actions(native.action_space, n, 30, seed=1)
    assert assert_matches_dummy(native, dummy, 7, acts) >= n
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kw) for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert assert_matches_sync(vec, sync, 7, acts) >= n


# ---------------------------------------------------------------------------
# the sampler against the model's own predictive distribution
# ---------------------------------------------------------------------------
def test_type_side_frequencies_match_the_predictive_probabilities():
    """No agent (zero-size quotes), 16 envs x 120 s. For each (type, side) pair the number of
    first-try draws minus the sum of the model's predictive probabilities over the same events is
    a martingale with variance at most that sum: each |difference| is under 4.5 sqrt(sum p) (a
    bound that fails with probability under 1e-4 per pair under the model), and the total counts
    agree exactly with the number of events drawn."""
    world = _world(track=True)
    n = 16
    core = TickMarketMakingCore(n_envs=n, horizon=120, start="10:10:00", latency="colocated", world=world)
    core.seed_rows(range(n), list(range(n)))
    core.reset()
    zero = np.zeros((n, 6), np.float32)
    for _ in range(120):
        core.step(zero, autoreset=False)
    cnt = world.wfirst.sum(0)
    exp = world.wprob.sum(0)
    events = world.wcnt[:, G.W_SUBMIT:G.W_HIDDEN + 1].sum()
    assert cnt.sum() == events and exp.sum() == pytest.approx(events, rel=1e-9)
    assert world.wcnt[:, G.W_AGENT_TOKENS].sum() == 0
    big = exp > 50
    assert big.sum() >= 4  # submits, deletes, executions on both sides carry most of the mass
    z = (cnt - exp) / np.sqrt(np.maximum(exp, 1.0))
    assert np.all(np.abs(z) < 4.5), dict(zip(range(10), np.round(z, 2)))


# ---------------------------------------------------------------------------
# warm-up and start state
# ---------------------------------------------------------------------------
def test_reset_starts_from_the_real_book_with_a_warm_state():
    w = _world(warmup=300)
    d = w.data
    b = Book(2, w.book_config(BookConfig(depth=20)))
    t0 = np.array([d.tape.t[5000] + 1, d.tape.t[20000] + 1], np.int64)
    w.reset_rows(b, np.arange(2), t0)
    rows = np.searchsorted(d.tape.t, t0, side="right") - 1  # the last row at or before t0
    assert rows[0] >= 5000 and rows[1] >= 20000
    for j, r in enumerate(rows):
        for s in range(2):
            keep = d.fsz[r, s] > 0  # the file's listed levels (load_rows drops empty ones)
            m = int(keep.sum())
            assert b.nl[j, s] == m
            np.testing.assert_array_equal(b.px[j, s, :m], d.fpx[r, s][keep])
            np.testing.assert_array_equal(b.sz[j, s, :m], d.fsz[r, s][keep])
        assert np.abs(w.h[j]).max() > 0.05  # conditioned on the tape
        # the previous-event columns are message r's: its type one-hot and side
        assert w.x[j, int(d.tape.type[r]) - 1] == 1.0
        assert w.x[j, 5] == (1.0 if d.tape.side[r] == 0 else -1.0)
    assert not np.allclose(w.h[0], w.h[1])
    cold = _world(warmup=0)
    cold.reset_rows(b, np.arange(2), t0)
    assert (cold.h == 0).all() and (cold.x == 0).all()


def test_bad_input_names_the_field():
    d = ReplayWorld.from_path(None).data
    with pytest.raises(TickGRUWorldError, match="warmup"):
        TickGRUWorld(_weights("GOOG"), d, warmup=-1)
    with pytest.raises(TickGRUWorldError, match="record"):
        TickGRUWorld(_weights("GOOG"), d, record=1.5)
    with pytest.raises(TickGRUWorldError, match="data: must be a ReplayData"):
        TickGRUWorld(_weights("GOOG"), None)
    w = TickGRUWorld(_weights("GOOG"), d)
    b = Book(2, w.book_config(BookConfig()))
    w.reset_rows(b, np.arange(2), np.full(2, d.tape.t[100] + 1))
    with pytest.raises(TickGRUWorldError, match="reset for 2 envs"):
        w.advance(Book(3, w.book_config(BookConfig())), np.zeros(3, np.int64))


# ---------------------------------------------------------------------------
# the market reacts to the agent
# ---------------------------------------------------------------------------
def _mids_after_buy(buy_fraction, n=32, steps=30):
    core = TickExecutionCore(n_envs=n, horizon=steps + 10, quantity=2000, side="buy", start="10:30:00",
                             latency="colocated", world="learned")
    core.seed_rows(range(n), list(range(n)))
    core.reset()
    mids = []
    for k in range(steps):
        a = np.zeros((n, 3), np.float32)
        if k == 0:
            a[:, 0] = buy_fraction  # a market child of buy_fraction * 2000 shares
        core.step(a, autoreset=False)
        b = core.book
        mids.append(0.5 * (b.px[:, 0, 0] + b.px[:, 1, 0]))
    return np.array(mids), core


def test_a_large_market_buy_raises_the_later_mid_under_common_random_numbers():
    """32 envs from the same real book at 10:30 and the same world streams: with a 500-share
    market buy at the first decision (it walks the visible asks), the mid 10 s later is higher
    than without it, by a mean of more than 3 ticks with a paired t-statistic above 3 (measured:
    about 11.5 ticks, standard error 2)."""
    with_buy, core = _mids_after_buy(0.25, steps=10)
    without, base = _mids_after_buy(0.0, steps=10)
    assert (core.book.acct[:, bk.A_BUY_QTY] == 500).all() and (base.book.acct[:, bk.A_BUY_QTY] == 0).all()
    assert (core.book.nl > 0).all() and (base.book.nl > 0).all()
    d = with_buy[-1] - without[-1]
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert d.mean() > 3.0 and t > 3.0, (d.mean(), t)


def test_the_token_ablation_feeds_no_agent_event_and_changes_the_stream():
    """``agent_tokens=False``: the same seeds and random quotes feed no agent token, keep every book
    valid, and give another market stream than the default (the tokens reach the GRU)."""
    core_on, _ = _run_mm(_world(record=3000), n=4)
    core_off, _ = _run_mm(_world(record=3000, agent_tokens=False), n=4)
    assert core_on.world.wcnt[:, G.W_AGENT_TOKENS].sum() > 0
    assert core_off.world.wcnt[:, G.W_AGENT_TOKENS].sum() == 0
    assert core_off.world.wcnt[:, G.W_REJECTED].sum() == 0 and core_off.world.wcnt[:, G.W_CROSSED].sum() == 0
    _assert_books_valid(core_off.book)
    assert any(not np.array_equal(core_on.world.messages(i), core_off.world.messages(i)) for i in range(4))

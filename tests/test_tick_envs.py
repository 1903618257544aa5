"""Tick-level envs (lobworld.envs.tick) on the replay world: the shipped GOOG 2012-06-21 10:00-11:00 hour.

Checkers and the vector contracts, bit-for-bit determinism, conservation of shares and cash, a market
order checked by hand against the recorded book, latency changing fills on the same window, and
clear errors for bad input.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld  # noqa: F401  (registers the ids)
from lobworld.envs import book_kernels as bk
from lobworld.envs.core import ActionError, make_sb3_vec_env
from lobworld.envs.latency import UnknownLatencyError
from lobworld.envs.tick import (
    ReplayWorld, TickExecutionCore, TickExecutionEnv, TickMarketMakingCore, TickMarketMakingEnv, TickWindowError,
    UnknownTickWorldError, _WORLDS, register_tick_world,
)
from lobworld.errors import LobworldError
from vec_contract import assert_matches_dummy, assert_matches_sync, batch_actions

MM, EX = "LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"
SHORT = {MM: dict(horizon=12, inventory_limit=150.0, max_size=100.0, discrete_size=100.0),
         EX: dict(horizon=12, quantity=300)}
TOUCH = np.array([0, 0, 100, 100, 0, 0], np.float32)  # quote 100 shares at both touches


def _rollout_mm(latency, start="10:20:00", steps=600, seed=3):
    env = TickMarketMakingEnv(horizon=steps, start=start, latency=latency, phi=0.0, inventory_limit=1e4,
                              max_size=100.0)
    env.reset(seed=seed)
    rewards = []
    for _ in range(steps):
        _, r, term, trunc, info = env.step(TOUCH)
        rewards.append(r)
    return env, np.array(rewards), info


# ---------------------------------------------------------------------------
# checkers and contracts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,kw", [(MM, {}), (MM, {"discrete": True}), (EX, {})])
def test_checkers_pass(env_id, kw):
    gym_check_env(gym.make(env_id, **SHORT[env_id], **kw).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **SHORT[env_id], **kw).unwrapped, warn=False)


@pytest.mark.parametrize("env_id,extra", [(MM, {}), (MM, {"discrete": True}), (EX, {})])
def test_sb3_vecenv_matches_dummyvecenv_and_sync(env_id, extra):
    n, kw = 3, dict(SHORT[env_id], latency="retail", **extra)
    native = make_sb3_vec_env(env_id, n_envs=n, **kw)
    dummy = DummyVecEnv([lambda: gym.make(env_id, **kw).unwrapped for _ in range(n)])
    acts = batch_actions(native.action_space, n, 30, seed=1)
    ends = assert_matches_dummy(native, dummy, 7, acts)
    assert ends >= n  # every env ended at least once (horizon 12 over 30 steps)
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kw) for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert assert_matches_sync(vec, sync, 7, acts) >= n


@pytest.mark.parametrize("core_cls,env_id", [(TickMarketMakingCore, MM), (TickExecutionCore, EX)])
def test_same_seed_same_actions_bit_identical(core_cls, env_id):
    runs = []
    for _ in range(2):
        core = core_cls(n_envs=4, **SHORT[env_id], latency="cloud", queue_model="probabilistic")
        core.seed_rows(range(4), [11, 12, 13, 14])
        core.reset()
        out = [core.obs.copy(), core.start_ns]
        for a in batch_actions(core.single_action_space, 4, 20, seed=2):
            core.step(a, autoreset=True)
            out += [core.obs.copy(), core.reward.copy(), core.terminated.copy(), core.truncated.copy()]
        out += [core.book.acct.copy(), core.book.fills.copy()]
        runs.append(out)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    starts = runs[0][1]
    assert len(set(starts.tolist())) == 4  # each env drew its own window


def test_random_starts_fit_in_the_file_hours():
    core = TickExecutionCore(n_envs=64, horizon=600)
    core.seed_rows(range(64), list(range(64)))
    core.reset()
    t_first, t_last = core.world.bounds()
    s = core.start_ns
    assert np.all(s >= t_first) and np.all(s + 600 * 10**9 <= t_last)
    assert s.max() - s.min() > 1800 * 10**9  # spread over the hour, not a fixed start


# ---------------------------------------------------------------------------
# conservation
# ---------------------------------------------------------------------------
def test_market_making_fills_add_up_to_position_cash_and_pnl():
    env, rewards, info = _rollout_mm("colocated")
    core = env.core
    log = core.book.fill_log(0)
    assert core.book.cnt[0, bk.N_FILL_OVERFLOW] == 0 and len(log) > 5
    sign = np.where(log[:, bk.F_SIDE] == bk.BID, 1, -1)
    assert int((sign * log[:, bk.F_QTY]).sum()) == info["inventory_terminal"] == core.inventory[0]
    assert int((-sign * log[:, bk.F_QTY] * log[:, bk.F_PRICE]).sum()) == core.book.acct[0, bk.A_CASH]
    assert info["filled_shares_bid"] == log[sign > 0, bk.F_QTY].sum()
    assert info["filled_shares_ask"] == log[sign < 0, bk.F_QTY].sum()
    assert info["passive_shares"] == info["filled_shares_bid"] + info["filled_shares_ask"]  # post-only quotes
    b = core.book
    mid = 0.5 * (b.px[0, 0, 0] + b.px[0, 1, 0])
    pnl = (b.acct[0, bk.A_CASH] + b.acct[0, bk.A_POS] * mid) * 0.01
    assert info["pnl"] == pytest.approx(pnl, abs=1e-9)
    assert rewards.sum() == pytest.approx(pnl, abs=1e-6)  # phi = 0: the rewards sum to the PnL


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_execution_completes_exactly_q_at_the_horizon(side):
    Q, T = 1000, 120
    env = TickExecutionEnv(horizon=T, quantity=Q, side=side, start="10:30:00", latency="proximity")
    env.reset(seed=0)
    total, steps = 0.0, 0
    while True:  # passive children at the touch, one tick behind every tenth decision, one market child
        k = steps
        a = [0.2, 0, 0] if k == 30 else [0.5, 2, 1] if k % 10 == 0 else [0.5, 1, 0]
        _, r, term, trunc, info = env.step(np.array(a, np.float32))
        total += r
        steps += 1
        if term or trunc:
            break
    assert term and not trunc and steps == T  # 1000 shares do not fill passively in two minutes
    core = env.core
    assert info["shares_executed"] == Q and info["completion"] == 1.0
    assert core.inventory[0] == (Q if side == "buy" else -Q)
    assert info["passive_shares"] + info["aggressive_shares"] + info["forced_shares"] == Q
    assert info["aggressive_shares"] > 0 and info["forced_shares"] > 0
    assert total == pytest.approx(-info["shortfall_bps"], abs=1e-9)
    log = core.book.fill_log(0)
    assert log[:, bk.F_QTY].sum() == info["passive_shares"] + info["aggressive_shares"]
    assert np.all(log[:, bk.F_SIDE] == (bk.BID if side == "buy" else bk.ASK))


# ---------------------------------------------------------------------------
# hand-checkable case on the real tape
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["sell", "buy"])
def test_market_order_cost_is_the_walk_of_the_recorded_book(side):
    Q = 400
    env = TickExecutionEnv(horizon=5, quantity=Q, side=side, start="10:15:00", latency="none")
    env.reset(seed=0)
    core = env.core
    d = core.world.data
    row = int(np.searchsorted(d.tape.t, core.start_ns[0], side="right")) - 1
    opp = 0 if side == "sell" else 1  # a sale walks the bids
    px, sz = d.fpx[row, opp], d.fsz[row, opp]
    left, paid = Q, 0
    for p, q in zip(px, sz):  # the file's book at the last message before the start
        x = min(left, int(q))
        paid += x * int(p)
        left -= x
        if left == 0:
            break
    assert left == 0 and sz[0] < Q  # the order walks more than one level
    mid0 = 0.5 * (d.fpx[row, 0, 0] + d.fpx[row, 1, 0])
    cost = (mid0 * Q - paid) if side == "sell" else (paid - mid0 * Q)
    want = cost * 1e4 / (Q * mid0)
    _, r, term, trunc, info = env.step(np.array([1.0, 0.0, 0.0], np.float32))  # all of it, market order
    assert term and info["episode_length"] == 1 and info["aggressive_shares"] == Q
    assert info["shortfall_bps"] == pytest.approx(want, abs=1e-12) and want > 0
    assert r == pytest.approx(-want, abs=1e-12)
    assert info["arrival_price"] == pytest.approx(mid0 * 0.01)
    log = core.book.fill_log(0)
    np.testing.assert_array_equal(log[:, bk.F_PRICE], px[: len(log)])  # one fill per level, best first


# ---------------------------------------------------------------------------
# latency
# ---------------------------------------------------------------------------
def test_latency_changes_fills_on_the_same_window():
    fast, r_fast, _ = _rollout_mm("colocated")
    slow, r_slow, _ = _rollout_mm("retail")
    lf, ls = fast.core.book.fill_log(0), slow.core.book.fill_log(0)
    assert len(lf) and len(ls)
    same = len(lf) == len(ls) and np.array_equal(lf[:, [bk.F_PRICE, bk.F_QTY]], ls[:, [bk.F_PRICE, bk.F_QTY]])
    assert not same or not np.array_equal(r_fast, r_slow)
    # every order went live one entry latency after it was sent (25 +- 5 us vs 50 +- 5 ms)
    for env, lo, hi in ((fast, 0, 100_000), (slow, 25_000_000, 75_000_000)):
        o = env.core.book.orders[0]
        live = o[:, bk.O_T_LIVE] >= 0
        gap = o[live, bk.O_T_LIVE] - o[live, bk.O_T_SENT]
        assert len(gap) and np.all((gap >= lo) & (gap <= hi)), gap
        # a fill never comes before its order went live
        log = env.core.book.fill_log(0)
        assert np.all(log[:, bk.F_T] >= env.core.start_ns[0])


# ---------------------------------------------------------------------------
# the world interface
# ---------------------------------------------------------------------------
def test_a_registered_world_plugs_in():
    register_tick_world("test-replay", lambda cfg: ReplayWorld.from_path(cfg.data))
    try:
        a, ra, _ = _rollout_mm("cloud", steps=20)
        env = TickMarketMakingEnv(horizon=20, start="10:20:00", latency="cloud", phi=0.0, inventory_limit=1e4,
                                  max_size=100.0, world="test-replay")
        env.reset(seed=3)
        rb = np.array([env.step(TOUCH)[1] for _ in range(20)])
        np.testing.assert_array_equal(ra, rb)
    finally:
        _WORLDS.pop("test-replay", None)



@pytest.mark.parametrize("env_id", ["LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"])
def test_the_ids_run_the_learned_tick_world_by_default_on_every_face(env_id):
    from lobworld.world_models.tick_gru_world import TickGRUWorld

    env = gym.make(env_id, horizon=3)
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", horizon=3)
    sb3 = make_sb3_vec_env(env_id, 2, horizon=3)
    for core in (env.unwrapped.core, venv.unwrapped.core, sb3.core):
        assert isinstance(core.world, TickGRUWorld)
    assert isinstance(gym.make(env_id, horizon=3, world="replay").unwrapped.core.world, ReplayWorld)
    # the classes themselves (the envs layer) keep the real tape
    cls = TickMarketMakingEnv if "Making" in env_id else TickExecutionEnv
    assert isinstance(cls(horizon=3).core.world, ReplayWorld)
    for e in (env, venv, sb3):
        e.close()

# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_actions_raise_action_errors():
    env = gym.make(MM, **SHORT[MM]).unwrapped
    env.reset(seed=0)
    with pytest.raises(ActionError, match="outside the action space"):
        env.step(np.array([0, 0, 1e6, 0, 0, 0], np.float32))  # size above max_size
    with pytest.raises(ActionError, match="outside the action space"):
        env.step(np.array([11, 0, 10, 10, 0, 0], np.float32))  # a level beyond max_level = 10 ticks
    with pytest.raises(ActionError, match="not finite"):
        env.step(np.array([np.nan, 0, 10, 10, 0, 0], np.float32))
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(4, np.float32))
    ex = gym.make(EX, **SHORT[EX]).unwrapped
    ex.reset(seed=0)
    with pytest.raises(ActionError, match="outside the action space"):
        ex.step(np.array([0.5, 4.0, 0.0], np.float32))  # no child type 4
    with pytest.raises(ActionError, match="outside the action space"):
        ex.step(np.array([1.5, 0.0, 0.0], np.float32))  # more than the remaining


def test_bad_config_raises_clear_errors(tmp_path):
    with pytest.raises(UnknownLatencyError, match="unknown latency scenario .satellite.; known: .*colocated.*retail"):
        TickMarketMakingEnv(latency="satellite")
    with pytest.raises(TickWindowError, match=r"start '09:30'.*outside the data's hours 10:00:00-10:59:59"):
        TickExecutionEnv(start="09:30")
    with pytest.raises(TickWindowError, match="latest start 10:54:59"):
        TickExecutionEnv(start="10:58:00", horizon=300)
    with pytest.raises(UnknownTickWorldError, match="'nowhere' is not a registered tick world; registered: .*learned"):
        TickMarketMakingEnv(world="nowhere")
    with pytest.raises(LobworldError, match="does not exist"):
        TickMarketMakingEnv(data=tmp_path / "nope_message_10.csv")
    with pytest.raises(LobworldError, match="max_size"):
        TickMarketMakingEnv(max_size=2000.0, inventory_limit=1000.0)
    with pytest.raises(LobworldError, match="quantity"):
        TickExecutionEnv(quantity=0)
    with pytest.raises(LobworldError, match="dt"):
        TickExecutionEnv(dt=0.01)
    with pytest.raises(LobworldError, match="unknown argument 'dynamics'"):
        TickExecutionEnv(dynamics="parametric")


def _queue_fills_by_hand(d, r0, P, size, t_end):
    """The fills of a 100-share bid resting at ``P`` from file row ``r0`` on (docs/book.md rules, 'behind'
    queue model), replayed by hand from the LOBSTER rows: ``[(t_ns, shares), ...]``."""
    tape = d.tape
    ahead = int(d.fsz[r0, 0, list(d.fpx[r0, 0]).index(P)])
    rem, out = size, []
    for r in range(r0 + 1, len(tape)):
        if tape.t[r] >= t_end or rem == 0:
            break
        typ, side, p, q = int(tape.type[r]), int(tape.side[r]), int(tape.price[r]), int(tape.size[r])
        row = list(d.fpx[r, 0])
        after = int(d.fsz[r, 0, row.index(P)]) if P in row else 0
        f = 0
        if side == bk.BID and p == P and typ == bk.MSG_EXEC:
            x = min(ahead, q)
            ahead -= x
            f = min(q - x, rem)
        elif side == bk.BID and p < P and typ in (bk.MSG_EXEC, bk.MSG_HIDDEN):
            f = min(q, rem)  # traded through our price
        elif side == bk.ASK and typ == bk.MSG_SUBMIT and p <= P:
            f = min(q, rem)  # a crossing sell
        if side == bk.BID and p == P:
            ahead = min(ahead, after)
        if f:
            rem -= f
            out.append((int(tape.t[r]), f))
    return out


@pytest.mark.parametrize("start", ["10:05:00", "10:25:00", "10:40:30"])  # one fill, two partial fills, one
def test_a_resting_bid_fills_at_its_queue_position_on_the_real_tape(start):
    env = TickMarketMakingEnv(horizon=900, start=start, latency="none", inventory_limit=1e4, max_size=100.0)
    env.reset(seed=0)
    core = env.core
    d = core.world.data
    r0 = int(np.searchsorted(d.tape.t, core.start_ns[0], side="right")) - 1
    P = int(d.fpx[r0, 0, 0])
    env.step(np.array([0, 0, 100, 0, 0, 1], np.float32))  # bid 100 at the touch, no ask
    o = core.book.orders[0, 0]
    assert o[bk.O_PRICE] == P and o[bk.O_T_LIVE] == core.start_ns[0]  # live at the start: no latency
    keep = np.array([0, 0, 0, 0, 1, 1], np.float32)
    for _ in range(899):
        if core.book.orders[0, 0, bk.O_REM] == 0:
            break
        env.step(keep)
    want = _queue_fills_by_hand(d, r0, P, 100, int(core.time_ns[0]))
    log = core.book.fill_log(0)
    assert len(want) >= 1 and sum(q for _, q in want) == 100  # it filled within the 15 minutes
    assert [(int(t), int(q)) for t, q in log[:, [bk.F_T, bk.F_QTY]]] == want
    assert np.all(log[:, bk.F_PRICE] == P) and np.all(log[:, bk.F_KIND] == bk.FILL_PASSIVE)


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_random_children_under_slow_latency_never_execute_more_than_q(side):
    # 0.1 s decisions with a 50 ms + 50 ms round trip: children race their cancels and replacements
    n, Q = 64, 300
    core = TickExecutionCore(n, horizon=50, quantity=Q, side=side, latency="retail", dt=0.1)
    core.seed_rows(range(n), range(n))
    core.reset()
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(150):
        a = np.stack([rng.uniform(0, 1, n), rng.integers(0, 4, n), rng.integers(0, 4, n)], 1)
        core.step(a, autoreset=False)
        executed = core.book.acct[:, bk.A_POS] * (1 if side == "buy" else -1)
        assert executed.max() <= Q
        o = core.book.orders
        np.testing.assert_array_equal(o[:, :, bk.O_QTY], o[:, :, bk.O_FILLED] + o[:, :, bk.O_REM] + o[:, :, bk.O_CXL])
        done = core.terminated | core.truncated
        for i in np.flatnonzero(done):
            info = core.episode_info(int(i))
            assert info["shares_executed"] == Q and executed[i] == Q
            ends += 1
        if done.any():
            core.reset(done)
    assert ends >= n

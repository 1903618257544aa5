"""The parametric (Cont-Stoikov-Talreja) tick world: book invariants, seeding, lane independence,
event frequencies against the params' rates and against the NumPy reference ``simulate_cst``,
and the tick envs on ``world="parametric"``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lobworld  # noqa: F401  (registers the ids and world="parametric")
from lobworld.envs import book_kernels as bk
from lobworld.envs.book import Book, BookConfig, Tape
from lobworld.envs.tick import ReplayWorld, TickMarketMakingConfig
from lobworld.world_models.tick_parametric import default_book, load_fitted_cst, simulate_cst
from lobworld.world_models.tick_world import (
    L_DIST, L_PRICE, L_SIDE, L_SIZE, L_T, L_TYPE, W_CROSSED, W_LIMIT_ASK, W_LIMIT_BID,
    W_MARKET_BUY, W_MARKET_SELL, W_MSGS, W_REDRAWS, W_REJECTED, CSTWorld, CSTWorldError,
)

S = 10**9


@pytest.fixture(scope="module")
def amzn():
    return load_fitted_cst("AMZN")


@pytest.fixture(scope="module")
def goog():
    return load_fitted_cst("GOOG")


def _world(params, n, seed, record=0, parallel=None):
    w = CSTWorld(params, record=record, parallel=parallel)
    b = Book(n, w.book_config(BookConfig()), seed=seed)
    t0 = np.full(n, w.bounds()[0], np.int64)
    w.reset_rows(b, np.arange(n), t0)
    return w, b, t0


def _check_book(b):
    for i in range(b.n_envs):
        for s in (0, 1):
            m = int(b.nl[i, s])
            assert (b.sz[i, s, :m] > 0).all(), f"env {i} side {s}: a level in use without shares"
            assert (b.sz[i, s, m:] == 0).all()
            d = np.diff(b.px[i, s, :m])
            assert ((d < 0) if s == 0 else (d > 0)).all(), f"env {i} side {s}: prices not strictly ordered"
        if b.nl[i, 0] and b.nl[i, 1]:
            assert b.px[i, 0, 0] < b.px[i, 1, 0], f"env {i}: crossed book"
    assert (b.sz >= 0).all()


@pytest.mark.parametrize("ticker", ["GOOG", "AMZN"])
def test_streams_never_cross_nor_go_negative(ticker):
    """64 envs x 300 s (about 200k messages): after every 1 s step the books are uncrossed, strictly
    ordered, with positive sizes; the kernel saw no crossed book after any message; every generated
    message was accepted by the engine (strict mode raises otherwise)."""
    w, b, t0 = _world(load_fitted_cst(ticker), 64, seed=11, record=20_000)
    for k in range(1, 301):
        w.advance(b, t0 + k * S)
        if k % 10 == 0:
            _check_book(b)
    assert w.wcnt[:, W_MSGS].sum() > 100_000
    assert w.wcnt[:, W_CROSSED].sum() == 0
    assert (b.es[:, bk.ES_ERR] == 0).all()  # no rejected message
    m = w.messages(0)
    assert (m[:, L_SIZE] > 0).all() and (np.diff(m[:, L_T]) >= 0).all()
    assert set(np.unique(m[:, L_TYPE])) <= {1, 3, 4}


def test_logged_stream_replays_to_the_same_book(amzn):
    """The recorded messages of an env are a valid LOBSTER tape: replayed by the book engine from
    the same start book they give the world's book exactly."""
    w, b, t0 = _world(amzn, 2, seed=5, record=50_000)
    start = [b.levels(0, "bid"), b.levels(0, "ask")]
    w.advance(b, t0 + 600 * S)
    m = w.messages(0)
    assert 1000 < len(m) < 50_000
    r = Book(1, BookConfig(depth=b.config.depth, mode="live"))
    r.set_book(0, *start)
    r.run(Tape(m[:, L_T], m[:, L_TYPE], m[:, L_SIDE], m[:, L_PRICE], m[:, L_SIZE], np.zeros(len(m), np.int64)))
    assert r.levels(0, "bid") == b.levels(0, "bid") and r.levels(0, "ask") == b.levels(0, "ask")


def test_same_seed_same_stream_bit_for_bit(amzn):
    a, ba, t0 = _world(amzn, 8, seed=3, record=5000)
    c, bc, _ = _world(amzn, 8, seed=3, record=5000)
    d, bd, _ = _world(amzn, 8, seed=4, record=5000)
    for k in range(1, 31):
        for w, b in ((a, ba), (c, bc), (d, bd)):
            w.advance(b, t0 + k * 2 * S)
    assert np.array_equal(a.log, c.log) and np.array_equal(a.nlog, c.nlog)
    assert np.array_equal(ba.px, bc.px) and np.array_equal(ba.sz, bc.sz) and np.array_equal(a.wt, c.wt)
    assert not np.array_equal(a.log[0, :100], d.log[0, :100])


def test_lanes_are_independent(amzn):
    """Env 5 of a batch of 8 (seed 0 + 5, parallel kernel) is env 0 of a batch of 1 seeded 5 (serial
    kernel), bit for bit; neighbouring lanes differ."""
    big, bb, t0 = _world(amzn, 8, seed=0, record=3000, parallel=True)
    one, b1, t1 = _world(amzn, 1, seed=5, record=3000, parallel=False)
    big.advance(bb, t0 + 60 * S)
    one.advance(b1, t1 + 60 * S)
    assert big.nlog[5] == one.nlog[0] > 100
    assert np.array_equal(big.messages(5), one.messages(0))
    assert np.array_equal(bb.px[5], b1.px[0]) and np.array_equal(bb.sz[5], b1.sz[0])
    assert not np.array_equal(big.messages(4)[:50], big.messages(5)[:50])


def test_event_frequencies_match_the_rates(amzn):
    """Limit orders at distance i arrive at lambda(i) per side and market orders at mu per side
    whatever the book (Poisson): over 256 envs x 600 s = 153,600 s, every per-distance count and the
    two market counts are within 4.5 sd of rate x time, and the sum of squared z-scores (44 cells) is
    below the chi-square 0.9999 quantile (44 dof: 88.3)."""
    n, secs = 256, 600
    w, b, t0 = _world(amzn, n, seed=21, record=30_000)
    w.advance(b, t0 + secs * S)
    T = n * secs
    lam, mu, _ = amzn.sim_rates()
    D = len(lam)
    sub = np.concatenate([w.messages(i) for i in range(n)])
    sub = sub[sub[:, L_TYPE] == 1]
    assert (w.nlog < w.log.shape[1]).all()
    # every limit order is a submit unless its price would be < 1 tick (never here)
    assert len(sub) == w.wcnt[:, W_LIMIT_BID].sum() + w.wcnt[:, W_LIMIT_ASK].sum()
    z = []
    for s in (0, 1):
        cnt = np.bincount(sub[sub[:, L_SIDE] == s, L_DIST], minlength=D + 1)[1:]
        assert len(cnt) == D
        z.extend((cnt - lam * T) / np.sqrt(lam * T))
    for col in (W_MARKET_BUY, W_MARKET_SELL):
        z.append((w.wcnt[:, col].sum() - mu * T) / np.sqrt(mu * T))
    z = np.asarray(z)
    assert np.abs(z).max() < 4.5, z
    assert (z ** 2).sum() < 88.3


def _ref_stats(msgs_type, cancel_dist):
    typ = np.bincount(msgs_type, minlength=5)[[1, 3, 4]]
    bins = np.array([0, 3, 6, 10, 15, 1000])
    cd = np.histogram(np.clip(cancel_dist, 1, 999), bins)[0]
    return typ, cd


def _chi2_two_sample(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    ka, kb = np.sqrt(b.sum() / a.sum()), np.sqrt(a.sum() / b.sum())
    m = (a + b) > 0
    return float((((ka * a - kb * b)[m]) ** 2 / (a + b)[m]).sum()), int(m.sum() - 1)


def test_agrees_in_distribution_with_simulate_cst(amzn):
    """The first 1,500 messages from the default book, 40 runs of the NumPy reference vs 200 envs of
    the Numba generator: message-type counts (submit / delete / execution) and the histogram of cancel
    distances from the opposite best (5 bins) pass a two-sample chi-square at the 0.001 level
    (2 dof: 13.8, 4 dof: 18.5), and the mean spread after message 1,500 agrees within 4 standard errors."""
    N = 1500
    rt, rc, rspread = [], [], []
    for k in range(40):
        run = simulate_cst(amzn, np.random.default_rng(100 + k), N, book=default_book(amzn))
        m = run.messages
        rt.append(m.type.astype(int))
        ba_before = np.concatenate([[default_book(amzn).refs()[1]], run.ask_px[:-1, 0]])
        bb_before = np.concatenate([[default_book(amzn).refs()[0]], run.bid_px[:-1, 0]])
        c = m.type == 3
        rc.append(np.where(m.direction[c] > 0, ba_before[c] - m.price_ticks[c], m.price_ticks[c] - bb_before[c]))
        rspread.append(run.ask_px[-1, 0] - run.bid_px[-1, 0])
    n = 200
    w, b, t0 = _world(amzn, n, seed=7, record=N)
    for k in range(1, 100):
        if (w.nlog >= N).all():
            break
        w.advance(b, t0 + k * 60 * S)
    assert (w.nlog >= N).all()
    nt, nc = [], []
    for i in range(n):
        m = w.messages(i)
        nt.append(m[:, L_TYPE])
        c = m[:, L_TYPE] == 3
        nc.append(m[c, L_DIST])
    ref = _ref_stats(np.concatenate(rt), np.concatenate(rc))
    new = _ref_stats(np.concatenate(nt), np.concatenate(nc))
    x2, dof = _chi2_two_sample(ref[0], new[0])
    assert dof == 2 and x2 < 13.8, (ref[0], new[0], x2)
    x2, dof = _chi2_two_sample(ref[1], new[1])
    assert dof == 4 and x2 < 18.5, (ref[1], new[1], x2)
    # spread after message N: rebuild each env's book at its N-th message by replaying its log
    spreads = []
    for i in range(n):
        m = w.messages(i)
        r = Book(1, BookConfig(depth=b.config.depth, mode="live"))
        d = CSTWorld(amzn)
        d.reset_rows(r, np.array([0]), t0[:1])
        r.run(Tape(m[:, L_T], m[:, L_TYPE], m[:, L_SIDE], m[:, L_PRICE], m[:, L_SIZE], np.zeros(len(m), np.int64)))
        bb_, _, ba_, _ = r.best(0)
        spreads.append(ba_ - bb_)
    rs_, ns_ = np.asarray(rspread, float), np.asarray(spreads, float)
    se = np.sqrt(rs_.var(ddof=1) / len(rs_) + ns_.var(ddof=1) / len(ns_))
    assert abs(rs_.mean() - ns_.mean()) < 4 * se + 1e-9, (rs_.mean(), ns_.mean(), se)


def test_rejected_market_orders_send_nothing(amzn):
    """Books with no asks: a market buy drawn before the first ask arrives is rejected (counted, no
    message), so no env has an ask execution before its first ask submit."""
    n = 256
    w = CSTWorld(amzn, record=2000)
    b = Book(n, w.book_config(BookConfig()), seed=2)
    t0 = np.full(n, w.bounds()[0], np.int64)
    w.reset_rows(b, np.arange(n), t0)
    for i in range(n):
        b.set_book(i, [(57_000, 80)], [])
        w.wref[i] = (57_000, 57_001)
    w.advance(b, t0 + 2 * S)
    assert w.wcnt[:, W_REJECTED].sum() > 5
    for i in range(n):
        m = w.messages(i)
        ask = m[:, L_SIDE] == 1
        first_sub = np.flatnonzero(ask & (m[:, L_TYPE] == 1))
        first_exec = np.flatnonzero(ask & (m[:, L_TYPE] == 4))
        if len(first_exec):
            assert len(first_sub) and first_exec[0] > first_sub[0]
    assert w.wcnt[:, W_CROSSED].sum() == 0
    _check_book(b)


def test_start_from_the_real_book():
    """From a config (the shipped GOOG hour) each env starts from the file's book at its start time,
    the same book the replay world loads."""
    cfg = TickMarketMakingConfig(world="parametric")
    w = CSTWorld.from_config(cfg)
    rw = ReplayWorld.from_path(None)
    assert w.params.ticker == "GOOG" and w.bounds() == rw.bounds()
    n = 3
    t0 = np.array([rw.bounds()[0] + k * 600 * S for k in range(n)], np.int64)
    b1 = Book(n, w.book_config(BookConfig()), seed=0)
    b2 = Book(n, rw.book_config(BookConfig()), seed=0)
    w.reset_rows(b1, np.arange(n), t0)
    rw.reset_rows(b2, np.arange(n), t0)
    for i in range(n):
        assert b1.levels(i, "bid") == b2.levels(i, "bid") and b1.levels(i, "ask") == b2.levels(i, "ask")
    w.advance(b1, t0 + 30 * S)
    _check_book(b1)


def test_bad_input(amzn):
    with pytest.raises(CSTWorldError, match="params"):
        CSTWorld("GOOG")
    with pytest.raises(CSTWorldError, match="record"):
        CSTWorld(amzn, record=-1)
    w = CSTWorld(amzn)
    w.reset_rows(Book(2, w.book_config(BookConfig())), np.arange(2), np.zeros(2, np.int64))
    with pytest.raises(CSTWorldError, match="reset for 2 envs"):
        w.advance(Book(3, w.book_config(BookConfig())), np.zeros(3, np.int64))


@pytest.mark.parametrize("env_id", ["LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"])
def test_tick_envs_on_the_parametric_world(env_id):
    env = gym.make(env_id, world="parametric", horizon=30)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.core.world.name == "parametric"
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=123)
        env.action_space.seed(9)
        trace = [obs]
        ended = False
        for _ in range(40):
            obs, r, te, tr, info = env.step(env.action_space.sample())
            trace.append(obs)
            assert np.isfinite(obs).all() and np.isfinite(r)
            if te or tr:
                ended = True
                assert info
                break
        assert ended
        runs.append(np.stack(trace))
        world = env.unwrapped.core.world
        # the agent's messages interleaved with the flow (each one restarts the waiting time) and
        # every generated message was accepted
        assert world.wcnt[0, W_REDRAWS] > 0 and world.wcnt[0, W_MSGS] > 0
        assert world.wcnt[0, W_CROSSED] == 0 and env.unwrapped.core.book.es[0, bk.ES_ERR] == 0
    assert np.array_equal(runs[0], runs[1])


def test_lognormal_sizes_follow_their_laws(amzn):
    """Under ``size_law="lognormal"`` submit, execution (per market order) and cancel sizes are
    ``max(1, round(exp(m + s z)))`` shares: the mean submit size is within 4 standard errors of the
    law's mean (computed from 10^6 NumPy draws of the same rule), and the books stay valid."""
    from dataclasses import replace

    p = replace(amzn, size_law="lognormal")
    w, b, t0 = _world(p, 64, seed=13, record=20_000)
    for k in range(1, 121):
        w.advance(b, t0 + k * S)
    _check_book(b)
    assert w.wcnt[:, W_CROSSED].sum() == 0
    sub = np.concatenate([w.messages(i) for i in range(64)])
    sub = sub[sub[:, L_TYPE] == 1, L_SIZE].astype(float)
    m, s = p.log_size[0]
    ref = np.maximum(1.0, np.floor(np.exp(m + s * np.random.default_rng(0).standard_normal(10**6)) + 0.5))
    se = np.sqrt(sub.var() / len(sub) + ref.var() / len(ref))
    assert len(sub) > 5000 and len(np.unique(sub)) > 20
    assert abs(sub.mean() - ref.mean()) < 4 * se, (sub.mean(), ref.mean(), se)


def test_market_orders_walk_the_book_level_by_level(amzn):
    """Under log-normal sizes a market order often takes more than the touch: its executions share
    one ns and side, walk strictly away from the touch, empty every level but the last they take (the
    replayed tape gives the same book), and the walks' sizes sum to the executed volume counter."""
    from dataclasses import replace

    p = replace(amzn, size_law="lognormal")
    w, b, t0 = _world(p, 4, seed=21, record=60_000)
    start = [b.levels(0, "bid"), b.levels(0, "ask")]
    w.advance(b, t0 + 300 * S)
    m = w.messages(0)
    ex = m[m[:, L_TYPE] == bk.MSG_EXEC]
    walks = 0
    for j in range(1, len(ex)):
        if ex[j, L_T] == ex[j - 1, L_T] and ex[j, L_SIDE] == ex[j - 1, L_SIDE]:
            walks += 1
            step = ex[j, L_PRICE] - ex[j - 1, L_PRICE]
            assert (step < 0) if ex[j, L_SIDE] == bk.BID else (step > 0), ex[j - 1: j + 1]
    assert walks > 20, walks
    assert int(ex[:, L_SIZE].sum()) == int(b.cnt[0, bk.EXEC_VOL_VIS])
    r = Book(1, BookConfig(depth=b.config.depth, mode="live"))
    r.set_book(0, *start)
    r.run(Tape(m[:, L_T], m[:, L_TYPE], m[:, L_SIDE], m[:, L_PRICE], m[:, L_SIZE], np.zeros(len(m), np.int64)))
    assert r.levels(0, "bid") == b.levels(0, "bid") and r.levels(0, "ask") == b.levels(0, "ask")

"""The event-level book engine on hand-made books: every number below is worked out by hand."""

import numpy as np
import pytest

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import (
    A_CASH, A_POS, F_PRICE, F_QTY, F_SIDE, F_T, F_T_SEEN, N_CANCEL_FAILED, ST_CANCELLED, ST_FILLED, ST_LIVE,
    ST_REJECTED, Book, BookConfig, BookError, Tape,
)
from lobworld.envs.latency import LatencyScenario

B, A = "bid", "ask"
SUB, CAN, DEL, EXE, HID, HALT = 1, 2, 3, 4, 5, 7


def _book(n=1, **kw):
    lat = kw.pop("latency", "none")
    md = kw.pop("md_latency", None)
    seed = kw.pop("seed", 0)
    b = Book(n, BookConfig(**kw), latency=lat, md_latency=md, seed=seed)
    for i in range(n):
        b.set_book(i, [(100, 300), (99, 200), (98, 100)], [(102, 100), (103, 200), (104, 300)], t0=0)
    return b


def _feed(b, rows):
    """Run a fresh hand-made tape from its first row."""
    b.seek(0)
    b.run(Tape.from_rows(rows))


def _fixed(ns_entry, ns_md=0.0, n=1):
    """Latency arrays without jitter: (n, 2) mean / jitter in ns."""
    return np.tile([float(ns_entry), 0.0], (n, 1)), np.tile([float(ns_md), 0.0], (n, 1))


def test_fifo_executions_consume_the_queue_front():
    b = _book()
    b.limit(0, 10, 0, "buy", 50, 100)  # joins the back of 300 at 100
    _feed(b, [(20, SUB, B, 100, 40),     # arrives behind the agent
                          (30, EXE, B, 100, 200),    # 300 ahead -> 100
                          (40, EXE, B, 100, 120)])  # 100 ahead consumed, then 20 of the agent
    o = b.order(0, 0)
    assert (o["status"], o["ahead"], o["remaining"], o["filled"], o["t_live"]) == (ST_LIVE, 0, 30, 20, 10)
    assert b.levels(0, B) == [(100, 20), (99, 200), (98, 100)]  # 340 - 320; the agent is not in the book
    f = b.fill_log(0)
    assert f[:, [F_T, F_SIDE, F_PRICE, F_QTY]].tolist() == [[40, 0, 100, 20]]
    assert b.position(0) == 20 and b.cash_ticks(0) == -2000


def test_queue_model_behind_only_cancels_from_behind():
    b = _book(queue_model="behind")
    b.limit(0, 10, 0, "buy", 50, 100)  # ahead 300
    _feed(b, [(20, SUB, B, 100, 200),    # behind: level 500
                          (30, CAN, B, 100, 150),    # from behind: ahead 300, level 350
                          (40, DEL, B, 100, 100)])  # only 50 behind: ahead clamps to the 250 left
    assert b.order(0, 0)["ahead"] == 250
    assert b.levels(0, B)[0] == (100, 250)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_queue_model_probabilistic(power):
    """A cancel of 50 at a level of 400 with the agent behind 300: it comes from ahead with
    probability (300 / 400) ** n; over 4000 seeded lanes the frequency is within 4 sd of it."""
    n = 4000
    b = _book(n, queue_model="probabilistic", queue_power=power, seed=123)
    tape = Tape.from_rows([(15, SUB, B, 100, 100), (20, CAN, B, 100, 50)])
    # the agent goes live at 10 behind 300; 100 more arrive behind it at 15
    for i in range(n):
        b.limit(i, 10, 0, "buy", 10, 100)
    b.run(tape)
    ahead = b.orders[:, 0, bk.O_AHEAD]
    assert set(np.unique(ahead)) <= {300, 250}
    p = (300 / 400) ** power
    freq = float(np.mean(ahead == 250))
    assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n)
    # the same seed gives the same lanes, bit for bit
    b2 = _book(n, queue_model="probabilistic", queue_power=power, seed=123)
    for i in range(n):
        b2.limit(i, 10, 0, "buy", 10, 100)
    b2.run(tape)
    assert np.array_equal(b2.orders, b.orders)


def test_probabilistic_model_leaves_front_of_queue_alone():
    # ahead 0 (improved the touch): a cancel at another price level or at the agent's price cannot move it
    b = _book(queue_model="probabilistic", queue_power=1.0)
    b.limit(0, 10, 0, "buy", 10, 101)
    _feed(b, [(20, SUB, B, 101, 100), (30, CAN, B, 101, 60)])
    assert b.order(0, 0)["ahead"] == 0


def test_touch_improvement_has_nothing_ahead_and_is_met_first():
    b = _book()
    b.limit(0, 10, 0, "buy", 80, 101)   # improves the best bid 100: nothing ahead
    _feed(b, [(20, SUB, B, 101, 500),  # a later bid at 101 queues behind the agent
                          (30, EXE, B, 101, 30)])  # the sell meets the agent first
    o = b.order(0, 0)
    assert o["ahead"] == 0 and o["filled"] == 30 and o["remaining"] == 50
    assert b.levels(0, B)[0] == (101, 470)
    # a sell that executes at 100 traded through the agent's 101: the agent would have been met first
    _feed(b, [(35, DEL, B, 101, 470), (40, EXE, B, 100, 20)])
    assert b.order(0, 0)["filled"] == 50
    # a new ask at 101 crosses the agent's resting bid: 30 of its 200 fill the agent (its last 30)
    _feed(b, [(50, SUB, A, 101, 200)])
    o = b.order(0, 0)
    assert o["status"] == ST_FILLED and o["filled"] == 80 and o["t_filled"] == 50
    assert b.fill_log(0)[:, [F_PRICE, F_QTY]].tolist() == [[101, 30], [101, 20], [101, 30]]


def test_partial_cancel_keeps_priority_price_change_loses_it():
    b = _book()
    b.limit(0, 10, 0, "buy", 100, 100)   # ahead 300
    _feed(b, [(20, SUB, B, 100, 50)])
    b.reduce(0, 30, 0, 40)                # keeps its place
    _feed(b, [(40, SUB, B, 100, 10)])
    o = b.order(0, 0)
    assert (o["remaining"], o["ahead"], o["qty"], o["cancelled"]) == (60, 300, 100, 40)
    b.modify(0, 50, 0, 60, 100)           # same price, same size: keeps its place
    _feed(b, [(60, SUB, B, 100, 10)])
    assert b.order(0, 0)["ahead"] == 300
    b.modify(0, 70, 0, 60, 99)            # price change: the back of 99 (200)
    _feed(b, [(80, SUB, B, 99, 5)])
    assert (b.order(0, 0)["price"], b.order(0, 0)["ahead"]) == (99, 200)
    b.modify(0, 90, 0, 60, 100)           # back to 100: behind all 370 now there
    _feed(b, [(100, SUB, B, 98, 5)])
    assert (b.order(0, 0)["price"], b.order(0, 0)["ahead"], b.order(0, 0)["t_live"]) == (100, 370, 90)
    b.modify(0, 110, 0, 70, 100)          # a size-up at the same price is a new order: loses its place
    _feed(b, [(120, SUB, B, 100, 1)])
    assert b.order(0, 0)["ahead"] == 370 and b.order(0, 0)["remaining"] == 70  # the 1 share queued behind


@pytest.mark.parametrize("exec_t, filled", [(1500, True), (2500, False)])
def test_cancel_fill_race_under_latency(exec_t, filled):
    """Entry latency 1000 ns: a cancel decided at 1000 reaches the venue at 2000. A fill at 1500
    comes first and stands (the cancel fails); a fill at 2500 never happens."""
    ent, md = _fixed(1000)
    b = _book(latency=ent, md_latency=md)
    b.limit(0, 0, 0, "buy", 40, 101)  # live at 1000, nothing ahead
    b.cancel(0, 1000, 0)
    _feed(b, [(exec_t, EXE, B, 100, 60)])  # trades through 101
    o = b.order(0, 0)
    assert o["t_live"] == 1000
    if filled:
        assert o["status"] == ST_FILLED and o["filled"] == 40 and b.cnt[0, N_CANCEL_FAILED] == 1
        assert b.position(0) == 40
    else:
        assert o["status"] == ST_CANCELLED and o["t_done"] == 2000 and o["filled"] == 0
        assert b.cnt[0, N_CANCEL_FAILED] == 0 and b.position(0) == 0


def test_marketable_limit_meets_the_book_as_it_is_on_arrival():
    ent, md = _fixed(1000)
    # the ask at 102 leaves before the buy at 102 arrives: it rests as the new best bid, nothing ahead
    b = _book(latency=ent, md_latency=md)
    b.limit(0, 0, 0, "buy", 50, 102)
    _feed(b, [(500, DEL, A, 102, 100), (1500, SUB, B, 102, 7)])
    o = b.order(0, 0)
    assert (o["status"], o["filled"], o["ahead"]) == (ST_LIVE, 0, 0)
    # a better ask arrives first: the buy trades at 101 (what is there), then at 102, rest none
    b = _book(latency=ent, md_latency=md)
    b.limit(0, 0, 0, "buy", 150, 102)
    _feed(b, [(500, SUB, A, 101, 30)])
    assert b.fill_log(0)[:, [F_T, F_PRICE, F_QTY]].tolist() == [[1000, 101, 30], [1000, 102, 100]]
    o = b.order(0, 0)
    assert (o["status"], o["remaining"], o["ahead"]) == (ST_LIVE, 20, 0)  # rests at 102
    assert b.cash_ticks(0) == -(101 * 30 + 102 * 100)


def test_relative_price_uses_market_data_as_old_as_its_latency():
    # market-data latency 600 ns: a join-the-touch decision at 1000 sees the book at 400, before
    # the bid at 101 that arrives at 500
    ent, md = _fixed(0, 600)
    b = _book(latency=ent, md_latency=md)
    b.limit(0, 1000, 0, "buy", 10, 0, pmode="touch")
    _feed(b, [(500, SUB, B, 101, 5), (2000, SUB, B, 99, 1)])
    assert b.order(0, 0)["price"] == 100 and b.order(0, 0)["ahead"] == 300
    ent, md = _fixed(0, 0)
    b = _book(latency=ent, md_latency=md)
    b.limit(0, 1000, 0, "buy", 10, 0, pmode="touch")
    _feed(b, [(500, SUB, B, 101, 5), (2000, SUB, B, 99, 1)])
    assert b.order(0, 0)["price"] == 101 and b.order(0, 0)["ahead"] == 5


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_market_order_walks_levels(mode):
    b = _book(mode=mode)
    b.market(0, 10, 1, "buy", 450)
    _feed(b, [(20, SUB, B, 97, 1)])
    f = b.fill_log(0)
    assert f[:, [F_PRICE, F_QTY]].tolist() == [[102, 100], [103, 200], [104, 150]]
    assert b.cash_ticks(0) == -(102 * 100 + 103 * 200 + 104 * 150) and b.position(0) == 450
    assert b.order(0, 1)["status"] == ST_FILLED
    if mode == "live":
        assert b.levels(0, A) == [(104, 150)]
    else:
        # the market book stays the tape's; the taken shares are a deficit until the stream updates the level
        assert b.levels(0, A) == [(102, 100), (103, 200), (104, 300)]
        assert b.dq[0, 1, :3].tolist() == [100, 200, 150]
        _feed(b, [(30, SUB, A, 103, 10)])
        assert b.dq[0, 1, :3].tolist() == [100, 0, 150]  # the update at 103 replaced them
        b.market(0, 40, 2, "buy", 500)  # sees 0 at 102, 210 at 103, 150 at 104: fills 360, rest cancelled
        _feed(b, [(50, SUB, B, 97, 1)])
        assert b.fill_log(0)[3:, [F_PRICE, F_QTY]].tolist() == [[103, 210], [104, 150]]
        o = b.order(0, 2)
        assert (o["status"], o["filled"], o["remaining"], o["cancelled"]) == (ST_CANCELLED, 360, 0, 140)


def test_quote_keeps_its_place_and_is_sent_again_after_a_fill():
    b = _book()
    b.quote(0, 10, 0, "buy", 50, 0, pmode="touch")   # a new limit at the touch 100: ahead 300
    b.quote(0, 20, 0, "buy", 50, 0, pmode="touch")   # unchanged: keeps its place
    # the 300 ahead trade, the 10 behind leave, a sell at 99 goes through the agent's 100
    _feed(b, [(15, SUB, B, 100, 10), (30, EXE, B, 100, 300), (32, DEL, B, 100, 10), (35, EXE, B, 99, 60)])
    o = b.order(0, 0)
    assert (o["status"], o["filled"], o["t_live"], o["id"]) == (ST_FILLED, 50, 10, 1)
    b.quote(0, 40, 0, "buy", 50, 0, pmode="touch")   # the slot is done: a new order at the touch 99
    _feed(b, [(50, SUB, B, 98, 1)])
    o = b.order(0, 0)
    assert (o["status"], o["ahead"], o["price"], o["id"]) == (ST_LIVE, 140, 99, 2)


def test_halt_rejects_orders_arriving_while_halted():
    b = _book()
    b.limit(0, 20, 0, "buy", 10, 100)
    _feed(b, [(10, HALT, B, -1, 0), (30, SUB, B, 99, 1)])
    assert b.order(0, 0)["status"] == ST_REJECTED
    b.limit(0, 50, 1, "buy", 10, 100)
    _feed(b, [(40, HALT, B, 1, 0), (60, SUB, B, 99, 1)])
    assert b.order(0, 1)["status"] == ST_LIVE


def _random_tape(rng, n, t0=100):
    """A valid random tape near the book of ``_book`` (a simple generator that keeps its own book)."""
    bids = {100: 300, 99: 200, 98: 100}
    asks = {102: 100, 103: 200, 104: 300}
    rows = []
    t = t0
    for _ in range(n):
        t += int(rng.integers(1, 2000))
        side = int(rng.integers(2))
        book = bids if side == 0 else asks
        opp = asks if side == 0 else bids
        r = rng.random()
        if r < 0.5 or not book:
            best_opp = (min(opp) if side == 0 else max(opp)) if opp else (110 if side == 0 else 90)
            p = best_opp - int(rng.integers(1, 5)) if side == 0 else best_opp + int(rng.integers(1, 5))
            q = int(rng.integers(1, 200))
            book[p] = book.get(p, 0) + q
            rows.append((t, SUB, side, p, q))
        else:
            p = int(rng.choice(sorted(book)))
            best = max(book) if side == 0 else min(book)
            if r < 0.8:
                q = int(rng.integers(1, book[p] + 1))
                rows.append((t, DEL if q == book[p] else CAN, side, p, q))
            else:
                p = best
                q = int(rng.integers(1, book[p] + 1))
                rows.append((t, EXE, side, p, q))
            book[p] -= q
            if book[p] == 0:
                del book[p]
    return Tape.from_rows(rows), bids, asks


def _random_commands(b, env, rng, t_end, k=40):
    ts = np.sort(rng.integers(0, t_end, k))
    for j, t in enumerate(ts):
        slot = int(rng.integers(4))
        r = rng.random()
        if r < 0.5:
            b.limit(env, int(t), slot, int(rng.integers(2)), int(rng.integers(1, 300)), int(rng.integers(-2, 2)),
                    pmode="touch")
        elif r < 0.65:
            b.market(env, int(t), slot, int(rng.integers(2)), int(rng.integers(1, 200)))
        elif r < 0.8:
            b.cancel(env, int(t), slot)
        elif r < 0.9:
            b.reduce(env, int(t), slot, int(rng.integers(1, 50)))
        else:
            b.modify(env, int(t), slot, int(rng.integers(1, 300)), int(rng.integers(-1, 2)), pmode="touch")


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_conservation_of_shares_and_cash(mode):
    rng = np.random.default_rng(7)
    tape, bids, asks = _random_tape(rng, 3000)
    b = _book(depth=50, mode=mode, latency="proximity", seed=3, max_orders=4, strict=mode == "replay")
    _random_commands(b, 0, rng, int(tape.t[-1]), k=300)
    b.run(tape)
    # the market book: shares in (initial book + submits) = shares out + resting
    initial = 300 + 200 + 100 + 100 + 200 + 300
    sub = int(tape.size[tape.type == SUB].sum())
    out = int(tape.size[np.isin(tape.type, (CAN, DEL, EXE))].sum())
    if mode == "replay":  # the agent's takes never leave the market book
        assert b.cnt[0, bk.SHARES_IN] == sub and b.cnt[0, bk.SHARES_OUT] == out
        resting = int(b.sz[0].sum())
        assert initial + sub == out + resting
        assert b.levels(0, B) == sorted(bids.items(), reverse=True) and b.levels(0, A) == sorted(asks.items())
    # the agent: every order's shares are filled, resting or cancelled, and the fills add up
    f = b.fill_log(0)
    assert len(f) > 20
    sign = np.where(f[:, F_SIDE] == 0, -1, 1)
    assert b.acct[0, A_CASH] == int((sign * f[:, F_PRICE] * f[:, F_QTY]).sum())
    assert b.acct[0, A_POS] == int((-sign * f[:, F_QTY]).sum())
    o = b.orders[0]
    used = o[:, bk.O_ID] > 0
    assert np.all(o[used, bk.O_FILLED] + o[used, bk.O_REM] + o[used, bk.O_CXL] == o[used, bk.O_QTY])
    assert np.all(o[:, bk.O_REM] >= 0) and np.all(o[:, bk.O_AHEAD] >= 0)
    assert np.all(f[:, F_T_SEEN] >= f[:, F_T])


def _lanes_run(seeds, tape, stops=None, latency="cloud"):
    b = _book(len(seeds), depth=50, latency=latency, seed=list(seeds) if len(seeds) > 1 else seeds[0],
              max_orders=4, queue_model="probabilistic", queue_power=2.0)
    rng = np.random.default_rng(11)
    for i in range(len(seeds)):
        _random_commands(b, i, rng, int(tape.t[-1]), k=200)
    b.run(tape, stops)
    return b


def test_determinism_with_latency_draws():
    tape, _, _ = _random_tape(np.random.default_rng(1), 2000)
    b1 = _lanes_run([5], tape)
    b2 = _lanes_run([5], tape)
    b3 = _lanes_run([6], tape)
    for name in ("px", "sz", "dq", "orders", "fills", "acct", "cnt", "es", "rng"):
        assert np.array_equal(getattr(b1, name), getattr(b2, name)), name
    # another seed draws other latencies: the arrival times of the agent's orders differ
    assert not np.array_equal(b1.orders[:, :, bk.O_T_LIVE], b3.orders[:, :, bk.O_T_LIVE])
    # the cloud scenario's entry latency: 2 ms +- 0.2 ms between decision and arrival
    o = b1.orders[0]
    live = o[:, bk.O_T_LIVE] > 0
    d = o[live, bk.O_T_LIVE] - o[live, bk.O_T_SENT]
    assert np.all(d > 1_000_000) and np.all(d < 4_000_000)


def test_batch_lanes_independent_bit_for_bit():
    """Lane 1 replays a tape with a bad message; lane 0 (another tape) is identical to a run alone."""
    rng = np.random.default_rng(2)
    good, _, _ = _random_tape(rng, 1500)
    bad, _, _ = _random_tape(rng, 1500)
    j = 700 + int(np.flatnonzero(np.isin(bad.type[700:], (CAN, DEL, EXE)))[0])
    bad.size[j] = 10 ** 9  # a cancel / delete / execution of more than rests
    both = Tape.concat([good, bad])
    n0 = len(good)
    for strict in (False, True):
        b = Book(2, BookConfig(depth=50, max_orders=4, strict=strict), latency="colocated", seed=[9, 10])
        solo = Book(1, BookConfig(depth=50, max_orders=4, strict=strict), latency="colocated", seed=9)
        for bb, lanes in ((b, (0, 1)), (solo, (0,))):
            for i in lanes:
                bb.set_book(i, [(100, 300), (99, 200), (98, 100)], [(102, 100), (103, 200), (104, 300)], t0=0)
                _random_commands(bb, i, np.random.default_rng(20 + i), int(good.t[-1]), k=100)
        b.seek([0, n0])
        if strict:
            with pytest.raises(BookError, match=rf"env 1: tape row {n0 + j} .*cancel_exceeds_resting"):
                b.run(both, [n0, len(both)], t_flush=[int(good.t[-1]) + 1, 2 ** 62])
            assert b.es[1, bk.ES_POS] == n0 + j and b.es[1, bk.ES_FROZEN] == 1
        else:
            b.run(both, [n0, len(both)], t_flush=[int(good.t[-1]) + 1, 2 ** 62])
            assert b.errors()["cancel_exceeds_resting"].tolist() == [0, 1]
            assert b.es[1, bk.ES_POS] == len(both)
        solo.run(good, t_flush=int(good.t[-1]) + 1)
        for name in ("px", "sz", "dq", "nl", "orders", "fills", "acct", "cnt", "rng"):
            assert np.array_equal(getattr(b, name)[0], getattr(solo, name)[0]), (strict, name)
        es_cols = [c for c in range(bk.N_ES) if c != bk.ES_POS]
        assert np.array_equal(b.es[0, es_cols], solo.es[0, es_cols])


@pytest.mark.parametrize("row, rule", [
    ((10, DEL, B, 100, 301), "cancel_exceeds_resting"),
    ((10, CAN, A, 102, 101), "cancel_exceeds_resting"),
    ((10, EXE, B, 101, 10), "no_visible_size_at_price"),
    ((10, DEL, A, 105, 10), "no_visible_size_at_price"),
    ((10, SUB, B, 102, 10), "crossed_result"),
    ((10, SUB, A, 100, 10), "crossed_result"),
    ((-5, SUB, B, 99, 10), "time_backwards"),
    ((10, SUB, B, 99, 0), "size_not_positive"),
    ((10, 9, B, 99, 1), "bad_type_or_side"),
])
def test_bad_messages_raise_or_are_counted(row, rule):
    tape = Tape.from_rows([(5, SUB, B, 99, 1), row, (20, SUB, B, 97, 3)])
    b = _book()
    with pytest.raises(BookError, match=rf"env 0: tape row 1 .*{rule}"):
        b.run(tape)
    before = (b.px.copy(), b.sz.copy())
    assert b.levels(0, B)[1] == (99, 201)  # the bad row changed nothing; the env is frozen there
    b2 = _book(strict=False)
    b2.run(tape)
    assert b2.errors()[rule].tolist() == [1]
    assert b2.levels(0, B) == [(100, 300), (99, 201), (98, 100), (97, 3)]
    assert np.array_equal(before[1][0, 1], b2.sz[0, 1])


def test_bad_agent_commands_and_latency():
    b = _book()
    with pytest.raises(BookError, match="size must be > 0"):
        b.limit(0, 10, 0, "buy", 0, 100)
    with pytest.raises(BookError, match="size must be > 0"):
        b.market(0, 10, 0, "sell", -5)
    with pytest.raises(BookError, match="off the 0.01 USD tick grid"):
        b.limit(0, 10, 0, "buy", 10, price_usd=1.005)
    with pytest.raises(BookError, match="off the tick grid"):
        b.limit(0, 10, 0, "buy", 10, 100.5)
    with pytest.raises(BookError, match="price must be > 0"):
        b.limit(0, 10, 0, "buy", 10, 0)
    with pytest.raises(BookError, match="slot 9"):
        b.limit(0, 10, 9, "buy", 10, 100)
    with pytest.raises(BookError, match=r"latency\[1, 0\] = -1.0"):
        Book(2, latency=np.array([[0.0, 0.0], [-1.0, 0.0]]))
    with pytest.raises(BookError, match=r"md_latency\[0, 1\]"):
        Book(1, md_latency=np.array([[0.0, -2.0]]))
    with pytest.raises(ValueError, match="one_way_us"):
        LatencyScenario("bad", -1.0)
    with pytest.raises(BookError, match="unknown latency scenario"):
        Book(1, latency="warp")
    with pytest.raises(BookError, match="depth"):
        BookConfig(depth=51)
    with pytest.raises(BookError, match="queue_model"):
        BookConfig(queue_model="fifo")
    # a valid order in price USD on the grid becomes ticks
    b.limit(0, 10, 0, "buy", 10, price_usd=1.0)
    assert b.cmds[0, 0, bk.C_PRICE] == 100


def test_user_defined_latency_scenario_and_presets():
    user = LatencyScenario("mine", 10.0, 0.0)
    b = Book(3, latency=["none", user, "retail"], md_latency="colocated")
    assert b.lat[:, 0].tolist() == [0.0, 10_000.0, 50_000_000.0]
    assert b.lat[:, 1].tolist() == [0.0, 0.0, 5_000_000.0]
    assert b.lat[:, 2].tolist() == [25_000.0] * 3 and b.lat[:, 3].tolist() == [5_000.0] * 3

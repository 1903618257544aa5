"""Exact replay of real LOBSTER days through the book engine, with and without the agent."""

import numpy as np
import pytest

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import BookConfig, BookError, Tape
from lobworld.envs.replay import ReplayData, replay, touch_quoter_commands
from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths

GOOG = "lobster/GOOG_2012-06-21_34200000_57600000_message_10.csv.gz"
AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"


@pytest.fixture(scope="module")
def hour():
    df = load_lobster(*sample_lobster_paths())
    return df, ReplayData.from_events(df)


def _exec_stats(df):
    """Executed volume and trade count of rows 1.. of the event table, computed with pandas."""
    d = df.iloc[1:]
    ev = d["event"].astype(str)
    vis = int(d["size"][ev == "exec_visible"].sum())
    hid = int(d["size"][ev == "exec_hidden"].sum())
    is_ex = ev.isin(["exec_visible", "exec_hidden"]).to_numpy()
    t = d["ts"].array.asi8
    side = d["direction"].to_numpy()
    prev_ex = np.r_[False, is_ex[:-1]]
    same = np.r_[False, (t[1:] == t[:-1]) & (side[1:] == side[:-1])]
    trades = int(np.sum(is_ex & ~(prev_ex & same)))
    return vis, hid, int(is_ex.sum()), trades


def _check_exact(df, data, rep):
    n = len(df) - 1
    assert rep.rows[0] == n
    assert rep.top_mismatch[0] == 0  # top of book on every row
    assert rep.level_mismatch[0] == 0  # every level on every row without an entering level
    assert rep.first_mismatch_row[0] == -1
    assert rep.resync[0] <= int(np.count_nonzero(data.entry))
    vis, hid, n_ex, trades = _exec_stats(df)
    assert (rep.exec_volume_visible[0], rep.exec_volume_hidden[0]) == (vis, hid)
    assert (rep.exec_messages[0], rep.trades[0]) == (n_ex, trades)
    assert all(int(v.sum()) == 0 for v in rep.errors.values())
    # the end of the replay is the file's last row, level by level
    b = rep.book
    L = data.levels
    for s in range(2):
        k = int(np.count_nonzero(data.fsz[-1, s]))
        assert np.array_equal(b.px[0, s, :k], data.fpx[-1, s, :k])
        assert np.array_equal(b.sz[0, s, :k], data.fsz[-1, s, :k])
        assert k == L or b.nl[0, s] == k


def test_replay_data_arrays(hour):
    df, data = hour
    assert data.levels == 10 and data.n_rows == len(df) == 29753
    assert data.tape.t.dtype == np.int64 and np.all(np.diff(data.tape.t) >= 0)
    assert set(np.unique(data.tape.type)) <= {1, 2, 3, 4, 5}
    # prices in ticks: USD x 100
    assert np.array_equal(data.fpx[:, 0, 0], np.rint(df["bid_px_1"].to_numpy() * 100).astype(np.int64))
    assert np.array_equal(data.fsz[:, 1, 3], df["ask_sz_4"].to_numpy().astype(np.int64))
    # an entry row holds a price that neither the previous row nor the message can explain
    k = int(np.flatnonzero(data.entry & 1)[0])
    prev = set(data.fpx[k - 1, 0][data.fsz[k - 1, 0] > 0])
    new = set(data.fpx[k, 0][data.fsz[k, 0] > 0]) - prev
    assert new and not (data.tape.type[k] == 1 and data.tape.side[k] == 0 and new == {data.tape.price[k]})


@pytest.mark.parametrize("depth", [10, 20, 50])
def test_exact_replay_shipped_hour(hour, depth):
    df, data = hour
    rep = replay(data, config=BookConfig(depth=depth))
    _check_exact(df, data, rep)
    # a deeper book remembers levels pushed out of the window: fewer rows need the file
    expected = {10: 9801, 20: 1264, 50: 1187}[depth]
    assert rep.resync[0] == expected


def test_fast_path_equals_verified_path(hour):
    df, data = hour
    a = replay(data, verify=True)
    b = replay(data, verify=False)
    assert np.array_equal(a.book.px, b.book.px) and np.array_equal(a.book.sz, b.book.sz)
    assert a.resync[0] == b.resync[0]


@pytest.mark.slow
@pytest.mark.parametrize("path, levels, rows, resync", [(GOOG, 10, 147915, 6693), (AMZN, 5, 155934, 12151)])
def test_exact_replay_full_day(shared_data, path, levels, rows, resync):
    df = load_lobster(shared_data / path)
    data = ReplayData.from_events(df)
    assert data.levels == levels
    rep = replay(data)
    assert rep.rows[0] == rows
    _check_exact(df, data, rep)
    assert rep.resync[0] == resync
    # with the book only as deep as the file, every entering level needs the file
    rep_l = replay(data, config=BookConfig(depth=levels))
    assert rep_l.top_mismatch[0] == 0 and rep_l.level_mismatch[0] == 0
    assert rep_l.resync[0] == int(np.count_nonzero(data.entry))


def _windows(data, n, length):
    starts = np.linspace(0, data.n_rows - length, n).astype(np.int64)
    return [(int(s), int(s) + length) for s in starts]


def test_batched_windows_with_agent(hour):
    """8 windows replayed at once, each with a quoting agent under the cloud latency: the
    market book still matches the file on every row, each lane equals its own replay alone
    bit for bit, and the agent's shares and cash add up."""
    df, data = hour
    win = _windows(data, 8, 6000)
    cmds = [touch_quoter_commands(data.tape.t, s, e, every_ns=50_000_000, market_every=5) for s, e in win]
    rep = replay(data, win, commands=cmds, latency="cloud", seed=4,
                 config=BookConfig(depth=20, queue_model="probabilistic", queue_power=2.0))
    assert np.all(rep.top_mismatch == 0) and np.all(rep.level_mismatch == 0)
    assert np.all(rep.rows == 5999)
    b = rep.book
    assert np.all(b.acct[:, bk.A_NFILLS] > 10)
    assert np.all(b.acct[:, bk.A_PASSIVE_QTY] > 0) and np.all(b.acct[:, bk.A_AGGR_QTY] > 0)
    for i in range(len(win)):
        f = b.fill_log(i)
        sign = np.where(f[:, bk.F_SIDE] == 0, -1, 1)
        assert b.acct[i, bk.A_CASH] == int((sign * f[:, bk.F_PRICE] * f[:, bk.F_QTY]).sum())
        assert b.acct[i, bk.A_POS] == int((-sign * f[:, bk.F_QTY]).sum())
        o = b.orders[i]
        used = o[:, bk.O_ID] > 0
        assert np.all(o[used, bk.O_FILLED] + o[used, bk.O_REM] + o[used, bk.O_CXL] == o[used, bk.O_QTY])
    # lane 3 alone (its own seed: SeedSequence(4 + 3)) gives the same arrays bit for bit
    solo = replay(data, [win[3]], commands=[cmds[3]], latency="cloud", seed=7,
                  config=BookConfig(depth=20, queue_model="probabilistic", queue_power=2.0)).book
    for name in ("px", "sz", "dq", "nl", "orders", "fills", "acct", "cnt", "es", "rng"):
        assert np.array_equal(getattr(b, name)[3], getattr(solo, name)[0]), name
    # the same seed again: identical; the parallel and serial kernels agree
    again = replay(data, win, commands=cmds, latency="cloud", seed=4, parallel=False,
                   config=BookConfig(depth=20, queue_model="probabilistic", queue_power=2.0)).book
    for name in ("orders", "fills", "acct", "cnt", "rng"):
        assert np.array_equal(getattr(b, name), getattr(again, name)), name


def test_agent_does_not_change_the_replayed_market(hour):
    df, data = hour
    win = [(100, 20000)]
    cmds = [touch_quoter_commands(data.tape.t, 100, 20000, every_ns=20_000_000, market_every=3, market_size=300)]
    with_agent = replay(data, win, commands=cmds, latency="colocated")
    alone = replay(data, win)
    assert np.array_equal(with_agent.book.sz, alone.book.sz) and np.array_equal(with_agent.book.px, alone.book.px)
    assert with_agent.top_mismatch[0] == 0 and with_agent.level_mismatch[0] == 0
    assert with_agent.book.acct[0, bk.A_AGGR_QTY] > 0


def test_bad_message_in_one_lane(hour):
    """A corrupted copy of the tape: lane 1's window holds a delete of more than rests. Strict
    replay raises naming it; non-strict counts it; lane 0 is the same in both, bit for bit."""
    _, data = hour
    tp = data.tape
    k = 15000 + int(np.flatnonzero(tp.type[15000:] == 3)[0])
    size = tp.size.copy()
    size[k] = 10 ** 7
    bad = ReplayData(Tape(tp.t, tp.type, tp.side, tp.price, size, tp.order_id), data.fpx, data.fsz, data.entry,
                     data.levels, data.tick_size)
    win = [(0, 10000), (12000, 20000)]
    ref = replay(data, win[:1]).book
    with pytest.raises(BookError, match=rf"env 1: tape row {k} \(file line {k + 1}\).*cancel_exceeds_resting"):
        replay(bad, win)
    rep = replay(bad, win, strict=False)
    assert rep.errors["cancel_exceeds_resting"].tolist() == [0, 1]
    assert rep.rows.tolist() == [9999, 7998]
    for name in ("px", "sz", "orders", "cnt", "es"):
        assert np.array_equal(getattr(rep.book, name)[0], getattr(ref, name)[0]), name
    # time going backwards in the tape
    t = tp.t.copy()
    t[k] = t[k - 1] - 1
    back = ReplayData(Tape(t, tp.type, tp.side, tp.price, tp.size, tp.order_id), data.fpx, data.fsz, data.entry,
                      data.levels, data.tick_size)
    with pytest.raises(BookError, match=rf"tape row {k} .*time_backwards"):
        replay(back, win)


def test_replay_argument_errors(hour):
    _, data = hour
    with pytest.raises(BookError, match="window 0"):
        replay(data, [(5, 5)])
    with pytest.raises(BookError, match="shallower than the file"):
        replay(data, config=BookConfig(depth=5))
    with pytest.raises(BookError, match="command arrays"):
        replay(data, [(0, 10), (10, 20)], commands=[None])

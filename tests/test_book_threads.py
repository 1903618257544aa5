"""Which kernel :meth:`Book.run` picks (the project's threading policy) and that the choice never
changes a result: stepped replays under every policy end bit for bit equal."""

import numpy as np
import pytest

from lobworld.envs import book_kernels as bk
from lobworld.envs.book import PARALLEL_MIN_ROWS, Book, BookConfig, Tape

STATE = ("px", "sz", "dq", "nl", "orders", "pend", "fills", "acct", "cnt", "es", "rng")


def _tape(n_rows, seed=0):
    """A random but valid tape around a 100/102 book: submits and deletes of 10 shares at
    levels 95..99 (bids) and 103..107 (asks), every row 1 ms apart."""
    g = np.random.default_rng(seed)
    rows, live = [], {}
    for r in range(n_rows):
        side = int(g.integers(2))
        p = int(g.integers(95, 100)) if side == 0 else int(g.integers(103, 108))
        if live.get((side, p), 0) >= 10 and g.random() < 0.5:
            rows.append((r * 1_000_000, 3, side, p, 10))
            live[(side, p)] -= 10
        else:
            rows.append((r * 1_000_000, 1, side, p, 10))
            live[(side, p)] = live.get((side, p), 0) + 10
    return Tape.from_rows(rows)


def _stepped(tape, n_envs, steps, parallel):
    b = Book(n_envs, BookConfig(max_orders=4), latency="colocated", seed=3)
    for i in range(n_envs):
        b.set_book(i, [(100, 300)], [(102, 300)], t0=0)
        b.limit(i, 1_000, 0, "buy", 100, 50)
        b.limit(i, 2_000, 1, "sell", 102, 50)
    b.seek(0)
    used = []
    for stop in np.linspace(0, len(tape), steps + 1).astype(np.int64)[1:]:
        b.run(tape, np.full(n_envs, stop), parallel=parallel)
        used.append(b.last_parallel)
    return b, used


def test_stepped_use_measures_and_never_changes_a_result(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    tape = _tape(400)
    ref, used_ser = _stepped(tape, 4, 40, False)
    par, used_par = _stepped(tape, 4, 40, True)
    auto, used_auto = _stepped(tape, 4, 40, None)
    assert not any(used_ser) and all(used_par)
    assert auto.threads.mode == "auto"
    # ThreadChoice tries serial first (its first timing is discarded), then measures parallel
    assert used_auto[:3] == [False, False, True]
    assert ref.cnt[:, bk.N_MSGS].tolist() == [400] * 4
    for name in STATE:
        assert np.array_equal(getattr(ref, name), getattr(par, name)), name
        assert np.array_equal(getattr(ref, name), getattr(auto, name)), name


@pytest.mark.parametrize("flag, expect", [("0", False), ("1", True)])
def test_lobworld_parallel_overrides_the_policy(monkeypatch, flag, expect):
    monkeypatch.setenv("LOBWORLD_PARALLEL", flag)
    tape = _tape(50)
    b, used = _stepped(tape, 4, 5, None)
    assert b.threads.mode == ("parallel" if expect else "serial")
    assert used == [expect] * 5


def test_single_env_serial_and_big_batches_parallel(monkeypatch):
    monkeypatch.delenv("LOBWORLD_PARALLEL", raising=False)
    import numba

    tape = _tape(50)
    one, used = _stepped(tape, 1, 5, None)
    assert one.threads.mode == "serial" and not any(used)
    # a call replaying at least PARALLEL_MIN_ROWS rows in all runs the prange kernel unmeasured
    n = PARALLEL_MIN_ROWS // 49 + 1
    big = Book(n, BookConfig(max_orders=1, max_commands=1, max_fills=1, max_pending=1))
    for i in range(n):
        big.set_book(i, [(100, 300)], [(102, 300)], t0=0)
    big.seek(0)
    big.run(tape)
    assert big.last_parallel == (numba.get_num_threads() > 1)
    assert big.cnt[:, bk.N_MSGS].min() == 50 and big.threads._seen == [0, 0]

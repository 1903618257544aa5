"""The book columns of the tick GRU's input, built four ways, agree: ``tick_features`` (training, from the
event table), ``tick_gru_world._file_context`` (the warm-up, from the orderbook file), ``tick_sim._context``
(the engine book) and ``tick_gru_world._merged_context`` (the engine book merged with the agent's live
limit orders). Hand-checked on a small book with agent orders."""

from __future__ import annotations

import numpy as np
import pytest

from lobworld.envs.book import Book, BookConfig
from lobworld.envs.book_kernels import ASK, BID, O_PRICE, O_REM, O_SIDE, O_STATUS, ST_LIVE, load_rows
from lobworld.envs.replay import ReplayData
from lobworld.world_models.data import load_lobster, sample_lobster_paths
from lobworld.world_models.data.events import TokenConfig, tokenize
from lobworld.world_models.tick_gru_world import _file_context, _merged_context
from lobworld.world_models.tick_model import tick_features
from lobworld.world_models.tick_sim import N_FEATURES, TOP_K, X_IMB, X_SIZE, X_SPREAD, X_TOD, _context

LOT = 62.5
BOOK = slice(X_SPREAD, X_TOD)  # every book column but the clock (whose time differs by design)


@pytest.fixture(scope="module")
def hour():
    m, o = sample_lobster_paths()
    return ReplayData.from_lobster(m, o), tokenize(load_lobster(m, o), TokenConfig(test_hours=0.25, early_stop_hours=0.125))


def _ctx(fn, *args):
    x = np.zeros(N_FEATURES)
    fn(*args, x)
    return x


def test_file_and_engine_contexts_match_the_training_features(hour):
    data, tok = hour
    x, _ = tick_features(tok, 64)
    lot = tok.scale.lot
    rows = np.arange(1, len(tok), 37)
    book = Book(1, BookConfig(depth=20))
    worst = 0.0
    for j in rows:
        r = int(tok.row[j]) - 1  # token j is message row r + 1; its book is orderbook row r
        xf = _ctx(_file_context, r, 0, data.fpx, data.fsz, lot)
        load_rows(np.zeros(1, np.int64), np.array([r], np.int64), data.fpx, data.fsz, book.px, book.sz, book.dq,
                  book.nl)
        xe = _ctx(_context, 0, 0, book.px, book.sz, book.nl, lot)
        np.testing.assert_array_equal(xf[BOOK], xe[BOOK])
        worst = max(worst, float(np.abs(xf[BOOK] - x[j, BOOK]).max()))
    assert worst < 1e-6  # float32 features against float64


def test_agent_orders_merged_into_the_context_hand_checked():
    book = Book(1, BookConfig(depth=10))
    book.set_book(0, [(1000, 100), (998, 50), (990, 10)], [(1005, 30), (1006, 40)])
    x = _ctx(_context, 0, 0, book.px, book.sz, book.nl, LOT)
    np.testing.assert_allclose(x[X_SIZE:X_SIZE + 3], np.log1p(np.array([100, 50, 10]) / LOT))
    assert x[X_SIZE + 3] == 0.0 and x[X_SIZE + TOP_K + 2] == 0.0  # empty levels
    assert x[X_SPREAD] == pytest.approx(np.log1p(5))
    assert x[X_IMB] == pytest.approx((100 - 30) / (100 + 30))
    orders = book.orders
    xm = _ctx(_merged_context, 0, 0, book.px, book.sz, book.nl, orders, LOT)
    np.testing.assert_array_equal(xm[BOOK], x[BOOK])  # no live agent order: the engine book
    # an agent bid of 20 shares improves the best to 1002, and an agent ask of 5 joins the ask touch
    orders[0, 0, O_STATUS], orders[0, 0, O_SIDE], orders[0, 0, O_PRICE], orders[0, 0, O_REM] = ST_LIVE, BID, 1002, 20
    orders[0, 1, O_STATUS], orders[0, 1, O_SIDE], orders[0, 1, O_PRICE], orders[0, 1, O_REM] = ST_LIVE, ASK, 1005, 5
    xm = _ctx(_merged_context, 0, 0, book.px, book.sz, book.nl, orders, LOT)
    np.testing.assert_allclose(xm[X_SIZE:X_SIZE + 5], np.log1p(np.array([20, 100, 50, 10, 0]) / LOT))
    np.testing.assert_allclose(xm[X_SIZE + TOP_K:X_SIZE + TOP_K + 3], np.log1p(np.array([35, 40, 0]) / LOT))
    assert xm[X_SPREAD] == pytest.approx(np.log1p(3))
    assert xm[X_IMB] == pytest.approx((20 - 35) / (20 + 35))

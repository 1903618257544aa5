"""The faces' fast paths give exactly what their reference paths give."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobworld.envs.core import ActionError
from lobworld.envs.market_making import MarketMakingCore


def _mm_reference_info(e) -> dict:
    """The market-making episode info of one ``ep_done`` row, written out scalar by scalar."""
    from lobworld.envs import market_making_kernels as K
    n = max(e[K.E_LEN], 1.0)
    mean_dw = e[K.E_SUM_DW] / n
    sd = math.sqrt(max(e[K.E_SUM_DW2] / n - mean_dw * mean_dw, 0.0))
    return {
        "episode_length": int(e[K.E_LEN]), "pnl": float(e[K.N_EP]), "inventory_mean": float(e[K.E_SUM_INV] / n),
        "inventory_max_abs": float(e[K.E_MAXABS_INV]), "inventory_terminal": float(e[K.N_EP + 1]),
        "fills_bid": int(e[K.E_NFILL_BID]), "fills_ask": int(e[K.E_NFILL_ASK]),
        "filled_shares_bid": float(e[K.E_VFILL_BID]), "filled_shares_ask": float(e[K.E_VFILL_ASK]),
        "adverse_selection_cost": float(e[K.E_ADVERSE]), "inventory_penalty": float(e[K.E_SUM_PEN]),
        "sharpe_per_step": float(mean_dw / sd) if sd > 0 else 0.0,
        "market_orders_buy": int(e[K.E_NMO_BUY]), "market_orders_sell": int(e[K.E_NMO_SELL]),
    }


def test_market_making_episode_columns_equal_episode_info():
    n = 64
    core = MarketMakingCore(n, horizon=7)
    core.seed_rows(range(n), list(range(n)))
    core.reset()
    a = np.zeros((n, 4))
    a[:, 0] = a[:, 1] = 1.0
    a[:, 2] = a[:, 3] = 100.0
    ended = 0
    for _ in range(15):
        core.step(a, True)
        done = np.flatnonzero(core.terminated | core.truncated)
        if not len(done):
            continue
        ended += len(done)
        keys, cols = core.episode_columns(done)
        dicts = core.episode_infos(done)
        for j, i in enumerate(done):
            ref = _mm_reference_info(core.ep_done[i])
            info = core.episode_info(int(i))
            assert list(keys) == list(ref) == list(info)
            assert dicts[j] == info
            for k, col in zip(keys, cols):
                # the value, and the Python type of the dict entry / the dtype of the column
                assert info[k] == ref[k] and type(info[k]) is type(ref[k]), k
                assert col[j] == ref[k] and col.dtype == (np.int64 if type(ref[k]) is int else np.float64), k
    assert ended >= n  # every env finished at least one episode


@pytest.mark.parametrize("bad, what", [(np.nan, "not finite"), (np.inf, "not finite"), (-np.inf, "not finite"),
                                       (1e9, "outside the action space"), (-1.0, "outside the action space")])
def test_box_action_check_names_the_env_and_the_problem(bad, what):
    n = 5
    core = MarketMakingCore(n, horizon=7)
    core.reset()
    a = np.zeros((n, 4))
    a[:, 0] = a[:, 1] = 1.0
    a[:, 2] = a[:, 3] = 100.0
    core.step(a, True)  # valid
    a[3, 2] = bad
    with pytest.raises(ActionError, match=f"env 3.*{what}|{what}.*env 3|env 3"):
        core.step(a, True)
    a[3, 2] = 100.0
    core.step(a, True)  # state untouched by the refused call


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 300), k=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       bad=st.sampled_from([None, np.nan, np.inf, -np.inf, 10.0, -10.0]), where=st.floats(0.0, 1.0))
def test_the_vectorised_action_check_finds_what_the_row_scan_finds(n, k, seed, bad, where):
    """``_any_bad`` (blocks of 64 rows, no early exit) is true exactly when ``_first_bad_row`` finds a row,
    for batches shorter and longer than a block and values at the bounds."""
    from lobworld.envs.core import _any_bad, _first_bad_row

    rng = np.random.default_rng(seed)
    low, high = -np.arange(1.0, k + 1), np.arange(1.0, k + 1)
    a = rng.uniform(low, high, size=(n, k))
    if n:
        a[rng.integers(n), rng.integers(k)] = high[0]  # on a bound: valid
        if bad is not None:
            a[min(int(where * n), n - 1), rng.integers(k)] = bad
    a = np.ascontiguousarray(a)
    first = _first_bad_row(a, low, high)
    assert _any_bad(a, low, high) == (first >= 0)
    assert (first >= 0) == (bad is not None and n > 0)


def test_checked_actions_are_the_cores_own_buffer():
    """Every face hands the kernel one buffer per core: float32, float64, int and list inputs are copied
    (converted) into it, never passed through, so a caller's later edits cannot reach the kernel."""
    n = 6
    core = MarketMakingCore(n, horizon=7)
    a64 = np.tile([1.0, 2.0, 100.0, 50.0], (n, 1))
    buf = core.check_actions(a64)
    assert buf is not a64 and buf.flags.c_contiguous and buf.dtype == np.float64
    np.testing.assert_array_equal(buf, a64)
    for other in (a64.astype(np.float32), a64.astype(np.int64), a64.tolist(), np.asfortranarray(a64)):
        assert core.check_actions(other) is buf
        np.testing.assert_array_equal(buf, a64)
    a64[0, 0] = 3.0
    assert buf[0, 0] == 1.0

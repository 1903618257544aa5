"""The faces' fast paths give exactly what their reference paths give."""

from __future__ import annotations

import math

import numpy as np
import pytest

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

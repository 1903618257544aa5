"""The shared episode helper: kernel-side copies and the EpisodeStats table the faces read."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from lobworld.envs.episode import EpisodeStats, Stat, column, end_episode, record_maker


@njit
def _finish(done, obs, final_obs, ep, ep_done):
    for i in range(done.shape[0]):
        if done[i]:
            end_episode(i, obs, final_obs, ep, ep_done)
            ep_done[i, ep.shape[1]] = -1.0  # a column of ep_done beyond ep's is the caller's


def test_end_episode_copies_only_the_rows_that_ended():
    obs = np.arange(12, dtype=np.float32).reshape(4, 3)
    final_obs = np.full((4, 3), 7.0, np.float32)
    ep = np.arange(8, dtype=np.float64).reshape(4, 2) + 0.5
    ep_done = np.zeros((4, 3))
    _finish(np.array([False, True, False, True]), obs, final_obs, ep, ep_done)
    np.testing.assert_array_equal(final_obs, [[7, 7, 7], [3, 4, 5], [7, 7, 7], [9, 10, 11]])
    np.testing.assert_array_equal(ep_done, [[0, 0, 0], [2.5, 3.5, -1], [0, 0, 0], [6.5, 7.5, -1]])


class _Core:
    def __init__(self):
        self.ep_done = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 6.0], [7.5, 8.0, 0.0]])
        self.acct = np.array([[10.0], [20.0], [30.0]])


_STATS = EpisodeStats(
    column("a", 0),
    column("n", 2, kind=int),
    column("cash", 0, table="acct"),
    Stat("ratio", lambda rows: rows["ep_done"][:, 0] / rows["ep_done"][:, 1]),
    Stat("flag", lambda rows: rows["ep_done"][:, 1] > 1.0, bool),
)


def test_columns_have_the_dtypes_of_the_python_values():
    core = _Core()
    keys, cols = _STATS.keys, _STATS.columns(core, [2, 0])
    assert keys == ("a", "n", "cash", "ratio", "flag")
    assert [c.dtype for c in cols] == [np.float64, np.int64, np.float64, np.float64, np.bool_]
    np.testing.assert_array_equal(cols[0], [7.5, 1.0])
    np.testing.assert_array_equal(cols[1], [0, 3])
    np.testing.assert_array_equal(cols[2], [30.0, 10.0])
    np.testing.assert_array_equal(cols[3], [7.5 / 8.0, 0.5])
    np.testing.assert_array_equal(cols[4], [True, True])


def test_infos_are_python_numbers_and_extra_columns_append():
    core = _Core()
    with np.errstate(divide="ignore"):
        infos = _STATS.infos(core, [1, 2], ("terminal_observation",), (["x", "y"],))
    assert infos[0] == {"a": 4.0, "n": 6, "cash": 20.0, "ratio": float("inf"), "flag": False,
                        "terminal_observation": "x"}
    assert [type(v) for v in infos[1].values()] == [float, int, float, float, bool, str]
    assert _STATS.info(core, 0) == {"a": 1.0, "n": 3, "cash": 10.0, "ratio": 0.5, "flag": True}


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        EpisodeStats(column("a", 0), column("a", 1))
    with pytest.raises(TypeError, match="kind"):
        Stat("a", lambda rows: rows.idx, str)
    with pytest.raises(ValueError, match="distinct"):
        record_maker(("a", "a"))


def test_final_info_is_gymnasiums_dict_of_arrays():
    core = _Core()
    with np.errstate(divide="ignore"):
        fi = _STATS.final_info(core, np.array([0, 2]), 4)
    assert list(fi) == ["a", "_a", "n", "_n", "cash", "_cash", "ratio", "_ratio", "flag", "_flag"]
    np.testing.assert_array_equal(fi["a"], [1.0, 0.0, 7.5, 0.0])
    np.testing.assert_array_equal(fi["n"], [3, 0, 0, 0])
    np.testing.assert_array_equal(fi["cash"], [10.0, 0.0, 30.0, 0.0])
    np.testing.assert_array_equal(fi["flag"], [True, False, True, False])
    assert fi["n"].dtype == np.int64 and fi["flag"].dtype == np.bool_ and fi["ratio"].dtype == np.float64
    for k in _STATS.keys:
        assert fi["_" + k].tolist() == [True, False, True, False] and fi[k].shape == (4,)
    fi["a"][1] = 99.0  # the arrays do not overlap
    assert fi["cash"][1] == 0.0 and fi["ratio"][1] == 0.0
    assert _STATS.final_info(core, np.array([], np.int64), 4) == {}


def test_final_info_when_every_env_ended_equals_the_scatter_path():
    """The no-scatter path (every env of the batch ended) gives what the general path gives."""
    core = _Core()
    with np.errstate(divide="ignore"):
        every = _STATS.final_info(core, np.arange(3), 3)
        some = _STATS.final_info(core, np.array([0, 2]), 3)
    assert list(every) == list(some)
    for k in _STATS.keys:
        assert every[k].dtype == some[k].dtype and every[k].shape == (3,)
        assert every["_" + k].tolist() == [True, True, True]
        np.testing.assert_array_equal(every[k][[0, 2]], some[k][[0, 2]])
    np.testing.assert_array_equal(every["n"], [3, 6, 0])


def _tick_mm_reference(core, i) -> dict:
    """The tick market-making episode info of env ``i``, written out scalar by scalar."""
    import math

    from lobworld.envs import book_kernels as bk
    from lobworld.envs import tick_kernels as K
    e, a = core.ep_done[i], core.acct_done[i]
    n = max(e[K.V_STEP], 1.0)
    mean = e[K.V_SUMDW] / n
    sd = math.sqrt(max(e[K.V_SUMDW2] / n - mean * mean, 0.0))
    rec = e[K.V_PASSIVE_REC]
    return {"episode_length": int(e[K.V_STEP]), "pnl": float(e[K.V_W_PREV]), "episode_return": float(e[K.V_RET]),
            "inventory_terminal": float(a[bk.A_POS]), "inventory_max_abs": float(e[K.V_MAXABS]),
            "inventory_mean": float(e[K.V_SUMINV] / n), "filled_shares_bid": float(a[bk.A_BUY_QTY]),
            "filled_shares_ask": float(a[bk.A_SELL_QTY]), "fills": int(a[bk.A_NFILLS]),
            "passive_shares": float(a[bk.A_PASSIVE_QTY]), "aggressive_shares": float(a[bk.A_AGGR_QTY]),
            "sharpe_per_step": float(mean / sd) if sd > 0 else 0.0,
            "adverse_selection_usd": float(e[K.V_ADVERSE] * core.world.tick_size),
            "adverse_selection_ticks": float(e[K.V_ADVERSE] / rec) if rec else 0.0,
            "queue_wait_s": float(e[K.V_WAIT_NS_SH] / rec * 1e-9) if rec else 0.0}


def _tick_exec_reference(core, i) -> dict:
    from lobworld.envs import book_kernels as bk
    from lobworld.envs import tick_kernels as K
    e, a = core.ep_done[i], core.acct_done[i]
    Q, tick, mid0 = float(core.config.quantity), core.world.tick_size, e[K.V_MID0]
    done = float(a[bk.A_SELL_QTY] if core.config.side == "sell" else a[bk.A_BUY_QTY])
    traded = float(a[bk.A_SELL_QTY] + a[bk.A_BUY_QTY])
    return {"episode_length": int(e[K.V_STEP]),
            "shortfall_bps": float(e[K.V_COST_PREV] * 1e4 / (Q * mid0)) if mid0 > 0 else 0.0,
            "episode_return": float(e[K.V_RET]), "completion": done / Q, "shares_executed": done,
            "passive_shares": float(a[bk.A_PASSIVE_QTY]), "aggressive_shares": float(a[bk.A_AGGR_QTY] - e[K.V_FORCED]),
            "forced_shares": float(e[K.V_FORCED]), "forced_beyond_book_shares": float(e[K.V_FORCED_BEYOND]),
            "vwap": float(abs(a[bk.A_CASH]) * tick / traded) if traded else 0.0, "arrival_price": float(mid0 * tick)}


@pytest.mark.parametrize("family", ["mm", "exec"])
def test_tick_episode_tables_equal_the_scalar_formulas(family):
    """The tick envs' EpisodeStats tables give, value and type, what the scalar formulas give, on
    episodes of the real tape (replay world) with fills of both kinds."""
    from gymnasium.vector.utils import batch_space

    from lobworld.envs.tick import TickExecutionCore, TickMarketMakingCore
    n = 6
    if family == "mm":
        core, ref = TickMarketMakingCore(n, horizon=20), _tick_mm_reference
    else:
        core, ref = TickExecutionCore(n, horizon=20, quantity=500), _tick_exec_reference
    core.seed_rows(range(n), list(range(n)))
    core.reset()
    space = batch_space(core.single_action_space, n)
    space.seed(3)
    checked = 0
    for _ in range(45):
        core.step(space.sample(), True)
        done = np.flatnonzero(core.terminated | core.truncated)
        if not len(done):
            continue
        keys, cols = core.episode_columns(done)
        for j, i in enumerate(done):
            want = ref(core, int(i))
            got = core.episode_info(int(i))
            assert list(got) == list(want) == list(keys)
            for k in keys:
                assert got[k] == want[k] and type(got[k]) is type(want[k]), k
                assert cols[keys.index(k)][j] == want[k], k
            checked += 1
    assert checked >= 2 * n
    assert any(core.episode_info(i)["passive_shares" if family == "exec" else "fills"] > 0 for i in range(n))


def test_plain_columns_gathered_together_equal_their_getters():
    """The planned gather (one fancy index per table and dtype for ``column`` entries) gives what each
    entry's own getter gives, for any subset of envs, in final_info and in the per-env columns."""
    rng = np.random.default_rng(5)
    core = _Core()
    core.ep_done = rng.normal(size=(50, 6)) * 10
    core.acct = rng.normal(size=(50, 2))
    planned = EpisodeStats(column("a", 4), column("n", 1, kind=int), column("cash", 1, table="acct"),
                           Stat("ratio", lambda rows: rows["ep_done"][:, 0] / 2.0), column("b", 0),
                           column("flag", 3, kind=bool), column("m", 5, kind=int))
    plain = EpisodeStats(*(Stat(s.name, s.get, s.kind) for s in planned.stats))  # no source: getters only
    assert all(s.source is None for s in plain.stats) and planned.stats[0].source == ("ep_done", 4)
    for idx in (np.array([3]), np.sort(rng.choice(50, 17, replace=False)), np.arange(50)):
        for x, y in zip(planned.columns(core, idx), plain.columns(core, idx)):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        fa, fb = planned.final_info(core, idx, 50), plain.final_info(core, idx, 50)
        assert list(fa) == list(fb)
        for k in fa:
            assert fa[k].dtype == fb[k].dtype
            np.testing.assert_array_equal(fa[k], fb[k])
    np.testing.assert_array_equal(planned.columns(core, [7])[1], [int(core.ep_done[7, 1])])

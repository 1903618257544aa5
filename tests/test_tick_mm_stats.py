"""Adverse selection and queue wait of the tick market-making env, recomputed from the fill log and the
decision-boundary mids on the replay world."""

import numpy as np
import pytest

import lobworld  # noqa: F401
from lobworld.envs import book_kernels as bk
from lobworld.envs.tick import TickMarketMakingCore


def test_adverse_selection_and_queue_wait_from_the_fill_log():
    H = 240
    core = TickMarketMakingCore(n_envs=2, horizon=H, start="10:20:00", inventory_limit=1e4, max_size=100.0,
                                latency=["colocated", "retail"])
    core.seed_rows(range(2), [3, 4])
    core.reset()
    b = core.book

    def mid():
        return 0.5 * (b.px[:, 0, 0] + b.px[:, 1, 0])

    mids, nfill = [mid()], [np.zeros(2, np.int64)]
    live_t = {}  # (env, fill row) -> the order's live time when the fill happened
    for _ in range(H):
        core.step(np.tile(np.array([0, 0, 100, 100, 0, 0], np.float32), (2, 1)), autoreset=False)
        mids.append(mid())
        n = b.es[:, bk.ES_NFILL].copy()
        for i in range(2):
            for r in range(nfill[-1][i], n[i]):
                live_t[i, r] = b.orders[i, b.fills[i, r, bk.F_SLOT], bk.O_T_LIVE]
        nfill.append(n)
    assert core.truncated.all()
    for i in range(2):
        adverse = wait = shares = 0.0
        for j in range(1, H + 1):
            dm = mids[j][i] - mids[j - 1][i]
            for r in range(nfill[j - 1][i], nfill[j][i]):
                f = b.fills[i, r]
                if f[bk.F_KIND] != bk.FILL_PASSIVE:
                    continue
                q = f[bk.F_QTY]
                adverse += -dm * q if f[bk.F_SIDE] == bk.BID else dm * q
                wait += max(f[bk.F_T] - live_t[i, r], 0) * q
                shares += q
        info = core.episode_info(i)
        assert shares > 0 and shares == info["passive_shares"]  # every fill of the quotes is passive here
        assert info["adverse_selection_usd"] == pytest.approx(adverse * 0.01, rel=1e-12)
        assert info["adverse_selection_ticks"] == pytest.approx(adverse / shares, rel=1e-12)
        assert info["queue_wait_s"] == pytest.approx(wait / shares * 1e-9, rel=1e-12)
        assert 0 < info["queue_wait_s"] < H

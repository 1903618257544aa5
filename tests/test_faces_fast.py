"""The faces' fast paths give exactly what their reference paths give."""

from __future__ import annotations

import numpy as np
import pytest

from lobworld.envs.core import ActionError
from lobworld.envs.market_making import MarketMakingCore


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
        for j, i in enumerate(done):
            ref = core.episode_info(int(i))
            assert list(keys) == list(ref)
            for k, col in zip(keys, cols):
                assert col[j] == ref[k] and type(col[j]) is type(ref[k]), k
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

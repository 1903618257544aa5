"""Queue-position model of the market-making env, by hand.

Setting: constant mid 100.00, spread 2 ticks (best bid 99.99, best ask 100.01),
every market order exactly 100 shares and reaching the touch (A huge), no
cancellations ahead, no latency. Only buy market orders (they lift asks).
"""

import numpy as np
import pytest

from lobworld.envs import market_making_kernels as K
from lobworld.envs.dynamics import ParametricParams
from lobworld.envs.market_making import MarketMakingConfig, MarketMakingCore
from lobworld.world_models.arrivals import PoissonParams


def _core(queue_init=300.0, dt=0.05, rate=5.0, discrete=False, spread=0.02, **kw):
    dyn = ParametricParams(s0=100.0, sigma=0.0, spread=spread, spread_logsd=0.0)
    base = dict(dynamics=dyn, latency="none", mo_impact=0.0, queue_cancel_rate=0.0,
                queue_join_rate=0.0, inventory_limit=1e9, horizon=100_000, dt=dt,
                mo_size_fixed=True, mo_size=100.0, fill_A=1e9, queue_init=queue_init,
                poisson=PoissonParams(rate=(rate, 1e-9)), discrete_size=200.0,
                discrete_offsets=(1.0, 2.0))
    cfg = MarketMakingConfig(**{**base, **kw})
    core = MarketMakingCore(1, cfg, discrete=discrete)
    core.seed_rows([0], [3])
    core.reset()
    return core


def _buy_volume(core):
    return core.ep[0, K.E_VMO_BUY]


def test_quote_behind_300_shares_fills_only_after_300_trade():
    core = _core()
    ask = np.array([[0.0, 1.0, 0.0, 200.0]])  # ask at 100.01 = the touch, 200 shares
    filled = 0.0
    steps = 0
    while filled < 200.0:
        core.step(ask, autoreset=False)
        steps += 1
        filled += core.fills[0, K.F_AQ]
        v = _buy_volume(core)
        # exactly: fills = min(200, traded volume - 300), all at 100.01
        assert filled == min(200.0, max(0.0, v - 300.0))
        q = core.quotes(0)["ask"]
        if filled < 200.0:
            assert q["queue_ahead"] == max(0.0, 300.0 - v)
            assert core.obs[0, K.O_QASK] == pytest.approx(max(0.0, 300.0 - v) / 300.0)
    assert core.fills[0, K.F_AN] == pytest.approx(core.fills[0, K.F_AQ] * 100.01)
    assert steps > 3 and core.inventory[0] == -200.0


def test_kept_quote_keeps_its_place_moved_quote_goes_to_the_back():
    core = _core()
    at_touch = np.array([[0.0, 1.0, 0.0, 200.0]])
    behind = np.array([[0.0, 2.0, 0.0, 200.0]])  # 100.02: an existing level behind the touch
    # keep the same quote until at least 100 but fewer than 300 shares have traded
    while _buy_volume(core) < 100.0:
        core.step(at_touch, autoreset=False)
    v1 = _buy_volume(core)
    assert v1 < 300.0, "seed gave a burst; pick another seed"
    ahead = core.quotes(0)["ask"]["queue_ahead"]
    assert ahead == 300.0 - v1
    # re-sending the same action is a kept quote: same place in the queue (minus this step's volume)
    core.step(at_touch, autoreset=False)
    v2 = _buy_volume(core)
    assert v2 < 300.0, "seed gave a burst; pick another seed"
    assert core.fills[0, K.F_AQ] == 0.0
    assert core.quotes(0)["ask"]["queue_ahead"] == ahead - (v2 - v1)
    # moving the quote to 100.02 puts it at the back of that level's queue: 300 shares ahead again
    core.step(behind, autoreset=False)
    v3 = _buy_volume(core)
    assert core.quotes(0)["ask"]["price"] == pytest.approx(100.02)
    assert core.quotes(0)["ask"]["queue_ahead"] == max(0.0, 300.0 - (v3 - v2))
    filled = core.fills[0, K.F_AQ]
    assert filled == min(200.0, max(0.0, (v3 - v2) - 300.0))


def test_discrete_hold_keeps_place_even_when_requote_would_move():
    core = _core(discrete=True)
    # action 2 = (bid offset 2, ask offset 1): bid 99.98, ask 100.01, 200 shares each
    core.step(np.array([2]), autoreset=False)
    v0 = _buy_volume(core)
    q0 = core.quotes(0)["ask"]
    assert q0["live"] and q0["price"] == pytest.approx(100.01) and q0["queue_ahead"] == max(0.0, 300.0 - v0)
    hold = 5  # 2*2 grid + cancel (4) + hold (5)
    for _ in range(3):
        core.step(np.array([hold]), autoreset=False)
    v1 = _buy_volume(core)
    q1 = core.quotes(0)["ask"]
    filled = 200.0 - q1["size"] if q1["live"] else 200.0
    assert filled == min(200.0, max(0.0, v1 - 300.0))
    core.step(np.array([4]), autoreset=False)  # cancel all
    assert not core.quotes(0)["ask"]["live"] and not core.quotes(0)["bid"]["live"]
    assert core.obs[0, K.O_QASK] == -1.0 and core.obs[0, K.O_QBID] == -1.0


def test_quote_improving_the_touch_has_nobody_ahead():
    # spread 4 ticks: best ask 100.02; ask offset 1 -> 100.01 improves the touch
    core = _core(spread=0.04)
    core.step(np.array([[0.0, 1.0, 0.0, 100.0]]), autoreset=False)
    if _buy_volume(core) > 0:
        assert core.fills[0, K.F_AQ] == 100.0  # the first 100-share order fills us entirely
    else:
        assert core.quotes(0)["ask"]["queue_ahead"] == 0.0


def test_cancellations_deplete_the_queue_ahead():
    core = _core(rate=1e-9, queue_cancel_rate=0.5, dt=1.0)
    core.step(np.array([[0.0, 1.0, 0.0, 100.0]]), autoreset=False)
    assert core.quotes(0)["ask"]["queue_ahead"] == pytest.approx(300.0 * np.exp(-0.5))
    core.step(np.array([[0.0, 1.0, 0.0, 100.0]]), autoreset=False)  # kept
    assert core.quotes(0)["ask"]["queue_ahead"] == pytest.approx(300.0 * np.exp(-1.0))


def test_post_only_never_crosses_the_opposite_touch():
    core = _core(rate=1e-9)
    core.step(np.array([[-40.0, -40.0, 100.0, 100.0]]), autoreset=False)  # both offsets through the mid
    q = core.quotes(0)
    assert q["bid"]["price"] == pytest.approx(100.00)  # best ask 100.01 - 1 tick
    assert q["ask"]["price"] == pytest.approx(100.00)  # best bid 99.99 + 1 tick
    assert q["bid"]["queue_ahead"] == 0.0 and q["ask"]["queue_ahead"] == 0.0

"""The learned tick world's batch engine (lobworld.world_models.tick_gru_batch) against the per-env kernels.

With a quoting and trading agent active (agent tokens on), the lockstep engine gives the same message
logs, world counters, books, agent orders, fills, accounts, observations, rewards and random streams as
``gru_advance`` / ``gru_advance_events`` (float64: the GRU states agree to rounding), with every product
batched (``batch_tail=0``, ``prange`` logic passes) and with a per-env tail (serial passes); switching engines mid-episode changes nothing; the
tracked predictive probabilities agree; bad arguments are named.
"""

import numpy as np
import pytest

import lobworld  # noqa: F401  (registers world="learned")
from lobworld.envs.tick import ReplayWorld, TickExecutionCore, TickMarketMakingCore
from lobworld.world_models import tick_gru_world as G
from lobworld.world_models.tick_gru_world import BATCH_MIN_ENVS, TickGRUWorld, TickGRUWorldError, _weights
from vec_contract import batch_actions


def _world(**kw):
    return TickGRUWorld(_weights("GOOG"), ReplayWorld.from_path(None).data, record=600, **kw)


def _state(core, world):
    b = core.book
    return {"px": b.px, "sz": b.sz, "nl": b.nl, "orders": b.orders, "acct": b.acct, "fills": b.fills, "es": b.es,
            "cnt": b.cnt, "book_rng": b.rng, "wcnt": world.wcnt, "log": world.log, "nlog": world.nlog,
            "wrng": world.wrng, "si": world.si, "x": world.x}


def _trace(world, n=64, steps=12, family="mm", events=0, engines=None, empty_bids=False):
    """Observations, rewards and the final state of ``n`` envs under random actions (quotes and market
    orders), autoreset on; ``engines[k]`` (optional) the world's engine at step k; ``empty_bids``: the
    even envs start with no bid levels (cancels, deletes and executions drawn there are redrawn)."""
    kw = dict(n_envs=n, horizon=steps + 4, start="10:20:00", latency="proximity", world=world)
    if events:
        kw.update(decide_every="events", k_events=events)
    if family == "mm":
        core = TickMarketMakingCore(inventory_limit=1e4, max_size=300.0, **kw)
    else:
        core = TickExecutionCore(quantity=600, **kw)
    core.seed_rows(range(n), [300 + i for i in range(n)])
    core.reset()
    if empty_bids:
        core.book.nl[::2, 0] = 0
    out = [core.obs.copy()]
    for k, a in enumerate(batch_actions(core.single_action_space, n, steps, seed=7)):
        if engines is not None:
            world.engine = engines[k]
        core.step(a, autoreset=True)
        out += [core.obs.copy(), core.reward.copy(), core.time_ns.copy()]
    return out, {k: v.copy() for k, v in _state(core, world).items()}, world.h.copy()


def _assert_same(a, b):
    obs_a, st_a, h_a = a
    obs_b, st_b, h_b = b
    assert len(obs_a) == len(obs_b)
    for k, (x, y) in enumerate(zip(obs_a, obs_b)):
        np.testing.assert_array_equal(x, y, err_msg=f"trace item {k}")
    for k in st_a:
        np.testing.assert_array_equal(st_a[k], st_b[k], err_msg=k)
    np.testing.assert_allclose(h_a, h_b, rtol=0, atol=1e-12)  # summation order only


@pytest.mark.slow
@pytest.mark.parametrize("tail, parallel", [(0, None), (16, False)])
def test_batch_advance_equals_per_env_kernels(tail, parallel):
    ref = _trace(_world(engine="env"), empty_bids=True)
    got = _trace(_world(engine="batch", batch_tail=tail, parallel=parallel), empty_bids=True)
    _assert_same(ref, got)
    tot = ref[1]["wcnt"].sum(0)
    # the comparison covered real work: every env generated a stream, the agent was fed back as
    # tokens, executions met the agent first, impossible draws were redrawn
    assert ref[1]["nlog"].min() > 5 and tot[G.W_MSGS] > 64 * 12
    assert tot[G.W_AGENT_TOKENS] > 100 and tot[G.W_AGENT_FIRST] > 0 and tot[G.W_REDRAW] > 0
    assert (ref[1]["fills"] != 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mm", "ex"])
def test_batch_advance_events_equals_per_env_kernels(family):
    ref = _trace(_world(engine="env"), n=32, steps=10, family=family, events=15)
    got = _trace(_world(engine="batch", batch_tail=4), n=32, steps=10, family=family, events=15)
    _assert_same(ref, got)
    ev = ref[1]["wcnt"][:, G.W_SUBMIT:G.W_HIDDEN + 1].sum()
    assert ev >= 32 * 15  # at least one full interval per env


@pytest.mark.slow
def test_switching_engines_mid_episode_changes_nothing():
    """A pending draw made by one engine is finished by the other (the batch engine rebuilds its head
    cache from the GRU states)."""
    ref = _trace(_world(engine="env"), n=24, steps=12)
    got = _trace(_world(engine="batch", batch_tail=0), n=24, steps=12, engines=["env"] * 3 + ["batch"] * 4
                 + ["env"] * 2 + ["batch"] * 3)
    _assert_same(ref, got)


@pytest.mark.slow
def test_tracked_probabilities_agree():
    ref_w, got_w = _world(engine="env", track=True), _world(engine="batch", batch_tail=0, track=True)
    ref = _trace(ref_w, n=16, steps=8)
    got = _trace(got_w, n=16, steps=8)
    _assert_same(ref, got)
    np.testing.assert_array_equal(ref_w.wfirst, got_w.wfirst)
    np.testing.assert_allclose(ref_w.wprob, got_w.wprob, rtol=1e-12)
    assert ref_w.wfirst.sum() > 16 * 8
    # the expected counts are the drawn first tries' counts on average (one number per env: sums)
    np.testing.assert_allclose(got_w.wprob.sum(1), got_w.wfirst.sum(1), rtol=1e-9)


def test_engine_selection_and_bad_arguments():
    assert _world().engine == "env" and not _world().uses_batch(10 ** 6)  # the per-env kernels by default
    w = _world(engine="auto")
    assert not w.uses_batch(BATCH_MIN_ENVS - 1) and w.uses_batch(BATCH_MIN_ENVS)
    assert _world(engine="batch").uses_batch(1) and not _world(engine="env").uses_batch(10 ** 6)
    with pytest.raises(TickGRUWorldError, match="engine: must be 'auto', 'batch' or 'env', got 'gpu'"):
        _world(engine="gpu")
    for bad in (-1, 2.5, True):
        with pytest.raises(TickGRUWorldError, match="batch_tail: must be an int >= 0"):
            _world(batch_tail=bad)

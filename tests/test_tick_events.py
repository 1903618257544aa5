"""Decisions every k market events (``decide_every="events"``) on the replay world: the decision times
are the times of every k-th real message of the LOBSTER file, read here from the file itself. The
generated worlds' form (``advance_events``) is tested in ``tests/test_tick_events_generated.py``."""

import gzip

import numpy as np
import pytest

import lobworld  # noqa: F401  (registers the ids and the parametric tick world)
from lobworld.envs.core import EnvConfigError
from lobworld.envs.tick import ReplayWorld, TickExecutionCore, TickMarketMakingCore, TickWindowError, obs_names
from lobworld.world_models.data.lobster import sample_lobster_paths


def _file_times_ns():
    """Message times of the shipped GOOG hour, ns after midnight, parsed from the text (no float)."""
    out = []
    with gzip.open(sample_lobster_paths()[0], "rt") as f:
        for line in f:
            a, _, b = line.split(",")[0].partition(".")
            out.append(int(a) * 10**9 + int(b.ljust(9, "0")))
    return np.array(out, np.int64)


@pytest.mark.parametrize("k", [1, 7, 250])
def test_decision_times_are_every_kth_real_message(k):
    secs = _file_times_ns()
    H = 6
    core = TickMarketMakingCore(n_envs=2, horizon=H, start="10:30:00", decide_every="events", k_events=k,
                                latency=["colocated", "retail"])
    core.seed_rows(range(2), [1, 2])
    core.reset()
    r0 = np.searchsorted(secs, (10 * 3600 + 1800) * 10**9, side="right")  # the first message after 10:30:00
    msgs = obs_names(core.n_levels, "inventory").index("messages")
    times, counts = [], []
    for _ in range(H):
        core.step(np.tile(np.array([0, 0, 100, 100, 0, 0], np.float32), (2, 1)), autoreset=False)
        times.append(core.time_ns - core._midnight_ns)
        counts.append(core.obs[:, msgs] * 100)
    times = np.array(times)
    # the decision follows the k-th message: the clock is one ns past its time, for both latencies
    expected = secs[r0 + k * np.arange(1, H + 1) - 1] + 1
    np.testing.assert_array_equal(times, np.stack([expected, expected], axis=1))
    # the messages of each interval: the k, plus any later one at the same ns as the k-th
    edges = np.concatenate([[secs[r0 - 1] + 1], expected])
    n_in = np.searchsorted(secs, edges[1:], side="left") - np.searchsorted(secs, edges[:-1], side="left")
    np.testing.assert_allclose(np.array(counts)[:, 0], n_in, atol=1e-3)
    assert (n_in >= k).all()


def test_execution_decides_every_k_events_and_completes_q():
    core = TickExecutionCore(n_envs=3, horizon=5, quantity=500, decide_every="events", k_events=40)
    core.seed_rows(range(3), [4, 5, 6])
    core.reset()
    t_prev = core.time_ns
    for _ in range(5):
        core.step(np.tile(np.array([0.2, 0.0, 0.0], np.float32), (3, 1)), autoreset=False)
        assert (core.time_ns > t_prev).all()
        t_prev = core.time_ns
    assert core.terminated.all() and all(core.episode_info(i)["shares_executed"] == 500 for i in range(3))


def test_the_inventory_penalty_uses_the_event_interval():
    kw = dict(horizon=3, start="10:30:00", decide_every="events", k_events=50, phi=1e-4, inventory_limit=1e5,
              max_size=500.0)
    runs = {}
    for phi in (0.0, 1e-4):
        core = TickMarketMakingCore(n_envs=1, **{**kw, "phi": phi})
        core.seed_rows([0], [3])
        core.reset()
        out = []
        for _ in range(3):
            t0 = core.time_ns[0]
            core.step(np.array([[-5, -5, 500, 500, 0, 0]], np.float32), autoreset=False)
            out.append((core.reward[0], core.inventory[0], (core.time_ns[0] - t0) * 1e-9))
        runs[phi] = out
    for (r0, q, _), (r1, q1, el) in zip(runs[0.0], runs[1e-4]):
        assert q == q1
        assert r0 - r1 == pytest.approx(1e-4 * q * q * el, rel=1e-9, abs=1e-12)


class _BareWorld:
    """The replay world without either form of the optional events interface."""

    name = "bare"

    def __init__(self):
        self._w = ReplayWorld.from_path(None)
        self.tick_size, self.levels = self._w.tick_size, self._w.levels

    def bounds(self):
        return self._w.bounds()

    def book_config(self, base):
        return self._w.book_config(base)

    def reset_rows(self, book, envs, t0):
        self._w.reset_rows(book, envs, t0)

    def advance(self, book, until):
        self._w.advance(book, until)


def test_event_decisions_need_a_world_with_message_times_and_a_window_that_fits():
    with pytest.raises(EnvConfigError, match="decide_every 'events'.*'bare'.*neither event_until"):
        TickMarketMakingCore(n_envs=1, world=_BareWorld(), decide_every="events")
    TickMarketMakingCore(n_envs=1, world=_BareWorld(), decide_every="dt")  # a plain world still runs on dt
    with pytest.raises(EnvConfigError, match="decide_every must be 'dt' or 'events'"):
        TickMarketMakingCore(n_envs=1, decide_every="ticks")
    with pytest.raises(EnvConfigError, match="k_events"):
        TickMarketMakingCore(n_envs=1, decide_every="events", k_events=0)
    with pytest.raises(TickWindowError, match="messages"):
        TickMarketMakingCore(n_envs=1, decide_every="events", k_events=1000, horizon=100)
    with pytest.raises(TickWindowError, match="fewer than"):
        TickMarketMakingCore(n_envs=1, decide_every="events", k_events=100, horizon=100, start="10:59:00")

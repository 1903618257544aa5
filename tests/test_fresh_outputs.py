"""The faces hand the step's own new output arrays to the caller (``BatchedCore.step_fresh``).

Every core that sets ``fresh_outputs`` must write every row of ``obs``, ``reward``, ``terminated`` and
``truncated`` in a step with autoreset and read none of them. Checked for every registered id: a core
whose new arrays start filled with sentinels (NaN and True, then -1e30 and False) steps exactly as a
core of the same seeds through the reused, copied buffers, over enough steps for episodes to end and
reset. The faces' returned arrays are never written again by later steps, and a refused action batch
leaves the core's arrays as they were.
"""

import gymnasium as gym
import numpy as np
import pytest

import lobworld
from lobworld.envs.core import ActionError, BatchedCore, make_sb3_vec_env

N = 6
#: steps per id: enough for episodes to end (and autoreset) on the short-horizon settings below
STEPS = 40
#: settings that make episodes end within STEPS on every id (the tick ids on the shipped hour's tape,
#: whose first-reset compile is the cheapest)
KW = {"LOB-Execution-v0": {"horizon": 7}, "LOB-VWAP-v0": {"horizon": 7}, "LOB-TWAP-v0": {"horizon": 7},
      "LOB-MarketMaking-v0": {"horizon": 9}, "LOB-MarketMaking-Discrete-v0": {"horizon": 9},
      "LOB-DarkPool-v0": {"horizon": 8},
      "LOB-TickMarketMaking-v0": {"world": "replay", "horizon": 9},
      "LOB-TickExecution-v0": {"world": "replay", "horizon": 9}}


class _Sentinel:
    """``_new_output`` that fills the new arrays: floats with ``f``, bools with ``b``."""

    def __init__(self, f, b):
        self.f, self.b = f, b

    def __call__(self, a):
        return np.full_like(a, self.b if a.dtype == np.bool_ else self.f)


def _core(env_id, seed=11, **overrides):
    core = make_sb3_vec_env(env_id, n_envs=N, **{**KW[env_id], **overrides}).core
    core.seed_rows(range(N), [seed + i for i in range(N)])
    core.reset()
    return core


def test_every_registered_core_sets_fresh_outputs():
    assert set(KW) == set(lobworld.ENV_IDS)
    assert BatchedCore.fresh_outputs is False  # a new core copies until it is checked here
    for env_id in lobworld.ENV_IDS:
        assert _core(env_id).fresh_outputs, env_id


def _check_against_copying(env_id, ref, fresh):
    """Step ``ref`` (reused buffers) and each core of ``fresh`` (``step_fresh``) with the same random
    actions; every output equal, exactly."""
    space = ref.single_action_space
    space.seed(5)
    ended = 0
    for _ in range(STEPS):
        act = np.stack([space.sample() for _ in range(N)])
        ref.step(act, autoreset=True)
        want = [x.copy() for x in (ref.obs, ref.reward, ref.terminated, ref.truncated)]
        ended += int((ref.terminated | ref.truncated).sum())
        for c in fresh:
            assert c.step_fresh(act) is True
            got = (c.obs, c.reward, c.terminated, c.truncated)
            for w, g in zip(want, got):
                np.testing.assert_array_equal(g, w)  # exact, and no sentinel left (NaN != NaN would fail)
    assert ended > 0, f"{env_id}: no episode ended in {STEPS} steps; the autoreset rows were not checked"


def test_the_check_fails_for_a_step_that_leaves_a_row_unwritten():
    """A step that keeps row 0 of ``obs`` as it found it (as a kernel skipping a row would) is caught."""
    ref, c = _core("LOB-Execution-v0"), _core("LOB-Execution-v0")
    step_rows = c._step_rows

    def skip_row0(actions, autoreset):
        keep = c.obs[0].copy()
        step_rows(actions, autoreset)
        c.obs[0] = keep

    c._step_rows = skip_row0
    c._new_output = _Sentinel(np.nan, True)
    with pytest.raises(AssertionError):
        _check_against_copying("LOB-Execution-v0", ref, [c])


@pytest.mark.parametrize("env_id", sorted(KW))
def test_fresh_outputs_equal_the_copying_path_from_sentinels(env_id):
    ref = _core(env_id)
    fresh = [_core(env_id), _core(env_id)]
    fresh[0]._new_output = _Sentinel(np.nan, True)
    fresh[1]._new_output = _Sentinel(-1e30, False)
    _check_against_copying(env_id, ref, fresh)


def test_gymnasium_and_sb3_faces_return_arrays_no_later_step_writes():
    env_id = "LOB-Execution-v0"
    venv = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **KW[env_id])
    venv.reset(seed=3)
    act = np.full((N, 1), 0.2, np.float32)
    first = venv.step(act)
    kept = [np.array(x, copy=True) for x in first[:4]]
    for _ in range(12):  # episodes end and reset in between
        venv.step(act)
    for k, x in zip(kept, first[:4]):
        np.testing.assert_array_equal(x, k)
    sb3 = make_sb3_vec_env(env_id, n_envs=N, seed=3, **KW[env_id])
    o0 = sb3.reset()
    sb3.step_async(act)
    o1, r1, d1, _ = sb3.step_wait()
    k1 = o1.copy()
    for _ in range(12):
        sb3.step_async(act)
        sb3.step_wait()
    np.testing.assert_array_equal(o1, k1)
    assert o0 is not o1


def test_refused_actions_leave_the_outputs_as_they_were():
    core = _core("LOB-Execution-v0")
    core.step_fresh(np.full((N, 1), 0.3))
    before = [(x, x.copy()) for x in (core.obs, core.reward, core.terminated, core.truncated)]
    bad = np.full((N, 1), 0.3)
    bad[2, 0] = np.nan
    with pytest.raises(ActionError):
        core.step_fresh(bad)
    for (arr, copy), now in zip(before, (core.obs, core.reward, core.terminated, core.truncated)):
        assert now is arr  # not swapped for a new, unwritten array
        np.testing.assert_array_equal(now, copy)


@pytest.mark.parametrize("world", ["learned", "parametric"])
@pytest.mark.parametrize("env_id", ["LOB-TickMarketMaking-v0", "LOB-TickExecution-v0"])
def test_tick_generated_worlds_write_fresh_outputs(env_id, world):
    """The tick ids on the generated worlds too (their ``advance`` differs from the tape's)."""
    ref, c = _core(env_id, world=world), _core(env_id, world=world)
    c._new_output = _Sentinel(np.nan, True)
    _check_against_copying(env_id, ref, [c])

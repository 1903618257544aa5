"""Shared helpers for the SB3 VecEnv contract tests."""

import numpy as np


def rollout(venv, seed, actions):
    """Seed ``venv``, reset it and step through ``actions``.

    Returns ``(observations, steps)``: the reset observation followed by each step's,
    and a ``(rewards, dones, infos)`` tuple per step.
    """
    venv.seed(seed)
    obs = [venv.reset()]
    steps = []
    for a in actions:
        o, r, d, infos = venv.step(a)
        obs.append(o)
        steps.append((r, d, infos))
    return obs, steps


def assert_matches_dummy(native, dummy, seed, actions, on_end=None, stop=None):
    """Step a native SB3 VecEnv and a ``DummyVecEnv`` over the single envs in lockstep.

    Both are seeded with ``seed`` and reset; then for every batch of ``actions``: identical
    observations, rewards (float32 on the native side) and dones (bool); for every env that
    ended, identical ``terminal_observation``, ``TimeLimit.truncated`` and every other info
    key, the same key set; for every other env an empty info dict. ``on_end(i, info, obs)``
    adds a test's own checks on an ended env (native info and observations); ``stop(t, ends)``
    returns True to stop after step ``t``. Returns the number of episode ends.
    """
    native.seed(seed)
    dummy.seed(seed)
    np.testing.assert_array_equal(native.reset(), dummy.reset())
    ends = 0
    for t, a in enumerate(actions):
        on, rn, dn, infn = native.step(a)
        od, rd, dd, infd = dummy.step(a)
        assert rn.dtype == np.float32 and dn.dtype == np.bool_ and rn.shape == (native.num_envs,)
        np.testing.assert_array_equal(on, od)
        np.testing.assert_array_equal(rn, rd)
        np.testing.assert_array_equal(dn, dd)
        for i in range(native.num_envs):
            if dd[i]:
                ends += 1
                assert infn[i].keys() == infd[i].keys()
                for k, v in infd[i].items():
                    np.testing.assert_array_equal(infn[i][k], v, err_msg=k)
                if on_end is not None:
                    on_end(i, infn[i], on)
            else:
                assert infn[i] == {}
        if stop is not None and stop(t, ends):
            break
    return ends

"""Shared helpers for the vector-face contract tests: lockstep comparisons of the native faces with
SB3's ``DummyVecEnv`` and Gymnasium's ``SyncVectorEnv`` over the single envs."""

import numpy as np
from gymnasium import spaces


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


def batch_actions(space, n, steps, seed=0, end_frac=0.1):
    """``steps`` batches of ``n`` valid actions of the per-env ``space`` (Discrete or Box); in a Box,
    about ``end_frac`` of the rows are the upper bound (in the lobworld execution envs: finish now)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        if isinstance(space, spaces.Discrete):
            out.append(rng.integers(space.start, space.start + space.n, size=n))
        elif isinstance(space, spaces.Box):
            lo = np.where(np.isfinite(space.low), space.low, -1.0)
            hi = np.where(np.isfinite(space.high), space.high, 1.0)
            a = rng.uniform(lo, hi, size=(n, *space.shape)).astype(space.dtype)
            a[rng.uniform(size=n) < end_frac] = hi.astype(space.dtype)
            out.append(np.clip(a, space.low, space.high))
        else:  # pragma: no cover
            raise NotImplementedError(type(space))
    return out


def assert_infos_equal(got, want, path="infos"):
    """Gymnasium vector infos ``got`` equal ``want`` exactly: the same keys (masks included) at every
    level, arrays of the same dtype and shape and equal values; object arrays (``final_obs``)
    element by element (``None`` where absent)."""
    assert isinstance(got, dict), f"{path}: expected a dict, got {type(got).__name__}"
    assert got.keys() == want.keys(), f"{path}: keys {sorted(got)} != {sorted(want)}"
    for k, w in want.items():
        g = got[k]
        where = f"{path}[{k!r}]"
        if isinstance(w, dict):
            assert_infos_equal(g, w, where)
            continue
        assert isinstance(g, np.ndarray) and isinstance(w, np.ndarray), where
        assert g.dtype == w.dtype and g.shape == w.shape, f"{where}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
        if w.dtype == object:
            for j, (a, b) in enumerate(zip(g, w)):
                if b is None:
                    assert a is None, f"{where}[{j}]"
                else:
                    np.testing.assert_array_equal(a, b, err_msg=f"{where}[{j}]")
        else:
            np.testing.assert_array_equal(g, w, err_msg=where)


def assert_matches_sync(native, sync, seed, actions, stop=None):
    """Step a native Gymnasium vector env and a ``SyncVectorEnv`` (``autoreset_mode=SAME_STEP``) over
    the single envs in lockstep: after ``reset(seed=seed)`` identical observations and infos, then for
    every batch of ``actions`` identical observations, rewards, terminations, truncations (values and
    dtypes) and infos (:func:`assert_infos_equal`). ``stop(t, ends)`` returns True to stop after step
    ``t``. Returns the number of episode ends."""
    on, infn = native.reset(seed=seed)
    os_, infs = sync.reset(seed=seed)
    np.testing.assert_array_equal(on, os_)
    assert_infos_equal(infn, infs, "reset infos")
    ends = 0
    for t, a in enumerate(actions):
        got = native.step(a)
        want = sync.step(a)
        for name, g, w in zip(("obs", "reward", "terminated", "truncated"), got[:4], want[:4]):
            assert g.dtype == w.dtype and g.shape == w.shape, f"step {t} {name}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
            np.testing.assert_array_equal(g, w, err_msg=f"step {t} {name}")
        assert_infos_equal(got[4], want[4], f"step {t} infos")
        ends += int(np.sum(want[2] | want[3]))
        if stop is not None and stop(t, ends):
            break
    return ends

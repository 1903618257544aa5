"""Generic contract tests for every registered lobworld id (parametrized over lobworld.ENV_IDS).

For each id: Gymnasium and SB3 ``check_env`` on the single env, the native Gymnasium vector
env, the native SB3 VecEnv against ``DummyVecEnv`` over the single env (identical outputs,
autoreset, ``terminal_observation``, ``TimeLimit.truncated``), seed semantics, the
attribute API, bit-identical determinism, and batch env i == single env seeded s + i.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld
from lobworld.envs import make_sb3_vec_env
from vec_contract import assert_matches_dummy, rollout

ENV_IDS = list(lobworld.ENV_IDS)
N = 3
STEPS = 90
MAX_STEPS = 5000  # rollouts that need an episode end go on until one ended (or this cap)


def _short(env_id):
    """``{"horizon": 40}`` when the id takes that argument (every lobworld env does, by
    convention), so the rollouts below see several episode ends quickly; ``{}`` otherwise."""
    try:
        gym.make(env_id, horizon=40)
    except (TypeError, ValueError):
        return {}
    return {"horizon": 40}


def _actions(space, n, steps, seed=0):
    """``steps`` batches of ``n`` valid actions of ``space`` (a per-env space)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        if isinstance(space, spaces.Discrete):
            out.append(rng.integers(space.start, space.start + space.n, size=n))
        elif isinstance(space, spaces.Box):
            lo = np.where(np.isfinite(space.low), space.low, -1.0)
            hi = np.where(np.isfinite(space.high), space.high, 1.0)
            a = rng.uniform(lo, hi, size=(n, *space.shape)).astype(space.dtype)
            a[rng.uniform(size=n) < 0.1] = hi.astype(space.dtype)  # end some episodes early
            out.append(np.clip(a, space.low, space.high))
        else:  # pragma: no cover
            raise NotImplementedError(type(space))
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_passes_checkers(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_vector_entry_point_steps(env_id):
    venv = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    obs, info = venv.reset(seed=0)
    assert obs.shape == (4, *venv.single_observation_space.shape)
    assert obs.dtype == venv.single_observation_space.dtype
    ended = 0
    for a in _actions(venv.single_action_space, 4, STEPS):
        obs, r, term, trunc, infos = venv.step(a)
        assert obs.shape[0] == 4 and r.shape == (4,) and term.dtype == np.bool_ and trunc.dtype == np.bool_
        assert np.all(np.isfinite(r)) and np.all(np.isfinite(obs))
        assert all(venv.single_observation_space.contains(o) for o in obs)
        done = term | trunc
        if done.any():
            ended += int(done.sum())
            assert np.array_equal(infos["_final_obs"], done)
            for i in np.flatnonzero(done):
                assert venv.single_observation_space.contains(infos["final_obs"][i])
                assert all(infos["final_info"]["_" + k][i] for k in infos["final_info"] if not k.startswith("_"))
        else:
            assert infos == {}
    venv.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_vecenv_matches_dummyvecenv(env_id):
    kw = _short(env_id)
    native = make_sb3_vec_env(env_id, n_envs=N, **kw)
    dummy = DummyVecEnv([lambda: gym.make(env_id, **kw) for _ in range(N)])
    ended = assert_matches_dummy(native, dummy, 17, _actions(native.action_space, N, MAX_STEPS),
                                 stop=lambda t, ends: ends >= N + 1 and t >= STEPS)
    assert ended >= 1, f"no episode ended in {MAX_STEPS} steps"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_seed_semantics_and_determinism(env_id):
    a = make_sb3_vec_env(env_id, n_envs=N)
    b = make_sb3_vec_env(env_id, n_envs=N, seed=5)
    seeds = a.seed(5)
    assert len(seeds) == N
    actions = _actions(a.action_space, N, STEPS, seed=1)
    obs_a, rest_a = rollout(a, 5, actions)
    obs_b, rest_b = rollout(b, 5, actions)  # seed() again with the same value
    for x, y in zip(obs_a, obs_b):
        np.testing.assert_array_equal(x, y)
    for (ra, da, _), (rb, db, _) in zip(rest_a, rest_b):
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
    # a different seed gives a different trajectory
    obs_c, rest_c = rollout(make_sb3_vec_env(env_id, n_envs=N), 6, actions)
    assert any(not np.array_equal(ra, rc) for (ra, _, _), (rc, _, _) in zip(rest_a, rest_c))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_attribute_api(env_id):
    venv = make_sb3_vec_env(env_id, n_envs=N, seed=0)
    venv.reset()
    assert venv.get_attr("n_envs") == [N] * N
    assert venv.get_attr("render_mode", indices=[0, 2]) == [None, None]
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute_xyz")
    venv.set_attr("lobworld_test_flag", 7)
    assert venv.get_attr("lobworld_test_flag", indices=1) == [7]
    assert venv.env_method("seed_rows", [0], [3]) == [None] * N  # a batch method: every env
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * N


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_batch_env_i_equals_single_env_seeded_s_plus_i(env_id):
    s = 40
    kw = _short(env_id)
    venv = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make(env_id, **kw) for _ in range(N)]
    obs, _ = venv.reset(seed=s)
    for i, e in enumerate(singles):
        np.testing.assert_array_equal(e.reset(seed=s + i)[0], obs[i])
    ended = 0
    for t, a in enumerate(_actions(venv.single_action_space, N, MAX_STEPS, seed=2)):
        obs, r, term, trunc, infos = venv.step(a)
        for i, e in enumerate(singles):
            o, ri, ti, ui, info = e.step(a[i])
            assert ri == pytest.approx(r[i], rel=0, abs=0) and ti == term[i] and ui == trunc[i]
            if ti or ui:
                ended += 1
                np.testing.assert_array_equal(o, infos["final_obs"][i])
                o, _ = e.reset()
            np.testing.assert_array_equal(o, obs[i])
        if ended >= N + 1 and t >= STEPS:
            break
    assert ended >= 1

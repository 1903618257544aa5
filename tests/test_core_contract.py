"""Contract tests of the three faces on a tiny exact env (tests/toy_core.py)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from lobworld.envs.core import ActionError, LOBSB3VecEnv
from toy_core import ToyCore, ToyEnv, ToyVectorEnv
from vec_contract import assert_matches_dummy


def test_single_env_passes_checkers():
    gym_check_env(ToyEnv(), skip_render_check=True)
    sb3_check_env(ToyEnv(), warn=False)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_sb3_vecenv_matches_dummyvecenv_exactly(n):
    rng = np.random.default_rng(0)
    actions = [rng.uniform(0, 1, (n, 1)).astype(np.float32) for _ in range(40)]
    def on_end(i, info, obs):
        assert info["episode_length"] == int(info["terminal_observation"][0])

    n_done = assert_matches_dummy(LOBSB3VecEnv(ToyCore(n_envs=n)), DummyVecEnv([lambda: ToyEnv() for _ in range(n)]),
                                  7, actions, on_end)
    assert n_done > n  # several episodes ended, both truncated and terminated kinds


def test_truncation_flag_and_terminal_observation():
    venv = LOBSB3VecEnv(ToyCore(n_envs=2, horizon=3, limit=1e9))
    venv.seed(0)
    venv.reset()
    for _ in range(2):
        _, _, d, _ = venv.step(np.zeros((2, 1), np.float32))
        assert not d.any()
    obs, _, d, infos = venv.step(np.zeros((2, 1), np.float32))
    assert d.all()
    for i in range(2):
        assert infos[i]["TimeLimit.truncated"] is True
        assert infos[i]["terminal_observation"][0] == 3.0
    assert (obs[:, 0] == 0).all()  # same-step reset


def test_termination_is_not_truncation():
    venv = LOBSB3VecEnv(ToyCore(n_envs=1, horizon=100, limit=-1e9))
    venv.reset()
    _, _, d, infos = venv.step(np.zeros((1, 1), np.float32))
    assert d[0] and infos[0]["TimeLimit.truncated"] is False


def test_attr_api():
    venv = LOBSB3VecEnv(ToyCore(n_envs=4))
    assert venv.get_attr("horizon") == [5] * 4
    assert venv.get_attr("horizon", indices=[1, 2]) == [5, 5]
    with pytest.raises(AttributeError):
        venv.get_attr("nope")
    venv.set_attr("horizon", 2)
    assert venv.get_attr("horizon") == [2] * 4
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    assert venv.env_method("episode_info", indices=[0]) == [{"episode_length": 0}]
    assert venv.get_attr("render_mode") == [None] * 4


def test_seed_applies_to_next_reset_only():
    venv = LOBSB3VecEnv(ToyCore(n_envs=2))
    assert venv.seed(3) == [3, 4]
    o1 = [venv.reset()] + [venv.step(np.full((2, 1), 0.5, np.float32))[0] for _ in range(3)]
    o2 = [venv.reset()] + [venv.step(np.full((2, 1), 0.5, np.float32))[0] for _ in range(3)]
    venv.seed(3)
    o3 = [venv.reset()] + [venv.step(np.full((2, 1), 0.5, np.float32))[0] for _ in range(3)]
    np.testing.assert_array_equal(np.array(o1), np.array(o3))
    assert not np.array_equal(np.array(o1), np.array(o2))


def test_batch_env_i_replays_single_env_seeded_s_plus_i():
    n, s = 4, 11
    vec = ToyVectorEnv(num_envs=n, horizon=1000, limit=1e9)
    vec.reset(seed=s)
    single = [ToyEnv(horizon=1000, limit=1e9) for _ in range(n)]
    for i, e in enumerate(single):
        e.reset(seed=s + i)
    for _ in range(10):
        a = np.full((n, 1), 0.25, np.float32)
        obs_v = vec.step(a)[0]
        obs_s = np.stack([e.step(a[i])[0] for i, e in enumerate(single)])
        np.testing.assert_array_equal(obs_v, obs_s)


def test_vector_env_same_step_autoreset_infos():
    vec = ToyVectorEnv(num_envs=3, horizon=2, limit=1e9)
    vec.reset(seed=0)
    vec.step(np.zeros((3, 1), np.float32))
    obs, rew, term, trunc, infos = vec.step(np.zeros((3, 1), np.float32))
    assert trunc.all() and not term.any()
    assert infos["_final_obs"].all()
    assert all(fo[0] == 2.0 for fo in infos["final_obs"])
    assert (obs[:, 0] == 0).all()
    assert infos["final_info"]["episode_length"][1] == 2 and infos["final_info"]["_episode_length"].all()


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.full((2, 1), np.nan), "not finite"),
        (np.full((2, 1), 1.5), "outside the action space"),
        (np.zeros((3, 1)), "shape"),
        (np.zeros((2,)), "shape"),
    ],
)
def test_bad_actions_raise_clear_errors_and_leave_state(bad, msg):
    core = ToyCore(n_envs=2)
    core.reset()
    before = core.total.copy()
    with pytest.raises(ActionError, match=msg):
        core.step(bad, autoreset=True)
    np.testing.assert_array_equal(core.total, before)


def test_single_env_refuses_step_after_episode_end():
    env = ToyEnv(horizon=1, limit=1e9)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))


def test_record_maker_builds_plain_dicts_and_rejects_bad_keys():
    from lobworld.envs.episode import record_maker

    make = record_maker(("a", "b c", "TimeLimit.truncated"))
    d1, d2 = make(1, 2.5, False), make(3, 4.5, True)
    assert d1 == {"a": 1, "b c": 2.5, "TimeLimit.truncated": False} and d2["a"] == 3
    d1["a"] = 9  # independent dicts
    assert d2["a"] == 3 and make(0, 0, 0)["a"] == 0
    with pytest.raises(ValueError, match="distinct"):
        record_maker(("a", "a"))


@pytest.mark.parametrize("env_id", ["LOB-Execution-v0", "LOB-VWAP-v0"])
def test_episode_columns_equal_episode_infos(env_id):
    """The faces' fast path (column form) gives exactly the dicts of episode_info."""
    from lobworld.envs import make_sb3_vec_env

    venv = make_sb3_vec_env(env_id, n_envs=6, seed=3, dynamics="parametric", horizon=4)
    venv.reset()
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(12):
        _, _, done, infos = venv.step(rng.uniform(0, 1, (6, 1)).astype(np.float32))
        for i in np.flatnonzero(done):
            ref = venv.core.episode_info(int(i))
            got = {k: v for k, v in infos[i].items() if k not in ("terminal_observation", "TimeLimit.truncated")}
            assert got == ref and type(got["episode_length"]) is int
            seen += 1
    assert seen >= 6

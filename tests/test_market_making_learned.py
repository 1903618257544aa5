"""Market making on the learned market (``dynamics="learned"``): contracts, determinism, dt errors.

The env runs at a dt that is a whole multiple of one installed model's bar (60 s
and 10 s, and 1 s since a 1-second model shipped); any other dt must fail at
construction with an error naming the dt, the bar lengths available and the fix.
The tests read the bar lengths from the loaded model instead of assuming them, so
they hold whichever models are installed (dt = 1 s is checked to fail only while no
1-second model is installed).
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld  # noqa: F401  (registers the ids)
from lobworld.envs import make_sb3_vec_env
from lobworld.envs.market_making import MarketMakingEnv

from vec_contract import assert_matches_dummy

# compiling the env's generic kernels around the learned model takes minutes of CPU on 2 cores
pytestmark = pytest.mark.slow

IDS = ["LOB-MarketMaking-v0", "LOB-MarketMaking-Discrete-v0"]
KW = dict(dynamics="learned", dt=10.0, horizon=12, latency="cloud", inventory_limit=300.0)


@pytest.fixture(scope="module")
def learned():
    try:
        from lobworld.envs.dynamics import make_dynamics
        return make_dynamics("learned")
    except (ValueError, FileNotFoundError) as exc:  # pragma: no cover - a checkout without the shipped models
        pytest.skip(f"learned dynamics unavailable: {exc}")


def _bars(dyn):
    return sorted(m[0].dt for m in dyn._models)


def _acts(env_id, n, steps, seed=0):
    rng = np.random.default_rng(seed)
    if "Discrete" in env_id:
        return [rng.integers(0, 11, size=n) for _ in range(steps)]
    return [(rng.uniform(0, 1, (n, 4)) * np.array([15, 15, 300, 300])).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_on_the_learned_market(learned, env_id):
    assert 10.0 in _bars(learned)
    env = gym.make(env_id, **KW)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **KW).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_vecenv_contract_on_the_learned_market(learned, env_id):
    n = 3
    acts = _acts(env_id, n, 26)
    dummy = DummyVecEnv([lambda: gym.make(env_id, **KW).unwrapped for _ in range(n)])
    native = make_sb3_vec_env(env_id, n_envs=n, **KW)
    def on_end(i, info, obs):
        assert "pnl" in info

    ends = assert_matches_dummy(native, dummy, 11, acts, on_end)
    assert ends >= n  # every env finished at least one 12-step episode and was reset in the same step


def test_same_seed_same_rollout_on_the_learned_market(learned):
    def roll(seed):
        env = MarketMakingEnv(**KW)
        out = [env.reset(seed=seed)[0]]
        for a in _acts("LOB-MarketMaking-v0", 1, 12, seed=2):
            o, r, te, tr, info = env.step(a[0])
            out.append(np.append(o, r))
            if te or tr:
                break
        return np.concatenate(out), info

    a, ia = roll(4)
    b, ib = roll(4)
    c, _ = roll(5)
    np.testing.assert_array_equal(a, b)
    assert ia == ib and "pnl" in ia
    assert not np.array_equal(a, c)
    # the mid moves: the learned market is live, not a constant
    env = MarketMakingEnv(**KW)
    env.reset(seed=0)
    mids = []
    for _ in range(10):
        env.step(np.zeros(4, np.float32))
        mids.append(env.core.mid[0])
    assert np.std(np.diff(mids)) > 0


def test_dt_not_a_multiple_of_a_bar_names_the_problem_and_the_fix(learned):
    bars = _bars(learned)
    bad = min(bars) / 2  # finer than every shipped bar (1 s today, with 10 s and 60 s bars)
    if min(bars) <= 1.0:
        bad = 0.5 * min(bars)
    with pytest.raises(ValueError) as err:
        MarketMakingEnv(dynamics="learned", dt=bad, horizon=5)
    msg = str(err.value)
    assert f"dt={bad}" in msg and "whole multiple" in msg
    for b in bars:
        assert f"{b:g}s" in msg
    assert "learned" in msg and "train" in msg  # the fix: another dt, or a model at a finer bar
    if 1.0 not in bars:
        with pytest.raises(ValueError, match="whole multiple"):
            MarketMakingEnv(dynamics="learned", dt=1.0, horizon=5)

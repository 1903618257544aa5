"""A tiny purpose-built batched env for exact contract tests of the faces.

State: a counter ``t`` and a running sum. Each step adds the action (Box [0, 1])
plus a standard normal draw to the sum; reward = the action; the episode is
terminated when the sum exceeds ``limit`` and truncated after ``horizon`` steps.
Observation: ``[t, sum]``.
"""

import numpy as np
from gymnasium import spaces
from numba import njit

from lobworld.envs.core import BatchedCore, LOBEnv, LOBVectorEnv
from lobworld.envs.rng import normal


@njit(cache=True)
def _reset(mask, t, total, obs):
    for i in range(mask.shape[0]):
        if mask[i]:
            t[i] = 0
            total[i] = 0.0
            obs[i, 0] = 0.0
            obs[i, 1] = 0.0


@njit(cache=True)
def _step(actions, rng, t, total, horizon, limit, autoreset, obs, final_obs, reward, term, trunc, ep_len):
    for i in range(actions.shape[0]):
        a = actions[i, 0]
        t[i] += 1
        total[i] += a + normal(rng[i, 0])
        reward[i] = a
        obs[i, 0] = t[i]
        obs[i, 1] = total[i]
        term[i] = total[i] > limit
        trunc[i] = (t[i] >= horizon) and not term[i]
        if term[i] or trunc[i]:
            final_obs[i, 0] = obs[i, 0]
            final_obs[i, 1] = obs[i, 1]
            ep_len[i] = t[i]
            if autoreset:
                t[i] = 0
                total[i] = 0.0
                obs[i, 0] = 0.0
                obs[i, 1] = 0.0


class ToyCore(BatchedCore):
    n_streams = 1
    single_observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    single_action_space = spaces.Box(0.0, 1.0, (1,), np.float32)

    def __init__(self, n_envs=1, horizon=5, limit=3.0):
        self.horizon = horizon
        self.limit = limit
        super().__init__(n_envs)

    def _alloc_state(self):
        self.t = np.zeros(self.n_envs, np.int64)
        self.total = np.zeros(self.n_envs, np.float64)
        self.ep_len = np.zeros(self.n_envs, np.int64)

    def _reset_rows(self, mask):
        _reset(mask, self.t, self.total, self.obs)

    def _step_rows(self, actions, autoreset):
        _step(actions, self.rng_state, self.t, self.total, self.horizon, self.limit, autoreset,
              self.obs, self.final_obs, self.reward, self.terminated, self.truncated, self.ep_len)

    def episode_info(self, i):
        return {"episode_length": int(self.ep_len[i])}


class ToyEnv(LOBEnv):
    core_cls = ToyCore


class ToyVectorEnv(LOBVectorEnv):
    core_cls = ToyCore

"""PPO (Stable-Baselines3) trains on the native SB3 VecEnv with VecMonitor + VecNormalize."""

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from lobworld.envs import make_sb3_vec_env


def test_ppo_smoke_on_execution_vecenv():
    torch.set_num_threads(1)
    venv = VecNormalize(VecMonitor(make_sb3_vec_env("LOB-Execution-v0", n_envs=16, seed=0, dynamics="parametric")),
                        norm_obs=True, norm_reward=True, gamma=1.0)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=256, n_epochs=2, gamma=1.0, seed=0,
                device="cpu", verbose=0)
    model.learn(total_timesteps=3072)
    assert model.num_timesteps >= 3072
    # VecMonitor saw complete 30-step episodes, with the env's episode info merged
    eps = list(model.ep_info_buffer)
    assert len(eps) >= 16 and all(e["l"] <= 30 for e in eps)
    assert all(np.isfinite(e["r"]) for e in eps)
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (16, 1)
    assert venv.obs_rms.count > 3000 and np.all(np.isfinite(venv.obs_rms.mean))

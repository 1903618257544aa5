"""``dynamics="learned"`` in the execution env: check_env, VecEnv contract, determinism, CRN."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lobworld.envs.execution")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from lobworld.envs.core import make_sb3_vec_env  # noqa: E402
from lobworld.envs.execution import ExecutionEnv, ExecutionVectorEnv  # noqa: E402
from lobworld.world_models.learned import DEFAULT_CHECKPOINT, LearnedDynamics  # noqa: E402

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")


def test_learned_execution_env_passes_check_env():
    env = ExecutionEnv(dynamics="learned", horizon=5)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert np.all(np.isfinite(obs))


def _episode(env, seed, action):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    while True:
        obs, r, term, trunc, info = env.step(np.array([action], dtype=np.float32))
        out.append(obs)
        if term or trunc:
            return np.array(out), info


def test_learned_env_is_seeded_and_stochastic():
    env = ExecutionEnv(dynamics="learned", horizon=6)
    a, ia = _episode(env, 1, 0.2)
    b, ib = _episode(env, 1, 0.2)
    c, _ = _episode(env, 2, 0.2)
    assert np.array_equal(a, b) and ia == ib
    assert not np.array_equal(a, c)


def test_learned_vecenv_contract_and_batch_matches_single():
    n, T = 4, 5
    venv = make_sb3_vec_env("LOB-Execution-v0", n_envs=n, seed=10, dynamics="learned", horizon=T)
    obs = venv.reset()
    assert obs.shape == (n, *venv.observation_space.shape)
    act = np.full((n, 1), 0.3, dtype=np.float32)
    for k in range(T):
        obs, rew, done, infos = venv.step(act)
        assert rew.dtype == np.float32 and done.dtype == np.bool_ and len(infos) == n
    assert done.all()  # the last step forces the remainder: every episode terminates at T
    assert all("terminal_observation" in i and i["TimeLimit.truncated"] is False for i in infos)
    # env i of the batch replays the single env seeded with 10 + i
    single = ExecutionEnv(dynamics="learned", horizon=T)
    traj, _ = _episode(single, 12, 0.3)
    assert np.allclose(infos[2]["terminal_observation"], traj[-1], rtol=0, atol=0)


def test_market_path_does_not_depend_on_the_agent_before_it_trades():
    """Common random numbers: with q = 0 in the first step, two strategies see the same first market move."""
    dyn = LearnedDynamics.load_default(track_permanent=False)
    venv = ExecutionVectorEnv(num_envs=2, dynamics=dyn, horizon=4)
    venv.reset(seed=[5, 5])
    o1, *_ = venv.step(np.array([[0.0], [0.0]], dtype=np.float32))
    assert np.array_equal(o1[0], o1[1])


def test_dark_pool_10s_steps_use_the_10s_model_and_a_fractional_second_is_a_clear_error():
    import gymnasium as gym

    import lobworld  # noqa: F401

    env = gym.make("LOB-DarkPool-v0", dynamics="learned")
    check_env(env.unwrapped, skip_render_check=True)
    core = env.unwrapped.core
    ten = core.dynamics.bundle(1, 10.0)
    assert ten.checkpoint.dt == 10.0 and core.dyn_args[0] is ten.args[0]  # the 10 s model's weights
    # market making (dt = 1 s) runs on the shipped 1-second model: tests/test_world_model_1s.py
    with pytest.raises(ValueError, match="not a whole multiple of the learned model's bar length"):
        LearnedDynamics.load_default().args(2, 0.5)


def test_batched_env_matches_single_envs_bit_for_bit_across_chunks_and_autoresets():
    """Two chunks of the batch kernels: env i == the single env seeded 20 + i, exactly, through an
    autoreset (the batched burn-in of the next episode)."""
    from lobworld.envs.execution import ExecutionCore, uses_batch_kernels
    from lobworld.world_models.learned import BATCH_CHUNK

    n, T = BATCH_CHUNK + 6, 3
    dyn = LearnedDynamics.load_default()
    core = ExecutionCore(n, dynamics=dyn, horizon=T)
    assert uses_batch_kernels(core.dynamics) and core._batched
    core.seed_rows(range(n), [20 + i for i in range(n)])
    core.reset()
    acts = np.tile(np.array([[0.5]]), (n, 1))
    obs = [core.obs.copy()]
    for _ in range(T + 2):  # the episode ends at step T, then two steps of the next one
        core.step(acts, autoreset=True)
        obs.append(core.obs.copy())
    for i in (0, BATCH_CHUNK - 1, BATCH_CHUNK, n - 1):
        one = ExecutionCore(1, dynamics=dyn, horizon=T)
        one.seed_rows([0], [20 + i])
        one.reset()
        got = [one.obs[0].copy()]
        for _ in range(T + 2):
            one.step(acts[:1], autoreset=True)
            got.append(one.obs[0].copy())
        assert np.array_equal(np.array(got), np.array(obs)[:, i])


@pytest.mark.parametrize("benchmark", ["is", "vwap"])
def test_batched_env_equals_the_per_env_env(benchmark):
    """The phased (batched) kernels and the per-env kernels give the same episodes (VWAP: orders
    completed early, so the window is finished by the per-env step_fn)."""
    from lobworld.envs.execution import ExecutionCore

    n, T = 8, 4
    res = []
    for batch in (True, False):
        core = ExecutionCore(n, dynamics=LearnedDynamics.load_default(batch=batch), horizon=T, benchmark=benchmark)
        assert core._batched is batch
        core.seed_rows(range(n), list(range(n)))
        core.reset()
        acts = np.linspace(0.1, 1.0, n)[:, None]  # env 7 completes at the first step
        rows = []
        for _ in range(T):
            core.step(acts, autoreset=False)
            rows.append(np.concatenate([core.obs.ravel(), core.reward, core.market[:, :8].ravel()]))
        res.append((np.array(rows), core.ep.copy()))
    assert np.allclose(res[0][0], res[1][0], rtol=1e-9, atol=1e-12)
    assert np.allclose(res[0][1], res[1][1], rtol=1e-9, atol=1e-12)
    from lobworld.envs.execution import EP_COMPLETION

    assert np.all(res[0][1][:, EP_COMPLETION] == 1.0)  # every order completed


def test_models_without_batch_kernels_run_per_env():
    """A model the batch kernels do not implement (signed-OFI flow head) falls back to step_fn."""
    import torch

    from lobworld.envs.execution import ExecutionCore
    from lobworld.world_models.checkpoint import Checkpoint
    from lobworld.world_models.dynamics_model import AssetStats, BarWorldModel, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(ofi_head="zero_signed_lognormal")
    model = BarWorldModel(cfg)
    stats = AssetStats(tick=0.01, sigma_bar=0.28, median_spread=0.28, mean_volume=1800.0, mean_count=30.0,
                       mean_depth=300.0, s0=570.0)
    ck = Checkpoint(weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                    model_config=cfg, assets={"GOOG": stats}, dt=60.0, fingerprint={"a.csv": "00" * 32},
                    train_config={"freq": "60s"}, metrics={"x": 1.0})
    dyn = LearnedDynamics(ck, burn_in=1)
    core = ExecutionCore(2, dynamics=dyn, horizon=3)
    assert not core._batched and dyn.batch_step_fn is None
    core.reset()
    core.step(np.full((2, 1), 0.5), autoreset=True)
    assert np.all(np.isfinite(core.obs))
    assert LearnedDynamics.load_default().batch_step_fn is not None

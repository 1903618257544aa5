"""Training: typed config, PPO smoke run on the execution env, resume, corrupted models, CLI errors."""

import pathlib

import numpy as np
import pytest

from lobworld.agents.config import ConfigError, TrainConfig, load_config
from lobworld.agents.training import ModelLoadError, load_model, load_policy, train, vecnormalize_path_for
from lobworld.cli import main

ENV = "LOB-Execution-v0"
SMALL_ENV = {"quantity": 1000.0, "horizon": 8}


def _cfg(**kw):
    base = dict(env_id=ENV, algo="PPO", timesteps=1024, n_envs=16, n_steps=32, batch_size=128, n_epochs=2,
                normalize=True, checkpoint_freq=512, eval_freq=512, n_eval_episodes=16, progress_bar=False,
                device="cpu", env_kwargs=SMALL_ENV, eval_seed=500_000)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return _cfg(), out, train(_cfg(), out)


def test_shipped_defaults_load_and_validate():
    cfg = load_config(ENV)
    assert cfg.env_id == ENV and cfg.algo == "PPO" and cfg.normalize is True and cfg.gamma == 1.0
    assert load_config(ENV, None, timesteps=5000, algo="A2C").timesteps == 5000


def test_config_errors_name_file_and_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('algo = "PPO"\nlearnin_rate = 0.1\n')
    with pytest.raises(ConfigError, match=r"c\.toml: unknown key\(s\) \['learnin_rate'\]"):
        load_config(ENV, f)
    f.write_text('n_envs = "many"\n')
    with pytest.raises(ConfigError, match="c.toml: n_envs must be int"):
        load_config(ENV, f)
    f.write_text('n_envs = 0\n')
    with pytest.raises(ConfigError, match="n_envs must be a positive integer"):
        load_config(ENV, f)
    f.write_text('algo = "DQN"\n')
    with pytest.raises(ConfigError, match="algo must be one of"):
        load_config(ENV, f)
    f.write_text("algo = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(ENV, f)
    with pytest.raises(ConfigError, match="overlaps the training seeds"):
        TrainConfig(seed=0, eval_seed=10, n_envs=64)
    with pytest.raises(FileNotFoundError):
        load_config(ENV, tmp_path / "missing.toml")


def test_training_writes_a_loadable_model(run):
    cfg, out, res = run
    assert res.num_timesteps >= cfg.timesteps
    for p in (out / "model.zip", out / "vecnormalize.pkl", out / "lobworld_run.json",
              out / "checkpoints" / "rl_model_512_steps.zip", out / "checkpoints" / "rl_model_vecnormalize_512_steps.pkl",
              out / "best" / "best_model.zip", out / "best" / "vecnormalize.pkl"):
        assert p.is_file(), p
    model, meta = load_model(out / "model.zip")
    assert type(model).__name__ == "PPO" and meta["config"]["algo"] == "PPO"
    pol = load_policy(out / "model.zip")
    assert pol.obs_rms is not None  # VecNormalize statistics were found and are applied
    a = pol(np.zeros((5, 8), np.float32))
    assert a.shape == (5, 1) and np.all((a >= 0) & (a <= 1))


def test_episode_metrics_reach_tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out, _ = run
    events = sorted((out / "tb").rglob("events.out.tfevents*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "episode/shortfall_bps" in tags and "episode/completion" in tags
    vals = [e.value for e in acc.Scalars("episode/completion")]
    assert all(v == pytest.approx(1.0) for v in vals)


def test_resume_continues_counter_and_normalisation(run, tmp_path):
    cfg, out, _ = run
    ck = out / "checkpoints" / "rl_model_512_steps.zip"
    res = train(cfg.replace(timesteps=1536), tmp_path, resume=ck)
    model, _ = load_model(res.model_path)
    assert model.num_timesteps == res.num_timesteps >= 1536
    assert res.num_timesteps < 1536 + cfg.n_envs * cfg.n_steps  # continued from 512, not from 0
    import pickle

    with open(vecnormalize_path_for(ck), "rb") as fh:
        before = pickle.load(fh).obs_rms.count
    with open(res.vecnormalize_path, "rb") as fh:
        after = pickle.load(fh).obs_rms.count
    assert after > before  # statistics were restored and kept updating


def test_vecnormalize_naming():
    assert vecnormalize_path_for("a/rl_model_512_steps.zip") == pathlib.Path("a/rl_model_vecnormalize_512_steps.pkl")
    assert vecnormalize_path_for("a/model.zip") == pathlib.Path("a/vecnormalize.pkl")


def test_corrupted_model_is_a_clear_error(run, tmp_path, capsys):
    _, out, _ = run
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"definitely not a zip")
    with pytest.raises(ModelLoadError, match="not a Stable-Baselines3 model archive"):
        load_model(bad)
    trunc = tmp_path / "trunc.zip"
    trunc.write_bytes((out / "model.zip").read_bytes()[:-200])
    with pytest.raises(ModelLoadError, match="trunc.zip"):
        load_model(trunc)
    assert main(["evaluate", "--env", ENV, "--model", str(bad), "--episodes", "4"]) == 2
    err = capsys.readouterr().err
    assert "not a Stable-Baselines3 model archive" in err and "Traceback" not in err
    with pytest.raises(ModelLoadError):
        train(_cfg(), tmp_path / "r", resume=bad)


def test_evaluate_cli(run, capsys):
    _, out, _ = run
    assert main(["evaluate", "--env", ENV, "--model", str(out / "model.zip"), "--episodes", "20", "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    s = d["strategies"][str(out / "model.zip")]
    assert s["n_paths"] == 20 and s["completion_rate"] == 1.0 and np.isfinite(s["mean"])
    assert d["metric"] == "shortfall_bps"
    assert main(["evaluate", "--env", ENV, "--strategy", "nope", "--episodes", "4"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err


def test_train_cli_bad_config_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("gamma = 3.0\n")
    assert main(["train", "--env", ENV, "--config", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "gamma must be a number in [0.0, 1.0]" in capsys.readouterr().err


def test_sac_needs_box_actions(tmp_path):
    import gymnasium as gym

    import lobworld  # noqa: F401  (registers the ids)

    if "LOB-MarketMaking-Discrete-v0" not in gym.registry:
        pytest.skip("discrete market-making env not available")
    cfg = TrainConfig(env_id="LOB-MarketMaking-Discrete-v0", algo="SAC", timesteps=64, n_envs=2, progress_bar=False,
                      device="cpu", eval_freq=0, checkpoint_freq=0)
    with pytest.raises(ConfigError, match="SAC needs a continuous"):
        train(cfg, tmp_path)


def test_train_cli_end_to_end(tmp_path, capsys):
    f = tmp_path / "small.toml"
    f.write_text('n_steps = 16\nbatch_size = 64\nn_epochs = 1\ncheckpoint_freq = 128\neval_freq = 0\n'
                 'env_kwargs = { quantity = 500.0, horizon = 4 }\n')
    out = tmp_path / "run"
    assert main(["train", "--env", ENV, "--algo", "A2C", "--timesteps", "256", "--n-envs", "8", "--seed", "1",
                 "--device", "cpu", "--config", str(f), "--out", str(out), "--no-progress"]) == 0
    assert "trained A2C on LOB-Execution-v0" in capsys.readouterr().out
    model, meta = load_model(out / "model.zip")
    assert type(model).__name__ == "A2C" and meta["config"]["env_kwargs"] == {"quantity": 500.0, "horizon": 4}
    assert (out / "checkpoints" / "rl_model_128_steps.zip").is_file()
    assert (out / "vecnormalize.pkl").is_file()  # the shipped default normalize = true is kept

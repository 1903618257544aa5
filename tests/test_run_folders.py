"""Runs never overwrite each other: run-folder claims, locks, atomic writes, SIGINT, model/env checks.

Agent runs use a tiny A2C config on the parametric execution market (a few hundred env
steps); world-model runs use the shipped GOOG sample hour in 10 s bars with a 4-unit GRU.
The SIGINT tests run the real command line in a subprocess and interrupt it once it has
written its first checkpoint (agent) or finished its second epoch (world model).
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from lobworld.agents.config import TrainConfig
from lobworld.agents.training import (
    IncompatibleModelError,
    MissingVecNormalizeError,
    load_model,
    load_policy,
    train,
)
from lobworld.cli import main
from lobworld.errors import LobworldError
from lobworld.world_models.run_folder import (
    LOCK_NAME,
    RunFolderError,
    RunLockedError,
    acquire_lock,
    atomic_path,
    atomic_write_text,
    claim_run_folder,
)

ENV = "LOB-Execution-v0"
TINY_ENV = {"quantity": 500.0, "horizon": 4, "dynamics": "parametric"}
TINY_TOML = ('n_steps = 8\nbatch_size = 32\nn_epochs = 1\ncheckpoint_freq = 32\neval_freq = 0\nnormalize = true\n'
             'env_kwargs = { quantity = 500.0, horizon = 4, dynamics = "parametric" }\n')
REPO = pathlib.Path(__file__).resolve().parent.parent


def _cfg(**kw) -> TrainConfig:
    base = dict(env_id=ENV, algo="A2C", timesteps=64, n_envs=4, n_steps=8, checkpoint_freq=32, eval_freq=0,
                normalize=True, progress_bar=False, device="cpu", env_kwargs=TINY_ENV, seed=3, eval_seed=500_000)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    return out, train(_cfg(), out)


def _subprocess(args: list[str], **kw) -> subprocess.Popen:
    code = "import sys; from lobworld.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(pred, proc: subprocess.Popen, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}:\n{out}\n{err[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------
# one run per folder
# ---------------------------------------------------------------------------
def test_agent_train_refuses_a_folder_holding_a_run(run, capsys):
    out, res = run
    before = {p.name: p.read_bytes() for p in (out / "model.zip", out / "vecnormalize.pkl", out / "lobworld_run.json")}
    with pytest.raises(RunFolderError, match=r"already holds a run \(checkpoints, lobworld_run\.json, model\.zip"):
        train(_cfg(seed=7), out)
    assert main(["train", "--env", ENV, "--algo", "A2C", "--timesteps", "64", "--n-envs", "4", "--device", "cpu",
                 "--out", str(out), "--no-progress", "--dynamics", "parametric"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and "--resume" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # nothing of the first run was touched, and the lock was released
    assert {p: (out / p).read_bytes() for p in before} == before
    assert not (out / LOCK_NAME).exists()
    assert isinstance(RunFolderError("x"), LobworldError)


def test_agent_overwrite_replaces_the_whole_earlier_run(tmp_path):
    out = tmp_path / "r"
    train(_cfg(timesteps=64), out)
    (out / "checkpoints" / "rl_model_99999_steps.zip").write_bytes(b"from an earlier, longer run")
    (out / "notes.txt").write_text("mine")
    res = train(_cfg(timesteps=32, seed=9), out, overwrite=True)
    assert res.num_timesteps == 32 and not res.interrupted
    # the earlier run's files are gone (not mixed with the new run's), unrelated files are kept
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["rl_model_32_steps.zip",
                                                                       "rl_model_vecnormalize_32_steps.pkl"]
    assert (out / "notes.txt").read_text() == "mine"
    meta = json.loads((out / "lobworld_run.json").read_text())
    assert meta["config"]["seed"] == 9 and meta["status"] == "finished" and meta["num_timesteps"] == 32
    # no temporary file is left behind by the atomic writes
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_agent_resume_continues_in_the_same_folder(run):
    out, res = run
    ck = out / "checkpoints" / "rl_model_32_steps.zip"
    res2 = train(_cfg(timesteps=96), out, resume=ck)
    assert res2.num_timesteps == 96
    _, meta = load_model(out / "model.zip")
    assert meta["resumed_from"] == str(ck) and meta["num_timesteps"] == 96


def test_run_record_holds_env_id_and_spaces(run):
    out, _ = run
    meta = json.loads((out / "lobworld_run.json").read_text())
    env = meta["env"]
    assert env["id"] == ENV
    assert env["observation_space"]["type"] == "Box" and env["observation_space"]["shape"] == [8]
    assert env["action_space"]["type"] == "Box" and env["action_space"]["shape"] == [1]
    assert meta["vecnormalize"] is True


def test_world_model_train_refuses_a_folder_holding_a_run(tmp_path, capsys):
    from lobworld.world_models.data import sample_lobster_paths

    msg, _ = sample_lobster_paths()
    out = tmp_path / "wm"
    out.mkdir()
    (out / "model.npz").write_bytes(b"the previous model")
    assert main(["world-model", "train", "--data", str(msg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a run (model.npz)" in err and "--overwrite" in err
    assert (out / "model.npz").read_bytes() == b"the previous model"
    assert not (out / LOCK_NAME).exists()


def test_world_model_overwrite_on_generated_bars(tmp_path):
    from test_world_model import generated_bars

    from lobworld.world_models.checkpoint import load_checkpoint
    from lobworld.world_models.training import DayBars, train_on_days
    from lobworld.world_models.training import WorldModelTrainConfig as TrainConfig

    day = DayBars("GEN", generated_bars(600, 10.0, 0.0357, 4e-4, seed=1), 0.01, [])
    cfg = TrainConfig(freq="10s", hidden=4, latent=2, n_mix=1, spread_bins=4, seq_len=16, burn_in=2, batch_size=16,
                      max_epochs=2, test_hours=0.25, early_stop_hours=0.1, tensorboard=True, progress=False, seed=5)
    out = tmp_path / "wm"
    a = train_on_days([day], cfg, out)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train_on_days([day], cfg, out)
    import dataclasses

    b = train_on_days([day], dataclasses.replace(cfg, seed=6, tensorboard=False), out, overwrite=True)
    ck = load_checkpoint(out / "model.npz")
    assert all(ck.weights[k].tobytes() == b.weights[k].tobytes() for k in ck.weights)
    assert any(a.weights[k].tobytes() != b.weights[k].tobytes() for k in a.weights)
    assert not (out / "tb").exists()  # the first run's TensorBoard logs went with it


def test_run_folder_that_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(RunFolderError, match="is not a folder"):
        with claim_run_folder(f, artefacts=()):
            pass


# ---------------------------------------------------------------------------
# locks
# ---------------------------------------------------------------------------
def test_a_live_lock_fails_fast_and_names_its_holder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from lobworld.world_models.run_folder import acquire_lock\n"
                               "lock = acquire_lock(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
                               str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} .*lock file {folder / LOCK_NAME}"):
            acquire_lock(folder)
        with pytest.raises(RunLockedError, match=LOCK_NAME):  # overwrite does not break a live lock
            train(_cfg(), folder, overwrite=True)
        assert time.monotonic() - t0 < 5.0  # fails fast, does not wait for the holder
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock file stays, and is taken over as stale
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == holder.pid
    with acquire_lock(folder) as lock:
        assert lock.held and json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_pid_is_replaced(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                  "started": "2026-01-01T00:00:00"}))
    res = train(_cfg(timesteps=32, checkpoint_freq=0), tmp_path)
    assert res.num_timesteps == 32
    assert f"replacing the stale lock of pid {dead.pid} (no longer running)" in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------
def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    f = tmp_path / "a.json"
    atomic_write_text(f, "old")
    with pytest.raises(OSError):
        with atomic_path(f) as tmp:
            tmp.write_text("half of the new fi")
            raise OSError("disk full")
    assert f.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    atomic_write_text(f, "new")
    assert f.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_checkpoint_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    from test_world_model import random_checkpoint

    from lobworld.world_models import checkpoint as ckmod

    path = tmp_path / "model.npz"
    ckmod.save_checkpoint(random_checkpoint(seed=0), path)
    old = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 a few bytes, then the machine dies")
        raise OSError("killed mid-write")

    monkeypatch.setattr(ckmod.np, "savez", broken_savez)
    with pytest.raises(OSError, match="killed mid-write"):
        ckmod.save_checkpoint(random_checkpoint(seed=1), path)
    assert path.read_bytes() == old
    ckmod.load_checkpoint(path)  # still a valid checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# ---------------------------------------------------------------------------
# SIGINT
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_during_training_set_up_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    """A Ctrl-C before ``learn()`` starts (here: while the env is built) prints one line, no
    traceback, exits 130 and leaves no artefact in the run folder."""
    import lobworld.agents.training as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "make_train_env", interrupted)
    out = tmp_path / "run"
    rc = main(["train", "--env", "LOB-Execution-v0", "--timesteps", "64", "--n-envs", "2", "--out", str(out),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130
    assert err.strip().splitlines() == ["lobworld train: interrupted (Ctrl-C) before it finished"]
    assert "Traceback" not in err
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]


def test_sigint_saves_the_final_agent_model_and_exits_130(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_TOML)
    out = tmp_path / "run"
    proc = _subprocess(["train", "--env", ENV, "--algo", "A2C", "--timesteps", "100000000", "--n-envs", "4",
                        "--device", "cpu", "--config", str(cfg), "--out", str(out), "--no-progress"])
    try:
        _wait_for(lambda: list((out / "checkpoints").glob("rl_model_*_steps.zip")) if (out / "checkpoints").is_dir()
                  else None, proc, 240, "the first checkpoint")
        # a second training into the same folder while the first runs fails at once, naming the lock
        assert main(["train", "--env", ENV, "--algo", "A2C", "--timesteps", "64", "--n-envs", "4", "--device", "cpu",
                     "--config", str(cfg), "--out", str(out), "--no-progress", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"locked by a training in progress (pid {proc.pid}" in err and str(out / LOCK_NAME) in err
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at ")
    steps = int(lines[0].split()[2])
    assert f"final model saved to {out / 'model.zip'}, run record {out / 'lobworld_run.json'}" in lines[0]
    meta = json.loads((out / "lobworld_run.json").read_text())
    assert meta["status"] == "interrupted" and meta["num_timesteps"] == steps
    model, _ = load_model(out / "model.zip")
    assert model.num_timesteps == steps >= 32
    pol = load_policy(out / "model.zip")
    assert pol.obs_rms is not None  # the statistics were saved with the final model
    assert np.all(np.isfinite(pol(np.zeros((3, 8), np.float32))))
    assert not (out / LOCK_NAME).exists()


def ck_epoch(out: pathlib.Path) -> int:
    from lobworld.world_models.checkpoint import load_checkpoint

    return load_checkpoint(out / "model.npz").metrics["best_epoch"]


@pytest.mark.slow
def test_sigint_keeps_the_best_so_far_world_model_and_exits_130(tmp_path):
    from lobworld.world_models.checkpoint import load_checkpoint
    from lobworld.world_models.data import sample_lobster_paths

    msg, _ = sample_lobster_paths()
    cfg = tmp_path / "c.toml"
    cfg.write_text('freq = "10s"\ntest_hours = 0.25\nearly_stop_hours = 0.1\nseq_len = 16\nburn_in = 2\n'
                   'max_epochs = 100000\npatience = 100000\nhidden = 4\nlatent = 2\nprogress = false\n'
                   'tensorboard = false\n')
    out = tmp_path / "wm"
    code = ("import logging, sys\nlogging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
            "from lobworld.cli import main\nsys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "world-model", "train", "--data", str(msg), "--config",
                             str(cfg), "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=(tmp_path / "stderr.txt").open("w"), text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout] + [lines.put(None)], daemon=True)
    reader.start()
    seen = []
    try:
        t0 = time.monotonic()
        while True:  # the per-epoch log lines, until the second epoch has ended
            try:
                line = lines.get(timeout=max(0.1, 240 - (time.monotonic() - t0)))
            except queue.Empty:
                pytest.fail("no second epoch in 240 s")
            if line is None:
                pytest.fail(f"ended (rc {proc.wait()}) before its second epoch:\n{''.join(seen)[-2000:]}\n"
                            f"{(tmp_path / 'stderr.txt').read_text()[-3000:]}")
            seen.append(line)
            if line.startswith("epoch 1:"):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = []
    while not lines.empty():
        rest.append(lines.get() or "")
    rest = "".join(rest)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    said = [ln for ln in rest.splitlines() if ln.startswith("interrupted")]
    assert len(said) == 1 and said[0].startswith("interrupted after ") and said[0].endswith(
        f"best-so-far model (epoch {ck_epoch(out)}) saved to {out / 'model.npz'}")
    ck = load_checkpoint(out / "model.npz")
    assert ck.metrics["interrupted"] is True and ck.metrics["epochs_completed"] >= 2
    assert 0 <= ck.metrics["best_epoch"] < ck.metrics["epochs_completed"]
    assert np.isfinite(ck.metrics["test_nll"])
    assert not (out / LOCK_NAME).exists()


# ---------------------------------------------------------------------------
# the model and the env it is evaluated on
# ---------------------------------------------------------------------------
def test_missing_vecnormalize_is_refused(run, tmp_path, capsys):
    out, _ = run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.zip", "lobworld_run.json"):
        shutil.copy(out / name, copy / name)
    with pytest.raises(MissingVecNormalizeError, match=r"trained with VecNormalize but its statistics .*"
                                                       r"vecnormalize\.pkl are missing"):
        load_policy(copy / "model.zip")
    with pytest.warns(UserWarning, match="proceeding without normalisation"):
        pol = load_policy(copy / "model.zip", missing_vecnormalize="warn")
    assert pol.obs_rms is None
    assert main(["evaluate", "--env", ENV, "--model", str(copy / "model.zip"), "--episodes", "4"]) == 2
    err = capsys.readouterr().err
    assert "trained with VecNormalize" in err and "Traceback" not in err
    # a checkpoint's own statistics file is the one looked for
    ck = out / "checkpoints" / "rl_model_32_steps.zip"
    assert load_policy(ck).obs_rms is not None


def test_a_model_on_an_env_of_another_shape_names_its_env(run, capsys):
    import gymnasium as gym

    import lobworld  # noqa: F401

    out, _ = run
    other = "LOB-MarketMaking-v0"
    env = gym.make(other)
    assert env.observation_space.shape != (8,)
    with pytest.raises(IncompatibleModelError, match=rf"trained on {ENV} .*observation space .*{other} has "
                                                     r"observation space"):
        load_policy(out / "model.zip", env_id=other, observation_space=env.observation_space,
                    action_space=env.action_space)
    assert main(["evaluate", "--env", other, "--model", str(out / "model.zip"), "--episodes", "4"]) == 2
    err = capsys.readouterr().err
    assert f"was trained on {ENV}" in err and "Traceback" not in err and "broadcast" not in err
    # the batched policy checks the observation shape too
    pol = load_policy(out / "model.zip")
    with pytest.raises(IncompatibleModelError, match=rf"trained on {ENV} .*shape \(8,\); it was given .*\(2, 5\)"):
        pol(np.zeros((2, 5), np.float32))


# ---------------------------------------------------------------------------
# world-model train --strict / --no-strict
# ---------------------------------------------------------------------------
def test_world_model_train_no_strict_flag_on_a_crossed_row(tmp_path, capsys):
    from _data_helpers import set_field, slice_lines, write_pair

    m, o = slice_lines(None)
    k = 500
    ask = int(o[k].split(",")[0])
    o[k] = set_field(o[k], 2, ask + 100)  # best bid above best ask: a crossed book on line k + 1
    msg = write_pair(tmp_path, m, o)
    cfg = tmp_path / "c.toml"
    cfg.write_text('freq = "10s"\ntest_hours = 0.25\nearly_stop_hours = 0.1\nseq_len = 16\nburn_in = 2\n'
                   'max_epochs = 1\nhidden = 4\nlatent = 2\nprogress = false\ntensorboard = false\n')
    out = tmp_path / "wm"
    assert main(["world-model", "train", "--data", str(msg), "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"line {k + 1}: [crossed_book]" in err and "rerun with --no-strict to drop them" in err
    assert "strict=False" not in err and "Traceback" not in err
    assert main(["world-model", "train", "--data", str(msg), "--config", str(cfg), "--out", str(out),
                 "--no-strict"]) == 0
    assert (out / "model.npz").is_file()
    out2 = tmp_path / "wm2"
    assert main(["world-model", "train", "--data", str(msg), "--config", str(cfg), "--out", str(out2),
                 "--lenient"]) == 0

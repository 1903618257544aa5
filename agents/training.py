"""Train Stable-Baselines3 agents on the native batched lobworld VecEnv.

Run folder layout written by :func:`train` (``out``)::

    out/model.zip                final model
    out/vecnormalize.pkl         its VecNormalize statistics (with --normalize)
    out/lobworld_run.json        the run record: TrainConfig, env id and spaces, device, status, wall time
    out/checkpoints/rl_model_<N>_steps.zip (+ rl_model_vecnormalize_<N>_steps.pkl)
    out/best/best_model.zip      best by evaluation on separate seeds (+ vecnormalize.pkl)
    out/tb/                      TensorBoard logs (rollout/ep_rew_mean, episode/<info key>)
    out/.lobworld.lock           held while the run trains (pid, host, start time)

One run per folder: :func:`train` refuses a folder that already holds anything
unless it resumes a run (``resume``) or ``overwrite=True`` (which first deletes
the earlier run's artefacts listed in :data:`RUN_ARTEFACTS`); a second training
into a folder whose lock is held fails at once (:class:`RunLockedError`). Every
model archive, statistics file and the run record is written under a temporary
name and renamed into place. SIGINT (Ctrl-C) during ``learn()`` stops training at
the next env step; the final model, its statistics and the run record (``status``
``"interrupted"``) are saved as for a finished run and the result says
``interrupted=True`` (the CLI then exits with code 130).

Training env: ``make_sb3_vec_env(env_id, n_envs, seed)`` -> ``VecMonitor`` ->
optional ``VecNormalize``. Evaluation env: the same id seeded from
``eval_seed`` (disjoint from the training seeds) and re-seeded before every
evaluation, so successive evaluations score the policy on the same market
paths; it shares the training VecNormalize statistics in eval mode.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import re
import time
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

from lobworld.agents.callbacks import (
    AtomicCheckpointCallback,
    EpisodeInfoCallback,
    SaveBestCallback,
    StopOnRequestCallback,
    save_model_atomic,
    save_vecnormalize_atomic,
)
from lobworld.agents.config import ConfigError, TrainConfig
from lobworld.envs import make_sb3_vec_env
from lobworld.errors import LobworldError
from lobworld.world_models.run_folder import (
    RunFolderError,
    RunLockedError,
    StopOnSigint,
    atomic_write_text,
    claim_run_folder,
)

__all__ = [
    "ALGO_CLASSES", "ModelLoadError", "TrainResult", "SB3Policy", "resolve_device", "make_train_env",
    "make_eval_env", "train", "load_model", "load_policy", "vecnormalize_path_for", "RUN_META", "RUN_ARTEFACTS",
    "IncompatibleModelError", "MissingVecNormalizeError", "RunFolderError", "RunLockedError", "space_record",
]

ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "SAC": SAC, "A2C": A2C, "TD3": TD3}
RUN_META = "lobworld_run.json"
#: what a run writes into its folder (``overwrite=True`` deletes these, and only these)
RUN_ARTEFACTS = ("model.zip", "vecnormalize.pkl", RUN_META, "checkpoints", "best", "eval", "tb")


class ModelLoadError(LobworldError):
    """A model file that is missing, corrupted or not a Stable-Baselines3 archive."""


class MissingVecNormalizeError(ModelLoadError):
    """A model trained with VecNormalize whose statistics file is not beside it."""


class IncompatibleModelError(ModelLoadError):
    """A model whose observation or action space differs from the env it is asked to act in."""


def space_record(space: spaces.Space) -> dict[str, Any]:
    """A JSON-able description of a space: ``type``, ``shape`` and, for Discrete, ``n``."""
    d: dict[str, Any] = {"type": type(space).__name__, "shape": list(space.shape or ()), "repr": repr(space)}
    if isinstance(space, spaces.Discrete):
        d["n"] = int(space.n)
    return d


def _same_space(a: spaces.Space, b: spaces.Space) -> bool:
    """Same kind, shape (and ``n`` for Discrete); bounds may differ (they follow env settings)."""
    if type(a) is not type(b) or tuple(a.shape or ()) != tuple(b.shape or ()):
        return False
    return not isinstance(a, spaces.Discrete) or int(a.n) == int(b.n)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU raises."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return device


class ReseedOnReset(VecEnvWrapper):
    """Re-apply ``seed`` at every ``reset()``: each evaluation replays the same market paths."""

    def __init__(self, venv: VecEnv, seed: int):
        super().__init__(venv)
        self._seed = int(seed)

    def reset(self):
        self.venv.seed(self._seed)
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


def make_train_env(cfg: TrainConfig, vecnormalize_path: str | pathlib.Path | None = None) -> VecEnv:
    """The training VecEnv: native batch -> VecMonitor -> VecNormalize (when ``cfg.normalize``)."""
    venv: VecEnv = VecMonitor(make_sb3_vec_env(cfg.env_id, cfg.n_envs, seed=cfg.seed, **cfg.env_kwargs))
    if cfg.algo in ("SAC", "TD3") and not isinstance(venv.action_space, spaces.Box):
        raise ConfigError(f"{cfg.algo} needs a continuous (Box) action space; {cfg.env_id} has "
                          f"{venv.action_space}; use PPO or A2C")
    if vecnormalize_path is not None:
        venv = VecNormalize.load(str(vecnormalize_path), venv)
        venv.training = True
    elif cfg.normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=cfg.gamma if cfg.gamma < 1 else 0.999)
    return venv


def make_eval_env(cfg: TrainConfig, train_env: VecEnv) -> VecEnv:
    """Evaluation VecEnv on seeds ``eval_seed + i``; VecNormalize in eval mode when training uses one."""
    n = min(cfg.n_eval_episodes, 64)
    base = make_sb3_vec_env(cfg.env_id, n, seed=cfg.eval_seed, **cfg.env_kwargs)
    venv: VecEnv = VecMonitor(ReseedOnReset(base, cfg.eval_seed))
    if isinstance(train_env, VecNormalize):
        venv = VecNormalize(venv, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        venv.obs_rms = train_env.obs_rms  # synced again by EvalCallback before each evaluation
    return venv


def _algo_kwargs(cfg: TrainConfig, box: bool) -> dict[str, Any]:
    common = {"learning_rate": cfg.learning_rate, "gamma": cfg.gamma,
              "policy_kwargs": {"net_arch": list(cfg.net_arch)}}
    if cfg.algo in ("PPO", "A2C") and box:
        common["policy_kwargs"]["log_std_init"] = cfg.log_std_init
    if cfg.algo == "PPO":
        return {**common, "n_steps": cfg.n_steps, "batch_size": cfg.batch_size, "n_epochs": cfg.n_epochs,
                "gae_lambda": cfg.gae_lambda, "clip_range": cfg.clip_range, "ent_coef": cfg.ent_coef}
    if cfg.algo == "A2C":
        return {**common, "n_steps": cfg.n_steps, "gae_lambda": cfg.gae_lambda, "ent_coef": cfg.ent_coef}
    return {**common, "buffer_size": cfg.buffer_size, "learning_starts": cfg.learning_starts,
            "batch_size": cfg.batch_size}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    model_path: pathlib.Path
    """Final model archive."""
    vecnormalize_path: pathlib.Path | None
    """VecNormalize statistics of the final model (None without normalisation)."""
    best_model_path: pathlib.Path | None
    """Best model by evaluation on the eval seeds (None when no evaluation ran)."""
    num_timesteps: int
    """Env steps the model has been trained for (including a resumed run's)."""
    wall_s: float
    """Wall time of this call's ``learn()`` (seconds)."""
    device: str
    """Torch device used."""
    last_eval_mean_reward: float | None
    """Mean episode reward of the last evaluation (None when none ran)."""
    interrupted: bool = False
    """True when SIGINT stopped ``learn()`` early (the artefacts are those of the last step)."""
    run_record: pathlib.Path | None = None
    """The run record (``lobworld_run.json``)."""


def vecnormalize_path_for(model_path: str | pathlib.Path) -> pathlib.Path:
    """Where the VecNormalize statistics of ``model_path`` live.

    ``.../rl_model_<N>_steps.zip`` -> ``.../rl_model_vecnormalize_<N>_steps.pkl`` (CheckpointCallback's
    naming); any other ``X.zip`` -> ``vecnormalize.pkl`` in the same folder.
    """
    p = pathlib.Path(model_path)
    m = re.fullmatch(r"(.*)_(\d+)_steps\.zip", p.name)
    if m:
        return p.with_name(f"{m.group(1)}_vecnormalize_{m.group(2)}_steps.pkl")
    return p.with_name("vecnormalize.pkl")


def _find_meta(model_path: pathlib.Path) -> dict[str, Any] | None:
    for folder in (model_path.parent, model_path.parent.parent):
        f = folder / RUN_META
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except json.JSONDecodeError as exc:
                raise ModelLoadError(f"{f}: run metadata is not valid JSON: {exc}") from None
    return None


def _check_archive(path: pathlib.Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a Stable-Baselines3 model archive (not a zip file; corrupted "
                             "or truncated?)")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelLoadError(f"{path} is a corrupted model archive: {exc}") from None
    if bad is not None:
        raise ModelLoadError(f"{path} is a corrupted model archive (bad member {bad!r})")
    if "data" not in names or "policy.pth" not in names:
        raise ModelLoadError(f"{path} is not a Stable-Baselines3 model archive (members: {sorted(names)})")


def load_model(path: str | pathlib.Path, algo: str | None = None, env: VecEnv | None = None,
               device: str = "cpu") -> tuple[BaseAlgorithm, dict[str, Any] | None]:
    """Load an SB3 model, raising :class:`ModelLoadError` (never a zipfile traceback) when it is bad.

    ``algo`` defaults to the one recorded in the run folder's ``lobworld_run.json``,
    else PPO, A2C, SAC, TD3 are tried in turn.
    """
    p = pathlib.Path(path)
    _check_archive(p)
    meta = _find_meta(p)
    if algo is None and meta is not None:
        algo = meta.get("config", {}).get("algo")
    candidates = [algo] if algo else list(ALGO_CLASSES)
    errors = []
    for name in candidates:
        if name not in ALGO_CLASSES:
            raise ModelLoadError(f"unknown algorithm {name!r} for {p}; known: {', '.join(ALGO_CLASSES)}")
        try:
            return ALGO_CLASSES[name].load(str(p), env=env, device=device), meta
        except Exception as exc:  # SB3 raises many types for a bad archive
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    raise ModelLoadError(f"could not load {p} as a Stable-Baselines3 model ({'; '.join(errors)})")


class SB3Policy:
    """A trained model as a batched policy ``policy(obs (n, ...)) -> actions (n, ...)`` (deterministic).

    Observations are normalised with the saved VecNormalize statistics when present.
    """

    def __init__(self, model: BaseAlgorithm, obs_rms: Any = None, clip_obs: float = 10.0,
                 epsilon: float = 1e-8, name: str = "model", trained_on: str = "an unrecorded env"):
        self.model = model
        self.obs_rms = obs_rms
        self.clip_obs = clip_obs
        self.epsilon = epsilon
        self.name = name
        self.trained_on = trained_on
        """The env the model was trained on (named in shape errors)."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        want = tuple(self.model.observation_space.shape or ())
        if x.shape[1:] != want:
            raise IncompatibleModelError(
                f"{self.name} was trained on {self.trained_on} with observations of shape {want}; it was given "
                f"a batch of shape {x.shape} (expected (n, {', '.join(map(str, want))}))")
        if self.obs_rms is not None:
            x = np.clip((x - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon),
                        -self.clip_obs, self.clip_obs).astype(np.float32)
        actions, _ = self.model.predict(x, deterministic=True)
        return actions


def _trained_on(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "an unrecorded env (no lobworld_run.json beside the model)"
    env = meta.get("env") or {}
    name = env.get("id") or meta.get("config", {}).get("env_id") or "an unrecorded env"
    kw = meta.get("config", {}).get("env_kwargs") or {}
    return name + (f" (env_kwargs {json.dumps(kw, sort_keys=True)})" if kw else "")


def _trained_with_vecnormalize(meta: dict[str, Any] | None) -> bool:
    if not meta:
        return False
    if "vecnormalize" in meta:
        return bool(meta["vecnormalize"])
    return bool(meta.get("config", {}).get("normalize"))


def load_policy(path: str | pathlib.Path, algo: str | None = None, device: str = "cpu", *,
                env_id: str | None = None, observation_space: spaces.Space | None = None,
                action_space: spaces.Space | None = None, missing_vecnormalize: str = "error") -> SB3Policy:
    """:func:`load_model` plus its VecNormalize statistics, as a batched :class:`SB3Policy`.

    ``observation_space`` / ``action_space``: the (per-env) spaces of the env the policy
    will act in (``env_id`` names it in messages); a model trained on other spaces raises
    :class:`IncompatibleModelError` naming the env it was trained on (from the run record).

    ``missing_vecnormalize``: what to do when the run record says the model was trained
    with VecNormalize but its statistics file (:func:`vecnormalize_path_for`) is missing.
    ``"error"`` (the default) raises :class:`MissingVecNormalizeError`: the policy would see
    raw observations where it was trained on normalised ones, and its actions would be
    meaningless. ``"warn"`` proceeds without normalisation and warns.
    """
    if missing_vecnormalize not in ("error", "warn"):
        raise ValueError(f"missing_vecnormalize must be 'error' or 'warn', got {missing_vecnormalize!r}")
    p = pathlib.Path(path)
    model, meta = load_model(p, algo=algo, device=device)
    trained_on = _trained_on(meta)
    target = env_id or "the env"
    for what, have, want in (("observation", model.observation_space, observation_space),
                             ("action", model.action_space, action_space)):
        if want is not None and not _same_space(have, want):
            raise IncompatibleModelError(
                f"{p} was trained on {trained_on} with {what} space {have}; {target} has {what} space {want}: "
                f"evaluate it on the env it was trained on")
    vn = vecnormalize_path_for(p)
    if vn.is_file():
        try:
            with open(vn, "rb") as fh:
                stats = pickle.load(fh)
        except Exception as exc:
            raise ModelLoadError(f"{vn}: VecNormalize statistics cannot be read: {exc}") from None
        if not isinstance(stats, VecNormalize):
            raise ModelLoadError(f"{vn} does not hold VecNormalize statistics")
        if stats.norm_obs:
            return SB3Policy(model, stats.obs_rms, stats.clip_obs, stats.epsilon, name=p.name, trained_on=trained_on)
    elif _trained_with_vecnormalize(meta):
        msg = (f"{p} was trained with VecNormalize but its statistics {vn} are missing: without them the policy "
               "sees raw observations and acts on garbage; copy the statistics saved with it beside the model")
        if missing_vecnormalize == "error":
            raise MissingVecNormalizeError(msg + " (load_policy(..., missing_vecnormalize='warn') proceeds anyway)")
        warnings.warn(msg + "; proceeding without normalisation", stacklevel=2)
    return SB3Policy(model, name=p.name, trained_on=trained_on)


def train(cfg: TrainConfig, out: str | pathlib.Path, resume: str | pathlib.Path | None = None,
          verbose: int = 0, *, overwrite: bool = False) -> TrainResult:
    """Train ``cfg.algo`` on ``cfg.env_id`` and write the run folder ``out`` (see module docstring).

    ``resume``: a checkpoint or model archive; its weights, optimiser state,
    timestep counter and VecNormalize statistics (when present next to it) are
    restored, and training continues up to ``cfg.timesteps`` total steps. ``out``
    may then already hold files (the run continues in place).

    ``overwrite``: allow ``out`` to hold an earlier run, whose :data:`RUN_ARTEFACTS` are
    deleted first. Without it (and without ``resume``) a non-empty ``out`` raises
    :class:`RunFolderError`; a folder another live training holds raises
    :class:`RunLockedError` whatever the flags.
    """
    out = pathlib.Path(out)
    if resume is not None:
        resume = pathlib.Path(resume)
        _check_archive(resume)
    with claim_run_folder(out, artefacts=RUN_ARTEFACTS, resume=resume is not None, overwrite=overwrite,
                          hint="pass --overwrite to replace it, --resume CHECKPOINT to continue it, or choose "
                               "another --out"):
        return _train_in(cfg, out, resume, verbose)


def _train_in(cfg: TrainConfig, out: pathlib.Path, resume: pathlib.Path | None, verbose: int) -> TrainResult:
    device = resolve_device(cfg.device)
    vn_in = None
    if resume is not None:
        cand = vecnormalize_path_for(resume)
        if cand.is_file():
            vn_in = cand
        elif cfg.normalize:
            raise MissingVecNormalizeError(f"--normalize is set but {cand} (the VecNormalize statistics of "
                                           f"{resume}) is missing")
    train_env = make_train_env(cfg, vn_in)
    eval_env = None
    try:
        cls = ALGO_CLASSES[cfg.algo]
        if resume is not None:
            model, _ = load_model(resume, algo=cfg.algo, env=train_env, device=device)
            model.tensorboard_log = str(out / "tb")
        else:
            model = cls("MlpPolicy", train_env, seed=cfg.seed, device=device, verbose=verbose,
                        tensorboard_log=str(out / "tb"),
                        **_algo_kwargs(cfg, isinstance(train_env.action_space, spaces.Box)))
        done = int(model.num_timesteps)
        remaining = cfg.timesteps - done
        n = cfg.n_envs
        stop = StopOnSigint("training")
        callbacks = [EpisodeInfoCallback()]
        if cfg.checkpoint_freq > 0:
            callbacks.append(AtomicCheckpointCallback(save_freq=max(cfg.checkpoint_freq // n, 1),
                                                      save_path=str(out / "checkpoints"), name_prefix="rl_model",
                                                      save_vecnormalize=True))
        eval_cb = None
        if cfg.eval_freq > 0:
            eval_env = make_eval_env(cfg, train_env)
            eval_cb = EvalCallback(eval_env, n_eval_episodes=cfg.n_eval_episodes,
                                   eval_freq=max(cfg.eval_freq // n, 1), best_model_save_path=None,
                                   log_path=str(out / "eval"), deterministic=True, verbose=verbose,
                                   callback_on_new_best=SaveBestCallback(out / "best"))
            callbacks.append(eval_cb)
        callbacks.append(StopOnRequestCallback(stop))
        core = getattr(train_env.unwrapped, "core", None)
        dyn = getattr(core, "dynamics", None)
        uses_vn = model.get_vec_normalize_env() is not None
        meta = {"config": cfg.to_dict(), "device": device, "resumed_from": str(resume) if resume else None,
                "dynamics": getattr(dyn, "name", None), "vecnormalize": uses_vn,
                "env": {"id": cfg.env_id, "observation_space": space_record(train_env.observation_space),
                        "action_space": space_record(train_env.action_space)},
                "status": "running"}
        record = atomic_write_text(out / RUN_META, json.dumps(meta, indent=2))
        t0 = time.perf_counter()
        # SIGINT inside this block stops learn() at the next step; the final artefacts are then
        # saved as usual (those of the last step). A second SIGINT raises KeyboardInterrupt, and the
        # atomic writes leave every file either as it was or complete.
        with stop:
            if remaining > 0:
                model.learn(total_timesteps=remaining, callback=CallbackList(callbacks),
                            reset_num_timesteps=resume is None, progress_bar=cfg.progress_bar,
                            tb_log_name=cfg.algo)
            wall = time.perf_counter() - t0
            interrupted = stop.requested
            model_path = save_model_atomic(model, out / "model.zip")
            vn_path = None
            venv_norm = model.get_vec_normalize_env()
            if venv_norm is not None:
                vn_path = save_vecnormalize_atomic(venv_norm, out / "vecnormalize.pkl")
            best = out / "best" / "best_model.zip"
            last_eval = None
            if eval_cb is not None and eval_cb.last_mean_reward != -np.inf:
                last_eval = float(eval_cb.last_mean_reward)
            meta.update({"num_timesteps": int(model.num_timesteps), "wall_s": wall,
                         "last_eval_mean_reward": last_eval, "status": "interrupted" if interrupted else "finished"})
            atomic_write_text(record, json.dumps(meta, indent=2))
    finally:
        train_env.close()
        if eval_env is not None:
            eval_env.close()
    return TrainResult(model_path, vn_path, best if best.is_file() else None, int(model.num_timesteps),
                       wall, device, last_eval, interrupted=interrupted, run_record=record)

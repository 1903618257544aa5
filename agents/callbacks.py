"""Stable-Baselines3 callbacks: episode metrics to TensorBoard, VecNormalize-aware best model.

:class:`EpisodeInfoCallback` reads the info dicts of episodes that finished in a
step (lobworld infos are empty except at episode end) and logs the mean of
every numeric key (e.g. ``shortfall_bps``, ``pnl``, fill counts) under
``episode/<key>`` each time SB3 dumps its logs.

:class:`AtomicCheckpointCallback` and :class:`SaveBestCallback` write their
archives under a temporary name and rename them into place
(:func:`lobworld.world_models.run_folder.atomic_path`), so a run killed while
saving never leaves a truncated model behind. :class:`StopOnRequestCallback` ends
``learn()`` at the next step once a stop was requested (Ctrl-C, see
:class:`lobworld.world_models.run_folder.StopOnSigint`).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from lobworld.world_models.run_folder import atomic_path

__all__ = ["EpisodeInfoCallback", "SaveVecNormalizeCallback", "SaveBestCallback", "AtomicCheckpointCallback",
           "StopOnRequestCallback", "save_model_atomic", "save_vecnormalize_atomic"]

#: info keys that are SB3 plumbing, not episode metrics
_SKIP = frozenset({"terminal_observation", "TimeLimit.truncated", "episode"})


class EpisodeInfoCallback(BaseCallback):
    """Log the mean of each numeric episode-info key over the episodes finished since the last dump."""

    def __init__(self, prefix: str = "episode", verbose: int = 0):
        super().__init__(verbose)
        self.prefix = prefix
        self.n_episodes = 0
        self.last: dict[str, float] = {}

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", ())
        dones = self.locals.get("dones")
        for i, info in enumerate(infos):
            if not info or (dones is not None and not dones[i]):
                continue
            self.n_episodes += 1
            for k, v in info.items():
                if k in _SKIP or isinstance(v, (bool, np.bool_)):
                    continue
                if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
                    # record_mean averages every value recorded until the next dump
                    self.logger.record_mean(f"{self.prefix}/{k}", float(v))
                    self.last[k] = float(v)
        return True


def save_model_atomic(model, path: str | pathlib.Path) -> pathlib.Path:
    """``model.save(path)`` through a temporary file and a rename (``path`` ends in ``.zip``)."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        model.save(str(tmp))
    return path


def save_vecnormalize_atomic(venv, path: str | pathlib.Path) -> pathlib.Path:
    """``VecNormalize.save(path)`` through a temporary file and a rename."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        venv.save(str(tmp))
    return path


class SaveVecNormalizeCallback(BaseCallback):
    """Called by EvalCallback on a new best model: save the VecNormalize stats next to it (atomically)."""

    def __init__(self, save_path: str | pathlib.Path, verbose: int = 0):
        super().__init__(verbose)
        self.save_path = pathlib.Path(save_path)

    def _on_step(self) -> bool:
        venv = self.model.get_vec_normalize_env()
        if venv is not None:
            save_vecnormalize_atomic(venv, self.save_path)
        return True


class SaveBestCallback(BaseCallback):
    """``callback_on_new_best`` of an EvalCallback built without ``best_model_save_path``:
    write ``<folder>/best_model.zip`` and, with normalisation, ``<folder>/vecnormalize.pkl``,
    each atomically."""

    def __init__(self, folder: str | pathlib.Path, verbose: int = 0):
        super().__init__(verbose)
        self.folder = pathlib.Path(folder)

    def _on_step(self) -> bool:
        save_model_atomic(self.model, self.folder / "best_model.zip")
        venv = self.model.get_vec_normalize_env()
        if venv is not None:
            save_vecnormalize_atomic(venv, self.folder / "vecnormalize.pkl")
        return True


class AtomicCheckpointCallback(CheckpointCallback):
    """SB3's :class:`CheckpointCallback` (same names: ``<prefix>_<N>_steps.zip`` and
    ``<prefix>_vecnormalize_<N>_steps.pkl``), each file written atomically; the
    VecNormalize statistics are written before the model, so a model archive that
    exists always has its statistics beside it."""

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            venv = self.model.get_vec_normalize_env()
            if self.save_vecnormalize and venv is not None:
                save_vecnormalize_atomic(venv, self._checkpoint_path("vecnormalize_", extension="pkl"))
            save_model_atomic(self.model, self._checkpoint_path(extension="zip"))
        return True


class StopOnRequestCallback(BaseCallback):
    """Return False (SB3 then ends ``learn()``) once ``stop.requested`` is true."""

    def __init__(self, stop, verbose: int = 0):
        super().__init__(verbose)
        self.stop = stop

    def _on_step(self) -> bool:
        return not self.stop.requested

"""Stable-Baselines3 callbacks: episode metrics to TensorBoard, VecNormalize-aware best model.

:class:`EpisodeInfoCallback` reads the info dicts of episodes that finished in a
step (lobworld infos are empty except at episode end) and logs the mean of
every numeric key (e.g. ``shortfall_bps``, ``pnl``, fill counts) under
``episode/<key>`` each time SB3 dumps its logs.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["EpisodeInfoCallback", "SaveVecNormalizeCallback"]

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


class SaveVecNormalizeCallback(BaseCallback):
    """Called by EvalCallback on a new best model: save the VecNormalize stats next to it."""

    def __init__(self, save_path: str | pathlib.Path, verbose: int = 0):
        super().__init__(verbose)
        self.save_path = pathlib.Path(save_path)

    def _on_step(self) -> bool:
        venv = self.model.get_vec_normalize_env()
        if venv is not None:
            self.save_path.parent.mkdir(parents=True, exist_ok=True)
            venv.save(str(self.save_path))
        return True

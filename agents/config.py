"""Typed training configuration (one dataclass, a docstring per field, TOML I/O).

The shipped defaults of an env id are the file its spec names
(:attr:`lobworld.envs.spec.EnvSpec.train_config`, one file per family in
``lobworld/agents/configs/``); a user file given with ``--config`` overrides them,
and explicit command-line flags override both. Unknown keys and badly typed values raise :class:`ConfigError`
naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from lobworld._checks import in_range, integer
from lobworld._config import Replaceable, from_mapping, read_toml
from lobworld.envs import spec as _spec
from lobworld.errors import LobworldError

__all__ = ["ConfigError", "TrainConfig", "ALGOS", "load_config", "default_config_path"]

ALGOS = ("PPO", "SAC", "A2C", "TD3")
#: algorithms that need a Box action space
_CONTINUOUS_ONLY = ("SAC", "TD3")


class ConfigError(LobworldError):
    """A training configuration value that is missing, unknown or invalid."""


@dataclass(frozen=True)
class TrainConfig(Replaceable):
    """Everything ``lobworld train`` needs; every field has a unit and a check."""

    env_id: str = "LOB-Execution-v0"
    """Registered lobworld env id."""
    algo: str = "PPO"
    """Stable-Baselines3 algorithm: PPO, SAC, A2C or TD3."""
    timesteps: int = 200_000
    """Total environment steps to train for (summed over the batch)."""
    n_envs: int = 64
    """Envs in the native batched VecEnv."""
    seed: int = 0
    """Training seed: env ``i`` is seeded ``seed + i``; the torch/numpy seed of the model."""
    eval_seed: int = 1_000_000
    """First seed of the evaluation VecEnv (disjoint from training seeds)."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    normalize: bool = False
    """Wrap the env in VecNormalize (observations and rewards)."""
    learning_rate: float = 3e-4
    """Optimiser step size."""
    gamma: float = 1.0
    """Discount factor; 1.0 suits finite-horizon execution (the objective is the undiscounted cost)."""
    n_steps: int = 64
    """PPO/A2C: rollout length per env between updates (steps)."""
    batch_size: int = 512
    """PPO/SAC/TD3: minibatch size (transitions)."""
    n_epochs: int = 10
    """PPO: passes over each rollout."""
    gae_lambda: float = 0.95
    """PPO/A2C: GAE lambda."""
    clip_range: float = 0.2
    """PPO: policy-ratio clip."""
    ent_coef: float = 0.0
    """PPO/A2C: entropy bonus coefficient."""
    buffer_size: int = 200_000
    """SAC/TD3: replay buffer capacity (transitions)."""
    learning_starts: int = 1_000
    """SAC/TD3: steps collected before the first update."""
    log_std_init: float = 0.0
    """PPO/A2C with Box actions: initial log standard deviation of the Gaussian policy (0: std 1).
    A smaller value keeps early exploration inside a narrow action box such as [0, 1]."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks."""
    checkpoint_freq: int = 50_000
    """Save a checkpoint (model + VecNormalize stats) every this many env steps (0: never)."""
    eval_freq: int = 20_000
    """Evaluate on the separate eval env every this many env steps (0: never)."""
    n_eval_episodes: int = 256
    """Episodes per evaluation (run in one batch of ``min(n_eval_episodes, 256)`` envs)."""
    progress_bar: bool = True
    """Show SB3's tqdm/rich progress bar."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env (override its registered ones)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "buffer_size",
                     "n_eval_episodes"):
            integer(name, getattr(self, name), error=ConfigError, what="a positive integer")
        for name in ("checkpoint_freq", "eval_freq", "learning_starts", "seed", "eval_seed"):
            integer(name, getattr(self, name), error=ConfigError, minimum=0, what="a non-negative integer")
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef"):
            in_range(name, getattr(self, name), 0.0, 1.0, lo_open=name == "learning_rate", error=ConfigError,
                     what="a number in [0.0, 1.0]")
        in_range("log_std_init", self.log_std_init, -5.0, 2.0, error=ConfigError, what="a number in [-5, 2]")
        if not self.net_arch or not all(isinstance(w, int) and w > 0 for w in self.net_arch):
            raise ConfigError(f"net_arch must be a list of positive layer widths, got {self.net_arch!r}")
        if not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a table, got {self.env_kwargs!r}")
        if self.seed == self.eval_seed or abs(self.eval_seed - self.seed) < self.n_envs:
            raise ConfigError(
                f"eval_seed {self.eval_seed} overlaps the training seeds {self.seed}..{self.seed + self.n_envs - 1}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>", base: "TrainConfig | None" = None
                  ) -> "TrainConfig":
        """``base`` (default ``TrainConfig()``) with the keys of ``data``; unknown keys and values of the
        wrong type raise :class:`ConfigError` naming ``source`` and the key
        (:func:`lobworld._config.from_mapping`, the reader the world-model config uses too)."""
        return from_mapping(cls, data, source=source, error=ConfigError, base=base, check_types=True,
                            tuples=("net_arch",))


def default_config_path(env_id: str) -> pathlib.Path | None:
    """The shipped defaults for ``env_id``: ``configs/<spec.train_config>`` (None for an id without a spec
    or a spec without defaults). A spec naming a file that is not shipped is a packaging bug
    (``FileNotFoundError``)."""
    s = _spec.find_spec(env_id)
    if s is None or s.train_config is None:
        return None
    p = pathlib.Path(str(resources.files("lobworld.agents") / "configs" / s.train_config))
    if not p.is_file():
        raise FileNotFoundError(f"{env_id}: its EnvSpec.train_config {s.train_config!r} is not shipped ({p})")
    return p


def _read_toml(path: pathlib.Path) -> dict[str, Any]:
    return read_toml(path, error=ConfigError)


def load_config(env_id: str, path: str | pathlib.Path | None = None, **overrides: Any) -> TrainConfig:
    """Shipped defaults for ``env_id``, then ``path`` (TOML), then ``overrides`` (None values ignored)."""
    cfg = TrainConfig(env_id=env_id)
    d = default_config_path(env_id)
    if d is not None:
        cfg = TrainConfig.from_dict({**_read_toml(d), "env_id": env_id}, source=str(d), base=cfg)
    if path is not None:
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = _read_toml(path)
        if "env_id" in data and data["env_id"] != env_id:
            raise ConfigError(f"{path}: env_id {data['env_id']!r} differs from --env {env_id!r}")
        cfg = TrainConfig.from_dict(data, source=str(path), base=cfg)
    ov = {k: v for k, v in overrides.items() if v is not None}
    if ov:
        cfg = TrainConfig.from_dict(ov, source="command line", base=cfg)
    return cfg

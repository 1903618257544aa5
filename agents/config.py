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
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

from lobworld.envs import spec as _spec
from lobworld.errors import LobworldError

__all__ = ["ConfigError", "TrainConfig", "ALGOS", "load_config", "default_config_path"]

ALGOS = ("PPO", "SAC", "A2C", "TD3")
#: algorithms that need a Box action space
_CONTINUOUS_ONLY = ("SAC", "TD3")


class ConfigError(LobworldError):
    """A training configuration value that is missing, unknown or invalid."""


@dataclass(frozen=True)
class TrainConfig:
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
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("checkpoint_freq", "eval_freq", "learning_starts", "seed", "eval_seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {v!r}")
        for name, lo, hi in (("learning_rate", 0.0, 1.0), ("gamma", 0.0, 1.0), ("gae_lambda", 0.0, 1.0),
                             ("clip_range", 0.0, 1.0), ("ent_coef", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi) or \
                    (name == "learning_rate" and v == 0):
                raise ConfigError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")
        if isinstance(self.log_std_init, bool) or not isinstance(self.log_std_init, (int, float)) or \
                not -5.0 <= self.log_std_init <= 2.0:
            raise ConfigError(f"log_std_init must be a number in [-5, 2], got {self.log_std_init!r}")
        if not self.net_arch or not all(isinstance(w, int) and w > 0 for w in self.net_arch):
            raise ConfigError(f"net_arch must be a list of positive layer widths, got {self.net_arch!r}")
        if not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a table, got {self.env_kwargs!r}")
        if self.seed == self.eval_seed or abs(self.eval_seed - self.seed) < self.n_envs:
            raise ConfigError(
                f"eval_seed {self.eval_seed} overlaps the training seeds {self.seed}..{self.seed + self.n_envs - 1}"
            )

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>", base: "TrainConfig | None" = None
                  ) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        clean: dict[str, Any] = {}
        defaults = base if base is not None else cls()
        for k, v in data.items():
            want = type(getattr(defaults, k))
            if k == "net_arch":
                if not isinstance(v, (list, tuple)):
                    raise ConfigError(f"{source}: net_arch must be a list of ints, got {v!r}")
                v = tuple(v)
            elif want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            elif want is not type(v) and not (want is dict and isinstance(v, dict)):
                raise ConfigError(f"{source}: {k} must be {want.__name__}, got {type(v).__name__} {v!r}")
            clean[k] = v
        try:
            return dataclasses.replace(defaults, **clean)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


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
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


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

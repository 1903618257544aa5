"""Versioned checkpoints of the learned bar dynamics (torch-free ``.npz``).

A checkpoint is one ``.npz`` file (``allow_pickle=False``) holding

* ``w/<name>``: every model parameter as stored by torch (float32), so a
  save/load round trip is bit-exact;
* ``meta``: a UTF-8 JSON document with ``format_version``, ``model_config``
  (:class:`~lobworld.world_models.dynamics_model.ModelConfig` fields; ``mid_head`` and
  ``mid_half_ticks`` only for a categorical mid head, ``ofi_head`` only when not
  Gaussian, ``spread_level`` only when true, so checkpoints written before those
  fields existed load unchanged), ``train_config`` (the training config as a
  dict), ``assets`` (per-asset :class:`~lobworld.world_models.dynamics_model.AssetStats`;
  ``flow_rho`` only when fitted), ``dt`` (model bar length in seconds),
  ``fingerprint`` (sha256 of each input data file) and ``metrics`` (validation
  figures).

Reading needs only NumPy, so building an env with ``dynamics="learned"`` does
not import torch. Every defect raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lobworld.errors import LobworldError
from lobworld.world_models.dynamics_model import AssetStats, ModelConfig
from lobworld.world_models.run_folder import atomic_path

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "file_fingerprint", "expected_shapes"]

#: bump when the layout or the meaning of a stored field changes
FORMAT_VERSION = 2


class CheckpointError(LobworldError):
    """A checkpoint that is missing, truncated, of another version, or does not match."""


@dataclass
class Checkpoint:
    """In-memory checkpoint: weights (float32 arrays named as torch names them) and metadata."""

    weights: dict[str, np.ndarray]
    model_config: ModelConfig
    assets: dict[str, AssetStats]
    dt: float
    fingerprint: dict[str, str]
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a :class:`BarWorldModel` with config ``cfg``."""
    n_flow = cfg.n_flow_out
    H, E = cfg.hidden, cfg.latent
    return {
        "enc.weight": (E, cfg.n_inputs), "enc.bias": (E,),
        "flow.weight": (n_flow, H + E), "flow.bias": (n_flow,),
        "gru.weight_ih_l0": (3 * H, E + 2), "gru.weight_hh_l0": (3 * H, H),
        "gru.bias_ih_l0": (3 * H,), "gru.bias_hh_l0": (3 * H,),
        "head.weight": (cfg.n_head_out, H + (1 if cfg.categorical else 0)), "head.bias": (cfg.n_head_out,),
    }


def file_fingerprint(paths) -> dict[str, str]:
    """``{file name: sha256 hex}`` of the given data files (streamed in 1 MiB blocks)."""
    out = {}
    for p in paths:
        p = pathlib.Path(p)
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[p.name] = h.hexdigest()
    return out


def save_checkpoint(ck: Checkpoint, path) -> pathlib.Path:
    """Write ``ck`` to ``path`` (``.npz``); validates shapes first. The file is written under a
    temporary name in the same folder and renamed onto ``path``, so an existing checkpoint is
    replaced whole or not at all."""
    _check_weights(ck.weights, ck.model_config, "<in memory>")
    meta = {
        "format_version": FORMAT_VERSION,
        "model_config": ck.model_config.to_dict(),
        "assets": {k: v.to_dict() for k, v in ck.assets.items()},
        "dt": float(ck.dt),
        "fingerprint": dict(ck.fingerprint),
        "train_config": ck.train_config,
        "metrics": ck.metrics,
    }
    path = pathlib.Path(path)
    arrays = {f"w/{k}": np.asarray(v) for k, v in ck.weights.items()}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a reader sees the old file or the new one
        np.savez(fh, **arrays)
    return path


def load_checkpoint(path, *, expect_fingerprint: dict[str, str] | None = None,
                    expect_model_config: ModelConfig | None = None) -> Checkpoint:
    """Read and validate a checkpoint.

    Raises :class:`CheckpointError` (naming the file and the problem) when the
    file is missing, truncated or not an npz, lacks ``meta`` or a weight, has
    another ``format_version``, a weight of the wrong shape/dtype or with
    NaN, or when ``expect_fingerprint`` / ``expect_model_config`` are given and
    differ from what is stored.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a readable .npz (truncated or corrupted?): {exc}") from exc
    if "meta" not in data:
        raise CheckpointError(f"checkpoint {path} has no 'meta' entry (not a lobworld checkpoint)")
    try:
        meta = json.loads(bytes(data["meta"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: 'meta' is not valid JSON: {exc}") from exc
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {ver!r}; this lobworld reads version {FORMAT_VERSION}")
    for key in ("model_config", "assets", "dt", "fingerprint"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {path}: meta lacks the key {key!r}")
    try:
        cfg = ModelConfig(**meta["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad model_config {meta['model_config']}: {exc}") from exc
    try:
        assets = {k: AssetStats(**v) for k, v in meta["assets"].items()}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad asset statistics: {exc}") from exc
    if not assets:
        raise CheckpointError(f"checkpoint {path}: no asset statistics stored")
    weights = {k[2:]: v for k, v in data.items() if k.startswith("w/")}
    _check_weights(weights, cfg, str(path))
    if expect_model_config is not None and expect_model_config != cfg:
        raise CheckpointError(f"checkpoint {path}: model config {cfg} differs from the expected {expect_model_config}")
    if expect_fingerprint is not None and dict(expect_fingerprint) != meta["fingerprint"]:
        raise CheckpointError(
            f"checkpoint {path}: data fingerprint mismatch: stored {meta['fingerprint']}, expected {expect_fingerprint}")
    dt = float(meta["dt"])
    if not (dt > 0 and np.isfinite(dt)):
        raise CheckpointError(f"checkpoint {path}: dt must be positive seconds, got {meta['dt']!r}")
    return Checkpoint(weights=weights, model_config=cfg, assets=assets, dt=dt,
                      fingerprint=dict(meta["fingerprint"]), train_config=meta.get("train_config", {}),
                      metrics=meta.get("metrics", {}), format_version=ver)


def _check_weights(weights: dict[str, np.ndarray], cfg: ModelConfig, where: str) -> None:
    want = expected_shapes(cfg)
    missing = sorted(set(want) - set(weights))
    if missing:
        raise CheckpointError(f"checkpoint {where}: missing weight(s) {missing}")
    extra = sorted(set(weights) - set(want))
    if extra:
        raise CheckpointError(f"checkpoint {where}: unexpected weight(s) {extra}")
    for k, shape in want.items():
        w = np.asarray(weights[k])
        if w.shape != shape:
            raise CheckpointError(f"checkpoint {where}: weight {k!r} has shape {w.shape}, expected {shape} "
                                  f"for {cfg}")
        if w.dtype != np.float32:
            raise CheckpointError(f"checkpoint {where}: weight {k!r} has dtype {w.dtype}, expected float32")
        if not np.all(np.isfinite(w)):
            raise CheckpointError(f"checkpoint {where}: weight {k!r} holds NaN or inf")

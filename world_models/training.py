"""Training and evaluation of the learned bar dynamics (:mod:`.dynamics_model`).

``train(paths, config, out_dir)`` builds bars from LOBSTER/Databento files via
:mod:`lobworld.world_models.data`, splits every day by time into
``train | early-stop | test`` (the test block is the last ``test_hours`` of
the day and is never seen in training or model selection), fits the model by
maximum likelihood with truncated back-propagation through time, and writes a
versioned checkpoint (:mod:`.checkpoint`) plus TensorBoard logs. The output folder
holds one run: it is locked while training and refused when it already holds
files unless ``overwrite=True`` (:mod:`.run_folder`); the checkpoint is written
atomically. SIGINT (Ctrl-C) stops training at the next gradient step and the
best-so-far model (by the early-stopping loss of the epochs completed) is saved as
usual, with ``metrics["interrupted"] = True``.

``evaluate(checkpoint, paths)`` scores the model on the test block of each day
against persistence, a linear order-flow regression and the parametric
Gaussian random walk, and checks calibration (PIT coverage).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import pathlib
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lobworld._checks import integer, non_negative, positive
from lobworld._config import Replaceable, from_mapping, read_toml
from lobworld.errors import LobworldError
from lobworld.world_models.checkpoint import Checkpoint, file_fingerprint, save_checkpoint
from lobworld.world_models.run_folder import StopOnSigint, claim_run_folder
from lobworld.world_models.dynamics_model import (
    CONTROL,
    F_IMB,
    F_OFI,
    F_RET,
    F_SVOL,
    MID_HEADS,
    MIRROR_SIGN,
    OFI_HEADS,
    AssetStats,
    ModelConfig,
    asset_stats,
    asset_scale,
    bar_features,
    half_tick_changes,
)

__all__ = ["WorldModelTrainConfig", "load_world_model_config", "DayBars", "load_day", "train", "train_on_days", "evaluate",
           "evaluate_discrete", "split_masks", "fit_flow_copula", "copula_loglik_gain", "RUN_ARTEFACTS", "TrainingError"]

log = logging.getLogger(__name__)


class TrainingError(LobworldError):
    """Bad input to world-model training or evaluation: a config value or file, a data file, too few bars."""


#: what a world-model run writes into its folder (``overwrite=True`` deletes these, and only these)
RUN_ARTEFACTS = ("model.npz", "tb")


@dataclass(frozen=True)
class WorldModelTrainConfig(Replaceable):
    """Settings of ``lobworld world-model train`` (TOML keys have the same names)."""

    freq: str = "60s"
    """Bar length as a pandas offset between "1s" and "1min" (also the model step dt)."""
    test_hours: float = 2.0
    """Last hours of every day held out for evaluation (never trained on, never used for selection)."""
    early_stop_hours: float = 0.5
    """Hours just before the test block used for early stopping."""
    hidden: int = 16
    """GRU hidden size."""
    latent: int = 8
    """Encoder output size."""
    n_mix: int = 3
    """Mixture components of the mid-change head."""
    spread_bins: int = 20
    """Categories of the spread head."""
    mid_head: str = "mixture"
    """Mid-change head, "mixture" or "categorical" (half ticks; see ``ModelConfig.mid_head``)."""
    mid_half_ticks: int = 12
    """``K`` of the categorical mid head: half-tick changes -K..K get a category each, beyond are two geometric tails."""
    ofi_head: str = "gaussian"
    """Law of the OFI in the flow head, "gaussian" or "zero_signed_lognormal" (1-second bars; see ``ModelConfig.ofi_head``)."""
    spread_level: bool = False
    """Feed the model the 30-minute level of the log spread (``ModelConfig.spread_level``)."""
    spread_prior_init: bool = False
    """Start the spread head's bias at the log frequencies of the training targets' bins (plus
    ``SPREAD_PRIOR_PSEUDO`` pseudo-counts) instead of near zero. Bins the training block never
    visits then start at probability ~1e-4 instead of 1/``spread_bins``, and cross-entropy (whose
    gradient on such a bin is its probability) barely moves them: otherwise the shipped 60 s model
    kept 2.7% of its spread mass in bins the training data never reached (spreads of 3-12x the
    level), real afternoon spreads never exceed 1.7x their median."""
    flow_copula: bool = True
    """After training, fit the Gaussian-copula correlation of the trade-imbalance and OFI draws per
    asset (:func:`fit_flow_copula`, stored as ``AssetStats.flow_rho``; Gaussian OFI head only)."""
    mirror: bool = False
    """Also fit on the buy/sell mirror image of every training day (mid changes, OFI, trade and
    top-of-book imbalances and signed volume negated): the law of the market is taken to be
    symmetric, so a one-day trend is not learned as a drift (the 1 s model: the GOOG training
    block fell $11 in 4 hours, and without mirroring the simulated mid drifted -$1.7 per hour)."""
    seq_len: int = 64
    """Length (bars) of a training window for truncated BPTT."""
    burn_in: int = 8
    """Bars at the start of each window that only warm up the hidden state (no loss)."""
    batch_size: int = 32
    """Windows per gradient step."""
    max_epochs: int = 200
    """Upper bound on epochs (an epoch covers the training bars about once)."""
    patience: int = 20
    """Stop after this many epochs without improving the early-stopping loss."""
    lr: float = 3e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    grad_clip: float = 5.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seed of torch and of the window sampler (runs are bit-reproducible on CPU)."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda"."""
    tensorboard: bool = True
    """Write TensorBoard scalars under ``<out>/tb``."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        try:
            secs = pd.Timedelta(pd.tseries.frequencies.to_offset(self.freq)).total_seconds()
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"TrainConfig.freq {self.freq!r} is not a pandas offset: {exc}") from exc
        if not 1.0 <= secs <= 60.0:
            raise TrainingError(f"TrainConfig.freq must be between 1s and 1min, got {self.freq!r}")
        for name in ("hidden", "latent", "n_mix", "spread_bins", "mid_half_ticks", "seq_len", "batch_size",
                     "max_epochs", "patience"):
            integer(f"TrainConfig.{name}", getattr(self, name), error=TrainingError, what="a positive int")
        if not (isinstance(self.burn_in, int) and 0 <= self.burn_in < self.seq_len):
            raise TrainingError(f"TrainConfig.burn_in must be an int in [0, seq_len), got {self.burn_in!r}")
        for name in ("lr", "grad_clip", "test_hours"):
            positive(f"TrainConfig.{name}", getattr(self, name), error=TrainingError, what="a positive number")
        for name in ("weight_decay", "early_stop_hours"):
            non_negative(f"TrainConfig.{name}", getattr(self, name), error=TrainingError,
                         what="a non-negative number")
        if self.mid_head not in MID_HEADS:
            raise TrainingError(f"TrainConfig.mid_head must be one of {MID_HEADS}, got {self.mid_head!r}")
        for name in ("mirror", "spread_level", "spread_prior_init", "flow_copula", "tensorboard", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TrainingError(f"TrainConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.ofi_head not in OFI_HEADS:
            raise TrainingError(f"TrainConfig.ofi_head must be one of {OFI_HEADS}, got {self.ofi_head!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainingError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        integer("TrainConfig.seed", self.seed, error=TrainingError, minimum=0, what="a non-negative int")

    @property
    def dt(self) -> float:
        """Bar length in seconds."""
        return float(pd.Timedelta(pd.tseries.frequencies.to_offset(self.freq)).total_seconds())

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(hidden=self.hidden, latent=self.latent, n_mix=self.n_mix, spread_bins=self.spread_bins,
                           mid_head=self.mid_head, mid_half_ticks=self.mid_half_ticks,
                           ofi_head=self.ofi_head, spread_level=self.spread_level)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_world_model_config(path) -> WorldModelTrainConfig:
    """Read a :class:`WorldModelTrainConfig` from a TOML file (top level or a ``[train]`` table).

    Unknown keys raise :class:`TrainingError` with the message of every lobworld config reader
    (:func:`lobworld._config.from_mapping`, which the RL ``lobworld.agents.config`` uses too)."""
    path = pathlib.Path(path)
    source = f"config file {path}"
    if not path.is_file():
        raise TrainingError(f"{source} does not exist")
    raw = read_toml(path, error=TrainingError, source=source)
    if "train" in raw and isinstance(raw["train"], dict):
        raw = raw["train"]
    return from_mapping(WorldModelTrainConfig, raw, source=source, error=TrainingError)


def __getattr__(name: str):
    """The old names ``TrainConfig`` and ``load_config`` (deprecated: they were also the names of
    the RL config in :mod:`lobworld.agents.config`)."""
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"lobworld.world_models.training.{name} is deprecated; use {new}", DeprecationWarning,
                  stacklevel=2)
    return globals()[new]


_DEPRECATED = {"TrainConfig": "WorldModelTrainConfig", "load_config": "load_world_model_config"}


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
@dataclass
class DayBars:
    """The bars of one asset-day and where they came from."""

    asset: str
    """Ticker (asset key of the normalisation statistics)."""
    bars: pd.DataFrame
    """Bars (``make_bars`` columns), indexed by bar end."""
    tick: float
    """Tick size (USD)."""
    files: list[pathlib.Path]
    """Input files (fingerprinted in the checkpoint)."""


def load_day(path, freq: str, *, strict: bool = True) -> DayBars:
    """Load one LOBSTER message file (orderbook inferred) or Databento file and make bars.

    ``strict`` as in :func:`lobworld.world_models.data.load_lobster` (False drops and counts bad rows).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise TrainingError(f"data file {path} does not exist")
    from lobworld.world_models import data as data_mod

    if "_message_" in path.name:
        ev = data_mod.load_lobster(path, strict=strict)
        files = [path, _orderbook_path(path)]
    else:
        ev = data_mod.load_databento(path, strict=strict)
        files = [path]
    bars = data_mod.make_bars(ev, freq=freq)
    ticker = str(ev.attrs.get("ticker") or path.name.split("_")[0])
    return DayBars(ticker, bars, float(ev.attrs.get("tick_size", 0.01)), files)


def _orderbook_path(message_path: pathlib.Path) -> pathlib.Path:
    return message_path.with_name(message_path.name.replace("_message_", "_orderbook_"))


def split_masks(index: pd.DatetimeIndex, test_hours: float, early_stop_hours: float):
    """Boolean masks (train, early_stop, test) over bar end times: test = the last hours of the day."""
    end = index.max()
    test_start = end - pd.Timedelta(hours=test_hours)
    es_start = test_start - pd.Timedelta(hours=early_stop_hours)
    test = index > test_start
    es = (index > es_start) & ~test
    train = ~test & ~es
    return np.asarray(train), np.asarray(es), np.asarray(test)


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("TrainConfig.device='cuda' but CUDA is not available")
    return torch.device(name)


_RUN_HINT = "pass --overwrite (overwrite=True) to replace it or choose another --out"


def train(paths, config: WorldModelTrainConfig, out_dir, *, overwrite: bool = False, strict: bool = True) -> Checkpoint:
    """Train on the given data files; write ``<out_dir>/model.npz`` (+ ``tb/``); return the checkpoint.

    ``out_dir`` (None: write nothing) must be new or empty unless ``overwrite`` (:data:`RUN_ARTEFACTS` of the
    earlier run are then deleted first); it is locked while training
    (:func:`lobworld.world_models.run_folder.claim_run_folder`). ``strict`` is passed to
    the loaders (False: bad rows are dropped and counted instead of raising).
    """
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise TrainingError("train: no data files given")
    for p in paths:  # before touching the run folder
        if not p.is_file():
            raise TrainingError(f"data file {p} does not exist")
    claim = (contextlib.nullcontext() if out_dir is None else
             claim_run_folder(out_dir, artefacts=RUN_ARTEFACTS, overwrite=overwrite, hint=_RUN_HINT))
    with claim:
        days = [load_day(p, config.freq, strict=strict) for p in paths]
        files = [f for d in days for f in d.files]
        return _train_on_days(days, config, None if out_dir is None else pathlib.Path(out_dir),
                              file_fingerprint(files))


def _stats_and_features(days: list[DayBars], config: WorldModelTrainConfig):
    stats: dict[str, AssetStats] = {}
    by_asset: dict[str, list[pd.DataFrame]] = {}
    masks = []
    for d in days:
        if len(d.bars) < 10:
            raise TrainingError(f"{d.files[0] if d.files else d.asset}: only {len(d.bars)} bars; need at least 10")
        tr, es, te = split_masks(d.bars.index, config.test_hours, config.early_stop_hours)
        if tr.sum() < config.seq_len + 1:
            raise TrainingError(f"{d.asset}: {int(tr.sum())} training bars, fewer than seq_len+1={config.seq_len + 1}; "
                             "shorten seq_len or test_hours")
        masks.append((tr, es, te))
        by_asset.setdefault(d.asset, []).append(d.bars[tr])
    ticks = {d.asset: d.tick for d in days}
    for a, frames in by_asset.items():
        stats[a] = asset_stats(pd.concat(frames), ticks[a])
    feats = [bar_features(d.bars, stats[d.asset]) for d in days]
    return stats, feats, masks


def _half_ticks(days: list[DayBars], config: WorldModelTrainConfig) -> list[np.ndarray]:
    """Targets of the categorical mid head (zeros, unused, for the mixture head: its data need not be on the lattice)."""
    if config.mid_head != "categorical":
        return [np.zeros(len(d.bars), np.int64) for d in days]
    return [half_tick_changes(d.bars, d.tick) for d in days]


def train_on_days(days: list[DayBars], config: WorldModelTrainConfig, out_dir,
                  fingerprint: dict[str, str] | None = None, *, overwrite: bool = False) -> Checkpoint:
    """Train on already-built bars (used by :func:`train` and by tests on generated data).

    ``out_dir=None`` writes nothing (no checkpoint file, no TensorBoard); otherwise the
    folder is claimed as in :func:`train`.
    """
    if out_dir is None:
        return _train_on_days(days, config, None, fingerprint)
    with claim_run_folder(out_dir, artefacts=RUN_ARTEFACTS, overwrite=overwrite, hint=_RUN_HINT):
        return _train_on_days(days, config, pathlib.Path(out_dir), fingerprint)


def _train_on_days(days: list[DayBars], config: WorldModelTrainConfig, out_dir: pathlib.Path | None,
                   fingerprint: dict[str, str] | None) -> Checkpoint:
    import torch

    stats, feats, masks = _stats_and_features(days, config)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = _device(config.device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a model this small is slower with intra-op threads
    try:
        hts, day_assets = _half_ticks(days, config), [d.asset for d in days]
        if config.mirror:  # the buy/sell mirror image of every day, same split
            feats = feats + [f * MIRROR_SIGN for f in feats]
            masks, hts, day_assets = masks + masks, hts + [-h for h in hts], day_assets + day_assets
        return _fit(stats=stats, feats=feats, masks=masks, config=config, dev=dev, out_dir=out_dir,
                    fingerprint=fingerprint, hts=hts, day_assets=day_assets)
    finally:
        torch.set_num_threads(threads)


def _fit(stats, feats, masks, config: WorldModelTrainConfig, dev, out_dir, fingerprint, hts, day_assets) -> Checkpoint:
    import torch

    from lobworld.world_models.dynamics_model import BarWorldModel

    model = BarWorldModel(config.model_config).to(dev)
    if config.spread_prior_init:
        _init_spread_prior(model, feats, masks)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)

    # training windows: start s with s..s+L inside the training block of one day
    L = config.seq_len
    starts = []
    for j, (tr, _, _) in enumerate(masks):
        last_train = int(np.flatnonzero(tr).max())
        for s in range(0, last_train - L + 1):
            starts.append((j, s))
    starts_arr = np.array(starts, dtype=np.int64)
    n_eff = sum(int(tr.sum()) for tr, _, _ in masks)
    steps_per_epoch = max(1, math.ceil(n_eff / ((L - config.burn_in) * config.batch_size)))
    full_x = [torch.as_tensor(f, device=dev) for f in feats]
    full_j = [torch.as_tensor(j, device=dev) for j in hts]  # half-tick mid changes (categorical head's target)
    scales = np.array([asset_scale(stats[a]) for a in day_assets], dtype=np.float32)  # categorical head input

    writer = None
    if config.tensorboard and out_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))

    def window_batch(idx):
        xs = np.stack([feats[j][s:s + L + 1] for j, s in starts_arr[idx]])
        x = torch.as_tensor(xs, device=dev)
        js = torch.as_tensor(np.stack([hts[j][s + 1:s + L + 1] for j, s in starts_arr[idx]]), device=dev)
        return x[:, :-1], x[:, 1:, CONTROL], x[:, 1:], js, torch.as_tensor(scales[starts_arr[idx, 0]], device=dev)

    def day_loss(mask_index: int) -> float:
        """Mean total NLL per bar over the block ``mask_index`` (1: early stop, 2: test) of every day."""
        tot, n = 0.0, 0
        with torch.no_grad():
            for j, x in enumerate(full_x):
                flow, head, _ = model(x[None, :-1], x[None, 1:, CONTROL], c=float(scales[j]))
                ls = model.losses(flow, head, x[None, 1:], full_j[j][None, 1:], x=x[None, :-1])
                m = torch.as_tensor(masks[j][mask_index][1:], device=dev)
                s = sum(v[0] for v in ls.values())
                tot += float(s[m].sum())
                n += int(m.sum())
        return tot / max(n, 1)

    it = range(config.max_epochs)
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(it, desc="train", unit="epoch")
        it = bar
    t0 = time.time()
    has_es = any(m[1].any() for m in masks)
    stop = StopOnSigint("world-model training")
    with stop:  # also over the saving below: a first SIGINT there is noted, a second aborts
        best, epochs_done = _epochs(it, model, opt, rng, starts_arr, steps_per_epoch, window_batch, day_loss,
                                    config, has_es, writer, bar, stop)
        interrupted = stop.requested
        if bar is not None:
            bar.close()
        if best[1] is None:  # SIGINT before the first epoch ended: nothing to keep
            if writer is not None:
                writer.close()
            raise KeyboardInterrupt("world-model training interrupted before its first epoch ended: nothing saved")
        model.load_state_dict(best[1])
        model.eval()
        metrics = {"best_epoch": best[2], "early_stop_nll": best[0], "test_nll": day_loss(2),
                   "train_seconds": round(time.time() - t0, 2)}
        if interrupted:
            metrics["interrupted"] = True
            metrics["epochs_completed"] = epochs_done
        if config.flow_copula and config.ofi_head == "gaussian":
            fit = fit_flow_copula(model, feats, masks, day_assets, stats)
            stats = {a: dataclasses.replace(st, flow_rho=fit[a]["rho"]) if a in fit else st
                     for a, st in stats.items()}
            metrics["flow_copula"] = fit
        if writer is not None:
            writer.add_scalar("loss/test_at_best", metrics["test_nll"], 0)
            writer.close()
        ck = Checkpoint(
            weights={k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()},
            model_config=config.model_config, assets=stats, dt=config.dt, fingerprint=fingerprint or {},
            train_config=config.to_dict(), metrics=metrics)
        if out_dir is not None:
            save_checkpoint(ck, out_dir / "model.npz")
    return ck


def _epochs(it, model, opt, rng, starts_arr, steps_per_epoch, window_batch, day_loss, config: WorldModelTrainConfig,
            has_es: bool, writer, bar, stop: StopOnSigint):
    """The epoch loop of :func:`_fit` (early stopping on ``day_loss(1)``). Returns ``(best, epochs_done)``
    with ``best = (loss, state dict or None, epoch)``; a stop request ends it at the next gradient
    step, and the epoch it cuts short is not scored."""
    import torch

    best = (math.inf, None, 0)
    bad = 0
    epochs_done = 0
    for epoch in it:
        model.train()
        tr_loss = 0.0
        for _ in range(steps_per_epoch):
            if stop.requested:
                return best, epochs_done
            idx = rng.integers(0, len(starts_arr), size=config.batch_size)
            x, a, y, js, cs = window_batch(idx)
            flow, head, _ = model(x, a, c=cs)
            ls = model.losses(flow, head, y, js, x=x)
            loss = sum(v[:, config.burn_in:].mean() for v in ls.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            tr_loss += loss.item() / steps_per_epoch
        model.eval()
        es_loss = day_loss(1) if has_es else tr_loss
        if writer is not None:
            writer.add_scalar("loss/train", tr_loss, epoch)
            writer.add_scalar("loss/early_stop", es_loss, epoch)
        if bar is not None:
            bar.set_postfix(train=f"{tr_loss:.3f}", early_stop=f"{es_loss:.3f}")
        epochs_done = epoch + 1
        log.info("epoch %d: train %.4f early-stop %.4f", epoch, tr_loss, es_loss)
        if es_loss < best[0] - 1e-4:
            best = (es_loss, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch)
            bad = 0
        else:
            bad += 1
            if bad >= config.patience:
                break
    return best, epochs_done


def _copula_pairs(model, x: np.ndarray, c: float | None = None):
    """Per bar t+1 of a day with features ``x``: the flow head's trade-imbalance category bounds as
    normal scores ``(alpha, beta)`` (the observed category k has ``Phi(alpha) = P(K < k)``,
    ``Phi(beta) = P(K <= k)``), the OFI's normal score ``z`` under its Gaussian head and whether the
    bar traded; teacher-forced on the day (float64 arrays of length ``len(x) - 1``). ``c``: the asset
    scale, which the state heads of a categorical-mid-head model need to run."""
    import torch
    from scipy.special import ndtri

    from lobworld.world_models.dynamics_model import F_TRADED, IMB_BINS, O_IMB, O_OFI_LS, O_OFI_MU, imb_bin

    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        flow, _, _ = model(xt[None, :-1], xt[None, 1:, CONTROL], c=c)
        p = torch.softmax(flow[0, :, O_IMB:O_IMB + IMB_BINS].double(), -1).numpy()
        k = imb_bin(xt[1:, F_IMB]).numpy()
    flow = flow[0].numpy().astype(np.float64)
    y = x[1:].astype(np.float64)
    cdf = np.concatenate([np.zeros((len(p), 1)), np.cumsum(p, 1)], 1)
    lo = np.clip(cdf[np.arange(len(k)), k], 1e-12, 1 - 1e-12)
    hi = np.clip(cdf[np.arange(len(k)), k + 1], 1e-12, 1 - 1e-12)
    z = (y[:, F_OFI] - flow[:, O_OFI_MU]) / np.exp(np.clip(flow[:, O_OFI_LS], -7.0, 5.0))
    return ndtri(lo), ndtri(hi), z, y[:, F_TRADED] > 0.5


def copula_loglik_gain(rho: float, alpha: np.ndarray, beta: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Log-likelihood gain (nats) per bar of the trade-imbalance category given the OFI under a
    Gaussian copula of correlation ``rho`` over the independent model:
    ``log([Phi((beta - rho z) / s) - Phi((alpha - rho z) / s)] / [Phi(beta) - Phi(alpha)])``, ``s = sqrt(1 - rho^2)``
    (the OFI's own likelihood is unchanged: the copula keeps both marginals)."""
    from scipy.special import ndtr

    s = math.sqrt(1.0 - rho * rho)
    num = ndtr((beta - rho * z) / s) - ndtr((alpha - rho * z) / s)
    den = ndtr(beta) - ndtr(alpha)
    return np.log(np.maximum(num, 1e-300)) - np.log(np.maximum(den, 1e-300))


def fit_flow_copula(model, feats: list[np.ndarray], masks, day_assets: list[str],
                    stats: dict[str, AssetStats]) -> dict[str, dict[str, float]]:
    """Maximum-likelihood Gaussian-copula correlation of the trade-imbalance and OFI draws, per asset.

    The flow head draws the bar's trade-imbalance category and its OFI independently given the
    state; in the data they move together. Under a Gaussian copula the category's uniform and the
    OFI's normal score have correlation ``rho`` (both marginals unchanged), so the likelihood of
    the pair gains :func:`copula_loglik_gain`. ``rho`` maximises it over the training-block bars
    with a trade (teacher-forced model); the gain is also reported on the early-stopping and test
    blocks (held-out evidence that the coupling is real). Returns ``{asset: {"rho", "n_train",
    "gain_train", "gain_early_stop", "gain_test"}}`` (gains in nats per traded bar; None without bars;
    with ``mirror`` the mirror images are among the bars, so ``n_train`` counts each bar twice).
    """
    from scipy.optimize import minimize_scalar

    by_asset: dict[str, list] = {}
    for x, (tr, es, te), a in zip(feats, masks, day_assets):
        c = asset_scale(stats[a]) if model.cfg.categorical else None
        al, be, z, traded = _copula_pairs(model, x, c)
        by_asset.setdefault(a, []).append((al, be, z, traded, tr[1:], es[1:], te[1:]))
    out = {}
    for a, parts in by_asset.items():
        cat = [np.concatenate([p[j] for p in parts]) for j in range(7)]
        al, be, z, traded = cat[:4]
        blocks = {name: m & traded for name, m in zip(("train", "early_stop", "test"), cat[4:])}
        m = blocks["train"]
        if m.sum() < 10:
            continue
        res = minimize_scalar(lambda r: -copula_loglik_gain(r, al[m], be[m], z[m]).sum(), bounds=(-0.99, 0.99),
                              method="bounded", options={"xatol": 1e-6})
        rho = float(res.x)
        out[a] = {"rho": rho, "n_train": int(m.sum())}
        for name, mb in blocks.items():
            out[a][f"gain_{name}"] = float(copula_loglik_gain(rho, al[mb], be[mb], z[mb]).mean()) if mb.any() else None
    return out


#: pseudo-count per spread bin of ``WorldModelTrainConfig.spread_prior_init``
SPREAD_PRIOR_PSEUDO = 0.05


def _init_spread_prior(model, feats: list[np.ndarray], masks) -> None:
    """Set the spread head's bias to the log bin frequencies of the training blocks' targets."""
    import torch

    from lobworld.world_models.dynamics_model import spread_bin

    S = model.cfg.spread_bins
    counts = np.zeros(S)
    for x, (tr, _, _) in zip(feats, masks):
        xt = torch.as_tensor(x)
        k = spread_bin(model.spread_target(xt[1:], xt[:-1]), S).numpy()
        counts += np.bincount(k[tr[1:]], minlength=S)
    freq = (counts + SPREAD_PRIOR_PSEUDO) / (counts.sum() + SPREAD_PRIOR_PSEUDO * S)
    m = model.cfg.n_mid_out
    with torch.no_grad():
        model.head.bias[m:m + S] = torch.as_tensor(np.log(freq), dtype=model.head.bias.dtype)


def model_from_checkpoint(ck: Checkpoint):
    """A torch :class:`BarWorldModel` (eval mode, CPU) holding the checkpoint's weights."""
    import torch

    from lobworld.world_models.dynamics_model import BarWorldModel

    model = BarWorldModel(ck.model_config)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in ck.weights.items()})
    return model.eval()


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def _gauss_logpdf(r, mu, sd):
    return -0.5 * ((r - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def _scores(r: np.ndarray, mean: np.ndarray, logpdf: np.ndarray, pit: np.ndarray | None) -> dict[str, float]:
    ss_res = float(np.sum((r - mean) ** 2))
    ss_tot = float(np.sum((r - r.mean()) ** 2))
    nz = (r != 0) & (mean != 0)  # a model that predicts no move makes no directional call
    out = {"loglik": float(np.mean(logpdf)), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
           "direction_acc": float(np.mean(np.sign(mean[nz]) == np.sign(r[nz]))) if nz.any() else float("nan")}
    if pit is not None:
        out["cover50"] = float(np.mean((pit > 0.25) & (pit < 0.75)))
        out["cover90"] = float(np.mean((pit > 0.05) & (pit < 0.95)))
    return out


def evaluate(ck: Checkpoint, paths=None, days: list[DayBars] | None = None, n_mc: int = 64,
             seed: int = 0) -> dict[str, Any]:
    """Score ``ck`` on the test block (last ``test_hours``) of each day.

    Mid changes are scored in units of each asset's ``sigma_bar`` (log
    densities in nats per bar, the same Jacobian for every model). Models:

    * ``model_given_flow``: the GRU given the bar's realised order flow (its
      control), the information set of the order-flow regression;
    * ``model_forecast``: the GRU with the bar's flow drawn from its own flow
      head (``n_mc`` Monte-Carlo draws): a genuine one-bar-ahead forecast;
    * ``persistence``: r_t = r_{t-1}, Gaussian residuals (training sd);
    * ``linear_ofi``: OLS of r_t on the bar's multi-level OFI, signed
      aggressive volume and trade imbalance (the model's control and more),
      fitted on the training block (Cont-Kukanov-Stoikov, contemporaneous);
    * ``parametric``: N(0, sigma_bar), the Gaussian random walk of
      :class:`lobworld.envs.dynamics.ParametricDynamics`.
    """
    import torch

    tc = ck.train_config
    test_hours = float(tc.get("test_hours", 2.0))
    es_hours = float(tc.get("early_stop_hours", 0.5))
    freq = tc.get("freq", f"{int(ck.dt)}s")
    if days is None:
        days = [load_day(p, freq) for p in paths]
    if ck.model_config.categorical:
        return evaluate_discrete(ck, days, n_mc=n_mc, seed=seed)
    model = model_from_checkpoint(ck)
    gen = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {k: [] for k in ("given", "fc", "persist", "ofi", "param")}
    per_day = []
    for d in days:
        if d.asset not in ck.assets:
            raise TrainingError(f"checkpoint has no statistics for asset {d.asset!r} (has {sorted(ck.assets)})")
        st = ck.assets[d.asset]
        x = bar_features(d.bars, st)
        tr, es, te = split_masks(d.bars.index, test_hours, es_hours)
        xt = torch.as_tensor(x)
        with torch.no_grad():
            flow, head, hs = model(xt[None, :-1], xt[None, 1:, CONTROL])
            r = xt[1:, F_RET]
            lp = model.ret_logpdf(head[0], r).numpy()
            mean, _ = model.ret_mean_var(head[0])
            pit = model.ret_cdf(head[0], r).numpy()
            # forecast: flow sampled from the flow head, h_{t+1} recomputed per draw
            h_prev = torch.cat([torch.zeros(1, ck.model_config.hidden), hs[0, :-1]], 0)
            z = model.encode(xt[:-1])
            fl = flow[0].unsqueeze(0).expand(n_mc, -1, -1)
            a = model.sample_flow(fl, generator=gen, rho=st.flow_rho)
            zz = z.unsqueeze(0).expand(n_mc, -1, -1)
            hh = h_prev.unsqueeze(0).expand(n_mc, -1, -1)
            hn = model.gru_step(torch.cat([zz, a], -1).reshape(-1, zz.shape[-1] + 2),
                                hh.reshape(-1, hh.shape[-1])).reshape(n_mc, -1, hh.shape[-1])
            hd = model.head(hn)
            lp_mc = model.ret_logpdf(hd, r.unsqueeze(0).expand(n_mc, -1))
            lp_fc = (torch.logsumexp(lp_mc, 0) - math.log(n_mc)).numpy()
            m_mc, _ = model.ret_mean_var(hd)
            mean_fc = m_mc.mean(0).numpy()
            pit_fc = model.ret_cdf(hd, r.unsqueeze(0).expand(n_mc, -1)).mean(0).numpy()
        r = r.numpy().astype(np.float64)
        m = te[1:]
        rows["given"].append((r[m], mean.numpy()[m], lp[m], pit[m]))
        rows["fc"].append((r[m], mean_fc[m], lp_fc[m], pit_fc[m]))
        trm = tr[1:]
        # persistence
        prev = x[:-1, F_RET].astype(np.float64)
        sd_p = float(np.std(r[trm] - prev[trm]))
        rows["persist"].append((r[m], prev[m], _gauss_logpdf(r[m], prev[m], sd_p), None))
        # linear OFI regression (contemporaneous flow)
        cols = [x[1:, F_OFI], x[1:, F_SVOL], x[1:, F_IMB]]
        X = np.column_stack([np.ones_like(r)] + cols)
        beta, *_ = np.linalg.lstsq(X[trm], r[trm], rcond=None)
        pred = X @ beta
        sd_o = float(np.std(r[trm] - pred[trm]))
        from scipy.stats import norm as _norm  # noqa: F401  (scipy is a dependency)

        rows["ofi"].append((r[m], pred[m], _gauss_logpdf(r[m], pred[m], sd_o),
                            _norm.cdf((r[m] - pred[m]) / sd_o)))
        # parametric Gaussian random walk (sd = 1 in sigma_bar units by construction)
        rows["param"].append((r[m], np.zeros(m.sum()), _gauss_logpdf(r[m], 0.0, 1.0), _norm.cdf(r[m])))
        per_day.append({"asset": d.asset, "test_bars": int(m.sum()),
                        "model_given_flow": _scores(r[m], mean.numpy()[m], lp[m], pit[m]),
                        "model_forecast": _scores(r[m], mean_fc[m], lp_fc[m], pit_fc[m]),
                        "linear_ofi": _scores(r[m], pred[m], _gauss_logpdf(r[m], pred[m], sd_o), None),
                        "persistence": _scores(r[m], prev[m], _gauss_logpdf(r[m], prev[m], sd_p), None),
                        "parametric": _scores(r[m], np.zeros(m.sum()), _gauss_logpdf(r[m], 0.0, 1.0), None)})
    names = {"given": "model_given_flow", "fc": "model_forecast", "persist": "persistence",
             "ofi": "linear_ofi", "param": "parametric"}
    pooled = {}
    for k, parts in rows.items():
        rr = np.concatenate([p[0] for p in parts])
        mm = np.concatenate([p[1] for p in parts])
        ll = np.concatenate([p[2] for p in parts])
        pit = None if parts[0][3] is None else np.concatenate([p[3] for p in parts])
        pooled[names[k]] = _scores(rr, mm, ll, pit)
    return {"pooled": pooled, "per_day": per_day, "dt": ck.dt, "test_hours": test_hours}


# ---------------------------------------------------------------------------
# evaluation of the categorical (half-tick) mid head
# ---------------------------------------------------------------------------
# A discrete model of the mid change j (integer half ticks) in the head's own parametrisation:
# log category probabilities lp (n, 2K+3) for (j < -K, -K, ..., K, j > K) and the log mean excess
# g_dn, g_up (n,) of the geometric tails.
def _cat_logpmf(lp, g_dn, g_up, j, K):
    c = np.clip(j, -K - 1, K + 1) + K + 1
    out = lp[np.arange(len(j)), c]
    e = np.maximum(np.abs(j) - K - 1, 0)
    g = np.where(j > 0, g_up, g_dn)
    sp = np.logaddexp(0.0, g)
    return out + np.where(np.abs(j) > K, e * (g - sp) - sp, 0.0)


def _cat_cdf(lp, g_dn, g_up, j, K):
    """P(J <= j)."""
    p = np.exp(lp)
    cum = np.cumsum(p, -1)
    c = np.clip(j, -K - 1, K + 1) + K + 1
    core = cum[np.arange(len(j)), c]
    lq_dn = g_dn - np.logaddexp(0.0, g_dn)
    lq_up = g_up - np.logaddexp(0.0, g_up)
    down = p[:, 0] * np.exp(lq_dn * np.maximum(-j - K - 1, 0))
    up = 1.0 - p[:, -1] * np.exp(lq_up * np.maximum(j - K, 0))
    return np.where(j < -K, down, np.where(j > K, up, core))


def _cat_mean(lp, g_dn, g_up, K):
    p = np.exp(lp)
    v = np.arange(-K, K + 1)
    return (p[:, 1:-1] * v).sum(-1) - p[:, 0] * (K + 1 + np.exp(g_dn)) + p[:, -1] * (K + 1 + np.exp(g_up))


def _fit_empirical(j: np.ndarray, K: int, smooth: float = 0.5):
    """Empirical pmf of half-tick changes in the categorical parametrisation (add-``smooth`` counts;
    geometric tails with the maximum-likelihood mean excess)."""
    c = np.clip(j, -K - 1, K + 1) + K + 1
    cnt = np.bincount(c, minlength=2 * K + 3).astype(float) + smooth
    lp = np.log(cnt / cnt.sum())
    g = []
    for tail in (j < -K, j > K):
        e = np.abs(j[tail]) - K - 1
        g.append(float(np.clip(math.log(max(e.mean(), 1e-3)) if e.size else -7.0, -7.0, 5.0)))
    return lp, g[0], g[1]


def _disc_scores(j, mean_ht, cdf_hi, cdf_lo, logp, unit, rng) -> dict[str, float]:
    """Scores of a discrete forecast: log-lik (nats per bar), R^2 / direction of the mean, randomised-PIT coverage."""
    u = rng.uniform(size=len(j))
    pit = cdf_lo + u * (cdf_hi - cdf_lo)  # randomised PIT: U(0,1) under a calibrated discrete forecast
    out = _scores(j * unit, mean_ht * unit, logp, pit)
    return out


def evaluate_discrete(ck: Checkpoint, days: list[DayBars], n_mc: int = 64, seed: int = 0) -> dict[str, Any]:
    """Score a categorical-head checkpoint on the test block: discrete mid changes in half ticks.

    Every model gives a probability mass function over the integer mid change ``j`` (half
    ticks) of each test bar; log-likelihoods are in nats per bar of ``j`` (comparable across
    rows; not comparable with the densities of the mixture evaluation). Coverage uses the
    randomised PIT ``F(j-1) + U (F(j) - F(j-1))``. R^2 and direction accuracy use the mean,
    in units of each asset's per-bar sd. Models, all fitted on the training block only:

    * ``model_given_flow`` / ``model_forecast``: the GRU given the bar's realised flow, or
      with the flow drawn from its flow head (``n_mc`` draws; the pmf is their average);
    * ``empirical``: the asset's unconditional pmf of ``j`` (counts for ``|j| <= K`` plus
      geometric tails), the discrete i.i.d. random walk;
    * ``markov``: the empirical pmf given the sign of the previous bar's change (persistence
      of the direction, a discrete first-order Markov chain);
    * ``linear_ofi_binned``: the OLS prediction of the mid change from the bar's OFI, signed
      volume and trade imbalance (as in :func:`evaluate`), cut into ``n_bins = 10``
      training-quantile bins, each with its own empirical pmf;
    * ``parametric``: ``N(0, sigma_bar)`` discretised to half ticks (the Gaussian random walk
      of :class:`lobworld.envs.dynamics.ParametricDynamics` on the half-tick lattice).

    Also returns, per model, ``p_zero`` (mean predicted probability of no mid change) beside
    the realised share of zero changes.
    """
    import torch
    from scipy.stats import norm

    tc = ck.train_config
    test_hours = float(tc.get("test_hours", 2.0))
    es_hours = float(tc.get("early_stop_hours", 0.5))
    K = ck.model_config.mid_half_ticks
    model = model_from_checkpoint(ck)
    gen = torch.Generator().manual_seed(seed)
    names = ("model_given_flow", "model_forecast", "empirical", "markov", "linear_ofi_binned", "parametric")
    parts: dict[str, list] = {k: [] for k in names}
    per_day = []
    for d in days:
        if d.asset not in ck.assets:
            raise TrainingError(f"checkpoint has no statistics for asset {d.asset!r} (has {sorted(ck.assets)})")
        st = ck.assets[d.asset]
        x = bar_features(d.bars, st)
        jall = half_tick_changes(d.bars, d.tick)
        tr, es, te = split_masks(d.bars.index, test_hours, es_hours)
        m, trm = te[1:], tr[1:]
        j = jall[1:]
        jt = j[m]
        xt = torch.as_tensor(x)
        models: dict[str, tuple] = {}  # name -> (mean (n,), cdf(j) (n,), cdf(j-1) (n,), logp (n,), p0 (n,))
        cs = asset_scale(st)
        with torch.no_grad():
            flow, head, hs = model(xt[None, :-1], xt[None, 1:, CONTROL], c=cs)
            hd = head[0][torch.as_tensor(m)]
            jj = torch.as_tensor(jt)
            mean, _ = model.mid_mean_var(hd)
            models["model_given_flow"] = (mean.numpy(), model.mid_cdf(hd, jj).numpy(),
                                          model.mid_cdf(hd, jj - 1).numpy(), model.mid_logpmf(hd, jj).numpy(),
                                          model.mid_logpmf(hd, torch.zeros_like(jj)).exp().numpy())
            h_prev = torch.cat([torch.zeros(1, ck.model_config.hidden), hs[0, :-1]], 0)[torch.as_tensor(m)]
            z = model.encode(xt[:-1])[torch.as_tensor(m)]
            fl = flow[0][torch.as_tensor(m)].unsqueeze(0).expand(n_mc, -1, -1)
            a = model.sample_flow(fl, generator=gen, rho=st.flow_rho)
            zz = z.unsqueeze(0).expand(n_mc, -1, -1)
            hh = h_prev.unsqueeze(0).expand(n_mc, -1, -1)
            hn = model.gru_step(torch.cat([zz, a], -1).reshape(-1, zz.shape[-1] + 2),
                                hh.reshape(-1, hh.shape[-1])).reshape(n_mc, -1, hh.shape[-1])
            hm = model.state_head(hn, cs)
            jm = jj.unsqueeze(0).expand(n_mc, -1)
            lp_mc = model.mid_logpmf(hm, jm)
            models["model_forecast"] = (model.mid_mean_var(hm)[0].mean(0).numpy(), model.mid_cdf(hm, jm).mean(0).numpy(),
                                        model.mid_cdf(hm, jm - 1).mean(0).numpy(),
                                        (torch.logsumexp(lp_mc, 0) - math.log(n_mc)).numpy(),
                                        model.mid_logpmf(hm, torch.zeros_like(jm)).exp().mean(0).numpy())

        def table(lp, gd, gu, rows):
            n = len(rows)
            LP, GD, GU = lp[rows], gd[rows], gu[rows]
            return (_cat_mean(LP, GD, GU, K), _cat_cdf(LP, GD, GU, jt, K), _cat_cdf(LP, GD, GU, jt - 1, K),
                    _cat_logpmf(LP, GD, GU, jt, K), np.exp(_cat_logpmf(LP, GD, GU, np.zeros(n, np.int64), K)))

        nt = int(m.sum())
        lp0, gd0, gu0 = _fit_empirical(j[trm], K)
        models["empirical"] = table(lp0[None], np.array([gd0]), np.array([gu0]), np.zeros(nt, np.int64))
        # markov: state = sign of the previous bar's change
        prev = np.sign(jall[:-1])
        fits = [_fit_empirical(j[trm & (prev == s)], K) for s in (-1, 0, 1)]
        LPs = np.stack([f[0] for f in fits])
        models["markov"] = table(LPs, np.array([f[1] for f in fits]), np.array([f[2] for f in fits]),
                                 (prev[m] + 1).astype(np.int64))
        # linear OFI regression, binned
        X = np.column_stack([np.ones(len(j)), x[1:, F_OFI], x[1:, F_SVOL], x[1:, F_IMB]]).astype(np.float64)
        beta, *_ = np.linalg.lstsq(X[trm], j[trm].astype(np.float64), rcond=None)
        pred = X @ beta
        edges = np.quantile(pred[trm], np.linspace(0, 1, 11)[1:-1])
        b = np.searchsorted(edges, pred)
        fits = [_fit_empirical(j[trm & (b == k)], K) for k in range(10)]
        models["linear_ofi_binned"] = table(np.stack([f[0] for f in fits]), np.array([f[1] for f in fits]),
                                            np.array([f[2] for f in fits]), b[m])
        # parametric Gaussian random walk on the half-tick lattice
        c = 0.5 * st.tick / st.sigma_bar
        hi, lo = (jt + 0.5) * c, (jt - 0.5) * c
        pj = np.where(jt >= 0, norm.sf(lo) - norm.sf(hi), norm.cdf(hi) - norm.cdf(lo))
        models["parametric"] = (np.zeros(nt), norm.cdf(hi), norm.cdf(lo), np.log(np.maximum(pj, 1e-300)),
                                np.full(nt, norm.cdf(0.5 * c) - norm.cdf(-0.5 * c)))
        unit = 0.5 * st.tick / st.sigma_bar
        day = {"asset": d.asset, "test_bars": nt, "zero_share": float(np.mean(jt == 0)),
               "sd_half_ticks": float(np.std(jt))}
        for k, (mean_, chi, clo, lp, p0) in models.items():
            parts[k].append((jt, mean_, chi, clo, lp, p0, unit))
            day[k] = _disc_scores(jt, mean_, chi, clo, lp, unit, np.random.default_rng(seed))
            day[k]["p_zero"] = float(np.mean(p0))
        per_day.append(day)
    pooled = {}
    for k, ps in parts.items():
        cat = [np.concatenate([p[i] for p in ps]) for i in range(6)]
        unit = np.concatenate([np.full(len(p[0]), p[6]) for p in ps])
        jt, mean_, chi, clo, lp, p0 = cat
        u = np.random.default_rng(seed).uniform(size=len(jt))
        pit = clo + u * (chi - clo)
        pooled[k] = _scores(jt * unit, mean_ * unit, lp, pit)
        pooled[k]["p_zero"] = float(np.mean(p0))
    jall_t = np.concatenate([p[0] for p in parts["empirical"]])
    return {"pooled": pooled, "per_day": per_day, "dt": ck.dt, "test_hours": test_hours, "discrete": True,
            "half_ticks": K, "zero_share": float(np.mean(jall_t == 0))}

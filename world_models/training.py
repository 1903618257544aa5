"""Training and evaluation of the learned bar dynamics (:mod:`.dynamics_model`).

``train(paths, config, out_dir)`` builds bars from LOBSTER/Databento files via
:mod:`lobworld.world_models.data`, splits every day by time into
``train | early-stop | test`` (the test block is the last ``test_hours`` of
the day and is never seen in training or model selection), fits the model by
maximum likelihood with truncated back-propagation through time, and writes a
versioned checkpoint (:mod:`.checkpoint`) plus TensorBoard logs.

``evaluate(checkpoint, paths)`` scores the model on the test block of each day
against persistence, a linear order-flow regression and the parametric
Gaussian random walk, and checks calibration (PIT coverage).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
import tomllib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from lobworld.world_models.checkpoint import Checkpoint, file_fingerprint, save_checkpoint
from lobworld.world_models.dynamics_model import (
    CONTROL,
    F_IMB,
    F_OFI,
    F_RET,
    F_SVOL,
    AssetStats,
    ModelConfig,
    asset_stats,
    bar_features,
)

__all__ = ["TrainConfig", "load_config", "DayBars", "load_day", "train", "train_on_days", "evaluate",
           "split_masks"]


@dataclass(frozen=True)
class TrainConfig:
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
            raise ValueError(f"TrainConfig.freq {self.freq!r} is not a pandas offset: {exc}") from exc
        if not 1.0 <= secs <= 60.0:
            raise ValueError(f"TrainConfig.freq must be between 1s and 1min, got {self.freq!r}")
        for name in ("hidden", "latent", "n_mix", "spread_bins", "seq_len", "batch_size", "max_epochs", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.burn_in, int) and 0 <= self.burn_in < self.seq_len):
            raise ValueError(f"TrainConfig.burn_in must be an int in [0, seq_len), got {self.burn_in!r}")
        for name in ("lr", "grad_clip", "test_hours"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {v!r}")
        for name in ("weight_decay", "early_stop_hours"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"TrainConfig.{name} must be a non-negative number, got {v!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be a non-negative int, got {self.seed!r}")

    @property
    def dt(self) -> float:
        """Bar length in seconds."""
        return float(pd.Timedelta(pd.tseries.frequencies.to_offset(self.freq)).total_seconds())

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(hidden=self.hidden, latent=self.latent, n_mix=self.n_mix, spread_bins=self.spread_bins)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a TOML file (top level or a ``[train]`` table)."""
    path = pathlib.Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from exc
    if "train" in raw and isinstance(raw["train"], dict):
        raw = raw["train"]
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"config file {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return TrainConfig(**raw)
    except ValueError as exc:
        raise ValueError(f"config file {path}: {exc}") from exc


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


def load_day(path, freq: str) -> DayBars:
    """Load one LOBSTER message file (orderbook inferred) or Databento file and make bars."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"data file {path} does not exist")
    from lobworld.world_models import data as data_mod

    if "_message_" in path.name:
        ev = data_mod.load_lobster(path)
        files = [path, _orderbook_path(path)]
    else:
        ev = data_mod.load_databento(path)
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
        raise ValueError("TrainConfig.device='cuda' but CUDA is not available")
    return torch.device(name)


def train(paths, config: TrainConfig, out_dir) -> Checkpoint:
    """Train on the given data files; write ``<out_dir>/model.npz`` (+ ``tb/``); return the checkpoint."""
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise ValueError("train: no data files given")
    days = [load_day(p, config.freq) for p in paths]
    files = [f for d in days for f in d.files]
    return train_on_days(days, config, out_dir, fingerprint=file_fingerprint(files))


def _stats_and_features(days: list[DayBars], config: TrainConfig):
    stats: dict[str, AssetStats] = {}
    by_asset: dict[str, list[pd.DataFrame]] = {}
    masks = []
    for d in days:
        if len(d.bars) < 10:
            raise ValueError(f"{d.files[0] if d.files else d.asset}: only {len(d.bars)} bars; need at least 10")
        tr, es, te = split_masks(d.bars.index, config.test_hours, config.early_stop_hours)
        if tr.sum() < config.seq_len + 1:
            raise ValueError(f"{d.asset}: {int(tr.sum())} training bars, fewer than seq_len+1={config.seq_len + 1}; "
                             "shorten seq_len or test_hours")
        masks.append((tr, es, te))
        by_asset.setdefault(d.asset, []).append(d.bars[tr])
    ticks = {d.asset: d.tick for d in days}
    for a, frames in by_asset.items():
        stats[a] = asset_stats(pd.concat(frames), ticks[a])
    feats = [bar_features(d.bars, stats[d.asset]) for d in days]
    return stats, feats, masks


def train_on_days(days: list[DayBars], config: TrainConfig, out_dir,
                  fingerprint: dict[str, str] | None = None) -> Checkpoint:
    """Train on already-built bars (used by :func:`train` and by tests on generated data).

    ``out_dir=None`` writes nothing (no checkpoint file, no TensorBoard).
    """
    import torch

    out_dir = pathlib.Path(out_dir) if out_dir is not None else None
    stats, feats, masks = _stats_and_features(days, config)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = _device(config.device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a model this small is slower with intra-op threads
    try:
        return _fit(stats=stats, feats=feats, masks=masks, config=config, dev=dev, out_dir=out_dir,
                    fingerprint=fingerprint)
    finally:
        torch.set_num_threads(threads)


def _fit(stats, feats, masks, config: TrainConfig, dev, out_dir, fingerprint) -> Checkpoint:
    import torch

    from lobworld.world_models.dynamics_model import BarWorldModel

    model = BarWorldModel(config.model_config).to(dev)
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

    writer = None
    if config.tensorboard and out_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))

    def window_batch(idx):
        xs = np.stack([feats[j][s:s + L + 1] for j, s in starts_arr[idx]])
        x = torch.as_tensor(xs, device=dev)
        return x[:, :-1], x[:, 1:, CONTROL], x[:, 1:]

    def day_loss(mask_index: int) -> float:
        """Mean total NLL per bar over the block ``mask_index`` (1: early stop, 2: test) of every day."""
        tot, n = 0.0, 0
        with torch.no_grad():
            for j, x in enumerate(full_x):
                flow, head, _ = model(x[None, :-1], x[None, 1:, CONTROL])
                ls = model.losses(flow, head, x[None, 1:])
                m = torch.as_tensor(masks[j][mask_index][1:], device=dev)
                s = sum(v[0] for v in ls.values())
                tot += float(s[m].sum())
                n += int(m.sum())
        return tot / max(n, 1)

    best = (math.inf, None, 0)
    bad = 0
    it = range(config.max_epochs)
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(it, desc="train", unit="epoch")
        it = bar
    t0 = time.time()
    has_es = any(m[1].any() for m in masks)
    for epoch in it:
        model.train()
        tr_loss = 0.0
        for _ in range(steps_per_epoch):
            idx = rng.integers(0, len(starts_arr), size=config.batch_size)
            x, a, y = window_batch(idx)
            flow, head, _ = model(x, a)
            ls = model.losses(flow, head, y)
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
        if es_loss < best[0] - 1e-4:
            best = (es_loss, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch)
            bad = 0
        else:
            bad += 1
            if bad >= config.patience:
                break
    if bar is not None:
        bar.close()
    model.load_state_dict(best[1])
    model.eval()
    metrics = {"best_epoch": best[2], "early_stop_nll": best[0], "test_nll": day_loss(2),
               "train_seconds": round(time.time() - t0, 2)}
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
    model = model_from_checkpoint(ck)
    gen = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {k: [] for k in ("given", "fc", "persist", "ofi", "param")}
    per_day = []
    for d in days:
        if d.asset not in ck.assets:
            raise ValueError(f"checkpoint has no statistics for asset {d.asset!r} (has {sorted(ck.assets)})")
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
            z = torch.tanh(model.enc(xt[:-1]))
            fl = flow[0].unsqueeze(0).expand(n_mc, -1, -1)
            a = model.sample_flow(fl, generator=gen)
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

"""Learned tick model: a GRU marked point process over order-book events (torch definition, loss, a
small training loop).

Shape (V-M-C): an encoder of the book state and the last event, a GRU over events, and hierarchical
heads for the next event:

* time: a mixture of ``n_mix`` log-normals over the inter-arrival (a Gaussian mixture over
  ``y = log_dt``, log seconds, floored at ``TokenConfig.min_dt_s``);
* type (5 classes), then side given type, then level given (type, side) and size bin given
  (type, side) (level and size conditionally independent given both).

The log-likelihood of one event is
``log p(y) + log p(type) + log p(side | type) + log p(level | type, side) + log p(size | type, side)``
(nats; the time term is a density over log seconds, the marks are probabilities). The level target is
:func:`level_class` (ticks behind the same-side best, clipped to ``+-level_max``).

Input at step ``n`` (predicting token ``n``): the marks and inter-arrival of token ``n - 1`` and the
book context of token ``n`` (the book after event ``n - 1``: spread, top-k sizes, imbalance, time of
day), standardised with training-block statistics.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from lobworld.errors import LobworldError
from lobworld.world_models.data.events import (
    N_TYPES, SESSION_LENGTH_S, SESSION_OPEN_S, EventTokens, TokenConfig, level_class,
)

__all__ = ["TickModelConfig", "TickModelError", "save_tick_model", "load_tick_model", "load_fitted_tick_model",
           "shipped_tick_weights", "tick_features", "TickTargets", "TickGRU", "train_tick_model",
           "event_nats", "TERMS", "TickTrainConfig", "load_tick_config", "tick_config_toml", "config_kind",
           "train_tick_run", "held_out_scores", "TICK_RUN_ARTEFACTS"]


OFF_SCALE = float(2 ** 40)
"""Standardisation scale of a switched-off input column (``TickModelConfig.time_of_day = False``):
the clock (at most a few units) divided by it (about 1.1e12, exact in float32) is below the float32
resolution of the other inputs."""


@dataclass(frozen=True)
class TickModelConfig:
    """Settings of the tick GRU and its training loop."""

    hidden: int = 64
    """GRU hidden size."""
    embed: int = 48
    """Encoder output size (input of the GRU)."""
    n_mix: int = 4
    """Log-normal components of the inter-arrival head."""
    level_max: int = 64
    """Levels are clipped to ``-level_max..level_max`` ticks (``2 * level_max + 1`` classes)."""
    seq_len: int = 128
    """Truncated-BPTT window, events."""
    batch: int = 32
    """Parallel contiguous segments of the training block per step."""
    lr: float = 3e-3
    """Adam learning rate."""
    epochs: int = 40
    """Maximum passes over the training block."""
    patience: int = 4
    """Epochs without an early-stop improvement before stopping."""
    seed: int = 0
    """Seed of the weight init and segment offsets (torch and NumPy generators)."""
    device: str = "cpu"
    """torch device ("cpu", "cuda")."""
    log_s_max: float = 4.0
    """Upper bound of a time component's log sd (log of log-seconds). The density clips ``log_s`` to
    ``[-6, min(4, log_s_max)]``; below 4 the raw head output above the bound is also pushed back by a
    penalty ``relu(raw - log_s_max)^2`` (added to the time term in training only), so that the
    simulator's fixed clip at 4 never binds and draws from the same density. 4.0 (the default) is the
    shipped weights' setting: there a component of tiny weight with a log sd near 4 (sd ~55 log-s)
    carries the mean inter-arrival (hours-long draws; ``benchmarks/tick_flow_rate.py``)."""
    time_of_day: bool = True
    """Feed the session clock (the last input column) to the encoder. False switches it off without
    changing the input layout: its standardisation is set to mean 0 and scale :data:`OFF_SCALE`, so
    the encoder sees 0 for every clock value, in training and in every simulator that reads the
    checkpoint. Trained on one day, the model has never seen the held-out hours' clock values, and
    extrapolating the encoder in them is a guess (``docs/tick_world_models.md``)."""


@dataclass(frozen=True, eq=False)
class TickTargets:
    """Per-token targets: ``y`` (log_dt), ``etype``, ``side`` (0 bid, 1 ask), ``level`` class, ``size`` bin."""

    y: np.ndarray
    etype: np.ndarray
    side: np.ndarray
    level: np.ndarray
    size: np.ndarray


def tick_features(tokens: EventTokens, level_max: int) -> tuple[np.ndarray, TickTargets]:
    """Raw (unstandardised) inputs ``(n, F)`` float32 and the targets of every token."""
    n = len(tokens)
    lot = tokens.scale.lot
    et = tokens.etype.astype(np.int64)
    prev = np.zeros((n, N_TYPES + 5), np.float32)
    onehot = np.eye(N_TYPES, dtype=np.float32)[et]
    prev[1:, :N_TYPES] = onehot[:-1]
    prev[1:, N_TYPES] = tokens.side[:-1]
    prev[1:, N_TYPES + 1] = np.clip(tokens.level[:-1], -level_max, level_max) / level_max
    prev[1:, N_TYPES + 2] = np.log(tokens.size[:-1] / lot)
    prev[1:, N_TYPES + 3] = tokens.log_dt[:-1]
    prev[1:, N_TYPES + 4] = tokens.dt_ns[:-1] == 0
    spread = np.where(tokens.spread > 0, tokens.spread, 0).astype(np.float32)
    ctx = np.concatenate([
        np.log1p(spread)[:, None],
        np.log1p(tokens.bid_sz / lot), np.log1p(tokens.ask_sz / lot),
        tokens.imbalance[:, None],
        ((tokens.tod_s - SESSION_OPEN_S) / SESSION_LENGTH_S).astype(np.float32)[:, None],
    ], axis=1).astype(np.float32)
    x = np.concatenate([prev, ctx], axis=1)
    tg = TickTargets(y=tokens.log_dt.astype(np.float32), etype=et, side=(tokens.side < 0).astype(np.int64),
                     level=level_class(tokens.level, level_max), size=tokens.size_bin.astype(np.int64))
    return x, tg


def _torch():
    import torch

    return torch


class TickGRU:
    """Factory for the torch module (torch is imported lazily, as in the bar models)."""

    def __new__(cls, n_features: int, n_size_bins: int, config: TickModelConfig, feat_mean=None, feat_std=None):
        torch = _torch()
        nn = torch.nn

        class _Net(nn.Module):
            def __init__(self):
                super().__init__()
                c = config
                self.config = c
                self.n_levels = 2 * c.level_max + 1
                self.n_size = n_size_bins
                mean = torch.zeros(n_features) if feat_mean is None else torch.as_tensor(feat_mean, dtype=torch.float32)
                std = torch.ones(n_features) if feat_std is None else torch.as_tensor(feat_std, dtype=torch.float32)
                self.register_buffer("feat_mean", mean)
                self.register_buffer("feat_std", std)
                self.enc = nn.Sequential(nn.Linear(n_features, c.embed), nn.Tanh())
                self.gru = nn.GRU(c.embed, c.hidden, batch_first=True)
                h = c.hidden + c.embed  # heads see the GRU state and the current encoding (book now)
                self.time_head = nn.Linear(h, 3 * c.n_mix)
                self.type_head = nn.Linear(h, N_TYPES)
                self.side_head = nn.Linear(h, 2 * N_TYPES)
                self.level_head = nn.Linear(h, 2 * N_TYPES * self.n_levels)
                self.size_head = nn.Linear(h, 2 * N_TYPES * n_size_bins)

            def forward(self, x, h0=None):
                z = self.enc((x - self.feat_mean) / self.feat_std)
                out, h = self.gru(z, h0)
                return torch.cat([out, z], dim=-1), h

            def nll(self, feats, y, etype, side, level, size):
                """Per-event negative log-likelihood terms (time, type, side, level, size), nats."""
                F = torch.nn.functional
                B, T, _ = feats.shape
                K = self.config.n_mix
                tp = self.time_head(feats)
                logw = F.log_softmax(tp[..., :K], dim=-1)
                mu = tp[..., K:2 * K]
                raw_s = tp[..., 2 * K:]
                log_s = raw_s.clamp(-6.0, min(4.0, self.config.log_s_max))
                yv = y.unsqueeze(-1)
                comp = -0.5 * ((yv - mu) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)
                nll_t = -torch.logsumexp(logw + comp, dim=-1)
                if self.training and self.config.log_s_max < 4.0:
                    nll_t = nll_t + (F.relu(raw_s - self.config.log_s_max) ** 2).sum(dim=-1)
                nll_type = F.cross_entropy(self.type_head(feats).reshape(-1, N_TYPES), etype.reshape(-1),
                                           reduction="none").reshape(B, T)
                side_l = self.side_head(feats).reshape(B, T, N_TYPES, 2)
                side_l = torch.gather(side_l, 2, etype[..., None, None].expand(B, T, 1, 2)).squeeze(2)
                nll_side = F.cross_entropy(side_l.reshape(-1, 2), side.reshape(-1), reduction="none").reshape(B, T)
                ts = (etype * 2 + side)[..., None, None]
                lev = self.level_head(feats).reshape(B, T, 2 * N_TYPES, self.n_levels)
                lev = torch.gather(lev, 2, ts.expand(B, T, 1, self.n_levels)).squeeze(2)
                nll_lev = F.cross_entropy(lev.reshape(-1, self.n_levels), level.reshape(-1),
                                          reduction="none").reshape(B, T)
                sz = self.size_head(feats).reshape(B, T, 2 * N_TYPES, self.n_size)
                sz = torch.gather(sz, 2, ts.expand(B, T, 1, self.n_size)).squeeze(2)
                nll_sz = F.cross_entropy(sz.reshape(-1, self.n_size), size.reshape(-1), reduction="none").reshape(B, T)
                return nll_t, nll_type, nll_side, nll_lev, nll_sz

        return _Net()


def _tensors(x, tg: TickTargets, idx, device):
    torch = _torch()
    return (torch.as_tensor(x[idx], device=device), torch.as_tensor(tg.y[idx], device=device),
            torch.as_tensor(tg.etype[idx], device=device), torch.as_tensor(tg.side[idx], device=device),
            torch.as_tensor(tg.level[idx], device=device), torch.as_tensor(tg.size[idx], device=device))


def event_nats(model, x, tg: TickTargets, chunk: int = 4096) -> np.ndarray:
    """``(n, 5)`` per-event NLL terms (time, type, side, level, size) of the whole stream run as one
    sequence (the hidden state carried from the first event)."""
    torch = _torch()
    device = next(model.parameters()).device
    out = []
    h = None
    model.eval()
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            idx = np.arange(s, min(s + chunk, len(x)))
            xb, *t = (a[None] for a in _tensors(x, tg, idx, device))
            feats, h = model(xb, h)
            out.append(torch.stack(model.nll(feats, *t), dim=-1)[0].cpu().numpy())
    return np.concatenate(out).astype(np.float64)


TERMS = ("time", "type", "side", "level", "size")
"""Names of the five per-event NLL terms, in the column order of :func:`event_nats`."""


def train_tick_model(tokens: EventTokens, train, early_stop, config: TickModelConfig = TickModelConfig(),
                     log=print, *, writer=None, progress: bool = False, stop=None):
    """Fit a :class:`TickGRU` by maximum likelihood with truncated BPTT on the ``train`` tokens, early
    stopping on the mean NLL of the ``early_stop`` tokens (the stream is run from its start so the
    hidden state is warm). Returns ``(model, history)``; history rows are
    ``(epoch, train_nats, early_stop_nats)`` per event.

    Hooks (none changes a number the training computes):

    * ``writer``: a TensorBoard ``SummaryWriter``; per epoch ``nats/train``, ``nats/early_stop``
      (nats per event), ``train/<term>`` and ``early_stop/<term>`` for the five terms of
      :data:`TERMS`, ``lr`` and ``grad_norm`` (mean total gradient norm before clipping); per step
      ``step/grad_norm`` and ``step/train_nats``.
    * ``progress``: a tqdm bar over the gradient steps of each epoch.
    * ``stop``: an object with a boolean ``requested`` (``run_folder.StopOnSigint``), polled before
      every step: when set, training ends there, the cut epoch is not scored and the best model so
      far is returned (``history`` holds the epochs completed; none: the initial weights).
    """
    torch = _torch()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x, tg = tick_features(tokens, config.level_max)
    train, early_stop = np.asarray(train, bool), np.asarray(early_stop, bool)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-3
    if not config.time_of_day:
        mean[-1], std[-1] = 0.0, OFF_SCALE
    model = TickGRU(x.shape[1], tokens.scale.n_bins, config, mean, std).to(config.device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    tr_idx = np.flatnonzero(train)
    B, S = config.batch, config.seq_len
    seg = len(tr_idx) // B
    if seg < S:
        raise TickModelError(f"train_tick_model: {len(tr_idx)} training events are too few for batch={B} x "
                             f"seq_len={S} (need at least {B * S}; lower batch / seq_len or test_hours)")
    best, best_state, bad, hist = math.inf, None, 0, []
    gstep = 0
    for epoch in range(config.epochs):
        model.train()
        off = int(rng.integers(0, S))
        starts = np.arange(B) * seg + off
        h = None
        tot, cnt = 0.0, 0
        term_tot = np.zeros(len(TERMS))
        gn_tot, n_steps = 0.0, 0
        n_chunks = (seg - off) // S
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_chunks, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
        for c in range(n_chunks):
            if stop is not None and stop.requested:
                break
            idx = tr_idx[np.minimum(starts[:, None] + c * S + np.arange(S)[None, :], len(tr_idx) - 1)]
            xb, *t = _tensors(x, tg, idx, config.device)
            feats, h = model(xb, h)
            h = h.detach()
            terms = [term.mean() for term in model.nll(feats, *t)]
            loss = sum(terms)
            opt.zero_grad()
            loss.backward()
            gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
            opt.step()
            step_loss = float(loss.detach())
            tot += step_loss * idx.size
            cnt += idx.size
            term_tot += np.array([float(v.detach()) for v in terms]) * idx.size
            gn_tot += gn
            n_steps += 1
            if writer is not None:
                writer.add_scalar("step/grad_norm", gn, gstep)
                writer.add_scalar("step/train_nats", step_loss, gstep)
            gstep += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(nats=f"{step_loss:.3f}")
        if bar is not None:
            bar.close()
        if stop is not None and stop.requested:
            log(f"epoch {epoch}: stopped by request after {n_steps} of {n_chunks} steps (not scored)")
            break
        nats = event_nats(model, x, tg)
        es_terms = nats[early_stop].mean(axis=0) if early_stop.any() else np.full(len(TERMS), np.nan)
        es = float(nats[early_stop].sum(axis=1).mean())
        tr_nats = tot / max(cnt, 1)
        hist.append((epoch, tr_nats, es))
        log(f"epoch {epoch}: train {tr_nats:.4f} early-stop {es:.4f} nats/event")
        if writer is not None:
            writer.add_scalar("nats/train", tr_nats, epoch)
            writer.add_scalar("nats/early_stop", es, epoch)
            for name, a, b in zip(TERMS, term_tot / max(cnt, 1), es_terms):
                writer.add_scalar(f"train/{name}", float(a), epoch)
                writer.add_scalar(f"early_stop/{name}", float(b), epoch)
            writer.add_scalar("lr", float(opt.param_groups[0]["lr"]), epoch)
            writer.add_scalar("grad_norm", gn_tot / max(n_steps, 1), epoch)
            writer.flush()
        if es < best - 1e-4:
            best, bad = es, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, hist


FORMAT = "lobworld.tick_gru/1"


class TickModelError(LobworldError):
    """A tick-model checkpoint that is missing, of another format, or does not match the model."""


def save_tick_model(model, path, *, scale, token_config, metrics=None):
    """Write ``model`` as a torch-free ``.npz``: ``w/<name>`` float32 arrays (bit-exact) and ``meta``, a JSON
    document (``format``, ``config``, ``n_features``, ``n_size_bins``, the size ``scale`` and
    ``token_config`` the model was trained with, ``metrics``)."""
    import dataclasses
    import json
    import pathlib

    path = pathlib.Path(path)
    arrays = {f"w/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": dataclasses.asdict(model.config),
            "n_features": int(model.feat_mean.numel()), "n_size_bins": int(model.n_size),
            "scale": dataclasses.asdict(scale), "token_config": dataclasses.asdict(token_config),
            "metrics": metrics or {}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_tick_model(path, device: str = "cpu"):
    """Read a checkpoint written by :func:`save_tick_model`; returns ``(model, meta)``.
    :class:`TickModelError` names a missing file, a wrong format, a missing or mis-shaped weight."""
    import json
    import pathlib
    import zipfile

    import torch

    path = pathlib.Path(path)
    if not path.is_file():
        raise TickModelError(f"{path}: no such tick-model checkpoint")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise TickModelError(f"{path}: not a tick-model checkpoint ({e})") from None
    if "meta" not in data:
        raise TickModelError(f"{path}: no 'meta' entry")
    meta = json.loads(bytes(data.pop("meta")).decode())
    if meta.get("format") != FORMAT:
        raise TickModelError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    cfg = TickModelConfig(**{**meta["config"], "device": device})
    model = TickGRU(meta["n_features"], meta["n_size_bins"], cfg)
    state = model.state_dict()
    for k, v in state.items():
        a = data.get(f"w/{k}")
        if a is None:
            raise TickModelError(f"{path}: weight {k!r} missing")
        if tuple(a.shape) != tuple(v.shape):
            raise TickModelError(f"{path}: weight {k!r} has shape {a.shape}, the config needs {tuple(v.shape)}")
        state[k] = torch.as_tensor(a)
    model.load_state_dict(state)
    return model.to(device), meta


def shipped_tick_weights(ticker: str):
    """Path of the tick GRU checkpoint shipped for ``ticker`` (``world_models/assets/weights/
    tick_gru_<ticker>.npz``; it may not exist: the callers say so in their own terms)."""
    import pathlib
    from importlib import resources

    return pathlib.Path(str(resources.files("lobworld.world_models") / "assets" / "weights"
                            / f"tick_gru_{ticker.lower()}.npz"))


def load_fitted_tick_model(ticker: str = "GOOG", device: str = "cpu"):
    """The tick GRU shipped for ``ticker`` (:func:`shipped_tick_weights`, trained on the 2012-06-21
    training block; its held-out figures and reproduce command are in ``meta["metrics"]``).
    Returns ``(model, meta)``."""
    path = shipped_tick_weights(ticker)
    if not path.is_file():
        raise TickModelError(f"no shipped tick model for ticker {ticker!r}")
    return load_tick_model(path, device)


def compare_with_cst(message_path, config: TickModelConfig = TickModelConfig(), token_config=None, out_dir=None,
                     log=print) -> dict:
    """Train the tick GRU on one LOBSTER day and score it and the Cont-Stoikov-Talreja baseline on the
    held-out block (the last ``token_config.test_hours``): mean nats per event, time and marks apart.
    Both are fitted on the training block only; the GRU early-stops on the block before the test hours.
    With ``out_dir`` writes ``tick_gru.npz`` (:func:`save_tick_model`) and ``compare.json``."""
    import json
    import pathlib

    from lobworld.world_models.data import load_lobster
    from lobworld.world_models.data.events import TokenConfig, split_masks, tokenize
    from lobworld.world_models.tick_parametric import cst_event_nats, fit_cst

    token_config = token_config or TokenConfig()
    events = load_lobster(message_path)
    tok = tokenize(events, token_config)
    train, es, test = split_masks(tok)
    model, hist = train_tick_model(tok, train, es, config, log=log)
    x, tg = tick_features(tok, config.level_max)
    g = event_nats(model, x, tg)
    cst = fit_cst(events, size_law="lognormal", test_hours=token_config.test_hours,
                  early_stop_hours=token_config.early_stop_hours)
    c = cst_event_nats(cst, events, tok, train, level_max=config.level_max)
    ok = test & np.isfinite(c).all(axis=1)
    res = {
        "ticker": tok.meta["ticker"], "n_test_events": int(ok.sum()), "epochs": len(hist),
        "gru": {"time": float(g[ok, 0].mean()), "marks": float(g[ok, 1:].sum(1).mean()),
                "total": float(g[ok].sum(1).mean()),
                "terms": dict(zip(("time", "type", "side", "level", "size"), map(float, g[ok].mean(0))))},
        "cst": {"time": float(c[ok, 0].mean()), "marks": float(c[ok, 1].mean()), "total": float(c[ok].sum(1).mean()),
                "max_distance": cst.max_distance},
        "history": [list(map(float, h)) for h in hist],
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
    }
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_tick_model(model, out / "tick_gru.npz", scale=tok.scale, token_config=token_config,
                        metrics={k: res[k] for k in ("ticker", "n_test_events", "gru", "cst")})
        (out / "compare.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


# ---------------------------------------------------------------------------
# ``lobworld world-model train`` with a ``kind = "tick"`` config
# ---------------------------------------------------------------------------
#: what a tick-model run writes into its folder (``overwrite`` deletes these, and only these)
TICK_RUN_ARTEFACTS = ("tick_gru.npz", "metrics.json", "config.toml", "tb")
TICK_KIND = "tick"
_RUN_KEYS = ("tensorboard", "progress", "score_cst")


@dataclass(frozen=True)
class TickTrainConfig:
    """A tick-GRU training run: the TOML file ``kind = "tick"`` with tables ``[train]`` (the fields of
    :class:`TickModelConfig` plus ``tensorboard``, ``progress``, ``score_cst``) and ``[tokens]``
    (the fields of :class:`~lobworld.world_models.data.events.TokenConfig`: top-k book context,
    size bins, the held-out split in hours)."""

    model: TickModelConfig = TickModelConfig()
    """Network and optimiser settings (``[train]``)."""
    tokens: TokenConfig = field(default_factory=TokenConfig)
    """How the day becomes tokens (``[tokens]``)."""
    tensorboard: bool = True
    """Write TensorBoard scalars under ``<out>/tb``."""
    progress: bool = True
    """Show a progress bar over the gradient steps of each epoch."""
    score_cst: bool = True
    """After training, also fit Cont-Stoikov-Talreja on the training block and score both models on the
    test block (``metrics["cst"]``, as in the shipped weights' metadata)."""

    def __post_init__(self):
        _check_model_config(self.model)
        for name in _RUN_KEYS:
            if not isinstance(getattr(self, name), bool):
                raise TickModelError(f"TickTrainConfig.{name} must be true or false, got {getattr(self, name)!r}")


def _check_model_config(c: TickModelConfig) -> None:
    for name in ("hidden", "embed", "n_mix", "level_max", "seq_len", "batch", "epochs", "patience"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise TickModelError(f"[train] {name} must be a positive int, got {v!r}")
    if not (isinstance(c.lr, (int, float)) and not isinstance(c.lr, bool) and math.isfinite(c.lr) and c.lr > 0):
        raise TickModelError(f"[train] lr must be a positive number, got {c.lr!r}")
    if not isinstance(c.seed, int) or isinstance(c.seed, bool) or c.seed < 0:
        raise TickModelError(f"[train] seed must be a non-negative int, got {c.seed!r}")
    if not (isinstance(c.log_s_max, (int, float)) and not isinstance(c.log_s_max, bool)
            and -6.0 < c.log_s_max <= 4.0):
        raise TickModelError(f"[train] log_s_max must be a number in (-6, 4], got {c.log_s_max!r}")
    if not isinstance(c.time_of_day, bool):
        raise TickModelError(f"[train] time_of_day must be true or false, got {c.time_of_day!r}")
    if c.device not in ("cpu", "cuda"):
        raise TickModelError(f"[train] device must be 'cpu' or 'cuda', got {c.device!r}")


def config_kind(path) -> str:
    """The ``kind`` key of a training TOML file ("bar" when absent: the bar GRU's configs have none)."""
    import pathlib

    from lobworld._config import read_toml

    path = pathlib.Path(path)
    if not path.is_file():
        raise TickModelError(f"config file {path} does not exist")
    kind = read_toml(path, error=TickModelError, source=f"config file {path}").get("kind", "bar")
    if kind not in ("bar", TICK_KIND):
        raise TickModelError(f"config file {path}: kind must be 'bar' or 'tick', got {kind!r}")
    return kind


def load_tick_config(path) -> TickTrainConfig:
    """Read a :class:`TickTrainConfig` TOML file (see its docstring); :class:`TickModelError` names an
    unknown table or key, a bad value, a missing or other ``kind``."""
    import pathlib

    from lobworld._config import from_mapping, read_toml, unknown_keys_message

    path = pathlib.Path(path)
    if config_kind(path) != TICK_KIND:
        raise TickModelError(f"config file {path}: not a tick-model config (needs kind = \"tick\" at the top)")
    raw = read_toml(path, error=TickModelError, source=f"config file {path}")
    top = [k for k in raw if k not in ("kind", "train", "tokens")]
    if top:
        raise TickModelError(unknown_keys_message(f"config file {path} (top level)", top, ["kind", "train", "tokens"]))
    tr, tk = raw.get("train", {}), raw.get("tokens", {})
    for name, tab in (("train", tr), ("tokens", tk)):
        if not isinstance(tab, dict):
            raise TickModelError(f"config file {path}: [{name}] must be a table")
    run = {k: tr[k] for k in _RUN_KEYS if k in tr}
    model_part = {k: v for k, v in tr.items() if k not in _RUN_KEYS}
    try:
        model = from_mapping(TickModelConfig, model_part, source=f"config file {path} [train]", error=TickModelError,
                             check_types=True)
    except TickModelError as exc:  # name the run keys too among the known ones
        msg = str(exc)
        if "unknown key(s)" in msg:
            known = [f.name for f in dataclasses.fields(TickModelConfig)] + list(_RUN_KEYS)
            unknown = [k for k in model_part if k not in known]
            msg = unknown_keys_message(f"config file {path} [train]", unknown, known)
        raise TickModelError(msg) from None
    tokens = from_mapping(TokenConfig, tk, source=f"config file {path} [tokens]", error=TickModelError,
                          check_types=True)
    try:
        return TickTrainConfig(model=model, tokens=tokens, **run)
    except TickModelError as exc:
        raise TickModelError(f"config file {path}: {exc}") from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") if not math.isnan(v) else "nan"
    return str(v)


def tick_config_toml(cfg: TickTrainConfig) -> str:
    """The TOML text of ``cfg`` (:func:`load_tick_config` reads it back to an equal config)."""
    import dataclasses

    lines = [f'kind = "{TICK_KIND}"', "", "[train]"]
    lines += [f"{f.name} = {_toml_value(getattr(cfg.model, f.name))}" for f in dataclasses.fields(cfg.model)]
    lines += [f"{k} = {_toml_value(getattr(cfg, k))}" for k in _RUN_KEYS]
    lines += ["", "[tokens]"]
    lines += [f"{f.name} = {_toml_value(getattr(cfg.tokens, f.name))}" for f in dataclasses.fields(cfg.tokens)]
    return "\n".join(lines) + "\n"


def held_out_scores(model, events, tokens, train, test, *, level_max: int, score_cst: bool = True) -> dict:
    """Mean held-out nats per event of the tick GRU (time, marks, total and the five terms) and, with
    ``score_cst``, of Cont-Stoikov-Talreja fitted on the ``train`` tokens (log-normal sizes), on the
    ``test`` tokens where both are finite."""
    from lobworld.world_models.tick_parametric import cst_event_nats, fit_cst

    x, tg = tick_features(tokens, level_max)
    g = event_nats(model, x, tg)
    ok = np.asarray(test, bool) & np.isfinite(g).all(axis=1)
    res = {"ticker": tokens.meta.get("ticker", "UNKNOWN")}
    c = None
    if score_cst:
        cst = fit_cst(events, size_law="lognormal", train_mask=train)
        c = cst_event_nats(cst, events, tokens, train, level_max=level_max)
        ok &= np.isfinite(c).all(axis=1)
    res["n_test_events"] = int(ok.sum())
    res["gru"] = {"time": float(g[ok, 0].mean()), "marks": float(g[ok, 1:].sum(1).mean()),
                  "total": float(g[ok].sum(1).mean()), "terms": dict(zip(TERMS, map(float, g[ok].mean(0))))}
    if c is not None:
        res["cst"] = {"time": float(c[ok, 0].mean()), "marks": float(c[ok, 1].mean()),
                      "total": float(c[ok].sum(1).mean()), "max_distance": cst.max_distance}
    return res


def train_tick_run(message_path, cfg: TickTrainConfig, out_dir, *, overwrite: bool = False, strict: bool = True,
                   config_path=None, log=None) -> dict:
    """Train the tick GRU on one LOBSTER day into the run folder ``out_dir`` and return its metrics.

    The folder holds one run (:func:`lobworld.world_models.run_folder.claim_run_folder`): it is
    locked while training and refused when it already holds files unless ``overwrite`` (the
    :data:`TICK_RUN_ARTEFACTS` of the earlier run are deleted first). It receives ``tick_gru.npz``
    (:func:`save_tick_model`; the metrics, including the reproduce command, in its metadata),
    ``metrics.json``, ``config.toml`` (the resolved config) and ``tb/`` (TensorBoard), each file
    written atomically. A first SIGINT stops training at the next gradient step and the best model
    of the epochs completed is saved with ``metrics["interrupted"] = True`` (a second aborts);
    a SIGINT before the first epoch ends raises ``KeyboardInterrupt`` and saves nothing.
    """
    import json
    import pathlib
    import time

    from lobworld.world_models.data import load_lobster
    from lobworld.world_models.data.events import split_masks, tokenize
    from lobworld.world_models.run_folder import StopOnSigint, atomic_path, atomic_write_text, claim_run_folder

    message_path = pathlib.Path(message_path)
    if not message_path.is_file():
        raise TickModelError(f"data file {message_path} does not exist")
    log = log or (lambda s: None)
    out = pathlib.Path(out_dir)
    with claim_run_folder(out, artefacts=TICK_RUN_ARTEFACTS, overwrite=overwrite,
                          hint="pass --overwrite to replace it or choose another --out"):
        events = load_lobster(message_path, strict=strict)
        tok = tokenize(events, cfg.tokens)
        train, es, test = split_masks(tok)
        writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        t0 = time.time()
        try:
            with StopOnSigint("tick-model training") as stop:
                model, hist = train_tick_model(tok, train, es, cfg.model, log=log, writer=writer,
                                               progress=cfg.progress, stop=stop)
                if not hist:
                    raise KeyboardInterrupt("tick-model training interrupted before its first epoch ended: "
                                            "nothing saved")
                best = min(range(len(hist)), key=lambda i: hist[i][2])
                res = held_out_scores(model, events, tok, train, test, level_max=cfg.model.level_max,
                                      score_cst=cfg.score_cst)
                name = config_path.name if config_path is not None else "CONFIG.toml"
                res.update({"epochs": len(hist), "best_epoch": int(hist[best][0]),
                            "early_stop_nats": float(hist[best][2]), "train_seconds": round(time.time() - t0, 2),
                            "reproduce": f"lobworld world-model train --config {name} --data {message_path.name} "
                                         f"--out DIR"})
                if stop.requested:
                    res["interrupted"] = True
                if writer is not None:
                    writer.add_scalar("test/nats", res["gru"]["total"], 0)
                    for k, v in res["gru"]["terms"].items():
                        writer.add_scalar(f"test/{k}", v, 0)
                with atomic_path(out / "tick_gru.npz") as tmp:
                    save_tick_model(model, tmp, scale=tok.scale, token_config=cfg.tokens, metrics=res)
                atomic_write_text(out / "config.toml", tick_config_toml(cfg))
                atomic_write_text(out / "metrics.json", json.dumps({**res, "history": [list(map(float, h)) for h in hist]},
                                                                   indent=1) + "\n")
        finally:
            if writer is not None:
                writer.close()
    return res


def _main(argv=None) -> None:
    import argparse
    import dataclasses
    import json

    ap = argparse.ArgumentParser(description="Train the tick GRU on a LOBSTER day and compare with CST held out.")
    ap.add_argument("message_path")
    ap.add_argument("--out", default=None)
    for f in dataclasses.fields(TickModelConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ns = ap.parse_args(argv)
    cfg = TickModelConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(TickModelConfig)})
    res = compare_with_cst(ns.message_path, cfg, out_dir=ns.out)
    res.pop("history")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    _main()

"""Real data of the fidelity report: held-out days, their real paths and the teacher-forced hidden states."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lobworld.envs.dynamics import ParametricParams
from lobworld.world_models.dynamics_model import CONTROL, AssetStats, bar_features
from lobworld.world_models.fidelity.samples import FidelityError, PathSample
from lobworld.world_models.fidelity.tape import ParametricTape, calibrate_tape


# ---------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------
@dataclass
class FidelityDay:
    """One asset-day: bars, features, held-out windows and the training-block calibration."""

    asset: str
    """Ticker."""
    bars: Any
    """The day's bars (``make_bars`` columns, pandas DataFrame indexed by bar end)."""
    x: np.ndarray
    """Normalised model features of every bar, ``(n_bars, N_FEATURES)`` float64."""
    stats: AssetStats
    """The checkpoint's normalisation constants for ``asset``."""
    starts: np.ndarray
    """Bar index of the last bar *before* each held-out window."""
    window: int
    """Bars per held-out window (real path)."""
    params: ParametricParams
    """Parametric market calibrated on the training block of this day."""
    tape: ParametricTape
    """The parametric market's trade-count, OFI and top-of-book laws, fitted on the same training block."""
    source: str = ""
    """Data file name."""
    held_out: bool = True
    """False when the test block differs from the checkpoint's held-out block (then it may overlap training)."""
    hidden: np.ndarray | None = field(default=None, repr=False)
    """Teacher-forced GRU hidden state at each start (n_windows, H)."""


def load_fidelity_day(path, ck, window: int, test_hours: float | None = None,
                      early_stop_hours: float | None = None) -> FidelityDay:
    """Load one data file, cut its test block into windows, calibrate the parametric market on its training block.

    The parametric market is :func:`~lobworld.world_models.calibration.calibrate_parametric`
    on the training block's events plus :func:`calibrate_tape` on its bars
    (never the early-stopping or test block). Raises :class:`FidelityError`
    for a missing file, an asset the checkpoint does not know, a test block
    too short for one window, or a training block the laws cannot be fitted on.
    """
    from lobworld.world_models import data as data_mod
    from lobworld.world_models.calibration import calibrate_parametric
    from lobworld.world_models.training import split_masks

    path = pathlib.Path(path)
    if not path.is_file():
        raise FidelityError(f"data file {path} does not exist")
    tc = ck.train_config
    ck_test = float(tc.get("test_hours", 2.0))
    ck_es = float(tc.get("early_stop_hours", 0.5))
    test_hours = ck_test if test_hours is None else float(test_hours)
    early_stop_hours = ck_es if early_stop_hours is None else float(early_stop_hours)
    try:
        ev = data_mod.load_lobster(path) if "_message_" in path.name else data_mod.load_databento(path)
    except (FileNotFoundError, ValueError) as exc:  # DataValidationError is a ValueError naming file and row
        raise FidelityError(f"{path.name}: cannot load: {exc}") from exc
    ticker = str(ev.attrs.get("ticker") or path.name.split("_")[0])
    if ticker not in ck.assets:
        raise FidelityError(f"{path.name}: the checkpoint has no statistics for asset {ticker!r} "
                            f"(it was trained on {sorted(ck.assets)}); train a model on this asset first")
    freq = tc.get("freq", f"{int(ck.dt)}s")
    try:
        bars = data_mod.make_bars(ev, freq=freq)
    except ValueError as exc:
        raise FidelityError(f"{path.name}: cannot make {freq} bars: {exc}") from exc
    tr, es, te = split_masks(bars.index, test_hours, early_stop_hours)
    idx = np.flatnonzero(te)
    n_win = len(idx) // window
    if n_win < 1 or idx[0] < 1:
        raise FidelityError(f"{path.name}: the test block (last {test_hours} h) has {len(idx)} bars of {ck.dt:g} s, "
                            f"fewer than one window of {window} bars (or no bar before it); "
                            "use a longer file, --test-hours or a shorter --window")
    if tr.sum() < 2:
        raise FidelityError(f"{path.name}: only {int(tr.sum())} training bars before the test block; the parametric "
                            "market cannot be calibrated (use --test-hours / --early-stop-hours)")
    train_end = bars.index[np.flatnonzero(tr)[-1]]
    ev_train = ev[ev["ts"] <= train_end]
    ev_train.attrs.update(ev.attrs)
    try:
        params = calibrate_parametric(ev_train, dt=float(ck.dt))
        tape = calibrate_tape(bars[tr])
        x = bar_features(bars, ck.assets[ticker]).astype(np.float64)
    except ValueError as exc:
        raise FidelityError(f"{path.name}: {exc}") from exc
    st = ck.assets[ticker]
    starts = idx[0] - 1 + np.arange(n_win) * window
    held = abs(test_hours - ck_test) < 1e-9 and abs(early_stop_hours - ck_es) < 1e-9
    return FidelityDay(ticker, bars, x, st, starts, window, params, tape, source=path.name, held_out=held)


def real_paths(day: FidelityDay) -> PathSample:
    """The held-out windows of ``day`` as a :class:`PathSample` (normalised by the checkpoint's asset stats)."""
    b = day.bars
    st = day.stats
    W = day.window
    sel = (day.starts[:, None] + 1 + np.arange(W)[None, :])

    def col(name):
        return b[name].to_numpy(float)[sel]

    vol = col("volume")
    buy = col("buy_volume")
    sell = col("sell_volume")
    cnt = col("n_trades")
    traded = (vol > 0) & (cnt > 0)
    bs = col("bid_sz_1")
    as_ = col("ask_sz_1")
    d = np.maximum(bs + as_, 1.0)
    tod_all = (b.index.hour * 3600 + b.index.minute * 60 + b.index.second).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        timb = np.where(traded & (buy + sell > 0), (buy - sell) / (buy + sell), np.nan)
    return PathSample(
        ret=col("mid_ret") / st.sigma_bar, spread=col("spread") / st.median_spread, volume=vol / st.mean_volume,
        svol=(buy - sell) / st.mean_volume, trade_imb=timb, count=np.where(traded, cnt, 0.0) / st.mean_count,
        ofi=col("ofi") / st.ofi_scale, book_imb=(bs - as_) / d, depth=d / st.mean_depth, tod=tod_all[sel],
        dt=float(np.median(b["bar_seconds"].to_numpy(float))), mean_count=np.full(len(sel), st.mean_count),
        label="real")


def teacher_forced_hidden(ck, day: FidelityDay) -> np.ndarray:
    """GRU hidden state after each window's start bar, teacher-forced on the real bars of the day (n_windows, H)."""
    import torch

    from lobworld.world_models.dynamics_model import asset_scale
    from lobworld.world_models.training import model_from_checkpoint

    model = model_from_checkpoint(ck)
    xt = torch.as_tensor(day.x, dtype=torch.float32)
    c = asset_scale(day.stats) if model.cfg.categorical else None  # input of the categorical mid head only
    with torch.no_grad():
        _, _, hs = model(xt[None, :-1], xt[None, 1:, CONTROL], c=c)
    hs = hs[0].numpy().astype(np.float64)
    # hs[k] is the state after bar k+1 (inputs x[:k+1], control of bar k+1); start s -> hs[s-1]
    return np.stack([hs[s - 1] if s >= 1 else np.zeros(hs.shape[1]) for s in day.starts])



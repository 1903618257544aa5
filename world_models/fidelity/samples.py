"""Constants, the error type and :class:`PathSample`, the paths every statistic reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lobworld.errors import LobworldError
from lobworld.world_models.data.session import SESSION_SECONDS  # noqa: F401  (re-exported)

HORIZONS = (1, 5, 15)  #: return horizons (bars)
ACF_LAGS = (1, 2, 3, 4, 5)  #: lags of the absolute-return autocorrelation (bars)
RV_WINDOW = 5  #: bars in the realised volatility of ``spread_by_vol``
IMPACT_EDGES = np.array([-1.0, -0.25, 0.25, 1.0])  #: signed volume / mean bar volume bin edges
N_HIST_BINS = 20


class FidelityError(LobworldError):
    """Bad input to the fidelity report (missing file, checkpoint mismatch, too little held-out data, a training
    block the parametric laws cannot be fitted on)."""

# ---------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------
@dataclass
class PathSample:
    """Paths of one source (real or a simulator), all arrays ``(n_paths, window)``, dimensionless.

    A quantity the source cannot produce is ``None``.
    """

    ret: np.ndarray
    """Mid change of each bar / sigma_bar."""
    spread: np.ndarray | None
    """Spread at bar end / median spread."""
    volume: np.ndarray | None
    """Traded volume of the bar / mean bar volume."""
    svol: np.ndarray | None
    """Signed aggressive volume (buy - sell) of the bar / mean bar volume."""
    trade_imb: np.ndarray | None
    """(buy - sell) / (buy + sell); NaN in bars without a trade."""
    count: np.ndarray | None
    """Trades in the bar / mean trade count (0 without a trade)."""
    ofi: np.ndarray | None
    """Multi-level OFI / OFI sd."""
    book_imb: np.ndarray | None
    """Top-of-book (bid - ask) / (bid + ask) sizes at bar end."""
    depth: np.ndarray | None
    """Top-of-book depth / training mean depth."""
    tod: np.ndarray
    """Time of day of the bar end (seconds after midnight)."""
    dt: float
    """Bar length (seconds)."""
    mean_count: np.ndarray | None = None
    """Per path: the asset's mean trade count per bar (to turn ``count`` back into trades)."""
    label: str = ""
    """Source name."""

    @property
    def n_paths(self) -> int:
        return int(self.ret.shape[0])

    @property
    def window(self) -> int:
        return int(self.ret.shape[1])

    def subset(self, idx: np.ndarray) -> "PathSample":
        """The paths ``idx`` (a copy)."""
        kw = {}
        for name in ("ret", "spread", "volume", "svol", "trade_imb", "count", "ofi", "book_imb", "depth", "tod",
                     "mean_count"):
            v = getattr(self, name)
            kw[name] = None if v is None else np.asarray(v)[idx].copy()
        return PathSample(dt=self.dt, label=self.label, **kw)

    @staticmethod
    def concat(samples: list["PathSample"]) -> "PathSample":
        """Paths of several samples (same window and dt) stacked."""
        s0 = samples[0]
        kw = {}
        for name in ("ret", "spread", "volume", "svol", "trade_imb", "count", "ofi", "book_imb", "depth", "tod",
                     "mean_count"):
            vals = [getattr(s, name) for s in samples]
            kw[name] = None if any(v is None for v in vals) else np.concatenate(vals, 0)
        return PathSample(dt=s0.dt, label=s0.label, **kw)


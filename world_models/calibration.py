"""Calibrate the parametric (textbook) market from a canonical event table.

:func:`calibrate_parametric` turns real events (e.g. a LOBSTER day loaded with
:func:`lobworld.world_models.data.load_lobster`) into the
:class:`lobworld.envs.dynamics.ParametricParams` of an arithmetic-Brownian mid
with log-normal spread and volume, sampled on a grid of ``dt`` seconds, the
same grid :class:`~lobworld.envs.dynamics.ParametricDynamics` steps on:

=================  =========================================================
field              estimator (clock bars of ``dt`` seconds, :func:`make_bars`)
=================  =========================================================
``s0``             mid after the first event with both sides quoted (USD)
``mu``             0 (a day's drift is not estimable; kept at 0)
``sigma``          ``sqrt(mean(mid_ret**2) / dt)``: RMS change of the mid between
                   consecutive bar ends, USD/sqrt(s) (the first bar's partial,
                   within-bar change is left out)
``spread``         mean of the bar-end quoted spreads (USD); the model's
                   per-step spread has this mean
``spread_logsd``   standard deviation of ``log(spread)`` at bar ends
``tick``           ``events.attrs["tick_size"]``
``volume_rate``    total executed shares (visible + hidden) / (bars x dt)
``volume_logsd``   standard deviation of ``log(volume)`` over bars that traded
                   (a log-normal cannot produce an empty bar; their share is
                   reported by :func:`calibration_report`)
=================  =========================================================

Impact parameters (``eta``, ``gamma``, ``sqrt_y``) are left at their defaults:
they need the agent's own trades, not the public tape.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lobworld.envs.dynamics import ParametricParams
from lobworld.world_models.data.bars import make_bars
from lobworld.world_models.data.schema import EVENT_CATEGORIES, EXEC_EVENTS, event_codes
from lobworld.world_models.data.session import SESSION_SECONDS  # noqa: F401  (re-exported)
from lobworld._checks import positive
from lobworld.errors import LobworldError


class CalibrationError(LobworldError):
    """Data that cannot calibrate the parametric market (what is missing named)."""




def _bars(events: pd.DataFrame, dt: float) -> pd.DataFrame:
    positive("dt", dt, error=CalibrationError, what="a positive number of seconds")
    return make_bars(events, pd.Timedelta(seconds=dt))


def calibrate_parametric(events: pd.DataFrame, dt: float = 60.0, **overrides) -> ParametricParams:
    """Estimate :class:`ParametricParams` from a canonical event table on a ``dt``-second grid.

    ``overrides`` replace fields after estimation (e.g. ``impact="sqrt"``).
    Raises ValueError when there are fewer than 2 bars or no execution.
    """
    r = calibration_report(events, dt)
    base = ParametricParams()
    return base.replace(s0=r["s0"], mu=0.0, sigma=r["sigma"], spread=r["spread"],
                        spread_logsd=r["spread_logsd"], tick=r["tick"], volume_rate=r["volume_rate"],
                        volume_logsd=r["volume_logsd"], **overrides)


def calibration_report(events: pd.DataFrame, dt: float = 60.0) -> dict:
    """The estimates of :func:`calibrate_parametric` plus diagnostics
    (``n_bars``, ``zero_volume_share``, ``sigma_per_bar``, ``volume_per_bar``)."""
    bars = _bars(events, dt)
    if len(bars) < 2:
        raise CalibrationError(f"calibration needs at least 2 bars of {dt} s; the events span {len(bars)}")
    mid = 0.5 * (events["bid_px_1"] + events["ask_px_1"])
    valid = mid.notna()
    if not valid.any():
        raise CalibrationError("calibration: no event has both a bid and an ask")
    ret = bars["mid_ret"].to_numpy()[1:]
    ret = ret[np.isfinite(ret)]
    spread = bars["spread"].to_numpy()
    spread = spread[np.isfinite(spread) & (spread > 0)]
    vol = bars["volume"].to_numpy()
    if vol.sum() <= 0:
        raise CalibrationError("calibration: the events contain no execution")
    traded = vol[vol > 0]
    sigma = float(np.sqrt(np.mean(ret ** 2) / dt))
    return {
        "s0": float(mid[valid].iloc[0]),
        "sigma": sigma,
        "spread": float(spread.mean()),
        "spread_logsd": float(np.log(spread).std(ddof=1)) if len(spread) > 1 else 0.0,
        "tick": float(events.attrs.get("tick_size", 0.01)),
        "volume_rate": float(vol.sum() / (len(vol) * dt)),
        "volume_logsd": float(np.log(traded).std(ddof=1)) if len(traded) > 1 else 0.0,
        "n_bars": int(len(bars)),
        "zero_volume_share": float(np.mean(vol == 0)),
        "sigma_per_bar": sigma * math.sqrt(dt),
        "volume_per_bar": float(vol.mean()),
        "dt": float(dt),
    }


def adv_shares(events: pd.DataFrame, *, session_seconds: float = SESSION_SECONDS) -> float:
    """Average daily volume (shares executed, visible + hidden) per ``session_seconds`` session.

    Volume per covered second, times ``session_seconds``. The covered time is
    the file's window (``attrs["window_ms"]``, LOBSTER) per day when known,
    else first-to-last event per day. A full 09:30-16:00 LOBSTER day gives its
    exact total; a one-hour slice is extrapolated linearly (x6.5), which ignores
    the intraday volume profile.
    """
    codes = event_codes(events)
    is_exec = np.isin(codes, [EVENT_CATEGORIES.index(e) for e in EXEC_EVENTS])
    total = float(events["size"].to_numpy()[is_exec].sum())
    days = events["ts"].dt.date
    n_days = int(days.nunique())
    if n_days == 0:
        raise CalibrationError("adv_shares: the event table is empty")
    win = events.attrs.get("window_ms")
    if win:
        covered = n_days * (win[1] - win[0]) / 1000.0
    else:
        g = events.groupby(days)["ts"]
        covered = float((g.max() - g.min()).dt.total_seconds().sum())
    if covered <= 0:
        raise CalibrationError("adv_shares: the events cover no time")
    return total / covered * session_seconds

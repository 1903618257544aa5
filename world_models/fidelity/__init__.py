"""Fidelity of the simulated markets: real vs simulated LOB statistics on held-out hours.

Description
-----------
LOB-Bench-style (Nagy et al. 2025) comparison of the bar-level markets of
lobworld with real LOBSTER/Databento data, adapted to what a *bar* model can
produce (no per-order events, so every event-level statistic is replaced by a
documented bar-level proxy, see the table below).

Protocol:

1. **Held-out real paths.** For every data file (one asset-day) the bars of
   ``dt`` seconds (the checkpoint's bar length) are split by time as in
   training (:func:`lobworld.world_models.training.split_masks`); the test block
   (the last ``test_hours``, never used in training or model selection) is cut
   into consecutive, non-overlapping windows of ``window`` bars: the *real
   paths*.
2. **Simulated paths from real starting states.** For every real path the
   simulators start from the state at the bar just before its window and run
   ``window`` bars, ``draws`` independent times:

   * ``learned``: :class:`~lobworld.world_models.learned.LearnedDynamics`; the
     GRU hidden state is teacher-forced on the real bars of the day up to the
     window start, the feature vector is the real last bar's, the mid the real
     mid;
   * ``parametric``: :class:`~lobworld.envs.dynamics.ParametricDynamics`
     calibrated (:func:`~lobworld.world_models.calibration.calibrate_parametric`)
     on the **training block** of the same day, started at the real mid and
     spread, for mid, spread and volume; completed by textbook laws
     (:class:`ParametricTape`, fitted by :func:`calibrate_tape` on the same
     training block) for what it lacks: Poisson trade counts per bar,
     Gaussian OFI, log-normal top-of-book depth and a Beta top-of-book
     imbalance, each i.i.d. over bars and independent of the mid, so it
     produces every statistic below.

3. **Statistics** (:data:`STATISTICS`): each maps a :class:`PathSample` to a
   1-D sample of values (optionally with a condition label per value, and the
   path each value came from). Values are made dimensionless with the asset's
   training constants (:class:`~lobworld.world_models.dynamics_model.AssetStats`
   of the checkpoint) so that assets can be pooled.
4. **Scores** (:func:`score`): L1 distance between histograms on common bins
   (quantiles of the pooled real+simulated values; range [0, 2]) and the
   Wasserstein-1 distance of the values standardised by the real sample's mean
   and sd; conditional statistics average the score over condition bins.
   Bootstrap ranges resample whole paths (real and simulated independently);
   a paired bootstrap of learned minus parametric (same real resample) says
   whether a difference exceeds sampling noise (:func:`score_many`).
   Noise floor: the same scores between two halves of the real paths (even vs
   odd windows). The floor uses half the real paths per side, so it is an
   *upper* estimate of pure sampling noise.

=====================  ==============================================================================
statistic              definition (per bar of ``dt`` seconds unless stated)
=====================  ==============================================================================
``spread``             quoted spread at bar end / the asset's median spread
``ret_{h}``            overlapping ``h``-bar mid changes within a path / (sigma_bar sqrt(h)),
                       h in :data:`HORIZONS` (fat tails: see also :func:`kurtosis_table`)
``abs_ret_acf``        per path: autocorrelation of |1-bar mid change| at lags 1..5 (volatility
                       clustering); condition = lag
``volume_per_min``     traded shares per minute / mean per minute (bars summed to minutes)
``trades_per_min``     trades per minute / mean per minute; a LOBSTER "trade" is one execution
                       message (one per resting order hit); the learned model's count is its
                       log-normal count head (continuous); parametric: Poisson count per bar
``inter_arrival``      proxy: bar seconds / trade count, over bars with a trade (s). A bar model
                       has no individual arrivals; this is the mean inter-trade time of the bar
``trade_imbalance``    (buy - sell) / (buy + sell) aggressive volume, bars with a trade
                       (parametric: its ``IMBALANCE`` column, the only flow imbalance it exposes,
                       in bars whose Poisson count is > 0)
``ofi``                multi-level Cont-Kukanov-Stoikov order-flow imbalance / the asset's OFI sd
                       (parametric: i.i.d. Gaussian)
``book_imbalance``     top-of-book (bid size - ask size) / (bid size + ask size) at bar end
                       (parametric: i.i.d. Beta on (imbalance + 1) / 2)
``depth``              top-of-book depth (bid size + ask size) / its training mean
                       (parametric: i.i.d. log-normal)
``spread_by_vol``      spread / median spread, by tercile of realised volatility (RMS of the last
                       5 1-bar mid changes, terciles of each sample's own values); cond = tercile
``spread_by_tod``      spread / median spread, by half hour of the day; cond = half hour
``impact_curve``       1-bar mid change / sigma_bar by bin of signed aggressive volume / mean bar
                       volume (bins split at -1, -0.25, 0.25, 1); the price response to market
                       orders at bar level (parametric: IMBALANCE x VOLUME as its signed flow)
=====================  ==============================================================================

Not produced (the bar model cannot): per-order inter-arrival times, order
sizes and levels, cancellation rates, depth beyond the top of book, and the
event-level impact curves split by whether the mid moved (at 1-minute bars the
mid almost always moves). ``n/a`` marks a statistic a simulator returns no
value for (its :class:`PathSample` field is ``None``); both simulators of the
report produce all of them.

Impact exponent (:func:`simulated_impact_exponent`): simulated buy metaorders
of several sizes ``Q`` executed evenly over ``exec_seconds`` through the
learned dynamics, each paired with a no-agent run on the same random numbers
(common random numbers); the peak impact is the mid difference at the end of
execution. The square-root law ``I/sigma = Y (Q/V)^delta`` is fitted with
:func:`lobworld.world_models.impact.fit_sqrt_law` (bootstrap CI over runs),
with ``V`` the asset's mean daily volume (mean bar volume x bars per 6.5 h)
and ``sigma`` its daily mid sd (sigma_bar x sqrt(bars per 6.5 h)); constants
that do not change the exponent.

Modules
-------
:mod:`~lobworld.world_models.fidelity.samples` (:class:`PathSample`, constants, :class:`FidelityError`),
:mod:`~lobworld.world_models.fidelity.statistics`, :mod:`~lobworld.world_models.fidelity.scoring`,
:mod:`~lobworld.world_models.fidelity.tape` (:class:`ParametricTape`), :mod:`~lobworld.world_models.fidelity.days`
(held-out real paths), :mod:`~lobworld.world_models.fidelity.simulation`,
:mod:`~lobworld.world_models.fidelity.report`, :mod:`~lobworld.world_models.fidelity.plots`,
:mod:`~lobworld.world_models.fidelity.events` (the event-level LOB-Bench statistics of message streams);
every public name is re-exported here.
"""

from __future__ import annotations

from lobworld.world_models.fidelity.days import (  # noqa: F401  (re-exported)
    FidelityDay,
    load_fidelity_day,
    real_paths,
    teacher_forced_hidden,
)
from lobworld.world_models.fidelity.events import (  # noqa: F401  (re-exported)
    EVENT_STATISTICS,
    EventReport,
    EventScores,
    EventStatistic,
    cst_sequences,
    event_report,
    fd_edges,
    format_events_markdown,
    l1_tv,
    plot_events,
    score_sequences,
    sequence_statistics,
    split_sequences,
    w1_z,
    write_lobster,
)
from lobworld.world_models.fidelity.plots import (  # noqa: F401  (re-exported)
    plot_statistics,
)
from lobworld.world_models.fidelity.report import (  # noqa: F401  (re-exported)
    compare,
    fidelity_report,
    fidelity_stages,
    flow_correlations,
    format_markdown,
    kurtosis_table,
    to_json,
    verdict,
)
from lobworld.world_models.fidelity.samples import (  # noqa: F401  (re-exported)
    ACF_LAGS,
    HORIZONS,
    IMPACT_EDGES,
    N_HIST_BINS,
    RV_WINDOW,
    SESSION_SECONDS,
    FidelityError,
    PathSample,
)
from lobworld.world_models.fidelity.scoring import (  # noqa: F401  (re-exported)
    hist_l1,
    n_bins_for,
    score,
    score_many,
    w1_standardised,
)
from lobworld.world_models.fidelity.simulation import (  # noqa: F401  (re-exported)
    simulate_learned,
    simulate_parametric,
    simulated_impact_exponent,
)
from lobworld.world_models.fidelity.statistics import (  # noqa: F401  (re-exported)
    STATISTICS,
    Statistic,
    StatOut,
    stat_abs_acf,
    stat_book_imbalance,
    stat_depth,
    stat_impact_curve,
    stat_inter_arrival,
    stat_ofi,
    stat_returns,
    stat_spread,
    stat_spread_by_tod,
    stat_spread_by_vol,
    stat_trade_imbalance,
    stat_trades_per_min,
    stat_volume_per_min,
)
from lobworld.world_models.fidelity.tape import (  # noqa: F401  (re-exported)
    ParametricTape,
    calibrate_tape,
    sample_tape,
)

__all__ = [
    "HORIZONS", "STATISTICS", "PathSample", "FidelityDay", "Statistic", "score", "load_fidelity_day",
    "real_paths", "simulate_learned", "simulate_parametric", "compare", "kurtosis_table",
    "simulated_impact_exponent", "fidelity_report", "fidelity_stages", "format_markdown", "plot_statistics", "FidelityError",
    "score_many", "hist_l1", "w1_standardised", "n_bins_for", "verdict", "flow_correlations", "to_json",
    "teacher_forced_hidden", "ParametricTape", "calibrate_tape", "sample_tape",
    # event level (LOB-Bench statistics, lobworld.world_models.fidelity.events)
    "EVENT_STATISTICS", "EventStatistic", "EventScores", "EventReport", "sequence_statistics", "score_sequences",
    "split_sequences", "cst_sequences", "event_report", "format_events_markdown", "plot_events", "write_lobster",
    "fd_edges", "l1_tv", "w1_z",
]

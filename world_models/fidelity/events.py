"""Event-level fidelity: the LOB-Bench statistics (Nagy et al., ICML 2025) on message streams.

Description
-----------
Each statistic maps one *sequence* (a canonical event table, see
:mod:`lobworld.world_models.data.schema`: messages plus the book after each
message; generated streams come in the same form through
:func:`lobworld.world_models.data.events.messages_to_events`) to a 1-D sample of
values. Samples are pooled over the sequences of a side (real or generated)
and the two pooled samples are scored.

Statistics (:data:`EVENT_STATISTICS`; ticks are the asset's tick size, sizes in
shares, "before" = the book after the previous message of the same sequence, so
the first message of a sequence gives no depth / level / OFI value):

=========================  ===============================================================================
name                       values (one per ...)
=========================  ===============================================================================
``spread``                 best ask - best bid (ticks), per message with both sides quoted; discrete
``orderbook_imbalance``    (bid size 1 - ask size 1) / (bid size 1 + ask size 1), per message
``ask_volume_touch``       ask size at level 1 (shares), per message
``bid_volume_touch``       bid size at level 1 (shares), per message
``ask_volume_10``          ask shares summed over the first min(10, L) listed levels, per message
``bid_volume_10``          bid shares summed over the first min(10, L) listed levels, per message
``log_inter_arrival``      ln(seconds between consecutive messages), a gap of 0 counted as 1 ns
``log_time_to_cancel``     ln(seconds from an order's submission to each of its cancels / deletes), for
                           orders submitted in the sequence (needs order ids; none without them)
``limit_depth_{ask,bid}``  submissions: ticks behind the same side's best price before the message
                           (ask: price - best ask, bid: best bid - price; < 0 inside the spread); discrete
``cancel_depth_{ask,bid}`` the same for cancels and deletes (LOBSTER types 2, 3); discrete
``limit_level_{ask,bid}``  submissions: number of listed levels of the same side before the message that
                           are strictly better than the price (0 = at or better than the touch; L beyond
                           the listed levels); discrete
``cancel_level_{ask,bid}`` the same for cancels and deletes; discrete
``volume_per_min``         executed shares (LOBSTER types 4, 5) per clock minute spanned by the sequence
``ofi``                    order-flow imbalance (Cont, Kukanov, Stoikov 2014, level 1, shares) summed over
                           the last :data:`OFI_WINDOW` messages, per message from the 100th on
``ofi_up`` / ``_flat`` /   ``ofi`` split by whether the mid moves up, stays or moves down at the next
``ofi_down``               message
``ask_volume_touch|spread``  (conditional) ask size 1 given the spread
``spread|hour``            (conditional) spread given the exchange-clock hour of the message
``spread|volatility``      (conditional) spread given the volatility of its clock minute: the sd of the
                           log mid returns over 0.1 s steps (mid sampled at the last message of each step)
=========================  ===============================================================================

Scores (:func:`score_sample`):

* **L1** = total variation, half the sum of absolute differences of the two
  normalised histograms: bins are the unique values of the pooled sample for a
  discrete statistic, Freedman-Diaconis bins (:func:`fd_edges`) of the pooled
  sample otherwise. Range 0 (same histogram) to 1 (disjoint supports).
* **W1** = the Wasserstein-1 distance of the two samples after z-scoring both
  with the pooled sample's mean and sd.
* A conditional statistic is scored within each bin of its conditioning
  variable (the unique values when there are at most 10 of them, else the
  deciles of the pooled conditioning values) and the scores are averaged over
  the bins that hold values on both sides.
* Summaries (:func:`summarise`): mean, median and interquartile mean (mean of
  the middle 50 %) over the statistics that both sides produce.
* Bootstrap intervals (:func:`score_sequences`): resample the sequences of each
  side with replacement, pool, score; percentile interval of each score and of
  each summary.

Files: :func:`write_lobster` writes a sequence as a LOBSTER message +
orderbook pair (10 levels, LOBSTER's naming and sentinels) that
:func:`~lobworld.world_models.data.lobster.load_lobster` reads back exactly.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lobworld.world_models.data.schema import event_codes, infer_levels
from lobworld.world_models.fidelity.samples import FidelityError

OFI_WINDOW = 100
"""Messages per order-flow-imbalance window."""
VOL_STEP_NS = 100_000_000
"""Return step of the volatility condition (0.1 s, in ns)."""
N_COND_BINS = 10
"""Conditioning bins (deciles) of a continuous conditioning variable."""
MAX_FD_BINS = 10_000
"""Cap on the number of Freedman-Diaconis bins."""
MIN_LOG_GAP_S = 1e-9
"""A zero gap counts as this many seconds in the log-time statistics."""

# LOBSTER type of each EVENT_CATEGORIES code (schema order), 0 for categories LOBSTER has no code for
_LOBSTER_TYPE = np.array([1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0], dtype=np.int64)


@dataclass(frozen=True)
class EventStatistic:
    """One LOB-Bench statistic."""

    name: str
    """Key in the dict returned by :func:`sequence_statistics`."""
    discrete: bool
    """True: histogram bins are the unique pooled values; False: Freedman-Diaconis bins."""
    conditional: bool = False
    """True: the values come with a conditioning variable (scored per conditioning bin)."""
    description: str = ""
    """One line with units."""


EVENT_STATISTICS: tuple[EventStatistic, ...] = (
    EventStatistic("spread", True, description="best ask - best bid (ticks)"),
    EventStatistic("orderbook_imbalance", False, description="(bid1 - ask1) / (bid1 + ask1) sizes"),
    EventStatistic("ask_volume_touch", False, description="ask size at level 1 (shares)"),
    EventStatistic("bid_volume_touch", False, description="bid size at level 1 (shares)"),
    EventStatistic("ask_volume_10", False, description="ask shares over 10 levels"),
    EventStatistic("bid_volume_10", False, description="bid shares over 10 levels"),
    EventStatistic("log_inter_arrival", False, description="ln seconds between messages"),
    EventStatistic("log_time_to_cancel", False, description="ln seconds from submit to cancel"),
    EventStatistic("limit_depth_ask", True, description="submit ticks behind the best ask"),
    EventStatistic("limit_depth_bid", True, description="submit ticks behind the best bid"),
    EventStatistic("cancel_depth_ask", True, description="cancel ticks behind the best ask"),
    EventStatistic("cancel_depth_bid", True, description="cancel ticks behind the best bid"),
    EventStatistic("limit_level_ask", True, description="submit level index, ask"),
    EventStatistic("limit_level_bid", True, description="submit level index, bid"),
    EventStatistic("cancel_level_ask", True, description="cancel level index, ask"),
    EventStatistic("cancel_level_bid", True, description="cancel level index, bid"),
    EventStatistic("volume_per_min", False, description="executed shares per minute"),
    EventStatistic("ofi", False, description="OFI over 100 messages (shares)"),
    EventStatistic("ofi_up", False, description="OFI before an up mid move (shares)"),
    EventStatistic("ofi_flat", False, description="OFI before no mid move (shares)"),
    EventStatistic("ofi_down", False, description="OFI before a down mid move (shares)"),
    EventStatistic("ask_volume_touch|spread", False, True, "ask size 1 (shares) given spread"),
    EventStatistic("spread|hour", True, True, "spread (ticks) given hour"),
    EventStatistic("spread|volatility", True, True, "spread (ticks) given sd of 0.1 s returns"),
)
"""The 21 unconditional and 3 conditional statistics, in report order."""

STAT_BY_NAME = {s.name: s for s in EVENT_STATISTICS}


# ---------------------------------------------------------------------------
# statistics of one sequence
# ---------------------------------------------------------------------------
def _book(events: pd.DataFrame, levels: int, tick: float):
    def ticks(col):
        return np.rint(events[col].to_numpy(np.float64) / tick)  # NaN stays NaN

    bp = np.stack([ticks(f"bid_px_{k}") for k in range(1, levels + 1)], axis=1)
    ap = np.stack([ticks(f"ask_px_{k}") for k in range(1, levels + 1)], axis=1)
    bs = np.stack([events[f"bid_sz_{k}"].to_numpy(np.float64) for k in range(1, levels + 1)], axis=1)
    as_ = np.stack([events[f"ask_sz_{k}"].to_numpy(np.float64) for k in range(1, levels + 1)], axis=1)
    bp[bs <= 0] = np.nan
    ap[as_ <= 0] = np.nan
    return bp, bs, ap, as_


def _ofi_terms(bb, bq, ba, aq) -> np.ndarray:
    """Per-message level-1 OFI e_n (n >= 1; e_0 = 0), shares; NaN prices give 0 terms."""
    e = np.zeros(len(bb))
    pb, qb, pa, qa = bb[:-1], bq[:-1], ba[:-1], aq[:-1]
    cb, cqb, ca, cqa = bb[1:], bq[1:], ba[1:], aq[1:]
    with np.errstate(invalid="ignore"):
        e[1:] = (np.where(cb >= pb, cqb, 0.0) - np.where(cb <= pb, qb, 0.0)
                 - np.where(ca <= pa, cqa, 0.0) + np.where(ca >= pa, qa, 0.0))
    return np.nan_to_num(e)


def _minute_volatility(t_ns: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Per message: sd of the 0.1 s log mid returns within its clock minute (NaN with < 2 returns)."""
    ok = np.isfinite(mid) & (mid > 0)
    out = np.full(len(t_ns), np.nan)
    if ok.sum() < 2:
        return out
    step = t_ns // VOL_STEP_NS
    s0, s1 = int(step[0]), int(step[-1])
    grid = np.arange(s0, s1 + 1)
    # mid at the last message of each step, forward-filled over empty steps
    last = np.searchsorted(step[ok], grid, side="right") - 1
    m_ok = mid[ok]
    lm = np.where(last >= 0, np.log(m_ok[np.clip(last, 0, None)]), np.nan)
    r = np.diff(lm)
    rminute = (grid[1:] * VOL_STEP_NS) // 60_000_000_000
    minute = t_ns // 60_000_000_000
    for mnt in np.unique(minute):
        rr = r[(rminute == mnt) & np.isfinite(r)]
        if len(rr) >= 2:
            out[minute == mnt] = float(np.std(rr, ddof=1))
    return out


def sequence_statistics(events: pd.DataFrame, *, levels: int | None = None, ofi_window: int = OFI_WINDOW) -> dict:
    """All :data:`EVENT_STATISTICS` of one sequence.

    ``events``: a canonical event table (one sequence, time-ordered). ``levels``: book levels used
    for the 10-level volumes (default min(10, levels of the table)). ``ofi_window``: messages per
    OFI window (LOB-Bench: :data:`OFI_WINDOW`).

    Returns ``{name: values}`` (float64 arrays) for the unconditional statistics and
    ``{name: (values, condition)}`` for the conditional ones.
    """
    if len(events) < 2:
        raise FidelityError(f"sequence_statistics: a sequence needs >= 2 messages, got {len(events)}")
    L = min(10, infer_levels(events)) if levels is None else int(levels)
    tick = float(events.attrs.get("tick_size", 0.01))
    ts = pd.DatetimeIndex(events["ts"])
    t_ns = ts.asi8.astype(np.int64)
    if (np.diff(t_ns) < 0).any():
        bad = int(np.flatnonzero(np.diff(t_ns) < 0)[0]) + 1
        raise FidelityError(f"sequence_statistics: ts decreases at row {bad}")
    typ = _LOBSTER_TYPE[event_codes(events)]
    direction = events["direction"].to_numpy(np.int64)
    size = events["size"].to_numpy(np.float64)
    price = events["price_ticks"].to_numpy(np.int64).astype(np.float64)
    oid = events["order_id"].to_numpy(np.int64)
    bp, bs, ap, as_ = _book(events, L, tick)
    bb, ba = bp[:, 0], ap[:, 0]
    bq, aq = bs[:, 0], as_[:, 0]
    out: dict = {}
    both = np.isfinite(bb) & np.isfinite(ba)
    spread = ba - bb
    out["spread"] = spread[both]
    with np.errstate(invalid="ignore", divide="ignore"):
        obi = (bq - aq) / (bq + aq)
    out["orderbook_imbalance"] = obi[np.isfinite(obi)]
    out["ask_volume_touch"] = aq.copy()
    out["bid_volume_touch"] = bq.copy()
    out["ask_volume_10"] = as_.sum(axis=1)
    out["bid_volume_10"] = bs.sum(axis=1)
    gap = np.diff(t_ns) / 1e9
    out["log_inter_arrival"] = np.log(np.maximum(gap, MIN_LOG_GAP_S))
    # time to cancel: orders submitted in this sequence (order ids > 0)
    is_sub = (typ == 1) & (oid > 0)
    is_can = ((typ == 2) | (typ == 3)) & (oid > 0)
    sub_t = pd.Series(t_ns[is_sub], index=oid[is_sub])
    sub_t = sub_t[~sub_t.index.duplicated(keep="first")]
    c_idx = np.flatnonzero(is_can)
    t_sub = sub_t.reindex(oid[c_idx]).to_numpy(np.float64)
    found = np.isfinite(t_sub)
    dtc = (t_ns[c_idx][found] - t_sub[found]) / 1e9
    out["log_time_to_cancel"] = np.log(np.maximum(dtc, MIN_LOG_GAP_S))
    # depth and level of submissions / cancels against the book before the message
    i = np.arange(1, len(events))
    pbb, pba = bb[i - 1], ba[i - 1]
    p = price[i]
    for kind, mask in (("limit", typ[i] == 1), ("cancel", (typ[i] == 2) | (typ[i] == 3))):
        ask = mask & (direction[i] == -1)
        bid = mask & (direction[i] == 1)
        a_ok = ask & np.isfinite(pba)
        b_ok = bid & np.isfinite(pbb)
        out[f"{kind}_depth_ask"] = (p - pba)[a_ok]
        out[f"{kind}_depth_bid"] = (pbb - p)[b_ok]
        with np.errstate(invalid="ignore"):
            out[f"{kind}_level_ask"] = (ap[i - 1][ask] < p[ask, None]).sum(axis=1).astype(np.float64)
            out[f"{kind}_level_bid"] = (bp[i - 1][bid] > p[bid, None]).sum(axis=1).astype(np.float64)
    # volume per clock minute
    minute = t_ns // 60_000_000_000
    m0 = minute[0]
    ex = (typ == 4) | (typ == 5)
    out["volume_per_min"] = np.bincount((minute - m0)[ex], weights=size[ex],
                                        minlength=int(minute[-1] - m0) + 1).astype(np.float64)
    # OFI over rolling windows of OFI_WINDOW messages (terms e_1..e_n-1)
    e = _ofi_terms(bb, bq, ba, aq)
    c = np.concatenate([[0.0], np.cumsum(e)])
    n = len(events)
    w = int(ofi_window)
    if w < 1:
        raise FidelityError(f"sequence_statistics: ofi_window must be >= 1, got {ofi_window}")
    if n > w:
        end = np.arange(w, n)  # window = terms end-w+1 .. end
        ofi = c[end + 1] - c[end + 1 - w]
    else:
        end = np.zeros(0, np.int64)
        ofi = np.zeros(0)
    out["ofi"] = ofi
    mid = (bb + ba) / 2.0
    nxt = end + 1
    has_next = nxt < n
    with np.errstate(invalid="ignore"):
        dm = np.where(has_next, mid[np.minimum(nxt, n - 1)] - mid[end], np.nan)
    out["ofi_up"] = ofi[dm > 0]
    out["ofi_flat"] = ofi[dm == 0]
    out["ofi_down"] = ofi[dm < 0]
    # conditional
    out["ask_volume_touch|spread"] = (aq[both], spread[both])
    hour = ts.hour.to_numpy().astype(np.float64)
    out["spread|hour"] = (spread[both], hour[both])
    vol = _minute_volatility(t_ns, mid)
    ok = both & np.isfinite(vol)
    out["spread|volatility"] = (spread[ok], vol[ok])
    return out


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def fd_edges(x) -> np.ndarray:
    """Freedman-Diaconis bin edges of ``x``: width ``2 IQR n^(-1/3)`` over [min, max], at most
    :data:`MAX_FD_BINS` bins; one bin per unique value when the IQR is 0 or there are at most 2
    unique values (edges at midpoints)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise FidelityError("fd_edges: empty sample")
    lo, hi = float(x.min()), float(x.max())
    q75, q25 = np.percentile(x, [75, 25])
    iqr = q75 - q25
    if iqr <= 0 or hi <= lo:
        return _unique_edges(x)
    h = 2.0 * iqr * len(x) ** (-1.0 / 3.0)
    nb = int(min(MAX_FD_BINS, max(1, math.ceil((hi - lo) / h))))
    return np.linspace(lo, hi, nb + 1)


def _unique_edges(x) -> np.ndarray:
    u = np.unique(x)
    if len(u) == 1:
        return np.array([u[0] - 0.5, u[0] + 0.5])
    mids = (u[1:] + u[:-1]) / 2.0
    return np.concatenate([[u[0] - (mids[0] - u[0])], mids, [u[-1] + (u[-1] - mids[-1])]])


def l1_tv(a, b, *, discrete: bool = False) -> float:
    """Total variation between the histograms of ``a`` and ``b`` on common bins of the pooled
    sample (unique values if ``discrete``, else :func:`fd_edges`): half the sum of absolute
    differences of the bin shares, in [0, 1]. NaN when either sample is empty."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    edges = _unique_edges(pooled) if discrete else fd_edges(pooled)
    ha = np.histogram(a, edges)[0] / len(a)
    hb = np.histogram(b, edges)[0] / len(b)
    return 0.5 * float(np.abs(ha - hb).sum())


def w1_z(a, b) -> float:
    """Wasserstein-1 distance of ``a`` and ``b`` after z-scoring both with the pooled mean and sd
    (sd 0: raw values). NaN when either sample is empty."""
    from scipy.stats import wasserstein_distance

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    mu, sd = float(pooled.mean()), float(pooled.std())
    sd = sd if sd > 0 else 1.0
    return float(wasserstein_distance((a - mu) / sd, (b - mu) / sd))


def cond_edges(c) -> np.ndarray:
    """Conditioning bins: unique values when there are at most :data:`N_COND_BINS`, else the
    deciles of ``c`` (duplicate edges merged)."""
    c = np.asarray(c, dtype=np.float64)
    u = np.unique(c)
    if len(u) <= N_COND_BINS:
        return _unique_edges(u)
    e = np.unique(np.quantile(c, np.linspace(0, 1, N_COND_BINS + 1)))
    e[-1] = np.nextafter(e[-1], np.inf)
    return e


def score_sample(stat: EventStatistic, a, b) -> tuple[float, float]:
    """(L1, W1) of one statistic between two pooled samples (value arrays, or (values, condition)
    pairs for a conditional statistic, averaged over the conditioning bins with values on both
    sides; NaN when there is none)."""
    if not stat.conditional:
        return l1_tv(a, b, discrete=stat.discrete), w1_z(a, b)
    (va, ca), (vb, cb) = a, b
    if len(ca) == 0 or len(cb) == 0:
        return float("nan"), float("nan")
    edges = cond_edges(np.concatenate([ca, cb]))
    ia = np.searchsorted(edges, ca, side="right") - 1
    ib = np.searchsorted(edges, cb, side="right") - 1
    l1s, w1s = [], []
    for k in range(len(edges) - 1):
        xa, xb = va[ia == k], vb[ib == k]
        if len(xa) and len(xb):
            l1s.append(l1_tv(xa, xb, discrete=stat.discrete))
            w1s.append(w1_z(xa, xb))
    if not l1s:
        return float("nan"), float("nan")
    return float(np.mean(l1s)), float(np.mean(w1s))


def iqm(x) -> float:
    """Interquartile mean: mean of the values between the 25th and 75th percentiles (the middle
    50 % after sorting; a quarter trimmed from each end), NaN-free input."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    if n == 0:
        return float("nan")
    k = int(n // 4)
    mid = x[k:n - k]
    return float(mid.mean()) if len(mid) else float(x.mean())


def summarise(scores) -> dict[str, float]:
    """``{"mean", "median", "iqm"}`` over the finite values of ``scores``."""
    v = np.asarray([s for s in scores if np.isfinite(s)], dtype=np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "median": float("nan"), "iqm": float("nan")}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "iqm": iqm(v)}


def pool(seqs: list[dict], name: str):
    """Pool one statistic over a list of :func:`sequence_statistics` dicts."""
    st = STAT_BY_NAME[name]
    if st.conditional:
        return (np.concatenate([s[name][0] for s in seqs]), np.concatenate([s[name][1] for s in seqs]))
    return np.concatenate([s[name] for s in seqs])


@dataclass
class EventScores:
    """Scores of one comparison (generated or held-out sequences vs real sequences)."""

    label: str
    """What was compared, e.g. ``"CST vs real"``."""
    l1: dict[str, float]
    """Statistic name -> L1 (NaN: a side produced no value)."""
    w1: dict[str, float]
    """Statistic name -> W1."""
    l1_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Statistic name -> bootstrap percentile interval of L1."""
    w1_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{"l1": {"mean", "median", "iqm"}, "w1": {...}}``."""
    summary_ci: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    n_real: int = 0
    """Sequences on the reference side."""
    n_other: int = 0
    """Sequences on the compared side."""


def _score_all(ra: list[dict], rb: list[dict]):
    l1, w1 = {}, {}
    for st in EVENT_STATISTICS:
        l1[st.name], w1[st.name] = score_sample(st, pool(ra, st.name), pool(rb, st.name))
    return l1, w1


def score_sequences(real: list[dict], other: list[dict], *, label: str = "", n_boot: int = 100,
                    rng: np.random.Generator | None = None, ci: float = 0.95) -> EventScores:
    """Score ``other`` against ``real`` (lists of :func:`sequence_statistics` dicts).

    Bootstrap: ``n_boot`` replicates, each resampling the sequences of both sides with
    replacement (independently); ``ci`` percentile intervals of each score and summary.
    """
    if not real or not other:
        raise FidelityError("score_sequences: both sides need at least one sequence")
    rng = rng if rng is not None else np.random.default_rng(0)
    l1, w1 = _score_all(real, other)
    res = EventScores(label, l1, w1, n_real=len(real), n_other=len(other))
    res.summary = {"l1": summarise(l1.values()), "w1": summarise(w1.values())}
    if n_boot > 0:
        bl1 = {k: [] for k in l1}
        bw1 = {k: [] for k in w1}
        bs = {m: {s: [] for s in ("mean", "median", "iqm")} for m in ("l1", "w1")}
        for _ in range(n_boot):
            ra = [real[j] for j in rng.integers(0, len(real), len(real))]
            rb = [other[j] for j in rng.integers(0, len(other), len(other))]
            x1, x2 = _score_all(ra, rb)
            for k in l1:
                bl1[k].append(x1[k])
                bw1[k].append(x2[k])
            for m, d in (("l1", x1), ("w1", x2)):
                for s, v in summarise(d.values()).items():
                    bs[m][s].append(v)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]

        def interval(v):
            v = np.asarray(v, dtype=np.float64)
            v = v[np.isfinite(v)]
            return tuple(float(x) for x in np.percentile(v, q)) if len(v) else (float("nan"),) * 2

        res.l1_ci = {k: interval(v) for k, v in bl1.items()}
        res.w1_ci = {k: interval(v) for k, v in bw1.items()}
        res.summary_ci = {m: {s: interval(v) for s, v in d.items()} for m, d in bs.items()}
    return res


# ---------------------------------------------------------------------------
# real and generated sequences
# ---------------------------------------------------------------------------
def split_sequences(events: pd.DataFrame, *, start: str = "14:00", end: str = "16:00",
                    window_s: float = 600.0) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of consecutive ``window_s``-second windows of exchange time from
    ``start`` to ``end`` (``"HH:MM"``, the table's own clock); windows with < 2 messages are
    skipped."""
    ts = pd.DatetimeIndex(events["ts"])
    day = ts[0].normalize()
    try:
        t0 = day + pd.Timedelta(str(start).strip() + ":00")
        t1 = day + pd.Timedelta(str(end).strip() + ":00")
    except ValueError as exc:
        raise FidelityError(f"split_sequences: start/end must be 'HH:MM', got {start!r}, {end!r}") from exc
    if t1 <= t0 or window_s <= 0:
        raise FidelityError(f"split_sequences: bad window {start}-{end} / {window_s} s")
    edges = []
    t = t0
    while t < t1:
        edges.append(t)
        t = t + pd.Timedelta(seconds=window_s)
    edges.append(t1)
    idx = ts.searchsorted(pd.DatetimeIndex(edges))
    out = [(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:]) if b - a >= 2]
    if not out:
        raise FidelityError(f"split_sequences: no messages between {start} and {end}")
    return out


def cst_sequences(params, events: pd.DataFrame, ranges, rng: np.random.Generator, *,
                  levels: int = 10) -> list[pd.DataFrame]:
    """One CST-generated sequence per real row range: :func:`~lobworld.world_models.tick_parametric.simulate_cst`
    started from the real book just before the range (its listed levels), at the range's first
    message time, for as many messages as the real range holds."""
    from lobworld.world_models.tick_parametric import ArrayBook, simulate_cst

    ts = pd.DatetimeIndex(events["ts"])
    day_ns = ts[0].normalize().value
    out = []
    for a, b in ranges:
        row = max(a - 1, 0)
        book = ArrayBook.from_events(events, row, n_grid=4096)
        start_ns = int(ts[a].value - day_ns)
        run = simulate_cst(params, rng, int(b - a), book=book, start_ns=start_ns, levels=levels)
        out.append(run.to_events(date=str(ts[0].date()), tick_size=float(events.attrs.get("tick_size", 0.01)),
                                 ticker=f"CST-{events.attrs.get('ticker', '')}"))
    return out


def write_lobster(events: pd.DataFrame, folder, *, ticker: str | None = None, levels: int = 10,
                  gz: bool = False) -> tuple[pathlib.Path, pathlib.Path]:
    """Write one sequence as a LOBSTER message + orderbook file pair in ``folder``.

    Names ``TICKER_DATE_STARTMS_ENDMS_{message,orderbook}_LEVELS.csv`` (``.gz`` with ``gz``), the
    window in ms after midnight bracketing the messages. Message rows: time (s after midnight, 9
    decimals), type (1-7), order id, size, price (USD x 10000), direction. Orderbook rows: per level
    ask price, ask size, bid price, bid size; levels beyond the table's (or empty) hold 9999999999 /
    -9999999999 with size 0. Returns (message path, orderbook path).
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ticker = ticker or str(events.attrs.get("ticker", "SIM"))
    ticker = "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in ticker) or "SIM"
    L_have = infer_levels(events)
    ts = pd.DatetimeIndex(events["ts"])
    day = ts[0].normalize()
    ns = np.asarray((ts - day).asi8, dtype=np.int64)  # ns after midnight
    typ = _LOBSTER_TYPE[event_codes(events)]
    if (typ == 0).any():
        bad = int(np.flatnonzero(typ == 0)[0])
        raise FidelityError(f"write_lobster: row {bad}: event {events['event'].iloc[bad]!r} has no LOBSTER type")
    size = events["size"].to_numpy(np.float64)
    if (size != np.rint(size)).any():
        bad = int(np.flatnonzero(size != np.rint(size))[0])
        raise FidelityError(f"write_lobster: row {bad}: size {size[bad]} is not whole shares")
    px = events["price"].to_numpy(np.float64)
    state = events["trading_state"].to_numpy(np.int64)
    px_raw = np.where(typ == 7, state, np.rint(np.nan_to_num(px) * 10_000.0)).astype(np.int64)
    direction = np.where(typ == 7, -1, events["direction"].to_numpy(np.int64))
    oid = events["order_id"].to_numpy(np.int64)
    sec, frac = ns // 1_000_000_000, ns % 1_000_000_000
    msg_lines = [f"{s}.{f:09d},{t},{o},{int(z)},{p},{d}"
                 for s, f, t, o, z, p, d in zip(sec, frac, typ, oid, size, px_raw, direction)]
    n = len(events)
    ob = np.empty((n, 4 * levels), dtype=np.int64)
    for k in range(1, levels + 1):
        if k <= L_have:
            apk = events[f"ask_px_{k}"].to_numpy(np.float64)
            ask_sz = events[f"ask_sz_{k}"].to_numpy(np.float64)
            bpk = events[f"bid_px_{k}"].to_numpy(np.float64)
            bid_sz = events[f"bid_sz_{k}"].to_numpy(np.float64)
        else:
            apk = bpk = np.full(n, np.nan)
            ask_sz = bid_sz = np.zeros(n)
        a_ok = np.isfinite(apk) & (ask_sz > 0)
        b_ok = np.isfinite(bpk) & (bid_sz > 0)
        ob[:, 4 * (k - 1)] = np.where(a_ok, np.rint(np.nan_to_num(apk) * 10_000.0), 9999999999)
        ob[:, 4 * (k - 1) + 1] = np.where(a_ok, ask_sz, 0)
        ob[:, 4 * (k - 1) + 2] = np.where(b_ok, np.rint(np.nan_to_num(bpk) * 10_000.0), -9999999999)
        ob[:, 4 * (k - 1) + 3] = np.where(b_ok, bid_sz, 0)
    start_ms = int(ns[0] // 1_000_000)
    end_ms = int(ns[-1] // 1_000_000) + 1
    date = str(ts[0].date())
    suffix = ".csv.gz" if gz else ".csv"
    mp = folder / f"{ticker}_{date}_{start_ms}_{end_ms}_message_{levels}{suffix}"
    op = folder / f"{ticker}_{date}_{start_ms}_{end_ms}_orderbook_{levels}{suffix}"
    ob_lines = [",".join(map(str, row)) for row in ob.tolist()]
    _write_text(mp, "\n".join(msg_lines) + "\n", gz)
    _write_text(op, "\n".join(ob_lines) + "\n", gz)
    return mp, op


def _write_text(path: pathlib.Path, text: str, gz: bool) -> None:
    if gz:
        import gzip

        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


# ---------------------------------------------------------------------------
# the report section
# ---------------------------------------------------------------------------
@dataclass
class EventReport:
    """Event-level section for one asset-day."""

    ticker: str
    floor: EventScores
    """Real vs real: even vs odd held-out windows."""
    cst: EventScores
    """CST-generated sequences vs all held-out real windows."""
    real_stats: list[dict]
    cst_stats: list[dict]
    cst_events: list[pd.DataFrame] = field(default_factory=list, repr=False)


def event_report(events: pd.DataFrame, *, params=None, start: str = "14:00", end: str = "16:00",
                 window_s: float = 600.0, n_boot: int = 100, seed: int = 0) -> EventReport:
    """Floor and CST scores on the held-out ``start``-``end`` windows of one real day.

    Floor: even- vs odd-numbered windows (interleaved halves, so both halves cover every hour of
    ``spread|hour``). CST: ``params`` (default :func:`~lobworld.world_models.tick_parametric.load_fitted_cst`
    of the table's ticker) simulated from each window's real starting book (:func:`cst_sequences`),
    scored against all windows. Volumes over 10 levels use min(10, the table's levels).
    """
    from lobworld.world_models.tick_parametric import load_fitted_cst

    ticker = str(events.attrs.get("ticker", "UNKNOWN"))
    L = min(10, infer_levels(events))
    ranges = split_sequences(events, start=start, end=end, window_s=window_s)
    if len(ranges) < 2:
        raise FidelityError(f"event_report: {len(ranges)} window(s) between {start} and {end}; need >= 2")
    real = [sequence_statistics(events.iloc[a:b], levels=L) for a, b in ranges]
    ss = np.random.SeedSequence(seed)
    r_floor, r_cst, r_sim = (np.random.default_rng(s) for s in ss.spawn(3))
    floor = score_sequences(real[0::2], real[1::2], label="real vs real (even vs odd windows)",
                            n_boot=n_boot, rng=r_floor)
    params = params if params is not None else load_fitted_cst(ticker)
    gen = cst_sequences(params, events, ranges, r_sim, levels=10)
    gen_stats = [sequence_statistics(g, levels=L) for g in gen]
    cst = score_sequences(real, gen_stats, label="CST vs real", n_boot=n_boot, rng=r_cst)
    return EventReport(ticker, floor, cst, real, gen_stats, gen)


def _fmt(v, ci=None) -> str:
    if not np.isfinite(v):
        return "n/a"
    if ci and np.all(np.isfinite(ci)):
        return f"{v:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{v:.3f}"


def format_events_markdown(reports: list[EventReport]) -> str:
    """Markdown: one table per asset (statistic x {floor, CST} x {L1, W1} with bootstrap
    intervals) and a summary table (mean / median / IQM)."""
    lines = []
    for rep in reports:
        lines += [f"### {rep.ticker}: held-out windows, {rep.cst.n_real} real sequences", "",
                  "| statistic | floor L1 | floor W1 | CST L1 | CST W1 |", "|---|---|---|---|---|"]
        for st in EVENT_STATISTICS:
            k = st.name
            lines.append(f"| `{k}` | {_fmt(rep.floor.l1[k], rep.floor.l1_ci.get(k))} | "
                         f"{_fmt(rep.floor.w1[k], rep.floor.w1_ci.get(k))} | "
                         f"{_fmt(rep.cst.l1[k], rep.cst.l1_ci.get(k))} | {_fmt(rep.cst.w1[k], rep.cst.w1_ci.get(k))} |")
        lines.append("")
    lines += ["### Summary over statistics", "",
              "| asset | comparison | mean L1 | median L1 | IQM L1 | mean W1 | median W1 | IQM W1 |",
              "|---|---|---|---|---|---|---|---|"]
    for rep in reports:
        for name, sc in (("floor", rep.floor), ("CST", rep.cst)):
            cells = [_fmt(sc.summary[m][s], sc.summary_ci.get(m, {}).get(s))
                     for m in ("l1", "w1") for s in ("mean", "median", "iqm")]
            lines.append(f"| {rep.ticker} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plot_events(reports: list[EventReport], out_dir) -> list[pathlib.Path]:
    """PNGs in ``out_dir``: ``events_scores_<TICKER>.png`` (L1 and W1 per statistic, floor vs CST)
    and ``events_hist_<TICKER>.png`` (real vs CST histograms of six statistics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    names = [s.name for s in EVENT_STATISTICS]
    for rep in reports:
        fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
        x = np.arange(len(names))
        for ax, m in zip(axes, ("l1", "w1")):
            for off, sc, lab in ((-0.2, rep.floor, "real vs real floor"), (0.2, rep.cst, "CST vs real")):
                v = np.array([getattr(sc, m)[k] for k in names])
                ax.bar(x + off, np.nan_to_num(v), 0.4, label=lab)
            ax.set_ylabel({"l1": "L1 (total variation)", "w1": "W1 (z-scored)"}[m])
            ax.legend(fontsize=8)
        axes[1].set_xticks(x)
        axes[1].set_xticklabels(names, rotation=70, ha="right", fontsize=7)
        fig.suptitle(f"{rep.ticker}: LOB-Bench event-level scores")
        fig.tight_layout()
        p = out_dir / f"events_scores_{rep.ticker}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
        show = ["spread", "orderbook_imbalance", "ask_volume_touch", "log_inter_arrival", "limit_depth_bid", "ofi"]
        fig, axes = plt.subplots(2, 3, figsize=(12, 6))
        for ax, k in zip(axes.ravel(), show):
            a, b = pool(rep.real_stats, k), pool(rep.cst_stats, k)
            if len(a) and len(b):
                edges = fd_edges(np.concatenate([a, b]))
                if len(edges) > 200:
                    edges = np.linspace(edges[0], edges[-1], 201)
                ax.hist(a, edges, density=True, alpha=0.5, label="real")
                ax.hist(b, edges, density=True, alpha=0.5, label="CST")
            ax.set_title(f"{k}: {STAT_BY_NAME[k].description}", fontsize=8)
            ax.legend(fontsize=7)
        fig.suptitle(f"{rep.ticker}: real held-out vs CST")
        fig.tight_layout()
        p = out_dir / f"events_hist_{rep.ticker}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths

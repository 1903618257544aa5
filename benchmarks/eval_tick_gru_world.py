"""Evaluation of the learned tick world (``world="learned"``) on the held-out afternoon of 2012-06-21.

The parts, each a function returning plain dicts (printed as markdown by :func:`main`):

* :func:`lob_bench`: LOB-Bench scores (:mod:`lobworld.world_models.fidelity.events`) of the
  learned world against the real held-out windows (14:00-16:00, 600 s each), beside the
  real-vs-real floor and the Cont-Stoikov-Talreja baseline of :func:`event_report`. Each learned
  sequence starts from the real book just before its window, the GRU warmed on the 500 real
  messages before it, and runs the window's 600 s of market time (no agent); its book after
  every message is rebuilt from the start book and the logged messages (the engine's rules).
* :func:`impact_curve`: metaorders (buy and sell) of several sizes executed as one market child
  per second at a fixed participation of the real day's traded volume, in the learned world from
  random held-out starts, against the same seeds without the metaorder (common random numbers).
  Impact = the signed mid difference (ticks) at the metaorder's last child, averaged per size;
  exponent = slope of log mean impact on log size with a free intercept; 95% CI by bootstrap over
  the envs.
* :func:`tape_impact`: the same measures on the real tape's metaorder proxies (runs of same-sign
  market orders, :mod:`lobworld.world_models.impact`): exponent and the share of the peak left
  5, 15 and 30 minutes after a run.
* :func:`direction_forecast`: from random held-out rows, the mid-price direction (up / flat /
  down) after the next ``k`` events: the learned world's predictive distribution (``paths``
  simulated continuations) against the real tape, beside persistence (always flat), the training
  block's most frequent class and a multinomial logit on OFI and depth imbalance fitted on the
  training block; accuracy, macro-F1 and log score with paired bootstrap intervals.

    python benchmarks/eval_tick_gru_world.py [--tickers GOOG,AMZN] [--parts bench,impact,decay,tape,direction]
        [--weights GOOG=PATH.npz,AMZN=PATH.npz]   # a candidate checkpoint instead of the shipped one
        [--agent-tokens off]                       # impact / decay with agent_tokens=False (ablation)
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time

import numpy as np
import pandas as pd
from numba import njit

import lobworld  # noqa: F401
from lobworld.envs.book import Book, BookConfig
from lobworld.envs.replay import ReplayData
from lobworld.world_models.data.events import NO_PRICE, Messages, messages_to_events
from lobworld.world_models.data.lobster import load_lobster
from lobworld.world_models.fidelity.direction import (
    CLASSES, DirectionLogit, direction_features, direction_labels, direction_scores, mid_ticks, paired_bootstrap,
    predict_from_counts,
)
from lobworld.world_models.fidelity.events import (
    event_report, score_sequences, sequence_statistics, split_sequences,
)
from lobworld.world_models.tick_gru_world import L_PRICE, L_SIDE, L_SIZE, L_T, L_TYPE, TickGRUWorld, _weights
from lobworld.world_models.tick_sim import pack_tick_weights

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
FILES = {"GOOG": "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz",
         "AMZN": "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"}
DEPTH = 20
WEIGHTS: dict[str, str] = {}
"""Checkpoint per ticker used instead of the shipped weights (``--weights``)."""


def _paths(ticker: str) -> tuple[pathlib.Path, pathlib.Path]:
    m = DATA / FILES[ticker]
    return m, pathlib.Path(str(m).replace("_message_", "_orderbook_"))


@njit(cache=True)
def rebuild_books(px0, sz0, nl0, msgs, L):
    """Top-``L`` book after each logged message (``msgs (m, N_LCOL)``), from the start book
    ``px0, sz0 (2, D)``, ``nl0 (2,)``, with the engine's level rules (depth ``D``: a submit beyond a
    full side is dropped, a new level pushes the deepest out). Returns ``(m, 2, L)`` prices / sizes."""
    D = px0.shape[1]
    px = px0.copy()
    sz = sz0.copy()
    nl = nl0.copy()
    m = msgs.shape[0]
    opx = np.zeros((m, 2, L), np.int64)
    osz = np.zeros((m, 2, L), np.int64)
    for r in range(m):
        typ = msgs[r, 1]
        s = msgs[r, 2]
        p = msgs[r, 3]
        q = msgs[r, 4]
        n = nl[s]
        j = 0
        while j < n and ((px[s, j] > p) if s == 0 else (px[s, j] < p)):
            j += 1
        if typ == 1:
            if j < n and px[s, j] == p:
                sz[s, j] += q
            elif j < D:
                last = n if n < D else D - 1
                for k in range(last, j, -1):
                    px[s, k] = px[s, k - 1]
                    sz[s, k] = sz[s, k - 1]
                px[s, j] = p
                sz[s, j] = q
                if n < D:
                    nl[s] = n + 1
        elif typ == 2 or typ == 3 or typ == 4:
            if j < n and px[s, j] == p:
                sz[s, j] -= q
                if sz[s, j] <= 0:
                    for k in range(j, n - 1):
                        px[s, k] = px[s, k + 1]
                        sz[s, k] = sz[s, k + 1]
                    px[s, n - 1] = 0
                    sz[s, n - 1] = 0
                    nl[s] = n - 1
        for s2 in range(2):
            for k in range(L):
                if k < nl[s2]:
                    opx[r, s2, k] = px[s2, k]
                    osz[r, s2, k] = sz[s2, k]
    return opx, osz


def _events(world, book0, i, midnight, date, tick, ticker, L):
    lg = world.messages(i)
    px, sz = rebuild_books(book0[0][i], book0[1][i], book0[2][i], lg, L)
    msgs = Messages(time_ns=lg[:, L_T] - midnight, type=lg[:, L_TYPE].astype(np.int8),
                    size=lg[:, L_SIZE].astype(np.float64), price_ticks=lg[:, L_PRICE],
                    direction=np.where(lg[:, L_SIDE] == 0, 1, -1).astype(np.int8))
    bp = np.where(sz[:, 0] > 0, px[:, 0], NO_PRICE)
    ap = np.where(sz[:, 1] > 0, px[:, 1], NO_PRICE)
    return messages_to_events(msgs, bp, sz[:, 0], ap, sz[:, 1], date=date, tick_size=tick, ticker=ticker)


def _weights_of(ticker: str):
    return pack_tick_weights(WEIGHTS[ticker]) if ticker in WEIGHTS else _weights(ticker)


def _world_for(ticker: str, record: int = 0, warmup: int = 500) -> TickGRUWorld:
    m, o = _paths(ticker)
    return TickGRUWorld(_weights_of(ticker), ReplayData.from_lobster(m, o), warmup=warmup, record=record)


def lob_bench(ticker: str, n_boot: int = 100, seed: int = 0, window_s: float = 600.0) -> dict:
    m, o = _paths(ticker)
    t = time.perf_counter()
    events = load_lobster(m, o)
    L = min(10, int(events.attrs.get("levels", 10)))
    rep = event_report(events, n_boot=n_boot, seed=seed, window_s=window_s)
    ranges = split_sequences(events, window_s=window_s)
    ts = pd.DatetimeIndex(events["ts"])
    world = _world_for(ticker, record=200_000)
    n = len(ranges)
    book = Book(n, world.book_config(BookConfig(depth=DEPTH)), seed=seed)  # window i: stream seed + i
    t0 = np.array([ts[a].value - 1 for a, _ in ranges], np.int64)
    world.reset_rows(book, np.arange(n), t0)
    book0 = (book.px[:, :, :].copy(), book.sz.copy(), book.nl.copy())
    world.advance(book, t0 + int(window_s * 1e9))
    midnight = world._midnight
    date = str(ts[0].date())
    tick = float(events.attrs.get("tick_size", 0.01))
    gen = [_events(world, book0, i, midnight, date, tick, f"GRU-{ticker}", L) for i in range(n)]
    gen_stats = [sequence_statistics(g, levels=L) for g in gen]
    learned = score_sequences(rep.real_stats, gen_stats, label="learned vs real", n_boot=n_boot,
                              rng=np.random.default_rng(seed + 1))
    n_real = [b - a for a, b in ranges]
    return {"ticker": ticker, "floor": rep.floor, "cst": rep.cst, "learned": learned, "windows": n,
            "real_msgs": float(np.mean(n_real)), "learned_msgs": float(np.mean([len(g) for g in gen])),
            "counters": world.wcnt.sum(0), "wall_s": time.perf_counter() - t}


NO_TOKENS = "learned-no-agent-tokens"
"""Tick world name of the ablation ``--agent-tokens off``: the learned world with
``agent_tokens=False`` (the market sees the agent only through the book context)."""


def _register_no_tokens() -> None:
    from lobworld.envs.tick import register_tick_world, registered_tick_worlds
    from lobworld.world_models.tick_world import replay_and_ticker

    def make(config):
        rw, ticker = replay_and_ticker(config.data)
        return TickGRUWorld(_weights_of(ticker), rw.data, agent_tokens=False)

    if NO_TOKENS not in registered_tick_worlds():
        register_tick_world(NO_TOKENS, make)


def _traded_rate(ticker: str) -> float:
    from lobworld.world_models.data.lobster import load_lobster_messages

    m, _ = _paths(ticker)
    msg = load_lobster_messages(m)
    ex = msg["type"].isin([4, 5]).to_numpy()
    span = float(msg["time"].iloc[-1] - msg["time"].iloc[0])
    return float(msg["size"].to_numpy()[ex].sum() / span)


def impact_curve(ticker: str, sizes=(100, 200, 400, 800, 1600, 3200), participation: float = 0.1, n: int = 64,
                 n_boot: int = 1000, seed: int = 0, world: str = "learned") -> dict:
    from lobworld.envs.tick import TickExecutionCore

    m, _ = _paths(ticker)
    rate = _traded_rate(ticker)
    per_size = {}
    by_side = {}
    dropped = {}  # envs with an empty side at the measurement (no mid): left out of the means
    for side in ("buy", "sell"):
        for Q in sizes:
            T = max(2, int(round(Q / (participation * rate))))
            out = []
            for with_meta in (True, False):
                core = TickExecutionCore(n_envs=n, data=str(m), world=world, side=side, quantity=int(Q),
                                         horizon=T + 5, latency="colocated")
                core.seed_rows(range(n), [seed * 100_000 + 10 * Q + i for i in range(n)])
                core.reset()
                b = core.book
                for k in range(T):
                    a = np.zeros((n, 3), np.float32)
                    if with_meta:
                        a[:, 0] = 1.0 / (T - k)  # one market child of about Q / T shares
                    core.step(a, autoreset=False)
                mid = 0.5 * (b.px[:, 0, 0] + b.px[:, 1, 0])
                ok = (b.nl[:, 0] > 0) & (b.nl[:, 1] > 0)
                out.append((mid, ok, core.book.acct[:, 2 if side == "buy" else 3].copy()))
            (m1, ok1, q1), (m0, ok0, _) = out
            sign = 1.0 if side == "buy" else -1.0
            good = ok1 & ok0
            per_size.setdefault(Q, []).append(sign * (m1 - m0)[good])
            by_side[(side, Q)] = float((sign * (m1 - m0)[good]).mean())
            dropped[(side, Q)] = int((~good).sum())
    qs = np.array(sorted(per_size), float)
    imp = [np.concatenate(per_size[q]) for q in sorted(per_size)]
    means = np.array([x.mean() for x in imp])
    ses = np.array([x.std(ddof=1) / np.sqrt(len(x)) for x in imp])

    def fit(mv):
        keep = mv > 0
        if keep.sum() < 2:
            return np.nan
        return float(np.polyfit(np.log(qs[keep]), np.log(mv[keep]), 1)[0])

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        boots.append(fit(np.array([x[rng.integers(0, len(x), len(x))].mean() for x in imp])))
    boots = np.array(boots)
    boots = boots[np.isfinite(boots)]
    return {"ticker": ticker, "rate": rate, "participation": participation, "sizes": qs, "mean_ticks": means,
            "se_ticks": ses, "exponent": fit(means), "by_side": by_side, "dropped": dropped,
            "ci": tuple(np.percentile(boots, [2.5, 97.5])) if len(boots) else (np.nan, np.nan), "n": n}


def direction_forecast(ticker: str, ks=(10, 50), n_starts: int = 512, paths: int = 16, seed: int = 0,
                       n_boot: int = 2000) -> dict:
    """Mid-price direction after the next ``k`` messages (:mod:`lobworld.world_models.fidelity.direction`),
    on held-out rows 14:00-15:54 of the real tape. Forecasters: the learned world's predictive
    distribution (``paths`` simulated continuations from the real book and warm GRU state at each of
    ``n_starts`` random rows; the most frequent direction, ties to the training block's commoner
    class; log score with counts smoothed by 1/2), persistence (flat), the training block's most
    frequent class, and the multinomial logit on OFI (10, 50 messages) and depth imbalance (1, 5
    levels) fitted on 09:30-13:30. A start row is the last message of its timestamp, so the world
    starts from the same book as the label. Scores on the starts (paired bootstrap intervals against
    the logit) and, for the logit and the constant forecasters, on every held-out row."""
    mpath, opath = _paths(ticker)
    data = ReplayData.from_lobster(mpath, opath)
    t = data.tape.t
    fpx, fsz = data.fpx, data.fsz
    midnight = _world_for(ticker, warmup=0)._midnight
    hour = (t - midnight) / 3600e9
    mid = mid_ticks(fpx, fsz)
    X, ok, names = direction_features(fpx, fsz)
    kmax = max(ks)
    last_of_ts = np.r_[t[1:] > t[:-1], False]
    train = ok & (hour >= 9.5) & (hour < 13.5)
    held = ok & (hour >= 14.0) & (hour < 15.9) & last_of_ts
    labels = {k: direction_labels(mid, k) for k in ks}
    usable = held & np.all([np.isfinite(labels[k]) for k in ks], axis=0)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(usable), n_starts, replace=False))

    world = TickGRUWorld(_weights_of(ticker), data, warmup=500, record=kmax)
    n = n_starts * paths
    book = Book(n, world.book_config(BookConfig(depth=DEPTH)))
    t0 = np.repeat(t[rows], paths)
    book.rng[:] = np.random.default_rng(seed + 7).integers(1, 2 ** 63, book.rng.shape, dtype=np.uint64)
    world.reset_rows(book, np.arange(n), t0)
    book0 = (book.px.copy(), book.sz.copy(), book.nl.copy())
    until = t0.copy()
    for _ in range(600):  # advance until every path holds kmax messages
        if (world.nlog >= kmax).all():
            break
        until += 1_000_000_000
        world.advance(book, until)
    counts = {k: np.zeros((n_starts, 3)) for k in ks}
    short = 0
    for i in range(n):
        lg = world.messages(i)
        if len(lg) < kmax:
            short += 1
            continue
        px, sz = rebuild_books(book0[0][i], book0[1][i], book0[2][i], lg[:kmax], 1)
        m0 = 0.5 * (book0[0][i][0, 0] + book0[0][i][1, 0])
        for k in ks:
            d = int(np.sign(0.5 * (px[k - 1, 0, 0] + px[k - 1, 1, 0]) - m0))
            counts[k][i // paths, d + 1] += 1
    start_mid = 0.5 * (book0[0][::paths, 0, 0] + book0[0][::paths, 1, 0])
    out = {"ticker": ticker, "n_starts": n_starts, "paths": paths, "short_paths": short, "features": names,
           "start_mid_equal": float(np.mean(start_mid == mid[rows]))}
    for k in ks:
        y = labels[k]
        fit_rows = train & np.isfinite(y)
        logit = DirectionLogit.fit(X[fit_rows], y[fit_rows], names=names)
        prior = np.array([np.mean(y[fit_rows] == c) for c in CLASSES])
        major = CLASSES[int(np.argmax(prior))]
        ys = y[rows]
        p_logit = logit.predict_proba(X[rows])
        c = counts[k]
        p_learned = (c + 0.5) / (c.sum(axis=1, keepdims=True) + 1.5)
        preds = {"logit": np.argmax(p_logit, axis=1) - 1,
                 "learned": predict_from_counts(c, prior),
                 "persistence": np.zeros(n_starts, np.int64),
                 "train_majority": np.full(n_starts, major)}
        probas = {"logit": p_logit, "learned": p_learned, "persistence": None,
                  "train_majority": np.tile(prior, (n_starts, 1))}
        res = {name: direction_scores(ys, preds[name], probas[name]) for name in preds}
        res["ci"] = paired_bootstrap(ys, preds, n_boot=n_boot, seed=seed)
        every = usable & np.isfinite(y)
        ya = y[every]
        pa = logit.predict_proba(X[every])
        res["all_rows"] = {"logit": direction_scores(ya, np.argmax(pa, axis=1) - 1, pa),
                           "persistence": direction_scores(ya, np.zeros(len(ya), np.int64)),
                           "train_majority": direction_scores(ya, np.full(len(ya), major))}
        res["real_dist"] = [float(np.mean(ys == v)) for v in CLASSES]
        res["train_dist"] = prior.tolist()
        res["learned_dist"] = (c.sum(axis=0) / max(c.sum(), 1)).tolist()
        res["coef"] = logit.coef.tolist()
        out[k] = res
    return out


def _runs_subset(meta, keep: np.ndarray):
    """The metaorder proxies of ``meta`` where ``keep`` (the per-run arrays masked, session scales kept)."""
    n = len(meta)
    return dataclasses.replace(meta, **{f.name: getattr(meta, f.name)[keep] for f in dataclasses.fields(meta)
                                        if isinstance(getattr(meta, f.name), np.ndarray)
                                        and getattr(meta, f.name).shape == (n,)})


def tape_impact(ticker: str, horizons=(300, 900, 1800), q_min: float = 100.0, min_s: float = 10.0,
                n_boot: int = 300, seed: int = 0) -> dict:
    """The real tape's metaorder proxies (:mod:`lobworld.world_models.impact`: runs of same-sign market
    orders over the whole day): the square-root-law exponent (binned, free intercept) and the share
    of the peak impact left ``horizons`` seconds after a run's last order (``sum(post) / sum(peak)``),
    with 95% bootstrap intervals over runs. Groups: the default :class:`RunRule` (every run; runs of
    at least ``q_min`` shares, the smallest simulated metaorder; runs lasting at least ``min_s``
    seconds, closer to a split metaorder than a single sweep) and the tolerant rule that skips
    opposite orders under 10% of the run's volume."""
    from lobworld.world_models.impact import RunRule, extract_metaorders, fit_metaorders, permanent_fraction

    events = load_lobster(*_paths(ticker))
    out = {"ticker": ticker, "groups": {}}
    for h in horizons:
        for frac in (0.0, 0.1):
            meta = extract_metaorders(events, RunRule(interrupt_frac=frac, horizon_s=float(h)))
            dur = meta.t_end - meta.t_start
            groups = {f"gap 60 s, skip {frac:.0%}: every run": np.ones(len(meta), bool)}
            if frac == 0.0:
                groups[f"gap 60 s, skip 0%: Q >= {q_min:.0f}"] = meta.Q >= q_min
                groups[f"gap 60 s, skip 0%: lasting >= {min_s:.0f} s"] = dur >= min_s
            for group, keep in groups.items():
                sub = _runs_subset(meta, keep)
                g = out["groups"].setdefault(group, {"n_runs": len(sub), "median_Q": float(np.median(sub.Q)),
                                                     "median_s": float(np.median(sub.t_end - sub.t_start)),
                                                     "left": {}})
                if "delta" not in g:
                    fit = fit_metaorders(sub, n_boot=n_boot, rng=np.random.default_rng(seed))
                    g["delta"], g["delta_ci"] = fit.delta, fit.delta_ci
                g["left"][h] = permanent_fraction(sub, n_boot=n_boot, rng=np.random.default_rng(seed + h))
    return out


def impact_decay(ticker: str, sizes=(800, 3200), participation: float = 0.1, after=(300, 900, 1800), n: int = 64,
                 seed: int = 1, world: str = "learned") -> dict:
    """Buy metaorders as in :func:`impact_curve`, then ``max(after)`` s with no orders: the mean CRN
    mid difference (ticks) at the last child (the peak) and ``after`` seconds later, and the share
    of the peak left. The parent order is ``2 Q`` so that the episode does not end with the
    metaorder (only ``Q`` is sent; the horizon is beyond the measurement, so nothing is forced)."""
    from lobworld.envs.tick import TickExecutionCore

    m, _ = _paths(ticker)
    rate = _traded_rate(ticker)
    out = {}
    for Q in sizes:
        T = max(2, int(round(Q / (participation * rate))))
        horizon = T + max(after) + 5
        runs = []
        for with_meta in (True, False):
            core = TickExecutionCore(n_envs=n, data=str(m), world=world, side="buy", quantity=int(2 * Q),
                                     horizon=horizon, latency="colocated")
            core.seed_rows(range(n), [seed * 100_000 + 10 * Q + i for i in range(n)])
            core.reset()
            b = core.book
            marks = {}
            c = Q / T
            for k in range(T + max(after)):
                a = np.zeros((n, 3), np.float32)
                if with_meta and k < T:
                    left = 2 * Q - b.acct[:, 2]
                    want = np.minimum(c * (k + 1) - b.acct[:, 2], Q - b.acct[:, 2]).clip(0)
                    a[:, 0] = np.where(left > 0, want / np.maximum(left, 1), 0.0)
                core.step(a, autoreset=False)
                if k + 1 == T or (k + 1 - T) in after:
                    marks[k + 1 - T] = (0.5 * (b.px[:, 0, 0] + b.px[:, 1, 0]),
                                        (b.nl[:, 0] > 0) & (b.nl[:, 1] > 0))
            runs.append((marks, b.acct[:, 2].copy()))
        (m1, q1), (m0, _) = runs
        res, se, drop = {}, {}, {}
        for lag in (0, *after):
            good = m1[lag][1] & m0[lag][1]
            d = (m1[lag][0] - m0[lag][0])[good]
            res[lag] = float(d.mean())
            se[lag] = float(d.std(ddof=1) / np.sqrt(len(d)))
            drop[lag] = int((~good).sum())
        out[Q] = {"impact": res, "se": se, "left": {lag: res[lag] / res[0] for lag in after},
                  "bought": float(q1.mean()), "dropped": drop}
    return out


def _interval(v) -> str:
    return f"[{v[0]:+.3f}, {v[1]:+.3f}]" if v else ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tickers", default="GOOG,AMZN")
    p.add_argument("--parts", default="bench,impact,decay,tape,direction")
    p.add_argument("--n-boot", type=int, default=100)
    p.add_argument("--agent-tokens", choices=("on", "off"), default="on",
                   help="impact / decay: off = the learned world with agent_tokens=False (ablation)")
    p.add_argument("--weights", default="", help="TICKER=PATH.npz[,TICKER=PATH.npz]: candidate checkpoints")
    a = p.parse_args(argv)
    for item in filter(None, a.weights.split(",")):
        tk, sep, path = item.partition("=")
        if not sep or not pathlib.Path(path).is_file():
            p.error(f"--weights: expected TICKER=PATH to an existing .npz, got {item!r}")
        WEIGHTS[tk] = path
    parts = a.parts.split(",")
    world = "learned"
    if a.agent_tokens == "off":
        _register_no_tokens()
        world = NO_TOKENS
    for tk in a.tickers.split(","):
        if "bench" in parts:
            r = lob_bench(tk, n_boot=a.n_boot)
            print(f"## {tk} LOB-Bench ({r['windows']} windows of 600 s, 14:00-16:00; mean messages per window: "
                  f"real {r['real_msgs']:.0f}, learned {r['learned_msgs']:.0f}; {r['wall_s']:.0f} s)")
            print("| compared | mean L1 | median L1 | IQM L1 | mean W1 | median W1 | IQM W1 |")
            print("|---|---|---|---|---|---|---|")
            for key in ("floor", "cst", "learned"):
                sc = r[key]
                s, ci = sc.summary, sc.summary_ci
                cells = []
                for met in ("l1", "w1"):
                    for stat in ("mean", "median", "iqm"):
                        lo, hi = ci.get(met, {}).get(stat, (np.nan, np.nan))
                        cells.append(f"{s[met][stat]:.3f} [{lo:.2f}, {hi:.2f}]")
                print(f"| {sc.label} | " + " | ".join(cells) + " |")
            print("per statistic L1 (floor / CST / learned):")
            for name in r["learned"].l1:
                print(f"  {name}: {r['floor'].l1.get(name, np.nan):.3f} / {r['cst'].l1.get(name, np.nan):.3f} / "
                      f"{r['learned'].l1[name]:.3f}")
            print("counters:", dict(zip(("submit", "cancel", "delete", "exec", "hidden", "redraw", "forced",
                                         "cross_clamp", "moved", "size_capped"), r["counters"][:10].tolist())))
        if "impact" in parts:
            r = impact_curve(tk, world=world)
            print(f"## {tk} impact (participation {r['participation']:.0%} of {r['rate']:.1f} shares/s, "
                  f"{r['n']} envs per size and side, CRN)")
            for q, mi, se in zip(r["sizes"], r["mean_ticks"], r["se_ticks"]):
                print(f"  Q={q:.0f}: {mi:.2f} +- {se:.2f} ticks")
            print(f"  exponent {r['exponent']:.3f} CI [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
            print("  by side:", {f"{k[0]} {k[1]}": round(v, 2) for k, v in r["by_side"].items()})
            print("  envs left out (a side empty):", {f"{k[0]} {k[1]}": v for k, v in r["dropped"].items()})
        if "decay" in parts:
            r = impact_decay(tk, world=world)
            for q, v in r.items():
                print(f"## {tk} decay Q={q} (bought {v['bought']:.0f}): impact ticks by seconds after the end "
                      f"{ {k: round(x, 2) for k, x in v['impact'].items()} } (s.e. "
                      f"{ {k: round(x, 2) for k, x in v['se'].items()} }; envs with an empty side left out {v['dropped']}), "
                      f"share of the peak left "
                      f"{ {k: round(x, 3) for k, x in v['left'].items()} }")
        if "tape" in parts:
            r = tape_impact(tk)
            print(f"## {tk} real-tape metaorder proxies (runs of same-sign market orders, whole day)")
            print("| runs | n | median Q (shares) | median duration (s) | exponent [95% CI] | "
                  "share of the peak left at 5 / 15 / 30 min [95% CI] |")
            print("|---|---|---|---|---|---|")
            for group, g in r["groups"].items():
                left = " / ".join(f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, (lo, hi) in g["left"].values())
                print(f"| {group} | {g['n_runs']} | {g['median_Q']:.0f} | {g['median_s']:.1f} | "
                      f"{g['delta']:.2f} [{g['delta_ci'][0]:.2f}, {g['delta_ci'][1]:.2f}] | {left} |")
        if "direction" in parts:
            r = direction_forecast(tk)
            print(f"## {tk} direction ({r['n_starts']} held-out starts x {r['paths']} paths; paths short of "
                  f"the messages: {r['short_paths']}; start mid equal to the tape's: {r['start_mid_equal']:.3f})")
            for k in (10, 50):
                res = r[k]
                print(f"k={k}: real down/flat/up {np.round(res['real_dist'], 3).tolist()}, training block "
                      f"{np.round(res['train_dist'], 3).tolist()}, learned paths {np.round(res['learned_dist'], 3).tolist()}")
                print("| forecaster | accuracy [95%] | macro-F1 [95%] | F1 down / flat / up | log score (nats) |"
                      " accuracy - logit [95%] | macro-F1 - logit [95%] |")
                print("|---|---|---|---|---|---|---|")
                for name in ("learned", "logit", "persistence", "train_majority"):
                    sc, ci = res[name], res["ci"][name]
                    d_acc = ci.get("accuracy_minus_logit")
                    d_mf = ci.get("macro_f1_minus_logit")
                    print(f"| {name} | {sc['accuracy']:.3f} [{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}] | "
                          f"{sc['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}] | "
                          f"{sc['f1_down']:.3f} / {sc['f1_flat']:.3f} / {sc['f1_up']:.3f} | "
                          f"{sc.get('log_score', float('nan')):.3f} | {_interval(d_acc)} | {_interval(d_mf)} |")
                al = res["all_rows"]
                print(f"every held-out row (n={al['logit']['n']}): " + ", ".join(
                    f"{nm} accuracy {v['accuracy']:.3f} macro-F1 {v['macro_f1']:.3f}"
                    + (f" log score {v['log_score']:.3f}" if "log_score" in v else "") for nm, v in al.items()))


if __name__ == "__main__":
    main()

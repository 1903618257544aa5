"""Why the learned tick world's generated flow is slow (issues #15, #16): a re-runnable diagnosis.

On the held-out afternoon (14:00-16:00) of 2012-06-21, per asset, with a tick-GRU checkpoint:

1. **teacher-forced rate**: the torch model fed the real events and books; per event the time
   head's mixture of log-normals over ``y = log dt`` (log seconds). Reported: the real message rate
   (events / s), the rate implied by one draw of ``dt`` per event from the predicted mixture
   (``n / sum dt``), the mean of the predicted ``E[dt]``, and quantiles of predicted vs real
   ``log dt``; the same with the time-of-day column the simulator feeds (the clock *before* the
   event) in place of the training column.
2. **feature parity**: the simulator's book columns (``tick_sim._context`` on the real book and
   clock before each event) against :func:`~lobworld.world_models.tick_model.tick_features`,
   max absolute difference per column.
3. **sampler**: ``tick_sim.draw_event_marks`` on fixed head vectors against the mixture's CDF
   (Kolmogorov-Smirnov distance of ``y``).
4. **free-running rate**: :class:`~lobworld.world_models.tick_sim.TickSimulator` from the real
   book at several held-out starts, the GRU state and previous event warmed on the real stream
   (teacher-forced up to the start); rate over the first ``n_steps`` generated messages, and the
   generated book (spread, top-5 sizes) against the real book over the same number of events.

    python benchmarks/tick_flow_rate.py [--tickers GOOG,AMZN] [--weights PATH_GOOG,PATH_AMZN]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np
from numba import njit

import lobworld  # noqa: F401
from lobworld.world_models.data.events import TokenConfig, split_masks, tokenize
from lobworld.world_models.data.lobster import load_lobster
from lobworld.world_models.data.session import SESSION_LENGTH_S, SESSION_OPEN_S
from lobworld.world_models.tick_model import event_nats, load_tick_model, shipped_tick_weights, tick_features
from lobworld.world_models.tick_sim import (
    N_PREV, TOP_K, X_TOD, TickSimulator, _context, draw_event_marks, pack_tick_weights, tick_forward,
)

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
FILES = {"GOOG": "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz",
         "AMZN": "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"}


def time_head(model, x, chunk: int = 4096):
    """``(logw, mu, log_s, h_before)`` of the time head per token of the stream ``x (n, F)`` run as one
    sequence (``h_before[n]`` the GRU state before token ``n``)."""
    import torch

    K = model.config.n_mix
    outs, hs = [], []
    h = None
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            xb = torch.as_tensor(x[s:s + chunk][None])
            z = model.enc((xb - model.feat_mean) / model.feat_std)
            out, _ = model.gru(z, h)
            prev = torch.zeros_like(out[:, :1]) if h is None else h.transpose(0, 1)
            hs.append(torch.cat([prev, out[:, :-1]], dim=1)[0].numpy())
            h = out[:, -1:].transpose(0, 1).contiguous()
            tp = model.time_head(torch.cat([out, z], dim=-1))[0]
            outs.append(tp.numpy())
    tp = np.concatenate(outs).astype(np.float64)
    logw = tp[:, :K] - np.logaddexp.reduce(tp[:, :K], axis=1, keepdims=True)
    return logw, tp[:, K:2 * K], np.clip(tp[:, 2 * K:], -6.0, 4.0), np.concatenate(hs).astype(np.float64)


def sample_y(logw, mu, log_s, rng):
    """One draw of ``y`` per row from the mixture."""
    w = np.exp(logw)
    u = rng.random(len(w))[:, None]
    k = (np.cumsum(w, axis=1) < u).sum(axis=1).clip(0, w.shape[1] - 1)
    r = np.arange(len(w))
    return mu[r, k] + np.exp(log_s[r, k]) * rng.standard_normal(len(w))


def rate_report(logw, mu, log_s, y_real, dt_real_s, rng) -> dict:
    y = sample_y(logw, mu, log_s, rng)
    dt = np.minimum(np.exp(y), 1e4)
    edt = np.exp(np.logaddexp.reduce(logw + mu + 0.5 * np.exp(2 * log_s), axis=1))
    q = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
    return {"rate_real": float(len(dt_real_s) / dt_real_s.sum()), "rate_sampled": float(len(dt) / dt.sum()),
            "mean_dt_real_s": float(dt_real_s.mean()), "mean_dt_sampled_s": float(dt.mean()),
            "median_of_E_dt_s": float(np.median(edt)), "share_E_dt_over_60s": float((edt > 60).mean()),
            "quantiles": list(q), "logdt_real_q": [float(v) for v in np.quantile(y_real, q)],
            "logdt_sampled_q": [float(v) for v in np.quantile(y, q)]}


@njit(cache=True)
def _sim_contexts(bpx, bsz, nlv, t_ns, lot, out):
    """``tick_sim._context`` on given books ``bpx, bsz (n, 2, D)``, ``nlv (n, 2)`` and clocks ``t_ns``."""
    for i in range(bpx.shape[0]):
        _context(i, t_ns[i], bpx, bsz, nlv, lot, out[i])


def real_books(events, k: int, rows):
    """The real book *before* token rows ``rows`` (event-table row - 1) as simulator arrays, depth ``k``,
    prices in ticks (levels the file lacks are empty)."""
    tick = events.attrs["tick_size"]
    n = len(rows)
    px = np.zeros((n, 2, k), np.int64)
    sz = np.zeros((n, 2, k), np.int64)
    nl = np.zeros((n, 2), np.int64)
    for s, side in enumerate(("bid", "ask")):
        for j in range(k):
            if f"{side}_px_{j + 1}" not in events.columns:  # a file with fewer levels: the rest empty
                break
            p = events[f"{side}_px_{j + 1}"].to_numpy(np.float64)[rows]
            q = events[f"{side}_sz_{j + 1}"].to_numpy(np.float64)[rows]
            ok = np.isfinite(p) & (q > 0)
            px[:, s, j] = np.where(ok, np.rint(np.where(ok, p, 0) / tick), 0)
            sz[:, s, j] = np.where(ok, q, 0)
            nl[:, s] += ok
    return px, sz, nl


def parity(events, tok, x, w, test) -> dict:
    """Max |sim - train| per book column on the test tokens (the book before token n is table row n - 1)."""
    idx = np.flatnonzero(test)
    rows = tok.row[idx] - 1
    px, sz, nl = real_books(events, TOP_K, rows)
    t_prev = tok.time_ns()[idx] - tok.dt_ns[idx]
    out = np.zeros((len(idx), x.shape[1]))
    _sim_contexts(px, sz, nl, t_prev, w.lot, out)
    d = np.abs(out[:, N_PREV:] - x[idx, N_PREV:])
    names = ["log1p_spread"] + [f"bid_sz_{j + 1}" for j in range(TOP_K)] + [f"ask_sz_{j + 1}" for j in range(TOP_K)] \
        + ["imbalance", "tod"]
    return {n: float(v) for n, v in zip(names, d.max(axis=0))} | {
        "tod_max_diff_s": float(d[:, -1].max() * SESSION_LENGTH_S)}


def sampler_check(w, x, n_rows: int = 8, n: int = 20000) -> list[float]:
    """KS distance between ``draw_event_marks``'s ``y`` and the mixture CDF on ``n_rows`` real inputs."""
    from math import erf

    from lobworld.envs.rng import seed_states

    H, E = w.hidden, w.we.shape[0]
    rows = np.linspace(0, len(x) - 1, n_rows).astype(np.int64)
    h = np.zeros((n_rows, H))
    ho, zo, heads = np.zeros((n_rows, H)), np.zeros((n_rows, E)), np.zeros((n_rows, w.wh.shape[0]))
    tick_forward(x[rows].astype(np.float64), h, *w.kernel_args(), ho, zo, heads)
    K = w.n_mix
    out = np.zeros((n, 5))
    ks = []
    for r in range(n_rows):
        st = seed_states([r], 1)[0, 0].copy()
        draw_event_marks(heads[r], w.dims(), st, n, out)
        tp = heads[r, :3 * K]
        lw = tp[:K] - np.logaddexp.reduce(tp[:K])
        mu, sd = tp[K:2 * K], np.exp(np.clip(tp[2 * K:], -6, 4))
        ys = np.sort(out[:, 0])
        cdf = np.array([sum(math.exp(lw[k]) * 0.5 * (1 + erf((v - mu[k]) / (sd[k] * math.sqrt(2))))
                            for k in range(K)) for v in ys[::50]])
        emp = (np.arange(n)[::50] + 0.5) / n
        ks.append(float(np.abs(cdf - emp).max()))
    return ks


def free_running(events, tok, x, w, hb, test, n_starts: int, n_seeds: int, n_steps: int, depth: int = 10) -> dict:
    """Generated rate and book drift from real held-out starts (warm GRU state and previous event)."""
    idx = np.flatnonzero(test)
    starts = idx[np.linspace(0, len(idx) - n_steps - 1, n_starts).astype(np.int64)]
    n = n_starts * n_seeds
    sim = TickSimulator(w, n_envs=n, depth=depth)
    st = np.repeat(starts, n_seeds)
    px, sz, nl = real_books(events, depth, tok.row[st] - 1)
    bpx = np.where(sz[:, 0] > 0, px[:, 0], 0)
    apx = np.where(sz[:, 1] > 0, px[:, 1], 0)
    sim.reset(np.arange(n), bpx, sz[:, 0], apx, sz[:, 1], tok.time_ns()[st] - tok.dt_ns[st])
    sim.h[:] = hb[st]
    sim.x[:, :N_PREV] = x[st, :N_PREV]
    msgs = sim.run(n_steps)
    t0 = (tok.time_ns()[st] - tok.dt_ns[st]).astype(np.float64)
    el = (msgs[:, -1, 0] - t0) * 1e-9
    real_el = np.array([(tok.time_ns()[s + n_steps - 1] - tok.time_ns()[s] + tok.dt_ns[s]) * 1e-9 for s in starts])
    gen_dt = np.diff(np.concatenate([t0[:, None], msgs[:, :, 0].astype(np.float64)], axis=1), axis=1) * 1e-9
    cnt = sim.counts.sum(axis=0)
    # generated vs real book after n_steps: spread, touch sizes
    g_spread = np.where((sim.nl > 0).all(axis=1), sim.px[:, 1, 0] - sim.px[:, 0, 0], -1)
    r_px, r_sz, r_nl = real_books(events, depth, tok.row[st + n_steps] - 1)
    r_spread = r_px[:, 1, 0] - r_px[:, 0, 0]
    q = (0.1, 0.5, 0.9)
    by_block = {}
    for a, b in ((0, 100), (100, 500), (500, n_steps)):
        if b <= n_steps:
            seg = gen_dt[:, a:b]
            by_block[f"{a}-{b}"] = float(seg.size / seg.sum())
    return {"n_envs": n, "n_steps": n_steps, "rate_generated": float(n * n_steps / el.sum()),
            "rate_real_same_windows": float(len(starts) * n_steps / real_el.sum()),
            "rate_generated_by_event_block": by_block,
            "median_generated_dt_s": float(np.median(gen_dt)), "max_generated_dt_s": float(gen_dt.max()),
            "logdt_generated_q": [float(v) for v in np.quantile(np.log(np.maximum(gen_dt, 1e-9)), q)],
            "counts_per_message": {nm: float(c / (n * n_steps)) for nm, c in
                                   zip(("redraw", "forced", "cross_clamp", "beyond", "pushed_out", "moved",
                                        "size_capped"), cnt)},
            "spread_after_ticks_gen_q": [float(v) for v in np.quantile(g_spread, q)],
            "spread_after_ticks_real_q": [float(v) for v in np.quantile(r_spread, q)],
            "touch_size_gen_median": [float(np.median(sim.sz[:, s, 0])) for s in range(2)],
            "touch_size_real_median": [float(np.median(r_sz[:, s, 0])) for s in range(2)],
            "levels_gen_mean": [float(sim.nl[:, s].mean()) for s in range(2)]}


def run(ticker: str, weights=None, n_starts: int = 8, n_seeds: int = 4, n_steps: int = 2000, seed: int = 0) -> dict:
    path = pathlib.Path(weights) if weights else shipped_tick_weights(ticker)
    model, meta = load_tick_model(path)
    model.eval()
    tc = TokenConfig(**meta["token_config"])
    events = load_lobster(DATA / FILES[ticker])
    tok = tokenize(events, tc)
    _, _, test = split_masks(tok)
    lm = meta["config"]["level_max"]
    x, tg = tick_features(tok, lm)
    rng = np.random.default_rng(seed)
    res = {"ticker": ticker, "weights": str(path), "n_test": int(test.sum())}
    logw, mu, ls, hb = time_head(model, x)
    dt_s = tok.dt_ns[test] * 1e-9
    res["teacher_forced"] = rate_report(logw[test], mu[test], ls[test], tok.log_dt[test], dt_s, rng)
    res["nats_test_time"] = float(event_nats(model, x, tg)[test, 0].mean())
    # the simulator's clock column: the time before the event (t_{n-1}), not the event's own time
    xs = x.copy()
    xs[:, X_TOD] = ((tok.time_ns() - tok.dt_ns) * 1e-9 - SESSION_OPEN_S) / SESSION_LENGTH_S
    lw2, mu2, ls2, _ = time_head(model, xs)
    res["teacher_forced_sim_clock"] = rate_report(lw2[test], mu2[test], ls2[test], tok.log_dt[test], dt_s, rng)
    res["nats_test_time_sim_clock"] = float(event_nats(model, xs, tg)[test, 0].mean())
    w = pack_tick_weights(path)
    res["parity_max_abs_diff"] = parity(events, tok, x, w, test)
    res["sampler_ks"] = sampler_check(w, x[np.flatnonzero(test)])
    res["free_running"] = free_running(events, tok, xs, w, hb, test, n_starts, n_seeds, n_steps)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", default="GOOG,AMZN")
    ap.add_argument("--weights", default="", help="comma-separated checkpoints, one per ticker (default: shipped)")
    ap.add_argument("--n-steps", type=int, default=2000)
    ap.add_argument("--out", default="")
    ns = ap.parse_args(argv)
    tickers = ns.tickers.split(",")
    ws = ns.weights.split(",") if ns.weights else [None] * len(tickers)
    res = [run(t, w, n_steps=ns.n_steps) for t, w in zip(tickers, ws)]
    txt = json.dumps(res, indent=1)
    print(txt)
    if ns.out:
        pathlib.Path(ns.out).write_text(txt + "\n")


if __name__ == "__main__":
    main()

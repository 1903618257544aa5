"""Simulated paths from real starting states (learned and parametric markets) and the simulated impact exponent."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from lobworld.envs.dynamics import IMBALANCE, MID, SPREAD, VOLUME, ParametricDynamics, ParametricParams
from lobworld.envs.rng import seed_states
from lobworld.world_models.dynamics_model import F_LCNT, F_LDEP, F_OFI, F_SVOL, F_TIMB, F_TRADED, N_FEATURES
from lobworld.world_models.fidelity.days import FidelityDay, teacher_forced_hidden
from lobworld.world_models.fidelity.samples import SESSION_SECONDS, FidelityError, PathSample
from lobworld.world_models.fidelity.tape import _TAPE_STREAM, ParametricTape, sample_tape


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------
@njit  # not disk-cached: a cached kernel taking jitted functions as arguments can go stale (ReferenceError)
def _sim_kernel(rows, args, rng, step_fn, q, ox, out_pub, out_feat):
    """Step every row ``n_steps`` times (q[i, t] agent shares); record public columns and (ox >= 0) features."""
    n, T = q.shape
    for i in range(n):
        st = rng[i, 0]
        for t in range(T):
            step_fn(i, rows[i], args, st, q[i, t], 1.0)
            out_pub[i, t, 0] = rows[i, MID]
            out_pub[i, t, 1] = rows[i, SPREAD]
            out_pub[i, t, 2] = rows[i, VOLUME]
            out_pub[i, t, 3] = rows[i, IMBALANCE]
            if ox >= 0:
                for f in range(out_feat.shape[2]):
                    out_feat[i, t, f] = rows[i, ox + f]


def _learned_rows(dyn, n: int, dt: float, seeds, hidden, x0, mid0, spread0):
    from lobworld.world_models.learned import M_OH, M_OX

    args = dyn.args(n, dt)
    meta = args[-1]
    rng = seed_states(list(seeds), 1)
    rows = np.zeros((n, dyn.n_state))
    oh, ox = int(meta[M_OH]), int(meta[M_OX])
    for i in range(n):
        dyn.reset_fn(i, rows[i], args, rng[i, 0])
        rows[i, oh:oh + hidden.shape[1]] = hidden[i]
        rows[i, ox:ox + N_FEATURES] = x0[i]
        rows[i, MID] = mid0[i]
        rows[i, SPREAD] = spread0[i]
    return args, rng, rows, ox


def _check_model_dt(dyn, dt):
    if dyn.n_substeps(dt) != 1:
        raise FidelityError(f"the learned model's bar is {dyn.model_dt}s but the data bars are {dt}s")


def simulate_learned(ck, days: list[FidelityDay], draws: int, seed: int = 0) -> PathSample:
    """``draws`` learned paths per held-out window, from the teacher-forced real state (see module docstring)."""
    from lobworld.world_models.learned import LearnedDynamics

    parts = []
    for d_i, day in enumerate(days):
        dyn = LearnedDynamics(ck, asset=day.asset, burn_in=0)
        dt = float(ck.dt)
        _check_model_dt(dyn, dt)
        if day.hidden is None:
            day.hidden = teacher_forced_hidden(ck, day)
        nw = len(day.starts)
        rep = np.repeat(np.arange(nw), draws)
        n = rep.size
        mid = day.bars["mid"].to_numpy(float)
        spr = day.bars["spread"].to_numpy(float)
        seeds = [seed * 1_000_003 + d_i * 10_007 + k for k in range(n)]
        args, rng, rows, ox = _learned_rows(dyn, n, dt, seeds, day.hidden[rep], day.x[day.starts[rep]],
                                            mid[day.starts[rep]], spr[day.starts[rep]])
        W = day.window
        pub = np.zeros((n, W, 4))
        feat = np.zeros((n, W, N_FEATURES))
        _sim_kernel(rows, args, rng, dyn.step_fn, np.zeros((n, W)), ox, pub, feat)
        parts.append(_learned_sample(day, rep, mid[day.starts[rep]], pub, feat))
    return PathSample.concat(parts)


def _learned_sample(day: FidelityDay, rep, mid0, pub, feat) -> PathSample:
    st = day.stats
    mids = np.concatenate([mid0[:, None], pub[:, :, 0]], 1)
    traded = feat[:, :, F_TRADED] > 0.5
    vol = pub[:, :, 2] / st.mean_volume
    svol = feat[:, :, F_SVOL]
    with np.errstate(invalid="ignore", divide="ignore"):
        timb = np.where(traded & (vol > 0), svol / np.where(vol > 0, vol, 1.0), np.nan)
    cnt = np.where(traded, np.exp(feat[:, :, F_LCNT]), 0.0)
    tod = _window_tod(day)[rep]
    return PathSample(ret=np.diff(mids, axis=1) / st.sigma_bar, spread=pub[:, :, 1] / st.median_spread, volume=vol,
                      svol=svol, trade_imb=timb, count=cnt, ofi=feat[:, :, F_OFI], book_imb=feat[:, :, F_TIMB],
                      depth=np.exp(feat[:, :, F_LDEP]), tod=tod, dt=_dt(day),
                      mean_count=np.full(len(rep), st.mean_count), label="learned")


def _dt(day: FidelityDay) -> float:
    return float(np.median(day.bars["bar_seconds"].to_numpy(float)))


def _window_tod(day: FidelityDay) -> np.ndarray:
    idx = day.bars.index
    tod_all = (idx.hour * 3600 + idx.minute * 60 + idx.second).to_numpy(float)
    return tod_all[day.starts[:, None] + 1 + np.arange(day.window)[None, :]]


def simulate_parametric(days: list[FidelityDay], draws: int, seed: int = 0,
                        params: list[ParametricParams] | None = None,
                        tapes: list[ParametricTape] | None = None) -> PathSample:
    """``draws`` parametric paths per held-out window from the real mid and spread (training-block calibration).

    Mid, spread and volume come from :class:`~lobworld.envs.dynamics.ParametricDynamics`
    (``params``, default each day's ``params``); its signed volume is
    ``IMBALANCE x VOLUME``. Trade count, OFI, top-of-book imbalance and depth
    are i.i.d. draws of the day's :class:`ParametricTape` (``tapes``, default
    each day's ``tape``; :func:`sample_tape`), normalised like :func:`real_paths`
    by the checkpoint's asset constants; ``mean_count`` is the asset's. A bar
    is traded when its Poisson count is > 0: ``trade_imb`` (the ``IMBALANCE``
    column) is NaN in the other bars, as for real data.

    Randomness: per path, ParametricDynamics streams from the seeds
    ``seed * 1_000_003 + d_i * 10_007 + k + 555``; per day ``d_i``, the tape
    draws from ``Generator(PCG64(SeedSequence([seed, d_i, _TAPE_STREAM])))``, a
    separate stream (the non-zero last entropy word keeps it apart from any
    integer seed), so the same ``seed`` gives identical paths and changing the
    tape leaves mid, spread and volume unchanged.
    """
    parts = []
    for d_i, day in enumerate(days):
        p = day.params if params is None else params[d_i]
        tape = day.tape if tapes is None else tapes[d_i]
        dt = _dt(day)
        if abs(tape.dt - dt) > 1e-9 * dt:
            raise FidelityError(f"{day.source or day.asset}: the parametric tape was fitted on {tape.dt:g} s bars "
                                f"but the day's bars are {dt:g} s")
        nw = len(day.starts)
        rep = np.repeat(np.arange(nw), draws)
        n = rep.size
        dyn = ParametricDynamics(p)
        args = dyn.args(n, dt)
        rng = seed_states([seed * 1_000_003 + d_i * 10_007 + k + 555 for k in range(n)], 1)
        rows = np.zeros((n, dyn.n_state))
        mid = day.bars["mid"].to_numpy(float)[day.starts[rep]]
        spr = day.bars["spread"].to_numpy(float)[day.starts[rep]]
        for i in range(n):
            dyn.reset_fn(i, rows[i], args, rng[i, 0])
            rows[i, MID] = mid[i]
            rows[i, SPREAD] = spr[i]
        W = day.window
        pub = np.zeros((n, W, 4))
        _sim_kernel(rows, args, rng, dyn.step_fn, np.zeros((n, W)), -1, pub, np.zeros((1, 1, 1)))
        tape_rng = np.random.default_rng(np.random.SeedSequence([seed, d_i, _TAPE_STREAM]))
        n_tr, ofi, book_imb, depth = sample_tape(tape, tape_rng, (n, W))
        st = day.stats
        mids = np.concatenate([mid[:, None], pub[:, :, 0]], 1)
        vol = pub[:, :, 2] / st.mean_volume
        traded = n_tr > 0
        parts.append(PathSample(ret=np.diff(mids, axis=1) / st.sigma_bar, spread=pub[:, :, 1] / st.median_spread,
                                volume=vol, svol=pub[:, :, 3] * vol, trade_imb=np.where(traded, pub[:, :, 3], np.nan),
                                count=n_tr / st.mean_count, ofi=ofi / st.ofi_scale, book_imb=book_imb,
                                depth=depth / st.mean_depth, tod=_window_tod(day)[rep], dt=dt,
                                mean_count=np.full(n, st.mean_count), label="parametric"))
    return PathSample.concat(parts)


# ---------------------------------------------------------------------------
# impact exponent
# ---------------------------------------------------------------------------
def simulated_impact_exponent(ck, days: list[FidelityDay], *, sizes=None, exec_seconds: float = 600.0,
                              draws: int = 4, seed: int = 0, n_boot: int = 300) -> dict[str, Any]:
    """Square-root-law fit of the peak mid impact of simulated buy metaorders (learned dynamics).

    Every held-out window start x ``draws`` x size runs a metaorder of ``Q``
    shares split evenly over ``exec_seconds / dt`` bars, paired with a no-agent
    run on the same random numbers; ``I = mid_with(T) - mid_without(T)``.
    ``sizes`` are ``Q / V_day`` (default 12 log-spaced values from 1e-4 to 3e-2).
    Returns the fit (:class:`~lobworld.world_models.impact.SqrtLawFit` as a dict)
    plus the mean impact per size.
    """
    from lobworld.world_models.impact import fit_sqrt_law
    from lobworld.world_models.learned import LearnedDynamics

    sizes = np.geomspace(1e-4, 3e-2, 12) if sizes is None else np.asarray(sizes, float)
    dt = float(ck.dt)
    n_exec = int(round(exec_seconds / dt))
    if n_exec < 1:
        raise FidelityError(f"exec_seconds {exec_seconds} is shorter than one bar of {dt}s")
    bars_day = SESSION_SECONDS / dt
    xs, ys = [], []
    mean_by_size = np.zeros(len(sizes))
    cnt_by_size = np.zeros(len(sizes))
    for d_i, day in enumerate(days):
        dyn = LearnedDynamics(ck, asset=day.asset, burn_in=0)
        _check_model_dt(dyn, dt)
        if day.hidden is None:
            day.hidden = teacher_forced_hidden(ck, day)
        st = day.stats
        V = st.mean_volume * bars_day
        sig = st.sigma_bar * math.sqrt(bars_day)
        nw = len(day.starts)
        combos = [(w, k, j) for w in range(nw) for k in range(draws) for j in range(len(sizes))]
        n = len(combos)
        w_idx = np.array([c[0] for c in combos])
        seeds = [seed * 7_919 + d_i * 100_003 + w * 101 + k for (w, k, _j) in combos]
        mid = day.bars["mid"].to_numpy(float)[day.starts[w_idx]]
        spr = day.bars["spread"].to_numpy(float)[day.starts[w_idx]]
        q = np.zeros((n, n_exec))
        for r, (_w, _k, j) in enumerate(combos):
            q[r, :] = sizes[j] * V / n_exec
        res = []
        for qq in (q, np.zeros_like(q)):
            args, rng, rows, ox = _learned_rows(dyn, n, dt, seeds, day.hidden[w_idx], day.x[day.starts[w_idx]],
                                                mid, spr)
            pub = np.zeros((n, n_exec, 4))
            _sim_kernel(rows, args, rng, dyn.step_fn, qq, -1, pub, np.zeros((1, 1, 1)))
            res.append(pub[:, -1, 0])
        imp = (res[0] - res[1]) / sig
        for r, (_w, _k, j) in enumerate(combos):
            xs.append(sizes[j])
            ys.append(imp[r])
            mean_by_size[j] += imp[r]
            cnt_by_size[j] += 1
    xs = np.array(xs)
    ys = np.array(ys)
    out: dict[str, Any] = {"sizes_q_over_v": sizes.tolist(), "exec_seconds": exec_seconds, "n_runs": int(xs.size),
                           "mean_impact_over_sigma": (mean_by_size / np.maximum(cnt_by_size, 1)).tolist()}
    try:
        fit = fit_sqrt_law(xs, ys, n_bins=len(sizes), n_boot=n_boot, rng=np.random.default_rng(seed))
        out.update(delta=fit.delta, delta_ci=list(fit.delta_ci), Y=fit.Y, Y_ci=list(fit.Y_ci), level=fit.level,
                   error=None)
    except ValueError as exc:
        out.update(delta=None, delta_ci=None, Y=None, Y_ci=None, level=None, error=str(exc))
    return out



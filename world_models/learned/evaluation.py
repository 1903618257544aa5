"""Helpers for tests, evaluation and plots: the Numba forward pass of one step and path rollouts."""

from __future__ import annotations

import numpy as np
from numba import njit

from lobworld.envs.dynamics import MID, VOLUME
from lobworld.world_models.checkpoint import Checkpoint
from lobworld.world_models.dynamics_model import N_FEATURES, asset_scale
from lobworld.world_models.learned.host import LearnedDynamics, export_args
from lobworld.world_models.learned.kernel import (
    _encode,
    _flow_head,
    _gru,
    _head,
    _head_scale,
    _learned_reset,
    _learned_step,
)
from lobworld.world_models.learned.layout import M_OFO, M_OGH, M_OGI, M_OH, M_OHN, M_OHO, M_OX, M_OZ
from lobworld.world_models.learned.legacy import _learned_step_gru, _rollout_kernel_gru


# ---------------------------------------------------------------------------
# helpers for tests, evaluation and plots
# ---------------------------------------------------------------------------
def numba_forward(ck: Checkpoint, x: np.ndarray, a: np.ndarray, h: np.ndarray, asset: str | None = None):
    """Deterministic part of one model step in the Numba kernels (for parity tests).

    ``x`` (the model's ``n_inputs`` features or all ``N_FEATURES``), ``a`` (2,), ``h`` (H,) ->
    (flow outputs, head outputs, next hidden), float64. ``asset`` (default: the first stored)
    gives the asset-scale input of a categorical-head model.
    """
    weights, meta, n_state = export_args(ck)
    We, be, Wf, bf, Wih, Whh, bih, bhh, Wo, bo = weights
    c = ck.model_config
    x = np.asarray(x, dtype=np.float64)
    if x.shape not in ((c.n_inputs,), (N_FEATURES,)):
        raise ValueError(f"numba_forward: x must have {c.n_inputs} or {N_FEATURES} features, got shape {x.shape}")
    row = np.zeros(n_state)
    oh, ox, oz = int(meta[M_OH]), int(meta[M_OX]), int(meta[M_OZ])
    row[oh:oh + c.hidden] = h
    row[ox:ox + x.shape[0]] = x
    _encode(We, be, row, ox, oz)
    _flow_head(Wf, bf, row, oh, oz, int(meta[M_OFO]), c.hidden, c.latent)
    _gru(Wih, Whh, bih, bhh, row, oz, float(a[0]), float(a[1]), oh, int(meta[M_OGI]), int(meta[M_OGH]),
         int(meta[M_OHN]), c.hidden, c.latent)
    n_head = c.n_head_out
    _head(Wo, bo, row, int(meta[M_OHN]), int(meta[M_OHO]), n_head, c.hidden)
    if c.categorical:
        cs = asset_scale(ck.assets[asset if asset is not None else next(iter(ck.assets))])
        _head_scale(Wo, row, int(meta[M_OHO]), n_head, c.hidden, cs)
    fo = int(meta[M_OFO])
    ho = int(meta[M_OHO])
    hn = int(meta[M_OHN])
    return row[fo:fo + c.n_flow_out].copy(), row[ho:ho + n_head].copy(), row[hn:hn + c.hidden].copy()


@njit(cache=True)
def _rollout_kernel(rows, args, rng, stream, q, n_steps, mids, vols):
    for i in range(rows.shape[0]):
        st = rng[i, stream]
        mids[i, 0] = rows[i, MID]
        for t in range(n_steps):
            _learned_step(i, rows[i], args, st, q[i, t], 1.0)
            mids[i, t + 1] = rows[i, MID]
            vols[i, t] = rows[i, VOLUME]


def rollout(dyn: LearnedDynamics, n_paths: int, n_steps: int, dt: float, seed: int, q: np.ndarray | None = None,
            init_hidden: np.ndarray | None = None, init_x: np.ndarray | None = None, mid0: float | None = None):
    """Simulate ``n_paths`` independent paths of ``n_steps`` env steps; returns (mids (n, T+1), volumes (n, T)).

    Path ``i`` uses the stream ``seed_state(seed + i)``. With ``init_hidden`` /
    ``init_x`` / ``mid0`` the paths start from that state (no burn-in), e.g.
    the teacher-forced state of a real day.
    """
    from lobworld.envs.rng import seed_states

    args = dyn.args(n_paths, dt)
    rng = seed_states([seed + i for i in range(n_paths)], 1)
    rows = np.zeros((n_paths, dyn.n_state))
    meta = args[11]
    for i in range(n_paths):
        _learned_reset(i, rows[i], args, rng[i, 0])
        if init_hidden is not None:
            oh = int(meta[M_OH])
            rows[i, oh:oh + len(init_hidden)] = init_hidden
        if init_x is not None:
            ox = int(meta[M_OX])
            rows[i, ox:ox + N_FEATURES] = init_x
        if mid0 is not None:
            rows[i, MID] = mid0
    qq = np.zeros((n_paths, n_steps)) if q is None else np.ascontiguousarray(
        np.broadcast_to(np.asarray(q, dtype=np.float64), (n_paths, n_steps)))
    mids = np.empty((n_paths, n_steps + 1))
    vols = np.empty((n_paths, n_steps))
    if dyn.step_fn is _learned_step:
        _rollout_kernel(rows, args, rng, 0, qq, n_steps, mids, vols)
    else:  # the legacy channel's step (LegacyGRUImpactDynamics)
        if dyn.step_fn is not _learned_step_gru:
            raise TypeError(f"rollout: no rollout kernel for {type(dyn).__name__}.step_fn")
        _rollout_kernel_gru(rows, args, rng, 0, qq, n_steps, mids, vols)
    return mids, vols

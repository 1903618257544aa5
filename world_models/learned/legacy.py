"""The legacy agent-impact channel of the learned market (``impact="gru"``), behind its own class.

:class:`LegacyGRUImpactDynamics` feeds the agent's child order ``q / n_sub`` to the GRU as one
more aggressive order of every model bar (added to the bar's buy or sell volume and to its OFI
before the GRU update) and prices it as::

    price = mid_before + sign(q) * (spread_before / 2 + temp)
    temp  = Y * sigma_step * (|q| / V_step) ** delta        (USD per share)

with ``sigma_step`` the model's conditional mid-change sd over the step (USD), ``V_step`` the
market volume of the step (shares, agent excluded), ``Y = sqrt_y`` and ``delta =
impact_exponent``. Permanent impact is the GRU's response to the agent's flow; ``PERM_IMPACT``
accumulates its expected part (per bar, the mixture mean with the agent's flow minus that of a
counterfactual GRU update without it, in USD; ``track_permanent``).

Historical flow is not exogenous, so this channel gave a mid response linear in the order size
(simulated exponent 1.02); :class:`~lobworld.world_models.learned.LearnedDynamics` (the square-root
channel) replaced it. Kept for one release to reproduce earlier results; per env only (no batch
kernels), so the execution env steps it with ``step_fn``.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

from numba import njit

from lobworld.envs.dynamics import LAST_RET, MID, PERM_IMPACT, SIGMA, SPREAD, TEMP_IMPACT, VOLUME
from lobworld.world_models.checkpoint import Checkpoint
from lobworld.world_models.learned.host import LearnedDynamics
from lobworld.world_models.learned.impact_channel import _exec_price
from lobworld.world_models.learned.kernel import _substep
from lobworld.world_models.learned.layout import Q_DT, Q_NSUB, Q_SIG

__all__ = ["LegacyGRUImpactDynamics"]


@njit
def _learned_step_gru(i, row, args, st, q, vol_mult):
    """One env step with the legacy channel: ``q / n_sub`` in every bar's GRU control, the price above."""
    P = args[10]
    nsub = int(P[i, Q_NSUB])
    dt = P[i, Q_DT]
    mid0 = row[MID]
    spread0 = row[SPREAD]
    qs = q / nsub
    vol = 0.0
    var = 0.0
    perm = 0.0
    ret = 0.0
    for _ in range(nsub):
        v, s2, p, r = _substep(i, row, args, st, qs, vol_mult)
        vol += v
        var += s2
        perm += p
        ret += r
    sigma_step = math.sqrt(var) * P[i, Q_SIG]
    price, temp = _exec_price(P, i, q, vol, sigma_step, mid0, spread0)
    row[PERM_IMPACT] += perm
    row[VOLUME] = vol
    row[LAST_RET] = ret
    row[TEMP_IMPACT] = temp
    row[SIGMA] = sigma_step / math.sqrt(dt)
    return price


@njit(cache=True)
def _rollout_kernel_gru(rows, args, rng, stream, q, n_steps, mids, vols):
    """:func:`~lobworld.world_models.learned.evaluation.rollout`'s kernel for the legacy channel."""
    for i in range(rows.shape[0]):
        st = rng[i, stream]
        mids[i, 0] = rows[i, MID]
        for t in range(n_steps):
            _learned_step_gru(i, rows[i], args, st, q[i, t], 1.0)
            mids[i, t + 1] = rows[i, MID]
            vols[i, t] = rows[i, VOLUME]


class LegacyGRUImpactDynamics(LearnedDynamics):
    """The learned market with the legacy agent-impact channel (module docstring); per env only.

    Arguments as :class:`~lobworld.world_models.learned.LearnedDynamics` without ``impact``,
    ``impact_model``, ``impact_decay_s`` (the square-root channel's) and ``batch``; here
    ``sqrt_y`` (``Y``, default 0.5), ``impact_exponent`` (``delta``, default 0.5) and
    ``track_permanent`` (the counterfactual update for ``PERM_IMPACT``, doubling the cost of
    steps with ``q != 0``) set the channel.
    """

    _impact_mode = "gru"
    step_fn = staticmethod(_learned_step_gru)
    batch_reset_fn = None
    batch_step_fn = None

    def __init__(self, checkpoint: Checkpoint | str | pathlib.Path | Sequence | None = None,
                 asset: str | Sequence[str] | None = None, *, s0: float | None = None, sqrt_y: float = 0.5,
                 impact_exponent: float = 0.5, track_permanent: bool = True, burn_in: int | None = None):
        super().__init__(checkpoint, asset, s0=s0, sqrt_y=sqrt_y, impact_exponent=impact_exponent,
                         track_permanent=track_permanent, burn_in=burn_in, batch=False, impact="gru")

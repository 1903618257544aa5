"""The agent's impact channels of the learned market: the square-root law (``impact="sqrt"``) and the legacy execution price (``impact="gru"``)."""

from __future__ import annotations

from numba import njit

from lobworld.envs.dynamics import PERM_IMPACT
from lobworld.world_models.learned.layout import Q_DELTA, Q_IC, Q_IDEC, Q_IDEL, Q_IPF, Q_Y


@njit(inline="always")
def _exec_price(P, i, q, vol, sigma_step, mid0, spread0):
    """Execution price of the agent's ``q`` over the step and its temporary cost per share (USD):
    ``mid0 + sign(q) (spread0 / 2 + temp)``, ``temp = Y sigma_step (|q| / max(V_step, 1))^delta``.
    One definition for the per-env and the batch kernels."""
    aq = abs(q)
    temp = 0.0
    if aq > 0.0:
        temp = P[i, Q_Y] * sigma_step * (aq / max(vol, 1.0)) ** P[i, Q_DELTA]
    sgn = 1.0 if q > 0.0 else (-1.0 if q < 0.0 else 0.0)
    return mid0 + sgn * (0.5 * spread0 + temp), temp


@njit(inline="always")
def _imp_f(x, c, d):
    """Displacement of the impact state ``x`` (signed shares): ``sign(x) c |x|^d`` (USD)."""
    return c * abs(x) ** d if x >= 0.0 else -c * (-x) ** d


@njit(inline="always")
def _imp_avg(x, q, c, d):
    """Mean of ``_imp_f`` over the fill ``x -> x + q`` (q != 0): ``(G(x + q) - G(x)) / q`` with
    ``G(x) = c |x|^(1+d) / (1+d)`` its antiderivative; the midpoint value when ``|q|`` is tiny
    against ``|x|`` (where the difference would cancel)."""
    if abs(q) <= 1e-7 * abs(x):
        return _imp_f(x + 0.5 * q, c, d)
    return c * (abs(x + q) ** (1.0 + d) - abs(x) ** (1.0 + d)) / ((1.0 + d) * q)


@njit(inline="always")
def _sqrt_impact(P, i, row, oimp, q, mid0, spread0):
    """The agent-impact channel (``impact="sqrt"``) for an order of ``q`` shares (+ buy) at the step start.

    State ``row[oimp] = X_p`` (the agent's cumulative signed shares) and ``row[oimp + 1] = X_t``
    (the same, decaying by ``Q_IDEC`` per step); the agent's displacement of the mid is
    ``D = w F(X_p) + (1 - w) F(X_t)``, ``F(x) = sign(x) c |x|^delta``, ``c = Y sigma_D / V_D^delta``
    (session constants: a ``c`` varying within an episode would rescale ``D``). ``row[PERM_IMPACT]``
    holds the ``D`` already in the mid. The order walks both states from ``X`` to ``X + q``
    and pays the mean displacement along the way (``_imp_avg``) over the pre-trade one.
    Returns ``(price, temp, dD)``: execution price ``mid0 + sign(q) spread0 / 2 + (mean D - D)``,
    the temporary cost per share ``|mean D - D|`` (USD) and the change of ``D`` over the step
    (trade, then decay), which the caller adds to the mid; updates the state and PERM_IMPACT."""
    xp = row[oimp]
    xt = row[oimp + 1]
    if q == 0.0 and xp == 0.0 and xt == 0.0:  # no agent flow yet: nothing to displace (no pow calls)
        return mid0, 0.0, 0.0
    d = P[i, Q_IDEL]
    c = P[i, Q_IC]
    w = P[i, Q_IPF]
    d_old = row[PERM_IMPACT]
    d0 = w * _imp_f(xp, c, d) + (1.0 - w) * _imp_f(xt, c, d)
    price = mid0
    temp = 0.0
    if q != 0.0:
        avg = w * _imp_avg(xp, q, c, d) + (1.0 - w) * _imp_avg(xt, q, c, d)
        temp = abs(avg - d0)
        price = mid0 + (0.5 * spread0 if q > 0.0 else -0.5 * spread0) + (avg - d0)
        xp += q
        xt += q
    xt *= P[i, Q_IDEC]
    row[oimp] = xp
    row[oimp + 1] = xt
    d1 = w * _imp_f(xp, c, d) + (1.0 - w) * _imp_f(xt, c, d)
    row[PERM_IMPACT] = d1
    return price, temp, d1 - d_old

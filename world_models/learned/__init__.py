"""Learned market dynamics for the batched envs: the GRU bar model in Numba.

:class:`LearnedDynamics` implements :class:`lobworld.envs.dynamics.MarketDynamics`
with the model of :mod:`lobworld.world_models.dynamics_model` exported to
float64 arrays. One env step of ``dt`` seconds runs ``n_sub = dt / model_dt``
model bars (``dt`` must be a whole multiple of the model's bar length).

Per model bar (the same random draws -- 6 uniforms, 6 normals -- whatever ``q``):

1. encode the last bar's features ``x`` -> ``z``; the flow head on ``(h, z)``
   samples the market's own flow: trade/no trade, volume (log-normal, times
   ``vol_mult``), trade count, trade-sign imbalance, multi-level OFI; the
   imbalance category's uniform is coupled to the OFI's normal by a Gaussian
   copula of correlation ``AssetStats.flow_rho`` (fitted after training), so
   signed volume and OFI move together as in the data (marginals unchanged);
2. the control ``a = (OFI / OFI sd, signed volume / mean volume)`` of the
   market's own flow (with the legacy :class:`LegacyGRUImpactDynamics` the
   agent's child order ``q / n_sub`` is added to the buy or sell volume and to
   the OFI first);
   ``h <- GRU([z, a], h)``;
3. the state heads on ``h`` sample the mid change (Gaussian mixture, in units
   of the asset's ``sigma_bar``, rounded to half ticks; or, for a categorical-head
   model (the 1 s one), a category of the half-tick change drawn with the same
   uniform and, in a tail, a geometric excess from ``Phi`` of the same normal, so
   the draws per bar are the same for both heads), the spread
   (categorical over log(spread / median), relative to the 30-minute spread level
   for a ``spread_level`` model, rounded to ticks, >= 1 tick), top-of-book depth and
   imbalance, which become the next ``x`` (the spread level is updated from the
   new spread).

Agent impact, ``impact="sqrt"`` (the default): the square-root law fitted on the
real tape (:class:`lobworld.world_models.impact.ImpactModel`, shipped per asset) is
the agent's impact channel, and the GRU sees only the market's own flow (historical
flow is not exogenous, so feeding the agent's orders to the GRU gave a mid response
linear in the order size: simulated exponent 1.02). State per env: ``X_p``, the
agent's cumulative signed shares, and ``X_t``, the same decaying by
``exp(-dt / impact_decay_s)`` per env step. The agent's displacement of the mid is::

    D = w F(X_p) + (1 - w) F(X_t),    F(x) = sign(x) c |x|^delta,    c = Y sigma_D / V_D^delta

(``Y``, ``delta``, ``sigma_D``, ``V_D`` of the fitted model: session constants, as in the
fit, so ``c`` does not follow the intraday volume profile -- a ``c`` that changed while the
agent holds a position would rescale ``D`` and let a round trip earn; ``w`` such that an
instantaneous order's displacement keeps the fitted ``permanent_fraction`` 120 s later, as
measured on the tape). An order ``q`` moves both states from ``X``
to ``X + q`` and pays the mean displacement along the way::

    price = mid_before + sign(q) spread_before / 2 + (mean of D over X -> X + q) - D(X)

the mid moves by the change of ``D`` over the step (the trade, then the decay), and
``PERM_IMPACT`` holds ``D`` (USD) and ``TEMP_IMPACT`` ``|mean D - D|``. A metaorder's
peak impact is then proportional to ``Q^delta`` whatever its schedule (``delta`` 0.52
GOOG, 0.49 AMZN); its level lies between ``w`` and 1 times ``Y sigma_D (Q / V_D)^delta``
depending on how much of the transient part has decayed, and the market's own path is the same with or
without the agent (common random numbers hold exactly).

The legacy channel ``impact="gru"`` (the agent's flow fed to the GRU, a temporary cost
``sqrt_y sigma_step (|q| / V_step)^impact_exponent``) is the class
:class:`~lobworld.world_models.learned.legacy.LegacyGRUImpactDynamics`, per env only;
``LearnedDynamics(impact="gru")`` raises and names it. The kernels of :class:`LearnedDynamics`
run the square-root channel only.

Two implementations of the same bar:

* per env: ``reset_fn``/``step_fn`` (``_learned_reset``/``_learned_step``), the
  :class:`MarketDynamics` contract every env uses, e.g. the dark pool and market making;
* batch level: ``batch_reset_fn``/``batch_step_fn`` (``learned_batch_reset``/
  ``learned_batch_step``) over a chunk of ``BATCH_CHUNK`` envs, struct of arrays with the
  loop over envs innermost so LLVM vectorises it; the execution env uses it (about 4x
  faster, ``benchmarks/bench_learned.py``). Same draws per env, values equal up to rounding.

Both use ``_exp``/``_tanh``/``_sigmoid``: polynomial approximations written as plain
arithmetic (relative error of exp < 1e-15), because libm calls do not vectorise.

Modules
-------
* :mod:`~lobworld.world_models.learned.fastmath`: ``_exp``/``_tanh``/``_sigmoid``, the copula;
* :mod:`~lobworld.world_models.learned.layout`: the per-env parameter columns ``Q_*`` and the row
  layout vector ``M_*``;
* :mod:`~lobworld.world_models.learned.kernel`: the per-env forward pass, bar, reset and step;
* :mod:`~lobworld.world_models.learned.batch`: the batch-level kernels;
* :mod:`~lobworld.world_models.learned.impact_channel`: the agent's impact channels;
* :mod:`~lobworld.world_models.learned.legacy`: :class:`LegacyGRUImpactDynamics` (``impact="gru"``);
* :mod:`~lobworld.world_models.learned.host`: :class:`LearnedDynamics`, :func:`export_args`;
* :mod:`~lobworld.world_models.learned.evaluation`: :func:`numba_forward`, :func:`rollout`.

Every name below is re-exported here, so ``from lobworld.world_models.learned import X`` works.
"""

from __future__ import annotations

from lobworld.world_models.learned.batch import (  # noqa: F401  (re-exported)
    BATCH_CHUNK,
    V_A0,
    V_A1,
    V_A1C,
    V_AIMB,
    V_APERM,
    V_ARET,
    V_AVAR,
    V_AVOL,
    V_D0,
    V_IMB,
    V_K,
    V_LC,
    V_MCNT,
    V_MID,
    V_MQ,
    V_MSPR,
    V_MVOL,
    V_OFI0,
    V_OFIS,
    V_PERM,
    V_QS,
    V_RET,
    V_SIG,
    V_SLA,
    V_SPREAD,
    V_T0,
    V_T1,
    V_T2,
    V_TICK,
    V_TOT,
    V_TRACK,
    V_TRADED,
    V_VAR,
    V_VM,
    V_VOL,
    learned_batch_reset,
    learned_batch_step,
    workspace_rows,
)
from lobworld.world_models.learned.evaluation import (  # noqa: F401  (re-exported)
    numba_forward,
    rollout,
)
from lobworld.world_models.learned.fastmath import (  # noqa: F401  (re-exported)
    _clamp,
    _couple,
    _exp,
    _sigmoid,
    _tanh,
)
from lobworld.world_models.learned.host import (  # noqa: F401  (re-exported)
    DEFAULT_CHECKPOINT,
    LearnedBundle,
    LearnedDynamics,
    export_args,
)
from lobworld.world_models.learned.impact_channel import (  # noqa: F401  (re-exported)
    _exec_price,
    _sqrt_impact,
)
from lobworld.world_models.learned.kernel import (  # noqa: F401  (re-exported)
    _cat_mean_var,
    _cat_sample,
    _learned_reset,
    _learned_step,
    _substep,
)
from lobworld.world_models.learned.layout import (  # noqa: F401  (re-exported)
    _LS_HI,
    _LS_LO,
    M_E,
    M_H,
    M_KCAT,
    M_NMID,
    M_NMIX,
    M_NSPR,
    M_OFISL,
    M_OFO,
    M_OGH,
    M_OGI,
    M_OH,
    M_OHC,
    M_OHCO,
    M_OHN,
    M_OHO,
    M_OIMP,
    M_OX,
    M_OZ,
    M_SREL,
    N_FLOW,
    N_Q,
    Q_CSCALE,
    Q_DELTA,
    Q_DT,
    Q_IC,
    Q_IDEC,
    Q_IDEL,
    Q_IMODE,
    Q_IPF,
    Q_MCNT,
    Q_MDEP,
    Q_MSPR,
    Q_MVOL,
    Q_NBURN,
    Q_NSUB,
    Q_OFIS,
    Q_RHO,
    Q_S0,
    Q_SIG,
    Q_SLA,
    Q_TICK,
    Q_TRACK,
    Q_Y,
    _layout,
)
from lobworld.world_models.learned.legacy import LegacyGRUImpactDynamics

__all__ = ["LearnedDynamics", "DEFAULT_CHECKPOINT", "BATCH_CHUNK", "export_args", "learned_batch_reset",
           "learned_batch_step", "numba_forward", "rollout", "LegacyGRUImpactDynamics", "LearnedBundle"]

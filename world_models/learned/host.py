"""Host side of the learned market: :class:`LearnedDynamics` and the export of a checkpoint's weights."""

from __future__ import annotations

import math
import numbers
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lobworld.envs.dynamics import DynamicsBundle, MarketDynamics
from lobworld.world_models.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from lobworld.world_models.dynamics_model import asset_scale, spread_level_decay
from lobworld.world_models.learned.batch import BATCH_CHUNK, learned_batch_reset, learned_batch_step, workspace_rows
from lobworld.world_models.learned.kernel import _learned_reset, _learned_step
from lobworld.world_models.learned.layout import M_KCAT, M_OFISL, N_Q, _layout
from lobworld._checks import integer, non_negative, positive
from lobworld.errors import LobworldError
from lobworld.world_models.data.session import SESSION_SECONDS


class LearnedDynamicsError(LobworldError):
    """Bad arguments to the learned market (field named)."""


#: the shipped checkpoint (see the README section "World models" for how it was trained)
DEFAULT_CHECKPOINT = pathlib.Path(__file__).parent.parent / "assets" / "weights" / "bar_gru_60s.npz"

# ---------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------
def export_args(ck: Checkpoint) -> tuple:
    """The float64 weight arrays of the kernels (without ``P``) and the layout vector."""
    w = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in ck.weights.items()}
    c = ck.model_config
    meta, n_state = _layout(c)
    return (w["enc.weight"], w["enc.bias"], w["flow.weight"], w["flow.bias"], w["gru.weight_ih_l0"],
            w["gru.weight_hh_l0"], w["gru.bias_ih_l0"], w["gru.bias_hh_l0"], w["head.weight"], w["head.bias"]), meta, n_state


def _batch_ok(meta: np.ndarray) -> bool:
    """The batch kernels implement the mixture mid head and the Gaussian OFI head only."""
    return meta[M_KCAT] == 0.0 and meta[M_OFISL] == 0.0


@dataclass(frozen=True)
class LearnedBundle(DynamicsBundle):
    """:class:`~lobworld.envs.dynamics.DynamicsBundle` of :class:`LearnedDynamics` for one ``(n_envs, dt)``.

    ``args = (*weights, P, meta)`` of the model chosen for ``dt`` (the coarsest bar dividing it);
    the batch functions are ``None`` when that model is one the batch kernels do not implement or
    ``batch=False``. Besides: ``checkpoint`` (the chosen model), ``model_dt`` (its bar, seconds),
    ``n_substeps`` (model bars per env step) and ``burn_in`` (model bars run at reset).
    """

    checkpoint: Checkpoint | None = None
    model_dt: float = 0.0
    n_substeps: int = 1
    burn_in: int = 0


class LearnedDynamics(MarketDynamics):
    """GRU bar world model (see the module docstring) as a :class:`MarketDynamics`.

    Arguments
    ---------
    checkpoint: a :class:`Checkpoint`, the path of one, or a sequence of them (models with
        different bar lengths; ``args(n_envs, dt)`` uses the coarsest bar that divides ``dt``).
        Default: the shipped 1-minute model; :meth:`load_default` takes every shipped one.
    asset: ticker whose normalisation statistics to use (``"GOOG"``, ``"AMZN"`` for
        the shipped model), or a sequence of ``n_envs`` tickers (one per env).
    s0: starting mid (USD); default the asset's first training mid.
    impact: the agent's impact channel (module docstring): ``"sqrt"``, the fitted square-root
        law (:class:`~lobworld.world_models.impact.ImpactModel`) with a decaying transient part;
        the GRU sees only the market's own flow. The legacy ``"gru"`` channel is
        :class:`~lobworld.world_models.learned.legacy.LegacyGRUImpactDynamics`.
    impact_model: an :class:`~lobworld.world_models.impact.ImpactModel` for every asset, or a
        dict of them by asset; default: the model fitted on the asset's shipped LOBSTER day
        (``assets/fitted/<asset>.json``), else the square-root prior ``ImpactParams()`` scaled to
        the asset's session sigma and volume, with a warning. ``impact="sqrt"`` only.
    impact_decay_s: e-folding time (seconds) of the transient part of the agent's impact
        (``math.inf``: none decays). ``impact="sqrt"`` only.
    sqrt_y, impact_exponent, track_permanent: parameters of the legacy channel
        (:class:`~lobworld.world_models.learned.legacy.LegacyGRUImpactDynamics`); validated and
        written to the parameter rows (``Q_Y``, ``Q_DELTA``; ``Q_TRACK`` is 0), unused by the
        square-root channel, whose ``PERM_IMPACT`` is the displacement ``D``.
    burn_in: model bars run at reset (no agent flow) before the episode starts
        (default: 5 minutes of model time).
    batch: let envs that can (the execution env) step the market with the batch-level
        kernels ``batch_step_fn``/``batch_reset_fn`` (same market, about 4x faster); False
        forces the per-env ``step_fn``. Models the batch kernels do not implement (the 1 s
        categorical-head / signed-OFI model) always run per env.
    """

    name = "learned"
    _impact_mode = "sqrt"  # the channel this class's step_fn implements
    reset_fn = staticmethod(_learned_reset)
    step_fn = staticmethod(_learned_step)
    batch_reset_fn = staticmethod(learned_batch_reset)
    batch_step_fn = staticmethod(learned_batch_step)

    def __init__(self, checkpoint: Checkpoint | str | pathlib.Path | Sequence | None = None,
                 asset: str | Sequence[str] | None = None, *, s0: float | None = None, sqrt_y: float = 0.5,
                 impact_exponent: float = 0.5, track_permanent: bool = True, burn_in: int | None = None,
                 batch: bool = True, impact: str = "sqrt", impact_model=None, impact_decay_s: float = 60.0):
        if checkpoint is None:
            checkpoint = DEFAULT_CHECKPOINT
        cands = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
        if not cands:
            raise LearnedDynamicsError("LearnedDynamics: no checkpoint given")
        cks = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in cands]
        cks.sort(key=lambda c: -c.dt)  # coarsest bar first: fewest sub-steps per env step
        if asset is None:
            common = set.intersection(*(set(c.assets) for c in cks))
            if not common:
                raise LearnedDynamicsError("LearnedDynamics: the checkpoints share no asset; pass asset=...")
            asset = "GOOG" if "GOOG" in common else sorted(common)[0]
        for ck in cks:
            for a in [asset] if isinstance(asset, str) else list(asset):
                if a not in ck.assets:
                    raise LearnedDynamicsError(f"LearnedDynamics: asset {a!r} not in the checkpoint (has {sorted(ck.assets)})")
        self.asset = asset
        for name, v in (("sqrt_y", sqrt_y), ("impact_exponent", impact_exponent)):
            non_negative(f"LearnedDynamics.{name}", v, error=LearnedDynamicsError)
        if s0 is not None:
            positive("LearnedDynamics.s0", s0, error=LearnedDynamicsError, what="a positive price")
        if burn_in is not None:
            integer("LearnedDynamics.burn_in", burn_in, error=LearnedDynamicsError, minimum=0)
        self.s0, self.sqrt_y, self.impact_exponent = s0, float(sqrt_y), float(impact_exponent)
        if impact not in ("sqrt", "gru"):
            raise LearnedDynamicsError(f"LearnedDynamics.impact must be 'sqrt' or 'gru', got {impact!r}")
        if impact != self._impact_mode:
            raise LearnedDynamicsError(f"{type(self).__name__} implements impact={self._impact_mode!r}; the legacy impact='gru' "
                             "channel is lobworld.world_models.learned.LegacyGRUImpactDynamics")
        if not (isinstance(impact_decay_s, numbers.Real) and not isinstance(impact_decay_s, bool)
                and impact_decay_s > 0 and not math.isnan(impact_decay_s)):
            raise LearnedDynamicsError(f"LearnedDynamics.impact_decay_s must be a positive number of seconds (inf: no "
                             f"decay), got {impact_decay_s!r}")
        self.impact, self.impact_decay_s = impact, float(impact_decay_s)
        self._impact_model_arg = impact_model
        self.impact_models = self._impact_models(impact_model, [asset] if isinstance(asset, str) else list(asset))
        self.track_permanent, self._burn_in = bool(track_permanent), burn_in
        self.batch = bool(batch)
        self._models = [(ck, *export_args(ck)) for ck in cks]
        self.n_state = max(m[3] for m in self._models)
        #: the coarsest model and its bar; the model used for a ``dt``: ``bundle(n_envs, dt).checkpoint``
        self.checkpoint = cks[0]
        self.model_dt = cks[0].dt
        self.burn_in = self._burn_in_for(cks[0])
        # the batch functions when some model has them; which one a dt gets: bundle(n_envs, dt)
        ok = self.batch and any(_batch_ok(m[2]) for m in self._models)
        self.batch_step_fn = learned_batch_step if ok else None
        self.batch_reset_fn = learned_batch_reset if ok else None

    @staticmethod
    def _impact_models(impact_model, assets) -> dict:
        """Asset -> ImpactModel: the given one (for every asset, or a dict by asset), else the model
        fitted on the shipped LOBSTER day of the asset; an asset with neither gets the square-root
        prior ``ImpactParams()`` scaled to its own session sigma and volume, with a warning."""
        from lobworld.world_models.impact import FITTED_DIR, ImpactModel

        out = {}
        for a in dict.fromkeys(assets):
            m = impact_model.get(a) if isinstance(impact_model, dict) else impact_model
            if m is None and (FITTED_DIR / f"{a.lower()}.json").is_file():
                m = ImpactModel.load_fitted(a)
            if m is not None and not isinstance(m, ImpactModel):
                raise TypeError(f"LearnedDynamics.impact_model must be an ImpactModel or a dict of them, got {m!r}")
            out[a] = m
        return out

    def impact_columns(self, asset: str, dt: float) -> tuple[float, float, float, float]:
        """``(c, delta, w, decay)`` of the impact channel for ``asset`` at env step ``dt``:
        ``c = Y sigma_D / V_D^delta``, the permanent weight ``w`` and the per-step decay ``exp(-dt / tau)``.

        ``w`` is set so that the channel reproduces the fitted ``permanent_fraction`` the way it
        was measured (the mid ``RunRule.horizon_s`` = 120 s after a short run over its peak):
        ``w + (1 - w) exp(-120 delta / tau) = permanent_fraction``, clipped to [0, 1]."""
        from lobworld.world_models.impact import ImpactParams, RunRule

        if asset not in self.impact_models:
            self.impact_models.update(self._impact_models(self._impact_model_arg, [asset]))
        m = self.impact_models[asset]
        if m is not None:
            p = m.params
            sig_d, v_d = p.sigma_ref, p.V_ref
        else:
            import warnings

            p = ImpactParams()
            ck = self._models[self._select(dt)][0]
            s = ck.assets[asset]
            n_bars = SESSION_SECONDS / ck.dt
            sig_d, v_d = s.sigma_bar * math.sqrt(n_bars), s.mean_volume * n_bars
            warnings.warn(f"LearnedDynamics: no fitted impact model for {asset!r}; using the square-root prior "
                          f"Y={p.Y}, delta={p.delta} with the asset's session sigma and volume (fit one with "
                          "`lobworld world-model fit-impact` and pass impact_model=)", stacklevel=3)
        c = p.Y * sig_d / v_d ** p.delta
        e = math.exp(-RunRule().horizon_s * p.delta / self.impact_decay_s)
        if e > p.permanent_fraction and e < 1.0:
            import warnings

            warnings.warn(f"LearnedDynamics: with impact_decay_s={self.impact_decay_s:g} s the transient part alone keeps "
                          f"{e:.2f} of the impact after {RunRule().horizon_s:g} s, more than the fitted permanent "
                          f"fraction {p.permanent_fraction:.2f} of {asset!r}; the permanent weight is 0 and all of the "
                          "impact decays (use a shorter impact_decay_s to match the fit)", stacklevel=3)
        w = p.permanent_fraction if e >= 1.0 else min(max((p.permanent_fraction - e) / (1.0 - e), 0.0), 1.0)
        return c, p.delta, w, math.exp(-dt / self.impact_decay_s)

    def _burn_in_for(self, ck: Checkpoint) -> int:
        """Model bars of burn-in at reset: ``burn_in``, default 5 minutes of the model's bars."""
        return self._burn_in if self._burn_in is not None else max(1, int(math.ceil(300.0 / ck.dt)))

    @classmethod
    def load_default(cls, **kwargs) -> "LearnedDynamics":
        """Every shipped checkpoint (1-minute and 10-second bars; GOOG and AMZN 2012-06-21).

        ``args(n_envs, dt)`` then uses the coarsest model whose bar divides ``dt``.
        """
        paths = sorted(DEFAULT_CHECKPOINT.parent.glob("bar_gru_*.npz"))
        if not paths:
            raise CheckpointError(f"no shipped checkpoint in {DEFAULT_CHECKPOINT.parent} (broken install?)")
        return cls(paths, **kwargs)

    def _select(self, dt: float) -> int:
        positive("dt", dt, error=LearnedDynamicsError, what="a positive number of seconds")
        for k, m in enumerate(self._models):
            n = dt / m[0].dt
            j = int(round(n))
            if j >= 1 and abs(n - j) <= 1e-9 * max(1.0, n):
                return k
        bars = ", ".join(f"{m[0].dt:g}s" for m in self._models)
        raise LearnedDynamicsError(f"env dt={dt}s is not a whole multiple of the learned model's bar length ({bars}); "
                         "use such a dt or train a model at another freq")

    def n_substeps(self, dt: float) -> int:
        """Model bars per env step; raises ``ValueError`` unless ``dt`` is a whole multiple of a model's bar."""
        return int(round(dt / self._models[self._select(dt)][0].dt))

    def param_rows(self, n_envs: int, dt: float) -> np.ndarray:
        """Per-env parameter rows ``P`` ``(n_envs, N_Q)`` of the model chosen for ``dt`` (columns ``Q_*``)."""
        k = self._select(dt)
        ck, meta = self._models[k][0], self._models[k][2]
        nsub = self.n_substeps(dt)
        names = [self.asset] * n_envs if isinstance(self.asset, str) else list(self.asset)
        if len(names) != n_envs:
            raise LearnedDynamicsError(f"LearnedDynamics: got {len(names)} assets for {n_envs} envs")
        P = np.empty((n_envs, N_Q), dtype=np.float64)
        sq = self.impact == "sqrt"
        gaussian_ofi = meta[M_OFISL] == 0.0  # the 1 s model's OFI sign already shares u_imb
        cols = {a: self.impact_columns(a, dt) if sq else (0.0, 0.5, 0.0, 1.0) for a in dict.fromkeys(names)}
        sla = float(spread_level_decay(ck.dt))
        burn_in = self._burn_in_for(ck)
        for i, a in enumerate(names):
            s = ck.assets[a]
            P[i] = (self.s0 if self.s0 is not None else s.s0, s.tick, s.sigma_bar, s.median_spread, s.mean_volume,
                    s.mean_count, s.mean_depth, dt, nsub, self.sqrt_y, self.impact_exponent,
                    1.0 if (self.track_permanent and not sq) else 0.0, burn_in, s.ofi_scale, asset_scale(s),
                    1.0 if sq else 0.0, *cols[a], s.flow_rho if gaussian_ofi else 0.0, sla)
        return P

    def workspace(self, n_envs: int) -> np.ndarray:
        """Scratch of the batch kernels: ``(n_chunks, rows, BATCH_CHUNK)`` float64, chunk ``c`` for envs
        ``c * BATCH_CHUNK ...`` (rows for the largest of the loaded models)."""
        rows = max(workspace_rows(m[0].model_config.hidden, m[0].model_config.latent, m[0].model_config.n_mix,
                                  m[0].model_config.spread_bins) for m in self._models)
        n_chunks = max(1, -(-int(n_envs) // BATCH_CHUNK))
        return np.zeros((n_chunks, rows, BATCH_CHUNK), dtype=np.float64)

    def bundle(self, n_envs: int, dt: float) -> LearnedBundle:
        """The immutable :class:`LearnedBundle` for ``n_envs`` envs stepping ``dt`` seconds: the model
        chosen for ``dt`` (coarsest bar dividing it), its arguments and kernels. Leaves the dynamics
        unchanged, so bundles for different ``dt`` can be built in any order."""
        k = self._select(dt)
        ck, weights, meta, _n = self._models[k]
        P = self.param_rows(n_envs, dt)
        ok = self.batch and _batch_ok(meta)
        return LearnedBundle(args=(*weights, P, meta), reset_fn=self.reset_fn, step_fn=self.step_fn,
                             batch_reset_fn=learned_batch_reset if ok else None,
                             batch_step_fn=learned_batch_step if ok else None, checkpoint=ck, model_dt=ck.dt,
                             n_substeps=self.n_substeps(dt), burn_in=self._burn_in_for(ck))

    def args(self, n_envs: int, dt: float) -> tuple:
        """``bundle(n_envs, dt).args``: weights of the model chosen for ``dt``, per-env rows ``P``, layout ``meta``."""
        return self.bundle(n_envs, dt).args


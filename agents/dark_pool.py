"""Baselines for ``LOB-DarkPool-v0``: uniform, lit-only, Ganchev et al. censored exploration, oracle.

Every policy maps a batch of observations ``(n_envs, 4 + 4K)`` to a batch of actions
``(n_envs, K + 2)`` (see :class:`lobworld.envs.dark_pool.DarkPoolEnv`, Action Space).
All four work a *slice* each step, ``V = floor(slice_mult * R / (T - t) + 1/2)``
shares clipped to ``R`` (``slice_mult = 1``: TWAP on the remaining quantity ``R``; at the
last step everything left). Uniform and lit-only use ``slice_mult = 1``; the two
dark-only routers default to ``slice_mult = 2``, oversizing the slice because only
about half of what is sent to dark pools fills (with 1 they leave 10-20 % of the order
to the forced lit execution at the horizon, which then dominates their cost). They
differ in how they split the slice:

* :class:`UniformPolicy` -- equal weights over the lit venue and the K pools;
* :class:`LitOnlyPolicy` -- everything lit (the no-dark-pool benchmark);
* :class:`GanchevPolicy` -- the greedy allocation of Ganchev, Kearns, Nevmyvaka &
  Vaughan ("Censored exploration and the dark pool problem"): each pool's tail
  ``T_k(j) = P(s_k >= j * unit)`` is estimated from censored fills by Kaplan-Meier, and
  the slice is handed out one ``unit`` of shares at a time to the pool with the highest
  probability of filling that unit, ``T_k(n_k + 1)``. Optimism: where no data reach,
  the hazard is taken as 0, so the tail stays flat at its last estimate (an unexplored
  pool has ``T = 1``), which makes the learner push allocations past what it has seen;
  and ``prior`` pseudo-observations censored at +infinity sit in every risk set (see
  :class:`GanchevState`), so small samples cannot shut a pool out.
  Only dark pools receive shares; the env sends what is left at the horizon lit.
* :class:`OraclePolicy` -- the same greedy allocation on the *true* tails, read from
  the env core (``DarkPoolCore.venue_params``): the fill-maximising benchmark.

The learner's state is explicit: :class:`GanchevState` holds per env and pool the
Kaplan-Meier counts; ``GanchevPolicy.update(allocations, fills)`` folds in one step of
``(n_envs, K)`` integer dark allocations and fills (shares), which
:func:`alloc_fill_from_obs` recovers from the observation (use the terminal
observation for envs that just finished: the next observation belongs to a new episode).

``python -m lobworld.agents.dark_pool --report`` prints the table of ``docs/envs/dark_pool.md`` and writes
``docs/dark_pool_learning.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lobworld._checks import integer, non_negative, positive
from numba import njit

from lobworld.envs.dark_pool import (
    N_OBS_GLOBAL,
    N_OBS_VENUE,
    OBS_REMAINING,
    OBS_TIME,
    OV_LAST_ALLOC,
    OV_LAST_FILL,
    DarkPoolConfig,
    DarkPoolCore,
)
from lobworld.errors import LobworldError


class DarkPoolPolicyError(LobworldError):
    """Bad parameters of a dark-pool baseline (field named)."""


__all__ = [
    "alloc_fill_from_obs",
    "slice_shares",
    "UniformPolicy",
    "LitOnlyPolicy",
    "GanchevState",
    "GanchevPolicy",
    "OraclePolicy",
    "oracle_tails",
    "evaluate",
    "learning_curve",
]


def _check_obs(obs: np.ndarray, K: int) -> np.ndarray:
    obs = np.asarray(obs)
    if obs.ndim != 2 or obs.shape[1] != N_OBS_GLOBAL + N_OBS_VENUE * K:
        raise DarkPoolPolicyError(f"observations must have shape (n_envs, {N_OBS_GLOBAL + N_OBS_VENUE * K}), got {obs.shape}")
    return obs


def alloc_fill_from_obs(obs: np.ndarray, config: DarkPoolConfig) -> tuple[np.ndarray, np.ndarray]:
    """Last step's dark allocations and fills ``(n_envs, K)`` int64 shares, from observations.

    Exact while ``order_size < 2**23`` (float32 keeps the share counts to within 1/2).
    """
    K, Q = config.n_dark, config.quantity
    obs = _check_obs(obs, K).astype(np.float64)
    base = N_OBS_GLOBAL + N_OBS_VENUE * np.arange(K)
    alloc = np.rint(obs[:, base + OV_LAST_ALLOC] * Q).astype(np.int64)
    fills = np.rint(obs[:, base + OV_LAST_FILL] * Q).astype(np.int64)
    return alloc, fills


def slice_shares(obs: np.ndarray, config: DarkPoolConfig, slice_mult: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Remaining shares ``R`` and this step's slice ``V = floor(slice_mult R / (T - t) + 1/2)``, clipped to [0, R]."""
    Q, T = config.quantity, config.horizon
    R = np.rint(obs[:, OBS_REMAINING].astype(np.float64) * Q).astype(np.int64)
    t = np.rint(obs[:, OBS_TIME].astype(np.float64) * T).astype(np.int64)
    left = np.maximum(T - t, 1)
    V = np.floor(slice_mult * R / left + 0.5).astype(np.int64)
    V = np.where(left == 1, R, np.clip(V, 0, R))
    return R, V


def _action_from_shares(shares: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Action that makes the env send exactly ``shares[:, v]`` to venue v (column 0 lit)."""
    n, m = shares.shape
    V = shares.sum(axis=1)
    a = np.zeros((n, m + 1), np.float32)
    pos = V > 0
    a[pos, :m] = (shares[pos] / V[pos, None]).astype(np.float32)
    a[pos, m] = (V[pos] / np.maximum(R[pos], 1)).astype(np.float32)
    return np.clip(a, 0.0, 1.0)


class _Base:
    name = "base"

    def __init__(self, config: DarkPoolConfig, slice_mult: float = 1.0):
        if not isinstance(config, DarkPoolConfig):
            raise TypeError(f"config must be a DarkPoolConfig, got {type(config).__name__}")
        positive("slice_mult", slice_mult, error=DarkPoolPolicyError)
        self.config = config
        self.slice_mult = float(slice_mult)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Called for envs that start a new episode (no-op for stateless policies)."""

    def update(self, allocations: np.ndarray, fills: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Fold in one step of dark allocations/fills (no-op for non-learning policies)."""


class UniformPolicy(_Base):
    """Equal weights over the lit venue and every pool; participation ``slice_mult / (T - t)``."""

    name = "uniform"

    def act(self, obs: np.ndarray) -> np.ndarray:
        K = self.config.n_dark
        obs = _check_obs(obs, K)
        R, V = slice_shares(obs, self.config, self.slice_mult)
        a = np.ones((obs.shape[0], K + 2), np.float32)
        a[:, K + 1] = np.where(R > 0, V / np.maximum(R, 1), 0.0).astype(np.float32)
        return np.clip(a, 0.0, 1.0)


class LitOnlyPolicy(_Base):
    """Everything lit: TWAP on the remaining quantity."""

    name = "lit-only"

    def act(self, obs: np.ndarray) -> np.ndarray:
        K = self.config.n_dark
        obs = _check_obs(obs, K)
        R, V = slice_shares(obs, self.config, self.slice_mult)
        a = np.zeros((obs.shape[0], K + 2), np.float32)
        a[:, 0] = 1.0
        a[:, K + 1] = np.where(R > 0, V / np.maximum(R, 1), 0.0).astype(np.float32)
        return np.clip(a, 0.0, 1.0)


# ---------------------------------------------------------------------------
# Kaplan-Meier + greedy kernels
# ---------------------------------------------------------------------------
@njit(cache=True)
def _km_update(exact, cens, alloc, fills, mask, unit):
    n, K, nb = exact.shape
    B = nb - 1
    for i in range(n):
        if not mask[i]:
            continue
        for k in range(K):
            a = alloc[i, k]
            f = fills[i, k]
            if a <= 0:
                continue
            if f < a:  # uncensored: s = f exactly, in bin f // unit
                b = f // unit
                exact[i, k, b if b < B else B] += 1
            else:  # censored: s >= a, so s >= c * unit for c = a // unit
                c = a // unit
                if c > 0:
                    cens[i, k, c if c < B else B] += 1


@njit(cache=True)
def _km_tails(exact, cens, prior, tails):
    """``tails[i, k, j] = P(s >= j * unit)``: product-limit estimate with ``prior`` optimistic
    pseudo-observations censored at +infinity (at risk in every bin, never an event)."""
    n, K, nb = exact.shape
    for i in range(n):
        for k in range(K):
            at_risk = 0.0
            # at_risk(j) = sum_{b >= j} exact[b] + sum_{c > j} cens[c]; build the hazards backwards
            haz = tails[i, k]  # reuse the row as scratch for hazards h_0..h_{nb-1}
            for j in range(nb - 1, -1, -1):
                if j + 1 < nb:
                    at_risk += cens[i, k, j + 1]
                at_risk += exact[i, k, j]
                haz[j + 1] = exact[i, k, j] / (at_risk + prior) if at_risk + prior > 0 else 0.0
            tails[i, k, 0] = 1.0
            for j in range(nb):
                tails[i, k, j + 1] = tails[i, k, j] * (1.0 - haz[j + 1])


@njit(cache=True)
def _greedy(tails, V, unit, out):
    """Hand out ``V[i]`` shares in ``unit`` lots to the pool with the highest ``tails[i, k, n_k + 1]``."""
    n, K, nt = tails.shape
    for i in range(n):
        for k in range(K):
            out[i, k] = 0
        units = V[i] // unit
        extra = V[i] - units * unit
        for _ in range(units + (1 if extra > 0 else 0)):
            best = 0
            best_p = -1.0
            for k in range(K):
                j = out[i, k] // unit + 1
                p = tails[i, k, j if j < nt else nt - 1]
                if p > best_p:
                    best_p = p
                    best = k
            if units > 0:
                out[i, best] += unit
                units -= 1
            else:
                out[i, best] += extra


@dataclass
class GanchevState:
    """Censored-exploration learner state: Kaplan-Meier counts per env and pool.

    ``exact[i, k, b]``: uncensored observations (fill < allocation, so hidden liquidity
    ``s = fill``) with ``s`` in ``[b unit, (b+1) unit)``; ``cens[i, k, c]``: censored ones
    (fill == allocation) known only to have ``s >= c unit``. Bins above ``B =
    ceil(order_size / unit)`` are pooled in bin ``B``. ``prior`` optimistic
    pseudo-observations censored at +infinity are added to every risk set, so the
    hazard of bin ``j`` is ``exact[j] / (at_risk(j) + prior)``: one unlucky zero fill
    cannot close a pool for good, and their weight vanishes as real data accumulate.
    """

    exact: np.ndarray
    cens: np.ndarray
    unit: int
    prior: float = 1.0

    @classmethod
    def empty(cls, n_envs: int, n_dark: int, order_size: int, unit: int, prior: float = 1.0) -> "GanchevState":
        B = -(-order_size // unit)
        z = np.zeros((n_envs, n_dark, B + 1), np.int64)
        return cls(z, z.copy(), int(unit), float(prior))

    def reset(self, mask: np.ndarray | None = None) -> None:
        m = slice(None) if mask is None else np.asarray(mask, bool)
        self.exact[m] = 0
        self.cens[m] = 0

    def update(self, allocations: np.ndarray, fills: np.ndarray, mask: np.ndarray | None = None) -> None:
        n, K = self.exact.shape[:2]
        alloc = np.ascontiguousarray(allocations, dtype=np.int64)
        fl = np.ascontiguousarray(fills, dtype=np.int64)
        if alloc.shape != (n, K) or fl.shape != (n, K):
            raise DarkPoolPolicyError(f"allocations and fills must have shape {(n, K)}, got {alloc.shape} and {fl.shape}")
        if (fl < 0).any() or (fl > alloc).any():
            raise DarkPoolPolicyError("fills must satisfy 0 <= fill <= allocation")
        m = np.ones(n, np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
        _km_update(self.exact, self.cens, alloc, fl, m, self.unit)

    def tails(self) -> np.ndarray:
        """Kaplan-Meier tails ``(n_envs, K, B + 2)``: entry ``j`` is ``P(s >= j * unit)``."""
        n, K, nb = self.exact.shape
        out = np.empty((n, K, nb + 1), np.float64)
        _km_tails(self.exact, self.cens, self.prior, out)
        return out


class GanchevPolicy(_Base):
    """Greedy allocation on optimistic Kaplan-Meier tails (Ganchev et al.); see the module docstring.

    ``reset_each_episode=False`` keeps learning across episodes (right when the pools
    are the same every episode, scenario ``"fixed4"``); ``True`` forgets at each new
    episode (pools redrawn per episode: learn within the episode only).
    """

    name = "ganchev-km"

    def __init__(self, config: DarkPoolConfig, n_envs: int, unit: int = 10, slice_mult: float = 2.0,
                 reset_each_episode: bool = False, prior: float = 1.0):
        super().__init__(config, slice_mult)
        integer("unit", unit, error=DarkPoolPolicyError, what="an integer >= 1", unit="shares")
        non_negative("prior", prior, error=DarkPoolPolicyError, unit="pseudo-observations")
        self.state = GanchevState.empty(n_envs, config.n_dark, config.quantity, int(unit), prior)
        self.reset_each_episode = bool(reset_each_episode)
        self._out = np.zeros((n_envs, config.n_dark), np.int64)

    def reset(self, mask: np.ndarray | None = None) -> None:
        if self.reset_each_episode:
            self.state.reset(mask)

    def update(self, allocations: np.ndarray, fills: np.ndarray, mask: np.ndarray | None = None) -> None:
        self.state.update(allocations, fills, mask)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = _check_obs(obs, self.config.n_dark)
        R, V = slice_shares(obs, self.config, self.slice_mult)
        _greedy(self.state.tails(), V, self.state.unit, self._out)
        shares = np.concatenate([np.zeros((len(V), 1), np.int64), self._out], axis=1)
        return _action_from_shares(shares, R)


def oracle_tails(params: dict, order_size: int, unit: int) -> np.ndarray:
    """True ``P(s >= j * unit)`` ``(n_envs, K, B + 2)`` from :meth:`DarkPoolCore.venue_params`."""
    from scipy.special import ndtr

    B = -(-order_size // unit)
    m = (np.arange(B + 2) * unit).astype(np.float64)[None, None, :]
    p0 = params["p_zero"][..., None]
    scale = params["scale"][..., None]
    shape = params["shape"][..., None]
    with np.errstate(divide="ignore", over="ignore"):
        if params["family"] == "pareto":
            tail = np.minimum(1.0, (scale / np.maximum(m, 1e-300)) ** shape)
        else:
            tail = 1.0 - ndtr(np.log(np.maximum(m, 1e-300) / scale) / shape)
    tail = (1.0 - p0) * tail
    tail = np.where(m > params["cap"], 0.0, tail)
    tail[..., 0] = 1.0
    return tail


class OraclePolicy(_Base):
    """Greedy allocation on the true tails (knows the hidden-liquidity distributions)."""

    name = "oracle"

    def __init__(self, core: DarkPoolCore, unit: int = 10, slice_mult: float = 2.0):
        super().__init__(core.config, slice_mult)
        self.core = core
        self.unit = int(unit)
        self._out = np.zeros((core.n_envs, core.n_dark), np.int64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = _check_obs(obs, self.config.n_dark)
        R, V = slice_shares(obs, self.config, self.slice_mult)
        tails = oracle_tails(self.core.venue_params(), self.config.quantity, self.unit)
        _greedy(np.ascontiguousarray(tails), V, self.unit, self._out)
        shares = np.concatenate([np.zeros((len(V), 1), np.int64), self._out], axis=1)
        return _action_from_shares(shares, R)


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def evaluate(policy, core: DarkPoolCore, n_episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Run ``policy`` on ``core`` (autoreset) until every env finished ``n_episodes`` episodes.

    Returns the episode-info fields as arrays ``(n_episodes, n_envs)`` (episode ``e`` of
    env ``i``); the learner is updated after every step from the observations.
    """
    n = core.n_envs
    core.seed_rows(range(n), [seed + i for i in range(n)])
    core.reset()
    policy.reset()
    count = np.zeros(n, np.int64)
    out: dict[str, np.ndarray] = {}
    obs = core.obs.copy()
    while count.min() < n_episodes:
        core.step(policy.act(obs), autoreset=True)
        done = core.terminated | core.truncated
        seen = np.where(done[:, None], core.final_obs, core.obs)
        alloc, fills = alloc_fill_from_obs(seen, core.config)
        policy.update(alloc, fills)
        for i in np.flatnonzero(done):
            e = count[i]
            if e < n_episodes:
                for key, v in core.episode_info(int(i)).items():
                    out.setdefault(key, np.full((n_episodes, n), np.nan))[e, i] = v
            count[i] += 1
        if done.any():
            policy.reset(done)
        obs = core.obs.copy()
    return out


def learning_curve(n_envs: int = 64, n_episodes: int = 40, seed: int = 0, unit: int = 10,
                   scenario: str = "fixed4") -> dict[str, np.ndarray]:
    """Per-episode dark fill rate of the learner (learning across episodes) vs the oracle and uniform.

    Returns ``{"ganchev", "oracle", "uniform"}`` -> ``(n_episodes, n_envs)`` fill rates,
    same seeds (same markets and liquidity draws) for every policy.
    """
    res = {}
    for name in ("ganchev", "oracle", "uniform"):
        core = DarkPoolCore(n_envs=n_envs, scenario=scenario)
        if name == "ganchev":
            pol = GanchevPolicy(core.config, n_envs, unit=unit)
        elif name == "oracle":
            pol = OraclePolicy(core, unit=unit)
        else:
            pol = UniformPolicy(core.config)
        r = evaluate(pol, core, n_episodes, seed=seed)
        res[name] = r["dark_fill_rate"]
        res[name + "_cost"] = r["cost_bps"]
    return res


def _report(out_png: str = "docs/dark_pool_learning.png") -> None:  # pragma: no cover - docs generator
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for scen in ("stationary", "drifting", "adversarial", "fixed4"):
        for cls in ("lit-only", "uniform", "ganchev-km", "oracle"):
            n_envs, n_ep = 256, 8
            core = DarkPoolCore(n_envs=n_envs, scenario=scen)
            if cls == "lit-only":
                pol = LitOnlyPolicy(core.config)
            elif cls == "uniform":
                pol = UniformPolicy(core.config)
            elif cls == "ganchev-km":
                pol = GanchevPolicy(core.config, n_envs, reset_each_episode=(scen != "fixed4"))
            else:
                pol = OraclePolicy(core)
            r = evaluate(pol, core, n_ep, seed=1000)
            cost = r["cost_bps"].ravel()
            rows.append((scen, cls, float(np.mean(r["dark_fraction"])), float(np.nanmean(r["dark_fill_rate"])),
                         float(cost.mean()), float(cost.std(ddof=1) / math.sqrt(cost.size)),
                         float(np.mean(r["shortfall_bps"]))))
    print("| scenario | policy | dark fraction | dark fill rate | cost (bps/share) | shortfall vs arrival mid (bps) |")
    print("|---|---|---|---|---|---|")
    for s, c, df, fr, m, se, sh in rows:
        fr_s = "-" if math.isnan(fr) else f"{fr:.3f}"
        print(f"| {s} | {c} | {df:.3f} | {fr_s} | {m:.2f} ± {se:.2f} | {sh:.2f} |")

    lc = learning_curve(n_envs=64, n_episodes=40, seed=0)
    ep = np.arange(1, lc["ganchev"].shape[0] + 1)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, col in (("ganchev", "C0"), ("oracle", "k"), ("uniform", "C2")):
        m = np.nanmean(lc[name], axis=1)
        se = np.nanstd(lc[name], axis=1) / math.sqrt(lc[name].shape[1])
        ax[0].plot(ep, m, color=col, label={"ganchev": "Ganchev KM (learning)", "oracle": "oracle",
                                             "uniform": "uniform"}[name])
        ax[0].fill_between(ep, m - 2 * se, m + 2 * se, color=col, alpha=0.2)
        c = lc[name + "_cost"]
        mc = c.mean(axis=1)
        sc = c.std(axis=1) / math.sqrt(c.shape[1])
        ax[1].plot(ep, mc, color=col)
        ax[1].fill_between(ep, mc - 2 * sc, mc + 2 * sc, color=col, alpha=0.2)
    ax[0].set_xlabel("episode")
    ax[0].set_ylabel("dark fill rate (filled / sent)")
    ax[0].legend()
    ax[1].set_xlabel("episode")
    ax[1].set_ylabel("cost (bps of arrival notional)")
    fig.suptitle("LOB-DarkPool-v0, scenario fixed4 (generated liquidity), 64 learners, mean ± 2 s.e.")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print(f"wrote {out_png}")


if __name__ == "__main__":  # pragma: no cover
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", action="store_true", help="print the table of docs/envs/dark_pool.md and write the learning-curve PNG")
    p.add_argument("--png", default="docs/dark_pool_learning.png")
    args = p.parse_args()
    if args.report:
        _report(args.png)

"""Plain-Python reference of the execution environment (parametric dynamics only).

:class:`ExecutionReferenceEnv` re-implements, line by line and without Numba kernels, the
equations of :mod:`lobworld.envs.execution` and of the parametric market in
:mod:`lobworld.envs.dynamics`. It draws its random numbers from the same
:mod:`lobworld.envs.rng` streams (called from Python on a one-env state), so for the same
seed and actions it must reproduce the batched kernel exactly; ``tests/test_execution.py``
checks that parity. It is slow (one Python call per random draw) and meant for tests.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from lobworld.envs.dynamics import ParametricDynamics
from lobworld.envs.execution import (
    N_OBS,
    SESSION_MINUTES,
    ExecutionConfig,
    ExecutionCore,
)
from lobworld.envs.rng import normal, seed_state, uniform

__all__ = ["ExecutionReferenceEnv"]


class ExecutionReferenceEnv(gym.Env):
    """Reference single env; same spaces, rewards and info as :class:`ExecutionEnv`.

    Only ``dynamics="parametric"`` (with one :class:`ParametricParams`) is supported.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: ExecutionConfig | None = None, **overrides: Any):
        cfg = config if config is not None else ExecutionConfig(**overrides)
        if config is not None and overrides:
            cfg = cfg.replace(**overrides)
        dyn = cfg.dynamics
        if dyn == "parametric":
            dyn = ParametricDynamics()
        if not isinstance(dyn, ParametricDynamics) or isinstance(dyn.params, (list, tuple)):
            raise ValueError("ExecutionReferenceEnv supports only parametric dynamics with one ParametricParams")
        self.config = cfg
        self.p = dyn.params
        self.observation_space = ExecutionCore.single_observation_space
        self.action_space = ExecutionCore.single_action_space
        self.rng = seed_state(None, ExecutionCore.n_streams)
        self._done = True

    # --- market (parametric dynamics, same order of draws) -----------------
    def _market_step(self, q: float, vol_mult: float) -> float:
        p, dt, st = self.p, self.config.dt, self.rng[0]
        z_mid, z_vol, z_spr = normal(st), normal(st), normal(st)
        volume = vol_mult * p.volume_rate * dt * math.exp(p.volume_logsd * z_vol - 0.5 * p.volume_logsd * p.volume_logsd)
        aq = abs(q)
        if p.impact == "sqrt":
            temp = p.sqrt_y * p.sigma * math.sqrt(dt) * math.sqrt(aq / max(volume, 1.0))
        else:
            temp = p.eta * aq / dt
        sgn = 1.0 if q > 0 else (-1.0 if q < 0 else 0.0)
        price = self.mid + sgn * (0.5 * self.spread + temp)
        perm = p.gamma * q
        ret = p.mu * dt + p.sigma * math.sqrt(dt) * z_mid + perm
        new_spread = p.spread * math.exp(p.spread_logsd * z_spr - 0.5 * p.spread_logsd * p.spread_logsd)
        new_spread = max(p.tick, p.tick * math.floor(new_spread / p.tick + 0.5))
        self.mid += ret
        self.spread = new_spread
        self.volume = volume
        self.last_ret = ret
        self.temp = temp
        return price

    def _vol_mult(self, k: int) -> float:
        c = self.config
        if not c.uses_profile:
            return 1.0
        x = min(max((self.tod0 + (k + 0.5) * c.dt / 60.0) / SESSION_MINUTES, 0.0), 1.0)
        a, b, cc = c.profile_coef
        return (a * x + b) * x + cc

    def _obs(self) -> np.ndarray:
        c, s0 = self.config, self.s0
        o = np.empty(N_OBS, dtype=np.float32)
        o[:] = [
            self.remaining / c.quantity,
            self.k / c.horizon,
            (self.mid - s0) / s0 * 100.0,
            self.spread / s0 * 1000.0,
            math.sqrt(self.var_ewm) / s0 * 1000.0,
            self.vol_ewm / self.vol_ref,
            self.temp / s0 * 100.0,
            (self.tod0 + self.k * c.dt / 60.0) / SESSION_MINUTES,
        ]
        return o

    # --- gym API ------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = seed_state(seed, ExecutionCore.n_streams)
        c, p = self.config, self.p
        self.mid = p.s0
        self.spread = max(p.spread, p.tick)
        self.volume = p.volume_rate * c.dt
        self.last_ret = 0.0
        self.temp = 0.0
        if c.randomize_start:
            self.tod0 = uniform(self.rng[1]) * (SESSION_MINUTES - c.horizon * c.dt / 60.0)
        else:
            self.tod0 = c.start_minute
        self.s0 = self.mid
        self.remaining = c.quantity
        self.paid = 0.0
        self.var_ewm = p.sigma * p.sigma * c.dt
        self.vol_ref = self.volume if self.volume > 0 else 1.0
        self.vol_ewm = self.vol_ref
        self.fills: list[tuple[float, float]] = []  # (shares, price) of every child order
        self.mkt: list[tuple[float, float]] = []  # (volume, step price pm) of every step
        self.ret_sum = 0.0
        self.pen_sum = 0.0
        self.k = 0
        self._done = False
        return self._obs(), {}

    def step(self, action):
        if self._done:
            raise RuntimeError("ExecutionReferenceEnv: call reset() before step()")
        c, p = self.config, self.p
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not (0.0 <= a <= 1.0):
            raise ValueError(f"action {a} outside [0, 1]")
        s, Q, T, k = c.side_sign, c.quantity, c.horizon, self.k
        rem0 = self.remaining
        n = rem0 if k >= T - 1 else min(a * rem0, rem0)
        norm = 1e4 / (self.s0 * Q)
        mid_prev = self.mid
        price = self._market_step(s * n, self._vol_mult(k))
        pm = 0.5 * (mid_prev + self.mid)
        self.paid += n * price
        rem = 0.0 if (k >= T - 1 or n == rem0) else rem0 - n
        self.remaining = rem
        self.fills.append((n, price))
        self.mkt.append((self.volume, pm))
        bench = c.benchmark
        r = -norm * s * ((price - self.s0) if bench == "is" else (price - pm)) * n
        pen = c.risk_aversion * norm * norm * p.sigma * p.sigma * c.dt * rem * rem
        r -= pen
        al = c.ewm_alpha
        self.var_ewm = (1 - al) * self.var_ewm + al * self.last_ret * self.last_ret
        self.vol_ewm = (1 - al) * self.vol_ewm + al * self.volume
        self.k = k + 1
        done = rem == 0.0
        self.ret_sum += r
        self.pen_sum += pen
        info: dict[str, Any] = {}
        if done:
            if bench != "is":
                for j in range(self.k, T):
                    mp = self.mid
                    self._market_step(0.0, self._vol_mult(j))
                    self.mkt.append((self.volume, 0.5 * (mp + self.mid)))
            vols = np.array([v for v, _ in self.mkt])
            pms = np.array([m for _, m in self.mkt])
            twap = sum(pms.tolist()) / len(pms)
            mvwap = float(sum((vols * pms).tolist()) / sum(vols.tolist())) if vols.sum() > 0 else twap
            npm = sum(nk * pmk for (nk, _), (_, pmk) in zip(self.fills, self.mkt))
            if bench == "vwap":
                corr = -norm * s * (npm - Q * mvwap)
            elif bench == "twap":
                corr = -norm * s * (npm - Q * twap)
            else:
                corr = 0.0
            r += corr
            self.ret_sum += corr
            ex = Q - rem
            is_bps = s * (self.paid - ex * self.s0) * norm
            bench_px = {"is": None, "vwap": mvwap, "twap": twap}[bench]
            info = {
                "shortfall_bps": is_bps,
                "benchmark_slippage_bps": is_bps if bench_px is None else s * (self.paid - Q * bench_px) * norm,
                "vwap": self.paid / ex,
                "market_vwap": mvwap,
                "market_twap": twap,
                "arrival_price": self.s0,
                "shares_executed": ex,
                "completion": ex / Q,
                "episode_return": self.ret_sum,
                "risk_penalty": self.pen_sum,
                "episode_length": self.k,
            }
            self._done = True
        return self._obs(), float(r), done, False, info

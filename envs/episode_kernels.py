"""The Numba side of :mod:`lobworld.envs.episode`: what a step kernel does where an episode ends.

Kept apart from the host-side tables so that editing those does not change the fingerprint of
every bound kernel (:func:`lobworld.envs.jit.fingerprint` follows these functions' file).
"""

from __future__ import annotations

from numba import njit

__all__ = ["end_episode", "keep_episode", "keep_final_obs"]


@njit(inline="always")
def keep_final_obs(i, obs, final_obs):
    """``final_obs[i] = obs[i]`` (the last observation of the episode env ``i`` just ended)."""
    for c in range(obs.shape[1]):
        final_obs[i, c] = obs[i, c]


@njit(inline="always")
def keep_episode(i, ep, ep_done):
    """``ep_done[i, :k] = ep[i]`` with ``k = ep.shape[1]`` (``ep_done`` may have more columns,
    which the caller fills)."""
    for c in range(ep.shape[1]):
        ep_done[i, c] = ep[i, c]


@njit(inline="always")
def end_episode(i, obs, final_obs, ep, ep_done):
    """:func:`keep_final_obs` and :func:`keep_episode` for env ``i``."""
    keep_final_obs(i, obs, final_obs)
    keep_episode(i, ep, ep_done)

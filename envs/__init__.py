"""Batched Numba simulation core and the lobworld environments."""

from lobworld.envs import jit as _jit

_jit.install_cache_guard()  # first: before any module below decorates an @njit(cache=True) function

from lobworld.envs.core import (  # noqa: E402
    ActionError,
    BatchedCore,
    LOBEnv,
    LOBSB3VecEnv,
    LOBVectorEnv,
    make_sb3_vec_env,
)

__all__ = ["ActionError", "BatchedCore", "LOBEnv", "LOBSB3VecEnv", "LOBVectorEnv", "make_sb3_vec_env"]

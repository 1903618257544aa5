"""Batched Numba simulation core and the lobworld environments."""

from lobworld.envs.core import (
    ActionError,
    BatchedCore,
    LOBEnv,
    LOBSB3VecEnv,
    LOBVectorEnv,
    make_sb3_vec_env,
)

__all__ = ["ActionError", "BatchedCore", "LOBEnv", "LOBSB3VecEnv", "LOBVectorEnv", "make_sb3_vec_env"]

"""lobworld: learned limit-order-book world models as fast batched RL environments.

Importing the package registers every environment id with Gymnasium::

    import gymnasium as gym
    import lobworld  # noqa: F401
    env = gym.make("LOB-Execution-v0")

The sub-packages are ``lobworld.envs``, ``lobworld.world_models``,
``lobworld.agents`` and ``lobworld.scenarios``.
"""

from lobworld import envs as _envs  # noqa: F401  first: installs the Numba cache guard (envs/jit.py)
from lobworld._version import __version__
from lobworld._registration import ENV_IDS, register_envs

register_envs()

__all__ = ["__version__", "ENV_IDS", "register_envs"]

"""Gymnasium registration of every lobworld environment id.

Each id has three faces: ``entry_point`` (single ``gym.Env``),
``vector_entry_point`` (native batched ``gymnasium.vector.VectorEnv``) and,
outside Gymnasium, ``lobworld.envs.make_sb3_vec_env(id, n_envs, seed)``.
"""

from __future__ import annotations

import gymnasium as gym

# id -> (module, single-env class, vector-env class, default kwargs)
# The execution ids run on the learned market (the shipped GRU world model) by default; pass
# ``dynamics="parametric"`` for the calibrated Almgren-Chriss market (the classes' own default,
# used by the closed-form tests). Market making (1 s steps) and the dark pool keep their
# class defaults.
_LEARNED = {"dynamics": "learned"}
_SPECS: dict[str, tuple[str, str, str, dict]] = {
    "LOB-Execution-v0": ("lobworld.envs.execution", "ExecutionEnv", "ExecutionVectorEnv", {**_LEARNED}),
    "LOB-VWAP-v0": ("lobworld.envs.execution", "ExecutionEnv", "ExecutionVectorEnv",
                    {"benchmark": "vwap", **_LEARNED}),
    "LOB-TWAP-v0": ("lobworld.envs.execution", "ExecutionEnv", "ExecutionVectorEnv",
                    {"benchmark": "twap", **_LEARNED}),
    "LOB-MarketMaking-v0": ("lobworld.envs.market_making", "MarketMakingEnv", "MarketMakingVectorEnv", {}),
    "LOB-MarketMaking-Discrete-v0": (
        "lobworld.envs.market_making",
        "MarketMakingEnv",
        "MarketMakingVectorEnv",
        {"discrete": True},
    ),
    "LOB-DarkPool-v0": ("lobworld.envs.dark_pool", "DarkPoolEnv", "DarkPoolVectorEnv", {}),
}


def _available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


ENV_IDS: list[str] = []


def _learned_dynamics():
    """The shipped learned market (``dynamics="learned"``)."""
    from lobworld.world_models.learned import LearnedDynamics

    return LearnedDynamics.load_default()


def register_envs() -> list[str]:
    """Register every env id whose module is present; return the registered ids.

    Also registers ``dynamics="learned"`` with the simulation floor's dynamics registry
    (:func:`lobworld.envs.dynamics.register_dynamics`): the envs never import the world
    models themselves.
    """
    from lobworld.envs.dynamics import register_dynamics, registered_dynamics

    if "learned" not in registered_dynamics():
        register_dynamics("learned", _learned_dynamics)
    for env_id, (module, single, vector, kwargs) in _SPECS.items():
        if not _available(module):
            continue
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{module}:{single}",
                vector_entry_point=f"{module}:{vector}",
                kwargs=dict(kwargs),
                disable_env_checker=False,
            )
        if env_id not in ENV_IDS:
            ENV_IDS.append(env_id)
    return list(ENV_IDS)

"""Gymnasium registration of every lobworld environment id.

The ids, their classes and registered keyword arguments come from one table,
:data:`lobworld.envs.spec.ENV_SPECS`. Each id has three faces: ``entry_point``
(single ``gym.Env``), ``vector_entry_point`` (native batched
``gymnasium.vector.VectorEnv``) and, outside Gymnasium,
``lobworld.envs.make_sb3_vec_env(id, n_envs, seed)``.
"""

from __future__ import annotations

import gymnasium as gym

from lobworld.envs import spec as _spec


def _available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


ENV_IDS: list[str] = []
"""The ids registered by :func:`register_envs` (those of the table whose module is present)."""


def _learned_dynamics():
    """The shipped learned market (``dynamics="learned"``)."""
    from lobworld.world_models.learned import LearnedDynamics

    return LearnedDynamics.load_default()


def _parametric_tick_world(config):
    """The Cont-Stoikov-Talreja tick world (``world="parametric"`` of the tick envs)."""
    from lobworld.world_models.tick_world import CSTWorld

    return CSTWorld.from_config(config)


def _learned_tick_world(config):
    """The tick-GRU tick world (``world="learned"`` of the tick envs)."""
    from lobworld.world_models.tick_gru_world import TickGRUWorld

    return TickGRUWorld.from_config(config)


def register_envs() -> list[str]:
    """Register every id of :data:`~lobworld.envs.spec.ENV_SPECS` whose module is present; return the
    registered ids (idempotent: ids already in Gymnasium's registry are left as they are).

    Also registers ``dynamics="learned"`` with the simulation floor's dynamics registry
    (:func:`lobworld.envs.dynamics.register_dynamics`): the envs never import the world
    models themselves.
    """
    from lobworld.envs.dynamics import register_dynamics, registered_dynamics

    if "learned" not in registered_dynamics():
        register_dynamics("learned", _learned_dynamics)
    from lobworld.envs.tick import register_tick_world, registered_tick_worlds

    if "parametric" not in registered_tick_worlds():
        register_tick_world("parametric", _parametric_tick_world)
    if "learned" not in registered_tick_worlds():
        register_tick_world("learned", _learned_tick_world)
    for env_id, s in _spec.ENV_SPECS.items():
        if not _available(s.module):
            continue
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=s.entry_point,
                vector_entry_point=s.vector_entry_point,
                kwargs=dict(s.default_kwargs),
                disable_env_checker=False,
            )
        if env_id not in ENV_IDS:
            ENV_IDS.append(env_id)
    return list(ENV_IDS)

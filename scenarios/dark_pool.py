"""Deprecated location: dark-pool scenarios now live in :mod:`lobworld.envs.dark_pool_scenarios`.

Kept as a re-export for one release so that ``from lobworld.scenarios.dark_pool import ...``
keeps working.
"""

from lobworld.envs.dark_pool_scenarios import (  # noqa: F401
    SCENARIOS,
    DarkPoolScenario,
    VenueSpec,
    get_scenario,
    register_scenario,
)

__all__ = ["VenueSpec", "DarkPoolScenario", "SCENARIOS", "get_scenario", "register_scenario"]

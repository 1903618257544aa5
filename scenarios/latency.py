"""Deprecated location: latency scenarios now live in :mod:`lobworld.envs.latency`.

Kept as a re-export for one release so that ``from lobworld.scenarios.latency import ...``
keeps working.
"""

from lobworld.envs.latency import *  # noqa: F401,F403
from lobworld.envs.latency import (  # noqa: F401
    LAT_DELAY,
    LAT_EXTRA_COST,
    LATENCY_SCENARIOS,
    LatencyDynamics,
    LatencyScenario,
    get_latency_scenario,
    random_latency_sampler,
    register_latency_scenario,
    resolve_latency,
)

"""Scenarios: latency presets and other per-env randomisation of the simulated world."""

from lobworld.envs.latency import (
    LATENCY_SCENARIOS,
    LatencyScenario,
    get_latency_scenario,
    random_latency_sampler,
    register_latency_scenario,
    resolve_latency,
)

__all__ = [
    "LATENCY_SCENARIOS",
    "LatencyScenario",
    "get_latency_scenario",
    "random_latency_sampler",
    "register_latency_scenario",
    "resolve_latency",
]

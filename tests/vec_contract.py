"""Shared helper for the SB3 VecEnv contract tests."""


def rollout(venv, seed, actions):
    """Seed ``venv``, reset it and step through ``actions``.

    Returns ``(observations, steps)``: the reset observation followed by each step's,
    and a ``(rewards, dones, infos)`` tuple per step.
    """
    venv.seed(seed)
    obs = [venv.reset()]
    steps = []
    for a in actions:
        o, r, d, infos = venv.step(a)
        obs.append(o)
        steps.append((r, d, infos))
    return obs, steps

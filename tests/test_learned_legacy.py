"""The legacy impact channel (``impact="gru"``) lives in its own class, per env only.

``LearnedDynamics`` runs the square-root channel only; ``LegacyGRUImpactDynamics`` keeps the old
channel (the agent's flow in the GRU's control) with the same numbers as before it moved: the
values below are the rollout of the shipped models with the old ``LearnedDynamics(impact="gru")``.
"""

from __future__ import annotations

import numpy as np
import pytest

from lobworld.envs.execution import ExecutionCore
from lobworld.world_models.learned import (
    DEFAULT_CHECKPOINT,
    Q_IMODE,
    Q_TRACK,
    LearnedDynamics,
    LegacyGRUImpactDynamics,
    rollout,
)

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")
W = DEFAULT_CHECKPOINT.parent
Q = np.where(np.arange(30) % 3 == 0, 500.0, -200.0)  # buy 500, sell 200, sell 200, ... shares per step


def test_learned_dynamics_rejects_the_legacy_mode_and_names_its_class():
    with pytest.raises(ValueError, match="LegacyGRUImpactDynamics"):
        LearnedDynamics(W / "bar_gru_60s.npz", impact="gru")
    with pytest.raises(ValueError, match="must be 'sqrt' or 'gru'"):
        LearnedDynamics(W / "bar_gru_60s.npz", impact="linear")


def test_legacy_class_has_no_batch_kernels_and_its_own_step():
    leg = LegacyGRUImpactDynamics.load_default()
    sq = LearnedDynamics.load_default()
    assert leg.impact == "gru" and leg.batch_step_fn is None and sq.batch_step_fn is not None
    for dt in (1.0, 10.0, 60.0):
        b = leg.bundle(2, dt)
        assert b.batch_step_fn is None and b.batch_reset_fn is None and b.step_fn is leg.step_fn
        assert b.step_fn is not sq.step_fn and b.reset_fn is sq.reset_fn
        assert np.all(b.args[10][:, Q_IMODE] == 0.0) and np.all(b.args[10][:, Q_TRACK] == 1.0)
    assert not ExecutionCore(2, dynamics=leg, horizon=3)._batched


# Pinned outputs of the old impact="gru" mode. vol_27 moved by one ulp (...363 -> ...364) when the
# learned kernels switched to the shared lobworld.envs.fastmath.tanh (within 4 ulp of math.tanh).
@pytest.mark.parametrize("name,dt,mid_end,mid_27,vol_end,vol_27", [
    ("bar_gru_60s", 60.0, 577.5799999999998, 577.1100000000001, 2462.810463670292, 825.8541193025364),
    ("bar_gru_10s", 10.0, 579.365, 579.13, None, None),
    ("bar_gru_1s", 1.0, 579.0449999999998, 579.12, None, None),
])
def test_legacy_rollout_is_bit_identical_to_the_old_impact_gru_mode(name, dt, mid_end, mid_27, vol_end, vol_27):
    mids, vols = rollout(LegacyGRUImpactDynamics(W / f"{name}.npz"), 3, 30, dt, seed=7, q=Q)
    assert mids[0, -1] == mid_end and mids[2, 7] == mid_27
    if vol_end is not None:
        assert vols[0, -1] == vol_end and vols[2, 7] == vol_27
    # and the square-root channel, on the same draws, leaves the market's own volume alone
    m_sq, v_sq = rollout(LearnedDynamics(W / f"{name}.npz"), 3, 30, dt, seed=7, q=Q)
    m0, v0 = rollout(LearnedDynamics(W / f"{name}.npz"), 3, 30, dt, seed=7)
    assert np.array_equal(v_sq, v0) and not np.array_equal(vols, v0)

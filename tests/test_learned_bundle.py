"""``LearnedDynamics.bundle(n_envs, dt)``: an immutable per-``dt`` bundle; building one changes nothing.

Before, ``args(n_envs, dt)`` switched the instance to the model of ``dt`` (checkpoint, batch
functions, burn-in), so the execution env's kernels were right only when chosen after that call.
Now every per-``dt`` choice lives in the bundle and the envs take their arguments and functions
from it, so bundles (and cores) for several ``dt`` can be built in any order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lobworld.envs.dynamics import DynamicsBundle, ParametricDynamics
from lobworld.envs.execution import ExecutionCore, uses_batch_kernels
from lobworld.envs.latency import LatencyDynamics
from lobworld.world_models.learned import (
    DEFAULT_CHECKPOINT,
    Q_NBURN,
    Q_NSUB,
    LearnedDynamics,
    learned_batch_reset,
    learned_batch_step,
)

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")


@pytest.fixture(scope="module")
def every():
    return LearnedDynamics.load_default()


def test_bundles_follow_their_dt_in_any_order_and_leave_the_dynamics_unchanged(every):
    d = every
    state = (d.checkpoint, d.model_dt, d.burn_in, d.batch_step_fn, d.batch_reset_fn)
    assert d.checkpoint.dt == 60.0 and d.batch_step_fn is learned_batch_step  # the coarsest model
    b1 = d.bundle(2, 1.0)
    b60 = d.bundle(2, 60.0)
    b120 = d.bundle(2, 120.0)
    b10 = d.bundle(2, 10.0)
    b1_again = d.bundle(2, 1.0)
    assert (d.checkpoint, d.model_dt, d.burn_in, d.batch_step_fn, d.batch_reset_fn) == state
    # model, sub-steps and burn-in (5 minutes of the model's bars) per dt
    got = [(b.checkpoint.dt, b.model_dt, b.n_substeps, b.burn_in) for b in (b1, b60, b120, b10)]
    assert got == [(1.0, 1.0, 1, 300), (60.0, 60.0, 1, 5), (60.0, 60.0, 2, 5), (10.0, 10.0, 1, 30)]
    for b in (b1, b60, b120, b10):
        P = b.args[10]
        assert np.all(P[:, Q_NSUB] == b.n_substeps) and np.all(P[:, Q_NBURN] == b.burn_in)
    # the 1 s model (categorical mid head, signed-OFI flow head) has no batch kernels; the others do
    assert b1.batch_step_fn is None and b1.batch_reset_fn is None
    assert b60.batch_step_fn is learned_batch_step and b10.batch_reset_fn is learned_batch_reset
    assert not uses_batch_kernels(b1) and uses_batch_kernels(b60) and uses_batch_kernels(b10)
    # the same dt gives the same arguments whatever was built in between
    assert len(b1.args) == len(b1_again.args) == 12
    assert all(np.array_equal(x, y) for x, y in zip(b1.args, b1_again.args))
    assert b1.args[0] is b1_again.args[0] and b1.args[0] is not b60.args[0]
    assert all(np.array_equal(x, y) for x, y in zip(d.args(2, 10.0), b10.args))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b60.batch_step_fn = None


def test_batch_false_gives_no_batch_functions_for_any_dt():
    d = LearnedDynamics.load_default(batch=False)
    assert d.batch_step_fn is None
    assert all(d.bundle(1, dt).batch_step_fn is None for dt in (1.0, 10.0, 60.0))


def test_execution_cores_take_model_and_kernels_from_their_own_dt(every):
    d = every
    c60 = ExecutionCore(2, dynamics=d, dt=60.0, horizon=3)
    c1 = ExecutionCore(2, dynamics=d, dt=1.0, horizon=3)  # built after the 60 s core, from the same instance
    c10 = ExecutionCore(2, dynamics=d, dt=10.0, horizon=3)
    assert c60._batched and not c1._batched and c10._batched
    assert c60.args[0] is d.bundle(1, 60.0).args[0] and c1.args[0] is d.bundle(1, 1.0).args[0]
    assert c10.args[0] is d.bundle(1, 10.0).args[0]
    assert c60._step_kernel is not c1._step_kernel  # per-env kernels for the 1 s model, batched for 60 s


def test_the_default_bundle_of_other_dynamics_is_their_args_and_functions():
    p = ParametricDynamics()
    b = p.bundle(3, 60.0)
    assert type(b) is DynamicsBundle and b.step_fn is p.step_fn and b.reset_fn is p.reset_fn
    assert b.batch_step_fn is None and b.batch_reset_fn is None
    assert all(np.array_equal(x, y) for x, y in zip(b.args, p.args(3, 60.0)))
    lat = LatencyDynamics(LearnedDynamics.load_default(), latency="none")
    lb = lat.bundle(2, 60.0)
    assert lb.step_fn is lat.step_fn and lb.batch_step_fn is None and len(lb.args) == 2 + 12

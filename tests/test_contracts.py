"""The faces' contracts side by side with the reference implementations.

* Gymnasium vector face (:class:`LOBVectorEnv`) against :class:`gymnasium.vector.SyncVectorEnv`
  with ``autoreset_mode=SAME_STEP`` over the single envs, for every registered id and for a tiny
  exact env: observations, rewards, flags and the infos (``final_obs`` / ``final_info`` as a dict
  of arrays with ``_key`` masks), dtypes included.
* SB3 face (:class:`LOBSB3VecEnv`) attribute API against ``DummyVecEnv``: ``indices`` honoured by
  ``get_attr`` / ``set_attr`` / ``env_method``.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv

import lobworld
from lobworld.envs.core import LOBEnv, LOBSB3VecEnv, LOBVectorEnv, VecAttributeError, batch_infos
from toy_core import ToyCore, ToyEnv, ToyVectorEnv
from vec_contract import assert_infos_equal, assert_matches_sync, batch_actions

N = 3


def _sync(make, n=N):
    return SyncVectorEnv([make for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)


# ------------------------------------------------------------------ Gymnasium vector face
@pytest.mark.slow  # compiles every registered id's kernels (minutes on a loaded 2-core machine)
@pytest.mark.parametrize("env_id", list(lobworld.ENV_IDS))
def test_vector_face_matches_sync_vector_env(env_id):
    kw = {"horizon": 8}
    native = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kw)
    sync = _sync(lambda: gym.make(env_id, **kw))
    assert native.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert sync.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    actions = batch_actions(native.single_action_space, N, 200, seed=3)
    ends = assert_matches_sync(native, sync, 11, actions, stop=lambda t, e: e >= 2 * N and t >= 20)
    assert ends >= 2 * N


def test_toy_final_info_is_a_dict_of_arrays_with_masks():
    vec = ToyVectorEnv(num_envs=3, horizon=2, limit=1e9)
    vec.reset(seed=0)
    _, _, _, _, infos = vec.step(np.zeros((3, 1), np.float32))
    assert infos == {}
    _, _, term, trunc, infos = vec.step(np.zeros((3, 1), np.float32))
    assert trunc.all() and not term.any()
    fi = infos["final_info"]
    assert set(fi) == {"episode_length", "_episode_length"}
    assert fi["episode_length"].dtype == np.int64 and fi["episode_length"].tolist() == [2, 2, 2]
    assert fi["_episode_length"].dtype == np.bool_ and fi["_episode_length"].all()
    assert infos["_final_info"].tolist() == [True] * 3 and infos["_final_obs"].tolist() == [True] * 3
    assert infos["final_obs"].dtype == object and [o[0] for o in infos["final_obs"]] == [2.0] * 3


def test_toy_partial_ends_match_sync_vector_env():
    """Envs ending at different steps (terminated by the limit, truncated by the horizon)."""
    kw = dict(horizon=6, limit=1.5)
    acts = batch_actions(ToyCore.single_action_space, 4, 60, seed=1)
    ends = assert_matches_sync(ToyVectorEnv(num_envs=4, **kw), _sync(lambda: ToyEnv(**kw), 4), 5, acts)
    assert ends > 8


class _RichCore(ToyCore):
    """Toy core whose episode info has an int, a float, a string, an array and a nested dict,
    and keys that only some episodes have (the general, non-columnar path)."""

    def episode_info(self, i):
        n = int(self.ep_len[i])
        info = {"episode_length": n, "half": 0.5 * n, "tag": f"len{n}",
                "vec": np.array([n, 2 * n], np.float32), "stats": {"len": n, "odd": bool(n % 2)}}
        if n % 2:
            info["odd_only"] = np.float32(n)
        return info


class _RichEnv(LOBEnv):
    core_cls = _RichCore


class _RichVectorEnv(LOBVectorEnv):
    core_cls = _RichCore


def test_general_infos_match_sync_vector_env():
    kw = dict(horizon=5, limit=1.2)
    acts = batch_actions(ToyCore.single_action_space, 4, 60, seed=2)
    seen = {}

    class Spy(_RichVectorEnv):
        def step(self, a):
            out = super().step(a)
            seen.update(out[4].get("final_info", {}))
            return out

    ends = assert_matches_sync(Spy(num_envs=4, **kw), _sync(lambda: _RichEnv(**kw), 4), 9, acts)
    assert ends > 8 and {"odd_only", "_odd_only", "stats", "tag", "vec"} <= set(seen)
    assert seen["tag"].dtype == object and seen["vec"].shape == (4, 2)


def test_batch_infos_by_hand():
    got = batch_infos(4, [1, 3], [{"a": 2, "s": {"x": 1.5}}, {"a": 5, "b": True}])
    want = {"a": np.array([0, 2, 0, 5]), "_a": np.array([False, True, False, True]),
            "s": {"x": np.array([0.0, 1.5, 0.0, 0.0]), "_x": np.array([False, True, False, False])},
            "_s": np.array([False, True, False, False]),
            "b": np.array([False, False, False, True]), "_b": np.array([False, False, False, True])}
    assert_infos_equal(got, want)


# ------------------------------------------------------------------ SB3 attribute API
def _pair(n=4):
    return LOBSB3VecEnv(ToyCore(n_envs=n)), DummyVecEnv([lambda: ToyEnv() for _ in range(n)])


def _both(native, dummy, call):
    """``call(venv)`` on both; equal results, or the same exception type from both."""
    res = []
    for venv in (native, dummy):
        try:
            res.append(("ok", call(venv)))
        except Exception as exc:  # noqa: BLE001 - compared below
            res.append(("raised", type(exc)))
    assert res[0] == res[1], res
    return res[0]


def test_set_attr_for_some_envs_only_matches_dummy():
    native, dummy = _pair()
    for v in (native, dummy):
        v.set_attr("flag", 7, indices=[3])
    assert _both(native, dummy, lambda v: v.get_attr("flag", indices=[3])) == ("ok", [7])
    assert _both(native, dummy, lambda v: v.get_attr("flag", indices=3)) == ("ok", [7])
    assert _both(native, dummy, lambda v: v.get_attr("flag", indices=[0]))[0] == "raised"  # env 0 has none
    assert _both(native, dummy, lambda v: v.get_attr("flag"))[0] == "raised"
    for v in (native, dummy):
        v.set_attr("flag", 1)
        v.set_attr("flag", 9, indices=[0, 2])
    assert _both(native, dummy, lambda v: v.get_attr("flag")) == ("ok", [9, 1, 9, 1])
    assert _both(native, dummy, lambda v: v.get_attr("flag", indices=[2, 1])) == ("ok", [9, 1])
    assert _both(native, dummy, lambda v: v.get_attr("render_mode", indices=[1, 3])) == ("ok", [None, None])
    assert _both(native, dummy, lambda v: v.env_is_wrapped(gym.Wrapper, indices=[0, 1])) == ("ok", [False, False])


def test_env_method_of_a_per_env_callable_matches_dummy():
    native, dummy = _pair()
    for v in (native, dummy):
        v.set_attr("hello", lambda x, k=1: ("a", x * k), indices=[1])
        v.set_attr("hello", lambda x, k=1: ("b", x + k), indices=[2])
    assert _both(native, dummy, lambda v: v.env_method("hello", 3, k=2, indices=[2, 1])) == \
        ("ok", [("b", 5), ("a", 6)])
    assert _both(native, dummy, lambda v: v.env_method("hello", 3, indices=[0]))[0] == "raised"
    assert _both(native, dummy, lambda v: v.env_method("no_such_method"))[0] == "raised"


def test_set_attr_of_a_batch_attribute_for_one_env_does_not_change_the_others():
    native = LOBSB3VecEnv(ToyCore(n_envs=4))
    with pytest.raises(VecAttributeError, match="horizon.*shared by all 4 envs"):
        native.set_attr("horizon", 2, indices=[3])
    assert native.get_attr("horizon") == [5] * 4 and native.core.horizon == 5
    native.set_attr("horizon", 2, indices=[0, 1, 2, 3])  # every env: the core (the kernels read it)
    assert native.core.horizon == 2 and native.get_attr("horizon", indices=[1]) == [2]
    with pytest.raises(IndexError):
        native.get_attr("horizon", indices=[4])


def test_env_method_per_env_and_batch_methods():
    native = LOBSB3VecEnv(ToyCore(n_envs=3, horizon=1, limit=1e9))
    native.seed(0)
    native.reset()
    native.step(np.zeros((3, 1), np.float32))
    assert native.env_method("episode_info", indices=[2, 0]) == [{"episode_length": 1}] * 2
    calls = []
    real_reset = native.core.reset
    native.core.reset = lambda *a: calls.append(a) or real_reset(*a)
    assert native.env_method("reset") == [None, None, None]
    assert len(calls) == 1  # one batch reset resets each env once, as DummyVecEnv's per-env calls do
    with pytest.raises(VecAttributeError, match="reset acts on all 3 envs"):
        native.env_method("reset", indices=[1])
    assert len(calls) == 1


# ------------------------------------------------------------------ face-level inputs
from gymnasium import spaces  # noqa: E402

from lobworld.envs.core import (  # noqa: E402
    MAX_SEED,
    ActionError,
    BatchedCore,
    ResetNeeded,
    SeedError,
    UnknownArgumentError,
    make_sb3_vec_env,
)


def _faces(env_id, n=2):
    return [("single", gym.make(env_id).unwrapped),
            ("vector", gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")),
            ("sb3", make_sb3_vec_env(env_id, n_envs=n))]


def _one_action(face, venv, n=2):
    space = venv.action_space if face != "vector" else venv.single_action_space
    a = batch_actions(space, 1 if face == "single" else n, 1)[0]
    return a[0] if face == "single" else a


@pytest.mark.parametrize("env_id", list(lobworld.ENV_IDS))
def test_step_before_reset_raises_on_every_face(env_id):
    for face, venv in _faces(env_id):
        with pytest.raises(ResetNeeded, match="reset"):
            venv.step(_one_action(face, venv))
        assert isinstance(ResetNeeded("x"), RuntimeError) and isinstance(ResetNeeded("x"), LobworldError)


def test_faces_step_after_reset_and_vector_autoreset_keeps_going():
    vec = ToyVectorEnv(num_envs=2, horizon=1, limit=1e9)
    vec.reset(seed=0)
    for _ in range(3):  # every step ends both episodes; same-step autoreset needs no reset()
        vec.step(np.zeros((2, 1), np.float32))
    sb3 = LOBSB3VecEnv(ToyCore(n_envs=2, horizon=1, limit=1e9))
    sb3.reset()
    for _ in range(3):
        sb3.step(np.zeros((2, 1), np.float32))


from lobworld.errors import LobworldError  # noqa: E402


@pytest.mark.parametrize("bad", [2**64 + 5, -1, MAX_SEED + 1, True, 1.5, "5"])
def test_seed_outside_the_supported_range_is_rejected_on_every_face(bad):
    with pytest.raises(SeedError, match="seed"):
        ToyEnv().reset(seed=bad)
    with pytest.raises(SeedError, match="seed"):
        ToyVectorEnv(num_envs=2).reset(seed=bad)
    with pytest.raises(SeedError, match="seed"):
        LOBSB3VecEnv(ToyCore(n_envs=2)).seed(bad)
    with pytest.raises(SeedError, match="seed"):
        ToyCore(n_envs=1).seed_rows([0], [bad])


def test_seed_range_edges():
    assert MAX_SEED == 2**63 - 1
    a = ToyEnv()
    a.reset(seed=MAX_SEED)  # the largest seed is accepted
    o_max = a.step(np.ones(1, np.float32))[0]
    a.reset(seed=MAX_SEED % 2**32)
    assert not np.array_equal(o_max, a.step(np.ones(1, np.float32))[0])  # not wrapped to 32 bits
    with pytest.raises(SeedError, match=r"seed \+ 1 \(env 1 of 2\)"):
        ToyVectorEnv(num_envs=2).reset(seed=MAX_SEED)  # env 1 would need MAX_SEED + 1
    with pytest.raises(SeedError, match="env 1"):
        LOBSB3VecEnv(ToyCore(n_envs=2)).seed(MAX_SEED)
    v = LOBSB3VecEnv(ToyCore(n_envs=2))
    assert v.seed(MAX_SEED - 1) == [MAX_SEED - 1, MAX_SEED]
    v.reset()
    ToyVectorEnv(num_envs=2).reset(seed=[np.uint64(MAX_SEED), None])


class _DiscreteCore(BatchedCore):
    single_observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    single_action_space = spaces.Discrete(3)

    def _alloc_state(self):
        pass


@pytest.mark.parametrize("bad", ["1", ["a", "b"], np.array(["x", "y"]), [None, 1], [1 + 2j, 0]])
def test_non_numeric_discrete_actions_name_the_space(bad):
    core = _DiscreteCore(n_envs=2)
    with pytest.raises(ActionError, match=r"Discrete\(3\)") as exc:
        core.check_actions(bad)
    assert "shape" not in str(exc.value)
    np.testing.assert_array_equal(core.check_actions([2, 0]), [2, 0])


@pytest.mark.parametrize("bad", ["0.5", ["0.5"], np.array([["a"], ["b"]]), [[None], [0.5]]])
def test_non_numeric_box_actions_name_the_space(bad):
    core = ToyCore(n_envs=2) if not isinstance(bad, str) else ToyCore(n_envs=1)
    with pytest.raises(ActionError, match=r"Box\(0\.0, 1\.0, \(1,\), float32\)") as exc:
        core.check_actions(bad)
    assert "shape" not in str(exc.value)


def test_string_action_on_registered_discrete_and_box_envs():
    env = gym.make("LOB-MarketMaking-Discrete-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ActionError, match=r"Discrete\(11\)"):
        env.step("3")
    env = gym.make("LOB-DarkPool-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ActionError, match=r"Box\(0\.0, 1\.0, \(6,\), float32\)"):
        env.step("0.5")


@pytest.mark.parametrize("env_id", list(lobworld.ENV_IDS))
def test_unknown_env_kwarg_lists_the_valid_fields(env_id):
    for make in (lambda: gym.make(env_id, horizonn=5),
                 lambda: gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", horizonn=5),
                 lambda: make_sb3_vec_env(env_id, n_envs=2, horizonn=5)):
        with pytest.raises(UnknownArgumentError, match=r"unknown argument.*'horizonn'.*valid.*\bhorizon\b"):
            make()
    assert issubclass(UnknownArgumentError, TypeError) and issubclass(UnknownArgumentError, LobworldError)


def test_one_name_for_the_order_size_across_envs():
    from lobworld.envs.dark_pool import DarkPoolConfig, DarkPoolEnv
    from lobworld.envs.execution import ExecutionConfig

    assert "quantity" in {f.name for f in __import__("dataclasses").fields(ExecutionConfig)}
    assert "quantity" in {f.name for f in __import__("dataclasses").fields(DarkPoolConfig)}
    new = DarkPoolEnv(quantity=800, horizon=5)
    with pytest.warns(DeprecationWarning, match="order_size.*quantity"):
        old = DarkPoolEnv(order_size=800, horizon=5)
    assert old.core.config == new.core.config and new.core.config.quantity == 800
    with pytest.warns(DeprecationWarning, match="order_size"):
        assert new.core.config.order_size == 800
    with pytest.raises(LobworldError, match="quantity.*order_size.*got both"):
        DarkPoolEnv(order_size=800, quantity=900)
    a = np.full(6, 0.3, np.float32)
    o1, o2 = new.reset(seed=4)[0], old.reset(seed=4)[0]
    np.testing.assert_array_equal(o1, o2)
    for _ in range(5):
        np.testing.assert_array_equal(new.step(a)[0], old.step(a)[0])

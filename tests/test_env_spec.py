"""The env table (lobworld.envs.spec.ENV_SPECS) agrees with everything that reads it.

Registration, entry points, baselines, training defaults, the counterfactual's metric and
direction, the report's units and objective, the latency model, the CLI help and choices,
and the per-family views kept for one release.
"""

import importlib
import json

import gymnasium as gym
import numpy as np
import pytest

import lobworld
from lobworld import _registration
from lobworld.agents import baselines as bl
from lobworld.agents.config import TrainConfig, default_config_path, load_config
from lobworld.cli import build_parser, main
from lobworld.envs import make_sb3_vec_env
from lobworld.envs import spec as S
from lobworld.envs.core import BatchedCore
from lobworld.envs.latency import LatencyDynamics
from lobworld.errors import LobworldError
from lobworld.scenarios.counterfactual import FAMILY_METRICS, _scenario_kwargs, metric_for, run_counterfactual
from lobworld.scenarios.report import FAMILY_STRATEGIES, pre_trade_report

#: a value for each baseline parameter placeholder of the table
PARAM = {"RATE": "0.2", "LAMBDA": "0.01", "GAMMA": "0.02", "PHI": "0.001", "TICKS": "5", "SEED": "3", "LAG": "0.2"}
#: the ids shipped before the table -> their family (what the old substring rule returned)
SHIPPED = {"LOB-Execution-v0": "execution", "LOB-VWAP-v0": "execution", "LOB-TWAP-v0": "execution",
           "LOB-MarketMaking-v0": "market_making", "LOB-MarketMaking-Discrete-v0": "market_making",
           "LOB-DarkPool-v0": "dark_pool"}
#: small episodes for one quick run per family (parametric market)
SMALL = {"execution": {"dynamics": "parametric", "horizon": 5},
         "market_making": {"dynamics": "parametric", "horizon": 20},
         "dark_pool": {"dynamics": "parametric", "horizon": 5}}


def _lobworld_gym_ids() -> set[str]:
    """Ids in Gymnasium's registry whose entry point is a lobworld module."""
    return {k for k, v in gym.registry.items()
            if isinstance(v.entry_point, str) and v.entry_point.startswith("lobworld.")}


def _core(env_id: str, n: int = 3) -> BatchedCore:
    # the tick-level envs have no bar dynamics (their market is a tick world: the real tape by default)
    kw = {} if S.get_spec(env_id).family in ("tick_market_making", "tick_execution") else {"dynamics": "parametric"}
    return make_sb3_vec_env(env_id, n, **kw).core


# ---------------------------------------------------------------------------
# registration and entry points
# ---------------------------------------------------------------------------
def test_every_registered_id_has_a_spec_and_every_spec_is_registered():
    assert lobworld.ENV_IDS == S.env_ids() == list(S.ENV_SPECS)
    assert _lobworld_gym_ids() == set(S.ENV_SPECS)
    for env_id, s in S.ENV_SPECS.items():
        assert s.id == env_id
        g = gym.spec(env_id)
        assert g.entry_point == s.entry_point == f"{s.module}:{s.env_class}"
        assert g.vector_entry_point == s.vector_entry_point == f"{s.module}:{s.vector_class}"
        assert g.kwargs == dict(s.default_kwargs)
    # the registered arguments as they were before the table (execution ids on the learned market)
    assert {i: dict(S.ENV_SPECS[i].default_kwargs) for i in SHIPPED} == {
        "LOB-Execution-v0": {"dynamics": "learned"},
        "LOB-VWAP-v0": {"benchmark": "vwap", "dynamics": "learned"},
        "LOB-TWAP-v0": {"benchmark": "twap", "dynamics": "learned"},
        "LOB-MarketMaking-v0": {},
        "LOB-MarketMaking-Discrete-v0": {"discrete": True},
        "LOB-DarkPool-v0": {},
    }


@pytest.mark.parametrize("env_id", S.env_ids())
def test_entry_points_resolve(env_id):
    s = S.get_spec(env_id)
    mod = importlib.import_module(s.module)
    single, vector = getattr(mod, s.env_class), getattr(mod, s.vector_class)
    assert issubclass(single, gym.Env)
    assert issubclass(vector, gym.vector.VectorEnv)
    assert issubclass(vector.core_cls, BatchedCore) and vector.core_cls is single.core_cls
    assert gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point) is single
    # the SB3 face builds the vector class's core with the registered kwargs
    assert type(_core(env_id, 2)) is vector.core_cls


def test_specs_by_family_partitions_the_table_in_order():
    fams = S.specs_by_family()
    assert list(fams)[:3] == ["execution", "market_making", "dark_pool"]
    assert {i: S.family_of(i) for i in SHIPPED} == SHIPPED
    for fam, specs in fams.items():
        ids = [s.id for s in specs]
        assert ids == [i for i in S.ENV_SPECS if S.ENV_SPECS[i].family == fam]  # table order
    assert sum(len(v) for v in fams.values()) == len(S.ENV_SPECS)
    # one batched core per family
    for specs in fams.values():
        assert len({(s.module, s.vector_class) for s in specs}) == 1


# ---------------------------------------------------------------------------
# baselines: names in the table, implementations in lobworld.agents
# ---------------------------------------------------------------------------
def test_every_family_with_baselines_has_a_builder():
    with_names = {f for f, specs in S.specs_by_family().items() if any(s.baselines for s in specs)}
    assert with_names <= set(bl.BUILDERS) and {"execution", "market_making", "dark_pool"} <= with_names


@pytest.mark.parametrize("env_id", S.env_ids())
def test_baselines_resolve_to_agents_policies(env_id):
    s = S.get_spec(env_id)
    core = _core(env_id)
    assert bl.baseline_names(env_id) == s.baselines
    space = core.single_action_space
    for n in s.baselines:
        base, _, placeholder = n.partition(":")
        assert not placeholder or placeholder in PARAM, f"give PARAM a test value for {n}"
        name = f"{base}:{PARAM[placeholder]}" if placeholder else base
        pol = bl.make_baseline(name.upper(), env_id, core, seed=1)  # names are case-insensitive
        impl = getattr(pol, "policy", getattr(pol, "agent", pol))  # the wrapped agents policy
        assert type(impl).__module__.startswith("lobworld.agents."), (name, type(impl))
        act = np.asarray(pol(core.obs.copy()))
        assert act.shape[0] == core.n_envs
        assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in act), (name, act)
    for name in s.default_strategies:
        assert callable(bl.make_baseline(name, env_id, core))
    with pytest.raises(bl.BaselineError) as exc:
        bl.make_baseline("no-such-baseline", env_id, core)
    assert isinstance(exc.value, LobworldError)
    assert all(n in str(exc.value) for n in s.baselines)


def test_a_name_of_another_family_is_refused():
    core = _core("LOB-MarketMaking-v0")
    with pytest.raises(bl.BaselineError, match="valid names for LOB-MarketMaking-v0"):
        bl.make_baseline("twap", "LOB-MarketMaking-v0", core)


# ---------------------------------------------------------------------------
# training defaults
# ---------------------------------------------------------------------------
def test_training_defaults_are_the_spec_files():
    for env_id, s in S.ENV_SPECS.items():
        p = default_config_path(env_id)
        assert p is not None and p.name == s.train_config
        assert load_config(env_id).env_id == env_id
    # the values the per-id files held before they became one file per family
    ex = load_config("LOB-VWAP-v0")
    assert (ex.learning_rate, ex.gamma, ex.batch_size, ex.n_eval_episodes, ex.log_std_init) == (1e-3, 1.0, 1024, 512,
                                                                                                 -2.0)
    mm = load_config("LOB-MarketMaking-Discrete-v0")
    assert (mm.learning_rate, mm.gamma, mm.batch_size, mm.timesteps, mm.log_std_init) == (3e-4, 0.999, 2048, 500_000,
                                                                                          0.0)
    dp = load_config("LOB-DarkPool-v0")
    assert (dp.n_steps, dp.gamma, dp.normalize) == (128, 0.999, True)
    assert default_config_path("LOB-Unknown-v0") is None
    assert load_config("LOB-Unknown-v0") == TrainConfig(env_id="LOB-Unknown-v0")


# ---------------------------------------------------------------------------
# metrics and direction as the counterfactual and the report compute them
# ---------------------------------------------------------------------------
def test_metric_for_reads_the_spec():
    for env_id, s in S.ENV_SPECS.items():
        infos = {k: np.zeros(2) for k in ("shortfall_bps", "pnl", "cost_bps", *s.secondary_metrics)}
        assert metric_for(infos, env_id=env_id) == (s.metric, s.lower_is_better)
    # an id without a spec: the first table metric its infos have
    assert metric_for({"pnl": np.zeros(2), "cost_bps": np.zeros(2)}, env_id="LOB-Other-v0") == ("pnl", False)
    assert metric_for({"other": np.zeros(2)}) == ("episode_return", False)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(SMALL))
def test_counterfactual_metric_direction_and_secondary_match_the_spec(family):
    s = S.specs_by_family()[family][0]
    strategies = list(s.default_strategies[:2])
    res = run_counterfactual(s.id, strategies, n_paths=4, env_kwargs=SMALL[family], n_boot=20)
    assert (res.metric, res.lower_is_better) == (s.metric, s.lower_is_better)
    for name in strategies:
        infos = res.paths[name].infos
        assert s.metric in infos and np.isfinite(infos[s.metric]).all()
        assert set(s.secondary_metrics) <= set(infos), sorted(infos)
        summ = res.summaries[name]
        assert set(summ.secondary) <= set(s.secondary_metrics)
        x = infos[s.metric]
        assert summ.mean == pytest.approx(x.mean())
        # the objective follows the direction: mean (cost) or -mean (gain), R = 0
        assert summ.objective == pytest.approx(x.mean() if s.lower_is_better else -x.mean())


@pytest.mark.slow
def test_report_units_direction_and_defaults_come_from_the_spec(tmp_path):
    s = S.get_spec("LOB-MarketMaking-v0")  # higher is better: the objective is -mean + R std
    doc = pre_trade_report(None, None, 1, 0.5, tmp_path, n_paths=6, seed=3, scenarios=[], latencies=[],
                           n_boot=20, record=0, plots=False, env_id=s.id)
    assert doc["metric"] == s.metric and doc["lower_is_better"] is s.lower_is_better
    assert doc["metric_units"] == s.metric_units
    base = doc["scenarios"]["normal"]["strategies"]
    assert list(base) == list(s.default_strategies)  # the spec's defaults, in order
    assert doc["scenarios"]["normal"]["benchmark"] == s.default_strategies[0]
    for v in base.values():
        assert v["objective"] == pytest.approx(-v["mean"] + 0.5 * v["std"])
    assert doc["recommendation"]["strategy"] == min(base, key=lambda k: base[k]["objective"])
    md = (tmp_path / "report.md").read_text()
    assert f"`{s.metric}` ({s.metric_units})" in md and f"{s.metric_unit}; mean" in md


# ---------------------------------------------------------------------------
# latency model
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", S.env_ids())
def test_latency_model_matches_the_env(env_id):
    s = S.get_spec(env_id)
    core = _core(env_id, 1)
    assert hasattr(core.config, "latency") == (s.latency == "env")
    kw = {"dynamics": "parametric"}
    if s.latency == "none":
        with pytest.raises(LobworldError, match="has no latency setting"):
            _scenario_kwargs(env_id, "latency:cloud", kw)
        return
    out = _scenario_kwargs(env_id, "latency:cloud", kw)
    if s.latency == "env":
        assert out["latency"].name == "cloud" and out["dynamics"] == "parametric"
    else:
        assert isinstance(out["dynamics"], LatencyDynamics) and out["dynamics"].latency.one_way_us == 2000.0


# ---------------------------------------------------------------------------
# unknown ids
# ---------------------------------------------------------------------------
def test_unknown_id_gives_a_clear_error(capsys):
    with pytest.raises(S.UnknownEnvError) as exc:
        S.get_spec("LOB-Nope-v0")
    assert isinstance(exc.value, LobworldError)
    msg = str(exc.value)
    assert "'LOB-Nope-v0'" in msg and all(i in msg for i in S.ENV_SPECS)
    assert S.find_spec("LOB-Nope-v0") is None and S.family_of("LOB-Nope-v0") is None
    assert bl.env_family("LOB-Nope-v0") is None and bl.baseline_names("LOB-Nope-v0") == ()
    # ids are not matched by substring any more
    assert bl.env_family("My-MarketMaking-Execution-v1") is None
    with pytest.raises(SystemExit) as ex:
        main(["evaluate", "--env", "LOB-Nope-v0", "--strategy", "twap"])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'LOB-Nope-v0'" in err and all(i in err for i in S.ENV_SPECS)


def test_spec_validation_names_the_field():
    good = S.get_spec("LOB-DarkPool-v0")
    with pytest.raises(LobworldError, match="latency must be one of"):
        good.replace(id="LOB-X-v0", latency="sometimes")
    with pytest.raises(LobworldError, match=r"default_strategies \['twap'\] are not among its baselines"):
        good.replace(id="LOB-X-v0", default_strategies=("twap",))
    with pytest.raises(LobworldError, match="summary must be one line"):
        good.replace(id="LOB-X-v0", summary="a\nb")
    with pytest.raises(LobworldError, match="train_config must be a .toml"):
        good.replace(id="LOB-X-v0", train_config="dark_pool.yaml")
    with pytest.raises(TypeError):
        good.default_kwargs["dynamics"] = "learned"  # read-only
    assert good.direction == "lower" and S.get_spec("LOB-MarketMaking-v0").direction == "higher"


# ---------------------------------------------------------------------------
# a new id is one table entry plus its module
# ---------------------------------------------------------------------------
TEST_ID = "LOB-SpecTest-v0"


@pytest.fixture
def test_entry(monkeypatch):
    """A dark-pool id whose name contains no family word, added to the table and registered."""
    entry = S.get_spec("LOB-DarkPool-v0").replace(
        id=TEST_ID, default_kwargs={"horizon": 4, "quantity": 800},
        summary="spec-table test id: a four-step dark-pool order")
    monkeypatch.setitem(S.ENV_SPECS, TEST_ID, entry)
    yield entry
    gym.registry.pop(TEST_ID, None)
    if TEST_ID in _registration.ENV_IDS:
        _registration.ENV_IDS.remove(TEST_ID)


def test_a_new_spec_entry_registers_and_the_cli_lists_it(test_entry, capsys, tmp_path):
    assert TEST_ID in lobworld.register_envs()
    assert gym.spec(TEST_ID).kwargs == {"horizon": 4, "quantity": 800}
    assert _lobworld_gym_ids() == set(S.ENV_SPECS)
    core = make_sb3_vec_env(TEST_ID, 2).core
    assert (core.config.horizon, core.config.quantity) == (4, 800)
    # every reader sees it: baselines, family views, training defaults, help and choices
    assert bl.baseline_names(TEST_ID) == test_entry.baselines and bl.env_family(TEST_ID) == "dark_pool"
    assert default_config_path(TEST_ID).name == "dark_pool.toml"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for cmd in ("train", "evaluate", "counterfactual", "report"):
        env = next(a for a in sub[cmd]._actions if a.dest == "env")
        assert TEST_ID in env.choices
        assert f"{TEST_ID}: spec-table test id" in env.help
        assert TEST_ID in sub[cmd].format_help().replace("\n", " ").replace("  ", "")


@pytest.mark.slow
def test_a_new_spec_entry_runs_end_to_end_from_the_cli(test_entry, capsys):
    lobworld.register_envs()
    assert main(["evaluate", "--env", TEST_ID, "--strategy", "uniform", "--episodes", "4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["env_id"] == TEST_ID and d["metric"] == "cost_bps" and d["lower_is_better"] is True
    assert set(d["strategies"]["uniform"]["secondary"]) <= set(test_entry.secondary_metrics)


# ---------------------------------------------------------------------------
# the per-family names kept for one release
# ---------------------------------------------------------------------------
def test_legacy_family_views_equal_the_values_before_the_table():
    old = ("execution", "market_making", "dark_pool")
    assert {f: bl.FAMILY_NAMES[f] for f in old} == {
        "execution": ("twap", "vwap", "pov", "pov:RATE", "ac", "ac:LAMBDA", "aggressive"),
        "market_making": ("avellaneda-stoikov", "avellaneda-stoikov:GAMMA", "as", "as-symmetric",
                          "cartea-jaimungal", "cartea-jaimungal:PHI", "cj", "fixed-spread", "fixed-spread:TICKS",
                          "random", "random:SEED"),
        "dark_pool": ("uniform", "lit-only", "ganchev-km", "ganchev", "oracle"),
    }
    assert {f: FAMILY_METRICS[f] for f in old} == {
        "execution": ("shortfall_bps", True, ("completion",)),
        "market_making": ("pnl", False, ("inventory_terminal", "inventory_max_abs", "adverse_selection_cost",
                                         "filled_shares_bid", "filled_shares_ask")),
        "dark_pool": ("cost_bps", True, ("dark_fill_rate", "dark_fraction", "forced_fraction", "shortfall_bps")),
    }
    assert {f: FAMILY_STRATEGIES[f] for f in old} == {
        "execution": ("twap", "vwap", "pov", "ac", "aggressive"),
        "dark_pool": ("lit-only", "uniform", "ganchev-km", "oracle"),
        "market_making": ("fixed-spread", "avellaneda-stoikov", "cartea-jaimungal", "random"),
    }
    # what the old substring rule returned for every shipped id
    assert {i: bl.env_family(i) for i in SHIPPED} == SHIPPED
    assert set(bl.FAMILY_NAMES) == set(S.specs_by_family())
    with pytest.raises(TypeError):
        bl.FAMILY_NAMES["execution"] = ()  # a read-only view


def test_markdown_table_lists_every_id():
    md = S.markdown_table()
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(S.ENV_SPECS)
    assert "| `LOB-MarketMaking-v0` | market_making | `pnl` (USD, higher is better) |" in md
    assert "| `LOB-Execution-v0` | execution | `shortfall_bps` (bps, lower is better) | twap, vwap, pov, ac, " \
           "aggressive |" in md


# ---------------------------------------------------------------------------
# the three scenario registries: one naming scheme
# ---------------------------------------------------------------------------
def _regime():
    from lobworld.scenarios.presets import Regime

    return Regime("spec-test", "a test regime", sigma_mult=2.0), "sigma_mult", 3.0


def _latency():
    from lobworld.envs.latency import LatencyScenario

    return LatencyScenario("spec-test", 123.0, 4.0), "one_way_us", 456.0


def _dark_pool():
    from lobworld.envs.dark_pool_scenarios import DarkPoolScenario

    return DarkPoolScenario(name="spec-test", description="a test scenario"), "drift_sd", 0.2


@pytest.mark.parametrize("module, kind, make", [
    ("lobworld.scenarios.presets", "regime", _regime),
    ("lobworld.envs.latency", "latency", _latency),
    ("lobworld.envs.dark_pool_scenarios", "dark_pool", _dark_pool),
])
def test_scenario_registries_share_one_naming(module, kind, make):
    import dataclasses

    m = importlib.import_module(module)
    table = getattr(m, f"{kind.upper()}_SCENARIOS")
    get, register = getattr(m, f"get_{kind}_scenario"), getattr(m, f"register_{kind}_scenario")
    first, field, value = make()
    other = dataclasses.replace(first, **{field: value})
    try:
        assert register(first) is first and get("spec-test") is first and table["spec-test"] is first
        assert register(dataclasses.replace(first)) is not None and get("spec-test") == first  # equal: accepted
        with pytest.raises(ValueError, match="'spec-test' already exists; pass overwrite=True"):
            register(other)
        assert get("spec-test") == first
        assert register(other, overwrite=True) is other and get("spec-test") is other
        with pytest.raises(TypeError):
            register("spec-test")
    finally:
        table.pop("spec-test", None)
    with pytest.raises((KeyError, ValueError)) as exc:
        get("no-such-scenario")
    assert "no-such-scenario" in str(exc.value) and all(n in str(exc.value) for n in table)

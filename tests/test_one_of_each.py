"""One of each (issue 18, item 8): session constants, field checks, replace(), the fast maths, the
TOML config reader and the scenario registries each exist once and are shared."""

import math
import warnings

import numpy as np
import pytest

from lobworld import _checks
from lobworld._config import Replaceable, from_mapping, read_toml
from lobworld.errors import LobworldError


class _E(LobworldError):
    pass


# ---------------------------------------------------------------------------- session constants
def test_session_constants_are_one_set_read_everywhere():
    from lobworld.world_models import calibration
    from lobworld.world_models.data import events, session
    from lobworld.world_models.fidelity import samples

    assert (session.SESSION_OPEN_S, session.SESSION_CLOSE_S) == (9.5 * 3600, 16 * 3600)
    assert session.SESSION_SECONDS == 23_400.0 == session.SESSION_LENGTH_S
    assert session.SESSION_MINUTES == 390.0
    assert calibration.SESSION_SECONDS is session.SESSION_SECONDS
    assert samples.SESSION_SECONDS is session.SESSION_SECONDS
    assert events.SESSION_OPEN_S is session.SESSION_OPEN_S and events.SESSION_LENGTH_S is session.SESSION_SECONDS


# ---------------------------------------------------------------------------- field checks
@pytest.mark.parametrize("fn, bad, msg", [
    (_checks.finite, float("nan"), "X.a must be a finite number, got nan"),
    (_checks.finite, "1", "X.a must be a finite number, got '1'"),
    (_checks.positive, 0.0, "X.a must be a finite number > 0, got 0.0"),
    (_checks.positive, math.inf, "X.a must be a finite number > 0, got inf"),
    (_checks.non_negative, -1e-300, "X.a must be a finite number >= 0, got -1e-300"),
    (_checks.non_negative, True, "X.a must be a finite number >= 0, got True"),
    (_checks.integer, 0, "X.a must be an int >= 1, got 0"),
    (_checks.integer, 2.0, "X.a must be an int >= 1, got 2.0"),
    (_checks.integer, False, "X.a must be an int >= 1, got False"),
])
def test_checks_raise_the_callers_error_with_the_documented_message(fn, bad, msg):
    with pytest.raises(_E) as exc:
        fn("X.a", bad, error=_E)
    assert str(exc.value) == msg


def test_checks_return_the_value_and_accept_numpy_scalars():
    assert _checks.positive("a", np.float32(0.5), error=_E) == np.float32(0.5)
    assert _checks.non_negative("a", np.int64(0), error=_E) == 0
    assert _checks.integer("a", np.int16(3), error=_E, minimum=3) == 3
    assert _checks.finite("a", -7, error=_E) == -7
    assert not _checks.is_number(np.bool_(True)) and not _checks.is_number(None) and _checks.is_number(np.float64(1))


def test_check_units_words_and_ranges():
    with pytest.raises(_E, match=r"^L\.us must be a finite number >= 0 \(microseconds\), got -1$"):
        _checks.non_negative("L.us", -1, error=_E, unit="microseconds")
    with pytest.raises(_E, match=r"^dt must be a positive number of seconds, got 0$"):
        _checks.positive("dt", 0, error=_E, what="a positive number of seconds")
    assert _checks.in_range("p", 1.0, 0.0, 1.0, lo_open=True, error=_E) == 1.0
    assert _checks.in_range("p", 0.0, 0.0, 1.0, hi_open=True, error=_E) == 0.0
    for v, kw, text in [(0.0, dict(lo_open=True), "p must be in (0, 1], got 0.0"),
                        (1.0, dict(hi_open=True), "p must be in [0, 1), got 1.0"),
                        (1.5, {}, "p must be in [0, 1], got 1.5"),
                        (float("nan"), {}, "p must be in [0, 1], got nan")]:
        with pytest.raises(_E) as exc:
            _checks.in_range("p", v, 0.0, 1.0, error=_E, **kw)
        assert str(exc.value) == text


def test_the_modules_keep_their_messages_through_the_helpers():
    from lobworld.envs.dark_pool_scenarios import DarkPoolScenario, DarkPoolScenarioError, VenueSpec
    from lobworld.envs.dynamics import DynamicsError, ParametricDynamics, ParametricParams
    from lobworld.envs.latency import LatencyDynamics, LatencyError, LatencyScenario
    from lobworld.scenarios.presets import Regime, RegimeError

    cases = [
        (lambda: ParametricParams(sigma=float("nan")), DynamicsError, "ParametricParams.sigma must be finite, got nan"),
        (lambda: ParametricParams(eta=-1.0), DynamicsError, "ParametricParams.eta must be >= 0, got -1.0"),
        (lambda: ParametricDynamics().args(4, 0.0), DynamicsError, "dt must be a positive number of seconds, got 0.0"),
        (lambda: LatencyScenario("x", -2.0), LatencyError,
         "LatencyScenario.one_way_us must be a finite number >= 0 (microseconds), got -2.0"),
        (lambda: LatencyDynamics("parametric", "none", adverse_bps_per_s=math.nan), LatencyError,
         "LatencyDynamics.adverse_bps_per_s must be a finite number >= 0, got nan"),
        (lambda: VenueSpec(scale=0.0), DarkPoolScenarioError, "VenueSpec.scale must be a finite number > 0, got 0.0"),
        (lambda: DarkPoolScenario(drift_sd=-0.1), DarkPoolScenarioError,
         "DarkPoolScenario.drift_sd must be a finite number >= 0, got -0.1"),
        (lambda: DarkPoolScenario(pressure_rate=0.0), DarkPoolScenarioError,
         "DarkPoolScenario.pressure_rate must be in (0, 1], got 0.0"),
        (lambda: Regime("r", "d", sigma_mult=math.inf), RegimeError, "Regime.sigma_mult must be a finite number >= 0, got inf"),
    ]
    for make, cls, text in cases:
        with pytest.raises(cls) as exc:
            make()
        assert str(exc.value) == text


# ---------------------------------------------------------------------------- replace()
def test_one_replace_validates_the_copy():
    from lobworld.agents.config import ConfigError, TrainConfig
    from lobworld.envs.dark_pool_scenarios import DarkPoolScenario, DarkPoolScenarioError, VenueSpec
    from lobworld.envs.dynamics import DynamicsError, ParametricParams
    from lobworld.scenarios.presets import Regime, RegimeError
    from lobworld.world_models.training import TrainingError, WorldModelTrainConfig

    cases = [(ParametricParams(), "sigma", 0.5, -1.0, DynamicsError),
             (DarkPoolScenario(), "drift_sd", 0.2, -1.0, DarkPoolScenarioError),
             (VenueSpec(), "scale", 7.0, 0.0, DarkPoolScenarioError),
             (Regime("r", "d"), "volume_mult", 2.0, -1.0, RegimeError),
             (TrainConfig(), "n_envs", 8, 0, ConfigError),
             (WorldModelTrainConfig(), "hidden", 4, 0, TrainingError)]
    for cfg, field, good, bad, err in cases:
        assert isinstance(cfg, Replaceable)
        new = cfg.replace(**{field: good})
        assert getattr(new, field) == good and type(new) is type(cfg) and new is not cfg
        assert getattr(cfg, field) != good  # the original is untouched
        with pytest.raises(err, match=field):
            cfg.replace(**{field: bad})
        with pytest.raises(TypeError):
            cfg.replace(no_such_field=1)


# ---------------------------------------------------------------------------- fast maths
def test_the_learned_kernels_use_the_floors_fast_maths():
    from lobworld.envs import fastmath
    from lobworld.world_models.learned import fastmath as learned_fastmath

    assert learned_fastmath._tanh is fastmath.tanh and learned_fastmath._exp is fastmath.exp
    assert learned_fastmath._sigmoid is fastmath.sigmoid and learned_fastmath._clamp is fastmath.clamp


def _ulps(got, want):
    return np.array([abs(g - w) / math.ulp(abs(w)) if w != 0 else (0.0 if g == 0 else math.inf)
                     for g, w in zip(got, want)])


def test_the_one_tanh_is_within_4_ulp_of_math_tanh_and_vectorisable():
    from numba import njit

    from lobworld.envs.fastmath import expm1_neg, tanh

    @njit
    def apply(x, t, e):
        for i in range(x.shape[0]):
            t[i] = tanh(x[i])
            e[i] = expm1_neg(-abs(x[i]))

    rng = np.random.default_rng(5)
    x = np.concatenate([np.linspace(-25.0, 25.0, 40001), rng.normal(0.0, 3.0, 40000), rng.uniform(-1e-3, 1e-3, 20000),
                        np.geomspace(1e-300, 30.0, 4000), -np.geomspace(1e-300, 30.0, 4000),
                        [0.1732, 0.17275000000000063, 0.3466, 0.5405, 800.0, -800.0]])
    t, e = np.empty_like(x), np.empty_like(x)
    apply(x, t, e)
    want = np.array([math.tanh(v) for v in x])
    assert _ulps(t, want).max() <= 4.0  # the market-making kernel's bound against math.tanh
    assert np.max(np.abs(t - np.tanh(x))) < 1e-15 and np.all(np.abs(t) <= 1.0)
    assert _ulps(e, np.array([math.expm1(-abs(v)) for v in x])).max() <= 2.0
    assert tanh(20.0) == 1.0 and tanh(-20.0) == -1.0 and tanh(0.0) == 0.0 and tanh(1e-300) == 1e-300
    assert math.isnan(tanh(float("nan")))
    # one fixed case by hand: tanh(0.5) = (e - 1) / (e + 1) with e = exp(1)
    assert abs(tanh(0.5) - (math.e - 1.0) / (math.e + 1.0)) <= 2 * math.ulp(0.46)


# ---------------------------------------------------------------------------- config readers
def test_both_config_readers_give_the_same_unknown_key_error(tmp_path):
    from lobworld.agents.config import ConfigError
    from lobworld.agents.config import load_config as load_rl
    from lobworld.world_models.training import TrainingError, load_world_model_config

    f = tmp_path / "c.toml"
    f.write_text("zeta = 1\nalpha = 2\n")
    with pytest.raises(ConfigError) as rl:
        load_rl("LOB-Execution-v0", f)
    with pytest.raises(TrainingError) as wm:
        load_world_model_config(f)
    rl_msg, wm_msg = str(rl.value), str(wm.value)
    assert rl_msg.startswith(f"{f}: unknown key(s) ['alpha', 'zeta']; known: [")
    assert wm_msg.startswith(f"config file {f}: unknown key(s) ['alpha', 'zeta']; known: [")
    f.write_text("x = [\n")
    for load, cls in ((lambda: load_rl("LOB-Execution-v0", f), ConfigError), (lambda: load_world_model_config(f),
                                                                               TrainingError)):
        with pytest.raises(cls, match=": not valid TOML: "):
            load()


def test_from_mapping_coerces_checks_types_and_prefixes_validation_errors(tmp_path):
    from lobworld.agents.config import ConfigError, TrainConfig

    cfg = from_mapping(TrainConfig, {"learning_rate": 1, "net_arch": [8, 8]}, source="s", error=ConfigError,
                       check_types=True, tuples=("net_arch",))
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float) and cfg.net_arch == (8, 8)
    with pytest.raises(ConfigError, match=r"^s: n_envs must be int, got str 'x'$"):
        from_mapping(TrainConfig, {"n_envs": "x"}, source="s", error=ConfigError, check_types=True)
    with pytest.raises(ConfigError, match=r"^s: n_envs must be a positive integer, got 0$"):
        from_mapping(TrainConfig, {"n_envs": 0}, source="s", error=ConfigError)
    p = tmp_path / "t.toml"
    p.write_text("[train]\nhidden = 3\n")
    assert read_toml(p, error=ConfigError) == {"train": {"hidden": 3}}
    with pytest.raises(FileNotFoundError):
        read_toml(tmp_path / "missing.toml", error=ConfigError)


def test_world_model_config_old_names_are_deprecated_aliases(tmp_path):
    import lobworld.world_models.training as t

    with pytest.warns(DeprecationWarning, match="use WorldModelTrainConfig"):
        old_cls = t.TrainConfig
    with pytest.warns(DeprecationWarning, match="use load_world_model_config"):
        old_load = t.load_config
    assert old_cls is t.WorldModelTrainConfig and old_load is t.load_world_model_config
    p = tmp_path / "c.toml"
    p.write_text('freq = "10s"\ntest_hours = 1\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = t.load_world_model_config(p)
    assert (c.freq, c.test_hours, c.dt) == ("10s", 1.0, 10.0)
    with pytest.raises(AttributeError):
        t.no_such_name  # noqa: B018


# ---------------------------------------------------------------------------- scenario registries
def test_the_three_scenario_tables_are_one_registry_class_and_old_names_resolve():
    from lobworld.envs import dark_pool_scenarios as dp
    from lobworld.envs import latency as lat
    from lobworld.envs.registry import ScenarioRegistry
    from lobworld.scenarios import presets

    for table in (lat.LATENCY_SCENARIOS, dp.DARK_POOL_SCENARIOS, presets.REGIME_SCENARIOS):
        assert isinstance(table, ScenarioRegistry) and isinstance(table, dict)
    assert dp.SCENARIOS is dp.DARK_POOL_SCENARIOS and presets.REGIMES is presets.REGIME_SCENARIOS
    assert dp.get_scenario("fixed4") is dp.get_dark_pool_scenario("fixed4") is dp.SCENARIOS["fixed4"]
    assert presets.get_regime("calm") is presets.get_regime_scenario("calm")
    s = dp.get_scenario("stationary")
    assert dp.get_scenario(s) is s and lat.get_latency_scenario(lat.LATENCY_SCENARIOS["cloud"]).name == "cloud"
    with pytest.raises(dp.DarkPoolScenarioError, match="'stationary' already registered"):
        dp.register_scenario(s.replace())  # the old function still refuses any second registration
    with pytest.raises(lat.UnknownLatencyError, match="unknown latency scenario 'moon'; known: cloud, colocated"):
        lat.get_latency_scenario("moon")
    with pytest.raises(dp.DarkPoolScenarioError, match="unknown dark-pool scenario 'x'; known: adversarial, drifting"):
        dp.get_dark_pool_scenario("x")
    with pytest.raises(presets.RegimeError, match="unknown scenario 'x'; known: calm, illiquid, normal"):
        presets.get_regime("x")


def test_scenario_registry_rules_on_a_fresh_table():
    from dataclasses import dataclass

    from lobworld.envs.registry import ScenarioRegistry

    @dataclass(frozen=True)
    class S:
        name: str
        v: float = 0.0

    reg = ScenarioRegistry("toy", S, error=_E, items=(S("a"), S("b", 1.0)))
    assert list(reg) == ["a", "b"] and reg.lookup("b").v == 1.0
    assert reg.register(S("a")) == S("a")  # an equal one again: accepted
    with pytest.raises(_E, match=r"^toy scenario 'a' already exists; pass overwrite=True to replace it$"):
        reg.register(S("a", 2.0))
    assert reg.register(S("a", 2.0), overwrite=True).v == 2.0 and reg["a"].v == 2.0
    with pytest.raises(_E, match="^toy scenario name must be a non-empty string, got ''$"):
        reg.register(S(""))
    with pytest.raises(TypeError, match="expected a S, got str"):
        reg.register("a")
    with pytest.raises(_E, match=r"^unknown toy scenario \['a'\]; known: a, b$"):
        reg.lookup(["a"])

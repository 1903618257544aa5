"""The tick GRU's time head bound ``TickModelConfig.log_s_max`` (issue #15: a tiny-weight component
with a log sd near the old clip of 4 carried the mean inter-arrival, so generated flow was slow)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lobworld.world_models.tick_model import (  # noqa: E402
    TickGRU, TickModelConfig, TickModelError, TickTrainConfig, _check_model_config,
)


def _net(log_s_max, raw_s):
    cfg = TickModelConfig(hidden=4, embed=3, n_mix=2, level_max=2, log_s_max=log_s_max)
    net = TickGRU(6, 3, cfg)
    with torch.no_grad():
        net.time_head.weight.zero_()
        net.time_head.bias.copy_(torch.tensor([0.0, 0.0, -1.0, 0.5, raw_s, -0.5]))
    return net


def _nll_time(net, y):
    B, T = 1, 1
    feats = torch.zeros(B, T, net.config.hidden + net.config.embed)
    z = torch.zeros(B, T, dtype=torch.long)
    return float(net.nll(feats, torch.full((B, T), y), z, z, z, z)[0].detach())


def _mix(y, sds):
    mus = (-1.0, 0.5)
    return -math.log(sum(0.5 * math.exp(-0.5 * ((y - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
                         for m, s in zip(mus, sds)))


def test_log_s_is_clipped_at_the_bound_and_penalised_in_training():
    y = 0.3
    net = _net(1.0, 3.0)
    net.eval()
    # component 0 has raw log sd 3.0, clipped to 1.0; component 1 log sd -0.5
    assert _nll_time(net, y) == pytest.approx(_mix(y, (math.e, math.exp(-0.5))), rel=1e-5)
    net.train()
    assert _nll_time(net, y) == pytest.approx(_mix(y, (math.e, math.exp(-0.5))) + (3.0 - 1.0) ** 2, rel=1e-5)


def test_default_bound_is_the_old_clip_without_penalty():
    y = -2.0
    net = _net(4.0, 3.0)
    net.train()
    assert _nll_time(net, y) == pytest.approx(_mix(y, (math.exp(3.0), math.exp(-0.5))), rel=1e-5)
    net5 = _net(4.0, 5.0)
    assert _nll_time(net5, y) == pytest.approx(_mix(y, (math.exp(4.0), math.exp(-0.5))), rel=1e-5)


@pytest.mark.parametrize("bad", [4.5, -6.0, True, "1"])
def test_bad_bound_is_refused(bad):
    with pytest.raises(TickModelError, match="log_s_max"):
        _check_model_config(TickModelConfig(log_s_max=bad))


def test_bound_round_trips_through_the_run_config(tmp_path):
    from lobworld.world_models.tick_model import load_tick_config, tick_config_toml

    cfg = TickTrainConfig(model=TickModelConfig(log_s_max=1.0))
    p = tmp_path / "c.toml"
    p.write_text(tick_config_toml(cfg))
    assert load_tick_config(p).model.log_s_max == 1.0
    assert np.isfinite(load_tick_config(p).model.log_s_max)

"""Learned tick model (world_models/tick_model.py): the loss terms against hand-computed values, the
input shift, training lowers the held-out NLL, seeded training is reproducible."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lobworld.world_models.data import load_lobster, sample_lobster_paths  # noqa: E402
from lobworld.world_models.data.events import N_TYPES, TokenConfig, split_masks, tokenize  # noqa: E402
from lobworld.world_models.tick_model import (  # noqa: E402
    TickGRU, TickModelConfig, event_nats, tick_features, train_tick_model,
)

SMALL = TickModelConfig(hidden=16, embed=16, n_mix=2, level_max=8, seq_len=64, batch=8, epochs=2, patience=2)


@pytest.fixture(scope="module")
def hour_tokens():
    ev = load_lobster(*sample_lobster_paths())
    return tokenize(ev, TokenConfig(top_k=2, test_hours=0.25, early_stop_hours=0.125))


def test_features_are_the_previous_event_and_the_current_book(hour_tokens):
    tok = hour_tokens
    x, tg = tick_features(tok, 8)
    assert x.shape == (len(tok), N_TYPES + 5 + 1 + 2 + 2 + 1 + 1)
    np.testing.assert_array_equal(x[1:, :N_TYPES].argmax(1), tok.etype[:-1])
    assert (x[0, :N_TYPES + 5] == 0).all()
    np.testing.assert_allclose(x[1:, N_TYPES + 3], tok.log_dt[:-1])
    np.testing.assert_allclose(x[:, N_TYPES + 5], np.log1p(tok.spread))  # the book before the predicted event
    np.testing.assert_array_equal(tg.side, (tok.side < 0).astype(int))
    np.testing.assert_array_equal(tg.level, np.clip(tok.level, -8, 8) + 8)


def test_loss_terms_hand_computed():
    """All weights zero: every term is the NLL of its head's bias alone, which we write out."""
    cfg = TickModelConfig(hidden=4, embed=3, n_mix=2, level_max=2)
    net = TickGRU(6, 3, cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.time_head.bias[:] = torch.tensor([0.0, math.log(3.0), 0.0, 2.0, 0.0, math.log(0.5)])
        net.type_head.bias[2] = 1.0
        side_b = torch.zeros(2 * N_TYPES)
        side_b[2 * 2 + 1] = 2.0  # type 2: ask favoured
        net.side_head.bias[:] = side_b
        lev_b = torch.zeros(2 * N_TYPES, 5)
        lev_b[2 * 2 + 1, 4] = 3.0  # (type 2, ask): level class 4
        net.level_head.bias[:] = lev_b.reshape(-1)
        net.size_head.bias[:] = torch.zeros(2 * N_TYPES * 3)
    x = torch.zeros(1, 1, 6)
    y = torch.tensor([[0.5]])
    feats, _ = net(x)
    t, ty, sd, lv, sz = (v.item() for v in net.nll(feats, y, torch.tensor([[2]]), torch.tensor([[1]]),
                                                   torch.tensor([[4]]), torch.tensor([[1]])))
    w = np.array([1.0, 3.0]) / 4.0
    dens = w[0] * math.exp(-0.5 * 0.25) / math.sqrt(2 * math.pi) + \
        w[1] * math.exp(-0.5 * ((0.5 - 2.0) / 0.5) ** 2) / (0.5 * math.sqrt(2 * math.pi))
    assert t == pytest.approx(-math.log(dens), rel=1e-5)
    assert ty == pytest.approx(-(1.0 - math.log(4 + math.e)), rel=1e-5)
    assert sd == pytest.approx(-(2.0 - math.log(1 + math.e ** 2)), rel=1e-5)
    assert lv == pytest.approx(-(3.0 - math.log(4 + math.e ** 3)), rel=1e-5)
    assert sz == pytest.approx(math.log(3.0), rel=1e-5)
    # another (type, side) slice does not see those biases
    _, _, sd0, lv0, _ = (v.item() for v in net.nll(feats, y, torch.tensor([[0]]), torch.tensor([[1]]),
                                                   torch.tensor([[4]]), torch.tensor([[1]])))
    assert sd0 == pytest.approx(math.log(2.0), rel=1e-5) and lv0 == pytest.approx(math.log(5.0), rel=1e-5)


def test_training_lowers_held_out_nll_and_is_seeded(hour_tokens):
    tok = hour_tokens.slice(0, 6000)  # 10:00 to about 10:13; the last 750 events held out
    i = np.arange(len(tok))
    train, es, test = i < 4500, (i >= 4500) & (i < 5250), i >= 5250
    x, tg = tick_features(tok, SMALL.level_max)
    torch.manual_seed(SMALL.seed)
    init = TickGRU(x.shape[1], tok.scale.n_bins, SMALL, x[train].mean(0), x[train].std(0) + 1e-3)
    before = event_nats(init, x, tg)[test].sum(1).mean()
    m1, h1 = train_tick_model(tok, train, es, SMALL, log=lambda s: None)
    m2, h2 = train_tick_model(tok, train, es, SMALL, log=lambda s: None)
    after = event_nats(m1, x, tg)[test].sum(1).mean()
    assert after < before - 1.0, (before, after)
    assert h1 == h2
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_and_errors(tmp_path, hour_tokens):
    from lobworld.errors import LobworldError
    from lobworld.world_models.tick_model import TickModelError, load_tick_model, save_tick_model

    tok = hour_tokens
    x, tg = tick_features(tok, SMALL.level_max)
    torch.manual_seed(3)
    net = TickGRU(x.shape[1], tok.scale.n_bins, SMALL, x.mean(0), x.std(0) + 1e-3)
    path = save_tick_model(net, tmp_path / "m.npz", scale=tok.scale, token_config=tok.config, metrics={"a": 1})
    back, meta = load_tick_model(path)
    assert meta["metrics"] == {"a": 1} and meta["scale"]["lot"] == tok.scale.lot
    np.testing.assert_array_equal(event_nats(back, x[:500], _head(tg, 500)), event_nats(net, x[:500], _head(tg, 500)))
    with pytest.raises(TickModelError, match="no such"):
        load_tick_model(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TickModelError, match="not a tick-model checkpoint"):
        load_tick_model(tmp_path / "junk.npz")
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    d.pop("w/gru.weight_hh_l0")
    np.savez(tmp_path / "cut.npz", **d)
    with pytest.raises(TickModelError, match="gru.weight_hh_l0' missing"):
        load_tick_model(tmp_path / "cut.npz")
    d["w/gru.weight_hh_l0"] = np.zeros((3, 3), np.float32)
    np.savez(tmp_path / "bad.npz", **d)
    with pytest.raises(TickModelError, match=r"shape \(3, 3\)"):
        load_tick_model(tmp_path / "bad.npz")
    assert issubclass(TickModelError, LobworldError)


def _head(tg, n):
    from lobworld.world_models.tick_model import TickTargets

    return TickTargets(*(getattr(tg, f)[:n] for f in ("y", "etype", "side", "level", "size")))


@pytest.mark.slow
@pytest.mark.parametrize("name, ticker", [("GOOG_2012-06-21_34200000_57600000_message_10.csv.gz", "GOOG"),
                                          ("AMZN_2012-06-21_34200000_57600000_message_5.csv.gz", "AMZN")])
def test_shipped_model_beats_cst_held_out(shared_data, name, ticker):
    """The shipped tick GRU scores the held-out last 2 hours better than the CST baseline fitted on the same
    training block, in time and in marks, and reproduces the figures stored with it."""
    from lobworld.world_models.tick_model import load_fitted_tick_model
    from lobworld.world_models.tick_parametric import cst_event_nats, fit_cst

    model, meta = load_fitted_tick_model(ticker)
    ev = load_lobster(shared_data / "lobster" / name)
    tok = tokenize(ev, TokenConfig(**meta["token_config"]))
    assert tok.scale.edges == tuple(meta["scale"]["edges"])
    _, _, test = split_masks(tok)
    x, tg = tick_features(tok, model.config.level_max)
    g = event_nats(model, x, tg)[test]
    c = cst_event_nats(fit_cst(ev, size_law="lognormal"), ev, tok, split_masks(tok)[0],
                       level_max=model.config.level_max)[test]
    ok = np.isfinite(c).all(1)
    assert ok.mean() > 0.999
    g, c = g[ok], c[ok]
    assert g.sum(1).mean() == pytest.approx(meta["metrics"]["gru"]["total"], abs=1e-4)
    assert c.sum(1).mean() == pytest.approx(meta["metrics"]["cst"]["total"], abs=1e-6)
    assert g[:, 0].mean() < c[:, 0].mean() - 1.0
    assert g[:, 1:].sum(1).mean() < c[:, 1].mean() - 1.0


def test_clock_switched_off_is_ignored_in_training_and_by_the_simulator(tmp_path):
    """``time_of_day=False``: the clock column's standardisation is (0, OFF_SCALE), so the trained
    model's outputs do not move when the clock does, in torch and in the Numba forward pass that
    reads the checkpoint; with the clock on, they do."""
    from lobworld.world_models.tick_model import OFF_SCALE, save_tick_model
    from lobworld.world_models.tick_sim import pack_tick_weights, tick_forward

    tok = tokenize(load_lobster(*sample_lobster_paths()), TokenConfig(test_hours=0.25, early_stop_hours=0.125))
    tr, es, _ = split_masks(tok)
    x, _ = tick_features(tok, 8)
    x2 = x.copy()
    x2[:, -1] += 0.75  # 75% of a session later
    for clock in (False, True):
        cfg = dataclasses.replace(SMALL, epochs=1, time_of_day=clock)
        model, _ = train_tick_model(tok, tr, es, cfg, log=lambda *a: None)
        model.eval()
        with torch.no_grad():
            a = model(torch.as_tensor(x[:400])[None])[0]
            b = model(torch.as_tensor(x2[:400])[None])[0]
        gap = float((a - b).abs().max())
        if clock:
            assert gap > 1e-3
            continue
        assert float(model.feat_mean[-1]) == 0.0 and float(model.feat_std[-1]) == OFF_SCALE
        assert gap < 1e-6
        w = pack_tick_weights(save_tick_model(model, tmp_path / "m.npz", scale=tok.scale, token_config=tok.config))
        rows = []
        for xx in (x[:200], x2[:200]):
            n = len(xx)
            ho, zo, heads = np.zeros((n, w.hidden)), np.empty((n, w.we.shape[0])), np.empty((n, w.wh.shape[0]))
            tick_forward(np.asarray(xx, np.float64), np.zeros((n, w.hidden)), *w.kernel_args(), ho, zo, heads)
            rows.append(heads)
        assert np.abs(rows[0] - rows[1]).max() < 1e-9


def test_clock_switch_is_checked():
    from lobworld.world_models.tick_model import TickModelError, _check_model_config

    with pytest.raises(TickModelError, match="time_of_day"):
        _check_model_config(TickModelConfig(time_of_day=1))

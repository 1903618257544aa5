"""``lobworld world-model train`` with a ``kind = "tick"`` config (world_models/tick_model.py,
lobworld/cli/world_model_train.py): config round trip and errors, the shipped configs describe the
shipped weights, a tiny run writes TensorBoard scalars and a loadable checkpoint, run-folder refusal
and --overwrite, a stop request keeps the best model so far, the hooks change no number."""

from __future__ import annotations

import dataclasses
import gzip
import json
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lobworld.cli import main  # noqa: E402
from lobworld.world_models.data import load_lobster, sample_lobster_paths  # noqa: E402
from lobworld.world_models.data.events import TokenConfig, split_masks, tokenize  # noqa: E402
from lobworld.world_models.tick_model import (  # noqa: E402
    TERMS, TickModelConfig, TickModelError, TickTrainConfig, config_kind, load_tick_config, load_tick_model,
    tick_config_toml, train_tick_model, train_tick_run,
)

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "world_models" / "configs"
WEIGHTS = pathlib.Path(__file__).resolve().parents[1] / "world_models" / "assets" / "weights"
TINY_MODEL = TickModelConfig(hidden=8, embed=8, n_mix=2, level_max=4, seq_len=16, batch=4, epochs=1, patience=1)
TINY_TOKENS = TokenConfig(top_k=2, test_hours=0.0015, early_stop_hours=0.0015)
N_ROWS = 600


@pytest.fixture(scope="module")
def tiny_day(tmp_path_factory) -> pathlib.Path:
    """The first 600 messages of the shipped GOOG hour (20 seconds; 5.4 s test, 5.4 s early stop) as a LOBSTER file pair."""
    msg, ob = sample_lobster_paths()
    d = tmp_path_factory.mktemp("tiny")
    out = d / "GOOG_2012-06-21_36000000_36200000_message_10.csv"
    for src, dst in ((msg, out), (ob, d / out.name.replace("_message_", "_orderbook_"))):
        with gzip.open(src, "rt") as f:
            lines = [next(f) for _ in range(N_ROWS)]
        dst.write_text("".join(lines))
    return out


def tiny_cfg(tmp_path, **kw) -> pathlib.Path:
    cfg = TickTrainConfig(model=dataclasses.replace(TINY_MODEL, **kw), tokens=TINY_TOKENS, progress=False)
    p = tmp_path / "tick.toml"
    p.write_text(tick_config_toml(cfg))
    return p


def test_config_round_trip(tmp_path):
    cfg = TickTrainConfig(model=TickModelConfig(hidden=32, lr=1e-3, epochs=3, seed=7),
                          tokens=TokenConfig(top_k=3, size_binning="log", test_hours=1.5), tensorboard=False,
                          score_cst=False)
    p = tmp_path / "c.toml"
    p.write_text(tick_config_toml(cfg))
    assert config_kind(p) == "tick"
    assert load_tick_config(p) == cfg
    p2 = tmp_path / "d.toml"
    p2.write_text(tick_config_toml(load_tick_config(p)))
    assert p2.read_text() == p.read_text()


@pytest.mark.parametrize("text, needle", [
    ('kind = "tick"\n[train]\nhiden = 3\n', "'hiden'"),
    ('kind = "tick"\n[tokens]\ntopk = 3\n', "'topk'"),
    ('kind = "tick"\nepochs = 3\n', "'epochs'"),
    ('kind = "tick"\n[train]\nhidden = 0\n', "hidden must be a positive int"),
    ('kind = "tick"\n[train]\ndevice = "tpu"\n', "device"),
    ('kind = "tick"\n[tokens]\nsize_binning = "cubic"\n', "size_binning"),
    ('kind = "tock"\n', "kind must be 'bar' or 'tick'"),
])
def test_config_errors_name_the_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(TickModelError, match=needle) as ei:
        load_tick_config(p)
    assert str(p) in str(ei.value)


def test_bar_config_is_not_a_tick_config():
    p = CONFIGS / "bar_gru_60s.toml"
    assert config_kind(p) == "bar"
    with pytest.raises(TickModelError, match="not a tick-model config"):
        load_tick_config(p)


@pytest.mark.parametrize("ticker", ["goog", "amzn"])
def test_shipped_configs_describe_the_shipped_weights(ticker):
    cfg = load_tick_config(CONFIGS / f"tick_gru_{ticker}.toml")
    with np.load(WEIGHTS / f"tick_gru_{ticker}.npz") as z:
        meta = json.loads(bytes(z["meta"]).decode())
    assert dataclasses.asdict(cfg.model) == {**dataclasses.asdict(TickModelConfig()), **meta["config"]}
    assert dataclasses.asdict(cfg.tokens) == meta["token_config"]
    m = meta["metrics"]
    # every epoch of the config ran, or early stopping ended the run `patience` epochs after the best
    ran, best = m["epochs"], m["best_epoch"]
    assert ran == cfg.model.epochs or (ran < cfg.model.epochs and ran == best + 1 + cfg.model.patience)
    assert f"--config tick_gru_{ticker}.toml" in m["reproduce"]


def test_hooks_change_no_number(tiny_day):
    """With a TensorBoard writer and a progress bar, training gives the same weights bit for bit."""
    from torch.utils.tensorboard import SummaryWriter

    tok = tokenize(load_lobster(tiny_day), TINY_TOKENS)
    tr, es, _ = split_masks(tok)
    cfg = dataclasses.replace(TINY_MODEL, epochs=2, patience=2)
    m1, h1 = train_tick_model(tok, tr, es, cfg, log=lambda s: None)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        w = SummaryWriter(d)
        m2, h2 = train_tick_model(tok, tr, es, cfg, log=lambda s: None, writer=w, progress=True)
        w.close()
    assert h1 == h2 and len(h1) == 2
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k


def _scalars(folder: pathlib.Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {t: [e.value for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_tiny_cli_run_writes_tensorboard_and_checkpoint(tiny_day, tmp_path, capsys):
    cfgp = tiny_cfg(tmp_path)
    out = tmp_path / "run"
    assert main(["world-model", "train", "--config", str(cfgp), "--data", str(tiny_day), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out / 'tick_gru.npz'}")
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metrics.json", "tb", "tick_gru.npz"]
    model, meta = load_tick_model(out / "tick_gru.npz")
    assert meta["config"] == dataclasses.asdict(TINY_MODEL)
    assert meta["token_config"] == dataclasses.asdict(TINY_TOKENS)
    m = meta["metrics"]
    assert m["epochs"] == 1 and m["best_epoch"] == 0 and "interrupted" not in m
    assert m["n_test_events"] > 50 and np.isfinite(m["gru"]["total"]) and np.isfinite(m["cst"]["total"])
    assert m["gru"]["total"] == pytest.approx(sum(m["gru"]["terms"].values()), rel=1e-9)
    assert m["reproduce"] == f"lobworld world-model train --config tick.toml --data {tiny_day.name} --out DIR"
    assert json.loads((out / "metrics.json").read_text())["gru"] == m["gru"]
    assert load_tick_config(out / "config.toml") == load_tick_config(cfgp)
    sc = _scalars(out / "tb")
    want = {"nats/train", "nats/early_stop", "lr", "grad_norm", "step/grad_norm", "step/train_nats", "test/nats"}
    want |= {f"train/{t}" for t in TERMS} | {f"early_stop/{t}" for t in TERMS}
    assert want <= set(sc)
    assert sc["lr"] == [pytest.approx(TINY_MODEL.lr)]
    # the per-factor train nats add up to the total; the early-stop nats are the history's
    assert sum(sc[f"train/{t}"][0] for t in TERMS) == pytest.approx(sc["nats/train"][0], rel=1e-5)
    assert sc["nats/early_stop"][0] == pytest.approx(m["early_stop_nats"], rel=1e-6)
    assert all(g > 0 for g in sc["step/grad_norm"])


def test_out_folder_refused_then_overwritten(tiny_day, tmp_path, capsys):
    cfgp = tiny_cfg(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["world-model", "train", "--config", str(cfgp), "--data", str(tiny_day), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a run (notes.txt)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(args + ["--seed", "3"]) == 2  # still refused
    assert main(args + ["--overwrite"]) == 0
    first = (out / "tick_gru.npz").read_bytes()
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    _, meta = load_tick_model(out / "tick_gru.npz")
    assert meta["config"]["seed"] == 3 and (out / "tick_gru.npz").read_bytes() != first
    assert (out / "notes.txt").read_text() == "mine"  # overwrite deletes only the run's artefacts


def test_cli_needs_one_lobster_file(tiny_day, tmp_path, capsys):
    cfgp = tiny_cfg(tmp_path)
    assert main(["world-model", "train", "--config", str(cfgp), "--data", str(tiny_day), str(tiny_day),
                 "--out", str(tmp_path / "o")]) == 2
    assert "exactly one LOBSTER message file" in capsys.readouterr().err


def test_stop_request_keeps_the_best_so_far(tiny_day, tmp_path, monkeypatch):
    """A stop request (the first SIGINT) after epoch 0 ends the run in epoch 1: epoch 0's model is
    saved and flagged interrupted; before the first epoch ends nothing is saved."""
    import lobworld.world_models.run_folder as rf

    class Stub:
        last = None

        def __init__(self, what):
            self.requested = False
            Stub.last = self

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(rf, "StopOnSigint", Stub)
    cfg = TickTrainConfig(model=dataclasses.replace(TINY_MODEL, epochs=3, patience=3), tokens=TINY_TOKENS,
                          progress=False, tensorboard=False, score_cst=False)

    def stop_after_epoch(line):
        if line.startswith("epoch 0:"):
            Stub.last.requested = True

    res = train_tick_run(tiny_day, cfg, tmp_path / "a", log=stop_after_epoch)
    assert res["interrupted"] is True and res["epochs"] == 1 and "cst" not in res
    _, meta = load_tick_model(tmp_path / "a" / "tick_gru.npz")
    assert meta["metrics"]["interrupted"] is True

    class Early(Stub):
        def __init__(self, what):
            super().__init__(what)
            self.requested = True

    monkeypatch.setattr(rf, "StopOnSigint", Early)
    with pytest.raises(KeyboardInterrupt, match="nothing saved"):
        train_tick_run(tiny_day, cfg, tmp_path / "b", log=lambda s: None)
    assert not (tmp_path / "b" / "tick_gru.npz").exists()

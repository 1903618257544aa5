"""Backtests on the real tape (lobworld.scenarios.backtest, ``lobworld backtest``)."""

import json

import numpy as np
import pandas as pd
import pytest

from lobworld.cli import main
from lobworld.envs import book_kernels as bk
from lobworld.envs.book import Book, BookConfig, Tape
from lobworld.envs.execution import GOOG_ADV
from lobworld.envs.replay import ReplayData
from lobworld.errors import LobworldError
from lobworld.scenarios import backtest as bt
from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths

S = 1_000_000_000
T0 = bt.parse_time("2012-06-21T10:00")


def make_data(bids, asks, rows, depth=5) -> ReplayData:
    """A hand-made day: ``rows`` (t, type, side, price, size); the file book after row 0 is
    ``bids``/``asks`` with row 0 applied, each later row's book is the engine's."""
    tape = Tape.from_rows(rows)
    n = len(tape)
    b = Book(1, BookConfig(depth=depth))
    b.set_book(0, bids, asks, t0=rows[0][0] - 1)
    fpx = np.zeros((n, 2, depth), np.int64)
    fsz = np.zeros((n, 2, depth), np.int64)
    for k in range(n):
        b.run(tape, stop=k + 1)
        for s in range(2):
            for j, (p, q) in enumerate(b.levels(0, s)):
                fpx[k, s, j], fsz[k, s, j] = p, q
    entry = bk.entry_flags(fpx, fsz, tape.side, tape.price, tape.type)
    return ReplayData(tape, fpx, fsz, entry, depth, 0.01, "HAND 2012-06-21 L5")


def fillers(t_from, t_to):
    """Harmless messages (1 share added deep on the bid) every 10 s: the tape keeps going."""
    return [(t, 1, "bid", 9990, 1) for t in range(t_from, t_to, 10 * S)]


@pytest.fixture(scope="module")
def hour():
    return ReplayData.from_events(load_lobster(*sample_lobster_paths()))


# ---------------------------------------------------------------------------------------------
# hand-made tapes
# ---------------------------------------------------------------------------------------------
def test_twap_market_orders_pay_the_prices_they_walk():
    bids, asks = [(10000, 100), (9999, 100)], [(10010, 100), (10011, 200), (10012, 300)]
    rows = [(T0, 1, "bid", 9990, 10), (T0 + 5 * S, 1, "ask", 10010, 50)] + fillers(T0 + 13 * S, T0 + 70 * S)
    data = make_data(bids, asks, rows)
    po = bt.ParentOrder("buy", 300, T0 + S, horizon_s=20, interval_s=10)
    res = bt.run_execution(data, [po], ["twap"], ["none"])
    f = res.fills[0]
    # decision 0 (T0 + 1 s): 150 shares walk 100 @ 10010 and 50 @ 10011; the 10010 level is then
    # refilled by the tape's submit of 50 at T0 + 5 s (the stream's update replaces the agent's
    # deficit: 150 visible); decision 1 (T0 + 11 s): 150 @ 10010
    assert list(zip(f["t"], f["price"], f["shares"], f["kind"])) == [
        (T0 + S, 10010, 100, "aggressive"), (T0 + S, 10011, 50, "aggressive"),
        (T0 + 11 * S, 10010, 150, "aggressive")]
    r = res.table.iloc[0]
    cost = 100 * 10010 + 50 * 10011 + 150 * 10010
    assert res.book.cash_ticks(0) == -cost
    assert r["executed"] == 300 and r["completion"] == 1.0 and r["aggressive_shares"] == 300
    assert r["avg_price"] == pytest.approx(cost / 300 * 0.01, rel=1e-12)
    assert r["is_bps"] == pytest.approx((cost / 300 - 10005) / 10005 * 1e4, rel=1e-12)  # about 5.16 bps


def test_passive_first_fills_only_after_the_queue_ahead_is_consumed():
    bids, asks = [(10000, 100), (9999, 100)], [(10010, 300), (10011, 200)]
    rows = [(T0, 1, "bid", 9990, 10),
            (T0 + 5 * S, 4, "ask", 10010, 200),  # 300 ahead -> 100
            (T0 + 8 * S, 1, "ask", 10010, 50),  # joins behind the agent
            (T0 + 10 * S, 4, "ask", 10010, 120),  # 100 ahead consumed, the agent gets 20
            (T0 + 14 * S, 4, "ask", 10010, 30)] + fillers(T0 + 20 * S, T0 + 60 * S)  # 30 more
    data = make_data(bids, asks, rows)
    po = bt.ParentOrder("sell", 100, T0 + S, horizon_s=30, interval_s=30)
    res = bt.run_execution(data, [po], ["passive_first"], ["none"])
    f = res.fills[0]
    assert list(zip(f["t"], f["price"], f["shares"], f["kind"])) == [
        (T0 + 10 * S, 10010, 20, "passive"), (T0 + 14 * S, 10010, 30, "passive"),
        (T0 + 31 * S, 10000, 50, "aggressive")]  # the rest: cancelled at T0 + 30 s, swept at the horizon
    r = res.table.iloc[0]
    assert (r["passive_shares"], r["aggressive_shares"], r["completion"]) == (50, 50, 1.0)
    assert r["avg_queue_wait_s"] == pytest.approx((20 * 9 + 30 * 13) / 50)  # live at T0 + 1 s
    assert r["is_bps"] == pytest.approx(0.0, abs=1e-12)  # average 10005 = the arrival mid


def test_latency_changes_the_queue_position():
    bids, asks = [(10000, 100), (9999, 100)], [(10010, 300), (10011, 200)]
    rows = [(T0, 1, "bid", 9990, 10),
            (T0 + S + 10_000_000, 1, "ask", 10010, 100),  # 10 ms after the decision
            (T0 + 5 * S, 4, "ask", 10010, 350)] + fillers(T0 + 20 * S, T0 + 60 * S)
    data = make_data(bids, asks, rows)
    po = bt.ParentOrder("sell", 100, T0 + S, horizon_s=30, interval_s=30)
    res = bt.run_execution(data, [po], ["passive_first"], ["colocated", "retail"])
    # colocated (25 us) is live before the 100-share submit: 300 ahead, 50 of the 350 reach it;
    # retail (50 ms) goes live behind it: 400 ahead, nothing reaches it
    fc, fr = res.fills
    assert list(zip(fc["t"], fc["shares"], fc["kind"]))[0] == (T0 + 5 * S, 50, "passive")
    assert not ((fr["t"] == T0 + 5 * S) & (fr["kind"] == "passive")).any()
    assert res.table["passive_shares"].tolist() == [50, 0]
    assert res.table["completion"].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------------------------------
# the shipped GOOG hour
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hour_run(hour):
    orders = [bt.ParentOrder(side, 1500, bt.parse_time("2012-06-21T10:10"), 300, 10) for side in ("buy", "sell")]
    return bt.run_execution(hour, orders, bt.EXECUTION_STRATEGIES, ["colocated", "retail"], seed=1)


def test_shares_conservation_and_completion(hour_run):
    res = hour_run
    tab, b = res.table, res.book
    assert len(tab) == 2 * 6 * 2
    assert (tab["executed"] == 1500).all() and (tab["completion"] == 1.0).all()
    assert (tab["passive_shares"] + tab["aggressive_shares"] == tab["executed"]).all()
    for i, f in enumerate(res.fills):
        buy = tab["side"].iloc[i] == "buy"
        assert f["shares"].sum() == 1500
        assert b.position(i) == (1500 if buy else -1500)
        assert b.cash_ticks(i) == (-1 if buy else 1) * int((f["price"] * f["shares"]).sum())
        o = b.orders[i]
        assert np.array_equal(o[:, bk.O_QTY], o[:, bk.O_FILLED] + o[:, bk.O_REM] + o[:, bk.O_CXL])
        assert (o[:, bk.O_REM] == 0).all()  # nothing left working after the horizon
    for s in ("twap", "vwap", "pov", "ac", "aggressive"):
        assert (tab.loc[tab["strategy"] == s, "passive_shares"] == 0).all()
    pf = tab[tab["strategy"] == "passive_first"]
    assert (pf["passive_shares"] > 0).all() and (pf["avg_queue_wait_s"] > 0).all()
    assert np.isfinite(tab["is_bps"]).all()


def test_schedules_follow_their_curves(hour_run):
    res = hour_run
    tab = res.table
    # executed shares seen at each decision: twap is X k / N (all at once for aggressive)
    i = int(np.flatnonzero((tab["strategy"] == "twap") & (tab["latency"] == "colocated"))[0])
    p = res.executed_path[i]
    assert p[:30, 1].tolist() == [round(1500 * k / 30) for k in range(30)]
    u = np.linspace(0, 1, 11)
    assert np.allclose(bt._vwap_fraction(T0, 1800, u, (0.0, 0.0, 1.0)), u)  # flat profile: twap
    v = bt._vwap_fraction(bt.parse_time("2012-06-21T15:00"), 1800, u, bt.GOOG_U_PROFILE)
    assert v[-1] == pytest.approx(1.0) and v[5] < 0.5  # volume rises towards the close: back-loaded


def test_determinism_and_independent_lanes(hour):
    po = bt.ParentOrder("sell", 800, bt.parse_time("2012-06-21T10:20"), 120, 10)
    a = bt.run_execution(hour, [po], ["passive_first", "twap"], ["cloud", "retail"], seed=5)
    b = bt.run_execution(hour, [po], ["passive_first", "twap"], ["cloud", "retail"], seed=5)
    pd.testing.assert_frame_equal(a.table, b.table)
    for x, y in zip(a.fills, b.fills):
        pd.testing.assert_frame_equal(x, y)
    # the same preset twice: independent draws (arrival times differ), the same shares
    d = bt.run_execution(hour, [po], ["twap"], ["cloud", "cloud"], seed=5)
    f0, f1 = d.fills
    assert f0["shares"].sum() == f1["shares"].sum() == 800
    assert not np.array_equal(f0["t"].to_numpy(), f1["t"].to_numpy())
    # a lane alone equals the same lane in the batch (env 0 of both: same seed)
    c = bt.run_execution(hour, [po], ["passive_first"], ["cloud"], seed=5)
    pd.testing.assert_frame_equal(c.fills[0], a.fills[0])
    assert np.array_equal(c.book.fill_log(0), a.book.fill_log(0))


def test_market_making_accounts(hour):
    starts = [bt.parse_time("2012-06-21T10:05"), bt.parse_time("2012-06-21T10:30")]
    p = bt.MarketMakingParams(size=100, inventory_limit=500)
    res = bt.run_market_making(hour, starts, bt.MM_STRATEGIES, bt.LATENCY_PRESETS, horizon_s=240, params=p)
    tab, b = res.table, res.book
    assert len(tab) == 2 * 2 * 4
    mids = bt.mid_path(hour)
    for i, r in tab.iterrows():
        f = res.fills[i]
        assert r["bought"] - r["sold"] == r["final_position"] == b.position(i)
        assert r["bid_fills"] + r["ask_fills"] == len(f)
        assert r["bought"] == f.loc[f["side"] == "buy", "shares"].sum()
        mid_end = bt._mid_at(hour, mids, int(r["start"].value) + 240 * S)
        assert r["pnl_usd"] == pytest.approx((b.cash_ticks(i) + b.position(i) * mid_end) * 0.01)
        assert np.abs(res.inventory[i][:, 1]).max() <= p.inventory_limit + p.size
        assert (b.orders[i][:, bk.O_REM] == 0).all()  # quotes cancelled at the end
    assert (tab["bid_fills"] + tab["ask_fills"]).sum() > 0
    pair = bt.paired_latency_table(tab)
    assert set(pair["latency"]) == set(bt.LATENCY_PRESETS) and (pair["windows"] == 2).all()
    base = pair[pair["latency"] == "colocated"]
    assert (base["diff_vs_base"] == 0).all()


def test_bad_inputs(hour):
    with pytest.raises(bt.WindowError, match="start"):
        bt.run_execution(hour, [bt.ParentOrder("sell", 100, bt.parse_time("2012-06-21T14:00"), 600)], ["twap"])
    with pytest.raises(bt.WindowError, match="horizon"):
        bt.run_execution(hour, [bt.ParentOrder("sell", 100, bt.parse_time("2012-06-21T10:50"), 1800)], ["twap"])
    with pytest.raises(bt.UnknownStrategyError, match="strategy.*'twop'"):
        bt.run_execution(hour, [bt.ParentOrder("sell", 100, bt.parse_time("2012-06-21T10:10"), 60)], ["twop"])
    with pytest.raises(bt.UnknownStrategyError, match="strategy"):
        bt.run_market_making(hour, [bt.parse_time("2012-06-21T10:10")], ["twap"])
    with pytest.raises(bt.OrderSizeError, match="quantity"):
        bt.ParentOrder("sell", 0, T0)
    with pytest.raises(bt.OrderSizeError, match="size"):
        bt.MarketMakingParams(size=-5)
    with pytest.raises(bt.BacktestError, match="side"):
        bt.ParentOrder("short", 10, T0)
    with pytest.raises(bt.BacktestError, match="start"):
        bt.parse_time("tomorrow-ish")
    assert issubclass(bt.WindowError, LobworldError) and issubclass(bt.OrderSizeError, LobworldError)


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------
def test_cli_end_to_end(tmp_path, capsys):
    msg = str(sample_lobster_paths()[0])
    out = tmp_path / "bt"
    argv = ["backtest", "--data", msg, "--env", "LOB-Execution-v0", "--strategy", "twap,passive_first", "--side",
            "sell", "--quantity", "500", "--start", "2012-06-21T10:10", "--horizon-min", "1", "--latency", "cloud",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    js = json.loads((out / "summary.json").read_text())
    assert [r["strategy"] for r in js["results"]] == ["twap", "passive_first"]
    assert all(r["executed"] == 500 for r in js["results"])
    assert "| twap | cloud |" in (out / "summary.md").read_text()
    assert len(list((out / "plots").glob("*.png"))) == 2
    assert main(argv) == 2  # refuses the folder that holds a run
    assert "already holds a run" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    mm = tmp_path / "mm"
    assert main(["backtest", "--data", msg, "--env", "LOB-MarketMaking-v0", "--strategy", "fixed_spread",
                 "--start", "10:10", "--horizon-min", "1", "--latency", "all", "--out", str(mm), "--quiet"]) == 0
    js = json.loads((mm / "summary.json").read_text())
    assert [r["latency"] for r in js["results"]] == list(bt.LATENCY_PRESETS)
    assert "paired across windows" in (mm / "summary.md").read_text()
    capsys.readouterr()
    assert main(argv[:5] + ["--strategy", "twop"] + argv[7:-3] + ["--out", str(tmp_path / "x")]) == 2
    assert "strategy" in capsys.readouterr().err
    assert main(argv[:-3] + ["--start", "2012-06-21T15:00", "--out", str(tmp_path / "y")]) == 2
    assert "outside the file's hours" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the full GOOG day
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_goog_day(shared_data):
    lob = shared_data / "lobster"
    data = ReplayData.from_lobster(lob / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz")
    adv = int(data.tape.size[(data.tape.type == 4) | (data.tape.type == 5)].sum())
    assert adv == GOOG_ADV  # visible + hidden executed shares of the day
    po = bt.ParentOrder("sell", adv // 100, bt.parse_time("2012-06-21T14:00"), 1800, 10)
    res = bt.run_execution(data, [po], ["twap", "passive_first"], ["cloud"])
    tab = res.table
    assert (tab["executed"] == adv // 100).all()
    assert (tab["passive_shares"] + tab["aggressive_shares"] == tab["executed"]).all()
    assert tab["passive_shares"].iloc[1] > 0
    # a level-1 file: a book as deep as the file
    l1 = ReplayData.from_lobster(lob / "GOOG_2012-06-21_34200000_57600000_message_1.csv.gz")
    r1 = bt.run_execution(l1, [bt.ParentOrder("buy", 2000, bt.parse_time("2012-06-21T14:00"), 600, 10)],
                          ["twap", "passive_first"], ["cloud"])
    assert r1.book.config.depth == 1
    assert (r1.table["executed"] == 2000).all()


def test_bench_book_on_the_hour(capsys):
    from lobworld.cli.bench import bench_book

    rows = bench_book(str(sample_lobster_paths()[0]), n_envs=3, window_frac=0.2)
    assert [r["messages"] for r in rows[:2]] == [29_752, 29_752]  # every row after row 0
    assert rows[2]["messages"] == 3 * (int(29_753 * 0.2) - 1)
    assert rows[0]["agent_fills"] == 0 and rows[1]["agent_fills"] > 0 and rows[2]["agent_fills"] > 0
    assert all(r["messages_per_s"] > 0 for r in rows)
    assert main(["bench", "--book", "--book-data", str(sample_lobster_paths()[0]), "--book-envs", "2",
                 "--book-window", "0.1"]) == 0
    assert "touch quoters" in capsys.readouterr().out
    assert main(["bench", "--book", "--book-data", "/nonexistent/x_message_10.csv"]) == 2

"""`lobworld data summary` and `lobworld demo` through lobworld.cli.main."""

import json


from _data_helpers import set_field, slice_lines, write_pair
from lobworld.cli import main
from lobworld.world_models.data import sample_lobster_paths


def test_summary_json(capsys):
    assert main(["data", "summary", str(sample_lobster_paths()[0]), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["ticker"], s["date"], s["levels"], s["events"], s["trades"], s["volume"]) == \
        ("GOOG", "2012-06-21", 10, 29753, 1409, 88356.0)
    assert s["event_counts"] == {"submit": 14592, "delete": 13752, "exec_visible": 907, "exec_hidden": 502}
    assert s["bars"] == 60 and s["dropped"] == {}


def test_summary_table_databento(capsys, shared_data):
    assert main(["data", "summary", str(shared_data / "databento/csv/glbx-mdp3_test_data.mbp-10.csv")]) == 0
    out = capsys.readouterr().out
    assert "ESH1" in out and "mean_spread" in out


def test_summary_errors_exit_2(tmp_path, capsys):
    m, o = slice_lines(50)
    o[9] = set_field(o[9], 2, str(int(o[9].split(",")[0]) + 100))
    p = write_pair(tmp_path, m, o)
    assert main(["data", "summary", str(p)]) == 2
    err = capsys.readouterr().err
    assert "crossed_book" in err and "line 10" in err and "Traceback" not in err
    assert main(["data", "summary", str(p), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dropped"] == {"crossed_book": 1}
    assert main(["data", "summary", str(tmp_path / "nope.txt")]) == 2


def test_demo_runs_the_main_job_into_a_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--timesteps", "256", "--n-envs", "4", "--paths", "16", "--boot", "50",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    # stage 1: the shipped hour's summary and bar plot
    png = out / "demo_goog.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "GOOG" in text and "29753" in text.replace(",", "")
    assert json.loads((out / "data_summary.json").read_text())["events"] == 29753
    # stage 2: a PPO agent on the learned market
    run = json.loads((out / "agent" / "lobworld_run.json").read_text())
    assert run["config"]["env_id"] == "LOB-Execution-v0" and run["dynamics"] == "learned"
    assert run["status"] == "finished" and (out / "agent" / "model.zip").is_file()
    # stage 3: the comparison on common paths, with paired CIs against TWAP
    doc = json.loads((out / "report.json").read_text())
    strat = doc["scenarios"]["normal"]["strategies"]
    assert doc["market"] == "learned" and list(strat)[:3] == ["twap", "vwap", "ac"] and len(strat) == 4
    assert all(s["n_paths"] == 16 for s in strat.values())
    ppo = strat[str(out / "agent" / "model.zip")]
    assert f"ppo (demo)  {ppo['mean']:9.3f}" in text and f"[{ppo['diff_ci95'][0]:+.3f}, " in text
    assert "smoke run of the pipeline, not a result" in text
    # stage 4: the report with its PNGs
    md = (out / "report.md").read_text()
    for f in ("shortfall_distributions.png", "execution_trajectories.png", "inventory_paths.png", "demo_goog.png"):
        assert (out / f).is_file() and f"({f})" in md
    assert "smoke run" in md and str(out / "report.md") in text.replace("\n", "")


def test_demo_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(out), "--timesteps", "64", "--n-envs", "2", "--paths", "4", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep me"
    assert main(["demo", "--out", str(tmp_path / "x.png")]) == 2
    assert "folder" in capsys.readouterr().err


def test_summary_renamed_lobster_pair(tmp_path, capsys):
    m, o = slice_lines(100)
    mp, op = tmp_path / "m.csv", tmp_path / "o.csv"
    mp.write_text("\n".join(m) + "\n")
    op.write_text("\n".join(o) + "\n")
    assert main(["data", "summary", str(mp), "--orderbook", str(op), "--json"]) == 2
    assert "--date" in capsys.readouterr().err
    assert main(["data", "summary", str(mp), "--orderbook", str(op), "--date", "2012-06-21",
                 "--ticker", "GOOG", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["ticker"], s["events"], s["levels"]) == ("GOOG", 100, 10)

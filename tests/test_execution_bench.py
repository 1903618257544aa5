"""``lobworld bench`` runs (tiny sizes; speed itself is measured by benchmarks/, not tested)."""

import json

from lobworld.cli import main


def test_bench_json_rows(capsys):
    rc = main(["bench", "--env", "LOB-Execution-v0", "--n-envs", "2,3", "--steps", "5", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["results"]
    assert [(r["face"], r["n_envs"]) for r in rows] == [
        ("raw", 2), ("gym", 2), ("sb3", 2), ("raw", 3), ("gym", 3), ("sb3", 3)]
    assert all(r["steps"] == 5 and r["env_steps_per_s"] > 0 for r in rows)
    assert out["machine"]["cpus"] >= 1
    assert {r["dynamics"] for r in rows} == {"learned"}  # the id's registered default


def test_bench_dynamics_override(capsys):
    rc = main(["bench", "--env", "LOB-Execution-v0", "--n-envs", "2", "--steps", "3", "--dynamics", "parametric",
               "--face", "raw", "--face", "gym"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("parametric" in ln for ln in lines[1:])


def test_bench_unknown_env_is_a_clear_error(capsys):
    assert main(["bench", "--env", "LOB-Nope-v0", "--steps", "1"]) == 2
    assert "unknown env id" in capsys.readouterr().err


def test_bench_interleaved_ratios(capsys):
    """--interleave times the faces in alternating blocks; each ratio is the median block time of the
    face over the raw kernel's on the face's own core, and the per-block range brackets it."""
    rc = main(["bench", "--env", "LOB-Execution-v0", "--n-envs", "4", "--steps", "3", "--blocks", "5",
               "--dynamics", "parametric", "--interleave", "--json"])
    assert rc == 0
    (r,) = json.loads(capsys.readouterr().out)["interleaved"]
    assert (r["n_envs"], r["blocks"], r["block_steps"]) == (4, 5, 3)
    for face in ("gym", "sb3"):
        lo, hi = r[f"ratio_{face}_blocks_min_max"]
        assert r[f"{face}_env_steps_per_s"] > 0 and lo <= r[f"ratio_{face}"] <= hi
        assert abs(r[f"ratio_{face}"] - r[f"raw_{face}_core_env_steps_per_s"] / r[f"{face}_env_steps_per_s"]) < 1e-9
    assert r["raw_env_steps_per_s"] == r["raw_gym_core_env_steps_per_s"]  # the first face's core
    rc = main(["bench", "--env", "LOB-Execution-v0", "--n-envs", "4", "--steps", "3", "--blocks", "2",
               "--dynamics", "parametric", "--interleave", "--face", "raw", "--json"])
    (r,) = json.loads(capsys.readouterr().out)["interleaved"]
    assert rc == 0 and r["raw_env_steps_per_s"] > 0 and "ratio_gym" not in r


def test_bench_interleaved_needs_the_raw_face(capsys):
    assert main(["bench", "--env", "LOB-Execution-v0", "--face", "gym", "--interleave", "--steps", "1"]) == 2
    assert "needs the raw face" in capsys.readouterr().err


def test_bench_tick_rows_are_the_cst_timings_then_the_replay(capsys, shared_data):
    """--tick: per ticker one call and 1 s calls of the parametric tick world (the seeded message counts
    time_cst_world gives for the same arguments), then the book replay cases of the same run."""
    from lobworld.cli.bench import time_cst_world

    rc = main(["bench", "--tick", "--tick-envs", "8", "--tick-seconds", "2", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["book"]
    assert [r["case"] for r in rows[:4]] == [
        "parametric GOOG, one 2 s call, 8 envs", "parametric GOOG, 2 x 1 s calls, 8 envs",
        "parametric AMZN, one 2 s call, 8 envs", "parametric AMZN, 2 x 1 s calls, 8 envs"]
    for r, (ticker, chunk) in zip(rows[:4], [("GOOG", None), ("GOOG", 1), ("AMZN", None), ("AMZN", 1)]):
        assert r["messages"] == time_cst_world(ticker, 8, 2, 1, chunk)["messages"] > 0
    assert len(rows) == 7 and all(r["case"].startswith("replay: ") and r["messages"] > 0 for r in rows[4:])
    assert main(["bench", "--tick", "--tick-envs", "0"]) == 2
    assert "--tick-envs and --tick-seconds must be >= 1" in capsys.readouterr().err


def test_bench_steps_below_one_are_a_clear_error(capsys):
    for extra in ([], ["--interleave"]):
        assert main(["bench", "--env", "LOB-Execution-v0", "--n-envs", "2", "--steps", "-3", *extra]) == 2
        assert "--steps must be >= 1" in capsys.readouterr().err

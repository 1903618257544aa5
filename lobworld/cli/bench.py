"""``lobworld bench``: env-steps per second of every registered env, on three paths.

* ``raw``   -- the core's Numba step kernel with same-step autoreset on the core's own action
  buffer (valid actions copied in), no action checks, no Python-side info building
  (``core._step_rows``);
* ``gym``   -- the Gymnasium vector env (``gym.make_vec(..., "vector_entry_point")``);
* ``sb3``   -- the native SB3 ``VecEnv`` (``make_sb3_vec_env``).

``lobworld bench --book`` instead times the event-level book engine (:mod:`lobworld.envs.replay`):
LOBSTER messages per second replaying the full GOOG L10 day in one env, and in a batch of
``--book-envs`` envs replaying different windows of the day with the agent's orders active (the
touch quoter of :func:`~lobworld.envs.replay.touch_quoter_commands`, colocated latency).
``lobworld bench --tick`` times the parametric tick world (:func:`bench_tick`) and then the same
replay cases, in one run.

Random valid actions are drawn once (a pool of batches cycled through), so action
generation is not timed. Compilation happens in untimed warm-up steps (``WARMUP_STEPS``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from lobworld.cli import CLIError

FACES = ("raw", "gym", "sb3")
#: untimed steps before the timed ones (the first one's time is reported as ``warmup_s``): enough
#: for :class:`lobworld.envs.jit.ThreadChoice` to have run and compiled both kernels
WARMUP_STEPS = 8


def _action_pool(space, n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    from gymnasium import spaces

    rng = np.random.default_rng(seed)
    if isinstance(space, spaces.Discrete):
        return [rng.integers(space.start, space.start + space.n, size=n) for _ in range(k)]
    lo = np.where(np.isfinite(space.low), space.low, -1.0)
    hi = np.where(np.isfinite(space.high), space.high, 1.0)
    return [np.clip(rng.uniform(lo, hi, size=(n, *space.shape)), space.low, space.high).astype(space.dtype)
            for _ in range(k)]


def _auto_steps(n_envs: int) -> int:
    # at least 2,000 steps up to 10k envs: whole-batch episode ends come in bursts, so short
    # measurements at large batch sizes are noisy
    return int(min(2000, max(20, 20_000_000 // n_envs)))


def bench_env(env_id: str, n_envs: int, steps: int | None = None, faces=FACES, seed: int = 0,
              **env_kwargs: Any) -> list[dict[str, Any]]:
    """Time ``steps`` batched steps of ``env_id`` with ``n_envs`` envs on each face.

    ``env_kwargs`` override the id's registered arguments (e.g. ``dynamics="parametric"``).
    """
    import gymnasium as gym

    import lobworld  # noqa: F401

    if env_id not in gym.registry:
        raise CLIError(f"unknown env id {env_id!r}; registered: {', '.join(lobworld.ENV_IDS)}")
    _check_steps(steps)
    steps = steps or _auto_steps(n_envs)
    rows = []
    for face in faces:
        step, pool, core = _face_stepper(env_id, face, n_envs, seed, **env_kwargs)
        t0 = time.perf_counter()
        step(pool[0])
        compile_s = time.perf_counter() - t0
        for k in range(1, WARMUP_STEPS):  # the thread choice tries (and compiles) both kernels
            step(pool[k & 7])
        t0 = time.perf_counter()
        for k in range(steps):
            step(pool[k & 7])
        dt = time.perf_counter() - t0
        rows.append({"env": env_id, "dynamics": getattr(core.dynamics, "name", type(core.dynamics).__name__)
                     if hasattr(core, "dynamics") else "n/a", "face": face, "n_envs": n_envs, "steps": steps, "seconds": dt,
                     "env_steps_per_s": n_envs * steps / dt, "warmup_s": compile_s})
    return rows


def _check_steps(steps: int | None) -> None:
    if steps is not None and steps < 1:
        raise CLIError(f"--steps must be >= 1 (or left out for the default), got {steps}")


def _face_stepper(env_id: str, face: str, n_envs: int, seed: int, **env_kwargs: Any):
    """``(step, pool, core)`` of one face of ``env_id``, reset: its batched step function, a pool of 8
    random valid action batches, and the :class:`~lobworld.envs.core.BatchedCore` behind it."""
    import gymnasium as gym

    from lobworld.envs.core import make_sb3_vec_env

    if face == "raw":
        core = make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, **env_kwargs).core
        core.reset()
        step, pool = _raw_stepper(core, _action_pool(core.single_action_space, n_envs, 8, seed))
        return step, pool, core
    if face == "gym":
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
        venv.reset(seed=seed)
        return venv.step, _action_pool(venv.single_action_space, n_envs, 8, seed), venv.unwrapped.core
    if face == "sb3":
        venv = make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, **env_kwargs)
        venv.reset()
        return venv.step, _action_pool(venv.action_space, n_envs, 8, seed), venv.core
    raise CLIError(f"unknown face {face!r}; use one of {FACES}")


def _raw_stepper(core, actions: list[np.ndarray]):
    """``(step, pool)`` of the raw path: ``pool`` the batches ``actions`` checked once (as the kernel
    reads them), ``step(a)`` a batch of the pool copied into the core's own action buffer (the array
    every face hands the kernel, :meth:`~lobworld.envs.core.BatchedCore.check_actions`), then the
    step kernel with same-step autoreset."""
    pool = [core.check_actions(a).copy() for a in actions]
    buf = core.check_actions(actions[0])

    def step(a, core=core, buf=buf):
        np.copyto(buf, a)
        core._step_rows(buf, True)

    return step, pool


def bench_faces_interleaved(env_id: str, n_envs: int, blocks: int = 15, block_steps: int | None = None,
                            faces=FACES, seed: int = 0, **env_kwargs: Any) -> dict[str, Any]:
    """The faces of ``env_id`` timed in alternating blocks of ``block_steps`` batched steps, each
    face against the raw kernel of its own core (raw on the gym face's core, gym, raw on the SB3
    face's core, sb3, ...), so that every face sees the same machine load and is compared with the
    very arrays it steps: two cores of one id built in one process can differ in kernel speed by
    more than a face costs, and a baseline on another core would fold that in. Each rate is the
    median over its ``blocks`` blocks; ``ratio_<face>`` is the face's median block time over the
    median of the raw blocks on its core (1.0 = no overhead), with the per-block ratios' range;
    ``raw_env_steps_per_s`` is the raw kernel on the first face's core (on a core of its own when
    only ``raw`` is asked for). The faces are built, reset and warmed (``WARMUP_STEPS``) before the
    first timed block."""
    import gymnasium as gym

    import lobworld  # noqa: F401

    if env_id not in gym.registry:
        raise CLIError(f"unknown env id {env_id!r}; registered: {', '.join(lobworld.ENV_IDS)}")
    if "raw" not in faces:
        raise CLIError("the interleaved benchmark needs the raw face (its baseline)")
    if blocks < 1:
        raise CLIError(f"--blocks must be >= 1, got {blocks}")
    _check_steps(block_steps)
    block_steps = block_steps or max(10, _auto_steps(n_envs) // 10)
    others = [f for f in faces if f != "raw"] or ["raw"]
    steppers: dict[str, tuple] = {}
    for face in others:
        step, pool, core = _face_stepper(env_id, face, n_envs, seed, **env_kwargs)
        steppers["raw:" + face] = _raw_stepper(core, pool)
        if face != "raw":
            steppers[face] = (step, pool)
    for step, pool in steppers.values():
        for k in range(WARMUP_STEPS):
            step(pool[k & 7])
    secs: dict[str, list[float]] = {key: [] for key in steppers}
    for _ in range(blocks):
        for key, (step, pool) in steppers.items():
            t0 = time.perf_counter()
            for k in range(block_steps):
                step(pool[k & 7])
            secs[key].append(time.perf_counter() - t0)
    out: dict[str, Any] = {"env": env_id, "n_envs": n_envs, "blocks": blocks, "block_steps": block_steps}
    out["raw_env_steps_per_s"] = n_envs * block_steps / float(np.median(secs["raw:" + others[0]]))
    for face in others:
        if face == "raw":
            continue
        s, raw = np.asarray(secs[face]), np.asarray(secs["raw:" + face])
        out[f"{face}_env_steps_per_s"] = n_envs * block_steps / float(np.median(s))
        out[f"raw_{face}_core_env_steps_per_s"] = n_envs * block_steps / float(np.median(raw))
        per_block = s / raw
        out[f"ratio_{face}"] = float(np.median(s) / np.median(raw))
        out[f"ratio_{face}_blocks_min_max"] = [float(per_block.min()), float(per_block.max())]
    return out


def format_interleaved(r: dict[str, Any]) -> str:
    parts = [f"{r['env']} at {r['n_envs']:,} envs, {r['blocks']} interleaved blocks of {r['block_steps']} steps:"]
    for face in FACES:
        if f"{face}_env_steps_per_s" in r:
            extra = ""
            if face != "raw":
                lo, hi = r[f"ratio_{face}_blocks_min_max"]
                extra = (f"  raw/{face} {r[f'ratio_{face}']:.3f} (blocks {lo:.2f}-{hi:.2f}; raw on this core "
                         f"{r[f'raw_{face}_core_env_steps_per_s']:,.0f})")
            parts.append(f"  {face:4s} {r[f'{face}_env_steps_per_s']:14,.0f} env-steps/s{extra}")
    return "\n".join(parts)


def machine_info() -> dict[str, Any]:
    import numba

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}


def run_bench(env_ids=None, n_envs=(1, 1000, 10000), steps=None, faces=FACES, **env_kwargs: Any) -> list[dict[str, Any]]:
    import lobworld

    ids = list(env_ids) if env_ids else list(lobworld.ENV_IDS)
    rows = []
    for env_id in ids:
        for n in n_envs:
            rows.extend(bench_env(env_id, int(n), steps, faces, **env_kwargs))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'env':30s} {'dynamics':10s} {'face':4s} {'n_envs':>7s} {'steps':>6s} {'env-steps/s':>14s}"]
    for r in rows:
        lines.append(f"{r['env']:30s} {r['dynamics']:10s} {r['face']:4s} {r['n_envs']:7d} {r['steps']:6d} "
                     f"{r['env_steps_per_s']:14,.0f}")
    return "\n".join(lines)


def _parse_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from exc
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return vals


GOOG_L10_DAY = "lobster/GOOG_2012-06-21_34200000_57600000_message_10.csv.gz"


def default_book_data() -> str:
    """The full GOOG L10 day in ``../shared/data`` beside the repository."""
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / GOOG_L10_DAY)


def bench_book(path: str | None = None, n_envs: int = 64, window_frac: float = 0.5, repeat: int = 1,
               quote_every_ms: float = 1000.0) -> list[dict[str, Any]]:
    """Replay rate of the book engine (LOBSTER messages per second of wall time, best of
    ``repeat``): one env over the whole day without an agent, the same with the touch quoter,
    and ``n_envs`` envs replaying windows of ``window_frac`` of the day (starts spread over it)
    with the quoter active, in one kernel call. Compilation is done in an untimed warm-up."""
    import pathlib

    from lobworld.envs.book import A_NFILLS
    from lobworld.envs.replay import ReplayData, prepare_replay, run_replay, touch_quoter_commands

    p = pathlib.Path(path or default_book_data())
    if not p.is_file():
        raise CLIError(f"--book-data: {p} is not a file (a LOBSTER message file with its orderbook beside it)")
    if n_envs < 1 or not 0 < window_frac <= 1:
        raise CLIError(f"--book-envs must be >= 1 and the window fraction in (0, 1], got {n_envs}, {window_frac}")
    data = ReplayData.from_lobster(p)
    N = data.n_rows
    every = int(quote_every_ms * 1e6)
    w = max(2, int(N * window_frac))
    starts = np.linspace(0, N - w, n_envs).astype(np.int64)
    cases = [("1 env, no agent", [(0, N)], None),
             ("1 env, touch quoter", [(0, N)], [touch_quoter_commands(data.tape.t, 0, N, every_ns=every)]),
             (f"{n_envs} envs x {window_frac:g} day, touch quoters",
              [(int(a), int(a) + w) for a in starts],
              [touch_quoter_commands(data.tape.t, int(a), int(a) + w, every_ns=every) for a in starts])]
    m = min(N, 2000)
    for k in (1, 2):  # compile (or load from the cache) the serial and the threaded kernel
        run_replay(data, prepare_replay(data, [(0, m)] * k, latency="colocated", commands=[
            touch_quoter_commands(data.tape.t, 0, m, every_ns=every)] * k), verify=False)
    rows = []
    for name, wins, cmds in cases:
        best = float("inf")
        msgs = 0
        for _ in range(max(1, repeat)):
            book = prepare_replay(data, wins, commands=cmds, latency="colocated", seed=0)
            t0 = time.perf_counter()
            rep = run_replay(data, book, verify=False)
            best = min(best, time.perf_counter() - t0)
            msgs = int(rep.rows.sum())
        fills = int(book.acct[:, A_NFILLS].sum())
        rows.append({"case": name, "data": data.name, "messages": msgs, "seconds": best,
                     "messages_per_s": msgs / best, "agent_fills": fills})
    return rows


def time_cst_world(ticker: str, n_envs: int, seconds: int, repeat: int, chunk_s: int | None = None) -> dict[str, Any]:
    """``n_envs`` books of the parametric (Cont-Stoikov-Talreja) tick world with ``ticker``'s shipped
    fit, from the default book, advanced ``seconds`` of market time in one ``advance`` call
    (``chunk_s`` None) or in calls of ``chunk_s`` seconds, no agent; best of ``repeat`` timed runs after
    an untimed one that compiles / warms. Returns the messages applied to the books (``W_MSGS``), the
    wall seconds, their rates, the book depth, the fit's ``max_distance`` and the world's redraw
    count (``W_REDRAWS``) of the best run."""
    from lobworld.envs.book import Book, BookConfig
    from lobworld.world_models.tick_parametric import load_fitted_cst
    from lobworld.world_models.tick_world import W_MSGS, W_REDRAWS, CSTWorld

    S = 10**9
    w = CSTWorld(load_fitted_cst(ticker))
    cfg = w.book_config(BookConfig(max_orders=2, max_pending=16, max_commands=16, max_fills=16))
    book = Book(n_envs, cfg, seed=0)
    steps = [seconds] if chunk_s is None else list(range(chunk_s, seconds + 1, chunk_s))
    best, msgs, redraws = float("inf"), 0, 0
    for r in range(repeat + 1):
        t0 = np.full(n_envs, w.bounds()[0], np.int64)
        w.reset_rows(book, np.arange(n_envs), t0)
        tic = time.perf_counter()
        for k in steps:
            w.advance(book, t0 + k * S)
        dt = time.perf_counter() - tic
        if r > 0 and dt < best:
            best, msgs, redraws = dt, int(w.wcnt[:, W_MSGS].sum()), int(w.wcnt[:, W_REDRAWS].sum())
    return {"n_envs": n_envs, "market_seconds": seconds, "messages": msgs, "seconds": best,
            "messages_per_s": msgs / best, "market_seconds_per_s": n_envs * seconds / best,
            "depth": cfg.depth, "max_distance": w.params.max_distance, "redraws": redraws}


def bench_tick(n_envs: int = 4096, seconds: int = 60, repeat: int = 3, book_data: str | None = None,
               tickers=("GOOG", "AMZN")) -> list[dict[str, Any]]:
    """The parametric (Cont-Stoikov-Talreja) tick world's rate beside the book engine's replay rate,
    in one run (``benchmarks/bench_tick_world.py``'s cases, :func:`time_cst_world`): ``n_envs``
    books of each ticker's shipped fit, ``seconds`` of market time in one ``advance`` call and in
    1 s calls, no agent; then :func:`bench_book`'s replay cases. Messages per second of wall time
    (messages applied to the books), best of ``repeat`` after an untimed warm-up."""
    if n_envs < 1 or seconds < 1:
        raise CLIError(f"--tick-envs and --tick-seconds must be >= 1, got {n_envs}, {seconds}")
    rows = []
    for ticker in tickers:
        for name, chunk in ((f"parametric {ticker}, one {seconds} s call", None),
                            (f"parametric {ticker}, {seconds} x 1 s calls", 1)):
            x = time_cst_world(ticker, n_envs, seconds, max(1, repeat), chunk)
            rows.append({"case": f"{name}, {n_envs} envs", "data": f"default book, depth {x['depth']}",
                         "messages": x["messages"], "seconds": x["seconds"], "messages_per_s": x["messages_per_s"],
                         "agent_fills": 0})
    rows += [dict(r, case=f"replay: {r['case']}") for r in bench_book(book_data, repeat=repeat)]
    return rows


def format_book_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'case':40s} {'messages':>11s} {'seconds':>8s} {'messages/s':>13s} {'agent fills':>11s}"]
    for r in rows:
        lines.append(f"{r['case']:40s} {r['messages']:11,d} {r['seconds']:8.3f} {r['messages_per_s']:13,.0f} "
                     f"{r['agent_fills']:11,d}")
    return "\n".join(lines)


def _cmd_bench(args: argparse.Namespace) -> int:
    import lobworld

    if args.book or args.tick:
        rows = (bench_tick(args.tick_envs, args.tick_seconds, args.book_repeat, args.book_data) if args.tick else
                bench_book(args.book_data, args.book_envs, args.book_window, args.book_repeat))
        if args.json:
            print(json.dumps({"machine": machine_info(), "book": rows}, indent=2))
        else:
            print(format_book_table(rows))
        return 0

    unknown = [e for e in (args.env or []) if e not in lobworld.ENV_IDS]
    if unknown:
        print(f"lobworld bench: unknown env id(s) {unknown}; registered: {', '.join(lobworld.ENV_IDS)}",
              file=sys.stderr)
        return 2
    faces = tuple(args.face) if args.face else FACES
    kw = {"dynamics": args.dynamics} if args.dynamics else {}
    if args.interleave:
        res = [bench_faces_interleaved(e, int(n), args.blocks, args.steps, faces, **kw)
               for e in (args.env or lobworld.ENV_IDS) for n in args.n_envs]
        if args.json:
            print(json.dumps({"machine": machine_info(), "interleaved": res}, indent=2))
        else:
            print("\n".join(format_interleaved(r) for r in res))
        return 0
    rows = run_bench(args.env, args.n_envs, args.steps, faces, **kw)
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0


def add_commands(sub) -> None:
    """Add ``bench`` to the ``lobworld`` CLI."""
    p = sub.add_parser("bench", help="env-steps/s of the registered envs (raw kernel, Gymnasium vector, SB3 VecEnv)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", metavar="ID", help="env id (repeatable; default: every registered id)")
    p.add_argument("--n-envs", type=_parse_ints, default=[1, 1000, 10000], metavar="N[,N...]",
                   help="batch sizes (default 1,1000,10000)")
    p.add_argument("--steps", type=int, default=None, help="batched steps per measurement (default: 2,000, fewer above 10k envs)")
    p.add_argument("--face", action="append", choices=FACES, help="faces to time (repeatable; default all)")
    p.add_argument("--dynamics", choices=("parametric", "learned"), default=None,
                   help="market dynamics for every id (default: each id's registered default: learned for "
                        "the execution ids, parametric for market making and the dark pool)")
    p.add_argument("--interleave", action="store_true",
                   help="time the faces in alternating blocks, each after a block of the raw kernel on its own "
                        "core, and report face/raw ratios measured under the same load (--steps: steps per block)")
    p.add_argument("--blocks", type=int, default=15, help="--interleave: blocks per face (default 15)")
    p.add_argument("--json", action="store_true", help="print JSON with machine info")
    p.add_argument("--book", action="store_true",
                   help="time the event-level book engine instead (replay messages/s over a LOBSTER day)")
    p.add_argument("--book-data", default=None, metavar="FILE",
                   help="LOBSTER message file for --book (default: the GOOG L10 day in ../shared/data)")
    p.add_argument("--book-envs", type=int, default=64, help="--book: envs of the batch case (default 64)")
    p.add_argument("--book-window", type=float, default=0.5,
                   help="--book: each batch env replays this fraction of the day (default 0.5)")
    p.add_argument("--tick", action="store_true",
                   help="time the parametric tick world (GOOG, AMZN) beside the book replay of the same run")
    p.add_argument("--tick-envs", type=int, default=4096, help="--tick: envs per ticker (default 4,096)")
    p.add_argument("--tick-seconds", type=int, default=60, help="--tick: market seconds simulated (default 60)")
    p.add_argument("--book-repeat", type=int, default=1, help="--book / --tick: best of this many runs (default 1)")
    p.set_defaults(func=_cmd_bench)

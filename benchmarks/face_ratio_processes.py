"""The faces' overhead over the raw kernel, measured in several fresh processes.

``lobworld bench --interleave`` measures one process. How fast a batched kernel runs at 10k envs
differs from process to process (where its arrays land in memory, how the host places the two
threads), and so does the face ratio. This script runs the interleaved benchmark in ``--processes``
fresh interpreters, one after the other, and prints per env id and face the median, the lowest and
the highest of the per-process ratios (face time over the raw kernel on the face's own core).

    python benchmarks/face_ratio_processes.py --processes 8
    python benchmarks/face_ratio_processes.py --env LOB-MarketMaking-v0 --face sb3 --processes 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

DEFAULT_ENVS = ("LOB-Execution-v0", "LOB-MarketMaking-v0")


def one_process(envs: list[str], faces: list[str], n_envs: int, blocks: int, steps: int, dynamics: str) -> list[dict]:
    """The interleaved benchmark's rows from one fresh interpreter (``lobworld bench --interleave --json``)."""
    cmd = [sys.executable, "-c", "import sys; from lobworld.cli import main; sys.exit(main(sys.argv[1:]))",
           "bench", "--interleave", "--json", "--n-envs", str(n_envs), "--blocks", str(blocks), "--steps", str(steps),
           "--dynamics", dynamics, "--face", "raw"]
    for e in envs:
        cmd += ["--env", e]
    for f in faces:
        cmd += ["--face", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["interleaved"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", action="append", help=f"env id (repeatable; default {', '.join(DEFAULT_ENVS)})")
    p.add_argument("--face", action="append", choices=("gym", "sb3"), help="faces (repeatable; default gym)")
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--n-envs", type=int, default=10_000)
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--steps", type=int, default=50, help="steps per block")
    p.add_argument("--dynamics", default="parametric", choices=("parametric", "learned"))
    args = p.parse_args(argv)
    if args.processes < 1 or args.n_envs < 1 or args.blocks < 1 or args.steps < 1:
        p.error("--processes, --n-envs, --blocks and --steps must be >= 1")
    envs, faces = args.env or list(DEFAULT_ENVS), args.face or ["gym"]
    ratios: dict[tuple[str, str], list[float]] = {(e, f): [] for e in envs for f in faces}
    for k in range(args.processes):
        rows = one_process(envs, faces, args.n_envs, args.blocks, args.steps, args.dynamics)
        line = []
        for r in rows:
            for f in faces:
                ratios[(r["env"], f)].append(r[f"ratio_{f}"])
                line.append(f"{r['env']} {f} {r[f'ratio_{f}']:.3f}")
        print(f"process {k + 1}: " + ", ".join(line), flush=True)
    print(f"\n{args.n_envs:,} envs, {args.dynamics}, {args.processes} processes x {args.blocks} blocks of "
          f"{args.steps} steps; face time / raw kernel time on the face's own core:")
    for (e, f), xs in ratios.items():
        print(f"  {e:24s} {f:4s} median {statistics.median(xs):.3f}  lowest {min(xs):.3f}  highest {max(xs):.3f}  "
              f"processes at or below 1.3: {sum(x <= 1.3 for x in xs)} of {len(xs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

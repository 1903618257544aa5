"""Benchmark: load + featurise a full LOBSTER day.

``python -m lobworld.world_models.data.bench [MESSAGE_PATH] [--repeat N]``
(default: ``../shared/data/lobster/GOOG_2012-06-21_34200000_57600000_message_10.csv.gz``).
Prints the best wall-clock time of N runs of ``load_lobster`` + ``make_bars``
(1 min) + ``add_features``, and its parts.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from lobworld.world_models.data.bars import make_bars
from lobworld.world_models.data.features import add_features
from lobworld.world_models.data.lobster import load_lobster

DEFAULT = (pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lobster"
           / "GOOG_2012-06-21_34200000_57600000_message_10.csv.gz")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    best = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        ev = load_lobster(a.path)
        t1 = time.perf_counter()
        bars = make_bars(ev, "1min")
        ofi_bars = make_bars(ev, events_per_bar=500)  # noqa: F841 (event-time bars too)
        feats = add_features(bars)  # noqa: F841
        t2 = time.perf_counter()
        run = (t2 - t0, t1 - t0, t2 - t1)
        best = run if best is None or run[0] < best[0] else best
    print(f"{pathlib.Path(a.path).name}: {len(ev)} events, {ev.attrs['levels']} levels")
    print(f"load+featurise {best[0]:.2f} s (load {best[1]:.2f} s, bars+features {best[2]:.3f} s), "
          f"best of {a.repeat}")


if __name__ == "__main__":
    main()

"""Helpers for the data-layer tests: broken copies of the shipped LOBSTER slice."""

from __future__ import annotations

import gzip

from lobworld.world_models.data import sample_lobster_paths

STEM = "GOOG_2012-06-21_36000000_39600000_{}_10.csv"


def slice_lines(n: int | None = 200) -> tuple[list[str], list[str]]:
    """The first ``n`` raw lines of the shipped message and orderbook files."""
    msg, ob = sample_lobster_paths()
    m = gzip.decompress(msg.read_bytes()).decode().splitlines()
    o = gzip.decompress(ob.read_bytes()).decode().splitlines()
    return (m[:n], o[:n]) if n else (m, o)


def write_pair(tmp_path, m_lines, o_lines, *, gz=True, stem=STEM):
    """Write a message/orderbook pair under ``tmp_path``; return the message path."""
    suffix = ".gz" if gz else ""
    paths = []
    for kind, lines in (("message", m_lines), ("orderbook", o_lines)):
        p = tmp_path / (stem.format(kind) + suffix)
        data = ("\n".join(lines) + "\n").encode()
        p.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        paths.append(p)
    return paths[0]


def set_field(line: str, i: int, value) -> str:
    f = line.split(",")
    f[i] = str(value)
    return ",".join(f)

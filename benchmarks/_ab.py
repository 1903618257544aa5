"""Shared pieces of the A/B scripts (``ab_book_kernels.py``, ``ab_tick_world.py``): a repository
file at a git revision as an importable copy, and importing a module from a file path."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def ref_file(rel: str, rev: str, copy_name: str, tool: str) -> pathlib.Path:
    """The repository file ``rel`` at git revision ``rev``, written to ``copy_name`` in a cache folder
    named by the commit ``rev`` resolves to (so Numba's disk cache of the reference kernels survives
    between runs, and a moving name such as ``HEAD`` never reads a stale copy). Exits with a message
    naming ``tool`` when git cannot give it."""
    try:
        sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True,
                             text=True).stdout.strip()
        text = subprocess.run(["git", "show", f"{sha}:{rel}"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"{tool}: cannot read {rel} at revision {rev!r} from git ({exc}); run it in a git "
                         "checkout") from exc
    out = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "lobworld_ab" / sha[:12]
    path = out / copy_name
    if not path.is_file() or path.read_text() != text:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def load_module(name: str, path) -> object:
    """Import the file ``path`` as the module ``name`` (registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

"""Run import-linter on lobworld's layer contracts (``[tool.importlinter]`` in pyproject.toml).

The package maps its sub-packages from the repository's top-level folders
(``envs/`` -> ``lobworld.envs``, ...), which import-linter's file-system scan cannot
follow, so this assembles the package as installed in a temporary folder and lints that.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
MAPPING = {
    "lobworld": "lobworld",
    "lobworld/envs": "envs",
    "lobworld/world_models": "world_models",
    "lobworld/agents": "agents",
    "lobworld/scenarios": "scenarios",
}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lobworld-lint-") as tmp:
        root = pathlib.Path(tmp)
        for dest, src in MAPPING.items():
            shutil.copytree(REPO / src, root / dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "assets", "*.npz", "*.toml"))
        env = dict(os.environ, PYTHONPATH=str(root))
        exe = pathlib.Path(sys.executable).with_name("lint-imports")
        cmd = [str(exe) if exe.exists() else "lint-imports", str(REPO / "pyproject.toml")]
        return subprocess.call(cmd, cwd=root, env=env)


if __name__ == "__main__":
    sys.exit(main())

"""The wheel ships every data file the package reads (shipped weights, fitted parameters, the GOOG hour,
the TOML configs), and setuptools builds it without warning that a data folder "would be ignored"."""

import pathlib
import shutil
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: source folder -> its place in the installed package
DATA = {"world_models/assets": "lobworld/world_models/assets", "world_models/configs": "lobworld/world_models/configs",
        "agents/configs": "lobworld/agents/configs"}


#: what the build reads (copied, so that setuptools' in-tree build folders land in the test's folder)
SOURCES = ("pyproject.toml", "README.md", "lobworld", "envs", "world_models", "agents", "scenarios")


def test_the_wheel_holds_every_data_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), "-v"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    log = res.stdout + res.stderr
    assert "would be ignored" not in log and "absent from the `packages` configuration" not in log
    (whl,) = tmp_path.glob("lobworld-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    want = {f"{dst}/{p.relative_to(ROOT / src).as_posix()}" for src, dst in DATA.items()
            for p in (ROOT / src).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert len(want) >= 20  # weights, fitted parameters, the shipped hour, configs
    assert want <= names, sorted(want - names)
    assert "lobworld/envs/core.py" in names and "lobworld/cli/__init__.py" in names

"""The guard against stale Numba disk caches across files (lobworld.envs.jit.install_cache_guard).

Numba checks only a cached function's own source file. Each scenario below is a ``cache=True``
function in ``cg_main.py`` whose callee lives in another file; the callee files are edited
between fresh processes (own ``NUMBA_CACHE_DIR``), and the result must follow the edit with the
guard on. With ``LOBWORLD_NUMBA_CACHE_GUARD=0`` it stays stale (what the guard is for), and with
unchanged sources the second process loads every function from the cache.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from lobworld.envs import jit

# One callee module per scenario, so that each function depends on the edited file only through
# the way of calling under test. ``cg_d`` is never edited: ``transitive`` sees ``cg_c`` through it.
CALLEES = {
    "cg_b.py": "from numba import njit\n\n\n@njit\ndef g():\n    return 1\n",
    "cg_i.py": 'from numba import njit\n\n\n@njit(inline="always")\ndef g_inline():\n    return 1\n',
    "cg_m.py": "from numba import njit\n\n\n@njit\ndef g_attr():\n    return 1\n",
    "cg_c.py": "from numba import njit\n\n\n@njit\ndef h():\n    return 1\n",
}
UNCHANGED = {
    "cg_d.py": "from numba import njit\n\nfrom cg_c import h\n\n\n@njit\ndef k():\n    return h()\n",
    "cg_main.py": textwrap.dedent("""\
        import lobworld.envs  # noqa: F401  installs the cache guard before the decorators below
        from numba import njit

        import cg_c
        import cg_m
        from cg_b import g
        from cg_d import k
        from cg_i import g_inline


        @njit(cache=True)
        def by_name():  # (a) a callee imported by name
            return g() + 100


        @njit(cache=True)
        def inlined():  # (b) an inline="always" callee
            return g_inline() + 100


        @njit(cache=True)
        def by_attr():  # (c) a callee called as module.fn
            return cg_m.g_attr() + 100


        @njit(cache=True)
        def transitive():  # a callee of a callee (cg_d unchanged, cg_c edited)
            return k() + 100


        @njit(cache=True)
        def defined_below():  # a callee further down this file, itself calling another file
            return _below() + 100


        @njit
        def _below():
            return cg_c.h()
        """),
}
SCENARIOS = ("by_name", "inlined", "by_attr", "transitive", "defined_below")
RUN = textwrap.dedent(f"""\
    import gc, importlib, json, pkgutil, sys
    import cg_main
    from lobworld.envs.jit import cache_guarded
    out = {{}}
    for name in {SCENARIOS!r}:
        f = getattr(cg_main, name)
        v = f()
        out[name] = [v, sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()), cache_guarded(f)]
    if "--lobworld" in sys.argv:  # (e) every cache=True function of every lobworld module
        import lobworld
        from numba.core.caching import FunctionCache
        from numba.core.registry import CPUDispatcher
        from lobworld.envs import rng
        for pkg in ("", ".envs", ".world_models", ".agents", ".scenarios"):
            p = importlib.import_module("lobworld" + pkg)
            for m in pkgutil.walk_packages(p.__path__, p.__name__ + "."):
                try:
                    importlib.import_module(m.name)
                except ImportError:  # an optional dependency
                    pass
        cached = [o for o in gc.get_objects() if isinstance(o, CPUDispatcher)
                  and isinstance(getattr(o, "_cache", None), FunctionCache)
                  and (o.py_func.__module__ or "").startswith("lobworld")]
        out["lobworld"] = [cache_guarded(rng.draw_normals), len(cached),
                           sorted(f"{{o.py_func.__module__}}.{{o.py_func.__qualname__}}"
                                  for o in cached if not cache_guarded(o))]
    print(json.dumps(out))
    """)


def _run(mods, cache, guard: bool, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "LOBWORLD_NUMBA"))}
    env.update(NUMBA_CACHE_DIR=str(cache), LOBWORLD_NUMBA_CACHE_GUARD="1" if guard else "0",
               PYTHONPATH=str(mods), PYTHONDONTWRITEBYTECODE="1")  # no stale .pyc of an edited file
    r = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per scenario, ``[value, cache hits, cache misses, guarded]`` of each run (fresh processes)."""
    root = tmp_path_factory.mktemp("cache_guard")
    mods = root / "mods"
    mods.mkdir()
    for name, text in {**CALLEES, **UNCHANGED}.items():
        (mods / name).write_text(text)
    on, off = root / "cache_on", root / "cache_off"
    with ThreadPoolExecutor(2) as pool:  # independent caches: two processes at a time
        first, off_first = pool.map(lambda a: _run(mods, *a), [(on, True), (off, False)])
        second = _run(mods, on, True, "--lobworld")
        for name, text in CALLEES.items():  # every callee now returns 20 (another length too)
            (mods / name).write_text(text.replace("return 1\n", "return 20\n"))
        edited, off_edited = pool.map(lambda a: _run(mods, *a), [(on, True), (off, False)])
    return dict(first=first, second=second, edited=edited, off_first=off_first, off_edited=off_edited)


@pytest.mark.parametrize("name", SCENARIOS)
def test_editing_a_callee_file_recompiles_the_caller(runs, name):
    assert runs["first"][name] == [101, 0, 1, True]
    value, hits, misses, guarded = runs["edited"][name]
    assert value == 120, f"{name}: stale cache after its callee's file was edited"
    assert (hits, misses, guarded) == (0, 1, True)


@pytest.mark.parametrize("name", SCENARIOS)
def test_without_the_guard_the_cache_stays_stale(runs, name):
    """The failure the guard removes (Numba's own check): the test above can fail."""
    assert runs["off_first"][name] == [101, 0, 1, False]
    assert runs["off_edited"][name] == [101, 1, 0, False]


@pytest.mark.parametrize("name", SCENARIOS)
def test_unchanged_sources_load_from_the_cache(runs, name):
    assert runs["second"][name] == [101, 1, 0, True]


def test_every_lobworld_kernel_is_guarded(runs):
    """Every cache=True function of every lobworld module is decorated after the guard is in place
    (each import goes through ``lobworld/__init__``, which imports ``lobworld.envs`` first)."""
    draw_normals, n, unguarded = runs["second"]["lobworld"]
    assert draw_normals and n >= 20 and unguarded == []


def test_stamp_is_lazy_and_pickles_as_a_plain_tuple(monkeypatch):
    from numba.core.serialize import dumps  # what Numba writes the index with

    calls = []

    def fake(py, **kw):
        calls.append(py)
        return "fp"

    monkeypatch.setattr(jit, "fingerprint", fake)
    stamp = jit._DeepStamp(b"numba", _plain)
    assert calls == []  # nothing at decoration: the callees further down may not exist yet
    data = dumps((stamp, {}))
    assert calls == [_plain]
    assert b"lobworld" not in data  # an index file reads without lobworld
    stored, _ = pickle.loads(data)
    assert type(stored) is tuple and stored == (b"numba", "fp")
    assert not (stored != stamp) and stamp == stored  # Numba checks ``stored != current``
    assert stamp != (b"numba", "other") and stamp != b"numba"  # an index saved with the guard off
    assert len(calls) == 1  # computed once


def _plain():
    return 1


def test_stamp_falls_back_to_numbas_own_when_the_fingerprint_fails(monkeypatch):
    def broken(py, **kw):
        raise RuntimeError("odd global")

    monkeypatch.setattr(jit, "fingerprint", broken)
    assert jit._DeepStamp(b"numba", len).value() == (b"numba", None)


def test_install_is_idempotent_and_changes_nothing_when_disabled_or_unknown(monkeypatch):
    from numba.core import caching

    monkeypatch.delenv("LOBWORLD_NUMBA_CACHE_GUARD", raising=False)
    classes = caching.CacheImpl._locator_classes
    assert jit.install_cache_guard() is True  # installed by lobworld.envs (unless disabled there)
    before = list(classes)
    assert jit.install_cache_guard() is True
    assert classes == before and all(getattr(c, "_lobworld_cache_guard", False) for c in classes)
    monkeypatch.setenv("LOBWORLD_NUMBA_CACHE_GUARD", "0")
    assert jit.install_cache_guard() is False
    monkeypatch.delenv("LOBWORLD_NUMBA_CACHE_GUARD")
    monkeypatch.setattr(caching, "CacheImpl", type("OtherImpl", (), {}))  # another Numba's internals
    assert jit.install_cache_guard() is False
    assert classes == before

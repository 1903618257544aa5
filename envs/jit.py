"""The kernel pattern every lobworld env follows: statically bound, disk-cached kernels.

An env kernel is written once as plain Python over struct-of-arrays state. The names of
the market dynamics' functions it calls (``step_fn``, ``reset_fn``, ``batch_step_fn``,
``batch_reset_fn``, or any other) are free globals of that source. :func:`bind` makes a
copy of the kernel, and of the helpers it calls that use those names, with the names bound
to one dynamics' compiled functions, and compiles it with ``@njit(cache=True)``. Each
binding gets its own function name (the base name, a label and a fingerprint of the bound
functions' source), so:

* Numba's disk cache keeps one compiled kernel per (env, dynamics, serial/parallel), and a
  fresh process loads it instead of compiling (closures and kernels that take functions
  as arguments cannot be cached: every process used to recompile them);
* editing a bound function's source file changes the fingerprint, so the kernel is
  recompiled (Numba alone checks only the kernel's own file); edits to *other* files that the
  bound function calls into are not detected, which is Numba's own limit for cached
  functions: after editing such a helper, delete the ``*.nbi`` / ``*.nbc`` files under
  ``__pycache__`` (or set ``NUMBA_CACHE_DIR`` to a fresh folder);
* a user's dynamics written in a notebook (no source file) still works, compiled without
  the disk cache.

Threading policy (one for every env): :func:`use_parallel` decides serial or ``prange``
kernels from the batch size and ``LOBWORLD_PARALLEL`` (``0`` never, ``1`` always, unset:
parallel from :data:`PARALLEL_MIN_ENVS` envs). Results are bit-identical either way,
because every env owns its random streams.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from numba import njit
from numba.core.registry import CPUDispatcher

__all__ = ["PARALLEL_MIN_ENVS", "ThreadChoice", "bind", "fingerprint", "use_parallel"]

#: Batches of at least this many envs run the ``prange`` kernels (unless ``LOBWORLD_PARALLEL=0``).
PARALLEL_MIN_ENVS = 2048

_BOUND: dict[tuple, Any] = {}
_FILE_HASH: dict[str, str] = {}


def use_parallel(n_envs: int, parallel: bool | None = None) -> bool:
    """Serial or parallel kernels for a batch of ``n_envs`` (``parallel`` overrides the policy)."""
    if parallel is not None:
        return bool(parallel)
    flag = os.environ.get("LOBWORLD_PARALLEL", "")
    if flag == "0":
        return False
    if flag == "1":
        return True
    return n_envs >= PARALLEL_MIN_ENVS


def _file_hash(path: str) -> str:
    h = _FILE_HASH.get(path)
    if h is None:
        h = hashlib.sha1(pathlib.Path(path).read_bytes()).hexdigest()
        _FILE_HASH[path] = h
    return h


def _py(fn: Any):
    return fn.py_func if isinstance(fn, CPUDispatcher) else fn


def fingerprint(fn: Any, _seen: set | None = None) -> str | None:
    """Identity of a compiled function's code: qualname, module, its source file's hash, and
    (recursively) the compiled functions it closes over. ``None`` without a source file."""
    seen = _seen if _seen is not None else set()
    py = _py(fn)
    if id(py) in seen:
        return ""
    seen.add(id(py))
    code = getattr(py, "__code__", None)
    if code is None:
        return None
    path = code.co_filename
    if not os.path.isfile(path):
        return None
    parts = [py.__module__ or "", py.__qualname__, _file_hash(path)]
    for cell in py.__closure__ or ():
        try:
            v = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if isinstance(v, CPUDispatcher):
            sub = fingerprint(v, seen)
            if sub is None:
                return None
            parts.append(sub)
        else:
            parts.append(repr(v))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _copy(py, name: str, globs: dict):
    code = py.__code__.replace(co_name=name, co_qualname=name)
    f = types.FunctionType(code, globs, name, py.__defaults__, py.__closure__)
    f.__qualname__ = name
    f.__doc__ = py.__doc__
    f.__module__ = py.__module__
    return f


def bind(
    kernels: Iterable[Callable],
    helpers: Iterable[Callable],
    binding: Mapping[str, Any],
    *,
    label: str,
    parallel: bool,
) -> tuple:
    """Compile ``kernels`` (plain Python functions) with the names in ``binding`` bound.

    ``helpers``: ``@njit(inline="always")`` functions (or plain functions) of the same module
    that use a bound name, directly or through another helper, in dependency order (a helper
    before those that call it); each gets a bound copy. ``binding``: name -> compiled function
    (or constant). Returns the compiled kernels in order, memoised per process. Each is named
    ``<name>_<label>_<ser|par>_<fingerprint>``.
    """
    kernels = tuple(kernels)
    helpers = tuple(helpers)
    prints = []
    for k, v in sorted(binding.items()):
        fp = fingerprint(v) if callable(v) else repr(v)
        prints.append(None if fp is None else f"{k}={fp}")
    cacheable = all(p is not None for p in prints)
    own = [fingerprint(f) for f in (*kernels, *helpers)]
    cacheable = cacheable and all(p is not None for p in own)
    tag = hashlib.sha1("|".join(str(p) for p in (*prints, *own)).encode()).hexdigest()[:12]
    key = (tuple(id(_py(k)) for k in kernels), tag, label, bool(parallel),
           tuple((k, id(v)) for k, v in sorted(binding.items())))
    hit = _BOUND.get(key)
    if hit is not None:
        return hit
    mode = "par" if parallel else "ser"
    suffix = f"{label}_{mode}_{tag}"
    base = dict(_py(kernels[0]).__globals__) if kernels else {}
    globs = dict(base)
    globs.update(binding)
    for h in helpers:
        py = _py(h)
        globs[py.__name__] = njit(inline="always")(_copy(py, f"{py.__name__}_{suffix}", globs))
    out = []
    for k in kernels:
        py = _py(k)
        fn = _copy(py, f"{py.__name__}_{suffix}", globs)
        out.append(njit(cache=cacheable, parallel=bool(parallel))(fn))
    result = tuple(out)
    _BOUND[key] = result
    return result


class ThreadChoice:
    """Serial or parallel kernel for each call, chosen from measured wall time.

    A ``prange`` kernel wins on a quiet machine and loses badly when another busy process
    (or the learner's torch threads) holds a core: a descheduled worker thread stalls the
    whole parallel region. Because every env owns its random streams, both kernels give
    bit-identical results, so the choice can change at any call. With ``mode="auto"`` the
    core times its kernel calls (seconds per call, exponentially weighted) and runs the
    faster one, re-measuring the other for ``probe_calls`` calls every ``probe_every`` calls,
    so the default is never much slower than serial under contention and keeps the parallel
    speed when the machine is quiet. ``mode="serial"`` / ``"parallel"`` fix the choice
    (``LOBWORLD_PARALLEL=0`` / ``1`` set it per process, ``parallel=False`` / ``True`` per core).
    Batches below ``min_envs`` run serial in ``auto`` mode (waking the threads costs more).
    """

    __slots__ = ("mode", "_ewma", "_seen", "_calls", "_probe_left", "_current", "probe_every", "probe_calls",
                 "alpha")

    def __init__(self, n_envs: int, parallel: bool | None = None, *, min_envs: int = PARALLEL_MIN_ENVS,
                 probe_every: int = 64, probe_calls: int = 4, alpha: float = 0.25):
        flag = os.environ.get("LOBWORLD_PARALLEL", "")
        if parallel is not None:
            self.mode = "parallel" if parallel else "serial"
        elif flag == "0":
            self.mode = "serial"
        elif flag == "1":
            self.mode = "parallel"
        elif n_envs < min_envs:
            self.mode = "serial"
        else:
            self.mode = "auto"
        self.probe_every = int(probe_every)
        self.probe_calls = int(probe_calls)
        self.alpha = float(alpha)
        self._ewma = [float("nan"), float("nan")]  # seconds per call: serial, parallel
        self._seen = [0, 0]  # calls timed per kernel (the first, which may compile, is not used)
        self._calls = 0
        self._probe_left = 0
        self._current = self.mode != "serial"

    @property
    def parallel(self) -> bool:
        """The kernel the next call will use (True: parallel)."""
        return self._current

    def choose(self) -> bool:
        """Which kernel to run now (True: parallel)."""
        if self.mode != "auto":
            return self._current
        s, p = self._ewma
        if s != s:  # never timed: try serial once
            return False
        if p != p:
            return True
        if self._probe_left > 0:
            return self._current
        self._calls += 1
        best = p <= s
        if self._calls % self.probe_every == 0:
            self._probe_left = self.probe_calls
            self._current = not best
        else:
            self._current = best
        return self._current

    def record(self, parallel: bool, seconds: float) -> None:
        """Report the wall time of a call of the ``parallel`` (or serial) kernel."""
        if self.mode != "auto":
            return
        k = 1 if parallel else 0
        self._seen[k] += 1
        if self._seen[k] == 1:
            return
        old = self._ewma[k]
        self._ewma[k] = seconds if old != old else (1.0 - self.alpha) * old + self.alpha * seconds
        if self._probe_left > 0:
            self._probe_left -= 1

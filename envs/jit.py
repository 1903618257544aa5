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
* editing the source file of a bound function, of the kernel, or of any compiled function
  they call by a global name (followed recursively, across modules, e.g. the shared
  :mod:`lobworld.envs.episode` helpers, or as ``module.fn``) changes the fingerprint, so the
  kernel is recompiled (Numba alone checks only the kernel's own file). Not detected: a
  compiled function passed in at run time as an argument; after editing such a function, delete the ``*.nbi`` / ``*.nbc`` files under ``__pycache__`` (or set
  ``NUMBA_CACHE_DIR`` to a fresh folder);
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
    (recursively) the compiled functions it calls by global name or closes over. ``None``
    without a source file."""
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
    globs = getattr(py, "__globals__", {})
    names = code.co_names
    called = [globs.get(name) for name in names]  # compiled functions it calls by global name
    for mod in [v for v in called if isinstance(v, types.ModuleType)]:  # ... or as ``module.fn``
        called.extend(getattr(mod, name, None) for name in names)
    for v in called:
        if isinstance(v, CPUDispatcher):
            sub = fingerprint(v, seen)
            if sub is None:
                return None
            parts.append(sub)
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
    bit-identical results, so the choice can change at any call.

    ``mode="auto"``: the core reports the wall time of every kernel call. The kernel in use
    (the *choice*) keeps an exponentially weighted mean of its seconds per call (weight
    ``alpha``); the other kernel is re-measured by a *probe*: ``probe_calls`` consecutive calls
    of it, averaged into a fresh estimate. The first call after a change of kernel (thread
    wake-up, cold caches: a cost paid once per switch) is never counted. The choice switches only when the other kernel is faster by more than
    ``margin`` (a fraction of the current estimate), so timing noise does not flip it. Probes
    come every ``probe_every`` calls after a switch and back off, doubling each time a probe
    confirms the choice, to one every ``max_probe_every`` calls (so on a steady machine the
    probes cost a small fraction of the calls). While the parallel kernel runs, every call is
    checked against the last serial estimate, so a load that arrives is seen at once; the
    serial kernel is left only on a probe's fresh evidence (a busy machine makes serial calls
    spiky, and switching to parallel on a spike is the wrong move under load), so a machine
    that turns quiet is seen at the next probe. The first call of each kernel (which may
    compile) is not used.

    ``mode="serial"`` / ``"parallel"`` fix the choice (``LOBWORLD_PARALLEL=0`` / ``1`` set it per
    process, ``parallel=False`` / ``True`` per core). Batches below ``min_envs`` run serial in
    ``auto`` mode (waking the threads costs more).
    """

    __slots__ = ("mode", "_ewma", "_seen", "_since", "_interval", "_probe_left", "_probe_sum", "_probe_n",
                 "_choice", "_current", "_last", "probe_every", "max_probe_every", "probe_calls", "alpha", "margin")

    def __init__(self, n_envs: int, parallel: bool | None = None, *, min_envs: int = PARALLEL_MIN_ENVS,
                 probe_every: int = 64, max_probe_every: int = 1024, probe_calls: int = 3, alpha: float = 0.25,
                 margin: float = 0.1):
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
        if not (int(probe_calls) >= 2 and 1 <= int(probe_every) <= int(max_probe_every)
                and 0.0 < alpha <= 1.0 and 0.0 <= margin < 1.0):
            raise ValueError("ThreadChoice: need probe_calls >= 2, 1 <= probe_every <= max_probe_every, "
                             "0 < alpha <= 1 and 0 <= margin < 1")
        self.probe_every = int(probe_every)
        self.max_probe_every = int(max_probe_every)
        self.probe_calls = int(probe_calls)
        self.alpha = float(alpha)
        self.margin = float(margin)
        self._ewma = [float("nan"), float("nan")]  # seconds per call: serial, parallel
        self._seen = [0, 0]  # calls timed per kernel (the first, which may compile, is not used)
        self._since = 0  # calls of the choice since the last probe or switch
        self._interval = self.probe_every
        self._probe_left = 0  # calls of the running probe still to come (the first one not counted)
        self._probe_sum = 0.0
        self._probe_n = 0
        self._choice = self.mode != "serial"
        self._current = self._choice
        self._last = -1  # the kernel of the last call (0 serial, 1 parallel)

    @property
    def parallel(self) -> bool:
        """The kernel the next call will use (True: parallel)."""
        return self._current

    def choose(self) -> bool:
        """Which kernel to run now (True: parallel)."""
        if self.mode != "auto":
            return self._current
        s, p = self._ewma
        if s != s:  # never timed: serial first
            self._current = False
        elif p != p:
            self._current = True
        elif self._probe_left > 0:
            self._current = not self._choice
        else:
            self._since += 1
            if self._since >= self._interval:  # start a probe of the other kernel
                self._since = 0
                self._probe_left = self.probe_calls
                self._probe_sum, self._probe_n = 0.0, 0
                self._current = not self._choice
            else:
                self._current = self._choice
        return self._current

    def _faster(self, k: int) -> bool:
        """Whether kernel ``k`` is faster than the other by more than the margin."""
        a, b = self._ewma[k], self._ewma[1 - k]
        return a == a and b == b and a < (1.0 - self.margin) * b

    def record(self, parallel: bool, seconds: float) -> None:
        """Report the wall time of a call of the ``parallel`` (or serial) kernel."""
        if self.mode != "auto":
            return
        k = 1 if parallel else 0
        changed = k != self._last  # the first call after the other kernel ran (thread wake-up, caches)
        self._last = k
        self._seen[k] += 1
        if self._seen[k] == 1:
            return
        if self._probe_left > 0 and bool(parallel) != self._choice:  # a probe call
            self._probe_left -= 1
            if not changed:
                self._probe_sum += seconds
                self._probe_n += 1
            if self._probe_left == 0 and self._probe_n:
                self._ewma[k] = self._probe_sum / self._probe_n
                if self._faster(k):
                    self._choice, self._interval = bool(parallel), self.probe_every
                else:
                    self._interval = min(2 * self._interval, self.max_probe_every)
            return
        if changed:
            return
        old = self._ewma[k]
        self._ewma[k] = seconds if old != old else (1.0 - self.alpha) * old + self.alpha * seconds
        if parallel and self._choice and self._faster(0):  # the parallel kernel got slower than serial
            self._choice, self._interval, self._since = False, self.probe_every, 0

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
  kernel is recompiled;
* a user's dynamics written in a notebook (no source file) still works, compiled without
  the disk cache.

Stale caches across files (:func:`install_cache_guard`, called by ``lobworld.envs`` before any
of its modules is imported, so before every lobworld kernel is decorated): Numba alone checks
only a cached function's own source file, so a ``cache=True`` function in one file that calls,
or inlines, a compiled function of another file kept its old machine code after that file was
edited. The guard makes Numba's own freshness check of the index file compare the
:func:`fingerprint` too, for every ``@njit(cache=True)`` function decorated after ``import
lobworld`` (user code included): editing the file of any compiled function or ``@intrinsic``
it calls by a global name, as ``module.fn`` or through a closure, at any depth, recompiles it;
unchanged sources still load from the cache. Not seen, so delete the ``*.nbi`` / ``*.nbc``
files under ``__pycache__`` (or point ``NUMBA_CACHE_DIR`` to a fresh folder) after editing:
a compiled function passed in at run time as an argument or reached through a container (a
global tuple of functions); a plain Python function compiled through ``@overload`` or
``register_jitable``; a function decorated before lobworld was imported; everything with
``LOBWORLD_NUMBA_CACHE_GUARD=0`` or ``NUMBA_CACHE_LOCATOR_CLASSES`` set. Switching the guard on
or off recompiles each function once per switch (the stored stamp differs).

Threading policy (one for every env): :func:`use_parallel` decides serial or ``prange``
kernels from the batch size and ``LOBWORLD_PARALLEL`` (``0`` never, ``1`` always, unset:
parallel from :data:`PARALLEL_MIN_ENVS` envs). Results are bit-identical either way,
because every env owns its random streams.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from numba import njit
from numba.core.registry import CPUDispatcher

__all__ = ["PARALLEL_MIN_ENVS", "ThreadChoice", "bind", "cache_guarded", "fingerprint", "install_cache_guard",
           "use_parallel"]

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


def _names(code: types.CodeType) -> list[str]:
    """The global and attribute names a function's code uses, with those of the functions
    defined inside it, in a fixed order."""
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(dict.fromkeys(c.co_names))
        stack.extend(k for k in reversed(c.co_consts) if isinstance(k, types.CodeType))
    return list(names)


def _referenced(py, names: list[str]) -> list:
    """The objects ``names`` denote among ``py``'s globals and, for a module among them, among its
    attributes (``module.fn``, ``package.module.fn``)."""
    globs = getattr(py, "__globals__", {})
    found = [globs.get(name) for name in names]
    mods = [v for v in found if isinstance(v, types.ModuleType)]
    seen: set[int] = set()
    while mods:
        mod = mods.pop(0)
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        attrs = vars(mod)  # the module's own names: no lazy __getattr__, no deprecation warning
        for name in names:
            v = attrs.get(name)
            if isinstance(v, types.ModuleType):
                mods.append(v)
            elif v is not None:
                found.append(v)
    return found


def _label(v: Any) -> str:
    """A function's dotted name (for what has no source file to hash)."""
    py = _py(v)
    return f"{getattr(py, '__module__', '')}.{getattr(py, '__qualname__', type(py).__name__)}"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def fingerprint(fn: Any, _seen: set | None = None, *, strict: bool = True) -> str | None:
    """Identity of a compiled function's code: qualname, module, its source file's hash, and
    (recursively) the compiled functions and ``@intrinsic`` definitions it calls by global name,
    as ``module.fn`` (also ``package.module.fn``) or closes over, also from functions defined
    inside it. ``None`` without a source file; with ``strict`` also when a compiled function it
    calls has none (without ``strict`` that callee counts by its name)."""
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

    def follow(v: Any, must: bool) -> bool:
        """Add ``v``'s fingerprint; False when it has none and ``must`` (the whole is then None)."""
        sub = fingerprint(v, seen, strict=strict)
        if sub is None:
            if must:
                return False
            sub = _label(v)
        parts.append(sub)
        return True

    for v in _referenced(py, _names(code)):
        if isinstance(v, CPUDispatcher):
            if not follow(v, strict):
                return None
        elif isinstance(getattr(v, "_defn", None), types.FunctionType):  # an @intrinsic: compiled into the caller
            follow(v._defn, False)
    for cell in py.__closure__ or ():
        try:
            v = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if isinstance(v, CPUDispatcher):
            if not follow(v, strict):
                return None
        elif isinstance(v, types.FunctionType):  # by name and source, not by repr (a memory address)
            follow(v, False)
        else:
            parts.append(_ADDRESS.sub("", repr(v)))  # no memory address: the same in every process
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


# ---- the guard on every @njit(cache=True) function ------------------------------------------
# Numba (numba/core/caching.py) asks the function's cache locator for a source stamp once, when
# the function is decorated (``Dispatcher.enable_caching`` -> ``Cache.__init__``), keeps it in the
# ``IndexDataCacheFile`` and pickles it into the index file (``.nbi``) with the overloads. On a
# load it unpickles the stored stamp and discards the whole index when ``stored != current``;
# a save writes the current stamp. The stamp below adds :func:`fingerprint` to Numba's own, so
# that check also fails when the file of any compiled callee changed. It is lazy because at
# decoration the callees defined further down the same file (and what they call) do not exist
# yet; the first compare or save comes at the first call, when they do. It pickles as a plain
# tuple, so the index file stays readable without lobworld (and by a process with the guard
# off, which then sees a different stamp and recompiles once).


class _DeepStamp:
    """A locator's source stamp and, computed when first compared or pickled, the function's
    non-strict :func:`fingerprint` (``None`` without a source file). Compares equal to, and
    pickles as, the plain tuple ``(stamp, fingerprint)``."""

    __slots__ = ("_base", "_py", "_value")

    def __init__(self, base: Any, py: Any):
        self._base = base
        self._py = py
        self._value: tuple | None = None

    def value(self) -> tuple:
        if self._value is None:
            try:
                fp = fingerprint(self._py, strict=False)
            except Exception:  # an odd global must not break compilation: Numba's own stamp then
                fp = None
            self._value = (self._base, fp)
            self._py = None
        return self._value

    def __eq__(self, other: object) -> bool:
        return self.value() == (other.value() if isinstance(other, _DeepStamp) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.value())

    def __reduce__(self):
        return tuple, (self.value(),)

    def __repr__(self) -> str:
        return f"_DeepStamp({self.value()!r})"


class _DeepStampLocator:
    """Mixin over one of Numba's cache locators: the same cache folder, file names and
    conditions; a :class:`_DeepStamp` as the source stamp."""

    _lobworld_cache_guard = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        py = kwargs.get("py_func", args[0] if args else None)
        self._lobworld_py_func = py if isinstance(py, types.FunctionType) else None

    def get_source_stamp(self):
        base = super().get_source_stamp()
        py = getattr(self, "_lobworld_py_func", None)
        return base if py is None else _DeepStamp(base, py)


def _deep_locator(cls: type) -> type:
    """``cls`` under :class:`_DeepStampLocator`, made once and kept as a module attribute (so that
    it pickles by reference like Numba's own)."""
    if getattr(cls, "_lobworld_cache_guard", False):
        return cls
    name = f"Deep{cls.__name__}"
    deep = globals().get(name)
    if not (isinstance(deep, type) and deep.__mro__[1:3] == (_DeepStampLocator, cls)):
        deep = type(cls)(name, (_DeepStampLocator, cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = deep
    return deep


def install_cache_guard() -> bool:
    """Make every ``@njit(cache=True)`` function decorated from now on, in this process, recompile
    when the source file of any compiled function it calls (followed as :func:`fingerprint`
    does) changed, not only its own file. Numba's cache locators (``CacheImpl._locator_classes``)
    are replaced in place by subclasses whose source stamp adds the fingerprint. Idempotent;
    returns whether the guard is in place. With ``LOBWORLD_NUMBA_CACHE_GUARD=0``, without that
    internal list (another Numba version) or with ``NUMBA_CACHE_LOCATOR_CLASSES`` set (Numba then
    uses those classes), it installs nothing and returns False: Numba's own check only."""
    if os.environ.get("LOBWORLD_NUMBA_CACHE_GUARD", "") == "0":
        return False
    try:
        from numba.core import caching, config

        if getattr(config, "CACHE_LOCATOR_CLASSES", None):
            return False
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
        classes = getattr(impl, "_locator_classes", None)
        if not (isinstance(classes, list) and classes
                and all(isinstance(c, type) and callable(getattr(c, "get_source_stamp", None))
                        and callable(getattr(c, "from_function", None)) for c in classes)):
            return False
        classes[:] = [_deep_locator(c) for c in classes]
    except Exception:
        return False
    return True


def cache_guarded(dispatcher: Any) -> bool:
    """Whether a compiled function's disk cache is under :func:`install_cache_guard`'s stamp
    (False for one without a disk cache, or decorated before the guard was installed)."""
    impl = getattr(getattr(dispatcher, "_cache", None), "_impl", None)
    return bool(getattr(getattr(impl, "locator", None), "_lobworld_cache_guard", False))


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

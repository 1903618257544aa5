"""Per-env, per-component random streams for Numba kernels.

Every env in a batch owns ``n_streams`` independent xoshiro256** generators
(one per model component: mid price, volume, fills, ...). The state is a
``uint64`` array of shape ``(n_envs, n_streams, 4)``; kernels draw from
``state[i, stream]`` only, so results do not depend on thread scheduling and a
component's draws do not depend on what another component consumed. That is
what gives bit-identical seeding and common random numbers across strategies.

Seeding follows ``numpy``: env ``i`` seeded with ``s`` builds
``SeedSequence(s)`` and gives stream ``c`` the child ``.spawn(n_streams)[c]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

_U = np.uint64
_MANTISSA_SCALE = 1.0 / 9007199254740992.0  # 2**-53


def seed_state(seed: int | None, n_streams: int) -> np.ndarray:
    """Return a ``(n_streams, 4)`` xoshiro state from ``SeedSequence(seed)``.

    ``seed=None`` draws fresh OS entropy.
    """
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    children = np.random.SeedSequence(seed).spawn(n_streams)
    out = np.empty((n_streams, 4), dtype=np.uint64)
    for c, child in enumerate(children):
        words = child.generate_state(4, np.uint64)
        if not words.any():  # the all-zero state is the one fixed point of xoshiro
            words[0] = _U(0x9E3779B97F4A7C15)
        out[c] = words
    return out


def seed_states(seeds: Sequence[int | None], n_streams: int) -> np.ndarray:
    """Stack :func:`seed_state` for several envs: shape ``(len(seeds), n_streams, 4)``."""
    return np.stack([seed_state(s, n_streams) for s in seeds]) if len(seeds) else np.empty(
        (0, n_streams, 4), np.uint64
    )


@njit(inline="always")
def _rotl(x, k):
    return (x << _U(k)) | (x >> _U(64 - k))


@njit(inline="always")
def next_u64(st):
    """Advance one xoshiro256** stream ``st`` (uint64[4]) and return 64 bits."""
    s0 = st[0]
    s1 = st[1]
    s2 = st[2]
    s3 = st[3]
    result = _rotl(s1 * _U(5), 7) * _U(9)
    t = s1 << _U(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    st[0] = s0
    st[1] = s1
    st[2] = s2
    st[3] = s3
    return result


@njit(inline="always")
def uniform(st):
    """Uniform double in the open interval (0, 1)."""
    return ((next_u64(st) >> _U(11)) + 0.5) * _MANTISSA_SCALE


def _ziggurat_tables(n: int = 128):
    """Marsaglia-Tsang (2000) ziggurat tables for the standard normal, 128 layers."""
    m1 = 2147483648.0  # 2**31
    dn = tn = 3.442619855899
    vn = 9.91256303526217e-3
    kn = np.zeros(n, dtype=np.int64)
    wn = np.zeros(n, dtype=np.float64)
    fn = np.zeros(n, dtype=np.float64)
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0] = int((dn / q) * m1)
    kn[1] = 0
    wn[0] = q / m1
    wn[n - 1] = dn / m1
    fn[0] = 1.0
    fn[n - 1] = math.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int((dn / tn) * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


_ZIG_K, _ZIG_W, _ZIG_F = _ziggurat_tables()
_ZIG_R = 3.442619855899


@njit(inline="always")
def _zig_draw(st):
    # layer index from the low 7 bits, signed 32-bit abscissa from the high 32 bits:
    # independent bits, avoiding the index/value correlation of the original code
    u = next_u64(st)
    iz = np.int64(u & _U(127))
    hz = np.int64(u >> _U(32))
    if hz >= 2147483648:
        hz -= 4294967296
    return iz, hz


# Not inlined: the slow path (about 1% of draws) would otherwise be copied into every caller,
# which multiplies the compile time of the kernels that draw normals several times.
@njit
def _normal_slow(st, iz, hz):
    while True:
        x = hz * _ZIG_W[iz]
        if iz == 0:  # tail beyond r, Marsaglia's exponential method
            while True:
                xt = -math.log(uniform(st)) / _ZIG_R
                yt = -math.log(uniform(st))
                if yt + yt >= xt * xt:
                    break
            return _ZIG_R + xt if hz > 0 else -_ZIG_R - xt
        if _ZIG_F[iz] + uniform(st) * (_ZIG_F[iz - 1] - _ZIG_F[iz]) < math.exp(-0.5 * x * x):
            return x
        iz, hz = _zig_draw(st)
        if abs(hz) < _ZIG_K[iz]:
            return hz * _ZIG_W[iz]


@njit(inline="always")
def normal(st):
    """Standard normal by the ziggurat method (Marsaglia & Tsang 2000).

    About 99% of draws take the fast path: one 64-bit draw, a compare and a
    multiply. The variable number of underlying draws stays inside this
    component's stream, so other streams are unaffected.
    """
    iz, hz = _zig_draw(st)
    if abs(hz) < _ZIG_K[iz]:
        return hz * _ZIG_W[iz]
    return _normal_slow(st, iz, hz)


@njit(inline="always")
def exponential(st):
    """Exponential with unit mean."""
    return -math.log(uniform(st))


@njit(inline="always")
def poisson(st, lam):
    """Poisson draw: Knuth's product method for small ``lam``, normal approximation above 30."""
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        k = int(math.floor(lam + math.sqrt(lam) * normal(st) + 0.5))
        return k if k > 0 else 0
    limit = math.exp(-lam)
    k = 0
    p = uniform(st)
    while p > limit:
        k += 1
        p *= uniform(st)
    return k


@njit(cache=True)
def draw_normals(state, stream, out):
    """Fill ``out[i, j]`` with normals from ``state[i, stream]`` (test/diagnostic helper)."""
    for i in range(out.shape[0]):
        st = state[i, stream]
        for j in range(out.shape[1]):
            out[i, j] = normal(st)

"""The Gaussian copula of the learned kernels, and the fast maths they use (re-exported from
:mod:`lobworld.envs.fastmath`, the one implementation of ``exp``/``tanh``/``sigmoid``/``clamp``)."""

from __future__ import annotations

import math

from llvmlite import binding as llvm_binding
from numba import njit, types
from numba.extending import get_cython_function_address

# fast transcendental functions: one implementation, at the simulation floor (lobworld.envs.fastmath)
from lobworld.envs.fastmath import clamp as _clamp  # noqa: F401  (re-exported)
from lobworld.envs.fastmath import exp as _exp  # noqa: F401
from lobworld.envs.fastmath import sigmoid as _sigmoid  # noqa: F401
from lobworld.envs.fastmath import tanh as _tanh  # noqa: F401


#: LLVM name of scipy's inverse standard normal CDF (cephes ``ndtri``) in the kernels
NDTRI_SYMBOL = "lobworld_scipy_ndtri"
_ndtri_registered = False


def register_ndtri() -> None:
    """Make :data:`NDTRI_SYMBOL` known to LLVM as scipy's ``ndtri`` (idempotent).

    The kernels call ``ndtri`` as an external symbol by name, so they stay disk-cacheable; the
    name must be registered before any kernel that calls it is compiled *or loaded from the
    cache* (a cached kernel is linked against it on load), and Numba has no hook there, so this
    module calls it once when first imported: the package's only import-time side effect."""
    global _ndtri_registered
    if not _ndtri_registered:
        llvm_binding.add_symbol(NDTRI_SYMBOL, get_cython_function_address("scipy.special.cython_special", "ndtri"))
        _ndtri_registered = True


register_ndtri()
_ndtri = types.ExternalFunction(NDTRI_SYMBOL, types.float64(types.float64))


@njit(inline="always")
def _couple(u, n, rho):
    """Gaussian copula: the uniform ``Phi(rho n + sqrt(1 - rho^2) Phi^-1(u))`` (``u`` itself when rho = 0).

    ``u`` ~ U(0, 1) and ``n`` ~ N(0, 1) independent give a uniform whose normal score has
    correlation ``rho`` with ``n``: the trade-imbalance category is drawn with it, so the
    imbalance and the OFI (``mu + sd n``) keep their marginals and get the copula correlation."""
    if rho == 0.0:
        return u
    z = rho * n + math.sqrt(1.0 - rho * rho) * _ndtri(u)
    return 0.5 * math.erfc(-z * 0.7071067811865476)

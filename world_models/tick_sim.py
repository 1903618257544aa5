"""Numba forward pass and sampler of the shipped tick GRU, batched over envs, driving one book per env.

Description
    :func:`pack_tick_weights` reads a ``lobworld.tick_gru/1`` checkpoint (the ``.npz`` of
    :func:`~lobworld.world_models.tick_model.save_tick_model`, torch-free) once into contiguous
    float64 arrays (:class:`TickWeights`). :func:`tick_forward` is the model's forward pass for
    ``n`` envs at once (encoder, GRU cell in torch's gate order r, z, n, every head), the reference
    that the tests compare with torch. :class:`TickSimulator` advances ``n_envs`` books message by
    message: per env and step it builds the model input from the env's previous event and its
    *current* book, advances the GRU, draws the next event from the heads, turns it into a
    LOBSTER-semantics message on that book and applies it. Only the head rows the draw needs are
    evaluated (time, type, the side pair of the drawn type, the level and size rows of the drawn
    (type, side)); nothing is allocated per message.

Input features (the same 23 columns as :func:`~lobworld.world_models.tick_model.tick_features`)
    previous event: type one-hot (5), side (+1 bid / -1 ask), ``clip(level, +-m) / m``,
    ``log(size / lot)``, ``log_dt`` (log seconds), ``dt_ns == 0``; book before the event:
    ``log1p(spread)`` (0 when a side is empty), ``log1p(size / lot)`` of the first 5 listed bid
    and ask levels, touch imbalance ``(B - A) / (B + A)`` (0 on an empty book), time of day
    ``(t_s - 34200) / 23400`` (columns ``X_SPREAD``, ``X_SIZE``, ``X_IMB``, ``X_TOD``; the clock is
    last, which ``TickModelConfig.time_of_day`` relies on). The first step of a run sees zeros for the
    previous event, as the first token of a tokenised stream does.

Sampling (one xoshiro256** stream per env, :mod:`lobworld.envs.rng`; draws in this order)
    1. inter-arrival: one uniform picks the mixture component ``k`` (softmax weights), one normal
       ``e``; ``y = mu_k + exp(clip(log_s_k, -6, 4)) * e`` log seconds, ``dt_ns = floor(exp(y) 1e9)``
       (capped at 1e13; a draw under 1 ns is a simultaneous event, ``dt_ns = 0``);
    2. type: one uniform over ``softmax(type logits)``;
    3. side given type: one uniform;
    4. level given (type, side): one uniform over the ``2 m + 1`` classes (``level = class - m``,
       ticks behind the same-side best, negative inside the spread);
    5. size bin given (type, side): one uniform; the size is the bin's ``SizeScale.centers``
       value rounded to whole shares (at least 1).
    Each categorical draw uses one uniform against the running sum of ``exp(l - max l)``.

Messages and the rules for impossible events (counted in ``counts``, columns ``C_*``)
    The reference price of a side is its best; for an empty side it is one tick inside the
    opposite best (as :mod:`lobworld.world_models.data.events` defines ``level``), and with both
    sides empty the side's last best. ``price = ref - level`` for bids, ``ref + level`` for asks.

    * a cancel, delete or execution drawn on an empty side is **redrawn**: type and marks again
      from the same heads (rejection, i.e. the draw conditioned on being possible; the time is
      kept), up to 16 tries, then it becomes a submit at level 0 (``C_REDRAW``, ``C_FORCED``);
    * submit (LOBSTER 1): a price that would cross or lock the opposite best is moved to one
      tick inside it (``C_CROSS_CLAMP``); a price not above 0 becomes 1 tick; a price beyond the
      ``depth`` kept levels of a full side is not stored (the message stands,
      ``C_BEYOND``); a new level that pushes a full side's deepest level out drops that level
      (``C_PUSHED_OUT``);
    * partial cancel (2) and delete (3): at the drawn price if a level rests there, else at the
      listed level nearest in price (ties to the touch; ``C_MOVED``); size capped at the resting
      size (``C_SIZE_CAPPED``);
    * visible execution (4): always at the same-side best (LOBSTER executions hit the touch;
      ``C_MOVED`` when the drawn level was not 0), size capped at the resting size there
      (``C_SIZE_CAPPED``): one message per step, it never walks the book;
    * hidden execution (5): leaves the book unchanged; its price is clamped inside the spread
      (at most the best ask - 1 for a bid, at least the best bid + 1 for an ask).
    So a generated book never crosses (best bid < best ask whenever both exist) and no size is
    ever negative; the level fed back to the GRU is the one of the applied message.

Output
    ``messages (n_envs, n_steps, 5)`` int64, columns ``M_TIME`` (ns after midnight), ``M_TYPE``
    (LOBSTER 1-5), ``M_SIZE`` (shares), ``M_PRICE`` (ticks), ``M_DIR`` (+1 bid side, -1 ask side,
    LOBSTER's direction of the resting order).
"""

from __future__ import annotations

import json
import math
import pathlib
import zipfile
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from lobworld.envs.rng import normal, seed_states, uniform
from lobworld.world_models.data.session import SESSION_LENGTH_S, SESSION_OPEN_S
from lobworld.world_models.learned.fastmath import _sigmoid, _tanh
from lobworld.world_models.tick_model import FORMAT, TickModelError, shipped_tick_weights

__all__ = ["TickWeights", "pack_tick_weights", "tick_forward", "TickSimulator", "draw_event_marks",
           "M_TIME", "M_TYPE", "M_SIZE", "M_PRICE", "M_DIR", "N_MCOL",
           "C_REDRAW", "C_FORCED", "C_CROSS_CLAMP", "C_BEYOND", "C_PUSHED_OUT", "C_MOVED", "C_SIZE_CAPPED",
           "N_CNT", "N_FEATURES", "X_SPREAD", "X_SIZE", "X_IMB", "X_TOD"]

N_TYPES = 5
N_PREV = N_TYPES + 5
TOP_K = 5
X_SPREAD = N_PREV
X_SIZE = X_SPREAD + 1  # bid levels 1..TOP_K, then ask levels
X_IMB = X_SIZE + 2 * TOP_K
X_TOD = X_IMB + 1
N_FEATURES = X_TOD + 1
if X_TOD != N_FEATURES - 1:  # pragma: no cover - a layout edit that breaks time_of_day's "last column"
    raise ImportError("tick_sim: the clock must be the last input column (TickModelConfig.time_of_day)")
MAX_DT_NS = 10 ** 13
MAX_REDRAW = 16

M_TIME, M_TYPE, M_SIZE, M_PRICE, M_DIR = 0, 1, 2, 3, 4
N_MCOL = 5
C_REDRAW, C_FORCED, C_CROSS_CLAMP, C_BEYOND, C_PUSHED_OUT, C_MOVED, C_SIZE_CAPPED = range(7)
N_CNT = 7

_NAMES = ("feat_mean", "feat_std", "enc.0.weight", "enc.0.bias", "gru.weight_ih_l0", "gru.bias_ih_l0",
          "gru.weight_hh_l0", "gru.bias_hh_l0")
_HEADS = ("time_head", "type_head", "side_head", "level_head", "size_head")


@dataclass(frozen=True, eq=False)
class TickWeights:
    """The tick GRU packed for the kernels (float64, C-contiguous).

    ``mean, std (F,)``; encoder ``we (E, F), be (E,)``; GRU ``wih (3H, E), bih, whh (3H, H), bhh``
    (gates r, z, n); every head stacked in ``wh (n_out, H + E), bh (n_out,)`` at row offsets
    ``off_time`` (3 K rows: weight logits, means, log sds), ``off_type`` (5), ``off_side``
    (2 per type), ``off_level`` (``n_levels`` per (type, side), ``type * 2 + side``, side 0 bid)
    and ``off_size`` (``n_size`` per (type, side))."""

    mean: np.ndarray
    std: np.ndarray
    we: np.ndarray
    be: np.ndarray
    wih: np.ndarray
    bih: np.ndarray
    whh: np.ndarray
    bhh: np.ndarray
    wh: np.ndarray
    bh: np.ndarray
    n_mix: int
    level_max: int
    n_size: int
    lot: float
    """Size unit of the features, shares (``SizeScale.lot``)."""
    centers: np.ndarray
    """Shares drawn for each size bin (``SizeScale.centers``)."""
    min_dt_s: float
    meta: dict

    @property
    def hidden(self) -> int:
        return self.whh.shape[1]

    @property
    def n_levels(self) -> int:
        return 2 * self.level_max + 1

    @property
    def offsets(self) -> tuple[int, int, int, int, int]:
        k, nl = self.n_mix, self.n_levels
        o_type = 3 * k
        o_side = o_type + N_TYPES
        o_level = o_side + 2 * N_TYPES
        o_size = o_level + 2 * N_TYPES * nl
        return 0, o_type, o_side, o_level, o_size

    def kernel_args(self) -> tuple:
        """The arrays in kernel order."""
        return (self.mean, self.std, self.we, self.be, self.wih, self.bih, self.whh, self.bhh, self.wh, self.bh)

    def dims(self) -> np.ndarray:
        """int64 ``[n_mix, level_max, n_size, off_time, off_type, off_side, off_level, off_size]``."""
        return np.array([self.n_mix, self.level_max, self.n_size, *self.offsets], np.int64)


def pack_tick_weights(source="GOOG") -> TickWeights:
    """Pack a tick-GRU checkpoint: ``source`` is a ticker with a shipped model ("GOOG", "AMZN") or a
    path to a ``.npz`` written by :func:`~lobworld.world_models.tick_model.save_tick_model`. No torch.

    Raises :class:`~lobworld.world_models.tick_model.TickModelError` naming the file and what is wrong
    (missing file, not an npz, no ``meta``, another format, a missing weight, a shape that does not fit
    the config, a non-finite weight)."""
    if isinstance(source, str) and source.upper() in ("GOOG", "AMZN") and not pathlib.Path(source).exists():
        path = shipped_tick_weights(source)
    else:
        path = pathlib.Path(source)
    if not path.is_file():
        raise TickModelError(f"{path}: no such tick-model checkpoint")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise TickModelError(f"{path}: not a tick-model checkpoint ({e})") from None
    if "meta" not in data:
        raise TickModelError(f"{path}: no 'meta' entry")
    try:
        meta = json.loads(bytes(data["meta"]).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TickModelError(f"{path}: 'meta' is not JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise TickModelError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        cfg = meta["config"]
        H, E, K, lm = int(cfg["hidden"]), int(cfg["embed"]), int(cfg["n_mix"]), int(cfg["level_max"])
        F, S = int(meta["n_features"]), int(meta["n_size_bins"])
        scale = meta["scale"]
        lot, centers = float(scale["lot"]), np.asarray(scale["centers"], np.float64)
        min_dt = float(meta.get("token_config", {}).get("min_dt_s", 1e-9))
    except (KeyError, TypeError, ValueError) as e:
        raise TickModelError(f"{path}: meta lacks or mis-states {e}") from None
    if F != N_FEATURES:
        raise TickModelError(f"{path}: n_features {F}, the simulator builds {N_FEATURES} (top_k={TOP_K})")
    if len(centers) != S:
        raise TickModelError(f"{path}: scale has {len(centers)} size centres, n_size_bins is {S}")
    nl = 2 * lm + 1
    need = {"feat_mean": (F,), "feat_std": (F,), "enc.0.weight": (E, F), "enc.0.bias": (E,),
            "gru.weight_ih_l0": (3 * H, E), "gru.bias_ih_l0": (3 * H,), "gru.weight_hh_l0": (3 * H, H),
            "gru.bias_hh_l0": (3 * H,)}
    rows = {"time_head": 3 * K, "type_head": N_TYPES, "side_head": 2 * N_TYPES,
            "level_head": 2 * N_TYPES * nl, "size_head": 2 * N_TYPES * S}
    for h, r in rows.items():
        need[f"{h}.weight"] = (r, H + E)
        need[f"{h}.bias"] = (r,)
    got = {}
    for k, shape in need.items():
        a = data.get(f"w/{k}")
        if a is None:
            raise TickModelError(f"{path}: weight {k!r} missing")
        if tuple(a.shape) != shape:
            raise TickModelError(f"{path}: weight {k!r} has shape {a.shape}, the config needs {shape}")
        if not np.isfinite(a).all():
            raise TickModelError(f"{path}: weight {k!r} has non-finite values")
        got[k] = np.ascontiguousarray(a, dtype=np.float64)
    if not (got["feat_std"] > 0).all():
        raise TickModelError(f"{path}: weight 'feat_std' has values <= 0")
    wh = np.ascontiguousarray(np.concatenate([got[f"{h}.weight"] for h in _HEADS]))
    bh = np.ascontiguousarray(np.concatenate([got[f"{h}.bias"] for h in _HEADS]))
    return TickWeights(mean=got["feat_mean"], std=got["feat_std"], we=got["enc.0.weight"], be=got["enc.0.bias"],
                       wih=got["gru.weight_ih_l0"], bih=got["gru.bias_ih_l0"], whh=got["gru.weight_hh_l0"],
                       bhh=got["gru.bias_hh_l0"], wh=wh, bh=bh, n_mix=K, level_max=lm, n_size=S, lot=lot,
                       centers=centers, min_dt_s=min_dt, meta=meta)


# ---- forward pass -------------------------------------------------------------------------------

@njit(inline="always")
def _cell(x, h, mean, std, we, be, wih, bih, whh, bhh, xs, z, gi, gh, h_out):
    """One step for one env: ``z = tanh(We (x - mean) / std + be)``, the GRU cell, ``h_out``.
    ``h_out`` may be ``h`` (both products are formed before it is written)."""
    F = x.shape[0]
    E = z.shape[0]
    H = h.shape[0]
    for f in range(F):
        xs[f] = (x[f] - mean[f]) / std[f]
    for e in range(E):
        acc = be[e]
        for f in range(F):
            acc += we[e, f] * xs[f]
        z[e] = _tanh(acc)
    for g in range(3 * H):
        a = bih[g]
        for e in range(E):
            a += wih[g, e] * z[e]
        gi[g] = a
        b = bhh[g]
        for j in range(H):
            b += whh[g, j] * h[j]
        gh[g] = b
    for j in range(H):
        r = _sigmoid(gi[j] + gh[j])
        u = _sigmoid(gi[H + j] + gh[H + j])
        nn = _tanh(gi[2 * H + j] + r * gh[2 * H + j])
        h_out[j] = (1.0 - u) * nn + u * h[j]


@njit(inline="always")
def _head_rows(wh, bh, lo, n, h, z, out):
    """``out[:n] = bh[lo:lo+n] + wh[lo:lo+n] @ [h, z]``."""
    H = h.shape[0]
    E = z.shape[0]
    for r in range(n):
        row = lo + r
        acc = bh[row]
        for j in range(H):
            acc += wh[row, j] * h[j]
        for j in range(E):
            acc += wh[row, H + j] * z[j]
        out[r] = acc


@njit(cache=True)
def tick_forward(x, h, mean, std, we, be, wih, bih, whh, bhh, wh, bh, h_out, z_out, heads_out):
    """Forward pass of ``n`` envs, one step: ``x (n, F)`` raw features, ``h (n, H)`` states;
    writes ``h_out (n, H)``, ``z_out (n, E)`` (encoder output) and ``heads_out (n, n_out)`` (every
    head's logits / parameters, stacked as :class:`TickWeights` documents)."""
    n, F = x.shape
    E = we.shape[0]
    H = whh.shape[1]
    xs = np.empty(F)
    gi = np.empty(3 * H)
    gh = np.empty(3 * H)
    for i in range(n):
        _cell(x[i], h[i], mean, std, we, be, wih, bih, whh, bhh, xs, z_out[i], gi, gh, h_out[i])
        _head_rows(wh, bh, 0, wh.shape[0], h_out[i], z_out[i], heads_out[i])
    return E


# ---- sampling -----------------------------------------------------------------------------------

@njit(inline="always")
def _categorical(logits, n, st):
    m = logits[0]
    for j in range(1, n):
        if logits[j] > m:
            m = logits[j]
    tot = 0.0
    for j in range(n):
        tot += math.exp(logits[j] - m)
    u = uniform(st) * tot
    c = 0.0
    for j in range(n):
        c += math.exp(logits[j] - m)
        if u < c:
            return j
    return n - 1


@njit(inline="always")
def _draw_y(tp, K, st):
    k = _categorical(tp, K, st)
    ls = tp[2 * K + k]
    if ls < -6.0:
        ls = -6.0
    elif ls > 4.0:
        ls = 4.0
    return tp[K + k] + math.exp(ls) * normal(st)


@njit(cache=True)
def draw_event_marks(heads, dims, st, n, out):
    """Test hook: ``n`` independent events from one fixed head vector ``heads (n_out,)`` (as written
    by :func:`tick_forward`), drawn as the simulator draws them (the same helpers and order) from the
    stream ``st`` (uint64[4]); writes ``out (n, 5)`` float64 columns ``y`` (log s), type, side, level
    class, size bin."""
    K, nl, S = dims[0], 2 * dims[1] + 1, dims[2]
    o_type, o_side, o_level, o_size = dims[4], dims[5], dims[6], dims[7]
    for r in range(n):
        out[r, 0] = _draw_y(heads[0:3 * K], K, st)
        t = _categorical(heads[o_type:o_type + N_TYPES], N_TYPES, st)
        s = _categorical(heads[o_side + 2 * t:o_side + 2 * t + 2], 2, st)
        ts = 2 * t + s
        lv = _categorical(heads[o_level + ts * nl:o_level + (ts + 1) * nl], nl, st)
        b = _categorical(heads[o_size + ts * S:o_size + (ts + 1) * S], S, st)
        out[r, 1] = t
        out[r, 2] = s
        out[r, 3] = lv
        out[r, 4] = b


# ---- book ---------------------------------------------------------------------------------------

@njit(inline="always")
def draw_marks(wh, bh, dims, hi, z, buf, base_t, nl, i, st):
    """Draw the marks of one event from the heads (``buf[base_t:base_t + N_TYPES]`` already holds
    the type logits): type, side given type, level class and size bin given (type, side), from the
    stream ``st``. A cancel, delete or visible execution on a side with no level (``nl[i, s] == 0``)
    is drawn again, at most ``MAX_REDRAW`` times. Returns ``(typ, side, level_class, size_bin, ok,
    redraws, first_ts)``: ``ok`` False when every try failed, ``redraws`` the failed tries, and
    ``first_ts = 2 * type + side`` of the first try."""
    lm, S = dims[1], dims[2]
    nlev = 2 * lm + 1
    o_side, o_level, o_size = dims[5], dims[6], dims[7]
    typ = 0
    s = 0
    lvc = lm
    b = 0
    first_ts = -1
    redraws = 0
    for _ in range(MAX_REDRAW):
        typ = _categorical(buf[base_t:], N_TYPES, st)
        _head_rows(wh, bh, o_side + 2 * typ, 2, hi, z, buf[base_t + N_TYPES:])
        s = _categorical(buf[base_t + N_TYPES:], 2, st)
        ts = 2 * typ + s
        if first_ts < 0:
            first_ts = ts
        base = base_t + N_TYPES + 2
        _head_rows(wh, bh, o_level + ts * nlev, nlev, hi, z, buf[base:])
        lvc = _categorical(buf[base:], nlev, st)
        _head_rows(wh, bh, o_size + ts * S, S, hi, z, buf[base:])
        b = _categorical(buf[base:], S, st)
        if typ == 0 or typ == 4 or nl[i, s] > 0:
            return typ, s, lvc, b, True, redraws, first_ts
        redraws += 1
    return typ, s, lvc, b, False, redraws, first_ts


@njit(inline="always")
def _better(s, p, q):
    return p > q if s == 0 else p < q


@njit(inline="always")
def _ref(i, s, px, nl, last):
    """Reference price of side ``s`` (0 bid, 1 ask) of env ``i``."""
    if nl[i, s] > 0:
        return px[i, s, 0]
    o = 1 - s
    if nl[i, o] > 0:
        return px[i, o, 0] - 1 if s == 0 else px[i, o, 0] + 1
    return last[i, s]


@njit(inline="always")
def _insert(i, s, p, q, px, sz, nl, cnt):
    n = nl[i, s]
    D = px.shape[2]
    j = 0
    while j < n and _better(s, px[i, s, j], p):
        j += 1
    if j < n and px[i, s, j] == p:
        sz[i, s, j] += q
        return
    if j >= D:
        cnt[i, C_BEYOND] += 1
        return
    if n == D:
        cnt[i, C_PUSHED_OUT] += 1
        n -= 1
    for k in range(n, j, -1):
        px[i, s, k] = px[i, s, k - 1]
        sz[i, s, k] = sz[i, s, k - 1]
    px[i, s, j] = p
    sz[i, s, j] = q
    nl[i, s] = n + 1


@njit(inline="always")
def _take(i, s, j, q, px, sz, nl):
    sz[i, s, j] -= q
    if sz[i, s, j] == 0:
        n = nl[i, s]
        for k in range(j, n - 1):
            px[i, s, k] = px[i, s, k + 1]
            sz[i, s, k] = sz[i, s, k + 1]
        px[i, s, n - 1] = 0
        sz[i, s, n - 1] = 0
        nl[i, s] = n - 1


@njit(inline="always")
def _nearest(i, s, p, px, nl):
    best = 0
    dist = abs(px[i, s, 0] - p)
    for j in range(1, nl[i, s]):
        d = abs(px[i, s, j] - p)
        if d < dist:
            best = j
            dist = d
    return best


@njit(inline="always")
def _level_at(i, s, p, px, nl, counts, c_moved):
    """The index of side ``s``'s level at price ``p``; without one, of the level nearest in price
    (ties to the touch), counted in ``counts[i, c_moved]``."""
    j = 0
    while j < nl[i, s] and px[i, s, j] != p:
        j += 1
    if j == nl[i, s]:
        counts[i, c_moved] += 1
        return _nearest(i, s, p, px, nl)
    return j


@njit(inline="always")
def _at_level(i, s, j, q, px, sz, counts, c_capped):
    """``(p, q)``: level ``j``'s price, and ``q`` capped at its size (counted in ``counts[i, c_capped]``)."""
    if q > sz[i, s, j]:
        counts[i, c_capped] += 1
        return px[i, s, j], sz[i, s, j]
    return px[i, s, j], q


@njit(inline="always")
def _context(i, t_ns, px, sz, nl, lot, x):
    """Book columns of the model input of env ``i`` (before the next event)."""
    spread = 0.0
    if nl[i, 0] > 0 and nl[i, 1] > 0:
        spread = float(px[i, 1, 0] - px[i, 0, 0])
    x[X_SPREAD] = math.log1p(spread)
    for s in range(2):
        for k in range(TOP_K):
            v = float(sz[i, s, k]) if k < nl[i, s] else 0.0
            x[X_SIZE + s * TOP_K + k] = math.log1p(v / lot)
    b = float(sz[i, 0, 0]) if nl[i, 0] > 0 else 0.0
    a = float(sz[i, 1, 0]) if nl[i, 1] > 0 else 0.0
    x[X_IMB] = (b - a) / (b + a) if b + a > 0 else 0.0
    x[X_TOD] = (t_ns * 1e-9 - SESSION_OPEN_S) / SESSION_LENGTH_S


@njit(cache=True, fastmath=True)
def _run_env(i, n_steps, x, h, t_ns, px, sz, nl, last, rng, mean, std, we, be, wih, bih, whh, bhh, wh, bh,
             dims, centers, lot, min_dt_s, xs, z, gi, gh, buf, out, cnt):
    K, lm = dims[0], dims[1]
    o_type = dims[4]
    st = rng[i, 0]
    log_min = math.log(min_dt_s)
    for k in range(n_steps):
        _context(i, t_ns[i], px, sz, nl, lot, x[i])
        _cell(x[i], h[i], mean, std, we, be, wih, bih, whh, bhh, xs, z, gi, gh, h[i])
        hi = h[i]
        _head_rows(wh, bh, 0, 3 * K, hi, z, buf)
        y = _draw_y(buf, K, st)
        dts = math.exp(y) * 1e9
        dt = np.int64(MAX_DT_NS) if dts >= MAX_DT_NS else np.int64(math.floor(dts))
        t_ns[i] += dt
        _head_rows(wh, bh, o_type, N_TYPES, hi, z, buf[3 * K:])
        typ, s, lvc, b, ok, redraws, _ = draw_marks(wh, bh, dims, hi, z, buf, 3 * K, nl, i, st)
        cnt[i, C_REDRAW] += redraws
        if not ok:
            cnt[i, C_FORCED] += 1
            typ = 0
            lvc = lm
        level = lvc - lm
        q = np.int64(round(centers[b]))
        if q < 1:
            q = 1
        ref = _ref(i, s, px, nl, last)
        p = ref - level if s == 0 else ref + level
        o = 1 - s
        if typ == 0:
            if nl[i, o] > 0 and not _better(o, p, px[i, o, 0]):
                p = px[i, o, 0] - 1 if s == 0 else px[i, o, 0] + 1
                cnt[i, C_CROSS_CLAMP] += 1
            if p < 1:
                p = 1
            _insert(i, s, p, q, px, sz, nl, cnt)
        elif typ == 4:
            if nl[i, o] > 0 and not _better(o, p, px[i, o, 0]):
                p = px[i, o, 0] - 1 if s == 0 else px[i, o, 0] + 1
            if p < 1:
                p = 1
        else:
            if typ == 3:
                j = 0
                if level != 0:
                    cnt[i, C_MOVED] += 1
            else:
                j = _level_at(i, s, p, px, nl, cnt, C_MOVED)
            p, q = _at_level(i, s, j, q, px, sz, cnt, C_SIZE_CAPPED)
            _take(i, s, j, q, px, sz, nl)
        level = ref - p if s == 0 else p - ref
        for c in range(2):
            if nl[i, c] > 0:
                last[i, c] = px[i, c, 0]
        out[i, k, M_TIME] = t_ns[i]
        out[i, k, M_TYPE] = typ + 1
        out[i, k, M_SIZE] = q
        out[i, k, M_PRICE] = p
        out[i, k, M_DIR] = 1 if s == 0 else -1
        xi = x[i]
        for c in range(N_TYPES):
            xi[c] = 0.0
        xi[typ] = 1.0
        xi[N_TYPES] = 1.0 if s == 0 else -1.0
        lc = level if level < lm else lm
        if lc < -lm:
            lc = -lm
        xi[N_TYPES + 1] = lc / lm
        xi[N_TYPES + 2] = math.log(q / lot)
        dsec = dt * 1e-9
        xi[N_TYPES + 3] = math.log(dsec) if dsec > min_dt_s else log_min
        xi[N_TYPES + 4] = 1.0 if dt == 0 else 0.0


@njit(cache=True)
def tick_sim_run(n_steps, x, h, t_ns, px, sz, nl, last, rng, mean, std, we, be, wih, bih, whh, bhh, wh, bh,
                 dims, centers, lot, min_dt_s, out, cnt):
    """Advance every env ``n_steps`` messages (serial over envs). State: ``x (n, F)`` (the previous
    event's columns), ``h (n, H)``, ``t_ns (n,)``, books ``px, sz (n, 2, D)`` int64 (side 0 bid, 1 ask,
    best first), ``nl (n, 2)`` levels in use, ``last (n, 2)`` last best per side, ``rng (n, 1, 4)``;
    writes ``out (n, n_steps, N_MCOL)`` and adds to ``cnt (n, N_CNT)``."""
    F = x.shape[1]
    E = we.shape[0]
    H = whh.shape[1]
    xs = np.empty(F)
    z = np.empty(E)
    gi = np.empty(3 * H)
    gh = np.empty(3 * H)
    buf = np.empty(wh.shape[0])
    for i in range(x.shape[0]):
        _run_env(i, n_steps, x, h, t_ns, px, sz, nl, last, rng, mean, std, we, be, wih, bih, whh, bhh, wh, bh,
                 dims, centers, lot, min_dt_s, xs, z, gi, gh, buf, out, cnt)


@njit(cache=True, parallel=True)
def tick_sim_run_parallel(n_steps, x, h, t_ns, px, sz, nl, last, rng, mean, std, we, be, wih, bih, whh, bhh, wh,
                          bh, dims, centers, lot, min_dt_s, out, cnt, ws):
    """:func:`tick_sim_run` with ``prange`` over envs; ``ws (n_threads, W)`` float64 workspace rows
    (one per chunk; ``W = F + E + 6 H + n_out``). Results equal the serial kernel bit for bit."""
    n = x.shape[0]
    F = x.shape[1]
    E = we.shape[0]
    H = whh.shape[1]
    nw = ws.shape[0]
    per = (n + nw - 1) // nw
    for c in numba.prange(nw):
        w = ws[c]
        xs = w[0:F]
        z = w[F:F + E]
        gi = w[F + E:F + E + 3 * H]
        gh = w[F + E + 3 * H:F + E + 6 * H]
        buf = w[F + E + 6 * H:]
        for i in range(c * per, min(n, (c + 1) * per)):
            _run_env(i, n_steps, x, h, t_ns, px, sz, nl, last, rng, mean, std, we, be, wih, bih, whh, bhh, wh, bh,
                     dims, centers, lot, min_dt_s, xs, z, gi, gh, buf, out, cnt)


# ---- host ---------------------------------------------------------------------------------------

class TickSimulator:
    """``n_envs`` books driven by the tick GRU, message by message (see the module docstring).

    Arguments
        weights: a :class:`TickWeights` (or what :func:`pack_tick_weights` accepts).
        n_envs: number of envs.
        depth: price levels kept per side (int >= 1).
        parallel: use the ``prange`` kernel (bit-identical to the serial one).

    State (struct of arrays, leading dimension ``n_envs``): ``px, sz (n, 2, depth)`` int64 ticks /
    shares, ``nl (n, 2)``, ``h (n, H)``, ``x (n, F)``, ``t_ns (n,)``, ``rng (n, 1, 4)``, ``counts
    (n, N_CNT)``."""

    def __init__(self, weights="GOOG", n_envs: int = 1, depth: int = 10, parallel: bool = False):
        if not isinstance(weights, TickWeights):
            weights = pack_tick_weights(weights)
        if not (isinstance(n_envs, (int, np.integer)) and n_envs >= 1):
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
        if not (isinstance(depth, (int, np.integer)) and depth >= 1):
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self.w = weights
        self.n_envs, self.depth, self.parallel = int(n_envs), int(depth), bool(parallel)
        n, H = self.n_envs, weights.hidden
        self.px = np.zeros((n, 2, depth), np.int64)
        self.sz = np.zeros((n, 2, depth), np.int64)
        self.nl = np.zeros((n, 2), np.int64)
        self.last = np.zeros((n, 2), np.int64)
        self.h = np.zeros((n, H))
        self.x = np.zeros((n, N_FEATURES))
        self.t_ns = np.zeros(n, np.int64)
        self.rng = np.zeros((n, 1, 4), np.uint64)
        self.counts = np.zeros((n, N_CNT), np.int64)
        self._dims = weights.dims()
        nt = max(1, numba.get_num_threads())
        self._ws = np.zeros((nt, N_FEATURES + weights.we.shape[0] + 6 * H + weights.wh.shape[0]))

    def reset(self, seeds, bid_px, bid_sz, ask_px, ask_sz, t_ns, h0=None) -> None:
        """Start every env from a book: ``bid_px, bid_sz, ask_px, ask_sz`` of shape ``(L,)`` (shared)
        or ``(n_envs, L)``, ticks / shares, best first, a size of 0 ending a side; ``t_ns`` ns after
        midnight (scalar or ``(n_envs,)``); ``seeds`` an int (env ``i`` gets ``seed + i``) or one
        seed per env; ``h0 (H,)`` or ``(n_envs, H)`` a warm GRU state (default zeros)."""
        n, D = self.n_envs, self.depth
        seeds = [int(seeds) + i for i in range(n)] if np.isscalar(seeds) else [int(s) for s in seeds]
        if len(seeds) != n:
            raise ValueError(f"seeds: {len(seeds)} seeds for {n} envs")
        self.rng[:] = seed_states(seeds, 1)
        self.px[:] = 0
        self.sz[:] = 0
        self.nl[:] = 0
        for s, (p, q) in enumerate(((bid_px, bid_sz), (ask_px, ask_sz))):
            p = np.atleast_2d(np.asarray(p, np.int64))
            p = np.broadcast_to(p, (n, p.shape[1]))
            q = np.broadcast_to(np.asarray(q, np.int64), p.shape)
            if (q < 0).any():
                raise ValueError(f"{('bid_sz', 'ask_sz')[s]}: negative size")
            for i in range(n):
                k = 0
                for j in range(p.shape[1]):
                    if q[i, j] <= 0 or k >= D:
                        break
                    if k and not _better(s, self.px[i, s, k - 1], p[i, j]):
                        raise ValueError(f"{('bid_px', 'ask_px')[s]}: levels not strictly ordered best first "
                                         f"(env {i}, level {j})")
                    self.px[i, s, k] = p[i, j]
                    self.sz[i, s, k] = q[i, j]
                    k += 1
                self.nl[i, s] = k
        both = (self.nl > 0).all(axis=1)
        if (self.px[both, 0, 0] >= self.px[both, 1, 0]).any():
            raise ValueError("reset: the start book is crossed or locked (best bid >= best ask)")
        if not (self.nl > 0).any(axis=1).all():
            raise ValueError("reset: both sides of a start book are empty (no reference price)")
        self.last[:] = self.px[:, :, 0]
        self.t_ns[:] = np.broadcast_to(np.asarray(t_ns, np.int64), (n,))
        self.x[:] = 0.0
        self.h[:] = 0.0 if h0 is None else np.broadcast_to(np.asarray(h0, np.float64), self.h.shape)
        self.counts[:] = 0

    def run(self, n_steps: int, out: np.ndarray | None = None) -> np.ndarray:
        """Advance every env ``n_steps`` messages; returns ``(n_envs, n_steps, N_MCOL)`` int64
        (written into ``out`` when given, e.g. a buffer reused across calls)."""
        if out is None:
            out = np.empty((self.n_envs, n_steps, N_MCOL), np.int64)
        w = self.w
        args = (n_steps, self.x, self.h, self.t_ns, self.px, self.sz, self.nl, self.last, self.rng,
                *w.kernel_args(), self._dims, w.centers, w.lot, w.min_dt_s, out, self.counts)
        if self.parallel:
            tick_sim_run_parallel(*args, self._ws)
        else:
            tick_sim_run(*args)
        return out

"""The agent-impact channel of the learned market (``LearnedDynamics(impact="sqrt")``).

State per env: ``X_p`` (the agent's cumulative signed shares) and ``X_t`` (the same, decaying by
``e = exp(-dt / tau)`` at the end of every env step). The agent displaces the mid by
``D = w F(X_p) + (1 - w) F(X_t)``, ``F(x) = sign(x) c |x|^delta``, ``c = Y sigma_ref / V_ref^delta``
(session constants: the volume multiplier of the step does not rescale ``D``)
from the asset's fitted :class:`ImpactModel` (``world_models/assets/fitted/*.json``). An order ``q``
pays ``mid0 + sign(q) spread0 / 2 + (mean of D along X -> X + q) - D``; the GRU sees only the
market's own flow, so ``mid - PERM_IMPACT`` is the market without the agent (common random numbers).

All checks run on the shipped 1-minute model and compare against closed forms of the formulas
above, with the constants read from the fitted JSON files.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lobworld.envs.dynamics import (
    IMBALANCE,
    LAST_RET,
    MID,
    N_MARKET,
    PERM_IMPACT,
    SIGMA,
    SPREAD,
    TEMP_IMPACT,
    VOLUME,
)
from lobworld.envs.rng import seed_state, seed_states
from lobworld.world_models.checkpoint import load_checkpoint
from lobworld.world_models.dynamics_model import N_FEATURES
from lobworld.world_models.impact import FITTED_DIR, ImpactModel, ImpactParams
from lobworld.world_models.learned import (
    BATCH_CHUNK,
    DEFAULT_CHECKPOINT,
    M_H,
    M_OH,
    M_OIMP,
    M_OX,
    N_Q,
    Q_IC,
    Q_IDEC,
    Q_IDEL,
    Q_IMODE,
    Q_IPF,
    Q_TRACK,
    LearnedDynamics,
    LegacyGRUImpactDynamics,
    learned_batch_reset,
    learned_batch_step,
)

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")

DT = 60.0
HORIZON_S = 120.0  # RunRule.horizon_s: where the fitted permanent fraction was read


def fitted(asset: str) -> dict:
    """The ImpactParams fitted on the shipped LOBSTER day of ``asset``, read from the JSON by hand."""
    return json.loads((FITTED_DIR / f"{asset.lower()}.json").read_text())["impact"]["params"]


@pytest.fixture(scope="module")
def ck():
    return load_checkpoint(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def goog(ck):
    return LearnedDynamics(ck, asset="GOOG")


def G(x: float, c: float, d: float) -> float:
    """Antiderivative of F(x) = sign(x) c |x|^d (even): c |x|^(1 + d) / (1 + d)."""
    return c * abs(x) ** (1.0 + d) / (1.0 + d)


def F(x: float, c: float, d: float) -> float:
    return math.copysign(c * abs(x) ** d, x)


def run(dyn, seed, qs, vms=None, dt=DT):
    """One env stepped by ``step_fn`` with orders ``qs``; returns (prices, rows before each step + final)."""
    args = dyn.args(1, dt)
    row = np.zeros(dyn.n_state)
    st = seed_state(seed, 1)[0]
    dyn.reset_fn(0, row, args, st)
    rows = [row.copy()]
    prices = []
    for k, q in enumerate(qs):
        vm = 1.0 if vms is None else float(vms[k])
        prices.append(dyn.step_fn(0, row, args, st, float(q), vm))
        rows.append(row.copy())
    return np.array(prices), np.array(rows), int(args[11][M_OIMP]), st


# ---------------------------------------------------------------------------
# 1. common random numbers: the agent moves the mid by D and nothing else
# ---------------------------------------------------------------------------
def test_agent_flow_leaves_the_market_path_unchanged_and_shifts_the_mid_by_D(goog):
    qs = [500.0, 1200.0, 0.0, -300.0, 2000.0, 0.0, 0.0, -4000.0, 0.0, 250.0]
    p0, r0, oimp, st0 = run(goog, 7, [0.0] * len(qs))
    p1, r1, _, st1 = run(goog, 7, qs)
    assert np.array_equal(st0, st1)  # the same draws whatever q
    # the market's own path: bit for bit the same (the GRU never sees the agent)
    for col in (VOLUME, SPREAD, SIGMA, IMBALANCE):
        assert np.array_equal(r0[:, col], r1[:, col]), col
    meta = goog.bundle(1, DT).args[11]
    oh, H = int(meta[M_OH]), int(meta[M_H])
    assert np.array_equal(r0[:, oh:oh + H], r1[:, oh:oh + H])
    # the mid differs by exactly the displacement D = PERM_IMPACT, step by step
    assert np.all(r0[:, PERM_IMPACT] == 0.0) and np.all(p0 == r0[:-1, MID])
    assert np.allclose(r1[:, MID] - r0[:, MID], r1[:, PERM_IMPACT], rtol=0, atol=1e-9)
    assert np.allclose(r1[1:, LAST_RET] - r0[1:, LAST_RET], np.diff(r1[:, PERM_IMPACT]), rtol=0, atol=1e-9)
    assert np.all(np.abs(r1[1:, PERM_IMPACT]) > 1e-3)  # not vacuous: D is cents, not zero
    # the state: X_p is the cumulative signed flow
    assert np.allclose(r1[1:, oimp], np.cumsum(qs), rtol=0, atol=1e-9)
    # a zero order is priced at the pre-step mid even while D decays
    z = np.array(qs) == 0.0
    assert np.array_equal(p1[z], r1[:-1][z, MID]) and np.all(r1[1:][z, TEMP_IMPACT] == 0.0)


# ---------------------------------------------------------------------------
# 2. closed form of one order from X = 0
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("asset", ["GOOG", "AMZN"])
def test_impact_columns_come_from_the_fitted_json(ck, asset):
    dyn = LearnedDynamics(ck, asset=asset)
    f = fitted(asset)
    c, d, w, e = dyn.impact_columns(asset, DT)
    assert c == pytest.approx(f["Y"] * f["sigma_ref"] / f["V_ref"] ** f["delta"], rel=1e-12)
    assert d == f["delta"]
    assert w + (1.0 - w) * math.exp(-HORIZON_S * d / 60.0) == pytest.approx(f["permanent_fraction"], abs=1e-12)
    assert 0.0 < w < f["permanent_fraction"] and e == pytest.approx(math.exp(-1.0), rel=1e-15)
    # the per-env parameter rows the kernels read
    P = dyn.param_rows(3, DT)
    assert P.shape == (3, N_Q)
    assert np.all(P[:, Q_IMODE] == 1.0) and np.all(P[:, Q_TRACK] == 0.0)
    assert np.all(P[:, [Q_IC, Q_IDEL, Q_IPF, Q_IDEC]] == np.array([c, d, w, e]))
    # the decay is per env step: dt = 120 s decays twice as much per step
    assert dyn.impact_columns(asset, 2 * DT)[3] == pytest.approx(math.exp(-2.0), rel=1e-15)


@pytest.mark.parametrize("asset,q,vm", [("GOOG", 1500.0, 1.0), ("GOOG", -1500.0, 1.0), ("AMZN", 3000.0, 1.0),
                                        ("AMZN", -700.0, 0.5)])
def test_single_order_from_flat_has_the_closed_form_price_and_mid_jump(ck, asset, q, vm):
    dyn = LearnedDynamics(ck, asset=asset)
    c1, d, w, e = dyn.impact_columns(asset, DT)
    c = c1  # session constants: the step's volume multiplier does not change the impact
    s = math.copysign(1.0, q)
    p0, r0, _, _ = run(dyn, 3, [0.0], [vm])
    p1, r1, oimp, _ = run(dyn, 3, [q], [vm])
    mid0, spr0 = r1[0, MID], r1[0, SPREAD]
    temp = c * abs(q) ** d / (1.0 + d)  # mean of F over 0 -> q
    assert p1[0] == pytest.approx(mid0 + s * (0.5 * spr0 + temp), rel=1e-12)
    assert r1[1, TEMP_IMPACT] == pytest.approx(temp, rel=1e-9)
    jump = s * (w * c * abs(q) ** d + (1.0 - w) * c * (abs(q) * e) ** d)  # X_t decays at the step end
    assert r1[1, PERM_IMPACT] == pytest.approx(jump, rel=1e-12)
    assert r1[1, MID] - r0[1, MID] == pytest.approx(jump, rel=1e-9)
    assert (r1[1, oimp], r1[1, oimp + 1]) == pytest.approx((q, q * e), rel=1e-15)
    # the last share pays the full displacement F(q) = (1 + delta) x the mean
    assert abs(F(q, c, d)) == pytest.approx((1.0 + d) * temp, rel=1e-12)


# ---------------------------------------------------------------------------
# 3. the square-root law
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("asset", ["GOOG", "AMZN"])
def test_peak_impact_follows_the_fitted_power_law(ck, asset):
    dyn = LearnedDynamics(ck, asset=asset)
    f = fitted(asset)
    c, d, w, e = dyn.impact_columns(asset, DT)
    n = 5
    Qs = np.geomspace(50.0, 5000.0, 7)  # two decades
    peaks = {}
    for vm in (1.0, 2.0):
        _, r0, _, _ = run(dyn, 11, [0.0] * n, [vm] * n)
        peaks[vm] = np.array([run(dyn, 11, [Q / n] * n, [vm] * n)[1][n, MID] - r0[n, MID] for Q in Qs])
    slope = np.polyfit(np.log(Qs), np.log(peaks[1.0]), 1)[0]
    assert slope == pytest.approx(f["delta"], abs=0.02)
    assert slope == pytest.approx(d, abs=1e-9)  # exactly the exponent: D is homogeneous in Q
    # level: X_t after n equal orders with a decay after each is (Q / n) (e + e^2 + ... + e^n)
    xt = sum(e ** j for j in range(1, n + 1)) / n
    assert np.allclose(peaks[1.0], c * Qs ** d * (w + (1.0 - w) * xt ** d), rtol=1e-9, atol=0)
    # the intraday volume multiplier does not rescale the impact (c is a session constant, as fitted)
    assert np.allclose(peaks[2.0], peaks[1.0], rtol=1e-12, atol=0)
    # in units of the fitted law: the instantaneous peak of a single order is Y sigma (Q/V)^delta
    assert c * 1000.0 ** d == pytest.approx(f["Y"] * f["sigma_ref"] * (1000.0 / f["V_ref"]) ** f["delta"], rel=1e-12)


# ---------------------------------------------------------------------------
# 4. decay and permanence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [60.0, 30.0])
def test_displacement_decays_to_the_permanent_part_and_matches_the_fitted_fraction(ck, tau):
    dyn = LearnedDynamics(ck, asset="GOOG", impact_decay_s=tau)
    pf = fitted("GOOG")["permanent_fraction"]
    c, d, w, e = dyn.impact_columns("GOOG", DT)
    q, n_after = 2000.0, 8
    _, r, oimp, _ = run(dyn, 5, [q] + [0.0] * n_after)
    D = r[1:, PERM_IMPACT]
    k = np.arange(1, n_after + 2)
    assert np.allclose(D, c * q ** d * (w + (1.0 - w) * e ** (d * k)), rtol=1e-12, atol=0)
    assert np.all(np.diff(D) < 0) and np.all(D > w * c * q ** d)
    assert D[-1] == pytest.approx(w * c * q ** d, rel=1e-3 if tau == 30.0 else 2e-2)
    assert np.all(r[1:, oimp] == q)  # X_p never decays
    # 120 s after the order (end of the second 60 s step) over its instantaneous peak F(q):
    # w + (1 - w) exp(-120 delta / tau), the fitted permanent fraction
    assert D[1] / (c * q ** d) == pytest.approx(pf, abs=1e-9)
    # as seen at step ends only (peak read after the first step's decay): a larger ratio
    assert D[2] / D[0] == pytest.approx((w + (1 - w) * e ** (3 * d)) / (w + (1 - w) * e ** d), rel=1e-12)
    # one 120 s step (two model bars): the same fraction after a single step
    _, r2, _, _ = run(dyn, 5, [q], dt=2 * DT)
    assert r2[1, PERM_IMPACT] / (c * q ** d) == pytest.approx(pf, abs=1e-9)


# ---------------------------------------------------------------------------
# 5. round trips: no free lunch
# ---------------------------------------------------------------------------
def _impact_cash(prices, rows, qs):
    """Cash the agent paid beyond the market's own mid and the half spread (USD; + = a cost).

    The market's own mid before step k is ``mid - PERM_IMPACT`` (CRN, test 1)."""
    own = rows[:-1, MID] - rows[:-1, PERM_IMPACT]
    half = 0.5 * rows[:-1, SPREAD]
    qs = np.asarray(qs)
    return float(np.sum(qs * (prices - own) - np.abs(qs) * half))


def test_buy_then_sell_costs_the_transient_part_and_ends_flat(goog):
    c, d, w, e = goog.impact_columns("GOOG", DT)
    q = 3000.0
    p, r, oimp, _ = run(goog, 9, [q, -q, 0.0])
    assert r[2, oimp] == 0.0  # X_p back to zero
    assert r[2, oimp + 1] == pytest.approx(-q * (1.0 - e) * e, rel=1e-12)  # X_t overshoots, then decays
    cost = (1.0 - w) * c * q ** d / (1.0 + d) * (1.0 - e ** (1.0 + d) + (1.0 - e) ** (1.0 + d))
    assert cost > 0.0
    assert _impact_cash(p, r, [q, -q, 0.0]) == pytest.approx(q * cost, rel=1e-9)
    # after the round trip the mid sits below the market's own path by the transient overshoot
    assert r[2, PERM_IMPACT] == pytest.approx(-(1.0 - w) * c * (q * (1.0 - e) * e) ** d, rel=1e-12)


def test_random_round_trips_never_pay_the_agent(goog):
    """Any trade sequence that ends flat costs >= 0 beyond the spread, whatever the volume multiplier does
    from step to step: the permanent part telescopes to 0, the transient part to the sum of G lost to the decay."""
    c1, d, w, e = goog.impact_columns("GOOG", DT)
    rng = np.random.default_rng(0)
    for trial in range(12):
        qs = list(rng.choice([-1.0, 1.0], 7) * rng.lognormal(6.5, 1.5, 7) * (rng.uniform(size=7) > 0.2))
        qs.append(-sum(qs))
        c = c1
        p, r, oimp, _ = run(goog, 100 + trial, qs, list(rng.uniform(0.25, 4.0, len(qs))))
        assert abs(r[-1, oimp]) < 1e-9 * max(abs(x) for x in qs)
        b, expect = 0.0, 0.0
        for x in qs:  # the transient state before (b) and after (a) each order
            a = b + x
            expect += G(a, c, d) - G(b, c, d)
            b = a * e
        cash = _impact_cash(p, r, qs)
        assert cash == pytest.approx((1.0 - w) * expect, rel=1e-9, abs=1e-6)
        assert cash >= 0.0


def test_infinite_decay_time_makes_the_transient_state_permanent(ck):
    dyn = LearnedDynamics(ck, asset="GOOG", impact_decay_s=math.inf)
    c, d, w, e = dyn.impact_columns("GOOG", DT)
    assert e == 1.0 and w == fitted("GOOG")["permanent_fraction"]
    q = 2500.0
    qs = [q, 0.0, 0.0, 0.0, -q, 0.0]
    p, r, oimp, _ = run(dyn, 4, qs)
    assert np.all(r[1:5, oimp + 1] == q)
    assert np.allclose(r[1:5, PERM_IMPACT], c * q ** d, rtol=1e-12, atol=0)  # the whole F(q) stays
    assert r[5, oimp] == 0.0 and r[5, oimp + 1] == 0.0 and r[5, PERM_IMPACT] == 0.0
    assert _impact_cash(p, r, qs) == pytest.approx(0.0, abs=1e-9)  # nothing decayed: the round trip is free


# ---------------------------------------------------------------------------
# 6. batch kernels (the execution env's path) == per-env step_fn
# ---------------------------------------------------------------------------
def test_batch_kernels_match_the_per_env_step_with_the_impact_channel(goog):
    n, T = 70, 10
    dyn = goog
    args = dyn.args(n, DT)
    meta = args[11]
    rng_a = seed_states([300 + i for i in range(n)], 1)
    rng_b = rng_a.copy()
    A = np.zeros((n, dyn.n_state))
    B = np.zeros((n, dyn.n_state))
    ws = dyn.workspace(n)
    assert ws.shape[0] == 1 and n <= BATCH_CHUNK
    idx = np.arange(n, dtype=np.int64)
    for i in range(n):
        dyn.reset_fn(i, A[i], args, rng_a[i, 0])
    learned_batch_reset(idx, 0, n, ws[0], B, args, rng_b, 0)
    oh, ox, oimp, H = int(meta[M_OH]), int(meta[M_OX]), int(meta[M_OIMP]), int(meta[M_H])
    cols = list(range(N_MARKET)) + list(range(oh, oh + H)) + list(range(ox, ox + N_FEATURES)) + [oimp, oimp + 1]
    assert np.allclose(A[:, cols], B[:, cols], rtol=1e-9, atol=1e-9)
    g = np.random.default_rng(1)
    xp = np.zeros(n)  # X_p since the last reset
    for k in range(T):
        if k == T - 3:  # a second episode on the dirty rows: the reset clears the channel's state
            for i in range(n):
                dyn.reset_fn(i, A[i], args, rng_a[i, 0])
            learned_batch_reset(idx, 0, n, ws[0], B, args, rng_b, 0)
            assert np.all(B[:, [oimp, oimp + 1, PERM_IMPACT, TEMP_IMPACT]] == 0.0)
            assert np.all(A[:, [oimp, oimp + 1, PERM_IMPACT, TEMP_IMPACT]] == 0.0)
            xp = np.zeros(n)
        q = g.choice([-1.0, 1.0], n) * g.lognormal(6.5, 1.2, n) * (g.uniform(size=n) > 0.3)
        vm = g.uniform(0.5, 2.0, n)  # changes every step (the market's own volume follows it)
        mid0 = B[:, MID].copy()
        pa = np.array([dyn.step_fn(i, A[i], args, rng_a[i, 0], q[i], vm[i]) for i in range(n)])
        pb = np.zeros(n)
        learned_batch_step(idx, 0, n, ws[0], B, args, rng_b, 0, q, vm, pb)
        assert np.array_equal(rng_a, rng_b)
        assert np.allclose(pa, pb, rtol=1e-12, atol=0)
        assert np.allclose(A[:, cols], B[:, cols], rtol=1e-9, atol=1e-9)
        assert np.array_equal(pb[q == 0], mid0[q == 0])
        assert np.all(pb[q > 0] > mid0[q > 0]) and np.all(pb[q < 0] < mid0[q < 0])
        assert np.all(B[q != 0, TEMP_IMPACT] > 0.0)
        xp = xp + q
    # X_p restarted at the second reset; the channel is live for every env that traded since
    assert np.allclose(B[:, oimp], xp, rtol=1e-12, atol=0)
    assert np.all((B[:, PERM_IMPACT] != 0.0) == (xp != 0.0)) and np.count_nonzero(xp) > n // 2


# ---------------------------------------------------------------------------
# 7. legacy mode: the agent's flow drives the GRU
# ---------------------------------------------------------------------------
def test_legacy_gru_mode_feeds_the_agent_flow_to_the_market(ck, goog):
    gru = LegacyGRUImpactDynamics(ck, asset="GOOG")
    P = gru.param_rows(1, DT)
    assert P[0, Q_IMODE] == 0.0 and P[0, Q_TRACK] == 1.0
    qs = [3000.0] * 6
    _, r0, oimp, _ = run(gru, 21, [0.0] * 6)
    pg, rg, _, _ = run(gru, 21, qs)
    ps, rs, _, _ = run(goog, 21, qs)
    assert rg[0, MID] == rs[0, MID] and rg[0, SPREAD] == rs[0, SPREAD]  # same reset
    assert not np.array_equal(rg[1:, VOLUME], r0[1:, VOLUME])  # the agent changed the market's own flow
    assert np.all(rg[:, oimp] == 0.0) and np.all(rg[:, oimp + 1] == 0.0)  # the channel's state stays unused
    assert np.all(rg[1:, PERM_IMPACT] != 0.0) and len(np.unique(rg[1:, PERM_IMPACT])) == 6  # it accumulates
    assert not np.allclose(rg[1:, PERM_IMPACT], rs[1:, PERM_IMPACT], rtol=1e-3)
    assert pg[0] != ps[0]  # another price for the same first order from the same book
    assert np.array_equal(rs[1:, VOLUME], r0[1:, VOLUME])  # while "sqrt" leaves the flow alone


# ---------------------------------------------------------------------------
# 8. bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw,exc,match", [
    ({"impact": "linear"}, ValueError, r"LearnedDynamics\.impact must be 'sqrt' or 'gru', got 'linear'"),
    ({"impact": None}, ValueError, r"LearnedDynamics\.impact"),
    ({"impact_decay_s": 0.0}, ValueError, r"impact_decay_s .* got 0\.0"),
    ({"impact_decay_s": -60.0}, ValueError, r"impact_decay_s .* got -60\.0"),
    ({"impact_decay_s": math.nan}, ValueError, r"impact_decay_s .* got nan"),
    ({"impact_decay_s": "60"}, ValueError, r"impact_decay_s .* got '60'"),
    ({"impact_decay_s": True}, ValueError, r"impact_decay_s .* got True"),
    ({"impact_model": "goog"}, TypeError, r"impact_model must be an ImpactModel or a dict of them, got 'goog'"),
    ({"impact_model": {"GOOG": ImpactParams()}}, TypeError, r"impact_model must be an ImpactModel"),
])
def test_bad_impact_arguments_name_the_problem(ck, kw, exc, match):
    with pytest.raises(exc, match=match):
        LearnedDynamics(ck, asset="GOOG", **kw)


def test_decay_time_types_and_the_unmatched_permanence_warning(ck):
    c, d, w, e = LearnedDynamics(ck, asset="GOOG", impact_decay_s=np.float64(60.0)).impact_columns("GOOG", DT)
    assert e == pytest.approx(math.exp(-1.0), rel=1e-15) and 0.0 < w < 1.0
    # GOOG: permanent fraction 0.63; with a 10-minute decay the transient part alone keeps
    # exp(-120 delta / 600) = 0.90 after 120 s, so the fit cannot be matched: warn, permanent weight 0
    dyn = LearnedDynamics(ck, asset="GOOG", impact_decay_s=600.0)
    with pytest.warns(UserWarning, match="permanent weight is 0"):
        c, d, w, e = dyn.impact_columns("GOOG", DT)
    assert w == 0.0


def test_given_impact_model_overrides_the_fitted_one(ck):
    p = ImpactParams(Y=0.8, delta=0.6, permanent_fraction=0.7, V_ref=5.0e5, sigma_ref=4.0)
    for arg in (ImpactModel(p), {"GOOG": ImpactModel(p)}):
        c, d, w, e = LearnedDynamics(ck, asset="GOOG", impact_model=arg).impact_columns("GOOG", DT)
        assert (c, d) == pytest.approx((0.8 * 4.0 / 5.0e5 ** 0.6, 0.6), rel=1e-12)
        assert w + (1 - w) * math.exp(-HORIZON_S * 0.6 / 60.0) == pytest.approx(0.7, abs=1e-12)
    # a dict without the asset falls back to the asset's fitted model
    c, d, _, _ = LearnedDynamics(ck, asset="AMZN", impact_model={"GOOG": ImpactModel(p)}).impact_columns("AMZN", DT)
    assert d == fitted("AMZN")["delta"]


def _prior_columns(stats, ck_dt):
    n_bars = 23400.0 / ck_dt
    c = 0.5 * stats.sigma_bar * math.sqrt(n_bars) / (stats.mean_volume * n_bars) ** 0.5
    e = math.exp(-HORIZON_S * 0.5 / 60.0)
    return c, 0.5, (0.5 - e) / (1.0 - e)


def test_asset_without_fitted_model_gets_the_prior_scaled_to_its_session(ck, monkeypatch):
    # a third asset in the checkpoint (GOOG's network, its own statistics), no fitted JSON for it
    st = dataclasses.replace(ck.assets["GOOG"], sigma_bar=0.5, mean_volume=900.0)
    ck3 = dataclasses.replace(ck, assets={**ck.assets, "XYZ": st})
    dyn = LearnedDynamics(ck3, asset="XYZ")
    with pytest.warns(UserWarning, match="no fitted impact model for 'XYZ'.*square-root prior"):
        P = dyn.param_rows(2, DT)
    c, d, w = _prior_columns(st, ck.dt)
    assert np.allclose(P[:, [Q_IC, Q_IDEL, Q_IPF]], [c, d, w], rtol=1e-12, atol=0)
    # a shipped asset whose fitted file is missing: the same prior with its own statistics
    import lobworld.world_models.impact as impact_mod

    monkeypatch.setattr(impact_mod, "FITTED_DIR", impact_mod.FITTED_DIR.parent / "no_such_dir")
    dyn = LearnedDynamics(ck, asset="AMZN")
    with pytest.warns(UserWarning, match="no fitted impact model for 'AMZN'"):
        cols = dyn.impact_columns("AMZN", DT)
    assert cols[:3] == pytest.approx(_prior_columns(ck.assets["AMZN"], ck.dt), rel=1e-12)
    # and the prior drives the kernel: the closed form of test 2 with its c
    with pytest.warns(UserWarning):
        p, r, _, _ = run(dyn, 2, [800.0])
    c, d, _ = _prior_columns(ck.assets["AMZN"], ck.dt)
    assert p[0] == pytest.approx(r[0, MID] + 0.5 * r[0, SPREAD] + c * 800.0 ** d / (1 + d), rel=1e-12)


# ---------------------------------------------------------------------------
# 9. the registered execution env uses the channel
# ---------------------------------------------------------------------------
def _episode(env, seed, strategy):
    """Run an episode; returns (info, per-step (n_k, price_k, own mid_k, spread_k), s0, market row
    after the first step)."""
    from lobworld.envs.execution import ES_EXECUTED, ES_PAID

    core = env.unwrapped.core
    env.reset(seed=seed)
    s0 = core.market[0, MID]
    T = core.config.horizon
    steps = []
    first = None
    for k in range(T):
        m = core.market[0]
        own, spr = m[MID] - m[PERM_IMPACT], m[SPREAD]
        ex0, paid0 = core.es[0, ES_EXECUTED], core.es[0, ES_PAID]
        a = 1.0 if strategy == "aggressive" else 1.0 / (T - k)
        _, _, term, trunc, info = env.step(np.array([a], np.float32))
        n = core.es[0, ES_EXECUTED] - ex0
        steps.append((n, (core.es[0, ES_PAID] - paid0) / n, own, spr))
        first = core.market[0].copy() if first is None else first
        if term or trunc:
            return info, np.array(steps), s0, first


def test_execution_env_prices_child_orders_through_the_channel():
    import gymnasium as gym

    import lobworld  # noqa: F401

    env = gym.make("LOB-Execution-v0", horizon=10)
    dyn = env.unwrapped.core.dynamics
    assert isinstance(dyn, LearnedDynamics) and dyn.impact == "sqrt" and dyn.asset == "GOOG"
    cfg = env.unwrapped.core.config
    Q = cfg.quantity
    assert cfg.side == "sell" and cfg.dt == DT
    c, d, w, e = dyn.impact_columns("GOOG", DT)
    ia, sa, s0, ma = _episode(env, 17, "aggressive")
    assert ia["episode_length"] == 1 and ia["completion"] == 1.0
    # everything at once from X = 0: half the spread plus the mean of F over 0 -> Q
    assert sa[0, 2] == s0 and sa[0, 0] == Q
    aggressive = (0.5 * sa[0, 3] + c * Q ** d / (1.0 + d)) / s0 * 1e4
    assert ia["shortfall_bps"] == pytest.approx(aggressive, rel=1e-9)
    # the mid jumps by -D of the whole order (sell), the transient part decayed over the step
    assert ma[PERM_IMPACT] == pytest.approx(-c * Q ** d * (w + (1.0 - w) * e ** d), rel=1e-12)
    it, st, s0t, mt = _episode(env, 17, "twap")
    assert s0t == s0 and it["episode_length"] == 10 and len(st) == 10
    # common random numbers in the env: after the first step both see the same market, up to D
    assert ma[MID] - ma[PERM_IMPACT] == pytest.approx(mt[MID] - mt[PERM_IMPACT], abs=1e-9)
    assert ma[VOLUME] == mt[VOLUME] and ma[SPREAD] == mt[SPREAD] and ma[PERM_IMPACT] < mt[PERM_IMPACT] < 0.0
    n, price, own, spr = st.T
    # shortfall = the market's own move + half spreads + impact (own mid = mid - PERM_IMPACT)
    market = np.sum(n * (s0 - own)) / (s0 * Q) * 1e4
    half = np.sum(n * spr / 2) / (s0 * Q) * 1e4
    impact = np.sum(n * (own - spr / 2 - price)) / (s0 * Q) * 1e4
    assert it["shortfall_bps"] == pytest.approx(market + half + impact, abs=1e-9)
    # the impact part in closed form: the permanent part is path independent (w G(Q) / Q, as if
    # traded at once), the transient part loses what decayed between the orders
    b, trans = 0.0, 0.0
    for x in n:
        trans += G(b + x, c, d) - G(b, c, d)
        b = (b + x) * e
    assert impact == pytest.approx((w * G(Q, c, d) + (1.0 - w) * trans) / (s0 * Q) * 1e4, rel=1e-9)
    assert impact < aggressive - 0.5 * sa[0, 3] / s0 * 1e4 - 0.5  # at least half a bp cheaper than at once
    assert it["shortfall_bps"] != pytest.approx(ia["shortfall_bps"], abs=1e-6)

"""Mid-price direction (issue 15, evaluation 2): labels, OFI and imbalance features, the logistic
baseline, macro-F1 and the paired bootstrap, against hand computation and the shipped tape."""

from __future__ import annotations

import numpy as np
import pytest

from lobworld.envs.replay import ReplayData
from lobworld.world_models.data.lobster import load_lobster, sample_lobster_paths
from lobworld.world_models.fidelity import FidelityError
from lobworld.world_models.fidelity.direction import (
    DirectionLogit, direction_features, direction_labels, direction_scores, macro_f1, mid_ticks,
    paired_bootstrap, predict_from_counts,
)
from lobworld.world_models.fidelity.events import sequence_statistics


def hand_book():
    """Five books after five messages, 2 levels, ticks and shares (side 0 bid, 1 ask)."""
    rows = [  # (bid px, bid sz, ask px, ask sz), level 1 then 2
        ([100, 99], [10, 5], [102, 103], [20, 10]),
        ([101, 100], [4, 10], [102, 103], [20, 10]),  # bid improves: OFI +4
        ([101, 100], [4, 10], [102, 103], [5, 10]),  # ask queue 20 -> 5: OFI +15
        ([101, 100], [4, 10], [103, 104], [10, 5]),  # ask level emptied, 103 the new best: OFI +5
        ([0, 0], [0, 0], [103, 104], [10, 5]),  # no bid: no mid; the bid terms are 0, ask unchanged
    ]
    px = np.array([[r[0], r[2]] for r in rows], np.int64)
    sz = np.array([[r[1], r[3]] for r in rows], np.int64)
    return px, sz


def test_mid_and_labels_by_hand():
    px, sz = hand_book()
    mid = mid_ticks(px, sz)
    np.testing.assert_array_equal(mid, [101.0, 101.5, 101.5, 102.0, np.nan])
    np.testing.assert_array_equal(direction_labels(mid, 1), [1, 0, 1, np.nan, np.nan])
    np.testing.assert_array_equal(direction_labels(mid, 2), [1, 1, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(direction_labels(mid, 5), np.full(5, np.nan))
    crossed = px.copy()
    crossed[1, 1, 0] = 101  # ask at the bid
    assert np.isnan(mid_ticks(crossed, sz)[1])


def test_features_by_hand():
    px, sz = hand_book()
    X, ok, names = direction_features(px, sz, windows=(2,), levels=(1, 2))
    assert names == ["ofi_2", "imb_1", "imb_2"]
    np.testing.assert_allclose(X[:, 0], [0, 4, 19, 20, 5])  # terms 0, 4, 15, 5, 0 over 2 messages
    np.testing.assert_allclose(X[:, 1], [-1 / 3, -2 / 3, -1 / 9, -3 / 7, -1])
    np.testing.assert_allclose(X[:, 2], [-1 / 3, -4 / 11, -1 / 29, -1 / 29, -1])
    np.testing.assert_array_equal(ok, [False, False, True, True, False])  # 2 back, and both touches
    X5, _, _ = direction_features(px, sz, windows=(1,), levels=(5,))  # 5 levels capped at the book's 2
    np.testing.assert_allclose(X5[:, 1], X[:, 2])


def test_ofi_matches_the_lob_bench_statistic_on_the_real_tape():
    """The rolling 100-message OFI feature equals the event-level fidelity statistic on the shipped
    GOOG hour (real LOBSTER data), message for message."""
    ev = load_lobster(*sample_lobster_paths())
    data = ReplayData.from_events(ev)
    X, ok, _ = direction_features(data.fpx, data.fsz, windows=(100,), levels=(1,))
    ref = sequence_statistics(ev)["ofi"]
    assert len(ref) == len(ev) - 100 and len(ref) > 10_000
    np.testing.assert_allclose(X[100:, 0], ref, rtol=0, atol=1e-9)
    assert ok.mean() > 0.99
    assert np.abs(X[:, 0]).max() > 0  # the tape has order flow


def test_macro_f1_by_hand():
    y = np.array([-1, -1, 0, 0, 0, 1, 1])
    pred = np.array([-1, 0, 0, 0, 1, 1, -1])
    # down: tp 1, fp 1, fn 1 -> 1/2; flat: tp 2, fp 1, fn 1 -> 2/3; up: tp 1, fp 1, fn 1 -> 1/2
    mf, per = macro_f1(y, pred)
    np.testing.assert_allclose(per, [0.5, 2 / 3, 0.5])
    assert mf == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    # a constant forecaster: the classes it never predicts score 0 (scikit-learn's zero_division=0)
    mf, per = macro_f1(np.array([0, 0, 0, 1]), np.zeros(4))
    np.testing.assert_allclose(per, [0, 6 / 7, 0])
    assert mf == pytest.approx(2 / 7)
    s = direction_scores(y, pred, proba=np.tile([0.25, 0.5, 0.25], (7, 1)))
    assert s["accuracy"] == pytest.approx(4 / 7)
    assert s["log_score"] == pytest.approx(-(4 * np.log(0.25) + 3 * np.log(0.5)) / 7)
    assert s["n"] == 7 and s["f1_flat"] == pytest.approx(2 / 3)


def test_logit_recovers_known_coefficients():
    """Generated data (labelled as such: drawn here from a known multinomial logit, not market data)."""
    rng = np.random.default_rng(3)
    n = 60_000
    X = rng.normal([1.0, -0.5], [2.0, 0.5], size=(n, 2))
    B = np.array([[0.0, 0.3, -0.1],  # intercepts of down, flat, up on the raw features (no rare class)
                  [-0.5, 0.0, 0.5],
                  [1.0, 0.0, -1.0]])
    s = np.column_stack([np.ones(n), X]) @ B
    P = np.exp(s - s.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)).sum(axis=1) - 1
    m = DirectionLogit.fit(X, y, l2=0.0)
    raw = np.vstack([m.coef[0] - (m.mean / m.scale) @ m.coef[1:], m.coef[1:] / m.scale[:, None]])
    # identified up to a constant per row: compare against the flat class
    np.testing.assert_allclose(raw - raw[:, [1]], B - B[:, [1]], atol=0.05)
    Q = m.predict_proba(X)
    np.testing.assert_allclose(Q.sum(axis=1), 1.0)
    assert np.abs(Q - P).mean() < 0.01
    # a penalty shrinks the slopes
    shrunk = DirectionLogit.fit(X, y, l2=1.0)
    assert np.abs(shrunk.coef[1:]).sum() < 0.5 * np.abs(m.coef[1:]).sum()


def test_counts_tie_break_and_bootstrap():
    counts = np.array([[2, 2, 0], [3, 1, 3], [0, 1, 4], [0, 0, 0]])
    np.testing.assert_array_equal(predict_from_counts(counts), [0, -1, 1, 0])
    np.testing.assert_array_equal(predict_from_counts(counts, prior=[0.1, 0.2, 0.7]), [0, 1, 1, 1])
    rng = np.random.default_rng(0)
    y = rng.integers(-1, 2, 500)
    good = np.where(rng.random(500) < 0.7, y, 0)
    b = paired_bootstrap(y, {"good": good, "same": good.copy(), "flat": np.zeros(500)}, n_boot=300)
    assert b["same"]["accuracy_minus_good"] == (0.0, 0.0)
    lo, hi = b["good"]["accuracy"]
    assert lo < np.mean(good == y) < hi
    assert b["flat"]["macro_f1_minus_good"][1] < 0  # clearly worse, on the same rows


def test_bad_input_is_named():
    px, sz = hand_book()
    with pytest.raises(FidelityError, match="shape"):
        mid_ticks(px[:, :, 0], sz[:, :, 0])
    bad = sz.copy()
    bad[0, 0, 0] = -1
    with pytest.raises(FidelityError, match="negative"):
        direction_features(px, bad)
    with pytest.raises(FidelityError, match="k must be"):
        direction_labels(mid_ticks(px, sz), 0)
    with pytest.raises(FidelityError, match="windows and levels"):
        direction_features(px, sz, windows=(0,))
    X = np.zeros((20, 2))
    with pytest.raises(FidelityError, match="outside"):
        DirectionLogit.fit(X, np.full(20, 2))
    X[3, 1] = np.nan
    with pytest.raises(FidelityError, match="non-finite"):
        DirectionLogit.fit(X, np.zeros(20))
    m = DirectionLogit.fit(np.random.default_rng(0).normal(size=(20, 2)), np.tile([-1, 0, 1, 0], 5))
    with pytest.raises(FidelityError, match=r"X \(n, 2\)"):
        m.predict_proba(np.zeros((3, 3)))
    with pytest.raises(FidelityError, match="counts"):
        predict_from_counts(np.zeros((3, 2)))
    with pytest.raises(FidelityError, match="one length"):
        direction_scores(np.zeros(3), np.zeros(4))

"""Feature functions: properties on generated books (hypothesis), closed forms, Parquet round trip."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from lobworld.world_models.data import (
    add_features, amihud_illiquidity, depth_imbalance, kyle_lambda, load_lobster, load_parquet, make_bars,
    micro_price, realized_volatility, sample_lobster_paths, save_parquet, trade_arrival_rate,
)

sizes = arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 10)),
               elements=st.floats(0, 1e5, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(bid=st.floats(1, 1e4), spread_ticks=st.integers(1, 500), qb=st.floats(0, 1e6), qa=st.floats(0, 1e6))
def test_micro_price_between_bid_and_ask(bid, spread_ticks, qb, qa):
    ask = bid + 0.01 * spread_ticks
    m = micro_price(np.array([bid]), np.array([ask]), np.array([qb]), np.array([qa]))[0]
    assert bid - 1e-9 <= m <= ask + 1e-9
    if qb > qa:
        assert m >= 0.5 * (bid + ask) - 1e-9  # larger bid queue: leans to the ask


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(1, 10))
def test_depth_imbalance_bounds(qb, k):
    qa = qb[::-1].copy()
    d = depth_imbalance(qb, qa, k)
    assert d.shape == (qb.shape[0],)
    assert np.all(d >= -1) and np.all(d <= 1)
    np.testing.assert_allclose(depth_imbalance(qa, qb, k), -d, atol=1e-12)  # antisymmetric


def test_depth_imbalance_closed_form():
    d = depth_imbalance(np.array([[30.0, 10.0]]), np.array([[10.0, 0.0]]), 2)
    assert d[0] == pytest.approx((40 - 10) / 50)
    assert depth_imbalance(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 0.0


@settings(max_examples=25, deadline=None)
@given(lam=st.floats(1e-6, 1e-2), seed=st.integers(0, 2**31 - 1))
def test_kyle_lambda_recovers_slope(lam, seed):
    rng = np.random.default_rng(seed)  # generated data
    v = rng.normal(0, 1000, 400)
    dm = lam * v + rng.normal(0, 1e-3 * lam, 400)
    est = kyle_lambda(dm, v, 400)[-1]
    assert est == pytest.approx(lam, rel=1e-2)
    assert np.isnan(kyle_lambda(dm, v, 400)[:-1]).all()


def test_realized_vol_closed_form():
    r = np.array([1.0, -2.0, 2.0, 0.0])
    np.testing.assert_allclose(realized_volatility(r, 2), [np.nan, np.sqrt(5), np.sqrt(8), 2.0])


def test_amihud_closed_form():
    ret = np.array([0.5, -1.0, 0.0])
    prev = np.array([100.0, 100.0, 100.0])
    dv = np.array([1e4, 0.0, 2e4])
    # bar 2 has no volume and is skipped: mean of 0.005/1e4 and 0/2e4
    assert amihud_illiquidity(ret, prev, dv, 3)[-1] == pytest.approx(0.5 * 0.005 / 1e4)


def test_trade_rate():
    np.testing.assert_allclose(trade_arrival_rate([6, 0, 12], 60.0, 3), [np.nan, np.nan, 18 / 180])
    with pytest.raises(ValueError, match="window"):
        trade_arrival_rate([1], 60.0, 0)


def test_add_features_on_slice():
    df = load_lobster(*sample_lobster_paths())
    f = add_features(make_bars(df, "1min"), window=10)
    assert f["micro_price"].between(f["bid_px_1"], f["ask_px_1"]).all()
    assert f["realized_vol"].iloc[9:].notna().all()
    assert f["trade_rate"].iloc[9] == pytest.approx(f["n_trades"].iloc[:10].sum() / 600)
    assert (f["kyle_lambda"].dropna() > 0).mean() > 0.5  # buying moves the mid up, mostly


def test_parquet_round_trip(tmp_path):
    df = load_lobster(*sample_lobster_paths())
    p = save_parquet(df, tmp_path / "goog.parquet")
    back = load_parquet(p)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == df.attrs
    b = make_bars(df, "1min")
    back_b = load_parquet(save_parquet(b, tmp_path / "bars.parquet"))
    pd.testing.assert_frame_equal(back_b, b)
    assert back_b.attrs == b.attrs
    bad = df.iloc[:2].copy()
    bad.attrs["x"] = object()
    with pytest.raises(ValueError, match="attrs"):
        save_parquet(bad, tmp_path / "bad.parquet")

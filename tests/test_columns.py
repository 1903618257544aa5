"""Named column layouts (lobworld.envs.columns): every column of a config vector is set once."""

from __future__ import annotations

import numpy as np
import pytest

from lobworld.envs import dark_pool, execution, market_making_kernels
from lobworld.envs.columns import ColumnLayoutError, layout, pack


def test_layout_orders_names_and_checks_coverage():
    ns = {"C_B": 1, "C_A": 0, "C_C": 2, "OTHER": 7, "C_FLAG": True}
    assert layout(ns, "C_", 3) == ("C_A", "C_B", "C_C")
    with pytest.raises(ColumnLayoutError, match="not 0..3"):
        layout(ns, "C_", 4)
    with pytest.raises(ColumnLayoutError):
        layout({"C_A": 0, "C_B": 0}, "C_", 2)  # two names on one column


def test_pack_places_values_and_refuses_missing_or_unknown_columns():
    names = ("C_A", "C_B", "C_C")
    np.testing.assert_array_equal(pack(names, {"C_C": 3, "C_A": 1.5, "C_B": -2}, "t"), [1.5, -2.0, 3.0])
    with pytest.raises(ColumnLayoutError, match=r"not set \['C_B'\]"):
        pack(names, {"C_A": 1, "C_C": 3}, "t")
    with pytest.raises(ColumnLayoutError, match=r"unknown columns \['C_D'\]"):
        pack(names, {"C_A": 1, "C_B": 2, "C_C": 3, "C_D": 4}, "t")


@pytest.mark.parametrize("module, n", [(execution, execution.N_CFG), (market_making_kernels, market_making_kernels.N_CFG),
                                       (dark_pool, 6)])
def test_env_config_layouts_cover_their_vectors(module, n):
    names = layout(vars(module), "C_", n)
    assert len(names) == n

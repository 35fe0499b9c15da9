"""Input validation (`chainrule.engine.validation`): the finiteness check of data arrays."""

import tracemalloc

import numpy as np
import pytest

from chainrule.engine.validation import FINITE_BLOCK, all_finite, float_array

LARGE_ROWS = 4 * FINITE_BLOCK // 100  # 100 features: several blocks of rows


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["first row", "middle row", "last row"])
@pytest.mark.parametrize("rows", [7, LARGE_ROWS])
def test_a_non_finite_value_anywhere_is_found(bad, where, rows):
    data = np.ones((rows, 100), np.float32)
    row = {"first row": 0, "middle row": rows // 2, "last row": rows - 1}[where]
    data[row, 99] = bad
    assert not all_finite(data)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        float_array(data, None, "X", "Model.fit")


@pytest.mark.parametrize("shape", [(), (5,), (LARGE_ROWS, 100), (3, FINITE_BLOCK + 1), (LARGE_ROWS, 4, 25)])
def test_finite_data_passes(shape):
    assert all_finite(np.full(shape, 1e30, np.float32))


def test_large_data_is_checked_without_a_boolean_copy_of_its_size():
    data = np.ones((LARGE_ROWS, 100), np.float32)  # 4 MiB of float32: a boolean copy would take 1 MiB
    tracemalloc.start()
    try:
        float_array(data, None, "X", "Model.fit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data.size // 2

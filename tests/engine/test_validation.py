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


def nullable_frame(pd, first_column):
    return pd.DataFrame({"a": pd.array(first_column, dtype="Float64"), "b": pd.array([1, 2, 3], dtype="Int64")})


def test_pandas_nullable_columns_without_missing_values_are_numbers():
    pd = pytest.importorskip("pandas")
    frame = nullable_frame(pd, [0.5, 1.5, 2.5])
    frame["c"] = pd.array([True, False, True], dtype="boolean")
    frame["d"] = [4.0, 5.0, 6.0]  # a plain NumPy column beside them
    array = float_array(frame, None, "X", "fit")
    assert array.dtype == np.float64  # as a float64 NumPy array would
    assert array.tolist() == [[0.5, 1, 1, 4], [1.5, 2, 0, 5], [2.5, 3, 1, 6]]
    assert float_array(pd.Series([1, 2], dtype="Int64").to_frame(), np.float64, "X", "fit").dtype == np.float64


def test_a_missing_value_in_a_pandas_nullable_column_is_refused():
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="fit: X contains NaN"):
        float_array(nullable_frame(pd, [0.5, None, 2.5]), None, "X", "fit")


def test_a_text_column_is_refused_by_its_dtype():
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="fit: X must be numeric without missing values, got dtype .*Float64"):
        float_array(nullable_frame(pd, [0.5, 1.5, 2.5]).assign(c=["x", "y", "z"]), None, "X", "fit")

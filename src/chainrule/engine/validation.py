"""Input validation shared by every component: arrays, and the scalar settings of constructors.

Each check runs once, at the public entry point, and names the component, what it expected and
what it received, so a mistake never surfaces as a NumPy broadcasting error three layers down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend.arrays import array_module

NUMERIC_KINDS = "biuf"
FINITE_BLOCK = 1 << 18  # values checked per block by `all_finite`: a 256 KiB boolean scratch at most


def whole_number(value: Any, name: str, owner: str, *, minimum: int = 1) -> int:
    """Return `value` as an int >= `minimum` (1 unless given: a count or a size; 0 for seeds and
    patience), or raise naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return int(value)


def finite_number(
    value: Any,
    name: str,
    owner: str,
    *,
    minimum: float | None = None,
    below: float | None = None,
    maximum: float | None = None,
) -> float:
    """Return `value` as a finite float in [minimum, below) (or [minimum, maximum]), or raise
    naming the setting and the range."""
    number = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if (
        not number
        or not np.isfinite(value)
        or (minimum is not None and value < minimum)
        or (below is not None and value >= below)
        or (maximum is not None and value > maximum)
    ):
        bounds = [f">= {minimum:g}"] if minimum is not None else []
        bounds += [f"below {below:g}"] if below is not None else []
        bounds += [f"<= {maximum:g}"] if maximum is not None else []
        wanted = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return float(value)


def float_dtype(dtype: Any, owner: str) -> np.dtype:
    """Return `dtype` as a NumPy floating dtype, or raise naming the owner."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{owner}: dtype {dtype!r} is not a NumPy dtype") from error
    if resolved not in (np.float32, np.float64):
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {resolved}")
    return resolved


def numeric_array(values: Any, name: str, owner: str) -> np.ndarray:
    """Turn `values` into a numeric array without changing its dtype; reject text and ragged data."""
    try:
        array = np.asarray(values) if array_module(values) is np else values  # a GPU's array stays there
    except ValueError as error:
        raise ValueError(f"{owner}: {name} is not a rectangular array ({error})") from error
    if array.dtype == object:
        array = nullable_columns(values, array)
    if array.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"{owner}: {name} must be numeric without missing values, got dtype {declared_dtype(values)}")
    return array


def column_dtypes(values: Any) -> list[Any]:
    """The dtype of each column of a pandas DataFrame, or the one dtype of anything else."""
    if getattr(values, "ndim", None) == 2 and hasattr(values, "dtypes"):
        return list(values.dtypes)
    return [getattr(values, "dtype", None)]


def declared_dtype(values: Any) -> str:
    """The dtype(s) `values` declares, for a message: a pandas column names its own (Float64, ...)."""
    return ", ".join(sorted({str(dtype) for dtype in column_dtypes(values)}))


def nullable_columns(values: Any, array: np.ndarray) -> np.ndarray:
    """pandas' nullable columns (Float64, Int64, boolean) as their NumPy dtype: NumPy sees them as
    objects. `array` unchanged where they hold a missing value (refused by the caller) or are not
    such columns."""
    numpy_dtypes = [
        dtype if isinstance(dtype, np.dtype) else getattr(dtype, "numpy_dtype", None) for dtype in column_dtypes(values)
    ]
    if any(dtype is None for dtype in numpy_dtypes) or not hasattr(values, "to_numpy"):  # not `in`: dtype == None
        return array
    try:
        return np.asarray(values.to_numpy(dtype=np.result_type(*numpy_dtypes)))
    except (TypeError, ValueError):  # pandas: "cannot convert to '<dtype>' with missing values"
        return array


def is_sparse(values: Any) -> bool:
    """Whether `values` is a SciPy sparse matrix or array (recognised without importing SciPy)."""
    return hasattr(values, "tocsr") and hasattr(values, "nnz")


def sparse_rows(values: Any, dtype: Any, name: str, owner: str) -> Any:
    """A 2-D SciPy sparse matrix as finite CSR rows of `dtype` (None: its own float dtype, see
    `compute_dtype`); the network densifies one batch of rows at a time (`dense`)."""
    if values.ndim != 2:
        raise ValueError(f"{owner}: {name} must be 2-D (n_samples, n_features), got shape {values.shape}")
    if values.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"{owner}: {name} must be numeric, got dtype {values.dtype}")
    rows = values.tocsr()
    rows = rows.astype(compute_dtype(rows) if dtype is None else dtype, copy=False)
    if not all_finite(rows.data):
        raise ValueError(f"{owner}: {name} contains NaN or inf (or values too large for {rows.dtype})")
    return rows


def dense(inputs: Any) -> Any:
    """A batch as the layers compute on it: sparse rows become a dense array (this batch's only)."""
    return inputs.toarray() if is_sparse(inputs) else inputs


def all_finite(array: np.ndarray) -> bool:
    """Whether every value of `array` is finite, checked in blocks of rows along the first axis:
    a large data set needs no boolean copy of its own size (a quarter of it for float32)."""
    if array.ndim == 0 or array.size <= FINITE_BLOCK:
        return bool(np.isfinite(array).all())
    rows = max(1, FINITE_BLOCK // (array.size // len(array)))
    return all(bool(np.isfinite(array[start : start + rows]).all()) for start in range(0, len(array), rows))


def compute_dtype(array: np.ndarray) -> np.dtype:
    """The float dtype a parameter-free component computes in for `array`: float64 and float32
    stay, anything else (integers, booleans, float16) becomes float32."""
    return array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def float_array(
    values: Any, dtype: Any, name: str, owner: str, ndim: int | None = 2, axes: str = "(n_samples, n_features)"
) -> np.ndarray:
    """Convert to `dtype` (None: the array's own float dtype, see `compute_dtype`), require `ndim`
    dimensions (None: at least 2, a batch of samples of any shape), named by `axes` in the
    error, and finite values."""
    array = numeric_array(values, name, owner)
    dtype = compute_dtype(array) if dtype is None else dtype
    if array.ndim != ndim and (ndim is not None or array.ndim < 2):
        hint = " (for one sample use x.reshape(1, -1))" if ndim == 2 and array.ndim == 1 else ""
        wanted = f"a {ndim}-D array {axes}" if ndim is not None else "an array of 2 or more dimensions (n_samples, ...)"
        raise ValueError(f"{owner}: {name} must be {wanted}, got shape {array.shape}{hint}")
    with np.errstate(over="ignore"):
        array = array.astype(dtype, copy=False)
    if not all_finite(array):
        raise ValueError(f"{owner}: {name} contains NaN or inf (or values too large for {dtype})")
    return array


def require_columns(array: np.ndarray, n_columns: int, name: str, owner: str) -> None:
    """Require `array` to have `n_columns` columns."""
    if array.shape[1] != n_columns:
        raise ValueError(f"{owner}: {name} must have {n_columns} columns, got shape {array.shape}")


def require_same_shape(array: np.ndarray, expected: tuple, name: str, owner: str) -> None:
    """Require `array.shape == expected`."""
    if array.shape != expected:
        raise ValueError(f"{owner}: {name} must have shape {expected}, got {array.shape}")


def class_indices(values: Any, n_samples: int, n_classes: int, owner: str) -> np.ndarray:
    """Validate 1-D class labels and return them as int64 indices in [0, n_classes)."""
    labels = numeric_array(values, "y_true", owner)
    if labels.shape != (n_samples,):
        raise ValueError(
            f"{owner}: y_true holds {labels.shape[0] if labels.ndim else 0} labels of shape "
            f"{labels.shape}, expected ({n_samples},) class indices or ({n_samples}, {n_classes}) "
            "one-hot rows"
        )
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError(f"{owner}: y_true contains NaN or inf")
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"{owner}: class labels must be whole numbers, got {labels[:5]}...")
    if labels.dtype.kind == "u" and n_samples and labels.max() >= n_classes:  # before a cast could wrap it
        raise ValueError(f"{owner}: class index {labels.max()} is out of range for {n_classes} classes")
    indices = labels.astype(np.int64, copy=False)
    if n_samples and (indices.min() < 0 or indices.max() >= n_classes):
        bad = indices[(indices < 0) | (indices >= n_classes)][0]
        raise ValueError(f"{owner}: class index {bad} is out of range for {n_classes} classes (0..{n_classes - 1})")
    return indices


def categorical_targets(values: Any, n_samples: int, n_classes: int, dtype: np.dtype | None, owner: str) -> np.ndarray:
    """Return class indices (n,) as int64 or one-hot/probability rows (n, k) as `dtype`."""
    labels = numeric_array(values, "y_true", owner)
    if labels.ndim == 2 and labels.shape == (n_samples, 1) and n_classes > 1:
        raise ValueError(
            f"{owner}: y_true is a column of shape {labels.shape}: class labels are a 1-D array, "
            f"y_true.ravel(), or one-hot rows of shape ({n_samples}, {n_classes})"
        )
    if labels.ndim == 2:
        targets = float_array(labels, dtype, "y_true", owner)
        require_same_shape(targets, (n_samples, n_classes), "one-hot y_true", owner)
        if targets.size and (
            targets.min() < 0 or targets.max() > 1 or not np.allclose(targets.sum(axis=1), 1, atol=1e-4)
        ):
            raise ValueError(
                f"{owner}: each one-hot (or probability) row of y_true must hold values in [0, 1] summing to 1"
            )
        return targets
    return class_indices(labels, n_samples, n_classes, owner)


def named_instance(value: Any, registry: dict[str, type], base: type, kind: str, owner: str) -> Any:
    """An instance of `base`, given as one or by its name in `registry` (built with defaults)."""
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"{owner}: unknown {kind} {value!r}; choose from {sorted(registry)}")
        value = registry[value]()
    if not isinstance(value, base):
        raise TypeError(f"{owner}: {kind} must be a {base.__name__} or a name, got {type(value).__name__}")
    return value

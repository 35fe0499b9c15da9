"""Scalars as cached 0-d arrays, for elementwise calls on small arrays.

NumPy converts a Python float argument on every ufunc call, about 1 us, as long as the whole
call on a few hundred elements. A read-only 0-d array of the array's dtype gives the same
result (NumPy would cast the float to that dtype anyway) without the conversion.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=256)
def constant(value: float, dtype: np.dtype) -> np.ndarray:
    """`value` as a read-only 0-d array of `dtype`."""
    array = np.array(value, dtype=dtype)
    array.flags.writeable = False
    return array

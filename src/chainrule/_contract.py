"""Argument checks around the methods a subclass writes, so a learner's class is checked like a built-in one.

A subclass writes `forward`/`backward` as the book does. `install_check` keeps that function as
`<method>_trusted`, the entry a Model calls on data it has already validated, and makes the
public method validate its arguments first. The subclass does nothing special for either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def install_check(cls: type, method: str, check: Callable[..., tuple], result: str) -> None:
    """Wrap `cls.<method>` (if `cls` defines it) with `check`, keeping the original as `<method>_trusted`.

    `check(self, *args, **kwargs)` returns the validated positional arguments. The wrapped
    method returns what the original returned, or the attribute `result` (`output`, `dinputs`)
    when the original, like many book-style classes, only sets it.
    """
    original = cls.__dict__.get(method)
    if original is None or getattr(original, "__wrapped__", None) is not None:
        return
    if f"{method}_trusted" not in cls.__dict__:
        setattr(cls, f"{method}_trusted", original)

    @functools.wraps(original)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        returned = original(self, *check(self, *args, **kwargs))
        return getattr(self, result) if returned is None else returned

    setattr(cls, method, checked)

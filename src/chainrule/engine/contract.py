"""Argument checks around the methods a subclass writes, so a learner's class is checked like a built-in one.

A subclass writes `forward`/`backward` as the book does. `install_check` keeps that function as
`<method>_trusted`, the entry a Model calls on data it has already validated, and makes the
public method validate its arguments first. The subclass does nothing special for either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def install_check(cls: type, method: str, check: Callable[..., tuple], result: str, base: type) -> bool:
    """Wrap `cls.<method>` with `check`, keeping the original as `<method>_trusted`, when `cls`
    defines it or takes it from a class outside `base`'s family (a learner's plain class mixed
    in: `class MyDense(Layer_Dense, cr.Layer)`). Returns whether it wrapped.

    `check(self, *args, **kwargs)` returns the validated (args, kwargs). The wrapped
    method returns what the original returned, or the attribute `result` (`output`, `dinputs`)
    when the original, like many book-style classes, only sets it.
    """
    definer = next(klass for klass in cls.__mro__ if method in klass.__dict__)
    original = definer.__dict__[method]
    if (definer is not cls and issubclass(definer, base)) or getattr(original, "__wrapped__", None) is not None:
        return False
    if f"{method}_trusted" not in cls.__dict__:
        setattr(cls, f"{method}_trusted", original)

    @functools.wraps(original)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        checked_args, checked_kwargs = check(self, *args, **kwargs)
        returned = original(self, *checked_args, **checked_kwargs)
        return getattr(self, result) if returned is None else returned

    setattr(cls, method, checked)
    return True

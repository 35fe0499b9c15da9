"""Argument checks around the methods a subclass writes, so a learner's class is checked like a built-in one.

A subclass writes `forward`/`backward` as the book does. `install_check` keeps that function as
`<method>_trusted`, the entry a Model calls on data it has already validated, and makes the
public method validate its arguments first. The subclass does nothing special for either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol


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


class StepBuffers(Protocol):
    """What a static training step (`chainrule.training.static_step`) gives one layer's
    `forward_into(inputs, buffers)` and `backward_into(dvalues, buffers)`.

    The step allocates `output` and `dinputs` once per batch size, shaped (rows, *the layer's
    output shape) and (rows, *its input shape). A pass writes only into them, into its own
    `scratch` arrays (parameter gradients and working arrays), with `out=`; products go through
    `matmul` and column sums through `column_sums` (on a GPU the step routes both to cuBLAS, and
    only `matmul` may use TF32). Such a pass allocates nothing and reads nothing back, so a CUDA
    graph can capture it.
    """

    output: Any
    dinputs: Any
    training: bool
    first: bool  # the network's first layer: nothing reads its dinputs, which need not be computed

    def matmul(self, a: Any, b: Any, out: Any) -> object:
        """out = a @ b."""
        ...

    def column_sums(self, values: Any, out: Any) -> object:
        """out (1, columns) = the sums of the columns of `values` (rows, columns), in full precision
        (a product with ones)."""
        ...

    def scratch(
        self, name: str, shape: tuple[int, ...], *, dtype: Any = None, order: str = "C", fill: float | None = None
    ) -> Any:
        """The layer's own working array `name`, kept for the step (in the step's dtype unless
        `dtype` says otherwise): allocated, filled with `fill` if given, the first time the layer
        asks for it, which is in the step's first run, before any capture."""
        ...

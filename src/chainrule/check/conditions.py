"""The conditions a check runs under, so that central differences measure one fixed float64 function.

- **NumPy's own `np.dot`.** `nnfs.init()`, the book's first line, replaces `np.dot` with one that
  returns float32; the nudges of a gradient check (1e-5) vanish in float32's rounding. The check
  puts NumPy's own back while it runs.
- **float64 copies of a learner's arrays.** After `nnfs.init()` NumPy's new arrays are float32, so
  a book-style layer's `weights` are too. A learner's class (not a chainrule Layer, which takes a
  `dtype`) is checked on float64 copies; its own arrays are put back afterwards.
- **Running statistics kept.** A training forward of BatchNormalization moves its running
  averages; a chainrule layer's `non_trainable()` arrays are put back when the check ends.
- **Random draws held fixed.** A forward that draws random numbers (the book's dropout mask, from
  NumPy's global generator, or a generator the object keeps) would draw anew at every nudge. The
  generators are reset before each forward, so every forward draws the same numbers, and are left
  as they were found when the check ends.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from types import FunctionType
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.engine.layers import Layer
from chainrule.engine.losses import Loss

try:  # NumPy 2
    from numpy._core import multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray  # type: ignore[no-redef]

Generator = np.random.Generator | np.random.RandomState


def _generators(component: Any) -> dict[str, Generator]:
    """The generators `component` keeps as attributes, and those of the objects it holds (the
    book's fused softmax-and-loss holds an activation), by their path."""
    found: dict[str, Generator] = {}
    for name, value in getattr(component, "__dict__", {}).items():
        if isinstance(value, Generator):
            found[f"self.{name}"] = value
        elif not isinstance(value, type):
            for inner, generator in getattr(value, "__dict__", {}).items():
                if isinstance(generator, Generator):
                    found[f"self.{name}.{inner}"] = generator
    return found


def _state(generator: Generator) -> Any:
    return generator.bit_generator.state if isinstance(generator, np.random.Generator) else generator.get_state()


def _set_state(generator: Generator, state: Any) -> None:
    if isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def _same_state(first: Any, second: Any) -> bool:
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_same_state(first[k], second[k]) for k in first)
    if isinstance(first, tuple):
        return len(first) == len(second) and all(_same_state(a, b) for a, b in zip(first, second, strict=True))
    return bool(np.array_equal(first, second)) if isinstance(first, np.ndarray) else first == second


class HeldDraws:
    """Every generator a forward may draw from, with its state when the check began."""

    def __init__(self, components: list[Any]) -> None:
        self.generators: dict[str, Generator] = {}
        for component in components:
            self.generators.update(_generators(component))
        self.states = {name: _state(generator) for name, generator in self.generators.items()}
        self.numpy_state = np.random.get_state()
        self.python_state = random.getstate()

    def restore(self) -> None:
        """Reset every generator, so the next forward draws what the first one drew."""
        for name, generator in self.generators.items():
            _set_state(generator, self.states[name])
        np.random.set_state(self.numpy_state)
        random.setstate(self.python_state)

    def drawn_from(self) -> list[str]:
        """The generators that have moved since the check began (call after a forward)."""
        moved = ["NumPy's global generator"] if not _same_state(np.random.get_state(), self.numpy_state) else []
        moved += [
            name for name, generator in self.generators.items() if not _same_state(_state(generator), self.states[name])
        ]
        if random.getstate() != self.python_state:
            moved.append("Python's random module")
        return moved


def numpy_dot_replaced() -> bool:
    """Whether `np.dot` is not NumPy's own (`nnfs.init()` replaces it with a float32 one)."""
    return isinstance(np.dot, FunctionType) and np.dot is not multiarray.dot


@contextlib.contextmanager
def numpy_dot_restored() -> Iterator[bool]:
    """Run with NumPy's own `np.dot`; yields whether it had been replaced."""
    replaced = numpy_dot_replaced()
    current = np.dot
    if replaced:
        np.dot = multiarray.dot  # type: ignore[assignment]
    try:
        yield replaced
    finally:
        np.dot = current  # type: ignore[assignment]


@contextlib.contextmanager
def float64_copies(component: Any) -> Iterator[list[str]]:
    """Give a learner's object float64 copies of its float arrays of other dtypes for the
    duration; yields their names, and puts the originals back."""
    swapped = {
        name: value
        for name, value in getattr(component, "__dict__", {}).items()
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype != np.float64
    }
    for name, value in swapped.items():
        setattr(component, name, value.astype(np.float64))
    try:
        yield sorted(swapped)
    finally:
        for name, value in swapped.items():
            setattr(component, name, value)


@contextlib.contextmanager
def non_trainable_kept(layer: Layer) -> Iterator[None]:
    """Put back a layer's non-trainable arrays (BatchNormalization's running statistics, which
    every training forward moves) as they were before the check."""
    kept = {name: np.array(array, copy=True) for name, array in layer.non_trainable().items()}
    try:
        yield
    finally:
        for name, array in kept.items():
            setattr(layer, name, array)


class Conditions:
    """What a check changed to run (see the module's docstring), said in `notes`."""

    def __init__(self, draws: HeldDraws) -> None:
        self.draws = draws
        self.notes: list[str] = []
        self.drawn = False  # whether a forward drew random numbers

    def note_draws(self, owner: str) -> None:
        """After the first forward: say which generators it drew from, now held fixed."""
        drawn = self.draws.drawn_from()
        self.drawn = self.drawn or bool(drawn)
        if drawn:
            self.notes.append(
                f"{owner}.forward draws random numbers ({', '.join(drawn)}): the check reset the generator before "
                "each forward, so every nudge saw the same draws, and left it as it was"
            )


@contextlib.contextmanager
def check_conditions(components: list[Any], owner: str) -> Iterator[Conditions]:
    """Hold random draws fixed, restore NumPy's `np.dot`, and give learners' objects float64
    copies, for the duration of one check; everything is put back afterwards. NumPy's warnings
    are silenced meanwhile: a NaN or an inf becomes a verdict that names its cause. chainrule's
    layers run their NumPy code, the textbook's, not the compiled kernels (`kernels.numpy_only`)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(np.errstate(all="ignore"))  # a NaN or inf is a verdict, with its cause
        stack.enter_context(kernels.numpy_only())
        replaced = stack.enter_context(numpy_dot_restored())
        copied = {
            type(component).__name__: stack.enter_context(float64_copies(component))
            for component in components
            if not _is_chainrule_component(component)
        }
        conditions = Conditions(HeldDraws(components))
        stack.callback(conditions.draws.restore)
        for component in components:
            if isinstance(component, Layer):
                stack.enter_context(non_trainable_kept(component))
        if replaced:
            conditions.notes.append(
                "np.dot had been replaced (nnfs.init() does that, to return float32): the check ran with "
                "NumPy's own np.dot, in float64, and put the replacement back afterwards"
            )
        for name, arrays in copied.items():
            if arrays:
                conditions.notes.append(
                    f"{name}'s {', '.join(arrays)} are not float64 (after nnfs.init(), NumPy's new arrays are "
                    "float32): the check ran on float64 copies and left your arrays as they were"
                )
        yield conditions


def _is_chainrule_component(component: Any) -> bool:
    """chainrule's layers and losses (a learner's subclasses too) take a `dtype` of their own, and
    a float32 one is refused with that fix rather than copied."""
    return isinstance(component, (Layer, Loss))

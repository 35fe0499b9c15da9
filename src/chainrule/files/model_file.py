"""Safe model files: one `.npz` archive, read with `allow_pickle=False`, so opening a stranger's
file never runs code.

The archive holds `architecture` (UTF-8 JSON as bytes: layers with their settings, loss,
optimizer, metrics, format version), every parameter as `layer{i}.{name}`, and optionally the
optimizer's state and the random generators' states, so training resumes exactly. Files are
written to a temporary file beside the target and renamed into place: a crash never leaves a
half-written model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from chainrule.backend.arrays import to_host
from chainrule.engine import (
    activations,
    convolution,
    embedding,
    layers,
    losses,
    normalization,
    optimizers,
    pooling,
    reshaping,
)
from chainrule.engine.validation import whole_number
from chainrule.files.archive import Archive
from chainrule.files.atomic import atomic_write

FORMAT = "chainrule-model"
VERSION = 1
MAX_ARCHITECTURE_BYTES = 1 << 20  # the JSON record
MAX_LAYERS = 10_000
MAX_PARAMETERS = 10_000_000  # load_model's default cap; its max_parameters= raises it
QUOTE_LIMIT = 200  # characters of a name from the file quoted in a message
GENERATOR_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}
BUILT_IN_LAYERS: dict[str, type[layers.Layer]] = {
    cls.__name__: cls
    for cls in (
        layers.Dense,
        layers.Dropout,
        normalization.BatchNormalization,
        normalization.LayerNormalization,
        convolution.Conv2D,
        pooling.MaxPool2D,
        pooling.AveragePool2D,
        pooling.GlobalAveragePool2D,
        reshaping.Flatten,
        reshaping.Reshape,
        embedding.Embedding,
        *activations.ACTIVATIONS.values(),
    )
}
LOSS_CLASSES = {cls.__name__: cls for cls in losses.LOSSES.values()}
OPTIMIZER_CLASSES = {cls.__name__: cls for cls in optimizers.OPTIMIZERS.values()}


class SavedModel(Protocol):
    """What a model file holds of a model: what `save_model` reads and `read_model` rebuilds
    (chainrule's Model; this floor names only what it needs)."""

    seed: int | None
    requested_dtype: np.dtype | None
    layers: list[layers.Layer]
    loss: Any
    optimizer: Any
    fused_loss: Any
    metrics: dict[str, Any]
    rng: np.random.Generator

    @property
    def compiled(self) -> bool: ...

    def add(self, layer: Any) -> Any: ...

    def compile(self, *, loss: Any, optimizer: Any, metrics: list[str], fuse_sigmoid: bool) -> Any: ...


ModelT = TypeVar("ModelT", bound=SavedModel)


def _described(component: Any) -> dict[str, Any]:
    return {"class": type(component).__name__, "config": component.get_config()}


def require_rebuildable(index: int, layer: layers.Layer) -> None:
    """Refuse, before anything is written, a layer of one's own that `load_model` could not
    rebuild: its class called with its `get_config()` must construct, with the same parameters,
    and every array it trains must be among its `parameters()` (or it would not be saved)."""
    name = type(layer).__name__
    config = layer.get_config()
    where = f"save_model: layer {index} ({name})"
    try:
        rebuilt = type(layer)(**config)
    except Exception as error:
        raise ValueError(
            f"{where} could not be loaded again: {name}(**{_quoted(config)}) fails ({error}); give it a "
            "get_config() that returns its constructor's arguments (the documentation's 'Your own layer')"
        ) from error
    shapes = {key: np.shape(value) for key, value in layer.parameters().items()}
    if {key: np.shape(value) for key, value in rebuilt.parameters().items()} != shapes:
        raise ValueError(f"{where}: {name}(**{_quoted(config)}) builds other parameters than {shapes}")
    unsaved = [key for key in layers.BOOK_PARAMETERS if isinstance(getattr(layer, key, None), np.ndarray)]
    unsaved = [key for key in unsaved if key not in shapes]
    if unsaved:
        raise ValueError(
            f"{where} holds {', '.join(unsaved)} that its parameters() does not return: they would be neither "
            "trained by the optimizer nor saved; return them from parameters() and their gradients from gradients()"
        )


def save_model(model: SavedModel, path: str | os.PathLike, *, include_optimizer: bool = False) -> None:
    """Write `model` (architecture, weights, and with `include_optimizer` its training state)."""
    if not model.compiled:
        raise ValueError("save_model: compile the model (loss and optimizer) before saving it")
    for index, layer in enumerate(model.layers):
        if BUILT_IN_LAYERS.get(type(layer).__name__) is not type(layer):
            require_rebuildable(index, layer)
    architecture: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "seed": model.seed,
        "dtype": None if model.requested_dtype is None else model.requested_dtype.name,
        "layers": [_described(layer) for layer in model.layers],
        "loss": _described(model.loss),
        "optimizer": _described(model.optimizer),
        "metrics": list(model.metrics),
        "fuse_sigmoid": isinstance(model.fused_loss, losses.SigmoidBinaryCrossentropy),
        "training_state": include_optimizer,
    }
    arrays = {
        f"layer{index}.{name}": to_host(parameter)
        for index, layer in enumerate(model.layers)
        for name, parameter in {**layer.parameters(), **layer.non_trainable()}.items()
    }
    if include_optimizer:
        architecture["optimizer_iterations"] = model.optimizer.iterations
        architecture["rng_states"] = {"model": model.rng.bit_generator.state} | {
            f"layer{index}": layer.rng.bit_generator.state
            for index, layer in enumerate(model.layers)
            if isinstance(layer, layers.Dropout) and layer.rng is not model.rng
        }
        state = model.optimizer.get_state(model.layers)
        arrays.update({f"optimizer.{key}": to_host(value) for key, value in state.items()})
    arrays["architecture"] = np.frombuffer(json.dumps(architecture).encode(), dtype=np.uint8)

    atomic_write(path, lambda stream: np.savez(stream, **arrays))  # type: ignore[arg-type]  # numpy's stub: allow_pickle


def _quoted(value: Any) -> str:
    """repr(value), cut to QUOTE_LIMIT characters: a hostile file cannot make a message huge."""
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else f"{text[:QUOTE_LIMIT]}... ({len(text)} characters)"


def _build(description: Any, classes: dict[str, type], kind: str) -> Any:
    if not isinstance(description, dict) or not isinstance(description.get("class"), str):
        raise ValueError(f"{kind} {_quoted(description)} has no class name")
    name = description["class"]
    if name not in classes:
        if kind == "layer":
            raise ValueError(
                f"layer class {_quoted(name)} is not built into chainrule; pass the class you wrote, as "
                f"load_model(path, custom_layers={{{_quoted(name)}: {name if name.isidentifier() else 'YourClass'}}})"
            )
        raise ValueError(f"unknown {kind} {_quoted(name)}")
    config = description.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{kind} {_quoted(name)} has no settings")
    try:
        return classes[name](**config)
    except TypeError as error:
        raise ValueError(
            f"{kind} {_quoted(name)}(**{_quoted(config)}) failed ({error}); its get_config() must return the "
            "constructor's arguments"
        ) from error


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _check_architecture(architecture: Any, max_parameters: int) -> None:
    """Everything the JSON declares, bounded before any layer is built."""
    _require(isinstance(architecture, dict), "its architecture record is not a JSON object")
    _require(architecture.get("format") == FORMAT, "not a chainrule model file")
    version = architecture.get("version")
    _require(version == VERSION, f"format version {_quoted(version)}; this chainrule reads version {VERSION}")
    seed = architecture.get("seed")
    _require(seed is None or _is_int(seed, 0, 2**64), f"the seed {_quoted(seed)} is not a whole number >= 0")
    descriptions = architecture.get("layers")
    _require(
        isinstance(descriptions, list) and 0 < len(descriptions) <= MAX_LAYERS, f"it must list 1 to {MAX_LAYERS} layers"
    )
    metrics = architecture.get("metrics")
    _require(isinstance(metrics, list) and len(metrics) <= 8, "its metrics are not a short list of names")
    fuse_sigmoid = architecture.get("fuse_sigmoid", False)  # absent from files written before it was saved
    _require(isinstance(fuse_sigmoid, bool), f"its fuse_sigmoid {_quoted(fuse_sigmoid)} is not true or false")
    declared = 0
    for index, description in enumerate(descriptions):
        if not isinstance(description, dict) or not isinstance(description.get("config"), dict):
            continue  # built later, where a malformed description gets its own message
        cls: type[layers.Layer] | None = BUILT_IN_LAYERS.get(str(description.get("class")))
        if cls is not None:
            try:
                declared += cls.declared_parameters(description["config"])
            except ValueError as error:
                reason = f"cannot be built: {_quoted(str(error))}"
                raise ValueError(f"layer {index} declares a {cls.__name__} layer that {reason}") from None
    _require(
        declared <= max_parameters,
        f"it declares {declared} parameters, more than max_parameters={max_parameters} (raise it to load this file)",
    )
    if architecture.get("training_state"):
        iterations = architecture.get("optimizer_iterations")
        _require(_is_int(iterations, 0, 2**62), f"the optimizer's iteration count {_quoted(iterations)} is not >= 0")
        states = architecture.get("rng_states")
        _require(
            isinstance(states, dict) and len(states) <= len(descriptions) + 1, "its generator states are malformed"
        )
        for state in states.values():
            _require(_is_generator_state(state), f"the generator state {_quoted(state)} is malformed")


def _is_generator_state(state: Any) -> bool:
    """NumPy's PCG64 state: two 128-bit integers and a cached 32-bit draw."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64" or set(state) - GENERATOR_KEYS:
        return False
    inner = state.get("state")
    return (
        isinstance(inner, dict)
        and set(inner) == {"state", "inc"}
        and all(_is_int(value, 0, 2**128) for value in inner.values())
        and _is_int(state.get("has_uint32"), 0, 2)
        and _is_int(state.get("uinteger"), 0, 2**32)
    )


def _restore(
    archive: Archive,
    architecture: dict[str, Any],
    new_model: Callable[..., ModelT],
    layer_classes: dict[str, type],
    max_parameters: int,
) -> ModelT:
    _check_architecture(architecture, max_parameters)
    model = new_model(seed=architecture.get("seed"), dtype=architecture.get("dtype"))
    for description in architecture["layers"]:
        model.add(_build(description, layer_classes, "layer"))
    total = sum(parameter.size for layer in model.layers for parameter in layer.parameters().values())
    _require(total <= max_parameters, f"it holds {total} parameters, more than max_parameters={max_parameters}")
    model.compile(
        loss=_build(architecture["loss"], LOSS_CLASSES, "loss"),
        optimizer=_build(architecture["optimizer"], OPTIMIZER_CLASSES, "optimizer"),
        metrics=architecture["metrics"],
        fuse_sigmoid=architecture.get("fuse_sigmoid", False),
    )
    for index, layer in enumerate(model.layers):
        for name, parameter in {**layer.parameters(), **layer.non_trainable()}.items():
            values = archive.read(f"layer{index}.{name}", shape=parameter.shape)
            _require(
                values.dtype == parameter.dtype,
                f"the weights layer{index}.{name} are {values.dtype}, not {parameter.dtype}",
            )
            _require(bool(np.isfinite(values).all()), f"the weights layer{index}.{name} contain NaN or inf")
            _require(
                name != "running_var" or bool((values >= 0).all()), f"layer{index}.{name} holds a negative variance"
            )
            parameter[...] = values
    if architecture.get("training_state"):
        _restore_training_state(archive, architecture, model)
    return model


def _restore_training_state(archive: Archive, architecture: dict[str, Any], model: SavedModel) -> None:
    """The optimizer's state (checked: shapes, finite values, non-negative squared-gradient caches)
    and the generators' states, so `fit` continues exactly where it stopped."""
    optimizer = model.optimizer
    state = {}
    expected = [
        (f"optimizer.{index}.{name}.{slot}", parameter)
        for index, layer in enumerate(model.layers)
        for name, parameter in layer.parameters().items()
        for slot in optimizer.slots
    ]
    missing = [key for key, _ in expected if key not in archive]
    _require(  # all of the optimizer's state, or none yet (it has not taken a step)
        not missing or len(missing) == len(expected), f"the optimizer state {missing[:1]} is missing; it is partial"
    )
    for key, parameter in expected:
        if key in archive:
            values = archive.read(key, shape=parameter.shape)
            _require(bool(np.isfinite(values).all()), f"the optimizer state {key} contains NaN or inf")
            _require(
                not key.endswith(".cache") or bool((values >= 0).all()),
                f"the optimizer state {key} has negative values",
            )
            state[key.removeprefix("optimizer.")] = values
    optimizer.set_state(model.layers, state, architecture["optimizer_iterations"])
    rng_states = architecture["rng_states"]
    _require("model" in rng_states, "the model's generator state is missing")
    model.rng.bit_generator.state = rng_states["model"]
    for index, layer in enumerate(model.layers):
        if f"layer{index}" in rng_states:
            _require(
                isinstance(layer, layers.Dropout) and layer.rng is not model.rng,
                f"layer {index} has no generator of its own",
            )
            assert isinstance(layer, layers.Dropout)  # checked just above
            layer.rng.bit_generator.state = rng_states[f"layer{index}"]


def read_model(
    path: str | os.PathLike,
    new_model: Callable[..., ModelT],
    *,
    custom_layers: dict[str, type[layers.Layer]] | None = None,
    max_parameters: int = MAX_PARAMETERS,
) -> ModelT:
    """Read a model written by `save_model` into `new_model(seed=..., dtype=...)`, as
    `chainrule.load_model` does with Model (whose docstring says what `custom_layers` and
    `max_parameters` do); any damaged, foreign or oversized file raises ValueError."""
    layer_classes = {**BUILT_IN_LAYERS, **_checked_custom_layers(custom_layers)}
    max_parameters = whole_number(max_parameters, "max_parameters", "load_model")
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"load_model: no such file {source}")
    if not source.is_file():
        kind = "a folder" if source.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(f"load_model: {source} is {kind}, not a model file")
    try:
        with open(source, "rb") as stream:
            archive = Archive(stream)
            _require("architecture" in archive, "it has no architecture record")
            record = archive.read("architecture", kinds="u", max_bytes=MAX_ARCHITECTURE_BYTES)
            _require(record.dtype == np.uint8 and record.ndim == 1, "its architecture record is not text")
            architecture = json.loads(record.tobytes().decode())
            return _restore(archive, architecture, new_model, layer_classes, max_parameters)
    except Exception as error:  # every failure to parse untrusted bytes becomes one clear error
        reason = str(error)
        reason = reason if len(reason) <= 2 * QUOTE_LIMIT else f"{reason[: 2 * QUOTE_LIMIT]}..."
        raise ValueError(f"load_model: cannot load {source}: {reason}") from error


def _checked_custom_layers(custom_layers: dict[str, type[layers.Layer]] | None) -> dict[str, type[layers.Layer]]:
    if custom_layers is None:
        return {}
    if not isinstance(custom_layers, dict):
        raise TypeError(
            f"load_model: custom_layers must map class names to classes, got {type(custom_layers).__name__}"
        )
    for name, cls in custom_layers.items():
        if not (isinstance(cls, type) and issubclass(cls, layers.Layer)):
            raise TypeError(f"load_model: custom_layers[{name!r}] must be a subclass of chainrule.Layer, got {cls!r}")
    return custom_layers

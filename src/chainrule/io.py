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
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import activations, layers, losses, optimizers
from chainrule._files import atomic_write
from chainrule.model import Model

FORMAT = "chainrule-model"
VERSION = 1
BUILT_IN_LAYERS = {cls.__name__: cls for cls in (layers.Dense, layers.Dropout, *activations.ACTIVATIONS.values())}
LOSS_CLASSES = {cls.__name__: cls for cls in losses.LOSSES.values()}
OPTIMIZER_CLASSES = {cls.__name__: cls for cls in optimizers.OPTIMIZERS.values()}


def _described(component: Any) -> dict[str, Any]:
    return {"class": type(component).__name__, "config": component.get_config()}


def save_model(model: Model, path: str | os.PathLike, *, include_optimizer: bool = False) -> None:
    """Write `model` (architecture, weights, and with `include_optimizer` its training state)."""
    if not model.compiled:
        raise ValueError("save_model: compile the model (loss and optimizer) before saving it")
    architecture: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "seed": model.seed,
        "dtype": None if model.requested_dtype is None else model.requested_dtype.name,
        "layers": [_described(layer) for layer in model.layers],
        "loss": _described(model.loss),
        "optimizer": _described(model.optimizer),
        "metrics": list(model.metrics),
        "training_state": include_optimizer,
    }
    arrays = {
        f"layer{index}.{name}": parameter
        for index, layer in enumerate(model.layers)
        for name, parameter in layer.parameters().items()
    }
    if include_optimizer:
        architecture["optimizer_iterations"] = model.optimizer.iterations
        architecture["rng_states"] = {"model": model.rng.bit_generator.state} | {
            f"layer{index}": layer.rng.bit_generator.state
            for index, layer in enumerate(model.layers)
            if isinstance(layer, layers.Dropout) and layer.rng is not model.rng
        }
        state = model.optimizer.get_state(model.layers)
        arrays.update({f"optimizer.{key}": value for key, value in state.items()})
    arrays["architecture"] = np.frombuffer(json.dumps(architecture).encode(), dtype=np.uint8)

    atomic_write(path, lambda stream: np.savez(stream, **arrays))


def _build(description: Any, classes: dict[str, type], kind: str) -> Any:
    if not isinstance(description, dict) or not isinstance(description.get("class"), str):
        raise ValueError(f"{kind} {description!r} has no class name")
    name = description["class"]
    if name not in classes:
        if kind == "layer":
            raise ValueError(
                f"layer class {name!r} is not built into chainrule; pass the class you wrote, as "
                f"load_model(path, custom_layers={{{name!r}: {name}}})"
            )
        raise ValueError(f"unknown {kind} {name!r}")
    config = description.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{kind} {name} has no settings")
    try:
        return classes[name](**config)
    except TypeError as error:
        raise ValueError(
            f"{kind} {name}(**{config}) failed ({error}); its get_config() must return the constructor's arguments"
        ) from error


def _restore(archive: Any, architecture: dict[str, Any], layer_classes: dict[str, type]) -> Model:
    if architecture.get("format") != FORMAT:
        raise ValueError("not a chainrule model file")
    if architecture.get("version") != VERSION:
        raise ValueError(f"format version {architecture.get('version')!r}; this chainrule reads version {VERSION}")
    for index, description in enumerate(architecture["layers"]):
        config = description.get("config") if isinstance(description, dict) else None
        is_dense = isinstance(description, dict) and description.get("class") == "Dense"
        if is_dense and isinstance(config, dict):  # check sizes before allocating anything
            key = f"layer{index}.weights"
            declared = (config.get("n_inputs"), config.get("n_neurons"))
            if key not in archive.files or archive[key].shape != declared:
                raise ValueError(f"layer {index} declares weights of shape {declared}; the file does not hold them")
    model = Model(seed=architecture.get("seed"), dtype=architecture.get("dtype"))
    for description in architecture["layers"]:
        model.add(_build(description, layer_classes, "layer"))
    model.compile(
        loss=_build(architecture["loss"], LOSS_CLASSES, "loss"),
        optimizer=_build(architecture["optimizer"], OPTIMIZER_CLASSES, "optimizer"),
        metrics=architecture["metrics"],
    )
    for index, layer in enumerate(model.layers):
        for name, parameter in layer.parameters().items():
            key = f"layer{index}.{name}"
            if key not in archive.files:
                raise ValueError(f"the weights {key} are missing")
            values = archive[key]
            if values.shape != parameter.shape or values.dtype != parameter.dtype:
                raise ValueError(
                    f"the weights {key} are {values.dtype}{values.shape}; the architecture "
                    f"needs {parameter.dtype}{parameter.shape}"
                )
            if not np.isfinite(values).all():
                raise ValueError(f"the weights {key} contain NaN or inf")
            parameter[...] = values
    if architecture.get("training_state"):
        prefix = "optimizer."
        state = {key[len(prefix) :]: archive[key] for key in archive.files if key.startswith(prefix)}
        model.optimizer.set_state(model.layers, state, architecture["optimizer_iterations"])
        rng_states = architecture["rng_states"]
        model.rng.bit_generator.state = rng_states["model"]
        for index, layer in enumerate(model.layers):
            if f"layer{index}" in rng_states:
                layer.rng.bit_generator.state = rng_states[f"layer{index}"]
    return model


def load_model(path: str | os.PathLike, *, custom_layers: dict[str, type[layers.Layer]] | None = None) -> Model:
    """Read a model written by `save_model`; any damaged or foreign file raises ValueError.

    Layers of your own classes are rebuilt from `custom_layers`, which maps the class name
    stored in the file to the class: `load_model(path, custom_layers={"Swish": Swish})`. A class
    is never imported by a name read from the file.
    """
    layer_classes = {**BUILT_IN_LAYERS, **_checked_custom_layers(custom_layers)}
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"load_model: no such file {source}")
    try:
        with open(source, "rb") as stream:
            archive = np.load(stream, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it is not an .npz archive")
            with archive:
                if "architecture" not in archive.files:
                    raise ValueError("it has no architecture record")
                architecture = json.loads(archive["architecture"].tobytes().decode())
                if not isinstance(architecture, dict):
                    raise ValueError("its architecture record is not a JSON object")
                return _restore(archive, architecture, layer_classes)
    except Exception as error:  # every failure to parse untrusted bytes becomes one clear error
        raise ValueError(f"load_model: cannot load {source}: {error}") from error


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

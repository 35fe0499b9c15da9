"""Loading a Model from its file: the file format (`chainrule.files.model_file`) rebuilds a
chainrule Model. `Model.save` writes it."""

from __future__ import annotations

import os

from chainrule.engine.layers import Layer
from chainrule.files.model_file import MAX_PARAMETERS, read_model
from chainrule.training.model import Model


def load_model(
    path: str | os.PathLike,
    *,
    custom_layers: dict[str, type[Layer]] | None = None,
    max_parameters: int = MAX_PARAMETERS,
) -> Model:
    """Read a model written by `Model.save` or `save_model`; any damaged, foreign or oversized file
    raises ValueError.

    Layers of your own classes are rebuilt from `custom_layers`, which maps the class name
    stored in the file to the class: `load_model(path, custom_layers={"Swish": Swish})`. A class
    is never imported by a name read from the file. Files declaring more than `max_parameters`
    parameters (10 million unless raised) are refused before anything is allocated; every member
    is bounded by its declared size and header before it is read, and members the model does not
    use are never read.
    """
    return read_model(path, Model, custom_layers=custom_layers, max_parameters=max_parameters)

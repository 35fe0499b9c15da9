"""`chainrule.explain`, the documented path of `chainrule.learn.explain`."""

from chainrule.learn.explain import (
    Explanation,
    LayerExplanation,
    NetworkExplanation,
    NeuronExplanation,
    SoftmaxExplanation,
    layer,
    network,
    neuron,
    softmax_crossentropy,
)

__all__ = [
    "Explanation",
    "LayerExplanation",
    "NetworkExplanation",
    "NeuronExplanation",
    "SoftmaxExplanation",
    "layer",
    "network",
    "neuron",
    "softmax_crossentropy",
]

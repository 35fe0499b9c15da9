"""`chainrule.explain`, the documented path of `chainrule.learn.explain` and `explain_layers`."""

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
from chainrule.learn.explain_layers import batch_normalization, convolution

__all__ = [
    "Explanation",
    "LayerExplanation",
    "NetworkExplanation",
    "NeuronExplanation",
    "SoftmaxExplanation",
    "batch_normalization",
    "convolution",
    "layer",
    "network",
    "neuron",
    "softmax_crossentropy",
]

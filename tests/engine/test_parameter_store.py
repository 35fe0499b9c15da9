"""ParameterStore: bound layers share flat buffers, the others keep their own arrays, none is copied."""

import copy

import numpy as np
from custom_layers import Scale
from numpy.testing import assert_array_equal

import chainrule as cr
from chainrule.engine.parameter_store import ParameterStore


def layers():
    return [cr.Dense(3, 4, seed=0, dtype=np.float64), Scale(4), cr.Dense(4, 2, seed=1, dtype=np.float64)]


def test_bound_layers_live_in_one_flat_buffer_and_loose_layers_keep_their_arrays():
    dense, scale, output = layers()
    gamma = scale.gamma
    store = ParameterStore([dense, scale, output])
    assert store.values.size == (3 + 1) * 4 + (4 + 1) * 2
    assert np.shares_memory(dense.weights, store.values) and np.shares_memory(output.biases, store.values)
    assert store.loose_layers == [scale] and scale.gamma is gamma
    assert [(segment.layer, segment.name) for segment in store.segments] == [
        (dense, "weights"),
        (dense, "biases"),
        (output, "weights"),
        (output, "biases"),
    ]


def test_a_step_on_the_store_equals_a_step_layer_by_layer():
    by_layer, by_store = layers(), layers()
    for group in (by_layer, by_store):
        rng = np.random.default_rng(0)
        for layer in group:
            layer.forward(rng.standard_normal((5, layer.input_width or 4)))
            layer.backward(np.ones_like(layer.output))
    store = ParameterStore(by_store)
    for layer in by_store:  # the speed path writes Dense gradients into the store's buffer
        if layer.bindable:
            layer.backward_trusted(np.ones_like(layer.output))
    first, second = cr.Adam(0.1), cr.Adam(0.1)
    for _ in range(3):
        first.step(by_layer)
        second.step(store)
    for a, b in zip(by_layer, by_store, strict=True):
        for name in a.parameters():
            assert_array_equal(a.parameters()[name], b.parameters()[name])


def test_a_store_notices_when_its_layers_no_longer_use_its_buffers():
    group = layers()
    store = ParameterStore(group)
    assert store.holds(group) and not store.holds(group[:2])
    group[0].set_dtype(np.float32)
    assert not store.holds(group)


def test_a_deep_copied_store_layer_keeps_its_own_storage():
    group = layers()
    ParameterStore(group)
    clone = copy.deepcopy(group[0])
    clone.weights = np.zeros((3, 4))
    assert group[0].weights.any()

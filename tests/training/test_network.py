"""build_network: the one builder behind the command line and the scikit-learn estimators."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.training.network import build_network


def test_hidden_layers_get_the_activation_and_dropout_and_the_output_its_own_layer():
    model = build_network([2, 8, 4, 3], activation="tanh", output=cr.Softmax, dropout=0.1, seed=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Tanh", "Dropout", "Dense", "Tanh", "Dropout", "Dense", "Softmax"]
    assert [layer.n_neurons for layer in model.layers if isinstance(layer, cr.Dense)] == [8, 4, 3]


def test_penalties_reach_the_output_layer_only_when_asked():
    hidden_only = build_network([2, 8, 1], activation="relu", output=cr.Linear, weight_l2=0.1, regularize_output=False)
    everywhere = build_network([2, 8, 1], activation="relu", output=cr.Linear, weight_l2=0.1, bias_l1=0.2)
    assert [layer.weight_regularizer_l2 for layer in hidden_only.trainable_layers] == [0.1, 0.0]
    assert [layer.bias_regularizer_l1 for layer in everywhere.trainable_layers] == [0.2, 0.2]


def test_one_dtype_for_every_layer_and_scikit_learn_names_for_activations():
    model = build_network([3, 5, 2], activation="logistic", output=cr.Linear, dtype=np.float64)
    assert isinstance(model.layers[1], cr.Sigmoid) and {layer.dtype for layer in model.layers} == {np.dtype("float64")}


def test_an_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; choose from \['exp', 'identity', "):
        build_network([2, 2], activation="swish", output=cr.Linear)

"""Your own layers: written as the book writes them, they check, train, save and load like Dense."""

import numpy as np
import pytest
from custom_layers import BookDense, Scale, Swish
from numpy.testing import assert_allclose, assert_array_equal

import chainrule as cr

F64 = np.float64


def regression_data(n_samples=12, n_features=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, n_features)), rng.standard_normal((n_samples, 2))


def test_a_custom_layer_with_parameters_trains_exactly_as_by_hand():
    X, y = regression_data()
    model = cr.Model(seed=0, dtype=F64)
    model.add(Scale(3)).add(cr.Dense(3, 2)).add(cr.Linear())
    model.compile(loss="mse", optimizer=cr.SGD(learning_rate=0.1))

    # The same 20 steps in plain NumPy, from the same starting values.
    gamma, beta = Scale(3).gamma.copy(), Scale(3).beta.copy()
    weights, biases = model.layers[1].weights.copy(), model.layers[1].biases.copy()
    for _ in range(20):
        scaled = X * gamma + beta
        output = scaled @ weights + biases
        doutput = 2 * (output - y) / output.size
        dweights, dbiases = scaled.T @ doutput, doutput.sum(axis=0, keepdims=True)
        dscaled = doutput @ weights.T
        dgamma, dbeta = (dscaled * X).sum(axis=0, keepdims=True), dscaled.sum(axis=0, keepdims=True)
        gamma, beta = gamma - 0.1 * dgamma, beta - 0.1 * dbeta
        weights, biases = weights - 0.1 * dweights, biases - 0.1 * dbiases

    model.fit(X, y, epochs=20, verbose=0)
    scale, dense = model.layers[0], model.layers[1]
    assert_allclose(scale.gamma, gamma, rtol=0, atol=1e-12)
    assert_allclose(scale.beta, beta, rtol=0, atol=1e-12)
    assert_allclose(dense.weights, weights, rtol=0, atol=1e-12)
    assert_allclose(dense.biases, biases, rtol=0, atol=1e-12)
    assert not np.allclose(scale.gamma, Scale(3).gamma)  # it did move


def test_the_layer_sees_every_update_in_its_own_arrays():
    X, y = regression_data()
    scale = Scale(3)
    gamma = scale.gamma
    model = cr.Model(seed=0, dtype=F64).add(scale).add(cr.Dense(3, 2)).add(cr.Linear())
    model.compile(loss="mse", optimizer="adam").fit(X, y, epochs=3, verbose=0)
    assert scale.gamma is gamma and not np.allclose(gamma, Scale(3).gamma)


def test_a_book_style_layer_passes_gradcheck_and_is_validated_when_called_directly():
    inputs = np.random.default_rng(0).standard_normal((5, 4))
    assert cr.gradcheck(Swish(), inputs).passed
    assert cr.gradcheck(Scale(4), inputs).passed
    with pytest.raises(ValueError, match=r"Swish.forward: inputs must be a 2-D array .* got shape \(4,\)"):
        Swish().forward(np.ones(4))
    with pytest.raises(ValueError, match="Swish.backward called before forward"):
        Swish().backward(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"Scale.backward: dvalues .* must have shape \(5, 4\), got \(5, 3\)"):
        layer = Scale(4)
        layer.forward(inputs)
        layer.backward(np.ones((5, 3)))


def test_forward_and_backward_return_what_they_set_even_when_the_subclass_returns_nothing():
    layer = Scale(2)
    output = layer.forward([[1.0, 2.0]])
    assert output is layer.output and layer.backward([[1.0, 1.0]]) is layer.dinputs


def spiral_swish_model(seed=0):
    model = cr.Model(seed=seed).add(cr.Dense(2, 16)).add(Swish()).add(cr.Dense(16, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(learning_rate=0.02))


def test_a_book_style_subclass_trains_saves_and_loads_with_custom_layers(tmp_path):
    X, y = cr.datasets.spiral_data(50, 3, seed=0)
    model = spiral_swish_model()
    history = model.fit(X, y, epochs=500, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]

    model.save(tmp_path / "swish.npz")
    with pytest.raises(ValueError, match=r"'Swish' is not built into chainrule; .*custom_layers=\{'Swish': Swish\}"):
        cr.load_model(tmp_path / "swish.npz")
    loaded = cr.load_model(tmp_path / "swish.npz", custom_layers={"Swish": Swish})
    assert isinstance(loaded.layers[1], Swish)
    assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_custom_layer_with_parameters_saves_its_config_and_weights(tmp_path):
    X, y = regression_data()
    model = cr.Model(seed=0, dtype=F64).add(Scale(3, seed=4)).add(cr.Dense(3, 2)).add(cr.Linear())
    model.compile(loss="mse", optimizer="sgd").fit(X, y, epochs=5, verbose=0)
    model.save(tmp_path / "scale.npz")
    loaded = cr.load_model(tmp_path / "scale.npz", custom_layers={"Scale": Scale})
    assert_array_equal(loaded.layers[0].gamma, model.layers[0].gamma)
    assert_array_equal(loaded.predict(X), model.predict(X))


def test_custom_layers_must_map_names_to_layer_classes(tmp_path):
    spiral_swish_model().save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"custom_layers\['Swish'\] must be a subclass of chainrule.Layer"):
        cr.load_model(tmp_path / "m.npz", custom_layers={"Swish": "chainrule.Swish"})


def test_a_subclass_that_overrides_backward_of_dense_is_trained_with_its_own_gradients():
    class FrozenBiasDense(cr.Dense):
        def backward(self, dvalues):
            super().backward(dvalues)
            self.dbiases = np.zeros_like(self.dbiases)  # a fresh array, as the book would write it
            return self.dinputs

    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    model = cr.Model(seed=0).add(FrozenBiasDense(2, 8)).add(cr.ReLU()).add(FrozenBiasDense(8, 3)).add(cr.Softmax())
    before = model.layers[0].weights.copy()
    model.compile(loss="categorical_crossentropy", optimizer="adam").fit(X, y, epochs=5, verbose=0)
    assert not model.layers[0].biases.any() and not model.layers[2].biases.any()
    assert not np.array_equal(model.layers[0].weights, before)


def test_the_base_class_says_what_to_write():
    class Empty(cr.Layer):
        pass

    with pytest.raises(NotImplementedError, match=r"Empty must define forward\(self, inputs, training=False\)"):
        Empty().forward(np.ones((1, 1)))


def test_parameter_free_components_compute_in_the_dtype_of_their_inputs():
    x32, x64 = np.ones((2, 3), np.float32), np.ones((2, 3), F64)
    for component in (cr.ReLU(), cr.LeakyReLU(), cr.Sigmoid(), cr.Tanh(), cr.Softmax(), cr.Linear(), cr.Dropout(0.5)):
        assert component.forward(x32, training=True).dtype == np.float32
        assert component.forward(x64, training=True).dtype == F64
        assert component.backward(x64).dtype == F64
    assert cr.ReLU().forward([[1, 2]]).dtype == np.float32  # integers become float32
    assert cr.ReLU().forward([[0.5, 2.0]]).dtype == F64  # a list of floats, as np.asarray reads it
    fused = cr.SoftmaxCategoricalCrossentropy()
    assert isinstance(fused.forward(cr.Dense(2, 3, dtype=F64).forward(x64[:, :2]), [0, 1]), float)
    assert fused.output.dtype == F64 and fused.backward(fused.output, [0, 1]).dtype == F64
    assert cr.MeanSquaredError().backward(x64, x64).dtype == F64


def test_one_model_dtype_sets_every_layer():
    model = cr.Model(dtype=F64).add(cr.Dense(2, 4)).add(cr.ReLU()).add(cr.Dense(4, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    assert all(layer.dtype == F64 for layer in model.layers)
    assert all(parameter.dtype == F64 for parameter in model.get_weights())
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    assert model.predict(X).dtype == F64
    model.fit(X, y, epochs=2, verbose=0)
    assert all(layer.output.dtype == F64 for layer in model.layers)


def test_lazy_extras_are_module_attributes():
    import chainrule

    assert chainrule.sklearn.MLPClassifier and chainrule.onnx.export
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        chainrule.nonsense  # noqa: B018


def test_a_learners_own_dense_layer_trains_and_its_widths_are_read_from_its_weights():
    X, y = cr.datasets.spiral_data(50, 3, seed=0)
    model = cr.Model(seed=0).add(BookDense(2, 32)).add(cr.ReLU()).add(BookDense(32, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(learning_rate=0.02))
    assert (model.input_width, model.output_width) == (2, 3)
    history = model.fit(X, y, epochs=300, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    with pytest.raises(ValueError, match=r"Model.predict: X must have 2 columns"):
        model.predict(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"layer 2 \(BookDense\) takes 16 inputs but the layer before it gives 32"):
        cr.Model().add(BookDense(2, 32)).add(cr.ReLU()).add(BookDense(16, 3))._widths()


def test_a_subclass_that_overrides_only_forward_of_relu_trains():
    class CountingReLU(cr.ReLU):
        calls = 0

        def forward(self, inputs, training=False):
            CountingReLU.calls += 1
            return super().forward(inputs, training)

    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    model = cr.Model(seed=0).add(cr.Dense(2, 8)).add(CountingReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
    history = model.compile(loss="categorical_crossentropy", optimizer="adam").fit(X, y, epochs=30, verbose=0)
    assert CountingReLU.calls >= 30 and history.history["loss"][-1] < history.history["loss"][0]

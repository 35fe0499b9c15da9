"""Explanations: the seed notebooks' numbers, agreement with the engine, text snapshots, pictures."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import chainrule as cr
from chainrule.learn import explain

SNAPSHOTS = Path(__file__).parent.parent / "snapshots"
EXACT = {"rtol": 0, "atol": 1e-12}
W_BY_NEURON = np.array([[0.2, 0.8, -0.5, 1], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]])
X = np.array([[1, 2, 3, 2.5], [2, 5, -1, 2], [-1.5, 2.7, 3.3, -0.8]])
DVALUES_123 = np.array([[1.0, 1, 1], [2, 2, 2], [3, 3, 3]])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_neuron_reproduces_the_seed_values():
    result = explain.neuron([1, -2, 3], [-3, -1, 2], 1)
    assert [result[f"xw{i}"] for i in range(3)] == [-3, 2, 6]
    assert result["z"] == 6 and result["y"] == 6 and result["drelu_dz"] == 1
    assert [result[f"dmul_dx{i}"] for i in range(3)] == [-3, -1, 2]
    assert [result[f"dmul_dw{i}"] for i in range(3)] == [1, -2, 3]
    assert_allclose(result["dx"], [-3, -1, 2], **EXACT)
    assert_allclose(result["dw"], [1, -2, 3], **EXACT)
    assert result["db"] == 1
    assert_allclose(result["w_new"], [-3.001, -0.998, 1.997], **EXACT)
    assert result["b_new"] == pytest.approx(0.999, abs=1e-12)
    assert result["y_new"] == pytest.approx(5.985, abs=1e-12)


@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_neuron_chain_products_equal_the_engines_gradients(n_inputs, seed):
    rng = np.random.default_rng(seed)
    x, w, b, dvalue = rng.standard_normal(n_inputs), rng.standard_normal(n_inputs), rng.normal(), rng.normal()
    result = explain.neuron(x, w, b, dvalue=dvalue)
    dense, relu = cr.Dense(n_inputs, 1, dtype=np.float64), cr.ReLU(dtype=np.float64)
    dense.weights, dense.biases = w[:, None], [[b]]
    relu.forward(dense.forward(x[None, :]))
    dense.backward(relu.backward([[dvalue]]))
    assert_allclose([result[f"drelu_dx{i}"] for i in range(n_inputs)], dense.dinputs[0], rtol=1e-14)
    assert_allclose([result[f"drelu_dw{i}"] for i in range(n_inputs)], dense.dweights[:, 0], rtol=1e-14)
    assert result["drelu_db"] == pytest.approx(dense.dbiases[0, 0], rel=1e-14)


def test_layer_reproduces_the_seed_tables():
    result = explain.layer(X, W_BY_NEURON.T, [2, 3, 0.5], DVALUES_123)
    row = [0.44, -0.38, -0.07, 1.37]
    assert_allclose(result["dinputs"], [row, np.multiply(2, row), np.multiply(3, row)], **EXACT)
    assert_allclose(result["dweights"], [[0.5] * 3, [20.1] * 3, [10.9] * 3, [4.1] * 3], **EXACT)
    assert_allclose(result["dbiases"], [[6, 6, 6]], **EXACT)
    assert result["sum"] == pytest.approx(0.44, abs=1e-12) and result["engine"] == pytest.approx(0.44, abs=1e-12)
    relu = explain.layer(X, W_BY_NEURON.T, [2, 3, 0.5], DVALUES_123, relu=True)
    assert_allclose(relu["output"], [[4.8, 1.21, 2.385], [8.9, 0, 0.2], [1.41, 1.051, 0.026]], **EXACT)
    assert not np.signbit(relu["output"]).any()  # the dead neuron is +0, not -0
    assert_allclose(result["inputs"], X, **EXACT)
    assert_allclose(result["weights"], W_BY_NEURON.T, **EXACT)
    assert_allclose(result["biases"], [[2, 3, 0.5]], **EXACT)
    assert_allclose(result["dvalues"], DVALUES_123, **EXACT)
    assert result["inputs.shape"] == "(3, 4)"


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans())
def test_layer_sum_over_neurons_equals_the_dot_product(n_samples, n_inputs, n_neurons, seed, relu):
    rng = np.random.default_rng(seed)
    result = explain.layer(
        rng.standard_normal((n_samples, n_inputs)),
        rng.standard_normal((n_inputs, n_neurons)),
        rng.standard_normal(n_neurons),
        rng.standard_normal((n_samples, n_neurons)),
        relu=relu,
        sample=n_samples - 1,
        input_index=n_inputs - 1,
    )
    assert result["sum"] == pytest.approx(result["engine"], rel=1e-12, abs=1e-15)


def test_softmax_crossentropy_shows_the_seed_jacobian_and_equal_gradients():
    result = explain.softmax_crossentropy(
        np.log([[0.7, 0.1, 0.2], [0.2, 0.3, 0.5]]), [0, 2], measure_speed=True, batch_size=200, repeats=3
    )
    expected = [[0.21, -0.07, -0.14], [-0.07, 0.09, -0.02], [-0.14, -0.02, 0.16]]
    assert_allclose(result["jacobian"], expected, atol=1e-12)
    assert_allclose(result["dinputs_fused"], result["dinputs_separate"], atol=1e-12)
    assert result["max_difference"] < 1e-12
    assert result["separate_us"] > 0 and result["fused_us"] > 0 and result["speedup"] > 0


@pytest.mark.parametrize("name", ["neuron", "layer"])
def test_text_snapshots_for_the_seed_values(name):
    result = (
        explain.neuron([1, -2, 3], [-3, -1, 2], 1)
        if name == "neuron"
        else explain.layer(X, W_BY_NEURON.T, [2, 3, 0.5], DVALUES_123)
    )
    assert str(result) + "\n" == (SNAPSHOTS / f"explain_{name}.txt").read_text()


def test_neuron_graph_is_a_png(tmp_path):
    path = tmp_path / "neuron.png"
    explain.neuron([1, -2, 3], [-3, -1, 2], 1).to_png(path)
    assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 5000


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: explain.neuron([1, 2], [1], 0), "x has 2 values but w has 1"),
        (lambda: explain.neuron([], [], 0), "x is empty"),
        (lambda: explain.neuron(["a"], [1], 0), "x must be numeric"),
        (lambda: explain.neuron([1], [1], [1, 2]), "b must be one number"),
        (lambda: explain.layer(X, W_BY_NEURON, [1, 2, 3], DVALUES_123), r"one row per input \(4\)"),
        (lambda: explain.layer(X, W_BY_NEURON.T, [1, 2, 3], DVALUES_123[:2]), r"dvalues must have shape \(3, 3\)"),
        (lambda: explain.softmax_crossentropy([[1.0, 2.0]], [5]), "class index 5 is out of range"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def chainrule(*args):
    return subprocess.run([sys.executable, "-m", "chainrule", *args], capture_output=True, text=True, timeout=120)


def test_cli_explain_prints_the_seed_walkthroughs(tmp_path):
    neuron = chainrule(
        "explain", "neuron", "--x", "1,-2,3", "--w", "-3,-1,2", "--b", "1", "--png", str(tmp_path / "graph.png")
    )
    assert neuron.returncode == 0, neuron.stderr
    assert neuron.stdout.startswith((SNAPSHOTS / "explain_neuron.txt").read_text())
    assert (tmp_path / "graph.png").read_bytes().startswith(PNG_SIGNATURE)
    layer = chainrule("explain", "layer")
    assert layer.returncode == 0 and layer.stdout == (SNAPSHOTS / "explain_layer.txt").read_text()
    softmax = chainrule("explain", "softmax")
    assert softmax.returncode == 0 and "[0.21, -0.07, -0.14]" in softmax.stdout


def test_cli_explain_bad_input_is_one_line():
    for args in (["--x", "1,2", "--w", "1"], ["--x", "a,b"], ["--x", ""]):
        result = chainrule("explain", "neuron", *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_gradcheck_passes_and_fails_by_tolerance():
    result = chainrule("gradcheck", "--sizes", "3,5,4", "--activation", "sigmoid", "--l2", "0.01")
    assert result.returncode == 0 and "layer0.Dense.weights" in result.stdout and "passed" in result.stdout
    strict = chainrule("gradcheck", "--tolerance", "1e-30")
    assert strict.returncode == 1 and "FAILED" in strict.stdout
    for loss in ("binary_crossentropy", "mse", "mae"):
        assert chainrule("gradcheck", "--loss", loss).returncode == 0


def test_explain_softmax_is_deterministic_and_counts_in_words():
    first = subprocess.run([sys.executable, "-m", "chainrule", "explain", "softmax"], capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-m", "chainrule", "explain", "softmax"], capture_output=True, text=True)
    assert first.returncode == 0 and first.stdout == second.stdout
    assert "1 sample, 3 classes" in first.stdout and "speed" not in first.stdout.lower()
    timed = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "softmax", "--time"], capture_output=True, text=True
    )
    assert "speedup" in timed.stdout


def test_history_values_are_plain_floats():
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(cr.Softmax())
    history = model.compile(loss="categorical_crossentropy", optimizer="sgd").fit(X, y, epochs=2, verbose=0)
    assert all(type(value) is float for values in history.history.values() for value in values)
    assert "np.float64" not in repr(history.history)


def test_the_summary_never_cuts_a_layer_name():
    model = cr.Model().add(cr.Dense(2, 3, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)).add(cr.Softmax())
    summary = model.summary()
    assert repr(model.layers[0]) in summary and "total parameters: 9" in summary


def test_softmax_picture_is_a_png(tmp_path):
    result = explain.softmax_crossentropy(np.log([[0.7, 0.1, 0.2], [0.2, 0.3, 0.5]]), [0, 2], sample=1)
    assert result["label"] == 2 and result["sample"] == 1
    result.to_png(tmp_path / "softmax.png")
    assert (tmp_path / "softmax.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    cli = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "softmax", "--png", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0 and f"wrote {tmp_path / 'softmax.png'}" in cli.stdout


@pytest.mark.parametrize("relu", [False, True])
def test_layer_picture_is_a_png(tmp_path, relu):
    result = explain.layer(X, W_BY_NEURON.T, [2, 3, 0.5], DVALUES_123, relu=relu, sample=1)
    result.to_png(tmp_path / "layer.png")
    assert (tmp_path / "layer.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert_allclose(result["sums"][1], [8.9, -1.81, 0.2], **EXACT)


def test_neuron_picture_with_five_inputs(tmp_path):
    result = explain.neuron([1, -2, 3, 0.5, -1.5], [-3, -1, 2, 0.7, 1.1], 1)
    result.to_png(tmp_path / "neuron.png")
    assert (tmp_path / "neuron.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_network_step_equals_plain_numpy(tmp_path):
    result = explain.network(learning_rate=0.5, seed=3)
    X, labels = result["X"], result["y"].astype(int)
    (_, first, _), (_, second, _) = result["layers"]
    W1, b1, W2, b2 = first[:-1], first[-1:], second[:-1], second[-1:]
    z1 = X @ W1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2 + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[labels]
    assert result["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(len(X)), labels])), rel=1e-12)
    dz2 = (p - onehot) / len(X)
    dz1 = (dz2 @ W2.T) * (z1 > 0)
    assert_allclose(result["dW2"], a1.T @ dz2, rtol=1e-10, atol=1e-15)
    assert_allclose(result["dW1"], X.T @ dz1, rtol=1e-10, atol=1e-15)
    assert_allclose(result["db1"], dz1.sum(axis=0, keepdims=True), rtol=1e-10, atol=1e-15)
    assert_allclose(result["W1_new"], W1 - 0.5 * (X.T @ dz1), rtol=1e-12)
    assert result["loss_after"] < result["loss"]
    cli = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "network", "--png", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0 and "Backward pass: the dvalues flowing back" in cli.stdout
    assert (tmp_path / "network.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_numbers_never_show_as_minus_zero():
    from chainrule.learn.explain import fmt, fmt4

    assert fmt(-0.0) == "0" and fmt4(-0.0) == "0" and fmt([-0.0, 1.5]) == "[0, 1.5]"


def test_the_default_network_explanation_uses_six_distinct_points_two_per_class():
    ex = cr.explain.network()
    assert len(np.unique(ex["X"], axis=0)) == 6 and (np.linalg.norm(ex["X"], axis=1) > 0).all()
    assert np.bincount(ex["y"].astype(int)).tolist() == [2, 2, 2]

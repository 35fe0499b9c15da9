"""ONNX export: the checker accepts the file and onnxruntime reproduces Model.predict."""

import numpy as np
import pytest

import chainrule as cr

onnx = pytest.importorskip("onnx", reason="ONNX export is the optional extra 'onnx'")
onnxruntime = pytest.importorskip("onnxruntime", reason="parity needs onnxruntime (extra 'onnx')")
from chainrule.files import onnx as cr_onnx  # noqa: E402


def trained(output, dtype=np.float32, seed=0):
    model = cr.Model(seed=seed)
    model.add(cr.Dense(4, 16, dtype=dtype)).add(cr.ReLU(dtype=dtype)).add(cr.Dropout(0.3, dtype=dtype))
    model.add(cr.Dense(16, 16, dtype=dtype)).add(cr.LeakyReLU(0.1, dtype=dtype))
    model.add(cr.Dense(16, 16, dtype=dtype)).add(cr.Tanh(dtype=dtype))
    model.add(cr.Dense(16, 16, dtype=dtype)).add(cr.Sigmoid(dtype=dtype))
    model.add(cr.Dense(16, 3, dtype=dtype)).add(output(dtype=dtype))
    loss = {
        cr.Softmax: "categorical_crossentropy",
        cr.Sigmoid: "binary_crossentropy",
        cr.Linear: "mse",
        cr.Exponential: "poisson",
    }[output]
    model.compile(loss=loss, optimizer=cr.Adam(0.01))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, 4))
    y = rng.integers(0, 3, 64) if output is cr.Softmax else rng.integers(0, 2, (64, 3)).astype(float)
    model.fit(X, y, epochs=20, batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize("output", [cr.Softmax, cr.Sigmoid, cr.Linear, cr.Exponential])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnxruntime_matches_predict_for_any_batch_size(tmp_path, output, dtype):
    model = trained(output, dtype)
    path = tmp_path / "model.onnx"
    cr.onnx.export(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7, 100):
        X = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
        (result,) = session.run(["output"], {"input": X})
        np.testing.assert_allclose(result, model.predict(X), atol=1e-5, rtol=1e-5)


def test_opset_and_ir_version_are_explicit():
    proto = cr_onnx.to_onnx(trained(cr.Softmax), opset=13)
    assert proto.opset_import[0].version == 13 and proto.ir_version == 7
    with pytest.raises(ValueError, match="opset must be one of"):
        cr_onnx.to_onnx(trained(cr.Softmax), opset=5)


def test_cli_export(tmp_path):
    import subprocess
    import sys

    model_path, onnx_path = tmp_path / "model.npz", tmp_path / "model.onnx"
    trained(cr.Softmax).save(model_path)
    result = subprocess.run(
        [sys.executable, "-m", "chainrule", "export", str(model_path), "--onnx", str(onnx_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    onnx.checker.check_model(onnx.load(onnx_path), full_check=True)


@pytest.mark.parametrize("normalization", [cr.BatchNormalization, cr.LayerNormalization], ids=["batch", "layer"])
def test_a_network_with_normalization_matches_onnxruntime(tmp_path, normalization):
    model = cr.Model(seed=0).add(cr.Dense(4, 8)).add(normalization(8)).add(cr.ReLU()).add(cr.Dense(8, 3))
    model.add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))
    rng = np.random.default_rng(0)
    X, y = 5 * rng.standard_normal((64, 4)) + 2, rng.integers(0, 3, 64)
    model.fit(X, y, epochs=10, batch_size=16, verbose=0)
    path = tmp_path / "model.onnx"
    cr.onnx.export(model, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (result,) = session.run(["output"], {"input": X.astype(np.float32)})
    np.testing.assert_allclose(result, model.predict(X), atol=1e-5, rtol=1e-5)


def test_layer_normalization_needs_opset_17():
    model = cr.Model().add(cr.Dense(2, 3)).add(cr.LayerNormalization(3)).add(cr.Linear())
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=r"layer 1 \(LayerNormalization\) needs opset 17 or later, got 13"):
        cr_onnx.to_onnx(model, opset=13)


def image_network(kind):
    """Small trained networks of every image layer (and one of an Embedding)."""
    model = cr.Model(seed=0)
    if kind == "cnn":
        model.add(cr.Conv2D(1, 4, 3, padding="same")).add(cr.ReLU()).add(cr.MaxPool2D(2))
        model.add(cr.Conv2D(4, 6, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1))).add(cr.ReLU())
        model.add(cr.AveragePool2D(2, stride=1, padding=1)).add(cr.Flatten()).add(cr.Dense(2 * 3 * 6, 3))
    elif kind == "batchnorm":
        model.add(cr.Conv2D(1, 4, 3, stride=2, padding="same")).add(cr.BatchNormalization(4)).add(cr.ReLU())
        model.add(cr.GlobalAveragePool2D()).add(cr.Dense(4, 8)).add(cr.BatchNormalization(8)).add(cr.Tanh())
        model.add(cr.Reshape((2, 2, 2))).add(cr.Flatten()).add(cr.Dense(8, 3))
    else:
        model.add(cr.Embedding(10, 3)).add(cr.LayerNormalization(3)).add(cr.Flatten()).add(cr.Dense(12, 3))
    model.add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))
    rng = np.random.default_rng(1)
    X = rng.integers(0, 10, (64, 4)) if kind == "embedding" else rng.standard_normal((64, 7, 6, 1))
    model.fit(X, rng.integers(0, 3, 64), epochs=3, batch_size=16, verbose=0)
    return model, X


@pytest.mark.parametrize("kind", ["cnn", "batchnorm", "embedding"])
def test_onnxruntime_matches_predict_for_image_and_embedding_networks(tmp_path, kind):
    model, X = image_network(kind)
    path = tmp_path / "model.onnx"
    cr.onnx.export(model, path, input_shape=X.shape[1:])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = X[:9] if kind == "embedding" else X[:9].astype(np.float32)
    (result,) = session.run(["output"], {"input": inputs})
    np.testing.assert_allclose(result, model.predict(X[:9]), atol=1e-5, rtol=1e-5)


def test_an_image_network_needs_its_input_shape():
    model, _ = image_network("cnn")
    with pytest.raises(ValueError, match=r"pass input_shape=.*layer 0 \(Conv2D\) does not fix it"):
        cr_onnx.to_onnx(model)
    with pytest.raises(ValueError, match=r"onnx.export: samples of input_shape of shape \(9, 9, 1\) reach layer 7"):
        cr_onnx.to_onnx(model, input_shape=(9, 9, 1))

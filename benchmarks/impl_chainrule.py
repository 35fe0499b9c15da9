"""chainrule through Model.fit, and the same steps written by hand with the layers."""

from __future__ import annotations

import time

import numpy as np
import threadpoolctl

import chainrule as cr
from benchmarks.workloads import Workload


def build(workload: Workload, device: str = "cpu") -> cr.Model:
    model = cr.Model(seed=workload.seed, device=device)
    for in_channels, filters, kernel in workload.convolutions:
        model.add(cr.Conv2D(in_channels, filters, kernel)).add(cr.ReLU()).add(cr.MaxPool2D(2))
    if workload.convolutions:
        model.add(cr.Flatten())
    for index, (n_inputs, n_neurons) in enumerate(zip(workload.sizes, workload.sizes[1:], strict=False)):
        model.add(cr.Dense(n_inputs, n_neurons))
        model.add(cr.ReLU() if index < len(workload.sizes) - 2 else cr.Softmax())
    return model.compile(
        loss="categorical_crossentropy", optimizer=cr.Adam(workload.learning_rate, decay=workload.decay)
    )


def warm_up(workload: Workload, X: np.ndarray, y: np.ndarray, device: str = "cpu", graph: bool | None = None) -> None:
    """Three steps of a throwaway model, so that compiled kernels (extra `fast`, or CuPy's on a
    GPU) are loaded before the timing starts, as JAX's compilation is left out of its. (The
    timed model's first `fit(graph=True)` captures its own graphs, and that cost stays in the
    timing; its second fit replays them.)"""
    build(workload, device).fit(X[:64], y[:64], epochs=3, verbose=0, graph=graph)


def run_fit(
    workload: Workload,
    X: np.ndarray,
    y: np.ndarray,
    checkpoint,
    device: str = "cpu",
    graph: bool | None = None,
    allow_tf32: bool = False,
) -> dict:
    """Model.fit in two halves; resident memory is sampled between them and after training.
    On a GPU the data is copied there before the timing (fit would copy NumPy data once per call)."""
    warm_up(workload, X, y, device, graph)
    model = build(workload, device)
    X, y = model.device.to_device(X), model.device.to_device(y)
    start = time.perf_counter()
    first = workload.epochs // 2 or 1
    model.fit(X, y, epochs=first, batch_size=workload.batch_size, verbose=0, graph=graph, allow_tf32=allow_tf32)
    checkpoint()
    if workload.epochs - first:
        model.fit(
            X,
            y,
            epochs=workload.epochs - first,
            batch_size=workload.batch_size,
            verbose=0,
            graph=graph,
            allow_tf32=allow_tf32,
        )
    seconds = time.perf_counter() - start
    checkpoint()
    return {"seconds": seconds, **model.evaluate(X, y)}


def run_cuda(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """Eager steps on the GPU, one CuPy call per array operation."""
    return run_fit(workload, X, y, checkpoint, device="cuda", graph=False)


def run_cuda_graph(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """fit(graph=True): each batch size's step captured once in a CUDA graph and replayed."""
    return run_fit(workload, X, y, checkpoint, device="cuda", graph=True)


def run_cuda_graph_tf32(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    return run_fit(workload, X, y, checkpoint, device="cuda", graph=True, allow_tf32=True)


def run_fit_one_blas_thread(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """`run_fit` with BLAS held to one thread, as a user may ask on a busy machine
    (`threadpoolctl.threadpool_limits(1, user_api="blas")`)."""
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        return run_fit(workload, X, y, checkpoint)


def run_layers(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """The training loop written out with the public layer API (validated calls)."""
    warm_up(workload, X, y)
    model = build(workload)
    layers, optimizer = model.layers, model.optimizer
    loss = cr.SoftmaxCategoricalCrossentropy()
    rng = np.random.default_rng(workload.seed)
    start = time.perf_counter()
    for epoch in range(workload.epochs):
        order = rng.permutation(len(X)) if workload.batch_size else np.arange(len(X))
        size = workload.batch_size or len(X)
        for begin in range(0, len(X), size):
            rows = order[begin : begin + size]
            output = X[rows]
            for layer in layers[:-1]:
                output = layer.forward(output, training=True)
            loss.forward(output, y[rows])
            dvalues = loss.backward(loss.output, y[rows])
            for layer in reversed(layers[:-1]):
                dvalues = layer.backward(dvalues)
            optimizer.step([layer for layer in layers if layer.parameters()])
        if epoch == workload.epochs // 2:
            checkpoint()
    seconds = time.perf_counter() - start
    checkpoint()
    return {"seconds": seconds, **model.evaluate(X, y)}

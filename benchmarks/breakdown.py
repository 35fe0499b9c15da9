"""Where one training step's time goes, phase by phase, for a workload run through Model.fit.

    python -m benchmarks.breakdown spiral-book

Each phase is timed alone on one batch (best of 5 repeats), so the sum is a lower bound of a
real step, which also pays for caches refilled between phases and the per-epoch bookkeeping.
"""

from __future__ import annotations

import sys
import time
from functools import partial

from benchmarks.impl_chainrule import build
from benchmarks.workloads import WORKLOADS
from chainrule.backend.runtime import blas_threads
from chainrule.training.scoring import add_batch


def best_microseconds(function, repeats: int = 5, number: int = 50) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def main(name: str) -> None:
    workload = WORKLOADS[name]
    X, y = workload.data()
    batch = workload.batch_size or len(X)
    model = build(workload)
    model.fit(X[:batch], y[:batch], epochs=1, verbose=0)  # builds the parameter buffer and optimizer state
    inputs, targets = X[:batch], y[:batch]
    store = model.parameter_store()
    rows, output, total = [], inputs, 0.0
    with blas_threads(model.largest_matmul_work(batch)):
        for index, layer in enumerate(model.layers):
            forward = partial(layer.forward_trusted, output, True)
            rows.append((f"forward {index} {type(layer).__name__}", best_microseconds(forward)))
            output = layer.output
        rows.append(("loss and accuracy", best_microseconds(lambda: add_batch(model, output, targets, {}))))
        fused = model.fused_loss
        rows.append(("fused softmax + CE backward", best_microseconds(lambda: fused.backward_trusted(output, targets))))
        dvalues = fused.dinputs
        for index in range(len(model.layers) - 2, -1, -1):
            layer = model.layers[index]
            step = partial(layer.backward_parameters if index == 0 else layer.backward_trusted, dvalues)
            rows.append((f"backward {index} {type(layer).__name__}", best_microseconds(step)))
            dvalues = layer.dinputs
        rows.append(("optimizer step", best_microseconds(lambda: model.optimizer.step(store))))
    print(f"{name}: batch {batch}")
    for label, microseconds in rows:
        total += microseconds
        print(f"  {label:<30} {microseconds:9.1f} us")
    print(f"  {'sum':<30} {total:9.1f} us")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spiral-book")

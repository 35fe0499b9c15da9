"""Verify chainrule's GPU path on a CUDA machine in a few minutes, and write one report.

    python -m benchmarks.gpu_verify [--out GPU_VERIFY.md] [--no-timings]

Without CuPy or a CUDA GPU it prints one line, "no CUDA device: ..." with the reason, and exits
with status 2: nothing was verified. On a GPU each check prints one line as it ends, the report
gives every check with its numbers, and the exit status is 1 if any check failed.

The checks: the cuBLAS binding against float64 products on every layout and thin shape; no
allocation inside any captured step (and every step captured) for each kind of network; the
graph against the same steps run eagerly, bit for bit, on the default stream and on a user's;
divergence caught inside a graph, with the last finite weights put back; device memory across
50 short fits; a model's second fit replaying its first fit's graphs; TF32's effect on an
mlp-medium loss; float64 on the GPU against the CPU (1e-10);
an `MLPClassifier(device=...)` against the CPU's (float64, 1e-10); and, unless `--no-timings`,
spiral-book, mlp-medium and mlp-large steps against PyTorch's CUDA graph (`benchmarks.run`'s
implementations, one fresh process each).

The checks that need no cuBLAS take a `Target` (the device, its uncaptured twin, a user's
stream, the memory in use), so the tests run them on the stand-in device too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.backend import arrays, cuda_graph
from chainrule.errors import DeviceUnavailableError, TrainingDivergedError
from chainrule.training import loop, static_step

NO_DEVICE_STATUS = 2
SHAPES = [(1, 7, 5), (7, 1, 5), (7, 5, 1), (1, 1, 1), (300, 2, 64), (300, 64, 3), (128, 784, 512), (3, 4096, 2)]
TOLERANCES = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
TIMED = [("spiral-book", 1), ("mlp-medium", 1), ("mlp-large", 1)]
TIMED_IMPLEMENTATIONS = ["chainrule-cuda-graph", "chainrule-cuda-graph-tf32", "pytorch-cuda-graph"]


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Target:
    """Where the checks run: `device` captures its static steps; `uncaptured` runs the same steps,
    with the same products, eagerly; `user_stream` makes a stream of the user's current;
    `memory_in_use` gives the device memory held by arrays, in bytes."""

    device: arrays.Device
    uncaptured: arrays.Device
    user_stream: Callable[[], contextlib.AbstractContextManager]
    memory_in_use: Callable[[], int]


def spiral_model(device: Any, dtype: Any = np.float32, optimizer: Any = None, *hidden_layers: Any) -> cr.Model:
    model = cr.Model(seed=0, dtype=dtype, device=device)
    model.add(cr.Dense(2, 16))
    for layer in hidden_layers:
        model.add(layer)
    model.add(cr.ReLU()).add(cr.Dense(16, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=optimizer or cr.Adam(0.02), metrics=["accuracy"])


NETWORKS: dict[str, Callable[[Any], cr.Model]] = {
    "dense-relu-adam": lambda device: spiral_model(device),
    "sgd-momentum": lambda device: spiral_model(device, np.float32, cr.SGD(0.1, momentum=0.9, nesterov=True)),
    "rmsprop": lambda device: spiral_model(device, np.float32, cr.RMSprop(0.01)),
    "adamw-tanh": lambda device: spiral_model(device, np.float32, cr.AdamW(0.01), cr.Tanh(), cr.Dense(16, 16)),
    "batch-norm": lambda device: spiral_model(device, np.float32, None, cr.BatchNormalization(16)),
    "layer-norm": lambda device: spiral_model(device, np.float32, None, cr.LayerNormalization(16)),
}


@contextlib.contextmanager
def counting_captures() -> Iterator[tuple[list[int], list[bool], list[bool]]]:
    """(sizes of the allocations a capture refused, whether each capture gave a graph, whether each
    was of a group of epochs), while inside; unobserved epochs in chunks that double whatever the
    device's speed, so a fit of 64 epochs or more captures a group of epochs."""
    refused: list[int] = []
    captured: list[bool] = []
    groups: list[bool] = []
    refuse, capture, chunk_seconds = cuda_graph.refuse_allocation, cuda_graph.GraphRunner._capture, loop.CHUNK_SECONDS

    def counting_refusal(size: int) -> Any:
        refused.append(size)
        return refuse(size)

    def counting_capture(runner: cuda_graph.GraphRunner, step: Any) -> Any:
        graph = capture(runner, step)
        captured.append(graph is not None)
        groups.append(isinstance(step, static_step.RecordedEpochs))
        return graph

    cuda_graph.refuse_allocation = counting_refusal  # type: ignore[assignment]
    cuda_graph.GraphRunner._capture = counting_capture  # type: ignore[method-assign]
    loop.CHUNK_SECONDS = 1e9
    try:
        yield refused, captured, groups
    finally:
        cuda_graph.refuse_allocation, cuda_graph.GraphRunner._capture = refuse, capture  # type: ignore[method-assign]
        loop.CHUNK_SECONDS = chunk_seconds


def capture_allocates_nothing(target: Target) -> Result:
    """Every kind of network's steps, and its groups of shuffled epochs, are captured, with no
    allocation inside a capture."""
    X, y = cr.datasets.spiral_data(50, 3, seed=0)
    problems, graphs, group_graphs = [], 0, 0
    for name, build in NETWORKS.items():
        with counting_captures() as (refused, captured, groups):
            build(target.device).fit(X, y, epochs=64, batch_size=64, verbose=0, graph=True)
        graphs, group_graphs = graphs + sum(captured), group_graphs + sum(groups)
        if refused or not captured or not all(captured):
            problems.append(f"{name}: {len(refused)} allocations refused, {sum(captured)}/{len(captured)} captured")
    if not group_graphs:  # the normalisation layers' running statistics keep their fits epoch by epoch
        problems.append("no group of epochs was captured")
    detail = "; ".join(problems) or (
        f"{graphs} graphs over {len(NETWORKS)} networks ({group_graphs} of groups of epochs), 0 allocations"
    )
    return Result("capture allocates nothing", not problems, detail)


def graph_run(device: Any, dtype: Any = np.float32, epochs: int = 20) -> tuple[dict, list[np.ndarray]]:
    X, y = cr.datasets.spiral_data(100, 3, seed=0)
    model = spiral_model(device, dtype)
    history = model.fit(X, y, epochs=epochs, batch_size=64, verbose=0, graph=True).history
    return history, [arrays.to_host(array) for array in model.get_weights()]


def same_run(first: tuple[dict, list[np.ndarray]], second: tuple[dict, list[np.ndarray]]) -> bool:
    return first[0] == second[0] and all(np.array_equal(a, b) for a, b in zip(first[1], second[1], strict=True))


def graph_matches_eager(target: Target) -> Result:
    """Replayed graphs give the eager steps' numbers bit for bit, on the default and on a user's stream."""
    eager = graph_run(target.uncaptured)
    on_default = graph_run(target.device)
    with target.user_stream():
        on_user_stream = graph_run(target.device)
    matches = {"default stream": same_run(on_default, eager), "user's stream": same_run(on_user_stream, eager)}
    detail = ", ".join(f"{stream}: {'identical' if same else 'DIFFERENT'}" for stream, same in matches.items())
    return Result("graph equals eager, bit for bit", all(matches.values()), detail)


def divergence_caught(target: Target) -> Result:
    """A loss that overflows inside a graph stops the fit with the last finite weights."""
    X, y = cr.datasets.sine_data(200)
    model = cr.Model(seed=0, dtype=np.float32, device=target.device)
    model.add(cr.Dense(1, 32)).add(cr.ReLU()).add(cr.Dense(32, 1)).add(cr.Linear())
    model.compile(loss="mse", optimizer=cr.SGD(1e4))
    try:
        model.fit(X, y, epochs=200, batch_size=64, verbose=0, graph=True)
    except TrainingDivergedError as error:
        finite = all(np.isfinite(arrays.to_host(array)).all() for array in model.get_weights())
        return Result("divergence caught in a graph", finite, f"{error}; weights finite: {finite}")
    return Result("divergence caught in a graph", False, "the fit did not diverge")


def memory_over_short_fits(target: Target, fits: int = 50) -> Result:
    """Device memory held after `fits` short fits is what it was after the first (nothing leaks)."""
    X, y = cr.datasets.spiral_data(50, 3, seed=0)
    seconds = []
    baseline = 0
    for index in range(fits):
        started = time.perf_counter()
        spiral_model(target.device).fit(X, y, epochs=5, batch_size=64, verbose=0, graph=True)
        target.device.synchronize()
        seconds.append(time.perf_counter() - started)
        gc.collect()
        if index == 0:
            baseline = target.memory_in_use()
    growth = target.memory_in_use() - baseline
    detail = (
        f"{growth} bytes more after {fits} fits than after the first; first fit {seconds[0] * 1e3:.1f} ms, "
        f"median of the others {np.median(seconds[1:]) * 1e3:.1f} ms"
    )
    return Result("memory over short fits", growth <= 1 << 20, detail)


def float64_matches_cpu(target: Target) -> Result:
    """float64 steps on the device follow the CPU's static steps within 1e-10."""
    on_device, on_cpu = graph_run(target.device, np.float64), graph_run("cpu", np.float64)
    losses = np.array(on_device[0]["loss"]), np.array(on_cpu[0]["loss"])
    relative = float(np.max(np.abs(losses[0] - losses[1]) / np.abs(losses[1])))
    return Result("float64 equals the CPU", relative <= 1e-10, f"largest relative loss difference {relative:.2e}")


def estimator_matches_cpu(target: Target) -> Result:
    """scikit-learn's drop-in with `device=` trains as on the CPU (float64 losses within 1e-10)
    and hands back NumPy arrays; passes as not run where scikit-learn is not installed."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning

        from chainrule.sklearn import MLPClassifier
    except ImportError as error:
        return Result("estimator with device=", True, f"not run: {error}")
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # five epochs, on purpose
        fits = [
            MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0, device=device).fit(X / 16, y)
            for device in (target.device, "cpu")
        ]
    losses = np.array(fits[0].loss_curve_), np.array(fits[1].loss_curve_)
    relative = float(np.max(np.abs(losses[0] - losses[1]) / losses[1]))
    numpy_out = all(type(array) is np.ndarray for array in (*fits[0].coefs_, fits[0].predict_proba(X[:3])))
    detail = f"largest relative loss difference {relative:.2e}; NumPy arrays out: {numpy_out}"
    return Result("estimator with device=", relative <= 1e-10 and numpy_out, detail)


def graphs_kept_for_the_next_fit(target: Target) -> Result:
    """A model's second fit replays the graphs its first captured, with the uncaptured twin's numbers."""
    X, y = cr.datasets.spiral_data(100, 3, seed=0)
    runs = {}
    for name, device in (("graph", target.device), ("eager", target.uncaptured)):
        model = spiral_model(device)
        first = model.fit(X, y, epochs=3, batch_size=64, verbose=0, graph=True).history
        with counting_captures() as (_, captured, _):
            second = model.fit(X, y, epochs=3, batch_size=64, verbose=0, graph=True).history
        runs[name] = ((first, second), [arrays.to_host(array) for array in model.get_weights()], len(captured))
    same = runs["graph"][0] == runs["eager"][0] and all(
        np.array_equal(a, b) for a, b in zip(runs["graph"][1], runs["eager"][1], strict=True)
    )
    captures = runs["graph"][2]
    detail = f"{captures} captures in the second fit; numbers {'identical' if same else 'DIFFERENT'} to eager"
    return Result("graphs kept for the next fit", same and captures == 0, detail)


SHARED_CHECKS = [capture_allocates_nothing, graph_matches_eager, divergence_caught, memory_over_short_fits]
SHARED_CHECKS += [graphs_kept_for_the_next_fit]
SHARED_CHECKS += [float64_matches_cpu, estimator_matches_cpu]


def binding_matches_float64(cupy: Any) -> Result:
    """cuBLAS through the binding against float64 products on the CPU, every layout and thin shape."""
    stream, cublas = cuda_graph.device_resources(cupy.cuda.Device().id)
    rng = np.random.default_rng(0)
    worst: dict[str, float] = {}
    failures = []
    for dtype, tolerance in TOLERANCES.items():
        for rows, inner, columns in SHAPES:
            for a_order in "CF":
                for b_order in "CF":
                    a = np.asarray(rng.standard_normal((rows, inner)), dtype, order=a_order)
                    b = np.asarray(rng.standard_normal((inner, columns)), dtype, order=b_order)
                    out = cupy.empty((rows, columns), dtype)
                    device_a, device_b = cupy.asarray(a, order=a_order), cupy.asarray(b, order=b_order)
                    stream.wait_event(cupy.cuda.get_current_stream().record())
                    cublas.matmul(device_a, device_b, out)
                    stream.synchronize()
                    exact = a.astype(np.float64) @ b.astype(np.float64)
                    error = float(np.max(np.abs(out.get() - exact)) / max(np.max(np.abs(exact)), 1e-300))
                    worst[str(dtype)] = max(worst.get(str(dtype), 0.0), error)
                    if error > tolerance:
                        failures.append(f"{dtype} {rows}x{inner}x{columns} {a_order}{b_order}: {error:.1e}")
    detail = ", ".join(f"{dtype} worst relative error {error:.1e}" for dtype, error in worst.items())
    return Result("cuBLAS binding equals float64", not failures, "; ".join(failures) or detail)


def tf32_effect(target: Target) -> Result:
    """TF32 changes an mlp-medium loss a little, and only when asked for."""
    from benchmarks.workloads import gaussian_clusters

    X, y = gaussian_clusters(2560, 784, 10, seed=0)
    losses, weights = {}, {}
    for allow_tf32 in (False, True):
        model = cr.Model(seed=0, device=target.device)
        model.add(cr.Dense(784, 512)).add(cr.ReLU()).add(cr.Dense(512, 512)).add(cr.ReLU())
        model.add(cr.Dense(512, 10)).add(cr.Softmax())
        model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.001))
        history = model.fit(X, y, epochs=2, batch_size=128, verbose=0, graph=True, allow_tf32=allow_tf32)
        losses[allow_tf32] = history.history["loss"][-1]
        weights[allow_tf32] = arrays.to_host(model.get_weights()[0])
    relative = abs(losses[True] - losses[False]) / abs(losses[False])
    differs = not np.array_equal(weights[True], weights[False])
    detail = f"final loss {losses[False]:.6f} in float32, {losses[True]:.6f} with TF32 (relative {relative:.1e})"
    return Result("TF32 on the products only", differs and relative < 5e-2, detail + f"; weights differ: {differs}")


def timings() -> tuple[Result, str]:
    """Steps against PyTorch's CUDA graph (microseconds, one fresh process per run)."""
    from benchmarks.run import measure

    rows = ["| workload | " + " | ".join(TIMED_IMPLEMENTATIONS) + " |", "|---" * (len(TIMED_IMPLEMENTATIONS) + 1) + "|"]
    missing = []
    for workload, _ in TIMED:
        cells = []
        for implementation in TIMED_IMPLEMENTATIONS:
            try:
                cells.append(f"{measure(implementation, workload)['us_per_step']:,.0f}")
            except Exception as error:  # PyTorch without CUDA, a failed run: said in the cell
                missing.append(f"{implementation} on {workload}")
                cells.append(f"failed ({type(error).__name__})")
        rows.append(f"| {workload} | " + " | ".join(cells) + " |")
    detail = "all measured" if not missing else "not measured: " + ", ".join(missing)
    return Result("timings against PyTorch's CUDA graph", not missing, detail), "\n".join(rows)


def cuda_target() -> tuple[Target, Any]:
    """The current CUDA device as a `Target`, and CuPy; raises DeviceUnavailableError without one."""
    device = arrays.find_device("cuda", "gpu_verify")
    import cupy

    def products_only(training: Any, allow_tf32: bool) -> None:  # cuBLAS on the current stream, no capture
        workspace = cupy.empty(cuda_graph.WORKSPACE_BYTES, np.uint8)
        stream = cupy.cuda.get_current_stream()
        cuda_graph.route_products(
            training, cuda_graph.Cublas(cuda_graph.cupys_cublas(cupy), stream.ptr, workspace), allow_tf32
        )

    uncaptured = arrays.Device("cuda", cupy, device.synchronize, products_only)
    pool = cupy.get_default_memory_pool()
    return Target(device, uncaptured, lambda: cupy.cuda.Stream(non_blocking=True), pool.used_bytes), cupy


def report(results: list[Result], table: str, cupy: Any) -> str:
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    lines = [
        "# chainrule on a CUDA GPU: verification",
        "",
        f"GPU {properties['name'].decode()}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
        f"CuPy {cupy.__version__}, chainrule {cr.__version__}. Written by `python -m benchmarks.gpu_verify`.",
        "",
        "| check | result | numbers |",
        "|---|---|---|",
        *(
            f"| {result.name} | {'passed' if result.passed else 'FAILED'} | {result.detail.replace('|', '/')} |"
            for result in results
        ),
    ]
    if table:
        lines += ["", "Microseconds per step (one run each, in a fresh process):", "", table]
    return "\n".join(lines) + "\n"


def run_check(check: Callable[[Any], Result], argument: Any) -> Result:
    """`check(argument)`; a check that crashes has failed, with its error as the detail."""
    try:
        return check(argument)
    except Exception as error:
        return Result(check.__name__.replace("_", " "), False, f"{type(error).__name__}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="GPU_VERIFY.md", help="the report to write (default GPU_VERIFY.md)")
    parser.add_argument("--no-timings", action="store_true", help="skip the step timings against PyTorch")
    arguments = parser.parse_args(argv)
    try:
        target, cupy = cuda_target()
    except DeviceUnavailableError as error:
        print(f"no CUDA device: {error}")
        return NO_DEVICE_STATUS
    logging.getLogger("chainrule").setLevel(logging.ERROR)  # the checks count failed captures themselves
    results, table = [], ""
    checks: list[tuple[Callable[[Any], Result], Any]] = [(binding_matches_float64, cupy)]
    checks += [(check, target) for check in (*SHARED_CHECKS, tf32_effect)]
    for check, argument in checks:
        started = time.perf_counter()
        result = run_check(check, argument)
        results.append(result)
        seconds = time.perf_counter() - started
        print(f"{'ok ' if result.passed else 'FAIL'} {result.name} ({seconds:.1f} s): {result.detail}")
    if not arguments.no_timings:
        timing, table = timings()
        results.append(timing)
        print(f"{'ok ' if timing.passed else 'FAIL'} {timing.name}: {timing.detail}\n{table}")
    with open(arguments.out, "w") as stream:
        stream.write(report(results, table, cupy))
    print(f"report written to {arguments.out}")
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What bounds a workload's static training step: its matrix products, Adam, and the rest.

    python -m benchmarks.floor mlp-medium [--rounds 7]

Each round times, in one process and over the step's own buffers (`static_step.StaticStep`):
every matrix product of the step in its order, on the BLAS threads `fit` uses and on one
thread; then, taking turns of 5 calls each so that they see the machine at the same speed,
Adam's compiled update alone, all the products, the products then Adam as a step runs them, the
whole compiled step on one batch, and on a new batch gathered from the data each time; Adam's
own time right after the products, these on the step's threads or on one, in alternation; a lone
1024 x 1024 x 1024 float32 product, the machine's rate at that moment; and one `Model.fit` of
the workload. The table gives medians over the rounds: how much of a step is products at the
machine's rate, how much is Adam's pass over memory, and how much is neither. It needs the
compiled kernels (extra `fast`).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.impl_chainrule import build, warm_up
from benchmarks.workloads import WORKLOADS
from chainrule.backend import kernels
from chainrule.backend.arrays import take_rows
from chainrule.backend.runtime import blas_threads
from chainrule.training import step_kernels
from chainrule.training.static_step import StaticStep, StaticTraining

Timed = tuple[str, Callable[[], object], int]  # label, what runs, floating-point operations
# The rows that the closing sentences compare.
ADAM, PRODUCTS, PRODUCTS_THEN_ADAM = "Adam alone", "products alone", "products, then Adam"
ADAM_AFTER, ADAM_AFTER_ONE_THREAD = "Adam right after the products", "Adam right after the products on 1 thread"
GATHERED_STEP, FIT = "a new batch gathered, then the step", "Model.fit, per step"


def products(step: StaticStep) -> list[Timed]:
    """The step's matrix products in `StaticStep.run_with_numpy_products`' order."""
    timed: list[Timed] = []
    below = step.inputs
    for index, (weights, output) in enumerate(zip(step.weights, step.outputs, strict=True)):
        flops = 2 * len(below) * weights.size
        timed.append((f"forward {index}", partial(np.matmul, below, weights, out=output), flops))
        below = output
    for index in range(len(step.weights) - 1, -1, -1):
        below = step.inputs if index == 0 else step.outputs[index - 1]
        gradient, weights = step.dvalues[index], step.weights[index]
        flops = 2 * len(below) * weights.size
        timed.append((f"dweights {index}", partial(np.matmul, below.T, gradient, out=step.dweights[index]), flops))
        if index:
            dinputs = partial(np.matmul, gradient, weights.T, out=step.dvalues[index - 1])
            timed.append((f"dinputs {index}", dinputs, flops))
    return timed


def seconds(function: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def interleaved(functions: Mapping[str, Callable[[], object]], number: int, chunk: int = 5) -> dict[str, float]:
    """Each function's seconds per call over `number` calls, taken in turns of `chunk` calls, so
    that all of them see the machine at the same speed."""
    totals = dict.fromkeys(functions, 0.0)
    turns = max(number // chunk, 1)
    for _ in range(turns):
        for label, function in functions.items():
            totals[label] += seconds(function, chunk) * chunk
    return {label: total / (turns * chunk) for label, total in totals.items()}


def measure(workload_name: str, rounds: int, steps: int) -> dict[str, tuple[list[float], int | None]]:
    """Each timing's seconds over the rounds, with its floating-point operations where it has them."""
    workload = WORKLOADS[workload_name]
    X, y = workload.data()
    batch = workload.batch_size or len(X)
    warm_up(workload, X, y)
    model = build(workload)
    model.fit(X[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)  # the flat buffers and Adam's state
    training = StaticTraining(model, model.parameter_store(), batch, X, y)
    step = training.step_for(batch)
    step.inputs[...], step.targets[...] = X[:batch], y[:batch]

    def adam() -> None:
        step_kernels.adam_step(training.adam_buffers, training.adam_arguments())

    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))

    def whole_step() -> None:
        training.run(step)  # as `fit` runs it: one compiled call for small products

    whole_step()  # compiled, and every buffer now holds a real step's values

    def gathered_step() -> None:
        start = rng.integers(0, len(X) - batch + 1)
        take_rows(X, order[start : start + batch], step.inputs)
        take_rows(y, order[start : start + batch], step.targets)
        whole_step()

    timed = products(step)

    def all_products() -> None:
        for _, run, _ in timed:
            run()

    def products_then_adam() -> None:
        all_products()
        adam()

    def adam_after_products(one_thread: bool) -> float:
        """Adam's own seconds right after the products, these on the step's BLAS threads or on one."""
        with threadpool_limits(limits=1, user_api="blas") if one_thread else contextlib.nullcontext():
            all_products()
            start = time.perf_counter()
            adam()
            return time.perf_counter() - start

    compared = {  # timed in turns
        ADAM: adam,
        PRODUCTS: all_products,
        PRODUCTS_THEN_ADAM: products_then_adam,
        "the whole step, one batch": whole_step,
        GATHERED_STEP: gathered_step,
    }

    if sum(count for _, _, count in timed) != workload.matmul_flops_per_step(batch):
        raise SystemExit("benchmarks.floor: the products listed are not the step's; update products()")
    square = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    times: dict[str, list[float]] = {}
    with blas_threads(model.largest_matmul_work(batch)):
        for _ in range(rounds):
            rows = {label: seconds(run, steps) for label, run, _ in timed}
            with threadpool_limits(limits=1, user_api="blas"):
                rows.update({f"{label}, 1 thread": seconds(run, steps) for label, run, _ in timed})
            rows.update(interleaved(compared, steps))
            after = [(adam_after_products(False), adam_after_products(True)) for _ in range(steps)]
            rows[ADAM_AFTER] = statistics.median(both[0] for both in after)
            rows[ADAM_AFTER_ONE_THREAD] = statistics.median(both[1] for both in after)
            rows["1024^3 product"] = seconds(lambda: square @ square, 5)
            start = time.perf_counter()
            build(workload).fit(X, y, epochs=workload.epochs, batch_size=workload.batch_size, verbose=0)
            rows[FIT] = (time.perf_counter() - start) / workload.steps(len(X))
            for label, value in rows.items():
                times.setdefault(label, []).append(value)
    flops: dict[str, int] = {label: count for label, _, count in timed}
    flops.update({f"{label}, 1 thread": count for label, _, count in timed})
    flops[PRODUCTS] = sum(count for _, _, count in timed)
    flops["1024^3 product"] = 2 * 1024**3
    return {label: (values, flops.get(label)) for label, values in times.items()}


def ratios(timings: dict[str, tuple[list[float], int | None]], label: str) -> str:
    """`label`'s time over the products' time in each round: their median and range. A ratio
    within a round holds while the machine's speed drifts between rounds."""
    per_round = [a / b for a, b in zip(timings[label][0], timings[PRODUCTS][0], strict=True)]
    return f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})"


def report(workload_name: str, timings: dict[str, tuple[list[float], int | None]]) -> str:
    """A markdown table of the medians, then the step against its products alone."""
    median = {label: statistics.median(values) for label, (values, _) in timings.items()}
    batch = WORKLOADS[workload_name].batch_size or "the full"
    rounds = len(timings[PRODUCTS][0])
    lines = [f"{workload_name}: batch {batch}, medians of {rounds} rounds in one process", ""]
    lines += ["| what | us | GFLOP/s |", "| --- | ---: | ---: |"]
    for label, (_, flops) in timings.items():
        rate = f"{flops / median[label] / 1e9:.0f}" if flops else ""
        lines.append(f"| {label} | {median[label] * 1e6:,.0f} | {rate} |")
    step, fit = (ratios(timings, label) for label in (GATHERED_STEP, FIT))
    lines += [
        "",
        f"Round by round (each round times both), the step on a newly gathered batch took {step} times its "
        f"products alone and `Model.fit`'s step {fit} times (medians, with the rounds' range). Adam right "
        f"after the products took {median[ADAM_AFTER] * 1e6:,.0f} us, right after the same products on one "
        f"BLAS thread {median[ADAM_AFTER_ONE_THREAD] * 1e6:,.0f}, and alone {median[ADAM] * 1e6:,.0f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50, help="repeats of each timing in a round")
    args = parser.parse_args()
    if not kernels.ENABLED:
        parser.error("the compiled kernels are off: pip install -e '.[fast]'")
    print(report(args.workload, measure(args.workload, args.rounds, args.steps)))


if __name__ == "__main__":
    main()

"""Data-parallel training measured on this machine, and projected to a cluster from measured inputs.

    python -m benchmarks.mpi_scaling [--rounds 5]

Measured, each configuration in its own `mpiexec` job, interleaved over the rounds, with the
machine's load average recorded:

- mlp-medium (25,600 x 784, 784-512-512-10, batch 128, Adam, one epoch) trained by one
  process with two BLAS threads, one process with one thread, and two processes (`mpiexec -n
  2`, `distributed="mpi"`) with one thread each: microseconds per step.
- `Allreduce` (sum, in place) on loopback with 2, 3 and 4 processes over message sizes from
  8 bytes to 64 MiB, including the 24-byte status reduction every step makes: median seconds.
  A straight line through them gives this machine's latency (alpha) and seconds per byte (beta).
- The gradient reduction overlapped with the backward pass, with 2 processes: mlp-medium's
  backward products layer by layer, each layer's gradient handed to `Iallreduce` as soon as it
  is ready, against the same products followed by one `Allreduce` of the whole gradient.

Projected: a data-parallel step on 8, 64 and 512 nodes = this machine's one-thread step plus
the gradient reduction and the status reduction, each costed for the algorithm Open MPI 5's
`coll/tuned` fixed rules choose at that node count and message size (`ompi_allreduce_algorithm`,
from ompi/mca/coll/tuned/coll_tuned_decision_fixed.c), with the cost formulas of Thakur,
Rabenseifner and Gropp (2005), and a network's alpha and beta taken from a published
measurement (`NETWORK`, `NETWORK_ALPHA`, `NETWORK_BETA`). It prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from chainrule.training.mpi_launcher import find_mpiexec

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = {"spiral-book": 387, "mlp-medium": 669_706, "mlp-large": 20_037_642}
MESSAGE_BYTES = [8, 24, 512, 4096, 32_768, 262_144, 1 << 21, 4 * 669_706, 1 << 24, 1 << 26]
STATUS_BYTES = 24  # every step's (loss, rows, stop) reduction: three float64
PROCESSES = (2, 3, 4)
NODES = (8, 64, 512)
# Open MPI 1.8 over a 40 Gb/s Ethernet NIC with an OS-bypass driver (Cisco usNIC), back to back:
# 1.93 us half-round-trip latency and 37.23 Gb/s (J. Squyres, "MPI over 40Gb Ethernet", Cisco
# blogs, https://blogs.cisco.com/performance/mpi-over-40gb-ethernet).
NETWORK, NETWORK_ALPHA, NETWORK_BETA = "40 Gb/s Ethernet, OS bypass (Cisco usNIC)", 1.93e-6, 8 / 37.23e9
ALGORITHMS = {2: "reduce + broadcast", 3: "recursive doubling", 4: "ring", 5: "segmented ring", 6: "Rabenseifner"}


def ompi_allreduce_algorithm(processes: int, message_bytes: int) -> int:
    """The algorithm Open MPI 5's coll/tuned fixed rules pick for a commutative Allreduce (SUM)."""
    rules: list[tuple[int, list[tuple[float, int]]]] = [  # (fewer processes than, [(fewer bytes than, algorithm)])
        (4, [(8, 4), (4096, 3), (8192, 4), (16384, 3), (65536, 4), (262144, 5), (math.inf, 6)]),
        (8, [(16, 4), (8192, 3), (math.inf, 6)]),
        (16, [(8192, 3), (math.inf, 6)]),
        (32, [(64, 5), (4096, 3), (math.inf, 6)]),
        (64, [(128, 5), (math.inf, 6)]),
        (128, [(262144, 3), (math.inf, 6)]),
        (256, [(131072, 2), (262144, 3), (math.inf, 6)]),
        (512, [(4096, 2), (math.inf, 6)]),
        (2048, [(2048, 2), (16384, 3), (math.inf, 6)]),
    ]
    for below, choices in rules:
        if processes < below:
            return next(algorithm for limit, algorithm in choices if message_bytes < limit)
    raise ValueError(f"no rule copied for {processes} processes")


def allreduce_seconds(algorithm: int, p: int, n: float, alpha: float, beta: float, gamma: float) -> float:
    """Thakur, Rabenseifner and Gropp's cost of an Allreduce of n bytes over p processes: alpha per
    message, beta per byte sent, gamma per byte reduced."""
    steps = math.ceil(math.log2(p))
    share = (p - 1) / p
    if algorithm == 2:  # binomial reduce, then binomial broadcast
        return 2 * steps * (alpha + n * beta) + steps * n * gamma
    if algorithm == 3:
        return steps * (alpha + n * beta + n * gamma)
    if algorithm in (4, 5):
        return 2 * (p - 1) * alpha + 2 * share * n * beta + share * n * gamma
    return 2 * steps * alpha + 2 * share * n * beta + share * n * gamma  # 6: reduce-scatter + allgather


# -- what runs inside each mpiexec job ----------------------------------------------------------


def train_job(distributed: bool) -> dict:
    """One epoch of mlp-medium; rank 0 reports microseconds per step (warm-up step excluded)."""
    from benchmarks.impl_chainrule import build
    from benchmarks.workloads import WORKLOADS

    workload = WORKLOADS["mlp-medium"]
    X, y = workload.data()
    model = build(workload)
    settings = {"distributed": "mpi"} if distributed else {}
    model.fit(X[:256], y[:256], epochs=1, batch_size=workload.batch_size, verbose=0, **settings)  # warm up
    start = time.perf_counter()
    history = model.fit(X, y, epochs=1, batch_size=workload.batch_size, verbose=0, **settings)
    seconds = time.perf_counter() - start
    return {"us_per_step": seconds / workload.steps(len(X)) * 1e6, "loss": history.history["loss"][-1]}


def allreduce_job(repeats: int = 30) -> dict:
    """Median seconds of one in-place Allreduce (float32 SUM; float64 for 8 and 24 bytes) per size."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    seconds = {}
    for size in MESSAGE_BYTES:
        buffer = np.ones(size // 8, np.float64) if size <= STATUS_BYTES else np.ones(size // 4, np.float32)
        times = []
        for _ in range(repeats if size < 1 << 22 else 8):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        seconds[str(size)] = statistics.median(times)
    return seconds


def overlap_job(repeats: int = 40) -> dict:
    """mlp-medium's backward products for one process's 64 rows, with the gradient reduced after
    them (one Allreduce) or layer by layer as each is ready (Iallreduce, all waited for at the end)."""
    from mpi4py import MPI

    comm, rng = MPI.COMM_WORLD, np.random.default_rng(0)
    sizes, rows = [784, 512, 512, 10], 64
    activations = [rng.standard_normal((rows, width), dtype=np.float32) for width in sizes[:-1]]
    weights = [rng.standard_normal((a, b), dtype=np.float32) for a, b in zip(sizes, sizes[1:], strict=False)]
    flat = np.zeros(sum(w.size + w.shape[1] for w in weights), np.float32)
    views, offset = [], 0
    for w in weights:
        views.append(flat[offset : offset + w.size + w.shape[1]])
        offset += w.size + w.shape[1]

    def backward(start_reduction: object) -> None:
        dvalues = rng.standard_normal((rows, sizes[-1]), dtype=np.float32)
        for layer in reversed(range(len(weights))):
            view, w = views[layer], weights[layer]
            np.matmul(activations[layer].T, dvalues, out=view[: w.size].reshape(w.shape))
            view[w.size :] = dvalues.sum(axis=0)
            if layer:
                dvalues = dvalues @ w.T
            start_reduction(view)  # type: ignore[operator]

    def after() -> None:
        backward(lambda view: None)
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)

    def overlapped() -> None:
        requests: list = []
        backward(lambda view: requests.append(comm.Iallreduce(MPI.IN_PLACE, view, op=MPI.SUM)))
        MPI.Request.Waitall(requests)

    def compute_only() -> None:
        backward(lambda view: None)

    results: dict[str, list[float]] = {"after": [], "overlapped": [], "compute": []}
    for _ in range(repeats):
        for name, run in (("after", after), ("overlapped", overlapped), ("compute", compute_only)):
            comm.Barrier()
            start = time.perf_counter()
            run()
            results[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in results.items()}


# -- the driver -----------------------------------------------------------------------------


def run(n: int, job: str, threads: int) -> dict:
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    launcher = [find_mpiexec(), "--oversubscribe", "--bind-to", "none", "-n", str(n)]
    command = [*launcher, sys.executable, "-m", "benchmarks.mpi_scaling", job]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, check=True)
    # the report is the last line that is one: Numba's colours (colorama) may print a reset at exit
    return json.loads(next(line for line in reversed(completed.stdout.splitlines()) if line.startswith("{")))


def fitted_network(seconds: dict[int, float], p: int, gamma: float) -> tuple[float, float]:
    """(alpha, beta) of the loopback, from p processes' times for 256 KiB to 2.7 MB (mlp-medium's
    gradient), where Open MPI's rules pick Rabenseifner's algorithm below 8 processes: a straight
    line through them is 2 log2(p) alpha + (2 (p-1)/p beta + (p-1)/p gamma) bytes."""
    points = [(size, value) for size, value in seconds.items() if 262_144 <= size <= 4 * PARAMETERS["mlp-medium"]]
    slope, intercept = np.polyfit([size for size, _ in points], [value for _, value in points], 1)
    share = (p - 1) / p
    return max(float(intercept), 0.0) / (2 * math.ceil(math.log2(p))), (float(slope) - share * gamma) / (2 * share)


def reduction_seconds_per_byte(repeats: int = 20) -> float:
    """gamma: this machine's in-place float32 sum, per byte of the buffer (mlp-medium's gradient)."""
    a, b = np.ones(669_706, np.float32), np.ones(669_706, np.float32)
    return min(timed(lambda: np.add(a, b, out=a)) for _ in range(repeats)) / a.nbytes


def timed(function: object) -> float:
    start = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", nargs="?", choices=["train", "train-mpi", "allreduce", "overlap"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.job:  # inside mpiexec
        from mpi4py import MPI

        jobs = {"allreduce": allreduce_job, "overlap": overlap_job}
        result = jobs[args.job]() if args.job in jobs else train_job(args.job == "train-mpi")
        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(result))
        return

    configurations = {
        "1 process, 2 BLAS threads": (1, "train", 2),
        "1 process, 1 BLAS thread": (1, "train", 1),
        "2 processes (MPI), 1 BLAS thread each": (2, "train-mpi", 1),
    }
    steps: dict[str, list[float]] = {name: [] for name in configurations}
    sweeps: dict[int, dict[int, list[float]]] = {p: {size: [] for size in MESSAGE_BYTES} for p in PROCESSES}
    overlap: dict[str, list[float]] = {"after": [], "overlapped": [], "compute": []}
    loads = []
    for round_number in range(args.rounds):
        names = list(configurations)
        for name in names[round_number % 3 :] + names[: round_number % 3]:
            steps[name].append(run(*configurations[name])["us_per_step"])
        for p in PROCESSES:
            for size, seconds in run(p, "allreduce", 1).items():
                sweeps[p][int(size)].append(seconds)
        for name, seconds in run(2, "overlap", 1).items():
            overlap[name].append(seconds)
        loads.append(os.getloadavg()[0])
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    report(steps, sweeps, overlap, loads, args.rounds)


def report(
    steps: dict[str, list[float]],
    sweeps: dict[int, dict[int, list[float]]],
    overlap: dict[str, list[float]],
    loads: list[float],
    rounds: int,
) -> None:
    median = statistics.median
    print(f"{rounds} rounds; load average (1 min) {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs\n")
    print("| mlp-medium, one epoch of batch 128 | us per step (median) | range |")
    print("| --- | ---: | --- |")
    for name, values in steps.items():
        print(f"| {name} | {median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |")
    gamma = reduction_seconds_per_byte()
    print("\n| Allreduce on loopback, bytes | " + " | ".join(f"{p} processes, us" for p in PROCESSES) + " |")
    print("| ---: |" + " ---: |" * len(PROCESSES))
    for size in MESSAGE_BYTES:
        cells = " | ".join(f"{median(sweeps[p][size]) * 1e6:,.1f}" for p in PROCESSES)
        print(f"| {size:,} | {cells} |")
    two = {size: median(values) for size, values in sweeps[2].items()}
    alpha, beta = fitted_network(two, 2, gamma)
    size = 4 * PARAMETERS["mlp-medium"]
    print(
        f"\nLoopback fitted from 2 processes (256 KiB to 2.7 MB): alpha {alpha * 1e6:.1f} us, beta "
        f"{beta * 1e9:.3f} ns per byte ({1 / beta / 1e9:.1f} GB/s). The model with them, at mlp-medium's 2.7 MB:\n"
    )
    print("| processes | Open MPI's algorithm | modelled, us | measured, us |")
    print("| ---: | --- | ---: | ---: |")
    for p in PROCESSES:
        algorithm = ompi_allreduce_algorithm(p, size)
        modelled = allreduce_seconds(algorithm, p, size, alpha, beta, gamma)
        print(f"| {p} | {ALGORITHMS[algorithm]} | {modelled * 1e6:,.0f} | {median(sweeps[p][size]) * 1e6:,.0f} |")
    print(f"\ngamma (float32 sum, this machine): {gamma * 1e9:.3f} ns per byte\n")
    after, overlapped, compute = (median(overlap[name]) * 1e3 for name in ("after", "overlapped", "compute"))
    print("| mlp-medium backward, 64 rows per process, 2 processes | ms (median) |")
    print("| --- | ---: |")
    print(f"| products alone | {compute:.3f} |")
    print(f"| products, then one Allreduce of the gradient | {after:.3f} |")
    print(f"| products with each layer's Iallreduce started when ready | {overlapped:.3f} |")
    single = median(steps["1 process, 1 BLAS thread"]) * 1e-6
    print(
        f"\nProjection (weak scaling, 128 rows per node; compute per node = this machine's one-thread step, "
        f"{single * 1e3:.1f} ms for mlp-medium; network: {NETWORK}, alpha {NETWORK_ALPHA * 1e6:.2f} us, "
        f"{8 / NETWORK_BETA / 1e9:.1f} Gb/s; gamma as measured):\n"
    )
    print("| model | nodes | gradient: algorithm, ms | status: algorithm, us | step ms | efficiency |")
    print("| --- | ---: | --- | --- | ---: | ---: |")
    for name, parameters in (("mlp-medium", PARAMETERS["mlp-medium"]), ("mlp-large", PARAMETERS["mlp-large"])):
        compute_seconds = single * parameters / PARAMETERS["mlp-medium"]  # the same arithmetic per parameter and row
        for p in NODES:
            costs = {}
            for what, size in (("gradient", 4 * parameters), ("status", STATUS_BYTES)):
                algorithm = ompi_allreduce_algorithm(p, size)
                seconds = allreduce_seconds(algorithm, p, size, NETWORK_ALPHA, NETWORK_BETA, gamma)
                costs[what] = (ALGORITHMS[algorithm], seconds)
            step = compute_seconds + costs["gradient"][1] + costs["status"][1]
            print(
                f"| {name} | {p} | {costs['gradient'][0]}, {costs['gradient'][1] * 1e3:.2f} "
                f"| {costs['status'][0]}, {costs['status'][1] * 1e6:.1f} | {step * 1e3:.2f} "
                f"| {compute_seconds / step:.0%} |"
            )


if __name__ == "__main__":
    main()

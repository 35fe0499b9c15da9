"""Data-parallel training measured on this machine, and projected to a cluster.

    python -m benchmarks.mpi_scaling [--rounds 5]

Measured, each configuration in its own `mpiexec` job, interleaved over the rounds:

- mlp-medium (25,600 x 784, 784-512-512-10, batch 128, Adam, one epoch) trained by one
  process with two BLAS threads, one process with one thread, and two processes (`mpiexec -n
  2`, `distributed="mpi"`) with one thread each: microseconds per step.
- `Allreduce` (sum, float32, in place) between two processes on loopback, for the parameter
  counts of spiral-book (387), mlp-medium (669,706) and mlp-large (784-4096-4096-10,
  20,037,642): median seconds, and the bandwidth it implies.

Projected: an alpha-beta model of a data-parallel step on 8, 64 and 512 nodes joined by a
25 Gb/s network (see `projection`). It prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = {"spiral-book": 387, "mlp-medium": 669_706, "mlp-large": 20_037_642}
LINK_BYTES_PER_SECOND = 25e9 / 8  # 25 Gb/s
LINK_LATENCY = 25e-6  # seconds per message on a TCP/IP Ethernet hop (RDMA: a few microseconds)
NODES = (8, 64, 512)


# -- what runs inside each mpiexec job ----------------------------------------------------------


def train_job(distributed: bool) -> dict:
    """One epoch of mlp-medium; rank 0 reports microseconds per step (warm-up step excluded)."""
    import chainrule as cr
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
    del cr
    return {"us_per_step": seconds / workload.steps(len(X)) * 1e6, "loss": history.history["loss"][-1]}


def allreduce_job(repeats: int = 20) -> dict:
    """Median seconds of one in-place float32 Allreduce per buffer size."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    seconds = {}
    for name, count in PARAMETERS.items():
        buffer = np.ones(count, dtype=np.float32)
        times = []
        for _ in range(repeats if count < 10**7 else max(3, repeats // 4)):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    return seconds


# -- the driver -----------------------------------------------------------------------------


def run(n: int, job: str, threads: int) -> dict:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    launcher = [mpiexec, "--oversubscribe", "--bind-to", "none", "-n", str(n)]
    command = [*launcher, sys.executable, "-m", "benchmarks.mpi_scaling", job]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def projection(compute_per_row: float, fixed_per_step: float, local_batch: int, parameters: int) -> dict:
    """Step seconds on p nodes: compute on `local_batch` rows per node plus a ring Allreduce of
    the float32 gradients, 2 (p - 1) messages of latency and 2 (p - 1) / p of the buffer over
    each link. Weak scaling: the global batch is local_batch * p."""
    size = 4 * parameters
    rows = {}
    for p in NODES:
        communication = 2 * (p - 1) * LINK_LATENCY + 2 * (p - 1) / p * size / LINK_BYTES_PER_SECOND
        compute = fixed_per_step + compute_per_row * local_batch
        rows[p] = {
            "communication_ms": communication * 1e3,
            "step_ms": (compute + communication) * 1e3,
            "efficiency": compute / (compute + communication),
            "rows_per_second": p * local_batch / (compute + communication),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", nargs="?", choices=["train", "train-mpi", "allreduce"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.job:  # inside mpiexec
        from mpi4py import MPI

        result = allreduce_job() if args.job == "allreduce" else train_job(args.job == "train-mpi")
        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(result))
        return

    configurations = {
        "1 process, 2 BLAS threads": (1, "train", 2),
        "1 process, 1 BLAS thread": (1, "train", 1),
        "2 processes (MPI), 1 BLAS thread each": (2, "train-mpi", 1),
    }
    steps: dict[str, list[float]] = {name: [] for name in configurations}
    allreduce: dict[str, list[float]] = {name: [] for name in PARAMETERS}
    for round_number in range(args.rounds):
        names = list(configurations)
        for name in names[round_number % 3 :] + names[: round_number % 3]:
            steps[name].append(run(*configurations[name])["us_per_step"])
        for name, seconds in run(2, "allreduce", 1).items():
            allreduce[name].append(seconds)
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print("| mlp-medium, one epoch of batch 128 | us per step (median) | range |")
    print("| --- | ---: | --- |")
    for name, values in steps.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |")
    print()
    print("| Allreduce, 2 processes on loopback | parameters | median ms | GB/s (buffer / time) |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in allreduce.items():
        seconds = statistics.median(values)
        size = 4 * PARAMETERS[name]
        print(f"| {name} | {PARAMETERS[name]:,} | {seconds * 1e3:.3f} | {size / seconds / 1e9:.2f} |")
    print()
    single = statistics.median(steps["1 process, 1 BLAS thread"]) * 1e-6
    print(
        f"Projection (weak scaling, 128 rows per node, 25 Gb/s links, {LINK_LATENCY * 1e6:.0f} us per message; "
        f"compute per node = this machine's one-thread step, {single * 1e3:.1f} ms for mlp-medium):"
    )
    print()
    print("| model | nodes | Allreduce ms | step ms | efficiency | rows per second |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    large_per_row = single / 128 * 20_037_642 / 669_706  # same arithmetic per parameter and row
    for name, per_row in (("mlp-medium", single / 128), ("mlp-large", large_per_row)):
        for p, row in projection(per_row, 0.0, 128, PARAMETERS[name]).items():
            print(
                f"| {name} | {p} | {row['communication_ms']:.2f} | {row['step_ms']:.2f} | "
                f"{row['efficiency']:.0%} | {row['rows_per_second']:,.0f} |"
            )


if __name__ == "__main__":
    main()

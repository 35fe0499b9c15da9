"""Each implementation's slowdown when another program keeps the machine's cores busy.

    python -m benchmarks.under_load [--rounds 5] [--workloads spiral-book mlp-medium]

A shared machine is rarely quiet. Every round measures each implementation on each workload
twice, one fresh process per run (`benchmarks.run.measure`): once on the quiet machine and once
while a fixed background load runs, one busy process per core (a pure-Python loop, which holds
a core and touches little memory), the order of the two alternating round by round. The table
gives the medians and the slowdown (loaded / quiet) of each. BLAS libraries whose threads spin
while they wait for work slow down most under such a load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from benchmarks.interleave import comparison_table
from benchmarks.run import measure

IMPLEMENTATIONS = ["chainrule", "chainrule-one-blas-thread", "pytorch", "pytorch-fused-adam", "jax-jit"]
WORKLOADS = ["spiral-book", "mlp-medium"]
BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def background_load(processes: int) -> Iterator[None]:
    """`processes` busy loops while inside; stopped on every path."""
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", nargs="+", default=WORKLOADS)
    parser.add_argument("--implementations", nargs="+", default=IMPLEMENTATIONS)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    args = parser.parse_args()
    times: dict[tuple[str, str, str], list[float]] = {}
    loads: list[float] = []
    for round_number in range(args.rounds):
        conditions = ["quiet", "loaded"] if round_number % 2 == 0 else ["loaded", "quiet"]
        for condition in conditions:
            with background_load(args.load) if condition == "loaded" else contextlib.nullcontext():
                for workload in args.workloads:
                    for implementation in args.implementations:
                        step = measure(implementation, workload)["us_per_step"]
                        times.setdefault((workload, implementation, condition), []).append(step)
                loads.append(os.getloadavg()[0])
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(
        f"{args.rounds} rounds; background load: {args.load} busy processes on {os.cpu_count()} CPUs; "
        f"load average (1 min) {min(loads):.2f}-{max(loads):.2f}\n"
    )
    comparison_table(times, args.workloads, args.implementations, ("quiet", "loaded"), "slowdown")


if __name__ == "__main__":
    main()

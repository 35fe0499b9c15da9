"""Compare this checkout with another one, interleaved: the fair way to see a small change.

    python -m benchmarks.interleave ../chainrule-before [--rounds 11] [--implementations chainrule]

Single `make bench` runs drift by +-15% on a shared machine. Here every round runs each
workload in both checkouts, one fresh process per run, alternating which goes first, and the
table reports medians and the after/before ratio.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.run import IMPLEMENTATIONS, measure
from benchmarks.workloads import CPU_WORKLOADS, WORKLOADS

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the other checkout (the baseline)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=CPU_WORKLOADS)
    parser.add_argument("--implementations", nargs="+", choices=list(IMPLEMENTATIONS), default=["chainrule"])
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": HERE}
    times: dict[tuple[str, str, str], list[float]] = {}
    for round_number in range(args.rounds):
        order = list(checkouts) if round_number % 2 == 0 else list(reversed(checkouts))
        for workload in args.workloads:
            for implementation in args.implementations:
                for name in order:
                    step = measure(implementation, workload, checkouts[name])["us_per_step"]
                    times.setdefault((workload, implementation, name), []).append(step)
                    print(f"round {round_number + 1}  {workload:<17} {implementation:<17} {name:<6} {step:9.1f}")
    print()
    comparison_table(times, args.workloads, args.implementations, ("before", "after"), "after/before")


def comparison_table(
    times: dict[tuple[str, str, str], list[float]],
    workloads: list[str],
    implementations: list[str],
    conditions: tuple[str, str],
    ratio: str,
) -> None:
    """Print each workload's and implementation's median µs per step under two conditions, and
    the second over the first."""
    first, second = conditions
    print(f"| workload | implementation | {first} µs/step | {second} µs/step | {ratio} |")
    print("| --- | --- | ---: | ---: | ---: |")
    for workload in workloads:
        for implementation in implementations:
            a, b = (statistics.median(times[(workload, implementation, condition)]) for condition in conditions)
            print(f"| {workload} | {implementation} | {a:,.0f} | {b:,.0f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()

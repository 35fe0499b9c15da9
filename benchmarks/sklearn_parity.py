"""chainrule.sklearn against scikit-learn's own MLP estimators, defaults on both sides.

    python -m benchmarks.sklearn_parity [--seeds 5] [--datasets digits wine ...]
    python -m benchmarks.sklearn_parity --small-calls [--rounds 9]

It prints a Markdown table; BENCHMARKS.md carries it from benchmarks/SKLEARN_PARITY.md.

For each data set and seed: one stratified 75/25 split, StandardScaler on the inputs, then
scikit-learn's estimator and chainrule's, interleaved, each timed on `fit` alone. The table
gives the mean test score (accuracy, or R^2 for diabetes), the median fit time, their ratio
and the mean `n_iter_`; the last columns repeat chainrule's with `dtype="float32"` (scikit-learn
trains float64 inputs in float64, and so does chainrule by default).

`--small-calls` times what a fit does not show, both libraries' estimators interleaved round by
round (the order alternating), medians over the rounds: 30 `partial_fit` calls of 32 rows from a
new estimator (breast cancer, wine, diabetes), `predict` on one row (median of 200 calls) and on
35,940 rows (digits twenty times), and `warm_start` as five `fit` calls of 20 epochs (digits).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import neural_network
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import chainrule.sklearn

SIDES = ("scikit-learn", "chainrule", "chainrule float32")
DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, bool]]] = {
    "digits": lambda: (*load_digits(return_X_y=True), True),
    "breast_cancer": lambda: (*load_breast_cancer(return_X_y=True), True),
    "wine": lambda: (*load_wine(return_X_y=True), True),
    "diabetes": lambda: (*load_diabetes(return_X_y=True), False),
    "classification-20k": lambda: (
        *make_classification(n_samples=20000, n_features=50, n_informative=20, random_state=0),
        True,
    ),
}


def measure(name: str, seeds: int) -> dict[str, dict[str, list[float]]]:
    X, y, classify = DATASETS[name]()
    estimator = "MLPClassifier" if classify else "MLPRegressor"
    results: dict[str, dict[str, list[float]]] = {side: {"score": [], "seconds": [], "n_iter": []} for side in SIDES}
    for seed in range(seeds):
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y if classify else None
        )
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        for side in SIDES[seed % len(SIDES) :] + SIDES[: seed % len(SIDES)]:  # rotate the order
            if side == "scikit-learn":
                model = getattr(neural_network, estimator)(random_state=seed)
            else:
                dtype = "float32" if side.endswith("float32") else None
                model = getattr(chainrule.sklearn, estimator)(random_state=seed, dtype=dtype)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_train, y_train)
            results[side]["seconds"].append(time.perf_counter() - start)
            results[side]["score"].append(model.score(X_test, y_test))
            results[side]["n_iter"].append(model.n_iter_)
    return results


LIBRARIES = {"scikit-learn": neural_network, "chainrule": chainrule.sklearn}


def standardised(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    X, y, classify = DATASETS[name]()
    return StandardScaler().fit_transform(X), y, "MLPClassifier" if classify else "MLPRegressor"


def partial_fit_calls(name: str, calls: int = 30, rows: int = 32) -> Callable[[str], Callable[[], object]]:
    """`calls` partial_fit calls of `rows` rows each, from a new estimator, as a stream of batches arrives."""
    X, y, estimator = standardised(name)
    extra = {"classes": np.unique(y)} if estimator == "MLPClassifier" else {}

    def workload(side: str) -> Callable[[], object]:
        def run() -> object:
            model = getattr(LIBRARIES[side], estimator)(random_state=0)
            for call in range(calls):
                start = call * rows % (len(X) - rows)
                model.partial_fit(X[start : start + rows], y[start : start + rows], **extra)
            return model

        return run

    return workload


def fitted_digits(side: str) -> Any:
    X, y, _ = standardised("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LIBRARIES[side].MLPClassifier(random_state=0, max_iter=20).fit(X, y)


def predict_rows(rows: int, repeats: int) -> Callable[[str], Callable[[], object]]:
    """`repeats` predict calls on the first `rows` rows of digits tiled (one call's median time)."""
    X, _, _ = standardised("digits")
    inputs = np.tile(X, (-(-rows // len(X)), 1))[:rows]

    def workload(side: str) -> Callable[[], object]:
        model = fitted_digits(side)

        def run() -> object:
            return [model.predict(inputs) for _ in range(repeats)]

        return run

    return workload


def warm_start_rounds(side: str, rounds: int = 5) -> Callable[[], object]:
    X, y, _ = standardised("digits")

    def run() -> object:
        model = LIBRARIES[side].MLPClassifier(random_state=0, max_iter=20, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(rounds):
                model.fit(X, y)
        return model

    return run


SMALL_CALLS: dict[str, tuple[Callable[[str], Callable[[], object]], int]] = {
    # name: (workload for a side, calls timed per run: the table gives the time per call or per run)
    "partial_fit x30, breast cancer": (partial_fit_calls("breast_cancer"), 1),
    "partial_fit x30, wine": (partial_fit_calls("wine"), 1),
    "partial_fit x30, diabetes": (partial_fit_calls("diabetes"), 1),
    "predict, 1 row": (predict_rows(1, 200), 200),
    "predict, 35,940 rows": (predict_rows(35_940, 1), 1),
    "warm_start, 5 x 20 epochs": (warm_start_rounds, 1),
}


def small_calls(rounds: int) -> None:
    print("| call | scikit-learn, ms | chainrule, ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    loads = []
    for name, (workload, per_run) in SMALL_CALLS.items():
        runs = {side: workload(side) for side in LIBRARIES}
        seconds: dict[str, list[float]] = {side: [] for side in LIBRARIES}
        for side in LIBRARIES:  # one run each not counted: first-call caches on both sides
            runs[side]()
        for round_ in range(rounds):
            for side in list(LIBRARIES)[:: 1 if round_ % 2 else -1]:
                start = time.perf_counter()
                runs[side]()
                seconds[side].append((time.perf_counter() - start) / per_run)
            loads.append(os.getloadavg()[0])
        reference, ours = (statistics.median(seconds[side]) * 1e3 for side in LIBRARIES)
        print(f"| {name} | {reference:.3f} | {ours:.3f} | {ours / reference:.2f} |", flush=True)
    print(f"\n{rounds} rounds; load average (1 min) {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--small-calls", action="store_true", help="time partial_fit, predict and warm_start")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of --small-calls")
    args = parser.parse_args()
    if args.small_calls:
        small_calls(args.rounds)
        return
    print(
        "| data set | score, scikit-learn | score, chainrule | fit s, scikit-learn | fit s, chainrule | time ratio "
        "| n_iter_, scikit-learn | n_iter_, chainrule | score, float32 | time ratio, float32 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.datasets:
        results = measure(name, args.seeds)
        reference, ours, single = (results[side] for side in SIDES)
        seconds = {side: statistics.median(results[side]["seconds"]) for side in SIDES}
        print(
            f"| {name} | {np.mean(reference['score']):.4f} | {np.mean(ours['score']):.4f} "
            f"| {seconds['scikit-learn']:.3f} | {seconds['chainrule']:.3f} "
            f"| {seconds['chainrule'] / seconds['scikit-learn']:.2f} "
            f"| {np.mean(reference['n_iter']):.1f} | {np.mean(ours['n_iter']):.1f} "
            f"| {np.mean(single['score']):.4f} | {seconds['chainrule float32'] / seconds['scikit-learn']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

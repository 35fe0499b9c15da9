"""chainrule.sklearn against scikit-learn's own MLP estimators, defaults on both sides.

    python -m benchmarks.sklearn_parity [--seeds 5] [--datasets digits wine ...]

It prints a Markdown table; BENCHMARKS.md carries it from benchmarks/SKLEARN_PARITY.md.

For each data set and seed: one stratified 75/25 split, StandardScaler on the inputs, then
scikit-learn's estimator and chainrule's, interleaved, each timed on `fit` alone. The table
gives the mean test score (accuracy, or R^2 for diabetes), the median fit time, their ratio
and the mean `n_iter_`; the last columns repeat chainrule's with `dtype="float32"` (scikit-learn
trains float64 inputs in float64, and so does chainrule by default).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    args = parser.parse_args()
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

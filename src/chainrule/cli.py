"""The `chainrule` command: train, evaluate, explain, gradcheck, export, and mpiexec.

`chainrule train` with no options is the book's spiral run: Dense(2, 64) -> ReLU ->
Dense(64, 3) -> Softmax, Adam(0.05, decay=5e-7), 10,000 epochs, and writes a run folder with
the history, plots and the trained model. Errors in what the user typed are reported on one
line, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.runtime import available_memory, quiet_float_errors
from chainrule.check.gradcheck import gradcheck
from chainrule.check.numeric import EPSILON, TOLERANCE
from chainrule.engine.activations import Linear, Sigmoid, Softmax
from chainrule.engine.layers import Dense
from chainrule.engine.optimizers import OPTIMIZERS
from chainrule.engine.windows import IMAGE_AXES
from chainrule.files import onnx
from chainrule.learn import datasets, explain, explain_layers
from chainrule.learn.plotting import plot_decision_boundary, plot_history
from chainrule.training import mpi_launcher
from chainrule.training.distributed import RankFailedError, data_parallel
from chainrule.training.history import History
from chainrule.training.model import Model
from chainrule.training.network import activation_bytes, build_cnn, build_network, training_bytes
from chainrule.training.saving import load_model

HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
IMAGE_DATASETS = ("digits", "mnist")


class PerNetwork(NamedTuple):
    """The default of a `train` setting that depends on the network: Dense, or --conv."""

    dense: Any
    convolutional: Any

    def __str__(self) -> str:  # as --help shows it
        dense = "all" if self.dense is None else self.dense
        return f"{dense}, or {self.convolutional} with --conv"


EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
MAX_WIDTH = 100_000  # the widest layer the command line builds
RUN_FOLDER_BYTES = 16 << 20  # free disk space `train` wants before it starts
MESSAGE_LIMIT = 1000  # characters of an error line
LONG_CHECK_SECONDS = 15  # a gradcheck expected to take longer says so as it starts
EVALUATIONS_PER_PARAMETER = 8  # measured: --sizes 2,200,200,3 ran 41,403 parameters in 8.0 x 41,403 evaluations' time
Dataset = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class UsageError(Exception):
    """A mistake in the command line, reported on one line."""


def load_dataset(name: str, seed: int, data: str | None, images: bool = False) -> Dataset:
    """(training, validation) pairs for a named data set; validation comes from another seed (the
    digits: a stratified quarter, drawn with `seed`). `images`: images for a convolutional network."""
    if images and name not in IMAGE_DATASETS:
        raise UsageError(f"--conv trains on images: use --dataset {' or '.join(IMAGE_DATASETS)}")
    if name == "digits":
        from sklearn.model_selection import train_test_split

        X, y = datasets.load_digits(images=images)
        X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        return (X_train, y_train), (X_val, y_val)
    if name == "spiral":
        return datasets.spiral_data(100, 3, seed=seed), datasets.spiral_data(100, 3, seed=seed + 1)
    if name == "vertical":
        return datasets.vertical_data(100, 3, seed=seed), datasets.vertical_data(100, 3, seed=seed + 1)
    if name == "sine":
        return datasets.sine_data(1000), datasets.sine_data(777)
    if data is None:
        raise UsageError("--dataset mnist needs --data DIR, the folder holding the IDX files")
    return datasets.load_mnist(data, images=images)


def build_model(args: argparse.Namespace, n_features: int, n_outputs: int, regression: bool) -> Model:
    """The network the options describe: hidden Dense layers, then Softmax (or Linear) output."""
    model = build_network(
        [n_features, *args.hidden, n_outputs],
        activation=args.activation,
        output=Linear if regression else Softmax,
        dropout=args.dropout,
        weight_l1=args.l1,
        weight_l2=args.l2,
        bias_l1=args.l1,
        bias_l2=args.l2,
        regularize_output=False,
        seed=args.seed,
    )
    return compiled(model, args, regression)


def compiled(model: Model, args: argparse.Namespace, regression: bool) -> Model:
    """`model` compiled with the options' optimizer, loss and metrics."""
    settings = {"learning_rate": args.learning_rate, "decay": args.decay}
    if args.momentum is not None:  # --optimizer sgd (run_train refuses it for the others)
        settings["momentum"] = args.momentum
    return model.compile(
        loss="mse" if regression else "categorical_crossentropy",
        optimizer=OPTIMIZERS[args.optimizer](**settings),
        metrics=["mae"] if regression else None,
    )


def write_history(history: History, path: Path) -> None:
    """One row per epoch, one column per recorded value."""
    keys = list(history.history)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["epoch", *keys])
        for row, epoch in enumerate(history.epoch):
            writer.writerow([epoch + 1, *(repr(history.history[key][row]) for key in keys)])


def overfitting_note(history: History) -> str:
    """A line when the validation loss was lowest well before the end and has risen since."""
    losses = history.history.get("val_loss", [])
    if len(losses) < 10:
        return ""
    best = int(np.argmin(losses))
    if best >= 0.9 * (len(losses) - 1) or losses[-1] <= 1.05 * losses[best]:
        return ""
    return (
        f"the validation loss was lowest at epoch {best + 1} ({losses[best]:.4f}) and rose to {losses[-1]:.4f} by the "
        "end: the network began to overfit (fit with EarlyStopping(monitor='val_loss', restore_best_weights=True) "
        "to keep the best epoch)"
    )


def describe(scores: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in scores.items())


def run_train(args: argparse.Namespace) -> int:
    """Train, print the final scores, and write history.csv, curves.png, decision_boundary.png, model.npz."""
    if args.momentum is not None and args.optimizer != "sgd":
        raise UsageError(f"--momentum applies to --optimizer sgd, not {args.optimizer}")
    root = data_parallel(args.distributed, False, "chainrule train").is_root  # rank 0 alone prints and writes
    out = Path(args.out or f"runs/{args.dataset}")
    if root:
        output_folder(out)
    for name, value in vars(args).items():
        if isinstance(value, PerNetwork):
            setattr(args, name, value.convolutional if args.conv else value.dense)
    (X, y), (X_val, y_val) = load_dataset(args.dataset, args.seed, args.data, images=args.conv)
    regression = args.dataset == "sine"
    n_outputs = 1 if regression else int(max(y.max(), y_val.max())) + 1
    batch_rows = min(args.batch_size or len(X), len(X))
    if args.conv:
        model = compiled(build_cnn(X.shape[1:], n_outputs, dropout=args.dropout, seed=args.seed), args, regression)
        require_memory(activation_bytes(model, X.shape[1:], batch_rows, np.float32), "this network")
    else:
        sizes = [X.shape[1], *args.hidden, n_outputs]
        require_memory(training_bytes(sizes, batch_rows, np.float32), "this network")
        model = build_model(args, X.shape[1], n_outputs, regression)
    history = model.fit(
        X,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_val, y_val),
        verbose=args.verbose,
        distributed=args.distributed,
    )
    model.save(out / "model.npz", include_optimizer=True)  # every rank: rank 0 writes, the others wait for it
    if not root:
        return EXIT_INTERRUPTED if history.interrupted else 0
    if history.interrupted:
        print(f"interrupted after epoch {len(history.epoch)}; keeping what was trained")
    print("the final model's scores (the progress bar showed running means over each epoch, as the weights changed):")
    print(f"training    {describe(model.evaluate(X, y))}")
    print(f"validation  {describe(model.evaluate(X_val, y_val))}")
    note = overfitting_note(history)
    if note:
        print(note)

    write_history(history, out / "history.csv")
    plot_history(history, out / "curves.png")
    written = ["history.csv", "model.npz", "curves.png"]
    if X.shape[1:] == (2,) and not regression:
        plot_decision_boundary(model, X_val, y_val, out / "decision_boundary.png", title="the validation points")
        written.append("decision_boundary.png")
    print(f"wrote {', '.join(str(out / name) for name in written)}")
    return EXIT_INTERRUPTED if history.interrupted else 0


def output_folder(folder: Path) -> Path:
    """Create the run folder and make sure a file can be written there, before any training.
    Everything is checked on the nearest folder that exists before anything is created; a
    folder created here is removed again if no file can be written in it."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        where = "" if existing == folder else f": {existing} is a file"
        raise UsageError(f"--out {folder} is a file{where}; give a folder for the run's files")
    if shutil.disk_usage(existing).free < RUN_FOLDER_BYTES:
        raise UsageError(f"the disk holding {existing} has less than {RUN_FOLDER_BYTES >> 20} MiB free")
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise UsageError(f"cannot write to the run folder {folder}: {error.strerror or error}") from error
    return folder


def png_target(path: str, default_name: str) -> Path:
    """Where a picture goes: `path`, or `path/default_name` when `path` is a folder; checked before any work."""
    target = Path(path)
    if target.is_dir():
        target = target / default_name
    elif target.suffix == "":
        target = target.with_name(f"{target.name}.png")  # as the picture is written: say where
    elif target.suffix.lower() != ".png":
        raise UsageError(f"--png {path}: the picture is a PNG; name a .png file")
    if not target.parent.is_dir():
        raise UsageError(f"--png {path}: the folder {target.parent} does not exist")
    if target.exists() and not target.is_file():
        raise UsageError(f"--png {path} is not a regular file")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"--png {path}: the folder {target.parent} is not writable")
    return target


def require_memory(needed: int, what: str) -> None:
    """Refuse, before allocating anything, work that would not fit in the memory available now."""
    available = available_memory()
    if available is not None and needed > available:
        raise UsageError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory; {available / 2**30:.1f} GiB are available"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    """Load a model file and print its loss and metrics on a data set's validation split."""
    model = load_model(args.model)
    images = model.layers[0].input_axes == IMAGE_AXES  # a convolutional network reads images
    _, (X_val, y_val) = load_dataset(args.dataset, args.seed, args.data, images=images)
    print(describe(model.evaluate(X_val, y_val)))
    return 0


def numbers(text: str) -> np.ndarray:
    """'1,-2,3' -> a vector; '1,2;3,4' -> a matrix with one row per ';'."""
    try:
        rows = [[float(item) for item in row.split(",") if item.strip()] for row in text.split(";")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected numbers separated by ',' (rows by ';'), got {text!r}") from error
    if not rows or any(not row for row in rows):
        raise argparse.ArgumentTypeError(f"expected at least one number in every row, got {text!r}")
    if len({len(row) for row in rows}) != 1:
        raise argparse.ArgumentTypeError(f"rows of different lengths in {text!r}")
    return np.array(rows[0] if len(rows) == 1 else rows)


def whole_numbers(text: str) -> np.ndarray:
    """'2,64,3' -> a vector of integers; '2.7' or '1,2;3,4' is refused, not truncated."""
    values = numbers(text)
    if values.ndim != 1:
        raise argparse.ArgumentTypeError(f"expected one row of whole numbers separated by ',', got {text!r}")
    if not (np.isfinite(values).all() and np.array_equal(values, np.round(values))):
        raise argparse.ArgumentTypeError(f"expected whole numbers, got {text!r}")
    if np.abs(values).max() >= 2**31:
        raise argparse.ArgumentTypeError(f"numbers of at most {2**31 - 1} expected, got {text!r}")
    return values.astype(np.int64)


SEED_LAYER = {
    "inputs": "1,2,3,2.5;2,5,-1,2;-1.5,2.7,3.3,-0.8",
    "weights": "0.2,0.5,-0.26;0.8,-0.91,-0.27;-0.5,0.26,0.17;1,-0.5,0.87",
    "biases": "2,3,0.5",
    "dvalues": "1,1,1;2,2,2;3,3,3",
}


def run_explain(args: argparse.Namespace) -> int:
    """Print the chain rule step by step for the seed notebooks' numbers or your own."""
    target = png_target(args.png, f"{args.what}.png") if getattr(args, "png", None) else None
    with quiet_float_errors():  # numbers that overflow are refused by value, without NumPy's warnings first
        result = explanation(args)
    print(result)
    if target:
        result.to_png(target)
        print(f"wrote {target}")
    return 0


def explanation(args: argparse.Namespace) -> Any:
    """The explanation `explain` prints for its topic."""
    if args.what == "neuron":
        return explain.neuron(args.x, args.w, args.b, dvalue=args.dvalue, learning_rate=args.learning_rate)
    if args.what == "layer":
        return explain.layer(args.inputs, args.weights, args.biases, args.dvalues, relu=args.relu)
    if args.what == "network":
        return explain.network(hidden=args.hidden, learning_rate=args.learning_rate, seed=args.seed)
    if args.what == "conv2d":
        return explain_layers.convolution(stride=args.stride, padding=args.padding, seed=args.seed)
    if args.what == "batchnorm":
        return explain_layers.batch_normalization(args.inputs, args.dvalues, seed=args.seed)
    logits = np.log([[0.7, 0.1, 0.2]]) if args.logits is None else np.atleast_2d(args.logits)
    return explain.softmax_crossentropy(logits, args.labels, measure_speed=args.time)


OUTPUTS = {"categorical_crossentropy": Softmax, "binary_crossentropy": Sigmoid, "mse": Linear, "mae": Linear}


def run_gradcheck(args: argparse.Namespace) -> int:
    """Check every parameter gradient of a float64 network numerically; exit 1 above the tolerance."""
    sizes = [int(size) for size in args.sizes]  # whole numbers, checked by the parser
    if len(sizes) < 2 or min(sizes) < 1 or max(sizes) > MAX_WIDTH:
        raise UsageError(f"--sizes needs at least two widths from 1 to {MAX_WIDTH} (inputs, outputs), got {sizes}")
    require_memory(training_bytes(sizes, args.samples, np.float64), "this network")
    model = build_network(
        sizes,
        activation=args.activation,
        output=OUTPUTS[args.loss],
        weight_l1=args.l1,
        weight_l2=args.l2,
        bias_l1=args.l1,
        bias_l2=args.l2,
        dtype=np.float64,
        seed=args.seed,
    )
    model.compile(loss=args.loss, optimizer="sgd")
    rng = np.random.default_rng(args.seed)
    for layer in model.trainable_layers:  # nonzero biases, so their penalty terms are exercised too
        assert isinstance(layer, Dense)
        layer.biases = rng.standard_normal(layer.biases.shape) * 0.1
    X = rng.standard_normal((args.samples, sizes[0]))
    if args.loss == "categorical_crossentropy":
        y = rng.integers(0, sizes[-1], args.samples)
    elif args.loss == "binary_crossentropy":
        y = rng.integers(0, 2, (args.samples, sizes[-1]))
    else:
        y = rng.standard_normal((args.samples, sizes[-1]))
    require_time(model, X, y, args.max_minutes)
    result = gradcheck(model, X, y, epsilon=args.epsilon, tolerance=args.tolerance)
    print(result)
    verdict = "passed" if result.passed else "FAILED"
    print(f"max relative error {result.max_error:.3e}: {verdict} (tolerance {args.tolerance:g})")
    return 0 if result.passed else 1


def require_time(model: Model, X: np.ndarray, y: np.ndarray, max_minutes: float) -> None:
    """Refuse a check that would run past `max_minutes`, and say how long a long one will take.
    Each parameter is nudged both ways in its layer and again through the whole model; with the
    check's bookkeeping it costs about EVALUATIONS_PER_PARAMETER loss evaluations, timed here on
    the check's own data (the fastest of a few, as the check's thousands run warm)."""
    n_parameters = sum(parameter.size for layer in model.layers for parameter in layer.parameters().values())
    timings = []
    with kernels.numpy_only():  # as the check runs
        for _ in range(5):
            started = time.perf_counter()
            model.loss.forward_trusted(model.forward_trusted(X, False), y)
            timings.append(time.perf_counter() - started)
    seconds = EVALUATIONS_PER_PARAMETER * n_parameters * min(timings)
    about = f"about {seconds:.0f} s" if seconds < 120 else f"about {seconds / 60:,.0f} minutes"
    if seconds > 60 * max_minutes:
        raise UsageError(
            f"checking {n_parameters:,} parameters takes {about} here; "
            f"pass --max-minutes {math.ceil(seconds / 40)} to run it, or check a narrower network"
        )
    if seconds > LONG_CHECK_SECONDS:
        print(f"checking {n_parameters:,} parameters: {about}", file=sys.stderr, flush=True)


def run_export(args: argparse.Namespace) -> int:
    """Convert a saved model to ONNX for deployment (needs the extra 'onnx')."""
    model_file, onnx_file = Path(args.model), Path(args.onnx)
    if model_file.exists() and onnx_file.exists() and onnx_file.samefile(model_file):
        raise UsageError(f"--onnx {args.onnx} is the model file itself; writing it would replace the model")
    onnx.export(load_model(args.model), args.onnx, opset=args.opset)
    print(f"wrote {args.onnx}")
    return 0


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to `maximum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from error
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum}, got {text}")
        return value

    return parse


count = whole_number(1, 10**9)
width = whole_number(1, MAX_WIDTH)
seed_number = whole_number(0, 2**32 - 1)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from error
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=["spiral", "vertical", "sine", "digits", "mnist"],
        default="spiral",
        help="spiral/vertical: 3 classes, 100 points each; sine: regression; digits: scikit-learn's 8x8 digits "
        "(extra sklearn); mnist: --data DIR",
    )
    parser.add_argument("--data", help="folder with the MNIST or Fashion-MNIST IDX files (for --dataset mnist)")
    parser.add_argument("--seed", type=seed_number, default=0, help="seed of data, initial weights and shuffling")


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is reported on one line (run with --help for the usage), and
    --help shows each option's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chainrule", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a network and write a run folder", description=run_train.__doc__)
    add_dataset_options(train)
    train.add_argument(
        "--hidden", type=width, nargs="+", default=[64], help=f"hidden layer sizes, each at most {MAX_WIDTH}"
    )
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="of the hidden layers")
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="the update rule")
    train.add_argument(
        "--conv",
        action="store_true",
        help="train a small convolutional network instead (two Conv2D with ReLU and max pooling, then Dense) on "
        "--dataset digits or mnist; --hidden and --activation do not apply",
    )
    train.add_argument("--learning-rate", type=float, default=PerNetwork(0.05, 0.003), help="the optimizer's step size")
    train.add_argument("--decay", type=float, default=PerNetwork(5e-7, 1e-3), help="learning rate / (1 + decay * step)")
    train.add_argument("--momentum", type=float, default=None, help="for --optimizer sgd (0)")
    train.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden layer")
    train.add_argument("--l1", type=float, default=0.0, help="L1 penalty on hidden layers' weights and biases")
    train.add_argument("--l2", type=float, default=0.0, help="L2 penalty on hidden layers' weights and biases")
    train.add_argument("--epochs", type=count, default=PerNetwork(10_000, 20), help="passes over the training data")
    train.add_argument("--batch-size", type=count, default=PerNetwork(None, 64), help="mini-batch size")
    train.add_argument("--out", help="run folder (default runs/DATASET)")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="0 quiet, 1 a bar, 2 a line per epoch")
    train.add_argument(
        "--distributed",
        choices=["mpi"],
        help="train one model across the processes of mpiexec -n N (rank 0 prints and writes)",
    )
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a data set", description=run_evaluate.__doc__
    )
    evaluate.add_argument("model", help="a model file written by chainrule")
    add_dataset_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    explainer = commands.add_parser(
        "explain", help="show the chain rule step by step with numbers", description=run_explain.__doc__
    )
    topics = explainer.add_subparsers(dest="what", required=True, metavar="TOPIC")
    neuron = topics.add_parser("neuron", help="one ReLU neuron: forward, backward, one optimizer step")
    neuron.add_argument("--x", type=numbers, default=numbers("1,-2,3"), help="inputs (1,-2,3)")
    neuron.add_argument("--w", type=numbers, default=numbers("-3,-1,2"), help="weights (-3,-1,2)")
    neuron.add_argument("--b", type=float, default=1.0, help="bias (1)")
    neuron.add_argument("--dvalue", type=float, default=1.0, help="gradient arriving from the next layer (1)")
    neuron.add_argument("--learning-rate", type=float, default=0.001, help="the optimizer step's size")
    neuron.add_argument("--png", help="also draw the computational graph to this PNG file")
    dense = topics.add_parser("layer", help="a Dense layer on a batch: the three backward products")
    for name, default in SEED_LAYER.items():
        dense.add_argument(f"--{name}", type=numbers, default=numbers(default), help="rows separated by ';'")
    dense.add_argument("--relu", action="store_true", help="follow the layer with ReLU")
    dense.add_argument("--png", help="also draw the layer (the first sample) and its weights to this PNG file")
    softmax = topics.add_parser("softmax", help="softmax + cross-entropy: Jacobian, separate and fused backward")
    softmax.add_argument("--logits", type=numbers, default=None, help="rows separated by ';' (log of 0.7,0.1,0.2)")
    softmax.add_argument("--time", action="store_true", help="also time the separate and the fused backward")
    softmax.add_argument("--png", help="also draw forward, Jacobian and both gradients to this PNG file")
    softmax.add_argument("--labels", type=whole_numbers, default=whole_numbers("0"), help="true class of each row (0)")
    network = topics.add_parser("network", help="one training step of a small network, layer by layer")
    network.add_argument("--hidden", type=whole_number(1, 64), default=3, help="hidden ReLU neurons (3)")
    network.add_argument("--learning-rate", type=positive_float, default=1.0, help="SGD step (1.0)")
    network.add_argument("--seed", type=seed_number, default=0, help="seed of the spiral points and weights (0)")
    network.add_argument("--png", help="also draw parameters, gradients and updates to this PNG file")
    conv = topics.add_parser("conv2d", help="a convolution: one output, one dweights and one dinputs element as sums")
    conv.add_argument("--stride", type=whole_number(1, 3), default=1, help="of the 3x3 kernel over a 5x5 image (1)")
    conv.add_argument("--padding", type=whole_number(0, 2), default=0, help="zeros around the image (0)")
    conv.add_argument("--seed", type=seed_number, default=0, help="seed of the image and dvalues (0)")
    norm = topics.add_parser("batchnorm", help="batch normalisation: one dinputs element through mean and variance")
    norm.add_argument("--inputs", type=numbers, default=None, help="rows separated by ';' (4x2 drawn from --seed)")
    norm.add_argument("--dvalues", type=numbers, default=None, help="rows separated by ';', like --inputs")
    norm.add_argument("--seed", type=seed_number, default=0, help="seed of what is not given (0)")
    explainer.set_defaults(run=run_explain)

    check = commands.add_parser(
        "gradcheck", help="check a network's gradients numerically", description=run_gradcheck.__doc__
    )
    check.add_argument("--sizes", type=whole_numbers, default=whole_numbers("2,8,3"), help="layer widths (2,8,3)")
    check.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="tanh", help="of the hidden layers")
    check.add_argument("--loss", choices=sorted(OUTPUTS), default="categorical_crossentropy", help="the loss checked")
    check.add_argument("--samples", type=whole_number(1, 10_000), default=6, help="random samples to check on")
    check.add_argument("--l1", type=float, default=0.0, help="L1 penalty on every Dense layer's weights and biases")
    check.add_argument("--l2", type=float, default=0.0, help="L2 penalty on every Dense layer's weights and biases")
    check.add_argument("--epsilon", type=positive_float, default=EPSILON, help="step of the central differences")
    check.add_argument("--tolerance", type=positive_float, default=TOLERANCE, help="largest element error that passes")
    check.add_argument("--seed", type=seed_number, default=0, help="seed of the data and weights")
    check.add_argument(
        "--max-minutes", type=positive_float, default=10.0, help="refuse a check estimated to take longer"
    )
    check.set_defaults(run=run_gradcheck)

    export = commands.add_parser("export", help="convert a saved model to ONNX", description=run_export.__doc__)
    export.add_argument("model", help="a model file written by chainrule")
    export.add_argument("--onnx", required=True, help="the ONNX file to write")
    export.add_argument("--opset", type=int, default=17, help="the ONNX opset version")
    export.set_defaults(run=run_export)

    launcher = commands.add_parser(
        "mpiexec",
        help="run mpiexec with Ctrl-C as a clean stop of a distributed fit",
        description=mpi_launcher.__doc__,
        add_help=False,  # every argument, --help too, is mpiexec's
        prefix_chars="+",
    )
    launcher.add_argument("arguments", nargs=argparse.REMAINDER, help="mpiexec's arguments")
    launcher.set_defaults(run=run_launcher)
    return parser


def run_launcher(args: argparse.Namespace) -> int:
    """`chainrule mpiexec -n 4 python train.py`: see `chainrule.training.mpi_launcher`."""
    return mpi_launcher.run_mpiexec(args.arguments)


NEGATIVE_NUMBER = re.compile(r"^-([\d.]|inf|nan)", re.IGNORECASE)  # -inf is parsed, then refused as not finite


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """Let '--w -3,-1,2' mean '--w=-3,-1,2' (argparse would read '-3,-1,2' as an option)."""
    joined: list[str] = []
    for token in argv:
        if joined and joined[-1].startswith("--") and "=" not in joined[-1] and NEGATIVE_NUMBER.match(token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand. Every failure prints one line and exits with
    EXIT_USAGE (what was given is wrong), EXIT_FAILURE (the run failed) or EXIT_INTERRUPTED."""
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return fail(args, "interrupted", EXIT_INTERRUPTED)
    except (UsageError, ValueError, TypeError, FileNotFoundError, ImportError) as error:
        return fail(args, f"error: {error}", EXIT_USAGE)
    except RankFailedError as error:
        return fail(args, f"error: {error}", EXIT_FAILURE)
    except MemoryError:
        return fail(args, "error: out of memory", EXIT_FAILURE)
    except (OSError, ArithmeticError) as error:  # disk errors, a diverging loss, overflow
        return fail(args, f"error: {error}", EXIT_FAILURE)
    except Exception as error:  # a bug: still one line, naming it
        return fail(args, f"unexpected {type(error).__name__}: {error}", EXIT_FAILURE)


def fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"chainrule {args.command}: {printable(message)}"[:MESSAGE_LIMIT], file=sys.stderr)
    return code


def printable(text: str) -> str:
    """`text` with control characters escaped (a name read from a file may hold a newline or a
    terminal escape sequence: it must not forge a line or drive the terminal)."""
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)

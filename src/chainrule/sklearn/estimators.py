"""MLPClassifier and MLPRegressor: scikit-learn's estimators of those names, trained by chainrule.

Same parameters, defaults, fitted attributes and training algorithm as scikit-learn's (its
Glorot initialisation drawn from the same random stream, its shuffles, its stopping rule, its
learning-rate schedules), so a pipeline that uses one can use the other. What scikit-learn
declines comes on top, documented on the documentation's scikit-learn page: dropout, L1, class
weights, the absolute error, RMSprop and Adagrad, callbacks, a validation-loss curve and a GPU
(`device`).
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from chainrule.backend.arrays import CPU, find_device, to_host
from chainrule.backend.runtime import training_guard
from chainrule.engine.activations import Exponential, Linear, Sigmoid, Softmax
from chainrule.engine.layers import Dense, Layer
from chainrule.engine.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    PoissonDeviance,
)
from chainrule.engine.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop
from chainrule.engine.parameter_store import ParameterStore
from chainrule.files.onnx import Head, to_onnx
from chainrule.sklearn import lbfgs
from chainrule.sklearn.objective import Objective, Rows
from chainrule.sklearn.onnx_heads import classifier_head, regressor_head
from chainrule.sklearn.parameters import STOCHASTIC_SOLVERS, check_parameters
from chainrule.training.callbacks import CallbackList
from chainrule.training.loop import batches
from chainrule.training.network import build_network

OUTPUT_ACTIVATIONS: dict[type[Layer], str] = {
    Softmax: "softmax",
    Sigmoid: "logistic",
    Linear: "identity",
    Exponential: "exp",
}
SMALLEST_ADAPTIVE_RATE = 1e-6  # learning_rate='adaptive' stops once the rate is this small
INPUT_DTYPES = (np.float64, np.float32)
SPARSE_FORMATS = ["csr", "csc"]  # kept sparse; the network makes each batch dense as it takes it


def _set_parameters(estimator: BaseEstimator, arguments: dict[str, Any]) -> None:
    """Store the constructor's arguments unchanged, as scikit-learn requires."""
    for name, value in arguments.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _stochastic_solver(estimator: _ChainruleMLP) -> bool:
    if estimator.solver not in STOCHASTIC_SOLVERS:
        raise AttributeError(f"partial_fit needs a stochastic solver {STOCHASTIC_SOLVERS}, not {estimator.solver!r}")
    return True


# Where the documentation site is published (mkdocs.yml's site_url): the estimators' HTML display
# links to their entry in its API reference, as scikit-learn's own link to theirs.
DOCUMENTATION_URL = "https://chainrule.readthedocs.io/en/latest/"


class _ChainruleMLP(BaseEstimator):
    """What the classifier and the regressor share: the network, its training and its attributes."""

    _doc_link_module = "chainrule"
    _doc_link_template = DOCUMENTATION_URL + "reference/sklearn/#{estimator_module}.{estimator_name}"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR and CSC rows, made dense one batch at a time
        return tags

    # -- fitted attributes that follow from the network -------------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Each Dense layer's weights, (n_inputs, n_neurons): views, as scikit-learn's are its own
        arrays (NumPy copies when the network is on a GPU)."""
        return [to_host(layer.weights) for layer in self._dense_layers()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Each Dense layer's biases, (n_neurons,)."""
        return [to_host(layer.biases[0]) for layer in self._dense_layers()]

    @property
    def n_layers_(self) -> int:
        """Layers as scikit-learn counts them: inputs, hidden layers and outputs."""
        return len(self._dense_layers()) + 1

    @property
    def n_outputs_(self) -> int:
        return self.model_.output_width

    @property
    def out_activation_(self) -> str:
        return OUTPUT_ACTIVATIONS[type(self.model_.layers[-1])]

    def _dense_layers(self) -> list[Dense]:
        return [layer for layer in self.model_.layers if isinstance(layer, Dense)]

    # -- what the subclasses define ---------------------------------------------------------

    def _rows(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool) -> Rows:
        raise NotImplementedError

    def _output(self, data: Rows, clip: float) -> tuple[int, type[Layer], Loss, float]:
        """The number of outputs, the output layer, the loss (probabilities clipped to [clip, 1 - clip],
        as scikit-learn does) and its scale to scikit-learn's loss."""
        raise NotImplementedError

    def _predictions(self, outputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score_predictions(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None) -> float:
        raise NotImplementedError

    # -- training ---------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool) -> _ChainruleMLP:
        check_parameters(self)
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError(
                f"{type(self).__name__}: dropout needs a stochastic solver; L-BFGS needs a fixed objective"
            )
        if incremental and self.early_stopping:
            raise ValueError(f"{type(self).__name__}: partial_fit does not support early_stopping=True")
        device = find_device(self.device, type(self).__name__)
        if self.solver == "lbfgs" and device != CPU:
            raise ValueError(
                f"{type(self).__name__}: solver='lbfgs' runs on the CPU (SciPy's L-BFGS-B); use device='cpu' or a "
                f"stochastic solver on {device.name!r}"
            )
        fresh = not hasattr(self, "model_") or not (self.warm_start or incremental)
        data = self._rows(X, y, sample_weight, incremental=incremental)
        self._random_state = self._restarted_random_state()
        if fresh:
            self._initialize(data)
        if self.model_.device != device:  # set_params(device=...) between calls moves the network
            self.model_.to(device)
        data = self._in_model_dtype(data)
        if self.solver == "lbfgs":
            with training_guard(self.model_.largest_matmul_work(len(data))):
                result = lbfgs.minimize(
                    self._objective(), data, max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol
                )
            self.n_iter_, self.loss_ = result.n_iter, result.loss
        else:
            self._fit_stochastic(data, incremental=incremental, fresh=fresh)
        if not all(np.isfinite(array).all() for array in self.coefs_ + self.intercepts_):
            raise ValueError(
                f"{type(self).__name__}: Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed (StandardScaler), or learning_rate_init lowered"
            )
        return self

    def _initialize(self, data: Rows) -> None:
        """A new network with scikit-learn's Glorot-uniform weights, drawn from its random stream."""
        dtype = np.dtype(self.dtype or data.inputs.dtype)
        n_outputs, output, loss, self._loss_scale = self._output(data, np.finfo(dtype).eps)
        hidden = self.hidden_layer_sizes
        sizes: list[Any] = [hidden] if np.isscalar(hidden) else list(hidden)
        model = build_network(
            [data.inputs.shape[1], *sizes, n_outputs],
            activation=self.activation,
            output=output,
            dropout=self.dropout,
            weight_l1=self.l1,
            dtype=dtype,
        )
        factor = 2.0 if self.activation == "logistic" else 6.0
        for layer in model.layers:
            if isinstance(layer, Dense):
                bound = math.sqrt(factor / (layer.n_inputs + layer.n_neurons))
                layer.weights = self._random_state.uniform(-bound, bound, (layer.n_inputs, layer.n_neurons))
                layer.biases = self._random_state.uniform(-bound, bound, (1, layer.n_neurons))
        if self.dropout:  # dropout masks from the same stream, after the weights
            model.rng = np.random.default_rng(self._random_state.randint(2**31 - 1))
            for layer in model.layers:
                layer.adopt_rng(model.rng)
        model.compile(loss=loss, optimizer=self._optimizer(), fuse_sigmoid=True)  # scikit-learn's delta: s - y
        self.model_ = model
        self.n_iter_ = 0
        self.t_ = 0
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            self.validation_scores_: list[float] | None = [] if self.early_stopping else None
            self.validation_loss_curve_: list[float] | None = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self.best_loss_ = None if self.early_stopping else np.inf

    def _restarted_random_state(self) -> np.random.RandomState:
        """scikit-learn's `check_random_state(random_state)`, anew on every call. A seed restarts
        the generator this estimator made for it (`RandomState.seed`, the same stream in 1 us)
        rather than building a new one (90 us, a sixth of a small partial_fit: a new generator
        first builds its bit generator from a SeedSequence, then seeds it the legacy way)."""
        if not isinstance(self.random_state, Integral):
            return check_random_state(self.random_state)
        seed = int(self.random_state)
        if not hasattr(self, "_seeded_random_state"):
            self._seeded_random_state = np.random.RandomState(seed)
        else:
            self._seeded_random_state.seed(seed)
        return self._seeded_random_state

    def _in_model_dtype(self, data: Rows) -> Rows:
        """The rows in the model's dtype, on its device (labels stay NumPy: scoring compares them)."""
        model = self.model_
        inputs, targets = model.validated(data.inputs, data.targets, f"{type(self).__name__}.fit")
        weights = None if data.weights is None else model.device.to_device(data.weights.astype(model.dtype))
        return Rows(inputs, targets, weights, data.labels)

    def _optimizer(self) -> Optimizer:
        rate = {"learning_rate": self.learning_rate_init, "decay": self.decay}
        if self.solver == "sgd":
            nesterov = self.nesterovs_momentum and self.momentum > 0
            return SGD(**rate, momentum=self.momentum, nesterov=nesterov)
        if self.solver == "rmsprop":
            return RMSprop(**rate)
        if self.solver == "adagrad":
            return Adagrad(**rate)
        return Adam(**rate, epsilon=self.epsilon, beta_1=self.beta_1, beta_2=self.beta_2, epsilon_hat=True)

    def _objective(self) -> Objective:
        return Objective(self.model_, self.alpha, self._loss_scale)

    def _sample_weights(self, sample_weight: Any, n_samples: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        weights = np.asarray(sample_weight, dtype=np.float64)
        owner = type(self).__name__
        if weights.shape != (n_samples,):
            raise ValueError(f"{owner}: sample_weight must have shape ({n_samples},), got {weights.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
            raise ValueError(f"{owner}: sample_weight must be finite, non-negative and not all zero")
        return weights

    def _fit_stochastic(self, data: Rows, *, incremental: bool, fresh: bool) -> None:
        """scikit-learn's epochs: shuffle, mini-batches, then its convergence rule after each epoch."""
        model = self.model_
        if not (fresh or incremental):  # warm start: scikit-learn starts a new optimizer
            model.compile(loss=model.loss, optimizer=self._optimizer(), fuse_sigmoid=True)
        training, validation = self._split(data) if self.early_stopping else (data, None)
        n_samples = len(training)
        batch_size = self._batch_size(n_samples)
        objective = self._objective()
        store = model.parameter_store()
        best = store.snapshot() if self.early_stopping else None
        order = np.arange(n_samples)
        hooks = CallbackList(self.callbacks, model)
        model.expected_logs = ["loss", "val_loss", "val_score"] if validation else ["loss"]
        model.stop_training = False
        self.n_iter_ = 0
        with hooks.training(), training_guard(model.largest_matmul_work(batch_size)) as interruption:
            for epoch in range(self.max_iter):
                hooks.on_epoch_begin(epoch)
                if self.shuffle:  # sklearn.utils.shuffle's draw, without its per-call validation
                    order = order[self._random_state.permutation(n_samples)]
                summed_loss = 0.0
                for rows in batches(n_samples, batch_size):
                    batch = training.take(order[rows] if self.shuffle else rows)
                    if batch.weights is not None and not batch.weights.any():
                        continue  # no weight, no information (scikit-learn would divide by zero)
                    summed_loss += objective(batch, gradients=True) * len(batch)
                    model.optimizer.step(store)
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_ = summed_loss / n_samples
                self.loss_curve_.append(self.loss_)
                logs = {"loss": self.loss_}
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                if validation is not None and best is not None:
                    logs.update(self._validate(validation, objective, store, best))
                else:
                    self._track_training_loss()
                self._iteration_ends()
                hooks.on_epoch_end(epoch, logs)
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._stop_or_slow_down():
                        break
                    self._no_improvement_count = 0
                if incremental or interruption.requested or model.stop_training:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"{type(self).__name__}: stopped at max_iter={self.max_iter} before the loss settled "
                        f"(tol={self.tol}); raise max_iter to train longer",
                        ConvergenceWarning,
                        stacklevel=4,
                    )
        if best is not None:
            store.restore(best)

    def _split(self, data: Rows) -> tuple[Rows, Rows]:
        """scikit-learn's held-out split for early stopping: stratified for one-output classifiers,
        on the binarized labels as scikit-learn does (its error for a class too small to split
        names the class 'True')."""
        one_output = isinstance(self, ClassifierMixin) and self.n_outputs_ == 1
        stratify = self._label_binarizer.transform(data.labels).astype(bool) if one_output else None
        training, held_out = train_test_split(
            np.arange(len(data)), test_size=self.validation_fraction, random_state=self._random_state, stratify=stratify
        )
        if len(held_out) < 2:
            raise ValueError(
                f"{type(self).__name__}: The validation set is too small ({len(held_out)} sample(s)); raise "
                "validation_fraction or give more data"
            )
        return data.take(training), data.take(held_out)

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                f"{type(self).__name__}: batch_size={self.batch_size} is more than the {n_samples} training samples; "
                f"using {n_samples}",
                stacklevel=5,
            )
        return min(self.batch_size, n_samples)

    def _validate(
        self, validation: Rows, objective: Objective, store: ParameterStore, best: list[np.ndarray]
    ) -> dict[str, float]:
        """Score the held-out rows; count epochs without improvement by `tol`; keep the best weights."""
        score = self._score_rows(validation)
        loss = objective(validation, gradients=False)
        assert self.validation_scores_ is not None and self.validation_loss_curve_ is not None  # early stopping
        assert self.best_validation_score_ is not None
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(loss)
        if self.verbose:
            print(f"Validation score: {score:f}")
        # as scikit-learn counts: a NaN score (a diverged network) compares False and resets the count
        self._no_improvement_count = (
            self._no_improvement_count + 1 if score < self.best_validation_score_ + self.tol else 0
        )
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            store.copy_into(best)
        return {"val_loss": loss, "val_score": score}

    def _track_training_loss(self) -> None:
        """Count epochs whose training loss did not fall by `tol` below the best so far."""
        loss = self.loss_curve_[-1]
        assert self.best_loss_ is not None  # tracked without early stopping
        self._no_improvement_count = self._no_improvement_count + 1 if loss > self.best_loss_ - self.tol else 0
        self.best_loss_ = min(self.best_loss_, loss)

    def _iteration_ends(self) -> None:
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self.model_.optimizer.learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t

    def _stop_or_slow_down(self) -> bool:
        """After `n_iter_no_change` epochs without improvement: stop, or with learning_rate='adaptive'
        divide the rate by 5 until it is tiny."""
        optimizer = self.model_.optimizer
        what = "Validation score" if self.early_stopping else "Training loss"
        message = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if (
            self.solver == "sgd"
            and self.learning_rate == "adaptive"
            and optimizer.learning_rate > SMALLEST_ADAPTIVE_RATE
        ):
            optimizer.learning_rate /= 5
            if self.verbose:
                print(f"{message} Setting learning rate to {optimizer.learning_rate:f}")
            return False
        if self.verbose:
            print(f"{message} Stopping.")
        return True

    # -- prediction -------------------------------------------------------------------------

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=SPARSE_FORMATS, dtype=INPUT_DTYPES, reset=False)
        model = self.model_
        inputs = model.placed(X.astype(model.dtype, copy=False), f"{type(self).__name__}.predict")
        outputs = to_host(model.predict_trusted(inputs))
        # float32 stays float32 unless the model or the input is float64, as scikit-learn's products give
        return outputs.astype(np.result_type(X.dtype, model.dtype), copy=False)

    def to_onnx(self, *, opset: int = 17) -> Any:
        """The fitted network as an `onnx.ModelProto` (input 'input', float32) with scikit-learn's
        outputs (`chainrule.sklearn.onnx_heads`); `chainrule.onnx.export(estimator, path)` writes it."""
        check_is_fitted(self)
        return to_onnx(self.model_, opset=opset, head=self._onnx_head())

    def _onnx_head(self) -> Head:
        raise NotImplementedError

    def _score_rows(self, rows: Rows) -> float:
        """The validation score (accuracy or R^2); NaN where the outputs are not finite (a diverging
        network), as scikit-learn records it before training goes on."""
        outputs = to_host(self.model_.forward_trusted(rows.inputs, False))
        if not np.isfinite(outputs).all():
            return np.nan
        weights = None if rows.weights is None else to_host(rows.weights)
        return self._score_predictions(rows.labels, self._predictions(outputs), weights)


class MLPClassifier(ClassifierMixin, _ChainruleMLP):
    """A multi-layer perceptron classifier: softmax outputs for several classes, one logistic
    output for two, one logistic output per label for multilabel targets."""

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        class_weight: Any = None,
        l1: float = 0.0,
        dropout: float = 0.0,
        decay: float = 0.0,
        callbacks: Any = (),
        dtype: Any = None,
        device: Any = "cpu",
    ) -> None:
        _set_parameters(self, locals())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on (X, y): class labels of any kind, or a multilabel indicator matrix."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y); the first call names every class in `classes`."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("MLPClassifier.partial_fit: pass classes=[...] (every class) on the first call")
            self._label_binarizer = LabelBinarizer().fit(np.asarray(classes) if np.ndim(y) == 1 else y)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"MLPClassifier.partial_fit: classes={classes!r} differ from classes_ {self.classes_}")
        return self._fit(X, y, sample_weight, incremental=True)

    def _rows(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool) -> Rows:
        reset = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(
            self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True, dtype=INPUT_DTYPES, reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or not (self.warm_start or incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_  # one class: one logistic output, as scikit-learn
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental and set(classes) != set(self.classes_):
                raise ValueError(
                    "MLPClassifier: warm_start can only be used where `y` has the same classes as in the previous "
                    f"call to fit. Previously got {self.classes_}, `y` has {classes}"
                )
            if len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(f"MLPClassifier: y has classes {classes} not all in classes_ {self.classes_}")
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        if y.ndim == 1:
            # Each label's position in the sorted classes_ (all of y's classes are there, checked
            # above): what the binarizer's one-hot rows encode, without its validation of y again
            # (40% of a 32-row partial_fit).
            index = np.searchsorted(self.classes_, y)
            targets = index if multiclass else (index == 1).astype(np.float64)[:, None]
        else:
            targets = self._label_binarizer.transform(y).astype(np.float64)
        weights = self._sample_weights(sample_weight, X.shape[0])
        if self.class_weight is not None:
            weights = self._class_weighted(y, weights)
        return Rows(X, targets, weights, y)

    def _class_weighted(self, y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """The sample weights times each sample's class weight. 'balanced' counts each class by its
        samples' weights, as if a row of weight 0 were absent and a row of weight 2 repeated
        (scikit-learn's `compute_class_weight` with `sample_weight`); multilabel targets and a
        dict of class weights go through `compute_sample_weight`."""
        if y.ndim == 2 or self.class_weight != "balanced":
            by_class = compute_sample_weight(self.class_weight, y)
            return by_class if weights is None else weights * by_class
        if weights is None:
            return compute_sample_weight("balanced", y)
        counted = weights > 0
        present = np.unique(y[counted])
        per_class = compute_class_weight("balanced", classes=present, y=y[counted], sample_weight=weights[counted])
        by_class = np.zeros(len(y))
        by_class[counted] = per_class[np.searchsorted(present, y[counted])]
        return weights * by_class

    def _output(self, data: Rows, clip: float) -> tuple[int, type[Layer], Loss, float]:
        if self._label_binarizer.y_type_ == "multiclass":
            return len(self.classes_), Softmax, CategoricalCrossentropy(clip=clip), 1.0
        n_outputs = data.targets.shape[1]
        return n_outputs, Sigmoid, BinaryCrossentropy(clip=clip), float(n_outputs)  # scikit-learn sums them

    def _predictions(self, outputs: np.ndarray) -> np.ndarray:
        """The labels the outputs stand for, as the fitted LabelBinarizer's `inverse_transform`
        decodes them, without its validation (a fifth of a one-row predict): the most probable
        class; with one logistic output, the second class where it is above 0.5; for multilabel
        targets, each label above 0.5."""
        kind = self._label_binarizer.y_type_
        if kind == "multiclass":
            return self.classes_.take(outputs.argmax(axis=1))
        above = outputs > 0.5
        if kind == "multilabel-indicator":
            return above.astype(int)
        return (
            self.classes_[above[:, 0].astype(int)]
            if len(self.classes_) > 1
            else self.classes_[np.zeros(len(outputs), int)]
        )

    def _score_predictions(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None) -> float:
        return accuracy_score(labels, predictions, sample_weight=weights)

    def _onnx_head(self) -> Head:
        return classifier_head(self.classes_, self._label_binarizer.y_type_ == "multilabel-indicator")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_` (two columns for two classes)."""
        probabilities = self._forward(X)
        return np.hstack([1 - probabilities, probabilities]) if self.n_outputs_ == 1 else probabilities

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of `predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample (for multilabel targets, each label above 0.5)."""
        return self._predictions(self._forward(X))


class MLPRegressor(RegressorMixin, _ChainruleMLP):
    """A multi-layer perceptron regressor: identity outputs with half the squared error (or the
    absolute error, chainrule's own), or exponential outputs with half the Poisson deviance."""

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        l1: float = 0.0,
        dropout: float = 0.0,
        decay: float = 0.0,
        callbacks: Any = (),
        dtype: Any = None,
        device: Any = "cpu",
    ) -> None:
        _set_parameters(self, locals())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train on (X, y); y may have one column or several."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _rows(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool) -> Rows:
        reset = not hasattr(self, "model_") or not (self.warm_start or incremental)
        X, y = validate_data(
            self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True, y_numeric=True, dtype=INPUT_DTYPES, reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        return Rows(X, targets, self._sample_weights(sample_weight, X.shape[0]), y)

    def _output(self, data: Rows, clip: float) -> tuple[int, type[Layer], Loss, float]:
        n_outputs = data.targets.shape[1]
        if self.loss == "absolute_error":
            return n_outputs, Linear, MeanAbsoluteError(), 1.0
        if self.loss == "poisson":  # scikit-learn sums the outputs' half deviances
            return n_outputs, Exponential, PoissonDeviance(), float(n_outputs)
        return n_outputs, Linear, MeanSquaredError(), 0.5  # scikit-learn's squared error is half the mean

    def _predictions(self, outputs: np.ndarray) -> np.ndarray:
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def _score_predictions(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None) -> float:
        return r2_score(labels, predictions, sample_weight=weights)

    def _onnx_head(self) -> Head:
        return regressor_head

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, 1-D when there is one output."""
        return self._predictions(self._forward(X))

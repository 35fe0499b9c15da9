"""scikit-learn estimators (extra `sklearn`): chainrule networks inside Pipeline and GridSearchCV.

Constructor arguments carry scikit-learn's names where it has them (`hidden_layer_sizes`,
`activation`, `solver`, `alpha` for the L2 penalty, `learning_rate_init`, `batch_size`,
`max_iter`, `shuffle`, `random_state`, `momentum`, `nesterovs_momentum`) plus chainrule's own
(`l1`, `dropout`, `decay`, `dtype`). The fitted network is `model_`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from chainrule.activations import Linear, Softmax
from chainrule.layers import Layer
from chainrule.model import Model
from chainrule.network import build_network
from chainrule.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop

HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "logistic", "identity")
SOLVERS = ("adam", "sgd", "rmsprop", "adagrad")


class _ChainruleMLP(BaseEstimator):
    """Shared parameters, validation and training of the classifier and the regressor."""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0,
        l1: float = 0.0,
        dropout: float = 0.0,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        decay: float = 0.0,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        verbose: int = 0,
        dtype: str = "float64",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.dropout = dropout
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.decay = decay
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    def _optimizer(self) -> Optimizer:
        settings = {"learning_rate": self.learning_rate_init, "decay": self.decay}
        if self.solver == "adam":
            return Adam(**settings)
        if self.solver == "sgd":
            return SGD(**settings, momentum=self.momentum, nesterov=self.nesterovs_momentum and self.momentum > 0)
        if self.solver == "rmsprop":
            return RMSprop(**settings)
        if self.solver == "adagrad":
            return Adagrad(**settings)
        raise ValueError(f"{type(self).__name__}: solver must be one of {SOLVERS}, got {self.solver!r}")

    def _network(self, n_features: int, n_outputs: int, output: type[Layer]) -> Model:
        if self.activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"{type(self).__name__}: activation must be one of {sorted(HIDDEN_ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else list(self.hidden_layer_sizes)
        seed = (
            check_random_state(self.random_state).randint(2**31 - 1)
            if not isinstance(self.random_state, (int, np.integer))
            else int(self.random_state)
        )
        return build_network(
            [n_features, *sizes, n_outputs],
            activation=self.activation,
            output=output,
            dropout=self.dropout,
            weight_l1=self.l1,
            weight_l2=self.alpha,
            dtype=self.dtype,
            seed=seed,
        )

    def _train(self, model: Model, X: np.ndarray, targets: np.ndarray) -> None:
        batch_size = min(200, len(X)) if self.batch_size == "auto" else self.batch_size
        history = model.fit(
            X,
            targets,
            epochs=self.max_iter,
            batch_size=batch_size,
            shuffle=self.shuffle,
            verbose=2 if self.verbose else 0,
        )
        self.model_ = model
        self.loss_curve_ = list(history.history["loss"])
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = len(history.epoch)


class MLPClassifier(ClassifierMixin, _ChainruleMLP):
    """A multi-layer perceptron classifier: hidden Dense layers, Softmax output, cross-entropy."""

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on (X, y); any class labels scikit-learn accepts."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier: needs samples of at least 2 classes; got 1 class ({self.classes_[0]})")
        model = self._network(X.shape[1], len(self.classes_), Softmax)
        model.compile(loss="categorical_crossentropy", optimizer=self._optimizer())
        self._train(model, X, encoder.transform(y))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.predict(X).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class MLPRegressor(RegressorMixin, _ChainruleMLP):
    """A multi-layer perceptron regressor: hidden Dense layers, linear output, mean squared error."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may have several columns
        return tags

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on (X, y); y may have one column or several."""
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        self._single_output = y.ndim == 1
        model = self._network(X.shape[1], targets.shape[1], Linear)
        model.compile(loss="mse", optimizer=self._optimizer())
        self._train(model, X, targets)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, 1-D when trained on a 1-D y."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        predictions = self.model_.predict(X).astype(np.float64)
        return predictions[:, 0] if self._single_output else predictions

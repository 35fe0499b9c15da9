"""The chain rule, step by step, with real numbers: a neuron, a layer, softmax with cross-entropy,
and one training step of a small network.

Each function runs the engine's own components in float64 (so an explanation can never disagree
with training), then lays out every intermediate value under the names the textbook uses. The
returned objects print as readable tables (`str`) and expose every value in `.values`.
"""

from __future__ import annotations

import html
import os
import timeit
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.display import html_table, new_figure
from chainrule.engine.activations import ReLU, Softmax
from chainrule.engine.layers import Dense
from chainrule.engine.losses import CategoricalCrossentropy, SoftmaxCategoricalCrossentropy
from chainrule.engine.validation import float_array, numeric_array, whole_number
from chainrule.learn.datasets import spiral_data

F64 = np.float64


def fmt(value: Any) -> str:
    """Numbers as a learner writes them: 6, -0.998, 5.985 (12 significant digits, no float noise)."""
    array = np.asarray(value, dtype=F64)
    if array.ndim == 0:
        return f"{float(array) + 0.0:.12g}"  # + 0.0: -0.0 shows as 0
    return "[" + ", ".join(fmt(item) for item in array) + "]"


def counted(count: int, noun: str) -> str:
    """'1 sample', '3 samples', '2 classes'."""
    plural = noun if count == 1 else (f"{noun}es" if noun.endswith("s") else f"{noun}s")
    return f"{count} {plural}"


def _vector(values: Any, name: str, owner: str) -> np.ndarray:
    array = numeric_array(values, name, owner).astype(F64).ravel()
    if array.size == 0:
        raise ValueError(f"{owner}: {name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{owner}: {name} contains NaN or inf")
    return array


def scalar(value: Any, name: str, owner: str) -> float:
    """One finite number from `value` (a number or a one-element array), or a ValueError naming it."""
    array = _vector(value, name, owner)
    if array.size != 1:
        raise ValueError(f"{owner}: {name} must be one number, got {array.size}")
    return float(array[0])


@dataclass
class Explanation:
    """Named values in order, grouped in sections; `str` renders them as a table."""

    title: str
    sections: list[tuple[str, list[tuple[str, str, Any]]]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, name: str, formula: str, value: Any) -> Any:
        """Record `name = formula = value` under `section` and return the value."""
        if not self.sections or self.sections[-1][0] != section:
            self.sections.append((section, []))
        self.sections[-1][1].append((name, formula, value))
        self.values[name] = value
        return value

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.title!r}, {len(self.values)} values)"

    def _repr_html_(self) -> str:
        tables = [
            html_table(
                ["name", "formula", "value"],
                [
                    (name, formula, value if isinstance(value, str) else _matrix(value, "").strip())
                    for name, formula, value in rows
                ],
                caption=section,
            )
            for section, rows in self.sections
        ]
        return f"<h4>{html.escape(self.title)}</h4>" + "".join(tables)

    def __str__(self) -> str:
        lines = [self.title, "=" * len(self.title)]
        for section, rows in self.sections:
            lines += ["", section]
            width = max(len(name) for name, _, _ in rows)
            for name, formula, value in rows:
                text = value if isinstance(value, str) else _matrix(value, indent=" " * (width + 7))
                shown = f"{formula} ={'' if text.startswith(chr(10)) else ' '}{text}" if formula else text
                lines.append(f"  {name:<{width}} = {shown}")
        return "\n".join(lines)


def _matrix(value: Any, indent: str) -> str:
    """A vector on one line; a matrix with one row per line, rows aligned under each other."""
    array = np.asarray(value, dtype=F64)
    if array.ndim < 2:
        return fmt(array)
    return "\n" + "\n".join(f"{indent}{fmt(row)}" for row in array)


class NeuronExplanation(Explanation):
    """One ReLU neuron; `to_png` draws its computational graph."""

    def to_png(self, path: str | os.PathLike) -> None:
        """Inputs and weights -> mul -> sum (+ b) = z -> ReLU -> y. Each edge carries its forward
        value (black) and, on the same side, the local derivative (blue) and the gradient arriving
        there (red), at 4 significant digits. The x edges label above and the w edges below, so
        labels never meet, however many inputs there are."""
        n = len(self["x"])
        figure = new_figure(10, 1.8 + 1.4 * n)
        axis = figure.subplots()
        axis.set_axis_off()
        height = 2 * n
        centre = height / 2 - 0.5

        def node(x: float, y: float, label: str) -> None:
            box = {"boxstyle": "round", "facecolor": "white", "edgecolor": "black"}
            axis.text(x, y, label, ha="center", va="center", fontsize=10, bbox=box)

        def edge(start: tuple, end: tuple, forward: Any, local: Any, gradient: Any, *, at: float, side: int) -> None:
            axis.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "gray"})
            point = (start[0] + at * (end[0] - start[0]), start[1] + at * (end[1] - start[1]))
            va = "bottom" if side > 0 else "top"
            for text, color, dx, dy, ha in (
                (fmt4(forward), "black", 0, 3, "center"),
                (f"∂ {fmt4(local)}", "tab:blue", -3, 15, "right"),
                (f"∇ {fmt4(gradient)}", "red", 3, 15, "left"),
            ):
                axis.annotate(
                    text,
                    point,
                    xytext=(dx, side * dy),
                    textcoords="offset points",
                    ha=ha,
                    va=va,
                    color=color,
                    fontsize=9,
                )

        for i in range(n):
            row = height - 2 * i - 1
            node(0, row + 0.4, f"x{i}")
            node(0, row - 0.4, f"w{i}")
            node(2.4, row, f"mul{i}")
            edge((0.3, row + 0.4), (2.1, row), self["x"][i], self["w"][i], self["dx"][i], at=0.45, side=1)
            edge((0.3, row - 0.4), (2.1, row), self["w"][i], self["x"][i], self["dw"][i], at=0.45, side=-1)
            edge((2.7, row), (4.9, centre), self[f"xw{i}"], 1.0, self["drelu_dz"], at=0.3, side=1)
        node(2.4, -0.6, "b")
        edge((2.7, -0.6), (4.9, centre), self["b"], 1.0, self["db"], at=0.3, side=-1)
        node(5.2, centre, "sum")
        node(7.4, centre, "ReLU")
        relu_slope = float(self["z"] > 0)
        axis.text(6.3, centre - 0.55, f"z = {fmt4(self['z'])}", ha="center", va="top", fontsize=9)
        edge((5.5, centre), (7.0, centre), self["z"], relu_slope, self["drelu_dz"], at=0.5, side=1)
        edge((7.8, centre), (9.2, centre), self["y"], 1.0, self["dvalue"], at=0.5, side=1)
        axis.text(9.6, centre, "y", ha="center", va="center", fontsize=11)
        axis.set_xlim(-0.6, 10.0)
        axis.set_ylim(-1.4, height + 0.3)
        axis.set_title(
            "forward values (black), local derivatives ∂ (blue), gradients ∇ (red); y's ∇ is the incoming dvalue",
            fontsize=10,
        )
        figure.savefig(path, dpi=100)


def neuron(x: Any, w: Any, b: Any, *, dvalue: float = 1.0, learning_rate: float = 0.001) -> NeuronExplanation:
    """One neuron y = ReLU(sum(x_i * w_i) + b): forward, backward, one optimizer step, the new output."""
    owner = "explain.neuron"
    inputs, weights = _vector(x, "x", owner), _vector(w, "w", owner)
    if len(inputs) != len(weights):
        raise ValueError(f"{owner}: x has {len(inputs)} values but w has {len(weights)}; they must match")
    bias = scalar(b, "b", owner)
    upstream = scalar(dvalue, "dvalue", owner)
    rate = scalar(learning_rate, "learning_rate", owner)

    dense, relu = Dense(len(inputs), 1, dtype=F64), ReLU(dtype=F64)
    dense.weights, dense.biases = weights[:, None], [[bias]]
    relu.forward(dense.forward(inputs[None, :]))
    dense.backward(relu.backward(np.array([[upstream]])))

    ex = NeuronExplanation("One neuron: y = ReLU(x0*w0 + x1*w1 + ... + b)")
    ex.values.update(x=inputs, w=weights, b=bias, dvalue=upstream)
    section = "Forward pass"
    for i, (xi, wi) in enumerate(zip(inputs, weights, strict=True)):
        ex.add(section, f"xw{i}", f"x{i} * w{i} = {fmt(xi)} * {fmt(wi)}", xi * wi)
    terms = " + ".join(f"xw{i}" for i in range(len(inputs)))
    z = ex.add(section, "z", f"{terms} + b", float(dense.output[0, 0]))
    ex.add(section, "y", "ReLU(z) = max(z, 0)", float(relu.output[0, 0]))

    section = f"Backward pass (dvalue = dLoss/dy = {fmt(upstream)})"
    drelu_dz = ex.add(section, "drelu_dz", "dvalue * (1 if z > 0 else 0)", upstream * float(z > 0))
    for i in range(len(inputs)):
        ex.add(section, f"dsum_dxw{i}", "", 1.0)
    ex.add(section, "dsum_db", "", 1.0)
    for i, (xi, wi) in enumerate(zip(inputs, weights, strict=True)):
        ex.add(section, f"dmul_dx{i}", f"w{i}", wi)
        ex.add(section, f"dmul_dw{i}", f"x{i}", xi)
    for i, (xi, wi) in enumerate(zip(inputs, weights, strict=True)):
        ex.add(section, f"drelu_dx{i}", f"drelu_dz * dsum_dxw{i} * dmul_dx{i}", drelu_dz * 1.0 * wi)
        ex.add(section, f"drelu_dw{i}", f"drelu_dz * dsum_dxw{i} * dmul_dw{i}", drelu_dz * 1.0 * xi)
    ex.add(section, "drelu_db", "drelu_dz * dsum_db", drelu_dz * 1.0)

    section = "Gradients (from the engine's Dense.backward)"
    ex.add(section, "dx", "[drelu_dx0, drelu_dx1, ...]", dense.dinputs[0].copy())
    ex.add(section, "dw", "[drelu_dw0, drelu_dw1, ...]", dense.dweights[:, 0].copy())
    ex.add(section, "db", "drelu_db", float(dense.dbiases[0, 0]))

    section = f"One optimizer step (learning_rate = {fmt(rate)})"
    new_w = ex.add(section, "w_new", f"w - {fmt(rate)} * dw", weights - rate * dense.dweights[:, 0])
    new_b = ex.add(section, "b_new", f"b - {fmt(rate)} * db", bias - rate * float(dense.dbiases[0, 0]))
    dense.weights, dense.biases = new_w[:, None], [[new_b]]
    ex.add(
        section,
        "y_new",
        f"ReLU(x . w_new + b_new), was {fmt(ex['y'])}",
        float(relu.forward(dense.forward(inputs[None, :]))[0, 0]),
    )
    return ex


class LayerExplanation(Explanation):
    """A Dense layer (optionally + ReLU); `to_png` draws it for one sample."""

    def to_png(self, path: str | os.PathLike) -> None:
        """Left: the chosen sample as a graph, inputs -> weighted sums z (+ b) -> ReLU -> outputs, each
        node with its forward value (black) and the gradient reaching it (red); an edge's colour is
        its weight's sign and its width the weight's size. Right: the weights (black) and dweights
        (red, summed over the batch) as a labelled heat map. 4 significant digits."""
        sample, relu = self["sample"], self["relu"]
        weights, inputs = self["weights"], self["inputs"][sample]
        n_inputs, n_neurons = weights.shape
        rows = max(n_inputs, n_neurons)
        figure = new_figure(13, 1.5 + 1.1 * rows)
        graph, heat = figure.subplots(1, 2, width_ratios=[1.5, 1])
        graph.set_axis_off()

        def place(count: int) -> np.ndarray:
            return (rows - 1) / 2 + (np.arange(count)[::-1] - (count - 1) / 2) * 1.0

        def node(x: float, y: float, name: str, value: float, gradient: float) -> None:
            box = {"boxstyle": "round", "facecolor": "white", "edgecolor": "black"}
            graph.text(x, y, f"{name} = {fmt4(value)}", ha="center", va="center", fontsize=9, bbox=box)
            graph.text(x, y - 0.3, f"∇ {fmt4(gradient)}", ha="center", va="top", fontsize=9, color="red")

        input_rows, neuron_rows = place(n_inputs), place(n_neurons)
        limit = float(np.abs(weights).max()) or 1.0
        for j, k in np.ndindex(n_inputs, n_neurons):
            color = "tab:red" if weights[j, k] >= 0 else "tab:blue"  # as the heat map's coolwarm: positive red
            width = 0.5 + 3 * abs(weights[j, k]) / limit
            graph.plot([0.45, 2.55], [input_rows[j], neuron_rows[k]], color=color, linewidth=width, alpha=0.6)
        for j in range(n_inputs):
            node(0, input_rows[j], f"x{j}", inputs[j], self["dinputs"][sample, j])
        for k in range(n_neurons):
            node(3, neuron_rows[k], f"z{k}", self["sums"][sample, k], self["dsums"][sample, k])
            graph.text(3, neuron_rows[k] + 0.32, f"+ b{k} {fmt4(self['biases'][0, k])}", ha="center", fontsize=8)
            if relu:
                graph.annotate("", (4.6, neuron_rows[k]), (3.6, neuron_rows[k]), arrowprops={"arrowstyle": "->"})
                node(5.3, neuron_rows[k], f"ReLU y{k}", self["output"][sample, k], self["dvalues"][sample, k])
        graph.set_xlim(-0.8, 6.3 if relu else 3.8)
        graph.set_ylim(-1, rows)
        graph.set_title(
            f"sample {sample}: forward (black), gradients (red); edges: weights (red +, blue -)", fontsize=10
        )

        image = heat.imshow(
            weights, cmap="coolwarm", vmin=-limit, vmax=limit, alpha=0.5
        )  # pale: the text stays legible
        for (j, k), value in np.ndenumerate(weights):
            heat.text(k, j - 0.12, fmt4(value), ha="center", va="center", fontsize=9)
            gradient = f"∇ {fmt4(self['dweights'][j, k])}"
            heat.text(k, j + 0.18, gradient, ha="center", va="center", fontsize=8, color="darkred")
        heat.set_xticks(range(n_neurons), [f"neuron {k}" for k in range(n_neurons)])
        heat.set_yticks(range(n_inputs), [f"input {j}" for j in range(n_inputs)])
        heat.set_title("weights and dweights (summed over the batch)", fontsize=10)
        figure.colorbar(image, ax=heat, shrink=0.8)
        figure.savefig(path, dpi=100)


def layer(
    inputs: Any, weights: Any, biases: Any, dvalues: Any, *, relu: bool = False, sample: int = 0, input_index: int = 0
) -> LayerExplanation:
    """A Dense layer (optionally + ReLU) on a batch: shapes, the three backward products, and one
    dinputs element written out as a sum over neurons.

    `weights` are (n_inputs, n_neurons), as chainrule stores them; `dvalues` is dLoss/dOutput of
    the layer (of the ReLU when `relu=True`), one row per sample.
    """
    owner = "explain.layer"
    batch = float_array(inputs, F64, "inputs", owner, ndim=max(np.ndim(inputs), 1))
    batch = batch.reshape(1, -1) if batch.ndim == 1 else batch
    weight_matrix = float_array(weights, F64, "weights", owner)
    n_samples, n_inputs = batch.shape
    if weight_matrix.shape[0] != n_inputs:
        raise ValueError(f"{owner}: weights must have one row per input ({n_inputs}), got shape {weight_matrix.shape}")
    n_neurons = weight_matrix.shape[1]
    dense = Dense(n_inputs, n_neurons, dtype=F64)
    dense.weights = weight_matrix
    dense.biases = np.reshape(_vector(biases, "biases", owner), (1, -1)) if np.size(biases) == n_neurons else biases
    upstream = float_array(dvalues, F64, "dvalues", owner, ndim=max(np.ndim(dvalues), 1))
    upstream = upstream.reshape(1, -1) if upstream.ndim == 1 else upstream
    if upstream.shape != (n_samples, n_neurons):
        raise ValueError(
            f"{owner}: dvalues must have shape {(n_samples, n_neurons)} (samples, neurons), got {upstream.shape}"
        )
    if not (0 <= sample < n_samples and 0 <= input_index < n_inputs):
        raise ValueError(f"{owner}: sample {sample} / input_index {input_index} out of range for {batch.shape}")

    activation = ReLU(dtype=F64)
    output = dense.forward(batch)
    gradient = upstream
    if relu:
        output = activation.forward(output)
        gradient = activation.backward(upstream)
    dense.backward(gradient)

    ex = LayerExplanation(
        f"A Dense layer{' + ReLU' if relu else ''}: {counted(n_samples, 'sample')}, {counted(n_inputs, 'input')}, "
        f"{counted(n_neurons, 'neuron')}"
    )
    section = "Shapes"
    ex.add(section, "inputs.shape", "(samples, inputs)", str(batch.shape))
    ex.add(section, "weights.shape", "(inputs, neurons)", str(weight_matrix.shape))
    ex.add(section, "biases.shape", "(1, neurons)", str(dense.biases.shape))
    ex.add(section, "output.shape", "inputs @ weights + biases", str(output.shape))
    ex.add(section, "dvalues.shape", "dLoss/doutput, like output", str(upstream.shape))
    ex.values.update(inputs=batch, weights=weight_matrix, biases=dense.biases.copy(), dvalues=upstream)
    ex.values.update(sums=dense.output.copy(), dsums=gradient.copy(), relu=relu, sample=sample)
    section = "Forward pass"
    ex.add(section, "output", "ReLU(inputs @ weights + biases)" if relu else "inputs @ weights + biases", output.copy())
    section = "Backward pass"
    if relu:
        ex.add(section, "drelu", "dvalues * (inputs @ weights + biases > 0)", gradient.copy())
    name = "drelu" if relu else "dvalues"
    ex.add(section, "dinputs", f"{name} @ weights.T", dense.dinputs.copy())
    ex.add(section, "dweights", f"inputs.T @ {name}", dense.dweights.copy())
    ex.add(section, "dbiases", f"sum({name}, axis=0)", dense.dbiases.copy())

    section = f"Why the dot product: dinputs[{sample}, {input_index}] as a sum over neurons"
    terms = [gradient[sample, j] * weight_matrix[input_index, j] for j in range(n_neurons)]
    written = " + ".join(f"{fmt(gradient[sample, j])} * {fmt(weight_matrix[input_index, j])}" for j in range(n_neurons))
    ex.add(section, "partials", f"{name}[{sample}, j] * weights[{input_index}, j] for each neuron j", np.array(terms))
    ex.add(section, "sum", written, float(np.sum(terms)))
    ex.add(section, "engine", f"dinputs[{sample}, {input_index}]", float(dense.dinputs[sample, input_index]))
    return ex


class SoftmaxExplanation(Explanation):
    """Softmax + cross-entropy of one sample; `to_png` draws it."""

    def to_png(self, path: str | os.PathLike) -> None:
        """Three panels for the chosen sample: logits -> probabilities (true class marked) and the
        loss; the Jacobian as a labelled heat map; the separate and the fused gradients side by side."""
        sample, label = self["sample"], self["label"]
        logits, probabilities = self["logits"][sample], self["probabilities"][sample]
        classes = np.arange(len(logits))
        figure = new_figure(15, 4.6)
        forward, heat, backward = figure.subplots(1, 3, width_ratios=[1, 1, 1.2])

        _paired_bars(forward, (logits, "0.6", "logits x"), (probabilities, "tab:blue", "softmax s"))
        forward.set_xticks(classes, [f"class {c}" + ("\n(true)" if c == label else "") for c in classes])
        forward.set_title(f"forward: loss = -log s[{label}] = {fmt4(-np.log(probabilities[label]))}")
        forward.margins(y=0.12)
        forward.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=2, fontsize=8)

        jacobian = self["jacobian"]
        limit = float(np.abs(jacobian).max()) or 1.0
        image = heat.imshow(jacobian, cmap="coolwarm", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(jacobian):
            heat.text(j, i, fmt4(value), ha="center", va="center", fontsize=9)
        heat.set_xticks(classes, [f"x{j}" for j in classes])
        heat.set_yticks(classes, [f"s{i}" for i in classes])
        heat.set_title("Jacobian ds_i/dx_j = s_i (delta_ij - s_j)")
        figure.colorbar(image, ax=heat, shrink=0.8)

        separate, fused = self["dinputs_separate"][sample], self["dinputs_fused"][sample]
        _paired_bars(
            backward,
            (separate, "tab:red", "separate: Jacobian @ dloss"),
            (fused, "tab:orange", "fused: (s - onehot) / n"),
        )
        backward.set_xticks(classes, [f"dx{c}" for c in classes])
        backward.set_title("backward: the same gradient, two ways")
        backward.margins(y=0.12)
        backward.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=2, fontsize=8)
        figure.savefig(path, dpi=100)


def _paired_bars(axis: Any, *series: tuple[np.ndarray, str, str]) -> None:
    """Two bars per class, side by side, each labelled with its value at its end (above a
    positive bar, below a negative one); `series` are (values, colour, legend label)."""
    width = 0.38
    for offset, (values, color, label) in zip((-width / 2, width / 2), series, strict=True):
        positions = np.arange(len(values)) + offset
        axis.bar(positions, values, width, color=color, label=label)
        for x, value in zip(positions, values, strict=True):
            axis.annotate(fmt4(value), (x, value), ha="center", va="bottom" if value >= 0 else "top", fontsize=7)
    axis.axhline(0, color="black", linewidth=0.6)


def fmt4(value: float) -> str:
    """Four significant digits, for pictures."""
    return f"{float(value) + 0.0:.4g}"  # + 0.0: -0.0 shows as 0


def softmax_crossentropy(
    logits: Any, y_true: Any, *, sample: int = 0, measure_speed: bool = False, batch_size: int = 1000, repeats: int = 7
) -> SoftmaxExplanation:
    """Softmax + cross-entropy: the Jacobian of one sample, the separate backward (loss, then
    softmax through its Jacobian), the fused `(probabilities - onehot) / n`, their difference,
    and, with `measure_speed`, the measured speed-up of the fused gradient on a batch."""
    owner = "explain.softmax_crossentropy"
    scores = float_array(logits, F64, "logits", owner)
    fused, softmax, loss = SoftmaxCategoricalCrossentropy(F64), Softmax(F64), CategoricalCrossentropy(F64)
    targets = fused.prepare_targets(y_true, scores.shape, owner)
    if not 0 <= sample < len(scores):
        raise ValueError(f"{owner}: sample {sample} out of range for {len(scores)} samples")

    mean_loss = fused.forward(scores, targets)
    probabilities = softmax.forward(scores)
    dloss = loss.backward(probabilities, targets)
    separate = softmax.backward(dloss)
    combined = fused.backward(fused.output, targets)

    n_samples, n_classes = scores.shape
    ex = SoftmaxExplanation(
        f"Softmax + categorical cross-entropy: {counted(n_samples, 'sample')}, {counted(n_classes, 'class')}"
    )
    label = int(targets[sample]) if targets.ndim == 1 else int(np.argmax(targets[sample]))
    ex.values.update(logits=scores, sample=sample, label=label)
    section = "Forward pass"
    ex.add(section, "probabilities", "exp(x - max) / sum(exp(x - max))", probabilities.copy())
    ex.add(section, "loss", "mean(-log(p[true class]))", mean_loss)
    section = f"Softmax Jacobian of sample {sample}: ds_i/dx_j = s_i * (delta_ij - s_j)"
    ex.add(section, "jacobian", "diag(s) - s s^T", Softmax.jacobian(probabilities[sample]))
    section = "Separate backward: loss, then softmax"
    ex.add(section, "dloss", "-onehot / p / n", dloss.copy())
    ex.add(section, "dinputs_separate", "s * (dloss - sum(dloss * s))  (= Jacobian @ dloss per row)", separate.copy())
    section = "Fused backward"
    ex.add(section, "dinputs_fused", "(p - onehot) / n", combined.copy())
    ex.add(section, "max_difference", "max|separate - fused|", float(np.max(np.abs(separate - combined))))
    if measure_speed:
        section = f"Speed on a batch of {batch_size} samples (median of {repeats} runs)"
        separate_seconds, fused_seconds = _time_backwards(scores.shape[1], batch_size, repeats)
        ex.add(section, "separate_us", "loss.backward + softmax.backward", round(separate_seconds * 1e6, 1))
        ex.add(section, "fused_us", "fused.backward", round(fused_seconds * 1e6, 1))
        ex.add(section, "speedup", "separate / fused", round(separate_seconds / fused_seconds, 1))
    return ex


def _time_backwards(n_classes: int, batch_size: int, repeats: int) -> tuple[float, float]:
    """Median seconds of the separate and the fused backward on a random batch (trusted paths)."""
    rng = np.random.default_rng(0)
    softmax, loss, fused = Softmax(F64), CategoricalCrossentropy(F64), SoftmaxCategoricalCrossentropy(F64)
    probabilities = softmax.forward_trusted(rng.standard_normal((batch_size, n_classes)), False)
    labels = rng.integers(0, n_classes, batch_size)

    def separate() -> None:
        softmax.backward_trusted(loss.backward_trusted(probabilities, labels))

    def combined() -> None:
        fused.backward_trusted(probabilities, labels)

    number = 50
    timings = {}
    for name, function in (("separate", separate), ("fused", combined)):
        runs = timeit.repeat(function, number=number, repeat=repeats)
        timings[name] = float(np.median(runs)) / number
    return timings["separate"], timings["fused"]


class NetworkExplanation(Explanation):
    """One training step of a small network; `to_png` draws every parameter, its gradient and its update."""

    def to_png(self, path: str | os.PathLike) -> None:
        """One row per layer: weights (with biases as the last row), their gradients, and the update
        -learning_rate * gradient, as labelled heat maps (4 significant digits)."""
        layers = self["layers"]
        figure = new_figure(14, 0.8 + 2.6 * len(layers))
        axes = figure.subplots(len(layers), 3, squeeze=False)
        titles = ("parameters", "gradient", f"update = -{fmt4(self['learning_rate'])} * gradient")
        for row, (name, values, gradient) in enumerate(layers):
            for axis, title, matrix in zip(
                axes[row], titles, (values, gradient, -self["learning_rate"] * gradient), strict=True
            ):
                limit = float(np.abs(matrix).max()) or 1.0
                axis.imshow(matrix, cmap="coolwarm", vmin=-limit, vmax=limit, alpha=0.5, aspect="auto")
                for (i, j), value in np.ndenumerate(matrix):
                    axis.text(j, i, fmt4(value), ha="center", va="center", fontsize=8)
                axis.set_yticks(range(len(matrix)), [f"w{i}" for i in range(len(matrix) - 1)] + ["b"])
                axis.set_xticks(range(matrix.shape[1]), [f"n{j}" for j in range(matrix.shape[1])])
                axis.set_title(f"{name}: {title}", fontsize=10)
        figure.suptitle(f"one step: loss {fmt4(self['loss'])} -> {fmt4(self['loss_after'])}")
        figure.savefig(path, dpi=100)


@kernels.numpy_only()  # the textbook arithmetic, with no compiler to load
def network(
    X: Any = None, y: Any = None, *, hidden: int = 3, learning_rate: float = 1.0, seed: int = 0
) -> NetworkExplanation:
    """One training step of Dense(2, hidden) -> ReLU -> Dense(hidden, 3) -> softmax + cross-entropy,
    layer by layer: the forward values, the dvalues flowing back, each parameter's gradient and
    the optimizer's (SGD) update, then the loss after the step. By default on 6 spiral points,
    with weights drawn as 0.5 * standard normal from `seed` and zero biases."""
    owner = "explain.network"
    if X is None:  # two points of each class's arm, leaving out the origin where all three arms start
        X, y = spiral_data(3, 3, seed=seed)
        away = np.linalg.norm(X, axis=1) > 0
        X, y = X[away], y[away]
    inputs = float_array(X, F64, "X", owner)
    hidden = whole_number(hidden, "hidden", owner)
    rate = scalar(learning_rate, "learning_rate", owner)
    rng = np.random.default_rng(seed)
    dense1, relu = Dense(inputs.shape[1], hidden, dtype=F64), ReLU()
    dense2, loss = Dense(hidden, 3, dtype=F64), SoftmaxCategoricalCrossentropy()
    for dense in (dense1, dense2):  # larger than the book's 0.01 * randn, so every number is visible
        dense.weights = 0.5 * rng.standard_normal(dense.weights.shape)
    targets = loss.prepare_targets(y, (len(inputs), 3), owner, F64)

    def forward() -> float:
        return loss.forward(dense2.forward(relu.forward(dense1.forward(inputs))), targets)

    mean_loss = forward()
    ex = NetworkExplanation(
        f"One training step: Dense({inputs.shape[1]}, {hidden}) -> ReLU -> Dense({hidden}, 3) -> softmax + "
        f"cross-entropy, {counted(len(inputs), 'sample')}"
    )
    section = "Data"
    ex.add(section, "X", "inputs, one row per sample", inputs)
    ex.add(section, "y", "true classes", np.asarray(targets, dtype=F64))
    section = "Forward pass"
    ex.add(section, "z1", "X @ W1 + b1", dense1.output.copy())
    ex.add(section, "a1", "ReLU(z1)", relu.output.copy())
    ex.add(section, "z2", "a1 @ W2 + b2", dense2.output.copy())
    ex.add(section, "probabilities", "softmax(z2)", loss.output.copy())
    ex.add(section, "loss", "mean(-log p[true class])", mean_loss)
    section = "Backward pass: the dvalues flowing back"
    ex.add(section, "dz2", "(probabilities - onehot) / n", loss.backward(loss.output, targets).copy())
    ex.add(section, "da1", "dz2 @ W2.T", dense2.backward(loss.dinputs).copy())
    ex.add(section, "dz1", "da1 * (z1 > 0)", relu.backward(dense2.dinputs).copy())
    dense1.backward(relu.dinputs)
    section = "Parameter gradients"
    ex.add(section, "dW2", "a1.T @ dz2", dense2.dweights.copy())
    ex.add(section, "db2", "sum(dz2, axis=0)", dense2.dbiases.copy())
    ex.add(section, "dW1", "X.T @ dz1", dense1.dweights.copy())
    ex.add(section, "db1", "sum(dz1, axis=0)", dense1.dbiases.copy())
    section = f"Optimizer step: SGD, parameter -= {fmt(rate)} * gradient"
    layers = []
    for name, dense in (("layer 1", dense1), ("layer 2", dense2)):
        stacked = np.vstack([dense.weights, dense.biases])
        gradient = np.vstack([dense.dweights, dense.dbiases])
        layers.append((name, stacked.copy(), gradient.copy()))
        dense.weights, dense.biases = dense.weights - rate * dense.dweights, dense.biases - rate * dense.dbiases
    ex.add(section, "W1_new", f"W1 - {fmt(rate)} * dW1", dense1.weights.copy())
    ex.add(section, "W2_new", f"W2 - {fmt(rate)} * dW2", dense2.weights.copy())
    ex.add(section, "loss_after", "the same forward pass with the new parameters", forward())
    ex.values.update(layers=layers, learning_rate=rate)
    return ex

"""Notebook display: HTML tables beside the text ones, a picture of the History, short reprs."""

import book_classes as book
import numpy as np

import chainrule as cr
from chainrule.display import html_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_html_tables_escape_their_cells():
    table = html_table(["a", "b"], [("<x>", "1\n2")], caption="c & d")
    assert "&lt;x&gt;" in table and "1<br>2" in table and "c &amp; d" in table


def test_an_explanation_shows_each_section_as_a_table():
    page = cr.explain.neuron([1, -2, 3], [-3, -1, 2], 1)._repr_html_()
    assert "<h4>One neuron" in page and page.count("<table>") == 4 and "5.985" in page


def test_gradcheck_and_compare_results_show_their_verdicts_and_failures():
    inputs = np.random.default_rng(7).standard_normal((5, 4))
    page = cr.gradcheck(book.DenseSummingOverNeurons(4, 3), inputs)._repr_html_()
    assert "FAIL" in page and "dbiases has shape (5, 1)" in page
    assert "ok" in cr.compare(book.Layer_Dense(4, 3), cr.Dense(4, 3, dtype=np.float64), inputs)._repr_html_()


def test_model_history_and_optimizer_show_in_a_notebook():
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    model = cr.Model(seed=0).add(cr.Dense(2, 4)).add(cr.ReLU()).add(cr.Dense(4, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))
    assert (
        repr(model) == "Model(4 layers, 27 parameters, CategoricalCrossentropy, Adam(learning_rate=0.01, decay=0.0, "
        "epsilon=1e-07, beta_1=0.9, beta_2=0.999))"
    )
    assert "Model: 27 parameters" in model._repr_html_()
    history = model.fit(X, y, epochs=30, verbose=0)
    page = history._repr_html_()
    assert page.startswith("<img src='data:image/png;base64,")  # a notebook shows HTML first: the curves lead
    assert "the last 20" in page and page.count("<tr>") == 21
    assert history._repr_png_().startswith(PNG_SIGNATURE)
    assert (
        "iterations" in model.optimizer._repr_html_()
        and "<td style='text-align:left'>30</td>" in model.optimizer._repr_html_()
    )


def test_plain_reprs_are_short():
    assert repr(cr.explain.neuron([1, -2, 3], [-3, -1, 2], 1)).startswith("NeuronExplanation('One neuron")
    result = cr.gradcheck(cr.Tanh(), np.random.default_rng(0).standard_normal((3, 2)))
    assert repr(result).startswith("GradcheckResult(passed=True, max_error=") and len(repr(result)) < 120

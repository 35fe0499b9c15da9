"""The learners' notebooks in examples/notebooks run from top to bottom, as committed (no outputs)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "examples" / "notebooks").glob("*.ipynb"))


def test_there_are_eight_notebooks_stored_without_outputs():
    assert len(NOTEBOOKS) == 8
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        assert all(
            not cell.get("outputs") and not cell.get("execution_count") for cell in cells if cell.cell_type == "code"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_and_writes_nothing_to_stderr(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert outputs
    stderr = [output.get("text", "") for output in outputs if output.get("name") == "stderr"]
    assert stderr == [], stderr  # no warning, no bar in red


def test_a_history_shows_its_curves_first_in_a_notebook(tmp_path):
    cell = nbformat.v4.new_code_cell(
        "import chainrule as cr\n"
        "X, y = cr.datasets.spiral_data(10, 3, seed=0)\n"
        "model = cr.Model(seed=0).add(cr.Dense(2, 4)).add(cr.ReLU()).add(cr.Dense(4, 3)).add(cr.Softmax())\n"
        "model.compile(loss='categorical_crossentropy', optimizer='adam')\n"
        "model.fit(X, y, epochs=5)"
    )
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = notebook.cells[0].outputs
    assert [output.get("name") for output in outputs if output.output_type == "stream"] == []
    (result,) = [output for output in outputs if output.output_type == "execute_result"]
    assert result.data["text/html"].startswith("<img src='data:image/png;base64,")

"""The notebooks are committed executed (a reader on a code host sees their figures) and still run top to bottom on
CPU, offline, as a reader would run them (so they never rot). ``make notebooks`` re-executes and saves them."""

import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import execute  # noqa: E402  (notebooks/execute.py, what `make notebooks` runs)

pytestmark = pytest.mark.slow  # subprocess runs, notebooks, whole-pipeline fits: `make test-fast` skips them


def _figures(notebook: nbformat.NotebookNode) -> int:
    kinds = ("image/png", "image/jpeg")
    return sum(any(k in o.get("data", {}) for k in kinds) for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("name", execute.NOTEBOOKS)
def test_notebook_is_committed_executed_and_still_runs(name, monkeypatch):
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), "run `make notebooks` and commit the outputs"
    assert _figures(committed) > 0
    monkeypatch.delenv("WORLD_R1_RUN", raising=False)  # the TensorBoard notebook trains its own small run
    fresh = execute.execute(NOTEBOOKS / name)  # raises CellExecutionError, with the failing cell, on any error
    assert _figures(fresh) == _figures(committed), "the committed outputs are those of the current code"

"""The notebooks run top to bottom on CPU, offline, as a reader would run them (so they never rot)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["rewards_on_synthetic_videos.ipynb", "tensorboard_curves.ipynb"])
def test_notebook_executes(name, monkeypatch):
    monkeypatch.delenv("WORLD_R1_RUN", raising=False)  # the TensorBoard notebook trains its own small run
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "clear the outputs"
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook should draw its figures"

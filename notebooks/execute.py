"""Run the notebooks top to bottom and save them with their outputs (``make notebooks``).

They are committed executed, so a reader on a code host sees their figures; the first figure of each is also written
to ``notebooks/figures/`` for the README. ``tests/test_notebooks.py`` executes them again on every run.

    python notebooks/execute.py [NAME.ipynb ...]
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("rewards_on_synthetic_videos.ipynb", "tensorboard_curves.ipynb")


def execute(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``, executed in its folder, without the per-cell timestamps (they change every run)."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    return notebook


def first_figure(notebook: nbformat.NotebookNode) -> tuple[bytes, str] | None:
    """The bytes and file suffix of the notebook's first figure (PNG or JPEG), if it draws one."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for kind, suffix in (("image/png", ".png"), ("image/jpeg", ".jpg")):
                if kind in output.get("data", {}):
                    return base64.b64decode(output["data"][kind]), suffix
    return None


def main(names: list[str]) -> None:
    os.environ.pop("WORLD_R1_RUN", None)  # the TensorBoard notebook trains its own small run
    for name in names or NOTEBOOKS:
        path = HERE / name
        notebook = execute(path)
        nbformat.write(notebook, path)
        figure = first_figure(notebook)
        if figure is not None:
            (HERE / "figures").mkdir(exist_ok=True)
            (HERE / "figures" / f"{path.stem}{figure[1]}").write_bytes(figure[0])
        print(f"executed {path}")


if __name__ == "__main__":
    main(sys.argv[1:])

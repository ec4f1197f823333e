"""The package's layering: a module imports only from its own package and the layers below it, never upwards.

An upward import (``world_r1.policy`` reading ``world_r1.data``) is how import cycles and "import this to use that"
surprises begin; the order below is the one the code had when the test was written, each layer depending only on
those before it. Imports inside functions and under ``TYPE_CHECKING`` count too: they are dependencies all the same.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import world_r1
from world_r1.data import load_prompts
from world_r1.prompts import BUILTIN_SETS, prompt_texts

PACKAGE = Path(world_r1.__file__).parent

#: lowest first; the names in one layer are peers, which import none of each other
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: import nothing of world_r1
    ("world_r1", "seeding", "settings", "compat", "video_io", "hub", "prompts", "checkpoint_io"),
    ("console", "geometry", "reconstruction"),  # third-party noise filters (compat); multi-view geometry, 3D scenes
    ("camera",),  # the prompt's camera grammar, paths and noise warping (geometry)
    ("policy",),  # Wan and its LoRA (settings, prompts)
    ("grpo", "rewards", "synthetic"),  # Flow-GRPO on the policy; rewards and test worlds on geometry and camera
    ("sampling", "hparams", "metrics", "data"),  # the run's videos, saved hyper-parameters, statistics, prompt data
    ("module",),  # the LightningModule: policy + grpo + rewards
    ("callbacks",),  # what watches a run of the module
    ("pretrain", "commands"),  # flow-matching training, tool commands
    ("cli",),  # the command line over all of it
    ("__main__", "recipe"),  # the entry point; the release recipe table, which resolves configs with the CLI's parser
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """The layered unit of a module: its top-level package or module under world_r1 (``world_r1`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every world_r1 import of a file, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, target))
    return [(line, target) for line, target in found if target.split(".")[0] == "world_r1"]


def upward_imports() -> list[str]:
    """Every import of a unit in the same layer or above, as ``file:line: a -> b``."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit(module_name(path))
        for line, target in imported_modules(path):
            imported = unit(target)
            if imported != source and LEVEL[imported] >= LEVEL[source]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} -> {imported}")
    return problems


def test_every_unit_has_a_layer():
    units = {unit(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert units - set(LEVEL) == set(), "place the new module or package in LAYERS"
    assert set(LEVEL) - units == set(), "a layered name no longer exists: drop it from LAYERS"


def test_no_module_imports_upwards():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """A policy module importing world_r1.data (the import this test was written against) is reported."""
    (tmp_path / "world_r1" / "policy").mkdir(parents=True)
    (tmp_path / "world_r1" / "policy" / "bad.py").write_text(
        "def words():\n    from world_r1.data import load_prompts\n    from ..module import WorldR1\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "world_r1")
    assert upward_imports() == [
        "world_r1/policy/bad.py:2: policy -> data",
        "world_r1/policy/bad.py:3: policy -> module",
    ]


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_plain_prompt_reader_agrees_with_the_data_module(name):
    """The reader below the layers (the tiny Wan's vocabulary) reads the prompts that load_prompts does."""
    assert prompt_texts(f"builtin:{name}") == [record.text for record in load_prompts(f"builtin:{name}")]


def test_plain_prompt_reader_reads_jsonl_and_names_a_bad_line(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"prompt": " A hall. ", "camera": "orbit left"}) + "\n# note\n\n")
    assert prompt_texts(good) == ["A hall."] == [record.text for record in load_prompts(good)]
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:2: expected a JSON object"):
        prompt_texts(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        prompt_texts(tmp_path / "missing.txt")

"""``python -m benchmarks.validation``: every validation with its default arguments, one after another (``make
validate``; about 15 minutes on 2 CPU cores), each writing its ``default`` result under ``results/validation/``.

``--only rewards path`` runs some of them; each module alone (``python -m benchmarks.validation.rewards --variant
tune``) re-makes its other named results.
"""

from __future__ import annotations

import argparse
import importlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: name -> module, in the order they run (the cheapest first)
VALIDATIONS = {
    "rewards": "benchmarks.validation.rewards",
    "chance": "benchmarks.validation.chance",
    "path": "benchmarks.validation.path",
    "trajectory": "benchmarks.validation.trajectory",
}


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VALIDATIONS), help="run only these validations")
    args = parser.parse_args(argv)
    names = args.only or list(VALIDATIONS)
    for name in names:
        print(f"== python -m {VALIDATIONS[name]}", flush=True)
        importlib.import_module(VALIDATIONS[name]).main([])
    return names


if __name__ == "__main__":
    main()

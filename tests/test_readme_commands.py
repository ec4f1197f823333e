"""Every command the README and docs/ show a user is run here far enough to prove it exists and its flags parse:
each `python -m world_r1 ...` line of their shell blocks with `--print_config` (training subcommands resolve their
whole config; the tools parse their arguments), each `make` target against the Makefile."""

import contextlib
import io
import re
import shlex

import pytest

from tests.helpers import ROOT, run_in_process

pytestmark = pytest.mark.slow  # subprocess runs, notebooks, whole-pipeline fits: `make test-fast` skips them

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = [block for page in PAGES for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]
LINES = [line for block in BLOCKS for line in block.replace("\\\n", " ").splitlines()]
COMMANDS = [shlex.split(line.split("-m world_r1 ", 1)[1], comments=True) for line in LINES if "-m world_r1 " in line]
TARGETS = [line.split()[1] for line in LINES if line.startswith("make ")]


def test_the_readme_shows_commands_of_every_kind():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    shown = {line.split("-m world_r1 ", 1)[1].split()[0] for line in lines if "-m world_r1 " in line}
    assert shown >= {"fit", "validate", "pretrain", "sample", "evaluate", "camera"}
    assert {"demo", "test"} <= {line.split()[1] for line in lines if line.startswith("make ")}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_each_readme_command_exists_and_parses(args, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs/... as the README runs them, from the repository
    args = [a for i, a in enumerate(args) if a != "--ckpt_path" and (i == 0 or args[i - 1] != "--ckpt_path")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_in_process(*args, *([] if "--print_config" in args else ["--print_config"]))
    assert code == 0, f"python -m world_r1 {' '.join(args)}: {code}"
    assert printed.getvalue().strip(), "--print_config printed nothing"


def test_each_readme_make_target_is_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in TARGETS:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target

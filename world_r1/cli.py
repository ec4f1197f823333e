"""Command line: Lightning's subcommands (fit, validate, test) through LightningCLI, plus small tool commands.

python -m world_r1 fit --config configs/wan21.yaml [--trainer.max_steps 10 --model.policy.lora.rank 64 ...]
python -m world_r1 validate --config configs/wan21.yaml --ckpt_path last   # 3D-consistency evaluation of a run
python -m world_r1 tiny --out .cache/tiny-wan [--variant wan2.2-ti2v]   # a tiny random Wan (offline demo, tests)
python -m world_r1 sample --prompts builtin:eval --checkpoint runs/wan21/version_0/checkpoints/last.ckpt --out samples
python -m world_r1 evaluate --videos samples           # score any folder of videos, rich table + JSON/CSV
python -m world_r1 camera "Camera orbit left. A hall." # the camera path a prompt gets, one JSON line per prompt
python -m world_r1 pretrain --config configs/mini_vae.yaml   # flow-matching training of Wan (same flags as fit)
python -m world_r1 smoke [--size 14b]                  # real-size Wan 2.1, random weights: step time, memory, sizes
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace, auto_cli, get_loader, set_loader, set_parsing_settings
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from world_r1.callbacks.interrupt import SaveOnInterrupt
from world_r1.checkpoint_io import CheckedCheckpointIO
from world_r1.commands.camera import camera, positional_prompts
from world_r1.commands.evaluate import evaluate
from world_r1.commands.sample import sample
from world_r1.commands.smoke import smoke
from world_r1.compat import CheckpointAwareCLI
from world_r1.data import PromptDataModule
from world_r1.hparams import upgrade, upgrade_reward
from world_r1.module import WorldR1
from world_r1.policy.tiny import build_tiny_wan
from world_r1.pretrain import ClipDataModule, WanTrainer

# Wan's frozen VAE and text encoder are in eval mode on purpose, and a Flow-GRPO step's checkpoint is meant to hold
# the state after its update; Lightning warns about both.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

#: the parser mode of every training command: omegaconf's YAML, then old reward specs upgraded
PARSER_MODE = "world_r1"


def load_config_text(text: str) -> Any:
    """What jsonargparse's ``omegaconf`` mode loads from ``text`` (YAML, ``${...}`` interpolated within the one file
    or value), with reward terms written before they were renamed upgraded (:func:`~world_r1.hparams.upgrade_reward`):
    old configs and saved ``config.yaml`` files keep loading."""
    from omegaconf import OmegaConf

    plain = get_loader("yaml")(text)
    if plain is None or isinstance(plain, str | int | float | bool):
        return plain
    resolved = OmegaConf.to_object(OmegaConf.load(io.StringIO(text)))
    return upgrade_reward(plain if resolved == {text: None} else resolved)


set_loader(PARSER_MODE, load_config_text, (yaml.YAMLError,))
# `--help` and `--print_config=comments` show each setting's attribute docstring (`x: int = 1` then `"""..."""`)
set_parsing_settings(docstring_parse_attribute_docstrings=True)


class WorldR1CLI(CheckpointAwareCLI):
    """LightningCLI with the omegaconf parser, so YAML can interpolate values (``${model.video.num_frames}``), and
    reward terms of older configs upgraded as they load (:data:`PARSER_MODE`).

    Every run also gets :class:`SaveOnInterrupt` (SIGTERM / Ctrl-C write ``last.ckpt`` between steps) and a checkpoint
    reader that reports an unreadable ``--ckpt_path`` clearly instead of a pickle traceback.
    """

    def __init__(
        self,
        args: list[str] | None = None,
        run: bool = True,
        model_class: type[LightningModule] = WorldR1,
        datamodule_class: type[LightningDataModule] = PromptDataModule,
    ) -> None:
        super().__init__(
            model_class,
            datamodule_class,
            parser_kwargs={"parser_mode": PARSER_MODE},
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"use_distributed_sampler": False},
            args=args,
            run=run,
        )

    def parse_ckpt_path(self) -> None:
        """LightningCLI reads ``--ckpt_path``'s hyper-parameters into the config before the Trainer exists. Its own
        reader uses torch's weights-only unpickler, which refuses the numpy RNG state our checkpoints carry; this one
        reads with :class:`CheckedCheckpointIO` (a truncated or corrupt file gets the clear error) and parses the same
        way (the model class is fixed here, so there is no ``_class_path`` case).

        ``--ckpt_path last`` first becomes the newest ``<default_root_dir>/version_N/checkpoints/last.ckpt``, and the
        run continues in that ``version_N`` folder (unless a ModelCheckpoint names its own ``dirpath``, which
        Lightning searches itself).

        The checkpoint's hyper-parameters replace the config's, except for the ``--model.*`` options of the command
        line, which win (Lightning's own reader lets the checkpoint win, so ``--model.grpo.lr`` on a resume was
        silently ignored): each as far as it reaches, so ``--model.grpo FILE`` restores that whole section from the
        file and ``--model.reward.weights.depth 0`` that one weight."""
        self._resume_version: int | None = None
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path == "last" and not _names_checkpoint_dir(self.config[subcommand]):
            found = latest_run_checkpoint(Path(self.config[subcommand].trainer.default_root_dir or "."))
            if found is not None:
                path, self._resume_version = str(found), run_version(found)
                self.config[subcommand].ckpt_path = path
        if not (path and Path(path).is_file()):
            return
        hparams = upgrade(CheckedCheckpointIO().load_checkpoint(path).get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        given = self.config.clone()
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        for key in model_options(self._args):  # the command line's word on the model wins over the checkpoint's
            if not restore_option(self.config[subcommand], given[subcommand], key):
                warnings.warn(
                    f"--{key} could not be applied over the hyper-parameters of {path}: the run resumes with the "
                    "checkpoint's value. Set it in a config file given with --config, or start a new run.",
                    stacklevel=2,
                )

    def parse_arguments(self, parser, args) -> None:
        """Keeps the command line, whose ``--model.*`` options :meth:`parse_ckpt_path` applies over a checkpoint's."""
        self._args = list(args) if isinstance(args, list | tuple) else (sys.argv[1:] if args is None else [])
        super().parse_arguments(parser, args)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The Trainer, with a TensorBoard logger at ``<default_root_dir>/version_N`` unless the config names another
        logger: every output of a run (events, ``checkpoints/``, ``lora/``, ``eval/``, ``videos/``) goes to that one
        folder, so ``--trainer.default_root_dir`` moves them all and a new run never mixes with an old one."""
        trainer_config = self.config_section(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            root = trainer_config.get("default_root_dir") or "."
            version = getattr(self, "_resume_version", None)
            trainer_config["logger"] = TensorBoardLogger(root, name="", version=version, default_hp_metric=False)
        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(c, SaveOnInterrupt) for c in trainer.callbacks):
            trainer.callbacks.append(SaveOnInterrupt())
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = CheckedCheckpointIO()
        return trainer


def model_options(args: list[str]) -> list[str]:
    """The keys that a command line's ``--model.*`` options set (``--model.grpo.lr=1e-4`` -> ``model.grpo.lr``)."""
    return [arg[2:].split("=")[0] for arg in args if arg == "--model" or arg.startswith(("--model.", "--model="))]


def restore_option(config: Namespace, given: Namespace, key: str) -> bool:
    """Copy the value at ``key`` (as typed: ``model.reward.weights.depth``) from ``given`` into ``config``, which has
    the same layout; the path may pass through a class's ``init_args`` and into dicts. False if either lacks it."""
    *path, leaf = key.split(".")
    source, target = given, config
    for part in path:
        source, target = _child(source, part), _child(target, part)
    source, target = _through_init_args(source, leaf), _through_init_args(target, leaf)
    if not (isinstance(source, Namespace | dict) and leaf in source and isinstance(target, Namespace | dict)):
        return False
    target[leaf] = source[leaf]
    return True


def _child(node: object, part: str) -> object | None:
    """``node[part]`` of a Namespace or dict, looked up through a class's ``init_args``; None if absent."""
    node = _through_init_args(node, part)
    return node[part] if isinstance(node, Namespace | dict) and part in node else None


def _through_init_args(node: object, part: str) -> object:
    """``node["init_args"]`` where ``part`` lives there (jsonargparse stores ``--model.reward.weights`` as
    ``model.reward.init_args.weights``), else ``node``."""
    if isinstance(node, Namespace | dict) and part not in node and "init_args" in node:
        return node["init_args"]
    return node


def latest_run_checkpoint(root: Path) -> Path | None:
    """The newest ``<root>/version_N/checkpoints/last.ckpt`` (what ``--ckpt_path last`` resumes), or None. A run made
    before checkpoints moved into the version folders (``<root>/checkpoints/last.ckpt``) counts too."""
    candidates = [p for p in root.glob("version_*/checkpoints/last.ckpt") if run_version(p) is not None]
    candidates += [p for p in [root / "checkpoints" / "last.ckpt"] if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def run_version(checkpoint: Path) -> int | None:
    """N of a ``version_N/checkpoints/<file>`` checkpoint, whose run a resume continues; None for other layouts."""
    name = checkpoint.parent.parent.name
    return int(name.removeprefix("version_")) if name.startswith("version_") and name[8:].isdigit() else None


def _names_checkpoint_dir(config: Namespace) -> bool:
    """Whether a ModelCheckpoint of the config has its own ``dirpath``."""
    callbacks = config.trainer.get("callbacks") or []
    return any(
        str(c.get("class_path", "")).endswith("ModelCheckpoint") and (c.get("init_args") or {}).get("dirpath")
        for c in callbacks
        if isinstance(c, (dict, Namespace))
    )


#: the Wan configs that became overlays of configs/wan21.yaml (configs/overlays/<name>)
OVERLAYS = (
    "awm.yaml",
    "nft.yaml",
    "wan21_14b.yaml",
    "wan21_i2v.yaml",
    "wan21_sde.yaml",
    "wan22_a14b.yaml",
    "wan22_ti2v_5b.yaml",
    "world_r1_small.yaml",
    "world_r1_large.yaml",
)


def config_files(args: list[str]) -> list[str]:
    """The files a command line gives with ``--config FILE`` or ``--config=FILE``, in order."""
    files = []
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(args):
            files.append(args[i + 1])
    return files


def check_config_files(args: list[str]) -> None:
    """Refuse, naming the command to run, a config that moved into ``configs/overlays/`` and an overlay given without
    a base before it (it holds only what differs: alone it would run with the defaults for everything else)."""
    files = config_files(args)
    for number, name in enumerate(files):
        path = Path(name)
        if path.name in OVERLAYS and not path.exists() and path.parent.name != "overlays":
            overlay = path.parent / "overlays" / path.name
            raise ValueError(
                f"{name} is now an overlay of the base config: run --config {path.parent / 'wan21.yaml'} "
                f"--config {overlay}"
            )
        if number == 0 and path.parent.name == "overlays":
            raise ValueError(
                f"{name} holds only what differs from a base config: give the base first, e.g. "
                f"--config {path.parent.parent / 'wan21.yaml'} --config {name}"
            )


def resolved_config(*configs: str | Path, subcommand: str = "fit") -> dict:
    """The config that ``SUBCOMMAND --config A --config B ... --print_config`` prints, as a dict: the files merged
    by the real parser (later files win; a list or a dict-typed setting given again replaces the earlier one)."""
    args = [subcommand, *(item for config in configs for item in ("--config", str(config))), "--print_config"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightningCLI's note that args were given beside sys.argv
        try:
            WorldR1CLI(args=args)
        except SystemExit as exit_:  # --print_config prints, then exits 0
            if exit_.code not in (None, 0):
                raise
    return yaml.safe_load(printed.getvalue())


def tiny(
    out: str = ".cache/world_r1/tiny-wan", seed: int = 0, overwrite: bool = False, variant: str = "wan2.1-t2v"
) -> None:
    """Write a tiny, randomly initialised Wan (diffusers format, under 1 MiB) for offline demos and tests.

    Args:
        out: directory to write (a normal diffusers model directory: pass it as `--model.policy.model`).
        seed: initialisation seed; the same seed gives the same weights.
        overwrite: replace a model already at `out`.
        variant: which Wan it mirrors: wan2.1-t2v, wan2.1-i2v, wan2.2-ti2v or wan2.2-t2v-a14b.
    """
    print(build_tiny_wan(out, seed=seed, overwrite=overwrite, variant=variant))


TOOLS: dict[str, Callable[..., object]] = {
    "tiny": tiny,
    "sample": sample,
    "evaluate": evaluate,
    "camera": camera,
    "smoke": smoke,
}
TRAINING = {
    "fit": "train a LoRA with Flow-GRPO and the 3D rewards (--config configs/wan21.yaml)",
    "validate": "the held-out 3D-consistency evaluation of a run (--ckpt_path)",
    "test": "the same evaluation on the test prompts",
    "pretrain": "flow-matching training of Wan itself: the mini model, or a LoRA on your videos",
}
DEBUG_VARIABLE = "WORLD_R1_DEBUG"  # set to 1 for the full traceback of a configuration error


def overview() -> str:
    """``python -m world_r1 --help``: every subcommand with one line (Lightning's own help lists only its four)."""
    lines = ["usage: python -m world_r1 SUBCOMMAND [--help] ...", "", "training (LightningCLI: --config, overrides):"]
    lines += [f"  {name:10s} {text}" for name, text in TRAINING.items()]
    lines += ["", "tools:"]
    lines += [f"  {name:10s} {(tool.__doc__ or '').strip().splitlines()[0]}" for name, tool in TOOLS.items()]
    lines += ["", "`python -m world_r1 SUBCOMMAND --help` lists the options of one."]
    return "\n".join(lines)


def user_error(error: BaseException) -> BaseException:
    """The innermost error of a chain: where a bad value was caught, with the sentence that names the key and the fix
    (jsonargparse and Lightning wrap it in errors about union types and instantiation)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m world_r1`` and the ``world-r1`` script; ``argv`` defaults to ``sys.argv[1:]``.

    A bad value (``ValueError``) or a missing file ends with one line naming it; ``WORLD_R1_DEBUG=1`` shows the
    traceback instead.
    """
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(overview())
        return
    if args[0] not in TRAINING and args[0] not in TOOLS:  # Lightning would list only its own four, and `predict`
        sys.exit(f"error: unknown subcommand {args[0]!r}: choose from {', '.join([*TRAINING, *TOOLS])}.")
    try:
        check_config_files(args[1:])
        if args[0] == "pretrain":  # `fit` of the flow-matching trainer: the same flags and conventions
            rest = args[1:] if args[1:2] == ["fit"] else ["fit", *args[1:]]
            WorldR1CLI(rest, model_class=WanTrainer, datamodule_class=ClipDataModule)
        elif args[0] in TOOLS:
            rest = positional_prompts(args[1:]) if args[0] == "camera" else args[1:]
            auto_cli(TOOLS[args[0]], args=rest, as_positional=False)  # every argument named: `--videos DIR`
        else:
            WorldR1CLI(args=argv)  # None: LightningCLI reads sys.argv itself
    except (FileNotFoundError, ValueError) as error:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        sys.exit(f"error: {user_error(error)}\n(set {DEBUG_VARIABLE}=1 for the traceback)")

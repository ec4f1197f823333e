"""Prompts and group sampling: each step draws prompts, repeats each G times, and splits the samples over processes.

A step's samples are a pure function of (seed, step), so every process agrees on them without communication and a
resumed run restarts at exactly the step it stopped at.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from world_r1.camera import RELEASE_PHRASES, CameraParseError, parse_camera, plan_for_prompt
from world_r1.compat import uses_distributed_sampler
from world_r1.policy.conditioning import check_aspect, image_size
from world_r1.prompts import BUILTIN_SETS, builtin_prompt_file
from world_r1.seeding import derive_seed

Phase = Literal["main", "decoupled"]


@dataclass(frozen=True)
class PromptRecord:
    """One prompt; ``camera`` (from a JSONL file) overrides the camera motion the text describes, ``image`` (a path)
    is the first frame of an image-to-video model; ``where`` (``file:line``) locates it for error messages."""

    text: str
    id: int
    camera: str | None = None
    image: str | None = None
    where: str = ""
    image_wh: tuple[int, int] | None = None  # (width, height) of ``image``, read once when the file is loaded


def _resolve(path: str | os.PathLike) -> Path:
    text = str(path)
    return builtin_prompt_file(text.removeprefix("builtin:")) if text.startswith("builtin:") else Path(text)


def load_prompts(path: str | os.PathLike) -> list[PromptRecord]:
    """Read prompts from ``.txt`` (one per line; blank lines and ``#`` comments skipped) or ``.jsonl``
    (objects with ``"prompt"`` and optional ``"camera"`` and ``"image"``: a picture's path, relative to the prompt
    file's folder unless absolute, checked here to exist and be readable). ``builtin:NAME`` names a shipped set:
    train, dynamic, eval, mini_train, mini_eval."""
    file = _resolve(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"Prompt file {file} not found: pass a .txt/.jsonl path or builtin:{'|'.join(BUILTIN_SETS)}."
        )
    if file.suffix not in (".txt", ".jsonl"):
        raise ValueError(f"Prompt file {file} must end in .txt (one prompt a line) or .jsonl ({{'prompt': ...}}).")
    records: list[PromptRecord] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{file}:{number}"
        if file.suffix == ".txt":
            records.append(PromptRecord(line, len(records), where=where))
            continue
        try:
            item = json.loads(line)
            text, camera, image = item["prompt"], item.get("camera"), item.get("image")
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f'{where}: expected a JSON object with a "prompt" field ({error}).') from error
        if (
            not isinstance(text, str)
            or not text.strip()
            or not all(v is None or isinstance(v, str) for v in (camera, image))
        ):
            raise ValueError(f'{where}: "prompt" must be a non-empty string, "camera" and "image" strings.')
        if camera is not None:
            try:
                parse_camera(camera)  # an explicit camera motion must be understood: fail before any model loads
            except CameraParseError as error:
                raise ValueError(f'{where}: "camera": {error}') from error
        size = None
        if image is not None:
            image = str(file.parent / Path(image).expanduser())  # an absolute path stays as it is
            try:
                size = image_size(image)  # exists and is a picture: fail before any model loads
            except (FileNotFoundError, ValueError) as error:
                raise ValueError(f'{where}: "image": {error}') from error
        records.append(PromptRecord(text.strip(), len(records), camera, image, where, size))
    if not records:
        raise ValueError(f"Prompt file {file} holds no prompts: add one prompt per line.")
    return records


@dataclass(frozen=True)
class PhaseSchedule:
    """World-R1's periodic decoupled training: after every ``main_steps`` steps, ``decoupled_steps`` steps on the
    second prompt set with the decoupled reward weights (0 disables it)."""

    main_steps: int = 100
    decoupled_steps: int = 0

    def __post_init__(self) -> None:
        if self.main_steps < 1 or self.decoupled_steps < 0:
            raise ValueError("main_steps must be >= 1 and decoupled_steps >= 0.")

    def phase(self, step: int) -> Phase:
        """Which phase global step ``step`` belongs to."""
        return "main" if step % (self.main_steps + self.decoupled_steps) < self.main_steps else "decoupled"

    def local_step(self, step: int) -> int:
        """Index of ``step`` among the steps of its own phase (each phase's prompt stream advances on its own)."""
        cycle, offset = divmod(step, self.main_steps + self.decoupled_steps)
        if offset < self.main_steps:
            return cycle * self.main_steps + offset
        return cycle * self.decoupled_steps + offset - self.main_steps


class GroupBatchSampler:
    """Yields, for steps ``start_step, start_step + 1, ...``, this process's share of the step's samples.

    Step ``s`` draws ``prompts_per_step`` prompts (a seeded permutation of the set per pass, so every prompt comes
    before any repeats), expands each to ``group_size`` samples, and process ``rank`` takes the contiguous slice
    ``[rank * n, (rank + 1) * n)`` of the ``prompts_per_step * group_size`` samples. Items are
    ``(phase, step, prompt_index, group_id, sample_id)`` with globally unique group and sample ids.
    """

    def __init__(
        self,
        set_sizes: dict[Phase, int],
        group_size: int,
        prompts_per_step: int,
        schedule: PhaseSchedule,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        total = prompts_per_step * group_size
        if total % world_size:
            raise ValueError(
                f"prompts_per_step * group_size = {total} samples per step cannot be split evenly over {world_size} "
                "processes: make it a multiple of the number of processes."
            )
        self.set_sizes = set_sizes
        self.group_size = group_size
        self.prompts_per_step = prompts_per_step
        self.schedule = schedule
        self.seed = seed
        self.rank = rank
        self.per_rank = total // world_size
        self.start_step = start_step

    def prompts_of_step(self, step: int) -> tuple[Phase, list[int]]:
        """The phase of ``step`` and the prompt indices (into that phase's set) it draws."""
        phase = self.schedule.phase(step)
        size = self.set_sizes[phase]
        first = self.schedule.local_step(step) * self.prompts_per_step
        indices = []
        for position in range(first, first + self.prompts_per_step):
            epoch, offset = divmod(position, size)
            generator = torch.Generator().manual_seed(derive_seed(self.seed, f"prompts-{phase}", epoch))
            indices.append(int(torch.randperm(size, generator=generator)[offset]))
        return phase, indices

    def __iter__(self) -> Iterator[list[tuple]]:
        step = self.start_step
        while True:
            phase, indices = self.prompts_of_step(step)
            items = []
            for k in range(self.rank * self.per_rank, (self.rank + 1) * self.per_rank):
                group, _ = divmod(k, self.group_size)
                items.append((phase, step, indices[group], step * self.prompts_per_step + group, k))
            yield items
            step += 1


class _PromptSets:
    """Map-style view the DataLoader indexes with the sampler's items."""

    def __init__(self, sets: dict[Phase, list[PromptRecord]]) -> None:
        self.sets = sets

    def __getitem__(self, item: tuple) -> tuple:
        phase, step, index, group_id, sample_id = item
        record = self.sets[phase][index]
        return phase, step, record, group_id, sample_id


def collate_group(items: list[tuple]) -> dict:
    """A step's samples as one batch: prompts, cameras, images, prompt/group/sample ids, phase and step."""
    phases = {phase for phase, *_ in items}
    steps = {step for _, step, *_ in items}
    assert len(phases) == len(steps) == 1, "a batch holds exactly one step"
    return {
        "prompts": [record.text for _, _, record, _, _ in items],
        "cameras": [record.camera for _, _, record, _, _ in items],
        "images": [record.image for _, _, record, _, _ in items],
        "prompt_ids": torch.tensor([record.id for _, _, record, _, _ in items]),
        "group_ids": torch.tensor([group for *_, group, _ in items]),
        "sample_ids": torch.tensor([sample for *_, sample in items]),
        "phase": phases.pop(),
        "step": steps.pop(),
    }


class PromptDataModule(L.LightningDataModule):
    """Training prompts in groups of G (a group may span processes), a decoupled-phase set, and held-out prompts.

    The Trainer must run with ``use_distributed_sampler: false`` (the CLI sets it): this module already gives each
    process its own slice of every step. On resume it restarts at the number of steps the trainer completed.
    """

    def __init__(
        self,
        train_prompts: str = "builtin:train",
        decoupled_prompts: str | None = "builtin:dynamic",
        eval_prompts: str | list[str] = "builtin:eval",
        group_size: int = 8,
        prompts_per_step: int = 2,
        main_steps: int = 100,
        decoupled_steps: int = 0,
        num_eval_prompts: int | None = None,
        seed: int = 0,
    ) -> None:
        """
        Args:
            train_prompts: .txt/.jsonl file of training prompts, or builtin:train.
            decoupled_prompts: prompts of the decoupled phase (dynamic scenes), or None.
            eval_prompts: held-out prompts for evaluation: a file, or a list of files evaluated together (World-R1:
                its test prompts and its dynamic ones).
            group_size: G, samples per prompt; advantages are computed within each group.
            prompts_per_step: distinct prompts per step over all processes (groups per step).
            main_steps: steps of the main phase before each decoupled phase.
            decoupled_steps: steps of each decoupled phase (0: no decoupled training).
            num_eval_prompts: use only the first N evaluation prompts (None: all).
            seed: seeds the order prompts are drawn in.
        """
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size={group_size}: GRPO compares samples within a group, so it needs G >= 2.")
        if prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {prompts_per_step}.")
        if decoupled_steps > 0 and not decoupled_prompts:
            raise ValueError("decoupled_steps > 0 needs decoupled_prompts (e.g. builtin:dynamic).")
        self.train_prompts = train_prompts
        self.decoupled_prompts = decoupled_prompts
        self.eval_prompts = eval_prompts
        self.group_size = group_size
        self.prompts_per_step = prompts_per_step
        self.schedule = PhaseSchedule(main_steps, decoupled_steps)
        self.num_eval_prompts = num_eval_prompts
        self.seed = seed
        self._sets: dict[Phase, list[PromptRecord]] = {}

    def prompt_sets(self) -> dict[Phase, list[PromptRecord]]:
        """The training sets by phase (read once; errors about the files surface here, before any model loads)."""
        if not self._sets:
            self._sets["main"] = load_prompts(self.train_prompts)
            if self.schedule.decoupled_steps > 0:
                self._sets["decoupled"] = load_prompts(self.decoupled_prompts)
        return self._sets

    def eval_records(self) -> list[PromptRecord]:
        """The held-out prompts (the first ``num_eval_prompts``), of every file of ``eval_prompts`` in turn, numbered
        through (a prompt's number seeds its evaluation noise)."""
        files = [self.eval_prompts] if isinstance(self.eval_prompts, str) else list(self.eval_prompts)
        if not files:
            raise ValueError("data.eval_prompts is an empty list: name at least one prompt file (e.g. builtin:eval).")
        records: list[PromptRecord] = []
        for file in files:
            records += [replace(record, id=len(records) + i) for i, record in enumerate(load_prompts(file))]
        return records[: self.num_eval_prompts]

    def check_cameras(self) -> None:
        """Raise, naming the file and the fix, if no training prompt gives a camera: camera conditioning on, and
        nothing to condition (World-R1's prompts open with a camera sentence)."""
        records = self.prompt_sets()["main"]
        if not any(plan_for_prompt(r.text, r.camera).has_camera for r in records):
            raise ValueError(
                f"No prompt of data.train_prompts ({self.train_prompts}) names a camera, yet model.camera.enabled is "
                f"true: open prompts with a camera sentence using World-R1's phrases ({', '.join(RELEASE_PHRASES)}), "
                'e.g. "Camera push in, then pan left. <scene>", or set model.camera.enabled: false.'
            )

    def records(self) -> list[PromptRecord]:
        """Every prompt the data module serves: the training sets and the held-out prompts."""
        return [r for records in self.prompt_sets().values() for r in records] + self.eval_records()

    def check_images(self, height: int, width: int, takes_images: bool, needs_images: bool) -> None:
        """Raise, naming the prompt file line, if the prompts' images do not suit the model and the video size: an
        image for a text-only model, a prompt without one for an image-to-video model, or an image of another aspect
        ratio than the ``width`` x ``height`` videos."""
        for record in self.records():
            if record.image is None:
                if needs_images:
                    raise ValueError(
                        f'{record.where}: this image-to-video Wan needs an image for every prompt: add "image": '
                        '"path/to/first_frame.png" to the line (a .jsonl prompt file).'
                    )
                continue
            if not takes_images:
                raise ValueError(
                    f"{record.where}: the prompt has an image but this Wan is text-to-video only: remove the images "
                    "or use an image-to-video model (Wan2.1-I2V-14B, Wan2.2-TI2V-5B)."
                )
            problem = check_aspect(record.image_wh, height, width)
            if problem:
                raise ValueError(f"{record.where}: image {record.image} {problem}.")

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.prompt_sets()

    def _start_step(self) -> int:
        """The first step to draw: the module's count of completed training steps, restored from a checkpoint.

        Not Lightning's batch progress: a checkpoint written at the end of a step (every ModelCheckpoint and interrupt
        save) holds that step's update but not yet its completion in the loop counters, so resuming from those would
        replay the step on already-updated weights.
        """
        trainer = self.trainer
        if trainer is None or trainer.lightning_module is None:
            return 0
        return int(getattr(trainer.lightning_module, "steps_done", 0))

    def _rank_and_world(self) -> tuple[int, int]:
        """This process's rank and the number of processes; the data module splits its data over them itself."""
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        if trainer.world_size > 1 and uses_distributed_sampler(trainer):
            raise ValueError(
                "PromptDataModule splits prompts over processes itself: set trainer.use_distributed_sampler: false."
            )
        return trainer.global_rank, trainer.world_size

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        sets = self.prompt_sets()
        sampler = GroupBatchSampler(
            {phase: len(records) for phase, records in sets.items()},
            self.group_size,
            self.prompts_per_step,
            self.schedule,
            self.seed,
            rank,
            world,
            self._start_step(),
        )
        return DataLoader(_PromptSets(sets), batch_sampler=sampler, collate_fn=collate_group, num_workers=0)

    def eval_dataloader(self, rank: int, world: int, batch_size: int) -> DataLoader:
        """Process ``rank``'s share of the held-out prompts (:func:`shard_records`) in batches of ``batch_size``,
        each with ``prompts``, ``cameras``, ``images``, ``prompt_ids`` and ``weights`` (0 marks a repeated prompt)."""
        return DataLoader(
            shard_records(self.eval_records(), rank, world), batch_size=batch_size, collate_fn=_collate_eval
        )

    def val_dataloader(self) -> DataLoader:
        """The held-out prompts, sharded over processes exactly as fit-time evaluation shards them."""
        return self.eval_dataloader(*self._rank_and_world(), batch_size=self.prompts_per_step)

    test_dataloader = val_dataloader


def shard_records(records: list[PromptRecord], rank: int, world: int) -> list[tuple[PromptRecord, float]]:
    """Process ``rank``'s prompts, each with a weight: prompt ``p`` goes to rank ``p % world``; ranks with one prompt
    fewer repeat one with weight 0, so every process runs the same number of batches and syncs the same metrics."""
    positions = [rank + world * k for k in range(math.ceil(len(records) / world))]
    return [(records[p % len(records)], float(p < len(records))) for p in positions]


def _collate_eval(items: list[tuple[PromptRecord, float]]) -> dict:
    return {
        "prompts": [r.text for r, _ in items],
        "cameras": [r.camera for r, _ in items],
        "images": [r.image for r, _ in items],
        "prompt_ids": torch.tensor([r.id for r, _ in items]),
        "weights": torch.tensor([w for _, w in items]),
    }

"""Captioned video clips from a folder: the training data for fine-tuning Wan (flow matching) on a user's own videos.

The folder is indexed once, at construction (every caption checked, every video's frame count probed), so a bad
folder fails with a message that names the file and the fix before any model loads, never deep inside a DataLoader
worker. ``__getitem__`` then only decodes the frames of one clip.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from world_r1.seeding import derive_seed
from world_r1.video_io import VIDEO_SUFFIXES

#: Keys a caption JSONL line may name its video with, and its caption with (HF datasets and other fine-tuners).
FILE_KEYS: tuple[str, ...] = ("file", "file_name", "video")
TEXT_KEYS: tuple[str, ...] = ("text", "caption", "prompt")
METADATA_NAME = "metadata.jsonl"
_SHOWN = 5  # files named in a message before "... and N more"
_PROBE_TIMEOUT_S = 120


def _some(names: list[str]) -> str:
    """The first few names and how many more: messages stay short for folders of thousands of videos."""
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _caption_help(root: Path) -> str:
    return (
        f"Give each video a caption: a sidecar text file next to it (clip.mp4 -> clip.txt), or a line "
        f'{{"file": "clip.mp4", "text": "..."}} (path relative to the folder) in {root / METADATA_NAME}.'
    )


def probe_frame_count(path: Path) -> int:
    """Number of frames of a video, cheaply: GIFs through PIL, the rest by counting the packets of the first video
    stream with ffmpeg without decoding them (~15 ms for a short clip, ~75 ms for 15 s of 480p; decoding takes ~7x).

    Raises:
        ValueError: the file cannot be opened, has no video stream or holds no frames; the reason in the message.
    """
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as image:
                count = int(getattr(image, "n_frames", 1))
        except Exception as error:  # PIL raises many types for corrupt files
            raise ValueError(f"{error.__class__.__name__}: {error}") from error
    else:
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
        command += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
        try:
            result = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise ValueError(f"ffmpeg took over {_PROBE_TIMEOUT_S} s to scan it") from error
        log = result.stderr.decode(errors="ignore")
        counts = re.findall(r"frame=\s*(\d+)", log)
        if result.returncode != 0 or not counts:
            lines = [line for line in log.splitlines() if line.strip()]
            raise ValueError(f"ffmpeg cannot read it: {lines[-1] if lines else f'exit code {result.returncode}'}")
        count = int(counts[-1])
    if count < 1:
        raise ValueError("it holds no frames")
    return count


class VideoFolder(Dataset):
    """Clips of ``num_frames`` frames (every ``frame_stride``-th) with their captions, from the videos under ``root``.

    Videos are the files under ``root`` (recursively, hidden files and folders excluded) whose suffix is in
    ``VIDEO_SUFFIXES``. A video's caption is its line in the caption JSONL (``captions``, else ``root/metadata.jsonl``
    if present), else the sidecar ``name.txt`` next to it. JSONL lines are objects naming the video, relative to
    ``root``, by ``"file"``/``"file_name"``/``"video"`` and the caption by ``"text"``/``"caption"``/``"prompt"``.

    Videos too short for one clip, and files that cannot be read, are skipped and listed in ``skipped`` (reasons
    ``"too_short"`` and ``"unreadable"``, paths relative to ``root``) with one warning per reason.

    A clip starts at frame 0 or, with ``random_start`` and a longer video, at a start drawn from ``(seed, file)``:
    the same clip on every epoch, worker and process. Frames are resized so the short side covers the target and
    centre-cropped, keeping the aspect ratio.

    Items: ``{"video": (num_frames, 3, height, width) float32 in [0, 1], "prompt": str}``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        num_frames: int = 9,
        height: int = 128,
        width: int = 128,
        frame_stride: int = 1,
        captions: str | os.PathLike | None = None,
        random_start: bool = True,
        seed: int = 0,
    ) -> None:
        if num_frames < 1 or (num_frames - 1) % 4:
            fix = 4 * max(0, round((num_frames - 1) / 4)) + 1
            raise ValueError(f"num_frames={num_frames} is not of the form 4k+1 that Wan's VAE needs; use e.g. {fix}.")
        for name, value in (("height", height), ("width", width)):
            if value < 16 or value % 16:
                raise ValueError(
                    f"{name}={value} is not a positive multiple of 16; use e.g. {max(16, round(value / 16) * 16)}."
                )
        if frame_stride < 1:
            raise ValueError(f"frame_stride={frame_stride} must be >= 1 (1 takes consecutive frames).")
        self.root = Path(root)
        self.num_frames, self.height, self.width, self.frame_stride = num_frames, height, width, frame_stride
        self.random_start, self.seed = random_start, seed
        self.span = (num_frames - 1) * frame_stride + 1  # frames of the source one clip covers

        if not self.root.is_dir():
            raise FileNotFoundError(f"Video folder {self.root} does not exist or is not a folder.")
        videos = self._scan()
        captions_file = Path(captions) if captions is not None else self.root / METADATA_NAME
        if captions is not None and not captions_file.is_file():
            raise FileNotFoundError(f"Caption file {captions_file} not found: pass a .jsonl file or None.")
        self.captions_file: Path | None = captions_file if captions_file.is_file() else None
        prompts = self._captions(videos)

        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:  # waits on ffmpeg processes
            probes = list(pool.map(self._probe, videos))
        self.skipped: dict[str, list[str]] = {"unreadable": [], "too_short": []}
        reasons: list[str] = []
        self.files: list[Path] = []
        self.prompts: list[str] = []
        self.frame_counts: list[int] = []
        for video, prompt, probe in zip(videos, prompts, probes, strict=True):
            relative = video.relative_to(self.root).as_posix()
            if isinstance(probe, str):
                self.skipped["unreadable"].append(relative)
                reasons.append(f"{relative}: {probe}")
            elif probe < self.span:
                self.skipped["too_short"].append(relative)
            else:
                self.files.append(video)
                self.prompts.append(prompt)
                self.frame_counts.append(probe)
        self._report_skipped(reasons)

    def _scan(self) -> list[Path]:
        """Video files under the root in sorted order (a stable index on every machine)."""
        videos = sorted(
            path
            for path in self.root.rglob("*")
            if path.suffix.lower() in VIDEO_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
            and path.is_file()
        )
        if not videos:
            raise ValueError(
                f"Video folder {self.root} holds no videos: put files ending in {', '.join(VIDEO_SUFFIXES)} under "
                f"it (sub-folders are searched). {_caption_help(self.root)}"
            )
        return videos

    def _captions(self, videos: list[Path]) -> list[str]:
        """Each video's caption: its JSONL line, else its sidecar ``.txt``; every problem raised with the fix."""
        from_jsonl = self._read_jsonl(videos) if self.captions_file is not None else {}
        prompts: list[str | None] = []
        for video in videos:
            if video in from_jsonl:
                prompts.append(from_jsonl[video])
                continue
            sidecar = video.with_suffix(".txt")
            if not sidecar.is_file():
                prompts.append(None)
                continue
            text = sidecar.read_text(encoding="utf-8").strip()
            if not text:
                raise ValueError(f"Caption file {sidecar} is empty: write the caption of {video.name} into it.")
            prompts.append(text)
        pairs = zip(videos, prompts, strict=True)
        missing = [video.relative_to(self.root).as_posix() for video, prompt in pairs if prompt is None]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(videos)} videos under {self.root} have no caption: {_some(missing)}. "
                + _caption_help(self.root)
            )
        return [prompt for prompt in prompts if prompt is not None]

    def _read_jsonl(self, videos: list[Path]) -> dict[Path, str]:
        """Captions of the JSONL file by video path; a malformed line or one naming no known video is an error."""
        assert self.captions_file is not None
        known = {video.resolve(): video for video in videos}
        found: dict[Path, str] = {}
        first_line: dict[Path, int] = {}
        lines = self.captions_file.read_text(encoding="utf-8").splitlines()
        expected = (
            f'a JSON object like {{"file": "clip.mp4", "text": "..."}} (file key one of {FILE_KEYS}, '
            f"text key one of {TEXT_KEYS})"
        )
        for number, line in enumerate(lines, start=1):
            where = f"{self.captions_file}:{number}"
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error}); expected {expected}.") from error
            file = next((item[key] for key in FILE_KEYS if key in item), None) if isinstance(item, dict) else None
            text = next((item[key] for key in TEXT_KEYS if key in item), None) if isinstance(item, dict) else None
            if not isinstance(file, str) or not isinstance(text, str):
                raise ValueError(f"{where}: expected {expected}, got {line.strip()[:200]}.")
            path = self.root / file
            if not path.is_file():
                raise ValueError(
                    f"{where}: names {file!r}, but {path} does not exist: fix the path (relative to {self.root}) "
                    "or delete the line."
                )
            video = known.get(path.resolve())
            if video is None:
                raise ValueError(
                    f"{where}: names {file!r}, which is not a video under {self.root} (suffixes "
                    f"{', '.join(VIDEO_SUFFIXES)}, hidden files excluded): fix the path or delete the line."
                )
            if video in found:
                raise ValueError(f"{where}: {file!r} already has a caption on line {first_line[video]}: keep one.")
            if not text.strip():
                raise ValueError(f"{where}: the caption of {file!r} is empty: write one.")
            found[video], first_line[video] = text.strip(), number
        return found

    @staticmethod
    def _probe(video: Path) -> int | str:
        """Frame count, or the reason the file is unreadable (a string): never raises, so one bad file skips."""
        try:
            return probe_frame_count(video)
        except ValueError as error:
            return str(error)

    def _report_skipped(self, reasons: list[str]) -> None:
        """One warning per skip reason; an error when nothing is left."""
        messages = []
        if self.skipped["unreadable"]:
            messages.append(
                f"{len(self.skipped['unreadable'])} unreadable video(s) under {self.root} skipped: {_some(reasons)}. "
                "Re-encode them (e.g. ffmpeg -i in.mov -c:v libx264 -pix_fmt yuv420p out.mp4) or delete them."
            )
        if self.skipped["too_short"]:
            messages.append(
                f"{len(self.skipped['too_short'])} video(s) under {self.root} shorter than the {self.span} frames one "
                f"clip needs (num_frames={self.num_frames}, frame_stride={self.frame_stride}) skipped: "
                f"{_some(self.skipped['too_short'])}. Lower num_frames or frame_stride to use them."
            )
        if not self.files:
            raise ValueError("No usable video left. " + " ".join(messages))
        for message in messages:
            warnings.warn(message, stacklevel=3)

    def __len__(self) -> int:
        return len(self.files)

    def clip_indices(self, index: int) -> list[int]:
        """Frame indices (into the source video) of item ``index``'s clip: ``num_frames`` of them, ``frame_stride``
        apart, from a start that depends only on ``(seed, file)``."""
        count = self.frame_counts[index]
        start = 0
        if self.random_start and count > self.span:
            key = self.files[index].relative_to(self.root).as_posix()
            start = random.Random(derive_seed(self.seed, f"video-folder-start:{key}")).randint(0, count - self.span)
        return list(range(start, start + self.span, self.frame_stride))

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 -> ``(height, width, 3)`` uint8: scale so the short side covers the target (aspect
        kept), centre-crop; one PIL resample over the crop box (antialiased when shrinking)."""
        source_h, source_w = frame.shape[:2]
        scale = max(self.width / source_w, self.height / source_h)
        box_w, box_h = self.width / scale, self.height / scale
        left, top = (source_w - box_w) / 2, (source_h - box_h) / 2
        image = Image.fromarray(frame)
        box = (left, top, left + box_w, top + box_h)
        return np.asarray(image.resize((self.width, self.height), Image.Resampling.BICUBIC, box=box))

    def __getitem__(self, index: int) -> dict:
        """``{"video": (num_frames, 3, height, width) float32 in [0, 1], "prompt": str}``.

        Raises:
            RuntimeError: the file indexed fine but cannot be decoded now, or holds fewer frames than indexed.
        """
        file = self.files[index]
        wanted = self.clip_indices(index)
        frames: list[np.ndarray] = []
        reader = None
        decoded = 0
        try:
            reader = imageio.get_reader(file)
            for number, frame in enumerate(reader):  # sequential decoding: exact frame numbers, even at variable fps
                decoded = number + 1
                if number == wanted[len(frames)]:
                    array = np.asarray(frame)
                    array = np.repeat(array[..., None], 3, axis=-1) if array.ndim == 2 else array[..., :3]
                    frames.append(self._fit(np.ascontiguousarray(array)))
                    if len(frames) == len(wanted):
                        break
        except Exception as error:  # imageio raises many types for corrupt files
            reason = (str(error).splitlines() or [""])[0]  # ffmpeg appends pages of build details
            raise RuntimeError(
                f"Cannot decode video {file} (it indexed fine): {error.__class__.__name__}: {reason}. "
                "Re-encode or delete it and rebuild the dataset."
            ) from error
        finally:
            if reader is not None:
                reader.close()
        if len(frames) < len(wanted):
            raise RuntimeError(
                f"Video {file} ended after {decoded} frames, but indexing counted {self.frame_counts[index]} and the "
                f"clip needs frame {wanted[-1]}: the file changed since indexing or its container miscounts frames. "
                "Re-encode it (ffmpeg -i in -c:v libx264 -pix_fmt yuv420p out.mp4) and rebuild the dataset."
            )
        video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        return {"video": video.contiguous(), "prompt": self.prompts[index]}

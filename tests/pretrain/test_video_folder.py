"""VideoFolder: captions from sidecars and JSONL, clip shape/crop/stride/determinism, and every bad input's message."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from world_r1.pretrain.video_folder import VideoFolder
from world_r1.video_io import encode_gif, write_mp4


def _write(root: Path, name: str, frames: int = 12, caption: str | None = "a clip", video: torch.Tensor | None = None):
    """A tiny ``(frames, 3, 40, 56)`` random video as mp4 or GIF (by suffix), with a sidecar caption unless None."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if video is None:
        video = torch.rand(frames, 3, 40, 56, generator=torch.Generator().manual_seed(len(name) + frames))
    if path.suffix == ".gif":
        path.write_bytes(encode_gif(video, fps=8))
    else:
        write_mp4(path, video, fps=8)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_sidecar_captions_shapes_range_and_collate(tmp_path):
    _write(tmp_path, "a.mp4", caption="a red car")
    _write(tmp_path, "sub/b.gif", caption="  a blue boat  ")
    data = VideoFolder(tmp_path, num_frames=9, height=32, width=48)
    assert len(data) == 2 and data.prompts == ["a red car", "a blue boat"]
    assert data.frame_counts == [12, 12] and data.skipped == {"unreadable": [], "too_short": []}
    for item in (data[0], data[1]):
        assert item["video"].shape == (9, 3, 32, 48) and item["video"].dtype == torch.float32
        assert item["video"].min() >= 0.0 and item["video"].max() <= 1.0 and item["video"].std() > 0.1
    batch = default_collate([data[0], data[1]])
    assert batch["video"].shape == (2, 9, 3, 32, 48) and batch["prompt"] == ["a red car", "a blue boat"]


@pytest.mark.parametrize(("file_key", "text_key"), [("file", "text"), ("file_name", "caption"), ("video", "prompt")])
def test_metadata_jsonl_keys_win_over_sidecars(tmp_path, file_key, text_key):
    _write(tmp_path, "clips/a.mp4", caption="sidecar text")
    _write(tmp_path, "b.mp4", caption="only a sidecar")
    _jsonl(tmp_path / "metadata.jsonl", [{file_key: "clips/a.mp4", text_key: " from jsonl "}, ""])
    data = VideoFolder(tmp_path, num_frames=5, height=16, width=16)
    assert [f.name for f in data.files] == ["b.mp4", "a.mp4"]  # sorted: "b.mp4" < "clips/..."
    assert data.prompts == ["only a sidecar", "from jsonl"] and data.captions_file == tmp_path / "metadata.jsonl"


def test_captions_argument_names_a_jsonl_elsewhere(tmp_path):
    root = tmp_path / "videos"
    _write(root, "a.mp4", caption=None)
    captions = _jsonl(tmp_path / "caps.jsonl", [{"file": "./a.mp4", "text": "given elsewhere"}])
    assert VideoFolder(root, num_frames=5, height=16, width=16, captions=captions).prompts == ["given elsewhere"]
    with pytest.raises(FileNotFoundError, match=r"nothere\.jsonl"):
        VideoFolder(root, captions=tmp_path / "nothere.jsonl")


def test_resize_covers_then_centre_crops(tmp_path):
    """40x56 frames into 32x32: scale 0.8 then crop the middle 40 source columns; the red/blue edge bands fall out."""
    video = torch.zeros(12, 3, 40, 56)
    video[:, 1] = 1.0  # green
    video[:, :, :, :4] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # red left band
    video[:, :, :, 52:] = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)  # blue right band
    _write(tmp_path, "bands.mp4", video=video)
    for size in (32, 64):  # shrinking and enlarging
        clip = VideoFolder(tmp_path, num_frames=5, height=size, width=size)[0]["video"]
        assert clip.shape == (5, 3, size, size)
        assert clip[:, 1].min() > 0.8 and clip[:, 0].max() < 0.2 and clip[:, 2].max() < 0.2
    wide = VideoFolder(tmp_path, num_frames=5, height=16, width=112)[0]["video"]  # crops rows, keeps all columns
    assert wide[:, 0, :, :2].mean() > 0.7 and wide[:, 2, :, -2:].mean() > 0.7


def test_frame_stride_takes_every_kth_frame(tmp_path):
    levels = torch.tensor([20 + 18 * k for k in range(12)]) / 255.0
    _write(tmp_path, "ramp.mp4", video=levels.view(12, 1, 1, 1).expand(12, 3, 40, 56).clone())
    data = VideoFolder(tmp_path, num_frames=5, height=16, width=16, frame_stride=2, random_start=False)
    assert data.clip_indices(0) == [0, 2, 4, 6, 8]
    means = data[0]["video"].mean(dim=(1, 2, 3))
    torch.testing.assert_close(means, levels[[0, 2, 4, 6, 8]], atol=0.02, rtol=0)


def test_random_start_is_deterministic_and_in_range(tmp_path):
    for k in range(4):
        _write(tmp_path, f"v{k}.mp4", frames=12)
    data = VideoFolder(tmp_path, num_frames=5, height=16, width=16, seed=1)
    again = VideoFolder(tmp_path, num_frames=5, height=16, width=16, seed=1)
    starts = [data.clip_indices(i)[0] for i in range(4)]
    assert starts == [again.clip_indices(i)[0] for i in range(4)] and all(0 <= s <= 7 for s in starts)
    torch.testing.assert_close(data[2]["video"], again[2]["video"], atol=0, rtol=0)
    seeds = [
        [VideoFolder(tmp_path, num_frames=5, height=16, width=16, seed=s).clip_indices(i)[0] for i in range(4)]
        for s in (2, 3)
    ]
    assert any(starts != other for other in seeds)  # another seed moves some clip
    fixed = VideoFolder(tmp_path, num_frames=5, height=16, width=16, random_start=False)
    assert all(fixed.clip_indices(i) == [0, 1, 2, 3, 4] for i in range(4))


def test_empty_folder_names_folder_suffixes_and_captions(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    _write(tmp_path, ".hidden/x.mp4")  # hidden folders are not searched
    with pytest.raises(ValueError, match="holds no videos") as error:
        VideoFolder(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and ".mp4" in message and ".gif" in message
    assert "clip.txt" in message and "metadata.jsonl" in message
    with pytest.raises(FileNotFoundError, match="missing"):
        VideoFolder(tmp_path / "missing")


def test_missing_caption_names_files_and_fix(tmp_path):
    _write(tmp_path, "captioned.mp4")
    for k in range(7):
        _write(tmp_path, f"nocap{k}.gif", frames=6, caption=None)
    with pytest.raises(ValueError, match="7 of 8 videos") as error:
        VideoFolder(tmp_path)
    message = str(error.value)
    assert "nocap0.gif" in message and "nocap4.gif" in message and "and 2 more" in message
    assert "clip.txt" in message and "metadata.jsonl" in message


def test_empty_captions_name_the_file(tmp_path):
    _write(tmp_path, "a.mp4", caption="   ")
    with pytest.raises(ValueError, match=r"a\.txt is empty"):
        VideoFolder(tmp_path)
    _jsonl(tmp_path / "metadata.jsonl", [{"file": "a.mp4", "text": ""}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:1: the caption of 'a\.mp4' is empty"):
        VideoFolder(tmp_path)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"file": "a.mp4", "text": ', "not valid JSON"),
        ('{"path": "a.mp4", "text": "x"}', "file key one of"),
        ('["a.mp4", "x"]', "expected a JSON object"),
    ],
)
def test_malformed_jsonl_line_names_the_line(tmp_path, line, expected):
    _write(tmp_path, "a.mp4")
    _jsonl(tmp_path / "metadata.jsonl", [{"file": "a.mp4", "text": "fine"}, "", line])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:3: ") as error:
        VideoFolder(tmp_path)
    assert expected in str(error.value)


def test_jsonl_naming_missing_or_non_video_file(tmp_path):
    _write(tmp_path, "a.mp4")
    _jsonl(tmp_path / "metadata.jsonl", [{"file": "a.mp4", "text": "ok"}, {"file": "ghost.mp4", "text": "boo"}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:2: names 'ghost\.mp4'.*does not exist.*delete the line"):
        VideoFolder(tmp_path)
    _jsonl(tmp_path / "metadata.jsonl", [{"file": "a.txt", "text": "a caption file, not a video"}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:1: names 'a\.txt', which is not a video"):
        VideoFolder(tmp_path)
    _jsonl(tmp_path / "metadata.jsonl", [{"file": "a.mp4", "text": "one"}, {"file": "a.mp4", "text": "two"}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:2: 'a\.mp4' already has a caption on line 1"):
        VideoFolder(tmp_path)


def test_too_short_clips_are_skipped_counted_and_all_short_fails(tmp_path):
    _write(tmp_path, "long.mp4", frames=20)
    _write(tmp_path, "short.mp4", frames=6)
    _write(tmp_path, "short.gif", frames=8)
    with pytest.warns(UserWarning, match=r"2 video\(s\).*shorter than the 9 frames") as record:
        data = VideoFolder(tmp_path, num_frames=5, height=16, width=16, frame_stride=2)
    assert len(record) == 1 and "short.gif, short.mp4" in str(record[0].message)
    assert "Lower num_frames or frame_stride" in str(record[0].message)
    assert len(data) == 1 and data.skipped == {"unreadable": [], "too_short": ["short.gif", "short.mp4"]}
    with pytest.raises(ValueError, match=r"No usable video left.*21 frames.*long\.mp4.*Lower num_frames"):
        VideoFolder(tmp_path, num_frames=21, height=16, width=16)


def test_corrupt_files_are_skipped_counted_and_all_corrupt_fails(tmp_path):
    _write(tmp_path, "good.mp4")
    for name in ("bad.mp4", "bad.gif"):
        (tmp_path / name).write_bytes(b"not a video at all" * 50)
        (tmp_path / name).with_suffix(".txt").write_text("broken")
    with pytest.warns(UserWarning, match=r"2 unreadable video\(s\).*bad\.gif: .*bad\.mp4: .*Re-encode"):
        data = VideoFolder(tmp_path, num_frames=5, height=16, width=16)
    assert len(data) == 1 and data.skipped == {"unreadable": ["bad.gif", "bad.mp4"], "too_short": []}
    (tmp_path / "good.mp4").unlink()
    with pytest.raises(ValueError, match=r"No usable video left.*unreadable.*bad\.mp4"):
        VideoFolder(tmp_path)


def test_file_broken_after_indexing_raises_naming_it(tmp_path):
    _write(tmp_path, "a.mp4", frames=12)
    _write(tmp_path, "b.mp4", frames=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder warns about nothing
        data = VideoFolder(tmp_path, num_frames=9, height=16, width=16, random_start=False)
    (tmp_path / "a.mp4").write_bytes(b"garbage" * 100)
    with pytest.raises(RuntimeError, match=r"Cannot decode video .*a\.mp4 \(it indexed fine\)"):
        data[0]
    _write(tmp_path, "b.mp4", frames=4)
    with pytest.raises(RuntimeError, match=r"b\.mp4 ended after 4 frames, but indexing counted 12"):
        data[1]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_frames": 10}, r"num_frames=10 is not of the form 4k\+1.*use e\.g\. 9"),
        ({"num_frames": 0}, r"num_frames=0 is not of the form 4k\+1.*use e\.g\. 1"),
        ({"height": 100}, "height=100 is not a positive multiple of 16; use e.g. 96"),
        ({"width": 8}, "width=8 is not a positive multiple of 16; use e.g. 16"),
        ({"frame_stride": 0}, "frame_stride=0 must be >= 1"),
    ],
)
def test_bad_sizes_are_rejected_with_the_fix(tmp_path, kwargs, expected):
    _write(tmp_path, "a.mp4")
    with pytest.raises(ValueError, match=expected):
        VideoFolder(tmp_path, **kwargs)

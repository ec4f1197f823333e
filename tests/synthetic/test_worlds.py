"""Synthetic camera-motion worlds: deterministic clips, disjoint prompt splits that match the shipped files, a
renderer whose camera motion the geometry core recovers, and inconsistent clips that break epipolar geometry."""

import math
import zlib
from pathlib import Path

import pytest
import torch

from world_r1.camera import MotionScale, parse_camera, plan_for_prompt, relative_motion
from world_r1.camera.grammar import KINDS
from world_r1.data import load_prompts
from world_r1.geometry import GeometrySettings, analyse, relative_pose, rotation_angle_deg
from world_r1.geometry.path import homography_motion
from world_r1.geometry.reprojection import fit_homographies
from world_r1.synthetic import (
    CAMERA_SENTENCES,
    HELD_OUT_SCENES,
    INCONSISTENCY_KINDS,
    TRAIN_SCENES,
    SyntheticWorld,
    WorldConfig,
    build_world,
    parse_scene,
    prompt_file_text,
    render_prompt,
    split_prompt,
    world_prompts,
    write_prompt_files,
)
from world_r1.synthetic.worlds import word_seed

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "world_r1" / "prompts"
SETTINGS = GeometrySettings(gaps=(0.5,), max_pairs=2, max_side=128)
# two scenes (3 and 2 objects) that every motion below is checked on
SCENES = (TRAIN_SCENES[9], TRAIN_SCENES[15])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Ray casting and SIFT on 128-pixel frames gain little from a second thread and lose much on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _words(scene: str) -> set[str]:
    spec = parse_scene(scene)
    return {f"{c} {s}" for c, s in spec.objects} | {spec.backdrop, spec.ground}


# --------------------------------------------------------------------------------------------------- config, dataset


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_frames": 1}, "num_frames"),
        ({"height": 8}, "height"),
        ({"fov_deg": 200.0}, "fov_deg"),
        ({"inconsistent_share": 1.5}, "inconsistent_share"),
        ({"motion": MotionScale(translation=2.0)}, "motion.translation"),
        ({"motion": MotionScale(translation=0.6, orbit_radius=1.0)}, "motion.orbit_radius"),
        ({"severity_range": (0.0, 1.0)}, "severity_range"),
        ({"texture_scale": 0.0}, "texture_scale"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        WorldConfig(**overrides)


def test_items_are_deterministic_well_formed_and_share_prompts_with_the_split():
    world = SyntheticWorld(WorldConfig(), "train", length=64)
    metas = [world.describe(i) for i in range(64)]
    consistent = next(i for i, m in enumerate(metas) if m["consistent"])
    inconsistent = next(i for i, m in enumerate(metas) if not m["consistent"])
    for index in (consistent, inconsistent):
        item, again = world[index], SyntheticWorld(WorldConfig(), "train", length=64)[index]
        assert torch.equal(item["video"], again["video"]) and item["prompt"] == again["prompt"]
        video = item["video"]
        assert video.shape == (9, 3, 128, 128) and video.dtype == torch.float32
        assert float(video.min()) >= 0.0 and float(video.max()) <= 1.0 and float(video.std()) > 0.1
        assert item["prompt"] in world.prompts and item["prompt"].startswith(item["camera"])
        assert item["camera"] in CAMERA_SENTENCES
        assert item["consistent"] == (item["severity"] == 0.0) == (item["kind"] == "none")
    assert world[inconsistent]["kind"] in INCONSISTENCY_KINDS and world[inconsistent]["severity"] >= 0.5
    other_seed = SyntheticWorld(WorldConfig(seed=1), "train", length=64)
    assert [m["prompt"] for m in metas] != [other_seed.describe(i)["prompt"] for i in range(64)]
    with pytest.raises(IndexError):
        world.describe(64)


def test_share_of_inconsistent_clips_follows_the_config():
    for share in (0.4, 0.0, 1.0):
        world = SyntheticWorld(WorldConfig(inconsistent_share=share), "train", length=200)
        metas = [world.describe(i) for i in range(200)]
        observed = sum(not m["consistent"] for m in metas) / len(metas)
        assert abs(observed - share) < 0.08, (share, observed)
    kinds = {m["kind"] for m in (SyntheticWorld(length=200).describe(i) for i in range(200))}
    assert kinds == {"none", *INCONSISTENCY_KINDS}


# ------------------------------------------------------------------------------------------------------ scenes, words


def test_the_words_define_the_scene():
    prompt = f"Camera truck left. {TRAIN_SCENES[8]}"
    assert torch.equal(render_prompt(prompt)["video"], render_prompt(prompt)["video"])
    assert word_seed("red tower") == zlib.crc32(b"red tower")  # stable across processes, unlike hash()
    # an object looks the same in every scene that names it: its palette comes from its own words
    palette = lambda scene, slot: build_world(scene).palette.reshape(-1, 3, 32 * 32 + 1, 3)[slot]  # noqa: E731
    assert torch.equal(palette(TRAIN_SCENES[0], 2), palette(TRAIN_SCENES[6], 3))  # the red tower
    assert not torch.equal(palette(TRAIN_SCENES[0], 2), palette(TRAIN_SCENES[3], 2))  # red vs yellow tower
    other = render_prompt(f"Camera truck left. {TRAIN_SCENES[9]}")["video"]
    assert (other - render_prompt(prompt)["video"]).abs().mean() > 0.1
    assert split_prompt(prompt) == ("Camera truck left.", TRAIN_SCENES[8])
    assert split_prompt(TRAIN_SCENES[8]) == ("Camera fixed.", TRAIN_SCENES[8])


@pytest.mark.parametrize(
    ("sentence", "word"),
    [
        ("A purple tower in front of a brick wall on a tiled floor.", "purple"),
        ("A red tower in front of a glass wall on a tiled floor.", "backdrop"),
        ("A red tower on a tiled floor.", "expected"),
        ("A red cube, a red cube, a red cube and a red cube in front of a brick wall on a tiled floor.", "1 to 3"),
    ],
)
def test_scene_sentences_outside_the_vocabulary_are_rejected(sentence, word):
    with pytest.raises(ValueError, match=word):
        parse_scene(sentence)


def test_the_camera_never_enters_an_object_or_the_ground():
    """For every prompt of both splits, every camera centre stays above the ground and outside every box (0.5 units
    margin), and the rendered depth (a small render) is finite and positive everywhere."""
    config = WorldConfig(height=24, width=24)
    for prompt in world_prompts("train") + world_prompts("eval"):
        clip = render_prompt(prompt, config)
        poses, world = clip["poses"], build_world(split_prompt(prompt)[1])
        centres = -(poses[:, :3, :3].transpose(1, 2) @ poses[:, :3, 3:])[..., 0]
        assert float(centres[:, 1].max()) < 1.0 - 0.3, prompt
        inside = ((centres[:, None] > world.box_lo - 0.5) & (centres[:, None] < world.box_hi + 0.5)).all(-1)
        assert not inside.any(), prompt
        assert torch.isfinite(clip["depth"]).all() and float(clip["depth"].min()) > 0.3, prompt


# ------------------------------------------------------------------------------------------------------ prompt splits


def test_prompt_splits_are_disjoint_and_eval_reuses_training_words():
    train, evaluation = world_prompts("train"), world_prompts("eval")
    assert not set(train) & set(evaluation) and len(set(train)) == len(train) and 16 <= len(evaluation) <= 24
    train_words = set().union(*(_words(split_prompt(p)[1]) for p in train))
    assert train_words == set().union(*(_words(s) for s in TRAIN_SCENES))  # 12 objects, 3 backdrops, 3 grounds
    assert len(train_words) == 4 * 3 + 3 + 3
    assert set().union(*(_words(split_prompt(p)[1]) for p in evaluation)) <= train_words
    assert {split_prompt(p)[1] for p in evaluation} & set(HELD_OUT_SCENES) == set(HELD_OUT_SCENES)
    assert not {split_prompt(p)[1] for p in train} & set(HELD_OUT_SCENES)
    for prompts in (train, evaluation):
        plans = [plan_for_prompt(p) for p in prompts]
        kinds = {m.kind for plan in plans for segment in plan.segments for m in segment}
        # every motion of the grammar but the lens: the mini world's prompt sets (and the committed mini Wan trained
        # on them) predate the zoom kind, which the renderer draws (test_a_zoom_renders_a_homography_of_frame_zero)
        assert kinds == set(KINDS) - {"zoom"} and any(plan.is_static for plan in plans)
        assert any(len(plan.segments) > 1 for plan in plans)
    assert all(parse_camera(c) is not None for c in CAMERA_SENTENCES)
    with pytest.raises(ValueError, match="split"):
        world_prompts("test")


@pytest.mark.parametrize("split", ["train", "eval"])
def test_shipped_prompt_files_equal_the_generated_splits(split, tmp_path):
    """world_r1/prompts/mini_<split>.txt must be regenerated with write_prompt_files when the splits change."""
    shipped = PROMPTS_DIR / f"mini_{split}.txt"
    assert shipped.read_text(encoding="utf-8") == prompt_file_text(split)
    assert [r.text for r in load_prompts(shipped)] == world_prompts(split)
    written = dict(zip(("train", "eval"), write_prompt_files(tmp_path), strict=True))[split]
    assert written.read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ geometry of the renders


def _recovered_errors(clips: list[dict]) -> tuple[list[float], list[float], bool]:
    """Rotation errors and translation-direction errors (degrees) of every frame pair of ``clips``, recovered by
    the geometry core as the trajectory rewards do, against the rendered poses; and whether every pair was valid."""
    analysis = analyse(torch.stack([c["video"] for c in clips]), SETTINGS)
    pairs, geometry = analysis.pairs, analysis.geometry
    rotation_errors, translation_errors = [], []
    for b, clip in enumerate(clips):
        rotation_gt, translation_gt = relative_motion(clip["poses"], pairs[:, 0], pairs[:, 1])
        for p in range(len(pairs)):
            k = b * len(pairs) + p
            points1, points2 = analysis.matches.of_pair(k)
            rotation, direction = relative_pose(
                geometry.fundamental[k], clip["intrinsics"], points1.float(), points2.float()
            )
            rotation_errors.append(float(rotation_angle_deg(rotation @ rotation_gt[p].T)))
            length = float(translation_gt[p].norm())
            if length > 1e-3:
                cosine = float(direction @ translation_gt[p]) / length
                translation_errors.append(math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))
    return rotation_errors, translation_errors, bool(geometry.valid.all())


def _median(values: list[float]) -> float:
    return float(torch.tensor(values).median())


@pytest.mark.parametrize(
    "camera",
    [
        "Camera pan left.",
        "Camera tilt up.",
        "Camera push in.",
        "Camera truck right.",
        "Camera crane up.",
        "Camera orbit left.",
        "Camera push in, then pan right.",
    ],
)
def test_the_geometry_core_recovers_the_rendered_camera_motion(camera):
    clips = [render_prompt(f"{camera} {scene}") for scene in SCENES]
    rotation_errors, translation_errors, valid = _recovered_errors(clips)
    assert valid, camera
    assert _median(rotation_errors) < 2.0 and max(rotation_errors) < 4.0, rotation_errors
    if translation_errors:  # pans and tilts do not translate
        assert _median(translation_errors) < 15.0, translation_errors
    expects_translation = any(m.kind != "pan" and m.kind != "tilt" for s in parse_camera(camera).segments for m in s)
    assert bool(translation_errors) == expects_translation


def test_a_zoom_renders_a_homography_of_frame_zero():
    """A zoom keeps the camera where it is and scales the view about its centre: the last frame is frame 0 resampled
    at ``c + (u - c) / z`` (no parallax, unlike a dolly), and the geometry core reads that zoom back."""
    clip = render_prompt(f"Camera zoom in. {SCENES[0]}")
    zoom = WorldConfig().motion.zoom
    assert torch.equal(clip["poses"], torch.eye(4).expand(len(clip["poses"]), 4, 4))
    assert torch.all(clip["zooms"][1:] > clip["zooms"][:-1]) and float(clip["zooms"][-1]) == pytest.approx(zoom)
    first, last = clip["video"][0], clip["video"][-1]
    height, width = first.shape[1:]
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    grid = torch.stack([x, y], -1)[None] / zoom  # the last frame's pixel centres, in frame 0
    predicted = torch.nn.functional.grid_sample(first[None], grid, align_corners=True)[0]
    assert (predicted - last).abs().mean() < 0.25 * (first - last).abs().mean()
    analysis = analyse(torch.stack([first, last])[None], GeometrySettings(gaps=(1.0,), max_pairs=1, max_side=128))
    points0, points1 = analysis.matches.of_pair(0)
    homography, usable = fit_homographies([points0], [points1])
    _, recovered = homography_motion(homography[0], clip["intrinsics"])
    assert bool(usable[0]) and recovered == pytest.approx(zoom, rel=0.03)


def test_a_fixed_camera_shows_no_motion():
    clip = render_prompt(f"Camera fixed. {SCENES[0]}")
    assert torch.equal(clip["video"][0], clip["video"][-1])


def test_inconsistent_renders_break_epipolar_geometry_but_show_the_same_scene():
    prompts = [f"{c} {s}" for c, s in zip(("Camera truck right.", "Camera pan left."), SCENES, strict=True)]
    clips = []
    for k, prompt in enumerate(prompts):
        clips.append(render_prompt(prompt))
        clips += [render_prompt(prompt, severity=1.0, kind=kind, seed=k) for kind in INCONSISTENCY_KINDS]
    analysis = analyse(torch.stack([c["video"] for c in clips]), SETTINGS)
    inliers = analysis.per_video(analysis.geometry.inlier_ratio).mean(1).reshape(len(prompts), -1).mean(0)
    sampson = analysis.per_video(analysis.geometry.sampson_px).median(1).values.reshape(len(prompts), -1).mean(0)
    assert bool(analysis.per_video(analysis.geometry.valid)[:: 1 + len(INCONSISTENCY_KINDS)].all())
    assert float(inliers[0]) > 0.8, inliers
    assert (inliers[1:] < inliers[0] - 0.15).all(), inliers  # morph, swim, drift
    assert (sampson[1:] > 2 * sampson[0]).all(), sampson
    for k in range(len(prompts)):
        reference = clips[k * 4]
        for clip in clips[k * 4 + 1 : k * 4 + 4]:
            assert clip["prompt"] == reference["prompt"] and not clip["consistent"]
            assert torch.allclose(clip["video"][0], reference["video"][0], atol=1e-5)  # the same first frame
            assert (clip["video"][-1] - reference["video"][-1]).abs().mean() > 0.01
    assert torch.equal(render_prompt(prompts[0], severity=0.0, kind="morph")["video"], clips[0]["video"])
    with pytest.raises(ValueError, match="kind"):
        render_prompt(prompts[0], severity=1.0, kind="melt")


def test_texture_scale_enlarges_the_cells_and_keeps_the_geometry():
    prompt = "Camera truck right. " + SCENES[0]
    fine = render_prompt(prompt, WorldConfig(height=64, width=64, num_frames=5))
    coarse = render_prompt(prompt, WorldConfig(height=64, width=64, num_frames=5, texture_scale=2.0))
    assert torch.equal(fine["depth"], coarse["depth"]) and torch.equal(fine["poses"], coarse["poses"])

    def edges(video: torch.Tensor) -> float:  # colour changes between neighbouring pixels: fewer for larger cells
        return float((video[..., 1:] - video[..., :-1]).abs().mean())

    assert edges(coarse["video"]) < 0.8 * edges(fine["video"])


def test_a_world_saved_before_camera_conventions_renders_as_it_did():
    """A manifest's world config recorded before ``convention`` and ``dolly`` existed (the shipped mini Wan's) is the
    classic path, travelling along the view as far as sideways: the world its model was trained on."""
    from world_r1.policy.loading import BUILTIN_MODELS
    from world_r1.pretrain.manifest import read_manifest

    old = {"motion": {"rotation_deg": 20.0, "orbit_deg": 25.0, "translation": 0.6, "orbit_radius": 4.0, "zoom": 1.5}}
    motion = WorldConfig.from_dict(old).motion
    assert motion.convention == "classic" and motion.dolly == 0.6
    assert motion == WorldConfig().motion
    stages = read_manifest(BUILTIN_MODELS["mini-wan"])["stages"]
    shipped = WorldConfig.from_dict(stages[-1]["data"]["train"]["config"])
    assert shipped.motion.convention == "classic" and shipped.motion.dolly == shipped.motion.translation

"""Trajectory alignment on rendered scenes with a known camera path: the intended trajectory scores high, a
mismatched one low; static prompts reward a still camera; degenerate input is finite and worst-case. The terms
(FlowTrajectoryReward: image motion in direction and size; PathShapeReward: the camera path relative to frame 0, free
of scale) are held to the same ranking; only the flow term asks for the intended amount of motion. The release's path
formula (ReleaseTrajectoryReward), and the shape term on the photograph clips at the real configs' settings, close
it."""

import math
from dataclasses import replace

import pytest
import torch

from world_r1.camera import CLASSIC_MOTION, CameraParseError, camera_trajectory, parse_camera
from world_r1.geometry import GeometrySettings, analyse, intrinsics_from_fov
from world_r1.geometry.chain import PATH_ESTIMATORS
from world_r1.geometry.path import estimate_path
from world_r1.geometry.pose import rotation_angle_deg
from world_r1.rewards import WeightedReward
from world_r1.rewards.trajectory import TRAJECTORY_FORMS, CameraTrajectoryReward, EstimatedPathReward
from world_r1.synthetic import render
from world_r1.synthetic.photos import PHOTO_MOTION, PhotoClipSpec, render_photo_clip

SIZE, FRAMES = 128, 9
MOTIONS = ["pan left", "pan right", "push in", "pull back", "truck right", "tilt up", "fixed"]
GEOMETRY = GeometrySettings(gaps=(0.5,), max_pairs=2, max_side=SIZE)  # frames 4 apart


def classic(form: str) -> CameraTrajectoryReward:
    """The term of ``form`` (flow, path, shape: :data:`TRAJECTORY_FORMS`) expecting the classic path and amounts these
    scenes and photograph clips are rendered with (the project's first convention: 30 degree turns, 1 unit of
    travel)."""
    return TRAJECTORY_FORMS[form](motion=CLASSIC_MOTION)


def _geometry(term: CameraTrajectoryReward) -> GeometrySettings:
    """GEOMETRY, with the keyframe pairs its path estimator reads for the terms that read the camera path."""
    if not isinstance(term, EstimatedPathReward):
        return GEOMETRY
    return replace(GEOMETRY, anchors=4, path_pairs=PATH_ESTIMATORS[term.path_estimator])


def _composed(term: CameraTrajectoryReward) -> WeightedReward:
    """The term as training and evaluation run it: inside a reward that analyses each batch once."""
    return WeightedReward({"trajectory": term}, geometry=_geometry(term))


class _Term:
    """Calls a trajectory term the way the composite does and returns its raw outputs."""

    def __init__(self, term: CameraTrajectoryReward) -> None:
        self.term, self.composed = term, _composed(term)

    def __call__(self, videos, prompts, **metadata):
        out = self.composed(videos, prompts, **metadata)
        return {"score": out["trajectory"]} | {k.split("/", 1)[1]: v for k, v in out.items() if "/" in k}


@pytest.fixture(scope="module", params=["flow", "shape"])
def reward(request) -> _Term:
    return _Term(classic(request.param))


@pytest.fixture(scope="module")
def flow_reward() -> _Term:
    return _Term(classic("flow"))


@pytest.fixture(scope="module")
def videos() -> torch.Tensor:
    """(7, F, 3, H, W): the scene rendered along each of MOTIONS (a different texture seed for each)."""
    rendered = [
        render(camera_trajectory(parse_camera(m), FRAMES, CLASSIC_MOTION), SIZE, SIZE, seed=k).video
        for k, m in enumerate(MOTIONS)
    ]
    return torch.stack(rendered)


def scores(reward, videos, motion: str) -> dict[str, float]:
    out = reward(videos, [f"Camera {motion}. A quiet street." for _ in MOTIONS])
    assert all(torch.isfinite(v).all() for v in out.values())
    return {m: float(s) for m, s in zip(MOTIONS, out["score"], strict=True)}


@pytest.mark.parametrize(
    ("intended", "opposite"), [("pan left", "pan right"), ("push in", "pull back"), ("tilt up", "fixed")]
)
@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_intended_trajectory_beats_every_other(reward, videos, intended, opposite):
    score = scores(reward, videos, intended)
    assert score[intended] > 0.8, score
    assert score[opposite] < 0.2, score
    others = [s for m, s in score.items() if m != intended]
    assert max(others) < score[intended] - 0.3, score


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_reversed_motions_score_low_in_both_directions(reward, videos):
    for intended, video in [("pan right", "pan left"), ("pull back", "push in"), ("truck right", "pull back")]:
        score = scores(reward, videos, intended)
        assert score[video] < 0.2 < 0.8 < score[intended], (intended, score)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_static_prompts_reward_a_still_camera(reward, videos):
    for prompt in ["Camera fixed. A room.", "A room with a piano."]:  # no camera sentence: a still camera expected
        out = reward(videos, [prompt] * len(MOTIONS))
        score = dict(zip(MOTIONS, out["score"].tolist(), strict=True))
        assert score["fixed"] > 0.95 and max(v for m, v in score.items() if m != "fixed") < 0.2, score
        assert torch.equal(out["static_expected"], torch.ones(len(MOTIONS)))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_explicit_cameras_override_the_prompt(reward, videos):
    cameras = ["pan left", None] + [None] * (len(MOTIONS) - 2)
    out = reward(videos, ["Camera pan right."] * len(MOTIONS), cameras=cameras)
    assert float(out["score"][0]) > 0.8 and float(out["score"][1]) > 0.8
    with pytest.raises(CameraParseError):
        reward.term(videos[:1], ["A room."], cameras=["spin wildly"])  # the term itself raises: a config error


def test_degenerate_videos_score_worst_and_never_raise(reward, videos):
    black = torch.zeros(FRAMES, 3, SIZE, SIZE)
    noise = torch.rand(FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    batch = torch.stack([black, black + 0.5, noise])
    for prompt in ["Camera pan left.", "Camera fixed."]:
        out = reward(batch, [prompt] * 3)
        assert all(torch.isfinite(v).all() for v in out.values())
        assert torch.equal(out["score"], torch.zeros(3)) and torch.equal(out["degenerate"], torch.ones(3))
    one_frame = reward(videos[:2, :1], ["Camera pan left.", "Camera fixed."])
    assert torch.equal(one_frame["score"], torch.zeros(2)) and torch.equal(one_frame["degenerate"], torch.ones(2))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_composes_with_other_terms(reward, videos):
    weighted = WeightedReward({"trajectory": reward.term}, {"trajectory": 2.0}, geometry=_geometry(reward.term))
    total = weighted(videos, ["Camera pan left."] * len(MOTIONS))
    assert set(total) >= {"total", "trajectory", "trajectory/parallax_px", "trajectory/degenerate"}
    assert math.isclose(float(total["total"][0]), 2 * float(total["trajectory"][0]), rel_tol=1e-6)
    assert float(total["trajectory"][0]) > 0.8 > 0.2 > float(total["trajectory"][1])


def test_scores_inference_mode_tensors(reward, videos):
    """Lightning's validate/test loops run under ``torch.inference_mode``."""
    with torch.inference_mode():
        out = reward(videos[:1].clone(), ["Camera pan left."])
    assert float(out["score"][0]) > 0.8


def _pan(speed: float, seed: int = 0) -> torch.Tensor:
    """The scene under a 30-degree pan left played at ``speed`` times the intended amount (0: frozen)."""
    scale = replace(CLASSIC_MOTION, rotation_deg=30.0 * speed) if speed else CLASSIC_MOTION
    plan = parse_camera("pan left" if speed else "fixed")
    return render(camera_trajectory(plan, FRAMES, scale), SIZE, SIZE, seed=seed).video


def test_flow_form_asks_for_the_intended_amount_of_motion(flow_reward):
    """A camera that moves the right way but half as far, or freezes, loses the size part (the shape term, scale-free,
    cannot tell); twice too far costs as much as half."""
    speeds = [1.0, 0.5, 2.0, 0.0]
    out = flow_reward(torch.stack([_pan(s) for s in speeds]), ["Camera pan left. A room."] * len(speeds))
    score, ratio = out["score"].tolist(), out["motion_ratio"].tolist()
    assert score[0] > 0.85 and ratio[0] == pytest.approx(1.0, abs=0.1), (score, ratio)
    assert ratio[1] == pytest.approx(0.5, abs=0.1) and ratio[2] == pytest.approx(2.0, abs=0.25), ratio
    assert 0.2 < score[1] < 0.6 and 0.2 < score[2] < 0.6, score
    assert score[3] < 0.1 and float(out["direction"][1]) > 0.9, (score, out["direction"])


def test_flow_form_scores_the_direction_of_every_verb(flow_reward, videos):
    """Every moving verb scores its own video above the reversed camera sentence of the same video."""
    reverse = {"pan left": "pan right", "pan right": "pan left", "push in": "pull back", "pull back": "push in"}
    reverse |= {"truck right": "truck left", "tilt up": "tilt down"}
    moving = [m for m in MOTIONS if m != "fixed"]
    right = flow_reward(videos[: len(moving)], [f"Camera {m}. A room." for m in moving])["score"]
    wrong = flow_reward(videos[: len(moving)], [f"Camera {reverse[m]}. A room." for m in moving])["score"]
    assert (right > 0.7).all() and (wrong < 0.1).all(), (right, wrong)


def test_flow_form_reads_only_the_rigid_matches(videos):
    """Matches off the pair's fundamental matrix (the estimator's per-match Sampson distance over ``ransac_px``) are
    left out: a majority of spurious matches moving against the camera does not flip the direction."""
    from dataclasses import replace

    from world_r1.geometry import analyse
    from world_r1.geometry.matching import PairMatches

    clip, prompt = videos[:1], ["Camera pan left."]
    analysis = analyse(clip, GEOMETRY)
    term = classic("flow")
    clean = term(clip, prompt, analysis=analysis)
    matches = analysis.matches
    start, end = matches.of_pair(0)
    spurious = len(start) * 2  # twice as many matches as the real ones, each moving the opposite way
    index = torch.arange(spurious) % len(start)
    fake_start, fake_end = start[index], start[index] - (end - start)[index]
    corrupted = replace(
        analysis,
        matches=PairMatches(
            torch.cat([matches.points1, fake_start]),
            torch.cat([matches.points2, fake_end]),
            torch.cat([matches.pair, torch.zeros(spurious, dtype=torch.long)]),
            matches.num_pairs,
        ),
        geometry=replace(
            analysis.geometry,
            match_error_px=torch.cat([analysis.geometry.match_error_px, torch.full((spurious,), float("inf"))]),
        ),
    )
    assert bool(analysis.geometry.valid[0]) and clean["direction"][0] > 0.8
    torch.testing.assert_close(term(clip, prompt, analysis=corrupted)["direction"], clean["direction"])


def _photo_clip(camera: str, speed: float = 1.0) -> torch.Tensor:
    spec = PhotoClipSpec(("moon", "ihc", "coins"), camera, speed=speed, seed=7)
    return render_photo_clip(spec).video[None]


@pytest.mark.parametrize(
    ("camera", "travel", "turning"),
    [
        ("Camera trucks left.", (-1, 0, 0), 0.0),
        ("Camera dollies in.", (0, 0, 1), 0.0),
        ("Camera pans right.", None, 10),
    ],
)
def test_the_estimated_path_goes_where_the_camera_went(camera, travel, turning):
    analysis = analyse(_photo_clip(camera), GeometrySettings(max_side=128, anchors=4))
    path = estimate_path(analysis, 0, intrinsics_from_fov(60.0, *analysis.size))
    assert path.frames.tolist() == [4, 8, 12, 16] and bool(path.known.all())
    if travel is None:
        assert bool(path.rotation_only.all()) and float(path.centres.norm()) == 0.0
    else:
        direction = torch.nn.functional.normalize(path.centres[-1], dim=0)
        assert float(direction @ torch.tensor(travel, dtype=torch.float64)) > 0.95
    assert float(rotation_angle_deg(path.rotations[-1])) == pytest.approx(turning, abs=1.5)


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_a_zoom_is_read_as_a_lens_change_and_told_apart_from_a_dolly():
    """A zoom's anchors obey homographies that scale the view (no travel); a dolly's show parallax. The shape form
    scores each against its own sentence only; the flow form at least ranks its own first."""
    cameras = ("Camera zooms in.", "Camera dollies in.", "Camera zooms out.")
    videos = torch.cat([_photo_clip(c) for c in cameras])
    analysis = analyse(videos, GeometrySettings(max_side=128, anchors=4))
    path = estimate_path(analysis, 0, intrinsics_from_fov(60.0, *analysis.size))
    expected = PHOTO_MOTION.zoom ** (path.frames.double() / 16)  # 17 frames, one segment
    assert bool(path.rotation_only.all()) and torch.allclose(path.zooms, expected, rtol=0.02)
    assert float(rotation_angle_deg(path.rotations).max()) < 0.5
    assert not bool(estimate_path(analysis, 1, intrinsics_from_fov(60.0, *analysis.size)).rotation_only[-1])
    for form in ("shape", "flow"):
        term = _Term(classic(form))
        table = torch.stack([term(videos, [""] * 3, cameras=[c] * 3)["score"] for c in cameras])  # sentence x clip
        wrong = (table - 2 * torch.eye(3)).amax(0)  # each clip's best score for another sentence
        if form == "shape":
            assert table.diagonal().min() > 0.9 and wrong.max() < 0.05, table
        else:  # the dolly's flow expands the view too, so the flow form only ranks: own sentence first
            assert table.diagonal().min() > 0.6 and (table.diagonal() - wrong).min() > 0.15, table


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_the_shape_form_scores_the_right_camera_high_and_the_mirrored_one_zero_at_any_speed(speed):
    """At the real configs' motion scale (30 degree pans) on clips that pan 5-20 degrees: the shape is what counts."""
    term = _Term(classic("shape"))
    videos = torch.cat([_photo_clip(c, speed) for c in ("Camera pans right.", "Camera orbits left.")])
    right = term(videos, ["", ""], cameras=["Camera pans right.", "Camera orbits left."])["score"]
    mirrored = term(videos, ["", ""], cameras=["Camera pans left.", "Camera orbits right."])["score"]
    assert right.min() > 0.5 and mirrored.max() < 0.1


def test_the_release_formula_ranks_the_right_camera_first_but_pays_half_for_the_wrong_one():
    term = _Term(classic("path"))
    video = _photo_clip("Camera trucks left.")
    right = float(term(video, [""], cameras=["Camera trucks left."])["score"][0])
    mirrored = float(term(video, [""], cameras=["Camera trucks right."])["score"][0])
    assert right > 0.8 and 0.3 < mirrored < right - 0.3  # the rotation half still pays for the opposite truck


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_path_forms_need_pairs_with_frame_0():
    with pytest.raises(ValueError, match="anchors"):
        WeightedReward({"trajectory": classic("shape")}, geometry=GEOMETRY)
    alone = classic("shape")(_photo_clip("Camera cranes up."), ["Camera cranes up."])
    assert float(alone["score"][0]) > 0.5  # on its own the term analyses with anchors itself


def test_the_path_forms_warn_that_corners_read_zooms_as_travel(caplog):
    with caplog.at_level("WARNING", logger="world_r1.rewards.trajectory"):
        WeightedReward({"trajectory": classic("shape")}, geometry=replace(GEOMETRY, anchors=4))
        assert not caplog.records
        corners = replace(GEOMETRY, anchors=4, detector="corners")
        WeightedReward({"trajectory": classic("shape")}, geometry=corners)
        WeightedReward({"trajectory": classic("flow")}, geometry=corners)  # reads no path: no warning
    assert len(caplog.records) == 1 and "detector: sift" in caplog.records[0].getMessage()


def test_a_bad_setting_is_refused_naming_the_term():
    from world_r1.rewards import FlowTrajectoryReward, PathShapeReward, ReleaseTrajectoryReward

    with pytest.raises(ValueError, match="FlowTrajectoryReward needs size_tolerance > 1"):
        FlowTrajectoryReward(size_tolerance=1.0)
    with pytest.raises(ValueError, match=r"PathShapeReward.path_estimator must be one of \['anchored', 'chained'\]"):
        PathShapeReward(path_estimator="guess")
    with pytest.raises(ValueError, match=r"ReleaseTrajectoryReward\.homography_px must be > 0"):
        ReleaseTrajectoryReward(homography_px=0.0)
    assert (ReleaseTrajectoryReward().path_estimator, PathShapeReward().path_estimator) == ("chained", "anchored")

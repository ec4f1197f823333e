"""`evaluate` on a folder of mp4 files: a rigid scene outranks a morphed one, broken files are skipped, not fatal."""

import csv
import json

import pytest
import torch
from rich.console import Console

from world_r1.cli import main
from world_r1.commands.evaluate import Evaluation, evaluate, release_values, render_table
from world_r1.geometry import GeometrySettings
from world_r1.rewards import EpipolarReward, PathShapeReward, ReleaseTrajectoryReward
from world_r1.synthetic import morph, rigid_video
from world_r1.video_io import write_mp4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """rigid.mp4 (one scene, moving camera), morphed.mp4 (every frame warped on its own), broken.mp4 (not a video)."""
    root = tmp_path_factory.mktemp("videos")
    rigid = rigid_video(9, 96, 96, seed=0).video
    write_mp4(root / "rigid.mp4", rigid, fps=8)
    write_mp4(root / "morphed.mp4", morph(rigid, 6.0, seed=0), fps=8)
    (root / "broken.mp4").write_bytes(b"this is not an mp4 file")
    (root / "notes.txt").write_text("not a video: ignored\n")
    (root / "prompts.txt").write_text("rigid.mp4\tCamera push in. A room.\n")
    return root


@pytest.fixture(scope="module")
def result(folder) -> Evaluation:
    return evaluate(str(folder), out=str(folder / "report" / "eval"))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_rigid_outranks_morphed_and_broken_is_skipped(result):
    assert [row["file"] for row in result.rows] == ["rigid.mp4", "morphed.mp4"]
    rigid, morphed = result.rows
    assert rigid["score"] > morphed["score"] + 0.1, (rigid["score"], morphed["score"])
    assert rigid["epipolar/inlier_ratio"] > morphed["epipolar/inlier_ratio"]
    assert rigid["frames"] == 9 and rigid["prompt"] == "Camera push in. A room." and morphed["prompt"] == ""
    assert [s["file"] for s in result.skipped] == ["broken.mp4"]
    assert "cannot decode" in result.skipped[0]["error"]
    assert result.means["epipolar/score"] == pytest.approx((rigid["epipolar/score"] + morphed["epipolar/score"]) / 2)


def test_reports_on_disk(result, folder):
    report = json.loads((folder / "report" / "eval.json").read_text())
    assert [row["file"] for row in report["rows"]] == ["rigid.mp4", "morphed.mp4"]
    assert report["skipped"][0]["file"] == "broken.mp4" and "epipolar/score" in report["means"]
    with (folder / "report" / "eval.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["rank"], r["file"]) for r in rows] == [("1", "rigid.mp4"), ("2", "morphed.mp4")]
    assert float(rows[0]["epipolar/score"]) == pytest.approx(result.rows[0]["epipolar/score"])


def test_command_line_with_configured_terms(folder, tmp_path, capsys):
    """Terms from YAML (class_path), the rich table on stdout, and the skipped file named there."""
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"videos: {folder}\nout: {tmp_path / 'out'}\nterms:\n"
        "  bright:\n    class_path: world_r1.rewards.BrightnessReward\n"
    )
    main(["evaluate", "--config", str(config)])
    printed = capsys.readouterr().out
    assert "skipped" in printed and "broken.mp4" in printed and "bright" in printed
    report = json.loads((tmp_path / "out.json").read_text())
    assert set(report["means"]) == {"score", "bright/score", "bright/brightness", "bright/degenerate"}
    assert "epipolar/score" not in report["means"]  # the configured terms replace the default


def test_the_corner_detector_from_the_command_line_ranks_the_same(folder, tmp_path, result):
    main(["evaluate", "--videos", str(folder), "--out", str(tmp_path / "out"), "--geometry.detector", "corners"])
    rows = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert [row["file"] for row in rows] == ["rigid.mp4", "morphed.mp4"]
    assert rows[0]["epipolar/inlier_ratio"] > rows[1]["epipolar/inlier_ratio"] + 0.1
    # the flag reached the analysis: other keypoints than the default SIFT run's, so other values
    assert rows[0]["epipolar/inlier_ratio"] != result.rows[0]["epipolar/inlier_ratio"]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no video files"):
        evaluate(str(tmp_path))
    with pytest.raises(SystemExit, match=r"error: --videos .*missing is not a folder"):  # a message, no traceback
        main(["evaluate", "--videos", str(tmp_path / "missing")])


def test_the_table_fits_80_columns_and_shows_everything_when_asked(result):
    console = Console(width=80, record=True)
    console.print(render_table(result))
    compact = console.export_text()
    assert max(len(line) for line in compact.splitlines()) <= 80
    assert "rigid.mp4" in compact and "epipolar" in compact and "inlier_ratio" not in compact
    console = Console(width=320, record=True)  # every raw value of every term: a wide terminal (or the CSV)
    console.print(render_table(result, all_columns=True))
    assert "inlier_ratio" in console.export_text()


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_lpips_from_a_local_backbone(folder, tmp_path):
    """``--lpips`` with a backbone saved offline adds LPIPS's form of re-rendered against real frames."""
    from tests.rewards.tiny_models import save_tiny_resnet

    backbone = save_tiny_resnet(tmp_path / "resnet")
    main(["evaluate", "--videos", str(folder), "--lpips", str(backbone), "--out", str(tmp_path / "eval")])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert "depth/lpips" in report["means"] and report["means"]["depth/lpips"] >= 0
    with pytest.raises(ValueError, match=r"init_args\.perceptual"):
        evaluate(str(folder), terms={"epipolar": EpipolarReward()}, lpips=str(backbone))


@pytest.mark.slow  # heavy for the unit tier (make test-fast): seconds of model runs
def test_the_release_names_and_the_estimated_camera_path_are_reported(folder, tmp_path, capsys):
    """The release's trajectory term reports as S_traj, and each video's estimated path, keyframe by keyframe, reaches
    the JSON, the CSV and the console."""
    geometry = GeometrySettings(anchors=4, path_pairs="consecutive")
    out = tmp_path / "eval"
    result = evaluate(str(folder), terms={"trajectory": ReleaseTrajectoryReward()}, out=str(out), geometry=geometry)
    rigid = next(row for row in result.rows if row["file"] == "rigid.mp4")
    assert rigid["S_traj"] == rigid["trajectory/score"]
    assert [p["frame"] for p in rigid["camera_path"]] == [2, 4, 6, 8]
    assert all(p["moved"] in ("turn", "travel", "unknown") and p["turning_deg"] >= 0 for p in rigid["camera_path"])
    assert any(p["turning_deg"] > 0 or p["travel"] > 0 for p in rigid["camera_path"])  # the rigid clip's camera moves
    printed = capsys.readouterr().out
    assert "estimated camera path" in printed and "frame 8" in printed and "S_traj" in printed
    with out.with_suffix(".csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["file"] == "rigid.mp4")
    assert row["camera_path"].startswith("2:") and row["camera_path"].count(":") == 4
    assert release_values({"trajectory": PathShapeReward()}, {"trajectory/score": torch.ones(1)}) == {}

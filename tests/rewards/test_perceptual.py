"""The LPIPS-form perceptual distance on a tiny random ResNet saved offline: zero for identical images, growing with
the difference, blind outside the valid mask, loaded by local path through the real code, a clear error for a
missing folder or a backbone without feature maps, and reported by the reprojection reward as ``lpips``."""

import pytest
import torch

from world_r1.geometry import PerceptualDistance
from world_r1.rewards import DepthConsistencyReward
from world_r1.synthetic import morph, rigid_video


@pytest.fixture(scope="module")
def distance(tiny_resnet) -> PerceptualDistance:
    return PerceptualDistance(tiny_resnet)


def test_distance_is_zero_for_identical_images_and_grows_with_the_difference(distance):
    image = rigid_video(2, 64, 64, seed=0).video
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
    slightly, strongly = (image + 0.05 * (noise - 0.5)).clamp(0, 1), (image + 0.5 * (noise - 0.5)).clamp(0, 1)
    assert torch.allclose(distance(image, image), torch.zeros(2), atol=1e-6)
    near, far = distance(slightly, image), distance(strongly, image)
    assert (near > 0).all() and (far > near).all(), (near, far)


def test_pixels_outside_the_mask_do_not_count(distance):
    image = rigid_video(1, 64, 64, seed=1).video
    other = 1 - image
    nothing_valid = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    assert distance(other, image, nothing_valid).item() == pytest.approx(0.0, abs=1e-6)
    assert distance(other, image).item() > 0.1


def test_bad_models_name_the_fix(tmp_path, tiny_vit):
    with pytest.raises(FileNotFoundError, match="microsoft/resnet-50"):
        PerceptualDistance(str(tmp_path / "missing"))
    vit = PerceptualDistance(tiny_vit)
    with pytest.raises(ValueError, match="convolutional backbone"):
        vit(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


def test_the_reprojection_reward_reports_lpips(distance):
    rigid = rigid_video(9, 96, 96, seed=0).video
    videos = torch.stack([rigid, morph(rigid, 8.0, seed=0), rigid[:1].expand(9, -1, -1, -1)])
    out = DepthConsistencyReward(perceptual=distance)(videos, [""] * 3)
    assert "lpips" in out and torch.isfinite(out["lpips"]).all()
    assert out["lpips"][0] < out["lpips"][1], out["lpips"]  # the rigid re-rendering looks more like the real frame
    assert out["lpips"][2] == 1.0  # a frozen video has no measured pair: the worst distance, never a perfect 0
    assert "lpips" not in DepthConsistencyReward()(videos[:1], [""])  # no perceptual model: no LPIPS


def test_configured_from_yaml_as_the_configs_do(tiny_resnet):
    """The configs' ``perceptual:`` knob: a class_path in YAML builds the distance inside the depth term."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--term", type=DepthConsistencyReward)
    config = parser.parse_object(
        {
            "term": {
                "class_path": "world_r1.rewards.DepthConsistencyReward",
                "init_args": {
                    "perceptual": {
                        "class_path": "world_r1.geometry.PerceptualDistance",
                        "init_args": {"model": tiny_resnet},
                    }
                },
            }
        }
    )
    term = parser.instantiate_classes(config).term
    assert isinstance(term.perceptual, PerceptualDistance) and term.perceptual.name == tiny_resnet

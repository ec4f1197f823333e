"""Depth Anything 3 through the package's own network classes: a tiny random model saved in the hub layout loads by
folder, reconstructs a clip into rigid per-frame cameras, depth and one Gaussian per pixel; the preprocessing
matches the package's (OpenCV) resizing; missing files, an offline hub id, a checkpoint without the Gaussian head
and a missing package fail with a message naming the fix."""

import json
from pathlib import Path

import pytest
import torch

from tests.reconstruction.conftest import TINY_RES
from world_r1.reconstruction import da3
from world_r1.reconstruction.da3 import DepthAnything3, preprocess, processed_size

pytest.importorskip("depth_anything_3", reason="needs the depth-anything-3 package (see world_r1.reconstruction.da3)")


@pytest.fixture(scope="module")
def model(tiny_da3) -> DepthAnything3:
    return DepthAnything3.from_pretrained(tiny_da3, process_res=TINY_RES)


@pytest.fixture(scope="module")
def reconstruction(model):
    frames = torch.rand(4, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    return model(frames)


def test_loads_the_saved_weights_by_folder(model, tiny_da3):
    import safetensors.torch

    stored = safetensors.torch.load_file(f"{tiny_da3}/model.safetensors")
    state = model.state_dict()
    assert all(key.startswith("model.") for key in stored)
    assert all(torch.equal(state[key], value) for key, value in stored.items())
    assert json.loads(Path(tiny_da3, "config.json").read_text())["config"]["net"]["name"] == "vits"


def test_reconstruction_holds_cameras_depth_and_a_gaussian_per_pixel(reconstruction):
    h, w = processed_size(24, 40, TINY_RES)
    assert (h, w) == (28, 42) and reconstruction.image_size == (28, 42)
    assert reconstruction.poses.shape == (4, 4, 4) and reconstruction.intrinsics.shape == (4, 3, 3)
    assert reconstruction.depth.shape == (4, h, w) and reconstruction.confidence.shape == (4, h, w)
    gaussians = reconstruction.gaussians
    assert len(gaussians) == 4 * h * w and gaussians.harmonics.shape == (4 * h * w, 9, 3)  # degree 2, as da3-giant
    assert ((gaussians.opacities >= 0) & (gaussians.opacities <= 1)).all() and (gaussians.scales > 0).all()


def test_poses_are_rigid_camera_to_world_transforms(reconstruction):
    poses = reconstruction.poses
    rotation = poses[:, :3, :3]
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-4)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(4), atol=1e-4)
    assert torch.equal(poses[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(4, 4))
    assert torch.allclose(reconstruction.extrinsics @ poses, torch.eye(4).expand(4, 4, 4), atol=1e-4)
    K = reconstruction.intrinsics_at(56, 84)
    assert torch.allclose(K[:, 0, 2], reconstruction.intrinsics[:, 0, 2] * 2)


def test_preprocessing_matches_the_packages_opencv_resizing():
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    rng = np.random.default_rng(0)
    for height, width, res in [(480, 832, 504), (64, 96, 504), (300, 1000, 504), (30, 50, 42)]:
        small = (rng.random((height // 8 + 1, width // 8 + 1, 3)) * 255).astype(np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        # depth_anything_3.utils.io.input_processor.InputProcessor, upper_bound_resize, step by step
        scale = res / max(height, width)
        size = (round(width * scale), round(height * scale))
        ref = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        h, w = processed_size(height, width, res)
        grows = w > ref.shape[1] or h > ref.shape[0]
        ref = cv2.resize(ref, (w, h), interpolation=cv2.INTER_CUBIC if grows else cv2.INTER_AREA)
        ours = preprocess(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, res)[0]
        mean, std = torch.tensor(da3.IMAGENET_MEAN).view(3, 1, 1), torch.tensor(da3.IMAGENET_STD).view(3, 1, 1)
        levels = ((ours * std + mean) * 255).round().permute(1, 2, 0)
        assert levels.shape == ref.shape
        assert (levels - torch.from_numpy(ref).float()).abs().max() <= 1  # rounding of the last level


def test_preprocessing_matches_the_packages_input_processor():
    try:  # imports torchvision: runs only where a working torchvision is installed
        from depth_anything_3.utils.io.input_processor import InputProcessor
    except Exception as error:
        pytest.skip(f"the package's InputProcessor does not import here: {error}")
    image = (torch.rand(3, 60, 100, generator=torch.Generator().manual_seed(1)) * 255).round().byte()
    theirs, _, _ = InputProcessor()([image.permute(1, 2, 0).numpy()], process_res=42, num_workers=1)
    ours = preprocess(image[None].float() / 255, 42)
    assert theirs.shape[-2:] == ours.shape[-2:]
    assert (theirs[0] - ours).abs().max() < 0.02


def test_processed_size_follows_the_packages_rounding():
    assert processed_size(480, 832) == (294, 504)  # 290.8 -> 291 -> nearest multiple of 14: 294
    assert processed_size(504, 504) == (504, 504)
    assert processed_size(100, 1000) == (56, 504)  # 50.4 -> 50 -> 56 (6 up beats 8 down)


def test_a_folder_without_weights_names_the_missing_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_name": "da3-giant"}))
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        DepthAnything3.from_pretrained(str(tmp_path))


def test_an_uncached_hub_id_offline_raises_naming_the_fix(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="depth-anything/DA3-GIANT"):
        DepthAnything3.from_pretrained("depth-anything/DA3-GIANT")


def test_a_checkpoint_without_the_gaussian_head_is_refused(tiny_da3, tmp_path):
    import safetensors.torch

    stored = safetensors.torch.load_file(f"{tiny_da3}/model.safetensors")
    safetensors.torch.save_file(
        {k: v for k, v in stored.items() if ".gs_head." not in k}, tmp_path / "model.safetensors"
    )
    (tmp_path / "config.json").write_text(Path(tiny_da3, "config.json").read_text())
    with pytest.raises(ValueError, match=r"lacks weights.*gs_head"):
        DepthAnything3.from_pretrained(str(tmp_path))


def test_a_missing_dependency_names_the_install_command(monkeypatch):
    real = da3.importlib.util.find_spec
    monkeypatch.setattr(da3.importlib.util, "find_spec", lambda name: None if name == "e3nn" else real(name))
    with pytest.raises(ImportError, match=r"e3nn.*pip install --no-deps depth-anything-3==0.1.1"):
        DepthAnything3(da3.TINY_CONFIG)


def test_an_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="da3-giant"):
        da3.build_network("da3-enormous")

"""LPIPS v0.1 (AlexNet) without torchvision, on random weights saved offline under the official files' key names:
it matches an independent re-statement of the formula, is 0 for identical images, symmetric, blind outside the valid
mask; it loads from paths, from torch's hub cache and from an installed lpips without importing it; bad files and a
missing download name the fix; and it equals the real ``lpips`` package where that imports (not here: torchvision)."""

import importlib.util
import sys
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from world_r1.geometry.lpips import LPIPS

# torchvision's AlexNet features: conv index -> (out, in, kernel); lpips' heads: channels of relu1..relu5
TRUNK_SHAPES = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
HEAD_CHANNELS = (64, 192, 384, 256, 256)


def random_trunk(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (c_out, c_in, k) in TRUNK_SHAPES.items():
        state[f"features.{index}.weight"] = (
            torch.randn(c_out, c_in, k, k, generator=generator) * (2 / (c_in * k * k)) ** 0.5
        )
        state[f"features.{index}.bias"] = 0.1 * torch.randn(c_out, generator=generator)
    state["classifier.1.weight"] = torch.randn(8, 4, generator=generator)  # the real file's classifier: ignored
    return state


def random_heads(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for k, c in enumerate(HEAD_CHANNELS)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    trunk, heads = random_trunk(0), random_heads(1)
    torch.save(trunk, folder / "alexnet.pth")
    torch.save(heads, folder / "alex.pth")
    return {
        "trunk": trunk,
        "heads": heads,
        "trunk_path": str(folder / "alexnet.pth"),
        "heads_path": str(folder / "alex.pth"),
    }


@pytest.fixture(scope="module")
def lpips(weights) -> LPIPS:
    return LPIPS(weights["trunk_path"], weights["heads_path"])


def images(n: int, height: int = 64, width: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def reference(a: torch.Tensor, b: torch.Tensor, trunk: dict, heads: dict) -> torch.Tensor:
    """LPIPS written out from the paper and lpips 0.1.4 in float64: [0,1] -> [-1,1], ScalingLayer, AlexNet's five ReLU
    taps, unit-normalised channels, squared difference weighted by the heads, averaged over pixels, summed."""
    w = {key: value.double() for key, value in trunk.items()}
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def conv(x, i, stride=1, padding=1):
        return F.relu(F.conv2d(x, w[f"features.{i}.weight"], w[f"features.{i}.bias"], stride=stride, padding=padding))

    def taps(x):
        relu1 = conv((2 * x.double() - 1 - shift) / scale, 0, stride=4, padding=2)
        relu2 = conv(F.max_pool2d(relu1, 3, 2), 3, padding=2)
        relu3 = conv(F.max_pool2d(relu2, 3, 2), 6)
        relu4 = conv(relu3, 8)
        return relu1, relu2, relu3, relu4, conv(relu4, 10)

    total = torch.zeros(len(a), dtype=torch.float64)
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b), strict=True)):
        ua = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        ub = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        weight = heads[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
        total += (weight * (ua - ub) ** 2).sum(1).mean((1, 2))
    return total


@pytest.mark.parametrize("size", [(64, 64), (47, 90)])
def test_matches_an_independent_restatement_of_the_formula(lpips, weights, size):
    a, b = images(3, *size, seed=0), images(3, *size, seed=1)
    distance = lpips(a, b)
    assert distance.shape == (3,) and distance.dtype == torch.float32
    expected = reference(a, b, weights["trunk"], weights["heads"])
    assert torch.allclose(distance.double(), expected, rtol=0, atol=1e-6), (distance, expected)
    assert (distance > 0.05).all()  # the comparison is not vacuous


def test_zero_for_identical_images_symmetric_and_growing_with_the_difference(lpips):
    image = images(2, seed=2)
    noise = images(2, seed=3) - 0.5
    near, far = (image + 0.05 * noise).clamp(0, 1), (image + 0.5 * noise).clamp(0, 1)
    assert lpips(image, image).abs().max() == 0
    assert torch.allclose(lpips(near, image), lpips(image, near), rtol=0, atol=1e-7)
    assert (lpips(near, image) < lpips(far, image)).all()


def test_frozen_and_in_eval_mode(lpips):
    assert not lpips.training and not any(p.requires_grad for p in lpips.parameters())


def test_pixels_outside_the_valid_mask_do_not_count(lpips):
    a, b = images(2, seed=4), images(2, seed=5)
    nothing = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    assert lpips(a, b, nothing).abs().max() == 0
    left = torch.zeros_like(nothing)
    left[..., :32] = True
    assert torch.equal(lpips(a, b, left), lpips(torch.where(left, a, b), b))
    assert (lpips(a, b, left) > 0).all() and torch.equal(lpips(a, b, ~nothing), lpips(a, b))


def test_bad_shapes_are_refused(lpips):
    with pytest.raises(ValueError, match="one shape"):
        lpips(images(1), images(2))
    with pytest.raises(ValueError, match="31x31"):
        lpips(images(1, 30, 64), images(1, 30, 64))


def test_files_with_other_keys_or_shapes_name_the_fix(weights, tmp_path):
    torch.save(random_heads(2), tmp_path / "heads_as_trunk.pth")
    with pytest.raises(ValueError, match=r"lacks \['features.0.weight'.*pass torchvision's AlexNet"):
        LPIPS(str(tmp_path / "heads_as_trunk.pth"), weights["heads_path"])
    with pytest.raises(ValueError, match=r"lacks \['lin0.model.1.weight'.*lpips' v0.1 alex.pth as heads"):
        LPIPS(weights["trunk_path"], weights["trunk_path"])
    squeezed = {key: value[:, :32] for key, value in weights["heads"].items()}  # e.g. another trunk's heads
    torch.save(squeezed, tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match="other shapes for"):
        LPIPS(weights["trunk_path"], str(tmp_path / "narrow.pth"))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        LPIPS(str(tmp_path / "list.pth"), weights["heads_path"])


@pytest.fixture
def fake_lpips(tmp_path, monkeypatch):
    """An ``lpips`` package first on sys.path (shadowing any real one); importing it would fail loudly."""
    package = tmp_path / "site" / "lpips"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('importing lpips imports torchvision')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return package


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub folder, and no network: a download raises as urllib does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f"offline: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_default_weights_load_from_the_torch_hub_cache(weights, lpips, hub, fake_lpips):
    torch.save(weights["trunk"], hub / "alexnet-owt-7be5be79.pth")  # where torchvision caches its own download
    torch.save(weights["heads"], hub / "lpips-v0.1-alex-df73285e.pth")
    a, b = images(2, seed=6), images(2, seed=7)
    assert torch.equal(LPIPS()(a, b), lpips(a, b))


def test_heads_are_found_inside_an_installed_lpips_without_importing_it(weights, lpips, hub, fake_lpips):
    (fake_lpips / "weights" / "v0.1").mkdir(parents=True)
    torch.save(weights["heads"], fake_lpips / "weights" / "v0.1" / "alex.pth")
    a, b = images(2, seed=8), images(2, seed=9)
    assert torch.equal(LPIPS(weights["trunk_path"])(a, b), lpips(a, b))
    assert "lpips" not in sys.modules


def test_missing_files_and_no_network_name_both_fixes(weights, tmp_path, hub, fake_lpips):
    with pytest.raises(FileNotFoundError, match=r"pass the path of torchvision's alexnet-owt-7be5be79.pth, or allow"):
        LPIPS(str(tmp_path / "missing.pth"), weights["heads_path"])
    with pytest.raises(FileNotFoundError, match=r"offline.*allow the download of https://download.pytorch.org/models"):
        LPIPS(None, weights["heads_path"])
    with pytest.raises(FileNotFoundError, match=r"pass the path of lpips' v0.1 alex.pth.*pip install lpips"):
        LPIPS(weights["trunk_path"], None)


def test_equals_the_lpips_package(weights, tmp_path):
    """The real ``lpips`` (needs torchvision) with its random trunk copied over: same distances, same default heads."""
    lpips_package = pytest.importorskip("lpips")
    official = lpips_package.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    trunk = {}
    for key, value in official.state_dict().items():
        parts = key.split(".")  # net.slice<k>.<torchvision index>.<weight|bias>
        if parts[0] == "net":
            trunk[f"features.{parts[2]}.{parts[3]}"] = value
    torch.save(trunk, tmp_path / "alexnet.pth")
    ours = LPIPS(str(tmp_path / "alexnet.pth"))  # heads: the copy inside the installed package
    a, b = images(4, 96, 80, seed=10), images(4, 96, 80, seed=11)
    with torch.no_grad():
        expected = official(a, b, normalize=True).flatten()
    assert torch.allclose(ours(a, b), expected, rtol=0, atol=1e-6), (ours(a, b), expected)

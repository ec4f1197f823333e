import torch

from world_r1.policy import WanPolicy
from world_r1.policy.vae import CPU_ENCODE_BATCH, encode_posterior_mean


def test_encode_posterior_mean_matches_one_plain_encode(policy: WanPolicy):
    vae = policy.vae
    count = CPU_ENCODE_BATCH + 1  # split into two calls on CPU
    pixels = torch.rand(count, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        plain = vae.encode(pixels).latent_dist.mode()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16-mixed trainer must not reach the VAE
            latents = encode_posterior_mean(vae, pixels)
    assert latents.dtype == torch.float32
    assert latents.shape == plain.shape
    torch.testing.assert_close(latents, plain.float(), rtol=1e-5, atol=1e-5)

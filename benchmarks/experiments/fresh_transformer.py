"""The start of a base-model experiment: the shipped mini Wan with a new, random transformer (of any widths).

World-R1 in miniature fails on a base whose rigid videos are its still ones. Whether another transformer on the
same VAE, text encoder and data does better (a bigger one; one trained on other data) is measured by re-training
only the transformer: re-training the VAE would cost 25 minutes and change two things at once. So this keeps the
shipped VAE, tokenizer and text encoder and re-initialises the transformer (from ``--init-seed``, as stage 1 of
``make mini-model`` would: the shipped widths give the shipped transformer's initial weights). Then stage 2 trains
it as it trains the shipped one::

    python -m benchmarks.experiments.fresh_transformer --layers 6 --heads 6 --ffn-dim 768 \\
        --out .cache/world_r1/mini-wide-start
    python -m world_r1 pretrain --config configs/mini_base.yaml --model.model .cache/world_r1/mini-wide-start \\
        --model.output_dir .cache/world_r1/mini-wan-wide --trainer.default_root_dir runs/mini_wide
    python -m benchmarks.experiments.miniature --model .cache/world_r1/mini-wan-wide --seeds 0 --ablations
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from world_r1.policy.loading import load_wan_pipeline
from world_r1.policy.tiny import WanSizes, build_wan_transformer


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.experiments.fresh_transformer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="builtin:mini-wan", help="the Wan whose VAE and text encoder are kept")
    parser.add_argument("--layers", type=int, required=True, help="transformer blocks (shipped: 4)")
    parser.add_argument(
        "--heads", type=int, required=True, help="attention heads, as wide as the model's (shipped: 4 of 32)"
    )
    parser.add_argument("--ffn-dim", type=int, required=True, help="feed-forward width (shipped: 512)")
    parser.add_argument("--init-seed", type=int, default=0, help="as stage 1's init_seed (the transformer's is +1)")
    parser.add_argument("--out", type=Path, required=True, help="where the new pipeline is written")
    args = parser.parse_args(argv)

    pipe = load_wan_pipeline(args.model, torch.float32)
    old = pipe.transformer.config
    sizes = WanSizes(
        text_dim=old.text_dim,
        heads=args.heads,
        head_dim=old.attention_head_dim,
        layers=args.layers,
        ffn_dim=args.ffn_dim,
    )
    image = {"image_dim": old.image_dim, "added_kv_proj_dim": sizes.heads * sizes.head_dim} if old.image_dim else {}
    pipe.transformer = build_wan_transformer(sizes, args.init_seed + 1, old.in_channels, old.out_channels, **image)
    pipe.save_pretrained(args.out)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    print(
        f"wrote {args.out}: transformer {args.layers} blocks x {args.heads * old.attention_head_dim}, "
        f"{params:,} parameters"
    )
    return args.out


if __name__ == "__main__":
    main()

"""World-R1: Flow-GRPO post-training of Wan 2.1 with 3D-consistency rewards."""

__version__ = "0.1.0"

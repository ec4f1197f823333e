"""Speed benchmarks of world-r1: each figure a ratio against a baseline measured in the same run."""

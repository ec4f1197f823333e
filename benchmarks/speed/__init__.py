"""Speed benchmarks: ratios of medians measured in the same run (``python -m benchmarks``, ``make bench``)."""

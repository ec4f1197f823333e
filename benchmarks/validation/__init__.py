"""Validation of the rewards and the trajectory term on clips whose truth is known (``python -m benchmarks.validation``,
``make validate``): each module's ``--variant NAME`` re-makes one committed result."""

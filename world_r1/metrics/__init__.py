"""Evaluation metrics over the reward terms: the rewards' geometry core, measured instead of optimised."""

from world_r1.metrics.paired import paired_difference
from world_r1.metrics.terms import RewardTermMeans, score_terms

__all__ = ["RewardTermMeans", "paired_difference", "score_terms"]

"""Evaluation metrics over the reward terms: the rewards' geometry core, measured instead of optimised."""

from world_r1.metrics.terms import RewardTermMeans, score_terms

__all__ = ["RewardTermMeans", "score_terms"]

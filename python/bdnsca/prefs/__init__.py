"""Preferences: multi-rater ratings, their aggregation and agreement, and preference-pair
building from evaluation runs."""

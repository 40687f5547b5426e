"""Evaluation: scores, runs of the modes side by side, retrieval metrics, reports."""

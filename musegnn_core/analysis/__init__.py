"""Evaluation of joint gene embeddings: benchmark metrics, functional measures and baselines."""

"""Scorers of a live model: generation, log-likelihood of choices, teacher-forced cross-entropy, and the
lm-eval backend that runs lm-eval in-process over the harness's own items."""

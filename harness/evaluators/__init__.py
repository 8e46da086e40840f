"""Evaluator backends other than the native scorers (harness.loglik, harness.generation):
`lm_eval_backend` runs lm-eval in-process on the live model over the harness's own items."""

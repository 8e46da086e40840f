"""Learning and forgetting, measured on the same run: the base model (before the method touches it,
i.e. adapters disabled) against the tuned model after training. Each probe is one module behind the
`Probe` protocol (probes/base.py); `composite.build_probes` builds the configured ones.

Forgetting probes (`forgetting.probes`, any subset, in this order):

* `general_text` (v1): mean per-token cross-entropy on WikiText-2 test text, chunked into
  `n_chunks` x `chunk_tokens` from the start of the file; reports before, after and the delta
  (after - before; > 0 means the tuned model predicts general text worse).
* `general_suite` (v1): accuracy on a fixed suite of eval-only task specs (registered tasks'
  own eval items and scoring, e.g. MMLU subjects and ARC by log-likelihood); reports before, after
  and the delta (after - before, macro over members; < 0 means forgetting), and each member's delta.
* `kl_drift` (v1): the base model greedily continues fixed prompts; the probe reports the mean
  per-token KL(base || tuned) on those continuations. Needs no data; also the fallback of
  `general_text` when no text source is available.

Learning (`forgetting.target_gain`, probes/target_gain.py): every final metric of the run's task is
also measured on the base model with the same items and scoring; `gain_<metric>` = tuned - base
(paired by item).

Base-model values are cached per model x probe/eval config x items (under
`<results_dir>/cache/forgetting/`), so a sweep computes them once per model.
"""

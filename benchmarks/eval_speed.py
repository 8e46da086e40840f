"""Native evaluation against lm-eval on the same model, items and requests: samples/s and scores.

Four workloads on real items from the data dir:
  * MMLU 5-shot (log-likelihood over " A".." D", lm-eval's prompt; one-token choices, shared shots),
  * MMLU 0-shot (the same, no shots: one forward row per question on both sides, since lm-eval also
    runs a context once when every choice is one token; all test items of the first subjects),
  * ARC-Easy (log-likelihood of whole answer texts: multi-token choices, the cached second pass),
  * GSM8K greedy generation (the gsm8k task's prompt, stop strings, `--max-new-tokens`).
Both sides get the identical request strings: the native scorers (harness.scoring.loglik,
harness.scoring.generation) and lm-eval's HFLM engine (`loglikelihood` / `generate_until` on Instances,
the part of lm-eval that does the model work, so task building is not counted against it).
Prints samples/s, the speed-up, and whether the scores agree (same argmax per item / same text);
`--flops` adds the model FLOPs each side spends (torch's FLOP counter: a noise-free ratio on a busy
machine), `--general` the native general path's time for the workloads the one-token fast path takes.
Targets: >= 2x lm-eval for log-likelihood, >= 1.5x for generation, identical scores.

    python benchmarks/eval_speed.py                          # SmolLM2-135M, data from $HARNESS_DATA_DIR
    python benchmarks/eval_speed.py --only mmlu0 --threads 1,2 --flops --general
    python benchmarks/eval_speed.py --model tiny-random-llama --mmlu-per-subject 2 --gen-items 4
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml

from harness.core.paths import CONF_DIR
from harness.models.loading import load_model
from harness.scoring.generation import generate_answers
from harness.scoring.loglik import best_choice, choice_log_likelihoods
from harness.tasks.gsm8k import GSM8K
from harness.tasks.mmlu import MMLU, SUBJECTS

CPU = torch.device("cpu")
WORKLOADS = ["mmlu", "mmlu0", "arc", "gsm8k"]


def mmlu_requests(data_dir: str, subjects: int, per_subject: int | None, shots: int) -> tuple[list[str], list[list[str]]]:
    cfg = {**yaml.safe_load((CONF_DIR / "task" / "mmlu.yaml").read_text()), "num_fewshot": shots,
           "n_eval": per_subject, "subjects": list(SUBJECTS)[:subjects]}
    task = MMLU.of(cfg)
    items = task.load({"dir": data_dir, "order": ["local"]}).eval
    return [task.context(x) for x in items], [task.choices(x) for x in items]


def arc_requests(data_dir: str, n: int) -> tuple[list[str], list[list[str]]]:
    rows = [json.loads(line) for line in (Path(data_dir) / "probes" / "icl" / "arc_easy.jsonl").open()][:n]
    return [f"{r['query']}\nAnswer:" for r in rows], [[f" {c}" for c in r["choices"]] for r in rows]


def lm_eval_loglik(lm, contexts, choices) -> list[list[float]]:
    from lm_eval.api.instance import Instance

    flat = [(i, c, x) for i, (c, xs) in enumerate(zip(contexts, choices)) for x in xs]
    reqs = [Instance("loglikelihood", {}, (c, x), j, ("bench", i, 1)) for j, (i, c, x) in enumerate(flat)]
    out: list[list[float]] = [[] for _ in contexts]
    for (i, _, _), (logprob, _) in zip(flat, lm.loglikelihood(reqs, disable_tqdm=True)):
        out[i].append(logprob)
    return out


def lm_eval_generate(lm, prompts, stop, max_new_tokens) -> list[str]:
    from lm_eval.api.instance import Instance

    gen = {"until": list(stop), "do_sample": False, "temperature": 0.0, "max_gen_toks": max_new_tokens}
    reqs = [Instance("generate_until", {}, (p, gen), j, ("bench", j, 1)) for j, p in enumerate(prompts)]
    return lm.generate_until(reqs, disable_tqdm=True)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def flops(fn) -> float:
    """Floating-point operations torch counts (matmuls, attention) while fn runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def report(name: str, n: int, native_s: float, lm_s: float, agree: str, target: float) -> None:
    ratio = lm_s / native_s
    print(f"{name:<28} native {n / native_s:8.2f} samples/s   lm-eval {n / lm_s:8.2f} samples/s   "
          f"speed-up {ratio:5.2f}x (target >= {target}x: {'met' if ratio >= target else 'NOT met'})   scores: {agree}", flush=True)


def compare_loglik(name, model, tok, lm, contexts, choices, args) -> None:
    """Time both evaluators on the same requests; report speed, per-item argmax agreement and
    (with --general) the native general path."""
    choice_log_likelihoods(model, tok, contexts[:2], choices[:2], 2, CPU)  # warm-up (allocator, kernels)
    runs = {"native": lambda: choice_log_likelihoods(model, tok, contexts, choices, args.batch_size, CPU),
            "lm-eval": lambda: lm_eval_loglik(lm, contexts, choices)}
    if args.general:
        runs["general"] = lambda: choice_log_likelihoods(model, tok, contexts, choices, args.batch_size, CPU, fast_path=False)
    out, best = {}, dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):  # interleaved, so a busy spell on a shared machine hits every side
        for side, fn in runs.items():
            out[side], seconds = timed(fn)
            best[side] = min(best[side], seconds)
    native, theirs = out["native"], out["lm-eval"]
    same = sum(best_choice(a) == max(range(len(b)), key=lambda j: (b[j], -j)) for a, b in zip(native, theirs))
    diff = max(abs(s.logprob - t) for a, b in zip(native, theirs) for s, t in zip(a, b))
    agree = f"argmax identical on {same}/{len(contexts)} items, max |dlogprob| {diff:.1e}"
    report(name, len(contexts), best["native"], best["lm-eval"], agree, 2.0)
    if args.general:
        same = sum(best_choice(a) == best_choice(b) for a, b in zip(native, out["general"]))
        print(f"{'':<28} native general path {len(contexts) / best['general']:8.2f} samples/s "
              f"(fast path {best['general'] / best['native']:4.2f}x it; argmax identical on {same}/{len(contexts)})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    ap.add_argument("--mmlu-subjects", type=int, default=3)
    ap.add_argument("--mmlu-per-subject", type=int, default=8, help="first n test items of each subject")
    ap.add_argument("--mmlu0-subjects", type=int, default=6, help="MMLU 0-shot: every test item of the first n subjects")
    ap.add_argument("--arc-items", type=int, default=40)
    ap.add_argument("--gen-items", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the gsm8k task's (256, lm-eval's)")
    ap.add_argument("--only", choices=WORKLOADS, action="append", help="run these workloads only (repeatable)")
    ap.add_argument("--batch-size", type=int, default=16, help="contexts (native) / requests (lm-eval) per batch")
    ap.add_argument("--threads", default=None,
                    help="torch threads, or a comma list (1,2) to run everything at each; 1 gives steadier timings on a shared machine")
    ap.add_argument("--repeats", type=int, default=1, help="time each side this many times (interleaved), keep the best")
    ap.add_argument("--flops", action="store_true", help="also count model FLOPs on both sides (log-likelihood workloads)")
    ap.add_argument("--general", action="store_true", help="also time the native general path (fast_path=False)")
    args = ap.parse_args()

    from lm_eval.models.huggingface import HFLM

    loaded = load_model(yaml.safe_load((CONF_DIR / "model" / f"{args.model}.yaml").read_text()), CONF_DIR)
    model, tok = loaded.model.eval(), loaded.tokenizer
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=args.batch_size, device="cpu")
    run = [w for w in WORKLOADS if w in (args.only or WORKLOADS)]
    named = lambda label, reqs: (f"{label} ({len(reqs[0])} items)", reqs)
    loglik_workloads = {
        "mmlu": lambda: named("MMLU 5-shot", mmlu_requests(args.data_dir, args.mmlu_subjects, args.mmlu_per_subject, 5)),
        "mmlu0": lambda: named("MMLU 0-shot", mmlu_requests(args.data_dir, args.mmlu0_subjects, None, 0)),
        "arc": lambda: named("ARC-Easy", arc_requests(args.data_dir, args.arc_items)),
    }
    requests = {w: loglik_workloads[w]() for w in run if w in loglik_workloads}
    for threads in [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        print(f"model {args.model}, torch threads {threads}, batch size {args.batch_size}", flush=True)
        for name, (contexts, choices) in requests.values():
            compare_loglik(name, model, tok, lm, contexts, choices, args)
        if "gsm8k" in run:
            compare_generation(model, tok, lm, args)
    for name, (contexts, choices) in requests.values() if args.flops else ():  # thread-independent: once
        ours = flops(lambda: choice_log_likelihoods(model, tok, contexts, choices, args.batch_size, CPU))
        theirs = flops(lambda: lm_eval_loglik(lm, contexts, choices))
        print(f"{name:<28} model FLOPs native {ours / 1e12:7.3f} T   lm-eval {theirs / 1e12:7.3f} T   "
              f"lm-eval / native {theirs / ours:4.2f}x", flush=True)


def compare_generation(model, tok, lm, args) -> None:
    cfg = {**yaml.safe_load((CONF_DIR / "task" / "gsm8k.yaml").read_text()), "n_eval": args.gen_items}
    max_new_tokens = args.max_new_tokens or cfg["max_new_tokens"]
    task = GSM8K.of(cfg)
    prompts = [task.prompt(x) for x in task.load({"dir": args.data_dir, "order": ["local"]}).eval]
    stop = list(cfg["stop"])
    ours, native_s = timed(lambda: generate_answers(model, tok, prompts, max_new_tokens, stop, args.batch_size, CPU))
    theirs, lm_s = timed(lambda: lm_eval_generate(lm, prompts, stop, max_new_tokens))
    same = sum(a == b for a, b in zip(ours, theirs))
    report(f"GSM8K greedy ({len(prompts)} items, <= {max_new_tokens} tok)", len(prompts), native_s, lm_s,
           f"{same}/{len(prompts)} outputs identical", 1.5)


if __name__ == "__main__":
    main()

"""Prompt rendering shared by generation tasks: the optional chat template (`task.chat_template`).

Off by default: published numbers for base models (lm-eval, LLM-Adapters) use plain text prompts.
On, the prompt becomes one user turn of the tokenizer's own chat template, followed by the
assistant prefix, as instruct models expect.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from harness.core.errors import HarnessError


def render(tok: PreTrainedTokenizerBase, prompt: str, chat_template: bool) -> str:
    if not chat_template:
        return prompt
    if not getattr(tok, "chat_template", None):
        raise HarnessError("task.chat_template=true but this model's tokenizer has no chat template; set task.chat_template=false")
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
